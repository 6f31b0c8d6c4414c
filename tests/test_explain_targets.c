/* What is explained, and how token models are read (src/methods/target.c, layer.c, rollout.c):
 *   - region targets on a dense output: the gradient of sum(y) and of sum(M * y) equals the input
 *     gradient of the same seed (sal_input_gradient), for masks of every broadcast form; a mask of
 *     ones over the whole map equals the sum; the explained value is the weighted sum; LRP-0
 *     conserves it, integrated gradients completes it, DeepLIFT completes it, SmoothGrad passes the
 *     mask to its inner method, occlusion measures it;
 *   - output_name picks another output; targets that do not fit fail with one line naming the
 *     argument;
 *   - tokens: the grid found for (N, T, C) layers; Grad-CAM on a token layer against its closed form
 *     on the grid; layer=auto skips token layers whose grid no gradient reaches;
 *   - attention rollout against its definition on a two-layer attention model; refusals. */
#include "testutil.h"
#include "methods/layer.h"
#include "saliency.h"

static sal_rng rng;

static void conv(sal_model *g, const char *name, const char *in, const char *out, int M, int C, int k) {
    char wn[64], bn[64];
    float w[512], b[16];
    snprintf(wn, sizeof wn, "%s.W", name);
    snprintf(bn, sizeof bn, "%s.b", name);
    t_randv(&rng, w, M * C * k * k, 0.5f);
    t_randv(&rng, b, M, 0.1f);
    t_const(g, wn, 4, (int64_t[]){M, C, k, k}, w);
    t_const(g, bn, 1, (int64_t[]){M}, b);
    sal_attr at[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){k / 2, k / 2, k / 2, k / 2})};
    t_node(g, "Conv", name, 3, (const char *[]){in, wn, bn}, out, 1, at);
}

/* x (N, 1, 4, 4) -> conv 3x3 (3 ch) -> relu -> conv 1x1 (2 ch) = "seg" (N, 2, 4, 4); and a class
 * head "cls" (N, 2) = GlobalAveragePool(seg) flattened. */
static sal_model *dense_net(void) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<dense>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 4, 4}) == SAL_OK);
    conv(g, "c1", "x", "h", 3, 1, 3);
    t_node(g, "Relu", "r1", 1, (const char *[]){"h"}, "hr", 0, NULL);
    conv(g, "c2", "hr", "seg", 2, 3, 1);
    t_node(g, "GlobalAveragePool", "gap", 1, (const char *[]){"seg"}, "p", 0, NULL);
    sal_attr at[1] = {sal_attr_make_int("axis", 1)};
    t_node(g, "Flatten", "flat", 1, (const char *[]){"p"}, "cls", 1, at);
    SAL_ASSERT(sal_graph_add_output(g, "cls") == SAL_OK);
    return t_finish(g, "seg");
}

static sal_explanation *explain(const sal_model *m, const sal_tensor *x, const char *method, sal_target_mode t,
                                const sal_tensor *mask, const char *out, int np, const char **params) {
    sal_explain_opts o = {.method = method, .target = t, .target_mask = mask, .output_name = out, .nparams = np,
                          .params = params};
    sal_explanation *e = NULL;
    sal_status st = sal_explain(m, x, &o, &e);
    CHECK(st == SAL_OK, "%s: %s", method, sal_last_error());
    return e;
}

/* The input gradient of sum(seed * seg), by the session's own backward pass. */
static void grad_of(const sal_model *m, const sal_tensor *x, const sal_tensor *seed, sal_tensor *g) {
    sal_session *s = NULL;
    const sal_tensor *outs[2], *gr[1];
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    SAL_ASSERT(sal_forward(s, 1, x, outs) == SAL_OK);
    /* seg is output 1: backpropagate from it through the walker directly */
    int v = sal_graph_find(m, "seg");
    SAL_ASSERT(sal_exec_backward(s, 1, &v, seed, NULL) == SAL_OK);
    (void)gr;
    SAL_ASSERT(sal_tensor_copy(g, &s->grad[m->input[0]]) == SAL_OK);
    sal_session_free(s);
}

static double diff(const sal_tensor *a, const sal_tensor *b) {
    double d = 0;
    for (int64_t i = 0, n = sal_tensor_numel(a); i < n; i++) d = fmax(d, fabs((double)sal_f32(a)[i] - sal_f32(b)[i]));
    return d;
}

static void test_region_targets(void) {
    sal_model *m = dense_net();
    int64_t N = 2;
    sal_tensor x = t_rand(&rng, 4, (int64_t[]){N, 1, 4, 4}, 1.0f);
    sal_tensor seg = {0};
    {
        sal_session *s = NULL;
        const sal_tensor *outs[2];
        SAL_ASSERT(sal_session_new(m, &s) == SAL_OK && sal_forward(s, 1, &x, outs) == SAL_OK);
        SAL_ASSERT(sal_tensor_copy(&seg, sal_session_value(s, "seg")) == SAL_OK);
        sal_session_free(s);
    }
    /* masks of every broadcast form, and the seeds they stand for over seg (2, 2, 4, 4) */
    float full[64], chan[32], plane[16];
    t_randv(&rng, full, 64, 1.0f);
    t_randv(&rng, chan, 32, 1.0f);
    t_randv(&rng, plane, 16, 1.0f);
    struct {
        const char *what;
        int nd;
        int64_t dim[4];
        const float *v;
    } forms[] = {
        {"(N, K, H, W)", 4, {2, 2, 4, 4}, full},
        {"(K, H, W)", 3, {2, 4, 4}, chan},
        {"(1, K, H, W)", 4, {1, 2, 4, 4}, chan},
        {"(H, W)", 2, {4, 4}, plane},
        {"(K, 1, 1)", 3, {2, 1, 1}, (float[]){0.5f, -2.0f}},
    };
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        sal_tensor M = t_tensor_of(forms[f].nd, forms[f].dim, forms[f].v), seed = t_tensor_of(4, seg.dim, NULL), g = {0};
        double want[2] = {0, 0};
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < 2; k++)
                for (int64_t p = 0; p < 16; p++) {
                    int64_t e = (n * 2 + k) * 16 + p;
                    float w = f == 0 ? full[e] : f <= 2 ? chan[k * 16 + p] : f == 3 ? plane[p] : forms[f].v[k];
                    sal_f32(&seed)[e] = w;
                    want[n] += (double)w * sal_f32(&seg)[e];
                }
        grad_of(m, &x, &seed, &g);
        sal_explanation *e = explain(m, &x, "gradient", SAL_TARGET_MASK, &M, "seg", 0, NULL);
        if (e) {
            CHECK(diff(sal_explanation_map(e), &g) < 1e-5, "mask %s: gradient differs from the seeded backward pass by %g",
                  forms[f].what, diff(sal_explanation_map(e), &g));
            for (int n = 0; n < N; n++)
                CHECK(fabs(sal_explanation_outputs(e)[n] - want[n]) < 1e-4 * (1 + fabs(want[n])),
                      "mask %s: explained value %g, sum(M y) %g", forms[f].what, sal_explanation_outputs(e)[n], want[n]);
            CHECK(sal_explanation_targets(e)[0] == -1, "region targets read -1");
        }
        sal_explanation_free(e);
        sal_tensor_free(&M);
        sal_tensor_free(&seed);
        sal_tensor_free(&g);
    }
    /* a mask of ones over the whole map is the sum */
    sal_tensor ones = t_tensor_of(3, (int64_t[]){2, 4, 4}, NULL);
    for (int i = 0; i < 32; i++) sal_f32(&ones)[i] = 1;
    const char *methods[] = {"gradient", "integrated_gradients", "lrp_epsilon_plus", "occlusion", "gradcam", "deeplift"};
    for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
        sal_explanation *a = explain(m, &x, methods[k], SAL_TARGET_SUM, NULL, "seg", 0, NULL);
        sal_explanation *b = explain(m, &x, methods[k], SAL_TARGET_MASK, &ones, "seg", 0, NULL);
        if (a && b)
            CHECK(!memcmp(sal_explanation_map(a)->data, sal_explanation_map(b)->data, 4 * (size_t)sal_tensor_numel(&x)),
                  "%s: a mask of ones over the whole map differs from --target sum", methods[k]);
        if (a && !strcmp(methods[k], "integrated_gradients"))
            CHECK(sal_explanation_metric(a, "completeness_delta") < 0.05 * (1 + fabs(sal_explanation_outputs(a)[0])),
                  "IG on the sum: completeness delta %g", sal_explanation_metric(a, "completeness_delta"));
        if (a && !strcmp(methods[k], "deeplift"))
            CHECK(sal_explanation_metric(a, "completeness_rel") < 1e-4, "DeepLIFT on the sum: completeness %g",
                  sal_explanation_metric(a, "completeness_rel"));
        if (a && !strcmp(methods[k], "lrp_epsilon_plus")) { /* LRP-0 conserves what reaches it from the biases' shares */
            char *js = NULL;
            CHECK(sal_explanation_json(a, &js) == SAL_OK && strstr(js, "\"target\": \"sum\"") &&
                      strstr(js, "\"output_name\": \"seg\""), "JSON: %s", js ? js : "");
            free(js);
        }
        sal_explanation_free(a);
        sal_explanation_free(b);
    }
    /* smoothgrad hands the mask to its inner method: one noiseless sample is the gradient */
    sal_tensor M = t_tensor_of(3, (int64_t[]){2, 4, 4}, chan);
    const char *sp[] = {"samples=1", "noise=0"};
    sal_explanation *a = explain(m, &x, "smoothgrad", SAL_TARGET_MASK, &M, "seg", 2, sp);
    sal_explanation *b = explain(m, &x, "gradient", SAL_TARGET_MASK, &M, "seg", 0, NULL);
    if (a && b) CHECK(diff(sal_explanation_map(a), sal_explanation_map(b)) < 1e-6, "smoothgrad lost the mask");
    sal_explanation_free(a);
    sal_explanation_free(b);
    /* output_name: the class head, with class targets */
    a = explain(m, &x, "gradient", SAL_TARGET_MAX, NULL, "cls", 0, NULL);
    b = explain(m, &x, "gradient", SAL_TARGET_MAX, NULL, NULL, 0, NULL);
    if (a && b) CHECK(!memcmp(sal_explanation_map(a)->data, sal_explanation_map(b)->data, 4 * 32), "output 'cls' is the first");
    sal_explanation_free(a);
    sal_explanation_free(b);

    /* targets that do not fit: one line naming the argument */
    sal_explain_opts o = {.method = "gradient", .output_name = "seg"};
    sal_explanation *e = NULL;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_SHAPE, "target max: output 'seg' of <dense> has shape (2,2,4,4)");
    o.target = SAL_TARGET_INDEX, o.classes = (int64_t[]){1}, o.nclasses = 1;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_SHAPE, "--target sum, --target-mask");
    o.output_name = NULL, o.classes = (int64_t[]){2};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "target class 2 is out of range of output 'cls'");
    o.output_name = "nope";
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "output name 'nope' is not an output of <dense> (outputs: 'cls', 'seg')");
    sal_tensor bad = t_tensor_of(2, (int64_t[]){3, 3}, NULL), zero = t_tensor_of(2, (int64_t[]){4, 4}, NULL);
    o = (sal_explain_opts){.method = "gradient", .output_name = "seg", .target = SAL_TARGET_MASK, .target_mask = &bad};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_SHAPE, "target mask of shape (3,3) does not fit output 'seg' of shape (2,2,4,4)");
    o.target_mask = &zero;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "target mask is zero everywhere");
    o.target_mask = NULL;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "target mask: none given");
    o.target = SAL_TARGET_SUM, o.target_mask = &bad;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "target mask given, but the target mode is not SAL_TARGET_MASK");
    o = (sal_explain_opts){.method = "gradient", .output_name = "seg", .target = SAL_TARGET_SUM, .prob = 1};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "target sum: probabilities are of classes");
    sal_tensor_free(&bad);
    sal_tensor_free(&zero);
    sal_tensor_free(&M);
    sal_tensor_free(&ones);
    sal_tensor_free(&seg);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- token layers ---- */

static void matmul_c(sal_model *g, const char *name, const char *in, const char *out, int K, int D, float *w) {
    char wn[64];
    snprintf(wn, sizeof wn, "%s.W", name);
    t_randv(&rng, w, K * D, 0.6f);
    t_const(g, wn, 2, (int64_t[]){K, D}, w);
    t_node(g, "MatMul", name, 2, (const char *[]){in, wn}, out, 0, NULL);
}

/* x (N, 1, 4, 4) -> dense -> "tok" (N, 5, 4): a class token and a 2x2 grid of 4 channels */
static void tokens_in(sal_model *g) {
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 4, 4}) == SAL_OK);
    sal_attr at[1] = {sal_attr_make_int("axis", 1)};
    t_node(g, "Flatten", "fx", 1, (const char *[]){"x"}, "xf", 1, at);
    float w[320];
    t_randv(&rng, w, 320, 0.4f);
    t_const(g, "emb.W", 2, (int64_t[]){20, 16}, w);
    sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", "emb", 2, (const char *[]){"xf", "emb.W"}, "t0", 1, tb);
    sal_tensor sh = {0};
    SAL_ASSERT(sal_tensor_alloc(&sh, SAL_I64, 1, (int64_t[]){3}) == SAL_OK);
    int64_t *p = sh.data;
    p[0] = -1, p[1] = 5, p[2] = 4;
    SAL_ASSERT(sal_graph_add_const(g, "sh", &sh) == SAL_OK);
    t_node(g, "Reshape", "rs", 2, (const char *[]){"t0", "sh"}, "tok", 0, NULL);
}

/* the class token of v (N, 5, 4) into a 3-class head */
static void cls_head(sal_model *g, const char *v, float *wo) {
    sal_tensor i0 = {0};
    SAL_ASSERT(sal_tensor_alloc(&i0, SAL_I64, 0, NULL) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, "i0", &i0) == SAL_OK);
    sal_attr ax[1] = {sal_attr_make_int("axis", 1)};
    t_node(g, "Gather", "cls", 2, (const char *[]){v, "i0"}, "c", 1, ax);
    t_randv(&rng, wo, 12, 0.5f);
    t_const(g, "head.W", 2, (int64_t[]){3, 4}, wo);
    sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", "head", 2, (const char *[]){"c", "head.W"}, "out", 1, tb);
}

static void test_tokens(void) {
    /* the grid of (N, T, C) layers */
    sal_tensor x = t_rand(&rng, 4, (int64_t[]){2, 1, 4, 4}, 1.0f), xw = t_rand(&rng, 4, (int64_t[]){1, 3, 32, 64}, 1.0f);
    sal_method meth = {.name = "gradcam"};
    sal_xctx c = {.meth = &meth, .x = &x};
    struct {
        const sal_tensor *x;
        int64_t T;
        const char *spec;
        bool on;
        int64_t prefix, h, w;
    } cases[] = {
        {&x, 5, "auto", true, 1, 2, 2},   {&x, 4, "auto", true, 0, 2, 2},  {&x, 6, "auto", true, 2, 2, 2},
        {&x, 3, "auto", false, 0, 0, 0},  {&x, 5, "none", false, 0, 0, 0}, {&x, 10, "3x3", true, 1, 3, 3},
        {&xw, 34, "auto", true, 2, 4, 8}, {&xw, 33, "auto", true, 1, 4, 8}, {&x, 197, "auto", true, 1, 14, 14},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        c.x = cases[k].x;
        sal_tensor A = {.dtype = SAL_F32, .ndim = 3, .dim = {cases[k].x->dim[0], cases[k].T, 4}};
        sal_tokens t;
        CHECK_OK(sal_tokens_of(&c, cases[k].spec, "L", &A, &t));
        CHECK(t.on == cases[k].on && (!t.on || (t.prefix == cases[k].prefix && t.h == cases[k].h && t.w == cases[k].w)),
              "tokens=%s on T = %lld: on %d prefix %lld grid %lldx%lld", cases[k].spec, (long long)cases[k].T, t.on,
              (long long)t.prefix, (long long)t.h, (long long)t.w);
    }
    c.x = &x;
    sal_tensor A = {.dtype = SAL_F32, .ndim = 3, .dim = {2, 5, 4}};
    sal_tokens t;
    CHECK_FAILS(sal_tokens_of(&c, "3x3", "L", &A, &t), SAL_ERR_SHAPE, "layer 'L' has shape (2,5,4): tokens=3x3 needs");
    CHECK_FAILS(sal_tokens_of(&c, "3by3", "L", &A, &t), SAL_ERR_ARG, "tokens=3by3 must be auto, none or HxW");

    /* Grad-CAM on a token layer: tok -> MatMul (channels) "mix" -> relu -> flatten -> head */
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<tokens>", &g) == SAL_OK);
    tokens_in(g);
    float wc[16], wo[60];
    matmul_c(g, "mix", "tok", "tok1", 4, 4, wc);
    t_node(g, "Relu", "r", 1, (const char *[]){"tok1"}, "tr", 0, NULL);
    sal_attr at[1] = {sal_attr_make_int("axis", 1)};
    t_node(g, "Flatten", "ft", 1, (const char *[]){"tr"}, "f", 1, at);
    t_randv(&rng, wo, 60, 0.5f);
    t_const(g, "head.W", 2, (int64_t[]){3, 20}, wo);
    sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", "head", 2, (const char *[]){"f", "head.W"}, "out", 1, tb);
    sal_model *m = t_finish(g, "out");
    const char *pl[] = {"layer=mix", "upsample=none"};
    sal_explanation *e = NULL;
    sal_explain_opts o = {.method = "gradcam", .target = SAL_TARGET_INDEX, .classes = (int64_t[]){1}, .nclasses = 1,
                          .nparams = 2, .params = pl};
    CHECK_OK(sal_explain(m, &x, &o, &e));
    if (e) {
        const sal_tensor *L = sal_explanation_layer_map(e);
        CHECK(L && L->ndim == 4 && L->dim[1] == 1 && L->dim[2] == 2 && L->dim[3] == 2, "token Grad-CAM: not a 2x2 map");
        sal_session *s = NULL;
        const sal_tensor *outs[1];
        SAL_ASSERT(sal_session_new(m, &s) == SAL_OK && sal_forward(s, 1, &x, outs) == SAL_OK);
        const float *a = sal_f32(sal_session_value(s, "tok1"));
        double worst = 0;
        for (int n = 0; n < 2 && L; n++) {
            double w[4] = {0}; /* mean over the grid of dF/dA = head.W[1] where A > 0 */
            for (int t1 = 1; t1 < 5; t1++)
                for (int ch = 0; ch < 4; ch++)
                    w[ch] += (a[(n * 5 + t1) * 4 + ch] > 0 ? wo[20 + t1 * 4 + ch] : 0) / 4.0;
            for (int p = 0; p < 4; p++) {
                double v = 0;
                for (int ch = 0; ch < 4; ch++) v += w[ch] * a[(n * 5 + 1 + p) * 4 + ch];
                worst = fmax(worst, fabs(fmax(v, 0) - sal_f32(L)[n * 4 + p]));
            }
        }
        CHECK(worst < 1e-5, "token Grad-CAM differs from its closed form by %g", worst);
        sal_session_free(s);
    }
    sal_explanation_free(e);
    const char *pn[] = {"layer=mix", "tokens=none"};
    o.params = pn;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_SHAPE, "read on a grid with tokens=auto or tokens=HxW");
    sal_model_free(m);

    /* layer=auto: the last token layer feeds the head through its class token alone, so the one
     * before it is taken */
    SAL_ASSERT(sal_graph_create("<tokens-cls>", &g) == SAL_OK);
    tokens_in(g);
    float mix[25];
    t_randv(&rng, mix, 25, 0.5f);
    t_const(g, "M", 2, (int64_t[]){5, 5}, mix);
    t_node(g, "MatMul", "mixtok", 2, (const char *[]){"M", "tok"}, "tokm", 0, NULL);
    t_node(g, "Relu", "r", 1, (const char *[]){"tokm"}, "tokr", 0, NULL);
    cls_head(g, "tokr", wo);
    m = t_finish(g, "out");
    e = explain(m, &x, "gradcam", SAL_TARGET_MAX, NULL, NULL, 0, NULL);
    char *js = NULL;
    if (e) CHECK(sal_explanation_json(e, &js) == SAL_OK && strstr(js, "\"layer\": \"rs\""), "layer=auto: %s", js ? js : "");
    free(js);
    sal_explanation_free(e);
    sal_model_free(m);
    sal_tensor_free(&x);
    sal_tensor_free(&xw);
}

/* ---- attention rollout ---- */

static void attention_layer(sal_model *g, const char *in, const char *out, int l) {
    char q[16], k[16], v[16], kT[16], s0[16], A[16], o[16], nm[8][24];
    float w[16];
    snprintf(q, sizeof q, "q%d", l), snprintf(k, sizeof k, "k%d", l), snprintf(v, sizeof v, "v%d", l);
    snprintf(kT, sizeof kT, "kT%d", l), snprintf(s0, sizeof s0, "s%d", l), snprintf(A, sizeof A, "A%d", l);
    snprintf(o, sizeof o, "o%d", l);
    for (int i = 0; i < 8; i++) snprintf(nm[i], sizeof nm[i], "n%d_%d", l, i);
    char ln[16], lw[16], lnn[16]; /* pre-norm, as in ViT */
    snprintf(ln, sizeof ln, "ln%d", l), snprintf(lw, sizeof lw, "ln%d.w", l), snprintf(lnn, sizeof lnn, "lnn%d", l);
    t_randv(&rng, w, 4, 1.0f);
    t_const(g, lw, 1, (int64_t[]){4}, w);
    t_node(g, "LayerNormalization", lnn, 2, (const char *[]){in, lw}, ln, 0, NULL);
    matmul_c(g, nm[0], ln, q, 4, 4, w);
    matmul_c(g, nm[1], ln, k, 4, 4, w);
    matmul_c(g, nm[2], ln, v, 4, 4, w);
    sal_attr perm[1] = {sal_attr_make_ints("perm", 3, (int64_t[]){0, 2, 1})};
    t_node(g, "Transpose", nm[3], 1, (const char *[]){k}, kT, 1, perm);
    t_node(g, "MatMul", nm[4], 2, (const char *[]){q, kT}, s0, 0, NULL);
    sal_attr ax[1] = {sal_attr_make_int("axis", -1)};
    t_node(g, "Softmax", nm[5], 1, (const char *[]){s0}, A, 1, ax);
    t_node(g, "MatMul", nm[6], 2, (const char *[]){A, v}, o, 0, NULL);
    t_node(g, "Add", nm[7], 2, (const char *[]){in, o}, out, 0, NULL);
}

static void test_rollout(void) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<vit>", &g) == SAL_OK);
    tokens_in(g);
    attention_layer(g, "tok", "b1", 1);
    attention_layer(g, "b1", "b2", 2);
    float wo[12];
    cls_head(g, "b2", wo);
    sal_model *m = t_finish(g, "out");
    sal_tensor x = t_rand(&rng, 4, (int64_t[]){2, 1, 4, 4}, 1.0f);
    const char *p[] = {"upsample=none"};
    sal_explanation *e = explain(m, &x, "attention_rollout", SAL_TARGET_MAX, NULL, NULL, 1, p);
    if (e) {
        sal_session *s = NULL;
        const sal_tensor *outs[1];
        SAL_ASSERT(sal_session_new(m, &s) == SAL_OK && sal_forward(s, 1, &x, outs) == SAL_OK);
        const sal_tensor *L = sal_explanation_layer_map(e);
        double worst = 0;
        for (int n = 0; n < 2; n++) {
            double R[25], T[25];
            for (int i = 0; i < 25; i++) R[i] = i / 5 == i % 5;
            for (int l = 1; l <= 2; l++) {
                const float *A = sal_f32(sal_session_value(s, l == 1 ? "A1" : "A2")) + n * 25;
                double a[25];
                for (int i = 0; i < 5; i++) { /* (A + I) / 2 keeps rows summing to 1 */
                    for (int j = 0; j < 5; j++) a[i * 5 + j] = 0.5 * A[i * 5 + j] + 0.5 * (i == j);
                }
                for (int i = 0; i < 5; i++)
                    for (int j = 0; j < 5; j++) {
                        T[i * 5 + j] = 0;
                        for (int k = 0; k < 5; k++) T[i * 5 + j] += a[i * 5 + k] * R[k * 5 + j];
                    }
                memcpy(R, T, sizeof R);
            }
            for (int pi = 0; pi < 4; pi++) worst = fmax(worst, fabs(R[1 + pi] - sal_f32(L)[n * 4 + pi]));
        }
        CHECK(L && L->dim[2] == 2 && L->dim[3] == 2 && worst < 1e-5, "attention rollout differs from its definition by %g",
              worst);
        CHECK(sal_explanation_metric(e, "attention_layers") == 2, "rollout: %g attention layers",
              sal_explanation_metric(e, "attention_layers"));
        sal_session_free(s);
    }
    sal_explanation_free(e);
    sal_model_free(m);
    m = dense_net();
    sal_explain_opts o = {.method = "attention_rollout", .output_name = "cls"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_UNSUPPORTED, "has no softmax attention");
    sal_model_free(m);
    sal_tensor_free(&x);
}

/* ---- every allocation failing in turn: an out-of-memory error, nothing leaked ---- */

static void sweep(const sal_model *m, const sal_tensor *x, sal_explain_opts o) {
    sal_explanation *e = NULL;
    sal_status st = sal_explain(m, x, &o, &e); /* lazily made state (BLAS, OpenMP) is no leak */
    sal_explanation_free(e);
    CHECK(st == SAL_OK, "sweep %s: clean run failed: %s", o.method, sal_last_error());
    if (st != SAL_OK) return;
    size_t base = sal_memory_in_use();
    long k, bad = 0;
    for (k = 1; k < 100000; k++) {
        e = NULL;
        sal_alloc_fail_after(k);
        st = sal_explain(m, x, &o, &e);
        sal_alloc_fail_after(0);
        sal_explanation_free(e);
        if (sal_memory_in_use() != base && bad++ < 3) fprintf(stderr, "%s: failing allocation %ld leaks\n", o.method, k);
        if (st != SAL_OK && st != SAL_ERR_NOMEM && bad++ < 3)
            fprintf(stderr, "%s: failing allocation %ld gives %s\n", o.method, k, sal_last_error());
        if (st == SAL_OK) break;
    }
    CHECK(!bad, "allocation sweep of %s: %ld failures", o.method, bad);
    printf("  alloc sweep: %-20s %ld allocations\n", o.method, k - 1);
}

static void test_alloc_sweeps(void) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<vit>", &g) == SAL_OK);
    tokens_in(g);
    attention_layer(g, "tok", "b1", 1);
    float wo[12];
    cls_head(g, "b1", wo);
    sal_model *m = t_finish(g, "out");
    sal_tensor x = t_rand(&rng, 4, (int64_t[]){2, 1, 4, 4}, 1.0f);
    const char *attn[] = {"attention=attnlrp"};
    sweep(m, &x, (sal_explain_opts){.method = "attention_rollout"});
    sweep(m, &x, (sal_explain_opts){.method = "lrp_epsilon", .nparams = 1, .params = attn});
    sweep(m, &x, (sal_explain_opts){.method = "lrp_epsilon_plus"});
    sweep(m, &x, (sal_explain_opts){.method = "gradcam"});
    sweep(m, &x, (sal_explain_opts){.method = "cumulative_gradcam"});
    size_t base = sal_memory_in_use();
    long bad = 0;
    for (long k = 1; k < 10000; k++) {
        char **rules = NULL;
        sal_alloc_fail_after(k);
        sal_status st = sal_method_rules(m, "lrp_epsilon", 1, attn, NULL, &rules);
        sal_alloc_fail_after(0);
        sal_method_rules_free(rules, m->nnode);
        bad += sal_memory_in_use() != base || (st != SAL_OK && st != SAL_ERR_NOMEM);
        if (st == SAL_OK) break;
    }
    CHECK(!bad, "allocation sweep of sal_method_rules: %ld failures", bad);
    sal_model_free(m);
    sal_tensor_free(&x);
    m = dense_net();
    x = t_rand(&rng, 4, (int64_t[]){2, 1, 4, 4}, 1.0f);
    sal_tensor M = t_rand(&rng, 3, (int64_t[]){2, 4, 4}, 1.0f);
    sweep(m, &x, (sal_explain_opts){.method = "gradient", .target = SAL_TARGET_MASK, .target_mask = &M, .output_name = "seg"});
    sweep(m, &x, (sal_explain_opts){.method = "lrp_epsilon_plus", .target = SAL_TARGET_SUM, .output_name = "seg"});
    sweep(m, &x, (sal_explain_opts){.method = "deeplift", .target = SAL_TARGET_MASK, .target_mask = &M, .output_name = "seg"});
    sal_tensor_free(&M);
    sal_tensor_free(&x);
    sal_model_free(m);
}

int main(void) {
    sal_rng_seed(&rng, 16);
    test_region_targets();
    test_tokens();
    test_rollout();
    test_alloc_sweeps();
    return t_done("test_explain_targets");
}
