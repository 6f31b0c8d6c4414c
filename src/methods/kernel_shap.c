/* KernelSHAP (Lundberg & Lee 2017): Shapley values of the segments of a sample, from the outputs
 * of coalitions (the segments in the coalition keep the input, the others take the baseline).
 * Few segments: exact values by enumerating every coalition. Otherwise coalitions drawn with the
 * Shapley kernel's size distribution in complementary pairs (Covert & Lee 2021), and the weighted
 * linear regression that defines KernelSHAP solved under the efficiency constraint
 * sum phi = f(x) - f(baseline), which holds exactly: it is eliminated before LAPACK solves the
 * rest. */
#include "core/lapack.h"
#include "sampling.h"
#include "segments.h"
#include <math.h>

enum { EXACT_MAX = 16 }; /* 2^16 coalitions */

typedef struct {
    bool exact;
    double *cum;  /* (M - 1): P(size <= s) under the Shapley kernel, s = 1 .. M - 1 */
    int32_t *idx; /* (M) scratch for drawing a coalition */
} ks_plan;

/* Coalition k of a sample with M segments: exact, the bits of k; sampled, row 0 the input (every
 * segment in), row 1 the baseline (none), then pairs: row 2 + 2p a coalition drawn from the
 * stream of pair p, row 3 + 2p its complement. The stream is the pair's, so a row does not depend
 * on the chunk it lands in. */
static void ks_coef(const sal_bb_job *j, int64_t k, float *a) {
    const ks_plan *p = j->user;
    int64_t M = j->nseg;
    if (p->exact) {
        for (int64_t s = 0; s < M; s++) a[s] = (float)((k >> s) & 1);
        return;
    }
    if (k < 2) {
        for (int64_t s = 0; s < M; s++) a[s] = k == 0 ? 1.0f : 0.0f;
        return;
    }
    int64_t pair = (k - 2) / 2;
    sal_rng r;
    sal_rng_stream(&r, j->seed, j->id, pair, j->rows);
    double u = sal_rng_uniform(&r);
    int64_t lo = 0, hi = M - 2; /* the first size whose cumulative probability exceeds u */
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (p->cum[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    int64_t size = lo + 1;
    for (int64_t s = 0; s < M; s++) p->idx[s] = (int32_t)s, a[s] = 0.0f;
    for (int64_t t = 0; t < size; t++) { /* a uniform subset of that size: partial Fisher-Yates */
        int64_t q = t + (int64_t)(sal_rng_u64(&r) % (uint64_t)(M - t));
        int32_t tmp = p->idx[t];
        p->idx[t] = p->idx[q], p->idx[q] = tmp;
        a[p->idx[t]] = 1.0f;
    }
    if ((k - 2) % 2)
        for (int64_t s = 0; s < M; s++) a[s] = 1.0f - a[s];
}

/* phi_i = sum over coalitions S without i of |S|! (M - |S| - 1)! / M! (v(S + i) - v(S)). */
static void exact_shapley(int64_t M, const float *v, double *phi) {
    double w[EXACT_MAX + 1]; /* w[s] = 1 / (M binom(M - 1, s)) */
    for (int64_t s = 0; s < M; s++) {
        double b = 1;
        for (int64_t t = 1; t <= s; t++) b = b * (double)(M - t) / (double)t;
        w[s] = 1 / ((double)M * b);
    }
    for (int64_t i = 0; i < M; i++) {
        double acc = 0;
        for (int64_t S = 0; S < (int64_t)1 << M; S++)
            if (!(S >> i & 1)) acc += w[__builtin_popcountll((unsigned long long)S)] * ((double)v[S | (int64_t)1 << i] - v[S]);
        phi[i] = acc;
    }
}

/* The regression over the drawn coalitions: min sum_k (v_k - v_empty - z_k . phi)^2 subject to
 * sum phi = d = v_full - v_empty. The sizes were drawn with the kernel's weights, so every row
 * weighs the same. The constraint is eliminated exactly: phi = (d / M) 1 + N y, where the columns
 * of N, the last M - 1 columns of the Householder reflection H = I - 2 u u^T / u^T u with
 * u = 1 + sqrt(M) e_1, are an orthonormal basis of the vectors that sum to zero. y is the
 * minimum-norm least-squares solution (LAPACK's dgelsd), so coalitions too few or too alike to
 * determine every value give the smallest values that fit instead of an error. *rank gets the
 * rank found. */
static sal_status sampled_shapley(sal_bb_job *j, double *phi, int *rank) {
    int64_t M = j->nseg, m = j->rows - 2, n = M - 1;
    double *A = sal_malloc((size_t)(m * n) * sizeof *A), *rhs = sal_malloc((size_t)(m > n ? m : n) * sizeof *rhs);
    if (!A || !rhs) {
        sal_free(A), sal_free(rhs);
        return sal_fail(SAL_ERR_NOMEM, "out of memory for the regression over %lld coalitions of %lld segments "
                        "(fewer segments need less: segments=slic:K)", (long long)m, (long long)M);
    }
    double d = (double)j->value[0] - j->value[1], sq = sqrt((double)M), uu = 2 * ((double)M + sq);
    for (int64_t k = 0; k < m; k++) { /* row k of A N, and v_k - v_empty - z_k . (d / M) 1 */
        j->coef(j, k + 2, j->a);
        double zu = j->a[0] * (1 + sq), on = 0;
        for (int64_t s = 1; s < M; s++) zu += j->a[s];
        for (int64_t s = 0; s < M; s++) on += j->a[s];
        for (int64_t s = 1; s < M; s++) A[k * n + s - 1] = j->a[s] - 2 * zu / uu;
        rhs[k] = (double)j->value[k + 2] - j->value[1] - d * on / (double)M;
    }
    sal_status st = sal_lapack_gelsd((int)m, (int)n, A, rhs, 1e-8, rank);
    if (st == SAL_OK) {
        double uy = 0; /* phi = (d / M) 1 + N y, N = columns 1 .. M-1 of H */
        for (int64_t s = 1; s < M; s++) uy += rhs[s - 1];
        phi[0] = d / (double)M - 2 * (1 + sq) * uy / uu;
        for (int64_t s = 1; s < M; s++) phi[s] = d / (double)M + rhs[s - 1] - 2 * uy / uu;
    }
    sal_free(A), sal_free(rhs);
    return st;
}

static const char *const k_exact[] = {"auto", "true", "false", NULL};

static sal_status run_kernel_shap(sal_xctx *c) {
    long samples;
    int exact_mode;
    uint64_t seed = 0;
    SAL_TRY(sal_param_int(c, "samples", 2, 100000000, &samples));
    SAL_TRY(sal_param_choice(c, "exact", k_exact, &exact_mode));
    SAL_TRY(sal_parse_seed(c->meth->name, sal_param(c, "seed"), &seed));
    const sal_tensor *x = c->x;
    int64_t N = x->dim[0], row = sal_row_size(x), maxM = 0;
    sal_segments seg = {0};
    sal_tensor base = {0};
    SAL_TRY(sal_segments_make(c, &seg));
    sal_status st = sal_method_baseline(c, &base);
    for (int64_t i = 0; i < N; i++) maxM = seg.nseg[i] > maxM ? seg.nseg[i] : maxM;
    if (st == SAL_OK && exact_mode == 1 && maxM > EXACT_MAX)
        st = sal_fail(SAL_ERR_ARG, "method %s: exact=true enumerates 2^M coalitions and takes at most %d segments; "
                      "this input has %lld", c->meth->name, EXACT_MAX, (long long)maxM);
    int64_t maxrows = 2 + samples;
    if (maxM <= EXACT_MAX && ((int64_t)1 << maxM) > maxrows) maxrows = (int64_t)1 << maxM;
    ks_plan p = {0};
    sal_bb_job j = {.row = row, .coef = ks_coef, .seed = seed, .user = &p};
    p.cum = sal_malloc((size_t)(maxM > 1 ? maxM : 2) * sizeof *p.cum);
    p.idx = sal_malloc((size_t)(maxM > 0 ? maxM : 1) * sizeof *p.idx);
    j.a = sal_malloc((size_t)(maxM > 0 ? maxM : 1) * sizeof *j.a);
    j.value = sal_malloc((size_t)maxrows * sizeof *j.value);
    double *phi = sal_malloc((size_t)(maxM > 0 ? maxM : 1) * sizeof *phi);
    if (st == SAL_OK && (!p.cum || !p.idx || !j.a || !j.value || !phi)) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = sal_tensor_alloc(&c->out, SAL_F32, x->ndim, x->dim);
    double worst = 0;
    int64_t nexact = 0, ndef = 0;
    for (int64_t i = 0; i < N && st == SAL_OK; i++) {
        int64_t M = seg.nseg[i];
        p.exact = M <= 1 || exact_mode == 1 || (exact_mode == 0 && M <= EXACT_MAX && ((int64_t)1 << M) <= 2 + samples);
        j.x = sal_f32(x) + i * row, j.base = sal_f32(&base) + i * row, j.label = seg.label + i * row;
        j.nseg = M, j.id = sal_stream_id(c, i);
        j.rows = p.exact ? (int64_t)1 << M : 2 + samples;
        double tot = 0;
        for (int64_t s = 1; s < M; s++) p.cum[s - 1] = tot += 1 / ((double)s * (double)(M - s));
        for (int64_t s = 1; s < M; s++) p.cum[s - 1] /= tot;
        st = sal_bb_run_job(c, i, &j);
        if (st != SAL_OK) break;
        int rank = (int)M - 1;
        if (p.exact) exact_shapley(M, j.value, phi), nexact++;
        else st = sampled_shapley(&j, phi, &rank);
        ndef += rank < M - 1;
        if (st != SAL_OK) {
            st = sal_wrap(st, "method %s: sample %lld", c->meth->name, (long long)i);
            break;
        }
        double sum = 0, want = p.exact ? (double)j.value[((int64_t)1 << M) - 1] - j.value[0]
                                       : (double)j.value[0] - j.value[1];
        for (int64_t s = 0; s < M; s++) sum += phi[s];
        worst = fmax(worst, fabs(sum - want));
        sal_segments_spread(j.label, row, phi, sal_f32(&c->out) + i * row);
    }
    if (st == SAL_OK) {
        sal_metric(c, "efficiency_delta", worst);
        sal_metric(c, "segments", sal_segments_mean(&seg));
        sal_metric(c, "exact_samples", (double)nexact);
        sal_metric(c, "underdetermined_samples", (double)ndef); /* too few distinct coalitions */
    }
    sal_segments_free(&seg);
    sal_tensor_free(&base);
    sal_free(p.cum), sal_free(p.idx), sal_free(j.a), sal_free(j.value), sal_free(phi);
    return st;
}

static const sal_param_spec k_ks_params[] = {
    {"segments", "auto",
     "the features: auto (slic:50 for images, pixel for (N,C,L), element for (N,D)), slic:K, patch:K or HxW, "
     "grid:G or GHxGW, pixel (= position), element, axis:K, or a .npy file of integer labels (--segments)"},
    {"compactness", "10", "segments=slic:K: weight of space against colour (SLIC's m; colours span 0-100)"},
    {"baseline", "zero",
     "what a segment outside the coalition takes: zero, black (the data minimum), uniform (seeded), blur (see "
     "sigma), mean (of --data) or a .npy file"},
    {"sigma", "3", "baseline=blur: standard deviation of the Gaussian, in elements"},
    {"samples", "2000", "coalitions drawn besides the input and the baseline, in complementary pairs"},
    {"exact", "auto",
     "enumerate all 2^M coalitions: auto (when M <= 16 and 2^M <= samples + 2), true (M <= 16) or false"},
    {"seed", "0", "random seed of the coalitions (and of baseline=uniform)"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_kernel_shap = {
    .name = "kernel_shap",
    .summary = "Shapley values of segments from coalitions, efficiency exact (Lundberg & Lee 2017; Covert & Lee 2021)",
    .params = k_ks_params,
    .run = run_kernel_shap,
    .black_box = true,
};
