/* Occlusion (Zeiler & Fergus 2014): how much the explained output drops when a window of the input
 * is covered. Only forward passes; every window of a sample is one row of a batch. */
#include "method.h"
#include <errno.h>
#include <math.h>

/* One sample as P planes of H x W: the last two axes of (N, C..., H, W), the last axis of (N, C, L)
 * (H = 1), or (N, D) as one 1 x D plane. A window covers the same area in every plane. */
typedef struct {
    int64_t P, H, W;
    bool two_d;
} layout;

static layout layout_of(const sal_tensor *x) {
    layout l = {1, 1, x->dim[x->ndim - 1], x->ndim >= 4};
    if (x->ndim >= 4) l.H = x->dim[x->ndim - 2];
    l.P = sal_row_size(x) / (l.H * l.W);
    return l;
}

/* "K" or "HxW" into h, w; for inputs with one spatial axis "K" means 1 x K. */
static sal_status parse_hw(const sal_xctx *c, const char *name, const layout *l, int64_t *h, int64_t *w) {
    const char *v = sal_param(c, name);
    char *end;
    errno = 0;
    long a = strtol(v, &end, 10), b = a;
    bool pair = *end == 'x';
    if (pair) b = strtol(end + 1, &end, 10);
    if (errno || end == v || *end || a < 1 || b < 1 || a > 1000000 || b > 1000000)
        return sal_fail(SAL_ERR_ARG, "method %s: parameter %s=%s must be a positive size K or HxW", c->meth->name,
                        name, v);
    if (!l->two_d && pair && a != 1)
        return sal_fail(SAL_ERR_ARG, "method %s: parameter %s=%s: the input has one spatial axis; give one size",
                        c->meth->name, name, v);
    *h = l->two_d ? a : 1;
    *w = b;
    return SAL_OK;
}

/* Window starts along an axis: 0, s, 2s, ... while the window fits, then len - win if the last one
 * stops short of the end, so every element is covered. Writes them to pos (when not NULL). */
static int64_t positions(int64_t len, int64_t win, int64_t stride, int64_t *pos) {
    int64_t n = 0, p = 0;
    for (; p + win <= len; p += stride) {
        if (pos) pos[n] = p;
        n++;
    }
    if (p - stride + win < len) {
        if (pos) pos[n] = len - win;
        n++;
    }
    return n;
}

typedef struct {
    const float *x;
    int64_t row, wh, ww, nx, nwin;
    layout l;
    const int64_t *ys, *xs;
    float fill;
    float *val; /* (N, 1 + nwin): f(x), then f(x with window w filled) */
} occ_job;

static sal_status occ_make(void *u, int64_t i, int64_t k, float *row, sal_rng *r) {
    (void)r;
    const occ_job *j = u;
    memcpy(row, j->x + i * j->row, (size_t)j->row * sizeof *row);
    if (k == 0) return SAL_OK;
    int64_t y0 = j->ys[(k - 1) / j->nx], x0 = j->xs[(k - 1) % j->nx];
    for (int64_t p = 0; p < j->l.P; p++)
        for (int64_t y = y0; y < y0 + j->wh; y++)
            for (int64_t x = x0; x < x0 + j->ww; x++) row[(p * j->l.H + y) * j->l.W + x] = j->fill;
    return SAL_OK;
}

static void occ_take(void *u, int64_t i, int64_t k, const float *row, const float *g, float value, sal_rng *r) {
    (void)r;
    (void)row, (void)g;
    const occ_job *j = u;
    j->val[i * (1 + j->nwin) + k] = value;
}

/* attribution(e) = mean over the windows W covering e of f(x) - f(x with W set to fill). */
static sal_status run_occlusion(sal_xctx *c) {
    const sal_tensor *x = c->x;
    if (x->ndim < 2 || sal_row_size(x) == 0)
        return sal_fail(SAL_ERR_SHAPE, "method %s: needs inputs with at least one element per sample", c->meth->name);
    occ_job j = {.x = sal_f32(x), .row = sal_row_size(x), .l = layout_of(x)};
    int64_t sh, sw;
    SAL_TRY(parse_hw(c, "window", &j.l, &j.wh, &j.ww));
    SAL_TRY(parse_hw(c, "stride", &j.l, &sh, &sw));
    const char *fv = sal_param(c, "fill");
    double fill = c->lo;
    if (strcmp(fv, "black")) SAL_TRY(sal_param_float(c, "fill", -1e30, 1e30, &fill));
    j.fill = (float)fill;
    if (j.wh > j.l.H || j.ww > j.l.W)
        return sal_fail(SAL_ERR_ARG, "method %s: window %lldx%lld does not fit the input's spatial size %lldx%lld",
                        c->meth->name, (long long)j.wh, (long long)j.ww, (long long)j.l.H, (long long)j.l.W);
    int64_t N = x->dim[0], H = j.l.H, W = j.l.W, ny = positions(H, j.wh, sh, NULL);
    j.nx = positions(W, j.ww, sw, NULL);
    j.nwin = ny * j.nx;
    int64_t *ys = sal_malloc((size_t)ny * sizeof *ys), *xs = sal_malloc((size_t)j.nx * sizeof *xs);
    j.val = sal_malloc((size_t)(N * (1 + j.nwin)) * sizeof *j.val);
    double *sum = sal_malloc((size_t)(H * W) * sizeof *sum);
    int64_t *cnt = sal_calloc((size_t)(H * W), sizeof *cnt);
    sal_status st = ys && xs && j.val && sum && cnt ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) {
        positions(H, j.wh, sh, ys);
        positions(W, j.ww, sw, xs);
        j.ys = ys;
        j.xs = xs;
        sal_batched b = {.per_sample = 1 + j.nwin, .make = occ_make, .take = occ_take, .u = &j, .forward_only = true,
                        .near = true};
        st = sal_run_batched(c, &b);
    }
    if (st == SAL_OK) st = sal_tensor_alloc(&c->out, SAL_F32, x->ndim, x->dim);
    for (int64_t i = 0; i < N && st == SAL_OK; i++) {
        memset(sum, 0, (size_t)(H * W) * sizeof *sum);
        const float *v = j.val + i * (1 + j.nwin);
        for (int64_t w = 0; w < j.nwin; w++) {
            int64_t y0 = ys[w / j.nx], x0 = xs[w % j.nx];
            for (int64_t y = y0; y < y0 + j.wh; y++)
                for (int64_t q = x0; q < x0 + j.ww; q++) {
                    sum[y * W + q] += (double)v[0] - v[1 + w];
                    if (i == 0) cnt[y * W + q]++;
                }
        }
        float *o = sal_f32(&c->out) + i * j.row;
        for (int64_t p = 0; p < j.l.P; p++)
            for (int64_t e = 0; e < H * W; e++) o[p * H * W + e] = (float)(sum[e] / (double)cnt[e]);
    }
    sal_free(ys);
    sal_free(xs);
    sal_free(j.val);
    sal_free(sum);
    sal_free(cnt);
    return st;
}

static const sal_param_spec k_occ_params[] = {
    {"window", "4", "occluded patch: K (K x K, or K for inputs with one spatial axis) or HxW"},
    {"stride", "2", "step between patches: K or HxW; a last patch is added flush with the end so all is covered"},
    {"fill", "0", "value of the occluded elements: a number, or black (the data minimum)"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_occlusion = {
    .name = "occlusion",
    .summary = "output drop when a sliding window is covered, averaged per element (Zeiler & Fergus 2014)",
    .params = k_occ_params,
    .run = run_occlusion,
    .black_box = true,
};
