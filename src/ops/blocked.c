/* The blocked activation layout of oneDNN's convolution kernels (nChw16c) and its conversion to
 * plain (N, C, H, W). A session keeps activations blocked between convolutions (exec.c), so this
 * runs only where a value crosses to a reader of plain tensors. */
#include "ops.h"

bool sal_blk_fits(const sal_tensor *t) {
    return t->dtype == SAL_F32 && t->ndim == 4 && t->dim[1] > 0 && t->dim[1] % 16 == 0 && sal_tensor_numel(t) > 0;
}

void sal_blk_to_plain(float *dst, const float *src, const int64_t *dim) {
    int64_t planes = dim[0] * (dim[1] / 16), S = dim[2] * dim[3];
    /* plane p: 16 channels of S pixels, each pixel's 16 values together in src */
#pragma omp parallel for schedule(static) if (planes * S > 16384)
    for (int64_t p = 0; p < planes; p++)
        for (int64_t s = 0; s < S; s++)
            for (int l = 0; l < 16; l++) dst[(p * 16 + l) * S + s] = src[(p * S + s) * 16 + l];
}
