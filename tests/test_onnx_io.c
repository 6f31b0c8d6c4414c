/* ONNX import and export: a save/load round trip, and hand-made broken files (built as ModelProto
 * structs here and packed with protobuf-c), each of which must fail with the right status and a
 * message naming the problem. Run under ASan this also proves the error paths free everything. */
#include "testutil.h"
#include "io/io.h"
#include "io/onnx.h"
#include "onnx.pb-c.h"
#include <unistd.h>

static char g_dir[64];

/* ---- test-side scaffolding: everything built for one file is freed by scratch_reset ---- */

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
    g_nmem = 0;
}

static char *path_of(const char *name) {
    char *p = A(strlen(g_dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", g_dir, name);
    return p;
}

static Onnx__TensorProto *tensor_f(const char *name, int ndim, const int64_t *dims, int n, const float *v, bool raw) {
    Onnx__TensorProto *t = A(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->n_dims = (size_t)ndim;
    t->dims = A(sizeof(int64_t) * (size_t)(ndim + 1));
    memcpy(t->dims, dims, sizeof(int64_t) * (size_t)ndim);
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    if (raw) { /* little-endian host assumed by this test's raw data */
        t->has_raw_data = 1;
        t->raw_data.len = sizeof(float) * (size_t)n;
        t->raw_data.data = A(t->raw_data.len);
        memcpy(t->raw_data.data, v, t->raw_data.len);
    } else {
        t->n_float_data = (size_t)n;
        t->float_data = A(sizeof(float) * (size_t)(n + 1));
        memcpy(t->float_data, v, sizeof(float) * (size_t)n);
    }
    return t;
}

/* dims < 0 become dim_param "N"; ndim < 0 leaves the shape out */
static Onnx__ValueInfoProto *vinfo(const char *name, int et, int ndim, const int64_t *dims) {
    Onnx__ValueInfoProto *v = A(sizeof *v);
    Onnx__TypeProto *tp = A(sizeof *tp);
    Onnx__TypeProto__Tensor *tt = A(sizeof *tt);
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    v->name = (char *)name;
    v->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = et;
    if (ndim < 0) return v;
    Onnx__TensorShapeProto *sh = A(sizeof *sh);
    onnx__tensor_shape_proto__init(sh);
    tt->shape = sh;
    sh->n_dim = (size_t)ndim;
    sh->dim = A(sizeof *sh->dim * (size_t)(ndim + 1));
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = A(sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] >= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = "N";
        }
        sh->dim[i] = d;
    }
    return v;
}

#define MAXN 8 /* room in every list for the mutations below */

static Onnx__NodeProto *node(const char *op, const char *name, int nin, const char *const *in, int nout,
                             const char *const *out) {
    Onnx__NodeProto *n = A(sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    n->n_input = (size_t)nin;
    n->input = A(sizeof(char *) * MAXN);
    for (int i = 0; i < nin; i++) n->input[i] = (char *)in[i];
    n->n_output = (size_t)nout;
    n->output = A(sizeof(char *) * MAXN);
    for (int i = 0; i < nout; i++) n->output[i] = (char *)out[i];
    n->attribute = A(sizeof(void *) * MAXN);
    return n;
}

static Onnx__AttributeProto *attr(Onnx__NodeProto *n, const char *name, Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = A(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

typedef struct {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto os;
} model;

static const float k_w[12] = {0.5f, -1, 2, 0.25f, 1, 1, -1, 0, -0.5f, 3, 0, 1};
static const float k_b[3] = {0.1f, -0.2f, 0.3f};

/* A valid model: y = Relu(Gemm(x, W, b, transB=1)) with x (N,4), W (3,4) raw, b (3) float_data. */
static model *base_model(void) {
    model *md = A(sizeof *md);
    onnx__model_proto__init(&md->m);
    onnx__graph_proto__init(&md->g);
    onnx__operator_set_id_proto__init(&md->os);
    md->m.has_ir_version = 1;
    md->m.ir_version = 7;
    md->m.producer_name = "test_onnx_io";
    md->m.n_opset_import = 1;
    md->m.opset_import = A(sizeof(void *) * MAXN);
    md->m.opset_import[0] = &md->os;
    md->os.domain = "";
    md->os.has_version = 1;
    md->os.version = 13;
    md->m.graph = &md->g;
    Onnx__GraphProto *g = &md->g;
    g->name = "base";
    g->input = A(sizeof(void *) * MAXN);
    g->output = A(sizeof(void *) * MAXN);
    g->initializer = A(sizeof(void *) * MAXN);
    g->node = A(sizeof(void *) * MAXN);
    g->input[g->n_input++] = vinfo("x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, (int64_t[]){-1, 4});
    g->output[g->n_output++] = vinfo("y", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, (int64_t[]){-1, 3});
    g->initializer[g->n_initializer++] = tensor_f("W", 2, (int64_t[]){3, 4}, 12, k_w, true);
    g->initializer[g->n_initializer++] = tensor_f("b", 1, (int64_t[]){3}, 3, k_b, false);
    Onnx__NodeProto *fc = node("Gemm", "fc", 3, (const char *[]){"x", "W", "b"}, 1, (const char *[]){"h"});
    Onnx__AttributeProto *tb = attr(fc, "transB", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    tb->has_i = 1;
    tb->i = 1;
    g->node[g->n_node++] = fc;
    g->node[g->n_node++] = node("Relu", "act", 1, (const char *[]){"h"}, 1, (const char *[]){"y"});
    return md;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    SAL_ASSERT(f);
    SAL_ASSERT(fwrite(data, 1, n, f) == n);
    fclose(f);
}

/* Packs the model into path; returns the serialized bytes (scratch memory) and their count. */
static unsigned char *write_model(const model *md, const char *path, size_t *len) {
    size_t n = onnx__model_proto__get_packed_size(&md->m);
    unsigned char *buf = A(n);
    SAL_ASSERT(onnx__model_proto__pack(&md->m, buf) == n);
    write_bytes(path, buf, n);
    if (len) *len = n;
    return buf;
}

/* Loads md from a file; expects failure with `status` and every needle in the message. */
static void expect_fail(const char *what, const model *md, sal_status status, const char *n1, const char *n2) {
    char *p = path_of("broken.onnx");
    write_model(md, p, NULL);
    sal_model *m = (sal_model *)1;
    sal_status st = sal_model_load(p, &m);
    const char *e = sal_last_error();
    CHECK(st == status && strstr(e, p) && strstr(e, n1) && (!n2 || strstr(e, n2)) && m == NULL,
          "%s: got %s '%s', wanted %s with '%s'%s%s", what, sal_status_string(st), e, sal_status_string(status), n1,
          n2 ? " and " : "", n2 ? n2 : "");
    if (st == SAL_OK) sal_model_free(m);
    remove(p);
    scratch_reset();
}

/* The reference computation of base_model. */
static void base_reference(const float *x, int rows, float *y) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < 3; j++) {
            float acc = k_b[j];
            for (int k = 0; k < 4; k++) acc += x[r * 4 + k] * k_w[j * 4 + k];
            y[r * 3 + j] = acc > 0 ? acc : 0;
        }
}

static void check_runs_like_base(const char *what, sal_model *m) {
    float xv[8] = {1, 2, 3, 4, -1, 0.5f, 0, 2}, want[6];
    base_reference(xv, 2, want);
    sal_tensor x = {0};
    CHECK_OK(sal_tensor_alloc(&x, SAL_F32, 2, (int64_t[]){2, 4}));
    memcpy(x.data, xv, sizeof xv);
    sal_session *s = NULL;
    const sal_tensor *y = NULL;
    CHECK_OK(sal_session_new(m, &s));
    if (s && sal_forward(s, 1, &x, &y) == SAL_OK) {
        double worst = 0;
        for (int i = 0; i < 6; i++) worst = fmax(worst, fabs(sal_f32(y)[i] - want[i]));
        CHECK(y->ndim == 2 && y->dim[0] == 2 && y->dim[1] == 3 && worst < 1e-5, "%s: output differs by %g", what, worst);
    } else {
        CHECK(0, "%s: forward failed: %s", what, sal_last_error());
    }
    sal_session_free(s);
    sal_tensor_free(&x);
}

static void test_load_valid(void) {
    char *p = path_of("base.onnx");
    write_model(base_model(), p, NULL);
    sal_model *m = NULL;
    CHECK_OK(sal_model_load(p, &m));
    if (m) {
        int nd;
        int64_t d[SAL_MAX_DIMS];
        sal_model_input_shape(m, 0, &nd, d);
        CHECK(sal_model_num_inputs(m) == 1 && nd == 2 && d[0] == -1 && d[1] == 4, "base: input (N,4) with N dynamic");
        CHECK(m->opset == 13 && m->ir_version == 7 && !strcmp(m->producer, "test_onnx_io"), "opset, IR, producer kept");
        CHECK(sal_model_param_count(m) == 15, "base: 15 parameters, got %lld", (long long)sal_model_param_count(m));
        check_runs_like_base("base", m);
        sal_model_free(m);
    }
    remove(p);
    scratch_reset();

    /* initializers also listed as inputs (older exporters) stay constants */
    model *md = base_model();
    md->g.input[md->g.n_input++] = vinfo("W", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, (int64_t[]){3, 4});
    md->g.input[md->g.n_input++] = vinfo("b", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, (int64_t[]){3});
    p = path_of("old.onnx");
    write_model(md, p, NULL);
    CHECK_OK(sal_model_load(p, &m));
    if (m) {
        CHECK(sal_model_num_inputs(m) == 1, "initializers listed as inputs are not inputs (%d inputs)",
              sal_model_num_inputs(m));
        check_runs_like_base("initializers as inputs", m);
        sal_model_free(m);
    }
    remove(p);
    scratch_reset();

    /* Constant nodes (tensor, value_floats) become constants, not nodes; int32/double initializers
     * convert; anonymous nodes get names */
    md = base_model();
    md->g.n_initializer = 0;
    Onnx__NodeProto *cw = node("Constant", "", 0, NULL, 1, (const char *[]){"W"});
    Onnx__AttributeProto *a = attr(cw, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    /* W as doubles */
    Onnx__TensorProto *wd = A(sizeof *wd);
    onnx__tensor_proto__init(wd);
    wd->n_dims = 2;
    wd->dims = (int64_t[]){3, 4};
    wd->has_data_type = 1;
    wd->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    wd->n_double_data = 12;
    wd->double_data = A(12 * sizeof(double));
    for (int i = 0; i < 12; i++) wd->double_data[i] = k_w[i];
    a->t = wd;
    Onnx__NodeProto *cb = node("Constant", "bias_const", 0, NULL, 1, (const char *[]){"b"});
    Onnx__AttributeProto *bf = attr(cb, "value_floats", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    bf->n_floats = 3;
    bf->floats = (float *)k_b;
    /* an int32 initializer nobody reads */
    Onnx__TensorProto *ti = A(sizeof *ti);
    onnx__tensor_proto__init(ti);
    ti->name = "counts";
    ti->n_dims = 1;
    ti->dims = (int64_t[]){2};
    ti->has_data_type = 1;
    ti->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    ti->n_int32_data = 2;
    ti->int32_data = (int32_t[]){-7, 9};
    md->g.initializer[md->g.n_initializer++] = ti;
    /* nodes out of order: the importer sorts them */
    md->g.node[2] = md->g.node[0];
    md->g.node[3] = md->g.node[1];
    md->g.node[0] = cw;
    md->g.node[1] = cb;
    md->g.node[3]->name = "";
    md->g.n_node = 4;
    Onnx__NodeProto *t = md->g.node[2];
    md->g.node[2] = md->g.node[3];
    md->g.node[3] = t;
    p = path_of("const.onnx");
    write_model(md, p, NULL);
    CHECK_OK(sal_model_load(p, &m));
    if (m) {
        CHECK(m->nnode == 2, "Constant nodes are not nodes (%d nodes)", m->nnode);
        CHECK(sal_graph_find_node(m, "Relu_2") >= 0, "an anonymous node is named <op>_<index>");
        int v = sal_graph_find(m, "counts");
        CHECK(v >= 0 && m->val[v].t.dtype == SAL_I64 && ((int64_t *)m->val[v].t.data)[0] == -7 &&
                  ((int64_t *)m->val[v].t.data)[1] == 9,
              "INT32 initializer widened to int64");
        check_runs_like_base("Constant nodes", m);
        sal_model_free(m);
    }
    remove(p);
    scratch_reset();
}

static void test_round_trip(void) {
    sal_rng r;
    sal_rng_seed(&r, 5);
    sal_model *g = NULL, *h = NULL;
    CHECK_OK(sal_graph_create(NULL, &g));
    sal_tensor W = t_rand(&r, 2, (int64_t[]){6, 4}, 1), b = t_rand(&r, 1, (int64_t[]){6}, 1),
               W2 = t_rand(&r, 2, (int64_t[]){6, 3}, 1);
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}));
    CHECK_OK(sal_graph_add_const(g, "W", &W));
    CHECK_OK(sal_graph_add_const(g, "b", &b));
    CHECK_OK(sal_graph_add_const(g, "W2", &W2));
    sal_attr at[3] = {sal_attr_make_int("transB", 1), sal_attr_make_float("alpha", 0.5f),
                      sal_attr_make_string("note", "kept verbatim")};
    CHECK_OK(sal_graph_add_node(g, "Gemm", "fc1", 3, (const char *[]){"x", "W", "b"}, 1, (const char *[]){"h1"}, 3, at));
    CHECK_OK(sal_graph_add_node(g, "Relu", "relu1", 1, (const char *[]){"h1"}, 1, (const char *[]){"a1"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "Gemm", "fc2", 2, (const char *[]){"a1", "W2"}, 1, (const char *[]){"logits"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "logits"));
    CHECK_OK(sal_graph_add_output(g, "a1"));
    CHECK_OK(sal_graph_finalize(g));
    char *p = path_of("rt.onnx"), *p2 = path_of("rt2.onnx");
    CHECK_OK(sal_model_save(g, p));
    CHECK_OK(sal_model_load(p, &h));
    if (!g || !h) goto done;
    CHECK(sal_model_num_inputs(h) == 1 && !strcmp(sal_model_input_name(h, 0), "x"), "input name kept");
    CHECK(sal_model_num_outputs(h) == 2 && !strcmp(sal_model_output_name(h, 0), "logits") &&
              !strcmp(sal_model_output_name(h, 1), "a1"),
          "output names and order kept");
    int nd;
    int64_t d[SAL_MAX_DIMS];
    sal_model_input_shape(h, 0, &nd, d);
    CHECK(nd == 2 && d[0] == -1 && d[1] == 4, "dynamic batch kept");
    CHECK(sal_model_param_count(h) == sal_model_param_count(g), "parameter count kept");
    int fc = sal_graph_find_node(h, "fc1");
    CHECK(fc >= 0 && sal_attr_int(&h->node[fc], "transB", 0) == 1 && sal_attr_float(&h->node[fc], "alpha", 1) == 0.5f &&
              !strcmp(sal_attr_string(&h->node[fc], "note", ""), "kept verbatim"),
          "attributes kept");
    sal_tensor x = t_rand(&r, 2, (int64_t[]){5, 4}, 1);
    sal_session *s1 = NULL, *s2 = NULL;
    const sal_tensor *y1[2], *y2[2];
    CHECK_OK(sal_session_new(g, &s1));
    CHECK_OK(sal_session_new(h, &s2));
    if (s1 && s2 && sal_forward(s1, 1, &x, y1) == SAL_OK && sal_forward(s2, 1, &x, y2) == SAL_OK) {
        for (int o = 0; o < 2; o++)
            CHECK(sal_tensor_same_shape(y1[o], y2[o]) &&
                      !memcmp(y1[o]->data, y2[o]->data, (size_t)sal_tensor_numel(y1[o]) * sizeof(float)),
                  "output %d identical after the round trip", o);
    } else {
        CHECK(0, "round trip forward: %s", sal_last_error());
    }
    sal_session_free(s1);
    sal_session_free(s2);
    sal_tensor_free(&x);
    /* saving is deterministic: the reloaded model saves to the same bytes */
    CHECK_OK(sal_model_save(h, p2));
    unsigned char *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    CHECK_OK(sal_read_file(p, 1 << 20, &b1, &n1));
    CHECK_OK(sal_read_file(p2, 1 << 20, &b2, &n2));
    CHECK(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1), "save(load(save(g))) == save(g) byte for byte");
    sal_free(b1);
    sal_free(b2);

    /* an unwritable destination fails cleanly and leaves nothing behind */
    char *bad = path_of("no/such/folder/m.onnx");
    CHECK_FAILS(sal_model_save(g, bad), SAL_ERR_IO, "no/such/folder/m.onnx");
    sal_model *nf = NULL;
    CHECK_OK(sal_graph_create(NULL, &nf));
    CHECK_FAILS(sal_model_save(nf, p2), SAL_ERR_ARG, "not finalized");
    sal_model_free(nf);

    /* every allocation failure while loading or saving fails cleanly (ASan checks for leaks) */
    int nomem = 0;
    for (long k = 1; k < 100000; k++) {
        sal_model *t = NULL;
        sal_alloc_fail_after(k);
        sal_status st = sal_model_load(p, &t);
        sal_alloc_fail_after(0);
        sal_model_free(t);
        if (st == SAL_OK) break;
        nomem += st == SAL_ERR_NOMEM;
        if (st != SAL_ERR_NOMEM) {
            CHECK(0, "load with allocation %ld failing: %s (%s)", k, sal_status_string(st), sal_last_error());
            break;
        }
    }
    CHECK(nomem > 10, "allocation failures while loading were exercised (%d)", nomem);
    /* the output-shape probe falls back to no shapes when it cannot run, so failures there still
     * save: try every allocation of a save, and check each file that came out loads */
    nomem = 0;
    int saved = 0, unloadable = 0;
    for (long k = 1; k < 400; k++) {
        sal_alloc_fail_after(k);
        sal_status st = sal_model_save(h, p2);
        sal_alloc_fail_after(0);
        nomem += st == SAL_ERR_NOMEM;
        if (st == SAL_OK) {
            sal_model *t = NULL;
            saved++;
            unloadable += sal_model_load(p2, &t) != SAL_OK;
            sal_model_free(t);
        } else if (st != SAL_ERR_NOMEM) {
            CHECK(0, "save with allocation %ld failing: %s (%s)", k, sal_status_string(st), sal_last_error());
            break;
        }
    }
    CHECK(nomem > 20 && saved > 0 && unloadable == 0,
          "allocation failures while saving: %d out of memory, %d saved, %d of those unloadable", nomem, saved, unloadable);
done:
    remove(p);
    remove(p2);
    sal_model_free(g);
    sal_model_free(h);
    scratch_reset();
}

static void test_broken_files(void) {
    /* missing file */
    char *p = path_of("missing.onnx");
    sal_model *m = NULL;
    CHECK_FAILS(sal_model_load(p, &m), SAL_ERR_IO, "missing.onnx");
    CHECK(m == NULL, "no model on failure");

    /* garbage bytes */
    unsigned char junk[256];
    sal_rng r;
    sal_rng_seed(&r, 11);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)sal_rng_u64(&r);
    p = path_of("junk.onnx");
    write_bytes(p, junk, sizeof junk);
    CHECK_FAILS(sal_model_load(p, &m), SAL_ERR_FORMAT, "not a valid ONNX model");
    write_bytes(p, "", 0);
    CHECK_FAILS(sal_model_load(p, &m), SAL_ERR_FORMAT, "not a valid ONNX model");
    remove(p);

    /* truncated: every strict prefix of a valid model is refused (opset_import is packed last) */
    size_t n;
    unsigned char *full = write_model(base_model(), path_of("full.onnx"), &n);
    p = path_of("trunc.onnx");
    write_bytes(p, full, n / 2);
    CHECK_FAILS(sal_model_load(p, &m), SAL_ERR_FORMAT, "not a valid ONNX model (protobuf decoding failed)");
    int accepted = 0, crashed_status = 0;
    for (size_t k = 0; k < n; k++) {
        sal_status st = sal_onnx_load_buffer(full, k, "prefix", &m);
        if (st == SAL_OK) {
            accepted++;
            sal_model_free(m);
        }
        crashed_status += st != SAL_OK && st != SAL_ERR_FORMAT;
    }
    CHECK(accepted == 0 && crashed_status == 0, "truncated models: %d accepted, %d with a status other than format",
          accepted, crashed_status);
    /* single flipped bytes never crash (any status is fine) */
    unsigned char *mut = A(n);
    for (size_t k = 0; k < n; k++) {
        memcpy(mut, full, n);
        mut[k] ^= 0xA5;
        if (sal_onnx_load_buffer(mut, n, "flipped", &m) == SAL_OK) sal_model_free(m);
    }
    remove(p);
    remove(path_of("full.onnx"));
    scratch_reset();

    model *md;
    md = base_model();
    md->m.has_ir_version = 0;
    expect_fail("no ir_version", md, SAL_ERR_FORMAT, "not a valid ONNX model", "ir_version");
    md = base_model();
    md->m.ir_version = 99;
    expect_fail("IR version", md, SAL_ERR_UNSUPPORTED, "IR version 99", NULL);
    md = base_model();
    md->os.version = 7;
    expect_fail("opset 7", md, SAL_ERR_UNSUPPORTED, "opset 7 is not supported", NULL);
    md = base_model();
    md->os.version = 22;
    expect_fail("opset 22", md, SAL_ERR_UNSUPPORTED, "opset 22 is not supported", NULL);
    md = base_model();
    md->m.n_opset_import = 0;
    expect_fail("no opset", md, SAL_ERR_FORMAT, "default ONNX operator set", NULL);

    /* foreign domains: listed but unused is fine, used is not */
    md = base_model();
    Onnx__OperatorSetIdProto ml = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    ml.domain = "com.example";
    ml.has_version = 1;
    ml.version = 1;
    md->m.opset_import[md->m.n_opset_import++] = &ml;
    p = path_of("ml.onnx");
    write_model(md, p, NULL);
    CHECK_OK(sal_model_load(p, &m));
    sal_model_free(m);
    remove(p);
    md->g.node[1]->domain = "com.example";
    expect_fail("foreign domain", md, SAL_ERR_UNSUPPORTED, "domain 'com.example'", "node 'act'");

    md = base_model();
    md->g.node[1]->op_type = "Frobnicate";
    expect_fail("unsupported op", md, SAL_ERR_UNSUPPORTED, "node 'act': op Frobnicate is not supported", NULL);

    md = base_model();
    md->g.initializer[1]->n_float_data = 2;
    expect_fail("short float_data", md, SAL_ERR_FORMAT, "initializer 'b' has 2 values", "needs 3");
    md = base_model();
    md->g.initializer[0]->raw_data.len -= 4;
    expect_fail("short raw_data", md, SAL_ERR_FORMAT, "initializer 'W' has 44 bytes", "needs 48");
    md = base_model();
    md->g.initializer[0]->dims[0] = -3;
    expect_fail("negative dim", md, SAL_ERR_FORMAT, "initializer 'W' has invalid dimensions", NULL);
    md = base_model();
    md->g.initializer[0]->dims[0] = INT64_MAX / 2;
    expect_fail("overflowing dims", md, SAL_ERR_FORMAT, "initializer 'W' has invalid dimensions", NULL);
    md = base_model();
    md->g.initializer[1]->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
    expect_fail("uint8 initializer", md, SAL_ERR_UNSUPPORTED, "initializer 'b' has data type UINT8", NULL);

    md = base_model();
    {
        Onnx__TensorProto *w = md->g.initializer[0];
        w->has_raw_data = 0;
        w->has_data_location = 1;
        w->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        Onnx__StringStringEntryProto *e = A(sizeof *e);
        onnx__string_string_entry_proto__init(e);
        e->key = "location";
        e->value = "weights.bin";
        w->n_external_data = 1;
        w->external_data = A(sizeof(void *));
        w->external_data[0] = e;
    }
    expect_fail("external data", md, SAL_ERR_UNSUPPORTED, "initializer 'W' keeps its data in an external file",
                "weights.bin");

    md = base_model();
    md->g.node[1]->input[0] = "ghost";
    expect_fail("dangling input", md, SAL_ERR_FORMAT, "node 'act' (Relu) reads 'ghost'", NULL);
    md = base_model();
    md->g.output[0]->name = "nowhere";
    expect_fail("dangling output", md, SAL_ERR_FORMAT, "graph output 'nowhere' is never produced", NULL);

    /* h = Relu(y), y = Relu(h): a cycle (the Gemm writes h2 instead) */
    md = base_model();
    md->g.node[0]->output[0] = "h2";
    md->g.node[md->g.n_node++] = node("Relu", "back", 1, (const char *[]){"y"}, 1, (const char *[]){"h"});
    expect_fail("cycle", md, SAL_ERR_FORMAT, "cycle", NULL);

    md = base_model();
    md->g.output[md->g.n_output++] = vinfo("y", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, -1, NULL);
    expect_fail("output listed twice", md, SAL_ERR_FORMAT, "graph output 'y' is listed twice", NULL);
    md = base_model();
    md->g.node[md->g.n_node++] = node("Relu", "again", 1, (const char *[]){"h"}, 1, (const char *[]){"y"});
    expect_fail("value produced twice", md, SAL_ERR_FORMAT, "value 'y' is defined twice", NULL);

    md = base_model();
    md->g.input[0]->type->tensor_type->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    expect_fail("int32 input", md, SAL_ERR_UNSUPPORTED, "input 'x' has data type INT32", NULL);
    md = base_model();
    md->g.input[0]->type->tensor_type->shape = NULL;
    expect_fail("input without shape", md, SAL_ERR_UNSUPPORTED, "input 'x' declares no shape", NULL);
    md = base_model();
    md->g.output[0]->type->tensor_type->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    expect_fail("int32 output", md, SAL_ERR_UNSUPPORTED, "output 'y' has data type INT32", NULL);

    md = base_model();
    {
        Onnx__GraphProto *body = A(sizeof *body);
        onnx__graph_proto__init(body);
        attr(md->g.node[1], "body", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH)->g = body;
    }
    expect_fail("graph attribute", md, SAL_ERR_UNSUPPORTED, "node 'act' (Relu): attribute 'body' has type GRAPH", NULL);
    md = base_model();
    attr(md->g.node[0], "transB", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    expect_fail("repeated attribute", md, SAL_ERR_FORMAT, "attribute 'transB' twice", NULL);

    md = base_model();
    {
        Onnx__NodeProto *c = node("Constant", "cs", 0, NULL, 1, (const char *[]){"s"});
        attr(c, "value_string", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
        md->g.node[md->g.n_node++] = c;
    }
    expect_fail("string constant", md, SAL_ERR_UNSUPPORTED, "node 'cs' (Constant): attribute 'value_string'", NULL);

    md = base_model();
    md->m.graph = NULL;
    expect_fail("no graph", md, SAL_ERR_FORMAT, "no graph", NULL);
}

/* The TensorProto reader used by the conformance runner. */
static void test_read_tensor(void) {
    Onnx__TensorProto *t = tensor_f("t", 2, (int64_t[]){2, 2}, 4, (float[]){1, 2, 3, 4}, true);
    size_t n = onnx__tensor_proto__get_packed_size(t);
    unsigned char *buf = A(n);
    onnx__tensor_proto__pack(t, buf);
    char *p = path_of("t.pb");
    write_bytes(p, buf, n);
    sal_tensor x = {0};
    CHECK_OK(sal_onnx_read_tensor(p, &x));
    CHECK(x.dtype == SAL_F32 && x.ndim == 2 && sal_f32(&x)[3] == 4.0f, "tensor file read back");
    sal_tensor_free(&x);
    write_bytes(p, buf, n - 3);
    CHECK_FAILS(sal_onnx_read_tensor(p, &x), SAL_ERR_FORMAT, "t.pb");
    remove(p);
    scratch_reset();
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sal_onnx_io_XXXXXX");
    SAL_ASSERT(mkdtemp(g_dir));
    test_load_valid();
    test_round_trip();
    test_broken_files();
    test_read_tensor();
    scratch_reset();
    free(g_mem);
    rmdir(g_dir);
    return t_done("test_onnx_io");
}
