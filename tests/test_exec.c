/* The forward tape and backward walker (src/graph/exec.c) on small graphs built here: nodes off
 * every gradient path are skipped, per-node rule overrides, several seeds, gradient sums at fan-out,
 * gradients of parameters, and buffers reused across calls. References are closed forms computed
 * in double and central finite differences in double. */
#include "ops/conv_wino.h"
#include "testutil.h"
#include <stdarg.h>

#define DIMS(...) (int64_t[]){__VA_ARGS__}
#define NAMES(...) (const char *[]){__VA_ARGS__}

static sal_rng R;

/* max |t - ref| over n elements; infinite when t is not float32 with n elements or holds a NaN */
static double maxdiff(const sal_tensor *t, const double *ref, int64_t n) {
    if (t->dtype != SAL_F32 || sal_tensor_numel(t) != n) return INFINITY;
    double w = 0;
    for (int64_t i = 0; i < n; i++) w = isnan(sal_f32(t)[i]) ? INFINITY : fmax(w, fabs(sal_f32(t)[i] - ref[i]));
    return w;
}

/* The wrt mask of the named values (NULL-terminated) in w[64]. */
static const bool *wrt(bool *w, const sal_model *g, ...) {
    SAL_ASSERT(g->nval <= 64);
    memset(w, 0, 64 * sizeof *w);
    va_list ap;
    va_start(ap, g);
    for (const char *name; (name = va_arg(ap, const char *));) {
        int v = sal_graph_find(g, name);
        SAL_ASSERT(v >= 0);
        w[v] = true;
    }
    va_end(ap);
    return w;
}

static const sal_tensor *grad(const sal_session *s, const char *name) {
    return &s->grad[sal_graph_find(s->m, name)];
}

/* ---- rules ---- */

static int calls[16]; /* rule calls per node index */
static void *seen_user;

static void count(const sal_opctx *c, void *user) {
    calls[c->n - c->g->node]++;
    seen_user = user;
}

/* The op's own gradient, counted. */
static sal_status count_rule(sal_opctx *c, void *user) {
    count(c, user);
    return c->n->op->backward(c);
}

/* din += 2 dout in place of the ReLU mask. */
static sal_status twice_rule(sal_opctx *c, void *user) {
    count(c, user);
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    float *dx = sal_f32(c->din[0]);
    const float *dy = sal_f32(c->dout[0]);
    for (int64_t i = 0, n = sal_tensor_numel(c->dout[0]); i < n; i++) dx[i] += 2 * dy[i];
    return SAL_OK;
}

static sal_status fail_rule(sal_opctx *c, void *user) {
    (void)user;
    return sal_node_fail(c->n, SAL_ERR_NUMERIC, "refused by the test rule");
}

static int node(const sal_model *g, const char *name) {
    int i = sal_graph_find_node(g, name);
    SAL_ASSERT(i >= 0 && i < 16);
    return i;
}

/* ---- finite differences ---- */

/* L = sum_i <seeds[i], value sv[i]> after a forward pass on feeds, in double. */
static double loss(sal_session *s, const sal_tensor *feeds, int ns, const int *sv, const sal_tensor *seeds) {
    SAL_ASSERT(sal_exec_forward(s, feeds) == SAL_OK);
    double L = 0;
    for (int i = 0; i < ns; i++)
        for (int64_t j = 0, n = sal_tensor_numel(&seeds[i]); j < n; j++)
            L += (double)sal_f32(&seeds[i])[j] * sal_f32(&s->act[sv[i]])[j];
    return L;
}

/* Mismatches between the analytic gradient dp of the floats at p (a feed's or a constant's data)
 * and central differences of loss, at up to 24 elements spread over p. Leaves s forwarded at p. */
static int fd_check(sal_session *s, const sal_tensor *feeds, float *p, const sal_tensor *dp, int ns, const int *sv,
                    const sal_tensor *seeds, const char *what) {
    int64_t n = sal_tensor_numel(dp);
    int bad = 0;
    for (int64_t k = 0; k < 24 && k < n; k++) {
        int64_t e = n <= 24 ? k : k * n / 24;
        float p0 = p[e], hi = p0 + 1e-2f, lo = p0 - 1e-2f;
        p[e] = hi;
        double lp = loss(s, feeds, ns, sv, seeds);
        p[e] = lo;
        double lm = loss(s, feeds, ns, sv, seeds);
        p[e] = p0;
        double fd = (lp - lm) / ((double)hi - lo), a = sal_f32(dp)[e];
        if (fabs(a - fd) > 2e-3 + 1e-2 * fabs(fd) && bad++ < 3)
            fprintf(stderr, "d/d %s[%lld]: analytic %.6g, finite difference %.6g\n", what, (long long)e, a, fd);
    }
    SAL_ASSERT(sal_exec_forward(s, feeds) == SAL_OK);
    return bad;
}

/* ---- a ReLU net with an extra input and a side output ---- */

enum { N = 2, D = 3, H = 4, K = 2 };
static float X[N * D], Z[N * K], W[D * H], V[H * K];

/* out = Relu(x W) V + z*z. Two side branches that out does not read: t = Tanh(x), a second
 * output, and u = x / c, infinite where c is 0. */
static sal_model *net(void) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<net>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, DIMS(-1, D)) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "z", SAL_F32, 2, DIMS(-1, K)) == SAL_OK);
    t_const(g, "W", 2, DIMS(D, H), W);
    t_const(g, "V", 2, DIMS(H, K), V);
    t_node(g, "MatMul", "mm1", 2, NAMES("x", "W"), "h", 0, NULL);
    t_node(g, "Relu", "relu", 1, NAMES("h"), "a", 0, NULL);
    t_node(g, "MatMul", "mm2", 2, NAMES("a", "V"), "y", 0, NULL);
    t_node(g, "Mul", "zsq", 2, NAMES("z", "z"), "zz", 0, NULL);
    t_node(g, "Add", "add", 2, NAMES("y", "zz"), "out", 0, NULL);
    t_node(g, "Tanh", "side", 1, NAMES("x"), "t", 0, NULL);
    t_const(g, "c", 1, DIMS(D), (float[]){1, 0, 2});
    t_node(g, "Div", "div", 2, NAMES("x", "c"), "u", 0, NULL);
    SAL_ASSERT(sal_graph_add_output(g, "t") == SAL_OK);
    return t_finish(g, "out");
}

/* Closed form of L = <so, out> + <sa, a> (sa may be NULL): da = so V^T + sa, dh = da [h > 0] (or
 * 2 da under twice_rule), dx = dh W^T, dz = 2 z so; and the forward value out. */
static void net_ref(const float *so, const float *sa, bool twice, double *dx, double *dz, double *da, double *out) {
    for (int n = 0; n < N; n++) {
        double h[H], dh[H];
        for (int j = 0; j < H; j++) {
            h[j] = 0;
            for (int d = 0; d < D; d++) h[j] += (double)X[n * D + d] * W[d * H + j];
            double g = sa ? sa[n * H + j] : 0;
            for (int k = 0; k < K; k++) g += (double)so[n * K + k] * V[j * K + k];
            if (da) da[n * H + j] = g;
            dh[j] = twice ? 2 * g : h[j] > 0 ? g : 0;
        }
        for (int d = 0; d < D; d++) {
            dx[n * D + d] = 0;
            for (int j = 0; j < H; j++) dx[n * D + d] += dh[j] * W[d * H + j];
        }
        for (int k = 0; k < K; k++) {
            dz[n * K + k] = 2.0 * Z[n * K + k] * so[n * K + k];
            out[n * K + k] = (double)Z[n * K + k] * Z[n * K + k];
            for (int j = 0; j < H; j++) out[n * K + k] += (h[j] > 0 ? h[j] : 0) * V[j * K + k];
        }
    }
}

/* A session on net() run forward on X and Z. */
static sal_session *open_net(sal_model **g, sal_tensor *feeds) {
    sal_session *s;
    *g = net();
    SAL_ASSERT(sal_session_new(*g, &s) == SAL_OK);
    feeds[0] = t_tensor_of(2, DIMS(N, D), X);
    feeds[1] = t_tensor_of(2, DIMS(N, K), Z);
    CHECK_OK(sal_exec_forward(s, feeds));
    return s;
}

static void close_net(sal_model *g, sal_session *s, sal_tensor *feeds) {
    sal_tensor_free(&feeds[0]);
    sal_tensor_free(&feeds[1]);
    sal_session_free(s);
    sal_model_free(g);
}

/* ---- 1. nodes off every gradient path ---- */

static void test_skipped(void) {
    sal_model *g;
    sal_tensor feeds[2];
    sal_session *s = open_net(&g, feeds);
    float so[N * K], ones[N * D];
    t_randv(&R, so, N * K, 1);
    for (int i = 0; i < N * D; i++) ones[i] = 1;
    sal_tensor seed = t_tensor_of(2, DIMS(N, K), so), tseed = t_tensor_of(2, DIMS(N, D), ones);
    double dx[N * D], dz[N * K], out[N * K], t[N * D], dt[N * D], zero[N * D] = {0};
    net_ref(so, NULL, false, dx, dz, NULL, out);
    for (int i = 0; i < N * D; i++) t[i] = tanh(X[i]), dt[i] = 1 - t[i] * t[i];
    int outv = sal_graph_find(g, "out"), tv = sal_graph_find(g, "t");
    CHECK(maxdiff(&s->act[outv], out, N * K) < 1e-5 && maxdiff(&s->act[tv], t, N * D) < 1e-6,
          "forward: out and t against closed forms");
    sal_rule_fn rules[16];
    for (int i = 0; i < 16; i++) rules[i] = count_rule;
    int mm1 = node(g, "mm1"), relu = node(g, "relu"), mm2 = node(g, "mm2"), add = node(g, "add"),
        zsq = node(g, "zsq"), side = node(g, "side"), div = node(g, "div");
    bool w[64];

    /* only x wanted: zsq reads nothing wanted (though a seed reaches its output zz), and no
     * gradient reaches side's output */
    memset(calls, 0, sizeof calls);
    sal_backward_opts o = {.wrt = wrt(w, g, "x", NULL), .rule = rules};
    CHECK_OK(sal_exec_backward(s, 2, (int[]){outv, sal_graph_find(g, "zz")}, (sal_tensor[]){seed, seed}, &o));
    CHECK(calls[zsq] + calls[side] + calls[div] == 0, "skipped nodes visited: zsq %d, side %d, div %d", calls[zsq],
          calls[side], calls[div]);
    CHECK(calls[mm1] == 1 && calls[relu] == 1 && calls[mm2] == 1 && calls[add] == 1, "path nodes run once each");
    CHECK(maxdiff(grad(s, "x"), dx, N * D) < 1e-5, "dL/dx with only x wanted");
    CHECK(!s->has_grad[sal_graph_find(g, "z")] && !s->has_grad[sal_graph_find(g, "W")] &&
              !s->has_grad[sal_graph_find(g, "V")] && !s->has_grad[tv],
          "no gradient computed for unwanted z, W, V or unreached t");

    /* a seed at the side output alone: the main path gets no gradient and is not visited */
    memset(calls, 0, sizeof calls);
    CHECK_OK(sal_exec_backward(s, 1, &tv, &tseed, &o));
    int others = calls[mm1] + calls[relu] + calls[mm2] + calls[add] + calls[zsq] + calls[div];
    CHECK(calls[side] == 1 && others == 0, "a seed at t runs side alone (side %d, others %d)", calls[side], others);
    CHECK(maxdiff(grad(s, "x"), dt, N * D) < 1e-5, "dt/dx = 1 - tanh^2");

    /* wanted without a path: t and u get zero gradients (t's buffer held the seed above) */
    memset(calls, 0, sizeof calls);
    o.wrt = wrt(w, g, "x", "z", "t", "u", NULL);
    CHECK_OK(sal_exec_backward(s, 1, &outv, &seed, &o));
    CHECK(maxdiff(grad(s, "t"), zero, N * D) == 0 && maxdiff(grad(s, "u"), zero, N * D) == 0,
          "wanted t and u without a path: zero gradients");
    CHECK(maxdiff(grad(s, "z"), dz, N * K) < 1e-5 && calls[zsq] == 1, "dL/dz = 2 z so once z is wanted");
    /* a wanted value's zeroed buffer is not a gradient that reached it: were side and div run on it,
     * Div's backward would turn 0 / c with c = 0 into NaN, and wanting u as well would change dL/dx */
    CHECK(calls[side] + calls[div] == 0, "side and div visited %d times though no gradient reached t or u",
          calls[side] + calls[div]);
    CHECK(maxdiff(grad(s, "x"), dx, N * D) < 1e-5, "dL/dx with t and u also wanted: %g %g %g ...",
          sal_f32(grad(s, "x"))[0], sal_f32(grad(s, "x"))[1], sal_f32(grad(s, "x"))[2]);
    sal_tensor_free(&seed);
    sal_tensor_free(&tseed);
    close_net(g, s, feeds);
}

/* ---- 2. rule overrides ---- */

static void test_rules(void) {
    sal_model *g;
    sal_tensor feeds[2];
    sal_session *s = open_net(&g, feeds);
    float so[N * K];
    t_randv(&R, so, N * K, 1);
    sal_tensor seed = t_tensor_of(2, DIMS(N, K), so);
    double dx[N * D], dx2[N * D], dz[N * K], out[N * K], gap = 0;
    net_ref(so, NULL, false, dx, dz, NULL, out);
    net_ref(so, NULL, true, dx2, dz, NULL, out);
    for (int i = 0; i < N * D; i++) gap = fmax(gap, fabs(dx2[i] - dx[i]));
    SAL_ASSERT(gap > 0.1); /* the data has h <= 0 somewhere, so the override shows */
    int outv = sal_graph_find(g, "out"), relu = node(g, "relu"), cookie;
    sal_rule_fn rules[16] = {0};
    rules[relu] = twice_rule;
    bool w[64];
    sal_backward_opts o = {.wrt = wrt(w, g, "x", "z", NULL), .rule = rules, .user = &cookie};
    memset(calls, 0, sizeof calls);
    seen_user = NULL;
    CHECK_OK(sal_exec_backward(s, 1, &outv, &seed, &o));
    /* dx2 goes through both MatMuls' own gradients */
    CHECK(maxdiff(grad(s, "x"), dx2, N * D) < 1e-5, "dL/dx with 2 dout at the ReLU");
    CHECK(maxdiff(grad(s, "z"), dz, N * K) < 1e-5, "dL/dz through Add's and Mul's own gradients");
    CHECK(calls[relu] == 1 && seen_user == &cookie, "rule called %d times, user %p (wanted %p)", calls[relu],
          seen_user, (void *)&cookie);

    /* an error from a rule comes back with its message; the session stays usable */
    rules[relu] = fail_rule;
    CHECK_FAILS(sal_exec_backward(s, 1, &outv, &seed, &o), SAL_ERR_NUMERIC,
                "node 'relu' (Relu): refused by the test rule");
    rules[relu] = NULL;
    CHECK_OK(sal_exec_backward(s, 1, &outv, &seed, &o));
    CHECK(maxdiff(grad(s, "x"), dx, N * D) < 1e-5, "the ReLU's own gradient once the rule is gone");
    sal_tensor_free(&seed);
    close_net(g, s, feeds);
}

/* ---- 3. several seeds; 6. repeated calls on one session ---- */

static void test_seeds(void) {
    sal_model *g;
    sal_tensor feeds[2];
    sal_session *s = open_net(&g, feeds);
    float s1[N * K], s2[N * K], sa[N * H], sum[N * K];
    t_randv(&R, s1, N * K, 1);
    t_randv(&R, s2, N * K, 1);
    t_randv(&R, sa, N * H, 1);
    for (int i = 0; i < N * K; i++) sum[i] = s1[i] + s2[i];
    int outv = sal_graph_find(g, "out"), av = sal_graph_find(g, "a");
    /* L = <s1, out> + <sa, a> + <s2, out>: two seeds on out add up, the one on a adds to what
     * arrives from out */
    sal_tensor seeds[3] = {t_tensor_of(2, DIMS(N, K), s1), t_tensor_of(2, DIMS(N, H), sa),
                           t_tensor_of(2, DIMS(N, K), s2)};
    double dx[N * D], dz[N * K], da[N * H], out[N * K];
    net_ref(sum, sa, false, dx, dz, da, out);
    bool w[64];
    sal_backward_opts o = {.wrt = wrt(w, g, "x", "a", NULL)};
    CHECK_OK(sal_exec_backward(s, 3, (int[]){outv, av, outv}, seeds, &o));
    CHECK(maxdiff(grad(s, "a"), da, N * H) < 1e-5, "dL/da = (s1 + s2) V^T + sa");
    CHECK(maxdiff(grad(s, "x"), dx, N * D) < 1e-5, "dL/dx from three seeds");

    /* again with s2 alone: the buffers hold this call's gradient, nothing of the last one */
    net_ref(s2, NULL, false, dx, dz, da, out);
    CHECK_OK(sal_exec_backward(s, 1, &outv, &seeds[2], &o));
    CHECK(maxdiff(grad(s, "a"), da, N * H) < 1e-5 && maxdiff(grad(s, "x"), dx, N * D) < 1e-5,
          "second call on the same session: s2's gradient alone");

    /* a seed shaped as another value */
    CHECK_FAILS(sal_exec_backward(s, 2, (int[]){outv, av}, (sal_tensor[]){seeds[0], seeds[0]}, &o), SAL_ERR_SHAPE,
                "gradient seed for 'a' has shape (2,2), the value has (2,4)");
    for (int i = 0; i < 3; i++) sal_tensor_free(&seeds[i]);
    close_net(g, s, feeds);
}

/* ---- 4. gradients summed where a value fans out ---- */

static void test_fanout(void) {
    enum { E = 3 };
    float x[N * E], w1[E * E], w2[E * E], sy[N * E];
    t_randv(&R, x, N * E, 1);
    t_randv(&R, w1, E * E, 1);
    t_randv(&R, w2, E * E, 1);
    t_randv(&R, sy, N * E, 1);
    /* out = (x W1) * (x W2) + (x + x): x is read four times */
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<fanout>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, DIMS(-1, E)) == SAL_OK);
    t_const(g, "W1", 2, DIMS(E, E), w1);
    t_const(g, "W2", 2, DIMS(E, E), w2);
    t_node(g, "MatMul", "mm1", 2, NAMES("x", "W1"), "p", 0, NULL);
    t_node(g, "MatMul", "mm2", 2, NAMES("x", "W2"), "q", 0, NULL);
    t_node(g, "Mul", "pq", 2, NAMES("p", "q"), "m", 0, NULL);
    t_node(g, "Add", "xx", 2, NAMES("x", "x"), "r", 0, NULL);
    t_node(g, "Add", "sum", 2, NAMES("m", "r"), "out", 0, NULL);
    t_finish(g, "out");
    sal_session *s;
    SAL_ASSERT(sal_session_new(g, &s) == SAL_OK);
    sal_tensor feed = t_tensor_of(2, DIMS(N, E), x), seed = t_tensor_of(2, DIMS(N, E), sy);
    int outv = sal_graph_find(g, "out");
    CHECK_OK(sal_exec_forward(s, &feed));
    CHECK_OK(sal_exec_backward(s, 1, &outv, &seed, NULL)); /* no options: the gradient of the input */
    /* dx = (s q) W1^T + (s p) W2^T + 2 s */
    double dx[N * E];
    for (int n = 0; n < N; n++) {
        double p[E] = {0}, q[E] = {0};
        for (int j = 0; j < E; j++)
            for (int i = 0; i < E; i++) {
                p[j] += (double)x[n * E + i] * w1[i * E + j];
                q[j] += (double)x[n * E + i] * w2[i * E + j];
            }
        for (int i = 0; i < E; i++) {
            dx[n * E + i] = 2.0 * sy[n * E + i];
            for (int j = 0; j < E; j++) dx[n * E + i] += sy[n * E + j] * (q[j] * w1[i * E + j] + p[j] * w2[i * E + j]);
        }
    }
    CHECK(maxdiff(grad(s, "x"), dx, N * E) < 1e-5, "fan-out: dL/dx against the closed form");
    CHECK(fd_check(s, &feed, sal_f32(&feed), grad(s, "x"), 1, &outv, &seed, "x") == 0,
          "fan-out: dL/dx against finite differences");
    sal_tensor_free(&feed);
    sal_tensor_free(&seed);
    sal_session_free(s);
    sal_model_free(g);
}

/* Dropout with its mask output named (torchvision's Swin): the output views its input, the mask
 * is all true, and the gradient passes through. */
static void test_dropout_view(void) {
    enum { E = 3 };
    float x[N * E], w[E * E], sy[N * E];
    t_randv(&R, x, N * E, 1);
    t_randv(&R, w, E * E, 1);
    t_randv(&R, sy, N * E, 1);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<dropout>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, DIMS(-1, E)) == SAL_OK);
    t_const(g, "W", 2, DIMS(E, E), w);
    t_const(g, "two", 1, DIMS(1), (float[]){2});
    t_node(g, "MatMul", "mm", 2, NAMES("x", "W"), "p", 0, NULL);
    SAL_ASSERT(sal_graph_add_node(g, "Dropout", "drop", 1, NAMES("p"), 2, NAMES("d", "mask"), 0, NULL) == SAL_OK);
    t_node(g, "Mul", "twice", 2, NAMES("d", "two"), "out", 0, NULL);
    t_finish(g, "out");
    sal_session *s;
    SAL_ASSERT(sal_session_new(g, &s) == SAL_OK);
    sal_tensor feed = t_tensor_of(2, DIMS(N, E), x), seed = t_tensor_of(2, DIMS(N, E), sy);
    int outv = sal_graph_find(g, "out");
    for (int pass = 0; pass < 2; pass++) { /* the second pass remakes the view and the mask */
        CHECK_OK(sal_exec_forward(s, &feed));
        const sal_tensor *p = sal_session_value(s, "p"), *d = sal_session_value(s, "d");
        const sal_tensor *mk = sal_session_value(s, "mask");
        CHECK(p && d && p->data == d->data, "Dropout's output is not a view of its input");
        bool all = mk && mk->dtype == SAL_BOOL && sal_tensor_same_shape(mk, p);
        for (int64_t i = 0; all && i < sal_tensor_numel(mk); i++) all = ((const uint8_t *)mk->data)[i] == 1;
        CHECK(all, "Dropout's mask: not all true, or misshapen");
    }
    CHECK_OK(sal_exec_backward(s, 1, &outv, &seed, NULL));
    double dx[N * E]; /* dx = 2 s W^T */
    for (int n = 0; n < N; n++)
        for (int i = 0; i < E; i++) {
            dx[n * E + i] = 0;
            for (int j = 0; j < E; j++) dx[n * E + i] += 2.0 * sy[n * E + j] * w[i * E + j];
        }
    CHECK(maxdiff(grad(s, "x"), dx, N * E) < 1e-5, "Dropout: dL/dx against the closed form");
    sal_tensor_free(&feed);
    sal_tensor_free(&seed);
    sal_session_free(s);
    sal_model_free(g);
}

static void t_const_i64(sal_model *g, const char *name, int ndim, const int64_t *dim, const int64_t *v) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_I64, ndim, dim) == SAL_OK);
    memcpy(t.data, v, sizeof *v * (size_t)sal_tensor_numel(&t));
    SAL_ASSERT(sal_graph_add_const(g, name, &t) == SAL_OK);
}

/* Blocks of a value taken as views (sal_op.view_at), as Swin takes q, k and v from one product:
 * Gathers of one index along the leading axis, a Slice of a block (and a Gather from it), a Pad by
 * zero, against a strided Slice that stays a copy. x (B, E) -> p = x W (B, 3E) -> t (3, B, E);
 * out = [q k + v + t[1:3][1], p[:, 1:3]] = [q k + 2 v, p[:, 1:3]] with q, k, v = t[0], t[1], t[2].
 * Outputs and dL/dx against the closed form at two batch sizes (the views remade). */
static void test_block_views(void) {
    enum { E = 4, F = 3 * E };
    float w[E * F];
    t_randv(&R, w, E * F, 0.5f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<block-views>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, DIMS(-1, E)) == SAL_OK);
    t_const(g, "W", 2, DIMS(E, F), w);
    t_const_i64(g, "shape3", 1, DIMS(3), DIMS(0, 3, E));
    for (int i = 0; i < 3; i++) t_const_i64(g, (const char *[]){"i0", "i1", "i2"}[i], 0, NULL, DIMS(i));
    t_const_i64(g, "one", 1, DIMS(1), DIMS(1));
    t_const_i64(g, "three", 1, DIMS(1), DIMS(3));
    t_const_i64(g, "ax0", 1, DIMS(1), DIMS(0));
    t_const_i64(g, "ax1", 1, DIMS(1), DIMS(1));
    t_const_i64(g, "zeros", 1, DIMS(4), DIMS(0, 0, 0, 0));
    t_node(g, "MatMul", "mm", 2, NAMES("x", "W"), "p", 0, NULL);
    t_node(g, "Reshape", "rs", 2, NAMES("p", "shape3"), "p3", 0, NULL);
    t_node(g, "Transpose", "tr", 1, NAMES("p3"), "t", 1, (sal_attr[]){sal_attr_make_ints("perm", 3, DIMS(1, 0, 2))});
    t_node(g, "Gather", "gq", 2, NAMES("t", "i0"), "q", 0, NULL);
    t_node(g, "Gather", "gk", 2, NAMES("t", "i1"), "k", 0, NULL);
    t_node(g, "Gather", "gv", 2, NAMES("t", "i2"), "v", 0, NULL);
    t_node(g, "Slice", "sl", 4, NAMES("t", "one", "three", "ax0"), "tt", 0, NULL);
    t_node(g, "Gather", "gs", 2, NAMES("tt", "i1"), "v2", 0, NULL);
    t_node(g, "Pad", "pad", 2, NAMES("q", "zeros"), "pq", 0, NULL);
    t_node(g, "Slice", "strided", 4, NAMES("p", "one", "three", "ax1"), "c", 0, NULL);
    t_node(g, "Mul", "qk", 2, NAMES("pq", "k"), "a", 0, NULL);
    t_node(g, "Add", "av", 2, NAMES("a", "v"), "b", 0, NULL);
    t_node(g, "Add", "av2", 2, NAMES("b", "v2"), "b2", 0, NULL);
    t_node(g, "Concat", "cat", 2, NAMES("b2", "c"), "out", 1, (sal_attr[]){sal_attr_make_int("axis", 1)});
    t_finish(g, "out");
    sal_session *s;
    SAL_ASSERT(sal_session_new(g, &s) == SAL_OK);
    for (int B = 2; B <= 3; B++) {
        float x[3 * E], sy[3 * (E + 2)];
        t_randv(&R, x, B * E, 1);
        t_randv(&R, sy, B * (E + 2), 1);
        sal_tensor feed = t_tensor_of(2, DIMS(B, E), x), seed = t_tensor_of(2, DIMS(B, E + 2), sy);
        CHECK_OK(sal_exec_forward(s, &feed));
        const sal_tensor *t = sal_session_value(s, "t"), *q = sal_session_value(s, "q"), *k = sal_session_value(s, "k");
        const sal_tensor *v2 = sal_session_value(s, "v2"), *pq = sal_session_value(s, "pq"), *c = sal_session_value(s, "c");
        const float *t0 = t ? sal_f32(t) : NULL;
        CHECK(t0 && q && k && v2 && pq && c && sal_f32(q) == t0 && sal_f32(k) == t0 + B * E &&
                  sal_f32(v2) == t0 + 2 * B * E && sal_f32(pq) == sal_f32(q) &&
                  (sal_f32(c) < t0 || sal_f32(c) >= t0 + 3 * B * E),
              "B %d: q, k, t[1:3][1] and the zero Pad view t's blocks; the strided Slice is a copy", B);
        double p[3 * F], out[3 * (E + 2)], dp[3 * F] = {0}, dx[3 * E];
        for (int b = 0; b < B; b++)
            for (int j = 0; j < F; j++) {
                p[b * F + j] = 0;
                for (int e = 0; e < E; e++) p[b * F + j] += (double)x[b * E + e] * w[e * F + j];
            }
        for (int b = 0; b < B; b++) {
            const double *pb = p + b * F;
            for (int e = 0; e < E; e++) {
                double g = sy[b * (E + 2) + e];
                out[b * (E + 2) + e] = pb[e] * pb[E + e] + 2 * pb[2 * E + e];
                dp[b * F + e] += g * pb[E + e], dp[b * F + E + e] += g * pb[e], dp[b * F + 2 * E + e] += 2 * g;
            }
            for (int j = 0; j < 2; j++) {
                out[b * (E + 2) + E + j] = pb[1 + j];
                dp[b * F + 1 + j] += sy[b * (E + 2) + E + j];
            }
            for (int e = 0; e < E; e++) {
                dx[b * E + e] = 0;
                for (int j = 0; j < F; j++) dx[b * E + e] += dp[b * F + j] * w[e * F + j];
            }
        }
        CHECK(maxdiff(sal_session_value(s, "out"), out, B * (E + 2)) < 1e-5, "B %d: block views' output", B);
        int outv = sal_graph_find(g, "out");
        CHECK_OK(sal_exec_backward(s, 1, &outv, &seed, NULL));
        CHECK(maxdiff(grad(s, "x"), dx, B * E) < 1e-4, "B %d: block views, dL/dx against the closed form", B);
        sal_tensor_free(&feed);
        sal_tensor_free(&seed);
    }
    sal_session_free(s);
    sal_model_free(g);
}

/* ---- 5. gradients of parameters ---- */

static void test_params(void) {
    enum { C = 3, S = 5, F = 4, FI = C * S * S };
    float cw[C * 9], cb[C], fw[F * FI], fb[F], x[N * S * S], sy[N * F];
    t_randv(&R, cw, C * 9, 0.5f);
    t_randv(&R, cb, C, 0.3f);
    t_randv(&R, fw, F * FI, 0.2f);
    t_randv(&R, fb, F, 0.3f);
    t_randv(&R, x, N * S * S, 1);
    t_randv(&R, sy, N * F, 1);
    /* x (N,1,5,5) -> Conv 3x3, pad 1 -> Tanh -> Flatten -> Gemm (transB) -> y (N,4) */
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<params>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, DIMS(-1, 1, S, S)) == SAL_OK);
    t_const(g, "cw", 4, DIMS(C, 1, 3, 3), cw);
    t_const(g, "cb", 1, DIMS(C), cb);
    t_const(g, "fw", 2, DIMS(F, FI), fw);
    t_const(g, "fb", 1, DIMS(F), fb);
    sal_attr ca[2] = {sal_attr_make_ints("kernel_shape", 2, DIMS(3, 3)),
                      sal_attr_make_ints("pads", 4, DIMS(1, 1, 1, 1))};
    t_node(g, "Conv", "conv", 3, NAMES("x", "cw", "cb"), "c", 2, ca);
    t_node(g, "Tanh", "act", 1, NAMES("c"), "a", 0, NULL);
    t_node(g, "Flatten", "flat", 1, NAMES("a"), "f", 0, NULL);
    sal_attr ga[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", "fc", 3, NAMES("f", "fw", "fb"), "y", 1, ga);
    t_finish(g, "y");
    sal_session *s;
    SAL_ASSERT(sal_session_new(g, &s) == SAL_OK);
    sal_tensor feed = t_tensor_of(4, DIMS(N, 1, S, S), x), seed = t_tensor_of(2, DIMS(N, F), sy);
    sal_tensor bad = t_tensor_of(4, DIMS(N, 1, S, S + 1), NULL);
    int yv = sal_graph_find(g, "y");
    bool w[64];
    sal_backward_opts o = {.wrt = wrt(w, g, "x", "cw", "cb", "fw", "fb", NULL)};

    /* no forward pass yet, then a failed one: nothing stale to differentiate */
    CHECK_FAILS(sal_exec_backward(s, 1, &yv, &seed, &o), SAL_ERR_ARG, "backward pass requested before a forward pass");
    CHECK_OK(sal_exec_forward(s, &feed));
    CHECK_FAILS(sal_exec_forward(s, &bad), SAL_ERR_SHAPE, "input 'x' expects shape (-1,1,5,5)");
    CHECK_FAILS(sal_exec_backward(s, 1, &yv, &seed, &o), SAL_ERR_ARG, "before a forward pass");

    /* the input and every parameter at once */
    CHECK_OK(sal_exec_forward(s, &feed));
    CHECK_OK(sal_exec_backward(s, 1, &yv, &seed, &o));
    double dfb[F] = {0};
    for (int i = 0; i < N * F; i++) dfb[i % F] += sy[i]; /* dL/db: the seed summed over the batch */
    CHECK(maxdiff(grad(s, "fb"), dfb, F) < 1e-6, "Gemm bias gradient against the closed form");
    static const char *names[] = {"x", "cw", "cb", "fw", "fb"};
    for (int i = 0; i < 5; i++) { /* a constant is perturbed in place: the session's act views it */
        float *p = i ? sal_f32(&g->val[sal_graph_find(g, names[i])].t) : sal_f32(&feed);
        CHECK(fd_check(s, &feed, p, grad(s, names[i]), 1, &yv, &seed, names[i]) == 0,
              "dL/d %s against finite differences", names[i]);
    }
    sal_tensor_free(&feed);
    sal_tensor_free(&seed);
    sal_tensor_free(&bad);
    sal_session_free(s);
    sal_model_free(g);
}

/* Gemm with transB keeps a transposed copy of its weight for batches of 8 rows or more
 * (src/ops/linear.c): the product with and without it, and after the weights change. */
static void test_gemm_copy(void) {
    enum { M = 16, KI = 64, KO = 128 };
    float a[M * KI], w[KO * KI], b[KO];
    t_randv(&R, a, M * KI, 1);
    t_randv(&R, w, KO * KI, 0.3f);
    t_randv(&R, b, KO, 0.3f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<gemm>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "a", SAL_F32, 2, DIMS(-1, KI)) == SAL_OK);
    t_const(g, "w", 2, DIMS(KO, KI), w);
    t_const(g, "b", 1, DIMS(KO), b);
    sal_attr ga[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", "fc", 3, NAMES("a", "w", "b"), "y", 1, ga);
    t_finish(g, "y");
    sal_session *s;
    SAL_ASSERT(sal_session_new(g, &s) == SAL_OK);
    sal_tensor feed = t_tensor_of(2, DIMS(M, KI), a);
    float *W = sal_f32(&g->val[sal_graph_find(g, "w")].t);
    static double ref[M * KO];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < M; i++)
            for (int o = 0; o < KO; o++) {
                double z = b[o];
                for (int k = 0; k < KI; k++) z += (double)a[i * KI + k] * W[o * KI + k];
                ref[i * KO + o] = z;
            }
        for (int call = 0; call < 2; call++) { /* the copy is made, then reused */
            CHECK_OK(sal_exec_forward(s, &feed));
            CHECK(maxdiff(&s->act[sal_graph_find(g, "y")], ref, M * KO) < 1e-4,
                  "Gemm transB, weights %d, call %d, against the product in double", round, call);
        }
        for (int e = 0; e < KO * KI; e++) W[e] = -0.5f * W[e] + 0.01f * (float)(e % 7);
        sal_model_weights_changed(g);
    }
    sal_tensor_free(&feed);
    sal_session_free(s);
    sal_model_free(g);
}

/* ---- 8. lean forward passes (sal_session.lean) ---- */

enum { LN = 2, LT = 5, LD = 8, LK = 3 };

/* One attention block and an MLP with a ReLU, as exported transformers have them: y = Gemm(Reshape(
 * Relu(GELU(r W1 + b1) W2 + r))), r = Softmax(q k^T / sqrt(d)) v + x, q, k, v products of
 * LayerNorm(x), the scale computed from the Shape of a value (as PyTorch exports it). */
static sal_model *lean_net(void) {
    float w[LD * LD], b[LD * LT * LK];
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<lean>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 3, DIMS(-1, LT, LD)) == SAL_OK);
    const char *mats[] = {"Wq", "Wk", "Wv", "W1", "W2"};
    for (int i = 0; i < 5; i++) {
        t_randv(&R, w, LD * LD, 0.5f);
        t_const(g, mats[i], 2, DIMS(LD, LD), w);
    }
    const char *vecs[] = {"gamma", "beta", "bq", "b1"};
    for (int i = 0; i < 4; i++) {
        t_randv(&R, b, LD, 0.3f);
        b[0] += i == 0;
        t_const(g, vecs[i], 1, DIMS(LD), b);
    }
    t_randv(&R, b, LD * LT * LK, 0.3f);
    t_const(g, "Wo", 2, DIMS(LK, LT * LD), b);
    sal_tensor idx = {0}, shp = {0};
    SAL_ASSERT(sal_tensor_alloc(&idx, SAL_I64, 0, NULL) == SAL_OK);
    SAL_ASSERT(sal_tensor_alloc(&shp, SAL_I64, 1, DIMS(2)) == SAL_OK);
    ((int64_t *)idx.data)[0] = 2;
    ((int64_t *)shp.data)[0] = 0, ((int64_t *)shp.data)[1] = -1;
    SAL_ASSERT(sal_graph_add_const(g, "two", &idx) == SAL_OK && sal_graph_add_const(g, "flat", &shp) == SAL_OK);
    t_node(g, "LayerNormalization", "ln", 3, NAMES("x", "gamma", "beta"), "h", 0, NULL);
    t_node(g, "MatMul", "mq", 2, NAMES("h", "Wq"), "q0", 0, NULL);
    t_node(g, "Add", "bias_q", 2, NAMES("q0", "bq"), "q", 0, NULL);
    t_node(g, "MatMul", "mk", 2, NAMES("h", "Wk"), "k", 0, NULL);
    t_node(g, "MatMul", "mv", 2, NAMES("h", "Wv"), "v", 0, NULL);
    t_node(g, "Transpose", "kt", 1, NAMES("k"), "kT", 1, (sal_attr[]){sal_attr_make_ints("perm", 3, DIMS(0, 2, 1))});
    t_node(g, "MatMul", "qk", 2, NAMES("q", "kT"), "scores", 0, NULL);
    t_node(g, "Shape", "shape", 1, NAMES("q"), "qshape", 0, NULL);
    t_node(g, "Gather", "dim", 2, NAMES("qshape", "two"), "d", 0, NULL);
    t_node(g, "Cast", "cast", 1, NAMES("d"), "df", 1, (sal_attr[]){sal_attr_make_int("to", 1)});
    t_node(g, "Sqrt", "sqrt", 1, NAMES("df"), "scale", 0, NULL);
    t_node(g, "Div", "div", 2, NAMES("scores", "scale"), "scaled", 0, NULL);
    t_node(g, "Softmax", "softmax", 1, NAMES("scaled"), "attn", 1, (sal_attr[]){sal_attr_make_int("axis", -1)});
    t_node(g, "MatMul", "av", 2, NAMES("attn", "v"), "o", 0, NULL);
    t_node(g, "Add", "res1", 2, NAMES("o", "x"), "r", 0, NULL);
    t_node(g, "MatMul", "fc1", 2, NAMES("r", "W1"), "u0", 0, NULL);
    t_node(g, "Add", "bias1", 2, NAMES("u0", "b1"), "u", 0, NULL);
    t_node(g, "Gelu", "gelu", 1, NAMES("u"), "gu", 0, NULL);
    t_node(g, "MatMul", "fc2", 2, NAMES("gu", "W2"), "m", 0, NULL);
    t_node(g, "Add", "res2", 2, NAMES("m", "r"), "a", 0, NULL);
    t_node(g, "Relu", "relu", 1, NAMES("a"), "z", 0, NULL);
    t_node(g, "Reshape", "reshape", 2, NAMES("z", "flat"), "zf", 0, NULL);
    t_node(g, "Gemm", "head", 2, NAMES("zf", "Wo"), "y", 1, (sal_attr[]){sal_attr_make_int("transB", 1)});
    return t_finish(g, "y");
}

/* Guided backprop's rule as relu_rules.c has it, reading the ReLU's input. */
static sal_status guided_rule(sal_opctx *c, void *user) {
    (void)user;
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const float *x = sal_in_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    for (int64_t i = 0, n = sal_tensor_numel(c->in[0]); i < n; i++) dx[i] += x[i] > 0 && dy[i] > 0 ? dy[i] : 0;
    return SAL_OK;
}

/* A lean session gives the same input gradients, to the bit, as one that keeps every value, call
 * after call, with the ops' gradients and with a rule at the ReLU; it holds less memory, drops the
 * values no backward reads and keeps those that one does; its gradient matches central differences. */
static void test_lean(void) {
    sal_model *g = lean_net();
    float xv[LN * LT * LD], sv[LN * LK];
    t_randv(&R, xv, LN * LT * LD, 1);
    t_randv(&R, sv, LN * LK, 1);
    sal_tensor x = t_tensor_of(3, DIMS(LN, LT, LD), xv), seed = t_tensor_of(2, DIMS(LN, LK), sv);
    int yv = sal_graph_find(g, "y"), xi = sal_graph_find(g, "x");
    sal_rule_fn rules[32] = {0};
    SAL_ASSERT(g->nnode <= 32);
    rules[sal_graph_find_node(g, "relu")] = guided_rule;
    CHECK(sal_graph_find_node(g, "shape") >= 0 && sal_graph_find_node(g, "bias_q") >= 0,
          "the Shape and the bias Add are still in the graph"); /* not folded by finalizing */
    sal_session *s[2];
    float gr[2][2][2][LN * LT * LD]; /* per session, rule or not, call */
    size_t peak[2] = {0, 0};
    for (int l = 0; l < 2; l++) {
        SAL_ASSERT(sal_session_new(g, &s[l]) == SAL_OK);
        s[l]->layouts = s[l]->fuse = true;
        s[l]->lean = l ? SAL_LEAN_GRAD : SAL_LEAN_OFF;
        for (int rule = 0; rule < 2; rule++)
            for (int call = 0; call < 2; call++) {
                sal_backward_opts o = {.rule = rule ? rules : NULL};
                size_t base = sal_memory_in_use();
                sal_memory_reset_peak();
                CHECK_OK(sal_exec_forward(s[l], &x));
                CHECK_OK(sal_exec_backward(s[l], 1, &yv, &seed, &o));
                if (!rule && !call) peak[l] = sal_memory_peak() - base; /* the first call allocates */
                memcpy(gr[l][rule][call], s[l]->grad[xi].data, sizeof gr[l][rule][call]);
            }
    }
    for (int rule = 0; rule < 2; rule++)
        for (int call = 0; call < 2; call++)
            CHECK(!memcmp(gr[0][rule][call], gr[1][rule][call], sizeof gr[0][rule][call]),
                  "lean and full sessions, %s, call %d: the same input gradient",
                  rule ? "guided rule" : "own gradients", call);
    CHECK(memcmp(gr[1][0][1], gr[1][1][1], sizeof gr[1][0][1]), "the rule changes the gradient");
    CHECK(peak[1] < peak[0], "lean session's peak %zu bytes, the full one's %zu", peak[1], peak[0]);
    /* dropped: read by no backward (the LayerNorm's output, the first residual sum and the ReLU's
     * output feed products with constants, sums and reshapes, the scores a Div by a constant scale,
     * the Softmax's input is not read by its gradient) */
    const char *dropped[] = {"h", "scores", "scaled", "r", "gu", "z"};
    for (int i = 0; i < 6; i++)
        CHECK(!sal_session_value(s[1], dropped[i]) && sal_session_value(s[0], dropped[i]),
              "'%s' dropped by the lean session only", dropped[i]);
    /* kept: LayerNorm's input, the attention's factors, GELU's input, the ReLU's input */
    const char *kept[] = {"x", "q", "kT", "v", "attn", "u", "a", "y"};
    for (int i = 0; i < 8; i++) CHECK(sal_session_value(s[1], kept[i]), "'%s' kept by the lean session", kept[i]);
    /* central differences of <seed, y> in double, through the full session's forward passes */
    double ref[LN * LT * LD];
    for (int e = 0; e < LN * LT * LD; e++) {
        float at[2] = {xv[e] + 1e-2f, xv[e] - 1e-2f};
        double L[2];
        for (int q = 0; q < 2; q++) {
            sal_f32(&x)[e] = at[q];
            SAL_ASSERT(sal_exec_forward(s[0], &x) == SAL_OK);
            L[q] = t_loss(s[0], yv, sv);
        }
        sal_f32(&x)[e] = xv[e];
        ref[e] = (L[0] - L[1]) / ((double)at[0] - at[1]);
    }
    CHECK_OK(sal_exec_forward(s[1], &x));
    CHECK_OK(sal_exec_backward(s[1], 1, &yv, &seed, NULL));
    CHECK(maxdiff(&s[1]->grad[xi], ref, LN * LT * LD) < 2e-2, "lean gradient against central differences: %g",
          maxdiff(&s[1]->grad[xi], ref, LN * LT * LD));
    /* sal_forward keeping the outputs only: the same outputs to the bit, a lower peak, the inner
     * values gone, and no gradient */
    sal_session_keep_values(s[1], 0);
    size_t base = sal_memory_in_use();
    sal_memory_reset_peak();
    const sal_tensor *y[2];
    CHECK_OK(sal_forward(s[1], 1, &x, &y[1]));
    size_t out_peak = sal_memory_peak() - base;
    CHECK_OK(sal_forward(s[0], 1, &x, &y[0]));
    CHECK(!memcmp(y[0]->data, y[1]->data, sizeof(float) * LN * LK), "outputs kept alone: the same outputs");
    CHECK(out_peak < peak[1], "outputs kept alone: peak %zu bytes, lean for a gradient %zu", out_peak, peak[1]);
    CHECK(!sal_session_value(s[1], "attn") && !sal_session_value(s[1], "u") && sal_session_value(s[1], "y") &&
              sal_session_value(s[0], "attn"),
          "outputs kept alone: inner values gone");
    const sal_tensor *gx;
    CHECK_FAILS(sal_input_gradient(s[1], &seed, &gx), SAL_ERR_ARG, "kept only the outputs");
    sal_session_keep_values(s[1], 1);
    CHECK_OK(sal_forward(s[1], 1, &x, &y[1]));
    CHECK_OK(sal_input_gradient(s[1], &seed, &gx));
    CHECK(!memcmp(gx->data, gr[0][0][0], sizeof gr[0][0][0]), "every value kept again: the gradient");
    for (int l = 0; l < 2; l++) sal_session_free(s[l]);
    sal_tensor_free(&x);
    sal_tensor_free(&seed);
    sal_model_free(g);

    /* a non-finite output is traced to its first node though the lean pass dropped that node's
     * output: y = (x / 0) W, whose quotient only a product with a constant reads */
    SAL_ASSERT(sal_graph_create("<lean-inf>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, DIMS(-1, 2)) == SAL_OK);
    t_const(g, "zero", 1, DIMS(1), (float[]){0});
    t_const(g, "W", 2, DIMS(2, 2), (float[]){1, 2, 3, 4});
    t_node(g, "Div", "div", 2, NAMES("x", "zero"), "q", 0, NULL);
    t_node(g, "MatMul", "mm", 2, NAMES("q", "W"), "y", 0, NULL);
    t_finish(g, "y");
    sal_session *si;
    SAL_ASSERT(sal_session_new(g, &si) == SAL_OK);
    si->lean = SAL_LEAN_GRAD;
    sal_tensor xinf = t_tensor_of(2, DIMS(1, 2), (float[]){1, -1});
    CHECK_OK(sal_exec_forward(si, &xinf));
    CHECK(!sal_session_value(si, "q"), "the quotient dropped by the lean pass");
    CHECK_FAILS(sal_exec_check_outputs(si), SAL_ERR_NUMERIC, "came from node 'div' (Div)");
    sal_tensor_free(&xinf);
    sal_session_free(si);
    sal_model_free(g);
}

/* conv -> relu -> maxpool -> flatten -> gemm, C channels of H x H, the pool 2x2 / 2 (big: 3x3 / 2,
 * padding 1); with `also` the ReLU's output is a model output too, which keeps its backward. */
static sal_model *relu_pool_net(int C, int H, bool big, bool also) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<relu-pool>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, DIMS(-1, C, H, H)) == SAL_OK);
    float *w = malloc(sizeof *w * (size_t)(C * C * 9)), b[64], hw[5 * 64 * 16 * 16];
    int P = big ? (H + 1) / 2 : H / 2, F = C * P * P;
    SAL_ASSERT(w && C <= 64 && F <= 64 * 16 * 16);
    t_randv(&R, w, C * C * 9, 0.2f);
    t_randv(&R, b, C, 0.3f); /* biases of both signs: some windows are all cut by the ReLU */
    t_randv(&R, hw, 5 * F, 0.1f);
    t_const(g, "w", 4, DIMS(C, C, 3, 3), w);
    t_const(g, "b", 1, DIMS(C), b);
    t_const(g, "hw", 2, DIMS(5, F), hw);
    free(w);
    t_node(g, "Conv", "conv", 3, NAMES("x", "w", "b"), "h", 1,
           (sal_attr[]){sal_attr_make_ints("pads", 4, DIMS(1, 1, 1, 1))});
    t_node(g, "Relu", "relu", 1, NAMES("h"), "r", 0, NULL);
    sal_attr pa[3] = {sal_attr_make_ints("kernel_shape", 2, big ? DIMS(3, 3) : DIMS(2, 2)),
                      sal_attr_make_ints("strides", 2, DIMS(2, 2))};
    if (big) pa[2] = sal_attr_make_ints("pads", 4, DIMS(1, 1, 1, 1));
    t_node(g, "MaxPool", "pool", 1, NAMES("r"), "p", big ? 3 : 2, pa);
    t_node(g, "Flatten", "flat", 1, NAMES("p"), "f", 0, NULL);
    t_node(g, "Gemm", "head", 2, NAMES("f", "hw"), "y", 1, (sal_attr[]){sal_attr_make_int("transB", 1)});
    if (also) SAL_ASSERT(sal_graph_add_output(g, "r") == SAL_OK);
    return t_finish(g, "y");
}

/* conv 3x3 (C -> C, H x H) -> ReLU -> MaxPool 2x2 or GlobalAveragePool -> Flatten -> Gemm to 5 (both
 * pools take blocked layouts, so the convolution can run by Winograd) */
static sal_model *conv_head_net(int C, int H, bool pool) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<conv-head>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, DIMS(-1, C, H, H)) == SAL_OK);
    int F = pool ? C * (H / 2) * (H / 2) : C;
    float *w = malloc(sizeof *w * (size_t)(C * C * 9)), *hw = malloc(sizeof *hw * (size_t)(5 * F)), b[64];
    SAL_ASSERT(w && hw && C <= 64);
    t_randv(&R, w, C * C * 9, 0.2f);
    t_randv(&R, b, C, 0.3f);
    t_randv(&R, hw, 5 * F, 0.1f);
    t_const(g, "w", 4, DIMS(C, C, 3, 3), w);
    t_const(g, "b", 1, DIMS(C), b);
    t_const(g, "hw", 2, DIMS(5, F), hw);
    free(w), free(hw);
    t_node(g, "Conv", "conv", 3, NAMES("x", "w", "b"), "h", 1,
           (sal_attr[]){sal_attr_make_ints("pads", 4, DIMS(1, 1, 1, 1))});
    t_node(g, "Relu", "relu", 1, NAMES("h"), "r", 0, NULL);
    if (pool)
        t_node(g, "MaxPool", "pool", 1, NAMES("r"), "p", 2,
               (sal_attr[]){sal_attr_make_ints("kernel_shape", 2, DIMS(2, 2)),
                            sal_attr_make_ints("strides", 2, DIMS(2, 2))});
    else
        t_node(g, "GlobalAveragePool", "pool", 1, NAMES("r"), "p", 0, NULL);
    t_node(g, "Flatten", "flat", 1, NAMES("p"), "f", 0, NULL);
    t_node(g, "Gemm", "head", 2, NAMES("f", "hw"), "y", 1, (sal_attr[]){sal_attr_make_int("transB", 1)});
    return t_finish(g, "y");
}

/* Winograd's tile by default: F(2x2) for a forward whose output reaches max pooling through its ReLU
 * (flat regions keep their ties bit for bit), F(4x4) for the other forward and for every input
 * gradient (conv_wino.h). Every layer that fits runs by Winograd here: by default AVX-512 machines
 * leave this one to oneDNN's kernels. */
static void test_wino_tile(void) {
    int old = sal_conv_wino_tile(0), mode = sal_conv_wino_mode(SAL_WINO_ALL);
    for (int pool = 0; pool < 2; pool++) {
        sal_rng_seed(&R, 5);
        sal_model *g = conv_head_net(32, 28, pool);
        float xv[32 * 28 * 28], sv[5];
        t_randv(&R, xv, 32 * 28 * 28, 1);
        t_randv(&R, sv, 5, 1);
        sal_tensor x = t_tensor_of(4, DIMS(1, 32, 28, 28), xv), seed = t_tensor_of(2, DIMS(1, 5), sv);
        sal_session *s;
        SAL_ASSERT(sal_session_new(g, &s) == SAL_OK);
        s->layouts = s->fuse = true;
        int yv = sal_graph_find(g, "y");
        long c0 = sal_conv_wino_calls(), f0 = sal_conv_wino_calls4();
        CHECK_OK(sal_exec_forward(s, &x));
        long c1 = sal_conv_wino_calls(), f1 = sal_conv_wino_calls4();
        float y1[5];
        memcpy(y1, s->act[yv].data, sizeof y1);
        sal_backward_opts o = {0};
        CHECK_OK(sal_exec_backward(s, 1, &yv, &seed, &o));
        long c2 = sal_conv_wino_calls(), f2 = sal_conv_wino_calls4();
        CHECK(c1 - c0 == 1 && f1 - f0 == !pool && c2 - c1 == 1 && f2 - f1 == 1,
              "%s max pooling: forward %ld Winograd call(s), %ld F(4x4); input gradient %ld, %ld F(4x4)",
              pool ? "before" : "without", c1 - c0, f1 - f0, c2 - c1, f2 - f1);
        if (pool) { /* in a session of its own, an outputs-only forward (F(4x4): no ties to keep), then a
                     * gradient's (F(2x2)): each tile's transforms of the weight kept apart, the outputs
                     * those of the forward above to the bit */
            sal_session *s2;
            SAL_ASSERT(sal_session_new(g, &s2) == SAL_OK);
            s2->layouts = s2->fuse = true;
            s2->lean = SAL_LEAN_OUT;
            CHECK_OK(sal_exec_forward(s2, &x));
            long f3 = sal_conv_wino_calls4();
            s2->lean = s->lean;
            CHECK_OK(sal_exec_forward(s2, &x));
            bool same = !memcmp(y1, s2->act[yv].data, sizeof y1);
            CHECK(f3 - f2 == 1 && sal_conv_wino_calls4() == f3 && same,
                  "outputs-only forward, then a gradient's: %ld F(4x4), then %ld; outputs %s", f3 - f2,
                  sal_conv_wino_calls4() - f3, same ? "alike" : "differ");
            sal_session_free(s2);
        }
        sal_session_free(s);
        sal_model_free(g);
        sal_tensor_free(&x), sal_tensor_free(&seed);
    }
    sal_conv_wino_tile(old);
    sal_conv_wino_mode(mode);
}

/* A MaxPool over a ReLU's output writes the ReLU's input gradient itself (exec.c: relu_under), and
 * the ReLU's backward does not run: the same input gradient, to the bit, as a model whose ReLU
 * output is also an output (which keeps the ReLU's backward), in plain and blocked layouts, for 2x2
 * windows and 3x3 ones (the mask in a pass of its own); with a rule at the ReLU it runs as before. */
static void test_relu_pool(void) {
    const struct { int C, H; bool big, lay; } k[] = {{8, 10, false, false}, {32, 28, false, true},
                                                     {8, 9, true, false}, {32, 14, true, true}};
    /* one convolution kernel in both models: the layer whose output is also a model output stays plain,
     * where Winograd's blocked kernel would round differently */
    int wino = sal_conv_wino_mode(SAL_WINO_OFF);
    for (size_t q = 0; q < sizeof k / sizeof *k; q++) {
        sal_model *g[2];
        for (int m = 0; m < 2; m++) { /* the same weights in both */
            sal_rng_seed(&R, 77 + q);
            g[m] = relu_pool_net(k[q].C, k[q].H, k[q].big, m == 1);
        }
        int n = 2 * k[q].C * k[q].H * k[q].H;
        float *xv = malloc(sizeof *xv * (size_t)n), sv[10];
        SAL_ASSERT(xv);
        t_randv(&R, xv, n, 1);
        t_randv(&R, sv, 10, 1);
        sal_tensor x = t_tensor_of(4, DIMS(2, k[q].C, k[q].H, k[q].H), xv), seed = t_tensor_of(2, DIMS(2, 5), sv);
        sal_session *s[2];
        float *gr[2][2] = {{NULL}};
        bool reached[2] = {false, false};
        for (int m = 0; m < 2; m++) {
            SAL_ASSERT(sal_session_new(g[m], &s[m]) == SAL_OK);
            s[m]->layouts = s[m]->fuse = k[q].lay;
            int yv = sal_graph_find(g[m], "y"), xi = sal_graph_find(g[m], "x");
            sal_rule_fn rules[8] = {0};
            SAL_ASSERT(g[m]->nnode <= 8);
            rules[sal_graph_find_node(g[m], "relu")] = guided_rule;
            for (int rule = 0; rule < 2; rule++) {
                sal_backward_opts o = {.rule = rule ? rules : NULL};
                CHECK_OK(sal_exec_forward(s[m], &x));
                CHECK_OK(sal_exec_backward(s[m], 1, &yv, &seed, &o));
                gr[m][rule] = malloc(sizeof(float) * (size_t)n);
                SAL_ASSERT(gr[m][rule]);
                memcpy(gr[m][rule], s[m]->grad[xi].data, sizeof(float) * (size_t)n);
                if (!rule) reached[m] = s[m]->reached[sal_graph_find(g[m], "r")];
            }
        }
        CHECK(!reached[0] && reached[1], "case %zu: the ReLU's output is reached only when it is also an output", q);
        for (int rule = 0; rule < 2; rule++)
            CHECK(!memcmp(gr[0][rule], gr[1][rule], sizeof(float) * (size_t)n),
                  "case %zu (C %d, %s, %s layouts), %s: the same input gradient", q, k[q].C, k[q].big ? "3x3" : "2x2",
                  k[q].lay ? "blocked" : "plain", rule ? "guided rule" : "own gradients");
        CHECK(memcmp(gr[0][0], gr[0][1], sizeof(float) * (size_t)n), "case %zu: the rule changes the gradient", q);
        for (int m = 0; m < 2; m++) {
            free(gr[m][0]);
            free(gr[m][1]);
            sal_session_free(s[m]);
            sal_model_free(g[m]);
        }
        free(xv);
        sal_tensor_free(&x);
        sal_tensor_free(&seed);
    }
    sal_conv_wino_mode(wino);
}

/* A ReLU after a convolution of one input channel (conv.c: conv33, rows of 11 in vectors of 8)
 * fused into it: the same outputs as the unfused session's, whose ReLU runs as a node of its own. */
static void test_conv33_relu(void) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<conv33-relu>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, DIMS(-1, 1, 13, 11)) == SAL_OK);
    float w[6 * 9], b[6], hw[5 * 6 * 13 * 11], xv[3 * 13 * 11];
    t_randv(&R, w, 6 * 9, 0.5f);
    t_randv(&R, b, 6, 0.3f);
    t_randv(&R, hw, 5 * 6 * 13 * 11, 0.1f);
    t_randv(&R, xv, 3 * 13 * 11, 1);
    t_const(g, "w", 4, DIMS(6, 1, 3, 3), w);
    t_const(g, "b", 1, DIMS(6), b);
    t_const(g, "hw", 2, DIMS(5, 6 * 13 * 11), hw);
    t_node(g, "Conv", "conv", 3, NAMES("x", "w", "b"), "h", 1,
           (sal_attr[]){sal_attr_make_ints("pads", 4, DIMS(1, 1, 1, 1))});
    t_node(g, "Relu", "relu", 1, NAMES("h"), "r", 0, NULL);
    t_node(g, "Flatten", "flat", 1, NAMES("r"), "f", 0, NULL);
    t_node(g, "Gemm", "head", 2, NAMES("f", "hw"), "y", 1, (sal_attr[]){sal_attr_make_int("transB", 1)});
    g = t_finish(g, "y");
    sal_tensor x = t_tensor_of(4, DIMS(3, 1, 13, 11), xv);
    float y[2][15];
    sal_session *s[2];
    for (int f = 0; f < 2; f++) {
        SAL_ASSERT(sal_session_new(g, &s[f]) == SAL_OK);
        s[f]->layouts = s[f]->fuse = f; /* fusing needs layouts on */
        CHECK_OK(sal_exec_forward(s[f], &x));
        memcpy(y[f], s[f]->act[sal_graph_find(g, "y")].data, sizeof y[f]);
    }
    CHECK(s[1]->view_of[sal_graph_find(g, "r")] >= 0 && s[0]->view_of[sal_graph_find(g, "r")] < 0,
          "the ReLU is fused into the convolution in the fusing session only");
    double worst = 0;
    for (int i = 0; i < 15; i++) worst = fmax(worst, fabs(y[0][i] - y[1][i]));
    CHECK(worst < 1e-5, "one-channel convolution with its ReLU fused: outputs off by %g", worst);
    for (int f = 0; f < 2; f++) sal_session_free(s[f]);
    sal_model_free(g);
    sal_tensor_free(&x);
}

/* Transposes (0, 2, 3, 1) of a convolution's blocked output (shape.c: transpose_blk_takes) read it
 * in place: outputs and input gradients as with plain layouts, the second reader's gradient added
 * to the first's (conv -> two transposes -> their product -> flatten -> gemm). From 3 channels (a
 * stem, as ConvNeXt's) the blocked output gradient is made plain for our backward-data kernel
 * (conv.c), without a oneDNN primitive. */
static void transpose_blocked(int C, int H) {
    enum { M = 32 };
    const int F = M * H * H;
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<transpose-blocked>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, DIMS(-1, C, H, H)) == SAL_OK);
    float *w = malloc(sizeof *w * M * C * 9), *hw = malloc(sizeof *hw * 5 * F), *xv = malloc(sizeof *xv * 2 * C * H * H);
    SAL_ASSERT(w && hw && xv);
    t_randv(&R, w, M * C * 9, 0.1f);
    t_randv(&R, hw, 5 * F, 0.01f);
    t_randv(&R, xv, 2 * C * H * H, 1);
    t_const(g, "w", 4, DIMS(M, C, 3, 3), w);
    t_const(g, "hw", 2, DIMS(5, F), hw);
    free(w), free(hw);
    t_node(g, "Conv", "conv", 2, NAMES("x", "w"), "h", 1, (sal_attr[]){sal_attr_make_ints("pads", 4, DIMS(1, 1, 1, 1))});
    for (int k = 0; k < 2; k++)
        t_node(g, "Transpose", k ? "t2" : "t1", 1, NAMES("h"), k ? "b" : "a", 1,
               (sal_attr[]){sal_attr_make_ints("perm", 4, DIMS(0, 2, 3, 1))});
    t_node(g, "Mul", "mul", 2, NAMES("a", "b"), "p", 0, NULL);
    t_node(g, "Flatten", "flat", 1, NAMES("p"), "f", 0, NULL);
    t_node(g, "Gemm", "head", 2, NAMES("f", "hw"), "y", 1, (sal_attr[]){sal_attr_make_int("transB", 1)});
    g = t_finish(g, "y");
    float sv[10], y[2][10], *gx[2];
    t_randv(&R, sv, 10, 1);
    sal_tensor x = t_tensor_of(4, DIMS(2, C, H, H), xv), seed = t_tensor_of(2, DIMS(2, 5), sv);
    free(xv);
    int yv = sal_graph_find(g, "y"), xi = sal_graph_find(g, "x");
    sal_session *s[2];
    long prims = 0;
    for (int l = 0; l < 2; l++) {
        SAL_ASSERT(sal_session_new(g, &s[l]) == SAL_OK);
        s[l]->layouts = l;
        CHECK_OK(sal_exec_forward(s[l], &x));
        memcpy(y[l], s[l]->act[yv].data, sizeof y[l]);
        sal_backward_opts o = {0};
        long c0 = sal_conv_dnnl_calls();
        CHECK_OK(sal_exec_backward(s[l], 1, &yv, &seed, &o));
        prims = sal_conv_dnnl_calls() - c0;
        gx[l] = s[l]->grad[xi].data;
    }
    CHECK(s[1]->blk[sal_graph_find(g, "h")] && !s[0]->blk[sal_graph_find(g, "h")],
          "C %d: the convolution's output is blocked with layouts only", C);
    CHECK(C >= 16 || prims == 0, "C %d: the blocked backward ran %ld oneDNN primitives, expected none", C, prims);
    double wy = 0, wg = 0, sg = 0;
    for (int i = 0; i < 10; i++) wy = fmax(wy, fabs(y[0][i] - y[1][i]));
    for (int i = 0; i < 2 * C * H * H; i++) wg = fmax(wg, fabs(gx[0][i] - gx[1][i])), sg = fmax(sg, fabs(gx[0][i]));
    CHECK(wy < 1e-4 && wg < 1e-4 * sg, "C %d, blocked and plain layouts: outputs off by %g, input gradients by %g of %g",
          C, wy, wg, sg);
    for (int l = 0; l < 2; l++) sal_session_free(s[l]);
    sal_model_free(g);
    sal_tensor_free(&x);
    sal_tensor_free(&seed);
}

static void test_transpose_blocked(void) {
    transpose_blocked(16, 28);
    transpose_blocked(3, 56); /* 5.4M multiply-adds: oneDNN's forward, blocked (conv_dnnl.c) */
}

/* A ReLU whose output gradient is handed over to its input masks it in place (sal_op.bwd_inplace):
 * conv -> relu -> flatten -> gemm, the same input gradient to the bit as a session keeping every
 * gradient (which hands nothing over), plain and blocked. */
static void test_relu_inplace(void) {
    for (int lay = 0; lay < 2; lay++) {
        int C = lay ? 32 : 8, H = lay ? 28 : 6, n = 2 * C * H * H;
        sal_model *g;
        SAL_ASSERT(sal_graph_create("<relu-inplace>", &g) == SAL_OK);
        SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, DIMS(-1, C, H, H)) == SAL_OK);
        float *w = malloc(sizeof *w * (size_t)(C * C * 9)), *hw = malloc(sizeof *hw * (size_t)(5 * C * H * H)), b[32];
        SAL_ASSERT(w && hw);
        t_randv(&R, w, C * C * 9, 0.2f);
        t_randv(&R, b, C, 0.3f);
        t_randv(&R, hw, 5 * C * H * H, 0.05f);
        t_const(g, "w", 4, DIMS(C, C, 3, 3), w);
        t_const(g, "b", 1, DIMS(C), b);
        t_const(g, "hw", 2, DIMS(5, C * H * H), hw);
        free(w);
        free(hw);
        t_node(g, "Conv", "conv", 3, NAMES("x", "w", "b"), "h", 1,
               (sal_attr[]){sal_attr_make_ints("pads", 4, DIMS(1, 1, 1, 1))});
        t_node(g, "Relu", "relu", 1, NAMES("h"), "r", 0, NULL);
        t_node(g, "Flatten", "flat", 1, NAMES("r"), "f", 0, NULL);
        t_node(g, "Gemm", "head", 2, NAMES("f", "hw"), "y", 1, (sal_attr[]){sal_attr_make_int("transB", 1)});
        t_finish(g, "y");
        float *xv = malloc(sizeof *xv * (size_t)n), sv[10];
        SAL_ASSERT(xv);
        t_randv(&R, xv, n, 1);
        t_randv(&R, sv, 10, 1);
        sal_tensor x = t_tensor_of(4, DIMS(2, C, H, H), xv), seed = t_tensor_of(2, DIMS(2, 5), sv);
        int yv = sal_graph_find(g, "y"), xi = sal_graph_find(g, "x");
        sal_session *s[2];
        for (int k = 0; k < 2; k++) {
            SAL_ASSERT(sal_session_new(g, &s[k]) == SAL_OK);
            s[k]->layouts = s[k]->fuse = lay;
            s[k]->keep_grads = k == 1;
            CHECK_OK(sal_exec_forward(s[k], &x));
            CHECK_OK(sal_exec_backward(s[k], 1, &yv, &seed, NULL));
        }
        CHECK(!memcmp(s[0]->grad[xi].data, s[1]->grad[xi].data, sizeof(float) * (size_t)n),
              "%s layouts: the input gradient with the ReLU's mask in place equals the kept one's",
              lay ? "blocked" : "plain");
        for (int k = 0; k < 2; k++) sal_session_free(s[k]);
        free(xv);
        sal_tensor_free(&x);
        sal_tensor_free(&seed);
        sal_model_free(g);
    }
}

/* A Gemm reading a ReLU's output writes the gradient of the ReLU's input itself (sal_op.bwd_relu_in):
 * on one row through the rows of B^T its active units pick (linear.c: din_masked), on more rows by
 * masking the product. x (64) -> 600 -> ReLU -> 520 -> ReLU -> 5, the input gradient against double
 * loops through the ReLUs' masks, and the ReLUs' outputs never reached; one row and two, fused and
 * not, transB and a weight stored as (K, N). */
static void test_relu_gemm(void) {
    enum { D = 64, H0 = 600, H1 = 520, C = 5 };
    float *w0 = malloc(sizeof *w0 * H0 * D), *w1 = malloc(sizeof *w1 * H1 * H0), *w1t = malloc(sizeof *w1t * H1 * H0);
    float *w2 = malloc(sizeof *w2 * C * H1), b0[H0], b1[H1];
    SAL_ASSERT(w0 && w1 && w1t && w2);
    t_randv(&R, w0, H0 * D, 0.15f);
    t_randv(&R, w1, H1 * H0, 0.05f);
    t_randv(&R, w2, C * H1, 0.1f);
    t_randv(&R, b0, H0, 0.3f);
    t_randv(&R, b1, H1, 0.3f);
    for (int i = 0; i < H1; i++)
        for (int j = 0; j < H0; j++) w1t[j * H1 + i] = w1[i * H0 + j];
    for (int tb = 0; tb < 2; tb++) {
        sal_model *g;
        SAL_ASSERT(sal_graph_create("<relu-gemm>", &g) == SAL_OK);
        SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, DIMS(-1, D)) == SAL_OK);
        t_const(g, "w0", 2, DIMS(H0, D), w0);
        t_const(g, "b0", 1, DIMS(H0), b0);
        if (tb) t_const(g, "w1", 2, DIMS(H1, H0), w1);
        else t_const(g, "w1", 2, DIMS(H0, H1), w1t);
        t_const(g, "b1", 1, DIMS(H1), b1);
        t_const(g, "w2", 2, DIMS(C, H1), w2);
        sal_attr at[] = {sal_attr_make_int("transB", 1), sal_attr_make_int("transB", tb),
                         sal_attr_make_int("transB", 1)};
        t_node(g, "Gemm", "fc0", 3, NAMES("x", "w0", "b0"), "z0", 1, &at[0]);
        t_node(g, "Relu", "relu0", 1, NAMES("z0"), "a0", 0, NULL);
        t_node(g, "Gemm", "fc1", 3, NAMES("a0", "w1", "b1"), "z1", 1, &at[1]);
        t_node(g, "Relu", "relu1", 1, NAMES("z1"), "a1", 0, NULL);
        t_node(g, "Gemm", "fc2", 2, NAMES("a1", "w2"), "y", 1, &at[2]);
        t_finish(g, "y");
        for (int rows = 1; rows <= 2; rows++)
            for (int fuse = 0; fuse < 2; fuse++) {
                float xv[2 * D], sv[2 * C];
                t_randv(&R, xv, rows * D, 1);
                t_randv(&R, sv, rows * C, 1);
                sal_tensor x = t_tensor_of(2, DIMS(rows, D), xv), seed = t_tensor_of(2, DIMS(rows, C), sv);
                sal_session *s;
                SAL_ASSERT(sal_session_new(g, &s) == SAL_OK);
                s->fuse = fuse;
                int yv = sal_graph_find(g, "y"), xi = sal_graph_find(g, "x");
                int a0 = sal_graph_find(g, "a0"), a1 = sal_graph_find(g, "a1");
                double worst = 0, scale = 0; /* the largest error against the largest entry: entries that
                                              * cancel to 1e-4 of it carry float rounding of its size */
                for (int call = 0; call < 2; call++) { /* the second call on the kept B^T */
                    CHECK_OK(sal_exec_forward(s, &x));
                    CHECK_OK(sal_exec_backward(s, 1, &yv, &seed, NULL));
                    const float *A0 = sal_f32(&s->act[a0]), *A1 = sal_f32(&s->act[a1]), *gx = sal_f32(&s->grad[xi]);
                    for (int b = 0; b < rows; b++) {
                        double d1[H1], d0[H0];
                        for (int i = 0; i < H1; i++) {
                            double v = 0;
                            for (int c = 0; c < C; c++) v += (double)sv[b * C + c] * w2[c * H1 + i];
                            d1[i] = A1[b * H1 + i] > 0 ? v : 0;
                        }
                        for (int j = 0; j < H0; j++) {
                            double v = 0;
                            for (int i = 0; i < H1; i++) v += d1[i] * w1[i * H0 + j];
                            d0[j] = A0[b * H0 + j] > 0 ? v : 0;
                        }
                        for (int k = 0; k < D; k++) {
                            double v = 0;
                            for (int j = 0; j < H0; j++) v += d0[j] * w0[j * D + k];
                            worst = fmax(worst, fabs(v - gx[b * D + k])), scale = fmax(scale, fabs(v));
                        }
                    }
                    CHECK(!s->reached[a0] && !s->reached[a1], "transB %d, %d rows, fuse %d: the ReLUs' outputs are "
                          "not reached (their Gemms wrote their inputs' gradients)", tb, rows, fuse);
                }
                CHECK(worst < 1e-5 * scale, "transB %d, %d rows, fuse %d: the input gradient through the Gemms' ReLU "
                      "masks is off by %g of %g", tb, rows, fuse, worst, scale);
                sal_session_free(s);
                sal_tensor_free(&x);
                sal_tensor_free(&seed);
            }
        sal_model_free(g);
    }
    free(w0), free(w1), free(w1t), free(w2);
    /* a Gemm reading the ReLU's input h as its other operand too: h's gradient takes the masked
     * product and the other operand's gradient, the same as a session that keeps every gradient */
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<relu-gemm-twice>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, DIMS(-1, 4)) == SAL_OK);
    float wv[16], xv[8], sv[4];
    t_randv(&R, wv, 16, 1);
    t_randv(&R, xv, 8, 1);
    t_randv(&R, sv, 4, 1);
    t_const(g, "w", 2, DIMS(4, 4), wv);
    t_node(g, "Gemm", "fc", 2, NAMES("x", "w"), "h", 0, NULL);
    t_node(g, "Relu", "relu", 1, NAMES("h"), "r", 0, NULL);
    t_node(g, "Gemm", "outer", 2, NAMES("r", "h"), "y", 1, (sal_attr[]){sal_attr_make_int("transB", 1)});
    t_finish(g, "y");
    sal_tensor x = t_tensor_of(2, DIMS(2, 4), xv), seed = t_tensor_of(2, DIMS(2, 2), sv);
    int yv = sal_graph_find(g, "y"), xi = sal_graph_find(g, "x");
    sal_session *s[2];
    for (int k = 0; k < 2; k++) {
        SAL_ASSERT(sal_session_new(g, &s[k]) == SAL_OK);
        s[k]->keep_grads = k == 1;
        CHECK_OK(sal_exec_forward(s[k], &x));
        CHECK_OK(sal_exec_backward(s[k], 1, &yv, &seed, NULL));
    }
    CHECK(!memcmp(s[0]->grad[xi].data, s[1]->grad[xi].data, sizeof(float) * 8),
          "a Gemm reading both a ReLU's output and its input: the same input gradient as a session keeping them all");
    for (int k = 0; k < 2; k++) sal_session_free(s[k]);
    sal_tensor_free(&x);
    sal_tensor_free(&seed);
    sal_model_free(g);
}

int main(void) {
    sal_rng_seed(&R, 2024);
    t_randv(&R, X, N * D, 1);
    t_randv(&R, Z, N * K, 1);
    t_randv(&R, W, D * H, 1);
    t_randv(&R, V, H * K, 1);
    test_skipped();
    test_rules();
    test_seeds();
    test_fanout();
    test_dropout_view();
    test_block_views();
    test_params();
    test_gemm_copy();
    test_lean();
    test_relu_pool();
    test_wino_tile();
    test_relu_inplace();
    test_conv33_relu();
    test_transpose_blocked();
    test_relu_gemm();
    return t_done("test_exec");
}
