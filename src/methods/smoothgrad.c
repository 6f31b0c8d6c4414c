/* SmoothGrad (Smilkov et al. 2017) around any other method, with its SmoothGrad^2 and VarGrad
 * (Adebayo et al. 2018) variants. The inner method runs unchanged, through its own run(), on a
 * sub-context whose input is a chunk of noisy copies of the samples. */
#include "method.h"
#include "sampling.h"
#include <math.h>

enum { VAR_MEAN, VAR_SQUARED, VAR_VARGRAD };
static const char *const k_variants[] = {"mean", "squared", "vargrad", NULL};

/* Running sums of the inner attributions and their squares, per element of every sample. */
typedef struct {
    double *s, *s2;
    int64_t row;
} moments;

static void moments_free(moments *m) {
    sal_free(m->s);
    sal_free(m->s2);
    m->s = m->s2 = NULL;
}

/* Adds the rows of a (B, ...) map: its row r is variant (r0 + r) % samples of sample (r0 + r) / samples. */
static sal_status moments_add(moments *m, int64_t N, const sal_tensor *a, int64_t r0, int64_t samples) {
    int64_t row = sal_row_size(a);
    if (!m->s) {
        m->row = row;
        m->s = sal_calloc((size_t)(N * row), sizeof *m->s);
        m->s2 = sal_calloc((size_t)(N * row), sizeof *m->s2);
        if (!m->s || !m->s2) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    if (row != m->row) return sal_fail(SAL_ERR_INTERNAL, "inner method changed its map size between chunks");
    const float *p = sal_f32(a);
    for (int64_t r = 0; r < a->dim[0]; r++) {
        int64_t i = (r0 + r) / samples;
        for (int64_t e = 0; e < row; e++) {
            double v = p[r * row + e];
            m->s[i * row + e] += v;
            m->s2[i * row + e] += v * v;
        }
    }
    return SAL_OK;
}

/* mean: E[a]; squared (SmoothGrad^2): E[a^2]; vargrad: E[a^2] - E[a]^2, clipped at 0 against
 * rounding. Written into out, shaped as `shape` with N rows. */
static sal_status moments_finish(const moments *m, int variant, int64_t N, int64_t samples, const sal_tensor *shape,
                                 sal_tensor *out) {
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, shape->dim, sizeof dim);
    dim[0] = N;
    SAL_TRY(sal_tensor_alloc(out, SAL_F32, shape->ndim, dim));
    float *o = sal_f32(out);
    for (int64_t e = 0; e < N * m->row; e++) {
        double mean = m->s[e] / (double)samples, sq = m->s2[e] / (double)samples;
        o[e] = (float)(variant == VAR_MEAN ? mean : variant == VAR_SQUARED ? sq : fmax(0, sq - mean * mean));
    }
    return SAL_OK;
}

/* The inner.* options must be parameters of the inner method (or, for a nested wrapper, inner.*
 * again); checked here so a typo fails before any work. */
static sal_status check_inner(const sal_xctx *c, const sal_method *in, int n, const char *const *key) {
    bool nested = false;
    for (const sal_param_spec *p = in->params; p->name; p++) nested |= !strcmp(p->name, "inner");
    for (int i = 0; i < n; i++) {
        bool known = nested && !strncmp(key[i], "inner.", 6);
        for (const sal_param_spec *p = in->params; p->name && !known; p++) known = !strcmp(p->name, key[i]);
        if (known) continue;
        char list[512] = "";
        for (const sal_param_spec *p = in->params; p->name; p++) {
            size_t k = strlen(list);
            snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "", p->name);
        }
        return sal_fail(SAL_ERR_ARG, "method %s: inner method %s has no parameter '%s' (it takes: %s)", c->meth->name,
                        in->name, key[i], *list ? list : "none");
    }
    return SAL_OK;
}

/* Reports the inner method's figures as "inner.KEY", the worst (largest) over all chunks. */
static void fold_metrics(sal_xctx *c, const sal_xctx *sub) {
    for (int k = 0; k < sub->nmetric; k++) {
        char key[48];
        snprintf(key, sizeof key, "inner.%.40s", sub->mkey[k]);
        double v = sub->mval[k];
        for (int i = 0; i < c->nmetric; i++)
            if (!strcmp(c->mkey[i], key) && !(v > c->mval[i])) v = c->mval[i];
        sal_metric(c, key, v);
    }
}

/* One SmoothGrad run: the inner method's sub-context and the running moments of its maps. */
typedef struct {
    sal_xctx *c, sub;
    const sal_method *in;
    const float *x; /* (N, row) */
    int64_t N, row, S;
    double sigma;
    moments mo, ml;
} sg_job;

/* Copy k of sample i: x_i + eps, eps ~ N(0, sigma^2) elementwise from the pair's stream r. */
static sal_status sg_make(void *u, int64_t i, int64_t k, float *row, sal_rng *r) {
    (void)k;
    const sg_job *j = u;
    const float *src = j->x + i * j->row;
    for (int64_t e = 0; e < j->row; e++) row[e] = j->sigma > 0 ? src[e] + (float)(j->sigma * sal_rng_normal(r)) : src[e];
    return SAL_OK;
}

/* The inner method, through its own run(), on the chunk of noisy copies. */
static sal_status sg_pass(void *u, sal_chunk *ch) {
    sg_job *j = u;
    j->sub.x = ch->x;
    j->sub.target = ch->target;
    j->sub.stream = ch->stream;
    j->sub.nmetric = 0;
    char pre[80];
    snprintf(pre, sizeof pre, "method %s:", j->in->name);
    sal_status st = j->in->run(&j->sub);
    sal_free(j->sub.series); /* an inner method's per-sample check describes noisy copies: dropped */
    j->sub.series = NULL;
    if (st != SAL_OK)
        return strncmp(sal_last_error(), pre, strlen(pre)) ? sal_wrap(st, "method %s", j->in->name) : st;
    if (!sal_tensor_same_shape(&j->sub.out, ch->x))
        return sal_fail(SAL_ERR_INTERNAL, "method %s: its map is not shaped as its input", j->in->name);
    return SAL_OK;
}

static sal_status sg_after(void *u, const sal_chunk *ch) {
    sg_job *j = u;
    SAL_TRY(moments_add(&j->mo, j->N, &j->sub.out, ch->r0, j->S));
    if (j->sub.layer_out.data) { /* layer methods: smooth the layer map too */
        if (j->sub.layer_out.dim[0] != ch->n)
            return sal_fail(SAL_ERR_INTERNAL, "method %s: its layer map has a wrong batch size", j->in->name);
        SAL_TRY(moments_add(&j->ml, j->N, &j->sub.layer_out, ch->r0, j->S));
        memcpy(j->c->layer, j->sub.layer, sizeof j->c->layer);
    }
    fold_metrics(j->c, &j->sub);
    return SAL_OK;
}

/* attribution = combine_{k=1..S} A_inner(x + eps_k), eps_k ~ N(0, (noise (hi - lo))^2), where
 * combine is the mean, the mean of squares or the variance. The noisy copies run in chunks
 * through sal_run_batched, each chunk as the inner method's input. */
static sal_status run_smoothgrad(sal_xctx *c) {
    long samples;
    double noise;
    int variant;
    uint64_t seed = 0;
    SAL_TRY(sal_param_int(c, "samples", 1, 1000000, &samples));
    SAL_TRY(sal_param_float(c, "noise", 0, 100, &noise));
    SAL_TRY(sal_param_choice(c, "variant", k_variants, &variant));
    SAL_TRY(sal_parse_seed(c->meth->name, sal_param(c, "seed"), &seed));
    const char *iname = sal_param(c, "inner");
    const sal_method *in = sal_method_lookup(iname);
    if (!in)
        return sal_fail(SAL_ERR_ARG, "method %s: parameter inner=%s is not a method (saliency methods lists them)",
                        c->meth->name, iname);
    const sal_tensor *x = c->x;
    const char **skey = sal_calloc((size_t)c->nkv + 1, sizeof *skey);
    const char **sval = sal_calloc((size_t)c->nkv + 1, sizeof *sval);
    sg_job j = {.c = c, .in = in, .x = sal_f32(x), .N = x->dim[0], .row = sal_row_size(x), .S = samples,
                .sigma = noise * (c->hi - c->lo),
                .sub = {.m = c->m, .meth = in, .s = c->s, .prob = c->prob, .out_prob = c->out_prob, .data = c->data,
                        .lo = c->lo, .hi = c->hi, .chunk = c->chunk, .key = skey, .val = sval, .outv = c->outv,
                        .region = c->region, .mask = c->mask, .mask_rows = c->mask_rows, .mask_row = c->mask_row}};
    sal_status st = skey && sval ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->nkv && st == SAL_OK; i++)
        if (!strncmp(c->key[i], "inner.", 6)) skey[j.sub.nkv] = c->key[i] + 6, sval[j.sub.nkv++] = c->val[i];
    if (st == SAL_OK) st = check_inner(c, in, j.sub.nkv, skey);
    sal_batched b = {.per_sample = samples, .make = sg_make, .seeded = true, .seed = seed, .pass = sg_pass,
                     .after = sg_after, .u = &j};
    if (st == SAL_OK) st = sal_run_batched(c, &b);
    if (st == SAL_OK) st = moments_finish(&j.mo, variant, j.N, j.S, x, &c->out);
    if (st == SAL_OK && j.ml.s) st = moments_finish(&j.ml, variant, j.N, j.S, &j.sub.layer_out, &c->layer_out);
    moments_free(&j.mo);
    moments_free(&j.ml);
    sal_tensor_free(&j.sub.out);
    sal_tensor_free(&j.sub.layer_out);
    sal_free(skey);
    sal_free(sval);
    return st;
}

static const sal_param_spec k_sg_params[] = {
    {"inner", "gradient", "the method to smooth (any method; its options as inner.KEY=VALUE)"},
    {"samples", "50", "noisy copies of each sample"},
    {"noise", "0.15", "standard deviation of the Gaussian noise, as a fraction of the input range (hi - lo)"},
    {"variant", "mean", "mean (SmoothGrad), squared (SmoothGrad^2: mean of squares) or vargrad (variance)"},
    {"seed", "0", "random seed"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_smoothgrad = {
    .name = "smoothgrad",
    .summary = "average of a method over noisy copies of the input (Smilkov et al. 2017; VarGrad: Adebayo et al. 2018)",
    .params = k_sg_params,
    .run = run_smoothgrad,
    .plain_io = true,
};
