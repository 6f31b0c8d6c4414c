/* Convolution through oneDNN (src/ops/conv_dnnl.c) against our own kernels (conv.c), which
 * test_ops_conv.c checks against direct loops and finite differences: forward, input, weight and
 * bias gradients, for 1-D to 3-D shapes, strides, dilations, asymmetric pads, groups, depthwise,
 * with and without bias, Winograd-shaped 3x3 layers, a gradient that must add to another (the
 * input also read by a second node), and a chain Conv -> Relu -> Conv whose inner gradients arrive
 * in fresh buffers that the kernels write instead of adding to (sal_op.bwd_writes). Each case must really run through oneDNN (its call counter
 * moves), and the default mode must leave small layers to our kernels. */
#include "ops/conv_dnnl.h"
#include "testutil.h"

typedef struct {
    const char *what;
    int nsp;
    int64_t N, C, M, G, in[3], k[3], s[3], d[3], pads[6];
    bool bias;
} conv_case;

static const conv_case k_cases[] = {
    {"2-D 3x3 Winograd-shaped", 2, 2, 16, 32, 1, {12, 12}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, true},
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
    /* the default leaves small layers to our kernels and takes large ones */
    sal_conv_dnnl_mode(SAL_DNNL_AUTO);
    sal_conv_shape small = {.nsp = 2, .N = 1, .C = 8, .M = 8, .G = 1, .in = {1, 8, 8}, .out = {1, 8, 8}, .k = {1, 3, 3}},
                   large = {.nsp = 2, .N = 1, .C = 64, .M = 64, .G = 1, .in = {1, 56, 56}, .out = {1, 56, 56},
                            .k = {1, 3, 3}};
    CHECK(!sal_conv_dnnl_wanted(&small) && sal_conv_dnnl_wanted(&large), "automatic choice by size");
    return t_done("test_conv_dnnl");
}
