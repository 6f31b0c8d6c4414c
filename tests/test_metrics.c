/* Evaluation metrics (docs/metrics.md) on closed-form cases: a linear model f(x) = W^T x + b, whose
 * gradient is W's column and whose gradient x input is exactly what removing a pixel to 0 takes
 * from the output; maps we choose through W; a model whose gradient ignores its weights. Each
 * expected value is derived here, independently of the metric's code. Then determinism under a
 * seed at any chunk and batch size, errors, and allocation failures. */
#include "audits/metric.h"
#include "testutil.h"

enum { S = 10, P = S * S };

/* x (N,1,S,S) -> Flatten -> Gemm(w (P,K), b) */
static sal_model *linear(const float *w, const float *b, int K) {
    sal_model *m = NULL;
    SAL_ASSERT(sal_graph_create("linear", &m) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(m, "x", SAL_F32, 4, (int64_t[]){-1, 1, S, S}) == SAL_OK);
    t_const(m, "w", 2, (int64_t[]){P, K}, w);
    t_const(m, "b", 1, (int64_t[]){K}, b);
    t_node(m, "Flatten", "flat", 1, (const char *[]){"x"}, "f", 0, NULL);
    t_node(m, "Gemm", "fc", 3, (const char *[]){"f", "w", "b"}, "y", 0, NULL);
    return t_finish(m, "y");
}

static sal_metric_result *run(const sal_model *m, const sal_tensor *x, const char *metric, const char *method,
                              int np, const char *const *params, const sal_tensor *masks) {
    sal_audit_method meth = {method, 0, NULL};
    sal_metric_opts o = {.common = {.methods = &meth, .nmethods = 1, .seed = 1}, .masks = masks, .nparams = np, .params = params};
    sal_metric_result *r = NULL;
    sal_status st = sal_metric_compute(m, x, metric, &o, &r);
    CHECK(st == SAL_OK, "%s with %s: %s", metric, method, sal_last_error());
    if (r && sal_metric_result_skipped(r, 0)) CHECK(0, "%s with %s skipped: %s", metric, method, sal_metric_result_skipped(r, 0));
    return r;
}

/* Every sample's value of metric with method is want (within tol). */
static void expect(const sal_model *m, const sal_tensor *x, const char *metric, const char *method, int np,
                   const char *const *params, const sal_tensor *masks, const double *want, double tol) {
    sal_metric_result *r = run(m, x, metric, method, np, params, masks);
    for (int64_t i = 0; r && i < x->dim[0]; i++) {
        double v = sal_metric_result_sample(r, 0, i);
        CHECK(fabs(v - want[i]) <= tol, "%s with %s, sample %lld: %.9g, want %.9g", metric, method, (long long)i, v, want[i]);
    }
    sal_metric_result_free(r);
}

static void expect_all(const sal_model *m, const sal_tensor *x, const char *metric, const char *method, int np,
                       const char *const *params, const sal_tensor *masks, double want, double tol) {
    double w[8];
    for (int i = 0; i < 8; i++) w[i] = want;
    expect(m, x, metric, method, np, params, masks, w, tol);
}

/* Faithfulness on f(x) = W^T x + b with gradient x input and baseline 0: removing a set S takes
 * exactly sum_S w x, the map's sum on S. Correlations are 1, infidelity 0; pixel flipping's curve
 * and selectivity's are f(x) minus the cumulated map in its own order. */
static void test_faithfulness_linear(void) {
    sal_rng r;
    sal_rng_seed(&r, 3);
    float w[P * 2], b[2] = {0.5f, -0.5f};
    for (int k = 0; k < P * 2; k++) w[k] = (float)sal_rng_normal(&r);
    sal_model *m = linear(w, b, 2);
    sal_tensor x = t_rand(&r, 4, (int64_t[]){3, 1, S, S}, 1.0f);
    expect_all(m, &x, "faithfulness_correlation", "gradient_x_input", 0, NULL, NULL, 1, 1e-5);
    expect_all(m, &x, "faithfulness_estimate", "gradient_x_input", 0, NULL, NULL, 1, 1e-5);
    expect_all(m, &x, "sensitivity_n", "gradient_x_input", 0, NULL, NULL, 1, 1e-5);
    expect_all(m, &x, "completeness", "gradient_x_input", 0, NULL, NULL, 0, 1e-4);
    sal_metric_result *res = run(m, &x, "infidelity", "gradient_x_input", 0, NULL, NULL);
    for (int i = 0; res && i < 3; i++)
        CHECK(sal_metric_result_sample(res, 0, i) < 1e-9, "infidelity %g", sal_metric_result_sample(res, 0, i));
    sal_metric_result_free(res);
    /* pixel flipping and selectivity: the curves from the map's own order */
    double pf[3], sel[3], cmp[3];
    for (int i = 0; i < 3; i++) {
        const float *xi = sal_f32(&x) + i * P;
        double y[2] = {b[0], b[1]}, a[P];
        for (int p = 0; p < P; p++) y[0] += w[p * 2] * xi[p], y[1] += w[p * 2 + 1] * xi[p];
        int t = y[1] > y[0];
        for (int p = 0; p < P; p++) a[p] = w[p * 2 + t] * xi[p];
        int ord[P];
        for (int p = 0; p < P; p++) ord[p] = p;
        for (int p = 0; p < P; p++) /* selection sort, descending, ties by position */
            for (int q = p + 1; q < P; q++)
                if (a[ord[q]] > a[ord[p]]) {
                    int s = ord[p];
                    ord[p] = ord[q], ord[q] = s;
                }
        double cur = y[t], prev = cur, auc = 0;
        for (int s = 1; s <= P; s++) cur -= a[ord[s - 1]], auc += (prev + cur) / 2, prev = cur;
        pf[i] = auc / P;
        /* selectivity: 2 x 2 tiles (patch=2), ranked by their sums */
        double ts[25] = {0};
        for (int p = 0; p < P; p++) ts[(p / S / 2) * 5 + (p % S) / 2] += a[p];
        int to[25];
        for (int k = 0; k < 25; k++) to[k] = k;
        for (int k = 0; k < 25; k++)
            for (int q = k + 1; q < 25; q++)
                if (ts[to[q]] > ts[to[k]]) {
                    int s = to[k];
                    to[k] = to[q], to[q] = s;
                }
        cur = prev = y[t], auc = 0;
        for (int k = 1; k <= 25; k++) cur -= ts[to[k - 1]], auc += (prev + cur) / 2, prev = cur;
        sel[i] = auc / 25;
        /* completeness of the plain gradient: |sum w - sum w x| */
        double sw = 0;
        for (int p = 0; p < P; p++) sw += w[p * 2 + t];
        cmp[i] = fabs(sw - (y[t] - b[t]));
    }
    expect(m, &x, "pixel_flipping", "gradient_x_input", 0, NULL, NULL, pf, 1e-4);
    expect(m, &x, "selectivity", "gradient_x_input", 1, (const char *[]){"patch=2"}, NULL, sel, 1e-4);
    expect(m, &x, "completeness", "gradient", 0, NULL, NULL, cmp, 1e-3);
    /* sensitivity-n of the gradient where x = -1 everywhere: the drop is -(the map's sum): -1 */
    for (int k = 0; k < 3 * P; k++) sal_f32(&x)[k] = -1;
    expect_all(m, &x, "sensitivity_n", "gradient", 0, NULL, NULL, -1, 1e-5);
    expect_all(m, &x, "faithfulness_correlation", "gradient", 0, NULL, NULL, -1, 1e-5);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Sufficiency: with f = (v^T x, -v^T x) the gradient's energy is |v| for either class, so every
 * sample neighbours every other; x = c v with c = 1, 2, -1 predicts classes 0, 0, 1: the two of
 * class 0 share their prediction with one neighbour of two, the third with none. */
static void test_sufficiency(void) {
    sal_rng r;
    sal_rng_seed(&r, 12);
    float w[P * 2], b[2] = {0, 0}, c[3] = {1, 2, -1};
    sal_tensor x = t_tensor_of(4, (int64_t[]){3, 1, S, S}, NULL);
    for (int p = 0; p < P; p++) {
        w[p * 2] = (float)sal_rng_normal(&r), w[p * 2 + 1] = -w[p * 2];
        for (int i = 0; i < 3; i++) sal_f32(&x)[i * P + p] = c[i] * w[p * 2];
    }
    sal_model *m = linear(w, b, 2);
    expect(m, &x, "sufficiency", "gradient", 0, NULL, NULL, (const double[]){0.5, 0.5, 0}, 0);
    /* a distance nobody is within: no neighbours, no value */
    sal_metric_result *res = run(m, &x, "sufficiency", "gradient", 1, (const char *[]){"distance=-1"}, NULL);
    CHECK(res && isnan(sal_metric_result_mean(res, 0)), "sufficiency without neighbours: %g", res ? sal_metric_result_mean(res, 0) : 0);
    sal_metric_result_free(res);
    sal_model_free(m);
    sal_tensor_free(&x);
}

/* Monotonicity and non-sensitivity on a linear model with chosen signs and zeros. */
static void test_monotonicity(void) {
    float w[P * 2] = {0}, b[2] = {100, 0};
    for (int p = 0; p < P; p++) w[p * 2] = 0.5f + (float)(p % 7);
    sal_model *m = linear(w, b, 2);
    sal_tensor x = t_tensor_of(4, (int64_t[]){2, 1, S, S}, NULL);
    for (int k = 0; k < 2 * P; k++) sal_f32(&x)[k] = 0.1f + (float)(k % 5); /* positive: every step adds */
    expect_all(m, &x, "monotonicity", "gradient_x_input", 0, NULL, NULL, 1, 0);
    /* gradient x input is zero exactly where the output ignores a pixel: no violation */
    expect_all(m, &x, "non_sensitivity", "gradient_x_input", 0, NULL, NULL, 0, 0);
    /* with negative pixels, the least relevant (most negative) go back first and lower the output */
    for (int k = 0; k < 2 * P; k += 3) sal_f32(&x)[k] = -1;
    expect_all(m, &x, "monotonicity", "gradient_x_input", 0, NULL, NULL, 0, 0);
    /* the gradient is w everywhere; where x = 0 removing the pixel changes nothing: one violation each */
    for (int k = 0; k < 2 * P; k++) sal_f32(&x)[k] = k % 4 == 0 ? 0 : 1;
    double nz[2] = {0, 0};
    for (int k = 0; k < 2 * P; k++) nz[k / P] += k % 4 == 0;
    expect(m, &x, "non_sensitivity", "gradient", 0, NULL, NULL, nz, 0);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Localization and complexity: the gradient of class 0 is W's first column, so we draw the map. */
static void test_localization_complexity(void) {
    float w[P * 2] = {0}, b[2] = {100, 0};
    sal_tensor x = t_tensor_of(4, (int64_t[]){1, 1, S, S}, NULL), mk = t_tensor_of(3, (int64_t[]){1, S, S}, NULL);
    for (int y = 2; y < 6; y++)
        for (int c = 3; c < 7; c++) sal_f32(&mk)[y * S + c] = 1, w[(y * S + c) * 2] = 1 + (float)c; /* inside */
    sal_model *m = linear(w, b, 2);
    const char *all1[] = {"relevance_mass_accuracy", "relevance_rank_accuracy", "attribution_localisation", "auc",
                          "energy_pointing_game", "weakly_supervised_localization"};
    for (size_t k = 0; k < sizeof all1 / sizeof all1[0]; k++) expect_all(m, &x, all1[k], "gradient", 0, NULL, &mk, 1, 1e-6);
    expect_all(m, &x, "top_k_intersection", "gradient", 1, (const char *[]){"k=8"}, &mk, 1, 0);
    expect_all(m, &x, "top_k_intersection", "gradient", 1, (const char *[]){"k=32"}, &mk, 0.5, 0); /* 16 of 32 */
    sal_model_free(m);
    /* half of |map| outside the mask (negative there): mass 0.5, positive share 1, box IoU 1/2 */
    for (int y = 2; y < 6; y++)
        for (int c = 3; c < 7; c++) w[(y * S + c) * 2] = 1;
    for (int y = 6; y < 10; y++)
        for (int c = 3; c < 7; c++) w[(y * S + c) * 2] = y < 8 ? -1 : 0;
    w[(8 * S + 3) * 2] = -8; /* 8 more below, as one pixel */
    m = linear(w, b, 2);
    expect_all(m, &x, "relevance_mass_accuracy", "gradient", 0, NULL, &mk, 16.0 / 32, 1e-6);
    expect_all(m, &x, "attribution_localisation", "gradient", 0, NULL, &mk, 1, 1e-6);
    /* AUC: the 16 inside (1) above the 75 zeros, below the 9 outside (1, 8): (16 * 76 + 0.5 * 16 * 8) / (16 * 84) */
    expect_all(m, &x, "auc", "gradient", 0, NULL, &mk, (16.0 * 75 + 0.5 * 16 * 8) / (16.0 * 84), 1e-9);
    sal_model_free(m);
    /* complexity: one-hot, then uniform */
    memset(w, 0, sizeof w);
    w[37 * 2] = 3;
    m = linear(w, b, 2);
    expect_all(m, &x, "sparseness", "gradient", 0, NULL, NULL, 1, 1e-9);
    expect_all(m, &x, "complexity", "gradient", 0, NULL, NULL, 0, 1e-12);
    expect_all(m, &x, "effective_complexity", "gradient", 0, NULL, NULL, 1, 0);
    sal_model_free(m);
    for (int p = 0; p < P; p++) w[p * 2] = p % 2 ? -2 : 2;
    m = linear(w, b, 2);
    expect_all(m, &x, "sparseness", "gradient", 0, NULL, NULL, 0, 1e-9);
    expect_all(m, &x, "complexity", "gradient", 0, NULL, NULL, log(P), 1e-9);
    expect_all(m, &x, "effective_complexity", "gradient", 0, NULL, NULL, P, 0);
    sal_model_free(m);
    /* a mask of another size than the input: refused, naming both shapes */
    sal_tensor bad = t_tensor_of(3, (int64_t[]){1, S, S - 1}, NULL);
    sal_audit_method g = {"gradient", 0, NULL};
    sal_metric_opts o = {.common = {.methods = &g, .nmethods = 1}, .masks = &bad};
    sal_metric_result *r = NULL;
    m = linear(w, b, 2);
    CHECK_FAILS(sal_metric_compute(m, &x, "auc", &o, &r), SAL_ERR_SHAPE, "masks (1,10,9) do not fit");
    o.masks = NULL;
    CHECK_FAILS(sal_metric_compute(m, &x, "auc", &o, &r), SAL_ERR_ARG, "needs masks");
    CHECK_FAILS(sal_metric_compute(m, &x, "nope", &o, &r), SAL_ERR_ARG, "unknown metric 'nope'");
    o.params = (const char *[]){"stepz=3"}, o.nparams = 1;
    CHECK_FAILS(sal_metric_compute(m, &x, "pixel_flipping", &o, &r), SAL_ERR_ARG, "steps, baseline");
    o.params = (const char *[]){"steps=many"};
    CHECK_FAILS(sal_metric_compute(m, &x, "pixel_flipping", &o, &r), SAL_ERR_ARG, "steps must be a number");
    sal_model_free(m);
    sal_tensor_free(&bad);
    sal_tensor_free(&x);
    sal_tensor_free(&mk);
}

/* f(x) = 0 * (W^T x) + sum_p v_p x_p, output (N, 3): the gradient is v for every class and every W,
 * so a method that reads only the gradient ignores the randomized weights and the class. */
static sal_model *weightless(void) {
    sal_rng r;
    sal_rng_seed(&r, 5);
    float w[P * 3], v[P], zero[3] = {0, 0, 0};
    for (int k = 0; k < P * 3; k++) w[k] = (float)sal_rng_normal(&r);
    for (int k = 0; k < P; k++) v[k] = (float)sal_rng_normal(&r);
    sal_model *m = NULL;
    SAL_ASSERT(sal_graph_create("weightless", &m) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(m, "x", SAL_F32, 4, (int64_t[]){-1, 1, S, S}) == SAL_OK);
    t_const(m, "w", 2, (int64_t[]){P, 3}, w);
    t_const(m, "b", 1, (int64_t[]){3}, (const float[]){0, 1, 2});
    t_const(m, "zero", 1, (int64_t[]){3}, zero);
    t_const(m, "v", 1, (int64_t[]){P}, v);
    sal_tensor ax = {0};
    SAL_ASSERT(sal_tensor_alloc(&ax, SAL_I64, 1, (int64_t[]){1}) == SAL_OK);
    ((int64_t *)ax.data)[0] = 1;
    SAL_ASSERT(sal_graph_add_const(m, "axes", &ax) == SAL_OK);
    t_node(m, "Flatten", "flat", 1, (const char *[]){"x"}, "f", 0, NULL);
    t_node(m, "Gemm", "fc", 3, (const char *[]){"f", "w", "b"}, "h", 0, NULL);
    t_node(m, "Mul", "mute", 2, (const char *[]){"h", "zero"}, "h0", 0, NULL);
    t_node(m, "Mul", "weigh", 2, (const char *[]){"f", "v"}, "fv", 0, NULL);
    t_node(m, "ReduceSum", "sum", 2, (const char *[]){"fv", "axes"}, "s", 0, NULL);
    t_node(m, "Add", "out", 2, (const char *[]){"h0", "s"}, "y", 0, NULL);
    return t_finish(m, "y");
}

static void test_randomization(void) {
    sal_rng r;
    sal_rng_seed(&r, 6);
    sal_model *m = weightless();
    sal_tensor x = t_rand(&r, 4, (int64_t[]){3, 1, S, S}, 1.0f);
    expect_all(m, &x, "smooth_mprt", "gradient", 1, (const char *[]){"samples=0"}, NULL, 1, 1e-9);
    expect_all(m, &x, "smooth_mprt", "gradient", 1, (const char *[]){"samples=3"}, NULL, 1, 1e-9);
    expect_all(m, &x, "efficient_mprt", "gradient", 0, NULL, NULL, 1, 1e-9);
    expect_all(m, &x, "random_logit", "gradient", 0, NULL, NULL, 1, 1e-9);
    /* the robustness of a map that does not move: 0 */
    const char *still[] = {"max_sensitivity", "avg_sensitivity", "local_lipschitz_estimate", "continuity",
                           "relative_output_stability"};
    for (size_t k = 0; k < sizeof still / sizeof still[0]; k++) expect_all(m, &x, still[k], "gradient", 0, NULL, NULL, 0, 0);
    sal_model_free(m);
    /* a model whose weights matter: gradient x input on a linear model is w x, and it changes */
    float w[P * 2], b[2] = {0, 0};
    for (int k = 0; k < P * 2; k++) w[k] = (float)sal_rng_normal(&r);
    m = linear(w, b, 2);
    sal_metric_result *res = run(m, &x, "smooth_mprt", "gradient", 1, (const char *[]){"samples=0"}, NULL);
    CHECK(res && sal_metric_result_mean(res, 0) < 0.5, "MPRT of a linear model's gradient: %g",
          res ? sal_metric_result_mean(res, 0) : NAN);
    sal_metric_result_free(res);
    /* relative input stability of gradient x input on a linear model: (a - a') / a = (x - x') / x: 1 */
    for (int k = 0; k < 3 * P; k++) sal_f32(&x)[k] = 1 + fabsf(sal_f32(&x)[k]);
    expect_all(m, &x, "relative_input_stability", "gradient_x_input", 0, NULL, NULL, 1, 1e-4);
    /* input invariance: the gradient of a linear model is its weights, shifted or not; gradient x
     * input is not (w (x + 1) against w x) */
    expect_all(m, &x, "input_invariance", "gradient", 0, NULL, NULL, 0, 1e-6);
    res = run(m, &x, "input_invariance", "gradient_x_input", 0, NULL, NULL);
    CHECK(res && sal_metric_result_mean(res, 0) > 0.3, "input invariance of gradient x input: %g",
          res ? sal_metric_result_mean(res, 0) : NAN);
    sal_metric_result_free(res);
    sal_model_free(m);
    sal_tensor_free(&x);
}

/* ROAD's noisy linear imputation (noise 0) of a linear ramp is the ramp itself at interior pixels.
 * Class 0 is w^T x with w on 50 interior pixels (the half removed at steps=1), class 1 is 2 w^T x -
 * c - e and class 2 is c - e with c = w^T ramp: class 0 stays on top only while |w^T x - c| < e. */
static void test_road(void) {
    float w[P * 3] = {0}, ramp[P];
    double c = 0;
    int n = 0;
    for (int p = 0; p < P; p++) {
        int y = p / S, q = p % S;
        ramp[p] = 1 + 0.1f * (float)y + 0.05f * (float)q;
        if (y > 0 && y < S - 1 && q > 0 && q < S - 1 && n < 50) w[p * 3] = 1 + 0.01f * (float)(n++), w[p * 3 + 1] = 2 * w[p * 3];
    }
    for (int p = 0; p < P; p++) c += (double)w[p * 3] * ramp[p];
    double e = 1e-3 * c;
    float b[3] = {0, (float)(-c - e), (float)(c - e)};
    sal_model *m = linear(w, b, 3);
    sal_tensor x = t_tensor_of(4, (int64_t[]){1, 1, S, S}, ramp);
    expect_all(m, &x, "road", "gradient", 2, (const char *[]){"steps=1", "noise=0"}, NULL, 1, 0);
    /* the same removal with noise moves the output far beyond e: the prediction falls */
    expect_all(m, &x, "road", "gradient", 2, (const char *[]){"steps=1", "noise=0.5"}, NULL, 0, 0);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Every sample's value does not depend on the chunk (rows per forward pass) or the batch (samples
 * per explanation call), for metrics that draw random numbers, on a small ReLU network: the draws
 * are the same, so the values agree to float rounding (a product of one row sums in another order
 * than one of many: core/blas.c), far below what one different draw would move them. */
static void test_determinism(void) {
    sal_rng r;
    sal_rng_seed(&r, 8);
    sal_model *m = NULL;
    SAL_ASSERT(sal_graph_create("mlp", &m) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(m, "x", SAL_F32, 4, (int64_t[]){-1, 1, S, S}) == SAL_OK);
    sal_tensor w1 = t_rand(&r, 2, (int64_t[]){P, 12}, 0.3f), w2 = t_rand(&r, 2, (int64_t[]){12, 3}, 0.5f);
    t_const(m, "w1", 2, w1.dim, sal_f32(&w1));
    t_const(m, "w2", 2, w2.dim, sal_f32(&w2));
    t_const(m, "b1", 1, (int64_t[]){12}, NULL);
    sal_tensor_free(&w1);
    sal_tensor_free(&w2);
    t_node(m, "Flatten", "flat", 1, (const char *[]){"x"}, "f", 0, NULL);
    t_node(m, "Gemm", "fc1", 3, (const char *[]){"f", "w1", "b1"}, "h", 0, NULL);
    t_node(m, "Relu", "relu", 1, (const char *[]){"h"}, "a", 0, NULL);
    t_node(m, "Gemm", "fc2", 2, (const char *[]){"a", "w2"}, "y", 0, NULL);
    m = t_finish(m, "y");
    sal_tensor x = t_rand(&r, 4, (int64_t[]){5, 1, S, S}, 1.0f);
    const char *metrics[] = {"faithfulness_correlation", "region_perturbation", "road", "max_sensitivity",
                             "relative_representation_stability", "smooth_mprt", "random_logit", "pixel_flipping"};
    /* chunks with a random method (its streams follow the sample's place in the call, so the batch
     * stays), and batches with a deterministic one */
    sal_audit_method sg = {"smoothgrad", 2, (const char *[]){"samples=4", "seed=3"}}, grad = {"gradient", 0, NULL};
    const struct {
        const sal_audit_method *m;
        int64_t chunk, batch;
    } cfg[] = {{&sg, 256, 16}, {&sg, 1, 16}, {&sg, 7, 16}, {&grad, 256, 16}, {&grad, 1, 1}, {&grad, 3, 2}};
    for (size_t k = 0; k < sizeof metrics / sizeof metrics[0]; k++) {
        double ref[5] = {0};
        for (int v = 0; v < 6; v++) {
            sal_metric_opts o = {.common = {.methods = cfg[v].m, .nmethods = 1, .seed = 4, .chunk = cfg[v].chunk,
                                            .batch = cfg[v].batch},
                                 .nparams = 1, .params = (const char *[]){"samples=3"}};
            if (strcmp(metrics[k], "max_sensitivity") && strcmp(metrics[k], "smooth_mprt") &&
                strcmp(metrics[k], "relative_representation_stability"))
                o.nparams = 0;
            sal_metric_result *res = NULL;
            CHECK_OK(sal_metric_compute(m, &x, metrics[k], &o, &res));
            for (int i = 0; res && i < 5; i++) {
                double val = sal_metric_result_sample(res, 0, i);
                if (v % 3 == 0) ref[i] = val;
                CHECK(val == ref[i] || (isnan(val) && isnan(ref[i])) || fabs(val - ref[i]) <= 1e-4 * fabs(ref[i]) + 1e-9,
                      "%s sample %d with %s: chunk %lld batch %lld gives %.17g, chunk 256 batch 16 %.17g", metrics[k], i,
                      cfg[v].m->name, (long long)cfg[v].chunk, (long long)cfg[v].batch, val, ref[i]);
            }
            CHECK(!res || isfinite(sal_metric_result_mean(res, 0)), "%s: mean %g", metrics[k], res ? sal_metric_result_mean(res, 0) : NAN);
            sal_metric_result_free(res);
        }
    }
    sal_audit_method meth = sg;
    /* JSON and CSV of one result */
    sal_metric_opts o = {.common = {.methods = &meth, .nmethods = 1, .seed = 4, .model_name = "mlp"},
                         .nparams = 1, .params = (const char *[]){"steps=4"}};
    sal_metric_result *res = NULL;
    char *js = NULL, *csv = NULL;
    CHECK_OK(sal_metric_compute(m, &x, "pixel_flipping", &o, &res));
    CHECK_OK(sal_metric_json(res, &js));
    CHECK_OK(sal_metric_csv(res, &csv));
    CHECK(js && strstr(js, "\"metric\": \"pixel_flipping\"") && strstr(js, "\"steps\": \"4\"") &&
          strstr(js, "\"curve\": [") && strstr(js, "\"per_sample\": [") && strstr(js, "\"better\": \"lower\""),
          "metric JSON:\n%s", js ? js : "");
    CHECK(csv && !strncmp(csv, "metric,label,sample,value\npixel_flipping,\"smoothgrad(samples=4,seed=3)\",0,", 74),
          "metric CSV:\n%s", csv ? csv : "");
    free(js);
    free(csv);
    sal_metric_result_free(res);
    /* allocation failures: an error, never a crash or a leak */
    for (long k = 1; k < 100000; k++) {
        sal_alloc_fail_after(k);
        res = NULL;
        o.nparams = 0;
        sal_status st = sal_metric_compute(m, &x, "region_perturbation", &o, &res);
        sal_alloc_fail_after(0);
        if (st == SAL_OK && res && !sal_metric_result_skipped(res, 0)) {
            sal_metric_result_free(res);
            break;
        }
        CHECK(st == SAL_ERR_NOMEM || (res && sal_metric_result_skipped(res, 0)), "allocation %ld: %s", k, sal_last_error());
        sal_metric_result_free(res);
    }
    sal_tensor_free(&x);
    sal_model_free(m);
}

int main(void) {
    test_faithfulness_linear();
    test_monotonicity();
    test_sufficiency();
    test_localization_complexity();
    test_randomization();
    test_road();
    test_determinism();
    return t_done("test_metrics");
}
