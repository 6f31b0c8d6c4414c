/* Complexity and localization metrics: scores of the map alone, or of the map against the object's
 * mask. No forward passes. Definitions and conventions: docs/metrics.md. */
#include "metric.h"
#include <stdlib.h>

static int by_abs_up(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* |a| of one map's elements into w (row), sorted ascending when sorted; their sum. */
static double abs_values(const mt_ctx *c, const float *a, double *w, bool sorted) {
    double s = 0;
    for (int64_t k = 0; k < c->row; k++) s += w[k] = fabs((double)a[k]);
    if (sorted) qsort(w, (size_t)c->row, sizeof *w, by_abs_up);
    return s;
}

/* Runs score(c, i, map, work) for each sample of the slice; work holds 3 * max(row, HW) doubles. */
static sal_status each(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v,
                       double (*score)(const mt_ctx *c, int64_t i, const float *a, double *w)) {
    int64_t sz = c->row > c->HW ? c->row : c->HW;
    double *w = sal_malloc((size_t)(3 * sz + 3) * sizeof *w);
    if (!w) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t q = 0; q < n; q++) v[q] = score(c, i0 + q, A + q * c->row, w);
    sal_free(w);
    return SAL_OK;
}

/* ---- complexity ---- */

/* Gini index of |a| normalised to [0, 1]: sum_k (2k - n - 1) |a|_(k) / ((n - 1) sum |a|), k = 1..n
 * ascending. 1: one element holds everything, 0: all equal. */
static double gini(const mt_ctx *c, int64_t i, const float *a, double *w) {
    (void)i;
    double s = abs_values(c, a, w, true), g = 0;
    int64_t n = c->row;
    if (!(s > 0) || n < 2) return NAN;
    for (int64_t k = 0; k < n; k++) g += (double)(2 * (k + 1) - n - 1) * w[k];
    return g / ((double)(n - 1) * s);
}

/* Shannon entropy (nats) of the fractions |a_i| / sum |a|. */
static double entropy(const mt_ctx *c, int64_t i, const float *a, double *w) {
    (void)i;
    double s = abs_values(c, a, w, false), h = 0;
    if (!(s > 0)) return NAN;
    for (int64_t k = 0; k < c->row; k++)
        if (w[k] > 0) h -= w[k] / s * log(w[k] / s);
    return h;
}

/* Elements with |a| > eps max |a|. */
static double effective(const mt_ctx *c, int64_t i, const float *a, double *w) {
    (void)i;
    abs_values(c, a, w, false);
    double mx = 0, n = 0;
    for (int64_t k = 0; k < c->row; k++) mx = fmax(mx, w[k]);
    for (int64_t k = 0; k < c->row && mx > 0; k++) n += w[k] > c->p[0] * mx;
    return n;
}

static sal_status run_sparseness(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    return each(c, i0, n, A, v, gini);
}
static sal_status run_complexity(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    return each(c, i0, n, A, v, entropy);
}
static sal_status run_effective(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {
    (void)cv;
    return each(c, i0, n, A, v, effective);
}

const mt_metric mt_complexity[] = {
    {"sparseness", "complexity", "Gini index of |map| (Chalasani et al. 2020), 1: one element holds all", 1, false,
     {{NULL}}, NULL, NULL, 0, run_sparseness, NULL},
    {"complexity", "complexity", "entropy of the fractions |a_i| / sum |a| (Bhatt et al. 2020)", -1, false, {{NULL}},
     NULL, NULL, 0, run_complexity, NULL},
    {"effective_complexity", "complexity", "elements with |a| above eps times the largest (Nguyen & Martinez 2020)",
     -1, false, {{"eps", "1e-5", "threshold relative to max |a|"}}, NULL, NULL, 0, run_effective, NULL},
};
const int mt_ncomplexity = (int)(sizeof mt_complexity / sizeof mt_complexity[0]);

/* ---- localization: maps against masks ---- */

static const float *mask_of(const mt_ctx *c, int64_t i) { return c->mask + i * c->HW; }

/* Share of the energy plane (sum over channels of |a|) inside the mask. */
static double mass(const mt_ctx *c, int64_t i, const float *a, double *w) {
    mt_plane(c, a, true, w);
    double in = 0, all = 0;
    for (int64_t p = 0; p < c->HW; p++) all += w[p], in += mask_of(c, i)[p] * w[p];
    return all > 0 ? in / all : NAN;
}

/* Fraction of the k highest pixels of the energy plane inside the mask (k = mask size when k0 <= 0). */
static double topk_in(const mt_ctx *c, int64_t i, const float *a, double *w, int64_t k0) {
    mt_plane(c, a, true, w);
    const float *mk = mask_of(c, i);
    int64_t K = 0;
    for (int64_t p = 0; p < c->HW; p++) K += mk[p] != 0;
    if (k0 > 0) K = k0 < c->HW ? k0 : c->HW;
    bool flat = true;
    for (int64_t p = 1; p < c->HW; p++) flat &= w[p] == w[0];
    int64_t *ord = sal_malloc((size_t)c->HW * sizeof *ord);
    if (!K || flat || !ord || mt_order(w, c->HW, ord) != SAL_OK) {
        sal_free(ord);
        return NAN;
    }
    double hits = 0;
    for (int64_t q = 0; q < K; q++) hits += mk[ord[q]] != 0;
    sal_free(ord);
    return hits / (double)K;
}

static double rank_acc(const mt_ctx *c, int64_t i, const float *a, double *w) { return topk_in(c, i, a, w, 0); }

static double topk(const mt_ctx *c, int64_t i, const float *a, double *w) {
    return topk_in(c, i, a, w, mt_count(c->p[0], c->HW / 10 > 0 ? c->HW / 10 : 1));
}

/* Share of the positive part of the signed plane inside the mask. */
static double attr_loc(const mt_ctx *c, int64_t i, const float *a, double *w) {
    mt_plane(c, a, false, w);
    double in = 0, all = 0;
    for (int64_t p = 0; p < c->HW; p++) {
        double v = w[p] > 0 ? w[p] : 0;
        all += v, in += mask_of(c, i)[p] * v;
    }
    return all > 0 ? in / all : NAN;
}

/* Area under the ROC curve of the energy plane as a score for "on the object" (Mann-Whitney U,
 * ties count one half). */
static double roc_auc(const mt_ctx *c, int64_t i, const float *a, double *w) {
    mt_plane(c, a, true, w);
    const float *mk = mask_of(c, i);
    int64_t HW = c->HW, *ord = sal_malloc((size_t)HW * sizeof *ord);
    double npos = 0, sum = 0;
    if (!ord || mt_order(w, HW, ord) != SAL_OK) {
        sal_free(ord);
        return NAN;
    }
    /* ranks ascending (1 = lowest), ties sharing their average */
    for (int64_t q = 0; q < HW;) {
        int64_t j = q;
        while (j + 1 < HW && w[ord[j + 1]] == w[ord[q]]) j++;
        double rank = (double)HW - (double)(q + j) / 2; /* ord is descending */
        for (int64_t t = q; t <= j; t++)
            if (mk[ord[t]] != 0) sum += rank, npos++;
        q = j + 1;
    }
    sal_free(ord);
    double nneg = (double)HW - npos;
    if (!npos || !nneg) return NAN;
    return (sum - npos * (npos + 1) / 2) / (npos * nneg);
}

/* The bounding box of the non-zero pixels of a plane: y0, x0, y1, x1 inclusive; false if none. */
static bool bbox(const float *mk, int64_t H, int64_t W, int64_t b[4]) {
    b[0] = b[1] = INT64_MAX, b[2] = b[3] = -1;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            if (mk[y * W + x] != 0) {
                if (y < b[0]) b[0] = y;
                if (x < b[1]) b[1] = x;
                if (y > b[2]) b[2] = y;
                if (x > b[3]) b[3] = x;
            }
    return b[2] >= 0;
}

/* Share of the energy plane inside the object's bounding box (Wang et al.'s energy-based pointing). */
static double energy_box(const mt_ctx *c, int64_t i, const float *a, double *w) {
    int64_t b[4];
    if (!bbox(mask_of(c, i), c->H, c->W, b)) return NAN;
    mt_plane(c, a, true, w);
    double in = 0, all = 0;
    for (int64_t y = 0; y < c->H; y++)
        for (int64_t x = 0; x < c->W; x++) {
            double v = w[y * c->W + x];
            all += v;
            if (y >= b[0] && y <= b[2] && x >= b[1] && x <= b[3]) in += v;
        }
    return all > 0 ? in / all : NAN;
}

/* Grad-CAM's weakly supervised localization: the signed plane above threshold * its maximum, its
 * largest 8-connected component, the box around it; the IoU of that box with the object's. */
static double wsl(const mt_ctx *c, int64_t i, const float *a, double *w) {
    int64_t H = c->H, W = c->W, HW = c->HW, ob[4], bb[4] = {0};
    if (!bbox(mask_of(c, i), H, W, ob)) return NAN;
    mt_plane(c, a, false, w);
    double mx = -INFINITY;
    for (int64_t p = 0; p < HW; p++) mx = fmax(mx, w[p]);
    if (!(mx > 0)) return NAN;
    double th = c->p[0] * mx;
    int64_t *lab = sal_calloc((size_t)HW, sizeof *lab), *stack = sal_malloc((size_t)HW * sizeof *stack), best = 0;
    if (!lab || !stack) {
        sal_free(lab), sal_free(stack);
        return NAN;
    }
    int64_t nlab = 0;
    for (int64_t s = 0; s < HW; s++) {
        if (lab[s] || !(w[s] > th)) continue;
        int64_t top = 0, size = 0, b[4] = {s / W, s % W, s / W, s % W};
        lab[s] = ++nlab, stack[top++] = s;
        while (top) {
            int64_t p = stack[--top], y = p / W, x = p % W;
            size++;
            b[0] = y < b[0] ? y : b[0], b[1] = x < b[1] ? x : b[1], b[2] = y > b[2] ? y : b[2], b[3] = x > b[3] ? x : b[3];
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int64_t yy = y + dy, xx = x + dx, q = yy * W + xx;
                    if (yy < 0 || yy >= H || xx < 0 || xx >= W || lab[q] || !(w[q] > th)) continue;
                    lab[q] = nlab, stack[top++] = q;
                }
        }
        if (size > best) best = size, memcpy(bb, b, sizeof b);
    }
    sal_free(lab), sal_free(stack);
    if (!best) return NAN; /* a threshold at or above the maximum leaves no pixel */
    double iy = (double)((bb[2] < ob[2] ? bb[2] : ob[2]) - (bb[0] > ob[0] ? bb[0] : ob[0]) + 1),
           ix = (double)((bb[3] < ob[3] ? bb[3] : ob[3]) - (bb[1] > ob[1] ? bb[1] : ob[1]) + 1);
    double inter = iy > 0 && ix > 0 ? iy * ix : 0;
    double ua = (double)(bb[2] - bb[0] + 1) * (double)(bb[3] - bb[1] + 1), ub = (double)(ob[2] - ob[0] + 1) * (double)(ob[3] - ob[1] + 1);
    return inter / (ua + ub - inter);
}

#define RUN(fn, score)                                                                                   \
    static sal_status fn(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv) {      \
        (void)cv;                                                                                        \
        return each(c, i0, n, A, v, score);                                                              \
    }
RUN(run_mass, mass)
RUN(run_rank, rank_acc)
RUN(run_attr_loc, attr_loc)
RUN(run_topk, topk)
RUN(run_auc, roc_auc)
RUN(run_energy, energy_box)
RUN(run_wsl, wsl)

const mt_metric mt_localization[] = {
    {"relevance_mass_accuracy", "localization", "share of |map| inside the mask (Arras et al. 2022)", 1, true, {{NULL}},
     NULL, NULL, 0, run_mass, NULL},
    {"relevance_rank_accuracy", "localization", "fraction of the K highest |map| pixels inside the mask of K pixels "
     "(Arras et al. 2022)", 1, true, {{NULL}}, NULL, NULL, 0, run_rank, NULL},
    {"attribution_localisation", "localization", "share of the positive map inside the mask (Kohlbrenner et al. 2020)",
     1, true, {{NULL}}, NULL, NULL, 0, run_attr_loc, NULL},
    {"top_k_intersection", "localization", "fraction of the k highest |map| pixels inside the mask (Theiner et al. 2022)",
     1, true, {{"k", "0", "pixels; 0: a tenth of them"}}, NULL, NULL, 0, run_topk, NULL},
    {"auc", "localization", "ROC AUC of |map| as a detector of the mask's pixels (Fawcett 2006)", 1, true, {{NULL}},
     NULL, NULL, 0, run_auc, NULL},
    {"energy_pointing_game", "localization", "share of |map| inside the object's bounding box (Wang et al. 2020, "
     "Score-CAM)", 1, true, {{NULL}}, NULL, NULL, 0, run_energy, NULL},
    {"weakly_supervised_localization", "localization", "IoU of the box around the largest component above 15% of the "
     "map's maximum with the object's box (Selvaraju et al. 2017)", 1, true,
     {{"threshold", "0.15", "fraction of the map's maximum"}}, NULL, NULL, 0.5, run_wsl, NULL},
};
const int mt_nlocalization = (int)(sizeof mt_localization / sizeof mt_localization[0]);
