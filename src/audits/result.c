/* Audit results and the machinery every audit shares: method lists, explaining with patterns
 * estimated in memory, tensors, similarities, progress. */
#include "audit.h"
#include <stdarg.h>

const char *const au_kind_name[AU_NKINDS] = {"invariance", "randomization", "class-sensitivity", "pointing",
                                             "faithfulness", "motif"};
const char *const au_pass_key[AU_NKINDS] = {"invariant", "sensitive", "class_sensitive", "class_sensitive", "faithful",
                                           "recovers_motifs"};
const char *const au_sim_name[AU_NSIM] = {"spearman", "spearman_abs", "ssim", "hog_pearson", "hog_spearman"};
const char *const au_curve_name[AU_NCURVE] = {"deletion_morf", "deletion_lerf", "insertion_morf", "insertion_lerf"};

/* ---- results ---- */

sal_status au_audit_new(au_kind kind, const sal_audit_common *c, int nres, int nmaps, int ninputs, sal_audit **out) {
    *out = NULL;
    sal_audit *a = sal_calloc(1, sizeof *a);
    if (!a) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    a->kind = kind;
    a->model = sal_strdup(c->model_name ? c->model_name : "");
    a->data = sal_strdup(c->data_name ? c->data_name : "");
    a->seed = c->seed;
    a->ranks = c->shard && c->shard->nranks > 1 ? c->shard->nranks : 1;
    a->fig_asked = a->fig_sample = c->figure_sample;
    a->res = sal_calloc((size_t)(nres > 0 ? nres : 1), sizeof *a->res);
    a->nres = nres;
    a->nmaps = nmaps;
    a->inputs = sal_calloc((size_t)(ninputs > 0 ? ninputs : 1), sizeof *a->inputs);
    a->ninputs = ninputs;
    bool ok = a->model && a->data && a->res && a->inputs;
    for (int i = 0; ok && i < nres; i++) {
        a->res[i].outcome = SAL_VERDICT_SKIPPED; /* until it ran */
        ok = (a->res[i].maps = sal_calloc((size_t)(nmaps > 0 ? nmaps : 1), sizeof *a->res[i].maps)) != NULL;
    }
    if (!ok) {
        sal_audit_free(a);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    *out = a;
    return SAL_OK;
}

static void free_strings(char **v, int n) {
    for (int i = 0; v && i < n; i++) sal_free(v[i]);
    sal_free(v);
}

void sal_audit_free(sal_audit *a) {
    if (!a) return;
    for (int i = 0; i < a->nres && a->res; i++) {
        au_result *r = &a->res[i];
        sal_free(r->label);
        sal_free(r->method);
        sal_free(r->verdict);
        free_strings(r->params, r->nparams);
        sal_free(r->curve);
        for (int k = 0; r->maps && k < a->nmaps; k++) sal_tensor_free(&r->maps[k]);
        sal_free(r->maps);
    }
    for (int i = 0; a->inputs && i < a->ninputs; i++) sal_tensor_free(&a->inputs[i]);
    sal_free(a->inputs);
    sal_free(a->res);
    sal_free(a->model);
    sal_free(a->data);
    free_strings(a->rnd.layer, a->rnd.nlayer);
    sal_free(a->fa.curve);
    sal_free(a->fa.occ_err);
    free_strings(a->fa.occ, a->fa.nocc);
    sal_tensor_free(&a->fa.occ_map);
    sal_free(a->mo.planted);
    sal_free(a);
}

sal_status au_result_init(au_result *r, const sal_audit_method *m) {
    sal_sbuf lab = {0};
    sal_sb_printf(&lab, "%s", m->name);
    for (int k = 0; k < m->nparams; k++) sal_sb_printf(&lab, "%s%s", k ? "," : "(", m->params[k]);
    sal_sb_printf(&lab, "%s", m->nparams ? ")" : "");
    r->label = lab.s;
    r->outcome = SAL_VERDICT_UNDETERMINED; /* running: until a verdict or a skip */
    r->method = sal_strdup(m->name);
    r->params = sal_calloc((size_t)m->nparams + 1, sizeof *r->params);
    bool ok = !lab.oom && r->label && r->method && r->params;
    for (int k = 0; ok && k < m->nparams; k++, r->nparams++) ok = (r->params[k] = sal_strdup(m->params[k])) != NULL;
    return ok ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
}

static int metric_slot(au_result *r, const char *key) {
    for (int i = 0; i < r->nmetric; i++)
        if (!strcmp(r->mkey[i], key)) return i;
    if (r->nmetric == AU_MAX_METRICS) return -1;
    snprintf(r->mkey[r->nmetric], sizeof r->mkey[0], "%s", key);
    return r->nmetric++;
}

void au_metric(au_result *r, const char *key, double v) {
    int i = metric_slot(r, key);
    if (i >= 0) r->mval[i] = v, r->mbool[i] = false;
}

void au_metric_bool(au_result *r, const char *key, bool v) {
    int i = metric_slot(r, key);
    if (i >= 0) r->mval[i] = v, r->mbool[i] = true;
}

void au_verdict(au_result *r, sal_verdict outcome, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sal_free(r->verdict);
    r->verdict = sal_strdup(buf);
    r->outcome = outcome;
}

void au_undetermined(au_result *r, const char *pass_key, const char *fmt, ...) {
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    au_metric(r, pass_key, NAN);
    au_verdict(r, SAL_VERDICT_UNDETERMINED, "undetermined (%s)", buf);
}

bool au_constant(const float *v, int64_t n) {
    for (int64_t i = 1; i < n; i++)
        if (v[i] != v[0]) return false;
    return true;
}

sal_status au_skip(au_result *r, sal_status st, const char *prefix) {
    if (st == SAL_ERR_NOMEM) return st;
    const char *why = sal_last_error();
    r->nmetric = 0;
    r->patterns = false;
    sal_free(r->curve);
    r->curve = NULL;
    au_verdict(r, SAL_VERDICT_SKIPPED, "skipped: %s%s%s", prefix ? prefix : "", prefix ? ": " : "",
               *why ? why : "failed");
    return SAL_OK;
}

int au_count_ran(const sal_audit *a) {
    int n = 0;
    for (int i = 0; i < a->nres; i++) n += au_ran(&a->res[i]);
    return n;
}

int sal_audit_count(const sal_audit *a) { return a->nres; }
const char *sal_audit_label(const sal_audit *a, int i) { return i >= 0 && i < a->nres ? a->res[i].label : NULL; }
sal_verdict sal_audit_outcome(const sal_audit *a, int i) {
    return i >= 0 && i < a->nres ? a->res[i].outcome : SAL_VERDICT_SKIPPED;
}
const char *sal_audit_verdict(const sal_audit *a, int i) {
    return i >= 0 && i < a->nres && a->res[i].verdict ? a->res[i].verdict : "";
}
int sal_audit_skipped(const sal_audit *a, int i) { return i >= 0 && i < a->nres && !au_ran(&a->res[i]); }

double au_metric_get(const au_result *r, const char *key) {
    for (int k = 0; k < r->nmetric; k++)
        if (!strcmp(r->mkey[k], key)) return r->mval[k];
    return NAN;
}

int sal_audit_reference(const sal_audit *a, int i) { return a && i >= 0 && i < a->nres && a->res[i].reference; }

double sal_audit_metric(const sal_audit *a, int i, const char *name) {
    return i >= 0 && i < a->nres ? au_metric_get(&a->res[i], name) : NAN;
}

int sal_audit_violations(const sal_audit *a) {
    int n = 0;
    for (int i = 0; i < a->nres; i++) n += a->res[i].outcome == SAL_VERDICT_FAIL && !a->res[i].reference;
    return n;
}

/* ---- methods ---- */

sal_status au_methods(const sal_audit_common *c, sal_audit_method **list, int *n) {
    int count = c->nmethods > 0 ? c->nmethods : sal_method_count();
    *n = 0;
    *list = sal_calloc((size_t)(count > 0 ? count : 1), sizeof **list);
    if (!*list) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < count; i++) {
        if (c->nmethods > 0) {
            const sal_audit_method *m = &c->methods[i];
            bool known = false;
            for (int k = 0; k < sal_method_count() && !known; k++) known = m->name && !strcmp(m->name, sal_method_name(k));
            if (!known) {
                sal_free(*list);
                *list = NULL;
                return sal_fail(SAL_ERR_ARG, "unknown method '%s' (saliency methods lists them)",
                                m->name ? m->name : "");
            }
            (*list)[i] = *m;
        } else {
            (*list)[i] = (sal_audit_method){.name = sal_method_name(i)};
        }
    }
    *n = count;
    return SAL_OK;
}

void au_patcache_free(au_patcache *pc) {
    sal_patterns_free(pc->p);
    memset(pc, 0, sizeof *pc);
}

/* Patterns of model m from data into pc, unless it holds m's already. */
static sal_status estimate_patterns(const sal_model *m, const sal_tensor *data, au_patcache *pc) {
    uint64_t h = sal_model_hash(m);
    if (pc->p && pc->hash == h) return SAL_OK;
    au_patcache_free(pc);
    sal_patterns_opts po = {0};
    sal_status st = sal_patterns_estimate(m, data, "the audit's reference data", &po, &pc->p);
    if (st != SAL_OK) return sal_wrap(st, "estimating patterns");
    pc->hash = h;
    return SAL_OK;
}

sal_status au_explain(const sal_model *m, const sal_tensor *x, const au_xopts *xo, sal_tensor *map, bool *estimated) {
    sal_explain_opts eo = {.method = xo->meth->name, .nparams = xo->meth->nparams, .params = xo->meth->params,
                           .target = xo->target, .classes = xo->classes, .nclasses = xo->classes ? x->dim[0] : 0,
                           .prob = xo->prob, .data = xo->data, .data_lo = xo->lo, .data_hi = xo->hi,
                           .chunk = xo->chunk};
    /* a method that reads patterns and names no file (PatternNet, Deep Taylor with root=pattern)
     * gets patterns estimated for this very model */
    bool est = xo->pc && xo->pdata && sal_method_needs_patterns(xo->meth->name, xo->meth->nparams, xo->meth->params);
    if (est) {
        SAL_TRY(estimate_patterns(m, xo->pdata, xo->pc));
        eo.patterns = xo->pc->p;
    }
    if (estimated) *estimated = est;
    sal_explanation *e = NULL;
    SAL_TRY(sal_explain(m, x, &eo, &e));
    sal_status st = sal_tensor_copy(map, sal_explanation_map(e));
    sal_explanation_free(e);
    return st;
}

/* ---- tensors ---- */

sal_tensor au_rows(const sal_tensor *x, int64_t i0, int64_t n) {
    sal_tensor v = sal_tensor_view(x);
    v.dim[0] = n;
    v.data = (char *)x->data + (size_t)i0 * (size_t)sal_row_size(x) * sal_dtype_size(x->dtype);
    return v;
}

sal_status au_keep_row(sal_tensor *t, const sal_tensor *x, const float *row) {
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, x->dim, sizeof dim);
    dim[0] = 1;
    SAL_TRY(sal_tensor_alloc(t, SAL_F32, x->ndim, dim));
    memcpy(t->data, row, (size_t)au_row(x) * sizeof *row);
    return SAL_OK;
}

sal_status au_gather(const sal_tensor *x, const int64_t *idx, int64_t n, sal_tensor *out) {
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, x->dim, sizeof dim);
    dim[0] = n;
    SAL_TRY(sal_tensor_alloc(out, x->dtype, x->ndim, dim));
    size_t row = (size_t)sal_row_size(x) * sal_dtype_size(x->dtype);
    for (int64_t i = 0; i < n; i++) memcpy((char *)out->data + (size_t)i * row, (const char *)x->data + (size_t)idx[i] * row, row);
    return SAL_OK;
}

void au_geom(const sal_tensor *x, int64_t *C, int64_t *H, int64_t *W) {
    if (x->ndim <= 2) {
        *C = 1, *H = 1, *W = x->ndim == 2 ? x->dim[1] : 1;
        return;
    }
    *C = x->dim[1];
    *W = x->dim[x->ndim - 1];
    *H = 1;
    for (int d = 2; d < x->ndim - 1; d++) *H *= x->dim[d];
}

void au_plane(const float *v, int64_t C, int64_t HW, bool abs, float *plane) {
    for (int64_t p = 0; p < HW; p++) {
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += abs ? fabs((double)v[c * HW + p]) : (double)v[c * HW + p];
        plane[p] = (float)s;
    }
}

void au_range(const sal_tensor *t, double *lo, double *hi) {
    const float *p = sal_f32(t);
    double a = INFINITY, b = -INFINITY;
    for (int64_t i = 0, n = sal_tensor_numel(t); i < n; i++) a = fmin(a, p[i]), b = fmax(b, p[i]);
    if (!(a <= b)) a = 0, b = 1;
    *lo = a;
    *hi = b > a ? b : a + 1;
}

sal_status au_outputs(const sal_model *m, const sal_tensor *x, int64_t chunk, sal_tensor *y) {
    sal_session *s;
    SAL_TRY(sal_session_new(m, &s));
    sal_status st = SAL_OK;
    int64_t N = x->dim[0];
    if (chunk < 1) chunk = 64;
    for (int64_t i0 = 0; i0 < N && st == SAL_OK; i0 += chunk) {
        int64_t n = N - i0 < chunk ? N - i0 : chunk;
        sal_tensor xb = au_rows(x, i0, n);
        const sal_tensor *outs[8] = {0};
        if (sal_model_num_outputs(m) > 8) {
            st = sal_fail(SAL_ERR_UNSUPPORTED, "%s has more than 8 outputs", m->path);
            break;
        }
        if ((st = sal_forward(s, 1, &xb, outs)) != SAL_OK) break;
        const sal_tensor *z = outs[0];
        if (z->ndim != 2 || z->dtype != SAL_F32 || z->dim[0] != n) {
            char b[160];
            st = sal_fail(SAL_ERR_SHAPE, "audits need (batch, classes) outputs; %s gives %s", m->path,
                          sal_shape_str(z->ndim, z->dim, b, sizeof b));
            break;
        }
        if (i0 == 0) st = sal_tensor_alloc(y, SAL_F32, 2, (int64_t[]){N, z->dim[1]});
        if (st == SAL_OK) memcpy(sal_f32(y) + i0 * z->dim[1], sal_f32(z), (size_t)(n * z->dim[1]) * sizeof(float));
    }
    sal_session_free(s);
    return st;
}

void au_argmax(const sal_tensor *y, int64_t *cls) {
    for (int64_t i = 0, K = y->dim[1]; i < y->dim[0]; i++) {
        const float *z = sal_f32(y) + i * K;
        int64_t b = 0;
        for (int64_t k = 1; k < K; k++)
            if (z[k] > z[b]) b = k;
        cls[i] = b;
    }
}

void au_scores(const sal_tensor *y, const int64_t *target, bool prob, float *out) {
    int64_t N = y->dim[0], K = y->dim[1];
    for (int64_t i = 0; i < N; i++) {
        const float *z = sal_f32(y) + i * K;
        if (!prob) {
            out[i] = z[target[i]];
            continue;
        }
        double mx = z[0], sum = 0;
        for (int64_t k = 1; k < K; k++) mx = fmax(mx, z[k]);
        for (int64_t k = 0; k < K; k++) sum += exp(z[k] - mx);
        out[i] = (float)(exp(z[target[i]] - mx) / sum);
    }
}

/* ---- similarity of two maps ---- */

int64_t au_sim_work(int64_t C, int64_t H, int64_t W) {
    int64_t nh = 0;
    if (sal_hog(NULL, (int)H, (int)W, NULL, NULL, &nh) != SAL_OK) nh = 0;
    return 4 * C * H * W + 2 * nh + 1;
}

/* a plane of |values| scaled into [0, 1] by its largest value (maps have no common scale) */
static void unit_scale(float *p, int64_t n) {
    float mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmaxf(mx, p[i]);
    if (mx > 0)
        for (int64_t i = 0; i < n; i++) p[i] /= mx;
}

void au_similarity(const float *a, const float *b, int64_t C, int64_t H, int64_t W, float *work, double s[AU_NSIM]) {
    int64_t n = C * H * W, HW = H * W;
    s[AU_SPEAR] = sal_spearman(a, b, n);
    float *fa = work, *fb = work + n;
    for (int64_t i = 0; i < n; i++) fa[i] = fabsf(a[i]), fb[i] = fabsf(b[i]);
    s[AU_SPEAR_ABS] = sal_spearman(fa, fb, n);
    /* SSIM and HOG of the |map| planes in [0, 1], as Adebayo et al. compare them */
    float *pa = work + 2 * n, *pb = pa + HW;
    au_plane(a, C, HW, true, pa);
    au_plane(b, C, HW, true, pb);
    unit_scale(pa, HW);
    unit_scale(pb, HW);
    if (sal_ssim(pa, pb, (int)H, (int)W, 1.0, &s[AU_SSIM]) != SAL_OK) s[AU_SSIM] = NAN;
    int64_t nh = 0;
    s[AU_HOG_P] = s[AU_HOG_S] = NAN;
    float *ha = work + 4 * n, *hb;
    if (sal_hog(pa, (int)H, (int)W, NULL, ha, &nh) == SAL_OK) {
        hb = ha + nh;
        if (sal_hog(pb, (int)H, (int)W, NULL, hb, &nh) == SAL_OK) {
            s[AU_HOG_P] = sal_pearson(ha, hb, nh);
            s[AU_HOG_S] = sal_spearman(ha, hb, nh);
        }
    }
}

/* ---- progress ---- */

void au_progress_start(au_progress *p, const sal_audit_common *c, const char *what, int64_t total) {
    *p = (au_progress){.fn = c->progress, .user = c->progress_user, .what = what, .total = total > 0 ? total : 1};
    if (p->fn) p->fn(p->user, what, 0, p->total, "");
}

void au_progress_step(au_progress *p, int64_t n, const char *label) {
    p->done += n;
    if (p->done > p->total) p->done = p->total;
    if (p->fn && p->done < p->total) p->fn(p->user, p->what, p->done, p->total, label ? label : "");
}

void au_progress_end(au_progress *p) {
    p->done = p->total;
    if (p->fn) p->fn(p->user, p->what, p->total, p->total, "");
}
