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

/* attribution = combine_{k=1..S} A_inner(x + eps_k), eps_k ~ N(0, (noise (hi - lo))^2), where
 * combine is the mean, the mean of squares or the variance. */
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
    int64_t N = x->dim[0], row = sal_row_size(x), S = samples, total = N * S;
    int64_t chunk = c->chunk > 0 ? c->chunk : 64;
    const char **skey = sal_calloc((size_t)c->nkv + 1, sizeof *skey);
    const char **sval = sal_calloc((size_t)c->nkv + 1, sizeof *sval);
    sal_xctx sub = {.m = c->m, .meth = in, .s = c->s, .prob = c->prob, .data = c->data, .lo = c->lo, .hi = c->hi,
                    .chunk = c->chunk, .key = skey, .val = sval};
    sal_tensor xb = {0};
    sub.x = &xb;
    sub.target = sal_malloc((size_t)chunk * sizeof *sub.target);
    moments mo = {0}, ml = {0};
    sal_status st = skey && sval && sub.target ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->nkv && st == SAL_OK; i++)
        if (!strncmp(c->key[i], "inner.", 6)) skey[sub.nkv] = c->key[i] + 6, sval[sub.nkv++] = c->val[i];
    if (st == SAL_OK) st = check_inner(c, in, sub.nkv, skey);
    double sigma = noise * (c->hi - c->lo);
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, x->dim, sizeof dim);
    char pre[80];
    snprintf(pre, sizeof pre, "method %s:", in->name);
    for (int64_t r0 = 0; r0 < total && st == SAL_OK; r0 += chunk) {
        int64_t B = total - r0 < chunk ? total - r0 : chunk;
        dim[0] = B;
        if ((st = sal_tensor_alloc(&xb, SAL_F32, x->ndim, dim)) != SAL_OK) break;
        for (int64_t r = 0; r < B; r++) {
            int64_t i = (r0 + r) / S, k = (r0 + r) % S;
            const float *src = sal_f32(x) + i * row;
            float *dst = sal_f32(&xb) + r * row;
            sal_rng g;
            sal_rng_stream(&g, seed, i, k, S);
            for (int64_t e = 0; e < row; e++)
                dst[e] = sigma > 0 ? src[e] + (float)(sigma * sal_rng_normal(&g)) : src[e];
            sub.target[r] = c->target[i];
        }
        sub.nmetric = 0;
        if ((st = in->run(&sub)) != SAL_OK) {
            if (strncmp(sal_last_error(), pre, strlen(pre))) st = sal_wrap(st, "method %s", in->name);
            break;
        }
        if (!sal_tensor_same_shape(&sub.out, &xb)) {
            st = sal_fail(SAL_ERR_INTERNAL, "method %s: its map is not shaped as its input", in->name);
            break;
        }
        st = moments_add(&mo, N, &sub.out, r0, S);
        if (st == SAL_OK && sub.layer_out.data) { /* layer methods: smooth the layer map too */
            if (sub.layer_out.dim[0] != B)
                st = sal_fail(SAL_ERR_INTERNAL, "method %s: its layer map has a wrong batch size", in->name);
            else
                st = moments_add(&ml, N, &sub.layer_out, r0, S);
            memcpy(c->layer, sub.layer, sizeof c->layer);
        }
        fold_metrics(c, &sub);
    }
    if (st == SAL_OK) st = moments_finish(&mo, variant, N, S, x, &c->out);
    if (st == SAL_OK && ml.s) st = moments_finish(&ml, variant, N, S, &sub.layer_out, &c->layer_out);
    moments_free(&mo);
    moments_free(&ml);
    sal_tensor_free(&xb);
    sal_tensor_free(&sub.out);
    sal_tensor_free(&sub.layer_out);
    sal_free(sub.target);
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
};
