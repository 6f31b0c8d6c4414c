/* PNG files through libpng.
 *
 * libpng reports errors by longjmp. Each public function keeps its resources in a context struct
 * owned by the caller, and one inner function calls setjmp and does all libpng work through a
 * pointer to that struct; after a longjmp the inner function only returns, and the outer one frees
 * what the struct holds. So no local that changes after setjmp is read after the jump. libpng's own
 * allocations go through sal_malloc, so memory budgets and failure injection cover it too. */
#include "viz.h"
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <sys/stat.h>

typedef struct {
    const char *path;
    png_structp png;
    png_infop info;
    char msg[200]; /* libpng's error message */
    bool oom;      /* an allocation failed inside libpng */
    FILE *fp;      /* reading */
    sal_outfile out;
    uint8_t *rows;  /* decoded image, reading */
    png_bytep *rowp;
} png_ctx;

static void on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static png_voidp on_malloc(png_structp png, png_alloc_size_t n) {
    void *p = sal_malloc(n);
    if (!p) ((png_ctx *)png_get_mem_ptr(png))->oom = true;
    return p;
}

static void on_free(png_structp png, png_voidp p) { (void)png, sal_free(p); }

/* The status for a libpng failure. */
static sal_status png_failure(png_ctx *c, bool writing) {
    if (c->oom) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory %s PNG", c->path, writing ? "writing" : "reading");
    if (writing)
        return sal_fail(SAL_ERR_IO, "%s: writing PNG failed: %s (%s)", c->path, c->msg,
                        errno ? strerror(errno) : "libpng");
    return sal_fail(SAL_ERR_FORMAT, "%s: truncated or corrupt PNG (libpng: %s)", c->path, c->msg);
}

/* ---- writing ---- */

static sal_status write_inner(png_ctx *c, int w, int h, int channels, const uint8_t *pixels) {
    static const int types[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                PNG_COLOR_TYPE_RGB_ALPHA};
    if (setjmp(png_jmpbuf(c->png))) return png_failure(c, true);
    png_init_io(c->png, c->out.fp);
    png_set_IHDR(c->png, c->info, (png_uint_32)w, (png_uint_32)h, 8, types[channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(c->png, c->info);
    size_t stride = (size_t)w * (size_t)channels;
    for (int y = 0; y < h; y++) png_write_row(c->png, pixels + (size_t)y * stride);
    png_write_end(c->png, NULL);
    return SAL_OK;
}

sal_status sal_png_write(const char *path, int w, int h, int channels, const uint8_t *pixels) {
    if (!path || !pixels) return sal_fail(SAL_ERR_ARG, "sal_png_write: NULL argument");
    if (channels < 1 || channels > 4)
        return sal_fail(SAL_ERR_ARG, "%s: PNG channels must be 1 to 4, not %d", path, channels);
    if (w < 1 || h < 1 || w > VIZ_MAX_SIDE || h > VIZ_MAX_SIDE || (int64_t)w * h > VIZ_MAX_PIXELS)
        return sal_fail(SAL_ERR_ARG, "%s: PNG size %dx%d is outside 1..%d per side and %d pixels", path, w, h,
                        VIZ_MAX_SIDE, VIZ_MAX_PIXELS);
    png_ctx c = {.path = path};
    c.png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning, &c, on_malloc, on_free);
    if (c.png) c.info = png_create_info_struct(c.png);
    if (!c.png || !c.info) {
        png_destroy_write_struct(c.png ? &c.png : NULL, NULL);
        return sal_fail(SAL_ERR_NOMEM, "%s: out of memory creating PNG writer", path);
    }
    sal_status st = sal_outfile_open(&c.out, path);
    if (st == SAL_OK) {
        errno = 0;
        st = write_inner(&c, w, h, channels, pixels);
        if (st == SAL_OK) st = sal_outfile_commit(&c.out);
        else sal_outfile_abort(&c.out);
    }
    png_destroy_write_struct(&c.png, &c.info);
    return st;
}

/* ---- reading ---- */

/* Deflate never compresses better than about 1032:1, so a file of n bytes holds at most that many
 * times n bytes of (filtered) image data; 1100 leaves room. */
#define DEFLATE_MAX_RATIO 1100

static sal_status read_inner(png_ctx *c, off_t file_size, sal_tensor *out) {
    if (setjmp(png_jmpbuf(c->png))) return png_failure(c, false);
    png_init_io(c->png, c->fp);
    png_set_sig_bytes(c->png, 8);
    png_read_info(c->png, c->info);
    png_uint_32 w = png_get_image_width(c->png, c->info), h = png_get_image_height(c->png, c->info);
    int type = png_get_color_type(c->png, c->info), depth = png_get_bit_depth(c->png, c->info);
    if (w > VIZ_MAX_SIDE || h > VIZ_MAX_SIDE || (uint64_t)w * h > VIZ_MAX_PIXELS)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: PNG of %ux%u pixels is too large (at most %d a side and %d pixels)",
                        c->path, (unsigned)w, (unsigned)h, VIZ_MAX_SIDE, VIZ_MAX_PIXELS);
    /* bytes of filtered data in the file's own format, before any expansion */
    uint64_t raw = (uint64_t)h * (((uint64_t)w * png_get_channels(c->png, c->info) * (uint64_t)depth + 7) / 8 + 1);
    if (raw > (uint64_t)file_size * DEFLATE_MAX_RATIO)
        return sal_fail(SAL_ERR_FORMAT, "%s: PNG header announces %ux%u pixels, more than a %lld-byte file can hold",
                        c->path, (unsigned)w, (unsigned)h, (long long)file_size);

    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
    if (png_get_valid(c->png, c->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(c->png);
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    int ch = png_get_channels(c->png, c->info), bytes = png_get_bit_depth(c->png, c->info) / 8;
    size_t rowbytes = png_get_rowbytes(c->png, c->info);
    if (ch < 1 || ch > 4 || bytes < 1 || bytes > 2 || rowbytes != (size_t)w * (size_t)ch * (size_t)bytes)
        return sal_fail(SAL_ERR_INTERNAL, "%s: unexpected PNG layout after conversion (%d channels, %d bytes)",
                        c->path, ch, bytes);

    c->rows = sal_malloc(rowbytes * h);
    c->rowp = sal_malloc(sizeof *c->rowp * h);
    int64_t dim[3] = {ch >= 3 ? 3 : 1, h, w};
    sal_status st = c->rows && c->rowp ? sal_tensor_alloc(out, SAL_F32, 3, dim) : SAL_ERR_NOMEM;
    if (st != SAL_OK)
        return sal_fail(SAL_ERR_NOMEM, "%s: out of memory for a %ux%u PNG", c->path, (unsigned)w, (unsigned)h);
    for (png_uint_32 y = 0; y < h; y++) c->rowp[y] = c->rows + y * rowbytes;
    png_read_image(c->png, c->rowp);
    png_read_end(c->png, NULL); /* checks the rest of the file (CRCs, IEND) */

    /* samples to [0,1]; 16-bit samples are big-endian; alpha multiplies (composite onto black) */
    const double maxv = bytes == 2 ? 65535.0 : 255.0;
    const int color = ch >= 3 ? 3 : 1, has_alpha = ch == 2 || ch == 4;
    float *o = sal_f32(out);
    size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane; i++) {
        const uint8_t *p = c->rows + i * (size_t)ch * (size_t)bytes;
        double s[4];
        for (int k = 0; k < ch; k++)
            s[k] = (bytes == 2 ? (double)(p[2 * k] << 8 | p[2 * k + 1]) : (double)p[k]) / maxv;
        double a = has_alpha ? s[ch - 1] : 1.0;
        for (int k = 0; k < color; k++) o[(size_t)k * plane + i] = (float)(s[k] * a);
    }
    return SAL_OK;
}

sal_status sal_png_read(const char *path, sal_tensor *out) {
    if (!path || !out) return sal_fail(SAL_ERR_ARG, "sal_png_read: NULL argument");
    memset(out, 0, sizeof *out);
    png_ctx c = {.path = path};
    c.fp = fopen(path, "rb");
    if (!c.fp) return sal_fail(SAL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    unsigned char sig[8];
    sal_status st = SAL_OK;
    if (fstat(fileno(c.fp), &sb) != 0) st = sal_fail(SAL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode)) st = sal_fail(SAL_ERR_IO, "%s: not a regular file", path);
    else if (fread(sig, 1, 8, c.fp) != 8 || png_sig_cmp(sig, 0, 8))
        st = sal_fail(SAL_ERR_FORMAT, "%s: not a PNG file (bad signature)", path);
    if (st == SAL_OK) {
        c.png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning, &c, on_malloc, on_free);
        if (c.png) c.info = png_create_info_struct(c.png);
        if (!c.png || !c.info) st = sal_fail(SAL_ERR_NOMEM, "%s: out of memory creating PNG reader", path);
    }
    sal_tensor t = {0};
    if (st == SAL_OK) st = read_inner(&c, sb.st_size, &t);
    if (c.png) png_destroy_read_struct(&c.png, c.info ? &c.info : NULL, NULL);
    sal_free(c.rows);
    sal_free(c.rowp);
    fclose(c.fp);
    if (st != SAL_OK) {
        sal_tensor_free(&t);
        return st;
    }
    *out = t;
    return SAL_OK;
}
