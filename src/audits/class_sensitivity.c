/* Class sensitivity (Rebuffi et al. 2020, as used by Khakzar et al.): the maps of the highest- and
 * the lowest-scoring class of an image should differ; a method that shows the same picture for
 * both explains the image, not the prediction. */
#include "audit.h"

sal_status sal_audit_class_sensitivity(const sal_model *m, const sal_tensor *x, const sal_audit_opts *o,
                                       sal_audit **out) {
    *out = NULL;
    if (x->dtype != SAL_F32 || x->ndim < 2 || x->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "the class-sensitivity audit needs a float32 batch (N, ...)");
    int64_t N = x->dim[0], row = au_row(x), B = o->batch > 0 ? o->batch : 16, C, H, W;
    au_geom(x, &C, &H, &W);
    int nfig = o->figure_samples > 0 ? o->figure_samples : 4;
    if (nfig > N) nfig = (int)N;
    double tol = o->tol > 0 ? o->tol : 0.5, lo, hi;
    au_range(o->data ? o->data : x, &lo, &hi);
    sal_audit_method *meths = NULL;
    int nm = 0;
    SAL_TRY(au_methods(o, &meths, &nm));
    sal_audit *a = NULL;
    sal_tensor Amax = {0}, Amin = {0};
    float *work = sal_malloc((size_t)au_sim_work(C, H, W) * sizeof *work);
    /* figure maps: per method, nfig samples, max then min */
    sal_tensor *fig = o->figure ? sal_calloc((size_t)(nm > 0 ? nm : 1) * (size_t)nfig * 2, sizeof *fig) : NULL;
    sal_status st = work && (fig || !o->figure) ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = au_report_new("class-sensitivity", o, nm, &a);
    if (st == SAL_OK) a->tol = tol;
    au_patcache pc = {0};
    au_progress pr;
    au_progress_start(&pr, o->progress, "class-sensitivity", (int64_t)nm * N);
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        au_result *r = &a->res[j];
        if ((st = au_result_init(r, &meths[j])) != SAL_OK) break;
        au_mean sp = {0}, hs = {0}, hp = {0}, same = {0};
        bool skipped = false;
        for (int64_t i0 = 0; i0 < N && !skipped && st == SAL_OK; i0 += B) {
            int64_t n = N - i0 < B ? N - i0 : B;
            sal_tensor xb = au_rows(x, i0, n);
            au_xopts xo = {.meth = &meths[j], .target = SAL_TARGET_MAX, .data = o->data, .lo = lo, .hi = hi,
                           .chunk = o->chunk, .prob = o->prob, .pc = &pc, .pdata = o->data ? o->data : x};
            sal_status s1 = au_explain(m, &xb, &xo, &Amax, NULL);
            xo.target = SAL_TARGET_MIN;
            if (s1 == SAL_OK) s1 = au_explain(m, &xb, &xo, &Amin, NULL);
            if (s1 != SAL_OK) {
                if (s1 == SAL_ERR_NOMEM) st = s1;
                else au_skip(r, sal_last_error()), skipped = true;
                break;
            }
            for (int64_t i = 0; i < n; i++) {
                const float *a1 = sal_f32(&Amax) + i * row, *a2 = sal_f32(&Amin) + i * row;
                au_sim s;
                au_similarity(a1, a2, C, H, W, work, &s);
                au_mean_add(&sp, s.spearman);
                au_mean_add(&hs, s.hog_spearman);
                au_mean_add(&hp, s.hog_pearson);
                bool eq = !memcmp(a1, a2, (size_t)row * sizeof *a1);
                au_mean_add(&same, eq);
                int64_t q = i0 + i;
                if (fig && q < nfig) {
                    sal_tensor *f = &fig[((size_t)j * (size_t)nfig + (size_t)q) * 2];
                    if ((st = au_keep_row(&f[0], x, a1)) != SAL_OK || (st = au_keep_row(&f[1], x, a2)) != SAL_OK) break;
                }
            }
            au_progress_step(&pr, n, r->label);
        }
        if (st != SAL_OK || skipped) continue;
        if (pc.used) sal_sb_printf(&r->extra, ",\n      \"patterns\": \"estimated by the audit for each model from its reference data\"");
        pc.used = false;
        double score = au_mean_get(&hs);
        au_metric(r, "spearman", au_mean_get(&sp));
        au_metric(r, "hog_spearman", score);
        au_metric(r, "hog_pearson", au_mean_get(&hp));
        au_metric(r, "identical_fraction", au_mean_get(&same));
        bool sens = isfinite(score) ? score < tol : au_mean_get(&sp) < tol;
        double shown = isfinite(score) ? score : au_mean_get(&sp);
        au_metric_bool(r, "class_sensitive", sens);
        au_verdict(r, !sens, "%s (mean %s between the max- and min-class maps %.3g %s threshold %g)",
                   sens ? "class-sensitive" : "not class-sensitive", isfinite(score) ? "Spearman of HOG" : "Spearman",
                   shown, sens ? "<" : ">=", tol);
    }
    au_progress_end(&pr);
    au_patcache_free(&pc);
    /* figure: rows = methods; per sample its max-class and min-class maps */
    int ran = 0;
    for (int j = 0; st == SAL_OK && j < nm; j++) ran += !a->res[j].skipped;
    if (st == SAL_OK && fig && ran) {
        int cols = 3 * nfig;
        sal_grid_tile *t = sal_calloc((size_t)ran * (size_t)cols, sizeof *t);
        const char **labels = sal_calloc((size_t)ran, sizeof *labels), **cl = sal_calloc((size_t)cols, sizeof *cl);
        sal_tensor *xs = sal_calloc((size_t)nfig, sizeof *xs);
        if (!t || !labels || !cl || !xs) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        for (int q = 0; st == SAL_OK && q < nfig; q++) {
            xs[q] = au_rows(x, q, 1);
            cl[3 * q] = "input", cl[3 * q + 1] = "max class", cl[3 * q + 2] = "min class";
        }
        for (int j = 0, k = 0; st == SAL_OK && j < nm; j++) {
            if (a->res[j].skipped) continue;
            labels[k] = a->res[j].label;
            for (int q = 0; q < nfig; q++) {
                t[k * cols + 3 * q].image = &xs[q];
                t[k * cols + 3 * q + 1].map = &fig[((size_t)j * (size_t)nfig + (size_t)q) * 2];
                t[k * cols + 3 * q + 2].map = &fig[((size_t)j * (size_t)nfig + (size_t)q) * 2 + 1];
            }
            k++;
        }
        sal_grid_opts go = {.share = SAL_SHARE_TILE, .row_labels = labels, .col_labels = cl};
        go.heat.scale = H * W <= 64 * 64 ? 3 : 1;
        if (st == SAL_OK) st = sal_png_grid(o->figure, ran, cols, t, &go);
        sal_free(t);
        sal_free(labels);
        sal_free(cl);
        sal_free(xs);
    }
    for (size_t i = 0; fig && i < (size_t)(nm > 0 ? nm : 1) * (size_t)nfig * 2; i++) sal_tensor_free(&fig[i]);
    sal_free(fig);
    sal_free(work);
    sal_free(meths);
    sal_tensor_free(&Amax);
    sal_tensor_free(&Amin);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
