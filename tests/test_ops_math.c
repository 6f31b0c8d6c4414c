/* Pointwise math, activations and the variadic elementwise ops (src/ops/math.c): gradients against
 * finite differences (kinks avoided), forward values against closed forms computed in double,
 * PyTorch's conventions at kinks and at Pow's singular points (values printed by torch 1.13),
 * broadcasting, int64 variants, traits, and refusals that name the node. */
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

static sal_tensor trand(int ndim, const int64_t *dim, float scale) { return t_rand(&R, ndim, dim, scale); }

/* |v| + 0.5, every other one negated when allow_neg: away from 0 */
static sal_tensor tpos(int ndim, const int64_t *dim, bool allow_neg) {
    sal_tensor t = trand(ndim, dim, 1.0f);
    for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++) {
        float v = fabsf(sal_f32(&t)[i]) + 0.5f;
        sal_f32(&t)[i] = allow_neg && (i % 2) ? -v : v;
    }
    return t;
}

/* Moves elements within 0.05 of a kink at v 0.1 away, so that finite differences never straddle it. */
static sal_tensor away(sal_tensor t, float v) {
    for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++) {
        float *p = &sal_f32(&t)[i];
        if (fabsf(*p - v) < 0.05f) *p = *p < v ? v - 0.1f : v + 0.1f;
    }
    return t;
}

static void gc(const char *op, int nin, sal_tensor *in, const bool *cst, int nattr, sal_attr *attr) {
    t_gradcheck((t_gradcheck_spec){.op = op, .nin = nin, .in = in, .is_const = cst, .nattr = nattr, .attr = attr,
                                   .seed = 11});
    for (int i = 0; i < nin; i++) sal_tensor_free(&in[i]);
}

/* Runs one node (opset 13) and copies output 0 to *y. cst[i] makes input i a constant (NULL: int64
 * ones). With a seed, the gradients of sum(seed * y) w.r.t. every float graph input go to dx[i]
 * (dx may be NULL). Consumes attr. */
static sal_status run1(const char *op, int nin, const sal_tensor *in, const bool *cst, int nattr, sal_attr *attr,
                       sal_tensor *y, const sal_tensor *seed, sal_tensor *dx) {
    sal_model *g = NULL;
    sal_session *s = NULL;
    char names[64][16];
    const char *inn[64];
    sal_tensor feeds[64] = {{0}};
    int nf = 0;
    SAL_ASSERT(nin <= 64 && sal_graph_create("<run1>", &g) == SAL_OK);
    for (int i = 0; i < nin; i++) {
        snprintf(names[i], sizeof names[i], "i%d", i);
        inn[i] = names[i];
        if (cst ? cst[i] : in[i].dtype == SAL_I64) {
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
        for (int i = 0; i < nin; i++) {
            int v = sal_graph_find(g, names[i]);
            wrt[v] = g->val[v].kind == SAL_VAL_INPUT && in[i].dtype == SAL_F32;
        }
        sal_backward_opts bo = {.wrt = wrt};
        st = sal_exec_backward(s, 1, &out, seed, &bo);
        for (int i = 0; st == SAL_OK && dx && i < nin; i++) {
            int v = sal_graph_find(g, names[i]);
            if (wrt[v]) st = sal_tensor_copy(&dx[i], &s->grad[v]);
        }
        sal_free(wrt);
    }
    for (int i = 0; i < nf; i++) sal_tensor_free(&feeds[i]);
    sal_session_free(s);
    sal_model_free(g);
    return st;
}

static bool close_to(double got, double want, double rtol, double atol) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

/* ---- unary ops ---- */

static void test_unary_grads(void) {
    sal_attr hs[2] = {sal_attr_make_float("alpha", 0.5f), sal_attr_make_float("beta", 0.6f)};
    gc("HardSigmoid", 1, (sal_tensor[]){away(away(trand(2, DIMS(4, 6), 3.0f), -2.5f), 2.5f)}, BOOLS(false), 0, NULL);
    gc("HardSigmoid", 1, (sal_tensor[]){away(away(trand(2, DIMS(4, 6), 2.0f), -1.2f), 0.8f)}, BOOLS(false), 2, hs);
    gc("HardSwish", 1, (sal_tensor[]){away(away(trand(3, DIMS(2, 3, 4), 4.0f), -3), 3)}, BOOLS(false), 0, NULL);
    gc("Elu", 1, (sal_tensor[]){trand(2, DIMS(4, 6), 2.0f)}, BOOLS(false), 0, NULL); /* C1 at 0 for alpha 1 */
    sal_attr ea[1] = {sal_attr_make_float("alpha", 2.0f)};
    gc("Elu", 1, (sal_tensor[]){away(trand(2, DIMS(4, 6), 2.0f), 0)}, BOOLS(false), 1, ea);
    gc("Selu", 1, (sal_tensor[]){away(trand(2, DIMS(4, 6), 2.0f), 0)}, BOOLS(false), 0, NULL);
    sal_attr sa[2] = {sal_attr_make_float("alpha", 2.0f), sal_attr_make_float("gamma", 3.0f)};
    gc("Selu", 1, (sal_tensor[]){away(trand(2, DIMS(4, 6), 2.0f), 0)}, BOOLS(false), 2, sa);
    gc("Softplus", 1, (sal_tensor[]){trand(2, DIMS(4, 6), 4.0f)}, BOOLS(false), 0, NULL);
    gc("Mish", 1, (sal_tensor[]){trand(2, DIMS(4, 6), 3.0f)}, BOOLS(false), 0, NULL);
    gc("Gelu", 1, (sal_tensor[]){trand(2, DIMS(4, 6), 3.0f)}, BOOLS(false), 0, NULL);
    sal_attr ga[1] = {sal_attr_make_string("approximate", "tanh")};
    gc("Gelu", 1, (sal_tensor[]){trand(2, DIMS(4, 6), 3.0f)}, BOOLS(false), 1, ga);
    gc("Erf", 1, (sal_tensor[]){trand(2, DIMS(4, 6), 1.0f)}, BOOLS(false), 0, NULL);
    gc("Exp", 1, (sal_tensor[]){trand(2, DIMS(4, 6), 1.0f)}, BOOLS(false), 0, NULL);
    gc("Log", 1, (sal_tensor[]){tpos(2, DIMS(4, 6), false)}, BOOLS(false), 0, NULL);
    gc("Sqrt", 1, (sal_tensor[]){tpos(2, DIMS(4, 6), false)}, BOOLS(false), 0, NULL);
    gc("Reciprocal", 1, (sal_tensor[]){tpos(2, DIMS(4, 6), true)}, BOOLS(false), 0, NULL);
    gc("Neg", 1, (sal_tensor[]){trand(2, DIMS(4, 6), 1.0f)}, BOOLS(false), 0, NULL);
    gc("Abs", 1, (sal_tensor[]){away(trand(2, DIMS(4, 6), 1.0f), 0)}, BOOLS(false), 0, NULL);
}

typedef struct {
    const char *op;
    double (*f)(double);
    double (*d)(double);
    double lo; /* the domain starts here (Log, Sqrt) */
} unary_ref;

static double r_hsig(double x) { return fmax(0, fmin(1, 0.2 * x + 0.5)); }
static double d_hsig(double x) { return 0.2 * x + 0.5 > 0 && 0.2 * x + 0.5 < 1 ? 0.2 : 0; }
static double r_hswish(double x) { return x * fmax(0, fmin(1, x / 6 + 0.5)); }
static double d_hswish(double x) { return x < -3 ? 0 : x <= 3 ? x / 3 + 0.5 : 1; }
static double r_elu(double x) { return x > 0 ? x : expm1(x); }
static double d_elu(double x) { return x > 0 ? 1 : exp(x); }
#define SELU_A 1.6732632423543772
#define SELU_G 1.0507009873554805
static double r_selu(double x) { return SELU_G * (x > 0 ? x : SELU_A * expm1(x)); }
static double d_selu(double x) { return SELU_G * (x > 0 ? 1 : SELU_A * exp(x)); }
static double r_softplus(double x) { return x > 30 ? x : log1p(exp(x)); }
static double d_softplus(double x) { return 1 / (1 + exp(-x)); }
static double r_mish(double x) { return x * tanh(r_softplus(x)); }
static double d_mish(double x) {
    double t = tanh(r_softplus(x));
    return t + x * d_softplus(x) * (1 - t * t);
}
static double r_gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2))); }
static double d_gelu(double x) { return 0.5 * (1 + erf(x / sqrt(2))) + x * exp(-x * x / 2) / sqrt(2 * M_PI); }
static double r_erf(double x) { return erf(x); }
static double d_erf(double x) { return 2 / sqrt(M_PI) * exp(-x * x); }
static double r_exp(double x) { return exp(x); }
static double r_log(double x) { return log(x); }
static double d_log(double x) { return 1 / x; }
static double r_sqrt(double x) { return sqrt(x); }
static double d_sqrt(double x) { return 0.5 / sqrt(x); }
static double r_recip(double x) { return 1 / x; }
static double d_recip(double x) { return -1 / (x * x); }
static double r_neg(double x) { return -x; }
static double d_neg(double x) { (void)x; return -1; }
static double r_abs(double x) { return fabs(x); }
static double d_abs(double x) { return x > 0 ? 1 : x < 0 ? -1 : 0; }

/* Values and gradients over a range that includes saturation (|x| = 100) and the kinks, against
 * closed forms in double; at the kinks the derivative is PyTorch's choice (HardSwish'(-3) = -0.5,
 * HardSwish'(3) = 1.5, HardSigmoid' = 0 at its corners, Abs'(0) = 0, Elu'(0) = alpha). */
static void test_unary_values(void) {
    static const unary_ref refs[] = {
        {"HardSigmoid", r_hsig, d_hsig, -INFINITY}, {"HardSwish", r_hswish, d_hswish, -INFINITY},
        {"Elu", r_elu, d_elu, -INFINITY},           {"Selu", r_selu, d_selu, -INFINITY},
        {"Softplus", r_softplus, d_softplus, -INFINITY}, {"Mish", r_mish, d_mish, -INFINITY},
        {"Gelu", r_gelu, d_gelu, -INFINITY},        {"Erf", r_erf, d_erf, -INFINITY},
        {"Exp", r_exp, r_exp, -INFINITY},           {"Log", r_log, d_log, 0},
        {"Sqrt", r_sqrt, d_sqrt, 0},                {"Reciprocal", r_recip, d_recip, -INFINITY},
        {"Neg", r_neg, d_neg, -INFINITY},           {"Abs", r_abs, d_abs, -INFINITY},
    };
    static const float pts[] = {-100, -20, -3, -2.5f, -1, -0.3f, 0, 1e-3f, 0.3f, 1, 2.5f, 3, 7, 20, 80};
    enum { NP = sizeof pts / sizeof *pts };
    for (size_t k = 0; k < sizeof refs / sizeof *refs; k++) {
        const unary_ref *r = &refs[k];
        float v[NP];
        int n = 0;
        for (int i = 0; i < NP; i++)
            if (pts[i] > r->lo) v[n++] = pts[i];
        sal_tensor x = tf32(1, DIMS(n), v), ones = tf32(1, DIMS(n), NULL), y = {0}, dx[1] = {{0}};
        for (int i = 0; i < n; i++) sal_f32(&ones)[i] = 1;
        CHECK_OK(run1(r->op, 1, &x, NULL, 0, NULL, &y, &ones, dx));
        int bad = 0;
        for (int i = 0; i < n && y.data && dx[0].data; i++) {
            /* the reference rounded to float first: Exp(100) overflows to +Inf as expf does */
            double fy = (float)r->f(v[i]), fd = (float)r->d(v[i]);
            double gy = sal_f32(&y)[i], gd = sal_f32(&dx[0])[i];
            if (!close_to(gy, fy, 2e-6, 1e-7) || !close_to(gd, fd, 2e-5, 1e-7)) {
                if (bad++ < 3)
                    fprintf(stderr, "%s(%g) = %.9g (want %.9g), derivative %.9g (want %.9g)\n", r->op, v[i], gy, fy,
                            gd, fd);
            }
        }
        CHECK(bad == 0 && y.data, "%s: values and derivatives at %d points match the closed form", r->op, n);
        sal_tensor_free(&x);
        sal_tensor_free(&ones);
        sal_tensor_free(&y);
        sal_tensor_free(&dx[0]);
    }

    /* attributes and the tanh approximation of Gelu, against their formulas in double */
    struct {
        const char *op;
        sal_attr at[2];
        int nat;
        double (*f)(double, double, double);
        double a, b;
    } with[] = {
        {"HardSigmoid", {sal_attr_make_float("alpha", 0.5f), sal_attr_make_float("beta", 0.6f)}, 2, NULL, 0.5, 0.6},
        {"Elu", {sal_attr_make_float("alpha", 2.0f)}, 1, NULL, 2, 0},
        {"Selu", {sal_attr_make_float("alpha", 2.0f), sal_attr_make_float("gamma", 3.0f)}, 2, NULL, 2, 3},
        {"Gelu", {sal_attr_make_string("approximate", "tanh")}, 1, NULL, 0, 0},
    };
    for (size_t k = 0; k < sizeof with / sizeof *with; k++) {
        float v[] = {-4, -1, -0.2f, 0, 0.5f, 1.5f, 5};
        sal_tensor x = tf32(1, DIMS(7), v), y = {0};
        CHECK_OK(run1(with[k].op, 1, &x, NULL, with[k].nat, with[k].at, &y, NULL, NULL));
        int bad = 0;
        for (int i = 0; i < 7 && y.data; i++) {
            double t = v[i], a = with[k].a, b = with[k].b, want;
            if (k == 0) want = fmax(0, fmin(1, a * t + b));
            else if (k == 1) want = t > 0 ? t : a * expm1(t);
            else if (k == 2) want = b * (t > 0 ? t : a * expm1(t));
            else want = 0.5 * t * (1 + tanh(sqrt(2 / M_PI) * (t + 0.044715 * t * t * t)));
            bad += !close_to(sal_f32(&y)[i], want, 2e-6, 1e-7);
        }
        CHECK(bad == 0 && y.data, "%s with attributes: %d values differ from the formula", with[k].op, bad);
        sal_tensor_free(&x);
        sal_tensor_free(&y);
    }
}

/* Values PyTorch 1.13 gives (torch.nn.functional.*): the reference for what "as PyTorch" means. */
static void test_unary_torch_values(void) {
    sal_tensor x = tf32(1, DIMS(1), (float[]){1.0f}), ones = tf32(1, DIMS(1), (float[]){1}), y = {0}, d[1] = {{0}};
    CHECK_OK(run1("Gelu", 1, &x, NULL, 0, NULL, &y, &ones, d));
    CHECK(close_to(sal_f32(&y)[0], 0.8413447141647339, 1e-6, 0) && close_to(sal_f32(&d[0])[0], 1.0833154916763306, 1e-6, 0),
          "gelu(1) = %.9g, gelu'(1) = %.9g", sal_f32(&y)[0], sal_f32(&d[0])[0]);
    sal_attr ga[1] = {sal_attr_make_string("approximate", "tanh")};
    CHECK_OK(run1("Gelu", 1, &x, NULL, 1, ga, &y, &ones, d));
    CHECK(close_to(sal_f32(&y)[0], 0.8411920070648193, 1e-6, 0) && close_to(sal_f32(&d[0])[0], 1.0829640626907349, 1e-6, 0),
          "gelu_tanh(1) = %.9g, gelu_tanh'(1) = %.9g", sal_f32(&y)[0], sal_f32(&d[0])[0]);
    sal_f32(&x)[0] = -100;
    CHECK_OK(run1("Softplus", 1, &x, NULL, 0, NULL, &y, &ones, d));
    CHECK(close_to(sal_f32(&y)[0], 3.783505853677006e-44, 1e-2, 0) && close_to(sal_f32(&d[0])[0], 3.783505853677006e-44, 1e-2, 0),
          "softplus(-100) = %g, derivative %g", sal_f32(&y)[0], sal_f32(&d[0])[0]);
    /* PyTorch's derivative here is 3.8e-44, ours the exact -3.7e-42: its sigmoid(-100) underflows */
    CHECK_OK(run1("Mish", 1, &x, NULL, 0, NULL, &y, &ones, d));
    CHECK(close_to(sal_f32(&y)[0], -3.783505853677006e-42, 1e-2, 0) && fabsf(sal_f32(&d[0])[0]) < 1e-40,
          "mish(-100) = %g, derivative %g", sal_f32(&y)[0], sal_f32(&d[0])[0]);
    sal_f32(&x)[0] = 0;
    CHECK_OK(run1("Sqrt", 1, &x, NULL, 0, NULL, &y, &ones, d));
    CHECK(sal_f32(&y)[0] == 0 && isinf(sal_f32(&d[0])[0]) && sal_f32(&d[0])[0] > 0, "sqrt'(0) = +Inf");
    sal_attr ea[1] = {sal_attr_make_float("alpha", 2.0f)};
    CHECK_OK(run1("Elu", 1, &x, NULL, 1, ea, &y, &ones, d));
    CHECK(sal_f32(&y)[0] == 0 && sal_f32(&d[0])[0] == 2, "elu'(0) = alpha");
    sal_f32(&x)[0] = 1e4f;
    CHECK_OK(run1("Softplus", 1, &x, NULL, 0, NULL, &y, &ones, d));
    CHECK(sal_f32(&y)[0] == 1e4f && sal_f32(&d[0])[0] == 1, "softplus(1e4) does not overflow");
    sal_tensor *fr[] = {&x, &ones, &y, &d[0]};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

static void test_int64_unary(void) {
    sal_tensor x = ti64(1, DIMS(4), (int64_t[]){-5, 0, 7, INT64_MIN}), y = {0};
    CHECK_OK(run1("Neg", 1, &x, BOOLS(false), 0, NULL, &y, NULL, NULL));
    int64_t *q = y.data;
    CHECK(y.dtype == SAL_I64 && q[0] == 5 && q[1] == 0 && q[2] == -7 && q[3] == INT64_MIN, "int64 Neg (wrapping at INT64_MIN)");
    CHECK_OK(run1("Abs", 1, &x, BOOLS(false), 0, NULL, &y, NULL, NULL));
    q = y.data;
    CHECK(y.dtype == SAL_I64 && q[0] == 5 && q[1] == 0 && q[2] == 7, "int64 Abs");
    sal_tensor_free(&x);
    sal_tensor_free(&y);
}

/* ---- PRelu ---- */

static void test_prelu(void) {
    /* per-channel slope (C,1,1) as PyTorch exports it, a parameter and an activation */
    gc("PRelu", 2, (sal_tensor[]){away(trand(4, DIMS(2, 3, 2, 2), 1.0f), 0), trand(3, DIMS(3, 1, 1), 0.5f)},
       BOOLS(false, true), 0, NULL);
    gc("PRelu", 2, (sal_tensor[]){away(trand(4, DIMS(2, 3, 2, 2), 1.0f), 0), trand(3, DIMS(3, 1, 1), 0.5f)},
       BOOLS(false, false), 0, NULL);
    gc("PRelu", 2, (sal_tensor[]){away(trand(2, DIMS(3, 4), 1.0f), 0), trand(2, DIMS(3, 4), 0.5f)}, BOOLS(false, false),
       0, NULL);
    gc("PRelu", 2, (sal_tensor[]){away(trand(2, DIMS(3, 4), 1.0f), 0), trand(1, DIMS(1), 0.5f)}, BOOLS(false, true), 0, NULL);

    sal_tensor x = tf32(2, DIMS(2, 3), (float[]){-2, 0, 3, -1, 5, -4}), s = tf32(1, DIMS(3), (float[]){0.1f, 0.25f, -2});
    sal_tensor seed = tf32(2, DIMS(2, 3), (float[]){1, 1, 1, 1, 1, 1}), y = {0}, d[2] = {{0}};
    CHECK_OK(run1("PRelu", 2, (sal_tensor[]){x, s}, BOOLS(false, false), 0, NULL, &y, &seed, d));
    const float want[] = {-0.2f, 0, 3, -0.1f, 5, 8}, wdx[] = {0.1f, 0.25f, 1, 0.1f, 1, -2}, wds[] = {-3, 0, -4};
    bool ok = y.data && d[0].data && d[1].data;
    for (int i = 0; ok && i < 6; i++) ok = close_to(sal_f32(&y)[i], want[i], 1e-6, 0) && close_to(sal_f32(&d[0])[i], wdx[i], 1e-6, 0);
    for (int i = 0; ok && i < 3; i++) ok = close_to(sal_f32(&d[1])[i], wds[i], 1e-6, 0);
    CHECK(ok, "PRelu values and gradients; x = 0 takes the slope side for x, nothing for the slope (PyTorch)");
    sal_tensor bad = tf32(1, DIMS(2), NULL);
    CHECK_FAILS(run1("PRelu", 2, (sal_tensor[]){x, bad}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE, "node 'n' (PRelu)");
    sal_tensor big = tf32(3, DIMS(4, 2, 3), NULL);
    CHECK_FAILS(run1("PRelu", 2, (sal_tensor[]){x, big}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE,
                "does not broadcast to the input's shape");
    sal_tensor *fr[] = {&x, &s, &seed, &y, &d[0], &d[1], &bad, &big};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

/* ---- Pow ---- */

static void test_pow(void) {
    /* positive bases: both gradients; a broadcast exponent; a constant scalar exponent (LayerNorm's x^2) */
    gc("Pow", 2, (sal_tensor[]){tpos(2, DIMS(3, 4), false), trand(2, DIMS(3, 4), 1.0f)}, BOOLS(false, false), 0, NULL);
    gc("Pow", 2, (sal_tensor[]){tpos(3, DIMS(2, 3, 4), false), trand(1, DIMS(4), 1.0f)}, BOOLS(false, false), 0, NULL);
    gc("Pow", 2, (sal_tensor[]){tpos(2, DIMS(3, 4), false), tf32(0, NULL, (float[]){2})}, BOOLS(false, true), 0, NULL);
    /* any sign with integer exponents (int64, never differentiated) */
    gc("Pow", 2, (sal_tensor[]){tpos(2, DIMS(3, 4), true), ti64(1, DIMS(4), (int64_t[]){-2, 1, 2, 3})},
       BOOLS(false, true), 0, NULL);

    /* PyTorch 1.13's values at the singular points: (x, y) -> x^y, d/dx, d/dy */
    const float pts[][5] = {
        {0, 2, 0, 0, 0},   {0, 0, 1, 0, 0},  {-2, 3, -8, 12, NAN}, {0, -1, INFINITY, -INFINITY, -INFINITY},
        {0, 0.5f, 0, INFINITY, 0}, {-2, 0, 1, 0, NAN}, {2, 3, 8, 12, 8 * 0.6931471805599453f},
    };
    int n = sizeof pts / sizeof *pts;
    sal_tensor x = tf32(1, DIMS(n), NULL), e = tf32(1, DIMS(n), NULL), seed = tf32(1, DIMS(n), NULL), y = {0}, d[2] = {{0}};
    for (int i = 0; i < n; i++) {
        sal_f32(&x)[i] = pts[i][0];
        sal_f32(&e)[i] = pts[i][1];
        sal_f32(&seed)[i] = 1;
    }
    CHECK_OK(run1("Pow", 2, (sal_tensor[]){x, e}, BOOLS(false, false), 0, NULL, &y, &seed, d));
    for (int i = 0; i < n && y.data && d[0].data && d[1].data; i++)
        CHECK(close_to(sal_f32(&y)[i], pts[i][2], 1e-6, 0) && close_to(sal_f32(&d[0])[i], pts[i][3], 1e-6, 0) &&
                  close_to(sal_f32(&d[1])[i], pts[i][4], 1e-6, 0),
              "Pow(%g, %g) = %g, d/dx %g, d/dy %g; PyTorch: %g, %g, %g", pts[i][0], pts[i][1], sal_f32(&y)[i],
              sal_f32(&d[0])[i], sal_f32(&d[1])[i], pts[i][2], pts[i][3], pts[i][4]);

    /* int64 bases (shape arithmetic) with int64 or float exponents; float base, int64 exponent */
    sal_tensor xi = ti64(1, DIMS(3), (int64_t[]){1, 2, 3}), ei = ti64(1, DIMS(3), (int64_t[]){4, 5, 6});
    sal_tensor ef = tf32(1, DIMS(3), (float[]){4, 5, 6}), xf = tf32(1, DIMS(3), (float[]){1, 2, 3});
    int64_t want[] = {1, 32, 729};
    CHECK_OK(run1("Pow", 2, (sal_tensor[]){xi, ei}, BOOLS(true, true), 0, NULL, &y, NULL, NULL));
    CHECK(y.dtype == SAL_I64 && !memcmp(y.data, want, sizeof want), "int64 ^ int64");
    CHECK_OK(run1("Pow", 2, (sal_tensor[]){xi, ef}, BOOLS(true, true), 0, NULL, &y, NULL, NULL));
    CHECK(y.dtype == SAL_I64 && !memcmp(y.data, want, sizeof want), "int64 ^ float32 is int64");
    CHECK_OK(run1("Pow", 2, (sal_tensor[]){xf, ei}, BOOLS(false, true), 0, NULL, &y, NULL, NULL));
    CHECK(y.dtype == SAL_F32 && sal_f32(&y)[1] == 32 && sal_f32(&y)[2] == 729, "float32 ^ int64 is float32");
    sal_tensor huge = ti64(1, DIMS(3), (int64_t[]){64, 64, 64});
    CHECK_FAILS(run1("Pow", 2, (sal_tensor[]){xi, huge}, BOOLS(true, true), 0, NULL, &y, NULL, NULL), SAL_ERR_NUMERIC,
                "out of range");
    sal_tensor *fr[] = {&x, &e, &seed, &y, &d[0], &d[1], &xi, &ei, &ef, &xf, &huge};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

/* ---- Mod ---- */

static void test_mod(void) {
    /* float fmod: A = B (q + f) with f in [0.2, 0.8], so finite differences stay clear of the jumps
     * at whole quotients; B broadcast over rows, both differentiated */
    sal_tensor b = tpos(1, DIMS(4), true), a = tf32(2, DIMS(3, 4), NULL);
    for (int64_t i = 0; i < 12; i++)
        sal_f32(&a)[i] = sal_f32(&b)[i % 4] * ((float)(i % 7) - 3.0f + 0.2f + 0.6f * (float)sal_rng_uniform(&R));
    sal_attr fa[1] = {sal_attr_make_int("fmod", 1)};
    gc("Mod", 2, (sal_tensor[]){a, b}, BOOLS(false, false), 1, fa);

    /* values: fmod = 0 takes the divisor's sign (Python's -7 % 3 == 2), fmod = 1 the dividend's (C) */
    sal_tensor ai = ti64(1, DIMS(6), (int64_t[]){-7, 7, -7, 7, 6, -6}), bi = ti64(1, DIMS(6), (int64_t[]){3, -3, -3, 3, 3, 3});
    sal_tensor y = {0};
    CHECK_OK(run1("Mod", 2, (sal_tensor[]){ai, bi}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(y.dtype == SAL_I64 && !memcmp(y.data, (int64_t[]){2, -2, -1, 1, 0, 0}, 6 * sizeof(int64_t)),
          "int64 Mod as Python's %%");
    sal_attr fi[1] = {sal_attr_make_int("fmod", 1)};
    CHECK_OK(run1("Mod", 2, (sal_tensor[]){ai, bi}, NULL, 1, fi, &y, NULL, NULL));
    CHECK(y.dtype == SAL_I64 && !memcmp(y.data, (int64_t[]){-1, 1, -1, 1, 0, 0}, 6 * sizeof(int64_t)),
          "int64 Mod with fmod = 1 as C's %%");

    /* PyTorch's fmod gradients: dA = 1, dB = -trunc(A / B) */
    sal_tensor af = tf32(1, DIMS(3), (float[]){7.5f, -7.5f, 1.0f}), bf = tf32(1, DIMS(3), (float[]){2, 2, -0.75f});
    sal_tensor seed = tf32(1, DIMS(3), (float[]){1, 1, 1}), d[2] = {{0}};
    sal_attr fg[1] = {sal_attr_make_int("fmod", 1)};
    CHECK_OK(run1("Mod", 2, (sal_tensor[]){af, bf}, BOOLS(false, false), 1, fg, &y, &seed, d));
    CHECK(y.data && d[0].data && d[1].data && sal_f32(&y)[0] == 1.5f && sal_f32(&y)[1] == -1.5f &&
              sal_f32(&y)[2] == 0.25f && sal_f32(&d[0])[0] == 1 && sal_f32(&d[0])[2] == 1 && sal_f32(&d[1])[0] == -3 &&
              sal_f32(&d[1])[1] == 3 && sal_f32(&d[1])[2] == 1,
          "float fmod values and gradients");

    /* refusals: float without fmod, integer division by zero, mixed types */
    CHECK_FAILS(run1("Mod", 2, (sal_tensor[]){af, bf}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_FORMAT,
                "node 'n' (Mod): float inputs need fmod = 1");
    sal_tensor zero = ti64(1, DIMS(6), (int64_t[]){1, 1, 0, 1, 1, 1});
    CHECK_FAILS(run1("Mod", 2, (sal_tensor[]){ai, zero}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_NUMERIC,
                "integer division by zero at flat index 2");
    sal_tensor b3 = ti64(1, DIMS(3), (int64_t[]){1, 2, 3});
    sal_attr fm[1] = {sal_attr_make_int("fmod", 1)};
    CHECK_FAILS(run1("Mod", 2, (sal_tensor[]){af, b3}, NULL, 1, fm, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "data types float32 and int64");
    sal_tensor *fr[] = {&ai, &bi, &y, &af, &bf, &seed, &d[0], &d[1], &zero, &b3};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

/* ---- Sum, Mean, Min, Max ---- */

static void test_variadic_grads(void) {
    static const char *ops[] = {"Sum", "Mean", "Min", "Max"};
    for (int k = 0; k < 4; k++) {
        gc(ops[k], 1, (sal_tensor[]){trand(2, DIMS(3, 4), 1.0f)}, BOOLS(false), 0, NULL);
        gc(ops[k], 2, (sal_tensor[]){trand(2, DIMS(3, 4), 1.0f), trand(2, DIMS(3, 4), 1.0f)}, BOOLS(false, false), 0, NULL);
        /* three inputs broadcast together, one a constant */
        gc(ops[k], 3, (sal_tensor[]){trand(3, DIMS(2, 3, 4), 1.0f), trand(2, DIMS(3, 1), 1.0f), trand(1, DIMS(4), 1.0f)},
           BOOLS(false, false, true), 0, NULL);
        /* the output's shape comes from several inputs */
        gc(ops[k], 3, (sal_tensor[]){trand(2, DIMS(3, 1), 1.0f), trand(3, DIMS(2, 1, 4), 1.0f), trand(0, NULL, 1.0f)},
           BOOLS(false, false, false), 0, NULL);
    }
}

static void test_variadic_values(void) {
    sal_tensor a = tf32(2, DIMS(2, 3), (float[]){1, 5, -2, 0, 3, 3}), b = tf32(1, DIMS(3), (float[]){2, 5, -1});
    sal_tensor c = tf32(2, DIMS(2, 1), (float[]){0, 10}), y = {0}, d[3] = {{0}, {0}, {0}};
    sal_tensor seed = tf32(2, DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    struct {
        const char *op;
        float y[6], da[6], db[3], dc[2];
    } cases[] = {
        {"Sum", {3, 10, -3, 12, 18, 12}, {1, 2, 3, 4, 5, 6}, {5, 7, 9}, {6, 15}},
        {"Mean", {1, 10.f / 3, -1, 4, 6, 4}, {1.f / 3, 2.f / 3, 1, 4.f / 3, 5.f / 3, 2}, {5.f / 3, 7.f / 3, 3}, {2, 5}},
        /* ties (5 = 5 at [0,1]; 3, 3 and 10 > both in row 1) split the gradient evenly */
        {"Max", {2, 5, 0, 10, 10, 10}, {0, 1, 0, 0, 0, 0}, {1, 1, 0}, {3, 15}},
        {"Min", {0, 0, -2, 0, 3, -1}, {0, 0, 3, 4, 5, 0}, {0, 0, 6}, {3, 0}},
    };
    for (int k = 0; k < 4; k++) {
        CHECK_OK(run1(cases[k].op, 3, (sal_tensor[]){a, b, c}, BOOLS(false, false, false), 0, NULL, &y, &seed, d));
        bool ok = y.data && d[0].data && d[1].data && d[2].data && y.ndim == 2 && y.dim[0] == 2 && y.dim[1] == 3;
        for (int i = 0; ok && i < 6; i++)
            ok = close_to(sal_f32(&y)[i], cases[k].y[i], 1e-6, 1e-7) && close_to(sal_f32(&d[0])[i], cases[k].da[i], 1e-6, 1e-7);
        for (int i = 0; ok && i < 3; i++) ok = close_to(sal_f32(&d[1])[i], cases[k].db[i], 1e-6, 1e-7);
        for (int i = 0; ok && i < 2; i++) ok = close_to(sal_f32(&d[2])[i], cases[k].dc[i], 1e-6, 1e-7);
        CHECK(ok, "%s of (2,3), (3) and (2,1): values and gradients", cases[k].op);
    }
    /* NaN wins in Max and Min, as in numpy and PyTorch */
    sal_tensor n1 = tf32(1, DIMS(2), (float[]){NAN, 1}), n2 = tf32(1, DIMS(2), (float[]){0, NAN});
    CHECK_OK(run1("Max", 2, (sal_tensor[]){n1, n2}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(isnan(sal_f32(&y)[0]) && isnan(sal_f32(&y)[1]), "Max propagates NaN");
    CHECK_OK(run1("Min", 2, (sal_tensor[]){n2, n1}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(isnan(sal_f32(&y)[0]) && isnan(sal_f32(&y)[1]), "Min propagates NaN");
    /* int64 */
    sal_tensor i1 = ti64(1, DIMS(3), (int64_t[]){4, -1, 7}), i2 = ti64(0, NULL, (int64_t[]){2});
    CHECK_OK(run1("Max", 2, (sal_tensor[]){i1, i2}, BOOLS(false, false), 0, NULL, &y, NULL, NULL));
    CHECK(y.dtype == SAL_I64 && ((int64_t *)y.data)[0] == 4 && ((int64_t *)y.data)[1] == 2 && ((int64_t *)y.data)[2] == 7,
          "int64 Max");
    CHECK_OK(run1("Min", 2, (sal_tensor[]){i1, i2}, BOOLS(false, false), 0, NULL, &y, NULL, NULL));
    CHECK(((int64_t *)y.data)[0] == 2 && ((int64_t *)y.data)[1] == -1, "int64 Min");
    CHECK_OK(run1("Sum", 2, (sal_tensor[]){i1, i2}, BOOLS(false, false), 0, NULL, &y, NULL, NULL));
    CHECK(((int64_t *)y.data)[0] == 6 && ((int64_t *)y.data)[2] == 9, "int64 Sum");
    CHECK_FAILS(run1("Mean", 2, (sal_tensor[]){i1, i2}, BOOLS(false, false), 0, NULL, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "all inputs must be float32");
    CHECK_FAILS(run1("Max", 2, (sal_tensor[]){a, i2}, BOOLS(false, false), 0, NULL, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "node 'n' (Max): input 1 has data type int64 (input 0: float32)");
    sal_tensor e = tf32(1, DIMS(4), NULL);
    CHECK_FAILS(run1("Sum", 2, (sal_tensor[]){a, e}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE, "do not broadcast");
    sal_tensor *fr[] = {&a, &b, &c, &y, &d[0], &d[1], &d[2], &seed, &n1, &n2, &i1, &i2, &e};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) sal_tensor_free(fr[i]);
}

/* 40 inputs: more than the 32 bits of the walker's input mask. Every input gets the gradient. */
static void test_many_inputs(void) {
    enum { N = 40 };
    sal_tensor in[N], y = {0}, d[N], seed = tf32(1, DIMS(2), (float[]){1, -2});
    memset(d, 0, sizeof d);
    for (int i = 0; i < N; i++) in[i] = tf32(1, DIMS(2), (float[]){(float)i, (float)(i % 7)});
    CHECK_OK(run1("Sum", N, in, NULL, 0, NULL, &y, &seed, d));
    bool ok = y.data && sal_f32(&y)[0] == N * (N - 1) / 2;
    for (int i = 0; ok && i < N; i++) ok = d[i].data && sal_f32(&d[i])[0] == 1 && sal_f32(&d[i])[1] == -2;
    CHECK(ok, "Sum of %d inputs: value and every input's gradient", N);
    CHECK_OK(run1("Max", N, in, NULL, 0, NULL, &y, &seed, d));
    ok = y.data && sal_f32(&y)[0] == N - 1 && sal_f32(&y)[1] == 6;
    int ties = 0;
    for (int i = 0; ok && i < N; i++) ties += sal_f32(&d[i])[1] != 0;
    /* (i % 7) == 6 for i = 6, 13, 20, 27, 34: five ties share -2 */
    ok = ok && sal_f32(&d[N - 1])[0] == 1 && ties == 5 && close_to(sal_f32(&d[34])[1], -0.4, 1e-6, 0);
    CHECK(ok, "Max of %d inputs: the gradient goes to the maxima, split among ties", N);
    for (int i = 0; i < N; i++) {
        sal_tensor_free(&in[i]);
        sal_tensor_free(&d[i]);
    }
    sal_tensor_free(&y);
    sal_tensor_free(&seed);
}

/* ---- traits, load-time refusals, bool where float is needed ---- */

static void test_traits(void) {
    static const char *monotone[] = {"HardSigmoid", "Elu", "Selu", "Softplus"};
    static const char *plain[] = {"HardSwish", "Mish", "Gelu", "PRelu", "Erf", "Exp", "Log", "Sqrt",
                                  "Reciprocal", "Pow", "Mod", "Abs", "Min", "Max"};
    for (size_t i = 0; i < sizeof monotone / sizeof *monotone; i++)
        CHECK(sal_op_lookup(monotone[i]) && sal_op_lookup(monotone[i])->traits == SAL_TR_MONOTONE, "%s is MONOTONE",
              monotone[i]);
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        CHECK(sal_op_lookup(plain[i]) && sal_op_lookup(plain[i])->traits == 0, "%s has no trait", plain[i]);
    const char *additive[] = {"Neg", "Sum", "Mean"};
    for (int i = 0; i < 3; i++) {
        const sal_op *op = sal_op_lookup(additive[i]);
        CHECK(op && op->traits == SAL_TR_ADDITIVE && (op->lin_in & 1) && (i == 0 || op->lin_in == 0xffffffffu),
              "%s is ADDITIVE in its inputs", additive[i]);
    }
    /* a node of 40 inputs varying only past the 32nd (the walker folds those into bit 31) is linear */
    sal_node n = {.op = sal_op_lookup("Sum"), .nin = 40};
    CHECK(sal_node_linear_in(&n, 1u << 31), "Sum is linear in its 33rd input");
}

static void test_refusals(void) {
    sal_tensor x = tf32(1, DIMS(3), (float[]){1, 2, 3}), y = {0};
    sal_attr ga[1] = {sal_attr_make_string("approximate", "fast")};
    CHECK_FAILS(run1("Gelu", 1, &x, NULL, 1, ga, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "node 'n' (Gelu): approximate 'fast' is unknown");
    sal_attr ea[1] = {sal_attr_make_float("alpha", -1.0f)};
    CHECK_FAILS(run1("Elu", 1, &x, NULL, 1, ea, &y, NULL, NULL), SAL_ERR_UNSUPPORTED, "node 'n' (Elu): alpha -1");
    sal_attr sa[1] = {sal_attr_make_float("gamma", -1.0f)};
    CHECK_FAILS(run1("Selu", 1, &x, NULL, 1, sa, &y, NULL, NULL), SAL_ERR_UNSUPPORTED, "negative gamma");
    sal_attr ha[1] = {sal_attr_make_float("alpha", -0.2f)};
    CHECK_FAILS(run1("HardSigmoid", 1, &x, NULL, 1, ha, &y, NULL, NULL), SAL_ERR_UNSUPPORTED, "alpha -0.2");
    /* a negative beta keeps HardSigmoid monotone: accepted */
    sal_attr hb[1] = {sal_attr_make_float("beta", -0.5f)};
    CHECK_OK(run1("HardSigmoid", 1, &x, NULL, 1, hb, &y, NULL, NULL));
    /* bool and int64 where float32 is needed: one line naming the node and the type */
    sal_tensor b = {0};
    SAL_ASSERT(sal_tensor_alloc(&b, SAL_BOOL, 1, DIMS(3)) == SAL_OK);
    CHECK_FAILS(run1("Exp", 1, &b, BOOLS(false), 0, NULL, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "node 'n' (Exp): input 0 has data type bool; only float32 is supported");
    CHECK_FAILS(run1("Relu", 1, &b, BOOLS(false), 0, NULL, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "node 'n' (Relu): input 0 has data type bool");
    CHECK_FAILS(run1("Neg", 1, &b, BOOLS(false), 0, NULL, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "node 'n' (Neg): input 0 has data type bool; only float32 and int64");
    CHECK_FAILS(run1("Pow", 2, (sal_tensor[]){x, b}, BOOLS(false, false), 0, NULL, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "node 'n' (Pow): input 1 has data type bool");
    CHECK_FAILS(run1("Add", 2, (sal_tensor[]){b, b}, BOOLS(false, false), 0, NULL, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "inputs have data types bool and bool");
    CHECK(strchr(sal_last_error(), '\n') == NULL, "one line: %s", sal_last_error());
    sal_tensor_free(&x);
    sal_tensor_free(&y);
    sal_tensor_free(&b);
}

int main(void) {
    sal_rng_seed(&R, 20240607);
    test_unary_grads();
    test_unary_values();
    test_unary_torch_values();
    test_int64_unary();
    test_prelu();
    test_pow();
    test_mod();
    test_variadic_grads();
    test_variadic_values();
    test_many_inputs();
    test_traits();
    test_refusals();
    return t_done("test_ops_math");
}
