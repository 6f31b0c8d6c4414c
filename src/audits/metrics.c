/* Similarity metrics of the audits: Pearson and Spearman correlation, SSIM, HOG descriptors. */
#include "audit.h"

double sal_pearson(const float *a, const float *b, int64_t n) {
    if (n < 2) return NAN;
    double ma = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= (double)n, mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db, saa += da * da, sbb += db * db;
    }
    if (saa <= 0 || sbb <= 0) return NAN;
    double r = sab / sqrt(saa * sbb);
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

typedef struct {
    float v;
    int64_t i;
} keyed;

static int by_value(const void *x, const void *y) {
    const keyed *a = x, *b = y;
    if (a->v < b->v) return -1;
    if (a->v > b->v) return 1;
    return a->i < b->i ? -1 : a->i > b->i; /* stable, so equal inputs rank alike on every libc */
}

/* 1-based ranks of v, ties sharing their average rank; false when out of memory. */
static bool ranks(const float *v, int64_t n, float *r) {
    keyed *k = sal_malloc((size_t)n * sizeof *k);
    if (!k) return false;
    for (int64_t i = 0; i < n; i++) k[i] = (keyed){v[i], i};
    qsort(k, (size_t)n, sizeof *k, by_value);
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j + 1 < n && k[j + 1].v == k[i].v) j++;
        float avg = (float)((double)(i + j) / 2 + 1);
        for (int64_t t = i; t <= j; t++) r[k[t].i] = avg;
        i = j + 1;
    }
    sal_free(k);
    return true;
}

double sal_spearman(const float *a, const float *b, int64_t n) {
    if (n < 2) return NAN;
    float *ra = sal_malloc((size_t)n * sizeof *ra), *rb = sal_malloc((size_t)n * sizeof *rb);
    double r = NAN;
    if (ra && rb && ranks(a, n, ra) && ranks(b, n, rb)) r = sal_pearson(ra, rb, n);
    sal_free(ra);
    sal_free(rb);
    return r;
}

sal_status sal_ssim(const float *a, const float *b, int h, int w, double range, double *out) {
    *out = NAN;
    if (h < 1 || w < 1 || !(range > 0)) return sal_fail(SAL_ERR_ARG, "SSIM needs a non-empty image and a positive range");
    int k = 11;
    if (k > h) k = h;
    if (k > w) k = w;
    if (k % 2 == 0) k--;
    double g[11], gs = 0;
    for (int i = 0; i < k; i++) {
        double d = i - (k - 1) / 2.0;
        gs += g[i] = exp(-d * d / (2 * 1.5 * 1.5));
    }
    for (int i = 0; i < k; i++) g[i] /= gs;
    double c1 = (0.01 * range) * (0.01 * range), c2 = (0.03 * range) * (0.03 * range), sum = 0;
    int64_t count = 0;
    for (int y0 = 0; y0 + k <= h; y0++)
        for (int x0 = 0; x0 + k <= w; x0++) {
            double ma = 0, mb = 0, aa = 0, bb = 0, ab = 0;
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) {
                    double wt = g[i] * g[j], va = a[(y0 + i) * w + x0 + j], vb = b[(y0 + i) * w + x0 + j];
                    ma += wt * va, mb += wt * vb;
                    aa += wt * va * va, bb += wt * vb * vb, ab += wt * va * vb;
                }
            double va = aa - ma * ma, vb = bb - mb * mb, cov = ab - ma * mb;
            sum += (2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count++;
        }
    *out = sum / (double)count;
    return SAL_OK;
}

/* scikit-image's hog (skimage/feature/_hog.py, _hoghistogram.pyx, version 0.19), step by step, so
 * that a descriptor agrees with it to rounding: gradients [-1, 0, 1] in the image's float32 with 0
 * on the border rows and columns; orientation atan2(g_row, g_col) in degrees modulo 180 (numpy's
 * remainder) with *hard* binning, bin b = [b w, (b + 1) w); each cell's histogram is the mean of
 * its pixels' magnitudes per bin; blocks L2-Hys normalised in double (eps 1e-5), stored as float. */
sal_status sal_hog(const float *img, int h, int w, const sal_hog_opts *o, float *feat, int64_t *n) {
    *n = 0;
    int cell = o && o->cell ? o->cell : 8, block = o && o->block > 0 ? o->block : 3,
        bins = o && o->bins > 0 ? o->bins : 9;
    if (cell < 0) { /* adapted to the image: an 8 x 8 grid of cells, as 8-pixel cells on 64 pixels */
        int side = h < w ? h : w;
        cell = (side + 4) / 8;
        if (cell < 2) cell = 2;
    }
    int ch = h / cell, cw = w / cell; /* whole cells only; a remainder at the edge is left out */
    if (ch < block || cw < block)
        return sal_fail(SAL_ERR_SHAPE, "HOG: a %dx%d image holds %dx%d cells of %d pixels, fewer than a block of %dx%d",
                        h, w, ch, cw, cell, block, block);
    int64_t nb = (int64_t)(ch - block + 1) * (cw - block + 1), per = (int64_t)block * block * bins;
    *n = nb * per;
    if (!feat) return SAL_OK;
    double *hist = sal_calloc((size_t)ch * (size_t)cw * (size_t)bins, sizeof *hist);
    float *tot = sal_malloc((size_t)bins * sizeof *tot);
    if (!hist || !tot) {
        sal_free(hist);
        sal_free(tot);
        return sal_fail(SAL_ERR_NOMEM, "out of memory for HOG");
    }
    const double width = 180.0 / bins;
    for (int cy = 0; cy < ch; cy++)
        for (int cx = 0; cx < cw; cx++) {
            for (int b = 0; b < bins; b++) tot[b] = 0; /* skimage sums a cell in single precision */
            for (int y = cy * cell; y < (cy + 1) * cell; y++)
                for (int x = cx * cell; x < (cx + 1) * cell; x++) {
                    float gy = y > 0 && y < h - 1 ? img[(y + 1) * w + x] - img[(y - 1) * w + x] : 0.0f;
                    float gx = x > 0 && x < w - 1 ? img[y * w + x + 1] - img[y * w + x - 1] : 0.0f;
                    double ang = fmod(atan2(gy, gx) * (180.0 / M_PI), 180.0);
                    ang = ang != 0 ? (ang < 0 ? ang + 180.0 : ang) : 0.0;
                    int b = (int)(ang / width); /* then skimage's own test: width b <= ang < width (b + 1) */
                    if (b > 0 && ang < width * b) b--;
                    else if (ang >= width * (b + 1)) b++;
                    if (b >= bins) continue; /* 180 itself, after rounding, lies in no bin */
                    tot[b] = (float)((double)tot[b] + hypot(gx, gy));
                }
            double *hc = hist + ((size_t)cy * (size_t)cw + (size_t)cx) * (size_t)bins;
            for (int b = 0; b < bins; b++) hc[b] = tot[b] / (float)(cell * cell);
        }
    sal_free(tot);
    int64_t k = 0;
    const double eps2 = 1e-10; /* (1e-5)^2, skimage's eps: keeps an empty block at zero */
    double *v = sal_malloc((size_t)per * sizeof *v);
    if (!v) {
        sal_free(hist);
        return sal_fail(SAL_ERR_NOMEM, "out of memory for HOG");
    }
    for (int by = 0; by + block <= ch; by++)
        for (int bx = 0; bx + block <= cw; bx++) {
            int64_t m = 0;
            for (int i = 0; i < block; i++)
                for (int j = 0; j < block; j++)
                    for (int t = 0; t < bins; t++)
                        v[m++] = hist[((size_t)(by + i) * (size_t)cw + (size_t)(bx + j)) * (size_t)bins + (size_t)t];
            /* L2-Hys: normalise, clip at 0.2, normalise again */
            for (int pass = 0; pass < 2; pass++) {
                double ss = 0;
                for (int64_t q = 0; q < per; q++) ss += v[q] * v[q];
                double s = sqrt(ss + eps2);
                for (int64_t q = 0; q < per; q++) {
                    v[q] /= s;
                    if (pass == 0 && v[q] > 0.2) v[q] = 0.2;
                }
            }
            for (int64_t q = 0; q < per; q++) feat[k + q] = (float)v[q];
            k += per;
        }
    sal_free(v);
    sal_free(hist);
    return SAL_OK;
}
