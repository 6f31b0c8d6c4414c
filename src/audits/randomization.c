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
static void randomize_layer(sal_model *m, int node, const sal_audit_opts *o, int index) {
    sal_reinit_params(m, node, o->scaled, o->sigma > 0 ? o->sigma : 0.01,
                      o->seed * 0x9e3779b97f4a7c15ull + (uint64_t)index * 1000003u);
}

/* Copies the parameters of node `node` from src into dst (same graph). */
static void restore_layer(sal_model *dst, const sal_model *src, int node) {
    const sal_node *n = &dst->node[node];
    for (int k = 0; k < n->nin; k++) {
        int v = n->in[k];
        if (v < 0 || !dst->val[v].param) continue;
        int sv = sal_graph_find(src, dst->val[v].name);
        memcpy(dst->val[v].t.data, src->val[sv].t.data, (size_t)sal_tensor_numel(&dst->val[v].t) * sizeof(float));
    }
}

enum { M_SPEAR, M_SPEAR_ABS, M_SSIM, M_HOG_P, M_HOG_S, NMET };
static const char *const k_met[NMET] = {"spearman", "spearman_abs", "ssim", "hog_pearson", "hog_spearman"};

typedef struct {
    const sal_model *m;
    const sal_tensor *x;
    const sal_audit_opts *o;
    const sal_audit_method *meth;
    const int64_t *target;
    double lo, hi;
    int64_t B, C, H, W;
    const sal_tensor *A0; /* the trained model's maps (N, ...) */
    au_patcache *pc;      /* patterns of the randomized model */
    float *work;
} rctx;

/* Mean similarities of the maps of model mm to the original ones, over all samples. figmap (one
 * sample) gets the figure sample's map when not NULL. */
static sal_status compare(const rctx *c, const sal_model *mm, double *met, sal_tensor *figmap, int64_t fs) {
    int64_t N = c->x->dim[0], row = au_row(c->x);
    au_mean mean[NMET] = {{0}};
    sal_tensor A = {0};
    sal_status st = SAL_OK;
    for (int64_t i0 = 0; i0 < N && st == SAL_OK; i0 += c->B) {
        int64_t n = N - i0 < c->B ? N - i0 : c->B;
        sal_tensor xb = au_rows(c->x, i0, n);
        au_xopts xo = {.meth = c->meth, .target = SAL_TARGET_INDEX, .classes = c->target + i0, .data = c->o->data,
                       .lo = c->lo, .hi = c->hi, .chunk = c->o->chunk, .prob = c->o->prob, .pc = c->pc,
                       .pdata = c->o->data ? c->o->data : c->x};
        if ((st = au_explain(mm, &xb, &xo, &A, NULL)) != SAL_OK) break;
        for (int64_t i = 0; i < n; i++) {
            au_sim s;
            au_similarity(sal_f32(c->A0) + (i0 + i) * row, sal_f32(&A) + i * row, c->C, c->H, c->W, c->work, &s);
            double v[NMET] = {s.spearman, s.spearman_abs, s.ssim, s.hog_pearson, s.hog_spearman};
            for (int k = 0; k < NMET; k++) au_mean_add(&mean[k], v[k]);
            if (figmap && i0 + i == fs) memcpy(figmap->data, sal_f32(&A) + i * row, (size_t)row * sizeof(float));
        }
    }
    sal_tensor_free(&A);
    for (int k = 0; k < NMET; k++) met[k] = au_mean_get(&mean[k]);
    return st;
}

sal_status sal_audit_randomization(const sal_model *m, const sal_tensor *x, const sal_audit_opts *o, sal_audit **out) {
    *out = NULL;
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
    int64_t N = x->dim[0], fs = o->figure_sample;
    if (o->figure && (fs < 0 || fs >= N)) {
        sal_free(layer);
        return sal_fail(SAL_ERR_ARG, "figure sample %lld is out of range (%lld samples)", (long long)fs, (long long)N);
    }
    double tol = o->tol > 0 ? o->tol : 0.5;
    sal_audit_method *meths = NULL;
    int nm = 0;
    sal_status st = au_methods(o, &meths, &nm);
    sal_audit *a = NULL;
    sal_tensor y = {0}, A0 = {0};
    sal_model *work_m = NULL;
    int64_t *target = sal_malloc((size_t)N * sizeof *target);
    /* curves[(j * 2 + mode) * (L + 1) + step][metric] */
    double *curve = sal_malloc((size_t)(nm > 0 ? nm : 1) * 2 * (size_t)(L + 1) * NMET * sizeof *curve);
    sal_tensor *figmaps = sal_calloc((size_t)(nm > 0 ? nm : 1) * (size_t)(L + 1), sizeof *figmaps);
    rctx c = {.m = m, .x = x, .o = o, .target = target, .B = o->batch > 0 ? o->batch : 16, .A0 = &A0};
    au_geom(x, &c.C, &c.H, &c.W);
    c.work = sal_malloc((size_t)au_sim_work(c.C, c.H, c.W) * sizeof *c.work);
    if (st == SAL_OK && (!target || !curve || !c.work || !figmaps)) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = au_report_new("randomization", o, nm, &a);
    if (st == SAL_OK) { /* targets: the trained model's predictions, kept for every randomized model */
        a->tol = tol;
        st = au_outputs(m, x, c.B, &y);
        for (int64_t i = 0; st == SAL_OK && i < N; i++) {
            const float *z = sal_f32(&y) + i * y.dim[1];
            int64_t b = 0;
            for (int64_t k = 1; k < y.dim[1]; k++)
                if (z[k] > z[b]) b = k;
            target[i] = b;
        }
        au_range(o->data ? o->data : x, &c.lo, &c.hi);
        sal_sb_printf(&a->top, ",\n  \"layers\": [");
        for (int l = L - 1; l >= 0; l--) {
            sal_sb_printf(&a->top, "%s", l < L - 1 ? ", " : "");
            sal_sb_str(&a->top, m->node[layer[l]].name);
        }
        sal_sb_printf(&a->top, "],\n  \"init\": \"%s\"", o->scaled ? "scaled gaussian N(0, 2/fan_in), zero biases" : "gaussian");
        if (!o->scaled) {
            sal_sb_printf(&a->top, ",\n  \"sigma\": ");
            sal_sb_num(&a->top, o->sigma > 0 ? o->sigma : 0.01);
        }
        sal_sb_printf(&a->top, ",\n  \"target\": \"the trained model's predicted class\"");
    }
    int runs = (mode & 1 ? L : 0) + (mode & 2 ? L : 0) + 1;
    au_patcache pc0 = {0}, pcw = {0};
    c.pc = &pcw;
    au_progress pr;
    au_progress_start(&pr, o->progress, "randomization", (int64_t)nm * runs);
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        au_result *r = &a->res[j];
        c.meth = &meths[j];
        if ((st = au_result_init(r, &meths[j])) != SAL_OK) break;
        au_xopts xo = {.meth = &meths[j], .target = SAL_TARGET_INDEX, .classes = target, .data = o->data, .lo = c.lo,
                       .hi = c.hi, .chunk = o->chunk, .prob = o->prob, .pc = &pc0, .pdata = o->data ? o->data : x};
        /* the original maps; a method that cannot run on this model is skipped */
        sal_status s0 = SAL_OK;
        for (int64_t i0 = 0; i0 < N && s0 == SAL_OK; i0 += c.B) {
            int64_t n = N - i0 < c.B ? N - i0 : c.B;
            sal_tensor xb = au_rows(x, i0, n), Ab = {0};
            xo.classes = target + i0;
            s0 = au_explain(m, &xb, &xo, &Ab, NULL);
            if (s0 == SAL_OK && i0 == 0) s0 = sal_tensor_alloc(&A0, SAL_F32, x->ndim, x->dim);
            if (s0 == SAL_OK) memcpy(sal_f32(&A0) + i0 * au_row(x), Ab.data, (size_t)(n * au_row(x)) * sizeof(float));
            sal_tensor_free(&Ab);
        }
        au_progress_step(&pr, 1, r->label);
        if (s0 != SAL_OK) {
            if (s0 == SAL_ERR_NOMEM) {
                st = s0;
                break;
            }
            au_skip(r, sal_last_error());
            au_progress_step(&pr, runs - 1, r->label);
            continue;
        }
        if (o->figure) {
            int64_t one[SAL_MAX_DIMS];
            memcpy(one, x->dim, sizeof one);
            one[0] = 1;
            for (int s = 0; s <= L && st == SAL_OK; s++) st = sal_tensor_alloc(&figmaps[j * (L + 1) + s], SAL_F32, x->ndim, one);
            if (st != SAL_OK) break;
            memcpy(figmaps[j * (L + 1)].data, sal_f32(&A0) + fs * au_row(x), (size_t)au_row(x) * sizeof(float));
        }
        sal_status sm = SAL_OK;
        for (int md = 0; md < 2 && sm == SAL_OK && st == SAL_OK; md++) {
            double *cv = curve + ((size_t)j * 2 + (size_t)md) * (size_t)(L + 1) * NMET;
            for (int k = 0; k < NMET; k++) cv[k] = 1; /* step 0: the map compared with itself */
            for (int s = 1; s <= L; s++)
                for (int k = 0; k < NMET; k++) cv[s * NMET + k] = NAN;
            if (!(mode & (1 << md))) continue;
            sal_model_free(work_m);
            work_m = NULL;
            if ((st = sal_model_copy(m, &work_m)) != SAL_OK) break;
            for (int s = 1; s <= L && sm == SAL_OK; s++) {
                int l = L - s; /* top layer first */
                if (md == 1 && s > 1) restore_layer(work_m, m, layer[l + 1]);
                randomize_layer(work_m, layer[l], o, l);
                sal_tensor *fm = o->figure && md == 0 ? &figmaps[j * (L + 1) + s] : NULL;
                sm = compare(&c, work_m, cv + s * NMET, fm, fs);
                au_progress_step(&pr, 1, r->label);
            }
        }
        if (st != SAL_OK) break;
        if (sm != SAL_OK) {
            if (sm == SAL_ERR_NOMEM) {
                st = sm;
                break;
            }
            char why[600];
            snprintf(why, sizeof why, "on a randomized model: %s", sal_last_error());
            au_skip(r, why);
            continue;
        }
        if (pc0.used) sal_sb_printf(&r->extra, ",\n      \"patterns\": \"estimated by the audit for each model from its reference data\"");
        pc0.used = pcw.used = false;
        /* summaries: the fully randomized model and the mean over the cascade's steps (cascading),
         * the mean over independent layers */
        const double *casc = curve + (size_t)j * 2 * (size_t)(L + 1) * NMET, *ind = casc + (size_t)(L + 1) * NMET;
        for (int k = 0; k < NMET; k++) {
            char key[48];
            if (mode & 1) {
                snprintf(key, sizeof key, "final_%s", k_met[k]);
                au_metric(r, key, casc[L * NMET + k]);
                au_mean mm = {0};
                for (int s = 1; s <= L; s++) au_mean_add(&mm, casc[s * NMET + k]);
                snprintf(key, sizeof key, "cascading_mean_%s", k_met[k]);
                au_metric(r, key, au_mean_get(&mm));
            }
            if (mode & 2) {
                au_mean mm = {0};
                for (int s = 1; s <= L; s++) au_mean_add(&mm, ind[s * NMET + k]);
                snprintf(key, sizeof key, "independent_mean_%s", k_met[k]);
                au_metric(r, key, au_mean_get(&mm));
            }
        }
        /* The verdict takes the mean over the cascade, not only its end: positive propagation (guided
         * backprop, LRP z+, Deep Taylor) keeps its map while the top layers are random and changes
         * only once the first layer is, and that is the insensitivity Adebayo et al. and Khakzar et al.
         * report. Maps without two spatial axes have no HOG: the Spearman correlation of |maps| decides. */
        double score = sal_audit_metric(a, j, mode & 1 ? "cascading_mean_hog_spearman" : "independent_mean_hog_spearman");
        bool hog = isfinite(score);
        if (!hog) score = sal_audit_metric(a, j, mode & 1 ? "cascading_mean_spearman_abs" : "independent_mean_spearman_abs");
        bool sens = score < tol;
        au_metric_bool(r, "sensitive", sens);
        if (!isfinite(score))
            au_verdict(r, false, "undetermined (no similarity could be computed)");
        else
            au_verdict(r, !sens, "%s (%s %s %.3g %s threshold %g)", sens ? "sensitive" : "insensitive",
                       mode & 1 ? "mean over the cascade" : "mean independent",
                       hog ? "Spearman of HOG" : "Spearman of |maps|", score, sens ? "<" : ">=", tol);
        for (int md = 0; md < 2; md++) {
            if (!(mode & (1 << md))) continue;
            const double *cv = curve + ((size_t)j * 2 + (size_t)md) * (size_t)(L + 1) * NMET;
            sal_sb_printf(&r->extra, ",\n      \"%s\": [", md ? "independent" : "cascading");
            for (int s = 0; s <= L; s++) {
                sal_sb_printf(&r->extra, "%s\n        {\"step\": %d, \"layer\": ", s ? "," : "", s);
                sal_sb_str(&r->extra, s ? m->node[layer[L - s]].name : "");
                for (int k = 0; k < NMET; k++) {
                    sal_sb_printf(&r->extra, ", \"%s\": ", k_met[k]);
                    sal_sb_num(&r->extra, cv[s * NMET + k]);
                }
                sal_sb_printf(&r->extra, "}");
            }
            sal_sb_printf(&r->extra, "\n      ]");
        }
    }
    au_progress_end(&pr);
    au_patcache_free(&pc0);
    au_patcache_free(&pcw);
    /* CSV: one row per method, mode and step */
    if (st == SAL_OK) {
        sal_sb_printf(&a->curves, "method,label,mode,step,layer");
        for (int k = 0; k < NMET; k++) sal_sb_printf(&a->curves, ",%s", k_met[k]);
        sal_sb_printf(&a->curves, "\n");
        for (int j = 0; j < nm; j++) {
            if (a->res[j].skipped) continue;
            for (int md = 0; md < 2; md++) {
                if (!(mode & (1 << md))) continue;
                const double *cv = curve + ((size_t)j * 2 + (size_t)md) * (size_t)(L + 1) * NMET;
                for (int s = 0; s <= L; s++) {
                    sal_sb_csv(&a->curves, a->res[j].method);
                    sal_sb_printf(&a->curves, ",");
                    sal_sb_csv(&a->curves, a->res[j].label);
                    sal_sb_printf(&a->curves, ",%s,%d,", md ? "independent" : "cascading", s);
                    sal_sb_csv(&a->curves, s ? m->node[layer[L - s]].name : "");
                    for (int k = 0; k < NMET; k++) {
                        if (isfinite(cv[s * NMET + k])) sal_sb_printf(&a->curves, ",%.9g", cv[s * NMET + k]);
                        else sal_sb_printf(&a->curves, ",");
                    }
                    sal_sb_printf(&a->curves, "\n");
                }
            }
        }
        if (a->curves.oom) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    int ran = 0;
    for (int j = 0; a && j < nm; j++) ran += !a->res[j].skipped;
    /* plot: Spearman of HOG against the layers randomized, one line per method, a panel per mode */
    if (st == SAL_OK && o->plot && ran) {
        int np = (mode & 1) + ((mode >> 1) & 1);
        double *v = sal_malloc((size_t)np * (size_t)ran * (size_t)(L + 1) * sizeof *v);
        const char **series = sal_calloc((size_t)ran, sizeof *series);
        const char **ticks = sal_calloc((size_t)np * (size_t)(L + 1), sizeof *ticks);
        const char *titles[2];
        if (!v || !series || !ticks) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        for (int md = 0, p = 0; md < 2 && st == SAL_OK; md++) {
            if (!(mode & (1 << md))) continue;
            titles[p] = md ? "independent: spearman of hog" : "cascading: spearman of hog";
            for (int s = 0; s <= L; s++) ticks[p * (L + 1) + s] = s ? m->node[layer[L - s]].name : "none";
            for (int j = 0, q = 0; j < nm; j++) {
                if (a->res[j].skipped) continue;
                series[q] = a->res[j].label;
                const double *cv = curve + ((size_t)j * 2 + (size_t)md) * (size_t)(L + 1) * NMET;
                for (int s = 0; s <= L; s++) v[((size_t)p * (size_t)ran + (size_t)q) * (size_t)(L + 1) + (size_t)s] = cv[s * NMET + M_HOG_S];
                q++;
            }
            p++;
        }
        au_plot_spec ps = {.npanel = np, .nseries = ran, .npoint = L + 1, .panel_titles = titles, .series = series,
                           .xticks = ticks, .v = v, .ylo = -0.2, .yhi = 1};
        if (st == SAL_OK) st = au_plot(o->plot, &ps);
        sal_free(v);
        sal_free(series);
        sal_free(ticks);
    }
    /* figure: rows = methods; the map of the trained model, then after each cascading step */
    if (st == SAL_OK && o->figure && ran && (mode & 1)) {
        int cols = L + 2;
        sal_grid_tile *t = sal_calloc((size_t)ran * (size_t)cols, sizeof *t);
        const char **labels = sal_calloc((size_t)ran, sizeof *labels), **cl = sal_calloc((size_t)cols, sizeof *cl);
        sal_tensor x1 = au_rows(x, fs, 1);
        if (!t || !labels || !cl) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        for (int j = 0, q = 0; j < nm && st == SAL_OK; j++) {
            if (a->res[j].skipped) continue;
            labels[q] = a->res[j].label;
            t[q * cols].image = &x1;
            for (int s = 0; s <= L; s++) t[q * cols + 1 + s].map = &figmaps[j * (L + 1) + s];
            q++;
        }
        if (st == SAL_OK) {
            cl[0] = "input";
            cl[1] = "trained";
            for (int s = 1; s <= L; s++) cl[1 + s] = m->node[layer[L - s]].name;
            sal_grid_opts go = {.share = SAL_SHARE_TILE, .row_labels = labels, .col_labels = cl};
            go.heat.scale = c.H * c.W <= 64 * 64 ? 3 : 1;
            st = sal_png_grid(o->figure, ran, cols, t, &go);
        }
        sal_free(t);
        sal_free(labels);
        sal_free(cl);
    }
    for (int64_t i = 0; figmaps && i < (int64_t)(nm > 0 ? nm : 1) * (L + 1); i++) sal_tensor_free(&figmaps[i]);
    sal_free(figmaps);
    sal_model_free(work_m);
    sal_tensor_free(&y);
    sal_tensor_free(&A0);
    sal_free(c.work);
    sal_free(curve);
    sal_free(target);
    sal_free(meths);
    sal_free(layer);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
