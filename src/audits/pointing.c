/* Pointing game (Zhang et al. 2018) and restricted pointing game (Khakzar et al. 2021) on images
 * holding several labelled objects: does the maximum of the map for class k fall on an object of
 * class k? The restricted game asks the same of the single map of the top class: when it scores
 * as well, the maps do not depend on the class asked for. */
#include "audit.h"

typedef struct {
    const sal_tensor *masks;
    bool labelmap; /* (N,H,W) of class + 1, else (N,K,H,W) */
    int64_t K, H, W;
    int radius;
} masks_t;

static double mask_at(const sal_tensor *t, int64_t idx) {
    return t->dtype == SAL_I64 ? (double)((const int64_t *)t->data)[idx] : (double)sal_f32(t)[idx];
}

/* Is there a pixel of class k within radius of (y, x) in sample i's mask? */
static bool hit(const masks_t *mk, int64_t i, int64_t k, int64_t y, int64_t x) {
    int r = mk->radius;
    for (int64_t yy = y - r; yy <= y + r; yy++)
        for (int64_t xx = x - r; xx <= x + r; xx++) {
            if (yy < 0 || yy >= mk->H || xx < 0 || xx >= mk->W || (yy - y) * (yy - y) + (xx - x) * (xx - x) > r * r) continue;
            double v = mk->labelmap ? mask_at(mk->masks, (i * mk->H + yy) * mk->W + xx)
                                    : mask_at(mk->masks, ((i * mk->K + k) * mk->H + yy) * mk->W + xx);
            if (mk->labelmap ? v == (double)(k + 1) : v != 0) return true;
        }
    return false;
}

/* Position of the largest value of the channel-summed map (first one on ties). */
static void argmax(const float *map, int64_t C, int64_t H, int64_t W, float *plane, int64_t *y, int64_t *x) {
    au_plane(map, C, H * W, false, plane);
    int64_t b = 0;
    for (int64_t p = 1; p < H * W; p++)
        if (plane[p] > plane[b]) b = p;
    *y = b / W, *x = b % W;
}

static double label_at(const sal_tensor *t, int64_t i, int64_t k) {
    return t->dtype == SAL_I64 ? (double)((const int64_t *)t->data)[i * t->dim[1] + k] : (double)sal_f32(t)[i * t->dim[1] + k];
}

/* Rows = methods that ran: the input, the maps of the labelled classes fk and the top class's. */
static sal_status figure(const char *path, const sal_audit *a, const sal_tensor *x, int64_t fs, const sal_tensor *fig,
                         const int64_t *fk, int nfk, int64_t top) {
    int ran = 0, cols = nfk + 2;
    for (int j = 0; j < a->nres; j++) ran += !a->res[j].skipped;
    if (!ran) return SAL_OK;
    char names[4][40];
    const char *cl[5] = {"input"};
    for (int f = 0; f < nfk; f++) snprintf(names[f], sizeof names[f], "class %lld", (long long)fk[f]), cl[1 + f] = names[f];
    snprintf(names[3], sizeof names[3], "top class %lld", (long long)top);
    cl[nfk + 1] = names[3];
    sal_grid_tile *t = sal_calloc((size_t)ran * (size_t)cols, sizeof *t);
    const char **labels = sal_calloc((size_t)ran, sizeof *labels);
    sal_status st = t && labels ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_tensor xs = au_rows(x, fs, 1);
    for (int j = 0, k = 0; st == SAL_OK && j < a->nres; j++) {
        if (a->res[j].skipped) continue;
        labels[k] = a->res[j].label;
        t[k * cols].image = &xs;
        for (int f = 0; f <= nfk; f++) t[k * cols + 1 + f].map = &fig[(size_t)j * (size_t)(nfk + 1) + (size_t)f];
        k++;
    }
    /* one scale per row: the maps of one method for different classes compare */
    sal_grid_opts go = {.share = SAL_SHARE_ROW, .row_labels = labels, .col_labels = cl};
    go.heat.scale = x->dim[2] * x->dim[3] <= 64 * 64 ? 3 : 1;
    if (st == SAL_OK) st = sal_png_grid(path, ran, cols, t, &go);
    sal_free(t);
    sal_free(labels);
    return st;
}

sal_status sal_audit_pointing(const sal_model *m, const sal_tensor *x, const sal_audit_opts *o, sal_audit **out) {
    *out = NULL;
    char a1[160], a2[160];
    if (x->dtype != SAL_F32 || x->ndim != 4 || x->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "the pointing game needs images (N, C, H, W), not %s",
                        sal_shape_str(x->ndim, x->dim, a1, sizeof a1));
    if (!o->masks || !o->labels) return sal_fail(SAL_ERR_ARG, "the pointing game needs masks and labels");
    int64_t N = x->dim[0], H = x->dim[2], W = x->dim[3], C = x->dim[1];
    const sal_tensor *mt = o->masks, *lt = o->labels;
    if (lt->ndim != 2 || lt->dim[0] != N || lt->dim[1] < 1)
        return sal_fail(SAL_ERR_SHAPE, "labels %s must be multi-hot (N, K) with N = %lld",
                        sal_shape_str(lt->ndim, lt->dim, a1, sizeof a1), (long long)N);
    masks_t mk = {.masks = mt, .K = lt->dim[1], .H = H, .W = W, .radius = o->radius};
    if (mt->ndim == 3 && mt->dim[0] == N && mt->dim[1] == H && mt->dim[2] == W) mk.labelmap = true;
    else if (!(mt->ndim == 4 && mt->dim[0] == N && mt->dim[1] == mk.K && mt->dim[2] == H && mt->dim[3] == W))
        return sal_fail(SAL_ERR_SHAPE, "masks %s must be (N, H, W) class + 1 per pixel or (N, K, H, W) for images %s "
                        "and %lld classes", sal_shape_str(mt->ndim, mt->dim, a1, sizeof a1),
                        sal_shape_str(x->ndim, x->dim, a2, sizeof a2), (long long)mk.K);
    if (o->radius < 0) return sal_fail(SAL_ERR_ARG, "the pointing radius must be non-negative");
    /* the (sample, class) pairs of the game */
    int64_t npair = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < mk.K; k++) npair += label_at(lt, i, k) >= 0.5;
    if (!npair) return sal_fail(SAL_ERR_ARG, "no sample has a label: nothing to point at");
    int64_t *ps = sal_malloc((size_t)npair * sizeof *ps), *pk = sal_malloc((size_t)npair * sizeof *pk);
    int64_t *top = sal_malloc((size_t)N * sizeof *top), B = o->batch > 0 ? o->batch : 16, row = au_row(x);
    float *plane = sal_malloc((size_t)(H * W) * sizeof *plane);
    if (!ps || !pk || !top || !plane) {
        sal_free(ps), sal_free(pk), sal_free(top), sal_free(plane);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    npair = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < mk.K; k++)
            if (label_at(lt, i, k) >= 0.5) ps[npair] = i, pk[npair++] = k;
    double tol = o->tol > 0 ? o->tol : 0.05, lo, hi;
    au_range(o->data ? o->data : x, &lo, &hi);
    sal_audit_method *meths = NULL;
    int nm = 0;
    sal_audit *a = NULL;
    sal_tensor xb = {0}, A = {0}, y = {0};
    sal_status st = au_methods(o, &meths, &nm);
    if (st == SAL_OK) st = au_report_new("pointing", o, nm, &a);
    if (st == SAL_OK) st = au_outputs(m, x, B, &y);
    if (st == SAL_OK && y.dim[1] < mk.K)
        st = sal_fail(SAL_ERR_SHAPE, "the labels name %lld classes; %s has %lld outputs", (long long)mk.K, m->path,
                      (long long)y.dim[1]);
    int64_t top_in = 0; /* how often the top class is one of the image's labels */
    for (int64_t i = 0; st == SAL_OK && i < N; i++) {
        const float *z = sal_f32(&y) + i * y.dim[1];
        int64_t b = 0;
        for (int64_t k = 1; k < y.dim[1]; k++)
            if (z[k] > z[b]) b = k;
        top[i] = b;
        top_in += b < mk.K && label_at(lt, i, b) >= 0.5;
    }
    if (st == SAL_OK) {
        a->tol = tol;
        sal_sb_printf(&a->top, ",\n  \"trials\": %lld,\n  \"images\": %lld,\n  \"top_class_labelled\": ", (long long)npair,
                  (long long)N);
        sal_sb_num(&a->top, (double)top_in / (double)N);
        sal_sb_printf(&a->top, ",\n  \"radius\": %d", o->radius);
    }
    /* figure: one sample (figure_sample), per method its maps for up to three of its labelled
     * classes and the top class's map, the one the restricted game scores */
    int64_t fs = o->figure_sample > 0 && o->figure_sample < N ? o->figure_sample : 0, fk[3];
    int nfk = 0;
    for (int64_t k = 0; k < mk.K && nfk < 3; k++)
        if (label_at(lt, fs, k) >= 0.5) fk[nfk++] = k;
    int fcols = nfk + 1;
    sal_tensor *fig = st == SAL_OK && o->figure ? sal_calloc((size_t)(nm > 0 ? nm : 1) * (size_t)fcols, sizeof *fig) : NULL;
    if (st == SAL_OK && o->figure && !fig) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    au_patcache pc = {0};
    au_progress pr;
    au_progress_start(&pr, o->progress, "pointing", (int64_t)nm * (npair + N));
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        au_result *r = &a->res[j];
        if ((st = au_result_init(r, &meths[j])) != SAL_OK) break;
        int64_t hits = 0, rhits = 0;
        bool skipped = false;
        /* the pointing game: one map per (sample, labelled class) pair */
        for (int64_t p0 = 0; p0 < npair && !skipped && st == SAL_OK; p0 += B) {
            int64_t n = npair - p0 < B ? npair - p0 : B;
            if ((st = au_gather(x, ps + p0, n, &xb)) != SAL_OK) break;
            au_xopts xo = {.meth = &meths[j], .target = SAL_TARGET_INDEX, .classes = pk + p0, .data = o->data, .lo = lo,
                           .hi = hi, .chunk = o->chunk, .prob = o->prob, .pc = &pc, .pdata = o->data ? o->data : x};
            sal_status s1 = au_explain(m, &xb, &xo, &A, NULL);
            if (s1 != SAL_OK) {
                if (s1 == SAL_ERR_NOMEM) st = s1;
                else au_skip(r, sal_last_error()), skipped = true;
                break;
            }
            for (int64_t q = 0; q < n; q++) {
                int64_t yy, xx;
                argmax(sal_f32(&A) + q * row, C, H, W, plane, &yy, &xx);
                hits += hit(&mk, ps[p0 + q], pk[p0 + q], yy, xx);
                for (int f = 0; fig && ps[p0 + q] == fs && f < nfk && st == SAL_OK; f++)
                    if (pk[p0 + q] == fk[f]) st = au_keep_row(&fig[(size_t)j * (size_t)fcols + (size_t)f], x, sal_f32(&A) + q * row);
            }
            au_progress_step(&pr, n, r->label);
        }
        /* the restricted game: only the top class's map, scored against every labelled class */
        for (int64_t i0 = 0; i0 < N && !skipped && st == SAL_OK; i0 += B) {
            int64_t n = N - i0 < B ? N - i0 : B;
            sal_tensor xv = au_rows(x, i0, n);
            au_xopts xo = {.meth = &meths[j], .target = SAL_TARGET_INDEX, .classes = top + i0, .data = o->data, .lo = lo,
                           .hi = hi, .chunk = o->chunk, .prob = o->prob, .pc = &pc, .pdata = o->data ? o->data : x};
            sal_status s1 = au_explain(m, &xv, &xo, &A, NULL);
            if (s1 != SAL_OK) {
                if (s1 == SAL_ERR_NOMEM) st = s1;
                else au_skip(r, sal_last_error()), skipped = true;
                break;
            }
            for (int64_t q = 0; q < n; q++) {
                int64_t yy, xx, i = i0 + q;
                argmax(sal_f32(&A) + q * row, C, H, W, plane, &yy, &xx);
                for (int64_t k = 0; k < mk.K; k++)
                    if (label_at(lt, i, k) >= 0.5) rhits += hit(&mk, i, k, yy, xx);
                if (fig && i == fs && st == SAL_OK)
                    st = au_keep_row(&fig[(size_t)j * (size_t)fcols + (size_t)nfk], x, sal_f32(&A) + q * row);
            }
            au_progress_step(&pr, n, r->label);
        }
        if (st != SAL_OK || skipped) continue;
        if (pc.used) sal_sb_printf(&r->extra, ",\n      \"patterns\": \"estimated by the audit for each model from its reference data\"");
        pc.used = false;
        double acc = (double)hits / (double)npair, racc = (double)rhits / (double)npair, gap = acc - racc;
        au_metric(r, "pointing_accuracy", acc);
        au_metric(r, "restricted_accuracy", racc);
        au_metric(r, "gap", gap);
        au_metric(r, "hits", (double)hits);
        au_metric(r, "restricted_hits", (double)rhits);
        au_metric(r, "trials", (double)npair);
        bool sens = gap > tol;
        au_metric_bool(r, "class_sensitive", sens);
        au_verdict(r, !sens, "%s (pointing %.3f vs restricted %.3f: gap %.3g %s %g)",
                   sens ? "class-sensitive" : "not class-sensitive", acc, racc, gap, sens ? ">" : "<=", tol);
    }
    au_progress_end(&pr);
    au_patcache_free(&pc);
    if (st == SAL_OK && fig) st = figure(o->figure, a, x, fs, fig, fk, nfk, top[fs]);
    for (size_t i = 0; fig && i < (size_t)(nm > 0 ? nm : 1) * (size_t)fcols; i++) sal_tensor_free(&fig[i]);
    sal_free(fig);
    sal_free(ps);
    sal_free(pk);
    sal_free(top);
    sal_free(plane);
    sal_free(meths);
    sal_tensor_free(&xb);
    sal_tensor_free(&A);
    sal_tensor_free(&y);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
