/* Randomization metrics (the map must depend on the weights and on the class) and axiomatic ones
 * (completeness, non-sensitivity, input invariance through the invariance audit).
 * Conventions: docs/metrics.md. */
#include "graph/rewrite.h"
#include "metric.h"

/* ---- model parameter randomization ---- */

/* Nodes whose weights are re-drawn (Gemm, MatMul, Conv with parameters), in execution order. */
static int layers(const sal_model *m, int *out) {
    int n = 0;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *nd = &m->node[i];
        bool has = false;
        for (int k = 0; k < nd->nin; k++) has |= nd->in[k] >= 0 && m->val[nd->in[k]].param;
        if (sal_node_has(nd, SAL_TR_LINEAR) && has) {
            if (out) out[n] = i;
            n++;
        }
    }
    return n;
}

/* Re-draws layer l's weights from N(0, sigma^2), seeded by the seed and l, as the randomization
 * audit does, so every slice of samples sees the same randomized models. */
static void randomize(const mt_ctx *c, sal_model *wm, const int *lay, int l, double sigma) {
    sal_reinit_params(wm, lay[l], false, sigma > 0 ? sigma : 0.01,
                      c->o->common.seed * 0x9e3779b97f4a7c15ull + (uint64_t)l * 1000003u);
}

static int np_mprt(const mt_ctx *c) { return layers(c->m, NULL) + 1; }

/* The maps of samples i0 .. i0 + n - 1 on model m, averaged over K noisy copies (sd: noise) when
 * K > 0, into out (n rows). */
static sal_status smoothed(mt_ctx *c, const sal_model *m, au_patcache *pc, int64_t i0, int64_t n, int64_t K, double sd,
                           sal_tensor *tmp, double *out) {
    int64_t row = c->row;
    if (K <= 0) {
        sal_tensor xb = au_rows(c->x, i0, n);
        SAL_TRY(mt_explain(c, m, pc, &xb, c->target + i0, tmp));
        for (int64_t k = 0; k < n * row; k++) out[k] = sal_f32(tmp)[k];
        return SAL_OK;
    }
    int64_t *cls = sal_malloc((size_t)K * sizeof *cls);
    if (!cls) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_status st = SAL_OK;
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        const float *x = sal_f32(c->x) + i * row;
        float *b;
        if ((st = mt_rows(c, K, &b)) != SAL_OK) break;
        sal_rng g;
        mt_rng(c, i, &g); /* the same noisy copies for every model */
        for (int64_t r = 0; r < K; r++)
            for (int64_t e = 0; e < row; e++) b[r * row + e] = x[e] + (float)(sd * sal_rng_normal(&g));
        for (int64_t r = 0; r < K; r++) cls[r] = c->target[i];
        sal_tensor xb = au_rows(&c->batch, 0, K);
        if ((st = mt_explain(c, m, pc, &xb, cls, tmp)) != SAL_OK) break;
        for (int64_t e = 0; e < row; e++) {
            double s = 0;
            for (int64_t r = 0; r < K; r++) s += sal_f32(tmp)[r * row + e];
            out[q * row + e] = s / (double)K;
        }
    }
    sal_free(cls);
    return st;
}

/* Smooth MPRT (Hedström et al. 2023; samples = 0: Adebayo et al.'s MPRT): the layers are
 * randomized top down, cumulatively; at each step the Spearman correlation of |map| (each averaged
 * over noisy copies) with the trained model's; the value is its mean over the steps. */
static sal_status run_smprt(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)A;
    int L = layers(c->m, NULL), np = L + 1;
    int64_t K = isfinite(c->p[0]) && c->p[0] >= 0 ? (int64_t)llround(c->p[0]) : 10, row = c->row;
    if (!L) return sal_fail(SAL_ERR_UNSUPPORTED, "%s has no layer with weights to randomize", c->m->path);
    int *lay = sal_malloc((size_t)L * sizeof *lay);
    double *d0 = sal_malloc((size_t)(n * row) * sizeof *d0), *d1 = sal_malloc((size_t)(n * row) * sizeof *d1);
    sal_tensor tmp = {0};
    sal_model *wm = NULL;
    au_patcache pcw = {0};
    sal_status st = lay && d0 && d1 ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) layers(c->m, lay), st = smoothed(c, c->m, &c->pc, i0, n, K, c->p[1] * (c->hi - c->lo), &tmp, d0);
    if (st == SAL_OK) st = sal_model_copy(c->m, &wm);
    for (int64_t q = 0; q < n; q++) cv[q * np] = 1;
    for (int64_t k = 0; st == SAL_OK && k < n * row; k++) d0[k] = fabs(d0[k]);
    for (int s = 1; s <= L && st == SAL_OK; s++) {
        randomize(c, wm, lay, L - s, c->p[2]);
        if ((st = smoothed(c, wm, &pcw, i0, n, K, c->p[1] * (c->hi - c->lo), &tmp, d1)) != SAL_OK) break;
        for (int64_t k = 0; k < n * row; k++) d1[k] = fabs(d1[k]);
        for (int64_t q = 0; q < n; q++) cv[q * np + s] = mt_spearman(d0 + q * row, d1 + q * row, row);
    }
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        au_mean m = {0};
        for (int s = 1; s <= L; s++) au_mean_add(&m, cv[q * np + s]);
        v[q] = au_mean_get(&m);
    }
    au_patcache_free(&pcw);
    sal_model_free(wm);
    sal_tensor_free(&tmp);
    sal_free(lay), sal_free(d0), sal_free(d1);
    return st;
}

/* Entropy (nats) of the histogram of a map's values in `bins` equal bins over its own range. */
static double hist_entropy(const float *a, int64_t n, int64_t bins, int64_t *cnt) {
    double lo = INFINITY, hi = -INFINITY, h = 0;
    for (int64_t k = 0; k < n; k++) lo = fmin(lo, a[k]), hi = fmax(hi, a[k]);
    if (!(hi > lo)) return 0;
    memset(cnt, 0, (size_t)bins * sizeof *cnt);
    for (int64_t k = 0; k < n; k++) {
        int64_t b = (int64_t)(((double)a[k] - lo) / (hi - lo) * (double)bins);
        cnt[b < bins ? b : bins - 1]++;
    }
    for (int64_t b = 0; b < bins; b++)
        if (cnt[b]) h -= (double)cnt[b] / (double)n * log((double)cnt[b] / (double)n);
    return h;
}

/* Efficient MPRT (Hedström et al. 2023): the entropy of the map's histogram on the fully
 * randomized model over that on the trained one (above 1: randomizing made the map more complex). */
static sal_status run_emprt(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    int L = layers(c->m, NULL);
    int64_t bins = mt_count(c->p[0], 100), row = c->row;
    if (!L) return sal_fail(SAL_ERR_UNSUPPORTED, "%s has no layer with weights to randomize", c->m->path);
    int *lay = sal_malloc((size_t)L * sizeof *lay);
    int64_t *cnt = sal_malloc((size_t)bins * sizeof *cnt);
    sal_model *wm = NULL;
    sal_tensor tmp = {0};
    au_patcache pcw = {0};
    sal_status st = lay && cnt ? sal_model_copy(c->m, &wm) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) {
        layers(c->m, lay);
        for (int l = L - 1; l >= 0; l--) randomize(c, wm, lay, l, c->p[1]);
        sal_tensor xb = au_rows(c->x, i0, n);
        st = mt_explain(c, wm, &pcw, &xb, c->target + i0, &tmp);
    }
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        double h0 = hist_entropy(A + q * row, row, bins, cnt), h1 = hist_entropy(sal_f32(&tmp) + q * row, row, bins, cnt);
        v[q] = h0 > 0 ? h1 / h0 : NAN;
    }
    au_patcache_free(&pcw);
    sal_model_free(wm);
    sal_tensor_free(&tmp);
    sal_free(lay), sal_free(cnt);
    return st;
}

/* |plane| scaled into [0, 1] by its maximum */
static void unit_plane(const mt_ctx *c, const float *a, float *p) {
    float mx = 0;
    for (int64_t k = 0; k < c->HW; k++) {
        double s = 0;
        for (int64_t ch = 0; ch < c->C; ch++) s += fabs((double)a[ch * c->HW + k]);
        mx = fmaxf(mx, p[k] = (float)s);
    }
    for (int64_t k = 0; k < c->HW && mx > 0; k++) p[k] /= mx;
}

/* Random logit (Sixt et al. 2020): SSIM of the |map| planes for the predicted class and for a class
 * drawn uniformly among the others. */
static sal_status run_rlogit(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    if (c->K < 2) return sal_fail(SAL_ERR_ARG, "random_logit needs at least two classes");
    int64_t *cls = sal_malloc((size_t)n * sizeof *cls);
    float *pa = sal_malloc((size_t)c->HW * 2 * sizeof *pa);
    sal_tensor tmp = {0};
    sal_status st = cls && pa ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        sal_rng g;
        mt_rng(c, i0 + q, &g);
        int64_t k = (int64_t)(sal_rng_u64(&g) % (uint64_t)(c->K - 1));
        cls[q] = k >= c->target[i0 + q] ? k + 1 : k;
    }
    sal_tensor xb = au_rows(c->x, i0, n);
    if (st == SAL_OK) st = mt_explain(c, c->m, &c->pc, &xb, cls, &tmp);
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        unit_plane(c, A + q * c->row, pa);
        unit_plane(c, sal_f32(&tmp) + q * c->row, pa + c->HW);
        double s = NAN;
        if (sal_ssim(pa, pa + c->HW, (int)c->H, (int)c->W, 1.0, &s) != SAL_OK) s = NAN;
        v[q] = s;
    }
    sal_tensor_free(&tmp);
    sal_free(cls), sal_free(pa);
    return st;
}

const mt_metric mt_randomization[] = {
    {"smooth_mprt", "randomization", "mean Spearman correlation of |map| (averaged over noisy copies) with the trained "
     "model's while layers are randomized top down (Hedström et al. 2023; Adebayo et al. 2018 with samples=0)", -1,
     false,
     {{"samples", "10", "noisy copies averaged; 0: the plain MPRT"}, {"noise", "0.1", "their sd, fraction of the input range"},
      {"sigma", "0.01", "sd of the random weights"}},
     "layers randomized, top down", np_mprt, 0, run_smprt, NULL},
    {"efficient_mprt", "randomization", "entropy of the map's histogram on the fully randomized model over that on the "
     "trained one (Hedström et al. 2023)", 1, false,
     {{"bins", "100", "histogram bins"}, {"sigma", "0.01", "sd of the random weights"}}, NULL, NULL, 0, run_emprt, NULL},
    {"random_logit", "randomization", "SSIM of the maps for the predicted class and a random other class (Sixt et al. "
     "2020)", -1, false, {{NULL}}, NULL, NULL, 0, run_rlogit, NULL},
};
const int mt_nrandomization = (int)(sizeof mt_randomization / sizeof mt_randomization[0]);

/* ---- axiomatic ---- */

static void make_const(const mt_ctx *c, int64_t r, float *row, void *u) {
    (void)r;
    for (int64_t e = 0; e < c->row; e++) row[e] = *(const float *)u;
}

/* Completeness (Sundararajan et al. 2017): |sum of the map - (f(x) - f(baseline))|. */
static sal_status run_complete(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    float base = (float)c->p[0];
    for (int64_t q = 0; q < n; q++) {
        int64_t i = i0 + q;
        SAL_TRY(mt_forward(c, 1, make_const, &base, c->target[i], c->o->common.prob != 0, false, NULL));
        double s = 0;
        for (int64_t e = 0; e < c->row; e++) s += A[q * c->row + e];
        v[q] = fabs(s - ((double)c->y0[i] - c->scores[0]));
    }
    return SAL_OK;
}

typedef struct {
    const float *x;
    const int64_t *order;
    int64_t g;
    float base;
} nsctx;

static void make_ns(const mt_ctx *c, int64_t r, float *row, void *u) {
    const nsctx *s = u;
    memcpy(row, s->x, (size_t)c->row * sizeof *row);
    for (int64_t j = r * s->g; j < (r + 1) * s->g && j < c->HW; j++) mt_set(c, row, s->order[j], s->base);
}

/* Non-sensitivity (Nguyen & Martinez 2020): pixel groups where the map is zero (sum |a| <= eps) but
 * removing them changes the output by more than eps, or the reverse; their count. */
static sal_status run_nonsens(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    int64_t HW = c->HW, g = mt_count(c->p[2], 1), G = (HW + g - 1) / g;
    double *P = sal_malloc((size_t)HW * sizeof *P), eps = c->p[0];
    int64_t *order = sal_malloc((size_t)HW * sizeof *order);
    sal_status st = P && order ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t p = 0; p < HW && st == SAL_OK; p++) order[p] = p; /* groups in position order */
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        mt_plane(c, A + q * c->row, true, P);
        nsctx s = {.x = sal_f32(c->x) + i * c->row, .order = order, .g = g, .base = (float)c->p[1]};
        if ((st = mt_forward(c, G, make_ns, &s, c->target[i], c->o->common.prob != 0, false, NULL)) != SAL_OK) break;
        double bad = 0;
        for (int64_t r = 0; r < G; r++) {
            double a = 0;
            for (int64_t j = r * g; j < (r + 1) * g && j < HW; j++) a += P[j];
            bad += (a <= eps) != (fabs((double)c->y0[i] - c->scores[r]) <= eps);
        }
        v[q] = bad;
    }
    sal_free(P), sal_free(order);
    return st;
}

/* Input invariance (Kindermans et al. 2019) through the invariance audit, one sample at a time: the
 * largest difference of the maps of f1 at x and of f2 = f1 with its first layer absorbing a constant
 * shift at x + shift, relative to the largest |map| of f1. */
static sal_status run_invar(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)A, (void)cv;
    sal_tensor shift = {0};
    SAL_TRY(sal_tensor_alloc(&shift, SAL_F32, c->x->ndim - 1, c->x->dim + 1));
    for (int64_t e = 0; e < c->row; e++) sal_f32(&shift)[e] = (float)c->p[0];
    sal_status st = SAL_OK;
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        sal_tensor xb = au_rows(c->x, i0 + q, 1);
        sal_invariance_opts io = {.common = {.methods = c->meth, .nmethods = 1, .data = c->o->common.data,
                                             .seed = c->o->common.seed, .chunk = c->o->common.chunk,
                                             .prob = c->o->common.prob, .figure_sample = -1},
                                  .shift = &shift};
        sal_audit *a = NULL;
        if ((st = sal_audit_invariance(c->m, &xb, &io, &a)) != SAL_OK) break;
        if (sal_audit_skipped(a, 0)) st = sal_fail(SAL_ERR_UNSUPPORTED, "%s", sal_audit_verdict(a, 0) + strlen("skipped: "));
        else v[q] = sal_audit_metric(a, 0, "max_norm_diff");
        sal_audit_free(a);
    }
    sal_tensor_free(&shift);
    return st;
}

const mt_metric mt_axiomatic[] = {
    {"completeness", "axiomatic", "|sum of the map - (f(x) - f(baseline))| (Sundararajan et al. 2017)", -1, false,
     {{"baseline", "0", "the constant baseline image"}}, NULL, NULL, 0, run_complete, NULL},
    {"non_sensitivity", "axiomatic", "pixel groups whose zero relevance disagrees with the output's sensitivity to them "
     "(Nguyen & Martinez 2020)", -1, false,
     {{"eps", "1e-5", "what counts as zero"}, {"baseline", "0", "value removed pixels take"},
      {"features_in_step", "1", "pixels per group"}},
     NULL, NULL, 0, run_nonsens, NULL},
    {"input_invariance", "axiomatic", "largest normalized map difference between f1 at x and f2 at x + shift, f2 "
     "absorbing the shift (Kindermans et al. 2019; the invariance audit)", -1, false,
     {{"shift", "-1", "the constant shift"}}, NULL, NULL, 0, run_invar, NULL},
};
const int mt_naxiomatic = (int)(sizeof mt_axiomatic / sizeof mt_axiomatic[0]);
