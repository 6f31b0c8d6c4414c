/* Linear nodes with exchangeable weights: see linear_ops.h. Each primitive runs the node's own op
 * (forward or backward) on an opctx whose weight, bias and data slots point at the caller's
 * tensors; nothing here knows how Gemm, Conv or ConvTranspose compute. */
#include "linear_ops.h"

bool sal_lin_is_linear(const sal_node *n) { return sal_node_has(n, SAL_TR_LINEAR); }

int64_t sal_lin_fan_in(const sal_node *n, const sal_tensor *w) {
    if (w->ndim < 2) return 1;
    if (sal_node_is(n, SAL_OP_Conv)) return sal_tensor_numel(w) / w->dim[0];
    if (sal_node_is(n, SAL_OP_ConvTranspose)) { /* W (C_in, C_out/g, k...): the weights of one output channel */
        int64_t per = w->dim[1] * sal_attr_int(n, "group", 1);
        return per > 0 ? sal_tensor_numel(w) / per : 1;
    }
    if (sal_node_is(n, SAL_OP_Gemm) && sal_attr_int(n, "transB", 0)) return w->dim[1];
    return w->dim[0];
}

static bool is_const(const sal_model *g, const sal_node *n, int k) {
    return k < n->nin && n->in[k] >= 0 && g->val[n->in[k]].kind == SAL_VAL_CONST;
}

sal_status sal_lin_roles_of(const sal_model *g, const sal_node *n, sal_lin_roles *r) {
    if (!sal_lin_is_linear(n)) return sal_node_fail(n, SAL_ERR_INTERNAL, "is not a linear node");
    *r = (sal_lin_roles){.x = 0, .w = 1, .b = -1, .w_unit_axis = -1, .y_unit_axis = -1};
    bool mm = sal_node_is(n, SAL_OP_MatMul), convt = sal_node_is(n, SAL_OP_ConvTranspose);
    bool conv = sal_node_is(n, SAL_OP_Conv) || convt;
    if (!conv && is_const(g, n, 0) && !is_const(g, n, 1)) r->x = 1, r->w = 0; /* W x rather than x W */
    if (!is_const(g, n, r->w) || is_const(g, n, r->x))
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED,
                             "needs one constant weight operand and one operand that depends on the input");
    if (!mm && n->nin > 2 && n->in[2] >= 0) {
        if (!is_const(g, n, 2))
            return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "its bias depends on the input; only constant biases are supported");
        r->b = 2;
    }
    const sal_tensor *W = &g->val[n->in[r->w]].t;
    if (conv) { /* W (M, C/g, k...) for Conv, (C_in, C_out/g, k...) for ConvTranspose */
        r->w_unit_axis = convt ? 1 : 0;
        r->y_unit_axis = 1;
    } else if (!mm) {
        float alpha = sal_attr_float(n, "alpha", 1.0f), beta = sal_attr_float(n, "beta", 1.0f);
        if (!(alpha > 0) || beta < 0)
            return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "alpha = %g and beta = %g: only alpha > 0 and beta >= 0 are "
                                 "supported (rules split weights by sign)", (double)alpha, (double)beta);
        if (r->w == 1) {
            r->w_unit_axis = sal_attr_int(n, "transB", 0) ? 0 : 1;
            r->y_unit_axis = 1;
        }
    } else if (r->w == 1 && W->ndim == 2) {
        r->w_unit_axis = 1;
        r->y_unit_axis = 0x7fff; /* the last axis, whatever the data's rank */
    }
    return SAL_OK;
}

/* An opctx for node n with x, W and b in their slots; the node's other inputs as in the graph. */
typedef struct {
    sal_tensor *in[8], *out[1], *din[8], *dout[1];
    sal_opctx c;
} lin_call;

static sal_status lin_call_make(lin_call *k, const sal_model *g, const sal_node *n, const sal_lin_roles *r,
                                const sal_tensor *x, const sal_tensor *W, const sal_tensor *b, sal_scratch *ws) {
    if (n->nin > 8) return sal_node_fail(n, SAL_ERR_INTERNAL, "too many inputs for a linear node");
    memset(k, 0, sizeof *k);
    for (int i = 0; i < n->nin; i++) k->in[i] = n->in[i] >= 0 ? (sal_tensor *)&g->val[n->in[i]].t : NULL;
    /* the ops read their inputs only; the casts serve the opctx's types */
    k->in[r->x] = (sal_tensor *)x;
    k->in[r->w] = (sal_tensor *)W;
    if (r->b >= 0) k->in[r->b] = (sal_tensor *)b;
    k->c = (sal_opctx){.g = g, .n = n, .in = k->in, .out = k->out, .din = k->din, .dout = k->dout, .ws = ws};
    return SAL_OK;
}

static sal_status check_weight(const sal_node *n, const sal_model *g, const sal_lin_roles *r, const sal_tensor *W) {
    const sal_tensor *w0 = &g->val[n->in[r->w]].t;
    if (!sal_tensor_same_shape(W, w0)) {
        char a[160], b[160];
        return sal_node_fail(n, SAL_ERR_SHAPE, "substituted weights have shape %s, the node's weights %s",
                             sal_shape_str(W->ndim, W->dim, a, sizeof a), sal_shape_str(w0->ndim, w0->dim, b, sizeof b));
    }
    return SAL_OK;
}

sal_status sal_lin_apply(const sal_model *g, const sal_node *n, const sal_lin_roles *r, const sal_tensor *x,
                         const sal_tensor *W, uint64_t wkey, const sal_tensor *b, sal_tensor *z, sal_scratch *ws) {
    SAL_TRY(check_weight(n, g, r, W));
    lin_call k;
    SAL_TRY(lin_call_make(&k, g, n, r, x, W, b, ws));
    k.c.wkey = wkey;
    k.out[0] = z;
    SAL_TRY(n->op->infer(&k.c));
    sal_status st = sal_tensor_alloc_raw(z, SAL_F32, z->ndim, z->dim);
    if (st != SAL_OK) return sal_wrap(st, "node '%s' (%s)", n->name, n->op_type);
    /* the others accumulate (ConvTranspose): zeros first, as the executor gives them */
    if (!n->op->overwrites) memset(z->data, 0, sizeof(float) * (size_t)sal_tensor_numel(z));
    /* z is no model output: no maximum reads it, so max pooling's ties need not be kept (sal_opctx.fwd_only)
     * where that pays (sal_op.fwd_only_pays: LRP's z+ of the small CNN's 32 -> 64 layer by F(4x4)) */
    k.c.fwd_only = true;
    k.c.fwd_only = n->op->fwd_only_pays && n->op->fwd_only_pays(&k.c);
    return n->op->forward(&k.c);
}

/* The backward of node n with dout = rz and exactly one of din[x] / din[w] set; dx is overwritten
 * when `set`, else added to. */
static sal_status lin_backward(const sal_model *g, const sal_node *n, const sal_lin_roles *r, const sal_tensor *x,
                               const sal_tensor *W, uint64_t wkey, const sal_tensor *rz, sal_tensor *dx,
                               sal_tensor *dW, bool set, sal_scratch *ws) {
    SAL_TRY(check_weight(n, g, r, W));
    lin_call k;
    SAL_TRY(lin_call_make(&k, g, n, r, x, W, NULL, ws));
    k.c.wkey = wkey;
    if (r->b >= 0) k.in[r->b] = (sal_tensor *)&g->val[n->in[r->b]].t; /* shape checks only: din[b] stays NULL */
    sal_tensor shape = {0}; /* dtype and shape only: the backwards of these ops never read out[0] */
    k.out[0] = &shape;
    SAL_TRY(n->op->infer(&k.c));
    if (!sal_tensor_same_shape(&shape, rz)) {
        char a[160], b[160];
        return sal_node_fail(n, SAL_ERR_SHAPE, "relevance of shape %s for an output of shape %s",
                             sal_shape_str(rz->ndim, rz->dim, a, sizeof a), sal_shape_str(shape.ndim, shape.dim, b, sizeof b));
    }
    k.dout[0] = (sal_tensor *)rz;
    k.din[r->x] = dx;
    k.din[r->w] = dW;
    if (set && (n->op->bwd_writes >> r->x & 1)) /* the op writes it whole (beta 0, no sum post-op) */
        k.c.din_fresh = 1u << r->x;
    else if (set)
        memset(dx->data, 0, sizeof(float) * (size_t)sal_tensor_numel(dx));
    return n->op->backward(&k.c);
}

sal_status sal_lin_transposed(const sal_model *g, const sal_node *n, const sal_lin_roles *r, const sal_tensor *x,
                              const sal_tensor *W, uint64_t wkey, const sal_tensor *rz, sal_tensor *out,
                              sal_scratch *ws) {
    if (!sal_tensor_same_shape(out, x)) return sal_node_fail(n, SAL_ERR_INTERNAL, "transposed: out is not shaped as x");
    return lin_backward(g, n, r, x, W, wkey, rz, out, NULL, false, ws);
}

sal_status sal_lin_transposed_set(const sal_model *g, const sal_node *n, const sal_lin_roles *r, const sal_tensor *x,
                                  const sal_tensor *W, uint64_t wkey, const sal_tensor *rz, sal_tensor *out,
                                  sal_scratch *ws) {
    SAL_TRY(sal_tensor_alloc_raw(out, SAL_F32, x->ndim, x->dim));
    return lin_backward(g, n, r, x, W, wkey, rz, out, NULL, true, ws);
}

sal_status sal_lin_correlate(const sal_model *g, const sal_node *n, const sal_lin_roles *r, const sal_tensor *x,
                             const sal_tensor *W, const sal_tensor *rz, sal_tensor *dW, sal_scratch *ws) {
    if (!sal_tensor_same_shape(dW, W)) return sal_node_fail(n, SAL_ERR_INTERNAL, "correlate: dW is not shaped as W");
    return lin_backward(g, n, r, x, W, 0, rz, NULL, dW, false, ws);
}
