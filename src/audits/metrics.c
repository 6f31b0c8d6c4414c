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

sal_status sal_hog(const float *img, int h, int w, const sal_hog_opts *o, float *feat, int64_t *n) {
    *n = 0;
    int cell = o && o->cell > 0 ? o->cell : 0, block = o && o->block > 0 ? o->block : 2,
        bins = o && o->bins > 0 ? o->bins : 9;
    if (!cell) {
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
    if (!hist) return sal_fail(SAL_ERR_NOMEM, "out of memory for HOG");
    const double width = 180.0 / bins;
    for (int y = 0; y < ch * cell; y++)
        for (int x = 0; x < cw * cell; x++) {
            int xl = x > 0 ? x - 1 : 0, xr = x + 1 < w ? x + 1 : w - 1;
            int yu = y > 0 ? y - 1 : 0, yd = y + 1 < h ? y + 1 : h - 1;
            double gx = (double)img[y * w + xr] - img[y * w + xl], gy = (double)img[yd * w + x] - img[yu * w + x];
            double mag = sqrt(gx * gx + gy * gy);
            if (mag == 0) continue;
            double ang = atan2(gy, gx) * 180.0 / M_PI; /* (-180, 180]; unsigned: fold into [0, 180) */
            if (ang < 0) ang += 180;
            if (ang >= 180) ang -= 180;
            /* bin b is centred at (b + 0.5) * width; split between the two nearest centres (wrapping) */
            double pos = ang / width - 0.5;
            int b0 = (int)floor(pos);
            double f = pos - b0;
            int lo = (b0 + bins) % bins, hi = (b0 + 1) % bins;
            double *hc = hist + ((size_t)(y / cell) * (size_t)cw + (size_t)(x / cell)) * (size_t)bins;
            hc[lo] += mag * (1 - f);
            hc[hi] += mag * f;
        }
    int64_t k = 0;
    const double eps2 = 1e-10; /* (1e-5)^2: keeps an empty block at zero instead of 0/0 */
    for (int by = 0; by + block <= ch; by++)
        for (int bx = 0; bx + block <= cw; bx++) {
            float *v = feat + k;
            int64_t m = 0;
            for (int i = 0; i < block; i++)
                for (int j = 0; j < block; j++)
                    for (int t = 0; t < bins; t++)
                        v[m++] = (float)hist[((size_t)(by + i) * (size_t)cw + (size_t)(bx + j)) * (size_t)bins + (size_t)t];
            /* L2-Hys: normalise, clip at 0.2, normalise again */
            for (int pass = 0; pass < 2; pass++) {
                double ss = 0;
                for (int64_t q = 0; q < per; q++) ss += (double)v[q] * v[q];
                double s = 1 / sqrt(ss + eps2);
                for (int64_t q = 0; q < per; q++) {
                    v[q] = (float)(v[q] * s);
                    if (pass == 0 && v[q] > 0.2f) v[q] = 0.2f;
                }
            }
            k += per;
        }
    sal_free(hist);
    return SAL_OK;
}
