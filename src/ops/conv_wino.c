/* Winograd F(2x2, 3x3) convolutions (Lavin and Gray, 2016) in blocked layouts.
 *
 * oneDNN's f32 Winograd kernels need AVX-512; on an AVX2 machine it runs 3x3 layers as direct
 * convolutions at about the sgemm rate, as PyTorch does. Here each 2 x 2 block of outputs of a
 * channel takes 16 products of its 4 x 4 input tile's transform with the kernel's transform instead
 * of 36: per tile t, Y_t = A^T [sum_c (G g_c G^T) . (B^T d_{t,c} B)] A. Over a chunk of tiles the 16
 * elementwise products summed over channels are 16 matrix products,
 *     M[xi] (tiles, Co) = V[xi] (tiles, Ci) U[xi] (Ci, Co),
 * which sgemm runs at its rate; the transforms are additions only. The blocked layout (channels
 * innermost in blocks of 8 or 16) gives each transform contiguous vectors of 8 channels in and out.
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
static long g_calls;

int sal_conv_wino_mode(int mode) {
    int old = __atomic_load_n(&g_mode, __ATOMIC_RELAXED);
    if (old < 0) {
        const char *e = getenv("SAL_WINO");
        old = e && !strcmp(e, "0") ? SAL_WINO_OFF : e && !strcmp(e, "all") ? SAL_WINO_ALL : SAL_WINO_AUTO;
    }
    __atomic_store_n(&g_mode, mode >= 0 ? mode : old, __ATOMIC_RELAXED);
    return old;
}

long sal_conv_wino_calls(void) { return __atomic_load_n(&g_calls, __ATOMIC_RELAXED); }

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

bool sal_conv_wino_wanted(const sal_conv_shape *k) {
    int mode = sal_conv_wino_mode(-1);
    if (mode == SAL_WINO_OFF || !sal_conv_wino_fits(k)) return false;
    if (mode == SAL_WINO_ALL) return true;
    /* oneDNN's own Winograd (conv_dnnl.c) runs from AVX-512 on, in blocks of 16 */
    int64_t tiles = k->N * ((k->out[1] + 1) / 2) * ((k->out[2] + 1) / 2);
    /* from 32 tiles, and 1M multiply-adds in the products where small_gemm runs them (C M <= 4096;
     * the small CNN's 32 -> 64 layer at 14 x 14, 49 tiles and 1.6M, 27 us against 45 by oneDNN's
     * direct kernels), else 16M (the same layer with its products by sgemm took 43 us) */
    int64_t macs = 16 * tiles * k->C * k->M;
    return sal_blk_width() == 8 && sal_conv_dnnl_wanted(k) && k->C >= 32 && k->M >= 32 && tiles >= 32 &&
           macs >= (small_layer(k->C, k->M) ? 1 << 20 : 1 << 24);
}

/* ---- the transforms ---- */

/* One vector of 8 channels (core.h's sal_v8); a block of 16 is two. */
typedef sal_v8 v8;
typedef sal_v8i v8i;
#define LD SAL_LD8
#define ST SAL_ST8
enum { V8 = 8 };

/* 1-D input transform B^T d of four vectors d[0], d[ds], ...: d0 - d2, d1 + d2, d2 - d1, d1 - d3
 * into o[0], o[os], ... */
#define BT4(o, os, d, ds)                                                                                              \
    do {                                                                                                               \
        v8 d0_ = (d)[0], d1_ = (d)[ds], d2_ = (d)[2 * (ds)], d3_ = (d)[3 * (ds)];                                      \
        (o)[0] = d0_ - d2_, (o)[os] = d1_ + d2_, (o)[2 * (os)] = d2_ - d1_, (o)[3 * (os)] = d1_ - d3_;                 \
    } while (0)

/* One block of 8 channels of a tile: its 16 pixels x + off[i] (ANDed with zm[i], zero outside the
 * image, where pad) transformed into o, o + vs, ..., o + 15 vs. Unrolled whole so that d, u and v
 * live in registers: as loops over arrays GCC kept them on the stack, and the transforms took as
 * long as a third of the products (the small CNN's 32 -> 64 layer at 14 x 14). */
static inline __attribute__((always_inline)) void in_blk(const float *x, const int64_t *off, const v8i *zm,
                                                         const bool pad, float *o, int64_t vs) {
    v8 d[16], u[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) d[i] = pad ? (v8)((v8i)LD(x + off[i]) & zm[i]) : LD(x + off[i]);
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

/* Tiles [t0, t1) of the chunk starting at tile tc into V (16 matrices of (tiles, Ci), vs floats
 * apart, rows t - tc): each tile's 4 x 4 input pixels (zero outside the image) transformed. A pixel
 * outside is read at an offset inside and masked to zero, so no load depends on a branch. */
SAL_CLONES void in_tiles(const float *X, float *V, int64_t vs, int64_t tc, int64_t t0, int64_t t1, int64_t Ci,
                         int64_t H, int64_t W, int64_t L) {
    const int64_t TW = (W + 1) / 2, TH = (H + 1) / 2, CB = Ci / L;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / (TH * TW), ti = t / TW % TH, tj = t % TW, h0 = 2 * ti - 1, w0 = 2 * tj - 1;
        int64_t off[16]; /* each pixel's offset in a channel block, clamped into the image */
        v8i zm[16];      /* all ones inside the image, zero outside */
        bool pad = false;
        for (int r = 0; r < 4; r++)
            for (int q = 0; q < 4; q++) {
                int64_t h = h0 + r, w = w0 + q;
                bool in = h >= 0 && h < H && w >= 0 && w < W;
                h = h < 0 ? 0 : h >= H ? H - 1 : h, w = w < 0 ? 0 : w >= W ? W - 1 : w;
                off[4 * r + q] = (h * W + w) * L;
                zm[4 * r + q] = (v8i){0} - (int)in;
                pad |= !in;
            }
        const float *x = X + n * CB * H * W * L;
        float *o = V + (t - tc) * Ci;
        for (int64_t cb = 0; cb < CB; cb++, x += H * W * L)
            for (int64_t l0 = 0; l0 < L; l0 += V8) {
                if (pad) in_blk(x + l0, off, zm, true, o + cb * L + l0, vs);
                else in_blk(x + l0, off, zm, false, o + cb * L + l0, vs);
            }
    }
}

/* One block of 8 channels of a tile from M (m, m + ms, ..., m + 15 ms) into its nr x nq outputs at
 * y (rows WL floats apart, pixels L): A^T m A plus the bias b, added to y where add, then the ReLU
 * (NaN kept, as Relu's). Unrolled whole, as in_blk. */
static inline __attribute__((always_inline)) void out_blk(const float *m, int64_t ms, float *y, int64_t WL,
                                                          int64_t L, v8 b, bool relu, bool add, const int nr,
                                                          const int nq) {
    v8 a[2][4], z[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) { /* A^T m: rows m0 + m1 + m2, m1 - m2 - m3 */
        v8 m0 = LD(m + q * ms), m1 = LD(m + (4 + q) * ms), m2 = LD(m + (8 + q) * ms), m3 = LD(m + (12 + q) * ms);
        a[0][q] = m0 + m1 + m2, a[1][q] = m1 - m2 - m3;
    }
#pragma GCC unroll 2
    for (int r = 0; r < 2; r++) { /* (A^T m) A */
        z[2 * r] = a[r][0] + a[r][1] + a[r][2] + b;
        z[2 * r + 1] = a[r][1] - a[r][2] - a[r][3] + b;
    }
#pragma GCC unroll 2
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 2
        for (int q = 0; q < nq; q++) {
            float *o = y + r * WL + q * L;
            v8 val = add ? z[2 * r + q] + LD(o) : z[2 * r + q];
            if (relu) val = (v8)((v8i)val & ~(val < (v8){0}));
            ST(o, val);
        }
}

/* Tiles [t0, t1) of the chunk at tc from M (16 matrices of (tiles, Co), ms floats apart) into Y:
 * 2 x 2 outputs a tile (those inside the image), plus the bias, set or added, then the ReLU. */
SAL_CLONES void out_tiles(const float *M, int64_t ms, float *Y, int64_t tc, int64_t t0, int64_t t1, int64_t Co,
                          int64_t H, int64_t W, int64_t L, const float *B, bool relu, bool add) {
    const int64_t TW = (W + 1) / 2, TH = (H + 1) / 2, KB = Co / L;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / (TH * TW), ti = t / TW % TH, tj = t % TW;
        int nr = 2 * ti + 1 < H ? 2 : 1, nq = 2 * tj + 1 < W ? 2 : 1;
        for (int64_t kb = 0; kb < KB; kb++)
            for (int64_t l0 = 0; l0 < L; l0 += V8) {
                const float *m = M + (t - tc) * Co + kb * L + l0;
                v8 b = B ? LD(B + kb * L + l0) : (v8){0};
                float *y = Y + ((n * KB + kb) * H * W + 2 * ti * W + 2 * tj) * L + l0;
                if (nr == 2 && nq == 2) out_blk(m, ms, y, W * L, L, b, relu, add, 2, 2);
                else out_blk(m, ms, y, W * L, L, b, relu, add, nr, nq);
            }
    }
}

/* Row r of U's 16 matrices (input channel r forward, output channel r backward): its kernels'
 * transforms, each matrix's row written in one run (512 -> 512 channels: 16 -> 7 ms forward, 8.7 ->
 * 6.5 backward, where each kernel's 16 values went to 16 places apart). */
SAL_CLONES void wrow(float *U, const float *W, int64_t M, int64_t C, int64_t r, bool bwd) {
    const int64_t MC = M * C, Q = bwd ? C : M, ws = bwd ? 9 : C * 9; /* the next kernel of the row */
    const float *w0 = W + (bwd ? r * C * 9 : r * 9);
    float *u0 = U + r * Q;
    for (int64_t q = 0; q < Q; q++) {
        const float *w = w0 + q * ws;
        float g[9], a[12];
        for (int k = 0; k < 9; k++) g[k] = bwd ? w[8 - k] : w[k]; /* backward: turned by 180 degrees */
        for (int s = 0; s < 3; s++) { /* G g: rows g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2 */
            a[s] = g[s], a[9 + s] = g[6 + s];
            a[3 + s] = 0.5f * (g[s] + g[3 + s] + g[6 + s]), a[6 + s] = 0.5f * (g[s] - g[3 + s] + g[6 + s]);
        }
        for (int k = 0; k < 4; k++) { /* (G g) G^T, row k */
            const float *ak = a + 3 * k;
            float *o = u0 + 4 * k * MC + q;
            o[0] = ak[0], o[3 * MC] = ak[2];
            o[MC] = 0.5f * (ak[0] + ak[1] + ak[2]), o[2 * MC] = 0.5f * (ak[0] - ak[1] + ak[2]);
        }
    }
}

void sal_wino_weights(float *U, const float *W, int64_t M, int64_t C, bool bwd) {
    const int64_t R = bwd ? M : C;
    SAL_PAR_FOR(M * C > 4096, "omp parallel for schedule(static)",
                for (int64_t r = 0; r < R; r++) wrow(U, W, M, C, r, bwd););
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
    int64_t vs, ms;                    /* floats from one of V's (M's) 16 matrices to the next */
    const float *X, *U, *B;
    float *Y;
    bool relu, add, small; /* small: the products by small_gemm */
} wino_job;

/* Chunk [tc, tc + nt) on buffers V, M: its tiles' transforms, the 16 products, the outputs. Alone:
 * the calling thread does it all; else every thread of the team calls it and shares the work. */
static void chunk(const wino_job *j, int64_t tc, int64_t nt, float *V, float *M, bool alone) {
    const int64_t vs = j->vs, ms = j->ms;
    if (alone) {
        in_tiles(j->X, V, vs, tc, tc, tc + nt, j->Ci, j->H, j->W, j->L);
        for (int xi = 0; xi < 16; xi++)
            if (j->small) small_gemm(V + xi * vs, j->U + xi * j->Ci * j->Co, M + xi * ms, nt, j->Ci, j->Co);
            else sal_sgemm(false, false, (int)nt, (int)j->Co, (int)j->Ci, 1.0f, V + xi * vs, (int)j->Ci,
                      j->U + xi * j->Ci * j->Co, (int)j->Co, 0.0f, M + xi * ms, (int)j->Co);
        out_tiles(M, ms, j->Y, tc, tc, tc + nt, j->Co, j->H, j->W, j->L, j->B, j->relu, j->add);
        return;
    }
    int64_t th = omp_get_thread_num(), nth = omp_get_num_threads(), t0 = tc + nt * th / nth,
            t1 = tc + nt * (th + 1) / nth;
    in_tiles(j->X, V, vs, tc, t0, t1, j->Ci, j->H, j->W, j->L);
#pragma omp barrier
    for (int xi = (int)(16 * th / nth); xi < 16 * (th + 1) / nth; xi++)
        sal_sgemm(false, false, (int)nt, (int)j->Co, (int)j->Ci, 1.0f, V + xi * vs, (int)j->Ci,
                  j->U + xi * j->Ci * j->Co, (int)j->Co, 0.0f, M + xi * ms, (int)j->Co);
#pragma omp barrier
    out_tiles(M, ms, j->Y, tc, t0, t1, j->Co, j->H, j->W, j->L, j->B, j->relu, j->add);
#pragma omp barrier /* the next chunk overwrites V and M */
}

sal_status sal_wino_conv(sal_scratch *ws, int64_t N, int64_t Ci, int64_t Co, int64_t H, int64_t W, const float *X,
                         const float *U, const float *B, bool relu, bool add, float *Y) {
    wino_job j = {.N = N, .Ci = Ci, .Co = Co, .H = H, .W = W, .L = sal_blk_width(), .X = X, .U = U, .B = B,
                  .Y = Y, .relu = relu, .add = add};
    j.T = N * ((H + 1) / 2) * ((W + 1) / 2);
    /* 64 tiles a chunk (more for fewer than 64 channels in and out): each product has rows enough
     * for sgemm's packing of U[xi] to pay, and a chunk's V and M stay near the 512 KiB of a core's L2
     * for narrow layers (64 -> 64 channels at 224 x 224 ran alike at 64 and 128 tiles a chunk, 14.8
     * to 17.8 ms as the best of 15 calls on a noisy VM) */
    j.tb = (1 << 17) / (16 * (Ci + Co));
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
    /* the 16 matrices' strides a multiple of 4 KiB (and of the L1's way) would put the transforms'
     * 16 loads or stores of a tile in one set of L1: one line more apart */
    j.vs = j.tb * Ci + 16, j.ms = j.tb * Co + 16;
    size_t per = (size_t)(16 * (j.vs + j.ms));
    float *buf = sal_scratch_get(ws, 0, sizeof(float) * per * (size_t)(own ? nth : 1));
    if (!buf) return SAL_ERR_NOMEM;
    __atomic_add_fetch(&g_calls, 1, __ATOMIC_RELAXED);
    if (own) {
#pragma omp parallel for schedule(dynamic)
        for (int64_t ch = 0; ch < nch; ch++) {
            float *V = buf + per * (size_t)omp_get_thread_num();
            int64_t tc = ch * j.tb;
            chunk(&j, tc, tc + j.tb <= j.T ? j.tb : j.T - tc, V, V + 16 * j.vs, true);
        }
        return SAL_OK;
    }
    bool par = nth > 1 && 16 * j.T * Ci * Co >= (1 << 20);
    if (!par) {
        for (int64_t tc = 0; tc < j.T; tc += j.tb)
            chunk(&j, tc, tc + j.tb <= j.T ? j.tb : j.T - tc, buf, buf + 16 * j.vs, true);
        return SAL_OK;
    }
#pragma omp parallel
    for (int64_t tc = 0; tc < j.T; tc += j.tb)
        chunk(&j, tc, tc + j.tb <= j.T ? j.tb : j.T - tc, buf, buf + 16 * j.vs, false);
    return SAL_OK;
}

/* ---- a node's transformed weights ---- */

/* Kept as oneDNN's layouts are (sal_wcache): the own weight both ways, a substituted one both ways. */
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

/* U for W in direction bwd: from the node's cache (substituted weights kept up to 1 MiB, as
 * oneDNN's), or transformed into scratch slot 1 where it is not kept. NULL with a message set when
 * out of memory. */
static const float *weights(const sal_opctx *c, const sal_conv_shape *k, const float *W, bool bwd) {
    size_t need = sizeof(float) * 16 * (size_t)(k->M * k->C);
    void **slot = sal_conv_dnnl_aux(c, wstate_free);
    if (!slot) return NULL;
    if (!*slot && !(*slot = sal_calloc(1, sizeof(wstate)))) {
        sal_fail(SAL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    wstate *s = *slot;
    bool hit, nomem;
    sal_wcache *e = sal_wcache_get(s->e, NWENT, &s->tick, c, W, bwd, need, 1u << 20, &hit, &nomem);
    if (nomem) return NULL;
    float *U = e ? e->buf : sal_scratch_get(c->ws, 1, need);
    if (U && !hit) sal_wino_weights(U, W, k->M, k->C, bwd);
    if (e) e->valid = true;
    return U;
}

sal_status sal_conv_wino_forward(const sal_opctx *c, const sal_conv_shape *k, const float *X, const float *W,
                                 const float *B, float *Y, bool relu) {
    const float *U = weights(c, k, W, false);
    sal_status st = U ? sal_wino_conv(c->ws, k->N, k->C, k->M, k->in[1], k->in[2], X, U, B, relu, false, Y)
                      : SAL_ERR_NOMEM;
    return st == SAL_OK ? st : sal_wrap(st, "node '%s' (%s)", c->n->name, c->n->op_type);
}

sal_status sal_conv_wino_backward(const sal_opctx *c, const sal_conv_shape *k, const float *W, const float *dY,
                                  float *dX, bool fresh) {
    const float *U = weights(c, k, W, true);
    sal_status st = U ? sal_wino_conv(c->ws, k->N, k->M, k->C, k->in[1], k->in[2], dY, U, NULL, false, !fresh, dX)
                      : SAL_ERR_NOMEM;
    return st == SAL_OK ? st : sal_wrap(st, "node '%s' (%s)", c->n->name, c->n->op_type);
}
