/* The op interface: one file per op family, one sal_op table entry per ONNX op type.
 * Shapes follow ONNX; batch first. */
#ifndef SAL_OPS_H
#define SAL_OPS_H

#include "graph/graph.h"

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

typedef struct sal_op {
    const char *name;
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

const sal_op *sal_op_lookup(const char *name);
/* All registered ops, NULL-terminated. */
const sal_op *const *sal_op_all(void);

/* Fails with a message naming the node and op: "node 'conv1' (Conv): ..." */
sal_status sal_node_fail(const sal_node *n, sal_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
