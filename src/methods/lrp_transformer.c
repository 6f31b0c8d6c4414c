/* LRP beyond ReLU networks: how relevance flows through products of activations, gates,
 * attention and normalization layers (transformers, ConvNeXt, EfficientNet, MobileNetV3).
 *
 * The rules follow AttnLRP (Achtibat et al. 2024, "AttnLRP: attention-aware layer-wise relevance
 * propagation for transformers") and CP-LRP (Ali et al. 2022, "XAI for transformers: better
 * explanations through conservative propagation"):
 *  - a product of activations that are not functions of one another (A V and Q K^T in attention,
 *    a squeeze-and-excitation scale times its feature map) splits the relevance of each term equally
 *    between its factors: the uniform rule, the z-rule with 1/k of the share to each of the k
 *    varying operands;
 *  - a gate x * g(x), where g reaches x through elementwise ops only (SiLU's x * sigmoid(x), GELU
 *    exported as x * (1 + erf(x / sqrt 2)) / 2), is an elementwise activation of x: the gate is held
 *    constant, so x keeps the whole relevance (AttnLRP's identity rule for activations);
 *  - a divisor that depends on the input (the standard deviation of a decomposed LayerNorm) is held
 *    constant, as are LayerNormalization's, InstanceNormalization's and GroupNormalization's
 *    statistics: with the standard deviation fixed the layer is linear, and the z-rule (epsilon)
 *    applies to it, the mean subtraction included (AttnLRP; CP-LRP);
 *  - attention weights, the output of a Softmax that reaches a product through routing ops, are held
 *    constant (CP-LRP, attention=constant), or relevance passes through the softmax by AttnLRP's
 *    rule R_in = x (R - s sum R) (attention=attnlrp) and on into Q and K by the uniform rule.
 * What no relevance reaches (statistics, gates, attention logits under CP-LRP) needs no rule. */
#include "lrp.h"
#include <math.h>

/* Ops whose float output carries no gradient back to their inputs: shapes, indices, booleans. */
static bool cuts_gradient(const sal_node *n) {
    if (!n->op) return true;
    switch (n->op->id) {
    case SAL_OP_Shape:
    case SAL_OP_ArgMax:
    case SAL_OP_ArgMin:
    case SAL_OP_Equal:
    case SAL_OP_Less:
    case SAL_OP_Greater:
    case SAL_OP_LessOrEqual:
    case SAL_OP_GreaterOrEqual:
    case SAL_OP_Not:
    case SAL_OP_And:
    case SAL_OP_Or:
    case SAL_OP_ConstantOfShape:
    case SAL_OP_Range: return true;
    case SAL_OP_Cast: return sal_attr_int(n, "to", 1) != SAL_F32;
    default: return false;
    }
}

/* One input to one output of the same shape, elementwise (given one varying input). */
static bool elementwise(const sal_node *n) {
    if (sal_node_has(n, SAL_TR_ARITH | SAL_TR_MONOTONE)) return true;
    if (!n->op) return false;
    switch (n->op->id) {
    case SAL_OP_HardSwish:
    case SAL_OP_PRelu:
    case SAL_OP_Mish:
    case SAL_OP_Gelu:
    case SAL_OP_Erf:
    case SAL_OP_Exp:
    case SAL_OP_Log:
    case SAL_OP_Neg:
    case SAL_OP_Abs:
    case SAL_OP_Sqrt:
    case SAL_OP_Reciprocal:
    case SAL_OP_Pow:
    case SAL_OP_Identity:
    case SAL_OP_Dropout: return true;
    default: return false;
    }
}

/* The only input of n that varies, or -1 when none or several do. */
static int sole_varying(const bool *vary, const sal_node *n) {
    int k = -1;
    for (int j = 0; j < n->nin; j++)
        if (n->in[j] >= 0 && vary[n->in[j]]) {
            if (k >= 0) return -1;
            k = j;
        }
    return k;
}

/* Whether value g is computed from value a by elementwise ops alone (g = f(a)). */
static bool gate_of(const sal_model *m, const bool *vary, int g, int a) {
    for (int depth = 0; depth < 32 && g >= 0; depth++) {
        if (g == a) return true;
        if (m->val[g].kind != SAL_VAL_NODE) return false;
        const sal_node *n = &m->node[m->val[g].producer];
        int k = elementwise(n) ? sole_varying(vary, n) : -1;
        if (k < 0) return false;
        g = n->in[k];
    }
    return false;
}

/* Whether value v is a Softmax's output, reached through routing ops (Dropout, Reshape, ...). */
static bool from_softmax(const sal_model *m, const bool *vary, int v) {
    for (int depth = 0; depth < 32 && v >= 0; depth++) {
        if (m->val[v].kind != SAL_VAL_NODE) return false;
        const sal_node *n = &m->node[m->val[v].producer];
        if (sal_node_is(n, SAL_OP_Softmax)) return true;
        int k = sal_node_has(n, SAL_TR_ROUTE) ? sole_varying(vary, n) : -1;
        if (k < 0) return false;
        v = n->in[k];
    }
    return false;
}

/* Which operands of node n are held constant, and why. */
static void hold(const sal_model *m, const bool *vary, int attention, const sal_node *n, unsigned *held,
                 unsigned char *why) {
    *held = 0;
    *why = SAL_HELD_NONE;
    if (sal_node_is(n, SAL_OP_Div) && n->nin > 1 && n->in[1] >= 0 && vary[n->in[1]]) {
        *held = 2;
        *why = SAL_HELD_DIVISOR;
        return;
    }
    if (!sal_node_has(n, SAL_TR_MULTILINEAR)) return;
    int ops[32], no = 0;
    for (int k = 0; k < n->nin && k < 31; k++)
        if ((n->op->lin_in >> k & 1) && n->in[k] >= 0 && vary[n->in[k]]) ops[no++] = k;
    if (no < 2) return;
    for (int a = 0; a < no; a++)
        for (int b = a + 1; b < no; b++) {
            int j = ops[a], k = ops[b];
            if ((*held >> j & 1) || (*held >> k & 1)) continue;
            if (n->in[j] == n->in[k] || gate_of(m, vary, n->in[k], n->in[j])) *held |= 1u << k;
            else if (gate_of(m, vary, n->in[j], n->in[k])) *held |= 1u << j;
            else continue;
            *why = SAL_HELD_GATE;
        }
    if (attention == SAL_ATTN_CONSTANT && !*held)
        for (int a = 0; a < no; a++)
            if (from_softmax(m, vary, n->in[ops[a]])) {
                *held |= 1u << ops[a];
                *why = SAL_HELD_ATTENTION;
            }
    int free_ = 0;
    for (int a = 0; a < no; a++) free_ += !(*held >> ops[a] & 1);
    if (!free_) { /* softmax times softmax: keep the last operand varying */
        *held &= ~(1u << ops[no - 1]);
        if (!*held) *why = SAL_HELD_NONE;
    }
}

sal_status sal_lrp_flow_make(const sal_model *m, int out, int attention, sal_lrp_flow *f) {
    memset(f, 0, sizeof *f);
    f->vary = sal_calloc((size_t)m->nval + 1, sizeof *f->vary);
    bool *lv = sal_calloc((size_t)m->nval + 1, sizeof *lv);
    f->live = sal_calloc((size_t)m->nnode + 1, sizeof *f->live);
    f->held = sal_calloc((size_t)m->nnode + 1, sizeof *f->held);
    f->why = sal_calloc((size_t)m->nnode + 1, sizeof *f->why);
    if (!f->vary || !lv || !f->live || !f->held || !f->why) {
        sal_free(lv);
        sal_lrp_flow_free(f);
        return sal_fail(SAL_ERR_NOMEM, "out of memory analysing the graph");
    }
    for (int i = 0; i < m->ninput; i++) f->vary[m->input[i]] = true;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        bool any = false;
        for (int k = 0; k < n->nin; k++) any |= n->in[k] >= 0 && f->vary[n->in[k]];
        if (!any || cuts_gradient(n)) continue;
        for (int k = 0; k < n->nout; k++)
            if (n->out[k] >= 0) f->vary[n->out[k]] = true;
        hold(m, f->vary, attention, n, &f->held[i], &f->why[i]);
    }
    if (out >= 0) lv[out] = true;
    for (int i = m->nnode - 1; i >= 0; i--) {
        const sal_node *n = &m->node[i];
        for (int k = 0; k < n->nout; k++) f->live[i] |= n->out[k] >= 0 && lv[n->out[k]];
        if (!f->live[i]) continue;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] >= 0 && f->vary[n->in[k]] && !(k < 32 && (f->held[i] >> k & 1))) lv[n->in[k]] = true;
    }
    sal_free(lv);
    return SAL_OK;
}

void sal_lrp_flow_free(sal_lrp_flow *f) {
    sal_free(f->vary);
    sal_free(f->live);
    sal_free(f->held);
    sal_free(f->why);
    memset(f, 0, sizeof *f);
}

/* ---- normalization layers with their statistics held constant ----
 * y = w (x - mean) / sigma + b per row of elements normalized together. With sigma fixed,
 * dy_j / dx_i = w_j / sigma (delta_ij - 1 / L), and the z-rule R_i = x_i sum_j (dy_j / dx_i) R_j / y_j
 * becomes R_i = x_i (u_i - mean(u)), u_j = w_j R_j / (sigma y_j). The rows sum to
 * sum_j (y_j - b_j) R_j / y_j: relevance is kept but for the bias's share. Rows and parameters
 * follow ONNX: LayerNormalization normalizes the axes from `axis` on (w, b per element of them, or
 * scalars), InstanceNormalization each (n, c) (w, b per channel), GroupNormalization each
 * (n, group) (w, b per channel, or per group as in opset 18). */
sal_status sal_lrp_norm(sal_opctx *c, double stab) {
    const sal_node *n = c->n;
    if ((n->nout > 1 && c->dout[1]) || (n->nout > 2 && c->dout[2]))
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "relevance reaches its mean or deviation output, which LRP "
                             "holds constant");
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const sal_tensor *X = c->in[0];
    const sal_tensor *W = n->nin > 1 ? c->in[1] : NULL;
    int64_t rows, L, C = X->ndim > 1 ? X->dim[1] : 1, S = 1, G = 1;
    int kind = sal_node_is(n, SAL_OP_LayerNormalization) ? 0 : sal_node_is(n, SAL_OP_InstanceNormalization) ? 1 : 2;
    if (kind == 0) {
        int64_t a = sal_attr_int(n, "axis", -1);
        if (a < 0) a += X->ndim;
        rows = L = 1;
        for (int d = 0; d < X->ndim; d++) *(d < a ? &rows : &L) *= X->dim[d];
    } else {
        for (int d = 2; d < X->ndim; d++) S *= X->dim[d];
        G = kind == 1 ? C : sal_attr_int(n, "num_groups", 1);
        if (G < 1 || C % G) return sal_node_fail(n, SAL_ERR_SHAPE, "channels do not split into groups");
        rows = X->dim[0] * G;
        L = S * (C / G);
    }
    int64_t nw = W ? sal_tensor_numel(W) : 0;
    float eps = sal_attr_float(n, "epsilon", 1e-5f);
    const float *x = sal_f32(X), *y = sal_f32(c->out[0]), *R = sal_f32(c->dout[0]), *w = W ? sal_f32(W) : NULL;
    float *d = sal_f32(c->din[0]);
    bool bad = false;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * L, *yr = y + r * L, *Rr = R + r * L;
        float *dr = d + r * L;
        double mean = 0, var = 0, ubar = 0;
        for (int64_t j = 0; j < L; j++) mean += xr[j];
        mean /= (double)L;
        for (int64_t j = 0; j < L; j++) var += ((double)xr[j] - mean) * ((double)xr[j] - mean);
        double inv = 1.0 / sqrt(var / (double)L + eps);
        /* two passes over u: its mean first */
        for (int pass = 0; pass < 2; pass++) {
            for (int64_t j = 0; j < L; j++) {
                int64_t pi = kind == 0 ? (nw == 1 ? 0 : j)
                             : kind == 1 ? r % C
                             : nw == C ? (r % G) * (C / G) + j / S
                                       : r % G;
                double wj = w ? w[nw == 1 ? 0 : pi] : 1.0;
                double den = yr[j] >= 0 ? yr[j] + stab : yr[j] - stab;
                double u = wj * inv * Rr[j] / den;
                if (pass == 0) ubar += u;
                else {
                    float v = (float)(xr[j] * (u - ubar));
                    bad |= !isfinite(v);
                    dr[j] += v;
                }
            }
            if (pass == 0) ubar /= (double)L;
        }
    }
    if (bad)
        return sal_node_fail(n, SAL_ERR_NUMERIC, "relevance divided by its denominator is not finite (raise the "
                             "stabilizer or epsilon)");
    return SAL_OK;
}
