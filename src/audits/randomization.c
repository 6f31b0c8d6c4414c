/* Model parameter randomization (Adebayo et al. 2018, "Sanity checks for saliency maps"; as used by
 * Khakzar et al. section 2): a map that explains the model must change when the weights that
 * produce the prediction are replaced by random ones. */
#include "audit.h"
#include "graph/rewrite.h"

/* Nodes whose weights get randomized, in execution order. */
static int list_layers(const sal_model *m, int *layer) {
    int n = 0;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *nd = &m->node[i];
        bool has = false;
        for (int k = 0; k < nd->nin; k++) has |= nd->in[k] >= 0 && m->val[nd->in[k]].param;
        if (sal_node_has(nd, SAL_TR_LINEAR) && has) layer[n++] = i;
    }
    return n;
}

/* Re-draws every parameter of node `node` of m (a copy) with a generator seeded by the seed and the
 * layer's index, so cascading and independent runs draw the same weights for a layer. */
static void randomize_layer(sal_model *m, int node, const sal_randomization_opts *o, int index) {
    sal_reinit_params(m, node, o->scaled, o->sigma > 0 ? o->sigma : 0.01,
                      o->common.seed * 0x9e3779b97f4a7c15ull + (uint64_t)index * 1000003u);
}

/* Copies the parameters of node `node` from src into dst (same graph). */
static void restore_layer(sal_model *dst, const sal_model *src, int node) {
    const sal_node *n = &dst->node[node];
    sal_model_weights_changed(dst);
    for (int k = 0; k < n->nin; k++) {
        int v = n->in[k];
        if (v < 0 || !dst->val[v].param) continue;
        int sv = sal_graph_find(src, dst->val[v].name);
        memcpy(dst->val[v].t.data, src->val[sv].t.data, (size_t)sal_tensor_numel(&dst->val[v].t) * sizeof(float));
    }
}

typedef struct {
    const sal_model *m;
    const sal_tensor *x;
    const sal_randomization_opts *o;
    const sal_audit_method *meth;
    const int64_t *target; /* the trained model's predictions, kept for every randomized model */
    const int *layer;      /* in execution order */
    int L, mode;
    double lo, hi;
    int64_t B, C, H, W, fs;
    sal_tensor A0, A;      /* the trained model's maps (N, ...), a batch's maps */
    au_patcache pc0, pcw;  /* patterns of the trained and of the randomized model */
    float *work;
    au_progress pr;
} rctx;

static au_xopts xopts(rctx *c, au_patcache *pc, int64_t i0) {
    const sal_tensor *data = c->o->common.data;
    return (au_xopts){.meth = c->meth, .target = SAL_TARGET_INDEX, .classes = c->target + i0, .data = data,
                      .lo = c->lo, .hi = c->hi, .chunk = c->o->common.chunk, .prob = c->o->common.prob, .pc = pc,
                      .pdata = data ? data : c->x};
}

/* The trained model's maps of this process's samples into their rows of c->A0. */
static sal_status original_maps(rctx *c, au_share *sh, bool *estimated) {
    int64_t row = au_row(c->x);
    SAL_TRY(sal_tensor_alloc(&c->A0, SAL_F32, c->x->ndim, c->x->dim));
    for (int64_t i0 = sh->lo; i0 < sh->hi; i0 += c->B) {
        int64_t n = sh->hi - i0 < c->B ? sh->hi - i0 : c->B;
        sal_tensor xb = au_rows(c->x, i0, n);
        au_xopts xo = xopts(c, &c->pc0, i0);
        bool est = false;
        sal_status st = au_explain(c->m, &xb, &xo, &c->A, &est);
        if (st != SAL_OK) {
            au_share_skip(sh, i0);
            return st;
        }
        *estimated |= est;
        memcpy(sal_f32(&c->A0) + i0 * row, c->A.data, (size_t)(n * row) * sizeof(float));
    }
    return SAL_OK;
}

/* Similarities (AU_NSIM) of the maps of model mm to the trained model's, for this process's
 * samples, into column `col` of their rows of the table (a skip noted at stage `stage`). figmap (one
 * sample) gets the figure sample's map when not NULL. */
static sal_status compare(rctx *c, const sal_model *mm, au_share *sh, int col, int64_t stage, sal_tensor *figmap,
                          bool *estimated) {
    int64_t row = au_row(c->x);
    for (int64_t i0 = sh->lo; i0 < sh->hi; i0 += c->B) {
        int64_t n = sh->hi - i0 < c->B ? sh->hi - i0 : c->B;
        sal_tensor xb = au_rows(c->x, i0, n);
        au_xopts xo = xopts(c, &c->pcw, i0);
        bool est = false;
        sal_status st = au_explain(mm, &xb, &xo, &c->A, &est);
        if (st != SAL_OK) {
            au_share_skip(sh, stage * (sh->n + 1) + i0);
            return st;
        }
        *estimated |= est;
        for (int64_t i = 0; i < n; i++) {
            au_similarity(sal_f32(&c->A0) + (i0 + i) * row, sal_f32(&c->A) + i * row, c->C, c->H, c->W, c->work,
                          sh->v + (i0 + i) * sh->width + col);
            if (figmap && i0 + i == c->fs) SAL_TRY(au_keep_row(figmap, c->x, sal_f32(&c->A) + i * row));
        }
    }
    return SAL_OK;
}

/* Mode md (0 cascading, 1 independent) on this process's samples: the table's columns of its steps. */
static sal_status run_mode(rctx *c, int md, au_share *sh, au_result *r) {
    int L = c->L;
    if (!(c->mode & (1 << md))) return SAL_OK;
    sal_model *wm = NULL;
    SAL_TRY(sal_model_copy(c->m, &wm));
    sal_status st = SAL_OK;
    for (int s = 1; s <= L && st == SAL_OK; s++) {
        int l = L - s; /* top layer first */
        if (md == 1 && s > 1) restore_layer(wm, c->m, c->layer[l + 1]);
        randomize_layer(wm, c->layer[l], c->o, l);
        bool est = false;
        int64_t stage = 1 + (int64_t)md * L + (s - 1);
        st = compare(c, wm, sh, (int)(stage - 1) * AU_NSIM, stage, md == 0 && c->fs >= 0 ? &r->maps[s] : NULL, &est);
        r->patterns |= est;
        au_progress_step(&c->pr, 1, r->label);
        if (st != SAL_OK) {
            st = au_skip(r, st, "on a randomized model");
            break;
        }
    }
    sal_model_free(wm);
    return st;
}

/* The curves from the shared table: step 0 is the map compared with itself, a mode not run NAN. */
static void curves(const rctx *c, const au_share *sh, double *curve) {
    int L = c->L;
    for (int md = 0; md < 2; md++) {
        double *cv = curve + (size_t)md * (size_t)(L + 1) * AU_NSIM;
        for (int k = 0; k < AU_NSIM; k++) cv[k] = 1;
        for (int s = 1; s <= L; s++) {
            au_mean mean[AU_NSIM] = {{0}};
            for (int64_t i = 0; i < sh->n && (c->mode & (1 << md)); i++)
                for (int k = 0; k < AU_NSIM; k++) au_mean_add(&mean[k], sh->v[i * sh->width + (md * L + s - 1) * AU_NSIM + k]);
            for (int k = 0; k < AU_NSIM; k++) cv[s * AU_NSIM + k] = c->mode & (1 << md) ? au_mean_get(&mean[k]) : NAN;
        }
    }
}

/* Summaries: the fully randomized model and the mean over the cascade's steps (cascading), the
 * mean over independent layers; then the verdict. */
static void summarize(const rctx *c, double tol, au_result *r) {
    int L = c->L, mode = c->mode;
    const double *casc = r->curve, *ind = casc + (size_t)(L + 1) * AU_NSIM;
    for (int k = 0; k < AU_NSIM; k++) {
        char key[48];
        if (mode & 1) {
            snprintf(key, sizeof key, "final_%s", au_sim_name[k]);
            au_metric(r, key, casc[L * AU_NSIM + k]);
            au_mean mm = {0};
            for (int s = 1; s <= L; s++) au_mean_add(&mm, casc[s * AU_NSIM + k]);
            snprintf(key, sizeof key, "cascading_mean_%s", au_sim_name[k]);
            au_metric(r, key, au_mean_get(&mm));
        }
        if (mode & 2) {
            au_mean mm = {0};
            for (int s = 1; s <= L; s++) au_mean_add(&mm, ind[s * AU_NSIM + k]);
            snprintf(key, sizeof key, "independent_mean_%s", au_sim_name[k]);
            au_metric(r, key, au_mean_get(&mm));
        }
    }
    /* The verdict takes the mean over the cascade, not only its end: positive propagation (guided
     * backprop, LRP z+, Deep Taylor) keeps its map while the top layers are random and changes
     * only once the first layer is, and that is the insensitivity Adebayo et al. and Khakzar et al.
     * report. Maps without two spatial axes have no HOG: the Spearman correlation of |maps| decides. */
    double score = au_metric_get(r, mode & 1 ? "cascading_mean_hog_spearman" : "independent_mean_hog_spearman");
    bool hog = isfinite(score);
    if (!hog) score = au_metric_get(r, mode & 1 ? "cascading_mean_spearman_abs" : "independent_mean_spearman_abs");
    bool sens = score < tol;
    if (!isfinite(score)) {
        au_undetermined(r, "sensitive", "no similarity is defined at any step: the maps are constant (often all "
                        "zero)");
        return;
    }
    au_metric_bool(r, "sensitive", sens);
    au_verdict(r, sens ? SAL_VERDICT_PASS : SAL_VERDICT_FAIL, "%s (%s %s %.3g %s threshold %g)",
               sens ? "sensitive" : "insensitive", mode & 1 ? "mean over the cascade" : "mean independent",
               hog ? "Spearman of HOG" : "Spearman of |maps|", score, sens ? "<" : ">=", tol);
}

/* This process's share of one method: the trained model's maps, then both modes. */
static sal_status explain_share(rctx *c, au_share *sh, au_result *r) {
    bool est = false;
    sal_status st = original_maps(c, sh, &est);
    au_progress_step(&c->pr, 1, r->label);
    if (st != SAL_OK) return au_skip(r, st, NULL); /* a method that cannot run on this model */
    r->patterns = est;
    if (c->fs >= sh->lo && c->fs < sh->hi) SAL_TRY(au_keep_row(&r->maps[0], c->x, sal_f32(&c->A0) + c->fs * au_row(c->x)));
    for (int md = 0; md < 2 && st == SAL_OK && au_ran(r); md++) st = run_mode(c, md, sh, r);
    return st;
}

/* One method: its share, shared, then the curves over every sample and the verdict. */
static sal_status run_method(rctx *c, double tol, au_result *r) {
    au_share sh;
    SAL_TRY(au_share_init(&sh, &c->o->common, c->x->dim[0], c->B, 2 * c->L * AU_NSIM));
    sal_status st = au_share_end(&sh, explain_share(c, &sh, r), r, c->fs >= 0 ? c->L + 1 : 0, c->x);
    if (st == SAL_OK && au_ran(r)) {
        r->npoint = c->L + 1;
        r->curve = sal_malloc((size_t)2 * (size_t)(c->L + 1) * AU_NSIM * sizeof *r->curve);
        if (!r->curve) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        else curves(c, &sh, r->curve), summarize(c, tol, r);
    }
    au_share_free(&sh);
    return st;
}

/* The setting (layers, init, targets) and every method's curves into a. */
static sal_status run(rctx *c, const sal_audit_method *meths, int nm, sal_audit *a) {
    const sal_randomization_opts *o = c->o;
    int64_t N = c->x->dim[0];
    if (!(a->rnd.layer = sal_calloc((size_t)c->L, sizeof *a->rnd.layer))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int q = 0; q < c->L; q++, a->rnd.nlayer++)
        if (!(a->rnd.layer[q] = sal_strdup(c->m->node[c->layer[c->L - 1 - q]].name))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    int64_t *target = sal_malloc((size_t)N * sizeof *target);
    if (!target) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    a->rnd.mode = c->mode, a->rnd.scaled = o->scaled != 0, a->rnd.sigma = o->sigma > 0 ? o->sigma : 0.01;
    c->target = target;
    sal_tensor y = {0};
    sal_status st = au_outputs(c->m, c->x, c->B, &y);
    if (st == SAL_OK) au_argmax(&y, target);
    sal_tensor_free(&y);
    au_range(o->common.data ? o->common.data : c->x, &c->lo, &c->hi);
    if (st == SAL_OK && c->fs >= 0) st = au_keep_row(&a->inputs[0], c->x, sal_f32(c->x) + c->fs * au_row(c->x));
    int runs = (c->mode & 1 ? c->L : 0) + (c->mode & 2 ? c->L : 0) + 1;
    au_progress_start(&c->pr, &o->common, "randomization", (int64_t)nm * runs);
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        c->meth = &meths[j];
        if ((st = au_result_init(&a->res[j], &meths[j])) == SAL_OK) st = run_method(c, a->tol, &a->res[j]);
        c->pr.done = (int64_t)(j + 1) * runs;
    }
    au_progress_end(&c->pr);
    sal_free(target);
    return st;
}

sal_status sal_audit_randomization(const sal_model *m, const sal_tensor *x, const sal_randomization_opts *o,
                                   sal_audit **out) {
    *out = NULL;
    const sal_audit_common *co = &o->common;
    if (x->dtype != SAL_F32 || x->ndim < 2 || x->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "the randomization audit needs a float32 batch (N, ...)");
    int mode = o->mode ? o->mode : 3;
    if (mode & ~3) return sal_fail(SAL_ERR_ARG, "randomization mode must be 1 (cascading), 2 (independent) or 3 (both)");
    int *layer = sal_malloc((size_t)(m->nnode + 1) * sizeof *layer);
    if (!layer) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    int L = list_layers(m, layer);
    if (!L) {
        sal_free(layer);
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s has no Gemm, MatMul or Conv layer with weights to randomize", m->path);
    }
    sal_audit_method *meths = NULL;
    int nm = 0;
    sal_audit *a = NULL;
    rctx c = {.m = m, .x = x, .o = o, .layer = layer, .L = L, .mode = mode, .B = co->batch > 0 ? co->batch : 16};
    au_geom(x, &c.C, &c.H, &c.W);
    c.work = sal_malloc((size_t)au_sim_work(c.C, c.H, c.W) * sizeof *c.work);
    sal_status st = c.work ? au_methods(co, &meths, &nm) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = au_audit_new(AU_RANDOMIZATION, co, nm, L + 1, 1, &a);
    if (st == SAL_OK) {
        a->tol = co->tol > 0 ? co->tol : 0.5;
        a->samples = x->dim[0];
        if (a->fig_sample < 0 || a->fig_sample >= x->dim[0]) a->fig_sample = -1;
        c.fs = a->fig_sample;
        st = run(&c, meths, nm, a);
    }
    au_patcache_free(&c.pc0);
    au_patcache_free(&c.pcw);
    sal_tensor_free(&c.A0);
    sal_tensor_free(&c.A);
    sal_free(c.work);
    sal_free(meths);
    sal_free(layer);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
