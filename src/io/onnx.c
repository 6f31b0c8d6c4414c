/* ONNX import (ModelProto -> sal_model) and export (sal_model -> ModelProto) through protobuf-c,
 * with bindings generated at build time from Debian's onnx.proto. */
#include "io/onnx.h"
#include "graph/exec.h"
#include "graph/rewrite.h"
#include "io/io.h"
#include "onnx.pb-c.h"
#include <limits.h>
#include <math.h>
#include <sys/stat.h>

#define OPSET_MIN 9
#define OPSET_MAX 21
/* IR 3 introduced opset imports; IR 10 is the newest the format has defined so far. */
#define IR_MIN 3
#define IR_MAX 10
#define EXPORT_IR 8

_Static_assert((int)SAL_F32 == (int)ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
                   (int)SAL_I64 == (int)ONNX__TENSOR_PROTO__DATA_TYPE__INT64 &&
                   (int)SAL_BOOL == (int)ONNX__TENSOR_PROTO__DATA_TYPE__BOOL,
               "sal_dtype uses ONNX's numbers");

typedef Onnx__TensorProto TensorProto;
typedef Onnx__AttributeProto AttributeProto;
typedef Onnx__NodeProto NodeProto;
typedef Onnx__ValueInfoProto ValueInfoProto;

const char *sal_onnx_dtype_name(int dt) {
    static const char *const names[] = {"UNDEFINED", "FLOAT",  "UINT8",  "INT8",      "UINT16",     "INT16",
                                        "INT32",     "INT64",  "STRING", "BOOL",      "FLOAT16",    "DOUBLE",
                                        "UINT32",    "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
    return dt >= 0 && dt < (int)(sizeof names / sizeof names[0]) ? names[dt] : "UNKNOWN";
}

static const char *str_or(const char *s, const char *def) { return s && *s ? s : def; }

/* ---- protobuf-c allocator through sal_malloc, remembering whether it ran out ---- */

typedef struct {
    bool oom;
} pb_state;

static void *pb_alloc(void *ud, size_t n) {
    void *p = sal_malloc(n);
    if (!p) ((pb_state *)ud)->oom = true;
    return p;
}

static void pb_free(void *ud, void *p) {
    (void)ud;
    sal_free(p);
}

/* ---- tensors ---- */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* IEEE half precision bits to float: every half value (subnormals, infinities, NaN) is exact. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = h >> 10 & 0x1f, m = h & 0x3ff, u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | m << 13; /* infinity or NaN, payload kept */
    } else if (e) {
        u = sign | (e + 112) << 23 | m << 13; /* rebias 15 -> 127 */
    } else {
        float f = ldexpf((float)m, -24); /* subnormal (or zero): m * 2^-24 exactly */
        memcpy(&u, &f, 4);
        u |= sign;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* bfloat16 is the upper half of a float32. */
static float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Element i of a FLOAT16 or BFLOAT16 tensor: raw little-endian, or one value per int32_data entry. */
static uint16_t bits16(const TensorProto *tp, const uint8_t *raw, int64_t i) {
    return raw ? (uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8) : (uint16_t)(uint32_t)tp->int32_data[i];
}

/* TensorProto -> sal_tensor. `what` names the tensor in messages ("initializer 'w'"). */
static sal_status tensor_from_proto(const TensorProto *tp, const char *path, const char *what, sal_tensor *out) {
    memset(out, 0, sizeof *out);
    if ((tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        tp->n_external_data) {
        const char *loc = "?";
        for (size_t i = 0; i < tp->n_external_data; i++)
            if (tp->external_data[i]->key && !strcmp(tp->external_data[i]->key, "location"))
                loc = str_or(tp->external_data[i]->value, "?");
        return sal_fail(SAL_ERR_UNSUPPORTED,
                        "%s: %s keeps its data in an external file ('%s'); external data is not supported, "
                        "save the model with every tensor inside the .onnx file",
                        path, what, loc);
    }
    if (tp->segment)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: %s is a segment of a larger tensor; segmented tensors are not supported",
                        path, what);
    if (tp->n_dims > SAL_MAX_DIMS)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: %s has rank %zu (at most %d supported)", path, what, tp->n_dims,
                        SAL_MAX_DIMS);
    int ndim = (int)tp->n_dims;
    int64_t dim[SAL_MAX_DIMS], numel;
    for (int i = 0; i < ndim; i++) dim[i] = tp->dims[i];
    char sb[200];
    if (!sal_shape_numel(ndim, dim, &numel))
        return sal_fail(SAL_ERR_FORMAT, "%s: %s has invalid dimensions %s (negative or too large)", path, what,
                        sal_shape_str(ndim, dim, sb, sizeof sb));
    int dt = tp->has_data_type ? tp->data_type : 0;
    sal_dtype sdt;
    size_t esz, ntyped;
    /* float16 and bfloat16 are widened to float32: everything is computed in float32 */
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: sdt = SAL_F32, esz = 4, ntyped = tp->n_float_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: sdt = SAL_F32, esz = 8, ntyped = tp->n_double_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: sdt = SAL_F32, esz = 2, ntyped = tp->n_int32_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: sdt = SAL_I64, esz = 8, ntyped = tp->n_int64_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: sdt = SAL_I64, esz = 4, ntyped = tp->n_int32_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: sdt = SAL_BOOL, esz = 1, ntyped = tp->n_int32_data; break;
    default:
        return sal_fail(SAL_ERR_UNSUPPORTED,
                        "%s: %s has data type %s; only FLOAT, FLOAT16, BFLOAT16, DOUBLE, INT32, INT64 and BOOL tensors "
                        "are supported",
                        path, what, sal_onnx_dtype_name(dt));
    }
    if (tp->has_raw_data) {
        if (tp->raw_data.len != (size_t)numel * esz)
            return sal_fail(SAL_ERR_FORMAT, "%s: %s has %zu bytes of data, but its shape %s of %s needs %lld", path,
                            what, tp->raw_data.len, sal_shape_str(ndim, dim, sb, sizeof sb), sal_onnx_dtype_name(dt),
                            (long long)numel * (long long)esz);
    } else if (ntyped != (size_t)numel) {
        return sal_fail(SAL_ERR_FORMAT, "%s: %s has %zu values, but its shape %s needs %lld", path, what, ntyped,
                        sal_shape_str(ndim, dim, sb, sizeof sb), (long long)numel);
    }
    sal_status st = sal_tensor_alloc(out, sdt, ndim, dim);
    if (st != SAL_OK) return sal_wrap(st, "%s: %s", path, what);
    const uint8_t *raw = tp->has_raw_data ? tp->raw_data.data : NULL;
    float *f = sdt == SAL_F32 ? out->data : NULL;
    int64_t *q = sdt == SAL_I64 ? out->data : NULL;
    uint8_t *b = sdt == SAL_BOOL ? out->data : NULL;
    for (int64_t i = 0; i < numel; i++) {
        switch (dt) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: f[i] = half_to_float(bits16(tp, raw, i)); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: f[i] = bf16_to_float(bits16(tp, raw, i)); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: b[i] = (raw ? raw[i] : tp->int32_data[i]) != 0; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
            if (raw) {
                uint32_t u = le32(raw + 4 * i);
                memcpy(&f[i], &u, 4);
            } else {
                f[i] = tp->float_data[i];
            }
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
            if (raw) {
                uint64_t u = le64(raw + 8 * i);
                double d;
                memcpy(&d, &u, 8);
                f[i] = (float)d;
            } else {
                f[i] = (float)tp->double_data[i];
            }
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
            q[i] = raw ? (int64_t)le64(raw + 8 * i) : tp->int64_data[i];
            break;
        default: /* INT32 */
            q[i] = raw ? (int64_t)(int32_t)le32(raw + 4 * i) : tp->int32_data[i];
            break;
        }
    }
    return SAL_OK;
}

sal_status sal_onnx_read_tensor(const char *path, sal_tensor *out) {
    memset(out, 0, sizeof *out);
    unsigned char *data;
    size_t len;
    SAL_TRY(sal_read_file(path, SAL_ONNX_MAX_BYTES, &data, &len));
    pb_state ps = {0};
    ProtobufCAllocator al = {.alloc = pb_alloc, .free = pb_free, .allocator_data = &ps};
    TensorProto *tp = onnx__tensor_proto__unpack(&al, len, data);
    sal_free(data);
    if (!tp)
        return ps.oom ? sal_fail(SAL_ERR_NOMEM, "%s: out of memory decoding a tensor", path)
                      : sal_fail(SAL_ERR_FORMAT, "%s: not a valid ONNX tensor (protobuf decoding failed)", path);
    char what[300];
    snprintf(what, sizeof what, "tensor '%s'", str_or(tp->name, "(unnamed)"));
    sal_status st = tensor_from_proto(tp, path, what, out);
    onnx__tensor_proto__free_unpacked(tp, &al);
    return st;
}

/* ---- import ---- */

typedef struct {
    const char *path;
    sal_model *g;
    sal_strmap node_names; /* node names given out so far, to keep them unique */
    sal_strmap next_suffix; /* base name -> next "_<k>" to try, so n nodes sharing a name cost O(n) */
} importer;

static bool default_domain(const char *d) { return !d || !*d || !strcmp(d, "ai.onnx"); }

/* AttributeProto.type is required since IR 3, but very old writers left it out; infer it from
 * whichever field is set. */
static int attr_type(const AttributeProto *a) {
    if (a->has_type) return (int)a->type;
    if (a->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (a->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (a->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (a->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (a->g) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
    if (a->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    if (a->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (a->n_strings) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
    if (a->n_tensors) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS;
    if (a->n_graphs) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS;
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

static const char *attr_type_name(int t) {
    switch (t) {
    case 1: return "FLOAT";
    case 2: return "INT";
    case 3: return "STRING";
    case 4: return "TENSOR";
    case 5: return "GRAPH";
    case 6: return "FLOATS";
    case 7: return "INTS";
    case 8: return "STRINGS";
    case 9: return "TENSORS";
    case 10: return "GRAPHS";
    case 11: return "SPARSE_TENSOR";
    case 12: return "SPARSE_TENSORS";
    case 13: return "TYPE_PROTO";
    case 14: return "TYPE_PROTOS";
    default: return "UNDEFINED";
    }
}

static sal_status attr_from_proto(const importer *im, const AttributeProto *a, const char *node, const char *op,
                                  sal_attr *out) {
    memset(out, 0, sizeof *out);
    const char *an = str_or(a->name, "");
    if (!*an) return sal_fail(SAL_ERR_FORMAT, "%s: node '%s' (%s) has an attribute without a name", im->path, node, op);
    if (a->ref_attr_name && *a->ref_attr_name)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (%s): attribute '%s' refers to a function attribute, which is not supported",
                        im->path, node, op, an);
    int t = attr_type(a);
    out->name = sal_strdup(an);
    if (!out->name) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory reading node '%s'", im->path, node);
    out->type = (sal_attr_type)t;
    sal_status st = SAL_OK;
    switch (t) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: out->f = a->f; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: out->i = a->i; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        if (!(out->s = sal_malloc(a->s.len + 1))) {
            st = sal_fail(SAL_ERR_NOMEM, "%s: out of memory reading node '%s'", im->path, node);
            break;
        }
        if (a->s.len) memcpy(out->s, a->s.data, a->s.len);
        out->s[a->s.len] = '\0';
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        char what[400];
        snprintf(what, sizeof what, "node '%s' (%s) attribute '%s'", node, op, an);
        if (!a->t) {
            st = sal_fail(SAL_ERR_FORMAT, "%s: %s is a TENSOR without a tensor", im->path, what);
            break;
        }
        st = tensor_from_proto(a->t, im->path, what, &out->t);
        break;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: {
        bool fl = t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
        size_t n = fl ? a->n_floats : a->n_ints;
        if (n > INT_MAX) {
            st = sal_fail(SAL_ERR_FORMAT, "%s: node '%s' (%s): attribute '%s' has too many values", im->path, node, op, an);
            break;
        }
        out->n = (int)n;
        void *p = sal_malloc((n ? n : 1) * (fl ? sizeof(float) : sizeof(int64_t)));
        if (!p) {
            st = sal_fail(SAL_ERR_NOMEM, "%s: out of memory reading node '%s'", im->path, node);
            break;
        }
        if (fl) {
            out->floats = p;
            if (n) memcpy(p, a->floats, n * sizeof(float));
        } else {
            out->ints = p;
            if (n) memcpy(p, a->ints, n * sizeof(int64_t));
        }
        break;
    }
    default:
        st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (%s): attribute '%s' has type %s, which is not supported",
                      im->path, node, op, an, attr_type_name(t));
    }
    if (st != SAL_OK) sal_attr_clear(out);
    return st;
}

/* A Constant node becomes a constant value at once rather than a node. */
static sal_status constant_node(importer *im, const NodeProto *np, const char *node) {
    if (np->n_output != 1 || !np->output[0] || !*np->output[0])
        return sal_fail(SAL_ERR_FORMAT, "%s: node '%s' (Constant) must have exactly one output", im->path, node);
    if (np->n_attribute != 1)
        return sal_fail(SAL_ERR_FORMAT, "%s: node '%s' (Constant) must have exactly one attribute, it has %zu", im->path,
                        node, np->n_attribute);
    const AttributeProto *a = np->attribute[0];
    const char *an = str_or(a->name, "");
    sal_tensor t = {0};
    sal_status st = SAL_OK;
    int64_t n1;
    if (!strcmp(an, "value")) {
        char what[400];
        snprintf(what, sizeof what, "node '%s' (Constant) attribute 'value'", node);
        if (!a->t) return sal_fail(SAL_ERR_FORMAT, "%s: %s holds no tensor", im->path, what);
        st = tensor_from_proto(a->t, im->path, what, &t);
    } else if (!strcmp(an, "value_float")) {
        if ((st = sal_tensor_alloc(&t, SAL_F32, 0, NULL)) == SAL_OK) sal_f32(&t)[0] = a->f;
    } else if (!strcmp(an, "value_int")) {
        if ((st = sal_tensor_alloc(&t, SAL_I64, 0, NULL)) == SAL_OK) ((int64_t *)t.data)[0] = a->i;
    } else if (!strcmp(an, "value_floats")) {
        n1 = (int64_t)a->n_floats;
        if ((st = sal_tensor_alloc(&t, SAL_F32, 1, &n1)) == SAL_OK && n1)
            memcpy(t.data, a->floats, (size_t)n1 * sizeof(float));
    } else if (!strcmp(an, "value_ints")) {
        n1 = (int64_t)a->n_ints;
        if ((st = sal_tensor_alloc(&t, SAL_I64, 1, &n1)) == SAL_OK && n1)
            memcpy(t.data, a->ints, (size_t)n1 * sizeof(int64_t));
    } else {
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (Constant): attribute '%s' is not supported", im->path, node,
                        an);
    }
    if (st != SAL_OK) {
        sal_tensor_free(&t);
        return strstr(sal_last_error(), im->path) ? st : sal_wrap(st, "%s: node '%s' (Constant)", im->path, node);
    }
    return sal_graph_add_const(im->g, np->output[0], &t);
}

/* A node name not given out before: the file's name, "<op>_<index>" for anonymous nodes, with a
 * "_<k>" suffix where that is taken (graph.h promises unique node names). */
static sal_status unique_node_name(importer *im, const NodeProto *np, size_t idx, char **out) {
    const char *base = np->name;
    char made[160];
    if (!base || !*base) {
        snprintf(made, sizeof made, "%.120s_%zu", str_or(np->op_type, "node"), idx);
        base = made;
    }
    size_t cap = strlen(base) + 24;
    char *name = sal_malloc(cap);
    if (!name) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory naming nodes", im->path);
    snprintf(name, cap, "%s", base);
    sal_status st = SAL_OK;
    if (sal_strmap_get(&im->node_names, name) >= 0) {
        int k = sal_strmap_get(&im->next_suffix, base);
        for (k = k < 2 ? 2 : k; snprintf(name, cap, "%s_%d", base, k), sal_strmap_get(&im->node_names, name) >= 0; k++) {}
        st = sal_strmap_put(&im->next_suffix, base, k + 1);
    }
    if (st == SAL_OK) st = sal_strmap_put(&im->node_names, name, (int)idx);
    if (st != SAL_OK) {
        sal_free(name);
        return sal_wrap(st, "%s", im->path);
    }
    *out = name;
    return SAL_OK;
}

static sal_status import_node(importer *im, const NodeProto *np, size_t idx) {
    const char *op = str_or(np->op_type, "");
    char *node = NULL;
    SAL_TRY(unique_node_name(im, np, idx, &node));
    sal_status st = SAL_OK;
    sal_attr *attrs = NULL;
    size_t nattr = 0;
    if (!*op) {
        st = sal_fail(SAL_ERR_FORMAT, "%s: node '%s' has no op_type", im->path, node);
        goto done;
    }
    if (!default_domain(np->domain)) {
        st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (%s) belongs to domain '%s'; only the default ONNX domain is supported",
                      im->path, node, op, np->domain);
        goto done;
    }
    if (!strcmp(op, "Constant")) {
        st = constant_node(im, np, node);
        goto done;
    }
    if (np->n_input > INT_MAX || np->n_output > INT_MAX || np->n_attribute > INT_MAX) {
        st = sal_fail(SAL_ERR_FORMAT, "%s: node '%s' (%s) has too many inputs, outputs or attributes", im->path, node, op);
        goto done;
    }
    attrs = sal_calloc(np->n_attribute, sizeof *attrs);
    if (!attrs) {
        st = sal_fail(SAL_ERR_NOMEM, "%s: out of memory reading node '%s'", im->path, node);
        goto done;
    }
    for (; nattr < np->n_attribute; nattr++) {
        if ((st = attr_from_proto(im, np->attribute[nattr], node, op, &attrs[nattr])) != SAL_OK) goto done;
        for (size_t k = 0; k < nattr; k++)
            if (!strcmp(attrs[k].name, attrs[nattr].name)) {
                st = sal_fail(SAL_ERR_FORMAT, "%s: node '%s' (%s) has attribute '%s' twice", im->path, node, op,
                              attrs[k].name);
                nattr++;
                goto done;
            }
    }
    /* add_node takes the attributes over, on failure too */
    st = sal_graph_add_node(im->g, op, node, (int)np->n_input, (const char *const *)np->input, (int)np->n_output,
                            (const char *const *)np->output, (int)nattr, attrs);
    nattr = 0;
    if (st != SAL_OK && !strstr(sal_last_error(), im->path)) st = sal_wrap(st, "%s", im->path);
done:
    for (size_t k = 0; k < nattr; k++) sal_attr_clear(&attrs[k]);
    sal_free(attrs);
    sal_free(node);
    return st;
}

/* The op a decomposition stands for (onnx_fuse.c), in place of its last node and named after it. */
static sal_status import_fused(importer *im, const NodeProto *np, size_t idx, const sal_onnx_fusion *f) {
    char *node = NULL;
    SAL_TRY(unique_node_name(im, np, idx, &node));
    bool ln = f->kind == SAL_FUSE_LAYERNORM;
    sal_attr eps = sal_attr_make_float("epsilon", f->eps);
    sal_status st = sal_graph_add_node(im->g, ln ? "LayerNormalization" : "Gelu", node, ln ? 3 : 1, f->in, 1,
                                       (const char *const *)np->output, ln, &eps);
    if (!ln) sal_attr_clear(&eps);
    sal_free(node);
    return st == SAL_OK || strstr(sal_last_error(), im->path) ? st : sal_wrap(st, "%s", im->path);
}

/* Elem type of a graph input or output; 0 when the file does not say. Non-tensor types fail. */
static sal_status value_elem_type(const importer *im, const ValueInfoProto *vi, const char *role, int *et) {
    *et = 0;
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET) return SAL_OK;
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
        const char *kind = tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE   ? "a sequence"
                           : tp->value_case == ONNX__TYPE_PROTO__VALUE_MAP_TYPE      ? "a map"
                           : tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE ? "an optional"
                                                                                      : "a sparse tensor";
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: %s '%s' is %s; only tensors are supported", im->path, role, vi->name,
                        kind);
    }
    if (tp->tensor_type && tp->tensor_type->has_elem_type) *et = tp->tensor_type->elem_type;
    return SAL_OK;
}

/* Element types of graph inputs and outputs; sal_dtype shares ONNX's numbers for them. */
static bool io_type_ok(int et) {
    return et == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || et == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
           et == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
}

static sal_status import_input(importer *im, const ValueInfoProto *vi) {
    const char *name = vi->name;
    int et;
    SAL_TRY(value_elem_type(im, vi, "input", &et));
    /* int64 inputs carry indices and shapes (Gather, Reshape), bool ones masks; the rest is float */
    if (!io_type_ok(et))
        return sal_fail(SAL_ERR_UNSUPPORTED,
                        "%s: input '%s' has data type %s; only FLOAT, INT64 and BOOL inputs are supported", im->path,
                        name, et ? sal_onnx_dtype_name(et) : "(none given)");
    const Onnx__TensorShapeProto *sh = vi->type->tensor_type->shape;
    if (!sh)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: input '%s' declares no shape; inputs of unknown rank are not supported",
                        im->path, name);
    if (sh->n_dim > SAL_MAX_DIMS)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: input '%s' has rank %zu (at most %d supported)", im->path, name,
                        sh->n_dim, SAL_MAX_DIMS);
    int64_t dim[SAL_MAX_DIMS];
    for (size_t i = 0; i < sh->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
        if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            dim[i] = -1; /* symbolic or unknown: fixed only when fed */
        } else if (d->dim_value < 0) {
            return sal_fail(SAL_ERR_FORMAT, "%s: input '%s' has negative dimension %lld at axis %zu", im->path, name,
                            (long long)d->dim_value, i);
        } else {
            dim[i] = d->dim_value;
        }
    }
    /* a declared shape no tensor could have (dynamic axes counted as 1) can never be fed */
    int64_t fixed[SAL_MAX_DIMS], numel;
    for (size_t i = 0; i < sh->n_dim; i++) fixed[i] = dim[i] < 0 ? 1 : dim[i];
    if (!sal_shape_numel((int)sh->n_dim, fixed, &numel)) {
        char sb[200];
        return sal_fail(SAL_ERR_FORMAT, "%s: input '%s' has shape %s, whose size overflows", im->path, name,
                        sal_shape_str((int)sh->n_dim, dim, sb, sizeof sb));
    }
    sal_status st = sal_graph_add_input(im->g, name, (sal_dtype)et, (int)sh->n_dim, dim);
    if (st != SAL_OK && !strstr(sal_last_error(), im->path)) st = sal_wrap(st, "%s", im->path);
    return st;
}

/* Keeps the declared type and shape of an output that a node computes (graph.h): the graph has no
 * types of its own, and the writer must declare them again. Nothing is kept without a full shape. */
static void record_output_type(sal_model *g, const ValueInfoProto *vi, int et) {
    int v = sal_graph_find(g, vi->name);
    const Onnx__TensorShapeProto *sh = vi->type && vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
                                               vi->type->tensor_type
                                           ? vi->type->tensor_type->shape
                                           : NULL;
    if (v < 0 || g->val[v].kind != SAL_VAL_NODE || !et || !sh || sh->n_dim > SAL_MAX_DIMS) return;
    sal_tensor *t = &g->val[v].t;
    t->dtype = (sal_dtype)et;
    t->ndim = (int)sh->n_dim;
    for (size_t i = 0; i < sh->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
        bool fixed = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value >= 0;
        t->dim[i] = fixed ? d->dim_value : -1;
    }
}

static sal_status check_opsets(const importer *im, const Onnx__ModelProto *mp, int64_t *opset) {
    *opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (default_domain(o->domain)) {
            *opset = o->has_version ? o->version : -1;
            continue;
        }
        /* a foreign domain matters only when a node uses it; exporters list ai.onnx.ml needlessly */
        const Onnx__GraphProto *gp = mp->graph;
        for (size_t k = 0; k < gp->n_node; k++)
            if (gp->node[k]->domain && !strcmp(gp->node[k]->domain, o->domain))
                return sal_fail(SAL_ERR_UNSUPPORTED,
                                "%s: operator set domain '%s' (used by node '%s') is not supported; only the default "
                                "ONNX domain is",
                                im->path, o->domain, str_or(gp->node[k]->name, str_or(gp->node[k]->op_type, "?")));
    }
    if (*opset < 0)
        return sal_fail(SAL_ERR_FORMAT, "%s: the model imports no version of the default ONNX operator set", im->path);
    if (*opset < OPSET_MIN || *opset > OPSET_MAX)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: opset %lld is not supported (opsets %d to %d are)", im->path,
                        (long long)*opset, OPSET_MIN, OPSET_MAX);
    return SAL_OK;
}

/* ---- limits checked before decoding ---- */

/* protobuf-c decodes nested messages by recursion with no depth limit, so a small file nesting
 * TypeProto in TypeProto (or graphs in attributes) thousands deep would overflow the stack. This
 * walk of the wire format, itself bounded, measures the nesting first. What it cannot parse it
 * leaves for protobuf-c to refuse. */
#define PB_MAX_DEPTH 64

static bool pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t x = 0;
    for (int sh = 0; sh < 64 && *p < end; sh += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Deepest message nesting in p[0..len) decoded as d at depth `depth`; stops past PB_MAX_DEPTH. */
static int pb_depth(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, int depth) {
    const uint8_t *end = p + len;
    int worst = depth;
    while (p < end && worst <= PB_MAX_DEPTH) {
        uint64_t key, v;
        if (!pb_varint(&p, end, &key)) break;
        switch (key & 7) {
        case 0:
            if (!pb_varint(&p, end, &v)) return worst;
            break;
        case 1:
            if (end - p < 8) return worst;
            p += 8;
            break;
        case 5:
            if (end - p < 4) return worst;
            p += 4;
            break;
        case 2: {
            if (!pb_varint(&p, end, &v) || v > (uint64_t)(end - p)) return worst;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int k = pb_depth(f->descriptor, p, (size_t)v, depth + 1);
                if (k > worst) worst = k;
            }
            p += v;
            break;
        }
        default: /* groups and invalid wire types: protobuf-c refuses them */
            return worst;
        }
    }
    return worst;
}

/* Rough peak memory of a load beyond the serialized bytes: protobuf-c's decoded copy of every
 * tensor, then the model's own. */
#define LOAD_FACTOR 2

/* NaN has no place in a constant; an infinite weight makes every attribution through it
 * meaningless. Infinite non-parameter constants (clip bounds, masks) are left alone. */
static sal_status check_constants_finite(const sal_model *g) {
    for (int v = 0; v < g->nval; v++) {
        const sal_value *x = &g->val[v];
        if (x->kind != SAL_VAL_CONST || x->t.dtype != SAL_F32) continue;
        const float *p = sal_f32(&x->t);
        for (int64_t i = 0, n = sal_tensor_numel(&x->t); i < n; i++)
            if (isnan(p[i]) || (x->param && !isfinite(p[i])))
                return sal_fail(SAL_ERR_NUMERIC, "%s: %s '%s' has a non-finite value (%g) at flat index %lld", g->path,
                                x->param ? "weight" : "constant", x->name, (double)p[i], (long long)i);
    }
    return SAL_OK;
}

static sal_status import_model(importer *im, const Onnx__ModelProto *mp) {
    const char *path = im->path;
    if (!mp->has_ir_version || !mp->graph)
        return sal_fail(SAL_ERR_FORMAT, "%s: not a valid ONNX model (it has no %s)", path,
                        !mp->has_ir_version ? "ir_version" : "graph");
    if (mp->ir_version < IR_MIN || mp->ir_version > IR_MAX)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: ONNX IR version %lld is not supported (%d to %d are)", path,
                        (long long)mp->ir_version, IR_MIN, IR_MAX);
    int64_t opset;
    SAL_TRY(check_opsets(im, mp, &opset));
    const Onnx__GraphProto *gp = mp->graph;
    if (gp->n_sparse_initializer)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: sparse initializers (such as '%s') are not supported", path,
                        gp->sparse_initializer[0]->values ? str_or(gp->sparse_initializer[0]->values->name, "?") : "?");
    SAL_TRY(sal_graph_create(path, &im->g));
    sal_model *g = im->g;
    g->opset = opset;
    g->ir_version = mp->ir_version;
    if (mp->producer_name && *mp->producer_name) {
        char *p = sal_strdup(mp->producer_name);
        if (!p) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path);
        sal_free(g->producer);
        g->producer = p;
    }
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const TensorProto *tp = gp->initializer[i];
        const char *name = str_or(tp->name, "");
        if (!*name) return sal_fail(SAL_ERR_FORMAT, "%s: initializer %zu has no name", path, i);
        char what[300];
        snprintf(what, sizeof what, "initializer '%.200s'", name);
        sal_tensor t;
        SAL_TRY(tensor_from_proto(tp, path, what, &t));
        sal_status st = sal_graph_add_const(g, name, &t);
        if (st != SAL_OK) return strstr(sal_last_error(), path) ? st : sal_wrap(st, "%s", path);
    }
    for (size_t i = 0; i < gp->n_input; i++) {
        const ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !*vi->name) return sal_fail(SAL_ERR_FORMAT, "%s: graph input %zu has no name", path, i);
        int v = sal_graph_find(g, vi->name);
        /* older exporters list every initializer among the inputs too: those stay constants */
        if (v >= 0 && g->val[v].kind == SAL_VAL_CONST) continue;
        SAL_TRY(import_input(im, vi));
    }
    /* constants first: the recognition of decomposed ops reads their values */
    for (size_t i = 0; i < gp->n_node; i++)
        if (gp->node[i]->op_type && !strcmp(gp->node[i]->op_type, "Constant")) SAL_TRY(import_node(im, gp->node[i], i));
    sal_onnx_fusion *fz = sal_calloc(gp->n_node + 1, sizeof *fz);
    if (!fz) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path);
    sal_status st = sal_onnx_find_fusions(gp, g, fz);
    for (size_t i = 0; i < gp->n_node && st == SAL_OK; i++) {
        const NodeProto *np = gp->node[i];
        if ((np->op_type && !strcmp(np->op_type, "Constant")) || fz[i].kind == SAL_FUSE_SKIP) continue;
        st = fz[i].kind == SAL_FUSE_NONE ? import_node(im, np, i) : import_fused(im, np, i, &fz[i]);
    }
    sal_free(fz);
    SAL_TRY(st);
    for (size_t i = 0; i < gp->n_output; i++) {
        const ValueInfoProto *vi = gp->output[i];
        if (!vi->name || !*vi->name) return sal_fail(SAL_ERR_FORMAT, "%s: graph output %zu has no name", path, i);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(gp->output[k]->name, vi->name))
                return sal_fail(SAL_ERR_FORMAT, "%s: graph output '%s' is listed twice", path, vi->name);
        int et;
        SAL_TRY(value_elem_type(im, vi, "output", &et));
        if (et && !io_type_ok(et))
            return sal_fail(SAL_ERR_UNSUPPORTED,
                            "%s: output '%s' has data type %s; only FLOAT, INT64 and BOOL outputs are supported", path,
                            vi->name, sal_onnx_dtype_name(et));
        sal_status st = sal_graph_add_output(g, vi->name);
        if (st != SAL_OK) return sal_wrap(st, "%s", path);
        record_output_type(g, vi, et);
    }
    st = sal_graph_finalize(g);
    if (st != SAL_OK && !strstr(sal_last_error(), path)) st = sal_wrap(st, "%s", path);
    if (st == SAL_OK) st = check_constants_finite(g);
    return st;
}

sal_status sal_onnx_load_buffer(const unsigned char *data, size_t len, const char *name, sal_model **out) {
    *out = NULL;
    char what[300];
    snprintf(what, sizeof what, "%.200s: loading this model (%zu bytes of ONNX)", name, len);
    SAL_TRY(sal_budget_check(len > SIZE_MAX / LOAD_FACTOR ? SIZE_MAX : len * LOAD_FACTOR, what));
    if (pb_depth(&onnx__model_proto__descriptor, data, len, 1) > PB_MAX_DEPTH)
        return sal_fail(SAL_ERR_FORMAT, "%s: messages nested more than %d deep; refusing to decode", name,
                        PB_MAX_DEPTH);
    pb_state ps = {0};
    ProtobufCAllocator al = {.alloc = pb_alloc, .free = pb_free, .allocator_data = &ps};
    Onnx__ModelProto *mp = onnx__model_proto__unpack(&al, len, data);
    if (!mp)
        return ps.oom ? sal_fail(SAL_ERR_NOMEM, "%s: out of memory decoding the model", name)
                      : sal_fail(SAL_ERR_FORMAT, "%s: not a valid ONNX model (protobuf decoding failed)", name);
    importer im = {.path = name};
    sal_status st = import_model(&im, mp);
    onnx__model_proto__free_unpacked(mp, &al);
    sal_strmap_free(&im.node_names);
    sal_strmap_free(&im.next_suffix);
    if (st != SAL_OK) {
        sal_model_free(im.g);
        return st;
    }
    *out = im.g;
    return SAL_OK;
}

sal_status sal_model_load(const char *path, sal_model **out) {
    if (!out) return sal_fail(SAL_ERR_ARG, "sal_model_load: out is NULL");
    *out = NULL;
    if (!path) return sal_fail(SAL_ERR_ARG, "sal_model_load: path is NULL");
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        /* the file's bytes, then what decoding them takes (see sal_onnx_load_buffer) */
        uint64_t need = (uint64_t)sb.st_size * (1 + LOAD_FACTOR);
        char what[300];
        snprintf(what, sizeof what, "%.200s: loading this model (%lld bytes of ONNX)", path, (long long)sb.st_size);
        SAL_TRY(sal_budget_check(need > SIZE_MAX ? SIZE_MAX : (size_t)need, what));
    }
    unsigned char *data;
    size_t len;
    SAL_TRY(sal_read_file(path, SAL_ONNX_MAX_BYTES, &data, &len));
    sal_status st = sal_onnx_load_buffer(data, len, path, out);
    sal_free(data);
    return st;
}

/* ---- export ---- */

/* Every allocation of the ModelProto under construction, freed together at the end. */
typedef struct {
    void **p;
    size_t n, cap;
} arena;

static void *ar_new(arena *a, size_t bytes) {
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 64;
        void **np = sal_realloc(a->p, ncap * sizeof *np);
        if (!np) return NULL;
        a->p = np;
        a->cap = ncap;
    }
    void *x = sal_calloc(1, bytes);
    if (x) a->p[a->n++] = x;
    return x;
}

static void ar_free(arena *a) {
    for (size_t i = 0; i < a->n; i++) sal_free(a->p[i]);
    sal_free(a->p);
    memset(a, 0, sizeof *a);
}

static char *ar_str(arena *a, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = ar_new(a, n);
    if (d) memcpy(d, s, n);
    return d;
}

static bool host_is_le(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* TensorProto with raw little-endian data; borrows the tensor's buffer on little-endian hosts. */
static TensorProto *tensor_to_proto(arena *a, const sal_tensor *t, const char *name) {
    TensorProto *tp = ar_new(a, sizeof *tp);
    if (!tp) return NULL;
    onnx__tensor_proto__init(tp);
    if (name && !(tp->name = ar_str(a, name))) return NULL;
    tp->n_dims = (size_t)t->ndim;
    if (!(tp->dims = ar_new(a, (size_t)(t->ndim + 1) * sizeof *tp->dims))) return NULL;
    for (int i = 0; i < t->ndim; i++) tp->dims[i] = t->dim[i];
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype; /* sal_dtype uses ONNX's numbers */
    size_t esz = sal_dtype_size(t->dtype), n = (size_t)sal_tensor_numel(t), bytes = n * esz;
    tp->has_raw_data = 1;
    tp->raw_data.len = bytes;
    if (host_is_le() || !bytes) {
        tp->raw_data.data = t->data;
        return tp;
    }
    uint8_t *b = ar_new(a, bytes);
    if (!b) return NULL;
    const uint8_t *s = t->data;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < esz; k++) b[i * esz + k] = s[i * esz + esz - 1 - k];
    tp->raw_data.data = b;
    return tp;
}

static AttributeProto *attr_to_proto(arena *a, const sal_attr *at) {
    AttributeProto *ap = ar_new(a, sizeof *ap);
    if (!ap) return NULL;
    onnx__attribute_proto__init(ap);
    if (!(ap->name = ar_str(a, at->name))) return NULL;
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)at->type;
    switch (at->type) {
    case SAL_ATTR_FLOAT: ap->has_f = 1, ap->f = at->f; break;
    case SAL_ATTR_INT: ap->has_i = 1, ap->i = at->i; break;
    case SAL_ATTR_STRING:
        ap->has_s = 1;
        ap->s.len = at->s ? strlen(at->s) : 0;
        ap->s.data = (uint8_t *)(at->s ? at->s : "");
        break;
    case SAL_ATTR_TENSOR:
        if (!(ap->t = tensor_to_proto(a, &at->t, NULL))) return NULL;
        break;
    case SAL_ATTR_FLOATS: ap->n_floats = (size_t)at->n, ap->floats = at->floats; break;
    case SAL_ATTR_INTS: ap->n_ints = (size_t)at->n, ap->ints = at->ints; break;
    }
    return ap;
}

/* ValueInfo with a tensor type; dims < 0 become dim_param names (dparam[i]). */
static ValueInfoProto *value_info(arena *a, const char *name, sal_dtype dt, int ndim, const int64_t *dim,
                                  const char *const *dparam) {
    ValueInfoProto *vi = ar_new(a, sizeof *vi);
    Onnx__TypeProto *tp = ar_new(a, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ar_new(a, sizeof *tt);
    Onnx__TensorShapeProto *sh = ar_new(a, sizeof *sh);
    if (!vi || !tp || !tt || !sh) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    if (!(vi->name = ar_str(a, name))) return NULL;
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = (int32_t)dt;
    if (ndim < 0) return vi; /* shape unknown */
    tt->shape = sh;
    sh->n_dim = (size_t)ndim;
    if (!(sh->dim = ar_new(a, (size_t)(ndim + 1) * sizeof *sh->dim))) return NULL;
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = ar_new(a, sizeof *d);
        if (!d) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (dim[i] >= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dim[i];
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            if (!(d->dim_param = ar_str(a, dparam[i]))) return NULL;
        }
        sh->dim[i] = d;
    }
    return vi;
}

/* Name of dynamic axis i of a value: "N" for the batch axis, "<value>_d<i>" for others. */
static const char *dyn_name(arena *a, const char *value, int i) {
    if (i == 0) return "N";
    size_t n = strlen(value) + 24;
    char *s = ar_new(a, n);
    if (s) snprintf(s, n, "%s_d%d", value, i);
    return s;
}

/* Whether output o still needs its type found out: nodes of programmatic graphs declare none. */
static bool needs_probe(const sal_model *m, int o) {
    const sal_value *v = &m->val[m->output[o]];
    return v->kind == SAL_VAL_NODE && !v->t.dtype;
}

/* ONNX requires a type and shape on every graph output. Those the graph does not know (see
 * needs_probe) come from running it on zeros, with every dynamic input axis set to 1 and then 2
 * (the batch axis) or 64 and then 128 (other axes, large enough for convolution windows): output
 * axes that change with them are dynamic. Integer inputs (shapes, axes, indices) may decide output
 * shapes by their values, so with any of them only rank and type are trusted. Returns false (no
 * shapes) when the model cannot run on such inputs. */
static bool probe_outputs(const sal_model *m, sal_dtype *dt, int *ndim, int64_t (*dim)[SAL_MAX_DIMS]) {
    bool any = false, int_input = false;
    for (int o = 0; o < m->noutput; o++) any |= needs_probe(m, o);
    if (!any) return true;
    sal_session *s = NULL;
    sal_tensor *in = sal_calloc((size_t)m->ninput + 1, sizeof *in);
    bool ok = in && sal_session_new(m, &s) == SAL_OK;
    for (int pass = 1; ok && pass <= 2; pass++) {
        for (int i = 0; ok && i < m->ninput; i++) {
            const sal_tensor *d = &m->val[m->input[i]].t;
            int64_t shape[SAL_MAX_DIMS];
            for (int k = 0; k < d->ndim; k++) shape[k] = d->dim[k] >= 0 ? d->dim[k] : k == 0 ? pass : 64 * pass;
            int_input |= d->dtype != SAL_F32;
            ok = sal_tensor_alloc(&in[i], d->dtype, d->ndim, shape) == SAL_OK;
        }
        ok = ok && sal_exec_forward(s, in) == SAL_OK;
        for (int o = 0; ok && o < m->noutput; o++) {
            const sal_tensor *y = &s->act[m->output[o]];
            if (pass == 1) {
                dt[o] = y->dtype;
                ndim[o] = y->ndim;
                memcpy(dim[o], y->dim, sizeof dim[o]);
            } else if (y->ndim != ndim[o] || y->dtype != dt[o]) {
                ok = false;
            } else {
                for (int k = 0; k < y->ndim; k++)
                    if (y->dim[k] != dim[o][k] || int_input) dim[o][k] = -1;
            }
        }
    }
    for (int i = 0; in && i < m->ninput; i++) sal_tensor_free(&in[i]);
    sal_free(in);
    sal_session_free(s);
    return ok;
}

/* protobuf-c output straight into the file: no second copy of the weights in memory */
typedef struct {
    ProtobufCBuffer base;
    FILE *fp;
    bool err;
} file_buffer;

static void fb_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
    file_buffer *f = (file_buffer *)b;
    if (!f->err && len && fwrite(data, 1, len, f->fp) != len) f->err = true;
}

/* ---- LayerNormalization and Gelu in files of an opset that lacks them ----
 * The importer loads PyTorch's opset-13 decompositions as these ops (onnx_fuse.c); a model saved
 * at such an opset gets them back as the same nodes, so that other tools read the file. */

typedef struct {
    arena *a;
    const sal_model *m;
    Onnx__GraphProto *gp;
} writer;

/* How many nodes and scalar initializers node n becomes at the file's opset (1 and 0: as it is). */
static int decomposed(const sal_node *n, int64_t opset, int *nconst) {
    *nconst = 0;
    if (sal_node_is(n, SAL_OP_LayerNormalization) && opset < 17 && n->nout == 1 && sal_attr_int(n, "axis", -1) == -1) {
        *nconst = 2;
        return n->nin > 2 && n->in[2] >= 0 ? 9 : 8;
    }
    if (sal_node_is(n, SAL_OP_Gelu) && opset < 20 && !strcmp(sal_attr_string(n, "approximate", "none"), "none")) {
        *nconst = 3;
        return 5;
    }
    return 1;
}

/* A name no value of the model has: the node's name and suffix. */
static const char *fresh(writer *w, const sal_node *n, const char *suffix) {
    char buf[600];
    sal_fresh_name(w->m, NULL, n->name, suffix, buf, sizeof buf);
    return ar_str(w->a, buf);
}

static const char *scalar_init(writer *w, const sal_node *n, const char *suffix, float v) {
    const char *name = fresh(w, n, suffix);
    sal_tensor *t = ar_new(w->a, sizeof *t);
    float *d = ar_new(w->a, sizeof *d);
    if (!name || !t || !d) return NULL;
    *d = v;
    t->dtype = SAL_F32;
    t->data = d;
    TensorProto *tp = tensor_to_proto(w->a, t, name);
    if (!tp) return NULL;
    w->gp->initializer[w->gp->n_initializer++] = tp;
    return name;
}

static bool add_node(writer *w, const char *op, const sal_node *n, const char *suffix, const char *in0, const char *in1,
                     const char *out, bool mean_last) {
    NodeProto *np = ar_new(w->a, sizeof *np);
    if (!np) return false;
    onnx__node_proto__init(np);
    np->op_type = (char *)op;
    np->input = ar_new(w->a, 2 * sizeof *np->input);
    np->output = ar_new(w->a, sizeof *np->output);
    if (!np->input || !np->output || !(np->name = (char *)fresh(w, n, suffix))) return false;
    np->input[0] = (char *)in0;
    np->input[1] = (char *)in1;
    np->n_input = in1 ? 2 : 1;
    np->output[0] = (char *)out;
    np->n_output = 1;
    if (mean_last) { /* ReduceMean over the last axis: axes as an attribute before opset 18 */
        static int64_t last = -1;
        static const sal_attr axes = {.name = "axes", .type = SAL_ATTR_INTS, .n = 1, .ints = &last};
        np->attribute = ar_new(w->a, sizeof *np->attribute);
        if (!np->attribute || !(np->attribute[0] = attr_to_proto(w->a, &axes))) return false;
        np->n_attribute = 1;
    }
    w->gp->node[w->gp->n_node++] = np;
    return true;
}

/* The decomposition of node n (decomposed() > 1), with PyTorch's opset-13 nodes. */
static bool write_decomposed(writer *w, const sal_node *n) {
    const char *x = w->m->val[n->in[0]].name, *y = w->m->val[n->out[0]].name;
#define V(S) fresh(w, n, S)
    if (sal_node_is(n, SAL_OP_Gelu)) { /* x (erf(x / sqrt 2) + 1) / 2 */
        const char *r2 = scalar_init(w, n, "/sqrt2", (float)M_SQRT2), *one = scalar_init(w, n, "/one", 1.0f);
        const char *half = scalar_init(w, n, "/half", 0.5f), *a = V("/Div_out"), *e = V("/Erf_out");
        const char *c = V("/Add_out"), *d = V("/Mul_out");
        return r2 && one && half && a && e && c && d && add_node(w, "Div", n, "/Div", x, r2, a, false) &&
               add_node(w, "Erf", n, "/Erf", a, NULL, e, false) && add_node(w, "Add", n, "/Add", e, one, c, false) &&
               add_node(w, "Mul", n, "/Mul", x, c, d, false) && add_node(w, "Mul", n, "/Mul_1", d, half, y, false);
    }
    bool bias = n->nin > 2 && n->in[2] >= 0;
    const char *two = scalar_init(w, n, "/two", 2.0f);
    const char *eps = scalar_init(w, n, "/eps", sal_attr_float(n, "epsilon", 1e-5f));
    const char *mean = V("/ReduceMean_out"), *d = V("/Sub_out"), *sq = V("/Pow_out"), *var = V("/ReduceMean_1_out");
    const char *ve = V("/Add_out"), *sd = V("/Sqrt_out"), *nr = V("/Div_out"), *sc = bias ? V("/Mul_out") : y;
#undef V
    return two && eps && mean && d && sq && var && ve && sd && nr && sc &&
           add_node(w, "ReduceMean", n, "/ReduceMean", x, NULL, mean, true) &&
           add_node(w, "Sub", n, "/Sub", x, mean, d, false) && add_node(w, "Pow", n, "/Pow", d, two, sq, false) &&
           add_node(w, "ReduceMean", n, "/ReduceMean_1", sq, NULL, var, true) &&
           add_node(w, "Add", n, "/Add", var, eps, ve, false) && add_node(w, "Sqrt", n, "/Sqrt", ve, NULL, sd, false) &&
           add_node(w, "Div", n, "/Div", d, sd, nr, false) &&
           add_node(w, "Mul", n, "/Mul", nr, w->m->val[n->in[1]].name, sc, false) &&
           (!bias || add_node(w, "Add", n, "/Add_1", sc, w->m->val[n->in[2]].name, y, false));
}

/* Fills mp; false when out of memory. */
static bool build_model(arena *a, const sal_model *m, Onnx__ModelProto *mp, const sal_dtype *odt, const int *ondim,
                        int64_t (*odim)[SAL_MAX_DIMS]) {
    onnx__model_proto__init(mp);
    mp->has_ir_version = 1;
    mp->ir_version = EXPORT_IR;
    mp->producer_name = "saliency";
    mp->producer_version = SAL_VERSION;
    Onnx__OperatorSetIdProto *os = ar_new(a, sizeof *os);
    Onnx__OperatorSetIdProto **osl = ar_new(a, sizeof *osl);
    Onnx__GraphProto *gp = ar_new(a, sizeof *gp);
    if (!os || !osl || !gp) return false;
    onnx__operator_set_id_proto__init(os);
    os->domain = "";
    os->has_version = 1;
    /* a programmatic graph may carry no meaningful opset; 13 covers every op we implement */
    os->version = m->opset >= OPSET_MIN && m->opset <= OPSET_MAX ? m->opset : 13;
    osl[0] = os;
    mp->n_opset_import = 1;
    mp->opset_import = osl;
    onnx__graph_proto__init(gp);
    mp->graph = gp;
    gp->name = "saliency";

    /* inputs */
    gp->input = ar_new(a, (size_t)(m->ninput + 1) * sizeof *gp->input);
    if (!gp->input) return false;
    for (int i = 0; i < m->ninput; i++) {
        const sal_value *v = &m->val[m->input[i]];
        const char *dp[SAL_MAX_DIMS];
        for (int k = 0; k < v->t.ndim; k++)
            if (v->t.dim[k] < 0 && !(dp[k] = dyn_name(a, v->name, k))) return false;
        if (!(gp->input[i] = value_info(a, v->name, v->t.dtype, v->t.ndim, v->t.dim, dp))) return false;
    }
    gp->n_input = (size_t)m->ninput;

    /* initializers: the constants something still reads (folding leaves unread ones behind) */
    bool *used = ar_new(a, (size_t)m->nval + 1);
    if (!used) return false;
    for (int i = 0; i < m->nnode; i++)
        for (int k = 0; k < m->node[i].nin; k++)
            if (m->node[i].in[k] >= 0) used[m->node[i].in[k]] = true;
    for (int i = 0; i < m->noutput; i++) used[m->output[i]] = true;
    size_t ninit = 0, nnode = 0;
    for (int v = 0; v < m->nval; v++) ninit += used[v] && m->val[v].kind == SAL_VAL_CONST;
    for (int i = 0; i < m->nnode; i++) {
        int nc;
        nnode += (size_t)decomposed(&m->node[i], os->version, &nc);
        ninit += (size_t)nc;
    }
    if (!(gp->initializer = ar_new(a, (ninit + 1) * sizeof *gp->initializer))) return false;
    for (int v = 0; v < m->nval; v++) {
        if (!used[v] || m->val[v].kind != SAL_VAL_CONST) continue;
        if (!(gp->initializer[gp->n_initializer++] = tensor_to_proto(a, &m->val[v].t, m->val[v].name))) return false;
    }

    /* nodes, already in topological order */
    if (!(gp->node = ar_new(a, (nnode + 1) * sizeof *gp->node))) return false;
    writer w = {a, m, gp};
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        int nc;
        if (decomposed(n, os->version, &nc) > 1) {
            if (!write_decomposed(&w, n)) return false;
            continue;
        }
        NodeProto *np = ar_new(a, sizeof *np);
        if (!np) return false;
        onnx__node_proto__init(np);
        np->name = n->name;
        np->op_type = n->op_type;
        np->input = ar_new(a, (size_t)(n->nin + 1) * sizeof *np->input);
        np->output = ar_new(a, (size_t)(n->nout + 1) * sizeof *np->output);
        np->attribute = ar_new(a, (size_t)(n->nattr + 1) * sizeof *np->attribute);
        if (!np->input || !np->output || !np->attribute) return false;
        for (int k = 0; k < n->nin; k++) np->input[k] = n->in[k] >= 0 ? m->val[n->in[k]].name : "";
        for (int k = 0; k < n->nout; k++) np->output[k] = n->out[k] >= 0 ? m->val[n->out[k]].name : "";
        np->n_input = (size_t)n->nin;
        np->n_output = (size_t)n->nout;
        for (int k = 0; k < n->nattr; k++)
            if (!(np->attribute[k] = attr_to_proto(a, &n->attr[k]))) return false;
        np->n_attribute = (size_t)n->nattr;
        gp->node[gp->n_node++] = np;
    }

    /* outputs */
    if (!(gp->output = ar_new(a, (size_t)(m->noutput + 1) * sizeof *gp->output))) return false;
    for (int i = 0; i < m->noutput; i++) {
        const sal_value *v = &m->val[m->output[i]];
        const char *dp[SAL_MAX_DIMS];
        /* constants and inputs know their shape, outputs read from a file their declaration */
        bool known = !needs_probe(m, i);
        sal_dtype dt = known ? v->t.dtype : ondim ? odt[i] : SAL_F32;
        int nd = known ? v->t.ndim : ondim ? ondim[i] : -1;
        const int64_t *dim = known ? v->t.dim : ondim ? odim[i] : NULL;
        for (int k = 0; k < nd; k++)
            if (dim[k] < 0 && !(dp[k] = dyn_name(a, v->name, k))) return false;
        if (!(gp->output[i] = value_info(a, v->name, dt, nd, dim, dp))) return false;
    }
    gp->n_output = (size_t)m->noutput;
    return true;
}

sal_status sal_model_save(const sal_model *m, const char *path) {
    if (!m || !path) return sal_fail(SAL_ERR_ARG, "sal_model_save: %s is NULL", m ? "path" : "model");
    if (!m->finalized) return sal_fail(SAL_ERR_ARG, "sal_model_save: %s: the model is not finalized", path);
    sal_status st = SAL_OK;
    arena a = {0};
    sal_dtype *odt = sal_calloc((size_t)m->noutput + 1, sizeof *odt);
    int *ondim = sal_calloc((size_t)m->noutput + 1, sizeof *ondim);
    int64_t(*odim)[SAL_MAX_DIMS] = sal_calloc((size_t)m->noutput + 1, sizeof *odim);
    if (!odt || !ondim || !odim) {
        st = sal_fail(SAL_ERR_NOMEM, "%s: out of memory saving the model", path);
        goto done;
    }
    bool shapes = probe_outputs(m, odt, ondim, odim);
    Onnx__ModelProto mp;
    if (!build_model(&a, m, &mp, odt, shapes ? ondim : NULL, odim)) {
        st = sal_fail(SAL_ERR_NOMEM, "%s: out of memory saving the model", path);
        goto done;
    }
    sal_outfile f;
    if ((st = sal_outfile_open(&f, path)) != SAL_OK) goto done;
    file_buffer fb = {.base = {.append = fb_append}, .fp = f.fp};
    protobuf_c_message_pack_to_buffer(&mp.base, &fb.base);
    if (fb.err) {
        sal_outfile_abort(&f);
        st = sal_fail(SAL_ERR_IO, "%s: write failed", path);
        goto done;
    }
    st = sal_outfile_commit(&f);
done:
    ar_free(&a);
    sal_free(odt);
    sal_free(ondim);
    sal_free(odim);
    return st;
}
