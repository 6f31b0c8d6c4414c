/* Audit reports (results, JSON, CSV) and the helpers every audit shares. */
#include "audit.h"
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- reports ---- */

sal_status au_report_new(const char *name, const sal_audit_opts *o, int nres, sal_audit **out) {
    *out = NULL;
    sal_audit *a = sal_calloc(1, sizeof *a);
    if (!a) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    snprintf(a->name, sizeof a->name, "%s", name);
    a->model = sal_strdup(o->model_name ? o->model_name : "");
    a->data = sal_strdup(o->data_name ? o->data_name : "");
    a->seed = o->seed;
    a->res = sal_calloc((size_t)(nres > 0 ? nres : 1), sizeof *a->res);
    a->nres = nres;
    if (!a->model || !a->data || !a->res) {
        sal_audit_free(a);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    *out = a;
    return SAL_OK;
}

void sal_audit_free(sal_audit *a) {
    if (!a) return;
    for (int i = 0; i < a->nres && a->res; i++) {
        au_result *r = &a->res[i];
        sal_free(r->label);
        sal_free(r->method);
        sal_free(r->verdict);
        sal_sb_free(&r->params);
        sal_sb_free(&r->extra);
    }
    sal_free(a->res);
    sal_free(a->model);
    sal_free(a->data);
    sal_sb_free(&a->top);
    sal_sb_free(&a->curves);
    sal_free(a);
}

sal_status au_result_init(au_result *r, const sal_audit_method *m) {
    sal_sbuf lab = {0};
    sal_sb_printf(&lab, "%s", m->name);
    sal_sb_printf(&r->params, "{");
    for (int k = 0; k < m->nparams; k++) {
        const char *p = m->params[k], *eq = strchr(p, '=');
        sal_sb_printf(&lab, "%s%s", k ? "," : "(", p);
        sal_sb_printf(&r->params, "%s", k ? ", " : "");
        if (!eq) {
            sal_sb_str(&r->params, p);
            sal_sb_printf(&r->params, ": \"\"");
            continue;
        }
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - p), p);
        sal_sb_str(&r->params, key);
        sal_sb_printf(&r->params, ": ");
        sal_sb_str(&r->params, eq + 1);
    }
    sal_sb_printf(&lab, "%s", m->nparams ? ")" : "");
    sal_sb_printf(&r->params, "}");
    r->label = lab.s;
    r->method = sal_strdup(m->name);
    if (lab.oom || r->params.oom || !r->label || !r->method) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    return SAL_OK;
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

void au_verdict(au_result *r, bool violation, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sal_free(r->verdict);
    r->verdict = sal_strdup(buf);
    r->violation = violation;
}

void au_skip(au_result *r, const char *why) {
    r->skipped = true;
    r->violation = false;
    r->nmetric = 0;
    sal_sb_free(&r->extra);
    au_verdict(r, false, "skipped: %s", why && *why ? why : "failed");
}

int sal_audit_count(const sal_audit *a) { return a->nres; }
const char *sal_audit_label(const sal_audit *a, int i) { return i >= 0 && i < a->nres ? a->res[i].label : NULL; }
const char *sal_audit_verdict(const sal_audit *a, int i) {
    return i >= 0 && i < a->nres && a->res[i].verdict ? a->res[i].verdict : "";
}
int sal_audit_skipped(const sal_audit *a, int i) { return i >= 0 && i < a->nres && a->res[i].skipped; }

double sal_audit_metric(const sal_audit *a, int i, const char *name) {
    if (i < 0 || i >= a->nres) return NAN;
    const au_result *r = &a->res[i];
    for (int k = 0; k < r->nmetric; k++)
        if (!strcmp(r->mkey[k], name)) return r->mval[k];
    return NAN;
}

int sal_audit_violations(const sal_audit *a) {
    int n = 0;
    for (int i = 0; i < a->nres; i++) n += a->res[i].violation && !a->res[i].skipped;
    return n;
}

static sal_status finish(sal_sbuf *b, char **out, const char *what) {
    if (b->oom) {
        sal_sb_free(b);
        return sal_fail(SAL_ERR_NOMEM, "out of memory writing the %s report", what);
    }
    size_t n = b->len + 1;
    *out = malloc(n); /* the caller frees with free(), not through our allocator */
    if (!*out) {
        sal_sb_free(b);
        return sal_fail(SAL_ERR_NOMEM, "out of memory writing the %s report", what);
    }
    memcpy(*out, b->s ? b->s : "", n);
    sal_sb_free(b);
    return SAL_OK;
}

sal_status sal_audit_json(const sal_audit *a, char **json) {
    *json = NULL;
    sal_sbuf b = {0};
    sal_sb_printf(&b, "{\n  \"audit\": ");
    sal_sb_str(&b, a->name);
    sal_sb_printf(&b, ",\n  \"version\": \"%s\",\n  \"model\": ", SAL_VERSION);
    sal_sb_str(&b, a->model);
    sal_sb_printf(&b, ",\n  \"data\": ");
    sal_sb_str(&b, a->data);
    sal_sb_printf(&b, ",\n  \"seed\": %llu,\n  \"tolerance\": ", (unsigned long long)a->seed);
    sal_sb_num(&b, a->tol);
    if (a->top.s) sal_sb_printf(&b, "%s", a->top.s);
    sal_sb_printf(&b, ",\n  \"violations\": %d,\n  \"results\": [", sal_audit_violations(a));
    for (int i = 0; i < a->nres; i++) {
        const au_result *r = &a->res[i];
        sal_sb_printf(&b, "%s\n    {\n      \"method\": ", i ? "," : "");
        sal_sb_str(&b, r->method ? r->method : "");
        sal_sb_printf(&b, ",\n      \"label\": ");
        sal_sb_str(&b, r->label ? r->label : "");
        sal_sb_printf(&b, ",\n      \"params\": %s", r->params.s ? r->params.s : "{}");
        sal_sb_printf(&b, ",\n      \"skipped\": %s", r->skipped ? "true" : "false");
        for (int k = 0; k < r->nmetric; k++) {
            sal_sb_printf(&b, ",\n      ");
            sal_sb_str(&b, r->mkey[k]);
            sal_sb_printf(&b, ": ");
            if (r->mbool[k]) sal_sb_printf(&b, "%s", r->mval[k] != 0 ? "true" : "false");
            else sal_sb_num(&b, r->mval[k]);
        }
        if (r->extra.s) sal_sb_printf(&b, "%s", r->extra.s);
        sal_sb_printf(&b, ",\n      \"verdict\": ");
        sal_sb_str(&b, r->verdict ? r->verdict : "");
        sal_sb_printf(&b, "\n    }");
    }
    sal_sb_printf(&b, "\n  ]\n}\n");
    return finish(&b, json, "JSON");
}

sal_status sal_audit_csv(const sal_audit *a, char **csv) {
    *csv = NULL;
    sal_sbuf b = {0};
    if (a->curves.s) {
        sal_sb_printf(&b, "%s", a->curves.s);
        return finish(&b, csv, "CSV");
    }
    /* one row per result; the columns are the metrics of the first result that ran */
    const au_result *first = NULL;
    for (int i = 0; i < a->nres && !first; i++)
        if (!a->res[i].skipped) first = &a->res[i];
    sal_sb_printf(&b, "method,label");
    for (int k = 0; first && k < first->nmetric; k++) sal_sb_printf(&b, ",%s", first->mkey[k]);
    sal_sb_printf(&b, ",verdict\n");
    for (int i = 0; i < a->nres; i++) {
        const au_result *r = &a->res[i];
        sal_sb_csv(&b, r->method ? r->method : "");
        sal_sb_printf(&b, ",");
        sal_sb_csv(&b, r->label ? r->label : "");
        for (int k = 0; first && k < first->nmetric; k++) {
            double v = sal_audit_metric(a, i, first->mkey[k]);
            sal_sb_printf(&b, ",");
            if (r->skipped || !isfinite(v)) continue;
            if (first->mbool[k]) sal_sb_printf(&b, "%s", v != 0 ? "true" : "false");
            else sal_sb_printf(&b, "%.9g", v);
        }
        sal_sb_printf(&b, ",");
        sal_sb_csv(&b, r->verdict ? r->verdict : "");
        sal_sb_printf(&b, "\n");
    }
    return finish(&b, csv, "CSV");
}

/* ---- methods ---- */

sal_status au_methods(const sal_audit_opts *o, sal_audit_method **list, int *n) {
    int count = o->nmethods > 0 ? o->nmethods : sal_method_count();
    *n = 0;
    *list = sal_calloc((size_t)(count > 0 ? count : 1), sizeof **list);
    if (!*list) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < count; i++) {
        if (o->nmethods > 0) {
            const sal_audit_method *m = &o->methods[i];
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
    if (pc->file[0]) remove(pc->file);
    if (pc->dir[0]) rmdir(pc->dir);
    memset(pc, 0, sizeof *pc);
}

/* Whether method `name` takes a patterns file and the user gave none. */
static bool wants_patterns(const sal_audit_method *m) {
    int idx = -1;
    for (int i = 0; i < sal_method_count() && idx < 0; i++)
        if (!strcmp(sal_method_name(i), m->name)) idx = i;
    bool takes = false;
    for (int k = 0; idx >= 0 && k < sal_method_nparams(idx); k++) {
        const char *name, *def, *help;
        sal_method_param(idx, k, &name, &def, &help);
        takes |= !strcmp(name, "patterns") && !*def;
    }
    for (int k = 0; takes && k < m->nparams; k++)
        if (!strncmp(m->params[k], "patterns=", 9)) return false;
    return takes;
}

/* Patterns of model m from data into pc's temporary file, unless it holds m's already. */
static sal_status estimate_patterns(const sal_model *m, const sal_tensor *data, au_patcache *pc) {
    uint64_t h = sal_model_hash(m);
    if (pc->hash == h && pc->file[0]) return SAL_OK;
    if (!pc->dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(pc->dir, sizeof pc->dir, "%s/saliency-audit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(pc->dir)) {
            pc->dir[0] = '\0';
            return sal_fail(SAL_ERR_IO, "cannot create a temporary folder for the estimated patterns (set TMPDIR)");
        }
        snprintf(pc->file, sizeof pc->file, "%s/patterns.bin", pc->dir);
    }
    sal_patterns *p = NULL;
    sal_patterns_opts po = {0};
    sal_status st = sal_patterns_estimate(m, data, "the audit's reference data", &po, &p);
    if (st == SAL_OK) st = sal_patterns_save(p, pc->file);
    sal_patterns_free(p);
    if (st != SAL_OK) return sal_wrap(st, "estimating patterns");
    pc->hash = h;
    pc->used = true;
    return SAL_OK;
}

sal_status au_explain(const sal_model *m, const sal_tensor *x, const au_xopts *xo, sal_tensor *map,
                      int64_t *targets) {
    const char *params[256];
    char pat[700];
    int np = xo->meth->nparams;
    const char *const *pp = xo->meth->params;
    sal_explain_opts eo = {.method = xo->meth->name, .nparams = np, .params = pp,
                           .target = xo->target, .classes = xo->classes, .nclasses = xo->classes ? x->dim[0] : 0,
                           .prob = xo->prob, .data = xo->data, .data_lo = xo->lo, .data_hi = xo->hi,
                           .chunk = xo->chunk};
    sal_explanation *e = NULL;
    /* a method that asks for a patterns file (PatternNet, or Deep Taylor with root=pattern) gets
     * patterns estimated for this model, and runs again */
    sal_status st = sal_explain(m, x, &eo, &e);
    if (st == SAL_ERR_ARG && strstr(sal_last_error(), "patterns") && xo->pc && xo->pdata && np < 255 &&
        wants_patterns(xo->meth)) {
        SAL_TRY(estimate_patterns(m, xo->pdata, xo->pc));
        for (int k = 0; k < np; k++) params[k] = pp[k];
        snprintf(pat, sizeof pat, "patterns=%s", xo->pc->file);
        params[np++] = pat;
        eo.params = params;
        eo.nparams = np;
        st = sal_explain(m, x, &eo, &e);
    }
    if (st != SAL_OK) return st;
    st = sal_tensor_copy(map, sal_explanation_map(e));
    if (st == SAL_OK && targets) memcpy(targets, sal_explanation_targets(e), (size_t)x->dim[0] * sizeof *targets);
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

void au_similarity(const float *a, const float *b, int64_t C, int64_t H, int64_t W, float *work, au_sim *s) {
    int64_t n = C * H * W, HW = H * W;
    s->spearman = sal_spearman(a, b, n);
    float *fa = work, *fb = work + n;
    for (int64_t i = 0; i < n; i++) fa[i] = fabsf(a[i]), fb[i] = fabsf(b[i]);
    s->spearman_abs = sal_spearman(fa, fb, n);
    /* SSIM and HOG of the |map| planes in [0, 1], as Adebayo et al. compare them */
    float *pa = work + 2 * n, *pb = pa + HW;
    au_plane(a, C, HW, true, pa);
    au_plane(b, C, HW, true, pb);
    unit_scale(pa, HW);
    unit_scale(pb, HW);
    if (sal_ssim(pa, pb, (int)H, (int)W, 1.0, &s->ssim) != SAL_OK) s->ssim = NAN;
    int64_t nh = 0;
    s->hog_pearson = s->hog_spearman = NAN;
    float *ha = work + 4 * n, *hb;
    if (sal_hog(pa, (int)H, (int)W, NULL, ha, &nh) == SAL_OK) {
        hb = ha + nh;
        if (sal_hog(pb, (int)H, (int)W, NULL, hb, &nh) == SAL_OK) {
            s->hog_pearson = sal_pearson(ha, hb, nh);
            s->hog_spearman = sal_spearman(ha, hb, nh);
        }
    }
}

/* ---- progress ---- */

void au_progress_start(au_progress *p, bool want, const char *what, int64_t total) {
    memset(p, 0, sizeof *p);
    p->on = want && isatty(2);
    p->what = what;
    p->total = total > 0 ? total : 1;
}

void au_progress_step(au_progress *p, int64_t n, const char *label) {
    p->done += n;
    if (!p->on) return;
    double now = sal_now();
    if (now - p->last < 0.1 && p->done < p->total) return;
    p->last = now;
    int w = 30, fill = (int)(w * (p->done > p->total ? p->total : p->done) / p->total);
    fprintf(stderr, "\r%s [%.*s%*s] %3d%% %-40.40s", p->what, fill, "==============================", w - fill, "",
            (int)(100 * p->done / p->total), label ? label : "");
}

void au_progress_end(au_progress *p) {
    if (p->on) fprintf(stderr, "\r%*s\r", 100, "");
}
