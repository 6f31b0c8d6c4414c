/* Minimal test harness: CHECK macros that count and report, and a finite-difference gradient
 * check of one op. Every test program ends with `return t_done("name");`, which prints
 * "name: N passed, M failed" and returns non-zero on any failure. */
#ifndef SAL_TESTUTIL_H
#define SAL_TESTUTIL_H

#include "graph/exec.h"
#include <math.h>

static int t_pass, t_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            t_pass++;                                                                              \
        } else {                                                                                   \
            t_fail++;                                                                              \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        sal_status s_ = (expr);                                                                    \
        CHECK(s_ == SAL_OK, "%s -> %s: %s", #expr, sal_status_string(s_), sal_last_error());     \
    } while (0)

/* Expects failure with a given status and a message containing `needle`. */
#define CHECK_FAILS(expr, status, needle)                                                          \
    do {                                                                                           \
        sal_status s_ = (expr);                                                                    \
        CHECK(s_ == (status) && strstr(sal_last_error(), (needle)),                                \
              "%s -> %s (%s), wanted %s with '%s'", #expr, sal_status_string(s_),                 \
              sal_last_error(), sal_status_string(status), (needle));                              \
    } while (0)

static inline int t_done(const char *name) {
    printf("%s: %d passed, %d failed\n", name, t_pass, t_fail);
    return t_fail ? 1 : 0;
}

/* A float tensor filled from N(0, scale^2) (or U[lo, hi) when lo < hi). */
static inline sal_tensor t_rand(sal_rng *r, int ndim, const int64_t *dim, float scale) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_F32, ndim, dim) == SAL_OK);
    float *p = sal_f32(&t);
    for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++) p[i] = scale * (float)sal_rng_normal(r);
    return t;
}

/* ---- gradient check of one op ----
 * Builds a one-node graph: inputs with is_const[i] become constants (parameters), the others graph
 * inputs; nin_missing inputs may be given as tensors with ndim = -1 (omitted optional input).
 * Loss L = sum(r * y0) with fixed random r; every float input's gradient (input or parameter) is
 * compared with central differences in double. An element where the differences with step h and h/2
 * disagree sits on a kink (ReLU at 0, max at ties) and is skipped, not counted as passing.
 * Checks at most `maxel` elements per input. Returns the number of mismatches. */
typedef struct {
    const char *op;
    int nin;
    sal_tensor *in;      /* nin tensors (copied); dtype I64 ones are constant, never perturbed */
    const bool *is_const;
    int nattr;
    sal_attr *attr;      /* consumed */
    double rtol, atol, h;
    int maxel;
    uint64_t seed;
} t_gradcheck_spec;

static double t_loss(sal_session *s, int out, const float *r) {
    const sal_tensor *y = &s->act[out];
    double L = 0;
    for (int64_t i = 0, n = sal_tensor_numel(y); i < n; i++) L += (double)r[i] * sal_f32(y)[i];
    return L;
}

static inline int t_gradcheck(t_gradcheck_spec sp) {
    sal_model *g = NULL;
    sal_session *s = NULL;
    char names[16][16];
    const char *inn[16];
    sal_tensor feeds[16] = {{0}};
    int nfeed = 0, bad = 0, checked = 0, kinks = 0;
    double h = sp.h > 0 ? sp.h : 1e-2, rtol = sp.rtol > 0 ? sp.rtol : 2e-2, atol = sp.atol > 0 ? sp.atol : 2e-3;
    int maxel = sp.maxel > 0 ? sp.maxel : 64;
    SAL_ASSERT(sal_graph_create("<gradcheck>", &g) == SAL_OK);
    for (int i = 0; i < sp.nin; i++) {
        inn[i] = "";
        if (sp.in[i].ndim < 0) continue;
        snprintf(names[i], sizeof names[i], "%s%d", sp.is_const[i] ? "c" : "x", i);
        inn[i] = names[i];
        if (sp.is_const[i]) {
            sal_tensor t = {0};
            SAL_ASSERT(sal_tensor_copy(&t, &sp.in[i]) == SAL_OK);
            SAL_ASSERT(sal_graph_add_const(g, names[i], &t) == SAL_OK);
        } else {
            SAL_ASSERT(sal_graph_add_input(g, names[i], sp.in[i].dtype, sp.in[i].ndim, sp.in[i].dim) == SAL_OK);
            SAL_ASSERT(sal_tensor_copy(&feeds[nfeed++], &sp.in[i]) == SAL_OK);
        }
    }
    const char *outn[1] = {"y"};
    sal_status st = sal_graph_add_node(g, sp.op, "n", sp.nin, inn, 1, outn, sp.nattr, sp.attr);
    if (st == SAL_OK) st = sal_graph_add_output(g, "y");
    if (st == SAL_OK) st = sal_graph_finalize(g);
    if (st == SAL_OK) st = sal_session_new(g, &s);
    if (st == SAL_OK) st = sal_exec_forward(s, feeds);
    if (st != SAL_OK) {
        fprintf(stderr, "FAIL gradcheck %s: %s\n", sp.op, sal_last_error());
        bad = 1;
        goto done;
    }
    int out = sal_graph_find(g, "y");
    sal_rng rng;
    sal_rng_seed(&rng, sp.seed + 1);
    sal_tensor r = t_rand(&rng, s->act[out].ndim, s->act[out].dim, 1.0f);
    bool *wrt = sal_calloc((size_t)g->nval, sizeof *wrt);
    for (int i = 0; i < sp.nin; i++)
        if (sp.in[i].ndim >= 0 && sp.in[i].dtype == SAL_F32) wrt[sal_graph_find(g, names[i])] = true;
    sal_backward_opts bo = {.wrt = wrt};
    SAL_ASSERT(sal_exec_backward(s, 1, &out, &r, &bo) == SAL_OK);
    for (int i = 0, fi = 0; i < sp.nin; i++) {
        if (sp.in[i].ndim < 0) continue;
        int v = sal_graph_find(g, names[i]);
        sal_tensor *x = sp.is_const[i] ? &g->val[v].t : &feeds[fi];
        if (!sp.is_const[i]) fi++;
        if (x->dtype != SAL_F32) continue;
        sal_tensor an = {0};
        SAL_ASSERT(sal_tensor_copy(&an, &s->grad[v]) == SAL_OK);
        int64_t n = sal_tensor_numel(x);
        for (int k = 0; k < maxel && k < n; k++) {
            int64_t e = n <= maxel ? k : (int64_t)(sal_rng_u64(&rng) % (uint64_t)n);
            float *p = sal_f32(x), x0 = p[e];
            double fd[2];
            for (int q = 0; q < 2; q++) {
                double hh = h / (1 << q);
                p[e] = (float)(x0 + hh);
                SAL_ASSERT(sal_exec_forward(s, feeds) == SAL_OK);
                double lp = t_loss(s, out, sal_f32(&r));
                p[e] = (float)(x0 - hh);
                SAL_ASSERT(sal_exec_forward(s, feeds) == SAL_OK);
                double lm = t_loss(s, out, sal_f32(&r));
                p[e] = x0;
                fd[q] = (lp - lm) / (2 * hh);
            }
            double a = sal_f32(&an)[e];
            if (fabs(fd[0] - fd[1]) > atol + rtol * fabs(fd[1])) {
                kinks++;
                continue;
            }
            checked++;
            if (fabs(a - fd[1]) > atol + rtol * fmax(fabs(a), fabs(fd[1]))) {
                if (bad++ < 5)
                    fprintf(stderr, "FAIL gradcheck %s: d/d %s[%lld]: analytic %.6g, finite difference %.6g\n",
                            sp.op, names[i], (long long)e, a, fd[1]);
            }
        }
        sal_tensor_free(&an);
    }
    if (kinks > checked) {
        fprintf(stderr, "FAIL gradcheck %s: %d of %d elements sat on kinks\n", sp.op, kinks, kinks + checked);
        bad++;
    }
    sal_tensor_free(&r);
    sal_free(wrt);
done:
    for (int i = 0; i < nfeed; i++) sal_tensor_free(&feeds[i]);
    sal_session_free(s);
    sal_model_free(g);
    CHECK(bad == 0, "gradient check of %s: %d mismatches (%d elements checked, %d on kinks)", sp.op, bad,
          checked, kinks);
    return bad;
}

/* ---- a scratch folder per test program ---- */

/* Its path (empty until t_scratch_make). */
static inline char *t_scratch(void) {
    static char dir[256];
    return dir;
}

/* Creates /tmp/PREFIX_XXXXXX for this run. */
static inline void t_scratch_make(const char *prefix) {
    snprintf(t_scratch(), 256, "/tmp/%s_XXXXXX", prefix);
    SAL_ASSERT(mkdtemp(t_scratch()));
}

/* A path inside it; the last 8 results stay valid. */
static inline const char *t_tmp(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", t_scratch(), name);
    return buf[k];
}

/* Removes it with everything in it (read-only files too). */
static inline void t_scratch_remove(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", t_scratch(), t_scratch());
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", t_scratch());
}

/* ---- building test graphs (inline: not every test uses them) ---- */

/* A float tensor of the given shape holding v (zeros when v is NULL). */
static inline sal_tensor t_tensor_of(int ndim, const int64_t *dim, const float *v) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_F32, ndim, dim) == SAL_OK);
    if (v) memcpy(t.data, v, (size_t)sal_tensor_numel(&t) * sizeof(float));
    return t;
}

/* A constant of g named name. */
static inline void t_const(sal_model *g, const char *name, int ndim, const int64_t *dim, const float *v) {
    sal_tensor t = t_tensor_of(ndim, dim, v);
    SAL_ASSERT(sal_graph_add_const(g, name, &t) == SAL_OK);
}

/* A node of one output. */
static inline void t_node(sal_model *g, const char *op, const char *name, int nin, const char *const *in,
                          const char *out, int nattr, sal_attr *at) {
    sal_status s = sal_graph_add_node(g, op, name, nin, in, 1, (const char *[]){out}, nattr, at);
    if (s != SAL_OK) fprintf(stderr, "%s\n", sal_last_error());
    SAL_ASSERT(s == SAL_OK);
}

/* Declares out as g's output and finalizes g. */
static inline sal_model *t_finish(sal_model *g, const char *out) {
    SAL_ASSERT(sal_graph_add_output(g, out) == SAL_OK);
    sal_status s = sal_graph_finalize(g);
    if (s != SAL_OK) fprintf(stderr, "finalizing a test model: %s\n", sal_last_error());
    SAL_ASSERT(s == SAL_OK);
    return g;
}

/* n draws of N(0, scale^2). */
static inline void t_randv(sal_rng *r, float *v, int n, float scale) {
    for (int i = 0; i < n; i++) v[i] = scale * (float)sal_rng_normal(r);
}

#endif
