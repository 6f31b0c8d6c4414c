/* Attention rollout (Abnar & Zuidema 2020, "Quantifying attention flow in transformers").
 *
 * A ViT-style model mixes its tokens only in self-attention; the residual connection around each
 * attention keeps half of every token (as the paper models it). Each layer's attention weights,
 * fused over the heads, become A' = (A + I) / 2, rows renormalized to 1, and the rollout is the
 * product A'_L ... A'_1: how much of each input token reaches each output token. The map is the
 * class token's row over the patch tokens (the mean of all rows when there is no class token), on
 * the patch grid, upsampled to the input. It does not depend on the target class.
 *
 * Attention weights are the output of a Softmax over the last axis whose last two dims are equal
 * (tokens x tokens) and which reaches a MatMul or Einsum through routing ops. Every layer must
 * attend over the same token sequence of the whole image: (N, heads, T, T), or (N * heads, T, T)
 * as PyTorch's MultiheadAttention exports it. Windowed attention (Swin: (N * windows, heads, t, t))
 * mixes tokens through shifted windows instead, which rollout does not model: refused, naming the
 * node. */
#include "layer.h"
#include <math.h>

/* Whether value v reaches a MatMul or Einsum through routing ops. */
static bool feeds_product(const sal_model *m, int v, int depth) {
    if (depth > 16) return false;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        bool reads = false;
        for (int k = 0; k < n->nin && !reads; k++) reads = n->in[k] == v;
        if (!reads) continue;
        if (sal_node_is(n, SAL_OP_MatMul) || sal_node_is(n, SAL_OP_Einsum)) return true;
        if (sal_node_has(n, SAL_TR_ROUTE) && n->nout >= 1 && n->out[0] >= 0 && feeds_product(m, n->out[0], depth + 1))
            return true;
    }
    return false;
}

typedef struct {
    int node, val;
    int64_t heads;
} attn_layer;

/* The attention layers of the model, in execution order, all over T tokens. */
static sal_status find_layers(const sal_xctx *c, attn_layer *out, int *nl, int64_t *T) {
    const sal_model *m = c->m;
    int64_t N = c->x->dim[0];
    char b[160];
    *nl = 0;
    *T = 0;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        if (!sal_node_is(n, SAL_OP_Softmax) || n->out[0] < 0 || !c->s->act[n->out[0]].data) continue;
        const sal_tensor *A = &c->s->act[n->out[0]];
        if (A->ndim < 3 || A->dim[A->ndim - 1] != A->dim[A->ndim - 2] || !feeds_product(m, n->out[0], 0)) continue;
        int64_t t = A->dim[A->ndim - 1], heads;
        if (A->ndim == 4 && A->dim[0] == N) heads = A->dim[1];
        else if (A->ndim == 3 && A->dim[0] % N == 0) heads = A->dim[0] / N;
        else
            return sal_node_fail(n, SAL_ERR_UNSUPPORTED,
                                 "attention weights of shape %s are not (N, heads, T, T) or (N * heads, T, T) for a "
                                 "batch of %lld: attention within windows (Swin) or over another batching, which "
                                 "attention rollout does not model", sal_shape_str(A->ndim, A->dim, b, sizeof b),
                                 (long long)N);
        if (*T && t != *T)
            return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "attends over %lld tokens, an earlier layer over %lld: "
                                 "attention rollout needs one token sequence through every layer", (long long)t,
                                 (long long)*T);
        *T = t;
        out[(*nl)++] = (attn_layer){i, n->out[0], heads};
    }
    if (!*nl)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s has no softmax attention (a Softmax over (tokens, tokens) weights "
                        "feeding a MatMul or Einsum): attention rollout needs a ViT-style model", m->path);
    /* the attended tokens must be the model's token sequence: some (N, T, C) value carries it */
    bool seq = false;
    for (int v = 0; v < m->nval && !seq; v++) {
        const sal_tensor *t = &c->s->act[v];
        seq = m->val[v].kind == SAL_VAL_NODE && t->data && t->dtype == SAL_F32 && t->ndim == 3 && t->dim[0] == N &&
              t->dim[1] == *T;
    }
    if (!seq)
        return sal_node_fail(&m->node[out[0].node], SAL_ERR_UNSUPPORTED, "attends over %lld tokens, but no (N, %lld, C) "
                             "token sequence carries them through the model (attention within windows?), which "
                             "attention rollout does not model", (long long)*T, (long long)*T);
    return SAL_OK;
}

static sal_status run_rollout(sal_xctx *c) {
    static const char *const fusions[] = {"mean", "max", "min", NULL};
    static const char *const ups[] = {"bilinear", "none", NULL};
    int fusion, up;
    SAL_TRY(sal_param_choice(c, "head_fusion", fusions, &fusion));
    SAL_TRY(sal_param_choice(c, "upsample", ups, &up));
    SAL_TRY(sal_layer_forward(c));
    const sal_model *m = c->m;
    int64_t N = c->x->dim[0], T;
    attn_layer *L = sal_calloc((size_t)m->nnode + 1, sizeof *L);
    if (!L) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    int nl = 0;
    sal_status st = find_layers(c, L, &nl, &T);
    sal_tokens tk = {0};
    if (st == SAL_OK) {
        sal_tensor like = {.dtype = SAL_F32, .ndim = 3, .dim = {N, T, 1}};
        st = sal_tokens_of(c, sal_param(c, "tokens"), m->node[L[nl - 1].node].name, &like, &tk);
        if (st == SAL_OK && !tk.on)
            st = sal_fail(SAL_ERR_UNSUPPORTED, "method %s: %lld tokens do not tile the input %lldx%lld after 0 to 8 "
                          "class tokens; give tokens=HxW", c->meth->name, (long long)T,
                          (long long)(c->x->ndim == 4 ? c->x->dim[2] : 0), (long long)(c->x->ndim == 4 ? c->x->dim[3] : 0));
    }
    if (st == SAL_OK && up == 0) st = sal_map_check(c, m->node[L[nl - 1].node].name, 2);
    int64_t S = tk.h * tk.w;
    double *R = st == SAL_OK ? sal_malloc((size_t)(2 * T * T + T * T) * sizeof *R) : NULL;
    float *map = st == SAL_OK ? sal_malloc((size_t)(N * S + 1) * sizeof *map) : NULL;
    if (st == SAL_OK && (!R || !map)) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t n = 0; st == SAL_OK && n < N; n++) {
        double *cur = R, *next = R + T * T, *a = R + 2 * T * T;
        for (int64_t i = 0; i < T * T; i++) cur[i] = i / T == i % T;
        for (int l = 0; l < nl; l++) {
            const float *w = sal_f32(&c->s->act[L[l].val]) + n * L[l].heads * T * T;
            for (int64_t i = 0; i < T * T; i++) { /* fused over the heads */
                double v = w[i];
                for (int64_t h = 1; h < L[l].heads; h++) {
                    double u = w[h * T * T + i];
                    v = fusion == 0 ? v + u : fusion == 1 ? fmax(v, u) : fmin(v, u);
                }
                a[i] = fusion == 0 ? v / (double)L[l].heads : v;
            }
            for (int64_t i = 0; i < T; i++) { /* (A + I) / 2, rows renormalized */
                double sum = 0;
                a[i * T + i] += 1;
                for (int64_t j = 0; j < T; j++) sum += a[i * T + j];
                for (int64_t j = 0; j < T; j++) a[i * T + j] = sum > 0 ? a[i * T + j] / sum : 0;
            }
            for (int64_t i = 0; i < T; i++) /* next = a cur */
                for (int64_t j = 0; j < T; j++) {
                    double s = 0;
                    for (int64_t k = 0; k < T; k++) s += a[i * T + k] * cur[k * T + j];
                    next[i * T + j] = s;
                }
            double *t = cur;
            cur = next;
            next = t;
        }
        for (int64_t s = 0; s < S; s++) {
            double v = 0;
            if (tk.prefix) v = cur[tk.prefix + s]; /* row 0: the class token */
            else {
                for (int64_t i = 0; i < T; i++) v += cur[i * T + s];
                v /= (double)T;
            }
            map[n * S + s] = (float)v;
        }
    }
    if (st == SAL_OK) st = sal_tensor_alloc(&c->layer_out, SAL_F32, 4, (int64_t[]){N, 1, tk.h, tk.w});
    if (st == SAL_OK) {
        memcpy(c->layer_out.data, map, (size_t)(N * S) * sizeof *map);
        snprintf(c->layer, sizeof c->layer, "%s", m->node[L[nl - 1].node].name);
        sal_metric(c, "attention_layers", nl);
        sal_metric(c, "tokens", (double)T);
        sal_metric(c, "prefix_tokens", (double)tk.prefix);
        if (up == 1) st = sal_tensor_copy(&c->out, &c->layer_out);
        else {
            float *big = sal_malloc((size_t)sal_tensor_numel(c->x) * sizeof *big);
            st = big ? sal_map_to_input(c, c->layer, map, 2, (int64_t[]){tk.h, tk.w}, big)
                     : sal_fail(SAL_ERR_NOMEM, "out of memory");
            if (st == SAL_OK) st = sal_map_spread(c, big, &c->out);
            sal_free(big);
        }
    }
    sal_free(L);
    sal_free(R);
    sal_free(map);
    return st;
}

static const sal_param_spec k_params[] = {
    {"head_fusion", "mean", "how each layer's heads combine: mean (the paper), max or min"},
    {"tokens", "auto", "the patch grid: auto (the tokens after 0 to 8 leading class tokens tile the input's "
                       "aspect) or HxW"},
    {"upsample", "bilinear", "bilinear: resample the grid's map to the input size; none: keep the grid"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_attention_rollout = {
    .name = "attention_rollout",
    .summary = "product over layers of the head-averaged attention plus identity, read at the class token "
               "(Abnar & Zuidema 2020); ViT-style models, independent of the target",
    .params = k_params,
    .run = run_rollout,
};
