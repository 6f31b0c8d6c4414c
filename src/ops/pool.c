/* MaxPool and AveragePool (1-D to 3-D windows), GlobalAveragePool and GlobalMaxPool (any rank >= 3).
 * Planes (n, c) are independent, so threads split them; backward passes recompute the window
 * arithmetic (and MaxPool's argmax) instead of keeping state between passes. */
#include "window.h"
#include <math.h>

typedef struct {
    sal_win_attr wa;
    bool count_pad; /* AveragePool count_include_pad */
} pool_p;

static sal_status pool_init(sal_node *n, bool avg) {
    pool_p *p = sal_calloc(1, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    n->p = p;
    SAL_TRY(sal_win_parse(n, true, true, &p->wa));
    if (avg) p->count_pad = sal_attr_int(n, "count_include_pad", 0) != 0;
    return SAL_OK;
}

static sal_status maxpool_init(sal_node *n, const sal_model *g) {
    (void)g;
    if (n->nout > 1 && n->out[1] >= 0)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "the Indices output of MaxPool is not supported");
    return pool_init(n, false);
}

static sal_status avgpool_init(sal_node *n, const sal_model *g) {
    (void)g;
    return pool_init(n, true);
}

static sal_status pool_plan(const sal_opctx *c, sal_win *w) {
    const pool_p *p = c->n->p;
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *X = c->in[0];
    if (X->ndim < 3 || X->ndim > 5) {
        char b[160];
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "input has shape %s; expected (N, C, L), (N, C, H, W) or (N, C, D, H, W)",
                             sal_shape_str(X->ndim, X->dim, b, sizeof b));
    }
    return sal_win_plan(c->n, &p->wa, X->ndim - 2, X->dim + 2, NULL, w);
}

static sal_status pool_infer(sal_opctx *c) {
    sal_win w;
    SAL_TRY(pool_plan(c, &w));
    sal_tensor *o = c->out[0];
    const sal_tensor *x = c->in[0];
    o->dtype = SAL_F32;
    o->ndim = x->ndim;
    o->dim[0] = x->dim[0];
    o->dim[1] = x->dim[1];
    for (int i = 0; i < w.nsp; i++) o->dim[2 + i] = w.out[3 - w.nsp + i];
    return SAL_OK;
}

/* Taps [lo, hi) of output (od, oh, ow) that fall inside the input, per dimension. */
static void window_taps(const sal_win *w, const int64_t o[3], int64_t lo[3], int64_t hi[3]) {
    for (int j = 0; j < 3; j++) sal_win_range(o[j] * w->s[j] - w->pb[j], w->d[j], w->k[j], w->in[j], &lo[j], &hi[j]);
}

static inline int64_t tap_index(const sal_win *w, const int64_t o[3], int64_t a, int64_t b, int64_t e) {
    return ((o[0] * w->s[0] - w->pb[0] + a * w->d[0]) * w->in[1] + o[1] * w->s[1] - w->pb[1] + b * w->d[1]) * w->in[2] +
           o[2] * w->s[2] - w->pb[2] + e * w->d[2];
}

/* Index in the plane of the first maximum under window o (row-major tap order), or -1 when the
 * window lies wholly in the padding. */
static int64_t window_argmax(const sal_win *w, const float *x, const int64_t o[3]) {
    int64_t lo[3], hi[3], best = -1;
    window_taps(w, o, lo, hi);
    float m = 0.0f;
    for (int64_t a = lo[0]; a < hi[0]; a++)
        for (int64_t b = lo[1]; b < hi[1]; b++)
            for (int64_t e = lo[2]; e < hi[2]; e++) {
                int64_t i = tap_index(w, o, a, b, e);
                if (best < 0 || x[i] > m) best = i, m = x[i];
            }
    return best;
}

/* Forward (dx NULL): y = window maxima of the plane x. Backward: dx[argmax] += dy. */
static void maxpool_plane(const sal_win *w, const float *x, float *y, float *dx, const float *dy) {
    int64_t o[3], j = 0;
    for (o[0] = 0; o[0] < w->out[0]; o[0]++)
        for (o[1] = 0; o[1] < w->out[1]; o[1]++)
            for (o[2] = 0; o[2] < w->out[2]; o[2]++, j++) {
                int64_t i = window_argmax(w, x, o);
                if (!dx) y[j] = i >= 0 ? x[i] : -INFINITY; /* the maximum of no element */
                else if (i >= 0) dx[i] += dy[j];
            }
}

/* Divisor of window o: its taps inside the input, or (count_pad) inside input and explicit padding;
 * positions that only ceil_mode adds never count. */
static int64_t avg_divisor(const sal_win *w, const int64_t o[3], const int64_t lo[3], const int64_t hi[3], bool count_pad) {
    int64_t n = 1;
    for (int j = 0; j < 3; j++) {
        int64_t l = lo[j], h = hi[j];
        if (count_pad)
            sal_win_range(o[j] * w->s[j], w->d[j], w->k[j], w->in[j] + w->pb[j] + w->pe[j], &l, &h);
        n *= h - l;
    }
    return n;
}

/* Forward (dx NULL): y = window means of the plane x. Backward: dx += dy / divisor over each window. */
static void avgpool_plane(const sal_win *w, bool count_pad, const float *x, float *y, float *dx, const float *dy) {
    int64_t o[3], lo[3], hi[3], j = 0;
    for (o[0] = 0; o[0] < w->out[0]; o[0]++)
        for (o[1] = 0; o[1] < w->out[1]; o[1]++)
            for (o[2] = 0; o[2] < w->out[2]; o[2]++, j++) {
                window_taps(w, o, lo, hi);
                int64_t cnt = avg_divisor(w, o, lo, hi, count_pad);
                if (cnt == 0) continue; /* empty window: output 0, no gradient */
                if (!dx) {
                    float s = 0.0f;
                    for (int64_t a = lo[0]; a < hi[0]; a++)
                        for (int64_t b = lo[1]; b < hi[1]; b++)
                            for (int64_t e = lo[2]; e < hi[2]; e++) s += x[tap_index(w, o, a, b, e)];
                    y[j] = s / (float)cnt;
                } else {
                    float g = dy[j] / (float)cnt;
                    for (int64_t a = lo[0]; a < hi[0]; a++)
                        for (int64_t b = lo[1]; b < hi[1]; b++)
                            for (int64_t e = lo[2]; e < hi[2]; e++) dx[tap_index(w, o, a, b, e)] += g;
                }
            }
}

/* Runs a plane function over every (n, c) plane; backward when dx is set. */
static sal_status pool_run(sal_opctx *c, bool avg, bool backward) {
    sal_win w;
    SAL_TRY(pool_plan(c, &w));
    if (backward && (!c->din[0] || !c->dout[0])) return SAL_OK;
    const pool_p *p = c->n->p;
    const float *X = sal_in_f(c, 0), *dY = backward ? sal_f32(c->dout[0]) : NULL;
    float *Y = backward ? NULL : sal_out_f(c, 0), *dX = backward ? sal_f32(c->din[0]) : NULL;
    const int64_t planes = c->in[0]->dim[0] * c->in[0]->dim[1];
#pragma omp parallel for schedule(static) if (planes * w.out_sz * w.k_sz > 32768)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = X + pl * w.in_sz;
        float *y = Y ? Y + pl * w.out_sz : NULL, *dx = dX ? dX + pl * w.in_sz : NULL;
        const float *dy = dY ? dY + pl * w.out_sz : NULL;
        if (avg) avgpool_plane(&w, p->count_pad, x, y, dx, dy);
        else maxpool_plane(&w, x, y, dx, dy);
    }
    return SAL_OK;
}

static sal_status maxpool_forward(sal_opctx *c) { return pool_run(c, false, false); }
static sal_status maxpool_backward(sal_opctx *c) { return pool_run(c, false, true); }
static sal_status avgpool_forward(sal_opctx *c) { return pool_run(c, true, false); }
static sal_status avgpool_backward(sal_opctx *c) { return pool_run(c, true, true); }

const sal_op sal_op_MaxPool = {
    .name = "MaxPool", .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 2,
    .init = maxpool_init, .infer = pool_infer, .forward = maxpool_forward, .backward = maxpool_backward,
};

const sal_op sal_op_AveragePool = {
    .name = "AveragePool", .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .init = avgpool_init, .infer = pool_infer, .forward = avgpool_forward, .backward = avgpool_backward,
};

/* ---- global pooling: (N, C, ...) -> (N, C, 1, ...) ---- */

static sal_status global_infer(sal_opctx *c) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0];
    if (x->ndim < 3) {
        char b[160];
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "input has shape %s; expected rank 3 or more (N, C, ...)",
                             sal_shape_str(x->ndim, x->dim, b, sizeof b));
    }
    sal_same_shape(c, 0, 0);
    for (int i = 2; i < x->ndim; i++) c->out[0]->dim[i] = 1;
    return SAL_OK;
}

/* Plane size S and count of planes N*C. */
static void global_dims(const sal_opctx *c, int64_t *planes, int64_t *S) {
    const sal_tensor *x = c->in[0];
    *planes = x->dim[0] * x->dim[1];
    *S = 1;
    for (int i = 2; i < x->ndim; i++) *S *= x->dim[i];
}

static sal_status gavg_forward(sal_opctx *c) {
    int64_t planes, S;
    global_dims(c, &planes, &S);
    const float *X = sal_in_f(c, 0);
    float *Y = sal_out_f(c, 0);
#pragma omp parallel for schedule(static) if (planes * S > 65536)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = X + pl * S;
        float s = 0.0f;
        for (int64_t i = 0; i < S; i++) s += x[i];
        Y[pl] = S ? s / (float)S : 0.0f;
    }
    return SAL_OK;
}

static sal_status gavg_backward(sal_opctx *c) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    int64_t planes, S;
    global_dims(c, &planes, &S);
    const float *dY = sal_f32(c->dout[0]);
    float *dX = sal_f32(c->din[0]);
#pragma omp parallel for schedule(static) if (planes * S > 65536)
    for (int64_t pl = 0; pl < planes; pl++) {
        float g = S ? dY[pl] / (float)S : 0.0f, *dx = dX + pl * S;
        for (int64_t i = 0; i < S; i++) dx[i] += g;
    }
    return SAL_OK;
}

/* Index of the first maximum of x[0..S), or -1 when S is 0. */
static int64_t first_argmax(const float *x, int64_t S) {
    int64_t best = S ? 0 : -1;
    for (int64_t i = 1; i < S; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static sal_status gmax_forward(sal_opctx *c) {
    int64_t planes, S;
    global_dims(c, &planes, &S);
    const float *X = sal_in_f(c, 0);
    float *Y = sal_out_f(c, 0);
#pragma omp parallel for schedule(static) if (planes * S > 65536)
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t i = first_argmax(X + pl * S, S);
        Y[pl] = i >= 0 ? X[pl * S + i] : -INFINITY;
    }
    return SAL_OK;
}

static sal_status gmax_backward(sal_opctx *c) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    int64_t planes, S;
    global_dims(c, &planes, &S);
    const float *X = sal_in_f(c, 0), *dY = sal_f32(c->dout[0]);
    float *dX = sal_f32(c->din[0]);
#pragma omp parallel for schedule(static) if (planes * S > 65536)
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t i = first_argmax(X + pl * S, S);
        if (i >= 0) dX[pl * S + i] += dY[pl];
    }
    return SAL_OK;
}

const sal_op sal_op_GlobalAveragePool = {
    .name = "GlobalAveragePool", .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = global_infer, .forward = gavg_forward, .backward = gavg_backward,
};

const sal_op sal_op_GlobalMaxPool = {
    .name = "GlobalMaxPool", .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = global_infer, .forward = gmax_forward, .backward = gmax_backward,
};
