/* Evaluation metrics: the table, the per-sample driver (explain a slice of samples, score each),
 * aggregation over the samples, JSON and CSV, and the helpers every family uses. */
#include "metric.h"
#include <stdlib.h>

/* ---- the table ---- */

static const struct {
    const mt_metric *t;
    const int *n;
} k_families[] = {{mt_faithfulness, &mt_nfaithfulness}, {mt_robustness, &mt_nrobustness},
                  {mt_localization, &mt_nlocalization}, {mt_complexity, &mt_ncomplexity},
                  {mt_randomization, &mt_nrandomization}, {mt_axiomatic, &mt_naxiomatic}};
#define NFAM (int)(sizeof k_families / sizeof k_families[0])

static const mt_metric *metric_at(int i) {
    for (int f = 0; f < NFAM && i >= 0; f++) {
        if (i < *k_families[f].n) return &k_families[f].t[i];
        i -= *k_families[f].n;
    }
    return NULL;
}

int sal_metric_count(void) {
    int n = 0;
    for (int f = 0; f < NFAM; f++) n += *k_families[f].n;
    return n;
}
const char *sal_metric_name(int i) { return metric_at(i) ? metric_at(i)->name : NULL; }
const char *sal_metric_family(int i) { return metric_at(i) ? metric_at(i)->family : NULL; }
const char *sal_metric_summary(int i) { return metric_at(i) ? metric_at(i)->summary : NULL; }
int sal_metric_better(int i) { return metric_at(i) ? metric_at(i)->better : 0; }

int sal_metric_nparams(int i) {
    const mt_metric *t = metric_at(i);
    int n = 0;
    while (t && n < MT_MAX_PARAMS && t->param[n][0]) n++;
    return n;
}

void sal_metric_param(int i, int k, const char **name, const char **def, const char **help) {
    bool ok = k >= 0 && k < sal_metric_nparams(i);
    const mt_metric *t = metric_at(i);
    *name = ok ? t->param[k][0] : NULL, *def = ok ? t->param[k][1] : NULL, *help = ok ? t->param[k][2] : NULL;
}

/* ---- results ---- */

typedef struct {
    char *label, *method, *skipped;
    int nparams;
    char **params;
    double *v, *curve;       /* (N), (npoint): the mean curve */
    double mean, sd, median, hit;
    int64_t defined;
    bool patterns;
} mt_res;

struct sal_metric_result {
    const mt_metric *mt;
    char *model, *data;
    uint64_t seed;
    int64_t N;
    bool prob;
    char *param[MT_MAX_PARAMS];
    int npoint, nres;
    mt_res *res;
};

void sal_metric_result_free(sal_metric_result *r) {
    if (!r) return;
    for (int i = 0; r->res && i < r->nres; i++) {
        mt_res *q = &r->res[i];
        sal_free(q->label), sal_free(q->method), sal_free(q->skipped), sal_free(q->v), sal_free(q->curve);
        for (int k = 0; k < q->nparams; k++) sal_free(q->params[k]);
        sal_free(q->params);
    }
    for (int k = 0; k < MT_MAX_PARAMS; k++) sal_free(r->param[k]);
    sal_free(r->res), sal_free(r->model), sal_free(r->data), sal_free(r);
}

int sal_metric_result_count(const sal_metric_result *r) { return r ? r->nres : 0; }
const char *sal_metric_result_label(const sal_metric_result *r, int i) {
    return r && i >= 0 && i < r->nres ? r->res[i].label : NULL;
}
const char *sal_metric_result_skipped(const sal_metric_result *r, int i) {
    return r && i >= 0 && i < r->nres ? r->res[i].skipped : NULL;
}
double sal_metric_result_mean(const sal_metric_result *r, int i) {
    return r && i >= 0 && i < r->nres ? r->res[i].mean : NAN;
}
double sal_metric_result_sample(const sal_metric_result *r, int i, int64_t s) {
    if (!r || i < 0 || i >= r->nres || s < 0 || s >= r->N || !r->res[i].v) return NAN;
    return r->res[i].v[s];
}

static int by_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Mean, standard deviation (n - 1), median and hit rate of the finite values. */
static sal_status aggregate(const mt_metric *mt, int64_t N, mt_res *q) {
    double *f = sal_malloc((size_t)(N > 0 ? N : 1) * sizeof *f), s = 0, ss = 0, hits = 0;
    if (!f) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    int64_t n = 0;
    for (int64_t i = 0; i < N; i++)
        if (isfinite(q->v[i])) f[n++] = q->v[i], s += q->v[i], hits += q->v[i] >= mt->hit;
    q->defined = n;
    q->mean = n ? s / (double)n : NAN;
    for (int64_t i = 0; i < n; i++) ss += (f[i] - q->mean) * (f[i] - q->mean);
    q->sd = n > 1 ? sqrt(ss / (double)(n - 1)) : NAN;
    qsort(f, (size_t)n, sizeof *f, by_double);
    q->median = !n ? NAN : n % 2 ? f[n / 2] : (f[n / 2 - 1] + f[n / 2]) / 2;
    q->hit = mt->hit > 0 && n ? hits / (double)n : NAN;
    sal_free(f);
    return SAL_OK;
}

/* ---- helpers ---- */

sal_status mt_rows(mt_ctx *c, int64_t rows, float **out) {
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, c->x->dim, sizeof dim);
    dim[0] = rows;
    SAL_TRY(sal_tensor_alloc(&c->batch, SAL_F32, c->x->ndim, dim));
    *out = sal_f32(&c->batch);
    return SAL_OK;
}

/* Room for rows scores (and logits, representations of nrep values). */
static sal_status reserve(mt_ctx *c, int64_t rows, int64_t nrep) {
    if (rows <= c->cap && nrep <= c->nrep) return SAL_OK;
    int64_t cap = rows > c->cap ? rows : c->cap, nr = nrep > c->nrep ? nrep : c->nrep;
    float *s = sal_realloc(c->scores, (size_t)cap * sizeof *s), *l = NULL, *r = NULL;
    if (s) c->scores = s;
    int8_t *t = s ? sal_realloc(c->top, (size_t)cap) : NULL;
    if (t) c->top = t;
    if (t) l = sal_realloc(c->logits, (size_t)(cap * c->K) * sizeof *l);
    if (l) c->logits = l;
    if (l) r = sal_realloc(c->rep, (size_t)(cap * (nr > 0 ? nr : 1)) * sizeof *r);
    if (r) c->rep = r;
    if (!r) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    c->cap = cap, c->nrep = nr;
    return SAL_OK;
}

sal_status mt_forward(mt_ctx *c, int64_t rows, mt_make_fn make, void *u, int64_t t, bool prob, bool logits,
                      const char *rep) {
    SAL_TRY(reserve(c, rows, 0));
    bool soft = prob && sal_model_output_kind(c->m) != SAL_OUTPUT_SOFTMAX && sal_model_output_kind(c->m) != SAL_OUTPUT_SIGMOID;
    for (int64_t r0 = 0; r0 < rows; r0 += c->chunk) {
        int64_t n = rows - r0 < c->chunk ? rows - r0 : c->chunk;
        if (make) {
            float *b;
            SAL_TRY(mt_rows(c, n, &b));
            for (int64_t k = 0; k < n; k++) make(c, r0 + k, b + k * c->row, u);
        }
        sal_tensor v = au_rows(&c->batch, make ? 0 : r0, n);
        const sal_tensor *outs[8] = {0};
        SAL_TRY(sal_forward(c->s, 1, &v, outs));
        const sal_tensor *z = outs[0];
        if (z->ndim != 2 || z->dim[1] != c->K)
            return sal_fail(SAL_ERR_SHAPE, "metrics need (batch, classes) outputs from %s", c->m->path);
        for (int64_t i = 0; i < n; i++) {
            const float *zi = sal_f32(z) + i * c->K;
            int64_t b = 0;
            double mx = zi[0], sum = 0;
            for (int64_t k = 1; k < c->K; k++) {
                if (zi[k] > zi[b]) b = k;
                mx = fmax(mx, zi[k]);
            }
            if (soft)
                for (int64_t k = 0; k < c->K; k++) sum += exp(zi[k] - mx);
            c->scores[r0 + i] = soft ? (float)(exp(zi[t] - mx) / sum) : zi[t];
            c->top[r0 + i] = b == t;
        }
        if (logits) memcpy(c->logits + r0 * c->K, sal_f32(z), (size_t)(n * c->K) * sizeof(float));
        if (rep) {
            const sal_tensor *h = sal_session_value(c->s, rep);
            if (!h || h->dtype != SAL_F32 || h->ndim < 1 || h->dim[0] != n)
                return sal_fail(SAL_ERR_ARG, "%s: no float value '%s' with a batch axis (the layer parameter)", c->m->path, rep);
            int64_t per = sal_tensor_numel(h) / n;
            SAL_TRY(reserve(c, rows, per));
            c->nrep = per;
            memcpy(c->rep + r0 * per, h->data, (size_t)(n * per) * sizeof(float));
        }
    }
    return SAL_OK;
}

static au_xopts xopts(mt_ctx *c, const int64_t *cls) {
    const sal_tensor *data = c->o->common.data;
    return (au_xopts){.meth = c->meth, .target = SAL_TARGET_INDEX, .classes = cls, .data = data, .lo = c->lo,
                      .hi = c->hi, .chunk = c->o->common.chunk, .prob = c->o->common.prob, .pc = &c->pc,
                      .pdata = data ? data : c->x};
}

sal_status mt_explain(mt_ctx *c, const sal_model *m, au_patcache *pc, const sal_tensor *x, const int64_t *cls,
                      sal_tensor *out) {
    au_xopts xo = xopts(c, cls);
    xo.pc = pc;
    return au_explain(m, x, &xo, out, NULL);
}

sal_status mt_explain_rows(mt_ctx *c, int64_t rows, int64_t t) {
    int64_t *cls = sal_malloc((size_t)rows * sizeof *cls);
    if (!cls) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t r = 0; r < rows; r++) cls[r] = t;
    sal_tensor v = au_rows(&c->batch, 0, rows);
    sal_status st = mt_explain(c, c->m, &c->pc, &v, cls, &c->A2);
    sal_free(cls);
    return st;
}

void mt_rng(const mt_ctx *c, int64_t i, sal_rng *g) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the metric's name: each metric its own streams */
    for (const char *s = c->mt->name; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    sal_rng_seed(g, (c->o->common.seed * 0x9e3779b97f4a7c15ull) ^ h ^ ((uint64_t)i * 0xd1b54a32d192ed03ull));
}

void mt_rng_row(const mt_ctx *c, int64_t i, int64_t r, sal_rng *g) {
    sal_rng s;
    mt_rng(c, i, &s);
    sal_rng_seed(g, sal_rng_u64(&s) ^ ((uint64_t)(r + 1) * 0x9e3779b97f4a7c15ull));
}

void mt_plane(const mt_ctx *c, const float *a, bool abs, double *plane) {
    for (int64_t p = 0; p < c->HW; p++) {
        double s = 0;
        for (int64_t ch = 0; ch < c->C; ch++) s += abs ? fabs((double)a[ch * c->HW + p]) : (double)a[ch * c->HW + p];
        plane[p] = s;
    }
}

typedef struct {
    double v;
    int64_t i;
} keyed;

static int by_desc(const void *a, const void *b) {
    const keyed *p = a, *q = b;
    if (p->v != q->v) return p->v > q->v ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

sal_status mt_order(const double *v, int64_t n, int64_t *order) {
    keyed *k = sal_malloc((size_t)(n > 0 ? n : 1) * sizeof *k);
    if (!k) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) k[i] = (keyed){v[i], i};
    qsort(k, (size_t)n, sizeof *k, by_desc);
    for (int64_t i = 0; i < n; i++) order[i] = k[i].i;
    sal_free(k);
    return SAL_OK;
}

double mt_pearson(const double *a, const double *b, int64_t n) {
    if (n < 2) return NAN;
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= (double)n, mb /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db, saa += da * da, sbb += db * db;
    }
    /* relative to the values' size: rounding must not make a constant look varied */
    double sa = fabs(ma) + 1e-300, sb = fabs(mb) + 1e-300;
    if (saa <= 1e-24 * sa * sa * (double)n || sbb <= 1e-24 * sb * sb * (double)n) return NAN;
    double r = sab / sqrt(saa * sbb);
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

static void ranks(const double *v, int64_t n, keyed *k, double *r) {
    for (int64_t i = 0; i < n; i++) k[i] = (keyed){v[i], i};
    qsort(k, (size_t)n, sizeof *k, by_desc);
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j + 1 < n && k[j + 1].v == k[i].v) j++;
        for (int64_t t = i; t <= j; t++) r[k[t].i] = (double)(i + j) / 2;
        i = j + 1;
    }
}

double mt_spearman(const double *a, const double *b, int64_t n) {
    keyed *k = sal_malloc((size_t)(n > 0 ? n : 1) * sizeof *k);
    double *ra = sal_malloc((size_t)(n > 0 ? n : 1) * sizeof *ra), *rb = sal_malloc((size_t)(n > 0 ? n : 1) * sizeof *rb);
    double r = NAN;
    if (k && ra && rb) {
        ranks(a, n, k, ra);
        ranks(b, n, k, rb);
        r = mt_pearson(ra, rb, n);
    }
    sal_free(k), sal_free(ra), sal_free(rb);
    return r;
}

int64_t mt_count(double p, int64_t dflt) {
    int64_t n = isfinite(p) && p > 0 ? (int64_t)llround(p < 1e6 ? p : 1e6) : dflt; /* steps, runs, ...: at most a million */
    return n > 0 ? n : 1;
}

/* ---- setup ---- */

static const mt_metric *lookup(const char *name) {
    for (int i = 0; i < sal_metric_count(); i++)
        if (name && !strcmp(metric_at(i)->name, name)) return metric_at(i);
    return NULL;
}

/* The metric's parameters: defaults, then "key=value" from o. */
static sal_status params(mt_ctx *c) {
    const mt_metric *mt = c->mt;
    int np = 0;
    while (np < MT_MAX_PARAMS && mt->param[np][0]) c->ps[np] = mt->param[np][1], np++;
    for (int k = 0; k < c->o->nparams; k++) {
        const char *kv = c->o->params[k], *eq = kv ? strchr(kv, '=') : NULL;
        int j = 0;
        while (eq && j < np && (strlen(mt->param[j][0]) != (size_t)(eq - kv) || strncmp(kv, mt->param[j][0], (size_t)(eq - kv))))
            j++;
        if (!eq || j == np) {
            sal_sbuf b = {0};
            for (int q = 0; q < np; q++) sal_sb_printf(&b, "%s%s", q ? ", " : "", mt->param[q][0]);
            sal_status st = sal_fail(SAL_ERR_ARG, "metric %s: '%s' is not KEY=VALUE with a key of its parameters (%s)",
                                     mt->name, kv ? kv : "", np ? (b.s ? b.s : "") : "none");
            sal_sb_free(&b);
            return st;
        }
        c->ps[j] = eq + 1;
    }
    for (int j = 0; j < np; j++) {
        char *end;
        double v = strtod(c->ps[j], &end);
        c->p[j] = end != c->ps[j] && !*end && isfinite(v) ? v : NAN;
        char *dend;
        const char *d = mt->param[j][1];
        bool numeric = *d && (strtod(d, &dend), !*dend); /* a parameter with a numeric default takes numbers */
        if (numeric && isnan(c->p[j]))
            return sal_fail(SAL_ERR_ARG, "metric %s: %s must be a number, not '%s'", mt->name, mt->param[j][0], c->ps[j]);
    }
    return SAL_OK;
}

/* Localization masks (N', H, W) or (N', 1, H, W), N' >= N, as 0/1 planes (N, HW). */
static sal_status load_masks(mt_ctx *c) {
    const sal_tensor *mk = c->o->masks;
    if (!mk) return sal_fail(SAL_ERR_ARG, "metric %s needs masks (N, H, W) of the objects (--masks)", c->mt->name);
    char b1[160], b2[160];
    bool shape = (mk->ndim == 3 || (mk->ndim == 4 && mk->dim[1] == 1)) && mk->dim[0] >= c->N &&
                 mk->dim[mk->ndim - 2] == c->H && mk->dim[mk->ndim - 1] == c->W;
    if (!shape)
        return sal_fail(SAL_ERR_SHAPE, "metric %s: masks %s do not fit the input %s: (N, H, W) or (N, 1, H, W) expected",
                        c->mt->name, sal_shape_str(mk->ndim, mk->dim, b1, sizeof b1), sal_shape_str(c->x->ndim, c->x->dim, b2, sizeof b2));
    if (!(c->mask = sal_malloc((size_t)(c->N * c->HW) * sizeof *c->mask))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < c->N * c->HW; i++)
        c->mask[i] = mk->dtype == SAL_F32 ? sal_f32(mk)[i] != 0 : mk->dtype == SAL_I64 ? ((int64_t *)mk->data)[i] != 0
                                                                                    : ((uint8_t *)mk->data)[i] != 0;
    return SAL_OK;
}

/* The forward chunk: o's, else as many rows as keep one pass's activations near 256 MiB (at most
 * 256), measured on a pass over the first samples. */
static void auto_chunk(mt_ctx *c) {
    if (c->o->common.chunk > 0) {
        c->chunk = c->o->common.chunk;
        return;
    }
    int64_t n = c->N < 8 ? c->N : 8;
    sal_tensor v = au_rows(c->x, 0, n);
    const sal_tensor *outs[8] = {0};
    c->chunk = 64;
    if (sal_forward(c->s, 1, &v, outs) != SAL_OK) return;
    double bytes = 0;
    for (int k = 0; k < c->m->nval; k++)
        if (c->m->val[k].kind != SAL_VAL_CONST && c->s->act[k].data)
            bytes += (double)sal_tensor_numel(&c->s->act[k]) * (double)sal_dtype_size(c->s->act[k].dtype);
    double k = bytes > 0 ? 256.0 * (1 << 20) / (bytes / (double)n) : 256;
    c->chunk = k >= 256 ? 256 : k < 1 ? 1 : (int64_t)k;
}

static sal_status setup(mt_ctx *c) {
    SAL_TRY(params(c));
    if (c->mt->masks) SAL_TRY(load_masks(c));
    c->npoint = c->mt->npoint ? c->mt->npoint(c) : 0;
    SAL_TRY(sal_session_new(c->m, &c->s));
    auto_chunk(c);
    sal_tensor y = {0};
    c->target = sal_malloc((size_t)c->N * sizeof *c->target);
    c->y0 = sal_malloc((size_t)c->N * sizeof *c->y0);
    sal_status st = c->target && c->y0 ? au_outputs(c->m, c->x, c->chunk, &y) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) {
        c->K = y.dim[1];
        au_argmax(&y, c->target);
        au_scores(&y, c->target, c->softmax, c->y0);
    }
    sal_tensor_free(&y);
    return st;
}

static void ctx_free(mt_ctx *c) {
    au_patcache_free(&c->pc);
    sal_session_free(c->s);
    sal_tensor_free(&c->batch), sal_tensor_free(&c->A2);
    sal_free(c->target), sal_free(c->y0), sal_free(c->mask), sal_free(c->scores), sal_free(c->top);
    sal_free(c->logits), sal_free(c->rep), sal_free(c->keep);
}

/* ---- the per-sample driver ---- */

/* Samples i0 .. i0 + n - 1: their maps by the method under test (into A), then the metric's value of
 * each into v (n) and its curve into cv (n * npoint). This is the whole per-sample computation: a
 * caller may hand any partition of the samples to it (another process's share, too) and gather v. */
static sal_status mt_samples(mt_ctx *c, int64_t i0, int64_t n, sal_tensor *A, double *v, double *cv, bool *est) {
    sal_tensor xb = au_rows(c->x, i0, n);
    au_xopts xo = xopts(c, c->target + i0);
    SAL_TRY(au_explain(c->m, &xb, &xo, A, est));
    for (int64_t q = 0; q < n; q++) v[q] = NAN;
    for (int64_t q = 0; q < n * c->npoint; q++) cv[q] = NAN;
    return c->mt->run(c, i0, n, sal_f32(A), v, cv);
}

static sal_status res_init(mt_res *q, const sal_audit_method *m, int64_t N, int npoint) {
    au_result tmp = {0};
    SAL_TRY(au_result_init(&tmp, m)); /* the label as the audits write it */
    q->label = tmp.label, q->method = tmp.method, q->params = tmp.params, q->nparams = tmp.nparams;
    sal_free(tmp.verdict);
    q->v = sal_malloc((size_t)(N > 0 ? N : 1) * sizeof *q->v);
    q->curve = npoint ? sal_calloc((size_t)npoint, sizeof *q->curve) : NULL;
    if (!q->v || (npoint && !q->curve)) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < N; i++) q->v[i] = NAN;
    q->mean = q->sd = q->median = q->hit = NAN;
    return SAL_OK;
}

/* One method: slices of B samples through mt_samples, then the aggregate; a method that cannot run
 * is marked skipped with the reason. */
static sal_status run_method(mt_ctx *c, mt_res *q, au_progress *pr) {
    int64_t B = c->B, np = c->npoint;
    sal_tensor A = {0};
    double *cv = sal_malloc((size_t)(B * (np ? np : 1)) * sizeof *cv);
    int64_t *cn = np ? sal_calloc((size_t)np, sizeof *cn) : NULL;
    sal_status st = cv && (!np || cn) ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t i0 = 0; i0 < c->N && st == SAL_OK; i0 += B) {
        int64_t n = c->N - i0 < B ? c->N - i0 : B;
        bool est = false;
        st = mt_samples(c, i0, n, &A, q->v + i0, cv, &est);
        q->patterns |= est;
        for (int64_t k = 0; st == SAL_OK && k < n * np; k++)
            if (isfinite(cv[k])) q->curve[k % np] += cv[k], cn[k % np]++;
        au_progress_step(pr, n, q->label);
    }
    if (st == SAL_OK && c->mt->finish) st = c->mt->finish(c, q->v);
    for (int64_t k = 0; k < np; k++) q->curve[k] = cn[k] ? q->curve[k] / (double)cn[k] : NAN;
    sal_tensor_free(&A);
    sal_free(cv), sal_free(cn);
    if (st == SAL_OK) return aggregate(c->mt, c->N, q);
    if (st == SAL_ERR_NOMEM) return st;
    const char *why = sal_last_error();
    sal_sbuf b = {0};
    sal_sb_printf(&b, "skipped: %s", *why ? why : "failed");
    q->skipped = b.s;
    for (int64_t i = 0; i < c->N; i++) q->v[i] = NAN;
    return b.oom ? sal_fail(SAL_ERR_NOMEM, "out of memory") : SAL_OK;
}

sal_status sal_metric_compute(const sal_model *m, const sal_tensor *x, const char *name, const sal_metric_opts *o,
                      sal_metric_result **out) {
    *out = NULL;
    const mt_metric *mt = lookup(name);
    if (!mt) return sal_fail(SAL_ERR_ARG, "unknown metric '%s' (saliency metric --list shows them)", name ? name : "");
    if (x->dtype != SAL_F32 || x->ndim < 2 || x->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "metric %s needs a float32 batch (N, ...)", mt->name);
    const sal_audit_common *co = &o->common;
    mt_ctx c = {.m = m, .x = x, .o = o, .mt = mt, .N = x->dim[0], .row = au_row(x),
                .B = co->batch > 0 ? co->batch : 16,
                .softmax = co->prob && sal_model_output_kind(m) != SAL_OUTPUT_SOFTMAX &&
                           sal_model_output_kind(m) != SAL_OUTPUT_SIGMOID};
    au_geom(x, &c.C, &c.H, &c.W);
    c.HW = c.H * c.W;
    au_range(co->data ? co->data : x, &c.lo, &c.hi);
    sal_audit_method *meths = NULL;
    int nm = 0;
    SAL_TRY(au_methods(co, &meths, &nm));
    sal_metric_result *r = sal_calloc(1, sizeof *r);
    sal_status st = r ? setup(&c) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) {
        r->mt = mt, r->seed = co->seed, r->N = c.N, r->prob = co->prob != 0, r->npoint = c.npoint, r->nres = nm;
        r->model = sal_strdup(co->model_name ? co->model_name : "");
        r->data = sal_strdup(co->data_name ? co->data_name : "");
        r->res = sal_calloc((size_t)(nm > 0 ? nm : 1), sizeof *r->res);
        bool ok = r->model && r->data && r->res;
        for (int k = 0; ok && k < MT_MAX_PARAMS && mt->param[k][0]; k++) ok = (r->param[k] = sal_strdup(c.ps[k])) != NULL;
        if (!ok) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    au_progress pr;
    au_progress_start(&pr, co, mt->name, (int64_t)nm * c.N);
    for (int j = 0; j < nm && st == SAL_OK; j++) {
        c.meth = &meths[j];
        if ((st = res_init(&r->res[j], &meths[j], c.N, c.npoint)) == SAL_OK) st = run_method(&c, &r->res[j], &pr);
    }
    au_progress_end(&pr);
    ctx_free(&c);
    sal_free(meths);
    if (st != SAL_OK) {
        sal_metric_result_free(r);
        return st;
    }
    *out = r;
    return SAL_OK;
}

/* ---- writing ---- */

static sal_status finish(sal_sbuf *b, char **out) {
    *out = NULL;
    if (!b->oom) *out = malloc(b->len + 1); /* the caller frees with free() */
    if (*out) memcpy(*out, b->s ? b->s : "", b->len + 1);
    sal_sb_free(b);
    return *out ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory writing the metric's report");
}

static void nums(sal_sbuf *b, const double *v, int64_t n) {
    sal_sb_printf(b, "[");
    for (int64_t k = 0; k < n; k++) {
        sal_sb_printf(b, "%s", k ? ", " : "");
        sal_sb_num(b, v[k]);
    }
    sal_sb_printf(b, "]");
}

sal_status sal_metric_json(const sal_metric_result *r, char **json) {
    const mt_metric *mt = r->mt;
    sal_sbuf b = {0};
    sal_sb_printf(&b, "{\n  \"metric\": ");
    sal_sb_str(&b, mt->name);
    sal_sb_printf(&b, ",\n  \"family\": \"%s\",\n  \"summary\": ", mt->family);
    sal_sb_str(&b, mt->summary);
    sal_sb_printf(&b, ",\n  \"better\": \"%s\",\n  \"model\": ", mt->better > 0 ? "higher" : mt->better < 0 ? "lower" : "neither");
    sal_sb_str(&b, r->model);
    sal_sb_printf(&b, ",\n  \"data\": ");
    sal_sb_str(&b, r->data);
    sal_sb_printf(&b, ",\n  \"seed\": %llu,\n  \"samples\": %lld,\n  \"output\": \"%s\",\n  \"params\": {",
                  (unsigned long long)r->seed, (long long)r->N, r->prob ? "probability" : "logit");
    for (int k = 0; k < MT_MAX_PARAMS && mt->param[k][0]; k++) {
        sal_sb_printf(&b, "%s", k ? ", " : "");
        sal_sb_str(&b, mt->param[k][0]);
        sal_sb_printf(&b, ": ");
        sal_sb_str(&b, r->param[k]);
    }
    sal_sb_printf(&b, "}");
    if (r->npoint) {
        sal_sb_printf(&b, ",\n  \"curve_x\": ");
        sal_sb_str(&b, mt->curve_x);
    }
    sal_sb_printf(&b, ",\n  \"results\": [");
    for (int i = 0; i < r->nres; i++) {
        const mt_res *q = &r->res[i];
        sal_sb_printf(&b, "%s\n    {\"label\": ", i ? "," : "");
        sal_sb_str(&b, q->label);
        sal_sb_printf(&b, ", \"method\": ");
        sal_sb_str(&b, q->method);
        sal_sb_printf(&b, ", \"params\": {");
        for (int k = 0; k < q->nparams; k++) {
            const char *eq = strchr(q->params[k], '=');
            size_t kl = eq ? (size_t)(eq - q->params[k]) : strlen(q->params[k]);
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)(kl < sizeof key ? kl : sizeof key - 1), q->params[k]);
            sal_sb_printf(&b, "%s", k ? ", " : "");
            sal_sb_str(&b, key);
            sal_sb_printf(&b, ": ");
            sal_sb_str(&b, eq ? eq + 1 : "");
        }
        sal_sb_printf(&b, "}");
        if (q->skipped) {
            sal_sb_printf(&b, ", \"skipped\": ");
            sal_sb_str(&b, q->skipped);
            sal_sb_printf(&b, "}");
            continue;
        }
        if (q->patterns) sal_sb_printf(&b, ", \"patterns\": \"estimated from the reference data\"");
        const char *key[] = {"mean", "sd", "median"};
        const double val[] = {q->mean, q->sd, q->median};
        for (int k = 0; k < 3; k++) {
            sal_sb_printf(&b, ", \"%s\": ", key[k]);
            sal_sb_num(&b, val[k]);
        }
        sal_sb_printf(&b, ", \"defined\": %lld", (long long)q->defined);
        if (mt->hit > 0) {
            sal_sb_printf(&b, ", \"hit_rate\": ");
            sal_sb_num(&b, q->hit);
        }
        if (r->npoint) {
            sal_sb_printf(&b, ",\n     \"curve\": ");
            nums(&b, q->curve, r->npoint);
        }
        sal_sb_printf(&b, ",\n     \"per_sample\": ");
        nums(&b, q->v, r->N);
        sal_sb_printf(&b, "}");
    }
    sal_sb_printf(&b, "\n  ]\n}\n");
    return finish(&b, json);
}

sal_status sal_metric_csv(const sal_metric_result *r, char **csv) {
    sal_sbuf b = {0};
    sal_sb_printf(&b, "metric,label,sample,value\n");
    for (int i = 0; i < r->nres; i++)
        for (int64_t s = 0; s < r->N && !r->res[i].skipped; s++) {
            sal_sb_printf(&b, "%s,", r->mt->name);
            sal_sb_csv(&b, r->res[i].label);
            sal_sb_printf(&b, ",%lld,", (long long)s);
            if (isfinite(r->res[i].v[s])) sal_sb_printf(&b, "%.9g", r->res[i].v[s]);
            sal_sb_printf(&b, "\n");
        }
    return finish(&b, csv);
}
