/* Rule-based methods (src/methods/relu_rules.c, deeplift.c) against their definitions computed here
 * by hand on small MLPs: deconvnet, guided backprop, RectGrad and RectGrad_Mod at every percentile
 * that has a simple meaning; DeepLIFT Rescale and RevealCancel multipliers from the paper's formulas;
 * DeepLIFT completeness on ReLU, Sigmoid/Tanh, max-pooling, residual and softmax-output nets; and
 * refusals that name the node. */
#include "testutil.h"
#include "saliency.h"
#include <unistd.h>

#define MAXL 4
#define MAXW 64

/* ---- a small MLP: Gemm (transB) layers with one activation between them ---- */

typedef struct {
    int nl;               /* Gemm layers */
    int dim[MAXL + 1];    /* widths, input first */
    const char *act;      /* Relu, LeakyRelu, Sigmoid, Tanh */
    float alpha;          /* LeakyRelu */
    float W[MAXL][MAXW * MAXW], b[MAXL][MAXW];
} mlp;

static void mlp_init(mlp *n, sal_rng *r, int nl, const int *dim, const char *act) {
    memset(n, 0, sizeof *n);
    n->nl = nl;
    n->act = act;
    n->alpha = 0.1f;
    for (int l = 0; l <= nl; l++) n->dim[l] = dim[l];
    for (int l = 0; l < nl; l++) {
        for (int i = 0; i < dim[l + 1] * dim[l]; i++) n->W[l][i] = (float)sal_rng_normal(r) / sqrtf((float)dim[l]);
        for (int i = 0; i < dim[l + 1]; i++) n->b[l][i] = 0.3f * (float)sal_rng_normal(r);
    }
}

static double act_f(const mlp *n, double z) {
    if (!strcmp(n->act, "Relu")) return z > 0 ? z : 0;
    if (!strcmp(n->act, "LeakyRelu")) return z > 0 ? z : n->alpha * z;
    if (!strcmp(n->act, "Sigmoid")) return 1 / (1 + exp(-z));
    return tanh(z);
}

static void add_const(sal_model *g, const char *name, int ndim, const int64_t *dim, const float *v) {
    sal_tensor t = t_tensor_of(ndim, dim, v);
    SAL_ASSERT(sal_graph_add_const(g, name, &t) == SAL_OK);
}

static void add_node(sal_model *g, const char *op, const char *name, int nin, const char *const *in, const char *out,
                     int nattr, sal_attr *at) {
    sal_status s = sal_graph_add_node(g, op, name, nin, in, 1, (const char *[]){out}, nattr, at);
    if (s != SAL_OK) fprintf(stderr, "%s\n", sal_last_error());
    SAL_ASSERT(s == SAL_OK);
}

/* Nodes fc0, act0, fc1, act1, ...; the last Gemm gives the output. `tail` (may be NULL) adds one
 * more op after it (a Softmax). */
static sal_model *mlp_model(const mlp *n, const char *tail) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<mlp>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, n->dim[0]}) == SAL_OK);
    char prev[16] = "x";
    for (int l = 0; l < n->nl; l++) {
        char w[16], b[16], z[16], fc[16];
        snprintf(w, sizeof w, "W%d", l);
        snprintf(b, sizeof b, "b%d", l);
        snprintf(z, sizeof z, "z%d", l);
        snprintf(fc, sizeof fc, "fc%d", l);
        add_const(g, w, 2, (int64_t[]){n->dim[l + 1], n->dim[l]}, n->W[l]);
        add_const(g, b, 1, (int64_t[]){n->dim[l + 1]}, n->b[l]);
        sal_attr at[1] = {sal_attr_make_int("transB", 1)};
        add_node(g, "Gemm", fc, 3, (const char *[]){prev, w, b}, z, 1, at);
        snprintf(prev, sizeof prev, "%s", z);
        if (l == n->nl - 1) break;
        char a[16], an[16];
        snprintf(a, sizeof a, "a%d", l);
        snprintf(an, sizeof an, "act%d", l);
        sal_attr al[1] = {sal_attr_make_float("alpha", n->alpha)};
        bool leaky = !strcmp(n->act, "LeakyRelu");
        add_node(g, n->act, an, 1, (const char *[]){prev}, a, leaky, leaky ? al : NULL);
        if (!leaky) sal_attr_clear(&al[0]);
        snprintf(prev, sizeof prev, "%s", a);
    }
    if (tail) {
        add_node(g, tail, "head", 1, (const char *[]){prev}, "y", 0, NULL);
        snprintf(prev, sizeof prev, "y");
    }
    SAL_ASSERT(sal_graph_add_output(g, prev) == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    return g;
}

/* Pre-activations z[l] and activations a[l] of layer l (a[nl-1] = z[nl-1], the logits). */
static void mlp_forward(const mlp *n, const float *x, double z[MAXL][MAXW], double a[MAXL][MAXW]) {
    double in[MAXW];
    for (int j = 0; j < n->dim[0]; j++) in[j] = x[j];
    for (int l = 0; l < n->nl; l++) {
        for (int i = 0; i < n->dim[l + 1]; i++) {
            double s = n->b[l][i];
            for (int j = 0; j < n->dim[l]; j++) s += (double)n->W[l][i * n->dim[l] + j] * in[j];
            z[l][i] = s;
            a[l][i] = l == n->nl - 1 ? s : act_f(n, s);
        }
        for (int i = 0; i < n->dim[l + 1]; i++) in[i] = a[l][i];
    }
}

/* ---- the ReLU rules by hand ---- */

enum { H_DECONV, H_GUIDED, H_RECT, H_RECT_MOD };

/* numpy's percentile (linear interpolation) of v[0..n), by insertion sort */
static double pct(const double *v, int n, double q) {
    double s[MAXW];
    for (int i = 0; i < n; i++) {
        int k = i;
        while (k > 0 && s[k - 1] > v[i]) s[k] = s[k - 1], k--;
        s[k] = v[i];
    }
    double pos = q / 100 * (n - 1);
    int lo = (int)floor(pos);
    return lo >= n - 1 ? s[n - 1] : s[lo] + (pos - lo) * (s[lo + 1] - s[lo]);
}

/* The modified backward pass from logit t to the input, one sample. */
static void hand_rule(const mlp *n, const float *x, int t, int mode, double q, double *gx) {
    double z[MAXL][MAXW], a[MAXL][MAXW], g[MAXW], gz[MAXW];
    mlp_forward(n, x, z, a);
    int L = n->nl - 1;
    for (int i = 0; i < n->dim[L]; i++) g[i] = n->W[L][t * n->dim[L] + i];
    for (int l = L - 1; l >= -1; l--) {
        int w = n->dim[l + 1];
        if (l < 0) {
            for (int j = 0; j < w; j++) gx[j] = g[j];
            break;
        }
        /* g is d/d a[l]: through the activation by the method's rule */
        double imp[MAXW], tau = 0;
        for (int i = 0; i < w; i++) imp[i] = mode == H_RECT_MOD ? fabs(a[l][i] * g[i]) : a[l][i] * g[i];
        if (mode >= H_RECT) tau = pct(imp, w, q);
        bool leaky = !strcmp(n->act, "LeakyRelu");
        for (int i = 0; i < w; i++) {
            double slope = z[l][i] > 0 ? 1 : leaky ? n->alpha : 0;
            if (mode == H_DECONV) gz[i] = g[i] > 0 ? g[i] : leaky ? n->alpha * g[i] : 0;
            else if (mode == H_GUIDED) gz[i] = g[i] > 0 ? slope * g[i] : 0;
            else gz[i] = a[l][i] > 0 && imp[i] > tau ? g[i] : 0;
        }
        /* through Gemm l: g = W^T gz */
        for (int j = 0; j < n->dim[l]; j++) {
            double s = 0;
            for (int i = 0; i < w; i++) s += (double)n->W[l][i * n->dim[l] + j] * gz[i];
            g[j] = s;
        }
    }
}

/* ---- running sal_explain ---- */

typedef struct {
    sal_explanation *e;
    sal_status st;
} run_t;

static run_t explain(const sal_model *m, const sal_tensor *x, const char *method, int np, const char *const *params,
                     int64_t target, bool prob) {
    sal_explain_opts o = {.method = method, .nparams = np, .params = params, .target = SAL_TARGET_INDEX,
                          .classes = &target, .nclasses = 1, .prob = prob, .data_lo = -1, .data_hi = 1};
    run_t r = {0};
    r.st = sal_explain(m, x, &o, &r.e);
    if (r.st != SAL_OK) fprintf(stderr, "  (%s %s: %s)\n", method, np ? params[0] : "", sal_last_error());
    return r;
}

static double max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* worst |got - want| relative to the largest |want| (or 1e-6 when it is zero) */
static double rel_err(const float *got, const double *want, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs(got[i] - want[i]));
        s = fmax(s, fabs(want[i]));
    }
    return d / fmax(s, 1e-6);
}

static sal_tensor rand_x(sal_rng *r, int64_t N, int64_t D) {
    return t_rand(r, 2, (int64_t[]){N, D}, 1.0f);
}

static void test_relu_rules(void) {
    sal_rng r;
    sal_rng_seed(&r, 11);
    static mlp n;
    const int dim[4] = {6, 16, 12, 4};
    const char *acts[2] = {"Relu", "LeakyRelu"};
    for (int ai = 0; ai < 2; ai++) {
        mlp_init(&n, &r, 3, dim, acts[ai]);
        sal_model *m = mlp_model(&n, NULL);
        const int64_t N = 5, D = dim[0];
        sal_tensor x = rand_x(&r, N, D);
        struct {
            const char *method, *param;
            int mode;
            double q;
        } cases[] = {
            {"deconvnet", NULL, H_DECONV, 0},          {"guided_backprop", NULL, H_GUIDED, 0},
            {"rectgrad", "tau=98", H_RECT, 98},        {"rectgrad", "tau=0", H_RECT, 0},
            {"rectgrad", "tau=50", H_RECT, 50},        {"rectgrad", "tau=100", H_RECT, 100},
            {"rectgrad_mod", "tau=90", H_RECT_MOD, 90}, {"rectgrad_mod", "tau=0", H_RECT_MOD, 0},
            {"rectgrad", NULL, H_RECT, 98},
        };
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            bool leaky = ai == 1;
            if (leaky && cases[k].mode >= H_RECT) continue; /* refused, checked below */
            for (int t = 0; t < 4; t += 3) {
                run_t e = explain(m, &x, cases[k].method, cases[k].param ? 1 : 0, &cases[k].param, t, false);
                CHECK(e.st == SAL_OK, "%s %s on a %s MLP", cases[k].method, cases[k].param ? cases[k].param : "",
                      acts[ai]);
                if (e.st != SAL_OK) continue;
                const float *got = sal_f32(sal_explanation_map(e.e));
                double want[5 * 6];
                for (int64_t i = 0; i < N; i++)
                    hand_rule(&n, sal_f32(&x) + i * D, t, cases[k].mode, cases[k].q, want + i * D);
                /* RectGrad's map is the rectified gradient times the input (Kim et al.'s code) unless
                 * output=gradient */
                bool rect = cases[k].mode >= H_RECT;
                double wx[5 * 6];
                for (int64_t i = 0; i < N * D; i++) wx[i] = rect ? want[i] * sal_f32(&x)[i] : want[i];
                double err = rel_err(got, wx, N * D);
                CHECK(err < 1e-4, "%s %s on a %s MLP, target %d: worst relative error %g", cases[k].method,
                      cases[k].param ? cases[k].param : "", acts[ai], t, err);
                if (cases[k].q == 100 && cases[k].mode == H_RECT)
                    CHECK(max_abs(got, N * D) == 0, "rectgrad tau=100 lets nothing through (max %g)", max_abs(got, N * D));
                sal_explanation_free(e.e);
                if (!rect) continue;
                const char *pg[2] = {"output=gradient", cases[k].param};
                e = explain(m, &x, cases[k].method, cases[k].param ? 2 : 1, pg, t, false);
                CHECK(e.st == SAL_OK, "%s output=gradient", cases[k].method);
                if (e.st != SAL_OK) continue;
                err = rel_err(sal_f32(sal_explanation_map(e.e)), want, N * D);
                CHECK(err < 1e-4, "%s %s output=gradient, target %d: worst relative error %g", cases[k].method,
                      cases[k].param ? cases[k].param : "", t, err);
                sal_explanation_free(e.e);
            }
        }
        if (ai == 1) { /* RectGrad's a*g assumes a >= 0 */
            run_t e = explain(m, &x, "rectgrad", 0, NULL, 0, false);
            CHECK(e.st == SAL_ERR_UNSUPPORTED && strstr(sal_last_error(), "node 'act1' (LeakyRelu)") &&
                      strstr(sal_last_error(), "rectgrad has no rule for LeakyRelu"),
                  "rectgrad on LeakyRelu: %s", sal_last_error());
            sal_explanation_free(e.e);
        }
        sal_tensor_free(&x);
        sal_model_free(m);
    }
    /* percentile out of range and unknown parameters are refused with the parameter named */
    mlp_init(&n, &r, 2, (int[]){3, 4, 2}, "Relu");
    sal_model *m = mlp_model(&n, NULL);
    sal_tensor x = rand_x(&r, 1, 3);
    run_t e = explain(m, &x, "rectgrad", 1, (const char *[]){"tau=101"}, 0, false);
    CHECK(e.st == SAL_ERR_ARG && strstr(sal_last_error(), "tau=101"), "tau=101 refused: %s", sal_last_error());
    e = explain(m, &x, "guided_backprop", 1, (const char *[]){"tau=5"}, 0, false);
    CHECK(e.st == SAL_ERR_ARG && strstr(sal_last_error(), "no parameter 'tau'"), "guided_backprop tau refused: %s",
          sal_last_error());
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* A Sigmoid net: the ReLU methods refuse it, naming the node. So does a Softmax in the middle. */
static void test_refusals(void) {
    sal_rng r;
    sal_rng_seed(&r, 5);
    static mlp n;
    mlp_init(&n, &r, 2, (int[]){4, 5, 3}, "Sigmoid");
    sal_model *m = mlp_model(&n, NULL);
    sal_tensor x = rand_x(&r, 2, 4);
    const char *methods[] = {"guided_backprop", "deconvnet", "rectgrad", "rectgrad_mod"};
    for (int k = 0; k < 4; k++) {
        run_t e = explain(m, &x, methods[k], 0, NULL, 1, false);
        CHECK(e.st == SAL_ERR_UNSUPPORTED && strstr(sal_last_error(), "node 'act0' (Sigmoid)") &&
                  strstr(sal_last_error(), "has no rule for Sigmoid"),
              "%s on a Sigmoid net: %s %s", methods[k], sal_status_string(e.st), sal_last_error());
        sal_explanation_free(e.e);
    }
    sal_model_free(m);
    /* a product of two input-dependent values: x * x */
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<sq>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}) == SAL_OK);
    add_node(g, "Mul", "square", 2, (const char *[]){"x", "x"}, "y", 0, NULL);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    const char *both[] = {"guided_backprop", "deeplift"};
    for (int k = 0; k < 2; k++) {
        run_t e = explain(g, &x, both[k], 0, NULL, 1, false);
        CHECK(e.st == SAL_ERR_UNSUPPORTED && strstr(sal_last_error(), "node 'square' (Mul)") &&
                  strstr(sal_last_error(), "not linear"),
              "%s on x*x: %s", both[k], sal_last_error());
        sal_explanation_free(e.e);
    }
    sal_model_free(g);
    /* a Softmax inside the graph */
    mlp_init(&n, &r, 2, (int[]){4, 5, 3}, "Relu");
    SAL_ASSERT(sal_graph_create("<mid>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}) == SAL_OK);
    add_node(g, "Softmax", "mid", 1, (const char *[]){"x"}, "p", 0, NULL);
    add_node(g, "Relu", "r", 1, (const char *[]){"p"}, "y", 0, NULL);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    for (int k = 0; k < 2; k++) {
        run_t e = explain(g, &x, both[k], 0, NULL, 1, false);
        CHECK(e.st == SAL_ERR_UNSUPPORTED && strstr(sal_last_error(), "node 'mid' (Softmax)"), "%s, Softmax inside: %s",
              both[k], sal_last_error());
        sal_explanation_free(e.e);
    }
    sal_model_free(g);
    sal_tensor_free(&x);
}

/* ---- DeepLIFT ---- */

/* Rescale or RevealCancel on a one-hidden-layer net, straight from the paper's formulas. */
static void hand_deeplift(const mlp *n, const float *x, const float *x0, int t, bool reveal, double *attr) {
    double z[MAXL][MAXW], a[MAXL][MAXW], z0[MAXL][MAXW], a0[MAXL][MAXW];
    mlp_forward(n, x, z, a);
    mlp_forward(n, x0, z0, a0);
    int D = n->dim[0], H = n->dim[1];
    for (int j = 0; j < D; j++) attr[j] = 0;
    for (int i = 0; i < H; i++) {
        double c = n->W[1][t * H + i], dz = z[0][i] - z0[0][i];
        double mp, mn, m = fabs(dz) >= 1e-7 ? (a[0][i] - a0[0][i]) / dz : 0;
        double dp = 0, dn = 0;
        for (int j = 0; j < D; j++) {
            double term = n->W[0][i * D + j] * ((double)x[j] - x0[j]);
            if (term > 0) dp += term;
            else dn += term;
        }
        double f0 = a0[0][i], f = a[0][i];
        mp = (0.5 * (act_f(n, z0[0][i] + dp) - f0) + 0.5 * (f - act_f(n, z0[0][i] + dn))) / dp;
        mn = (0.5 * (act_f(n, z0[0][i] + dn) - f0) + 0.5 * (f - act_f(n, z0[0][i] + dp))) / dn;
        for (int j = 0; j < D; j++) {
            double w = n->W[0][i * D + j], term = w * ((double)x[j] - x0[j]);
            double mult = !reveal ? m : term > 0 ? mp : term < 0 ? mn : 0.5 * (mp + mn);
            attr[j] += c * mult * term;
        }
    }
}

/* logit t (or the mean-centred logit before a softmax) of one sample shaped as like's rows */
static double logit(const sal_model *m, const sal_tensor *like, const float *row, int t, bool pre_softmax) {
    sal_session *s;
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, like->dim, sizeof dim);
    dim[0] = 1;
    sal_tensor x = t_tensor_of(like->ndim, dim, row);
    const sal_tensor *y;
    sal_status st = sal_forward(s, 1, &x, &y);
    if (st != SAL_OK) fprintf(stderr, "%s\n", sal_last_error());
    SAL_ASSERT(st == SAL_OK);
    const sal_tensor *z = pre_softmax ? sal_session_value(s, "z1") : y;
    double v = sal_f32(z)[t];
    if (pre_softmax) { /* the logit minus the mean logit */
        double mean = 0;
        for (int64_t k = 0; k < z->dim[1]; k++) mean += sal_f32(z)[k];
        v -= mean / (double)z->dim[1];
    }
    sal_tensor_free(&x);
    sal_session_free(s);
    return v;
}

static double g_worst_comp, g_worst_metric; /* reported at the end */

/* sum of each sample's attributions against f(x) - f(x0), computed from two forward passes */
static double completeness(const sal_model *m, const sal_tensor *x, const float *x0, bool x0_per_sample,
                           const float *map, int t, bool pre_softmax) {
    int64_t N = x->dim[0], D = sal_tensor_numel(x) / N;
    double worst = 0;
    for (int64_t i = 0; i < N; i++) {
        double sum = 0;
        for (int64_t j = 0; j < D; j++) sum += map[i * D + j];
        double df = logit(m, x, sal_f32(x) + i * D, t, pre_softmax) -
                    logit(m, x, x0 + (x0_per_sample ? i * D : 0), t, pre_softmax);
        worst = fmax(worst, fabs(sum - df) / fmax(1, fabs(df)));
    }
    g_worst_comp = fmax(g_worst_comp, worst);
    return worst;
}

static void test_deeplift_mlp(void) {
    sal_rng r;
    sal_rng_seed(&r, 23);
    static mlp n;
    const char *acts[] = {"Relu", "LeakyRelu", "Sigmoid", "Tanh"};
    const char *variants[] = {"variant=rescale", "variant=revealcancel"};
    for (int ai = 0; ai < 4; ai++) {
        mlp_init(&n, &r, 2, (int[]){7, 9, 3}, acts[ai]);
        sal_model *m = mlp_model(&n, NULL);
        const int64_t N = 4, D = 7;
        sal_tensor x = rand_x(&r, N, D);
        float zero[7] = {0}, black[7];
        for (int j = 0; j < D; j++) black[j] = -1; /* data_lo */
        for (int v = 0; v < 2; v++)
            for (int b = 0; b < 2; b++) {
                const char *params[2] = {variants[v], b ? "baseline=black" : "baseline=zero"};
                run_t e = explain(m, &x, "deeplift", 2, params, 2, false);
                CHECK(e.st == SAL_OK, "deeplift %s %s on a %s MLP", params[0], params[1], acts[ai]);
                if (e.st != SAL_OK) continue;
                const float *got = sal_f32(sal_explanation_map(e.e));
                double want[4 * 7];
                for (int64_t i = 0; i < N; i++)
                    hand_deeplift(&n, sal_f32(&x) + i * D, b ? black : zero, 2, v == 1, want + i * D);
                double err = rel_err(got, want, N * D);
                CHECK(err < 1e-4, "deeplift %s %s on a %s MLP: worst relative error %g against the formulas", params[0],
                      params[1], acts[ai], err);
                double comp = completeness(m, &x, b ? black : zero, false, got, 2, false);
                double metric = sal_explanation_metric(e.e, "completeness_delta");
                g_worst_metric = fmax(g_worst_metric, metric);
                CHECK(comp < 1e-5 && metric < 1e-4, "deeplift %s %s on a %s MLP: completeness %g (reported %g)", params[0],
                      params[1], acts[ai], comp, metric);
                if (v == 1)
                    CHECK(sal_explanation_metric(e.e, "revealcancel_split_nodes") == 1 &&
                              sal_explanation_metric(e.e, "revealcancel_rescale_nodes") == 0,
                          "RevealCancel split the one hidden layer");
                sal_explanation_free(e.e);
            }
        sal_tensor_free(&x);
        sal_model_free(m);
    }
    /* deeper ReLU net, both variants, a baseline file holding one reference per sample */
    mlp_init(&n, &r, 4, (int[]){8, 12, 10, 9, 5}, "Relu");
    sal_model *m = mlp_model(&n, NULL);
    sal_tensor x = rand_x(&r, 6, 8), x0 = rand_x(&r, 6, 8);
    char path[] = "/tmp/sal_dl_baseline_XXXXXX.npy";
    int fd = mkstemps(path, 4);
    SAL_ASSERT(fd >= 0);
    close(fd);
    CHECK_OK(sal_npy_write(path, &x0));
    char bp[128];
    snprintf(bp, sizeof bp, "baseline=%s", path);
    for (int v = 0; v < 2; v++) {
        const char *params[2] = {bp, variants[v]};
        run_t e = explain(m, &x, "deeplift", 2, params, 4, false);
        CHECK(e.st == SAL_OK, "deeplift %s, baseline file", params[1]);
        if (e.st != SAL_OK) continue;
        double comp = completeness(m, &x, sal_f32(&x0), true, sal_f32(sal_explanation_map(e.e)), 4, false);
        CHECK(comp < 1e-5, "deeplift %s on a 4-layer ReLU MLP: completeness %g", params[1], comp);
        if (v == 1)
            CHECK(sal_explanation_metric(e.e, "revealcancel_split_nodes") == 3, "RevealCancel split 3 hidden layers (%g)",
                  sal_explanation_metric(e.e, "revealcancel_split_nodes"));
        sal_explanation_free(e.e);
    }
    /* the reference itself gets zero attribution */
    sal_tensor one = {0};
    SAL_ASSERT(sal_tensor_copy(&one, &x0) == SAL_OK);
    run_t e = explain(m, &one, "deeplift", 1, (const char *[]){bp}, 1, false);
    CHECK(e.st == SAL_OK && max_abs(sal_f32(sal_explanation_map(e.e)), 6 * 8) == 0, "deeplift of the reference is zero");
    sal_explanation_free(e.e);
    /* bad baselines and variants are refused naming the parameter; so is explaining probabilities */
    sal_tensor small = rand_x(&r, 1, 5);
    CHECK_OK(sal_npy_write(path, &small));
    e = explain(m, &x, "deeplift", 1, (const char *[]){bp}, 1, false);
    CHECK(e.st == SAL_ERR_SHAPE && strstr(sal_last_error(), "baseline="), "wrong baseline shape: %s", sal_last_error());
    remove(path);
    e = explain(m, &x, "deeplift", 1, (const char *[]){bp}, 1, false);
    CHECK(e.st == SAL_ERR_IO && strstr(sal_last_error(), "baseline="), "missing baseline file: %s", sal_last_error());
    e = explain(m, &x, "deeplift", 1, (const char *[]){"variant=cancel"}, 1, false);
    CHECK(e.st == SAL_ERR_ARG && strstr(sal_last_error(), "variant=cancel"), "bad variant: %s", sal_last_error());
    e = explain(m, &x, "deeplift", 0, NULL, 1, true);
    CHECK(e.st == SAL_ERR_UNSUPPORTED && strstr(sal_last_error(), "logits"), "prob refused: %s", sal_last_error());
    sal_tensor_free(&small);
    sal_tensor_free(&one);
    sal_tensor_free(&x);
    sal_tensor_free(&x0);
    sal_model_free(m);
}

/* DeepLIFT Rescale, guided backprop and RectGrad on one row through a wide layer over a ReLU: the
 * Gemm's input gradient is computed only for the units the ReLU's rule can pass (active for x, or for
 * the reference: sal_rule_linear_masked, linear.c: din_masked), against the formulas in double; for
 * DeepLIFT attr_j = sum_i W1[t,i] m_i W0[i,j] (x_j - x0_j). 520 classes make the layer over the ReLU
 * wide enough for that path. */
static void test_deeplift_wide(void) {
    enum { D = 16, H = 96, C = 520 };
    sal_rng r;
    sal_rng_seed(&r, 31);
    float *W0 = malloc(sizeof *W0 * H * D), *W1 = malloc(sizeof *W1 * C * H), b0[H];
    SAL_ASSERT(W0 && W1);
    for (int i = 0; i < H * D; i++) W0[i] = (float)(sal_rng_normal(&r) / 4);
    for (int i = 0; i < C * H; i++) W1[i] = (float)(sal_rng_normal(&r) / 10);
    for (int i = 0; i < H; i++) b0[i] = (float)(0.3 * sal_rng_normal(&r));
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<wide>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, D}) == SAL_OK);
    add_const(g, "W0", 2, (int64_t[]){H, D}, W0);
    add_const(g, "b0", 1, (int64_t[]){H}, b0);
    add_const(g, "W1", 2, (int64_t[]){C, H}, W1);
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    add_node(g, "Gemm", "fc0", 3, (const char *[]){"x", "W0", "b0"}, "z", 1, at);
    add_node(g, "Relu", "act0", 1, (const char *[]){"z"}, "a", 0, NULL);
    at[0] = sal_attr_make_int("transB", 1);
    add_node(g, "Gemm", "fc1", 2, (const char *[]){"a", "W1"}, "y", 1, at);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    sal_tensor x = rand_x(&r, 1, D);
    const int t = 7;
    for (int b = 0; b < 2; b++) {
        const char *p = b ? "baseline=black" : "baseline=zero";
        run_t e = explain(g, &x, "deeplift", 1, &p, t, false);
        CHECK(e.st == SAL_OK, "deeplift %s through a wide layer", p);
        if (e.st != SAL_OK) continue;
        double want[D] = {0};
        int active = 0;
        for (int i = 0; i < H; i++) {
            double z = b0[i], z0 = b0[i];
            for (int j = 0; j < D; j++) {
                z += (double)W0[i * D + j] * sal_f32(&x)[j];
                z0 += (double)W0[i * D + j] * (b ? -1 : 0);
            }
            double dz = z - z0, m = fabs(dz) >= 1e-7 ? (fmax(z, 0) - fmax(z0, 0)) / dz : z > 0;
            active += z > 0 || z0 > 0;
            for (int j = 0; j < D; j++)
                want[j] += (double)W1[t * H + i] * m * W0[i * D + j] * (sal_f32(&x)[j] - (b ? -1.0 : 0.0));
        }
        double err = rel_err(sal_f32(sal_explanation_map(e.e)), want, D);
        CHECK(active < H - H / 8 && err < 1e-4,
              "deeplift %s through a wide layer (%d of %d units active for x or x0): worst relative error %g", p,
              active, H, err);
        sal_explanation_free(e.e);
    }
    /* guided backprop: W0^T ((z > 0) max(W1[t], 0)); RectGrad at tau 0 (the layer's least a*g) */
    double z[H], a[H], tau = INFINITY;
    for (int i = 0; i < H; i++) {
        z[i] = b0[i];
        for (int j = 0; j < D; j++) z[i] += (double)W0[i * D + j] * sal_f32(&x)[j];
        a[i] = fmax(z[i], 0);
        tau = fmin(tau, a[i] * W1[t * H + i]);
    }
    for (int rect = 0; rect < 2; rect++) {
        const char *params[2] = {"tau=0", "output=gradient"};
        run_t e = explain(g, &x, rect ? "rectgrad" : "guided_backprop", rect ? 2 : 0, params, t, false);
        CHECK(e.st == SAL_OK, "%s through a wide layer", rect ? "rectgrad" : "guided_backprop");
        if (e.st != SAL_OK) continue;
        double want[D] = {0};
        for (int i = 0; i < H; i++) {
            double gi = W1[t * H + i];
            double pass = rect ? (a[i] > 0 && a[i] * gi > tau ? gi : 0) : (z[i] > 0 && gi > 0 ? gi : 0);
            for (int j = 0; j < D; j++) want[j] += pass * W0[i * D + j];
        }
        double err = rel_err(sal_f32(sal_explanation_map(e.e)), want, D);
        CHECK(err < 1e-4, "%s through a wide layer: worst relative error %g", rect ? "rectgrad" : "guided_backprop",
              err);
        sal_explanation_free(e.e);
    }
    sal_tensor_free(&x);
    sal_model_free(g);
    free(W0), free(W1);
}

/* On a linear model DeepLIFT is gradient x (x - x0). */
static void test_deeplift_linear(void) {
    sal_rng r;
    sal_rng_seed(&r, 3);
    static mlp n;
    mlp_init(&n, &r, 2, (int[]){5, 6, 3}, "Relu");
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<lin>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 5}) == SAL_OK);
    add_const(g, "W0", 2, (int64_t[]){6, 5}, n.W[0]);
    add_const(g, "b0", 1, (int64_t[]){6}, n.b[0]);
    add_const(g, "W1", 2, (int64_t[]){3, 6}, n.W[1]);
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    add_node(g, "Gemm", "fc0", 3, (const char *[]){"x", "W0", "b0"}, "h", 1, at);
    add_node(g, "Flatten", "flat", 1, (const char *[]){"h"}, "hf", 0, NULL);
    at[0] = sal_attr_make_int("transB", 1);
    add_node(g, "Gemm", "fc1", 2, (const char *[]){"hf", "W1"}, "y", 1, at);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    sal_tensor x = rand_x(&r, 3, 5);
    for (int b = 0; b < 2; b++) {
        for (int v = 0; v < 2; v++) {
            const char *params[2] = {b ? "baseline=black" : "baseline=zero", v ? "variant=revealcancel" : "variant=rescale"};
            run_t e = explain(g, &x, "deeplift", 2, params, 1, false);
            CHECK(e.st == SAL_OK, "deeplift on a linear model");
            if (e.st != SAL_OK) continue;
            double want[15];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 5; j++) {
                    double gr = 0;
                    for (int h = 0; h < 6; h++) gr += (double)n.W[1][1 * 6 + h] * n.W[0][h * 5 + j];
                    want[i * 5 + j] = gr * (sal_f32(&x)[i * 5 + j] - (b ? -1.0 : 0.0));
                }
            double err = rel_err(sal_f32(sal_explanation_map(e.e)), want, 15);
            CHECK(err < 1e-5, "deeplift %s %s on a linear model = gradient x (x - x0): error %g", params[0], params[1], err);
            sal_explanation_free(e.e);
        }
    }
    sal_tensor_free(&x);
    sal_model_free(g);
}

/* A softmax output: contributions to the logit minus the mean logit (the paper's adjustment for softmax layers);
 * guided backprop explains the probability through the softmax's gradient. */
static void test_softmax_output(void) {
    sal_rng r;
    sal_rng_seed(&r, 8);
    static mlp n;
    mlp_init(&n, &r, 2, (int[]){5, 8, 4}, "Relu");
    sal_model *m = mlp_model(&n, "Softmax");
    sal_tensor x = rand_x(&r, 3, 5);
    float zero[5] = {0};
    for (int v = 0; v < 2; v++) {
        const char *p = v ? "variant=revealcancel" : "variant=rescale";
        run_t e = explain(m, &x, "deeplift", 1, &p, 2, false);
        CHECK(e.st == SAL_OK, "deeplift on a softmax output");
        if (e.st != SAL_OK) continue;
        double comp = completeness(m, &x, zero, false, sal_f32(sal_explanation_map(e.e)), 2, true);
        CHECK(comp < 1e-5 && sal_explanation_metric(e.e, "completeness_delta") < 1e-4,
              "deeplift %s, softmax output: completeness against the mean-centred logit %g", p, comp);
        sal_explanation_free(e.e);
    }
    run_t e = explain(m, &x, "guided_backprop", 0, NULL, 2, false);
    CHECK(e.st == SAL_OK, "guided backprop through a softmax output");
    sal_explanation_free(e.e);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* A CNN: Conv, BatchNorm, ReLU, MaxPool (2x2/2, then overlapping 3x3/1 with padding), a residual
 * Add, GlobalMaxPool branch concatenated, Gemm. */
static sal_model *cnn_model(sal_rng *r) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<cnn>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 2, 8, 8}) == SAL_OK);
    float w[512], v[64];
#define RANDW(cnt, sc)                                                                                              \
    for (int i_ = 0; i_ < (cnt); i_++) w[i_] = (sc) * (float)sal_rng_normal(r)
    RANDW(4 * 2 * 9, 0.4f);
    add_const(g, "k1", 4, (int64_t[]){4, 2, 3, 3}, w);
    RANDW(4, 0.2f);
    add_const(g, "c1", 1, (int64_t[]){4}, w);
    for (int i = 0; i < 4; i++) v[i] = 0.5f + 0.25f * (float)i;
    add_const(g, "bn_s", 1, (int64_t[]){4}, v);
    RANDW(4, 0.3f);
    add_const(g, "bn_b", 1, (int64_t[]){4}, w);
    RANDW(4, 0.3f);
    add_const(g, "bn_m", 1, (int64_t[]){4}, w);
    for (int i = 0; i < 4; i++) v[i] = 0.6f + 0.2f * (float)i;
    add_const(g, "bn_v", 1, (int64_t[]){4}, v);
    RANDW(4 * 4 * 9, 0.3f);
    add_const(g, "k2", 4, (int64_t[]){4, 4, 3, 3}, w);
    RANDW(3 * 68, 0.2f);
    add_const(g, "W", 2, (int64_t[]){3, 68}, w);
    RANDW(3, 0.1f);
    add_const(g, "b", 1, (int64_t[]){3}, w);
#undef RANDW
    sal_attr a1[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3}),
                      sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    add_node(g, "Conv", "conv1", 3, (const char *[]){"x", "k1", "c1"}, "h1", 2, a1);
    add_node(g, "BatchNormalization", "bn1", 5, (const char *[]){"h1", "bn_s", "bn_b", "bn_m", "bn_v"}, "h2", 0, NULL);
    add_node(g, "Relu", "relu1", 1, (const char *[]){"h2"}, "h3", 0, NULL);
    sal_attr p1[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    add_node(g, "MaxPool", "pool1", 1, (const char *[]){"h3"}, "h4", 2, p1);
    sal_attr a2[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3}),
                      sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    add_node(g, "Conv", "conv2", 2, (const char *[]){"h4", "k2"}, "h5", 2, a2);
    add_node(g, "Relu", "relu2", 1, (const char *[]){"h5"}, "h6", 0, NULL);
    add_node(g, "Add", "res", 2, (const char *[]){"h6", "h4"}, "h7", 0, NULL);
    sal_attr p2[3] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){1, 1}),
                      sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    add_node(g, "MaxPool", "pool2", 1, (const char *[]){"h7"}, "h8", 3, p2);
    add_node(g, "GlobalMaxPool", "gmax", 1, (const char *[]){"h7"}, "h9", 0, NULL);
    sal_attr f1[1] = {sal_attr_make_int("axis", 1)};
    add_node(g, "Flatten", "flat1", 1, (const char *[]){"h8"}, "f1", 1, f1);
    sal_attr f2[1] = {sal_attr_make_int("axis", 1)};
    add_node(g, "Flatten", "flat2", 1, (const char *[]){"h9"}, "f2", 1, f2);
    sal_attr cc[1] = {sal_attr_make_int("axis", 1)};
    add_node(g, "Concat", "cat", 2, (const char *[]){"f1", "f2"}, "f", 1, cc);
    sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
    add_node(g, "Gemm", "fc", 3, (const char *[]){"f", "W", "b"}, "y", 1, tb);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    return g;
}

static void test_deeplift_cnn(void) {
    sal_rng r;
    sal_rng_seed(&r, 31);
    sal_model *m = cnn_model(&r);
    sal_tensor x = t_rand(&r, 4, (int64_t[]){5, 2, 8, 8}, 1.0f);
    float zero[128] = {0}, black[128];
    for (int i = 0; i < 128; i++) black[i] = -1;
    const char *variants[] = {"variant=rescale", "variant=revealcancel"};
    for (int v = 0; v < 2; v++)
        for (int b = 0; b < 2; b++) {
            const char *params[2] = {variants[v], b ? "baseline=black" : "baseline=zero"};
            for (int t = 0; t < 3; t += 2) {
                run_t e = explain(m, &x, "deeplift", 2, params, t, false);
                CHECK(e.st == SAL_OK, "deeplift %s %s on the CNN", params[0], params[1]);
                if (e.st != SAL_OK) continue;
                double comp = completeness(m, &x, b ? black : zero, false, sal_f32(sal_explanation_map(e.e)), t, false);
                double metric = sal_explanation_metric(e.e, "completeness_delta");
                g_worst_metric = fmax(g_worst_metric, metric);
                CHECK(comp < 1e-5 && metric < 1e-4, "deeplift %s %s on the CNN, target %d: completeness %g (reported %g)",
                      params[0], params[1], t, comp, metric);
                if (v == 1) /* conv2 -> relu2 splits; BatchNorm sits between conv1 and relu1 */
                    CHECK(sal_explanation_metric(e.e, "revealcancel_split_nodes") == 1 &&
                              sal_explanation_metric(e.e, "revealcancel_rescale_nodes") == 1,
                          "RevealCancel on the CNN: %g split, %g single-term",
                          sal_explanation_metric(e.e, "revealcancel_split_nodes"),
                          sal_explanation_metric(e.e, "revealcancel_rescale_nodes"));
                sal_explanation_free(e.e);
            }
        }
    /* Captum's max-pool rule (overlapping, padded and global windows) gives our contributions */
    run_t ec = explain(m, &x, "deeplift", 1, (const char *[]){"maxpool=captum"}, 1, false),
          eo = explain(m, &x, "deeplift", 0, NULL, 1, false);
    CHECK(ec.st == SAL_OK && eo.st == SAL_OK, "deeplift maxpool=captum on the CNN");
    if (ec.st == SAL_OK && eo.st == SAL_OK) {
        double d = 0, mx = max_abs(sal_f32(sal_explanation_map(eo.e)), 5 * 128);
        for (int64_t i = 0; i < 5 * 128; i++)
            d = fmax(d, fabs(sal_f32(sal_explanation_map(ec.e))[i] - sal_f32(sal_explanation_map(eo.e))[i]));
        CHECK(d <= 1e-5 * mx && mx > 0, "maxpool=captum and conserving differ by %g (largest %g)", d, mx);
    }
    sal_explanation_free(ec.e);
    sal_explanation_free(eo.e);
    /* chunks of 2 rows give the same map as one pass */
    sal_explain_opts o = {.method = "deeplift", .target = SAL_TARGET_MAX, .chunk = 2};
    sal_explanation *e1 = NULL, *e2 = NULL;
    CHECK_OK(sal_explain(m, &x, &o, &e1));
    o.chunk = 0;
    CHECK_OK(sal_explain(m, &x, &o, &e2));
    if (e1 && e2) {
        double d = 0;
        for (int64_t i = 0; i < 5 * 128; i++)
            d = fmax(d, fabs(sal_f32(sal_explanation_map(e1))[i] - sal_f32(sal_explanation_map(e2))[i]));
        CHECK(d < 1e-6, "deeplift in chunks of 2 differs by %g", d);
    }
    sal_explanation_free(e1);
    sal_explanation_free(e2);
    /* the ReLU methods run on it too (max pooling keeps its gradient) */
    const char *others[] = {"guided_backprop", "deconvnet", "rectgrad", "rectgrad_mod"};
    for (int k = 0; k < 4; k++) {
        run_t e = explain(m, &x, others[k], 0, NULL, 1, false);
        CHECK(e.st == SAL_OK && max_abs(sal_f32(sal_explanation_map(e.e)), 5 * 128) > 0, "%s on the CNN", others[k]);
        sal_explanation_free(e.e);
    }
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Max pooling by hand: one window, the three cases of dl_max_window, under each maxpool= mode.
 * conserving: the window's difference dy = max x - max x0 to x's argmax a if the maximum rose, to
 * x0's argmax b if it fell; gradient: multiplier 1 at a, so a gets x[a] - x0[a]; captum: element
 * multipliers u / (x - x0) with u[a] = max(y, y0) - y0, u[b] = y - max(y, y0), the gradient where
 * x = x0 (the same contributions as conserving). */
static void test_deeplift_maxpool_cases(void) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<gmax>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 3, (int64_t[]){-1, 1, 3}) == SAL_OK);
    add_node(g, "GlobalMaxPool", "gmax", 1, (const char *[]){"x"}, "p", 0, NULL);
    sal_attr f[1] = {sal_attr_make_int("axis", 1)};
    add_node(g, "Flatten", "flat", 1, (const char *[]){"p"}, "y", 1, f);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    char path[] = "/tmp/sal_dl_ref_XXXXXX.npy";
    int fd = mkstemps(path, 4);
    SAL_ASSERT(fd >= 0);
    close(fd);
    char bp[128];
    snprintf(bp, sizeof bp, "baseline=%s", path);
    static const char *const modes[] = {"maxpool=conserving", "maxpool=captum", "maxpool=gradient"};
    struct {
        float x[3], x0[3], want[3][3]; /* per mode */
    } cases[] = {
        /* max rose 2 -> 3: conserving and captum credit x's argmax with dy = 1; the gradient gives it 3 - 1 */
        {{3, 1, 0}, {1, 2, 0}, {{1, 0, 0}, {1, 0, 0}, {2, 0, 0}}},
        /* max fell 5 -> 3: the reference's argmax gets dy = -2; the gradient still goes to x's argmax */
        {{3, 0, 0}, {0, 5, 0}, {{0, -2, 0}, {0, -2, 0}, {3, 0, 0}}},
        /* unchanged max */
        {{1, 0.5f, 0}, {1, 0, 0}, {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}}},
    };
    for (int k = 0; k < 3; k++) {
        sal_tensor x = t_tensor_of(3, (int64_t[]){1, 1, 3}, cases[k].x), x0 = t_tensor_of(3, (int64_t[]){1, 1, 3}, cases[k].x0);
        CHECK_OK(sal_npy_write(path, &x0));
        for (int md = 0; md < 3; md++) {
            run_t e = explain(g, &x, "deeplift", 2, (const char *[]){bp, modes[md]}, 0, false);
            CHECK(e.st == SAL_OK, "deeplift %s on a max", modes[md]);
            if (e.st != SAL_OK) continue;
            const float *a = sal_f32(sal_explanation_map(e.e)), *w = cases[k].want[md];
            CHECK(fabsf(a[0] - w[0]) < 1e-6 && fabsf(a[1] - w[1]) < 1e-6 && fabsf(a[2] - w[2]) < 1e-6,
                  "max case %d, %s: got (%g, %g, %g), want (%g, %g, %g)", k, modes[md], a[0], a[1], a[2], w[0], w[1],
                  w[2]);
            if (k == 0 && md == 2) /* the gradient mode does not conserve: the map sums to 2, f(x) - f(x0) = 1 */
                CHECK(fabs(sal_explanation_metric(e.e, "completeness_delta") - 1) < 1e-6,
                      "maxpool=gradient reports completeness_delta %g, want 1",
                      sal_explanation_metric(e.e, "completeness_delta"));
            sal_explanation_free(e.e);
        }
        sal_tensor_free(&x);
        sal_tensor_free(&x0);
    }
    sal_tensor x = t_tensor_of(3, (int64_t[]){1, 1, 3}, cases[0].x);
    run_t e = explain(g, &x, "deeplift", 1, (const char *[]){"maxpool=rescale"}, 0, false);
    CHECK(e.st == SAL_ERR_ARG && strstr(sal_last_error(), "maxpool"), "maxpool=rescale is refused: %s", sal_last_error());
    sal_explanation_free(e.e);
    sal_tensor_free(&x);
    remove(path);
    sal_model_free(g);
}

/* The 2x2 / stride 2 pooling (its own loop, dl_max_2x2) against the window rule by hand, on planes
 * with a spare row and column and values on a coarse grid, so that x, the reference and both tie:
 * conserving credits g dy to x's argmax a when the maximum rose or stayed (dy >= 0), else to the
 * reference's argmax b, each the first maximum in tap order; gradient credits g (x[a] - x0[a]) to a. */
static void test_deeplift_maxpool_2x2(void) {
    enum { N = 2, C = 2, H = 5, W = 7, OH = 2, OW = 3, F = C * OH * OW };
    sal_rng r;
    sal_rng_seed(&r, 17);
    float wt[3 * F], xv[N * C * H * W], rv[N * C * H * W];
    for (int i = 0; i < 3 * F; i++) wt[i] = (float)(sal_rng_uniform(&r) - 0.5);
    for (int i = 0; i < N * C * H * W; i++) {
        xv[i] = 0.5f * (float)(int)(3 * sal_rng_uniform(&r));
        rv[i] = 0.5f * (float)(int)(3 * sal_rng_uniform(&r));
    }
    /* in every plane, ties at the maximum for sure: x level (the first tap wins, the maximum rose),
     * x0 tied on its first two taps (the maximum fell), x tied on the middle two */
    static const float tx[3][4] = {{1, 1, 1, 1}, {0, 0, 0, 0}, {0.5f, 1, 1, 0}}, tr[3][4] = {{0.5f, 0, 0, 0},
                                                                                         {1, 1, 0.5f, 0}, {0, 0, 0, 0}};
    for (int pl = 0; pl < N * C; pl++)
        for (int k = 0; k < 3; k++) {
            int i0 = pl * H * W + 2 * (k / 2) * W + 2 * (k % 2 + k / 2), tap[4] = {i0, i0 + 1, i0 + W, i0 + W + 1};
            for (int q = 0; q < 4; q++) xv[tap[q]] = tx[k][q], rv[tap[q]] = tr[k][q];
        }
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<pool2x2>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, C, H, W}) == SAL_OK);
    add_const(g, "W", 2, (int64_t[]){3, F}, wt);
    sal_attr p[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                     sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    add_node(g, "MaxPool", "pool", 1, (const char *[]){"x"}, "p", 2, p);
    sal_attr f[1] = {sal_attr_make_int("axis", 1)};
    add_node(g, "Flatten", "flat", 1, (const char *[]){"p"}, "f", 1, f);
    sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
    add_node(g, "Gemm", "fc", 2, (const char *[]){"f", "W"}, "y", 1, tb);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    char path[] = "/tmp/sal_dl_2x2_XXXXXX.npy";
    int fd = mkstemps(path, 4);
    SAL_ASSERT(fd >= 0);
    close(fd);
    sal_tensor x = t_tensor_of(4, (int64_t[]){N, C, H, W}, xv), x0 = t_tensor_of(4, (int64_t[]){N, C, H, W}, rv);
    CHECK_OK(sal_npy_write(path, &x0));
    char bp[128];
    snprintf(bp, sizeof bp, "baseline=%s", path);
    int ties = 0, fell = 0;
    for (int md = 0; md < 2; md++) {
        const char *mode = md ? "maxpool=gradient" : "maxpool=conserving";
        run_t e = explain(g, &x, "deeplift", 2, (const char *[]){bp, mode}, 1, false);
        CHECK(e.st == SAL_OK, "deeplift %s on a 2x2 pool", mode);
        if (e.st != SAL_OK) continue;
        double want[N * C * H * W] = {0}, err = 0;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                for (int oy = 0; oy < OH; oy++)
                    for (int ox = 0; ox < OW; ox++) {
                        const int i0 = ((n * C + c) * H + 2 * oy) * W + 2 * ox, tap[4] = {i0, i0 + 1, i0 + W, i0 + W + 1};
                        int a = tap[0], b = tap[0];
                        for (int t = 1; t < 4; t++) {
                            ties += xv[tap[t]] == xv[a] || rv[tap[t]] == rv[b];
                            if (xv[tap[t]] > xv[a]) a = tap[t];
                            if (rv[tap[t]] > rv[b]) b = tap[t];
                        }
                        double gw = wt[1 * F + (c * OH + oy) * OW + ox], dy = (double)xv[a] - rv[b];
                        fell += dy < 0;
                        if (md) want[a] += gw * ((double)xv[a] - rv[a]);
                        else want[dy >= 0 ? a : b] += gw * dy;
                    }
        for (int i = 0; i < N * C * H * W; i++) err = fmax(err, fabs(sal_f32(sal_explanation_map(e.e))[i] - want[i]));
        CHECK(err < 1e-6, "deeplift %s on a 2x2 pool against the window rule by hand: error %g", mode, err);
        sal_explanation_free(e.e);
    }
    CHECK(ties > 0 && fell > 0, "the 2x2 case holds ties (%d) and falling maxima (%d)", ties, fell);
    sal_tensor_free(&x);
    sal_tensor_free(&x0);
    remove(path);
    sal_model_free(g);
}

/* Guided backprop and deconvnet through max pooling over a ReLU, whose rule the pooling's backward
 * applies itself (graph/exec.c: relu_under, sal_opctx.relu_rule), against the rules by hand: each
 * window's gradient to the first maximum of max(x, 0) in tap order, summed, then guided keeps it
 * where it and x are positive, deconvnet takes max(0, it). 2x2 / 2 windows on 9 x 9 (the last row and
 * column in none; their gradient clamped before), 3x3 / 2 and 3x3 / 1 windows with padding
 * (overlapping: clamped after), and 2x2 / 2 after an identity 1x1 convolution of 8 channels (blocked
 * layouts where blocks are 8 wide). */
static void test_relu_rules_pooled(void) {
    enum { N = 2, H = 9, W = 9, NO = 3 };
    static const struct {
        int C, k, s, p, OH;
        bool conv;
    } cs[] = {{3, 2, 2, 0, 4, false}, {3, 3, 2, 1, 5, false}, {2, 3, 1, 1, 9, false}, {8, 2, 2, 0, 4, true}};
    sal_rng r;
    sal_rng_seed(&r, 23);
    int closed = 0, neg = 0;
    for (size_t q = 0; q < sizeof cs / sizeof cs[0]; q++) {
        const int C = cs[q].C, K = cs[q].k, S = cs[q].s, P = cs[q].p, OH = cs[q].OH, F = C * OH * OH;
        float *xv = sal_malloc(sizeof(float) * N * C * H * W), *wt = sal_malloc(sizeof(float) * NO * (size_t)F);
        float id[8 * 8] = {0};
        for (int i = 0; i < N * C * H * W; i++) xv[i] = (float)sal_rng_normal(&r) - 0.3f;
        for (int i = 0; i < NO * F; i++) wt[i] = (float)(sal_rng_uniform(&r) - 0.5);
        for (int i = 0; i < C; i++) id[i * C + i] = 1.0f;
        sal_model *g;
        SAL_ASSERT(sal_graph_create("<relu-pool>", &g) == SAL_OK);
        SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, C, H, W}) == SAL_OK);
        add_const(g, "W", 2, (int64_t[]){NO, F}, wt);
        if (cs[q].conv) {
            add_const(g, "I", 4, (int64_t[]){C, C, 1, 1}, id);
            add_node(g, "Conv", "conv", 2, (const char *[]){"x", "I"}, "h", 0, NULL);
        }
        add_node(g, "Relu", "relu", 1, (const char *[]){cs[q].conv ? "h" : "x"}, "a", 0, NULL);
        sal_attr pa[3] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){K, K}),
                          sal_attr_make_ints("strides", 2, (int64_t[]){S, S}),
                          sal_attr_make_ints("pads", 4, (int64_t[]){P, P, P, P})};
        add_node(g, "MaxPool", "pool", 1, (const char *[]){"a"}, "p", 3, pa);
        add_node(g, "Flatten", "flat", 1, (const char *[]){"p"}, "f", 1, (sal_attr[]){sal_attr_make_int("axis", 1)});
        add_node(g, "Gemm", "fc", 2, (const char *[]){"f", "W"}, "y", 1, (sal_attr[]){sal_attr_make_int("transB", 1)});
        SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
        SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
        sal_tensor x = t_tensor_of(4, (int64_t[]){N, C, H, W}, xv);
        double *gs = sal_calloc((size_t)(N * C * H * W), sizeof *gs), *want = sal_malloc(sizeof *want * N * C * H * W);
        for (int pl = 0; pl < N * C; pl++) /* the gradient of max(x, 0) from the pooling, class 1 */
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OH; ox++) {
                    int best = -1;
                    float bv = 0;
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++) {
                            int iy = oy * S - P + ky, ix = ox * S - P + kx, i = (pl * H + iy) * W + ix;
                            float v = iy >= 0 && iy < H && ix >= 0 && ix < W ? fmaxf(xv[i], 0.0f) : -INFINITY;
                            if (best < 0 ? v > -INFINITY : v > bv) best = i, bv = v;
                        }
                    double gw = wt[1 * F + ((pl % C) * OH + oy) * OH + ox];
                    gs[best] += gw;
                    closed += bv == 0.0f, neg += gw < 0;
                }
        for (int md = 0; md < 2; md++) {
            run_t e = explain(g, &x, md ? "deconvnet" : "guided_backprop", 0, NULL, 1, false);
            CHECK(e.st == SAL_OK, "%s over pooling case %zu", md ? "deconvnet" : "guided_backprop", q);
            if (e.st != SAL_OK) continue;
            for (int i = 0; i < N * C * H * W; i++)
                want[i] = gs[i] > 0 && (md || xv[i] > 0) ? gs[i] : 0.0;
            double err = rel_err(sal_f32(sal_explanation_map(e.e)), want, N * C * H * W);
            CHECK(err < 1e-6, "%s through a ReLU and max pooling %dx%d / %d pad %d%s: error %g of the largest",
                  md ? "deconvnet" : "guided_backprop", K, K, S, P, cs[q].conv ? " (after a convolution)" : "", err);
            sal_explanation_free(e.e);
        }
        sal_free(gs), sal_free(want), sal_free(xv), sal_free(wt);
        sal_tensor_free(&x);
        sal_model_free(g);
    }
    CHECK(closed > 0 && neg > 0, "windows with no positive input (%d) and negative gradients (%d) occur", closed, neg);
}

/* Every allocation of a run failing in turn: a clean SAL_ERR_NOMEM each time (ASan checks leaks). */
static void test_alloc_failures(void) {
    sal_rng r;
    sal_rng_seed(&r, 2);
    sal_model *m = cnn_model(&r);
    sal_tensor x = t_rand(&r, 4, (int64_t[]){2, 2, 8, 8}, 1.0f);
    const char *methods[][2] = {{"deeplift", "variant=revealcancel"}, {"deeplift", "variant=rescale"},
                                {"rectgrad", "tau=90"}, {"guided_backprop", NULL}};
    for (int k = 0; k < 4; k++) {
        int bad = 0, runs = 0;
        for (long f = 1; f < 5000; f++) {
            sal_explain_opts o = {.method = methods[k][0], .nparams = methods[k][1] ? 1 : 0, .params = &methods[k][1]};
            sal_explanation *e = NULL;
            sal_alloc_fail_after(f);
            sal_status st = sal_explain(m, &x, &o, &e);
            sal_alloc_fail_after(0);
            sal_explanation_free(e);
            runs++;
            if (st == SAL_OK) break;
            if (st != SAL_ERR_NOMEM && bad++ < 3)
                fprintf(stderr, "FAIL allocation %ld of %s: %s\n", f, methods[k][0], sal_last_error());
        }
        CHECK(bad == 0 && runs > 20, "%s %s under allocation failures: %d runs, %d wrong statuses", methods[k][0],
              methods[k][1] ? methods[k][1] : "", runs, bad);
    }
    sal_tensor_free(&x);
    sal_model_free(m);
}

int main(void) {
    test_relu_rules();
    test_refusals();
    test_deeplift_mlp();
    test_deeplift_linear();
    test_deeplift_wide();
    test_softmax_output();
    test_deeplift_cnn();
    test_deeplift_maxpool_cases();
    test_deeplift_maxpool_2x2();
    test_relu_rules_pooled();
    test_alloc_failures();
    printf("deeplift completeness: worst |sum A - df| / max(1, |df|) %.3g; worst reported completeness_delta %.3g\n",
           g_worst_comp, g_worst_metric);
    return t_done("test_methods_relu_rules");
}
