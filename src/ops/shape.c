/* Shape manipulation: Shape, Gather, Unsqueeze, Squeeze, Concat, Reshape, Transpose, Slice, Cast,
 * ConstantOfShape, Expand, Range. Data may be float32, int64 or bool (masks); the int64 case is the
 * shape arithmetic of exported models (x.view(x.size(0), -1) becomes Shape, Gather, Unsqueeze, Concat,
 * Reshape), which runs at every call because the batch size is only known then. */
#include "ops.h"
#include <math.h>

#define PAR_MIN 65536

/* Backward of ops whose float outputs do not depend on any float input (or that only have int64
 * outputs): nothing to add. Needed all the same, as the walker visits them whenever an int64 input
 * descends from a wanted value (Shape of the model input). */
static sal_status no_grad(sal_opctx *c) {
    (void)c;
    return SAL_OK;
}

static sal_status need_any(const sal_opctx *c, int i) {
    const sal_tensor *t = c->in[i];
    if (!t) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input %d is missing", i);
    if (t->dtype != SAL_F32 && t->dtype != SAL_I64 && t->dtype != SAL_BOOL)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED,
                             "input %d has data type %s; only float32, int64 and bool are supported", i,
                             sal_dtype_name(t->dtype));
    return SAL_OK;
}

/* An int64 vector (rank 0 or 1) input: its data and length. */
static sal_status need_i64_vec(const sal_opctx *c, int i, const char *what, const int64_t **v, int64_t *n) {
    const sal_tensor *t = c->in[i];
    if (!t) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input %d (%s) is missing", i, what);
    if (t->dtype != SAL_I64)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "%s must be int64, got data type %s", what,
                             sal_dtype_name(t->dtype));
    if (t->ndim > 1) return sal_node_fail(c->n, SAL_ERR_SHAPE, "%s must be 1-D, got rank %d", what, t->ndim);
    *v = t->data;
    *n = sal_tensor_numel(t);
    return SAL_OK;
}

static sal_status norm_axis(const sal_opctx *c, int64_t axis, int rank, int64_t *out) {
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank)
        return sal_node_fail(c->n, SAL_ERR_ARG, "axis %lld out of range for rank %d", (long long)axis, rank);
    *out = a;
    return SAL_OK;
}

/* An empty tensor may declare dimensions whose product overflows: its strides are all 0 (never
 * used to read), so that the views below never multiply huge numbers. */
static void row_strides(const sal_tensor *t, int64_t *st) {
    int64_t acc = sal_tensor_numel(t) > 0;
    for (int i = t->ndim - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= t->dim[i];
    }
}

/* ---- strided views: a contiguous output whose elements read the source at base + sum i_k st_k.
 * Transpose, Slice and Expand are all such views. ---- */

typedef struct {
    int r;
    int64_t dim[SAL_MAX_DIMS], st[SAL_MAX_DIMS];
    int64_t base, n;
    bool injective; /* no zero stride: backward may run in parallel */
} view_plan;

static void view_make(view_plan *v, int nd, const int64_t *dim, const int64_t *st, int64_t base) {
    memset(v, 0, sizeof *v);
    v->base = base;
    v->n = 1;
    v->injective = true;
    for (int i = 0; i < nd; i++)
        if (dim[i] == 0) { /* empty: nothing to copy, and the other dimensions may be huge */
            v->n = 0, v->r = 1, v->dim[0] = 1;
            return;
        }
    for (int i = 0; i < nd; i++) {
        v->n *= dim[i];
        if (dim[i] == 1) continue;
        if (st[i] == 0) v->injective = false;
        int k = v->r - 1;
        if (k >= 0 && v->st[k] == st[i] * dim[i]) { /* merge with the outer dim */
            v->dim[k] *= dim[i];
            v->st[k] = st[i];
            continue;
        }
        v->dim[v->r] = dim[i];
        v->st[v->r++] = st[i];
    }
    if (v->r == 0) {
        v->r = 1;
        v->dim[0] = 1;
        v->st[0] = 1;
    }
}

static inline int64_t view_offset(const view_plan *v, int64_t o) {
    int64_t off = v->base;
    for (int k = v->r - 2; k >= 0; k--) {
        off += (o % v->dim[k]) * v->st[k];
        o /= v->dim[k];
    }
    return off;
}

#define VIEW_COPY(T)                                                                               \
    do {                                                                                           \
        const T *s_ = src;                                                                         \
        T *d_ = dst;                                                                               \
        SAL_PAR_FOR(v->n > PAR_MIN, "omp parallel for", for (int64_t o = 0; o < nouter; o++) {    \
            const T *ss = s_ + view_offset(v, o);                                                  \
            T *dd = d_ + o * inner;                                                                \
            if (s == 1) memcpy(dd, ss, sizeof(T) * (size_t)inner); /* rows of a transpose */       \
            else for (int64_t j = 0; j < inner; j++) dd[j] = ss[j * s];                            \
        });                                                                                        \
    } while (0)

/* Tile rows [t0, t1) of 16 x 16 tiles: dst (A, B) = src read at src[b s + a], for the nblk blocks
 * of the view above its last two dimensions (block k's source at view_offset of its first row). */
SAL_CLONES void transpose_tiles(const view_plan *v, float *dst, const float *src, int64_t t0, int64_t t1) {
    const int64_t B = v->dim[v->r - 1], s = v->st[v->r - 1], A = v->dim[v->r - 2], ta = (A + 15) / 16;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t k = t / ta, a0 = t % ta * 16, na = A - a0 < 16 ? A - a0 : 16;
        const float *sk = src + view_offset(v, k * A) + a0;
        float *dk = dst + (k * A + a0) * B;
        for (int64_t b0 = 0; b0 < B; b0 += 16) {
            const int64_t nb = B - b0 < 16 ? B - b0 : 16;
            if (na == 16 && nb == 16)
                for (int64_t a = 0; a < 16; a++)
#pragma omp simd
                    for (int64_t b = 0; b < 16; b++) dk[a * B + b0 + b] = sk[(b0 + b) * s + a];
            else
                for (int64_t a = 0; a < na; a++)
                    for (int64_t b = 0; b < nb; b++) dk[a * B + b0 + b] = sk[(b0 + b) * s + a];
        }
    }
}

static void view_gather(const view_plan *v, void *dst, const void *src, size_t es) {
    int64_t inner = v->dim[v->r - 1], s = v->st[v->r - 1], nouter = inner ? v->n / inner : 0;
    if (es == 4 && v->r >= 2 && v->st[v->r - 2] == 1 && s != 1 && inner >= 16 && v->dim[v->r - 2] >= 16) {
        /* a transpose of the last two dimensions: in tiles, whose reads stay within 16 lines where a
         * row gathered at stride s read a line (a page, for a plane's stride) per element: 1.6x */
        int64_t A = v->dim[v->r - 2], ntile = nouter / A * ((A + 15) / 16);
        SAL_PAR_SPLIT(v->n > PAR_MIN, ntile, t0, t1, transpose_tiles(v, dst, src, t0, t1));
        return;
    }
    if (es == 8) VIEW_COPY(int64_t);
    else if (es == 4) VIEW_COPY(float);
    else VIEW_COPY(uint8_t);
}

/* dsrc += dy through the view, or dsrc = dy (set: the view covers dsrc once, as a permutation). */
static void scatter_rows(const view_plan *v, float *dsrc, const float *dy, bool set, int64_t o0, int64_t o1) {
    int64_t inner = v->dim[v->r - 1], s = v->st[v->r - 1];
    for (int64_t o = o0; o < o1; o++) {
        float *d = dsrc + view_offset(v, o);
        const float *g = dy + o * inner;
        if (set && s == 1)
            memcpy(d, g, sizeof(float) * (size_t)inner);
        else if (set)
            for (int64_t j = 0; j < inner; j++) d[j * s] = g[j];
        else if (s == 1)
            sal_vadd(d, g, inner);
        else
            for (int64_t j = 0; j < inner; j++) d[j * s] += g[j];
    }
}

static void view_scatter_add(const view_plan *v, float *dsrc, const float *dy, bool set) {
    int64_t inner = v->dim[v->r - 1], nouter = inner ? v->n / inner : 0;
    SAL_PAR_SPLIT(v->injective && v->n > PAR_MIN, nouter, o0, o1, scatter_rows(v, dsrc, dy, set, o0, o1));
}

static sal_status f32_view_backward(sal_opctx *c, const view_plan *v) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    view_scatter_add(v, sal_f32(c->din[0]), sal_f32(c->dout[0]), c->din_fresh & 1);
    return SAL_OK;
}

/* ---- Shape (start and end from opset 15) ---- */

static void shape_range(const sal_opctx *c, int64_t *start, int64_t *end) {
    int64_t r = c->in[0]->ndim, s = sal_attr_int(c->n, "start", 0), e = sal_attr_int(c->n, "end", r);
    if (s < 0) s += r;
    if (e < 0) e += r;
    *start = s < 0 ? 0 : s > r ? r : s;
    *end = e < 0 ? 0 : e > r ? r : e;
    if (*end < *start) *end = *start;
}

static sal_status shape_infer(sal_opctx *c) {
    if (!c->in[0]) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input 0 is missing");
    int64_t s, e;
    shape_range(c, &s, &e);
    sal_tensor *o = c->out[0];
    o->dtype = SAL_I64;
    o->ndim = 1;
    o->dim[0] = e - s;
    return SAL_OK;
}

static sal_status shape_forward(sal_opctx *c) {
    int64_t s, e;
    shape_range(c, &s, &e);
    int64_t *y = c->out[0]->data;
    for (int64_t i = s; i < e; i++) y[i - s] = c->in[0]->dim[i];
    return SAL_OK;
}

const sal_op sal_op_Shape = {
    SAL_OP_HEAD(Shape), .traits = SAL_TR_ROUTE, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = shape_infer, .forward = shape_forward, .backward = no_grad, .bwd_known = true,
};

/* ---- Gather: data (outer, D, inner), indices of any shape, along one axis ---- */

typedef struct {
    int64_t outer, D, inner, nidx;
} gather_plan;

static sal_status gather_plan_make(const sal_opctx *c, gather_plan *p) {
    SAL_TRY(need_any(c, 0));
    const sal_tensor *x = c->in[0], *ix = c->in[1];
    if (!ix) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input 1 (indices) is missing");
    if (ix->dtype != SAL_I64)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "indices must be int64, got data type %s",
                             sal_dtype_name(ix->dtype));
    if (x->ndim < 1) return sal_node_fail(c->n, SAL_ERR_SHAPE, "data must have rank >= 1");
    if (x->ndim - 1 + ix->ndim > SAL_MAX_DIMS)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "the output would have rank %d (at most %d supported)",
                             x->ndim - 1 + ix->ndim, SAL_MAX_DIMS);
    int64_t axis = 0;
    SAL_TRY(norm_axis(c, sal_attr_int(c->n, "axis", 0), x->ndim, &axis));
    p->outer = p->inner = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i < axis) p->outer *= x->dim[i];
        if (i > axis) p->inner *= x->dim[i];
    }
    p->D = x->dim[axis];
    p->nidx = sal_tensor_numel(ix);
    const int64_t *id = ix->data;
    for (int64_t k = 0; k < p->nidx; k++)
        if (id[k] < -p->D || id[k] >= p->D)
            return sal_node_fail(c->n, SAL_ERR_ARG, "index %lld out of range for a dimension of size %lld",
                                 (long long)id[k], (long long)p->D);
    return SAL_OK;
}

static sal_status gather_infer(sal_opctx *c) {
    gather_plan p;
    SAL_TRY(gather_plan_make(c, &p));
    const sal_tensor *x = c->in[0], *ix = c->in[1];
    int64_t axis = sal_attr_int(c->n, "axis", 0);
    if (axis < 0) axis += x->ndim;
    sal_tensor *o = c->out[0];
    o->dtype = x->dtype;
    o->ndim = 0;
    for (int i = 0; i < axis; i++) o->dim[o->ndim++] = x->dim[i];
    for (int i = 0; i < ix->ndim; i++) o->dim[o->ndim++] = ix->dim[i];
    for (int i = (int)axis + 1; i < x->ndim; i++) o->dim[o->ndim++] = x->dim[i];
    return SAL_OK;
}

static sal_status gather_forward(sal_opctx *c) {
    gather_plan p;
    SAL_TRY(gather_plan_make(c, &p));
    size_t es = sal_dtype_size(c->in[0]->dtype), row = (size_t)p.inner * es;
    const char *x = c->in[0]->data;
    const int64_t *id = c->in[1]->data;
    char *y = c->out[0]->data;
    for (int64_t o = 0; o < p.outer; o++)
        for (int64_t k = 0; k < p.nidx; k++) {
            int64_t i = id[k] < 0 ? id[k] + p.D : id[k];
            if (row) memcpy(y + (size_t)(o * p.nidx + k) * row, x + (size_t)(o * p.D + i) * row, row);
        }
    return SAL_OK;
}

/* One index along an axis with nothing before it (Swin's q, k and v from one product) picks a block. */
static bool gather_view_at(sal_opctx *c, int64_t *off) {
    gather_plan p;
    if (gather_plan_make(c, &p) != SAL_OK || p.nidx != 1 || p.outer != 1) return false;
    int64_t i = *(const int64_t *)c->in[1]->data;
    *off = (i < 0 ? i + p.D : i) * p.inner;
    return true;
}

/* Scatter-add: repeated indices accumulate. */
static sal_status gather_backward(sal_opctx *c) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    gather_plan p;
    SAL_TRY(gather_plan_make(c, &p));
    const int64_t *id = c->in[1]->data;
    const float *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    for (int64_t o = 0; o < p.outer; o++)
        for (int64_t k = 0; k < p.nidx; k++) {
            int64_t i = id[k] < 0 ? id[k] + p.D : id[k];
            sal_vadd(dx + (o * p.D + i) * p.inner, dy + (o * p.nidx + k) * p.inner, p.inner);
        }
    return SAL_OK;
}

const sal_op sal_op_Gather = {
    SAL_OP_HEAD(Gather), .traits = SAL_TR_ROUTE, .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = gather_infer, .forward = gather_forward, .backward = gather_backward,
    .overwrites = true, /* every output element written */
    SAL_BWD_ROUTE, .view_at = gather_view_at,
};

/* ---- Unsqueeze and Squeeze: axes attribute before opset 13, int64 input from opset 13 ---- */

/* axes of the node; *given false when absent (optional for Squeeze) */
static sal_status get_axes(const sal_opctx *c, const int64_t **axes, int64_t *n, bool *given) {
    *axes = NULL;
    *n = 0;
    *given = false;
    if (c->g->opset < 13) {
        int k = 0;
        *axes = sal_attr_ints(c->n, "axes", &k);
        *n = k;
        *given = *axes != NULL;
        return SAL_OK;
    }
    if (c->n->nin < 2 || !c->in[1]) return SAL_OK;
    *given = true;
    return need_i64_vec(c, 1, "axes", axes, n);
}

static sal_status unsqueeze_infer(sal_opctx *c) {
    SAL_TRY(need_any(c, 0));
    const sal_tensor *x = c->in[0];
    const int64_t *axes;
    int64_t na;
    bool given;
    SAL_TRY(get_axes(c, &axes, &na, &given));
    if (!given) return sal_node_fail(c->n, SAL_ERR_FORMAT, "axes are required");
    int64_t r = x->ndim + na;
    if (r > SAL_MAX_DIMS)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "the output would have rank %lld (at most %d supported)",
                             (long long)r, SAL_MAX_DIMS);
    bool ins[SAL_MAX_DIMS] = {false};
    for (int64_t k = 0; k < na; k++) {
        int64_t a = 0;
        SAL_TRY(norm_axis(c, axes[k], (int)r, &a));
        if (ins[a]) return sal_node_fail(c->n, SAL_ERR_ARG, "axis %lld given twice", (long long)axes[k]);
        ins[a] = true;
    }
    sal_tensor *o = c->out[0];
    o->dtype = x->dtype;
    o->ndim = (int)r;
    for (int i = 0, j = 0; i < r; i++) o->dim[i] = ins[i] ? 1 : x->dim[j++];
    return SAL_OK;
}

const sal_op sal_op_Unsqueeze = {
    SAL_OP_HEAD(Unsqueeze), .traits = SAL_TR_ROUTE | SAL_TR_VIEW, .min_in = 1, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = unsqueeze_infer, .forward = sal_copy_forward, .backward = sal_copy_backward,
    .overwrites = true, /* every output element written */
    .bwd_writes = 0x1, .bwd_pass = 0x1, SAL_BWD_ROUTE,
};

static sal_status squeeze_infer(sal_opctx *c) {
    SAL_TRY(need_any(c, 0));
    const sal_tensor *x = c->in[0];
    const int64_t *axes;
    int64_t na;
    bool given;
    SAL_TRY(get_axes(c, &axes, &na, &given));
    bool drop[SAL_MAX_DIMS] = {false};
    if (!given || na == 0) /* no axes: every dimension of size 1 goes */
        for (int i = 0; i < x->ndim; i++) drop[i] = x->dim[i] == 1;
    for (int64_t k = 0; k < na; k++) {
        int64_t a = 0;
        SAL_TRY(norm_axis(c, axes[k], x->ndim, &a));
        if (x->dim[a] != 1)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "cannot squeeze axis %lld of size %lld", (long long)axes[k],
                                 (long long)x->dim[a]);
        drop[a] = true;
    }
    sal_tensor *o = c->out[0];
    o->dtype = x->dtype;
    o->ndim = 0;
    for (int i = 0; i < x->ndim; i++)
        if (!drop[i]) o->dim[o->ndim++] = x->dim[i];
    return SAL_OK;
}

const sal_op sal_op_Squeeze = {
    SAL_OP_HEAD(Squeeze), .traits = SAL_TR_ROUTE | SAL_TR_VIEW, .min_in = 1, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = squeeze_infer, .forward = sal_copy_forward, .backward = sal_copy_backward,
    .overwrites = true, /* every output element written */
    .bwd_writes = 0x1, .bwd_pass = 0x1, SAL_BWD_ROUTE,
};

/* ---- Concat ---- */

static sal_status concat_axis(const sal_opctx *c, int64_t *axis) {
    const sal_attr *a = sal_attr_find(c->n, "axis");
    if (!a || a->type != SAL_ATTR_INT) return sal_node_fail(c->n, SAL_ERR_FORMAT, "the axis attribute is required");
    SAL_TRY(need_any(c, 0));
    if (c->in[0]->ndim < 1) return sal_node_fail(c->n, SAL_ERR_SHAPE, "cannot concatenate scalars");
    return norm_axis(c, a->i, c->in[0]->ndim, axis);
}

static sal_status concat_infer(sal_opctx *c) {
    int64_t axis = 0;
    SAL_TRY(concat_axis(c, &axis));
    const sal_tensor *x0 = c->in[0];
    sal_tensor *o = c->out[0];
    sal_same_shape(c, 0, 0);
    o->dim[axis] = 0;
    for (int i = 0; i < c->n->nin; i++) {
        SAL_TRY(need_any(c, i));
        const sal_tensor *x = c->in[i];
        bool ok = x->dtype == x0->dtype && x->ndim == x0->ndim;
        for (int d = 0; ok && d < x->ndim; d++) ok = d == axis || x->dim[d] == x0->dim[d];
        if (!ok) {
            char a[160], b[160];
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "input %d %s (%s) does not fit input 0 %s (%s) along axis %lld", i,
                                 sal_shape_str(x->ndim, x->dim, a, sizeof a), sal_dtype_name(x->dtype),
                                 sal_shape_str(x0->ndim, x0->dim, b, sizeof b), sal_dtype_name(x0->dtype),
                                 (long long)axis);
        }
        o->dim[axis] += x->dim[axis];
    }
    return SAL_OK;
}

/* outer: product of the dims before the axis; inner: after it */
static void concat_split(const sal_tensor *o, int64_t axis, int64_t *outer, int64_t *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < o->ndim; i++) {
        if (i < axis) *outer *= o->dim[i];
        if (i > axis) *inner *= o->dim[i];
    }
}

static sal_status concat_forward(sal_opctx *c) {
    int64_t axis = 0, outer, inner;
    SAL_TRY(concat_axis(c, &axis));
    const sal_tensor *o = c->out[0];
    concat_split(o, axis, &outer, &inner);
    size_t es = sal_dtype_size(o->dtype), orow = (size_t)(o->dim[axis] * inner) * es, at = 0;
    for (int i = 0; i < c->n->nin; i++) {
        size_t row = (size_t)(c->in[i]->dim[axis] * inner) * es;
        const char *x = c->in[i]->data;
        char *y = (char *)o->data + at;
        for (int64_t k = 0; row && k < outer; k++) memcpy(y + (size_t)k * orow, x + (size_t)k * row, row);
        at += row;
    }
    return SAL_OK;
}

static sal_status concat_backward(sal_opctx *c) {
    if (!c->dout[0]) return SAL_OK;
    int64_t axis = 0, outer, inner;
    SAL_TRY(concat_axis(c, &axis));
    concat_split(c->out[0], axis, &outer, &inner);
    const float *dy = sal_f32(c->dout[0]);
    int64_t orow = c->out[0]->dim[axis] * inner, at = 0;
    for (int i = 0; i < c->n->nin; i++) {
        int64_t row = c->in[i]->dim[axis] * inner;
        if (c->din[i]) {
            float *dx = sal_f32(c->din[i]);
            for (int64_t k = 0; k < outer; k++) sal_vadd(dx + k * row, dy + k * orow + at, row);
        }
        at += row;
    }
    return SAL_OK;
}

const sal_op sal_op_Concat = {
    SAL_OP_HEAD(Concat), .traits = SAL_TR_ROUTE, .min_in = 1, .max_in = 1 << 16, .min_out = 1, .max_out = 1,
    .infer = concat_infer, .forward = concat_forward, .backward = concat_backward,
    .overwrites = true, /* every output element written */
    .bwd_known = true,  /* reads no input: the axis is an attribute */
};

/* ---- Reshape: 0 copies the input's dim (unless allowzero), -1 takes what is left ---- */

static sal_status reshape_infer(sal_opctx *c) {
    SAL_TRY(need_any(c, 0));
    const sal_tensor *x = c->in[0];
    const int64_t *s;
    int64_t ns;
    SAL_TRY(need_i64_vec(c, 1, "shape", &s, &ns));
    if (ns > SAL_MAX_DIMS)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "target rank %lld (at most %d supported)", (long long)ns,
                             SAL_MAX_DIMS);
    bool allowzero = sal_attr_int(c->n, "allowzero", 0) != 0;
    sal_tensor *o = c->out[0];
    int infer_at = -1;
    int64_t known = 1, total = sal_tensor_numel(x);
    char a[160], b[160];
    for (int i = 0; i < ns; i++) {
        int64_t d = s[i];
        if (d == 0 && !allowzero) {
            if (i >= x->ndim)
                return sal_node_fail(c->n, SAL_ERR_SHAPE, "shape[%d] = 0 copies a dimension the input %s lacks", i,
                                     sal_shape_str(x->ndim, x->dim, a, sizeof a));
            d = x->dim[i];
        } else if (d == -1) {
            if (infer_at >= 0) return sal_node_fail(c->n, SAL_ERR_ARG, "shape has more than one -1");
            infer_at = i;
            d = 1;
        } else if (d < 0) {
            return sal_node_fail(c->n, SAL_ERR_ARG, "shape[%d] = %lld is invalid", i, (long long)d);
        }
        o->dim[i] = d;
        if (d && known > ((int64_t)1 << 40) / d)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "target shape is too large");
        known *= d;
    }
    o->dtype = x->dtype;
    o->ndim = (int)ns;
    if (infer_at >= 0) {
        if (known == 0 || total % known)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "cannot reshape %s to %s: -1 cannot be inferred",
                                 sal_shape_str(x->ndim, x->dim, a, sizeof a), sal_shape_str((int)ns, s, b, sizeof b));
        o->dim[infer_at] = total / known;
        known = total;
    }
    if (known != total)
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "cannot reshape %s (%lld elements) to %s",
                             sal_shape_str(x->ndim, x->dim, a, sizeof a), (long long)total,
                             sal_shape_str(o->ndim, o->dim, b, sizeof b));
    return SAL_OK;
}

const sal_op sal_op_Reshape = {
    SAL_OP_HEAD(Reshape), .traits = SAL_TR_ROUTE | SAL_TR_VIEW, .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = reshape_infer, .forward = sal_copy_forward, .backward = sal_copy_backward,
    .overwrites = true, /* every output element written */
    .bwd_writes = 0x1, .bwd_pass = 0x1, SAL_BWD_ROUTE,
};

/* ---- Transpose ---- */

static sal_status transpose_view(const sal_opctx *c, view_plan *v, int64_t *odim) {
    SAL_TRY(need_any(c, 0));
    const sal_tensor *x = c->in[0];
    int np = 0;
    const int64_t *perm = sal_attr_ints(c->n, "perm", &np);
    int64_t p[SAL_MAX_DIMS], st[SAL_MAX_DIMS], vst[SAL_MAX_DIMS];
    bool seen[SAL_MAX_DIMS] = {false};
    if (perm && np != x->ndim)
        return sal_node_fail(c->n, SAL_ERR_ARG, "perm has %d entries for an input of rank %d", np, x->ndim);
    for (int i = 0; i < x->ndim; i++) {
        p[i] = perm ? perm[i] : x->ndim - 1 - i;
        if (p[i] < 0 || p[i] >= x->ndim || seen[p[i]])
            return sal_node_fail(c->n, SAL_ERR_ARG, "perm is not a permutation of 0..%d", x->ndim - 1);
        seen[p[i]] = true;
    }
    row_strides(x, st);
    for (int i = 0; i < x->ndim; i++) {
        odim[i] = x->dim[p[i]];
        vst[i] = st[p[i]];
    }
    view_make(v, x->ndim, odim, vst, 0);
    return SAL_OK;
}

static sal_status transpose_infer(sal_opctx *c) {
    view_plan v;
    int64_t od[SAL_MAX_DIMS];
    SAL_TRY(transpose_view(c, &v, od));
    sal_same_shape(c, 0, 0);
    memcpy(c->out[0]->dim, od, sizeof(int64_t) * (size_t)c->in[0]->ndim);
    return SAL_OK;
}

/* perm (0, 2, 3, 1) reads a blocked X (N, C/L, H, W, L) as it is: a pixel's L values of a block
 * lie together in both orders, so (N, H, W, C) is a copy of runs of L floats, where a plain X took a
 * conversion and then a gather at the stride of a plane (ConvNeXt's and Swin's permutes after a
 * convolution: 6% of ConvNeXt-T's gradient at batch 4). */
static bool transpose_blk_takes(sal_opctx *c) {
    int np = 0;
    const int64_t *perm = sal_attr_ints(c->n, "perm", &np);
    return np == 4 && perm[0] == 0 && perm[1] == 2 && perm[2] == 3 && perm[3] == 1 && sal_blk_fits(c->in[0]);
}

/* Pixels [q0, q1) of the N S pixels: y (N, S, C) = x (N, C/L, S, L); back: x = y, or x += y when add. */
static inline __attribute__((always_inline)) void nhwc_runs(float *y, float *x, int64_t C, int64_t S, int64_t q0,
                                                            int64_t q1, bool back, bool add, const int L) {
    const int64_t CB = C / L;
    for (int64_t q = q0; q < q1; q++) {
        float *yr = y + q * C, *xr = x + ((q / S) * CB * S + q % S) * L;
        for (int64_t b = 0; b < CB; b++, yr += L, xr += S * L)
            if (!back) memcpy(yr, xr, L * sizeof *yr);
            else if (!add) memcpy(xr, yr, L * sizeof *yr);
            else
#pragma omp simd
                for (int l = 0; l < L; l++) xr[l] += yr[l];
    }
}

static void nhwc_part(float *y, float *x, int64_t C, int64_t S, int64_t q0, int64_t q1, bool back, bool add) {
    if (sal_blk_width() == 16)
        nhwc_runs(y, x, C, S, q0, q1, back, add, 16);
    else
        nhwc_runs(y, x, C, S, q0, q1, back, add, 8);
}

static void nhwc(float *y, float *x, const int64_t *xdim, bool back, bool add) {
    const int64_t S = xdim[2] * xdim[3], C = xdim[1], n = xdim[0] * S;
    SAL_PAR_SPLIT(n * C > PAR_MIN, n, q0, q1, nhwc_part(y, x, C, S, q0, q1, back, add));
}

static sal_status transpose_forward(sal_opctx *c) {
    view_plan v;
    int64_t od[SAL_MAX_DIMS];
    SAL_TRY(transpose_view(c, &v, od));
    if (c->blk_in & 1) { /* transpose_blk_takes */
        nhwc(sal_f32(c->out[0]), sal_f32(c->in[0]), c->in[0]->dim, false, false); /* x only read */
        return SAL_OK;
    }
    view_gather(&v, c->out[0]->data, c->in[0]->data, sal_dtype_size(c->in[0]->dtype));
    return SAL_OK;
}

/* A fresh input gradient is dY transposed back: a gather through the inverse permutation writes dX
 * in order and reads dY strided, where the scatter wrote dX strided, a cache line per element
 * (twice the time on attention's K^T). */
static sal_status transpose_backward(sal_opctx *c) {
    view_plan v;
    int64_t od[SAL_MAX_DIMS];
    SAL_TRY(transpose_view(c, &v, od));
    if ((c->blk_in & 1) && c->din[0] && c->dout[0]) { /* dX blocked as X was: runs of L again */
        nhwc(sal_f32(c->dout[0]), sal_f32(c->din[0]), c->in[0]->dim, true, !(c->din_fresh & 1));
        return SAL_OK;
    }
    if (!(c->din_fresh & 1) || !c->din[0] || !c->dout[0]) return f32_view_backward(c, &v);
    const sal_tensor *x = c->in[0];
    int np = 0;
    const int64_t *perm = sal_attr_ints(c->n, "perm", &np);
    int64_t ost[SAL_MAX_DIMS], ist[SAL_MAX_DIMS], acc = 1;
    for (int i = x->ndim - 1; i >= 0; i--) ost[i] = acc, acc *= od[i];
    for (int i = 0; i < x->ndim; i++) /* input axis p[i] is output axis i */
        ist[perm ? perm[i] : x->ndim - 1 - i] = ost[i];
    view_plan inv;
    view_make(&inv, x->ndim, x->dim, ist, 0);
    view_gather(&inv, c->din[0]->data, c->dout[0]->data, sizeof(float));
    return SAL_OK;
}

const sal_op sal_op_Transpose = {
    SAL_OP_HEAD(Transpose), .traits = SAL_TR_ROUTE, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = transpose_infer, .forward = transpose_forward, .backward = transpose_backward,
    .overwrites = true, /* every output element written */
    .bwd_writes = 0x1,  /* a permutation: its gradient covers the input once */
    SAL_BWD_ROUTE, .blk = SAL_BLK_OWN, .blk_takes = transpose_blk_takes,
};

/* ---- Slice: attributes starts/ends/axes before opset 10, inputs starts/ends/axes/steps after ---- */

static sal_status slice_view(const sal_opctx *c, view_plan *v, int64_t *odim) {
    SAL_TRY(need_any(c, 0));
    const sal_tensor *x = c->in[0];
    const int64_t *starts, *ends, *axes = NULL, *steps = NULL;
    int64_t n, ne, na = 0, nst = 0;
    if (c->g->opset < 10) {
        int k1 = 0, k2 = 0, k3 = 0;
        starts = sal_attr_ints(c->n, "starts", &k1);
        ends = sal_attr_ints(c->n, "ends", &k2);
        axes = sal_attr_ints(c->n, "axes", &k3);
        if (!starts || !ends) return sal_node_fail(c->n, SAL_ERR_FORMAT, "the starts and ends attributes are required");
        n = k1, ne = k2, na = k3;
    } else {
        if (c->n->nin < 3) return sal_node_fail(c->n, SAL_ERR_FORMAT, "starts and ends inputs are required");
        SAL_TRY(need_i64_vec(c, 1, "starts", &starts, &n));
        SAL_TRY(need_i64_vec(c, 2, "ends", &ends, &ne));
        if (c->n->nin > 3 && c->in[3]) SAL_TRY(need_i64_vec(c, 3, "axes", &axes, &na));
        if (c->n->nin > 4 && c->in[4]) SAL_TRY(need_i64_vec(c, 4, "steps", &steps, &nst));
    }
    if (ne != n || (axes && na != n) || (steps && nst != n))
        return sal_node_fail(c->n, SAL_ERR_ARG, "starts, ends, axes and steps differ in length");
    int64_t st[SAL_MAX_DIMS], vst[SAL_MAX_DIMS], base = 0;
    bool seen[SAL_MAX_DIMS] = {false};
    row_strides(x, st);
    for (int i = 0; i < x->ndim; i++) {
        odim[i] = x->dim[i];
        vst[i] = st[i];
    }
    for (int64_t k = 0; k < n; k++) {
        int64_t ax = k, step = steps ? steps[k] : 1;
        if (axes) SAL_TRY(norm_axis(c, axes[k], x->ndim, &ax));
        else if (k >= x->ndim) return sal_node_fail(c->n, SAL_ERR_ARG, "more starts than dimensions");
        if (seen[ax]) return sal_node_fail(c->n, SAL_ERR_ARG, "axis %lld sliced twice", (long long)ax);
        seen[ax] = true;
        if (step == 0) return sal_node_fail(c->n, SAL_ERR_ARG, "step 0 on axis %lld", (long long)ax);
        int64_t d = x->dim[ax], s = starts[k], e = ends[k], cnt = 0;
        /* negative positions count from the end; then clamp (huge ends mean "to the end") */
        if (s < 0) s += d;
        if (e < 0) e += d;
        if (step > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
            if (e > s) cnt = (e - s - 1) / step + 1;
        } else {
            s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            /* step may be INT64_MIN: negate in unsigned arithmetic */
            if (s > e) cnt = (int64_t)((uint64_t)(s - e - 1) / ((uint64_t)0 - (uint64_t)step)) + 1;
        }
        if (d == 0) cnt = 0;
        odim[ax] = cnt;
        if (cnt > 0) {
            base += s * st[ax];
            /* with one element the step is never taken (and may be huge) */
            vst[ax] = cnt > 1 ? step * st[ax] : st[ax];
        }
    }
    view_make(v, x->ndim, odim, vst, base);
    return SAL_OK;
}

static sal_status slice_infer(sal_opctx *c) {
    view_plan v;
    int64_t od[SAL_MAX_DIMS];
    SAL_TRY(slice_view(c, &v, od));
    sal_same_shape(c, 0, 0);
    memcpy(c->out[0]->dim, od, sizeof(int64_t) * (size_t)c->in[0]->ndim);
    return SAL_OK;
}

static bool slice_view_at(sal_opctx *c, int64_t *off) {
    view_plan v;
    int64_t od[SAL_MAX_DIMS];
    if (slice_view(c, &v, od) != SAL_OK || v.n == 0 || v.r != 1 || v.st[0] != 1) return false;
    *off = v.base;
    return true;
}

static sal_status slice_forward(sal_opctx *c) {
    view_plan v;
    int64_t od[SAL_MAX_DIMS];
    SAL_TRY(slice_view(c, &v, od));
    if (v.n) view_gather(&v, c->out[0]->data, c->in[0]->data, sal_dtype_size(c->in[0]->dtype));
    return SAL_OK;
}

static sal_status slice_backward(sal_opctx *c) {
    view_plan v;
    int64_t od[SAL_MAX_DIMS];
    SAL_TRY(slice_view(c, &v, od));
    return v.n ? f32_view_backward(c, &v) : SAL_OK;
}

const sal_op sal_op_Slice = {
    SAL_OP_HEAD(Slice), .traits = SAL_TR_ROUTE, .min_in = 1, .max_in = 5, .min_out = 1, .max_out = 1,
    .infer = slice_infer, .forward = slice_forward, .backward = slice_backward,
    .overwrites = true, /* every output element written */
    SAL_BWD_ROUTE, .view_at = slice_view_at,
};

/* ---- Expand: bidirectional broadcast of the input with a shape ---- */

static sal_status expand_view(const sal_opctx *c, view_plan *v, sal_tensor *o) {
    SAL_TRY(need_any(c, 0));
    const sal_tensor *x = c->in[0];
    const int64_t *s;
    int64_t ns;
    SAL_TRY(need_i64_vec(c, 1, "shape", &s, &ns));
    if (ns > SAL_MAX_DIMS)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "target rank %lld (at most %d supported)", (long long)ns,
                             SAL_MAX_DIMS);
    sal_tensor t = {.dtype = SAL_I64, .ndim = (int)ns};
    for (int i = 0; i < ns; i++) {
        if (s[i] < 0) return sal_node_fail(c->n, SAL_ERR_ARG, "shape[%d] = %lld is negative", i, (long long)s[i]);
        t.dim[i] = s[i];
    }
    char a[160], b[160];
    o->dtype = x->dtype;
    if (!sal_broadcast_shape(x, &t, &o->ndim, o->dim))
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "input %s does not broadcast to %s",
                             sal_shape_str(x->ndim, x->dim, a, sizeof a), sal_shape_str((int)ns, s, b, sizeof b));
    /* before view_make, whose products of dimensions and strides assume a representable size */
    int64_t n;
    if (!sal_shape_numel(o->ndim, o->dim, &n))
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "output %s is too large", sal_shape_str(o->ndim, o->dim, a, sizeof a));
    int64_t st[SAL_MAX_DIMS], vst[SAL_MAX_DIMS];
    row_strides(x, st);
    for (int i = 0; i < o->ndim; i++) {
        int ix = i - (o->ndim - x->ndim);
        vst[i] = ix < 0 || x->dim[ix] == 1 ? 0 : st[ix];
    }
    view_make(v, o->ndim, o->dim, vst, 0);
    return SAL_OK;
}

static sal_status expand_infer(sal_opctx *c) {
    view_plan v;
    return expand_view(c, &v, c->out[0]);
}

static sal_status expand_forward(sal_opctx *c) {
    view_plan v;
    sal_tensor o = {0};
    SAL_TRY(expand_view(c, &v, &o));
    if (v.n) view_gather(&v, c->out[0]->data, c->in[0]->data, sal_dtype_size(c->in[0]->dtype));
    return SAL_OK;
}

static sal_status expand_backward(sal_opctx *c) {
    view_plan v;
    sal_tensor o = {0};
    SAL_TRY(expand_view(c, &v, &o));
    return v.n ? f32_view_backward(c, &v) : SAL_OK;
}

const sal_op sal_op_Expand = {
    SAL_OP_HEAD(Expand), .traits = SAL_TR_ROUTE, .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = expand_infer, .forward = expand_forward, .backward = expand_backward,
    .overwrites = true, /* every output element written */
    SAL_BWD_ROUTE,
};

/* ---- Cast between float32, int64 and bool ---- */

/* ONNX's INT32 (tf2onnx's shape arithmetic casts to it and back): held as int64, the type INT32
 * initializers are widened to, with values checked to fit int32. */
enum { ONNX_INT32 = 6 };

static sal_dtype cast_to(const sal_node *n) {
    int64_t to = sal_attr_int(n, "to", 0);
    return to == ONNX_INT32 ? SAL_I64 : (sal_dtype)to;
}

static sal_status cast_init(sal_node *n, const sal_model *g) {
    (void)g;
    int64_t to = sal_attr_int(n, "to", 0);
    if (to != SAL_F32 && to != SAL_I64 && to != SAL_BOOL && to != ONNX_INT32)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED,
                             "cast to data type %lld (only FLOAT=1, INT32=6 (held as int64), INT64=7 and BOOL=9 are "
                             "supported)",
                             (long long)to);
    return SAL_OK;
}

static sal_status cast_infer(sal_opctx *c) {
    SAL_TRY(need_any(c, 0));
    sal_same_shape(c, 0, 0);
    c->out[0]->dtype = cast_to(c->n);
    return SAL_OK;
}

static sal_status cast_forward(sal_opctx *c) {
    const sal_tensor *x = c->in[0];
    sal_tensor *y = c->out[0];
    int64_t n = sal_tensor_numel(x);
    bool i32 = sal_attr_int(c->n, "to", 0) == ONNX_INT32;
    /* the target's range: out-of-range float to integer conversion is undefined behaviour in C */
    double lo = i32 ? -2147483648.0 : -9.2233720368547758e18, hi = i32 ? 2147483648.0 : 9.2233720368547758e18;
    if (x->dtype == y->dtype) {
        const int64_t *xi = x->data;
        for (int64_t i = 0; i < n && i32; i++)
            if (!(xi[i] >= lo && xi[i] < hi))
                return sal_node_fail(c->n, SAL_ERR_NUMERIC, "value %lld at flat index %lld does not fit int32",
                                     (long long)xi[i], (long long)i);
        return sal_copy_forward(c);
    }
    const float *xf = x->dtype == SAL_F32 ? x->data : NULL;
    const int64_t *xi = x->dtype == SAL_I64 ? x->data : NULL;
    const uint8_t *xb = x->dtype == SAL_BOOL ? x->data : NULL;
    for (int64_t i = 0; i < n; i++) {
        if (y->dtype == SAL_BOOL) { /* nonzero is true, NaN included (as in numpy) */
            ((uint8_t *)y->data)[i] = xf ? xf[i] != 0.0f : xi[i] != 0;
        } else if (y->dtype == SAL_F32) {
            sal_f32(y)[i] = xi ? (float)xi[i] : (float)xb[i];
        } else if (xb) {
            ((int64_t *)y->data)[i] = xb[i];
        } else {
            if (!(xf[i] >= lo && xf[i] < hi))
                return sal_node_fail(c->n, SAL_ERR_NUMERIC, "value %g at flat index %lld does not fit %s",
                                     (double)xf[i], (long long)i, i32 ? "int32" : "int64");
            ((int64_t *)y->data)[i] = (int64_t)xf[i]; /* truncates toward zero */
        }
    }
    return SAL_OK;
}

static sal_status cast_backward(sal_opctx *c) {
    if (c->in[0]->dtype != SAL_F32 || c->out[0]->dtype != SAL_F32) return SAL_OK;
    return sal_copy_backward(c);
}

const sal_op sal_op_Cast = {
    SAL_OP_HEAD(Cast), .traits = SAL_TR_ROUTE, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .init = cast_init, .infer = cast_infer, .forward = cast_forward, .backward = cast_backward,
};

/* ---- ConstantOfShape ---- */

static sal_status cos_init(sal_node *n, const sal_model *g) {
    (void)g;
    const sal_attr *a = sal_attr_find(n, "value");
    if (!a) return SAL_OK;
    if (a->type != SAL_ATTR_TENSOR || sal_tensor_numel(&a->t) != 1 || !a->t.data)
        return sal_node_fail(n, SAL_ERR_FORMAT, "value must be a tensor of one element");
    if (a->t.dtype != SAL_F32 && a->t.dtype != SAL_I64 && a->t.dtype != SAL_BOOL)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED,
                             "value has data type %s; only float32, int64 and bool are supported",
                             sal_dtype_name(a->t.dtype));
    return SAL_OK;
}

static sal_status cos_infer(sal_opctx *c) {
    const int64_t *s;
    int64_t ns;
    SAL_TRY(need_i64_vec(c, 0, "shape", &s, &ns));
    if (ns > SAL_MAX_DIMS)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "rank %lld (at most %d supported)", (long long)ns, SAL_MAX_DIMS);
    const sal_attr *a = sal_attr_find(c->n, "value");
    sal_tensor *o = c->out[0];
    o->dtype = a ? a->t.dtype : SAL_F32;
    o->ndim = (int)ns;
    for (int i = 0; i < ns; i++) {
        if (s[i] < 0) return sal_node_fail(c->n, SAL_ERR_ARG, "shape[%d] = %lld is negative", i, (long long)s[i]);
        o->dim[i] = s[i];
    }
    return SAL_OK;
}

static sal_status cos_forward(sal_opctx *c) {
    const sal_attr *a = sal_attr_find(c->n, "value");
    sal_tensor *o = c->out[0];
    int64_t n = sal_tensor_numel(o);
    if (!a) return SAL_OK; /* float zeros, as allocated */
    size_t es = sal_dtype_size(o->dtype);
    for (int64_t i = 0; i < n; i++) memcpy((char *)o->data + (size_t)i * es, a->t.data, es);
    return SAL_OK;
}

const sal_op sal_op_ConstantOfShape = {
    SAL_OP_HEAD(ConstantOfShape), .traits = SAL_TR_ROUTE, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .init = cos_init, .infer = cos_infer, .forward = cos_forward, .backward = no_grad, .bwd_known = true,
};

/* ---- Range: start + i delta for i < ceil((limit - start) / delta) ---- */

static sal_status range_count(const sal_opctx *c, int64_t *count) {
    static const char *const names[] = {"start", "limit", "delta"};
    for (int i = 0; i < 3; i++) {
        SAL_TRY(need_any(c, i));
        if (c->in[i]->dtype == SAL_BOOL)
            return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "%s is bool; only float32 and int64 are supported", names[i]);
        if (c->in[i]->dtype != c->in[0]->dtype)
            return sal_node_fail(c->n, SAL_ERR_ARG, "start, limit and delta differ in data type");
        if (sal_tensor_numel(c->in[i]) != 1) return sal_node_fail(c->n, SAL_ERR_SHAPE, "%s must be a scalar", names[i]);
    }
    double n;
    if (c->in[0]->dtype == SAL_F32) {
        float s = sal_in_f(c, 0)[0], l = sal_in_f(c, 1)[0], d = sal_in_f(c, 2)[0];
        if (d == 0.0f) return sal_node_fail(c->n, SAL_ERR_ARG, "delta is 0");
        n = ceil(((double)l - s) / d);
        if (!isfinite(n) && !(n < 0))
            return sal_node_fail(c->n, SAL_ERR_NUMERIC, "start, limit or delta is not finite");
    } else {
        int64_t s = ((int64_t *)c->in[0]->data)[0], l = ((int64_t *)c->in[1]->data)[0],
                d = ((int64_t *)c->in[2]->data)[0];
        if (d == 0) return sal_node_fail(c->n, SAL_ERR_ARG, "delta is 0");
        /* exact: the distance fits uint64 even from INT64_MIN to INT64_MAX */
        uint64_t dist = d > 0 ? (l > s ? (uint64_t)l - (uint64_t)s : 0) : (s > l ? (uint64_t)s - (uint64_t)l : 0);
        uint64_t step = d > 0 ? (uint64_t)d : (uint64_t)0 - (uint64_t)d;
        n = dist ? (double)((dist - 1) / step + 1) : 0;
    }
    if (n > (double)((int64_t)1 << 40)) return sal_node_fail(c->n, SAL_ERR_SHAPE, "the range has too many elements");
    *count = n > 0 ? (int64_t)n : 0;
    return SAL_OK;
}

static sal_status range_infer(sal_opctx *c) {
    int64_t n;
    SAL_TRY(range_count(c, &n));
    sal_tensor *o = c->out[0];
    o->dtype = c->in[0]->dtype;
    o->ndim = 1;
    o->dim[0] = n;
    return SAL_OK;
}

static sal_status range_forward(sal_opctx *c) {
    int64_t n;
    SAL_TRY(range_count(c, &n));
    if (c->in[0]->dtype == SAL_F32) {
        float s = sal_in_f(c, 0)[0], d = sal_in_f(c, 2)[0];
        for (int64_t i = 0; i < n; i++) sal_out_f(c, 0)[i] = s + (float)i * d;
    } else {
        int64_t s = ((int64_t *)c->in[0]->data)[0], d = ((int64_t *)c->in[2]->data)[0];
        int64_t *y = c->out[0]->data;
        /* every value lies between start and limit; unsigned steps avoid overflow of i * d */
        for (int64_t i = 0; i < n; i++) y[i] = (int64_t)((uint64_t)s + (uint64_t)i * (uint64_t)d);
    }
    return SAL_OK;
}

/* d/dstart = sum dy, d/ddelta = sum i dy; limit only sets the length. */
static sal_status range_backward(sal_opctx *c) {
    if (!c->dout[0] || c->in[0]->dtype != SAL_F32) return SAL_OK;
    const float *dy = sal_f32(c->dout[0]);
    double gs = 0, gd = 0;
    for (int64_t i = 0, n = sal_tensor_numel(c->out[0]); i < n; i++) {
        gs += dy[i];
        gd += (double)i * dy[i];
    }
    if (c->din[0]) sal_f32(c->din[0])[0] += (float)gs;
    if (c->din[2]) sal_f32(c->din[2])[0] += (float)gd;
    return SAL_OK;
}

const sal_op sal_op_Range = {
    SAL_OP_HEAD(Range), .traits = SAL_TR_ROUTE, .min_in = 3, .max_in = 3, .min_out = 1, .max_out = 1,
    .infer = range_infer, .forward = range_forward, .backward = range_backward,
};
