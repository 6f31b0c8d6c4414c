/* Graph rewrites: one copy-with-edits and the transformations built on it (see rewrite.h). */
#include "rewrite.h"
#include "exec.h"
#include "ops/linear_ops.h"
#include <math.h>

/* ---- copy with edits ---- */

static sal_status attr_copy(const sal_attr *a, sal_attr *o) {
    memset(o, 0, sizeof *o);
    o->name = sal_strdup(a->name);
    o->type = a->type;
    o->f = a->f;
    o->i = a->i;
    o->n = a->n;
    bool ok = o->name != NULL;
    if (ok && a->s) ok = (o->s = sal_strdup(a->s)) != NULL;
    if (ok && a->floats) {
        ok = (o->floats = sal_malloc(sizeof(float) * (size_t)(a->n ? a->n : 1))) != NULL;
        if (ok) memcpy(o->floats, a->floats, sizeof(float) * (size_t)a->n);
    }
    if (ok && a->ints) {
        ok = (o->ints = sal_malloc(sizeof(int64_t) * (size_t)(a->n ? a->n : 1))) != NULL;
        if (ok) memcpy(o->ints, a->ints, sizeof(int64_t) * (size_t)a->n);
    }
    if (ok && a->t.data) ok = sal_tensor_copy(&o->t, &a->t) == SAL_OK;
    else if (ok) o->t = a->t; /* shape only */
    if (!ok) {
        sal_attr_clear(o);
        return sal_fail(SAL_ERR_NOMEM, "out of memory copying attribute '%s'", a->name);
    }
    return SAL_OK;
}

static const char *val_name(const sal_model *m, int v) { return v >= 0 ? m->val[v].name : ""; }

/* Adds node n of m to g with edit e (may be NULL) applied. */
static sal_status copy_node(sal_model *g, const sal_model *m, const sal_node *n, const sal_node_edit *e) {
    int nin = e && e->nin > 0 ? e->nin : n->nin, nout = e && e->nout > 0 ? e->nout : n->nout;
    int nattr = n->nattr + 1; /* room for an added attribute */
    const char **in = sal_malloc(sizeof *in * (size_t)(nin + nout));
    sal_attr *at = sal_calloc((size_t)nattr, sizeof *at);
    if (!in || !at) {
        sal_free(in);
        sal_free(at);
        return sal_fail(SAL_ERR_NOMEM, "out of memory copying node '%s'", n->name);
    }
    const char **out = in + nin;
    for (int k = 0; k < nin; k++) in[k] = e && e->nin > 0 ? e->in[k] : val_name(m, n->in[k]);
    for (int k = 0; k < nout; k++) out[k] = e && e->nout > 0 ? e->out[k] : val_name(m, n->out[k]);
    sal_status st = SAL_OK;
    int na = 0;
    bool set = false;
    for (; na < n->nattr && st == SAL_OK; na++) {
        st = attr_copy(&n->attr[na], &at[na]);
        if (st == SAL_OK && e && e->set_float && !strcmp(at[na].name, e->set_float)) {
            at[na].type = SAL_ATTR_FLOAT;
            at[na].f = e->set_float_value;
            set = true;
        }
    }
    if (st == SAL_OK && e && e->set_float && !set) at[na++] = sal_attr_make_float(e->set_float, e->set_float_value);
    if (st == SAL_OK) st = sal_graph_add_node(g, n->op_type, n->name, nin, in, nout, out, na, at);
    else
        for (int k = 0; k < na; k++) sal_attr_clear(&at[k]);
    sal_free(in);
    sal_free(at);
    if (st == SAL_OK && e && e->add_name)
        st = sal_graph_add_op(g, e->add_op, e->add_name, e->add_nin, e->add_in, 1, &e->add_out, 0, NULL);
    return st;
}

/* Marks the constants of m that the copy's nodes read (after edits) and its outputs. */
static void mark_read(const sal_model *m, const sal_node_edit *const *by_node, bool *read) {
    for (int i = 0; i < m->nnode; i++) {
        const sal_node_edit *e = by_node[i];
        if (e && e->drop) continue;
        if (e && e->nin > 0) {
            for (int k = 0; k < e->nin; k++) {
                int v = e->in[k] && *e->in[k] ? sal_graph_find(m, e->in[k]) : -1;
                if (v >= 0) read[v] = true;
            }
        } else {
            for (int k = 0; k < m->node[i].nin; k++)
                if (m->node[i].in[k] >= 0) read[m->node[i].in[k]] = true;
        }
        for (int k = 0; e && e->add_name && k < e->add_nin; k++) {
            int v = sal_graph_find(m, e->add_in[k]);
            if (v >= 0) read[v] = true;
        }
    }
    for (int i = 0; i < m->noutput; i++) read[m->output[i]] = true;
}

sal_status sal_model_rewrite(const sal_model *m, const sal_model_edits *e, sal_model **out) {
    *out = NULL;
    const sal_node_edit **by_node = sal_calloc((size_t)m->nnode + 1, sizeof *by_node);
    bool *read = sal_calloc((size_t)m->nval + 1, sizeof *read);
    sal_model *g = NULL;
    sal_status st = by_node && read ? sal_graph_create(m->path, &g) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int k = 0; st == SAL_OK && e && k < e->nedit; k++) {
        int i = e->edit[k].node;
        SAL_ASSERT(i >= 0 && i < m->nnode && !by_node[i]);
        by_node[i] = &e->edit[k];
    }
    if (st == SAL_OK) {
        g->opset = m->opset;
        g->ir_version = m->ir_version;
        char *prod = sal_strdup(m->producer ? m->producer : "saliency");
        if (!prod) st = sal_fail(SAL_ERR_NOMEM, "out of memory copying %s", m->path);
        else sal_free(g->producer), g->producer = prod;
        mark_read(m, by_node, read);
    }
    for (int i = 0; i < m->ninput && st == SAL_OK; i++) {
        const sal_value *v = &m->val[m->input[i]];
        st = sal_graph_add_input(g, v->name, v->t.dtype, v->t.ndim, v->t.dim);
    }
    for (int v = 0; v < m->nval && st == SAL_OK; v++) {
        if (m->val[v].kind != SAL_VAL_CONST || (e && e->prune && !read[v])) continue;
        sal_tensor t = {0};
        st = sal_tensor_copy(&t, &m->val[v].t);
        if (st == SAL_OK) st = sal_graph_add_const(g, m->val[v].name, &t);
        else sal_tensor_free(&t);
    }
    for (int k = 0; e && k < e->nconst && st == SAL_OK; k++)
        st = sal_graph_add_const(g, e->const_name[k], &e->const_value[k]);
    for (int i = 0; i < m->nnode && st == SAL_OK; i++)
        if (!by_node[i] || !by_node[i]->drop) st = copy_node(g, m, &m->node[i], by_node[i]);
    for (int i = 0; i < m->noutput && st == SAL_OK; i++) st = sal_graph_add_output(g, m->val[m->output[i]].name);
    if (st == SAL_OK) st = sal_graph_finalize(g);
    sal_free(by_node);
    sal_free(read);
    if (st != SAL_OK) {
        sal_model_free(g);
        return st;
    }
    *out = g;
    return SAL_OK;
}

sal_status sal_model_copy(const sal_model *m, sal_model **out) { return sal_model_rewrite(m, NULL, out); }

void sal_fresh_name(const sal_model *m, const sal_model *g, const char *base, const char *suffix, char *buf,
                    size_t n) {
    snprintf(buf, n, "%s%s", base, suffix);
    for (int k = 2; sal_graph_find(m, buf) >= 0 || sal_graph_find_node(m, buf) >= 0 ||
                    (g && (sal_graph_find(g, buf) >= 0 || sal_graph_find_node(g, buf) >= 0));
         k++)
        snprintf(buf, n, "%s%s%d", base, suffix, k);
}

/* ---- BatchNormalization folding ---- */

static int consumers(const sal_model *m, int v) {
    int k = 0;
    for (int i = 0; i < m->nnode; i++)
        for (int j = 0; j < m->node[i].nin; j++) k += m->node[i].in[j] == v;
    for (int i = 0; i < m->noutput; i++) k += m->output[i] == v;
    return k;
}

static bool const_f32(const sal_model *m, int v, int64_t numel) {
    return v >= 0 && m->val[v].kind == SAL_VAL_CONST && m->val[v].t.dtype == SAL_F32 &&
           (numel < 0 || sal_tensor_numel(&m->val[v].t) == numel);
}

/* The linear node that BatchNormalization node b can be folded into, or -1. */
static int fold_target(const sal_model *m, int b) {
    const sal_node *bn = &m->node[b];
    int v = bn->in[0];
    if (v < 0 || m->val[v].kind != SAL_VAL_NODE || consumers(m, v) != 1) return -1;
    int li = m->val[v].producer;
    const sal_node *L = &m->node[li];
    sal_lin_roles r;
    if (!sal_node_is(L, SAL_OP_Conv) && !sal_node_is(L, SAL_OP_Gemm)) return -1;
    if (sal_lin_roles_of(m, L, &r) != SAL_OK || r.w != 1) return -1;
    const sal_tensor *W = &m->val[L->in[1]].t;
    if (W->dtype != SAL_F32 || W->ndim < 2) return -1;
    int64_t C = sal_node_is(L, SAL_OP_Conv) ? W->dim[0] : W->dim[r.w_unit_axis];
    for (int k = 1; k < 5; k++)
        if (!const_f32(m, bn->in[k], C)) return -1;
    if (r.b >= 0) {
        const sal_tensor *B = &m->val[L->in[r.b]].t;
        if (B->dtype != SAL_F32) return -1;
        /* Gemm's C broadcasts; fold only the per-unit forms: scalar, (C) or (1, C) */
        int64_t nb = sal_tensor_numel(B);
        if (nb != 1 && nb != C) return -1;
        if (B->ndim == 2 && B->dim[1] != nb) return -1;
    }
    return li;
}

/* New weight and bias of linear node L followed by normalization bn. */
static sal_status fold(const sal_model *m, const sal_node *L, const sal_node *bn, sal_tensor *W2, sal_tensor *B2) {
    sal_lin_roles r;
    SAL_TRY(sal_lin_roles_of(m, L, &r));
    const sal_tensor *W = &m->val[L->in[1]].t;
    bool conv = sal_node_is(L, SAL_OP_Conv);
    int64_t C = conv ? W->dim[0] : W->dim[r.w_unit_axis];
    SAL_TRY(sal_tensor_copy(W2, W));
    SAL_TRY(sal_tensor_alloc(B2, SAL_F32, 1, (int64_t[]){C}));
    const float *sc = sal_f32(&m->val[bn->in[1]].t), *sh = sal_f32(&m->val[bn->in[2]].t),
                *mu = sal_f32(&m->val[bn->in[3]].t), *var = sal_f32(&m->val[bn->in[4]].t);
    double eps = sal_attr_float(bn, "epsilon", 1e-5f);
    const float *b0 = r.b >= 0 ? sal_f32(&m->val[L->in[r.b]].t) : NULL;
    int64_t nb = r.b >= 0 ? sal_tensor_numel(&m->val[L->in[r.b]].t) : 0;
    double beta = conv ? 1.0 : sal_attr_float(L, "beta", 1.0f); /* Gemm adds beta * C; the copy gets beta = 1 */
    float *w = sal_f32(W2), *b = sal_f32(B2);
    int64_t n = sal_tensor_numel(W2), per = n / C;
    for (int64_t c = 0; c < C; c++) {
        if (!(var[c] + eps > 0))
            return sal_node_fail(bn, SAL_ERR_NUMERIC, "variance + epsilon of channel %lld is not positive", (long long)c);
        double a = sc[c] / sqrt((double)var[c] + eps);
        double bias = b0 ? beta * b0[nb == 1 ? 0 : c] : 0.0;
        b[c] = (float)(a * (bias - mu[c]) + sh[c]);
        if (conv || r.w_unit_axis == 0) /* W (C, ...): unit c is a block of rows */
            for (int64_t i = 0; i < per; i++) w[c * per + i] = (float)(a * w[c * per + i]);
        else /* Gemm B (K, C): unit c is a column */
            for (int64_t i = 0; i < per; i++) w[i * C + c] = (float)(a * w[i * C + c]);
    }
    return SAL_OK;
}

/* Per folded pair: the edits of the linear node and of the normalization, and the names they use. */
typedef struct {
    char w[256], b[256];
    const char *in[3], *out[1];
} fold_names;

sal_status sal_canonize(const sal_model *m, sal_model **out, int *nfolded) {
    *out = NULL;
    *nfolded = 0;
    int nf = 0;
    for (int i = 0; i < m->nnode; i++) nf += sal_node_is(&m->node[i], SAL_OP_BatchNormalization) && fold_target(m, i) >= 0;
    if (nf == 0) return SAL_OK;
    sal_node_edit *ed = sal_calloc((size_t)(2 * nf), sizeof *ed);
    fold_names *nm = sal_calloc((size_t)nf, sizeof *nm);
    sal_tensor *cv = sal_calloc((size_t)(2 * nf), sizeof *cv);
    const char **cn = sal_calloc((size_t)(2 * nf), sizeof *cn);
    sal_status st = ed && nm && cv && cn ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory canonizing %s", m->path);
    int k = 0;
    for (int i = 0; i < m->nnode && st == SAL_OK; i++) {
        int li = sal_node_is(&m->node[i], SAL_OP_BatchNormalization) ? fold_target(m, i) : -1;
        if (li < 0) continue;
        const sal_node *L = &m->node[li], *bn = &m->node[i];
        fold_names *f = &nm[k];
        st = fold(m, L, bn, &cv[2 * k], &cv[2 * k + 1]);
        /* names unused by m and by the pairs named before */
        sal_fresh_name(m, NULL, L->name, ".folded_weight", f->w, sizeof f->w);
        sal_fresh_name(m, NULL, L->name, ".folded_bias", f->b, sizeof f->b);
        f->in[0] = m->val[L->in[0]].name;
        f->in[1] = cn[2 * k] = f->w;
        f->in[2] = cn[2 * k + 1] = f->b;
        f->out[0] = m->val[bn->out[0]].name; /* the folded node gives what the normalization gave */
        ed[2 * k] = (sal_node_edit){.node = li, .nin = 3, .in = f->in, .nout = 1, .out = f->out,
                                    /* the folded bias is whole: Gemm's beta scaled it already */
                                    .set_float = sal_node_is(L, SAL_OP_Gemm) ? "beta" : NULL, .set_float_value = 1.0f};
        ed[2 * k + 1] = (sal_node_edit){.node = i, .drop = true};
        k++;
    }
    if (st == SAL_OK) {
        sal_model_edits e = {.nedit = 2 * nf, .edit = ed, .nconst = 2 * nf, .const_name = cn, .const_value = cv,
                             .prune = true};
        st = sal_model_rewrite(m, &e, out);
        if (st != SAL_OK) st = sal_wrap(st, "canonizing %s (folding BatchNormalization)", m->path);
    }
    for (int j = 0; cv && j < 2 * nf; j++) sal_tensor_free(&cv[j]);
    sal_free(ed);
    sal_free(nm);
    sal_free(cv);
    sal_free(cn);
    if (st == SAL_OK) *nfolded = nf;
    return st;
}

/* ---- the shifted model (Kindermans et al.) ---- */

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
    sal_tensor **in = sal_calloc((size_t)(n->nin + 2 * n->nout), sizeof *in);
    sal_tensor *extra = sal_calloc((size_t)n->nout, sizeof *extra);
    if (!in || !extra) {
        sal_free(in);
        sal_free(extra);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    sal_tensor **outp = in + n->nin;
    sal_status st = SAL_OK;
    in[0] = x;
    for (int k = 1; k < n->nin; k++) in[k] = k == bias_slot || n->in[k] < 0 ? NULL : (sal_tensor *)&g->val[n->in[k]].t;
    for (int k = 1; k < n->nin && st == SAL_OK; k++)
        if (in[k] && !in[k]->data)
            st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (%s) has a computed input %d; the shift can only be "
                          "absorbed by a node whose other inputs are constants", g->path, n->name, n->op_type, k);
    outp[0] = y;
    for (int k = 1; k < n->nout; k++) outp[k] = n->out[k] >= 0 ? &extra[k] : NULL;
    sal_scratch ws = {0};
    if (st == SAL_OK) {
        st = sal_run_node(g, n, in, outp, &ws);
        if (st != SAL_OK) st = sal_wrap(st, "%s: applying the first layer to the shift", g->path);
    }
    sal_scratch_free(&ws);
    for (int k = 1; k < n->nout; k++) sal_tensor_free(&extra[k]);
    sal_free(in);
    sal_free(extra);
    return st;
}

static sal_status check_shift(const sal_model *m, const sal_tensor *shift) {
    if (m->ninput != 1)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s has %d inputs; the shifted model needs a single input", m->path, m->ninput);
    const sal_tensor *decl = &m->val[m->input[0]].t;
    char a[160], b[160];
    if (shift->dtype != SAL_F32 || shift->ndim != decl->ndim - 1)
        return sal_fail(SAL_ERR_SHAPE, "the shift %s must have one sample's shape of the input %s",
                        sal_shape_str(shift->ndim, shift->dim, a, sizeof a), sal_shape_str(decl->ndim, decl->dim, b, sizeof b));
    for (int d = 0; d < shift->ndim; d++)
        if (decl->dim[d + 1] >= 0 && decl->dim[d + 1] != shift->dim[d])
            return sal_fail(SAL_ERR_SHAPE, "the shift %s does not fit the input %s",
                            sal_shape_str(shift->ndim, shift->dim, a, sizeof a), sal_shape_str(decl->ndim, decl->dim, b, sizeof b));
    for (int64_t i = 0, n = sal_tensor_numel(shift); i < n; i++)
        if (!isfinite(sal_f32(shift)[i])) return sal_fail(SAL_ERR_NUMERIC, "the shift has a non-finite value at %lld", (long long)i);
    return SAL_OK;
}

/* Carries the shift (a batch of one) from the input through reshapes to the first linear node:
 * *lin gets its index and delta = W shift, its output without the bias. */
static sal_status shift_through(const sal_model *m, const sal_tensor *shift, int *lin, sal_tensor *delta) {
    sal_tensor cur = {0}, nxt = {0};
    int64_t dim[SAL_MAX_DIMS];
    dim[0] = 1;
    memcpy(dim + 1, shift->dim, sizeof(int64_t) * (size_t)shift->ndim);
    SAL_TRY(sal_tensor_alloc(&cur, SAL_F32, shift->ndim + 1, dim));
    memcpy(cur.data, shift->data, (size_t)sal_tensor_numel(shift) * sizeof(float));
    sal_status st = SAL_OK;
    int v = m->input[0];
    *lin = -1;
    while (st == SAL_OK && *lin < 0) {
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
        } else if (sal_node_is(n, SAL_OP_Gemm) && sal_attr_int(n, "transA", 0)) {
            st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (Gemm) has transA=1: its first input is not batch first",
                          m->path, n->name);
        } else if (linear) {
            st = run_without_bias(m, n, &cur, n->op->bias_in ? __builtin_ctz(n->op->bias_in) : -1, delta);
            *lin = i;
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
    return st;
}

/* The bias of linear node n with -delta folded in, when one value per output unit can hold it
 * (*fold false otherwise): Gemm always (C2 = C - W m / beta), Conv when delta is constant per
 * channel (no padding reached the shift). */
static sal_status folded_bias(const sal_model *m, const sal_node *n, const sal_tensor *delta, sal_tensor *bias,
                              bool *fold) {
    const float *d = sal_f32(delta);
    int64_t nd = sal_tensor_numel(delta);
    *fold = false;
    if (sal_node_is(n, SAL_OP_Gemm)) {
        float beta = sal_attr_float(n, "beta", 1.0f);
        int64_t K = delta->dim[1];
        const sal_tensor *C = n->nin > 2 && n->in[2] >= 0 ? &m->val[n->in[2]].t : NULL;
        if (beta == 0.0f)
            return sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (Gemm) has beta=0, so it has no bias to absorb the shift",
                            m->path, n->name);
        if (C && (!C->data || (C->ndim == 2 && C->dim[0] != 1)))
            return sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s' (Gemm): the bias C is computed or has one row per sample",
                            m->path, n->name);
        SAL_TRY(sal_tensor_alloc(bias, SAL_F32, 1, &K));
        const float *c = C ? sal_f32(C) : NULL;
        int64_t cn = C ? sal_tensor_numel(C) : 0;
        for (int64_t k = 0; k < K; k++) sal_f32(bias)[k] = (c ? c[cn == 1 ? 0 : k] : 0.0f) + d[k] / beta;
        *fold = true;
    } else if (sal_node_is(n, SAL_OP_Conv)) {
        int64_t Co = delta->dim[1], P = nd / Co;
        const sal_tensor *B = n->nin > 2 && n->in[2] >= 0 ? &m->val[n->in[2]].t : NULL;
        bool ok = !B || B->data;
        for (int64_t c = 0; c < Co && ok; c++) {
            double scale = 0;
            for (int64_t p = 0; p < P; p++) scale = fmax(scale, fabs(d[c * P + p]));
            for (int64_t p = 1; p < P && ok; p++) ok = fabs(d[c * P + p] - d[c * P]) <= 1e-6 * scale;
        }
        if (ok) {
            SAL_TRY(sal_tensor_alloc(bias, SAL_F32, 1, &Co));
            for (int64_t c = 0; c < Co; c++) sal_f32(bias)[c] = (B ? sal_f32(B)[c] : 0.0f) + d[c * P];
            *fold = true;
        }
    }
    return SAL_OK;
}

sal_status sal_model_shifted(const sal_model *m, const sal_tensor *shift, sal_model **out) {
    *out = NULL;
    SAL_TRY(check_shift(m, shift));
    SAL_TRY(sal_blas_init()); /* the nodes run here outside a session, which would load it */
    sal_tensor delta = {0}, bias = {0};
    int lin;
    sal_status st = shift_through(m, shift, &lin, &delta);
    if (st != SAL_OK) {
        sal_tensor_free(&delta);
        return st;
    }
    const sal_node *n = &m->node[lin];
    float *d = sal_f32(&delta);
    for (int64_t i = 0, nd = sal_tensor_numel(&delta); i < nd; i++) d[i] = -d[i];
    bool fold;
    st = folded_bias(m, n, &delta, &bias, &fold);
    char bname[256], pre[256], aname[256], cname[256], tmp[300];
    const char *in[3], *outs[1], *add_in[2];
    sal_node_edit ed = {.node = lin};
    const char *newc_name[1];
    sal_model_edits e = {.nedit = 1, .edit = &ed, .nconst = 1, .const_name = newc_name};
    if (st == SAL_OK && fold) { /* the node reads a new bias in slot 2 */
        sal_fresh_name(m, NULL, n->nin > 2 && n->in[2] >= 0 ? m->val[n->in[2]].name : "bias", "_shifted", bname,
                       sizeof bname);
        for (int k = 0; k < 3; k++) in[k] = k < n->nin ? val_name(m, n->in[k]) : "";
        in[2] = bname;
        ed.nin = 3;
        ed.in = in;
        newc_name[0] = bname;
        e.const_value = &bias;
    } else if (st == SAL_OK) { /* an Add after the node: output + (-W m), broadcast over the batch */
        snprintf(tmp, sizeof tmp, "%s_unshifted", m->val[n->out[0]].name);
        sal_fresh_name(m, NULL, tmp, "", pre, sizeof pre);
        snprintf(tmp, sizeof tmp, "%s_shift", n->name);
        sal_fresh_name(m, NULL, tmp, "", aname, sizeof aname);
        snprintf(tmp, sizeof tmp, "%s_shift_bias", n->name);
        sal_fresh_name(m, NULL, tmp, "", cname, sizeof cname);
        outs[0] = pre;
        for (int k = 1; k < n->nout; k++) SAL_ASSERT(n->out[k] < 0); /* linear ops have one output */
        ed.nout = 1;
        ed.out = outs;
        add_in[0] = pre;
        add_in[1] = cname;
        ed.add_op = SAL_OP_Add;
        ed.add_name = aname;
        ed.add_nin = 2;
        ed.add_in = add_in;
        ed.add_out = m->val[n->out[0]].name;
        newc_name[0] = cname;
        e.const_value = &delta;
    }
    if (st == SAL_OK) st = sal_model_rewrite(m, &e, out);
    sal_tensor_free(&bias);
    sal_tensor_free(&delta);
    return st;
}

sal_status sal_model_set_twin(sal_model *f2, const sal_model *f1, const sal_tensor *shift) {
    f2->twin = NULL;
    sal_tensor_free(&f2->twin_shift);
    if (!shift) return SAL_OK;
    if (f2->ninput != 1 || f1->ninput != 1 || shift->dtype != SAL_F32)
        return sal_fail(SAL_ERR_ARG, "a twin needs single-input models and a float32 shift");
    SAL_TRY(sal_tensor_copy(&f2->twin_shift, shift));
    f2->twin = f1;
    return SAL_OK;
}

/* ---- re-drawn weights ---- */

void sal_reinit_params(sal_model *m, int node, bool scaled, double sigma, uint64_t seed) {
    const sal_node *n = &m->node[node];
    sal_model_weights_changed(m);
    for (int k = 0; k < n->nin; k++) {
        int v = n->in[k];
        if (v < 0 || !m->val[v].param) continue;
        sal_tensor *t = &m->val[v].t;
        sal_rng r;
        sal_rng_seed(&r, seed + (uint64_t)k);
        bool bias = t->ndim <= 1;
        double sd = scaled ? (bias ? 0 : sqrt(2.0 / (double)sal_lin_fan_in(n, t))) : sigma;
        float *p = sal_f32(t);
        for (int64_t i = 0, c = sal_tensor_numel(t); i < c; i++) p[i] = (float)(sd * sal_rng_normal(&r));
    }
}

/* ---- the model hash ---- */

static uint64_t fnv_str(uint64_t h, const char *s) { return sal_fnv64(h, s ? s : "", strlen(s ? s : "") + 1); }

static uint64_t fnv_i64(uint64_t h, int64_t v) { return sal_fnv64(h, &v, sizeof v); }

uint64_t sal_model_hash(const sal_model *m) {
    uint64_t h = SAL_FNV_OFFSET;
    for (int i = 0; i < m->ninput; i++) {
        const sal_value *v = &m->val[m->input[i]];
        h = fnv_str(h, v->name);
        h = sal_fnv64(h, v->t.dim, sizeof(int64_t) * (size_t)v->t.ndim);
    }
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        h = fnv_str(fnv_str(h, n->op_type), n->name);
        for (int k = 0; k < n->nin; k++) h = fnv_str(h, val_name(m, n->in[k]));
        for (int k = 0; k < n->nout; k++) h = fnv_str(h, val_name(m, n->out[k]));
        for (int k = 0; k < n->nattr; k++) {
            const sal_attr *a = &n->attr[k];
            h = fnv_i64(fnv_str(h, a->name), a->type);
            h = fnv_i64(sal_fnv64(h, &a->f, sizeof a->f), a->i);
            h = fnv_str(h, a->s);
            if (a->ints) h = sal_fnv64(h, a->ints, sizeof(int64_t) * (size_t)a->n);
            if (a->floats) h = sal_fnv64(h, a->floats, sizeof(float) * (size_t)a->n);
        }
    }
    for (int v = 0; v < m->nval; v++) {
        const sal_value *x = &m->val[v];
        if (x->kind != SAL_VAL_CONST) continue;
        h = fnv_i64(fnv_str(h, x->name), x->t.dtype);
        h = sal_fnv64(h, x->t.dim, sizeof(int64_t) * (size_t)x->t.ndim);
        if (x->t.data) h = sal_fnv64(h, x->t.data, (size_t)sal_tensor_numel(&x->t) * sal_dtype_size(x->t.dtype));
    }
    for (int i = 0; i < m->noutput; i++) h = fnv_str(h, m->val[m->output[i]].name);
    return h;
}
