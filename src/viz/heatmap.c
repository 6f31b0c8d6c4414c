/* Heatmaps of attribution maps and figure grids.
 *
 * A map is reduced to one plane (sum over channels by default), scaled by a clipping value (a
 * percentile of |values|, shared across tiles when asked), looked up in a colormap, optionally
 * blended over the input image and upscaled. See docs/heatmaps.md. */
#include "viz.h"
#include <math.h>

static const uint8_t k_ink[3] = {40, 40, 40}, k_frame[3] = {150, 150, 150};

/* ---- maps ---- */

sal_status viz_sample_dims(const char *path, const char *what, const sal_tensor *t, int *c, int *h, int *w) {
    char shp[200];
    if (!t || t->dtype != SAL_F32 || (sal_tensor_numel(t) > 0 && !t->data))
        return sal_fail(SAL_ERR_ARG, "%s: %s must be a float32 tensor with data", path, what);
    int nd = t->ndim;
    const int64_t *d = t->dim;
    if (nd == 4 && d[0] == 1) d++, nd--;
    int64_t C = 1, H, W;
    if (nd == 2) H = d[0], W = d[1];
    else if (nd == 3) C = d[0], H = d[1], W = d[2];
    else
        return sal_fail(SAL_ERR_SHAPE, "%s: %s has shape %s; want (H,W), (C,H,W) or (1,C,H,W)", path, what,
                        sal_shape_str(t->ndim, t->dim, shp, sizeof shp));
    if (C < 1 || H < 1 || W < 1 || H > VIZ_MAX_SIDE || W > VIZ_MAX_SIDE || C > (1 << 20))
        return sal_fail(SAL_ERR_SHAPE, "%s: %s has shape %s: empty, or over %d pixels a side", path, what,
                        sal_shape_str(t->ndim, t->dim, shp, sizeof shp), VIZ_MAX_SIDE);
    *c = (int)C, *h = (int)H, *w = (int)W;
    return SAL_OK;
}

sal_status viz_reduce(const char *path, const char *what, const sal_tensor *map, sal_reduce r, float **plane,
                      int *h, int *w) {
    int C;
    *plane = NULL;
    SAL_TRY(viz_sample_dims(path, what, map, &C, h, w));
    size_t n = (size_t)*h * (size_t)*w;
    float *p = sal_calloc(n, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory for a %dx%d map", path, *w, *h);
    const float *v = sal_f32(map);
    for (size_t c = 0; c < (size_t)C; c++)
        for (size_t i = 0; i < n; i++) {
            float x = v[c * n + i];
            if (!isfinite(x)) {
                sal_free(p);
                return sal_fail(SAL_ERR_NUMERIC, "%s: %s has a non-finite value (%g) at index %zu", path, what,
                                (double)x, c * n + i);
            }
            if (r == SAL_REDUCE_SUM) p[i] += x;
            else if (r == SAL_REDUCE_ABS_SUM) p[i] += fabsf(x);
            else p[i] = fmaxf(p[i], fabsf(x));
        }
    *plane = p;
    return SAL_OK;
}

double viz_abs_percentile(const float *v, int64_t n, double pct, float *scratch) {
    for (int64_t i = 0; i < n; i++) scratch[i] = fabsf(v[i]);
    return sal_percentile(scratch, n, pct);
}

double viz_clip_value(const float *v, int64_t n, double pct, float *scratch) {
    double c = viz_abs_percentile(v, n, pct, scratch);
    if (c <= 0 && n > 0) c = scratch[n - 1]; /* a sparse map: most values are 0 */
    return c > 0 ? c : 1;
}

bool viz_is_signed(const float *v, int64_t n) {
    double pos = 0, neg = 0;
    for (int64_t i = 0; i < n; i++) {
        if (v[i] > 0) pos += v[i];
        else neg -= v[i];
    }
    return fmin(pos, neg) > 0.01 * (pos + neg);
}

sal_status viz_heat_opts(const char *path, const sal_heatmap_opts *o, sal_heatmap_opts *out) {
    *out = o ? *o : (sal_heatmap_opts){0};
    if ((unsigned)out->cmap > SAL_CMAP_SEQUENTIAL)
        return sal_fail(SAL_ERR_ARG, "%s: unknown colormap %d", path, (int)out->cmap);
    if ((unsigned)out->reduce > SAL_REDUCE_MAX_ABS)
        return sal_fail(SAL_ERR_ARG, "%s: unknown channel reduction %d", path, (int)out->reduce);
    if (out->clip == 0) out->clip = 99.5;
    if (!(out->clip > 0 && out->clip <= 100))
        return sal_fail(SAL_ERR_ARG, "%s: clipping percentile must be in (0, 100], not %g", path, out->clip);
    if (out->scale == 0) out->scale = 1;
    if (out->scale < 1 || out->scale > 64)
        return sal_fail(SAL_ERR_ARG, "%s: scale must be 1 to 64, not %d", path, out->scale);
    if (out->alpha == 0) out->alpha = 0.8;
    if (!(out->alpha > 0 && out->alpha <= 1))
        return sal_fail(SAL_ERR_ARG, "%s: overlay alpha must be in (0, 1], not %g", path, out->alpha);
    return SAL_OK;
}

/* ---- images ---- */

/* An image in [0,1] as 1 (grey) or 3 (RGB) planes: values already in [0,1] are kept, others are
 * stretched from min..max; channel counts other than 1 and 3 are averaged to grey. */
static sal_status image_norm(const char *path, const char *what, const sal_tensor *image, float **out, int *nc,
                             int *h, int *w) {
    int C;
    *out = NULL;
    SAL_TRY(viz_sample_dims(path, what, image, &C, h, w));
    size_t n = (size_t)*h * (size_t)*w;
    *nc = C == 3 ? 3 : 1;
    float *p = sal_calloc(n * (size_t)*nc, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory for a %dx%d image", path, *w, *h);
    const float *v = sal_f32(image);
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n * (size_t)C; i++) {
        if (!isfinite(v[i])) {
            sal_free(p);
            return sal_fail(SAL_ERR_NUMERIC, "%s: %s has a non-finite value at index %zu", path, what, i);
        }
        lo = fminf(lo, v[i]), hi = fmaxf(hi, v[i]);
    }
    for (size_t c = 0; c < (size_t)C; c++)
        for (size_t i = 0; i < n; i++) p[(*nc == 3 ? c : 0) * n + i] += v[c * n + i] / (*nc == 3 ? 1 : (float)C);
    if (lo < 0 || hi > 1) {
        float range = hi > lo ? hi - lo : 1;
        for (size_t i = 0; i < n * (size_t)*nc; i++) p[i] = (p[i] - lo) / range;
    }
    *out = p;
    return SAL_OK;
}

static uint8_t to8(double v) { return (uint8_t)lrint(v < 0 ? 0 : v > 1 ? 255 : v * 255); }

static void fill_block(viz_canvas *c, int x, int y, int k, const uint8_t rgb[3]) {
    for (int yy = y; yy < y + k; yy++)
        for (int xx = x; xx < x + k; xx++) memcpy(c->px + ((size_t)yy * c->w + xx) * 3, rgb, 3);
}

sal_status viz_render_image(const char *path, const char *what, const sal_tensor *image, int scale,
                            viz_canvas *out) {
    float *p;
    int nc, h, w;
    memset(out, 0, sizeof *out);
    SAL_TRY(image_norm(path, what, image, &p, &nc, &h, &w));
    sal_status st = viz_canvas_new(out, w * scale, h * scale, path);
    size_t n = (size_t)h * (size_t)w;
    for (size_t i = 0; st == SAL_OK && i < n; i++) {
        uint8_t rgb[3];
        for (int k = 0; k < 3; k++) rgb[k] = to8(p[(nc == 3 ? (size_t)k : 0) * n + i]);
        fill_block(out, (int)(i % (size_t)w) * scale, (int)(i / (size_t)w) * scale, scale, rgb);
    }
    sal_free(p);
    return st;
}

/* ---- heatmaps ---- */

/* A value label: "+0.012", "-3.4e-05", "0". */
static void label(char *buf, size_t n, const char *sign, double v) { snprintf(buf, n, "%s%.2g", sign, v); }

sal_status viz_render_map(const char *path, const char *what, const float *plane, int h, int w,
                          const sal_tensor *image, sal_cmap cmap, double clip, const sal_heatmap_opts *o,
                          viz_canvas *out) {
    memset(out, 0, sizeof *out);
    SAL_ASSERT(cmap == SAL_CMAP_DIVERGING || cmap == SAL_CMAP_SEQUENTIAL);
    SAL_ASSERT(clip > 0 && o->scale >= 1);
    float *img = NULL;
    if (o->overlay) {
        int nc, ih, iw;
        if (!image) return sal_fail(SAL_ERR_ARG, "%s: %s: overlay needs the input image", path, what);
        SAL_TRY(image_norm(path, what, image, &img, &nc, &ih, &iw));
        if (ih != h || iw != w) {
            sal_free(img);
            return sal_fail(SAL_ERR_SHAPE, "%s: %s: the image is %dx%d but the map %dx%d", path, what, iw, ih, w, h);
        }
        if (nc == 3) /* grey by Rec. 709 luma */
            for (size_t i = 0, n = (size_t)h * w; i < n; i++)
                img[i] = 0.2126f * img[i] + 0.7152f * img[n + i] + 0.0722f * img[2 * n + i];
    }
    const bool div = cmap == SAL_CMAP_DIVERGING;
    const int k = o->scale, mw = w * k, mh = h * k;
    /* colour bar: a framed strip, then labels at its top, bottom (and middle for diverging maps) */
    char top[32] = "", mid[32] = "", bot[32] = "";
    int fs = mh >= 120 ? 2 : 1, gap = 0, bw = 0, tw = 0, H = mh;
    if (o->colorbar) {
        label(top, sizeof top, div ? "+" : "", clip);
        if (div) label(bot, sizeof bot, "-", clip), snprintf(mid, sizeof mid, "0");
        else snprintf(bot, sizeof bot, "0");
        gap = 4 * fs;
        bw = mw / 14 > 6 * fs ? mw / 14 : 6 * fs;
        tw = viz_text_width(top, fs) > viz_text_width(bot, fs) ? viz_text_width(top, fs) : viz_text_width(bot, fs);
        if (H < 4 * VIZ_TEXT_H * fs) H = 4 * VIZ_TEXT_H * fs;
    }
    int W = mw + (o->colorbar ? gap + bw + 2 * fs + tw : 0);
    sal_status st = viz_canvas_new(out, W, H, path);
    if (st != SAL_OK) {
        sal_free(img);
        return st;
    }
    uint8_t lut[VIZ_LUT_N][3];
    viz_cmap_lut(cmap, lut);
    const double half = (VIZ_LUT_N - 1) / 2.0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double u = plane[(size_t)y * w + x] / clip, m;
            int idx;
            if (div) {
                u = u < -1 ? -1 : u > 1 ? 1 : u;
                idx = (int)lrint((u + 1) * half), m = fabs(u);
            } else {
                u = fabs(u) > 1 ? 1 : fabs(u);
                idx = (int)lrint(u * (VIZ_LUT_N - 1)), m = u;
            }
            uint8_t rgb[3];
            memcpy(rgb, lut[idx], 3);
            if (img) { /* stronger values cover more of the image; zero shows it unchanged */
                double a = o->alpha * m, g = img[(size_t)y * w + x] * 255.0;
                for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)lrint((1 - a) * g + a * rgb[c]);
            }
            fill_block(out, x * k, y * k, k, rgb);
        }
    if (o->colorbar) {
        int x0 = mw + gap;
        viz_fill(out, x0, 0, bw, H, k_frame);
        for (int y = 1; y < H - 1; y++) { /* top = +clip, bottom = -clip (or 0) */
            double u = 1 - (double)(y - 1) / (H - 3 > 0 ? H - 3 : 1);
            viz_fill(out, x0 + 1, y, bw - 2, 1, lut[lrint(u * (VIZ_LUT_N - 1))]);
        }
        int tx = x0 + bw + 2 * fs, th = VIZ_TEXT_H * fs;
        viz_text(out, tx, 0, fs, top, k_ink);
        viz_text(out, tx, H - th, fs, bot, k_ink);
        if (*mid) viz_text(out, tx, (H - th) / 2, fs, mid, k_ink);
    }
    sal_free(img);
    return SAL_OK;
}

sal_status viz_heatmap(const char *path, const sal_tensor *map, const sal_tensor *image, const sal_heatmap_opts *oin,
                       viz_canvas *out) {
    sal_heatmap_opts o;
    float *plane = NULL, *scratch = NULL;
    int h, w;
    memset(out, 0, sizeof *out);
    SAL_TRY(viz_heat_opts(path, oin, &o));
    SAL_TRY(viz_reduce(path, "map", map, o.reduce, &plane, &h, &w));
    size_t n = (size_t)h * (size_t)w;
    sal_status st = SAL_OK;
    if (!(scratch = sal_malloc(n * sizeof *scratch))) st = sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path);
    if (st == SAL_OK) {
        sal_cmap cm = o.cmap != SAL_CMAP_AUTO            ? o.cmap
                      : viz_is_signed(plane, (int64_t)n) ? SAL_CMAP_DIVERGING
                                                         : SAL_CMAP_SEQUENTIAL;
        double clip = viz_clip_value(plane, (int64_t)n, o.clip, scratch);
        st = viz_render_map(path, "map", plane, h, w, image, cm, clip, &o, out);
    }
    sal_free(scratch);
    sal_free(plane);
    return st;
}

sal_status sal_heatmap_png(const char *path, const sal_tensor *map, const sal_tensor *image,
                           const sal_heatmap_opts *o) {
    if (!path || !map) return sal_fail(SAL_ERR_ARG, "sal_heatmap_png: NULL argument");
    viz_canvas c;
    SAL_TRY(viz_heatmap(path, map, image, o, &c));
    sal_status st = sal_png_write(path, c.w, c.h, 3, c.px);
    viz_canvas_free(&c);
    return st;
}

/* ---- grids ---- */

#define GRID_MAX_TILES 4096
#define LABEL_MAX_CHARS 48

typedef struct {
    float *plane;
    int h, w;
    viz_canvas c;
    bool scaled; /* cmap and clip hold the scale of group number (this cell's index) */
    sal_cmap cmap;
    double clip;
} grid_cell;

static int group_of(sal_share s, int i, int cols) {
    return s == SAL_SHARE_ROW ? i / cols : s == SAL_SHARE_COL ? i % cols : s == SAL_SHARE_ALL ? 0 : i;
}

/* Colormap and clipping value of the group holding tile i, from all its map tiles together. */
static sal_status group_scale(const char *path, const grid_cell *cells, int n, int cols, sal_share share, int i,
                              const sal_heatmap_opts *o, sal_cmap *cm, double *clip) {
    int g = group_of(share, i, cols);
    size_t total = 0;
    for (int j = 0; j < n; j++)
        if (cells[j].plane && group_of(share, j, cols) == g) total += (size_t)cells[j].h * cells[j].w;
    float *all = sal_malloc(total * sizeof *all);
    if (!all) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path);
    size_t off = 0;
    for (int j = 0; j < n; j++)
        if (cells[j].plane && group_of(share, j, cols) == g) {
            size_t m = (size_t)cells[j].h * cells[j].w;
            memcpy(all + off, cells[j].plane, m * sizeof *all);
            off += m;
        }
    *cm = o->cmap != SAL_CMAP_AUTO ? o->cmap
          : viz_is_signed(all, (int64_t)total) ? SAL_CMAP_DIVERGING
                                               : SAL_CMAP_SEQUENTIAL;
    *clip = viz_clip_value(all, (int64_t)total, o->clip, all);
    sal_free(all);
    return SAL_OK;
}

/* s cut to at most max characters, into buf. */
static const char *fit(char *buf, size_t n, const char *s, int max) {
    snprintf(buf, n, "%.*s", max < 0 ? 0 : max, s);
    return buf;
}

sal_status viz_grid(const char *path, int rows, int cols, const sal_grid_tile *tiles, const sal_grid_opts *oin,
                    viz_canvas *out) {
    memset(out, 0, sizeof *out);
    if (rows < 1 || cols < 1 || (int64_t)rows * cols > GRID_MAX_TILES)
        return sal_fail(SAL_ERR_ARG, "%s: a grid of %dx%d tiles is outside 1..%d tiles", path, rows, cols,
                        GRID_MAX_TILES);
    if (!tiles) return sal_fail(SAL_ERR_ARG, "%s: grid without tiles", path);
    sal_grid_opts o = oin ? *oin : (sal_grid_opts){0};
    if ((unsigned)o.share > SAL_SHARE_ALL)
        return sal_fail(SAL_ERR_ARG, "%s: unknown sharing mode %d", path, (int)o.share);
    SAL_TRY(viz_heat_opts(path, &o.heat, &o.heat));
    int gap = o.gap == 0 ? 4 : o.gap < 0 ? 0 : o.gap, n = rows * cols;
    if (gap > 256) return sal_fail(SAL_ERR_ARG, "%s: grid gap %d is over 256 pixels", path, gap);
    grid_cell *cells = sal_calloc((size_t)n, sizeof *cells);
    if (!cells) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path);
    sal_status st = SAL_OK;
    char what[64];
    for (int i = 0; st == SAL_OK && i < n; i++)
        if (tiles[i].map) {
            snprintf(what, sizeof what, "tile (%d,%d) map", i / cols, i % cols);
            st = viz_reduce(path, what, tiles[i].map, o.heat.reduce, &cells[i].plane, &cells[i].h, &cells[i].w);
        }
    int cw = 1, ch = 1;
    for (int i = 0; st == SAL_OK && i < n; i++) {
        snprintf(what, sizeof what, "tile (%d,%d) %s", i / cols, i % cols, tiles[i].map ? "map" : "image");
        if (cells[i].plane) {
            grid_cell *g = &cells[group_of(o.share, i, cols)]; /* the group's scale lives in its first cell */
            if (!g->scaled) st = group_scale(path, cells, n, cols, o.share, i, &o.heat, &g->cmap, &g->clip);
            g->scaled = st == SAL_OK;
            if (st == SAL_OK)
                st = viz_render_map(path, what, cells[i].plane, cells[i].h, cells[i].w, tiles[i].image, g->cmap,
                                    g->clip, &o.heat, &cells[i].c);
        } else if (tiles[i].image) {
            st = viz_render_image(path, what, tiles[i].image, o.heat.scale, &cells[i].c);
        }
        if (cells[i].c.w > cw) cw = cells[i].c.w;
        if (cells[i].c.h > ch) ch = cells[i].c.h;
    }
    /* labels: font size follows the tile height */
    int fs = ch >= 100 ? 2 : 1, th = VIZ_TEXT_H * fs, left = 0, top = 0, adv = 4 * fs;
    char buf[LABEL_MAX_CHARS + 1];
    if (o.row_labels)
        for (int r = 0; r < rows; r++)
            if (o.row_labels[r]) {
                int lw = viz_text_width(fit(buf, sizeof buf, o.row_labels[r], LABEL_MAX_CHARS), fs) + gap + 2 * fs;
                left = lw > left ? lw : left;
            }
    if (o.col_labels) top = th + gap + fs;
    int64_t W = (int64_t)gap * 2 + left + (int64_t)cols * cw + (int64_t)(cols - 1) * gap,
            H = (int64_t)gap * 2 + top + (int64_t)rows * ch + (int64_t)(rows - 1) * gap;
    if (st == SAL_OK && (W > VIZ_MAX_SIDE || H > VIZ_MAX_SIDE))
        st = sal_fail(SAL_ERR_ARG, "%s: the grid would be %lldx%lld pixels, over %d a side", path, (long long)W,
                      (long long)H, VIZ_MAX_SIDE);
    if (st == SAL_OK) st = viz_canvas_new(out, (int)W, (int)H, path);
    for (int i = 0; st == SAL_OK && i < n; i++) {
        int r = i / cols, c = i % cols;
        int x = gap + left + c * (cw + gap), y = gap + top + r * (ch + gap);
        if (cells[i].c.px) viz_blit(out, x + (cw - cells[i].c.w) / 2, y + (ch - cells[i].c.h) / 2, &cells[i].c);
        if (r == 0 && o.col_labels && o.col_labels[c]) {
            fit(buf, sizeof buf, o.col_labels[c], (cw + gap + fs) / adv);
            viz_text(out, x + (cw - viz_text_width(buf, fs)) / 2, gap, fs, buf, k_ink);
        }
        if (c == 0 && o.row_labels && o.row_labels[r])
            viz_text(out, gap, y + (ch - th) / 2, fs, fit(buf, sizeof buf, o.row_labels[r], LABEL_MAX_CHARS), k_ink);
    }
    for (int i = 0; i < n; i++) {
        sal_free(cells[i].plane);
        viz_canvas_free(&cells[i].c);
    }
    sal_free(cells);
    if (st != SAL_OK) viz_canvas_free(out);
    return st;
}

sal_status sal_png_grid(const char *path, int rows, int cols, const sal_grid_tile *tiles, const sal_grid_opts *o) {
    if (!path) return sal_fail(SAL_ERR_ARG, "sal_png_grid: NULL path");
    viz_canvas c;
    SAL_TRY(viz_grid(path, rows, cols, tiles, o, &c));
    sal_status st = sal_png_write(path, c.w, c.h, 3, c.px);
    viz_canvas_free(&c);
    return st;
}
