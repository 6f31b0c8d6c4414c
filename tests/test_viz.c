/* Images and heatmaps: PNG round trips and files written directly with libpng (16-bit, palette,
 * low bit depths, interlaced, transparency), damaged files, atomic writes; colormap properties;
 * percentile clipping, channel reduction and automatic colormap choice against hand-computed
 * values; rendering (scaling, overlay, colour bar) and grids; allocation failures everywhere. */
#include "testutil.h"
#include "viz/viz.h"
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static unsigned char *slurp(const char *path, size_t *n) {
    unsigned char *d;
    SAL_ASSERT(sal_read_file(path, 1 << 26, &d, n) == SAL_OK);
    return d;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    SAL_ASSERT(fp);
    SAL_ASSERT(fwrite(data, 1, n, fp) == n);
    fclose(fp);
}

/* Any file in t_scratch() whose name contains ".tmp." (a leftover of an aborted atomic write). */
static bool temp_left(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp\\.'", t_scratch());
    return system(cmd) == 0;
}

/* ---- a PNG writer independent of ours: plain libpng, for formats we never write ---- */

typedef struct {
    int w, h, depth, type, interlace;
    const uint8_t *rows; /* packed rows as libpng wants them (16-bit big-endian) */
    size_t rowbytes;
    const png_color *palette;
    int npalette;
    const uint8_t *trans; /* palette alpha, or NULL */
    int ntrans;
} raw_png;

static void write_raw_png(const char *path, const raw_png *r) {
    FILE *fp = fopen(path, "wb");
    SAL_ASSERT(fp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    SAL_ASSERT(png && info);
    if (setjmp(png_jmpbuf(png))) SAL_ASSERT(!"libpng failed in the test writer");
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)r->w, (png_uint_32)r->h, r->depth, r->type, r->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (r->palette) png_set_PLTE(png, info, r->palette, r->npalette);
    if (r->trans) png_set_tRNS(png, info, r->trans, r->ntrans, NULL);
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < r->h; y++) png_write_row(png, r->rows + (size_t)y * r->rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(fp);
}

static float px(const sal_tensor *t, int c, int y, int x) {
    return sal_f32(t)[((int64_t)c * t->dim[1] + y) * t->dim[2] + x];
}

/* ---- PNG I/O ---- */

static void test_png_roundtrip(void) {
    sal_rng r;
    sal_rng_seed(&r, 11);
    const int w = 37, h = 23;
    for (int ch = 1; ch <= 4; ch++) {
        uint8_t *p = malloc((size_t)w * h * ch);
        for (int i = 0; i < w * h * ch; i++) p[i] = (uint8_t)(sal_rng_u64(&r) & 255);
        p[0] = 0, p[1] = 255; /* the extremes */
        char name[32];
        snprintf(name, sizeof name, "rt%d.png", ch);
        CHECK_OK(sal_png_write(t_tmp(name), w, h, ch, p));
        sal_tensor t = {0};
        CHECK_OK(sal_png_read(t_tmp(name), &t));
        int oc = ch >= 3 ? 3 : 1;
        CHECK(t.dtype == SAL_F32 && t.ndim == 3 && t.dim[0] == oc && t.dim[1] == h && t.dim[2] == w,
              "%d-channel PNG reads back as (%d,%d,%d)", ch, oc, h, w);
        int bad = 0;
        for (int y = 0; t.data && y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < oc; c++) {
                    const uint8_t *q = p + ((size_t)y * w + x) * ch;
                    double want = ch == 1 || ch == 3 ? q[c] / 255.0 : q[c] / 255.0 * (q[ch - 1] / 255.0);
                    float got = px(&t, c, y, x);
                    /* without alpha the bytes come back exactly */
                    if ((ch == 1 || ch == 3) ? lrint(got * 255.0) != q[c] : fabs(got - want) > 1e-6) bad++;
                }
        CHECK(bad == 0, "%d-channel round trip: %d samples differ", ch, bad);
        sal_tensor_free(&t);
        free(p);
    }
    /* our files are plain 8-bit PNGs that PIL reads too (checked in test_heatmap.sh); here, the
     * IHDR fields as bytes */
    size_t n;
    unsigned char *d = slurp(t_tmp("rt3.png"), &n);
    CHECK(n > 33 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8) && !memcmp(d + 12, "IHDR", 4) && d[19] == w && d[23] == h &&
              d[24] == 8 && d[25] == 2 && d[28] == 0,
          "IHDR says %dx%d, 8-bit RGB, not interlaced", w, h);
    sal_free(d);
}

static void test_png_formats(void) {
    sal_tensor t = {0};
    /* 16-bit grey: full precision kept */
    const uint16_t g16[6] = {0, 1, 257, 32768, 65534, 65535};
    uint8_t rows16[12];
    for (int i = 0; i < 6; i++) rows16[2 * i] = (uint8_t)(g16[i] >> 8), rows16[2 * i + 1] = (uint8_t)g16[i];
    write_raw_png(t_tmp("g16.png"), &(raw_png){.w = 3, .h = 2, .depth = 16, .type = PNG_COLOR_TYPE_GRAY,
                                             .rows = rows16, .rowbytes = 6});
    CHECK_OK(sal_png_read(t_tmp("g16.png"), &t));
    CHECK(t.ndim == 3 && t.dim[0] == 1 && t.dim[1] == 2 && t.dim[2] == 3, "16-bit grey is (1,2,3)");
    for (int i = 0; t.data && i < 6; i++)
        CHECK(fabs(sal_f32(&t)[i] - g16[i] / 65535.0) < 1e-7, "16-bit sample %d: %.9f, want %.9f", i,
              (double)sal_f32(&t)[i], g16[i] / 65535.0);
    sal_tensor_free(&t);

    /* 16-bit RGBA: alpha composites onto black */
    uint8_t rgba16[16] = {0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0xff, 0xff, /* opaque */
                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0x00}; /* white at alpha 0x8000 */
    write_raw_png(t_tmp("rgba16.png"), &(raw_png){.w = 2, .h = 1, .depth = 16, .type = PNG_COLOR_TYPE_RGB_ALPHA,
                                                .rows = rgba16, .rowbytes = 16});
    CHECK_OK(sal_png_read(t_tmp("rgba16.png"), &t));
    if (t.data) {
        double a = 0x8000 / 65535.0;
        CHECK(t.dim[0] == 3 && fabs(px(&t, 0, 0, 0) - 1) < 1e-7 && fabs(px(&t, 1, 0, 0) - 0x8000 / 65535.0) < 1e-7 &&
                  px(&t, 2, 0, 0) == 0,
              "16-bit RGBA opaque pixel");
        CHECK(fabs(px(&t, 0, 0, 1) - a) < 1e-6 && fabs(px(&t, 2, 0, 1) - a) < 1e-6, "half-transparent white -> %g",
              (double)px(&t, 0, 0, 1));
    }
    sal_tensor_free(&t);

    /* palette, 2 bits per index, one entry half transparent, odd width (packed rows) */
    const png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {10, 200, 30}, {255, 255, 255}};
    const uint8_t trans[4] = {255, 255, 255, 102};
    const int idx[2][5] = {{0, 1, 2, 3, 1}, {3, 2, 1, 0, 2}};
    uint8_t prow[2][2] = {{0}};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 5; x++) prow[y][x / 4] |= (uint8_t)(idx[y][x] << (6 - 2 * (x % 4)));
    write_raw_png(t_tmp("pal.png"), &(raw_png){.w = 5, .h = 2, .depth = 2, .type = PNG_COLOR_TYPE_PALETTE,
                                             .rows = &prow[0][0], .rowbytes = 2, .palette = pal, .npalette = 4,
                                             .trans = trans, .ntrans = 4});
    CHECK_OK(sal_png_read(t_tmp("pal.png"), &t));
    int bad = 0;
    for (int y = 0; t.data && y < 2; y++)
        for (int x = 0; x < 5; x++) {
            const png_color *c = &pal[idx[y][x]];
            double a = trans[idx[y][x]] / 255.0,
                   want[3] = {c->red / 255.0 * a, c->green / 255.0 * a, c->blue / 255.0 * a};
            for (int k = 0; k < 3; k++) bad += fabs(px(&t, k, y, x) - want[k]) > 1e-6;
        }
    CHECK(t.dim[0] == 3 && bad == 0, "palette PNG: %d samples differ", bad);
    sal_tensor_free(&t);

    /* 1-bit grey, and an interlaced (Adam7) RGB image */
    uint8_t bits[2] = {0xA5, 0x80}; /* 1010 0101 1 */
    write_raw_png(t_tmp("g1.png"), &(raw_png){.w = 9, .h = 1, .depth = 1, .type = PNG_COLOR_TYPE_GRAY, .rows = bits,
                                            .rowbytes = 2});
    CHECK_OK(sal_png_read(t_tmp("g1.png"), &t));
    const float want1[9] = {1, 0, 1, 0, 0, 1, 0, 1, 1};
    CHECK(t.data && t.dim[2] == 9 && !memcmp(t.data, want1, sizeof want1), "1-bit grey expands to 0 and 1");
    sal_tensor_free(&t);
    enum { IW = 13, IH = 11 };
    uint8_t rgb[IH][IW * 3];
    for (int y = 0; y < IH; y++)
        for (int x = 0; x < IW * 3; x++) rgb[y][x] = (uint8_t)(y * 31 + x * 7);
    raw_png a7 = {.w = IW, .h = IH, .depth = 8, .type = PNG_COLOR_TYPE_RGB, .interlace = PNG_INTERLACE_ADAM7};
    a7.rows = &rgb[0][0], a7.rowbytes = IW * 3;
    write_raw_png(t_tmp("adam7.png"), &a7);
    CHECK_OK(sal_png_read(t_tmp("adam7.png"), &t));
    bad = 0;
    for (int y = 0; t.data && y < IH; y++)
        for (int x = 0; x < IW; x++)
            for (int c = 0; c < 3; c++) bad += lrint(px(&t, c, y, x) * 255) != rgb[y][x * 3 + c];
    CHECK(t.data && bad == 0, "interlaced PNG: %d samples differ", bad);
    sal_tensor_free(&t);
}

/* Sets the 4 bytes at p to v, big-endian. */
static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void test_png_damaged(void) {
    sal_rng r;
    sal_rng_seed(&r, 3);
    enum { W = 40, H = 30 };
    uint8_t *img = malloc(W * H * 3);
    for (int i = 0; i < W * H * 3; i++) img[i] = (uint8_t)(sal_rng_u64(&r) % 256);
    CHECK_OK(sal_png_write(t_tmp("good.png"), W, H, 3, img));
    free(img);
    size_t n;
    unsigned char *d = slurp(t_tmp("good.png"), &n), *e = malloc(n);
    sal_tensor t = {0};
    /* every truncation fails, and names the file */
    int wrong = 0;
    for (size_t k = 0; k < n; k += k < 64 ? 1 : 37) {
        write_bytes(t_tmp("cut.png"), d, k);
        sal_status st = sal_png_read(t_tmp("cut.png"), &t);
        if (st != SAL_ERR_FORMAT || !strstr(sal_last_error(), "cut.png") || t.data) {
            if (wrong++ < 3) fprintf(stderr, "  cut at %zu: %s: %s\n", k, sal_status_string(st), sal_last_error());
        }
        sal_tensor_free(&t);
    }
    CHECK(wrong == 0, "%d truncated files were not refused as malformed", wrong);
    write_bytes(t_tmp("cut.png"), d, n - 12); /* without IEND */
    CHECK_FAILS(sal_png_read(t_tmp("cut.png"), &t), SAL_ERR_FORMAT, "cut.png");

    /* a flipped bit in the image data (zlib or CRC check) */
    memcpy(e, d, n);
    e[n / 2] ^= 0x10;
    write_bytes(t_tmp("flip.png"), e, n);
    CHECK_FAILS(sal_png_read(t_tmp("flip.png"), &t), SAL_ERR_FORMAT, "flip.png");
    /* bad signature */
    memcpy(e, d, n);
    e[1] = 'Q';
    write_bytes(t_tmp("sig.png"), e, n);
    CHECK_FAILS(sal_png_read(t_tmp("sig.png"), &t), SAL_ERR_FORMAT, "not a PNG");
    write_bytes(t_tmp("empty.png"), d, 0);
    CHECK_FAILS(sal_png_read(t_tmp("empty.png"), &t), SAL_ERR_FORMAT, "empty.png");
    /* forged sizes, with a valid IHDR CRC: over the limit, and more than the file can hold */
    const uint32_t forged[][2] = {{100000, 10}, {8192, 8192}, {4000, 4000}};
    const char *needle[] = {"too large", "too large", "can hold"};
    for (int i = 0; i < 3; i++) {
        memcpy(e, d, n);
        put32(e + 16, forged[i][0]);
        put32(e + 20, forged[i][1]);
        put32(e + 29, (uint32_t)crc32(0, e + 12, 17));
        write_bytes(t_tmp("forged.png"), e, n);
        CHECK_FAILS(sal_png_read(t_tmp("forged.png"), &t), i == 2 ? SAL_ERR_FORMAT : SAL_ERR_UNSUPPORTED, needle[i]);
    }
    /* random damage: any status, but never a crash (run under ASan) */
    int ok = 0;
    for (int i = 0; i < 300; i++) {
        memcpy(e, d, n);
        for (int k = 0; k < 1 + i % 4; k++)
            e[8 + sal_rng_u64(&r) % (n - 8)] ^= (unsigned char)(1 + sal_rng_u64(&r) % 255);
        write_bytes(t_tmp("fuzz.png"), e, n);
        ok += sal_png_read(t_tmp("fuzz.png"), &t) == SAL_OK;
        sal_tensor_free(&t);
    }
    CHECK(ok < 300, "random damage was noticed at least sometimes (%d of 300 read)", ok);
    /* missing file, a folder */
    CHECK_FAILS(sal_png_read(t_tmp("nope.png"), &t), SAL_ERR_IO, "nope.png");
    CHECK_FAILS(sal_png_read(t_scratch(), &t), SAL_ERR_IO, "not a regular file");
    CHECK(t.data == NULL, "failed reads leave nothing allocated");
    free(e);
    sal_free(d);
}

static void test_png_write_errors(void) {
    uint8_t p[12] = {0};
    CHECK_FAILS(sal_png_write(t_tmp("no/such/dir/x.png"), 2, 2, 3, p), SAL_ERR_IO, "x.png");
    CHECK(!file_exists(t_tmp("no/such/dir/x.png")), "no file after a failed write");
    const char *ro = t_tmp("ro");
    mkdir(ro, 0555);
    if (access(ro, W_OK) != 0) { /* root may write anywhere */
        CHECK_FAILS(sal_png_write(t_tmp("ro/x.png"), 2, 2, 3, p), SAL_ERR_IO, "ro/x.png");
        CHECK(!file_exists(t_tmp("ro/x.png")), "no file in a read-only folder");
    }
    CHECK_FAILS(sal_png_write(t_tmp("bad.png"), 2, 2, 5, p), SAL_ERR_ARG, "channels");
    CHECK_FAILS(sal_png_write(t_tmp("bad.png"), 0, 2, 3, p), SAL_ERR_ARG, "bad.png");
    CHECK_FAILS(sal_png_write(t_tmp("bad.png"), 100000, 2, 3, p), SAL_ERR_ARG, "bad.png");
    CHECK(!file_exists(t_tmp("bad.png")), "refused writes leave no file");
    /* a failing heatmap leaves no file either */
    sal_tensor m = {0};
    SAL_ASSERT(sal_tensor_alloc(&m, SAL_F32, 2, (int64_t[]){2, 2}) == SAL_OK);
    sal_f32(&m)[1] = NAN;
    CHECK_FAILS(sal_heatmap_png(t_tmp("nan.png"), &m, NULL, NULL), SAL_ERR_NUMERIC, "non-finite");
    CHECK(!file_exists(t_tmp("nan.png")), "no file for a map with NaN");
    sal_f32(&m)[1] = 1;
    CHECK_FAILS(sal_heatmap_png(t_tmp("no/dir/h.png"), &m, NULL, NULL), SAL_ERR_IO, "h.png");
    CHECK(!temp_left(), "no temporary files left behind");
    sal_tensor_free(&m);
}

/* ---- colormaps ---- */

static void test_colormaps(void) {
    double c[3], d[3];
    viz_cmap_eval(SAL_CMAP_DIVERGING, 0, c);
    CHECK(c[0] == c[1] && c[1] == c[2] && viz_luminance(c) > 0.85, "diverging 0 is a neutral light grey (%g %g %g)",
          c[0], c[1], c[2]);
    uint8_t lut[VIZ_LUT_N][3];
    viz_cmap_lut(SAL_CMAP_DIVERGING, lut);
    const uint8_t *mid = lut[VIZ_LUT_N / 2];
    CHECK(mid[0] == mid[1] && mid[1] == mid[2] && mid[0] > 235, "diverging table centre is neutral (%d %d %d)", mid[0],
          mid[1], mid[2]);
    /* both sides equally strong: same luminance at t and -t, darker with |t| */
    int asym = 0, nonmono = 0, hue = 0;
    double prev = 2;
    for (int i = 0; i <= 100; i++) {
        double t = i / 100.0;
        viz_cmap_eval(SAL_CMAP_DIVERGING, t, c);
        viz_cmap_eval(SAL_CMAP_DIVERGING, -t, d);
        double yc = viz_luminance(c), yd = viz_luminance(d);
        asym += fabs(yc - yd) > 1e-3;
        nonmono += yc >= prev;
        prev = yc;
        if (i > 0) hue += !(c[0] > c[2] && d[2] > d[0]); /* red above zero, blue below */
    }
    CHECK(asym == 0, "diverging luminance is symmetric in t (%d points off)", asym);
    CHECK(nonmono == 0, "diverging luminance falls with |t| (%d points not)", nonmono);
    CHECK(hue == 0, "positive values red, negative blue (%d points not)", hue);
    viz_cmap_eval(SAL_CMAP_DIVERGING, 1, c);
    viz_cmap_eval(SAL_CMAP_DIVERGING, -1, d);
    CHECK(viz_luminance(c) < 0.25 && fabs(viz_luminance(c) - viz_luminance(d)) < 1e-3,
          "extremes are dark and equally so: %g vs %g", viz_luminance(c), viz_luminance(d));
    CHECK(lut[0][2] > lut[0][0] + 60 && lut[VIZ_LUT_N - 1][0] > lut[VIZ_LUT_N - 1][2] + 60, "table ends blue and red");

    /* sequential: luminance strictly increasing, from near black to near white */
    prev = -1;
    nonmono = 0;
    for (int i = 0; i <= 1000; i++) {
        viz_cmap_eval(SAL_CMAP_SEQUENTIAL, i / 1000.0, c);
        double y = viz_luminance(c);
        nonmono += y <= prev;
        prev = y;
    }
    CHECK(nonmono == 0, "sequential luminance increases (%d steps do not)", nonmono);
    viz_cmap_lut(SAL_CMAP_SEQUENTIAL, lut);
    double y0 = 0, y1 = 0;
    prev = -1;
    nonmono = 0;
    for (int i = 0; i < VIZ_LUT_N; i++) {
        double e[3] = {lut[i][0] / 255.0, lut[i][1] / 255.0, lut[i][2] / 255.0};
        double y = viz_luminance(e);
        nonmono += y < prev - 0.002; /* 8-bit rounding may wobble by less than this */
        prev = y > prev ? y : prev;
        if (i == 0) y0 = y;
        y1 = y;
    }
    CHECK(nonmono == 0 && y0 < 0.01 && y1 > 0.85, "sequential table: dark %g to bright %g, monotone (%d off)", y0, y1,
          nonmono);
}

/* ---- maps: reduction, percentiles, automatic choice ---- */

static sal_tensor make(int ndim, const int64_t *dim, const float *v) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_F32, ndim, dim) == SAL_OK);
    memcpy(t.data, v, sizeof(float) * (size_t)sal_tensor_numel(&t));
    return t;
}

static void test_maps(void) {
    /* reduction of a (2,1,2) map */
    sal_tensor m = make(3, (int64_t[]){2, 1, 2}, (float[]){1, -3, 2, 1});
    const float want[3][2] = {{3, -2}, {3, 4}, {2, 3}};
    for (int r = 0; r < 3; r++) {
        float *p;
        int h, w;
        CHECK_OK(viz_reduce("x.png", "map", &m, (sal_reduce)r, &p, &h, &w));
        CHECK(p && h == 1 && w == 2 && p[0] == want[r][0] && p[1] == want[r][1], "reduction %d: %g %g", r,
              p ? (double)p[0] : NAN, p ? (double)p[1] : NAN);
        sal_free(p);
    }
    sal_tensor_free(&m);
    /* (1,C,H,W) is one sample; (2,C,H,W) and 1-D are not */
    int c, h, w;
    sal_tensor t4 = {.dtype = SAL_F32, .ndim = 4, .dim = {1, 3, 5, 7}, .data = (void *)1};
    CHECK(viz_sample_dims("x.png", "map", &t4, &c, &h, &w) == SAL_OK && c == 3 && h == 5 && w == 7, "(1,3,5,7)");
    t4.dim[0] = 2;
    CHECK_FAILS(viz_sample_dims("x.png", "map", &t4, &c, &h, &w), SAL_ERR_SHAPE, "(2,3,5,7)");
    t4.ndim = 1;
    CHECK_FAILS(viz_sample_dims("x.png", "map", &t4, &c, &h, &w), SAL_ERR_SHAPE, "want (H,W)");

    /* percentiles by hand: |v| sorted = 1 1 2 3 4 5 6 9; position p/100 * 7 */
    const float v[8] = {3, -1, 4, -1, 5, -9, 2, 6};
    float s[8];
    const double pct[] = {0, 50, 90, 99.5, 100}, exp[] = {1, 3.5, 6.9, 9 - 3 * 0.035, 9};
    for (int i = 0; i < 5; i++) {
        double got = viz_abs_percentile(v, 8, pct[i], s);
        CHECK(fabs(got - exp[i]) < 1e-9, "percentile %g: %.12g, want %.12g", pct[i], got, exp[i]);
    }
    /* a sparse map falls back to the max, an all-zero one to 1 */
    const float sparse[5] = {0, 0, 0, 0, -5}, zero[3] = {0};
    CHECK(viz_clip_value(sparse, 5, 50, s) == 5, "sparse map clips at its max");
    CHECK(viz_clip_value(zero, 3, 99.5, s) == 1, "zero map clips at 1");

    /* automatic choice: mixed signs diverging; one sign, or a sliver of the other (< 1%), sequential */
    const float pos[4] = {0, 1, 2, 3}, mixed[4] = {1, -1, 2, 0}, sliver[4] = {10, 20, 69.5f, -0.5f};
    CHECK(!viz_is_signed(pos, 4) && viz_is_signed(mixed, 4) && !viz_is_signed(sliver, 4), "signedness rule");
}

/* ---- rendering ---- */

static const uint8_t *at(const viz_canvas *c, int x, int y) { return c->px + ((size_t)y * c->w + x) * 3; }

static bool same(const uint8_t *a, const uint8_t *b) { return a[0] == b[0] && a[1] == b[1] && a[2] == b[2]; }

static void test_render(void) {
    uint8_t div[VIZ_LUT_N][3], seq[VIZ_LUT_N][3];
    viz_cmap_lut(SAL_CMAP_DIVERGING, div);
    viz_cmap_lut(SAL_CMAP_SEQUENTIAL, seq);
    viz_canvas c;
    /* clipping at the 50th percentile (3.5): 5 and -9 saturate, 2 maps to its own entry */
    sal_tensor m = make(2, (int64_t[]){1, 8}, (float[]){3, -1, 4, -1, 5, -9, 2, 0});
    sal_heatmap_opts o = {.clip = 50, .cmap = SAL_CMAP_DIVERGING};
    CHECK_OK(viz_heatmap("r.png", &m, NULL, &o, &c));
    float s[8];
    double clip = viz_abs_percentile(sal_f32(&m), 8, 50, s);
    CHECK(c.w == 8 && c.h == 1, "no scale, no colour bar: 8x1, got %dx%d", c.w, c.h);
    if (c.px) {
        CHECK(same(at(&c, 4, 0), div[VIZ_LUT_N - 1]) && same(at(&c, 5, 0), div[0]), "values beyond the clip saturate");
        CHECK(same(at(&c, 6, 0), div[lrint((2 / clip + 1) * 128)]), "2 -> entry %ld", lrint((2 / clip + 1) * 128));
        CHECK(same(at(&c, 7, 0), div[128]), "0 -> the neutral centre");
    }
    viz_canvas_free(&c);
    /* auto: this map has both signs -> diverging; its absolute value -> sequential, 0 darkest */
    o = (sal_heatmap_opts){.scale = 4};
    CHECK_OK(viz_heatmap("r.png", &m, NULL, &o, &c));
    CHECK(c.w == 32 && c.h == 4 && c.px && same(at(&c, 31, 3), div[128]) && same(at(&c, 28, 0), div[128]),
          "auto picks diverging; scale 4 fills 4x4 blocks");
    viz_canvas_free(&c);
    for (int i = 0; i < 8; i++) sal_f32(&m)[i] = fabsf(sal_f32(&m)[i]);
    CHECK_OK(viz_heatmap("r.png", &m, NULL, &o, &c));
    CHECK(c.px && same(at(&c, 31, 0), seq[0]) && same(at(&c, 20, 2), seq[VIZ_LUT_N - 1]),
          "auto picks sequential for a non-negative map");
    viz_canvas_free(&c);
    /* a colour bar widens the picture, keeps the map and draws the table top to bottom */
    o.colorbar = 1;
    CHECK_OK(viz_heatmap("r.png", &m, NULL, &o, &c));
    if (c.px) {
        int x = 32, bar = -1;
        for (; x < c.w && bar < 0; x++)
            if (!same(at(&c, x, c.h / 2), (const uint8_t[]){255, 255, 255})) bar = x;
        CHECK(c.w > 40 && c.h >= 20 && same(at(&c, 31, 0), seq[0]) && bar > 32, "colour bar right of the map (%dx%d)",
              c.w, c.h);
        if (bar > 0) CHECK(same(at(&c, bar + 2, 1), seq[VIZ_LUT_N - 1]) && same(at(&c, bar + 2, c.h - 2), seq[0]),
                           "bar runs from the top entry to the bottom one");
    }
    viz_canvas_free(&c);
    sal_tensor_free(&m);

    /* overlay: zero shows the grey image unchanged, full strength alpha * colour */
    sal_tensor map = make(2, (int64_t[]){1, 3}, (float[]){0, 1, -1});
    sal_tensor img = make(3, (int64_t[]){3, 1, 3}, (float[]){0.2f, 0.5f, 1, 0.2f, 0.5f, 1, 0.2f, 0.5f, 1});
    o = (sal_heatmap_opts){.overlay = 1, .alpha = 0.5, .clip = 100};
    CHECK_OK(viz_heatmap("o.png", &map, &img, &o, &c));
    if (c.px) {
        CHECK(same(at(&c, 0, 0), (const uint8_t[]){51, 51, 51}), "zero attribution shows the image (%d)",
              at(&c, 0, 0)[0]);
        uint8_t e = (uint8_t)lrint(0.5 * 127.5 + 0.5 * div[VIZ_LUT_N - 1][0]);
        CHECK(at(&c, 1, 0)[0] == e, "full strength blends half and half (%d, want %d)", at(&c, 1, 0)[0], e);
    }
    viz_canvas_free(&c);
    o.overlay = 1;
    CHECK_FAILS(viz_heatmap("o.png", &map, NULL, &o, &c), SAL_ERR_ARG, "needs the input image");
    sal_tensor small = make(2, (int64_t[]){1, 2}, (float[]){0, 1});
    CHECK_FAILS(viz_heatmap("o.png", &map, &small, &o, &c), SAL_ERR_SHAPE, "the image is 2x1 but the map 3x1");
    o = (sal_heatmap_opts){.clip = 101};
    CHECK_FAILS(viz_heatmap("o.png", &map, NULL, &o, &c), SAL_ERR_ARG, "percentile");
    o = (sal_heatmap_opts){.scale = 65};
    CHECK_FAILS(viz_heatmap("o.png", &map, NULL, &o, &c), SAL_ERR_ARG, "scale");
    CHECK(c.px == NULL, "failures leave no canvas");
    sal_tensor_free(&small);
    sal_tensor_free(&map);
    sal_tensor_free(&img);
}

static void test_grid(void) {
    sal_tensor a = make(2, (int64_t[]){2, 3}, (float[]){1, -1, 0.5f, 0, 0, 0});
    sal_tensor b = make(2, (int64_t[]){2, 3}, (float[]){2, -2, 1, 0, 0, 0});
    sal_tensor img = make(2, (int64_t[]){2, 3}, (float[]){0, 1, 0.5f, 0, 0, 0});
    /* rows: (image, a, image, b) twice */
    sal_grid_tile tiles[8] = {{.image = &img}, {.map = &a}, {.image = &img}, {.map = &b},
                              {.image = &img}, {.map = &a}, {.image = &img}, {.map = &b}};
    viz_canvas c;
    sal_grid_opts o = {.gap = 2};
    CHECK_OK(viz_grid("g.png", 2, 4, tiles, &o, &c));
    CHECK(c.w == 2 * 2 + 4 * 3 + 3 * 2 && c.h == 2 * 2 + 2 * 2 + 2, "grid size %dx%d", c.w, c.h);
    /* per-tile scale: a and b (= 2a) look the same; shared per row they do not */
    int x1 = 2 + 1 * 5, x3 = 2 + 3 * 5;
    if (c.px) CHECK(same(at(&c, x1 + 2, 2), at(&c, x3 + 2, 2)), "per-tile clipping: a and 2a look alike");
    if (c.px) CHECK(same(at(&c, 2 + 1, 2), (const uint8_t[]){255, 255, 255}), "image tile shows the image");
    viz_canvas_free(&c);
    o.share = SAL_SHARE_ROW;
    o.heat.clip = 100;
    CHECK_OK(viz_grid("g.png", 2, 4, tiles, &o, &c));
    if (c.px) {
        CHECK(!same(at(&c, x1 + 2, 2), at(&c, x3 + 2, 2)), "shared clipping: 0.5 and 1 differ");
        CHECK(same(at(&c, x1, 2), at(&c, x3 + 2, 2)), "shared clipping: a's 1 looks like b's 1");
    }
    viz_canvas_free(&c);
    /* labels add margins; an empty tile is blank */
    const char *rl[2] = {"gradient", NULL}, *cl[4] = {"input", "f1", "shifted", "f2"};
    o = (sal_grid_opts){.heat.scale = 10, .row_labels = rl, .col_labels = cl};
    tiles[7] = (sal_grid_tile){0};
    CHECK_OK(viz_grid("g.png", 2, 4, tiles, &o, &c));
    int lw = viz_text_width("gradient", 1) + 4 + 2;
    CHECK(c.w == 8 + lw + 4 * 30 + 3 * 4 && c.h == 8 + (5 + 4 + 1) + 2 * 20 + 4, "labelled grid size %dx%d", c.w, c.h);
    viz_canvas_free(&c);
    CHECK_OK(sal_png_grid(t_tmp("grid.png"), 2, 4, tiles, &o));
    CHECK_FAILS(sal_png_grid(t_tmp("grid2.png"), 0, 4, tiles, &o), SAL_ERR_ARG, "grid2.png");
    tiles[1].map = &(sal_tensor){.dtype = SAL_F32, .ndim = 1, .dim = {6}, .data = a.data};
    CHECK_FAILS(sal_png_grid(t_tmp("grid2.png"), 2, 4, tiles, &o), SAL_ERR_SHAPE, "tile (0,1) map");
    CHECK(!file_exists(t_tmp("grid2.png")), "failed grid leaves no file");
    sal_tensor_free(&a);
    sal_tensor_free(&b);
    sal_tensor_free(&img);
}

/* ---- allocation failures: every one is reported, nothing leaks (ASan) ---- */

static void test_alloc_failures(void) {
    uint8_t p[8 * 6 * 3];
    for (size_t i = 0; i < sizeof p; i++) p[i] = (uint8_t)i;
    SAL_ASSERT(sal_png_write(t_tmp("af.png"), 8, 6, 3, p) == SAL_OK);
    sal_tensor m = make(3, (int64_t[]){1, 6, 8}, (float[48]){1, -2, 3});
    sal_tensor img = make(3, (int64_t[]){1, 6, 8}, (float[48]){0.5f});
    sal_grid_tile tiles[2] = {{.image = &img}, {.map = &m, .image = &img}};
    sal_grid_opts go = {.heat = {.overlay = 1, .colorbar = 1, .scale = 2}, .col_labels = (const char *[]){"a", "b"}};
    for (int which = 0; which < 4; which++) {
        long i = 1;
        for (; i < 10000; i++) {
            sal_tensor t = {0};
            sal_alloc_fail_after(i);
            sal_status st = which == 0   ? sal_png_read(t_tmp("af.png"), &t)
                            : which == 1 ? sal_png_write(t_tmp("af2.png"), 8, 6, 3, p)
                            : which == 2 ? sal_heatmap_png(t_tmp("af3.png"), &m, &img, &go.heat)
                                         : sal_png_grid(t_tmp("af4.png"), 1, 2, tiles, &go);
            sal_alloc_fail_after(0);
            sal_tensor_free(&t);
            if (st == SAL_OK) break;
            CHECK(st == SAL_ERR_NOMEM, "case %d: allocation failure %ld reported as %s: %s", which, i,
                  sal_status_string(st), sal_last_error());
        }
        CHECK(i > 2 && i < 10000, "case %d: %ld allocations walked", which, i);
    }
    CHECK(!temp_left(), "no temporary files left behind");
    sal_tensor_free(&m);
    sal_tensor_free(&img);
}

int main(void) {
    t_scratch_make("sal_test_viz");
    test_png_roundtrip();
    test_png_formats();
    test_png_damaged();
    test_png_write_errors();
    test_colormaps();
    test_maps();
    test_render();
    test_grid();
    test_alloc_failures();
    t_scratch_remove();
    return t_done("test_viz");
}
