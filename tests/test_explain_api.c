/* The public explain API: a reused session gives the same bytes as a fresh one (DeepLIFT's kept
 * reference pass too, against a new reference and new weights), a session of another model is
 * refused, targets resolve to max/min/given classes, and bad requests name their cause. */
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

/* The default chunk follows the model's activation size: a conv net whose rows hold about 13 MB of
 * activations and gradients runs integrated gradients in chunks of about 38 rows, so 4x the steps
 * costs no more memory, while a chunk of every step at once costs several times more. */
static void test_auto_chunk(void) {
    sal_rng r;
    sal_rng_seed(&r, 3);
    sal_model *g;
    CHECK_OK(sal_graph_create("wide-conv", &g));
    sal_tensor w = t_rand(&r, 4, (int64_t[]){32, 1, 3, 3}, 0.3f), b = t_rand(&r, 1, (int64_t[]){32}, 0.1f);
    sal_tensor w2 = t_rand(&r, 2, (int64_t[]){3, 32}, 0.3f);
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
    /* chunks of fewer rows than samples: neither the targets' pass over all 8 (3.3 MB a row at the
     * convolution) nor the front's values of every sample stay beside the chunks */
    sal_tensor x8 = t_rand(&r, 4, (int64_t[]){8, 1, 160, 160}, 1.0f);
    size_t p1 = ig_peak(g, &x, 6, 1), p8 = ig_peak(g, &x8, 6, 1);
    CHECK(p8 < p1 + p1 / 2, "chunks of one row: %zu bytes for 8 samples, %zu for 1", p8, p1);
    /* on a reused session, the second call's peak is the first's: the chunks' buffers do not stay
     * beside the targets' pass over 8 rows */
    sal_session *s;
    CHECK_OK(sal_session_new(g, &s));
    const char *params[1] = {"steps=6"};
    sal_explain_opts o = {.method = "integrated_gradients", .nparams = 1, .params = params, .chunk = 1, .session = s};
    size_t base = sal_memory_in_use(), peak[2];
    for (int k = 0; k < 2; k++) {
        sal_explanation *e = NULL;
        sal_memory_reset_peak();
        CHECK_OK(sal_explain(g, &x8, &o, &e));
        sal_explanation_free(e);
        peak[k] = sal_memory_peak() - base;
    }
    CHECK(peak[1] < peak[0] + peak[0] / 10, "a reused session: %zu bytes at the second call, %zu at the first", peak[1],
          peak[0]);
    sal_session_free(s);
    sal_tensor_free(&x8);
    sal_tensor_free(&x);
    sal_model_free(g);
}

/* A model whose output already is a probability: y = Softmax(W x) (or Sigmoid(W x), or logits
 * z = W x). With `prob` the explained value is y_t itself and the gradient is the closed form
 * W^T J e_t with J the Softmax's (or Sigmoid's) Jacobian, not that of a second softmax over y;
 * LRP starts its relevance at y_t; the faithfulness audit scores y_t. */
static void test_probability_outputs(void) {
    enum { D = 5, K = 3 };
    const float W[K * D] = {0.5f, -1, 0.3f, 0.8f, -0.2f, -0.7f, 0.4f, 0.9f, -0.1f, 0.6f, 0.2f, 0.1f, -0.5f, 0.7f, -0.9f};
    const float xv[D] = {0.3f, 0.9f, -0.4f, 0.2f, 0.6f};
    const char *ops[3] = {NULL, "Softmax", "Sigmoid"};
    const sal_output_kind kinds[3] = {SAL_OUTPUT_SCORES, SAL_OUTPUT_SOFTMAX, SAL_OUTPUT_SIGMOID};
    sal_tensor x = t_tensor_of(2, (int64_t[]){1, D}, xv);
    for (int v = 0; v < 3; v++) {
        sal_model *g;
        CHECK_OK(sal_graph_create("prob", &g));
        CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, D}));
        t_const(g, "W", 2, (int64_t[]){K, D}, W);
        sal_attr at[1] = {sal_attr_make_int("transB", 1)};
        t_node(g, "Gemm", "fc", 2, (const char *[]){"x", "W"}, v ? "z" : "y", 1, at);
        if (v) t_node(g, ops[v], "out", 1, (const char *[]){"z"}, "y", 0, NULL);
        g = t_finish(g, "y");
        CHECK(sal_model_output_kind(g) == kinds[v], "output kind %d, want %d", (int)sal_model_output_kind(g), (int)kinds[v]);
        /* closed forms in double: z, the probabilities p, dp_t/dx */
        double z[K], p[K], mx = -1e300, sum = 0;
        for (int k = 0; k < K; k++) {
            z[k] = 0;
            for (int d = 0; d < D; d++) z[k] += (double)W[k * D + d] * xv[d];
            mx = fmax(mx, z[k]);
        }
        for (int k = 0; k < K; k++) sum += exp(z[k] - mx);
        for (int k = 0; k < K; k++) p[k] = v == 2 ? 1 / (1 + exp(-z[k])) : exp(z[k] - mx) / sum;
        int64_t t = 1;
        double want_g[D];
        for (int d = 0; d < D; d++) {
            want_g[d] = 0;
            for (int k = 0; k < K; k++) {
                double dpdz = v == 2 ? (k == t) * p[t] * (1 - p[t]) : p[t] * ((k == t) - p[k]);
                want_g[d] += dpdz * W[k * D + d];
            }
        }
        sal_explain_opts o = {.method = "gradient", .prob = 1, .target = SAL_TARGET_INDEX, .classes = &t, .nclasses = 1};
        sal_explanation *e = NULL;
        CHECK_OK(sal_explain(g, &x, &o, &e));
        if (e) {
            CHECK(fabs(sal_explanation_outputs(e)[0] - p[t]) < 1e-6, "model %d: prob value %g, want %g", v,
                  (double)sal_explanation_outputs(e)[0], p[t]);
            double err = 0;
            for (int d = 0; d < D; d++) err = fmax(err, fabs(sal_f32(sal_explanation_map(e))[d] - want_g[d]));
            CHECK(err < 1e-6, "model %d: gradient of the probability off by %g", v, err);
            char *js = NULL;
            CHECK_OK(sal_explanation_json(e, &js));
            CHECK(js && strstr(js, v ? "\"output\": \"probability (the model's own output)\"" : "\"output\": \"probability\""),
                  "model %d JSON:\n%s", v, js ? js : "");
            free(js);
        }
        sal_explanation_free(e);
        /* LRP starts from the explained value: the probability itself, and says it is defined on logits */
        o.method = "lrp_0";
        CHECK_OK(sal_explain(g, &x, &o, &e));
        if (e) {
            CHECK(fabs(sal_explanation_outputs(e)[0] - p[t]) < 1e-6, "model %d: LRP's prob seed %g, want %g", v,
                  (double)sal_explanation_outputs(e)[0], p[t]);
            char *js = NULL;
            CHECK_OK(sal_explanation_json(e, &js));
            CHECK(js && (strstr(js, "\"logits_note\"") != NULL) == (v != 0), "model %d: logits note", v);
            free(js);
        }
        sal_explanation_free(e);
        sal_model_free(g);
    }
    sal_tensor_free(&x);
}

/* DeepLIFT keeps its reference pass's session with the caller's session: a second call against the
 * same reference reuses its values, and a new reference or new weights must not. Each call on the
 * reused session against the same call on a fresh one. */
static void test_reference_reuse(void) {
    sal_model *m;
    CHECK_OK(sal_model_build("mlp", 10, 3, &m));
    sal_rng r;
    sal_rng_seed(&r, 5);
    sal_tensor x = t_rand(&r, 4, (int64_t[]){2, 1, 28, 28}, 0.5f);
    sal_session *s;
    CHECK_OK(sal_session_new(m, &s));
    const char *zero[] = {"baseline=zero"}, *black[] = {"baseline=black"};
    const char *const *steps[] = {zero, zero, black, black};
    float prev[2 * 784];
    for (int k = 0; k < 4; k++) {
        if (k == 3) { /* new weights: the reference's pass must run again */
            for (int v = 0; v < m->nval; v++)
                if (m->val[v].kind == SAL_VAL_CONST && m->val[v].t.ndim == 2)
                    for (int64_t i = 0; i < sal_tensor_numel(&m->val[v].t); i++) sal_f32(&m->val[v].t)[i] *= 1.5f;
            sal_model_weights_changed(m);
        }
        sal_explanation *a = NULL, *b = NULL;
        sal_explain_opts o = {.method = "deeplift", .nparams = 1, .params = steps[k]};
        CHECK_OK(sal_explain(m, &x, &o, &a));
        o.session = s;
        CHECK_OK(sal_explain(m, &x, &o, &b));
        if (a && b) {
            const float *fa = sal_f32(sal_explanation_map(a)), *fb = sal_f32(sal_explanation_map(b));
            CHECK(!memcmp(fa, fb, sizeof prev), "deeplift %s, call %d: the kept reference pass changed the result",
                  steps[k][0], k);
            CHECK((k == 1) == !memcmp(fa, prev, sizeof prev), "deeplift call %d: %s the call before", k,
                  k == 1 ? "differs from" : "equals");
            memcpy(prev, fa, sizeof prev);
        }
        sal_explanation_free(a);
        sal_explanation_free(b);
    }
    sal_tensor_free(&x);
    sal_session_free(s);
    sal_model_free(m);
}

int main(void) {
    test_auto_chunk();
    test_probability_outputs();
    test_reference_reuse();
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
