/* Linear nodes (Gemm, MatMul, Conv, ConvTranspose) as operators with exchangeable weights.
 *
 * LRP, Deep Taylor and the pattern methods all need the same two things from a linear node, with a
 * weight tensor W' that is not the node's own (w+, w^2, w + gamma w+, a pattern, w * a):
 *   apply       z = W' x (+ b')            the node's forward with W' and b' in place of W and b
 *   transposed  out += W'^T r              the node's backward with respect to its data operand
 * and, for estimating patterns, the backward with respect to the weights:
 *   correlate   dW += sum over samples (and positions) of r (x)^T, shaped as W.
 * All three run the op's own forward and backward on substituted inputs, so one LRP implementation
 * serves dense layers and convolutions alike and every rule inherits the ops' speed, threading and
 * shape checks (Conv's Winograd kernels among them, on these plain tensors too: the small CNN's
 * LRP epsilon-plus 0.19 -> 0.16 ms an image). */
#ifndef SAL_LINEAR_OPS_H
#define SAL_LINEAR_OPS_H

#include "ops.h"

/* Which inputs of a linear node play which part. */
typedef struct {
    int x;     /* the data operand (depends on the model input) */
    int w;     /* the weight operand (a constant) */
    int b;     /* the additive bias, or -1 */
    /* Output units, for patterns: W's axis that indexes them and the output's axis that does
     * (Conv: W (M, C/g, k...) axis 0, Y (N, M, ...) axis 1; ConvTranspose: W (C_in, C_out/g, k...)
     * axis 1, within each group, Y axis 1; Gemm/MatMul: the last axis of Y). */
    int w_unit_axis, y_unit_axis;
} sal_lin_roles;

/* Whether n is a Gemm, MatMul, Conv or ConvTranspose node (trait LINEAR). */
bool sal_lin_is_linear(const sal_node *n);

/* Inputs feeding one output unit through weight tensor w of linear node n (the weights of one
 * output channel): (O, I/g, k...) for Conv, (I, O/g, k...) for ConvTranspose, (N, K) with transB or
 * (K, N) for Gemm and MatMul; 1 for a bias or other vector. */
int64_t sal_lin_fan_in(const sal_node *n, const sal_tensor *w);

/* The roles of n's inputs in g: the weight must be a constant and the data operand not. Gemm with a
 * negative alpha or beta is refused (rules that split weights by sign assume they keep it). Fails
 * naming the node when n is not a linear node of that form. */
sal_status sal_lin_roles_of(const sal_model *g, const sal_node *n, sal_lin_roles *r);

/* z = node(x; W, b): W has the shape of the node's weight; b (the bias's shape) may be NULL for no
 * bias. z is shaped and allocated here (its buffer reused when large enough). wkey names W when it
 * is a fixed function of the node's own weight (sal_opctx.wkey: oneDNN's convolutions then keep it
 * reordered between calls, as they keep the node's own weight), else 0. */
sal_status sal_lin_apply(const sal_model *g, const sal_node *n, const sal_lin_roles *r, const sal_tensor *x,
                         const sal_tensor *W, uint64_t wkey, const sal_tensor *b, sal_tensor *z, sal_scratch *ws);

/* out += W^T rz: rz has the output's shape, out the shape of x (x gives the geometry; its values
 * are not read by Gemm, MatMul, Conv or ConvTranspose); wkey as for sal_lin_apply. */
sal_status sal_lin_transposed(const sal_model *g, const sal_node *n, const sal_lin_roles *r, const sal_tensor *x,
                              const sal_tensor *W, uint64_t wkey, const sal_tensor *rz, sal_tensor *out,
                              sal_scratch *ws);

/* out = W^T rz, out shaped as x here (its buffer reused when large enough): the op writes it
 * whole where it can (sal_op.bwd_writes), with no zeros first. */
sal_status sal_lin_transposed_set(const sal_model *g, const sal_node *n, const sal_lin_roles *r, const sal_tensor *x,
                                  const sal_tensor *W, uint64_t wkey, const sal_tensor *rz, sal_tensor *out,
                                  sal_scratch *ws);

/* dW += the weight gradient of sum(rz * node(x)): for every weight, the sum over samples (and
 * output positions) of rz at its output unit times the input it multiplies. */
sal_status sal_lin_correlate(const sal_model *g, const sal_node *n, const sal_lin_roles *r, const sal_tensor *x,
                             const sal_tensor *W, const sal_tensor *rz, sal_tensor *dW, sal_scratch *ws);

/* A Gemm node's product as rows: op(B) (K, N), B a constant, with its alpha (op(A) op(B) alpha + C
 * beta), when transA is not set and C is constant and the same for every row; B itself, or for
 * transB a transposed copy kept in c->ws (the node's state). NULL otherwise, or when the copy
 * would exceed 32 MiB. Rows differing in a few elements then differ in the product by
 * alpha (a' - a) op(B) over those elements (exec.h: sal_exec_front_product). */
const float *sal_gemm_rows(const sal_opctx *c, int64_t K, int64_t *N, float *alpha);

/* A Gemm's op(B) (K, N) with its K rows summed in consecutive groups of S: (K / S, N), row q the
 * sum of rows q S .. q S + S - 1, for B a constant and transA not set; kept in c->ws (the node's
 * state) while the weights and S do not change. NULL otherwise, or past 32 MiB. With the inputs a
 * flattened (N, K / S, S) tensor, g op(B)^T alpha summed over each channel's S positions is g times
 * these rows' transpose, alpha: the channel sums of a layer's gradient without the gradient (Grad-CAM). */
const float *sal_gemm_group_sums(const sal_opctx *c, int64_t K, int64_t S, int64_t *N, float *alpha);

/* A Gemm's input gradient din[0] on one row, computed only where in[0] > 0 or m1 > 0 (m1 shaped as
 * in[0], or NULL) and left as it is elsewhere: for a rule that multiplies it by zero wherever both
 * are not positive (DeepLIFT's Rescale at a ReLU, m1 the reference's activations). Reads only the
 * weight rows of those entries (linear.c: din_masked). *done false: not done, for the op's backward. */
sal_status sal_gemm_din_masked(const sal_opctx *c, const float *m1, bool *done);

#endif
