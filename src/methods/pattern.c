/* PatternNet and PatternAttribution (Kindermans et al. 2018, "Learning how to explain neural
 * networks: PatternNet and PatternAttribution"), their pattern estimation and the patterns file.
 *
 * A linear unit y = w^T x sees signal and distractor alike; its weights w cancel the distractor
 * rather than point at the signal. The pattern a, with w^T a = 1, is the direction the signal
 * takes in x: for a linear model a = cov[x, y] / (w^T cov[x, y]). The ReLU ("two-component")
 * pattern uses only the samples that pass the ReLU (y > 0):
 *     a = (E+[x y] - E+[x] E+[y]) / w^T (E+[x y] - E+[x] E+[y]).
 * (Kindermans et al. 2019, "The (un)reliability of saliency methods", print E[y] in the second
 * term; we follow the PatternNet paper's E+[y], which is what makes a the covariance direction
 * within the positive regime.)
 *   patternnet           the backward pass with the patterns in place of the weights, gated by the
 *                        forward ReLU states: the signal estimate of the explained unit;
 *   pattern_attribution  the backward pass with w * a (elementwise) in place of the weights: Deep
 *                        Taylor with the root point x0 = x - a w^T x, input invariant.
 * Both start from the explained output value, like LRP, so PatternAttribution sums to it on a
 * linear model (w^T a = 1). */
#include "io/io.h"
#include "lrp.h"
#include "relu_rules.h"
#include <errno.h>
#include <math.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "patterns files are written little-endian as the host stores numbers: port the byte order first"
#endif

/* ---- the patterns object ---- */

typedef struct {
    char *name, *op;
    sal_tensor a[2]; /* linear, relu */
    int64_t degen[2];
} pat_node;

struct sal_patterns {
    uint64_t hash;
    char *source;
    int64_t samples;
    int n;
    pat_node *node;
};

void sal_patterns_free(sal_patterns *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        sal_free(p->node[i].name);
        sal_free(p->node[i].op);
        sal_tensor_free(&p->node[i].a[0]);
        sal_tensor_free(&p->node[i].a[1]);
    }
    sal_free(p->node);
    sal_free(p->source);
    sal_free(p);
}

uint64_t sal_patterns_model_hash(const sal_patterns *p) { return p->hash; }
const char *sal_patterns_source(const sal_patterns *p) { return p->source; }
int64_t sal_patterns_samples(const sal_patterns *p) { return p->samples; }
int sal_patterns_count(const sal_patterns *p) { return p->n; }
const char *sal_patterns_node(const sal_patterns *p, int i) { return i >= 0 && i < p->n ? p->node[i].name : NULL; }
const sal_tensor *sal_patterns_tensor(const sal_patterns *p, int i, int relu) {
    return i >= 0 && i < p->n ? &p->node[i].a[relu ? 1 : 0] : NULL;
}
int64_t sal_patterns_degenerate(const sal_patterns *p, int i, int relu) {
    return i >= 0 && i < p->n ? p->node[i].degen[relu ? 1 : 0] : -1;
}

/* ---- estimation ---- */

/* The value a linear node's units are: its output, or, when that output feeds nothing but an Add of
 * a constant, the Add's output. The invariance audit's f2 adds its shift correction that way after
 * a padded first convolution (a bias that varies with position, graph/rewrite.c), and the units
 * are what the ReLU after it gates: both the pattern's regime (y > 0) and its kind (relu_follows)
 * must be read there, or f2's first layer gets other patterns than f1's. */
static int unit_value(const sal_model *m, const sal_node *n) {
    int v = n->out[0], reader = -1, readers = 0;
    for (int i = 0; i < m->noutput; i++)
        if (m->output[i] == v) return v;
    for (int i = 0; i < m->nnode; i++)
        for (int k = 0; k < m->node[i].nin; k++)
            if (m->node[i].in[k] == v) reader = i, readers++;
    if (readers != 1 || !sal_node_is(&m->node[reader], SAL_OP_Add) || m->node[reader].nin != 2) return v;
    const sal_node *a = &m->node[reader];
    int other = a->in[0] == v ? a->in[1] : a->in[0];
    return other >= 0 && m->val[other].kind == SAL_VAL_CONST && a->out[0] >= 0 ? a->out[0] : v;
}

/* Sums for one linear node. Element e of W belongs to unit k at position j within the unit. */
typedef struct {
    int node;
    sal_lin_roles r;
    int64_t units, per, numel;
    double *sxy, *sxp, *sxyp; /* per weight: sum x y, sum+ x, sum+ x y */
    double *sx;               /* per position: sum x (the same for every unit) */
    double *n, *sy, *np, *syp; /* per unit: count, sum y, count+, sum+ y */
} acc;

static inline int64_t elem_of(const acc *a, int64_t k, int64_t j) {
    return a->r.w_unit_axis == 0 ? k * a->per + j : j * a->units + k;
}

static void acc_free(acc *a) {
    sal_free(a->sxy);
    sal_free(a->sxp);
    sal_free(a->sxyp);
    sal_free(a->sx);
    sal_free(a->n);
    sal_free(a->sy);
    sal_free(a->np);
    sal_free(a->syp);
}

static sal_status acc_init(const sal_model *m, int i, acc *a) {
    const sal_node *n = &m->node[i];
    memset(a, 0, sizeof *a);
    a->node = i;
    SAL_TRY(sal_lin_roles_of(m, n, &a->r));
    if (a->r.w_unit_axis < 0)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "patterns need the data operand first and a 2-D (or Conv) weight "
                             "second, so that output units are the weight's rows or columns");
    const sal_tensor *W = &m->val[n->in[a->r.w]].t;
    a->numel = sal_tensor_numel(W);
    a->units = W->dim[a->r.w_unit_axis];
    a->per = a->units ? a->numel / a->units : 0;
    size_t bytes = sizeof(double) * ((size_t)a->numel * 3 + (size_t)a->per + 4 * (size_t)a->units);
    char what[300];
    snprintf(what, sizeof what, "the pattern sums of node '%s' (%lld weights)", n->name, (long long)a->numel);
    SAL_TRY(sal_budget_check(bytes, what));
    a->sxy = sal_calloc((size_t)a->numel + 1, sizeof(double));
    a->sxp = sal_calloc((size_t)a->numel + 1, sizeof(double));
    a->sxyp = sal_calloc((size_t)a->numel + 1, sizeof(double));
    a->sx = sal_calloc((size_t)a->per + 1, sizeof(double));
    a->n = sal_calloc((size_t)a->units + 1, sizeof(double));
    a->sy = sal_calloc((size_t)a->units + 1, sizeof(double));
    a->np = sal_calloc((size_t)a->units + 1, sizeof(double));
    a->syp = sal_calloc((size_t)a->units + 1, sizeof(double));
    if (!a->sxy || !a->sxp || !a->sxyp || !a->sx || !a->n || !a->sy || !a->np || !a->syp)
        return sal_fail(SAL_ERR_NOMEM, "out of memory for %s", what);
    return SAL_OK;
}

/* Scratch of one estimation: three output-shaped tensors and one weight-shaped. */
typedef struct {
    sal_tensor ym, mask, ones, dw;
} est_scratch;

/* Adds one batch's activations on session s to a's sums. */
static sal_status acc_add(acc *a, sal_session *s, est_scratch *w) {
    const sal_model *m = s->m;
    const sal_node *n = &m->node[a->node];
    const sal_tensor *x = &s->act[n->in[a->r.x]], *y = &s->act[unit_value(m, n)], *W = &m->val[n->in[a->r.w]].t;
    int ua = a->r.y_unit_axis >= y->ndim ? y->ndim - 1 : a->r.y_unit_axis;
    if (ua < 0 || y->dim[ua] != a->units)
        return sal_node_fail(n, SAL_ERR_SHAPE, "output axis %d does not index the weight's %lld units", ua, (long long)a->units);
    int64_t inner = 1, ny = sal_tensor_numel(y);
    for (int d = ua + 1; d < y->ndim; d++) inner *= y->dim[d];
    SAL_TRY(sal_tensor_alloc(&w->ym, SAL_F32, y->ndim, y->dim));
    SAL_TRY(sal_tensor_alloc(&w->mask, SAL_F32, y->ndim, y->dim));
    SAL_TRY(sal_tensor_alloc(&w->ones, SAL_F32, y->ndim, y->dim));
    const float *yv = sal_f32(y);
    float *ym = sal_f32(&w->ym), *mk = sal_f32(&w->mask), *on = sal_f32(&w->ones);
    for (int64_t i = 0; i < ny; i++) {
        int64_t k = i / inner % a->units;
        bool pos = yv[i] > 0;
        ym[i] = pos ? yv[i] : 0;
        mk[i] = pos;
        on[i] = 1;
        a->n[k] += 1;
        a->sy[k] += yv[i];
        a->np[k] += pos;
        a->syp[k] += ym[i];
    }
    /* per-batch sums in float (sgemm), accumulated across batches in double */
    const sal_tensor *rz[4] = {y, &w->ym, &w->mask, &w->ones};
    double *dst[3] = {a->sxy, a->sxyp, a->sxp};
    for (int t = 0; t < 4; t++) {
        SAL_TRY(sal_tensor_alloc(&w->dw, SAL_F32, W->ndim, W->dim));
        SAL_TRY(sal_lin_correlate(m, n, &a->r, x, W, rz[t], &w->dw, &s->ws));
        const float *d = sal_f32(&w->dw);
        if (t < 3)
            for (int64_t e = 0; e < a->numel; e++) dst[t][e] += d[e];
        else
            for (int64_t j = 0; j < a->per; j++) a->sx[j] += d[elem_of(a, 0, j)];
    }
    return SAL_OK;
}

/* a_k = c_k / (w_k^T c_k) for each unit, c from cov(e, k); zero where the denominator vanishes. */
static int64_t finish_kind(const acc *a, const float *W, bool relu, float *out) {
    int64_t degen = 0;
    for (int64_t k = 0; k < a->units; k++) {
        double n = relu ? a->np[k] : a->n[k], ey = (relu ? a->syp[k] : a->sy[k]) / n, den = 0, ww = 0, cc = 0;
        for (int64_t j = 0; j < a->per; j++) {
            int64_t e = elem_of(a, k, j);
            double c = relu ? a->sxyp[e] / n - a->sxp[e] / n * ey : a->sxy[e] / n - a->sx[j] / n * ey;
            den += W[e] * c;
            ww += (double)W[e] * W[e];
            cc += c * c;
        }
        bool ok = n >= 2 && isfinite(den) && fabs(den) > 1e-10 * sqrt(ww * cc) && den != 0;
        degen += !ok;
        for (int64_t j = 0; j < a->per; j++) {
            int64_t e = elem_of(a, k, j);
            double c = relu ? a->sxyp[e] / n - a->sxp[e] / n * ey : a->sxy[e] / n - a->sx[j] / n * ey;
            out[e] = ok ? (float)(c / den) : 0.0f;
        }
    }
    return degen;
}

/* One source of batches: rows of a tensor in memory, or of a streamed NPY file. */
typedef struct {
    const sal_tensor *mem;
    sal_npy_stream *stream;
    int64_t pos;
} source;

static sal_status next_batch(source *src, int64_t n, sal_tensor *buf, sal_tensor *view) {
    if (src->mem) {
        int64_t row = sal_row_size(src->mem);
        *view = *src->mem;
        view->data = sal_f32(src->mem) + src->pos * row;
        view->dim[0] = n;
        view->cap = 0;
    } else {
        SAL_TRY(sal_npy_stream_read(src->stream, n, buf));
        if (buf->dim[0] != n) return sal_fail(SAL_ERR_FORMAT, "%s: fewer rows than announced", src->stream->path);
        *view = *buf;
        view->cap = 0;
    }
    src->pos += n;
    return SAL_OK;
}

/* One estimation: batches of the source run forward through sal_run_batched, and every linear
 * node's sums take each batch's activations. */
typedef struct {
    source *src;
    acc *accs;
    int na;
    est_scratch *w;
    const sal_patterns_opts *o;
    int64_t N;
} est_job;

static sal_status est_fill(void *u, int64_t r0, int64_t n, sal_tensor *buf, sal_tensor *x) {
    (void)r0; /* the source keeps its own place */
    return next_batch(((est_job *)u)->src, n, buf, x);
}

static sal_status est_pass(void *u, sal_chunk *ch) {
    est_job *j = u;
    SAL_TRY(sal_exec_forward(ch->s, ch->x));
    for (int k = 0; k < j->na; k++) SAL_TRY(acc_add(&j->accs[k], ch->s, j->w));
    return SAL_OK;
}

static sal_status est_after(void *u, const sal_chunk *ch) {
    const est_job *j = u;
    if (j->o->progress) j->o->progress(j->o->progress_user, "patterns", ch->r0 + ch->n, j->N, "");
    return SAL_OK;
}

static sal_status estimate(const sal_model *m0, source *src, int64_t total, const char *desc, const sal_patterns_opts *o,
                           sal_patterns **out) {
    *out = NULL;
    sal_patterns_opts d = {0};
    if (!o) o = &d;
    int64_t B = o->batch > 0 ? o->batch : 64, N = o->limit > 0 && o->limit < total ? o->limit : total;
    if (N < 2) return sal_fail(SAL_ERR_ARG, "%s: patterns need at least 2 samples, got %lld", desc, (long long)N);
    if (m0->ninput != 1)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s has %d inputs; patterns support single-input models", m0->path, m0->ninput);
    sal_model *cm = NULL;
    int nfold;
    SAL_TRY(sal_canonize(m0, &cm, &nfold));
    const sal_model *m = cm ? cm : m0;
    sal_session *s = NULL;
    acc *accs = sal_calloc((size_t)m->nnode + 1, sizeof *accs);
    int na = 0;
    est_scratch w;
    memset(&w, 0, sizeof w);
    sal_patterns *p = NULL;
    sal_status st = accs ? sal_session_new(m, &s) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->nnode && st == SAL_OK; i++)
        if (sal_lin_is_linear(&m->node[i])) st = acc_init(m, i, &accs[na++]);
    if (st == SAL_OK && na == 0) st = sal_fail(SAL_ERR_ARG, "%s has no Gemm, MatMul or Conv node to estimate patterns for", m->path);
    est_job job = {.src = src, .accs = accs, .na = na, .w = &w, .o = o, .N = N};
    sal_xctx ec = {.m = m, .s = s, .chunk = B};
    sal_batched run = {.samples = N, .fill = est_fill, .pass = est_pass, .after = est_after, .u = &job};
    if (st == SAL_OK) st = sal_run_batched(&ec, &run);
    if (st == SAL_OK) {
        p = sal_calloc(1, sizeof *p);
        if (p) p->node = sal_calloc((size_t)na, sizeof *p->node);
        if (p) p->source = sal_strdup(desc);
        if (!p || !p->node || !p->source) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; k < na && st == SAL_OK; k++) {
        const sal_node *n = &m->node[accs[k].node];
        const sal_tensor *W = &m->val[n->in[accs[k].r.w]].t;
        pat_node *q = &p->node[p->n++];
        q->name = sal_strdup(n->name);
        q->op = sal_strdup(n->op_type);
        if (!q->name || !q->op) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        for (int t = 0; t < 2 && st == SAL_OK; t++) {
            st = sal_tensor_alloc(&q->a[t], SAL_F32, W->ndim, W->dim);
            if (st == SAL_OK) q->degen[t] = finish_kind(&accs[k], sal_f32(W), t == 1, sal_f32(&q->a[t]));
        }
    }
    if (st == SAL_OK) {
        p->hash = sal_model_hash(m0);
        p->samples = N;
        *out = p;
        p = NULL;
    }
    sal_patterns_free(p);
    for (int k = 0; k < na; k++) acc_free(&accs[k]);
    sal_free(accs);
    sal_tensor_free(&w.ym);
    sal_tensor_free(&w.mask);
    sal_tensor_free(&w.ones);
    sal_tensor_free(&w.dw);
    sal_session_free(s);
    sal_model_free(cm);
    return st;
}

sal_status sal_patterns_estimate(const sal_model *m, const sal_tensor *data, const char *desc,
                                 const sal_patterns_opts *o, sal_patterns **out) {
    *out = NULL;
    if (!data || data->dtype != SAL_F32 || data->ndim < 1)
        return sal_fail(SAL_ERR_ARG, "patterns: data must be a float32 batch (N, ...)");
    source src = {.mem = data};
    char d[512];
    char shp[160];
    snprintf(d, sizeof d, "%s %s", desc ? desc : "<memory>", sal_shape_str(data->ndim, data->dim, shp, sizeof shp));
    return estimate(m, &src, data->dim[0], d, o, out);
}

sal_status sal_patterns_for_model(const sal_patterns *p, const sal_model *m, sal_patterns **out) {
    *out = NULL;
    sal_patterns *q = sal_calloc(1, sizeof *q);
    if (!q) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    q->hash = sal_model_hash(m);
    q->samples = p->samples;
    q->source = sal_strdup(p->source ? p->source : "");
    q->node = sal_calloc((size_t)p->n + 1, sizeof *q->node);
    sal_status st = q->source && q->node ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; st == SAL_OK && i < p->n; i++) {
        pat_node *a = &q->node[q->n++];
        const pat_node *b = &p->node[i];
        a->name = sal_strdup(b->name);
        a->op = sal_strdup(b->op);
        a->degen[0] = b->degen[0], a->degen[1] = b->degen[1];
        st = a->name && a->op ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
        for (int t = 0; st == SAL_OK && t < 2; t++) st = sal_tensor_copy(&a->a[t], &b->a[t]);
    }
    if (st != SAL_OK) {
        sal_patterns_free(q);
        return st;
    }
    *out = q;
    return SAL_OK;
}

sal_status sal_patterns_estimate_npy(const sal_model *m, const char *path, const sal_patterns_opts *o,
                                     sal_patterns **out) {
    *out = NULL;
    sal_npy_stream ns;
    SAL_TRY(sal_npy_stream_open(path, &ns));
    source src = {.stream = &ns};
    char d[512], shp[160];
    snprintf(d, sizeof d, "%s %s", path, sal_shape_str(ns.ndim, ns.dim, shp, sizeof shp));
    sal_status st = estimate(m, &src, ns.dim[0], d, o, out);
    sal_npy_stream_close(&ns);
    return st;
}

/* ---- the file ----
 * Little-endian:
 *   "SALPATTN"  u32 version (1)  u32 0
 *   u64 model hash  i64 samples  u32 n + source (n bytes)
 *   u32 count, then per node: u32 n + name, u32 n + op type, u32 ndim, i64 dim[ndim],
 *                             i64 degenerate linear, i64 degenerate relu,
 *                             f32 linear pattern[numel], f32 relu pattern[numel]
 *   u64 FNV-1a of every byte before it. */

#define PAT_MAGIC "SALPATTN"
#define PAT_VERSION 1u
#define PAT_MAX_STR 4096u

typedef struct {
    FILE *fp;
    uint64_t h;
    bool ok;
} wr;

static void put(wr *w, const void *p, size_t n) {
    if (!w->ok || !n) return;
    w->h = sal_fnv64(w->h, p, n);
    w->ok = fwrite(p, 1, n, w->fp) == n;
}
static void put_u32(wr *w, uint32_t v) { put(w, &v, 4); }
static void put_i64(wr *w, int64_t v) { put(w, &v, 8); }
static void put_str(wr *w, const char *s) {
    size_t n = strlen(s);
    if (n > PAT_MAX_STR) n = PAT_MAX_STR;
    put_u32(w, (uint32_t)n);
    put(w, s, n);
}

sal_status sal_patterns_save(const sal_patterns *p, const char *path) {
    sal_outfile f;
    SAL_TRY(sal_outfile_open(&f, path));
    /* sal_fnv64() depends on how the bytes are cut into pieces: the reader hashes the same fields as pieces */
    wr w = {f.fp, SAL_FNV_OFFSET, true};
    put(&w, PAT_MAGIC, 8);
    put_u32(&w, PAT_VERSION);
    put_u32(&w, 0);
    put(&w, &p->hash, 8);
    put_i64(&w, p->samples);
    put_str(&w, p->source);
    put_u32(&w, (uint32_t)p->n);
    for (int i = 0; i < p->n; i++) {
        const pat_node *q = &p->node[i];
        put_str(&w, q->name);
        put_str(&w, q->op);
        put_u32(&w, (uint32_t)q->a[0].ndim);
        for (int d = 0; d < q->a[0].ndim; d++) put_i64(&w, q->a[0].dim[d]);
        put_i64(&w, q->degen[0]);
        put_i64(&w, q->degen[1]);
        for (int t = 0; t < 2; t++) put(&w, q->a[t].data, sizeof(float) * (size_t)sal_tensor_numel(&q->a[t]));
    }
    uint64_t h = w.h;
    put(&w, &h, 8);
    if (!w.ok) {
        sal_outfile_abort(&f);
        return sal_fail(SAL_ERR_IO, "%s: write failed", path);
    }
    return sal_outfile_commit(&f);
}

typedef struct {
    FILE *fp;
    const char *path;
    uint64_t h;
    int64_t left; /* bytes of the file not yet read */
} rd;

static sal_status get(rd *r, void *p, size_t n, const char *what) {
    if ((int64_t)n > r->left || fread(p, 1, n, r->fp) != n)
        return sal_fail(SAL_ERR_FORMAT, "%s: truncated patterns file (reading %s)", r->path, what);
    r->left -= (int64_t)n;
    r->h = sal_fnv64(r->h, p, n);
    return SAL_OK;
}

static sal_status get_str(rd *r, char **s, const char *what) {
    uint32_t n;
    SAL_TRY(get(r, &n, 4, what));
    if (n > PAT_MAX_STR) return sal_fail(SAL_ERR_FORMAT, "%s: %s of %u bytes is implausible", r->path, what, n);
    if (!(*s = sal_malloc(n + 1))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    (*s)[n] = '\0';
    SAL_TRY(get(r, *s, n, what));
    if (memchr(*s, '\0', n)) return sal_fail(SAL_ERR_FORMAT, "%s: %s holds a NUL byte", r->path, what);
    return SAL_OK;
}

static sal_status load_fp(rd *r, sal_patterns *p) {
    char magic[8];
    uint32_t version, zero, count;
    SAL_TRY(get(r, magic, 8, "the magic number"));
    if (memcmp(magic, PAT_MAGIC, 8))
        return sal_fail(SAL_ERR_FORMAT, "%s: not a patterns file (bad magic; `saliency patterns` writes them)", r->path);
    SAL_TRY(get(r, &version, 4, "the version"));
    if (version != PAT_VERSION)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: patterns file version %u is not supported (this build reads %u)", r->path,
                        version, PAT_VERSION);
    SAL_TRY(get(r, &zero, 4, "the header"));
    SAL_TRY(get(r, &p->hash, 8, "the model hash"));
    SAL_TRY(get(r, &p->samples, 8, "the sample count"));
    SAL_TRY(get_str(r, &p->source, "the data source"));
    SAL_TRY(get(r, &count, 4, "the node count"));
    if ((int64_t)count > r->left / 40) /* every record takes at least 40 bytes */
        return sal_fail(SAL_ERR_FORMAT, "%s: %u patterns cannot fit in the file", r->path, count);
    if (!(p->node = sal_calloc((size_t)count + 1, sizeof *p->node))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < count; i++) {
        pat_node *q = &p->node[p->n++];
        uint32_t nd;
        int64_t dim[SAL_MAX_DIMS], numel;
        SAL_TRY(get_str(r, &q->name, "a node name"));
        SAL_TRY(get_str(r, &q->op, "an op type"));
        SAL_TRY(get(r, &nd, 4, "a rank"));
        if (nd < 1 || nd > SAL_MAX_DIMS) return sal_fail(SAL_ERR_FORMAT, "%s: pattern '%s' has rank %u", r->path, q->name, nd);
        SAL_TRY(get(r, dim, 8 * (size_t)nd, "a shape"));
        char b[160];
        if (!sal_shape_numel((int)nd, dim, &numel))
            return sal_fail(SAL_ERR_FORMAT, "%s: pattern '%s' has the invalid shape %s", r->path, q->name,
                            sal_shape_str((int)nd, dim, b, sizeof b));
        SAL_TRY(get(r, &q->degen[0], 8, "a count"));
        SAL_TRY(get(r, &q->degen[1], 8, "a count"));
        /* the size check comes before allocation, so a forged shape cannot ask for terabytes */
        if (numel > r->left / 8)
            return sal_fail(SAL_ERR_FORMAT, "%s: truncated patterns file (pattern '%s' of shape %s)", r->path, q->name,
                            sal_shape_str((int)nd, dim, b, sizeof b));
        for (int t = 0; t < 2; t++) {
            SAL_TRY(sal_tensor_alloc(&q->a[t], SAL_F32, (int)nd, dim));
            SAL_TRY(get(r, q->a[t].data, sizeof(float) * (size_t)numel, "pattern values"));
        }
    }
    uint64_t want = r->h, got;
    SAL_TRY(get(r, &got, 8, "the checksum"));
    if (got != want) return sal_fail(SAL_ERR_FORMAT, "%s: checksum mismatch: the patterns file is corrupt", r->path);
    if (r->left) return sal_fail(SAL_ERR_FORMAT, "%s: %lld bytes of junk after the patterns", r->path, (long long)r->left);
    for (int i = 0; i < p->n; i++)
        for (int t = 0; t < 2; t++) {
            const float *v = sal_f32(&p->node[i].a[t]);
            for (int64_t e = 0, n = sal_tensor_numel(&p->node[i].a[t]); e < n; e++)
                if (!isfinite(v[e]))
                    return sal_fail(SAL_ERR_NUMERIC, "%s: pattern '%s' holds a non-finite value", r->path, p->node[i].name);
        }
    return SAL_OK;
}

sal_status sal_patterns_load(const char *path, sal_patterns **out) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return sal_fail(SAL_ERR_IO, "%s: cannot open patterns file: %s", path, strerror(errno));
    sal_patterns *p = sal_calloc(1, sizeof *p);
    sal_status st = p ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK && fseek(fp, 0, SEEK_END) != 0) st = sal_fail(SAL_ERR_IO, "%s: cannot seek", path);
    long size = st == SAL_OK ? ftell(fp) : -1;
    if (st == SAL_OK && (size < 0 || fseek(fp, 0, SEEK_SET) != 0)) st = sal_fail(SAL_ERR_IO, "%s: cannot seek", path);
    rd r = {fp, path, SAL_FNV_OFFSET, size};
    if (st == SAL_OK) st = load_fp(&r, p);
    fclose(fp);
    if (st != SAL_OK) {
        sal_patterns_free(p);
        return st;
    }
    *out = p;
    return SAL_OK;
}

/* ---- PatternNet and PatternAttribution ---- */

typedef struct {
    sal_rule_base base; /* first: sal_rule_linear and sal_rule_reject read it */
    sal_lin_roles *roles;
    sal_tensor *eff; /* per node: the weights of the backward pass (a, or w * a) */
} pat_state;

static sal_status rule_pattern(sal_opctx *c, void *user) {
    pat_state *p = user;
    int i = (int)(c->n - c->g->node);
    const sal_lin_roles *r = &p->roles[i];
    if (!c->din[r->x] || !c->dout[0]) return SAL_OK;
    return sal_lin_transposed(c->g, c->n, r, c->in[r->x], &p->eff[i], 0, c->dout[0], c->din[r->x], c->ws);
}

static sal_status rule_output_pass(sal_opctx *c, void *user) {
    (void)user;
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    float *d = sal_f32(c->din[0]);
    const float *r = sal_f32(c->dout[0]);
    for (int64_t i = 0, n = sal_tensor_numel(c->din[0]); i < n; i++) d[i] += r[i];
    return SAL_OK;
}

/* Whether only ReLUs read node n's output: then its units are gated and the two-component pattern
 * describes them. */
static bool relu_follows(const sal_model *m, const sal_node *n) {
    int v = unit_value(m, n), readers = 0;
    for (int i = 0; i < m->noutput; i++)
        if (m->output[i] == v) return false;
    for (int i = 0; i < m->nnode; i++)
        for (int k = 0; k < m->node[i].nin; k++)
            if (m->node[i].in[k] == v) {
                if (!sal_node_is(&m->node[i], SAL_OP_Relu)) return false;
                readers++;
            }
    return readers > 0;
}

sal_status sal_pattern_run(sal_xctx *c, bool attribution, int kind) {
    const char *meth = c->meth->name, *path = sal_param(c, "patterns");
    sal_patterns *own = NULL;
    if (*path) SAL_TRY(sal_patterns_load(path, &own));
    const sal_patterns *pt = own ? own : c->patterns;
    if (!pt) return sal_fail(SAL_ERR_ARG, "method %s: needs patterns=FILE (made by `saliency patterns`) or patterns in memory", meth);
    if (!own) path = "the patterns in memory";
    uint64_t h = sal_model_hash(c->m);
    if (pt->hash != h) {
        sal_status st = sal_fail(SAL_ERR_ARG, "method %s: %s %s estimated for another model (model hash %016llx; %s "
                                 "has %016llx): run `saliency patterns` on this model", meth, path, own ? "was" : "were",
                                 (unsigned long long)pt->hash, c->m->path, (unsigned long long)h);
        sal_patterns_free(own);
        return st;
    }
    sal_model *cm = NULL;
    int nfold;
    sal_status st = sal_canonize(c->m, &cm, &nfold);
    const sal_model *m = cm ? cm : c->m;
    pat_state ps = {.base = {meth, "Gemm, MatMul and Conv (through patterns), ReLU, max pooling and linear ops"}};
    sal_rule_fn *fn = NULL;
    if (st == SAL_OK) {
        ps.roles = sal_calloc((size_t)m->nnode + 1, sizeof *ps.roles);
        ps.eff = sal_calloc((size_t)m->nnode + 1, sizeof *ps.eff);
        fn = sal_calloc((size_t)m->nnode + 1, sizeof *fn);
        if (!ps.roles || !ps.eff || !fn) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->nnode && st == SAL_OK; i++) {
        const sal_node *n = &m->node[i];
        switch (sal_rule_kind_of(n)) {
        case SAL_RK_LINEAR: fn[i] = sal_rule_linear; break;
        case SAL_RK_RELU:
        case SAL_RK_MAXPOOL:
        case SAL_RK_GMAXPOOL: fn[i] = NULL; break; /* the gradient: gated by the forward pass */
        case SAL_RK_SOFTMAX: fn[i] = sal_is_explained(c, m, n->out[0]) ? rule_output_pass : sal_rule_reject; break;
        case SAL_RK_PRODUCT: {
            if (!sal_lin_is_linear(n)) {
                fn[i] = sal_rule_linear; /* Mul, Div, an unfolded BatchNormalization: checked when reached */
                break;
            }
            if (sal_lin_roles_of(m, n, &ps.roles[i]) != SAL_OK) {
                fn[i] = sal_rule_reject;
                break;
            }
            const sal_tensor *W = &m->val[n->in[ps.roles[i].w]].t, *A = NULL;
            bool relu = kind == SAL_PATTERN_RELU || (kind == SAL_PATTERN_AUTO && relu_follows(m, n));
            for (int k = 0; k < pt->n && !A; k++)
                if (!strcmp(pt->node[k].name, n->name)) A = &pt->node[k].a[relu ? 1 : 0];
            if (!A || !sal_tensor_same_shape(A, W)) {
                st = sal_fail(SAL_ERR_FORMAT, "method %s: %s %s no pattern %sfor node '%s' (%s) of %s", meth, path,
                              own ? "has" : "have", A ? "of the weight's shape " : "", n->name, n->op_type, c->m->path);
                break;
            }
            if ((st = sal_tensor_copy(&ps.eff[i], A)) != SAL_OK) break;
            if (attribution) {
                float *e = sal_f32(&ps.eff[i]);
                const float *w = sal_f32(W);
                for (int64_t k = 0, n_ = sal_tensor_numel(W); k < n_; k++) e[k] *= w[k];
            }
            fn[i] = rule_pattern;
            break;
        }
        default: fn[i] = sal_rule_reject; break;
        }
    }
    if (st == SAL_OK) st = sal_lrp_drive(c, m, fn, &ps, attribution);
    if (st == SAL_OK) {
        sal_metric(c, "batchnorm_folded", nfold);
        sal_metric(c, "pattern_samples", (double)pt->samples);
    }
    for (int i = 0; ps.eff && i < m->nnode; i++) sal_tensor_free(&ps.eff[i]);
    sal_free(ps.eff);
    sal_free(ps.roles);
    sal_free(fn);
    sal_model_free(cm);
    sal_patterns_free(own);
    return st;
}

static const sal_param_spec k_p_pat[] = {
    {"patterns", "", "the patterns file `saliency patterns` wrote for this model (required)"},
    {"pattern", "auto", "auto (two-component patterns where only ReLUs read a node's output, linear ones elsewhere), "
                        "relu (two-component everywhere) or linear"},
    {NULL, NULL, NULL},
};

static sal_status run_pat(sal_xctx *c, bool attribution) {
    static const char *const kinds[] = {"auto", "relu", "linear", NULL};
    int kind;
    SAL_TRY(sal_param_choice(c, "pattern", kinds, &kind));
    if (!*sal_param(c, "patterns") && !c->patterns)
        return sal_fail(SAL_ERR_ARG, "method %s: needs patterns=FILE, made by `saliency patterns MODEL --data DATA --out FILE`",
                        c->meth->name);
    return sal_pattern_run(c, attribution, kind);
}

static sal_status run_patternnet(sal_xctx *c) { return run_pat(c, false); }
static sal_status run_pattern_attribution(sal_xctx *c) { return run_pat(c, true); }
static bool needs_file(const sal_xctx *c) { return !*sal_param(c, "patterns"); }

const sal_method sal_method_patternnet = {
    .name = "patternnet",
    .summary = "signal estimate: the backward pass through the data's signal patterns instead of the weights "
               "(Kindermans et al. 2018)",
    .params = k_p_pat,
    .run = run_patternnet,
    .needs_patterns = needs_file,
};

const sal_method sal_method_pattern_attribution = {
    .name = "pattern_attribution",
    .summary = "Deep Taylor with the root point x - a w^T x: the backward pass through w * a; input invariant "
               "(Kindermans et al. 2018)",
    .params = k_p_pat,
    .run = run_pattern_attribution,
    .needs_patterns = needs_file,
};
