/* Pad, constant mode. Opset < 11 takes pads and value from attributes; later opsets from the inputs
 * pads (int64, constant or computed), constant_value and (opset 18) axes. Negative pads crop.
 * Float and int64 data are padded; gradients flow to the data and to constant_value. */
#include "ops.h"

typedef struct {
    bool from_attr;
    int npads;
    int64_t pads[2 * SAL_MAX_DIMS];
    float value;
} pad_p;

static sal_status pad_init(sal_node *n, const sal_model *g) {
    pad_p *p = sal_calloc(1, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    n->p = p;
    const char *mode = sal_attr_string(n, "mode", "constant");
    if (strcmp(mode, "constant"))
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "mode '%s' is not supported; only 'constant' is", mode);
    if (g->opset < 11) {
        p->from_attr = true;
        const int64_t *v = sal_attr_ints(n, "pads", &p->npads);
        if (!v) return sal_node_fail(n, SAL_ERR_FORMAT, "the pads attribute is required before opset 11");
        if (p->npads > 2 * SAL_MAX_DIMS)
            return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "pads has %d entries; at most %d are supported", p->npads,
                                 2 * SAL_MAX_DIMS);
        memcpy(p->pads, v, sizeof *v * (size_t)p->npads);
        p->value = sal_attr_float(n, "value", 0.0f);
    } else if (n->nin < 2 || n->in[1] < 0) {
        return sal_node_fail(n, SAL_ERR_FORMAT, "the pads input is required from opset 11 on");
    }
    return SAL_OK;
}

/* Pads before (pb) and after (pe) every dimension of the data, and the output shape. */
typedef struct {
    int rank;
    int64_t pb[SAL_MAX_DIMS], pe[SAL_MAX_DIMS], out[SAL_MAX_DIMS];
} pad_geom;

static sal_status pad_plan(const sal_opctx *c, pad_geom *q) {
    const pad_p *p = c->n->p;
    const sal_tensor *X = c->in[0];
    if (!X) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input 0 is missing");
    if (X->dtype != SAL_F32 && X->dtype != SAL_I64)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "data type %s is not supported", sal_dtype_name(X->dtype));
    memset(q, 0, sizeof *q);
    q->rank = X->ndim;
    const int64_t *pads = p->pads;
    int npads = p->npads;
    int axes[SAL_MAX_DIMS], naxes = X->ndim;
    for (int i = 0; i < X->ndim; i++) axes[i] = i;
    if (!p->from_attr) {
        const sal_tensor *P = c->in[1];
        if (!P || P->dtype != SAL_I64 || P->ndim != 1)
            return sal_node_fail(c->n, SAL_ERR_FORMAT, "pads must be a 1-D int64 tensor");
        pads = P->data;
        npads = (int)(P->dim[0] < 4 * SAL_MAX_DIMS ? P->dim[0] : 4 * SAL_MAX_DIMS);
        const sal_tensor *A = c->n->nin > 3 ? c->in[3] : NULL;
        if (A) {
            if (A->dtype != SAL_I64 || A->ndim != 1 || A->dim[0] > X->ndim)
                return sal_node_fail(c->n, SAL_ERR_FORMAT, "axes must be a 1-D int64 tensor of at most %d entries",
                                     X->ndim);
            naxes = (int)A->dim[0];
            for (int i = 0; i < naxes; i++) {
                int64_t a = ((const int64_t *)A->data)[i];
                if (a < 0) a += X->ndim;
                if (a < 0 || a >= X->ndim)
                    return sal_node_fail(c->n, SAL_ERR_FORMAT, "axis %lld out of range for rank %d",
                                         (long long)((const int64_t *)A->data)[i], X->ndim);
                axes[i] = (int)a;
            }
        }
    }
    if (npads != 2 * naxes)
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "pads has %d entries; expected %d for %d axes", npads, 2 * naxes,
                             naxes);
    /* no axis can be longer than a tensor may hold (2^40), so larger pads are errors; bounding
     * them also keeps the sums below from overflowing */
    const int64_t lim = (int64_t)1 << 40;
    for (int i = 0; i < npads; i++)
        if (pads[i] < -lim || pads[i] > lim)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "pads[%d] = %lld is out of range", i, (long long)pads[i]);
    for (int i = 0; i < naxes; i++) {
        q->pb[axes[i]] += pads[i];
        q->pe[axes[i]] += pads[naxes + i];
    }
    for (int i = 0; i < X->ndim; i++) {
        q->out[i] = X->dim[i] + q->pb[i] + q->pe[i];
        if (q->out[i] < 0)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "pads %lld and %lld remove more than the %lld entries of axis %d",
                                 (long long)q->pb[i], (long long)q->pe[i], (long long)X->dim[i], i);
    }
    const sal_tensor *V = c->n->nin > 2 ? c->in[2] : NULL;
    if (V && (V->dtype != X->dtype || sal_tensor_numel(V) != 1))
        return sal_node_fail(c->n, SAL_ERR_FORMAT, "constant_value must be one value of the data's type");
    return SAL_OK;
}

static sal_status pad_infer(sal_opctx *c) {
    pad_geom q;
    SAL_TRY(pad_plan(c, &q));
    sal_tensor *o = c->out[0];
    o->dtype = c->in[0]->dtype;
    o->ndim = q.rank;
    memcpy(o->dim, q.out, sizeof *q.out * (size_t)q.rank);
    return SAL_OK;
}

/* Rows are the last axis. For output row r: the offset of its input row, or -1 when the row lies in
 * the padding of an outer axis. */
static int64_t pad_src_row(const pad_geom *q, const int64_t *in, int64_t r) {
    int64_t off = 0, stride = 1;
    for (int i = q->rank - 2; i >= 0; i--) {
        int64_t o = r % q->out[i], x = o - q->pb[i];
        r /= q->out[i];
        if (x < 0 || x >= in[i]) return -1;
        off += x * stride;
        stride *= in[i];
    }
    return off * in[q->rank - 1];
}

/* Rows, row lengths, and the output range [lo, hi) of a row copied from the input. */
static void pad_rows(const pad_geom *q, const int64_t *in, int64_t *rows, int64_t *lin, int64_t *lout, int64_t *lo,
                     int64_t *hi) {
    int last = q->rank - 1;
    *rows = 1;
    for (int i = 0; i < last; i++) *rows *= q->out[i];
    *lin = in[last];
    *lout = q->out[last];
    *lo = q->pb[last] > 0 ? q->pb[last] : 0;
    *hi = *lin + q->pb[last] < *lout ? *lin + q->pb[last] : *lout;
    if (*hi < *lo) *hi = *lo;
}

static sal_status pad_forward(sal_opctx *c) {
    pad_geom q;
    SAL_TRY(pad_plan(c, &q));
    const pad_p *p = c->n->p;
    const sal_tensor *X = c->in[0], *V = c->n->nin > 2 ? c->in[2] : NULL;
    size_t es = sal_dtype_size(X->dtype);
    if (q.rank == 0) {
        memcpy(c->out[0]->data, X->data, es);
        return SAL_OK;
    }
    float vf = V && X->dtype == SAL_F32 ? sal_f32(V)[0] : p->value;
    int64_t vi = V && X->dtype == SAL_I64 ? ((const int64_t *)V->data)[0] : (int64_t)p->value;
    int64_t rows, lin, lout, lo, hi;
    pad_rows(&q, X->dim, &rows, &lin, &lout, &lo, &hi);
    const char *x = X->data;
    char *y = c->out[0]->data;
    SAL_PAR_FOR(
        rows * lout > 65536, "omp parallel for schedule(static)", for (int64_t r = 0; r < rows; r++) {
            int64_t src = pad_src_row(&q, X->dim, r), a = src < 0 ? lout : lo, b = src < 0 ? lout : hi;
            char *yr = y + (size_t)(r * lout) * es;
            /* the output is zeroed: only a non-zero constant needs writing */
            if (X->dtype == SAL_F32 && vf != 0.0f) {
                float *f = (float *)yr;
                for (int64_t i = 0; i < a; i++) f[i] = vf;
                for (int64_t i = b; i < lout; i++) f[i] = vf;
            } else if (X->dtype == SAL_I64 && vi != 0) {
                int64_t *f = (int64_t *)yr;
                for (int64_t i = 0; i < a; i++) f[i] = vi;
                for (int64_t i = b; i < lout; i++) f[i] = vi;
            }
            if (b > a) memcpy(yr + (size_t)a * es, x + (size_t)(src + a - q.pb[q.rank - 1]) * es, (size_t)(b - a) * es);
        });
    return SAL_OK;
}

static sal_status pad_backward(sal_opctx *c) {
    pad_geom q;
    SAL_TRY(pad_plan(c, &q));
    if (!c->dout[0]) return SAL_OK;
    const sal_tensor *X = c->in[0];
    float *dX = c->din[0] ? sal_f32(c->din[0]) : NULL;
    float *dV = c->n->nin > 2 && c->in[2] && c->din[2] ? sal_f32(c->din[2]) : NULL;
    const float *dY = sal_f32(c->dout[0]);
    if (q.rank == 0) {
        if (dX) dX[0] += dY[0];
        return SAL_OK;
    }
    int64_t rows, lin, lout, lo, hi;
    pad_rows(&q, X->dim, &rows, &lin, &lout, &lo, &hi);
    double dv = 0.0; /* the constant's gradient: the sum of dY over every padded position */
    SAL_PAR_FOR(
        rows * lout > 65536, "omp parallel for schedule(static) reduction(+ : dv)", for (int64_t r = 0; r < rows; r++) {
            int64_t src = pad_src_row(&q, X->dim, r), a = src < 0 ? lout : lo, b = src < 0 ? lout : hi;
            const float *dyr = dY + r * lout;
            if (dX && b > a) {
                float *dxr = dX + src + a - q.pb[q.rank - 1];
                for (int64_t i = 0; i < b - a; i++) dxr[i] += dyr[a + i];
            }
            if (dV) {
                for (int64_t i = 0; i < a; i++) dv += dyr[i];
                for (int64_t i = b; i < lout; i++) dv += dyr[i];
            }
        });
    if (dV) dV[0] += (float)dv;
    return SAL_OK;
}

/* Pads of zero (Swin pads each stage to a multiple of its window, 56 and 28 already are) copy the data. */
static bool pad_view_at(sal_opctx *c, int64_t *off) {
    pad_geom q;
    if (pad_plan(c, &q) != SAL_OK) return false;
    for (int i = 0; i < q.rank; i++)
        if (q.pb[i] || q.pe[i]) return false;
    *off = 0;
    return true;
}

const sal_op sal_op_Pad = {
    SAL_OP_HEAD(Pad), .traits = SAL_TR_ROUTE, .min_in = 1, .max_in = 4, .min_out = 1, .max_out = 1,
    .init = pad_init, .infer = pad_infer, .forward = pad_forward, .backward = pad_backward, SAL_BWD_ROUTE,
    .view_at = pad_view_at,
};
