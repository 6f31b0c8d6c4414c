/* The blocked activation layout of oneDNN's convolution kernels (nChw16c) and conversions to and
 * from plain (N, C, H, W). A session keeps activations blocked between convolutions (exec.c), so
 * these run only where a value crosses to an op that reads plain tensors. */
#include "ops.h"

bool sal_blk_fits(const sal_tensor *t) {
    return t->dtype == SAL_F32 && t->ndim == 4 && t->dim[1] > 0 && t->dim[1] % 16 == 0 && sal_tensor_numel(t) > 0;
}

/* One (n, channel block) plane of S pixels: plain rows of 16 channels against 16-float pixels. */
static void plane(float *dst, const float *src, int64_t S, bool to_plain) {
    for (int64_t s = 0; s < S; s++)
        for (int l = 0; l < 16; l++) {
            if (to_plain) dst[l * S + s] = src[s * 16 + l];
            else dst[s * 16 + l] = src[l * S + s];
        }
}

static void convert(float *dst, const float *src, const int64_t *dim, bool to_plain) {
    int64_t planes = dim[0] * (dim[1] / 16), S = dim[2] * dim[3];
#pragma omp parallel for schedule(static) if (planes * S > 16384)
    for (int64_t p = 0; p < planes; p++) plane(dst + p * 16 * S, src + p * 16 * S, S, to_plain);
}

void sal_blk_to_plain(float *dst, const float *src, const int64_t *dim) { convert(dst, src, dim, true); }
void sal_blk_from_plain(float *dst, const float *src, const int64_t *dim) { convert(dst, src, dim, false); }
