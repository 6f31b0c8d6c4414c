/* Objectives of feature visualization: parsing the text form, values and gradient seeds. */
#include "featviz.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>

int fv_resolve(const sal_model *m, const char *name) {
    int n = sal_graph_find_node(m, name);
    if (n >= 0 && m->node[n].nout > 0 && m->node[n].out[0] >= 0) return m->node[n].out[0];
    return sal_graph_find(m, name);
}

int fv_first_layer(const sal_objective *o) {
    for (int i = 0; i < o->n; i++)
        if (o->t[i].kind != FV_LOGIT && o->t[i].kind != FV_PROB) return o->t[i].val;
    return -1;
}

/* ---- parsing ---- */

static bool parse_i64(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0) return false;
    *out = v;
    return true;
}

static sal_status unknown_node(const sal_model *m, const char *term, const char *name) {
    return sal_fail(SAL_ERR_ARG, "objective '%s': no node or value named '%s' in %s", term, name, m->path);
}

/* "NODE:I:J:K": the longest prefix that names a node (or value) followed only by indices. Node names
 * may contain ':' themselves, so every split is tried, fewest indices first. */
static sal_status parse_unit(const sal_model *m, fv_term *t, char *rest) {
    size_t len = strlen(rest);
    int ncolon = 0, first_num = -1;
    for (size_t i = 0; i < len; i++) ncolon += rest[i] == ':';
    for (int k = 1; k <= ncolon && k <= SAL_MAX_DIMS - 1; k++) {
        /* split at the k-th colon from the right */
        char *p = rest + len;
        for (int c = 0; c < k; p--)
            if (p[-1] == ':') c++;
        int64_t idx[SAL_MAX_DIMS];
        bool ok = true;
        char buf[192];
        snprintf(buf, sizeof buf, "%s", p + 1);
        char *f = buf;
        for (int j = 0; j < k && ok; j++) {
            char *colon = strchr(f, ':');
            if (colon) *colon = '\0';
            ok = parse_i64(f, &idx[j]);
            f = colon ? colon + 1 : f;
        }
        if (!ok) break;
        first_num = (int)(p - rest);
        *p = '\0';
        int v = fv_resolve(m, rest);
        *p = ':';
        if (v >= 0) {
            t->val = v;
            t->nidx = k;
            memcpy(t->idx, idx, sizeof idx);
            return SAL_OK;
        }
    }
    if (first_num < 0)
        return sal_fail(SAL_ERR_ARG, "objective '%s': a unit is unit:NODE:I[:J[:K]] with integer indices", t->text);
    rest[first_num] = '\0';
    return unknown_node(m, t->text, rest);
}

static sal_status parse_term(const sal_model *m, fv_term *t, char *s) {
    /* weight: "0.5*obj", "-obj" or "-2 * obj" */
    t->w = 1;
    char *star = strchr(s, '*');
    if (star) {
        *star = '\0';
        char *end;
        errno = 0;
        t->w = strtod(s, &end);
        while (isspace((unsigned char)*end)) end++;
        if (errno || end == s || *end || !isfinite(t->w))
            return sal_fail(SAL_ERR_ARG, "objective term '%s*%s': the weight '%s' is not a number", s, star + 1, s);
        s = star + 1;
        while (isspace((unsigned char)*s)) s++;
    } else if (*s == '-') {
        t->w = -1;
        for (s++; isspace((unsigned char)*s);) s++;
    }
    snprintf(t->text, sizeof t->text, "%s", s);
    char *colon = strchr(s, ':');
    if (!colon || !colon[1])
        return sal_fail(SAL_ERR_ARG,
                        "objective '%s': expected unit:NODE:I[:J[:K]], channel:NODE:C, layer:NODE, logit:K, "
                        "prob:K or direction:NODE:V.npy",
                        t->text);
    *colon = '\0';
    const char *kind = s;
    char *rest = colon + 1;
    if (!strcmp(kind, "unit") || !strcmp(kind, "neuron")) {
        t->kind = FV_UNIT;
        return parse_unit(m, t, rest);
    }
    if (!strcmp(kind, "channel")) {
        t->kind = FV_CHANNEL;
        char *c = strrchr(rest, ':');
        if (!c || !parse_i64(c + 1, &t->idx[0]))
            return sal_fail(SAL_ERR_ARG, "objective '%s': a channel is channel:NODE:C with an integer C", t->text);
        *c = '\0';
        t->nidx = 1;
        if ((t->val = fv_resolve(m, rest)) < 0) return unknown_node(m, t->text, rest);
        return SAL_OK;
    }
    if (!strcmp(kind, "layer")) {
        t->kind = FV_LAYER;
        if ((t->val = fv_resolve(m, rest)) < 0) return unknown_node(m, t->text, rest);
        return SAL_OK;
    }
    if (!strcmp(kind, "logit") || !strcmp(kind, "class") || !strcmp(kind, "prob")) {
        t->kind = strcmp(kind, "prob") ? FV_LOGIT : FV_PROB;
        if (!parse_i64(rest, &t->idx[0]))
            return sal_fail(SAL_ERR_ARG, "objective '%s': the class '%s' is not a non-negative integer", t->text, rest);
        t->nidx = 1;
        if (m->noutput < 1) return sal_fail(SAL_ERR_ARG, "objective '%s': model %s has no output", t->text, m->path);
        t->val = m->output[0];
        return SAL_OK;
    }
    if (!strcmp(kind, "direction")) {
        t->kind = FV_DIRECTION;
        /* NODE:FILE, where either may contain ':': the first split whose left side names a node */
        for (char *c = strchr(rest, ':'); c; c = strchr(c + 1, ':')) {
            *c = '\0';
            int v = fv_resolve(m, rest);
            if (v >= 0) {
                t->val = v;
                sal_status st = sal_npy_read(c + 1, &t->vec);
                if (st != SAL_OK) return sal_wrap(st, "objective '%s'", t->text);
                if (t->vec.dtype != SAL_F32 || sal_tensor_numel(&t->vec) < 1)
                    return sal_fail(SAL_ERR_FORMAT, "objective '%s': %s must hold float values", t->text, c + 1);
                return SAL_OK;
            }
            *c = ':';
        }
        char *c = strrchr(rest, ':');
        if (!c) return sal_fail(SAL_ERR_ARG, "objective '%s': a direction is direction:NODE:V.npy", t->text);
        *c = '\0';
        return unknown_node(m, t->text, rest);
    }
    return sal_fail(SAL_ERR_ARG,
                    "objective '%s': unknown kind '%s' (known: unit, channel, layer, logit, prob, direction)",
                    t->text, kind);
}

static sal_status make_text(sal_objective *o, const char *head) {
    size_t n = strlen(head) + 1;
    for (int i = 0; i < o->n; i++) n += strlen(o->t[i].text) + 40;
    if (!(o->text = sal_malloc(n))) return sal_fail(SAL_ERR_NOMEM, "out of memory parsing an objective");
    size_t k = (size_t)snprintf(o->text, n, "%s", head);
    for (int i = 0; i < o->n; i++) {
        const fv_term *t = &o->t[i];
        const char *sep = i == 0 ? (t->w < 0 ? "-" : "") : (t->w < 0 ? " - " : " + ");
        if (fabs(t->w) == 1) k += (size_t)snprintf(o->text + k, n - k, "%s%s", sep, t->text);
        else k += (size_t)snprintf(o->text + k, n - k, "%s%.9g*%s", sep, fabs(t->w), t->text);
    }
    return SAL_OK;
}

sal_status sal_objective_parse(const sal_model *m, const char *spec, sal_objective **out) {
    *out = NULL;
    if (!m || !spec) return sal_fail(SAL_ERR_ARG, "sal_objective_parse: NULL argument");
    sal_objective *o = sal_calloc(1, sizeof *o);
    char *buf = sal_strdup(spec);
    if (!o || !buf) {
        sal_free(o);
        sal_free(buf);
        return sal_fail(SAL_ERR_NOMEM, "out of memory parsing an objective");
    }
    o->m = m;
    sal_status st = SAL_OK;
    /* terms are separated by '+', or by a '-' with a space on each side ('-' may sit inside names) */
    char *p = buf;
    bool neg = false;
    while (st == SAL_OK) {
        char *end = p;
        bool next_neg = false;
        for (; *end; end++) {
            if (*end == '+') break;
            if (*end == '-' && end > p && isspace((unsigned char)end[-1]) && isspace((unsigned char)end[1])) {
                next_neg = true;
                break;
            }
        }
        bool last = !*end;
        *end = '\0';
        while (isspace((unsigned char)*p)) p++;
        for (char *e = p + strlen(p); e > p && isspace((unsigned char)e[-1]);) *--e = '\0';
        if (!*p) {
            st = sal_fail(SAL_ERR_ARG, "objective '%s': an empty term", spec);
            break;
        }
        if (o->n == FV_MAX_TERMS) {
            st = sal_fail(SAL_ERR_ARG, "objective '%s': more than %d terms", spec, FV_MAX_TERMS);
            break;
        }
        fv_term *t = &o->t[o->n++];
        st = parse_term(m, t, p);
        if (neg) t->w = -t->w;
        neg = next_neg;
        if (last) break;
        p = end + 1;
    }
    sal_free(buf);
    if (st == SAL_OK) st = make_text(o, "");
    if (st != SAL_OK) {
        sal_objective_free(o);
        return st;
    }
    *out = o;
    return SAL_OK;
}

void sal_objective_free(sal_objective *o) {
    if (!o) return;
    for (int i = 0; i < o->n; i++) sal_tensor_free(&o->t[i].vec);
    sal_free(o->text);
    sal_free(o);
}

const char *sal_objective_text(const sal_objective *o) { return o && o->text ? o->text : ""; }

sal_status sal_objective_inversion(const sal_model *m, const char *node, const sal_tensor *x0, sal_objective **out) {
    *out = NULL;
    if (!m || !node || !x0) return sal_fail(SAL_ERR_ARG, "sal_objective_inversion: NULL argument");
    int v = fv_resolve(m, node);
    if (v < 0) return sal_fail(SAL_ERR_ARG, "inversion: no node or value named '%s' in %s", node, m->path);
    if (m->ninput != 1)
        return sal_fail(SAL_ERR_ARG, "inversion needs a model with one input (%s has %d)", m->path, m->ninput);
    if (x0->dtype != SAL_F32 || x0->ndim < 1 || x0->dim[0] < 1)
        return sal_fail(SAL_ERR_ARG, "inversion: the input to invert must be float (N, ...) with N >= 1");
    sal_objective *o = sal_calloc(1, sizeof *o);
    if (!o) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    o->m = m;
    o->n = 1;
    o->rows = x0->dim[0];
    fv_term *t = &o->t[0];
    t->kind = FV_MATCH;
    t->w = 1;
    t->val = v;
    snprintf(t->text, sizeof t->text, "match:%s", node);
    sal_session *s = NULL;
    sal_status st = sal_session_new(m, &s);
    if (st == SAL_OK) st = sal_exec_forward(s, x0);
    if (st == SAL_OK && (s->act[v].dtype != SAL_F32 || s->act[v].ndim < 1 || s->act[v].dim[0] != x0->dim[0]))
        st = sal_fail(SAL_ERR_SHAPE, "inversion: '%s' is not a float activation with the batch first", node);
    if (st == SAL_OK) st = sal_tensor_copy(&t->vec, &s->act[v]);
    sal_session_free(s);
    if (st == SAL_OK) st = make_text(o, "");
    if (st != SAL_OK) {
        sal_objective_free(o);
        return st;
    }
    *out = o;
    return SAL_OK;
}

/* ---- values and seeds ---- */

float *fv_seed_for(fv_seeds *sd, const sal_session *s, int v) {
    for (int i = 0; i < sd->n; i++)
        if (sd->val[i] == v) return sal_f32(&sd->seed[i]);
    if (sd->n == FV_MAX_TERMS + 1) {
        sal_fail(SAL_ERR_INTERNAL, "too many gradient seeds");
        return NULL;
    }
    const sal_tensor *a = &s->act[v];
    if (sal_tensor_alloc(&sd->seed[sd->n], SAL_F32, a->ndim, a->dim) != SAL_OK) return NULL;
    sd->val[sd->n] = v;
    return sal_f32(&sd->seed[sd->n++]);
}

void fv_seeds_clear(fv_seeds *sd) { sd->n = 0; }

void fv_seeds_free(fv_seeds *sd) {
    for (int i = 0; i < FV_MAX_TERMS + 1; i++) sal_tensor_free(&sd->seed[i]);
    sd->n = 0;
}

static sal_status bad_shape(const sal_objective *o, const fv_term *t, const sal_tensor *a, const char *why) {
    char b[160];
    return sal_fail(SAL_ERR_SHAPE, "objective '%s': '%s' has shape %s: %s", t->text, o->m->val[t->val].name,
                    sal_shape_str(a->ndim, a->dim, b, sizeof b), why);
}

/* Flat offset inside one sample of a unit's indices, checked against the shape. */
static sal_status unit_offset(const sal_objective *o, const fv_term *t, const sal_tensor *a, int64_t *off) {
    if (t->nidx != a->ndim - 1) {
        char why[96];
        snprintf(why, sizeof why, "a unit needs %d indices after the batch, %d given", a->ndim - 1, t->nidx);
        return bad_shape(o, t, a, why);
    }
    *off = 0;
    for (int d = 1; d < a->ndim; d++) {
        if (t->idx[d - 1] >= a->dim[d]) {
            char why[96];
            snprintf(why, sizeof why, "index %lld of dimension %d is out of range", (long long)t->idx[d - 1], d);
            return bad_shape(o, t, a, why);
        }
        *off = *off * a->dim[d] + t->idx[d - 1];
    }
    return SAL_OK;
}

sal_status fv_eval(const sal_objective *o, const sal_session *s, int64_t B, int64_t row0, double *value,
                   fv_seeds *seeds) {
    for (int64_t b = 0; b < B; b++) value[b] = 0;
    for (int i = 0; i < o->n; i++) {
        const fv_term *t = &o->t[i];
        const sal_tensor *a = &s->act[t->val];
        if (a->dtype != SAL_F32 || a->ndim < 1 || a->dim[0] != B || !a->data)
            return bad_shape(o, t, a, "expected float values with the batch first");
        const int64_t r = sal_tensor_numel(a) / B; /* elements per sample */
        const int64_t C = a->ndim >= 2 ? a->dim[1] : 1, P = C ? r / C : 0;
        const float *x = sal_f32(a);
        float *g = NULL;
        if (seeds && !(g = fv_seed_for(seeds, s, t->val))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        const double w = t->w;
        switch (t->kind) {
        case FV_UNIT: {
            int64_t off = 0;
            SAL_TRY(unit_offset(o, t, a, &off));
            for (int64_t b = 0; b < B; b++) {
                value[b] += w * x[b * r + off];
                if (g) g[b * r + off] += (float)w;
            }
            break;
        }
        case FV_CHANNEL:
            if (a->ndim < 2) return bad_shape(o, t, a, "a channel needs (N, C, ...)");
            if (t->idx[0] >= C) return bad_shape(o, t, a, "the channel is out of range");
            for (int64_t b = 0; b < B; b++) {
                const float *xc = x + b * r + t->idx[0] * P;
                double sum = 0;
                for (int64_t p = 0; p < P; p++) sum += xc[p];
                value[b] += w * sum / (double)P;
                if (g)
                    for (int64_t p = 0; p < P; p++) g[b * r + t->idx[0] * P + p] += (float)(w / (double)P);
            }
            break;
        case FV_LAYER:
            if (r < 1) return bad_shape(o, t, a, "the layer is empty");
            for (int64_t b = 0; b < B; b++) {
                double sum = 0;
                for (int64_t k = 0; k < r; k++) sum += (double)x[b * r + k] * x[b * r + k];
                value[b] += w * sum / (double)r;
                if (g)
                    for (int64_t k = 0; k < r; k++) g[b * r + k] += (float)(2 * w * x[b * r + k] / (double)r);
            }
            break;
        case FV_LOGIT:
        case FV_PROB:
            if (a->ndim != 2) return bad_shape(o, t, a, "class objectives need (N, classes) outputs");
            if (t->idx[0] >= C) return bad_shape(o, t, a, "the class is out of range");
            for (int64_t b = 0; b < B; b++) {
                const float *z = x + b * C;
                const int64_t k = t->idx[0];
                if (t->kind == FV_LOGIT) {
                    value[b] += w * z[k];
                    if (g) g[b * C + k] += (float)w;
                    continue;
                }
                double mx = z[0], sum = 0;
                for (int64_t j = 1; j < C; j++) mx = fmax(mx, z[j]);
                for (int64_t j = 0; j < C; j++) sum += exp(z[j] - mx);
                double pk = exp(z[k] - mx) / sum;
                value[b] += w * pk;
                if (g) /* d p_k / d z_j = p_k (delta_jk - p_j) */
                    for (int64_t j = 0; j < C; j++)
                        g[b * C + j] += (float)(w * pk * ((j == k) - exp(z[j] - mx) / sum));
            }
            break;
        case FV_DIRECTION: {
            const int64_t n = sal_tensor_numel(&t->vec);
            const float *v = sal_f32(&t->vec);
            bool per_channel = a->ndim >= 2 && n == C;
            if (!per_channel && n != r) {
                char why[128];
                snprintf(why, sizeof why, "the direction has %lld entries; it needs %lld (channels) or %lld",
                         (long long)n, (long long)C, (long long)r);
                return bad_shape(o, t, a, why);
            }
            const int64_t Q = per_channel ? P : 1; /* positions averaged over */
            for (int64_t b = 0; b < B; b++) {
                double sum = 0;
                for (int64_t k = 0; k < r; k++) {
                    float vk = v[per_channel ? k / P : k];
                    sum += (double)vk * x[b * r + k];
                    if (g) g[b * r + k] += (float)(w * vk / (double)Q);
                }
                value[b] += w * sum / (double)Q;
            }
            break;
        }
        case FV_MATCH: {
            const sal_tensor *tg = &t->vec;
            bool ok = tg->ndim == a->ndim && row0 + B <= tg->dim[0];
            for (int d = 1; ok && d < a->ndim; d++) ok = tg->dim[d] == a->dim[d];
            if (!ok) {
                char bs[160];
                return sal_fail(SAL_ERR_SHAPE,
                                "objective '%s': rows %lld..%lld of targets shaped %s asked for; the batch does "
                                "not fit (invert with as many images as inputs)",
                                t->text, (long long)row0, (long long)(row0 + B - 1),
                                sal_shape_str(tg->ndim, tg->dim, bs, sizeof bs));
            }
            for (int64_t b = 0; b < B; b++) {
                const float *y = sal_f32(tg) + (row0 + b) * r;
                double den = 0, sum = 0;
                for (int64_t k = 0; k < r; k++) den += (double)y[k] * y[k];
                if (!(den > 0)) den = 1; /* an all-zero target: plain squared error */
                for (int64_t k = 0; k < r; k++) {
                    double d = (double)x[b * r + k] - y[k];
                    sum += d * d;
                    if (g) g[b * r + k] += (float)(-2 * w * d / den);
                }
                value[b] += -w * sum / den;
            }
            break;
        }
        }
    }
    for (int64_t b = 0; b < B; b++)
        if (!isfinite(value[b]))
            return sal_fail(SAL_ERR_NUMERIC, "objective '%s' is not finite (%g) for sample %lld", o->text, value[b],
                            (long long)(row0 + b));
    return SAL_OK;
}

sal_status sal_objective_values(const sal_model *m, const sal_objective *o, const sal_tensor *x, int64_t chunk,
                                float *values) {
    if (!m || !o || !x || !values) return sal_fail(SAL_ERR_ARG, "sal_objective_values: NULL argument");
    if (o->m != m) return sal_fail(SAL_ERR_ARG, "sal_objective_values: the objective was parsed for another model");
    if (m->ninput != 1)
        return sal_fail(SAL_ERR_ARG, "objectives need a model with one input (%s has %d)", m->path, m->ninput);
    if (x->dtype != SAL_F32 || x->ndim < 1)
        return sal_fail(SAL_ERR_ARG, "objective values: the samples must be float (N, ...)");
    const int64_t N = x->dim[0], row = sal_row_size(x);
    if (o->rows && o->rows != N)
        return sal_fail(SAL_ERR_SHAPE, "objective '%s' holds targets for %lld samples, %lld given", o->text,
                        (long long)o->rows, (long long)N);
    if (chunk <= 0) chunk = 64;
    sal_session *s = NULL;
    double *v = sal_malloc((size_t)(chunk < N ? chunk : N ? N : 1) * sizeof *v);
    sal_status st = v ? sal_session_new(m, &s) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t b0 = 0; st == SAL_OK && b0 < N; b0 += chunk) {
        int64_t b = N - b0 < chunk ? N - b0 : chunk;
        sal_tensor xb = sal_tensor_view(x);
        xb.dim[0] = b;
        xb.data = sal_f32(x) + b0 * row;
        for (int64_t i = 0; i < b * row && st == SAL_OK; i++)
            if (!isfinite(sal_f32(&xb)[i]))
                st = sal_fail(SAL_ERR_NUMERIC, "sample %lld has a non-finite value", (long long)(b0 + i / row));
        if (st == SAL_OK) st = sal_exec_forward(s, &xb);
        if (st == SAL_OK) st = fv_eval(o, s, b, b0, v, NULL);
        for (int64_t i = 0; st == SAL_OK && i < b; i++) values[b0 + i] = (float)v[i];
    }
    sal_free(v);
    sal_session_free(s);
    return st;
}
