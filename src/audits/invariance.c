/* Input invariance (Kindermans et al., "The (un)reliability of saliency methods", sections 2-4):
 * a model f2 that sees x + m but computes exactly f1(x) should get the same explanation. */
#include "audit.h"

/* x + shift for every sample of x (or of data). */
static sal_status shifted_copy(const sal_tensor *x, const sal_tensor *shift, sal_tensor *out) {
    SAL_TRY(sal_tensor_copy(out, x));
    int64_t row = sal_tensor_numel(shift), N = x->dim[0];
    float *p = sal_f32(out);
    const float *m = sal_f32(shift);
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < row; k++) p[i * row + k] += m[k];
    return SAL_OK;
}

static sal_status check_batch(const char *what, const sal_tensor *x, const sal_tensor *shift) {
    char a[160], b[160];
    if (x->dtype != SAL_F32 || x->ndim < 2 || x->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "%s must be a float32 batch (N, ...), not %s", what,
                        sal_shape_str(x->ndim, x->dim, a, sizeof a));
    if (shift && (shift->ndim != x->ndim - 1 || memcmp(shift->dim, x->dim + 1, sizeof(int64_t) * (size_t)shift->ndim)))
        return sal_fail(SAL_ERR_SHAPE, "the shift %s does not have the shape of one sample of %s %s",
                        sal_shape_str(shift->ndim, shift->dim, a, sizeof a), what,
                        sal_shape_str(x->ndim, x->dim, b, sizeof b));
    return SAL_OK;
}

typedef struct {
    sal_tensor a1, a2; /* the figure sample's maps */
} fig_maps;

sal_status sal_audit_invariance(const sal_model *m, const sal_tensor *x, const sal_audit_opts *o, sal_audit **out) {
    *out = NULL;
    if (!o->shift) return sal_fail(SAL_ERR_ARG, "the invariance audit needs a shift");
    SAL_TRY(check_batch("the input", x, o->shift));
    if (o->data) SAL_TRY(check_batch("the reference data", o->data, o->shift));
    int64_t N = x->dim[0], row = au_row(x), B = o->batch > 0 ? o->batch : 16;
    int64_t fs = o->figure_sample;
    if (o->figure && (fs < 0 || fs >= N))
        return sal_fail(SAL_ERR_ARG, "figure sample %lld is out of range (%lld samples)", (long long)fs, (long long)N);
    double tol = o->tol > 0 ? o->tol : 0.01;
    sal_audit_method *meths = NULL;
    int nm = 0;
    SAL_TRY(au_methods(o, &meths, &nm));
    sal_audit *a = NULL;
    sal_model *f2 = NULL;
    sal_tensor xs = {0}, ds = {0}, y1 = {0}, y2 = {0}, A1 = {0}, A2 = {0};
    fig_maps *fig = NULL;
    int64_t *target = sal_malloc((size_t)N * sizeof *target);
    int64_t C, H, W;
    au_geom(x, &C, &H, &W);
    float *p1 = NULL, *p2 = NULL;
    sal_status st = target ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = au_report_new("invariance", o, nm, &a);
    if (st == SAL_OK) {
        a->tol = tol;
        fig = sal_calloc((size_t)nm, sizeof *fig);
        p1 = sal_malloc((size_t)(H * W) * sizeof *p1);
        p2 = sal_malloc((size_t)(H * W) * sizeof *p2);
        if (!fig || !p1 || !p2) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    if (st == SAL_OK) st = sal_model_shifted(m, o->shift, &f2);
    if (st == SAL_OK) st = shifted_copy(x, o->shift, &xs);
    if (st == SAL_OK && o->data) st = shifted_copy(o->data, o->shift, &ds);
    /* the model check: f2(x + m) = f1(x) */
    if (st == SAL_OK) st = au_outputs(m, x, B, &y1);
    if (st == SAL_OK) st = au_outputs(f2, &xs, B, &y2);
    if (st == SAL_OK) {
        double mad = 0, big = 0;
        int64_t K = y1.dim[1], agree = 0;
        for (int64_t i = 0; i < N; i++) {
            const float *z1 = sal_f32(&y1) + i * K, *z2 = sal_f32(&y2) + i * K;
            int64_t b1 = 0, b2 = 0;
            for (int64_t k = 0; k < K; k++) {
                mad = fmax(mad, fabs((double)z1[k] - z2[k]));
                big = fmax(big, fabs((double)z1[k]));
                if (z1[k] > z1[b1]) b1 = k;
                if (z2[k] > z2[b2]) b2 = k;
            }
            target[i] = b1;
            agree += b1 == b2;
        }
        sal_sb_printf(&a->top, ",\n  \"model_check\": {\"max_abs_diff\": ");
        sal_sb_num(&a->top, mad);
        sal_sb_printf(&a->top, ", \"max_rel_diff\": ");
        sal_sb_num(&a->top, big > 0 ? mad / big : mad);
        sal_sb_printf(&a->top, ", \"same_predictions\": %lld, \"samples\": %lld}", (long long)agree, (long long)N);
        double slo = INFINITY, shi = -INFINITY;
        for (int64_t k = 0, n = sal_tensor_numel(o->shift); k < n; k++)
            slo = fmin(slo, sal_f32(o->shift)[k]), shi = fmax(shi, sal_f32(o->shift)[k]);
        sal_sb_printf(&a->top, ",\n  \"shift\": {\"min\": ");
        sal_sb_num(&a->top, slo);
        sal_sb_printf(&a->top, ", \"max\": ");
        sal_sb_num(&a->top, shi);
        sal_sb_printf(&a->top, "}");
    }
    /* reference ranges: of the data (or x), and of the shifted data for f2 */
    double lo1 = 0, hi1 = 0, lo2 = 0, hi2 = 0;
    if (st == SAL_OK) {
        au_range(o->data ? o->data : x, &lo1, &hi1);
        au_range(o->data ? &ds : &xs, &lo2, &hi2);
    }
    au_patcache pc1 = {0}, pc2 = {0};
    au_progress pr;
    au_progress_start(&pr, o->progress, "invariance", (int64_t)nm * N);
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        au_result *r = &a->res[j];
        if ((st = au_result_init(r, &meths[j])) != SAL_OK) break;
        double maxnd = 0, maxad = 0;
        au_mean sp = {0}, ss = {0};
        bool failed = false;
        for (int64_t i0 = 0; i0 < N && !failed; i0 += B) {
            int64_t n = N - i0 < B ? N - i0 : B;
            sal_tensor xb = au_rows(x, i0, n), xsb = au_rows(&xs, i0, n);
            au_xopts e1 = {.meth = &meths[j], .target = SAL_TARGET_INDEX, .classes = target + i0, .data = o->data,
                           .lo = lo1, .hi = hi1, .chunk = o->chunk, .prob = o->prob, .pc = &pc1,
                           .pdata = o->data ? o->data : x};
            au_xopts e2 = e1;
            e2.data = o->data ? &ds : NULL;
            e2.pc = &pc2, e2.pdata = o->data ? &ds : &xs; /* f2's patterns come from the shifted data */
            e2.lo = lo2, e2.hi = hi2;
            sal_status s1 = au_explain(m, &xb, &e1, &A1, NULL);
            sal_status s2 = s1 == SAL_OK ? au_explain(f2, &xsb, &e2, &A2, NULL) : s1;
            if (s1 != SAL_OK || s2 != SAL_OK) {
                if ((s1 != SAL_OK ? s1 : s2) == SAL_ERR_NOMEM) {
                    st = SAL_ERR_NOMEM;
                    break;
                }
                char why[600];
                snprintf(why, sizeof why, "%s%s", s1 != SAL_OK ? "" : "on the shifted model: ", sal_last_error());
                au_skip(r, why);
                failed = true;
                break;
            }
            for (int64_t i = 0; i < n; i++) {
                const float *a1 = sal_f32(&A1) + i * row, *a2 = sal_f32(&A2) + i * row;
                double md = 0, big = 0;
                for (int64_t k = 0; k < row; k++) {
                    md = fmax(md, fabs((double)a1[k] - a2[k]));
                    big = fmax(big, fabs((double)a1[k]));
                }
                maxad = fmax(maxad, md);
                maxnd = fmax(maxnd, big > 0 ? md / big : md > 0 ? INFINITY : 0);
                au_mean_add(&sp, sal_spearman(a1, a2, row));
                au_plane(a1, C, H * W, false, p1);
                au_plane(a2, C, H * W, false, p2);
                double lo = INFINITY, hi = -INFINITY, s = NAN;
                for (int64_t k = 0; k < H * W; k++)
                    lo = fmin(lo, fmin(p1[k], p2[k])), hi = fmax(hi, fmax(p1[k], p2[k]));
                if (sal_ssim(p1, p2, (int)H, (int)W, hi > lo ? hi - lo : 1, &s) == SAL_OK) au_mean_add(&ss, s);
                if (o->figure && i0 + i == fs) {
                    int64_t one[SAL_MAX_DIMS];
                    memcpy(one, x->dim, sizeof one);
                    one[0] = 1;
                    if ((st = sal_tensor_alloc(&fig[j].a1, SAL_F32, x->ndim, one)) != SAL_OK ||
                        (st = sal_tensor_alloc(&fig[j].a2, SAL_F32, x->ndim, one)) != SAL_OK)
                        break;
                    memcpy(fig[j].a1.data, a1, (size_t)row * sizeof(float));
                    memcpy(fig[j].a2.data, a2, (size_t)row * sizeof(float));
                }
            }
            au_progress_step(&pr, n, r->label);
            if (st != SAL_OK) break;
        }
        if (st != SAL_OK) break;
        if (failed) {
            au_progress_step(&pr, 0, r->label);
            continue;
        }
        if (pc1.used) sal_sb_printf(&r->extra, ",\n      \"patterns\": \"estimated by the audit for each model from its reference data\"");
        pc1.used = pc2.used = false;
        bool inv = maxnd <= tol;
        au_metric(r, "max_norm_diff", maxnd);
        au_metric(r, "max_abs_diff", maxad);
        au_metric(r, "spearman", au_mean_get(&sp));
        au_metric(r, "ssim", au_mean_get(&ss));
        au_metric_bool(r, "invariant", inv);
        au_verdict(r, !inv, "%s (max normalized difference %.3g %s tolerance %g)", inv ? "invariant" : "not invariant",
                   maxnd, inv ? "<=" : ">", tol);
    }
    au_progress_end(&pr);
    au_patcache_free(&pc1);
    au_patcache_free(&pc2);
    /* the figure: rows = methods; input, map of f1, shifted input, map of f2 (as the paper's figures) */
    if (st == SAL_OK && o->figure) {
        int rows = 0;
        for (int j = 0; j < nm; j++) rows += !a->res[j].skipped && fig[j].a1.data;
        if (!rows) {
            st = sal_fail(SAL_ERR_ARG, "no method ran, so there is no figure to draw (%s)", o->figure);
        } else {
            sal_grid_tile *t = sal_calloc((size_t)rows * 4, sizeof *t);
            const char **labels = sal_calloc((size_t)rows, sizeof *labels);
            sal_tensor x1 = au_rows(x, fs, 1), x2 = au_rows(&xs, fs, 1);
            if (!t || !labels) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
            for (int j = 0, r = 0; j < nm && st == SAL_OK; j++) {
                if (a->res[j].skipped || !fig[j].a1.data) continue;
                labels[r] = a->res[j].label;
                t[r * 4 + 0].image = &x1;
                t[r * 4 + 1].map = &fig[j].a1;
                t[r * 4 + 2].image = &x2;
                t[r * 4 + 3].map = &fig[j].a2;
                r++;
            }
            static const char *const cols[4] = {"input", "f1 map", "shifted input", "f2 map"};
            sal_grid_opts go = {.share = SAL_SHARE_ROW, .row_labels = labels, .col_labels = cols};
            go.heat.scale = H * W <= 64 * 64 ? 4 : 1;
            if (st == SAL_OK) st = sal_png_grid(o->figure, rows, 4, t, &go);
            sal_free(t);
            sal_free(labels);
        }
    }
    for (int j = 0; fig && j < nm; j++) {
        sal_tensor_free(&fig[j].a1);
        sal_tensor_free(&fig[j].a2);
    }
    sal_free(fig);
    sal_free(p1);
    sal_free(p2);
    sal_free(target);
    sal_free(meths);
    sal_tensor_free(&xs);
    sal_tensor_free(&ds);
    sal_tensor_free(&y1);
    sal_tensor_free(&y2);
    sal_tensor_free(&A1);
    sal_tensor_free(&A2);
    sal_model_free(f2);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
