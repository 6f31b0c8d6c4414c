/* RISE (Petsiuk, Das & Saenko 2018): the saliency of an element is the expected output over random
 * masks that keep it, S(e) = E[f(x . M) M(e)] / E[M(e)], estimated from n masks. A mask is a coarse
 * grid of cells, each kept with probability p, upsampled bilinearly to (cells + 1) cells and
 * shifted by a random offset within a cell, so its edges fall anywhere. Masked elements take the
 * baseline. Every mask comes from its row's random stream, so take() regenerates the mask that
 * make() used and nothing of the size of the masks is stored. */
#include "sampling.h"
#include "segments.h"
#include <math.h>

typedef struct {
    const float *x, *base; /* (row) */
    int64_t row, rows, gh, gw, ch, cw;
    sal_planes l;
    double p;
    uint64_t seed, id;
    unsigned char *grid; /* (gh, gw) */
    float *mask;         /* (H, W) */
    int64_t *y0, *x0;    /* (H), (W): the lower grid node of each row and column */
    float *ty, *tx;      /* their interpolation weights */
    double *acc;         /* (H, W): sum of value * mask */
} rise_job;

/* Grid node and weight of position q (after the shift) on an axis of g nodes upsampled to u
 * positions: half-pixel centres, clamped at the ends (skimage's resize, order 1, edge mode). */
static void interp(int64_t q, int64_t g, int64_t u, int64_t *lo, float *t) {
    double f = ((double)q + 0.5) * (double)g / (double)u - 0.5;
    if (f < 0) f = 0;
    if (f > (double)(g - 1)) f = (double)(g - 1);
    *lo = (int64_t)f;
    if (*lo > g - 2) *lo = g > 1 ? g - 2 : 0;
    *t = g > 1 ? (float)(f - (double)*lo) : 0.0f;
}

static void rise_mask(rise_job *j, int64_t k) {
    sal_rng r;
    sal_rng_stream(&r, j->seed, j->id, k, j->rows);
    for (int64_t g = 0; g < j->gh * j->gw; g++) j->grid[g] = sal_rng_uniform(&r) < j->p;
    int64_t sy = (int64_t)(sal_rng_u64(&r) % (uint64_t)j->ch), sx = (int64_t)(sal_rng_u64(&r) % (uint64_t)j->cw);
    int64_t H = j->l.H, W = j->l.W;
    for (int64_t y = 0; y < H; y++) interp(y + sy, j->gh, (j->gh + 1) * j->ch, &j->y0[y], &j->ty[y]);
    for (int64_t x = 0; x < W; x++) interp(x + sx, j->gw, (j->gw + 1) * j->cw, &j->x0[x], &j->tx[x]);
    int64_t dy = j->gh > 1 ? j->gw : 0, dx = j->gw > 1 ? 1 : 0;
    for (int64_t y = 0; y < H; y++) {
        const unsigned char *g = j->grid + j->y0[y] * j->gw;
        float ty = j->ty[y];
        for (int64_t x = 0; x < W; x++) {
            const unsigned char *q = g + j->x0[x];
            float tx = j->tx[x];
            float top = (1 - tx) * q[0] + tx * q[dx], bot = (1 - tx) * q[dy] + tx * q[dy + dx];
            j->mask[y * W + x] = (1 - ty) * top + ty * bot;
        }
    }
}

static sal_status rise_make(void *u, int64_t i, int64_t k, float *row, sal_rng *r) {
    (void)i, (void)r;
    rise_job *j = u;
    rise_mask(j, k);
    int64_t HW = j->l.H * j->l.W;
    for (int64_t e = 0; e < j->row; e++) {
        float b = j->base[e];
        row[e] = b + j->mask[e % HW] * (j->x[e] - b);
    }
    return SAL_OK;
}

static void rise_take(void *u, int64_t i, int64_t k, const float *row, const float *g, float value, sal_rng *r) {
    (void)i, (void)row, (void)g, (void)r;
    rise_job *j = u;
    rise_mask(j, k);
    for (int64_t e = 0; e < j->l.H * j->l.W; e++) j->acc[e] += (double)value * j->mask[e];
}

static sal_status run_rise(sal_xctx *c) {
    long masks, cells;
    double p;
    uint64_t seed = 0;
    SAL_TRY(sal_param_int(c, "masks", 1, 100000000, &masks));
    SAL_TRY(sal_param_int(c, "cells", 1, 100000, &cells));
    SAL_TRY(sal_param_float(c, "p", 1e-6, 1, &p));
    SAL_TRY(sal_parse_seed(c->meth->name, sal_param(c, "seed"), &seed));
    const sal_tensor *x = c->x;
    rise_job j = {.row = sal_row_size(x), .rows = masks, .l = sal_planes_of(x), .p = p, .seed = seed};
    int64_t H = j.l.H, W = j.l.W, N = x->dim[0];
    j.gh = H > 1 ? (cells < H ? cells : H) : 1;
    j.gw = cells < W ? cells : W;
    j.ch = (H + j.gh - 1) / j.gh, j.cw = (W + j.gw - 1) / j.gw;
    sal_tensor base = {0};
    SAL_TRY(sal_method_baseline(c, &base));
    j.grid = sal_malloc((size_t)(j.gh * j.gw));
    j.mask = sal_malloc((size_t)(H * W) * sizeof *j.mask);
    j.y0 = sal_malloc((size_t)H * sizeof *j.y0), j.x0 = sal_malloc((size_t)W * sizeof *j.x0);
    j.ty = sal_malloc((size_t)H * sizeof *j.ty), j.tx = sal_malloc((size_t)W * sizeof *j.tx);
    j.acc = sal_malloc((size_t)(H * W) * sizeof *j.acc);
    sal_status st = j.grid && j.mask && j.y0 && j.x0 && j.ty && j.tx && j.acc ? SAL_OK
                                                                             : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = sal_tensor_alloc(&c->out, SAL_F32, x->ndim, x->dim);
    for (int64_t i = 0; i < N && st == SAL_OK; i++) {
        j.x = sal_f32(x) + i * j.row, j.base = sal_f32(&base) + i * j.row, j.id = sal_stream_id(c, i);
        memset(j.acc, 0, (size_t)(H * W) * sizeof *j.acc);
        st = sal_bb_run(c, i, masks, rise_make, rise_take, &j);
        float *o = sal_f32(&c->out) + i * j.row;
        for (int64_t e = 0; e < j.row && st == SAL_OK; e++) o[e] = (float)(j.acc[e % (H * W)] / ((double)masks * p));
    }
    sal_tensor_free(&base);
    sal_free(j.grid), sal_free(j.mask), sal_free(j.y0), sal_free(j.x0), sal_free(j.ty), sal_free(j.tx);
    sal_free(j.acc);
    return st;
}

static const sal_param_spec k_rise_params[] = {
    {"masks", "1000", "random masks per sample (Petsiuk et al. used 4000 on ImageNet)"},
    {"cells", "7", "the coarse grid: cells x cells (cells along the axis of (N,C,L) and (N,D) inputs)"},
    {"p", "0.5", "probability that a grid cell keeps the input"},
    {"baseline", "zero",
     "what masked elements take: zero (the paper's), black (the data minimum), uniform (seeded), blur (see "
     "sigma), mean (of --data) or a .npy file"},
    {"sigma", "3", "baseline=blur: standard deviation of the Gaussian, in elements"},
    {"seed", "0", "random seed of the masks (and of baseline=uniform)"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_rise = {
    .name = "rise",
    .summary = "output-weighted average of random smooth masks (Petsiuk, Das & Saenko 2018)",
    .params = k_rise_params,
    .run = run_rise,
    .black_box = true,
};
