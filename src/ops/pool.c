/* MaxPool and AveragePool (1-D to 3-D windows), GlobalAveragePool and GlobalMaxPool (any rank >= 3).
 * Planes (n, c) are independent, so threads split them; backward passes recompute the window
 * arithmetic (and MaxPool's argmax) instead of keeping state between passes. */
#include "window.h"
#include <math.h>

typedef struct {
    sal_win_attr wa;
    bool count_pad; /* AveragePool count_include_pad */
} pool_p;

static sal_status pool_init(sal_node *n, bool avg) {
    pool_p *p = sal_calloc(1, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    n->p = p;
    SAL_TRY(sal_win_parse(n, true, true, &p->wa));
    if (avg) p->count_pad = sal_attr_int(n, "count_include_pad", 0) != 0;
    return SAL_OK;
}

static sal_status maxpool_init(sal_node *n, const sal_model *g) {
    (void)g;
    if (n->nout > 1 && n->out[1] >= 0)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "the Indices output of MaxPool is not supported");
    return pool_init(n, false);
}

static sal_status avgpool_init(sal_node *n, const sal_model *g) {
    (void)g;
    return pool_init(n, true);
}

static sal_status pool_plan(const sal_opctx *c, sal_win *w) {
    const pool_p *p = c->n->p;
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *X = c->in[0];
    if (X->ndim < 3 || X->ndim > 5) {
        char b[160];
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED,
                             "input has shape %s; expected (N, C, L), (N, C, H, W) or (N, C, D, H, W)",
                             sal_shape_str(X->ndim, X->dim, b, sizeof b));
    }
    return sal_win_plan(c->n, &p->wa, X->ndim - 2, X->dim + 2, NULL, w);
}

static sal_status pool_infer(sal_opctx *c) {
    sal_win w;
    SAL_TRY(pool_plan(c, &w));
    sal_tensor *o = c->out[0];
    const sal_tensor *x = c->in[0];
    o->dtype = SAL_F32;
    o->ndim = x->ndim;
    o->dim[0] = x->dim[0];
    o->dim[1] = x->dim[1];
    for (int i = 0; i < w.nsp; i++) o->dim[2 + i] = w.out[3 - w.nsp + i];
    return SAL_OK;
}

/* The window of output o along one dimension: its first input position, its taps [lo, hi) that
 * fall inside the input and (count_include_pad) how many taps fall inside input or explicit padding;
 * positions that only ceil_mode adds never count. Tabulated once per call, so that the plane loops
 * do no divisions. */
typedef struct {
    int64_t start, lo, hi, npad;
} win1;

/* t[j] points at w->out[j] entries of buf. */
static void win_table(const sal_win *w, win1 *buf, const win1 *t[3]) {
    for (int j = 0; j < 3; j++) {
        t[j] = buf;
        for (int64_t o = 0; o < w->out[j]; o++, buf++) {
            int64_t l, h;
            buf->start = o * w->s[j] - w->pb[j];
            sal_win_range(buf->start, w->d[j], w->k[j], w->in[j], &buf->lo, &buf->hi);
            sal_win_range(o * w->s[j], w->d[j], w->k[j], w->in[j] + w->pb[j] + w->pe[j], &l, &h);
            buf->npad = h - l;
        }
    }
}

/* Loops over the taps of window (A, B, E) inside the input, with i the tap's index in the plane. */
#define FOR_TAPS(w, A, B, E, i)                                                                    \
    for (int64_t a_ = (A)->lo; a_ < (A)->hi; a_++)                                                 \
        for (int64_t b_ = (B)->lo, r_ = ((A)->start + a_ * (w)->d[0]) * (w)->in[1]; b_ < (B)->hi; b_++) \
            for (int64_t e_ = (E)->lo, q_ = (r_ + (B)->start + b_ * (w)->d[1]) * (w)->in[2] + (E)->start, \
                         i = q_ + e_ * (w)->d[2];                                                  \
                 e_ < (E)->hi; e_++, i += (w)->d[2])

/* The window (A, B, E)'s first maximum in tap order among its taps inside the plane x (its index
 * there), or -1 when it has none. */
static inline int64_t win_argmax(const sal_win *w, const win1 *A, const win1 *B, const win1 *E, const float *x) {
    int64_t best = -1;
    float m = 0.0f;
    FOR_TAPS(w, A, B, E, i) {
        if (best < 0 || x[i] > m) best = i, m = x[i];
    }
    return best;
}

/* Forward (dx NULL): y = window maxima of the plane x; the first maximum in tap order wins ties.
 * Backward: dx[argmax] += dy. */
static void maxpool_plane(const sal_win *w, const win1 *const t[3], const float *x, float *y, float *dx,
                          const float *dy) {
    int64_t j = 0;
    for (const win1 *A = t[0]; A < t[0] + w->out[0]; A++)
        for (const win1 *B = t[1]; B < t[1] + w->out[1]; B++)
            for (const win1 *E = t[2]; E < t[2] + w->out[2]; E++, j++) {
                int64_t best = win_argmax(w, A, B, E, x);
                if (!dx) y[j] = best >= 0 ? x[best] : -INFINITY; /* the maximum of no element */
                else if (best >= 0) dx[best] += dy[j];
            }
}

/* A 2x2 window's taps v0..v3 in order: the maximum, and (win4) each tap's share of the gradient g:
 * all of it to the first maximum, as maxpool_plane's tie rule, found from the last tap back. Selects
 * only, no branches: the loops over windows vectorize, and data-dependent branches mispredict on
 * masked and noisy inputs. */
static inline float max4(float v0, float v1, float v2, float v3) {
    float m = v1 > v0 ? v1 : v0;
    m = v2 > m ? v2 : m;
    return v3 > m ? v3 : m;
}

/* A window's gradient g to its taps v0..v3 (v0, v1 its top row): all to the first maximum in tap
 * order; with relu, none when that maximum is not positive: the input is max(h, 0) and the gradient
 * goes to h (sal_opctx.relu_in), which the ReLU cut there; that maximum from the same comparisons. */
static inline void win4(float v0, float v1, float v2, float v3, float g, bool relu, float *g0, float *g1, float *g2,
                        float *g3) {
    float m1 = v1 > v0 ? v1 : v0, m2 = v2 > m1 ? v2 : m1;
    g = relu && !((v3 > m2 ? v3 : m2) > 0.0f) ? 0.0f : g;
    *g3 = v3 > m2 ? g : 0.0f;
    g = v3 > m2 ? 0.0f : g;
    *g2 = v2 > m1 ? g : 0.0f;
    g = v2 > m1 ? 0.0f : g;
    *g1 = v1 > v0 ? g : 0.0f;
    *g0 = v1 > v0 ? 0.0f : g;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define POOL_AVX512 1
/* maxpool_2x2's backward on one pair of rows T, B (n = 2 OW values each, windows side by side), 8
 * windows a time in registers of 16 values, where its loop over windows reads the taps at stride 2
 * and runs out of windows (7 or 14 a row in the small CNN) before one vector is full: 2 to 4x. Each
 * window's taps sit in an even lane and the odd one after it, in T and in B; the even lanes run
 * win4's three comparisons (same winner, NaNs included), whose masks then say which lane of dT or
 * dB gets the window's gradient g. (The forward gained nothing: its loop has no stores to spread.) */
__attribute__((target("avx512f"))) static void max2x2_pair_avx512(const float *T, const float *B, int64_t n,
                                                                 float *dT, float *dB, const float *g, bool set,
                                                                 bool relu) {
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __mmask16 kh = n - i >= 16 ? 0xFF : (__mmask16)((1u << ((n - i) / 2)) - 1); /* the windows */
        __m512 t = _mm512_maskz_loadu_ps(k, T + i), b = _mm512_maskz_loadu_ps(k, B + i);
        __m512 t1 = _mm512_permute_ps(t, 0xB1), b1 = _mm512_permute_ps(b, 0xB1); /* odd lanes to even */
        __mmask16 c1 = _mm512_cmp_ps_mask(t1, t, _CMP_GT_OQ);
        __m512 m = _mm512_mask_blend_ps(c1, t, t1);
        __mmask16 c2 = _mm512_cmp_ps_mask(b, m, _CMP_GT_OQ);
        m = _mm512_mask_blend_ps(c2, m, b);
        __mmask16 c3 = _mm512_cmp_ps_mask(b1, m, _CMP_GT_OQ);
        m = _mm512_mask_blend_ps(c3, m, b1);
        unsigned e = 0x5555u & k; /* the windows' lanes, less those the ReLU gate closes */
        if (relu) e &= _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ);
        const unsigned w3 = c3 & e, w2 = c2 & ~c3 & e, w1 = c1 & ~(c2 | c3) & e, w0 = ~(c1 | c2 | c3) & e;
        const __mmask16 wT = (__mmask16)(w0 | w1 << 1), wB = (__mmask16)(w2 | w3 << 1);
        __m512 gv = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(kh, g + i / 2));
        if (set) {
            _mm512_mask_storeu_ps(dT + i, k, _mm512_maskz_mov_ps(wT, gv));
            _mm512_mask_storeu_ps(dB + i, k, _mm512_maskz_mov_ps(wB, gv));
        } else {
            _mm512_mask_storeu_ps(dT + i, wT, _mm512_add_ps(_mm512_maskz_loadu_ps(wT, dT + i), gv));
            _mm512_mask_storeu_ps(dB + i, wB, _mm512_add_ps(_mm512_maskz_loadu_ps(wB, dB + i), gv));
        }
    }
}

/* max2x2_pair_avx512 for AVX2: the same comparisons, 4 windows a time in registers of 8 values, then
 * 2 in registers of 4, then one; lanes are chosen by the comparisons' masks, moved into the odd
 * lanes by the same pair swap (the small CNN's first pooling 11-12 -> 7-9 us a call backward against
 * the loops below, which run in the baseline's SSE lanes; a row's last values copied through buffers
 * on the stack had cost as much as the rest). V: __m256 or __m128, P its intrinsics' prefix, K the
 * blend mask of its odd lanes. */
#define MAX2X2_STEP(V, P, K, T, B, dT, dB, gv, set, relu)                                                          \
    do {                                                                                                       \
        V t = P##_loadu_ps(T), b = P##_loadu_ps(B);                                                            \
        V t1 = P##_permute_ps(t, 0xB1), b1 = P##_permute_ps(b, 0xB1); /* odd lanes to even */                  \
        V c1 = P##_cmp_ps(t1, t, _CMP_GT_OQ), m = P##_blendv_ps(t, t1, c1);                                    \
        V c2 = P##_cmp_ps(b, m, _CMP_GT_OQ);                                                                   \
        m = P##_blendv_ps(m, b, c2);                                                                           \
        V c3 = P##_cmp_ps(b1, m, _CMP_GT_OQ);                                                                  \
        m = P##_blendv_ps(m, b1, c3);                                                                          \
        V e = relu ? P##_cmp_ps(m, P##_setzero_ps(), _CMP_GT_OQ) : P##_cmp_ps(m, m, _CMP_TRUE_UQ);            \
        V c23 = P##_or_ps(c2, c3), w3 = P##_and_ps(c3, e), w2 = P##_andnot_ps(c3, P##_and_ps(c2, e));          \
        V w1 = P##_andnot_ps(c23, P##_and_ps(c1, e)), w0 = P##_andnot_ps(P##_or_ps(c1, c23), e);               \
        V wT = P##_blend_ps(w0, P##_permute_ps(w1, 0xB1), K), wB = P##_blend_ps(w2, P##_permute_ps(w3, 0xB1), K); \
        V vt = P##_and_ps(wT, gv), vb = P##_and_ps(wB, gv);                                                    \
        if (!set) vt = P##_add_ps(vt, P##_loadu_ps(dT)), vb = P##_add_ps(vb, P##_loadu_ps(dB));                \
        P##_storeu_ps(dT, vt);                                                                                 \
        P##_storeu_ps(dB, vb);                                                                                 \
    } while (0)

__attribute__((target("avx2"))) static void max2x2_pair_avx2(const float *T, const float *B, int64_t n, float *dT,
                                                             float *dB, const float *g, bool set, bool relu) {
    const __m256i dup = _mm256_set_epi32(3, 3, 2, 2, 1, 1, 0, 0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(g + i / 2)), dup);
        MAX2X2_STEP(__m256, _mm256, 0xAA, T + i, B + i, dT + i, dB + i, gv, set, relu);
    }
    for (; i + 4 <= n; i += 4) {
        __m128 g2 = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(g + i / 2))); /* two windows' gradients */
        MAX2X2_STEP(__m128, _mm, 0xA, T + i, B + i, dT + i, dB + i, _mm_unpacklo_ps(g2, g2), set, relu);
    }
    if (i < n) { /* a last window */
        float v0, v1, v2, v3;
        win4(T[i], T[i + 1], B[i], B[i + 1], g[i / 2], relu, &v0, &v1, &v2, &v3);
        if (set) dT[i] = v0, dT[i + 1] = v1, dB[i] = v2, dB[i + 1] = v3;
        else dT[i] += v0, dT[i + 1] += v1, dB[i] += v2, dB[i + 1] += v3;
    }
}
#endif

/* The common 2x2, stride 2 max pooling of a plane whose windows all lie inside it (no padding, and
 * floor mode or even sizes), without the general tap loops: about 5x faster, which matters as the
 * steps of integrated gradients and the samples of SmoothGrad run through it in large batches.
 * Same tie rule (the first maximum in tap order) as maxpool_plane. */
static void maxpool_2x2(int64_t OH, int64_t OW, int64_t W, const float *x, float *y, float *dx, const float *dy,
                        bool set, bool relu) {
#ifdef POOL_AVX512
    if (dx && sal_cpu_avx512()) {
        for (int64_t oy = 0; oy < OH; oy++)
            max2x2_pair_avx512(x + 2 * oy * W, x + (2 * oy + 1) * W, 2 * OW, dx + 2 * oy * W, dx + (2 * oy + 1) * W,
                               dy + oy * OW, set, relu);
        return;
    }
    if (dx && sal_cpu_avx2()) {
        for (int64_t oy = 0; oy < OH; oy++)
            max2x2_pair_avx2(x + 2 * oy * W, x + (2 * oy + 1) * W, 2 * OW, dx + 2 * oy * W, dx + (2 * oy + 1) * W,
                             dy + oy * OW, set, relu);
        return;
    }
#endif
    for (int64_t oy = 0; oy < OH; oy++) {
        const float *r0 = x + 2 * oy * W, *r1 = r0 + W;
        if (!dx) {
            float *yr = y + oy * OW;
#pragma omp simd
            for (int64_t ox = 0; ox < OW; ox++) yr[ox] = max4(r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
            continue;
        }
        /* windows do not overlap: each tap gets its share added, or set when they tile dx (set) */
        const float *g = dy + oy * OW;
        float *d0 = dx + 2 * oy * W, *d1 = d0 + W;
        if (set) {
#pragma omp simd
            for (int64_t ox = 0; ox < OW; ox++)
                win4(r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1], g[ox], relu, &d0[2 * ox], &d0[2 * ox + 1],
                     &d1[2 * ox], &d1[2 * ox + 1]);
            continue;
        }
#pragma omp simd
        for (int64_t ox = 0; ox < OW; ox++) {
            float g0, g1, g2, g3;
            win4(r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1], g[ox], relu, &g0, &g1, &g2, &g3);
            d0[2 * ox] += g0;
            d0[2 * ox + 1] += g1;
            d1[2 * ox] += g2;
            d1[2 * ox + 1] += g3;
        }
    }
}

/* maxpool_2x2 on a blocked X (sal_blk_fits): nb blocks of L channels (the block width), each an
 * H x W plane of pixels holding their L values together. Y is blocked too when oblk, else plain;
 * dX is blocked like X. The same comparisons and tie rule, L channels a time. A plain Y or dY goes
 * through t in runs of the block's output pixels, turned around in sal_blk_pixels' register
 * tiles: the small CNN's second pooling has 7 pixels a row, too few for runs of one row. Compiled
 * for AVX-512 and AVX2 too, a block's channels then one vector: the baseline's took 1.3 to 1.5x as
 * long there (the plain maxpool_2x2 measured no faster so). */
static inline __attribute__((always_inline)) void blks(int64_t b0, int64_t b1, int64_t H, int64_t W, int64_t OH,
                                                       int64_t OW, const float *X, float *Y, bool oblk, float *dX,
                                                       const float *dY, bool fresh, bool relu, const int L) {
    const int64_t P = OH * OW; /* a block's output pixels: a channel's plane in a plain Y */
    const bool set = fresh && 2 * OH == H && 2 * OW == W; /* the windows tile dX: written whole */
    for (int64_t b = b0; b < b1; b++) {
        const float *x = X + b * H * W * L;
        float *dx = dX ? dX + b * H * W * L : NULL;
        if (fresh && !set) memset(dx, 0, sizeof *dx * (size_t)(H * W * L));
        float t[64 * 16];
        for (int64_t p0 = 0; p0 < P; p0 += 64) {
            const int64_t n = P - p0 < 64 ? P - p0 : 64, pl = b * L * P + p0; /* pl: in a plain Y */
            if (!oblk && dx) sal_blk_pixels(t, dY + pl, n, P, SAL_BLK_FROM_PLAIN);
            int64_t oy = p0 / OW, ox = p0 % OW;
            for (int64_t q = 0; q < n; q++, ox = ox + 1 < OW ? ox + 1 : 0, oy += ox == 0) { /* pixel p0 + q */
                int64_t i0 = (2 * oy * W + 2 * ox) * L, i1 = i0 + L, i2 = i0 + W * L, i3 = i2 + L;
                int64_t o = (b * P + p0 + q) * L;
                if (!dx) {
                    float *y = oblk ? Y + o : t + q * L;
#pragma omp simd
                    for (int l = 0; l < L; l++) y[l] = max4(x[i0 + l], x[i1 + l], x[i2 + l], x[i3 + l]);
                    continue;
                }
                const float *g = oblk ? dY + o : t + q * L;
                if (set) {
#pragma omp simd
                    for (int l = 0; l < L; l++)
                        win4(x[i0 + l], x[i1 + l], x[i2 + l], x[i3 + l], g[l], relu, &dx[i0 + l], &dx[i1 + l],
                             &dx[i2 + l], &dx[i3 + l]);
                    continue;
                }
#pragma omp simd
                for (int l = 0; l < L; l++) {
                    float g0, g1, g2, g3;
                    win4(x[i0 + l], x[i1 + l], x[i2 + l], x[i3 + l], g[l], relu, &g0, &g1, &g2, &g3);
                    dx[i0 + l] += g0;
                    dx[i1 + l] += g1;
                    dx[i2 + l] += g2;
                    dx[i3 + l] += g3;
                }
            }
            if (!oblk && !dx) sal_blk_pixels(Y + pl, t, n, P, SAL_BLK_TO_PLAIN);
        }
    }
}

SAL_CLONES void maxpool_2x2_blks(int64_t b0, int64_t b1, int64_t H, int64_t W, int64_t OH, int64_t OW, const float *X,
                                 float *Y, bool oblk, float *dX, const float *dY, bool fresh, bool relu) {
    if (sal_blk_width() == 16)
        blks(b0, b1, H, W, OH, OW, X, Y, oblk, dX, dY, fresh, relu, 16);
    else
        blks(b0, b1, H, W, OH, OW, X, Y, oblk, dX, dY, fresh, relu, 8);
}

/* Both threads from 8192 inputs forward: the small CNN's second pooling (64 x 14 x 14) read the
 * blocked convolution's output, which both threads wrote, in 5.3 us on one thread and 3.4 on two;
 * its backward stays on one below 65536 (guided backprop 4% slower on two). */
static void maxpool_2x2_blk(int64_t nb, int64_t H, int64_t W, int64_t OH, int64_t OW, const float *X, float *Y,
                            bool oblk, float *dX, const float *dY, bool fresh, bool relu) {
    SAL_PAR_SPLIT(nb * H * W * sal_blk_width() > (dX ? 65536 : 8192), nb, b0, b1,
                  maxpool_2x2_blks(b0, b1, H, W, OH, OW, X, Y, oblk, dX, dY, fresh, relu));
}

/* Forward of any 2-D max pooling without dilation (ResNet's 3x3, stride 2, padding 1) in two
 * vectorized passes per output row: the maximum over the window's input rows into a row padded
 * with -inf, then the maximum over each window's columns of it. tmp holds `len` floats (see
 * maxpool_rows_len); a window over padding alone gives -inf, as maxpool_plane does. The backward
 * keeps maxpool_plane's argmax loop: a vectorized first-maximum pass over the taps, with its
 * strided masked adds, measured 1.6x slower on ResNet-50. (2x2 / stride 2 keeps maxpool_2x2,
 * 4x faster than this on the small CNN.) */
static void maxpool_rows(const sal_win *w, const win1 *const t[3], const float *x, float *y, float *tmp,
                         int64_t len) {
    const int64_t W = w->in[2], OW = w->out[2], k = w->k[2], s = w->s[2], c0 = t[2][0].start;
    const int64_t lo = c0 > 0 ? c0 : 0, hi = c0 + len < W ? c0 + len : W; /* input columns used */
    for (const win1 *B = t[1]; B < t[1] + w->out[1]; B++, y += OW) {
        if (B->lo >= B->hi) {
            for (int64_t ox = 0; ox < OW; ox++) y[ox] = -INFINITY;
            continue;
        }
        for (int64_t j = 0; j < len; j++) tmp[j] = -INFINITY;
        const float *r = x + (B->start + B->lo) * W;
        float *tc = tmp - c0;
#pragma omp simd
        for (int64_t c = lo; c < hi; c++) tc[c] = r[c];
        for (int64_t b = B->lo + 1; b < B->hi; b++) {
            r = x + (B->start + b) * W;
#pragma omp simd
            for (int64_t c = lo; c < hi; c++) tc[c] = r[c] > tc[c] ? r[c] : tc[c];
        }
#pragma omp simd
        for (int64_t ox = 0; ox < OW; ox++) y[ox] = tmp[ox * s];
        for (int64_t e = 1; e < k; e++)
#pragma omp simd
            for (int64_t ox = 0; ox < OW; ox++) y[ox] = tmp[ox * s + e] > y[ox] ? tmp[ox * s + e] : y[ox];
    }
}

/* The padded row maxpool_rows needs, or 0 where it does not apply (dilation, 1-D and 3-D windows,
 * rows too wide for the stack). */
static int64_t maxpool_rows_len(const sal_win *w) {
    if (w->nsp != 2 || w->d[1] != 1 || w->d[2] != 1 || w->out[2] < 1) return 0;
    int64_t len = (w->out[2] - 1) * w->s[2] + w->k[2];
    return len <= 4096 ? len : 0;
}

/* ---- the backward of 3x3 windows at stride 2 over padding 1 (ResNet's stem pooling) ----
 * maxpool_plane's loop, a data-dependent branch per tap, took 2.7 ms of ResNet-50's 62 ms gradient.
 * Here the plane's even and odd columns are split apart first, so that window ox's taps in a row,
 * columns 2ox - 1, 2ox and 2ox + 1, are O[ox - 1], E[ox] and O[ox]: contiguous in ox. The windows
 * inside the input find their argmax with selects, in maxpool_plane's tap order and tie rule (the
 * first maximum), and each tap's gradient goes into the split gradient rows in a loop of its own
 * (one tap of two windows never meets the same input); the border windows' gradients go straight
 * into dx after, each to its win_argmax. */
static bool win_3s2(const sal_win *w) {
    return w->nsp == 2 && w->k[1] == 3 && w->k[2] == 3 && w->s[1] == 2 && w->s[2] == 2 && w->d[1] == 1 &&
           w->d[2] == 1 && w->pb[1] == 1 && w->pb[2] == 1;
}

/* Floats of maxpool_3s2_bwd's buffer: the split input and gradient planes, and a row of taps. */
static int64_t bwd_3s2_len(const sal_win *w) { return 4 * w->in[1] * (w->in[2] / 2 + 1) + w->out[2]; }

/* dx (set when fresh, else added to) from dy over the plane x; with relu (fresh), 0 where x is not
 * positive (see win4). buf: bwd_3s2_len floats. */
SAL_CLONES void maxpool_3s2_bwd(const sal_win *w, const win1 *const t[3], const float *x, float *dx, const float *dy,
                                bool fresh, bool relu, float *buf) {
    const int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], P = W / 2 + 1, W2 = W / 2;
    float *xe = buf, *xo = xe + H * P, *de = xo + H * P, *dd = de + H * P, *tap = dd + H * P;
    for (int64_t r = 0; r < H; r++) {
        const float *xr = x + r * W;
        float *e = xe + r * P, *o = xo + r * P;
#pragma omp simd
        for (int64_t c = 0; c < W2; c++) e[c] = xr[2 * c], o[c] = xr[2 * c + 1]; /* the inner windows' columns */
    }
    memset(de, 0, sizeof *de * (size_t)(2 * H * P));
    /* windows inside the input: rows 2oy - 1 to 2oy + 1 for oy in [1, oy1), columns alike */
    const int64_t oy1 = OH < H / 2 ? OH : H / 2, ox1 = OW < W2 ? OW : W2;
    for (int64_t oy = 1; oy < oy1; oy++) {
        const float *g = dy + oy * OW;
        const int64_t r0 = 2 * oy - 1;
        const float *e0 = xe + r0 * P, *o0 = xo + r0 * P, *e1 = e0 + P, *o1 = o0 + P, *e2 = e1 + P, *o2 = o1 + P;
#pragma omp simd
        for (int64_t ox = 1; ox < ox1; ox++) {
            float m = o0[ox - 1], k = 0.0f;
#define TAP(v, i)                 \
    {                             \
        float v_ = (v);           \
        bool u_ = v_ > m;         \
        k = u_ ? (float)(i) : k;  \
        m = u_ ? v_ : m;          \
    }
            TAP(e0[ox], 1) TAP(o0[ox], 2) TAP(o1[ox - 1], 3) TAP(e1[ox], 4) TAP(o1[ox], 5) TAP(o2[ox - 1], 6)
            TAP(e2[ox], 7) TAP(o2[ox], 8)
#undef TAP
            tap[ox] = k;
        }
        for (int i = 0; i < 9; i++) { /* tap i of window ox: column 2ox - 1 + i % 3 of row r0 + i / 3 */
            float *d = (i % 3 == 1 ? de : dd) + (r0 + i / 3) * P - (i % 3 == 0);
            const float ti = (float)i;
#pragma omp simd
            for (int64_t ox = 1; ox < ox1; ox++) d[ox] += tap[ox] == ti ? g[ox] : 0.0f;
        }
    }
    for (int64_t r = 0; r < H; r++) {
        float *d = dx + r * W;
        const float *e = de + r * P, *o = dd + r * P, *xr = x + r * W;
        if (relu) { /* in the same pass: sal_relu_mask's own took 0.4 ms on ResNet-50 */
#pragma omp simd
            for (int64_t c = 0; c < W2; c++) {
                float v0 = e[c], v1 = o[c];
                d[2 * c] = xr[2 * c] > 0.0f ? v0 : 0.0f, d[2 * c + 1] = xr[2 * c + 1] > 0.0f ? v1 : 0.0f;
            }
            if (W % 2) d[W - 1] = xr[W - 1] > 0.0f ? e[W2] : 0.0f;
        } else if (fresh) {
#pragma omp simd
            for (int64_t c = 0; c < W2; c++) d[2 * c] = e[c], d[2 * c + 1] = o[c];
            if (W % 2) d[W - 1] = e[W2];
        } else {
#pragma omp simd
            for (int64_t c = 0; c < W2; c++) d[2 * c] += e[c], d[2 * c + 1] += o[c];
            if (W % 2) d[W - 1] += e[W2];
        }
    }
    for (int64_t oy = 0; oy < OH; oy++) /* the border windows */
        for (int64_t ox = 0; ox < OW; ox++) {
            if (oy >= 1 && oy < oy1 && ox >= 1 && ox < ox1) continue;
            int64_t i = win_argmax(w, t[0], t[1] + oy, t[2] + ox, x);
            if (i >= 0 && (!relu || x[i] > 0.0f)) dx[i] += dy[oy * OW + ox];
        }
}

/* Forward (dx NULL): y = window means of the plane x. Backward: dx += dy / divisor over each window. */
static void avgpool_plane(const sal_win *w, const win1 *const t[3], bool count_pad, const float *x, float *y, float *dx,
                          const float *dy) {
    int64_t j = 0;
    for (const win1 *A = t[0]; A < t[0] + w->out[0]; A++)
        for (const win1 *B = t[1]; B < t[1] + w->out[1]; B++)
            for (const win1 *E = t[2]; E < t[2] + w->out[2]; E++, j++) {
                int64_t cnt = count_pad ? A->npad * B->npad * E->npad
                                        : (A->hi - A->lo) * (B->hi - B->lo) * (E->hi - E->lo);
                if (cnt == 0) continue; /* empty window: output 0, no gradient */
                if (!dx) {
                    float sum = 0.0f;
                    FOR_TAPS(w, A, B, E, i) sum += x[i];
                    y[j] = sum / (float)cnt;
                } else {
                    float g = dy[j] / (float)cnt;
                    FOR_TAPS(w, A, B, E, i) dx[i] += g;
                }
            }
}

/* Runs a plane function over every (n, c) plane; backward when dx is set. A Relu's guided or
 * deconvnet rule (sal_opctx.relu_rule) under 2x2 / 2 windows, which do not overlap, clamps dY at 0
 * first: each input then takes one window's value or none, so that is the rule's clamp of the
 * gradient, in a pass over a quarter of the values (the Relu's rule took a zeroed buffer and a pass
 * over the inputs, theirs and the gradient); other windows clamp dX after. */
static sal_status pool_run(sal_opctx *c, bool avg, bool backward) {
    sal_win w;
    SAL_TRY(pool_plan(c, &w));
    if (backward && !c->din[0]) return SAL_OK;
    /* a fresh gradient buffer (sal_op.bwd_writes) is zeroed plane by plane below, while in cache */
    const bool fresh = backward && (c->din_fresh & 1);
    if (backward && !c->dout[0]) {
        if (fresh) memset(c->din[0]->data, 0, sizeof(float) * (size_t)sal_tensor_numel(c->din[0]));
        return SAL_OK;
    }
    const pool_p *p = c->n->p;
    const float *X = sal_in_f(c, 0), *dY = backward ? sal_f32(c->dout[0]) : NULL;
    float *Y = backward ? NULL : sal_out_f(c, 0), *dX = backward ? sal_f32(c->din[0]) : NULL;
    const int64_t planes = c->in[0]->dim[0] * c->in[0]->dim[1];
    /* fresh by sal_opctx.relu_in, which gates the gradient by the ReLU unless deconvnet's rule */
    const unsigned char rr = backward && !avg && c->relu_in ? c->relu_rule : SAL_RELU_GRADIENT;
    const bool relu = backward && !avg && c->relu_in && rr != SAL_RELU_DECONV;
    const bool fast = !avg && sal_win_2x2(&w); /* 2x2 / 2, as the blocked path's windows */
    if (rr && fast) { /* max(0, dY) in scratch slot 3 */
        float *t = sal_scratch_get(c->ws, 3, sizeof(float) * (size_t)sal_tensor_numel(c->dout[0]));
        if (!t) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
        sal_relu(t, dY, sal_tensor_numel(c->dout[0]));
        dY = t;
    }
    if (c->blk_in & 1) { /* maxpool_blk_takes: 2x2/2 */
        bool oblk = backward ? c->blk_out & 1 : c->blk_want & 1;
        maxpool_2x2_blk(planes / sal_blk_width(), w.in[1], w.in[2], w.out[1], w.out[2], X, Y, oblk, dX, dY, fresh,
                        relu);
        if (!backward) c->blk_out = oblk;
        return SAL_OK;
    }
    if (backward && (c->blk_out & 1)) { /* X made plain since (a wanted gradient), dY still blocked */
        float *t = sal_scratch_get(c->ws, 1, sizeof(float) * (size_t)sal_tensor_numel(c->dout[0]));
        if (!t) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
        sal_blk_to_plain(t, dY, c->dout[0]->dim);
        dY = t;
    }
    win1 *buf = sal_scratch_get(c->ws, 0, sizeof *buf * (size_t)(w.out[0] + w.out[1] + w.out[2]));
    if (!buf) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
    const win1 *t[3];
    win_table(&w, buf, t);
    const int64_t rows = !avg && !backward && !fast ? maxpool_rows_len(&w) : 0;
    /* a buffer a thread for the split planes of maxpool_3s2_bwd */
    const int64_t s2len = !avg && backward && win_3s2(&w) ? bwd_3s2_len(&w) : 0;
    float *s2buf = s2len ? sal_scratch_get(c->ws, 2, sizeof(float) * (size_t)(s2len * omp_get_max_threads())) : NULL;
    if (s2len && !s2buf) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
    /* 2x2 windows that tile the plane write a fresh gradient whole: no zeros first */
    const bool set = fresh && fast && 2 * w.out[1] == w.in[1] && 2 * w.out[2] == w.in[2];
    /* both threads from 8192 window elements: the small CNN's first pooling at batch 1 (32 planes of
     * 28 x 28, 25088) 21.9 -> 16.0, 35.3 -> 20.8, 26.6 -> 22.3, 10.2 -> 7.4 ms over 1000 gradients
     * backward (`bench_compare --profile`, alternating, a slow phase of the VM), 3.0 -> 2.5 forward
     * (Zen 4: a thread read the other core's half of the convolution's output) */
    SAL_PAR_FOR(planes * w.out_sz * w.k_sz > 8192, "omp parallel for schedule(static)",
                for (int64_t pl = 0; pl < planes; pl++) {
                    const float *x = X + pl * w.in_sz;
                    float *y = Y ? Y + pl * w.out_sz : NULL, *dx = dX ? dX + pl * w.in_sz : NULL;
                    const float *dy = dY ? dY + pl * w.out_sz : NULL;
                    if (fresh && !set && !s2len) memset(dx, 0, sizeof *dx * (size_t)w.in_sz);
                    if (avg) {
                        avgpool_plane(&w, t, p->count_pad, x, y, dx, dy);
                    } else if (fast) {
                        maxpool_2x2(w.out[1], w.out[2], w.in[2], x, y, dx, dy, set, relu);
                    } else if (s2len) {
                        maxpool_3s2_bwd(&w, t, x, dx, dy, fresh, relu, s2buf + omp_get_thread_num() * s2len);
                    } else if (rows) {
                        float tmp[rows];
                        maxpool_rows(&w, t, x, y, tmp, rows);
                    } else {
                        maxpool_plane(&w, t, x, y, dx, dy);
                    }
                });
    if (relu && !fast && !s2len) sal_relu_mask(dX, dX, X, sal_tensor_numel(c->in[0])); /* a pass of its own */
    if (rr && !fast) sal_relu(dX, dX, sal_tensor_numel(c->in[0]));
    return SAL_OK;
}

static sal_status maxpool_forward(sal_opctx *c) { return pool_run(c, false, false); }
/* 2x2 / stride 2 windows read a blocked X in place (VGG's and the small CNN's pools sit between
 * convolutions); any other window has it converted first. */
static bool maxpool_blk_takes(sal_opctx *c) {
    sal_win w;
    return (c->n->nout == 1 || !c->out[1]) && sal_blk_fits(c->in[0]) && pool_plan(c, &w) == SAL_OK && sal_win_2x2(&w);
}
static sal_status maxpool_backward(sal_opctx *c) { return pool_run(c, false, true); }
static sal_status avgpool_forward(sal_opctx *c) { return pool_run(c, true, false); }
static sal_status avgpool_backward(sal_opctx *c) { return pool_run(c, true, true); }

const sal_op sal_op_MaxPool = {
    SAL_OP_HEAD(MaxPool), .traits = SAL_TR_MAXPOOL, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 2,
    .init = maxpool_init, .infer = pool_infer, .forward = maxpool_forward, .backward = maxpool_backward,
    .overwrites = true, .bwd_writes = 0x1, .blk = SAL_BLK_OWN, .blk_takes = maxpool_blk_takes, .bwd_relu_in = true,
    .bwd_relu_rules = true,
};

const sal_op sal_op_AveragePool = {
    SAL_OP_HEAD(AveragePool), .traits = SAL_TR_AVGPOOL | SAL_TR_ADDITIVE, .lin_in = 0x1, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .init = avgpool_init, .infer = pool_infer, .forward = avgpool_forward, .backward = avgpool_backward,
    .bwd_writes = 0x1,
};

/* ---- global pooling: (N, C, ...) -> (N, C, 1, ...) ---- */

static sal_status global_infer(sal_opctx *c) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0];
    if (x->ndim < 3) {
        char b[160];
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "input has shape %s; expected rank 3 or more (N, C, ...)",
                             sal_shape_str(x->ndim, x->dim, b, sizeof b));
    }
    sal_same_shape(c, 0, 0);
    for (int i = 2; i < x->ndim; i++) c->out[0]->dim[i] = 1;
    return SAL_OK;
}

/* Plane size S and count of planes N*C. */
static void global_dims(const sal_opctx *c, int64_t *planes, int64_t *S) {
    const sal_tensor *x = c->in[0];
    *planes = x->dim[0] * x->dim[1];
    *S = 1;
    for (int i = 2; i < x->ndim; i++) *S *= x->dim[i];
}

/* A blocked X (sal_blk_fits): planes of L channels (the block width), each pixel's L values together. */
static void gavg_fwd_blks(int64_t b0, int64_t b1, int64_t S, const float *X, float *Y, int L) {
    float inv = 1.0f / (float)S;
    for (int64_t b = b0; b < b1; b++) {
        float acc[16] = {0}; /* L <= 16 */
        const float *p = X + b * L * S;
        for (int64_t i = 0; i < S; i++)
#pragma omp simd
            for (int l = 0; l < L; l++) acc[l] += p[i * L + l];
        for (int l = 0; l < L; l++) Y[b * L + l] = acc[l] * inv;
    }
}

static void gavg_forward_blk(const sal_opctx *c, int64_t S) {
    const sal_tensor *x = c->in[0];
    const int L = sal_blk_width();
    int64_t nb = x->dim[0] * (x->dim[1] / L);
    const float *X = sal_in_f(c, 0);
    float *Y = sal_out_f(c, 0);
    SAL_PAR_SPLIT(nb * S * L > 65536, nb, b0, b1, gavg_fwd_blks(b0, b1, S, X, Y, L));
}

static void gavg_bwd_blks(int64_t b0, int64_t b1, int64_t S, const float *dY, float *dX, int L) {
    for (int64_t b = b0; b < b1; b++) {
        float g[16], *p = dX + b * L * S; /* L <= 16 */
        for (int l = 0; l < L; l++) g[l] = dY[b * L + l] / (float)S;
        for (int64_t i = 0; i < S; i++)
#pragma omp simd
            for (int l = 0; l < L; l++) p[i * L + l] += g[l];
    }
}

static void gavg_backward_blk(const sal_opctx *c, int64_t S) {
    const sal_tensor *x = c->in[0];
    const int L = sal_blk_width();
    int64_t nb = x->dim[0] * (x->dim[1] / L);
    SAL_PAR_SPLIT(nb * S * L > 65536, nb, b0, b1,
                  gavg_bwd_blks(b0, b1, S, sal_f32(c->dout[0]), sal_f32(c->din[0]), L));
}

static bool gavg_blk_takes(sal_opctx *c) { return sal_blk_fits(c->in[0]); }

/* The mean of a plane, summed in vector lanes: one chain of scalar adds (4 cycles an element) took
 * most of MobileNetV3-L's squeeze-and-excitation poolings */
SAL_CLONES float plane_mean(const float *x, int64_t S) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < S; i++) s += x[i];
    return S ? s / (float)S : 0.0f;
}

static sal_status gavg_forward(sal_opctx *c) {
    int64_t planes, S;
    global_dims(c, &planes, &S);
    if (c->blk_in & 1) {
        gavg_forward_blk(c, S);
        return SAL_OK;
    }
    const float *X = sal_in_f(c, 0);
    float *Y = sal_out_f(c, 0);
    SAL_PAR_FOR(planes * S > 65536, "omp parallel for schedule(static)",
                for (int64_t pl = 0; pl < planes; pl++) Y[pl] = plane_mean(X + pl * S, S););
    return SAL_OK;
}

static sal_status gavg_backward(sal_opctx *c) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    int64_t planes, S;
    global_dims(c, &planes, &S);
    if (c->blk_in & 1) {
        gavg_backward_blk(c, S);
        return SAL_OK;
    }
    const float *dY = sal_f32(c->dout[0]);
    float *dX = sal_f32(c->din[0]);
    SAL_PAR_FOR(
        planes * S > 65536, "omp parallel for schedule(static)", for (int64_t pl = 0; pl < planes; pl++) {
            float g = S ? dY[pl] / (float)S : 0.0f, *dx = dX + pl * S;
            for (int64_t i = 0; i < S; i++) dx[i] += g;
        });
    return SAL_OK;
}

/* Index of the first maximum of x[0..S), or -1 when S is 0. */
static int64_t first_argmax(const float *x, int64_t S) {
    int64_t best = S ? 0 : -1;
    for (int64_t i = 1; i < S; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static sal_status gmax_forward(sal_opctx *c) {
    int64_t planes, S;
    global_dims(c, &planes, &S);
    const float *X = sal_in_f(c, 0);
    float *Y = sal_out_f(c, 0);
    SAL_PAR_FOR(
        planes * S > 65536, "omp parallel for schedule(static)", for (int64_t pl = 0; pl < planes; pl++) {
            int64_t i = first_argmax(X + pl * S, S);
            Y[pl] = i >= 0 ? X[pl * S + i] : -INFINITY;
        });
    return SAL_OK;
}

static sal_status gmax_backward(sal_opctx *c) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    int64_t planes, S;
    global_dims(c, &planes, &S);
    const float *X = sal_in_f(c, 0), *dY = sal_f32(c->dout[0]);
    float *dX = sal_f32(c->din[0]);
    SAL_PAR_FOR(
        planes * S > 65536, "omp parallel for schedule(static)", for (int64_t pl = 0; pl < planes; pl++) {
            int64_t i = first_argmax(X + pl * S, S);
            if (i >= 0) dX[pl * S + i] += dY[pl];
        });
    return SAL_OK;
}

const sal_op sal_op_GlobalAveragePool = {
    SAL_OP_HEAD(GlobalAveragePool), .traits = SAL_TR_AVGPOOL | SAL_TR_ADDITIVE, .lin_in = 0x1, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = global_infer, .forward = gavg_forward, .backward = gavg_backward,
    .blk = SAL_BLK_OWN, .blk_takes = gavg_blk_takes, .bwd_known = true,
};

const sal_op sal_op_GlobalMaxPool = {
    SAL_OP_HEAD(GlobalMaxPool), .traits = SAL_TR_MAXPOOL, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = global_infer, .forward = gmax_forward, .backward = gmax_backward,
};
