/* Conv (1-D to 3-D; strides, pads, dilations, groups, auto_pad) by im2col + sgemm.
 *
 * Per sample n and group g the output is one matrix product
 *     Y[n,g] (Mg, P) = W[g] (Mg, Kc) x col (Kc, P),   Kc = Cg * kernel size, P = output positions,
 * where col gathers the input under every kernel tap. The product is cut into chunks of output rows:
 * a chunk's columns are a few MB (VGG's first layers would need 100+ MB per sample otherwise), and
 * the (sample, group, chunk) items are what threads share. Each thread builds its chunk's columns and
 * multiplies them itself (sgemm runs single-threaded inside a parallel region), so a whole layer is
 * one parallel region with its data in one core's cache, even at batch 1.
 * Backward reuses the pieces: dW[g] += dY[n,g] col^T (per-thread sums), and dX by scattering
 * W[g]^T dY[n,g] back through the taps (col2im). Neighbouring chunks scatter into shared input rows,
 * so even chunks run first, then odd ones.
 * Groups of one input channel (depthwise convolutions) use direct loops: their products are too thin
 * for sgemm to pay.
 *
 * ConvTranspose is the adjoint of a convolution: its forward is Conv's backward into the data (the
 * col2im path above) and its backward into the data is Conv's forward, on a geometry whose input
 * is the transposed convolution's output. Its weights (C_in, C_out/g, k...) are that convolution's
 * (M, C/g, k...) as they are, so the kernels serve both ops unchanged.
 *
 * Conv layers with a few million multiply-adds or more run through oneDNN instead (conv_dnnl.c),
 * which leaves to these kernels what it declines, and 3x3 layers kept in blocked layouts through
 * Winograd's algorithm where oneDNN has none for the machine (conv_wino.c). */
#include "conv_wino.h"
#include "window.h"
#include <limits.h>
#include <omp.h>

/* Floats in one thread's column buffer: large enough for sgemm to run at full speed, small enough
 * to stay in cache between im2col and the product (2^19 to 2^21 measured alike; -D to tune). */
#ifndef COL_CHUNK
#define COL_CHUNK (1 << 20)
#endif
/* Multiply-adds below which a layer runs on one thread: a parallel region costs microseconds. */
#define PAR_WORK (1 << 18)
/* Scratch slots: 0 and 1 the column and dW buffers (conv_wino.c's tiles and weights), 2 to 6
 * conv_dnnl.c's, 7 a tensor converted between layouts (a blocked dY made plain, a plain X or dX
 * blocked for Winograd's kernels) */
#define SL_CONVERT 7
#define SL_WINO_PLAIN 2 /* Winograd's path, where oneDNN's slots lie idle: the blocked Y or dY of a plain one */

typedef struct {
    sal_win_attr wa;
    int64_t group;
} conv_p;

/* What one call needs, derived from the input shapes. */
typedef struct {
    sal_win w;
    int64_t N, C, M, G, Cg, Mg, Kc;
    int64_t rows, rc, nch; /* output rows (OD*OH), most rows in a chunk, chunks per (sample, group) */
    int64_t colsz;         /* floats of one column buffer */
    bool one;              /* 1x1, stride 1, no padding: X[n,g] (Cg, P) is its own column matrix */
    bool direct;           /* one input channel per group and several groups: direct loops */
} conv_geom;

static sal_status conv_init(sal_node *n, const sal_model *g) {
    (void)g;
    conv_p *p = sal_calloc(1, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    n->p = p;
    SAL_TRY(sal_win_parse(n, false, false, &p->wa));
    p->group = sal_attr_int(n, "group", 1);
    if (p->group < 1) return sal_node_fail(n, SAL_ERR_FORMAT, "group must be positive, got %lld", (long long)p->group);
    return SAL_OK;
}

/* The derived sizes of a geometry whose N, C, M, G, Cg, Mg and window are set. */
static sal_status conv_geom_finish(const sal_node *n, conv_geom *q) {
    const sal_win *w = &q->w;
    q->Kc = q->Cg * w->k_sz;
    q->rows = w->out[0] * w->out[1];
    if (q->Kc > INT_MAX || w->out_sz > INT_MAX || q->M > INT_MAX || q->Kc * w->out[2] > INT_MAX)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "convolution too large for 32-bit matrix sizes");
    q->one = w->k_sz == 1;
    for (int j = 0; j < 3; j++) q->one &= w->s[j] == 1 && w->pb[j] == 0 && w->in[j] == w->out[j];
    q->direct = q->Cg == 1 && q->G > 1;
    return SAL_OK;
}

static sal_status conv_plan(const sal_opctx *c, conv_geom *q) {
    const conv_p *p = c->n->p;
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *X = c->in[0];
    if (X->ndim < 3 || X->ndim > 5) {
        char b[160];
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED,
                             "input X has shape %s; expected (N, C, L), (N, C, H, W) or (N, C, D, H, W)",
                             sal_shape_str(X->ndim, X->dim, b, sizeof b));
    }
    SAL_TRY(sal_need_f32(c, 1, X->ndim));
    const sal_tensor *W = c->in[1];
    memset(q, 0, sizeof *q);
    q->N = X->dim[0], q->C = X->dim[1], q->M = W->dim[0], q->G = p->group;
    if (q->C % q->G || q->M % q->G || W->dim[1] * q->G != q->C) {
        char a[160], b[160];
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "X %s and W %s do not fit group = %lld",
                             sal_shape_str(X->ndim, X->dim, a, sizeof a), sal_shape_str(W->ndim, W->dim, b, sizeof b),
                             (long long)q->G);
    }
    q->Cg = q->C / q->G, q->Mg = q->M / q->G;
    if (c->n->nin > 2 && c->in[2]) {
        SAL_TRY(sal_need_f32(c, 2, 1));
        if (c->in[2]->dim[0] != q->M)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "bias has %lld entries for %lld output channels",
                                 (long long)c->in[2]->dim[0], (long long)q->M);
    }
    SAL_TRY(sal_win_plan(c->n, &p->wa, X->ndim - 2, X->dim + 2, W->dim + 2, &q->w));
    return conv_geom_finish(c->n, q);
}

/* Chunks of output rows: at most COL_CHUNK floats of columns each, and enough of them that every
 * thread gets an equal share of items (per parity class in backward). */
static void conv_chunks(conv_geom *q, int nt, bool backward) {
    const sal_win *w = &q->w;
    int64_t rowf = q->Kc * w->out[2], items = q->N * q->G;
    int64_t nch = rowf > 0 ? (q->rows * rowf + COL_CHUNK - 1) / COL_CHUNK : 1, per = backward ? 2 : 1;
    nch = (nch + per - 1) / per * per;
    /* few items: more chunks, so that each parity class splits evenly over the threads */
    if (items < 4 * nt)
        for (int64_t k = nch; k <= nch + per * nt; k += per)
            if (items * (k / per) % nt == 0) {
                nch = k;
                break;
            }
    /* backward: two chunks apart must not share input rows, so each chunk spans at least
     * ceil(dilated kernel height / stride) rows */
    int64_t dkh = (w->k[1] - 1) * w->d[1] + 1, need = backward ? (dkh + w->s[1] - 1) / w->s[1] : 1;
    if (nch > q->rows / need) nch = q->rows / need;
    if (nch < 1) nch = 1;
    q->nch = nch;
    q->rc = (q->rows + nch - 1) / nch; /* the longest chunk */
    q->colsz = q->one || q->direct ? 0 : q->rc * rowf;
}

static sal_status conv_infer(sal_opctx *c) {
    conv_geom q;
    SAL_TRY(conv_plan(c, &q));
    sal_tensor *o = c->out[0];
    o->dtype = SAL_F32;
    o->ndim = c->in[0]->ndim;
    o->dim[0] = q.N;
    o->dim[1] = q.M;
    for (int i = 0; i < q.w.nsp; i++) o->dim[2 + i] = q.w.out[3 - q.w.nsp + i];
    return SAL_OK;
}

/* One kernel tap: input position = output position * stride + off, per dimension, and the range
 * [lo, hi) of output positions whose input lies inside (not in the padding). */
typedef struct {
    int64_t off[3], lo[3], hi[3];
} tap_span;

static void tap_span_of(const sal_win *w, int64_t k, tap_span *t) {
    int64_t kk[3] = {k / (w->k[1] * w->k[2]), k / w->k[2] % w->k[1], k % w->k[2]};
    for (int j = 0; j < 3; j++) {
        t->off[j] = kk[j] * w->d[j] - w->pb[j];
        sal_win_range(t->off[j], w->s[j], w->out[j], w->in[j], &t->lo[j], &t->hi[j]);
    }
}

/* Whether output row (od, oh) reaches the input under tap t at all. */
static inline bool tap_hits(const tap_span *t, int64_t od, int64_t oh) {
    return od >= t->lo[0] && od < t->hi[0] && oh >= t->lo[1] && oh < t->hi[1] && t->lo[2] < t->hi[2];
}

/* Input offset under tap t of output (od, oh, ow), for a position that tap_hits and lo <= ow < hi. */
static inline int64_t tap_at(const sal_win *w, const tap_span *t, int64_t od, int64_t oh, int64_t ow) {
    return ((od * w->s[0] + t->off[0]) * w->in[1] + oh * w->s[1] + t->off[1]) * w->in[2] + ow * w->s[2] + t->off[2];
}

/* Strided row kernels. The unit stride gets its own loop, and `omp simd`, because gcc -O2 does not
 * vectorize loops whose length it cannot see. */

/* y[i] += a * x[i*s] for i < n */
static inline void axpy_s(float *restrict y, const float *restrict x, float a, int64_t n, int64_t s) {
    if (s == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
    } else {
        for (int64_t i = 0; i < n; i++) y[i] += a * x[i * s];
    }
}

/* y[i*s] += a * x[i] for i < n */
static inline void scatter_s(float *restrict y, const float *restrict x, float a, int64_t n, int64_t s) {
    if (s == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
    } else {
        for (int64_t i = 0; i < n; i++) y[i * s] += a * x[i];
    }
}

/* sum of y[i] * x[i*s] for i < n */
static inline float dot_s(const float *y, const float *x, int64_t n, int64_t s) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; i++) acc += y[i] * x[i * s];
    return acc;
}

/* col (Kc, (r1-r0)*OW) = the inputs x (Cg, D, H, W) under each tap for output rows [r0, r1); rows of
 * col are (channel, tap), zero where the tap falls in the padding. */
static void im2col(const sal_win *w, const float *x, int64_t Cg, int64_t r0, int64_t r1, float *col) {
    const int64_t OH = w->out[1], OW = w->out[2], pc = (r1 - r0) * OW, KS = w->k_sz, sw = w->s[2];
    for (int64_t k = 0; k < KS; k++) { /* taps outside: a tap's span is the same for every channel */
        tap_span t;
        tap_span_of(w, k, &t);
        const int64_t lo = t.lo[2], n = t.hi[2] - lo;
        for (int64_t ch = 0; ch < Cg; ch++) {
            const float *xc = x + ch * w->in_sz;
            float *dst = col + (ch * KS + k) * pc;
            for (int64_t r = r0; r < r1; r++, dst += OW) {
                int64_t od = r / OH, oh = r % OH;
                if (!tap_hits(&t, od, oh)) {
                    for (int64_t i = 0; i < OW; i++) dst[i] = 0.0f;
                    continue;
                }
                /* loops, not memcpy and memset: rows are short (14 floats on the small CNN), and
                 * three library calls a row took half of its forward */
                const float *xr = xc + tap_at(w, &t, od, oh, lo);
                for (int64_t i = 0; i < lo; i++) dst[i] = 0.0f;
                if (sw == 1) {
#pragma omp simd
                    for (int64_t i = 0; i < n; i++) dst[lo + i] = xr[i];
                } else {
                    for (int64_t i = 0; i < n; i++) dst[lo + i] = xr[i * sw];
                }
                for (int64_t i = lo + n; i < OW; i++) dst[i] = 0.0f;
            }
        }
    }
}

/* The adjoint of im2col: dx (Cg, D, H, W) += col scattered back through the taps. */
static void col2im(const sal_win *w, const float *col, int64_t Cg, int64_t r0, int64_t r1, float *dx) {
    const int64_t OH = w->out[1], OW = w->out[2], pc = (r1 - r0) * OW, KS = w->k_sz;
    for (int64_t k = 0; k < KS; k++) {
        tap_span t;
        tap_span_of(w, k, &t);
        const int64_t lo = t.lo[2], n = t.hi[2] - lo;
        for (int64_t ch = 0; ch < Cg; ch++) {
            float *dxc = dx + ch * w->in_sz;
            const float *src = col + (ch * KS + k) * pc;
            for (int64_t r = r0; r < r1; r++, src += OW) {
                int64_t od = r / OH, oh = r % OH;
                if (tap_hits(&t, od, oh)) scatter_s(dxc + tap_at(w, &t, od, oh, lo), src + lo, 1.0f, n, w->s[2]);
            }
        }
    }
}

/* Output rows [*r0, *r1) of chunk k: the rows split as evenly as they go. */
static void chunk_rows(const conv_geom *q, int64_t k, int64_t *r0, int64_t *r1) {
    *r0 = k * q->rows / q->nch;
    *r1 = (k + 1) * q->rows / q->nch;
}

/* What a forward adds to the product while its rows are still in cache: the bias, then max(y, 0). */
typedef struct {
    const float *B; /* (M) or NULL */
    bool relu;
} conv_epi;

/* y (Mg rows of stride P, columns [0, pc)) += B, then the ReLU: the epilogue of group g's rows. */
static void epilogue(const conv_epi *e, int64_t g, int64_t Mg, float *y, int64_t P, int64_t pc) {
    if (!e || (!e->B && !e->relu)) return;
    for (int64_t m = 0; m < Mg; m++) {
        float *r = y + m * P, b = e->B ? e->B[g * Mg + m] : 0.0f;
        if (e->relu) {
#pragma omp simd
            for (int64_t i = 0; i < pc; i++) r[i] = r[i] + b > 0.0f ? r[i] + b : 0.0f;
        } else {
#pragma omp simd
            for (int64_t i = 0; i < pc; i++) r[i] += b;
        }
    }
}

/* Columns [r0*OW, r1*OW) of Y[n,g] = W[g] X[n,g] (+ beta Y[n,g]) for chunk k, then the epilogue e
 * (may be NULL); col: this thread's buffer. */
static void fwd_chunk(const conv_geom *q, const float *X, const float *Wt, float *Y, int64_t n, int64_t g, int64_t k,
                      float *col, float beta, const conv_epi *e) {
    const sal_win *w = &q->w;
    const int64_t P = w->out_sz, OW = w->out[2];
    const int Mg = (int)q->Mg, Kc = (int)q->Kc;
    const float *x = X + (n * q->C + g * q->Cg) * w->in_sz; // (Cg, D, H, W)
    const float *wg = Wt + g * q->Mg * q->Kc;              // (Mg, Kc)
    float *y = Y + (n * q->M + g * q->Mg) * P;             // (Mg, P)
    int64_t r0, r1;
    chunk_rows(q, k, &r0, &r1);
    int pc = (int)((r1 - r0) * OW);
    if (q->one) /* X[n,g] (Cg, P) is the column matrix */
        sal_sgemm(false, false, Mg, pc, Kc, 1.0f, wg, Kc, x + r0 * OW, (int)P, beta, y + r0 * OW, (int)P);
    else {
        im2col(w, x, q->Cg, r0, r1, col);
        sal_sgemm(false, false, Mg, pc, Kc, 1.0f, wg, Kc, col, pc, beta, y + r0 * OW, (int)P);
    }
    epilogue(e, g, q->Mg, y + r0 * OW, P, pc);
}

/* Chunk k of dW[g] += dY[n,g] col^T and dX[n,g] += col2im(W[g]^T dY[n,g]); dX or dW may be NULL. */
static void bwd_chunk(const conv_geom *q, const float *X, const float *Wt, const float *dY, float *dX, float *dW,
                      int64_t n, int64_t g, int64_t k, float *col) {
    const sal_win *w = &q->w;
    const int64_t P = w->out_sz, OW = w->out[2];
    const int Mg = (int)q->Mg, Kc = (int)q->Kc;
    const float *x = dW ? X + (n * q->C + g * q->Cg) * w->in_sz : NULL; // (Cg, D, H, W): only dW reads it
    const float *wg = Wt + g * q->Mg * q->Kc;              // (Mg, Kc)
    const float *dy = dY + (n * q->M + g * q->Mg) * P;     // (Mg, P)
    float *dx = dX ? dX + (n * q->C + g * q->Cg) * w->in_sz : NULL;
    float *dw = dW ? dW + g * q->Mg * q->Kc : NULL;
    int64_t r0, r1;
    chunk_rows(q, k, &r0, &r1);
    int pc = (int)((r1 - r0) * OW);
    dy += r0 * OW;
    if (q->one) { /* output column p is input column p */
        if (dw) sal_sgemm(false, true, Mg, Kc, pc, 1.0f, dy, (int)P, x + r0 * OW, (int)P, 1.0f, dw, Kc);
        if (dx) sal_sgemm(true, false, Kc, pc, Mg, 1.0f, wg, Kc, dy, (int)P, 1.0f, dx + r0 * OW, (int)P);
        return;
    }
    if (dw) {
        im2col(w, x, q->Cg, r0, r1, col);
        sal_sgemm(false, true, Mg, Kc, pc, 1.0f, dy, (int)P, col, pc, 1.0f, dw, Kc);
    }
    if (dx) {
        sal_sgemm(true, false, Kc, pc, Mg, 1.0f, wg, Kc, dy, (int)P, 0.0f, col, pc);
        col2im(w, col, q->Cg, r0, r1, dx);
    }
}

/* ---- direct loops for groups of one input channel (depthwise) ----
 * Each tap is one shifted multiply-add over the output rows it reaches. */

/* y (P) += w_m (KS) correlated with x (D, H, W) */
static void direct_fwd(const sal_win *w, const float *x, const float *wm, float *y) {
    const int64_t OH = w->out[1], OW = w->out[2];
    for (int64_t k = 0; k < w->k_sz; k++) {
        tap_span t;
        tap_span_of(w, k, &t);
        const int64_t lo = t.lo[2], n = t.hi[2] - lo;
        for (int64_t od = t.lo[0]; od < t.hi[0]; od++)
            for (int64_t oh = t.lo[1]; oh < t.hi[1] && n > 0; oh++)
                axpy_s(y + (od * OH + oh) * OW + lo, x + tap_at(w, &t, od, oh, lo), wm[k], n, w->s[2]);
    }
}

/* dx (D, H, W) += taps of w_m (KS) applied to dy (P); dw_m (KS) += dy correlated with x. Either may be NULL. */
static void direct_bwd(const sal_win *w, const float *x, const float *wm, const float *dy, float *dx, float *dwm) {
    const int64_t OH = w->out[1], OW = w->out[2];
    for (int64_t k = 0; k < w->k_sz; k++) {
        tap_span t;
        tap_span_of(w, k, &t);
        const int64_t lo = t.lo[2], n = t.hi[2] - lo;
        float acc = 0.0f;
        for (int64_t od = t.lo[0]; od < t.hi[0]; od++)
            for (int64_t oh = t.lo[1]; oh < t.hi[1] && n > 0; oh++) {
                int64_t xo = tap_at(w, &t, od, oh, lo);
                const float *dyr = dy + (od * OH + oh) * OW + lo;
                if (dx) scatter_s(dx + xo, dyr, wm[k], n, w->s[2]);
                if (dwm) acc += dot_s(dyr, x + xo, n, w->s[2]);
            }
        if (dwm) dwm[k] += acc;
    }
}

/* ---- one input channel, 3x3 taps, stride 1: the first layer of the MNIST networks ----
 * im2col and a product of depth 9 took 10.5 us of the small CNN's forward for it, these loops 8
 * (`bench_compare --profile`). Every output channel is nine multiply-adds over the zero-padded
 * plane, in rows of width Wp = OW + 2 (position i sums xp[i + ky Wp + kx]), the channel's nine
 * weights in registers. Rows of 8 or more go in vectors of 8, each row's last one overlapping the one
 * before, straight into Y: 8.7 us where four channels a pass over the plane read flat (each row's
 * two positions past its end computed and dropped) then copied row by row took 11.4, on the AVX2
 * machine; two output rows a step, which share the loads of their two middle input rows (six loads
 * an output vector for nine), 5.4 -> 4.5 us a call on two threads (Zen 4, its parallel region timed,
 * alternating builds). That flat pass remains for shorter rows and for adding into Y. */
static bool conv33_fits(const conv_geom *q) {
    const sal_win *w = &q->w;
    return q->C == 1 && q->G == 1 && w->nsp == 2 && w->k[1] == 3 && w->k[2] == 3 && w->s[1] == 1 && w->s[2] == 1 &&
           w->d[1] == 1 && w->d[2] == 1 && w->pb[1] >= 0 && w->pb[2] >= 0;
}

/* Floats of conv33's scratch per sample: the padded plane, then a channel's rows of width Wp. */
static int64_t conv33_scratch(const sal_win *w) {
    const int64_t Wp = w->out[2] + 2;
    return (w->out[1] + 2) * Wp + 2 + w->out[1] * Wp;
}

/* d[0, n) = s[0, n) for short rows, inline: memcpy's call a row of 28 took 0.8 of
 * conv33_bwd's 8 us */
static inline void copy_row(float *restrict d, const float *restrict s, int64_t n) {
    if (n < 8) {
        memcpy(d, s, sizeof *d * (size_t)n);
        return;
    }
    for (int64_t o0 = 0; o0 < n; o0 += 8) { /* the last step overlapping the one before */
        const int64_t o = o0 + 8 <= n ? o0 : n - 8;
        SAL_ST8(d + o, SAL_LD8(s + o));
    }
}

/* Y (M, OH, OW) = the 3x3 correlation of the plane x with each W[m] (9 weights), + B, ReLU; added to
 * Y when acc. buf: conv33_scratch floats. */
SAL_CLONES void conv33(const sal_win *w, const float *x, const float *W, int64_t M, const float *B, bool relu,
                       bool acc, float *buf, float *Y) {
    const int64_t H = w->in[1], IW = w->in[2], OH = w->out[1], OW = w->out[2], Wp = OW + 2, L = OH * Wp;
    float *xp = buf, *tmp = buf + (OH + 2) * Wp + 2;
    memset(xp, 0, sizeof *xp * (size_t)((OH + 2) * Wp + 2));
    for (int64_t iy = 0; iy < H; iy++) { /* input row iy at padded row iy + pt, column pl on */
        int64_t r = iy + w->pb[1], n = IW < Wp - w->pb[2] ? IW : Wp - w->pb[2];
        if (r < OH + 2 && n > 0) copy_row(xp + r * Wp + w->pb[2], x + iy * IW, n);
    }
    for (int64_t m = 0; m < M; m++) {
        const float *v = W + m * 9, v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3], v4 = v[4], v5 = v[5], v6 = v[6],
                    v7 = v[7], v8 = v[8], bk = B ? B[m] : 0.0f;
#define DOT9(i)                                                                                                     \
    ((v0 * r0[i] + v1 * r0[(i) + 1] + v2 * r0[(i) + 2]) + (v3 * r1[i] + v4 * r1[(i) + 1] + v5 * r1[(i) + 2]) +      \
     (v6 * r2[i] + v7 * r2[(i) + 1] + v8 * r2[(i) + 2]) + bk)
        if (!acc && OW >= 8) { /* rows in steps of 8, the last overlapping the one before: no tails */
            const sal_v8 z = {0};
#define ROW3(a, b, c, i) (a * SAL_LD8(r##i + o) + b * SAL_LD8(r##i + o + 1) + c * SAL_LD8(r##i + o + 2))
            for (int64_t oy = 0; oy < OH; oy += 2) {
                const bool two = oy + 1 < OH;
                const float *r0 = xp + oy * Wp, *r1 = r0 + Wp, *r2 = r1 + Wp, *r3 = two ? r2 + Wp : r2;
                float *yr = Y + (m * OH + oy) * OW;
                for (int64_t o0 = 0; o0 < OW; o0 += 8) {
                    const int64_t o = o0 + 8 <= OW ? o0 : OW - 8;
                    const sal_v8 m1a = ROW3(v3, v4, v5, 1), m1b = ROW3(v0, v1, v2, 1);
                    const sal_v8 m2a = ROW3(v6, v7, v8, 2), m2b = ROW3(v3, v4, v5, 2);
                    sal_v8 t = (ROW3(v0, v1, v2, 0) + m1a) + (m2a + bk);
                    if (relu) t = (sal_v8)((sal_v8i)t & (t > z)); /* NaN to 0, as the loops below */
                    SAL_ST8(yr + o, t);
                    if (!two) continue;
                    sal_v8 u = (m1b + m2b) + (ROW3(v6, v7, v8, 3) + bk);
                    if (relu) u = (sal_v8)((sal_v8i)u & (u > z));
                    SAL_ST8(yr + OW + o, u);
                }
            }
#undef ROW3
            continue;
        }
        const float *r0 = xp, *r1 = xp + Wp, *r2 = xp + 2 * Wp;
#pragma omp simd
        for (int64_t i = 0; i < L; i++) tmp[i] = DOT9(i);
#undef DOT9
        for (int64_t oy = 0; oy < OH; oy++) {
            float *yr = Y + (m * OH + oy) * OW;
            const float *tr = tmp + oy * Wp;
            if (acc)
#pragma omp simd
                for (int64_t ox = 0; ox < OW; ox++) yr[ox] += tr[ox];
            else
#pragma omp simd
                for (int64_t ox = 0; ox < OW; ox++) yr[ox] = tr[ox];
            if (relu)
#pragma omp simd
                for (int64_t ox = 0; ox < OW; ox++) yr[ox] = yr[ox] > 0.0f ? yr[ox] : 0.0f;
        }
    }
}

/* Floats of conv33_bwd's scratch: one channel's padded rows of dY, then the sums. */
static int64_t conv33_bwd_scratch(const sal_win *w) { return (2 * w->out[1] + 6) * (w->out[2] + 4) + 4; }

/* conv33's transpose on one sample's dX (H, W) from its M channels of dY: dX[iy, ix] +=
 * the sum over m and the taps of W[m, ky, kx] dY[m, iy + pt - ky, ix + pl - kx]. im2col's product
 * of depth M then col2im took 17 to 18 us a call for the small CNN's first layer, these loops 12 to
 * 14. The same flat reading as conv33: in rows of width Wq = OW + 4 (dY with two zero columns each
 * side), padded input position i sums dq[i + (2 - ky) Wq + 2 - kx] over the taps, a channel of dY
 * copied into dq a time; the positions past each row's end are computed and dropped. A channel's
 * nine weights stay in registers, and its three rows of taps are summed apart (one chain of nine
 * multiply-adds a position ran at a third of the rate). buf: conv33_bwd_scratch floats. */
SAL_CLONES void conv33_bwd(const sal_win *w, const float *dY, const float *W, int64_t M, float *buf, float *dX) {
    const int64_t H = w->in[1], IW = w->in[2], OH = w->out[1], OW = w->out[2], Wq = OW + 4, pt = w->pb[1],
                  pl = w->pb[2];
    const int64_t p0 = pt, p1 = H + pt < OH + 2 ? H + pt : OH + 2; /* padded rows [pt, p1) the taps reach */
    if (p1 <= p0) return;
    const int64_t R = p1 - p0, Q = (R + 2) * Wq + 4, L = R * Wq, o1 = Wq + 2, o2 = 2 * Wq + 2;
    float *restrict dq = buf, *restrict acc = buf + Q;
    memset(buf, 0, sizeof *buf * (size_t)(Q + L)); /* the borders stay zero: copies fill the inside */
    for (int64_t m = 0; m < M; m++) {
        for (int64_t r = 0; r < R + 2; r++) { /* dq row r: dY row p0 + r - 2 */
            const int64_t oy = p0 + r - 2;
            if (oy >= 0 && oy < OH) copy_row(dq + r * Wq + 2, dY + (m * OH + oy) * OW, OW);
        }
        const float *v = W + m * 9, v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3], v4 = v[4], v5 = v[5], v6 = v[6],
                    v7 = v[7], v8 = v[8];
#pragma omp simd
        for (int64_t i = 0; i < L; i++)
            acc[i] += (v0 * dq[i + o2] + v1 * dq[i + o2 - 1] + v2 * dq[i + o2 - 2]) +
                      (v3 * dq[i + o1] + v4 * dq[i + o1 - 1] + v5 * dq[i + o1 - 2]) +
                      (v6 * dq[i + 2] + v7 * dq[i + 1] + v8 * dq[i]);
    }
    const int64_t n = IW < OW + 2 - pl ? IW : OW + 2 - pl; /* columns the taps reach */
    for (int64_t py = p0; py < p1; py++) {
        float *d = dX + (py - pt) * IW;
        const float *s = acc + (py - p0) * Wq + pl;
#pragma omp simd
        for (int64_t ix = 0; ix < n; ix++) d[ix] += s[ix];
    }
}

/* Y (N, M, P) = conv(X, W), or += with acc; then the epilogue e (may be NULL). */
static sal_status conv_fwd_run(const sal_node *node, sal_scratch *ws, const conv_geom *qq, const float *X,
                               const float *Wt, float *Y, bool acc, const conv_epi *e) {
    conv_geom q = *qq;
    const sal_win *w = &q.w;
    const int64_t P = w->out_sz, work = q.N * q.M * P * q.Kc;
    (void)work; /* only read by OpenMP */
    if (q.direct) { /* the direct loops accumulate */
        if (!acc) memset(Y, 0, sizeof *Y * (size_t)(q.N * q.M * P));
        SAL_PAR_FOR(
            work > PAR_WORK, "omp parallel for schedule(static)", for (int64_t it = 0; it < q.N * q.M; it++) {
                int64_t n = it / q.M, m = it % q.M;
                direct_fwd(w, X + (n * q.C + m / q.Mg) * w->in_sz, Wt + m * w->k_sz, Y + it * P);
                epilogue(e, m, 1, Y + it * P, P, P);
            });
        return SAL_OK;
    }
    int nt = omp_get_max_threads();
    if (conv33_fits(&q)) { /* threads over samples; a lone sample's channels in one part a thread */
        const int64_t per = conv33_scratch(w);
        bool par = nt > 1 && (q.N > 1 ? work > PAR_WORK : q.M >= 2 * nt && work > PAR_WORK / 2);
        const int64_t parts = par && q.N == 1 ? nt : 1;
        float *buf = sal_scratch_get(ws, 0, sizeof(float) * (size_t)(per * (par ? nt : 1)));
        if (!buf) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", node->name, node->op_type);
        SAL_PAR_FOR(par, "omp parallel for schedule(static)", for (int64_t it = 0; it < q.N * parts; it++) {
            const int64_t n = it / parts, m0 = q.M * (it % parts) / parts, m1 = q.M * (it % parts + 1) / parts;
            conv33(w, X + n * w->in_sz, Wt + 9 * m0, m1 - m0, e && e->B ? e->B + m0 : NULL, e && e->relu, acc,
                   buf + omp_get_thread_num() * per, Y + (n * q.M + m0) * P);
        });
        return SAL_OK;
    }
    conv_chunks(&q, nt, false);
    const int64_t nch = q.nch, items = q.N * q.G * nch;
    bool par = nt > 1 && items > 1 && work > PAR_WORK;
    size_t colbytes = sizeof(float) * (size_t)q.colsz * (size_t)(par ? nt : 1);
    float *col = q.colsz ? sal_scratch_get(ws, 0, colbytes) : NULL;
    if (q.colsz && !col) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", node->name, node->op_type);
    if (!par) { /* outside any parallel region: a BLAS call inside even an inactive one starts a
                 * nested team of its own, 1.3 ms a call for MobileNetV3's squeeze-excitation */
        for (int64_t it = 0; it < items; it++)
            fwd_chunk(&q, X, Wt, Y, it / nch / q.G, it / nch % q.G, it % nch, col, acc ? 1.0f : 0.0f, e);
        return SAL_OK;
    }
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < items; it++) {
        int64_t i = it / nch;
        fwd_chunk(&q, X, Wt, Y, i / q.G, i % q.G, it % nch, col ? col + omp_get_thread_num() * q.colsz : NULL,
                  acc ? 1.0f : 0.0f, e);
    }
    return SAL_OK;
}

typedef struct {
    const conv_geom *q;
    const float *X, *Wt, *dY;
    float *dX, *dW, *col, *dwt; /* dwt: per-thread dW sums, or NULL */
    int mode;                   /* see conv_bwd_run */
} bwd_args;

/* One thread's part of conv_bwd_run's chunks: called by each thread of a team, or alone outside any
 * parallel region (its worksharing loops then run whole). */
static void bwd_team(const bwd_args *a) {
    const conv_geom *q = a->q;
    const int64_t nch = q->nch, ng = q->N * q->G, wsz = q->M * q->Kc;
    int t = omp_get_thread_num();
    float *cb = a->col ? a->col + t * q->colsz : NULL, *mine = a->dwt ? a->dwt + (int64_t)t * wsz : a->dW;
    if (a->dwt) memset(mine, 0, sizeof(float) * (size_t)wsz);
    if (a->mode == 2) {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < ng; i++)
            for (int64_t k = 0; k < nch; k++) bwd_chunk(q, a->X, a->Wt, a->dY, a->dX, mine, i / q->G, i % q->G, k, cb);
    } else {
        const int64_t step = a->mode == 1 ? 2 : 1;
        for (int64_t ph = 0; ph < step; ph++) {
            const int64_t per = (nch - ph + step - 1) / step; /* chunks of this parity */
#pragma omp for schedule(static)
            for (int64_t it = 0; it < ng * per; it++) {
                int64_t i = it / per;
                bwd_chunk(q, a->X, a->Wt, a->dY, a->dX, mine, i / q->G, i % q->G, it % per * step + ph, cb);
            }
        }
    }
    if (a->dwt) {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < wsz; i++) {
            float s = 0.0f; /* the team may be smaller than nt: only its buffers were zeroed */
            for (int k = 0; k < omp_get_num_threads(); k++) s += a->dwt[(int64_t)k * wsz + i];
            a->dW[i] += s;
        }
    }
}

/* dX += conv^T(dY; W) and dW += the correlation of dY with X; either may be NULL (X is only read
 * for dW). */
static sal_status conv_bwd_run(const sal_node *node, sal_scratch *ws, const conv_geom *qq, const float *X,
                               const float *Wt, const float *dY, float *dX, float *dW) {
    conv_geom q = *qq;
    const sal_win *w = &q.w;
    const int64_t P = w->out_sz, wsz = q.M * q.Kc;
    if (!dX && !dW) return SAL_OK;
    if (q.direct) {
        const int64_t work = q.N * q.M * P * q.Kc;
        (void)work; /* only read by OpenMP */
        if (dX) { /* items (n, g) own disjoint slices of dX */
            SAL_PAR_FOR(
                work > PAR_WORK, "omp parallel for schedule(static)", for (int64_t it = 0; it < q.N * q.G; it++) {
                    int64_t n = it / q.G, g = it % q.G;
                    for (int64_t m = g * q.Mg; m < (g + 1) * q.Mg; m++)
                        direct_bwd(w, NULL, Wt + m * w->k_sz, dY + (n * q.M + m) * P, dX + it * w->in_sz, NULL);
                });
        }
        if (dW) { /* output channels own disjoint rows of dW */
            SAL_PAR_FOR(work > PAR_WORK, "omp parallel for schedule(static)",
                        for (int64_t m = 0; m < q.M; m++) for (int64_t n = 0; n < q.N; n++)
                            direct_bwd(w, X + (n * q.C + m / q.Mg) * w->in_sz, Wt + m * w->k_sz, dY + (n * q.M + m) * P,
                                       NULL, dW + m * w->k_sz););
        }
        return SAL_OK;
    }
    int nt = omp_get_max_threads();
    if (dX && !dW && conv33_fits(&q)) { /* threads over samples, as conv33 */
        const int64_t per = conv33_bwd_scratch(w), work = q.N * q.M * P * q.Kc;
        bool par = nt > 1 && (q.N > 1 ? work > PAR_WORK : q.M >= 2 * nt && work > PAR_WORK / 2);
        const int parts = par && q.N == 1 ? nt : 1;
        float *buf = sal_scratch_get(ws, 0, sizeof(float) * (size_t)(per * (par ? nt : 1)));
        if (!buf) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", node->name, node->op_type);
        /* a lone sample: each thread its share of the channels, which conv33 and the pooling after it
         * wrote on that thread, into a dX of its own, then the sums (a part of the rows of all channels
         * a thread read half of them from the other core: the small CNN's gradient 0.0954 -> 0.0933 ms,
         * most of it in the pooling's backward, whose writes no longer meet the other core's copies) */
        if (parts > 1) {
            const int64_t S = w->in_sz;
            float *part = sal_scratch_get(ws, 1, sizeof(float) * (size_t)(S * (parts - 1)));
            if (!part) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", node->name, node->op_type);
#pragma omp parallel num_threads(parts)
            { /* by the team's size: a nested region may get fewer threads */
                const int t = omp_get_thread_num(), T = omp_get_num_threads();
                const int64_t m0 = q.M * t / T, m1 = q.M * (t + 1) / T;
                float *d = t ? part + (t - 1) * S : dX;
                if (t) memset(d, 0, sizeof *d * (size_t)S);
                conv33_bwd(w, dY + m0 * P, Wt + 9 * m0, m1 - m0, buf + t * per, d);
#pragma omp barrier
                for (int64_t i = S * t / T, e = S * (t + 1) / T; i < e; i++)
                    for (int k = 1; k < T; k++) dX[i] += part[(k - 1) * S + i];
            }
            return SAL_OK;
        }
        SAL_PAR_FOR(par, "omp parallel for schedule(static)",
                    for (int64_t it = 0; it < q.N; it++) conv33_bwd(w, dY + it * q.M * P, Wt, q.M,
                                                                 buf + omp_get_thread_num() * per,
                                                                 dX + it * w->in_sz););
        return SAL_OK;
    }
    conv_chunks(&q, nt, true);
    const int64_t nch = q.nch, ng = q.N * q.G, work = q.N * q.M * P * q.Kc;
    /* How chunks may overlap in dX: not at all (1x1, or no dX): any order; 1-D and 2-D: chunks two
     * apart never share input rows, so even chunks run in parallel, then odd ones; 3-D: the chunks of
     * one (sample, group) run in sequence. */
    int mode = q.one || !dX ? 0 : w->out[0] == 1 ? 1 : 2;
    bool par = nt > 1 && (mode == 2 ? ng : ng * nch) > 1 && work > PAR_WORK;
    float *col = q.colsz ? sal_scratch_get(ws, 0, sizeof(float) * (size_t)q.colsz * (size_t)(par ? nt : 1)) : NULL;
    if (q.colsz && !col) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", node->name, node->op_type);
    /* in parallel, each thread sums its share of dW privately; the sums are added to dW at the end */
    float *dwt = dW && par ? sal_scratch_get(ws, 1, sizeof(float) * (size_t)wsz * (size_t)nt) : NULL;
    if (dW && par && !dwt) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", node->name, node->op_type);
    bwd_args a = {&q, X, Wt, dY, dX, dW, col, dwt, mode};
    if (par) {
#pragma omp parallel
        bwd_team(&a);
    } else { /* outside any parallel region, as conv_fwd_run */
        bwd_team(&a);
    }
    return SAL_OK;
}

/* Y[n, m, :] += B[m] */
static void add_bias(float *Y, const float *B, int64_t N, int64_t M, int64_t P) {
    SAL_PAR_FOR(
        N * M * P > 65536, "omp parallel for schedule(static)", for (int64_t it = 0; it < N * M; it++) {
            float *y = Y + it * P, b = B[it % M];
            for (int64_t i = 0; i < P; i++) y[i] += b;
        });
}

/* dB[m] += sum of dY[n, m, :] */
static void bias_grad(float *dB, const float *dY, int64_t N, int64_t M, int64_t P) {
    SAL_PAR_FOR(
        N * M * P > 65536, "omp parallel for schedule(static)", for (int64_t m = 0; m < M; m++) {
            float acc = 0.0f;
            for (int64_t n = 0; n < N; n++) {
                const float *dy = dY + (n * M + m) * P;
                for (int64_t i = 0; i < P; i++) acc += dy[i];
            }
            dB[m] += acc;
        });
}

/* The shape oneDNN sees. */
static void dnnl_shape(const conv_geom *q, sal_conv_shape *k) {
    const sal_win *w = &q->w;
    memset(k, 0, sizeof *k);
    k->nsp = w->nsp;
    k->N = q->N, k->C = q->C, k->M = q->M, k->G = q->G;
    for (int j = 0; j < 3; j++) {
        k->in[j] = w->in[j], k->out[j] = w->out[j], k->k[j] = w->k[j], k->s[j] = w->s[j], k->d[j] = w->d[j];
        k->pb[j] = w->pb[j], k->pe[j] = w->pe[j];
    }
}

static sal_status conv_forward(sal_opctx *c) {
    conv_geom q;
    SAL_TRY(conv_plan(c, &q));
    const float *B = c->n->nin > 2 && c->in[2] ? sal_in_f(c, 2) : NULL;
    float *Y = sal_out_f(c, 0); // (N, M, P), not zeroed (sal_op.overwrites): sgemm writes it whole
    sal_conv_shape k;
    dnnl_shape(&q, &k);
    if (sal_conv_wino_wanted(c, &k, false)) {
        /* Winograd's kernels take blocked tensors: a plain X (after a layer of our own kernels, in a
         * session of plain layouts) made blocked, Y made plain after them where it is not wanted so
         * (a model output, LRP's sessions: eps-plus on the small CNN 0.16 -> 0.15 ms) */
        const float *X = sal_in_f(c, 0);
        if (!(c->blk_in & 1)) {
            float *xb = sal_scratch_get(c->ws, SL_CONVERT, sizeof(float) * (size_t)sal_tensor_numel(c->in[0]));
            if (!xb) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
            sal_blk_convert(xb, X, c->in[0]->dim, SAL_BLK_FROM_PLAIN);
            X = xb;
        }
        bool blk = c->blk_want & 1;
        float *Yb = blk ? Y : sal_scratch_get(c->ws, SL_WINO_PLAIN, sizeof *Y * (size_t)sal_tensor_numel(c->out[0]));
        if (!Yb) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
        SAL_TRY(sal_conv_wino_forward(c, &k, X, sal_in_f(c, 1), B, Yb, c->relu_want));
        if (!blk) sal_blk_to_plain(Y, Yb, c->out[0]->dim);
        c->blk_out = blk;
        c->relu_done = c->relu_want;
        return SAL_OK;
    }
    if (sal_conv_dnnl_wanted(&k) || (c->blk_in & 1)) {
        bool done, yb, relu = c->relu_want;
        SAL_TRY(sal_conv_dnnl_forward(c, &k, sal_in_f(c, 0), sal_in_f(c, 1), B, Y, &done, &yb, &relu));
        c->blk_out = yb;
        c->relu_done = relu;
        if (done) return SAL_OK;
    }
    if (c->blk_in & 1) return sal_node_fail(c->n, SAL_ERR_INTERNAL, "oneDNN declined a blocked input");
    conv_epi e = {.B = B, .relu = c->relu_want};
    SAL_TRY(conv_fwd_run(c->n, c->ws, &q, sal_in_f(c, 0), sal_in_f(c, 1), Y, false, &e));
    c->relu_done = c->relu_want;
    return SAL_OK;
}

static sal_status conv_backward(sal_opctx *c) {
    conv_geom q;
    SAL_TRY(conv_plan(c, &q));
    if (!c->dout[0]) return SAL_OK;
    const float *dY = sal_f32(c->dout[0]);
    bool bias = c->n->nin > 2 && c->in[2];
    float *dX = c->din[0] ? sal_f32(c->din[0]) : NULL, *dW = c->din[1] ? sal_f32(c->din[1]) : NULL,
          *dB = bias && c->din[2] ? sal_f32(c->din[2]) : NULL;
    sal_conv_shape k;
    dnnl_shape(&q, &k);
    bool fresh = dX && (c->din_fresh & 1);
    bool blk = (c->blk_in | c->blk_out) & 1;
    if (dX && !dW && !dB && sal_conv_wino_wanted(c, &k, true)) { /* plain tensors converted, as forward */
        if (!(c->blk_out & 1)) {
            float *b = sal_scratch_get(c->ws, SL_WINO_PLAIN, sizeof(float) * (size_t)sal_tensor_numel(c->dout[0]));
            if (!b) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
            sal_blk_convert(b, dY, c->dout[0]->dim, SAL_BLK_FROM_PLAIN);
            dY = b;
        }
        if (c->blk_in & 1) return sal_conv_wino_backward(c, &k, sal_in_f(c, 1), dY, dX, fresh);
        float *db = sal_scratch_get(c->ws, SL_CONVERT, sizeof(float) * (size_t)sal_tensor_numel(c->din[0]));
        if (!db) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
        SAL_TRY(sal_conv_wino_backward(c, &k, sal_in_f(c, 1), dY, db, true)); /* then into the plain dX */
        sal_blk_convert(dX, db, c->din[0]->dim, fresh ? SAL_BLK_TO_PLAIN : SAL_BLK_ADD_TO_PLAIN);
        return SAL_OK;
    }
    bool wanted = dW || dB ? sal_conv_dnnl_wanted(&k) : sal_conv_dnnl_wanted_dx(&k);
    if (blk && !wanted && !(c->blk_in & 1)) { /* a stem's output went on blocked (ConvNeXt's, to a
        * Transpose): its dY made plain for our kernel, as oneDNN's backward-data is slow from 3
        * channels (sal_conv_dnnl_wanted_dx): ConvNeXt-T's stem 0.70 -> 0.34 ms an image */
        float *plain = sal_scratch_get(c->ws, SL_CONVERT, sizeof(float) * (size_t)sal_tensor_numel(c->dout[0]));
        if (!plain) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
        sal_blk_to_plain(plain, dY, c->dout[0]->dim);
        dY = plain, blk = false;
    }
    if ((dX || dW || dB) && (wanted || blk)) {
        bool done;
        SAL_TRY(sal_conv_dnnl_backward(c, &k, sal_in_f(c, 0), sal_in_f(c, 1), bias, dY, dX, fresh, dW, dB, &done));
        if (done) return SAL_OK;
    }
    if (blk) return sal_node_fail(c->n, SAL_ERR_INTERNAL, "oneDNN declined blocked tensors");
    if (fresh) memset(dX, 0, sizeof(float) * (size_t)sal_tensor_numel(c->din[0])); /* our kernels add */
    if (dB) bias_grad(dB, dY, q.N, q.M, q.w.out_sz);
    return conv_bwd_run(c->n, c->ws, &q, sal_in_f(c, 0), sal_in_f(c, 1), dY, dX, dW);
}

/* Our Winograd kernels, whose tile fwd_only frees (sal_op.fwd_only_pays) */
static bool conv_fwd_only_pays(sal_opctx *c) {
    conv_geom q;
    sal_conv_shape k;
    if (conv_plan(c, &q) != SAL_OK) return false;
    dnnl_shape(&q, &k);
    return sal_conv_wino_wanted(c, &k, false);
}

/* A blocked input stays so where oneDNN runs the layer both ways in that layout. */
static bool conv_blk_takes(sal_opctx *c) {
    conv_geom q;
    sal_conv_shape k;
    if (conv_plan(c, &q) != SAL_OK) return false;
    dnnl_shape(&q, &k);
    return sal_conv_dnnl_wanted(&k) && sal_conv_dnnl_takes_blocked(c, &k, c->n->nin > 2 && c->in[2]);
}

const sal_op sal_op_Conv = {
    SAL_OP_HEAD(Conv), .traits = SAL_TR_LINEAR | SAL_TR_MULTILINEAR, .lin_in = 0x3, .bias_in = 0x4, .min_in = 2, .max_in = 3, .min_out = 1, .max_out = 1, .param_mask = 0x6,
    .init = conv_init, .infer = conv_infer, .forward = conv_forward, .backward = conv_backward,
    .overwrites = true, .bwd_writes = 0x1, .blk = SAL_BLK_OWN, .blk_takes = conv_blk_takes,
    .fwd_only_pays = conv_fwd_only_pays,
    .bwd_known = true, .bwd_self = 0x2, .bwd_other = 0x3, /* dX reads W; dW and dB read X (and W's pointer) */
};

/* ---- ConvTranspose ---- */

typedef struct {
    sal_win_attr wa;
    int64_t group;
    int nop, nos; /* entries of output_padding and output_shape */
    int64_t opad[3], oshape[3];
} convt_p;

static sal_status convt_init(sal_node *n, const sal_model *g) {
    (void)g;
    convt_p *p = sal_calloc(1, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    n->p = p;
    SAL_TRY(sal_win_parse(n, false, false, &p->wa));
    p->group = sal_attr_int(n, "group", 1);
    if (p->group < 1) return sal_node_fail(n, SAL_ERR_FORMAT, "group must be positive, got %lld", (long long)p->group);
    int k = 0;
    const int64_t *v = sal_attr_ints(n, "output_padding", &k);
    if (v && (k < 1 || k > 3)) return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "output_padding has %d entries", k);
    for (int i = 0; v && i < k; i++) {
        if (v[i] < 0 || v[i] > ((int64_t)1 << 40)) return sal_node_fail(n, SAL_ERR_FORMAT, "output_padding out of range");
        p->opad[i] = v[i];
    }
    p->nop = v ? k : 0;
    v = sal_attr_ints(n, "output_shape", &k);
    if (v && (k < 1 || k > 5)) return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "output_shape has %d entries", k);
    /* the spatial shape; some exporters write the whole (N, C, ...) shape */
    int off = v && k > 3 ? k - (k - 2) : 0;
    for (int i = 0; v && i + off < k; i++) {
        if (v[i + off] < 1 || v[i + off] > ((int64_t)1 << 40)) return sal_node_fail(n, SAL_ERR_FORMAT, "output_shape out of range");
        p->oshape[i] = v[i + off];
    }
    p->nos = v ? k - off : 0;
    return SAL_OK;
}

/* The geometry of the convolution whose adjoint this node is: its input is our output (N, C_out,
 * out...), its output our input (N, C_in, in...). Output sizes as in ONNX: out = s (in - 1) +
 * output_padding + (k - 1) d + 1 - pads, or output_shape, or in * s with SAME_*; in the last two
 * cases the pads follow, split as ONNX specifies: the odd one at the end with SAME_UPPER, else at
 * the start. An output_shape beyond the full size leaves its last positions to the bias. */
static sal_status convt_plan(const sal_opctx *c, conv_geom *q) {
    const convt_p *p = c->n->p;
    const sal_win_attr *a = &p->wa;
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *X = c->in[0];
    char b1[160], b2[160];
    if (X->ndim < 3 || X->ndim > 5)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "input X has shape %s; expected (N, C, L), (N, C, H, W) or "
                             "(N, C, D, H, W)", sal_shape_str(X->ndim, X->dim, b1, sizeof b1));
    SAL_TRY(sal_need_f32(c, 1, X->ndim));
    const sal_tensor *W = c->in[1];
    int nsp = X->ndim - 2;
    memset(q, 0, sizeof *q);
    q->N = X->dim[0], q->M = X->dim[1], q->G = p->group;
    if (W->dim[0] != q->M || q->M % q->G)
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "X %s and W %s do not fit group = %lld",
                             sal_shape_str(X->ndim, X->dim, b1, sizeof b1), sal_shape_str(W->ndim, W->dim, b2, sizeof b2),
                             (long long)q->G);
    q->Cg = W->dim[1], q->C = q->Cg * q->G, q->Mg = q->M / q->G;
    if (c->n->nin > 2 && c->in[2]) {
        SAL_TRY(sal_need_f32(c, 2, 1));
        if (c->in[2]->dim[0] != q->C)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "bias has %lld entries for %lld output channels",
                                 (long long)c->in[2]->dim[0], (long long)q->C);
    }
    if ((a->nsp && a->nsp != nsp) || (p->nop && p->nop != nsp) || (p->nos && p->nos != nsp))
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "attributes describe another number of spatial dimensions than "
                             "the input's %d", nsp);
    sal_win *w = &q->w;
    w->nsp = nsp;
    w->in_sz = w->out_sz = w->k_sz = 1;
    for (int j = 0; j < 3; j++) {
        int i = j - (3 - nsp);
        w->in[j] = w->out[j] = w->k[j] = w->s[j] = w->d[j] = 1;
        w->pb[j] = w->pe[j] = 0;
        if (i < 0) continue;
        int64_t in = X->dim[2 + i], k = W->dim[2 + i], s = a->has_s ? a->s[i] : 1, d = a->has_d ? a->d[i] : 1;
        if (a->has_k && a->k[i] != k)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "kernel_shape[%d] = %lld but the weights have %lld", i,
                                 (long long)a->k[i], (long long)k);
        SAL_TRY(sal_win_check_kernel(c->n, i, k, d)); /* an empty one divided by zero (found by fuzzing) */
        if (in < 1)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "spatial dimension %d of the input is empty", i);
        if (in - 1 > ((int64_t)1 << 40) / s) /* an empty input may declare any length: s (in - 1) stays in int64 */
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "spatial dimension %d: input %lld at stride %lld is too long",
                                 i, (long long)in, (long long)s);
        int64_t full = s * (in - 1) + p->opad[i] + (k - 1) * d + 1, out, pb = 0, pe = 0;
        if (p->nos || a->autopad == SAL_AUTOPAD_SAME_UPPER || a->autopad == SAL_AUTOPAD_SAME_LOWER) {
            out = p->nos ? p->oshape[i] : in * s;
            int64_t tot = full - out > 0 ? full - out : 0;
            pb = a->autopad == SAL_AUTOPAD_SAME_UPPER ? tot / 2 : tot - tot / 2;
            pe = tot - pb;
        } else {
            if (a->autopad == SAL_AUTOPAD_NOTSET && a->has_pads) pb = a->pads[i], pe = a->pads[nsp + i];
            out = full - pb - pe;
        }
        if (out < 1)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "spatial dimension %d would have size %lld", i, (long long)out);
        w->in[j] = out, w->out[j] = in, w->k[j] = k, w->s[j] = s, w->d[j] = d, w->pb[j] = pb, w->pe[j] = pe;
        w->in_sz *= out, w->out_sz *= in, w->k_sz *= k;
    }
    return conv_geom_finish(c->n, q);
}

static sal_status convt_infer(sal_opctx *c) {
    conv_geom q;
    SAL_TRY(convt_plan(c, &q));
    sal_tensor *o = c->out[0];
    o->dtype = SAL_F32;
    o->ndim = c->in[0]->ndim;
    o->dim[0] = q.N;
    o->dim[1] = q.C;
    for (int i = 0; i < q.w.nsp; i++) o->dim[2 + i] = q.w.in[3 - q.w.nsp + i];
    return SAL_OK;
}

/* Y (zeroed) += conv^T(X); the convolution's data input is not read, Y stands in for it */
static sal_status convt_forward(sal_opctx *c) {
    conv_geom q;
    SAL_TRY(convt_plan(c, &q));
    float *Y = sal_out_f(c, 0);
    SAL_TRY(conv_bwd_run(c->n, c->ws, &q, Y, sal_in_f(c, 1), sal_in_f(c, 0), Y, NULL));
    if (c->n->nin > 2 && c->in[2]) add_bias(Y, sal_in_f(c, 2), q.N, q.C, q.w.in_sz);
    return SAL_OK;
}

/* dX += conv(dY); dW += the correlation of X with dY, which is Conv's with the roles exchanged */
static sal_status convt_backward(sal_opctx *c) {
    conv_geom q;
    SAL_TRY(convt_plan(c, &q));
    if (!c->dout[0]) return SAL_OK;
    const float *dY = sal_f32(c->dout[0]), *Wt = sal_in_f(c, 1);
    if (c->n->nin > 2 && c->in[2] && c->din[2]) bias_grad(sal_f32(c->din[2]), dY, q.N, q.C, q.w.in_sz);
    if (c->din[0]) SAL_TRY(conv_fwd_run(c->n, c->ws, &q, dY, Wt, sal_f32(c->din[0]), true, NULL));
    if (c->din[1]) SAL_TRY(conv_bwd_run(c->n, c->ws, &q, dY, Wt, sal_in_f(c, 0), NULL, sal_f32(c->din[1])));
    return SAL_OK;
}

const sal_op sal_op_ConvTranspose = {
    SAL_OP_HEAD(ConvTranspose), .traits = SAL_TR_LINEAR | SAL_TR_MULTILINEAR, .lin_in = 0x3, .bias_in = 0x4, .min_in = 2, .max_in = 3, .min_out = 1, .max_out = 1, .param_mask = 0x6,
    .init = convt_init, .infer = convt_infer, .forward = convt_forward, .backward = convt_backward,
};
