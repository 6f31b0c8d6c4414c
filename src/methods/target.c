/* What is explained: which output, and which value of it per sample. A class target (max, min or
 * given) picks one score of a (batch, classes) output; a region target sums a dense output
 * (segmentation or detection maps), every element or weighted by a mask, so methods seed the
 * backward pass with the mask (or ones) instead of a one-hot row. */
#include "method.h"
#include <math.h>

int sal_explained(const sal_xctx *c, const sal_model *m) {
    /* a context made by hand, its outv left 0, explains the first output (value 0 is no node's) */
    int v = c->m && c->outv > 0 && c->outv < c->m->nval && c->m->val[c->outv].kind == SAL_VAL_NODE ? c->outv : -1;
    if (v < 0 || m != c->m) v = v < 0 ? -1 : sal_graph_find(m, c->m->val[v].name);
    return v >= 0 ? v : m->output[0];
}

static const char *out_name(const sal_xctx *c) { return c->m->val[sal_explained(c, c->m)].name; }

/* The output named o->output_name, else the first; fails listing the outputs. */
static sal_status pick_output(const sal_model *m, const char *name, int *out) {
    *out = m->output[0];
    if (!name) return SAL_OK;
    char list[400] = "";
    for (int i = 0; i < m->noutput; i++) {
        if (!strcmp(m->val[m->output[i]].name, name)) {
            *out = m->output[i];
            return SAL_OK;
        }
        size_t k = strlen(list);
        snprintf(list + k, sizeof list - k, "%s'%s'", k ? ", " : "", m->val[m->output[i]].name);
    }
    return sal_fail(SAL_ERR_ARG, "output name '%s' is not an output of %s (outputs: %s)", name, m->path, list);
}

/* Expands mask M, which broadcasts to y (B, ...) by NumPy's rules, to (rows, row) floats: rows is
 * B when M has y's rank and a batch axis of B > 1, else 1 (one mask for every sample). */
static sal_status expand_mask(const sal_xctx *c, const sal_tensor *M, const sal_tensor *y, sal_tensor *out,
                              int64_t *rows) {
    char a[160], b[160];
    if (M->dtype != SAL_F32 && M->dtype != SAL_I64)
        return sal_fail(SAL_ERR_ARG, "target mask must hold float32 (or int64) weights");
    bool fits = M->ndim >= 1 && M->ndim <= y->ndim;
    for (int d = 0; fits && d < M->ndim; d++) {
        int64_t md = M->dim[M->ndim - 1 - d], yd = y->dim[y->ndim - 1 - d];
        fits = md == yd || md == 1;
    }
    if (!fits)
        return sal_fail(SAL_ERR_SHAPE,
                        "target mask of shape %s does not fit output '%s' of shape %s: it must broadcast to it (a "
                        "sample's shape, the whole output, or its trailing axes)",
                        sal_shape_str(M->ndim, M->dim, a, sizeof a), out_name(c), sal_shape_str(y->ndim, y->dim, b, sizeof b));
    int64_t B = y->dim[0], row = sal_row_size(y);
    *rows = M->ndim == y->ndim && M->dim[0] == B && B > 1 ? B : 1;
    SAL_TRY(sal_tensor_alloc(out, SAL_F32, 2, (int64_t[]){*rows, row}));
    /* strides of M over y's axes (0 where M broadcasts) */
    int64_t st[SAL_MAX_DIMS] = {0}, s = 1;
    for (int d = M->ndim - 1; d >= 0; d--) {
        int yd = y->ndim - M->ndim + d;
        st[yd] = M->dim[d] == 1 ? 0 : s;
        s *= M->dim[d];
    }
    int64_t idx[SAL_MAX_DIMS] = {0};
    float *o = sal_f32(out);
    double total = 0;
    for (int64_t e = 0, n = *rows * row; e < n; e++) {
        int64_t off = 0;
        for (int d = 0; d < y->ndim; d++) off += idx[d] * st[d];
        o[e] = M->dtype == SAL_F32 ? sal_f32(M)[off] : (float)((const int64_t *)M->data)[off];
        if (!isfinite(o[e])) return sal_fail(SAL_ERR_NUMERIC, "target mask has a non-finite weight");
        total += fabs(o[e]);
        for (int d = y->ndim - 1; d >= 0; d--) {
            if (++idx[d] < y->dim[d]) break;
            idx[d] = 0;
        }
    }
    if (total == 0) return sal_fail(SAL_ERR_ARG, "target mask is zero everywhere: it selects nothing of output '%s'", out_name(c));
    return SAL_OK;
}

sal_status sal_target_resolve(sal_xctx *c, const sal_explain_opts *o, sal_tensor *mask) {
    const sal_model *m = c->m;
    SAL_TRY(pick_output(m, o->output_name, &c->outv));
    const sal_tensor *y = &c->s->act[c->outv];
    int64_t N = c->x->dim[0];
    char b[160];
    if (y->dtype != SAL_F32 || y->ndim < 1 || y->dim[0] != N)
        return sal_fail(SAL_ERR_SHAPE, "output '%s' of %s has shape %s: explaining needs a float output with the batch "
                        "(%lld) as its first axis", out_name(c), m->path, sal_shape_str(y->ndim, y->dim, b, sizeof b),
                        (long long)N);
    if (o->target_mask && o->target != SAL_TARGET_MASK)
        return sal_fail(SAL_ERR_ARG, "target mask given, but the target mode is not SAL_TARGET_MASK");
    c->region = o->target == SAL_TARGET_SUM || o->target == SAL_TARGET_MASK;
    if (c->region) {
        if (c->prob)
            return sal_fail(SAL_ERR_ARG, "target %s: probabilities are of classes; a region target explains the "
                            "output's values (drop the probability output)", o->target == SAL_TARGET_SUM ? "sum" : "mask");
        if (o->target == SAL_TARGET_MASK) {
            if (!o->target_mask) return sal_fail(SAL_ERR_ARG, "target mask: none given (sal_explain_opts.target_mask)");
            SAL_TRY(expand_mask(c, o->target_mask, y, mask, &c->mask_rows));
            c->mask = sal_f32(mask);
        }
        c->mask_row = sal_row_size(y);
        for (int64_t i = 0; i < N; i++) c->target[i] = i;
        return SAL_OK;
    }
    if (o->target != SAL_TARGET_MAX && o->target != SAL_TARGET_MIN && o->target != SAL_TARGET_INDEX)
        return sal_fail(SAL_ERR_ARG, "target mode %d is unknown", (int)o->target);
    if (y->ndim != 2)
        return sal_fail(SAL_ERR_SHAPE, "target %s: output '%s' of %s has shape %s, not (batch, classes); explain the "
                        "sum over it or over a mask of it instead (--target sum, --target-mask)",
                        o->target == SAL_TARGET_MAX ? "max" : o->target == SAL_TARGET_MIN ? "min" : "class",
                        out_name(c), m->path, sal_shape_str(y->ndim, y->dim, b, sizeof b));
    int64_t K = y->dim[1];
    if (o->target == SAL_TARGET_INDEX && (!o->classes || (o->nclasses != 1 && o->nclasses != N)))
        return sal_fail(SAL_ERR_ARG, "target: give one class, or one per sample (%lld)", (long long)N);
    for (int64_t i = 0; i < N; i++) {
        const float *z = sal_f32(y) + i * K;
        int64_t best = 0;
        if (o->target == SAL_TARGET_INDEX) {
            best = o->classes[o->nclasses == 1 ? 0 : i];
            if (best < 0 || best >= K)
                return sal_fail(SAL_ERR_ARG, "target class %lld is out of range of output '%s' of shape %s (classes 0 to %lld)",
                                (long long)best, out_name(c), sal_shape_str(y->ndim, y->dim, b, sizeof b),
                                (long long)K - 1);
        } else {
            for (int64_t k = 1; k < K; k++)
                if (o->target == SAL_TARGET_MAX ? z[k] > z[best] : z[k] < z[best]) best = k;
        }
        c->target[i] = best;
    }
    return SAL_OK;
}

sal_status sal_region_seed(const sal_xctx *c, const sal_tensor *y, const int64_t *target, sal_tensor *seed,
                           float *value) {
    int64_t B = y->ndim ? y->dim[0] : 0, row = sal_row_size(y);
    if (row != c->mask_row) {
        char b[160];
        return sal_fail(SAL_ERR_SHAPE, "output '%s' has shape %s here but %lld elements per sample when the target "
                        "was set", out_name(c), sal_shape_str(y->ndim, y->dim, b, sizeof b), (long long)c->mask_row);
    }
    SAL_TRY(sal_tensor_alloc(seed, SAL_F32, y->ndim, y->dim));
    for (int64_t r = 0; r < B; r++) {
        float *g = sal_f32(seed) + r * row;
        const float *z = sal_f32(y) + r * row;
        const float *w = c->mask ? c->mask + (c->mask_rows > 1 ? target[r] : 0) * row : NULL;
        double v = 0;
        for (int64_t e = 0; e < row; e++) {
            g[e] = w ? w[e] : 1.0f;
            v += (double)g[e] * z[e];
        }
        if (value) value[r] = (float)v;
    }
    return SAL_OK;
}

sal_status sal_relevance_seed(const sal_xctx *c, const sal_tensor *y, const int64_t *target, sal_tensor *seed,
                              float *value) {
    if (c->region) {
        /* every output element starts with its own value, weighted: the relevances sum to the target */
        SAL_TRY(sal_region_seed(c, y, target, seed, value));
        float *g = sal_f32(seed);
        const float *z = sal_f32(y);
        for (int64_t e = 0, n = sal_tensor_numel(y); e < n; e++) g[e] *= z[e];
        return SAL_OK;
    }
    SAL_TRY(sal_target_seed(c, y, target, seed, NULL)); /* checks the shape and the targets */
    int64_t B = y->dim[0], K = y->dim[1];
    float *g = sal_f32(seed);
    for (int64_t b = 0; b < B; b++) { /* the explained value at the target unit, nothing elsewhere */
        const float *z = sal_f32(y) + b * K;
        int64_t t = target[b];
        double v = z[t];
        if (c->prob && !c->out_prob) { /* the probability (the model's own when it gives one), on the target's logit */
            double mx = z[0], sum = 0;
            for (int64_t k = 1; k < K; k++) mx = fmax(mx, z[k]);
            for (int64_t k = 0; k < K; k++) sum += exp((double)z[k] - mx);
            v = exp((double)z[t] - mx) / sum;
        }
        for (int64_t k = 0; k < K; k++) g[b * K + k] = 0.0f;
        g[b * K + t] = (float)v;
        if (value) value[b] = (float)v;
    }
    return SAL_OK;
}
