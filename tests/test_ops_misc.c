/* Elementwise, activation, softmax, normalization, reduction and shape ops: gradients against
 * finite differences, forward passes against hand-computed values, opset variants against each
 * other, and the dynamic-batch flatten pattern of PyTorch exports. */
#include "testutil.h"
#include <float.h>

#define DIMS(...) (int64_t[]){__VA_ARGS__}
#define BOOLS(...) (bool[]){__VA_ARGS__}

static sal_rng R;

static sal_tensor tf32(int ndim, const int64_t *dim, const float *v) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_F32, ndim, dim) == SAL_OK);
    if (v) memcpy(t.data, v, (size_t)sal_tensor_numel(&t) * sizeof *v);
    return t;
}

static sal_tensor ti64(int ndim, const int64_t *dim, const int64_t *v) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_I64, ndim, dim) == SAL_OK);
    if (v) memcpy(t.data, v, (size_t)sal_tensor_numel(&t) * sizeof *v);
    return t;
}

/* 1-D int64 vector */
#define VEC(...) ti64(1, DIMS(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
static const sal_tensor OMITTED = {.ndim = -1};

static sal_tensor trand(int ndim, const int64_t *dim) { return t_rand(&R, ndim, dim, 1.0f); }

/* random values with |v| >= 0.5: divisors and variances stay away from 0 */
static sal_tensor tpos(int ndim, const int64_t *dim, bool allow_neg) {
    sal_tensor t = trand(ndim, dim);
    for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++) {
        float v = fabsf(sal_f32(&t)[i]) + 0.5f;
        sal_f32(&t)[i] = allow_neg && (i % 2) ? -v : v;
    }
    return t;
}

/* Moves elements within 0.05 of v (a kink) 0.1 away, so that finite differences never straddle it. */
static sal_tensor away(sal_tensor t, float v) {
    for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++) {
        float *p = &sal_f32(&t)[i];
        if (fabsf(*p - v) < 0.05f) *p = *p < v ? v - 0.1f : v + 0.1f;
    }
    return t;
}

static void gc(const char *op, int nin, sal_tensor *in, const bool *cst, int nattr, sal_attr *attr) {
    t_gradcheck((t_gradcheck_spec){.op = op, .nin = nin, .in = in, .is_const = cst, .nattr = nattr, .attr = attr,
                                   .seed = 5});
    for (int i = 0; i < nin; i++) sal_tensor_free(&in[i]);
}

static bool shape_is(const sal_tensor *t, int ndim, const int64_t *dim) {
    if (t->ndim != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (t->dim[i] != dim[i]) return false;
    return true;
}

static bool i64_is(const sal_tensor *t, int64_t n, const int64_t *v) {
    if (t->dtype != SAL_I64 || sal_tensor_numel(t) != n) return false;
    for (int64_t i = 0; i < n; i++)
        if (((int64_t *)t->data)[i] != v[i]) return false;
    return true;
}

static double max_diff(const sal_tensor *a, const sal_tensor *b) {
    if (a->dtype != SAL_F32 || b->dtype != SAL_F32 || sal_tensor_numel(a) != sal_tensor_numel(b)) return INFINITY;
    double w = 0;
    for (int64_t i = 0, n = sal_tensor_numel(a); i < n; i++) w = fmax(w, fabs((double)sal_f32(a)[i] - sal_f32(b)[i]));
    return w;
}

/* Runs one node under a given opset and copies output 0 to *y. cst[i] makes input i a constant
 * (NULL: int64 inputs are constants, float ones graph inputs); ndim -1 omits it. With a seed, the
 * gradient of sum(seed * y) w.r.t. input 0 (a graph input) goes to *dx. Consumes attr. */
static sal_status run1(int64_t opset, const char *op, int nin, const sal_tensor *in, const bool *cst, int nattr,
                       sal_attr *attr, sal_tensor *y, const sal_tensor *seed, sal_tensor *dx) {
    sal_model *g = NULL;
    sal_session *s = NULL;
    char names[8][16];
    const char *inn[8];
    sal_tensor feeds[8] = {{0}};
    int nf = 0;
    SAL_ASSERT(nin <= 8 && sal_graph_create("<run1>", &g) == SAL_OK);
    g->opset = opset;
    for (int i = 0; i < nin; i++) {
        inn[i] = "";
        if (in[i].ndim < 0) continue;
        snprintf(names[i], sizeof names[i], "i%d", i);
        inn[i] = names[i];
        bool c = cst ? cst[i] : in[i].dtype == SAL_I64;
        if (c) {
            sal_tensor t = {0};
            SAL_ASSERT(sal_tensor_copy(&t, &in[i]) == SAL_OK);
            SAL_ASSERT(sal_graph_add_const(g, names[i], &t) == SAL_OK);
        } else {
            SAL_ASSERT(sal_graph_add_input(g, names[i], in[i].dtype, in[i].ndim, in[i].dim) == SAL_OK);
            SAL_ASSERT(sal_tensor_copy(&feeds[nf++], &in[i]) == SAL_OK);
        }
    }
    sal_status st = sal_graph_add_node(g, op, "n", nin, inn, 1, (const char *[]){"y"}, nattr, attr);
    if (st == SAL_OK) st = sal_graph_add_output(g, "y");
    if (st == SAL_OK) st = sal_graph_finalize(g);
    if (st == SAL_OK) st = sal_session_new(g, &s);
    if (st == SAL_OK) st = sal_exec_forward(s, feeds);
    int out = sal_graph_find(g, "y");
    if (st == SAL_OK) st = sal_tensor_copy(y, &s->act[out]);
    if (st == SAL_OK && seed) {
        bool *wrt = sal_calloc((size_t)g->nval, sizeof *wrt);
        wrt[sal_graph_find(g, "i0")] = true;
        sal_backward_opts bo = {.wrt = wrt};
        st = sal_exec_backward(s, 1, &out, seed, &bo);
        if (st == SAL_OK) st = sal_tensor_copy(dx, &s->grad[sal_graph_find(g, "i0")]);
        sal_free(wrt);
    }
    for (int i = 0; i < nf; i++) sal_tensor_free(&feeds[i]);
    sal_session_free(s);
    sal_model_free(g);
    return st;
}

/* ---- elementwise ---- */

static void test_binary_grads(void) {
    static const char *ops[] = {"Add", "Sub", "Mul", "Div"};
    for (int k = 0; k < 4; k++) {
        bool div = k == 3;
        /* same shapes, both activations */
        gc(ops[k], 2, (sal_tensor[]){trand(3, DIMS(2, 3, 4)), div ? tpos(3, DIMS(2, 3, 4), true) : trand(3, DIMS(2, 3, 4))},
           BOOLS(false, false), 0, NULL);
        /* bias over the last axis, a constant parameter */
        gc(ops[k], 2, (sal_tensor[]){trand(3, DIMS(2, 3, 4)), div ? tpos(1, DIMS(4), true) : trand(1, DIMS(4))},
           BOOLS(false, true), 0, NULL);
        /* per-channel (C,1,1) against NCHW */
        gc(ops[k], 2, (sal_tensor[]){trand(4, DIMS(2, 3, 2, 2)), div ? tpos(3, DIMS(3, 1, 1), true) : trand(3, DIMS(3, 1, 1))},
           BOOLS(false, false), 0, NULL);
        /* both sides broadcast, the first operand has the lower rank */
        gc(ops[k], 2, (sal_tensor[]){trand(2, DIMS(3, 1)), div ? tpos(3, DIMS(2, 1, 4), true) : trand(3, DIMS(2, 1, 4))},
           BOOLS(false, false), 0, NULL);
        /* LayerNorm's statistics (a value per row) on more elements than run on one thread: the rows
         * then share out the threads, each summing its own row */
        gc(ops[k], 2, (sal_tensor[]){trand(3, DIMS(2, 300, 128)), div ? tpos(3, DIMS(2, 300, 1), true) : trand(3, DIMS(2, 300, 1))},
           BOOLS(false, false), 0, NULL);
        gc(ops[k], 2, (sal_tensor[]){div ? tpos(3, DIMS(2, 300, 1), false) : trand(3, DIMS(2, 300, 1)), div ? tpos(3, DIMS(2, 300, 128), true) : trand(3, DIMS(2, 300, 128))},
           BOOLS(false, false), 0, NULL);
        /* a scalar */
        gc(ops[k], 2, (sal_tensor[]){trand(2, DIMS(3, 5)), div ? tpos(0, NULL, true) : trand(0, NULL)},
           BOOLS(false, false), 0, NULL);
        gc(ops[k], 2, (sal_tensor[]){div ? tpos(0, NULL, false) : trand(0, NULL), div ? tpos(2, DIMS(3, 5), true) : trand(2, DIMS(3, 5))},
           BOOLS(true, false), 0, NULL);
    }
}

static void test_binary_forward(void) {
    sal_tensor a = ti64(2, DIMS(2, 3), (int64_t[]){1, 2, 3, -7, 8, 9}), b = VEC(2, -1, 4), y = {0};
    struct {
        const char *op;
        int64_t want[6];
    } cases[] = {
        {"Add", {3, 1, 7, -5, 7, 13}},
        {"Sub", {-1, 3, -1, -9, 9, 5}},
        {"Mul", {2, -2, 12, -14, -8, 36}},
        {"Div", {0, -2, 0, -3, -8, 2}}, /* truncation toward zero */
    };
    for (int k = 0; k < 4; k++) {
        CHECK_OK(run1(13, cases[k].op, 2, (sal_tensor[]){a, b}, BOOLS(false, false), 0, NULL, &y, NULL, NULL));
        CHECK(shape_is(&y, 2, DIMS(2, 3)) && i64_is(&y, 6, cases[k].want), "int64 %s", cases[k].op);
    }
    sal_tensor z = VEC(1, 0, 1);
    CHECK_FAILS(run1(13, "Div", 2, (sal_tensor[]){a, z}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_NUMERIC, "division by zero");
    sal_tensor f = tf32(1, DIMS(3), (float[]){1, 2, 3}), f2 = tf32(2, DIMS(2, 2), NULL);
    CHECK_FAILS(run1(13, "Add", 2, (sal_tensor[]){f, b}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_UNSUPPORTED, "node 'n' (Add)");
    CHECK_FAILS(run1(13, "Mul", 2, (sal_tensor[]){f, f2}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE, "do not broadcast");
    /* float forward with a broadcast constant, against direct arithmetic */
    sal_tensor x = tf32(2, DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    CHECK_OK(run1(13, "Div", 2, (sal_tensor[]){x, f}, BOOLS(false, true), 0, NULL, &y, NULL, NULL));
    sal_tensor want = tf32(2, DIMS(2, 3), (float[]){1, 1, 1, 4, 2.5f, 2});
    CHECK(max_diff(&y, &want) < 1e-6, "float Div with broadcast");
    sal_tensor_free(&want);
    sal_tensor_free(&x);
    sal_tensor_free(&f);
    sal_tensor_free(&f2);
    sal_tensor_free(&z);
    sal_tensor_free(&a);
    sal_tensor_free(&b);
    sal_tensor_free(&y);
}

/* ---- activations ---- */

static void test_activations(void) {
    sal_attr at[1] = {sal_attr_make_float("alpha", 0.2f)};
    gc("LeakyRelu", 1, (sal_tensor[]){away(trand(2, DIMS(4, 5)), 0)}, BOOLS(false), 1, at);
    gc("LeakyRelu", 1, (sal_tensor[]){away(trand(2, DIMS(4, 5)), 0)}, BOOLS(false), 0, NULL);
    gc("Sigmoid", 1, (sal_tensor[]){t_rand(&R, 2, DIMS(4, 5), 3.0f)}, BOOLS(false), 0, NULL);
    gc("Tanh", 1, (sal_tensor[]){trand(3, DIMS(2, 3, 4))}, BOOLS(false), 0, NULL);

    /* saturation: no overflow to NaN */
    sal_tensor x = tf32(1, DIMS(4), (float[]){-100, -1, 0, 100}), y = {0};
    CHECK_OK(run1(13, "Sigmoid", 1, &x, NULL, 0, NULL, &y, NULL, NULL));
    const float *p = sal_f32(&y);
    CHECK(p[0] >= 0 && p[0] < 1e-30 && fabsf(p[1] - 0.26894142f) < 1e-6 && p[2] == 0.5f && p[3] == 1.0f,
          "Sigmoid values %g %g %g %g", p[0], p[1], p[2], p[3]);
    sal_attr la[1] = {sal_attr_make_float("alpha", 0.5f)};
    CHECK_OK(run1(13, "LeakyRelu", 1, &x, NULL, 1, la, &y, NULL, NULL));
    CHECK(sal_f32(&y)[0] == -50 && sal_f32(&y)[1] == -0.5f && sal_f32(&y)[3] == 100, "LeakyRelu values");
    sal_tensor_free(&x);
    sal_tensor_free(&y);
}

static void test_clip(void) {
    /* opset 13: bounds as inputs, gradients to x and to both bounds */
    sal_tensor lo = tf32(0, NULL, (float[]){-0.5f}), hi = tf32(0, NULL, (float[]){0.7f});
    gc("Clip", 3, (sal_tensor[]){away(away(trand(2, DIMS(4, 6)), -0.5f), 0.7f), lo, hi}, BOOLS(false, true, true), 0, NULL);
    lo = tf32(0, NULL, (float[]){-0.3f});
    hi = tf32(0, NULL, (float[]){0.4f});
    gc("Clip", 3, (sal_tensor[]){away(away(trand(2, DIMS(4, 6)), -0.3f), 0.4f), lo, hi}, BOOLS(false, false, false), 0, NULL);
    hi = tf32(0, NULL, (float[]){0.2f});
    gc("Clip", 3, (sal_tensor[]){away(trand(2, DIMS(4, 6)), 0.2f), OMITTED, hi}, BOOLS(false, false, true), 0, NULL);
    gc("Clip", 1, (sal_tensor[]){trand(1, DIMS(5))}, BOOLS(false), 0, NULL);

    /* opset 6-10 attributes give the same as opset 13 inputs, gradient included */
    sal_tensor x = tf32(1, DIMS(5), (float[]){-2, -0.5f, 0.1f, 0.9f, 3}), seed = tf32(1, DIMS(5), (float[]){1, 2, 3, 4, 5});
    sal_tensor y1 = {0}, y2 = {0}, d1 = {0}, d2 = {0};
    sal_tensor lo2 = tf32(0, NULL, (float[]){-1}), hi2 = tf32(0, NULL, (float[]){1});
    sal_attr at[2] = {sal_attr_make_float("min", -1), sal_attr_make_float("max", 1)};
    CHECK_OK(run1(9, "Clip", 1, &x, NULL, 2, at, &y1, &seed, &d1));
    CHECK_OK(run1(13, "Clip", 3, (sal_tensor[]){x, lo2, hi2}, BOOLS(false, true, true), 0, NULL, &y2, &seed, &d2));
    sal_tensor want = tf32(1, DIMS(5), (float[]){-1, -0.5f, 0.1f, 0.9f, 1}), wantd = tf32(1, DIMS(5), (float[]){0, 2, 3, 4, 0});
    CHECK(max_diff(&y1, &want) == 0 && max_diff(&y2, &want) == 0, "Clip forward, opsets 9 and 13");
    CHECK(max_diff(&d1, &wantd) == 0 && max_diff(&d2, &wantd) == 0, "Clip gradient, opsets 9 and 13");
    sal_tensor bad = tf32(1, DIMS(2), NULL);
    CHECK_FAILS(run1(13, "Clip", 3, (sal_tensor[]){x, bad, hi2}, NULL, 0, NULL, &y1, NULL, NULL), SAL_ERR_SHAPE, "scalar");
    sal_tensor *fr[] = {&x, &seed, &y1, &y2, &d1, &d2, &lo2, &hi2, &want, &wantd, &bad};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

/* ---- softmax ---- */

/* Entries more than 87 below their row's maximum (Swin's masked scores, -100) give exactly 0, not
 * a subnormal (vsoftmax in core/vmath.c); 86 below, e^-86 / sum to float precision; LogSoftmax
 * keeps x - max - log(sum) for all; a NaN still spreads over its row. Rows of 49 (three vectors
 * and a tail), the far entries among both. */
static void softmax_flush(void) {
    float v[2 * 49];
    for (int i = 0; i < 2 * 49; i++) v[i] = (float)(i % 7) * 0.3f;
    int far[] = {3, 20, 48, 60}; /* lanes of the first vector, the second, the tail; the second row */
    for (size_t i = 0; i < 4; i++) v[far[i]] = i % 2 ? -88.0f : -100.0f;
    v[5] = -86.0f;
    sal_tensor x = tf32(2, DIMS(2, 49), v), y = {0}, l = {0};
    CHECK_OK(run1(13, "Softmax", 1, &x, NULL, 0, NULL, &y, NULL, NULL));
    CHECK_OK(run1(13, "LogSoftmax", 1, &x, NULL, 0, NULL, &l, NULL, NULL));
    const float *yv = sal_f32(&y), *lv = sal_f32(&l);
    double worst = 0, lworst = 0;
    int sub = 0;
    for (int r = 0; r < 2; r++) {
        double m = 1.8, s = 0; /* 6 x 0.3: the rows' maximum */
        for (int j = 0; j < 49; j++) s += exp((double)v[r * 49 + j] - m);
        for (int j = 0; j < 49; j++) {
            int i = r * 49 + j;
            double want = v[i] - m < -87 ? 0 : exp((double)v[i] - m) / s;
            worst = fmax(worst, want ? fabs(yv[i] - want) / want : yv[i] != 0.0f);
            lworst = fmax(lworst, fabs(lv[i] - (v[i] - m - log(s))));
            sub += yv[i] != 0.0f && fabsf(yv[i]) < 1.17549435e-38f;
        }
    }
    CHECK(worst < 1e-5 && sub == 0, "Softmax 87 below the maximum: relative error %g (the far entries exactly 0), "
                                    "%d subnormal outputs", worst, sub);
    CHECK(lworst < 1e-4, "LogSoftmax with far entries: off by %g", lworst);
    sal_tensor_free(&y);
    v[49 + 7] = NAN;
    sal_tensor xn = tf32(2, DIMS(2, 49), v);
    CHECK_OK(run1(13, "Softmax", 1, &xn, NULL, 0, NULL, &y, NULL, NULL));
    int nan = 0;
    for (int i = 0; i < 2 * 49; i++) nan += isnan(sal_f32(&y)[i]);
    CHECK(nan == 49 && !isnan(sal_f32(&y)[0]), "a NaN spreads over its row alone: %d NaN outputs", nan);
    sal_tensor *fr[] = {&x, &xn, &y, &l};
    for (size_t i = 0; i < 4; i++) sal_tensor_free(fr[i]);
}

static void test_softmax(void) {
    static const char *ops[] = {"Softmax", "LogSoftmax"};
    for (int k = 0; k < 2; k++) {
        gc(ops[k], 1, (sal_tensor[]){trand(3, DIMS(2, 3, 4))}, BOOLS(false), 0, NULL);
        /* rows longer than the sixteen running maxima, as Swin's 49 */
        gc(ops[k], 1, (sal_tensor[]){t_rand(&R, 3, DIMS(2, 3, 49), 2.0f)}, BOOLS(false), 0, NULL);
        for (int64_t axis = -3; axis < 3; axis++) {
            sal_attr at[1] = {sal_attr_make_int("axis", axis)};
            gc(ops[k], 1, (sal_tensor[]){t_rand(&R, 3, DIMS(2, 3, 4), 2.0f)}, BOOLS(false), 1, at);
        }
        /* opset 11 flattens at the axis: the same as opset 13 on the input reshaped to 2-D */
        for (int64_t axis = 0; axis <= 2; axis++) {
            sal_tensor x = trand(3, DIMS(2, 3, 4)), seed = trand(3, DIMS(2, 3, 4)), y1 = {0}, d1 = {0}, y2 = {0}, d2 = {0};
            sal_tensor x2 = sal_tensor_view(&x), s2 = sal_tensor_view(&seed);
            int64_t rows = axis == 0 ? 1 : axis == 1 ? 2 : 6;
            x2.ndim = s2.ndim = 2;
            x2.dim[0] = s2.dim[0] = rows;
            x2.dim[1] = s2.dim[1] = 24 / rows;
            sal_attr at[1] = {sal_attr_make_int("axis", axis)};
            CHECK_OK(run1(11, ops[k], 1, &x, NULL, axis == 1 ? 0 : 1, at, &y1, &seed, &d1));
            if (axis == 1) sal_attr_clear(&at[0]); /* opset 11's default axis is 1 */
            CHECK_OK(run1(13, ops[k], 1, &x2, NULL, 0, NULL, &y2, &s2, &d2));
            CHECK(max_diff(&y1, &y2) < 1e-6 && max_diff(&d1, &d2) < 1e-5, "%s opset 11 axis %lld equals the 2-D form",
                  ops[k], (long long)axis);
            sal_tensor *fr[] = {&x, &seed, &y1, &y2, &d1, &d2};
            for (size_t i = 0; i < 6; i++) sal_tensor_free(fr[i]);
        }
    }
    /* large inputs stay finite */
    sal_tensor x = tf32(2, DIMS(1, 3), (float[]){1000, 1001, 1002}), y = {0};
    CHECK_OK(run1(13, "Softmax", 1, &x, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(fabsf(sal_f32(&y)[0] - 0.09003057f) < 1e-6 && fabsf(sal_f32(&y)[2] - 0.66524096f) < 1e-6, "Softmax of large numbers");
    CHECK_OK(run1(13, "LogSoftmax", 1, &x, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(fabsf(sal_f32(&y)[0] + 2.40760596f) < 1e-5 && fabsf(sal_f32(&y)[2] + 0.40760596f) < 1e-5, "LogSoftmax of large numbers");
    sal_attr at[1] = {sal_attr_make_int("axis", 2)};
    CHECK_FAILS(run1(13, "Softmax", 1, &x, NULL, 1, at, &y, NULL, NULL), SAL_ERR_ARG, "axis 2 out of range");
    sal_tensor_free(&x);
    sal_tensor_free(&y);
    softmax_flush();
}

/* ---- batch normalization ---- */

static void test_batchnorm(void) {
    sal_attr at[1] = {sal_attr_make_float("epsilon", 1e-3f)};
    gc("BatchNormalization", 5,
       (sal_tensor[]){trand(4, DIMS(2, 3, 2, 2)), trand(1, DIMS(3)), trand(1, DIMS(3)), trand(1, DIMS(3)), tpos(1, DIMS(3), false)},
       BOOLS(false, true, true, true, true), 1, at);
    gc("BatchNormalization", 5,
       (sal_tensor[]){trand(2, DIMS(4, 3)), trand(1, DIMS(3)), trand(1, DIMS(3)), trand(1, DIMS(3)), tpos(1, DIMS(3), false)},
       BOOLS(false, false, false, false, false), 0, NULL);

    sal_tensor x = tf32(3, DIMS(1, 2, 2), (float[]){1, 2, 3, 4}), sc = tf32(1, DIMS(2), (float[]){2, 0.5f}),
               b = tf32(1, DIMS(2), (float[]){1, -1}), mu = tf32(1, DIMS(2), (float[]){1, 5}),
               var = tf32(1, DIMS(2), (float[]){4, 0.25f}), y = {0};
    sal_tensor in[5] = {x, sc, b, mu, var};
    CHECK_OK(run1(13, "BatchNormalization", 5, in, BOOLS(false, true, true, true, true), 0, NULL, &y, NULL, NULL));
    /* eps 1e-5 is negligible at this tolerance: (x - mu) / sqrt(var) * scale + b */
    sal_tensor want = tf32(3, DIMS(1, 2, 2), (float[]){1, 2, -3, -2});
    CHECK(max_diff(&y, &want) < 1e-4, "BatchNormalization forward (max diff %g)", max_diff(&y, &want));
    sal_attr tm[1] = {sal_attr_make_int("training_mode", 1)};
    CHECK_FAILS(run1(15, "BatchNormalization", 5, in, BOOLS(false, true, true, true, true), 1, tm, &y, NULL, NULL),
                SAL_ERR_UNSUPPORTED, "training mode");
    /* a requested running-mean output is training mode too */
    sal_model *g;
    CHECK_OK(sal_graph_create(NULL, &g));
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 3, DIMS(1, 2, 2)));
    const char *names[] = {"s", "b", "m", "v"};
    for (int i = 0; i < 4; i++) {
        sal_tensor t = {0};
        CHECK_OK(sal_tensor_copy(&t, &in[i + 1]));
        CHECK_OK(sal_graph_add_const(g, names[i], &t));
    }
    CHECK_OK(sal_graph_add_node(g, "BatchNormalization", "bn", 5, (const char *[]){"x", "s", "b", "m", "v"}, 2,
                                (const char *[]){"y", "rm"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_FAILS(sal_graph_finalize(g), SAL_ERR_UNSUPPORTED, "output 1");
    sal_model_free(g);
    for (int i = 0; i < 5; i++) sal_tensor_free(&in[i]);
    sal_tensor_free(&want);
    sal_tensor_free(&y);
}

/* ---- reductions ---- */

static void test_reduce(void) {
    static const char *ops[] = {"ReduceSum", "ReduceMean"};
    for (int k = 0; k < 2; k++) {
        gc(ops[k], 1, (sal_tensor[]){trand(3, DIMS(2, 3, 4))}, BOOLS(false), 0, NULL); /* all axes */
        sal_attr a1[2] = {sal_attr_make_ints("axes", 2, DIMS(0, 2)), sal_attr_make_int("keepdims", 0)};
        sal_attr a2[1] = {sal_attr_make_ints("axes", 1, DIMS(-1))};
        sal_attr a3[1] = {sal_attr_make_ints("axes", 2, DIMS(1, 2))};
        /* ReduceSum takes axes as an input from opset 13 (the harness's opset) */
        if (k == 0) {
            sal_attr kd[1] = {sal_attr_make_int("keepdims", 0)};
            gc(ops[k], 2, (sal_tensor[]){trand(3, DIMS(2, 3, 4)), VEC(0, 2)}, BOOLS(false, true), 1, kd);
            gc(ops[k], 2, (sal_tensor[]){trand(3, DIMS(2, 3, 4)), VEC(-1)}, BOOLS(false, true), 0, NULL);
            gc(ops[k], 2, (sal_tensor[]){trand(4, DIMS(2, 3, 2, 2)), VEC(1, 2)}, BOOLS(false, true), 0, NULL);
            for (int i = 0; i < 2; i++) sal_attr_clear(&a1[i]);
            sal_attr_clear(&a2[0]);
            sal_attr_clear(&a3[0]);
        } else {
            gc(ops[k], 1, (sal_tensor[]){trand(3, DIMS(2, 3, 4))}, BOOLS(false), 2, a1);
            gc(ops[k], 1, (sal_tensor[]){trand(3, DIMS(2, 3, 4))}, BOOLS(false), 1, a2);
            gc(ops[k], 1, (sal_tensor[]){trand(4, DIMS(2, 3, 2, 2))}, BOOLS(false), 1, a3);
        }
    }
    /* hand-computed values; ReduceSum opset 11 (attribute) and 13 (input) agree */
    sal_tensor x = tf32(2, DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6}), y = {0}, seed = tf32(2, DIMS(2, 1), (float[]){1, 2}), dx = {0};
    sal_attr a[1] = {sal_attr_make_ints("axes", 1, DIMS(1))};
    CHECK_OK(run1(11, "ReduceSum", 1, &x, NULL, 1, a, &y, &seed, &dx));
    sal_tensor w = tf32(2, DIMS(2, 1), (float[]){6, 15}), wd = tf32(2, DIMS(2, 3), (float[]){1, 1, 1, 2, 2, 2});
    CHECK(shape_is(&y, 2, DIMS(2, 1)) && max_diff(&y, &w) == 0 && max_diff(&dx, &wd) == 0, "ReduceSum opset 11");
    sal_tensor ax = VEC(-1);
    CHECK_OK(run1(13, "ReduceSum", 2, (sal_tensor[]){x, ax}, NULL, 0, NULL, &y, &seed, &dx));
    CHECK(shape_is(&y, 2, DIMS(2, 1)) && max_diff(&y, &w) == 0 && max_diff(&dx, &wd) == 0, "ReduceSum opset 13");
    sal_attr m[2] = {sal_attr_make_ints("axes", 1, DIMS(0)), sal_attr_make_int("keepdims", 0)};
    CHECK_OK(run1(13, "ReduceMean", 1, &x, NULL, 2, m, &y, NULL, NULL));
    sal_tensor wm = tf32(1, DIMS(3), (float[]){2.5f, 3.5f, 4.5f});
    CHECK(shape_is(&y, 1, DIMS(3)) && max_diff(&y, &wm) == 0, "ReduceMean axis 0 without keepdims");
    /* empty axes: all of them, or nothing with noop_with_empty_axes */
    sal_tensor none = ti64(1, DIMS(0), NULL);
    CHECK_OK(run1(13, "ReduceSum", 2, (sal_tensor[]){x, none}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(shape_is(&y, 2, DIMS(1, 1)) && sal_f32(&y)[0] == 21, "ReduceSum with empty axes reduces all");
    sal_attr nop[1] = {sal_attr_make_int("noop_with_empty_axes", 1)};
    CHECK_OK(run1(13, "ReduceSum", 2, (sal_tensor[]){x, OMITTED}, NULL, 1, nop, &y, NULL, NULL));
    CHECK(max_diff(&y, &x) == 0 && shape_is(&y, 2, DIMS(2, 3)), "ReduceSum noop_with_empty_axes");
    sal_tensor dup = VEC(1, -1);
    CHECK_FAILS(run1(13, "ReduceSum", 2, (sal_tensor[]){x, dup}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_ARG, "twice");
    sal_tensor *fr[] = {&x, &y, &seed, &dx, &w, &wd, &ax, &wm, &none, &dup};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

/* ---- shape ops ---- */

static void test_shape_gather(void) {
    sal_tensor x = tf32(3, DIMS(2, 3, 4), NULL), y = {0};
    CHECK_OK(run1(13, "Shape", 1, &x, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(shape_is(&y, 1, DIMS(3)) && i64_is(&y, 3, DIMS(2, 3, 4)), "Shape");
    struct {
        int64_t start, end;
        bool has_start, has_end;
        int64_t n, want[3];
    } sc[] = {{1, 0, true, false, 2, {3, 4}},  {0, -1, false, true, 2, {2, 3}}, {-1, 0, true, false, 1, {4}},
              {-10, 10, true, true, 3, {2, 3, 4}}, {2, 1, true, true, 0, {0}}};
    for (size_t k = 0; k < sizeof sc / sizeof *sc; k++) {
        sal_attr at[2];
        int na = 0;
        if (sc[k].has_start) at[na++] = sal_attr_make_int("start", sc[k].start);
        if (sc[k].has_end) at[na++] = sal_attr_make_int("end", sc[k].end);
        CHECK_OK(run1(15, "Shape", 1, &x, NULL, na, at, &y, NULL, NULL));
        CHECK(i64_is(&y, sc[k].n, sc[k].want), "Shape case %zu", k);
    }

    /* int64 gather with negative indices, scalar index gives a scalar */
    sal_tensor d = VEC(10, 20, 30, 40), ix = VEC(3, -1, 0), s0 = ti64(0, NULL, (int64_t[]){-2});
    CHECK_OK(run1(13, "Gather", 2, (sal_tensor[]){d, ix}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(i64_is(&y, 3, DIMS(40, 40, 10)), "Gather int64");
    CHECK_OK(run1(13, "Gather", 2, (sal_tensor[]){d, s0}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(y.ndim == 0 && i64_is(&y, 1, DIMS(30)), "Gather scalar index");
    sal_tensor oob = VEC(4);
    CHECK_FAILS(run1(13, "Gather", 2, (sal_tensor[]){d, oob}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_ARG, "out of range");
    /* float data (2,3), axis 1, 2-D indices -> (2,2,2) */
    sal_tensor f = tf32(2, DIMS(2, 3), (float[]){0, 1, 2, 3, 4, 5}), i2 = ti64(2, DIMS(2, 2), (int64_t[]){2, 0, -1, 1});
    sal_attr at[1] = {sal_attr_make_int("axis", -1)};
    CHECK_OK(run1(13, "Gather", 2, (sal_tensor[]){f, i2}, NULL, 1, at, &y, NULL, NULL));
    sal_tensor w = tf32(3, DIMS(2, 2, 2), (float[]){2, 0, 2, 1, 5, 3, 5, 4});
    CHECK(shape_is(&y, 3, DIMS(2, 2, 2)) && max_diff(&y, &w) == 0, "Gather float axis -1");
    /* gradients: repeated indices accumulate */
    sal_attr a1[1] = {sal_attr_make_int("axis", 1)};
    gc("Gather", 2, (sal_tensor[]){trand(3, DIMS(2, 4, 3)), ti64(2, DIMS(2, 3), (int64_t[]){0, 3, -1, 1, 1, 0})},
       BOOLS(false, true), 1, a1);
    gc("Gather", 2, (sal_tensor[]){trand(2, DIMS(5, 3)), VEC(4, 0, 4)}, BOOLS(false, true), 0, NULL);
    sal_tensor *fr[] = {&x, &y, &d, &ix, &s0, &oob, &f, &i2, &w};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

static void test_squeeze_concat(void) {
    sal_tensor x = tf32(2, DIMS(2, 3), NULL), y = {0}, ax = VEC(0, -1);
    CHECK_OK(run1(13, "Unsqueeze", 2, (sal_tensor[]){x, ax}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(shape_is(&y, 4, DIMS(1, 2, 3, 1)), "Unsqueeze opset 13");
    sal_attr ua[1] = {sal_attr_make_ints("axes", 2, DIMS(3, 1))};
    CHECK_OK(run1(11, "Unsqueeze", 1, &x, NULL, 1, ua, &y, NULL, NULL));
    CHECK(shape_is(&y, 4, DIMS(2, 1, 3, 1)), "Unsqueeze opset 11");
    CHECK_FAILS(run1(13, "Unsqueeze", 1, &x, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_FORMAT, "axes are required");
    gc("Unsqueeze", 2, (sal_tensor[]){trand(2, DIMS(2, 3)), VEC(1)}, BOOLS(false, true), 0, NULL);

    sal_tensor z = tf32(4, DIMS(1, 3, 1, 2), NULL), a2 = VEC(-2), a3 = VEC(1);
    CHECK_OK(run1(13, "Squeeze", 1, &z, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(shape_is(&y, 2, DIMS(3, 2)), "Squeeze without axes");
    CHECK_OK(run1(13, "Squeeze", 2, (sal_tensor[]){z, a2}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(shape_is(&y, 3, DIMS(1, 3, 2)), "Squeeze axis -2");
    CHECK_FAILS(run1(13, "Squeeze", 2, (sal_tensor[]){z, a3}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE, "size 3");
    sal_tensor a0 = ti64(1, DIMS(0), NULL);
    CHECK_OK(run1(13, "Squeeze", 2, (sal_tensor[]){z, a0}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(shape_is(&y, 2, DIMS(3, 2)), "Squeeze with empty axes");
    sal_tensor_free(&a0);
    sal_attr sa[1] = {sal_attr_make_ints("axes", 1, DIMS(0))};
    CHECK_OK(run1(11, "Squeeze", 1, &z, NULL, 1, sa, &y, NULL, NULL));
    CHECK(shape_is(&y, 3, DIMS(3, 1, 2)), "Squeeze opset 11");
    gc("Squeeze", 1, (sal_tensor[]){trand(3, DIMS(2, 1, 3))}, BOOLS(false), 0, NULL);

    /* Concat: int64 vectors, and float gradients along several axes */
    sal_tensor c1 = VEC(1), c2 = VEC(2, 3);
    sal_attr ca[1] = {sal_attr_make_int("axis", 0)};
    CHECK_OK(run1(13, "Concat", 2, (sal_tensor[]){c1, c2}, NULL, 1, ca, &y, NULL, NULL));
    CHECK(i64_is(&y, 3, DIMS(1, 2, 3)), "Concat int64");
    sal_tensor f1 = tf32(2, DIMS(2, 1), (float[]){1, 2}), f2 = tf32(2, DIMS(2, 2), (float[]){3, 4, 5, 6});
    sal_attr cb[1] = {sal_attr_make_int("axis", -1)};
    CHECK_OK(run1(13, "Concat", 2, (sal_tensor[]){f1, f2}, BOOLS(false, true), 1, cb, &y, NULL, NULL));
    sal_tensor w = tf32(2, DIMS(2, 3), (float[]){1, 3, 4, 2, 5, 6});
    CHECK(max_diff(&y, &w) == 0, "Concat float axis -1");
    sal_attr cc[1] = {sal_attr_make_int("axis", 0)};
    CHECK_FAILS(run1(13, "Concat", 2, (sal_tensor[]){f1, f2}, NULL, 1, cc, &y, NULL, NULL), SAL_ERR_SHAPE, "does not fit");
    for (int64_t axis = -1; axis < 3; axis++) {
        sal_attr at[1] = {sal_attr_make_int("axis", axis)};
        int64_t d1[3] = {2, 3, 2}, d2[3] = {2, 3, 2};
        int64_t a = axis < 0 ? 2 : axis;
        d1[a] = 1;
        d2[a] = 3;
        gc("Concat", 3, (sal_tensor[]){trand(3, d1), trand(3, DIMS(2, 3, 2)), trand(3, d2)}, BOOLS(false, true, false), 1, at);
    }
    sal_tensor *fr[] = {&x, &y, &ax, &z, &a2, &a3, &c1, &c2, &f1, &f2, &w};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

static void test_reshape_transpose(void) {
    sal_tensor x = tf32(3, DIMS(2, 3, 4), NULL), y = {0};
    struct {
        sal_tensor s;
        int nd;
        int64_t want[4];
    } ok[] = {{VEC(0, -1), 2, {2, 12}}, {VEC(-1), 1, {24}}, {VEC(4, -1, 2), 3, {4, 3, 2}}, {VEC(0, 0, 2, 2), 4, {2, 3, 2, 2}}};
    for (size_t k = 0; k < sizeof ok / sizeof *ok; k++) {
        CHECK_OK(run1(13, "Reshape", 2, (sal_tensor[]){x, ok[k].s}, NULL, 0, NULL, &y, NULL, NULL));
        CHECK(shape_is(&y, ok[k].nd, ok[k].want), "Reshape case %zu", k);
        sal_tensor_free(&ok[k].s);
    }
    sal_tensor bad1 = VEC(-1, -1), bad2 = VEC(5, -1), bad3 = VEC(2, 3, 5), bad4 = VEC(0, 0, 0, 0);
    CHECK_FAILS(run1(13, "Reshape", 2, (sal_tensor[]){x, bad1}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_ARG, "more than one -1");
    CHECK_FAILS(run1(13, "Reshape", 2, (sal_tensor[]){x, bad2}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE, "cannot reshape");
    CHECK_FAILS(run1(13, "Reshape", 2, (sal_tensor[]){x, bad3}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE, "cannot reshape");
    CHECK_FAILS(run1(13, "Reshape", 2, (sal_tensor[]){x, bad4}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE, "lacks");
    /* allowzero: 0 is a real zero-size dimension */
    sal_tensor e = tf32(2, DIMS(0, 3), NULL), s0 = VEC(3, 0);
    sal_attr az[1] = {sal_attr_make_int("allowzero", 1)};
    CHECK_OK(run1(14, "Reshape", 2, (sal_tensor[]){e, s0}, NULL, 1, az, &y, NULL, NULL));
    CHECK(shape_is(&y, 2, DIMS(3, 0)), "Reshape allowzero");
    gc("Reshape", 2, (sal_tensor[]){trand(3, DIMS(2, 3, 2)), VEC(3, -1)}, BOOLS(false, true), 0, NULL);

    sal_tensor t = tf32(2, DIMS(2, 3), (float[]){0, 1, 2, 3, 4, 5});
    CHECK_OK(run1(13, "Transpose", 1, &t, NULL, 0, NULL, &y, NULL, NULL));
    sal_tensor w = tf32(2, DIMS(3, 2), (float[]){0, 3, 1, 4, 2, 5});
    CHECK(shape_is(&y, 2, DIMS(3, 2)) && max_diff(&y, &w) == 0, "Transpose default");
    sal_tensor ti = ti64(3, DIMS(1, 2, 3), (int64_t[]){0, 1, 2, 3, 4, 5});
    sal_attr pa[1] = {sal_attr_make_ints("perm", 3, DIMS(2, 0, 1))};
    CHECK_OK(run1(13, "Transpose", 1, &ti, BOOLS(false), 1, pa, &y, NULL, NULL));
    CHECK(shape_is(&y, 3, DIMS(3, 1, 2)) && i64_is(&y, 6, DIMS(0, 3, 1, 4, 2, 5)), "Transpose int64 perm (2,0,1)");
    sal_attr pb[1] = {sal_attr_make_ints("perm", 2, DIMS(0, 0))};
    CHECK_FAILS(run1(13, "Transpose", 1, &t, NULL, 1, pb, &y, NULL, NULL), SAL_ERR_ARG, "permutation");
    gc("Transpose", 1, (sal_tensor[]){trand(3, DIMS(2, 3, 4))}, BOOLS(false), 0, NULL);
    sal_attr pc[1] = {sal_attr_make_ints("perm", 4, DIMS(0, 2, 3, 1))};
    gc("Transpose", 1, (sal_tensor[]){trand(4, DIMS(2, 3, 2, 4))}, BOOLS(false), 1, pc);
    /* shapes that fill the 16 x 16 tiles of the 2-D transposes (shape.c: transpose_tiles; perms 0 and
     * 1) and leave edges in both directions, against index loops; the gradient (a transpose back) */
    static const int64_t perms[3][4] = {{0, 2, 3, 1}, {0, 3, 1, 2}, {2, 3, 0, 1}};
    for (int k = 0; k < 3; k++) {
        const int64_t d[4] = {2, 19, 5, 20}, *pm = perms[k];
        sal_tensor xt = trand(4, d), yt = {0};
        sal_attr pp[1] = {sal_attr_make_ints("perm", 4, pm)};
        CHECK_OK(run1(13, "Transpose", 1, &xt, NULL, 1, pp, &yt, NULL, NULL));
        int64_t od[4], ist[4] = {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1}, i[4], bad = 0, e = 0;
        for (int a = 0; a < 4; a++) od[a] = d[pm[a]];
        for (i[0] = 0; i[0] < od[0]; i[0]++)
            for (i[1] = 0; i[1] < od[1]; i[1]++)
                for (i[2] = 0; i[2] < od[2]; i[2]++)
                    for (i[3] = 0; i[3] < od[3]; i[3]++, e++) {
                        int64_t src = 0;
                        for (int a = 0; a < 4; a++) src += i[a] * ist[pm[a]];
                        bad += sal_f32(&yt)[e] != sal_f32(&xt)[src];
                    }
        CHECK(shape_is(&yt, 4, od) && bad == 0, "Transpose perm %d: %lld elements misplaced", k, (long long)bad);
        if (k == 0) {
            sal_attr pg[1] = {sal_attr_make_ints("perm", 4, pm)};
            gc("Transpose", 1, (sal_tensor[]){trand(4, DIMS(1, 9, 4, 5))}, BOOLS(false), 1, pg);
        }
        sal_tensor_free(&xt), sal_tensor_free(&yt);
    }
    sal_tensor *fr[] = {&x, &y, &bad1, &bad2, &bad3, &bad4, &e, &s0, &t, &w, &ti};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

static void test_slice(void) {
    int64_t v[12];
    for (int i = 0; i < 12; i++) v[i] = i;
    sal_tensor x = ti64(2, DIMS(3, 4), v), y = {0};
    struct {
        sal_tensor st, en, ax, sp;
        int64_t dim[2], n, want[12];
    } sc[] = {
        /* rows 1.., every other column up to the last */
        {VEC(1, 0), VEC(1000, -1), VEC(0, 1), VEC(1, 2), {2, 2}, 4, {4, 6, 8, 10}},
        /* columns reversed, huge negative end */
        {VEC(-1), VEC(INT64_MIN), VEC(1), VEC(-1), {3, 4}, 12, {3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8}},
        /* negative axis, huge end, default steps */
        {VEC(2), VEC(INT64_MAX), VEC(-1), OMITTED, {3, 2}, 6, {2, 3, 6, 7, 10, 11}},
        /* default axes: the first ones */
        {VEC(1, 1), VEC(2, 3), OMITTED, OMITTED, {1, 2}, 2, {5, 6}},
        /* empty: start past the end */
        {VEC(5), VEC(10), VEC(0), OMITTED, {0, 4}, 0, {0}},
        /* step -2 from the last row */
        {VEC(-1, 3), VEC(-5, 0), VEC(0, 1), VEC(-2, -3), {2, 1}, 2, {11, 3}},
    };
    for (size_t k = 0; k < sizeof sc / sizeof *sc; k++) {
        CHECK_OK(run1(13, "Slice", 5, (sal_tensor[]){x, sc[k].st, sc[k].en, sc[k].ax, sc[k].sp}, NULL, 0, NULL, &y, NULL, NULL));
        CHECK(shape_is(&y, 2, sc[k].dim) && i64_is(&y, sc[k].n, sc[k].want), "Slice case %zu: shape (%lld,%lld)", k,
              (long long)y.dim[0], (long long)y.dim[1]);
        sal_tensor *fr[] = {&sc[k].st, &sc[k].en, &sc[k].ax, &sc[k].sp};
        for (int i = 0; i < 4; i++) sal_tensor_free(fr[i]);
    }
    sal_tensor z = VEC(0), o = VEC(1), zero = VEC(0);
    CHECK_FAILS(run1(13, "Slice", 5, (sal_tensor[]){x, z, o, z, zero}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_ARG, "step 0");
    /* opset 9: attributes */
    sal_attr at[3] = {sal_attr_make_ints("starts", 1, DIMS(1)), sal_attr_make_ints("ends", 1, DIMS(-1)),
                      sal_attr_make_ints("axes", 1, DIMS(1))};
    CHECK_OK(run1(9, "Slice", 1, &x, NULL, 3, at, &y, NULL, NULL));
    CHECK(shape_is(&y, 2, DIMS(3, 2)) && i64_is(&y, 6, DIMS(1, 2, 5, 6, 9, 10)), "Slice opset 9");
    /* gradients scatter back, with positive and negative steps */
    gc("Slice", 5, (sal_tensor[]){trand(3, DIMS(4, 3, 5)), VEC(1, -1), VEC(100, -100), VEC(0, 2), VEC(2, -2)},
       BOOLS(false, true, true, true, true), 0, NULL);
    gc("Slice", 3, (sal_tensor[]){trand(2, DIMS(4, 6)), VEC(1, 2), VEC(3, 5)}, BOOLS(false, true, true), 0, NULL);
    sal_tensor *fr[] = {&x, &y, &z, &o, &zero};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

static void test_cast_cos_expand_range(void) {
    sal_tensor f = tf32(1, DIMS(4), (float[]){1.7f, -2.7f, 0, 3}), y = {0};
    sal_attr to7[1] = {sal_attr_make_int("to", 7)};
    CHECK_OK(run1(13, "Cast", 1, &f, NULL, 1, to7, &y, NULL, NULL));
    CHECK(i64_is(&y, 4, DIMS(1, -2, 0, 3)), "Cast float to int64");
    sal_tensor i = VEC(5, -3);
    sal_attr to1[1] = {sal_attr_make_int("to", 1)};
    CHECK_OK(run1(13, "Cast", 1, &i, NULL, 1, to1, &y, NULL, NULL));
    CHECK(y.dtype == SAL_F32 && sal_f32(&y)[0] == 5 && sal_f32(&y)[1] == -3, "Cast int64 to float");
    /* INT32 is held as int64 with int32's range (tf2onnx's shape arithmetic) */
    sal_attr to6[1] = {sal_attr_make_int("to", 6)};
    CHECK_OK(run1(13, "Cast", 1, &f, NULL, 1, to6, &y, NULL, NULL));
    CHECK(i64_is(&y, 4, DIMS(1, -2, 0, 3)), "Cast float to int32");
    sal_tensor big = VEC(2147483647, -2147483648LL), over = VEC(5, 2147483648LL);
    sal_tensor fbig = tf32(1, DIMS(2), (float[]){-2147483648.0f, 2147483648.0f});
    sal_attr to6b[1] = {sal_attr_make_int("to", 6)}, to6c[1] = {sal_attr_make_int("to", 6)},
             to6d[1] = {sal_attr_make_int("to", 6)};
    CHECK_OK(run1(13, "Cast", 1, &big, NULL, 1, to6b, &y, NULL, NULL));
    CHECK(i64_is(&y, 2, DIMS(2147483647, -2147483648LL)), "Cast int64 to int32 at its bounds");
    CHECK_FAILS(run1(13, "Cast", 1, &over, NULL, 1, to6c, &y, NULL, NULL), SAL_ERR_NUMERIC,
                "value 2147483648 at flat index 1 does not fit int32");
    CHECK_FAILS(run1(13, "Cast", 1, &fbig, NULL, 1, to6d, &y, NULL, NULL), SAL_ERR_NUMERIC,
                "at flat index 1 does not fit int32");
    sal_attr to10[1] = {sal_attr_make_int("to", 10)};
    CHECK_FAILS(run1(13, "Cast", 1, &f, NULL, 1, to10, &y, NULL, NULL), SAL_ERR_UNSUPPORTED, "data type 10");
    sal_tensor_free(&big);
    sal_tensor_free(&over);
    sal_tensor_free(&fbig);
    sal_tensor nan = tf32(1, DIMS(1), (float[]){NAN});
    sal_attr to7b[1] = {sal_attr_make_int("to", 7)};
    CHECK_FAILS(run1(13, "Cast", 1, &nan, NULL, 1, to7b, &y, NULL, NULL), SAL_ERR_NUMERIC, "does not fit");
    sal_attr to1b[1] = {sal_attr_make_int("to", 1)};
    gc("Cast", 1, (sal_tensor[]){trand(2, DIMS(2, 3))}, BOOLS(false), 1, to1b);

    /* ConstantOfShape: default float zeros, or the value tensor */
    sal_tensor s = VEC(2, 3);
    CHECK_OK(run1(13, "ConstantOfShape", 1, &s, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(y.dtype == SAL_F32 && shape_is(&y, 2, DIMS(2, 3)) && sal_f32(&y)[5] == 0, "ConstantOfShape default");
    sal_attr va[1] = {{.name = sal_strdup("value"), .type = SAL_ATTR_TENSOR, .t = ti64(1, DIMS(1), (int64_t[]){7})}};
    CHECK_OK(run1(13, "ConstantOfShape", 1, &s, NULL, 1, va, &y, NULL, NULL));
    CHECK(i64_is(&y, 6, DIMS(7, 7, 7, 7, 7, 7)), "ConstantOfShape int64 value");
    sal_tensor e = ti64(1, DIMS(0), NULL);
    sal_attr vb[1] = {{.name = sal_strdup("value"), .type = SAL_ATTR_TENSOR, .t = tf32(1, DIMS(1), (float[]){2.5f})}};
    CHECK_OK(run1(13, "ConstantOfShape", 1, &e, NULL, 1, vb, &y, NULL, NULL));
    CHECK(y.ndim == 0 && sal_f32(&y)[0] == 2.5f, "ConstantOfShape of an empty shape is a scalar");

    /* Expand broadcasts both ways; its gradient sums over the copies */
    sal_tensor x = tf32(2, DIMS(3, 1), (float[]){1, 2, 3}), es = VEC(2, 1, 4);
    CHECK_OK(run1(13, "Expand", 2, (sal_tensor[]){x, es}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(shape_is(&y, 3, DIMS(2, 3, 4)) && sal_f32(&y)[0] == 1 && sal_f32(&y)[7] == 2 && sal_f32(&y)[23] == 3, "Expand");
    gc("Expand", 2, (sal_tensor[]){trand(3, DIMS(3, 1, 2)), VEC(2, 1, 3, 1)}, BOOLS(false, true), 0, NULL);

    /* Range */
    sal_tensor a = ti64(0, NULL, (int64_t[]){10}), b = ti64(0, NULL, (int64_t[]){4}), d = ti64(0, NULL, (int64_t[]){-3});
    CHECK_OK(run1(13, "Range", 3, (sal_tensor[]){a, b, d}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(i64_is(&y, 2, DIMS(10, 7)), "Range int64 negative delta");
    sal_tensor_free(&a);
    sal_tensor_free(&b);
    sal_tensor_free(&d);
    /* extreme int64 bounds: exact count, no overflow */
    a = ti64(0, NULL, (int64_t[]){INT64_MIN});
    b = ti64(0, NULL, (int64_t[]){INT64_MAX});
    d = ti64(0, NULL, (int64_t[]){(int64_t)1 << 62});
    CHECK_OK(run1(13, "Range", 3, (sal_tensor[]){a, b, d}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(i64_is(&y, 4, DIMS(INT64_MIN, INT64_MIN / 2, 0, INT64_MAX / 2 + 1)), "Range over the whole int64 span");
    sal_tensor fa = tf32(0, NULL, (float[]){1}), fb = tf32(0, NULL, (float[]){5}), fd = tf32(0, NULL, (float[]){2});
    CHECK_OK(run1(13, "Range", 3, (sal_tensor[]){fa, fb, fd}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(shape_is(&y, 1, DIMS(2)) && sal_f32(&y)[0] == 1 && sal_f32(&y)[1] == 3, "Range float");
    gc("Range", 3, (sal_tensor[]){tf32(0, NULL, (float[]){0.3f}), tf32(0, NULL, (float[]){5.05f}), tf32(0, NULL, (float[]){0.7f})},
       BOOLS(false, false, false), 0, NULL);
    sal_tensor *fr[] = {&f, &y, &i, &nan, &s, &e, &x, &es, &a, &b, &d, &fa, &fb, &fd};
    for (size_t k = 0; k < sizeof fr / sizeof *fr; k++) sal_tensor_free(fr[k]);
}

/* x.view(x.size(0), -1) as PyTorch exports it, on a dynamic batch; opset 11 puts Unsqueeze's axes
 * in an attribute, opset 13 in an input. */
static void test_view_flatten(int64_t opset) {
    sal_model *g;
    CHECK_OK(sal_graph_create("<view>", &g));
    g->opset = opset;
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 4, DIMS(-1, 3, 4, 4)));
    sal_tensor c0 = ti64(0, NULL, (int64_t[]){0}), cm1 = VEC(-1), ax = VEC(0);
    CHECK_OK(sal_graph_add_const(g, "zero", &c0));
    CHECK_OK(sal_graph_add_const(g, "minus1", &cm1));
    CHECK_OK(sal_graph_add_node(g, "Shape", NULL, 1, (const char *[]){"x"}, 1, (const char *[]){"s"}, 0, NULL));
    sal_attr ga[1] = {sal_attr_make_int("axis", 0)};
    CHECK_OK(sal_graph_add_node(g, "Gather", NULL, 2, (const char *[]){"s", "zero"}, 1, (const char *[]){"b"}, 1, ga));
    if (opset >= 13) {
        CHECK_OK(sal_graph_add_const(g, "axes", &ax));
        CHECK_OK(sal_graph_add_node(g, "Unsqueeze", NULL, 2, (const char *[]){"b", "axes"}, 1, (const char *[]){"b1"}, 0, NULL));
    } else {
        sal_tensor_free(&ax);
        sal_attr ua[1] = {sal_attr_make_ints("axes", 1, DIMS(0))};
        CHECK_OK(sal_graph_add_node(g, "Unsqueeze", NULL, 1, (const char *[]){"b"}, 1, (const char *[]){"b1"}, 1, ua));
    }
    sal_attr ca[1] = {sal_attr_make_int("axis", 0)};
    CHECK_OK(sal_graph_add_node(g, "Concat", NULL, 2, (const char *[]){"b1", "minus1"}, 1, (const char *[]){"shp"}, 1, ca));
    CHECK_OK(sal_graph_add_node(g, "Reshape", NULL, 2, (const char *[]){"x", "shp"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    CHECK(g->nnode == 5, "view pattern keeps its %d nodes (nothing to fold)", g->nnode);
    sal_session *s;
    CHECK_OK(sal_session_new(g, &s));
    for (int64_t n = 1; n <= 5; n += 4) {
        sal_tensor x = trand(4, DIMS(n, 3, 4, 4)), seed = trand(2, DIMS(n, 48));
        const sal_tensor *y, *gr;
        CHECK_OK(sal_forward(s, 1, &x, &y));
        CHECK(shape_is(y, 2, DIMS(n, 48)) && !memcmp(y->data, x.data, (size_t)n * 48 * sizeof(float)),
              "opset %lld: view at batch %lld gives (%lld,%lld)", (long long)opset, (long long)n, (long long)y->dim[0],
              (long long)(y->ndim > 1 ? y->dim[1] : 0));
        CHECK_OK(sal_input_gradient(s, &seed, &gr));
        CHECK(shape_is(gr, 4, DIMS(n, 3, 4, 4)) && !memcmp(gr->data, seed.data, (size_t)n * 48 * sizeof(float)),
              "opset %lld: the gradient through the view at batch %lld is the seed", (long long)opset, (long long)n);
        sal_tensor_free(&x);
        sal_tensor_free(&seed);
    }
    sal_session_free(s);
    sal_model_free(g);
}

/* Shape arithmetic on constants folds away; a float value built from the input's shape
 * (ConstantOfShape(Shape(x)) + x) still lets gradients through. */
static void test_fold_and_shape_grad(void) {
    sal_model *g;
    CHECK_OK(sal_graph_create("<fold>", &g));
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 1, DIMS(6)));
    sal_tensor c = tf32(2, DIMS(2, 3), NULL);
    CHECK_OK(sal_graph_add_const(g, "c", &c));
    CHECK_OK(sal_graph_add_node(g, "Shape", NULL, 1, (const char *[]){"c"}, 1, (const char *[]){"s"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "Reshape", NULL, 2, (const char *[]){"x", "s"}, 1, (const char *[]){"x2"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "Shape", NULL, 1, (const char *[]){"x2"}, 1, (const char *[]){"s2"}, 0, NULL));
    sal_attr va[1] = {{.name = sal_strdup("value"), .type = SAL_ATTR_TENSOR, .t = tf32(1, DIMS(1), (float[]){1})}};
    CHECK_OK(sal_graph_add_node(g, "ConstantOfShape", NULL, 1, (const char *[]){"s2"}, 1, (const char *[]){"ones"}, 1, va));
    CHECK_OK(sal_graph_add_node(g, "Mul", NULL, 2, (const char *[]){"x2", "ones"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    CHECK(g->nnode == 4, "the Shape of a constant folds (%d nodes left)", g->nnode);
    sal_session *s;
    CHECK_OK(sal_session_new(g, &s));
    sal_tensor x = tf32(1, DIMS(6), (float[]){1, 2, 3, 4, 5, 6}), seed = tf32(2, DIMS(2, 3), (float[]){1, 1, 1, 2, 2, 2});
    const sal_tensor *y, *gr;
    CHECK_OK(sal_forward(s, 1, &x, &y));
    CHECK(shape_is(y, 2, DIMS(2, 3)) && sal_f32(y)[5] == 6, "Reshape to a folded shape");
    CHECK_OK(sal_input_gradient(s, &seed, &gr));
    CHECK(!memcmp(gr->data, seed.data, 6 * sizeof(float)), "gradient past ConstantOfShape(Shape(x))");
    sal_tensor_free(&x);
    sal_tensor_free(&seed);
    sal_session_free(s);
    sal_model_free(g);
}

int main(void) {
    sal_rng_seed(&R, 11);
    test_binary_grads();
    test_binary_forward();
    test_activations();
    test_clip();
    test_softmax();
    test_batchnorm();
    test_reduce();
    test_shape_gather();
    test_squeeze_concat();
    test_reshape_transpose();
    test_slice();
    test_cast_cos_expand_range();
    test_view_flatten(11);
    test_view_flatten(13);
    test_fold_and_shape_grad();
    return t_done("test_ops_misc");
}
