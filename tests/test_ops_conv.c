/* Conv, MaxPool, AveragePool, global pools and Pad: forward against direct loops written here,
 * gradients against finite differences, and the adjoint identity <dY, conv(X)> = <dX, X> = <dW, W>
 * on layers big enough to take the chunked and multi-threaded paths. */
#include "testutil.h"

/* ---- running one node ---- */

/* Builds a one-node graph (inputs "i0".., constants where cst[i], omitted where in[i].ndim < 0), runs it
 * forward into *y and, when seed is given, backward into grads[i] for every float input not constant. */
static sal_status run1(const char *op, int64_t opset, int nin, const sal_tensor *in, const bool *cst, int nattr,
                       sal_attr *attr, sal_tensor *y, const sal_tensor *seed, sal_tensor *grads) {
    sal_model *g = NULL;
    sal_session *s = NULL;
    char names[8][16];
    const char *inn[8];
    sal_tensor feeds[8] = {{0}};
    int nfeed = 0;
    bool *wrt = NULL;
    sal_status st = sal_graph_create("<test>", &g);
    if (st != SAL_OK) return st;
    g->opset = opset;
    for (int i = 0; i < nin && st == SAL_OK; i++) {
        inn[i] = "";
        if (in[i].ndim < 0) continue;
        snprintf(names[i], sizeof names[i], "i%d", i);
        inn[i] = names[i];
        if (cst[i]) {
            sal_tensor t = {0};
            st = sal_tensor_copy(&t, &in[i]);
            if (st == SAL_OK) st = sal_graph_add_const(g, names[i], &t);
        } else {
            st = sal_graph_add_input(g, names[i], in[i].dtype, in[i].ndim, in[i].dim);
            if (st == SAL_OK) st = sal_tensor_copy(&feeds[nfeed++], &in[i]);
        }
    }
    if (st == SAL_OK) st = sal_graph_add_node(g, op, "nd", nin, inn, 1, (const char *[]){"y"}, nattr, attr);
    else
        for (int i = 0; i < nattr; i++) sal_attr_clear(&attr[i]);
    if (st == SAL_OK) st = sal_graph_add_output(g, "y");
    if (st == SAL_OK) st = sal_graph_finalize(g);
    if (st == SAL_OK) st = sal_session_new(g, &s);
    if (st == SAL_OK) st = sal_exec_forward(s, feeds);
    int out = sal_graph_find(g, "y");
    if (st == SAL_OK) st = sal_tensor_copy(y, &s->act[out]);
    if (st == SAL_OK && seed) {
        wrt = sal_calloc((size_t)g->nval, sizeof *wrt);
        for (int i = 0; i < nin; i++)
            if (in[i].ndim >= 0 && in[i].dtype == SAL_F32 && !cst[i]) wrt[sal_graph_find(g, names[i])] = true;
        sal_backward_opts bo = {.wrt = wrt};
        st = sal_exec_backward(s, 1, &out, seed, &bo);
        for (int i = 0; i < nin && st == SAL_OK; i++)
            if (in[i].ndim >= 0 && in[i].dtype == SAL_F32 && !cst[i])
                st = sal_tensor_copy(&grads[i], &s->grad[sal_graph_find(g, names[i])]);
    }
    sal_free(wrt);
    for (int i = 0; i < nfeed; i++) sal_tensor_free(&feeds[i]);
    sal_session_free(s);
    sal_model_free(g);
    return st;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double dot(const sal_tensor *a, const sal_tensor *b) {
    double s = 0;
    for (int64_t i = 0, n = sal_tensor_numel(a); i < n; i++) s += (double)sal_f32(a)[i] * sal_f32(b)[i];
    return s;
}

static sal_tensor t_i64(int n, const int64_t *v) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_I64, 1, (int64_t[]){n}) == SAL_OK);
    memcpy(t.data, v, sizeof *v * (size_t)n);
    return t;
}

static void free_all(int n, sal_tensor *t) {
    for (int i = 0; i < n; i++) sal_tensor_free(&t[i]);
}

/* ---- 2-D configurations; 1-D ones have H = KH = 1 and run as rank 3 ---- */

typedef struct {
    union { /* written as .v = {...} in the tables below */
        int64_t v[16];
        struct {
            int64_t N, C, H, W, M, G, KH, KW, sh, sw, dh, dw, pt, pl, pb, pr; /* pads top, left, bottom, right */
        };
    };
    bool bias, one_d;
    const char *autopad; /* NULL: explicit pads; else pads above are what it should choose */
    bool ceil, count_pad; /* pooling */
} cfg;

static int64_t out_len(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1, bool ceil) {
    int64_t span = in + p0 + p1 - (k - 1) * d - 1;
    int64_t o = (ceil ? (span + s - 1) / s : span / s) + 1;
    if (ceil && (o - 1) * s >= in + p0) o--;
    return o;
}

/* Attributes of a configuration: kernel_shape (when with_k), strides, dilations, pads or auto_pad. */
static int cfg_attrs(const cfg *c, bool with_k, bool dil, sal_attr *at) {
    int n = 0, r = c->one_d ? 1 : 2;
    int64_t k[2] = {c->KH, c->KW}, s[2] = {c->sh, c->sw}, d[2] = {c->dh, c->dw};
    int64_t p[4] = {c->pt, c->pl, c->pb, c->pr}, p1[2] = {c->pl, c->pr};
    if (with_k) at[n++] = sal_attr_make_ints("kernel_shape", r, k + 2 - r);
    at[n++] = sal_attr_make_ints("strides", r, s + 2 - r);
    if (dil) at[n++] = sal_attr_make_ints("dilations", r, d + 2 - r);
    if (c->autopad) at[n++] = sal_attr_make_string("auto_pad", c->autopad);
    else at[n++] = sal_attr_make_ints("pads", 2 * r, c->one_d ? p1 : p);
    return n;
}

static sal_tensor cfg_x(sal_rng *r, const cfg *c) {
    return c->one_d ? t_rand(r, 3, (int64_t[]){c->N, c->C, c->W}, 1) : t_rand(r, 4, (int64_t[]){c->N, c->C, c->H, c->W}, 1);
}

/* ---- Conv ---- */

/* Direct convolution: y (N, M, OH, OW) from x (N, C, H, W), w (M, C/G, KH, KW), b (M) or NULL. */
static void ref_conv(const cfg *c, const float *x, const float *w, const float *b, float *y, int64_t OH, int64_t OW) {
    int64_t Cg = c->C / c->G, Mg = c->M / c->G;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t m = 0; m < c->M; m++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = b ? b[m] : 0;
                    int64_t g = m / Mg;
                    for (int64_t ci = 0; ci < Cg; ci++)
                        for (int64_t kh = 0; kh < c->KH; kh++)
                            for (int64_t kw = 0; kw < c->KW; kw++) {
                                int64_t ih = oh * c->sh - c->pt + kh * c->dh, iw = ow * c->sw - c->pl + kw * c->dw;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                                acc += (double)x[((n * c->C + g * Cg + ci) * c->H + ih) * c->W + iw] *
                                       w[((m * Cg + ci) * c->KH + kh) * c->KW + kw];
                            }
                    y[((n * c->M + m) * OH + oh) * OW + ow] = (float)acc;
                }
}

static void conv_inputs(sal_rng *r, const cfg *c, sal_tensor in[3]) {
    in[0] = cfg_x(r, c);
    int64_t Cg = c->C / c->G;
    in[1] = c->one_d ? t_rand(r, 3, (int64_t[]){c->M, Cg, c->KW}, 0.5f)
                     : t_rand(r, 4, (int64_t[]){c->M, Cg, c->KH, c->KW}, 0.5f);
    in[2] = c->bias ? t_rand(r, 1, (int64_t[]){c->M}, 1) : (sal_tensor){.ndim = -1};
}

static void test_conv_forward(sal_rng *r, const char *what, cfg c, bool with_k) {
    if (c.one_d) c.H = c.KH = c.sh = c.dh = 1, c.pt = c.pb = 0;
    sal_tensor in[3], y = {0};
    conv_inputs(r, &c, in);
    sal_attr at[8];
    int na = cfg_attrs(&c, with_k, true, at);
    at[na++] = sal_attr_make_int("group", c.G);
    sal_status st = run1("Conv", 13, 3, in, (bool[]){false, true, true}, na, at, &y, NULL, NULL);
    CHECK(st == SAL_OK, "Conv %s: %s", what, sal_last_error());
    int64_t OH = out_len(c.H, c.KH, c.sh, c.dh, c.pt, c.pb, false), OW = out_len(c.W, c.KW, c.sw, c.dw, c.pl, c.pr, false);
    if (st == SAL_OK) {
        bool shape = c.one_d ? y.ndim == 3 && y.dim[2] == OW : y.ndim == 4 && y.dim[2] == OH && y.dim[3] == OW;
        CHECK(shape && y.dim[0] == c.N && y.dim[1] == c.M, "Conv %s: output shape", what);
        if (shape) {
            float *ref = sal_malloc(sizeof(float) * (size_t)(c.N * c.M * OH * OW));
            ref_conv(&c, sal_f32(&in[0]), sal_f32(&in[1]), c.bias ? sal_f32(&in[2]) : NULL, ref, OH, OW);
            double d = max_abs_diff(ref, sal_f32(&y), c.N * c.M * OH * OW);
            CHECK(d < 1e-4, "Conv %s: differs from direct loops by %g", what, d);
            sal_free(ref);
        }
    }
    sal_tensor_free(&y);
    free_all(3, in);
}

static void gc(const char *op, int nin, sal_tensor *in, const bool *cst, int nattr, sal_attr *attr, uint64_t seed) {
    t_gradcheck((t_gradcheck_spec){.op = op, .nin = nin, .in = in, .is_const = cst, .nattr = nattr, .attr = attr,
                                   .seed = seed, .maxel = 40});
    free_all(nin, in);
}

static void test_conv_grad(sal_rng *r, cfg c) {
    if (c.one_d) c.H = c.KH = c.sh = c.dh = 1, c.pt = c.pb = 0;
    sal_tensor in[3];
    conv_inputs(r, &c, in);
    sal_attr at[8];
    int na = cfg_attrs(&c, false, true, at);
    at[na++] = sal_attr_make_int("group", c.G);
    gc("Conv", 3, in, (bool[]){false, true, true}, na, at, 5);
}

/* Conv without bias is linear in X and in W: <r, Y> = <dX, X> = <dW, W> for any seed r. Consumes
 * x, w and the attributes (given twice: one set per run). With constant weights (wconst) only dX is
 * wanted, which some kernels take a path of their own for. */
static void conv_adjoint(sal_rng *r, const char *what, sal_tensor x, sal_tensor w, int na, sal_attr *at,
                         sal_attr *at2, bool wconst) {
    sal_tensor in[3] = {x, w, {.ndim = -1}}, y = {0}, gr[3] = {{0}}, seed = {0};
    const bool cst[3] = {false, wconst, true};
    /* a forward pass to learn the output shape, then forward and backward with a random seed */
    sal_status st = run1("Conv", 13, 3, in, cst, na, at, &y, NULL, NULL);
    if (st == SAL_OK) {
        seed = t_rand(r, y.ndim, y.dim, 1);
        st = run1("Conv", 13, 3, in, cst, na, at2, &y, &seed, gr);
    } else {
        for (int i = 0; i < na; i++) sal_attr_clear(&at2[i]);
    }
    CHECK(st == SAL_OK, "Conv %s: %s", what, sal_last_error());
    if (st == SAL_OK) {
        double a = dot(&seed, &y), bx = dot(&gr[0], &in[0]);
        CHECK(fabs(a - bx) < 1e-4 * (fabs(a) + 1), "Conv %s adjoint: <dY,Y> %.8g, <dX,X> %.8g", what, a, bx);
        if (!wconst) {
            double bw = dot(&gr[1], &in[1]);
            CHECK(fabs(a - bw) < 1e-4 * (fabs(a) + 1), "Conv %s adjoint: <dY,Y> %.8g, <dW,W> %.8g", what, a, bw);
        }
    }
    sal_tensor_free(&y);
    sal_tensor_free(&seed);
    free_all(3, gr);
    free_all(3, in);
}

static void test_conv_adjoint_w(sal_rng *r, const char *what, cfg c, bool wconst) {
    if (c.one_d) c.H = c.KH = c.sh = c.dh = 1, c.pt = c.pb = 0;
    c.bias = false;
    sal_tensor in[3];
    conv_inputs(r, &c, in);
    sal_attr at[8], at2[8];
    int na = cfg_attrs(&c, false, true, at);
    at[na++] = sal_attr_make_int("group", c.G);
    cfg_attrs(&c, false, true, at2);
    at2[na - 1] = sal_attr_make_int("group", c.G);
    conv_adjoint(r, what, in[0], in[1], na, at, at2, wconst);
}

static void test_conv_adjoint(sal_rng *r, const char *what, cfg c) { test_conv_adjoint_w(r, what, c, false); }

static void test_conv(sal_rng *r) {
    /* .v = {N, C, H, W, M, G, KH, KW, sh, sw, dh, dw, pt, pl, pb, pr} */
    test_conv_forward(r, "3x3 pad 1", (cfg){.v = {2, 3, 7, 6, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, .bias = true}, false);
    test_conv_forward(r, "kernel_shape given", (cfg){.v = {2, 3, 7, 6, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, .bias = true}, true);
    test_conv_forward(r, "strided dilated asymmetric, 2 groups", (cfg){.v = {3, 4, 9, 8, 6, 2, 3, 2, 2, 1, 2, 1, 2, 0, 1, 1}, .bias = true}, false);
    test_conv_forward(r, "depthwise x2", (cfg){.v = {2, 4, 8, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, .bias = true}, false);
    test_conv_forward(r, "depthwise strided dilated", (cfg){.v = {1, 3, 9, 7, 3, 3, 3, 3, 2, 2, 2, 2, 2, 1, 0, 2}}, false);
    test_conv_forward(r, "1x1", (cfg){.v = {3, 5, 6, 5, 7, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, .bias = true}, false);
    test_conv_forward(r, "1x1 2 groups batch 1", (cfg){.v = {1, 4, 6, 5, 6, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, .bias = true}, false);
    test_conv_forward(r, "1x1 stride 2", (cfg){.v = {2, 4, 7, 7, 3, 1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0}}, false);
    test_conv_forward(r, "1-D", (cfg){.v = {2, 3, 1, 11, 5, 1, 1, 4, 1, 2, 1, 1, 0, 1, 0, 2}, .bias = true, .one_d = true}, false);
    test_conv_forward(r, "1-D depthwise", (cfg){.v = {2, 3, 1, 10, 3, 3, 1, 3, 1, 1, 1, 2, 0, 2, 0, 2}, .bias = true, .one_d = true}, false);
    test_conv_forward(r, "SAME_UPPER", (cfg){.v = {2, 3, 8, 6, 4, 1, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1}, .bias = true, .autopad = "SAME_UPPER"}, false);
    test_conv_forward(r, "SAME_LOWER", (cfg){.v = {2, 3, 8, 6, 4, 1, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0}, .bias = true, .autopad = "SAME_LOWER"}, false);
    test_conv_forward(r, "VALID", (cfg){.v = {2, 2, 7, 6, 3, 1, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0}, .autopad = "VALID"}, false);
    /* one input channel, 3x3, stride 1: direct loops over the padded plane (conv.c: conv33), rows
     * of 28 and 10 in vectors of 8 (the last overlapping), of 4 in the flat pass; any pads */
    test_conv_forward(r, "one channel 28x28", (cfg){.v = {3, 1, 28, 28, 6, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, .bias = true}, false);
    test_conv_forward(r, "one channel pads 2 0 0 1", (cfg){.v = {1, 1, 9, 11, 5, 1, 3, 3, 1, 1, 1, 1, 2, 0, 0, 1}}, false);
    test_conv_forward(r, "one channel no pads", (cfg){.v = {2, 1, 7, 6, 4, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0}, .bias = true}, false);
    /* big enough for column chunks (Kc * OW * rows > COL_CHUNK); batch 1 and batch 3 take different paths */
    test_conv_forward(r, "chunked batch 1", (cfg){.v = {1, 64, 48, 64, 8, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, .bias = true}, false);
    test_conv_forward(r, "chunked batch 3 strided", (cfg){.v = {3, 64, 50, 66, 8, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, .bias = true}, false);

    test_conv_grad(r, (cfg){.v = {2, 3, 5, 4, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, .bias = true});
    test_conv_grad(r, (cfg){.v = {2, 1, 6, 5, 5, 1, 3, 3, 1, 1, 1, 1, 1, 2, 1, 0}, .bias = true});
    test_conv_grad(r, (cfg){.v = {1, 1, 9, 11, 5, 1, 3, 3, 1, 1, 1, 1, 2, 0, 0, 1}});
    test_conv_grad(r, (cfg){.v = {1, 2, 5, 4, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, .bias = true});
    test_conv_grad(r, (cfg){.v = {2, 4, 7, 6, 4, 2, 3, 2, 2, 1, 2, 1, 2, 0, 1, 1}, .bias = true});
    test_conv_grad(r, (cfg){.v = {2, 3, 6, 6, 6, 3, 3, 3, 2, 1, 1, 2, 1, 2, 1, 0}, .bias = true});
    test_conv_grad(r, (cfg){.v = {2, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, .bias = true});
    test_conv_grad(r, (cfg){.v = {2, 3, 1, 9, 4, 1, 1, 3, 1, 2, 1, 2, 0, 1, 0, 1}, .bias = true, .one_d = true});
    test_conv_grad(r, (cfg){.v = {1, 2, 6, 5, 3, 1, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0}, .bias = true, .autopad = "SAME_LOWER"});
    {   /* 3-D */
        sal_tensor in[3] = {t_rand(r, 5, (int64_t[]){2, 2, 4, 4, 3}, 1), t_rand(r, 5, (int64_t[]){3, 2, 2, 3, 2}, 0.5f),
                            t_rand(r, 1, (int64_t[]){3}, 1)};
        sal_attr at[2] = {sal_attr_make_ints("pads", 6, (int64_t[]){1, 0, 1, 0, 1, 0}),
                          sal_attr_make_ints("strides", 3, (int64_t[]){1, 2, 1})};
        gc("Conv", 3, in, (bool[]){false, true, true}, 2, at, 6);
    }
    test_conv_adjoint(r, "chunked batch 1", (cfg){.v = {1, 64, 48, 64, 8, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}});
    test_conv_adjoint(r, "chunked batch 3 dilated", (cfg){.v = {3, 64, 50, 66, 8, 1, 3, 3, 2, 1, 2, 2, 1, 2, 2, 1}});
    test_conv_adjoint(r, "2 groups batch 1", (cfg){.v = {1, 32, 40, 30, 16, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}});
    test_conv_adjoint(r, "1x1 batch 3", (cfg){.v = {3, 64, 16, 16, 32, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}});
    test_conv_adjoint(r, "1x1 batch 1", (cfg){.v = {1, 64, 32, 32, 32, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}});
    test_conv_adjoint(r, "depthwise", (cfg){.v = {3, 32, 40, 40, 64, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}});
    test_conv_adjoint(r, "depthwise stride 1", (cfg){.v = {1, 64, 40, 40, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}});
    /* one input channel, 3x3, stride 1, dX alone (conv.c: conv33_bwd): one sample, samples over
     * threads, any pads */
    const struct { const char *what; cfg c; } dx_only[] = {
        {"one channel dX batch 1", {.v = {1, 1, 28, 28, 32, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}}},
        {"one channel dX batch 3", {.v = {3, 1, 28, 28, 6, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}}},
        {"one channel dX pads 2 0 0 1", {.v = {1, 1, 17, 13, 7, 1, 3, 3, 1, 1, 1, 1, 2, 0, 0, 1}}},
        {"one channel dX no pads", {.v = {2, 1, 7, 6, 4, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0}}}};
    for (size_t i = 0; i < sizeof dx_only / sizeof *dx_only; i++)
        test_conv_adjoint_w(r, dx_only[i].what, dx_only[i].c, true);
    test_conv_adjoint(r, "1-D", (cfg){.v = {1, 32, 1, 999, 32, 1, 1, 5, 1, 1, 1, 2, 0, 3, 0, 4}, .one_d = true});
    for (int n = 1; n <= 2; n++) { /* 3-D, in sequential chunks at batch 1 */
        sal_attr at[2] = {sal_attr_make_ints("pads", 6, (int64_t[]){1, 1, 1, 1, 1, 1}),
                          sal_attr_make_ints("dilations", 3, (int64_t[]){2, 1, 1})};
        sal_attr at2[2] = {sal_attr_make_ints("pads", 6, (int64_t[]){1, 1, 1, 1, 1, 1}),
                           sal_attr_make_ints("dilations", 3, (int64_t[]){2, 1, 1})};
        conv_adjoint(r, n == 1 ? "3-D batch 1" : "3-D batch 2", t_rand(r, 5, (int64_t[]){n, 32, 12, 24, 24}, 1),
                     t_rand(r, 5, (int64_t[]){16, 32, 3, 3, 3}, 1), 2, at, at2, false);
    }

    /* bad shapes are refused with the node's name */
    sal_tensor y = {0};
    {
        sal_tensor in[3] = {t_rand(r, 4, (int64_t[]){1, 3, 5, 5}, 1), t_rand(r, 4, (int64_t[]){4, 2, 3, 3}, 1), {.ndim = -1}};
        CHECK_FAILS(run1("Conv", 13, 3, in, (bool[]){false, true, true}, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE, "'nd'");
        free_all(3, in);
    }
    {
        sal_tensor in[3] = {t_rand(r, 4, (int64_t[]){1, 2, 2, 2}, 1), t_rand(r, 4, (int64_t[]){4, 2, 3, 3}, 1), {.ndim = -1}};
        CHECK_FAILS(run1("Conv", 13, 3, in, (bool[]){false, true, true}, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE, "does not fit");
        free_all(3, in);
    }
    {
        sal_tensor in[3] = {t_rand(r, 4, (int64_t[]){1, 4, 5, 5}, 1), t_rand(r, 4, (int64_t[]){4, 2, 3, 3}, 1),
                            t_rand(r, 1, (int64_t[]){3}, 1)};
        sal_attr at[1] = {sal_attr_make_int("group", 2)};
        CHECK_FAILS(run1("Conv", 13, 3, in, (bool[]){false, true, true}, 1, at, &y, NULL, NULL), SAL_ERR_SHAPE, "bias");
        free_all(3, in);
    }
    { /* weights with an empty kernel axis (found by fuzzing: dilation 2 made the dilated window negative) */
        sal_tensor in[3] = {t_rand(r, 4, (int64_t[]){1, 3, 5, 5}, 1), t_rand(r, 4, (int64_t[]){4, 3, 0, 3}, 1),
                            {.ndim = -1}};
        sal_attr at[2] = {sal_attr_make_ints("dilations", 2, (int64_t[]){2, 2}),
                          sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
        CHECK_FAILS(run1("Conv", 13, 3, in, (bool[]){false, true, true}, 2, at, &y, NULL, NULL), SAL_ERR_SHAPE,
                    "kernel is empty along spatial dimension 0");
        free_all(3, in);
    }
    { /* a dilated window past 2^40: the dilation from the attributes reaches the shared check */
        sal_tensor in[3] = {t_rand(r, 4, (int64_t[]){1, 3, 5, 5}, 1), t_rand(r, 4, (int64_t[]){4, 3, 3, 3}, 1),
                            {.ndim = -1}};
        sal_attr at[1] = {sal_attr_make_ints("dilations", 2, (int64_t[]){1, (int64_t)1 << 40})};
        CHECK_FAILS(run1("Conv", 13, 3, in, (bool[]){false, true, true}, 1, at, &y, NULL, NULL), SAL_ERR_SHAPE,
                    "spatial dimension 1: dilated window of 3 taps spaced 1099511627776 is too large");
        free_all(3, in);
    }
    sal_tensor_free(&y);
}

/* ---- pooling ---- */

/* Direct pooling of x (N, C, H, W) into y (N, C, OH, OW): max, or mean over the taps inside the
 * input (count_pad: inside input and explicit pads). */
static void ref_pool(const cfg *c, bool avg, const float *x, float *y, int64_t OH, int64_t OW) {
    for (int64_t p = 0; p < c->N * c->C; p++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double acc = avg ? 0 : -INFINITY;
                int64_t cnt = 0;
                for (int64_t kh = 0; kh < c->KH; kh++)
                    for (int64_t kw = 0; kw < c->KW; kw++) {
                        int64_t ih = oh * c->sh - c->pt + kh * c->dh, iw = ow * c->sw - c->pl + kw * c->dw;
                        bool in = ih >= 0 && ih < c->H && iw >= 0 && iw < c->W;
                        bool padded = ih >= -c->pt && ih < c->H + c->pb && iw >= -c->pl && iw < c->W + c->pr;
                        if (in || (c->count_pad && padded)) cnt++;
                        if (!in) continue;
                        double v = x[(p * c->H + ih) * c->W + iw];
                        acc = avg ? acc + v : fmax(acc, v);
                    }
                y[(p * OH + oh) * OW + ow] = (float)(avg ? acc / (double)cnt : acc);
            }
}

static int pool_attrs(const cfg *c, bool avg, sal_attr *at) {
    int na = cfg_attrs(c, true, !avg && (c->dh > 1 || c->dw > 1), at);
    if (c->ceil) at[na++] = sal_attr_make_int("ceil_mode", 1);
    if (avg && c->count_pad) at[na++] = sal_attr_make_int("count_include_pad", 1);
    return na;
}

static void test_pool_case(sal_rng *r, const char *op, const char *what, cfg c) {
    bool avg = !strcmp(op, "AveragePool");
    if (c.one_d) c.H = c.KH = c.sh = c.dh = 1, c.pt = c.pb = 0;
    if (c.dh == 0) c.dh = c.dw = 1;
    sal_tensor x = cfg_x(r, &c), y = {0};
    sal_attr at[8];
    int na = pool_attrs(&c, avg, at);
    sal_status st = run1(op, 13, 1, &x, (bool[]){false}, na, at, &y, NULL, NULL);
    CHECK(st == SAL_OK, "%s %s: %s", op, what, sal_last_error());
    int64_t OH = out_len(c.H, c.KH, c.sh, c.dh, c.pt, c.pb, c.ceil), OW = out_len(c.W, c.KW, c.sw, c.dw, c.pl, c.pr, c.ceil);
    if (st == SAL_OK) {
        bool shape = c.one_d ? y.ndim == 3 && y.dim[2] == OW : y.ndim == 4 && y.dim[2] == OH && y.dim[3] == OW;
        CHECK(shape, "%s %s: output shape", op, what);
        if (shape) {
            float *ref = sal_malloc(sizeof(float) * (size_t)(c.N * c.C * OH * OW));
            ref_pool(&c, avg, sal_f32(&x), ref, OH, OW);
            double d = max_abs_diff(ref, sal_f32(&y), c.N * c.C * OH * OW);
            CHECK(d < 1e-5, "%s %s: differs from direct loops by %g", op, what, d);
            sal_free(ref);
        }
    }
    sal_tensor_free(&y);
    na = pool_attrs(&c, avg, at);
    gc(op, 1, &x, (bool[]){false}, na, at, 9);
}

/* MaxPool's backward where windows tie (inputs drawn from {0, 1, 2}): the gradient goes to the first
 * maximum of each window in tap order, as in these direct loops, with padding, ceil mode and
 * dilation; and the forward of the same inputs (the row path for undilated 2-D windows) gives the
 * maxima. */
static void test_pool_ties(sal_rng *r, const char *what, cfg c) {
    if (c.dh == 0) c.dh = c.dw = 1;
    sal_tensor x = cfg_x(r, &c), y = {0}, seed = {0}, g = {0};
    float *xv = sal_f32(&x);
    for (int64_t i = 0, n = sal_tensor_numel(&x); i < n; i++) xv[i] = (float)(sal_rng_u64(r) % 3);
    int64_t OH = out_len(c.H, c.KH, c.sh, c.dh, c.pt, c.pb, c.ceil), OW = out_len(c.W, c.KW, c.sw, c.dw, c.pl, c.pr, c.ceil);
    CHECK_OK(sal_tensor_alloc(&seed, SAL_F32, 4, (int64_t[]){c.N, c.C, OH, OW}));
    for (int64_t i = 0; i < c.N * c.C * OH * OW; i++) sal_f32(&seed)[i] = (float)sal_rng_normal(r);
    sal_attr at[8];
    int na = pool_attrs(&c, false, at);
    sal_status st = run1("MaxPool", 13, 1, &x, (bool[]){false}, na, at, &y, &seed, &g);
    CHECK(st == SAL_OK, "MaxPool ties %s: %s", what, sal_last_error());
    if (st == SAL_OK) {
        float *ref = sal_calloc((size_t)sal_tensor_numel(&x), sizeof *ref);
        for (int64_t p = 0; p < c.N * c.C; p++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    int64_t best = -1;
                    for (int64_t kh = 0; kh < c.KH; kh++)
                        for (int64_t kw = 0; kw < c.KW; kw++) {
                            int64_t ih = oh * c.sh - c.pt + kh * c.dh, iw = ow * c.sw - c.pl + kw * c.dw;
                            if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                            int64_t i = (p * c.H + ih) * c.W + iw;
                            if (best < 0 || xv[i] > xv[best]) best = i;
                        }
                    if (best >= 0) ref[best] += sal_f32(&seed)[(p * OH + oh) * OW + ow];
                }
        double d = max_abs_diff(ref, sal_f32(&g), sal_tensor_numel(&x));
        CHECK(d < 1e-5, "MaxPool ties %s: gradient differs from the first-maximum rule by %g", what, d);
        float *ry = sal_malloc(sizeof(float) * (size_t)(c.N * c.C * OH * OW));
        ref_pool(&c, false, xv, ry, OH, OW);
        d = max_abs_diff(ry, sal_f32(&y), c.N * c.C * OH * OW);
        CHECK(d == 0, "MaxPool ties %s: maxima differ from direct loops by %g", what, d);
        sal_free(ry);
        sal_free(ref);
    }
    sal_tensor_free(&x), sal_tensor_free(&y), sal_tensor_free(&seed), sal_tensor_free(&g);
}

/* Two 3x3 / stride 2 / padding 1 poolings of one input, summed: the first backward sets the input's
 * gradient, the second adds to it (maxpool_3s2_bwd's two ways of writing), over 16 planes, which
 * run on the threads each with its buffer; against twice the first-maximum rule. With relu, one
 * pooling over Relu(x), whose backward then writes x's gradient itself (sal_opctx.relu_in): the rule
 * on max(x, 0), 0 where x is not positive. */
static void test_pool_3s2_graph(bool relu) {
    sal_rng rs, *r = &rs; /* a stream of its own: the later tests' draws stay as they were */
    sal_rng_seed(r, relu ? 31 : 37);
    const int64_t C = 16, H = 32, W = 30, OH = 16, OW = 15;
    sal_model *g = NULL;
    sal_session *s = NULL;
    sal_tensor x = t_rand(r, 4, (int64_t[]){1, C, H, W}, 1), seed = {0};
    float *xv = sal_f32(&x);
    for (int64_t i = 0; i < C * H * W; i++) xv[i] = (float)(sal_rng_u64(r) % 4) - (relu ? 1.0f : 0.0f); /* ties */
    CHECK_OK(sal_tensor_alloc(&seed, SAL_F32, 4, (int64_t[]){1, C, OH, OW}));
    for (int64_t i = 0; i < C * OH * OW; i++) sal_f32(&seed)[i] = (float)sal_rng_normal(r);
    CHECK_OK(sal_graph_create("<test>", &g));
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 4, x.dim));
    if (relu) CHECK_OK(sal_graph_add_node(g, "Relu", "r", 1, (const char *[]){"x"}, 1, (const char *[]){"h"}, 0, NULL));
    for (int k = 0; k < 2 - relu; k++) {
        sal_attr at[3] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3}),
                          sal_attr_make_ints("strides", 2, (int64_t[]){2, 2}),
                          sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
        CHECK_OK(sal_graph_add_node(g, "MaxPool", k ? "b" : "a", 1, (const char *[]){relu ? "h" : "x"}, 1,
                                    (const char *[]){relu ? "y" : k ? "q" : "p"}, 3, at));
    }
    if (!relu)
        CHECK_OK(sal_graph_add_node(g, "Add", "sum", 2, (const char *[]){"p", "q"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    CHECK_OK(sal_session_new(g, &s));
    const sal_tensor *gx = NULL;
    CHECK_OK(sal_exec_forward(s, &x));
    int out = sal_graph_find(g, "y");
    CHECK_OK(sal_exec_backward(s, 1, &out, &seed, NULL));
    gx = &s->grad[sal_graph_find(g, "x")];
    float *ref = sal_calloc((size_t)(C * H * W), sizeof *ref);
    for (int64_t p = 0; p < C; p++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t best = -1;
                for (int64_t ih = 2 * oh - 1; ih <= 2 * oh + 1; ih++)
                    for (int64_t iw = 2 * ow - 1; iw <= 2 * ow + 1; iw++) {
                        int64_t i = (p * H + ih) * W + iw;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W && (best < 0 || fmaxf(xv[i], 0) > fmaxf(xv[best], 0)))
                            best = i;
                    }
                ref[best] += (relu ? xv[best] > 0 : 2) * sal_f32(&seed)[(p * OH + oh) * OW + ow];
            }
    bool ok = gx->data && sal_tensor_numel(gx) == C * H * W;
    CHECK(ok && max_abs_diff(ref, sal_f32(gx), C * H * W) < 1e-5,
          "MaxPool 3x3/2 pad 1 %s: the gradient differs from the first-maximum rule", relu ? "over a Relu" : "twice");
    sal_free(ref);
    sal_session_free(s);
    sal_model_free(g);
    sal_tensor_free(&x), sal_tensor_free(&seed);
}

static void test_pools(sal_rng *r) {
    test_pool_case(r, "MaxPool", "3x3/2 pad 1", (cfg){.v = {2, 3, 9, 8, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}});
    test_pool_ties(r, "3x3/2 pad 1", (cfg){.v = {2, 3, 21, 40, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}});
    test_pool_ties(r, "3x3/2 ceil pad 1", (cfg){.v = {1, 2, 17, 23, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, .ceil = true});
    {
        sal_rng r2; /* as in test_pool_3s2_graph */
        sal_rng_seed(&r2, 41);
        test_pool_ties(&r2, "3x3/2 pad 1 even", (cfg){.v = {1, 2, 16, 22, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}});
    }
    test_pool_3s2_graph(false);
    test_pool_3s2_graph(true);
    test_pool_ties(r, "3x2/1 asymmetric pads", (cfg){.v = {1, 2, 9, 30, 0, 0, 3, 2, 1, 1, 1, 1, 1, 0, 2, 1}});
    test_pool_ties(r, "dilated", (cfg){.v = {1, 2, 12, 15, 0, 0, 3, 3, 1, 2, 2, 2, 1, 1, 1, 1}});
    /* 2x2 stride 2 without padding takes a fast path: even and odd sizes, and ties (a constant
     * plane: the first tap wins, as in the general loop); its AVX-512 kernel (rows of windows in
     * registers of 16 values: 7, 14 and 20 windows a row, the last in a partial register) or AVX2's
     * (registers of 8, then 4, then a window alone: 14, 20 and 17 windows a row) and the portable
     * loops beside it */
    const struct { const char *what; cfg c; } pairs[] = {
        {"28x28", {.v = {2, 3, 28, 28, 0, 0, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0}}},
        {"14x40", {.v = {1, 2, 14, 40, 0, 0, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0}}},
        {"odd 9x35", {.v = {1, 3, 9, 35, 0, 0, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0}}}};
    for (int portable = 0; portable < 2; portable++)
        for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
            char what[64];
            snprintf(what, sizeof what, "2x2/2 %s%s", pairs[i].what, portable ? ", portable loops" : "");
            sal_portable_kernels = portable;
            test_pool_ties(r, what, pairs[i].c);
            sal_portable_kernels = false;
        }
    test_pool_case(r, "MaxPool", "2x2/2", (cfg){.v = {2, 3, 8, 6, 0, 0, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0}});
    test_pool_case(r, "MaxPool", "2x2/2 odd", (cfg){.v = {2, 2, 7, 9, 0, 0, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0}});
    test_pool_case(r, "MaxPool", "2x2/2 ceil", (cfg){.v = {2, 2, 7, 7, 0, 0, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0}, .ceil = true});
    test_pool_case(r, "MaxPool", "3x3/2 ceil pad 1", (cfg){.v = {1, 2, 8, 6, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, .ceil = true});
    test_pool_case(r, "MaxPool", "dilated asymmetric", (cfg){.v = {2, 2, 9, 8, 0, 0, 3, 2, 1, 2, 2, 3, 2, 1, 1, 2}});
    test_pool_case(r, "MaxPool", "1-D", (cfg){.v = {2, 3, 1, 11, 0, 0, 1, 3, 1, 2, 1, 1, 0, 1, 0, 1}, .one_d = true});
    test_pool_case(r, "MaxPool", "SAME_UPPER", (cfg){.v = {2, 2, 8, 6, 0, 0, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1}, .autopad = "SAME_UPPER"});
    test_pool_case(r, "MaxPool", "VALID", (cfg){.v = {2, 2, 8, 7, 0, 0, 2, 3, 2, 2, 1, 1, 0, 0, 0, 0}, .autopad = "VALID"});
    test_pool_case(r, "AveragePool", "3x3/2 pad 1", (cfg){.v = {2, 3, 9, 8, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}});
    test_pool_case(r, "AveragePool", "3x3/2 pad 1 count_include_pad",
                   (cfg){.v = {2, 3, 9, 8, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, .count_pad = true});
    test_pool_case(r, "AveragePool", "ceil count_include_pad",
                   (cfg){.v = {2, 2, 8, 7, 0, 0, 3, 3, 2, 2, 1, 1, 1, 0, 1, 1}, .ceil = true, .count_pad = true});
    test_pool_case(r, "AveragePool", "ceil", (cfg){.v = {2, 2, 7, 7, 0, 0, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0}, .ceil = true});
    test_pool_case(r, "AveragePool", "1-D", (cfg){.v = {2, 3, 1, 10, 0, 0, 1, 4, 1, 3, 1, 1, 0, 2, 0, 1}, .one_d = true});
    test_pool_case(r, "AveragePool", "SAME_LOWER", (cfg){.v = {2, 2, 8, 6, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0}, .autopad = "SAME_LOWER"});
    test_pool_case(r, "AveragePool", "SAME_UPPER count_include_pad",
                   (cfg){.v = {2, 2, 8, 6, 0, 0, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1}, .autopad = "SAME_UPPER", .count_pad = true});
    {   /* 3-D */
        sal_tensor x = t_rand(r, 5, (int64_t[]){1, 2, 4, 5, 4}, 1);
        sal_attr at[3] = {sal_attr_make_ints("kernel_shape", 3, (int64_t[]){2, 3, 2}),
                          sal_attr_make_ints("pads", 6, (int64_t[]){0, 1, 1, 1, 1, 0}),
                          sal_attr_make_ints("strides", 3, (int64_t[]){2, 2, 1})};
        gc("MaxPool", 1, &x, (bool[]){false}, 3, at, 10);
        x = t_rand(r, 5, (int64_t[]){1, 2, 4, 5, 4}, 1);
        at[0] = sal_attr_make_ints("kernel_shape", 3, (int64_t[]){2, 3, 2});
        at[1] = sal_attr_make_ints("pads", 6, (int64_t[]){0, 1, 1, 1, 1, 0});
        at[2] = sal_attr_make_int("count_include_pad", 1);
        gc("AveragePool", 1, &x, (bool[]){false}, 3, at, 10);
    }
    for (int stride = 1; stride <= 2; stride++) { /* ties go to the first maximum (stride 2: the fast path) */
        sal_tensor x = {0}, y = {0}, seed = {0}, gx = {0};
        SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 4, (int64_t[]){1, 1, 2, 2}) == SAL_OK);
        SAL_ASSERT(sal_tensor_alloc(&seed, SAL_F32, 4, (int64_t[]){1, 1, 1, 1}) == SAL_OK);
        sal_f32(&seed)[0] = 1.0f;
        sal_f32(&x)[1] = sal_f32(&x)[3] = 2.0f;
        sal_attr at[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                          sal_attr_make_ints("strides", 2, (int64_t[]){stride, stride})};
        CHECK_OK(run1("MaxPool", 13, 1, &x, (bool[]){false}, 2, at, &y, &seed, &gx));
        CHECK(gx.ndim == 4 && sal_f32(&gx)[1] == 1.0f && sal_f32(&gx)[3] == 0.0f,
              "MaxPool tie goes to the first maximum (stride %d)", stride);
        sal_tensor_free(&x), sal_tensor_free(&y), sal_tensor_free(&seed), sal_tensor_free(&gx);
    }
    {   /* the Indices output is refused, naming the node */
        sal_model *g;
        CHECK_OK(sal_graph_create(NULL, &g));
        CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){1, 1, 4, 4}));
        sal_attr at[1] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2})};
        CHECK_OK(sal_graph_add_node(g, "MaxPool", "mp", 1, (const char *[]){"x"}, 2, (const char *[]){"y", "idx"}, 1, at));
        CHECK_OK(sal_graph_add_output(g, "y"));
        CHECK_FAILS(sal_graph_finalize(g), SAL_ERR_UNSUPPORTED, "'mp'");
        sal_model_free(g);
    }
    {   /* window larger than the padded input */
        sal_tensor x = t_rand(r, 4, (int64_t[]){1, 1, 2, 2}, 1), y = {0};
        sal_attr at[1] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3})};
        CHECK_FAILS(run1("AveragePool", 13, 1, &x, (bool[]){false}, 1, at, &y, NULL, NULL), SAL_ERR_SHAPE, "'nd'");
        sal_tensor_free(&x), sal_tensor_free(&y);
    }
    /* global pools, ranks 3 to 5 */
    const int64_t shapes[3][5] = {{2, 3, 7}, {2, 3, 4, 5}, {1, 2, 3, 2, 3}};
    for (int k = 0; k < 3; k++) {
        int rank = 3 + k;
        for (int avg = 0; avg < 2; avg++) {
            const char *op = avg ? "GlobalAveragePool" : "GlobalMaxPool";
            sal_tensor x = t_rand(r, rank, shapes[k], 1), y = {0};
            CHECK_OK(run1(op, 13, 1, &x, (bool[]){false}, 0, NULL, &y, NULL, NULL));
            int64_t planes = shapes[k][0] * shapes[k][1], S = sal_tensor_numel(&x) / planes;
            bool ok = y.ndim == rank && sal_tensor_numel(&y) == planes;
            for (int64_t p = 0; ok && p < planes; p++) {
                double m = avg ? 0 : -INFINITY;
                for (int64_t i = 0; i < S; i++) m = avg ? m + sal_f32(&x)[p * S + i] / (double)S : fmax(m, sal_f32(&x)[p * S + i]);
                ok = fabs(m - sal_f32(&y)[p]) < 1e-5;
            }
            CHECK(ok, "%s of rank %d differs from a direct loop", op, rank);
            sal_tensor_free(&y);
            gc(op, 1, &x, (bool[]){false}, 0, NULL, 11);
        }
    }
}

/* ---- Pad ---- */

/* Direct padding of a 3-D x (A, B, C) by pads (3 begins, 3 ends) with value v. */
static void ref_pad(const int64_t *dim, const float *x, const int64_t *pads, float v, float *y) {
    int64_t o[3];
    for (int i = 0; i < 3; i++) o[i] = dim[i] + pads[i] + pads[3 + i];
    for (int64_t a = 0; a < o[0]; a++)
        for (int64_t b = 0; b < o[1]; b++)
            for (int64_t c = 0; c < o[2]; c++) {
                int64_t i = a - pads[0], j = b - pads[1], k = c - pads[2];
                bool in = i >= 0 && i < dim[0] && j >= 0 && j < dim[1] && k >= 0 && k < dim[2];
                y[(a * o[1] + b) * o[2] + c] = in ? x[(i * dim[1] + j) * dim[2] + k] : v;
            }
}

static void check_pad(const char *what, const sal_tensor *x, const int64_t *pads, float v, const sal_tensor *y) {
    int64_t o[3], n = 1;
    for (int i = 0; i < 3; i++) n *= o[i] = x->dim[i] + pads[i] + pads[3 + i];
    bool shape = y->ndim == 3 && y->dim[0] == o[0] && y->dim[1] == o[1] && y->dim[2] == o[2];
    CHECK(shape, "Pad %s: output shape", what);
    if (!shape) return;
    float *ref = sal_malloc(sizeof(float) * (size_t)n);
    ref_pad(x->dim, sal_f32(x), pads, v, ref);
    CHECK(max_abs_diff(ref, sal_f32(y), n) == 0, "Pad %s differs from direct loops", what);
    sal_free(ref);
}

static void test_pad(sal_rng *r) {
    const int64_t pads[6] = {0, 1, -1, 1, 0, 2};
    sal_tensor y = {0};
    {   /* opset 13: pads and constant_value inputs; gradients to data and constant_value */
        sal_tensor in[3] = {t_rand(r, 3, (int64_t[]){2, 3, 4}, 1), t_i64(6, pads), t_rand(r, 0, NULL, 1)};
        CHECK_OK(run1("Pad", 13, 3, in, (bool[]){false, true, true}, 0, NULL, &y, NULL, NULL));
        check_pad("opset 13", &in[0], pads, sal_f32(&in[2])[0], &y);
        /* pads fed at run time instead of a constant */
        CHECK_OK(run1("Pad", 13, 3, in, (bool[]){false, false, true}, 0, NULL, &y, NULL, NULL));
        check_pad("computed pads", &in[0], pads, sal_f32(&in[2])[0], &y);
        gc("Pad", 3, in, (bool[]){false, true, true}, 0, NULL, 12);
    }
    {   /* opset 13 without constant_value */
        sal_tensor in[2] = {t_rand(r, 3, (int64_t[]){2, 3, 4}, 1), t_i64(6, (int64_t[]){1, 0, 2, 0, 2, 1})};
        CHECK_OK(run1("Pad", 13, 2, in, (bool[]){false, true}, 0, NULL, &y, NULL, NULL));
        check_pad("zero", &in[0], (int64_t[]){1, 0, 2, 0, 2, 1}, 0.0f, &y);
        free_all(2, in);
    }
    {   /* opset 18 axes */
        sal_tensor in[4] = {t_rand(r, 3, (int64_t[]){2, 3, 4}, 1), t_i64(4, (int64_t[]){2, 1, -1, 0}), {.ndim = -1},
                            t_i64(2, (int64_t[]){-1, 1})};
        CHECK_OK(run1("Pad", 18, 4, in, (bool[]){false, true, true, true}, 0, NULL, &y, NULL, NULL));
        check_pad("axes", &in[0], (int64_t[]){0, 1, 2, 0, 0, -1}, 0.0f, &y);
        free_all(4, in);
    }
    {   /* opset 10: attributes */
        sal_tensor x = t_rand(r, 3, (int64_t[]){2, 3, 4}, 1);
        sal_attr at[2] = {sal_attr_make_ints("pads", 6, pads), sal_attr_make_float("value", -2.5f)};
        CHECK_OK(run1("Pad", 10, 1, &x, (bool[]){false}, 2, at, &y, NULL, NULL));
        check_pad("opset 10", &x, pads, -2.5f, &y);
        sal_tensor_free(&x);
    }
    {   /* int64 data */
        sal_tensor in[3] = {t_i64(3, (int64_t[]){4, 5, 6}), t_i64(2, (int64_t[]){1, 2}), t_i64(1, (int64_t[]){-7})};
        in[2].ndim = 0;
        CHECK_OK(run1("Pad", 13, 3, in, (bool[]){true, true, true}, 0, NULL, &y, NULL, NULL));
        const int64_t want[6] = {-7, 4, 5, 6, -7, -7};
        CHECK(y.dtype == SAL_I64 && y.ndim == 1 && y.dim[0] == 6 && !memcmp(y.data, want, sizeof want), "Pad of int64 data");
        free_all(3, in);
    }
    {   /* reflect and edge are refused with the node's name; over-cropping is a shape error */
        sal_tensor in[2] = {t_rand(r, 2, (int64_t[]){3, 4}, 1), t_i64(4, (int64_t[]){0, 1, 0, 1})};
        sal_attr at[1] = {sal_attr_make_string("mode", "reflect")};
        CHECK_FAILS(run1("Pad", 13, 2, in, (bool[]){false, true}, 1, at, &y, NULL, NULL), SAL_ERR_UNSUPPORTED, "'nd'");
        at[0] = sal_attr_make_string("mode", "edge");
        CHECK_FAILS(run1("Pad", 13, 2, in, (bool[]){false, true}, 1, at, &y, NULL, NULL), SAL_ERR_UNSUPPORTED, "edge");
        sal_tensor_free(&in[1]);
        in[1] = t_i64(4, (int64_t[]){0, -3, 0, -2});
        CHECK_FAILS(run1("Pad", 13, 2, in, (bool[]){false, true}, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE, "remove more");
        free_all(2, in);
    }
    sal_tensor_free(&y);
}

int main(void) {
    sal_rng r;
    sal_rng_seed(&r, 1);
    test_conv(&r);
    test_pools(&r);
    test_pad(&r);
    return t_done("test_ops_conv");
}
