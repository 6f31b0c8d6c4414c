/* FullGrad (Srinivas & Fleuret 2019). A network of affine maps and piecewise-linear, positively
 * homogeneous nonlinearities (ReLU, max pooling) splits its output exactly into
 *   f(x) = sum(df/dx * x) + sum_l sum(df/dz_l * b_l)
 * over the input and every bias b_l added at a node output z_l (Conv, Gemm, BatchNormalization,
 * Layer-, Instance- and GroupNormalization offsets, Add/Sub of a constant). The map post-processes
 * every term with psi (|.|, scaled to [0, 1] per sample, summed over channels, upsampled to the
 * input) and adds them; a transformer's token layers are drawn on their patch grid (tokens=auto),
 * terms of non-spatial layers (dense biases) enter only the sum. That unprocessed sum is checked against the output:
 * metric completeness_delta, the largest |sum - f(x)| over the samples. */
#include "layer.h"
#include <math.h>

typedef struct {
    int val;  /* the node output the bias is added to */
    float *b; /* owned when own */
    bool own;
    int nd;   /* the bias's shape, broadcast into the output's from the right */
    int64_t dim[SAL_MAX_DIMS];
} bias_term;

static bool is_const(const sal_model *m, int v) { return v >= 0 && m->val[v].kind == SAL_VAL_CONST; }

/* The constant offset that node i adds to its output; *has false when there is none. */
static sal_status find_bias(const sal_session *s, int i, bias_term *t, bool *has) {
    const sal_model *m = s->m;
    const sal_node *n = &m->node[i];
    *has = false;
    memset(t, 0, sizeof *t);
    t->val = n->out[0];
    if (t->val < 0 || s->act[t->val].dtype != SAL_F32) return SAL_OK;
    const sal_tensor *y = &s->act[t->val];
    const sal_tensor *src = NULL;
    float scale = 1;
    bool per_channel = false;
    bool bn = sal_node_is(n, SAL_OP_BatchNormalization);
    bool gn = sal_node_is(n, SAL_OP_GroupNormalization) && n->nin > 2 && is_const(m, n->in[2]);
    if (sal_node_is(n, SAL_OP_LayerNormalization) && n->nin > 2 && is_const(m, n->in[2])) {
        src = &s->act[n->in[2]]; /* the normalized axes' shape: lines up from the right */
    } else if ((sal_node_is(n, SAL_OP_InstanceNormalization) && n->nin > 2 && is_const(m, n->in[2])) ||
               (gn && y->ndim >= 2 && sal_tensor_numel(&s->act[n->in[2]]) == y->dim[1])) {
        src = &s->act[n->in[2]];
        per_channel = true;
    } else if (gn) { /* opset 18: one bias per group, expanded to its channels below */
        per_channel = true;
    } else if (sal_node_is(n, SAL_OP_Conv) && n->nin > 2 && n->in[2] >= 0) {
        src = &s->act[n->in[2]];
        per_channel = true;
    } else if (bn) {
        per_channel = true;
    } else if (sal_node_is(n, SAL_OP_Gemm) && n->nin > 2 && n->in[2] >= 0) {
        src = &s->act[n->in[2]];
        scale = sal_attr_float(n, "beta", 1.0f);
    } else if (sal_node_has(n, SAL_TR_ARITH) && sal_node_has(n, SAL_TR_ADDITIVE) && n->nin == 2 &&
               is_const(m, n->in[0]) != is_const(m, n->in[1])) { /* Add, Sub */
        int k = is_const(m, n->in[0]) ? 0 : 1;
        src = &s->act[n->in[k]];
        if (sal_node_is(n, SAL_OP_Sub) && k == 1) scale = -1; /* x - c adds -c */
    } else {
        return SAL_OK;
    }
    if (src && src->dtype != SAL_F32) return SAL_OK;
    if (per_channel) { /* (K) reads as (K, 1, ..., 1): it lines up with axis 1 of (N, K, ...) */
        if (y->ndim < 2) return sal_node_fail(n, SAL_ERR_SHAPE, "FullGrad: output has no channel axis");
        t->nd = y->ndim - 1;
        t->dim[0] = y->dim[1];
        for (int d = 1; d < t->nd; d++) t->dim[d] = 1;
    } else {
        t->nd = src->ndim;
        memcpy(t->dim, src->dim, sizeof t->dim);
    }
    if (t->nd > y->ndim) return sal_node_fail(n, SAL_ERR_SHAPE, "FullGrad: bias has a higher rank than the output");
    for (int d = 0; d < t->nd; d++) {
        int64_t od = y->dim[y->ndim - t->nd + d];
        if (t->dim[d] != 1 && t->dim[d] != od)
            return sal_node_fail(n, SAL_ERR_SHAPE, "FullGrad: bias does not broadcast to the output");
    }
    if (gn && !src) {
        const sal_tensor *b = &s->act[n->in[2]];
        int64_t K = y->dim[1], G = sal_tensor_numel(b);
        if (b->dtype != SAL_F32 || G < 1 || K % G) return sal_node_fail(n, SAL_ERR_SHAPE, "FullGrad: bias per group does not fit");
        t->b = sal_malloc((size_t)K * sizeof(float));
        if (!t->b) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        t->own = true;
        for (int64_t k = 0; k < K; k++) t->b[k] = sal_f32(b)[k / (K / G)];
    } else if (bn) { /* y = a x + (B - a mean), a = scale / sqrt(var + eps) */
        int64_t K = y->dim[1];
        const float *sc = sal_f32(&s->act[n->in[1]]), *b = sal_f32(&s->act[n->in[2]]),
                    *mu = sal_f32(&s->act[n->in[3]]), *var = sal_f32(&s->act[n->in[4]]);
        float eps = sal_attr_float(n, "epsilon", 1e-5f);
        t->b = sal_malloc((size_t)K * sizeof(float));
        if (!t->b) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        t->own = true;
        for (int64_t k = 0; k < K; k++) {
            float a = (float)(sc[k] / sqrt((double)var[k] + eps));
            t->b[k] = b[k] - a * mu[k];
        }
    } else if (scale != 1) {
        int64_t cnt = sal_tensor_numel(src);
        t->b = sal_malloc((size_t)cnt * sizeof(float));
        if (!t->b) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        t->own = true;
        for (int64_t k = 0; k < cnt; k++) t->b[k] = scale * sal_f32(src)[k];
    } else {
        t->b = sal_f32(src);
    }
    *has = true;
    return SAL_OK;
}

/* T := g * b broadcast to y's shape. */
static void bias_product(const float *g, const sal_tensor *y, const bias_term *t, float *T) {
    int r = y->ndim;
    int64_t st[SAL_MAX_DIMS], bs = 1, idx[SAL_MAX_DIMS] = {0};
    for (int a = r - 1; a >= 0; a--) {
        int ba = a - (r - t->nd);
        st[a] = ba >= 0 && t->dim[ba] != 1 ? bs : 0;
        if (ba >= 0) bs *= t->dim[ba];
    }
    int64_t last = y->dim[r - 1], outer = sal_tensor_numel(y) / (last ? last : 1);
    for (int64_t o = 0; o < outer; o++) {
        int64_t off = 0;
        for (int a = 0; a < r - 1; a++) off += idx[a] * st[a];
        const float *gg = g + o * last;
        float *tt = T + o * last;
        for (int64_t j = 0; j < last; j++) tt[j] = gg[j] * t->b[off + j * st[r - 1]];
        for (int a = r - 2; a >= 0; a--) {
            if (++idx[a] < y->dim[a]) break;
            idx[a] = 0;
        }
    }
}

/* psi of one term (N, C, spatial...) or (N, D): |.| scaled to [0, 1] per sample, summed over the
 * channels into (N, spatial) (or kept (N, D)), then added into acc at the input's resolution. */
static sal_status add_processed(const sal_xctx *c, const char *name, float *T, const sal_tensor *y, float *acc,
                                float *small) {
    int64_t N = y->dim[0], row = sal_row_size(y);
    for (int64_t i = 0; i < N * row; i++) T[i] = fabsf(T[i]);
    sal_minmax_rows(T, N, row);
    if (y->ndim == 2) {
        for (int64_t i = 0; i < N * row; i++) acc[i] += T[i];
        return SAL_OK;
    }
    int64_t K = y->dim[1], S = row / K, Sx = sal_spatial_size(c->x);
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) {
            float v = 0;
            for (int64_t k = 0; k < K; k++) v += T[(n * K + k) * S + s];
            small[n * S + s] = v;
        }
    float *big = sal_malloc((size_t)(N * Sx) * sizeof *big);
    if (!big) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_status st = sal_map_to_input(c, name, small, y->ndim - 2, y->dim + 2, big);
    for (int64_t i = 0; st == SAL_OK && i < N * Sx; i++) acc[i] += big[i];
    sal_free(big);
    return st;
}

static sal_status run_fullgrad(sal_xctx *c) {
    const sal_model *m = c->m;
    const sal_tensor *x = c->x;
    int64_t N = x->dim[0], X = sal_row_size(x), Sx = x->ndim > 2 ? sal_spatial_size(x) : X;
    SAL_TRY(sal_layer_forward(c));
    bias_term *bt = sal_calloc((size_t)m->nnode + 1, sizeof *bt);
    int *vals = sal_calloc((size_t)m->nnode + 1, sizeof *vals);
    double *total = sal_calloc((size_t)N, sizeof *total);
    float *value = sal_calloc((size_t)N, sizeof *value), *acc = sal_calloc((size_t)(N * Sx), sizeof *acc);
    float *T = NULL, *small = NULL;
    sal_status st = bt && vals && total && value && acc ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    int nb = 0;
    for (int i = 0; st == SAL_OK && i < m->nnode; i++) {
        bool has;
        st = find_bias(c->s, i, &bt[nb], &has);
        if (st == SAL_OK && has) vals[nb] = bt[nb].val, nb++;
    }
    if (st == SAL_OK) st = sal_layer_grads(c, nb, vals, true, value);
    /* the input term */
    if (st == SAL_OK && !(T = sal_malloc((size_t)(N * X) * sizeof *T))) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) {
        const float *g = sal_f32(&c->s->grad[m->input[0]]), *xx = sal_f32(x);
        for (int64_t n = 0; n < N; n++) {
            double sum = 0;
            for (int64_t j = 0; j < X; j++) sum += (double)(T[n * X + j] = g[n * X + j] * xx[n * X + j]);
            total[n] += sum;
        }
    }
    if (st == SAL_OK && x->ndim >= 2) {
        if (!(small = sal_malloc((size_t)(N * Sx) * sizeof *small))) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        else st = add_processed(c, m->val[m->input[0]].name, T, x, acc, small);
    }
    /* every bias term */
    bool complete = true;
    for (int b = 0; st == SAL_OK && b < nb; b++) {
        const sal_tensor *y = &c->s->act[bt[b].val];
        int64_t cnt = sal_tensor_numel(y);
        if (y->ndim < 2 || y->dim[0] != N) { /* not batch-first: no per-sample sum */
            complete = false;
            continue;
        }
        float *p = sal_realloc(T, (size_t)cnt * sizeof *T);
        if (!p) {
            st = sal_fail(SAL_ERR_NOMEM, "out of memory");
            break;
        }
        T = p;
        bias_product(sal_f32(&c->s->grad[bt[b].val]), y, &bt[b], T);
        for (int64_t n = 0, row = cnt / N; n < N; n++) {
            double sum = 0;
            for (int64_t j = 0; j < row; j++) sum += T[n * row + j];
            total[n] += sum;
        }
        const char *name = m->node[m->val[bt[b].val].producer].name;
        sal_tokens tk = {0};
        sal_tensor Tv = {.dtype = SAL_F32, .ndim = y->ndim, .data = T}, grid = {0};
        memcpy(Tv.dim, y->dim, sizeof Tv.dim);
        if (y->ndim == 3 && x->ndim == 4 && (st = sal_tokens_of(c, "auto", name, y, &tk)) != SAL_OK) break;
        /* a transformer's token layer is drawn on its patch grid; a dense layer's bias has no place
         * in the image */
        if (!tk.on && (y->ndim != x->ndim || y->ndim < 3)) continue;
        if (tk.on && (st = sal_tokens_grid(&tk, &Tv, &grid)) != SAL_OK) break;
        const sal_tensor *yy = tk.on ? &grid : y;
        p = sal_realloc(small, (size_t)(N * sal_spatial_size(yy)) * sizeof *small);
        if (!p) {
            sal_tensor_free(&grid);
            st = sal_fail(SAL_ERR_NOMEM, "out of memory");
            break;
        }
        small = p;
        st = add_processed(c, name, tk.on ? sal_f32(&grid) : T, yy, acc, small);
        sal_tensor_free(&grid);
    }
    if (st == SAL_OK) st = sal_map_spread(c, acc, &c->out);
    if (st == SAL_OK && complete) {
        double delta = 0;
        for (int64_t n = 0; n < N; n++) delta = fmax(delta, fabs(total[n] - value[n]));
        sal_metric(c, "completeness_delta", delta);
        sal_metric(c, "bias_terms", nb);
    }
    for (int b = 0; bt && b < nb; b++)
        if (bt[b].own) sal_free(bt[b].b);
    sal_free(bt);
    sal_free(vals);
    sal_free(total);
    sal_free(value);
    sal_free(acc);
    sal_free(T);
    sal_free(small);
    return st;
}

static const sal_param_spec k_none[] = {{NULL, NULL, NULL}};

const sal_method sal_method_fullgrad = {
    .name = "fullgrad",
    .summary = "input-gradient and every layer's bias-gradient terms, |.|, normalised, upsampled, summed "
               "(Srinivas & Fleuret 2019)",
    .params = k_none,
    .run = run_fullgrad,
    .logits = "its completeness (input and bias terms summing to the output) holds for a ReLU network's logits, not "
              "through an output Softmax or Sigmoid (completeness_delta shows by how much)",
};
