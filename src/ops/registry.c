/* The op table, built from oplist.h, and helpers shared by op files. */
#include "ops.h"
#include <stdarg.h>

#define SAL_OP(X) extern const sal_op sal_op_##X;
#include "oplist.h"
#undef SAL_OP

static const sal_op *const k_ops[] = {
#define SAL_OP(X) &sal_op_##X,
#include "oplist.h"
#undef SAL_OP
    NULL,
};

_Static_assert(sizeof k_ops / sizeof *k_ops == SAL_OP_COUNT + 1, "k_ops and sal_op_id are both built from oplist.h");

const sal_op *const *sal_op_all(void) { return k_ops; }

const sal_op *sal_op_get(sal_op_id id) {
    SAL_ASSERT(id >= 0 && id < SAL_OP_COUNT && k_ops[id]->id == id);
    return k_ops[id];
}

bool sal_node_linear_in(const sal_node *n, unsigned vary) {
    const sal_op *op = n->op;
    if (!op) return false;
    if (op->traits & (SAL_TR_ROUTE | SAL_TR_ADDITIVE)) return true;
    if (!(op->traits & SAL_TR_MULTILINEAR)) return false;
    unsigned in_lin = vary & op->lin_in;
    return !(vary & ~(op->lin_in | op->bias_in)) && !(in_lin & (in_lin - 1));
}

const sal_op *sal_op_lookup(const char *name) {
    for (int i = 0; k_ops[i]; i++)
        if (!strcmp(k_ops[i]->name, name)) return k_ops[i];
    return NULL;
}

sal_status sal_node_fail(const sal_node *n, sal_status st, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sal_fail(st, "node '%s' (%s): %s", n->name, n->op_type, msg);
}

void *sal_scratch_get(sal_scratch *ws, int slot, size_t bytes) {
    SAL_ASSERT(slot >= 0 && slot < SAL_SCRATCH_SLOTS);
    if (ws->cap[slot] < bytes) {
        void *p = sal_malloc(bytes);
        if (!p) {
            sal_fail(SAL_ERR_NOMEM, "cannot allocate %zu bytes of scratch memory", bytes);
            return NULL;
        }
        sal_free(ws->buf[slot]);
        ws->buf[slot] = p;
        ws->cap[slot] = bytes;
    }
    return ws->buf[slot];
}

void sal_scratch_free(sal_scratch *ws) {
    for (int i = 0; i < SAL_SCRATCH_SLOTS; i++) sal_free(ws->buf[i]);
    for (int i = 0; i < ws->nderived; i++) sal_tensor_free(&ws->derived[i].t);
    sal_free(ws->derived);
    for (int i = 0; i < ws->nstate; i++)
        if (ws->state[i].p) ws->state[i].free(ws->state[i].p);
    sal_free(ws->state);
    memset(ws, 0, sizeof *ws);
}

void sal_din_zero_fresh(const sal_opctx *c, int k) {
    if (c->din[k] && (c->din_fresh >> k & 1))
        memset(sal_f32(c->din[k]), 0, sizeof(float) * (size_t)sal_tensor_numel(c->din[k]));
}

bool sal_grad_flows(const sal_opctx *c) {
    if (!c->din[0]) return false;
    if (c->dout[0]) return true;
    sal_din_zero_fresh(c, 0);
    return false;
}

sal_node_state *sal_node_state_of(const sal_opctx *c) {
    sal_scratch *ws = c->ws;
    int i = (int)(c->n - c->g->node);
    SAL_ASSERT(i >= 0 && i < c->g->nnode);
    if (i >= ws->nstate) {
        int n = c->g->nnode;
        sal_node_state *st = sal_realloc(ws->state, sizeof *st * (size_t)n);
        if (!st) {
            sal_fail(SAL_ERR_NOMEM, "out of memory");
            return NULL;
        }
        memset(st + ws->nstate, 0, sizeof *st * (size_t)(n - ws->nstate));
        ws->state = st;
        ws->nstate = n;
    }
    sal_node_state *s = &ws->state[i];
    if (s->node != c->n) { /* another model's node at this index */
        if (s->p) s->free(s->p);
        *s = (sal_node_state){.node = c->n};
    }
    return s;
}

/* sal_derived_get (x NULL) and sal_derived_map: a buffer shaped as like for key's derivation */
static sal_tensor *derived(const sal_opctx *c, int input, uint64_t key, const sal_tensor *x, const sal_tensor *like,
                           bool *ready) {
    enum { MOST = 64, ONE_MAX = 1 << 20, ALL_MAX = 16 << 20 };
    sal_scratch *ws = c->ws;
    *ready = false;
    int v = input >= 0 && input < c->n->nin ? c->n->in[input] : -1;
    const sal_tensor *W = v >= 0 ? c->in[input] : NULL;
    if (!W || c->g->val[v].kind != SAL_VAL_CONST || W->data != c->g->val[v].t.data) return NULL;
    const bool map = x != NULL;
    sal_derived *free_slot = NULL;
    for (int i = 0; i < ws->nderived; i++) {
        sal_derived *d = &ws->derived[i];
        if (d->node == c->n && d->input == input && d->key == key && d->map == map) {
            *ready = d->version == c->g->version && sal_tensor_same_shape(&d->t, like) &&
                     (!map || sal_tensor_same_shape(&d->xs, x));
            if (*ready) return &d->t;
            free_slot = d; /* stale: derived again in place */
            break;
        }
        if (!free_slot && !d->node) free_slot = d;
    }
    size_t bytes = sizeof(float) * (size_t)sal_tensor_numel(like);
    if (W->dtype != SAL_F32 || bytes > ONE_MAX) return NULL;
    if (!free_slot) {
        if (ws->nderived == MOST || ws->derived_bytes + bytes > ALL_MAX) return NULL;
        if (!ws->derived && !(ws->derived = sal_calloc(MOST, sizeof *ws->derived))) return NULL;
        free_slot = &ws->derived[ws->nderived++];
    }
    size_t had = free_slot->t.cap;
    if (sal_tensor_alloc_raw(&free_slot->t, SAL_F32, like->ndim, like->dim) != SAL_OK)
        return NULL; /* not kept: the caller derives into its own buffer */
    ws->derived_bytes += free_slot->t.cap - had;
    free_slot->node = c->n, free_slot->input = input, free_slot->key = key, free_slot->version = c->g->version;
    free_slot->map = map;
    if (map) {
        free_slot->xs = (sal_tensor){.dtype = x->dtype, .ndim = x->ndim};
        memcpy(free_slot->xs.dim, x->dim, sizeof x->dim);
    }
    return &free_slot->t;
}

sal_tensor *sal_derived_get(const sal_opctx *c, int input, uint64_t key, bool *ready) {
    const sal_tensor *W = input >= 0 && input < c->n->nin ? c->in[input] : NULL;
    if (!W) {
        *ready = false;
        return NULL;
    }
    return derived(c, input, key, NULL, W, ready);
}

sal_tensor *sal_derived_map(const sal_opctx *c, int input, uint64_t key, const sal_tensor *x, const sal_tensor *like,
                            bool *ready) {
    return derived(c, input, key, x, like, ready);
}

sal_status sal_need_f32(const sal_opctx *c, int i, int rank) {
    const sal_tensor *t = c->in[i];
    if (!t) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input %d is missing", i);
    if (t->dtype != SAL_F32)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "input %d has data type %s; only float32 is supported", i,
                             sal_dtype_name(t->dtype));
    if (rank >= 0 && t->ndim != rank) {
        char b[160];
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "input %d has shape %s; expected rank %d", i,
                             sal_shape_str(t->ndim, t->dim, b, sizeof b), rank);
    }
    return SAL_OK;
}

void sal_same_shape(sal_opctx *c, int i, int j) {
    sal_tensor *o = c->out[i];
    const sal_tensor *x = c->in[j];
    o->dtype = x->dtype;
    o->ndim = x->ndim;
    memcpy(o->dim, x->dim, sizeof o->dim);
}

bool sal_broadcast_shape(const sal_tensor *a, const sal_tensor *b, int *ndim, int64_t *dim) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t da = ia >= 0 ? a->dim[ia] : 1, db = ib >= 0 ? b->dim[ib] : 1;
        if (da != db && da != 1 && db != 1) return false;
        dim[i] = da == 1 ? db : da;
    }
    *ndim = n;
    return true;
}
