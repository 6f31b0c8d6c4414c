/* LRP and Deep Taylor (src/methods/lrp.c; canonization in src/graph/rewrite.c) against their definitions computed here in
 * double precision:
 *   - every linear rule (0, epsilon, gamma, alpha-beta, z+, zb, w^2, flat) on a dense layer and on a
 *     strided, padded convolution written out as a dense matrix by hand, so the shared
 *     apply / transposed primitives are checked for both;
 *   - LRP-0 conserves relevance layer by layer on bias-free ReLU nets (dense, CNN with max and average
 *     pooling, residual Add, Concat) and equals gradient x input there;
 *   - epsilon: what each layer loses is exactly what epsilon and the biases absorb;
 *   - z+ conserves on positive inputs; zb on a one-layer net equals its closed form;
 *   - proportional max pooling; BatchNormalization folding leaves the outputs unchanged;
 *   - composites equal the same assignment given as rule entries; first match wins;
 *   - refusals name the node, the rule entry or the parameter. */
#include "testutil.h"
#include "methods/lrp.h"
#include "ops/conv_wino.h"
#include "ops/ops.h"
#include "saliency.h"

/* ---- building graphs ---- */

/* Gemm with transB: W (K, D), b (K) or none */
static void gemm(sal_model *g, const char *name, const char *in, const char *out, int K, int D, const float *W,
                 const float *b) {
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.W", name);
    snprintf(bn, sizeof bn, "%s.b", name);
    t_const(g, wn, 2, (int64_t[]){K, D}, W);
    if (b) t_const(g, bn, 1, (int64_t[]){K}, b);
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", name, b ? 3 : 2, (const char *[]){in, wn, bn}, out, 1, at);
}

static void relu(sal_model *g, const char *name, const char *in, const char *out) {
    t_node(g, "Relu", name, 1, (const char *[]){in}, out, 0, NULL);
}

/* ---- a dense matrix view of a linear layer, and the rules by hand ---- */

typedef struct {
    int K, D;
    double W[64 * 128], b[64];
    unsigned char conn[64 * 128]; /* input j feeds output k (flat counts these) */
} dmat;

typedef struct {
    sal_lrp_kind kind;
    double a, b;
    bool zennit; /* z+ / alpha-beta / gamma as Zennit's rules.py computes them */
} hrule;

static double stab(double z, double eps) { return z >= 0 ? z + eps : z - eps; }

/* R_in (D) for R (K) through layer M at input x, by the rule's definition. */
static void hand_rule(const dmat *M, const double *x, const double *R, hrule r, double lo, double hi, double eps_stab,
                      double *Rin) {
    for (int j = 0; j < M->D; j++) Rin[j] = 0;
    for (int k = 0; k < M->K; k++) {
        const double *w = M->W + k * M->D;
        const unsigned char *cn = M->conn + k * M->D;
        double c[128], c2[128], z = 0, z2 = 0, y = M->b[k];
        for (int j = 0; j < M->D; j++) y += x[j] * w[j];
        for (int j = 0; j < M->D; j++) {
            double wp = w[j] > 0 ? w[j] : 0, wn = w[j] < 0 ? w[j] : 0, xw = x[j] * w[j];
            switch (r.kind) {
            case SAL_LRP_ZERO:
            case SAL_LRP_EPSILON: c[j] = xw; break;
            case SAL_LRP_GAMMA:
                if (r.zennit) { /* Zennit's Gamma: the output's sign picks which contributions gamma favours */
                    double xp = x[j] > 0 ? x[j] : 0, xn = x[j] < 0 ? x[j] : 0;
                    double up = w[j] + r.a * wp, un = w[j] + r.a * wn;
                    c[j] = y > 0 ? xp * up + xn * un : y < 0 ? xp * un + xn * up : 0;
                } else {
                    c[j] = x[j] * (w[j] + r.a * wp);
                }
                break;
            case SAL_LRP_ALPHA_BETA:
                c[j] = xw > 0 ? xw : 0;
                c2[j] = xw < 0 ? xw : 0;
                z2 += c2[j];
                break;
            case SAL_LRP_ZB: c[j] = cn[j] ? xw - lo * wp - hi * wn : 0; break;
            case SAL_LRP_WSQUARE: c[j] = w[j] * w[j]; break;
            case SAL_LRP_FLAT: c[j] = cn[j]; break;
            }
            z += c[j];
        }
        if (r.kind == SAL_LRP_ZERO || r.kind == SAL_LRP_EPSILON) z += M->b[k];
        double bp = M->b[k] > 0 ? M->b[k] : 0, bn = M->b[k] < 0 ? M->b[k] : 0;
        if (r.kind == SAL_LRP_GAMMA && !r.zennit) z += M->b[k] + r.a * bp;
        if (r.kind == SAL_LRP_GAMMA && r.zennit) z += y > 0 ? M->b[k] + r.a * bp : M->b[k] + r.a * bn;
        if (r.kind == SAL_LRP_ALPHA_BETA && r.zennit) z += bp, z2 += bn; /* Zennit: the bias of the group's sign */
        double e = r.kind == SAL_LRP_EPSILON ? r.a : eps_stab;
        if (r.kind == SAL_LRP_ALPHA_BETA) {
            for (int j = 0; j < M->D; j++) {
                Rin[j] += r.a * c[j] / stab(z, eps_stab) * R[k];
                if (r.b > 0) Rin[j] -= r.b * c2[j] / stab(z2, eps_stab) * R[k];
            }
        } else {
            for (int j = 0; j < M->D; j++) Rin[j] += c[j] / stab(z, e) * R[k];
        }
    }
}

static void dmat_forward(const dmat *M, const double *x, double *z) {
    for (int k = 0; k < M->K; k++) {
        double s = M->b[k];
        for (int j = 0; j < M->D; j++) s += M->W[k * M->D + j] * x[j];
        z[k] = s;
    }
}

/* Conv (M, C, 3, 3), padding 1, stride 2, over (C, H, H) as a dense matrix (M * OH * OH, C * H * H). */
static void conv_matrix(dmat *M, const float *W, const float *b, int Mo, int C, int H) {
    int OH = (H + 2 - 3) / 2 + 1;
    memset(M, 0, sizeof *M);
    M->K = Mo * OH * OH;
    M->D = C * H * H;
    SAL_ASSERT(M->K <= 64 && M->D <= 128);
    for (int m = 0; m < Mo; m++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OH; ox++) {
                int k = (m * OH + oy) * OH + ox;
                M->b[k] = b[m];
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= H) continue;
                            int j = (c * H + iy) * H + ix;
                            M->W[k * M->D + j] = W[((m * C + c) * 3 + ky) * 3 + kx];
                            M->conn[k * M->D + j] = 1;
                        }
            }
}

/* ---- running ---- */

static sal_explanation *explain(const sal_model *m, const sal_tensor *x, const char *method, int np,
                                const char *const *params, int64_t target) {
    sal_explain_opts o = {.method = method, .nparams = np, .params = params, .target = SAL_TARGET_INDEX,
                          .classes = &target, .nclasses = 1, .data_lo = -1, .data_hi = 1};
    sal_explanation *e = NULL;
    sal_status st = sal_explain(m, x, &o, &e);
    if (st != SAL_OK) fprintf(stderr, "  (%s: %s)\n", method, sal_last_error());
    return e;
}

static double rel_err(const float *got, const double *want, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs(got[i] - want[i]));
        s = fmax(s, fabs(want[i]));
    }
    return d / fmax(s, 1e-9);
}

static double rel_errf(const float *got, const float *want, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs(got[i] - want[i]));
        s = fmax(s, fabs(want[i]));
    }
    return d / fmax(s, 1e-9);
}

static double tsum(const sal_tensor *t, int64_t row, int64_t b) {
    int64_t n = sal_tensor_numel(t) / t->dim[0];
    (void)row;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += sal_f32(t)[b * n + i];
    return s;
}

/* ---- 1. every rule on a dense layer and a convolution, against the hand rules ---- */

static const struct {
    const char *spec;
    hrule r;
} k_rules[] = {
    {"0", {SAL_LRP_ZERO, 0, 0, false}},
    {"epsilon:0.1", {SAL_LRP_EPSILON, 0.1, 0, false}},
    {"gamma:0.25", {SAL_LRP_GAMMA, 0.25, 0, false}},
    {"alpha_beta:2:1", {SAL_LRP_ALPHA_BETA, 2, 1, false}},
    {"alpha1beta0", {SAL_LRP_ALPHA_BETA, 1, 0, false}},
    {"zplus", {SAL_LRP_ALPHA_BETA, 1, 0, false}},
    {"zb:-1.5:2", {SAL_LRP_ZB, -1.5, 2, false}},
    {"wsquare", {SAL_LRP_WSQUARE, 0, 0, false}},
    {"flat", {SAL_LRP_FLAT, 0, 0, false}},
};

/* x -> lin (a Gemm or a Conv given as M) -> relu -> flatten -> fc -> logits; fc by LRP-0, lin by r.
 * Computes the map of sample x for target t by hand. */
static void hand_two_layers(const dmat *M, const dmat *F, const double *x, int t, hrule r, double lo, double hi,
                            double *map) {
    double z[64], a[64], y[64], R[64], Ra[64];
    dmat_forward(M, x, z);
    for (int k = 0; k < M->K; k++) a[k] = z[k] > 0 ? z[k] : 0;
    dmat_forward(F, a, y);
    for (int k = 0; k < F->K; k++) R[k] = k == t ? y[t] : 0;
    hand_rule(F, a, R, (hrule){SAL_LRP_ZERO, 0, 0, false}, 0, 0, 1e-6, Ra);
    hand_rule(M, x, Ra, r, lo, hi, 1e-6, map);
}

static void test_rules_dense_and_conv(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 11);
    enum { C = 2, H = 5, MO = 3, OH = 3, NF = 4, N = 3 };
    float cw[MO * C * 9], cb[MO], fw[NF * MO * OH * OH], fb[NF];
    t_randv(&rng, cw, MO * C * 9, 0.5f);
    t_randv(&rng, cb, MO, 0.2f);
    t_randv(&rng, fw, NF * MO * OH * OH, 0.4f);
    t_randv(&rng, fb, NF, 0.1f);
    /* the convolutional net */
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<conv-net>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, C, H, H}) == SAL_OK);
    t_const(g, "conv.W", 4, (int64_t[]){MO, C, 3, 3}, cw);
    t_const(g, "conv.b", 1, (int64_t[]){MO}, cb);
    sal_attr ca[3] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3}),
                      sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    t_node(g, "Conv", "conv", 3, (const char *[]){"x", "conv.W", "conv.b"}, "c", 3, ca);
    relu(g, "r", "c", "a");
    t_node(g, "Flatten", "flat", 1, (const char *[]){"a"}, "af", 0, NULL);
    gemm(g, "fc", "af", "y", NF, MO * OH * OH, fw, fb);
    sal_model *cnet = t_finish(g, "y");
    /* the dense net: the same fc after a Gemm of 27 units from 50 inputs */
    float hw[27 * C * H * H], hb[27];
    t_randv(&rng, hw, 27 * C * H * H, 0.25f);
    t_randv(&rng, hb, 27, 0.2f);
    SAL_ASSERT(sal_graph_create("<dense-net>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, C * H * H}) == SAL_OK);
    gemm(g, "h", "x", "z", 27, C * H * H, hw, hb);
    relu(g, "r", "z", "af");
    gemm(g, "fc", "af", "y", NF, 27, fw, fb);
    sal_model *dnet = t_finish(g, "y");

    dmat *Mc = calloc(1, sizeof *Mc), *Md = calloc(1, sizeof *Md), *F = calloc(1, sizeof *F);
    conv_matrix(Mc, cw, cb, MO, C, H);
    Md->K = 27;
    Md->D = C * H * H;
    for (int k = 0; k < 27; k++) {
        Md->b[k] = hb[k];
        for (int j = 0; j < Md->D; j++) Md->W[k * Md->D + j] = hw[k * Md->D + j], Md->conn[k * Md->D + j] = 1;
    }
    F->K = NF;
    F->D = 27;
    for (int k = 0; k < NF; k++) {
        F->b[k] = fb[k];
        for (int j = 0; j < 27; j++) F->W[k * 27 + j] = fw[k * 27 + j], F->conn[k * 27 + j] = 1;
    }
    sal_tensor xc = t_rand(&rng, 4, (int64_t[]){N, C, H, H}, 1.0f);
    sal_tensor xd = xc;
    xd.ndim = 2;
    xd.dim[1] = C * H * H;
    xd.cap = 0; /* a view of xc */
    for (size_t q = 0; q < sizeof k_rules / sizeof k_rules[0]; q++) {
        for (int net = 0; net < 2; net++) {
            char e1[64], e2[64];
            snprintf(e1, sizeof e1, "rule=fc=0");
            snprintf(e2, sizeof e2, "rule=%s=%s", net ? "h" : "conv", k_rules[q].spec);
            const char *params[] = {e1, e2};
            int64_t t = 2;
            sal_explanation *e = explain(net ? dnet : cnet, net ? &xd : &xc, "lrp_0", 2, params, t);
            CHECK(e != NULL, "%s on %s: explain failed", k_rules[q].spec, net ? "dense" : "conv");
            if (!e) continue;
            double worst = 0;
            for (int b = 0; b < N; b++) {
                double x[128], map[128];
                for (int j = 0; j < C * H * H; j++) x[j] = sal_f32(&xc)[b * C * H * H + j];
                hand_two_layers(net ? Md : Mc, F, x, (int)t, k_rules[q].r, -1.5, 2, map);
                worst = fmax(worst, rel_err(sal_f32(sal_explanation_map(e)) + b * C * H * H, map, C * H * H));
            }
            CHECK(worst < 2e-4, "rule %s on the %s layer: relative error %.3g against the hand computation",
                  k_rules[q].spec, net ? "dense" : "conv", worst);
            sal_explanation_free(e);
        }
    }
    /* the composites against Zennit's rule formulas (hand_rule with zennit) and Montavon's variant: on
     * an MLP Zennit's composites give the first dense layer epsilon (its box goes to convolutions) */
    static const struct {
        int net; /* 0: conv, 1: dense */
        const char *method;
        const char *p[3];
        hrule r;
        bool pos; /* on |x|: inputs without negatives, where Zennit's Gamma takes three products */
    } comp[] = {
        {0, "lrp_epsilon_plus", {NULL}, {SAL_LRP_ALPHA_BETA, 1, 0, true}, false},
        {0, "lrp_epsilon_plus", {"variant=montavon"}, {SAL_LRP_ALPHA_BETA, 1, 0, false}, false},
        {0, "lrp_epsilon_alpha2_beta1", {NULL}, {SAL_LRP_ALPHA_BETA, 2, 1, true}, false},
        {0, "lrp_epsilon_alpha2_beta1", {"variant=montavon"}, {SAL_LRP_ALPHA_BETA, 2, 1, false}, false},
        {0, "lrp_epsilon_gamma_box", {"low=-1.5", "high=2"}, {SAL_LRP_ZB, -1.5, 2, true}, false},
        {0, "lrp_epsilon_gamma_box", {"rule=conv=gamma:0.25"}, {SAL_LRP_GAMMA, 0.25, 0, true}, false},
        {0, "lrp_epsilon_gamma_box", {"rule=conv=gamma:0.25", "variant=montavon"}, {SAL_LRP_GAMMA, 0.25, 0, false},
         false},
        {0, "lrp_epsilon_gamma_box", {"rule=conv=gamma:0.25"}, {SAL_LRP_GAMMA, 0.25, 0, true}, true},
        {1, "lrp_epsilon_gamma_box", {"rule=h=gamma:0.5"}, {SAL_LRP_GAMMA, 0.5, 0, true}, true},
        {1, "lrp_epsilon_gamma_box", {"low=-1.5", "high=2"}, {SAL_LRP_EPSILON, 1e-6, 0, true}, false},
        {1, "lrp_epsilon_gamma_box", {"low=-1.5", "high=2", "variant=montavon"}, {SAL_LRP_ZB, -1.5, 2, false}, false},
        {1, "lrp_epsilon_plus", {NULL}, {SAL_LRP_EPSILON, 1e-6, 0, true}, false},
    };
    sal_tensor xa = t_rand(&rng, 4, (int64_t[]){N, C, H, H}, 1.0f), xad = xa;
    for (int64_t i = 0; i < N * C * H * H; i++) sal_f32(&xa)[i] = fabsf(sal_f32(&xa)[i]);
    xad.ndim = 2;
    xad.dim[1] = C * H * H;
    xad.cap = 0; /* a view of xa */
    for (size_t q = 0; q < sizeof comp / sizeof comp[0]; q++) {
        int np = 0, net = comp[q].net;
        while (np < 3 && comp[q].p[np]) np++;
        int64_t t = 1;
        const sal_tensor *xin = comp[q].pos ? (net ? &xad : &xa) : (net ? &xd : &xc);
        sal_explanation *e = explain(net ? dnet : cnet, xin, comp[q].method, np, comp[q].p, t);
        CHECK(e != NULL, "%s %s: explain failed", comp[q].method, np ? comp[q].p[np - 1] : "");
        if (!e) continue;
        double worst = 0;
        for (int b = 0; b < N; b++) {
            double x[128], map[128];
            for (int j = 0; j < C * H * H; j++) x[j] = sal_f32(comp[q].pos ? &xa : &xc)[b * C * H * H + j];
            hand_two_layers(net ? Md : Mc, F, x, (int)t, comp[q].r, -1.5, 2, map);
            worst = fmax(worst, rel_err(sal_f32(sal_explanation_map(e)) + b * C * H * H, map, C * H * H));
        }
        CHECK(worst < 2e-4, "%s %s %s on the %s net%s: relative error %.3g against the hand computation",
              comp[q].method, np ? comp[q].p[0] : "", np > 1 ? comp[q].p[np - 1] : "", net ? "dense" : "conv",
              comp[q].pos ? ", inputs >= 0" : "", worst);
        sal_explanation_free(e);
    }
    /* Zennit's Gamma where the explained output itself may be negative (no ReLU after it): a single
     * Gemm on inputs >= 0, every target, against hand_rule */
    SAL_ASSERT(sal_graph_create("<fc>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 27}) == SAL_OK);
    gemm(g, "fc", "x", "y", NF, 27, fw, fb);
    sal_model *fnet = t_finish(g, "y");
    sal_tensor xf = t_rand(&rng, 2, (int64_t[]){N, 27}, 1.0f);
    for (int64_t i = 0; i < N * 27; i++) sal_f32(&xf)[i] = fabsf(sal_f32(&xf)[i]);
    int neg = 0, pos = 0;
    for (int64_t t = 0; t < NF; t++) {
        sal_explanation *e = explain(fnet, &xf, "lrp_epsilon_gamma_box", 1, (const char *[]){"rule=fc=gamma:0.5"}, t);
        CHECK(e != NULL, "Zennit's gamma on a single Gemm, target %d", (int)t);
        if (!e) continue;
        double worst = 0;
        for (int b = 0; b < N; b++) {
            double x[27], y[NF], R[NF] = {0}, map[27];
            for (int j = 0; j < 27; j++) x[j] = sal_f32(&xf)[b * 27 + j];
            dmat_forward(F, x, y);
            R[t] = y[t];
            neg += y[t] < 0, pos += y[t] > 0;
            hand_rule(F, x, R, (hrule){SAL_LRP_GAMMA, 0.5, 0, true}, 0, 0, 1e-6, map);
            worst = fmax(worst, rel_err(sal_f32(sal_explanation_map(e)) + b * 27, map, 27));
        }
        CHECK(worst < 2e-4, "Zennit's gamma on a single Gemm, target %d: relative error %.3g", (int)t, worst);
        sal_explanation_free(e);
    }
    CHECK(neg > 0 && pos > 0, "the explained outputs take both signs (%d negative, %d positive)", neg, pos);
    sal_tensor_free(&xf);
    sal_model_free(fnet);
    free(Mc);
    free(Md);
    free(F);
    sal_tensor_free(&xc);
    sal_tensor_free(&xa);
    sal_model_free(cnet);
    sal_model_free(dnet);
}

/* ---- 2. LRP-0 conservation, layer by layer, and LRP-0 = gradient x input ---- */

static sal_lrp_config cfg_all(sal_lrp_kind k, double a) {
    sal_lrp_rule r = {k, a, 0};
    return (sal_lrp_config){.method = "test", .first = r, .conv = r, .dense = r, .stabilizer = 1e-9, .lo = -1, .hi = 1};
}

/* Sums of relevance at the named values, per sample, after one LRP pass; returns the seeds too. */
static void relevance_sums(const sal_model *m, const sal_tensor *x, const sal_lrp_config *cfg, int64_t t,
                           const char *const *vals, int nv, double sums[][8], float *seed) {
    sal_session *s = NULL;
    sal_lrp_plan *p = NULL;
    int64_t N = x->dim[0], tg[8];
    for (int b = 0; b < N; b++) tg[b] = t;
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    s->keep_grads = true; /* the relevance at inner values */
    sal_status st = sal_lrp_plan_new(m, cfg, &p);
    if (st == SAL_OK) st = sal_lrp_backward(s, x, tg, false, sal_lrp_plan_rules(p), p, seed);
    CHECK(st == SAL_OK, "LRP pass: %s", sal_last_error());
    for (int v = 0; v < nv; v++) {
        int id = sal_graph_find(m, vals[v]);
        SAL_ASSERT(id >= 0);
        for (int b = 0; b < N; b++) sums[v][b] = st == SAL_OK && s->has_grad[id] ? tsum(&s->grad[id], 0, b) : NAN;
    }
    sal_lrp_plan_free(p);
    sal_session_free(s);
}

static void check_conserved(const char *what, const sal_model *m, const sal_tensor *x, const sal_lrp_config *cfg,
                            const char *const *vals, int nv, double tol) {
    double sums[16][8];
    float seed[8];
    relevance_sums(m, x, cfg, 1, vals, nv, sums, seed);
    for (int v = 0; v < nv; v++)
        for (int b = 0; b < x->dim[0]; b++)
            CHECK(fabs(sums[v][b] - seed[b]) <= tol * fabs(seed[b]) + 1e-7,
                  "%s: relevance at '%s' sums to %.8g for sample %d, the output is %.8g", what, vals[v], sums[v][b], b,
                  (double)seed[b]);
}

static void check_lrp0_is_gxi(const char *what, const sal_model *m, const sal_tensor *x) {
    sal_explanation *a = explain(m, x, "lrp_0", 1, (const char *[]){"stabilizer=1e-12"}, 1);
    sal_explanation *b = explain(m, x, "gradient_x_input", 0, NULL, 1);
    if (a && b) {
        double e = rel_errf(sal_f32(sal_explanation_map(a)), sal_f32(sal_explanation_map(b)), sal_tensor_numel(x));
        CHECK(e < 1e-4, "%s: LRP-0 differs from gradient x input by %.3g (relative)", what, e);
        double c = sal_explanation_metric(a, "relevance_conservation");
        CHECK(fabs(c - 1) < 1e-4, "%s: lrp_0 reports relevance_conservation %.8g, want 1", what, c);
    } else {
        CHECK(0, "%s: explain failed", what);
    }
    sal_explanation_free(a);
    sal_explanation_free(b);
}

static void test_lrp0_conservation(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 5);
    /* bias-free MLP 12 - 10 - 8 - 4 */
    float w1[10 * 12], w2[8 * 10], w3[4 * 8];
    t_randv(&rng, w1, 120, 0.4f);
    t_randv(&rng, w2, 80, 0.4f);
    t_randv(&rng, w3, 32, 0.4f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<mlp>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 12}) == SAL_OK);
    gemm(g, "fc1", "x", "z1", 10, 12, w1, NULL);
    relu(g, "r1", "z1", "a1");
    gemm(g, "fc2", "a1", "z2", 8, 10, w2, NULL);
    relu(g, "r2", "z2", "a2");
    gemm(g, "fc3", "a2", "y", 4, 8, w3, NULL);
    sal_model *mlp = t_finish(g, "y");
    sal_tensor x = t_rand(&rng, 2, (int64_t[]){4, 12}, 1.0f);
    sal_lrp_config c0 = cfg_all(SAL_LRP_ZERO, 0);
    check_conserved("bias-free MLP, LRP-0", mlp, &x, &c0, (const char *[]){"a2", "z2", "a1", "z1", "x"}, 5, 1e-4);
    check_lrp0_is_gxi("bias-free MLP", mlp, &x);

    /* a ReLU whose input another node reads too, that node's backward first: the pass-through rule
     * must add to the relevance already there, not hand its own buffer over it */
    float ws[8 * 10];
    t_randv(&rng, ws, 80, 0.4f);
    SAL_ASSERT(sal_graph_create("<fan>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 12}) == SAL_OK);
    gemm(g, "fc1", "x", "z1", 10, 12, w1, NULL);
    relu(g, "r1", "z1", "a1");
    gemm(g, "fc2", "a1", "z2", 8, 10, w2, NULL);
    gemm(g, "skip", "z1", "zs", 8, 10, ws, NULL);
    t_node(g, "Add", "sum", 2, (const char *[]){"z2", "zs"}, "s2", 0, NULL);
    relu(g, "r2", "s2", "a2");
    gemm(g, "fc3", "a2", "y", 4, 8, w3, NULL);
    sal_model *fan = t_finish(g, "y");
    check_conserved("ReLU input read twice, LRP-0", fan, &x, &c0, (const char *[]){"a2", "s2", "z1", "x"}, 4, 1e-4);
    check_lrp0_is_gxi("ReLU input read twice", fan, &x);
    sal_model_free(fan);

    /* bias-free CNN: conv - relu - maxpool - conv - relu - [avgpool | global average] - add - flatten - gemm,
     * with a residual Add and a Concat */
    float k1[4 * 1 * 9], k2[4 * 4 * 9], fw[3 * 8];
    t_randv(&rng, k1, 36, 0.5f);
    t_randv(&rng, k2, 144, 0.3f);
    t_randv(&rng, fw, 24, 0.5f);
    SAL_ASSERT(sal_graph_create("<cnn>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 8, 8}) == SAL_OK);
    t_const(g, "k1", 4, (int64_t[]){4, 1, 3, 3}, k1);
    t_const(g, "k2", 4, (int64_t[]){4, 4, 3, 3}, k2);
    sal_attr p1[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    t_node(g, "Conv", "conv1", 2, (const char *[]){"x", "k1"}, "c1", 1, p1);
    relu(g, "r1", "c1", "a1");
    sal_attr mp[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    t_node(g, "MaxPool", "pool", 1, (const char *[]){"a1"}, "p1", 2, mp);
    sal_attr p2[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    t_node(g, "Conv", "conv2", 2, (const char *[]){"p1", "k2"}, "c2", 1, p2);
    relu(g, "r2", "c2", "a2");
    t_node(g, "Add", "res", 2, (const char *[]){"a2", "p1"}, "s", 0, NULL); /* residual */
    sal_attr ap[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    t_node(g, "AveragePool", "avg", 1, (const char *[]){"s"}, "q", 2, ap);
    t_node(g, "GlobalAveragePool", "gap", 1, (const char *[]){"q"}, "gq", 0, NULL);
    t_node(g, "GlobalMaxPool", "gmp", 1, (const char *[]){"q"}, "mq", 0, NULL);
    sal_attr cat[1] = {sal_attr_make_int("axis", 1)};
    t_node(g, "Concat", "cat", 2, (const char *[]){"gq", "mq"}, "cq", 1, cat);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"cq"}, "f", 0, NULL);
    gemm(g, "fc", "f", "y", 3, 8, fw, NULL);
    sal_model *cnn = t_finish(g, "y");
    sal_tensor xc = t_rand(&rng, 4, (int64_t[]){3, 1, 8, 8}, 1.0f);
    check_conserved("bias-free CNN, LRP-0", cnn, &xc, &c0,
                    (const char *[]){"f", "cq", "q", "s", "p1", "a1", "x"}, 7, 1e-4);
    check_lrp0_is_gxi("bias-free CNN with residual Add and Concat", cnn, &xc);
    /* proportional max pooling also conserves */
    c0.maxpool_proportional = true;
    check_conserved("bias-free CNN, LRP-0, proportional max pooling", cnn, &xc, &c0, (const char *[]){"a1", "x"}, 2, 1e-4);

    /* z+ conserves on positive inputs (biases are ignored by the rule) */
    float b1[10], b2[8];
    t_randv(&rng, b1, 10, 0.3f);
    t_randv(&rng, b2, 8, 0.3f);
    SAL_ASSERT(sal_graph_create("<mlp-b>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 12}) == SAL_OK);
    gemm(g, "fc1", "x", "z1", 10, 12, w1, b1);
    relu(g, "r1", "z1", "a1");
    gemm(g, "fc2", "a1", "z2", 8, 10, w2, b2);
    relu(g, "r2", "z2", "a2");
    gemm(g, "fc3", "a2", "y", 4, 8, w3, NULL);
    sal_model *mlpb = t_finish(g, "y");
    sal_tensor xp = t_rand(&rng, 2, (int64_t[]){4, 12}, 1.0f);
    for (int64_t i = 0; i < 48; i++) sal_f32(&xp)[i] = fabsf(sal_f32(&xp)[i]) + 0.05f;
    sal_lrp_config cz = cfg_all(SAL_LRP_ALPHA_BETA, 1);
    check_conserved("MLP with biases, z+, positive inputs", mlpb, &xp, &cz, (const char *[]){"a2", "a1", "x"}, 3, 1e-4);
    sal_explanation *e = explain(mlpb, &xp, "lrp_zplus", 0, NULL, 1);
    CHECK(e && fabs(sal_explanation_metric(e, "relevance_conservation") - 1) < 1e-4,
          "lrp_zplus on positive inputs reports relevance_conservation %.8g", e ? sal_explanation_metric(e, "relevance_conservation") : NAN);
    sal_explanation_free(e);

    /* epsilon: layer by layer, sum R_in = sum_k R_k (z_k - b_k) / (z_k + eps sign z_k) */
    double eps = 0.1;
    sal_lrp_config ce = cfg_all(SAL_LRP_EPSILON, eps);
    sal_session *s = NULL;
    sal_lrp_plan *p = NULL;
    int64_t tg[4] = {1, 1, 1, 1};
    float seed[4];
    SAL_ASSERT(sal_session_new(mlpb, &s) == SAL_OK);
    s->keep_grads = true; /* the relevance at inner values */
    CHECK_OK(sal_lrp_plan_new(mlpb, &ce, &p));
    CHECK_OK(sal_lrp_backward(s, &x, tg, false, sal_lrp_plan_rules(p), p, seed));
    const char *lin[3][3] = {{"x", "z1", "fc1.b"}, {"a1", "z2", "fc2.b"}, {"a2", "y", ""}};
    for (int l = 0; l < 3; l++) {
        int vin = sal_graph_find(mlpb, lin[l][0]), vz = sal_graph_find(mlpb, lin[l][1]);
        int vb = *lin[l][2] ? sal_graph_find(mlpb, lin[l][2]) : -1;
        const sal_tensor *z = &s->act[vz], *R = &s->grad[vz];
        int64_t K = z->dim[1];
        for (int b = 0; b < 4; b++) {
            double want = 0;
            for (int64_t k = 0; k < K; k++) {
                double zk = sal_f32(z)[b * K + k], bk = vb >= 0 ? sal_f32(&mlpb->val[vb].t)[k] : 0;
                want += sal_f32(R)[b * K + k] * (zk - bk) / stab(zk, eps);
            }
            double got = tsum(&s->grad[vin], 0, b);
            CHECK(fabs(got - want) < 1e-4 * (fabs(want) + 1e-3),
                  "epsilon: relevance into layer %d sums to %.8g for sample %d; epsilon and bias leave %.8g", l + 1, got,
                  b, want);
        }
    }
    sal_lrp_plan_free(p);
    sal_session_free(s);
    /* the method reports what was absorbed */
    const char *pe[] = {"epsilon=0.1"};
    e = explain(mlpb, &x, "lrp_epsilon", 1, pe, 1);
    if (e) {
        double q = 0, v = 0;
        for (int b = 0; b < 4; b++) {
            q += tsum(sal_explanation_map(e), 0, b) / sal_explanation_outputs(e)[b];
            v += fabs(tsum(sal_explanation_map(e), 0, b));
        }
        double rc = sal_explanation_metric(e, "relevance_conservation");
        CHECK(fabs(rc - q / 4) < 1e-5, "lrp_epsilon reports relevance_conservation %.8g, the map gives %.8g", rc, q / 4);
        CHECK(!isnan(sal_explanation_metric(e, "relevance_conservation_worst")), "lrp_epsilon reports no worst case");
        printf("  lrp_epsilon (eps 0.1) on an MLP with biases: relevance_conservation %.4f (worst |ratio - 1| %.4f)\n", rc,
               sal_explanation_metric(e, "relevance_conservation_worst"));
        (void)v;
    }
    sal_explanation_free(e);

    sal_tensor_free(&x);
    sal_tensor_free(&xc);
    sal_tensor_free(&xp);
    sal_model_free(mlp);
    sal_model_free(cnn);
    sal_model_free(mlpb);
}

/* An input normalization (x - mean) / std before the first layer passes relevance unchanged, and
 * the layer after it is still the first layer. */
static void test_input_normalization(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 17);
    float mean[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}, sd[1] = {0.5f}, w1[5 * 6], w2[3 * 5];
    t_randv(&rng, w1, 30, 0.5f);
    t_randv(&rng, w2, 15, 0.5f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<norm>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 6}) == SAL_OK);
    t_const(g, "mean", 1, (int64_t[]){6}, mean);
    t_const(g, "sd", 1, (int64_t[]){1}, sd);
    t_node(g, "Sub", "center", 2, (const char *[]){"x", "mean"}, "xc", 0, NULL);
    t_node(g, "Div", "scale", 2, (const char *[]){"xc", "sd"}, "xn", 0, NULL);
    gemm(g, "fc1", "xn", "z1", 5, 6, w1, NULL);
    relu(g, "r1", "z1", "a1");
    gemm(g, "fc2", "a1", "y", 3, 5, w2, NULL);
    sal_model *m = t_finish(g, "y");
    sal_tensor x = t_rand(&rng, 2, (int64_t[]){3, 6}, 1.0f);
    sal_lrp_config c0 = cfg_all(SAL_LRP_ZERO, 0);
    check_conserved("input normalization, LRP-0", m, &x, &c0, (const char *[]){"xn", "xc", "x"}, 3, 1e-4);
    sal_lrp_config cb = {.method = "t", .has_first = true, .first = {SAL_LRP_ZB, NAN, NAN}, .conv = {SAL_LRP_ZERO, 0, 0},
                         .dense = {SAL_LRP_ZERO, 0, 0}, .stabilizer = 1e-6, .lo = -1, .hi = 1};
    sal_lrp_plan *p = NULL;
    CHECK_OK(sal_lrp_plan_new(m, &cb, &p));
    const sal_lrp_rule *r = p ? sal_lrp_plan_rule(p, sal_graph_find_node(m, "fc1")) : NULL;
    CHECK(r && r->kind == SAL_LRP_ZB, "the Gemm after the normalization is the first layer");
    sal_lrp_plan_free(p);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- 3. zb on one layer, closed form; proportional max pooling ---- */

static void test_zb_closed_form(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 21);
    enum { D = 7, K = 3, N = 4 };
    float W[K * D], b[K];
    t_randv(&rng, W, K * D, 1.0f);
    t_randv(&rng, b, K, 0.5f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<one>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, D}) == SAL_OK);
    gemm(g, "fc", "x", "y", K, D, W, b);
    sal_model *m = t_finish(g, "y");
    sal_tensor x = {0};
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 2, (int64_t[]){N, D}) == SAL_OK);
    for (int i = 0; i < N * D; i++) sal_f32(&x)[i] = (float)(sal_rng_uniform(&rng) * 3 - 1); /* in [-1, 2] */
    /* the box from --range, through the composite (its first layer is zb) and through a rule entry */
    const char *pr[] = {"low=-1", "high=2", "variant=montavon"}; /* Zennit's composite gives a dense layer epsilon */
    sal_explanation *e = explain(m, &x, "lrp_epsilon_gamma_box", 3, pr, 0);
    const char *pu[] = {"rule=fc=zb:-1:2"};
    sal_explanation *e2 = explain(m, &x, "lrp_0", 1, pu, 0);
    for (int n = 0; n < N && e && e2; n++) {
        const float *xb = sal_f32(&x) + n * D;
        double c[D], z = 0, want[D], y = b[0];
        for (int j = 0; j < D; j++) {
            double w = W[j], wp = w > 0 ? w : 0, wn = w < 0 ? w : 0;
            c[j] = xb[j] * w - (-1.0) * wp - 2.0 * wn;
            z += c[j];
            y += w * xb[j];
        }
        for (int j = 0; j < D; j++) want[j] = c[j] / z * y;
        double e1 = rel_err(sal_f32(sal_explanation_map(e)) + n * D, want, D);
        double e22 = rel_err(sal_f32(sal_explanation_map(e2)) + n * D, want, D);
        CHECK(e1 < 1e-4 && e22 < 1e-4, "zb closed form, sample %d: relative errors %.3g (composite), %.3g (rule entry)",
              n, e1, e22);
    }
    CHECK(e && e2, "zb runs failed");
    sal_explanation_free(e);
    sal_explanation_free(e2);
    sal_tensor_free(&x);
    sal_model_free(m);
}

static void test_maxpool_proportional(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 9);
    float fw[2 * 4];
    t_randv(&rng, fw, 8, 1.0f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<pool>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 4, 4}) == SAL_OK);
    sal_attr mp[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    t_node(g, "MaxPool", "pool", 1, (const char *[]){"x"}, "p", 2, mp);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"p"}, "f", 0, NULL);
    gemm(g, "fc", "f", "y", 2, 4, fw, NULL);
    sal_model *m = t_finish(g, "y");
    sal_tensor x = {0};
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 4, (int64_t[]){1, 1, 4, 4}) == SAL_OK);
    for (int i = 0; i < 16; i++) sal_f32(&x)[i] = (float)(0.1 + sal_rng_uniform(&rng));
    const char *pp[] = {"maxpool=proportional", "stabilizer=1e-12"}, *pw[] = {"stabilizer=1e-12"};
    sal_explanation *e = explain(m, &x, "lrp_0", 2, pp, 1), *ew = explain(m, &x, "lrp_0", 1, pw, 1);
    if (e && ew) {
        const float *xv = sal_f32(&x);
        double want[16], wantw[16], y = 0, mx[4];
        for (int w = 0; w < 4; w++) {
            int oy = w / 2, ox = w % 2;
            mx[w] = -1;
            for (int d = 0; d < 4; d++) mx[w] = fmax(mx[w], xv[(oy * 2 + d / 2) * 4 + ox * 2 + d % 2]);
            y += fw[4 + w] * mx[w];
        }
        for (int w = 0; w < 4; w++) {
            int oy = w / 2, ox = w % 2;
            double Rw = fw[4 + w] * mx[w], sum = 0; /* LRP-0 at fc: R_w = x_w w_w / y * y */
            for (int d = 0; d < 4; d++) sum += xv[(oy * 2 + d / 2) * 4 + ox * 2 + d % 2];
            for (int d = 0; d < 4; d++) {
                int i = (oy * 2 + d / 2) * 4 + ox * 2 + d % 2;
                want[i] = xv[i] / sum * Rw;
                wantw[i] = xv[i] == mx[w] ? Rw : 0;
            }
        }
        CHECK(rel_err(sal_f32(sal_explanation_map(e)), want, 16) < 1e-5, "proportional max pooling: relative error %.3g",
              rel_err(sal_f32(sal_explanation_map(e)), want, 16));
        CHECK(rel_err(sal_f32(sal_explanation_map(ew)), wantw, 16) < 1e-5, "winner-take-all max pooling: relative error %.3g",
              rel_err(sal_f32(sal_explanation_map(ew)), wantw, 16));
        (void)y;
    } else {
        CHECK(0, "max pooling runs failed");
    }
    sal_explanation_free(e);
    sal_explanation_free(ew);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- 4. canonization ---- */

static void bn(sal_model *g, const char *name, const char *in, const char *out, int C, sal_rng *r) {
    float sc[16], sh[16], mu[16], var[16];
    for (int c = 0; c < C; c++) {
        sc[c] = (float)(0.5 + sal_rng_uniform(r));
        sh[c] = (float)(0.3 * sal_rng_normal(r));
        mu[c] = (float)(0.3 * sal_rng_normal(r));
        var[c] = (float)(0.2 + sal_rng_uniform(r));
    }
    const char *sfx[4] = {".scale", ".B", ".mean", ".var"};
    const float *v[4] = {sc, sh, mu, var};
    char names[4][64];
    for (int k = 0; k < 4; k++) {
        snprintf(names[k], sizeof names[k], "%s%s", name, sfx[k]);
        t_const(g, names[k], 1, (int64_t[]){C}, v[k]);
    }
    sal_attr at[1] = {sal_attr_make_float("epsilon", 1e-3f)};
    t_node(g, "BatchNormalization", name, 5, (const char *[]){in, names[0], names[1], names[2], names[3]}, out, 1, at);
}

static void test_canonize(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 33);
    float k1[4 * 2 * 9], k1b[4], w1[6 * 64], w2[3 * 6], b1[6];
    t_randv(&rng, k1, 72, 0.4f);
    t_randv(&rng, k1b, 4, 0.2f);
    t_randv(&rng, w1, 6 * 64, 0.2f);
    t_randv(&rng, w2, 18, 0.5f);
    t_randv(&rng, b1, 6, 0.1f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<bn-net>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 2, 4, 4}) == SAL_OK);
    bn(g, "bn0", "x", "xn", 2, &rng); /* before the first conv: not foldable, the z-rule takes it */
    t_const(g, "k1", 4, (int64_t[]){4, 2, 3, 3}, k1);
    t_const(g, "k1b", 1, (int64_t[]){4}, k1b);
    sal_attr p1[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    t_node(g, "Conv", "conv1", 3, (const char *[]){"xn", "k1", "k1b"}, "c1", 1, p1);
    bn(g, "bn1", "c1", "n1", 4, &rng);
    relu(g, "r1", "n1", "a1");
    t_node(g, "Flatten", "flat", 1, (const char *[]){"a1"}, "f", 0, NULL);
    t_const(g, "w1", 2, (int64_t[]){64, 6}, w1); /* Gemm without transB: B (K, N) */
    t_const(g, "b1", 1, (int64_t[]){6}, b1);
    sal_attr ga[1] = {sal_attr_make_float("beta", 0.5f)};
    t_node(g, "Gemm", "fc1", 3, (const char *[]){"f", "w1", "b1"}, "z1", 1, ga);
    bn(g, "bn2", "z1", "n2", 6, &rng);
    relu(g, "r2", "n2", "a2");
    gemm(g, "fc2", "a2", "y", 3, 6, w2, NULL);
    sal_model *m = t_finish(g, "y");
    sal_model *cm = NULL;
    int nf = -1;
    CHECK_OK(sal_canonize(m, &cm, &nf));
    CHECK(cm && nf == 2, "canonize folded %d BatchNormalizations, want 2", nf);
    if (cm) {
        CHECK(cm->nnode == m->nnode - 2, "canonized model has %d nodes, want %d", cm->nnode, m->nnode - 2);
        CHECK(sal_graph_find_node(cm, "conv1") >= 0 && sal_graph_find_node(cm, "fc1") >= 0 &&
                  sal_graph_find_node(cm, "bn0") >= 0 && sal_graph_find_node(cm, "bn1") < 0,
              "canonized nodes: conv1 and fc1 kept, bn1 folded, bn0 kept");
        sal_tensor x = t_rand(&rng, 4, (int64_t[]){5, 2, 4, 4}, 1.0f);
        sal_session *s1 = NULL, *s2 = NULL;
        const sal_tensor *y1[1], *y2[1];
        SAL_ASSERT(sal_session_new(m, &s1) == SAL_OK && sal_session_new(cm, &s2) == SAL_OK);
        CHECK_OK(sal_forward(s1, 1, &x, y1));
        CHECK_OK(sal_forward(s2, 1, &x, y2));
        double e = rel_errf(sal_f32(y2[0]), sal_f32(y1[0]), sal_tensor_numel(y1[0]));
        CHECK(e < 1e-5, "the folded model's outputs differ from the original's by %.3g (relative)", e);
        /* the intermediate value the folded node now gives is the normalization's output */
        int v1 = sal_graph_find(m, "n1"), v2 = sal_graph_find(cm, "n1");
        CHECK(v2 >= 0 && rel_errf(sal_f32(&s2->act[v2]), sal_f32(&s1->act[v1]), sal_tensor_numel(&s1->act[v1])) < 1e-5,
              "the folded conv gives n1 as the BatchNormalization did");
        sal_session_free(s1);
        sal_session_free(s2);
        /* LRP on the model with BatchNormalization: folded, and LRP-0 = gradient x input still holds with
         * the bias-free parts... not here (biases); check that it runs, is finite and reports the fold */
        sal_explanation *ex = explain(m, &x, "lrp_epsilon_plus", 0, NULL, 0);
        CHECK(ex && sal_explanation_metric(ex, "batchnorm_folded") == 2, "lrp_epsilon_plus on a BatchNorm net: %s",
              ex ? "wrong fold count" : sal_last_error());
        sal_explanation_free(ex);
        sal_tensor_free(&x);
    }
    sal_model_free(cm);
    /* nothing to fold: no copy */
    sal_model *plain = NULL;
    SAL_ASSERT(sal_graph_create("<plain>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 6}) == SAL_OK);
    gemm(g, "fc", "x", "y", 3, 6, w2, NULL);
    plain = t_finish(g, "y");
    cm = (sal_model *)1;
    CHECK_OK(sal_canonize(plain, &cm, &nf));
    CHECK(cm == NULL && nf == 0, "canonize of a model without BatchNormalization made a copy");
    sal_model_free(plain);
    sal_model_free(m);
}

/* ---- 5. composites, rule entries, deep Taylor ---- */

static sal_model *small_cnn(sal_rng *rng) {
    float k1[3 * 1 * 9], kb[3], fw[4 * 48], fb[4], hw[5 * 4], hb[5];
    t_randv(rng, k1, 27, 0.5f);
    t_randv(rng, kb, 3, 0.1f);
    t_randv(rng, fw, 4 * 48, 0.3f);
    t_randv(rng, fb, 4, 0.1f);
    t_randv(rng, hw, 20, 0.5f);
    t_randv(rng, hb, 5, 0.1f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<small-cnn>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 8, 8}) == SAL_OK);
    t_const(g, "k1", 4, (int64_t[]){3, 1, 3, 3}, k1);
    t_const(g, "kb", 1, (int64_t[]){3}, kb);
    sal_attr p1[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    t_node(g, "Conv", "conv1", 3, (const char *[]){"x", "k1", "kb"}, "c1", 1, p1);
    relu(g, "r1", "c1", "a1");
    sal_attr mp[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    t_node(g, "MaxPool", "pool", 1, (const char *[]){"a1"}, "p1", 2, mp);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"p1"}, "f", 0, NULL);
    gemm(g, "fc1", "f", "z1", 4, 48, fw, fb);
    relu(g, "r2", "z1", "a2");
    gemm(g, "fc2", "a2", "y", 5, 4, hw, hb);
    return t_finish(g, "y");
}

static void same_maps(const char *what, const sal_model *m, const sal_tensor *x, const char *m1, int n1,
                      const char *const *p1, const char *m2, int n2, const char *const *p2) {
    sal_explanation *a = explain(m, x, m1, n1, p1, 2), *b = explain(m, x, m2, n2, p2, 2);
    if (a && b) {
        double e = rel_errf(sal_f32(sal_explanation_map(a)), sal_f32(sal_explanation_map(b)), sal_tensor_numel(x));
        CHECK(e < 1e-6, "%s: %s and %s differ by %.3g", what, m1, m2, e);
    } else {
        CHECK(0, "%s: a run failed", what);
    }
    sal_explanation_free(a);
    sal_explanation_free(b);
}

static void test_composites(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 44);
    sal_model *m = small_cnn(&rng);
    sal_tensor x = {0};
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 4, (int64_t[]){2, 1, 8, 8}) == SAL_OK);
    for (int i = 0; i < 128; i++) sal_f32(&x)[i] = (float)sal_rng_uniform(&rng);
    /* Montavon's variants equal plain rule entries (Zennit's are checked by hand above) */
    same_maps("epsilon_plus", m, &x, "lrp_epsilon_plus", 1, (const char *[]){"variant=montavon"}, "lrp_0", 2,
              (const char *[]){"rule=Conv=zplus", "rule=*=epsilon:1e-6"});
    same_maps("epsilon_alpha2_beta1", m, &x, "lrp_epsilon_alpha2_beta1", 2,
              (const char *[]){"epsilon=0.01", "variant=montavon"}, "lrp_0", 2,
              (const char *[]){"rule=@conv=alpha2beta1", "rule=@dense=epsilon:0.01"});
    same_maps("epsilon_gamma_box", m, &x, "lrp_epsilon_gamma_box", 3,
              (const char *[]){"low=0", "high=1", "gamma=0.5"}, "lrp_0", 3,
              (const char *[]){"rule=@input=zb:0:1", "rule=conv*=gamma:0.5", "rule=fc1,fc2=epsilon:1e-6"});
    /* the user's entries come first: conv1 is the first layer, yet gets flat */
    same_maps("user entries before the composite", m, &x, "lrp_epsilon_gamma_box", 1, (const char *[]){"rule=conv1=flat"},
              "lrp_0", 3, (const char *[]){"rule=conv1=flat", "rule=@conv=gamma", "rule=*=epsilon:1e-6"});
    /* first match wins */
    same_maps("first match wins", m, &x, "lrp_0", 2, (const char *[]){"rule=fc*=zplus", "rule=fc1=wsquare"}, "lrp_0", 1,
              (const char *[]){"rule=fc1,fc2=zplus"});
    /* deep Taylor: zero root point is LRP-0; the default is z+ with zb at the input */
    same_maps("deep_taylor root=zero", m, &x, "deep_taylor", 1, (const char *[]){"root=zero"}, "lrp_0", 0, NULL);
    same_maps("deep_taylor", m, &x, "deep_taylor", 2, (const char *[]){"low=0", "high=1"}, "lrp_0", 2,
              (const char *[]){"rule=@input=zb:0:1", "rule=*=zplus"});
    same_maps("deep_taylor domain=real", m, &x, "deep_taylor", 1, (const char *[]){"domain=real"}, "lrp_0", 2,
              (const char *[]){"rule=@input=wsquare", "rule=*=zplus"});
    same_maps("lrp_alpha_beta", m, &x, "lrp_alpha_beta", 2, (const char *[]){"alpha=3", "beta=2"}, "lrp_0", 1,
              (const char *[]){"rule=*=alpha_beta:3"});
    /* the plan's assignment, read back */
    sal_lrp_config cfg = {.method = "t", .has_first = true, .first = {SAL_LRP_ZB, NAN, NAN},
                          .conv = {SAL_LRP_GAMMA, 0.25, 0}, .dense = {SAL_LRP_EPSILON, 1e-6, 0}, .stabilizer = 1e-6,
                          .lo = 0, .hi = 1};
    sal_lrp_plan *p = NULL;
    CHECK_OK(sal_lrp_plan_new(m, &cfg, &p));
    if (p) {
        const char *want[][2] = {{"conv1", "zb"}, {"fc1", "epsilon:1e-06"}, {"fc2", "epsilon:1e-06"}};
        for (int k = 0; k < 3; k++) {
            char b[64];
            const sal_lrp_rule *r = sal_lrp_plan_rule(p, sal_graph_find_node(m, want[k][0]));
            CHECK(r && !strcmp(sal_lrp_rule_str(r, b, sizeof b), want[k][1]), "node %s has rule %s, want %s", want[k][0],
                  r ? b : "none", want[k][1]);
        }
        CHECK(sal_lrp_plan_rule(p, sal_graph_find_node(m, "r1")) == NULL, "a ReLU has no linear rule");
    }
    sal_lrp_plan_free(p);
    /* the JSON records the rule entries */
    sal_explanation *e = explain(m, &x, "lrp_0", 2, (const char *[]){"rule=conv1=zplus", "rule=fc*=epsilon:0.5"}, 1);
    char *js = NULL;
    if (e && sal_explanation_json(e, &js) == SAL_OK) {
        CHECK(strstr(js, "relevance_conservation") != NULL, "JSON lacks relevance_conservation:\n%s", js);
        free(js);
    }
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Modified weights the session keeps across calls (sal_derived_get): found again, and derived
 * afresh once the model's weights change. */
static void test_kept_weights(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 45);
    sal_model *m = small_cnn(&rng);
    int ci = sal_graph_find_node(m, "conv1");
    const sal_node *n = &m->node[ci];
    sal_tensor *in[3] = {&m->val[n->in[0]].t, &m->val[n->in[1]].t, &m->val[n->in[2]].t}, copy = {0};
    sal_scratch ws = {0};
    sal_opctx c = {.g = m, .n = n, .in = in, .ws = &ws};
    bool ready = true;
    sal_tensor *t = sal_derived_get(&c, 1, 7, &ready), *again = NULL;
    CHECK(t && !ready && sal_tensor_same_shape(t, in[1]), "first request: a buffer to fill");
    if (t) memcpy(t->data, in[1]->data, sizeof(float) * (size_t)sal_tensor_numel(t));
    again = sal_derived_get(&c, 1, 7, &ready);
    CHECK(again == t && ready, "second request: the same buffer, ready");
    CHECK(sal_derived_get(&c, 1, 8, &ready) != t && !ready, "another key: another buffer");
    CHECK(sal_derived_get(&c, 0, 7, &ready) == NULL, "the model's input is not kept");
    sal_tensor_copy(&copy, in[1]);
    in[1] = &copy;
    CHECK(sal_derived_get(&c, 1, 7, &ready) == NULL, "a tensor other than the node's constant is not kept");
    in[1] = &m->val[n->in[1]].t;
    sal_model_weights_changed(m);
    again = sal_derived_get(&c, 1, 7, &ready);
    CHECK(again == t && !ready, "after new weights: the same buffer, to fill again");
    sal_scratch_free(&ws);
    sal_tensor_free(&copy);

    /* end to end: z+ on every layer through a reused session, before and after new weights */
    sal_tensor x = {0};
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 4, (int64_t[]){1, 1, 8, 8}) == SAL_OK);
    for (int i = 0; i < 64; i++) sal_f32(&x)[i] = (float)sal_rng_uniform(&rng);
    sal_session *s = NULL;
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    const char *par[] = {"rule=*=zplus"};
    int64_t target = 1;
    sal_explain_opts o = {.method = "lrp_0", .nparams = 1, .params = par, .target = SAL_TARGET_INDEX,
                          .classes = &target, .nclasses = 1, .data_lo = 0, .data_hi = 1, .session = s};
    sal_explanation *e[4] = {NULL};
    CHECK_OK(sal_explain(m, &x, &o, &e[0]));
    CHECK_OK(sal_explain(m, &x, &o, &e[1]));
    static const char *const layers[] = {"conv1", "fc1", "fc2"};
    for (int k = 0; k < 3; k++) { /* weights of both signs change: w+ is not the old w+ scaled */
        sal_tensor *w = &m->val[m->node[sal_graph_find_node(m, layers[k])].in[1]].t;
        for (int64_t i = 0, nw = sal_tensor_numel(w); i < nw; i++) sal_f32(w)[i] = -0.8f * sal_f32(w)[i] + 0.05f;
    }
    sal_model_weights_changed(m);
    CHECK_OK(sal_explain(m, &x, &o, &e[2]));
    o.session = NULL;
    CHECK_OK(sal_explain(m, &x, &o, &e[3]));
    if (e[0] && e[1] && e[2] && e[3]) {
        const float *a = sal_f32(sal_explanation_map(e[0])), *b = sal_f32(sal_explanation_map(e[1]));
        const float *after = sal_f32(sal_explanation_map(e[2])), *fresh = sal_f32(sal_explanation_map(e[3]));
        CHECK(rel_errf(b, a, 64) == 0, "the kept weights give the first call's map");
        CHECK(rel_errf(after, fresh, 64) < 1e-6 && rel_errf(after, a, 64) > 1e-2,
              "after new weights the reused session matches a fresh one (%.3g) and not the old map (%.3g)",
              rel_errf(after, fresh, 64), rel_errf(after, a, 64));
    }
    for (int k = 0; k < 4; k++) sal_explanation_free(e[k]);
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* x (N, C, H, H) -> Conv 3x3 / pad 1 to M channels (bias cb, or none) -> Relu -> MaxPool 2x2 ->
 * Flatten -> Gemm to NF outputs */
static sal_model *conv_pool_fc(const char *name, int C, int M, int H, const float *cw, const float *cb, int NF,
                               const float *fw, const float *fb) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create(name, &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, C, H, H}) == SAL_OK);
    t_const(g, "k", 4, (int64_t[]){M, C, 3, 3}, cw);
    if (cb) t_const(g, "kb", 1, (int64_t[]){M}, cb);
    sal_attr pa[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    t_node(g, "Conv", "conv", cb ? 3 : 2, (const char *[]){"x", "k", "kb"}, "c", 1, pa);
    relu(g, "r", "c", "a");
    sal_attr mp[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    t_node(g, "MaxPool", "pool", 1, (const char *[]){"a"}, "p", 2, mp);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"p"}, "f", 0, NULL);
    gemm(g, "fc", "f", "y", NF, M * (H / 2) * (H / 2), fw, fb);
    return t_finish(g, "y");
}

/* The rules' products of a 3x3 convolution through our Winograd kernels, which take blocked tensors
 * only (conv.c converts the plain tensors of LRP's sessions around them): each rule's map as with
 * those kernels off, on the small CNN's 32 -> 64 layer at 14 x 14, inputs without negatives (one
 * term a group) and of both signs (two). */
static void test_winograd_rules(void) {
    enum { C = 32, M = 64, H = 14, NF = 5, NI = 2 };
    sal_rng rng;
    sal_rng_seed(&rng, 46);
    static float cw[M * C * 9], cb[M], fw[NF * M * (H / 2) * (H / 2)], fb[NF];
    t_randv(&rng, cw, M * C * 9, 0.1f);
    t_randv(&rng, cb, M, 0.1f);
    t_randv(&rng, fw, NF * M * (H / 2) * (H / 2), 0.05f);
    t_randv(&rng, fb, NF, 0.1f);
    sal_model *m = conv_pool_fc("<wino-cnn>", C, M, H, cw, cb, NF, fw, fb);
    sal_tensor x = t_rand(&rng, 4, (int64_t[]){NI, C, H, H}, 1.0f), xa = {0};
    sal_tensor_copy(&xa, &x);
    for (int64_t i = 0; i < sal_tensor_numel(&xa); i++) sal_f32(&xa)[i] = fabsf(sal_f32(&xa)[i]);
    static const char *const rules[] = {"rule=conv=zplus", "rule=conv=alpha2beta1", "rule=conv=gamma:0.25",
                                        "rule=conv=zb:-1:1"};
    for (int q = 0; q < 4; q++)
        for (int neg = 0; neg < 2; neg++) {
            const char *par[] = {rules[q], "rule=fc=epsilon:1e-6"};
            const sal_tensor *xin = neg ? &x : &xa;
            int old = sal_conv_wino_mode(SAL_WINO_OFF);
            sal_explanation *off = explain(m, xin, "lrp_0", 2, par, 3);
            sal_conv_wino_mode(SAL_WINO_ALL);
            long calls = sal_conv_wino_calls(), calls4 = sal_conv_wino_calls4();
            sal_explanation *on = explain(m, xin, "lrp_0", 2, par, 3);
            calls = sal_conv_wino_calls() - calls, calls4 = sal_conv_wino_calls4() - calls4;
            sal_conv_wino_mode(old);
            CHECK(off && on, "%s: a run failed", rules[q]);
            if (off && on) {
                double e = rel_errf(sal_f32(sal_explanation_map(on)), sal_f32(sal_explanation_map(off)),
                                    sal_tensor_numel(xin));
                /* within 2.2e-6 (six seeds), but where gamma's denominators on inputs of both signs come
                 * near zero: there the maps differ as their conditioning has it, 2e-5 to 6e-2 over 20
                 * seeds (geometric mean 9e-4; 1.4e-3 at F(4x4)'s former points 0, +-1, +-2, 4e-4 with
                 * F(2x2) both ways), 2.3e-3 at this one */
                double tol = strstr(rules[q], "gamma") && neg ? 1e-2 : 2e-5;
                CHECK(e < tol, "%s, inputs %s: Winograd's map off by %.3g against the other kernels'", rules[q],
                      neg ? "of both signs" : ">= 0", e);
                /* the model's forward, whose output reaches max pooling, by F(2x2); the rule's products, one
                 * each way at least (zb's denominator from ones too: kept by a session, made here), by
                 * F(4x4), as no maximum reads them */
                CHECK(calls >= 3 && calls - calls4 == 1, "%s, inputs %s: %ld Winograd calls, %ld of them F(4x4)",
                      rules[q], neg ? "of both signs" : ">= 0", calls, calls4);
            }
            sal_explanation_free(off);
            sal_explanation_free(on);
        }
    sal_tensor_free(&x);
    sal_tensor_free(&xa);
    sal_model_free(m);
    /* by default, no Winograd for a substituted weight whose transforms are too large to keep (64 -> 128
     * channels: 1.2 MB in F(4x4)), which every call would transform again */
    enum { C2 = 64, M2 = 128, H2 = 28 };
    static float w2[M2 * C2 * 9], f2[NF * M2 * (H2 / 2) * (H2 / 2)];
    t_randv(&rng, w2, M2 * C2 * 9, 0.05f);
    t_randv(&rng, f2, NF * M2 * (H2 / 2) * (H2 / 2), 0.01f);
    m = conv_pool_fc("<wino-wide>", C2, M2, H2, w2, NULL, NF, f2, fb);
    x = t_rand(&rng, 4, (int64_t[]){1, C2, H2, H2}, 1.0f);
    for (int64_t i = 0; i < sal_tensor_numel(&x); i++) sal_f32(&x)[i] = fabsf(sal_f32(&x)[i]);
    int old = sal_conv_wino_mode(SAL_WINO_AUTO);
    long calls4 = sal_conv_wino_calls4();
    sal_explanation *e = explain(m, &x, "lrp_0", 2, (const char *[]){"rule=conv=zplus", "rule=fc=epsilon:1e-6"}, 0);
    calls4 = sal_conv_wino_calls4() - calls4;
    sal_conv_wino_mode(old);
    CHECK(e && calls4 == 0, "z+ of a 64 -> 128 layer: %ld F(4x4) calls", calls4);
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Maps the session keeps across calls for data of one shape (sal_derived_map: zb's offset), then zb
 * through a reused session against fresh ones: other bounds, another batch size, new weights. */
static void test_kept_maps(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 46);
    sal_model *m = small_cnn(&rng);
    const sal_node *n = &m->node[sal_graph_find_node(m, "conv1")];
    sal_tensor *in[3] = {&m->val[n->in[0]].t, &m->val[n->in[1]].t, &m->val[n->in[2]].t}, x8 = {0}, x9 = {0},
               like = {0};
    SAL_ASSERT(sal_tensor_alloc(&x8, SAL_F32, 4, (int64_t[]){1, 1, 8, 8}) == SAL_OK);
    SAL_ASSERT(sal_tensor_alloc(&x9, SAL_F32, 4, (int64_t[]){1, 1, 9, 7}) == SAL_OK); /* another shape */
    SAL_ASSERT(sal_tensor_alloc(&like, SAL_F32, 4, (int64_t[]){1, 3, 8, 8}) == SAL_OK);
    sal_scratch ws = {0};
    sal_opctx c = {.g = m, .n = n, .in = in, .ws = &ws};
    bool ready = true;
    sal_tensor *t = sal_derived_map(&c, 1, 7, &x8, &like, &ready);
    CHECK(t && !ready && sal_tensor_same_shape(t, &like), "first map request: a buffer shaped as like, to fill");
    CHECK(sal_derived_map(&c, 1, 7, &x8, &like, &ready) == t && ready, "second request: the same map, ready");
    CHECK(sal_derived_get(&c, 1, 7, &ready) != t && !ready, "the weights' key 7 is another buffer");
    CHECK(sal_derived_map(&c, 1, 7, &x8, &like, &ready) == t && ready, "the map is still there");
    CHECK(sal_derived_map(&c, 1, 7, &x9, &like, &ready) == t && !ready, "data of another shape: derived again");
    CHECK(sal_derived_map(&c, 1, 7, &x9, &like, &ready) == t && ready, "then ready for that shape");
    CHECK(sal_derived_map(&c, 1, 8, &x9, &like, &ready) != t && !ready, "another key: another map");
    sal_model_weights_changed(m);
    CHECK(sal_derived_map(&c, 1, 7, &x9, &like, &ready) == t && !ready, "after new weights: derived again");
    sal_scratch_free(&ws);

    sal_tensor x = {0};
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 4, (int64_t[]){2, 1, 8, 8}) == SAL_OK);
    for (int i = 0; i < 128; i++) sal_f32(&x)[i] = (float)sal_rng_uniform(&rng);
    sal_tensor x1 = x;
    x1.dim[0] = 1; /* the first sample alone: a batch of another size */
    sal_session *s = NULL;
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    static const char *const box[3] = {"rule=conv1=zb:0:1", "rule=conv1=zb:-1:2", "rule=conv1=zb:-1:2"};
    const sal_tensor *xs[3] = {&x, &x, &x1};
    int64_t target = 1;
    double worst = 0, moved = 0;
    for (int q = 0; q < 4; q++) {
        if (q == 3) { /* new weights of both signs in the box layer */
            sal_tensor *w = in[1];
            for (int64_t i = 0; i < sal_tensor_numel(w); i++) sal_f32(w)[i] = -0.8f * sal_f32(w)[i] + 0.05f;
            sal_model_weights_changed(m);
        }
        const int k = q < 3 ? q : 2;
        sal_explain_opts o = {.method = "lrp_epsilon", .nparams = 1, .params = &box[k], .target = SAL_TARGET_INDEX,
                              .classes = &target, .nclasses = 1, .data_lo = 0, .data_hi = 1, .session = s};
        sal_explanation *kept = NULL, *fresh = NULL;
        CHECK_OK(sal_explain(m, xs[k], &o, &kept));
        o.session = NULL;
        CHECK_OK(sal_explain(m, xs[k], &o, &fresh));
        if (kept && fresh) {
            const float *a = sal_f32(sal_explanation_map(kept)), *b = sal_f32(sal_explanation_map(fresh));
            worst = fmax(worst, rel_errf(a, b, sal_tensor_numel(xs[k])));
        }
        if (q == 1 && kept) { /* the other bounds move the map: against the first bounds, fresh */
            o.params = &box[0];
            sal_explanation *first = NULL;
            CHECK_OK(sal_explain(m, xs[k], &o, &first));
            if (first) moved = rel_errf(sal_f32(sal_explanation_map(kept)), sal_f32(sal_explanation_map(first)), 128);
            sal_explanation_free(first);
        }
        sal_explanation_free(kept);
        sal_explanation_free(fresh);
    }
    CHECK(worst < 1e-6 && moved > 1e-2,
          "zb through a reused session matches fresh sessions (%.3g) over other bounds, batch sizes and new weights; "
          "the bounds move the map (%.3g)", worst, moved);
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_tensor_free(&x8);
    sal_tensor_free(&x9);
    sal_tensor_free(&like);
    sal_model_free(m);
}

/* ---- 6. refusals ---- */

static void test_errors(void) {
    sal_lrp_rule r;
    CHECK_FAILS(sal_lrp_rule_parse("gama:0.2", &r), SAL_ERR_ARG, "unknown LRP rule 'gama:0.2'");
    CHECK_FAILS(sal_lrp_rule_parse("gamma:x", &r), SAL_ERR_ARG, "not a number");
    CHECK_FAILS(sal_lrp_rule_parse("gamma:1:2", &r), SAL_ERR_ARG, "takes 1 parameter");
    CHECK_FAILS(sal_lrp_rule_parse("alpha_beta:2:2", &r), SAL_ERR_ARG, "alpha - beta = 1");
    CHECK_FAILS(sal_lrp_rule_parse("zb:1", &r), SAL_ERR_ARG, "both bounds");
    CHECK_FAILS(sal_lrp_rule_parse("zb:2:1", &r), SAL_ERR_ARG, "low < high");
    CHECK_FAILS(sal_lrp_rule_parse("epsilon:-1", &r), SAL_ERR_ARG, "epsilon must be >= 0");
    CHECK_OK(sal_lrp_rule_parse("alpha_beta:3", &r));
    CHECK(r.kind == SAL_LRP_ALPHA_BETA && r.a == 3 && r.b == 2, "alpha_beta:3 means beta 2");

    sal_rng rng;
    sal_rng_seed(&rng, 3);
    sal_model *m = small_cnn(&rng);
    sal_tensor x = t_rand(&rng, 4, (int64_t[]){1, 1, 8, 8}, 1.0f);
    sal_explain_opts o = {.method = "lrp_0", .nparams = 1, .params = (const char *[]){"rule=nosuch*=gamma"}};
    sal_explanation *e = NULL;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "'nosuch*=gamma' matches no Gemm, MatMul or Conv node");
    o.params = (const char *[]){"rule=conv1"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "not NODE_OR_PATTERN=RULE");
    o.params = (const char *[]){"rule=conv1=bogus"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "rule entry 'conv1=bogus'");
    o.params = (const char *[]){"maxpool=biggest"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "maxpool=biggest must be one of");
    o.method = "lrp_alpha_beta";
    o.nparams = 2;
    o.params = (const char *[]){"alpha=2", "beta=2"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "alpha - beta = 1");
    o.method = "deep_taylor";
    o.nparams = 1;
    o.params = (const char *[]){"root=pattern"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "root=pattern needs patterns=FILE");
    o.method = "patternnet";
    o.nparams = 0;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "needs patterns=FILE");
    sal_model_free(m);
    sal_tensor_free(&x);

    /* a product of two activations, and a Softmax inside the graph */
    float w[4 * 4];
    t_randv(&rng, w, 16, 0.5f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<prod>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}) == SAL_OK);
    gemm(g, "fc", "x", "z", 4, 4, w, NULL);
    t_node(g, "Mul", "gate", 2, (const char *[]){"z", "x"}, "q", 0, NULL);
    t_node(g, "Softmax", "inner_softmax", 1, (const char *[]){"q"}, "sq", 0, NULL);
    gemm(g, "out", "sq", "y", 4, 4, w, NULL);
    m = t_finish(g, "y");
    x = t_rand(&rng, 2, (int64_t[]){1, 4}, 1.0f);
    o = (sal_explain_opts){.method = "lrp_epsilon"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_UNSUPPORTED, "node 'inner_softmax' (Softmax): lrp_epsilon has no rule for Softmax");
    sal_model_free(m);
    SAL_ASSERT(sal_graph_create("<prod2>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}) == SAL_OK);
    gemm(g, "fc", "x", "z", 4, 4, w, NULL);
    t_node(g, "Mul", "gate", 2, (const char *[]){"z", "x"}, "q", 0, NULL);
    gemm(g, "out", "q", "y", 4, 4, w, NULL);
    m = t_finish(g, "y");
    /* a product of two activations takes AttnLRP's uniform rule (tests/test_lrp_transformer.c) */
    CHECK_OK(sal_explain(m, &x, &o, &e));
    sal_explanation_free(e);
    e = NULL;
    /* a Softmax at the output passes relevance through; LogSoftmax too */
    sal_model_free(m);
    SAL_ASSERT(sal_graph_create("<softmax-out>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}) == SAL_OK);
    gemm(g, "fc", "x", "z", 4, 4, w, NULL);
    t_node(g, "Softmax", "sm", 1, (const char *[]){"z"}, "y", 0, NULL);
    m = t_finish(g, "y");
    o = (sal_explain_opts){.method = "lrp_0", .target = SAL_TARGET_MAX};
    CHECK_OK(sal_explain(m, &x, &o, &e));
    if (e) {
        double sum = tsum(sal_explanation_map(e), 0, 0), p = sal_explanation_outputs(e)[0];
        CHECK(fabs(sum - p) < 1e-4, "softmax output: relevance sums to %.6g, the probability is %.6g", sum, p);
    }
    sal_explanation_free(e);
    sal_model_free(m);
    sal_tensor_free(&x);
}

int main(void) {
    test_rules_dense_and_conv();
    test_lrp0_conservation();
    test_input_normalization();
    test_zb_closed_form();
    test_maxpool_proportional();
    test_canonize();
    test_composites();
    test_kept_weights();
    test_kept_maps();
    test_winograd_rules();
    test_errors();
    return t_done("test_methods_lrp");
}
