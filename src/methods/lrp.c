/* Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019, "Layer-wise relevance
 * propagation: an overview") and Deep Taylor decomposition (Montavon et al. 2017).
 *
 * Relevance flows backward through the walker's gradient buffers, seeded with the explained output
 * at the target unit. Every node gets a rule from its op type:
 *   linear (Gemm, MatMul, Conv)   an LRP rule, computed through ops/linear_ops.h: the modified
 *                                 weights are applied forward for the denominators and transposed
 *                                 for the redistribution, the same code for dense and convolution;
 *   monotone activations          relevance passes through unchanged (ReLU, LeakyReLU, Sigmoid,
 *                                 Tanh, Clip; a Softmax that gives the model's output);
 *   sums (Add, Sub, pooling by averages, ReduceSum/Mean, Mul or Div by a constant, an unfolded
 *   BatchNormalization)           the z-rule: input k gets x_k * d z / d x_k * R / z, i.e. its share
 *                                 of the sum; constants (biases) absorb theirs; but a shift or
 *                                 scaling of the raw input by constants (an input normalization)
 *                                 passes relevance through, and the layer after it is the first;
 *   max pooling                   all to the window's maximum (its gradient), or in proportion to
 *                                 the window's values (maxpool=proportional);
 *   shape and selection ops       relevance is routed by their gradient (a permutation, copy or
 *                                 selection, so nothing is created or lost beyond dropped entries).
 * Anything else is refused naming the node. BatchNormalization following a Conv or Gemm is folded
 * into it first (sal_canonize, graph/rewrite.c), since rules like z+ or gamma are not invariant to that split. */
#include "lrp.h"
#include <fnmatch.h>
#include <math.h>

/* ---- rules as text ---- */

static const struct {
    const char *name;
    sal_lrp_kind kind;
    int nparam;
    double a, b; /* defaults */
} k_rule_names[] = {
    {"0", SAL_LRP_ZERO, 0, 0, 0},
    {"zero", SAL_LRP_ZERO, 0, 0, 0},
    {"z", SAL_LRP_ZERO, 0, 0, 0},
    {"epsilon", SAL_LRP_EPSILON, 1, 0.25, 0},
    {"eps", SAL_LRP_EPSILON, 1, 0.25, 0},
    {"gamma", SAL_LRP_GAMMA, 1, 0.25, 0},
    {"alpha_beta", SAL_LRP_ALPHA_BETA, 2, 2, 1},
    {"alphabeta", SAL_LRP_ALPHA_BETA, 2, 2, 1},
    {"alpha1beta0", SAL_LRP_ALPHA_BETA, 0, 1, 0},
    {"alpha2beta1", SAL_LRP_ALPHA_BETA, 0, 2, 1},
    {"zplus", SAL_LRP_ALPHA_BETA, 0, 1, 0},
    {"z+", SAL_LRP_ALPHA_BETA, 0, 1, 0},
    {"zb", SAL_LRP_ZB, 2, NAN, NAN},
    {"box", SAL_LRP_ZB, 2, NAN, NAN},
    {"wsquare", SAL_LRP_WSQUARE, 0, 0, 0},
    {"w2", SAL_LRP_WSQUARE, 0, 0, 0},
    {"flat", SAL_LRP_FLAT, 0, 0, 0},
};

static sal_status check_rule(const char *spec, const sal_lrp_rule *r) {
    switch (r->kind) {
    case SAL_LRP_EPSILON:
        if (!(r->a >= 0)) return sal_fail(SAL_ERR_ARG, "LRP rule '%s': epsilon must be >= 0", spec);
        break;
    case SAL_LRP_GAMMA:
        if (!(r->a >= 0)) return sal_fail(SAL_ERR_ARG, "LRP rule '%s': gamma must be >= 0", spec);
        break;
    case SAL_LRP_ALPHA_BETA:
        /* conservation needs alpha - beta = 1 (Bach et al. 2015) */
        if (!(r->b >= 0) || fabs(r->a - r->b - 1) > 1e-9)
            return sal_fail(SAL_ERR_ARG, "LRP rule '%s': alpha-beta needs beta >= 0 and alpha - beta = 1 (got alpha %g, beta %g)",
                            spec, r->a, r->b);
        break;
    case SAL_LRP_ZB:
        if (!isnan(r->a) && !(r->a < r->b))
            return sal_fail(SAL_ERR_ARG, "LRP rule '%s': zb needs low < high (got %g, %g)", spec, r->a, r->b);
        break;
    default: break;
    }
    return SAL_OK;
}

sal_status sal_lrp_rule_parse(const char *spec, sal_lrp_rule *r) {
    char name[32];
    size_t n = strcspn(spec, ":");
    if (n >= sizeof name) n = sizeof name - 1;
    memcpy(name, spec, n);
    name[n] = '\0';
    for (size_t i = 0; i < sizeof k_rule_names / sizeof k_rule_names[0]; i++) {
        if (strcmp(name, k_rule_names[i].name)) continue;
        *r = (sal_lrp_rule){k_rule_names[i].kind, k_rule_names[i].a, k_rule_names[i].b};
        const char *p = spec + strcspn(spec, ":");
        double v[2];
        int got = 0;
        while (*p == ':') {
            char *end;
            if (got == k_rule_names[i].nparam)
                return sal_fail(SAL_ERR_ARG, "LRP rule '%s': %s takes %d parameter%s", spec, name,
                                k_rule_names[i].nparam, k_rule_names[i].nparam == 1 ? "" : "s");
            v[got] = strtod(p + 1, &end);
            if (end == p + 1 || (*end && *end != ':') || !isfinite(v[got]))
                return sal_fail(SAL_ERR_ARG, "LRP rule '%s': parameter %d is not a number", spec, got + 1);
            got++;
            p = end;
        }
        if (got >= 1) r->a = v[0];
        if (got >= 2) r->b = v[1];
        if (r->kind == SAL_LRP_ALPHA_BETA && got == 1) r->b = r->a - 1; /* "alpha_beta:3" = alpha 3, beta 2 */
        if (r->kind == SAL_LRP_ZB && got == 1)
            return sal_fail(SAL_ERR_ARG, "LRP rule '%s': zb takes both bounds (zb:LOW:HIGH) or none", spec);
        return check_rule(spec, r);
    }
    return sal_fail(SAL_ERR_ARG,
                    "unknown LRP rule '%s' (rules: 0, epsilon[:EPS], gamma[:G], alpha_beta[:A[:B]], alpha1beta0, "
                    "alpha2beta1, zplus, zb[:LOW:HIGH], wsquare, flat)",
                    spec);
}

const char *sal_lrp_rule_str(const sal_lrp_rule *r, char *buf, size_t n) {
    switch (r->kind) {
    case SAL_LRP_ZERO: snprintf(buf, n, "0"); break;
    case SAL_LRP_EPSILON: snprintf(buf, n, "epsilon:%g", r->a); break;
    case SAL_LRP_GAMMA: snprintf(buf, n, "gamma:%g", r->a); break;
    case SAL_LRP_ALPHA_BETA: snprintf(buf, n, "alpha_beta:%g:%g", r->a, r->b); break;
    case SAL_LRP_ZB:
        if (isnan(r->a)) snprintf(buf, n, "zb");
        else snprintf(buf, n, "zb:%g:%g", r->a, r->b);
        break;
    case SAL_LRP_WSQUARE: snprintf(buf, n, "wsquare"); break;
    case SAL_LRP_FLAT: snprintf(buf, n, "flat"); break;
    }
    return buf;
}

/* ---- the plan: a rule per node ---- */

typedef enum {
    NK_ROUTE = 0, NK_PASS, NK_ZRULE, NK_AFFINE_IN, NK_POOLPROP, NK_LIN, NK_REJECT,
    NK_NORM, NK_PROD, NK_SMAX, NK_NONE, /* lrp_transformer.c's rules; NK_NONE: no relevance reaches it */
} node_kind;

#define NTMP 8

struct sal_lrp_plan {
    const sal_model *m;
    const char *method;
    sal_rule_fn *fn;
    sal_lrp_rule *rule;
    sal_lin_roles *roles;
    unsigned char *kind;
    sal_lrp_flow flow;
    int attention;
    double stab, lo, hi;
    bool zennit;
    /* scratch, reused across nodes and calls: modified weights, inputs and bias of up to two
     * terms, a denominator, the scaled relevance, a transposed product, per-input temporaries */
    sal_tensor w[2], x[2], bias, z, zt, s, tmp, tin[NTMP];
};

static int node_index(const sal_opctx *c) { return (int)(c->n - c->g->node); }

/* o = coef * r / (z + eps sign(z)) over n elements; whether all are finite. Compiled for AVX-512
 * and AVX2 too, where the selects and the division vectorize (the baseline's do not). In single
 * precision, as Zennit and Captum compute: a double division took 0.5 ns an element, 12 us of the
 * small CNN's first layer. */
SAL_CLONES bool stab_rows(float *o, const float *r, const float *z, double eps, double coef, int64_t n) {
    int bad = 0;
    const float e = (float)eps, k = (float)coef;
#pragma omp simd reduction(| : bad)
    for (int64_t i = 0; i < n; i++) {
        o[i] = k * r[i] / (z[i] + (z[i] >= 0 ? e : -e));
        bad |= !isfinite(o[i]);
    }
    return !bad;
}

/* Shapes t as like, its buffer reused when large enough, without zeros: every element is written
 * next. */
static sal_status shaped(sal_tensor *t, const sal_tensor *like) {
    return sal_tensor_alloc_raw(t, SAL_F32, like->ndim, like->dim);
}

/* s = coef * R / (z + eps sign(z)), sign(0) = +1; fails naming the node on a non-finite result */
static sal_status stabilized(const sal_node *n, const sal_tensor *R, const sal_tensor *z, double eps, double coef,
                             sal_tensor *s) {
    SAL_TRY(shaped(s, z));
    if (!stab_rows(sal_f32(s), sal_f32(R), sal_f32(z), eps, coef, sal_tensor_numel(z)))
        return sal_node_fail(n, SAL_ERR_NUMERIC, "relevance divided by its denominator is not finite "
                             "(raise the stabilizer or epsilon)");
    return SAL_OK;
}

/* sal_tensor_alloc zeroes reused buffers too */
static sal_status zeroed(sal_tensor *t, const sal_tensor *like) { return sal_tensor_alloc(t, SAL_F32, like->ndim, like->dim); }

/* out += a * b elementwise */
static void add_product(sal_tensor *out, const sal_tensor *a, const sal_tensor *b) {
    float *restrict o = sal_f32(out);
    const float *restrict x = sal_f32(a), *restrict y = sal_f32(b);
    int64_t n = sal_tensor_numel(out);
#pragma omp simd
    for (int64_t i = 0; i < n; i++) o[i] += x[i] * y[i];
}

/* ---- linear nodes ---- */

typedef enum { W_ID, W_POS, W_NEG, W_GAMMA, W_GAMMA_NEG, W_SQUARE, W_ONE } wmod;
typedef enum { X_ID, X_POS, X_NEG, X_CONST } xmod;
typedef struct {
    wmod w;
    xmod x;
    float v; /* X_CONST: x' = v */
} term;
/* z = sum of the terms' W' x' (+ the bias b' when bias); R_in += coef * x' (W'^T (R / z)) per term,
 * only at outputs of the given sign (Zennit's gamma) when sign != 0 */
typedef struct {
    term t[2];
    int nt;
    bool bias;
    wmod bmod; /* b' */
    double coef;
    int sign;
} group;

/* One loop per modification, so that each vectorizes: they run over whole weight tensors per call. */
static void mod_values(const float *restrict w, float *restrict o, int64_t n, wmod m, float gamma) {
    switch (m) {
    case W_ID: memcpy(o, w, sizeof(float) * (size_t)n); break;
    case W_POS:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = w[i] > 0.0f ? w[i] : 0.0f;
        break;
    case W_NEG:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = w[i] < 0.0f ? w[i] : 0.0f;
        break;
    case W_GAMMA:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = w[i] + gamma * (w[i] > 0.0f ? w[i] : 0.0f);
        break;
    case W_GAMMA_NEG:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = w[i] + gamma * (w[i] < 0.0f ? w[i] : 0.0f);
        break;
    case W_SQUARE:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = w[i] * w[i];
        break;
    case W_ONE:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = 1.0f;
        break;
    }
}

/* The name of W' = m(W) for the linear ops' caches (sal_opctx.wkey): the modification and gamma. */
static uint64_t wkey_of(wmod m, double gamma) {
    float g = m == W_GAMMA || m == W_GAMMA_NEG ? (float)gamma : 0.0f;
    uint32_t bits;
    memcpy(&bits, &g, sizeof bits);
    return (uint64_t)bits << 8 | (uint64_t)(m + 1);
}

/* The modified weights m(W) of input k of c's node: W itself, the copy the session keeps across
 * calls (sal_derived_get: small weights), or a copy in buf. */
static sal_status mod_weight(const sal_opctx *c, int k, wmod m, double gamma, sal_tensor *buf, const sal_tensor **out) {
    const sal_tensor *W = c->in[k];
    if (m == W_ID) {
        *out = W;
        return SAL_OK;
    }
    bool ready;
    sal_tensor *kept = sal_derived_get(c, k, wkey_of(m, gamma), &ready);
    if (kept && ready) {
        *out = kept;
        return SAL_OK;
    }
    sal_tensor *o = kept ? kept : buf;
    if (!kept) SAL_TRY(shaped(buf, W));
    mod_values(sal_f32(W), sal_f32(o), sal_tensor_numel(W), m, (float)gamma);
    *out = o;
    return SAL_OK;
}

/* The modified inputs of a term: x itself (also x+ of an x without negatives), or a copy in buf. */
static sal_status mod_input(const sal_tensor *x, const term *t, bool has_neg, sal_tensor *buf, const sal_tensor **out) {
    if (t->x == X_ID || (t->x == X_POS && !has_neg)) {
        *out = x;
        return SAL_OK;
    }
    SAL_TRY(shaped(buf, x));
    const float *restrict a = sal_f32(x);
    float *restrict o = sal_f32(buf);
    int64_t n = sal_tensor_numel(x);
    float v = t->v;
    switch (t->x) {
    case X_ID: break;
    case X_POS:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = a[i] > 0.0f ? a[i] : 0.0f;
        break;
    case X_NEG:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = a[i] < 0.0f ? a[i] : 0.0f;
        break;
    case X_CONST:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] = v;
        break;
    }
    *out = buf;
    return SAL_OK;
}

static sal_status run_group(sal_lrp_plan *p, sal_opctx *c, const sal_lin_roles *r, const group *gp, double gamma,
                            double eps, bool has_pos, bool has_neg) {
    const sal_node *n = c->n;
    const sal_tensor *x = c->in[r->x], *R = c->dout[0];
    const sal_tensor *b = r->b >= 0 ? c->in[r->b] : NULL, *wt[2], *xt[2];
    sal_tensor *out = c->din[r->x];
    bool use[2];
    int first = -1;
    for (int k = 0; k < gp->nt; k++) { /* a term over inputs of one sign that x lacks adds nothing */
        use[k] = !(gp->t[k].x == X_POS && !has_pos) && !(gp->t[k].x == X_NEG && !has_neg);
        if (use[k] && first < 0) first = k;
    }
    if (first < 0) return SAL_OK; /* no contribution at all: the relevance has nowhere to go */
    const sal_tensor *bias = NULL;
    if (gp->bias && b) SAL_TRY(mod_weight(c, r->b, gp->bmod, gamma, &p->bias, &bias));
    for (int k = 0; k < gp->nt; k++) {
        if (!use[k]) continue;
        SAL_TRY(mod_weight(c, r->w, gp->t[k].w, gamma, &p->w[k], &wt[k]));
        SAL_TRY(mod_input(x, &gp->t[k], has_neg, &p->x[k], &xt[k]));
        if (k == first) {
            SAL_TRY(sal_lin_apply(c->g, n, r, xt[k], wt[k], wkey_of(gp->t[k].w, gamma), bias, &p->z, c->ws));
        } else {
            SAL_TRY(sal_lin_apply(c->g, n, r, xt[k], wt[k], wkey_of(gp->t[k].w, gamma), NULL, &p->zt, c->ws));
            float *restrict z = sal_f32(&p->z);
            const float *restrict zt = sal_f32(&p->zt);
            int64_t m = sal_tensor_numel(&p->z);
#pragma omp simd
            for (int64_t i = 0; i < m; i++) z[i] += zt[i];
        }
    }
    SAL_TRY(stabilized(n, R, &p->z, eps, gp->coef, &p->s));
    if (gp->sign) {
        float *restrict sv = sal_f32(&p->s);
        const float *restrict y = sal_f32(c->out[0]);
        for (int64_t i = 0, m = sal_tensor_numel(&p->s); i < m; i++)
            if (!(gp->sign > 0 ? y[i] > 0.0f : y[i] < 0.0f)) sv[i] = 0.0f;
    }
    for (int k = 0; k < gp->nt; k++) {
        if (!use[k]) continue;
        SAL_TRY(sal_lin_transposed_set(c->g, n, r, x, wt[k], wkey_of(gp->t[k].w, gamma), &p->s, &p->tmp, c->ws));
        add_product(out, xt[k], &p->tmp);
    }
    return SAL_OK;
}

/* gamma_nonneg's loops, compiled for AVX-512 and AVX2 too: the baseline's do not vectorize their
 * selects on the output's sign, and its branches took 2.3 ns an element, 29 us of the small CNN's
 * 32 -> 64 layer. z = y + g P where y > 0, y + g (y - P) where y < 0 (P in z on entry). */
SAL_CLONES void gamma_denominators(float *z, const float *y, float g, int64_t m) {
#pragma omp simd
    for (int64_t i = 0; i < m; i++) {
        float zi = z[i], d = y[i] - zi;
        z[i] = y[i] + g * (y[i] < 0.0f ? d : zi);
    }
}

/* u = s> + (1 + g) s<, v = g (s> - s<), with s in v on entry */
SAL_CLONES void gamma_factors(float *u, float *v, const float *y, float g, int64_t m) {
#pragma omp simd
    for (int64_t i = 0; i < m; i++) {
        float si = y[i] > 0.0f || y[i] < 0.0f ? v[i] : 0.0f;
        float neg_u = (1.0f + g) * si, neg_v = -g * si, pos_v = g * si;
        u[i] = y[i] < 0.0f ? neg_u : si;
        v[i] = y[i] < 0.0f ? neg_v : pos_v;
    }
}

/* Zennit's Gamma (the output's sign picks the favoured contributions) on inputs without negatives,
 * the usual case after a ReLU, in three products where its two groups take four: with y = W x + b
 * the node's output and P = W+ x + b+, the groups' denominators are z = y + gamma P where y > 0 and
 * z = y + gamma (y - P) where y < 0 (W- = W - W+), and with s = R / z there (0 where y = 0)
 *   R_in = x (W^T (s> + (1 + gamma) s<) + gamma W+^T (s> - s<)),
 * s> and s< being s where y > 0 and where y < 0. */
static sal_status gamma_nonneg(sal_lrp_plan *p, sal_opctx *c, const sal_lin_roles *r, double gamma, double eps) {
    const sal_tensor *x = c->in[r->x], *W = c->in[r->w], *b = r->b >= 0 ? c->in[r->b] : NULL, *wp, *bp = NULL;
    SAL_TRY(mod_weight(c, r->w, W_POS, 0, &p->w[0], &wp));
    if (b) SAL_TRY(mod_weight(c, r->b, W_POS, 0, &p->bias, &bp));
    SAL_TRY(sal_lin_apply(c->g, c->n, r, x, wp, wkey_of(W_POS, 0), bp, &p->z, c->ws));
    const float *y = sal_f32(c->out[0]);
    float *z = sal_f32(&p->z), g = (float)gamma;
    int64_t m = sal_tensor_numel(&p->z);
    gamma_denominators(z, y, g, m);
    SAL_TRY(stabilized(c->n, c->dout[0], &p->z, eps, 1.0, &p->s));
    gamma_factors(z, sal_f32(&p->s), y, g, m); /* z is spent: its buffer takes W's factor */
    SAL_TRY(sal_lin_transposed_set(c->g, c->n, r, x, W, 0, &p->z, &p->tmp, c->ws));
    SAL_TRY(sal_lin_transposed(c->g, c->n, r, x, wp, wkey_of(W_POS, 0), &p->s, &p->tmp, c->ws));
    add_product(c->din[r->x], x, &p->tmp);
    return SAL_OK;
}

/* zb's denominator by linearity: with y = L(x) + c the node's output (L linear, L+ and L- its parts of
 * W+ and W-, c the bias term),
 *   z = L+(x - low) + L-(x - high) = y - K,  K = c + low L+(1) + high L-(1) = lin(1, low W+ + high W-, b),
 * 1 being ones over x (the padding stays zero, as in x - low padded). K depends on the weights and
 * x's shape alone: kept across calls (sal_derived_map), so no product runs for z, where its two
 * terms took two (20 us of the small CNN's LRP epsilon-gamma-box). Then
 *   R_in = (x - low) W+^T s + (x - high) W-^T s,  s = R / z. */
static sal_status zb_rule(sal_lrp_plan *p, sal_opctx *c, const sal_lin_roles *r, double lo, double hi, double eps) {
    const sal_tensor *x = c->in[r->x], *W = c->in[r->w], *b = r->b >= 0 ? c->in[r->b] : NULL, *wt, *one;
    const float flo = (float)lo, fhi = (float)hi;
    uint32_t blo, bhi;
    memcpy(&blo, &flo, sizeof blo);
    memcpy(&bhi, &fhi, sizeof bhi);
    bool ready;
    sal_tensor *K = sal_derived_map(c, r->w, (uint64_t)blo << 32 | bhi, x, c->out[0], &ready);
    if (!K || !ready) {
        SAL_TRY(shaped(&p->w[0], W));
        const float *w = sal_f32(W);
        float *v = sal_f32(&p->w[0]);
        const int64_t nw = sal_tensor_numel(W);
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) v[i] = (w[i] > 0.0f ? flo : fhi) * w[i];
        SAL_TRY(mod_input(x, &(term){W_ID, X_CONST, 1.0f}, true, &p->x[0], &one));
        SAL_TRY(sal_lin_apply(c->g, c->n, r, one, &p->w[0], 0, b, &p->zt, c->ws));
        if (K) memcpy(K->data, p->zt.data, sizeof(float) * (size_t)sal_tensor_numel(K));
        else K = &p->zt;
    }
    SAL_TRY(shaped(&p->z, c->out[0]));
    float *restrict z = sal_f32(&p->z);
    const float *restrict y = sal_f32(c->out[0]), *restrict k = sal_f32(K);
    const int64_t nz = sal_tensor_numel(&p->z);
#pragma omp simd
    for (int64_t i = 0; i < nz; i++) z[i] = y[i] - k[i];
    SAL_TRY(stabilized(c->n, c->dout[0], &p->z, eps, 1.0, &p->s));
    float *restrict o = sal_f32(c->din[r->x]);
    const float *restrict xv = sal_f32(x);
    const int64_t nx = sal_tensor_numel(x);
    for (int t = 0; t < 2; t++) {
        const wmod m = t ? W_NEG : W_POS;
        const float sh = t ? fhi : flo;
        SAL_TRY(mod_weight(c, r->w, m, 0, &p->w[t], &wt));
        SAL_TRY(sal_lin_transposed_set(c->g, c->n, r, x, wt, wkey_of(m, 0), &p->s, &p->tmp, c->ws));
        const float *restrict g = sal_f32(&p->tmp);
#pragma omp simd
        for (int64_t i = 0; i < nx; i++) o[i] += (xv[i] - sh) * g[i];
    }
    return SAL_OK;
}

/* Whether x has positive and negative entries. Counts, so that the loop vectorizes: the flags'
 * `|=` compiled to a scalar loop of 1.3 ns an element, 8 us of the small CNN's eps-plus. */
static void signs(const float *x, int64_t n, bool *pos, bool *neg) {
    int64_t np = 0, nn = 0;
#pragma omp simd reduction(+ : np, nn)
    for (int64_t k = 0; k < n; k++) np += x[k] > 0.0f, nn += x[k] < 0.0f;
    *pos = np > 0, *neg = nn > 0;
}

static sal_status rule_lin(sal_opctx *c, void *user) {
    sal_lrp_plan *p = user;
    int i = node_index(c);
    const sal_lin_roles *r = &p->roles[i];
    const sal_lrp_rule *rl = &p->rule[i];
    sal_tensor *out = c->din[r->x];
    if (!out || !c->dout[0]) return SAL_OK;
    const sal_tensor *x = c->in[r->x];
    double eps = rl->kind == SAL_LRP_EPSILON && rl->a > 0 ? rl->a : p->stab;
    if (rl->kind == SAL_LRP_ZERO || rl->kind == SAL_LRP_EPSILON) {
        /* the denominator is the node's own output: no forward pass needed */
        SAL_TRY(stabilized(c->n, c->dout[0], c->out[0], eps, 1.0, &p->s));
        SAL_TRY(sal_lin_transposed_set(c->g, c->n, r, x, c->in[r->w], 0, &p->s, &p->tmp, c->ws));
        add_product(out, x, &p->tmp);
        return SAL_OK;
    }
    bool has_pos, has_neg;
    signs(sal_f32(x), sal_tensor_numel(x), &has_pos, &has_neg);
    group g[2];
    int ng = 1;
    memset(g, 0, sizeof g);
    switch (rl->kind) {
    case SAL_LRP_GAMMA:
        if (p->zennit && !has_neg) return has_pos ? gamma_nonneg(p, c, r, rl->a, eps) : SAL_OK;
        if (p->zennit) { /* Zennit's Gamma: outputs > 0 favour positive contributions, outputs < 0 negative ones */
            g[0] = (group){{{W_GAMMA, X_POS, 0}, {W_GAMMA_NEG, X_NEG, 0}}, 2, true, W_GAMMA, 1, 1};
            g[1] = (group){{{W_GAMMA_NEG, X_POS, 0}, {W_GAMMA, X_NEG, 0}}, 2, true, W_GAMMA_NEG, 1, -1};
            ng = 2;
        } else {
            g[0] = (group){{{W_GAMMA, X_ID, 0}}, 1, true, W_GAMMA, 1, 0};
        }
        break;
    case SAL_LRP_ALPHA_BETA:
        /* (x w)+ = x+ w+ + x- w-, (x w)- = x+ w- + x- w+; Zennit adds b+ to the first, b- to the second */
        g[0] = (group){{{W_POS, X_POS, 0}, {W_NEG, X_NEG, 0}}, 2, p->zennit, W_POS, rl->a, 0};
        g[1] = (group){{{W_NEG, X_POS, 0}, {W_POS, X_NEG, 0}}, 2, p->zennit, W_NEG, -rl->b, 0};
        ng = rl->b > 0 ? 2 : 1;
        break;
    case SAL_LRP_ZB: return zb_rule(p, c, r, isnan(rl->a) ? p->lo : rl->a, isnan(rl->a) ? p->hi : rl->b, eps);
    case SAL_LRP_WSQUARE: g[0] = (group){{{W_SQUARE, X_CONST, 1}}, 1, false, W_ID, 1, 0}; break;
    case SAL_LRP_FLAT: g[0] = (group){{{W_ONE, X_CONST, 1}}, 1, false, W_ID, 1, 0}; break;
    default: return sal_node_fail(c->n, SAL_ERR_INTERNAL, "unexpected LRP rule %d", (int)rl->kind);
    }
    for (int k = 0; k < ng; k++)
        SAL_TRY(run_group(p, c, r, &g[k], rl->kind == SAL_LRP_GAMMA ? rl->a : 0, eps, has_pos, has_neg));
    return SAL_OK;
}

/* ---- other nodes ---- */

/* The share of each varying input k of a node z = f(x) that is linear in what varies:
 * R_k = x_k * (d z / d x_k)^T (R / z), from the op's own backward on R / z. */
static sal_status share_masked(sal_lrp_plan *p, sal_opctx *c, const sal_op *op, const sal_tensor *z, unsigned mask,
                               const double *coef) {
    if (c->n->nin > NTMP || c->n->nout > NTMP) return sal_node_fail(c->n, SAL_ERR_INTERNAL, "too many inputs");
    SAL_TRY(stabilized(c->n, c->dout[0], z, p->stab, 1.0, &p->s));
    sal_tensor *din[NTMP] = {0}, *dout[NTMP] = {0};
    dout[0] = &p->s;
    for (int k = 0; k < c->n->nin; k++)
        if (c->din[k] && (mask >> k & 1)) {
            SAL_TRY(zeroed(&p->tin[k], c->in[k]));
            din[k] = &p->tin[k];
        }
    sal_opctx c2 = *c;
    c2.din = din;
    c2.dout = dout;
    if (!op->backward) return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "has no gradient");
    SAL_TRY(op->backward(&c2));
    for (int k = 0; k < c->n->nin; k++) {
        if (!din[k]) continue;
        if (coef && coef[k] != 1) {
            float *t = sal_f32(&p->tin[k]);
            for (int64_t e = 0, n = sal_tensor_numel(&p->tin[k]); e < n; e++) t[e] *= (float)coef[k];
        }
        add_product(c->din[k], c->in[k], &p->tin[k]);
    }
    return SAL_OK;
}

static sal_status share_by_backward(sal_lrp_plan *p, sal_opctx *c, const sal_op *op, const sal_tensor *z) {
    return share_masked(p, c, op, z, ~0u, NULL);
}

static sal_status rule_zrule(sal_opctx *c, void *user) {
    sal_lrp_plan *p = user;
    if (!c->dout[0]) return SAL_OK;
    if (!sal_node_linear_in(c->n, sal_din_mask(c)))
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED,
                             "%s: more than one operand depends on the input (a product), which no LRP rule covers",
                             p->method);
    return share_by_backward(p, c, c->n->op, c->out[0]);
}

/* An input normalization (x - mean) / std before the first layer: an elementwise bijection of the
 * input, so each input element keeps its value's relevance; the z-rule would hand part of it to the
 * constants. A broadcast that enlarges the input falls back to the z-rule. */
static sal_status rule_affine_in(sal_opctx *c, void *user) {
    for (int k = 0; k < c->n->nin; k++)
        if (c->din[k] && c->dout[0] && !sal_tensor_same_shape(c->din[k], c->dout[0])) return rule_zrule(c, user);
    for (int k = 0; k < c->n->nin; k++)
        if (c->din[k] && c->dout[0]) {
            float *d = sal_f32(c->din[k]);
            const float *r = sal_f32(c->dout[0]);
            for (int64_t i = 0, n = sal_tensor_numel(c->din[k]); i < n; i++) d[i] += r[i];
        }
    return SAL_OK;
}

/* Max pooling in proportion to the window's values: the z-rule of sum pooling over the same
 * windows. AveragePool's backward on a MaxPool node computes exactly that, because both ops share
 * their attributes (pool.c's pool_p; MaxPool's count_include_pad is always off, so the average
 * counts the taps inside the input, as the maximum does). */
static sal_status rule_poolprop(sal_opctx *c, void *user) {
    sal_lrp_plan *p = user;
    if (!c->dout[0] || !c->din[0]) return SAL_OK;
    const sal_op *avg = sal_op_get(sal_node_is(c->n, SAL_OP_MaxPool) ? SAL_OP_AveragePool : SAL_OP_GlobalAveragePool);
    sal_tensor *out[NTMP] = {&p->z};
    sal_opctx c2 = *c;
    c2.out = out;
    SAL_TRY(avg->infer(&c2));
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, p->z.dim, sizeof dim);
    SAL_TRY(sal_tensor_alloc(&p->z, SAL_F32, p->z.ndim, dim));
    SAL_TRY(avg->forward(&c2));
    return share_by_backward(p, c, avg, &p->z);
}

static sal_status rule_reject(sal_opctx *c, void *user) {
    sal_lrp_plan *p = user;
    return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED,
                         "%s has no rule for %s (LRP has rules for Gemm, MatMul, Conv, ConvTranspose, activations, "
                         "sums, pooling, normalizations, softmax attention, products and shape ops)",
                         p->method, c->n->op_type);
}

/* ---- products, gates, attention, normalizations (see lrp_transformer.c) ---- */

/* Nothing reaches the node but the zeros of operands held constant downstream. */
static sal_status rule_none(sal_opctx *c, void *user) {
    (void)c, (void)user;
    return SAL_OK;
}

static sal_status rule_norm(sal_opctx *c, void *user) {
    const sal_lrp_plan *p = user;
    return sal_lrp_norm(c, p->stab);
}

/* The z-rule of a product with the held operands constant; the k operands that vary share each
 * term equally (AttnLRP's uniform rule), a bias that varies keeps its own share. */
static sal_status rule_prod(sal_opctx *c, void *user) {
    sal_lrp_plan *p = user;
    if (!c->dout[0]) return SAL_OK;
    const sal_op *op = c->n->op;
    unsigned held = p->flow.held[node_index(c)], want = sal_din_mask(c) & ~held;
    double coef[NTMP];
    int k = 0;
    for (int j = 0; j < c->n->nin && j < NTMP; j++) k += (want >> j) & (op->lin_in >> j) & 1;
    for (int j = 0; j < c->n->nin; j++) {
        if (!(want >> j & 1)) continue;
        if (!((op->lin_in | op->bias_in) >> j & 1))
            return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "%s: input %d depends on the input and the node is not "
                                 "linear in it, which no LRP rule covers", p->method, j);
        if (j < NTMP) coef[j] = op->lin_in >> j & 1 ? 1.0 / (k ? k : 1) : 1.0;
    }
    return share_masked(p, c, op, c->out[0], want, coef);
}

/* AttnLRP's softmax rule, R_i = x_i (R_i - s_i sum_j R_j): the z-rule form x * J^T (R / s). */
static sal_status rule_smax(sal_opctx *c, void *user) {
    sal_lrp_plan *p = user;
    if (!c->dout[0] || !c->din[0]) return SAL_OK;
    return share_by_backward(p, c, c->n->op, c->out[0]);
}

/* ---- building a plan ---- */

static bool match_one(const char *pat, const sal_node *n, bool first) {
    if (!strcmp(pat, "@input")) return first;
    if (!strcmp(pat, "@conv")) return sal_node_is(n, SAL_OP_Conv);
    if (!strcmp(pat, "@dense")) return !sal_node_is(n, SAL_OP_Conv);
    return fnmatch(pat, n->name, 0) == 0 || fnmatch(pat, n->op_type, 0) == 0;
}

/* Whether entry "PAT[,PAT...]=RULE" matches n; *rule gets its rule. */
static sal_status entry_parse(const char *entry, char *pats, size_t np, sal_lrp_rule *rule) {
    const char *eq = strchr(entry, '=');
    if (!eq || eq == entry || !eq[1])
        return sal_fail(SAL_ERR_ARG, "rule entry '%s' is not NODE_OR_PATTERN=RULE (e.g. 'conv*=gamma:0.25')", entry);
    size_t k = (size_t)(eq - entry);
    if (k >= np) return sal_fail(SAL_ERR_ARG, "rule entry '%s': pattern too long", entry);
    memcpy(pats, entry, k);
    pats[k] = '\0';
    sal_status st = sal_lrp_rule_parse(eq + 1, rule);
    return st == SAL_OK ? SAL_OK : sal_wrap(st, "rule entry '%s'", entry);
}

static bool entry_matches(char *pats, const sal_node *n, bool first) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", pats);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (match_one(t, n, first)) return true;
    return false;
}

sal_status sal_lrp_plan_new(const sal_model *m, const sal_lrp_config *cfg, sal_lrp_plan **out) {
    *out = NULL;
    sal_lrp_plan *p = sal_calloc(1, sizeof *p);
    bool *raw = sal_calloc((size_t)m->nval + 1, sizeof *raw), *hit = sal_calloc((size_t)cfg->nuser + 1, sizeof *hit);
    sal_status st = SAL_OK;
    if (p) {
        p->fn = sal_calloc((size_t)m->nnode + 1, sizeof *p->fn);
        p->rule = sal_calloc((size_t)m->nnode + 1, sizeof *p->rule);
        p->roles = sal_calloc((size_t)m->nnode + 1, sizeof *p->roles);
        p->kind = sal_calloc((size_t)m->nnode + 1, sizeof *p->kind);
    }
    if (!p || !raw || !hit || !p->fn || !p->rule || !p->roles || !p->kind) {
        st = sal_fail(SAL_ERR_NOMEM, "out of memory planning LRP rules");
        goto done;
    }
    p->m = m;
    p->method = cfg->method;
    p->stab = cfg->stabilizer;
    p->zennit = cfg->zennit;
    p->lo = cfg->lo;
    p->hi = cfg->hi;
    p->attention = cfg->attention;
    int outv = cfg->out_name ? sal_graph_find(m, cfg->out_name) : m->output[0];
    if (outv < 0) {
        st = sal_fail(SAL_ERR_ARG, "%s has no value '%s' to explain", m->path, cfg->out_name);
        goto done;
    }
    if ((st = sal_lrp_flow_make(m, outv, cfg->attention, &p->flow)) != SAL_OK) goto done;
    /* user entries are checked up front, so a typo fails before any work */
    for (int u = 0; u < cfg->nuser; u++) {
        char pats[256];
        sal_lrp_rule r;
        if ((st = entry_parse(cfg->user[u], pats, sizeof pats, &r)) != SAL_OK) goto done;
    }
    for (int i = 0; i < m->ninput; i++) raw[m->input[i]] = true;
    bool conv_seen = false;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        node_kind k;
        if (sal_node_has(n, SAL_TR_LINEAR)) k = NK_LIN;
        else if (sal_node_has(n, SAL_TR_ROUTE)) k = NK_ROUTE;
        else if (sal_node_has(n, SAL_TR_MONOTONE)) k = NK_PASS;
        else if (sal_node_has(n, SAL_TR_ADDITIVE | SAL_TR_MULTILINEAR)) k = NK_ZRULE;
        else if (sal_node_has(n, SAL_TR_MAXPOOL)) k = cfg->maxpool_proportional ? NK_POOLPROP : NK_ROUTE;
        else if (sal_node_has(n, SAL_TR_SOFTMAX) && n->out[0] == outv) k = NK_PASS;
        else k = NK_REJECT;
        /* activations that are not monotone pass relevance as the monotone ones do (AttnLRP's
         * identity rule); normalizations and softmax attention have their rules; products of two
         * activations and operands held constant take rule_prod */
        if (k == NK_REJECT && (sal_node_is(n, SAL_OP_Gelu) || sal_node_is(n, SAL_OP_HardSwish) ||
                               sal_node_is(n, SAL_OP_Mish) || sal_node_is(n, SAL_OP_PRelu)))
            k = NK_PASS;
        else if (k == NK_REJECT && sal_node_has(n, SAL_TR_NORM)) k = NK_NORM;
        else if (k == NK_REJECT && sal_node_is(n, SAL_OP_Softmax) && cfg->attention == SAL_ATTN_ATTNLRP) k = NK_SMAX;
        if ((k == NK_ZRULE || k == NK_LIN) && sal_node_has(n, SAL_TR_MULTILINEAR)) {
            int nv = 0;
            for (int j = 0; j < n->nin && j < 31; j++)
                nv += (n->op->lin_in >> j & 1) && n->in[j] >= 0 && p->flow.vary[n->in[j]];
            if (p->flow.held[i] || (nv >= 2 && k == NK_ZRULE)) k = NK_PROD;
        }
        if (!p->flow.live[i]) k = NK_NONE;
        /* values reached from the input through shape ops, and elementwise shifts and scalings by
         * constants (an input normalization), are what the first layer reads */
        bool all_raw = k == NK_ROUTE, any = false;
        int nvar = 0, var = -1;
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j];
            if (v < 0 || m->val[v].kind == SAL_VAL_CONST) continue;
            any = true;
            all_raw &= raw[v];
            nvar++;
            var = j;
        }
        /* elementwise arithmetic with constants before the first layer normalizes the input */
        if (k == NK_ZRULE && nvar == 1 && raw[n->in[var]] && sal_node_has(n, SAL_TR_ARITH) && (n->op->lin_in >> var & 1)) {
            k = NK_AFFINE_IN;
            all_raw = true;
        }
        p->kind[i] = (unsigned char)k;
        if (all_raw && any)
            for (int j = 0; j < n->nout; j++)
                if (n->out[j] >= 0) raw[n->out[j]] = true;
        switch (k) {
        case NK_ROUTE: p->fn[i] = NULL; break;
        case NK_PASS: p->fn[i] = sal_rule_pass; break;
        case NK_ZRULE: p->fn[i] = rule_zrule; break;
        case NK_AFFINE_IN: p->fn[i] = rule_affine_in; break;
        case NK_POOLPROP: p->fn[i] = rule_poolprop; break;
        case NK_REJECT: p->fn[i] = rule_reject; break;
        case NK_NORM: p->fn[i] = rule_norm; break;
        case NK_PROD: p->fn[i] = rule_prod; break;
        case NK_SMAX: p->fn[i] = rule_smax; break;
        case NK_NONE: p->fn[i] = rule_none; break;
        case NK_LIN: {
            sal_lin_roles r;
            if (sal_lin_roles_of(m, n, &r) != SAL_OK) { /* a product of two activations: the uniform rule */
                p->kind[i] = NK_PROD;
                p->fn[i] = rule_prod;
                break;
            }
            p->roles[i] = r;
            p->fn[i] = rule_lin;
            bool first = raw[n->in[r.x]], conv = sal_node_is(n, SAL_OP_Conv);
            bool special = cfg->first_conv ? conv && !conv_seen : first;
            conv_seen |= conv;
            bool set = false;
            for (int u = 0; u < cfg->nuser && !set; u++) {
                char pats[256];
                sal_lrp_rule rr;
                SAL_ASSERT(entry_parse(cfg->user[u], pats, sizeof pats, &rr) == SAL_OK);
                if (entry_matches(pats, n, first)) {
                    p->rule[i] = rr;
                    hit[u] = set = true;
                }
            }
            if (!set) p->rule[i] = special && cfg->has_first ? cfg->first : conv ? cfg->conv : cfg->dense;
            break;
        }
        }
    }
    /* an entry that matches no linear node is almost surely a typo: say so rather than ignore it */
    for (int u = 0; u < cfg->nuser; u++) {
        if (hit[u]) continue;
        bool any = false;
        for (int i = 0; i < m->nnode && !any; i++) {
            char pats[256];
            sal_lrp_rule rr;
            if (p->kind[i] != NK_LIN) continue;
            SAL_ASSERT(entry_parse(cfg->user[u], pats, sizeof pats, &rr) == SAL_OK);
            any = entry_matches(pats, &m->node[i], raw[m->node[i].in[p->roles[i].x]]);
        }
        if (!any) {
            st = sal_fail(SAL_ERR_ARG, "rule entry '%s' matches no Gemm, MatMul or Conv node of %s (patterns match "
                          "node names or op types; @input, @conv and @dense name classes)", cfg->user[u], m->path);
            goto done;
        }
    }
done:
    sal_free(raw);
    sal_free(hit);
    if (st != SAL_OK) {
        sal_lrp_plan_free(p);
        return st;
    }
    *out = p;
    return SAL_OK;
}

void sal_lrp_plan_free(sal_lrp_plan *p) {
    if (!p) return;
    for (int k = 0; k < 2; k++) {
        sal_tensor_free(&p->w[k]);
        sal_tensor_free(&p->x[k]);
    }
    for (int k = 0; k < NTMP; k++) sal_tensor_free(&p->tin[k]);
    sal_tensor_free(&p->bias);
    sal_tensor_free(&p->z);
    sal_tensor_free(&p->zt);
    sal_tensor_free(&p->s);
    sal_tensor_free(&p->tmp);
    sal_free(p->fn);
    sal_free(p->rule);
    sal_free(p->roles);
    sal_free(p->kind);
    sal_lrp_flow_free(&p->flow);
    sal_free(p);
}

const sal_rule_fn *sal_lrp_plan_rules(const sal_lrp_plan *p) { return p->fn; }

const sal_lrp_rule *sal_lrp_plan_rule(const sal_lrp_plan *p, int node) {
    return node >= 0 && node < p->m->nnode && p->kind[node] == NK_LIN ? &p->rule[node] : NULL;
}

const char *sal_lrp_plan_describe(const sal_lrp_plan *p, int i, char *buf, size_t n) {
    static const char *const why[] = {"", "a gate of the other operand", "attention weights (CP-LRP)",
                                      "the divisor (a normalization's statistic)"};
    const sal_node *nd = &p->m->node[i];
    char r[64];
    int held = -1;
    for (int k = 0; k < nd->nin && k < 32 && held < 0; k++)
        if (p->flow.held[i] >> k & 1) held = k;
    switch ((node_kind)p->kind[i]) {
    case NK_ROUTE: snprintf(buf, n, "routed by its gradient"); break;
    case NK_PASS: snprintf(buf, n, "identity: relevance passes through"); break;
    case NK_ZRULE: snprintf(buf, n, "z-rule: each varying input's share"); break;
    case NK_AFFINE_IN: snprintf(buf, n, "identity: an input normalization"); break;
    case NK_POOLPROP: snprintf(buf, n, "proportional to the window's values"); break;
    case NK_LIN: snprintf(buf, n, "rule %s", sal_lrp_rule_str(&p->rule[i], r, sizeof r)); break;
    case NK_REJECT: snprintf(buf, n, "refused: no LRP rule for %s", nd->op_type); break;
    case NK_NORM: snprintf(buf, n, "z-rule with the statistics held constant (AttnLRP)"); break;
    case NK_SMAX: snprintf(buf, n, "AttnLRP softmax rule: x (R - s sum R)"); break;
    case NK_NONE: {
        bool vary = false;
        for (int k = 0; k < nd->nin; k++) vary |= nd->in[k] >= 0 && p->flow.vary[nd->in[k]];
        snprintf(buf, n, "%s", vary ? "none: no relevance reaches it (held constant downstream)"
                                    : "none: no float path from the input (constants, shapes)");
        break;
    }
    case NK_PROD:
        if (held >= 0)
            snprintf(buf, n, "z-rule with input %d held constant: %s", held, why[p->flow.why[i] < 4 ? p->flow.why[i] : 0]);
        else snprintf(buf, n, "uniform (AttnLRP): each term's share split equally between its operands");
        break;
    }
    return buf;
}

/* ---- running ---- */

sal_status sal_lrp_backward_c(const sal_xctx *c, sal_session *s, const sal_tensor *x, const int64_t *target,
                              const sal_rule_fn *rules, void *user, float *value) {
    SAL_TRY(sal_exec_forward_reuse(s, x)); /* sal_explain's pass to pick the targets, usually */
    int out = sal_explained(c, s->m);
    sal_tensor seed = {0};
    sal_status st = sal_relevance_seed(c, &s->act[out], target, &seed, value);
    sal_backward_opts bo = {.rule = rules, .user = user};
    if (st == SAL_OK) st = sal_exec_backward(s, 1, &out, &seed, &bo);
    sal_tensor_free(&seed);
    return st;
}

sal_status sal_lrp_backward(sal_session *s, const sal_tensor *x, const int64_t *target, bool prob,
                            const sal_rule_fn *rules, void *user, float *value) {
    sal_xctx c = {.m = s->m, .x = x, .prob = prob, .outv = s->m->output[0]};
    return sal_lrp_backward_c(&c, s, x, target, rules, user, value);
}

/* One relevance run: the rules, and the conservation figures gathered row by row. */
typedef struct {
    sal_xctx *c;
    const sal_rule_fn *rules;
    void *user;
    bool conservation;
    double ratio_sum, worst;
    int64_t counted;
} lrp_job;

static sal_status lrp_pass(void *u, sal_chunk *ch) {
    const lrp_job *j = u;
    SAL_TRY(sal_lrp_backward_c(j->c, ch->s, ch->x, ch->target, j->rules, j->user, ch->value));
    ch->g = &ch->s->grad[ch->s->m->input[0]];
    return SAL_OK;
}

static void lrp_take(void *u, int64_t i, int64_t k, const float *row, const float *g, float value, sal_rng *r) {
    (void)k, (void)row, (void)r;
    lrp_job *j = u;
    int64_t n = sal_row_size(&j->c->out);
    memcpy(sal_f32(&j->c->out) + i * n, g, sizeof(float) * (size_t)n);
    if (!j->conservation) return;
    double sum = 0;
    for (int64_t e = 0; e < n; e++) sum += g[e];
    if (fabs(value) < 1e-12) return; /* nothing to conserve */
    double q = sum / value;
    j->ratio_sum += q;
    j->worst = fmax(j->worst, fabs(q - 1));
    j->counted++;
}

sal_status sal_lrp_drive(sal_xctx *c, const sal_model *m, const sal_rule_fn *rules, void *user, bool conservation) {
    sal_session *own = NULL;
    if (m != c->m) SAL_TRY(sal_session_new(m, &own));
    lrp_job j = {.c = c, .rules = rules, .user = user, .conservation = conservation};
    sal_batched b = {.s = own, .pass = lrp_pass, .take = lrp_take, .u = &j};
    sal_status st = sal_tensor_alloc(&c->out, SAL_F32, c->x->ndim, c->x->dim);
    if (st == SAL_OK) st = sal_run_batched(c, &b);
    if (st == SAL_OK && conservation && j.counted) {
        sal_metric(c, "relevance_conservation", j.ratio_sum / (double)j.counted);
        sal_metric(c, "relevance_conservation_worst", j.worst);
    }
    sal_session_free(own);
    return st;
}

/* ---- the methods ---- */

static const char k_lrp_logits[] =
    "relevance starts from the explained value and passes an output Softmax unchanged, so on a model that "
    "outputs probabilities it conserves the probability, not the logit (the LRP papers explain logits)";

#define P_RULE                                                                                           \
    {"rule", "", "NODE_OR_PATTERN=RULE[:params] for Gemm/MatMul/Conv nodes, repeatable, tried before the " \
                 "method's own assignment; first match wins (patterns: globs over node names or op types, "  \
                 "or @input, @conv, @dense)"}
#define P_MAXPOOL {"maxpool", "winner", "max pooling: winner (all to the maximum) or proportional (to the window's values)"}
#define P_STAB {"stabilizer", "1e-6", "added to denominators with their sign where a rule has no epsilon"}
#define P_ATTN                                                                                              \
    {"attention", "constant", "softmax attention: constant (attention weights held constant, CP-LRP) or attnlrp " \
                              "(AttnLRP's softmax rule, relevance on into queries and keys)"}
#define P_EPS {"epsilon", "0.25", "epsilon of the epsilon rule"}
/* the composites default to Zennit's epsilon, so that their maps compare */
#define P_EPS_C {"epsilon", "1e-6", "epsilon of the epsilon rule on dense layers"}
#define P_GAMMA {"gamma", "0.25", "gamma of the gamma rule"}
#define P_LOW {"low", "", "zb: lowest input value (default: the input range's low end)"}
#define P_HIGH {"high", "", "zb: highest input value (default: the input range's high end)"}

static sal_status bound(const sal_xctx *c, const char *name, double dflt, double *out) {
    if (!*sal_param(c, name)) {
        *out = dflt;
        return SAL_OK;
    }
    return sal_param_float(c, name, -1e30, 1e30, out);
}

/* Reads the parameters every LRP method has, canonizes, plans and runs. */
static sal_status run_config(sal_xctx *c, sal_lrp_config *cfg) {
    const char *user[64];
    int nu = sal_param_all(c, "rule", user, 64);
    if (nu > 64) return sal_fail(SAL_ERR_ARG, "method %s: at most 64 rule entries", c->meth->name);
    static const char *const pool[] = {"winner", "proportional", NULL};
    int pi;
    SAL_TRY(sal_param_choice(c, "maxpool", pool, &pi));
    SAL_TRY(sal_param_float(c, "stabilizer", 0, 1e6, &cfg->stabilizer));
    static const char *const attn[] = {"constant", "attnlrp", NULL};
    SAL_TRY(sal_param_choice(c, "attention", attn, &cfg->attention));
    cfg->out_name = c->m->val[sal_explained(c, c->m)].name;
    cfg->method = c->meth->name;
    cfg->user = user;
    cfg->nuser = nu;
    cfg->maxpool_proportional = pi == 1;
    if (isnan(cfg->lo)) cfg->lo = c->lo, cfg->hi = c->hi;
    if (!(cfg->lo < cfg->hi))
        return sal_fail(SAL_ERR_ARG, "method %s: the zb box needs low < high (got %g, %g)", c->meth->name, cfg->lo, cfg->hi);
    sal_model *cm = NULL;
    int nfold = 0;
    SAL_TRY(sal_canonize(c->m, &cm, &nfold));
    const sal_model *m = cm ? cm : c->m;
    sal_lrp_plan *p = NULL;
    sal_status st = sal_lrp_plan_new(m, cfg, &p);
    for (int i = 0; st == SAL_OK && c->rules && i < c->m->nnode; i++) { /* describe mode */
        int j = sal_graph_find_node(m, c->m->node[i].name);
        char buf[200];
        st = j >= 0 ? sal_rule_line(c, i, "%s", sal_lrp_plan_describe(p, j, buf, sizeof buf))
                    : sal_rule_line(c, i, "folded into the linear node before it (canonization)");
    }
    if (st == SAL_OK && !c->rules) st = sal_lrp_drive(c, m, sal_lrp_plan_rules(p), p, true);
    if (st == SAL_OK) sal_metric(c, "batchnorm_folded", nfold);
    sal_lrp_plan_free(p);
    sal_model_free(cm);
    return st;
}

static sal_lrp_config config_all(sal_lrp_rule r) {
    return (sal_lrp_config){.first = r, .conv = r, .dense = r, .lo = NAN, .hi = NAN};
}

static sal_status read_box(sal_xctx *c, sal_lrp_config *cfg) {
    SAL_TRY(bound(c, "low", c->lo, &cfg->lo));
    SAL_TRY(bound(c, "high", c->hi, &cfg->hi));
    return SAL_OK;
}

static const sal_param_spec k_p_plain[] = {P_RULE, P_MAXPOOL, P_STAB, P_ATTN, {NULL, NULL, NULL}};
static const sal_param_spec k_p_eps[] = {P_EPS, P_RULE, P_MAXPOOL, P_STAB, P_ATTN, {NULL, NULL, NULL}};
static const sal_param_spec k_p_gamma[] = {P_GAMMA, P_RULE, P_MAXPOOL, P_STAB, P_ATTN, {NULL, NULL, NULL}};
static const sal_param_spec k_p_ab[] = {
    {"alpha", "2", "weight of the positive contributions"},
    {"beta", "1", "weight of the negative contributions (alpha - beta must be 1)"},
    P_RULE, P_MAXPOOL, P_STAB, P_ATTN, {NULL, NULL, NULL}};
#define P_VARIANT                                                                                                 \
    {"variant", "zennit", "zennit: the rules of Zennit's composite of this name (z+ and alpha-beta with the bias of "  \
                          "their sign, gamma generalized to negative inputs and outputs, zb on the first convolution " \
                          "only); montavon: bias-free z+ and alpha-beta, gamma as in Montavon et al. 2019, zb on the " \
                          "first layer of any kind"}
static const sal_param_spec k_p_comp[] = {P_EPS_C, P_VARIANT, P_RULE, P_MAXPOOL, P_STAB, P_ATTN, {NULL, NULL, NULL}};
static const sal_param_spec k_p_egb[] = {P_EPS_C, P_GAMMA, P_LOW, P_HIGH, P_VARIANT, P_RULE, P_MAXPOOL, P_STAB, P_ATTN,
                                         {NULL, NULL, NULL}};

static sal_status run_lrp0(sal_xctx *c) {
    sal_lrp_config cfg = config_all((sal_lrp_rule){SAL_LRP_ZERO, 0, 0});
    return run_config(c, &cfg);
}

static sal_status run_eps(sal_xctx *c) {
    double e;
    SAL_TRY(sal_param_float(c, "epsilon", 0, 1e30, &e));
    sal_lrp_config cfg = config_all((sal_lrp_rule){SAL_LRP_EPSILON, e, 0});
    return run_config(c, &cfg);
}

static sal_status run_gamma(sal_xctx *c) {
    double g;
    SAL_TRY(sal_param_float(c, "gamma", 0, 1e30, &g));
    sal_lrp_config cfg = config_all((sal_lrp_rule){SAL_LRP_GAMMA, g, 0});
    return run_config(c, &cfg);
}

static sal_status run_ab(sal_xctx *c) {
    double a, b;
    SAL_TRY(sal_param_float(c, "alpha", 1, 1e6, &a));
    SAL_TRY(sal_param_float(c, "beta", 0, 1e6, &b));
    sal_lrp_rule r = {SAL_LRP_ALPHA_BETA, a, b};
    char spec[64];
    snprintf(spec, sizeof spec, "alpha_beta:%s:%s", sal_param(c, "alpha"), sal_param(c, "beta"));
    if (check_rule(spec, &r) != SAL_OK) return sal_wrap(SAL_ERR_ARG, "method %s", c->meth->name);
    sal_lrp_config cfg = config_all(r);
    return run_config(c, &cfg);
}

static sal_status run_zplus(sal_xctx *c) {
    sal_lrp_config cfg = config_all((sal_lrp_rule){SAL_LRP_ALPHA_BETA, 1, 0});
    return run_config(c, &cfg);
}

/* Composites as Zennit names them: dense layers epsilon, convolutions z+ (or alpha2-beta1, or
 * gamma), zb on the first convolution, each rule as Zennit computes it (variant=zennit); or
 * Montavon et al.'s bias-free z+ / alpha-beta, gamma on x as it is, zb on the first layer of any
 * kind (variant=montavon). */
static sal_status run_composite(sal_xctx *c, sal_lrp_rule conv, bool box) {
    static const char *const variants[] = {"zennit", "montavon", NULL};
    int v;
    double e;
    SAL_TRY(sal_param_choice(c, "variant", variants, &v));
    SAL_TRY(sal_param_float(c, "epsilon", 0, 1e30, &e));
    sal_lrp_rule eps = {SAL_LRP_EPSILON, e, 0};
    sal_lrp_config cfg = {.first = eps, .conv = conv, .dense = eps, .lo = NAN, .hi = NAN, .zennit = v == 0,
                          .first_conv = v == 0};
    if (box) {
        cfg.has_first = true;
        cfg.first = (sal_lrp_rule){SAL_LRP_ZB, NAN, NAN};
        SAL_TRY(read_box(c, &cfg));
    }
    return run_config(c, &cfg);
}

static sal_status run_eplus(sal_xctx *c) { return run_composite(c, (sal_lrp_rule){SAL_LRP_ALPHA_BETA, 1, 0}, false); }
static sal_status run_ea2b1(sal_xctx *c) { return run_composite(c, (sal_lrp_rule){SAL_LRP_ALPHA_BETA, 2, 1}, false); }

static sal_status run_egb(sal_xctx *c) {
    double g;
    SAL_TRY(sal_param_float(c, "gamma", 0, 1e30, &g));
    return run_composite(c, (sal_lrp_rule){SAL_LRP_GAMMA, g, 0}, true);
}

const sal_method sal_method_lrp_0 = {
    .name = "lrp_0",
    .summary = "LRP-0 (z-rule) everywhere; equals gradient x input on bias-free ReLU nets (Bach et al. 2015)",
    .params = k_p_plain,
    .run = run_lrp0,
    .logits = k_lrp_logits,
    .describes = true,
};

const sal_method sal_method_lrp_epsilon = {
    .name = "lrp_epsilon",
    .summary = "LRP-epsilon everywhere: eps absorbs weak and contradictory relevance (Bach et al. 2015)",
    .params = k_p_eps,
    .run = run_eps,
    .logits = k_lrp_logits,
    .describes = true,
};

const sal_method sal_method_lrp_gamma = {
    .name = "lrp_gamma",
    .summary = "LRP-gamma everywhere: positive contributions favoured by gamma (Montavon et al. 2019)",
    .params = k_p_gamma,
    .run = run_gamma,
    .logits = k_lrp_logits,
    .describes = true,
};

const sal_method sal_method_lrp_alpha_beta = {
    .name = "lrp_alpha_beta",
    .summary = "LRP-alpha-beta everywhere; alpha 1 beta 0 is excitation backprop (Bach et al. 2015)",
    .params = k_p_ab,
    .run = run_ab,
    .logits = k_lrp_logits,
    .describes = true,
};

const sal_method sal_method_lrp_zplus = {
    .name = "lrp_zplus",
    .summary = "LRP z+ (alpha 1, beta 0) everywhere: Deep Taylor's rule for ReLU layers (Montavon et al. 2017)",
    .params = k_p_plain,
    .run = run_zplus,
    .logits = k_lrp_logits,
    .describes = true,
};

const sal_method sal_method_lrp_epsilon_plus = {
    .name = "lrp_epsilon_plus",
    .summary = "composite: epsilon on dense layers, z+ on convolutions (Zennit's EpsilonPlus)",
    .params = k_p_comp,
    .run = run_eplus,
    .logits = k_lrp_logits,
    .describes = true,
};

const sal_method sal_method_lrp_epsilon_gamma_box = {
    .name = "lrp_epsilon_gamma_box",
    .summary = "composite: zb on the first convolution, gamma on the others, epsilon on dense layers (Zennit's "
               "EpsilonGammaBox)",
    .params = k_p_egb,
    .run = run_egb,
    .logits = k_lrp_logits,
    .describes = true,
};

const sal_method sal_method_lrp_epsilon_alpha2_beta1 = {
    .name = "lrp_epsilon_alpha2_beta1",
    .summary = "composite: epsilon on dense layers, alpha2-beta1 on convolutions (Zennit's EpsilonAlpha2Beta1)",
    .params = k_p_comp,
    .run = run_ea2b1,
    .logits = k_lrp_logits,
    .describes = true,
};

/* ---- Deep Taylor decomposition ---- */

static const sal_param_spec k_p_dtd[] = {
    {"domain", "box", "the input domain, which picks the first layer's rule: box (zb over [low, high]), real "
                      "(w^2, unbounded inputs) or positive (z+, inputs >= 0)"},
    P_LOW,
    P_HIGH,
    {"root", "nearest", "root points: nearest (Deep Taylor's rules: z+ in hidden layers, the domain's rule at the "
                        "input), zero (x0 = 0 everywhere: LRP-0) or pattern (x0 = x - a w^T x: PatternAttribution)"},
    {"patterns", "", "root=pattern: the file written by `saliency patterns`"},
    {"pattern", "auto", "root=pattern: auto (two-component patterns where ReLUs follow, linear elsewhere), relu or linear"},
    P_RULE,
    P_MAXPOOL,
    P_STAB,
    P_ATTN,
    {NULL, NULL, NULL},
};

static sal_status run_dtd(sal_xctx *c) {
    static const char *const roots[] = {"nearest", "zero", "pattern", NULL};
    static const char *const domains[] = {"box", "real", "positive", NULL};
    static const char *const kinds[] = {"auto", "relu", "linear", NULL};
    int root, dom, kind;
    SAL_TRY(sal_param_choice(c, "root", roots, &root));
    SAL_TRY(sal_param_choice(c, "domain", domains, &dom));
    SAL_TRY(sal_param_choice(c, "pattern", kinds, &kind));
    if (root == 2) {
        if (c->rules)
            return sal_fail(SAL_ERR_ARG, "method %s: root=pattern takes its rules from the patterns (w * a at every "
                            "linear node, PatternAttribution's)", c->meth->name);
        if (!*sal_param(c, "patterns") && !c->patterns)
            return sal_fail(SAL_ERR_ARG, "method %s: root=pattern needs patterns=FILE (made by `saliency patterns`)",
                            c->meth->name);
        return sal_pattern_run(c, true, kind);
    }
    sal_lrp_rule zplus = {SAL_LRP_ALPHA_BETA, 1, 0};
    sal_lrp_config cfg = config_all(root == 1 ? (sal_lrp_rule){SAL_LRP_ZERO, 0, 0} : zplus);
    if (root == 0) {
        cfg.has_first = dom != 2; /* positive inputs: z+ as in the hidden layers */
        if (dom == 0) {
            cfg.first = (sal_lrp_rule){SAL_LRP_ZB, NAN, NAN};
            SAL_TRY(read_box(c, &cfg));
        } else if (dom == 1) {
            cfg.first = (sal_lrp_rule){SAL_LRP_WSQUARE, 0, 0};
        }
    }
    return run_config(c, &cfg);
}

static bool dtd_needs_patterns(const sal_xctx *c) {
    return !strcmp(sal_param(c, "root"), "pattern") && !*sal_param(c, "patterns");
}

const sal_method sal_method_deep_taylor = {
    .name = "deep_taylor",
    .summary = "Deep Taylor decomposition: z+ in hidden layers, zb / w^2 / z+ at the input by domain; root=zero "
               "gives LRP-0, root=pattern PatternAttribution (Montavon et al. 2017; Kindermans et al. 2018)",
    .params = k_p_dtd,
    .run = run_dtd,
    .needs_patterns = dtd_needs_patterns,
    .logits = k_lrp_logits,
    .describes = true,
};
