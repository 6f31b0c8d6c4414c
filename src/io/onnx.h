/* Internal ONNX helpers beyond the public sal_model_load / sal_model_save, shared with tests. */
#ifndef SAL_ONNX_H
#define SAL_ONNX_H

#include "graph/graph.h"

/* Largest .onnx or .pb file we read (protobuf itself tops out near 2 GiB). */
#define SAL_ONNX_MAX_BYTES ((size_t)4 << 30)

/* Builds a model from a serialized ModelProto held in memory; `name` stands for the file in
 * messages. sal_model_load is this after reading the file. */
sal_status sal_onnx_load_buffer(const unsigned char *data, size_t len, const char *name,
                                sal_model **out /* OUT */);

/* Reads a serialized TensorProto (the input_N.pb / output_N.pb files of ONNX test data) with the
 * importer's rules for initializers: FLOAT and INT64 as they are, INT32 widened to int64, DOUBLE
 * narrowed to float; any other type fails with SAL_ERR_UNSUPPORTED. */
sal_status sal_onnx_read_tensor(const char *path, sal_tensor *out /* OUT */);

/* ONNX TensorProto.DataType name ("FLOAT", "BOOL", ...), or "type N" for unknown values. */
const char *sal_onnx_dtype_name(int data_type);

/* ---- decomposed LayerNorm and GELU, recognized at import (onnx_fuse.c) ---- */
typedef enum { SAL_FUSE_NONE, SAL_FUSE_SKIP, SAL_FUSE_LAYERNORM, SAL_FUSE_GELU } sal_fuse_kind;

/* What becomes of one node of the file: kept, folded into a later node (SKIP), or replaced by the
 * fused op reading in[] (x, then scale and bias for LayerNormalization) with epsilon eps. */
typedef struct {
    sal_fuse_kind kind;
    const char *in[3]; /* names owned by the file's protobuf */
    float eps;
} sal_onnx_fusion;

struct Onnx__GraphProto;
/* fz[0..n_node) for gp's nodes; g holds the file's constants (initializers, Constant nodes). */
sal_status sal_onnx_find_fusions(const struct Onnx__GraphProto *gp, const sal_model *g, sal_onnx_fusion *fz);

#endif
