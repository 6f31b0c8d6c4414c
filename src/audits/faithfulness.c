/* Faithfulness: removing what a map calls important should change the output more than removing
 * what it calls unimportant (Samek et al. 2017 pixel flipping and AOPC; Petsiuk et al. 2018 deletion
 * and insertion), and the map should rank regions as occluding them does (the lecture notes' local
 * faithfulness via occlusion, Selvaraju et al.). */
#include "audit.h"
#include "core/shard.h"

typedef struct {
    float v;
    int64_t i;
} keyed;

typedef struct {
    const sal_model *m;
    const sal_tensor *x;
    const sal_faithfulness_opts *o;
    sal_session *s;
    sal_tensor R;            /* the replacements of x (N, ...) */
    int64_t C, H, W, HW, row, steps, chunk, B, fs;
    bool prob;
    bool softmax; /* prob of a model whose output is not a probability yet */
    double lo, hi;
    sal_tensor batch, A, O;  /* the curves' inputs, a batch's maps, the occlusion maps (N, ...) */
    float *scores, *plane, *oplane;
    int64_t *tg, *target, *order;
    keyed *kv;
    double *mean;            /* a method's mean curves (AU_NCURVE * (steps + 1)) */
    au_patcache pc;
    au_progress pr;
} fctx;

static int by_desc(const void *a, const void *b) {
    const keyed *p = a, *q = b;
    if (p->v != q->v) return p->v > q->v ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i; /* ties in position order, the same on every libc */
}

/* Pixel order of a map (C, H*W) by its channel sum, most relevant first. */
static void rank(const float *map, int64_t C, int64_t HW, float *plane, keyed *kv, int64_t *order) {
    au_plane(map, C, HW, false, plane);
    for (int64_t p = 0; p < HW; p++) kv[p] = (keyed){plane[p], p};
    qsort(kv, (size_t)HW, sizeof *kv, by_desc);
    for (int64_t p = 0; p < HW; p++) order[p] = kv[p].i;
}

/* Scores of the rows of c->batch for target t: forward passes of at most c->chunk rows. */
static sal_status score_batch(fctx *c, int64_t rows, int64_t t) {
    int64_t step = c->chunk;
    for (int64_t r0 = 0; r0 < rows; r0 += step) {
        int64_t n = rows - r0 < step ? rows - r0 : step;
        sal_tensor v = au_rows(&c->batch, r0, n);
        const sal_tensor *outs[8] = {0};
        SAL_TRY(sal_forward(c->s, 1, &v, outs));
        const sal_tensor *z = outs[0];
        if (z->ndim != 2 || z->dim[1] <= t)
            return sal_fail(SAL_ERR_SHAPE, "faithfulness needs (batch, classes) outputs from %s", c->m->path);
        for (int64_t i = 0; i < n; i++) c->tg[i] = t;
        au_scores(z, c->tg, c->softmax, c->scores + r0);
    }
    return SAL_OK;
}

/* The four curves of sample i for a pixel order (order[0] most relevant): curves[k * (steps + 1) + t]. */
static sal_status curves(fctx *c, int64_t i, int64_t t, const int64_t *order, double *cv) {
    int64_t S = c->steps, HW = c->HW, C = c->C, rows = AU_NCURVE * (S + 1);
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, c->x->dim, sizeof dim);
    dim[0] = rows;
    SAL_TRY(sal_tensor_alloc(&c->batch, SAL_F32, c->x->ndim, dim));
    const float *x = sal_f32(c->x) + i * c->row, *R = sal_f32(&c->R) + i * c->row;
    for (int k = 0; k < AU_NCURVE; k++) {
        bool ins = k >= AU_INS_MORF, lerf = k == AU_DEL_LERF || k == AU_INS_LERF;
        for (int64_t s = 0; s <= S; s++) {
            float *img = sal_f32(&c->batch) + (k * (S + 1) + s) * c->row;
            memcpy(img, ins ? R : x, (size_t)c->row * sizeof *img);
            int64_t npix = (int64_t)llround((double)s * (double)HW / (double)S);
            for (int64_t q = 0; q < npix; q++) {
                int64_t p = order[lerf ? HW - 1 - q : q];
                for (int64_t ch = 0; ch < C; ch++) img[ch * HW + p] = ins ? x[ch * HW + p] : R[ch * HW + p];
            }
        }
    }
    SAL_TRY(score_batch(c, rows, t));
    for (int64_t r = 0; r < rows; r++) cv[r] = c->scores[r];
    return SAL_OK;
}

/* Area under a curve of steps + 1 points over [0, 1] (trapezoids). */
static double auc(const double *v, int64_t S) {
    double a = 0;
    for (int64_t s = 0; s < S; s++) a += (v[s] + v[s + 1]) / 2;
    return a / (double)S;
}

/* AOPC of a deletion curve: mean over steps of f(x) - f(x with s steps removed). */
static double aopc(const double *v, int64_t S) {
    double a = 0;
    for (int64_t s = 0; s <= S; s++) a += v[0] - v[s];
    return a / (double)(S + 1);
}

/* What removed pixels become: a value, the blurred image, or the image plus noise. */
static sal_status make_replacements(fctx *c, sal_audit *a) {
    const sal_faithfulness_opts *o = c->o;
    SAL_TRY(sal_tensor_copy(&c->R, c->x));
    int64_t N = c->x->dim[0], row = c->row;
    float *r = sal_f32(&c->R);
    a->fa.replace = o->replace;
    if (o->replace == SAL_REPLACE_VALUE) {
        a->fa.rep = isnan(o->value) ? c->lo : o->value;
        for (int64_t i = 0; i < N * row; i++) r[i] = (float)a->fa.rep;
    } else if (o->replace == SAL_REPLACE_BLUR) {
        a->fa.rep = o->blur_sigma > 0 ? o->blur_sigma : 3;
        for (int64_t i = 0; i < N; i++)
            SAL_TRY(sal_gauss_blur(sal_f32(c->x) + i * row, r + i * row, c->C, c->H, c->W, a->fa.rep));
    } else {
        double sd = a->fa.rep = (o->noise > 0 ? o->noise : 0.3) * (c->hi - c->lo);
        for (int64_t i = 0; i < N; i++) { /* one stream per sample: chunking never changes the draws */
            sal_rng g;
            sal_rng_seed(&g, o->common.seed * 0x9e3779b97f4a7c15ull + (uint64_t)i + 1);
            for (int64_t k = 0; k < row; k++) r[i * row + k] += (float)(sd * sal_rng_normal(&g));
        }
    }
    return SAL_OK;
}

/* The occlusion map every method is ranked against, of this process's samples into their rows of
 * c->O (the rows a method's share reads); when it cannot be made, the reason goes into the result. */
static sal_status occlusion(fctx *c, sal_audit *a) {
    const sal_faithfulness_opts *o = c->o;
    int64_t N = c->x->dim[0];
    au_share sh;
    SAL_TRY(au_share_init(&sh, &o->common, N, c->B, 0));
    a->fa.occ = sal_calloc((size_t)o->nocc_params + 1, sizeof *a->fa.occ);
    sal_status st = a->fa.occ ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int k = 0; st == SAL_OK && k < o->nocc_params; k++, a->fa.nocc++)
        if (!(a->fa.occ[k] = sal_strdup(o->occ_params[k]))) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_audit_method occ = {.name = "occlusion", .nparams = o->nocc_params, .params = o->occ_params};
    bool known = false;
    for (int k = 0; k < sal_method_count(); k++) known |= !strcmp(sal_method_name(k), "occlusion");
    sal_status so = known ? SAL_OK : sal_fail(SAL_ERR_UNSUPPORTED, "the method table has no occlusion method");
    if (st == SAL_OK) st = sal_tensor_alloc(&c->O, SAL_F32, c->x->ndim, c->x->dim);
    for (int64_t i0 = sh.lo; i0 < sh.hi && so == SAL_OK && st == SAL_OK; i0 += c->B) {
        int64_t n = sh.hi - i0 < c->B ? sh.hi - i0 : c->B;
        sal_tensor xb = au_rows(c->x, i0, n);
        au_xopts xo = {.meth = &occ, .target = SAL_TARGET_INDEX, .classes = c->target + i0, .data = o->common.data,
                       .lo = c->lo, .hi = c->hi, .chunk = o->common.chunk, .prob = o->common.prob};
        so = au_explain(c->m, &xb, &xo, &c->A, NULL);
        if (so == SAL_OK) memcpy(sal_f32(&c->O) + i0 * c->row, c->A.data, (size_t)(n * c->row) * sizeof(float));
        else sh.key = i0;
        au_progress_step(&c->pr, n, "occlusion map");
    }
    if (so == SAL_ERR_NOMEM) st = so;
    /* the reason a single process meets first, on every process */
    char why[1008] = "";
    if (sh.key >= 0 || so != SAL_OK) sh.key = sh.key >= 0 ? sh.key : 0, snprintf(why, sizeof why, "%s", sal_last_error());
    if (sh.s) st = sal_shard_sync(sh.s, st, &sh.key, why, sizeof why);
    if (st == SAL_OK && sh.key >= 0 && !(a->fa.occ_err = sal_strdup(why))) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK && sh.key < 0) {
        a->fa.have_occ = true;
        if (c->fs >= sh.lo && c->fs < sh.hi) st = au_keep_row(&a->fa.occ_map, c->x, sal_f32(&c->O) + c->fs * c->row);
        st = au_share_maps(&sh, st, &a->fa.occ_map, 1, c->x);
    }
    au_share_free(&sh);
    return st;
}

/* The reference: pixels in a random order (seeded per sample); this process's samples' curves,
 * shared, then their means. */
static sal_status random_order(fctx *c, sal_audit *a) {
    int64_t N = c->x->dim[0], S = c->steps, HW = c->HW, npt = AU_NCURVE * (S + 1);
    double *rmean = a->fa.curve = sal_calloc((size_t)npt, sizeof *rmean), r_del = 0, r_ins = 0, r_aopc = 0;
    if (!rmean) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    au_share sh;
    SAL_TRY(au_share_init(&sh, &c->o->common, N, c->B, (int)npt));
    sal_status st = SAL_OK;
    for (int64_t i = sh.lo; i < sh.hi && st == SAL_OK; i++) {
        sal_rng g;
        sal_rng_seed(&g, (c->o->common.seed + 1) * 0x2545f4914f6cdd1dull + (uint64_t)i);
        for (int64_t p = 0; p < HW; p++) c->order[p] = p;
        for (int64_t p = HW - 1; p > 0; p--) {
            int64_t q = (int64_t)(sal_rng_u64(&g) % (uint64_t)(p + 1)), t = c->order[p];
            c->order[p] = c->order[q], c->order[q] = t;
        }
        st = curves(c, i, c->target[i], c->order, sh.v + i * npt);
        au_progress_step(&c->pr, 1, "random order");
    }
    st = au_share_end(&sh, st, NULL, 0, c->x);
    for (int64_t i = 0; i < N && st == SAL_OK; i++) {
        const double *cv = sh.v + i * npt;
        r_del += auc(cv + AU_DEL_MORF * (S + 1), S);
        r_ins += auc(cv + AU_INS_MORF * (S + 1), S);
        r_aopc += aopc(cv + AU_DEL_MORF * (S + 1), S);
        for (int64_t k = 0; k < npt; k++) rmean[k] += cv[k] / (double)N;
    }
    a->fa.del_auc = r_del / (double)N, a->fa.ins_auc = r_ins / (double)N, a->fa.aopc = r_aopc / (double)N;
    au_share_free(&sh);
    return st;
}

/* This process's share of one method: each sample's curves for its map's pixel order and the rank
 * correlation with the occlusion map, into the table (a row: the curves, then FA_FLAT, FA_OCC). */
enum { FA_FLAT, FA_OCC };
static sal_status explain_share(fctx *c, const sal_audit_method *meth, const sal_audit *a, au_share *sh, au_result *r) {
    int64_t npt = AU_NCURVE * (c->steps + 1), row = c->row;
    for (int64_t i0 = sh->lo; i0 < sh->hi; i0 += c->B) {
        int64_t n = sh->hi - i0 < c->B ? sh->hi - i0 : c->B;
        sal_tensor xb = au_rows(c->x, i0, n);
        const sal_tensor *data = c->o->common.data;
        au_xopts xo = {.meth = meth, .target = SAL_TARGET_INDEX, .classes = c->target + i0, .data = data, .lo = c->lo,
                       .hi = c->hi, .chunk = c->o->common.chunk, .prob = c->o->common.prob, .pc = &c->pc,
                       .pdata = data ? data : c->x};
        bool est = false;
        sal_status st = au_explain(c->m, &xb, &xo, &c->A, &est);
        if (st != SAL_OK) {
            au_share_skip(sh, i0);
            return au_skip(r, st, NULL);
        }
        r->patterns |= est;
        for (int64_t q = 0; q < n; q++) {
            int64_t i = i0 + q;
            double *v = sh->v + i * sh->width;
            rank(sal_f32(&c->A) + q * row, c->C, c->HW, c->plane, c->kv, c->order);
            v[npt + FA_FLAT] = au_constant(c->plane, c->HW);
            if (i == c->fs) SAL_TRY(au_keep_row(&r->maps[0], c->x, sal_f32(&c->A) + q * row));
            SAL_TRY(curves(c, i, c->target[i], c->order, v));
            if (a->fa.have_occ) {
                au_plane(sal_f32(&c->O) + i * row, c->C, c->HW, false, c->oplane);
                v[npt + FA_OCC] = sal_spearman(c->plane, c->oplane, c->HW);
            }
        }
        au_progress_step(&c->pr, n, r->label);
    }
    return SAL_OK;
}

/* One method: its share, shared; the areas, AOPC and mean curves over every sample into r. */
static sal_status run_method(fctx *c, const sal_audit_method *meth, const sal_audit *a, au_result *r) {
    int64_t N = c->x->dim[0], S = c->steps, npt = AU_NCURVE * (S + 1);
    au_share sh;
    SAL_TRY(au_share_init(&sh, &c->o->common, N, c->B, (int)npt + 2));
    sal_status st = au_share_end(&sh, explain_share(c, meth, a, &sh, r), r, 1, c->x);
    if (st != SAL_OK || !au_ran(r)) {
        au_share_free(&sh);
        return st;
    }
    au_mean occ = {0};
    double sums[AU_NCURVE] = {0}, ao_m = 0, ao_l = 0;
    int64_t flat = 0; /* constant maps: they rank no pixel above another */
    for (int64_t k = 0; k < npt; k++) c->mean[k] = 0;
    for (int64_t i = 0; i < N; i++) {
        const double *cv = sh.v + i * sh.width;
        flat += cv[npt + FA_FLAT] != 0;
        for (int k = 0; k < AU_NCURVE; k++) sums[k] += auc(cv + k * (S + 1), S);
        ao_m += aopc(cv + AU_DEL_MORF * (S + 1), S);
        ao_l += aopc(cv + AU_DEL_LERF * (S + 1), S);
        for (int64_t k = 0; k < npt; k++) c->mean[k] += cv[k] / (double)N;
        if (a->fa.have_occ) au_mean_add(&occ, cv[npt + FA_OCC]);
    }
    au_share_free(&sh);
    if (!(r->curve = sal_malloc((size_t)npt * sizeof *r->curve))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    memcpy(r->curve, c->mean, (size_t)npt * sizeof *r->curve);
    r->npoint = (int)(S + 1);
    for (int k = 0; k < AU_NCURVE; k++) {
        char key[48];
        snprintf(key, sizeof key, "%s_auc", au_curve_name[k]);
        au_metric(r, key, sums[k] / (double)N);
    }
    double r_aopc = a->fa.aopc, tol = a->tol;
    ao_m /= (double)N, ao_l /= (double)N;
    au_metric(r, "aopc_morf", ao_m);
    au_metric(r, "aopc_lerf", ao_l);
    au_metric(r, "aopc_random", r_aopc);
    au_metric(r, "occlusion_spearman", au_mean_get(&occ));
    au_metric(r, "constant_maps", (double)flat);
    if (flat == N || !isfinite(ao_m) || !isfinite(r_aopc)) {
        au_undetermined(r, "faithful", flat == N ? "every map is constant, so it orders no pixel before another"
                                                 : "the AOPC is not a number");
        return SAL_OK;
    }
    bool faithful = ao_m > r_aopc + tol;
    au_metric_bool(r, "faithful", faithful);
    au_verdict(r, faithful ? SAL_VERDICT_PASS : SAL_VERDICT_FAIL, "%s (AOPC most relevant first %.4g %s random order %.4g%s)",
               faithful ? "faithful" : "not faithful", ao_m, faithful ? ">" : "<=", r_aopc, tol > 0 ? " + tolerance" : "");
    return SAL_OK;
}

/* Scratch, replacements, targets, the occlusion maps and the random order into c and a. */
static sal_status prepare(fctx *c, sal_audit *a) {
    int64_t N = c->x->dim[0], npt = AU_NCURVE * (c->steps + 1), HW = c->HW;
    c->target = sal_malloc((size_t)N * sizeof *c->target);
    c->order = sal_malloc((size_t)HW * sizeof *c->order);
    c->kv = sal_malloc((size_t)HW * sizeof *c->kv);
    c->plane = sal_malloc((size_t)HW * sizeof *c->plane);
    c->oplane = sal_malloc((size_t)HW * sizeof *c->oplane);
    c->mean = sal_malloc((size_t)npt * sizeof *c->mean);
    c->scores = sal_malloc((size_t)(npt > c->chunk ? npt : c->chunk) * sizeof *c->scores);
    c->tg = sal_malloc((size_t)c->chunk * sizeof *c->tg);
    if (!c->target || !c->order || !c->kv || !c->plane || !c->oplane || !c->mean || !c->scores || !c->tg)
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    a->fa.prob = c->prob, a->fa.steps = c->steps;
    SAL_TRY(sal_session_new(c->m, &c->s));
    SAL_TRY(make_replacements(c, a));
    SAL_TRY(au_keep_row(&a->inputs[0], c->x, sal_f32(c->x) + c->fs * c->row));
    SAL_TRY(au_keep_row(&a->inputs[1], c->x, sal_f32(&c->R) + c->fs * c->row));
    sal_tensor y = {0};
    sal_status st = au_outputs(c->m, c->x, c->B, &y);
    if (st == SAL_OK) au_argmax(&y, c->target);
    sal_tensor_free(&y);
    if (st == SAL_OK) st = occlusion(c, a);
    if (st == SAL_OK) st = random_order(c, a);
    return st;
}

static void fctx_free(fctx *c) {
    au_patcache_free(&c->pc);
    sal_session_free(c->s);
    sal_tensor *t[] = {&c->R, &c->batch, &c->A, &c->O};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) sal_tensor_free(t[i]);
    void *p[] = {c->scores, c->plane, c->oplane, c->tg, c->target, c->order, c->kv, c->mean};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) sal_free(p[i]);
}

sal_status sal_audit_faithfulness(const sal_model *m, const sal_tensor *x, const sal_faithfulness_opts *o, sal_audit **out) {
    *out = NULL;
    const sal_audit_common *co = &o->common;
    if (x->dtype != SAL_F32 || x->ndim < 2 || x->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "the faithfulness audit needs a float32 batch (N, ...)");
    if (o->replace != SAL_REPLACE_VALUE && o->replace != SAL_REPLACE_BLUR && o->replace != SAL_REPLACE_NOISE)
        return sal_fail(SAL_ERR_ARG, "unknown replacement %d", (int)o->replace);
    if (o->steps < 0 || o->steps > 10000) return sal_fail(SAL_ERR_ARG, "faithfulness steps must be in 1..10000");
    int64_t N = x->dim[0];
    fctx c = {.m = m, .x = x, .o = o, .row = au_row(x), .steps = o->steps > 0 ? o->steps : 20, .prob = co->prob != 0,
              .softmax = co->prob && sal_model_output_kind(m) != SAL_OUTPUT_SOFTMAX &&
                         sal_model_output_kind(m) != SAL_OUTPUT_SIGMOID,
              .chunk = co->chunk > 0 ? co->chunk : 64, .B = co->batch > 0 ? co->batch : 16};
    au_geom(x, &c.C, &c.H, &c.W);
    c.HW = c.H * c.W;
    c.fs = co->figure_sample > 0 && co->figure_sample < N ? co->figure_sample : 0;
    au_range(co->data ? co->data : x, &c.lo, &c.hi);
    sal_audit_method *meths = NULL;
    int nm = 0;
    SAL_TRY(au_methods(co, &meths, &nm));
    sal_audit *a = NULL;
    sal_status st = au_audit_new(AU_FAITHFULNESS, co, nm, 1, 2, &a);
    if (st == SAL_OK) {
        a->tol = co->tol > 0 ? co->tol : 0;
        a->samples = N;
        a->fig_sample = c.fs;
    }
    au_progress_start(&c.pr, co, "faithfulness", (int64_t)(nm + 2) * N);
    if (st == SAL_OK) st = prepare(&c, a);
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        if ((st = au_result_init(&a->res[j], &meths[j])) == SAL_OK) st = run_method(&c, &meths[j], a, &a->res[j]);
        c.pr.done = (int64_t)(j + 3) * N;
    }
    au_progress_end(&c.pr);
    fctx_free(&c);
    sal_free(meths);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
