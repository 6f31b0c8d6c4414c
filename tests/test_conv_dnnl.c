/* Convolution through oneDNN (src/ops/conv_dnnl.c) against our own kernels (conv.c), which
 * test_ops_conv.c checks against direct loops and finite differences: forward, input, weight and
 * bias gradients, for 1-D to 3-D shapes, strides, dilations, asymmetric pads, groups, depthwise,
 * with and without bias, Winograd-shaped 3x3 layers, a gradient that must add to another (the
 * input also read by a second node), and a chain Conv -> Relu -> Conv whose inner gradients arrive
 * in fresh buffers that the kernels write instead of adding to (sal_op.bwd_writes). Each case must really run through oneDNN (its call counter
 * moves), and the default mode must leave small layers to our kernels. */
#include "ops/conv_wino.h"
#include "ops/linear_ops.h"
#include "testutil.h"

typedef struct {
    const char *what;
    int nsp;
    int64_t N, C, M, G, in[3], k[3], s[3], d[3], pads[6];
    bool bias;
} conv_case;

static const conv_case k_cases[] = {
    {"2-D 3x3 Winograd-shaped", 2, 2, 16, 32, 1, {16, 16}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, true},
    {"2-D 3x3 no bias, batch 1", 2, 1, 24, 16, 1, {9, 11}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, false},
    {"2-D stride 2, asymmetric pads", 2, 2, 3, 8, 1, {11, 10}, {3, 3}, {2, 2}, {1, 1}, {0, 1, 2, 1}, true},
    {"2-D dilation 2, 5x3 kernel", 2, 1, 4, 6, 1, {13, 12}, {5, 3}, {1, 1}, {2, 2}, {2, 1, 2, 1}, true},
    {"2-D groups 2", 2, 2, 8, 6, 2, {7, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, true},
    {"2-D depthwise, stride 2", 2, 2, 8, 8, 8, {9, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, true},
    {"2-D 1x1", 2, 3, 12, 20, 1, {5, 6}, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, true},
    {"1-D stride 2", 1, 2, 4, 5, 1, {17}, {5}, {2}, {1}, {2, 1}, true},
    {"3-D", 3, 1, 2, 3, 1, {4, 5, 6}, {3, 2, 3}, {1, 2, 1}, {1, 1, 1}, {1, 0, 1, 1, 1, 0}, true},
};

/* y = Conv(x, W, b) + x2 where x2 = Slice-free second read of x when shapes allow: here out = Conv,
 * and a second node Mul(x, 2) makes x's gradient a sum (its output is a second graph output). */
static sal_model *build(const conv_case *k, sal_rng *r) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<conv>", &g) == SAL_OK);
    int64_t xd[5] = {-1, k->C}, wd[5] = {k->M, k->C / k->G};
    for (int i = 0; i < k->nsp; i++) xd[2 + i] = k->in[i], wd[2 + i] = k->k[i];
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2 + k->nsp, xd) == SAL_OK);
    sal_tensor W = t_rand(r, 2 + k->nsp, wd, 0.4f), B = t_rand(r, 1, (int64_t[]){k->M}, 0.5f);
    SAL_ASSERT(sal_graph_add_const(g, "w", &W) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, "b", &B) == SAL_OK);
    int64_t ks[3], st[3], dl[3];
    for (int i = 0; i < k->nsp; i++) ks[i] = k->k[i], st[i] = k->s[i], dl[i] = k->d[i];
    sal_attr at[5] = {sal_attr_make_ints("kernel_shape", k->nsp, ks), sal_attr_make_ints("strides", k->nsp, st),
                      sal_attr_make_ints("dilations", k->nsp, dl), sal_attr_make_ints("pads", 2 * k->nsp, k->pads),
                      sal_attr_make_int("group", k->G)};
    t_node(g, "Conv", "conv", k->bias ? 3 : 2, (const char *[]){"x", "w", "b"}, "y", 5, at);
    t_const(g, "two", 0, NULL, (float[]){2});
    t_node(g, "Mul", "twice", 2, (const char *[]){"x", "two"}, "x2", 0, NULL);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    return t_finish(g, "x2");
}

typedef struct {
    sal_tensor y, dx, dw, db;
} result;

static void result_free(result *r) {
    sal_tensor_free(&r->y);
    sal_tensor_free(&r->dx);
    sal_tensor_free(&r->dw);
    sal_tensor_free(&r->db);
}

/* Forward, then backward of sum(ry * y) + sum(rx * x2) with respect to x, W and b. */
static sal_status run(const sal_model *g, const sal_tensor *x, uint64_t seed, result *out) {
    sal_session *s = NULL;
    sal_status st = sal_session_new(g, &s);
    if (st == SAL_OK) st = sal_exec_forward(s, x);
    int y = sal_graph_find(g, "y"), x2 = sal_graph_find(g, "x2");
    bool *wrt = sal_calloc((size_t)g->nval, sizeof *wrt);
    sal_rng r;
    sal_rng_seed(&r, seed);
    sal_tensor seeds[2] = {{0}};
    if (st == SAL_OK) {
        seeds[0] = t_rand(&r, s->act[y].ndim, s->act[y].dim, 1);
        seeds[1] = t_rand(&r, s->act[x2].ndim, s->act[x2].dim, 1);
        wrt[sal_graph_find(g, "x")] = wrt[sal_graph_find(g, "w")] = wrt[sal_graph_find(g, "b")] = true;
        sal_backward_opts o = {.wrt = wrt};
        st = sal_exec_backward(s, 2, (int[]){y, x2}, seeds, &o);
    }
    if (st == SAL_OK) {
        sal_tensor_copy(&out->y, &s->act[y]);
        sal_tensor_copy(&out->dx, &s->grad[sal_graph_find(g, "x")]);
        sal_tensor_copy(&out->dw, &s->grad[sal_graph_find(g, "w")]);
        sal_tensor_copy(&out->db, &s->grad[sal_graph_find(g, "b")]);
    }
    sal_tensor_free(&seeds[0]);
    sal_tensor_free(&seeds[1]);
    sal_free(wrt);
    sal_session_free(s);
    return st;
}

/* max |a - b| / max |b| */
static double relerr(const sal_tensor *a, const sal_tensor *b) {
    if (!sal_tensor_same_shape(a, b)) return INFINITY;
    double e = 0, m = 1e-30;
    for (int64_t i = 0, n = sal_tensor_numel(b); i < n; i++) {
        e = fmax(e, fabs(sal_f32(a)[i] - sal_f32(b)[i]));
        m = fmax(m, fabs(sal_f32(b)[i]));
    }
    return e / m;
}

/* x -> Conv(16->16) -> Relu -> Conv(16->8), gradient with respect to x: Relu's and the second
 * Conv's input gradients are fresh buffers. */
static void test_chain(sal_rng *r) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<chain>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 16, 10, 10}) == SAL_OK);
    sal_tensor W1 = t_rand(r, 4, (int64_t[]){16, 16, 3, 3}, 0.3f), W2 = t_rand(r, 4, (int64_t[]){8, 16, 3, 3}, 0.3f);
    SAL_ASSERT(sal_graph_add_const(g, "w1", &W1) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, "w2", &W2) == SAL_OK);
    for (int i = 0; i < 2; i++) {
        sal_attr at[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
        t_node(g, "Conv", i ? "c2" : "c1", 2, (const char *[]){i ? "a" : "x", i ? "w2" : "w1"}, i ? "y" : "h", 1, at);
        if (!i) t_node(g, "Relu", "relu", 1, (const char *[]){"h"}, "a", 0, NULL);
    }
    t_finish(g, "y");
    sal_tensor x = t_rand(r, 4, (int64_t[]){2, 16, 10, 10}, 1), dx[2] = {{0}};
    for (int mode = 0; mode < 2; mode++) {
        sal_conv_dnnl_mode(mode ? SAL_DNNL_ALL : SAL_DNNL_OFF);
        sal_session *s;
        const sal_tensor *y, *gx;
        CHECK_OK(sal_session_new(g, &s));
        CHECK_OK(sal_forward(s, 1, &x, &y));
        sal_rng rs;
        sal_rng_seed(&rs, 5);
        sal_tensor seed = t_rand(&rs, y->ndim, y->dim, 1);
        for (int rep = 0; rep < 2; rep++) CHECK_OK(sal_input_gradient(s, &seed, &gx)); /* reused buffers too */
        sal_tensor_copy(&dx[mode], gx);
        sal_tensor_free(&seed);
        sal_session_free(s);
    }
    CHECK(relerr(&dx[1], &dx[0]) < 1e-5, "chain through fresh buffers: oneDNN against ours %.2g", relerr(&dx[1], &dx[0]));
    sal_tensor_free(&dx[0]);
    sal_tensor_free(&dx[1]);
    sal_tensor_free(&x);
    sal_model_free(g);
}


/* ---- blocked layouts (graph/exec.c): a session that keeps activations in nChw16c between
 * convolutions must compute exactly what a plain one does ----
 * x -> c1 -> h1 -> Relu -> a1 -> c2 -> h2 -> Add(h2, a1) -> s1 -> Relu -> a2 -> c3 (1x1) -> h3
 *   -> Add(h3, x) -> s2 -> Relu -> a3 -> GlobalAveragePool -> g -> Flatten -> Gemm -> y
 * Add(h3, x) meets a plain model input: h3 must be converted there. */
static sal_model *build_res(sal_rng *r) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<res>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 32, 12, 12}) == SAL_OK);
    const char *w[3] = {"w1", "w2", "w3"};
    for (int i = 0; i < 3; i++) {
        sal_tensor W = t_rand(r, 4, (int64_t[]){32, 32, i == 2 ? 1 : 3, i == 2 ? 1 : 3}, i == 2 ? 0.2f : 0.08f);
        SAL_ASSERT(sal_graph_add_const(g, w[i], &W) == SAL_OK);
    }
    sal_tensor B = t_rand(r, 1, (int64_t[]){32}, 0.3f), F = t_rand(r, 2, (int64_t[]){32, 10}, 0.3f);
    SAL_ASSERT(sal_graph_add_const(g, "b1", &B) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, "f", &F) == SAL_OK);
    sal_attr pad[2] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1}),
                       sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})}; /* nodes take them */
    t_node(g, "Conv", "c1", 3, (const char *[]){"x", "w1", "b1"}, "h1", 1, pad);
    t_node(g, "Relu", "r1", 1, (const char *[]){"h1"}, "a1", 0, NULL);
    t_node(g, "Conv", "c2", 2, (const char *[]){"a1", "w2"}, "h2", 1, pad + 1);
    t_node(g, "Add", "add1", 2, (const char *[]){"h2", "a1"}, "s1", 0, NULL);
    t_node(g, "Relu", "r2", 1, (const char *[]){"s1"}, "a2", 0, NULL);
    t_node(g, "Conv", "c3", 2, (const char *[]){"a2", "w3"}, "h3", 0, NULL);
    t_node(g, "Add", "add2", 2, (const char *[]){"h3", "x"}, "s2", 0, NULL);
    t_node(g, "Relu", "r3", 1, (const char *[]){"s2"}, "a3", 0, NULL);
    t_node(g, "GlobalAveragePool", "gap", 1, (const char *[]){"a3"}, "g", 0, NULL);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"g"}, "fl", 0, NULL);
    t_node(g, "Gemm", "fc", 2, (const char *[]){"fl", "f"}, "y", 0, NULL);
    return t_finish(g, "y");
}

/* Guided backpropagation at a ReLU, scaled by channel, as a rule: rules see plain tensors whatever
 * the session keeps (the channel of element i is read from its plain index). */
static sal_status guided(sal_opctx *c, void *user) {
    (void)user;
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const float *y = sal_f32(c->out[0]), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    const int64_t *d = c->out[0]->dim;
    for (int64_t i = 0, n = sal_tensor_numel(c->out[0]); i < n; i++)
        dx[i] += (y[i] > 0 && dy[i] > 0 ? dy[i] : 0) * (1 + 0.1f * (float)(i / (d[2] * d[3]) % d[1]));
    return SAL_OK;
}

typedef struct {
    sal_tensor y, a1, dx, da1, dw2, db1, gx, rx;
    int nblk;
} res_result;

static void res_free(res_result *r) {
    sal_tensor *t[] = {&r->y, &r->a1, &r->dx, &r->da1, &r->dw2, &r->db1, &r->gx, &r->rx};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) sal_tensor_free(t[i]);
}

/* Everything a session can be asked, with layouts on or off: output, an inner value, the input
 * gradient (twice: reused buffers), gradients of an inner value and of weights, a rule pass. */
static void res_run(const sal_model *g, const sal_tensor *x, bool layouts, res_result *o) {
    sal_session *s;
    CHECK_OK(sal_session_new(g, &s));
    s->layouts = layouts;
    int y = sal_graph_find(g, "y"), a1 = sal_graph_find(g, "a1"), vx = sal_graph_find(g, "x");
    CHECK_OK(sal_exec_forward(s, x));
    o->nblk = 0;
    for (int v = 0; v < g->nval; v++) o->nblk += s->blk[v];
    sal_tensor_copy(&o->y, &s->act[y]);
    sal_rng r;
    sal_rng_seed(&r, 9);
    sal_tensor seed = t_rand(&r, s->act[y].ndim, s->act[y].dim, 1);
    for (int rep = 0; rep < 2; rep++) CHECK_OK(sal_exec_backward(s, 1, &y, &seed, NULL));
    sal_tensor_copy(&o->dx, &s->grad[vx]);
    /* an inner value read through the API after a backward pass: plain, and its gradient too */
    CHECK_OK(sal_exec_forward(s, x));
    CHECK_OK(sal_exec_backward(s, 1, &y, &seed, NULL));
    const sal_tensor *a = sal_session_value(s, "a1");
    CHECK(a != NULL, "sal_session_value(a1)");
    if (a) sal_tensor_copy(&o->a1, a);
    sal_tensor_copy(&o->gx, &s->grad[vx]);
    /* gradients of an inner value and of parameters */
    bool *wrt = sal_calloc((size_t)g->nval, sizeof *wrt);
    wrt[vx] = wrt[a1] = wrt[sal_graph_find(g, "w2")] = wrt[sal_graph_find(g, "b1")] = true;
    CHECK_OK(sal_exec_forward(s, x));
    sal_backward_opts bo = {.wrt = wrt};
    CHECK_OK(sal_exec_backward(s, 1, &y, &seed, &bo));
    sal_tensor_copy(&o->da1, &s->grad[a1]);
    sal_tensor_copy(&o->dw2, &s->grad[sal_graph_find(g, "w2")]);
    sal_tensor_copy(&o->db1, &s->grad[sal_graph_find(g, "b1")]);
    /* a rule at one ReLU of the chain */
    sal_rule_fn *rules = sal_calloc((size_t)g->nnode, sizeof *rules);
    rules[sal_graph_find_node(g, "r2")] = guided;
    CHECK_OK(sal_exec_forward(s, x));
    sal_backward_opts ro = {.rule = rules};
    CHECK_OK(sal_exec_backward(s, 1, &y, &seed, &ro));
    sal_tensor_copy(&o->rx, &s->grad[vx]);
    sal_free(rules);
    sal_free(wrt);
    sal_tensor_free(&seed);
    sal_session_free(s);
}

/* Model g (names as res_run reads them) on x with layouts on and off, on our own kernels, and with
 * Winograd's (conv_wino.c) in the layouts: nblk values blocked with layouts, nwino calls of
 * Winograd's kernels, and everything res_run asks alike in the four. */
static void blocked_check(const char *what, sal_model *g, sal_tensor *x, int nblk, long nwino) {
    res_result o[4];
    memset(o, 0, sizeof o);
    int wmode = sal_conv_wino_mode(SAL_WINO_OFF);
    sal_conv_dnnl_mode(SAL_DNNL_ALL);
    res_run(g, x, false, &o[0]);
    res_run(g, x, true, &o[1]);
    sal_conv_dnnl_mode(SAL_DNNL_OFF); /* our kernels: no oneDNN, so nothing is blocked */
    res_run(g, x, true, &o[2]);
    sal_conv_dnnl_mode(SAL_DNNL_ALL);
    sal_conv_wino_mode(SAL_WINO_ALL);
    long w0 = sal_conv_wino_calls();
    res_run(g, x, true, &o[3]);
    CHECK(sal_conv_wino_calls() - w0 == nwino, "%s: %ld Winograd calls, want %ld", what, sal_conv_wino_calls() - w0,
          nwino);
    sal_conv_wino_mode(wmode);
    sal_conv_dnnl_mode(SAL_DNNL_AUTO);
    CHECK(o[0].nblk == 0 && o[1].nblk == nblk && o[2].nblk == 0 && o[3].nblk == nblk,
          "%s, blocked values: %d plain, %d with layouts (want %d), %d ours, %d Winograd's", what, o[0].nblk,
          o[1].nblk, nblk, o[2].nblk, o[3].nblk);
    for (int k = 1; k < 4; k++) {
        const res_result *a = &o[k], *b = &o[0];
        double e[8] = {relerr(&a->y, &b->y), relerr(&a->a1, &b->a1), relerr(&a->dx, &b->dx), relerr(&a->gx, &b->gx),
                       relerr(&a->da1, &b->da1), relerr(&a->dw2, &b->dw2), relerr(&a->db1, &b->db1),
                       relerr(&a->rx, &b->rx)};
        double worst = 0;
        for (int i = 0; i < 8; i++) worst = fmax(worst, e[i]);
        CHECK(worst < 1e-5, "%s, %s against plain oneDNN: y %.2g a1 %.2g dx %.2g dx again %.2g da1 %.2g dw2 %.2g "
              "db1 %.2g rule dx %.2g", what, k == 1 ? "layouts" : k == 2 ? "our kernels" : "Winograd's", e[0], e[1], e[2], e[3], e[4], e[5],
              e[6], e[7]);
    }
    /* the rule changed the gradient: the comparison above is not of two plain gradients */
    CHECK(relerr(&o[1].rx, &o[1].dx) > 1e-3, "%s: the guided rule made no difference", what);
    for (int k = 0; k < 4; k++) res_free(&o[k]);
}

static void test_blocked(sal_rng *r) {
    sal_model *g = build_res(r);
    sal_tensor x = t_rand(r, 4, (int64_t[]){2, 32, 12, 12}, 1);
    /* h1, a1, h2, s1, a2; h3 converted at Add(h3, x). Winograd: c1 (its plain input made blocked) and
     * c2 in four forward passes; both input gradients alone in three backward passes (c1's into the
     * plain input) and in the rule's pass (plain gradients there, made blocked for it), none where
     * c1's bias and c2's weight have gradients */
    blocked_check("residual net", g, &x, 5, 8 + 8);
    sal_tensor_free(&x);
    sal_model_free(g);
}

/* x (N,32,36,40) -> Conv 3x3 (w1, b1) -> Relu -> MaxPool 2x2 -> Conv 3x3 (w2) -> Relu -> MaxPool 2x2
 * -> Flatten -> Gemm: the pools read blocked inputs, the first writes a blocked output for the
 * convolution after it, the second a plain one for Flatten, its 9 x 10 pixels more than one run of
 * 64 (pool.c: maxpool_2x2_blks). Names as res_run reads them. */
static sal_model *build_pool(sal_rng *r) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<pool>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 32, 36, 40}) == SAL_OK);
    sal_tensor W1 = t_rand(r, 4, (int64_t[]){32, 32, 3, 3}, 0.08f), W2 = t_rand(r, 4, (int64_t[]){32, 32, 3, 3}, 0.08f);
    sal_tensor B = t_rand(r, 1, (int64_t[]){32}, 0.3f), F = t_rand(r, 2, (int64_t[]){32 * 90, 10}, 0.3f);
    SAL_ASSERT(sal_graph_add_const(g, "w1", &W1) == SAL_OK && sal_graph_add_const(g, "w2", &W2) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, "b1", &B) == SAL_OK && sal_graph_add_const(g, "f", &F) == SAL_OK);
    sal_attr pad[2] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1}),
                       sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    sal_attr mp[4] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    t_node(g, "Conv", "c1", 3, (const char *[]){"x", "w1", "b1"}, "h1", 1, pad);
    t_node(g, "Relu", "r1", 1, (const char *[]){"h1"}, "a1", 0, NULL);
    t_node(g, "MaxPool", "mp1", 1, (const char *[]){"a1"}, "p1", 2, mp);
    t_node(g, "Conv", "c2", 2, (const char *[]){"p1", "w2"}, "h2", 1, pad + 1);
    t_node(g, "Relu", "r2", 1, (const char *[]){"h2"}, "a2", 0, NULL);
    t_node(g, "MaxPool", "mp2", 1, (const char *[]){"a2"}, "p2", 2, mp + 2);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"p2"}, "fl", 0, NULL);
    t_node(g, "Gemm", "fc", 2, (const char *[]){"fl", "f"}, "y", 0, NULL);
    return t_finish(g, "y");
}

/* MaxPool reading blocked inputs: the first writes a blocked output, the second a plain one. */
static void test_blocked_pool(sal_rng *r) {
    sal_model *g = build_pool(r);
    sal_tensor x = t_rand(r, 4, (int64_t[]){2, 32, 36, 40}, 1);
    /* h1, a1, p1, h2, a2; p2 plain for Flatten. Winograd as in the residual net */
    blocked_check("pool net", g, &x, 5, 8 + 8);
    sal_tensor_free(&x);
    sal_model_free(g);
}

/* Grad-CAM's layer map at value `layer`, computed here on a plain, unfused session: relu(sum_k
 * mean(G_k) A_k) with G the gradient of the predicted class's output. */
static sal_tensor gradcam_ref(const sal_model *g, const sal_tensor *x, const char *layer) {
    sal_session *s;
    sal_tensor map = {0};
    CHECK_OK(sal_session_new(g, &s));
    int y = sal_graph_find(g, "y"), v = sal_graph_find(g, layer);
    CHECK_OK(sal_exec_forward(s, x));
    const sal_tensor *Y = &s->act[y];
    sal_tensor seed = {0};
    CHECK_OK(sal_tensor_alloc(&seed, SAL_F32, Y->ndim, Y->dim));
    int64_t N = Y->dim[0], C = Y->dim[1];
    for (int64_t n = 0; n < N; n++) {
        int64_t best = 0;
        for (int64_t k = 1; k < C; k++) best = sal_f32(Y)[n * C + k] > sal_f32(Y)[n * C + best] ? k : best;
        sal_f32(&seed)[n * C + best] = 1;
    }
    bool *wrt = sal_calloc((size_t)g->nval, sizeof *wrt);
    wrt[v] = true;
    sal_backward_opts bo = {.wrt = wrt};
    CHECK_OK(sal_exec_backward(s, 1, &y, &seed, &bo));
    const sal_tensor *A = &s->act[v], *G = &s->grad[v];
    int64_t K = A->dim[1], S = A->dim[2] * A->dim[3];
    CHECK_OK(sal_tensor_alloc(&map, SAL_F32, 4, (int64_t[]){N, 1, A->dim[2], A->dim[3]}));
    for (int64_t n = 0; n < N; n++)
        for (int64_t p = 0; p < S; p++) {
            double m = 0;
            for (int64_t k = 0; k < K; k++) {
                double w = 0;
                for (int64_t q = 0; q < S; q++) w += sal_f32(G)[(n * K + k) * S + q] / (double)S;
                m += w * sal_f32(A)[(n * K + k) * S + p];
            }
            sal_f32(&map)[n * S + p] = m > 0 ? (float)m : 0.0f;
        }
    sal_free(wrt);
    sal_tensor_free(&seed);
    sal_session_free(s);
    return map;
}

/* Methods on a reused session: those that read only outputs and input gradients, and Grad-CAM
 * (its layer made readable), run blocked and fused, the others plain, alternately on one session;
 * all must agree with our own kernels, under which nothing is blocked. Grad-CAM at a value a fused
 * ReLU (h1) or an Add in place (h2, when nothing is blocked) took over runs its forward again
 * unfused; at the ReLU's output (a1, a view of h1's buffer) it keeps the fusion. */
static void test_blocked_methods(sal_rng *r) {
    sal_model *g = build_res(r);
    sal_tensor x = t_rand(r, 4, (int64_t[]){2, 32, 12, 12}, 1);
    enum { NM = 12 };
    const char *meth[NM] = {"gradient", "integrated_gradients", "gradcam",    "smoothgrad", "occlusion",
                            "guided_backprop", "rectgrad", "lrp_epsilon", "gradient", "gradcam", "gradcam", "gradcam"};
    const char *par[NM] = {NULL,     "steps=8", NULL, "samples=4", "window=4", NULL, "tau=50", NULL, NULL,
                           "layer=h1", "layer=h2", "layer=a1"};
    const bool blocked[NM] = {true, true, true, true, true, true, true, false, true, true, true, true};
    /* ReLUs fused with oneDNN off and on; Adds in place with it off (blocked inputs keep them out) */
    const int fused[2][NM] = {{1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1}, {1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1}};
    const int inplace[NM] = {2, 2, 2, 2, 2, 2, 2, 0, 2, 0, 0, 2};
    sal_tensor map[2][NM], lmap[2][NM];
    memset(map, 0, sizeof map);
    memset(lmap, 0, sizeof lmap);
    for (int mode = 0; mode < 2; mode++) {
        sal_conv_dnnl_mode(mode ? SAL_DNNL_ALL : SAL_DNNL_OFF);
        sal_session *s;
        CHECK_OK(sal_session_new(g, &s));
        for (int i = 0; i < NM; i++) {
            sal_explain_opts o = {.method = meth[i], .nparams = par[i] ? 1 : 0, .params = &par[i], .session = s};
            sal_explanation *e = NULL;
            CHECK_OK(sal_explain(g, &x, &o, &e));
            if (e) sal_tensor_copy(&map[mode][i], sal_explanation_map(e));
            if (e && sal_explanation_layer_map(e)) sal_tensor_copy(&lmap[mode][i], sal_explanation_layer_map(e));
            sal_explanation_free(e);
            int nblk = 0, nfused = 0, ninplace = 0;
            for (int v = 0; v < g->nval; v++) {
                nblk += s->blk[v];
                int w = s->viewed_by[v];
                if (w < 0) continue;
                nfused += sal_node_is(&g->node[g->val[w].producer], SAL_OP_Relu);
                ninplace += sal_node_is(&g->node[g->val[w].producer], SAL_OP_Add);
            }
            CHECK(mode ? (nblk > 0) == blocked[i] : nblk == 0, "%s (oneDNN %s): %d values left blocked", meth[i],
                  mode ? "on" : "off", nblk);
            /* c1 takes r1 (its only reader), in oneDNN's kernel or ours, unless the method reads h1
             * or a value in place */
            CHECK(nfused == fused[mode][i], "%s %s (oneDNN %s): %d ReLUs fused", meth[i], par[i] ? par[i] : "",
                  mode ? "on" : "off", nfused);
            /* add1 and add2 write into h2 and h3 (their only readers) when oneDNN is off and nothing
             * is blocked, unless the method reads h2 */
            CHECK(ninplace == (mode ? 0 : inplace[i]), "%s %s (oneDNN %s): %d Adds in place", meth[i],
                  par[i] ? par[i] : "", mode ? "on" : "off", ninplace);
        }
        /* after a fused pass, h1 holds r1's values: not handed out; a pass of sal_forward makes it again */
        CHECK(!sal_session_value(s, "h1"), "a fused convolution's output handed out");
        CHECK(mode || !sal_session_value(s, "h2"), "the output of a convolution an Add wrote into handed out");
        const sal_tensor *outs[1];
        CHECK_OK(sal_forward(s, 1, &x, outs));
        CHECK(sal_session_value(s, "h2") && sal_session_value(s, "s1") &&
                  sal_session_value(s, "h2")->data != sal_session_value(s, "s1")->data,
              "h2 after sal_forward: not given, or s1's buffer");
        const sal_tensor *h1 = sal_session_value(s, "h1");
        float lo = 0;
        for (int64_t e = 0; h1 && e < sal_tensor_numel(h1); e++) lo = fminf(lo, sal_f32(h1)[e]);
        CHECK(h1 && lo < 0, "h1 after sal_forward: %s, minimum %g", h1 ? "given" : "missing", lo);
        sal_session_free(s);
    }
    sal_conv_dnnl_mode(SAL_DNNL_AUTO);
    for (int i = 0; i < NM; i++)
        CHECK(relerr(&map[1][i], &map[0][i]) < 1e-4, "%s: oneDNN (blocked: %d) against ours %.2g", meth[i], blocked[i],
              relerr(&map[1][i], &map[0][i]));
    /* Grad-CAM at h1 (before the ReLU: negative values), h2 and a1 against the plain session's */
    const char *lay[3] = {"h1", "h2", "a1"};
    for (int k = 0; k < 3; k++) {
        sal_tensor want = gradcam_ref(g, &x, lay[k]);
        for (int mode = 0; mode < 2; mode++)
            CHECK(relerr(&lmap[mode][9 + k], &want) < 1e-4, "gradcam at %s (oneDNN %s) against a plain session: %.2g",
                  lay[k], mode ? "on" : "off", relerr(&lmap[mode][9 + k], &want));
        sal_tensor_free(&want);
    }
    CHECK(relerr(&lmap[1][9], &lmap[1][11]) > 1e-3, "gradcam at h1 and at a1 alike");
    for (int i = 0; i < NM; i++)
        for (int k = 0; k < 2; k++) sal_tensor_free(&map[k][i]), sal_tensor_free(&lmap[k][i]);
    sal_tensor_free(&x);
    sal_model_free(g);
}

/* Gradient buffers go back to a pool once used: the input gradient is the same as with every
 * gradient kept, inner gradients are gone afterwards, and the session holds less. */
static void test_grad_pool(sal_rng *r) {
    sal_model *g = build_res(r);
    sal_tensor x = t_rand(r, 4, (int64_t[]){2, 32, 12, 12}, 1), dx[2] = {{0}};
    int y = sal_graph_find(g, "y"), vx = sal_graph_find(g, "x"), h1 = sal_graph_find(g, "h1");
    size_t held[2];
    for (int keep = 0; keep < 2; keep++) {
        sal_session *s;
        CHECK_OK(sal_session_new(g, &s));
        s->keep_grads = keep;
        size_t base = sal_memory_in_use();
        sal_rng rs;
        sal_rng_seed(&rs, 3);
        sal_tensor seed = {0};
        for (int rep = 0; rep < 3; rep++) {
            CHECK_OK(sal_exec_forward(s, &x));
            if (!rep) seed = t_rand(&rs, s->act[y].ndim, s->act[y].dim, 1);
            CHECK_OK(sal_exec_backward(s, 1, &y, &seed, NULL));
        }
        held[keep] = sal_memory_in_use() - base;
        CHECK(s->has_grad[h1] == keep && s->has_grad[vx], "keep_grads %d: inner gradient %s", keep,
              s->has_grad[h1] ? "kept" : "dropped");
        CHECK(keep || s->npool > 0, "no gradient buffer went back to the pool");
        sal_tensor_copy(&dx[keep], &s->grad[vx]);
        sal_tensor_free(&seed);
        sal_session_free(s);
    }
    CHECK(relerr(&dx[0], &dx[1]) == 0, "input gradient with pooled buffers differs: %.2g", relerr(&dx[0], &dx[1]));
    CHECK(held[0] < held[1], "pooled gradients hold %zu bytes, kept ones %zu", held[0], held[1]);
    sal_tensor_free(&dx[0]);
    sal_tensor_free(&dx[1]);
    sal_tensor_free(&x);
    sal_model_free(g);
}

/* Blocked <-> plain conversions (sal_blk_convert) against the layout's formula, in blocks of 16 and
 * of 8 whatever the machine's: planes whose pixel count is a multiple of the 4 x 4 tiles and ones
 * with a remainder, a batch, and one large enough to be split among the threads. */
static void test_blk_convert(sal_rng *r) {
    static const int64_t shapes[][4] = {{2, 32, 7, 7}, {1, 16, 14, 14}, {1, 48, 3, 5}, {1, 256, 65, 65}};
    for (size_t k = 0; k < 2 * sizeof shapes / sizeof *shapes; k++) {
        const int64_t *d = shapes[k / 2], L = k % 2 ? 8 : 16;
        sal_blk_set_width((int)L);
        sal_tensor p = t_rand(r, 4, d, 1), b = t_rand(r, 4, d, 1), base = t_rand(r, 4, d, 1);
        sal_tensor out = {0}, sum = {0};
        sal_tensor_copy(&out, &base);
        sal_tensor_copy(&sum, &base);
        sal_blk_convert(sal_f32(&out), sal_f32(&p), d, SAL_BLK_FROM_PLAIN);
        sal_blk_convert(sal_f32(&sum), sal_f32(&b), d, SAL_BLK_ADD_TO_PLAIN);
        double e_from = 0, e_add = 0, e_to = 0;
        for (int64_t n = 0; n < d[0]; n++)
            for (int64_t c = 0; c < d[1]; c++)
                for (int64_t s = 0; s < d[2] * d[3]; s++) {
                    int64_t pi = (n * d[1] + c) * d[2] * d[3] + s;
                    int64_t bi = ((n * d[1] + c) / L * d[2] * d[3] + s) * L + c % L;
                    e_from = fmax(e_from, fabs(sal_f32(&out)[bi] - sal_f32(&p)[pi]));
                    e_add = fmax(e_add, fabs(sal_f32(&sum)[pi] - sal_f32(&base)[pi] - sal_f32(&b)[bi]));
                }
        sal_blk_convert(sal_f32(&sum), sal_f32(&out), d, SAL_BLK_TO_PLAIN); /* back: p again */
        for (int64_t i = 0, n = sal_tensor_numel(&p); i < n; i++)
            e_to = fmax(e_to, fabs(sal_f32(&sum)[i] - sal_f32(&p)[i]));
        sal_blk_set_width(0);
        CHECK(e_from == 0 && e_to == 0 && e_add < 1e-6,
              "blocked conversions of (%lld, %lld, %lld, %lld) in blocks of %d: from plain %g, to plain %g, added to "
              "plain %g",
              (long long)d[0], (long long)d[1], (long long)d[2], (long long)d[3], (int)L, e_from, e_to, e_add);
        sal_tensor *all[] = {&p, &b, &base, &out, &sum};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) sal_tensor_free(all[i]);
    }
}

/* Substituted weights through oneDNN (LRP's rules, linear_ops.h), kept reordered between calls under
 * the caller's key: each key's products equal those of the same weights reordered afresh (key 0)
 * and of our own kernels, found again while kept and with more keys than the cache holds (entries
 * replaced and filled again), and after the model's weights change the same keys give the new
 * weights' products. */
static void test_keyed_weights(sal_rng *r) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<keyed>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 16, 12, 12}) == SAL_OK);
    sal_tensor W = t_rand(r, 4, (int64_t[]){32, 16, 3, 3}, 0.3f);
    SAL_ASSERT(sal_graph_add_const(g, "w", &W) == SAL_OK);
    int64_t ks[2] = {3, 3}, pads[4] = {1, 1, 1, 1};
    sal_attr at[2] = {sal_attr_make_ints("kernel_shape", 2, ks), sal_attr_make_ints("pads", 4, pads)};
    t_node(g, "Conv", "conv", 2, (const char *[]){"x", "w"}, "y", 2, at);
    t_finish(g, "y");
    const sal_node *n = &g->node[0];
    float *own = sal_f32(&g->val[n->in[1]].t);
    sal_lin_roles roles;
    CHECK_OK(sal_lin_roles_of(g, n, &roles));
    /* two keys kept and found again, seven more that replace them, the two again */
    static const int keys[] = {1, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2};
    sal_tensor x = t_rand(r, 4, (int64_t[]){1, 16, 12, 12}, 1), rz = t_rand(r, 4, (int64_t[]){1, 32, 12, 12}, 1);
    sal_tensor Wk = {0}, z[3] = {{0}}, t[3] = {{0}};
    sal_scratch ws = {0}, fresh = {0};
    for (int round = 0; round < 3; round++) {
        if (round == 2) { /* new weights: the kept ones are stale */
            for (int64_t i = 0, m = sal_tensor_numel(&W); i < m; i++) own[i] = -0.5f * own[i] + 0.01f;
            sal_model_weights_changed(g);
        }
        double worst = 0;
        for (size_t q = 0; q < sizeof keys / sizeof *keys; q++) {
            int k = keys[q];
            sal_tensor_copy(&Wk, &g->val[n->in[1]].t);
            for (int64_t i = 0, m = sal_tensor_numel(&Wk); i < m; i++) sal_f32(&Wk)[i] *= (float)(k % 3 ? k : -k);
            for (int v = 0; v < 3; v++) { /* keyed, afresh, our kernels */
                sal_conv_dnnl_mode(v == 2 ? SAL_DNNL_OFF : SAL_DNNL_ALL);
                sal_tensor_alloc(&t[v], SAL_F32, 4, x.dim);
                uint64_t key = v == 0 ? (uint64_t)k : 0;
                sal_scratch *w = v ? &fresh : &ws;
                CHECK_OK(sal_lin_apply(g, n, &roles, &x, &Wk, key, NULL, &z[v], w));
                CHECK_OK(sal_lin_transposed(g, n, &roles, &x, &Wk, key, &rz, &t[v], w));
            }
            worst = fmax(worst, fmax(relerr(&z[0], &z[2]), relerr(&t[0], &t[2])));
            worst = fmax(worst, fmax(relerr(&z[1], &z[2]), relerr(&t[1], &t[2])));
        }
        CHECK(worst < 1e-5, "keyed substituted weights, round %d: relative error %g", round, worst);
    }
    sal_conv_dnnl_mode(SAL_DNNL_AUTO);
    sal_scratch_free(&ws);
    sal_scratch_free(&fresh);
    sal_tensor *all[] = {&W, &x, &rz, &Wk, &z[0], &z[1], &z[2], &t[0], &t[1], &t[2]};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) sal_tensor_free(all[i]);
    sal_model_free(g);
}

/* A 3x3 convolution of C -> C channels on an H x H input x (padding 1; weights and bias drawn from
 * r), its ReLU, then 2x2 max pooling at stride 2 (maxpool) or global average pooling into p. The
 * model's outputs: the convolution's h, then p, where with_h; else p alone. */
static sal_model *conv_relu_pool(sal_rng *r, int C, int H, bool maxpool, bool with_h) {
    sal_model *g;
    CHECK_OK(sal_graph_create("<flat>", &g));
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){1, C, H, H}));
    float *w = malloc(sizeof *w * (size_t)(C * C * 9)), *b = malloc(sizeof *b * (size_t)C);
    t_randv(r, w, C * C * 9, 0.2f);
    t_randv(r, b, C, 0.3f);
    t_const(g, "w", 4, (int64_t[]){C, C, 3, 3}, w);
    t_const(g, "b", 1, (int64_t[]){C}, b);
    free(w), free(b);
    t_node(g, "Conv", "conv", 3, (const char *[]){"x", "w", "b"}, "h", 1,
           (sal_attr[]){sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})});
    t_node(g, "Relu", "relu", 1, (const char *[]){"h"}, "a", 0, NULL);
    if (maxpool)
        t_node(g, "MaxPool", "pool", 1, (const char *[]){"a"}, "p", 2,
               (sal_attr[]){sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                            sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})});
    else
        t_node(g, "GlobalAveragePool", "pool", 1, (const char *[]){"a"}, "p", 0, NULL);
    if (with_h) CHECK_OK(sal_graph_add_output(g, "h"));
    return t_finish(g, "p");
}

/* A 3x3 layer whose output reaches max pooling through its ReLU keeps the pooling's ties
 * (sal_conv_ties): a direct kernel's outputs over a flat receptive field come out bit for bit alike,
 * so that the pooling breaks their ties by position as PyTorch's does (checked here on an input
 * flat in each channel; our F(2x2)'s in test_conv_wino.c); F(4x4), oneDNN's on AVX-512 or ours,
 * breaks them by rounding. So oneDNN's Winograd must not run it, where it does run the same layer
 * before average pooling (AVX-512 only) and in a forward that no backward follows (SAL_LEAN_OUT),
 * where ties matter to nothing. Planes of 28 and 56 have the tiles for it. Our Winograd is off
 * throughout, so that oneDNN runs every forward here. */
static void test_flat_ties(sal_rng *r) {
    enum { C = 32 };
    int wino = sal_conv_wino_mode(-1);
    for (int H = 28; H <= 56; H *= 2)
        for (int pool = 0; pool < 2; pool++) {
            sal_model *g = conv_relu_pool(r, C, H, pool, true);
            float *xv = malloc(sizeof *xv * C * H * H);
            for (int i = 0; i < C * H * H; i++) xv[i] = 0.37f + 0.01f * (float)(i / (H * H));
            sal_tensor x = t_tensor_of(4, (int64_t[]){1, C, H, H}, xv);
            sal_session *s;
            CHECK_OK(sal_session_new(g, &s));
            const sal_tensor *out[2];
            sal_conv_wino_mode(SAL_WINO_OFF);
            long w0 = sal_conv_dnnl_wino_calls();
            CHECK_OK(sal_forward(s, 1, &x, out));
            long w1 = sal_conv_dnnl_wino_calls();
            CHECK(pool ? w1 == w0 : w1 - w0 == (sal_blk_width() == 16), "%d x %d before %s pooling: %ld forwards "
                  "by oneDNN's Winograd", H, H, pool ? "max" : "average", w1 - w0);
            if (pool) { /* the input gradient (of h's), Winograd's on AVX-512, against our kernels' */
                sal_tensor seed = t_rand(r, 4, (int64_t[]){1, C, H, H}, 1), dx = {0};
                const sal_tensor *gx[1];
                CHECK_OK(sal_input_gradient(s, &seed, gx));
                CHECK_OK(sal_tensor_copy(&dx, gx[0]));
                int dm = sal_conv_dnnl_mode(SAL_DNNL_OFF);
                sal_session *s0;
                CHECK_OK(sal_session_new(g, &s0));
                CHECK_OK(sal_forward(s0, 1, &x, out));
                CHECK_OK(sal_input_gradient(s0, &seed, gx));
                CHECK(relerr(&dx, gx[0]) < 1e-5, "%d x %d before max pooling: input gradient off ours by %.2g", H,
                      H, relerr(&dx, gx[0]));
                sal_conv_dnnl_mode(dm);
                sal_session_free(s0);
                sal_tensor_free(&seed), sal_tensor_free(&dx);
                sal_session_keep_values(s, 0);
                CHECK_OK(sal_forward(s, 1, &x, out));
                CHECK(sal_conv_dnnl_wino_calls() - w1 == (sal_blk_width() == 16),
                      "%d x %d before max pooling, no backward after: %ld forwards by oneDNN's Winograd", H, H,
                      sal_conv_dnnl_wino_calls() - w1);
                sal_session_keep_values(s, 1);
                CHECK_OK(sal_forward(s, 1, &x, out));
                const float *h = sal_f32(out[0]);
                int differ = 0;
                for (int c = 0; c < C; c++)
                    for (int y = 1; y < H - 1; y++)
                        for (int q = 1; q < H - 1; q++) differ += h[(c * H + y) * H + q] != h[(c * H + 1) * H + 1];
                CHECK(differ == 0, "%d x %d before max pooling: %d outputs over a flat receptive field differ", H,
                      H, differ);
            }
            sal_session_free(s);
            sal_model_free(g);
            sal_tensor_free(&x);
            free(xv);
        }
    sal_conv_wino_mode(wino);
}

/* The gradient through max pooling of a 3x3 layer that our Winograd runs (AVX2, and AVX-512 in
 * 256-bit halves), on an image with a flat region inside, a black one along two borders and noise
 * elsewhere, against our direct kernels': the pooling must route it alike, so the forward before it
 * takes F(2x2), which keeps the ties of fields flat or alike along a border (a padded row over flat
 * ones). F(4x4) routed it elsewhere (0.7 of the largest under SAL_WINO_TILE=4; 0.65 at Lavin and
 * Gray's points), and still did (0.27) with the outputs of flat fields set afresh from the sums of
 * their taps: the fields along a border tie as well. */
static void test_flat_ties_wino(sal_rng *r) {
    enum { C = 32, H = 28, P = H * H };
    if (sal_blk_width() != 8 && !sal_cpu_avx512_halves()) return; /* oneDNN's: test_flat_ties */
    sal_model *g = conv_relu_pool(r, C, H, true, false);
    float *xv = malloc(sizeof *xv * C * P);
    for (int c = 0; c < C; c++) {
        float a = (float)sal_rng_normal(r);
        for (int i = 0; i < P; i++) {
            int h = i / H, v = i % H;
            xv[c * P + i] = h < 14 && v < 16 ? a : h >= 18 && v < 10 ? 0.0f : (float)sal_rng_normal(r);
        }
    }
    sal_tensor x = t_tensor_of(4, (int64_t[]){1, C, H, H}, xv), dx = {0},
               seed = t_rand(r, 4, (int64_t[]){1, C, H / 2, H / 2}, 1);
    const sal_tensor *out[1], *gx[1];
    int wino = sal_conv_wino_mode(SAL_WINO_AUTO), dm = sal_conv_dnnl_mode(-1);
    sal_session *s;
    CHECK_OK(sal_session_new(g, &s));
    long c0 = sal_conv_wino_calls();
    CHECK_OK(sal_forward(s, 1, &x, out));
    long fw = sal_conv_wino_calls() - c0;
    CHECK_OK(sal_input_gradient(s, &seed, gx));
    CHECK_OK(sal_tensor_copy(&dx, gx[0]));
    sal_session_free(s);
    sal_conv_wino_mode(SAL_WINO_OFF), sal_conv_dnnl_mode(SAL_DNNL_OFF);
    CHECK_OK(sal_session_new(g, &s));
    CHECK_OK(sal_forward(s, 1, &x, out));
    CHECK_OK(sal_input_gradient(s, &seed, gx));
    CHECK(fw == 1 && relerr(&dx, gx[0]) < 1e-5,
          "max pooling after our Winograd on flat regions: %ld forwards by it, the input gradient off our direct "
          "kernels' by %.2g", fw, relerr(&dx, gx[0]));
    sal_session_free(s);
    sal_conv_wino_mode(wino), sal_conv_dnnl_mode(dm);
    sal_tensor_free(&x), sal_tensor_free(&seed), sal_tensor_free(&dx);
    sal_model_free(g);
    free(xv);
}

int main(void) {
    sal_rng r;
    sal_rng_seed(&r, 11);
    for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) {
        const conv_case *k = &k_cases[i];
        sal_model *g = build(k, &r);
        int64_t xd[5] = {k->N, k->C};
        for (int j = 0; j < k->nsp; j++) xd[2 + j] = k->in[j];
        sal_tensor x = t_rand(&r, 2 + k->nsp, xd, 1);
        result ours = {0}, dnnl = {0};
        sal_conv_dnnl_mode(SAL_DNNL_OFF);
        long c0 = sal_conv_dnnl_calls();
        CHECK_OK(run(g, &x, 100 + i, &ours));
        CHECK(sal_conv_dnnl_calls() == c0, "%s: oneDNN ran although switched off", k->what);
        sal_conv_dnnl_mode(SAL_DNNL_ALL);
        CHECK_OK(run(g, &x, 100 + i, &dnnl));
        /* forward, backward data, backward weights */
        CHECK(sal_conv_dnnl_calls() == c0 + 3, "%s: %ld oneDNN primitives ran, expected 3", k->what,
              sal_conv_dnnl_calls() - c0);
        double ey = relerr(&dnnl.y, &ours.y), ex = relerr(&dnnl.dx, &ours.dx), ew = relerr(&dnnl.dw, &ours.dw),
               eb = relerr(&dnnl.db, &ours.db);
        CHECK(ey < 1e-5 && ex < 1e-5 && ew < 1e-5 && (!k->bias || eb < 1e-5),
              "%s: oneDNN against our kernels: y %.2g, dx %.2g, dW %.2g, db %.2g", k->what, ey, ex, ew, eb);
        result_free(&ours);
        result_free(&dnnl);
        sal_tensor_free(&x);
        sal_model_free(g);
    }
    test_chain(&r);
    test_blocked(&r);
    test_blocked_pool(&r);
    test_blocked_methods(&r);
    test_grad_pool(&r);
    test_blk_convert(&r);
    test_keyed_weights(&r);
    test_flat_ties(&r);
    test_flat_ties_wino(&r);
    /* the default leaves small layers to our kernels and takes large ones */
    sal_conv_dnnl_mode(SAL_DNNL_AUTO);
    sal_conv_shape small = {.nsp = 2, .N = 1, .C = 8, .M = 8, .G = 1, .in = {1, 8, 8}, .out = {1, 8, 8}, .k = {1, 3, 3}},
                   large = {.nsp = 2, .N = 1, .C = 64, .M = 64, .G = 1, .in = {1, 56, 56}, .out = {1, 56, 56},
                            .k = {1, 3, 3}};
    CHECK(!sal_conv_dnnl_wanted(&small) && sal_conv_dnnl_wanted(&large), "automatic choice by size");
    /* from 2M multiply-adds when the channels fill blocks of 16 and the kernel is not 1x1 */
    sal_conv_shape cnn = {.nsp = 2, .N = 1, .C = 32, .M = 64, .G = 1, .in = {1, 14, 14}, .out = {1, 14, 14},
                          .k = {1, 3, 3}},
                   odd = cnn, one = cnn;
    odd.C = 24; /* 2.7M */
    one.k[1] = one.k[2] = 1, one.C = 32 * 9;
    CHECK(sal_conv_dnnl_wanted(&cnn) && !sal_conv_dnnl_wanted(&odd) && !sal_conv_dnnl_wanted(&one),
          "the choice between 2M and 4M multiply-adds");
    /* a first layer's input gradient alone (ResNet's 7x7 / 2 stem from 3 channels) is ours, its
     * forward and weight gradient oneDNN's, as every layer's under SAL_DNNL=all */
    sal_conv_shape stem = {.nsp = 2, .N = 1, .C = 3, .M = 64, .G = 1, .in = {1, 224, 224}, .out = {1, 112, 112},
                           .k = {1, 7, 7}, .s = {1, 2, 2}};
    CHECK(sal_conv_dnnl_wanted(&stem) && !sal_conv_dnnl_wanted_dx(&stem) && sal_conv_dnnl_wanted_dx(&large),
          "the stem's input gradient by our kernels");
    sal_conv_dnnl_mode(SAL_DNNL_ALL);
    CHECK(sal_conv_dnnl_wanted_dx(&stem), "SAL_DNNL=all takes the stem's input gradient too");
    sal_conv_dnnl_mode(SAL_DNNL_AUTO);
    /* Winograd from 32 output tiles of 4 x 4 (the first case: 2 x 4 x 4), direct below */
    large.s[1] = large.s[2] = large.d[1] = large.d[2] = 1;
    sal_conv_shape wino = large, few = large;
    wino.N = 2, wino.C = 16, wino.M = 32, wino.out[1] = wino.out[2] = 16;
    few.out[1] = few.out[2] = 14; /* 16 tiles */
    CHECK(sal_conv_dnnl_winograd(&large) && sal_conv_dnnl_winograd(&wino) && !sal_conv_dnnl_winograd(&few) &&
              !sal_conv_dnnl_winograd(&small),
          "Winograd chosen by output tiles");
    return t_done("test_conv_dnnl");
}
