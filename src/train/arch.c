/* Built-in architectures, initialised from a seed: the Kindermans et al. MLP, a small CNN and a Conv1D
 * net for one-hot DNA. */
#include "graph/graph.h"
#include <math.h>

/* He-normal weights (ReLU nets), zero biases: a constant named `name`. */
static sal_status add_weight(sal_model *g, sal_rng *r, const char *name, int ndim, const int64_t *dim,
                             int64_t fan_in) {
    sal_tensor t = {0};
    SAL_TRY(sal_tensor_alloc(&t, SAL_F32, ndim, dim));
    float *p = sal_f32(&t), sd = fan_in ? sqrtf(2.0f / (float)fan_in) : 0.0f;
    for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++) p[i] = sd * (float)sal_rng_normal(r);
    return sal_graph_add_const(g, name, &t);
}

static sal_status dense(sal_model *g, sal_rng *r, const char *in, const char *out, int64_t nin, int64_t nout,
                        int layer) {
    char w[32], b[32], node[32];
    snprintf(w, sizeof w, "fc%d.weight", layer);
    snprintf(b, sizeof b, "fc%d.bias", layer);
    snprintf(node, sizeof node, "fc%d", layer);
    SAL_TRY(add_weight(g, r, w, 2, (int64_t[]){nout, nin}, nin));
    SAL_TRY(add_weight(g, r, b, 1, (int64_t[]){nout}, 0));
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    return sal_graph_add_op(g, SAL_OP_Gemm, node, 3, (const char *[]){in, w, b}, 1, (const char *[]){out}, 1, at);
}

static sal_status conv(sal_model *g, sal_rng *r, const char *in, const char *out, int64_t cin, int64_t cout,
                       int layer) {
    char w[32], b[32], node[32];
    snprintf(w, sizeof w, "conv%d.weight", layer);
    snprintf(b, sizeof b, "conv%d.bias", layer);
    snprintf(node, sizeof node, "conv%d", layer);
    SAL_TRY(add_weight(g, r, w, 4, (int64_t[]){cout, cin, 3, 3}, cin * 9));
    SAL_TRY(add_weight(g, r, b, 1, (int64_t[]){cout}, 0));
    sal_attr at[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3}),
                      sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    return sal_graph_add_op(g, SAL_OP_Conv, node, 3, (const char *[]){in, w, b}, 1, (const char *[]){out}, 2, at);
}

/* Conv1D with a k-wide kernel, "same" padding. */
static sal_status conv1d(sal_model *g, sal_rng *r, const char *in, const char *out, int64_t cin, int64_t cout, int64_t k,
                         int layer) {
    char w[32], b[32], node[32];
    snprintf(w, sizeof w, "conv%d.weight", layer);
    snprintf(b, sizeof b, "conv%d.bias", layer);
    snprintf(node, sizeof node, "conv%d", layer);
    SAL_TRY(add_weight(g, r, w, 3, (int64_t[]){cout, cin, k}, cin * k));
    SAL_TRY(add_weight(g, r, b, 1, (int64_t[]){cout}, 0));
    sal_attr at[2] = {sal_attr_make_ints("kernel_shape", 1, (int64_t[]){k}),
                      sal_attr_make_ints("pads", 2, (int64_t[]){k / 2, k / 2})};
    return sal_graph_add_op(g, SAL_OP_Conv, node, 3, (const char *[]){in, w, b}, 1, (const char *[]){out}, 2, at);
}

static sal_status unary(sal_model *g, sal_op_id op, const char *name, const char *in, const char *out) {
    return sal_graph_add_op(g, op, name, 1, (const char *[]){in}, 1, (const char *[]){out}, 0, NULL);
}

static sal_status maxpool(sal_model *g, const char *name, const char *in, const char *out) {
    sal_attr at[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    return sal_graph_add_op(g, SAL_OP_MaxPool, name, 1, (const char *[]){in}, 1, (const char *[]){out}, 2, at);
}

static sal_status maxpool1d(sal_model *g, const char *name, const char *in, const char *out, int64_t k) {
    sal_attr at[2] = {sal_attr_make_ints("kernel_shape", 1, (int64_t[]){k}), sal_attr_make_ints("strides", 1, (int64_t[]){k})};
    return sal_graph_add_op(g, SAL_OP_MaxPool, name, 1, (const char *[]){in}, 1, (const char *[]){out}, 2, at);
}

static sal_status build_mlp(sal_model *g, sal_rng *r, int nclasses, int64_t features) {
    SAL_TRY(unary(g, SAL_OP_Flatten, "flatten", "input", "flat"));
    SAL_TRY(dense(g, r, "flat", "h1", features, 1024, 1));
    SAL_TRY(unary(g, SAL_OP_Relu, "relu1", "h1", "a1"));
    SAL_TRY(dense(g, r, "a1", "h2", 1024, 1024, 2));
    SAL_TRY(unary(g, SAL_OP_Relu, "relu2", "h2", "a2"));
    SAL_TRY(dense(g, r, "a2", "h3", 1024, 1024, 3));
    SAL_TRY(unary(g, SAL_OP_Relu, "relu3", "h3", "a3"));
    return dense(g, r, "a3", "logits", 1024, nclasses, 4);
}

/* conv3x3(32)-relu-pool, conv3x3(64)-relu-pool, dense 128, dense classes: about 0.4M parameters
 * for 1x28x28 inputs. */
static sal_status build_cnn(sal_model *g, sal_rng *r, int nclasses, const int64_t *in) {
    SAL_TRY(conv(g, r, "input", "c1", in[0], 32, 1));
    SAL_TRY(unary(g, SAL_OP_Relu, "relu1", "c1", "a1"));
    SAL_TRY(maxpool(g, "pool1", "a1", "p1"));
    SAL_TRY(conv(g, r, "p1", "c2", 32, 64, 2));
    SAL_TRY(unary(g, SAL_OP_Relu, "relu2", "c2", "a2"));
    SAL_TRY(maxpool(g, "pool2", "a2", "p2"));
    SAL_TRY(unary(g, SAL_OP_Flatten, "flatten", "p2", "flat"));
    SAL_TRY(dense(g, r, "flat", "h3", 64 * (in[1] / 4) * (in[2] / 4), 128, 3));
    SAL_TRY(unary(g, SAL_OP_Relu, "relu3", "h3", "a3"));
    return dense(g, r, "a3", "logits", 128, nclasses, 4);
}

/* For one-hot DNA (4, L): conv1d 15 (32)-relu-maxpool 4, conv1d 5 (32)-relu-maxpool 4, dense 32,
 * dense classes: motif detectors in the first layer, their arrangement in the second; about
 * 2 * L + 7000 parameters. */
static sal_status build_seqcnn(sal_model *g, sal_rng *r, int nclasses, const int64_t *in) {
    SAL_TRY(conv1d(g, r, "input", "c1", in[0], 32, 15, 1));
    SAL_TRY(unary(g, SAL_OP_Relu, "relu1", "c1", "a1"));
    SAL_TRY(maxpool1d(g, "pool1", "a1", "p1", 4));
    SAL_TRY(conv1d(g, r, "p1", "c2", 32, 32, 5, 2));
    SAL_TRY(unary(g, SAL_OP_Relu, "relu2", "c2", "a2"));
    SAL_TRY(maxpool1d(g, "pool2", "a2", "p2", 4));
    SAL_TRY(unary(g, SAL_OP_Flatten, "flatten", "p2", "flat"));
    SAL_TRY(dense(g, r, "flat", "h3", 32 * (in[1] / 4 / 4), 32, 3));
    SAL_TRY(unary(g, SAL_OP_Relu, "relu3", "h3", "a3"));
    return dense(g, r, "a3", "logits", 32, nclasses, 4);
}

static sal_status finish(sal_model *g, sal_status st, sal_model **out) {
    if (st == SAL_OK) st = sal_graph_add_output(g, "logits");
    if (st == SAL_OK) st = sal_graph_finalize(g);
    if (st != SAL_OK) {
        sal_model_free(g);
        return st;
    }
    *out = g;
    return SAL_OK;
}

static sal_status build_seq(const char *arch, const char *colon, int nclasses, uint64_t seed, sal_model **out) {
    int64_t in[2] = {4, 200};
    if (colon) {
        char *end;
        long long a = strtoll(colon + 1, &end, 10), b = a;
        if (*end == 'x') b = strtoll(end + 1, &end, 10);
        else a = 4;
        if (*end || end == colon + 1 || a != 4 || b < 16 || b > (1 << 20))
            return sal_fail(SAL_ERR_ARG, "architecture '%s': seqcnn takes one-hot DNA, 4xL with L >= 16", arch);
        in[1] = b;
    }
    sal_model *g;
    sal_rng r;
    sal_rng_seed(&r, seed);
    SAL_TRY(sal_graph_create(NULL, &g));
    sal_status st = sal_graph_add_input(g, "input", SAL_F32, 3, (int64_t[]){-1, in[0], in[1]});
    if (st == SAL_OK) st = build_seqcnn(g, &r, nclasses, in);
    return finish(g, st, out);
}

sal_status sal_model_build(const char *arch, int nclasses, uint64_t seed, sal_model **out) {
    *out = NULL;
    if (nclasses < 1 || nclasses > 100000) return sal_fail(SAL_ERR_ARG, "number of classes %d out of range", nclasses);
    /* "mlp" or "cnn", optionally with the input shape of one sample: "cnn:56x56" or "cnn:3x32x32";
     * "seqcnn" with one-hot DNA's shape: "seqcnn:L" or "seqcnn:4xL" */
    const char *colon = strchr(arch, ':');
    size_t len = colon ? (size_t)(colon - arch) : strlen(arch);
    bool mlp = len == 3 && !strncmp(arch, "mlp", 3), cnn = len == 3 && !strncmp(arch, "cnn", 3);
    if (len == 6 && !strncmp(arch, "seqcnn", 6)) return build_seq(arch, colon, nclasses, seed, out);
    if (!mlp && !cnn) return sal_fail(SAL_ERR_ARG, "unknown architecture '%s' (known: mlp, cnn, seqcnn)", arch);
    int64_t in[3] = {1, 28, 28}, v[3];
    int nv = 0;
    for (const char *p = colon; p && *p && nv < 4;) {
        char *end;
        long long k = strtoll(p + 1, &end, 10);
        if (end == p + 1 || k < 1 || k > 4096 || (*end && *end != 'x') || nv == 3)
            return sal_fail(SAL_ERR_ARG, "architecture '%s': the input shape must read HxW or CxHxW", arch);
        v[nv++] = k;
        p = *end ? end : NULL;
    }
    if (nv == 1) return sal_fail(SAL_ERR_ARG, "architecture '%s': the input shape must read HxW or CxHxW", arch);
    if (nv == 2) in[1] = v[0], in[2] = v[1];
    if (nv == 3) in[0] = v[0], in[1] = v[1], in[2] = v[2];
    if (cnn && (in[1] < 4 || in[2] < 4))
        return sal_fail(SAL_ERR_ARG, "architecture '%s': the cnn needs inputs of at least 4x4", arch);
    sal_model *g;
    sal_rng r;
    sal_rng_seed(&r, seed);
    SAL_TRY(sal_graph_create(NULL, &g));
    sal_status st = sal_graph_add_input(g, "input", SAL_F32, 4, (int64_t[]){-1, in[0], in[1], in[2]});
    if (st == SAL_OK) st = mlp ? build_mlp(g, &r, nclasses, in[0] * in[1] * in[2]) : build_cnn(g, &r, nclasses, in);
    return finish(g, st, out);
}
