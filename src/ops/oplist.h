/* Every supported ONNX op: SAL_OP(X) names the table entry `const sal_op sal_op_X` defined in one
 * of this folder's files. One line per op; order does not matter. */
SAL_OP(Gemm)
SAL_OP(MatMul)
SAL_OP(Relu)
SAL_OP(Flatten)
SAL_OP(Identity)
SAL_OP(Dropout)
