/* CumSum along one axis (an int64 scalar input), inclusive or exclusive, forward or reverse.
 * y = L x with L a triangle of ones along the axis, so the gradient L^T dy is the same scan run in
 * the other direction. */
#include "ops.h"

typedef struct {
    int64_t outer, D, inner;
} cs_plan;

static sal_status cs_plan_make(const sal_opctx *c, cs_plan *p) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0], *a = c->in[1];
    if (!a) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input 1 (axis) is missing");
    if (a->dtype != SAL_I64 || sal_tensor_numel(a) != 1 || a->ndim > 1)
        return sal_node_fail(c->n, SAL_ERR_ARG, "axis must be an integer scalar");
    int64_t ax = ((const int64_t *)a->data)[0];
    if (x->ndim < 1 || ax < -x->ndim || ax >= x->ndim)
        return sal_node_fail(c->n, SAL_ERR_ARG, "axis %lld out of range for rank %d", (long long)ax, x->ndim);
    if (ax < 0) ax += x->ndim;
    p->outer = p->inner = 1;
    p->D = x->dim[ax];
    for (int i = 0; i < x->ndim; i++) {
        if (i < ax) p->outer *= x->dim[i];
        if (i > ax) p->inner *= x->dim[i];
    }
    return SAL_OK;
}

static sal_status cs_infer(sal_opctx *c) {
    cs_plan p;
    SAL_TRY(cs_plan_make(c, &p));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

/* dst += scan of src along D (rows of `inner` floats); acc: outer * inner floats of scratch. */
static void cs_scan(const cs_plan *p, const float *src, float *dst, float *acc, bool exclusive, bool reverse) {
    const int64_t D = p->D, in = p->inner;
    SAL_PAR_FOR(
        p->outer * D * in > 65536, "omp parallel for", for (int64_t o = 0; o < p->outer; o++) {
            float *a = acc + o * in;
            memset(a, 0, sizeof *a * (size_t)in);
            for (int64_t k = 0; k < D; k++) {
                int64_t d = reverse ? D - 1 - k : k;
                const float *x = src + (o * D + d) * in;
                float *y = dst + (o * D + d) * in;
                if (exclusive)
                    for (int64_t j = 0; j < in; j++) y[j] += a[j], a[j] += x[j];
                else
                    for (int64_t j = 0; j < in; j++) a[j] += x[j], y[j] += a[j];
            }
        });
}

static sal_status cs_run(sal_opctx *c, const float *src, float *dst, bool backward) {
    cs_plan p;
    SAL_TRY(cs_plan_make(c, &p));
    float *acc = sal_scratch_get(c->ws, 0, sizeof(float) * (size_t)(p.outer * p.inner + 1));
    if (!acc) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (CumSum)", c->n->name);
    bool excl = sal_attr_int(c->n, "exclusive", 0) != 0, rev = sal_attr_int(c->n, "reverse", 0) != 0;
    cs_scan(&p, src, dst, acc, excl, rev != backward);
    return SAL_OK;
}

static sal_status cs_forward(sal_opctx *c) { return cs_run(c, sal_in_f(c, 0), sal_out_f(c, 0), false); }

static sal_status cs_backward(sal_opctx *c) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    return cs_run(c, sal_f32(c->dout[0]), sal_f32(c->din[0]), true);
}

const sal_op sal_op_CumSum = {
    SAL_OP_HEAD(CumSum), .traits = SAL_TR_ADDITIVE, .lin_in = 0x1, .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = cs_infer, .forward = cs_forward, .backward = cs_backward,
};
