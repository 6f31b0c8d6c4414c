/* Canonization for LRP and the pattern methods: a BatchNormalization right after a Conv or Gemm is
 * folded into that node, giving one linear node with the same function (Guillemot et al. 2020;
 * Motzkus et al. 2022 on why rules need it: z+, gamma or alpha-beta applied to the linear node and
 * then to the affine normalization are not the rule applied to their composition). The result is a
 * new model built from a copy of the graph; the original is untouched. */
#include "lrp.h"
#include <math.h>

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
    if (!ok) {
        sal_attr_clear(o);
        return sal_fail(SAL_ERR_NOMEM, "out of memory copying attribute '%s'", a->name);
    }
    return SAL_OK;
}

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
        if (!(var[c] + eps > 0)) return sal_node_fail(bn, SAL_ERR_NUMERIC, "variance + epsilon of channel %lld is not positive", (long long)c);
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

/* A value name in neither the original m nor the copy g, from a base. */
static void fresh_name(const sal_model *m, const sal_model *g, const char *base, const char *suffix, char *buf,
                       size_t n) {
    snprintf(buf, n, "%s%s", base, suffix);
    for (int k = 2; sal_graph_find(m, buf) >= 0 || sal_graph_find(g, buf) >= 0; k++)
        snprintf(buf, n, "%s%s%d", base, suffix, k);
}

sal_status sal_canonize(const sal_model *m, sal_model **out, int *nfolded) {
    *out = NULL;
    *nfolded = 0;
    int *into = sal_malloc(sizeof(int) * (size_t)(m->nnode + 1)); /* BN node -> linear node, or -1 */
    int *from = sal_malloc(sizeof(int) * (size_t)(m->nnode + 1)); /* linear node -> its BN, or -1 */
    bool *used = sal_calloc((size_t)m->nval + 1, sizeof *used);
    if (!into || !from || !used) {
        sal_free(into);
        sal_free(from);
        sal_free(used);
        return sal_fail(SAL_ERR_NOMEM, "out of memory canonizing %s", m->path);
    }
    int nf = 0;
    for (int i = 0; i < m->nnode; i++) into[i] = from[i] = -1;
    for (int i = 0; i < m->nnode; i++) {
        if (!sal_node_is(&m->node[i], SAL_OP_BatchNormalization)) continue;
        int li = fold_target(m, i);
        if (li < 0) continue;
        into[i] = li;
        from[li] = i;
        nf++;
    }
    sal_model *g = NULL;
    sal_status st = SAL_OK;
    if (nf == 0) goto done;
    /* the values the kept nodes and the outputs read */
    for (int i = 0; i < m->nnode; i++) {
        if (into[i] >= 0) continue;
        const sal_node *n = &m->node[i];
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0 && !(from[i] >= 0 && j > 0)) used[n->in[j]] = true;
    }
    for (int i = 0; i < m->noutput; i++) used[m->output[i]] = true;
    if ((st = sal_graph_create(m->path, &g)) != SAL_OK) goto done;
    g->opset = m->opset;
    g->ir_version = m->ir_version;
    for (int i = 0; i < m->ninput && st == SAL_OK; i++) {
        const sal_value *v = &m->val[m->input[i]];
        st = sal_graph_add_input(g, v->name, v->t.dtype, v->t.ndim, v->t.dim);
    }
    for (int v = 0; v < m->nval && st == SAL_OK; v++) {
        if (m->val[v].kind != SAL_VAL_CONST || !used[v]) continue;
        sal_tensor t = {0};
        st = sal_tensor_copy(&t, &m->val[v].t);
        if (st == SAL_OK) st = sal_graph_add_const(g, m->val[v].name, &t);
    }
    for (int i = 0; i < m->nnode && st == SAL_OK; i++) {
        const sal_node *n = &m->node[i];
        if (into[i] >= 0) continue; /* folded into its linear node */
        sal_attr at[64];
        int na = 0;
        if (n->nattr > 64) {
            st = sal_node_fail(n, SAL_ERR_UNSUPPORTED, "too many attributes to copy");
            break;
        }
        for (int k = 0; k < n->nattr && st == SAL_OK; k++) {
            st = attr_copy(&n->attr[k], &at[na]);
            if (st != SAL_OK) break;
            if (from[i] >= 0 && !strcmp(at[na].name, "beta")) at[na].f = 1.0f; /* the folded bias is whole */
            na++;
        }
        if (st != SAL_OK) {
            for (int k = 0; k < na; k++) sal_attr_clear(&at[k]);
            break;
        }
        const char *in[16], *outn[16];
        char wname[256], bname[256];
        int nin = n->nin < 16 ? n->nin : 16, nout = n->nout < 16 ? n->nout : 16;
        for (int j = 0; j < nin; j++) in[j] = n->in[j] >= 0 ? m->val[n->in[j]].name : "";
        for (int j = 0; j < nout; j++) outn[j] = n->out[j] >= 0 ? m->val[n->out[j]].name : "";
        if (from[i] >= 0) {
            const sal_node *bn = &m->node[from[i]];
            sal_tensor W2 = {0}, B2 = {0};
            st = fold(m, n, bn, &W2, &B2);
            fresh_name(m, g, n->name, ".folded_weight", wname, sizeof wname);
            if (st == SAL_OK) st = sal_graph_add_const(g, wname, &W2);
            fresh_name(m, g, n->name, ".folded_bias", bname, sizeof bname);
            if (st == SAL_OK) st = sal_graph_add_const(g, bname, &B2);
            sal_tensor_free(&W2);
            sal_tensor_free(&B2);
            in[1] = wname;
            in[2] = bname;
            nin = 3;
            outn[0] = m->val[bn->out[0]].name; /* the folded node gives what the normalization gave */
            nout = 1;
        }
        if (st == SAL_OK) st = sal_graph_add_node(g, n->op_type, n->name, nin, in, nout, outn, na, at);
        else
            for (int k = 0; k < na; k++) sal_attr_clear(&at[k]);
    }
    for (int i = 0; i < m->noutput && st == SAL_OK; i++) st = sal_graph_add_output(g, m->val[m->output[i]].name);
    if (st == SAL_OK) st = sal_graph_finalize(g);
    if (st != SAL_OK) {
        sal_model_free(g);
        g = NULL;
        st = sal_wrap(st, "canonizing %s (folding BatchNormalization)", m->path);
    }
done:
    sal_free(into);
    sal_free(from);
    sal_free(used);
    if (st == SAL_OK) {
        *out = g;
        *nfolded = nf;
    }
    return st;
}
