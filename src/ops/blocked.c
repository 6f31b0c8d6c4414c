/* The blocked activation layout of oneDNN's convolution kernels (nChw16c with AVX-512, nChw8c
 * with AVX2 and below: a block is a vector register's floats) and its conversion to plain (N, C, H,
 * W). A session keeps activations blocked between convolutions (exec.c), so this runs only where a
 * value crosses to a reader of plain tensors. */
#include "conv_dnnl.h"
#include "ops.h"

static int g_width; /* 0: not yet chosen; then oneDNN's, or a test's (atomics: sessions run in threads) */

int sal_blk_width(void) {
    int w = __atomic_load_n(&g_width, __ATOMIC_RELAXED);
    if (!w) __atomic_store_n(&g_width, w = sal_conv_dnnl_blk_width(), __ATOMIC_RELAXED);
    return w;
}

void sal_blk_set_width(int w) { __atomic_store_n(&g_width, w, __ATOMIC_RELAXED); }

bool sal_blk_fits(const sal_tensor *t) {
    return t->dtype == SAL_F32 && t->ndim == 4 && t->dim[1] > 0 && t->dim[1] % sal_blk_width() == 0 &&
           sal_tensor_numel(t) > 0;
}

#ifdef __SSE__
#include <xmmintrin.h>
#endif

/* One plane of W channels (the block width) and S pixels, a plain channel's pixels S apart (S >= n;
 * n == S but for sal_blk_pixels' runs): pixels [0, s1) in 4 x 4 tiles transposed in registers (0.9 us
 * for the small CNN's 12 544 values where a loop the compiler vectorizes takes 4 to 5: its gathers or
 * scatters), the rest element by element. */
static inline __attribute__((always_inline)) void plane(float *restrict d, const float *restrict b, int64_t n,
                                                        int64_t S, sal_blk_how how, const int W) {
    int64_t s1 = 0;
#ifdef __SSE__
#define LD(p) _mm_loadu_ps(p)
    for (s1 = 0; s1 + 4 <= n; s1 += 4) /* written out: -O2 keeps loops over the four rows as loops */
        for (int l = 0; l < W; l += 4) {
            if (how == SAL_BLK_FROM_PLAIN) {
                const float *i = b + l * S + s1;
                __m128 r0 = LD(i), r1 = LD(i + S), r2 = LD(i + 2 * S), r3 = LD(i + 3 * S);
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                float *o = d + s1 * W + l;
                _mm_storeu_ps(o, r0), _mm_storeu_ps(o + W, r1);
                _mm_storeu_ps(o + 2 * W, r2), _mm_storeu_ps(o + 3 * W, r3);
                continue;
            }
            const float *i = b + s1 * W + l;
            __m128 r0 = LD(i), r1 = LD(i + W), r2 = LD(i + 2 * W), r3 = LD(i + 3 * W);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            float *o = d + l * S + s1;
            if (how == SAL_BLK_ADD_TO_PLAIN) {
                r0 = _mm_add_ps(r0, LD(o)), r1 = _mm_add_ps(r1, LD(o + S));
                r2 = _mm_add_ps(r2, LD(o + 2 * S)), r3 = _mm_add_ps(r3, LD(o + 3 * S));
            }
            _mm_storeu_ps(o, r0), _mm_storeu_ps(o + S, r1), _mm_storeu_ps(o + 2 * S, r2), _mm_storeu_ps(o + 3 * S, r3);
        }
#undef LD
#endif
    for (int64_t s = s1; s < n; s++)
        for (int l = 0; l < W; l++) switch (how) {
            case SAL_BLK_TO_PLAIN: d[l * S + s] = b[s * W + l]; break;
            case SAL_BLK_ADD_TO_PLAIN: d[l * S + s] += b[s * W + l]; break;
            case SAL_BLK_FROM_PLAIN: d[s * W + l] = b[l * S + s]; break;
            }
}

/* each case a loop of its own, how and the width being constant in it */
#define PLANE(W)                                                                                                     \
    switch (how) {                                                                                                   \
    case SAL_BLK_TO_PLAIN: plane(dst, src, n, S, SAL_BLK_TO_PLAIN, W); break;                                        \
    case SAL_BLK_ADD_TO_PLAIN: plane(dst, src, n, S, SAL_BLK_ADD_TO_PLAIN, W); break;                                \
    case SAL_BLK_FROM_PLAIN: plane(dst, src, n, S, SAL_BLK_FROM_PLAIN, W); break;                                    \
    }

void sal_blk_pixels(float *restrict dst, const float *restrict src, int64_t n, int64_t S, sal_blk_how how) {
    if (sal_blk_width() == 16) {
        PLANE(16)
    } else {
        PLANE(8)
    }
}

void sal_blk_convert(float *restrict dst, const float *restrict src, const int64_t *dim, sal_blk_how how) {
    const int64_t W = sal_blk_width(), np = dim[0] * (dim[1] / W), S = dim[2] * dim[3];
    SAL_PAR_SPLIT(np * S > 65536, np, p0, p1,
                  for (int64_t p = p0; p < p1; p++) sal_blk_pixels(dst + p * W * S, src + p * W * S, S, S, how));
}

void sal_blk_to_plain(float *dst, const float *src, const int64_t *dim) {
    sal_blk_convert(dst, src, dim, SAL_BLK_TO_PLAIN);
}
