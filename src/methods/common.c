/* Shared pieces of the methods: the table, parameters, target seeds, batched gradient passes. */
#include "method.h"
#include "sampling.h"
#include <errno.h>
#include <math.h>

#define SAL_METHOD(x) extern const sal_method sal_method_##x;
#include "methodlist.h"
#undef SAL_METHOD

static const sal_method *const k_methods[] = {
#define SAL_METHOD(x) &sal_method_##x,
#include "methodlist.h"
#undef SAL_METHOD
    NULL,
};

const sal_method *sal_method_lookup(const char *name) {
    for (int i = 0; k_methods[i]; i++)
        if (!strcmp(k_methods[i]->name, name)) return k_methods[i];
    return NULL;
}

int sal_method_count(void) { return (int)(sizeof k_methods / sizeof k_methods[0]) - 1; }

static const sal_method *method_at(int i) { return i >= 0 && i < sal_method_count() ? k_methods[i] : NULL; }
const char *sal_method_name(int i) { return method_at(i) ? k_methods[i]->name : NULL; }
const char *sal_method_summary(int i) { return method_at(i) ? k_methods[i]->summary : NULL; }
const char *sal_method_logits_note(int i) { return method_at(i) ? k_methods[i]->logits : NULL; }
int sal_method_sequence_only(int i) { return method_at(i) ? k_methods[i]->sequence : 0; }

int sal_method_nparams(int i) {
    int n = 0;
    if (method_at(i))
        while (k_methods[i]->params[n].name) n++;
    return n;
}

void sal_method_param(int i, int k, const char **name, const char **def, const char **help) {
    *name = *def = *help = NULL;
    if (!method_at(i) || k < 0 || k >= sal_method_nparams(i)) return;
    const sal_param_spec *p = &k_methods[i]->params[k];
    *name = p->name;
    *def = p->def;
    *help = p->help;
}

/* ---- parameters ---- */

const char *sal_param(const sal_xctx *c, const char *name) {
    for (int i = c->nkv - 1; i >= 0; i--) /* the last one given wins */
        if (!strcmp(c->key[i], name)) return c->val[i];
    for (const sal_param_spec *p = c->meth->params; p->name; p++)
        if (!strcmp(p->name, name)) return p->def;
    SAL_ASSERT(!"method asked for a parameter it does not declare");
    return "";
}

int sal_param_all(const sal_xctx *c, const char *name, const char **vals, int max) {
    int n = 0;
    for (int i = 0; i < c->nkv; i++)
        if (!strcmp(c->key[i], name)) {
            if (n < max) vals[n] = c->val[i];
            n++;
        }
    if (n == 0) {
        const char *d = sal_param(c, name); /* the default; also asserts that the method declares it */
        if (*d && max > 0) vals[n] = d;
        n = *d ? 1 : 0;
    }
    return n;
}

sal_status sal_param_int(const sal_xctx *c, const char *name, long lo, long hi, long *out) {
    const char *v = sal_param(c, name);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return sal_fail(SAL_ERR_ARG, "method %s: parameter %s=%s must be an integer in [%ld, %ld]", c->meth->name,
                        name, v, lo, hi);
    *out = x;
    return SAL_OK;
}

sal_status sal_param_float(const sal_xctx *c, const char *name, double lo, double hi, double *out) {
    const char *v = sal_param(c, name);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        return sal_fail(SAL_ERR_ARG, "method %s: parameter %s=%s must be a number in [%g, %g]", c->meth->name, name,
                        v, lo, hi);
    *out = x;
    return SAL_OK;
}

sal_status sal_param_bool(const sal_xctx *c, const char *name, bool *out) {
    const char *v = sal_param(c, name);
    if (!strcmp(v, "true") || !strcmp(v, "1")) *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0")) *out = false;
    else return sal_fail(SAL_ERR_ARG, "method %s: parameter %s=%s must be true or false", c->meth->name, name, v);
    return SAL_OK;
}

sal_status sal_param_choice(const sal_xctx *c, const char *name, const char *const *choices, int *idx) {
    const char *v = sal_param(c, name);
    char list[512] = "";
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(v, choices[i])) {
            *idx = i;
            return SAL_OK;
        }
        size_t k = strlen(list);
        snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", choices[i]);
    }
    return sal_fail(SAL_ERR_ARG, "method %s: parameter %s=%s must be one of: %s", c->meth->name, name, v, list);
}

void sal_metric(sal_xctx *c, const char *key, double v) {
    for (int i = 0; i < c->nmetric; i++)
        if (!strcmp(c->mkey[i], key)) {
            c->mval[i] = v;
            return;
        }
    if (c->nmetric == SAL_MAX_METRICS) return;
    snprintf(c->mkey[c->nmetric], sizeof c->mkey[0], "%s", key);
    c->mval[c->nmetric++] = v;
}

/* ---- targets and gradients ---- */

sal_status sal_target_seed(const sal_xctx *c, const sal_tensor *y, const int64_t *target, sal_tensor *seed,
                           float *value) {
    if (c->region) return sal_region_seed(c, y, target, seed, value);
    if (y->ndim != 2 || y->dtype != SAL_F32) {
        char b[160];
        return sal_fail(SAL_ERR_SHAPE, "explaining needs (batch, classes) outputs; %s gives %s", c->m->path,
                        sal_shape_str(y->ndim, y->dim, b, sizeof b));
    }
    int64_t B = y->dim[0], K = y->dim[1];
    SAL_TRY(sal_tensor_alloc(seed, SAL_F32, 2, y->dim));
    for (int64_t b = 0; b < B; b++) {
        const float *z = sal_f32(y) + b * K;
        float *g = sal_f32(seed) + b * K;
        int64_t t = target[b];
        if (t < 0 || t >= K)
            return sal_fail(SAL_ERR_ARG, "target class %lld is out of range: the model has %lld outputs", (long long)t,
                            (long long)K);
        if (!c->prob || c->out_prob) { /* a logit, or a probability the model gives itself */
            g[t] = 1.0f;
            if (value) value[b] = z[t];
            continue;
        }
        /* d p_t / d z_k = p_t (delta_tk - p_k) */
        float mx = z[0];
        for (int64_t k = 1; k < K; k++) mx = fmaxf(mx, z[k]);
        double sum = 0;
        for (int64_t k = 0; k < K; k++) sum += exp((double)(z[k] - mx));
        double pt = exp((double)(z[t] - mx)) / sum;
        for (int64_t k = 0; k < K; k++) g[k] = (float)(pt * ((k == t) - exp((double)(z[k] - mx)) / sum));
        if (value) value[b] = (float)pt;
    }
    return SAL_OK;
}

sal_status sal_rule_grad(const sal_xctx *c, sal_session *s, const sal_tensor *x, const int64_t *target,
                         const sal_rule_fn *rules, void *user, sal_tensor *g, float *value) {
    const sal_model *m = s->m; /* c->m, or a rewritten copy of it (LRP's canonization) */
    sal_tensor seed = {0};
    SAL_TRY(sal_exec_forward_reuse(s, x));
    int out = sal_explained(c, m);
    sal_status st = sal_target_seed(c, &s->act[out], target, &seed, value);
    /* a plain_io method's rules are indifferent to blocked layouts (sal_method.plain_io) */
    sal_backward_opts bo = {.rule = rules, .user = user, .rules_any_layout = c->meth && c->meth->plain_io};
    if (st == SAL_OK) st = sal_exec_backward(s, 1, &out, &seed, &bo);
    if (st == SAL_OK) st = sal_tensor_copy(g, &s->grad[m->input[0]]);
    sal_tensor_free(&seed);
    return st;
}

/* The pass a chunk gets unless its run brings its own: forward only, or the backward pass with
 * rules from the target seed; g and seed are the run's buffers. */
static sal_status default_pass(const sal_xctx *c, const sal_batched *b, sal_chunk *ch, sal_tensor *g,
                               sal_tensor *seed) {
    if (!b->forward_only) {
        SAL_TRY(sal_rule_grad(c, ch->s, ch->x, ch->target, b->rules, b->rule_user, g, ch->value));
        ch->g = g;
        return SAL_OK;
    }
    SAL_TRY(sal_exec_forward(ch->s, ch->x));
    return sal_target_seed(c, &ch->s->act[sal_explained(c, ch->s->m)], ch->target, seed, ch->value);
}

/* Rows of the chunk made by b->make into buf, shaped as c->x with n rows. */
static sal_status make_rows(const sal_xctx *c, const sal_batched *b, int64_t per, const sal_chunk *ch,
                            sal_tensor *buf) {
    const sal_tensor *x = c->x;
    int64_t dim[SAL_MAX_DIMS], row = sal_row_size(x);
    memcpy(dim, x->dim, sizeof dim);
    dim[0] = ch->n;
    SAL_TRY(sal_tensor_alloc(buf, SAL_F32, x->ndim, dim));
    for (int64_t r = 0; r < ch->n; r++) {
        int64_t i = (ch->r0 + r) / per, k = (ch->r0 + r) % per;
        sal_rng rng;
        if (b->seeded) sal_rng_stream(&rng, b->seed, sal_stream_id(c, i), k, per);
        SAL_TRY(b->make(b->u, i, k, sal_f32(buf) + r * row, b->seeded ? &rng : NULL));
    }
    return SAL_OK;
}

/* Rows near their sample (sal_batched.near) through a one-product head: F of every sample, then
 * per chunk the front's rows F(sample) + alpha (row - sample) op(B) over the elements that differ. */
typedef struct {
    const float *b; /* op(B) as (K, N) rows; NULL: full passes */
    int64_t K, N;
    float alpha;
    float *f;     /* F(sample) per sample (N floats each) */
    int64_t rows; /* rows that ran from the front */
} near_head;

static sal_status near_begin(const sal_xctx *c, sal_session *s, near_head *h) {
    const sal_tensor *x = c->x;
    h->K = sal_row_size(x);
    if (!(h->b = sal_exec_front_product(s, h->K, &h->N, &h->alpha))) return SAL_OK;
    int front = sal_exec_front(s);
    if (!(h->f = sal_malloc((size_t)(x->dim[0] * h->N) * sizeof *h->f)))
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    /* one sample at a time: F(sample) does not depend on how samples are split over chunks or ranks */
    for (int64_t i = 0; i < x->dim[0]; i++) {
        sal_tensor xi = sal_tensor_view(x);
        xi.data = (float *)sal_f32(x) + i * h->K;
        xi.dim[0] = 1;
        SAL_TRY(sal_exec_forward_head(s, &xi));
        const sal_tensor *t = &s->act[front];
        if (t->dtype != SAL_F32 || t->ndim != 2 || t->dim[0] != 1 || t->dim[1] != h->N) {
            h->b = NULL; /* not shaped as one product's rows: full passes */
            return SAL_OK;
        }
        memcpy(h->f + i * h->N, sal_f32(t), (size_t)h->N * sizeof *h->f);
    }
    return SAL_OK;
}

/* The chunk's forward pass through the tail; *done false when its rows differ from their samples
 * in more than an eighth of their elements (a full pass is then faster). */
static sal_status near_pass(const sal_xctx *c, near_head *h, int64_t per, sal_chunk *ch, sal_tensor *seed,
                            bool *done) {
    const float *x = sal_f32(c->x), *rows = sal_f32(ch->x);
    int64_t K = h->K, N = h->N, differ = 0;
    for (int64_t r = 0; r < ch->n; r++) {
        const float *a = rows + r * K, *a0 = x + (ch->r0 + r) / per * K;
        for (int64_t j = 0; j < K; j++) differ += a[j] != a0[j];
    }
    *done = differ * 8 <= ch->n * K;
    if (!*done) return SAL_OK;
    sal_session *s = ch->s;
    sal_tensor *f = &s->act[sal_exec_front(s)]; /* written in place (sal_exec_forward_tail) */
    SAL_TRY(sal_tensor_alloc_raw(f, SAL_F32, 2, (int64_t[]){ch->n, N}));
    bool relu = sal_exec_front_relu(s) >= 0; /* the ReLU after the front, while a row is in cache */
#pragma omp parallel for if (differ * N > 65536)
    for (int64_t r = 0; r < ch->n; r++) {
        int64_t i = (ch->r0 + r) / per;
        const float *a = rows + r * K, *a0 = x + i * K;
        float *o = sal_f32(f) + r * N;
        memcpy(o, h->f + i * N, (size_t)N * sizeof *o);
        /* four rows of op(B) per sweep over o: a quarter of its loads and stores */
        const float *w[4];
        float d[4];
        int nd = 0;
        for (int64_t j = 0; j <= K; j++) {
            if (j < K && a[j] == a0[j]) continue;
            if (j < K) w[nd] = h->b + j * N, d[nd++] = h->alpha * (a[j] - a0[j]);
            if (nd < 4 && (j < K || !nd)) continue;
            for (; nd < 4; nd++) w[nd] = w[0], d[nd] = 0.0f;
            sal_axpy4((int)N, o, d, w);
            nd = 0;
        }
        if (relu)
#pragma omp simd
            for (int64_t e = 0; e < N; e++) o[e] = o[e] > 0.0f ? o[e] : 0.0f;
    }
    SAL_TRY(sal_exec_forward_tail(s, f, relu));
    h->rows += ch->n;
    return sal_target_seed(c, &s->act[sal_explained(c, s->m)], ch->target, seed, ch->value);
}

sal_status sal_run_batched(sal_xctx *c, const sal_batched *b) {
    const sal_tensor *x = c->x;
    int64_t per = b->per_sample > 0 ? b->per_sample : 1, N = b->samples > 0 ? b->samples : x->dim[0];
    int64_t total = N * per, chunk = c->chunk > 0 ? c->chunk : 64;
    SAL_ASSERT((b->fill || b->make || per == 1) && (b->pass || c->target)); /* the default pass seeds targets */
    if (chunk > total) chunk = total > 0 ? total : 1;
    sal_tensor buf = {0}, view = {0}, g = {0}, seed = {0};
    int64_t *tg = c->target ? sal_malloc((size_t)chunk * sizeof *tg) : NULL;
    uint64_t *ids = sal_malloc((size_t)chunk * sizeof *ids);
    float *val = sal_malloc((size_t)chunk * sizeof *val);
    sal_status st = (tg || !c->target) && ids && val ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    near_head near = {0};
    SAL_ASSERT(!b->near || (b->make && b->forward_only && !b->pass && !b->samples));
    if (st == SAL_OK && b->near) st = near_begin(c, b->s ? b->s : c->s, &near);
    for (int64_t r0 = 0; r0 < total && st == SAL_OK; r0 += chunk) {
        sal_chunk ch = {.r0 = r0, .n = total - r0 < chunk ? total - r0 : chunk, .target = tg, .stream = ids,
                        .s = b->s ? b->s : c->s, .value = val};
        for (int64_t r = 0; r < ch.n; r++) {
            int64_t i = (r0 + r) / per, k = (r0 + r) % per;
            if (tg) tg[r] = c->target[i];
            ids[r] = sal_stream_child(c, i, k, per);
        }
        if (b->fill) {
            st = b->fill(b->u, r0, ch.n, &buf, &view);
            ch.x = &view;
        } else if (b->make) {
            st = make_rows(c, b, per, &ch, &buf);
            ch.x = &buf;
        } else { /* the rows of x, borrowed */
            view = sal_tensor_view(x);
            view.data = sal_f32(x) + r0 * sal_row_size(x);
            view.dim[0] = ch.n;
            ch.x = &view;
        }
        if (st == SAL_OK && b->before) st = b->before(b->u, &ch);
        bool done = false;
        if (st == SAL_OK && near.b) st = near_pass(c, &near, per, &ch, &seed, &done);
        if (st == SAL_OK && !done) st = b->pass ? b->pass(b->u, &ch) : default_pass(c, b, &ch, &g, &seed);
        int64_t row = sal_row_size(ch.x);
        for (int64_t r = 0; r < ch.n && st == SAL_OK && b->take; r++) {
            int64_t i = (r0 + r) / per, k = (r0 + r) % per;
            sal_rng rng;
            if (b->seeded) sal_rng_stream(&rng, b->seed, sal_stream_id(c, i), k, per);
            b->take(b->u, i, k, sal_f32(ch.x) + r * row, ch.g ? sal_f32(ch.g) + r * row : NULL, val[r],
                    b->seeded ? &rng : NULL);
        }
        if (st == SAL_OK && b->after) st = b->after(b->u, &ch);
    }
    sal_tensor_free(&buf);
    sal_tensor_free(&g);
    sal_tensor_free(&seed);
    sal_free(tg);
    sal_free(ids);
    sal_free(val);
    sal_free(near.f);
    if (st == SAL_OK && b->near) sal_metric(c, "rows_from_front", (double)near.rows);
    return st;
}
