/* Faithfulness: removing what a map calls important should change the output more than removing
 * what it calls unimportant (Samek et al. 2017 pixel flipping and AOPC; Petsiuk et al. 2018 deletion
 * and insertion), and the map should rank regions as occluding them does (the lecture notes' local
 * faithfulness via occlusion, Selvaraju et al.). */
#include "audit.h"

enum { DEL_MORF, DEL_LERF, INS_MORF, INS_LERF, NCURVE };
static const char *const k_curve[NCURVE] = {"deletion_morf", "deletion_lerf", "insertion_morf", "insertion_lerf"};

typedef struct {
    const sal_model *m;
    sal_session *s;
    const sal_tensor *x, *R; /* inputs and their replacements (N, ...) */
    int64_t C, HW, row, steps, chunk;
    bool prob;
    sal_tensor batch;
    float *scores;
    int64_t *tg;
} fctx;

typedef struct {
    float v;
    int64_t i;
} keyed;

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
        au_scores(z, c->tg, c->prob, c->scores + r0);
    }
    return SAL_OK;
}

/* The four curves of sample i for a pixel order (order[0] most relevant): curves[k * (steps + 1) + t]. */
static sal_status curves(fctx *c, int64_t i, int64_t t, const int64_t *order, double *cv) {
    int64_t S = c->steps, HW = c->HW, C = c->C, rows = NCURVE * (S + 1);
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, c->x->dim, sizeof dim);
    dim[0] = rows;
    SAL_TRY(sal_tensor_alloc(&c->batch, SAL_F32, c->x->ndim, dim));
    const float *x = sal_f32(c->x) + i * c->row, *R = sal_f32(c->R) + i * c->row;
    for (int k = 0; k < NCURVE; k++) {
        bool ins = k >= INS_MORF, lerf = k == DEL_LERF || k == INS_LERF;
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

static sal_status make_replacements(const sal_tensor *x, const sal_audit_opts *o, double lo, double hi, int64_t C,
                                    int64_t H, int64_t W, sal_tensor *R) {
    SAL_TRY(sal_tensor_copy(R, x));
    int64_t N = x->dim[0], row = au_row(x);
    float *r = sal_f32(R);
    if (o->replace == SAL_REPLACE_VALUE) {
        float v = (float)(isnan(o->value) ? lo : o->value);
        for (int64_t i = 0; i < N * row; i++) r[i] = v;
    } else if (o->replace == SAL_REPLACE_BLUR) {
        for (int64_t i = 0; i < N; i++) SAL_TRY(sal_gauss_blur(sal_f32(x) + i * row, r + i * row, C, H, W, o->blur_sigma > 0 ? o->blur_sigma : 3));
    } else {
        double sd = (o->noise > 0 ? o->noise : 0.3) * (hi - lo);
        for (int64_t i = 0; i < N; i++) { /* one stream per sample: chunking never changes the draws */
            sal_rng g;
            sal_rng_seed(&g, o->seed * 0x9e3779b97f4a7c15ull + (uint64_t)i + 1);
            for (int64_t k = 0; k < row; k++) r[i * row + k] += (float)(sd * sal_rng_normal(&g));
        }
    }
    return SAL_OK;
}

/* Rows = the occlusion reference (when it ran) and the methods that ran; columns: the input, the
 * map, and the input with the 10%, 25% and 50% most relevant pixels by that map replaced, which
 * is what the deletion curve scores. */
static sal_status figure(const char *path, const sal_audit *a, const fctx *c, int64_t fs, const sal_tensor *fig,
                         const sal_tensor *occ, float *plane, keyed *kv, int64_t *order) {
    enum { COLS = 5 };
    static const double frac[3] = {0.1, 0.25, 0.5};
    static const char *const cl[COLS] = {"input", "map", "10% deleted", "25% deleted", "50% deleted"};
    int rows = occ != NULL;
    for (int j = 0; j < a->nres; j++) rows += !a->res[j].skipped;
    if (!rows) return SAL_OK;
    sal_grid_tile *t = sal_calloc((size_t)rows * COLS, sizeof *t);
    const char **labels = sal_calloc((size_t)rows, sizeof *labels);
    sal_tensor *del = sal_calloc((size_t)rows * 3, sizeof *del);
    sal_status st = t && labels && del ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_tensor xs = au_rows(c->x, fs, 1);
    const float *x0 = sal_f32(c->x) + fs * c->row, *R = sal_f32(c->R) + fs * c->row;
    for (int j = -1, k = 0; st == SAL_OK && j < a->nres; j++) {
        const sal_tensor *map = j < 0 ? occ : &fig[j];
        if (j < 0 ? !occ : a->res[j].skipped) continue;
        labels[k] = j < 0 ? "occlusion (reference)" : a->res[j].label;
        t[k * COLS].image = &xs;
        t[k * COLS + 1].map = map;
        rank(sal_f32(map), c->C, c->HW, plane, kv, order);
        for (int f = 0; f < 3 && st == SAL_OK; f++) {
            sal_tensor *d = &del[k * 3 + f];
            if ((st = au_keep_row(d, c->x, x0)) != SAL_OK) break;
            int64_t npix = (int64_t)llround(frac[f] * (double)c->HW);
            for (int64_t q = 0; q < npix; q++)
                for (int64_t ch = 0; ch < c->C; ch++) sal_f32(d)[ch * c->HW + order[q]] = R[ch * c->HW + order[q]];
            t[k * COLS + 2 + f].image = d;
        }
        k++;
    }
    sal_grid_opts go = {.share = SAL_SHARE_TILE, .row_labels = labels, .col_labels = cl};
    go.heat.scale = c->HW <= 64 * 64 ? 3 : 1;
    if (st == SAL_OK) st = sal_png_grid(path, rows, COLS, t, &go);
    for (int i = 0; del && i < rows * 3; i++) sal_tensor_free(&del[i]);
    sal_free(del);
    sal_free(t);
    sal_free(labels);
    return st;
}

sal_status sal_audit_faithfulness(const sal_model *m, const sal_tensor *x, const sal_audit_opts *o, sal_audit **out) {
    *out = NULL;
    if (x->dtype != SAL_F32 || x->ndim < 2 || x->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "the faithfulness audit needs a float32 batch (N, ...)");
    if (o->replace != SAL_REPLACE_VALUE && o->replace != SAL_REPLACE_BLUR && o->replace != SAL_REPLACE_NOISE)
        return sal_fail(SAL_ERR_ARG, "unknown replacement %d", (int)o->replace);
    if (o->steps < 0 || o->steps > 10000) return sal_fail(SAL_ERR_ARG, "faithfulness steps must be in 1..10000");
    int64_t N = x->dim[0], B = o->batch > 0 ? o->batch : 16, C, H, W, S = o->steps > 0 ? o->steps : 20;
    au_geom(x, &C, &H, &W);
    int64_t HW = H * W, row = au_row(x), npt = NCURVE * (S + 1);
    double tol = o->tol > 0 ? o->tol : 0, lo, hi;
    au_range(o->data ? o->data : x, &lo, &hi);
    sal_audit_method *meths = NULL;
    int nm = 0;
    SAL_TRY(au_methods(o, &meths, &nm));
    fctx c = {.m = m, .x = x, .C = C, .HW = HW, .row = row, .steps = S, .prob = o->prob != 0,
              .chunk = o->chunk > 0 ? o->chunk : 64};
    sal_audit *a = NULL;
    sal_tensor R = {0}, y = {0}, A = {0}, O = {0};
    int64_t *target = sal_malloc((size_t)N * sizeof *target), *order = sal_malloc((size_t)HW * sizeof *order);
    keyed *kv = sal_malloc((size_t)HW * sizeof *kv);
    float *plane = sal_malloc((size_t)HW * sizeof *plane), *oplane = sal_malloc((size_t)HW * sizeof *oplane);
    double *cv = sal_malloc((size_t)npt * sizeof *cv), *mean = sal_malloc((size_t)npt * sizeof *mean);
    double *rmean = sal_calloc((size_t)npt, sizeof *rmean);
    c.scores = sal_malloc((size_t)(npt > c.chunk ? npt : c.chunk) * sizeof *c.scores);
    c.tg = sal_malloc((size_t)c.chunk * sizeof *c.tg);
    sal_status st = target && order && kv && plane && oplane && cv && mean && rmean && c.scores && c.tg
                        ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = au_report_new("faithfulness", o, nm, &a);
    if (st == SAL_OK) st = sal_session_new(m, &c.s);
    if (st == SAL_OK) st = make_replacements(x, o, lo, hi, C, H, W, &R);
    c.R = &R;
    if (st == SAL_OK) st = au_outputs(m, x, B, &y);
    for (int64_t i = 0; st == SAL_OK && i < N; i++) {
        const float *z = sal_f32(&y) + i * y.dim[1];
        int64_t b = 0;
        for (int64_t k = 1; k < y.dim[1]; k++)
            if (z[k] > z[b]) b = k;
        target[i] = b;
    }
    /* figure: each method's map of one sample (figure_sample) */
    int64_t fs = o->figure_sample > 0 && o->figure_sample < N ? o->figure_sample : 0;
    sal_tensor *fig = st == SAL_OK && o->figure ? sal_calloc((size_t)(nm > 0 ? nm : 1), sizeof *fig) : NULL;
    if (st == SAL_OK && o->figure && !fig) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    au_patcache pc = {0};
    au_progress pr;
    au_progress_start(&pr, o->progress, "faithfulness", (int64_t)(nm + 2) * N);
    /* the occlusion map every method is ranked against */
    bool have_occ = false;
    char occ_err[400] = "";
    if (st == SAL_OK) {
        sal_audit_method occ = {.name = "occlusion", .nparams = o->nocc_params, .params = o->occ_params};
        bool known = false;
        for (int k = 0; k < sal_method_count(); k++) known |= !strcmp(sal_method_name(k), "occlusion");
        sal_status so = known ? SAL_OK : sal_fail(SAL_ERR_UNSUPPORTED, "the method table has no occlusion method");
        for (int64_t i0 = 0; i0 < N && so == SAL_OK; i0 += B) {
            int64_t n = N - i0 < B ? N - i0 : B;
            sal_tensor xb = au_rows(x, i0, n), Ob = {0};
            au_xopts xo = {.meth = &occ, .target = SAL_TARGET_INDEX, .classes = target + i0, .data = o->data, .lo = lo,
                           .hi = hi, .chunk = o->chunk, .prob = o->prob};
            so = au_explain(m, &xb, &xo, &Ob, NULL);
            if (so == SAL_OK && i0 == 0) so = sal_tensor_alloc(&O, SAL_F32, x->ndim, x->dim);
            if (so == SAL_OK) memcpy(sal_f32(&O) + i0 * row, Ob.data, (size_t)(n * row) * sizeof(float));
            sal_tensor_free(&Ob);
            au_progress_step(&pr, n, "occlusion map");
        }
        if (so == SAL_ERR_NOMEM) st = so;
        else if (so != SAL_OK) snprintf(occ_err, sizeof occ_err, "%s", sal_last_error());
        else have_occ = true;
    }
    /* the reference: pixels in a random order (seeded per sample) */
    double r_del = 0, r_ins = 0, r_aopc = 0;
    for (int64_t i = 0; st == SAL_OK && i < N; i++) {
        sal_rng g;
        sal_rng_seed(&g, (o->seed + 1) * 0x2545f4914f6cdd1dull + (uint64_t)i);
        for (int64_t p = 0; p < HW; p++) order[p] = p;
        for (int64_t p = HW - 1; p > 0; p--) {
            int64_t q = (int64_t)(sal_rng_u64(&g) % (uint64_t)(p + 1)), t = order[p];
            order[p] = order[q], order[q] = t;
        }
        if ((st = curves(&c, i, target[i], order, cv)) != SAL_OK) break;
        r_del += auc(cv + DEL_MORF * (S + 1), S);
        r_ins += auc(cv + INS_MORF * (S + 1), S);
        r_aopc += aopc(cv + DEL_MORF * (S + 1), S);
        for (int64_t k = 0; k < npt; k++) rmean[k] += cv[k] / (double)N;
        au_progress_step(&pr, 1, "random order");
    }
    if (st == SAL_OK) {
        a->tol = tol;
        r_del /= (double)N, r_ins /= (double)N, r_aopc /= (double)N;
        static const char *const rep[] = {"value", "blur", "noise"};
        sal_sb_printf(&a->top, ",\n  \"output\": \"%s\",\n  \"steps\": %lld,\n  \"replacement\": {\"kind\": \"%s\"",
                  o->prob ? "probability" : "logit", (long long)S, rep[o->replace]);
        if (o->replace == SAL_REPLACE_VALUE) {
            sal_sb_printf(&a->top, ", \"value\": ");
            sal_sb_num(&a->top, isnan(o->value) ? lo : o->value);
        } else if (o->replace == SAL_REPLACE_BLUR) {
            sal_sb_printf(&a->top, ", \"sigma\": ");
            sal_sb_num(&a->top, o->blur_sigma > 0 ? o->blur_sigma : 3);
        } else {
            sal_sb_printf(&a->top, ", \"sd\": ");
            sal_sb_num(&a->top, (o->noise > 0 ? o->noise : 0.3) * (hi - lo));
        }
        sal_sb_printf(&a->top, "},\n  \"random\": {\"deletion_auc\": ");
        sal_sb_num(&a->top, r_del);
        sal_sb_printf(&a->top, ", \"insertion_auc\": ");
        sal_sb_num(&a->top, r_ins);
        sal_sb_printf(&a->top, ", \"aopc\": ");
        sal_sb_num(&a->top, r_aopc);
        sal_sb_printf(&a->top, ", \"deletion\": [");
        for (int64_t s = 0; s <= S; s++) {
            sal_sb_printf(&a->top, "%s", s ? ", " : "");
            sal_sb_num(&a->top, rmean[DEL_MORF * (S + 1) + s]);
        }
        sal_sb_printf(&a->top, "]},\n  \"occlusion\": ");
        if (have_occ) {
            sal_sb_printf(&a->top, "{\"params\": [");
            for (int k = 0; k < o->nocc_params; k++) {
                sal_sb_printf(&a->top, "%s", k ? ", " : "");
                sal_sb_str(&a->top, o->occ_params[k]);
            }
            sal_sb_printf(&a->top, "]}");
        } else {
            sal_sb_printf(&a->top, "{\"skipped\": ");
            sal_sb_str(&a->top, occ_err);
            sal_sb_printf(&a->top, "}");
        }
        sal_sb_printf(&a->curves, "method,label,curve,fraction,value\n");
        for (int k = 0; k < 2; k++)
            for (int64_t s = 0; s <= S; s++)
                sal_sb_printf(&a->curves, "random,random,%s,%.6g,%.9g\n", k ? "insertion" : "deletion", (double)s / (double)S,
                          rmean[(k ? INS_MORF : DEL_MORF) * (S + 1) + s]);
    }
    double *allmean = st == SAL_OK ? sal_calloc((size_t)(nm > 0 ? nm : 1) * (size_t)npt, sizeof *allmean) : NULL;
    if (st == SAL_OK && !allmean) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        au_result *r = &a->res[j];
        if ((st = au_result_init(r, &meths[j])) != SAL_OK) break;
        au_mean occ = {0};
        double sums[NCURVE] = {0}, ao_m = 0, ao_l = 0;
        for (int64_t k = 0; k < npt; k++) mean[k] = 0;
        bool skipped = false;
        for (int64_t i0 = 0; i0 < N && !skipped && st == SAL_OK; i0 += B) {
            int64_t n = N - i0 < B ? N - i0 : B;
            sal_tensor xb = au_rows(x, i0, n);
            au_xopts xo = {.meth = &meths[j], .target = SAL_TARGET_INDEX, .classes = target + i0, .data = o->data,
                           .lo = lo, .hi = hi, .chunk = o->chunk, .prob = o->prob, .pc = &pc,
                           .pdata = o->data ? o->data : x};
            sal_status s1 = au_explain(m, &xb, &xo, &A, NULL);
            if (s1 != SAL_OK) {
                if (s1 == SAL_ERR_NOMEM) st = s1;
                else au_skip(r, sal_last_error()), skipped = true;
                break;
            }
            for (int64_t q = 0; q < n && st == SAL_OK; q++) {
                int64_t i = i0 + q;
                rank(sal_f32(&A) + q * row, C, HW, plane, kv, order);
                if (fig && i == fs && (st = au_keep_row(&fig[j], x, sal_f32(&A) + q * row)) != SAL_OK) break;
                if ((st = curves(&c, i, target[i], order, cv)) != SAL_OK) break;
                for (int k = 0; k < NCURVE; k++) sums[k] += auc(cv + k * (S + 1), S);
                ao_m += aopc(cv + DEL_MORF * (S + 1), S);
                ao_l += aopc(cv + DEL_LERF * (S + 1), S);
                for (int64_t k = 0; k < npt; k++) mean[k] += cv[k] / (double)N;
                if (have_occ) {
                    au_plane(sal_f32(&O) + i * row, C, HW, false, oplane);
                    au_mean_add(&occ, sal_spearman(plane, oplane, HW));
                }
            }
            au_progress_step(&pr, n, r->label);
        }
        if (st != SAL_OK || skipped) continue;
        if (pc.used) sal_sb_printf(&r->extra, ",\n      \"patterns\": \"estimated by the audit for each model from its reference data\"");
        pc.used = false;
        memcpy(allmean + (size_t)j * (size_t)npt, mean, (size_t)npt * sizeof *mean);
        for (int k = 0; k < NCURVE; k++) {
            char key[48];
            snprintf(key, sizeof key, "%s_auc", k_curve[k]);
            au_metric(r, key, sums[k] / (double)N);
        }
        ao_m /= (double)N, ao_l /= (double)N;
        au_metric(r, "aopc_morf", ao_m);
        au_metric(r, "aopc_lerf", ao_l);
        au_metric(r, "aopc_random", r_aopc);
        au_metric(r, "occlusion_spearman", au_mean_get(&occ));
        bool faithful = ao_m > r_aopc + tol;
        au_metric_bool(r, "faithful", faithful);
        au_verdict(r, !faithful, "%s (AOPC most relevant first %.4g %s random order %.4g%s)",
                   faithful ? "faithful" : "not faithful", ao_m, faithful ? ">" : "<=", r_aopc,
                   tol > 0 ? " + tolerance" : "");
        sal_sb_printf(&r->extra, ",\n      \"curves\": {");
        for (int k = 0; k < NCURVE; k++) {
            sal_sb_printf(&r->extra, "%s\"%s\": [", k ? ", " : "", k_curve[k]);
            for (int64_t s = 0; s <= S; s++) {
                sal_sb_printf(&r->extra, "%s", s ? ", " : "");
                sal_sb_num(&r->extra, mean[k * (S + 1) + s]);
            }
            sal_sb_printf(&r->extra, "]");
        }
        sal_sb_printf(&r->extra, "}");
        for (int k = 0; k < NCURVE; k++)
            for (int64_t s = 0; s <= S; s++) {
                sal_sb_csv(&a->curves, r->method);
                sal_sb_printf(&a->curves, ",");
                sal_sb_csv(&a->curves, r->label);
                sal_sb_printf(&a->curves, ",%s,%.6g,%.9g\n", k_curve[k], (double)s / (double)S, mean[k * (S + 1) + s]);
            }
    }
    au_progress_end(&pr);
    au_patcache_free(&pc);
    if (st == SAL_OK && a->curves.oom) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK && fig) {
        sal_tensor occ = {0};
        if (have_occ) st = au_keep_row(&occ, x, sal_f32(&O) + fs * row);
        if (st == SAL_OK) st = figure(o->figure, a, &c, fs, fig, have_occ ? &occ : NULL, plane, kv, order);
        sal_tensor_free(&occ);
    }
    for (int j = 0; fig && j < nm; j++) sal_tensor_free(&fig[j]);
    sal_free(fig);
    /* plot: deletion and insertion (most relevant first), one line per method plus the random order */
    int ran = 0;
    for (int j = 0; st == SAL_OK && j < nm; j++) ran += !a->res[j].skipped;
    if (st == SAL_OK && o->plot) {
        int ns = ran + 1;
        double *v = sal_malloc((size_t)2 * (size_t)ns * (size_t)(S + 1) * sizeof *v);
        const char **series = sal_calloc((size_t)ns, sizeof *series);
        const char **ticks = sal_calloc((size_t)2 * (size_t)(S + 1), sizeof *ticks);
        if (!v || !series || !ticks) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        double ymax = -INFINITY, ymin = INFINITY;
        for (int p = 0; p < 2 && st == SAL_OK; p++) {
            int curve = p ? INS_MORF : DEL_MORF, q = 0;
            for (int j = 0; j < nm; j++) {
                if (a->res[j].skipped) continue;
                series[q] = a->res[j].label;
                for (int64_t s = 0; s <= S; s++) v[((size_t)p * (size_t)ns + (size_t)q) * (size_t)(S + 1) + (size_t)s] = allmean[(size_t)j * (size_t)npt + (size_t)(curve * (S + 1) + s)];
                q++;
            }
            series[q] = "random order";
            for (int64_t s = 0; s <= S; s++) v[((size_t)p * (size_t)ns + (size_t)q) * (size_t)(S + 1) + (size_t)s] = rmean[curve * (S + 1) + s];
            for (int64_t s = 0; s <= S; s++) {
                static const char *const frac[] = {"0", "0.25", "0.5", "0.75", "1"};
                ticks[p * (S + 1) + s] = S % 4 == 0 && s % (S / 4) == 0 ? frac[s / (S / 4)] : NULL;
            }
        }
        for (int64_t k = 0; st == SAL_OK && k < 2 * ns * (S + 1); k++)
            if (isfinite(v[k])) ymax = fmax(ymax, v[k]), ymin = fmin(ymin, v[k]);
        static const char *const titles[2] = {"deletion, most relevant first", "insertion, most relevant first"};
        au_plot_spec ps = {.npanel = 2, .nseries = ns, .npoint = (int)(S + 1), .panel_titles = titles, .series = series,
                           .xticks = ticks, .v = v, .ylo = o->prob ? 0 : fmin(0, ymin), .yhi = o->prob ? 1 : ymax};
        if (st == SAL_OK) st = au_plot(o->plot, &ps);
        sal_free(v);
        sal_free(series);
        sal_free(ticks);
    }
    sal_free(allmean);
    sal_session_free(c.s);
    sal_tensor_free(&c.batch);
    sal_free(c.scores);
    sal_free(c.tg);
    sal_tensor_free(&R);
    sal_tensor_free(&y);
    sal_tensor_free(&A);
    sal_tensor_free(&O);
    sal_free(target);
    sal_free(order);
    sal_free(kv);
    sal_free(plane);
    sal_free(oplane);
    sal_free(cv);
    sal_free(mean);
    sal_free(rmean);
    sal_free(meths);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
