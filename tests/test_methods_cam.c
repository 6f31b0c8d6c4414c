/* Class activation maps, FullGrad and the positive-aggregation variants, each against something
 * computed independently here: CAM from the dense weights (closed form), the methods' formulas on
 * gradients taken by finite differences, FullGrad's completeness, a hand-computed resampling, and
 * every composite (cumulative, guided, Score-CAM) rebuilt from its parts. */
#include "methods/layer.h"
#include "testutil.h"

/* ---- building small graphs ---- */

typedef struct {
    sal_model *g;
    sal_rng r;
    sal_status st;
} tb;

static void tb_start(tb *b, const char *input, int nd, const int64_t *dim, uint64_t seed) {
    b->st = sal_graph_create("<test>", &b->g);
    sal_rng_seed(&b->r, seed);
    if (b->st == SAL_OK) b->st = sal_graph_add_input(b->g, input, SAL_F32, nd, dim);
}

/* A constant from N(mean, scale^2). */
static void tb_const(tb *b, const char *name, int nd, const int64_t *dim, float mean, float scale) {
    if (b->st != SAL_OK) return;
    sal_tensor t = t_rand(&b->r, nd, dim, scale);
    for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++) sal_f32(&t)[i] += mean;
    b->st = sal_graph_add_const(b->g, name, &t);
}

static void tb_node(tb *b, const char *op, const char *name, int nin, const char *const *in, const char *out, int nattr,
                    sal_attr *at) {
    if (b->st != SAL_OK) {
        for (int i = 0; i < nattr; i++) sal_attr_clear(&at[i]);
        return;
    }
    b->st = sal_graph_add_node(b->g, op, name, nin, in, 1, (const char *[]){out}, nattr, at);
}

static void tb_unary(tb *b, const char *op, const char *name, const char *in, const char *out) {
    tb_node(b, op, name, 1, (const char *[]){in}, out, 0, NULL);
}

/* 3x3 convolution, padding 1, with a bias: weights "<name>.w", "<name>.b". */
static void tb_conv(tb *b, const char *name, const char *in, const char *out, int64_t cin, int64_t cout) {
    char w[64], bb[64];
    snprintf(w, sizeof w, "%s.w", name);
    snprintf(bb, sizeof bb, "%s.b", name);
    tb_const(b, w, 4, (int64_t[]){cout, cin, 3, 3}, 0, 0.5f);
    tb_const(b, bb, 1, (int64_t[]){cout}, 0.1f, 0.2f);
    sal_attr at[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3}),
                      sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    tb_node(b, "Conv", name, 3, (const char *[]){in, w, bb}, out, 2, at);
}

static void tb_pool(tb *b, const char *name, const char *in, const char *out, int64_t k) {
    sal_attr at[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){k, k}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){k, k})};
    tb_node(b, "MaxPool", name, 1, (const char *[]){in}, out, 2, at);
}

/* Dense y = x W^T + b with W (nout, nin): "<name>.w", "<name>.b". */
static void tb_dense(tb *b, const char *name, const char *in, const char *out, int64_t nin, int64_t nout) {
    char w[64], bb[64];
    snprintf(w, sizeof w, "%s.w", name);
    snprintf(bb, sizeof bb, "%s.b", name);
    tb_const(b, w, 2, (int64_t[]){nout, nin}, 0, 1.0f);
    tb_const(b, bb, 1, (int64_t[]){nout}, 0, 0.5f);
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    tb_node(b, "Gemm", name, 3, (const char *[]){in, w, bb}, out, 1, at);
}

static sal_model *tb_finish(tb *b, const char *output) {
    if (b->st == SAL_OK) b->st = sal_graph_add_output(b->g, output);
    if (b->st == SAL_OK) b->st = sal_graph_finalize(b->g);
    CHECK(b->st == SAL_OK, "building a test graph: %s", sal_last_error());
    if (b->st != SAL_OK) {
        sal_model_free(b->g);
        return NULL;
    }
    return b->g;
}

/* Input x (N, 2, 6, 6), conv, ReLU "relu" (output r, 4 x 6 x 6), max pool "pool" (output A,
 * 4 x 3 x 3), weights drawn from seed. */
static void conv_front(tb *b, uint64_t seed) {
    tb_start(b, "x", 4, (int64_t[]){-1, 2, 6, 6}, seed);
    tb_conv(b, "conv", "x", "c", 2, 4);
    tb_unary(b, "Relu", "relu", "c", "r");
    tb_pool(b, "pool", "r", "A", 2);
}

/* The CAM network of Zhou et al.: conv_front (layer "pool"), global average pooling, dense "fc"
 * (3 classes). */
static sal_model *cam_net(void) {
    tb b;
    conv_front(&b, 8);
    tb_unary(&b, "GlobalAveragePool", "gap", "A", "g");
    tb_unary(&b, "Flatten", "flat", "g", "f");
    tb_dense(&b, "fc", "f", "logits", 4, 3);
    return tb_finish(&b, "logits");
}

/* A net that is nonlinear after its layer "relu1" (2 x 5 x 5): conv1, relu1 | conv2, relu2, global
 * average pooling, dense (2 classes). tail_only builds the part after relu1, fed with "A". */
static sal_model *pp_net(bool tail_only) {
    tb b;
    if (tail_only) {
        tb_start(&b, "A", 4, (int64_t[]){-1, 2, 5, 5}, 1);
    } else {
        tb_start(&b, "x", 4, (int64_t[]){-1, 1, 5, 5}, 1);
        tb_conv(&b, "conv1", "x", "c1", 1, 2);
        tb_unary(&b, "Relu", "relu1", "c1", "A");
    }
    sal_rng_seed(&b.r, 2); /* the tail's weights are the same in both */
    tb_conv(&b, "conv2", "A", "c2", 2, 3);
    tb_unary(&b, "Relu", "relu2", "c2", "r2");
    tb_unary(&b, "GlobalAveragePool", "gap", "r2", "g");
    tb_unary(&b, "Flatten", "flat", "g", "f");
    tb_dense(&b, "fc", "f", "logits", 3, 2);
    return tb_finish(&b, "logits");
}

static sal_tensor rand_input(uint64_t seed, int nd, const int64_t *dim) {
    sal_rng r;
    sal_rng_seed(&r, seed);
    sal_tensor x = {0};
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, nd, dim) == SAL_OK);
    for (int64_t i = 0, n = sal_tensor_numel(&x); i < n; i++) sal_f32(&x)[i] = (float)sal_rng_uniform(&r);
    return x;
}

/* Runs a method for classes cls (one per sample); NULL (and a failed check) on error. */
static sal_explanation *explain(const sal_model *m, const sal_tensor *x, const char *method, const int64_t *cls,
                                int np, const char *const *params, int64_t chunk) {
    sal_explain_opts o = {.method = method, .nparams = np, .params = params, .target = SAL_TARGET_INDEX,
                          .classes = cls, .nclasses = x->dim[0], .chunk = chunk};
    sal_explanation *e = NULL;
    sal_status st = sal_explain(m, x, &o, &e);
    CHECK(st == SAL_OK, "%s: %s", method, sal_last_error());
    return st == SAL_OK ? e : NULL;
}

/* max |a - b| over n, reporting where it is worst when above tol. */
static void check_close(const char *what, const float *a, const double *b, int64_t n, double tol) {
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(a[i] - b[i]) > worst) worst = fabs(a[i] - b[i]), at = i;
    CHECK(worst <= tol, "%s: element %lld is %.7g, expected %.7g (|diff| %.3g > %.3g)", what, (long long)at,
          (double)a[at], b[at], worst, tol);
}

static double max_abs(const double *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* ---- resampling against hand-computed values ---- */

static void test_resample(void) {
    /* 2x2 -> 4x4, half-pixel centres: source positions -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped) */
    const float src[4] = {1, 2, 3, 4};
    const float want[16] = {1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4};
    float dst[16];
    CHECK_OK(sal_resample_linear(src, 1, 2, (int64_t[]){2, 2}, dst, (int64_t[]){4, 4}));
    for (int i = 0; i < 16; i++) CHECK(fabsf(dst[i] - want[i]) < 1e-6f, "2x2->4x4 [%d]: %g, want %g", i, dst[i], want[i]);
    /* 3 -> 2 (scale 1.5): positions 0.25 and 1.75 */
    const float s1[3] = {0, 3, 6};
    float d1[2];
    CHECK_OK(sal_resample_linear(s1, 1, 1, (int64_t[]){3}, d1, (int64_t[]){2}));
    CHECK(fabsf(d1[0] - 0.75f) < 1e-6f && fabsf(d1[1] - 5.25f) < 1e-6f, "3->2: %g %g, want 0.75 5.25", d1[0], d1[1]);
    /* same size: an exact copy; two rows stay apart */
    const float s2[6] = {1, -2, 3, 4, 5, -6};
    float d2[6];
    CHECK_OK(sal_resample_linear(s2, 2, 1, (int64_t[]){3}, d2, (int64_t[]){3}));
    CHECK(!memcmp(s2, d2, sizeof d2), "3->3 is not a copy");
    /* three axes, only the middle one resampled: (1,2,1) -> (1,4,1) */
    const float s3[2] = {2, 6};
    float d3[4];
    CHECK_OK(sal_resample_linear(s3, 1, 3, (int64_t[]){1, 2, 1}, d3, (int64_t[]){1, 4, 1}));
    CHECK(d3[0] == 2 && d3[1] == 3 && d3[2] == 5 && d3[3] == 6, "3-d: %g %g %g %g, want 2 3 5 6", d3[0], d3[1], d3[2],
          d3[3]);
    CHECK_FAILS(sal_resample_linear(s3, 1, 1, (int64_t[]){0}, d3, (int64_t[]){2}), SAL_ERR_SHAPE, "empty");
}

/* ---- Grad-CAM at the last layer of a CAM network is CAM ---- */

static const float *param(const sal_model *m, const char *name) { return sal_f32(&m->val[sal_graph_find(m, name)].t); }

static void test_cam_closed_form(void) {
    sal_model *m = cam_net();
    if (!m) return;
    int64_t N = 2, K = 4, S = 9, cls[2] = {1, 2};
    sal_tensor x = rand_input(3, 4, (int64_t[]){N, 2, 6, 6});
    sal_session *s = NULL;
    const sal_tensor *outs[1];
    CHECK_OK(sal_session_new(m, &s));
    CHECK_OK(sal_forward(s, 1, &x, outs));
    const float *A = sal_f32(sal_session_value(s, "A")), *W = param(m, "fc.w");

    /* the candidates: conv, relu, pool; not the 1x1 output of the global pool */
    int nodes[8], n = 0;
    CHECK_OK(sal_cam_layers(s, nodes, 8, &n));
    CHECK(n == 3 && !strcmp(sal_model_node_name(m, nodes[n - 1]), "pool"), "%d candidates, last %s", n,
          n ? sal_model_node_name(m, nodes[n - 1]) : "-");

    /* closed forms, with A >= 0 (after a ReLU and a max pool) and dF/dA_k = W[t,k] / S */
    double cam[18], pos[18], mid[18], lay[18], pp[18];
    for (int64_t i = 0; i < N; i++) {
        const float *w = W + cls[i] * K;
        for (int64_t p = 0; p < S; p++) {
            double c = 0, a = 0, mm = 0, l = 0, q = 0;
            for (int64_t k = 0; k < K; k++) {
                double v = A[(i * K + k) * S + p], g = w[k] / (double)S, sum = 0;
                for (int64_t j = 0; j < S; j++) sum += A[(i * K + k) * S + j];
                c += w[k] * v;
                a += fabs(w[k]) * v / (double)S;
                mm += fabs(g);
                l += (g > 0 ? g : 0) * v;
                /* Grad-CAM++ with a constant gradient g: alpha = 1 / (2 + sum(A) g) at every position */
                if (g > 0 && 2 + sum * g != 0) q += (double)S * g / (2 + sum * g) * v;
            }
            cam[i * S + p] = c;
            pos[i * S + p] = a;
            mid[i * S + p] = mm;
            lay[i * S + p] = l > 0 ? l : 0;
            pp[i * S + p] = q > 0 ? q : 0;
        }
    }
    double want[18], raw[18];
    for (int i = 0; i < 18; i++) {
        raw[i] = cam[i] / (double)S;
        want[i] = raw[i] > 0 ? raw[i] : 0;
    }
    bool neg = false, posv = false;
    for (int i = 0; i < 18; i++) neg |= raw[i] < 0, posv |= raw[i] > 0;
    CHECK(neg && posv, "the test network should give CAM values of both signs");
    double tol = 1e-5 * fmax(1, max_abs(raw, 18));

    sal_explanation *e = explain(m, &x, "gradcam", cls, 0, NULL, 0);
    if (e) {
        const sal_tensor *L = sal_explanation_layer_map(e);
        CHECK(L && L->ndim == 4 && L->dim[0] == N && L->dim[1] == 1 && L->dim[2] == 3 && L->dim[3] == 3,
              "layer map shape");
        if (L) check_close("Grad-CAM = ReLU(CAM) / (h w)", sal_f32(L), want, 18, tol);
        /* upsampled map: the layer map resampled to 6x6, in both input channels */
        const sal_tensor *a = sal_explanation_map(e);
        CHECK(sal_tensor_same_shape(a, &x), "map not shaped as the input");
        float up[72];
        if (L) CHECK_OK(sal_resample_linear(sal_f32(L), N, 2, (int64_t[]){3, 3}, up, (int64_t[]){6, 6}));
        double upd[72];
        for (int i = 0; i < 72; i++) upd[i] = up[i];
        for (int64_t i = 0; i < N; i++)
            for (int ch = 0; ch < 2; ch++)
                check_close("upsampled Grad-CAM", sal_f32(a) + (i * 2 + ch) * 36, upd + i * 36, 36, 1e-6);
        char *js = NULL;
        CHECK_OK(sal_explanation_json(e, &js));
        CHECK(js && strstr(js, "\"layer\": \"pool\""), "JSON lacks the layer: %s", js ? js : "");
        free(js);
    }
    sal_explanation_free(e);

    /* relu=false keeps the negative part: exactly CAM / (h w) */
    const char *norelu[] = {"relu=false", "upsample=none"};
    e = explain(m, &x, "gradcam", cls, 2, norelu, 0);
    if (e) {
        check_close("Grad-CAM without ReLU = CAM / (h w)", sal_f32(sal_explanation_layer_map(e)), raw, 18, tol);
        CHECK(sal_explanation_map(e)->dim[2] == 3, "upsample=none: the map keeps the layer's resolution");
    }
    sal_explanation_free(e);

    /* XGrad-CAM: sum(A G) / sum(A) = the constant gradient, so it equals Grad-CAM here */
    e = explain(m, &x, "xgradcam", cls, 0, NULL, 0);
    if (e) check_close("XGrad-CAM = Grad-CAM on a CAM network", sal_f32(sal_explanation_layer_map(e)), want, 18, tol);
    sal_explanation_free(e);

    /* gradcam_pos takes |w_k A_k| before the channel sum: |W| in place of W */
    e = explain(m, &x, "gradcam_pos", cls, 0, NULL, 0);
    if (e) check_close("gradcam_pos = sum |W| A / (h w)", sal_f32(sal_explanation_layer_map(e)), pos, 18, tol);
    sal_explanation_free(e);

    /* gradmid drops the activations: sum_k |W_k| / (h w) everywhere */
    e = explain(m, &x, "gradmid", cls, 0, NULL, 0);
    if (e) check_close("gradmid = sum |W| / (h w)", sal_f32(sal_explanation_layer_map(e)), mid, 18, tol);
    sal_explanation_free(e);

    e = explain(m, &x, "layercam", cls, 0, NULL, 0);
    if (e) check_close("LayerCAM = sum relu(W) A / (h w)", sal_f32(sal_explanation_layer_map(e)), lay, 18, tol);
    sal_explanation_free(e);

    e = explain(m, &x, "gradcam_pp", cls, 0, NULL, 0);
    if (e) check_close("Grad-CAM++ closed form", sal_f32(sal_explanation_layer_map(e)), pp, 18, tol);
    sal_explanation_free(e);

    /* the layer by its output's name: the node is reported */
    const char *byval[] = {"layer=r"};
    e = explain(m, &x, "gradcam", cls, 1, byval, 0);
    if (e) {
        char *js = NULL;
        CHECK_OK(sal_explanation_json(e, &js));
        CHECK(js && strstr(js, "\"layer\": \"relu\""), "layer=r should resolve to node relu: %s", js ? js : "");
        free(js);
        CHECK(sal_explanation_layer_map(e)->dim[2] == 6, "layer relu is 6x6");
    }
    sal_explanation_free(e);

    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- the formulas against gradients taken by finite differences ---- */

static void test_formulas(void) {
    sal_model *m = pp_net(false), *tail = pp_net(true);
    if (!m || !tail) {
        sal_model_free(m);
        sal_model_free(tail);
        return;
    }
    enum { N = 2, K = 2, S = 25 };
    int64_t cls[N] = {0, 1};
    sal_tensor x = rand_input(5, 4, (int64_t[]){N, 1, 5, 5});
    sal_session *s = NULL, *ts = NULL;
    const sal_tensor *outs[1];
    CHECK_OK(sal_session_new(m, &s));
    CHECK_OK(sal_session_new(tail, &ts));
    CHECK_OK(sal_forward(s, 1, &x, outs));
    sal_tensor A = {0};
    CHECK_OK(sal_tensor_copy(&A, sal_session_value(s, "A")));
    const float *a = sal_f32(&A);
    double G[N * K * S];
    const double h = 1e-3;
    for (int64_t e = 0; e < N * K * S; e++) {
        int64_t i = e / (K * S);
        float x0 = sal_f32(&A)[e];
        double f[2];
        for (int q = 0; q < 2; q++) {
            sal_f32(&A)[e] = (float)(x0 + (q ? -h : h));
            CHECK_OK(sal_forward(ts, 1, &A, outs));
            f[q] = sal_f32(outs[0])[i * 2 + cls[i]];
        }
        sal_f32(&A)[e] = x0;
        G[e] = (f[0] - f[1]) / (2 * h);
    }
    double want[6][N * S];
    for (int64_t i = 0; i < N; i++)
        for (int64_t p = 0; p < S; p++) {
            double gc = 0, pp = 0, lc = 0, xg = 0, pos = 0, mid = 0;
            for (int64_t k = 0; k < K; k++) {
                const double *g = G + (i * K + k) * S;
                const float *ak = a + (i * K + k) * S;
                double mean = 0, sa = 0, sag = 0, wpp = 0;
                for (int j = 0; j < S; j++) mean += g[j] / S, sa += ak[j], sag += ak[j] * g[j];
                for (int j = 0; j < S; j++) {
                    double den = 2 * g[j] * g[j] + sa * g[j] * g[j] * g[j];
                    double alpha = g[j] != 0 && den != 0 ? g[j] * g[j] / den : 0;
                    wpp += alpha * (g[j] > 0 ? g[j] : 0);
                }
                gc += mean * ak[p];
                pp += wpp * ak[p];
                lc += (g[p] > 0 ? g[p] : 0) * ak[p];
                xg += (sa != 0 ? sag / sa : 0) * ak[p];
                pos += fabs(mean * ak[p]);
                mid += fabs(g[p]);
            }
            double v[6] = {gc, pp, lc, xg, pos, mid};
            for (int t = 0; t < 6; t++) want[t][i * S + p] = v[t];
        }
    static const char *const names[6] = {"gradcam", "gradcam_pp", "layercam", "xgradcam", "gradcam_pos", "gradmid"};
    for (int t = 0; t < 6; t++) {
        bool has_relu = t < 4;
        const char *params[] = {"layer=relu1", "upsample=none", "relu=false"};
        sal_explanation *e = explain(m, &x, names[t], cls, has_relu ? 3 : 2, params, 0);
        if (!e) continue;
        char what[64];
        snprintf(what, sizeof what, "%s from finite-difference gradients", names[t]);
        check_close(what, sal_f32(sal_explanation_layer_map(e)), want[t], N * S, 2e-3 * fmax(1e-3, max_abs(want[t], N * S)));
        sal_explanation_free(e);
        if (!has_relu) continue;
        /* relu=true differs exactly where the map is negative */
        e = explain(m, &x, names[t], cls, 2, params, 0);
        if (!e) continue;
        double r[N * S];
        for (int j = 0; j < N * S; j++) r[j] = want[t][j] > 0 ? want[t][j] : 0;
        snprintf(what, sizeof what, "%s with relu", names[t]);
        check_close(what, sal_f32(sal_explanation_layer_map(e)), r, N * S, 2e-3 * fmax(1e-3, max_abs(want[t], N * S)));
        sal_explanation_free(e);
    }
    sal_tensor_free(&A);
    sal_session_free(s);
    sal_session_free(ts);
    sal_tensor_free(&x);
    sal_model_free(m);
    sal_model_free(tail);
}

/* ---- composites rebuilt from their parts ---- */

static void minmax(float *p, int64_t n) {
    float lo = p[0], hi = p[0];
    for (int64_t i = 1; i < n; i++) lo = fminf(lo, p[i]), hi = fmaxf(hi, p[i]);
    for (int64_t i = 0; i < n; i++) p[i] = hi > lo ? (p[i] - lo) / (hi - lo) : 0.0f;
}

static void test_cumulative(void) {
    sal_model *m = cam_net();
    if (!m) return;
    int64_t N = 2, cls[2] = {0, 2};
    sal_tensor x = rand_input(9, 4, (int64_t[]){N, 2, 6, 6});
    static const char *const layers[3] = {"layer=conv", "layer=relu", "layer=pool"};
    const char *parts[2] = {"gradcam_pos", "gradmid"}, *whole[2] = {"cumulative_gradcam", "cumulative_gradmid"};
    for (int v = 0; v < 2; v++) {
        double want[72] = {0};
        for (int l = 0; l < 3; l++) {
            const char *params[] = {layers[l], "upsample=none"};
            sal_explanation *e = explain(m, &x, parts[v], cls, 2, params, 0);
            if (!e) continue;
            const sal_tensor *L = sal_explanation_layer_map(e);
            int64_t hw = L->dim[2] * L->dim[3];
            float tmp[72], up[72];
            memcpy(tmp, L->data, (size_t)(N * hw) * sizeof(float));
            for (int64_t i = 0; i < N; i++) minmax(tmp + i * hw, hw);
            CHECK_OK(sal_resample_linear(tmp, N, 2, L->dim + 2, up, (int64_t[]){6, 6}));
            for (int i = 0; i < 72; i++) want[i] += up[i];
            sal_explanation_free(e);
        }
        sal_explanation *e = explain(m, &x, whole[v], cls, 0, NULL, 0);
        if (!e) continue;
        CHECK(!sal_explanation_layer_map(e), "%s has no single layer map", whole[v]);
        CHECK(sal_explanation_metric(e, "layers") == 3, "%s: %g layers, want 3", whole[v],
              sal_explanation_metric(e, "layers"));
        const float *a = sal_f32(sal_explanation_map(e));
        for (int64_t i = 0; i < N; i++)
            for (int ch = 0; ch < 2; ch++) check_close(whole[v], a + (i * 2 + ch) * 36, want + i * 36, 36, 1e-5);
        sal_explanation_free(e);
    }
    sal_tensor_free(&x);
    sal_model_free(m);
}

static void test_guided_gradcam(void) {
    sal_model *m = pp_net(false);
    if (!m) return;
    int64_t cls[2] = {1, 0};
    sal_tensor x = rand_input(11, 4, (int64_t[]){2, 1, 5, 5});
    sal_explanation *gc = explain(m, &x, "gradcam", cls, 0, NULL, 0);
    sal_explanation *gb = explain(m, &x, "guided_backprop", cls, 0, NULL, 0);
    sal_explanation *gg = explain(m, &x, "guided_gradcam", cls, 0, NULL, 0);
    if (gc && gb && gg) {
        double want[50];
        const float *a = sal_f32(sal_explanation_map(gc)), *b = sal_f32(sal_explanation_map(gb));
        for (int i = 0; i < 50; i++) want[i] = (double)a[i] * b[i];
        check_close("guided Grad-CAM = Grad-CAM x guided backprop", sal_f32(sal_explanation_map(gg)), want, 50, 1e-7);
        bool nonzero = false;
        for (int i = 0; i < 50; i++) nonzero |= want[i] != 0;
        CHECK(nonzero, "guided Grad-CAM is zero everywhere: a weak test");
    }
    sal_explanation_free(gc);
    sal_explanation_free(gb);
    sal_explanation_free(gg);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* A net with a dense head: conv_front, Flatten, dense "fc1" (5 units: weights (5, 36) with
 * transB, else (36, 5)), ReLU, dense "fc2" (3 classes). */
static sal_model *head_net(bool transb) {
    tb b;
    conv_front(&b, 21);
    tb_unary(&b, "Flatten", "flat", "A", "f");
    if (transb) {
        tb_dense(&b, "fc1", "f", "h", 36, 5);
    } else {
        tb_const(&b, "fc1.w", 2, (int64_t[]){36, 5}, 0, 1.0f);
        tb_const(&b, "fc1.b", 1, (int64_t[]){5}, 0, 0.5f);
        tb_node(&b, "Gemm", "fc1", 3, (const char *[]){"f", "fc1.w", "fc1.b"}, "h", 0, NULL);
    }
    tb_unary(&b, "Relu", "relu_h", "h", "hr");
    tb_dense(&b, "fc2", "hr", "logits", 5, 3);
    return tb_finish(&b, "logits");
}

/* Grad-CAM at a layer that reaches the classes only through a dense layer (at the pooling's output,
 * and at the ReLU before it) takes its weights from the dense layer's weights summed per channel
 * (cam.c: head_weights), leaving the layer without a gradient: against the gradient written out
 * here, G_A = W1^T (relu'(h) W2[t]) and, at r, G_A handed to each window's first maximum. */
static void dense_head_case(bool transb) {
    sal_model *m = head_net(transb);
    if (!m) return;
    enum { N = 2, K = 4, SA = 9, SR = 36, J = 5 };
    int64_t cls[N] = {2, 0};
    sal_tensor x = rand_input(17, 4, (int64_t[]){N, 2, 6, 6});
    sal_session *s = NULL;
    const sal_tensor *outs[1];
    CHECK_OK(sal_session_new(m, &s));
    CHECK_OK(sal_forward(s, 1, &x, outs));
    float A[N * K * SA], R[N * K * SR];
    memcpy(A, sal_f32(sal_session_value(s, "A")), sizeof A);
    memcpy(R, sal_f32(sal_session_value(s, "r")), sizeof R);
    const float *W1 = param(m, "fc1.w"), *b1 = param(m, "fc1.b"), *W2 = param(m, "fc2.w");
    double GA[N * K * SA] = {0}, GR[N * K * SR] = {0};
    for (int n = 0; n < N; n++)
        for (int j = 0; j < J; j++) {
            double h = b1[j];
#define W1_AT(j, i) (double)(transb ? W1[(j) * K * SA + (i)] : W1[(i) * J + (j)])
            for (int i = 0; i < K * SA; i++) h += W1_AT(j, i) * A[n * K * SA + i];
            for (int i = 0; h > 0 && i < K * SA; i++)
                GA[n * K * SA + i] += W2[cls[n] * J + j] * W1_AT(j, i);
#undef W1_AT
        }
    for (int p = 0; p < N * K; p++) /* planes */
        for (int t = 0; t < SA; t++) {
            int oy = t / 3 * 2, ox = t % 3 * 2, best = oy * 6 + ox;
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++)
                    if (R[p * SR + (oy + dy) * 6 + ox + dx] > R[p * SR + best]) best = (oy + dy) * 6 + ox + dx;
            GR[p * SR + best] += GA[p * SA + t];
        }
    const char *layer[2] = {"pool", "relu"}, *meth[2] = {"gradcam", "gradcam_pos"};
    for (int l = 0; l < 2; l++) {
        int S = l ? SR : SA;
        const float *act = l ? R : A;
        const double *G = l ? GR : GA;
        double want[2][N * SR], raw[N * SR];
        for (int n = 0; n < N; n++)
            for (int p = 0; p < S; p++) {
                double c = 0, a = 0;
                for (int k = 0; k < K; k++) {
                    double w = 0;
                    for (int q = 0; q < S; q++) w += G[(n * K + k) * S + q] / S;
                    c += w * act[(n * K + k) * S + p];
                    a += fabs(w * act[(n * K + k) * S + p]);
                }
                raw[n * S + p] = c;
                want[0][n * S + p] = c > 0 ? c : 0;
                want[1][n * S + p] = a;
            }
        bool neg = false, posv = false;
        for (int i = 0; i < N * S; i++) neg |= raw[i] < 0, posv |= raw[i] > 0;
        CHECK(neg && posv, "the head network should give Grad-CAM values of both signs at %s", layer[l]);
        char lp[32];
        snprintf(lp, sizeof lp, "layer=%s", layer[l]);
        const char *par[1] = {lp};
        for (int k = 0; k < 2; k++) {
            sal_explain_opts o = {.method = meth[k], .nparams = 1, .params = par, .target = SAL_TARGET_INDEX,
                                  .classes = cls, .nclasses = N, .session = s};
            sal_explanation *e = NULL;
            CHECK_OK(sal_explain(m, &x, &o, &e));
            int v = sal_graph_find(m, l ? "r" : "A");
            CHECK(!s->has_grad[v], "%s at %s: the layer got a gradient (not from the head's weights)", meth[k],
                  layer[l]);
            char what[64];
            snprintf(what, sizeof what, "%s at %s through the dense head (transB %d)", meth[k], layer[l], transb);
            double tol = 1e-5 * (1 + max_abs(raw, N * S));
            if (e) check_close(what, sal_f32(sal_explanation_layer_map(e)), want[k], N * S, tol);
            sal_explanation_free(e);
        }
    }
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(m);
}

static void test_dense_head(void) {
    dense_head_case(true);
    dense_head_case(false);
}

/* Score-CAM by hand, as Wang et al.'s code computes it: one forward pass per channel and sample on
 * the input masked by that channel (upsampled, scaled to [0, 1]), the channel weighted by the
 * softmax over the classes of that pass's outputs at the target (weights=output: the logit itself),
 * the weighted sum upsampled and then clipped at zero. */
static void test_scorecam(void) {
    sal_model *m = cam_net();
    if (!m) return;
    enum { N = 2, K = 4, S = 9, C = 2, SX = 36 };
    int64_t cls[N] = {2, 0};
    sal_tensor x = rand_input(13, 4, (int64_t[]){N, C, 6, 6});
    sal_session *s = NULL;
    const sal_tensor *outs[1];
    CHECK_OK(sal_session_new(m, &s));
    CHECK_OK(sal_forward(s, 1, &x, outs));
    sal_tensor A = {0}, one = {0};
    CHECK_OK(sal_tensor_copy(&A, sal_session_value(s, "A")));
    CHECK_OK(sal_tensor_alloc(&one, SAL_F32, 4, (int64_t[]){1, C, 6, 6}));
    double want[N * S] = {0}, want_out[N * S] = {0};
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < K; k++) {
            const float *ak = sal_f32(&A) + (i * K + k) * S;
            float mask[SX];
            CHECK_OK(sal_resample_linear(ak, 1, 2, (int64_t[]){3, 3}, mask, (int64_t[]){6, 6}));
            float lo = mask[0], hi = mask[0];
            for (int j = 0; j < SX; j++) lo = fminf(lo, mask[j]), hi = fmaxf(hi, mask[j]);
            if (!(hi > lo)) continue;
            for (int ch = 0; ch < C; ch++)
                for (int j = 0; j < SX; j++)
                    sal_f32(&one)[ch * SX + j] = sal_f32(&x)[(i * C + ch) * SX + j] * (mask[j] - lo) / (hi - lo);
            CHECK_OK(sal_forward(s, 1, &one, outs));
            const float *z = sal_f32(outs[0]);
            int64_t Kc = outs[0]->dim[1];
            double mx = z[0], sum = 0;
            for (int64_t q = 1; q < Kc; q++) mx = fmax(mx, z[q]);
            for (int64_t q = 0; q < Kc; q++) sum += exp(z[q] - mx);
            double w = exp(z[cls[i]] - mx) / sum, wl = z[cls[i]];
            for (int j = 0; j < S; j++) want[i * S + j] += w * ak[j], want_out[i * S + j] += wl * ak[j];
        }
    for (int j = 0; j < N * S; j++) want[j] = want[j] > 0 ? want[j] : 0, want_out[j] = want_out[j] > 0 ? want_out[j] : 0;
    const char *params[] = {"upsample=none", "weights=output"};
    sal_explanation *e = explain(m, &x, "scorecam", cls, 1, params, 3); /* chunks of 3 split the 8 passes */
    if (e) check_close("Score-CAM by hand", sal_f32(sal_explanation_layer_map(e)), want, N * S, 1e-5 * fmax(1, max_abs(want, N * S)));
    sal_explanation_free(e);
    e = explain(m, &x, "scorecam", cls, 2, params, 3);
    if (e) check_close("Score-CAM, logit weights", sal_f32(sal_explanation_layer_map(e)), want_out, N * S,
                       1e-5 * fmax(1, max_abs(want_out, N * S)));
    sal_explanation_free(e);
    sal_tensor_free(&A);
    sal_tensor_free(&one);
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Score-CAM's ReLU comes after upsampling (the authors' code): with logit weights of both signs,
 * the map is ReLU(upsample(signed layer map)), which differs from upsampling the clipped map where
 * the sign changes between layer positions. */
static void test_scorecam_relu_order(void) {
    tb b;
    tb_start(&b, "x", 4, (int64_t[]){-1, 2, 8, 8}, 3);
    tb_conv(&b, "conv", "x", "c", 2, 3);
    tb_unary(&b, "Relu", "relu", "c", "r");
    tb_pool(&b, "pool", "r", "A", 2);
    tb_unary(&b, "GlobalAveragePool", "gap", "A", "g");
    tb_unary(&b, "Flatten", "flat", "g", "f");
    tb_dense(&b, "fc", "f", "logits", 3, 2);
    sal_model *m = tb_finish(&b, "logits");
    if (!m) return;
    enum { N = 2, S = 16, SX = 64 };
    int64_t cls[N] = {0, 1};
    sal_tensor x = rand_input(17, 4, (int64_t[]){N, 2, 8, 8});
    const char *signed_p[] = {"weights=output", "relu=false"}, *clip_p[] = {"weights=output"};
    sal_explanation *e0 = explain(m, &x, "scorecam", cls, 2, signed_p, 0), *e1 = explain(m, &x, "scorecam", cls, 1, clip_p, 0);
    if (e0 && e1) {
        const float *lm = sal_f32(sal_explanation_layer_map(e0));
        int neg = 0, pos = 0;
        for (int j = 0; j < N * S; j++) neg += lm[j] < 0, pos += lm[j] > 0;
        CHECK(neg && pos, "the test needs a signed map of both signs (%d negative, %d positive)", neg, pos);
        double want[N * SX];
        float got[N * SX];
        for (int64_t i = 0; i < N; i++) {
            float up[SX];
            CHECK_OK(sal_resample_linear(lm + i * S, 1, 2, (int64_t[]){4, 4}, up, (int64_t[]){8, 8}));
            for (int j = 0; j < SX; j++) want[i * SX + j] = up[j] > 0 ? up[j] : 0;
            memcpy(got + i * SX, sal_f32(sal_explanation_map(e1)) + i * 2 * SX, sizeof(float) * SX);
        }
        check_close("Score-CAM, ReLU after upsampling", got, want, N * SX, 1e-5 * fmax(1, max_abs(want, N * SX)));
    }
    sal_explanation_free(e0);
    sal_explanation_free(e1);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- FullGrad: input term plus bias terms sum to the output on a ReLU network ---- */

/* conv, batch norm, ReLU, pool, conv, ReLU (or Sigmoid), flatten, MatMul + constant, ReLU, dense,
 * minus a constant: six bias terms. */
static sal_model *fg_net(bool sigmoid) {
    tb b;
    tb_start(&b, "x", 4, (int64_t[]){-1, 2, 8, 8}, 21);
    tb_conv(&b, "c1", "x", "y1", 2, 3);
    tb_const(&b, "bn.s", 1, (int64_t[]){3}, 1, 0.3f);
    tb_const(&b, "bn.b", 1, (int64_t[]){3}, 0, 0.3f);
    tb_const(&b, "bn.m", 1, (int64_t[]){3}, 0, 0.3f);
    tb_const(&b, "bn.v", 1, (int64_t[]){3}, 1, 0.1f);
    tb_node(&b, "BatchNormalization", "bn", 5, (const char *[]){"y1", "bn.s", "bn.b", "bn.m", "bn.v"}, "y2", 0, NULL);
    tb_unary(&b, "Relu", "r1", "y2", "y3");
    tb_pool(&b, "p1", "y3", "y4", 2);
    tb_conv(&b, "c2", "y4", "y5", 3, 4);
    tb_unary(&b, sigmoid ? "Sigmoid" : "Relu", "r2", "y5", "y6");
    tb_unary(&b, "Flatten", "flat", "y6", "y7");
    tb_const(&b, "mm.w", 2, (int64_t[]){64, 10}, 0, 0.3f);
    tb_node(&b, "MatMul", "mm", 2, (const char *[]){"y7", "mm.w"}, "y8", 0, NULL);
    tb_const(&b, "add.c", 1, (int64_t[]){10}, 0.1f, 0.5f);
    tb_node(&b, "Add", "add", 2, (const char *[]){"add.c", "y8"}, "y9", 0, NULL);
    tb_unary(&b, "Relu", "r3", "y9", "y10");
    tb_dense(&b, "fc", "y10", "y11", 10, 5);
    tb_const(&b, "sub.c", 2, (int64_t[]){1, 5}, 0, 1);
    tb_node(&b, "Sub", "sub", 2, (const char *[]){"y11", "sub.c"}, "logits", 0, NULL);
    return tb_finish(&b, "logits");
}

static void test_fullgrad(void) {
    for (int sig = 0; sig < 2; sig++) {
        sal_model *m = fg_net(sig);
        if (!m) return;
        int64_t cls[3] = {0, 3, 4};
        sal_tensor x = rand_input(23, 4, (int64_t[]){3, 2, 8, 8});
        for (int64_t i = 0; i < sal_tensor_numel(&x); i++) sal_f32(&x)[i] = 2 * sal_f32(&x)[i] - 1;
        sal_explanation *e = explain(m, &x, "fullgrad", cls, 0, NULL, 0);
        if (e) {
            double d = sal_explanation_metric(e, "completeness_delta"), scale = 0;
            for (int i = 0; i < 3; i++) scale = fmax(scale, fabs(sal_explanation_outputs(e)[i]));
            CHECK(sal_explanation_metric(e, "bias_terms") == 6, "%g bias terms, want 6",
                  sal_explanation_metric(e, "bias_terms"));
            if (!sig)
                CHECK(d <= 1e-5 * fmax(1, scale), "FullGrad completeness on a ReLU net: |sum - f(x)| = %g (outputs up to %g)",
                      d, scale);
            else /* a sigmoid is not positively homogeneous: the check must see it */
                CHECK(d > 1e-3, "FullGrad completeness with a sigmoid should fail, delta %g", d);
            const sal_tensor *a = sal_explanation_map(e);
            CHECK(sal_tensor_same_shape(a, &x), "FullGrad map not shaped as the input");
            CHECK(!sal_explanation_layer_map(e), "FullGrad has no layer map");
            /* psi: each term in [0, 1] per sample, then summed over its channels: the input (2), c1 (3),
             * bn (3) and c2 (4) are spatial, so at most 12 */
            float lo = INFINITY, hi = -INFINITY;
            bool same = true;
            for (int64_t i = 0; i < sal_tensor_numel(a); i++) lo = fminf(lo, sal_f32(a)[i]), hi = fmaxf(hi, sal_f32(a)[i]);
            for (int64_t i = 0; i < 3; i++)
                same &= !memcmp(sal_f32(a) + i * 128, sal_f32(a) + i * 128 + 64, 64 * sizeof(float));
            CHECK(lo >= 0 && hi <= 12 && hi > 0, "FullGrad map range [%g, %g], want within [0, 12]", lo, hi);
            CHECK(same, "FullGrad map differs between channels");
        }
        sal_explanation_free(e);
        sal_tensor_free(&x);
        sal_model_free(m);
    }
}

/* ---- bad parameters and models ---- */

static void test_errors(void) {
    sal_model *m = cam_net();
    if (!m) return;
    sal_tensor x = rand_input(1, 4, (int64_t[]){1, 2, 6, 6});
    int64_t cls[1] = {0};
    struct {
        const char *method, *param, *needle;
        sal_status st;
    } cases[] = {
        {"gradcam", "layer=nope", "layer 'nope' is not a node", SAL_ERR_ARG},
        {"gradcam", "layer=fc", "layer 'fc' has output shape (1,3)", SAL_ERR_ARG},
        {"gradcam", "layer=gap", "more than one spatial position", SAL_ERR_ARG},
        {"gradcam", "layer=x", "is not a node or node output", SAL_ERR_ARG},
        {"gradcam", "upsample=nearest", "upsample=nearest must be one of: bilinear, none", SAL_ERR_ARG},
        {"scorecam", "relu=maybe", "relu=maybe must be true or false", SAL_ERR_ARG},
        {"gradcam_pos", "relu=true", "has no parameter 'relu'", SAL_ERR_ARG},
        {"fullgrad", "layer=pool", "has no parameter 'layer'", SAL_ERR_ARG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sal_explain_opts o = {.method = cases[i].method, .nparams = 1, .params = &cases[i].param,
                              .target = SAL_TARGET_INDEX, .classes = cls, .nclasses = 1};
        sal_explanation *e = NULL;
        CHECK_FAILS(sal_explain(m, &x, &o, &e), cases[i].st, cases[i].needle);
        CHECK(!e, "an explanation despite the error");
    }
    /* a model without spatial layers */
    sal_model *mlp = NULL;
    CHECK_OK(sal_model_build("mlp", 10, 1, &mlp));
    sal_tensor xm = rand_input(2, 4, (int64_t[]){1, 1, 28, 28});
    const char *methods[] = {"gradcam", "scorecam", "cumulative_gradmid"};
    for (int i = 0; i < 3 && mlp; i++) {
        sal_explain_opts o = {.method = methods[i]};
        sal_explanation *e = NULL;
        CHECK_FAILS(sal_explain(mlp, &xm, &o, &e), SAL_ERR_UNSUPPORTED, "no layer with a spatial output");
    }
    sal_tensor_free(&xm);
    sal_model_free(mlp);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Every allocation of the methods failing in turn: an error each time, never a crash or a leak. */
static void test_alloc_failures(void) {
    sal_model *m = cam_net();
    if (!m) return;
    sal_tensor x = rand_input(4, 4, (int64_t[]){2, 2, 6, 6});
    int64_t cls[2] = {0, 1};
    const char *methods[] = {"gradcam", "scorecam", "cumulative_gradcam", "fullgrad", "guided_gradcam", "gradcam",
                             "guided_gradcam"};
    const char *cf[] = {"counterfactual=true"}; /* the last two: with the per-sample check */
    for (int i = 0; i < 7; i++) {
        sal_explain_opts o = {.method = methods[i], .target = SAL_TARGET_INDEX, .classes = cls, .nclasses = 2, .chunk = 3,
                              .nparams = i >= 5, .params = cf};
        int k, fails = 0;
        for (k = 1; k < 2000; k++) {
            sal_explanation *e = NULL;
            sal_alloc_fail_after(k);
            sal_status st = sal_explain(m, &x, &o, &e);
            sal_alloc_fail_after(0);
            sal_explanation_free(e);
            if (st == SAL_OK) break;
            fails += e != NULL;
        }
        CHECK(k < 2000 && fails == 0, "%s under allocation failures: %d runs, %d gave a result with an error", methods[i], k,
              fails);
    }
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Counterfactual Grad-CAM (Selvaraju et al.; the lecture's "Guided Grad-CAM and Counterfactual
 * Explanation"): the weights of -G give ReLU(-(Grad-CAM before its ReLU)); guided Grad-CAM gates guided
 * backprop with that map. The per-sample check on a linear net in closed form: x (2x2) -> 1x1 conv
 * (identity, the layer) -> dense w = (1, -3, 1, -3): G = w, alpha = mean(-w) = 1, the map is x itself;
 * pixels >= half the map's maximum are set to the range's low end 0 and the logit changes by
 * -sum_removed w x. */
static void test_counterfactual(void) {
    sal_model *m = pp_net(false);
    if (!m) return;
    int64_t cls[2] = {1, 0};
    sal_tensor x = rand_input(12, 4, (int64_t[]){2, 1, 5, 5});
    const char *cf[] = {"counterfactual=true"}, *lin[] = {"relu=false", "upsample=none"},
               *cfn[] = {"counterfactual=true", "upsample=none"};
    sal_explanation *c1 = explain(m, &x, "gradcam", cls, 2, cfn, 0), *g0 = explain(m, &x, "gradcam", cls, 2, lin, 0);
    sal_explanation *cu = explain(m, &x, "gradcam", cls, 1, cf, 0), *gb = explain(m, &x, "guided_backprop", cls, 0, NULL, 0);
    sal_explanation *gg = explain(m, &x, "guided_gradcam", cls, 1, cf, 0);
    if (c1 && g0 && cu && gb && gg) {
        const sal_tensor *l = sal_explanation_map(g0);
        int64_t n = sal_tensor_numel(l);
        double want[64] = {0}, pos = 0;
        for (int64_t i = 0; i < n && i < 64; i++) want[i] = fmax(0, -(double)sal_f32(l)[i]), pos += want[i];
        check_close("counterfactual Grad-CAM = ReLU(-Grad-CAM before its ReLU)", sal_f32(sal_explanation_map(c1)), want,
                    n, 1e-7);
        CHECK(pos > 0, "the counterfactual map is zero everywhere: a weak test");
        const float *a = sal_f32(sal_explanation_map(cu)), *b = sal_f32(sal_explanation_map(gb));
        double gw[50];
        for (int i = 0; i < 50; i++) gw[i] = (double)a[i] * b[i];
        check_close("counterfactual guided Grad-CAM = counterfactual Grad-CAM x guided backprop",
                    sal_f32(sal_explanation_map(gg)), gw, 50, 1e-7);
        CHECK(sal_explanation_metric(gg, "counterfactual_checked") >= 0, "guided Grad-CAM runs the check");
    }
    sal_explanation_free(c1);
    sal_explanation_free(g0);
    sal_explanation_free(cu);
    sal_explanation_free(gb);
    sal_explanation_free(gg);
    sal_tensor_free(&x);
    sal_model_free(m);

    /* the check, in closed form */
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<cf>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 2, 2}) == SAL_OK);
    t_const(g, "k", 4, (int64_t[]){1, 1, 1, 1}, (const float[]){1});
    t_const(g, "w", 2, (int64_t[]){2, 4}, (const float[]){1, -3, 1, -3, 0, 0, 0, 0});
    SAL_ASSERT(sal_graph_add_node(g, "Conv", "conv", 2, (const char *[]){"x", "k"}, 1, (const char *[]){"A"}, 1,
                                  (sal_attr[]){sal_attr_make_ints("kernel_shape", 2, (int64_t[]){1, 1})}) == SAL_OK);
    SAL_ASSERT(sal_graph_add_node(g, "Flatten", "flat", 1, (const char *[]){"A"}, 1, (const char *[]){"f"}, 0, NULL) ==
               SAL_OK);
    SAL_ASSERT(sal_graph_add_node(g, "Gemm", "fc", 2, (const char *[]){"f", "w"}, 1, (const char *[]){"y"}, 1,
                                  (sal_attr[]){sal_attr_make_int("transB", 1)}) == SAL_OK);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    float xv[12] = {0.2f, 2, 0.2f, 2, /* the -3 pixels go: +12 */ 2, 0.2f, 2, 0.2f, /* the +1 pixels go: -4 */ 0, 0, 0, 0};
    sal_tensor x3 = t_tensor_of(4, (int64_t[]){3, 1, 2, 2}, xv);
    sal_explain_opts o = {.method = "gradcam", .nparams = 2, .params = (const char *[]){"counterfactual=true", "layer=A"},
                          .target = SAL_TARGET_INDEX, .classes = (int64_t[]){0, 0, 0}, .nclasses = 3, .data_lo = 0,
                          .data_hi = 3};
    sal_explanation *e = NULL;
    CHECK_OK(sal_explain(g, &x3, &o, &e));
    if (e) {
        CHECK(sal_explanation_metric(e, "counterfactual_raised") == 1 && sal_explanation_metric(e, "counterfactual_checked") == 2 &&
                  fabs(sal_explanation_metric(e, "counterfactual_mean_change") - 4) < 1e-5,
              "counterfactual check: raised %g of %g, mean change %g (want 1 of 2, 4)",
              sal_explanation_metric(e, "counterfactual_raised"), sal_explanation_metric(e, "counterfactual_checked"),
              sal_explanation_metric(e, "counterfactual_mean_change"));
        char *js = NULL;
        double d[2] = {0, 0};
        const char *p = NULL;
        if (sal_explanation_json(e, &js) == SAL_OK) p = strstr(js, "\"counterfactual_score_change\": [");
        CHECK(p && sscanf(p + 32, "%lf, %lf, null]", &d[0], &d[1]) == 2 && fabs(d[0] - 12) < 1e-5 && fabs(d[1] + 4) < 1e-5,
              "per-sample score changes %s (want 12, -4, null)", p ? p : "missing");
        free(js);
    }
    sal_explanation_free(e);
    sal_tensor_free(&x3);
    sal_model_free(g);
}

int main(void) {
    test_resample();
    test_cam_closed_form();
    test_formulas();
    test_cumulative();
    test_guided_gradcam();
    test_dense_head();
    test_counterfactual();
    test_scorecam();
    test_scorecam_relu_order();
    test_fullgrad();
    test_errors();
    test_alloc_failures();
    return t_done("test_methods_cam");
}
