/* Figure writers: the grid of maps each audit keeps (sal_audit_figure) and the charts of the
 * curves of randomization and faithfulness (sal_audit_plot). */
#include "audit.h"

/* A grid of rows x cols tiles with a label per row, one per result that ran (plus `extra` rows
 * before them), its tiles filled by fill(a, result index or -1 - extra row, row's tiles). */
typedef struct {
    sal_grid_tile *t;
    const char **labels;
    int rows, cols;
} grid;

static sal_status grid_new(grid *g, int rows, int cols) {
    g->rows = rows, g->cols = cols;
    g->t = sal_calloc((size_t)(rows > 0 ? rows : 1) * (size_t)cols, sizeof *g->t);
    g->labels = sal_calloc((size_t)(rows > 0 ? rows : 1), sizeof *g->labels);
    return g->t && g->labels ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
}

static void grid_free(grid *g) {
    sal_free(g->t);
    sal_free(g->labels);
}

/* Pixels of the heatmaps: small inputs are upscaled so that a map is visible. */
static int upscale(const sal_audit *a, int small) {
    int64_t C, H, W;
    au_geom(&a->inputs[0], &C, &H, &W);
    return H * W <= 64 * 64 ? small : 1;
}

static sal_status write_grid(const char *path, const grid *g, const char *const *cols, sal_share share, int scale) {
    sal_grid_opts go = {.share = share, .row_labels = g->labels, .col_labels = cols};
    go.heat.scale = scale;
    return sal_png_grid(path, g->rows, g->cols, g->t, &go);
}

/* Rows = methods; input, map of f1, shifted input, map of f2 (as the paper's figures). */
static sal_status fig_invariance(const sal_audit *a, const char *path) {
    int rows = 0;
    for (int j = 0; j < a->nres; j++) rows += au_ran(&a->res[j]) && a->res[j].maps[0].data;
    if (!rows) return sal_fail(SAL_ERR_ARG, "no method ran, so there is no figure to draw (%s)", path);
    grid g;
    sal_status st = grid_new(&g, rows, 4);
    for (int j = 0, r = 0; j < a->nres && st == SAL_OK; j++) {
        const au_result *res = &a->res[j];
        if (!au_ran(res) || !res->maps[0].data) continue;
        g.labels[r] = res->label;
        g.t[r * 4 + 0].image = &a->inputs[0];
        g.t[r * 4 + 1].map = &res->maps[0];
        g.t[r * 4 + 2].image = &a->inputs[1];
        g.t[r * 4 + 3].map = &res->maps[1];
        r++;
    }
    static const char *const cols[4] = {"input", "f1 map", "shifted input", "f2 map"};
    if (st == SAL_OK) st = write_grid(path, &g, cols, SAL_SHARE_ROW, upscale(a, 4));
    grid_free(&g);
    return st;
}

/* Rows = methods; the map of the trained model, then after each cascading step. */
static sal_status fig_randomization(const sal_audit *a, const char *path) {
    int ran = au_count_ran(a), L = a->rnd.nlayer, cols = L + 2;
    if (!ran || !(a->rnd.mode & 1)) return SAL_OK; /* the figure shows the cascade */
    grid g;
    const char **cl = sal_calloc((size_t)cols, sizeof *cl);
    sal_status st = grid_new(&g, ran, cols);
    if (st == SAL_OK && !cl) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int j = 0, q = 0; j < a->nres && st == SAL_OK; j++) {
        if (!au_ran(&a->res[j])) continue;
        g.labels[q] = a->res[j].label;
        g.t[q * cols].image = &a->inputs[0];
        for (int s = 0; s <= L; s++) g.t[q * cols + 1 + s].map = &a->res[j].maps[s];
        q++;
    }
    if (st == SAL_OK) {
        cl[0] = "input";
        cl[1] = "trained";
        for (int s = 1; s <= L; s++) cl[1 + s] = a->rnd.layer[s - 1];
        st = write_grid(path, &g, cl, SAL_SHARE_TILE, upscale(a, 3));
    }
    sal_free(cl);
    grid_free(&g);
    return st;
}

/* Rows = methods; per sample its input, max-class and min-class maps. */
static sal_status fig_class_sensitivity(const sal_audit *a, const char *path) {
    int ran = au_count_ran(a), nfig = a->cls.nfig, cols = 3 * nfig;
    if (!ran) return SAL_OK;
    grid g;
    const char **cl = sal_calloc((size_t)cols, sizeof *cl);
    sal_status st = grid_new(&g, ran, cols);
    if (st == SAL_OK && !cl) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int q = 0; st == SAL_OK && q < nfig; q++)
        cl[3 * q] = "input", cl[3 * q + 1] = "max class", cl[3 * q + 2] = "min class";
    for (int j = 0, k = 0; st == SAL_OK && j < a->nres; j++) {
        if (!au_ran(&a->res[j])) continue;
        g.labels[k] = a->res[j].label;
        for (int q = 0; q < nfig; q++) {
            g.t[k * cols + 3 * q].image = &a->inputs[q];
            g.t[k * cols + 3 * q + 1].map = &a->res[j].maps[2 * q];
            g.t[k * cols + 3 * q + 2].map = &a->res[j].maps[2 * q + 1];
        }
        k++;
    }
    if (st == SAL_OK) st = write_grid(path, &g, cl, SAL_SHARE_TILE, upscale(a, 3));
    sal_free(cl);
    grid_free(&g);
    return st;
}

/* Rows = methods: the input, the maps of the labelled classes fk and the top class's. One scale
 * per row: the maps of one method for different classes compare. */
static sal_status fig_pointing(const sal_audit *a, const char *path) {
    int ran = au_count_ran(a), nfk = a->pt.nfk, cols = nfk + 2;
    if (!ran) return SAL_OK;
    char names[4][40];
    const char *cl[5] = {"input"};
    for (int f = 0; f < nfk; f++) snprintf(names[f], sizeof names[f], "class %lld", (long long)a->pt.fk[f]), cl[1 + f] = names[f];
    snprintf(names[3], sizeof names[3], "top class %lld", (long long)a->pt.top);
    cl[nfk + 1] = names[3];
    grid g;
    sal_status st = grid_new(&g, ran, cols);
    for (int j = 0, k = 0; st == SAL_OK && j < a->nres; j++) {
        if (!au_ran(&a->res[j])) continue;
        g.labels[k] = a->res[j].label;
        g.t[k * cols].image = &a->inputs[0];
        for (int f = 0; f <= nfk; f++) g.t[k * cols + 1 + f].map = &a->res[j].maps[f];
        k++;
    }
    if (st == SAL_OK) st = write_grid(path, &g, cl, SAL_SHARE_ROW, upscale(a, 3));
    grid_free(&g);
    return st;
}

typedef struct {
    float v;
    int64_t i;
} keyed;

static int by_desc(const void *a, const void *b) {
    const keyed *p = a, *q = b;
    if (p->v != q->v) return p->v > q->v ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

/* The input of the figure with the fraction frac of its most relevant pixels by map replaced. */
static sal_status deleted(const sal_audit *a, const sal_tensor *map, double frac, keyed *kv, float *plane,
                          sal_tensor *out) {
    int64_t C, H, W;
    au_geom(&a->inputs[0], &C, &H, &W);
    int64_t HW = H * W, npix = (int64_t)llround(frac * (double)HW);
    au_plane(sal_f32(map), C, HW, false, plane);
    for (int64_t p = 0; p < HW; p++) kv[p] = (keyed){plane[p], p};
    qsort(kv, (size_t)HW, sizeof *kv, by_desc);
    SAL_TRY(au_keep_row(out, &a->inputs[0], sal_f32(&a->inputs[0])));
    const float *R = sal_f32(&a->inputs[1]);
    for (int64_t q = 0; q < npix; q++)
        for (int64_t ch = 0; ch < C; ch++) sal_f32(out)[ch * HW + kv[q].i] = R[ch * HW + kv[q].i];
    return SAL_OK;
}

/* Rows = the occlusion reference (when it ran) and the methods that ran; columns: the input, the
 * map, and the input with the 10%, 25% and 50% most relevant pixels by that map replaced, which
 * is what the deletion curve scores. */
static sal_status fig_faithfulness(const sal_audit *a, const char *path) {
    enum { COLS = 5 };
    static const double frac[3] = {0.1, 0.25, 0.5};
    static const char *const cl[COLS] = {"input", "map", "10% deleted", "25% deleted", "50% deleted"};
    int rows = a->fa.have_occ + au_count_ran(a);
    if (!rows) return SAL_OK;
    int64_t HW = au_row(&a->inputs[0]);
    grid g;
    sal_tensor *del = sal_calloc((size_t)rows * 3, sizeof *del);
    keyed *kv = sal_malloc((size_t)HW * sizeof *kv);
    float *plane = sal_malloc((size_t)HW * sizeof *plane);
    sal_status st = grid_new(&g, rows, COLS);
    if (st == SAL_OK && (!del || !kv || !plane)) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int j = a->fa.have_occ ? -1 : 0, k = 0; st == SAL_OK && j < a->nres; j++) {
        if (j >= 0 && !au_ran(&a->res[j])) continue;
        const sal_tensor *map = j < 0 ? &a->fa.occ_map : &a->res[j].maps[0];
        g.labels[k] = j < 0 ? "occlusion (reference)" : a->res[j].label;
        g.t[k * COLS].image = &a->inputs[0];
        g.t[k * COLS + 1].map = map;
        for (int f = 0; f < 3 && st == SAL_OK; f++) {
            st = deleted(a, map, frac[f], kv, plane, &del[k * 3 + f]);
            g.t[k * COLS + 2 + f].image = &del[k * 3 + f];
        }
        k++;
    }
    if (st == SAL_OK) st = write_grid(path, &g, cl, SAL_SHARE_TILE, upscale(a, 3));
    for (int i = 0; del && i < rows * 3; i++) sal_tensor_free(&del[i]);
    sal_free(del);
    sal_free(kv);
    sal_free(plane);
    grid_free(&g);
    return st;
}

sal_status sal_audit_figure(const sal_audit *a, const char *path) {
    if (a->fig_sample < 0)
        return sal_fail(SAL_ERR_ARG, "figure sample %lld is out of range (%lld samples)", (long long)a->fig_asked,
                        (long long)a->samples);
    switch (a->kind) {
    case AU_INVARIANCE: return fig_invariance(a, path);
    case AU_RANDOMIZATION: return fig_randomization(a, path);
    case AU_CLASS_SENSITIVITY: return fig_class_sensitivity(a, path);
    case AU_POINTING: return fig_pointing(a, path);
    case AU_MOTIF: return sal_fail(SAL_ERR_ARG, "the motif audit draws no figure grid (sequence logos: sal_audit_logos)");
    default: return fig_faithfulness(a, path);
    }
}

/* ---- plots ---- */

/* Spearman of HOG against the layers randomized, one line per method, a panel per mode. */
static sal_status plot_randomization(const sal_audit *a, const char *path) {
    int ran = au_count_ran(a), L = a->rnd.nlayer, mode = a->rnd.mode;
    if (!ran) return SAL_OK;
    int np = (mode & 1) + ((mode >> 1) & 1);
    double *v = sal_malloc((size_t)np * (size_t)ran * (size_t)(L + 1) * sizeof *v);
    const char **series = sal_calloc((size_t)ran, sizeof *series);
    const char **ticks = sal_calloc((size_t)np * (size_t)(L + 1), sizeof *ticks);
    const char *titles[2];
    sal_status st = v && series && ticks ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int md = 0, p = 0; md < 2 && st == SAL_OK; md++) {
        if (!(mode & (1 << md))) continue;
        titles[p] = md ? "independent: spearman of hog" : "cascading: spearman of hog";
        for (int s = 0; s <= L; s++) ticks[p * (L + 1) + s] = s ? a->rnd.layer[s - 1] : "none";
        for (int j = 0, q = 0; j < a->nres; j++) {
            if (!au_ran(&a->res[j])) continue;
            series[q] = a->res[j].label;
            const double *cv = a->res[j].curve + (size_t)md * (size_t)(L + 1) * AU_NSIM;
            for (int s = 0; s <= L; s++)
                v[((size_t)p * (size_t)ran + (size_t)q) * (size_t)(L + 1) + (size_t)s] = cv[s * AU_NSIM + AU_HOG_S];
            q++;
        }
        p++;
    }
    au_plot_spec ps = {.npanel = np, .nseries = ran, .npoint = L + 1, .panel_titles = titles, .series = series,
                       .xticks = ticks, .v = v, .ylo = -0.2, .yhi = 1};
    if (st == SAL_OK) st = au_plot(path, &ps);
    sal_free(v);
    sal_free(series);
    sal_free(ticks);
    return st;
}

/* Deletion and insertion (most relevant first), one line per method plus the random order. */
static sal_status plot_faithfulness(const sal_audit *a, const char *path) {
    int ns = au_count_ran(a) + 1;
    int64_t S = a->fa.steps, npt = S + 1;
    double *v = sal_malloc((size_t)2 * (size_t)ns * (size_t)npt * sizeof *v);
    const char **series = sal_calloc((size_t)ns, sizeof *series);
    const char **ticks = sal_calloc((size_t)2 * (size_t)npt, sizeof *ticks);
    sal_status st = v && series && ticks ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    double ymax = -INFINITY, ymin = INFINITY;
    for (int p = 0; p < 2 && st == SAL_OK; p++) {
        int curve = p ? AU_INS_MORF : AU_DEL_MORF, q = 0;
        for (int j = 0; j <= a->nres; j++) { /* the methods, then the random order */
            if (j < a->nres && !au_ran(&a->res[j])) continue;
            series[q] = j < a->nres ? a->res[j].label : "random order";
            const double *cv = (j < a->nres ? a->res[j].curve : a->fa.curve) + curve * npt;
            for (int64_t s = 0; s <= S; s++) v[((size_t)p * (size_t)ns + (size_t)q) * (size_t)npt + (size_t)s] = cv[s];
            q++;
        }
        for (int64_t s = 0; s <= S; s++) {
            static const char *const frac[] = {"0", "0.25", "0.5", "0.75", "1"};
            ticks[p * npt + s] = S % 4 == 0 && s % (S / 4) == 0 ? frac[s / (S / 4)] : NULL;
        }
    }
    for (int64_t k = 0; st == SAL_OK && k < 2 * ns * npt; k++)
        if (isfinite(v[k])) ymax = fmax(ymax, v[k]), ymin = fmin(ymin, v[k]);
    static const char *const titles[2] = {"deletion, most relevant first", "insertion, most relevant first"};
    au_plot_spec ps = {.npanel = 2, .nseries = ns, .npoint = (int)npt, .panel_titles = titles, .series = series,
                       .xticks = ticks, .v = v, .ylo = a->fa.prob ? 0 : fmin(0, ymin), .yhi = a->fa.prob ? 1 : ymax};
    if (st == SAL_OK) st = au_plot(path, &ps);
    sal_free(v);
    sal_free(series);
    sal_free(ticks);
    return st;
}

sal_status sal_audit_plot(const sal_audit *a, const char *path) {
    if (a->kind == AU_RANDOMIZATION) return plot_randomization(a, path);
    if (a->kind == AU_FAITHFULNESS) return plot_faithfulness(a, path);
    return sal_fail(SAL_ERR_ARG, "the %s audit draws no curves (plots are for randomization and faithfulness)",
                    au_kind_name[a->kind]);
}
