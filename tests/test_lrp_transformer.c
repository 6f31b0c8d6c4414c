/* LRP on modern architectures (src/methods/lrp_transformer.c, the plan in lrp.c), every rule against
 * its closed form computed here in double on small hand-built graphs:
 *   - LayerNormalization (two axes), InstanceNormalization, GroupNormalization: the z-rule with the
 *     statistics held constant, R_i = x_i (u_i - mean(u)), u = w R / (sigma y); what is lost is the
 *     bias's share; a LayerNorm decomposed into ReduceMean, Sub, Pow, Sqrt, Div gives the same map;
 *   - gates x * g(x) (GELU as PyTorch exports it, SiLU) and the Gelu op pass relevance unchanged;
 *   - products of two activations (Mul, MatMul, Einsum) split each term equally (AttnLRP's uniform
 *     rule) and conserve; a divisor that depends on the input is held constant;
 *   - softmax attention: with attention=constant (CP-LRP) the values get all, queries and keys
 *     nothing, and a bias-free block conserves; with attention=attnlrp the softmax rule
 *     R_in = x (R - s sum R) and the uniform rule on Q K^T;
 *   - an op without a rule on the relevance path is refused naming the node;
 *   - sal_method_rules describes what each node gets. */
#include "testutil.h"
#include "methods/lrp.h"
#include "saliency.h"

static sal_rng rng;

static void matmul_c(sal_model *g, const char *name, const char *in, const char *out, int K, int D) {
    char wn[64];
    float w[256];
    snprintf(wn, sizeof wn, "%s.W", name);
    t_randv(&rng, w, K * D, 0.6f);
    t_const(g, wn, 2, (int64_t[]){K, D}, w);
    t_node(g, "MatMul", name, 2, (const char *[]){in, wn}, out, 0, NULL);
}

static void gemm_c(sal_model *g, const char *name, const char *in, const char *out, int K, int D) {
    char wn[64];
    float w[512];
    snprintf(wn, sizeof wn, "%s.W", name);
    t_randv(&rng, w, K * D, 0.5f);
    t_const(g, wn, 2, (int64_t[]){K, D}, w);
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", name, 2, (const char *[]){in, wn}, out, 1, at);
}

static void flatten(sal_model *g, const char *name, const char *in, const char *out) {
    sal_attr at[1] = {sal_attr_make_int("axis", 1)};
    t_node(g, "Flatten", name, 1, (const char *[]){in}, out, 1, at);
}

static sal_lrp_config cfg0(int attention) {
    sal_lrp_rule r = {SAL_LRP_ZERO, 0, 0};
    return (sal_lrp_config){.method = "test", .first = r, .conv = r, .dense = r, .stabilizer = 1e-9, .lo = -1,
                            .hi = 1, .attention = attention};
}

/* One relevance pass of LRP-0 for target class t; the session holds every value's relevance. */
static sal_session *relevance(const sal_model *m, const sal_tensor *x, int64_t t, int attention) {
    sal_session *s = NULL;
    sal_lrp_plan *p = NULL;
    sal_lrp_config cfg = cfg0(attention);
    int64_t tg[8] = {t, t, t, t, t, t, t, t};
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    s->keep_grads = true; /* the relevance at inner values */
    sal_status st = sal_lrp_plan_new(m, &cfg, &p);
    if (st == SAL_OK) st = sal_lrp_backward(s, x, tg, false, sal_lrp_plan_rules(p), p, NULL);
    CHECK(st == SAL_OK, "LRP pass on %s: %s", m->path, sal_last_error());
    sal_lrp_plan_free(p);
    return s;
}

static const float *val(const sal_session *s, const char *name) {
    int v = sal_graph_find(s->m, name);
    SAL_ASSERT(v >= 0);
    return sal_f32(&s->act[v]);
}

static const float *rel(const sal_session *s, const char *name) {
    int v = sal_graph_find(s->m, name);
    SAL_ASSERT(v >= 0);
    return s->has_grad[v] ? sal_f32(&s->grad[v]) : NULL;
}

static int64_t numel(const sal_session *s, const char *name) { return sal_tensor_numel(&s->act[sal_graph_find(s->m, name)]); }

static double sum(const float *a, int64_t n) {
    double t = 0;
    for (int64_t i = 0; i < n; i++) t += a ? a[i] : 0;
    return t;
}

static double maxdiff(const float *a, const double *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static double maxabs(const double *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs(b[i]));
    return d;
}

/* ---- normalizations ---- */

/* R_x by the closed form for rows of L elements, parameter index pidx(r, j) into w and b. */
static void norm_closed(const float *x, const float *y, const float *R, const float *w, int64_t rows, int64_t L,
                        int64_t (*pidx)(int64_t, int64_t), double eps, double *out) {
    for (int64_t r = 0; r < rows; r++) {
        double m = 0, v = 0, ub = 0, u[64];
        for (int64_t j = 0; j < L; j++) m += x[r * L + j];
        m /= (double)L;
        for (int64_t j = 0; j < L; j++) v += (x[r * L + j] - m) * (x[r * L + j] - m);
        double sd = sqrt(v / (double)L + eps);
        for (int64_t j = 0; j < L; j++) {
            u[j] = w[pidx(r, j)] / sd * R[r * L + j] / y[r * L + j];
            ub += u[j] / (double)L;
        }
        for (int64_t j = 0; j < L; j++) out[r * L + j] = x[r * L + j] * (u[j] - ub);
    }
}

static int64_t p_elem(int64_t r, int64_t j) { return (void)r, j; }
static int64_t p_inst(int64_t r, int64_t j) { return (void)j, r % 4; }           /* C = 4 */
static int64_t p_group(int64_t r, int64_t j) { return (r % 2) * 2 + j / 3; }     /* G = 2, C = 4, S = 3 */
static int64_t p_group18(int64_t r, int64_t j) { return (void)j, r % 2; }        /* per group */

/* x (N, a, b) -> NORM -> y -> Flatten -> Gemm (classes 3) */
static sal_model *norm_net(const char *op, int nd, const int64_t *dim, int nw, int nattr, sal_attr *at) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create(op, &g) == SAL_OK);
    int64_t in[4] = {-1, dim[1], dim[2], nd > 3 ? dim[3] : 0};
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, nd, in) == SAL_OK);
    float w[64], b[64];
    t_randv(&rng, w, nw, 1.0f);
    t_randv(&rng, b, nw, 0.3f);
    t_const(g, "w", 1, (int64_t[]){nw}, w);
    t_const(g, "b", 1, (int64_t[]){nw}, b);
    t_node(g, op, "norm", 3, (const char *[]){"x", "w", "b"}, "y", nattr, at);
    flatten(g, "flat", "y", "f");
    int64_t D = 1;
    for (int d = 1; d < nd; d++) D *= dim[d];
    gemm_c(g, "fc", "f", "out", 3, (int)D);
    return t_finish(g, "out");
}

static void check_norm(const char *what, sal_model *m, int64_t rows, int64_t L, int64_t (*pidx)(int64_t, int64_t),
                       int nd, const int64_t *dim) {
    sal_tensor x = t_rand(&rng, nd, dim, 1.5f);
    sal_session *s = relevance(m, &x, 1, SAL_ATTN_CONSTANT);
    const float *Rx = rel(s, "x"), *Ry = rel(s, "y"), *y = val(s, "y"), *w = sal_f32(&m->val[sal_graph_find(m, "w")].t);
    const float *b = sal_f32(&m->val[sal_graph_find(m, "b")].t);
    double want[256], lost = 0;
    int64_t n = numel(s, "x");
    SAL_ASSERT(n <= 256 && Rx && Ry);
    norm_closed(sal_f32(&x), y, Ry, w, rows, L, pidx, 1e-5, want);
    double d = maxdiff(Rx, want, n);
    CHECK(d < 1e-4 * (1 + maxabs(want, n)), "%s: relevance differs from the closed form by %g", what, d);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < L; j++) {
            int64_t e = r * L + j;
            lost += b[pidx(r, j)] * Ry[e] / y[e]; /* the bias's share */
        }
    double cons = sum(Rx, n) - (sum(Ry, n) - lost);
    CHECK(fabs(cons) < 1e-4 * (1 + fabs(sum(Ry, n))), "%s: sum R_x = %g, sum R_y - bias share = %g", what, sum(Rx, n),
          sum(Ry, n) - lost);
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(m);
}

static void test_norms(void) {
    int64_t d3[3] = {2, 3, 4};
    check_norm("LayerNormalization axis -1", norm_net("LayerNormalization", 3, d3, 4, 0, NULL), 6, 4, p_elem, 3, d3);
    sal_attr a1[1] = {sal_attr_make_int("axis", 1)};
    int64_t d3b[3] = {2, 2, 3};
    sal_model *m = norm_net("LayerNormalization", 3, d3b, 6, 1, a1);
    check_norm("LayerNormalization axis 1", m, 2, 6, p_elem, 3, d3b);
    int64_t d4[4] = {2, 4, 3, 1};
    check_norm("InstanceNormalization", norm_net("InstanceNormalization", 4, d4, 4, 0, NULL), 8, 3, p_inst, 4, d4);
    sal_attr a2[1] = {sal_attr_make_int("num_groups", 2)};
    check_norm("GroupNormalization (per channel)", norm_net("GroupNormalization", 4, d4, 4, 1, a2), 4, 6, p_group, 4, d4);
    sal_attr a3[1] = {sal_attr_make_int("num_groups", 2)};
    check_norm("GroupNormalization (per group, opset 18)", norm_net("GroupNormalization", 4, d4, 2, 1, a3), 4, 6,
               p_group18, 4, d4);
}

/* A LayerNorm over the last axis written out as PyTorch exports it before opset 17; the same map as
 * LayerNormalization, and the statistics' nodes receive nothing. */
static void test_layernorm_decomposed(void) {
    float w[4], b[4], W[12];
    t_randv(&rng, w, 4, 1.0f);
    t_randv(&rng, b, 4, 0.3f);
    t_randv(&rng, W, 12, 0.5f);
    sal_model *m[2];
    for (int k = 0; k < 2; k++) {
        sal_model *g;
        SAL_ASSERT(sal_graph_create(k ? "<ln-decomposed>" : "<ln>", &g) == SAL_OK);
        SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}) == SAL_OK);
        t_const(g, "w", 1, (int64_t[]){4}, w);
        t_const(g, "b", 1, (int64_t[]){4}, b);
        t_const(g, "fc.W", 2, (int64_t[]){3, 4}, W);
        if (!k) {
            t_node(g, "LayerNormalization", "ln", 3, (const char *[]){"x", "w", "b"}, "y", 0, NULL);
        } else {
            sal_attr ax[2] = {sal_attr_make_ints("axes", 1, (int64_t[]){-1}), sal_attr_make_ints("axes", 1, (int64_t[]){-1})};
            t_const(g, "two", 0, NULL, (float[]){2});
            t_const(g, "eps", 0, NULL, (float[]){1e-5f});
            t_node(g, "ReduceMean", "mean", 1, (const char *[]){"x"}, "mu", 1, &ax[0]);
            t_node(g, "Sub", "center", 2, (const char *[]){"x", "mu"}, "d", 0, NULL);
            t_node(g, "Pow", "sq", 2, (const char *[]){"d", "two"}, "d2", 0, NULL);
            t_node(g, "ReduceMean", "var", 1, (const char *[]){"d2"}, "v", 1, &ax[1]);
            t_node(g, "Add", "veps", 2, (const char *[]){"v", "eps"}, "ve", 0, NULL);
            t_node(g, "Sqrt", "sd", 1, (const char *[]){"ve"}, "sdv", 0, NULL);
            t_node(g, "Div", "norm", 2, (const char *[]){"d", "sdv"}, "xh", 0, NULL);
            t_node(g, "Mul", "scale", 2, (const char *[]){"xh", "w"}, "xw", 0, NULL);
            t_node(g, "Add", "shift", 2, (const char *[]){"xw", "b"}, "y", 0, NULL);
        }
        sal_attr at[1] = {sal_attr_make_int("transB", 1)};
        t_node(g, "Gemm", "fc", 2, (const char *[]){"y", "fc.W"}, "out", 1, at);
        m[k] = t_finish(g, "out");
    }
    sal_tensor x = t_rand(&rng, 2, (int64_t[]){3, 4}, 2.0f);
    sal_session *s0 = relevance(m[0], &x, 2, 0), *s1 = relevance(m[1], &x, 2, 0);
    double want[12];
    for (int i = 0; i < 12; i++) want[i] = rel(s0, "x")[i];
    double d = maxdiff(rel(s1, "x"), want, 12);
    CHECK(d < 1e-4 * (1 + maxabs(want, 12)), "decomposed LayerNorm: relevance differs from LayerNormalization's by %g", d);
    char **rules = NULL;
    CHECK_OK(sal_method_rules(m[1], "lrp_epsilon", 0, NULL, NULL, &rules));
    if (rules) {
        int sd = sal_graph_find_node(m[1], "sd"), nm = sal_graph_find_node(m[1], "norm");
        CHECK(strstr(rules[sd], "none: no relevance reaches it"), "Sqrt of the statistics: '%s'", rules[sd]);
        CHECK(strstr(rules[nm], "held constant: the divisor"), "Div by the deviation: '%s'", rules[nm]);
        sal_method_rules_free(rules, m[1]->nnode);
    }
    sal_session_free(s0);
    sal_session_free(s1);
    sal_tensor_free(&x);
    sal_model_free(m[0]);
    sal_model_free(m[1]);
}

/* ---- gates: x * g(x) is an activation of x and passes its relevance ---- */

static void test_gates(void) {
    for (int k = 0; k < 3; k++) {
        sal_model *g;
        SAL_ASSERT(sal_graph_create("<gate>", &g) == SAL_OK);
        SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 5}) == SAL_OK);
        gemm_c(g, "fc1", "x", "h", 6, 5);
        if (k == 0) { /* GELU as torch.onnx exports it: h * 0.5 * (1 + erf(h / sqrt 2)) */
            t_const(g, "rt2", 0, NULL, (float[]){1.4142135f});
            t_const(g, "one", 0, NULL, (float[]){1});
            t_const(g, "half", 0, NULL, (float[]){0.5f});
            t_node(g, "Div", "g.div", 2, (const char *[]){"h", "rt2"}, "g1", 0, NULL);
            t_node(g, "Erf", "g.erf", 1, (const char *[]){"g1"}, "g2", 0, NULL);
            t_node(g, "Add", "g.add", 2, (const char *[]){"g2", "one"}, "g3", 0, NULL);
            t_node(g, "Mul", "g.mul", 2, (const char *[]){"h", "g3"}, "g4", 0, NULL);
            t_node(g, "Mul", "g.half", 2, (const char *[]){"g4", "half"}, "a", 0, NULL);
        } else if (k == 1) { /* SiLU */
            t_node(g, "Sigmoid", "g.sig", 1, (const char *[]){"h"}, "g1", 0, NULL);
            t_node(g, "Mul", "g.mul", 2, (const char *[]){"g1", "h"}, "a", 0, NULL);
        } else {
            t_node(g, "Gelu", "g.gelu", 1, (const char *[]){"h"}, "a", 0, NULL);
        }
        gemm_c(g, "fc2", "a", "out", 3, 6);
        sal_model *m = t_finish(g, "out");
        sal_tensor x = t_rand(&rng, 2, (int64_t[]){2, 5}, 1.0f);
        sal_session *s = relevance(m, &x, 0, 0);
        const float *Rh = rel(s, "h"), *Ra = rel(s, "a");
        double want[12];
        for (int i = 0; i < 12; i++) want[i] = Ra[i];
        double d = maxdiff(Rh, want, 12);
        static const char *const name[] = {"GELU (erf form)", "SiLU", "Gelu op"};
        CHECK(d < 1e-5 * (1 + maxabs(want, 12)), "%s: the gate's input gets %g other than its output's relevance", name[k], d);
        sal_session_free(s);
        sal_tensor_free(&x);
        sal_model_free(m);
    }
}

/* ---- products of two activations: the uniform rule ---- */

static void test_products(void) {
    /* elementwise: a * b with a, b = x W_a, x W_b */
    for (int k = 0; k < 3; k++) {
        sal_model *g;
        SAL_ASSERT(sal_graph_create("<product>", &g) == SAL_OK);
        SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}) == SAL_OK);
        gemm_c(g, "fa", "x", "a", 4, 4);
        gemm_c(g, "fb", "x", "b", 4, 4);
        if (k == 0) {
            t_node(g, "Mul", "prod", 2, (const char *[]){"a", "b"}, "z", 0, NULL);
        } else { /* (N, 2, 2) @ (N, 2, 2) as MatMul or Einsum */
            sal_tensor sh = {0};
            SAL_ASSERT(sal_tensor_alloc(&sh, SAL_I64, 1, (int64_t[]){3}) == SAL_OK);
            int64_t *p = sh.data;
            p[0] = -1, p[1] = 2, p[2] = 2;
            SAL_ASSERT(sal_graph_add_const(g, "sh", &sh) == SAL_OK);
            t_node(g, "Reshape", "ra", 2, (const char *[]){"a", "sh"}, "a3", 0, NULL);
            t_node(g, "Reshape", "rb", 2, (const char *[]){"b", "sh"}, "b3", 0, NULL);
            if (k == 1) t_node(g, "MatMul", "prod", 2, (const char *[]){"a3", "b3"}, "z3", 0, NULL);
            else {
                sal_attr eq[1] = {sal_attr_make_string("equation", "nij,njk->nik")};
                t_node(g, "Einsum", "prod", 2, (const char *[]){"a3", "b3"}, "z3", 1, eq);
            }
            flatten(g, "flat", "z3", "z");
        }
        gemm_c(g, "fc", "z", "out", 3, 4);
        sal_model *m = t_finish(g, "out");
        sal_tensor x = t_rand(&rng, 2, (int64_t[]){2, 4}, 1.0f);
        sal_session *s = relevance(m, &x, 1, 0);
        const float *a = val(s, "a"), *b = val(s, "b"), *z = val(s, "z"), *Rz = rel(s, "z");
        double wa[8] = {0}, wb[8] = {0};
        for (int n = 0; n < 2; n++)
            for (int i = 0; i < 4; i++) {
                const float *an = a + n * 4, *bn = b + n * 4, *zn = z + n * 4, *R = Rz + n * 4;
                if (k == 0) {
                    wa[n * 4 + i] = wb[n * 4 + i] = 0.5 * an[i] * bn[i] * R[i] / zn[i];
                    continue;
                }
                int r = i / 2, cc = i % 2; /* a[r][cc] in z[r][k] = sum_j a[r][j] b[j][k]; b[r][cc] in z[j][cc] */
                for (int kk = 0; kk < 2; kk++) wa[n * 4 + i] += 0.5 * an[r * 2 + cc] * bn[cc * 2 + kk] * R[r * 2 + kk] / zn[r * 2 + kk];
                for (int j = 0; j < 2; j++) wb[n * 4 + i] += 0.5 * an[j * 2 + r] * bn[r * 2 + cc] * R[j * 2 + cc] / zn[j * 2 + cc];
            }
        static const char *const name[] = {"Mul", "MatMul", "Einsum"};
        double da = maxdiff(rel(s, "a"), wa, 8), db = maxdiff(rel(s, "b"), wb, 8);
        CHECK(da < 1e-4 * (1 + maxabs(wa, 8)) && db < 1e-4 * (1 + maxabs(wb, 8)),
              "uniform rule at %s: operands differ from the closed form by %g and %g", name[k], da, db);
        double in = sum(rel(s, "a"), 8) + sum(rel(s, "b"), 8), outr = sum(Rz, 8);
        CHECK(fabs(in - outr) < 1e-4 * (1 + fabs(outr)), "uniform rule at %s: %g in, %g out", name[k], outr, in);
        sal_session_free(s);
        sal_tensor_free(&x);
        sal_model_free(m);
    }
}

/* ---- softmax attention ---- */

/* x (N, 3, 4) tokens; q, k, v = x W; A = softmax(q k^T / 2); o = A v; a dense head, bias-free. */
static sal_model *attention_net(void) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<attention>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 3, (int64_t[]){-1, 3, 4}) == SAL_OK);
    matmul_c(g, "wq", "x", "q", 4, 4);
    matmul_c(g, "wk", "x", "k", 4, 4);
    matmul_c(g, "wv", "x", "v", 4, 4);
    sal_attr perm[1] = {sal_attr_make_ints("perm", 3, (int64_t[]){0, 2, 1})};
    t_node(g, "Transpose", "kt", 1, (const char *[]){"k"}, "kT", 1, perm);
    t_node(g, "MatMul", "qk", 2, (const char *[]){"q", "kT"}, "s0", 0, NULL);
    t_const(g, "two", 0, NULL, (float[]){2});
    t_node(g, "Div", "scale", 2, (const char *[]){"s0", "two"}, "s", 0, NULL);
    sal_attr ax[1] = {sal_attr_make_int("axis", -1)};
    t_node(g, "Softmax", "softmax", 1, (const char *[]){"s"}, "A", 1, ax);
    t_node(g, "MatMul", "av", 2, (const char *[]){"A", "v"}, "o", 0, NULL);
    flatten(g, "flat", "o", "f");
    gemm_c(g, "head", "f", "out", 3, 12);
    return t_finish(g, "out");
}

static void test_attention(void) {
    sal_model *m = attention_net();
    sal_tensor x = t_rand(&rng, 3, (int64_t[]){2, 3, 4}, 1.0f);
    for (int mode = 0; mode < 2; mode++) {
        sal_session *s = relevance(m, &x, 2, mode);
        const float *A = val(s, "A"), *v = val(s, "v"), *o = val(s, "o"), *Ro = rel(s, "o");
        const float *q = val(s, "q"), *kT = val(s, "kT"), *s0 = val(s, "s0"), *sm = val(s, "s");
        double Rv[24] = {0}, RA[18] = {0}, Rs[18] = {0}, Rq[24] = {0}, Rk[24] = {0};
        double c = mode ? 0.5 : 1.0;
        for (int n = 0; n < 2; n++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    for (int e = 0; e < 4; e++) {
                        int oi = (n * 3 + i) * 4 + e;
                        double t = A[(n * 3 + i) * 3 + j] * v[(n * 3 + j) * 4 + e] * Ro[oi] / o[oi];
                        Rv[(n * 3 + j) * 4 + e] += c * t;
                        RA[(n * 3 + i) * 3 + j] += c * t;
                    }
        double dv = maxdiff(rel(s, "v"), Rv, 24);
        CHECK(dv < 1e-4 * (1 + maxabs(Rv, 24)), "attention=%s: values' relevance off by %g", mode ? "attnlrp" : "constant", dv);
        if (!mode) {
            CHECK(sum(rel(s, "q"), 24) == 0 && sum(rel(s, "k"), 24) == 0, "attention=constant: queries or keys got relevance");
            double tot = sum(rel(s, "x"), 24), want = val(s, "out")[2] + val(s, "out")[5];
            CHECK(fabs(tot - want) < 1e-4 * (1 + fabs(want)), "attention=constant: %g of %g conserved", tot, want);
        } else {
            for (int r = 0; r < 6; r++) { /* softmax rows: R_in = x (R - s sum R) */
                double t = 0;
                for (int j = 0; j < 3; j++) t += RA[r * 3 + j];
                for (int j = 0; j < 3; j++) Rs[r * 3 + j] = sm[r * 3 + j] * (RA[r * 3 + j] - A[r * 3 + j] * t);
            }
            double ds = maxdiff(rel(s, "s"), Rs, 18);
            CHECK(ds < 1e-4 * (1 + maxabs(Rs, 18)), "AttnLRP softmax rule off by %g", ds);
            for (int n = 0; n < 2; n++) /* uniform rule on s0 = q kT (scaled by a constant: s0 gets Rs) */
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++)
                        for (int e = 0; e < 4; e++) {
                            int si = (n * 3 + i) * 3 + j;
                            double t = 0.5 * q[(n * 3 + i) * 4 + e] * kT[(n * 4 + e) * 3 + j] * Rs[si] / s0[si];
                            Rq[(n * 3 + i) * 4 + e] += t;
                            Rk[(n * 3 + j) * 4 + e] += t; /* k[j][e] = kT[e][j] */
                        }
            double dq = maxdiff(rel(s, "q"), Rq, 24), dk = maxdiff(rel(s, "k"), Rk, 24);
            CHECK(dq < 1e-4 * (1 + maxabs(Rq, 24)) && dk < 1e-4 * (1 + maxabs(Rk, 24)),
                  "attention=attnlrp: queries off by %g, keys by %g", dq, dk);
        }
        sal_session_free(s);
    }
    /* what each node gets, in words */
    const char *p[] = {"attention=constant"};
    char **rules = NULL;
    CHECK_OK(sal_method_rules(m, "lrp_epsilon_plus", 1, p, NULL, &rules));
    if (rules) {
        int av = sal_graph_find_node(m, "av"), sm = sal_graph_find_node(m, "softmax"), qk = sal_graph_find_node(m, "qk");
        int wq = sal_graph_find_node(m, "wq"), kt = sal_graph_find_node(m, "kt");
        CHECK(strstr(rules[av], "input 0 held constant: attention weights (CP-LRP)"), "A v: '%s'", rules[av]);
        CHECK(strstr(rules[sm], "none") && strstr(rules[qk], "none") && strstr(rules[kt], "none") &&
                  strstr(rules[wq], "none"), "softmax '%s', q k^T '%s'", rules[sm], rules[qk]);
        sal_method_rules_free(rules, m->nnode);
    }
    p[0] = "attention=attnlrp";
    CHECK_OK(sal_method_rules(m, "lrp_epsilon_plus", 1, p, NULL, &rules));
    if (rules) {
        int av = sal_graph_find_node(m, "av"), sm = sal_graph_find_node(m, "softmax"), wq = sal_graph_find_node(m, "wq");
        CHECK(strstr(rules[av], "uniform") && strstr(rules[sm], "AttnLRP softmax") && strstr(rules[wq], "rule epsilon"),
              "attnlrp: A v '%s', softmax '%s', W_q '%s'", rules[av], rules[sm], rules[wq]);
        sal_method_rules_free(rules, m->nnode);
    }
    p[0] = "attention=both";
    CHECK_FAILS(sal_method_rules(m, "lrp_epsilon", 1, p, NULL, &rules), SAL_ERR_ARG, "attention=both must be one of");
    CHECK_FAILS(sal_method_rules(m, "gradient", 0, NULL, NULL, &rules), SAL_ERR_ARG, "decides no rules per node");
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- held divisors, refusals ---- */

static void test_divisor_and_refusals(void) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<divisor>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}) == SAL_OK);
    gemm_c(g, "fa", "x", "a", 4, 4);
    gemm_c(g, "fb", "x", "b", 4, 4);
    t_const(g, "one", 0, NULL, (float[]){1});
    t_node(g, "Mul", "sq", 2, (const char *[]){"b", "b"}, "b2", 0, NULL);
    t_node(g, "Add", "plus1", 2, (const char *[]){"b2", "one"}, "den", 0, NULL);
    t_node(g, "Div", "ratio", 2, (const char *[]){"a", "den"}, "d", 0, NULL);
    gemm_c(g, "fc", "d", "out", 3, 4);
    sal_model *m = t_finish(g, "out");
    sal_tensor x = t_rand(&rng, 2, (int64_t[]){2, 4}, 1.0f);
    sal_session *s = relevance(m, &x, 0, 0);
    double want[8];
    for (int i = 0; i < 8; i++) want[i] = rel(s, "d")[i];
    double d = maxdiff(rel(s, "a"), want, 8);
    CHECK(d < 1e-5 * (1 + maxabs(want, 8)), "a / f(b): the numerator gets %g other than the quotient's relevance", d);
    CHECK(sum(rel(s, "b"), 8) == 0, "a / f(b): the divisor got relevance");
    sal_session_free(s);
    sal_model_free(m);

    /* an op with no LRP rule on the relevance path, refused naming the node; off the path, not */
    SAL_ASSERT(sal_graph_create("<abs>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}) == SAL_OK);
    gemm_c(g, "fa", "x", "a", 4, 4);
    t_node(g, "Abs", "abs", 1, (const char *[]){"a"}, "aa", 0, NULL);
    gemm_c(g, "fc", "aa", "out", 3, 4);
    m = t_finish(g, "out");
    sal_explain_opts o = {.method = "lrp_epsilon"};
    sal_explanation *e = NULL;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_UNSUPPORTED, "node 'abs' (Abs): lrp_epsilon has no rule for Abs");
    char **rules = NULL;
    CHECK_OK(sal_method_rules(m, "lrp_epsilon", 0, NULL, NULL, &rules));
    if (rules) {
        CHECK(!strcmp(rules[sal_graph_find_node(m, "abs")], "refused: no LRP rule for Abs"), "Abs: '%s'",
              rules[sal_graph_find_node(m, "abs")]);
        sal_method_rules_free(rules, m->nnode);
    }
    CHECK_OK(sal_method_rules(m, "guided_backprop", 0, NULL, NULL, &rules));
    if (rules) {
        CHECK(strstr(rules[sal_graph_find_node(m, "abs")], "refused: guided_backprop has no rule for Abs"), "guided: '%s'",
              rules[sal_graph_find_node(m, "abs")]);
        sal_method_rules_free(rules, m->nnode);
    }
    o.method = "guided_backprop";
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_UNSUPPORTED, "node 'abs' (Abs): guided_backprop has no rule for Abs");
    o.method = "deeplift";
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_UNSUPPORTED, "node 'abs' (Abs): deeplift has no rule for Abs");
    sal_model_free(m);
    sal_tensor_free(&x);
}

int main(void) {
    sal_rng_seed(&rng, 15);
    test_norms();
    test_layernorm_decomposed();
    test_gates();
    test_products();
    test_attention();
    test_divisor_and_refusals();
    return t_done("test_lrp_transformer");
}
