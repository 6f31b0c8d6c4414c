/* Forward tape and backward walker. */
#include "exec.h"
#include "ops/linear_ops.h"
#include <math.h>

/* A node whose outputs hold no elements has nothing to compute, forward or backward. Skipping it is
 * not only quicker: a kernel looping over the outer axes of a (2^34, 0) tensor would spin 2^34 times
 * over nothing, a hang that no memory budget bounds. */
static bool all_empty(sal_tensor *const *t, int n) {
    for (int k = 0; k < n; k++)
        if (t[k] && sal_tensor_numel(t[k]) > 0) return false;
    return true;
}

/* Buffers no value holds now: gradients done with, and the activations a lean forward pass has
 * dropped (sal_session.lean). Only a buffer's data and capacity count here. pool_put moves t's
 * buffer in (t keeps its shape, with data NULL); false when the pool cannot grow, and the buffer
 * stays with t. */
static bool pool_put(sal_session *s, sal_tensor *t) {
    if (s->npool == s->pool_cap) {
        int cap = s->pool_cap ? 2 * s->pool_cap : 16;
        sal_tensor *p = sal_realloc(s->pool, (size_t)cap * sizeof *p);
        if (!p) return false;
        s->pool = p, s->pool_cap = cap;
    }
    s->pool[s->npool++] = (sal_tensor){.data = t->data, .cap = t->cap};
    t->data = NULL;
    t->cap = 0;
    return true;
}

/* Gives t the smallest pooled buffer of at least `bytes` when its own is smaller; its own (if it
 * owns one) goes to the pool in exchange. The caller then allocates t, which keeps that buffer.
 * With `tight`, for a value that holds its buffer from call to call (one a lean pass keeps), a
 * buffer more than a quarter larger is left for a larger value: taking any doubled the memory of
 * ViT's kept activations. A buffer that goes back within the pass may be any larger. */
static void pool_take(sal_session *s, sal_tensor *t, size_t bytes, bool tight) {
    int best = -1;
    for (int i = 0; t->cap < bytes && i < s->npool; i++)
        if (s->pool[i].cap >= bytes && (!tight || s->pool[i].cap - bytes <= bytes / 4) &&
            (best < 0 || s->pool[i].cap < s->pool[best].cap))
            best = i;
    if (best < 0) return;
    sal_tensor own = *t;
    t->data = s->pool[best].data;
    t->cap = s->pool[best].cap;
    if (own.cap) s->pool[best] = (sal_tensor){.data = own.data, .cap = own.cap};
    else s->pool[best] = s->pool[--s->npool];
}

/* The drop table (lean_plan) of the last pass's kind of lean. */
static const int *drops(const sal_session *s) { return s->lean_used == SAL_LEAN_OUT ? s->drop_out : s->drop_after; }

/* Allocates the inferred outputs of n: zeroed, unless the op overwrites them; from the pool of s
 * in a lean pass (NULL: none). */
static sal_status alloc_outputs(sal_session *s, const sal_node *n, sal_tensor *const *out) {
    for (int k = 0; k < n->nout; k++) {
        if (!out[k]) continue;
        int64_t numel;
        if (s && s->lean_used && sal_shape_numel(out[k]->ndim, out[k]->dim, &numel))
            pool_take(s, out[k], (size_t)numel * sal_dtype_size(out[k]->dtype), drops(s)[s->alias_of[n->out[k]]] < 0);
        sal_status st = n->op->overwrites ? sal_tensor_alloc_raw(out[k], out[k]->dtype, out[k]->ndim, out[k]->dim)
                                          : sal_tensor_alloc(out[k], out[k]->dtype, out[k]->ndim, out[k]->dim);
        if (st != SAL_OK) return sal_wrap(st, "node '%s' (%s)", n->name, n->op_type);
    }
    return SAL_OK;
}

static sal_status run_node(sal_session *s, const sal_node *n, sal_opctx *c) {
    SAL_TRY(n->op->infer(c));
    SAL_TRY(alloc_outputs(s, n, c->out));
    if (all_empty(c->out, n->nout)) return SAL_OK;
    return n->op->forward(c);
}

sal_status sal_run_node(const sal_model *g, const sal_node *n, sal_tensor *const *in,
                        sal_tensor *const *out, sal_scratch *ws) {
    sal_opctx c = {.g = g, .n = n, .in = in, .out = out, .ws = ws};
    return run_node(NULL, n, &c);
}

/* The values of a shifted model f2 that its twin f1 computes alike: every node output with a
 * namesake among f1's node outputs, except those reached from the input through routing ops only
 * (the reshapes before the first linear node see x + m in f2 and x in f1). */
static sal_status twin_plan(sal_session *s) {
    const sal_model *m = s->m, *t = m->twin;
    bool *pre = sal_calloc((size_t)m->nval + 1, sizeof *pre);
    s->twin_of = sal_malloc(((size_t)m->nval + 1) * sizeof *s->twin_of);
    if (!pre || !s->twin_of) {
        sal_free(pre);
        return sal_fail(SAL_ERR_NOMEM, "out of memory creating a session");
    }
    for (int i = 0; i < m->ninput; i++) pre[m->input[i]] = true;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        bool routed = sal_node_has(n, SAL_TR_ROUTE), any = false;
        for (int k = 0; k < n->nin; k++) {
            int v = n->in[k];
            if (v < 0 || m->val[v].kind == SAL_VAL_CONST) continue;
            any = true;
            routed &= pre[v];
        }
        for (int k = 0; routed && any && k < n->nout; k++)
            if (n->out[k] >= 0) pre[n->out[k]] = true;
    }
    for (int v = 0; v < m->nval; v++) {
        int u = m->val[v].kind == SAL_VAL_NODE && !pre[v] ? sal_strmap_get(&t->names, m->val[v].name) : -1;
        s->twin_of[v] = u >= 0 && t->val[u].kind == SAL_VAL_NODE ? u : -1;
    }
    sal_free(pre);
    return sal_session_new(t, &s->twin);
}

/* Values worth blocking: node outputs, not model outputs, whose every consumer can read them blocked
 * (an elementwise SAL_BLK_SAME op, input 0 of a SAL_BLK_OWN one), and whose SAME consumers' outputs
 * are such values too. Blocking any other value would only have it converted back at once. */
static void blk_plan(sal_session *s) {
    const sal_model *m = s->m;
    unsigned char *cand = s->blk_cand;
    for (int v = 0; v < m->nval; v++) cand[v] = m->val[v].kind == SAL_VAL_NODE;
    for (int i = 0; i < m->noutput; i++) cand[m->output[i]] = 0;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] >= 0 && (n->op->blk == SAL_BLK_NONE || (n->op->blk == SAL_BLK_OWN && k > 0)))
                cand[n->in[k]] = 0;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (int i = 0; i < m->nnode; i++) {
            const sal_node *n = &m->node[i];
            bool all = n->op->blk == SAL_BLK_SAME;
            for (int k = 0; all && k < n->nout; k++) all = n->out[k] < 0 || cand[n->out[k]];
            for (int k = 0; !all && n->op->blk == SAL_BLK_SAME && k < n->nin; k++)
                if (n->in[k] >= 0 && cand[n->in[k]]) cand[n->in[k]] = 0, changed = true;
        }
    }
}

/* t in plain order through the session's spare buffer, which takes t's old buffer in exchange. */
static sal_status to_plain(sal_session *s, sal_tensor *t) {
    SAL_TRY(sal_tensor_alloc_raw(&s->spare, SAL_F32, t->ndim, t->dim));
    sal_blk_to_plain(sal_f32(&s->spare), sal_f32(t), t->dim);
    sal_tensor old = *t;
    *t = s->spare;
    s->spare = old;
    return SAL_OK;
}

sal_status sal_exec_unblock(sal_session *s, int v, bool grad) {
    if (v < 0 || !s->blk[v]) return SAL_OK;
    /* a fused Relu's output views its input's activation: both are converted, as one */
    int own = s->view_of[v] >= 0 ? s->view_of[v] : v, view = s->viewed_by[own];
    if (s->act[own].data) { /* not dropped by a lean pass */
        SAL_TRY(to_plain(s, &s->act[own]));
        if (view >= 0) s->act[view] = sal_tensor_view(&s->act[own]);
    }
    for (int k = 0; k < 2; k++) {
        int u = k ? view : own;
        if (u < 0) continue;
        if (grad && s->has_grad[u]) SAL_TRY(to_plain(s, &s->grad[u]));
        s->blk[u] = 0;
    }
    return SAL_OK;
}

/* A Relu after a convolution that applied it: its output views the convolution's. */
static void relu_view(sal_session *s, int h, int a) {
    sal_tensor_free(&s->act[a]);
    s->act[a] = sal_tensor_view(&s->act[h]);
    s->blk[a] = s->blk[h];
    s->view_of[a] = h;
    s->viewed_by[h] = a;
}

/* Output o, its shape inferred, becomes a view of src's buffer (as many elements): for the
 * reshapes' views and the in-place Adds. */
static void view_as(sal_tensor *o, const sal_tensor *src) {
    sal_tensor v = sal_tensor_view(src);
    v.ndim = o->ndim;
    memcpy(v.dim, o->dim, sizeof v.dim);
    sal_tensor_free(o); /* an owned buffer of an earlier pass */
    *o = v;
}

/* Node n writes its output into input k's buffer (sal_session.inplace_in) when its values there
 * are plain f32 and as many; false leaves the node to run as usual (which reports a failing infer). */
static bool inplace_node(sal_session *s, const sal_node *n, sal_opctx *c, int k, sal_status *st) {
    int h = n->in[k], y = n->out[0];
    for (int j = 0; j < n->nin; j++)
        if (n->in[j] >= 0 && s->blk[n->in[j]]) return false;
    sal_tensor *o = &s->act[y];
    if (n->op->infer(c) != SAL_OK || o->dtype != SAL_F32 || s->act[h].dtype != SAL_F32 ||
        sal_tensor_numel(o) != sal_tensor_numel(&s->act[h]))
        return false;
    view_as(o, &s->act[h]);
    s->view_of[y] = h;
    s->viewed_by[h] = y;
    *st = all_empty(c->out, n->nout) ? SAL_OK : n->op->forward(c);
    return true;
}

/* A scalar operand of an elementwise op (Clip's bounds, a constant factor) reads alike in either
 * layout, so it neither needs nor stops blocking. */
static bool plain_scalar(const sal_session *s, int v) { return sal_tensor_numel(&s->act[v]) == 1 && !s->blk[v]; }

/* Forward of node n with layouts: decides which inputs stay blocked and which outputs become so. */
static sal_status run_blocked(sal_session *s, const sal_node *n, sal_opctx *c) {
    const sal_op *op = n->op;
    for (int k = 0; k < n->nin && k < 32; k++)
        if (n->in[k] >= 0 && s->blk[n->in[k]]) c->blk_in |= 1u << k;
    for (int k = 0; k < n->nout && k < 32; k++)
        if (n->out[k] >= 0 && s->blk_cand[n->out[k]]) c->blk_want |= 1u << k;
    SAL_TRY(op->infer(c));
    bool keep = false;
    if (c->blk_in && op->blk == SAL_BLK_SAME && c->blk_want == (1u << n->nout) - 1) {
        keep = true; /* every non-scalar input blocked and shaped as the output */
        for (int k = 0; keep && k < n->nin; k++) {
            int v = n->in[k];
            if (v >= 0 && !plain_scalar(s, v))
                keep = s->blk[v] && sal_tensor_same_shape(&s->act[v], c->out[0]);
        }
    } else if (c->blk_in) {
        keep = op->blk == SAL_BLK_OWN && c->blk_in == 1 && op->blk_takes(c);
    }
    if (!keep) {
        for (int k = 0; k < n->nin; k++) SAL_TRY(sal_exec_unblock(s, n->in[k], false));
        c->blk_in = 0;
    }
    if (op->blk != SAL_BLK_OWN) c->blk_want = 0;
    SAL_TRY(alloc_outputs(s, n, c->out));
    if (all_empty(c->out, n->nout)) return SAL_OK;
    SAL_TRY(op->forward(c));
    for (int k = 0; k < n->nout; k++)
        if (n->out[k] >= 0)
            s->blk[n->out[k]] = op->blk == SAL_BLK_SAME ? keep : (c->blk_out >> k & 1);
    return SAL_OK;
}

/* The affine front (exec.h: sal_exec_front) and each node's part. A node is in the head when it
 * depends on the input only through head values and is affine in them: a routing op other than
 * Cast, or linear in what varies (sal_node_linear_in: sums, one varying factor of a product, a
 * layer's data input, with constant weights and biases). */
static sal_status front_plan(sal_session *s) {
    const sal_model *m = s->m;
    s->front = -1;
    s->part = sal_calloc((size_t)m->nnode + 1, 1);
    unsigned char *dep = sal_calloc((size_t)m->nval + 1, 1); /* 1 a head value (or the input), 2 tail */
    if (!s->part || !dep) {
        sal_free(dep);
        return sal_fail(SAL_ERR_NOMEM, "out of memory creating a session");
    }
    if (m->ninput == 1 && !m->twin) dep[m->input[0]] = 1;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        unsigned vary = 0;
        bool tail = false;
        for (int k = 0; k < n->nin; k++) {
            int v = n->in[k];
            if (v < 0 || !dep[v]) continue;
            tail |= dep[v] == 2 || k >= 32;
            if (k < 32) vary |= 1u << k;
        }
        if (!vary && !tail) continue;
        tail |= sal_node_is(n, SAL_OP_Cast) || !(sal_node_has(n, SAL_TR_ROUTE) || sal_node_linear_in(n, vary));
        s->part[i] = tail ? 2 : 1;
        for (int k = 0; k < n->nout; k++)
            if (n->out[k] >= 0) dep[n->out[k]] = s->part[i];
    }
    /* the front: the one head value that tail nodes or the outputs read */
    int front = -1, nfront = 0;
    for (int v = 0; v < m->nval; v++) {
        if (dep[v] != 1) continue;
        bool read = false;
        for (int i = 0; i < m->noutput; i++) read |= m->output[i] == v;
        for (int i = 0; i < m->nnode && !read; i++)
            for (int k = 0; s->part[i] == 2 && k < m->node[i].nin; k++) read |= m->node[i].in[k] == v;
        if (read) front = v, nfront++;
    }
    if (nfront == 1 && m->val[front].kind == SAL_VAL_NODE) s->front = front;
    sal_free(dep);
    return SAL_OK;
}

int sal_exec_front(const sal_session *s) { return s->twin ? -1 : s->front; }

const float *sal_exec_front_product(sal_session *s, int64_t K, int64_t *N, float *alpha) {
    int f = sal_exec_front(s);
    const sal_model *m = s->m;
    const sal_node *g = NULL;
    for (int i = 0; i < m->nnode && f >= 0; i++) {
        const sal_node *n = &m->node[i];
        if (s->part[i] != 1) continue;
        if (n->nout == 1 && n->out[0] == f && sal_node_is(n, SAL_OP_Gemm)) g = n;
        else if (!sal_node_has(n, SAL_TR_VIEW)) return NULL;
    }
    if (!g) return NULL;
    sal_opctx c = {.g = m, .n = g, .ws = &s->ws};
    return sal_gemm_rows(&c, K, N, alpha);
}

const float *sal_exec_gemm_group_sums(sal_session *s, int node, int64_t K, int64_t S, int64_t *N, float *alpha) {
    sal_opctx c = {.g = s->m, .n = &s->m->node[node], .ws = &s->ws};
    return sal_gemm_group_sums(&c, K, S, N, alpha);
}

/* Convolutions and Gemms that may take the ReLU after them (sal_session.fuse): the output read by
 * one Relu and nothing else, not a model output. */
static sal_status fuse_plan(sal_session *s) {
    const sal_model *m = s->m;
    s->fuse_to = sal_malloc(((size_t)m->nnode + 1) * sizeof *s->fuse_to);
    s->inplace_in = sal_malloc(((size_t)m->nnode + 1) * sizeof *s->inplace_in);
    s->view_of = sal_malloc(((size_t)m->nval + 1) * sizeof *s->view_of);
    s->viewed_by = sal_malloc(((size_t)m->nval + 1) * sizeof *s->viewed_by);
    s->relu_read = sal_malloc(((size_t)m->nnode + 1) * sizeof *s->relu_read);
    int *readers = sal_calloc((size_t)m->nval + 1, sizeof *readers);
    if (!s->fuse_to || !s->inplace_in || !s->view_of || !s->viewed_by || !s->relu_read || !readers) {
        sal_free(readers);
        return sal_fail(SAL_ERR_NOMEM, "out of memory creating a session");
    }
    for (int v = 0; v < m->nval; v++) s->view_of[v] = s->viewed_by[v] = -1;
    for (int i = 0; i < m->nnode; i++) s->fuse_to[i] = s->inplace_in[i] = s->relu_read[i] = -1;
    for (int i = 0; i < m->nnode; i++)
        for (int k = 0; k < m->node[i].nin; k++)
            if (m->node[i].in[k] >= 0) readers[m->node[i].in[k]]++;
    for (int i = 0; i < m->noutput; i++) readers[m->output[i]] += 2;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *r = &m->node[i];
        int h = r->nin > 0 ? r->in[0] : -1;
        if (!sal_node_is(r, SAL_OP_Relu) || h < 0 || readers[h] != 1 || m->val[h].kind != SAL_VAL_NODE)
            continue;
        int p = m->val[h].producer;
        if ((sal_node_is(&m->node[p], SAL_OP_Conv) || sal_node_is(&m->node[p], SAL_OP_Gemm)) &&
            m->node[p].out[0] == h && r->nout == 1 && r->out[0] >= 0)
            s->fuse_to[p] = i;
    }
    for (int i = 0; i < m->nnode; i++) { /* a Relu's output only a MaxPool or a Gemm reads */
        const sal_node *n = &m->node[i];
        int a = n->nin > 0 ? n->in[0] : -1, j = a >= 0 && m->val[a].kind == SAL_VAL_NODE ? m->val[a].producer : -1;
        if (n->op->bwd_relu_in && j >= 0 && sal_node_is(&m->node[j], SAL_OP_Relu) && readers[a] == 1 &&
            m->node[j].nin == 1 && m->node[j].in[0] >= 0)
            s->relu_read[i] = j;
    }
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *r = &m->node[i];
        if (!(sal_node_is(r, SAL_OP_Add) || sal_node_is(r, SAL_OP_Sub)) || r->nout != 1 || r->out[0] < 0) continue;
        for (int k = 0; k < 2 && k < r->nin && s->inplace_in[i] < 0; k++) {
            int h = r->in[k], p = h >= 0 && m->val[h].kind == SAL_VAL_NODE ? m->val[h].producer : -1;
            if (p >= 0 && readers[h] == 1 && m->node[p].out[0] == h && s->fuse_to[p] < 0 &&
                (sal_node_is(&m->node[p], SAL_OP_MatMul) || sal_node_is(&m->node[p], SAL_OP_Gemm) ||
                 sal_node_is(&m->node[p], SAL_OP_Conv)))
                s->inplace_in[i] = k;
        }
    }
    sal_free(readers);
    return SAL_OK;
}

static int alias_root(int *up, int v) {
    while (up[v] != v) v = up[v] = up[up[v]];
    return v;
}

/* What a lean forward pass may drop (sal_session.lean), fixed per model. A value is kept when a
 * backward may read it (sal_op.bwd_known and its masks, with "wanted" read as "depends on a model
 * input", which covers every gradient a lean caller asks for), when it is a model input or output,
 * the affine front (read by later tail passes), or does not depend on the input (computed once,
 * read by every pass). Values that may share a buffer (a reshape's view, a fused ReLU, an in-place
 * Add) form one alias ring, kept when any of them is, and dropped after the last node that reads
 * any of them. drop_out: the same for passes that keep only the inputs, the outputs, the front and
 * what does not depend on the input (SAL_LEAN_OUT: no backward follows). */
static sal_status lean_plan(sal_session *s) {
    const sal_model *m = s->m;
    size_t nv = (size_t)m->nval + 1;
    s->drop_after = sal_malloc(nv * sizeof *s->drop_after);
    s->alias = sal_malloc(nv * sizeof *s->alias);
    s->alias_of = sal_malloc(nv * sizeof *s->alias_of);
    s->drop_out = sal_malloc(nv * sizeof *s->drop_out);
    /* keep: bit 0 for a backward, bit 1 in any case */
    unsigned char *vary = sal_calloc(nv, 1), *keep = sal_calloc(nv, 1);
    if (!s->drop_after || !s->alias || !s->alias_of || !s->drop_out || !vary || !keep) {
        sal_free(vary);
        sal_free(keep);
        return sal_fail(SAL_ERR_NOMEM, "out of memory creating a session");
    }
    int *last = s->drop_after, *up = s->alias_of;
    for (int v = 0; v < m->nval; v++) last[v] = -1, up[v] = v;
    for (int i = 0; i < m->ninput; i++) vary[m->input[i]] = 1, keep[m->input[i]] = 3;
    for (int i = 0; i < m->noutput; i++) keep[m->output[i]] = 3;
    if (s->front >= 0) keep[s->front] = 3;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        const sal_op *op = n->op;
        bool known = op->bwd_known || !op->backward; /* no backward (Shape): reads nothing */
        unsigned vin = 0; /* inputs that vary; those past the 31st count as bit 31 */
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] >= 0 && vary[n->in[k]]) vin |= 1u << (k < 31 ? k : 31);
        for (int k = 0; k < n->nin; k++) {
            int v = n->in[k];
            if (v < 0) continue;
            last[v] = i;
            unsigned b = 1u << (k < 31 ? k : 31);
            keep[v] |= !known || k >= 31 || ((op->bwd_self & b) && vary[v]) || ((op->bwd_other & b) && (vin & ~b));
        }
        for (int k = 0; k < n->nout; k++) {
            int v = n->out[k];
            if (v < 0) continue;
            last[v] = i; /* read by no one: dropped once made */
            vary[v] = vin && !sal_node_is(n, SAL_OP_Shape); /* as need[] in sal_exec_backward */
            keep[v] |= !known || k >= 31 || (op->bwd_out >> k & 1);
        }
        int a = n->nout > 0 ? n->out[0] : -1, b = -1;
        if ((sal_node_has(n, SAL_TR_VIEW) || n->op->view_at) && n->nin > 0) b = n->in[0]; /* may view it */
        else if (s->inplace_in[i] >= 0) b = n->in[s->inplace_in[i]];
        else if (s->fuse_to[i] >= 0) b = m->node[s->fuse_to[i]].out[0];
        if (a >= 0 && b >= 0) up[alias_root(up, a)] = alias_root(up, b);
    }
    for (int v = 0; v < m->nval; v++) {
        int r = alias_root(up, v);
        keep[r] |= keep[v] | (!vary[v] || m->val[v].kind != SAL_VAL_NODE ? 3 : 0);
        if (last[v] > last[r]) last[r] = last[v];
        s->alias[v] = v;
    }
    for (int v = 0; v < m->nval; v++) { /* the rings, and the node after which each root drops */
        int r = alias_root(up, v);
        if (v != r) s->alias[v] = s->alias[r], s->alias[r] = v;
    }
    for (int v = 0; v < m->nval; v++) {
        int r = alias_root(up, v);
        s->alias_of[v] = r;
        s->drop_out[v] = v != r || (keep[r] & 2) ? -1 : last[v];
        if (v != r || keep[r]) last[v] = -1;
    }
    sal_free(vary);
    sal_free(keep);
    return SAL_OK;
}

sal_status sal_session_new(const sal_model *m, sal_session **out) {
    *out = NULL;
    if (!m || !m->finalized) return sal_fail(SAL_ERR_ARG, "sal_session_new: model is not finalized");
    SAL_TRY(sal_blas_init());
    sal_session *s = sal_calloc(1, sizeof *s);
    if (!s) return sal_fail(SAL_ERR_NOMEM, "out of memory creating a session");
    s->m = m;
    s->keep_values = true;
    s->act = sal_calloc((size_t)m->nval, sizeof *s->act);
    s->grad = sal_calloc((size_t)m->nval, sizeof *s->grad);
    s->has_grad = sal_calloc((size_t)m->nval, sizeof *s->has_grad);
    s->need = sal_calloc((size_t)m->nval, sizeof *s->need);
    s->reached = sal_calloc((size_t)m->nval, sizeof *s->reached);
    s->blk = sal_calloc((size_t)m->nval + 1, 1);
    s->blk_cand = sal_calloc((size_t)m->nval + 1, 1);
    if (!s->act || !s->grad || !s->has_grad || !s->need || !s->reached || !s->blk || !s->blk_cand) {
        sal_session_free(s);
        return sal_fail(SAL_ERR_NOMEM, "out of memory creating a session");
    }
    for (int v = 0; v < m->nval; v++)
        if (m->val[v].kind == SAL_VAL_CONST) s->act[v] = sal_tensor_view(&m->val[v].t);
    blk_plan(s);
    sal_status st = front_plan(s);
    if (st == SAL_OK) st = fuse_plan(s);
    if (st == SAL_OK) st = lean_plan(s);
    if (st == SAL_OK && m->twin) st = twin_plan(s);
    if (st != SAL_OK) {
        sal_session_free(s);
        return st;
    }
    *out = s;
    return SAL_OK;
}

/* Frees the buffers that s's passes filled (its values' but the constants' views, its gradients',
 * the pool's) and its twin's and reference session's; a session that failed to be made lacks some
 * of its arrays. */
static void release(sal_session *s) {
    if (!s) return;
    for (int v = 0; s->act && v < s->m->nval; v++)
        if (s->m->val[v].kind != SAL_VAL_CONST) sal_tensor_free(&s->act[v]);
    for (int v = 0; s->grad && v < s->m->nval; v++) sal_tensor_free(&s->grad[v]);
    if (s->has_grad) memset(s->has_grad, 0, (size_t)s->m->nval * sizeof *s->has_grad);
    if (s->blk) memset(s->blk, 0, (size_t)s->m->nval + 1);
    for (int i = 0; i < s->npool; i++) sal_tensor_free(&s->pool[i]);
    s->npool = 0;
    sal_tensor_free(&s->spare);
    sal_tensor_free(&s->twin_in);
    s->forward_done = s->partial = false;
    release(s->twin);
    release(s->ref);
}

void sal_session_free(sal_session *s) {
    if (!s) return;
    release(s);
    for (int v = 0; s->act && v < s->m->nval; v++) sal_tensor_free(&s->act[v]); /* the constants' too */
    sal_free(s->act);
    sal_free(s->grad);
    sal_free(s->has_grad);
    sal_free(s->need);
    sal_free(s->reached);
    sal_free(s->blk);
    sal_free(s->blk_cand);
    sal_free(s->part);
    sal_free(s->fuse_to);
    sal_free(s->relu_read);
    sal_free(s->inplace_in);
    sal_free(s->view_of);
    sal_free(s->viewed_by);
    sal_free(s->drop_after);
    sal_free(s->drop_out);
    sal_free(s->alias);
    sal_free(s->alias_of);
    sal_free(s->pool);
    sal_free(s->prof);
    sal_scratch_free(&s->ws);
    sal_session_free(s->twin);
    sal_session_free(s->ref);
    sal_free(s->twin_of);
    sal_free(s);
}

sal_status sal_session_profile(sal_session *s, bool on) {
    sal_free(s->prof);
    s->prof = on ? sal_calloc(2 * (size_t)s->m->nnode + 1, sizeof *s->prof) : NULL;
    return !on || s->prof ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
}

static sal_status check_input(const sal_model *m, int i, const sal_tensor *x) {
    const sal_value *v = &m->val[m->input[i]];
    char a[160], b[160];
    if (x->dtype != v->t.dtype)
        return sal_fail(SAL_ERR_SHAPE, "input '%s' expects %s data, got %s", v->name, sal_dtype_name(v->t.dtype),
                        sal_dtype_name(x->dtype));
    bool ok = x->ndim == v->t.ndim;
    for (int d = 0; ok && d < x->ndim; d++) ok = v->t.dim[d] < 0 || v->t.dim[d] == x->dim[d];
    if (!ok)
        return sal_fail(SAL_ERR_SHAPE, "input '%s' expects shape %s (-1 = any), got %s", v->name,
                        sal_shape_str(v->t.ndim, v->t.dim, a, sizeof a), sal_shape_str(x->ndim, x->dim, b, sizeof b));
    return SAL_OK;
}

/* The twin's forward pass at input - shift (one input: sal_model_set_twin checks it). */
static sal_status twin_forward(sal_session *s, const sal_tensor *x) {
    const sal_tensor *m = &s->m->twin_shift;
    int64_t row = sal_tensor_numel(m), n = sal_tensor_numel(x);
    if (x->dtype != SAL_F32 || !row || n % row)
        return sal_fail(SAL_ERR_SHAPE, "the shifted model's input does not fit its shift");
    SAL_TRY(sal_tensor_copy(&s->twin_in, x));
    float *p = sal_f32(&s->twin_in);
    const float *d = sal_f32(m);
    for (int64_t i = 0; i < n; i++) p[i] -= d[i % row];
    return sal_exec_forward(s->twin, &s->twin_in);
}

/* Whether every output of node n takes the twin's activation; then they are copied in. */
static sal_status from_twin(sal_session *s, const sal_node *n, bool *done) {
    *done = false;
    for (int k = 0; k < n->nout; k++) {
        int v = n->out[k], u = v >= 0 ? s->twin_of[v] : -1;
        if (v >= 0 && (u < 0 || !s->twin->act[u].data)) return SAL_OK;
    }
    for (int k = 0; k < n->nout; k++)
        if (n->out[k] >= 0) SAL_TRY(sal_tensor_copy(&s->act[n->out[k]], &s->twin->act[s->twin_of[n->out[k]]]));
    *done = true;
    return SAL_OK;
}

/* A reshape (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout: SAL_TR_VIEW) of a plain
 * value gives a view of its input, not a copy: 5% of a Swin-T gradient was such copies. So does an
 * op whose output is a block of its input (sal_op.view_at: Swin's q, k and v, Gathers from one
 * product; its Pads by zero and the Slices that undo them). The view is remade each time the node
 * runs; nothing writes into a value once made (blocked values are converted into buffers of their
 * own, views are made of plain values only, and the in-place Adds and fused ReLUs write only into
 * the outputs of products, never views). A shifted model's twin copies values into place, so it
 * keeps copies. */
static bool view_node(sal_session *s, const sal_node *n, sal_opctx *c, sal_status *st) {
    bool reshape = sal_node_has(n, SAL_TR_VIEW);
    if (s->twin || !(reshape || n->op->view_at) || n->nin < 1 || n->in[0] < 0 || n->nout < 1 || n->out[0] < 0 ||
        s->blk[n->in[0]])
        return false;
    sal_tensor *o = &s->act[n->out[0]], *x = &s->act[n->in[0]];
    int64_t off = 0;
    if (n->op->infer(c) != SAL_OK || o->dtype != x->dtype ||
        (reshape ? sal_tensor_numel(o) != sal_tensor_numel(x)
                 : !n->op->view_at(c, &off) || off < 0 || off + sal_tensor_numel(o) > sal_tensor_numel(x)))
        return false; /* the copy then reports the error */
    view_as(o, x);
    if (off) o->data = (char *)o->data + (size_t)off * sal_dtype_size(x->dtype);
    /* other outputs (Dropout's mask, torchvision's Swin names 24 of them): the op's forward fills
     * them, and leaves the viewed first one as it is */
    bool more = false;
    for (int k = 1; k < n->nout && *st == SAL_OK; k++)
        if (c->out[k]) {
            more = true;
            *st = sal_tensor_alloc_raw(c->out[k], c->out[k]->dtype, c->out[k]->ndim, c->out[k]->dim);
        }
    if (more && *st == SAL_OK) *st = n->op->forward(c);
    return true;
}

/* In a lean pass, after node i: the buffers of the values that node i was the last to read (and of
 * their aliases), when no backward reads them, go to the pool; the values keep their shapes. */
static void drop_dead(sal_session *s, int i) {
    const sal_node *n = &s->m->node[i];
    for (int k = 0; k < n->nin + n->nout; k++) {
        int v = k < n->nin ? n->in[k] : n->out[k - n->nin];
        int r = v >= 0 ? s->alias_of[v] : -1;
        if (r < 0 || drops(s)[r] != i) continue;
        bool f32 = true; /* shape data (int64, bool) is small, and read by the next pass's shapes */
        for (int u = s->alias[r];; u = s->alias[u]) {
            f32 &= s->act[u].dtype == SAL_F32;
            if (u == r) break;
        }
        for (int u = s->alias[r]; f32; u = s->alias[u]) {
            if (s->act[u].cap) pool_put(s, &s->act[u]);
            else s->act[u].data = NULL; /* a view */
            if (u == r) break;
        }
    }
}

/* Runs the nodes of the graph but those of part `skip` (0: none; see front_plan); front_relu: the
 * front holds max(F, 0) already, and its Relu (sal_exec_front_relu) only views it. */
static sal_status run_nodes(sal_session *s, int skip, bool front_relu) {
    const sal_model *m = s->m;
    bool lay = s->layouts && !s->twin, fuse = lay && s->fuse;
    unsigned char lean = s->twin ? SAL_LEAN_OFF : s->lean;
    memset(s->blk, 0, (size_t)m->nval);
    s->blk_used = lay;
    s->fuse_used = fuse;
    s->lean_used = lean;
    for (int v = 0; v < m->nval; v++) s->view_of[v] = s->viewed_by[v] = -1;
    if (front_relu) relu_view(s, s->front, m->node[sal_exec_front_relu(s)].out[0]);
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        if (skip && s->part[i] == skip) continue;
        if (n->nout > 0 && n->out[0] >= 0 && s->view_of[n->out[0]] >= 0) { /* a Relu fused before */
            if (lean) drop_dead(s, i);
            continue;
        }
        bool done = false;
        if (s->twin) SAL_TRY(from_twin(s, n, &done));
        if (done) continue;
        sal_tensor *in[n->nin + 1], *out[n->nout + 1];
        for (int k = 0; k < n->nin; k++) in[k] = n->in[k] >= 0 ? &s->act[n->in[k]] : NULL;
        for (int k = 0; k < n->nout; k++) out[k] = n->out[k] >= 0 ? &s->act[n->out[k]] : NULL;
        double t0 = s->prof ? sal_now() : 0;
        /* a Relu this pass skips is not fused: a head pass gives the front's own values */
        bool relu = fuse && s->fuse_to[i] >= 0 && !(skip && s->part[s->fuse_to[i]] == skip);
        sal_opctx c = {.g = m, .n = n, .in = in, .out = out, .ws = &s->ws, .relu_want = relu,
                       .fwd_only = lean == SAL_LEAN_OUT};
        sal_status st = SAL_OK;
        if (fuse && s->inplace_in[i] >= 0 && inplace_node(s, n, &c, s->inplace_in[i], &st)) SAL_TRY(st);
        else if (view_node(s, n, &c, &st)) SAL_TRY(st);
        else SAL_TRY(lay ? run_blocked(s, n, &c) : run_node(s, n, &c));
        if (c.relu_done) relu_view(s, n->out[0], m->node[s->fuse_to[i]].out[0]);
        if (lean) drop_dead(s, i);
        if (s->prof) s->prof[i] += sal_now() - t0;
    }
    s->forward_done = true;
    s->fwd_version = m->version;
    s->partial = skip != 0;
    return SAL_OK;
}

sal_status sal_exec_forward(sal_session *s, const sal_tensor *inputs) {
    const sal_model *m = s->m;
    s->forward_done = false;
    for (int i = 0; i < m->ninput; i++) {
        SAL_TRY(check_input(m, i, &inputs[i]));
        SAL_TRY(sal_tensor_copy(&s->act[m->input[i]], &inputs[i]));
    }
    if (s->twin) SAL_TRY(twin_forward(s, &inputs[0]));
    return run_nodes(s, 0, false);
}

sal_status sal_exec_forward_head(sal_session *s, const sal_tensor *x) {
    SAL_ASSERT(sal_exec_front(s) >= 0);
    s->forward_done = false;
    SAL_TRY(check_input(s->m, 0, x));
    SAL_TRY(sal_tensor_copy(&s->act[s->m->input[0]], x));
    SAL_TRY(run_nodes(s, 2, false));
    return sal_exec_unblock(s, s->front, false); /* handed out and given back plain */
}

int sal_exec_front_relu(const sal_session *s) {
    int f = sal_exec_front(s);
    if (f < 0 || !s->layouts || !s->fuse) return -1;
    return s->fuse_to[s->m->val[f].producer];
}

sal_status sal_exec_forward_tail(sal_session *s, const sal_tensor *f, bool relu_done) {
    SAL_ASSERT(sal_exec_front(s) >= 0 && (!relu_done || sal_exec_front_relu(s) >= 0));
    sal_tensor *t = &s->act[s->front];
    s->forward_done = false;
    if (!t->data || f->dtype != SAL_F32 || f->ndim != t->ndim || f->ndim < 1 ||
        memcmp(f->dim + 1, t->dim + 1, sizeof(int64_t) * (size_t)(f->ndim - 1))) {
        char a[160], b[160];
        return sal_fail(SAL_ERR_SHAPE, "a value of '%s' shaped %s does not fit its shape %s from the last pass",
                        s->m->val[s->front].name, sal_shape_str(f->ndim, f->dim, a, sizeof a),
                        sal_shape_str(t->ndim, t->dim, b, sizeof b));
    }
    if (f->data != t->data) SAL_TRY(sal_tensor_copy(t, f));
    return run_nodes(s, 1, relu_done);
}

sal_status sal_exec_forward_reuse(sal_session *s, const sal_tensor *x) {
    const sal_model *m = s->m;
    const sal_tensor *in0 = m->ninput == 1 ? &s->act[m->input[0]] : NULL;
    bool same_layouts = s->blk_used == (s->layouts && !s->twin) &&
                        s->fuse_used == (s->layouts && s->fuse && !s->twin) &&
                        s->lean_used == (s->twin ? SAL_LEAN_OFF : s->lean);
    if (in0 && s->forward_done && !s->partial && s->fwd_version == m->version && same_layouts && in0->data &&
        x->data && in0->dtype == x->dtype && sal_tensor_same_shape(in0, x) &&
        !memcmp(in0->data, x->data, sal_dtype_size(x->dtype) * (size_t)sal_tensor_numel(x)))
        return SAL_OK;
    return sal_exec_forward(s, x);
}

sal_status sal_exec_ref_session(sal_session *s, sal_session **ref) {
    if (!s->ref) SAL_TRY(sal_session_new(s->m, &s->ref));
    *ref = s->ref;
    return SAL_OK;
}

void sal_exec_release(sal_session *s) {
    release(s);
    sal_memory_trim(); /* else freed blocks below glibc's mmap threshold stay resident */
}

/* Gradient buffers circulate through a pool (pool_put, pool_take): a value's gradient, once its
 * producer has used it, gives its buffer back, and the next gradient to start takes the smallest
 * pooled buffer that fits. A backward pass then holds the gradients live at one time rather than
 * one per value, and later passes reuse the same buffers. */
static void grad_release(sal_session *s, int v) {
    s->has_grad[v] = false;
    if (s->grad[v].cap && pool_put(s, &s->grad[v])) memset(&s->grad[v], 0, sizeof s->grad[v]);
}

/* Allocates grad[v] for value v's shape (zeroed unless raw), with a pooled buffer if its own is
 * too small. */
static sal_status grad_alloc(sal_session *s, int v, bool raw) {
    sal_tensor *t = &s->grad[v];
    pool_take(s, t, sizeof(float) * (size_t)sal_tensor_numel(&s->act[v]), false);
    return raw ? sal_tensor_alloc_raw(t, SAL_F32, s->act[v].ndim, s->act[v].dim)
               : sal_tensor_alloc(t, SAL_F32, s->act[v].ndim, s->act[v].dim);
}

/* The input of node n (-1 if none) that takes over its output's gradient buffer (sal_op.bwd_pass):
 * the output's gradient must be an owned buffer no one reads after this node (not kept, not
 * wanted), the input's first gradient, of as many elements in the same layout, and the node must
 * read that input once. Saves a copy of every residual and bias Add's gradient, and a buffer. Not
 * into a wanted input: it keeps its buffer from call to call, and a handed-over one would make the
 * output take a new buffer every call (a second one of integrated gradients' chunks at the front). */
static int pass_input(const sal_session *s, const sal_node *n, const sal_backward_opts *o, unsigned mask) {
    int y = n->nout >= 1 ? n->out[0] : -1;
    if (!mask || s->keep_grads || y < 0 || !s->reached[y] || !s->grad[y].cap || (o && o->wrt && o->wrt[y]))
        return -1;
    for (int k = 0; k < n->nin && k < 32; k++) {
        int v = n->in[k];
        if (!(mask >> k & 1) || v < 0 || !s->need[v] || s->has_grad[v] || (o && o->wrt && o->wrt[v]) ||
            s->act[v].dtype != SAL_F32 ||
            s->blk[v] != s->blk[y] || sal_tensor_numel(&s->act[v]) != sal_tensor_numel(&s->act[y]))
            continue;
        bool once = true;
        for (int j = 0; j < n->nin; j++) once &= j == k || n->in[j] != v;
        if (once) return k;
    }
    return -1;
}

sal_status sal_rule_pass(sal_opctx *c, void *user) {
    (void)user;
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    float *restrict d = sal_f32(c->din[0]);
    const float *restrict r = sal_f32(c->dout[0]);
    int64_t n = sal_tensor_numel(c->din[0]);
#pragma omp simd
    for (int64_t i = 0; i < n; i++) d[i] += r[i];
    return SAL_OK;
}

/* Branch-free simd loops with unconditional loads: a branch an element mispredicts. */
sal_status sal_rule_guided(sal_opctx *c, void *user) {
    (void)user;
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const float *x = sal_in_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    const int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR_SIMD(
        n > 65536, for (int64_t i = 0; i < n; i++) {
            float g = dy[i], v = x[i];
            dx[i] += g > 0.0f && v > 0.0f ? g : 0.0f;
        });
    return SAL_OK;
}

sal_status sal_rule_deconv(sal_opctx *c, void *user) {
    (void)user;
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const float *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    const int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR_SIMD(
        n > 65536, for (int64_t i = 0; i < n; i++) {
            float g = dy[i];
            dx[i] += g > 0.0f ? g : 0.0f;
        });
    return SAL_OK;
}

/* For a MaxPool or Gemm i over a Relu's output (sal_session.relu_read): the Relu's input h when i's
 * backward may write h's gradient itself (sal_opctx.relu_in) and the Relu's backward be skipped:
 * i has no rule, the Relu none or one that i applies (*rr: sal_opctx.relu_rule), the Relu's output
 * is not wanted, h has no gradient yet (i's is then the first and fresh), and h is laid out as the
 * Relu's output. Else -1. Saves a pass over the largest activations of a VGG or the small CNN (the
 * Relu's backward: 9% of VGG16's gradient); a Gemm on one row then computes only the active units'
 * entries (linear.c: din_masked). */
static int relu_under(const sal_session *s, int i, const sal_backward_opts *o, unsigned char *rr) {
    const sal_model *m = s->m;
    int j = s->relu_read[i];
    sal_rule_fn rj = j >= 0 && o && o->rule ? o->rule[j] : NULL;
    *rr = rj == sal_rule_guided ? SAL_RELU_GUIDED : rj == sal_rule_deconv ? SAL_RELU_DECONV : SAL_RELU_GRADIENT;
    if (j < 0 || s->keep_grads || (o && o->rule && o->rule[i]) || (rj && !(*rr && m->node[i].op->bwd_relu_rules)))
        return -1;
    int r = m->node[j].out[0], h = m->node[j].in[0];
    /* the op masks by the ReLU's output, which a lean pass drops where only the ReLU's backward read
     * its input (a Gemm's input gradient does not read it; a fused ReLU's output is its input) */
    if (r < 0 || !s->act[r].data || (o && o->wrt && o->wrt[r]) || !s->need[h] || s->has_grad[h] ||
        s->act[h].dtype != SAL_F32 ||
        s->blk[h] != s->blk[r] || sal_tensor_numel(&s->act[h]) != sal_tensor_numel(&s->act[r]))
        return -1;
    for (int k = 0; k < m->node[i].nin; k++) /* h read by i itself too: i's mask would meet its other share */
        if (m->node[i].in[k] == h) return -1;
    return h;
}

/* The backward step of node i: its rule or its op's gradient, into the gradients of its inputs. */
static sal_status backward_node(sal_session *s, int i, const sal_backward_opts *o) {
    const sal_model *m = s->m;
    const sal_node *n = &m->node[i];
    bool reached = false, wanted = false;
    /* a wanted value's zeroed buffer is not a gradient: running the node on it could turn 0
     * into NaN (0/0 in Div's backward) in another input's gradient */
    for (int k = 0; k < n->nout; k++) reached |= n->out[k] >= 0 && s->reached[n->out[k]];
    for (int k = 0; k < n->nin; k++) wanted |= n->in[k] >= 0 && s->need[n->in[k]];
    if (!reached || !wanted) return SAL_OK;
    sal_tensor *in[n->nin + 1], *out[n->nout + 1], *din[n->nin + 1], *dout[n->nout + 1];
    sal_rule_fn rule = o && o->rule ? o->rule[i] : NULL;
    /* rules and plain ops see plain tensors; an elementwise op needs all its values alike */
    bool plain_rule = rule && !(o && o->rules_any_layout);
    if (s->blk_used && (plain_rule || n->op->blk != SAL_BLK_OWN)) {
        bool any = false, all = true;
        for (int k = 0; k < n->nin + n->nout; k++) {
            int v = k < n->nin ? n->in[k] : n->out[k - n->nin];
            if (v < 0 || (k < n->nin && plain_scalar(s, v))) continue;
            any |= s->blk[v], all &= s->blk[v];
        }
        if (any && (plain_rule || n->op->blk == SAL_BLK_NONE || !all))
            for (int k = 0; k < n->nin + n->nout; k++)
                SAL_TRY(sal_exec_unblock(s, k < n->nin ? n->in[k] : n->out[k - n->nin], true));
    }
    unsigned bin = 0, bout = 0;
    for (int k = 0; k < n->nin && k < 32; k++)
        if (n->in[k] >= 0 && s->blk[n->in[k]]) bin |= 1u << k;
    for (int k = 0; k < n->nout && k < 32; k++)
        if (n->out[k] >= 0 && s->blk[n->out[k]]) bout |= 1u << k;
    unsigned fresh = 0;
    int pass = !rule ? pass_input(s, n, o, n->op->bwd_pass | n->op->bwd_inplace)
                     : rule == sal_rule_pass ? pass_input(s, n, o, 1u) : -1;
    unsigned char rr;
    int under = relu_under(s, i, o, &rr), dv[n->nin + 1]; /* dv[k]: the value whose gradient din[k] is */
    for (int k = 0; k < n->nin; k++) {
        int v = n->in[k];
        in[k] = v >= 0 ? &s->act[v] : NULL;
        din[k] = NULL;
        if (k == 0 && under >= 0) v = under;
        dv[k] = v;
        if (v < 0 || !s->need[v] || s->act[v].dtype != SAL_F32 || k == pass) continue;
        if (!s->has_grad[v]) {
            /* the first gradient into v: an op that writes it whole gets it unzeroed, unless
             * the node reads v twice (both slots would share the buffer) */
            bool once = true;
            for (int j = 0; j < n->nin; j++) once &= j == k || n->in[j] != v;
            bool raw = !rule && k < 32 && (n->op->bwd_writes >> k & 1) && once;
            SAL_TRY(grad_alloc(s, v, raw));
            if (raw) fresh |= 1u << k;
            s->has_grad[v] = true;
        }
        din[k] = &s->grad[v];
    }
    for (int k = 0; k < n->nout; k++) {
        int v = n->out[k];
        out[k] = v >= 0 ? &s->act[v] : NULL;
        dout[k] = v >= 0 && s->reached[v] ? &s->grad[v] : NULL;
    }
    if (all_empty(out, n->nout)) { /* no gradient flows through nothing (see all_empty) */
        for (int k = 0; k < n->nin; k++)
            if (fresh >> k & 1) memset(din[k]->data, 0, sizeof(float) * (size_t)sal_tensor_numel(din[k]));
        return SAL_OK;
    }
    sal_opctx c = {.g = m, .n = n, .in = in, .out = out, .din = din, .dout = dout, .din_fresh = fresh,
                   .blk_in = n->op->blk == SAL_BLK_OWN ? bin : 0, .blk_out = n->op->blk == SAL_BLK_OWN ? bout : 0,
                   .relu_in = under >= 0, .relu_rule = under >= 0 ? rr : 0,
                   .handed = pass >= 0 && pass < 32 ? 1u << pass : 0, .ws = &s->ws};
    double t0 = s->prof ? sal_now() : 0;
    if (rule) {
        SAL_TRY(rule(&c, o->user));
    } else {
        if (!n->op->backward)
            return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "has no gradient");
        SAL_TRY(n->op->backward(&c));
    }
    if (pass >= 0) { /* after the op, which may read the output's gradient for its other inputs */
        int v = n->in[pass];
        sal_tensor *g = &s->grad[v], *d = &s->grad[n->out[0]];
        grad_release(s, v); /* a buffer of an earlier pass goes back to the pool, to be reused */
        *g = *d;
        memset(d, 0, sizeof *d);
        g->ndim = s->act[v].ndim;
        memcpy(g->dim, s->act[v].dim, sizeof g->dim);
        s->has_grad[v] = s->reached[v] = true;
    }
    if (s->prof) s->prof[m->nnode + i] += sal_now() - t0;
    for (int k = 0; k < n->nin; k++)
        if (din[k]) s->reached[dv[k]] = true; /* past a Relu (under): its output is never reached */
    return SAL_OK;
}

sal_status sal_exec_backward(sal_session *s, int nseed, const int *seed_val, const sal_tensor *seeds,
                             const sal_backward_opts *o) {
    const sal_model *m = s->m;
    if (!s->forward_done) return sal_fail(SAL_ERR_ARG, "backward pass requested before a forward pass");
    if (s->lean_used == SAL_LEAN_OUT)
        return sal_fail(SAL_ERR_ARG, "backward pass requested after a forward pass that kept only the outputs "
                                     "(sal_session_keep_values)");
    /* wanted values and seeds are read and written plain by the caller */
    for (int v = 0; o && o->wrt && v < m->nval; v++)
        if (o->wrt[v]) SAL_TRY(sal_exec_unblock(s, v, false));
    for (int i = 0; i < nseed; i++) SAL_TRY(sal_exec_unblock(s, seed_val[i], false));
    /* need[v]: a wanted gradient lies upstream of v (v itself wanted, or v feeds a node whose
     * input needs it). One forward sweep suffices as nodes are sorted. A Shape's output does not
     * depend on its input's values: what is computed from it (attention's scale from the head
     * size) needs no gradient, and its gradient would reach nothing. */
    for (int v = 0; v < m->nval; v++) {
        s->need[v] = o && o->wrt ? o->wrt[v] : false;
        s->has_grad[v] = s->reached[v] = false;
    }
    if (!o || !o->wrt)
        for (int i = 0; i < m->ninput; i++) s->need[m->input[i]] = true;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        bool any = false;
        for (int k = 0; k < n->nin && !sal_node_is(n, SAL_OP_Shape); k++) any |= n->in[k] >= 0 && s->need[n->in[k]];
        for (int k = 0; k < n->nout; k++)
            if (n->out[k] >= 0) s->need[n->out[k]] |= any;
    }
    for (int i = 0; i < nseed; i++) {
        int v = seed_val[i];
        if (!sal_tensor_same_shape(&seeds[i], &s->act[v])) {
            char a[160], b[160];
            return sal_fail(SAL_ERR_SHAPE, "gradient seed for '%s' has shape %s, the value has %s", m->val[v].name,
                            sal_shape_str(seeds[i].ndim, seeds[i].dim, a, sizeof a),
                            sal_shape_str(s->act[v].ndim, s->act[v].dim, b, sizeof b));
        }
        if (!s->has_grad[v]) {
            SAL_TRY(grad_alloc(s, v, false));
            s->has_grad[v] = true;
        }
        s->reached[v] = true;
        float *g = sal_f32(&s->grad[v]);
        const float *sd = sal_f32(&seeds[i]);
        for (int64_t j = 0, n = sal_tensor_numel(&seeds[i]); j < n; j++) g[j] += sd[j];
    }
    for (int i = m->nnode - 1; i >= 0; i--) {
        SAL_TRY(backward_node(s, i, o));
        if (s->keep_grads) continue;
        /* the node was the last reader of its outputs' gradients: unless wanted, their buffers go
         * back to the pool for the gradients still to come */
        const sal_node *n = &m->node[i];
        for (int k = 0; k < n->nout; k++)
            if (n->out[k] >= 0 && !(o && o->wrt && o->wrt[n->out[k]])) grad_release(s, n->out[k]);
    }
    /* wanted values get zeroed gradients when no path reached them; the others' first writer could
     * write theirs whole (bwd_writes) instead of adding to zeros */
    for (int v = 0; v < m->nval; v++) {
        bool wanted = o && o->wrt ? o->wrt[v] : false;
        for (int i = 0; !(o && o->wrt) && i < m->ninput; i++) wanted |= m->input[i] == v;
        if (!wanted || s->has_grad[v]) continue;
        SAL_TRY(grad_alloc(s, v, false));
        s->has_grad[v] = true;
    }
    return SAL_OK;
}

/* ---- public wrappers ---- */

static int64_t first_nonfinite(const sal_tensor *t) {
    if (t->dtype != SAL_F32 || !t->data) return -1;
    const float *p = sal_f32(t);
    for (int64_t j = 0, n = sal_tensor_numel(t); j < n; j++)
        if (!isfinite(p[j])) return j;
    return -1;
}

sal_status sal_exec_check_outputs(sal_session *s) {
    const sal_model *m = s->m;
    int bad = -1;
    for (int i = 0; i < m->noutput && bad < 0; i++)
        if (first_nonfinite(&s->act[m->output[i]]) >= 0) bad = m->output[i];
    if (bad < 0) return SAL_OK;
    if (s->lean_used && !s->partial) { /* the pass dropped values: again, keeping them all */
        unsigned char lean = s->lean;
        s->lean = SAL_LEAN_OFF;
        sal_status st = run_nodes(s, 0, false);
        s->lean = lean;
        SAL_TRY(st);
    }
    /* name where it started: the first node, in execution order, with a non-finite output */
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        for (int k = 0; k < n->nout; k++) {
            int64_t j = n->out[k] >= 0 ? first_nonfinite(&s->act[n->out[k]]) : -1;
            if (j >= 0)
                return sal_fail(SAL_ERR_NUMERIC,
                                "%s: output '%s' is not finite; the first non-finite value (%g) came from node '%s' "
                                "(%s), in '%s' at flat index %lld",
                                m->path, m->val[bad].name, (double)sal_f32(&s->act[n->out[k]])[j], n->name, n->op_type,
                                m->val[n->out[k]].name, (long long)j);
        }
    }
    return sal_fail(SAL_ERR_NUMERIC, "%s: output '%s' is not finite", m->path, m->val[bad].name);
}

sal_status sal_forward(sal_session *s, int ninputs, const sal_tensor *inputs, const sal_tensor **outputs) {
    const sal_model *m = s->m;
    if (ninputs != m->ninput)
        return sal_fail(SAL_ERR_ARG, "model %s takes %d inputs, %d given", m->path, m->ninput, ninputs);
    for (int i = 0; i < ninputs; i++) {
        if (inputs[i].dtype != SAL_F32) continue;
        const float *x = sal_f32(&inputs[i]);
        for (int64_t j = 0, n = sal_tensor_numel(&inputs[i]); j < n; j++)
            if (!isfinite(x[j]))
                return sal_fail(SAL_ERR_NUMERIC, "input '%s' has a non-finite value (%g) at flat index %lld",
                                m->val[m->input[i]].name, (double)x[j], (long long)j);
    }
    /* outputs are never blocked, and sal_session_value converts what it hands out */
    bool lay = s->layouts, fuse = s->fuse;
    unsigned char lean = s->lean;
    s->layouts = true;
    s->lean = s->keep_values ? SAL_LEAN_OFF : SAL_LEAN_OUT;
    s->fuse = !s->keep_values; /* no inner value is handed out: a ReLU may go into its producer */
    sal_status st = sal_exec_forward(s, inputs);
    s->layouts = lay;
    s->fuse = fuse;
    s->lean = lean;
    SAL_TRY(st);
    for (int i = 0; i < m->noutput; i++) outputs[i] = &s->act[m->output[i]];
    return sal_exec_check_outputs(s);
}

void sal_session_keep_values(sal_session *s, int keep) { s->keep_values = keep != 0; }

sal_status sal_input_gradient(sal_session *s, const sal_tensor *seed, const sal_tensor **grads) {
    const sal_model *m = s->m;
    int out0 = m->output[0];
    SAL_TRY(sal_exec_backward(s, 1, &out0, seed, NULL));
    for (int i = 0; i < m->ninput; i++) grads[i] = &s->grad[m->input[i]];
    return SAL_OK;
}
