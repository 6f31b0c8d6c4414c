/* Numerics that several layers need: a percentile and a Gaussian blur. */
#include "core.h"
#include <math.h>

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double sal_percentile(float *v, int64_t n, double q) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    double pos = q / 100.0 * (double)(n - 1);
    int64_t lo = (int64_t)floor(pos);
    if (lo >= n - 1) return v[n - 1];
    return v[lo] + (pos - (double)lo) * ((double)v[lo + 1] - v[lo]);
}

/* Blurs (outer, len, inner) along the middle axis with kernel k[-r..r] (k points at the centre);
 * out-of-range taps repeat the edge value. */
static void blur_axis(float *dst, const float *src, int64_t outer, int64_t len, int64_t inner, const double *k,
                      int64_t r) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t l = 0; l < len; l++)
            for (int64_t in = 0; in < inner; in++) {
                double s = 0;
                for (int64_t d = -r; d <= r; d++) {
                    int64_t q = l + d < 0 ? 0 : l + d >= len ? len - 1 : l + d;
                    s += k[d] * src[(o * len + q) * inner + in];
                }
                dst[(o * len + l) * inner + in] = (float)s;
            }
}

sal_status sal_gauss_blur(const float *src, float *dst, int64_t planes, int64_t H, int64_t W, double sigma) {
    int64_t n = planes * H * W;
    if (!(sigma > 0)) {
        if (dst != src && n > 0) memmove(dst, src, (size_t)n * sizeof *dst);
        return SAL_OK;
    }
    int64_t r = (int64_t)ceil(3 * sigma);
    double *k = sal_malloc((size_t)(2 * r + 1) * sizeof *k);
    float *tmp = sal_malloc((size_t)(H * W + 1) * sizeof *tmp); /* one plane: dst may be src */
    if (!k || !tmp) {
        sal_free(k);
        sal_free(tmp);
        return sal_fail(SAL_ERR_NOMEM, "out of memory for a Gaussian blur of sigma %g", sigma);
    }
    double sum = 0;
    for (int64_t d = -r; d <= r; d++) sum += k[d + r] = exp(-(double)(d * d) / (2 * sigma * sigma));
    for (int64_t d = 0; d <= 2 * r; d++) k[d] /= sum;
    for (int64_t p = 0; p < planes; p++) {
        blur_axis(tmp, src + p * H * W, H, W, 1, k + r, r);
        if (H > 1) blur_axis(dst + p * H * W, tmp, 1, H, W, k + r, r);
        else memcpy(dst + p * W, tmp, (size_t)W * sizeof *tmp);
    }
    sal_free(k);
    sal_free(tmp);
    return SAL_OK;
}
