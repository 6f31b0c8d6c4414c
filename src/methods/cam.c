/* Class activation maps: methods that aggregate a layer's activations A (N, K, spatial) and the
 * gradient G = d f / d A of the explained output over the channels k:
 *   gradcam      ReLU(sum_k w_k A_k), w_k = mean G_k                     (Selvaraju et al. 2017)
 *   gradcam_pp   w_k = sum alpha_k relu(G_k), alpha = G^2 / (2 G^2 + sum(A_k) G^3)
 *                                                                        (Chattopadhay et al. 2018)
 *   layercam     ReLU(sum_k relu(G_k) A_k)                               (Jiang et al. 2021)
 *   xgradcam     w_k = sum(A_k G_k) / sum(A_k)                           (Fu et al. 2020)
 *   scorecam     w_k = f(x * upsampled, normalised A_k): no gradient     (Wang et al. 2020)
 *   guided_gradcam   upsampled Grad-CAM times guided backprop            (Selvaraju et al. 2017)
 *   counterfactual=true (gradcam, guided_gradcam): the weights of -G, the regions whose removal
 *   should raise the class score; a per-sample check removes them and measures it
 * and Khakzar et al. 2020's positive-aggregation variants, which take |.| before summing:
 *   gradcam_pos  sum_k |w_k A_k|        gradmid  sum_k |G_k|
 *   cumulative_gradcam / cumulative_gradmid: those maps at every layer, each normalised to [0, 1]
 *   and upsampled (FullGrad's post-processing), summed. */
#include "layer.h"
#include <math.h>

typedef enum { AGG_GRADCAM, AGG_GRADCAM_PP, AGG_LAYERCAM, AGG_XGRADCAM, AGG_POS, AGG_MID } cam_agg;

/* sum a[s] g[s] in double: partial sums across the vector lanes (one chain of scalar double adds
 * a channel took 5 us of the small CNN's 67 us Grad-CAM, 64 channels of 49), as sal_sum_d */
SAL_CLONES double dot_d(const float *a, const float *g, int64_t S) {
    double w = 0;
#pragma omp simd reduction(+ : w)
    for (int64_t s = 0; s < S; s++) w += (double)a[s] * g[s];
    return w;
}

/* mp[s] += w a[s], or |w a[s]| when pos */
SAL_CLONES void add_scaled(float *restrict mp, const float *restrict a, float w, bool pos, int64_t S) {
    if (pos) {
#pragma omp simd
        for (int64_t s = 0; s < S; s++) mp[s] += fabsf(w * a[s]);
    } else {
#pragma omp simd
        for (int64_t s = 0; s < S; s++) mp[s] += w * a[s];
    }
}

/* One layer's map (N, S) from activations A and gradients G (N, K, S); weights summed in double.
 * wk (N, K), when given, holds Grad-CAM's weights (mean G_k) instead of G (head_weights). */
static void aggregate(cam_agg agg, const float *A, const float *G, const double *wk, int64_t N, int64_t K, int64_t S,
                      float *map) {
    for (int64_t n = 0; n < N; n++) {
        float *mp = map + n * S;
        for (int64_t s = 0; s < S; s++) mp[s] = 0;
        for (int64_t k = 0; k < K; k++) {
            const float *a = A + (n * K + k) * S, *g = G ? G + (n * K + k) * S : NULL;
            double w = 0, sa = 0;
            switch (agg) {
            case AGG_GRADCAM:
            case AGG_POS: w = wk ? wk[n * K + k] : sal_sum_d(g, S) / (double)S; break;
            case AGG_GRADCAM_PP:
                sa = sal_sum_d(a, S);
                for (int64_t s = 0; s < S; s++) {
                    if (!(g[s] > 0)) continue; /* relu(G) = 0: the term vanishes whatever alpha is */
                    double g2 = (double)g[s] * g[s], den = 2 * g2 + sa * g2 * g[s];
                    if (den != 0) w += g2 / den * g[s];
                }
                break;
            case AGG_XGRADCAM:
                sa = sal_sum_d(a, S);
                w = sa != 0 ? dot_d(a, g, S) / sa : 0;
                break;
            case AGG_LAYERCAM:
                for (int64_t s = 0; s < S; s++) mp[s] += g[s] > 0 ? g[s] * a[s] : 0.0f;
                continue;
            case AGG_MID:
                for (int64_t s = 0; s < S; s++) mp[s] += fabsf(g[s]);
                continue;
            }
            add_scaled(mp, a, (float)w, agg == AGG_POS, S);
        }
    }
}

static const char *const k_upsample[] = {"bilinear", "none", NULL};

/* c->layer_out := map (N, 1, spatial of A); c->out := the map upsampled to the input and repeated
 * over its channels, or the layer map itself when !up. */
static sal_status finish(sal_xctx *c, const sal_tensor *A, const float *map, bool up) {
    int64_t N = A->dim[0], S = sal_spatial_size(A), dim[SAL_MAX_DIMS];
    memcpy(dim, A->dim, sizeof dim);
    dim[1] = 1;
    SAL_TRY(sal_tensor_alloc(&c->layer_out, SAL_F32, A->ndim, dim));
    memcpy(c->layer_out.data, map, (size_t)(N * S) * sizeof(float));
    if (!up) return sal_tensor_copy(&c->out, &c->layer_out);
    float *big = sal_malloc((size_t)sal_tensor_numel(c->x) * sizeof(float));
    if (!big) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_status st = sal_map_to_input(c, c->layer, map, A->ndim - 2, A->dim + 2, big);
    if (st == SAL_OK) st = sal_map_spread(c, big, &c->out);
    sal_free(big);
    return st;
}

typedef struct {
    cam_agg agg;
    bool relu, up, negate;
} cam_opts;

/* The node that alone reads value v, which is no model output either; -1 if none. */
static int sole_reader(const sal_model *m, int v) {
    int r = -1;
    for (int i = 0; i < m->noutput; i++)
        if (m->output[i] == v) return -1;
    for (int i = 0; i < m->nnode; i++)
        for (int k = 0; k < m->node[i].nin; k++)
            if (m->node[i].in[k] == v) {
                if (r >= 0) return -1;
                r = i;
            }
    return r;
}

/* Whether MaxPool node n hands every output's gradient to an input (to one: the sum over a channel
 * is kept): no padding, so that no window lies outside the input, and no Indices output. */
static bool pool_keeps_sums(const sal_node *n) {
    const sal_attr *pads = sal_attr_find(n, "pads"), *ap = sal_attr_find(n, "auto_pad");
    for (int i = 0; pads && i < pads->n; i++)
        if (pads->ints[i]) return false;
    return (n->nout == 1 || n->out[1] < 0) && (!ap || !ap->s || !strncmp(ap->s, "VALID", 5) ||
                                               !strncmp(ap->s, "NOTSET", 6));
}

/* The Gemm that layer value v (N, K, spatial) reaches the outputs through, alone: v, or a max
 * pooling's output of v, flattened to (N, K S) is its first input. *y: its output; *S: the
 * positions per channel at its input. -1 when v goes elsewhere too. */
static int dense_head(const sal_session *s, int v, int *y, int64_t *S) {
    const sal_model *m = s->m;
    int64_t N = s->act[v].dim[0], K = s->act[v].dim[1];
    int i = sole_reader(m, v);
    if (i >= 0 && sal_node_is(&m->node[i], SAL_OP_MaxPool) && pool_keeps_sums(&m->node[i]))
        i = sole_reader(m, v = m->node[i].out[0]);
    if (i < 0 || !(sal_node_is(&m->node[i], SAL_OP_Flatten) || sal_node_is(&m->node[i], SAL_OP_Reshape)) ||
        m->node[i].in[0] != v)
        return -1;
    const sal_tensor *P = &s->act[v], *F = &s->act[m->node[i].out[0]];
    if (P->ndim < 3 || P->dim[0] != N || P->dim[1] != K || F->ndim != 2 || F->dim[0] != N ||
        F->dim[1] * N != sal_tensor_numel(P))
        return -1;
    int g = sole_reader(m, m->node[i].out[0]);
    if (g < 0 || !sal_node_is(&m->node[g], SAL_OP_Gemm) || m->node[g].in[0] != m->node[i].out[0]) return -1;
    *y = m->node[g].out[0];
    *S = sal_spatial_size(P);
    return g;
}

/* Grad-CAM's weights, mean G_k, without G when layer value v reaches the outputs only through a
 * dense layer (dense_head: VGG's and the small CNN's heads). The sum of G over channel k is then
 * alpha g op(B) summed over k's inputs, g the gradient at the dense layer's output: g times op(B)'s
 * rows summed per channel, which the Gemm keeps (sal_gemm_group_sums). The backward into the layer
 * read all the rows of op(B) that g picks every call: the small CNN's 1.6 MB in half, 7 of its
 * 58 us; VGG16's 411 MB in half, 4.5 ms. *w (N, K) stays NULL when this does not apply. */
static sal_status head_weights(sal_xctx *c, int v, double **w) {
    *w = NULL;
    int y;
    int64_t Sh, J;
    float alpha;
    int gemm = dense_head(c->s, v, &y, &Sh);
    const sal_tensor *A = &c->s->act[v];
    int64_t N = A->dim[0], K = A->dim[1], S = sal_spatial_size(A);
    const float *R = gemm >= 0 ? sal_exec_gemm_group_sums(c->s, gemm, K * Sh, Sh, &J, &alpha) : NULL;
    if (!R) return SAL_OK; /* the full backward instead */
    SAL_TRY(sal_layer_grads(c, 1, &y, false, NULL));
    const float *g = sal_f32(&c->s->grad[y]);
    double *wk = sal_malloc((size_t)(N * K) * sizeof *wk);
    if (!wk) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) wk[n * K + k] = alpha * dot_d(R + k * J, g + n * J, J) / (double)S;
    *w = wk;
    return SAL_OK;
}

/* Grad-CAM and the gradient-weighted relatives at one layer. */
static sal_status cam_run(sal_xctx *c, cam_opts o) {
    SAL_TRY(sal_layer_forward(c));
    sal_layer L;
    sal_tokens tk;
    SAL_TRY(sal_layer_resolve_tokens(c, sal_param(c, "layer"), sal_param(c, "tokens"), &L, &tk));
    SAL_TRY(sal_layer_readable(c, L.val));
    if (o.up) SAL_TRY(sal_map_check(c, c->layer, tk.on ? 2 : c->s->act[L.val].ndim - 2)); /* before the backward pass */
    double *wk = NULL;
    if ((o.agg == AGG_GRADCAM || o.agg == AGG_POS) && !tk.on) SAL_TRY(head_weights(c, L.val, &wk));
    sal_status st = wk ? SAL_OK : sal_layer_grads(c, 1, &L.val, false, NULL);
    const sal_tensor *A = &c->s->act[L.val], *G = wk ? NULL : &c->s->grad[L.val];
    sal_tensor Ag = {0}, Gg = {0}; /* token layers as (N, C, h, w) */
    if (st == SAL_OK && tk.on && (st = sal_tokens_grid(&tk, A, &Ag)) == SAL_OK &&
        (st = sal_tokens_grid(&tk, G, &Gg)) == SAL_OK)
        A = &Ag, G = &Gg;
    int64_t N = A->dim[0], K = A->dim[1], S = sal_spatial_size(A);
    float *map = st == SAL_OK ? sal_malloc((size_t)(N * S) * sizeof(float)) : NULL;
    if (st == SAL_OK && !map) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) {
        aggregate(o.agg, sal_f32(A), G ? sal_f32(G) : NULL, wk, N, K, S, map);
        if (o.negate) /* Grad-CAM is linear in G: the weights of -G give minus the map */
            for (int64_t i = 0; i < N * S; i++) map[i] = -map[i];
        if (o.relu)
            for (int64_t i = 0; i < N * S; i++) map[i] = map[i] > 0 ? map[i] : 0.0f;
        st = finish(c, A, map, o.up);
    }
    sal_free(map);
    sal_free(wk);
    sal_tensor_free(&Ag);
    sal_tensor_free(&Gg);
    return st;
}

/* The shared parameters a method declares: relu (when it has one) and upsample. */
static sal_status cam_params(sal_xctx *c, cam_agg agg, bool has_relu, cam_opts *o) {
    int up = 0;
    o->agg = agg;
    o->relu = false;
    o->negate = false;
    if (has_relu) SAL_TRY(sal_param_bool(c, "relu", &o->relu));
    SAL_TRY(sal_param_choice(c, "upsample", k_upsample, &up));
    o->up = up == 0;
    return SAL_OK;
}

static sal_status run_with(sal_xctx *c, cam_agg agg, bool has_relu) {
    cam_opts o;
    SAL_TRY(cam_params(c, agg, has_relu, &o));
    return cam_run(c, o);
}

/* ---- counterfactual Grad-CAM (Selvaraju et al. 2017, section on counterfactual explanations):
 * the map of -G marks regions that speak against the class, so removing them should raise its
 * score. The check: per sample, the pixels where the upsampled map reaches cf_threshold times its
 * maximum take the input range's low end; both inputs run forward; the JSON gets the score's
 * change per sample, the number of samples where it rose and of those checked (a map that marks
 * nothing is not checked). ---- */

typedef struct {
    const sal_xctx *c;
    const float *map; /* c->out, shaped as x */
    int64_t D;
    double thr;
    double *score; /* (N, 2): the explained output on x, on x with the region removed */
    bool *empty;   /* (N): the map marks nothing */
} cf_u;

static sal_status cf_make(void *up, int64_t i, int64_t k, float *row, sal_rng *r) {
    (void)r;
    cf_u *u = up;
    const float *x = sal_f32(u->c->x) + i * u->D, *m = u->map + i * u->D;
    float mx = 0;
    for (int64_t j = 0; j < u->D; j++) mx = fmaxf(mx, m[j]);
    u->empty[i] = !(mx > 0);
    float fill = (float)u->c->lo, cut = (float)(u->thr * mx);
    for (int64_t j = 0; j < u->D; j++) row[j] = k == 1 && mx > 0 && m[j] >= cut ? fill : x[j];
    return SAL_OK;
}

static sal_status cf_after(void *up, const sal_chunk *ch) {
    cf_u *u = up;
    for (int64_t r = 0; r < ch->n; r++) u->score[ch->r0 + r] = ch->value[r]; /* row i * 2 + k */
    return SAL_OK;
}

static sal_status cf_check(sal_xctx *c, double thr) {
    int64_t N = c->x->dim[0];
    cf_u u = {.c = c, .map = sal_f32(&c->out), .D = sal_tensor_numel(c->x) / N, .thr = thr};
    u.score = sal_malloc((size_t)(2 * N) * sizeof *u.score);
    u.empty = sal_calloc((size_t)N, sizeof *u.empty);
    c->series = sal_malloc((size_t)N * sizeof *c->series);
    sal_status st = u.score && u.empty && c->series ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_batched b = {.per_sample = 2, .make = cf_make, .after = cf_after, .u = &u, .forward_only = true};
    if (st == SAL_OK) st = sal_run_batched(c, &b);
    if (st == SAL_OK) {
        int raised = 0, checked = 0;
        double sum = 0;
        for (int64_t i = 0; i < N; i++) {
            double d = u.score[2 * i + 1] - u.score[2 * i];
            c->series[i] = u.empty[i] ? NAN : d;
            if (u.empty[i]) continue;
            checked++;
            raised += d > 0;
            sum += d;
        }
        snprintf(c->series_key, sizeof c->series_key, "counterfactual_score_change");
        sal_metric(c, "counterfactual_raised", raised);
        sal_metric(c, "counterfactual_checked", checked);
        sal_metric(c, "counterfactual_mean_change", checked ? sum / checked : NAN);
    }
    sal_free(u.score);
    sal_free(u.empty);
    return st;
}

/* counterfactual and cf_threshold; the check needs the map at the input's resolution */
static sal_status cf_params(sal_xctx *c, bool *neg, double *thr) {
    SAL_TRY(sal_param_bool(c, "counterfactual", neg));
    return sal_param_float(c, "cf_threshold", 0, 1, thr);
}

static sal_status run_gradcam(sal_xctx *c) {
    cam_opts o;
    double thr;
    SAL_TRY(cam_params(c, AGG_GRADCAM, true, &o));
    SAL_TRY(cf_params(c, &o.negate, &thr));
    SAL_TRY(cam_run(c, o));
    return o.negate && o.up ? cf_check(c, thr) : SAL_OK;
}
static sal_status run_gradcam_pp(sal_xctx *c) { return run_with(c, AGG_GRADCAM_PP, true); }
static sal_status run_layercam(sal_xctx *c) { return run_with(c, AGG_LAYERCAM, true); }
static sal_status run_xgradcam(sal_xctx *c) { return run_with(c, AGG_XGRADCAM, true); }
static sal_status run_gradcam_pos(sal_xctx *c) { return run_with(c, AGG_POS, false); }
static sal_status run_gradmid(sal_xctx *c) { return run_with(c, AGG_MID, false); }

/* ---- Guided Grad-CAM: the upsampled map gates guided backprop's input-resolution detail ---- */

static sal_status run_guided_gradcam(sal_xctx *c) {
    const sal_method *gb = sal_method_lookup("guided_backprop");
    if (!gb) return sal_fail(SAL_ERR_UNSUPPORTED, "needs the guided_backprop method, which this build lacks");
    cam_opts o = {.agg = AGG_GRADCAM, .up = true};
    double thr;
    SAL_TRY(sal_param_bool(c, "relu", &o.relu));
    SAL_TRY(cf_params(c, &o.negate, &thr));
    SAL_TRY(cam_run(c, o));
    if (o.negate) SAL_TRY(cf_check(c, thr)); /* on the Grad-CAM map, which marks the region */
    /* guided backprop on its own context: its parameters are its defaults, its outputs ours to free */
    sal_xctx sub = *c;
    sub.meth = gb;
    sub.nkv = 0;
    sub.key = sub.val = NULL;
    memset(&sub.out, 0, sizeof sub.out);
    memset(&sub.layer_out, 0, sizeof sub.layer_out);
    sub.nmetric = 0;
    sub.series = NULL;
    sal_status st = gb->run(&sub);
    if (st != SAL_OK) st = sal_wrap(st, "guided_backprop");
    else if (!sal_tensor_same_shape(&sub.out, &c->out))
        st = sal_fail(SAL_ERR_INTERNAL, "guided_backprop returned a map not shaped as the input");
    if (st == SAL_OK) {
        float *a = sal_f32(&c->out);
        const float *g = sal_f32(&sub.out);
        for (int64_t i = 0, n = sal_tensor_numel(&c->out); i < n; i++) a[i] *= g[i];
    }
    sal_tensor_free(&sub.out);
    sal_tensor_free(&sub.layer_out);
    return st;
}

/* ---- Score-CAM: each channel, upsampled and scaled to [0, 1], masks the input; the explained
 * output of the masked input weighs the channel. Masked inputs run as batches. ---- */

typedef struct {
    const sal_xctx *c;
    const float *A; /* (N, K, S) copied: batched passes reuse the session's buffers */
    int64_t K, S, C, Sx;
    int nd;
    const int64_t *sdim;
    float *mask; /* (Sx) */
    bool *skip;  /* (N, K): constant channels give no mask */
    float *w;    /* (N, K) */
    bool softmax; /* weights: the softmax over the classes of the masked input's outputs */
} score_u;

static sal_status score_make(void *up, int64_t i, int64_t k, float *row, sal_rng *r) {
    (void)r;
    score_u *u = up;
    SAL_TRY(sal_resample_linear(u->A + (i * u->K + k) * u->S, 1, u->nd, u->sdim, u->mask, u->c->x->dim + 2));
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t s = 0; s < u->Sx; s++) {
        lo = fminf(lo, u->mask[s]);
        hi = fmaxf(hi, u->mask[s]);
    }
    u->skip[i * u->K + k] = !(hi > lo); /* as the authors' code: a flat channel is left out */
    const float *x = sal_f32(u->c->x) + i * u->C * u->Sx;
    for (int64_t ch = 0; ch < u->C; ch++)
        for (int64_t s = 0; s < u->Sx; s++)
            row[ch * u->Sx + s] = hi > lo ? x[ch * u->Sx + s] * ((u->mask[s] - lo) / (hi - lo)) : 0.0f;
    return SAL_OK;
}

/* A chunk's weights: the explained output of each masked input, or (Wang et al.'s code) its class
 * probability, the softmax over the classes of its outputs (the outputs themselves when the model
 * gives probabilities). */
static sal_status score_after(void *up, const sal_chunk *ch) {
    score_u *u = up;
    const sal_tensor *y = &ch->s->act[ch->s->m->output[0]];
    int64_t Kc = y->dim[1];
    for (int64_t r = 0; r < ch->n; r++) {
        int64_t i = (ch->r0 + r) / u->K, k = (ch->r0 + r) % u->K, t = ch->target[r];
        double v = ch->value[r];
        if (u->softmax && !u->c->out_prob) {
            const float *z = sal_f32(y) + r * Kc;
            double mx = z[0], sum = 0;
            for (int64_t q = 1; q < Kc; q++) mx = fmax(mx, z[q]);
            for (int64_t q = 0; q < Kc; q++) sum += exp((double)z[q] - mx);
            v = exp((double)z[t] - mx) / sum;
        } else if (u->softmax) {
            v = sal_f32(y)[r * Kc + t];
        }
        u->w[i * u->K + k] = u->skip[i * u->K + k] ? 0.0f : (float)v;
    }
    return SAL_OK;
}

static sal_status run_scorecam(sal_xctx *c) {
    cam_opts o;
    SAL_TRY(cam_params(c, AGG_GRADCAM, true, &o));
    static const char *const weights[] = {"softmax", "output", NULL};
    int wk;
    SAL_TRY(sal_param_choice(c, "weights", weights, &wk));
    SAL_TRY(sal_layer_forward(c));
    sal_layer L;
    sal_tokens tk;
    SAL_TRY(sal_layer_resolve_tokens(c, sal_param(c, "layer"), sal_param(c, "tokens"), &L, &tk));
    sal_tensor A = {0};
    SAL_TRY(tk.on ? sal_tokens_grid(&tk, &c->s->act[L.val], &A) : sal_tensor_copy(&A, &c->s->act[L.val]));
    const sal_tensor *x = c->x;
    int64_t N = A.dim[0], K = A.dim[1], S = sal_spatial_size(&A);
    score_u u = {.c = c, .A = sal_f32(&A), .K = K, .S = S, .nd = A.ndim - 2, .sdim = A.dim + 2, .softmax = wk == 0};
    sal_status st = SAL_OK;
    if ((st = sal_map_check(c, c->layer, A.ndim - 2)) == SAL_OK) { /* masks live at the input's resolution */
        u.C = x->dim[1];
        u.Sx = sal_spatial_size(x);
    }
    float *map = sal_malloc((size_t)(N * S) * sizeof(float));
    if (st == SAL_OK) {
        u.mask = sal_malloc((size_t)u.Sx * sizeof(float));
        u.skip = sal_calloc((size_t)(N * K), sizeof *u.skip);
        u.w = sal_calloc((size_t)(N * K), sizeof *u.w);
        if (!map || !u.mask || !u.skip || !u.w) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    sal_batched b = {.per_sample = K, .make = score_make, .after = score_after, .u = &u, .forward_only = true};
    if (st == SAL_OK) st = sal_run_batched(c, &b);
    if (st == SAL_OK) {
        for (int64_t n = 0; n < N; n++) {
            float *mp = map + n * S;
            for (int64_t s = 0; s < S; s++) mp[s] = 0;
            for (int64_t k = 0; k < K; k++) {
                const float *a = u.A + (n * K + k) * S;
                float w = u.w[n * K + k];
                for (int64_t s = 0; s < S; s++) mp[s] += w * a[s];
            }
        }
        st = finish(c, &A, map, o.up);
    }
    /* the ReLU after upsampling, as the authors' code applies it (linear upsampling commutes with
     * the channel sum, so this is ReLU(sum_k w_k upsampled A_k)); the layer map gets it too */
    for (int t = 0; st == SAL_OK && o.relu && t < 2; t++) {
        sal_tensor *m = t ? &c->layer_out : &c->out;
        float *v = sal_f32(m);
        for (int64_t i = 0, n = sal_tensor_numel(m); i < n; i++) v[i] = v[i] > 0 ? v[i] : 0.0f;
    }
    sal_free(map);
    sal_free(u.mask);
    sal_free(u.skip);
    sal_free(u.w);
    sal_tensor_free(&A);
    return st;
}

/* ---- cumulative variants: every candidate layer, post-processed as FullGrad does ---- */

static sal_status run_cumulative(sal_xctx *c, cam_agg agg) {
    SAL_TRY(sal_layer_forward(c));
    int n;
    SAL_TRY(sal_layer_candidates_to(c->s, sal_explained(c, c->m), NULL, 0, &n));
    if (!n)
        return sal_fail(SAL_ERR_UNSUPPORTED,
                        "%s has no layer with a spatial output (N, C, H, W...) leading to the explained output; "
                        "layer methods need a convolutional model",
                        c->m->path);
    sal_layer *l = sal_calloc((size_t)n, sizeof *l);
    int *vals = sal_calloc((size_t)n, sizeof *vals);
    const sal_tensor *x = c->x;
    int64_t N = x->dim[0], Sx = x->ndim > 2 ? sal_spatial_size(x) : 1;
    float *acc = sal_calloc((size_t)(N * Sx), sizeof *acc), *big = sal_malloc((size_t)(N * Sx) * sizeof *big);
    float *map = NULL;
    sal_status st = l && vals && acc && big ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = sal_layer_candidates_to(c->s, sal_explained(c, c->m), l, n, &n);
    sal_tokens *tk = sal_calloc((size_t)n + 1, sizeof *tk);
    sal_tensor Ag = {0}, Gg = {0};
    if (st == SAL_OK && !tk) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    /* the layers whose maps can be drawn on the input: as many spatial dims, or tokens on a grid
     * (tokens=auto); a transformer's other values (window partitions, class tokens) are counted */
    int nr = 0, ncand = n;
    for (int i = 0; st == SAL_OK && i < n; i++) {
        st = sal_tokens_of(c, "auto", c->m->node[l[i].node].name, &c->s->act[l[i].val], &tk[nr]);
        if (st == SAL_OK && (tk[nr].on || c->s->act[l[i].val].ndim == x->ndim)) l[nr] = l[i], vals[nr] = l[i].val, nr++;
    }
    n = nr;
    if (st == SAL_OK && !n)
        st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: none of its %d layer candidates has a map with the input's spatial "
                      "dims or tokens on a grid", c->m->path, ncand);
    for (int i = 0; st == SAL_OK && i < n; i++)
        st = sal_map_check(c, c->m->node[l[i].node].name, tk[i].on ? 2 : c->s->act[l[i].val].ndim - 2);
    if (st == SAL_OK) st = sal_layer_grads(c, n, vals, false, NULL);
    for (int i = 0; st == SAL_OK && i < n; i++) {
        const sal_tensor *A = &c->s->act[l[i].val], *G = &c->s->grad[l[i].val];
        if (tk[i].on && (st = sal_tokens_grid(&tk[i], A, &Ag)) == SAL_OK && (st = sal_tokens_grid(&tk[i], G, &Gg)) == SAL_OK)
            A = &Ag, G = &Gg;
        if (st != SAL_OK) break;
        int64_t K = A->dim[1], S = sal_spatial_size(A);
        float *p = sal_realloc(map, (size_t)(N * S) * sizeof *map);
        if (!p) {
            st = sal_fail(SAL_ERR_NOMEM, "out of memory");
            break;
        }
        map = p;
        aggregate(agg, sal_f32(A), sal_f32(G), NULL, N, K, S, map);
        sal_minmax_rows(map, N, S);
        st = sal_map_to_input(c, c->m->node[l[i].node].name, map, A->ndim - 2, A->dim + 2, big);
        for (int64_t j = 0; st == SAL_OK && j < N * Sx; j++) acc[j] += big[j];
    }
    if (st == SAL_OK) st = sal_map_spread(c, acc, &c->out);
    if (st == SAL_OK) {
        snprintf(c->layer, sizeof c->layer, "all");
        sal_metric(c, "layers", n);
        sal_metric(c, "layers_unreadable", ncand - n);
    }
    sal_free(l);
    sal_free(tk);
    sal_tensor_free(&Ag);
    sal_tensor_free(&Gg);
    sal_free(vals);
    sal_free(acc);
    sal_free(big);
    sal_free(map);
    return st;
}

static sal_status run_cumulative_gradcam(sal_xctx *c) { return run_cumulative(c, AGG_POS); }
static sal_status run_cumulative_gradmid(sal_xctx *c) { return run_cumulative(c, AGG_MID); }

/* ---- the table ---- */

#define P_LAYER                                                                                                 \
    {"layer", "auto", "node or output name of a spatial layer (saliency info lists them); auto: the last one "   \
                      "before the classifier"}
#define P_RELU {"relu", "true", "clip the map at zero (true/false)"}
#define P_UPSAMPLE                                                                                               \
    {"upsample", "bilinear", "bilinear: resample the map to the input size (A.npy shaped as the input, the map "  \
                             "repeated over channels); none: keep the layer's resolution"}

#define P_CF                                                                                                      \
    {"counterfactual", "false", "true: weights from the negated gradient, marking regions whose removal should "   \
                                "raise the class score (and checking that per sample)"},                           \
    {"cf_threshold", "0.5", "counterfactual check: pixels where the map reaches this fraction of its maximum are " \
                            "removed (set to the input range's low end)"}
#define P_TOKENS                                                                                           \
    {"tokens", "auto", "a (N, tokens, C) layer of a transformer read as an h x w grid: auto (when the tokens "   \
                       "after 0 to 8 leading ones, class tokens, tile the input's aspect), HxW, or none"}

static const sal_param_spec k_cam[] = {P_LAYER, P_RELU, P_UPSAMPLE, P_TOKENS, {NULL, NULL, NULL}};
static const sal_param_spec k_gradcam[] = {P_LAYER, P_RELU, P_UPSAMPLE, P_TOKENS, P_CF, {NULL, NULL, NULL}};
static const sal_param_spec k_score[] = {
    P_LAYER, P_RELU, P_UPSAMPLE, P_TOKENS,
    {"weights", "softmax", "channel weights: softmax (the target's probability over the classes on the masked input, "
                           "Wang et al.'s code) or output (the explained output itself: logit, or probability with "
                           "--output prob)"},
    {NULL, NULL, NULL}};
static const sal_param_spec k_pos[] = {P_LAYER, P_UPSAMPLE, P_TOKENS, {NULL, NULL, NULL}};
static const sal_param_spec k_guided[] = {P_LAYER, P_RELU, P_TOKENS, P_CF, {NULL, NULL, NULL}};
static const sal_param_spec k_none[] = {{NULL, NULL, NULL}};

const sal_method sal_method_gradcam = {
    .name = "gradcam",
    .summary = "ReLU(sum_k mean(dF/dA_k) A_k) at a layer (Selvaraju et al. 2017, Grad-CAM); counterfactual=true "
               "negates the gradient",
    .params = k_gradcam,
    .run = run_gradcam,
    .layer_io = true,
};

const sal_method sal_method_gradcam_pp = {
    .name = "gradcam_pp",
    .summary = "Grad-CAM with alpha-weighted positive gradients (Chattopadhay et al. 2018, Grad-CAM++)",
    .params = k_cam,
    .run = run_gradcam_pp,
    .layer_io = true,
};

const sal_method sal_method_guided_gradcam = {
    .name = "guided_gradcam",
    .summary = "upsampled Grad-CAM times guided backprop (Selvaraju et al. 2017)",
    .params = k_guided,
    .run = run_guided_gradcam,
    .layer_io = true,
};

const sal_method sal_method_layercam = {
    .name = "layercam",
    .summary = "ReLU(sum_k relu(dF/dA_k) A_k), element-wise weights (Jiang et al. 2021, LayerCAM)",
    .params = k_cam,
    .run = run_layercam,
    .layer_io = true,
};

const sal_method sal_method_xgradcam = {
    .name = "xgradcam",
    .summary = "Grad-CAM with activation-weighted gradient means (Fu et al. 2020, XGrad-CAM)",
    .params = k_cam,
    .run = run_xgradcam,
    .layer_io = true,
};

const sal_method sal_method_scorecam = {
    .name = "scorecam",
    .summary = "channels weighted by the class probability on the input masked by each (Wang et al. 2020, Score-CAM)",
    .params = k_score,
    .run = run_scorecam,
};

const sal_method sal_method_gradcam_pos = {
    .name = "gradcam_pos",
    .summary = "Grad-CAM with |.| before the channel sum: sum_k |w_k A_k| (Khakzar et al. 2020)",
    .params = k_pos,
    .run = run_gradcam_pos,
    .layer_io = true,
};

const sal_method sal_method_gradmid = {
    .name = "gradmid",
    .summary = "sum_k |dF/dA_k|: gradients alone, positively aggregated (Khakzar et al. 2020)",
    .params = k_pos,
    .run = run_gradmid,
    .layer_io = true,
};

const sal_method sal_method_cumulative_gradcam = {
    .name = "cumulative_gradcam",
    .summary = "gradcam_pos at every spatial layer, normalised, upsampled and summed (Khakzar et al. 2020)",
    .params = k_none,
    .run = run_cumulative_gradcam,
};

const sal_method sal_method_cumulative_gradmid = {
    .name = "cumulative_gradmid",
    .summary = "gradmid at every spatial layer, normalised, upsampled and summed (Khakzar et al. 2020)",
    .params = k_none,
    .run = run_cumulative_gradmid,
};
