/* Faithfulness metrics: perturb what the map calls relevant and watch the explained output. Every
 * perturbed copy goes through mt_forward, chunk by chunk, made from its row index alone.
 * Definitions and conventions: docs/metrics.md. */
#include "core/lapack.h"
#include "methods/segments.h"
#include "metric.h"

/* One sample's state for the row builders. */
typedef struct {
    const float *x;      /* the sample */
    double *P;           /* its signed plane (HW) */
    int64_t *order;      /* pixels by P descending */
    int64_t *idx;        /* scratch: subsets (runs * k), pixel permutations */
    int64_t k, groups, g, steps, ph, pw, ntile, i;
    int32_t *label;      /* tiles or segments of the pixels (HW) */
    int64_t *lorder;     /* tiles or segments by relevance, descending */
    double *lv;          /* per tile or segment: relevance */
    float *fill;         /* per element: what removed pixels become (row) */
    float base;
    double *lev;         /* levels (fractions) of ROAD / sizes of sensitivity-n */
    int64_t nlev, runs;
} fs;

static void fs_free(fs *s) {
    sal_free(s->P), sal_free(s->order), sal_free(s->idx), sal_free(s->label), sal_free(s->lorder), sal_free(s->lv);
    sal_free(s->fill), sal_free(s->lev);
}

/* Scratch for one sample of c (idx: n entries). */
static sal_status fs_alloc(const mt_ctx *c, fs *s, int64_t nidx) {
    int64_t HW = c->HW;
    s->P = sal_malloc((size_t)HW * sizeof *s->P);
    s->order = sal_malloc((size_t)HW * sizeof *s->order);
    s->idx = sal_malloc((size_t)(nidx > HW ? nidx : HW) * sizeof *s->idx);
    s->label = sal_malloc((size_t)HW * sizeof *s->label);
    s->lorder = sal_malloc((size_t)HW * sizeof *s->lorder);
    s->lv = sal_malloc((size_t)HW * sizeof *s->lv);
    s->fill = sal_malloc((size_t)c->row * sizeof *s->fill);
    if (!s->P || !s->order || !s->idx || !s->label || !s->lorder || !s->lv || !s->fill) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    return SAL_OK;
}

/* The sample's plane and pixel order. */
static sal_status fs_sample(const mt_ctx *c, fs *s, int64_t i, const float *a) {
    s->x = sal_f32(c->x) + i * c->row, s->i = i;
    mt_plane(c, a, false, s->P);
    return mt_order(s->P, c->HW, s->order);
}

static bool prob(const mt_ctx *c) { return c->o->common.prob != 0; }

/* k distinct pixels drawn uniformly into out (partial Fisher-Yates over perm, a permutation). */
static void draw_subset(sal_rng *g, int64_t *perm, int64_t HW, int64_t k, int64_t *out) {
    for (int64_t j = 0; j < k; j++) {
        int64_t r = j + (int64_t)(sal_rng_u64(g) % (uint64_t)(HW - j)), t = perm[j];
        perm[j] = perm[r], perm[r] = t;
        out[j] = perm[j];
    }
}

static void copy_x(const mt_ctx *c, const fs *s, float *row) { memcpy(row, s->x, (size_t)c->row * sizeof *row); }

/* ---- subsets to a baseline: faithfulness correlation, infidelity, sensitivity-n ---- */

/* row r: x with the r-th subset (k pixels from s->idx + r * k) at the baseline */
static void make_subset(const mt_ctx *c, int64_t r, float *row, void *u) {
    const fs *s = u;
    copy_x(c, s, row);
    for (int64_t j = 0; j < s->k; j++) mt_set(c, row, s->idx[r * s->k + j], s->base);
}

/* Faithfulness correlation (Bhatt et al. 2020): Pearson over random subsets of the map's sum on the
 * subset and the output's drop when the subset goes to the baseline. */
static sal_status run_fcorr(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    if (!(c->p[0] > 0 && c->p[0] <= 1)) return sal_fail(SAL_ERR_ARG, "faithfulness_correlation: subset must be in (0, 1]");
    int64_t HW = c->HW, runs = mt_count(c->p[1], 100), k = (int64_t)llround(c->p[0] * (double)HW);
    k = k < 1 ? 1 : k > HW ? HW : k;
    fs s = {.k = k, .base = (float)c->p[2]};
    int64_t *perm = sal_malloc((size_t)HW * sizeof *perm);
    double *sa = sal_malloc((size_t)runs * sizeof *sa), *d = sal_malloc((size_t)runs * sizeof *d);
    sal_status st = perm && sa && d ? fs_alloc(c, &s, runs * k) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        if ((st = fs_sample(c, &s, i, A + q * c->row)) != SAL_OK) break;
        sal_rng g;
        mt_rng(c, i, &g);
        for (int64_t p = 0; p < HW; p++) perm[p] = p;
        for (int64_t r = 0; r < runs; r++) {
            draw_subset(&g, perm, HW, k, s.idx + r * k);
            sa[r] = 0;
            for (int64_t j = 0; j < k; j++) sa[r] += s.P[s.idx[r * k + j]];
        }
        if ((st = mt_forward(c, runs, make_subset, &s, c->target[i], prob(c), false, NULL)) != SAL_OK) break;
        for (int64_t r = 0; r < runs; r++) d[r] = (double)c->y0[i] - c->scores[r];
        v[q] = mt_pearson(sa, d, runs);
    }
    fs_free(&s);
    sal_free(perm), sal_free(sa), sal_free(d);
    return st;
}

/* Infidelity (Yeh et al. 2019) with square removal: the mean over random squares of (map's sum on
 * the square - the output's drop when the square goes to the baseline)^2. */
static sal_status run_infid(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    int64_t side = c->H < c->W ? c->H : c->W, auto_p = (side + 3) / 7 > 0 ? (side + 3) / 7 : 1;
    int64_t pp = mt_count(c->p[0], auto_p), runs = mt_count(c->p[1], 50);
    int64_t ph = pp < c->H ? pp : c->H, pw = pp < c->W ? pp : c->W, k = ph * pw;
    fs s = {.k = k, .base = (float)c->p[2]};
    double *sa = sal_malloc((size_t)runs * sizeof *sa);
    sal_status st = sa ? fs_alloc(c, &s, runs * k) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        if ((st = fs_sample(c, &s, i, A + q * c->row)) != SAL_OK) break;
        sal_rng g;
        mt_rng(c, i, &g);
        for (int64_t r = 0; r < runs; r++) {
            int64_t y0 = (int64_t)(sal_rng_u64(&g) % (uint64_t)(c->H - ph + 1)), x0 = (int64_t)(sal_rng_u64(&g) % (uint64_t)(c->W - pw + 1));
            int64_t j = 0;
            sa[r] = 0;
            for (int64_t y = y0; y < y0 + ph; y++)
                for (int64_t x = x0; x < x0 + pw; x++) s.idx[r * k + j++] = y * c->W + x, sa[r] += s.P[y * c->W + x];
        }
        if ((st = mt_forward(c, runs, make_subset, &s, c->target[i], prob(c), false, NULL)) != SAL_OK) break;
        double e = 0;
        for (int64_t r = 0; r < runs; r++) {
            double dd = sa[r] - ((double)c->y0[i] - c->scores[r]);
            e += dd * dd;
        }
        v[q] = e / (double)runs;
    }
    fs_free(&s);
    sal_free(sa);
    return st;
}

/* the subset sizes of sensitivity-n: round(0.8 HW l / levels), at least 1 */
static int64_t sens_size(const mt_ctx *c, int64_t l, int64_t levels) {
    int64_t k = (int64_t)llround(c->p[2] * (double)c->HW * (double)(l + 1) / (double)levels);
    return k < 1 ? 1 : k > c->HW ? c->HW : k;
}

static int np_sens(const mt_ctx *c) { return (int)mt_count(c->p[0], 10); } /* counts are capped at 1e6 */

/* row r = l * runs + j: x with subset j of size n_l at the baseline; subsets of each level padded to
 * the largest size with the first pixel repeated */
static void make_sens(const mt_ctx *c, int64_t r, float *row, void *u) {
    const fs *s = u;
    copy_x(c, s, row);
    int64_t l = r / s->runs, kl = sens_size(c, l, s->nlev);
    for (int64_t j = 0; j < kl; j++) mt_set(c, row, s->idx[r * s->k + j], s->base);
}

/* Sensitivity-n (Ancona et al. 2018): for subset sizes n_l, the Pearson correlation over random
 * subsets of the map's sum on the subset and the output's drop; the value is the mean over sizes. */
static sal_status run_sens(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    if (!(c->p[2] > 0 && c->p[2] <= 1)) return sal_fail(SAL_ERR_ARG, "sensitivity_n: max_fraction must be in (0, 1]");
    int64_t HW = c->HW, L = np_sens(c), runs = mt_count(c->p[1], 100), kmax = sens_size(c, L - 1, L);
    fs s = {.k = kmax, .base = (float)c->p[3], .runs = runs, .nlev = L};
    int64_t *perm = sal_malloc((size_t)HW * sizeof *perm);
    double *sa = sal_malloc((size_t)(L * runs) * sizeof *sa), *d = sal_malloc((size_t)runs * sizeof *d);
    sal_status st = perm && sa && d ? fs_alloc(c, &s, L * runs * kmax) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        if ((st = fs_sample(c, &s, i, A + q * c->row)) != SAL_OK) break;
        sal_rng g;
        mt_rng(c, i, &g);
        for (int64_t p = 0; p < HW; p++) perm[p] = p;
        for (int64_t l = 0; l < L; l++)
            for (int64_t j = 0; j < runs; j++) {
                int64_t r = l * runs + j, kl = sens_size(c, l, L);
                draw_subset(&g, perm, HW, kl, s.idx + r * kmax);
                sa[r] = 0;
                for (int64_t t = 0; t < kl; t++) sa[r] += s.P[s.idx[r * kmax + t]];
            }
        if ((st = mt_forward(c, L * runs, make_sens, &s, c->target[i], prob(c), false, NULL)) != SAL_OK) break;
        au_mean m = {0};
        for (int64_t l = 0; l < L; l++) {
            for (int64_t j = 0; j < runs; j++) d[j] = (double)c->y0[i] - c->scores[l * runs + j];
            cv[q * L + l] = mt_pearson(sa + l * runs, d, runs);
            au_mean_add(&m, cv[q * L + l]);
        }
        v[q] = au_mean_get(&m);
    }
    fs_free(&s);
    sal_free(perm), sal_free(sa), sal_free(d);
    return st;
}

/* ---- groups of pixels in the map's order: faithfulness estimate, monotonicity, non-sensitivity ---- */

/* row r: x with group r of g pixels (in s->order) at the baseline */
static void make_group_off(const mt_ctx *c, int64_t r, float *row, void *u) {
    const fs *s = u;
    copy_x(c, s, row);
    for (int64_t j = r * s->g; j < (r + 1) * s->g && j < c->HW; j++) mt_set(c, row, s->order[j], s->base);
}

/* Faithfulness estimate (Alvarez-Melis & Jaakkola 2018): Pearson correlation over groups of pixels
 * of the map's sum on the group and the output's drop when the group alone goes to the baseline. */
static sal_status run_festimate(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    int64_t g = mt_count(c->p[0], 1), G = (c->HW + g - 1) / g;
    fs s = {.g = g, .base = (float)c->p[1]};
    double *sa = sal_malloc((size_t)G * sizeof *sa), *d = sal_malloc((size_t)G * sizeof *d);
    sal_status st = sa && d ? fs_alloc(c, &s, 0) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        if ((st = fs_sample(c, &s, i, A + q * c->row)) != SAL_OK) break;
        for (int64_t r = 0; r < G; r++) {
            sa[r] = 0;
            for (int64_t j = r * g; j < (r + 1) * g && j < c->HW; j++) sa[r] += s.P[s.order[j]];
        }
        if ((st = mt_forward(c, G, make_group_off, &s, c->target[i], prob(c), false, NULL)) != SAL_OK) break;
        for (int64_t r = 0; r < G; r++) d[r] = (double)c->y0[i] - c->scores[r];
        v[q] = mt_pearson(sa, d, G);
    }
    fs_free(&s);
    sal_free(sa), sal_free(d);
    return st;
}

/* row r: the baseline image with the r least relevant groups put back from x */
static void make_insert_low(const mt_ctx *c, int64_t r, float *row, void *u) {
    const fs *s = u;
    for (int64_t e = 0; e < c->row; e++) row[e] = s->base;
    for (int64_t j = 0; j < r * s->g && j < c->HW; j++) {
        int64_t p = s->order[c->HW - 1 - j];
        for (int64_t ch = 0; ch < c->C; ch++) row[ch * c->HW + p] = s->x[ch * c->HW + p];
    }
}

/* Monotonicity (Arya et al. 2019): from the baseline image, groups of pixels are put back least
 * relevant first; 1 when the output never decreases, else 0. */
static sal_status run_mono(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    int64_t g = mt_count(c->p[0], 1), G = (c->HW + g - 1) / g;
    fs s = {.g = g, .base = (float)c->p[1]};
    sal_status st = fs_alloc(c, &s, 0);
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        if ((st = fs_sample(c, &s, i, A + q * c->row)) != SAL_OK) break;
        if ((st = mt_forward(c, G + 1, make_insert_low, &s, c->target[i], prob(c), false, NULL)) != SAL_OK) break;
        bool mono = true;
        for (int64_t r = 0; r < G; r++) mono &= c->scores[r + 1] >= c->scores[r];
        v[q] = mono;
    }
    fs_free(&s);
    return st;
}

/* row r = group * draws + d: x with the group's pixels drawn uniformly from the input range */
static void make_group_noise(const mt_ctx *c, int64_t r, float *row, void *u) {
    const fs *s = u;
    copy_x(c, s, row);
    sal_rng g;
    mt_rng_row(c, s->i, r, &g);
    int64_t grp = r / s->runs;
    for (int64_t j = grp * s->g; j < (grp + 1) * s->g && j < c->HW; j++)
        for (int64_t ch = 0; ch < c->C; ch++)
            row[ch * c->HW + s->lorder[j]] = (float)(c->lo + (c->hi - c->lo) * sal_rng_uniform(&g));
}

/* Monotonicity correlation (Nguyen & Martinez 2020): Spearman correlation over groups of pixels of
 * |map's sum on the group| and the mean squared change of the output when the group is redrawn
 * uniformly from the input range. */
static sal_status run_monocorr(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    int64_t g = mt_count(c->p[0], 1), G = (c->HW + g - 1) / g, D = mt_count(c->p[1], 5);
    fs s = {.g = g, .runs = D};
    double *sa = sal_malloc((size_t)G * sizeof *sa), *var = sal_malloc((size_t)G * sizeof *var);
    sal_status st = sa && var ? fs_alloc(c, &s, 0) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        if ((st = fs_sample(c, &s, i, A + q * c->row)) != SAL_OK) break;
        for (int64_t p = 0; p < c->HW; p++) s.lv[p] = fabs(s.P[p]);
        if ((st = mt_order(s.lv, c->HW, s.lorder)) != SAL_OK) break;
        for (int64_t r = 0; r < G; r++) {
            sa[r] = 0;
            for (int64_t j = r * g; j < (r + 1) * g && j < c->HW; j++) sa[r] += s.lv[s.lorder[j]];
        }
        if ((st = mt_forward(c, G * D, make_group_noise, &s, c->target[i], prob(c), false, NULL)) != SAL_OK) break;
        for (int64_t r = 0; r < G; r++) {
            var[r] = 0;
            for (int64_t d = 0; d < D; d++) {
                double dd = (double)c->y0[i] - c->scores[r * D + d];
                var[r] += dd * dd / (double)D;
            }
        }
        v[q] = mt_spearman(sa, var, G);
    }
    fs_free(&s);
    sal_free(sa), sal_free(var);
    return st;
}

/* ---- removal curves: pixel flipping, region perturbation, selectivity, IROF, ROAD ---- */

static int np_flip(const mt_ctx *c) { return (int)mt_count(c->p[0], c->HW) + 1; }

/* row r: x with the round(r HW / steps) most relevant pixels at the baseline */
static void make_flip(const mt_ctx *c, int64_t r, float *row, void *u) {
    const fs *s = u;
    copy_x(c, s, row);
    int64_t np = (int64_t)llround((double)r * (double)c->HW / (double)s->steps);
    for (int64_t j = 0; j < np; j++) mt_set(c, row, s->order[j], s->base);
}

/* Area under a curve of S + 1 points over [0, 1] (trapezoids). */
static double curve_auc(const float *y, int64_t S) {
    double a = 0;
    for (int64_t k = 0; k < S; k++) a += ((double)y[k] + y[k + 1]) / 2;
    return S > 0 ? a / (double)S : NAN;
}

/* Pixel flipping (Bach et al. 2015): the output while pixels go to the baseline, most relevant
 * first; the value is the area under that curve. */
static sal_status run_flip(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    int64_t S = np_flip(c) - 1;
    fs s = {.steps = S, .base = (float)c->p[1]};
    sal_status st = fs_alloc(c, &s, 0);
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        if ((st = fs_sample(c, &s, i, A + q * c->row)) != SAL_OK) break;
        if ((st = mt_forward(c, S + 1, make_flip, &s, c->target[i], prob(c), false, NULL)) != SAL_OK) break;
        for (int64_t k = 0; k <= S; k++) cv[q * (S + 1) + k] = c->scores[k];
        v[q] = curve_auc(c->scores, S);
    }
    fs_free(&s);
    return st;
}

/* Tiles of ph x pw pixels over the plane (partial ones at the edges), each labelled; their count. */
static int64_t tiles(const mt_ctx *c, int64_t ph, int64_t pw, int32_t *label) {
    int64_t ty = (c->H + ph - 1) / ph, tx = (c->W + pw - 1) / pw;
    for (int64_t y = 0; label && y < c->H; y++)
        for (int64_t x = 0; x < c->W; x++) label[y * c->W + x] = (int32_t)((y / ph) * tx + x / pw);
    return ty * tx;
}

static int64_t tile_side(const mt_ctx *c, double p) {
    int64_t side = c->H < c->W ? c->H : c->W, auto_p = (side + 3) / 7 > 0 ? (side + 3) / 7 : 1;
    return mt_count(p, auto_p);
}

static int np_tiles(const mt_ctx *c) {
    int64_t t = tile_side(c, c->p[0]), nt = tiles(c, t < c->H ? t : c->H, t < c->W ? t : c->W, NULL);
    int64_t R = mt_count(c->p[1], nt);
    return (int)(R < nt ? R : nt) + 1;
}

/* row r: x with the r most relevant labelled regions (s->lorder) taken from s->fill */
static void make_regions(const mt_ctx *c, int64_t r, float *row, void *u) {
    const fs *s = u;
    copy_x(c, s, row);
    for (int64_t p = 0; p < c->HW; p++)
        if (s->idx[s->label[p]] < r) /* the region's rank */
            for (int64_t ch = 0; ch < c->C; ch++) row[ch * c->HW + p] = s->fill[ch * c->HW + p];
}

/* Regions of the sample by relevance (mean: the mean of P, else its sum), descending, into s->lorder. */
static sal_status order_regions(const mt_ctx *c, fs *s, int64_t nreg, bool mean) {
    double *cnt = sal_calloc((size_t)nreg, sizeof *cnt);
    if (!cnt) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; k < nreg; k++) s->lv[k] = 0;
    for (int64_t p = 0; p < c->HW; p++) s->lv[s->label[p]] += s->P[p], cnt[s->label[p]]++;
    for (int64_t k = 0; k < nreg && mean; k++) s->lv[k] /= cnt[k] > 0 ? cnt[k] : 1;
    sal_free(cnt);
    SAL_TRY(mt_order(s->lv, nreg, s->lorder));
    for (int64_t j = 0; j < nreg; j++) s->idx[s->lorder[j]] = j;
    return SAL_OK;
}

/* Region perturbation (Samek et al. 2017) with uniform noise (noise 1) and selectivity (Montavon et
 * al. 2018) with the baseline (noise 0): tiles removed most relevant first. */
static sal_status run_regions(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv, bool noise) {
    int64_t t = tile_side(c, c->p[0]), ph = t < c->H ? t : c->H, pw = t < c->W ? t : c->W, R = np_tiles(c) - 1;
    fs s = {.base = noise ? 0 : (float)c->p[2]};
    sal_status st = fs_alloc(c, &s, 0);
    int64_t nt = st == SAL_OK ? tiles(c, ph, pw, s.label) : 0;
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        if ((st = fs_sample(c, &s, i, A + q * c->row)) != SAL_OK || (st = order_regions(c, &s, nt, false)) != SAL_OK) break;
        sal_rng g;
        mt_rng(c, i, &g);
        for (int64_t e = 0; e < c->row; e++) s.fill[e] = noise ? (float)(c->lo + (c->hi - c->lo) * sal_rng_uniform(&g)) : s.base;
        if ((st = mt_forward(c, R + 1, make_regions, &s, c->target[i], prob(c), false, NULL)) != SAL_OK) break;
        double aopc = 0;
        for (int64_t k = 0; k <= R; k++) aopc += (double)c->scores[0] - c->scores[k], cv[q * (R + 1) + k] = c->scores[k];
        v[q] = noise ? aopc / (double)(R + 1) : curve_auc(c->scores, R);
    }
    fs_free(&s);
    return st;
}
static sal_status run_regpert(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    return run_regions(c, i0, n, A, v, cv, true);
}
static sal_status run_select(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    return run_regions(c, i0, n, A, v, cv, false);
}

/* IROF (Rieger & Hansen 2020): SLIC superpixels removed (set to the image's mean per channel) by
 * mean relevance, most relevant first; the value is the area over the curve of the class
 * probability relative to the unperturbed one, mean over k = 0..S of 1 - p_k / p_0. */
static sal_status run_irof(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    fs s = {0};
    sal_status st = fs_alloc(c, &s, 0);
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q, nseg = 0;
        if ((st = fs_sample(c, &s, i, A + q * c->row)) != SAL_OK) break;
        if ((st = sal_slic(s.x, c->C, c->H, c->W, mt_count(c->p[0], 50), c->p[1], c->hi - c->lo, s.label, &nseg)) != SAL_OK)
            break;
        if ((st = order_regions(c, &s, nseg, true)) != SAL_OK) break;
        for (int64_t ch = 0; ch < c->C; ch++) {
            double m = 0;
            for (int64_t p = 0; p < c->HW; p++) m += s.x[ch * c->HW + p];
            for (int64_t p = 0; p < c->HW; p++) s.fill[ch * c->HW + p] = (float)(m / (double)c->HW);
        }
        if ((st = mt_forward(c, nseg + 1, make_regions, &s, c->target[i], true, false, NULL)) != SAL_OK) break;
        double p0 = c->scores[0], aoc = 0;
        for (int64_t k = 0; k <= nseg; k++) aoc += 1 - c->scores[k] / p0;
        v[q] = p0 > 0 ? aoc / (double)(nseg + 1) : NAN;
    }
    fs_free(&s);
    return st;
}

static int np_road(const mt_ctx *c) { return (int)mt_count(c->p[0], 9); }

/* Noisy linear imputation (Rong et al. 2022) of row: the pixels with off[p] become the weighted mean
 * of their neighbours (sides 1/6, corners 1/12, neighbours outside the image left out), solved
 * jointly as one banded system over the plane for every channel, then get N(0, sd^2) noise. */
static sal_status impute(const mt_ctx *c, const uint8_t *off, float *row, double sd, sal_rng *g) {
    int64_t H = c->H, W = c->W, HW = c->HW, kl = W + 1, ld = 3 * kl + 1;
    double *ab = sal_calloc((size_t)(ld * HW), sizeof *ab), *b = sal_malloc((size_t)(HW * c->C) * sizeof *b);
    if (!ab || !b) {
        sal_free(ab), sal_free(b);
        return sal_fail(SAL_ERR_NOMEM, "out of memory for ROAD's imputation (%lld x %lld pixels)", (long long)H, (long long)W);
    }
#define AB(i, j) ab[(2 * kl + (i) - (j)) + (j) * ld]
    for (int64_t p = 0; p < HW; p++) {
        for (int64_t ch = 0; ch < c->C; ch++) b[ch * HW + p] = off[p] ? 0 : row[ch * HW + p];
        if (!off[p]) {
            AB(p, p) = 1;
            continue;
        }
        int64_t y = p / W, x = p % W;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int64_t yy = y + dy, xx = x + dx, q = yy * W + xx;
                if ((!dy && !dx) || yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                double w = dy && dx ? 1.0 / 12 : 1.0 / 6;
                AB(p, p) += w;
                AB(p, q) -= w;
            }
    }
#undef AB
    sal_status st = sal_lapack_gbsv((int)HW, (int)kl, (int)kl, (int)c->C, ab, b);
    for (int64_t p = 0; p < HW && st == SAL_OK; p++)
        if (off[p])
            for (int64_t ch = 0; ch < c->C; ch++) row[ch * HW + p] = (float)(b[ch * HW + p] + sd * sal_rng_normal(g));
    sal_free(ab), sal_free(b);
    return st;
}

typedef struct {
    fs s;
    float *rows;   /* the imputed images, one per level */
    sal_status st;
} road_ctx;

static void make_road(const mt_ctx *c, int64_t r, float *row, void *u) {
    const road_ctx *rc = u;
    memcpy(row, rc->rows + r * c->row, (size_t)c->row * sizeof *row);
}

/* ROAD (Rong et al. 2022): the most relevant pixels, at levels l / (steps + 1), are replaced by noisy
 * linear imputation; the curve is whether the prediction stays the explained class, the value its
 * mean over the levels (lower: the map found what the prediction rests on). */
static sal_status run_road(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    int64_t L = np_road(c), HW = c->HW;
    road_ctx rc = {0};
    uint8_t *off = sal_malloc((size_t)HW);
    rc.rows = sal_malloc((size_t)(L * c->row) * sizeof *rc.rows);
    sal_status st = off && rc.rows ? fs_alloc(c, &rc.s, 0) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t q = 0; q < n && st == SAL_OK; q++) {
        int64_t i = i0 + q;
        if ((st = fs_sample(c, &rc.s, i, A + q * c->row)) != SAL_OK) break;
        sal_rng g;
        mt_rng(c, i, &g);
        for (int64_t l = 0; l < L && st == SAL_OK; l++) {
            int64_t k = (int64_t)llround((double)HW * (double)(l + 1) / (double)(L + 1));
            memset(off, 0, (size_t)HW);
            for (int64_t j = 0; j < k; j++) off[rc.s.order[j]] = 1;
            float *row = rc.rows + l * c->row;
            memcpy(row, rc.s.x, (size_t)c->row * sizeof *row);
            st = impute(c, off, row, c->p[1] * (c->hi - c->lo), &g);
        }
        if (st == SAL_OK) st = mt_forward(c, L, make_road, &rc, c->target[i], prob(c), false, NULL);
        if (st != SAL_OK) break;
        double m = 0;
        for (int64_t l = 0; l < L; l++) m += c->top[l], cv[q * L + l] = c->top[l];
        v[q] = m / (double)L;
    }
    fs_free(&rc.s);
    sal_free(off), sal_free(rc.rows);
    return st;
}

/* ---- sufficiency: samples with alike explanations should get alike predictions ---- */

/* Keeps each sample's binarized map: the pixels whose energy is at least threshold x its largest. */
static sal_status run_suff(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)v, (void)cv;
    if (!c->keep && !(c->keep = sal_calloc((size_t)(c->N * c->HW), 1))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    double *P = sal_malloc((size_t)c->HW * sizeof *P);
    if (!P) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t q = 0; q < n; q++) {
        mt_plane(c, A + q * c->row, true, P);
        double mx = 0;
        for (int64_t p = 0; p < c->HW; p++) mx = fmax(mx, P[p]);
        for (int64_t p = 0; p < c->HW; p++) c->keep[(i0 + q) * c->HW + p] = mx > 0 && P[p] >= c->p[0] * mx;
    }
    sal_free(P);
    return SAL_OK;
}

/* Sufficiency (Dasgupta et al. 2022): the neighbours of sample i are the other samples whose
 * binarized maps lie within Jaccard distance `distance` of its own; the value is the fraction of
 * them predicted as i is (NAN without neighbours). */
static sal_status suff_finish(mt_ctx *c, double *v) {
    int64_t N = c->N, HW = c->HW;
    for (int64_t i = 0; i < N; i++) {
        double same = 0, nb = 0;
        const uint8_t *bi = c->keep + i * HW;
        for (int64_t j = 0; j < N; j++) {
            if (j == i) continue;
            const uint8_t *bj = c->keep + j * HW;
            double in = 0, un = 0;
            for (int64_t p = 0; p < HW; p++) in += bi[p] & bj[p], un += bi[p] | bj[p];
            if (un > 0 && 1 - in / un <= c->p[1]) nb++, same += c->target[j] == c->target[i];
        }
        v[i] = nb > 0 ? same / nb : NAN;
    }
    return SAL_OK;
}

#define BASE {"baseline", "0", "value removed pixels take"}
const mt_metric mt_faithfulness[] = {
    {"faithfulness_correlation", "faithfulness", "Pearson correlation of the map's sum on random subsets with the "
     "output's drop when they are removed (Bhatt et al. 2020)", 1, false,
     {{"subset", "0.1", "fraction of the pixels in a subset"}, {"runs", "100", "random subsets"}, BASE}, NULL, NULL, 0,
     run_fcorr, NULL},
    {"faithfulness_estimate", "faithfulness", "Pearson correlation of each pixel group's relevance with the output's "
     "drop when it alone is removed (Alvarez-Melis & Jaakkola 2018)", 1, false,
     {{"features_in_step", "1", "pixels per group"}, BASE}, NULL, NULL, 0, run_festimate, NULL},
    {"infidelity", "faithfulness", "mean squared difference between the map's sum on a random square and the output's "
     "drop when it is removed (Yeh et al. 2019)", -1, false,
     {{"patch", "0", "side of the squares; 0: a seventh of the image"}, {"runs", "50", "random squares"}, BASE}, NULL,
     NULL, 0, run_infid, NULL},
    {"monotonicity", "faithfulness", "1 when putting pixels back into the baseline image least relevant first never "
     "lowers the output (Arya et al. 2019)", 1, false, {{"features_in_step", "1", "pixels per step"}, BASE}, NULL, NULL,
     0, run_mono, NULL},
    {"monotonicity_correlation", "faithfulness", "Spearman correlation of |relevance| with the output's variance when "
     "a pixel group is redrawn (Nguyen & Martinez 2020)", 1, false,
     {{"features_in_step", "1", "pixels per group"}, {"draws", "5", "uniform redraws per group"}}, NULL, NULL, 0,
     run_monocorr, NULL},
    {"pixel_flipping", "faithfulness", "area under the output while pixels go to the baseline, most relevant first "
     "(Bach et al. 2015)", -1, false, {{"steps", "0", "points after the start; 0: one pixel per step"}, BASE},
     "fraction of the pixels removed", np_flip, 0, run_flip, NULL},
    {"region_perturbation", "faithfulness", "AOPC while square regions are replaced by uniform noise, most relevant "
     "first (Samek et al. 2017)", 1, false,
     {{"patch", "0", "side of the regions; 0: a seventh of the image"}, {"regions", "0", "regions removed; 0: all"}},
     "regions removed", np_tiles, 0, run_regpert, NULL},
    {"selectivity", "faithfulness", "area under the output while square regions go to the baseline, most relevant "
     "first (Montavon et al. 2018)", -1, false,
     {{"patch", "0", "side of the regions; 0: a seventh of the image"}, {"regions", "0", "regions removed; 0: all"}, BASE},
     "regions removed", np_tiles, 0, run_select, NULL},
    {"irof", "faithfulness", "area over the class probability curve while superpixels are removed by mean relevance "
     "(Rieger & Hansen 2020)", 1, false,
     {{"segments", "50", "SLIC superpixels"}, {"compactness", "10", "SLIC compactness"}}, NULL, NULL, 0, run_irof, NULL},
    {"road", "faithfulness", "whether the prediction survives removing the most relevant pixels by noisy linear "
     "imputation, mean over removal levels (Rong et al. 2022)", -1, false,
     {{"steps", "9", "levels l / (steps + 1) of the pixels"}, {"noise", "0.01", "sd of the imputation's noise, "
     "fraction of the input range"}}, "fraction of the pixels removed (l / (steps + 1))", np_road, 0, run_road, NULL},
    {"sensitivity_n", "faithfulness", "Pearson correlation of the map's sum on random subsets of n pixels with the "
     "output's drop, mean over n (Ancona et al. 2018)", 1, false,
     {{"levels", "10", "subset sizes n"}, {"runs", "100", "subsets per size"},
      {"max_fraction", "0.8", "the largest n as a fraction of the pixels"}, BASE},
     "subset size n (fraction max_fraction l / levels of the pixels)", np_sens, 0, run_sens, NULL},
    {"sufficiency", "faithfulness", "fraction of the samples with a map alike (Jaccard distance of the binarized maps) "
     "that get the same prediction (Dasgupta et al. 2022)", 1, false,
     {{"threshold", "0.6", "a pixel is on at this fraction of the map's largest energy"},
      {"distance", "0.5", "the largest Jaccard distance of a neighbour"}},
     NULL, NULL, 0, run_suff, suff_finish},
};
const int mt_nfaithfulness = (int)(sizeof mt_faithfulness / sizeof mt_faithfulness[0]);
