/* Sequence logos of attribution tracks as SVG: at each position the four bases' letters are
 * stacked, each as tall as its attribution, positive ones above the axis and negative ones below
 * (the largest farthest out), in the usual colours (A green, C blue, G orange, T red). Letters are
 * drawn as paths in a unit box, so the picture does not depend on the viewer's fonts. */
#include "viz/viz.h"
#include <math.h>

/* Glyphs in a unit box (x right, y down), filled with the even-odd rule. */
static const char *const k_glyph[4] = {
    "M0,1L0.4,0H0.6L1,1H0.79L0.69,0.72H0.31L0.21,1ZM0.37,0.55H0.63L0.5,0.2Z",
    "M0.96,0.28A0.47,0.5 0 1 0 0.96,0.72L0.8,0.64A0.3,0.33 0 1 1 0.8,0.36Z",
    "M0.96,0.28A0.47,0.5 0 1 0 0.98,0.52H0.56V0.66H0.78A0.3,0.33 0 1 1 0.8,0.36Z",
    "M0,0H1V0.17H0.59V1H0.41V0.17H0Z",
};
static const char *const k_colour[4] = {"#109648", "#255c99", "#f7b32b", "#d62839"};

double sal_logo_extent(const float *map, int axis, int64_t L) {
    double m = 0;
    for (int64_t p = 0; p < L; p++) {
        double pos = 0, neg = 0;
        for (int b = 0; b < 4; b++) {
            double v = map[axis == 1 ? b * L + p : p * 4 + b];
            if (v > 0) pos += v;
            else neg -= v;
        }
        m = fmax(m, fmax(pos, neg));
    }
    return m;
}

void sal_logo_draw(sal_sbuf *sb, const float *map, int axis, int64_t L, double x0, double y0, double w, double h,
                   double extent) {
    double cw = w / (double)L, mid = y0 + h / 2, unit = extent > 0 ? (h / 2) / extent : 0;
    sal_sb_printf(sb, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#999\" stroke-width=\"0.5\"/>\n",
                  x0, mid, x0 + w, mid);
    for (int64_t p = 0; p < L && unit > 0; p++) {
        float v[4];
        int ord[4] = {0, 1, 2, 3};
        for (int b = 0; b < 4; b++) v[b] = map[axis == 1 ? b * L + p : p * 4 + b];
        for (int i = 1; i < 4; i++) /* by |value|, smallest first: the largest ends farthest from the axis */
            for (int j = i; j > 0 && fabsf(v[ord[j]]) < fabsf(v[ord[j - 1]]); j--) {
                int t = ord[j];
                ord[j] = ord[j - 1];
                ord[j - 1] = t;
            }
        double up = mid, down = mid;
        for (int i = 0; i < 4; i++) {
            int b = ord[i];
            double hh = fabs((double)v[b]) * unit;
            if (hh < 0.05) continue;
            double y = v[b] > 0 ? (up -= hh) : down;
            if (v[b] < 0) down += hh;
            sal_sb_printf(sb, "<path d=\"%s\" fill=\"%s\" fill-rule=\"evenodd\" transform=\"translate(%.2f %.2f) scale(%.3f %.3f)\"/>\n",
                          k_glyph[b], k_colour[b], x0 + (double)p * cw, y, cw, hh);
        }
    }
}

sal_status sal_logo_svg(const char *path, const sal_tensor *map, int axis, const sal_logo_opts *o) {
    static const sal_logo_opts def = {0};
    if (!o) o = &def;
    if (map->dtype != SAL_F32 || !(map->ndim == 2 || (map->ndim == 3 && map->dim[0] == 1)) || (axis != 1 && axis != 2))
        return sal_fail(SAL_ERR_SHAPE, "%s: a logo draws one track (4, L) or (L, 4)", path);
    int d = map->ndim - 2;
    if (map->dim[d + axis - 1] != 4) return sal_fail(SAL_ERR_SHAPE, "%s: the track's axis %d does not hold 4 bases", path, axis);
    int64_t L = map->dim[d + (axis == 1 ? 1 : 0)], a = o->start > 0 ? o->start : 0, e = o->end > 0 ? o->end : L;
    if (a >= e || e > L) return sal_fail(SAL_ERR_ARG, "%s: positions %lld..%lld are outside the track of %lld", path,
                                         (long long)a, (long long)e, (long long)L);
    int64_t n = e - a;
    float *win = sal_malloc((size_t)(4 * n) * sizeof *win); /* the window, (4, n) */
    if (!win) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t p = 0; p < n; p++)
        for (int b = 0; b < 4; b++) win[b * n + p] = sal_f32(map)[axis == 1 ? b * L + a + p : (a + p) * 4 + b];
    double cw = o->letter_width > 0 ? o->letter_width : 12, h = o->height > 0 ? o->height : 120, pad = 24;
    sal_sbuf sb = {0};
    sal_sb_printf(&sb, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
                  cw * (double)n + 2 * pad, h + 2 * pad, cw * (double)n + 2 * pad, h + 2 * pad);
    sal_sb_printf(&sb, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (o->title) {
        sal_sb_printf(&sb, "<text x=\"%.0f\" y=\"16\" font-family=\"sans-serif\" font-size=\"12\">", pad);
        for (const char *c = o->title; *c; c++) /* XML-escaped */
            sal_sb_printf(&sb, "%s", *c == '<' ? "&lt;" : *c == '>' ? "&gt;" : *c == '&' ? "&amp;" : (char[2]){*c, 0});
        sal_sb_printf(&sb, "</text>\n");
    }
    sal_logo_draw(&sb, win, 1, n, pad, pad, cw * (double)n, h, sal_logo_extent(win, 1, n));
    for (int64_t p = 0; p < n; p += 10) /* position ticks */
        sal_sb_printf(&sb, "<text x=\"%.1f\" y=\"%.0f\" font-family=\"sans-serif\" font-size=\"9\" fill=\"#666\">%lld</text>\n",
                      pad + (double)p * cw, h + pad + 14, (long long)(a + p));
    sal_sb_printf(&sb, "</svg>\n");
    sal_free(win);
    sal_status st = sb.oom ? sal_fail(SAL_ERR_NOMEM, "out of memory") : sal_write_file(path, sb.s, sb.len);
    sal_sb_free(&sb);
    return st;
}
