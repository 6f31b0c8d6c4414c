/* Reductions over a set of axes, float32: ReduceSum, ReduceMean, ReduceSumSquare, ReduceL2,
 * ReduceMax, ReduceMin; and ArgMax, ArgMin along one axis (int64 indices, no gradient).
 * Axes come from the `axes` attribute, except from opset 13 (ReduceSum) or 18 (the others), which
 * take them as an optional int64 input with noop_with_empty_axes. */
#include "ops.h"
#include <math.h>

typedef enum { RED_SUM, RED_MEAN, RED_SUMSQ, RED_L2, RED_MAX, RED_MIN } red_kind;

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

static sal_status red_plan_make(const sal_opctx *c, red_kind kind, red_plan *p) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0];
    const int64_t *axes = NULL;
    int64_t naxes = 0;
    bool axes_input = c->g->opset >= (kind == RED_SUM ? 13 : 18);
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

static sal_status red_infer(sal_opctx *c, red_kind kind) {
    red_plan p;
    SAL_TRY(red_plan_make(c, kind, &p));
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

/* max (min: of -v) that keeps a NaN once seen, as numpy does */
static inline float fmax_nan(float a, float v) { return v > a || isnan(v) ? v : a; }
static inline float fmin_nan(float a, float v) { return v < a || isnan(v) ? v : a; }

/* Reductions that noop_with_empty_axes leaves as the identity still apply their elementwise part:
 * the spec's reference squares for ReduceSumSquare and takes |x| for ReduceL2. */
static sal_status red_noop_forward(sal_opctx *c, red_kind kind) {
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    int64_t n = sal_tensor_numel(c->in[0]);
    for (int64_t i = 0; i < n; i++) y[i] = kind == RED_SUMSQ ? x[i] * x[i] : kind == RED_L2 ? fabsf(x[i]) : x[i];
    return SAL_OK;
}

/* The sum (of squares when sq) of n contiguous floats, in double. */
static double run_sum(const float *x, int64_t n, bool sq) {
    double t = 0;
    if (sq) {
#pragma omp simd reduction(+ : t)
        for (int64_t j = 0; j < n; j++) t += (double)x[j] * x[j];
    } else {
#pragma omp simd reduction(+ : t)
        for (int64_t j = 0; j < n; j++) t += x[j];
    }
    return t;
}

static sal_status red_forward(sal_opctx *c, red_kind kind) {
    red_plan p;
    SAL_TRY(red_plan_make(c, kind, &p));
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    if (p.noop) return red_noop_forward(c, kind);
    int64_t ny = sal_tensor_numel(c->out[0]);
    int64_t inner = p.dim[p.r - 1], s = p.so[p.r - 1];
    if (kind == RED_MAX || kind == RED_MIN) {
        /* the maximum of nothing is -inf, as the reduction's identity */
        float init = kind == RED_MAX ? -INFINITY : INFINITY;
        for (int64_t i = 0; i < ny; i++) y[i] = init;
        for (int64_t o = 0; inner && o < p.n / inner; o++) {
            float *a = y + red_offset(&p, o);
            const float *xx = x + o * inner;
            if (kind == RED_MAX)
                for (int64_t j = 0; j < inner; j++) a[j * s] = fmax_nan(a[j * s], xx[j]);
            else
                for (int64_t j = 0; j < inner; j++) a[j * s] = fmin_nan(a[j * s], xx[j]);
        }
        return SAL_OK;
    }
    /* sums in double: a mean over a large image should not depend on summation order */
    double *acc = sal_scratch_get(c->ws, 0, (size_t)(ny ? ny : 1) * sizeof *acc);
    if (!acc) return sal_node_fail(c->n, SAL_ERR_NOMEM, "%s", sal_last_error());
    memset(acc, 0, (size_t)ny * sizeof *acc);
    bool sq = kind == RED_SUMSQ || kind == RED_L2;
    if (s == 0 && inner && p.n / inner == ny) { /* one contiguous run per output (LayerNorm's statistics) */
        SAL_PAR_FOR(p.n > 65536, "omp parallel for",
                    for (int64_t o = 0; o < ny; o++) acc[red_offset(&p, o)] = run_sum(x + o * inner, inner, sq););
    } else {
        for (int64_t o = 0; inner && o < p.n / inner; o++) {
            double *a = acc + red_offset(&p, o);
            const float *xx = x + o * inner;
            if (s == 0) {
                a[0] += run_sum(xx, inner, sq);
            } else if (sq) {
                for (int64_t j = 0; j < inner; j++) a[j * s] += (double)xx[j] * xx[j];
            } else {
                for (int64_t j = 0; j < inner; j++) a[j * s] += xx[j];
            }
        }
    }
    /* a mean over no elements is 0/0 = NaN, as in numpy */
    double scale = kind == RED_MEAN ? 1.0 / (double)p.count : 1.0;
    for (int64_t i = 0; i < ny; i++) y[i] = (float)(kind == RED_L2 ? sqrt(acc[i]) : acc[i] * scale);
    return SAL_OK;
}

/* dx += f(x, y) dy along each inner run, where the output element of x[o*inner + j] is at
 * red_offset(o) + j*s. */
#define RED_BACKWARD_LOOP(EXPR)                                                                    \
    SAL_PAR_FOR(p.n > 65536, "omp parallel for", for (int64_t o = 0; o < nouter; o++) {            \
        const int64_t off = red_offset(&p, o);                                                     \
        const float *g = dy + off, *yy = y + off, *xx = x + o * inner;                             \
        float *d = dx + o * inner;                                                                 \
        for (int64_t j = 0; j < inner; j++) d[j] += (EXPR);                                        \
        (void)yy;                                                                                  \
        (void)xx;                                                                                  \
    });

static sal_status red_backward(sal_opctx *c, red_kind kind) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    red_plan p;
    SAL_TRY(red_plan_make(c, kind, &p));
    const float *dy = sal_f32(c->dout[0]), *x = sal_in_f(c, 0), *y = sal_out_f(c, 0);
    float *dx = sal_f32(c->din[0]);
    if (p.noop) {
        int64_t n = sal_tensor_numel(c->in[0]);
        for (int64_t i = 0; i < n; i++)
            dx[i] += kind == RED_SUMSQ ? 2 * x[i] * dy[i] : kind == RED_L2 ? (float)((x[i] > 0) - (x[i] < 0)) * dy[i] : dy[i];
        return SAL_OK;
    }
    int64_t inner = p.dim[p.r - 1], s = p.so[p.r - 1], nouter = inner ? p.n / inner : 0;
    switch (kind) {
    case RED_SUM:
    case RED_MEAN: {
        float scale = kind == RED_MEAN ? (float)(1.0 / (double)p.count) : 1.0f;
        RED_BACKWARD_LOOP(scale * g[j * s]);
        break;
    }
    case RED_SUMSQ:
        RED_BACKWARD_LOOP(2.0f * xx[j] * g[j * s]);
        break;
    case RED_L2: /* x / |x|: 0 at the origin, a subgradient */
        RED_BACKWARD_LOOP(yy[j * s] > 0 ? xx[j] / yy[j * s] * g[j * s] : 0.0f);
        break;
    case RED_MAX:
    case RED_MIN: {
        /* the gradient is shared equally by the elements that attain the extremum (as PyTorch's
         * amax does): count them per output first */
        int64_t ny = sal_tensor_numel(c->out[0]);
        float *ties = sal_scratch_get(c->ws, 0, (size_t)(ny ? ny : 1) * sizeof *ties);
        if (!ties) return sal_node_fail(c->n, SAL_ERR_NOMEM, "%s", sal_last_error());
        memset(ties, 0, (size_t)ny * sizeof *ties);
        for (int64_t o = 0; o < nouter; o++) {
            const int64_t off = red_offset(&p, o);
            const float *xx = x + o * inner;
            for (int64_t j = 0; j < inner; j++) ties[off + j * s] += xx[j] == y[off + j * s];
        }
        const float *t = ties;
        RED_BACKWARD_LOOP(xx[j] == yy[j * s] ? g[j * s] / t[off + j * s] : 0.0f);
        break;
    }
    }
    return SAL_OK;
}

#define RED_FNS(NAME, KIND)                                                                        \
    static sal_status NAME##_infer(sal_opctx *c) { return red_infer(c, KIND); }                   \
    static sal_status NAME##_forward(sal_opctx *c) { return red_forward(c, KIND); }               \
    static sal_status NAME##_backward(sal_opctx *c) { return red_backward(c, KIND); }
RED_FNS(sum, RED_SUM)
RED_FNS(mean, RED_MEAN)
RED_FNS(sumsq, RED_SUMSQ)
RED_FNS(l2, RED_L2)
RED_FNS(max, RED_MAX)
RED_FNS(min, RED_MIN)
#define RED_ENTRY(NAME, FN) SAL_OP_HEAD(NAME), .min_in = 1, .max_in = 2, .min_out = 1, .max_out = 1, \
    .infer = FN##_infer, .forward = FN##_forward, .backward = FN##_backward, .overwrites = true

const sal_op sal_op_ReduceSum = {RED_ENTRY(ReduceSum, sum), .traits = SAL_TR_ADDITIVE, .lin_in = 0x1};
const sal_op sal_op_ReduceMean = {RED_ENTRY(ReduceMean, mean), .traits = SAL_TR_ADDITIVE, .lin_in = 0x1};
/* not linear, not monotone in x: no traits, so rule-based methods refuse them by name */
const sal_op sal_op_ReduceSumSquare = {RED_ENTRY(ReduceSumSquare, sumsq)};
const sal_op sal_op_ReduceL2 = {RED_ENTRY(ReduceL2, l2)};
const sal_op sal_op_ReduceMax = {RED_ENTRY(ReduceMax, max)};
const sal_op sal_op_ReduceMin = {RED_ENTRY(ReduceMin, min)};

/* ---- ArgMax and ArgMin: int64 indices along one axis ---- */

typedef struct {
    int64_t outer, D, inner;
} arg_plan;

static sal_status arg_plan_make(sal_opctx *c, arg_plan *p, int64_t *axis) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0];
    int r = x->ndim > 0 ? x->ndim : 1;
    int64_t a = sal_attr_int(c->n, "axis", 0);
    if (a < -r || a >= r) return sal_node_fail(c->n, SAL_ERR_ARG, "axis %lld out of range for rank %d", (long long)a, x->ndim);
    *axis = a < 0 ? a + r : a;
    p->outer = p->inner = 1;
    p->D = x->ndim ? x->dim[*axis] : 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i < *axis) p->outer *= x->dim[i];
        if (i > *axis) p->inner *= x->dim[i];
    }
    if (p->D == 0 && p->outer * p->inner > 0)
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "no index of an empty axis to return");
    return SAL_OK;
}

static sal_status arg_infer(sal_opctx *c) {
    arg_plan p;
    int64_t axis;
    SAL_TRY(arg_plan_make(c, &p, &axis));
    const sal_tensor *x = c->in[0];
    sal_tensor *o = c->out[0];
    bool keep = sal_attr_int(c->n, "keepdims", 1) != 0;
    o->dtype = SAL_I64;
    o->ndim = 0;
    for (int i = 0; i < x->ndim; i++)
        if (i != axis || keep) o->dim[o->ndim++] = i == axis ? 1 : x->dim[i];
    return SAL_OK;
}

/* The first extremum, or the last with select_last_index; a NaN counts as the extremum (numpy). */
static sal_status arg_forward(sal_opctx *c, bool max) {
    arg_plan p;
    int64_t axis;
    SAL_TRY(arg_plan_make(c, &p, &axis));
    bool last = sal_attr_int(c->n, "select_last_index", 0) != 0;
    const float *x = sal_in_f(c, 0);
    int64_t *y = c->out[0]->data;
    SAL_PAR_FOR(
        p.outer * p.D * p.inner > 65536, "omp parallel for",
        for (int64_t o = 0; o < p.outer; o++) for (int64_t k = 0; k < p.inner; k++) {
            const float *xx = x + o * p.D * p.inner + k;
            int64_t best = 0;
            float b = xx[0];
            for (int64_t d = 1; d < p.D && !isnan(b); d++) {
                float v = xx[d * p.inner];
                bool better = isnan(v) || (max ? v > b : v < b) || (last && v == b);
                if (better) b = v, best = d;
            }
            y[o * p.inner + k] = best;
        });
    return SAL_OK;
}

static sal_status argmax_forward(sal_opctx *c) { return arg_forward(c, true); }
static sal_status argmin_forward(sal_opctx *c) { return arg_forward(c, false); }

/* Integer outputs: no gradient ever reaches them, so no backward. */
const sal_op sal_op_ArgMax = {
    SAL_OP_HEAD(ArgMax), .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = arg_infer, .forward = argmax_forward,
};
const sal_op sal_op_ArgMin = {
    SAL_OP_HEAD(ArgMin), .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = arg_infer, .forward = argmin_forward,
};
