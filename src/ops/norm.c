/* Normalizations. BatchNormalization in inference mode: y = scale (x - mean) / sqrt(var + eps) + B
 * per channel, with frozen statistics; layer, instance and group normalization below. */
#include "ops.h"
#include <math.h>

static sal_status bn_init(sal_node *n, const sal_model *g) {
    (void)g;
    if (sal_attr_int(n, "training_mode", 0) != 0)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "training mode is not supported (inference only)");
    for (int k = 1; k < n->nout; k++)
        if (n->out[k] >= 0)
            return sal_node_fail(n, SAL_ERR_UNSUPPORTED,
                                 "output %d (running or saved statistics of training mode) is not supported", k);
    return SAL_OK;
}

/* Channels C and elements per channel and sample (the product of the spatial dims). */
static sal_status bn_dims(const sal_opctx *c, int64_t *N, int64_t *C, int64_t *S) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0];
    if (x->ndim < 2) return sal_node_fail(c->n, SAL_ERR_SHAPE, "X must have rank >= 2 (N,C,...), got rank %d", x->ndim);
    *N = x->dim[0];
    *C = x->dim[1];
    *S = 1;
    for (int i = 2; i < x->ndim; i++) *S *= x->dim[i];
    static const char *const names[] = {"X", "scale", "B", "mean", "var"};
    for (int i = 1; i < 5; i++) {
        SAL_TRY(sal_need_f32(c, i, -1));
        if (c->in[i]->ndim != 1 || c->in[i]->dim[0] != *C)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "%s must have shape (%lld), the channels of X", names[i],
                                 (long long)*C);
    }
    return SAL_OK;
}

static sal_status bn_infer(sal_opctx *c) {
    int64_t N, C, S;
    SAL_TRY(bn_dims(c, &N, &C, &S));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

static sal_status bn_forward(sal_opctx *c) {
    int64_t N, C, S;
    SAL_TRY(bn_dims(c, &N, &C, &S));
    float eps = sal_attr_float(c->n, "epsilon", 1e-5f);
    const float *x = sal_in_f(c, 0), *sc = sal_in_f(c, 1), *b = sal_in_f(c, 2), *mu = sal_in_f(c, 3),
                *var = sal_in_f(c, 4);
    float *y = sal_out_f(c, 0);
    SAL_PAR_FOR(
        N * C * S > 65536, "omp parallel for", for (int64_t nc = 0; nc < N * C; nc++) {
            int64_t ch = nc % C;
            float a = (float)(sc[ch] / sqrt((double)var[ch] + eps));
            float off = b[ch] - a * mu[ch];
            const float *xx = x + nc * S;
            float *yy = y + nc * S;
            for (int64_t i = 0; i < S; i++) yy[i] = a * xx[i] + off;
        });
    return SAL_OK;
}

/* dX = dY a; dscale = sum dY xhat; dB = sum dY; dmean = -a sum dY;
 * dvar = -scale / 2 (var + eps)^-3/2 sum dY (x - mean). */
static sal_status bn_backward(sal_opctx *c) {
    if (!c->dout[0]) return SAL_OK;
    int64_t N, C, S;
    SAL_TRY(bn_dims(c, &N, &C, &S));
    float eps = sal_attr_float(c->n, "epsilon", 1e-5f);
    const float *x = sal_in_f(c, 0), *sc = sal_in_f(c, 1), *mu = sal_in_f(c, 3), *var = sal_in_f(c, 4),
                *dy = sal_f32(c->dout[0]);
    float *dx = c->din[0] ? sal_f32(c->din[0]) : NULL;
    bool stats = c->din[1] || c->din[2] || c->din[3] || c->din[4];
    SAL_PAR_FOR(
        N * C * S > 65536, "omp parallel for", for (int64_t ch = 0; ch < C; ch++) {
            double inv = 1.0 / sqrt((double)var[ch] + eps), a = sc[ch] * inv;
            double sdy = 0, sdyc = 0; /* sum dY, sum dY (x - mean) */
            for (int64_t n = 0; n < N; n++) {
                const float *xx = stats ? x + (n * C + ch) * S : NULL, *g = dy + (n * C + ch) * S;
                float *d = dx ? dx + (n * C + ch) * S : NULL;
                for (int64_t i = 0; i < S; i++) {
                    if (d) d[i] += (float)(a * g[i]);
                    if (stats) {
                        sdy += g[i];
                        sdyc += (double)g[i] * ((double)xx[i] - mu[ch]);
                    }
                }
            }
            if (c->din[1]) sal_f32(c->din[1])[ch] += (float)(sdyc * inv);
            if (c->din[2]) sal_f32(c->din[2])[ch] += (float)sdy;
            if (c->din[3]) sal_f32(c->din[3])[ch] -= (float)(a * sdy);
            if (c->din[4]) sal_f32(c->din[4])[ch] += (float)(-0.5 * sc[ch] * inv * inv * inv * sdyc);
        });
    return SAL_OK;
}

const sal_op sal_op_BatchNormalization = {
    SAL_OP_HEAD(BatchNormalization), .traits = SAL_TR_NORM | SAL_TR_MULTILINEAR, .lin_in = 0x1, .min_in = 5, .max_in = 5, .min_out = 1, .max_out = 5, .param_mask = 0x6,
    .init = bn_init, .infer = bn_infer, .forward = bn_forward, .backward = bn_backward,
    .bwd_known = true, .bwd_self = 0x1e, .bwd_other = 0x1f, /* dX reads the statistics, not X */
};

/* ---- LayerNormalization, InstanceNormalization, GroupNormalization ----
 * All three normalize rows of contiguous elements by their own mean and variance, then scale and
 * shift: y = (x - mean) / sqrt(var + eps) * w + b. They differ in what a row is and which w and b
 * an element takes:
 *   LayerNormalization      rows: the dims before `axis`; w, b: the normalized shape (per element)
 *   InstanceNormalization   rows: (n, c); w, b: per channel
 *   GroupNormalization      rows: (n, group); w, b: per channel (opset 21), per group (opset 18)
 * The parameter of element j of row r is w[base(r) + (j / seg) * pstep]. Statistics are taken in
 * double. Unlike BatchNormalization's frozen statistics, these depend on the input, so the ops are
 * NORM only, not MULTILINEAR. */

typedef enum { NRM_LAYER, NRM_INSTANCE, NRM_GROUP } nrm_kind;

typedef struct {
    int64_t R, L;      /* rows, elements per row */
    int64_t C, G;      /* channels (instance, group); groups */
    int64_t seg, pstep; /* runs of elements sharing a parameter; parameter step between runs */
    int64_t np;        /* parameters of w and b */
    int axis;          /* layer: the first normalized axis */
} nrm_plan;

static inline int64_t nrm_base(const nrm_plan *p, nrm_kind k, int64_t r) {
    return k == NRM_LAYER ? 0 : k == NRM_INSTANCE ? r % p->C : p->pstep ? (r % p->G) * (p->C / p->G) : r % p->G;
}

static sal_status nrm_init(sal_node *n, const sal_model *g, nrm_kind k) {
    (void)g;
    if (k == NRM_GROUP) {
        const sal_attr *a = sal_attr_find(n, "num_groups");
        if (!a || a->type != SAL_ATTR_INT || a->i < 1)
            return sal_node_fail(n, SAL_ERR_FORMAT, "the num_groups attribute must be a positive integer");
    }
    if (k == NRM_LAYER && n->nout > 1 && sal_attr_int(n, "stash_type", 1) != 1)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "stash_type %lld (only 1, float, is supported)",
                             (long long)sal_attr_int(n, "stash_type", 1));
    return SAL_OK;
}

static sal_status nrm_plan_make(const sal_opctx *c, nrm_kind k, nrm_plan *p) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0];
    memset(p, 0, sizeof *p);
    char b[160];
    if (k == NRM_LAYER) {
        int64_t a = sal_attr_int(c->n, "axis", -1);
        if (a < -x->ndim || a >= x->ndim)
            return sal_node_fail(c->n, SAL_ERR_ARG, "axis %lld out of range for rank %d", (long long)a, x->ndim);
        p->axis = (int)(a < 0 ? a + x->ndim : a);
        p->R = p->L = 1;
        for (int i = 0; i < x->ndim; i++) *(i < p->axis ? &p->R : &p->L) *= x->dim[i];
        p->seg = 1;
        p->pstep = 1;
        p->np = p->L;
    } else {
        if (x->ndim < 3)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "input %s: expected (N, C, D1, ...)",
                                 sal_shape_str(x->ndim, x->dim, b, sizeof b));
        int64_t S = 1;
        for (int i = 2; i < x->ndim; i++) S *= x->dim[i];
        p->C = x->dim[1];
        if (k == NRM_INSTANCE) {
            p->G = p->C;
            p->seg = S;
            p->np = p->C;
        } else {
            p->G = sal_attr_int(c->n, "num_groups", 1);
            if (p->C % p->G)
                return sal_node_fail(c->n, SAL_ERR_SHAPE, "%lld channels do not split into %lld groups",
                                     (long long)p->C, (long long)p->G);
            /* opset 18 gave scale and bias one entry per group, opset 21 one per channel: take the
             * size the tensors have when it is one of the two */
            int64_t ns = c->in[1] && c->in[1]->dtype == SAL_F32 ? sal_tensor_numel(c->in[1]) : -1;
            bool per_ch = ns == p->C || (ns != p->G && c->g->opset >= 21);
            p->seg = per_ch ? S : S * (p->C / p->G);
            p->pstep = per_ch;
            p->np = per_ch ? p->C : p->G;
        }
        p->R = x->dim[0] * p->G;
        p->L = S * (p->C / p->G);
    }
    static const char *const names[] = {"X", "scale", "bias"};
    for (int i = 1; i < 3 && i < c->n->nin; i++) {
        if (!c->in[i]) continue;
        SAL_TRY(sal_need_f32(c, i, -1));
        int64_t n = sal_tensor_numel(c->in[i]);
        /* a scalar scale or bias broadcasts (layer normalization) */
        if (n != p->np && !(k == NRM_LAYER && n == 1))
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "%s has shape %s; expected %lld elements", names[i],
                                 sal_shape_str(c->in[i]->ndim, c->in[i]->dim, b, sizeof b), (long long)p->np);
    }
    if (!c->in[1] && k != NRM_LAYER) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input 1 (scale) is missing");
    return SAL_OK;
}

static sal_status nrm_infer(sal_opctx *c, nrm_kind k) {
    nrm_plan p;
    SAL_TRY(nrm_plan_make(c, k, &p));
    sal_same_shape(c, 0, 0);
    for (int i = 1; i < c->n->nout; i++) /* Mean and InvStdDev: X's shape with the normalized dims 1 */
        if (c->out[i]) {
            sal_same_shape(c, i, 0);
            for (int d = p.axis; d < c->in[0]->ndim; d++) c->out[i]->dim[d] = 1;
        }
    return SAL_OK;
}

/* The row loops are compiled for AVX-512, AVX2 and the baseline; their double sums run in several
 * lanes (omp simd reductions): one chain of dependent double adds bounded the scalar loops, 1.5 to
 * 3.6 ns an element on ViT's rows of 768. */

/* mean and 1/sqrt(var + eps) of row x (L elements) */
SAL_CLONES void nrm_stats(const float *x, int64_t L, float eps, double *mean, double *inv) {
    double s = 0, v = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < L; j++) s += x[j];
    double m = L ? s / (double)L : 0;
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < L; j++) v += ((double)x[j] - m) * ((double)x[j] - m);
    *mean = m;
    *inv = 1.0 / sqrt((L ? v / (double)L : 0) + eps);
}

/* y = (x - m) inv w + b over a row with w and b per element */
SAL_CLONES void ln_row(float *restrict y, const float *restrict x, int64_t L, float m, float inv,
                       const float *restrict w, const float *restrict b) {
#pragma omp simd
    for (int64_t j = 0; j < L; j++) y[j] = (x[j] - m) * inv * w[j] + b[j];
}

/* dx += inv (g - mean(g) - xhat mean(g xhat)) with g = dy w, over a row with w per element; set: dx =
 * (a fresh buffer, not read) */
SAL_CLONES void ln_row_backward(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t L,
                                double m, double inv, const float *restrict w, bool set) {
    double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t j = 0; j < L; j++) {
        double gw = (double)dy[j] * w[j];
        sg += gw;
        sgx += gw * ((double)x[j] - m) * inv;
    }
    const float fm = (float)m, fi = (float)inv, mg = (float)(sg / (double)L), mgx = (float)(sgx / (double)L);
    if (set) {
#pragma omp simd
        for (int64_t j = 0; j < L; j++) dx[j] = fi * (dy[j] * w[j] - mg - (x[j] - fm) * fi * mgx);
    } else {
#pragma omp simd
        for (int64_t j = 0; j < L; j++) dx[j] += fi * (dy[j] * w[j] - mg - (x[j] - fm) * fi * mgx);
    }
}

/* A scale or bias as a strided vector: a missing bias reads 0, a scalar broadcasts (step 0). */
typedef struct {
    const float *p;
    int64_t step;
} nrm_par;

static nrm_par par_of(const sal_opctx *c, int i) {
    static const float zero = 0.0f;
    const sal_tensor *t = i < c->n->nin ? c->in[i] : NULL;
    if (!t) return (nrm_par){&zero, 0};
    return (nrm_par){sal_f32(t), sal_tensor_numel(t) == 1 ? 0 : 1};
}

static inline float at(nrm_par q, int64_t i) { return q.p[i * q.step]; }

static sal_status nrm_forward(sal_opctx *c, nrm_kind k) {
    nrm_plan p;
    SAL_TRY(nrm_plan_make(c, k, &p));
    float eps = sal_attr_float(c->n, "epsilon", 1e-5f);
    const nrm_par W = par_of(c, 1), B = par_of(c, 2);
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    float *om = c->n->nout > 1 && c->out[1] ? sal_out_f(c, 1) : NULL;
    float *oi = c->n->nout > 2 && c->out[2] ? sal_out_f(c, 2) : NULL;
    SAL_PAR_FOR(
        p.R * p.L > 65536, "omp parallel for", for (int64_t r = 0; r < p.R; r++) {
            const float *xr = x + r * p.L;
            float *yr = y + r * p.L;
            double m, inv;
            nrm_stats(xr, p.L, eps, &m, &inv);
            if (om) om[r] = (float)m;
            if (oi) oi[r] = (float)inv;
            int64_t base = nrm_base(&p, k, r);
            for (int64_t s0 = 0; s0 < p.L; s0 += p.seg) {
                int64_t pi = base + s0 / p.seg * p.pstep;
                if (p.seg == 1 && W.step && B.step) { /* per element: layer normalization */
                    ln_row(yr, xr, p.L, (float)m, (float)inv, W.p, B.p);
                    break;
                }
                if (p.seg == 1) { /* a scalar w or b */
                    const float fm = (float)m, fi = (float)inv;
                    for (int64_t j = 0; j < p.L; j++) yr[j] = (xr[j] - fm) * fi * at(W, j) + at(B, j);
                    break;
                }
                float a = (float)inv * at(W, pi), off = at(B, pi) - (float)(m * inv) * at(W, pi);
                for (int64_t j = s0; j < s0 + p.seg; j++) yr[j] = xr[j] * a + off;
            }
        });
    return SAL_OK;
}

/* With g = dy w and xhat = (x - mean) inv:
 *   dx = inv (g - mean(g) - xhat mean(g xhat)),  dw += sum dy xhat,  db += sum dy;
 * gradients reaching the Mean and InvStdDev outputs add dMean / L and -dInv inv^2 xhat / L. */
static sal_status nrm_backward(sal_opctx *c, nrm_kind k) {
    nrm_plan p;
    SAL_TRY(nrm_plan_make(c, k, &p));
    const sal_tensor *dm = c->n->nout > 1 ? c->dout[1] : NULL, *di = c->n->nout > 2 ? c->dout[2] : NULL;
    const bool set = c->din_fresh & 1; /* dx written whole (bwd_writes) */
    if (!c->dout[0] && !dm && !di) {
        sal_din_zero_fresh(c, 0);
        return SAL_OK;
    }
    float eps = sal_attr_float(c->n, "epsilon", 1e-5f);
    const nrm_par W = par_of(c, 1);
    const float *x = sal_in_f(c, 0), *dy = c->dout[0] ? sal_f32(c->dout[0]) : NULL;
    float *dx = c->din[0] ? sal_f32(c->din[0]) : NULL;
    float *dW = c->din[1] ? sal_f32(c->din[1]) : NULL, *dB = c->n->nin > 2 && c->din[2] ? sal_f32(c->din[2]) : NULL;
    int64_t nseg = p.seg == 1 ? 1 : p.L / (p.seg ? p.seg : 1);
    /* per row: mean and inv, then the per-run sums of dy xhat and dy for dw and db */
    double *st = sal_scratch_get(c->ws, 0, sizeof(double) * (size_t)(2 * p.R + 2 * p.R * nseg + 1));
    if (!st) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
    double *mean = st, *inv = st + p.R, *sxh = st + 2 * p.R, *sdy = sxh + p.R * nseg;
    SAL_PAR_FOR(
        p.R * p.L > 65536, "omp parallel for", for (int64_t r = 0; r < p.R; r++) {
            const float *xr = x + r * p.L, *g = dy ? dy + r * p.L : NULL;
            nrm_stats(xr, p.L, eps, &mean[r], &inv[r]);
            double m = mean[r], iv = inv[r];
            if (p.seg == 1 && W.step && g && !dm && !di) { /* layer normalization, w per element */
                if (dx) ln_row_backward(dx + r * p.L, g, xr, p.L, m, iv, W.p, set);
                continue;
            }
            int64_t base = nrm_base(&p, k, r);
            double sg = 0, sgx = 0; /* sums of dy w and dy w xhat */
            for (int64_t s0 = 0; g && s0 < p.L; s0 += p.seg) {
                if (p.seg == 1) {
                    for (int64_t j = 0; j < p.L; j++) {
                        double gw = (double)g[j] * at(W, j);
                        sg += gw;
                        sgx += gw * ((double)xr[j] - m) * iv;
                    }
                    break;
                }
                double w = at(W, base + s0 / p.seg * p.pstep), a = 0, ax = 0;
                for (int64_t j = s0; j < s0 + p.seg; j++) {
                    a += g[j];
                    ax += (double)g[j] * ((double)xr[j] - m) * iv;
                }
                sdy[r * nseg + s0 / p.seg] = a;
                sxh[r * nseg + s0 / p.seg] = ax;
                sg += w * a;
                sgx += w * ax;
            }
            if (!dx) continue;
            double L = (double)p.L, mg = sg / L, mgx = sgx / L;
            double em = dm ? sal_f32(dm)[r] / L : 0, ei = di ? -sal_f32(di)[r] * iv * iv / L : 0;
            float *d = dx + r * p.L;
            for (int64_t j = 0; j < p.L; j++) {
                double xh = ((double)xr[j] - m) * iv,
                       gw = g ? (double)g[j] * at(W, p.seg == 1 ? j : base + j / p.seg * p.pstep) : 0;
                float v = (float)(iv * (gw - mg - xh * mgx) + em + ei * xh);
                d[j] = set ? v : d[j] + v;
            }
        });
    if (!dy || (!dW && !dB)) return SAL_OK;
    if (p.seg == 1) { /* layer: columns over rows; a scalar w or b sums them all, in sequence */
        const int64_t bstep = par_of(c, 2).step;
        SAL_PAR_FOR(
            p.R * p.L > 65536 && W.step && bstep, "omp parallel for", for (int64_t j = 0; j < p.L; j++) {
                double a = 0, ax = 0;
                for (int64_t r = 0; r < p.R; r++) {
                    double g = dy[r * p.L + j];
                    a += g;
                    ax += g * ((double)x[r * p.L + j] - mean[r]) * inv[r];
                }
                if (dW) dW[j * W.step] += (float)ax;
                if (dB) dB[j * bstep] += (float)a;
            });
        return SAL_OK;
    }
    for (int64_t r = 0; r < p.R; r++)
        for (int64_t s = 0; s < nseg; s++) {
            int64_t pi = nrm_base(&p, k, r) + s * p.pstep;
            if (dW) dW[pi] += (float)sxh[r * nseg + s];
            if (dB) dB[pi] += (float)sdy[r * nseg + s];
        }
    return SAL_OK;
}

#define NRM_FNS(NAME, KIND)                                                                        \
    static sal_status NAME##_init(sal_node *n, const sal_model *g) { return nrm_init(n, g, KIND); } \
    static sal_status NAME##_infer(sal_opctx *c) { return nrm_infer(c, KIND); }                   \
    static sal_status NAME##_forward(sal_opctx *c) { return nrm_forward(c, KIND); }               \
    static sal_status NAME##_backward(sal_opctx *c) { return nrm_backward(c, KIND); }
NRM_FNS(ln, NRM_LAYER)
NRM_FNS(in, NRM_INSTANCE)
NRM_FNS(gn, NRM_GROUP)
/* the backward recomputes the statistics from x: it reads the inputs, never the outputs */
#define NRM_ENTRY(NAME, FN) SAL_OP_HEAD(NAME), .traits = SAL_TR_NORM, .min_out = 1, .param_mask = 0x6, \
    .bwd_writes = 0x1, .bwd_known = true, .bwd_self = 0x7, .bwd_other = 0x7, \
    .init = FN##_init, .infer = FN##_infer, .forward = FN##_forward, .backward = FN##_backward

const sal_op sal_op_LayerNormalization = {NRM_ENTRY(LayerNormalization, ln), .min_in = 2, .max_in = 3, .max_out = 3};
const sal_op sal_op_InstanceNormalization = {NRM_ENTRY(InstanceNormalization, in), .min_in = 3, .max_in = 3, .max_out = 1};
const sal_op sal_op_GroupNormalization = {NRM_ENTRY(GroupNormalization, gn), .min_in = 3, .max_in = 3, .max_out = 1};
