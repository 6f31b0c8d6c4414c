/* The decomposed LayerNorm and GELU of opset-13 exports, loaded as LayerNormalization and Gelu
 * (src/io/onnx_fuse.c), and written back decomposed by sal_model_save at such an opset:
 *   - a file with both decompositions loads with one LayerNormalization and one Gelu and no Erf,
 *     Pow or ReduceMean left; gradient and integrated gradients equal the decomposition's (built in
 *     memory, run node by node), LRP epsilon within its stabilizer, and every map (FullGrad too)
 *     that of the same graph built with the two ops;
 *   - GELU with the 0.5 applied to x first (Hugging Face's form) and x * (1 / sqrt 2) fuse too;
 *   - an intermediate read elsewhere (a graph output), a wrong constant (Div by 2, Pow 4), a mean
 *     over another axis, or a non-constant scale keep the decomposition;
 *   - the fused model saved at opset 13 holds the decomposition again (no LayerNormalization or
 *     Gelu in the file) and loads back to the same function. */
#include "testutil.h"
#include "graph/graph.h"
#include "onnx.pb-c.h"
#include "saliency.h"

static sal_rng rng;

typedef struct {
    bool gelu_half_first, gelu_mul; /* GELU's forms */
    bool d_output;                  /* the LayerNorm's centered input is also a graph output */
    float gelu_div, pow_exp;        /* the constants (sqrt 2 and 2 make the real decompositions) */
    int64_t mean_axis;              /* the LayerNorm's mean axis: -1, or 1 (the tokens: another function) */
    bool scale_input;               /* the LayerNorm's scale is a graph input, not a constant */
} variant;

static const variant k_plain = {.gelu_div = 1.41421356f, .pow_exp = 2, .mean_axis = -1};

static void node_(sal_model *g, const char *op, const char *name, const char *a, const char *b, const char *out) {
    t_node(g, op, name, b ? 2 : 1, (const char *[]){a, b}, out, 0, NULL);
}

static void mean_(sal_model *g, const char *name, const char *in, const char *out, int64_t axis) {
    sal_attr at[1] = {sal_attr_make_ints("axes", 1, &axis)};
    t_node(g, "ReduceMean", name, 1, (const char *[]){in}, out, 1, at);
}

/* x (N, 4, 6) -> MatMul + bias -> LayerNorm -> GELU -> Flatten -> Gemm (N, 3), with the LayerNorm and
 * GELU decomposed, or (ops) as LayerNormalization and Gelu nodes; the weights drawn from seed. */
static sal_model *build(const variant *v, bool ops, uint64_t seed) {
    sal_rng_seed(&rng, seed);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<fuse>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 3, (int64_t[]){-1, 4, 6}) == SAL_OK);
    float w[6 * 6], b[6], w3[3 * 24], gam[6], bet[6];
    t_randv(&rng, w, 36, 0.6f);
    t_randv(&rng, b, 6, 0.3f);
    t_randv(&rng, w3, 72, 0.4f);
    for (int i = 0; i < 6; i++) {
        gam[i] = 1.0f + 0.3f * (float)sal_rng_normal(&rng);
        bet[i] = 0.2f * (float)sal_rng_normal(&rng);
    }
    t_const(g, "W", 2, (int64_t[]){6, 6}, w);
    t_const(g, "B", 1, (int64_t[]){6}, b);
    t_const(g, "W3", 2, (int64_t[]){3, 24}, w3);
    t_const(g, "beta", 1, (int64_t[]){6}, bet);
    if (v->scale_input) SAL_ASSERT(sal_graph_add_input(g, "gamma", SAL_F32, 1, (int64_t[]){6}) == SAL_OK);
    else t_const(g, "gamma", 1, (int64_t[]){6}, gam);
    t_const(g, "two", 0, NULL, (float[]){v->pow_exp});
    t_const(g, "eps", 0, NULL, (float[]){1e-5f});
    t_const(g, "rt2", 0, NULL, (float[]){v->gelu_mul ? 1.0f / v->gelu_div : v->gelu_div});
    t_const(g, "one", 0, NULL, (float[]){1});
    t_const(g, "half", 0, NULL, (float[]){0.5f});
    node_(g, "MatMul", "fc", "x", "W", "xw");
    node_(g, "Add", "fc.bias", "xw", "B", "h");
    if (ops) {
        sal_attr eps[1] = {sal_attr_make_float("epsilon", 1e-5f)};
        t_node(g, "LayerNormalization", "ln", 3, (const char *[]){"h", "gamma", "beta"}, "y", 1, eps);
        node_(g, "Gelu", "gelu", "y", NULL, "a");
    } else {
        mean_(g, "ln/ReduceMean", "h", "m", v->mean_axis);
        node_(g, "Sub", "ln/Sub", "h", "m", "d");
        node_(g, "Pow", "ln/Pow", "d", "two", "p");
        mean_(g, "ln/ReduceMean_1", "p", "var", v->mean_axis);
        node_(g, "Add", "ln/Add", "var", "eps", "ve");
        node_(g, "Sqrt", "ln/Sqrt", "ve", NULL, "sd");
        node_(g, "Div", "ln/Div", "d", "sd", "nr");
        node_(g, "Mul", "ln/Mul", "nr", "gamma", "sc");
        node_(g, "Add", "ln/Add_1", "beta", "sc", "y"); /* the bias first: either order is matched */
        node_(g, v->gelu_mul ? "Mul" : "Div", "gelu/Div", "y", "rt2", "g1");
        node_(g, "Erf", "gelu/Erf", "g1", NULL, "g2");
        node_(g, "Add", "gelu/Add", "one", "g2", "g3");
        if (v->gelu_half_first) {
            node_(g, "Mul", "gelu/Mul", "half", "y", "g4");
            node_(g, "Mul", "gelu/Mul_1", "g4", "g3", "a");
        } else {
            node_(g, "Mul", "gelu/Mul", "y", "g3", "g4");
            node_(g, "Mul", "gelu/Mul_1", "g4", "half", "a");
        }
    }
    t_node(g, "Flatten", "flat", 1, (const char *[]){"a"}, "af", 0, NULL);
    sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", "head", 2, (const char *[]){"af", "W3"}, "out", 1, tb);
    SAL_ASSERT(sal_graph_add_output(g, "out") == SAL_OK);
    if (v->d_output) SAL_ASSERT(sal_graph_add_output(g, "d") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    return g;
}

static int count_op(const sal_model *m, const char *op) {
    int k = 0;
    for (int i = 0; i < m->nnode; i++) k += !strcmp(m->node[i].op_type, op);
    return k;
}

/* The op types of a saved file, counted: how many nodes are `op`. */
static int file_count_op(const char *path, const char *op) {
    FILE *f = fopen(path, "rb");
    SAL_ASSERT(f);
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    SAL_ASSERT(n < sizeof buf);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, n, buf);
    SAL_ASSERT(mp && mp->graph);
    int k = 0;
    for (size_t i = 0; i < mp->graph->n_node; i++) k += !strcmp(mp->graph->node[i]->op_type, op);
    onnx__model_proto__free_unpacked(mp, NULL);
    return k;
}

static sal_model *save_load(const sal_model *m, const char *name) {
    sal_model *r = NULL;
    CHECK_OK(sal_model_save(m, t_tmp(name)));
    CHECK_OK(sal_model_load(t_tmp(name), &r));
    SAL_ASSERT(r);
    return r;
}

/* max |a - b| over the maps of `method` on both models, relative to the largest |a| */
static double map_diff(const sal_model *a, const sal_model *b, const char *method, const sal_tensor *x) {
    sal_explain_opts o = {.method = method, .target = SAL_TARGET_INDEX, .classes = (int64_t[]){1}, .nclasses = 1};
    sal_explanation *ea = NULL, *eb = NULL;
    sal_status sa = sal_explain(a, x, &o, &ea), sb = sal_explain(b, x, &o, &eb);
    CHECK(sa == SAL_OK && sb == SAL_OK, "%s: %s", method, sal_last_error());
    double d = 0, big = 0;
    if (ea && eb) {
        const float *p = sal_f32(sal_explanation_map(ea)), *q = sal_f32(sal_explanation_map(eb));
        for (int64_t i = 0; i < sal_tensor_numel(x); i++) {
            d = fmax(d, fabs((double)p[i] - q[i]));
            big = fmax(big, fabs((double)p[i]));
        }
    }
    sal_explanation_free(ea);
    sal_explanation_free(eb);
    return big > 0 ? d / big : (sa == SAL_OK && sb == SAL_OK ? d : 1);
}

/* lrp: whether LRP has rules for the decomposition (it finds no gate in the half-first form) */
static void test_fused(const char *what, const variant *v, bool lrp) {
    sal_model *m0 = build(v, false, 11), *mh = build(v, true, 11), *m1 = save_load(m0, "fuse.onnx");
    CHECK(count_op(m1, "LayerNormalization") == 1 && count_op(m1, "Gelu") == 1 && !count_op(m1, "Erf") &&
              !count_op(m1, "Pow") && !count_op(m1, "ReduceMean"),
          "%s: %d LayerNormalization, %d Gelu, %d Erf, %d Pow, %d ReduceMean after loading", what,
          count_op(m1, "LayerNormalization"), count_op(m1, "Gelu"), count_op(m1, "Erf"), count_op(m1, "Pow"),
          count_op(m1, "ReduceMean"));
    CHECK(m1->nnode == m0->nnode - 12, "%s: %d nodes from %d", what, m1->nnode, m0->nnode);
    sal_tensor x = t_rand(&rng, 3, (int64_t[]){2, 4, 6}, 1.5f);
    /* the same function as the decomposition; the same maps as the ops built by hand. LRP holds the
     * deviation constant in both, but places its stabilizer differently; FullGrad takes the
     * decomposition's constants (epsilon, GELU's 1) for biases, the op its offset only. */
    static const char *const methods[] = {"gradient", "integrated_gradients", "lrp_epsilon", "fullgrad"};
    for (int k = 0; k < 4; k++) {
        double d = map_diff(mh, m1, methods[k], &x);
        CHECK(d < 2e-5, "%s, %s: the fused model's map differs from the ops' by %g", what, methods[k], d);
        if (k == 3 || (k == 2 && !lrp)) continue;
        d = map_diff(m0, m1, methods[k], &x);
        CHECK(d < (k == 2 ? 1e-3 : 2e-5), "%s, %s: the fused model's map differs from the decomposition's by %g", what,
              methods[k], d);
    }
    /* saved at opset 13 again: the decomposition comes back, and loads to the same function */
    sal_model *m2 = save_load(m1, "fuse2.onnx");
    CHECK(!file_count_op(t_tmp("fuse2.onnx"), "LayerNormalization") && !file_count_op(t_tmp("fuse2.onnx"), "Gelu") &&
              file_count_op(t_tmp("fuse2.onnx"), "Erf") == 1 && file_count_op(t_tmp("fuse2.onnx"), "ReduceMean") == 2,
          "%s: the model saved at opset 13 holds %d LayerNormalization, %d Gelu, %d Erf, %d ReduceMean", what,
          file_count_op(t_tmp("fuse2.onnx"), "LayerNormalization"), file_count_op(t_tmp("fuse2.onnx"), "Gelu"),
          file_count_op(t_tmp("fuse2.onnx"), "Erf"), file_count_op(t_tmp("fuse2.onnx"), "ReduceMean"));
    CHECK(count_op(m2, "LayerNormalization") == 1 && count_op(m2, "Gelu") == 1, "%s: reloaded, not fused again", what);
    double d = map_diff(m0, m2, "gradient", &x);
    CHECK(d < 2e-5, "%s: the model saved decomposed and loaded again differs by %g", what, d);
    sal_tensor_free(&x);
    sal_model_free(m0);
    sal_model_free(mh);
    sal_model_free(m1);
    sal_model_free(m2);
}

/* The variant keeps its decomposition (ln: of the LayerNorm, else of the GELU) and its function. */
static void test_kept(const char *what, const variant *v, bool ln) {
    sal_model *m0 = build(v, false, 12), *m1 = save_load(m0, "kept.onnx");
    int nln = count_op(m1, "LayerNormalization"), ngelu = count_op(m1, "Gelu");
    CHECK(ln ? nln == 0 && count_op(m1, "Pow") == 1 && ngelu == 1 : ngelu == 0 && count_op(m1, "Erf") == 1 && nln == 1,
          "%s: %d LayerNormalization and %d Gelu after loading", what, nln, ngelu);
    if (!v->scale_input) {
        sal_tensor x = t_rand(&rng, 3, (int64_t[]){2, 4, 6}, 1.5f);
        double d = map_diff(m0, m1, "gradient", &x);
        CHECK(d < 2e-5, "%s: the loaded model's gradient differs by %g", what, d);
        sal_tensor_free(&x);
    }
    sal_model_free(m0);
    sal_model_free(m1);
}

int main(void) {
    t_scratch_make("fuse");
    test_fused("as PyTorch exports them", &k_plain, true);
    variant v = k_plain;
    v.gelu_half_first = true;
    test_fused("GELU with the half first", &v, false);
    v = k_plain;
    v.gelu_mul = true;
    test_fused("GELU times 1/sqrt 2", &v, true);
    v = k_plain;
    v.d_output = true;
    test_kept("the centered input also an output", &v, true);
    v = k_plain;
    v.pow_exp = 4;
    test_kept("Pow 4", &v, true);
    v = k_plain;
    v.mean_axis = 1;
    test_kept("the mean over axis 1", &v, true);
    v = k_plain;
    v.scale_input = true;
    test_kept("a scale that is an input", &v, true);
    v = k_plain;
    v.gelu_div = 2.0f;
    test_kept("Div by 2", &v, false);
    t_scratch_remove();
    return t_done("test_onnx_fuse");
}
