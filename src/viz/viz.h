/* Internal visualisation: colormaps, RGB canvases, a tiny font, map reduction and rendering.
 * The public entry points (sal_png_*, sal_heatmap_png) are thin wrappers over these. */
#ifndef SAL_VIZ_H
#define SAL_VIZ_H

#include "io/io.h"

/* Limits on what we draw or read: per side, and in total pixels. */
#define VIZ_MAX_SIDE 8192
#define VIZ_MAX_PIXELS (1 << 24)

/* ---- colormaps (colormap.c) ---- */

/* Entries of a lookup table: odd, so the diverging map has an exact centre (index VIZ_LUT_N / 2). */
#define VIZ_LUT_N 257

/* Colour of a colormap in sRGB [0,1]: diverging takes t in [-1,1], sequential t in [0,1]. */
void viz_cmap_eval(sal_cmap kind, double t, double rgb[3]);
/* 8-bit table: entry i is t = i / (N-1) (sequential) or 2 i / (N-1) - 1 (diverging). */
void viz_cmap_lut(sal_cmap kind, uint8_t lut[VIZ_LUT_N][3]);
/* Relative luminance Y of an sRGB colour in [0,1]. */
double viz_luminance(const double rgb[3]);

/* ---- canvases and text (canvas.c) ---- */

typedef struct {
    int w, h;
    uint8_t *px; /* (h, w, 3) RGB */
} viz_canvas;

/* A white canvas; path names the output in messages. */
sal_status viz_canvas_new(viz_canvas *c, int w, int h, const char *path);
void viz_canvas_free(viz_canvas *c);
/* Copies src with its top-left corner at (x, y); clipped to dst. */
void viz_blit(viz_canvas *dst, int x, int y, const viz_canvas *src);
void viz_fill(viz_canvas *c, int x, int y, int w, int h, const uint8_t rgb[3]);
/* Text in the built-in 3x5 font, each font pixel drawn as size x size; clipped to the canvas.
 * Lower-case letters are drawn as capitals, unknown characters as '?'. */
void viz_text(viz_canvas *c, int x, int y, int size, const char *s, const uint8_t rgb[3]);
int viz_text_width(const char *s, int size); /* in pixels, without trailing spacing */
#define VIZ_TEXT_H 5                         /* font height in font pixels */

/* ---- maps (heatmap.c) ---- */

/* Channels, height and width of one sample: (H,W), (C,H,W) or (1,C,H,W). */
sal_status viz_sample_dims(const char *path, const char *what, const sal_tensor *t, int *c, int *h, int *w);
/* Reduces a map to one plane of h*w values (sal_free it); fails on non-finite values. */
sal_status viz_reduce(const char *path, const char *what, const sal_tensor *map, sal_reduce r, float **plane,
                      int *h, int *w);
/* Percentile pct (0..100) of |v| with linear interpolation between order statistics (numpy's default).
 * Sorts scratch (n entries, may be v itself) after copying |v| into it. */
double viz_abs_percentile(const float *v, int64_t n, double pct, float *scratch);
/* True if both signs carry more than 1% of the total |mass|. */
bool viz_is_signed(const float *v, int64_t n);

/* Options with defaults applied, checked. */
sal_status viz_heat_opts(const char *path, const sal_heatmap_opts *o, sal_heatmap_opts *out);

/* Renders a heatmap tile (with its colour bar when asked) into a new canvas. cmap must be decided
 * (not AUTO) and clip > 0; image is needed when o->overlay. */
sal_status viz_render_map(const char *path, const char *what, const float *plane, int h, int w,
                          const sal_tensor *image, sal_cmap cmap, double clip, const sal_heatmap_opts *o,
                          viz_canvas *out);
/* Renders an input image (1 or 3 channels shown as grey or RGB; others averaged). */
sal_status viz_render_image(const char *path, const char *what, const sal_tensor *image, int scale,
                            viz_canvas *out);
/* Clipping value of a plane: the percentile of |v|, else max |v| when that is 0, else 1. */
double viz_clip_value(const float *v, int64_t n, double pct, float *scratch);
/* The whole heatmap picture, as sal_heatmap_png writes it. */
sal_status viz_heatmap(const char *path, const sal_tensor *map, const sal_tensor *image,
                       const sal_heatmap_opts *o, viz_canvas *out);
/* Sequence logos (logo.c): the largest stack of one track (4, L) or (L, 4) (axis 1 or 2) above or
 * below its axis, and the track drawn into an SVG being built, in the box (x0, y0, w, h), letters
 * scaled so that `extent` fills half the height. */
double sal_logo_extent(const float *map, int axis, int64_t L);
void sal_logo_draw(sal_sbuf *sb, const float *map, int axis, int64_t L, double x0, double y0, double w, double h,
                   double extent);
/* The whole grid picture, as sal_png_grid writes it. */
sal_status viz_grid(const char *path, int rows, int cols, const sal_grid_tile *tiles, const sal_grid_opts *o,
                    viz_canvas *out);

#endif
