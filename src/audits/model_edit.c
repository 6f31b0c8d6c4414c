/* Copies of a model with edits: a plain copy (weights to randomize), and the shifted model of
 * Kindermans et al. whose first linear node absorbs an input shift. */
#include "audit.h"

/* One edit of a copy: node `node` gets bias value `bias` as input `bias_slot` (replacing or adding
 * it), or its output 0 renamed `pre` and an Add node `add_name` (pre + add_const) producing the old
 * name. New constants come with the edit. */
typedef struct {
    int node;
    int bias_slot;
    const char *bias;
    const char *pre, *add_name, *add_const;
    sal_tensor *newc[2]; /* constants to add (names in newc_name), consumed */
    const char *newc_name[2];
} edit;

static sal_status copy_attr(const sal_attr *a, sal_attr *b) {
    memset(b, 0, sizeof *b);
    b->type = a->type;
    b->f = a->f;
    b->i = a->i;
    b->n = a->n;
    b->name = sal_strdup(a->name);
    if (!b->name) return sal_fail(SAL_ERR_NOMEM, "out of memory copying attributes");
    if (a->s && !(b->s = sal_strdup(a->s))) return sal_fail(SAL_ERR_NOMEM, "out of memory copying attributes");
    if (a->floats) {
        if (!(b->floats = sal_malloc((size_t)(a->n ? a->n : 1) * sizeof *b->floats)))
            return sal_fail(SAL_ERR_NOMEM, "out of memory copying attributes");
        memcpy(b->floats, a->floats, (size_t)a->n * sizeof *b->floats);
    }
    if (a->ints) {
        if (!(b->ints = sal_malloc((size_t)(a->n ? a->n : 1) * sizeof *b->ints)))
            return sal_fail(SAL_ERR_NOMEM, "out of memory copying attributes");
        memcpy(b->ints, a->ints, (size_t)a->n * sizeof *b->ints);
    }
    if (a->t.data) SAL_TRY(sal_tensor_copy(&b->t, &a->t));
    else b->t = a->t; /* shape only */
    return SAL_OK;
}

static sal_status add_node_copy(sal_model *g2, const sal_model *g, const sal_node *n, const edit *e) {
    const char *in[32], *out[32];
    int nin = n->nin, nout = n->nout;
    if (nin > 31 || nout > 32)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' has too many inputs or outputs to copy", g->path, n->name);
    for (int k = 0; k < nin; k++) in[k] = n->in[k] >= 0 ? g->val[n->in[k]].name : "";
    for (int k = 0; k < nout; k++) out[k] = n->out[k] >= 0 ? g->val[n->out[k]].name : "";
    if (e && e->bias) {
        while (nin <= e->bias_slot) in[nin++] = "";
        in[e->bias_slot] = e->bias;
    }
    if (e && e->pre) out[0] = e->pre;
    sal_attr *at = sal_calloc((size_t)(n->nattr ? n->nattr : 1), sizeof *at);
    if (!at) return sal_fail(SAL_ERR_NOMEM, "out of memory copying node '%s'", n->name);
    sal_status st = SAL_OK;
    for (int k = 0; k < n->nattr && st == SAL_OK; k++) st = copy_attr(&n->attr[k], &at[k]);
    if (st != SAL_OK) {
        for (int k = 0; k < n->nattr; k++) sal_attr_clear(&at[k]);
        sal_free(at);
        return st;
    }
    st = sal_graph_add_node(g2, n->op_type, n->name, nin, in, nout, out, n->nattr, at);
    sal_free(at);
    if (st == SAL_OK && e && e->pre)
        st = sal_graph_add_op(g2, SAL_OP_Add, e->add_name, 2, (const char *[]){e->pre, e->add_const}, 1,
                                (const char *[]){g->val[n->out[0]].name}, 0, NULL);
    return st;
}

/* Rebuilds g (inputs, constants, nodes in order, outputs) with edit e applied (may be NULL). */
static sal_status copy_graph(const sal_model *g, edit *e, sal_model **out) {
    *out = NULL;
    sal_model *g2;
    SAL_TRY(sal_graph_create(g->path, &g2));
    sal_status st = SAL_OK;
    g2->opset = g->opset;
    g2->ir_version = g->ir_version;
    char *prod = sal_strdup(g->producer ? g->producer : "saliency");
    if (!prod) st = sal_fail(SAL_ERR_NOMEM, "out of memory copying %s", g->path);
    else sal_free(g2->producer), g2->producer = prod;
    for (int i = 0; i < g->ninput && st == SAL_OK; i++) {
        const sal_value *v = &g->val[g->input[i]];
        st = sal_graph_add_input(g2, v->name, v->t.dtype, v->t.ndim, v->t.dim);
    }
    for (int v = 0; v < g->nval && st == SAL_OK; v++) {
        if (g->val[v].kind != SAL_VAL_CONST) continue;
        sal_tensor t = {0};
        st = sal_tensor_copy(&t, &g->val[v].t);
        if (st == SAL_OK) st = sal_graph_add_const(g2, g->val[v].name, &t);
        else sal_tensor_free(&t);
    }
    for (int k = 0; e && k < 2 && st == SAL_OK; k++)
        if (e->newc[k]) st = sal_graph_add_const(g2, e->newc_name[k], e->newc[k]);
    for (int i = 0; i < g->nnode && st == SAL_OK; i++)
        st = add_node_copy(g2, g, &g->node[i], e && e->node == i ? e : NULL);
    for (int i = 0; i < g->noutput && st == SAL_OK; i++) st = sal_graph_add_output(g2, g->val[g->output[i]].name);
    if (st == SAL_OK) st = sal_graph_finalize(g2);
    if (st != SAL_OK) {
        sal_model_free(g2);
        return st;
    }
    *out = g2;
    return SAL_OK;
}

sal_status sal_model_copy(const sal_model *m, sal_model **out) { return copy_graph(m, NULL, out); }

/* ---- the shifted model ---- */

/* The single node reading value v, or -1 (none, or several: *several set). */
static int only_consumer(const sal_model *g, int v, int *slot, bool *several) {
    int who = -1;
    *several = false;
    for (int i = 0; i < g->nnode; i++)
        for (int k = 0; k < g->node[i].nin; k++)
            if (g->node[i].in[k] == v) {
                if (who >= 0) *several = true;
                who = i;
                *slot = k;
            }
    for (int i = 0; i < g->noutput; i++)
        if (g->output[i] == v) *several = true;
    return who;
}

/* Runs node n of g on x (its first input) with the other inputs as in g, the bias left out. */
static sal_status run_without_bias(const sal_model *g, const sal_node *n, sal_tensor *x, int bias_slot,
                                   sal_tensor *y) {
    sal_tensor *in[32] = {0}, *outp[32] = {0};
    sal_tensor scratch_out[32];
    memset(scratch_out, 0, sizeof scratch_out);
    if (n->nin > 32 || n->nout > 32) return sal_fail(SAL_ERR_UNSUPPORTED, "node '%s' has too many inputs", n->name);
    in[0] = x;
    for (int k = 1; k < n->nin; k++) in[k] = k == bias_slot || n->in[k] < 0 ? NULL : (sal_tensor *)&g->val[n->in[k]].t;
    for (int k = 1; k < n->nin; k++)
        if (in[k] && !in[k]->data)
            return sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (%s) has a computed input %d; the shift can only be "
                            "absorbed by a node whose other inputs are constants", g->path, n->name, n->op_type, k);
    outp[0] = y;
    for (int k = 1; k < n->nout; k++) outp[k] = n->out[k] >= 0 ? &scratch_out[k] : NULL;
    sal_scratch ws = {0};
    sal_status st = sal_run_node(g, n, in, outp, &ws);
    sal_scratch_free(&ws);
    for (int k = 1; k < n->nout; k++) sal_tensor_free(&scratch_out[k]);
    if (st != SAL_OK) st = sal_wrap(st, "%s: applying the first layer to the shift", g->path);
    return st;
}

/* A fresh value name: base, or base_1, base_2, ... */
static void fresh_name(const sal_model *g, const char *base, char *buf, size_t n) {
    snprintf(buf, n, "%s", base);
    for (int k = 1; sal_graph_find(g, buf) >= 0 || sal_graph_find_node(g, buf) >= 0; k++) snprintf(buf, n, "%s_%d", base, k);
}

sal_status sal_model_shifted(const sal_model *m, const sal_tensor *shift, sal_model **out) {
    *out = NULL;
    if (m->ninput != 1)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s has %d inputs; the shifted model needs a single input", m->path, m->ninput);
    const sal_tensor *decl = &m->val[m->input[0]].t;
    if (shift->dtype != SAL_F32 || shift->ndim != decl->ndim - 1) {
        char a[160], b[160];
        return sal_fail(SAL_ERR_SHAPE, "the shift %s must have one sample's shape of the input %s",
                        sal_shape_str(shift->ndim, shift->dim, a, sizeof a), sal_shape_str(decl->ndim, decl->dim, b, sizeof b));
    }
    for (int d = 0; d < shift->ndim; d++)
        if (decl->dim[d + 1] >= 0 && decl->dim[d + 1] != shift->dim[d]) {
            char a[160], b[160];
            return sal_fail(SAL_ERR_SHAPE, "the shift %s does not fit the input %s",
                            sal_shape_str(shift->ndim, shift->dim, a, sizeof a), sal_shape_str(decl->ndim, decl->dim, b, sizeof b));
        }
    for (int64_t i = 0, n = sal_tensor_numel(shift); i < n; i++)
        if (!isfinite(sal_f32(shift)[i])) return sal_fail(SAL_ERR_NUMERIC, "the shift has a non-finite value at %lld", (long long)i);
    SAL_TRY(sal_blas_init()); /* the nodes run here outside a session, which would load it */
    /* the shift as a batch of one, carried through the reshapes to the first linear node */
    sal_tensor cur = {0}, nxt = {0}, delta = {0};
    int64_t dim[SAL_MAX_DIMS];
    dim[0] = 1;
    memcpy(dim + 1, shift->dim, sizeof(int64_t) * (size_t)shift->ndim);
    sal_status st = sal_tensor_alloc(&cur, SAL_F32, shift->ndim + 1, dim);
    if (st != SAL_OK) return st;
    memcpy(cur.data, shift->data, (size_t)sal_tensor_numel(shift) * sizeof(float));
    int v = m->input[0], lin = -1;
    while (st == SAL_OK && lin < 0) {
        int slot = 0;
        bool several;
        int i = only_consumer(m, v, &slot, &several);
        if (i < 0 || several) {
            st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: value '%s' is read by %s; the shifted model needs the input to reach "
                          "one Gemm, MatMul or Conv through reshapes only", m->path, m->val[v].name,
                          i < 0 ? "no node" : "several nodes or is an output");
            break;
        }
        const sal_node *n = &m->node[i];
        bool linear = sal_node_has(n, SAL_TR_LINEAR);
        if (slot != 0 || (!linear && !sal_node_has(n, SAL_TR_VIEW))) {
            st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: the input reaches node '%s' (%s) as its input %d; the shift can only "
                          "be absorbed by a Gemm, MatMul or Conv reading it (through reshapes) as its first input",
                          m->path, n->name, n->op_type, slot);
            break;
        }
        if (sal_node_is(n, SAL_OP_Gemm) && sal_attr_int(n, "transA", 0)) {
            st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (Gemm) has transA=1: its first input is not batch first",
                          m->path, n->name);
            break;
        }
        int bias_slot = linear && n->op->bias_in ? __builtin_ctz(n->op->bias_in) : -1;
        if (linear) {
            st = run_without_bias(m, n, &cur, bias_slot, &delta);
            lin = i;
        } else {
            st = run_without_bias(m, n, &cur, -1, &nxt);
            sal_tensor t = cur;
            cur = nxt;
            nxt = t;
            v = n->out[0];
        }
    }
    sal_tensor_free(&cur);
    sal_tensor_free(&nxt);
    if (st != SAL_OK) {
        sal_tensor_free(&delta);
        return st;
    }
    /* delta = W shift (bias left out), shaped as one sample of the node's output */
    const sal_node *n = &m->node[lin];
    int64_t nd = sal_tensor_numel(&delta);
    float *d = sal_f32(&delta);
    for (int64_t i = 0; i < nd; i++) d[i] = -d[i];
    edit e = {.node = lin, .bias_slot = 2};
    char bname[256], pre[256], aname[256], cname[256];
    sal_tensor bias = {0};
    bool fold = false;
    if (sal_node_is(n, SAL_OP_Gemm)) {
        /* y = alpha A B + beta C: C2 = C - W m / beta folds exactly (one value per output column) */
        float beta = sal_attr_float(n, "beta", 1.0f);
        int64_t K = delta.dim[1];
        const sal_tensor *C = n->nin > 2 && n->in[2] >= 0 ? &m->val[n->in[2]].t : NULL;
        if (beta == 0.0f) {
            st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (Gemm) has beta=0, so it has no bias to absorb the shift",
                          m->path, n->name);
        } else if (C && (!C->data || (C->ndim == 2 && C->dim[0] != 1))) {
            st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (Gemm): the bias C is computed or has one row per sample",
                          m->path, n->name);
        } else if ((st = sal_tensor_alloc(&bias, SAL_F32, 1, &K)) == SAL_OK) {
            const float *c = C ? sal_f32(C) : NULL;
            int64_t cn = C ? sal_tensor_numel(C) : 0;
            for (int64_t k = 0; k < K; k++)
                sal_f32(&bias)[k] = (c ? c[cn == 1 ? 0 : k] : 0.0f) + d[k] / beta;
            fold = true;
        }
    } else if (sal_node_is(n, SAL_OP_Conv)) {
        /* one value per channel when the shift is constant per channel and nothing is padded */
        int64_t Co = delta.dim[1], P = nd / Co;
        const sal_tensor *B = n->nin > 2 && n->in[2] >= 0 ? &m->val[n->in[2]].t : NULL;
        fold = !B || B->data;
        for (int64_t c = 0; c < Co && fold; c++) {
            double scale = 0;
            for (int64_t p = 0; p < P; p++) scale = fmax(scale, fabs(d[c * P + p]));
            for (int64_t p = 1; p < P && fold; p++) fold = fabs(d[c * P + p] - d[c * P]) <= 1e-6 * scale;
        }
        if (fold && (st = sal_tensor_alloc(&bias, SAL_F32, 1, &Co)) == SAL_OK)
            for (int64_t c = 0; c < Co; c++) sal_f32(&bias)[c] = (B ? sal_f32(B)[c] : 0.0f) + d[c * P];
    }
    if (st == SAL_OK && fold) {
        fresh_name(m, n->nin > 2 && n->in[2] >= 0 ? m->val[n->in[2]].name : n->name, bname, sizeof bname);
        if (!strcmp(bname, n->name)) fresh_name(m, "bias", bname, sizeof bname);
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s_shifted", bname);
        fresh_name(m, tmp, bname, sizeof bname);
        e.bias = bname;
        e.newc[0] = &bias;
        e.newc_name[0] = bname;
    } else if (st == SAL_OK) { /* an Add after the node: output + (-W m), broadcast over the batch */
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s_unshifted", m->val[n->out[0]].name);
        fresh_name(m, tmp, pre, sizeof pre);
        snprintf(tmp, sizeof tmp, "%s_shift", n->name);
        fresh_name(m, tmp, aname, sizeof aname);
        snprintf(tmp, sizeof tmp, "%s_shift_bias", n->name);
        fresh_name(m, tmp, cname, sizeof cname);
        e.pre = pre;
        e.add_name = aname;
        e.add_const = cname;
        e.newc[0] = &delta;
        e.newc_name[0] = cname;
    }
    if (st == SAL_OK) st = copy_graph(m, &e, out);
    sal_tensor_free(&bias);
    sal_tensor_free(&delta);
    return st;
}
