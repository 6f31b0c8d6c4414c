/* LIME (Ribeiro, Singh & Guestrin 2016): a weighted linear surrogate of the model around a sample,
 * fitted to the outputs of random on/off masks of its segments. As lime's image explainer: every
 * segment is on with probability 1/2 (the first row is the input itself), a mask z weighs
 * pi(z) = exp(-d(z)^2 / (2 w^2)) with d the cosine distance between z and the all-on mask, and the
 * surrogate is ridge regression with an intercept, on every segment or on K chosen by the lasso
 * path (K-lasso). The weighted R^2 of the surrogate is reported. */
#include "core/lapack.h"
#include "sampling.h"
#include "segments.h"
#include <math.h>

/* Mask k: row 0 every segment on, then independent fair coins from the row's stream. */
static void lime_coef(const sal_bb_job *j, int64_t k, float *a) {
    if (k == 0) {
        for (int64_t s = 0; s < j->nseg; s++) a[s] = 1.0f;
        return;
    }
    sal_rng r;
    sal_rng_stream(&r, j->seed, j->id, k, j->rows);
    for (int64_t s = 0; s < j->nseg; s += 64) {
        uint64_t bits = sal_rng_u64(&r);
        for (int64_t t = s; t < s + 64 && t < j->nseg; t++) a[t] = (float)((bits >> (t - s)) & 1);
    }
}

typedef struct {
    int64_t n, M;
    double *Z, *y, *w; /* (n, M) masks, (n) outputs, (n) weights */
} fit;

/* Weighted ridge with an intercept on the columns sel[0..K): centres by the weighted means, scales
 * rows by sqrt(w) and appends sqrt(alpha) I, then least squares through the SVD (sklearn's Ridge
 * with sample weights). coef (M) gets zero outside sel; returns the weighted R^2 in *r2. */
static sal_status ridge(const fit *f, const int64_t *sel, int64_t K, double alpha, double *coef, double *r2) {
    int64_t n = f->n, rows = n + K;
    double *A = sal_calloc((size_t)(rows * (K > 0 ? K : 1)), sizeof *A);
    double *b = sal_calloc((size_t)(rows > K ? rows : K), sizeof *b), *zm = sal_calloc((size_t)K + 1, sizeof *zm);
    if (!A || !b || !zm) {
        sal_free(A), sal_free(b), sal_free(zm);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    double sw = 0, ym = 0;
    for (int64_t k = 0; k < n; k++) {
        sw += f->w[k], ym += f->w[k] * f->y[k];
        for (int64_t q = 0; q < K; q++) zm[q] += f->w[k] * f->Z[k * f->M + sel[q]];
    }
    ym /= sw;
    for (int64_t q = 0; q < K; q++) zm[q] /= sw;
    for (int64_t k = 0; k < n; k++) {
        double s = sqrt(f->w[k]);
        for (int64_t q = 0; q < K; q++) A[k * K + q] = s * (f->Z[k * f->M + sel[q]] - zm[q]);
        b[k] = s * (f->y[k] - ym);
    }
    for (int64_t q = 0; q < K; q++) A[(n + q) * K + q] = sqrt(alpha);
    sal_status st = K > 0 ? sal_lapack_gelsd((int)rows, (int)K, A, b, -1, NULL) : SAL_OK;
    if (st == SAL_OK) {
        for (int64_t s = 0; s < f->M; s++) coef[s] = 0;
        for (int64_t q = 0; q < K; q++) coef[sel[q]] = b[q];
        double ss_res = 0, ss_tot = 0;
        for (int64_t k = 0; k < n; k++) {
            double pred = ym;
            for (int64_t q = 0; q < K; q++) pred += b[q] * (f->Z[k * f->M + sel[q]] - zm[q]);
            ss_res += f->w[k] * (f->y[k] - pred) * (f->y[k] - pred);
            ss_tot += f->w[k] * (f->y[k] - ym) * (f->y[k] - ym);
        }
        *r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1; /* a constant output is fitted exactly */
    }
    sal_free(A), sal_free(b), sal_free(zm);
    return st;
}

/* The K segments that enter the lasso path first (K-lasso, Ribeiro et al. Algorithm 1): coordinate
 * descent on (1/2n) ||y - X b||^2 + lambda |b|_1 over the weighted, centred data, warm-started down
 * a geometric grid of lambda from the value where every coefficient is zero; at the first lambda
 * with at least K nonzero coefficients, the K largest in magnitude. */
static sal_status lasso_select(const fit *f, int64_t K, int64_t *sel, int64_t *nsel) {
    int64_t n = f->n, M = f->M;
    double *X = sal_malloc((size_t)(n * M) * sizeof *X), *r = sal_malloc((size_t)n * sizeof *r);
    double *bta = sal_calloc((size_t)M, sizeof *bta), *nrm = sal_calloc((size_t)M, sizeof *nrm);
    if (!X || !r || !bta || !nrm) {
        sal_free(X), sal_free(r), sal_free(bta), sal_free(nrm);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    double sw = 0, ym = 0;
    for (int64_t k = 0; k < n; k++) sw += f->w[k], ym += f->w[k] * f->y[k];
    ym /= sw;
    for (int64_t s = 0; s < M; s++) {
        double zm = 0;
        for (int64_t k = 0; k < n; k++) zm += f->w[k] * f->Z[k * M + s];
        zm /= sw;
        for (int64_t k = 0; k < n; k++) {
            X[k * M + s] = sqrt(f->w[k]) * (f->Z[k * M + s] - zm);
            nrm[s] += X[k * M + s] * X[k * M + s];
        }
    }
    double lmax = 0;
    for (int64_t k = 0; k < n; k++) r[k] = sqrt(f->w[k]) * (f->y[k] - ym);
    for (int64_t s = 0; s < M; s++) {
        double g = 0;
        for (int64_t k = 0; k < n; k++) g += X[k * M + s] * r[k];
        lmax = fmax(lmax, fabs(g) / (double)n);
    }
    int64_t count = 0;
    for (int step = 1; step <= 100 && count < K && lmax > 0; step++) {
        double lam = lmax * pow(1e-4, step / 100.0);
        for (int sweep = 0; sweep < 200; sweep++) {
            double change = 0;
            for (int64_t s = 0; s < M; s++) {
                if (nrm[s] == 0) continue;
                double rho = 0;
                for (int64_t k = 0; k < n; k++) rho += X[k * M + s] * r[k];
                rho += nrm[s] * bta[s];
                double thr = lam * (double)n, nb = rho > thr ? (rho - thr) / nrm[s] : rho < -thr ? (rho + thr) / nrm[s] : 0;
                double d = nb - bta[s];
                if (d == 0) continue;
                for (int64_t k = 0; k < n; k++) r[k] -= d * X[k * M + s];
                bta[s] = nb;
                change = fmax(change, fabs(d) * sqrt(nrm[s]));
            }
            if (change < 1e-9 * (1 + lmax)) break;
        }
        count = 0;
        for (int64_t s = 0; s < M; s++) count += bta[s] != 0;
    }
    /* the K largest |b| (ties: the lower index), or every nonzero one when fewer entered */
    int64_t m = 0;
    for (int64_t q = 0; q < K; q++) {
        int64_t best = -1;
        for (int64_t s = 0; s < M; s++) {
            if (bta[s] == 0) continue;
            bool taken = false;
            for (int64_t t = 0; t < m && !taken; t++) taken = sel[t] == s;
            if (!taken && (best < 0 || fabs(bta[s]) > fabs(bta[best]))) best = s;
        }
        if (best < 0) break;
        sel[m++] = best;
    }
    *nsel = m;
    sal_free(X), sal_free(r), sal_free(bta), sal_free(nrm);
    return SAL_OK;
}

static sal_status run_lime(sal_xctx *c) {
    long samples, features;
    double width, alpha;
    uint64_t seed = 0;
    SAL_TRY(sal_param_int(c, "samples", 2, 100000000, &samples));
    SAL_TRY(sal_param_int(c, "features", 0, 100000000, &features));
    SAL_TRY(sal_param_float(c, "kernel_width", 1e-6, 1e6, &width));
    SAL_TRY(sal_param_float(c, "alpha", 0, 1e12, &alpha));
    SAL_TRY(sal_parse_seed(c->meth->name, sal_param(c, "seed"), &seed));
    const sal_tensor *x = c->x;
    int64_t N = x->dim[0], row = sal_row_size(x), maxM = 0, n = samples;
    sal_segments seg = {0};
    sal_tensor base = {0};
    SAL_TRY(sal_segments_make(c, &seg));
    sal_status st = sal_method_baseline(c, &base);
    for (int64_t i = 0; i < N; i++) maxM = seg.nseg[i] > maxM ? seg.nseg[i] : maxM;
    sal_bb_job j = {.row = row, .coef = lime_coef, .seed = seed, .rows = n};
    fit f = {.n = n};
    j.a = sal_malloc((size_t)maxM * sizeof *j.a);
    j.value = sal_malloc((size_t)n * sizeof *j.value);
    f.Z = sal_malloc((size_t)(n * maxM) * sizeof *f.Z);
    f.y = sal_malloc((size_t)n * sizeof *f.y);
    f.w = sal_malloc((size_t)n * sizeof *f.w);
    double *coef = sal_malloc((size_t)maxM * sizeof *coef);
    int64_t *sel = sal_malloc((size_t)maxM * sizeof *sel);
    if (st == SAL_OK && (!j.a || !j.value || !f.Z || !f.y || !f.w || !coef || !sel))
        st = sal_fail(SAL_ERR_NOMEM, "out of memory for %lld masks of %lld segments (fewer segments need less: "
                      "segments=slic:K)", (long long)n, (long long)maxM);
    if (st == SAL_OK) st = sal_tensor_alloc(&c->out, SAL_F32, x->ndim, x->dim);
    double r2sum = 0, r2min = INFINITY;
    for (int64_t i = 0; i < N && st == SAL_OK; i++) {
        int64_t M = seg.nseg[i];
        j.x = sal_f32(x) + i * row, j.base = sal_f32(&base) + i * row, j.label = seg.label + i * row;
        j.nseg = M, j.id = sal_stream_id(c, i);
        st = sal_bb_run_job(c, i, &j);
        if (st != SAL_OK) break;
        f.M = M;
        for (int64_t k = 0; k < n; k++) { /* masks again from their streams; weights from the kernel */
            lime_coef(&j, k, j.a);
            double on = 0;
            for (int64_t s = 0; s < M; s++) f.Z[k * M + s] = j.a[s], on += j.a[s];
            double d = on > 0 ? 1 - sqrt(on / (double)M) : 1; /* cosine distance to the all-on mask */
            f.w[k] = exp(-d * d / (2 * width * width));
            f.y[k] = j.value[k];
        }
        int64_t K = M;
        for (int64_t s = 0; s < M; s++) sel[s] = s;
        if (features > 0 && features < M) st = lasso_select(&f, features, sel, &K);
        double r2 = 0;
        if (st == SAL_OK) st = ridge(&f, sel, K, alpha, coef, &r2);
        if (st != SAL_OK) {
            st = sal_wrap(st, "method %s: sample %lld", c->meth->name, (long long)i);
            break;
        }
        r2sum += r2, r2min = fmin(r2min, r2);
        sal_segments_spread(j.label, row, coef, sal_f32(&c->out) + i * row);
    }
    if (st == SAL_OK) {
        sal_metric(c, "r2", r2sum / (double)N);
        sal_metric(c, "segments", sal_segments_mean(&seg));
        sal_metric(c, "r2_min", r2min);
    }
    sal_segments_free(&seg);
    sal_tensor_free(&base);
    sal_free(j.a), sal_free(j.value), sal_free(f.Z), sal_free(f.y), sal_free(f.w), sal_free(coef), sal_free(sel);
    return st;
}

static const sal_param_spec k_lime_params[] = {
    {"segments", "auto",
     "the features: auto (slic:50 for images, pixel for (N,C,L), element for (N,D)), slic:K, patch:K or HxW, "
     "grid:G or GHxGW, pixel (= position), element, axis:K, or a .npy file of integer labels (--segments)"},
    {"compactness", "10", "segments=slic:K: weight of space against colour (SLIC's m; colours span 0-100)"},
    {"baseline", "zero",
     "what a segment switched off takes: zero, black (the data minimum), uniform (seeded), blur (see sigma), mean "
     "(of --data) or a .npy file"},
    {"sigma", "3", "baseline=blur: standard deviation of the Gaussian, in elements"},
    {"samples", "1000", "random masks (the first is the input itself)"},
    {"kernel_width", "0.25", "width w of the kernel exp(-d^2 / (2 w^2)) on the cosine distance d to the input"},
    {"features", "0", "segments kept in the surrogate, chosen by the lasso path (K-lasso); 0: all"},
    {"alpha", "1", "ridge penalty of the surrogate (0: weighted least squares)"},
    {"seed", "0", "random seed of the masks (and of baseline=uniform)"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_lime = {
    .name = "lime",
    .summary = "weighted sparse linear surrogate over random masks of segments (Ribeiro et al. 2016)",
    .params = k_lime_params,
    .run = run_lime,
    .black_box = true,
};
