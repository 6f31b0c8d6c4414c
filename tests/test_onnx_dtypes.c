/* Element types at the ONNX boundary: float16 and bfloat16 initializers and Constant values widened
 * to float32 (every class of value: normal, subnormal, infinite, NaN, signed zero; raw_data and
 * int32_data storage), BOOL initializers, inputs and outputs, a save/load round trip of a model
 * with bool constants and outputs, and the ONNX node tests of Debian's libonnx-testdata whose models
 * declare an opset below 9 (which the loader refuses) for ops unchanged since then, run at opset 9;
 * NPY files of bool.
 * Expected values come from numpy (float16 and bfloat16 bit patterns) and the ONNX test data. */
#include "testutil.h"
#include "io/io.h"
#include "io/onnx.h"
#include "onnx.pb-c.h"
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- building ModelProto structs; every allocation is freed by scratch_reset ---- */

static void **g_mem;
static size_t g_nmem, g_capmem;

static void *A(size_t n) {
    if (g_nmem == g_capmem) {
        g_capmem = g_capmem ? 2 * g_capmem : 256;
        g_mem = realloc(g_mem, g_capmem * sizeof *g_mem);
        SAL_ASSERT(g_mem);
    }
    void *p = calloc(1, n ? n : 1);
    SAL_ASSERT(p);
    return g_mem[g_nmem++] = p;
}

static void scratch_reset(void) {
    for (size_t i = 0; i < g_nmem; i++) free(g_mem[i]);
    free(g_mem);
    g_mem = NULL;
    g_nmem = g_capmem = 0;
}

/* A 1-D tensor of n 16-bit (FLOAT16, BFLOAT16) or BOOL values, raw or in int32_data. */
static Onnx__TensorProto *tensor_bits(const char *name, int dt, int n, const uint16_t *v, bool raw) {
    Onnx__TensorProto *t = A(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->n_dims = 1;
    t->dims = A(sizeof(int64_t));
    t->dims[0] = n;
    t->has_data_type = 1;
    t->data_type = dt;
    size_t es = dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL ? 1 : 2;
    if (raw) {
        t->has_raw_data = 1;
        t->raw_data.len = es * (size_t)n;
        t->raw_data.data = A(t->raw_data.len);
        for (int i = 0; i < n; i++) { /* little-endian, whatever the host */
            t->raw_data.data[es * (size_t)i] = (uint8_t)(v[i] & 0xff);
            if (es == 2) t->raw_data.data[2 * i + 1] = (uint8_t)(v[i] >> 8);
        }
    } else {
        t->n_int32_data = (size_t)n;
        t->int32_data = A(sizeof(int32_t) * (size_t)n);
        for (int i = 0; i < n; i++) t->int32_data[i] = v[i];
    }
    return t;
}

static Onnx__ValueInfoProto *vinfo(const char *name, int et, int ndim, const int64_t *dims) {
    Onnx__ValueInfoProto *v = A(sizeof *v);
    Onnx__TypeProto *tp = A(sizeof *tp);
    Onnx__TypeProto__Tensor *tt = A(sizeof *tt);
    Onnx__TensorShapeProto *sh = A(sizeof *sh);
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    v->name = (char *)name;
    v->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = et;
    tt->shape = sh;
    sh->n_dim = (size_t)ndim;
    sh->dim = A(sizeof *sh->dim * (size_t)(ndim + 1));
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = A(sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d->dim_value = dims[i];
        sh->dim[i] = d;
    }
    return v;
}

static Onnx__NodeProto *node(const char *op, int nin, const char *const *in, const char *out) {
    Onnx__NodeProto *n = A(sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->n_input = (size_t)nin;
    n->input = A(sizeof(char *) * (size_t)(nin + 1));
    for (int i = 0; i < nin; i++) n->input[i] = (char *)in[i];
    n->n_output = 1;
    n->output = A(sizeof(char *));
    n->output[0] = (char *)out;
    return n;
}

typedef struct {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto os;
    Onnx__OperatorSetIdProto *osl[1];
} model;

static model *new_model(void) {
    model *md = A(sizeof *md);
    onnx__model_proto__init(&md->m);
    onnx__graph_proto__init(&md->g);
    onnx__operator_set_id_proto__init(&md->os);
    md->m.has_ir_version = 1;
    md->m.ir_version = 8;
    md->os.has_version = 1;
    md->os.version = 13;
    md->osl[0] = &md->os;
    md->m.n_opset_import = 1;
    md->m.opset_import = md->osl;
    md->m.graph = &md->g;
    md->g.name = "dtypes";
    md->g.initializer = A(16 * sizeof(void *));
    md->g.input = A(16 * sizeof(void *));
    md->g.output = A(16 * sizeof(void *));
    md->g.node = A(16 * sizeof(void *));
    return md;
}

static sal_status load(const model *md, sal_model **out) {
    size_t len = onnx__model_proto__get_packed_size(&md->m);
    uint8_t *buf = A(len + 1);
    onnx__model_proto__pack(&md->m, buf);
    return sal_onnx_load_buffer(buf, len, "dtypes.onnx", out);
}

static const sal_tensor *const_of(const sal_model *m, const char *name) {
    int v = sal_graph_find(m, name);
    return v >= 0 && m->val[v].kind == SAL_VAL_CONST ? &m->val[v].t : NULL;
}

/* Same float bits, so that NaN, -0 and subnormals compare exactly. */
static bool same_bits(const sal_tensor *t, int n, const float *want) {
    if (!t || t->dtype != SAL_F32 || sal_tensor_numel(t) != n) return false;
    for (int i = 0; i < n; i++) {
        uint32_t a, b;
        memcpy(&a, &sal_f32(t)[i], 4);
        memcpy(&b, &want[i], 4);
        if (a != b && !(isnan(sal_f32(t)[i]) && isnan(want[i]))) return false;
    }
    return true;
}

/* ---- float16, bfloat16 and bool initializers and Constant values ---- */

static void test_widening(void) {
    /* bit patterns and their values as numpy's float16 / the upper half of a float32 give them */
    /* (NaN is left to test_nan: the loader refuses NaN constants) */
    static const uint16_t h[] = {0x3C00, 0xC000, 0x0001, 0x03FF, 0x7BFF, 0x7C00, 0xFC00, 0x8000, 0x3555};
    static const float hv[] = {1.0f, -2.0f, 5.960464477539063e-08f, 6.097555160522461e-05f, 65504.0f,
                               INFINITY, -INFINITY, -0.0f, 0.333251953125f};
    static const uint16_t bf[] = {0x3F80, 0xC049, 0x7F80, 0x0001, 0x8000};
    static const float bv[] = {1.0f, -3.140625f, INFINITY, 9.183549615799121e-41f, -0.0f};
    static const uint16_t bo[] = {1, 0, 5, 0};
    enum { NH = 9, NB = 5 };
    model *md = new_model();
    Onnx__GraphProto *g = &md->g;
    const char *names[] = {"h_raw", "h_int", "bf_raw", "bf_int", "b_raw", "b_int", "c_h", "y"};
    g->initializer[g->n_initializer++] = tensor_bits("h_raw", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, NH, h, true);
    g->initializer[g->n_initializer++] = tensor_bits("h_int", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, NH, h, false);
    g->initializer[g->n_initializer++] = tensor_bits("bf_raw", ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16, NB, bf, true);
    g->initializer[g->n_initializer++] = tensor_bits("bf_int", ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16, NB, bf, false);
    g->initializer[g->n_initializer++] = tensor_bits("b_raw", ONNX__TENSOR_PROTO__DATA_TYPE__BOOL, 4, bo, true);
    g->initializer[g->n_initializer++] = tensor_bits("b_int", ONNX__TENSOR_PROTO__DATA_TYPE__BOOL, 4, bo, false);
    /* a Constant node holding float16, and a computation reading it: y = x * c_h */
    Onnx__NodeProto *c = node("Constant", 0, NULL, "c_h");
    Onnx__AttributeProto *a = A(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = "value";
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    a->t = tensor_bits(NULL, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, 2, (uint16_t[]){0x3555, 0xC000}, true);
    c->n_attribute = 1;
    c->attribute = A(sizeof(void *));
    c->attribute[0] = a;
    g->node[g->n_node++] = c;
    g->node[g->n_node++] = node("Mul", 2, (const char *[]){"x", "c_h"}, "y");
    g->input[g->n_input++] = vinfo("x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, (int64_t[]){2});
    for (int i = 0; i < 8; i++)
        g->output[g->n_output++] =
            vinfo(names[i], i == 4 || i == 5 ? ONNX__TENSOR_PROTO__DATA_TYPE__BOOL : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                  1, (int64_t[]){i < 2 ? NH : i < 4 ? NB : i < 6 ? 4 : 2});
    sal_model *m = NULL;
    CHECK_OK(load(md, &m));
    if (m) {
        CHECK(same_bits(const_of(m, "h_raw"), NH, hv) && same_bits(const_of(m, "h_int"), NH, hv),
              "float16 initializers (raw_data and int32_data) widen exactly, subnormals, infinities, NaN and -0 included");
        CHECK(same_bits(const_of(m, "bf_raw"), NB, bv) && same_bits(const_of(m, "bf_int"), NB, bv),
              "bfloat16 initializers widen exactly");
        const sal_tensor *b1 = const_of(m, "b_raw"), *b2 = const_of(m, "b_int");
        CHECK(b1 && b2 && b1->dtype == SAL_BOOL && b2->dtype == SAL_BOOL && !memcmp(b1->data, (uint8_t[]){1, 0, 1, 0}, 4) &&
                  !memcmp(b2->data, (uint8_t[]){1, 0, 1, 0}, 4),
              "BOOL initializers (any nonzero is true)");
        CHECK(same_bits(const_of(m, "c_h"), 2, (float[]){0.333251953125f, -2.0f}), "a float16 Constant widens too");
        sal_session *s = NULL;
        CHECK_OK(sal_session_new(m, &s));
        sal_tensor x = {0};
        SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 1, (int64_t[]){2}) == SAL_OK);
        sal_f32(&x)[0] = 3;
        sal_f32(&x)[1] = 0.5f;
        CHECK_OK(sal_exec_forward(s, &x));
        const sal_tensor *y = &s->act[sal_graph_find(m, "y")];
        CHECK(y->dtype == SAL_F32 && sal_f32(y)[0] == 3 * 0.333251953125f && sal_f32(y)[1] == -1.0f,
              "float16 constants compute in float32");
        sal_tensor_free(&x);
        sal_session_free(s);
        sal_model_free(m);
    }

    /* refused: a BOOL tensor's raw data of the wrong length; types still unsupported */
    g->initializer[4]->raw_data.len = 3;
    CHECK_FAILS(load(md, &m), SAL_ERR_FORMAT, "initializer 'b_raw' has 3 bytes of data, but its shape (4) of BOOL needs 4");
    g->initializer[4]->raw_data.len = 4;
    g->initializer[0]->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__UINT16;
    CHECK_FAILS(load(md, &m), SAL_ERR_UNSUPPORTED, "initializer 'h_raw' has data type UINT16");
    CHECK(strstr(sal_last_error(), "FLOAT16, BFLOAT16") != NULL, "the message lists what is supported: %s", sal_last_error());
    scratch_reset();
}

/* NaN in float16 and bfloat16, through a tensor file (sal_onnx_read_tensor, as the node tests'
 * data): a quiet NaN stays NaN, with its sign. */
static void test_nan(void) {
    char dir[] = "/tmp/sal_dtypes_XXXXXX", path[64];
    SAL_ASSERT(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.pb", dir);
    const int dts[] = {ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16};
    const uint16_t bits[][2] = {{0x7E00, 0xFE01}, {0x7FC0, 0xFFC1}};
    for (int k = 0; k < 2; k++) {
        Onnx__TensorProto *t = tensor_bits("t", dts[k], 2, bits[k], k == 0);
        size_t n = onnx__tensor_proto__get_packed_size(t);
        uint8_t *buf = A(n + 1);
        onnx__tensor_proto__pack(t, buf);
        CHECK_OK(sal_write_file(path, buf, n));
        sal_tensor r = {0};
        CHECK_OK(sal_onnx_read_tensor(path, &r));
        CHECK(r.dtype == SAL_F32 && sal_tensor_numel(&r) == 2 && isnan(sal_f32(&r)[0]) && !signbit(sal_f32(&r)[0]) &&
                  isnan(sal_f32(&r)[1]) && signbit(sal_f32(&r)[1]),
              "%s NaN widens to NaN", k ? "bfloat16" : "float16");
        sal_tensor_free(&r);
    }
    remove(path);
    rmdir(dir);
    scratch_reset();
}

/* A graph input of type BOOL is fed bool tensors: y = Where(mask, x, 0), and Not(mask) as a bool output. */
static void test_bool_input(void) {
    model *md = new_model();
    Onnx__GraphProto *g = &md->g;
    g->initializer[g->n_initializer++] = tensor_bits("zero", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, 1, (uint16_t[]){0}, true);
    g->node[g->n_node++] = node("Where", 3, (const char *[]){"mask", "x", "zero"}, "y");
    g->node[g->n_node++] = node("Not", 1, (const char *[]){"mask"}, "nm");
    g->input[g->n_input++] = vinfo("mask", ONNX__TENSOR_PROTO__DATA_TYPE__BOOL, 1, (int64_t[]){3});
    g->input[g->n_input++] = vinfo("x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, (int64_t[]){3});
    g->output[g->n_output++] = vinfo("y", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, (int64_t[]){3});
    g->output[g->n_output++] = vinfo("nm", ONNX__TENSOR_PROTO__DATA_TYPE__BOOL, 1, (int64_t[]){3});
    sal_model *m = NULL;
    CHECK_OK(load(md, &m));
    scratch_reset();
    if (!m) return;
    CHECK(m->val[m->input[0]].t.dtype == SAL_BOOL, "the input is declared bool");
    sal_session *s = NULL;
    CHECK_OK(sal_session_new(m, &s));
    sal_tensor in[2] = {{0}, {0}};
    SAL_ASSERT(sal_tensor_alloc(&in[0], SAL_BOOL, 1, (int64_t[]){3}) == SAL_OK);
    SAL_ASSERT(sal_tensor_alloc(&in[1], SAL_F32, 1, (int64_t[]){3}) == SAL_OK);
    memcpy(in[0].data, (uint8_t[]){1, 0, 1}, 3);
    memcpy(in[1].data, (float[]){4, 5, 6}, 3 * sizeof(float));
    CHECK_OK(sal_exec_forward(s, in));
    const sal_tensor *y = &s->act[sal_graph_find(m, "y")], *nm = &s->act[sal_graph_find(m, "nm")];
    CHECK(!memcmp(y->data, (float[]){4, 0, 6}, 3 * sizeof(float)) && nm->dtype == SAL_BOOL &&
              !memcmp(nm->data, (uint8_t[]){0, 1, 0}, 3),
          "Where and Not on a bool input");
    /* the input gradient reaches x through Where, and nothing breaks at the bool input */
    sal_tensor seed = {0};
    SAL_ASSERT(sal_tensor_alloc(&seed, SAL_F32, 1, (int64_t[]){3}) == SAL_OK);
    memcpy(seed.data, (float[]){1, 2, 3}, 3 * sizeof(float));
    int out = sal_graph_find(m, "y");
    CHECK_OK(sal_exec_backward(s, 1, &out, &seed, NULL));
    const sal_tensor *gx = &s->grad[m->input[1]];
    CHECK(gx->data && !memcmp(gx->data, (float[]){1, 0, 3}, 3 * sizeof(float)), "the gradient follows the mask");
    /* a float fed where bool is declared */
    sal_tensor bad[2] = {in[1], in[1]};
    CHECK_FAILS(sal_exec_forward(s, bad), SAL_ERR_SHAPE, "input 'mask' expects bool data, got float32");
    for (int i = 0; i < 2; i++) sal_tensor_free(&in[i]);
    sal_tensor_free(&seed);
    sal_session_free(s);
    sal_model_free(m);
}

/* Saving keeps BOOL constants and outputs; loading the file gives the same model and results. */
static void test_bool_round_trip(void) {
    char dir[] = "/tmp/sal_dtypes_XXXXXX", path[64];
    SAL_ASSERT(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.onnx", dir);
    sal_model *g = NULL, *m2 = NULL;
    SAL_ASSERT(sal_graph_create("<bool>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 3}) == SAL_OK);
    sal_tensor c = {0}, th = {0};
    SAL_ASSERT(sal_tensor_alloc(&c, SAL_BOOL, 1, (int64_t[]){3}) == SAL_OK);
    memcpy(c.data, (uint8_t[]){1, 0, 1}, 3);
    SAL_ASSERT(sal_tensor_alloc(&th, SAL_F32, 0, NULL) == SAL_OK);
    sal_f32(&th)[0] = 0.5f;
    SAL_ASSERT(sal_graph_add_const(g, "keep", &c) == SAL_OK);
    SAL_ASSERT(sal_graph_add_const(g, "th", &th) == SAL_OK);
    t_node(g, "Greater", "gt", 2, (const char *[]){"x", "th"}, "big", 0, NULL);
    t_node(g, "And", "and", 2, (const char *[]){"big", "keep"}, "sel", 0, NULL);
    t_node(g, "Where", "w", 3, (const char *[]){"sel", "x", "th"}, "y", 0, NULL);
    SAL_ASSERT(sal_graph_add_output(g, "y") == SAL_OK);
    t_finish(g, "sel");
    CHECK_OK(sal_model_save(g, path));
    CHECK_OK(sal_model_load(path, &m2));
    if (m2) {
        const sal_tensor *k2 = const_of(m2, "keep");
        CHECK(k2 && k2->dtype == SAL_BOOL && !memcmp(k2->data, (uint8_t[]){1, 0, 1}, 3), "the BOOL constant survives");
        sal_session *s1 = NULL, *s2 = NULL;
        CHECK_OK(sal_session_new(g, &s1));
        CHECK_OK(sal_session_new(m2, &s2));
        sal_tensor x = {0};
        SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 2, (int64_t[]){2, 3}) == SAL_OK);
        memcpy(x.data, (float[]){1, 2, 0, -1, 0.7f, 3}, 6 * sizeof(float));
        CHECK_OK(sal_exec_forward(s1, &x));
        CHECK_OK(sal_exec_forward(s2, &x));
        const sal_tensor *a = &s2->act[sal_graph_find(m2, "sel")], *y = &s2->act[sal_graph_find(m2, "y")];
        CHECK(a->dtype == SAL_BOOL && !memcmp(a->data, (uint8_t[]){1, 0, 0, 0, 0, 1}, 6) &&
                  !memcmp(y->data, (float[]){1, 0.5f, 0.5f, 0.5f, 0.5f, 3}, 6 * sizeof(float)),
              "the reloaded model computes the same bool and float outputs");
        CHECK(!memcmp(s1->act[sal_graph_find(g, "sel")].data, a->data, 6), "as the original does");
        sal_tensor_free(&x);
        sal_session_free(s1);
        sal_session_free(s2);
        sal_model_free(m2);
    }
    sal_model_free(g);
    remove(path);
    rmdir(dir);
}

/* NPY: bool tensors are written as '|b1' (numpy reads them back); reading them is refused. */
static void test_npy_bool(void) {
    char dir[] = "/tmp/sal_dtypes_XXXXXX", path[64], cmd[512];
    SAL_ASSERT(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/b.npy", dir);
    sal_tensor b = {0}, r = {0};
    SAL_ASSERT(sal_tensor_alloc(&b, SAL_BOOL, 2, (int64_t[]){2, 3}) == SAL_OK);
    memcpy(b.data, (uint8_t[]){1, 0, 0, 1, 1, 0}, 6);
    CHECK_OK(sal_npy_write(path, &b));
    const char *py = getenv("SAL_PY") ? getenv("SAL_PY") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd,
             "%s -c \"import numpy as np; a = np.load('%s'); "
             "assert a.dtype == bool and a.tolist() == [[True, False, False], [True, True, False]], a\"",
             py, path);
    int rc = system(cmd);
    CHECK(rc == 0, "numpy reads our bool file with its values (exit %d)", rc);
    CHECK_FAILS(sal_npy_read(path, &r), SAL_ERR_UNSUPPORTED, "'|b1'");
    sal_tensor_free(&b);
    remove(path);
    rmdir(dir);
}

/* ---- node tests of opsets below 9 ---- */

#define NODE_DIR "/usr/share/libonnx-testdata/data/node"

static bool is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static double elem(const sal_tensor *t, int64_t i) {
    return t->dtype == SAL_I64 ? (double)((int64_t *)t->data)[i]
           : t->dtype == SAL_BOOL ? ((uint8_t *)t->data)[i]
                                   : sal_f32(t)[i];
}

/* Runs every data set of one node test with its opset raised to 9; false on any mismatch. */
static bool run_at_opset9(const char *test) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s/model.onnx", NODE_DIR, test);
    unsigned char *data;
    size_t len;
    if (sal_read_file(p, SAL_ONNX_MAX_BYTES, &data, &len) != SAL_OK) return false;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, data);
    sal_free(data);
    if (!mp) return false;
    bool raised = false;
    for (size_t i = 0; i < mp->n_opset_import; i++)
        if (!mp->opset_import[i]->domain || !*mp->opset_import[i]->domain) {
            raised = mp->opset_import[i]->version < 9;
            mp->opset_import[i]->version = 9;
        }
    size_t n = onnx__model_proto__get_packed_size(mp);
    uint8_t *buf = malloc(n + 1);
    onnx__model_proto__pack(mp, buf);
    onnx__model_proto__free_unpacked(mp, NULL);
    sal_model *m = NULL;
    sal_session *s = NULL;
    bool ok = raised && sal_onnx_load_buffer(buf, n, p, &m) == SAL_OK && sal_session_new(m, &s) == SAL_OK;
    free(buf);
    if (!ok) fprintf(stderr, "%s: %s\n", test, raised ? sal_last_error() : "its opset is not below 9");
    int sets = 0;
    for (; ok; sets++) {
        sal_tensor in[4] = {{0}}, want = {0};
        snprintf(p, sizeof p, "%s/%s/test_data_set_%d/input_0.pb", NODE_DIR, test, sets);
        if (!is_file(p)) break;
        int nin = sal_model_num_inputs(m);
        for (int i = 0; ok && i < nin && i < 4; i++) {
            snprintf(p, sizeof p, "%s/%s/test_data_set_%d/input_%d.pb", NODE_DIR, test, sets, i);
            ok = sal_onnx_read_tensor(p, &in[i]) == SAL_OK;
        }
        ok = ok && sal_exec_forward(s, in) == SAL_OK;
        snprintf(p, sizeof p, "%s/%s/test_data_set_%d/output_0.pb", NODE_DIR, test, sets);
        ok = ok && sal_onnx_read_tensor(p, &want) == SAL_OK;
        const sal_tensor *got = ok ? &s->act[m->output[0]] : NULL;
        ok = ok && got->dtype == want.dtype && sal_tensor_same_shape(got, &want);
        for (int64_t i = 0, ne = ok ? sal_tensor_numel(&want) : 0; ok && i < ne; i++) {
            double x = elem(got, i), y = elem(&want, i);
            ok = fabs(x - y) <= 1e-5 + 1e-3 * fabs(y);
            if (!ok) fprintf(stderr, "%s: got %g at %lld, expected %g\n", test, x, (long long)i, y);
        }
        for (int i = 0; i < 4; i++) sal_tensor_free(&in[i]);
        sal_tensor_free(&want);
    }
    sal_session_free(s);
    sal_model_free(m);
    return ok && sets > 0;
}

/* These ops read the same from their opset in the test (1, 6 or 7) to 21: Elu-6, HardSigmoid-6,
 * Selu-6, Softplus-1, Not-1, And-7, Or-7 are their latest versions before opset 22. */
static void test_old_opset_node_tests(void) {
    struct stat sb;
    if (stat(NODE_DIR, &sb) != 0) {
        printf("%s not found (Debian package libonnx-testdata): old-opset node tests skipped\n", NODE_DIR);
        return;
    }
    static const char *tests[] = {
        "test_elu", "test_elu_default", "test_elu_example", "test_hardsigmoid", "test_hardsigmoid_default",
        "test_hardsigmoid_example", "test_selu", "test_selu_default", "test_selu_example", "test_softplus",
        "test_softplus_example", "test_not_2d", "test_not_3d", "test_not_4d", "test_and2d", "test_and3d", "test_and4d",
        "test_and_bcast3v1d", "test_and_bcast3v2d", "test_and_bcast4v2d", "test_and_bcast4v3d", "test_and_bcast4v4d",
        "test_or2d", "test_or3d", "test_or4d", "test_or_bcast3v1d", "test_or_bcast3v2d", "test_or_bcast4v2d",
        "test_or_bcast4v3d", "test_or_bcast4v4d",
    };
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
        CHECK(run_at_opset9(tests[i]), "node test %s at opset 9 matches ONNX's reference", tests[i]);
}

int main(void) {
    test_widening();
    test_nan();
    test_bool_input();
    test_bool_round_trip();
    test_npy_bool();
    test_old_opset_node_tests();
    return t_done("test_onnx_dtypes");
}
