/* Softmax and LogSoftmax. Before opset 13 the input is flattened to 2-D at `axis` (default 1) and
 * each row is normalized; from opset 13 the normalization runs along the single axis (default -1). */
#include "ops.h"
#include <math.h>

/* The input as (outer, len, inner): the normalized vectors have len elements, stride inner. */
typedef struct {
    int64_t outer, len, inner;
} sm_plan;

static sal_status sm_plan_make(const sal_opctx *c, sm_plan *p) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0];
    bool old = c->g->opset < 13;
    int64_t axis0 = sal_attr_int(c->n, "axis", old ? 1 : -1), axis = axis0;
    if (axis < 0) axis += x->ndim;
    /* a scalar has one element along its implicit axis */
    bool ok = x->ndim == 0 ? axis0 == 0 || axis0 == -1 : axis >= 0 && axis < x->ndim;
    if (old && axis == x->ndim) ok = true; /* flattening at the rank: rows of one element */
    if (!ok) return sal_node_fail(c->n, SAL_ERR_ARG, "axis %lld out of range for rank %d", (long long)axis0, x->ndim);
    p->outer = p->len = p->inner = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i < axis) p->outer *= x->dim[i];
        else if (i == axis || old) p->len *= x->dim[i];
        else p->inner *= x->dim[i];
    }
    return SAL_OK;
}

static sal_status sm_infer(sal_opctx *c) {
    sm_plan p;
    SAL_TRY(sm_plan_make(c, &p));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

/* Rows [0, nvec) of len contiguous floats through sal_vsoftmax (dy NULL) or sal_vsoftmax_grad, in
 * blocks of rows that the threads share. */
static void sm_rows(int64_t nvec, int64_t len, float *out, const float *a, const float *dy, bool logsm, bool fresh) {
    const int64_t blk = len >= 4096 ? 1 : 4096 / len, nb = (nvec + blk - 1) / blk;
    SAL_PAR_FOR(
        nvec * len > 65536, "omp parallel for", for (int64_t b = 0; b < nb; b++) {
            int64_t r0 = b * blk, n = nvec - r0 < blk ? nvec - r0 : blk;
            if (dy)
                sal_vsoftmax_grad(out + r0 * len, dy + r0 * len, a + r0 * len, n, len, fresh);
            else
                sal_vsoftmax(out + r0 * len, a + r0 * len, n, len, logsm);
        });
}

/* Shifting by the maximum keeps exp from overflowing; each exponential is taken once, in float
 * (within an ulp), and summed in double. */
static sal_status sm_forward(sal_opctx *c, bool logsm) {
    sm_plan p;
    SAL_TRY(sm_plan_make(c, &p));
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    int64_t nvec = p.outer * p.inner;
    if (p.inner == 1) { /* contiguous vectors (the last axis, as attention's): vectorized kernels */
        sm_rows(nvec, p.len, y, x, NULL, logsm, false);
        return SAL_OK;
    }
    SAL_PAR_FOR(
        nvec * p.len > 65536, "omp parallel for", for (int64_t v = 0; v < nvec; v++) {
            int64_t base = (v / p.inner) * p.len * p.inner + v % p.inner, s = p.inner;
            float m = -INFINITY;
            for (int64_t j = 0; j < p.len; j++) m = fmaxf(m, x[base + j * s]);
            double sum = 0;
            if (logsm) {
                for (int64_t j = 0; j < p.len; j++) sum += expf(x[base + j * s] - m);
                double ls = log(sum);
                for (int64_t j = 0; j < p.len; j++) y[base + j * s] = (float)((double)x[base + j * s] - m - ls);
            } else {
                for (int64_t j = 0; j < p.len; j++) sum += y[base + j * s] = expf(x[base + j * s] - m);
                float r = (float)(1.0 / sum);
                for (int64_t j = 0; j < p.len; j++) y[base + j * s] *= r;
            }
        });
    return SAL_OK;
}

/* Softmax: dx = y (dy - <dy, y>). LogSoftmax: dx = dy - exp(y) sum(dy). */
static sal_status sm_backward(sal_opctx *c, bool logsm) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    sm_plan p;
    SAL_TRY(sm_plan_make(c, &p));
    const float *y = sal_out_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    const bool fresh = c->din_fresh & 1; /* dx not yet written: set it */
    int64_t nvec = p.outer * p.inner;
    if (p.inner == 1 && !logsm) {
        sm_rows(nvec, p.len, dx, y, dy, false, fresh);
        return SAL_OK;
    }
    SAL_PAR_FOR(
        nvec * p.len > 65536, "omp parallel for", for (int64_t v = 0; v < nvec; v++) {
            int64_t base = (v / p.inner) * p.len * p.inner + v % p.inner, s = p.inner;
            double dot = 0;
            for (int64_t j = 0; j < p.len; j++) {
                int64_t k = base + j * s;
                dot += logsm ? (double)dy[k] : (double)dy[k] * y[k];
            }
            for (int64_t j = 0; j < p.len; j++) {
                int64_t k = base + j * s;
                float g = logsm ? (float)(dy[k] - exp((double)y[k]) * dot) : (float)(y[k] * (dy[k] - dot));
                dx[k] = fresh ? g : dx[k] + g;
            }
        });
    return SAL_OK;
}

static sal_status softmax_forward(sal_opctx *c) { return sm_forward(c, false); }
static sal_status softmax_backward(sal_opctx *c) { return sm_backward(c, false); }
static sal_status logsoftmax_forward(sal_opctx *c) { return sm_forward(c, true); }
static sal_status logsoftmax_backward(sal_opctx *c) { return sm_backward(c, true); }

const sal_op sal_op_Softmax = {
    SAL_OP_HEAD(Softmax), .traits = SAL_TR_SOFTMAX, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = sm_infer, .forward = softmax_forward, .backward = softmax_backward,
    .overwrites = true, /* every output element written */
    .bwd_writes = 0x1, .bwd_known = true, .bwd_out = 0x1, /* the output, not the input */
};

const sal_op sal_op_LogSoftmax = {
    SAL_OP_HEAD(LogSoftmax), .traits = SAL_TR_SOFTMAX, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = sm_infer, .forward = logsoftmax_forward, .backward = logsoftmax_backward,
    .overwrites = true, /* every output element written */
    .bwd_writes = 0x1, .bwd_known = true, .bwd_out = 0x1,
};
