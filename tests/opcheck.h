/* Helpers for the op tests of test_ops_struct.c and test_ops_resize.c: one-node graphs under a
 * chosen opset with several outputs, and a finite-difference gradient check over all of them (the
 * multi-output, any-opset form of testutil.h's t_gradcheck, with the same kink rule). */
#ifndef SAL_OPCHECK_H
#define SAL_OPCHECK_H

#include "testutil.h"

#define DIMS(...) (int64_t[]){__VA_ARGS__}
#define BOOLS(...) (bool[]){__VA_ARGS__}
#define VEC(...) ti64(1, DIMS(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
#define FVEC(...) tf32(1, DIMS(sizeof((float[]){__VA_ARGS__}) / sizeof(float)), (float[]){__VA_ARGS__})
static const sal_tensor OMITTED = {.ndim = -1};

static inline sal_tensor tf32(int ndim, const int64_t *dim, const float *v) { return t_tensor_of(ndim, dim, v); }

static inline sal_tensor ti64(int ndim, const int64_t *dim, const int64_t *v) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_I64, ndim, dim) == SAL_OK);
    if (v) memcpy(t.data, v, (size_t)sal_tensor_numel(&t) * sizeof *v);
    return t;
}

static inline bool shape_is(const sal_tensor *t, int ndim, const int64_t *dim) {
    if (t->ndim != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (t->dim[i] != dim[i]) return false;
    return true;
}

static inline double max_diff(const sal_tensor *a, const sal_tensor *b) {
    if (a->dtype != b->dtype || !sal_tensor_same_shape(a, b)) return INFINITY;
    double w = 0;
    for (int64_t i = 0, n = sal_tensor_numel(a); i < n; i++)
        w = fmax(w, a->dtype == SAL_I64 ? fabs((double)((int64_t *)a->data)[i] - (double)((int64_t *)b->data)[i])
                                        : fabs((double)sal_f32(a)[i] - sal_f32(b)[i]));
    return w;
}

/* One node of `nout` outputs under `opset`. cst[i]: input i is a constant (NULL: int64 inputs are);
 * ndim -1 omits an input. The graphs built take copies of attr; oc_run and oc_gradcheck free it. */
typedef struct {
    int64_t opset;
    const char *op;
    int nin, nout;
    const sal_tensor *in;
    const bool *cst;
    int nattr;
    sal_attr *attr;
} oc_node;

/* A deep copy of a (INT, FLOAT, STRING, INTS or FLOATS), for graphs that take theirs over. */
static inline sal_attr oc_attr_dup(const sal_attr *a) {
    switch (a->type) {
    case SAL_ATTR_INT: return sal_attr_make_int(a->name, a->i);
    case SAL_ATTR_FLOAT: return sal_attr_make_float(a->name, a->f);
    case SAL_ATTR_STRING: return sal_attr_make_string(a->name, a->s);
    case SAL_ATTR_INTS: return sal_attr_make_ints(a->name, a->n, a->ints);
    case SAL_ATTR_FLOATS: {
        sal_attr b = {.name = sal_strdup(a->name), .type = SAL_ATTR_FLOATS, .n = a->n};
        b.floats = sal_malloc(sizeof(float) * (size_t)(a->n ? a->n : 1));
        SAL_ASSERT(b.name && b.floats);
        memcpy(b.floats, a->floats, sizeof(float) * (size_t)a->n);
        return b;
    }
    default: SAL_ASSERT(!"attribute type not handled by oc_attr_dup"); return (sal_attr){0};
    }
}

static inline void oc_attr_free(oc_node nd) {
    for (int i = 0; i < nd.nattr; i++) sal_attr_clear(&nd.attr[i]);
}

/* Builds the node's graph (outputs y0, y1, ...) into *out; on failure *out is NULL, nothing is fed.
 * tap: input 0 also feeds an Identity whose output is the last graph output. */
static inline sal_status oc_graph(oc_node nd, bool tap, char names[][16], sal_tensor *feeds, int *nfeed,
                                  sal_model **out) {
    sal_model *g = NULL;
    const char *inn[16], *outn[16];
    static char on[16][16];
    SAL_ASSERT(nd.nin <= 16 && nd.nout <= 16 && sal_graph_create("<opcheck>", &g) == SAL_OK);
    g->opset = nd.opset ? nd.opset : 13;
    *nfeed = 0;
    for (int i = 0; i < nd.nin; i++) {
        inn[i] = "";
        if (nd.in[i].ndim < 0) continue;
        bool c = nd.cst ? nd.cst[i] : nd.in[i].dtype == SAL_I64;
        snprintf(names[i], 16, "%s%d", c ? "c" : "x", i);
        inn[i] = names[i];
        if (c) {
            sal_tensor t = {0};
            SAL_ASSERT(sal_tensor_copy(&t, &nd.in[i]) == SAL_OK);
            SAL_ASSERT(sal_graph_add_const(g, names[i], &t) == SAL_OK);
        } else {
            SAL_ASSERT(sal_graph_add_input(g, names[i], nd.in[i].dtype, nd.in[i].ndim, nd.in[i].dim) == SAL_OK);
            SAL_ASSERT(sal_tensor_copy(&feeds[(*nfeed)++], &nd.in[i]) == SAL_OK);
        }
    }
    for (int k = 0; k < nd.nout; k++) {
        snprintf(on[k], sizeof on[k], "y%d", k);
        outn[k] = on[k];
    }
    sal_attr at[16];
    SAL_ASSERT(nd.nattr <= 16);
    for (int i = 0; i < nd.nattr; i++) at[i] = oc_attr_dup(&nd.attr[i]);
    sal_status st = sal_graph_add_node(g, nd.op, "n", nd.nin, inn, nd.nout, outn, nd.nattr, at);
    for (int k = 0; k < nd.nout && st == SAL_OK; k++) st = sal_graph_add_output(g, on[k]);
    if (tap && st == SAL_OK) st = sal_graph_add_node(g, "Identity", "tap", 1, inn, 1, (const char *[]){"yt"}, 0, NULL);
    if (tap && st == SAL_OK) st = sal_graph_add_output(g, "yt");
    if (st == SAL_OK) st = sal_graph_finalize(g);
    if (st != SAL_OK) {
        sal_model_free(g);
        for (int i = 0; i < *nfeed; i++) sal_tensor_free(&feeds[i]);
        *nfeed = 0;
        g = NULL;
    }
    *out = g;
    return st;
}

/* Runs the node: outputs into y[0..nout); with seeds (one per output, NULL entries for none), the
 * gradient of sum_k seed_k * y_k w.r.t. input `wrt` (a graph input) into *dx. Keeps nd.attr. */
static inline sal_status oc_run_keep(oc_node nd, bool tap, sal_tensor *y, const sal_tensor *const *seeds, int wrt,
                                     sal_tensor *dx) {
    char names[16][16];
    sal_tensor feeds[16] = {{0}};
    int nf = 0;
    sal_model *g = NULL;
    sal_status st = oc_graph(nd, tap, names, feeds, &nf, &g);
    if (st != SAL_OK) return st;
    sal_session *s = NULL;
    st = sal_session_new(g, &s);
    if (st == SAL_OK) st = sal_exec_forward(s, feeds);
    for (int k = 0; k < nd.nout && st == SAL_OK; k++) st = sal_tensor_copy(&y[k], &s->act[g->output[k]]);
    if (st == SAL_OK && seeds) {
        int outs[17], ns = 0;
        sal_tensor sd[17];
        for (int k = 0; k < nd.nout + tap; k++)
            if (seeds[k]) outs[ns] = g->output[k], sd[ns++] = *seeds[k];
        bool *w = sal_calloc((size_t)g->nval, sizeof *w);
        int v = sal_graph_find(g, names[wrt]);
        w[v] = true;
        sal_backward_opts bo = {.wrt = w};
        st = sal_exec_backward(s, ns, outs, sd, &bo);
        if (st == SAL_OK) st = sal_tensor_copy(dx, &s->grad[v]);
        sal_free(w);
    }
    for (int i = 0; i < nf; i++) sal_tensor_free(&feeds[i]);
    sal_session_free(s);
    sal_model_free(g);
    return st;
}

/* oc_run_keep, then frees nd.attr */
static inline sal_status oc_run(oc_node nd, sal_tensor *y, const sal_tensor *const *seeds, int wrt, sal_tensor *dx) {
    sal_status st = oc_run_keep(nd, false, y, seeds, wrt, dx);
    oc_attr_free(nd);
    return st;
}

/* Whether the op's backward adds to the gradient its input already holds: with input 0 read by
 * a second node as well (an Identity seeded with t), the gradient must be the op's plus t. */
static inline void oc_accumulates(oc_node nd, uint64_t seed) {
    sal_tensor y[17] = {{0}}, d1 = {0}, d2 = {0}, r[17] = {{0}};
    const sal_tensor *sd[17];
    sal_rng rng;
    sal_rng_seed(&rng, seed);
    sal_status st = oc_run_keep(nd, false, y, NULL, 0, NULL);
    for (int k = 0; k < nd.nout && st == SAL_OK; k++) {
        r[k] = t_rand(&rng, y[k].ndim, y[k].dim, 1.0f);
        sd[k] = &r[k];
    }
    r[nd.nout] = t_rand(&rng, nd.in[0].ndim, nd.in[0].dim, 1.0f);
    sd[nd.nout] = &r[nd.nout];
    if (st == SAL_OK) st = oc_run_keep(nd, false, y, sd, 0, &d1);
    if (st == SAL_OK) st = oc_run_keep(nd, true, y, sd, 0, &d2);
    double worst = st == SAL_OK ? 0 : INFINITY;
    for (int64_t i = 0, n = st == SAL_OK ? sal_tensor_numel(&d1) : 0; i < n; i++)
        worst = fmax(worst, fabs((double)sal_f32(&d2)[i] - sal_f32(&d1)[i] - sal_f32(&r[nd.nout])[i]));
    CHECK(worst < 1e-4, "%s adds to an input's gradient (worst %g; %s)", nd.op, worst, st == SAL_OK ? "ok" : sal_last_error());
    for (int k = 0; k <= nd.nout; k++) sal_tensor_free(&y[k]), sal_tensor_free(&r[k]);
    sal_tensor_free(&d1);
    sal_tensor_free(&d2);
    oc_attr_free(nd);
}

/* Finite-difference check of every float input (inputs and constants alike) against the gradient
 * of L = sum_k r_k * y_k with random r_k; like t_gradcheck, an element whose differences at h and
 * h/2 disagree sits on a kink and is skipped. Frees nd.in and nd.attr. Returns the number of mismatches. */
static inline int oc_gradcheck(oc_node nd, uint64_t seed) {
    char names[16][16];
    sal_tensor feeds[16] = {{0}};
    int nf = 0, bad = 0, checked = 0, kinks = 0;
    const double h = 1e-2, rtol = 2e-2, atol = 2e-3;
    sal_model *g = NULL;
    sal_session *s = NULL;
    sal_tensor r[16] = {{0}};
    if (oc_graph(nd, false, names, feeds, &nf, &g) != SAL_OK || sal_session_new(g, &s) != SAL_OK || sal_exec_forward(s, feeds) != SAL_OK) {
        fprintf(stderr, "FAIL gradcheck %s: %s\n", nd.op, sal_last_error());
        bad = 1;
        goto done;
    }
    sal_rng rng;
    sal_rng_seed(&rng, seed);
    int outs[16];
    for (int k = 0; k < nd.nout; k++) {
        outs[k] = g->output[k];
        r[k] = t_rand(&rng, s->act[outs[k]].ndim, s->act[outs[k]].dim, 1.0f);
    }
    bool *wrt = sal_calloc((size_t)g->nval, sizeof *wrt);
    for (int i = 0; i < nd.nin; i++)
        if (nd.in[i].ndim >= 0 && nd.in[i].dtype == SAL_F32) wrt[sal_graph_find(g, names[i])] = true;
    sal_backward_opts bo = {.wrt = wrt};
    SAL_ASSERT(sal_exec_backward(s, nd.nout, outs, r, &bo) == SAL_OK);
    for (int i = 0, fi = 0; i < nd.nin; i++) {
        if (nd.in[i].ndim < 0) continue;
        int v = sal_graph_find(g, names[i]);
        bool c = names[i][0] == 'c';
        sal_tensor *x = c ? &g->val[v].t : &feeds[fi];
        if (!c) fi++;
        if (x->dtype != SAL_F32) continue;
        sal_tensor an = {0};
        SAL_ASSERT(sal_tensor_copy(&an, &s->grad[v]) == SAL_OK);
        int64_t n = sal_tensor_numel(x);
        for (int64_t k = 0; k < 48 && k < n; k++) {
            int64_t e = n <= 48 ? k : (int64_t)(sal_rng_u64(&rng) % (uint64_t)n);
            float *p = sal_f32(x), x0 = p[e];
            double fd[2];
            for (int q = 0; q < 2; q++) {
                double hh = h / (1 << q), L[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    p[e] = (float)(x0 + (sgn ? -hh : hh));
                    SAL_ASSERT(sal_exec_forward(s, feeds) == SAL_OK);
                    L[sgn] = 0;
                    for (int o = 0; o < nd.nout; o++) L[sgn] += t_loss(s, outs[o], sal_f32(&r[o]));
                }
                p[e] = x0;
                fd[q] = (L[0] - L[1]) / (2 * hh);
            }
            double a = sal_f32(&an)[e];
            if (fabs(fd[0] - fd[1]) > atol + rtol * fabs(fd[1])) {
                kinks++;
                continue;
            }
            checked++;
            if (fabs(a - fd[1]) > atol + rtol * fmax(fabs(a), fabs(fd[1])) && bad++ < 5)
                fprintf(stderr, "FAIL gradcheck %s: d/d %s[%lld]: analytic %.6g, finite difference %.6g\n", nd.op,
                        names[i], (long long)e, a, fd[1]);
        }
        sal_tensor_free(&an);
    }
    if (kinks > checked) {
        fprintf(stderr, "FAIL gradcheck %s: %d of %d elements sat on kinks\n", nd.op, kinks, kinks + checked);
        bad++;
    }
    sal_free(wrt);
done:
    for (int k = 0; k < nd.nout; k++) sal_tensor_free(&r[k]);
    for (int i = 0; i < nf; i++) sal_tensor_free(&feeds[i]);
    for (int i = 0; i < nd.nin; i++) sal_tensor_free((sal_tensor *)&nd.in[i]);
    oc_attr_free(nd);
    sal_session_free(s);
    sal_model_free(g);
    CHECK(bad == 0, "gradient check of %s: %d mismatches (%d elements checked, %d on kinks)", nd.op, bad, checked, kinks);
    return bad;
}

#endif
