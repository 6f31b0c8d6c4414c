/* Integrated gradients, SmoothGrad, occlusion and gradient SHAP through the public sal_explain:
 * closed forms on linear and polynomial models, completeness on a ReLU MLP, direct loops of
 * forward passes, determinism by seed, chunk independence, input-shift invariance (Kindermans et
 * al.) and clear errors for bad parameters. */
#include "testutil.h"
#include <stdarg.h>
#include <unistd.h>

/* ---- models ---- */

static sal_tensor mat(sal_rng *r, int64_t a, int64_t b, float scale) {
    return t_rand(r, b ? 2 : 1, b ? (int64_t[]){a, b} : (int64_t[]){a}, scale);
}

static void gemm(sal_model *g, const char *in, const char *out, sal_tensor *w, sal_tensor *b, const char *name) {
    char wn[32], bn[32];
    snprintf(wn, sizeof wn, "%s.w", name);
    snprintf(bn, sizeof bn, "%s.b", name);
    SAL_ASSERT(sal_graph_add_const(g, wn, w) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, bn, b) == SAL_OK);
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    SAL_ASSERT(sal_graph_add_node(g, "Gemm", name, 3, (const char *[]){in, wn, bn}, 1, (const char *[]){out}, 1, at) ==
               SAL_OK);
}

static void unary(sal_model *g, const char *op, const char *in, const char *out) {
    SAL_ASSERT(sal_graph_add_node(g, op, NULL, 1, (const char *[]){in}, 1, (const char *[]){out}, 0, NULL) == SAL_OK);
}

/* y = x W^T + b on (N, D) inputs; W and b are copied into the model. */
static sal_model *linear_model(const sal_tensor *W, const sal_tensor *b) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, W->dim[1]}) == SAL_OK);
    sal_tensor w = {0}, bb = {0};
    SAL_ASSERT(sal_tensor_copy(&w, W) == SAL_OK && sal_tensor_copy(&bb, b) == SAL_OK);
    gemm(g, "x", "y", &w, &bb, "fc");
    return t_finish(g, "y");
}

/* (N, shape...) -> Flatten -> [Gemm -> Relu ->] Gemm; weights drawn from seed; b1 shifted by
 * -W1 m when m is given (the Kindermans et al. construction of a shifted twin network). */
static sal_model *mlp(int ndim, const int64_t *shape, int64_t hidden, int64_t K, uint64_t seed, const float *m) {
    sal_rng r;
    sal_rng_seed(&r, seed);
    int64_t D = 1;
    int64_t dim[SAL_MAX_DIMS] = {-1};
    for (int d = 0; d < ndim; d++) D *= shape[d], dim[d + 1] = shape[d];
    sal_model *g;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, ndim + 1, dim) == SAL_OK);
    unary(g, "Flatten", "x", "f");
    sal_tensor w1 = mat(&r, hidden, D, 1.5f / sqrtf((float)D)), b1 = mat(&r, hidden, 0, 0.3f);
    if (m)
        for (int64_t h = 0; h < hidden; h++)
            for (int64_t e = 0; e < D; e++) sal_f32(&b1)[h] -= sal_f32(&w1)[h * D + e] * m[e];
    gemm(g, "f", "h1", &w1, &b1, "fc1");
    unary(g, "Relu", "h1", "a1");
    sal_tensor w2 = mat(&r, hidden, hidden, 1.5f / sqrtf((float)hidden)), b2 = mat(&r, hidden, 0, 0.3f);
    gemm(g, "a1", "h2", &w2, &b2, "fc2");
    unary(g, "Relu", "h2", "a2");
    sal_tensor w3 = mat(&r, K, hidden, 1.0f / sqrtf((float)hidden)), b3 = mat(&r, K, 0, 0.1f);
    gemm(g, "a2", "y", &w3, &b3, "fc3");
    return t_finish(g, "y");
}

/* y = x^p on (N, 1) inputs, as a chain of Mul nodes: its IG integrand p (alpha x)^(p-1) x is a
 * polynomial in alpha, which tells the quadrature rules apart exactly. */
static sal_model *power_model(int p) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 1}) == SAL_OK);
    char prev[16] = "x", cur[16];
    for (int k = 2; k <= p; k++) {
        snprintf(cur, sizeof cur, "p%d", k);
        SAL_ASSERT(sal_graph_add_node(g, "Mul", NULL, 2, (const char *[]){prev, "x"}, 1, (const char *[]){cur}, 0,
                                      NULL) == SAL_OK);
        memcpy(prev, cur, sizeof prev);
    }
    return t_finish(g, prev);
}

/* ---- explaining ---- */

typedef struct {
    const sal_tensor *data;
    double lo, hi;
    int64_t chunk, cls; /* cls < 0: the predicted class */
} xopt;

static sal_explanation *explain(const sal_model *m, const sal_tensor *x, const char *method, xopt o, int np, ...) {
    const char *params[16];
    va_list ap;
    va_start(ap, np);
    for (int i = 0; i < np; i++) params[i] = va_arg(ap, const char *);
    va_end(ap);
    int64_t cls = o.cls;
    sal_explain_opts eo = {.method = method,
                           .nparams = np,
                           .params = params,
                           .data = o.data,
                           .data_lo = o.lo,
                           .data_hi = o.hi,
                           .chunk = o.chunk,
                           .target = cls >= 0 ? SAL_TARGET_INDEX : SAL_TARGET_MAX,
                           .classes = cls >= 0 ? &cls : NULL,
                           .nclasses = cls >= 0 ? 1 : 0};
    sal_explanation *e = NULL;
    sal_status st = sal_explain(m, x, &eo, &e);
    CHECK(st == SAL_OK, "explain %s: %s", method, sal_last_error());
    return e;
}

/* The status and message of a failing explanation. */
static sal_status explain_fails(const sal_model *m, const sal_tensor *x, const char *method, const sal_tensor *data,
                                int np, const char *const *params) {
    sal_explain_opts eo = {.method = method, .nparams = np, .params = params, .data = data};
    sal_explanation *e = NULL;
    sal_status st = sal_explain(m, x, &eo, &e);
    sal_explanation_free(e);
    return st;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static double max_abs(const float *a, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i]));
    return d;
}

static const float *map(const sal_explanation *e) { return sal_f32(sal_explanation_map(e)); }

/* Model output y[i, t] by a plain forward pass. */
static double output(const sal_model *m, const sal_tensor *x, int64_t i, int64_t t) {
    sal_session *s;
    const sal_tensor *y;
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    SAL_ASSERT(sal_forward(s, 1, x, &y) == SAL_OK);
    double v = sal_f32(y)[i * y->dim[1] + t];
    sal_session_free(s);
    return v;
}

static const char *k_rules[] = {"riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid",
                                "gauss_legendre"};

/* x (N,2,10,10) -> Conv 3x3 -> BatchNormalization -> Mul 0.7 -> Relu -> MaxPool 2x2 -> Conv 3x3
 * -> Relu -> Flatten -> Gemm (4): an affine head of three nodes before the first ReLU; without bn,
 * the first Conv alone, its ReLU fused into it (the small CNN's order). */
static sal_model *small_cnn(uint64_t seed, bool bn) {
    sal_rng r;
    sal_rng_seed(&r, seed);
    sal_model *g;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 2, 10, 10}) == SAL_OK);
    const char *names[] = {"w1", "b1", "sc", "sh", "mu", "var", "w2", "k", "f", "fb"};
    sal_tensor t[] = {t_rand(&r, 4, (int64_t[]){8, 2, 3, 3}, 0.4f), t_rand(&r, 1, (int64_t[]){8}, 0.2f),
                      t_rand(&r, 1, (int64_t[]){8}, 1), t_rand(&r, 1, (int64_t[]){8}, 0.3f),
                      t_rand(&r, 1, (int64_t[]){8}, 0.2f), t_rand(&r, 1, (int64_t[]){8}, 0.2f),
                      t_rand(&r, 4, (int64_t[]){16, 8, 3, 3}, 0.2f), t_rand(&r, 1, (int64_t[]){1}, 0),
                      t_rand(&r, 2, (int64_t[]){4, 16 * 25}, 0.1f), t_rand(&r, 1, (int64_t[]){4}, 0.1f)};
    for (int e = 0; e < 8; e++) sal_f32(&t[5])[e] = 0.5f + fabsf(sal_f32(&t[5])[e]); /* variances */
    sal_f32(&t[7])[0] = 0.7f;
    for (int i = 0; i < 10; i++) {
        if (bn || i < 2 || i == 6 || i >= 8) /* w1, b1, w2, f, fb: the net without BatchNormalization */
            SAL_ASSERT(sal_graph_add_const(g, names[i], &t[i]) == SAL_OK);
        else sal_tensor_free(&t[i]);
    }
    sal_attr pad[2] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1}),
                       sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    sal_attr mp[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Conv", "c1", 3, (const char *[]){"x", "w1", "b1"}, "h1", 1, pad);
    if (bn) {
        t_node(g, "BatchNormalization", "bn", 5, (const char *[]){"h1", "sc", "sh", "mu", "var"}, "n1", 0, NULL);
        t_node(g, "Mul", "scale", 2, (const char *[]){"n1", "k"}, "s1", 0, NULL);
    }
    t_node(g, "Relu", "r1", 1, (const char *[]){bn ? "s1" : "h1"}, "a1", 0, NULL);
    t_node(g, "MaxPool", "mp", 1, (const char *[]){"a1"}, "p1", 2, mp);
    t_node(g, "Conv", "c2", 2, (const char *[]){"p1", "w2"}, "h2", 1, pad + 1);
    t_node(g, "Relu", "r2", 1, (const char *[]){"h2"}, "a2", 0, NULL);
    t_node(g, "Flatten", "fl", 1, (const char *[]){"a2"}, "v", 0, NULL);
    t_node(g, "Gemm", "fc", 3, (const char *[]){"v", "f", "fb"}, "y", 1, tb);
    return t_finish(g, "y");
}

/* ---- integrated gradients ---- */

/* A linear model's gradient is constant, so every rule gives w_t (x - x0) whatever the steps. */
static void test_ig_linear(void) {
    sal_rng r;
    sal_rng_seed(&r, 11);
    int64_t N = 4, D = 6, K = 3, t = 1;
    sal_tensor W = mat(&r, K, D, 1), b = mat(&r, K, 0, 1), x = mat(&r, N, D, 1);
    sal_model *m = linear_model(&W, &b);
    const float *w = sal_f32(&W) + t * D, *xp = sal_f32(&x);
    float want[24];
    for (int64_t i = 0; i < N * D; i++) want[i] = w[i % D] * xp[i];
    for (int k = 0; k < 5; k++)
        for (int steps = 1; steps <= 50; steps += 24) {
            if (k == 3 && steps == 1) continue;
            char rp[64], sp[32];
            snprintf(rp, sizeof rp, "rule=%s", k_rules[k]);
            snprintf(sp, sizeof sp, "steps=%d", steps);
            sal_explanation *e = explain(m, &x, "integrated_gradients", (xopt){.cls = t}, 2, rp, sp);
            if (!e) continue;
            double d = max_diff(map(e), want, N * D);
            CHECK(d < 1e-5, "IG %s steps %d on a linear model differs from w (x - 0) by %g", k_rules[k], steps, d);
            CHECK(sal_explanation_metric(e, "completeness_delta") < 1e-4,
                  "IG %s completeness delta %g on a linear model", k_rules[k],
                  sal_explanation_metric(e, "completeness_delta"));
            sal_explanation_free(e);
        }
    /* many Gauss-Legendre nodes: the weights still sum to one */
    sal_explanation *e =
        explain(m, &x, "integrated_gradients", (xopt){.cls = t, .chunk = 256}, 2, "steps=1000", "rule=gauss_legendre");
    if (e)
        CHECK(max_diff(map(e), want, N * D) < 1e-4, "IG with 1000 Gauss-Legendre nodes: %g",
              max_diff(map(e), want, N * D));
    sal_explanation_free(e);

    /* black baseline: every element is the data minimum */
    sal_tensor data = mat(&r, 5, D, 1);
    double lo = INFINITY;
    for (int64_t i = 0; i < 5 * D; i++) lo = fmin(lo, sal_f32(&data)[i]);
    for (int64_t i = 0; i < N * D; i++) want[i] = w[i % D] * (float)(xp[i] - lo);
    e = explain(m, &x, "integrated_gradients", (xopt){.cls = t, .data = &data}, 1, "baseline=black");
    if (e)
        CHECK(max_diff(map(e), want, N * D) < 1e-5, "black baseline is not the data minimum %g: off by %g", lo,
              max_diff(map(e), want, N * D));
    sal_explanation_free(e);
    /* a given range wins over the data */
    for (int64_t i = 0; i < N * D; i++) want[i] = w[i % D] * (xp[i] + 2.5f);
    e = explain(m, &x, "integrated_gradients", (xopt){.cls = t, .data = &data, .lo = -2.5, .hi = 3}, 1,
                "baseline=black");
    if (e)
        CHECK(max_diff(map(e), want, N * D) < 1e-5, "black baseline ignores the range: off by %g",
              max_diff(map(e), want, N * D));
    sal_explanation_free(e);

    /* uniform: the implied baseline x - a / w lies in the range, is seeded, and differs per seed */
    sal_explanation *u1 = explain(m, &x, "integrated_gradients", (xopt){.cls = t, .lo = -0.5, .hi = 0.25}, 2,
                                  "baseline=uniform", "seed=4");
    sal_explanation *u2 = explain(m, &x, "integrated_gradients", (xopt){.cls = t, .lo = -0.5, .hi = 0.25}, 2,
                                  "baseline=uniform", "seed=4");
    sal_explanation *u3 = explain(m, &x, "integrated_gradients", (xopt){.cls = t, .lo = -0.5, .hi = 0.25}, 2,
                                  "baseline=uniform", "seed=5");
    if (u1 && u2 && u3) {
        int out = 0;
        for (int64_t i = 0; i < N * D; i++) {
            double b0 = xp[i] - map(u1)[i] / w[i % D];
            out += b0 < -0.5 - 1e-4 || b0 > 0.25 + 1e-4;
        }
        CHECK(out == 0, "uniform baseline: %d elements outside [lo, hi]", out);
        CHECK(!memcmp(map(u1), map(u2), (size_t)(N * D) * 4), "uniform baseline: same seed, different bytes");
        CHECK(memcmp(map(u1), map(u3), (size_t)(N * D) * 4), "uniform baseline: different seeds, same bytes");
    }
    sal_explanation_free(u1);
    sal_explanation_free(u2);
    sal_explanation_free(u3);

    /* NPY baselines: one sample's shape for all, or one per sample */
    char p1[64], p2[64], p3[64];
    snprintf(p1, sizeof p1, "/tmp/sal_ig_b1_%d.npy", (int)getpid());
    snprintf(p2, sizeof p2, "/tmp/sal_ig_b2_%d.npy", (int)getpid());
    snprintf(p3, sizeof p3, "/tmp/sal_ig_b3_%d.npy", (int)getpid());
    sal_tensor b1 = mat(&r, D, 0, 1), b2 = mat(&r, N, D, 1), b3 = mat(&r, N, D + 1, 1);
    CHECK_OK(sal_npy_write(p1, &b1));
    CHECK_OK(sal_npy_write(p2, &b2));
    CHECK_OK(sal_npy_write(p3, &b3));
    char a1[96], a2[96], a3[96];
    snprintf(a1, sizeof a1, "baseline=%s", p1);
    snprintf(a2, sizeof a2, "baseline=%s", p2);
    snprintf(a3, sizeof a3, "baseline=%s", p3);
    for (int64_t i = 0; i < N * D; i++) want[i] = w[i % D] * (xp[i] - sal_f32(&b1)[i % D]);
    e = explain(m, &x, "integrated_gradients", (xopt){.cls = t}, 1, a1);
    if (e)
        CHECK(max_diff(map(e), want, N * D) < 1e-5, "NPY baseline of one sample: off by %g",
              max_diff(map(e), want, N * D));
    sal_explanation_free(e);
    for (int64_t i = 0; i < N * D; i++) want[i] = w[i % D] * (xp[i] - sal_f32(&b2)[i]);
    e = explain(m, &x, "integrated_gradients", (xopt){.cls = t}, 1, a2);
    if (e)
        CHECK(max_diff(map(e), want, N * D) < 1e-5, "NPY baseline per sample: off by %g",
              max_diff(map(e), want, N * D));
    sal_explanation_free(e);
    CHECK_FAILS(explain_fails(m, &x, "integrated_gradients", NULL, 1, (const char *[]){a3}), SAL_ERR_SHAPE, p3);
    CHECK_FAILS(explain_fails(m, &x, "integrated_gradients", NULL, 1, (const char *[]){"baseline=/nonexistent/b.npy"}),
                SAL_ERR_IO, "/nonexistent/b.npy");
    unlink(p1);
    unlink(p2);
    unlink(p3);
    sal_tensor_free(&b1);
    sal_tensor_free(&b2);
    sal_tensor_free(&b3);
    sal_tensor_free(&data);
    sal_tensor_free(&W);
    sal_tensor_free(&b);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* IG of y = x^p from 0 is x * sum_k w_k p (alpha_k x)^(p-1); the exact value is x^p. */
static void test_ig_quadrature(void) {
    sal_tensor x = {0};
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 2, (int64_t[]){2, 1}) == SAL_OK);
    sal_f32(&x)[0] = 1.3f;
    sal_f32(&x)[1] = -0.8f;
    struct {
        int p, steps, rule;
        double factor; /* attribution / x^p */
    } cases[] = {
        {2, 4, 0, 0.75},  /* left: 2 (0 + 1/4 + 2/4 + 3/4) / 4 */
        {2, 4, 1, 1.25},  /* right: 2 (1/4 + ... + 1) / 4 */
        {2, 1, 2, 1.0},   /* middle: exact for a linear integrand */
        {2, 2, 3, 1.0},   /* trapezoid: exact for a linear integrand */
        {3, 3, 3, 1.125}, /* trapezoid, alpha 0, 1/2, 1: 3 (1/4 * 1/2 + 1/4 * 1) / 2 */
        {4, 2, 4, 1.0},   /* Gauss-Legendre, 2 nodes: exact up to degree 3 */
        {6, 3, 4, 1.0},   /* 3 nodes: exact up to degree 5 */
        {6, 2, 4, 0.0},   /* 2 nodes are not: checked below as "not 1" */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sal_model *m = power_model(cases[c].p);
        char rp[64], sp[32];
        snprintf(rp, sizeof rp, "rule=%s", k_rules[cases[c].rule]);
        snprintf(sp, sizeof sp, "steps=%d", cases[c].steps);
        sal_explanation *e = explain(m, &x, "integrated_gradients", (xopt){.cls = 0}, 2, rp, sp);
        for (int i = 0; e && i < 2; i++) {
            double xv = sal_f32(&x)[i], got = map(e)[i] / pow(xv, cases[c].p);
            if (cases[c].factor == 0)
                CHECK(fabs(got - 1) > 1e-3, "x^%d: %s with %d steps should not be exact (got %g)", cases[c].p,
                      k_rules[cases[c].rule], cases[c].steps, got);
            else
                CHECK(fabs(got - cases[c].factor) < 1e-5, "x^%d: %s with %d steps gives %g x^p, want %g", cases[c].p,
                      k_rules[cases[c].rule], cases[c].steps, got, cases[c].factor);
        }
        sal_explanation_free(e);
        sal_model_free(m);
    }
    sal_tensor_free(&x);
}

/* Integrated gradients through the affine front (sal_exec_front: the path's rows made at the front,
 * one backward pass through the head) against its definition: the gradient method at every point
 * of the path, weighted and summed here. Chunks of 4 rows split the samples' 6 steps; chunks of 2,
 * fewer rows than samples, take the samples one by one. */
static void test_ig_front(void) {
    sal_rng r;
    sal_rng_seed(&r, 31);
    enum { N = 3, STEPS = 6 };
    sal_model *models[3] = {small_cnn(8, true), mlp(2, (int64_t[]){4, 5}, 32, 4, 9, NULL), small_cnn(12, false)};
    const char *front[3] = {"s1", "h1", "h1"};
    for (int mi = 0; mi < 3; mi++) {
        sal_model *m = models[mi];
        const sal_tensor *in = &m->val[m->input[0]].t;
        int64_t dim[SAL_MAX_DIMS], row = 1;
        memcpy(dim, in->dim, sizeof dim);
        dim[0] = N;
        for (int d = 1; d < in->ndim; d++) row *= dim[d];
        sal_session *s;
        SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
        int fv = sal_exec_front(s);
        CHECK(fv == sal_graph_find(m, front[mi]), "model %d: the front is '%s', not '%s'", mi,
              fv >= 0 ? m->val[fv].name : "none", front[mi]);
        sal_session_free(s);
        sal_tensor x = t_rand(&r, in->ndim, dim, 1), path = {0}, xb = {0};
        SAL_ASSERT(sal_tensor_alloc(&xb, SAL_F32, in->ndim, dim) == SAL_OK);
        for (int b = 0; b < 2; b++) { /* baselines 0 and the black one, at lo = -0.4 */
            float base = b ? -0.4f : 0;
            for (int64_t e = 0; e < N * row; e++) sal_f32(&xb)[e] = base;
            dim[0] = N * STEPS;
            SAL_ASSERT(sal_tensor_alloc(&path, SAL_F32, in->ndim, dim) == SAL_OK);
            for (int64_t i = 0; i < N; i++)
                for (int k = 0; k < STEPS; k++)
                    for (int64_t e = 0; e < row; e++) {
                        float a = ((float)k + 0.5f) / STEPS, xv = sal_f32(&x)[i * row + e];
                        sal_f32(&path)[(i * STEPS + k) * row + e] = base + a * (xv - base);
                    }
            xopt o = {.cls = 2, .lo = b ? -0.4 : 0, .hi = 1};
            sal_explanation *g = explain(m, &path, "gradient", o, 0);
            float want[N * 5 * 200];
            SAL_ASSERT(N * row <= (int64_t)(sizeof want / sizeof *want));
            for (int64_t i = 0; g && i < N; i++)
                for (int64_t e = 0; e < row; e++) {
                    double sum = 0;
                    for (int k = 0; k < STEPS; k++) sum += map(g)[(i * STEPS + k) * row + e];
                    want[i * row + e] = (float)((sal_f32(&x)[i * row + e] - base) * sum / STEPS);
                }
            for (int c = 0; g && c < 3; c++) {
                o.chunk = c == 2 ? 2 : c ? 4 : 0; /* 2 < N: a sample at a time through the front */
                sal_explanation *e = explain(m, &x, "integrated_gradients", o, 3, "rule=riemann_middle", "steps=6",
                                             b ? "baseline=black" : "baseline=zero");
                double d = e ? max_diff(map(e), want, N * row) : INFINITY, scale = max_abs(map(g), N * STEPS * row);
                CHECK(d < 1e-5 * (1 + scale), "model %d, baseline %d, chunk %lld: IG through the front differs "
                      "from the summed gradients by %g (scale %g)", mi, b, (long long)o.chunk, d, scale);
                /* the ends f(x) and f(base) come out of the path's own pass: completeness as computed
                 * here from plain forward passes */
                double worst = 0;
                for (int64_t i = 0; e && i < N; i++) {
                    double sum = 0;
                    for (int64_t k = 0; k < row; k++) sum += map(e)[i * row + k];
                    worst = fmax(worst, fabs(sum - (output(m, &x, i, 2) - output(m, &xb, i, 2))));
                }
                double got = e ? sal_explanation_metric(e, "completeness_delta") : INFINITY;
                CHECK(fabs(got - worst) < 1e-5 * (1 + worst), "model %d, baseline %d, chunk %lld: completeness delta "
                      "%g, from forward passes %g", mi, b, (long long)o.chunk, got, worst);
                sal_explanation_free(e);
            }
            sal_explanation_free(g);
        }
        sal_tensor_free(&path);
        sal_tensor_free(&x);
        sal_tensor_free(&xb);
        sal_model_free(m);
    }
}

/* On a ReLU MLP the quadrature error shrinks with the steps; the reported delta matches an
 * independent sum(attr) - (f(x) - f(0)). */
static void test_ig_completeness(void) {
    sal_rng r;
    sal_rng_seed(&r, 5);
    int64_t N = 3, D = 24;
    sal_model *m = mlp(1, (int64_t[]){D}, 48, 5, 21, NULL);
    sal_tensor x = mat(&r, N, D, 1), zero = {0};
    SAL_ASSERT(sal_tensor_alloc(&zero, SAL_F32, 2, x.dim) == SAL_OK);
    const int steps[] = {4, 16, 64, 256};
    double err[2][4];
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < 4; s++) {
            char rp[64], sp[32];
            snprintf(rp, sizeof rp, "rule=%s", k ? "gauss_legendre" : "riemann_left");
            snprintf(sp, sizeof sp, "steps=%d", steps[s]);
            sal_explanation *e = explain(m, &x, "integrated_gradients", (xopt){.cls = 2}, 2, rp, sp);
            err[k][s] = NAN;
            if (!e) continue;
            double worst = 0;
            for (int64_t i = 0; i < N; i++) {
                double sum = 0;
                for (int64_t j = 0; j < D; j++) sum += map(e)[i * D + j];
                worst = fmax(worst, fabs(sum - (output(m, &x, i, 2) - output(m, &zero, i, 2))));
            }
            err[k][s] = sal_explanation_metric(e, "completeness_delta");
            CHECK(fabs(err[k][s] - worst) < 1e-4 + 1e-3 * worst, "reported completeness delta %g, recomputed %g",
                  err[k][s], worst);
            double rel = sal_explanation_metric(e, "completeness_rel");
            CHECK(rel >= 0 && isfinite(rel), "completeness_rel %g", rel);
            sal_explanation_free(e);
        }
    printf("IG completeness delta, steps 4/16/64/256: riemann_left %.3g %.3g %.3g %.3g, gauss_legendre %.3g %.3g %.3g "
           "%.3g\n",
           err[0][0], err[0][1], err[0][2], err[0][3], err[1][0], err[1][1], err[1][2], err[1][3]);
    for (int k = 0; k < 2; k++)
        CHECK(err[k][3] < err[k][1] && err[k][1] < err[k][0], "%s: completeness error does not shrink with steps",
              k ? "gauss_legendre" : "riemann_left");
    for (int s = 0; s < 3; s++)
        CHECK(err[1][s] < err[0][s], "%d steps: gauss_legendre (%g) is not better than riemann_left (%g)", steps[s],
              err[1][s], err[0][s]);
    sal_tensor_free(&x);
    sal_tensor_free(&zero);
    sal_model_free(m);
}

/* baseline=blur: against a direct 2-D Gaussian convolution with edge replication. */
static void test_ig_blur(void) {
    sal_rng r;
    sal_rng_seed(&r, 8);
    const int64_t C = 2, H = 7, W = 6, D = C * H * W;
    sal_tensor x = t_rand(&r, 4, (int64_t[]){1, C, H, W}, 1);
    sal_tensor Wt = mat(&r, 3, D, 1), b = mat(&r, 3, 0, 1);
    sal_model *g;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, C, H, W}) == SAL_OK);
    unary(g, "Flatten", "x", "f");
    sal_tensor w = {0}, bb = {0};
    SAL_ASSERT(sal_tensor_copy(&w, &Wt) == SAL_OK && sal_tensor_copy(&bb, &b) == SAL_OK);
    gemm(g, "f", "y", &w, &bb, "fc");
    sal_model *m = t_finish(g, "y");
    double sigma = 1.2;
    int rad = (int)ceil(3 * sigma);
    float want[84];
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t q = 0; q < W; q++) {
                double s = 0, norm = 0;
                for (int dy = -rad; dy <= rad; dy++)
                    for (int dx = -rad; dx <= rad; dx++) {
                        int64_t yy = y + dy < 0 ? 0 : y + dy >= H ? H - 1 : y + dy;
                        int64_t xx = q + dx < 0 ? 0 : q + dx >= W ? W - 1 : q + dx;
                        double k = exp(-(dy * dy + dx * dx) / (2 * sigma * sigma));
                        s += k * sal_f32(&x)[(c * H + yy) * W + xx];
                        norm += k;
                    }
                int64_t e = (c * H + y) * W + q;
                want[e] = sal_f32(&Wt)[D + e] * (float)(sal_f32(&x)[e] - s / norm);
            }
    sal_explanation *e = explain(m, &x, "integrated_gradients", (xopt){.cls = 1}, 2, "baseline=blur", "sigma=1.2");
    if (e)
        CHECK(max_diff(map(e), want, D) < 1e-5, "blur baseline differs from a direct convolution by %g",
              max_diff(map(e), want, D));
    sal_explanation_free(e);
    /* sigma 0: the baseline is x itself, nothing to attribute */
    e = explain(m, &x, "integrated_gradients", (xopt){.cls = 1}, 2, "baseline=blur", "sigma=0");
    if (e) CHECK(max_abs(map(e), D) == 0, "blur with sigma 0 should attribute nothing");
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_tensor_free(&Wt);
    sal_tensor_free(&b);
    sal_model_free(m);
}

/* ---- SmoothGrad ---- */

static void test_smoothgrad(void) {
    sal_rng r;
    sal_rng_seed(&r, 9);
    int64_t N = 3, D = 16;
    sal_model *m = mlp(1, (int64_t[]){D}, 32, 4, 33, NULL);
    sal_tensor x = mat(&r, N, D, 1);
    xopt o = {.cls = -1, .lo = -2, .hi = 2};
    sal_explanation *a = explain(m, &x, "smoothgrad", o, 2, "samples=20", "seed=3");
    sal_explanation *b = explain(m, &x, "smoothgrad", o, 2, "samples=20", "seed=3");
    sal_explanation *c = explain(m, &x, "smoothgrad", o, 2, "samples=20", "seed=4");
    o.chunk = 1;
    sal_explanation *d = explain(m, &x, "smoothgrad", o, 2, "samples=20", "seed=3");
    o.chunk = 0;
    if (a && b && c && d) {
        CHECK(!memcmp(map(a), map(b), (size_t)(N * D) * 4), "smoothgrad: same seed, different bytes");
        CHECK(memcmp(map(a), map(c), (size_t)(N * D) * 4), "smoothgrad: different seeds, same bytes");
        CHECK(max_diff(map(a), map(d), N * D) < 1e-5 * (1 + max_abs(map(a), N * D)),
              "smoothgrad: chunk 1 and 64 differ by %g", max_diff(map(a), map(d), N * D));
    }
    sal_explanation_free(a);
    sal_explanation_free(b);
    sal_explanation_free(c);
    sal_explanation_free(d);

    /* one sample without noise is the inner method itself, options included */
    sal_explanation *g = explain(m, &x, "gradient", o, 0);
    sal_explanation *s = explain(m, &x, "smoothgrad", o, 2, "samples=1", "noise=0");
    if (g && s)
        CHECK(!memcmp(map(g), map(s), (size_t)(N * D) * 4), "smoothgrad(samples=1, noise=0) is not the gradient");
    sal_explanation_free(g);
    sal_explanation_free(s);
    g = explain(m, &x, "integrated_gradients", o, 2, "steps=7", "rule=riemann_middle");
    s = explain(m, &x, "smoothgrad", o, 5, "samples=1", "noise=0", "inner=integrated_gradients", "inner.steps=7",
                "inner.rule=riemann_middle");
    if (g && s) {
        CHECK(max_diff(map(g), map(s), N * D) < 1e-6, "smoothgrad(IG, samples=1, noise=0) differs from IG by %g",
              max_diff(map(g), map(s), N * D));
        double d0 = sal_explanation_metric(g, "completeness_delta"),
               d1 = sal_explanation_metric(s, "inner.completeness_delta");
        CHECK(fabs(d0 - d1) < 1e-6, "inner completeness delta %g, IG's own %g", d1, d0);
        char *js = NULL;
        CHECK_OK(sal_explanation_json(s, &js));
        CHECK(js && strstr(js, "\"inner.steps\": \"7\"") && strstr(js, "\"inner\": \"integrated_gradients\""),
              "smoothgrad JSON lacks the inner options: %s", js ? js : "");
        free(js);
    }
    sal_explanation_free(g);
    sal_explanation_free(s);

    /* the variants: squared >= 0, vargrad >= 0 and vargrad = squared - mean^2 (same noise) */
    sal_explanation *mean = explain(m, &x, "smoothgrad", o, 3, "samples=16", "seed=2", "variant=mean");
    sal_explanation *sq = explain(m, &x, "smoothgrad", o, 3, "samples=16", "seed=2", "variant=squared");
    sal_explanation *var = explain(m, &x, "smoothgrad", o, 3, "samples=16", "seed=2", "variant=vargrad");
    if (mean && sq && var) {
        int neg = 0;
        double worst = 0;
        for (int64_t i = 0; i < N * D; i++) {
            neg += map(var)[i] < 0 || map(sq)[i] < 0;
            double mu = map(mean)[i];
            worst = fmax(worst, fabs(map(var)[i] - fmax(0, map(sq)[i] - mu * mu)));
        }
        CHECK(neg == 0, "vargrad or SmoothGrad^2: %d negative values", neg);
        CHECK(worst < 1e-5 * (1 + max_abs(map(sq), N * D)), "vargrad differs from squared - mean^2 by %g", worst);
        CHECK(max_abs(map(var), N * D) > 0, "vargrad is zero on a ReLU network with noise");
    }
    sal_explanation_free(mean);
    sal_explanation_free(sq);
    sal_explanation_free(var);
    sal_tensor_free(&x);
    sal_model_free(m);

    /* linear model: the gradient ignores the noise, gradient x input averages it out */
    sal_tensor W = mat(&r, 2, D, 1), bias = mat(&r, 2, 0, 1), xl = mat(&r, 2, D, 1);
    sal_model *lin = linear_model(&W, &bias);
    xopt ol = {.cls = 0, .lo = 0, .hi = 1};
    a = explain(lin, &xl, "smoothgrad", ol, 2, "samples=10", "noise=0.5");
    b = explain(lin, &xl, "smoothgrad", ol, 3, "samples=10", "noise=0.5", "variant=vargrad");
    c = explain(lin, &xl, "smoothgrad", ol, 4, "samples=3000", "noise=0.1", "inner=gradient_x_input", "seed=1");
    if (a && b && c) {
        double dg = 0, dx = 0;
        for (int64_t i = 0; i < 2 * D; i++) {
            double w = sal_f32(&W)[i % D];
            dg = fmax(dg, fabs(map(a)[i] - w));
            dx = fmax(dx, fabs(map(c)[i] - w * sal_f32(&xl)[i]) / (fabs(w) + 1e-3));
        }
        CHECK(dg < 1e-5, "smoothgrad of a linear model's gradient is not w: off by %g", dg);
        CHECK(max_abs(map(b), 2 * D) < 1e-6, "vargrad of a linear model's gradient is not 0: %g",
              max_abs(map(b), 2 * D));
        CHECK(dx < 0.01, "smoothgrad(gradient_x_input) of a linear model is not w x in expectation: off by %g |w|", dx);
    }
    sal_explanation_free(a);
    sal_explanation_free(b);
    sal_explanation_free(c);
    sal_tensor_free(&W);
    sal_tensor_free(&bias);
    sal_tensor_free(&xl);
    sal_model_free(lin);
}

/* ---- occlusion ---- */

/* Mean over covering windows of f(x) - f(x with the window filled), by direct forward passes. */
static void occlusion_direct(const sal_model *m, const sal_tensor *x, int64_t t, int64_t H, int64_t W, int64_t wh,
                             int64_t ww, const int64_t *ys, int ny, const int64_t *xs, int nx, float fill, float *out) {
    int64_t N = x->dim[0], row = sal_tensor_numel(x) / N, P = row / (H * W);
    sal_tensor xc = {0};
    for (int64_t i = 0; i < N; i++) {
        double sum[256] = {0}, cnt[256] = {0};
        SAL_ASSERT(H * W <= 256);
        SAL_ASSERT(sal_tensor_alloc(&xc, SAL_F32, x->ndim, (int64_t[]){1, x->dim[1], x->dim[2], x->dim[3]}) == SAL_OK);
        xc.ndim = x->ndim;
        memcpy(sal_f32(&xc), sal_f32(x) + i * row, (size_t)row * 4);
        double f0 = output(m, &xc, 0, t);
        for (int a = 0; a < ny; a++)
            for (int b = 0; b < nx; b++) {
                memcpy(sal_f32(&xc), sal_f32(x) + i * row, (size_t)row * 4);
                for (int64_t p = 0; p < P; p++)
                    for (int64_t y = ys[a]; y < ys[a] + wh; y++)
                        for (int64_t q = xs[b]; q < xs[b] + ww; q++) sal_f32(&xc)[(p * H + y) * W + q] = fill;
                double d = f0 - output(m, &xc, 0, t);
                for (int64_t y = ys[a]; y < ys[a] + wh; y++)
                    for (int64_t q = xs[b]; q < xs[b] + ww; q++) sum[y * W + q] += d, cnt[y * W + q]++;
            }
        for (int64_t p = 0; p < P; p++)
            for (int64_t e = 0; e < H * W; e++) out[i * row + p * H * W + e] = (float)(sum[e] / cnt[e]);
    }
    sal_tensor_free(&xc);
}

static void test_occlusion(void) {
    sal_rng r;
    sal_rng_seed(&r, 12);
    /* (N, C, H, W) with a 3x2 window and stride 2 on 6x5: starts 0, 2, then 3 flush with the end */
    sal_model *m = mlp(3, (int64_t[]){2, 6, 5}, 24, 3, 7, NULL);
    sal_tensor x = t_rand(&r, 4, (int64_t[]){2, 2, 6, 5}, 1);
    float want[120];
    occlusion_direct(m, &x, 1, 6, 5, 3, 2, (int64_t[]){0, 2, 3}, 3, (int64_t[]){0, 2, 3}, 3, 0.25f, want);
    sal_explanation *e = explain(m, &x, "occlusion", (xopt){.cls = 1}, 3, "window=3x2", "stride=2", "fill=0.25");
    sal_explanation *e1 =
        explain(m, &x, "occlusion", (xopt){.cls = 1, .chunk = 1}, 3, "window=3x2", "stride=2", "fill=0.25");
    if (e && e1) {
        CHECK(max_diff(map(e), want, 120) < 1e-5, "occlusion differs from a direct loop by %g",
              max_diff(map(e), want, 120));
        CHECK(max_diff(map(e), map(e1), 120) < 1e-5, "occlusion: chunk 1 and 64 differ by %g",
              max_diff(map(e), map(e1), 120));
    }
    sal_explanation_free(e);
    sal_explanation_free(e1);
    /* fill=black is the range minimum */
    occlusion_direct(m, &x, 1, 6, 5, 3, 2, (int64_t[]){0, 2, 3}, 3, (int64_t[]){0, 2, 3}, 3, -1.5f, want);
    e = explain(m, &x, "occlusion", (xopt){.cls = 1, .lo = -1.5, .hi = 2}, 3, "window=3x2", "stride=2", "fill=black");
    if (e) CHECK(max_diff(map(e), want, 120) < 1e-5, "occlusion fill=black differs by %g", max_diff(map(e), want, 120));
    sal_explanation_free(e);
    /* defaults, 4x4 stride 2 on 6x5: rows 0, 2; columns 0, 1 */
    occlusion_direct(m, &x, 1, 6, 5, 4, 4, (int64_t[]){0, 2}, 2, (int64_t[]){0, 1}, 2, 0.0f, want);
    e = explain(m, &x, "occlusion", (xopt){.cls = 1}, 0);
    if (e)
        CHECK(max_diff(map(e), want, 120) < 1e-5, "occlusion with defaults differs by %g", max_diff(map(e), want, 120));
    sal_explanation_free(e);
    CHECK_FAILS(explain_fails(m, &x, "occlusion", NULL, 1, (const char *[]){"window=7x2"}), SAL_ERR_ARG,
                "does not fit");
    CHECK_FAILS(explain_fails(m, &x, "occlusion", NULL, 1, (const char *[]){"window=0"}), SAL_ERR_ARG, "window=0");
    CHECK_FAILS(explain_fails(m, &x, "occlusion", NULL, 1, (const char *[]){"stride=2y"}), SAL_ERR_ARG, "stride=2y");
    CHECK_FAILS(explain_fails(m, &x, "occlusion", NULL, 1, (const char *[]){"fill=grey"}), SAL_ERR_ARG, "fill=grey");
    sal_tensor_free(&x);
    sal_model_free(m);

    /* (N, D): windows along the one axis; 3 wide, stride 3 on 10: starts 0, 3, 6, then 7 */
    m = mlp(1, (int64_t[]){10}, 16, 3, 8, NULL);
    x = mat(&r, 2, 10, 1);
    float want1[20];
    for (int64_t i = 0; i < 2; i++) {
        sal_tensor xi = {0};
        SAL_ASSERT(sal_tensor_alloc(&xi, SAL_F32, 2, (int64_t[]){1, 10}) == SAL_OK);
        memcpy(sal_f32(&xi), sal_f32(&x) + i * 10, 40);
        double f0 = output(m, &xi, 0, 0), sum[10] = {0}, cnt[10] = {0};
        const int64_t st[4] = {0, 3, 6, 7};
        for (int k = 0; k < 4; k++) {
            memcpy(sal_f32(&xi), sal_f32(&x) + i * 10, 40);
            for (int64_t q = st[k]; q < st[k] + 3; q++) sal_f32(&xi)[q] = 0;
            double d = f0 - output(m, &xi, 0, 0);
            for (int64_t q = st[k]; q < st[k] + 3; q++) sum[q] += d, cnt[q]++;
        }
        for (int q = 0; q < 10; q++) want1[i * 10 + q] = (float)(sum[q] / cnt[q]);
        sal_tensor_free(&xi);
    }
    e = explain(m, &x, "occlusion", (xopt){.cls = 0}, 2, "window=3", "stride=3");
    if (e)
        CHECK(max_diff(map(e), want1, 20) < 1e-5, "1-D occlusion differs from a direct loop by %g",
              max_diff(map(e), want1, 20));
    sal_explanation_free(e);
    CHECK_FAILS(explain_fails(m, &x, "occlusion", NULL, 1, (const char *[]){"window=3x3"}), SAL_ERR_ARG,
                "one spatial axis");
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Occlusion through an MLP's first product (sal_exec_front_product): each window's row starts at
 * the front from its sample's value plus the window's share of the product; against full passes,
 * for any chunking, with rows too unlike their sample (a window of more than an eighth of the
 * input) run in full instead. */
static void test_occlusion_front(void) {
    sal_rng r;
    sal_rng_seed(&r, 14);
    sal_model *m = mlp(3, (int64_t[]){1, 12, 12}, 32, 3, 5, NULL), *cnn = small_cnn(3, true);
    sal_session *s;
    int64_t N = 0;
    float alpha = 0;
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    CHECK(sal_exec_front_product(s, 144, &N, &alpha) && N == 32 && alpha == 1, "the MLP's head is not one product");
    CHECK(!sal_exec_front_product(s, 145, &N, &alpha), "a product of 144 rows taken for 145 elements");
    sal_session_free(s);
    SAL_ASSERT(sal_session_new(cnn, &s) == SAL_OK);
    CHECK(!sal_exec_front_product(s, 64, &N, &alpha), "a convolution taken for a product");
    sal_session_free(s);
    sal_tensor x = t_rand(&r, 4, (int64_t[]){2, 1, 12, 12}, 1);
    float want[288];
    /* 3x3, stride 2 on 12: starts 0, 2, 4, 6, 8 and 9; 36 windows per sample */
    const int64_t st[6] = {0, 2, 4, 6, 8, 9};
    occlusion_direct(m, &x, 2, 12, 12, 3, 3, st, 6, st, 6, 0.25f, want);
    for (int c = 0; c < 3; c++) {
        int64_t chunk = (int64_t[]){0, 1, 5}[c];
        sal_explanation *e =
            explain(m, &x, "occlusion", (xopt){.cls = 2, .chunk = chunk}, 3, "window=3", "stride=2", "fill=0.25");
        if (!e) continue;
        CHECK(max_diff(map(e), want, 288) < 1e-5, "occlusion from the front, chunk %lld: differs from full passes "
              "by %g", (long long)chunk, max_diff(map(e), want, 288));
        CHECK(sal_explanation_metric(e, "rows_from_front") == 2 * 37, "chunk %lld: %g rows from the front, not 74",
              (long long)chunk, sal_explanation_metric(e, "rows_from_front"));
        sal_explanation_free(e);
    }
    /* 5x5 windows change 25 of 144 elements: full passes */
    const int64_t st5[5] = {0, 2, 4, 6, 7};
    occlusion_direct(m, &x, 2, 12, 12, 5, 5, st5, 5, st5, 5, 0.0f, want);
    sal_explanation *e = explain(m, &x, "occlusion", (xopt){.cls = 2}, 2, "window=5", "stride=2");
    if (e) {
        CHECK(max_diff(map(e), want, 288) < 1e-5, "occlusion 5x5 differs from full passes by %g",
              max_diff(map(e), want, 288));
        CHECK(sal_explanation_metric(e, "rows_from_front") == 0, "5x5 windows: %g rows from the front",
              sal_explanation_metric(e, "rows_from_front"));
    }
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_model_free(m);
    sal_model_free(cnn);
}

/* ---- gradient SHAP ---- */

static void test_gradient_shap(void) {
    sal_rng r;
    sal_rng_seed(&r, 13);
    int64_t N = 2, D = 8, M = 16;
    sal_tensor W = mat(&r, 3, D, 1), b = mat(&r, 3, 0, 1), x = mat(&r, N, D, 1), data = mat(&r, M, D, 0.3f);
    for (int64_t i = 0; i < M * D; i++) sal_f32(&data)[i] += 0.5f;
    sal_model *lin = linear_model(&W, &b);
    /* expectation on a linear model: w * (x - mean of the data) */
    float want[16];
    for (int64_t i = 0; i < N * D; i++) {
        double mu = 0;
        for (int64_t k = 0; k < M; k++) mu += sal_f32(&data)[k * D + i % D];
        want[i] = sal_f32(&W)[D + i % D] * (float)(sal_f32(&x)[i] - mu / (double)M);
    }
    xopt o = {.data = &data, .cls = 1};
    sal_explanation *e = explain(lin, &x, "gradient_shap", o, 1, "samples=4000");
    sal_explanation *en = explain(lin, &x, "gradient_shap", o, 2, "samples=4000", "noise=0.2");
    if (e && en) {
        double tol = 0.03 * max_abs(sal_f32(&W) + D, D);
        CHECK(max_diff(map(e), want, N * D) < tol,
              "gradient_shap on a linear model is off w (x - mean b) by %g (tolerance %g)",
              max_diff(map(e), want, N * D), tol);
        CHECK(max_diff(map(en), want, N * D) < 2 * tol, "gradient_shap with noise on a linear model is off by %g",
              max_diff(map(en), want, N * D));
    }
    sal_explanation_free(e);
    sal_explanation_free(en);

    sal_model *m = mlp(1, (int64_t[]){D}, 16, 3, 4, NULL);
    sal_explanation *a = explain(m, &x, "gradient_shap", o, 2, "samples=30", "seed=1");
    sal_explanation *a2 = explain(m, &x, "gradient_shap", o, 2, "samples=30", "seed=1");
    sal_explanation *a3 = explain(m, &x, "gradient_shap", o, 2, "samples=30", "seed=2");
    o.chunk = 1;
    sal_explanation *a4 = explain(m, &x, "gradient_shap", o, 2, "samples=30", "seed=1");
    if (a && a2 && a3 && a4) {
        CHECK(!memcmp(map(a), map(a2), (size_t)(N * D) * 4), "gradient_shap: same seed, different bytes");
        CHECK(memcmp(map(a), map(a3), (size_t)(N * D) * 4), "gradient_shap: different seeds, same bytes");
        CHECK(max_diff(map(a), map(a4), N * D) < 1e-5 * (1 + max_abs(map(a), N * D)),
              "gradient_shap: chunk 1 and 64 differ by %g", max_diff(map(a), map(a4), N * D));
    }
    sal_explanation_free(a);
    sal_explanation_free(a2);
    sal_explanation_free(a3);
    sal_explanation_free(a4);
    CHECK_FAILS(explain_fails(m, &x, "gradient_shap", NULL, 0, NULL), SAL_ERR_ARG, "--data");
    sal_tensor bad = mat(&r, 4, D + 1, 1);
    CHECK_FAILS(explain_fails(m, &x, "gradient_shap", &bad, 0, NULL), SAL_ERR_SHAPE, "reference data");
    sal_tensor_free(&bad);
    sal_tensor_free(&W);
    sal_tensor_free(&b);
    sal_tensor_free(&x);
    sal_tensor_free(&data);
    sal_model_free(lin);
    sal_model_free(m);
}

/* ---- chunking ---- */

static void test_chunks(void) {
    sal_rng r;
    sal_rng_seed(&r, 14);
    sal_model *m = mlp(1, (int64_t[]){12}, 24, 3, 9, NULL);
    sal_tensor x = mat(&r, 3, 12, 1);
    sal_explanation *a = explain(m, &x, "integrated_gradients", (xopt){.cls = -1, .chunk = 1}, 1, "steps=20");
    sal_explanation *b = explain(m, &x, "integrated_gradients", (xopt){.cls = -1, .chunk = 64}, 1, "steps=20");
    sal_explanation *c = explain(m, &x, "integrated_gradients", (xopt){.cls = -1, .chunk = 7}, 1, "steps=20");
    if (a && b && c) {
        double s = 1e-5 * (1 + max_abs(map(b), 36));
        CHECK(max_diff(map(a), map(b), 36) < s && max_diff(map(c), map(b), 36) < s,
              "IG: chunks 1, 7 and 64 differ by %g, %g", max_diff(map(a), map(b), 36), max_diff(map(c), map(b), 36));
    }
    sal_explanation_free(a);
    sal_explanation_free(b);
    sal_explanation_free(c);
    /* a nested wrapper runs in chunks of chunks */
    a = explain(m, &x, "smoothgrad", (xopt){.cls = -1, .chunk = 3}, 3, "samples=5", "inner=integrated_gradients",
                "inner.steps=9");
    b = explain(m, &x, "smoothgrad", (xopt){.cls = -1, .chunk = 64}, 3, "samples=5", "inner=integrated_gradients",
                "inner.steps=9");
    if (a && b)
        CHECK(max_diff(map(a), map(b), 36) < 1e-5 * (1 + max_abs(map(b), 36)),
              "smoothgrad(IG): chunks 3 and 64 differ by %g", max_diff(map(a), map(b), 36));
    sal_explanation_free(a);
    sal_explanation_free(b);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- input invariance (Kindermans et al.): network 2 sees x + m and compensates in its bias ---- */

static void test_shift_invariance(void) {
    sal_rng r;
    sal_rng_seed(&r, 15);
    int64_t N = 2, D = 10;
    float shift[10];
    for (int i = 0; i < D; i++) shift[i] = -1;
    sal_model *m1 = mlp(1, (int64_t[]){D}, 24, 3, 17, NULL), *m2 = mlp(1, (int64_t[]){D}, 24, 3, 17, shift);
    sal_tensor x1 = mat(&r, N, D, 0.3f), x2 = {0};
    for (int64_t i = 0; i < N * D; i++) sal_f32(&x1)[i] = fabsf(sal_f32(&x1)[i]);
    SAL_ASSERT(sal_tensor_copy(&x2, &x1) == SAL_OK);
    for (int64_t i = 0; i < N * D; i++) sal_f32(&x2)[i] -= 1;
    xopt o1 = {.cls = 0, .lo = 0, .hi = 1}, o2 = {.cls = 0, .lo = -1, .hi = 0};
    struct {
        const char *method, *p1, *p2;
        bool invariant;
    } cases[] = {
        {"integrated_gradients", "baseline=black", "steps=16", true},
        {"integrated_gradients", "baseline=zero", "steps=16", false},
        {"smoothgrad", "samples=8", "seed=1", true},
        {"smoothgrad", "inner=gradient_x_input", "samples=8", false},
        {"occlusion", "fill=black", "window=3", true},
        {"occlusion", "fill=0", "window=3", false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sal_explanation *a = explain(m1, &x1, cases[k].method, o1, 2, cases[k].p1, cases[k].p2);
        sal_explanation *b = explain(m2, &x2, cases[k].method, o2, 2, cases[k].p1, cases[k].p2);
        if (a && b) {
            double d = max_diff(map(a), map(b), N * D), s = max_abs(map(a), N * D);
            if (cases[k].invariant)
                CHECK(d < 1e-4 * (1 + s), "%s %s is not invariant to a mean shift: off by %g", cases[k].method,
                      cases[k].p1, d);
            else
                CHECK(d > 1e-2 * s, "%s %s should change under a mean shift (off by %g of %g)", cases[k].method,
                      cases[k].p1, d, s);
        }
        sal_explanation_free(a);
        sal_explanation_free(b);
    }
    sal_tensor_free(&x1);
    sal_tensor_free(&x2);
    sal_model_free(m1);
    sal_model_free(m2);
}

/* ---- bad parameters ---- */

static void test_errors(void) {
    sal_rng r;
    sal_rng_seed(&r, 16);
    sal_model *m = mlp(1, (int64_t[]){6}, 8, 3, 2, NULL);
    sal_tensor x = mat(&r, 2, 6, 1);
    struct {
        const char *method, *param, *needle;
        sal_status st;
    } cases[] = {
        {"integrated_gradients", "baseline=grey", "baseline=grey must be zero, black, uniform, blur", SAL_ERR_ARG},
        {"integrated_gradients", "steps=0", "steps=0 must be an integer", SAL_ERR_ARG},
        {"integrated_gradients", "steps=many", "steps=many", SAL_ERR_ARG},
        {"integrated_gradients", "rule=simpson", "rule=simpson must be one of", SAL_ERR_ARG},
        {"integrated_gradients", "baseline=blur", "baseline=blur needs spatial axes", SAL_ERR_SHAPE},
        {"integrated_gradients", "seed=-3", "seed=-3", SAL_ERR_ARG},
        {"integrated_gradients", "window=3", "has no parameter 'window'", SAL_ERR_ARG},
        {"smoothgrad", "inner=unknown_method", "inner=unknown_method is not a method", SAL_ERR_ARG},
        {"smoothgrad", "variant=median", "variant=median", SAL_ERR_ARG},
        {"smoothgrad", "noise=-1", "noise=-1", SAL_ERR_ARG},
        {"smoothgrad", "inner.steps=5", "inner method gradient has no parameter 'steps'", SAL_ERR_ARG},
        {"occlusion", "window=9", "does not fit", SAL_ERR_ARG},
        {"gradient_shap", "samples=0", "samples=0", SAL_ERR_ARG},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        CHECK_FAILS(explain_fails(m, &x, cases[k].method, NULL, 1, &cases[k].param), cases[k].st, cases[k].needle);
        char twice[96];
        snprintf(twice, sizeof twice, "method %s: method %s", cases[k].method, cases[k].method);
        CHECK(!strstr(sal_last_error(), twice), "message names the method twice: %s", sal_last_error());
    }
    CHECK_FAILS(
        explain_fails(m, &x, "integrated_gradients", NULL, 2, (const char *[]){"rule=riemann_trapezoid", "steps=1"}),
        SAL_ERR_ARG, "needs steps >= 2");
    CHECK_FAILS(explain_fails(m, &x, "integrated_gradients", NULL, 1, (const char *[]){"steps=20000"}), SAL_ERR_ARG,
                "gauss_legendre takes at most 10000 steps");
    /* errors of the inner method name both */
    CHECK_FAILS(
        explain_fails(m, &x, "smoothgrad", NULL, 2, (const char *[]){"inner=integrated_gradients", "inner.steps=0"}),
        SAL_ERR_ARG, "method smoothgrad: method integrated_gradients: parameter steps=0");
    CHECK_FAILS(explain_fails(m, &x, "smoothgrad", NULL, 2, (const char *[]){"inner=gradient_shap", "samples=2"}),
                SAL_ERR_ARG, "method smoothgrad: method gradient_shap");
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- memory: bounded by the chunk, not by steps or samples; allocation failures are clean ---- */

static void test_memory(void) {
    sal_rng r;
    sal_rng_seed(&r, 18);
    int64_t D = 512;
    sal_model *m = mlp(1, (int64_t[]){D}, 16, 3, 5, NULL);
    sal_tensor x = mat(&r, 2, D, 1), data = mat(&r, 4, D, 1);
    /* 2 x 4000 rows of 2 KiB would need 16 MiB at once; 4 MiB above what is held must do */
    sal_set_memory_budget(sal_memory_in_use() + ((size_t)4 << 20));
    xopt o = {.cls = -1, .chunk = 16, .data = &data};
    sal_explanation *e = explain(m, &x, "integrated_gradients", o, 1, "steps=4000");
    CHECK(e != NULL, "IG with 4000 steps does not run in chunks of 16 rows under a 4 MiB budget");
    sal_explanation_free(e);
    e = explain(m, &x, "smoothgrad", o, 1, "samples=4000");
    CHECK(e != NULL, "smoothgrad with 4000 samples does not run in chunks under a 4 MiB budget");
    sal_explanation_free(e);
    e = explain(m, &x, "gradient_shap", o, 1, "samples=4000");
    CHECK(e != NULL, "gradient_shap with 4000 samples does not run in chunks under a 4 MiB budget");
    sal_explanation_free(e);
    sal_set_memory_budget(0);

    /* every allocation of every method, made to fail in turn: a clean SAL_ERR_NOMEM each time */
    const char *methods[][3] = {{"integrated_gradients", "steps=5", "baseline=uniform"},
                                {"smoothgrad", "samples=3", "inner=integrated_gradients"},
                                {"occlusion", "window=200", "stride=100"},
                                {"gradient_shap", "samples=3", "noise=0.1"}};
    for (int k = 0; k < 4; k++) {
        int fails = 0, bad = 0;
        for (long n = 1; n < 10000; n++) {
            const char *params[2] = {methods[k][1], methods[k][2]};
            sal_explain_opts eo = {.method = methods[k][0], .nparams = 2, .params = params, .data = &data, .chunk = 4};
            sal_explanation *ex = NULL;
            sal_alloc_fail_after(n);
            sal_status st = sal_explain(m, &x, &eo, &ex);
            sal_alloc_fail_after(0);
            sal_explanation_free(ex);
            if (st == SAL_OK) break;
            fails++;
            if (st != SAL_ERR_NOMEM && bad++ < 3)
                fprintf(stderr, "%s: allocation %ld failing gives %s: %s\n", methods[k][0], n, sal_status_string(st),
                        sal_last_error());
        }
        CHECK(fails > 5 && bad == 0, "%s: %d injected allocation failures, %d not reported as out of memory",
              methods[k][0], fails, bad);
    }
    sal_tensor_free(&x);
    sal_tensor_free(&data);
    sal_model_free(m);
}

int main(void) {
    test_ig_linear();
    test_ig_quadrature();
    test_ig_completeness();
    test_ig_front();
    test_ig_blur();
    test_smoothgrad();
    test_occlusion();
    test_occlusion_front();
    test_gradient_shap();
    test_chunks();
    test_shift_invariance();
    test_errors();
    test_memory();
    return t_done("test_methods_gradient_family");
}
