/* Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions (Lavin and Gray, 2016) in blocked layouts.
 *
 * oneDNN's f32 Winograd kernels need AVX-512; on an AVX2 machine it runs 3x3 layers as direct
 * convolutions at about the sgemm rate, as PyTorch does. Here each m x m block of outputs of a
 * channel takes (m + 2)^2 products of its input tile's transform with the kernel's transform instead
 * of 9 m^2 (16 for 36 with m = 2, 36 for 144 with m = 4): per tile t, Y_t = A^T [sum_c (G g_c G^T) .
 * (B^T d_{t,c} B)] A. Over a chunk of tiles the elementwise products summed over channels are
 * (m + 2)^2 matrix products,
 *     M[xi] (tiles, Co) = V[xi] (tiles, Ci) U[xi] (Ci, Co),
 * which sgemm runs at its rate; the transforms are additions and a few multiplications by small
 * integers. The blocked layout (channels innermost in blocks of 8 or 16) gives each transform
 * contiguous vectors of 8 channels in and out. Which m a layer takes: sal_conv_wino_tile_for (a
 * forward before max pooling keeps m = 2, whose flat regions keep their ties; conv_wino.h).
 *
 * The input gradient of such a layer is the same convolution of dY with the kernels turned by 180
 * degrees and their channels swapped (padding 2 - 1 = 1), so one routine serves both ways.
 *
 * Threads take whole chunks when there are enough of them; otherwise all threads share each chunk
 * (transforms split by tiles, products by xi), as the deep layers at batch 1 have a chunk or two. */
#include "conv_wino.h"
#include <omp.h>
#include <stdlib.h>

static int g_mode = -1; /* SAL_WINO_*; -1 until the environment is read */
static int g_tile = -1; /* 0 (by the layer and its use), 2 or 4; -1 until the environment is read */
static long g_calls, g_calls4;

int sal_conv_wino_mode(int mode) {
    int old = __atomic_load_n(&g_mode, __ATOMIC_RELAXED);
    if (old < 0) {
        const char *e = getenv("SAL_WINO");
        old = e && !strcmp(e, "0") ? SAL_WINO_OFF : e && !strcmp(e, "all") ? SAL_WINO_ALL : SAL_WINO_AUTO;
    }
    __atomic_store_n(&g_mode, mode >= 0 ? mode : old, __ATOMIC_RELAXED);
    return old;
}

int sal_conv_wino_tile(int tile) {
    int old = __atomic_load_n(&g_tile, __ATOMIC_RELAXED);
    if (old < 0) {
        const char *e = getenv("SAL_WINO_TILE");
        old = e && !strcmp(e, "2") ? 2 : e && !strcmp(e, "4") ? 4 : 0;
    }
    __atomic_store_n(&g_tile, tile == 0 || tile == 2 || tile == 4 ? tile : old, __ATOMIC_RELAXED);
    return old;
}

int sal_conv_wino_tile_for(const sal_conv_shape *k, bool ties) {
    int t = sal_conv_wino_tile(-1);
    if (t == 2 || (t == 0 && ties)) return 2;
    /* F(4x4) has 2.25 products a pixel against 4, but 36 matrices U against 16 to read, each once per
     * product: wide layers on few tiles became bound by them (512 -> 512 at 14 x 14, 16 tiles of 4 x 4:
     * 3.8 ms against F(2x2)'s 2.6; at 28 x 28, 49 tiles, 5.9 against 9.9; 256 -> 256 at 14 x 14, 16
     * tiles: 0.60 against 0.69; the small CNN's 32 -> 64 at 14 x 14: 22 against 27 us) */
    int64_t tiles = k->N * ((k->out[1] + 3) / 4) * ((k->out[2] + 3) / 4);
    return tiles < 32 && k->C * k->M > 65536 ? 2 : 4;
}

long sal_conv_wino_calls(void) { return __atomic_load_n(&g_calls, __ATOMIC_RELAXED); }

long sal_conv_wino_calls4(void) { return __atomic_load_n(&g_calls4, __ATOMIC_RELAXED); }

bool sal_conv_wino_fits(const sal_conv_shape *k) {
    const int L = sal_blk_width();
    return k->nsp == 2 && k->G == 1 && k->N > 0 && k->C % L == 0 && k->M % L == 0 && k->C > 0 && k->M > 0 &&
           k->k[1] == 3 && k->k[2] == 3 && k->s[1] == 1 && k->s[2] == 1 && k->d[1] == 1 && k->d[2] == 1 &&
           k->pb[1] == 1 && k->pb[2] == 1 && k->pe[1] == 1 && k->pe[2] == 1 && k->out[1] == k->in[1] &&
           k->out[2] == k->in[2];
}

/* Whether small_gemm runs a layer's products: U's 16 matrices within 256 KiB (for larger ones it ran
 * as fast as sgemm or slower: 512 -> 512 channels at 14 x 14 3.5 ms against sgemm's 2.6) */
static bool small_layer(int64_t C, int64_t M) { return C * M <= 4096; }

bool sal_conv_wino_pays(const sal_conv_shape *k, int m, bool ties, int width, bool halves) {
    if (!(width == 8 || (width == 16 && halves)) || !sal_conv_wino_fits(k) || !sal_conv_dnnl_wanted(k))
        return false;
    /* from 32 tiles, and 1M multiply-adds in the products where small_gemm runs them (C M <= 4096;
     * the small CNN's 32 -> 64 layer at 14 x 14, 49 tiles and 1.6M, 27 us against 45 by oneDNN's
     * direct kernels), else 16M (the same layer with its products by sgemm took 43 us) */
    int64_t tiles = k->N * ((k->out[1] + 1) / 2) * ((k->out[2] + 1) / 2), macs = 16 * tiles * k->C * k->M;
    if (k->C < 32 || k->M < 32 || tiles < 32 || macs < (small_layer(k->C, k->M) ? 1 << 20 : 1 << 24)) return false;
    if (width == 8) return true;
    /* Zen 4, against oneDNN's AVX-512 kernels (its Winograd F(4x4) forward from 32 tiles, direct
     * kernels otherwise), ms over three VGG16 gradients: F(4x4) won or tied but for 64 -> 64 channels
     * at 224 x 224 (backward 28 against 24.5; 512 -> 512 at 28 x 28 20 against 27, 256 -> 256 at 28
     * x 28 10 against 14); F(2x2), a forward before max pooling, lost on large planes (224 x 224 45
     * against 24, 28 x 28 32.6 against 27) and won at 49 tiles (512 -> 512 at 14 x 14 8.2 against
     * 13.4; the small CNN's 32 -> 64 layer 26 to 29 us against 35). A forward that keeps ties
     * (sal_conv_ties) has only oneDNN's direct kernels beside F(2x2), slower on every VGG16 layer
     * (three forwards: 224 x 224 49 against 41 ms, 112 x 112 50 against 32, 56 x 56 50 against 30,
     * 28 x 28 49 against 34) */
    if (m == 2) return ties || tiles < 128;
    int64_t tiles4 = k->N * ((k->out[1] + 3) / 4) * ((k->out[2] + 3) / 4);
    return m == 4 && !(small_layer(k->C, k->M) && tiles4 > 2048);
}

/* Substituted weights' transforms kept up to this size (weights()), as oneDNN keeps their layouts */
#define KEEP_MAX (1u << 20)

bool sal_conv_wino_wanted(const sal_opctx *c, const sal_conv_shape *k, bool bwd) {
    int mode = sal_conv_wino_mode(-1);
    if (mode == SAL_WINO_OFF || !sal_conv_wino_fits(k)) return false;
    if (mode == SAL_WINO_ALL) return true;
    int ties = bwd ? 0 : sal_conv_ties(c);
    if (ties < 0) return false; /* out of memory: oneDNN's direct kernels keep the ties */
    int m = sal_conv_wino_tile_for(k, ties);
    /* a weight whose transforms are not kept (weights()) would be transformed at every call, which
     * took longer than oneDNN's whole product (LRP's z+ on VGG16's 256 -> 512 layer at 28 x 28: 57 ->
     * 137 ms over three) */
    if (!sal_wcache_source(c, sal_in_f(c, 1), sizeof(float) * (size_t)((m + 2) * (m + 2) * k->M * k->C), KEEP_MAX))
        return false;
    return sal_conv_wino_pays(k, m, ties, sal_blk_width(), sal_cpu_avx512_halves());
}

/* ---- the transforms ---- */

/* One vector of 8 channels (core.h's sal_v8); a block of 16 is two. */
typedef sal_v8 v8;
typedef sal_v8i v8i;
#define LD SAL_LD8
#define ST SAL_ST8
enum { V8 = 8 };

#define C8(c) ((v8){c, c, c, c, c, c, c, c})
#define SAL_OPAQUE(p) __asm__("" : "+r"(p)) /* p's value unknown to the optimizer from here on */

/* F(2x2, 3x3): 1-D input transform B^T d of four vectors d[0], d[ds], ...: d0 - d2, d1 + d2,
 * d2 - d1, d1 - d3 into o[0], o[os], ... */
#define BT4(o, os, d, ds)                                                                                              \
    do {                                                                                                               \
        v8 d0_ = (d)[0], d1_ = (d)[ds], d2_ = (d)[2 * (ds)], d3_ = (d)[3 * (ds)];                                      \
        (o)[0] = d0_ - d2_, (o)[os] = d1_ + d2_, (o)[2 * (os)] = d2_ - d1_, (o)[3 * (os)] = d1_ - d3_;                 \
    } while (0)

/* F(4x4, 3x3) at the points 0, 3/4, -3/4, 3/2, -3/2 and infinity: Lavin and Gray's 0, 1, -1, 2, -2
 * scaled by 3/4: the same products, as many operations in B^T d (three more in A^T m), but a third
 * of the float32 error (the largest over a layer's outputs against float64, 32 to 256 channels, in
 * bench/wino_points.py's model of the layer: 0.7e-6 to 1.0e-6 of the outputs' scale against 2.3e-6 to
 * 3.4e-6 at Lavin and Gray's, 0.3e-6 to 0.6e-6 for a direct convolution; the scale 3/4 near the
 * best of 1/2 to 1, where 1/2 and 1 do alike; 0, 1, -1, 1/2, -2 gave 1.1e-6). Over ResNet-50's 3x3
 * layers Lavin and Gray's took FCN-ResNet50's output 1.7e-4 of its scale from float64, where
 * PyTorch's float32 is 6e-5 off. B^T d of six vectors, whose rows are
 * 81/64 0 -45/16 0 1 0, 0 -27/16 -9/4 3/4 1 0, 0 27/16 -9/4 -3/4 1 0, 0 -27/32 -9/16 3/2 1 0,
 * 0 27/32 -9/16 -3/2 1 0 and 0 81/64 0 -45/16 0 1, in shared sums */
#define BT6(o, os, d, ds)                                                                                              \
    do {                                                                                                               \
        v8 d0_ = (d)[0], d1_ = (d)[ds], d2_ = (d)[2 * (ds)], d3_ = (d)[3 * (ds)], d4_ = (d)[4 * (ds)],               \
           d5_ = (d)[5 * (ds)];                                                                                        \
        v8 e_ = d4_ - C8(2.25f) * d2_, f_ = C8(1.6875f) * d1_ - C8(0.75f) * d3_;                                       \
        v8 h_ = d4_ - C8(0.5625f) * d2_, k_ = C8(0.84375f) * d1_ - C8(1.5f) * d3_;                                     \
        (o)[0] = d4_ + C8(1.265625f) * d0_ - C8(2.8125f) * d2_;                                                        \
        (o)[os] = e_ - f_, (o)[2 * (os)] = e_ + f_, (o)[3 * (os)] = h_ - k_, (o)[4 * (os)] = h_ + k_;                  \
        (o)[5 * (os)] = d5_ + C8(1.265625f) * d1_ - C8(2.8125f) * d3_;                                                 \
    } while (0)

/* F(4x4, 3x3)'s A^T m of six vectors to four: rows 1 1 1 1 1 0, 0 3/4 -3/4 3/2 -3/2 0,
 * 0 9/16 9/16 9/4 9/4 0 and 0 27/64 -27/64 27/8 -27/8 1 */
#define AT6(o, os, m, ms)                                                                                              \
    do {                                                                                                               \
        v8 m1_ = (m)[ms], m2_ = (m)[2 * (ms)], m3_ = (m)[3 * (ms)], m4_ = (m)[4 * (ms)];                               \
        v8 s12_ = m1_ + m2_, d12_ = m1_ - m2_, s34_ = m3_ + m4_, d34_ = m3_ - m4_;                                     \
        (o)[0] = (m)[0] + s12_ + s34_, (o)[os] = C8(0.75f) * d12_ + C8(1.5f) * d34_;                                   \
        (o)[2 * (os)] = C8(0.5625f) * s12_ + C8(2.25f) * s34_;                                                         \
        (o)[3 * (os)] = C8(0.421875f) * d12_ + C8(3.375f) * d34_ + (m)[5 * (ms)];                                      \
    } while (0)

/* One block of 8 channels of a tile: its A x A pixels x + off[i] (A = m + 2; ANDed with zm[i], zero
 * outside the image, where pad) transformed into o, o + vs, ..., o + (A^2 - 1) vs. Unrolled whole so
 * that the vectors live in registers (or the compiler's own spills): as loops over arrays GCC kept
 * them on the stack, and F(2x2)'s transforms took as long as a third of the products (the small
 * CNN's 32 -> 64 layer at 14 x 14). */
static inline __attribute__((always_inline)) void in_blk(const int m, const float *x, const int64_t *off,
                                                         const v8i *zm, const bool pad, float *o, int64_t vs) {
    /* the addresses from x and o afresh in each call: else GCC made each of the 36 loads and stores
     * an induction variable of the caller's loops, kept on the stack and added to in every step */
    SAL_OPAQUE(x);
    SAL_OPAQUE(o);
#define SAL_D(i) (pad ? (v8)((v8i)LD(x + off[i]) & zm[i]) : LD(x + off[i]))
    if (m == 4) { /* 36 vectors: through a buffer in two passes, a column then a row at a time */
        v8 u[36];
#pragma GCC unroll 6
        for (int q = 0; q < 6; q++) {
            v8 d[6];
#pragma GCC unroll 6
            for (int r = 0; r < 6; r++) d[r] = SAL_D(6 * r + q);
            BT6(u + q, 6, d, 1);
        }
#pragma GCC unroll 6
        for (int r = 0; r < 6; r++) {
            v8 v[6];
            BT6(v, 1, u + 6 * r, 1);
#pragma GCC unroll 6
            for (int q = 0; q < 6; q++, o += vs) ST(o, v[q]);
        }
        return;
    }
    v8 d[16], u[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) d[i] = SAL_D(i);
#undef SAL_D
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) BT4(u + q, 4, d + q, 4); /* down the columns */
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) { /* along the rows, each row stored as it is done */
        v8 v[4];
        BT4(v, 1, u + 4 * r, 1);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) ST(o + (4 * r + q) * vs, v[q]);
    }
}

/* Tiles [t0, t1) of the chunk starting at tile tc into V (A^2 matrices of (tiles, Ci), vs floats
 * apart, rows t - tc): each tile's A x A input pixels (zero outside the image) transformed. A pixel
 * outside is read at an offset inside and masked to zero, so no load depends on a branch. */
static inline __attribute__((always_inline)) void in_tiles_m(const int m, const float *X, float *V, int64_t vs,
                                                             int64_t tc, int64_t t0, int64_t t1, int64_t Ci, int64_t H,
                                                             int64_t W, int64_t L) {
    const int A = m + 2;
    const int64_t TW = (W + m - 1) / m, TH = (H + m - 1) / m, CB = Ci / L;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / (TH * TW), ti = t / TW % TH, tj = t % TW, h0 = m * ti - 1, w0 = m * tj - 1;
        int64_t off[36]; /* each pixel's offset in a channel block, clamped into the image */
        v8i zm[36];      /* where pad: all ones inside the image, zero outside */
        const bool pad = h0 < 0 || w0 < 0 || h0 + A > H || w0 + A > W;
        for (int r = 0; r < A; r++)
            for (int q = 0; q < A; q++) {
                int64_t h = h0 + r, w = w0 + q;
                if (pad) zm[A * r + q] = (v8i){0} - (int)(h >= 0 && h < H && w >= 0 && w < W);
                h = h < 0 ? 0 : h >= H ? H - 1 : h, w = w < 0 ? 0 : w >= W ? W - 1 : w;
                off[A * r + q] = (h * W + w) * L;
            }
        const float *x = X + n * CB * H * W * L;
        float *o = V + (t - tc) * Ci;
        for (int64_t cb = 0; cb < CB; cb++, x += H * W * L)
            for (int64_t l0 = 0; l0 < L; l0 += V8) {
                if (pad) in_blk(m, x + l0, off, zm, true, o + cb * L + l0, vs);
                else in_blk(m, x + l0, off, zm, false, o + cb * L + l0, vs);
            }
    }
}

SAL_CLONES void in_tiles(int m, const float *X, float *V, int64_t vs, int64_t tc, int64_t t0, int64_t t1, int64_t Ci,
                         int64_t H, int64_t W, int64_t L) {
    if (m == 4) in_tiles_m(4, X, V, vs, tc, t0, t1, Ci, H, W, L);
    else in_tiles_m(2, X, V, vs, tc, t0, t1, Ci, H, W, L);
}

/* One block of 8 channels of a tile from M (mm, mm + ms, ..., mm + (A^2 - 1) ms) into its nr x nq
 * outputs at y (rows WL floats apart, pixels L): A^T m A plus the bias's 8 values at B (none when
 * NULL), added to y where add, then the ReLU (NaN kept, as Relu's). Unrolled whole, as in_blk. */
static inline __attribute__((always_inline)) void out_blk(const int m, const float *mm, int64_t ms, float *y,
                                                          int64_t WL, int64_t L, const float *B, bool relu,
                                                          bool add, const int nr, const int nq) {
    const v8 b = B ? LD(B) : (v8){0};
    enum { AMAX = 6, MMAX = 4 };
    const int A = m + 2;
    v8 a[MMAX * AMAX], z[MMAX * MMAX]; /* a: A^T m, m rows of A; z: (A^T m) A, m x m */
    SAL_OPAQUE(mm); /* as in in_blk */
    SAL_OPAQUE(y);
#pragma GCC unroll 6
    for (int q = 0; q < A; q++) {
        v8 c[AMAX];
        const float *p = mm + q * ms;
#pragma GCC unroll 6
        for (int r = 0; r < A; r++, p += A * ms) c[r] = LD(p);
        if (m == 2) a[q] = c[0] + c[1] + c[2], a[A + q] = c[1] - c[2] - c[3];
        else AT6(a + q, A, c, 1);
    }
#pragma GCC unroll 4
    for (int r = 0; r < m; r++) {
        const v8 *ar = a + A * r;
        if (m == 2) z[2 * r] = ar[0] + ar[1] + ar[2], z[2 * r + 1] = ar[1] - ar[2] - ar[3];
        else AT6(z + 4 * r, 1, ar, 1);
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
        for (int q = 0; q < nq; q++) {
            float *o = y + r * WL + q * L;
            v8 val = z[m * r + q] + b;
            if (add) val += LD(o);
            if (relu) val = (v8)((v8i)val & ~(val < (v8){0}));
            ST(o, val);
        }
}

/* Tiles [t0, t1) of the chunk at tc from M (A^2 matrices of (tiles, Co), ms floats apart) into Y:
 * m x m outputs a tile (those inside the image), plus the bias, set or added, then the ReLU. */
static inline __attribute__((always_inline)) void out_tiles_m(const int m, const float *M, int64_t ms, float *Y,
                                                              int64_t tc, int64_t t0, int64_t t1, int64_t Co,
                                                              int64_t H, int64_t W, int64_t L, const float *B,
                                                              bool relu, bool add) {
    const int64_t TW = (W + m - 1) / m, TH = (H + m - 1) / m, KB = Co / L;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / (TH * TW), ti = t / TW % TH, tj = t % TW;
        int nr = m * ti + m <= H ? m : (int)(H - m * ti), nq = m * tj + m <= W ? m : (int)(W - m * tj);
        for (int64_t kb = 0; kb < KB; kb++)
            for (int64_t l0 = 0; l0 < L; l0 += V8) {
                const float *mm = M + (t - tc) * Co + kb * L + l0;
                const float *b = B ? B + kb * L + l0 : NULL;
                float *y = Y + ((n * KB + kb) * H * W + m * ti * W + m * tj) * L + l0;
                if (nr == m && nq == m) out_blk(m, mm, ms, y, W * L, L, b, relu, add, m, m);
                else out_blk(m, mm, ms, y, W * L, L, b, relu, add, nr, nq);
            }
    }
}

SAL_CLONES void out_tiles(int m, const float *M, int64_t ms, float *Y, int64_t tc, int64_t t0, int64_t t1, int64_t Co,
                          int64_t H, int64_t W, int64_t L, const float *B, bool relu, bool add) {
    if (m == 4) out_tiles_m(4, M, ms, Y, tc, t0, t1, Co, H, W, L, B, relu, add);
    else out_tiles_m(2, M, ms, Y, tc, t0, t1, Co, H, W, L, B, relu, add);
}

/* G of F(2x2, 3x3) and of F(4x4, 3x3), A x 3 */
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double G4[6][3] = {{64.0 / 81, 0, 0},
                                {-128.0 / 243, -32.0 / 81, -8.0 / 27},
                                {-128.0 / 243, 32.0 / 81, -8.0 / 27},
                                {32.0 / 243, 16.0 / 81, 8.0 / 27},
                                {32.0 / 243, -16.0 / 81, 8.0 / 27},
                                {0, 0, 1}};

/* Row r of U's A^2 matrices (input channel r forward, output channel r backward): its kernels'
 * transforms G g G^T, in double and rounded once, each matrix's row written in one run (512 -> 512
 * channels: 16 -> 7 ms forward, 8.7 -> 6.5 backward, where each kernel's values went to places
 * apart). */
SAL_CLONES void wrow(int m, float *U, const float *W, int64_t M, int64_t C, int64_t r, bool bwd) {
    const int A = m + 2;
    const double(*G)[3] = m == 4 ? G4 : G2;
    const int64_t MC = M * C, Q = bwd ? C : M, ws = bwd ? 9 : C * 9; /* the next kernel of the row */
    const float *w0 = W + (bwd ? r * C * 9 : r * 9);
    float *u0 = U + r * Q;
    for (int64_t q = 0; q < Q; q++) {
        const float *w = w0 + q * ws;
        double g[9], a[6][3];
        for (int k = 0; k < 9; k++) g[k] = bwd ? w[8 - k] : w[k]; /* backward: turned by 180 degrees */
        for (int i = 0; i < A; i++) /* G g */
            for (int s = 0; s < 3; s++) a[i][s] = G[i][0] * g[s] + G[i][1] * g[3 + s] + G[i][2] * g[6 + s];
        for (int i = 0; i < A; i++) /* (G g) G^T */
            for (int k = 0; k < A; k++)
                u0[(A * i + k) * MC + q] = (float)(a[i][0] * G[k][0] + a[i][1] * G[k][1] + a[i][2] * G[k][2]);
    }
}

void sal_wino_weights(float *U, const float *W, int64_t M, int64_t C, int m, bool bwd) {
    const int64_t R = bwd ? M : C;
    SAL_PAR_FOR(M * C > 4096, "omp parallel for schedule(static)",
                for (int64_t r = 0; r < R; r++) wrow(m, U, W, M, C, r, bwd););
}

/* ---- the products of the small layers ---- */

/* R rows of M (n, Co) = V (n, K) U (K, Co) at columns [0, 16), or [0, 8) unless two: the sums in
 * registers, each row's value of V broadcast against U's row of 16. */
static inline __attribute__((always_inline)) void mk(const int R, const bool two, const float *V, int64_t K,
                                                     const float *U, int64_t Co, float *M) {
    v8 a[6], b[6];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) a[r] = b[r] = (v8){0};
    for (int64_t k = 0; k < K; k++) {
        v8 u0 = LD(U + k * Co), u1 = two ? LD(U + k * Co + V8) : u0;
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const float x = V[r * K + k];
            const v8 v = {x, x, x, x, x, x, x, x};
            a[r] += v * u0;
            if (two) b[r] += v * u1;
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        ST(M + r * Co, a[r]);
        if (two) ST(M + r * Co + V8, b[r]);
    }
}

/* M (n, Co) = V (n, K) U (K, Co), Co a multiple of 8, for layers whose 16 U fit in L2: U is read in
 * place, with no packing and no pass that zeroes M (sgemm's copies and its beta pass took as long as
 * its products for the small CNN's 32 -> 64 layer at 49 tiles). Six rows by 16 columns a step: 12
 * sums, two rows of U and a broadcast in AVX2's 16 registers. */
SAL_CLONES void small_gemm(const float *V, const float *U, float *M, int64_t n, int64_t K, int64_t Co) {
    /* the rows in ceil(n / 6) groups as even as they go (25 as five of 5, not four of 6 and one): a
     * lone row runs at the FMA's latency, not its throughput, and took two thirds of a group's time */
    const int64_t G = (n + 5) / 6, base = n / G, extra = n % G;
    for (int64_t j = 0; j < Co; j += 16) {
        const bool two = j + 16 <= Co;
        for (int64_t g = 0, i = 0; g < G; g++) {
            const int64_t r = base + (g < extra);
            const float *v = V + i * K;
            float *m = M + i * Co + j;
            i += r;
#define SAL_MK(r) (two ? mk(r, true, v, K, U + j, Co, m) : mk(r, false, v, K, U + j, Co, m))
            switch (r) {
            case 6: SAL_MK(6); break;
            case 5: SAL_MK(5); break;
            case 4: SAL_MK(4); break;
            case 3: SAL_MK(3); break;
            case 2: SAL_MK(2); break;
            default: SAL_MK(1); break;
            }
#undef SAL_MK
        }
    }
}

/* ---- the convolution ---- */

typedef struct {
    int64_t N, Ci, Co, H, W, L, T, tb; /* T tiles, tb of them a chunk */
    int m, nx;                         /* F(m x m, 3 x 3): nx = (m + 2)^2 matrices */
    int64_t vs, ms;                    /* floats from one of V's (M's) matrices to the next */
    const float *X, *U, *B;
    float *Y;
    bool relu, add, small; /* small: the products by small_gemm */
} wino_job;

/* Chunk [tc, tc + nt) on buffers V, M: its tiles' transforms, the nx products, the outputs. Alone:
 * the calling thread does it all; else every thread of the team calls it and shares the work. */
static void chunk(const wino_job *j, int64_t tc, int64_t nt, float *V, float *M, bool alone) {
    const int64_t vs = j->vs, ms = j->ms;
    if (alone) {
        in_tiles(j->m, j->X, V, vs, tc, tc, tc + nt, j->Ci, j->H, j->W, j->L);
        for (int xi = 0; xi < j->nx; xi++)
            if (j->small) small_gemm(V + xi * vs, j->U + xi * j->Ci * j->Co, M + xi * ms, nt, j->Ci, j->Co);
            else sal_sgemm(false, false, (int)nt, (int)j->Co, (int)j->Ci, 1.0f, V + xi * vs, (int)j->Ci,
                      j->U + xi * j->Ci * j->Co, (int)j->Co, 0.0f, M + xi * ms, (int)j->Co);
        out_tiles(j->m, M, ms, j->Y, tc, tc, tc + nt, j->Co, j->H, j->W, j->L, j->B, j->relu, j->add);
        return;
    }
    int64_t th = omp_get_thread_num(), nth = omp_get_num_threads(), t0 = tc + nt * th / nth,
            t1 = tc + nt * (th + 1) / nth;
    in_tiles(j->m, j->X, V, vs, tc, t0, t1, j->Ci, j->H, j->W, j->L);
#pragma omp barrier
    for (int xi = (int)(j->nx * th / nth); xi < j->nx * (th + 1) / nth; xi++)
        sal_sgemm(false, false, (int)nt, (int)j->Co, (int)j->Ci, 1.0f, V + xi * vs, (int)j->Ci,
                  j->U + xi * j->Ci * j->Co, (int)j->Co, 0.0f, M + xi * ms, (int)j->Co);
#pragma omp barrier
    out_tiles(j->m, M, ms, j->Y, tc, t0, t1, j->Co, j->H, j->W, j->L, j->B, j->relu, j->add);
#pragma omp barrier /* the next chunk overwrites V and M */
}

sal_status sal_wino_conv(sal_scratch *ws, int m, int64_t N, int64_t Ci, int64_t Co, int64_t H, int64_t W,
                         const float *X, const float *U, const float *B, bool relu, bool add, float *Y) {
    wino_job j = {.N = N, .Ci = Ci, .Co = Co, .H = H, .W = W, .L = sal_blk_width(), .m = m, .nx = (m + 2) * (m + 2),
                  .X = X, .U = U, .B = B, .Y = Y, .relu = relu, .add = add};
    j.T = N * ((H + m - 1) / m) * ((W + m - 1) / m);
    /* 64 tiles a chunk (more for fewer than 64 channels in and out): each product has rows enough
     * for sgemm's packing of U[xi] to pay, and a chunk's V and M stay near the 512 KiB of a core's L2
     * for narrow layers (64 -> 64 channels at 224 x 224 ran alike at 64 and 128 tiles a chunk, 14.8
     * to 17.8 ms as the best of 15 calls on a noisy VM) */
    j.tb = (1 << 17) / (j.nx * (Ci + Co));
    j.tb = j.tb < 64 ? 64 : j.tb > 256 ? 256 : j.tb;
    int nth = omp_get_max_threads();
    /* small_gemm's layers: each thread takes its own tiles and reads U in place, with no barrier and
     * no sgemm call (the small CNN's 32 -> 64 layer at 14 x 14: 43 -> 27 us) */
    j.small = small_layer(Ci, Co);
    if (j.small && nth > 1 && j.tb * nth > j.T) j.tb = (j.T + nth - 1) / nth;
    int64_t nch = (j.T + j.tb - 1) / j.tb;
    bool own = nth > 1 && (j.small ? nch >= nth : nch >= 4 * nth); /* threads take whole chunks */
    if (!own && nch > 1) { /* shared chunks: as few and as even as the size allows */
        j.tb = (j.T + nch - 1) / nch;
        nch = (j.T + j.tb - 1) / j.tb;
    }
    if (j.T <= j.tb) j.tb = j.T;
    /* the matrices' strides a multiple of 4 KiB (and of the L1's way) would put the transforms'
     * loads or stores of a tile in one set of L1: one line more apart */
    j.vs = j.tb * Ci + 16, j.ms = j.tb * Co + 16;
    size_t per = (size_t)(j.nx * (j.vs + j.ms));
    float *buf = sal_scratch_get(ws, 0, sizeof(float) * per * (size_t)(own ? nth : 1));
    if (!buf) return SAL_ERR_NOMEM;
    __atomic_add_fetch(&g_calls, 1, __ATOMIC_RELAXED);
    if (m == 4) __atomic_add_fetch(&g_calls4, 1, __ATOMIC_RELAXED);
    if (own) {
#pragma omp parallel for schedule(dynamic)
        for (int64_t ch = 0; ch < nch; ch++) {
            float *V = buf + per * (size_t)omp_get_thread_num();
            int64_t tc = ch * j.tb;
            chunk(&j, tc, tc + j.tb <= j.T ? j.tb : j.T - tc, V, V + j.nx * j.vs, true);
        }
        return SAL_OK;
    }
    bool par = nth > 1 && j.nx * j.T * Ci * Co >= (1 << 20);
    if (!par) {
        for (int64_t tc = 0; tc < j.T; tc += j.tb)
            chunk(&j, tc, tc + j.tb <= j.T ? j.tb : j.T - tc, buf, buf + j.nx * j.vs, true);
        return SAL_OK;
    }
#pragma omp parallel
    for (int64_t tc = 0; tc < j.T; tc += j.tb)
        chunk(&j, tc, tc + j.tb <= j.T ? j.tb : j.T - tc, buf, buf + j.nx * j.vs, false);
    return SAL_OK;
}

/* ---- a node's transformed weights ---- */

/* Kept as oneDNN's layouts are (sal_wcache): the own weight both ways, a substituted one both ways
 * (LRP's z+ forward takes F(4x4), no ties to keep; a session alternating outputs-only forwards and
 * gradients keeps both tiles of the own weight forward) */
enum { NWENT = 4 };
typedef struct {
    sal_wcache e[NWENT];
    uint64_t tick;
} wstate;

static void wstate_free(void *p) {
    wstate *s = p;
    if (!s) return;
    for (int i = 0; i < NWENT; i++) sal_free(s->e[i].buf);
    sal_free(s);
}

/* The node's state, made at its first call; NULL with a message set when out of memory. */
static wstate *state(const sal_opctx *c) {
    void **slot = sal_conv_dnnl_aux(c, wstate_free);
    if (!slot) return NULL;
    if (!*slot) {
        wstate *s = sal_calloc(1, sizeof(wstate));
        if (!s) {
            sal_fail(SAL_ERR_NOMEM, "out of memory");
            return NULL;
        }
        *slot = s;
    }
    return *slot;
}

/* The forward's tile: F(2x2) where the output reaches max pooling (through ReLUs), so that flat
 * regions keep their ties bit for bit (sal_conv_wino_tile); the input gradient is linear in dY and
 * takes no decision, so it runs by the layer alone. 0 when out of memory. */
static int fwd_tile(const sal_opctx *c, const sal_conv_shape *k) {
    int ties = sal_conv_ties(c);
    return ties < 0 ? 0 : sal_conv_wino_tile_for(k, ties);
}

/* U for W in direction bwd and tile m: from the node's cache (substituted weights kept up to KEEP_MAX, as
 * oneDNN's), or transformed into scratch slot 1 where it is not kept. NULL with a message set when
 * out of memory. */
static const float *weights(const sal_opctx *c, const sal_conv_shape *k, const float *W, bool bwd, int m) {
    size_t need = sizeof(float) * (size_t)((m + 2) * (m + 2) * k->M * k->C);
    wstate *s = state(c);
    if (!s) return NULL;
    bool hit, nomem; /* the tile in the form: an outputs-only forward takes F(4x4) where a gradient's F(2x2) */
    sal_wcache *e = sal_wcache_get(s->e, NWENT, &s->tick, c, W, (unsigned)bwd | (m == 4) << 1, need, KEEP_MAX,
                                   &hit, &nomem);
    if (nomem) return NULL;
    float *U = e ? e->buf : sal_scratch_get(c->ws, 1, need);
    if (U && !hit) sal_wino_weights(U, W, k->M, k->C, m, bwd);
    if (e) e->valid = true;
    return U;
}

sal_status sal_conv_wino_forward(const sal_opctx *c, const sal_conv_shape *k, const float *X, const float *W,
                                 const float *B, float *Y, bool relu) {
    const int m = fwd_tile(c, k);
    const float *U = m ? weights(c, k, W, false, m) : NULL;
    sal_status st = U ? sal_wino_conv(c->ws, m, k->N, k->C, k->M, k->in[1], k->in[2], X, U, B, relu, false, Y)
                      : SAL_ERR_NOMEM;
    return st == SAL_OK ? st : sal_wrap(st, "node '%s' (%s)", c->n->name, c->n->op_type);
}

sal_status sal_conv_wino_backward(const sal_opctx *c, const sal_conv_shape *k, const float *W, const float *dY,
                                  float *dX, bool fresh) {
    const int m = sal_conv_wino_tile_for(k, false);
    const float *U = weights(c, k, W, true, m);
    sal_status st = U ? sal_wino_conv(c->ws, m, k->N, k->M, k->C, k->in[1], k->in[2], dY, U, NULL, false, !fresh, dX)
                      : SAL_ERR_NOMEM;
    return st == SAL_OK ? st : sal_wrap(st, "node '%s' (%s)", c->n->name, c->n->op_type);
}
