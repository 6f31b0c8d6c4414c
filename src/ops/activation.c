/* Pointwise activations: LeakyRelu, Sigmoid, Tanh, Clip. */
#include "ops.h"
#include <float.h>
#include <math.h>
#include <string.h>

#define PAR_MIN 65536 /* below this many elements threads cost more than they save */

static sal_status unary_infer(sal_opctx *c) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

/* ---- LeakyRelu ---- */

static sal_status leaky_forward(sal_opctx *c) {
    float alpha = sal_attr_float(c->n, "alpha", 0.01f);
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];);
    return SAL_OK;
}

static sal_status leaky_backward(sal_opctx *c) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    float alpha = sal_attr_float(c->n, "alpha", 0.01f);
    const float *x = sal_in_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : alpha * dy[i];);
    return SAL_OK;
}

const sal_op sal_op_LeakyRelu = {
    SAL_OP_HEAD(LeakyRelu), .traits = SAL_TR_MONOTONE, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = unary_infer, .forward = leaky_forward, .backward = leaky_backward,
    .bwd_known = true, .bwd_self = 0x1,
};

/* ---- Sigmoid and Tanh: the gradient comes from the output ---- */

static sal_status sigmoid_forward(sal_opctx *c) {
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR(
        n > PAR_MIN, "omp parallel for", for (int64_t i = 0; i < n; i++) {
            /* exp of a non-positive number only: no overflow for large |x| */
            if (x[i] >= 0.0f) {
                y[i] = 1.0f / (1.0f + expf(-x[i]));
            } else {
                float e = expf(x[i]);
                y[i] = e / (1.0f + e);
            }
        });
    return SAL_OK;
}

static sal_status sigmoid_backward(sal_opctx *c) {
    if (!sal_grad_flows(c)) return SAL_OK;
    const float *y = sal_out_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    int64_t n = sal_tensor_numel(c->in[0]);
    if (c->din_fresh & 1) /* written, not added to (bwd_writes) */
        SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]););
    else
        SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]););
    return SAL_OK;
}

const sal_op sal_op_Sigmoid = {
    SAL_OP_HEAD(Sigmoid), .traits = SAL_TR_MONOTONE, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = unary_infer, .forward = sigmoid_forward, .backward = sigmoid_backward,
    .bwd_writes = 0x1, .bwd_known = true, .bwd_out = 0x1,
};

static sal_status tanh_forward(sal_opctx *c) {
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR(n > PAR_MIN, "omp parallel for", for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]););
    return SAL_OK;
}

static sal_status tanh_backward(sal_opctx *c) {
    if (!sal_grad_flows(c)) return SAL_OK;
    const float *y = sal_out_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    int64_t n = sal_tensor_numel(c->in[0]);
    if (c->din_fresh & 1) /* written, not added to (bwd_writes) */
        SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]););
    else
        SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]););
    return SAL_OK;
}

const sal_op sal_op_Tanh = {
    SAL_OP_HEAD(Tanh), .traits = SAL_TR_MONOTONE, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = unary_infer, .forward = tanh_forward, .backward = tanh_backward,
    .bwd_writes = 0x1, .bwd_known = true, .bwd_out = 0x1,
};

/* ---- Clip: bounds are attributes before opset 11, optional scalar inputs from opset 11 ---- */

static sal_status clip_bound(const sal_opctx *c, int i, float def, float *v) {
    *v = def;
    if (c->g->opset < 11) {
        *v = sal_attr_float(c->n, i == 1 ? "min" : "max", def);
        return SAL_OK;
    }
    if (c->n->nin <= i || !c->in[i]) return SAL_OK;
    SAL_TRY(sal_need_f32(c, i, -1));
    if (sal_tensor_numel(c->in[i]) != 1)
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "%s must be a scalar", i == 1 ? "min" : "max");
    *v = sal_in_f(c, i)[0];
    return SAL_OK;
}

static sal_status clip_infer(sal_opctx *c) {
    float lo, hi;
    SAL_TRY(sal_need_f32(c, 0, -1));
    SAL_TRY(clip_bound(c, 1, -FLT_MAX, &lo));
    SAL_TRY(clip_bound(c, 2, FLT_MAX, &hi));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

static sal_status clip_forward(sal_opctx *c) {
    float lo, hi;
    SAL_TRY(clip_bound(c, 1, -FLT_MAX, &lo));
    SAL_TRY(clip_bound(c, 2, FLT_MAX, &hi));
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    int64_t n = sal_tensor_numel(c->in[0]);
    /* min(max(x, lo), hi) as in numpy.clip: hi wins when lo > hi */
    SAL_PAR_FOR(
        n > PAR_MIN, "omp parallel for", for (int64_t i = 0; i < n; i++) {
            float v = x[i] < lo ? lo : x[i];
            y[i] = v > hi ? hi : v;
        });
    return SAL_OK;
}

/* The gradient goes to x strictly inside (lo, hi), else to the bound that produced the output.
 * The bounds' gradients (a reduction) are taken only when asked for: MobileNets' ReLU6 never asks,
 * and its backward is then one vectorized pass that writes a fresh buffer. */
/* dx over [i0, i1) (set: written, else added to) */
static void clip_grad(float *restrict dx, const float *restrict dy, const float *restrict x, float lo, float hi,
                      int64_t i0, int64_t i1, bool set) {
    if (set) {
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) {
            float g = dy[i], v = x[i];
            dx[i] = v > lo && v < hi ? g : 0.0f;
        }
    } else {
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) {
            float g = dy[i], v = x[i];
            dx[i] += v > lo && v < hi ? g : 0.0f;
        }
    }
}

static sal_status clip_backward(sal_opctx *c) {
    float *dx = c->din[0] ? sal_f32(c->din[0]) : NULL;
    int64_t n = sal_tensor_numel(c->in[0]);
    if (!c->dout[0]) { /* not reached: a fresh buffer still needs its zeros */
        sal_din_zero_fresh(c, 0);
        return SAL_OK;
    }
    float lo, hi;
    SAL_TRY(clip_bound(c, 1, -FLT_MAX, &lo));
    SAL_TRY(clip_bound(c, 2, FLT_MAX, &hi));
    const float *x = sal_in_f(c, 0), *dy = sal_f32(c->dout[0]);
    bool inputs = c->g->opset >= 11;
    float *dlo = inputs && c->n->nin > 1 && c->din[1] ? sal_f32(c->din[1]) : NULL;
    float *dhi = inputs && c->n->nin > 2 && c->din[2] ? sal_f32(c->din[2]) : NULL;
    /* branch-free (a mispredicted branch per element cost more than the memory traffic) */
    if (dx) SAL_PAR_SPLIT(n > PAR_MIN, n, i0, i1, clip_grad(dx, dy, x, lo, hi, i0, i1, c->din_fresh & 1));
    if (!dlo && !dhi) return SAL_OK;
    double glo = 0, ghi = 0;
    SAL_PAR_FOR(
        n > PAR_MIN, "omp parallel for reduction(+ : glo, ghi)", for (int64_t i = 0; i < n; i++) {
            if (x[i] > lo && x[i] < hi) continue;
            if (x[i] <= lo && lo < hi)
                glo += dy[i];
            else
                ghi += dy[i];
        });
    if (dlo) dlo[0] += (float)glo;
    if (dhi) dhi[0] += (float)ghi;
    return SAL_OK;
}

const sal_op sal_op_Clip = {
    SAL_OP_HEAD(Clip), .traits = SAL_TR_MONOTONE, .min_in = 1, .max_in = 3, .min_out = 1, .max_out = 1,
    .infer = clip_infer, .forward = clip_forward, .backward = clip_backward,
    .overwrites = true, .bwd_writes = 0x1, .blk = SAL_BLK_SAME,
    .bwd_known = true, .bwd_self = 0x7, .bwd_other = 0x7, /* the input and the bounds, not the output */
};
