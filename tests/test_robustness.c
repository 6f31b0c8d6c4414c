/* Robustness (docs/robustness.md): hostile models beyond the broken files of test_onnx_io.c, the
 * memory budget, allocation failures along whole explain runs, non-finite weights and outputs, and
 * atomic writes interrupted by signals. The CLI checks run $SAL_BUILD/saliency (default build/).
 * Under ASan (make SAN=1) every error path is also checked for leaks; without it, the library's own
 * count of live bytes (sal_memory_in_use) must return to where it started. */
#include "testutil.h"
#include "../fuzz/targets.h"
#include "onnx.pb-c.h"
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static const char *g_cli;

/* ---- models built with the graph API ---- */

/* x (N,1,6,6) -> Conv(2,3x3,pad 1) -> Relu -> MaxPool 2 -> Flatten -> Gemm(3) -> logits (N,3) */
static sal_model *tiny_cnn(uint64_t seed) {
    sal_rng r;
    sal_rng_seed(&r, seed);
    sal_model *g = NULL;
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    sal_tensor W = t_rand(&r, 4, (int64_t[]){2, 1, 3, 3}, 0.5f), b = t_rand(&r, 1, (int64_t[]){2}, 0.1f),
               W2 = t_rand(&r, 2, (int64_t[]){3, 18}, 0.5f), b2 = t_rand(&r, 1, (int64_t[]){3}, 0.1f);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 6, 6}) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, "W", &W) == SAL_OK && sal_graph_add_const(g, "b", &b) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, "W2", &W2) == SAL_OK && sal_graph_add_const(g, "b2", &b2) == SAL_OK);
    sal_attr ca[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3}),
                      sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    sal_attr pa[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    sal_attr ga[1] = {sal_attr_make_int("transB", 1)};
    SAL_ASSERT(sal_graph_add_node(g, "Conv", "conv", 3, (const char *[]){"x", "W", "b"}, 1, (const char *[]){"c"}, 2, ca) == SAL_OK);
    SAL_ASSERT(sal_graph_add_node(g, "Relu", "relu", 1, (const char *[]){"c"}, 1, (const char *[]){"r"}, 0, NULL) == SAL_OK);
    SAL_ASSERT(sal_graph_add_node(g, "MaxPool", "pool", 1, (const char *[]){"r"}, 1, (const char *[]){"p"}, 2, pa) == SAL_OK);
    SAL_ASSERT(sal_graph_add_node(g, "Flatten", "flat", 1, (const char *[]){"p"}, 1, (const char *[]){"f"}, 0, NULL) == SAL_OK);
    SAL_ASSERT(sal_graph_add_node(g, "Gemm", "fc", 3, (const char *[]){"f", "W2", "b2"}, 1, (const char *[]){"logits"}, 1, ga) == SAL_OK);
    SAL_ASSERT(sal_graph_add_output(g, "logits") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    return g;
}

/* x (N,4) -> Gemm(W (3,4), b) -> logits; W and b given (12 and 3 values) */
static sal_model *linear(const float *w, const float *bias) {
    sal_model *g = NULL;
    sal_tensor W = {0}, b = {0};
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    SAL_ASSERT(sal_tensor_alloc(&W, SAL_F32, 2, (int64_t[]){3, 4}) == SAL_OK);
    SAL_ASSERT(sal_tensor_alloc(&b, SAL_F32, 1, (int64_t[]){3}) == SAL_OK);
    memcpy(W.data, w, 12 * sizeof(float));
    memcpy(b.data, bias, 3 * sizeof(float));
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, "W", &W) == SAL_OK && sal_graph_add_const(g, "b", &b) == SAL_OK);
    sal_attr ga[1] = {sal_attr_make_int("transB", 1)};
    SAL_ASSERT(sal_graph_add_node(g, "Gemm", "fc", 3, (const char *[]){"x", "W", "b"}, 1, (const char *[]){"logits"}, 1, ga) == SAL_OK);
    SAL_ASSERT(sal_graph_add_output(g, "logits") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    return g;
}

/* x (N, 100000) -> Gemm with W (10, 100000): a 4 MB model */
static sal_model *wide_linear(void) {
    sal_model *g = NULL;
    sal_rng r;
    sal_rng_seed(&r, 9);
    SAL_ASSERT(sal_graph_create(NULL, &g) == SAL_OK);
    sal_tensor W = t_rand(&r, 2, (int64_t[]){10, 100000}, 1);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 100000}) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, "W", &W) == SAL_OK);
    sal_attr ga[1] = {sal_attr_make_int("transB", 1)};
    SAL_ASSERT(sal_graph_add_node(g, "Gemm", "fc", 2, (const char *[]){"x", "W"}, 1, (const char *[]){"y"}, 1, ga) == SAL_OK);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    SAL_ASSERT(sal_graph_finalize(g) == SAL_OK);
    return g;
}

static void save_free(sal_model *g, const char *path) {
    SAL_ASSERT(sal_model_save(g, path) == SAL_OK);
    sal_model_free(g);
}

/* ---- mutating saved models: unpack, change, pack (then restore what was changed, since
 * protobuf-c frees the unpacked strings and arrays itself) ---- */

static Onnx__ModelProto *unpack(const char *path) {
    unsigned char *b = NULL;
    size_t n = 0;
    SAL_ASSERT(sal_read_file(path, 1 << 26, &b, &n) == SAL_OK);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, n, b);
    sal_free(b);
    SAL_ASSERT(mp);
    return mp;
}

static void pack(const Onnx__ModelProto *mp, const char *path) {
    size_t n = onnx__model_proto__get_packed_size(mp);
    unsigned char *b = malloc(n ? n : 1);
    SAL_ASSERT(b && onnx__model_proto__pack(mp, b) == n);
    FILE *f = fopen(path, "wb");
    SAL_ASSERT(f && fwrite(b, 1, n, f) == n);
    fclose(f);
    free(b);
}

/* Loads path, expecting failure with `want` and every needle in the message, and no model. */
static void expect_load_fail(const char *what, const char *path, sal_status want, const char *n1, const char *n2) {
    sal_model *m = (sal_model *)&m;
    sal_status st = sal_model_load(path, &m);
    const char *e = sal_last_error();
    CHECK(st == want && m == NULL && strstr(e, n1) && (!n2 || strstr(e, n2)), "%s: got %s '%s', wanted %s with '%s'%s%s",
          what, sal_status_string(st), e, sal_status_string(want), n1, n2 ? " and " : "", n2 ? n2 : "");
    if (st == SAL_OK) sal_model_free(m);
}

static sal_tensor batch(int64_t n, int nd, const int64_t *inner, uint64_t seed) {
    int64_t dim[SAL_MAX_DIMS] = {n};
    memcpy(dim + 1, inner, sizeof(int64_t) * (size_t)nd);
    sal_rng r;
    sal_rng_seed(&r, seed);
    return t_rand(&r, nd + 1, dim, 1.0f);
}

/* ---- hostile models ---- */

static void test_hostile_shapes(void) {
    const char *base = t_tmp("cnn.onnx"), *p = t_tmp("mut.onnx");
    save_free(tiny_cnn(1), base);
    Onnx__ModelProto *mp = unpack(base);
    Onnx__TensorShapeProto *sh = mp->graph->input[0]->type->tensor_type->shape;
    Onnx__TensorShapeProto__Dimension *d1 = sh->dim[1], *d2 = sh->dim[2], *d3 = sh->dim[3];
    SAL_ASSERT(sh->n_dim == 4 && d1->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE);

    /* declared input dimensions whose product overflows, each one representable */
    d1->dim_value = (int64_t)1 << 31, d2->dim_value = (int64_t)1 << 31, d3->dim_value = (int64_t)1 << 31;
    pack(mp, p);
    expect_load_fail("input size overflow", p, SAL_ERR_FORMAT, "input 'x' has shape (-1,2147483648,2147483648,2147483648)",
                     "overflows");
    d1->dim_value = INT64_MAX, d2->dim_value = 6, d3->dim_value = 6;
    pack(mp, p);
    expect_load_fail("input dim INT64_MAX", p, SAL_ERR_FORMAT, "input 'x'", "overflows");
    d1->dim_value = -3;
    pack(mp, p);
    expect_load_fail("negative input dim", p, SAL_ERR_FORMAT, "input 'x' has negative dimension -3 at axis 1", NULL);

    /* a zero dimension is a legal, empty shape: the model must load, and feeding it must fail
     * (or work) cleanly, as must feeding the declared (1,1,6,6) to it */
    d1->dim_value = 0;
    pack(mp, p);
    d1->dim_value = 1;
    sal_model *m = NULL;
    sal_status st = sal_model_load(p, &m);
    CHECK(st == SAL_OK || st == SAL_ERR_SHAPE, "zero input dim: %s", sal_last_error());
    if (m) {
        sal_session *s = NULL;
        const sal_tensor *y;
        sal_tensor x0 = {0}, x1 = batch(1, 3, (int64_t[]){1, 6, 6}, 1);
        CHECK_OK(sal_tensor_alloc(&x0, SAL_F32, 4, (int64_t[]){1, 0, 6, 6}));
        CHECK_OK(sal_session_new(m, &s));
        st = sal_forward(s, 1, &x0, &y);
        CHECK(st == SAL_OK || (st == SAL_ERR_SHAPE && strstr(sal_last_error(), "conv")), "empty input: %s",
              sal_last_error());
        CHECK_FAILS(sal_forward(s, 1, &x1, &y), SAL_ERR_SHAPE, "input 'x' expects shape (-1,0,6,6)");
        sal_session_free(s);
        sal_tensor_free(&x0);
        sal_tensor_free(&x1);
        sal_model_free(m);
    }
    onnx__model_proto__free_unpacked(mp, NULL);

    /* zero-sized batch and zero-sized weights through the whole pipeline */
    float w[12] = {0}, b[3] = {0};
    m = linear(w, b);
    sal_tensor x = {0};
    CHECK_OK(sal_tensor_alloc(&x, SAL_F32, 2, (int64_t[]){0, 4}));
    sal_explanation *e = NULL;
    sal_explain_opts o = {.method = "gradient"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "batch");
    sal_session *s = NULL;
    const sal_tensor *y = NULL;
    CHECK_OK(sal_session_new(m, &s));
    CHECK_OK(sal_forward(s, 1, &x, &y));
    CHECK(y && y->ndim == 2 && y->dim[0] == 0 && y->dim[1] == 3, "an empty batch gives an empty output");
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Constant folding at load time and shape inference at run time meet sizes chosen by the file. */
static void test_hostile_sizes(void) {
    /* ConstantOfShape (2^21, 2^21): over the 2^40-element limit of any tensor */
    sal_model *g = NULL;
    sal_tensor shape = {0};
    CHECK_OK(sal_graph_create(NULL, &g));
    CHECK_OK(sal_tensor_alloc(&shape, SAL_I64, 1, (int64_t[]){2}));
    ((int64_t *)shape.data)[0] = (int64_t)1 << 21;
    ((int64_t *)shape.data)[1] = (int64_t)1 << 21;
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 1}));
    CHECK_OK(sal_graph_add_const(g, "shape", &shape));
    CHECK_OK(sal_graph_add_node(g, "ConstantOfShape", "huge", 1, (const char *[]){"shape"}, 1, (const char *[]){"k"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "Mul", "mul", 2, (const char *[]){"x", "k"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    sal_status st = sal_graph_finalize(g);
    CHECK(st != SAL_OK && st != SAL_ERR_INTERNAL && strstr(sal_last_error(), "huge"),
          "ConstantOfShape of 2^42 elements refused at folding, naming the node: %s (%s)", sal_status_string(st),
          sal_last_error());
    sal_model_free(g);

    /* the same with (2^15, 2^15) = 4 GiB under a 256 MiB budget: refused by the budget, with the
     * bytes it needed, and nothing allocated for it (the peak does not move) */
    size_t budget0 = sal_memory_budget();
    CHECK_OK(sal_graph_create(NULL, &g));
    CHECK_OK(sal_tensor_alloc(&shape, SAL_I64, 1, (int64_t[]){2}));
    ((int64_t *)shape.data)[0] = (int64_t)1 << 15;
    ((int64_t *)shape.data)[1] = (int64_t)1 << 15;
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 1}));
    CHECK_OK(sal_graph_add_const(g, "shape", &shape));
    CHECK_OK(sal_graph_add_node(g, "ConstantOfShape", "big", 1, (const char *[]){"shape"}, 1, (const char *[]){"k"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "Mul", "mul", 2, (const char *[]){"x", "k"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    sal_set_memory_budget(sal_memory_in_use() + ((size_t)256 << 20));
    size_t peak0 = sal_memory_peak();
    CHECK_FAILS(sal_graph_finalize(g), SAL_ERR_NOMEM, "needs 4294967296 bytes");
    CHECK(strstr(sal_last_error(), "(32768,32768)") && strstr(sal_last_error(), "big"), "message names shape and node: %s",
          sal_last_error());
    CHECK(sal_memory_peak() < peak0 + ((size_t)1 << 20), "refused before allocating (peak grew by %zu bytes)",
          sal_memory_peak() - peak0);
    sal_set_memory_budget(budget0);
    sal_model_free(g);

    /* Expand of an input to (2^20, 2^20) at run time: refused when the node runs, naming it */
    CHECK_OK(sal_graph_create(NULL, &g));
    CHECK_OK(sal_tensor_alloc(&shape, SAL_I64, 1, (int64_t[]){3}));
    int64_t *sd = shape.data;
    sd[0] = 1, sd[1] = (int64_t)1 << 20, sd[2] = (int64_t)1 << 20;
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 1}));
    CHECK_OK(sal_graph_add_const(g, "shape", &shape));
    CHECK_OK(sal_graph_add_node(g, "Expand", "blowup", 2, (const char *[]){"x", "shape"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    sal_session *s = NULL;
    const sal_tensor *y;
    sal_tensor x = batch(1, 1, (int64_t[]){1}, 2);
    CHECK_OK(sal_session_new(g, &s));
    sal_set_memory_budget(sal_memory_in_use() + ((size_t)256 << 20));
    CHECK_FAILS(sal_forward(s, 1, &x, &y), SAL_ERR_NOMEM, "node 'blowup' (Expand)");
    CHECK(strstr(sal_last_error(), "needs 4398046511104 bytes"), "message gives the bytes: %s", sal_last_error());
    sal_set_memory_budget(budget0);
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(g);
}

/* A long chain of nodes: nothing in loading, sorting, folding, running or differentiating may
 * recurse per node, and the cost must stay linear. */
static void test_deep_graph(void) {
    enum { DEPTH = 100000 };
    double t0 = sal_now();
    sal_model *g = NULL;
    CHECK_OK(sal_graph_create(NULL, &g));
    CHECK_OK(sal_graph_add_input(g, "v0", SAL_F32, 2, (int64_t[]){-1, 3}));
    char in[32], out[32];
    /* added in reverse: the importer (and finalize) must sort 100000 nodes, not trust the order */
    for (int i = DEPTH; i >= 1; i--) {
        snprintf(in, sizeof in, "v%d", i - 1);
        snprintf(out, sizeof out, "v%d", i);
        const char *ip = in, *op = out;
        SAL_ASSERT(sal_graph_add_node(g, i % 2 ? "Relu" : "Identity", NULL, 1, &ip, 1, &op, 0, NULL) == SAL_OK);
    }
    snprintf(out, sizeof out, "v%d", DEPTH);
    CHECK_OK(sal_graph_add_output(g, out));
    CHECK_OK(sal_graph_finalize(g));
    const char *p = t_tmp("deep.onnx");
    CHECK_OK(sal_model_save(g, p));
    sal_model_free(g);
    double t1 = sal_now();
    sal_model *m = NULL;
    CHECK_OK(sal_model_load(p, &m));
    double t2 = sal_now();
    if (!m) return;
    CHECK(sal_model_num_nodes(m) == DEPTH, "all %d nodes kept (%d)", DEPTH, sal_model_num_nodes(m));
    sal_session *s = NULL;
    const sal_tensor *y, *gr;
    sal_tensor x = batch(2, 1, (int64_t[]){3}, 3), seed = {0};
    CHECK_OK(sal_session_new(m, &s));
    CHECK_OK(sal_forward(s, 1, &x, &y));
    CHECK_OK(sal_tensor_alloc(&seed, SAL_F32, 2, (int64_t[]){2, 3}));
    for (int i = 0; i < 6; i++) sal_f32(&seed)[i] = 1;
    CHECK_OK(sal_input_gradient(s, &seed, &gr));
    bool right = y && gr;
    for (int i = 0; right && i < 6; i++) {
        float v = sal_f32(&x)[i];
        right = sal_f32(y)[i] == (v > 0 ? v : 0) && sal_f32(gr)[i] == (v > 0 ? 1.0f : 0.0f);
    }
    CHECK(right, "100000 chained ReLUs compute relu(x) and its gradient");
    double t3 = sal_now();
    printf("deep graph of %d nodes: build+save %.2fs, load %.2fs, forward+backward %.2fs\n", DEPTH, t1 - t0, t2 - t1,
           t3 - t2);
    /* generous: ASan and a shared machine; a quadratic step would take hours */
    CHECK(t3 - t0 < 120, "deep graph handled in %.1fs", t3 - t0);
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_tensor_free(&seed);
    sal_model_free(m);

    /* 100000 nodes sharing one name: unique names without a quadratic search */
    Onnx__ModelProto *mp = unpack(p);
    char **names = malloc(sizeof *names * mp->graph->n_node);
    for (size_t i = 0; i < mp->graph->n_node; i++) {
        names[i] = mp->graph->node[i]->name;
        mp->graph->node[i]->name = "same";
    }
    pack(mp, p);
    for (size_t i = 0; i < mp->graph->n_node; i++) mp->graph->node[i]->name = names[i];
    free(names);
    onnx__model_proto__free_unpacked(mp, NULL);
    t0 = sal_now();
    CHECK_OK(sal_model_load(p, &m));
    t1 = sal_now();
    CHECK(m && sal_graph_find_node(m, "same") >= 0 && sal_graph_find_node(m, "same_100000") >= 0,
          "duplicate node names made unique");
    CHECK(t1 - t0 < 60, "100000 equal names loaded in %.1fs", t1 - t0);
    sal_model_free(m);
    remove(p);
}

/* Raw protobuf: field key and length-delimited payloads. */
typedef struct {
    unsigned char *b;
    size_t n, cap;
} pbuf;

static void pb_put(pbuf *p, const void *d, size_t n) {
    if (p->n + n > p->cap) {
        p->cap = (p->n + n) * 2;
        p->b = realloc(p->b, p->cap);
        SAL_ASSERT(p->b);
    }
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void pb_varint(pbuf *p, uint64_t v) {
    unsigned char c[10];
    int k = 0;
    do {
        c[k++] = (unsigned char)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(p, c, (size_t)k);
}

static int varint_len(uint64_t v) {
    int k = 1;
    while (v >= 0x80) v >>= 7, k++;
    return k;
}

/* ModelProto{ir_version, opset_import, graph{input{name "x", type: TypeProto{sequence_type{elem_type:
 * TypeProto{sequence_type{... tensor_type{elem_type FLOAT}}}}}}}} with `levels` sequence levels.
 * Written front to back from precomputed lengths: wrapping in place would copy the whole message
 * once per level. */
static pbuf nested_model(int levels) {
    int nwrap = 2 * levels + 1; /* tensor_type, then (elem_type, sequence_type) per level */
    uint64_t *len = malloc(sizeof *len * (size_t)(nwrap + 1));
    unsigned *field = malloc(sizeof *field * (size_t)(nwrap + 1));
    SAL_ASSERT(len && field);
    len[0] = 2; /* TypeProto.Tensor{elem_type = FLOAT}: key, value */
    for (int i = 0; i < nwrap; i++) {
        field[i] = i == 0 ? 1 : i % 2 ? 1 : 4; /* tensor_type; Sequence.elem_type; TypeProto.sequence_type */
        len[i + 1] = len[i] + 1 + (uint64_t)varint_len(len[i]);
    }
    pbuf t = {0};
    /* outside in: ModelProto fields, graph, input, then the type's wrappers */
    pb_put(&t, "\x08\x07", 2);         /* ir_version 7 */
    pb_put(&t, "\x42\x02\x10\x0d", 4); /* opset_import {version 13} */
    uint64_t type_len = len[nwrap], vi_len = 3 + 1 + (uint64_t)varint_len(type_len) + type_len,
             graph_len = 1 + (uint64_t)varint_len(vi_len) + vi_len;
    pb_varint(&t, 7 << 3 | 2); /* ModelProto.graph */
    pb_varint(&t, graph_len);
    pb_varint(&t, 11 << 3 | 2); /* GraphProto.input */
    pb_varint(&t, vi_len);
    pb_put(&t, "\x0a\x01x", 3); /* ValueInfoProto.name = "x" */
    pb_varint(&t, 2 << 3 | 2);  /* ValueInfoProto.type */
    pb_varint(&t, type_len);
    for (int i = nwrap - 1; i >= 0; i--) {
        pb_varint(&t, (uint64_t)field[i] << 3 | 2);
        pb_varint(&t, len[i]);
    }
    pb_put(&t, "\x08\x01", 2); /* TypeProto.Tensor.elem_type = FLOAT */
    free(len);
    free(field);
    return t;
}

static void test_deep_nesting(void) {
    /* 200000 levels in about 1 MB, which protobuf-c alone would decode by recursing 400000 frames
     * deep: refused before decoding */
    pbuf t = nested_model(200000);
    const char *p = t_tmp("nested.onnx");
    FILE *f = fopen(p, "wb");
    SAL_ASSERT(f && fwrite(t.b, 1, t.n, f) == t.n);
    fclose(f);
    expect_load_fail("deep nesting", p, SAL_ERR_FORMAT, "nested more than 64 deep", p);
    free(t.b);
    remove(p);
    /* a few levels are an ordinary file, whose sequence input is merely unsupported */
    t = nested_model(10);
    sal_model *m = NULL;
    CHECK_FAILS(sal_onnx_load_buffer(t.b, t.n, "shallow", &m), SAL_ERR_UNSUPPORTED, "input 'x' is a sequence");
    free(t.b);
}

static void test_hostile_graphs(void) {
    const char *base = t_tmp("cnn.onnx"), *p = t_tmp("mut.onnx");
    save_free(tiny_cnn(1), base);
    Onnx__ModelProto *mp = unpack(base);
    Onnx__GraphProto *gp = mp->graph;

    /* external data pointing outside the model's folder: refused (all external data is) */
    Onnx__TensorProto *w = NULL;
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (!strcmp(gp->initializer[i]->name, "W")) w = gp->initializer[i];
    SAL_ASSERT(w);
    Onnx__StringStringEntryProto loc = ONNX__STRING_STRING_ENTRY_PROTO__INIT, *locp = &loc;
    loc.key = "location";
    const char *evil[] = {"../../../../etc/passwd", "/etc/shadow", "sub/../../x.bin"};
    ProtobufCBinaryData raw = w->raw_data;
    for (int i = 0; i < 3; i++) {
        loc.value = (char *)evil[i];
        w->n_external_data = 1;
        w->external_data = &locp;
        w->has_data_location = 1;
        w->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        w->has_raw_data = 0;
        pack(mp, p);
        expect_load_fail("external data traversal", p, SAL_ERR_UNSUPPORTED, "initializer 'W' keeps its data in an external file",
                         evil[i]);
    }
    w->n_external_data = 0;
    w->external_data = NULL;
    w->has_data_location = 0;
    w->has_raw_data = 1;
    w->raw_data = raw;

    /* IR and opset versions at the extremes of int64 */
    int64_t ir0 = mp->ir_version, op0 = mp->opset_import[0]->version;
    const int64_t irs[] = {INT64_MIN, -1, 0, 2, 11, INT64_MAX};
    for (size_t i = 0; i < sizeof irs / sizeof irs[0]; i++) {
        mp->ir_version = irs[i];
        pack(mp, p);
        char want[64];
        snprintf(want, sizeof want, "IR version %lld is not supported", (long long)irs[i]);
        expect_load_fail("IR version", p, SAL_ERR_UNSUPPORTED, want, NULL);
    }
    mp->ir_version = ir0;
    const int64_t ops[] = {INT64_MIN, 0, 8, 22, INT64_MAX};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        mp->opset_import[0]->version = ops[i];
        pack(mp, p);
        char want[64];
        snprintf(want, sizeof want, "opset %lld is not supported", (long long)ops[i]);
        expect_load_fail("opset", p, ops[i] < 0 ? SAL_ERR_FORMAT : SAL_ERR_UNSUPPORTED,
                         ops[i] < 0 ? "imports no version of the default ONNX operator set" : want, NULL);
    }
    mp->opset_import[0]->version = op0;

    /* a node writing the graph input; a node reading its own output; a required input left empty */
    Onnx__NodeProto *relu = NULL;
    for (size_t i = 0; i < gp->n_node; i++)
        if (!strcmp(gp->node[i]->op_type, "Relu")) relu = gp->node[i];
    SAL_ASSERT(relu && relu->n_input == 1 && relu->n_output == 1);
    char *rin = relu->input[0], *rout = relu->output[0];
    relu->output[0] = "x";
    pack(mp, p);
    expect_load_fail("node output shadows the input", p, SAL_ERR_FORMAT, "value 'x' is defined twice", NULL);
    relu->output[0] = rout;
    relu->input[0] = rout;
    pack(mp, p);
    expect_load_fail("self loop", p, SAL_ERR_FORMAT, "cycle through node 'relu'", NULL);
    relu->input[0] = "";
    pack(mp, p);
    expect_load_fail("empty required input", p, SAL_ERR_FORMAT, "node 'relu' (Relu) lacks its required input 0", NULL);
    relu->input[0] = rin;
    {
        /* a node whose required output is omitted (found by fuzz_onnx as a name of one NUL byte) */
        Onnx__NodeProto dead = ONNX__NODE_PROTO__INIT, *nodes[64], **node0 = gp->node;
        char *din[1] = {"x"}, *dout[1] = {""};
        dead.name = "dead";
        dead.op_type = "Relu";
        dead.n_input = dead.n_output = 1;
        dead.input = din;
        dead.output = dout;
        SAL_ASSERT(gp->n_node < 63);
        memcpy(nodes, gp->node, sizeof *nodes * gp->n_node);
        nodes[gp->n_node++] = &dead;
        gp->node = nodes;
        pack(mp, p);
        gp->node = node0;
        gp->n_node--;
        expect_load_fail("empty required output", p, SAL_ERR_FORMAT, "node 'dead' (Relu) lacks its required output 0", NULL);
    }

    /* a Concat of 65537 inputs is refused; 65536 (the most allowed) load and run */
    for (int n = 65536; n <= 65537; n++) {
        Onnx__NodeProto cat = ONNX__NODE_PROTO__INIT, *nodes[64];
        Onnx__AttributeProto ax = ONNX__ATTRIBUTE_PROTO__INIT, *axp = &ax;
        char **ins = malloc(sizeof *ins * (size_t)n), *outs[1] = {"catted"};
        for (int i = 0; i < n; i++) ins[i] = "x";
        cat.name = "cat";
        cat.op_type = "Concat";
        cat.n_input = (size_t)n;
        cat.input = ins;
        cat.n_output = 1;
        cat.output = outs;
        ax.name = "axis";
        ax.has_type = 1;
        ax.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        ax.has_i = 1;
        ax.i = 1;
        cat.n_attribute = 1;
        cat.attribute = &axp;
        SAL_ASSERT(gp->n_node < 63);
        memcpy(nodes, gp->node, sizeof *nodes * gp->n_node);
        nodes[gp->n_node] = &cat;
        Onnx__NodeProto **node0 = gp->node;
        gp->node = nodes;
        gp->n_node++;
        Onnx__ValueInfoProto out1 = ONNX__VALUE_INFO_PROTO__INIT, *outs2[2] = {gp->output[0], &out1},
                             **out0 = gp->output;
        out1.name = "catted";
        gp->output = outs2;
        gp->n_output = 2;
        pack(mp, p);
        gp->node = node0;
        gp->n_node--;
        gp->output = out0;
        gp->n_output = 1;
        free(ins);
        if (n == 65537) {
            expect_load_fail("Concat of 65537", p, SAL_ERR_FORMAT, "node 'cat' (Concat) has 65537 inputs", NULL);
            continue;
        }
        sal_model *m = NULL;
        CHECK_OK(sal_model_load(p, &m));
        sal_session *s = NULL;
        const sal_tensor *y[2];
        sal_tensor x = batch(1, 3, (int64_t[]){1, 6, 6}, 4);
        CHECK_OK(m ? sal_session_new(m, &s) : SAL_ERR_ARG);
        if (s) {
            CHECK_OK(sal_forward(s, 1, &x, y));
            CHECK(y[1]->ndim == 4 && y[1]->dim[1] == 65536, "Concat of 65536 inputs ran");
        }
        sal_session_free(s);
        sal_tensor_free(&x);
        sal_model_free(m);
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    remove(p);
    remove(base);
}

/* A gzipped IDX file of 51 MB of zeros (50 KB on disk) read under a 16 MiB budget: refused while
 * inflating, with the bytes it declared, and nothing kept. */
static void test_gzip_bomb(void) {
    const char *p = t_tmp("bomb-idx3-ubyte.gz");
    gzFile gz = gzopen(p, "wb9");
    SAL_ASSERT(gz);
    unsigned char head[16] = {0, 0, 8, 3, 0, 1, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28}; /* 65536 x 28 x 28 */
    static unsigned char zeros[1 << 16];
    SAL_ASSERT(gzwrite(gz, head, sizeof head) == (int)sizeof head);
    for (int i = 0; i < 784; i++) SAL_ASSERT(gzwrite(gz, zeros, sizeof zeros) == (int)sizeof zeros);
    gzclose(gz);
    size_t budget0 = sal_memory_budget(), use0 = sal_memory_in_use();
    sal_set_memory_budget(use0 + (16 << 20));
    sal_tensor t = {0};
    CHECK_FAILS(sal_idx_read(p, &t), SAL_ERR_NOMEM, "reading IDX data (51380224 bytes declared)");
    CHECK(sal_memory_in_use() == use0 && t.data == NULL, "nothing kept from the refused file");
    sal_set_memory_budget(budget0);
    CHECK_OK(sal_idx_read(p, &t));
    CHECK(t.ndim == 4 && t.dim[0] == 65536, "read whole under the default budget");
    sal_tensor_free(&t);
    remove(p);
}

/* ---- inputs the fuzzers found, replayed through the fuzz targets' own code ---- */

static void replay(const char *target, void (*one)(const uint8_t *, size_t)) {
    char dir[256];
    snprintf(dir, sizeof dir, "fuzz/regressions/%s", target);
    DIR *d = opendir(dir);
    if (!d) return;
    size_t budget0 = sal_memory_budget();
    sal_set_memory_budget(FUZZ_BUDGET / 2);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unsigned char *b = NULL;
        size_t len = 0;
        if (sal_read_file(p, 1 << 24, &b, &len) != SAL_OK) continue;
        one(b, len); /* aborts on a broken invariant; ASan and UBSan watch the rest */
        sal_free(b);
        n++;
    }
    closedir(d);
    sal_set_memory_budget(budget0);
    CHECK(n > 0 || strcmp(target, "onnx"), "%s: regression inputs replayed (%d)", target, n);
    printf("fuzz regressions: %d %s inputs replayed\n", n, target);
}

static void test_fuzz_regressions(void) {
    replay("onnx", fuzz_one_onnx);
    replay("npy", fuzz_one_npy);
    replay("idx", fuzz_one_idx);
    replay("mnist_json", fuzz_one_mnist_json);
    replay("png", fuzz_one_png);
    replay("fasta", fuzz_one_fasta);
}

/* ---- non-finite weights and results ---- */

static void test_nonfinite(void) {
    const float w[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, b[3] = {0, 0, 0};
    float wn[12], bn[3];
    const char *p = t_tmp("nf.onnx");
    /* NaN in a weight: refused at load, naming the weight and where */
    memcpy(wn, w, sizeof wn);
    wn[5] = NAN;
    save_free(linear(wn, b), p);
    expect_load_fail("NaN weight", p, SAL_ERR_NUMERIC, "weight 'W' has a non-finite value (nan) at flat index 5", p);
    /* Inf in a bias */
    memcpy(bn, b, sizeof bn);
    bn[2] = -INFINITY;
    save_free(linear(w, bn), p);
    expect_load_fail("Inf bias", p, SAL_ERR_NUMERIC, "weight 'b' has a non-finite value (-inf) at flat index 2", NULL);

    /* an infinite bound of Clip is a constant, not a weight: fine */
    sal_model *g = NULL;
    sal_tensor hi = {0};
    CHECK_OK(sal_graph_create(NULL, &g));
    CHECK_OK(sal_tensor_alloc(&hi, SAL_F32, 0, NULL));
    sal_f32(&hi)[0] = INFINITY;
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}));
    CHECK_OK(sal_graph_add_const(g, "hi", &hi));
    CHECK_OK(sal_graph_add_node(g, "Clip", "clip", 3, (const char *[]){"x", "", "hi"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    save_free(g, p);
    sal_model *m = NULL;
    CHECK_OK(sal_model_load(p, &m));
    sal_model_free(m);

    /* finite weights whose result overflows: the forward pass names the node where Inf appeared,
     * explain refuses, and the CLI writes nothing */
    memcpy(wn, w, sizeof wn);
    wn[0] = 3e38f;
    save_free(linear(wn, b), p);
    CHECK_OK(sal_model_load(p, &m));
    if (!m) return;
    sal_tensor x = {0};
    CHECK_OK(sal_tensor_alloc(&x, SAL_F32, 2, (int64_t[]){2, 4}));
    for (int i = 0; i < 8; i++) sal_f32(&x)[i] = 10;
    sal_session *s = NULL;
    const sal_tensor *y;
    CHECK_OK(sal_session_new(m, &s));
    CHECK_FAILS(sal_forward(s, 1, &x, &y), SAL_ERR_NUMERIC, "came from node 'fc' (Gemm), in 'logits' at flat index 0");
    CHECK(sal_session_value(s, "logits") != NULL, "values stay readable after a non-finite output");
    sal_explanation *e = NULL;
    sal_explain_opts o = {.method = "gradient"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_NUMERIC, "node 'fc'");
    CHECK(e == NULL, "no explanation of non-finite outputs");
    const char *xp = t_tmp("x10.npy"), *outp = t_tmp("nf_out.npy");
    CHECK_OK(sal_npy_write(xp, &x));
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(m);
    if (g_cli) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "%s explain %s --input %s --method gradient --out %s 2>/dev/null", g_cli, p, xp, outp);
        CHECK(WEXITSTATUS(system(cmd)) == 1 && access(outp, F_OK) != 0, "explain of an overflowing model: exit 1, no file");
        snprintf(cmd, sizeof cmd, "%s run %s --input %s --out %s 2>/dev/null", g_cli, p, xp, outp);
        CHECK(WEXITSTATUS(system(cmd)) == 1 && access(outp, F_OK) != 0, "run of an overflowing model: exit 1, no file");
    }
    remove(p);
    remove(xp);
}

/* ---- the memory budget ---- */

static void test_budget(void) {
    size_t budget0 = sal_memory_budget(), use0 = sal_memory_in_use();
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    CHECK(sal_memory_default_budget() == (size_t)((uint64_t)pages * (uint64_t)psz / 4 * 3),
          "default budget is 3/4 of physical memory");
    sal_set_memory_budget(12345);
    CHECK(sal_memory_budget() == 12345, "budget set");
    sal_set_memory_budget(0);
    CHECK(sal_memory_budget() == sal_memory_default_budget(), "0 restores the default");

    /* a tensor over the budget: refused with the bytes it needs, before anything is allocated */
    sal_set_memory_budget(use0 + (1 << 20));
    size_t peak0 = sal_memory_peak();
    sal_tensor t = {0};
    CHECK_FAILS(sal_tensor_alloc(&t, SAL_F32, 2, (int64_t[]){1024, 1024}), SAL_ERR_NOMEM,
                "a tensor of shape (1024,1024) needs 4194304 bytes (4.0 MiB)");
    CHECK(strstr(sal_last_error(), "--max-memory"), "message says how to raise it: %s", sal_last_error());
    CHECK(sal_memory_peak() == peak0 && t.data == NULL, "nothing allocated for the refused tensor");
    CHECK_OK(sal_tensor_alloc(&t, SAL_F32, 2, (int64_t[]){256, 256}));
    CHECK(sal_memory_in_use() >= use0 + 256 * 256 * 4, "a tensor's bytes count (%zu in use)", sal_memory_in_use());
    sal_tensor_free(&t);
    CHECK(sal_memory_in_use() == use0, "freed bytes no longer count");
    /* raw allocations obey it too */
    void *q = sal_malloc(2 << 20);
    CHECK(q == NULL, "sal_malloc over the budget fails");
    sal_free(q);
    /* which fails without a message: the next out-of-memory failure names the budget, once */
    CHECK_FAILS(sal_fail(SAL_ERR_NOMEM, "node 'n' (Conv): out of memory"), SAL_ERR_NOMEM,
                "out of memory (2.0 MiB more did not fit the memory budget of ");
    CHECK(strstr(sal_last_error(), "--max-memory"), "the budget's note says how to raise it: %s", sal_last_error());
    CHECK(sal_fail(SAL_ERR_NOMEM, "again") == SAL_ERR_NOMEM && !strcmp(sal_last_error(), "again"),
          "the refusal named twice: %s", sal_last_error());
    sal_set_memory_budget(budget0);

    /* a model file too large to load under the budget: refused before it is read */
    const char *p = t_tmp("big.onnx");
    save_free(wide_linear(), p);
    sal_set_memory_budget(sal_memory_in_use() + (1 << 20));
    peak0 = sal_memory_peak();
    sal_model *m = NULL;
    CHECK_FAILS(sal_model_load(p, &m), SAL_ERR_NOMEM, "loading this model");
    CHECK(strstr(sal_last_error(), p) && strstr(sal_last_error(), "needs"), "message names the file and the need: %s",
          sal_last_error());
    CHECK(sal_memory_peak() == peak0, "nothing read for the refused model");
    /* the buffer entry point checks too */
    unsigned char *bytes = malloc(4 << 20);
    CHECK_FAILS(sal_onnx_load_buffer(bytes, 4 << 20, "buf.onnx", &m), SAL_ERR_NOMEM, "buf.onnx: loading this model");
    free(bytes);
    sal_set_memory_budget(budget0);

    /* a batch too large to explain under the budget: refused with the bytes needed, nothing leaks,
     * and the same call works once the budget allows it */
    save_free(tiny_cnn(2), p);
    CHECK_OK(sal_model_load(p, &m));
    sal_tensor x = batch(20000, 3, (int64_t[]){1, 6, 6}, 5);
    size_t use1 = sal_memory_in_use();
    sal_set_memory_budget(use1 + (4 << 20));
    sal_explanation *e = NULL;
    sal_explain_opts o = {.method = "gradient"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_NOMEM, "needs");
    CHECK(sal_memory_in_use() == use1, "a refused explain frees what it took (%zd bytes astray)",
          (ssize_t)(sal_memory_in_use() - use1));
    sal_set_memory_budget(budget0);
    CHECK_OK(sal_explain(m, &x, &o, &e));
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_model_free(m);
    CHECK(sal_memory_in_use() == use0, "everything returned (%zd bytes astray)", (ssize_t)(sal_memory_in_use() - use0));
    remove(p);
}

/* ---- allocation failures along whole runs ---- */

/* Fails allocation k = 1, 2, ... of load + explain until the run gets through; every failing run
 * must return an error with a message and give back every byte it took. */
static void alloc_sweep(const char *model, const sal_tensor *x, const char *method, int nparams, const char *const *params,
                        bool strict) {
    sal_explain_opts o = {.method = method, .nparams = nparams, .params = params, .data = x};
    /* a clean run first: lazily made state (BLAS, OpenMP) is not a leak */
    sal_model *m = NULL;
    sal_explanation *e = NULL;
    sal_status st = sal_model_load(model, &m);
    if (st == SAL_OK) st = sal_explain(m, x, &o, &e);
    sal_explanation_free(e);
    sal_model_free(m);
    if (st != SAL_OK) {
        CHECK(!strict, "%s: clean run failed: %s", method, sal_last_error());
        if (!strict) printf("alloc sweep: %s skipped (%s)\n", method, sal_last_error());
        return;
    }
    size_t base = sal_memory_in_use();
    long k, nomem = 0, other = 0, leaks = 0, silent = 0;
    for (k = 1; k < 1000000; k++) {
        m = NULL;
        e = NULL;
        sal_alloc_fail_after(k);
        st = sal_model_load(model, &m);
        if (st == SAL_OK) st = sal_explain(m, x, &o, &e);
        sal_alloc_fail_after(0);
        bool msg = *sal_last_error() != '\0';
        char err[256];
        snprintf(err, sizeof err, "%s", sal_last_error());
        sal_explanation_free(e);
        sal_model_free(m);
        if (sal_memory_in_use() != base && leaks++ < 3)
            fprintf(stderr, "FAIL %s: allocation %ld failing leaks %zd bytes (%s)\n", method, k,
                    (ssize_t)(sal_memory_in_use() - base), err);
        base = sal_memory_in_use();
        if (st == SAL_OK) break;
        if (!msg) silent++;
        if (st == SAL_ERR_NOMEM) nomem++;
        else if (other++ < 3)
            fprintf(stderr, "FAIL %s: allocation %ld failing gives %s: %s\n", method, k, sal_status_string(st), err);
    }
    printf("alloc sweep: %-22s %6ld allocations, each failure an error (%ld out of memory, %ld other)\n", method, k - 1,
           nomem, other);
    CHECK(st == SAL_OK && k > 20, "%s: the sweep reached a full run (%ld allocations)", method, k - 1);
    CHECK(leaks == 0, "%s: %ld failing allocations leaked", method, leaks);
    CHECK(other == 0 && silent == 0, "%s: %ld failures misreported, %ld without a message", method, other, silent);
}

static void test_alloc_failures(void) {
    const char *p = t_tmp("alloc.onnx");
    save_free(tiny_cnn(3), p);
    sal_tensor x = batch(2, 3, (int64_t[]){1, 6, 6}, 6);
    alloc_sweep(p, &x, "gradient", 0, NULL, true);
    const char *ig[] = {"steps=4"};
    alloc_sweep(p, &x, "integrated_gradients", 1, ig, true);
    /* and every other method of the table with its defaults (those needing more than a model,
     * an input and reference data are skipped, with a note) */
    for (int i = 0; i < sal_method_count(); i++) {
        const char *name = sal_method_name(i);
        if (strcmp(name, "gradient") && strcmp(name, "integrated_gradients")) alloc_sweep(p, &x, name, 0, NULL, false);
    }
    sal_tensor_free(&x);
    remove(p);
}

/* ---- atomic writes and signals ---- */

static int count_temps(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += strstr(de->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static void test_pending_outputs(void) {
    /* in-process: a write in progress is registered, and sal_remove_pending_outputs removes it */
    const char *dst = t_tmp("pending.bin");
    sal_outfile f;
    CHECK_OK(sal_outfile_open(&f, dst));
    fputs("partial", f.fp);
    fflush(f.fp);
    CHECK(count_temps(t_scratch()) == 1, "the temporary file exists while writing");
    sal_remove_pending_outputs();
    CHECK(count_temps(t_scratch()) == 0, "sal_remove_pending_outputs removed it");
    CHECK_FAILS(sal_outfile_commit(&f), SAL_ERR_IO, "pending.bin");
    CHECK(access(dst, F_OK) != 0, "no destination from a removed temporary file");
    /* finished writes are no longer registered: their files survive */
    CHECK_OK(sal_write_file(dst, "done", 4));
    sal_remove_pending_outputs();
    CHECK(access(dst, F_OK) == 0 && count_temps(t_scratch()) == 0, "a committed file is left alone");
    remove(dst);
}

/* Runs the CLI writing a 128 MiB NPY over an existing file and sends `sig` once the temporary
 * file has data: the destination must keep its old content (or, had the write won the race, be
 * the complete new file), and no temporary file may remain. */
static void signal_during_write(const char *model, const char *x, int sig) {
    static const char old[] = "old content";
    const char *dst = t_tmp("sig_out.npy");
    CHECK_OK(sal_write_file(dst, old, sizeof old));
    pid_t pid = fork();
    SAL_ASSERT(pid >= 0);
    if (pid == 0) {
        signal(SIGINT, SIG_DFL); /* a background shell may have us ignore SIGINT */
        signal(SIGTERM, SIG_DFL);
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 1);
        dup2(nul, 2);
        execl(g_cli, g_cli, "run", model, "--input", x, "--out", dst, (char *)NULL);
        _exit(127);
    }
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", dst, (long)pid);
    bool sent = false;
    int status = 0;
    long partial = 0;
    for (double t0 = sal_now(); sal_now() - t0 < 120;) {
        struct stat sb;
        if (stat(tmpname, &sb) == 0 && sb.st_size > (1 << 20)) {
            partial = (long)sb.st_size;
            kill(pid, sig);
            sent = true;
            break;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) break;
        usleep(200);
    }
    if (sent || !WIFEXITED(status)) waitpid(pid, &status, 0);
    CHECK(sent, "signal %d: caught the write in progress", sig);
    CHECK(!sent || (WIFSIGNALED(status) && WTERMSIG(status) == sig), "signal %d: the CLI died of it (status %#x)", sig,
          status);
    unsigned char *got = NULL;
    size_t n = 0;
    CHECK_OK(sal_read_file(dst, (size_t)1 << 30, &got, &n));
    bool kept = n == sizeof old && !memcmp(got, old, n);
    sal_free(got);
    sal_tensor t = {0};
    bool complete = !kept && sal_npy_read(dst, &t) == SAL_OK && t.ndim == 2 && t.dim[1] == (int64_t)1 << 25;
    sal_tensor_free(&t);
    CHECK(kept || complete, "signal %d at %ld bytes: the destination is the old file or the whole new one", sig, partial);
    CHECK(count_temps(t_scratch()) == 0, "signal %d: no temporary file left", sig);
    remove(dst);
}

static void test_signals(void) {
    if (!g_cli) {
        printf("signals: no CLI at $SAL_BUILD/saliency; skipped\n");
        CHECK(0, "the CLI is needed for the signal test (set SAL_BUILD)");
        return;
    }
    /* x (1,1) -> Expand to (1, 2^25): a 128 MiB output from a tiny model and input */
    sal_model *g = NULL;
    sal_tensor shape = {0};
    CHECK_OK(sal_graph_create(NULL, &g));
    CHECK_OK(sal_tensor_alloc(&shape, SAL_I64, 1, (int64_t[]){2}));
    ((int64_t *)shape.data)[0] = 1;
    ((int64_t *)shape.data)[1] = (int64_t)1 << 25;
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){1, 1}));
    CHECK_OK(sal_graph_add_const(g, "shape", &shape));
    CHECK_OK(sal_graph_add_node(g, "Expand", "wide", 2, (const char *[]){"x", "shape"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    const char *model = t_tmp("wide.onnx"), *x = t_tmp("x11.npy");
    save_free(g, model);
    sal_tensor xt = batch(1, 1, (int64_t[]){1}, 7);
    CHECK_OK(sal_npy_write(x, &xt));
    sal_tensor_free(&xt);
    signal_during_write(model, x, SIGINT);
    signal_during_write(model, x, SIGTERM);
    remove(model);
    remove(x);
}

/* ---- the CLI's --max-memory ---- */

static int cli(const char *args, char *err, size_t n) {
    char cmd[2048];
    const char *ef = t_tmp("cli_err.txt");
    snprintf(cmd, sizeof cmd, "%s %s > /dev/null 2> %s", g_cli, args, ef);
    int rc = system(cmd);
    FILE *f = fopen(ef, "r");
    size_t k = f ? fread(err, 1, n - 1, f) : 0;
    err[k] = '\0';
    if (f) fclose(f);
    remove(ef);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_budget(void) {
    if (!g_cli) return;
    const char *p = t_tmp("cli.onnx");
    save_free(wide_linear(), p);
    char args[1024], err[4096];
    snprintf(args, sizeof args, "--max-memory 1M info %s", p);
    CHECK(cli(args, err, sizeof err) == 1 && strstr(err, "loading this model") && strstr(err, "needs"),
          "--max-memory before the command refuses the model: %s", err);
    snprintf(args, sizeof args, "info %s --max-memory=1.5M", p);
    CHECK(cli(args, err, sizeof err) == 1 && strstr(err, "needs"), "--max-memory= after the command: %s", err);
    snprintf(args, sizeof args, "info %s --max-memory 1G", p);
    CHECK(cli(args, err, sizeof err) == 0, "--max-memory 1G allows it: %s", err);
    snprintf(args, sizeof args, "--max-memory banana info %s", p);
    CHECK(cli(args, err, sizeof err) == 1 && strstr(err, "'banana' is not a size"), "a bad size is refused: %s", err);
    CHECK(cli("info --max-memory", err, sizeof err) == 1 && strstr(err, "needs a value"), "a missing size: %s", err);
    CHECK(cli("--help", err, sizeof err) == 0, "--help still works");
    remove(p);
}

int main(void) {
    t_scratch_make("sal_robust");
    static char cli_path[1024];
    const char *b = getenv("SAL_BUILD");
    snprintf(cli_path, sizeof cli_path, "%s/saliency", b && *b ? b : "build");
    g_cli = access(cli_path, X_OK) == 0 ? cli_path : NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    size_t use0 = sal_memory_in_use();
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {{"hostile shapes", test_hostile_shapes}, {"hostile sizes", test_hostile_sizes},
                 {"hostile graphs", test_hostile_graphs}, {"deep nesting", test_deep_nesting},
                 {"deep graph", test_deep_graph},         {"gzip bomb", test_gzip_bomb},
                 {"fuzz regressions", test_fuzz_regressions},
                 {"non-finite", test_nonfinite},          {"budget", test_budget},
                 {"allocation failures", test_alloc_failures}, {"pending outputs", test_pending_outputs},
                 {"signals", test_signals},               {"CLI budget", test_cli_budget}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        double t0 = sal_now();
        tests[i].fn();
        printf("-- %s: %.1fs\n", tests[i].name, sal_now() - t0);
    }
    CHECK(sal_memory_in_use() == use0, "the library holds nothing at the end (%zd bytes)",
          (ssize_t)(sal_memory_in_use() - use0));
    t_scratch_remove();
    return t_done("test_robustness");
}
