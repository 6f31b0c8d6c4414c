/* The black-box methods (LIME, KernelSHAP, RISE, Sobol), their segments and the fallback, through
 * the public sal_explain, against independent references:
 *   - a linear model: KernelSHAP (exact enumeration and sampled coalitions) and LIME without
 *     penalty give w_t . (x - baseline) summed over each segment, for every kind of baseline;
 *     K-lasso keeps the segments that matter; R^2 = 1;
 *   - a small nonlinear model: Shapley values by this file's own enumeration of every coalition
 *     (forward passes of the test) equal exact=true, and sampled KernelSHAP approaches them;
 *   - RISE on a model that reads one patch puts its maximum there; Sobol's total indices of an
 *     additive model are c_s^2 / sum c^2, and exactly 0 for a segment the model ignores;
 *   - the same seed gives the same bytes; chunks 1 and 5 agree to rounding; another seed differs;
 *   - input invariance on Kindermans et al.'s shifted twin with baseline=black, not with zero;
 *   - SLIC on images with known regions: segments never straddle a region edge, are connected and
 *     numbered 0 .. K-1; the other segment kinds by their definitions; a user's label file;
 *   - --fallback: a method without a rule for a node gives way to kernel_shap, said in the JSON;
 *   - bad parameters fail with one-line messages. */
#include "testutil.h"
#include "methods/segments.h"
#include "saliency.h"
#include <stdarg.h>

/* ---- models ---- */

static void gemm(sal_model *g, const char *in, const char *out, sal_tensor *w, sal_tensor *b, const char *name) {
    char wn[32], bn[32];
    snprintf(wn, sizeof wn, "%s.w", name);
    snprintf(bn, sizeof bn, "%s.b", name);
    SAL_ASSERT(sal_graph_add_const(g, wn, w) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, bn, b) == SAL_OK);
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", name, 3, (const char *[]){in, wn, bn}, out, 1, at);
}

static sal_tensor tens(int ndim, const int64_t *dim) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_F32, ndim, dim) == SAL_OK);
    return t;
}

/* (N, shape...) -> Flatten -> Gemm with the given weights W (K, D) and bias b (K). */
static sal_model *linear_model(int ndim, const int64_t *shape, int64_t K, const float *W, const float *b) {
    int64_t D = 1, dim[SAL_MAX_DIMS] = {-1};
    for (int d = 0; d < ndim; d++) D *= shape[d], dim[d + 1] = shape[d];
    sal_model *g;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, ndim + 1, dim) == SAL_OK);
    t_node(g, "Flatten", NULL, 1, (const char *[]){"x"}, "f", 0, NULL);
    sal_tensor w = tens(2, (int64_t[]){K, D}), bb = tens(1, (int64_t[]){K});
    memcpy(w.data, W, (size_t)(K * D) * sizeof(float));
    memcpy(bb.data, b, (size_t)K * sizeof(float));
    gemm(g, "f", "y", &w, &bb, "fc");
    return t_finish(g, "y");
}

/* (N, shape...) -> Flatten -> Gemm -> act -> Gemm -> Relu -> Gemm (3 outputs), weights from seed;
 * the first bias less W1 shift when shift != 0 (Kindermans et al.'s twin for inputs x + shift). */
static sal_model *mlp_shifted(int ndim, const int64_t *shape, const char *act, uint64_t seed, float shift) {
    sal_rng r;
    sal_rng_seed(&r, seed);
    int64_t D = 1, dim[SAL_MAX_DIMS] = {-1}, H = 16;
    for (int d = 0; d < ndim; d++) D *= shape[d], dim[d + 1] = shape[d];
    sal_model *g;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, ndim + 1, dim) == SAL_OK);
    t_node(g, "Flatten", NULL, 1, (const char *[]){"x"}, "f", 0, NULL);
    sal_tensor w1 = t_rand(&r, 2, (int64_t[]){H, D}, 2.0f / sqrtf((float)D)), b1 = t_rand(&r, 1, (int64_t[]){H}, 0.3f);
    for (int64_t h = 0; h < H && shift != 0; h++)
        for (int64_t e = 0; e < D; e++) sal_f32(&b1)[h] -= sal_f32(&w1)[h * D + e] * shift;
    gemm(g, "f", "h1", &w1, &b1, "fc1");
    t_node(g, act, NULL, 1, (const char *[]){"h1"}, "a1", 0, NULL);
    sal_tensor w2 = t_rand(&r, 2, (int64_t[]){H, H}, 1.5f / sqrtf((float)H)), b2 = t_rand(&r, 1, (int64_t[]){H}, 0.3f);
    gemm(g, "a1", "h2", &w2, &b2, "fc2");
    t_node(g, "Relu", NULL, 1, (const char *[]){"h2"}, "a2", 0, NULL);
    sal_tensor w3 = t_rand(&r, 2, (int64_t[]){3, H}, 1.0f / sqrtf((float)H)), b3 = t_rand(&r, 1, (int64_t[]){3}, 0.1f);
    gemm(g, "a2", "y", &w3, &b3, "fc3");
    return t_finish(g, "y");
}

static sal_model *mlp(int ndim, const int64_t *shape, const char *act, uint64_t seed) {
    return mlp_shifted(ndim, shape, act, seed, 0);
}

static sal_tensor uniform(sal_rng *r, int ndim, const int64_t *dim, float lo, float hi) {
    sal_tensor t = tens(ndim, dim);
    for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++) sal_f32(&t)[i] = lo + (hi - lo) * (float)sal_rng_uniform(r);
    return t;
}

/* ---- explaining ---- */

typedef struct {
    const sal_tensor *data;
    int64_t chunk, cls; /* cls < 0: the predicted class */
    const char *fallback;
} xopt;

static sal_explanation *explain_v(const sal_model *m, const sal_tensor *x, const char *method, xopt o, int np,
                                  va_list ap) {
    const char *params[16];
    for (int i = 0; i < np; i++) params[i] = va_arg(ap, const char *);
    int64_t cls = o.cls;
    sal_explain_opts eo = {.method = method, .nparams = np, .params = params, .data = o.data, .chunk = o.chunk,
                           .target = cls >= 0 ? SAL_TARGET_INDEX : SAL_TARGET_MAX, .classes = cls >= 0 ? &cls : NULL,
                           .nclasses = cls >= 0 ? 1 : 0, .fallback = o.fallback};
    sal_explanation *e = NULL;
    sal_status st = sal_explain(m, x, &eo, &e);
    CHECK(st == SAL_OK, "explain %s: %s", method, sal_last_error());
    return e;
}

static sal_explanation *explain(const sal_model *m, const sal_tensor *x, const char *method, xopt o, int np, ...) {
    va_list ap;
    va_start(ap, np);
    sal_explanation *e = explain_v(m, x, method, o, np, ap);
    va_end(ap);
    return e;
}

/* Fails with status and a message containing needle. */
static void explain_fails(const sal_model *m, const sal_tensor *x, const char *method, xopt o, sal_status want,
                          const char *needle, int np, ...) {
    const char *params[16];
    va_list ap;
    va_start(ap, np);
    for (int i = 0; i < np; i++) params[i] = va_arg(ap, const char *);
    va_end(ap);
    sal_explain_opts eo = {.method = method, .nparams = np, .params = params, .data = o.data, .fallback = o.fallback};
    sal_explanation *e = NULL;
    sal_status st = sal_explain(m, x, &eo, &e);
    CHECK(st == want && strstr(sal_last_error(), needle), "%s: wanted %s with '%s', got %s: %s", method,
          sal_status_string(want), needle, sal_status_string(st), sal_last_error());
    sal_explanation_free(e);
}

static double maxdiff(const float *a, const double *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* ---- the linear model: closed forms ---- */

enum { LC = 2, LH = 8, LW = 8, LD = LC * LH * LW, LK = 3, LN = 2 };

/* The expected map: element e of segment s gets sum over s's elements of w_t (x - base). */
static void linear_expect(const float *W, int64_t t, const float *x, const float *base, const int32_t *lab, int64_t M,
                          double *want) {
    double seg[LD] = {0};
    for (int64_t e = 0; e < LD; e++) seg[lab[e]] += (double)W[t * LD + e] * (x[e] - base[e]);
    for (int64_t e = 0; e < LD; e++) want[e] = seg[lab[e]];
    (void)M;
}

static void test_linear(void) {
    sal_rng r;
    sal_rng_seed(&r, 11);
    float W[LK * LD], b[LK] = {0.1f, -0.2f, 0.3f};
    t_randv(&r, W, LK * LD, 0.3f);
    sal_model *m = linear_model(3, (int64_t[]){LC, LH, LW}, LK, W, b);
    sal_tensor x = uniform(&r, 4, (int64_t[]){LN, LC, LH, LW}, 0, 1);
    sal_tensor data = uniform(&r, 4, (int64_t[]){5, LC, LH, LW}, -0.5f, 1.5f);
    /* patch:4 -> 2 x 2 patches of the 8 x 8 plane, shared by both channels */
    int32_t lab[LD];
    for (int64_t e = 0; e < LD; e++) lab[e] = (int32_t)(((e % 64) / LW / 4) * 2 + (e % LW) / 4);
    /* the baselines, computed here */
    float lo = INFINITY, mean[LD] = {0}, file[LD];
    for (int64_t i = 0; i < sal_tensor_numel(&data); i++) lo = fminf(lo, sal_f32(&data)[i]);
    for (int64_t i = 0; i < 5; i++)
        for (int64_t e = 0; e < LD; e++) mean[e] += sal_f32(&data)[i * LD + e] / 5;
    t_randv(&r, file, LD, 0.5f);
    sal_tensor ft = tens(3, (int64_t[]){LC, LH, LW});
    memcpy(ft.data, file, sizeof file);
    char fparam[600];
    snprintf(fparam, sizeof fparam, "baseline=%s", t_tmp("base.npy"));
    CHECK_OK(sal_npy_write(t_tmp("base.npy"), &ft));
    sal_tensor_free(&ft);
    static const char *const bases[] = {"baseline=zero", "baseline=black", "baseline=mean", NULL};
    for (int bi = 0; bi < 4; bi++) {
        const char *bp = bi < 3 ? bases[bi] : fparam;
        float base[LD];
        for (int64_t e = 0; e < LD; e++) base[e] = bi == 0 ? 0 : bi == 1 ? lo : bi == 2 ? mean[e] : file[e];
        xopt o = {.data = &data, .cls = 1};
        sal_explanation *ex = explain(m, &x, "kernel_shap", o, 2, bp, "segments=patch:4");
        sal_explanation *es = explain(m, &x, "kernel_shap", o, 4, bp, "segments=patch:4", "exact=false", "samples=40");
        sal_explanation *el = explain(m, &x, "lime", o, 4, bp, "segments=patch:4", "alpha=0", "samples=200");
        if (!ex || !es || !el) goto next;
        double worst[3] = {0};
        for (int64_t i = 0; i < LN; i++) {
            double want[LD];
            linear_expect(W, 1, sal_f32(&x) + i * LD, base, lab, 4, want);
            sal_explanation *all[3] = {ex, es, el};
            for (int k = 0; k < 3; k++)
                worst[k] = fmax(worst[k], maxdiff(sal_f32(sal_explanation_map(all[k])) + i * LD, want, LD));
        }
        CHECK(worst[0] < 1e-5, "%s: exact KernelSHAP misses w.(x - base) per segment by %g", bp, worst[0]);
        CHECK(worst[1] < 1e-4, "%s: sampled KernelSHAP misses w.(x - base) per segment by %g", bp, worst[1]);
        CHECK(worst[2] < 1e-4, "%s: LIME (alpha=0) misses the coefficients by %g", bp, worst[2]);
        CHECK(sal_explanation_metric(ex, "exact_samples") == LN && sal_explanation_metric(es, "exact_samples") == 0,
              "exact enumeration for 4 segments, sampling with exact=false");
        CHECK(sal_explanation_metric(ex, "efficiency_delta") < 1e-9 && sal_explanation_metric(es, "efficiency_delta") < 1e-9,
              "efficiency holds: %g %g", sal_explanation_metric(ex, "efficiency_delta"),
              sal_explanation_metric(es, "efficiency_delta"));
        CHECK(fabs(sal_explanation_metric(el, "r2") - 1) < 1e-6 && fabs(sal_explanation_metric(el, "r2_min") - 1) < 1e-6,
              "a linear model is fitted exactly: R^2 %g", sal_explanation_metric(el, "r2"));
    next:
        sal_explanation_free(ex), sal_explanation_free(es), sal_explanation_free(el);
    }

    /* a user's labels (any integers, any layout) and the blur baseline */
    int64_t lab_user[LD];
    int32_t lab_c[LD];
    static const int64_t names[7] = {-3, 0, 5, 9, 17, 40, 1000};
    for (int64_t e = 0; e < LD; e++) lab_c[e] = (int32_t)(sal_rng_u64(&r) % 7), lab_user[e] = names[lab_c[e]];
    sal_tensor lt = {0};
    CHECK_OK(sal_tensor_alloc(&lt, SAL_I64, 3, (int64_t[]){LC, LH, LW}));
    memcpy(lt.data, lab_user, sizeof lab_user);
    CHECK_OK(sal_npy_write(t_tmp("labels.npy"), &lt));
    sal_tensor_free(&lt);
    char sparam[600];
    snprintf(sparam, sizeof sparam, "segments=%s", t_tmp("labels.npy"));
    sal_tensor blur = tens(4, x.dim);
    CHECK_OK(sal_gauss_blur(sal_f32(&x), sal_f32(&blur), LN * LC, LH, LW, 1.0));
    sal_explanation *e1 = explain(m, &x, "kernel_shap", (xopt){.cls = 2}, 3, sparam, "baseline=blur", "sigma=1");
    sal_explanation *e2 = explain(m, &x, "lime", (xopt){.cls = 2}, 4, sparam, "baseline=blur", "sigma=1", "alpha=0");
    if (e1 && e2) {
        double w1 = 0, w2 = 0;
        for (int64_t i = 0; i < LN; i++) {
            double want[LD];
            linear_expect(W, 2, sal_f32(&x) + i * LD, sal_f32(&blur) + i * LD, lab_c, 7, want);
            w1 = fmax(w1, maxdiff(sal_f32(sal_explanation_map(e1)) + i * LD, want, LD));
            w2 = fmax(w2, maxdiff(sal_f32(sal_explanation_map(e2)) + i * LD, want, LD));
        }
        CHECK(w1 < 1e-5 && w2 < 1e-4, "label file + blur baseline: KernelSHAP off by %g, LIME by %g", w1, w2);
    }
    sal_explanation_free(e1), sal_explanation_free(e2);
    sal_tensor_free(&blur);

    /* K-lasso: only segments 1 and 5 of the user's labels matter; features=2 finds them */
    float W2[LK * LD];
    memcpy(W2, W, sizeof W2);
    for (int64_t e = 0; e < LD; e++)
        if (lab_c[e] != 1 && lab_c[e] != 5) W2[LD + e] = 0;
    sal_model *m2 = linear_model(3, (int64_t[]){LC, LH, LW}, LK, W2, b);
    sal_explanation *ek = explain(m2, &x, "lime", (xopt){.cls = 1}, 4, sparam, "features=2", "alpha=0", "samples=300");
    if (ek) {
        double w = 0;
        for (int64_t i = 0; i < LN; i++) {
            double want[LD];
            float zero[LD] = {0};
            linear_expect(W2, 1, sal_f32(&x) + i * LD, zero, lab_c, 7, want);
            w = fmax(w, maxdiff(sal_f32(sal_explanation_map(ek)) + i * LD, want, LD));
        }
        CHECK(w < 1e-4, "K-lasso keeps the two segments that matter, exactly: off by %g", w);
    }
    sal_explanation_free(ek);
    sal_model_free(m2);

    /* the JSON names every parameter and the checks */
    sal_explanation *ej = explain(m, &x, "lime", (xopt){.cls = 0}, 1, "samples=50");
    char *js = NULL;
    if (ej && sal_explanation_json(ej, &js) == SAL_OK) {
        CHECK(strstr(js, "\"kernel_width\": \"0.25\"") && strstr(js, "\"segments\": \"auto\"") && strstr(js, "\"r2\""),
              "LIME's JSON: %s", js);
        free(js);
    }
    sal_explanation_free(ej);
    sal_tensor_free(&x), sal_tensor_free(&data);
    sal_model_free(m);
}

/* ---- Shapley values of a nonlinear model: this file's enumeration ---- */

enum { SM = 10 };

/* phi of x (SM) against a zero baseline for class t: f on all 2^SM coalitions in one batch. */
static void shapley_by_hand(const sal_model *m, const float *x, int64_t t, double *phi) {
    int64_t n = (int64_t)1 << SM;
    sal_tensor in = tens(2, (int64_t[]){n, SM});
    for (int64_t S = 0; S < n; S++)
        for (int s = 0; s < SM; s++) sal_f32(&in)[S * SM + s] = (S >> s & 1) ? x[s] : 0.0f;
    sal_session *sess = NULL;
    SAL_ASSERT(sal_session_new(m, &sess) == SAL_OK);
    SAL_ASSERT(sal_exec_forward(sess, &in) == SAL_OK);
    const sal_tensor *y = &sess->act[m->output[0]];
    double fact[SM + 1] = {1};
    for (int k = 1; k <= SM; k++) fact[k] = fact[k - 1] * k;
    for (int i = 0; i < SM; i++) {
        phi[i] = 0;
        for (int64_t S = 0; S < n; S++) {
            if (S >> i & 1) continue;
            int s = __builtin_popcountll((unsigned long long)S);
            double w = fact[s] * fact[SM - s - 1] / fact[SM];
            phi[i] += w * ((double)sal_f32(y)[(S | (1 << i)) * 3 + t] - sal_f32(y)[S * 3 + t]);
        }
    }
    sal_session_free(sess);
    sal_tensor_free(&in);
}

static void test_convergence(void) {
    sal_model *m = mlp(1, (int64_t[]){SM}, "Tanh", 5);
    sal_rng r;
    sal_rng_seed(&r, 9);
    sal_tensor x = t_rand(&r, 2, (int64_t[]){1, SM}, 1.0f);
    double phi[SM], scale = 0;
    shapley_by_hand(m, sal_f32(&x), 0, phi);
    for (int s = 0; s < SM; s++) scale = fmax(scale, fabs(phi[s]));
    sal_explanation *e = explain(m, &x, "kernel_shap", (xopt){.cls = 0}, 1, "exact=true");
    if (e) {
        double d = maxdiff(sal_f32(sal_explanation_map(e)), phi, SM);
        CHECK(d < 1e-5 * (1 + scale), "exact=true against this file's enumeration: off by %g (scale %g)", d, scale);
    }
    sal_explanation_free(e);
    /* sampled coalitions: the error shrinks as they grow (fixed seed, so no luck involved) */
    static const char *const ns[] = {"samples=20", "samples=200", "samples=20000"};
    double err[3] = {0};
    for (int k = 0; k < 3; k++) {
        e = explain(m, &x, "kernel_shap", (xopt){.cls = 0}, 3, ns[k], "exact=false", "seed=4");
        err[k] = e ? maxdiff(sal_f32(sal_explanation_map(e)), phi, SM) / scale : INFINITY;
        sal_explanation_free(e);
    }
    printf("KernelSHAP relative error at 20, 200, 20000 coalitions: %.4f %.4f %.4f\n", err[0], err[1], err[2]);
    CHECK(err[2] < 0.02 && err[2] < err[1] && err[1] < err[0], "KernelSHAP converges to the Shapley values: %g %g %g",
          err[0], err[1], err[2]);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- RISE and Sobol ---- */

static void test_rise(void) {
    /* f_0 = sum of a 4 x 4 patch of a 16 x 16 image; class 1 reads nothing */
    enum { RH = 16, RD = RH * RH };
    float W[2 * RD] = {0}, b[2] = {0, 0};
    for (int y = 9; y < 13; y++)
        for (int q = 3; q < 7; q++) W[y * RH + q] = 1;
    sal_model *m = linear_model(3, (int64_t[]){1, RH, RH}, 2, W, b);
    sal_tensor x = tens(4, (int64_t[]){1, 1, RH, RH});
    for (int e = 0; e < RD; e++) sal_f32(&x)[e] = 1;
    sal_explanation *e = explain(m, &x, "rise", (xopt){.cls = 0}, 2, "masks=400", "cells=4");
    if (e) {
        const float *a = sal_f32(sal_explanation_map(e));
        int best = 0;
        double in = 0, out = 0;
        for (int k = 0; k < RD; k++) {
            if (a[k] > a[best]) best = k;
            if (W[k]) in += a[k] / 16;
            else out += a[k] / (RD - 16);
        }
        CHECK(best / RH >= 9 && best / RH < 13 && best % RH >= 3 && best % RH < 7,
              "RISE's maximum (%d, %d) lies on the patch the model reads", best / RH, best % RH);
        /* outside, E[f M(e)] / p = E[f] still: 16 p = 8 here */
        CHECK(in > out + 2 && fabs(out - 8) < 1, "RISE: the patch scores %g on average, elsewhere %g", in, out);
    }
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_model_free(m);
    /* (N, D): a model that reads element 5 of 20 */
    float W1[2 * 20] = {0};
    W1[5] = 1;
    m = linear_model(1, (int64_t[]){20}, 2, W1, b);
    x = tens(2, (int64_t[]){1, 20});
    for (int k = 0; k < 20; k++) sal_f32(&x)[k] = 1;
    e = explain(m, &x, "rise", (xopt){.cls = 0}, 1, "masks=400");
    if (e) {
        const float *a = sal_f32(sal_explanation_map(e));
        int best = 0;
        for (int k = 0; k < 20; k++) best = a[k] > a[best] ? k : best;
        CHECK(abs(best - 5) <= 1, "RISE on (N, D) peaks at %d, near element 5", best);
    }
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_model_free(m);
}

static void test_sobol(void) {
    /* additive in the 4 patches of an 8 x 8 image: contributions c = (2, 1, 0, -0.5) at x = 1 */
    enum { SH = 8, SD = SH * SH };
    static const double c[4] = {2, 1, 0, -0.5};
    float W[2 * SD] = {0}, b[2] = {0.5f, 0};
    for (int e = 0; e < SD; e++) {
        int s = (e / SH / 4) * 2 + (e % SH) / 4;
        W[e] = (float)(c[s] / 16);
    }
    sal_model *m = linear_model(3, (int64_t[]){1, SH, SH}, 2, W, b);
    sal_tensor x = tens(4, (int64_t[]){1, 1, SH, SH});
    for (int e = 0; e < SD; e++) sal_f32(&x)[e] = 1;
    sal_explanation *e = explain(m, &x, "sobol", (xopt){.cls = 0}, 2, "segments=patch:4", "designs=64");
    if (e) {
        const float *a = sal_f32(sal_explanation_map(e));
        double sum2 = 0, worst = 0;
        for (int s = 0; s < 4; s++) sum2 += c[s] * c[s];
        for (int k = 0; k < SD; k++) {
            int s = (k / SH / 4) * 2 + (k % SH) / 4;
            worst = fmax(worst, fabs(a[k] - c[s] * c[s] / sum2));
        }
        CHECK(worst < 0.05, "Sobol total indices of an additive model: c_s^2 / sum c^2 within %g", worst);
        CHECK(a[SH / 2 * SH] == 0, "a segment the model ignores has index exactly 0 (%g)", a[SH / 2 * SH]);
    }
    sal_explanation_free(e);
    /* a constant output depends on nothing */
    e = explain(m, &x, "sobol", (xopt){.cls = 1}, 1, "segments=patch:4");
    if (e) {
        double mx = 0;
        for (int k = 0; k < SD; k++) mx = fmax(mx, fabs(sal_f32(sal_explanation_map(e))[k]));
        CHECK(mx == 0, "Sobol of a constant output: all 0 (max %g)", mx);
    }
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- determinism ---- */

/* The same seed gives the same bytes; chunk 1 and 5 agree with the default chunk to float rounding
 * (the network's sums run in another order for another batch size) and another seed differs. */
static void test_determinism(void) {
    sal_model *m = mlp(3, (int64_t[]){1, 8, 8}, "Relu", 3);
    sal_rng r;
    sal_rng_seed(&r, 21);
    sal_tensor x = uniform(&r, 4, (int64_t[]){3, 1, 8, 8}, 0, 1);
    static const struct {
        const char *method, *p1, *p2;
        bool random;
    } ms[] = {{"lime", "samples=60", "segments=slic:10", true},
              {"lime", "samples=60", "features=3", true},
              {"kernel_shap", "samples=60", "exact=false", true},
              {"kernel_shap", "segments=patch:4", "exact=true", false},
              {"rise", "masks=50", "cells=3", true},
              {"sobol", "designs=8", "segments=grid:3", false}};
    for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++) {
        sal_explanation *ref = explain(m, &x, ms[k].method, (xopt){.cls = -1}, 3, ms[k].p1, ms[k].p2, "seed=7");
        if (!ref) continue;
        const sal_tensor *a = sal_explanation_map(ref);
        int64_t n = sal_tensor_numel(a);
        double scale = 1e-30;
        for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(sal_f32(a)[i]));
        sal_explanation *again = explain(m, &x, ms[k].method, (xopt){.cls = -1}, 3, ms[k].p1, ms[k].p2, "seed=7");
        CHECK(again && !memcmp(sal_f32(sal_explanation_map(again)), sal_f32(a), (size_t)n * sizeof(float)),
              "%s %s %s: the same seed, other bytes", ms[k].method, ms[k].p1, ms[k].p2);
        sal_explanation_free(again);
        static const int64_t chunks[] = {1, 5};
        for (int ci = 0; ci < 2; ci++) {
            sal_explanation *e = explain(m, &x, ms[k].method, (xopt){.cls = -1, .chunk = chunks[ci]}, 3, ms[k].p1,
                                         ms[k].p2, "seed=7");
            double d = 0;
            for (int64_t i = 0; e && i < n; i++) d = fmax(d, fabs(sal_f32(sal_explanation_map(e))[i] - sal_f32(a)[i]));
            CHECK(e && d < 1e-4 * scale, "%s %s %s: chunk %lld differs by %g (scale %g)", ms[k].method, ms[k].p1,
                  ms[k].p2, (long long)chunks[ci], d, scale);
            sal_explanation_free(e);
        }
        sal_explanation *o = explain(m, &x, ms[k].method, (xopt){.cls = -1}, 3, ms[k].p1, ms[k].p2, "seed=8");
        bool same = o && !memcmp(sal_f32(sal_explanation_map(o)), sal_f32(a), (size_t)n * sizeof(float));
        CHECK(same != ms[k].random, "%s %s %s: another seed %s", ms[k].method, ms[k].p1, ms[k].p2,
              ms[k].random ? "gives the same map" : "changes a deterministic map");
        sal_explanation_free(o);
        sal_explanation_free(ref);
    }
    sal_tensor_free(&x);
    sal_model_free(m);

    /* On a model whose arithmetic is exact (small integers in, weights of eighths), any batch size
     * computes the same outputs, so the draws alone decide: every chunk gives the same bytes. */
    float W[3 * 64], b[3] = {0, 0.5f, -1};
    for (int e = 0; e < 3 * 64; e++) W[e] = (float)((int)(sal_rng_u64(&r) % 17) - 8) / 8;
    m = linear_model(3, (int64_t[]){1, 8, 8}, 3, W, b);
    x = tens(4, (int64_t[]){2, 1, 8, 8});
    for (int e = 0; e < 128; e++) sal_f32(&x)[e] = (float)(sal_rng_u64(&r) % 5);
    static const char *const bb[][3] = {{"lime", "samples=40", "segments=patch:2"},
                                        {"kernel_shap", "samples=40", "segments=patch:2"}};
    for (int k = 0; k < 2; k++) {
        sal_explanation *ref = explain(m, &x, bb[k][0], (xopt){.cls = 1}, 3, bb[k][1], bb[k][2], "seed=3");
        for (int64_t ch = 1; ch <= 7 && ref; ch += 3) {
            sal_explanation *e = explain(m, &x, bb[k][0], (xopt){.cls = 1, .chunk = ch}, 3, bb[k][1], bb[k][2], "seed=3");
            CHECK(e && !memcmp(sal_f32(sal_explanation_map(e)), sal_f32(sal_explanation_map(ref)), 128 * sizeof(float)),
                  "%s: chunk %lld gives other bytes on an exact model", bb[k][0], (long long)ch);
            sal_explanation_free(e);
        }
        sal_explanation_free(ref);
    }
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- input invariance (Kindermans et al.) ---- */

/* A twin network whose first bias absorbs a shift of the input by -1 computes the same function;
 * with baseline=black (the data minimum moves with the data) every black-box method gives the same
 * map on x and x - 1; with baseline=zero LIME and KernelSHAP do not. */
static void test_invariance(void) {
    sal_model *m1 = mlp(3, (int64_t[]){1, 8, 8}, "Relu", 13), *m2 = mlp_shifted(3, (int64_t[]){1, 8, 8}, "Relu", 13, -1);
    sal_rng r;
    sal_rng_seed(&r, 6);
    sal_tensor x = uniform(&r, 4, (int64_t[]){2, 1, 8, 8}, 0, 1), xs = tens(4, x.dim);
    for (int e = 0; e < 128; e++) sal_f32(&xs)[e] = sal_f32(&x)[e] - 1;
    static const char *const ms[][2] = {{"lime", "samples=100"}, {"kernel_shap", "samples=100"}, {"rise", "masks=100"},
                                        {"sobol", "designs=8"}};
    for (int k = 0; k < 4; k++)
        for (int zero = 0; zero < 2; zero++) {
            if (zero && k >= 2) continue;
            const char *b = zero ? "baseline=zero" : "baseline=black";
            sal_explanation *e1 = explain(m1, &x, ms[k][0], (xopt){.cls = 1}, 2, ms[k][1], b);
            sal_explanation *e2 = explain(m2, &xs, ms[k][0], (xopt){.cls = 1}, 2, ms[k][1], b);
            double d = 0, mx = 1e-30;
            for (int e = 0; e1 && e2 && e < 128; e++) {
                d = fmax(d, fabs(sal_f32(sal_explanation_map(e1))[e] - sal_f32(sal_explanation_map(e2))[e]));
                mx = fmax(mx, fabs(sal_f32(sal_explanation_map(e1))[e]));
            }
            CHECK(e1 && e2 && (zero ? d > 0.1 * mx : d < 1e-4 * mx), "%s %s: the shifted twin's map differs by %g of %g",
                  ms[k][0], b, d, mx);
            sal_explanation_free(e1), sal_explanation_free(e2);
        }
    sal_tensor_free(&x), sal_tensor_free(&xs);
    sal_model_free(m1), sal_model_free(m2);
}

/* ---- segments ---- */

/* Whether every label is 4-connected, and labels are 0 .. k-1 with every one used. */
static bool connected(const int32_t *lab, int H, int W, int64_t k) {
    bool ok = true;
    int32_t *seen = calloc((size_t)k, sizeof *seen);
    int *stack = malloc(sizeof *stack * (size_t)(H * W)), *mark = calloc((size_t)(H * W), sizeof *mark);
    for (int p = 0; p < H * W && ok; p++) {
        if (lab[p] < 0 || lab[p] >= k) ok = false;
        else if (!mark[p]) {
            if (seen[lab[p]]++) ok = false; /* a second component of the same label */
            int top = 0;
            stack[top++] = p, mark[p] = 1;
            while (top) {
                int q = stack[--top], y = q / W, xx = q % W;
                int nb[4] = {y > 0 ? q - W : -1, y < H - 1 ? q + W : -1, xx > 0 ? q - 1 : -1, xx < W - 1 ? q + 1 : -1};
                for (int d = 0; d < 4; d++)
                    if (nb[d] >= 0 && !mark[nb[d]] && lab[nb[d]] == lab[q]) mark[nb[d]] = 1, stack[top++] = nb[d];
            }
        }
    }
    for (int64_t s = 0; s < k && ok; s++) ok = seen[s] == 1;
    free(seen), free(stack), free(mark);
    return ok;
}

static void test_slic(void) {
    /* three channels, four regions: quadrants of distinct colours plus a disc, noise on top */
    enum { H = 40, W = 48, P = 3 };
    static float img[P * H * W];
    static int region[H * W];
    sal_rng r;
    sal_rng_seed(&r, 2);
    static const float col[5][3] = {{0.1f, 0.2f, 0.3f}, {0.9f, 0.1f, 0.1f}, {0.2f, 0.8f, 0.2f}, {0.5f, 0.5f, 0.9f},
                                    {1.0f, 1.0f, 0.0f}};
    for (int y = 0; y < H; y++)
        for (int q = 0; q < W; q++) {
            int g = (y >= H / 2) * 2 + (q >= W / 3);
            if ((y - 20) * (y - 20) + (q - 30) * (q - 30) < 64) g = 4;
            region[y * W + q] = g;
            for (int p = 0; p < P; p++) img[(p * H + y) * W + q] = col[g][p] + 0.01f * (float)sal_rng_normal(&r);
        }
    static const int64_t ks[] = {4, 16, 60};
    for (int t = 0; t < 3; t++) {
        int32_t lab[H * W];
        int64_t k = 0;
        CHECK_OK(sal_slic(img, P, H, W, ks[t], 10, 1, lab, &k));
        int mixed = 0;
        int32_t *first = malloc(sizeof *first * (size_t)k);
        for (int64_t s = 0; s < k; s++) first[s] = -1;
        for (int e = 0; e < H * W; e++) {
            if (first[lab[e]] < 0) first[lab[e]] = region[e];
            else mixed += first[lab[e]] != region[e];
        }
        free(first);
        CHECK(connected(lab, H, W, k), "SLIC k=%lld: every segment one connected piece, labels 0..%lld", (long long)ks[t],
              (long long)k - 1);
        CHECK(k >= ks[t] / 2 && k <= 2 * ks[t] + 5, "SLIC asked for %lld segments gives %lld", (long long)ks[t], (long long)k);
        /* with 4 segments asked for, 5 regions cannot all be kept apart; from 16 on, they are */
        if (ks[t] >= 16) CHECK(mixed == 0, "SLIC k=%lld: %d elements in a segment across a region edge", (long long)ks[t], mixed);
    }
    /* one row: a step function splits at its steps */
    float row[100];
    for (int q = 0; q < 100; q++) row[q] = q < 37 ? 0.0f : q < 71 ? 1.0f : 0.4f;
    int32_t lab1[100];
    int64_t k1 = 0;
    CHECK_OK(sal_slic(row, 1, 1, 100, 10, 10, 1, lab1, &k1));
    int cross = 0;
    for (int q = 1; q < 100; q++) cross += lab1[q] == lab1[q - 1] && (q == 37 || q == 71);
    CHECK(cross == 0 && connected(lab1, 1, 100, k1) && k1 >= 5 && k1 <= 20, "SLIC on a row: %lld segments, %d across steps",
          (long long)k1, cross);
}

/* sal_segments_make for a parameter string on x. */
static sal_status segs(const sal_tensor *x, const char *spec, sal_segments *s) {
    const char *key[1] = {"segments"}, *val[1] = {spec};
    sal_xctx c = {.meth = sal_method_lookup("kernel_shap"), .x = x, .nkv = 1, .key = key, .val = val, .lo = 0, .hi = 1};
    return sal_segments_make(&c, s);
}

static void test_segment_kinds(void) {
    sal_tensor img = tens(4, (int64_t[]){2, 3, 6, 10}), seq = tens(3, (int64_t[]){1, 4, 9}), vec = tens(2, (int64_t[]){1, 7});
    sal_rng r;
    sal_rng_seed(&r, 3);
    for (int64_t i = 0; i < sal_tensor_numel(&img); i++) sal_f32(&img)[i] = (float)sal_rng_uniform(&r);
    sal_segments s = {0};
    CHECK_OK(segs(&img, "patch:4", &s));
    /* patches of 4 x 4 on 6 x 10: 2 x 3 patches, the last ones cut short; channels share them */
    bool ok = s.nseg[0] == 6 && s.nseg[1] == 6;
    for (int64_t e = 0; e < 180 && ok; e++) {
        int64_t y = (e % 60) / 10, q = e % 10;
        ok = s.label[e] == (y / 4) * 3 + q / 4 && s.label[180 + e] == s.label[e];
    }
    CHECK(ok, "patch:4 labels");
    sal_segments_free(&s);
    CHECK_OK(segs(&img, "patch:2x5", &s));
    CHECK(s.nseg[0] == 6 && s.label[9] == 1 && s.label[10] == 0 && s.label[20] == 2, "patch:2x5 labels");
    sal_segments_free(&s);
    CHECK_OK(segs(&img, "grid:3x2", &s));
    CHECK(s.nseg[0] == 6 && s.label[0] == 0 && s.label[5] == 1 && s.label[59] == 5, "grid:3x2 labels");
    sal_segments_free(&s);
    CHECK_OK(segs(&img, "pixel", &s));
    CHECK(s.nseg[0] == 60 && s.label[60 + 7] == 7, "pixel: one segment per position, all channels");
    sal_segments_free(&s);
    CHECK_OK(segs(&img, "element", &s));
    CHECK(s.nseg[0] == 180 && s.label[179] == 179, "element: one segment per element");
    sal_segments_free(&s);
    CHECK_OK(segs(&img, "axis:1", &s));
    CHECK(s.nseg[0] == 3 && s.label[0] == 0 && s.label[60] == 1 && s.label[179] == 2, "axis:1: one segment per channel");
    sal_segments_free(&s);
    CHECK_OK(segs(&img, "auto", &s));
    CHECK(s.nseg[0] > 5 && s.nseg[0] <= 60, "auto on images: SLIC (%lld segments)", (long long)s.nseg[0]);
    for (int64_t i = 0; i < 2; i++) CHECK(connected(s.label + i * 180, 6, 10, s.nseg[i]), "auto SLIC segments connected");
    sal_segments_free(&s);
    CHECK_OK(segs(&seq, "auto", &s));
    CHECK(s.nseg[0] == 9 && s.label[9 + 4] == 4, "auto on (N, C, L): one segment per position");
    sal_segments_free(&s);
    CHECK_OK(segs(&seq, "grid:3", &s));
    CHECK(s.nseg[0] == 3 && s.label[2] == 0 && s.label[3] == 1 && s.label[8] == 2, "grid:3 along L");
    sal_segments_free(&s);
    CHECK_OK(segs(&vec, "auto", &s));
    CHECK(s.nseg[0] == 7 && s.label[6] == 6, "auto on (N, D): one segment per feature");
    sal_segments_free(&s);
    /* a plane-shaped label file broadcast over channels */
    sal_tensor lt = {0};
    CHECK_OK(sal_tensor_alloc(&lt, SAL_I64, 2, (int64_t[]){6, 10}));
    for (int e = 0; e < 60; e++) ((int64_t *)lt.data)[e] = e < 30 ? 7 : 2;
    CHECK_OK(sal_npy_write(t_tmp("plane.npy"), &lt));
    char spec[600];
    snprintf(spec, sizeof spec, "%s", t_tmp("plane.npy"));
    CHECK_OK(segs(&img, spec, &s));
    CHECK(s.nseg[0] == 2 && s.label[0] == 1 && s.label[59] == 0 && s.label[60] == 1 && s.label[179] == 0,
          "a plane of labels, compacted in order and shared by the channels");
    sal_segments_free(&s);
    sal_tensor_free(&lt);
    /* refusals */
    CHECK_FAILS(segs(&img, "slic", &s), SAL_ERR_ARG, "segments=slic must be auto, slic:K");
    CHECK_FAILS(segs(&img, "patch:0", &s), SAL_ERR_ARG, "segments=patch:0");
    CHECK_FAILS(segs(&seq, "patch:2x3", &s), SAL_ERR_ARG, "one spatial axis");
    CHECK_FAILS(segs(&img, "axis:4", &s), SAL_ERR_ARG, "axes 1 to 3");
    sal_tensor bad = tens(2, (int64_t[]){5, 5});
    memset(bad.data, 0, 25 * sizeof(float));
    sal_f32(&bad)[3] = 0.5f;
    CHECK_OK(sal_npy_write(t_tmp("bad.npy"), &bad));
    snprintf(spec, sizeof spec, "%s", t_tmp("bad.npy"));
    CHECK_FAILS(segs(&img, spec, &s), SAL_ERR_SHAPE, "needs the input's shape");
    CHECK_FAILS(segs(&vec, spec, &s), SAL_ERR_SHAPE, "has shape (5,5)");
    sal_tensor_free(&bad);
    bad = tens(1, (int64_t[]){7});
    memset(bad.data, 0, 7 * sizeof(float));
    sal_f32(&bad)[3] = 0.5f;
    CHECK_OK(sal_npy_write(t_tmp("frac.npy"), &bad));
    snprintf(spec, sizeof spec, "%s", t_tmp("frac.npy"));
    CHECK_FAILS(segs(&vec, spec, &s), SAL_ERR_ARG, "element 3 is 0.5, not an integer label");
    sal_tensor_free(&bad);
    sal_tensor_free(&img), sal_tensor_free(&seq), sal_tensor_free(&vec);
}

/* ---- the fallback ---- */

static void test_fallback(void) {
    /* Exp between two layers: LRP has no rule for it */
    sal_rng r;
    sal_rng_seed(&r, 4);
    sal_model *g;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 6}) == SAL_OK);
    sal_tensor w1 = t_rand(&r, 2, (int64_t[]){8, 6}, 0.4f), b1 = t_rand(&r, 1, (int64_t[]){8}, 0.1f);
    sal_tensor w2 = t_rand(&r, 2, (int64_t[]){3, 8}, 0.4f), b2 = t_rand(&r, 1, (int64_t[]){3}, 0.1f);
    gemm(g, "x", "h", &w1, &b1, "fc1");
    t_node(g, "Exp", "exp", 1, (const char *[]){"h"}, "a", 0, NULL);
    gemm(g, "a", "y", &w2, &b2, "fc2");
    sal_model *m = t_finish(g, "y");
    sal_tensor x = t_rand(&r, 2, (int64_t[]){2, 6}, 1.0f);
    explain_fails(m, &x, "lrp_epsilon", (xopt){0}, SAL_ERR_UNSUPPORTED, "no rule for Exp", 0);
    sal_explanation *e = explain(m, &x, "lrp_epsilon", (xopt){.cls = -1, .fallback = "kernel_shap"}, 2, "epsilon=0.01",
                                 "fallback.samples=100");
    sal_explanation *d = explain(m, &x, "kernel_shap", (xopt){.cls = -1}, 1, "samples=100");
    if (e && d) {
        CHECK(!strcmp(sal_explanation_method(e), "kernel_shap") && sal_explanation_fallback(e) &&
                  strstr(sal_explanation_fallback(e), "no rule for Exp"),
              "the fallback explained, and says why: %s", sal_explanation_fallback(e) ? sal_explanation_fallback(e) : "-");
        CHECK(!memcmp(sal_f32(sal_explanation_map(e)), sal_f32(sal_explanation_map(d)), 12 * sizeof(float)),
              "the fallback's map is kernel_shap's with the fallback.* parameters");
        char *js = NULL;
        if (sal_explanation_json(e, &js) == SAL_OK) {
            CHECK(strstr(js, "\"method\": \"kernel_shap\"") && strstr(js, "\"replaced\": \"lrp_epsilon\"") &&
                      strstr(js, "\"samples\": \"100\"") && strstr(js, "no rule for Exp"),
                  "the JSON records the fallback: %s", js);
            free(js);
        }
    }
    sal_explanation_free(e), sal_explanation_free(d);
    /* a method that runs needs no fallback */
    e = explain(m, &x, "gradient", (xopt){.cls = -1, .fallback = "rise"}, 0);
    CHECK(e && !strcmp(sal_explanation_method(e), "gradient") && !sal_explanation_fallback(e),
          "no fallback when the method runs");
    sal_explanation_free(e);
    explain_fails(m, &x, "lrp_epsilon", (xopt){.fallback = "gradient"}, SAL_ERR_ARG,
                  "fallback 'gradient' must be a method that needs forward passes only: occlusion, ism, lime", 0);
    explain_fails(m, &x, "lrp_epsilon", (xopt){.fallback = "kernel_shap"}, SAL_ERR_ARG,
                  "method kernel_shap has no parameter 'bogus'", 1, "fallback.bogus=1");
    explain_fails(m, &x, "lrp_epsilon", (xopt){0}, SAL_ERR_ARG, "has no parameter 'fallback.samples'", 1,
                  "fallback.samples=3");
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- refusals ---- */

static void test_errors(void) {
    sal_model *m = mlp(3, (int64_t[]){1, 8, 8}, "Relu", 3);
    sal_rng r;
    sal_rng_seed(&r, 1);
    sal_tensor x = uniform(&r, 4, (int64_t[]){1, 1, 8, 8}, 0, 1);
    xopt o = {0};
    explain_fails(m, &x, "kernel_shap", o, SAL_ERR_ARG, "exact=true enumerates 2^M coalitions", 2, "segments=pixel",
                  "exact=true");
    /* 10 coalitions cannot determine 64 values: the smallest that fit, efficiency still exact */
    sal_explanation *e = explain(m, &x, "kernel_shap", (xopt){.cls = 0}, 2, "segments=pixel", "samples=10");
    CHECK(e && sal_explanation_metric(e, "underdetermined_samples") == 1 &&
              sal_explanation_metric(e, "efficiency_delta") < 1e-9,
          "too few coalitions: underdetermined %g, efficiency off by %g", e ? sal_explanation_metric(e, "underdetermined_samples") : -1,
          e ? sal_explanation_metric(e, "efficiency_delta") : -1);
    sal_explanation_free(e);
    explain_fails(m, &x, "kernel_shap", o, SAL_ERR_ARG, "exact=maybe must be one of: auto, true, false", 1, "exact=maybe");
    sal_model *m24 = mlp(3, (int64_t[]){1, 24, 24}, "Relu", 3);
    sal_tensor x24 = uniform(&r, 4, (int64_t[]){1, 1, 24, 24}, 0, 1);
    explain_fails(m24, &x24, "sobol", o, SAL_ERR_ARG, "576 segments need a 1152-dimensional design", 1, "segments=pixel");
    sal_tensor_free(&x24);
    sal_model_free(m24);
    explain_fails(m, &x, "lime", o, SAL_ERR_ARG, "baseline=mean needs reference data", 1, "baseline=mean");
    explain_fails(m, &x, "rise", o, SAL_ERR_ARG, "p=0 must be a number", 1, "p=0");
    explain_fails(m, &x, "lime", o, SAL_ERR_ARG, "segments=grid must be auto", 1, "segments=grid");
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- Sobol' points for the Python comparison with SciPy ---- */

static void test_sobol_points(void) {
    /* the first points of the first dimensions, as Joe and Kuo's table and Gray-code order give */
    double p[8 * 3];
    CHECK_OK(sal_sobol_points(3, 8, p));
    static const double want[8 * 3] = {0, 0, 0, 0.5, 0.5, 0.5, 0.75, 0.25, 0.25, 0.25, 0.75, 0.75,
                                       0.375, 0.375, 0.625, 0.875, 0.875, 0.125, 0.625, 0.125, 0.875, 0.125, 0.625, 0.375};
    double d = 0;
    for (int k = 0; k < 24; k++) d = fmax(d, fabs(p[k] - want[k]));
    CHECK(d == 0, "the first 8 Sobol' points in 3 dimensions (off by %g)", d);
    CHECK_FAILS(sal_sobol_points(1025, 1, p), SAL_ERR_ARG, "1 to 1024");
}

int main(void) {
    t_scratch_make("sal_blackbox");
    test_linear();
    test_convergence();
    test_rise();
    test_sobol();
    test_determinism();
    test_invariance();
    test_slic();
    test_segment_kinds();
    test_fallback();
    test_errors();
    test_sobol_points();
    t_scratch_remove();
    return t_done("test_methods_blackbox");
}
