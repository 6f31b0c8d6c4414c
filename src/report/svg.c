/* SVG charts of the report: line charts of curves, bar charts of verdict metrics, colour bars.
 * Plain SVG 1.1 text; fonts are the viewer's sans-serif. */
#include "report.h"
#include "viz/viz.h"

#define FONT "font-family=\"DejaVu Sans,Helvetica,Arial,sans-serif\""

void rp_esc(sal_sbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': sal_sb_printf(b, "&amp;"); break;
        case '<': sal_sb_printf(b, "&lt;"); break;
        case '>': sal_sb_printf(b, "&gt;"); break;
        case '"': sal_sb_printf(b, "&quot;"); break;
        case '\'': sal_sb_printf(b, "&#39;"); break;
        default: sal_sb_printf(b, "%c", *s); break;
        }
    }
}

void rp_url(sal_sbuf *b, const char *s) {
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._-~/", c))
            sal_sb_printf(b, "%c", c);
        else sal_sb_printf(b, "%%%02X", c);
    }
}

/* Tick spacing of about n ticks over [lo, hi]: 1, 2 or 5 times a power of ten. */
static double nice_step(double lo, double hi, int n) {
    double raw = (hi - lo) / (n > 0 ? n : 1);
    if (!(raw > 0)) return 1;
    double p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

static void svg_open(sal_sbuf *b, int w, int h) {
    sal_sb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" " FONT
                 " font-size=\"11\">\n",
              w, h, w, h);
}

static void text(sal_sbuf *b, double x, double y, const char *anchor, const char *extra, const char *s) {
    sal_sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s%s>", x, y, anchor, extra ? " " : "", extra ? extra : "");
    rp_esc(b, s);
    sal_sb_printf(b, "</text>\n");
}

static const char *dash_attr(int dash) {
    return dash == 1 ? " stroke-dasharray=\"6 4\"" : dash == 2 ? " stroke-dasharray=\"1.5 3\" stroke-linecap=\"round\"" : "";
}

void rp_svg_lines(sal_sbuf *b, const rp_chart *c, const rp_series *s, int ns) {
    const double ml = 42, mr = 22, mt = c->title ? 24 : 10, mb = c->xlabel ? 40 : 26;
    double pw = c->w - ml - mr, ph = c->h - mt - mb;
    double xlo = c->xlo, xhi = c->xhi > c->xlo ? c->xhi : c->xlo + 1;
    double ylo = c->ylo, yhi = c->yhi > c->ylo ? c->yhi : c->ylo + 1;
#define PX(v) (ml + ((v) - xlo) / (xhi - xlo) * pw)
#define PY(v) (mt + (yhi - (v)) / (yhi - ylo) * ph)
    svg_open(b, c->w, c->h);
    sal_sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fafafa\" stroke=\"#d0d0d0\"/>\n", ml, mt,
              pw, ph);
    if (c->title) { /* long titles shortened with an ellipsis (the full text is the tooltip) */
        char t[64];
        size_t n = strlen(c->title), fit = (size_t)(c->w - 8) / 7;
        if (fit > sizeof t - 4) fit = sizeof t - 4;
        snprintf(t, sizeof t, n > fit ? "%.*s..." : "%.*s", (int)(n > fit ? fit - 3 : n), c->title);
        sal_sb_printf(b, "<title>");
        rp_esc(b, c->title);
        sal_sb_printf(b, "</title>\n");
        text(b, c->w / 2.0, 15, "middle", "font-weight=\"bold\" font-size=\"12\"", t);
    }
    /* y grid and ticks */
    double ys = nice_step(ylo, yhi, ph > 120 ? 5 : 3);
    for (double v = ceil(ylo / ys - 1e-9) * ys; v <= yhi + 1e-9 * ys; v += ys) {
        char lab[32];
        snprintf(lab, sizeof lab, "%g", fabs(v) < ys * 1e-6 ? 0.0 : v);
        sal_sb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", ml, ml + pw, PY(v), PY(v));
        text(b, ml - 4, PY(v) + 4, "end", "fill=\"#555\"", lab);
    }
    /* x ticks: given labels, or numbers */
    if (c->xticks) {
        int every = 1;
        while (c->nxticks / every > (int)(pw / 38)) every++;
        for (int k = 0; k < c->nxticks; k += every) {
            if (!c->xticks[k] || PX(k) < ml - 1 || PX(k) > ml + pw + 1) continue;
            sal_sb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", PX(k), PX(k), mt,
                      mt + ph);
            text(b, PX(k), mt + ph + 13, "middle", "fill=\"#555\" font-size=\"9.5\"", c->xticks[k]);
        }
    } else {
        double xs = nice_step(xlo, xhi, pw > 200 ? 5 : 4);
        for (double v = ceil(xlo / xs - 1e-9) * xs; v <= xhi + 1e-9 * xs; v += xs) {
            char lab[32];
            snprintf(lab, sizeof lab, "%g", fabs(v) < xs * 1e-6 ? 0.0 : v);
            text(b, PX(v), mt + ph + 13, "middle", "fill=\"#555\"", lab);
        }
    }
    if (c->xlabel) text(b, ml + pw / 2, c->h - 6, "middle", "fill=\"#333\"", c->xlabel);
    if (c->ylabel) {
        char tr[96];
        snprintf(tr, sizeof tr, "fill=\"#333\" transform=\"rotate(-90 11 %.1f)\"", mt + ph / 2);
        text(b, 11, mt + ph / 2, "middle", tr, c->ylabel);
    }
    if (isfinite(c->yref) && c->yref >= ylo && c->yref <= yhi) {
        sal_sb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"3 3\"/>\n", ml,
                  ml + pw, PY(c->yref), PY(c->yref));
        if (c->yref_label) text(b, ml + pw - 3, PY(c->yref) - 3, "end", "fill=\"#777\" font-size=\"9.5\"", c->yref_label);
    }
    /* the lines, clipped to the plot area */
    sal_sb_printf(b, "<clipPath id=\"plot\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n", ml,
              mt - 2, pw, ph + 4);
    for (int i = 0; i < ns; i++) {
        const rp_series *q = &s[i];
        bool pen = false;
        sal_sb_printf(b, "<path clip-path=\"url(#plot)\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.2f\"%s "
                     "stroke-linejoin=\"round\" d=\"",
                  q->color ? q->color : "#333", q->width > 0 ? q->width : 1.6, dash_attr(q->dash));
        for (int k = 0; k < q->n; k++) {
            double x = q->x ? q->x[k] : k, y = q->y[k];
            if (!isfinite(x) || !isfinite(y)) {
                pen = false;
                continue;
            }
            sal_sb_printf(b, "%s%.1f %.1f", pen ? " L" : " M", PX(x), PY(fmin(fmax(y, ylo - (yhi - ylo)), yhi + (yhi - ylo))));
            pen = true;
        }
        sal_sb_printf(b, "\"><title>");
        rp_esc(b, q->name ? q->name : "");
        sal_sb_printf(b, "</title></path>\n");
    }
    sal_sb_printf(b, "</svg>\n");
#undef PX
#undef PY
}

void rp_svg_bars(sal_sbuf *b, const rp_bars *c) {
    size_t longest = 0;
    for (int i = 0; i < c->n; i++) longest = c->labels[i] && strlen(c->labels[i]) > longest ? strlen(c->labels[i]) : longest;
    const double row = c->v2 ? 20 : 17, ml = fmin(fmax(6.4 * (double)longest + 16, 120), 440), mr = 70, mt = 26, mb = 38,
                 pw = 380;
    int w = (int)(ml + pw + mr), h = (int)(mt + mb + row * (c->n > 0 ? c->n : 1));
    double lo = c->lo, hi = c->hi > c->lo ? c->hi : c->lo + 1;
    if (c->logx) lo = log10(lo > 0 ? lo : 1e-6), hi = log10(hi > 0 ? hi : 1);
    if (!(hi > lo)) hi = lo + 1;
#define BX(v) (ml + (fmin(fmax(c->logx ? ((v) > 0 ? log10(v) : lo) : (v), lo), hi) - lo) / (hi - lo) * pw)
    svg_open(b, w, h);
    /* axis ticks */
    if (c->logx) {
        for (int e = (int)ceil(lo - 1e-9); e <= (int)floor(hi + 1e-9); e++) {
            double x = ml + (e - lo) / (hi - lo) * pw;
            char lab[24];
            snprintf(lab, sizeof lab, "1e%d", e);
            sal_sb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", x, x, mt - 4, h - mb + 2);
            text(b, x, h - mb + 14, "middle", "fill=\"#555\"", e == 0 ? "1" : lab);
        }
    } else {
        double st = nice_step(lo, hi, 5);
        for (double v = ceil(lo / st - 1e-9) * st; v <= hi + 1e-9 * st; v += st) {
            char lab[32];
            snprintf(lab, sizeof lab, "%g", fabs(v) < st * 1e-6 ? 0.0 : v);
            sal_sb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", BX(v), BX(v), mt - 4,
                      h - mb + 2);
            text(b, BX(v), h - mb + 14, "middle", "fill=\"#555\"", lab);
        }
    }
    if (c->xlabel) text(b, ml + pw / 2, h - 8, "middle", "fill=\"#333\"", c->xlabel);
    double zero = BX(c->logx ? 0 : fmax(lo, fmin(0.0, hi)));
    if (c->logx) zero = ml;
    for (int i = 0; i < c->n; i++) {
        double y = mt + row * i;
        const char *col = c->good && c->good[i] == 1 ? "#2e9e6b" : c->good && c->good[i] == 0 ? "#d1495b" : "#9a9a9a";
        text(b, ml - 8, y + row / 2 + 4, "end", "fill=\"#222\"", c->labels[i] ? c->labels[i] : "");
        double v = c->v[i];
        if (isfinite(v)) {
            double x = BX(v), x0 = fmin(x, zero), bw = fmax(fabs(x - zero), 1.5);
            sal_sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"2\" fill=\"%s\"><title>", x0,
                      y + 3, bw, c->v2 ? row / 2 - 2 : row - 6, col);
            rp_esc(b, c->labels[i]);
            sal_sb_printf(b, ": %s %.4g</title></rect>\n", c->vlabel ? c->vlabel : "", v);
            char num[32];
            snprintf(num, sizeof num, "%.3g", v);
            text(b, fmax(x, zero) + 4, y + (c->v2 ? row / 2 - 1 : row / 2 + 4), "start", "fill=\"#444\" font-size=\"10\"", num);
        } else {
            text(b, ml + 4, y + row / 2 + 4, "start", "fill=\"#999\" font-style=\"italic\"", "n/a");
        }
        if (c->v2 && isfinite(c->v2[i])) {
            double x = BX(c->v2[i]), x0 = fmin(x, zero), bw = fmax(fabs(x - zero), 1.5);
            sal_sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"1.5\" fill=\"%s\" opacity=\"0.45\">"
                         "<title>", x0, y + row / 2 + 1, bw, row / 2 - 4, col);
            rp_esc(b, c->labels[i]);
            sal_sb_printf(b, ": %s %.4g</title></rect>\n", c->v2label ? c->v2label : "", c->v2[i]);
        }
    }
    if (isfinite(c->threshold)) {
        double x = BX(c->threshold);
        sal_sb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n", x, x,
                  mt - 6, h - mb + 2);
        if (c->threshold_label) text(b, x, mt - 10, "middle", "fill=\"#333\" font-size=\"10\"", c->threshold_label);
    }
    sal_sb_printf(b, "</svg>\n");
#undef BX
}

void rp_svg_colorbar(sal_sbuf *b, sal_cmap kind) {
    bool div = kind == SAL_CMAP_DIVERGING;
    const int w = 260, h = 44, x0 = 10, bw = 240, y0 = 6, bh = 14, n = 64;
    svg_open(b, w, h);
    for (int i = 0; i < n; i++) {
        double t = (i + 0.5) / n, rgb[3];
        viz_cmap_eval(kind, div ? 2 * t - 1 : t, rgb);
        sal_sb_printf(b, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"#%02x%02x%02x\"/>\n", x0 + bw * (double)i / n, y0,
                  bw / (double)n + 0.3, bh, (int)lround(rgb[0] * 255), (int)lround(rgb[1] * 255), (int)lround(rgb[2] * 255));
    }
    sal_sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#777\"/>\n", x0, y0, bw, bh);
    if (div) {
        text(b, x0, y0 + bh + 14, "start", "fill=\"#333\"", "-c (negative)");
        text(b, x0 + bw / 2.0, y0 + bh + 14, "middle", "fill=\"#333\"", "0");
        text(b, x0 + bw, y0 + bh + 14, "end", "fill=\"#333\"", "+c (positive)");
    } else {
        text(b, x0, y0 + bh + 14, "start", "fill=\"#333\"", "0");
        text(b, x0 + bw, y0 + bh + 14, "end", "fill=\"#333\"", "c = |value| at the 99.5th percentile");
    }
    sal_sb_printf(b, "</svg>\n");
}
