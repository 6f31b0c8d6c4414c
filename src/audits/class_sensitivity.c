/* Class sensitivity (Rebuffi et al. 2020, as used by Khakzar et al.): the maps of the highest- and
 * the lowest-scoring class of an image should differ; a method that shows the same picture for
 * both explains the image, not the prediction. */
#include "audit.h"

typedef struct {
    const sal_model *m;
    const sal_tensor *x;
    const sal_audit_common *o;
    int64_t B, C, H, W;
    int nfig;          /* samples whose maps the result keeps */
    double lo, hi;
    sal_tensor Amax, Amin;
    float *work;
    au_patcache pc;
    au_progress pr;
} cctx;

enum { CS_SP, CS_HS, CS_HP, CS_SAME, CS_W }; /* per sample: similarities, identical maps */

/* This process's batches of one method: the maps of the top and the bottom class, compared. */
static sal_status explain_share(cctx *c, const sal_audit_method *meth, au_share *sh, au_result *r) {
    int64_t row = au_row(c->x);
    for (int64_t i0 = sh->lo; i0 < sh->hi; i0 += c->B) {
        int64_t n = sh->hi - i0 < c->B ? sh->hi - i0 : c->B;
        sal_tensor xb = au_rows(c->x, i0, n);
        const sal_tensor *data = c->o->data;
        au_xopts xo = {.meth = meth, .target = SAL_TARGET_MAX, .data = data, .lo = c->lo, .hi = c->hi,
                       .chunk = c->o->chunk, .prob = c->o->prob, .pc = &c->pc, .pdata = data ? data : c->x};
        bool p1 = false, p2 = false;
        sal_status st = au_explain(c->m, &xb, &xo, &c->Amax, &p1);
        xo.target = SAL_TARGET_MIN;
        if (st == SAL_OK) st = au_explain(c->m, &xb, &xo, &c->Amin, &p2);
        if (st != SAL_OK) {
            au_share_skip(sh, i0);
            return au_skip(r, st, NULL);
        }
        r->patterns |= p1 || p2;
        for (int64_t i = 0; i < n; i++) {
            const float *a1 = sal_f32(&c->Amax) + i * row, *a2 = sal_f32(&c->Amin) + i * row;
            double s[AU_NSIM], *v = sh->v + (i0 + i) * CS_W;
            au_similarity(a1, a2, c->C, c->H, c->W, c->work, s);
            v[CS_SP] = s[AU_SPEAR], v[CS_HS] = s[AU_HOG_S], v[CS_HP] = s[AU_HOG_P];
            v[CS_SAME] = !memcmp(a1, a2, (size_t)row * sizeof *a1);
            int64_t q = i0 + i;
            if (q < c->nfig) {
                SAL_TRY(au_keep_row(&r->maps[2 * q], c->x, a1));
                SAL_TRY(au_keep_row(&r->maps[2 * q + 1], c->x, a2));
            }
        }
        au_progress_step(&c->pr, n, r->label);
    }
    return SAL_OK;
}

/* One method: its maps (this process's share), shared, then the means over every sample. */
static sal_status run_method(cctx *c, const sal_audit_method *meth, double tol, au_result *r) {
    int64_t N = c->x->dim[0];
    au_share sh;
    SAL_TRY(au_share_init(&sh, c->o, N, c->B, CS_W));
    sal_status st = au_share_end(&sh, explain_share(c, meth, &sh, r), r, 2 * c->nfig, c->x);
    if (st != SAL_OK || !au_ran(r)) {
        au_share_free(&sh);
        return st;
    }
    au_mean sp = {0}, hs = {0}, hp = {0}, same = {0};
    int64_t undefined = 0; /* samples where neither correlation is defined (a constant map) */
    for (int64_t i = 0; i < N; i++) {
        const double *v = sh.v + i * CS_W;
        au_mean_add(&sp, v[CS_SP]);
        au_mean_add(&hs, v[CS_HS]);
        au_mean_add(&hp, v[CS_HP]);
        au_mean_add(&same, v[CS_SAME]);
        undefined += !isfinite(v[CS_HS]) && !isfinite(v[CS_SP]);
    }
    au_share_free(&sh);
    double score = au_mean_get(&hs), shown = isfinite(score) ? score : au_mean_get(&sp);
    au_metric(r, "spearman", au_mean_get(&sp));
    au_metric(r, "hog_spearman", score);
    au_metric(r, "hog_pearson", au_mean_get(&hp));
    au_metric(r, "identical_fraction", au_mean_get(&same));
    au_metric(r, "undefined_samples", (double)undefined);
    if (!isfinite(shown)) {
        /* a correlation with a constant map (e.g. a CAM that the final ReLU zeroes for the bottom
         * class) is undefined: no number to compare with the threshold */
        au_undetermined(r, "class_sensitive", "the correlation of the max- and min-class maps is undefined for all %lld "
                        "samples: one of the two maps is constant (often all zero)", (long long)N);
        return SAL_OK;
    }
    bool sens = shown < tol;
    au_metric_bool(r, "class_sensitive", sens);
    au_verdict(r, sens ? SAL_VERDICT_PASS : SAL_VERDICT_FAIL,
               "%s (mean %s between the max- and min-class maps %.3g %s threshold %g%s)",
               sens ? "class-sensitive" : "not class-sensitive", isfinite(score) ? "Spearman of HOG" : "Spearman",
               shown, sens ? "<" : ">=", tol, undefined ? "; samples with a constant map left out" : "");
    return SAL_OK;
}

sal_status sal_audit_class_sensitivity(const sal_model *m, const sal_tensor *x, const sal_class_sensitivity_opts *o,
                                       sal_audit **out) {
    *out = NULL;
    const sal_audit_common *co = &o->common;
    if (x->dtype != SAL_F32 || x->ndim < 2 || x->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "the class-sensitivity audit needs a float32 batch (N, ...)");
    int64_t N = x->dim[0];
    cctx c = {.m = m, .x = x, .o = co, .B = co->batch > 0 ? co->batch : 16};
    au_geom(x, &c.C, &c.H, &c.W);
    c.nfig = o->figure_samples > 0 ? o->figure_samples : 4;
    if (c.nfig > N) c.nfig = (int)N;
    au_range(co->data ? co->data : x, &c.lo, &c.hi);
    sal_audit_method *meths = NULL;
    int nm = 0;
    SAL_TRY(au_methods(co, &meths, &nm));
    sal_audit *a = NULL;
    c.work = sal_malloc((size_t)au_sim_work(c.C, c.H, c.W) * sizeof *c.work);
    sal_status st = c.work ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = au_audit_new(AU_CLASS_SENSITIVITY, co, nm, 2 * c.nfig, c.nfig, &a);
    if (st == SAL_OK) {
        a->tol = co->tol > 0 ? co->tol : 0.5;
        a->samples = N;
        a->fig_sample = 0; /* the figure shows the first nfig samples */
        a->cls.nfig = c.nfig;
    }
    for (int q = 0; st == SAL_OK && q < c.nfig; q++) st = au_keep_row(&a->inputs[q], x, sal_f32(x) + q * au_row(x));
    au_progress_start(&c.pr, co, "class-sensitivity", (int64_t)nm * N);
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        if ((st = au_result_init(&a->res[j], &meths[j])) == SAL_OK) st = run_method(&c, &meths[j], a->tol, &a->res[j]);
        c.pr.done = (int64_t)(j + 1) * N;
    }
    au_progress_end(&c.pr);
    au_patcache_free(&c.pc);
    sal_free(c.work);
    sal_free(meths);
    sal_tensor_free(&c.Amax);
    sal_tensor_free(&c.Amin);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
