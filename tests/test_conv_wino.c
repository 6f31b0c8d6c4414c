/* Winograd F(2x2, 3x3) and F(4x4, 3x3) (src/ops/conv_wino.c) against the convolution's definition
 * summed in double: the forward with bias and ReLU, set and added, and the input gradient (the
 * adjoint, scattered through the taps), in blocks of 8 and 16, for odd and even sizes (partial tiles at the edges),
 * images smaller than a tile, batches, products by small_gemm and by sgemm, and sizes where the
 * threads take whole chunks of tiles or share each chunk. test_conv_dnnl checks the layers of a
 * session that run through it. */
#include "ops/conv_wino.h"
#include "testutil.h"

typedef struct {
    int64_t N, C, M, H, W;
    bool only8; /* channels in blocks of 8 only */
} wcase;

/* x (N, C, H, W) plain -> blocked copy */
static float *blocked(const float *x, int64_t N, int64_t C, int64_t H, int64_t W) {
    float *b = sal_malloc(sizeof(float) * (size_t)(N * C * H * W));
    sal_blk_convert(b, x, (int64_t[]){N, C, H, W}, SAL_BLK_FROM_PLAIN);
    return b;
}

/* max |got - want| / max |want|, got blocked, want plain */
static double err_blk(const float *got, const double *want, int64_t N, int64_t C, int64_t H, int64_t W) {
    int64_t n = N * C * H * W;
    float *p = sal_malloc(sizeof(float) * (size_t)n);
    sal_blk_convert(p, got, (int64_t[]){N, C, H, W}, SAL_BLK_TO_PLAIN);
    double e = 0, m = 1e-30;
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs(p[i] - want[i])), m = fmax(m, fabs(want[i]));
    sal_free(p);
    return e / m;
}

/* Tile t (blocks of the current width) against the definitions y and dx: the forward with bias, set,
 * added and with the ReLU; the input gradient set and added. y2, dx2: room for the expected values. */
static void check_tile(const wcase *k, int t, const float *x, const float *w, const float *b, const float *dy,
                       const double *y, const double *dx, double *y2, double *dx2, sal_scratch *ws) {
    const int64_t N = k->N, C = k->C, M = k->M, H = k->H, W = k->W, nx = N * C * H * W, ny = N * M * H * W;
    const int64_t nu = (t + 2) * (t + 2) * M * C;
    /* F(4x4)'s transforms hold entries up to 27/8 where F(2x2)'s hold 1: its cases here come within
     * 0.24e-6 to 2.2e-6 of the largest value, F(2x2)'s within 0.4e-6. At Lavin and Gray's points (0,
     * +-1, +-2) they came to 7.9e-6, 31 checks past 4e-6 */
    const double tol = t == 2 ? 2e-6 : 4e-6;
    float *xb = blocked(x, N, C, H, W), *dyb = blocked(dy, N, M, H, W);
    float *U = sal_malloc(sizeof(float) * (size_t)nu), *Ub = sal_malloc(sizeof(float) * (size_t)nu);
    float *yb = sal_malloc(sizeof(float) * (size_t)ny), *dxb = sal_malloc(sizeof(float) * (size_t)nx);
    sal_wino_weights(U, w, M, C, t, false);
    sal_wino_weights(Ub, w, M, C, t, true);
    char what[112];
    snprintf(what, sizeof what, "F(%dx%d): N %lld, %lld -> %lld channels, %lld x %lld, blocks of %d", t, t,
             (long long)N, (long long)C, (long long)M, (long long)H, (long long)W, sal_blk_width());
    CHECK_OK(sal_wino_conv(ws, t, N, C, M, H, W, xb, U, b, false, false, yb));
    double e = err_blk(yb, y, N, M, H, W);
    CHECK(e < tol, "%s: forward error %.2g", what, e);
    /* added to what is there: y + y */
    CHECK_OK(sal_wino_conv(ws, t, N, C, M, H, W, xb, U, b, false, true, yb));
    for (int64_t i = 0; i < ny; i++) y2[i] = 2 * y[i];
    e = err_blk(yb, y2, N, M, H, W);
    CHECK(e < tol, "%s: forward added, error %.2g", what, e);
    /* with the ReLU */
    for (int64_t i = 0; i < ny; i++) y2[i] = y[i] > 0 ? y[i] : 0;
    CHECK_OK(sal_wino_conv(ws, t, N, C, M, H, W, xb, U, b, true, false, yb));
    e = err_blk(yb, y2, N, M, H, W);
    CHECK(e < tol, "%s: forward with ReLU, error %.2g", what, e);
    /* the input gradient, written, then added to x */
    CHECK_OK(sal_wino_conv(ws, t, N, M, C, H, W, dyb, Ub, NULL, false, false, dxb));
    e = err_blk(dxb, dx, N, C, H, W);
    CHECK(e < tol, "%s: input gradient error %.2g", what, e);
    memcpy(dxb, xb, sizeof(float) * (size_t)nx);
    CHECK_OK(sal_wino_conv(ws, t, N, M, C, H, W, dyb, Ub, NULL, false, true, dxb));
    for (int64_t i = 0; i < nx; i++) dx2[i] = dx[i] + x[i];
    e = err_blk(dxb, dx2, N, C, H, W);
    CHECK(e < tol, "%s: input gradient added, error %.2g", what, e);
    sal_free(xb), sal_free(dyb), sal_free(U), sal_free(Ub), sal_free(yb), sal_free(dxb);
}

static void check_case(const wcase *k, sal_rng *r, sal_scratch *ws) {
    const int64_t N = k->N, C = k->C, M = k->M, H = k->H, W = k->W, P = H * W;
    int64_t nx = N * C * P, ny = N * M * P;
    float *x = sal_malloc(sizeof(float) * (size_t)nx), *w = sal_malloc(sizeof(float) * (size_t)(M * C * 9)),
          *b = sal_malloc(sizeof(float) * (size_t)M), *dy = sal_malloc(sizeof(float) * (size_t)ny);
    for (int64_t i = 0; i < nx; i++) x[i] = (float)sal_rng_normal(r);
    for (int64_t i = 0; i < M * C * 9; i++) w[i] = (float)sal_rng_normal(r) * 0.2f;
    for (int64_t i = 0; i < M; i++) b[i] = (float)sal_rng_normal(r);
    for (int64_t i = 0; i < ny; i++) dy[i] = (float)sal_rng_normal(r);
    /* the definitions: y = b + sum over taps of w x (padding 1), dx its adjoint applied to dy */
    double *y = calloc((size_t)ny, sizeof *y), *dx = calloc((size_t)nx, sizeof *dx);
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t v = 0; v < W; v++) {
                    int64_t o = (n * M + m) * P + h * W + v;
                    double s = b[m];
                    for (int64_t c = 0; c < C; c++)
                        for (int i = 0; i < 3; i++)
                            for (int j = 0; j < 3; j++) {
                                int64_t ih = h + i - 1, iw = v + j - 1;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                double wt = w[((m * C + c) * 3 + i) * 3 + j];
                                s += wt * x[(n * C + c) * P + ih * W + iw];
                                dx[(n * C + c) * P + ih * W + iw] += wt * dy[o];
                            }
                    y[o] = s;
                }
    double *y2 = sal_malloc(sizeof(double) * (size_t)ny), *dx2 = sal_malloc(sizeof(double) * (size_t)nx);
    for (int L = 8; L <= 16; L += 8) {
        if (L == 16 && k->only8) continue;
        sal_blk_set_width(L);
        for (int t = 2; t <= 4; t += 2)
            check_tile(k, t, x, w, b, dy, y, dx, y2, dx2, ws);
    }
    sal_blk_set_width(0);
    sal_free(x), sal_free(w), sal_free(b), sal_free(dy), free(y), free(dx), sal_free(y2), sal_free(dx2);
}

/* F(2x2) keeps the ties of flat regions, which max pooling breaks by position: on an input whose
 * channels are each constant, the outputs whose receptive field lies inside come out bit for bit alike
 * (B^T's rows sum to 0 or 2 exactly, so a flat tile's transform is exact zeros but one), as a direct
 * convolution's do. */
static void check_flat(sal_rng *r, sal_scratch *ws) {
    enum { C = 16, M = 16, H = 10, P = H * H };
    float *x = sal_malloc(sizeof(float) * C * P), *w = sal_malloc(sizeof(float) * M * C * 9),
          *U = sal_malloc(sizeof(float) * 16 * M * C), *y = sal_malloc(sizeof(float) * M * P),
          *yp = sal_malloc(sizeof(float) * M * P);
    for (int c = 0; c < C; c++) {
        float v = (float)sal_rng_normal(r);
        for (int i = 0; i < P; i++) x[c * P + i] = v;
    }
    for (int i = 0; i < M * C * 9; i++) w[i] = (float)sal_rng_normal(r) * 0.2f;
    sal_blk_set_width(8);
    float *xb = blocked(x, 1, C, H, H);
    sal_wino_weights(U, w, M, C, 2, false);
    CHECK_OK(sal_wino_conv(ws, 2, 1, C, M, H, H, xb, U, NULL, false, false, y));
    sal_blk_convert(yp, y, (int64_t[]){1, M, H, H}, SAL_BLK_TO_PLAIN);
    int unequal = 0;
    for (int m = 0; m < M; m++)
        for (int h = 1; h < H - 1; h++)
            for (int v = 1; v < H - 1; v++) unequal += yp[m * P + h * H + v] != yp[m * P + H + 1];
    CHECK(unequal == 0, "F(2x2) on a flat input: %d inner outputs differ from their channel's first", unequal);
    sal_blk_set_width(0);
    sal_free(x), sal_free(w), sal_free(U), sal_free(y), sal_free(yp), sal_free(xb);
}

int main(void) {
    sal_rng r;
    sal_rng_seed(&r, 23);
    sal_scratch ws = {0};
    CHECK_OK(sal_blas_init());
    static const wcase cases[] = {
        {1, 16, 32, 7, 9, false},   /* odd sizes: the last row and column of tiles half outside */
        {2, 32, 16, 8, 6, false},   /* a batch */
        {1, 16, 16, 1, 1, false},   /* one pixel: its tile is mostly padding */
        {1, 16, 16, 2, 3, false},   /* smaller than two tiles */
        {1, 32, 32, 16, 16, false}, /* 64 tiles, a chunk for each thread */
        {2, 16, 16, 64, 63, false}, /* 2 048 tiles: chunks of 256 */
        {1, 24, 40, 9, 7, true}, /* 8 columns after the last 16 of small_gemm, both ways */
        /* 11 and 18 tiles: 5 and 3 rows after small_gemm's groups of 6 (on one thread, 5 and none) */
        {1, 16, 16, 1, 21, false},
        {1, 16, 16, 5, 12, false},
        /* products by sgemm (over 4096 channel pairs): one chunk the threads share, 64 tiles ... */
        {1, 64, 80, 16, 16, false},
        {2, 48, 96, 40, 40, false}, /* ... and 800 tiles, chunks taken whole (F(4x4): 200, shared chunks) */
        {1, 64, 72, 92, 92, true},  /* F(4x4): 529 tiles, chunks taken whole */
        {1, 32, 64, 14, 14, true}, /* the small CNN's 32 -> 64 layer: F(4x4) on 16 tiles, 8 a thread */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i], &r, &ws);
    check_flat(&r, &ws);
    /* what it takes: 3x3, stride 1, padding 1 all round, whole blocks of channels */
    sal_conv_shape k = {.nsp = 2, .N = 1, .C = 64, .M = 64, .G = 1, .in = {1, 28, 28}, .out = {1, 28, 28},
                        .k = {1, 3, 3}, .s = {1, 1, 1}, .d = {1, 1, 1}, .pb = {0, 1, 1}, .pe = {0, 1, 1}};
    sal_conv_shape s2 = k, pad0 = k, odd = k, five = k;
    s2.s[2] = 2, s2.out[2] = 14;
    pad0.pb[1] = pad0.pe[1] = 0, pad0.out[1] = 26;
    odd.C = 60;
    five.k[1] = 5, five.pb[1] = five.pe[1] = 2;
    CHECK(sal_conv_wino_fits(&k) && !sal_conv_wino_fits(&s2) && !sal_conv_wino_fits(&pad0) &&
              !sal_conv_wino_fits(&odd) && !sal_conv_wino_fits(&five),
          "the shapes it takes");
    int old = sal_conv_wino_mode(SAL_WINO_OFF);
    CHECK(!sal_conv_wino_wanted(NULL, &k, true), "SAL_WINO=0 takes nothing");
    sal_conv_wino_mode(SAL_WINO_ALL);
    CHECK(sal_conv_wino_wanted(NULL, &k, true) && !sal_conv_wino_wanted(NULL, &s2, true),
          "SAL_WINO=all takes what fits");
    /* the default: in blocks of 8 (no Winograd in oneDNN), from 32 tiles, and from 1M multiply-adds
     * where small_gemm runs the products (up to 4096 channel pairs), else from 16M; in blocks of 16
     * only where AVX-512 runs in 256-bit halves, and there by the tile */
    sal_conv_wino_mode(SAL_WINO_AUTO);
    sal_conv_shape vgg = k, cnn = k, cnn8, wide;
    vgg.C = vgg.M = 512, vgg.in[1] = vgg.in[2] = vgg.out[1] = vgg.out[2] = 14; /* 49 tiles, 205M */
    cnn.C = 32, cnn.in[1] = cnn.in[2] = cnn.out[1] = cnn.out[2] = 14;           /* 49 tiles, 1.6M */
    cnn8 = cnn, cnn8.in[1] = cnn8.in[2] = cnn8.out[1] = cnn8.out[2] = 8;        /* 16 tiles */
    wide = cnn, wide.C = 64, wide.M = 128;                                      /* 49 tiles, 6.4M */
    bool w8[4] = {sal_conv_wino_pays(&vgg, 2, true, 8, false), sal_conv_wino_pays(&cnn, 4, false, 8, false),
                  sal_conv_wino_pays(&cnn8, 4, false, 8, false), sal_conv_wino_pays(&wide, 4, false, 8, false)};
    bool w16 = sal_conv_wino_pays(&vgg, 2, true, 16, false);
    CHECK(w8[0] && w8[1] && !w8[2] && !w8[3] && !w16,
          "the default choice: VGG16's 14 x 14 layer %d, the small CNN's 32 -> 64 at 14 x 14 %d and 8 x 8 %d, "
          "64 -> 128 at 14 x 14 %d (blocks of 8), VGG16's in blocks of 16 %d", w8[0], w8[1], w8[2], w8[3], w16);
    /* in halves: F(4x4) but narrow layers on large planes; F(2x2) where it keeps ties (a forward
     * before max pooling: else oneDNN's direct kernels), or under 128 tiles */
    sal_conv_shape h28 = vgg, v224 = k, v112 = k, r7 = vgg;
    h28.in[1] = h28.in[2] = h28.out[1] = h28.out[2] = 28;                /* 196 tiles of 2 x 2 */
    v224.in[1] = v224.in[2] = v224.out[1] = v224.out[2] = 224;           /* 64 -> 64, 3136 of 4 x 4 */
    v112.M = 128, v112.in[1] = v112.in[2] = v112.out[1] = v112.out[2] = 112; /* 64 -> 128 */
    r7.in[1] = r7.in[2] = r7.out[1] = r7.out[2] = 7;                     /* 16 tiles of 2 x 2 */
    bool h[10] = {sal_conv_wino_pays(&vgg, 2, true, 16, true),   sal_conv_wino_pays(&cnn, 2, true, 16, true),
                  sal_conv_wino_pays(&cnn, 4, false, 16, true),  sal_conv_wino_pays(&h28, 2, false, 16, true),
                  sal_conv_wino_pays(&h28, 4, false, 16, true),  sal_conv_wino_pays(&v224, 2, true, 16, true),
                  sal_conv_wino_pays(&v224, 4, false, 16, true), sal_conv_wino_pays(&v112, 4, false, 16, true),
                  sal_conv_wino_pays(&r7, 2, true, 16, true),    sal_conv_wino_pays(&h28, 2, true, 16, true)};
    CHECK(h[0] && h[1] && h[2] && !h[3] && h[4] && h[5] && !h[6] && h[7] && !h[8] && h[9],
          "AVX-512 in halves: 512 -> 512 at 14 x 14 F(2x2) %d; the small CNN's F(2x2) %d, F(4x4) %d; 512 -> 512 "
          "at 28 x 28 F(2x2) %d, F(4x4) %d; 64 -> 64 at 224 x 224 F(2x2) with ties %d, F(4x4) %d; 64 -> 128 at "
          "112 x 112 F(4x4) %d; 512 -> 512 at 7 x 7 %d; at 28 x 28 F(2x2) with ties %d",
          h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]);
    sal_conv_wino_mode(old);
    /* the tile: by the layer and its use unless SAL_WINO_TILE says, set and read back; other values
     * leave it. By default F(2x2) where the values reach max pooling, else F(4x4) but for wide layers
     * (over 65536 channel pairs) on fewer than 32 tiles */
    const char *te = getenv("SAL_WINO_TILE");
    int t0 = sal_conv_wino_tile(0), t1 = sal_conv_wino_tile(3), t2 = sal_conv_wino_tile(0);
    CHECK(t0 == (te && !strcmp(te, "2") ? 2 : te && !strcmp(te, "4") ? 4 : 0) && t1 == 0 && t2 == 0,
          "the tile: %d %d %d", t0, t1, t2);
    sal_conv_shape v28 = vgg, v4 = vgg, r256 = vgg;
    v28.in[1] = v28.in[2] = v28.out[1] = v28.out[2] = 28; /* 49 tiles of 4 x 4 */
    v4.N = 2;                                             /* 32 */
    r256.C = r256.M = 256;
    int tv = sal_conv_wino_tile_for(&vgg, false), t28 = sal_conv_wino_tile_for(&v28, false),
        tv4 = sal_conv_wino_tile_for(&v4, false), tr = sal_conv_wino_tile_for(&r256, false),
        tc = sal_conv_wino_tile_for(&cnn, false), tpool = sal_conv_wino_tile_for(&cnn, true);
    sal_conv_wino_tile(4);
    int t4pool = sal_conv_wino_tile_for(&cnn, true), t4v = sal_conv_wino_tile_for(&vgg, false);
    sal_conv_wino_tile(2);
    int forced = sal_conv_wino_tile_for(&v28, false);
    CHECK(tv == 2 && t28 == 4 && tv4 == 4 && tr == 4 && tc == 4 && tpool == 2 && t4pool == 4 && t4v == 2 && forced == 2,
          "the tile by the layer: 512 -> 512 at 14 x 14 %d, at 28 x 28 %d, batch 2 %d; 256 -> 256 %d; the small "
          "CNN's %d, before max pooling %d (with 4 set %d); with 4 set VGG16's 14 x 14 %d; with 2 set %d",
          tv, t28, tv4, tr, tc, tpool, t4pool, t4v, forced);
    sal_conv_wino_tile(t0);
    sal_scratch_free(&ws);
    return t_done("test_conv_wino");
}
