/* The op interface: one file per op family, one sal_op table entry per ONNX op type.
 * Shapes follow ONNX; batch first. */
#ifndef SAL_OPS_H
#define SAL_OPS_H

#include "ir/ir.h"

/* Per-call scratch buffers, reused across calls: slot k keeps its largest allocation. A session's
 * scratch also keeps per-node state that an op builds once and reuses (oneDNN primitives for a
 * shape), indexed by node and freed with the scratch. */
#define SAL_SCRATCH_SLOTS 8
typedef struct {
    const void *node; /* the node it belongs to: a scratch reused with another model starts afresh */
    void *p;
    void (*free)(void *p);
} sal_node_state;
/* Weights a method derives from a node's own constant input (LRP's w+ and b+), kept across calls
 * while the model's weights do not change (sal_derived_get); or maps derived from them for data of
 * one shape (sal_derived_map: map set, xs that shape). */
typedef struct {
    const void *node;
    int input;
    uint64_t key, version;
    sal_tensor t;
    bool map;
    sal_tensor xs; /* a map's: the shape of the data it was derived for (no data) */
} sal_derived;
typedef struct {
    void *buf[SAL_SCRATCH_SLOTS];
    size_t cap[SAL_SCRATCH_SLOTS];
    sal_node_state *state;
    int nstate;
    sal_derived *derived;
    int nderived;
    size_t derived_bytes;
} sal_scratch;
/* Buffer of at least `bytes` (contents undefined); NULL with a message set on failure. */
void *sal_scratch_get(sal_scratch *ws, int slot, size_t bytes);
void sal_scratch_free(sal_scratch *ws);

/* sal_opctx.relu_rule */
enum { SAL_RELU_GRADIENT, SAL_RELU_GUIDED, SAL_RELU_DECONV };

/* One call of one node. Arrays have n->nin / n->nout entries. */
typedef struct sal_opctx {
    const sal_model *g;
    const sal_node *n;
    sal_tensor *const *in;   /* NULL for an omitted optional input */
    sal_tensor *const *out;  /* NULL for an omitted optional output */
    sal_tensor *const *din;  /* backward: ADD dL/d in[i] here; NULL when not wanted */
    sal_tensor *const *dout; /* backward: dL/d out[i]; NULL when no gradient reached it (zero) */
    unsigned din_fresh;      /* backward: bit i, din[i] is uninitialized and the op must write it
                              * whole instead of adding (only for inputs in op->bwd_writes) */
    /* Blocked layouts (ops with blk == SAL_BLK_OWN only; see sal_blk_fits): bit i of blk_in, in[i]
     * (and din[i]) hold oneDNN's blocked order (sal_blk_width); of blk_out, out[i] (and dout[i])
     * do. In a forward pass the op may write out[i] blocked when bit i of blk_want is set, and then
     * sets bit i of blk_out; in a backward pass both are given. */
    unsigned blk_in, blk_out, blk_want;
    /* Forward of a Conv or Gemm whose output only a ReLU reads (graph/exec.c): relu_want asks for max(y, 0)
     * in its output instead, and the op sets relu_done when its kernel applied it. */
    bool relu_want, relu_done;
    /* Forward: no backward pass follows (sal_session.lean SAL_LEAN_OUT), so nothing reads which
     * position max pooling takes, and convolutions before it need not keep ties (sal_conv_ties;
     * a session that alternates such passes with gradients builds those layers' oneDNN forward
     * primitives again at each switch). */
    bool fwd_only;
    /* Backward of a MaxPool or Gemm (sal_op.bwd_relu_in) whose input in[0] = max(h, 0) only it reads:
     * din[0] is h's gradient, fresh, and the op writes it masked where in[0] is not positive, so that
     * the ReLU's backward need not run (graph/exec.c: relu_read). */
    bool relu_in;
    /* With relu_in on an op of bwd_relu_rules: the rule the skipped Relu has in place of its
     * gradient, which the op applies to h's gradient: SAL_RELU_GUIDED (only where that gradient is
     * positive too) or SAL_RELU_DECONV (max(0, the gradient), whatever h is); 0: the gradient. */
    unsigned char relu_rule;
    /* Backward: bit i, input i's gradient is the output's gradient buffer after this call
     * (sal_op.bwd_pass, bwd_inplace) and din[i] is NULL. An op of bwd_inplace then writes that
     * gradient into dout[0] itself. 0 (none) wherever the caller hands nothing over. */
    unsigned handed;
    /* A linear node's substituted weight (ops/linear_ops.h): nonzero when it is a fixed function,
     * named by wkey, of the node's own weight at the model's weights version (LRP's w+), so that an
     * op may keep it in its own layout across calls; 0 when it may differ every call. */
    uint64_t wkey;
    sal_scratch *ws;
} sal_opctx;

/* How an op meets the blocked layout (nChw16c or nChw8c: channels in blocks of 16 or 8 innermost)
 * in which a session may keep the activations between convolutions (graph/exec.c), instead of
 * converting every convolution's input and output. */
enum {
    SAL_BLK_NONE, /* reads and writes plain tensors only: the executor converts blocked inputs first */
    SAL_BLK_SAME, /* elementwise on operands of one shape (or scalars): indifferent to the order of
                   * elements, so its output and gradients take its inputs' layout */
    SAL_BLK_OWN,  /* handles blocked input 0 and output 0 itself when blk_takes says so */
};

/* The backward of an op that moves elements (bwd_known): it reads its shape, index and axis
 * inputs, never the data of input 0 or of its outputs. */
#define SAL_BWD_ROUTE .bwd_known = true, .bwd_self = ~1u, .bwd_other = ~1u

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
    /* backward can write din[i] whole instead of adding (bit i), which saves zeroing a gradient
     * buffer and reading it back: the walker says which buffers are fresh in din_fresh */
    unsigned bwd_writes;
    /* bit i: input i's gradient is the output's, unchanged, whenever the two have as many elements
     * (Add, Sub's first input, the reshapes): the executor hands the output's gradient buffer over
     * to a first gradient of the input instead of copying it */
    unsigned bwd_pass;
    /* bit i: as bwd_pass, but the op turns the output's gradient into input i's in place
     * (sal_opctx.handed says when it is handed over): ReLU's mask */
    unsigned bwd_inplace;
    /* What backward reads of the forward pass's values, so that a session may drop the rest as soon
     * as the forward pass is done with them (graph/exec.c: sal_session.lean). Unless bwd_known, it
     * may read every input and output. Otherwise it reads input i only where bit i of bwd_self is
     * set and its own gradient is wanted (a nonlinearity), or where bit i of bwd_other is set and
     * another input's gradient is wanted (a product's factors: a weight's gradient reads the data),
     * and output i only where bit i of bwd_out is set; it forms no pointer into the data of any
     * other input or output (their data may be NULL), only reads their shapes. */
    bool bwd_known;
    unsigned bwd_self, bwd_other, bwd_out;
    bool bwd_relu_in;    /* its backward honours sal_opctx.relu_in */
    bool bwd_relu_rules; /* and sal_opctx.relu_rule with it */
    unsigned char blk; /* SAL_BLK_* */
    /* SAL_BLK_OWN: after infer, whether the op runs on its inputs in their layouts (c->blk_in); when
     * not, the executor converts them to plain first. */
    bool (*blk_takes)(sal_opctx *c);
    /* After infer, with c->fwd_only set: whether the forward then runs kernels of the op's own that
     * gain by it (Conv's Winograd: F(4x4) where ties took F(2x2)). sal_lin_apply's products, which no
     * maximum reads, are marked so only then: a forward primitive of oneDNN's is keyed by the ties it
     * keeps, and would be built again at each switch from the model's forward. */
    bool (*fwd_only_pays)(sal_opctx *c);
    /* After infer: whether output 0 is input 0's elements from *off on, in order (Slice of a block,
     * Gather of one index along a leading axis, Pad by nothing), so that the executor may make it a
     * view of input 0 instead of a copy, as it does for SAL_TR_VIEW ops. */
    bool (*view_at)(sal_opctx *c, int64_t *off);
} sal_op;

/* Zeroes din[k] when it is fresh (sal_op.bwd_writes: handed over unzeroed) and the op will not
 * write it: no gradient reached the op's output. */
void sal_din_zero_fresh(const sal_opctx *c, int k);
/* Whether the backward of an op with one input has a gradient to pass (din[0] and dout[0] there);
 * when none reached its output, a fresh din[0] gets its zeros here (sal_din_zero_fresh). */
bool sal_grad_flows(const sal_opctx *c);

/* The state slot of the node of c in its scratch (*slot NULL the first time): the op stores its
 * state there with the function that frees it. NULL with a message set on failure. */
sal_node_state *sal_node_state_of(const sal_opctx *c);
/* The buffer keeping key's derivation of input `input` of c's node, shaped as that input, with
 * *ready telling whether it holds the values already (else the caller writes them, in full, before
 * it returns to the executor); NULL when the input is not the node's own constant or the derivation
 * is not kept (over 1 MiB, or 16 MiB kept already): the caller derives into a buffer of its own.
 * Saves the derivation's pass over the weights every call (small models are bound by such passes). */
sal_tensor *sal_derived_get(const sal_opctx *c, int input, uint64_t key, bool *ready);
/* As sal_derived_get, for a map derived from input `input` (and the node's other constants) for
 * data shaped as x: the buffer is shaped as like, and ready only while x's shape is the one it was
 * derived for. key names the derivation among the node's maps (a namespace of its own). */
sal_tensor *sal_derived_map(const sal_opctx *c, int input, uint64_t key, const sal_tensor *x, const sal_tensor *like,
                            bool *ready);

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

/* The block width W: 16 channels where oneDNN's kernels use nChw16c (AVX-512), else 8 (nChw8c);
 * tests may set it (0: oneDNN's again) while no session holds a blocked value. */
int sal_blk_width(void);
void sal_blk_set_width(int w);
/* Whether t can be held in the blocked layout: float32 (N, C, H, W) with C a multiple of W, where
 * the blocked layout takes exactly as many elements as the plain one. */
bool sal_blk_fits(const sal_tensor *t);
/* Element (n, c, h, w) of a blocked (N, C, H, W) tensor sits at
 * ((n C/W + c/W) H W + h W + w) W + c%W. Writes the blocked tensor src of shape dim to dst in
 * plain order (dst != src). */
void sal_blk_to_plain(float *dst, const float *src, const int64_t *dim);
/* The same, or the blocked tensor added to the plain one, or the plain tensor src written blocked. */
typedef enum { SAL_BLK_TO_PLAIN, SAL_BLK_ADD_TO_PLAIN, SAL_BLK_FROM_PLAIN } sal_blk_how;
void sal_blk_convert(float *restrict dst, const float *restrict src, const int64_t *dim, sal_blk_how how);
/* n pixels of one block of W channels: blocked src (n x W) to plain dst, whose channels lie S floats
 * apart, or back (SAL_BLK_FROM_PLAIN: dst blocked, src plain) */
void sal_blk_pixels(float *restrict dst, const float *restrict src, int64_t n, int64_t S, sal_blk_how how);

/* Helpers for op files. */
static inline float *sal_in_f(const sal_opctx *c, int i) { return (float *)c->in[i]->data; }
static inline float *sal_out_f(const sal_opctx *c, int i) { return (float *)c->out[i]->data; }
/* Requires in[i] to be float32 with the given rank (-1: any rank). */
sal_status sal_need_f32(const sal_opctx *c, int i, int rank);
/* dx = dy where x > 0, else 0 (ReLU's backward into a fresh or handed-over gradient; dx may be dy). */
void sal_relu_mask(float *dx, const float *dy, const float *x, int64_t n);
/* y = max(x, 0), NaN to 0 (ReLU's forward; y may be x). */
void sal_relu(float *y, const float *x, int64_t n);
/* Sets out[i] to in[j]'s dtype and shape. */
void sal_same_shape(sal_opctx *c, int i, int j);
/* Numpy-style broadcasting of two shapes into out; false if incompatible. */
bool sal_broadcast_shape(const sal_tensor *a, const sal_tensor *b, int *ndim, int64_t *dim);
/* Numpy broadcasting of up to SAL_BC_MAX operands (elementwise.c): the output's index space with
 * each operand's element strides (0 along broadcast dimensions). Size-1 dimensions are dropped and
 * runs of dimensions that every operand walks contiguously are merged, so the inner loop is as long
 * as possible; its stride is st[k][r - 1] (0 or 1). Loops run over nouter runs of inner elements. */
#define SAL_BC_MAX 3
typedef struct {
    int r, nop;
    int64_t dim[SAL_MAX_DIMS], st[SAL_BC_MAX][SAL_MAX_DIMS];
    int64_t n, inner, nouter;
    int64_t numel[SAL_BC_MAX]; /* elements of each operand: n when it is not broadcast */
} sal_bcast;
/* The broadcast shape of t[0..nop), or a failure naming the node. */
sal_status sal_bcast_shape(const sal_opctx *c, int nop, const sal_tensor *const *t, int *ndim, int64_t *dim);
sal_status sal_bcast_make(const sal_opctx *c, int nop, const sal_tensor *const *t, sal_bcast *p);
/* Element offsets of every operand at the start of inner run o. */
static inline void sal_bcast_at(const sal_bcast *p, int64_t o, int64_t *off) {
    for (int k = 0; k < p->nop; k++) off[k] = 0;
    for (int i = p->r - 2; i >= 0; i--) {
        int64_t j = o % p->dim[i];
        o /= p->dim[i];
        for (int k = 0; k < p->nop; k++) off[k] += j * p->st[k][i];
    }
}

/* Forward that copies in[0] to out[0] and backward that adds dout[0] to din[0]: for ops that only
 * reinterpret a shape (Flatten, Reshape, Identity, ...). */
sal_status sal_copy_forward(sal_opctx *c);
sal_status sal_copy_backward(sal_opctx *c);

#endif
