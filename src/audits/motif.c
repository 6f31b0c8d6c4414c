/* Motif recovery: on sequences with planted motifs (saliency data dna), how well does each method's
 * per-position attribution find the planted positions? Per sample the positions are ranked by
 * their score, and the ranking is measured against the planted mask by the area under the ROC
 * curve and the average precision (area under the precision-recall curve); both are averaged over
 * the samples that hold a planted and a background position. Two reference rows frame the
 * methods: the planted mask itself (an oracle, AUROC 1) and a random map (AUROC about 0.5, average
 * precision about the planted fraction). docs/sequences.md. */
#include "audit.h"
#include "viz/viz.h"

typedef struct {
    const sal_model *m;
    const sal_tensor *x, *masks;
    const sal_motif_opts *o;
    int axis;
    int64_t N, L, B;
    double lo, hi;
    int64_t fs;            /* the figure's sample */
    sal_tensor A;
    float *score;
    int64_t *order;
    au_patcache pc;
    au_progress pr;
} mctx;

static bool planted(const mctx *c, int64_t i, int64_t p) {
    const sal_tensor *t = c->masks;
    return t->dtype == SAL_I64 ? ((const int64_t *)t->data)[i * c->L + p] != 0 : sal_f32(t)[i * c->L + p] != 0;
}

static const float *score_sort_key;
static int by_score_desc(const void *a, const void *b) {
    float x = score_sort_key[*(const int64_t *)a], y = score_sort_key[*(const int64_t *)b];
    return x > y ? -1 : x < y ? 1 : 0;
}

/* AUROC (ties count one half, as the Mann-Whitney statistic with mid-ranks) and average precision
 * (precision at each distinct score, weighted by the recall it adds: scikit-learn's definition) of
 * scores s against sample i's mask. false when the sample lacks planted or background positions. */
static bool rank_scores(mctx *c, int64_t i, const float *s, double *auroc, double *ap) {
    int64_t L = c->L, P = 0;
    for (int64_t p = 0; p < L; p++) P += planted(c, i, p);
    if (P == 0 || P == L) return false;
    for (int64_t p = 0; p < L; p++) c->order[p] = p;
    score_sort_key = s;
    qsort(c->order, (size_t)L, sizeof *c->order, by_score_desc);
    double tp = 0, fp = 0, u = 0, sum_ap = 0, prev_recall = 0;
    for (int64_t k = 0; k < L;) { /* one group of tied scores at a time */
        int64_t e = k, gp = 0, gn = 0;
        while (e < L && s[c->order[e]] == s[c->order[k]]) gp += planted(c, i, c->order[e]), e++;
        gn = (e - k) - gp;
        u += (double)gn * (tp + 0.5 * (double)gp); /* background below the planted ones above or tied */
        tp += (double)gp, fp += (double)gn;
        double recall = tp / (double)P;
        sum_ap += (recall - prev_recall) * (tp / (tp + fp));
        prev_recall = recall;
        k = e;
    }
    *auroc = u / ((double)P * (double)(L - P));
    *ap = sum_ap;
    return true;
}

/* Per-position scores of one sample's map a (4, L) or (L, 4) with its input x. */
static void position_scores(const mctx *c, const float *a, const float *x, float *s) {
    int64_t L = c->L;
    for (int64_t p = 0; p < L; p++) {
        double v = 0;
        for (int b = 0; b < 4; b++) {
            int64_t e = c->axis == 1 ? b * L + p : p * 4 + b;
            v += c->o->score == SAL_POSITION_ABS ? fabs((double)a[e]) : c->o->score == SAL_POSITION_OWN ? (double)a[e] * x[e]
                                                                                                   : (double)a[e];
        }
        s[p] = (float)v;
    }
}

static void finish(mctx *c, au_result *r, const au_mean *roc, const au_mean *ap, int64_t scored, double tol) {
    double auroc = au_mean_get(roc);
    au_metric(r, "auroc", auroc);
    au_metric(r, "auprc", au_mean_get(ap));
    au_metric(r, "samples_scored", (double)scored);
    if (!isfinite(auroc)) {
        au_undetermined(r, "recovers_motifs", "no sample holds both planted and background positions");
        return;
    }
    bool ok = auroc >= 0.5 + tol;
    au_metric_bool(r, "recovers_motifs", ok);
    au_verdict(r, ok ? SAL_VERDICT_PASS : SAL_VERDICT_FAIL, "%s (mean AUROC %.3f %s %.3g, AUPRC %.3f)",
               ok ? "recovers the planted motifs" : "does not recover the planted motifs", auroc, ok ? ">=" : "<",
               0.5 + tol, au_mean_get(ap));
    (void)c;
}

static sal_status run_method(mctx *c, const sal_audit_method *meth, double tol, au_result *r) {
    int64_t row = au_row(c->x), scored = 0;
    au_mean roc = {0}, ap = {0};
    for (int64_t i0 = 0; i0 < c->N; i0 += c->B) {
        int64_t n = c->N - i0 < c->B ? c->N - i0 : c->B;
        sal_tensor xb = au_rows(c->x, i0, n);
        const sal_tensor *data = c->o->common.data;
        au_xopts xo = {.meth = meth, .target = SAL_TARGET_MAX, .data = data, .lo = c->lo, .hi = c->hi,
                       .chunk = c->o->common.chunk, .prob = c->o->common.prob, .pc = &c->pc, .pdata = data ? data : c->x};
        bool est = false;
        sal_status st = au_explain(c->m, &xb, &xo, &c->A, &est);
        if (st != SAL_OK) return au_skip(r, st, NULL);
        r->patterns |= est;
        for (int64_t k = 0; k < n; k++) {
            int64_t i = i0 + k;
            double a1, a2;
            position_scores(c, sal_f32(&c->A) + k * row, sal_f32(c->x) + i * row, c->score);
            if (rank_scores(c, i, c->score, &a1, &a2)) au_mean_add(&roc, a1), au_mean_add(&ap, a2), scored++;
            if (i == c->fs) SAL_TRY(au_keep_row(&r->maps[0], c->x, sal_f32(&c->A) + k * row));
        }
        au_progress_step(&c->pr, n, r->label);
    }
    finish(c, r, &roc, &ap, scored, tol);
    return SAL_OK;
}

/* The reference rows: the planted mask as the map (oracle), and uniform noise (random). */
static sal_status run_reference(mctx *c, bool oracle, double tol, au_result *r) {
    sal_rng g;
    sal_rng_seed(&g, c->o->common.seed ^ 0x6d6f746966ull);
    au_mean roc = {0}, ap = {0};
    int64_t scored = 0;
    for (int64_t i = 0; i < c->N; i++) {
        for (int64_t p = 0; p < c->L; p++) c->score[p] = oracle ? (float)planted(c, i, p) : (float)sal_rng_uniform(&g);
        double a1, a2;
        if (rank_scores(c, i, c->score, &a1, &a2)) au_mean_add(&roc, a1), au_mean_add(&ap, a2), scored++;
    }
    r->reference = true;
    r->label = sal_strdup(oracle ? "planted positions (oracle)" : "random map (reference)");
    r->method = sal_strdup(oracle ? "oracle" : "random");
    if (!r->label || !r->method) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    finish(c, r, &roc, &ap, scored, tol);
    return SAL_OK;
}

sal_status sal_audit_motif(const sal_model *m, const sal_tensor *x, const sal_motif_opts *o, sal_audit **out) {
    *out = NULL;
    const sal_audit_common *co = &o->common;
    char b1[160], b2[160];
    if (x->dtype != SAL_F32 || x->ndim != 3 || x->dim[0] < 1 || (x->dim[1] != 4 && x->dim[2] != 4))
        return sal_fail(SAL_ERR_SHAPE, "the motif audit needs one-hot sequences (N, 4, L) or (N, L, 4), not %s",
                        sal_shape_str(x->ndim, x->dim, b1, sizeof b1));
    mctx c = {.m = m, .x = x, .masks = o->masks, .o = o, .N = x->dim[0], .B = co->batch > 0 ? co->batch : 16};
    c.axis = o->axis ? o->axis : x->dim[1] == 4 ? 1 : 2;
    if ((c.axis != 1 && c.axis != 2) || x->dim[c.axis] != 4)
        return sal_fail(SAL_ERR_ARG, "the motif audit: axis %d does not hold the 4 bases", o->axis);
    c.L = x->dim[c.axis == 1 ? 2 : 1];
    const sal_tensor *mk = o->masks;
    if (!mk) return sal_fail(SAL_ERR_ARG, "the motif audit needs the planted positions (masks)");
    if ((mk->dtype != SAL_I64 && mk->dtype != SAL_F32) || mk->ndim != 2 || mk->dim[0] != c.N || mk->dim[1] != c.L)
        return sal_fail(SAL_ERR_SHAPE, "masks %s must be (N, L) = (%lld, %lld) for sequences %s",
                        sal_shape_str(mk->ndim, mk->dim, b1, sizeof b1), (long long)c.N, (long long)c.L,
                        sal_shape_str(x->ndim, x->dim, b2, sizeof b2));
    c.fs = co->figure_sample > 0 && co->figure_sample < c.N ? co->figure_sample : 0;
    au_range(co->data ? co->data : x, &c.lo, &c.hi);
    sal_audit_method *meths = NULL;
    int nm = 0;
    SAL_TRY(au_methods(co, &meths, &nm));
    sal_audit *a = NULL;
    c.score = sal_malloc((size_t)c.L * sizeof *c.score);
    c.order = sal_malloc((size_t)c.L * sizeof *c.order);
    sal_status st = c.score && c.order ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = au_audit_new(AU_MOTIF, co, nm + 2, 1, 1, &a);
    if (st == SAL_OK) {
        a->tol = co->tol > 0 ? co->tol : 0.2;
        a->samples = c.N;
        a->fig_sample = c.fs;
        st = au_keep_row(&a->inputs[0], x, sal_f32(x) + c.fs * au_row(x));
        a->mo.axis = c.axis, a->mo.L = c.L;
        if (st == SAL_OK && !(a->mo.planted = sal_malloc((size_t)c.L))) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        for (int64_t p = 0; st == SAL_OK && p < c.L; p++) a->mo.planted[p] = planted(&c, c.fs, p);
    }
    au_progress_start(&c.pr, co, "motif", (int64_t)nm * c.N);
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        if ((st = au_result_init(&a->res[j], &meths[j])) == SAL_OK) st = run_method(&c, &meths[j], a->tol, &a->res[j]);
        c.pr.done = (int64_t)(j + 1) * c.N;
    }
    if (st == SAL_OK) st = run_reference(&c, true, a->tol, &a->res[nm]);
    if (st == SAL_OK) st = run_reference(&c, false, a->tol, &a->res[nm + 1]);
    au_progress_end(&c.pr);
    au_patcache_free(&c.pc);
    sal_free(c.score);
    sal_free(c.order);
    sal_free(meths);
    sal_tensor_free(&c.A);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}

/* ---- logos ---- */

static void esc(sal_sbuf *b, const char *s) {
    for (; *s; s++) sal_sb_printf(b, "%s", *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : (char[2]){*s, 0});
}

sal_status sal_audit_logos(const sal_audit *a, const char *path) {
    if (a->kind != AU_MOTIF || !a->mo.planted) return sal_fail(SAL_ERR_ARG, "%s: only the motif audit draws logos", path);
    int64_t L = a->mo.L;
    int axis = a->mo.axis, rows = 1;
    for (int i = 0; i < a->nres; i++) rows += au_ran(&a->res[i]) && a->res[i].maps[0].data;
    double cw = L > 400 ? 3 : L > 200 ? 5 : 8, rh = 70, lab = 210, pad = 10, w = lab + cw * (double)L + pad;
    sal_sbuf b = {0};
    sal_sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
                  w, rh * rows + 2 * pad, w, rh * rows + 2 * pad);
    sal_sb_printf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    for (int64_t p = 0; p < L; p++) /* the planted positions, a band over every row */
        if (a->mo.planted[p])
            sal_sb_printf(&b, "<rect x=\"%.2f\" y=\"%.0f\" width=\"%.2f\" height=\"%.0f\" fill=\"#fde9a9\"/>\n",
                          lab + cw * (double)p, pad, cw, rh * rows);
    int row = 0;
    const sal_tensor *in = &a->inputs[0];
    for (int i = -1; i < a->nres; i++) {
        const float *map = i < 0 ? sal_f32(in) : a->res[i].maps[0].data ? sal_f32(&a->res[i].maps[0]) : NULL;
        if (i >= 0 && (!au_ran(&a->res[i]) || !map)) continue;
        double y = pad + rh * row++;
        sal_sb_printf(&b, "<text x=\"4\" y=\"%.0f\" font-family=\"sans-serif\" font-size=\"11\">", y + rh / 2 + 4);
        esc(&b, i < 0 ? "sequence" : a->res[i].label);
        sal_sb_printf(&b, "</text>\n");
        sal_logo_draw(&b, map, axis, L, lab, y + 4, cw * (double)L, rh - 8, sal_logo_extent(map, axis, L));
    }
    sal_sb_printf(&b, "</svg>\n");
    sal_status st = b.oom ? sal_fail(SAL_ERR_NOMEM, "out of memory") : sal_write_file(path, b.s, b.len);
    sal_sb_free(&b);
    return st;
}
