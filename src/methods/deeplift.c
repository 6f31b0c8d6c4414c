/* DeepLIFT (Shrikumar, Greenside & Kundaje 2017): contributions of the input's difference from a
 * reference, x - x0, to the output's difference f(x) - f(x0), propagated as multipliers m = C / dx
 * by the chain rule. A second session runs the reference forward so each rule sees both activations.
 *  - linear nodes: the gradient (it is the multiplier of a linear map, whatever the reference);
 *  - pointwise nonlinearities y = f(x) (Relu, LeakyRelu, Sigmoid, Tanh, Clip), Rescale rule:
 *    m = (y - y0) / (x - x0), the gradient where |x - x0| < DL_EPS;
 *  - RevealCancel (variant=revealcancel) at those nonlinearities when their input is a weighted sum
 *    (Gemm, Conv, MatMul with constant weights): dx is split into its positive and negative terms
 *    dx+ and dx-, each gets its own multiplier, and the weighted sum sends each term's multiplier
 *    back to the inputs whose terms made it up;
 *  - MaxPool, GlobalMaxPool: each window's difference goes to one input (see dl_max_window), or
 *    maxpool=captum (Captum's rule, element by element) or maxpool=gradient (the authors' code's
 *    default mode: the gradient as multiplier, which does not conserve);
 *  - a Softmax or LogSoftmax giving the model output: the paper's adjustment for softmax layers: explain the
 *    logits, normalized by subtracting the mean contribution over classes.
 * Attribution = multiplier at the input * (x - x0); its sum equals the output difference (completeness). */
#include "relu_rules.h"
#include "ops/window.h"
#include <math.h>

/* Below this |x - x0| a multiplier would divide noise by noise; the gradient is its limit. */
#define DL_EPS 1e-7

enum { MP_CONSERVING, MP_GRADIENT, MP_CAPTUM };

typedef struct {
    sal_rule_base base;
    bool reveal;
    int maxpool; /* MP_* */
    const sal_session *s, *ref; /* the explained pass and the reference pass */
    sal_tensor *pos, *neg;      /* per value (RevealCancel): dout * m+ and dout * m-, left for the weighted
                                 * sum that produced the value */
    char *split;                /* per node (RevealCancel): 1 = split into terms, 2 = a single term (Rescale) */
} dl_state;

static const sal_tensor *ref_of(const dl_state *st, int v) { return &st->ref->act[v]; }

static bool varies(const sal_opctx *c, int k) { return k < c->n->nin && c->din[k] != NULL; }

static sal_status check_ref(const sal_opctx *c, const sal_tensor *a, const sal_tensor *r) {
    if (sal_tensor_same_shape(a, r)) return SAL_OK;
    char x[160], y[160];
    return sal_node_fail(c->n, SAL_ERR_INTERNAL, "deeplift: the input pass gives shape %s, the reference pass %s",
                         sal_shape_str(a->ndim, a->dim, x, sizeof x), sal_shape_str(r->ndim, r->dim, y, sizeof y));
}

/* Node c->n's own backward with replaced inputs and output gradient, accumulating into dk for input k. */
static sal_status node_backward(const sal_opctx *c, sal_tensor *const *in, sal_tensor *dout, int k, sal_tensor *dk) {
    int nin = c->n->nin;
    sal_tensor *din[nin + 1], *dy[2] = {dout, NULL};
    for (int i = 0; i < nin; i++) din[i] = i == k ? dk : NULL;
    sal_opctx g = {.g = c->g, .n = c->n, .in = in, .out = c->out, .din = din, .dout = dy, .ws = c->ws};
    return c->n->op->backward(&g);
}

/* ---- Rescale at pointwise nonlinearities ---- */

/* Whether some |x - x0| < DL_EPS. */
SAL_CLONES bool rescale_near(const float *x, const float *x0, int64_t n) {
    int near = 0;
#pragma omp simd reduction(| : near)
    for (int64_t i = 0; i < n; i++) near |= fabs((double)x[i] - x0[i]) < DL_EPS;
    return near;
}

/* dx += dy (y - y0) / (x - x0) where |x - x0| >= DL_EPS. Both loops are written without branches
 * or early exits and compiled for AVX-512 and AVX2 too, where they vectorize (the baseline cannot
 * select between doubles): ResNet-50's rescale rules 23 -> 11 ms a call at batch 1. */
SAL_CLONES void rescale_rows(float *dx, const float *dy, const float *x, const float *x0, const float *y,
                             const float *y0, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - x0[i], far = fabs(d) >= DL_EPS ? 1.0 : 0.0; /* a factor, not a branch */
        dx[i] += (float)(dy[i] * (far * ((double)y[i] - y0[i]) / (d + (1.0 - far))));
    }
}

static sal_status dl_rescale(sal_opctx *c, dl_state *st) {
    const sal_tensor *X0 = ref_of(st, c->n->in[0]), *Y0 = ref_of(st, c->n->out[0]);
    SAL_TRY(check_ref(c, c->in[0], X0));
    const float *x = sal_in_f(c, 0), *y = sal_out_f(c, 0), *x0 = sal_f32(X0), *y0 = sal_f32(Y0);
    const float *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    int64_t n = sal_tensor_numel(c->in[0]);
    if (rescale_near(x, x0, n)) { /* the op's own gradient, fed only where x is at its reference */
        sal_tensor g = {0};
        sal_status s = sal_tensor_alloc(&g, SAL_F32, c->dout[0]->ndim, c->dout[0]->dim);
        for (int64_t i = 0; s == SAL_OK && i < n; i++)
            if (fabs((double)x[i] - x0[i]) < DL_EPS) sal_f32(&g)[i] = dy[i];
        if (s == SAL_OK) s = node_backward(c, c->in, &g, 0, c->din[0]);
        sal_tensor_free(&g);
        SAL_TRY(s);
    }
    rescale_rows(dx, dy, x, x0, y, y0, n);
    return SAL_OK;
}

/* ---- RevealCancel ---- */

/* The weighted sum feeding c->n's input, when RevealCancel can split it: a Gemm, Conv or MatMul
 * node with exactly one operand (*k) depending on the model input and a bias that does not. */
static const sal_node *weighted_sum(const dl_state *st, const sal_opctx *c, int *k) {
    const sal_model *g = c->g;
    int v = c->n->in[0];
    if (g->val[v].kind != SAL_VAL_NODE || g->val[v].producer < 0) return NULL;
    const sal_node *L = &g->node[g->val[v].producer];
    if (!sal_node_has(L, SAL_TR_LINEAR)) return NULL;
    if (L->nout != 1 || L->out[0] != v || L->nin < 2 || L->in[0] < 0 || L->in[1] < 0) return NULL;
    bool a = st->s->need[L->in[0]], b = st->s->need[L->in[1]];
    if (a == b || (L->nin > 2 && L->in[2] >= 0 && st->s->need[L->in[2]])) return NULL;
    *k = a ? 0 : 1;
    return L;
}

static sal_status split_signs(const sal_tensor *t, sal_tensor *p, sal_tensor *n) {
    SAL_TRY(sal_tensor_alloc(p, SAL_F32, t->ndim, t->dim));
    SAL_TRY(sal_tensor_alloc(n, SAL_F32, t->ndim, t->dim));
    const float *a = sal_f32(t);
    for (int64_t i = 0, m = sal_tensor_numel(t); i < m; i++) {
        sal_f32(p)[i] = a[i] > 0.0f ? a[i] : 0.0f;
        sal_f32(n)[i] = a[i] < 0.0f ? a[i] : 0.0f;
    }
    return SAL_OK;
}

/* out (+)= L applied to operand a with weights w and no bias: L's own forward on swapped inputs. */
static sal_status apply_linear(const sal_opctx *c, const sal_node *L, int k, sal_tensor *a, sal_tensor *w,
                               sal_tensor *out, bool add) {
    sal_tensor *in[L->nin + 1], t = {0}, *o[2] = {&t, NULL};
    for (int i = 0; i < L->nin; i++) in[i] = NULL;
    in[k] = a;
    in[1 - k] = w;
    sal_status s = sal_run_node(c->g, L, in, o, c->ws);
    if (s == SAL_OK && !add) s = sal_tensor_copy(out, &t);
    else if (s == SAL_OK)
        for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++) sal_f32(out)[i] += sal_f32(&t)[i];
    sal_tensor_free(&t);
    return s;
}

/* c->n's forward on x0 + d into out. */
static sal_status apply_shifted(const sal_opctx *c, const sal_tensor *x0, const sal_tensor *d, sal_tensor *out) {
    sal_tensor t = {0};
    sal_status s = sal_tensor_copy(&t, x0);
    for (int64_t i = 0, n = sal_tensor_numel(&t); s == SAL_OK && i < n; i++) sal_f32(&t)[i] += sal_f32(d)[i];
    int nin = c->n->nin;
    sal_tensor *in[nin + 1], *o[2] = {out, NULL};
    for (int i = 0; i < nin; i++) in[i] = c->in[i];
    in[0] = &t;
    if (s == SAL_OK) s = sal_run_node(c->g, c->n, in, o, c->ws);
    sal_tensor_free(&t);
    return s;
}

/* Shrikumar et al.'s RevealCancel rule: with dx+ and dx- the sums of the positive and negative terms of
 * x - x0,
 *   dy+ = 1/2 (f(x0 + dx+) - f(x0)) + 1/2 (f(x0 + dx- + dx+) - f(x0 + dx-))
 *   dy- = 1/2 (f(x0 + dx-) - f(x0)) + 1/2 (f(x0 + dx+ + dx-) - f(x0 + dx+))
 * and m+ = dy+ / dx+, m- = dy- / dx-; dy+ + dy- = y - y0, so nothing is lost. f(x0 + dx+ + dx-) is
 * the forward pass's y, which keeps the sum exact to rounding. The multipliers wait in pos/neg for
 * the weighted sum's rule (dl_weighted), which alone knows which term each input made. */
static sal_status dl_reveal(sal_opctx *c, dl_state *st, const sal_node *L, int k) {
    int v = c->n->in[0];
    const sal_tensor *A = &st->s->act[L->in[k]], *A0 = ref_of(st, L->in[k]), *W = &st->s->act[L->in[1 - k]];
    const sal_tensor *X0 = ref_of(st, v), *Y0 = ref_of(st, c->n->out[0]);
    SAL_TRY(check_ref(c, c->in[0], X0));
    SAL_TRY(check_ref(c, A, A0));
    sal_tensor da = {0}, dap = {0}, dan = {0}, wp = {0}, wn = {0}, xp = {0}, xn = {0}, fp = {0}, fn = {0};
    sal_tensor one = {0}, fd = {0};
    sal_status s = sal_tensor_copy(&da, A);
    for (int64_t i = 0, n = sal_tensor_numel(A); s == SAL_OK && i < n; i++) sal_f32(&da)[i] -= sal_f32(A0)[i];
    if (s == SAL_OK) s = split_signs(&da, &dap, &dan);
    if (s == SAL_OK) s = split_signs(W, &wp, &wn);
    /* dx+ = W+ da+ + W- da-,  dx- = W+ da- + W- da+ */
    if (s == SAL_OK) s = apply_linear(c, L, k, &dap, &wp, &xp, false);
    if (s == SAL_OK) s = apply_linear(c, L, k, &dan, &wn, &xp, true);
    if (s == SAL_OK) s = apply_linear(c, L, k, &dan, &wp, &xn, false);
    if (s == SAL_OK) s = apply_linear(c, L, k, &dap, &wn, &xn, true);
    if (s == SAL_OK && !sal_tensor_same_shape(&xp, c->in[0]))
        s = sal_node_fail(L, SAL_ERR_INTERNAL, "deeplift: the split weighted sum has the wrong shape");
    if (s == SAL_OK) s = apply_shifted(c, X0, &xp, &fp);
    if (s == SAL_OK) s = apply_shifted(c, X0, &xn, &fn);
    /* the gradient, for a term too small to divide by */
    if (s == SAL_OK) s = sal_tensor_alloc(&one, SAL_F32, c->out[0]->ndim, c->out[0]->dim);
    for (int64_t i = 0, n = sal_tensor_numel(&one); s == SAL_OK && i < n; i++) sal_f32(&one)[i] = 1.0f;
    if (s == SAL_OK) s = sal_tensor_alloc(&fd, SAL_F32, c->in[0]->ndim, c->in[0]->dim);
    if (s == SAL_OK) s = node_backward(c, c->in, &one, 0, &fd);
    if (s == SAL_OK && !st->pos[v].data) {
        s = sal_tensor_alloc(&st->pos[v], SAL_F32, c->in[0]->ndim, c->in[0]->dim);
        if (s == SAL_OK) s = sal_tensor_alloc(&st->neg[v], SAL_F32, c->in[0]->ndim, c->in[0]->dim);
    }
    if (s == SAL_OK) {
        const float *y = sal_out_f(c, 0), *y0 = sal_f32(Y0), *dy = sal_f32(c->dout[0]);
        float *P = sal_f32(&st->pos[v]), *Q = sal_f32(&st->neg[v]);
        for (int64_t i = 0, n = sal_tensor_numel(c->in[0]); i < n; i++) {
            double dp = sal_f32(&xp)[i], dn = sal_f32(&xn)[i], f0 = y0[i], f = y[i];
            double up = 0.5 * (sal_f32(&fp)[i] - f0) + 0.5 * (f - sal_f32(&fn)[i]);
            double un = 0.5 * (sal_f32(&fn)[i] - f0) + 0.5 * (f - sal_f32(&fp)[i]);
            double mp = fabs(dp) >= DL_EPS ? up / dp : sal_f32(&fd)[i];
            double mn = fabs(dn) >= DL_EPS ? un / dn : sal_f32(&fd)[i];
            P[i] += (float)(dy[i] * mp);
            Q[i] += (float)(dy[i] * mn);
        }
    }
    sal_tensor *tmp[] = {&da, &dap, &dan, &wp, &wn, &xp, &xn, &fp, &fn, &one, &fd};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) sal_tensor_free(tmp[i]);
    return s;
}

static sal_status dl_pointwise(sal_opctx *c, void *user) {
    dl_state *st = user;
    if (varies(c, 1) || varies(c, 2))
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "deeplift: bounds that depend on the input are not supported");
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    int k;
    const sal_node *L = st->reveal ? weighted_sum(st, c, &k) : NULL;
    if (st->reveal) st->split[c->n - c->g->node] = L ? 1 : 2;
    return L ? dl_reveal(c, st, L, k) : dl_rescale(c, st);
}

/* A weighted sum: the gradient for whatever reached it directly, and for the multipliers a
 * RevealCancel nonlinearity left, each weight passes m+ when its term w*da was positive, m- when
 * negative, their mean when zero (da = 0: the term contributes nothing either way):
 *   da > 0: W+^T P + W-^T Q,   da < 0: W+^T Q + W-^T P. */
static sal_status dl_weighted(sal_opctx *c, void *user) {
    dl_state *st = user;
    SAL_TRY(sal_rule_linear(c, user));
    int v = c->n->out[0];
    if (!st->pos || !st->pos[v].data) return SAL_OK;
    int k = c->din[0] ? 0 : 1;
    sal_tensor wp = {0}, wn = {0}, b1 = {0}, b2 = {0}, *in[c->n->nin + 1];
    const sal_tensor *A0 = ref_of(st, c->n->in[k]);
    sal_status s = c->din[k] ? check_ref(c, c->in[k], A0) : SAL_OK;
    if (s == SAL_OK && !c->din[k]) goto done;
    if (s == SAL_OK) s = split_signs(c->in[1 - k], &wp, &wn);
    if (s == SAL_OK) s = sal_tensor_alloc(&b1, SAL_F32, c->in[k]->ndim, c->in[k]->dim);
    if (s == SAL_OK) s = sal_tensor_alloc(&b2, SAL_F32, c->in[k]->ndim, c->in[k]->dim);
    for (int i = 0; i < c->n->nin; i++) in[i] = NULL;
    in[k] = c->in[k];
    in[1 - k] = &wp;
    if (s == SAL_OK) s = node_backward(c, in, &st->pos[v], k, &b1);
    if (s == SAL_OK) s = node_backward(c, in, &st->neg[v], k, &b2);
    in[1 - k] = &wn;
    if (s == SAL_OK) s = node_backward(c, in, &st->neg[v], k, &b1);
    if (s == SAL_OK) s = node_backward(c, in, &st->pos[v], k, &b2);
    if (s == SAL_OK) {
        const float *a = sal_f32(c->in[k]), *a0 = sal_f32(A0), *p1 = sal_f32(&b1), *p2 = sal_f32(&b2);
        float *d = sal_f32(c->din[k]);
        for (int64_t j = 0, n = sal_tensor_numel(c->in[k]); j < n; j++) {
            double da = (double)a[j] - a0[j];
            d[j] += da > 0 ? p1[j] : da < 0 ? p2[j] : 0.5f * (p1[j] + p2[j]);
        }
    }
done:
    sal_tensor_free(&st->pos[v]);
    sal_tensor_free(&st->neg[v]);
    sal_tensor_free(&wp);
    sal_tensor_free(&wn);
    sal_tensor_free(&b1);
    sal_tensor_free(&b2);
    return s;
}

/* A Gemm over a ReLU (Rescale): its input gradient is needed only where the unit is active for x or
 * for the reference; elsewhere y = y0 = 0 and the ReLU's Rescale multiplies it by zero
 * (sal_rule_linear_masked: a batch-1 dense layer is bound by reading its weights' rows). */
static sal_status dl_gemm(sal_opctx *c, void *user) {
    dl_state *st = user;
    if (!sal_gemm_over_relu(c)) return sal_rule_linear(c, user);
    const sal_tensor *A0 = ref_of(st, c->n->in[0]);
    SAL_TRY(check_ref(c, c->in[0], A0));
    return sal_rule_linear_masked(c, user, sal_f32(A0));
}

/* ---- max pooling ---- */

/* One window: taps idx[0..n) of x and of the reference x0, output gradient g. With a the argmax of x
 * and b that of x0, the window's difference dy = x[a] - x0[b] satisfies
 *   x[b] - x0[b] <= dy <= x[a] - x0[a]
 * (x[a] >= x[b] and x0[b] >= x0[a]). So when the maximum rose we credit a, the gradient's route
 * (as Captum does), and when it fell we credit b, the input that was on top at the reference: either
 * way the multiplier dy / dx lies in [0, 1], as Rescale gives for a ReLU, and the window's
 * contribution is exactly dy. Where that dx is below DL_EPS so is dy: the gradient. */
/* maxpool=gradient: dx[a] += g (Shrikumar et al.'s MaxPoolDeepLiftMode.gradient, their default).
 * maxpool=captum: Captum's maxpool(): u[a] += g (max(y, y0) - y0), u[b] += g (y - max(y, y0)) and the
 * gradient ga[a] += g, then per element m = u / (x - x0), or ga where |x - x0| < 1e-10 (dl_maxpool).
 * Its contributions are ours; only the fallback differs (per element, to the gradient). */
static void dl_max_window(int mode, const float *x, const float *x0, const int64_t *idx, int64_t n, float g, float *dx,
                          double *u, double *ga) {
    if (n == 0) return;
    int64_t a = idx[0], b = idx[0];
    for (int64_t t = 1; t < n; t++) {
        if (x[idx[t]] > x[a]) a = idx[t];
        if (x0[idx[t]] > x0[b]) b = idx[t];
    }
    if (mode == MP_GRADIENT) {
        dx[a] += g;
        return;
    }
    if (mode == MP_CAPTUM) {
        double y = x[a], y0 = x0[b], top = fmax(y, y0);
        u[a] += g * (top - y0);
        u[b] += g * (y - top);
        ga[a] += g;
        return;
    }
    double dy = (double)x[a] - x0[b], ra = (double)x[a] - x0[a], rb = (double)x[b] - x0[b];
    int64_t r = dy >= 0 ? a : b;
    double dr = dy >= 0 ? ra : rb;
    dx[r] += fabs(dr) >= DL_EPS ? (float)(g * (dy / dr)) : g;
}

/* dl_max_window's conserving rule on n 2x2 windows laid out one after another: window k's taps
 * are t[2k], t[2k + 1] (its top row) and b[2k], b[2k + 1] (bottom), t0 and b0 the reference's; dt
 * and db get each tap's contribution (the window's credit at one tap, 0 at the others). The same
 * argmax in tap order and the same doubles, written as selects so that the clones vectorize it. */
SAL_CLONES void dl_max_2x2_flat(float *dt, float *db, const float *t, const float *b, const float *t0,
                                const float *b0, const float *g, int64_t n) {
#pragma omp simd
    for (int64_t k = 0; k < n; k++) {
        float v0 = t[2 * k], v1 = t[2 * k + 1], v2 = b[2 * k], v3 = b[2 * k + 1];
        float w0 = t0[2 * k], w1 = t0[2 * k + 1], w2 = b0[2 * k], w3 = b0[2 * k + 1];
        float a = 0, c = 0, xa = v0, yc = w0; /* the argmaxes of x and x0 as tap numbers */
        a = v1 > xa ? 1 : a, xa = v1 > xa ? v1 : xa, c = w1 > yc ? 1 : c, yc = w1 > yc ? w1 : yc;
        a = v2 > xa ? 2 : a, xa = v2 > xa ? v2 : xa, c = w2 > yc ? 2 : c, yc = w2 > yc ? w2 : yc;
        a = v3 > xa ? 3 : a, xa = v3 > xa ? v3 : xa, c = w3 > yc ? 3 : c, yc = w3 > yc ? w3 : yc;
        double dy = (double)xa - yc;
        float r = dy >= 0 ? a : c;
        double dr = (r == 0) * ((double)v0 - w0) + (r == 1) * ((double)v1 - w1) + (r == 2) * ((double)v2 - w2) +
                    (r == 3) * ((double)v3 - w3); /* one term is not 0 */
        double far = fabs(dr) >= DL_EPS ? 1.0 : 0.0; /* a factor, not a branch */
        float cr = (float)(g[k] * (far * dy / (dr + (1.0 - far)) + (1.0 - far)));
        dt[2 * k] = r == 0 ? cr : 0.0f;
        dt[2 * k + 1] = r == 1 ? cr : 0.0f;
        db[2 * k] = r == 2 ? cr : 0.0f;
        db[2 * k + 1] = r == 3 ? cr : 0.0f;
    }
}

/* The conserving rule over every plane of X (planes of H x W, 2x2 windows OH x OW: sal_win_2x2):
 * the window rows' top and bottom input rows are copied apart, 64 row pairs at a time, so that
 * their windows make one long vectorized loop (rows of 7 or 14 windows left it mostly to scalar
 * code with unpredictable branches: 6 ns a window in the small CNN, 4 ns now with the copies). */
static sal_status dl_max_2x2_planes(const float *X, const float *X0, const float *G, float *dX, int64_t planes,
                                    int64_t H, int64_t W, int64_t OH, int64_t OW) {
    const int64_t R = planes * OH, L = 2 * OW, RB = 64; /* row pairs, the columns windows use, a block */
    float *buf = sal_malloc((size_t)(6 * RB * L) * sizeof *buf);
    if (!buf) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    float *t = buf, *b = t + RB * L, *t0 = b + RB * L, *b0 = t0 + RB * L, *dt = b0 + RB * L, *db = dt + RB * L;
    for (int64_t r0 = 0; r0 < R; r0 += RB) {
        int64_t nr = R - r0 < RB ? R - r0 : RB;
        for (int64_t r = 0; r < nr; r++) {
            const float *restrict x = X + ((r0 + r) / OH) * H * W + 2 * ((r0 + r) % OH) * W;
            const float *restrict x0 = X0 + (x - X);
            float *restrict ct = t + r * L, *restrict cb = b + r * L, *restrict ct0 = t0 + r * L;
            float *restrict cb0 = b0 + r * L;
#pragma omp simd
            for (int64_t i = 0; i < L; i++) ct[i] = x[i], cb[i] = x[W + i], ct0[i] = x0[i], cb0[i] = x0[W + i];
        }
        dl_max_2x2_flat(dt, db, t, b, t0, b0, G + r0 * OW, nr * OW);
        for (int64_t r = 0; r < nr; r++) {
            float *restrict dx = dX + ((r0 + r) / OH) * H * W + 2 * ((r0 + r) % OH) * W, *restrict dx1 = dx + W;
            const float *restrict st = dt + r * L, *restrict sb = db + r * L;
#pragma omp simd
            for (int64_t i = 0; i < L; i++) dx[i] += st[i];
#pragma omp simd
            for (int64_t i = 0; i < L; i++) dx1[i] += sb[i];
        }
    }
    sal_free(buf);
    return SAL_OK;
}

static sal_status dl_maxpool(sal_opctx *c, void *user) {
    dl_state *st = user;
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const sal_tensor *X = c->in[0], *X0 = ref_of(st, c->n->in[0]);
    SAL_TRY(check_ref(c, X, X0));
    bool global = sal_node_is(c->n, SAL_OP_GlobalMaxPool);
    sal_win w;
    if (global) { /* the whole plane is one window */
        memset(&w, 0, sizeof w);
        w.in_sz = 1;
        for (int i = 2; i < X->ndim; i++) w.in_sz *= X->dim[i];
        w.out_sz = 1;
    } else {
        sal_win_attr wa;
        SAL_TRY(sal_win_parse(c->n, true, true, &wa));
        SAL_TRY(sal_win_plan(c->n, &wa, X->ndim - 2, X->dim + 2, NULL, &w));
    }
    int mode = st->maxpool;
    if (!global && sal_win_2x2(&w) && mode == MP_CONSERVING)
        return dl_max_2x2_planes(sal_f32(X), sal_f32(X0), sal_f32(c->dout[0]), sal_f32(c->din[0]),
                                 X->dim[0] * X->dim[1], w.in[1], w.in[2], w.out[1], w.out[2]);
    int64_t *idx = sal_malloc((size_t)((global ? w.in_sz : w.k_sz) + 1) * sizeof *idx);
    double *u = mode == MP_CAPTUM ? sal_malloc((size_t)(2 * w.in_sz + 1) * sizeof *u) : NULL;
    /* each dimension's windows: first position and taps inside [lo, hi), tabulated once, so that
     * the window loop does no divisions (they were most of its time) */
    int64_t *tab = sal_malloc((size_t)(3 * (w.out[0] + w.out[1] + w.out[2]) + 1) * sizeof *tab), *t[3];
    if (!idx || (mode == MP_CAPTUM && !u) || !tab) {
        sal_free(idx);
        sal_free(u);
        sal_free(tab);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    for (int q = 0, at = 0; q < 3; at += 3 * (int)w.out[q], q++) {
        t[q] = tab + at;
        for (int64_t o = 0; o < w.out[q]; o++) {
            t[q][3 * o] = o * w.s[q] - w.pb[q];
            sal_win_range(t[q][3 * o], w.d[q], w.k[q], w.in[q], &t[q][3 * o + 1], &t[q][3 * o + 2]);
        }
    }
    double *ga = u ? u + w.in_sz : NULL;
    const int64_t planes = X->dim[0] * X->dim[1];
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = sal_f32(X) + pl * w.in_sz, *x0 = sal_f32(X0) + pl * w.in_sz;
        const float *g = sal_f32(c->dout[0]) + pl * w.out_sz;
        float *dx = sal_f32(c->din[0]) + pl * w.in_sz;
        if (u) memset(u, 0, sizeof *u * (size_t)(2 * w.in_sz));
        if (global) {
            for (int64_t i = 0; i < w.in_sz; i++) idx[i] = i;
            dl_max_window(mode, x, x0, idx, w.in_sz, g[0], dx, u, ga);
        } else {
            int64_t o[3], j = 0;
            for (o[0] = 0; o[0] < w.out[0]; o[0]++)
                for (o[1] = 0; o[1] < w.out[1]; o[1]++)
                    for (o[2] = 0; o[2] < w.out[2]; o[2]++, j++) {
                        const int64_t *A = t[0] + 3 * o[0], *B = t[1] + 3 * o[1], *E = t[2] + 3 * o[2];
                        int64_t n = 0;
                        for (int64_t a = A[1]; a < A[2]; a++)
                            for (int64_t b = B[1]; b < B[2]; b++)
                                for (int64_t e = E[1]; e < E[2]; e++)
                                    idx[n++] = ((A[0] + a * w.d[0]) * w.in[1] + B[0] + b * w.d[1]) * w.in[2] +
                                               E[0] + e * w.d[2];
                        /* a window wholly in the padding has n = 0 */
                        dl_max_window(mode, x, x0, idx, n, g[j], dx, u, ga);
                    }
        }
        if (u) /* Captum divides the unpooled differences by the element's own difference */
            for (int64_t i = 0; i < w.in_sz; i++) {
                double d = (double)x[i] - x0[i];
                dx[i] += (float)(fabs(d) < 1e-10 ? ga[i] : u[i] / d);
            }
    }
    sal_free(idx);
    sal_free(u);
    sal_free(tab);
    return SAL_OK;
}

/* ---- a softmax giving the model output ---- */

/* Softmax (and LogSoftmax) ignore a constant added to every logit, so the paper explains the logit
 * minus the mean logit: the seed loses its mean over the classes. */
static sal_status dl_softmax_out(sal_opctx *c, void *user) {
    (void)user;
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const sal_tensor *X = c->in[0];
    int64_t axis = sal_attr_int(c->n, "axis", c->g->opset < 13 ? 1 : -1);
    if (X->ndim != 2 || (axis != 1 && axis != -1))
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "deeplift explains a softmax output only over the classes "
                                                        "of a (batch, classes) tensor");
    int64_t B = X->dim[0], K = X->dim[1];
    const float *g = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    for (int64_t b = 0; b < B; b++) {
        double mean = 0;
        for (int64_t k = 0; k < K; k++) mean += g[b * K + k];
        mean /= (double)K;
        for (int64_t k = 0; k < K; k++) dx[b * K + k] += (float)(g[b * K + k] - mean);
    }
    return SAL_OK;
}

/* ---- the driver ---- */

/* The reference, shaped as x: zero, black (the input range's low end) or an NPY file holding one
 * sample (with or without a batch axis of 1) or one per sample. */
static sal_status make_reference(const sal_xctx *c, sal_tensor *ref) {
    const sal_tensor *x = c->x;
    const char *b = sal_param(c, "baseline");
    SAL_TRY(sal_tensor_alloc(ref, SAL_F32, x->ndim, x->dim));
    int64_t n = sal_tensor_numel(x), row = sal_row_size(x);
    if (!strcmp(b, "zero")) return SAL_OK;
    if (!strcmp(b, "black")) {
        for (int64_t i = 0; i < n; i++) sal_f32(ref)[i] = (float)c->lo;
        return SAL_OK;
    }
    sal_tensor t = {0};
    sal_status s = sal_npy_read(b, &t);
    if (s != SAL_OK) return sal_wrap(s, "parameter baseline=%s (zero, black or an NPY file)", b);
    bool same = t.dtype == SAL_F32 && sal_tensor_same_shape(&t, x);
    bool one = t.dtype == SAL_F32 && sal_tensor_numel(&t) == row &&
               ((t.ndim == x->ndim && t.dim[0] == 1) || t.ndim == x->ndim - 1);
    for (int d = 1; one && d < x->ndim; d++) one = t.dim[d - (t.ndim == x->ndim - 1)] == x->dim[d];
    if (!same && !one) {
        char a[160], e[160];
        s = sal_fail(SAL_ERR_SHAPE, "parameter baseline=%s: a float32 array of shape %s does not fit inputs %s (give "
                                    "one sample or one per sample)",
                     b, sal_shape_str(t.ndim, t.dim, a, sizeof a), sal_shape_str(x->ndim, x->dim, e, sizeof e));
    }
    for (int64_t i = 0; s == SAL_OK && i < n; i++) {
        float v = sal_f32(&t)[same ? i : i % row];
        if (!isfinite(v))
            s = sal_fail(SAL_ERR_NUMERIC, "parameter baseline=%s: non-finite value at %lld", b, (long long)i);
        sal_f32(ref)[i] = v;
    }
    sal_tensor_free(&t);
    return s;
}

static const char k_supported[] = "Relu, LeakyRelu, Sigmoid, Tanh, Clip, MaxPool, GlobalMaxPool, a Softmax or "
                                  "LogSoftmax giving the model output, and linear ops";

/* One DeepLIFT run: the rules' state, the reference pass's session and the completeness figures. */
typedef struct {
    sal_xctx *c;
    dl_state *st;
    sal_session *ref;
    const sal_tensor *x0; /* (N, ...) the reference of every sample */
    int zv;               /* the explained value: the output, or the logits under an output softmax */
    bool softmax_out;
    double worst, worst_rel;
    sal_tensor *mult;     /* optional: the multipliers at the input, shaped as x */
} dl_job;

/* The reference rows of the chunk, forward on their own session, so each rule sees both passes
 * (skipped when that session's last pass ran on the same rows). */
static sal_status dl_before(void *u, const sal_chunk *ch) {
    const dl_job *j = u;
    sal_tensor rb = sal_tensor_view(j->x0);
    rb.data = sal_f32(j->x0) + ch->r0 * sal_row_size(j->x0);
    rb.dim[0] = ch->n;
    return sal_exec_forward_reuse(j->ref, &rb);
}

/* attribution = multiplier * (x - x0); completeness against the output difference. */
static sal_status dl_after(void *u, const sal_chunk *ch) {
    dl_job *j = u;
    const sal_model *m = j->c->m;
    for (int v = 0; v < m->nval; v++) { /* multipliers no weighted sum took (none normally) */
        sal_tensor_free(&j->st->pos[v]);
        sal_tensor_free(&j->st->neg[v]);
    }
    const sal_tensor *z = &ch->s->act[j->zv], *z0 = &j->ref->act[j->zv];
    int64_t K = z->dim[1], row = sal_row_size(ch->x);
    for (int64_t b = 0; b < ch->n; b++) {
        float *a = sal_f32(&j->c->out) + (ch->r0 + b) * row;
        const float *gb = sal_f32(ch->g) + b * row, *xr = sal_f32(ch->x) + b * row;
        const float *rr = sal_f32(j->x0) + (ch->r0 + b) * row;
        if (j->mult) memcpy(sal_f32(j->mult) + (ch->r0 + b) * row, gb, (size_t)row * sizeof *gb);
        double sum = 0, want = 0;
        for (int64_t i = 0; i < row; i++) {
            a[i] = gb[i] * (xr[i] - rr[i]);
            sum += a[i];
        }
        const float *zb = sal_f32(z) + b * K, *z0b = sal_f32(z0) + b * K;
        int64_t t = ch->target[b];
        if (j->c->region) { /* the region's weighted sum */
            int64_t zr = sal_row_size(z);
            const float *w = j->c->mask ? j->c->mask + (j->c->mask_rows > 1 ? t : 0) * zr : NULL;
            for (int64_t e = 0; e < zr; e++) want += (w ? w[e] : 1.0) * ((double)sal_f32(z)[b * zr + e] - sal_f32(z0)[b * zr + e]);
        } else {
            want = (double)zb[t] - z0b[t];
        }
        if (j->softmax_out) {
            double mean = 0;
            for (int64_t k = 0; k < K; k++) mean += (double)zb[k] - z0b[k];
            want -= mean / (double)K;
        }
        j->worst = fmax(j->worst, fabs(sum - want));
        j->worst_rel = fmax(j->worst_rel, fabs(sum - want) / fmax(fabs(want), 1e-12));
    }
    return SAL_OK;
}

/* DeepLIFT of c->x against the references x0 (shaped as x; NULL: from the `baseline` parameter),
 * into c->out; mult (optional) gets the multipliers at the input. */
sal_status sal_deeplift_refs(sal_xctx *c, const sal_tensor *x0in, sal_tensor *mult) {
    const sal_model *m = c->m;
    static const char *const variants[] = {"rescale", "revealcancel", NULL};
    static const char *const pools[] = {"conserving", "gradient", "captum", NULL};
    int variant, pool;
    SAL_TRY(sal_param_choice(c, "variant", variants, &variant));
    SAL_TRY(sal_param_choice(c, "maxpool", pools, &pool));
    if (c->prob)
        return sal_fail(SAL_ERR_UNSUPPORTED, "explains logits, not softmax probabilities: the paper takes "
                                             "contributions to the layer before the softmax");
    int out = sal_explained(c, m), prod = m->val[out].kind == SAL_VAL_NODE ? m->val[out].producer : -1;
    bool softmax_out = prod >= 0 && sal_rule_kind_of(&m->node[prod]) == SAL_RK_SOFTMAX;
    if (softmax_out && c->region)
        return sal_fail(SAL_ERR_UNSUPPORTED, "explains the logits under an output softmax, which needs a class target, "
                                             "not a region");
    dl_state st = {.base = {.method = c->meth->name, .supported = k_supported}, .reveal = variant == 1,
                   .maxpool = pool, .s = c->s};
    sal_rule_fn *rules = sal_calloc((size_t)m->nnode + 1, sizeof *rules);
    st.pos = sal_calloc((size_t)m->nval + 1, sizeof *st.pos);
    st.neg = sal_calloc((size_t)m->nval + 1, sizeof *st.neg);
    st.split = sal_calloc((size_t)m->nnode + 1, 1);
    sal_session *ref = NULL;
    sal_tensor x0 = {0};
    sal_status s = rules && st.pos && st.neg && st.split ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; s == SAL_OK && i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        switch (sal_rule_kind_of(n)) {
        case SAL_RK_LINEAR: rules[i] = NULL; break;
        case SAL_RK_PRODUCT:
            rules[i] = st.reveal && sal_node_has(n, SAL_TR_LINEAR) ? dl_weighted
                       : sal_node_is(n, SAL_OP_Gemm)                ? dl_gemm
                                                                    : sal_rule_linear;
            break;
        case SAL_RK_RELU:
        case SAL_RK_LEAKY:
        case SAL_RK_SMOOTH:
        case SAL_RK_CLIP: rules[i] = dl_pointwise; break;
        case SAL_RK_MAXPOOL:
        case SAL_RK_GMAXPOOL: rules[i] = dl_maxpool; break;
        case SAL_RK_SOFTMAX: rules[i] = i == prod ? dl_softmax_out : sal_rule_reject; break;
        default: rules[i] = sal_rule_reject; break;
        }
    }
    for (int i = 0; c->rules && i < m->nnode && s == SAL_OK; i++)
        s = sal_rule_describe(c, i, rules[i], rules[i] == dl_softmax_out ? "softmax at the output: logits, mean-centred"
                              : rules[i] == dl_maxpool ? "max pooling: the window's difference to one input"
                              : rules[i] == dl_weighted ? "RevealCancel split of the weighted sum"
                              : rules[i] == dl_gemm     ? "gradient, while linear in what depends on the input"
                                                        : "Rescale: (y - y0) / (x - x0)");
    bool go = !c->rules; /* describe mode stops here */
    if (s == SAL_OK && go && !x0in) s = make_reference(c, &x0);
    if (s == SAL_OK && go && mult) s = sal_tensor_alloc(mult, SAL_F32, c->x->ndim, c->x->dim);
    /* the session's own reference session when it is of this model: a repeated reference skips its pass */
    bool keep = c->s && c->s->m == m;
    if (s == SAL_OK && go) s = keep ? sal_exec_ref_session(c->s, &ref) : sal_session_new(m, &ref);
    st.ref = ref;
    if (s == SAL_OK && go) s = sal_tensor_alloc(&c->out, SAL_F32, c->x->ndim, c->x->dim);
    dl_job j = {.c = c, .st = &st, .ref = ref, .x0 = x0in ? x0in : &x0, .zv = softmax_out ? m->node[prod].in[0] : out,
                .softmax_out = softmax_out, .mult = mult};
    sal_batched b = {.rules = rules, .rule_user = &st, .before = dl_before, .after = dl_after, .u = &j};
    if (s == SAL_OK && go) s = sal_run_batched(c, &b);
    if (s == SAL_OK && go) {
        sal_metric(c, "completeness_delta", j.worst);
        sal_metric(c, "completeness_rel", j.worst_rel);
        if (st.reveal) {
            int split = 0, single = 0;
            for (int i = 0; i < m->nnode; i++) split += st.split[i] == 1, single += st.split[i] == 2;
            sal_metric(c, "revealcancel_split_nodes", split);
            sal_metric(c, "revealcancel_rescale_nodes", single);
        }
    }
    if (!keep) sal_session_free(ref);
    sal_tensor_free(&x0);
    if (st.pos)
        for (int v = 0; v < m->nval; v++) sal_tensor_free(&st.pos[v]);
    if (st.neg)
        for (int v = 0; v < m->nval; v++) sal_tensor_free(&st.neg[v]);
    sal_free(st.pos);
    sal_free(st.neg);
    sal_free(st.split);
    sal_free(rules);
    return s;
}

static sal_status run_deeplift(sal_xctx *c) { return sal_deeplift_refs(c, NULL, NULL); }

static const sal_param_spec k_params[] = {
    {"baseline", "zero", "reference input: zero, black (the input range's low end) or an NPY file"},
    {"variant", "rescale", "rule at nonlinearities: rescale or revealcancel"},
    {"maxpool", "conserving", "max pooling: conserving (the window's difference to the argmax of x if the maximum "
                              "rose, of the reference if it fell), captum (Captum's rule, per element) or gradient "
                              "(the authors' code's default: the gradient, not conserving)"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_deeplift = {
    .name = "deeplift",
    .summary = "contributions of x - reference through Rescale/RevealCancel multipliers (Shrikumar et al. 2017)",
    .params = k_params,
    .run = run_deeplift,
    .logits = "it explains the logits before an output Softmax (the paper's adjustment for softmax layers) and refuses "
              "--output prob",
    .describes = true,
};
