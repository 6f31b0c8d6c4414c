/* The HTML report (docs/report.md): internal drawing helpers. SVG charts are written as text into
 * the audits' growing strings (sal_sbuf), then saved beside index.html. */
#ifndef SAL_REPORT_H
#define SAL_REPORT_H

#include "audits/audit.h"
#include "json.h"

/* An audit's JSON (as sal_audit_json writes it) read back into the audits' result struct (load.c):
 * labels, outcomes, verdicts, metrics and curves as numbers. Fails only when out of memory. */
sal_status rp_audit_load(const rj_value *doc, sal_audit **out /* OUT */);

/* Text escaped for HTML and SVG (&, <, >, ", '). */
void rp_esc(sal_sbuf *b, const char *s);
/* A relative file name as a URL path (bytes other than letters, digits and ._-~/ percent-encoded). */
void rp_url(sal_sbuf *b, const char *s);

/* One line of a chart: n values at x[k] (NULL: k), NAN for no point. */
typedef struct {
    const char *name;
    const double *x, *y;
    int n;
    const char *color; /* CSS colour */
    double width;      /* stroke width; 0: 1.6 */
    int dash;          /* 0 solid, 1 dashed, 2 dotted */
} rp_series;

typedef struct {
    int w, h;                   /* pixels of the whole SVG */
    const char *title;          /* above the plot, may be NULL */
    const char *xlabel, *ylabel;
    double xlo, xhi, ylo, yhi;
    const char *const *xticks;  /* labels at x = 0, 1, ... (nxticks), else numeric ticks */
    int nxticks;
    double yref;                /* a dashed reference line at this y (NAN: none) */
    const char *yref_label;
} rp_chart;

/* A complete SVG document of a line chart. */
void rp_svg_lines(sal_sbuf *b, const rp_chart *c, const rp_series *s, int ns);

/* Horizontal bars, one per label, with an optional threshold line; logx draws a log10 axis
 * (values <= 0 sit at the left end). good[i] colours bar i green (1), red (0) or grey (-1). */
typedef struct {
    int n;
    const char *const *labels;
    const double *v;
    const double *v2;           /* optional second, thinner bar per label (NULL: none) */
    const int *good;
    double lo, hi, threshold;   /* threshold NAN: none */
    int logx;
    const char *xlabel, *vlabel, *v2label, *threshold_label;
} rp_bars;
void rp_svg_bars(sal_sbuf *b, const rp_bars *c);

/* The papers' own results beside an audit's (papers.c): for audits of `kind`, a table per paper
 * with its figures or verdicts next to ours, and which of its orderings ours reproduce. shift:
 * the invariance audit's shift as the paper names it ("constant", "checkerboard", "cat"), or NULL.
 * Writes nothing when none of the paper's methods ran. */
void rp_papers(sal_sbuf *h, const char *kind, const sal_audit *au, const char *shift);

/* A colour bar of the heatmaps' colormap with its labels (the legend of the figure grids). */
void rp_svg_colorbar(sal_sbuf *b, sal_cmap kind);

#endif
