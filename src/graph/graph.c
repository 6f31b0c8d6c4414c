/* Building and finalizing graphs. */
#include "graph.h"
#include "exec.h"
#include "ops/ops.h"

#define UNRESOLVED ((sal_val_kind)-1) /* referenced before (or without) being defined */

sal_status sal_graph_create(const char *path, sal_model **out) {
    *out = NULL;
    sal_model *g = sal_calloc(1, sizeof *g);
    if (!g) return sal_fail(SAL_ERR_NOMEM, "out of memory creating a model");
    g->path = sal_strdup(path ? path : "<built>");
    g->producer = sal_strdup("saliency");
    if (!g->path || !g->producer) {
        sal_model_free(g);
        return sal_fail(SAL_ERR_NOMEM, "out of memory creating a model");
    }
    g->opset = 13;
    g->ir_version = 7;
    *out = g;
    return SAL_OK;
}

void sal_model_free(sal_model *g) {
    if (!g) return;
    for (int i = 0; i < g->nnode; i++) {
        sal_node *n = &g->node[i];
        if (n->op && n->op->fini)
            n->op->fini(n);
        else
            sal_free(n->p);
        for (int k = 0; k < n->nattr; k++) sal_attr_clear(&n->attr[k]);
        sal_free(n->attr);
        sal_free(n->in);
        sal_free(n->out);
        sal_free(n->name);
        sal_free(n->op_type);
    }
    for (int i = 0; i < g->nval; i++) {
        sal_free(g->val[i].name);
        sal_tensor_free(&g->val[i].t);
    }
    sal_free(g->val);
    sal_free(g->node);
    sal_free(g->input);
    sal_free(g->output);
    sal_strmap_free(&g->names);
    sal_tensor_free(&g->twin_shift);
    sal_free(g->producer);
    sal_free(g->path);
    sal_free(g);
}

int sal_graph_find(const sal_model *g, const char *name) { return sal_strmap_get(&g->names, name); }

int sal_graph_find_node(const sal_model *g, const char *name) {
    for (int i = 0; i < g->nnode; i++)
        if (!strcmp(g->node[i].name, name)) return i;
    return -1;
}

static sal_status grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return SAL_OK;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) ncap *= 2;
    void *p = sal_realloc(*arr, (size_t)ncap * elem);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory growing a graph");
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return SAL_OK;
}

/* Finds a value by name, or creates an unresolved one. */
static sal_status value_ref(sal_model *g, const char *name, int *idx) {
    int v = sal_strmap_get(&g->names, name);
    if (v >= 0) {
        *idx = v;
        return SAL_OK;
    }
    SAL_TRY(grow((void **)&g->val, &g->capval, g->nval + 1, sizeof *g->val));
    sal_value *x = &g->val[g->nval];
    memset(x, 0, sizeof *x);
    if (!(x->name = sal_strdup(name))) return sal_fail(SAL_ERR_NOMEM, "out of memory naming a value");
    x->kind = UNRESOLVED;
    x->producer = -1;
    sal_status st = sal_strmap_put(&g->names, name, g->nval);
    if (st != SAL_OK) { /* the slot is not counted in nval, so nothing else would free its name */
        sal_free(x->name);
        x->name = NULL;
        return st;
    }
    *idx = g->nval++;
    return SAL_OK;
}

/* Defines a value: it must not exist yet, or exist only as an unresolved reference. */
static sal_status value_def(sal_model *g, const char *name, sal_val_kind kind, int *idx) {
    if (!name || !*name) return sal_fail(SAL_ERR_FORMAT, "%s: a value has an empty name", g->path);
    SAL_TRY(value_ref(g, name, idx));
    sal_value *x = &g->val[*idx];
    if (x->kind != UNRESOLVED)
        return sal_fail(SAL_ERR_FORMAT, "%s: value '%s' is defined twice", g->path, name);
    x->kind = kind;
    return SAL_OK;
}

sal_status sal_graph_add_input(sal_model *g, const char *name, sal_dtype dt, int ndim, const int64_t *dim) {
    int v;
    if (ndim < 0 || ndim > SAL_MAX_DIMS)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: input '%s' has rank %d (at most %d supported)", g->path,
                        name, ndim, SAL_MAX_DIMS);
    SAL_TRY(value_def(g, name, SAL_VAL_INPUT, &v));
    int *p = sal_realloc(g->input, (size_t)(g->ninput + 1) * sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory adding an input");
    g->input = p;
    g->input[g->ninput++] = v;
    sal_tensor *t = &g->val[v].t;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->dim[i] = dim[i];
    return SAL_OK;
}

sal_status sal_graph_add_const(sal_model *g, const char *name, sal_tensor *t) {
    int v;
    sal_status st = value_def(g, name, SAL_VAL_CONST, &v);
    if (st != SAL_OK) {
        sal_tensor_free(t);
        return st;
    }
    g->val[v].t = *t;
    memset(t, 0, sizeof *t);
    return SAL_OK;
}

sal_status sal_graph_add_output(sal_model *g, const char *name) {
    int v;
    SAL_TRY(value_ref(g, name, &v));
    int *p = sal_realloc(g->output, (size_t)(g->noutput + 1) * sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory adding an output");
    g->output = p;
    g->output[g->noutput++] = v;
    return SAL_OK;
}

sal_status sal_graph_add_node(sal_model *g, const char *op_type, const char *name, int nin,
                              const char *const *in, int nout, const char *const *out, int nattr,
                              sal_attr *attrs) {
    sal_status st = SAL_OK;
    char made[96];
    if (!name || !*name) {
        snprintf(made, sizeof made, "%s_%d", op_type, g->nnode);
        name = made;
    }
    if ((st = grow((void **)&g->node, &g->capnode, g->nnode + 1, sizeof *g->node)) != SAL_OK) goto fail;
    sal_node *n = &g->node[g->nnode];
    memset(n, 0, sizeof *n);
    n->name = sal_strdup(name);
    n->op_type = sal_strdup(op_type);
    n->in = sal_calloc((size_t)nin, sizeof *n->in);
    n->out = sal_calloc((size_t)nout, sizeof *n->out);
    n->attr = sal_calloc((size_t)nattr, sizeof *n->attr);
    g->nnode++; /* from here on the node is owned by the graph and freed with it */
    if (!n->name || !n->op_type || !n->in || !n->out || !n->attr) {
        st = sal_fail(SAL_ERR_NOMEM, "out of memory adding node '%s'", name);
        goto fail;
    }
    for (int i = 0; i < nattr; i++) {
        n->attr[n->nattr++] = attrs[i];
        memset(&attrs[i], 0, sizeof attrs[i]);
        if (!n->attr[i].name) {
            st = sal_fail(SAL_ERR_NOMEM, "out of memory building attributes of node '%s'", name);
            goto fail;
        }
    }
    nattr = 0;
    for (int i = 0; i < nin; i++) {
        n->in[i] = -1;
        n->nin = i + 1;
        if (in[i] && *in[i] && (st = value_ref(g, in[i], &n->in[i])) != SAL_OK) goto fail;
    }
    for (int i = 0; i < nout; i++) {
        n->out[i] = -1;
        n->nout = i + 1;
        if (!out[i] || !*out[i]) continue;
        if ((st = value_def(g, out[i], SAL_VAL_NODE, &n->out[i])) != SAL_OK) {
            st = sal_wrap(st, "node '%s' (%s)", name, op_type);
            n->out[i] = -1;
            goto fail;
        }
        g->val[n->out[i]].producer = g->nnode - 1;
    }
    return SAL_OK;
fail:
    for (int i = 0; i < nattr; i++) sal_attr_clear(&attrs[i]);
    return st;
}

sal_status sal_graph_add_op(sal_model *g, sal_op_id op, const char *name, int nin, const char *const *in, int nout,
                            const char *const *out, int nattr, sal_attr *attrs) {
    return sal_graph_add_node(g, sal_op_get(op)->name, name, nin, in, nout, out, nattr, attrs);
}

/* ---- finalize ---- */

static sal_status topo_sort(sal_model *g) {
    int nn = g->nnode;
    int *indeg = sal_calloc((size_t)nn + 1, sizeof *indeg);
    int *order = sal_calloc((size_t)nn + 1, sizeof *order);
    sal_node *sorted = sal_calloc((size_t)nn + 1, sizeof *sorted);
    /* consumers of each value, as CSR */
    int *cstart = sal_calloc((size_t)g->nval + 1, sizeof *cstart);
    int nedge = 0;
    for (int i = 0; i < nn; i++) nedge += g->node[i].nin;
    int *cons = sal_calloc((size_t)nedge + 1, sizeof *cons), *fill = sal_calloc((size_t)g->nval + 1, sizeof *fill);
    sal_status st = SAL_OK;
    if (!indeg || !order || !sorted || !cstart || !cons || !fill) {
        st = sal_fail(SAL_ERR_NOMEM, "out of memory sorting the graph of %s", g->path);
        goto done;
    }
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->node[i].nin; k++) {
            int v = g->node[i].in[k];
            if (v < 0) continue;
            if (g->val[v].kind == SAL_VAL_NODE) indeg[i]++;
            cstart[v + 1]++;
        }
    for (int v = 0; v < g->nval; v++) cstart[v + 1] += cstart[v];
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->node[i].nin; k++) {
            int v = g->node[i].in[k];
            if (v >= 0) cons[cstart[v] + fill[v]++] = i;
        }
    int head = 0, tail = 0;
    for (int i = 0; i < nn; i++)
        if (!indeg[i]) order[tail++] = i;
    while (head < tail) {
        sal_node *n = &g->node[order[head++]];
        for (int o = 0; o < n->nout; o++) {
            int v = n->out[o];
            if (v < 0) continue;
            for (int c = cstart[v]; c < cstart[v + 1]; c++)
                if (--indeg[cons[c]] == 0) order[tail++] = cons[c];
        }
    }
    if (tail < nn) {
        for (int i = 0; i < nn; i++)
            if (indeg[i]) {
                st = sal_fail(SAL_ERR_FORMAT, "%s: the graph has a cycle through node '%s' (%s)", g->path,
                              g->node[i].name, g->node[i].op_type);
                break;
            }
        goto done;
    }
    for (int i = 0; i < nn; i++) sorted[i] = g->node[order[i]];
    if (nn) memcpy(g->node, sorted, (size_t)nn * sizeof *sorted); /* g->node is NULL in a graph of constants */
    for (int i = 0; i < nn; i++)
        for (int o = 0; o < g->node[i].nout; o++)
            if (g->node[i].out[o] >= 0) g->val[g->node[i].out[o]].producer = i;
done:
    sal_free(indeg);
    sal_free(order);
    sal_free(sorted);
    sal_free(cstart);
    sal_free(cons);
    sal_free(fill);
    return st;
}

static bool all_const(const sal_model *g, const sal_node *n) {
    for (int k = 0; k < n->nin; k++)
        if (n->in[k] >= 0 && g->val[n->in[k]].kind != SAL_VAL_CONST) return false;
    return true;
}

/* Evaluates nodes whose inputs are all constant (weight transposes, shape arithmetic on constant
 * shapes) once, turning their outputs into constants and dropping the nodes. */
static sal_status fold_constants(sal_model *g) {
    sal_scratch ws = {0};
    sal_status st = SAL_OK;
    int keep = 0;
    for (int i = 0; i < g->nnode; i++) {
        sal_node *n = &g->node[i];
        if (!all_const(g, n)) {
            g->node[keep++] = *n;
            continue;
        }
        sal_tensor *in[16] = {0}, outs[16] = {{0}}, *out[16] = {0};
        if (n->nin > 16 || n->nout > 16) {
            g->node[keep++] = *n;
            continue;
        }
        for (int k = 0; k < n->nin; k++) in[k] = n->in[k] >= 0 ? &g->val[n->in[k]].t : NULL;
        for (int k = 0; k < n->nout; k++) out[k] = n->out[k] >= 0 ? &outs[k] : NULL;
        st = sal_run_node(g, n, in, out, &ws);
        if (st != SAL_OK) {
            for (int k = 0; k < n->nout; k++) sal_tensor_free(&outs[k]);
            /* keep the node so that it is freed with the graph */
            for (int j = i; j < g->nnode; j++) g->node[keep++] = g->node[j];
            break;
        }
        for (int k = 0; k < n->nout; k++) {
            if (n->out[k] < 0) continue;
            sal_value *v = &g->val[n->out[k]];
            v->kind = SAL_VAL_CONST;
            v->producer = -1;
            v->t = outs[k];
        }
        if (n->op->fini)
            n->op->fini(n);
        else
            sal_free(n->p);
        for (int k = 0; k < n->nattr; k++) sal_attr_clear(&n->attr[k]);
        sal_free(n->attr);
        sal_free(n->in);
        sal_free(n->out);
        sal_free(n->name);
        sal_free(n->op_type);
    }
    g->nnode = keep;
    for (int i = 0; i < g->nnode; i++)
        for (int o = 0; o < g->node[i].nout; o++)
            if (g->node[i].out[o] >= 0) g->val[g->node[i].out[o]].producer = i;
    sal_scratch_free(&ws);
    return st;
}

sal_status sal_graph_finalize(sal_model *g) {
    if (g->finalized) return SAL_OK;
    /* every referenced value must be defined */
    for (int i = 0; i < g->nnode; i++) {
        sal_node *n = &g->node[i];
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] >= 0 && g->val[n->in[k]].kind == UNRESOLVED)
                return sal_fail(SAL_ERR_FORMAT, "%s: node '%s' (%s) reads '%s', which no node, input or initializer produces",
                                g->path, n->name, n->op_type, g->val[n->in[k]].name);
    }
    for (int i = 0; i < g->noutput; i++)
        if (g->val[g->output[i]].kind == UNRESOLVED)
            return sal_fail(SAL_ERR_FORMAT, "%s: graph output '%s' is never produced", g->path,
                            g->val[g->output[i]].name);
    if (g->noutput == 0) return sal_fail(SAL_ERR_FORMAT, "%s: the graph has no outputs", g->path);
    SAL_TRY(topo_sort(g));
    for (int i = 0; i < g->nnode; i++) {
        sal_node *n = &g->node[i];
        const sal_op *op = sal_op_lookup(n->op_type);
        if (!op)
            return sal_fail(SAL_ERR_UNSUPPORTED, "%s: node '%s': op %s is not supported", g->path, n->name,
                            n->op_type);
        if (n->nin < op->min_in || n->nin > op->max_in || n->nout < op->min_out || n->nout > op->max_out)
            return sal_fail(SAL_ERR_FORMAT, "%s: node '%s' (%s) has %d inputs and %d outputs; expected %d-%d and %d-%d",
                            g->path, n->name, n->op_type, n->nin, n->nout, op->min_in, op->max_in,
                            op->min_out, op->max_out);
        for (int k = 0; k < op->min_in; k++)
            if (n->in[k] < 0)
                return sal_fail(SAL_ERR_FORMAT, "%s: node '%s' (%s) lacks its required input %d", g->path,
                                n->name, n->op_type, k);
        /* an empty name marks an omitted output, which only optional outputs may be: kernels write
         * their required outputs unconditionally */
        for (int k = 0; k < op->min_out; k++)
            if (n->out[k] < 0)
                return sal_fail(SAL_ERR_FORMAT, "%s: node '%s' (%s) lacks its required output %d", g->path,
                                n->name, n->op_type, k);
        n->op = op;
        if (op->init) {
            sal_status st = op->init(n, g);
            if (st != SAL_OK) return sal_wrap(st, "%s", g->path);
        }
    }
    SAL_TRY(fold_constants(g));
    for (int i = 0; i < g->nnode; i++) {
        const sal_node *n = &g->node[i];
        for (int k = 0; k < n->nin && k < 32; k++) {
            int v = n->in[k];
            if (v >= 0 && (n->op->param_mask >> k & 1) && g->val[v].kind == SAL_VAL_CONST &&
                g->val[v].t.dtype == SAL_F32)
                g->val[v].param = true;
        }
    }
    g->finalized = true;
    return SAL_OK;
}
