/* Graph rewrites (src/graph/rewrite.c): copies of any arity, edits (drop, rewire, rename, insert,
 * set an attribute, add and prune constants), fresh names, BatchNormalization folding against the
 * unfolded model, re-drawn weights and the model hash. The shifted model has its own tests in
 * test_audits.c. */
#include "graph/rewrite.h"
#include "graph/exec.h"
#include "testutil.h"

#define NCAT 40 /* more inputs than any fixed-size array the old rebuild loops had */

/* y = Concat(x * c0, ..., x * c39) with an unused constant, and many attributes on one node. */
static sal_model *wide_model(void) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<wide>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 3}) == SAL_OK);
    char names[NCAT][3][16];
    const char *cat[NCAT];
    for (int i = 0; i < NCAT; i++) {
        snprintf(names[i][0], 16, "c%d", i);
        snprintf(names[i][1], 16, "m%d", i);
        snprintf(names[i][2], 16, "mul%d", i);
        float v = (float)(i + 1);
        t_const(g, names[i][0], 1, (int64_t[]){1}, &v);
        t_node(g, "Mul", names[i][2], 2, (const char *[]){"x", names[i][0]}, names[i][1], 0, NULL);
        cat[i] = names[i][1];
    }
    t_const(g, "unused", 1, (int64_t[]){2}, (float[]){7, 8});
    sal_attr at[3] = {sal_attr_make_int("axis", 1), sal_attr_make_string("note", "kept"),
                      sal_attr_make_ints("extra", 3, (int64_t[]){1, 2, 3})};
    t_node(g, "Concat", "cat", NCAT, cat, "y", 3, at);
    return t_finish(g, "y");
}

static sal_tensor run(const sal_model *m, const sal_tensor *x) {
    sal_session *s;
    const sal_tensor *y;
    sal_tensor out = {0};
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    SAL_ASSERT(sal_forward(s, 1, x, &y) == SAL_OK);
    SAL_ASSERT(sal_tensor_copy(&out, y) == SAL_OK);
    sal_session_free(s);
    return out;
}

static double maxdiff(const sal_tensor *a, const sal_tensor *b) {
    if (!sal_tensor_same_shape(a, b)) return INFINITY;
    double d = 0;
    for (int64_t i = 0, n = sal_tensor_numel(a); i < n; i++) d = fmax(d, fabs(sal_f32(a)[i] - sal_f32(b)[i]));
    return d;
}

static void test_copy_any_arity(void) {
    sal_model *m = wide_model(), *c = NULL;
    sal_tensor x = t_tensor_of(2, (int64_t[]){2, 3}, (float[]){1, 2, 3, -1, 0.5f, 4});
    CHECK_OK(sal_model_copy(m, &c));
    int ci = c ? sal_graph_find_node(c, "cat") : -1;
    CHECK(ci >= 0 && c->node[ci].nin == NCAT && c->node[ci].nattr == 3, "the copy's Concat keeps %d inputs and 3 attributes",
          NCAT);
    CHECK(ci >= 0 && !strcmp(sal_attr_string(&c->node[ci], "note", ""), "kept") &&
              sal_attr_ints(&c->node[ci], "extra", &(int){0})[2] == 3,
          "string and ints attributes copied");
    sal_tensor y0 = run(m, &x), y1 = c ? run(c, &x) : (sal_tensor){0};
    CHECK(y0.dim[1] == 3 * NCAT && maxdiff(&y0, &y1) == 0, "the copy computes the same");
    CHECK(c && sal_graph_find(c, "unused") >= 0, "a plain copy keeps every constant");
    CHECK(c && sal_model_hash(c) == sal_model_hash(m), "a copy hashes as the original");
    /* a weight of the copy is its own: changing it changes the hash, not the original */
    int v = c ? sal_graph_find(c, "c5") : -1;
    if (v >= 0) sal_f32(&c->val[v].t)[0] = 100;
    CHECK(c && sal_model_hash(c) != sal_model_hash(m) && sal_f32(&m->val[sal_graph_find(m, "c5")].t)[0] == 6,
          "the copy owns its weights");
    sal_model_free(c);
    sal_tensor_free(&y0);
    sal_tensor_free(&y1);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* Drop mul0, feed its slot of the Concat from a new constant, rename mul1's output and insert a
 * Neg-like node (Sub from zero) in its place, prune what nobody reads. */
static void test_edits(void) {
    sal_model *m = wide_model(), *c = NULL;
    const char *cat_in[NCAT];
    for (int i = 0; i < NCAT; i++) cat_in[i] = m->val[m->node[sal_graph_find_node(m, "cat")].in[i]].name;
    cat_in[0] = "k";
    const char *pre[] = {"m1_pre"}, *add_in[] = {"zero", "m1_pre"};
    sal_node_edit ed[3] = {
        {.node = sal_graph_find_node(m, "mul0"), .drop = true},
        {.node = sal_graph_find_node(m, "cat"), .nin = NCAT, .in = cat_in},
        {.node = sal_graph_find_node(m, "mul1"), .nout = 1, .out = pre, .add_op = SAL_OP_Sub, .add_name = "neg1",
         .add_nin = 2, .add_in = add_in, .add_out = "m1"},
    };
    sal_tensor cv[2] = {t_tensor_of(2, (int64_t[]){1, 3}, (float[]){9, 9, 9}), t_tensor_of(0, NULL, (float[]){0})};
    const char *cn[2] = {"k", "zero"};
    sal_model_edits e = {.nedit = 3, .edit = ed, .nconst = 2, .const_name = cn, .const_value = cv, .prune = true};
    CHECK_OK(sal_model_rewrite(m, &e, &c));
    sal_tensor x = t_tensor_of(2, (int64_t[]){1, 3}, (float[]){1, -2, 3});
    sal_tensor y = c ? run(c, &x) : (sal_tensor){0};
    const float *p = sal_f32(&y);
    CHECK(c && p[0] == 9 && p[2] == 9 && p[3] == -2 && p[4] == 4 && p[5] == -6 && p[6] == 3 && p[8] == 9,
          "edited copy: constant in slot 0, negated mul1, the rest unchanged");
    CHECK(c && sal_graph_find(c, "unused") < 0 && sal_graph_find(c, "c0") < 0 && sal_graph_find(c, "c1") >= 0,
          "pruned: the unread constants c0 and 'unused' are gone, c1 stays");
    CHECK(c && sal_graph_find_node(c, "mul0") < 0 && sal_graph_find_node(c, "neg1") >= 0, "dropped and inserted nodes");
    char buf[64];
    sal_fresh_name(m, c, "m1", "_pre", buf, sizeof buf);
    CHECK(!strcmp(buf, "m1_pre2"), "fresh name avoids the copy's names: %s", buf);
    sal_fresh_name(m, NULL, "cat", "", buf, sizeof buf);
    CHECK(!strcmp(buf, "cat2"), "fresh name avoids node names: %s", buf);
    sal_tensor_free(&cv[0]);
    sal_tensor_free(&cv[1]);
    sal_tensor_free(&x);
    sal_tensor_free(&y);
    sal_model_free(c);
    sal_model_free(m);
}

/* Conv -> BatchNormalization -> Relu -> Gemm(beta 0.5) -> BatchNormalization: both fold, and the
 * folded model computes what the unfolded one does. */
static void test_canonize(void) {
    sal_rng r;
    sal_rng_seed(&r, 3);
    sal_model *m;
    SAL_ASSERT(sal_graph_create("<bn>", &m) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(m, "x", SAL_F32, 4, (int64_t[]){-1, 2, 5, 5}) == SAL_OK);
    float w[3 * 2 * 9], b[3], g[4 * 75], gb[4], bnv[4][4], bnw[4][3];
    t_randv(&r, w, 54, 0.5f);
    t_randv(&r, b, 3, 0.5f);
    t_randv(&r, g, 300, 0.1f);
    t_randv(&r, gb, 4, 0.5f);
    for (int k = 0; k < 4; k++)
        for (int c = 0; c < 4; c++) {
            bnv[k][c] = k == 3 ? 0.5f + (float)c : (float)sal_rng_normal(&r);
            if (c < 3) bnw[k][c] = k == 3 ? 0.2f + (float)c : (float)sal_rng_normal(&r);
        }
    t_const(m, "w", 4, (int64_t[]){3, 2, 3, 3}, w);
    t_const(m, "b", 1, (int64_t[]){3}, b);
    t_const(m, "g", 2, (int64_t[]){75, 4}, g);
    t_const(m, "gb", 1, (int64_t[]){4}, gb);
    const char *p1[4] = {"s1", "t1", "mu1", "v1"}, *p2[4] = {"s2", "t2", "mu2", "v2"};
    for (int k = 0; k < 4; k++) {
        t_const(m, p1[k], 1, (int64_t[]){3}, bnw[k]);
        t_const(m, p2[k], 1, (int64_t[]){4}, bnv[k]);
    }
    sal_attr pads[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    t_node(m, "Conv", "conv", 3, (const char *[]){"x", "w", "b"}, "c", 1, pads);
    t_node(m, "BatchNormalization", "bn1", 5, (const char *[]){"c", "s1", "t1", "mu1", "v1"}, "n1", 0, NULL);
    t_node(m, "Relu", "relu", 1, (const char *[]){"n1"}, "a", 0, NULL);
    t_node(m, "Flatten", "flat", 1, (const char *[]){"a"}, "f", 0, NULL);
    sal_attr beta[1] = {sal_attr_make_float("beta", 0.5f)};
    t_node(m, "Gemm", "fc", 3, (const char *[]){"f", "g", "gb"}, "h", 1, beta);
    t_node(m, "BatchNormalization", "bn2", 5, (const char *[]){"h", "s2", "t2", "mu2", "v2"}, "y", 0, NULL);
    t_finish(m, "y");
    sal_model *c = NULL;
    int nf = 0;
    CHECK_OK(sal_canonize(m, &c, &nf));
    CHECK(nf == 2 && c && c->nnode == 4, "two folds, four nodes left (%d folds)", nf);
    int fc = c ? sal_graph_find_node(c, "fc") : -1;
    CHECK(fc >= 0 && sal_attr_float(&c->node[fc], "beta", 0) == 1.0f, "the folded Gemm's beta is 1");
    CHECK(c && sal_graph_find(c, "s1") < 0 && sal_graph_find(c, "w") < 0, "the replaced constants are pruned");
    sal_tensor x = t_rand(&r, 4, (int64_t[]){2, 2, 5, 5}, 1);
    sal_tensor y0 = run(m, &x), y1 = c ? run(c, &x) : (sal_tensor){0};
    CHECK(maxdiff(&y0, &y1) < 1e-4, "folded model computes the same (max diff %g)", maxdiff(&y0, &y1));
    sal_model *none = NULL;
    nf = -1;
    CHECK_OK(sal_canonize(c, &none, &nf));
    CHECK(nf == 0 && none == NULL, "nothing left to fold");
    sal_tensor_free(&x);
    sal_tensor_free(&y0);
    sal_tensor_free(&y1);
    sal_model_free(c);
    sal_model_free(m);
}

/* Re-drawn weights: N(0, sigma^2) per element, scaled by fan-in with zero biases, reproducible. */
static void test_reinit(void) {
    sal_model *m;
    SAL_ASSERT(sal_graph_create("<fc>", &m) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(m, "x", SAL_F32, 2, (int64_t[]){-1, 200}) == SAL_OK);
    t_const(m, "w", 2, (int64_t[]){300, 200}, NULL);
    t_const(m, "b", 1, (int64_t[]){300}, (float[300]){1});
    sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
    t_node(m, "Gemm", "fc", 3, (const char *[]){"x", "w", "b"}, "y", 1, tb);
    t_finish(m, "y");
    int w = sal_graph_find(m, "w"), b = sal_graph_find(m, "b");
    double var[2];
    for (int scaled = 0; scaled < 2; scaled++) {
        sal_reinit_params(m, 0, scaled, 0.05, 42);
        double s2 = 0, bsum = 0;
        for (int i = 0; i < 60000; i++) s2 += (double)sal_f32(&m->val[w].t)[i] * sal_f32(&m->val[w].t)[i];
        for (int i = 0; i < 300; i++) bsum += fabs(sal_f32(&m->val[b].t)[i]);
        var[scaled] = s2 / 60000;
        CHECK(scaled ? bsum == 0 : bsum > 0, "biases: zero when scaled, drawn otherwise (sum |b| %g)", bsum);
    }
    CHECK(fabs(var[0] - 0.0025) < 0.0025 * 0.05, "sigma 0.05: variance %g", var[0]);
    CHECK(fabs(var[1] - 0.01) < 0.01 * 0.05, "He: variance %g, 2 / fan_in = 0.01", var[1]);
    float first = sal_f32(&m->val[w].t)[7];
    sal_reinit_params(m, 0, true, 0, 43);
    CHECK(sal_f32(&m->val[w].t)[7] != first, "another seed draws other weights");
    sal_reinit_params(m, 0, true, 0, 42);
    CHECK(sal_f32(&m->val[w].t)[7] == first, "the same seed draws the same weights");
    sal_model_free(m);
}

/* The invariance audit's twin: f2 (the shifted model of a padded CNN, so an Add after the first
 * convolution carries the shift) runs f1 at input - m beside it and takes f1's activations for the
 * values both compute alike. On an image whose black background gives the first convolution exact
 * ties, every such activation of f2 at x + m is then f1's at (x + m) - m bit for bit, f2's own first
 * convolution still runs, and the input gradients of both models agree bit for bit; without the
 * twin they need not (that is the point). */
static void test_twin(void) {
    sal_model *f1 = NULL, *f2 = NULL;
    CHECK_OK(sal_model_build("cnn:1x12x12", 4, 3, &f1));
    sal_rng r;
    sal_rng_seed(&r, 5);
    sal_tensor x = {0}, xs = {0}, x1 = {0}, m = {0}, seed = {0};
    CHECK_OK(sal_tensor_alloc(&x, SAL_F32, 4, (int64_t[]){2, 1, 12, 12}));
    for (int n = 0; n < 2; n++) /* a bright patch on black */
        for (int y = 3; y < 8; y++)
            for (int c = 4; c < 9; c++) sal_f32(&x)[n * 144 + y * 12 + c] = 0.05f + 0.9f * (float)sal_rng_uniform(&r);
    CHECK_OK(sal_shift_checkerboard(3, (int64_t[]){1, 12, 12}, 3, -0.7, &m));
    for (int i = 0; i < 144; i++) sal_f32(&m)[i] -= 0.3f;
    CHECK_OK(sal_tensor_copy(&xs, &x));
    for (int i = 0; i < 288; i++) sal_f32(&xs)[i] += sal_f32(&m)[i % 144];
    CHECK_OK(sal_tensor_copy(&x1, &xs));
    for (int i = 0; i < 288; i++) sal_f32(&x1)[i] -= sal_f32(&m)[i % 144];
    CHECK_OK(sal_model_shifted(f1, &m, &f2));
    CHECK_OK(sal_model_set_twin(f2, f1, &m));
    sal_session *s1 = NULL, *s2 = NULL;
    CHECK_OK(sal_session_new(f1, &s1));
    CHECK_OK(sal_session_new(f2, &s2));
    if (!s1 || !s2) goto done;
    CHECK(s2->twin && s2->twin_of, "a session of f2 has no twin");
    CHECK_OK(sal_exec_forward(s1, &x1));
    CHECK_OK(sal_exec_forward(s2, &xs));
    int shared = 0, own = 0;
    for (int v = 0; v < f2->nval; v++) {
        if (f2->val[v].kind != SAL_VAL_NODE) continue;
        int u = sal_strmap_get(&f1->names, f2->val[v].name);
        if (u < 0) { /* the convolution's own output before the Add: f2's, not replaced */
            own++;
            CHECK((!s2->twin_of || s2->twin_of[v] < 0) && strstr(f2->val[v].name, "_unshifted"), "value '%s' has no twin",
                  f2->val[v].name);
            continue;
        }
        shared++;
        const sal_tensor *a = &s1->act[u], *b = &s2->act[v];
        CHECK(sal_tensor_same_shape(a, b) && !memcmp(a->data, b->data, sizeof(float) * (size_t)sal_tensor_numel(a)),
              "value '%s': f2's activation is not f1's bit for bit", f2->val[v].name);
    }
    CHECK(own == 1 && shared == f1->nnode, "%d values shared, %d f2's own (want %d, 1)", shared, own, f1->nnode);
    /* input gradients from the same seed: f2's first layer has f1's weights, every decision is f1's */
    int out1 = f1->output[0], out2 = f2->output[0];
    CHECK_OK(sal_tensor_alloc(&seed, SAL_F32, 2, (int64_t[]){2, 4}));
    sal_f32(&seed)[1] = sal_f32(&seed)[4 + 2] = 1;
    CHECK_OK(sal_exec_backward(s1, 1, &out1, &seed, NULL));
    CHECK_OK(sal_exec_backward(s2, 1, &out2, &seed, NULL));
    const sal_tensor *g1 = &s1->grad[f1->input[0]], *g2 = &s2->grad[f2->input[0]];
    CHECK(!memcmp(g1->data, g2->data, sizeof(float) * 288), "input gradients differ: %g", maxdiff(g1, g2));
    /* the outputs are f2's function: within rounding of f1 at x */
    sal_tensor y1 = run(f1, &x);
    CHECK(maxdiff(&y1, &s2->act[out2]) < 1e-5, "f2(x + m) with the twin: %g from f1(x)", maxdiff(&y1, &s2->act[out2]));
    sal_tensor_free(&y1);
    /* removed: sessions of f2 run on their own */
    CHECK_OK(sal_model_set_twin(f2, f1, NULL));
    sal_session *s3 = NULL;
    CHECK_OK(sal_session_new(f2, &s3));
    CHECK(s3 && !s3->twin, "a session after the twin was removed still has one");
    sal_session_free(s3);
    /* every allocation of a twinned session failing in turn: an error, no leak */
    CHECK_OK(sal_model_set_twin(f2, f1, &m));
    long k = 1;
    for (; k < 1000; k++) {
        sal_session *s = NULL;
        sal_alloc_fail_after(k);
        sal_status st = sal_session_new(f2, &s);
        if (st == SAL_OK) st = sal_exec_forward(s, &xs);
        sal_alloc_fail_after(0);
        sal_session_free(s);
        if (st == SAL_OK) break;
        CHECK(st == SAL_ERR_NOMEM, "allocation %ld: %s", k, sal_last_error());
        if (st != SAL_ERR_NOMEM) break;
    }
    CHECK(k > 5 && k < 1000, "twin session: %ld allocations walked", k);
done:
    sal_session_free(s1);
    sal_session_free(s2);
    sal_tensor *t[] = {&x, &xs, &x1, &m, &seed};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) sal_tensor_free(t[i]);
    sal_model_free(f2);
    sal_model_free(f1);
}

int main(void) {
    test_copy_any_arity();
    test_edits();
    test_canonize();
    test_reinit();
    test_twin();
    return t_done("test_rewrite");
}
