/* ReduceSum and ReduceMean over a set of axes, float32. Axes come from the `axes` attribute, except
 * from opset 13 (ReduceSum) or 18 (ReduceMean), which take them as an optional int64 input. */
#include "ops.h"

/* The input's index space with the output's element strides (0 along reduced axes), plus the
 * output shape. Size-1 dims are dropped and contiguous runs merged, as in elementwise.c. */
typedef struct {
    int r;
    int64_t dim[SAL_MAX_DIMS], so[SAL_MAX_DIMS];
    int64_t n, count; /* input elements; input elements per output element */
    bool noop;        /* empty axes with noop_with_empty_axes: the identity */
    int ondim;
    int64_t odim[SAL_MAX_DIMS];
} red_plan;

static sal_status red_plan_make(const sal_opctx *c, bool mean, red_plan *p) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0];
    const int64_t *axes = NULL;
    int64_t naxes = 0;
    bool axes_input = c->g->opset >= (mean ? 18 : 13);
    if (axes_input) {
        const sal_tensor *a = c->n->nin > 1 ? c->in[1] : NULL;
        if (a) {
            if (a->dtype != SAL_I64 || a->ndim > 1)
                return sal_node_fail(c->n, SAL_ERR_ARG, "axes must be a 1-D int64 tensor");
            axes = a->data;
            naxes = sal_tensor_numel(a);
        }
    } else {
        int k = 0;
        axes = sal_attr_ints(c->n, "axes", &k);
        naxes = k;
    }
    bool red[SAL_MAX_DIMS] = {false};
    memset(p, 0, sizeof *p);
    if (naxes == 0) {
        /* noop_with_empty_axes comes with the axes input */
        p->noop = axes_input && sal_attr_int(c->n, "noop_with_empty_axes", 0) != 0;
        for (int i = 0; i < x->ndim; i++) red[i] = !p->noop;
    }
    for (int64_t k = 0; k < naxes; k++) {
        int64_t ax = axes[k] < 0 ? axes[k] + x->ndim : axes[k];
        if (ax < 0 || ax >= x->ndim)
            return sal_node_fail(c->n, SAL_ERR_ARG, "axis %lld out of range for rank %d", (long long)axes[k], x->ndim);
        if (red[ax]) return sal_node_fail(c->n, SAL_ERR_ARG, "axis %lld given twice", (long long)axes[k]);
        red[ax] = true;
    }
    bool keep = sal_attr_int(c->n, "keepdims", 1) != 0;
    int64_t so[SAL_MAX_DIMS], acc = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        so[i] = red[i] ? 0 : acc;
        if (!red[i]) acc *= x->dim[i];
    }
    p->n = 1;
    p->count = 1;
    for (int i = 0; i < x->ndim; i++) {
        p->n *= x->dim[i];
        if (red[i]) p->count *= x->dim[i];
        if (!red[i] || keep) p->odim[p->ondim++] = red[i] ? 1 : x->dim[i];
        if (x->dim[i] == 1) continue;
        int k = p->r - 1;
        if (k >= 0 && p->so[k] == so[i] * x->dim[i]) {
            p->dim[k] *= x->dim[i];
            p->so[k] = so[i];
            continue;
        }
        p->dim[p->r] = x->dim[i];
        p->so[p->r] = so[i];
        p->r++;
    }
    if (p->r == 0) {
        p->r = 1;
        p->dim[0] = 1;
    }
    return SAL_OK;
}

static sal_status red_infer(sal_opctx *c, bool mean) {
    red_plan p;
    SAL_TRY(red_plan_make(c, mean, &p));
    sal_tensor *o = c->out[0];
    o->dtype = SAL_F32;
    if (p.noop) {
        sal_same_shape(c, 0, 0);
        return SAL_OK;
    }
    o->ndim = p.ondim;
    memcpy(o->dim, p.odim, sizeof(int64_t) * (size_t)p.ondim);
    return SAL_OK;
}

/* Output offset of the first element of inner run o. */
static inline int64_t red_offset(const red_plan *p, int64_t o) {
    int64_t off = 0;
    for (int k = p->r - 2; k >= 0; k--) {
        off += (o % p->dim[k]) * p->so[k];
        o /= p->dim[k];
    }
    return off;
}

static sal_status red_forward(sal_opctx *c, bool mean) {
    red_plan p;
    SAL_TRY(red_plan_make(c, mean, &p));
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    if (p.noop) return sal_copy_forward(c);
    int64_t ny = sal_tensor_numel(c->out[0]);
    /* sums in double: a mean over a large image should not depend on summation order */
    double *acc = sal_scratch_get(c->ws, 0, (size_t)(ny ? ny : 1) * sizeof *acc);
    if (!acc) return sal_node_fail(c->n, SAL_ERR_NOMEM, "%s", sal_last_error());
    memset(acc, 0, (size_t)ny * sizeof *acc);
    int64_t inner = p.dim[p.r - 1], s = p.so[p.r - 1];
    for (int64_t o = 0; inner && o < p.n / inner; o++) {
        double *a = acc + red_offset(&p, o);
        const float *xx = x + o * inner;
        if (s == 0) {
            double t = 0;
            for (int64_t j = 0; j < inner; j++) t += xx[j];
            a[0] += t;
        } else {
            for (int64_t j = 0; j < inner; j++) a[j * s] += xx[j];
        }
    }
    /* a mean over no elements is 0/0 = NaN, as in numpy */
    double scale = mean ? 1.0 / (double)p.count : 1.0;
    for (int64_t i = 0; i < ny; i++) y[i] = (float)(acc[i] * scale);
    return SAL_OK;
}

static sal_status red_backward(sal_opctx *c, bool mean) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    red_plan p;
    SAL_TRY(red_plan_make(c, mean, &p));
    if (p.noop) return sal_copy_backward(c);
    const float *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    float scale = mean ? (float)(1.0 / (double)p.count) : 1.0f;
    int64_t inner = p.dim[p.r - 1], s = p.so[p.r - 1], nouter = inner ? p.n / inner : 0;
#pragma omp parallel for if (p.n > 65536)
    for (int64_t o = 0; o < nouter; o++) {
        const float *g = dy + red_offset(&p, o);
        float *d = dx + o * inner;
        for (int64_t j = 0; j < inner; j++) d[j] += scale * g[j * s];
    }
    return SAL_OK;
}

static sal_status sum_infer(sal_opctx *c) { return red_infer(c, false); }
static sal_status sum_forward(sal_opctx *c) { return red_forward(c, false); }
static sal_status sum_backward(sal_opctx *c) { return red_backward(c, false); }
static sal_status mean_infer(sal_opctx *c) { return red_infer(c, true); }
static sal_status mean_forward(sal_opctx *c) { return red_forward(c, true); }
static sal_status mean_backward(sal_opctx *c) { return red_backward(c, true); }

const sal_op sal_op_ReduceSum = {
    SAL_OP_HEAD(ReduceSum), .traits = SAL_TR_ADDITIVE, .lin_in = 0x1, .min_in = 1, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = sum_infer, .forward = sum_forward, .backward = sum_backward,
};

const sal_op sal_op_ReduceMean = {
    SAL_OP_HEAD(ReduceMean), .traits = SAL_TR_ADDITIVE, .lin_in = 0x1, .min_in = 1, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = mean_infer, .forward = mean_forward, .backward = mean_backward,
};
