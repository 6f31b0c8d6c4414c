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

#endif
