/* Convolution through oneDNN (Debian's libdnnl): forward, backward-data and backward-weights
 * primitives in oneDNN's blocked layouts, with our tensors (plain N, C, spatial) reordered in and
 * out. Its 3x3 Winograd kernels (F(4x4, 3x3)) do a quarter of the multiplications and its direct
 * kernels run near the AVX-512 peak, which im2col + sgemm does not reach on narrow layers.
 *
 * Primitives are built once per node and input shape and kept in the session's scratch; every
 * buffer (blocked copies, oneDNN's scratchpad) comes from our allocator, so the memory budget holds.
 * Backward accumulates as the walker requires: the reorders back to plain layout add to the
 * destination (a sum post-op) instead of overwriting it.
 *
 * In a session with blocked layouts (graph/exec.c) the activations and their gradients may come
 * and go in nChw16c order (nChw8c without AVX-512: sal_blk_width): where that is the primitive's own
 * layout, no reorder runs at all. */
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
static long g_wino;        /* of them forwards by Winograd */
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

long sal_conv_dnnl_wino_calls(void) { return __atomic_load_n(&g_wino, __ATOMIC_RELAXED); }

int sal_conv_dnnl_blk_width(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? 16 : 8;
}

/* The calling thread's stream (made on first use; it lives as long as the thread). */
static bool stream_ready(void) {
    return g_stream || dnnl_stream_create(&g_stream, g_eng, dnnl_stream_default_flags) == dnnl_success;
}

/* A reorder between two layouts, adding to the destination (a sum post-op) when `add`. */
typedef struct {
    dnnl_primitive_t p;
    dnnl_memory_desc_t from, to;
    bool add;
} reorder;
enum { MAX_REORDERS = 24 }; /* 15 distinct ones at most: X, Y, W, dY, dX, dW, plain or blocked */

/* Weights in a primitive's layout are kept (sal_wcache); other substituted weights are reordered
 * every call. */
enum { NWC = 6 }; /* the own weight both ways, and Zennit's two-group rules' two weights both ways */
/* Substituted weights are kept up to 1 MiB: the small CNN's 72 KB layer saves two 7 us reorders a call;
 * ResNet-50's LRP kept all of them for 5% of its time and 136 MB more memory. */
enum { KEYED_MAX = 1 << 20 };

typedef struct {
    dnnl_primitive_t prim;
    dnnl_primitive_desc_t pd;
    size_t pad; /* scratchpad bytes */
} prim;

struct sal_conv_dnnl {
    sal_conv_shape key;
    bool ok;                          /* primitives exist for key */
    dnnl_memory_desc_t x, w, b, y;    /* plain layouts */
    dnnl_memory_desc_t xb, yb;        /* X and Y blocked (nChw16c or 8c; valid when x_blk, y_blk) */
    bool x_blk, y_blk;
    prim fwd, bwd_d, bwd_w;           /* bwd_* built on first use */
    prim fwd_relu;                    /* fwd with ReLU on its output, built on first use */
    bool no_relu;                     /* oneDNN declined fwd_relu */
    reorder ro[MAX_REORDERS];         /* built on first use */
    int nro;
    sal_wcache wc[NWC];               /* weights reordered for forward or backward data */
    uint64_t tick;                    /* wc's last use, for replacing the oldest */
    dnnl_memory_desc_t db;            /* backward weights' diff bias (plain) */
    bool no_bwd_d, no_bwd_w;          /* oneDNN declined: our kernels run those */
    dnnl_alg_kind_t alg;              /* Winograd or direct, as the forward primitive */
    signed char ties;                 /* sal_conv_ties: 0 or 1, -1 until known */
    void *aux;                        /* conv_wino.c's weights, freed by aux_free */
    void (*aux_free)(void *);
};

static void prim_free(prim *p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    memset(p, 0, sizeof *p);
}

static void state_clear(sal_conv_dnnl *s) {
    prim_free(&s->fwd);
    prim_free(&s->fwd_relu);
    prim_free(&s->bwd_d);
    prim_free(&s->bwd_w);
    for (int i = 0; i < s->nro; i++) dnnl_primitive_destroy(s->ro[i].p);
    s->nro = 0;
    s->ok = s->no_bwd_d = s->no_bwd_w = s->no_relu = false;
    for (int i = 0; i < NWC; i++) s->wc[i].valid = false;
}

static void state_free(void *p) {
    sal_conv_dnnl *s = p;
    state_clear(s);
    if (s->aux_free) s->aux_free(s->aux);
    for (int i = 0; i < NWC; i++) sal_free(s->wc[i].buf);
    sal_free(s);
}

static const dnnl_format_tag_t k_act_tag[4] = {0, dnnl_ncw, dnnl_nchw, dnnl_ncdhw};
static const dnnl_format_tag_t k_wei_tag[4] = {0, dnnl_oiw, dnnl_oihw, dnnl_oidhw};
static const dnnl_format_tag_t k_gwei_tag[4] = {0, dnnl_goiw, dnnl_goihw, dnnl_goidhw};

/* The reorder from `from` to `to` (adding to the destination when `add`), made on first use; NULL
 * when it cannot be made. */
static const reorder *reorder_get(sal_conv_dnnl *s, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                  bool add) {
    for (int i = 0; i < s->nro; i++)
        if (s->ro[i].add == add && dnnl_memory_desc_equal(&s->ro[i].from, from) &&
            dnnl_memory_desc_equal(&s->ro[i].to, to))
            return &s->ro[i];
    if (s->nro == MAX_REORDERS) return NULL;
    reorder *r = &s->ro[s->nro];
    *r = (reorder){.from = *from, .to = *to, .add = add};
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
    if (!ok) return NULL;
    s->nro++;
    return r;
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
static bool prim_make(prim *p, const void *op_desc, const dnnl_primitive_desc_t hint, bool relu) {
    dnnl_primitive_attr_t attr = user_scratchpad();
    dnnl_post_ops_t ops = NULL;
    const char *impl = NULL;
    bool ok = attr != NULL;
    if (ok && relu)
        ok = dnnl_post_ops_create(&ops) == dnnl_success &&
             dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success;
    if (ops) dnnl_post_ops_destroy(ops);
    ok = ok && dnnl_primitive_desc_create(&p->pd, op_desc, attr, g_eng, hint) == dnnl_success &&
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

/* Winograd's 4x4 output tiles pay where the batch has enough of them: at 16 (ResNet-50's 14 x 14
 * layers at batch 1, its 7 x 7 ones at batch 4, VGG16's last three at batch 1) direct kernels took
 * 0.6 to 0.7 of its time, at 49 and above Winograd takes 0.5 to 0.7 of theirs. */
bool sal_conv_dnnl_winograd(const sal_conv_shape *k) {
    int64_t tiles = k->N * ((k->out[1] + 3) / 4) * ((k->out[2] + 3) / 4);
    return k->nsp == 2 && k->G == 1 && k->k[1] == 3 && k->k[2] == 3 && k->s[1] == 1 && k->s[2] == 1 &&
           k->d[1] == 1 && k->d[2] == 1 && k->C >= 16 && k->M >= 16 && tiles >= 32;
}

/* Builds the forward primitive for s->key: Winograd where sal_conv_dnnl_winograd says so, oneDNN
 * has it and the output keeps no ties (key.ties: see sal_conv_ties), direct otherwise. */
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
    for (int a = sal_conv_dnnl_winograd(k) && !k->ties ? 0 : 1; a < 2; a++) {
        dnnl_convolution_desc_t cd;
        if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training,
                                                       a == 0 ? dnnl_convolution_winograd : dnnl_convolution_direct,
                                                       &xa, &wa, bias ? &s->b : NULL, &ya, g.strides, g.dil, g.pl,
                                                       g.pr) != dnnl_success)
            continue;
        s->alg = a == 0 ? dnnl_convolution_winograd : dnnl_convolution_direct;
        if (prim_make(&s->fwd, &cd, NULL, false)) break;
        prim_free(&s->fwd);
    }
    if (!s->fwd.prim) return false;
    const int L = sal_blk_width();
    const dnnl_format_tag_t tag = L == 16 ? dnnl_nChw16c : dnnl_nChw8c;
    s->x_blk = k->nsp == 2 && k->C % L == 0 &&
               dnnl_memory_desc_init_by_tag(&s->xb, nd, xd, dnnl_f32, tag) == dnnl_success;
    s->y_blk = k->nsp == 2 && k->M % L == 0 &&
               dnnl_memory_desc_init_by_tag(&s->yb, nd, yd, dnnl_f32, tag) == dnnl_success;
    return true;
}

/* The forward primitive with a ReLU applied to its output (a post-op), in s->fwd's algorithm and
 * layouts, so that everything around it stays as it is. */
static bool build_fwd_relu(sal_conv_dnnl *s) {
    const sal_conv_shape *k = &s->key;
    geo g;
    geo_of(k, &g);
    dnnl_convolution_desc_t cd;
    return dnnl_dilated_convolution_forward_desc_init(
               &cd, dnnl_forward_training, s->alg, md_of(&s->fwd, dnnl_query_src_md),
               md_of(&s->fwd, dnnl_query_weights_md), k->bias ? &s->b : NULL, md_of(&s->fwd, dnnl_query_dst_md),
               g.strides, g.dil, g.pl, g.pr) == dnnl_success &&
           prim_make(&s->fwd_relu, &cd, NULL, true);
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
    geo g;
    geo_of(k, &g);
    /* the input gradient is linear in dY and decides nothing: Winograd where the forward kept its
     * ties with a direct kernel (VGG16's 64 -> 64 layer at 224 x 224: 52 -> 19 ms over three) */
    dnnl_alg_kind_t algs[2] = {k->ties && sal_conv_dnnl_winograd(k) ? dnnl_convolution_winograd : s->alg, s->alg};
    for (int a = 0; a < 1 + (algs[0] != algs[1]); a++) {
        dnnl_convolution_desc_t cd;
        if (dnnl_dilated_convolution_backward_data_desc_init(&cd, algs[a], &xa, &wa, &ya, g.strides, g.dil, g.pl,
                                                             g.pr) == dnnl_success &&
            prim_make(&s->bwd_d, &cd, s->fwd.pd, false))
            return true;
        prim_free(&s->bwd_d);
    }
    return false;
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
    return dnnl_dilated_convolution_backward_weights_desc_init(&cd, alg, &xa, &wa, bias ? &s->db : NULL, &ya,
                                                               g.strides, g.dil, g.pl, g.pr) == dnnl_success &&
           prim_make(&s->bwd_w, &cd, s->fwd.pd, false);
}

/* Builds the backward primitives not yet tried; whether oneDNN runs both. */
static bool bwd_ready(sal_conv_dnnl *s) {
    if (!s->bwd_d.prim && !s->no_bwd_d && !build_bwd_data(s)) {
        prim_free(&s->bwd_d);
        s->no_bwd_d = true;
    }
    if (!s->bwd_w.prim && !s->no_bwd_w && !build_bwd_weights(s, s->key.bias)) {
        prim_free(&s->bwd_w);
        s->no_bwd_w = true;
    }
    return !s->no_bwd_d && !s->no_bwd_w;
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
    bool nomem; /* what went wrong was one of our allocations, whose message is set */
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
    return r && dnnl_primitive_execute(r->p, g_stream, 2, a) == dnnl_success;
}

/* Converts an activation between plain and blocked layouts (from -> to, adding to `to` when `add`)
 * in our own loop when it is small: oneDNN's reorder takes 4 to 8 us on the small CNN's 6 272 and
 * 12 544 values, a fifth of the convolution beside it, and ours about 1. Whether it did. */
static bool small_convert(const sal_conv_dnnl *s, const dnnl_memory_desc_t *from, const void *src,
                          const dnnl_memory_desc_t *to, void *dst, bool add) {
    const dnnl_memory_desc_t *pl[2] = {&s->x, &s->y}, *bl[2] = {&s->xb, &s->yb};
    bool ok[2] = {s->x_blk, s->y_blk};
    for (int i = 0; i < 2; i++) {
        if (!ok[i] || from->ndims != 4 || dnnl_memory_desc_get_size(from) > (64u << 10)) continue;
        bool to_plain = dnnl_memory_desc_equal(from, bl[i]) && dnnl_memory_desc_equal(to, pl[i]);
        bool to_blk = !add && dnnl_memory_desc_equal(from, pl[i]) && dnnl_memory_desc_equal(to, bl[i]);
        if (!to_plain && !to_blk) continue;
        int64_t dim[4] = {from->dims[0], from->dims[1], from->dims[2], from->dims[3]};
        sal_blk_convert(dst, src, dim, to_blk ? SAL_BLK_FROM_PLAIN : add ? SAL_BLK_ADD_TO_PLAIN : SAL_BLK_TO_PLAIN);
        return true;
    }
    return false;
}

/* Memory in the primitive's layout pmd for the tensor `user` (in layout umd): the tensor itself when
 * the layouts agree and `direct`, else a buffer from scratch slot `slot`, reordered from the tensor
 * when `in`. */
static dnnl_memory_t side(mems *ms, sal_conv_dnnl *s, const dnnl_memory_desc_t *umd, const float *user,
                          const dnnl_memory_desc_t *pmd, sal_scratch *ws, int slot, bool in, bool direct) {
    if (direct && dnnl_memory_desc_equal(umd, pmd)) return track(ms, mem(umd, (void *)user));
    void *buf = align64(sal_scratch_get(ws, slot, dnnl_memory_desc_get_size(pmd) + 64));
    if (!buf) {
        ms->bad = ms->nomem = true;
        return NULL;
    }
    dnnl_memory_t m = track(ms, mem(pmd, buf));
    if (m && in && !small_convert(s, umd, user, pmd, buf, false)) {
        dnnl_memory_t p = track(ms, mem(umd, (void *)user));
        if (!p || !run_reorder(reorder_get(s, umd, pmd, false), p, m)) ms->bad = true;
    }
    return m;
}

/* The weight W of node c->n in layout pmd (the backward data's when bwd): from the cache when W is
 * the node's own constant or named by c->wkey (and small), and the model's weights have not changed
 * since it was filled. */
static dnnl_memory_t weights(mems *ms, sal_conv_dnnl *s, const sal_opctx *c, const dnnl_memory_desc_t *pmd,
                             const float *W, bool bwd, int slot) {
    size_t need = dnnl_memory_desc_get_size(pmd) + 64; /* + 64: align64 */
    bool hit = false, nomem = false;
    sal_wcache *e = dnnl_memory_desc_equal(&s->w, pmd) ? NULL
                    : sal_wcache_get(s->wc, NWC, &s->tick, c, W, bwd, need, KEYED_MAX + 64, &hit, &nomem);
    if (nomem) {
        ms->bad = ms->nomem = true;
        return NULL;
    }
    if (!e) return side(ms, s, &s->w, W, pmd, c->ws, slot, true, true);
    dnnl_memory_t m = track(ms, mem(pmd, align64(e->buf)));
    if (hit) return m;
    dnnl_memory_t p = track(ms, mem(&s->w, (void *)W));
    if (!m || !p || !run_reorder(reorder_get(s, &s->w, pmd, false), p, m)) {
        ms->bad = true;
        return NULL;
    }
    e->valid = true;
    return m;
}

const void *sal_wcache_source(const sal_opctx *c, const float *W, size_t need, size_t keyed_max) {
    int v = c->n->in[1];
    const void *own = v >= 0 && c->g->val[v].kind == SAL_VAL_CONST ? c->g->val[v].t.data : NULL;
    return own && (own == W || (c->wkey && need <= keyed_max)) ? own : NULL;
}

sal_wcache *sal_wcache_get(sal_wcache *es, int n, uint64_t *tick, const sal_opctx *c, const float *W, unsigned form,
                           size_t need, size_t keyed_max, bool *hit, bool *nomem) {
    *hit = *nomem = false;
    const void *own = sal_wcache_source(c, W, need, keyed_max);
    if (!own) return NULL;
    uint64_t key = own == W ? 0 : c->wkey;
    sal_wcache *wc = NULL;
    for (int i = 0; i < n; i++) {
        sal_wcache *e = &es[i];
        if (e->valid && e->key == key && e->form == form && e->own == own && e->version == c->g->version &&
            e->cap >= need) {
            e->used = ++*tick;
            *hit = true;
            return e;
        }
        if (!wc || (wc->valid && (!e->valid || e->used < wc->used))) wc = e; /* a free entry, else the oldest */
    }
    wc->valid = false;
    if (wc->cap < need) {
        void *b = sal_malloc(need);
        if (!b) {
            *nomem = true;
            sal_fail(SAL_ERR_NOMEM, "cannot allocate %zu bytes for a layer's derived weights", need);
            return NULL;
        }
        sal_free(wc->buf);
        wc->buf = b;
        wc->cap = need;
    }
    *wc = (sal_wcache){.buf = wc->buf, .cap = wc->cap, .own = own, .key = key, .version = c->g->version,
                       .used = ++*tick, .form = form};
    return wc;
}

/* Moves the primitive's result m (layout pmd) into the tensor `user` (layout umd), adding to it when
 * `add`; nothing to do when side() gave the tensor itself. */
static void back(mems *ms, sal_conv_dnnl *s, dnnl_memory_t m, const dnnl_memory_desc_t *pmd,
                 const dnnl_memory_desc_t *umd, float *user, bool add) {
    if (ms->bad || (!add && dnnl_memory_desc_equal(umd, pmd))) return;
    void *buf = NULL;
    if (dnnl_memory_get_data_handle(m, &buf) == dnnl_success && small_convert(s, pmd, buf, umd, user, add)) return;
    dnnl_memory_t p = track(ms, mem(umd, user));
    if (!p || !run_reorder(reorder_get(s, pmd, umd, add), m, p)) ms->bad = true;
}

static bool run_prim(mems *ms, const prim *p, sal_scratch *ws, dnnl_exec_arg_t *args, int n) {
    if (ms->bad) return false;
    if (p->pad) {
        void *buf = align64(sal_scratch_get(ws, SL_PAD, p->pad + 64));
        ms->nomem |= !buf;
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
     * 12.5 -> 10.0 ms); otherwise from 4M multiply-adds, and from 2M where the channels fill
     * oneDNN's blocks of 16 and the kernel is wider than 1x1 (our 1x1 layers need no im2col): the
     * small CNN's 3x3 layer of 3.6M, 32 -> 64 channels, takes half our time there (its gradient
     * 0.21 -> 0.16 ms); below, and for MobileNetV3's layers of 40, 120 or 200 channels, the calls
     * and reorders cost more than they save */
    if (k->G > 1) return true;
    int64_t macs = k->N * k->M * k->out[0] * k->out[1] * k->out[2] * (k->C / k->G) * k->k[0] * k->k[1] * k->k[2];
    bool blocks = k->C % 16 == 0 && k->M % 16 == 0, wide = k->k[0] * k->k[1] * k->k[2] > 1;
    return macs >= (1 << 22) || (macs >= (1 << 21) && blocks && wide);
}

/* Not for a network's first layer, of fewer than 16 input channels: oneDNN's backward-data ran
 * ResNet-50's 7x7 / 2 stem from 3 channels at 70 GFLOP/s (3.4 ms), our product and col2im take 1.4
 * ms (conv.c). Forced on by SAL_DNNL=all as the rest. */
bool sal_conv_dnnl_wanted_dx(const sal_conv_shape *k) {
    return sal_conv_dnnl_wanted(k) && (g_mode == SAL_DNNL_ALL || k->G > 1 || k->C >= 16);
}

/* The node's state, made on first use; NULL with a message set when out of memory. */
static sal_conv_dnnl *node_state(const sal_opctx *c) {
    sal_node_state *ns = sal_node_state_of(c);
    if (!ns) return NULL;
    if (!ns->p) {
        if (!(ns->p = sal_calloc(1, sizeof(sal_conv_dnnl)))) {
            sal_fail(SAL_ERR_NOMEM, "out of memory");
            return NULL;
        }
        ns->free = state_free;
        ((sal_conv_dnnl *)ns->p)->ties = -1;
    }
    return ns->p;
}

/* Whether value v reaches an op that breaks ties by position (max pooling, maxima, their indices),
 * directly or through up to `depth` monotone activations, which keep ties. */
static bool reaches_ties(const sal_model *g, int v, int depth) {
    static const char *const tie_ops[] = {"ReduceMax", "ArgMax", "TopK", "Max"}; /* beside SAL_TR_MAXPOOL's */
    for (int i = 0; i < g->nnode; i++) {
        const sal_node *u = &g->node[i];
        bool reads = false;
        for (int k = 0; k < u->nin; k++) reads |= u->in[k] == v;
        if (!reads) continue;
        if (sal_node_has(u, SAL_TR_MAXPOOL)) return true;
        for (size_t j = 0; j < sizeof tie_ops / sizeof *tie_ops; j++)
            if (!strcmp(u->op_type, tie_ops[j])) return true;
        if (depth > 0 && sal_node_has(u, SAL_TR_MONOTONE) && u->nout > 0 && u->out[0] >= 0 &&
            reaches_ties(g, u->out[0], depth - 1))
            return true;
    }
    return false;
}

int sal_conv_ties(const sal_opctx *c) {
    if (c->fwd_only) return 0;
    sal_conv_dnnl *s = node_state(c);
    if (!s) return -1;
    if (s->ties < 0) s->ties = c->n->nout > 0 && c->n->out[0] >= 0 && reaches_ties(c->g, c->n->out[0], 3);
    return s->ties;
}

void **sal_conv_dnnl_aux(const sal_opctx *c, void (*free_fn)(void *)) {
    sal_conv_dnnl *s = node_state(c);
    if (!s) return NULL;
    s->aux_free = free_fn;
    return &s->aux;
}

/* The node's state for shape k with its forward primitive, or NULL (oneDNN declined). */
static sal_conv_dnnl *state_for(const sal_opctx *c, const sal_conv_shape *k, bool bias, sal_status *st) {
    *st = SAL_OK;
    sal_conv_dnnl *s = node_state(c);
    if (!s) {
        *st = SAL_ERR_NOMEM;
        return NULL;
    }
    sal_conv_shape kb = *k;
    kb.bias = bias;
    kb.ties = sal_conv_ties(c) != 0; /* out of memory (-1) too: direct kernels keep them */
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

bool sal_conv_dnnl_takes_blocked(const sal_opctx *c, const sal_conv_shape *k, bool bias) {
    sal_status st;
    sal_conv_dnnl *s = state_for(c, k, bias, &st);
    return s && s->x_blk && bwd_ready(s);
}

/* The layouts of X and Y as the session holds them. */
static const dnnl_memory_desc_t *x_md(const sal_conv_dnnl *s, bool blk) { return blk ? &s->xb : &s->x; }
static const dnnl_memory_desc_t *y_md(const sal_conv_dnnl *s, bool blk) { return blk ? &s->yb : &s->y; }

sal_status sal_conv_dnnl_forward(const sal_opctx *c, const sal_conv_shape *k, const float *X, const float *W,
                                 const float *B, float *Y, bool *done, bool *y_blk, bool *relu) {
    bool want_relu = *relu;
    *done = *y_blk = *relu = false;
    sal_status st;
    sal_conv_dnnl *s = state_for(c, k, B != NULL, &st);
    if (!s) return st;
    if (want_relu && !s->fwd_relu.prim && !s->no_relu) s->no_relu = !build_fwd_relu(s);
    const prim *fp = want_relu && s->fwd_relu.prim ? &s->fwd_relu : &s->fwd;
    bool xb = c->blk_in & 1;
    if (xb && !s->x_blk) return sal_node_fail(c->n, SAL_ERR_INTERNAL, "blocked input the convolution cannot read");
    /* Y blocked where the session wants it, the kernel writes it so, and the backward can read it */
    const dnnl_memory_desc_t *dst = md_of(&s->fwd, dnnl_query_dst_md);
    bool yb = (c->blk_want & 1) && s->y_blk && dnnl_memory_desc_equal(dst, &s->yb) && bwd_ready(s);
    mems ms = {0};
    dnnl_memory_t x = side(&ms, s, x_md(s, xb), X, md_of(&s->fwd, dnnl_query_src_md), c->ws, SL_SRC, true, true);
    dnnl_memory_t w = weights(&ms, s, c, md_of(&s->fwd, dnnl_query_weights_md), W, false, SL_WEI);
    dnnl_memory_t y = side(&ms, s, y_md(s, yb), Y, dst, c->ws, SL_DST, false, true);
    dnnl_memory_t b = B ? track(&ms, mem(&s->b, (void *)B)) : NULL;
    dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, y}, {DNNL_ARG_BIAS, b}};
    bool ok = run_prim(&ms, fp, c->ws, a, B ? 4 : 3);
    if (ok) back(&ms, s, y, dst, y_md(s, yb), Y, false);
    ok = ok && !ms.bad && dnnl_stream_wait(g_stream) == dnnl_success;
    mems_free(&ms);
    if (!ok && ms.nomem) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
    if (!ok) return sal_node_fail(c->n, SAL_ERR_INTERNAL, "oneDNN convolution failed");
    *done = true;
    *y_blk = yb;
    *relu = fp == &s->fwd_relu;
    if (s->alg == dnnl_convolution_winograd) __atomic_add_fetch(&g_wino, 1, __ATOMIC_RELAXED);
    return SAL_OK;
}

sal_status sal_conv_dnnl_backward(const sal_opctx *c, const sal_conv_shape *k, const float *X, const float *W,
                                  bool bias, const float *dY, float *dX, bool dx_fresh, float *dW, float *dB,
                                  bool *done) {
    *done = false;
    sal_status st;
    sal_conv_dnnl *s = state_for(c, k, bias, &st);
    if (!s) return st;
    bwd_ready(s);
    bool xb = c->blk_in & 1, yb = c->blk_out & 1;
    if ((dX && s->no_bwd_d) || ((dW || dB) && s->no_bwd_w)) {
        if (xb || yb) return sal_node_fail(c->n, SAL_ERR_INTERNAL, "blocked tensors without a oneDNN backward");
        return SAL_OK;
    }
    mems ms = {0};
    bool ok = true;
    if (dX) {
        const dnnl_memory_desc_t *dxm = md_of(&s->bwd_d, dnnl_query_diff_src_md);
        dnnl_memory_t dy = side(&ms, s, y_md(s, yb), dY, md_of(&s->bwd_d, dnnl_query_diff_dst_md), c->ws, SL_DST,
                                true, true);
        dnnl_memory_t w = weights(&ms, s, c, md_of(&s->bwd_d, dnnl_query_weights_md), W, true, SL_WEI);
        /* a fresh dX in the primitive's own layout is written directly; otherwise added to */
        dnnl_memory_t dx = side(&ms, s, x_md(s, xb), dX, dxm, c->ws, SL_SRC, false, dx_fresh);
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dx}};
        ok = run_prim(&ms, &s->bwd_d, c->ws, a, 3);
        if (ok) back(&ms, s, dx, dxm, x_md(s, xb), dX, !dx_fresh);
        ok = ok && !ms.bad && dnnl_stream_wait(g_stream) == dnnl_success;
        mems_free(&ms);
    }
    if (ok && (dW || dB)) {
        /* dW and dB are written whole by the primitive: into scratch, then added */
        const dnnl_memory_desc_t *dwm = md_of(&s->bwd_w, dnnl_query_diff_weights_md);
        dnnl_memory_t x = side(&ms, s, x_md(s, xb), X, md_of(&s->bwd_w, dnnl_query_src_md), c->ws, SL_SRC, true, true);
        dnnl_memory_t dy = side(&ms, s, y_md(s, yb), dY, md_of(&s->bwd_w, dnnl_query_diff_dst_md), c->ws, SL_DST,
                                true, true);
        void *wbuf = align64(sal_scratch_get(c->ws, SL_WEI, dnnl_memory_desc_get_size(dwm) + 64));
        float *db = bias ? align64(sal_scratch_get(c->ws, SL_BIAS, sizeof(float) * (size_t)k->M + 64)) : NULL;
        ms.nomem |= !wbuf || (bias && !db);
        dnnl_memory_t dw = wbuf ? track(&ms, mem(dwm, wbuf)) : NULL;
        dnnl_memory_t dbm = db ? track(&ms, mem(&s->db, db)) : NULL;
        ok = !ms.bad && dw && (!bias || dbm);
        dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_WEIGHTS, dw},
                                {DNNL_ARG_DIFF_BIAS, dbm}};
        ok = ok && run_prim(&ms, &s->bwd_w, c->ws, a, bias ? 4 : 3);
        if (ok && dW) back(&ms, s, dw, dwm, &s->w, dW, true);
        ok = ok && !ms.bad && dnnl_stream_wait(g_stream) == dnnl_success;
        if (ok && dB)
            for (int64_t m = 0; m < k->M; m++) dB[m] += db[m];
        mems_free(&ms);
    }
    if (!ok && ms.nomem) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
    if (!ok) return sal_node_fail(c->n, SAL_ERR_INTERNAL, "oneDNN convolution backward failed");
    *done = true;
    return SAL_OK;
}

/* ---- products of a batch of rows with a constant weight ---- */

/* One way of using the weight: W as the product needs it, packed in the primitives' layout (chosen
 * by oneDNN for the first row count; later row counts must take it as it is), and the primitives
 * of the last two row counts (bad: oneDNN declined that count, which then stays with sgemm). */
typedef struct {
    int64_t M;
    bool bad;
    prim p;
} mm_prim;
typedef struct {
    const float *src;
    uint64_t version;
    void *buf;
    dnnl_memory_desc_t wmd;
    bool packed;   /* buf and wmd hold a layout the primitives take */
    bool current;  /* buf holds src at version (training renews the weights every step: the
                    * primitives stay, the weight is packed again) */
    bool declined;
    mm_prim pr[2];
    int next;
    dnnl_primitive_t pack; /* the reorder into wmd, kept for the next weights */
} mm_way;
struct sal_mm_state {
    mm_way way[2];
};

void sal_mm_state_free(sal_mm_state *mm) {
    if (!mm) return;
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < 2; i++) prim_free(&mm->way[w].pr[i].p);
        if (mm->way[w].pack) dnnl_primitive_destroy(mm->way[w].pack);
        sal_free(mm->way[w].buf);
    }
    sal_free(mm);
}

/* The primitive for M rows: Y (M, N) = A (M, K) B (K, N), B in layout wmd (format any on the
 * first); NULL when oneDNN has no kernel for it. */
static const prim *mm_prim_for(mm_way *w, int64_t M, int64_t K, int64_t N, const dnnl_memory_desc_t *wmd) {
    for (int i = 0; i < 2; i++)
        if (w->pr[i].M == M && (w->pr[i].p.prim || w->pr[i].bad)) return w->pr[i].bad ? NULL : &w->pr[i].p;
    dnnl_memory_desc_t a, c;
    dnnl_matmul_desc_t d;
    dnnl_dims_t ad = {M, K}, cd = {M, N};
    mm_prim *e = &w->pr[w->next];
    w->next ^= 1;
    prim_free(&e->p);
    e->M = M;
    e->bad = dnnl_memory_desc_init_by_tag(&a, 2, ad, dnnl_f32, dnnl_ab) != dnnl_success ||
             dnnl_memory_desc_init_by_tag(&c, 2, cd, dnnl_f32, dnnl_ab) != dnnl_success ||
             dnnl_matmul_desc_init(&d, &a, wmd, NULL, &c) != dnnl_success || !prim_make(&e->p, &d, NULL, false);
    if (e->bad) prim_free(&e->p);
    return e->bad ? NULL : &e->p;
}

/* The first primitive, whose weights' layout the later ones take: oneDNN's choice for format any,
 * but where that is plain (K, N) with rows a multiple of 1 KiB apart, the rows 64 bytes further
 * apart. At such strides the rows of B fall in the same cache sets (on AVX2, where oneDNN's plain
 * gemm runs: 64 x 1024 x 1024 took 1.74 ms so and 0.96 padded, 197 x 3072 x 768 11.4 and 6.1). */
static const prim *mm_first(mm_way *w, int64_t M, int64_t K, int64_t N, const dnnl_memory_desc_t *any) {
    const prim *p = mm_prim_for(w, M, K, N, any);
    dnnl_memory_desc_t ab, padded;
    dnnl_dims_t bd = {K, N}, st = {N + 16, 1};
    if (!p || N % 256 || dnnl_memory_desc_init_by_tag(&ab, 2, bd, dnnl_f32, dnnl_ab) != dnnl_success ||
        !dnnl_memory_desc_equal(md_of(p, dnnl_query_weights_md), &ab) ||
        dnnl_memory_desc_init_by_strides(&padded, 2, bd, dnnl_f32, st) != dnnl_success)
        return p;
    for (int i = 0; i < 2; i++)
        if (&w->pr[i].p == p) prim_free(&w->pr[i].p), w->pr[i].M = -1;
    const prim *q = mm_prim_for(w, M, K, N, &padded);
    return q ? q : mm_prim_for(w, M, K, N, any);
}

/* W (as B (K, N), layout umd) into the layout of primitive p, in w->buf (the same buffer and
 * reorder again for new weights of the same layout); false when it cannot (no memory for it within
 * the budget, or no reorder). */
static bool mm_pack(mm_way *w, const prim *p, const dnnl_memory_desc_t *umd, const float *W) {
    const dnnl_memory_desc_t *pmd = md_of(p, dnnl_query_weights_md);
    if (!w->packed || !dnnl_memory_desc_equal(&w->wmd, pmd)) { /* a first layout */
        void *b = sal_malloc(dnnl_memory_desc_get_size(pmd) + 64);
        dnnl_primitive_desc_t rpd = NULL;
        dnnl_primitive_t ro = NULL;
        bool ok = b && dnnl_reorder_primitive_desc_create(&rpd, umd, g_eng, pmd, g_eng, NULL) == dnnl_success &&
                  dnnl_primitive_create(&ro, rpd) == dnnl_success;
        if (rpd) dnnl_primitive_desc_destroy(rpd);
        if (!ok) {
            sal_free(b);
            return false;
        }
        if (w->pack) dnnl_primitive_destroy(w->pack);
        sal_free(w->buf);
        w->pack = ro, w->buf = b, w->wmd = *pmd, w->packed = true;
    }
    mems ms = {0};
    dnnl_memory_t from = track(&ms, mem(umd, (void *)W)), to = track(&ms, mem(&w->wmd, align64(w->buf)));
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    w->current = !ms.bad && dnnl_primitive_execute(w->pack, g_stream, 2, a) == dnnl_success &&
                 dnnl_stream_wait(g_stream) == dnnl_success;
    mems_free(&ms);
    return w->current;
}

sal_status sal_dnnl_matmul(const sal_opctx *c, sal_mm_state **state, bool trans, int64_t M, int64_t K, int64_t N,
                           const float *A, const float *W, float *Y, bool *done) {
    *done = false;
    pthread_once(&g_once, dnnl_setup);
    if (!g_ok || g_mode == SAL_DNNL_OFF || !stream_ready()) return SAL_OK;
    if (!*state && !(*state = sal_calloc(1, sizeof **state))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    mm_way *w = &(*state)->way[trans];
    if (w->src != W || w->version != c->g->version) { /* new weights: packed again */
        w->current = false;
        w->src = W;
        w->version = c->g->version;
    }
    if (w->declined) return SAL_OK;
    /* W as B (K, N): W itself (ab), or W (N, K) read transposed (ba) */
    dnnl_memory_desc_t umd, any;
    dnnl_dims_t bd = {K, N};
    if (dnnl_memory_desc_init_by_tag(&umd, 2, bd, dnnl_f32, trans ? dnnl_ba : dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&any, 2, bd, dnnl_f32, dnnl_format_tag_any) != dnnl_success)
        return SAL_OK;
    const prim *p = w->packed ? mm_prim_for(w, M, K, N, &w->wmd) : mm_first(w, M, K, N, &any);
    if (!w->packed && !p) {
        w->declined = true; /* no kernel for the first row count: the weight stays with sgemm */
        return SAL_OK;
    }
    if (!p) return SAL_OK;
    if (!w->current && !mm_pack(w, p, &umd, W)) {
        w->declined = !w->packed; /* no reorder at all; out of memory later: sgemm this time */
        return SAL_OK;
    }
    void *pad = p->pad ? align64(sal_scratch_get(c->ws, SL_PAD, p->pad + 64)) : NULL;
    if (p->pad && !pad) return SAL_ERR_NOMEM;
    mems ms = {0};
    dnnl_dims_t ad = {M, K}, cd = {M, N};
    dnnl_memory_desc_t amd, cmd;
    bool ok = dnnl_memory_desc_init_by_tag(&amd, 2, ad, dnnl_f32, dnnl_ab) == dnnl_success &&
              dnnl_memory_desc_init_by_tag(&cmd, 2, cd, dnnl_f32, dnnl_ab) == dnnl_success;
    const dnnl_memory_desc_t *smd = md_of(p, dnnl_query_scratchpad_md);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ok ? track(&ms, mem(&amd, (void *)A)) : NULL},
                               {DNNL_ARG_WEIGHTS, ok ? track(&ms, mem(&w->wmd, align64(w->buf))) : NULL},
                               {DNNL_ARG_DST, ok ? track(&ms, mem(&cmd, Y)) : NULL},
                               {DNNL_ARG_SCRATCHPAD, ok && pad ? track(&ms, mem(smd, pad)) : NULL}};
    ok = ok && !ms.bad && dnnl_primitive_execute(p->prim, g_stream, pad ? 4 : 3, args) == dnnl_success &&
         dnnl_stream_wait(g_stream) == dnnl_success;
    mems_free(&ms);
    if (!ok) return sal_node_fail(c->n, SAL_ERR_INTERNAL, "oneDNN's matrix product failed");
    __atomic_add_fetch(&g_calls, 1, __ATOMIC_RELAXED);
    *done = true;
    return SAL_OK;
}
