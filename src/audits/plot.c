/* Line charts of audit curves (similarity per randomized layer, output per deleted fraction),
 * drawn on the viz canvases with the built-in font. */
#include "audit.h"
#include "viz/viz.h"

/* Distinguishable colours (Okabe & Ito's palette, then a few more). */
static const uint8_t k_colors[][3] = {{0, 114, 178},  {213, 94, 0},   {0, 158, 115},  {204, 121, 167},
                                      {230, 159, 0},  {86, 180, 233}, {0, 0, 0},      {240, 228, 66},
                                      {153, 153, 153}, {128, 0, 0},   {0, 0, 128},    {128, 128, 0}};
#define NCOLORS (int)(sizeof k_colors / sizeof k_colors[0])

static void dot(viz_canvas *c, int x, int y, int r, const uint8_t *rgb) { viz_fill(c, x - r, y - r, 2 * r + 1, 2 * r + 1, rgb); }

static void line(viz_canvas *c, int x0, int y0, int x1, int y1, const uint8_t *rgb) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (;;) {
        viz_fill(c, x0, y0, 2, 2, rgb);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

sal_status au_plot(const char *path, const au_plot_spec *p) {
    const int pw = 360, ph = 240, ml = 48, mr = 16, mt = 24, mb = 64, fs = 2;
    int legend_w = 0;
    for (int s = 0; s < p->nseries; s++) {
        int w = viz_text_width(p->series[s], fs);
        if (w > legend_w) legend_w = w;
    }
    legend_w += 40;
    int W = p->npanel * (ml + pw + mr) + legend_w + 16, H = mt + ph + mb;
    int need = 16 + p->nseries * 14;
    if (H < need) H = need;
    viz_canvas c = {0};
    SAL_TRY(viz_canvas_new(&c, W, H, path));
    static const uint8_t black[3] = {0, 0, 0}, grey[3] = {210, 210, 210};
    double span = p->yhi > p->ylo ? p->yhi - p->ylo : 1;
    for (int q = 0; q < p->npanel; q++) {
        int x0 = q * (ml + pw + mr) + ml, y0 = mt;
        if (p->panel_titles && p->panel_titles[q]) viz_text(&c, x0, 6, fs, p->panel_titles[q], black);
        /* grid lines and y labels every 0.2 of the range */
        for (int t = 0; t <= 5; t++) {
            double v = p->ylo + span * t / 5.0;
            int y = y0 + ph - (int)lround(ph * t / 5.0);
            viz_fill(&c, x0, y, pw, 1, grey);
            char lab[32];
            snprintf(lab, sizeof lab, "%.2f", v);
            viz_text(&c, x0 - viz_text_width(lab, fs) - 4, y - 5, fs, lab, black);
        }
        viz_fill(&c, x0, y0, 1, ph, black);
        viz_fill(&c, x0, y0 + ph, pw, 1, black);
        for (int k = 0, nl = 0; k < p->npoint; k++) { /* x ticks; crowded labels alternate between rows */
            int x = x0 + (p->npoint > 1 ? (int)lround((double)pw * k / (p->npoint - 1)) : pw / 2);
            viz_fill(&c, x, y0 + ph, 1, 5, black);
            const char *lab = p->xticks ? p->xticks[q * p->npoint + k] : NULL;
            if (lab) viz_text(&c, x - viz_text_width(lab, fs) / 2, y0 + ph + 8 + (nl++ % 3) * 14, fs, lab, black);
        }
        for (int s = 0; s < p->nseries; s++) {
            const uint8_t *col = k_colors[s % NCOLORS];
            int px = -1, py = -1;
            for (int k = 0; k < p->npoint; k++) {
                double v = p->v[((size_t)q * (size_t)p->nseries + (size_t)s) * (size_t)p->npoint + (size_t)k];
                if (!isfinite(v)) {
                    px = -1;
                    continue;
                }
                v = fmin(fmax(v, p->ylo), p->yhi);
                int x = x0 + (p->npoint > 1 ? (int)lround((double)pw * k / (p->npoint - 1)) : pw / 2);
                int y = y0 + ph - (int)lround(ph * (v - p->ylo) / span);
                if (px >= 0) line(&c, px, py, x, y, col);
                dot(&c, x, y, 2, col);
                px = x, py = y;
            }
        }
    }
    int lx = p->npanel * (ml + pw + mr) + 8;
    for (int s = 0; s < p->nseries; s++) {
        viz_fill(&c, lx, mt + s * 14 + 3, 20, 4, k_colors[s % NCOLORS]);
        viz_text(&c, lx + 26, mt + s * 14, fs, p->series[s], black);
    }
    sal_status st = sal_png_write(path, c.w, c.h, 3, c.px);
    viz_canvas_free(&c);
    return st;
}
