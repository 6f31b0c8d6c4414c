/* Relu and the pass-through ops: Flatten, Identity, Dropout (inference). */
#include "ops.h"

static sal_status relu_infer(sal_opctx *c) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

/* The ReLU loops on [i0, i1), compiled for AVX-512 and AVX2 too: the baseline's four lanes took
 * 3.4 us of the small CNN's Grad-CAM for its two unfused ReLUs (37 632 values). mode 0: y = max(x,
 * 0); 1: dx = dy where x > 0, else 0 (dx may be dy); 2: dx += that. Branch-free with an
 * unconditional load of dy (gcc -O2 leaves a branch per element otherwise, mispredicted on half). */
SAL_CLONES void relu_run(int mode, float *out, const float *x, const float *dy, int64_t i0, int64_t i1) {
    if (mode == 0) {
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
    } else if (mode == 1) {
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) {
            float g = dy[i];
            out[i] = x[i] > 0.0f ? g : 0.0f;
        }
    } else {
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) {
            float g = dy[i];
            out[i] += x[i] > 0.0f ? g : 0.0f;
        }
    }
}

/* Both threads from 16384 values: one thread read the other core's half of the values a parallel
 * kernel wrote (the small CNN's first ReLU, 25 088 values unfused in LRP: 7.5 -> 2.5 us) */
static void relu_par(int mode, float *out, const float *x, const float *dy, int64_t n) {
    SAL_PAR_SPLIT(n > 16384, n, i0, i1, relu_run(mode, out, x, dy, i0, i1));
}

static sal_status relu_forward(sal_opctx *c) {
    relu_par(0, sal_out_f(c, 0), sal_in_f(c, 0), NULL, sal_tensor_numel(c->in[0]));
    return SAL_OK;
}

void sal_relu_mask(float *dx, const float *dy, const float *x, int64_t n) { relu_par(1, dx, x, dy, n); }
void sal_relu(float *y, const float *x, int64_t n) { relu_par(0, y, x, NULL, n); }

static sal_status relu_backward(sal_opctx *c) {
    const bool inplace = (c->handed & 1) && c->dout[0]; /* dout becomes din: no buffer of its own */
    if (!c->din[0] && !inplace) return SAL_OK;
    if (!c->dout[0]) { /* not reached: a fresh buffer still needs its zeros */
        sal_din_zero_fresh(c, 0);
        return SAL_OK;
    }
    const float *x = sal_in_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = inplace ? sal_f32(c->dout[0]) : sal_f32(c->din[0]);
    int64_t n = sal_tensor_numel(c->in[0]);
    if (inplace || (c->din_fresh & 1)) {
        sal_relu_mask(dx, dy, x, n);
    } else {
        relu_par(2, dx, x, dy, n);
    }
    return SAL_OK;
}

const sal_op sal_op_Relu = {
    SAL_OP_HEAD(Relu), .traits = SAL_TR_MONOTONE, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = relu_infer, .forward = relu_forward, .backward = relu_backward,
    .overwrites = true, .bwd_writes = 0x1, .bwd_inplace = 0x1, .blk = SAL_BLK_SAME,
    /* the input, which the rules that replace its gradient (guided backprop, RectGrad) read too */
    .bwd_known = true, .bwd_self = 0x1,
};

/* Copy forward, add backward: shared by every op that only reinterprets the shape. */
sal_status sal_copy_forward(sal_opctx *c) {
    size_t bytes = (size_t)sal_tensor_numel(c->in[0]) * sal_dtype_size(c->in[0]->dtype);
    if (bytes) memcpy(c->out[0]->data, c->in[0]->data, bytes);
    return SAL_OK;
}

sal_status sal_copy_backward(sal_opctx *c) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const float *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    int64_t n = sal_tensor_numel(c->in[0]);
    if (c->din_fresh & 1) memcpy(dx, dy, sizeof(float) * (size_t)n);
    else sal_vadd(dx, dy, n);
    return SAL_OK;
}

static sal_status flatten_infer(sal_opctx *c) {
    const sal_tensor *x = c->in[0];
    int64_t axis = sal_attr_int(c->n, "axis", 1);
    if (axis < 0) axis += x->ndim;
    if (axis < 0 || axis > x->ndim)
        return sal_node_fail(c->n, SAL_ERR_ARG, "axis %lld out of range for rank %d",
                             (long long)sal_attr_int(c->n, "axis", 1), x->ndim);
    int64_t a = 1, b = 1;
    for (int i = 0; i < x->ndim; i++) *(i < axis ? &a : &b) *= x->dim[i];
    sal_tensor *o = c->out[0];
    o->dtype = x->dtype;
    o->ndim = 2;
    o->dim[0] = a;
    o->dim[1] = b;
    return SAL_OK;
}

const sal_op sal_op_Flatten = {
    SAL_OP_HEAD(Flatten), .traits = SAL_TR_ROUTE | SAL_TR_VIEW, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    SAL_BWD_ROUTE,
    .infer = flatten_infer, .forward = sal_copy_forward, .backward = sal_copy_backward,
    .overwrites = true, /* every output element written */
    .bwd_writes = 0x1, .bwd_pass = 0x1,
};

static sal_status identity_infer(sal_opctx *c) {
    if (!c->in[0]) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input 0 is missing");
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

const sal_op sal_op_Identity = {
    SAL_OP_HEAD(Identity), .traits = SAL_TR_ROUTE | SAL_TR_VIEW, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    SAL_BWD_ROUTE,
    .infer = identity_infer, .forward = sal_copy_forward, .backward = sal_copy_backward,
    .overwrites = true, /* every output element written */
    .bwd_writes = 0x1, .bwd_pass = 0x1,
};

/* Inference only: the input passes through and the optional mask (bool, opset 10 on) is all true,
 * as ONNX defines it outside training. The ratio input is ignored; a training_mode input (opset 12
 * on) must be a constant false, or come with a constant ratio 0, where training changes nothing
 * (torchvision's Swin calls F.dropout(p=0.0) in its default training mode). */
static bool const_scalar(const sal_model *g, const sal_node *n, int i, sal_dtype dt) {
    if (n->nin <= i || n->in[i] < 0) return false;
    const sal_value *t = &g->val[n->in[i]];
    return t->kind == SAL_VAL_CONST && t->t.dtype == dt && sal_tensor_numel(&t->t) == 1;
}

static sal_status dropout_init(sal_node *n, const sal_model *g) {
    if (n->nout > 1 && n->out[1] >= 0 && g->opset < 10)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "the mask output is supported from opset 10 on (bool)");
    if (n->nin > 2 && n->in[2] >= 0) {
        bool off = const_scalar(g, n, 2, SAL_BOOL) && !((const uint8_t *)g->val[n->in[2]].t.data)[0];
        bool p0 = const_scalar(g, n, 1, SAL_F32) && sal_f32(&g->val[n->in[1]].t)[0] == 0.0f;
        if (!off && !p0)
            return sal_node_fail(n, SAL_ERR_UNSUPPORTED,
                                 "training_mode must be a constant false, or the ratio a constant 0: training mode is "
                                 "not supported (inference only)");
    }
    return SAL_OK;
}

static sal_status dropout_infer(sal_opctx *c) {
    SAL_TRY(identity_infer(c));
    if (c->n->nout > 1 && c->out[1]) {
        sal_same_shape(c, 1, 0);
        c->out[1]->dtype = SAL_BOOL;
    }
    return SAL_OK;
}

static sal_status dropout_forward(sal_opctx *c) {
    if (c->out[0]->data != c->in[0]->data) SAL_TRY(sal_copy_forward(c)); /* else a view (graph/exec.c) */
    if (c->n->nout > 1 && c->out[1]) memset(c->out[1]->data, 1, (size_t)sal_tensor_numel(c->out[1]));
    return SAL_OK;
}

const sal_op sal_op_Dropout = {
    SAL_OP_HEAD(Dropout), .traits = SAL_TR_ROUTE | SAL_TR_VIEW, .min_in = 1, .max_in = 3, .min_out = 1, .max_out = 2,
    .init = dropout_init, .infer = dropout_infer, .forward = dropout_forward, .backward = sal_copy_backward,
    .bwd_pass = 0x1, SAL_BWD_ROUTE,
};
