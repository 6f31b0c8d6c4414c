/* Convolution through oneDNN (Debian's libdnnl): forward, backward-data and backward-weights
 * primitives in oneDNN's blocked layouts, with our tensors (plain N, C, spatial) reordered in and
 * out. Its 3x3 Winograd kernels (F(4x4, 3x3)) do a quarter of the multiplications and its direct
 * kernels run near the AVX-512 peak, which im2col + sgemm does not reach on narrow layers.
 *
 * Primitives are built once per node and input shape and kept in the session's scratch; every
 * buffer (blocked copies, oneDNN's scratchpad) comes from our allocator, so the memory budget holds.
 * Backward accumulates as the walker requires: the reorders back to plain layout add to the
 * destination (a sum post-op) instead of overwriting it. */
#include "conv_dnnl.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>

/* scratch slots: conv.c's im2col uses 0 and 1 */
enum { SL_SRC = 2, SL_WEI, SL_DST, SL_PAD, SL_BIAS };

static dnnl_engine_t g_eng;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_ok;           /* the engine exists */
static int g_mode = 1;     /* SAL_DNNL_OFF, _AUTO, _ALL; the environment's SAL_DNNL=0|all sets it */
static long g_calls;       /* primitives run, for tests */
/* a stream per thread: sessions may run in several threads, and a stream is not thread-safe */
static _Thread_local dnnl_stream_t g_stream;

static void dnnl_setup(void) {
    const char *e = getenv("SAL_DNNL");
    if (e && !strcmp(e, "0")) g_mode = SAL_DNNL_OFF;
    if (e && !strcmp(e, "all")) g_mode = SAL_DNNL_ALL;
    g_ok = dnnl_engine_create(&g_eng, dnnl_cpu, 0) == dnnl_success;
}

int sal_conv_dnnl_mode(int mode) {
    pthread_once(&g_once, dnnl_setup);
    int old = g_mode;
    if (mode >= 0) g_mode = mode;
    return old;
}

long sal_conv_dnnl_calls(void) { return __atomic_load_n(&g_calls, __ATOMIC_RELAXED); }

/* The calling thread's stream (made on first use; it lives as long as the thread). */
static bool stream_ready(void) {
    return g_stream || dnnl_stream_create(&g_stream, g_eng, dnnl_stream_default_flags) == dnnl_success;
}

/* One reorder between a plain tensor and a blocked buffer (NULL when the layouts agree). */
typedef struct {
    dnnl_primitive_t p;
    dnnl_memory_desc_t md; /* the primitive's side */
} reorder;

/* A weight in a primitive's layout, kept while the model's weights do not change: the node's own
 * constant at the model's version. Substituted weights (LRP's rules) are reordered every call. */
typedef struct {
    void *buf;
    size_t cap;
    const void *src;
    uint64_t version;
    bool valid;
} wcache;

typedef struct {
    dnnl_primitive_t prim;
    dnnl_primitive_desc_t pd;
    size_t pad; /* scratchpad bytes */
} prim;

struct sal_conv_dnnl {
    sal_conv_shape key;
    bool ok;                          /* primitives exist for key */
    dnnl_memory_desc_t x, w, b, y;    /* plain layouts */
    prim fwd, bwd_d, bwd_w;           /* bwd_* built on first use */
    reorder x_in, w_in, y_out;        /* forward: X, W in; Y out */
    reorder dy_d, w_d, dx_out, dx_set; /* backward data: dY, W in; dX out adding, or writing */
    reorder x_w, dy_w, dw_out;        /* backward weights: X, dY in; dW out (adding) */
    wcache wf, wd;                    /* the weights reordered for forward and backward data */
    dnnl_memory_desc_t db;            /* backward weights' diff bias (plain) */
    bool no_bwd_d, no_bwd_w;          /* oneDNN declined: our kernels run those */
    dnnl_alg_kind_t alg;              /* Winograd or direct, as the forward primitive */
};

static void prim_free(prim *p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    memset(p, 0, sizeof *p);
}

static void reorder_free(reorder *r) {
    if (r->p) dnnl_primitive_destroy(r->p);
    r->p = NULL;
}

static void state_clear(sal_conv_dnnl *s) {
    prim_free(&s->fwd);
    prim_free(&s->bwd_d);
    prim_free(&s->bwd_w);
    reorder *r[] = {&s->x_in, &s->w_in, &s->y_out, &s->dy_d, &s->w_d, &s->dx_out, &s->dx_set, &s->x_w, &s->dy_w,
                    &s->dw_out};
    for (size_t i = 0; i < sizeof r / sizeof *r; i++) reorder_free(r[i]);
    s->ok = s->no_bwd_d = s->no_bwd_w = false;
    s->wf.valid = s->wd.valid = false;
}

static void state_free(void *p) {
    sal_conv_dnnl *s = p;
    state_clear(s);
    sal_free(s->wf.buf);
    sal_free(s->wd.buf);
    sal_free(s);
}

static const dnnl_format_tag_t k_act_tag[4] = {0, dnnl_ncw, dnnl_nchw, dnnl_ncdhw};
static const dnnl_format_tag_t k_wei_tag[4] = {0, dnnl_oiw, dnnl_oihw, dnnl_oidhw};
static const dnnl_format_tag_t k_gwei_tag[4] = {0, dnnl_goiw, dnnl_goihw, dnnl_goidhw};

/* A reorder from `from` to `to` (adding to the destination when `add`), or none when equal. */
static bool reorder_make(reorder *r, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, bool add,
                         const dnnl_memory_desc_t *keep) {
    r->md = *keep;
    if (!add && dnnl_memory_desc_equal(from, to)) return true;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    bool ok = true;
    if (add) {
        ok = dnnl_primitive_attr_create(&attr) == dnnl_success && dnnl_post_ops_create(&ops) == dnnl_success &&
             dnnl_post_ops_append_sum(ops, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success;
    }
    dnnl_primitive_desc_t pd = NULL;
    ok = ok && dnnl_reorder_primitive_desc_create(&pd, from, g_eng, to, g_eng, attr) == dnnl_success &&
         dnnl_primitive_create(&r->p, pd) == dnnl_success;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return ok;
}

static dnnl_primitive_attr_t user_scratchpad(void) {
    dnnl_primitive_attr_t a = NULL;
    if (dnnl_primitive_attr_create(&a) != dnnl_success) return NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user) != dnnl_success) {
        dnnl_primitive_attr_destroy(a);
        return NULL;
    }
    return a;
}

/* A primitive of oneDNN's optimized kernels: its reference ("ref:") implementations are loops far
 * slower than ours (5.7 s for VGG16's first backward-data convolution), so they count as declined. */
static bool prim_make(prim *p, const void *op_desc, const dnnl_primitive_desc_t hint) {
    dnnl_primitive_attr_t attr = user_scratchpad();
    const char *impl = NULL;
    bool ok = attr && dnnl_primitive_desc_create(&p->pd, op_desc, attr, g_eng, hint) == dnnl_success &&
              dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
              strncmp(impl, "ref", 3) && dnnl_primitive_create(&p->prim, p->pd) == dnnl_success;
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (ok) p->pad = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0));
    return ok;
}

static const dnnl_memory_desc_t *md_of(const prim *p, dnnl_query_t q) { return dnnl_primitive_desc_query_md(p->pd, q, 0); }

/* The oneDNN convolution descriptor of shape k with layouts src/wei/dst (format any or plain). */
typedef struct {
    dnnl_dims_t strides, dil, pl, pr;
} geo;

static void geo_of(const sal_conv_shape *k, geo *g) {
    for (int i = 0; i < k->nsp; i++) {
        int j = 3 - k->nsp + i;
        g->strides[i] = k->s[j];
        g->dil[i] = k->d[j] - 1; /* oneDNN counts the gaps */
        g->pl[i] = k->pb[j];
        g->pr[i] = k->pe[j];
    }
}

static void dims_of(const sal_conv_shape *k, dnnl_dims_t x, dnnl_dims_t w, int *wnd, dnnl_dims_t y) {
    int nsp = k->nsp;
    x[0] = y[0] = k->N;
    x[1] = k->C;
    y[1] = k->M;
    for (int i = 0; i < nsp; i++) {
        x[2 + i] = k->in[3 - nsp + i];
        y[2 + i] = k->out[3 - nsp + i];
    }
    int o = 0;
    if (k->G > 1) w[o++] = k->G;
    w[o++] = k->M / k->G;
    w[o++] = k->C / k->G;
    for (int i = 0; i < nsp; i++) w[o++] = k->k[3 - nsp + i];
    *wnd = o;
}

/* Builds the forward primitive for s->key: Winograd where oneDNN has it, direct otherwise. */
static bool build_forward(sal_conv_dnnl *s, bool bias) {
    const sal_conv_shape *k = &s->key;
    int nd = 2 + k->nsp, wnd;
    dnnl_dims_t xd, wd, yd, bd = {k->M};
    dims_of(k, xd, wd, &wnd, yd);
    dnnl_format_tag_t wt = k->G > 1 ? k_gwei_tag[k->nsp] : k_wei_tag[k->nsp];
    if (dnnl_memory_desc_init_by_tag(&s->x, nd, xd, dnnl_f32, k_act_tag[k->nsp]) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->w, wnd, wd, dnnl_f32, wt) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->b, 1, bd, dnnl_f32, dnnl_x) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->y, nd, yd, dnnl_f32, k_act_tag[k->nsp]) != dnnl_success)
        return false;
    dnnl_memory_desc_t xa, wa, ya;
    dnnl_memory_desc_init_by_tag(&xa, nd, xd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wa, wnd, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&ya, nd, yd, dnnl_f32, dnnl_format_tag_any);
    geo g;
    geo_of(k, &g);
    bool wino = k->nsp == 2 && k->G == 1 && k->k[1] == 3 && k->k[2] == 3 && k->s[1] == 1 && k->s[2] == 1 &&
                k->d[1] == 1 && k->d[2] == 1 && k->C >= 16 && k->M >= 16;
    for (int a = wino ? 0 : 1; a < 2; a++) {
        dnnl_convolution_desc_t cd;
        if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training,
                                                       a == 0 ? dnnl_convolution_winograd : dnnl_convolution_direct,
                                                       &xa, &wa, bias ? &s->b : NULL, &ya, g.strides, g.dil, g.pl,
                                                       g.pr) != dnnl_success)
            continue;
        s->alg = a == 0 ? dnnl_convolution_winograd : dnnl_convolution_direct;
        if (prim_make(&s->fwd, &cd, NULL)) break;
        prim_free(&s->fwd);
    }
    if (!s->fwd.prim) return false;
    return reorder_make(&s->x_in, &s->x, md_of(&s->fwd, dnnl_query_src_md), false, md_of(&s->fwd, dnnl_query_src_md)) &&
           reorder_make(&s->w_in, &s->w, md_of(&s->fwd, dnnl_query_weights_md), false,
                        md_of(&s->fwd, dnnl_query_weights_md)) &&
           reorder_make(&s->y_out, md_of(&s->fwd, dnnl_query_dst_md), &s->y, false, md_of(&s->fwd, dnnl_query_dst_md));
}

/* Descriptors of s->key's tensors in whatever layout the kernel prefers. */
static void any_mds(const sal_conv_dnnl *s, dnnl_memory_desc_t *xa, dnnl_memory_desc_t *wa, dnnl_memory_desc_t *ya) {
    dnnl_memory_desc_init_by_tag(xa, s->x.ndims, s->x.dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(wa, s->w.ndims, s->w.dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(ya, s->y.ndims, s->y.dims, dnnl_f32, dnnl_format_tag_any);
}

static bool build_bwd_data(sal_conv_dnnl *s) {
    const sal_conv_shape *k = &s->key;
    dnnl_memory_desc_t xa, wa, ya;
    any_mds(s, &xa, &wa, &ya);
    dnnl_alg_kind_t alg = s->alg;
    geo g;
    geo_of(k, &g);
    dnnl_convolution_desc_t cd;
    if (dnnl_dilated_convolution_backward_data_desc_init(&cd, alg, &xa, &wa, &ya, g.strides, g.dil, g.pl, g.pr) !=
            dnnl_success ||
        !prim_make(&s->bwd_d, &cd, s->fwd.pd))
        return false;
    const dnnl_memory_desc_t *dy = md_of(&s->bwd_d, dnnl_query_diff_dst_md), *w = md_of(&s->bwd_d, dnnl_query_weights_md),
                             *dx = md_of(&s->bwd_d, dnnl_query_diff_src_md);
    return reorder_make(&s->dy_d, &s->y, dy, false, dy) && reorder_make(&s->w_d, &s->w, w, false, w) &&
           reorder_make(&s->dx_out, dx, &s->x, true, dx) && reorder_make(&s->dx_set, dx, &s->x, false, dx);
}

static bool build_bwd_weights(sal_conv_dnnl *s, bool bias) {
    const sal_conv_shape *k = &s->key;
    dnnl_memory_desc_t xa, wa, ya;
    any_mds(s, &xa, &wa, &ya);
    dnnl_alg_kind_t alg = s->alg;
    geo g;
    geo_of(k, &g);
    s->db = s->b;
    dnnl_convolution_desc_t cd;
    if (dnnl_dilated_convolution_backward_weights_desc_init(&cd, alg, &xa, &wa, bias ? &s->db : NULL, &ya, g.strides,
                                                            g.dil, g.pl, g.pr) != dnnl_success ||
        !prim_make(&s->bwd_w, &cd, s->fwd.pd))
        return false;
    const dnnl_memory_desc_t *x = md_of(&s->bwd_w, dnnl_query_src_md), *dy = md_of(&s->bwd_w, dnnl_query_diff_dst_md),
                             *dw = md_of(&s->bwd_w, dnnl_query_diff_weights_md);
    return reorder_make(&s->x_w, &s->x, x, false, x) && reorder_make(&s->dy_w, &s->y, dy, false, dy) &&
           reorder_make(&s->dw_out, dw, &s->w, true, dw);
}

/* ---- running ---- */

/* Our allocations are 16-byte aligned; oneDNN's kernels load blocked buffers with aligned 64-byte
 * instructions, so each buffer is allocated 64 bytes larger and used from its first 64-byte line. */
static void *align64(void *p) { return p ? (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63) : NULL; }

/* A oneDNN memory object over buf with layout md. */
static dnnl_memory_t mem(const dnnl_memory_desc_t *md, void *buf) {
    dnnl_memory_t m = NULL;
    return dnnl_memory_create(&m, md, g_eng, buf) == dnnl_success ? m : NULL;
}

typedef struct {
    dnnl_memory_t m[16];
    int n;
    bool bad;
} mems;

static dnnl_memory_t track(mems *ms, dnnl_memory_t m) {
    if (!m || ms->n == 16) {
        ms->bad = true;
        if (m) dnnl_memory_destroy(m);
        return NULL;
    }
    return ms->m[ms->n++] = m;
}

static void mems_free(mems *ms) {
    for (int i = 0; i < ms->n; i++) dnnl_memory_destroy(ms->m[i]);
    ms->n = 0;
}

static bool run_reorder(const reorder *r, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return dnnl_primitive_execute(r->p, g_stream, 2, a) == dnnl_success;
}

/* Memory for the primitive's side of r: the plain tensor itself when r is none, else a blocked
 * buffer from scratch slot `slot`, reordered from plain when `in`. */
static dnnl_memory_t side(mems *ms, const reorder *r, const dnnl_memory_desc_t *plain_md, const float *plain,
                          sal_scratch *ws, int slot, bool in) {
    if (!r->p) return track(ms, mem(plain_md, (void *)plain));
    void *buf = align64(sal_scratch_get(ws, slot, dnnl_memory_desc_get_size(&r->md) + 64));
    if (!buf) {
        ms->bad = true;
        return NULL;
    }
    dnnl_memory_t m = track(ms, mem(&r->md, buf));
    if (m && in) {
        dnnl_memory_t p = track(ms, mem(plain_md, (void *)plain));
        if (!p || !run_reorder(r, p, m)) ms->bad = true;
    }
    return m;
}

/* The weight W of node c->n in r's layout: from the cache when W is the node's own constant and the
 * model's weights have not changed since it was filled. */
static dnnl_memory_t weights(mems *ms, const sal_opctx *c, const reorder *r, const dnnl_memory_desc_t *plain_md,
                             const float *W, wcache *wc, int slot) {
    int v = c->n->in[1];
    bool own = v >= 0 && c->g->val[v].kind == SAL_VAL_CONST && c->g->val[v].t.data == W;
    if (!r->p || !own) return side(ms, r, plain_md, W, c->ws, slot, true);
    size_t need = dnnl_memory_desc_get_size(&r->md) + 64;
    if (wc->valid && wc->src == W && wc->version == c->g->version && wc->cap >= need)
        return track(ms, mem(&r->md, align64(wc->buf)));
    wc->valid = false;
    if (wc->cap < need) {
        void *b = sal_malloc(need);
        if (!b) {
            ms->bad = true;
            return NULL;
        }
        sal_free(wc->buf);
        wc->buf = b;
        wc->cap = need;
    }
    dnnl_memory_t m = track(ms, mem(&r->md, align64(wc->buf))), p = track(ms, mem(plain_md, (void *)W));
    if (!m || !p || !run_reorder(r, p, m)) {
        ms->bad = true;
        return NULL;
    }
    *wc = (wcache){.buf = wc->buf, .cap = wc->cap, .src = W, .version = c->g->version, .valid = true};
    return m;
}

/* Moves the primitive's result into the plain tensor (adding, when r was built so). */
static void back(mems *ms, const reorder *r, dnnl_memory_t blocked, const dnnl_memory_desc_t *plain_md, float *plain) {
    if (!r->p || ms->bad) return;
    dnnl_memory_t p = track(ms, mem(plain_md, plain));
    if (!p || !run_reorder(r, blocked, p)) ms->bad = true;
}

static bool run_prim(mems *ms, const prim *p, sal_scratch *ws, dnnl_exec_arg_t *args, int n) {
    if (ms->bad) return false;
    if (p->pad) {
        void *buf = align64(sal_scratch_get(ws, SL_PAD, p->pad + 64));
        dnnl_memory_t m = buf ? track(ms, mem(md_of(p, dnnl_query_scratchpad_md), buf)) : NULL;
        if (!m) return false;
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, m};
    }
    __atomic_add_fetch(&g_calls, 1, __ATOMIC_RELAXED);
    return dnnl_primitive_execute(p->prim, g_stream, n, args) == dnnl_success;
}

bool sal_conv_dnnl_wanted(const sal_conv_shape *k) {
    pthread_once(&g_once, dnnl_setup);
    if (!g_ok || g_mode == SAL_DNNL_OFF || k->N == 0) return false;
    if (g_mode == SAL_DNNL_ALL) return true;
    /* grouped and depthwise layers: oneDNN's kernels beat ours at any size (MobileNetV2 forward
     * 12.5 -> 10.0 ms); otherwise, below a few million multiply-adds the reorders and calls cost
     * more than they save (the small CNN's 3.6M-MAC layer) */
    if (k->G > 1) return true;
    return k->N * k->M * k->out[0] * k->out[1] * k->out[2] * (k->C / k->G) * k->k[0] * k->k[1] * k->k[2] >= (1 << 22);
}

/* The node's state for shape k with its forward primitive, or NULL (oneDNN declined). */
static sal_conv_dnnl *state_for(const sal_opctx *c, const sal_conv_shape *k, bool bias, sal_status *st) {
    *st = SAL_OK;
    sal_node_state *ns = sal_node_state_of(c);
    if (!ns) {
        *st = SAL_ERR_NOMEM;
        return NULL;
    }
    sal_conv_dnnl *s = ns->p;
    if (!s) {
        if (!(s = sal_calloc(1, sizeof *s))) {
            *st = sal_fail(SAL_ERR_NOMEM, "out of memory");
            return NULL;
        }
        ns->p = s;
        ns->free = state_free;
    }
    sal_conv_shape kb = *k;
    kb.bias = bias;
    if (!memcmp(&s->key, &kb, sizeof kb)) return s->ok ? s : NULL; /* declined before: no retry */
    state_clear(s);
    s->key = kb;
    s->ok = stream_ready() && build_forward(s, bias);
    if (!s->ok) {
        state_clear(s);
        s->key = kb;
    }
    return s->ok ? s : NULL;
}

sal_status sal_conv_dnnl_forward(const sal_opctx *c, const sal_conv_shape *k, const float *X, const float *W,
                                 const float *B, float *Y, bool *done) {
    *done = false;
    sal_status st;
    sal_conv_dnnl *s = state_for(c, k, B != NULL, &st);
    if (!s) return st;
    mems ms = {0};
    dnnl_memory_t x = side(&ms, &s->x_in, &s->x, X, c->ws, SL_SRC, true);
    dnnl_memory_t w = weights(&ms, c, &s->w_in, &s->w, W, &s->wf, SL_WEI);
    dnnl_memory_t y = side(&ms, &s->y_out, &s->y, Y, c->ws, SL_DST, false);
    dnnl_memory_t b = B ? track(&ms, mem(&s->b, (void *)B)) : NULL;
    dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, y}, {DNNL_ARG_BIAS, b}};
    bool ok = run_prim(&ms, &s->fwd, c->ws, a, B ? 4 : 3);
    if (ok) back(&ms, &s->y_out, y, &s->y, Y);
    ok = ok && !ms.bad && dnnl_stream_wait(g_stream) == dnnl_success;
    mems_free(&ms);
    if (!ok) return sal_node_fail(c->n, SAL_ERR_INTERNAL, "oneDNN convolution failed");
    *done = true;
    return SAL_OK;
}

sal_status sal_conv_dnnl_backward(const sal_opctx *c, const sal_conv_shape *k, const float *X, const float *W,
                                  bool bias, const float *dY, float *dX, bool dx_fresh, float *dW, float *dB,
                                  bool *done) {
    *done = false;
    sal_status st;
    sal_conv_dnnl *s = state_for(c, k, bias, &st);
    if (!s) return st;
    if (dX && !s->bwd_d.prim && !s->no_bwd_d && !build_bwd_data(s)) {
        prim_free(&s->bwd_d);
        s->no_bwd_d = true;
    }
    if ((dW || dB) && !s->bwd_w.prim && !s->no_bwd_w && !build_bwd_weights(s, bias)) {
        prim_free(&s->bwd_w);
        s->no_bwd_w = true;
    }
    if ((dX && s->no_bwd_d) || ((dW || dB) && s->no_bwd_w)) return SAL_OK;
    mems ms = {0};
    bool ok = true;
    if (dX) {
        dnnl_memory_t dy = side(&ms, &s->dy_d, &s->y, dY, c->ws, SL_DST, true);
        dnnl_memory_t w = weights(&ms, c, &s->w_d, &s->w, W, &s->wd, SL_WEI);
        /* a fresh dX in the primitive's own layout is written directly */
        const reorder *out = dx_fresh ? &s->dx_set : &s->dx_out;
        dnnl_memory_t dx = side(&ms, out, &s->x, dX, c->ws, SL_SRC, false);
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dx}};
        ok = run_prim(&ms, &s->bwd_d, c->ws, a, 3);
        if (ok) back(&ms, out, dx, &s->x, dX);
        ok = ok && !ms.bad && dnnl_stream_wait(g_stream) == dnnl_success;
        mems_free(&ms);
    }
    if (ok && (dW || dB)) {
        /* dW and dB are written whole by the primitive: into scratch, then added */
        dnnl_memory_t x = side(&ms, &s->x_w, &s->x, X, c->ws, SL_SRC, true);
        dnnl_memory_t dy = side(&ms, &s->dy_w, &s->y, dY, c->ws, SL_DST, true);
        void *wbuf = align64(sal_scratch_get(c->ws, SL_WEI, dnnl_memory_desc_get_size(&s->dw_out.md) + 64));
        float *db = bias ? align64(sal_scratch_get(c->ws, SL_BIAS, sizeof(float) * (size_t)k->M + 64)) : NULL;
        dnnl_memory_t dw = wbuf ? track(&ms, mem(&s->dw_out.md, wbuf)) : NULL;
        dnnl_memory_t dbm = db ? track(&ms, mem(&s->db, db)) : NULL;
        ok = !ms.bad && dw && (!bias || dbm);
        dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_WEIGHTS, dw},
                                {DNNL_ARG_DIFF_BIAS, dbm}};
        ok = ok && run_prim(&ms, &s->bwd_w, c->ws, a, bias ? 4 : 3);
        if (ok && dW) back(&ms, &s->dw_out, dw, &s->w, dW);
        ok = ok && !ms.bad && dnnl_stream_wait(g_stream) == dnnl_success;
        if (ok && dB)
            for (int64_t m = 0; m < k->M; m++) dB[m] += db[m];
        mems_free(&ms);
    }
    if (!ok) return sal_node_fail(c->n, SAL_ERR_INTERNAL, "oneDNN convolution backward failed");
    *done = true;
    return SAL_OK;
}
