/* Methods that change only the backward rule of ReLUs: deconvnet, guided backprop, RectGrad and
 * Khakzar et al.'s RectGrad_Mod. Every other node keeps its gradient (linear ops, and max pooling,
 * whose gradient routes through the forward pass's argmax, the "switches" of Zeiler & Fergus).
 * Nonlinearities these methods have no definition for (Sigmoid, Tanh, a Softmax inside the graph,
 * a product of two input-dependent values) are refused with the node named. Also the op table
 * shared with deeplift.c. */
#include "relu_rules.h"
#include "ops/linear_ops.h"
#include <math.h>

/* ---- which ops are linear ---- */

/* From the op's traits and, for the activations each method defines a rule for, its id: an op
 * added later without traits is refused by every rule-based method until someone decides what it
 * means for them. */
sal_rule_kind sal_rule_kind_of(const sal_node *n) {
    if (sal_node_has(n, SAL_TR_ROUTE | SAL_TR_ADDITIVE)) return SAL_RK_LINEAR;
    if (sal_node_has(n, SAL_TR_MULTILINEAR)) return SAL_RK_PRODUCT;
    if (!n->op) return SAL_RK_OTHER;
    switch (n->op->id) {
    case SAL_OP_Relu: return SAL_RK_RELU;
    case SAL_OP_LeakyRelu: return SAL_RK_LEAKY;
    case SAL_OP_Sigmoid:
    case SAL_OP_Tanh: return SAL_RK_SMOOTH;
    case SAL_OP_Clip: return SAL_RK_CLIP;
    case SAL_OP_MaxPool: return SAL_RK_MAXPOOL;
    case SAL_OP_GlobalMaxPool: return SAL_RK_GMAXPOOL;
    default: return sal_node_has(n, SAL_TR_SOFTMAX) ? SAL_RK_SOFTMAX : SAL_RK_OTHER;
    }
}

sal_status sal_rule_linear(sal_opctx *c, void *user) {
    const sal_rule_base *b = user;
    if (!sal_node_linear_in(c->n, sal_din_mask(c)))
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED,
                             "more than one operand depends on the input, so the node is not linear and %s has no "
                             "rule for it",
                             b->method);
    if (!c->n->op->backward) return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "has no gradient");
    return c->n->op->backward(c);
}

bool sal_gemm_over_relu(const sal_opctx *c) {
    const sal_model *m = c->g;
    int a = c->n->nin > 0 ? c->n->in[0] : -1, p = a >= 0 && m->val[a].kind == SAL_VAL_NODE ? m->val[a].producer : -1;
    return sal_node_is(c->n, SAL_OP_Gemm) && p >= 0 && sal_node_is(&m->node[p], SAL_OP_Relu) && c->in[0] &&
           c->in[0]->data;
}

sal_status sal_rule_linear_masked(sal_opctx *c, void *user, const float *m1) {
    bool done = false;
    if (sal_gemm_over_relu(c) && c->din[0] && !(c->n->nin > 1 && c->din[1]) && !(c->n->nin > 2 && c->din[2]))
        SAL_TRY(sal_gemm_din_masked(c, m1, &done));
    return done ? SAL_OK : sal_rule_linear(c, user);
}

sal_status sal_rule_linear_relu(sal_opctx *c, void *user) { return sal_rule_linear_masked(c, user, NULL); }

sal_status sal_rule_reject(sal_opctx *c, void *user) {
    const sal_rule_base *b = user;
    return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "%s has no rule for %s (it has rules for %s)", b->method,
                         c->n->op_type, b->supported);
}

sal_status sal_rule_describe(const sal_xctx *c, int i, sal_rule_fn fn, const char *own) {
    const sal_node *n = &c->m->node[i];
    if (fn == sal_rule_reject) return sal_rule_line(c, i, "refused: %s has no rule for %s", c->meth->name, n->op_type);
    if (fn == sal_rule_linear || fn == sal_rule_linear_relu)
        return sal_rule_line(c, i, "gradient, while linear in what depends on the input");
    if (fn) return sal_rule_line(c, i, "%s", own);
    return sal_rule_line(c, i, "gradient");
}

/* ---- the ReLU rules ---- */

typedef enum { M_DECONV, M_GUIDED, M_RECTGRAD, M_RECTGRAD_MOD } relu_mode;

typedef struct {
    sal_rule_base base;
    relu_mode mode;
    double q;     /* RectGrad percentile in [0, 100] */
    int64_t n;    /* samples in the batch */
    float *buf;   /* one sample's importance scores, for the percentile */
    int64_t cap;
} relu_state;

/* LeakyReLU y = x (x > 0), alpha x (else): deconvnet passes dy through the same function; guided
 * backprop keeps the gradient dy * y'(x) where dy > 0. */
static sal_status rule_leaky(sal_opctx *c, void *user) {
    const relu_state *st = user;
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    float alpha = sal_attr_float(c->n, "alpha", 0.01f);
    const float *x = sal_in_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    for (int64_t i = 0, n = sal_tensor_numel(c->in[0]); i < n; i++) {
        if (st->mode == M_DECONV) dx[i] += dy[i] > 0.0f ? dy[i] : alpha * dy[i];
        else if (dy[i] > 0.0f) dx[i] += x[i] > 0.0f ? dy[i] : alpha * dy[i];
    }
    return SAL_OK;
}

/* Kim et al. 2019: keep the gradient g of a ReLU output a where its importance a*g exceeds tau, the
 * q-th percentile of a*g over the layer for that sample; Khakzar et al. 2020 (RectGrad_Mod) use
 * |a*g| instead so that strongly negative evidence flows too. a >= 0, so for tau >= 0 the units the
 * forward pass switched off drop out by themselves; we also drop them when tau < 0 (a percentile of
 * a layer with mostly negative a*g), since a unit that is off has no importance to pass on. */
static sal_status rule_rectgrad(sal_opctx *c, void *user) {
    relu_state *st = user;
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const sal_tensor *Y = c->out[0];
    if (Y->ndim < 1 || Y->dim[0] != st->n) {
        char b[160];
        return sal_node_fail(c->n, SAL_ERR_SHAPE,
                             "%s takes its percentile per sample and needs the batch (%lld) as the first axis; the "
                             "output has shape %s",
                             st->base.method, (long long)st->n, sal_shape_str(Y->ndim, Y->dim, b, sizeof b));
    }
    int64_t row = st->n ? sal_tensor_numel(Y) / st->n : 0;
    if (row > st->cap) {
        sal_free(st->buf);
        st->cap = 0;
        st->buf = sal_malloc((size_t)row * sizeof *st->buf);
        if (!st->buf) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        st->cap = row;
    }
    bool mod = st->mode == M_RECTGRAD_MOD;
    /* a = max(x, 0) from the input, which is what the ReLU's own gradient reads: a lean session
     * keeps that and not the output (sal_op.bwd_known) */
    const float *x = sal_in_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    for (int64_t b = 0; b < st->n && row > 0; b++) {
        const float *xb = x + b * row, *gb = dy + b * row;
        float *db = dx + b * row;
        for (int64_t i = 0; i < row; i++) {
            float a = xb[i] > 0.0f ? xb[i] : 0.0f;
            st->buf[i] = mod ? fabsf(a * gb[i]) : a * gb[i];
        }
        double tau = sal_percentile(st->buf, row, st->q);
        for (int64_t i = 0; i < row; i++) {
            float a = xb[i] > 0.0f ? xb[i] : 0.0f, s = mod ? fabsf(a * gb[i]) : a * gb[i];
            if (a > 0.0f && s > tau) db[i] += gb[i];
        }
    }
    return SAL_OK;
}

static const char k_supported[] = "Relu, LeakyRelu, MaxPool, GlobalMaxPool, a Softmax or LogSoftmax giving the "
                                  "model output, and linear ops";
static const char k_supported_rect[] = "Relu, MaxPool, GlobalMaxPool, a Softmax or LogSoftmax giving the model "
                                       "output, and linear ops";

static sal_status run_relu_method(sal_xctx *c, relu_mode mode) {
    const sal_model *m = c->m;
    bool rect = mode == M_RECTGRAD || mode == M_RECTGRAD_MOD;
    relu_state st = {.base = {.method = c->meth->name, .supported = rect ? k_supported_rect : k_supported},
                     .mode = mode, .n = c->x ? c->x->dim[0] : 0};
    bool gx = false;
    if (rect) {
        static const char *const outs[] = {"gradient_x_input", "gradient", NULL};
        int k;
        SAL_TRY(sal_param_float(c, "tau", 0, 100, &st.q));
        SAL_TRY(sal_param_choice(c, "output", outs, &k));
        gx = k == 0;
    }
    sal_rule_fn *rules = sal_calloc((size_t)m->nnode + 1, sizeof *rules);
    if (!rules) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        switch (sal_rule_kind_of(n)) {
        case SAL_RK_LINEAR:
        case SAL_RK_MAXPOOL:
        case SAL_RK_GMAXPOOL: rules[i] = NULL; break;
        /* guided backprop's and RectGrad's ReLUs pass nothing where the unit is off (a = 0 has no
         * importance a*g), so a Gemm over one computes the active units' entries only */
        case SAL_RK_PRODUCT: rules[i] = mode != M_DECONV ? sal_rule_linear_relu : sal_rule_linear; break;
        case SAL_RK_RELU: rules[i] = rect ? rule_rectgrad : mode == M_DECONV ? sal_rule_deconv : sal_rule_guided; break;
        /* RectGrad's importance a*g assumes a >= 0: not defined for LeakyReLU */
        case SAL_RK_LEAKY: rules[i] = rect ? sal_rule_reject : rule_leaky; break;
        /* a softmax giving the output is explained as with `prob`: its gradient, then the rules */
        case SAL_RK_SOFTMAX: rules[i] = sal_is_explained(c, m, n->out[0]) ? NULL : sal_rule_reject; break;
        default: rules[i] = sal_rule_reject; break;
        }
    }
    static const char *const own[] = {
        "max(0, backward signal) (deconvnet)",
        "gradient where input and signal are positive (guided)",
        "gradient where a*g exceeds its percentile (RectGrad)",
        "gradient where |a*g| exceeds its percentile (RectGrad_Mod)",
    };
    sal_status s = SAL_OK;
    for (int i = 0; c->rules && i < m->nnode && s == SAL_OK; i++) s = sal_rule_describe(c, i, rules[i], own[mode]);
    if (!c->rules) s = sal_rule_grad(c, c->s, c->x, c->target, rules, &st, &c->out, NULL);
    /* Kim et al.'s code returns the rectified gradient times the input (their attribution map;
     * Khakzar et al.'s experiments use it): output=gradient_x_input, the default */
    if (s == SAL_OK && gx && !c->rules) {
        float *a = sal_f32(&c->out);
        const float *x = sal_f32(c->x);
        for (int64_t i = 0, n = sal_tensor_numel(&c->out); i < n; i++) a[i] *= x[i];
    }
    sal_free(rules);
    sal_free(st.buf);
    return s;
}

static sal_status run_deconvnet(sal_xctx *c) { return run_relu_method(c, M_DECONV); }
static sal_status run_guided(sal_xctx *c) { return run_relu_method(c, M_GUIDED); }
static sal_status run_rectgrad(sal_xctx *c) { return run_relu_method(c, M_RECTGRAD); }
static sal_status run_rectgrad_mod(sal_xctx *c) { return run_relu_method(c, M_RECTGRAD_MOD); }

static const sal_param_spec k_none[] = {{NULL, NULL, NULL}};
#define P_RECT_OUT                                                                                           \
    {"output", "gradient_x_input", "gradient_x_input: the rectified gradient times the input (Kim et al.'s code); " \
                                   "gradient: the rectified gradient itself"}
static const sal_param_spec k_rect[] = {
    {"tau", "98", "percentile (0 to 100) of the layer's a*g per sample below which a ReLU blocks the gradient"},
    P_RECT_OUT,
    {NULL, NULL, NULL},
};
static const sal_param_spec k_rect_mod[] = {
    {"tau", "98", "percentile (0 to 100) of the layer's |a*g| per sample below which a ReLU blocks the gradient"},
    P_RECT_OUT,
    {NULL, NULL, NULL},
};

const sal_method sal_method_deconvnet = {
    .name = "deconvnet",
    .summary = "ReLUs pass max(0, backward signal), ignoring the forward mask (Zeiler & Fergus 2014)",
    .params = k_none,
    .run = run_deconvnet,
    .describes = true,
    .plain_io = true,
};

const sal_method sal_method_guided_backprop = {
    .name = "guided_backprop",
    .summary = "ReLUs pass the gradient only where input and gradient are positive (Springenberg et al. 2015)",
    .params = k_none,
    .run = run_guided,
    .describes = true,
    .plain_io = true,
};

const sal_method sal_method_rectgrad = {
    .name = "rectgrad",
    .summary = "ReLUs pass the gradient where a*g exceeds a per-layer percentile, times the input (Kim et al. 2019, "
               "RectGrad)",
    .params = k_rect,
    .run = run_rectgrad,
    .describes = true,
    .plain_io = true,
};

const sal_method sal_method_rectgrad_mod = {
    .name = "rectgrad_mod",
    .summary = "RectGrad thresholding |a*g|, letting negative evidence through (Khakzar et al. 2020)",
    .params = k_rect_mod,
    .run = run_rectgrad_mod,
    .describes = true,
    .plain_io = true,
};
