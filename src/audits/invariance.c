/* Input invariance (Kindermans et al., "The (un)reliability of saliency methods", sections 2-4):
 * a model f2 that sees x + m but computes exactly f1(x) should get the same explanation. */
#include "audit.h"
#include "graph/rewrite.h"
#include "methods/lrp.h"

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

/* xs - shift for every sample, as the twin computes it (graph/exec.c). */
static sal_status unshifted(const sal_tensor *xs, const sal_tensor *shift, sal_tensor *out) {
    SAL_TRY(sal_tensor_copy(out, xs));
    int64_t row = sal_tensor_numel(shift), n = sal_tensor_numel(xs);
    float *p = sal_f32(out);
    const float *m = sal_f32(shift);
    for (int64_t i = 0; i < n; i++) p[i] -= m[i % row];
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
    const sal_model *m;
    sal_model *f2;
    const sal_tensor *x, *xs, *ds; /* x, x + shift, data + shift (NULL without data) */
    const sal_tensor *x1;          /* where f1 is explained: x, or (x + shift) - shift with f1's
                                      activations given to f2 (the point the twin runs f1 at) */
    const sal_audit_common *o;
    const int64_t *target;         /* f1's predictions, explained on both models */
    int64_t B, C, H, W;
    double lo1, hi1, lo2, hi2;     /* the reference ranges of f1 and f2 */
    sal_tensor x1own;
    bool own;                      /* f2 on its own activations and patterns */
    float *p1, *p2;                /* channel-summed planes */
    sal_tensor A1, A2;
    au_patcache pc1, pc2;
    au_progress pr;
} ictx;

/* f2(x + m) = f1(x): the largest differences of the outputs, how often the predictions agree, and
 * f1's predictions as targets. */
static sal_status model_check(const ictx *c, sal_audit *a, const sal_tensor *shift, int64_t *target) {
    sal_tensor y1 = {0}, y2 = {0};
    sal_status st = au_outputs(c->m, c->x, c->B, &y1);
    if (st == SAL_OK) st = au_outputs(c->f2, c->xs, c->B, &y2);
    int64_t K = y1.dim[1], agree = 0, N = c->x->dim[0];
    double mad = 0, big = 0;
    for (int64_t i = 0; st == SAL_OK && i < N; i++) {
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
    a->inv.max_abs_diff = mad;
    a->inv.max_rel_diff = big > 0 ? mad / big : mad;
    a->inv.same_predictions = agree;
    double slo = INFINITY, shi = -INFINITY;
    for (int64_t k = 0, n = sal_tensor_numel(shift); k < n; k++)
        slo = fmin(slo, sal_f32(shift)[k]), shi = fmax(shi, sal_f32(shift)[k]);
    a->inv.shift_min = slo, a->inv.shift_max = shi;
    sal_tensor_free(&y1);
    sal_tensor_free(&y2);
    return st;
}

enum { IV_MD, IV_ND, IV_SP, IV_SS, IV_W }; /* per sample: largest difference, normalized, similarities */

/* One sample's pair of maps compared, into v. */
static void compare(ictx *c, const float *a1, const float *a2, double *v) {
    int64_t row = au_row(c->x), HW = c->H * c->W;
    double md = 0, big = 0;
    for (int64_t k = 0; k < row; k++) {
        md = fmax(md, fabs((double)a1[k] - a2[k]));
        big = fmax(big, fabs((double)a1[k]));
    }
    v[IV_MD] = md;
    v[IV_ND] = big > 0 ? md / big : md > 0 ? INFINITY : 0;
    v[IV_SP] = sal_spearman(a1, a2, row);
    au_plane(a1, c->C, HW, false, c->p1);
    au_plane(a2, c->C, HW, false, c->p2);
    double lo = INFINITY, hi = -INFINITY, s = NAN;
    for (int64_t k = 0; k < HW; k++) lo = fmin(lo, fmin(c->p1[k], c->p2[k])), hi = fmax(hi, fmax(c->p1[k], c->p2[k]));
    v[IV_SS] = sal_ssim(c->p1, c->p2, (int)c->H, (int)c->W, hi > lo ? hi - lo : 1, &s) == SAL_OK ? s : NAN;
}

/* This process's batches of one method: the maps of f1 at x and of f2 at x + m, compared. */
static sal_status explain_share(ictx *c, const sal_audit_method *meth, int64_t fs, au_share *sh, au_result *r) {
    int64_t row = au_row(c->x);
    for (int64_t i0 = sh->lo; i0 < sh->hi; i0 += c->B) {
        int64_t n = sh->hi - i0 < c->B ? sh->hi - i0 : c->B;
        sal_tensor xb = au_rows(c->x1, i0, n), xsb = au_rows(c->xs, i0, n);
        const sal_tensor *data = c->o->data;
        au_xopts e1 = {.meth = meth, .target = SAL_TARGET_INDEX, .classes = c->target + i0, .data = data,
                       .lo = c->lo1, .hi = c->hi1, .chunk = c->o->chunk, .prob = c->o->prob, .pc = &c->pc1,
                       .pdata = data ? data : c->x};
        au_xopts e2 = e1; /* f2's references and patterns come from the shifted data */
        e2.data = c->ds, e2.pc = &c->pc2, e2.pdata = data ? c->ds : c->xs, e2.lo = c->lo2, e2.hi = c->hi2;
        bool p1 = false, p2 = false;
        sal_status st = au_explain(c->m, &xb, &e1, &c->A1, &p1);
        if (st != SAL_OK) {
            au_share_skip(sh, i0);
            return au_skip(r, st, NULL);
        }
        if (p1 && !c->own && !c->pc2.p) { /* f2 gets f1's patterns (see twin_patterns) */
            SAL_TRY(sal_patterns_for_model(c->pc1.p, c->f2, &c->pc2.p));
            c->pc2.hash = sal_model_hash(c->f2);
        }
        if ((st = au_explain(c->f2, &xsb, &e2, &c->A2, &p2)) != SAL_OK) {
            au_share_skip(sh, i0);
            return au_skip(r, st, "on the shifted model");
        }
        r->patterns |= p1 || p2;
        for (int64_t i = 0; i < n; i++) {
            const float *a1 = sal_f32(&c->A1) + i * row, *a2 = sal_f32(&c->A2) + i * row;
            compare(c, a1, a2, sh->v + (i0 + i) * IV_W);
            if (i0 + i == fs) {
                SAL_TRY(au_keep_row(&r->maps[0], c->x, a1));
                SAL_TRY(au_keep_row(&r->maps[1], c->x, a2));
            }
        }
        au_progress_step(&c->pr, n, r->label);
    }
    return SAL_OK;
}

/* One method: its comparisons (this process's share), shared, then summarized over every sample. */
static sal_status run_method(ictx *c, const sal_audit_method *meth, int64_t fs, double tol, au_result *r) {
    int64_t N = c->x->dim[0];
    au_share sh;
    SAL_TRY(au_share_init(&sh, c->o, N, c->B, IV_W));
    sal_status st = au_share_end(&sh, explain_share(c, meth, fs, &sh, r), r, 2, c->x);
    if (st != SAL_OK || !au_ran(r)) {
        au_share_free(&sh);
        return st;
    }
    double maxnd = 0, maxad = 0;
    au_mean sp = {0}, ss = {0};
    for (int64_t i = 0; i < N; i++) {
        const double *v = sh.v + i * IV_W;
        maxad = fmax(maxad, v[IV_MD]);
        maxnd = fmax(maxnd, v[IV_ND]);
        au_mean_add(&sp, v[IV_SP]);
        au_mean_add(&ss, v[IV_SS]);
    }
    au_share_free(&sh);
    bool inv = maxnd <= tol;
    au_metric(r, "max_norm_diff", maxnd);
    au_metric(r, "max_abs_diff", maxad);
    au_metric(r, "spearman", au_mean_get(&sp));
    au_metric(r, "ssim", au_mean_get(&ss));
    if (isnan(maxnd)) {
        au_undetermined(r, "invariant", "the maps' difference is not a number");
        return SAL_OK;
    }
    au_metric_bool(r, "invariant", inv);
    au_verdict(r, inv ? SAL_VERDICT_PASS : SAL_VERDICT_FAIL, "%s (max normalized difference %.3g %s tolerance %g)",
               inv ? "invariant" : "not invariant", maxnd, inv ? "<=" : ">", tol);
    return SAL_OK;
}

/* The model check, the inputs of the figure and every method's comparison into a. */
static sal_status run(ictx *c, const sal_invariance_opts *o, const sal_audit_method *meths, int nm, sal_audit *a) {
    int64_t N = c->x->dim[0], fs = a->fig_sample;
    int64_t *target = sal_malloc((size_t)N * sizeof *target);
    if (!target) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    c->target = target;
    sal_status st = model_check(c, a, o->shift, target);
    /* the model check ran f2 on its own; the maps take f1's activations beyond the first layer, so
     * that rounding cannot break f1's exact ties differently (sal_model_set_twin) */
    a->inv.own = c->own = o->own_decisions != 0;
    if (st == SAL_OK && !a->inv.own) st = sal_model_set_twin(c->f2, c->m, o->shift);
    /* and f1 is explained where the twin runs it: at (x + m) - m, x up to the rounding of the two
     * additions, so that f2's maps and f1's rest on the very same activations */
    if (st == SAL_OK && !a->inv.own) st = unshifted(c->xs, o->shift, &c->x1own);
    if (st == SAL_OK && !a->inv.own) c->x1 = &c->x1own;
    /* reference ranges: of the data (or x), and of the shifted data for f2 */
    au_range(o->common.data ? o->common.data : c->x, &c->lo1, &c->hi1);
    au_range(o->common.data ? c->ds : c->xs, &c->lo2, &c->hi2);
    if (st == SAL_OK && fs >= 0) st = au_keep_row(&a->inputs[0], c->x, sal_f32(c->x) + fs * au_row(c->x));
    if (st == SAL_OK && fs >= 0) st = au_keep_row(&a->inputs[1], c->x, sal_f32(c->xs) + fs * au_row(c->x));
    au_progress_start(&c->pr, &o->common, "invariance", (int64_t)nm * N);
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        if ((st = au_result_init(&a->res[j], &meths[j])) != SAL_OK) break;
        st = run_method(c, &meths[j], fs, a->tol, &a->res[j]);
        c->pr.done = (int64_t)(j + 1) * N;
    }
    au_progress_end(&c->pr);
    sal_free(target);
    return st;
}

sal_status sal_audit_invariance(const sal_model *m, const sal_tensor *x, const sal_invariance_opts *o, sal_audit **out) {
    *out = NULL;
    const sal_audit_common *co = &o->common;
    if (!o->shift) return sal_fail(SAL_ERR_ARG, "the invariance audit needs a shift");
    SAL_TRY(check_batch("the input", x, o->shift));
    if (co->data) SAL_TRY(check_batch("the reference data", co->data, o->shift));
    sal_audit_method *meths = NULL;
    int nm = 0;
    SAL_TRY(au_methods(co, &meths, &nm));
    sal_audit *a = NULL;
    sal_model *f2 = NULL;
    sal_tensor xs = {0}, ds = {0};
    ictx c = {.m = m, .x = x, .x1 = x, .xs = &xs, .ds = co->data ? &ds : NULL, .o = co,
              .B = co->batch > 0 ? co->batch : 16};
    au_geom(x, &c.C, &c.H, &c.W);
    c.p1 = sal_malloc((size_t)(c.H * c.W) * sizeof *c.p1);
    c.p2 = sal_malloc((size_t)(c.H * c.W) * sizeof *c.p2);
    sal_status st = c.p1 && c.p2 ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = au_audit_new(AU_INVARIANCE, co, nm, 2, 2, &a);
    if (st == SAL_OK) {
        a->tol = co->tol > 0 ? co->tol : 0.01;
        a->samples = x->dim[0];
        if (a->fig_sample < 0 || a->fig_sample >= x->dim[0]) a->fig_sample = -1;
        st = sal_model_shifted(m, o->shift, &f2);
    }
    c.f2 = f2;
    if (st == SAL_OK) st = shifted_copy(x, o->shift, &xs);
    if (st == SAL_OK && co->data) st = shifted_copy(co->data, o->shift, &ds);
    if (st == SAL_OK) st = run(&c, o, meths, nm, a);
    au_patcache_free(&c.pc1);
    au_patcache_free(&c.pc2);
    sal_free(c.p1);
    sal_free(c.p2);
    sal_free(meths);
    sal_tensor_free(&xs);
    sal_tensor_free(&ds);
    sal_tensor_free(&c.x1own);
    sal_tensor_free(&c.A1);
    sal_tensor_free(&c.A2);
    sal_model_free(f2);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
