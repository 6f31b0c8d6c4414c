/* The op interface: one file per op family, one sal_op table entry per ONNX op type.
 * Shapes follow ONNX; batch first. */
#ifndef SAL_OPS_H
#define SAL_OPS_H

#include "ir/ir.h"

/* Per-call scratch buffers, reused across calls: slot k keeps its largest allocation. */
#define SAL_SCRATCH_SLOTS 8
typedef struct {
    void *buf[SAL_SCRATCH_SLOTS];
    size_t cap[SAL_SCRATCH_SLOTS];
} sal_scratch;
/* Buffer of at least `bytes` (contents undefined); NULL with a message set on failure. */
void *sal_scratch_get(sal_scratch *ws, int slot, size_t bytes);
void sal_scratch_free(sal_scratch *ws);

/* One call of one node. Arrays have n->nin / n->nout entries. */
typedef struct sal_opctx {
    const sal_model *g;
    const sal_node *n;
    sal_tensor *const *in;   /* NULL for an omitted optional input */
    sal_tensor *const *out;  /* NULL for an omitted optional output */
    sal_tensor *const *din;  /* backward: ADD dL/d in[i] here; NULL when not wanted */
    sal_tensor *const *dout; /* backward: dL/d out[i]; NULL when no gradient reached it (zero) */
    sal_scratch *ws;
} sal_opctx;

/* Op ids, one per line of oplist.h in its order: SAL_OP_Conv, SAL_OP_Relu, ... */
typedef enum {
#define SAL_OP(X) SAL_OP_##X,
#include "oplist.h"
#undef SAL_OP
    SAL_OP_COUNT
} sal_op_id;

/* What methods, audits and rewrites need to know about an op, so that they read traits and ids
 * instead of comparing names. An op added later has no traits until someone decides what it means
 * for them, so rule-based methods refuse it by name rather than guess. */
enum {
    SAL_TR_ROUTE = 1u << 0,       /* moves, copies or drops elements of its data input, or computes
                                   * shape data: no arithmetic on float values (Reshape, Concat, Pad) */
    SAL_TR_VIEW = 1u << 1,        /* ROUTE that keeps every element in order: a reinterpretation of
                                   * the shape (Flatten, Reshape, Squeeze, Identity) */
    SAL_TR_ADDITIVE = 1u << 2,    /* linear in the inputs of lin_in jointly: sums, means, average pools */
    SAL_TR_MULTILINEAR = 1u << 3, /* linear in each input of lin_in while the others are fixed, and
                                   * in bias_in additively (Mul, Div, Gemm, Conv, BatchNormalization) */
    SAL_TR_LINEAR = 1u << 4,      /* a layer with a weight operand: Gemm, MatMul, Conv, ConvTranspose
                                   * (linear_ops.h) */
    SAL_TR_ARITH = 1u << 5,       /* elementwise binary arithmetic with broadcasting: Add, Sub, Mul, Div */
    SAL_TR_MONOTONE = 1u << 6,    /* elementwise activation, monotone non-decreasing */
    SAL_TR_MAXPOOL = 1u << 7,     /* maximum over windows (or globally) */
    SAL_TR_AVGPOOL = 1u << 8,     /* average over windows (or globally) */
    SAL_TR_NORM = 1u << 9,        /* normalization by statistics (BatchNormalization, LayerNormalization) */
    SAL_TR_SOFTMAX = 1u << 10,    /* Softmax, LogSoftmax */
};

typedef struct sal_op {
    sal_op_id id;
    const char *name;
    unsigned traits;  /* SAL_TR_* */
    unsigned lin_in;  /* ADDITIVE, MULTILINEAR: bit i, the output is linear in input i */
    unsigned bias_in; /* MULTILINEAR: bit i, input i is added to the output (Gemm's C, Conv's B) */
    int min_in, max_in, min_out, max_out;
    unsigned param_mask; /* bit i: input i, when a float constant, is a trainable parameter */
    /* Parse and validate attributes (and constant inputs) into n->p. NULL: nothing to parse. */
    sal_status (*init)(sal_node *n, const sal_model *g);
    /* Set dtype, ndim and dim of every out[i] from the inputs; do not allocate. Inputs hold data
     * (shape ops read int64 inputs). */
    sal_status (*infer)(sal_opctx *c);
    /* Outputs are allocated with the inferred shapes: zeroed, unless `overwrites`. */
    sal_status (*forward)(sal_opctx *c);
    /* Accumulate input gradients into din[]. NULL: not differentiable (integer shape ops). */
    sal_status (*backward)(sal_opctx *c);
    void (*fini)(sal_node *n); /* NULL: sal_free(n->p) */
    /* forward writes every element of every output, so they are not zeroed first (a pass over
     * every activation saved per call; only for kernels checked to do so) */
    bool overwrites;
} sal_op;

/* Opens a table entry: its id and name from the X-macro, so neither can drift from oplist.h. */
#define SAL_OP_HEAD(X) .id = SAL_OP_##X, .name = #X

const sal_op *sal_op_lookup(const char *name);
const sal_op *sal_op_get(sal_op_id id);
static inline bool sal_node_is(const sal_node *n, sal_op_id id) { return n->op && n->op->id == id; }
static inline bool sal_node_has(const sal_node *n, unsigned traits) { return n->op && (n->op->traits & traits); }
/* Whether node n is linear in the inputs that vary (bit i: input i depends on the model input): an
 * ADDITIVE op always is, a MULTILINEAR one when at most one input of lin_in varies and no input
 * outside lin_in and bias_in does. ROUTE ops are linear too. */
bool sal_node_linear_in(const sal_node *n, unsigned vary);
/* All registered ops, NULL-terminated. */
const sal_op *const *sal_op_all(void);

/* Fails with a message naming the node and op: "node 'conv1' (Conv): ..." */
sal_status sal_node_fail(const sal_node *n, sal_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Bit i set when din[i] is wanted: in a backward pass, input i depends on what is differentiated
 * (inputs past the 32nd count as varying through bit 31, which no op's lin_in covers). */
static inline unsigned sal_din_mask(const sal_opctx *c) {
    unsigned m = 0;
    for (int k = 0; k < c->n->nin; k++)
        if (c->din[k]) m |= 1u << (k < 31 ? k : 31);
    return m;
}

/* Helpers for op files. */
static inline float *sal_in_f(const sal_opctx *c, int i) { return (float *)c->in[i]->data; }
static inline float *sal_out_f(const sal_opctx *c, int i) { return (float *)c->out[i]->data; }
/* Requires in[i] to be float32 with the given rank (-1: any rank). */
sal_status sal_need_f32(const sal_opctx *c, int i, int rank);
/* Sets out[i] to in[j]'s dtype and shape. */
void sal_same_shape(sal_opctx *c, int i, int j);
/* Numpy-style broadcasting of two shapes into out; false if incompatible. */
bool sal_broadcast_shape(const sal_tensor *a, const sal_tensor *b, int *ndim, int64_t *dim);
/* Forward that copies in[0] to out[0] and backward that adds dout[0] to din[0]: for ops that only
 * reinterpret a shape (Flatten, Reshape, Identity, ...). */
sal_status sal_copy_forward(sal_opctx *c);
sal_status sal_copy_backward(sal_opctx *c);

#endif
