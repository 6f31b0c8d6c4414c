/* The public explain API: a reused session gives the same bytes as a fresh one, a session of another
 * model is refused, targets resolve to max/min/given classes, and bad requests name their cause. */
#include "testutil.h"

/* Peak bytes of one sal_explain of integrated gradients with `steps` path points (chunk 0: the
 * default); the result is checked to exist. */
static size_t ig_peak(const sal_model *m, const sal_tensor *x, int steps, int64_t chunk) {
    char p[32];
    snprintf(p, sizeof p, "steps=%d", steps);
    const char *params[1] = {p};
    sal_explain_opts o = {.method = "integrated_gradients", .nparams = 1, .params = params, .chunk = chunk};
    sal_explanation *e = NULL;
    size_t base = sal_memory_in_use();
    sal_memory_reset_peak();
    CHECK_OK(sal_explain(m, x, &o, &e));
    size_t peak = sal_memory_peak() - base;
    sal_explanation_free(e);
    return peak;
}

/* The default chunk follows the model's activation size: a conv net whose rows hold about 7 MB of
 * activations and gradients runs integrated gradients in chunks of about 37 rows, so 4x the steps
 * costs no more memory, while a chunk of every step at once costs several times more. */
static void test_auto_chunk(void) {
    sal_rng r;
    sal_rng_seed(&r, 3);
    sal_model *g;
    CHECK_OK(sal_graph_create("wide-conv", &g));
    sal_tensor w = t_rand(&r, 4, (int64_t[]){16, 1, 3, 3}, 0.3f), b = t_rand(&r, 1, (int64_t[]){16}, 0.1f);
    sal_tensor w2 = t_rand(&r, 2, (int64_t[]){3, 16}, 0.3f);
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 160, 160}));
    CHECK_OK(sal_graph_add_const(g, "w", &w));
    CHECK_OK(sal_graph_add_const(g, "b", &b));
    CHECK_OK(sal_graph_add_const(g, "w2", &w2));
    sal_attr at[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3}),
                      sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    CHECK_OK(sal_graph_add_node(g, "Conv", "conv", 3, (const char *[]){"x", "w", "b"}, 1, (const char *[]){"c"}, 2, at));
    CHECK_OK(sal_graph_add_node(g, "Relu", "relu", 1, (const char *[]){"c"}, 1, (const char *[]){"a"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "GlobalAveragePool", "gap", 1, (const char *[]){"a"}, 1, (const char *[]){"p"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "Flatten", "flat", 1, (const char *[]){"p"}, 1, (const char *[]){"f"}, 0, NULL));
    sal_attr at2[1] = {sal_attr_make_int("transB", 1)};
    CHECK_OK(sal_graph_add_node(g, "Gemm", "fc", 2, (const char *[]){"f", "w2"}, 1, (const char *[]){"y"}, 1, at2));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    sal_tensor x = t_rand(&r, 4, (int64_t[]){1, 1, 160, 160}, 1.0f);
    size_t p37 = ig_peak(g, &x, 36, 0), p148 = ig_peak(g, &x, 147, 0), all = ig_peak(g, &x, 110, 111);
    CHECK(p148 < p37 + p37 / 4, "the default chunk bounds memory: %zu bytes for 148 steps, %zu for 37", p148, p37);
    CHECK(p148 * 2 < all, "the default chunk is smaller than 111 steps at once: %zu vs %zu bytes", p148, all);
    sal_tensor_free(&x);
    sal_model_free(g);
}

int main(void) {
    test_auto_chunk();
    sal_model *m, *other;
    CHECK_OK(sal_model_build("mlp", 10, 3, &m));
    CHECK_OK(sal_model_build("mlp", 10, 4, &other));
    sal_rng r;
    sal_rng_seed(&r, 9);
    sal_tensor x = t_rand(&r, 4, (int64_t[]){3, 1, 28, 28}, 0.5f);
    sal_session *s;
    CHECK_OK(sal_session_new(m, &s));
    const char *methods[] = {"gradient", "integrated_gradients", "guided_backprop"};
    for (int k = 0; k < 3; k++) {
        sal_explanation *a = NULL, *b = NULL, *c = NULL;
        sal_explain_opts o = {.method = methods[k]};
        CHECK_OK(sal_explain(m, &x, &o, &a));
        o.session = s;
        CHECK_OK(sal_explain(m, &x, &o, &b));
        CHECK_OK(sal_explain(m, &x, &o, &c)); /* second use of the same session */
        if (a && b && c) {
            size_t n = (size_t)sal_tensor_numel(sal_explanation_map(a)) * sizeof(float);
            CHECK(!memcmp(sal_explanation_map(a)->data, sal_explanation_map(b)->data, n) &&
                      !memcmp(sal_explanation_map(a)->data, sal_explanation_map(c)->data, n),
                  "%s: a reused session changed the result", methods[k]);
        }
        sal_explanation_free(a);
        sal_explanation_free(b);
        sal_explanation_free(c);
    }
    /* targets: max and min are the extremes of the model's own outputs; given classes are kept */
    sal_explanation *e = NULL;
    const sal_tensor *y;
    CHECK_OK(sal_forward(s, 1, &x, &y));
    float z[30];
    memcpy(z, y->data, sizeof z);
    for (int mode = 0; mode < 2; mode++) {
        sal_explain_opts o = {.method = "gradient", .target = mode ? SAL_TARGET_MIN : SAL_TARGET_MAX};
        CHECK_OK(sal_explain(m, &x, &o, &e));
        for (int i = 0; e && i < 3; i++) {
            int64_t t = sal_explanation_targets(e)[i];
            bool ok = true;
            for (int k = 0; k < 10; k++) ok &= mode ? z[i * 10 + t] <= z[i * 10 + k] : z[i * 10 + t] >= z[i * 10 + k];
            CHECK(ok && fabsf(sal_explanation_outputs(e)[i] - z[i * 10 + t]) < 1e-5f, "%s target of sample %d",
                  mode ? "min" : "max", i);
        }
        sal_explanation_free(e);
        e = NULL;
    }
    int64_t cls[3] = {7, 0, 4};
    sal_explain_opts o = {.method = "gradient", .target = SAL_TARGET_INDEX, .classes = cls, .nclasses = 3};
    CHECK_OK(sal_explain(m, &x, &o, &e));
    CHECK(e && sal_explanation_targets(e)[0] == 7 && sal_explanation_targets(e)[2] == 4, "given classes kept");
    sal_explanation_free(e);
    e = NULL;
    cls[1] = 10;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "out of range");
    o = (sal_explain_opts){.method = "gradient", .session = s};
    CHECK_FAILS(sal_explain(other, &x, &o, &e), SAL_ERR_ARG, "another model");
    o = (sal_explain_opts){.method = "no_such_method"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "no_such_method");
    const char *bad[] = {"steps=10"};
    o = (sal_explain_opts){.method = "gradient", .nparams = 1, .params = bad};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "no parameter 'steps'");
    CHECK(e == NULL, "failed calls return no explanation");
    sal_tensor_free(&x);
    sal_session_free(s);
    sal_model_free(m);
    sal_model_free(other);
    return t_done("test_explain_api");
}
