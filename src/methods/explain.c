/* The public entry point: checks, targets, running a method, checking and reporting its result. */
#include "method.h"
#include <float.h>
#include <math.h>
#include <stdarg.h>

struct sal_explanation {
    sal_tensor map, layer_map;
    int64_t n, *targets;
    float *outputs;
    int nmetric;
    char mkey[SAL_MAX_METRICS][48];
    double mval[SAL_MAX_METRICS];
    /* what the JSON is made of, rendered when asked for (a call on a small model is 0.1 ms, of
     * which the text took 2%), and so that explanations of consecutive batches join into one
     * (sal_explanation_join): the text before "targets", the text after "shape", the checks */
    char *head, *mid;
    bool finite;
    char series_key[48];
    double *series;          /* per sample, or NULL */
    const char *method;      /* the method that made the map */
    const char *replaced;    /* the method asked for, when the fallback stood in for it; else NULL */
    char reason[512];        /* why it could not run */
};

void sal_explanation_free(sal_explanation *e) {
    if (!e) return;
    sal_tensor_free(&e->map);
    sal_tensor_free(&e->layer_map);
    sal_free(e->targets);
    sal_free(e->outputs);
    sal_free(e->head);
    sal_free(e->mid);
    sal_free(e->series);
    sal_free(e);
}

const sal_tensor *sal_explanation_map(const sal_explanation *e) { return &e->map; }
const sal_tensor *sal_explanation_layer_map(const sal_explanation *e) { return e->layer_map.data ? &e->layer_map : NULL; }
const int64_t *sal_explanation_targets(const sal_explanation *e) { return e->targets; }
const char *sal_explanation_method(const sal_explanation *e) { return e->method; }
const char *sal_explanation_fallback(const sal_explanation *e) { return e->replaced ? e->reason : NULL; }
const float *sal_explanation_outputs(const sal_explanation *e) { return e->outputs; }

double sal_explanation_metric(const sal_explanation *e, const char *name) {
    for (int i = 0; i < e->nmetric; i++)
        if (!strcmp(e->mkey[i], name)) return e->mval[i];
    return NAN;
}

/* The JSON from its parts: head, the per-sample arrays, the map's shape, mid, the checks. */
sal_status sal_explanation_json(const sal_explanation *e, char **json) {
    *json = NULL;
    sal_sbuf b = {0};
    sal_sb_printf(&b, "%s", e->head);
    for (int64_t i = 0; i < e->n; i++) sal_sb_printf(&b, "%s%lld", i ? ", " : "", (long long)e->targets[i]);
    sal_sb_printf(&b, "],\n  \"outputs\": [");
    for (int64_t i = 0; i < e->n; i++) {
        sal_sb_printf(&b, "%s", i ? ", " : "");
        sal_sb_num(&b, e->outputs[i]);
    }
    sal_sb_printf(&b, "],\n  \"shape\": [");
    for (int d = 0; d < e->map.ndim; d++) sal_sb_printf(&b, "%s%lld", d ? ", " : "", (long long)e->map.dim[d]);
    sal_sb_printf(&b, "]%s", e->mid);
    sal_sb_printf(&b, ",\n  \"checks\": {\"all_finite\": %s", e->finite ? "true" : "false");
    for (int i = 0; i < e->nmetric; i++) {
        sal_sb_printf(&b, ", ");
        sal_sb_str(&b, e->mkey[i]);
        sal_sb_printf(&b, ": ");
        sal_sb_num(&b, e->mval[i]);
    }
    sal_sb_printf(&b, "}");
    if (e->series) {
        sal_sb_printf(&b, ",\n  \"per_sample\": {");
        sal_sb_str(&b, e->series_key);
        sal_sb_printf(&b, ": [");
        for (int64_t i = 0; i < e->n; i++) {
            sal_sb_printf(&b, "%s", i ? ", " : "");
            sal_sb_num(&b, e->series[i]);
        }
        sal_sb_printf(&b, "]}");
    }
    sal_sb_printf(&b, "\n}\n");
    if (!b.oom) {
        if ((*json = malloc(b.len + 1))) memcpy(*json, b.s, b.len + 1); /* the caller frees with free() */
    }
    sal_sb_free(&b);
    return *json ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory writing JSON");
}

static sal_status make_json(const sal_xctx *c, sal_explanation *e, bool finite) {
    sal_sbuf b = {0};
    sal_sb_printf(&b, "{\n  \"method\": ");
    sal_sb_str(&b, c->meth->name);
    sal_sb_printf(&b, ",\n  \"model\": ");
    sal_sb_str(&b, c->m->path);
    sal_sb_printf(&b, ",\n  \"params\": {");
    int k = 0;
    for (const sal_param_spec *p = c->meth->params; p->name; p++, k++) {
        sal_sb_printf(&b, "%s", k ? ", " : "");
        sal_sb_str(&b, p->name);
        sal_sb_printf(&b, ": ");
        const char *all[64];
        int n = sal_param_all(c, p->name, all, 64);
        if (n <= 1) {
            sal_sb_str(&b, sal_param(c, p->name));
            continue;
        }
        /* a repeatable parameter given several times (LRP's rule entries): every value, in order */
        sal_sb_printf(&b, "[");
        for (int i = 0; i < n && i < 64; i++) {
            sal_sb_printf(&b, "%s", i ? ", " : "");
            sal_sb_str(&b, all[i]);
        }
        sal_sb_printf(&b, "]");
    }
    for (int i = 0; i < c->nkv; i++) /* options passed through to an inner method */
        if (!strncmp(c->key[i], "inner.", 6)) {
            sal_sb_printf(&b, "%s", k++ ? ", " : "");
            sal_sb_str(&b, c->key[i]);
            sal_sb_printf(&b, ": ");
            sal_sb_str(&b, c->val[i]);
        }
    sal_sb_printf(&b, "}");
    if (e->replaced) { /* --fallback: the method asked for could not run, and why */
        sal_sb_printf(&b, ",\n  \"fallback\": {\"replaced\": ");
        sal_sb_str(&b, e->replaced);
        sal_sb_printf(&b, ", \"reason\": ");
        sal_sb_str(&b, e->reason);
        sal_sb_printf(&b, "}");
    }
    sal_sb_printf(&b, ",\n  \"output\": \"%s\",\n  \"output_name\": ",
                  c->region    ? "value"
                  : c->out_prob ? (c->prob ? "probability (the model's own output)" : "the model's output (a probability)")
                  : c->prob     ? "probability"
                                : "logit");
    sal_sb_str(&b, c->m->val[sal_explained(c, c->m)].name);
    sal_sb_printf(&b, ",\n  \"target\": \"%s\",\n  \"targets\": [", !c->region ? "class" : c->mask ? "mask" : "sum");
    sal_sbuf m = {0}; /* what follows the shape */
    if (c->out_prob && c->meth->logits) { /* the model outputs probabilities; this method is defined on logits */
        sal_sb_printf(&m, ",\n  \"logits_note\": ");
        sal_sb_str(&m, c->meth->logits);
    }
    if (c->layer[0]) {
        sal_sb_printf(&m, ",\n  \"layer\": ");
        sal_sb_str(&m, c->layer);
    }
    if (b.oom || m.oom) {
        sal_sb_free(&b);
        sal_sb_free(&m);
        return sal_fail(SAL_ERR_NOMEM, "out of memory writing JSON");
    }
    e->head = b.s;
    e->mid = m.s ? m.s : sal_strdup("");
    e->finite = finite;
    if (!e->mid) return sal_fail(SAL_ERR_NOMEM, "out of memory writing JSON");
    if (c->series) {
        snprintf(e->series_key, sizeof e->series_key, "%s", c->series_key);
        if (!(e->series = sal_malloc((size_t)(e->n > 0 ? e->n : 1) * sizeof *e->series)))
            return sal_fail(SAL_ERR_NOMEM, "out of memory");
        memcpy(e->series, c->series, (size_t)e->n * sizeof *e->series);
    }
    return SAL_OK;
}

/* ---- checks before running ---- */

/* fallback.KEY=VALUE parameters belong to the fallback method (sal_explain_opts.fallback). */
static sal_status check_params(const sal_xctx *c, bool fallback) {
    bool has_inner = false;
    for (const sal_param_spec *p = c->meth->params; p->name; p++) has_inner |= !strcmp(p->name, "inner");
    for (int i = 0; i < c->nkv; i++) {
        if (has_inner && !strncmp(c->key[i], "inner.", 6)) continue;
        if (fallback && !strncmp(c->key[i], "fallback.", 9)) continue;
        bool known = false;
        for (const sal_param_spec *p = c->meth->params; p->name && !known; p++) known = !strcmp(p->name, c->key[i]);
        if (known) continue;
        char list[512] = "";
        for (const sal_param_spec *p = c->meth->params; p->name; p++) {
            size_t k = strlen(list);
            snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "", p->name);
        }
        return sal_fail(SAL_ERR_ARG, "method %s has no parameter '%s' (it takes: %s)", c->meth->name, c->key[i],
                        *list ? list : "none");
    }
    return SAL_OK;
}

/* Entries of p[0..n) that are not finite, in one vector pass (the index loop runs only on failure) */
SAL_CLONES int64_t count_nonfinite(const float *p, int64_t n) {
    int64_t bad = 0;
#pragma omp simd reduction(+ : bad)
    for (int64_t i = 0; i < n; i++) bad += !(fabsf(p[i]) <= FLT_MAX);
    return bad;
}

/* The least and the greatest of p[0..n), NaN skipped as by fmin (a comparison with NaN is false):
 * sixteen running bounds, which gcc and clang vectorize (a min/max reduction over selects clang
 * does not, NaN being possible) */
SAL_CLONES void bounds_of(const float *p, int64_t n, float *lo_out, float *hi_out) {
    float lo = INFINITY, hi = -INFINITY, lv[16], hv[16];
    for (int k = 0; k < 16; k++) lv[k] = INFINITY, hv[k] = -INFINITY;
    int64_t i0 = 0;
    for (; i0 + 16 <= n; i0 += 16)
#pragma omp simd
        for (int k = 0; k < 16; k++) {
            float v = p[i0 + k];
            lv[k] = v < lv[k] ? v : lv[k];
            hv[k] = v > hv[k] ? v : hv[k];
        }
    for (int64_t i = i0; i < n; i++) {
        lo = p[i] < lo ? p[i] : lo;
        hi = p[i] > hi ? p[i] : hi;
    }
    for (int k = 0; k < 16; k++) {
        lo = lv[k] < lo ? lv[k] : lo;
        hi = hv[k] > hi ? hv[k] : hi;
    }
    *lo_out = lo, *hi_out = hi;
}

static sal_status check_input(const sal_model *m, const sal_tensor *x) {
    if (m->ninput != 1)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s has %d inputs; attribution supports single-input models", m->path, m->ninput);
    if (x->dtype != SAL_F32 || x->ndim < 1 || x->dim[0] < 1) return sal_fail(SAL_ERR_ARG, "input must be a float32 batch");
    const float *p = sal_f32(x);
    const int64_t n = sal_tensor_numel(x);
    for (int64_t i = 0, bad = count_nonfinite(p, n); bad && i < n; i++)
        if (!isfinite(p[i]))
            return sal_fail(SAL_ERR_NUMERIC, "input has a non-finite value (%g) at flat index %lld", (double)p[i], (long long)i);
    return SAL_OK;
}

/* Range of the inputs: given, else of the data, else of x. */
static void input_range(sal_xctx *c, const sal_explain_opts *o) {
    if (o->data_lo != 0 || o->data_hi != 0) {
        c->lo = o->data_lo;
        c->hi = o->data_hi;
        return;
    }
    const sal_tensor *t = o->data ? o->data : c->x;
    float lo, hi;
    bounds_of(sal_f32(t), sal_tensor_numel(t), &lo, &hi);
    c->lo = lo;
    c->hi = hi > lo ? hi : (double)lo + 1;
}

/* Whether c's method (and the method it wraps) lets the session keep activations blocked. */
static bool plain_io(const sal_xctx *c) {
    if (c->meth->black_box) return true; /* forward passes only, read at the explained output */
    if (!c->meth->plain_io) return false;
    for (const sal_param_spec *p = c->meth->params; p->name; p++)
        if (!strcmp(p->name, "inner")) {
            const sal_method *in = sal_method_lookup(sal_param(c, "inner"));
            if (!in || !(in->plain_io || in->black_box)) return false;
            for (const sal_param_spec *q = in->params; q->name; q++)
                if (!strcmp(q->name, "inner")) return false; /* nested wrappers: not followed */
        }
    return true;
}

/* The default chunk of batched methods: as many rows as keep the activations and gradients of one
 * pass near 512 MiB, at most 64. Measured on the forward pass just made: a VGG16 image holds about
 * 120 MB of activations, so 64 integrated-gradient steps at once would need 15 GB; 2 rows read its
 * 500 MB of dense weights once for two (integrated gradients 7% faster than one row, 1.2 GB
 * resident in all); the MLP and the small CNN hold well under 1 MB and keep 64. Methods of forward
 * passes only take up to 256 rows while a chunk's activations stay within 8 MiB (the L3 cache's
 * share): the MLP's occlusion (16 KB a row) reads its dense weights once for 170 windows instead of
 * three times, 2.85 -> 2.55 ms; the small CNN (150 KB a row) keeps 64, as 256 rows ran slower. */
static int64_t auto_chunk(const sal_xctx *c) {
    const sal_model *m = c->m;
    double bytes = 0;
    for (int v = 0; v < m->nval; v++)
        if (m->val[v].kind != SAL_VAL_CONST && c->s->act[v].data)
            bytes += (double)sal_tensor_numel(&c->s->act[v]) * (double)sal_dtype_size(c->s->act[v].dtype);
    /* and as much again for the gradients, unless the method makes forward passes only */
    double per_row = (c->meth->black_box ? 1 : 2) * bytes / (double)(c->x->dim[0] > 0 ? c->x->dim[0] : 1);
    double k = per_row > 0 ? (512.0 * (1 << 20)) / per_row : 64, most = 64;
    if (c->meth->black_box && per_row > 0) most = fmin(256, fmax(64, (8.0 * (1 << 20)) / per_row));
    return k >= most ? (int64_t)most : k < 1 ? 1 : (int64_t)k;
}

int sal_method_needs_patterns(const char *name, int nparams, const char *const *params) {
    const sal_method *meth = name ? sal_method_lookup(name) : NULL;
    if (!meth || !meth->needs_patterns || nparams < 0 || nparams > 64) return 0;
    char keys[64][64];
    const char *key[64], *val[64];
    int n = 0;
    for (int i = 0; i < nparams; i++) { /* keys no method declares (too long, no '=') cannot matter */
        const char *eq = params[i] ? strchr(params[i], '=') : NULL;
        size_t k = eq ? (size_t)(eq - params[i]) : 0;
        if (!eq || k >= sizeof keys[0]) continue;
        memcpy(keys[n], params[i], k);
        keys[n][k] = '\0';
        key[n] = keys[n], val[n++] = eq + 1;
    }
    sal_xctx c = {.meth = meth, .nkv = n, .key = key, .val = val};
    return meth->needs_patterns(&c);
}

sal_status sal_explain(const sal_model *m, const sal_tensor *x, const sal_explain_opts *o, sal_explanation **out) {
    *out = NULL;
    const sal_method *meth = o->method ? sal_method_lookup(o->method) : NULL;
    if (!meth) return sal_fail(SAL_ERR_ARG, "unknown method '%s' (saliency methods lists them)", o->method ? o->method : "");
    SAL_TRY(check_input(m, x));
    sal_output_kind ok = sal_model_output_kind(m);
    sal_xctx c = {.m = m, .meth = meth, .x = x, .prob = o->prob != 0, .data = o->data,
                  .out_prob = ok == SAL_OUTPUT_SOFTMAX || ok == SAL_OUTPUT_SIGMOID,
                  .chunk = o->chunk > 0 ? o->chunk : 64, .patterns = o->patterns};
    int64_t N = x->dim[0];
    /* a batch of a larger input: its samples draw the streams of their places in the whole */
    uint64_t *ids = o->first > 0 ? sal_malloc((size_t)N * sizeof *ids) : NULL;
    if (o->first > 0 && !ids) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; ids && i < N; i++) ids[i] = (uint64_t)(o->first + i);
    c.stream = ids;
    /* split "key=value" parameters */
    char **kv = sal_calloc((size_t)o->nparams * 2 + 2, sizeof *kv);
    if (!kv) {
        sal_free(ids);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    sal_status st = SAL_OK;
    for (int i = 0; i < o->nparams && st == SAL_OK; i++) {
        const char *eq = strchr(o->params[i], '=');
        if (!eq || eq == o->params[i]) {
            st = sal_fail(SAL_ERR_ARG, "parameter '%s' is not of the form key=value", o->params[i]);
            break;
        }
        kv[2 * i] = sal_strdup(o->params[i]);
        if (!kv[2 * i]) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        else {
            kv[2 * i][eq - o->params[i]] = '\0';
            kv[2 * i + 1] = kv[2 * i] + (eq - o->params[i]) + 1;
        }
    }
    const char *keys[64], *vals[64];
    if (st == SAL_OK && o->nparams > 64) st = sal_fail(SAL_ERR_ARG, "too many parameters (at most 64)");
    for (int i = 0; st == SAL_OK && i < o->nparams; i++) keys[i] = kv[2 * i], vals[i] = kv[2 * i + 1];
    c.nkv = o->nparams;
    c.key = keys;
    c.val = vals;
    /* the fallback: a black-box method, with the fallback.KEY=VALUE parameters */
    const sal_method *fb = o->fallback ? sal_method_lookup(o->fallback) : NULL;
    const char *fkeys[64], *fvals[64];
    int nfb = 0;
    if (st == SAL_OK && o->fallback && (!fb || !fb->black_box)) {
        char list[256] = "";
        for (int i = 0; i < sal_method_count(); i++) {
            const sal_method *mm = sal_method_lookup(sal_method_name(i));
            size_t k = strlen(list);
            if (mm->black_box) snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "", mm->name);
        }
        st = sal_fail(SAL_ERR_ARG, "fallback '%s' must be a method that needs forward passes only: %s", o->fallback,
                      list);
    }
    for (int i = 0; st == SAL_OK && fb && i < o->nparams; i++)
        if (!strncmp(keys[i], "fallback.", 9)) fkeys[nfb] = keys[i] + 9, fvals[nfb++] = vals[i];
    if (st == SAL_OK) st = check_params(&c, fb != NULL);
    if (st == SAL_OK && fb) {
        sal_xctx f = {.meth = fb, .nkv = nfb, .key = fkeys, .val = fvals};
        st = check_params(&f, false);
    }
    sal_explanation *e = sal_calloc(1, sizeof *e);
    c.target = sal_calloc((size_t)N, sizeof *c.target);
    float *value = sal_calloc((size_t)N, sizeof *value);
    if (st == SAL_OK && (!e || !c.target || !value)) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK && o->session && o->session->m != m)
        st = sal_fail(SAL_ERR_ARG, "sal_explain: the session given belongs to another model");
    if (st == SAL_OK) {
        if (o->session) c.s = o->session;
        else st = sal_session_new(m, &c.s);
    }
    bool lay = c.s ? c.s->layouts : false, fuse = c.s ? c.s->fuse : false;
    unsigned char lean = c.s ? c.s->lean : SAL_LEAN_OFF;
    if (c.s) {
        bool pio = plain_io(&c);
        c.s->layouts = c.s->fuse = pio || meth->layer_io;
        c.s->lean = pio ? SAL_LEAN_GRAD : SAL_LEAN_OFF; /* a layer method reads its layer's values */
    }
    if (st == SAL_OK) st = sal_exec_forward(c.s, x);
    if (st == SAL_OK && o->chunk <= 0) c.chunk = auto_chunk(&c);
    if (st == SAL_OK) st = sal_exec_check_outputs(c.s); /* NaN logits would pick arbitrary targets */
    sal_tensor mask = {0};
    if (st == SAL_OK) st = sal_target_resolve(&c, o, &mask); /* on the model's own outputs */
    if (st == SAL_OK) {
        sal_tensor seed = {0};
        st = sal_target_seed(&c, &c.s->act[c.outv], c.target, &seed, value);
        sal_tensor_free(&seed);
    }
    bool ran = st == SAL_OK;
    if (ran) {
        input_range(&c, o);
        st = meth->run(&c);
        /* name the method once: parameter messages already start with "method NAME:" */
        char pre[160];
        snprintf(pre, sizeof pre, "method %s:", meth->name);
        if (st != SAL_OK && strncmp(sal_last_error(), pre, strlen(pre))) st = sal_wrap(st, "method %s", meth->name);
    }
    if (e) e->method = meth->name;
    /* a method that cannot run on this graph (a node without a gradient or without a rule of the
     * method) gives way to the fallback, which needs forward passes only */
    if (ran && st == SAL_ERR_UNSUPPORTED && fb && !meth->black_box) {
        snprintf(e->reason, sizeof e->reason, "%s", sal_last_error());
        e->replaced = meth->name;
        e->method = fb->name;
        c.meth = fb, c.nkv = nfb, c.key = fkeys, c.val = fvals;
        c.nmetric = 0, c.layer[0] = '\0';
        sal_tensor_free(&c.layer_out);
        st = fb->run(&c);
        char pre[160];
        snprintf(pre, sizeof pre, "method %s:", fb->name);
        if (st != SAL_OK && strncmp(sal_last_error(), pre, strlen(pre)))
            st = sal_wrap(st, "method %s (the fallback for %s)", fb->name, meth->name);
    }
    bool finite = true;
    if (st == SAL_OK) {
        finite = count_nonfinite(sal_f32(&c.out), sal_tensor_numel(&c.out)) == 0;
        if (!finite) st = sal_fail(SAL_ERR_NUMERIC, "method %s produced non-finite attributions", e->method);
    }
    if (st == SAL_OK) {
        e->map = c.out;
        e->layer_map = c.layer_out;
        memset(&c.out, 0, sizeof c.out);
        memset(&c.layer_out, 0, sizeof c.layer_out);
        e->n = N;
        e->targets = c.target;
        for (int64_t i = 0; i < N && c.region; i++) e->targets[i] = -1; /* no class */
        e->outputs = value;
        c.target = NULL;
        value = NULL;
        e->nmetric = c.nmetric;
        memcpy(e->mkey, c.mkey, sizeof e->mkey);
        memcpy(e->mval, c.mval, sizeof e->mval);
        st = make_json(&c, e, finite);
    }
    if (st == SAL_OK) {
        *out = e;
        e = NULL;
    }
    sal_explanation_free(e);
    sal_tensor_free(&mask);
    sal_tensor_free(&c.out);
    sal_tensor_free(&c.layer_out);
    sal_free(c.series);
    if (c.s && c.s == o->session) c.s->layouts = lay, c.s->fuse = fuse, c.s->lean = lean;
    if (c.s != o->session) sal_session_free(c.s);
    sal_free(c.target);
    sal_free(value);
    for (int i = 0; i < o->nparams; i++) sal_free(kv[2 * i]);
    sal_free(kv);
    sal_free(ids);
    return st;
}

/* ---- explanations in parts (batches, processes) ---- */

/* How a check over samples combines across parts (its name says what it is). */
typedef enum { JOIN_FIRST, JOIN_MAX, JOIN_MIN, JOIN_SUM, JOIN_MEAN } join_rule;

static join_rule join_rule_of(const char *key) {
    static const char *const sums[] = {"exact_samples", "underdetermined_samples", "counterfactual_raised",
                                       "counterfactual_checked", "rows_from_front"};
    static const char *const means[] = {"r2", "segments", "relevance_conservation", "counterfactual_mean_change"};
    size_t n = strlen(key);
    if (!strncmp(key, "inner.", 6)) return JOIN_MAX; /* SmoothGrad keeps its inner method's worst */
    if ((n > 6 && !strcmp(key + n - 6, "_delta")) || (n > 4 && !strcmp(key + n - 4, "_rel")) ||
        (n > 6 && !strcmp(key + n - 6, "_worst")))
        return JOIN_MAX;
    if (n > 4 && !strcmp(key + n - 4, "_min")) return JOIN_MIN;
    for (size_t i = 0; i < sizeof sums / sizeof *sums; i++)
        if (!strcmp(key, sums[i])) return JOIN_SUM;
    for (size_t i = 0; i < sizeof means / sizeof *means; i++)
        if (!strcmp(key, means[i])) return JOIN_MEAN;
    return JOIN_FIRST; /* a property of the model or the method, the same for every part */
}

/* parts[k]'s rows of a per-sample tensor into out (rows of parts before it first). */
static sal_status join_tensor(const sal_explanation *const *parts, int n, bool layer, sal_tensor *out) {
    const sal_tensor *t0 = layer ? &parts[0]->layer_map : &parts[0]->map;
    if (!t0->data) return SAL_OK;
    int64_t dim[SAL_MAX_DIMS], rows = 0;
    memcpy(dim, t0->dim, sizeof dim);
    for (int k = 0; k < n; k++) {
        const sal_tensor *t = layer ? &parts[k]->layer_map : &parts[k]->map;
        if (!t->data || t->ndim != t0->ndim || sal_row_size(t) != sal_row_size(t0))
            return sal_fail(SAL_ERR_SHAPE, "explanations to join differ in their maps' shapes");
        rows += t->dim[0];
    }
    dim[0] = rows;
    SAL_TRY(sal_tensor_alloc(out, t0->dtype, t0->ndim, dim));
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        const sal_tensor *t = layer ? &parts[k]->layer_map : &parts[k]->map;
        size_t bytes = (size_t)sal_tensor_numel(t) * sal_dtype_size(t->dtype);
        memcpy((char *)out->data + off, t->data, bytes);
        off += bytes;
    }
    return SAL_OK;
}

sal_status sal_explanation_join(const sal_explanation *const *parts, int n, sal_explanation **out) {
    *out = NULL;
    if (n < 1) return sal_fail(SAL_ERR_ARG, "sal_explanation_join: no explanations to join");
    const sal_explanation *p0 = parts[0];
    int64_t N = 0;
    for (int k = 0; k < n; k++) {
        const sal_explanation *p = parts[k];
        if (strcmp(p->head, p0->head) || strcmp(p->mid, p0->mid) || p->nmetric != p0->nmetric || !p->series != !p0->series)
            return sal_fail(SAL_ERR_ARG, "sal_explanation_join: the explanations come from different settings");
        for (int i = 0; i < p->nmetric; i++)
            if (strcmp(p->mkey[i], p0->mkey[i])) return sal_fail(SAL_ERR_ARG, "sal_explanation_join: different checks");
        N += p->n;
    }
    sal_explanation *e = sal_calloc(1, sizeof *e);
    if (!e) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    e->n = N;
    e->method = p0->method, e->replaced = p0->replaced;
    memcpy(e->reason, p0->reason, sizeof e->reason);
    memcpy(e->series_key, p0->series_key, sizeof e->series_key);
    e->head = sal_strdup(p0->head);
    e->mid = sal_strdup(p0->mid);
    e->targets = sal_malloc((size_t)(N > 0 ? N : 1) * sizeof *e->targets);
    e->outputs = sal_malloc((size_t)(N > 0 ? N : 1) * sizeof *e->outputs);
    e->series = p0->series ? sal_malloc((size_t)(N > 0 ? N : 1) * sizeof *e->series) : NULL;
    sal_status st = e->head && e->mid && e->targets && e->outputs && (e->series || !p0->series)
                        ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = join_tensor(parts, n, false, &e->map);
    if (st == SAL_OK) st = join_tensor(parts, n, true, &e->layer_map);
    e->finite = true;
    e->nmetric = p0->nmetric;
    memcpy(e->mkey, p0->mkey, sizeof e->mkey);
    for (int k = 0, i0 = 0; st == SAL_OK && k < n; i0 += (int)parts[k]->n, k++) {
        const sal_explanation *p = parts[k];
        memcpy(e->targets + i0, p->targets, (size_t)p->n * sizeof *e->targets);
        memcpy(e->outputs + i0, p->outputs, (size_t)p->n * sizeof *e->outputs);
        if (p->series) memcpy(e->series + i0, p->series, (size_t)p->n * sizeof *e->series);
        e->finite &= p->finite;
    }
    for (int i = 0; st == SAL_OK && i < e->nmetric; i++) {
        join_rule r = join_rule_of(e->mkey[i]);
        double v = p0->mval[i], w = 0, sum = 0;
        for (int k = 0; k < n; k++) {
            double x = parts[k]->mval[i], wk = (double)parts[k]->n;
            if (r == JOIN_MAX) v = fmax(v, x);
            else if (r == JOIN_MIN) v = fmin(v, x);
            else if (r == JOIN_SUM) sum += x;
            else if (r == JOIN_MEAN && isfinite(x)) sum += x * wk, w += wk;
        }
        e->mval[i] = r == JOIN_SUM ? sum : r == JOIN_MEAN ? (w > 0 ? sum / w : NAN) : v;
    }
    if (st != SAL_OK) {
        sal_explanation_free(e);
        return st;
    }
    *out = e;
    return SAL_OK;
}

/* ---- an explanation as bytes ---- */

typedef struct {
    char method[64], replaced[64];
    int64_t n, head, mid, nmetric, series, finite;
    int64_t ndim, dim[SAL_MAX_DIMS], lndim, ldim[SAL_MAX_DIMS];
} pack_hdr;

static void put(char **q, const void *p, size_t n) {
    if (n) memcpy(*q, p, n);
    *q += n;
}

sal_status sal_explanation_pack(const sal_explanation *e, void **bytes, size_t *size) {
    pack_hdr h = {.n = e->n, .head = (int64_t)strlen(e->head), .mid = (int64_t)strlen(e->mid), .nmetric = e->nmetric,
                  .series = e->series != NULL, .finite = e->finite, .ndim = e->map.ndim, .lndim = e->layer_map.data ? e->layer_map.ndim : -1};
    snprintf(h.method, sizeof h.method, "%s", e->method ? e->method : "");
    snprintf(h.replaced, sizeof h.replaced, "%s", e->replaced ? e->replaced : "");
    memcpy(h.dim, e->map.dim, sizeof h.dim);
    memcpy(h.ldim, e->layer_map.dim, sizeof h.ldim);
    size_t nmap = (size_t)sal_tensor_numel(&e->map) * sizeof(float);
    size_t nlay = e->layer_map.data ? (size_t)sal_tensor_numel(&e->layer_map) * sizeof(float) : 0;
    size_t n = sizeof h + (size_t)h.head + (size_t)h.mid + sizeof e->reason + sizeof e->series_key + sizeof e->mkey +
               sizeof e->mval + (size_t)e->n * (sizeof *e->targets + sizeof *e->outputs + (e->series ? sizeof *e->series : 0)) +
               nmap + nlay;
    char *b = malloc(n), *q = b; /* the caller frees with free() */
    if (!b) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    put(&q, &h, sizeof h);
    put(&q, e->head, (size_t)h.head);
    put(&q, e->mid, (size_t)h.mid);
    put(&q, e->reason, sizeof e->reason);
    put(&q, e->series_key, sizeof e->series_key);
    put(&q, e->mkey, sizeof e->mkey);
    put(&q, e->mval, sizeof e->mval);
    put(&q, e->targets, (size_t)e->n * sizeof *e->targets);
    put(&q, e->outputs, (size_t)e->n * sizeof *e->outputs);
    if (e->series) put(&q, e->series, (size_t)e->n * sizeof *e->series);
    put(&q, e->map.data, nmap);
    if (nlay) put(&q, e->layer_map.data, nlay);
    *bytes = b;
    *size = n;
    return SAL_OK;
}

/* The next n bytes of the packed explanation, or NULL when it is shorter. */
static const char *take(const char **q, const char *end, size_t n) {
    if ((size_t)(end - *q) < n) return NULL;
    const char *p = *q;
    *q += n;
    return p;
}

sal_status sal_explanation_unpack(const void *bytes, size_t size, sal_explanation **out) {
    *out = NULL;
    const char *q = bytes, *end = q + size, *p;
    pack_hdr h;
    if (!(p = take(&q, end, sizeof h))) return sal_fail(SAL_ERR_FORMAT, "a packed explanation is truncated");
    memcpy(&h, p, sizeof h);
    if (h.n < 0 || h.head < 0 || h.mid < 0 || h.nmetric < 0 || h.nmetric > SAL_MAX_METRICS || h.ndim < 1 ||
        h.ndim > SAL_MAX_DIMS || h.lndim > SAL_MAX_DIMS || h.head > (int64_t)size || h.mid > (int64_t)size)
        return sal_fail(SAL_ERR_FORMAT, "a packed explanation is malformed");
    h.method[sizeof h.method - 1] = h.replaced[sizeof h.replaced - 1] = '\0';
    const sal_method *mm = sal_method_lookup(h.method), *mr = *h.replaced ? sal_method_lookup(h.replaced) : NULL;
    if (!mm || (*h.replaced && !mr)) return sal_fail(SAL_ERR_FORMAT, "a packed explanation names an unknown method");
    sal_explanation *e = sal_calloc(1, sizeof *e);
    if (!e) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    e->n = h.n, e->nmetric = (int)h.nmetric, e->finite = h.finite != 0, e->method = mm->name, e->replaced = mr ? mr->name : NULL;
    sal_status st = SAL_OK;
    e->head = sal_malloc((size_t)h.head + 1);
    e->mid = sal_malloc((size_t)h.mid + 1);
    e->targets = sal_malloc((size_t)(h.n > 0 ? h.n : 1) * sizeof *e->targets);
    e->outputs = sal_malloc((size_t)(h.n > 0 ? h.n : 1) * sizeof *e->outputs);
    if (h.series) e->series = sal_malloc((size_t)(h.n > 0 ? h.n : 1) * sizeof *e->series);
    if (!e->head || !e->mid || !e->targets || !e->outputs || (h.series && !e->series)) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    struct { void *dst; size_t n; } f[] = {
        {e->head, (size_t)h.head}, {e->mid, (size_t)h.mid}, {e->reason, sizeof e->reason},
        {e->series_key, sizeof e->series_key}, {e->mkey, sizeof e->mkey}, {e->mval, sizeof e->mval},
        {e->targets, (size_t)h.n * sizeof *e->targets}, {e->outputs, (size_t)h.n * sizeof *e->outputs},
        {e->series, h.series ? (size_t)h.n * sizeof *e->series : 0},
    };
    for (size_t i = 0; st == SAL_OK && i < sizeof f / sizeof *f; i++) {
        if (!(p = take(&q, end, f[i].n))) st = sal_fail(SAL_ERR_FORMAT, "a packed explanation is truncated");
        else if (f[i].n) memcpy(f[i].dst, p, f[i].n);
    }
    if (st == SAL_OK) {
        e->head[h.head] = e->mid[h.mid] = '\0';
        e->reason[sizeof e->reason - 1] = e->series_key[sizeof e->series_key - 1] = '\0';
        for (int i = 0; i < SAL_MAX_METRICS; i++) e->mkey[i][sizeof e->mkey[i] - 1] = '\0';
        st = sal_tensor_alloc(&e->map, SAL_F32, (int)h.ndim, h.dim);
    }
    if (st == SAL_OK && !(p = take(&q, end, (size_t)sal_tensor_numel(&e->map) * sizeof(float))))
        st = sal_fail(SAL_ERR_FORMAT, "a packed explanation is truncated");
    if (st == SAL_OK) memcpy(e->map.data, p, (size_t)sal_tensor_numel(&e->map) * sizeof(float));
    if (st == SAL_OK && h.lndim > 0) {
        st = sal_tensor_alloc(&e->layer_map, SAL_F32, (int)h.lndim, h.ldim);
        if (st == SAL_OK && !(p = take(&q, end, (size_t)sal_tensor_numel(&e->layer_map) * sizeof(float))))
            st = sal_fail(SAL_ERR_FORMAT, "a packed explanation is truncated");
        if (st == SAL_OK) memcpy(e->layer_map.data, p, (size_t)sal_tensor_numel(&e->layer_map) * sizeof(float));
    }
    if (st != SAL_OK) {
        sal_explanation_free(e);
        return st;
    }
    *out = e;
    return SAL_OK;
}
