/* Choosing the layer of a layer method, and resampling layer maps to the input's resolution. */
#include "layer.h"
#include <math.h>

int64_t sal_spatial_size(const sal_tensor *t) {
    int64_t s = 1;
    for (int d = 2; d < t->ndim; d++) s *= t->dim[d];
    return s;
}

/* A map needs a channel axis to aggregate over and more than one position to localise anything:
 * the (N, C, 1, 1) output of a global pool is not a layer map. */
static bool is_spatial(const sal_tensor *t, int64_t batch) {
    return t->dtype == SAL_F32 && t->ndim >= 3 && t->dim[0] == batch && sal_spatial_size(t) > 1;
}

sal_status sal_layer_candidates(const sal_session *s, sal_layer *out, int max, int *count) {
    return sal_layer_candidates_to(s, s->m->output[0], out, max, count);
}

sal_status sal_layer_candidates_to(const sal_session *s, int outv, sal_layer *out, int max, int *count) {
    const sal_model *m = s->m;
    *count = 0;
    if (!s->forward_done) return sal_fail(SAL_ERR_ARG, "choosing a layer needs a forward pass first");
    /* reach[v]: v lies on a path to output 0, so the explained output has a gradient there */
    bool *reach = sal_calloc((size_t)m->nval, sizeof *reach);
    if (!reach) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    reach[outv] = true;
    for (int i = m->nnode - 1; i >= 0; i--) {
        const sal_node *n = &m->node[i];
        bool any = false;
        for (int k = 0; k < n->nout; k++) any |= n->out[k] >= 0 && reach[n->out[k]];
        for (int k = 0; any && k < n->nin; k++)
            if (n->in[k] >= 0) reach[n->in[k]] = true;
    }
    int64_t batch = s->act[m->input[0]].dim[0];
    for (int i = 0; i < m->nnode; i++) {
        int v = m->node[i].out[0];
        if (v < 0 || !reach[v] || !is_spatial(&s->act[v], batch)) continue;
        if (out && *count < max) out[*count] = (sal_layer){i, v};
        (*count)++;
    }
    sal_free(reach);
    return SAL_OK;
}

sal_status sal_cam_layers(const sal_session *s, int *nodes, int max, int *count) {
    *count = 0;
    if (!s || (max > 0 && !nodes)) return sal_fail(SAL_ERR_ARG, "sal_cam_layers: NULL argument");
    int n;
    SAL_TRY(sal_layer_candidates(s, NULL, 0, &n));
    sal_layer *l = sal_calloc((size_t)n + 1, sizeof *l);
    if (!l) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_status st = sal_layer_candidates(s, l, n, &n);
    for (int i = 0; st == SAL_OK && i < n && i < max; i++) nodes[i] = l[i].node;
    if (st == SAL_OK) *count = n;
    sal_free(l);
    return st;
}

/* "a, b, c" of the candidates, for messages. */
static void candidate_list(const sal_model *m, const sal_layer *l, int n, char *buf, size_t len) {
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t k = strlen(buf);
        if (k + strlen(m->node[l[i].node].name) + 8 >= len) {
            snprintf(buf + k, len - k, ", ...");
            return;
        }
        snprintf(buf + k, len - k, "%s%s", i ? ", " : "", m->node[l[i].node].name);
    }
}

sal_status sal_layer_resolve(sal_xctx *c, const char *spec, sal_layer *out) {
    const sal_model *m = c->m;
    const sal_session *s = c->s;
    int n;
    SAL_TRY(sal_layer_candidates_to(s, sal_explained(c, m), NULL, 0, &n));
    sal_layer *l = sal_calloc((size_t)n + 1, sizeof *l);
    if (!l) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_status st = sal_layer_candidates_to(s, sal_explained(c, m), l, n, &n);
    char list[400]; /* for the messages only: written when one needs it */
    if (st != SAL_OK) goto done;
    if (!*spec || !strcmp(spec, "auto")) { /* the default: the last spatial layer before the classifier */
        if (!n)
            st = sal_fail(SAL_ERR_UNSUPPORTED,
                          "%s has no layer with a spatial output (N, C, H, W...) leading to the explained output; "
                          "layer methods need a convolutional model",
                          m->path);
        else *out = l[n - 1];
        goto done;
    }
    int node = sal_graph_find_node(m, spec), v;
    if (node >= 0) {
        v = m->node[node].out[0];
    } else {
        v = sal_graph_find(m, spec);
        if (v < 0 || m->val[v].kind != SAL_VAL_NODE) {
            candidate_list(m, l, n, list, sizeof list);
            st = sal_fail(SAL_ERR_ARG, "layer '%s' is not a node or node output of %s; candidates: %s", spec, m->path,
                          n ? list : "none");
            goto done;
        }
        node = m->val[v].producer;
    }
    bool ok = false;
    for (int i = 0; i < n && !ok; i++) ok = l[i].node == node && l[i].val == v;
    if (!ok) {
        /* a chosen output other than the first is fine when it has the right form */
        int64_t batch = s->act[m->input[0]].dim[0];
        bool first = v == m->node[node].out[0];
        const sal_tensor *t = &s->act[v];
        char b[160];
        candidate_list(m, l, n, list, sizeof list);
        if (!is_spatial(t, batch))
            st = sal_fail(SAL_ERR_ARG,
                          "layer '%s' has output shape %s; layer methods need (N, C, spatial...) with more than one "
                          "spatial position; candidates: %s",
                          spec, sal_shape_str(t->ndim, t->dim, b, sizeof b), n ? list : "none");
        else if (first)
            st = sal_fail(SAL_ERR_ARG, "layer '%s' does not lead to the explained output; candidates: %s", spec,
                          n ? list : "none");
        else ok = true;
    }
    if (ok) *out = (sal_layer){node, v};
done:
    if (st == SAL_OK) snprintf(c->layer, sizeof c->layer, "%s", m->node[out->node].name);
    sal_free(l);
    return st;
}

/* ---- token layers ---- */

sal_status sal_tokens_of(const sal_xctx *c, const char *spec, const char *layer, const sal_tensor *A, sal_tokens *t) {
    *t = (sal_tokens){0};
    const sal_tensor *x = c->x;
    char b[160];
    if (!strcmp(spec, "none")) return SAL_OK;
    if (!strcmp(spec, "auto")) {
        if (A->ndim != 3 || x->ndim != 4) return SAL_OK;
        int64_t T = A->dim[1], H = x->dim[2], W = x->dim[3];
        for (int64_t k = 0; k <= 8 && k < T - 1; k++) {
            int64_t n = T - k;
            /* h w = n with h W = w H: h = sqrt(n H / W) */
            int64_t h = (int64_t)llround(sqrt((double)n * (double)H / (double)W));
            for (int64_t hh = h > 1 ? h - 1 : 1; hh <= h + 1; hh++) {
                if (n % hh) continue;
                int64_t ww = n / hh;
                if (hh * W == ww * H) {
                    *t = (sal_tokens){true, k, hh, ww};
                    return SAL_OK;
                }
            }
        }
        return SAL_OK;
    }
    long long h, w;
    char end;
    if (sscanf(spec, "%lldx%lld%c", &h, &w, &end) != 2 || h < 1 || w < 1)
        return sal_fail(SAL_ERR_ARG, "method %s: parameter tokens=%s must be auto, none or HxW (e.g. 14x14)",
                        c->meth->name, spec);
    if (A->ndim != 3 || A->dim[1] < h * w)
        return sal_fail(SAL_ERR_SHAPE, "method %s: layer '%s' has shape %s: tokens=%s needs (N, tokens, channels) with "
                        "at least %lld tokens", c->meth->name, layer, sal_shape_str(A->ndim, A->dim, b, sizeof b), spec,
                        h * w);
    *t = (sal_tokens){true, A->dim[1] - h * w, h, w};
    return SAL_OK;
}

sal_status sal_tokens_grid(const sal_tokens *t, const sal_tensor *A, sal_tensor *out) {
    int64_t N = A->dim[0], T = A->dim[1], C = A->dim[2], S = t->h * t->w;
    SAL_TRY(sal_tensor_alloc(out, SAL_F32, 4, (int64_t[]){N, C, t->h, t->w}));
    const float *a = sal_f32(A);
    float *o = sal_f32(out);
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++)
            for (int64_t ch = 0; ch < C; ch++) o[(n * C + ch) * S + s] = a[(n * T + t->prefix + s) * C + ch];
    return SAL_OK;
}

/* Whether the gradient at token layer v is non-zero anywhere on its grid. */
static bool grid_reached(const sal_tensor *G, const sal_tokens *t) {
    int64_t N = G->dim[0], T = G->dim[1], C = G->dim[2];
    for (int64_t n = 0; n < N; n++) {
        const float *g = sal_f32(G) + (n * T + t->prefix) * C;
        for (int64_t i = 0; i < (T - t->prefix) * C; i++)
            if (g[i] != 0) return true;
    }
    return false;
}

sal_status sal_layer_resolve_tokens(sal_xctx *c, const char *spec, const char *tokens, sal_layer *out,
                                    sal_tokens *t) {
    SAL_TRY(sal_layer_resolve(c, spec, out));
    SAL_TRY(sal_tokens_of(c, tokens, c->layer, &c->s->act[out->val], t));
    if ((*spec && strcmp(spec, "auto")) || !t->on) return SAL_OK;
    /* the default is a token layer: every token layer of the same reading, gradients in one pass */
    int n;
    SAL_TRY(sal_layer_candidates_to(c->s, sal_explained(c, c->m), NULL, 0, &n));
    sal_layer *l = sal_calloc((size_t)n + 1, sizeof *l);
    sal_tokens *tk = sal_calloc((size_t)n + 1, sizeof *tk);
    int *vals = sal_calloc((size_t)n + 1, sizeof *vals), nv = 0;
    sal_status st = l && tk && vals ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = sal_layer_candidates_to(c->s, sal_explained(c, c->m), l, n, &n);
    for (int i = 0; st == SAL_OK && i < n; i++) {
        st = sal_tokens_of(c, tokens, c->m->node[l[i].node].name, &c->s->act[l[i].val], &tk[nv]);
        if (st == SAL_OK && tk[nv].on) l[nv] = l[i], vals[nv++] = l[i].val;
    }
    if (st == SAL_OK) st = sal_layer_grads(c, nv, vals, false, NULL);
    int pick = -1;
    for (int i = nv - 1; st == SAL_OK && i >= 0 && pick < 0; i--)
        if (grid_reached(&c->s->grad[vals[i]], &tk[i])) pick = i;
    if (st == SAL_OK && pick < 0)
        st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: the explained output's gradient reaches the grid of no token layer",
                      c->m->path);
    if (st == SAL_OK) {
        *out = l[pick];
        *t = tk[pick];
        snprintf(c->layer, sizeof c->layer, "%s", c->m->node[out->node].name);
    }
    sal_free(l);
    sal_free(tk);
    sal_free(vals);
    return st;
}

/* ---- resampling ---- */

/* Resamples axis of length n to length k on a (outer, n, inner) array. */
static void resample_axis(const float *src, int64_t outer, int64_t n, int64_t inner, float *dst, int64_t k) {
    double scale = (double)n / (double)k;
    for (int64_t o = 0; o < k; o++) {
        double p = ((double)o + 0.5) * scale - 0.5;
        if (p < 0) p = 0;
        int64_t i0 = (int64_t)p;
        if (i0 > n - 1) i0 = n - 1;
        int64_t i1 = i0 < n - 1 ? i0 + 1 : i0;
        float f = (float)(p - (double)i0);
        if (i1 == i0) f = 0;
        for (int64_t r = 0; r < outer; r++) {
            const float *a = src + (r * n + i0) * inner, *b = src + (r * n + i1) * inner;
            float *d = dst + (r * k + o) * inner;
            if (f == 0)
                for (int64_t j = 0; j < inner; j++) d[j] = a[j];
            else
                for (int64_t j = 0; j < inner; j++) d[j] = a[j] + f * (b[j] - a[j]);
        }
    }
}

sal_status sal_resample_linear(const float *src, int64_t rows, int nd, const int64_t *in, float *dst,
                               const int64_t *out) {
    if (nd < 1 || nd > SAL_MAX_DIMS) return sal_fail(SAL_ERR_ARG, "resampling: %d spatial dims", nd);
    for (int a = 0; a < nd; a++)
        if (in[a] < 1 || out[a] < 1) return sal_fail(SAL_ERR_SHAPE, "resampling: empty spatial dim %d", a);
    /* the largest intermediate: axes before a resampled, the rest not */
    int64_t big = 0;
    for (int a = 0; a < nd; a++) {
        int64_t e = rows;
        for (int b = 0; b < nd; b++) e *= b <= a ? out[b] : in[b];
        if (e > big) big = e;
    }
    float *buf[2] = {NULL, NULL};
    if (nd > 1) {
        buf[0] = sal_malloc((size_t)big * sizeof(float));
        buf[1] = nd > 2 ? sal_malloc((size_t)big * sizeof(float)) : NULL;
        if (!buf[0] || (nd > 2 && !buf[1])) {
            sal_free(buf[0]);
            sal_free(buf[1]);
            return sal_fail(SAL_ERR_NOMEM, "out of memory resampling a map");
        }
    }
    const float *cur = src;
    for (int a = 0; a < nd; a++) {
        int64_t outer = rows, inner = 1;
        for (int b = 0; b < a; b++) outer *= out[b];
        for (int b = a + 1; b < nd; b++) inner *= in[b];
        float *next = a == nd - 1 ? dst : buf[a % 2];
        resample_axis(cur, outer, in[a], inner, next, out[a]);
        cur = next;
    }
    sal_free(buf[0]);
    sal_free(buf[1]);
    return SAL_OK;
}

/* ---- shared steps of layer methods ---- */

sal_status sal_layer_forward(sal_xctx *c) {
    return sal_exec_forward_reuse(c->s, c->x);
}

sal_status sal_layer_readable(sal_xctx *c, int v) {
    sal_session *s = c->s;
    SAL_TRY(sal_layer_forward(c));
    if (s->viewed_by[v] >= 0) { /* sal_explain restores the session's setting */
        s->fuse = false;
        SAL_TRY(sal_exec_forward(s, c->x));
    }
    return sal_exec_unblock(s, v, true);
}

sal_status sal_layer_grads(sal_xctx *c, int nv, const int *vals, bool input, float *value) {
    const sal_model *m = c->m;
    SAL_TRY(sal_layer_forward(c));
    bool *wrt = sal_calloc((size_t)m->nval, sizeof *wrt);
    if (!wrt) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nv; i++) wrt[vals[i]] = true;
    if (input) wrt[m->input[0]] = true;
    int out = sal_explained(c, m);
    sal_tensor seed = {0};
    sal_status st = sal_target_seed(c, &c->s->act[out], c->target, &seed, value);
    sal_backward_opts bo = {.wrt = wrt};
    if (st == SAL_OK) st = sal_exec_backward(c->s, 1, &out, &seed, &bo);
    sal_tensor_free(&seed);
    sal_free(wrt);
    return st;
}

sal_status sal_map_check(const sal_xctx *c, const char *layer, int nd) {
    const sal_tensor *x = c->x;
    if (x->ndim - 2 != nd) {
        char b[160];
        return sal_fail(SAL_ERR_SHAPE,
                        "layer '%s' has %d spatial dims but the input %s has %d, so its map cannot be resampled to "
                        "the input (upsample=none keeps the layer's resolution; a (N, tokens, channels) layer is "
                        "read on a grid with tokens=auto or tokens=HxW)",
                        layer, nd, sal_shape_str(x->ndim, x->dim, b, sizeof b), x->ndim > 2 ? x->ndim - 2 : 0);
    }
    return SAL_OK;
}

sal_status sal_map_to_input(const sal_xctx *c, const char *layer, const float *map, int nd, const int64_t *sdim,
                            float *dst) {
    const sal_tensor *x = c->x;
    SAL_TRY(sal_map_check(c, layer, nd));
    return sal_resample_linear(map, x->dim[0], nd, sdim, dst, x->dim + 2);
}

sal_status sal_map_spread(const sal_xctx *c, const float *map, sal_tensor *out) {
    const sal_tensor *x = c->x;
    SAL_TRY(sal_tensor_alloc(out, SAL_F32, x->ndim, x->dim));
    int64_t N = x->dim[0], C = x->ndim > 2 ? x->dim[1] : 1;
    int64_t S = x->ndim > 2 ? sal_spatial_size(x) : x->ndim == 2 ? x->dim[1] : 1;
    float *o = sal_f32(out);
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < C; ch++) memcpy(o + (n * C + ch) * S, map + n * S, (size_t)S * sizeof(float));
    return SAL_OK;
}

void sal_minmax_rows(float *a, int64_t n, int64_t len) {
    for (int64_t r = 0; r < n; r++) {
        float *p = a + r * len, lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < len; i++) {
            lo = fminf(lo, p[i]);
            hi = fmaxf(hi, p[i]);
        }
        double span = (double)hi - (double)lo;
        for (int64_t i = 0; i < len; i++) p[i] = span > 0 ? (float)(((double)p[i] - lo) / span) : 0.0f;
    }
}
