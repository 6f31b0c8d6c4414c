/* Pointing game (Zhang et al. 2018) and restricted pointing game (Khakzar et al. 2021) on images
 * holding several labelled objects: does the maximum of the map for class k fall on an object of
 * class k? The restricted game asks the same of the single map of the top class: when it scores
 * as well, the maps do not depend on the class asked for. As TorchRay's benchmark (Fong et al.'s
 * reference code of the game): the maximum of the map's energy, within 15 pixels of the object at
 * 224 x 224 (scaled here with the image). */
#include "audit.h"

typedef struct {
    const sal_tensor *masks;
    bool labelmap; /* (N,H,W) of class + 1, else (N,K,H,W) */
    int64_t K, H, W;
    double radius;  /* a hit lies strictly closer than this to an object pixel */
    sal_point_map reduce;
} masks_t;

static double mask_at(const sal_tensor *t, int64_t idx) {
    return t->dtype == SAL_I64 ? (double)((const int64_t *)t->data)[idx] : (double)sal_f32(t)[idx];
}

/* Is there a pixel of class k closer than the radius to (y, x) in sample i's mask? TorchRay's test:
 * dy^2 + dx^2 < radius^2. */
static bool hit(const masks_t *mk, int64_t i, int64_t k, int64_t y, int64_t x) {
    int64_t r = (int64_t)ceil(mk->radius);
    double r2 = mk->radius * mk->radius;
    for (int64_t yy = y - r; yy <= y + r; yy++)
        for (int64_t xx = x - r; xx <= x + r; xx++) {
            if (yy < 0 || yy >= mk->H || xx < 0 || xx >= mk->W || (double)((yy - y) * (yy - y) + (xx - x) * (xx - x)) >= r2)
                continue;
            double v = mk->labelmap ? mask_at(mk->masks, (i * mk->H + yy) * mk->W + xx)
                                    : mask_at(mk->masks, ((i * mk->K + k) * mk->H + yy) * mk->W + xx);
            if (mk->labelmap ? v == (double)(k + 1) : v != 0) return true;
        }
    return false;
}

/* The plane whose maximum points: the energy sum_c |a_c| (default), max_c |a_c| (TorchRay's
 * gradient saliency) or the signed sum over channels. */
static void point_plane(const float *map, int64_t C, int64_t HW, sal_point_map how, float *plane) {
    if (how != SAL_POINT_MAXABS) {
        au_plane(map, C, HW, how == SAL_POINT_ENERGY, plane);
        return;
    }
    for (int64_t p = 0; p < HW; p++) {
        float m = 0;
        for (int64_t c = 0; c < C; c++) m = fmaxf(m, fabsf(map[c * HW + p]));
        plane[p] = m;
    }
}

/* Position of the largest value of the plane (the first one on ties, as torch.argmax); whether the
 * plane is constant (then that position says nothing). */
static bool argmax(const masks_t *mk, const float *map, int64_t C, float *plane, int64_t *y, int64_t *x) {
    int64_t H = mk->H, W = mk->W;
    point_plane(map, C, H * W, mk->reduce, plane);
    int64_t b = 0;
    for (int64_t p = 1; p < H * W; p++)
        if (plane[p] > plane[b]) b = p;
    *y = b / W, *x = b % W;
    return au_constant(plane, H * W);
}

static double label_at(const sal_tensor *t, int64_t i, int64_t k) {
    return t->dtype == SAL_I64 ? (double)((const int64_t *)t->data)[i * t->dim[1] + k] : (double)sal_f32(t)[i * t->dim[1] + k];
}

static sal_status check(const sal_tensor *x, const sal_pointing_opts *o, masks_t *mk) {
    char a1[160], a2[160];
    if (x->dtype != SAL_F32 || x->ndim != 4 || x->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "the pointing game needs images (N, C, H, W), not %s",
                        sal_shape_str(x->ndim, x->dim, a1, sizeof a1));
    if (!o->masks || !o->labels) return sal_fail(SAL_ERR_ARG, "the pointing game needs masks and labels");
    int64_t N = x->dim[0], H = x->dim[2], W = x->dim[3];
    const sal_tensor *mt = o->masks, *lt = o->labels;
    if (lt->ndim != 2 || lt->dim[0] != N || lt->dim[1] < 1)
        return sal_fail(SAL_ERR_SHAPE, "labels %s must be multi-hot (N, K) with N = %lld",
                        sal_shape_str(lt->ndim, lt->dim, a1, sizeof a1), (long long)N);
    /* TorchRay: 15 pixels on images resized to 224 on their shorter side */
    double r = o->radius > 0 ? o->radius : o->radius < 0 ? 0.5 : 15.0 * (double)(H < W ? H : W) / 224.0;
    *mk = (masks_t){.masks = mt, .K = lt->dim[1], .H = H, .W = W, .radius = r, .reduce = o->reduce};
    if (mt->ndim == 3 && mt->dim[0] == N && mt->dim[1] == H && mt->dim[2] == W) mk->labelmap = true;
    else if (!(mt->ndim == 4 && mt->dim[0] == N && mt->dim[1] == mk->K && mt->dim[2] == H && mt->dim[3] == W))
        return sal_fail(SAL_ERR_SHAPE, "masks %s must be (N, H, W) class + 1 per pixel or (N, K, H, W) for images %s "
                        "and %lld classes", sal_shape_str(mt->ndim, mt->dim, a1, sizeof a1),
                        sal_shape_str(x->ndim, x->dim, a2, sizeof a2), (long long)mk->K);
    if (!isfinite(o->radius)) return sal_fail(SAL_ERR_ARG, "the pointing radius must be a number");
    if (o->reduce < SAL_POINT_ENERGY || o->reduce > SAL_POINT_SUM)
        return sal_fail(SAL_ERR_ARG, "unknown pointing map reduction %d", (int)o->reduce);
    return SAL_OK;
}

typedef struct {
    const sal_model *m;
    const sal_tensor *x, *labels;
    const sal_audit_common *o;
    masks_t mk;
    int64_t npair, *ps, *pk; /* the (sample, class) pairs of the game */
    int64_t *top;            /* the top class of every sample */
    int64_t B, fs, fk[3];    /* the figure's sample and classes */
    int nfk;
    double lo, hi;
    float *plane;
    int64_t *kcount;         /* per class: hits and trials of both games (4 K) */
    sal_tensor xb, A;
    au_patcache pc;
    au_progress pr;
} pctx;

static au_xopts xopts(pctx *c, const sal_audit_method *meth, const int64_t *classes) {
    const sal_tensor *data = c->o->data;
    return (au_xopts){.meth = meth, .target = SAL_TARGET_INDEX, .classes = classes, .data = data, .lo = c->lo,
                      .hi = c->hi, .chunk = c->o->chunk, .prob = c->o->prob, .pc = &c->pc, .pdata = data ? data : c->x};
}

/* Hits and trials of one game, in all and per class, and the maps that were constant. */
typedef struct {
    int64_t hits, flat, *khits, *ktrials;
} tally;

static void score(pctx *c, tally *t, int64_t i, int64_t k, int64_t y, int64_t x) {
    bool h = hit(&c->mk, i, k, y, x);
    t->hits += h, t->khits[k] += h, t->ktrials[k]++;
}

/* The pointing game: one map per (sample, labelled class) pair. */
enum { PT_FLAT, PT_Y, PT_X, PT_W }; /* per pair or sample: a constant map, where its maximum lies */

/* The pointing game on this process's (sample, class) pairs: where each pair's map peaks. */
static sal_status game(pctx *c, const sal_audit_method *meth, au_result *r, au_share *sh) {
    int64_t C = c->x->dim[1], row = au_row(c->x);
    for (int64_t p0 = sh->lo; p0 < sh->hi; p0 += c->B) {
        int64_t n = sh->hi - p0 < c->B ? sh->hi - p0 : c->B;
        SAL_TRY(au_gather(c->x, c->ps + p0, n, &c->xb));
        au_xopts xo = xopts(c, meth, c->pk + p0);
        bool est = false;
        sal_status st = au_explain(c->m, &c->xb, &xo, &c->A, &est);
        if (st != SAL_OK) {
            au_share_skip(sh, p0);
            return au_skip(r, st, NULL);
        }
        r->patterns |= est;
        for (int64_t q = 0; q < n; q++) {
            int64_t yy, xx, i = c->ps[p0 + q], k = c->pk[p0 + q];
            double *v = sh->v + (p0 + q) * PT_W;
            v[PT_FLAT] = argmax(&c->mk, sal_f32(&c->A) + q * row, C, c->plane, &yy, &xx);
            v[PT_Y] = (double)yy, v[PT_X] = (double)xx;
            for (int f = 0; i == c->fs && f < c->nfk; f++)
                if (k == c->fk[f]) SAL_TRY(au_keep_row(&r->maps[f], c->x, sal_f32(&c->A) + q * row));
        }
        au_progress_step(&c->pr, n, r->label);
    }
    return SAL_OK;
}

/* The restricted game on this process's samples: where the top class's map peaks (a skip noted in
 * the game's share, after every pair). */
static sal_status restricted(pctx *c, const sal_audit_method *meth, au_result *r, au_share *sg, au_share *sh) {
    int64_t C = c->x->dim[1], row = au_row(c->x);
    for (int64_t i0 = sh->lo; i0 < sh->hi; i0 += c->B) {
        int64_t n = sh->hi - i0 < c->B ? sh->hi - i0 : c->B;
        sal_tensor xv = au_rows(c->x, i0, n);
        au_xopts xo = xopts(c, meth, c->top + i0);
        bool est = false;
        sal_status st = au_explain(c->m, &xv, &xo, &c->A, &est);
        if (st != SAL_OK) {
            au_share_skip(sg, sg->n + 1 + i0);
            return au_skip(r, st, NULL);
        }
        r->patterns |= est;
        for (int64_t q = 0; q < n; q++) {
            int64_t yy, xx, i = i0 + q;
            double *v = sh->v + i * PT_W;
            v[PT_FLAT] = argmax(&c->mk, sal_f32(&c->A) + q * row, C, c->plane, &yy, &xx);
            v[PT_Y] = (double)yy, v[PT_X] = (double)xx;
            if (i == c->fs) SAL_TRY(au_keep_row(&r->maps[c->nfk], c->x, sal_f32(&c->A) + q * row));
        }
        au_progress_step(&c->pr, n, r->label);
    }
    return SAL_OK;
}

/* Both games' tallies from the shared tables, in a single process's order. */
static void tally_up(pctx *c, const au_share *sg, const au_share *sr, tally *g, tally *rg) {
    for (int64_t p = 0; p < c->npair; p++) {
        const double *v = sg->v + p * PT_W;
        g->flat += v[PT_FLAT] != 0;
        score(c, g, c->ps[p], c->pk[p], (int64_t)v[PT_Y], (int64_t)v[PT_X]);
    }
    for (int64_t i = 0; i < sr->n; i++) {
        const double *v = sr->v + i * PT_W;
        rg->flat += v[PT_FLAT] != 0;
        for (int64_t k = 0; k < c->mk.K; k++)
            if (label_at(c->labels, i, k) >= 0.5) score(c, rg, i, k, (int64_t)v[PT_Y], (int64_t)v[PT_X]);
    }
}

static double class_mean(const pctx *c, const tally *t) {
    double s = 0;
    int64_t n = 0;
    for (int64_t k = 0; k < c->mk.K; k++)
        if (t->ktrials[k]) s += (double)t->khits[k] / (double)t->ktrials[k], n++;
    return n ? s / (double)n : NAN;
}

static sal_status run_method(pctx *c, const sal_audit_method *meth, double tol, au_result *r) {
    int64_t K = c->mk.K;
    for (int64_t k = 0; k < 4 * K; k++) c->kcount[k] = 0;
    tally g = {.khits = c->kcount, .ktrials = c->kcount + K}, rg = {.khits = c->kcount + 2 * K, .ktrials = c->kcount + 3 * K};
    au_share sg, sr;
    sal_status st = au_share_init(&sg, c->o, c->npair, c->B, PT_W);
    if (st == SAL_OK) st = au_share_init(&sr, c->o, c->x->dim[0], c->B, PT_W);
    if (st != SAL_OK) {
        au_share_free(&sg);
        return st;
    }
    st = game(c, meth, r, &sg);
    if (st == SAL_OK && au_ran(r)) st = restricted(c, meth, r, &sg, &sr);
    /* the first skip of either game, the pairs' values; then the samples' values and the maps */
    st = au_share_end(&sg, st, r, 0, c->x);
    if (st == SAL_OK && au_ran(r)) st = au_share_end(&sr, SAL_OK, r, 4, c->x);
    if (st == SAL_OK && au_ran(r)) tally_up(c, &sg, &sr, &g, &rg);
    au_share_free(&sg);
    au_share_free(&sr);
    if (st != SAL_OK || !au_ran(r)) return st;
    double acc = (double)g.hits / (double)c->npair, racc = (double)rg.hits / (double)c->npair, gap = acc - racc;
    au_metric(r, "pointing_accuracy", acc);
    au_metric(r, "restricted_accuracy", racc);
    au_metric(r, "gap", gap);
    au_metric(r, "pointing_class_mean", class_mean(c, &g));
    au_metric(r, "restricted_class_mean", class_mean(c, &rg));
    au_metric(r, "hits", (double)g.hits);
    au_metric(r, "restricted_hits", (double)rg.hits);
    au_metric(r, "trials", (double)c->npair);
    au_metric(r, "constant_maps", (double)(g.flat + rg.flat));
    if (g.flat == c->npair) {
        au_undetermined(r, "class_sensitive", "every map is constant, so its maximum points nowhere in particular");
        return SAL_OK;
    }
    bool sens = gap > tol;
    au_metric_bool(r, "class_sensitive", sens);
    au_verdict(r, sens ? SAL_VERDICT_PASS : SAL_VERDICT_FAIL, "%s (pointing %.3f vs restricted %.3f: gap %.3g %s %g)",
               sens ? "class-sensitive" : "not class-sensitive", acc, racc, gap, sens ? ">" : "<=", tol);
    return SAL_OK;
}

/* The pairs, the top classes, the setting and the figure's sample into c and a. */
static sal_status prepare(pctx *c, sal_audit *a) {
    int64_t N = c->x->dim[0], K = c->mk.K;
    c->ps = sal_malloc((size_t)c->npair * sizeof *c->ps);
    c->pk = sal_malloc((size_t)c->npair * sizeof *c->pk);
    c->top = sal_malloc((size_t)N * sizeof *c->top);
    c->plane = sal_malloc((size_t)(c->mk.H * c->mk.W) * sizeof *c->plane);
    c->kcount = sal_malloc((size_t)(4 * K) * sizeof *c->kcount);
    if (!c->ps || !c->pk || !c->top || !c->plane || !c->kcount) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    int64_t np = 0, top_in = 0; /* how often the top class is one of the image's labels */
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < K; k++)
            if (label_at(c->labels, i, k) >= 0.5) c->ps[np] = i, c->pk[np++] = k;
    sal_tensor y = {0};
    sal_status st = au_outputs(c->m, c->x, c->B, &y);
    if (st == SAL_OK && y.dim[1] < K)
        st = sal_fail(SAL_ERR_SHAPE, "the labels name %lld classes; %s has %lld outputs", (long long)K, c->m->path,
                      (long long)y.dim[1]);
    if (st == SAL_OK) au_argmax(&y, c->top);
    sal_tensor_free(&y);
    for (int64_t i = 0; st == SAL_OK && i < N; i++) top_in += c->top[i] < K && label_at(c->labels, i, c->top[i]) >= 0.5;
    a->pt.trials = c->npair, a->pt.images = N, a->pt.radius = c->mk.radius, a->pt.reduce = c->mk.reduce;
    a->pt.top_labelled = (double)top_in / (double)N;
    /* the figure: one sample, per method its maps for up to three of its labelled classes and the
     * top class's map, the one the restricted game scores */
    for (int64_t k = 0; k < K && c->nfk < 3; k++)
        if (label_at(c->labels, c->fs, k) >= 0.5) c->fk[c->nfk++] = k;
    a->pt.nfk = c->nfk;
    memcpy(a->pt.fk, c->fk, sizeof a->pt.fk);
    a->pt.top = st == SAL_OK ? c->top[c->fs] : 0;
    if (st == SAL_OK) st = au_keep_row(&a->inputs[0], c->x, sal_f32(c->x) + c->fs * au_row(c->x));
    return st;
}

sal_status sal_audit_pointing(const sal_model *m, const sal_tensor *x, const sal_pointing_opts *o, sal_audit **out) {
    *out = NULL;
    const sal_audit_common *co = &o->common;
    pctx c = {.m = m, .x = x, .labels = o->labels, .o = co, .B = co->batch > 0 ? co->batch : 16};
    SAL_TRY(check(x, o, &c.mk));
    int64_t N = x->dim[0];
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < c.mk.K; k++) c.npair += label_at(o->labels, i, k) >= 0.5;
    if (!c.npair) return sal_fail(SAL_ERR_ARG, "no sample has a label: nothing to point at");
    c.fs = co->figure_sample > 0 && co->figure_sample < N ? co->figure_sample : 0;
    au_range(co->data ? co->data : x, &c.lo, &c.hi);
    sal_audit_method *meths = NULL;
    int nm = 0;
    sal_audit *a = NULL;
    sal_status st = au_methods(co, &meths, &nm);
    if (st == SAL_OK) st = au_audit_new(AU_POINTING, co, nm, 4, 1, &a);
    if (st == SAL_OK) {
        a->tol = co->tol > 0 ? co->tol : 0.05;
        a->samples = N;
        a->fig_sample = c.fs;
        st = prepare(&c, a);
    }
    au_progress_start(&c.pr, co, "pointing", (int64_t)nm * (c.npair + N));
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        if ((st = au_result_init(&a->res[j], &meths[j])) == SAL_OK) st = run_method(&c, &meths[j], a->tol, &a->res[j]);
        c.pr.done = (int64_t)(j + 1) * (c.npair + N);
    }
    au_progress_end(&c.pr);
    au_patcache_free(&c.pc);
    sal_free(c.ps);
    sal_free(c.pk);
    sal_free(c.top);
    sal_free(c.plane);
    sal_free(c.kcount);
    sal_free(meths);
    sal_tensor_free(&c.xb);
    sal_tensor_free(&c.A);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
