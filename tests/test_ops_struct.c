/* Reductions (Max, Min, L2, SumSquare), ArgMax/ArgMin, Split, Tile, ScatterND, CumSum, Einsum and
 * the layer, instance and group normalizations: gradients against finite differences, forward
 * passes against hand-computed values or direct loops written here, opset variants against each
 * other, traits, and the refusals that must name the node. */
#include "opcheck.h"

static sal_rng R;

static sal_tensor trand(int ndim, const int64_t *dim) { return t_rand(&R, ndim, dim, 1.0f); }

static void gc(int64_t opset, const char *op, int nin, sal_tensor *in, const bool *cst, int nout, int nattr,
               sal_attr *attr) {
    oc_gradcheck((oc_node){opset, op, nin, nout, in, cst, nattr, attr}, 7);
}

/* Runs a one-output node; y gets the output; with seed, dx the gradient w.r.t. input 0. */
static sal_status run1(int64_t opset, const char *op, int nin, const sal_tensor *in, const bool *cst, int nattr,
                       sal_attr *attr, sal_tensor *y, const sal_tensor *seed, sal_tensor *dx) {
    const sal_tensor *sd[1] = {seed};
    return oc_run((oc_node){opset, op, nin, 1, in, cst, nattr, attr}, y, seed ? sd : NULL, 0, dx);
}

static void free_all(sal_tensor **t, size_t n) {
    for (size_t i = 0; i < n; i++) sal_tensor_free(t[i]);
}
#define FREE(...) free_all((sal_tensor *[]){__VA_ARGS__}, sizeof((sal_tensor *[]){__VA_ARGS__}) / sizeof(sal_tensor *))

/* ---- traits ---- */

static void test_traits(void) {
    struct {
        const char *op;
        unsigned traits, lin_in;
    } want[] = {
        {"Split", SAL_TR_ROUTE, 0},
        {"Tile", SAL_TR_ROUTE, 0},
        {"ScatterND", SAL_TR_ROUTE, 0},
        {"CumSum", SAL_TR_ADDITIVE, 0x1},
        {"Einsum", SAL_TR_MULTILINEAR, 0x3},
        {"LayerNormalization", SAL_TR_NORM, 0},
        {"InstanceNormalization", SAL_TR_NORM, 0},
        {"GroupNormalization", SAL_TR_NORM, 0},
        {"ReduceMax", 0, 0},
        {"ReduceMin", 0, 0},
        {"ReduceL2", 0, 0},
        {"ReduceSumSquare", 0, 0},
        {"ArgMax", 0, 0},
        {"ArgMin", 0, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const sal_op *op = sal_op_lookup(want[i].op);
        CHECK(op && op->traits == want[i].traits && op->lin_in == want[i].lin_in, "traits of %s", want[i].op);
    }
    /* Einsum is linear in whichever single operand varies, not in both */
    sal_node n = {.op = sal_op_lookup("Einsum")};
    CHECK(sal_node_linear_in(&n, 0x1) && sal_node_linear_in(&n, 0x2) && !sal_node_linear_in(&n, 0x3),
          "Einsum is multilinear");
    n.op = sal_op_lookup("LayerNormalization");
    CHECK(!sal_node_linear_in(&n, 0x1), "LayerNormalization is not linear");
}

/* ---- reductions ---- */

static void test_reduce_grads(void) {
    static const char *ops[] = {"ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare"};
    for (int k = 0; k < 4; k++) {
        gc(13, ops[k], 1, (sal_tensor[]){trand(3, DIMS(2, 3, 4))}, BOOLS(false), 1, 0, NULL); /* all axes */
        sal_attr a1[2] = {sal_attr_make_ints("axes", 2, DIMS(0, 2)), sal_attr_make_int("keepdims", 0)};
        gc(13, ops[k], 1, (sal_tensor[]){trand(3, DIMS(2, 3, 4))}, BOOLS(false), 1, 2, a1);
        sal_attr a2[1] = {sal_attr_make_ints("axes", 1, DIMS(-1))};
        gc(13, ops[k], 1, (sal_tensor[]){trand(4, DIMS(2, 3, 2, 2))}, BOOLS(false), 1, 1, a2);
        /* opset 18: axes as an input */
        gc(18, ops[k], 2, (sal_tensor[]){trand(3, DIMS(2, 3, 4)), VEC(1)}, BOOLS(false, true), 1, 0, NULL);
    }
}

static void test_reduce_values(void) {
    sal_tensor x = tf32(2, DIMS(2, 3), (float[]){1, -5, 3, 4, 2, -6}), y = {0}, dx = {0};
    sal_tensor seed = tf32(2, DIMS(2, 1), (float[]){1, 2});
    struct {
        const char *op;
        float y[2], dx[6];
    } cases[] = {
        {"ReduceMax", {3, 4}, {0, 0, 1, 2, 0, 0}},
        {"ReduceMin", {-5, -6}, {0, 1, 0, 0, 0, 2}},
        {"ReduceSumSquare", {35, 56}, {2, -10, 6, 16, 8, -24}},
        /* d sqrt(sum x^2) = x / y */
        {"ReduceL2", {5.9160798f, 7.4833148f}, {1 / 5.9160798f, -5 / 5.9160798f, 3 / 5.9160798f, 8 / 7.4833148f,
                                                 4 / 7.4833148f, -12 / 7.4833148f}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        for (int opset = 13; opset <= 18; opset += 5) { /* axes attribute, then input */
            sal_attr at[1] = {sal_attr_make_ints("axes", 1, DIMS(1))};
            sal_tensor ax = VEC(1);
            sal_status st = opset < 18 ? run1(opset, cases[k].op, 1, &x, NULL, 1, at, &y, &seed, &dx)
                                       : run1(opset, cases[k].op, 2, (sal_tensor[]){x, ax}, NULL, 0, NULL, &y, &seed, &dx);
            if (opset >= 18) sal_attr_clear(&at[0]);
            CHECK_OK(st);
            sal_tensor wy = tf32(2, DIMS(2, 1), cases[k].y), wd = tf32(2, DIMS(2, 3), cases[k].dx);
            CHECK(max_diff(&y, &wy) < 1e-5 && max_diff(&dx, &wd) < 1e-5, "%s opset %d values and gradient",
                  cases[k].op, opset);
            FREE(&wy, &wd, &ax);
        }
    }
    /* ties share the gradient equally, as in PyTorch's amax */
    sal_tensor t = tf32(1, DIMS(4), (float[]){2, 7, 7, 1}), s1 = tf32(1, DIMS(1), (float[]){3});
    sal_attr kd[1] = {sal_attr_make_int("keepdims", 1)};
    CHECK_OK(run1(13, "ReduceMax", 1, &t, NULL, 1, kd, &y, &s1, &dx));
    sal_tensor wt = tf32(1, DIMS(4), (float[]){0, 1.5f, 1.5f, 0});
    CHECK(sal_f32(&y)[0] == 7 && max_diff(&dx, &wt) == 0, "ReduceMax ties split the gradient");
    /* a NaN is the maximum, as in numpy */
    sal_tensor tn = tf32(1, DIMS(3), (float[]){1, NAN, 3});
    CHECK_OK(run1(13, "ReduceMax", 1, &tn, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(isnan(sal_f32(&y)[0]), "ReduceMax propagates NaN");
    /* opset 18 noop_with_empty_axes: the identity for Max, the square for SumSquare */
    sal_attr nop[1] = {sal_attr_make_int("noop_with_empty_axes", 1)};
    CHECK_OK(run1(18, "ReduceMax", 2, (sal_tensor[]){x, OMITTED}, NULL, 1, nop, &y, NULL, NULL));
    CHECK(max_diff(&y, &x) == 0, "ReduceMax noop_with_empty_axes");
    sal_attr nop2[1] = {sal_attr_make_int("noop_with_empty_axes", 1)};
    CHECK_OK(run1(18, "ReduceSumSquare", 2, (sal_tensor[]){x, OMITTED}, NULL, 1, nop2, &y, NULL, NULL));
    CHECK(sal_f32(&y)[1] == 25 && shape_is(&y, 2, DIMS(2, 3)), "ReduceSumSquare noop_with_empty_axes squares");
    sal_tensor bad = VEC(2);
    CHECK_FAILS(run1(18, "ReduceMin", 2, (sal_tensor[]){x, bad}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_ARG,
                "node 'n' (ReduceMin): axis 2 out of range");
    FREE(&x, &y, &dx, &seed, &t, &s1, &wt, &tn, &bad);
}

static void test_argmax(void) {
    sal_tensor x = tf32(2, DIMS(2, 4), (float[]){1, 9, 3, 9, -2, -7, -7, 0}), y = {0};
    struct {
        const char *op;
        int64_t axis, keep, last;
        int nd;
        int64_t dim[2], want[4];
    } c[] = {
        {"ArgMax", 1, 1, 0, 2, {2, 1}, {1, 3}},
        {"ArgMax", -1, 0, 1, 1, {2}, {3, 3}},
        {"ArgMax", 0, 1, 0, 2, {1, 4}, {0, 0, 0, 0}},
        {"ArgMin", 1, 0, 0, 1, {2}, {0, 1}},
        {"ArgMin", 1, 0, 1, 1, {2}, {0, 2}},
    };
    for (size_t k = 0; k < sizeof c / sizeof *c; k++) {
        sal_attr at[3] = {sal_attr_make_int("axis", c[k].axis), sal_attr_make_int("keepdims", c[k].keep),
                          sal_attr_make_int("select_last_index", c[k].last)};
        CHECK_OK(run1(13, c[k].op, 1, &x, NULL, 3, at, &y, NULL, NULL));
        sal_tensor w = ti64(c[k].nd, c[k].dim, c[k].want);
        CHECK(max_diff(&y, &w) == 0, "%s case %zu", c[k].op, k);
        sal_tensor_free(&w);
    }
    sal_attr at[1] = {sal_attr_make_int("axis", 2)};
    CHECK_FAILS(run1(13, "ArgMax", 1, &x, NULL, 1, at, &y, NULL, NULL), SAL_ERR_ARG, "(ArgMax): axis 2 out of range");
    FREE(&x, &y);
}

/* ---- Split ---- */

static void test_split(void) {
    /* (2, 5) split along axis 1 into 2 + 3, opset 11 (attribute), 13 (input), 18 (num_outputs: 3 + 2) */
    float xv[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    sal_tensor x = tf32(2, DIMS(2, 5), xv), y[3] = {{0}}, dx = {0};
    sal_tensor s0 = tf32(2, DIMS(2, 2), (float[]){1, 2, 3, 4});
    const sal_tensor *seeds[2] = {&s0, NULL}; /* no gradient reaches the second output */
    for (int v = 0; v < 3; v++) {
        int64_t opset = v == 0 ? 11 : v == 1 ? 13 : 18;
        sal_tensor sp = VEC(2, 3);
        sal_attr at[2] = {sal_attr_make_int("axis", -1),
                          v == 0 ? sal_attr_make_ints("split", 2, DIMS(2, 3)) : sal_attr_make_int("num_outputs", 2)};
        int nattr = v == 1 ? 1 : 2;
        if (v == 1) sal_attr_clear(&at[1]);
        sal_status st = oc_run((oc_node){opset, "Split", v == 1 ? 2 : 1, 2, (sal_tensor[]){x, sp}, NULL, nattr, at}, y,
                               v == 2 ? NULL : seeds, 0, &dx);
        CHECK_OK(st);
        int64_t l0 = v == 2 ? 3 : 2;
        bool ok = shape_is(&y[0], 2, DIMS(2, l0)) && shape_is(&y[1], 2, DIMS(2, 5 - l0));
        for (int r = 0; ok && r < 2; r++)
            for (int j = 0; j < 5; j++) ok &= (j < l0 ? sal_f32(&y[0])[r * l0 + j] : sal_f32(&y[1])[r * (5 - l0) + j - l0]) == xv[r * 5 + j];
        CHECK(ok, "Split opset %lld values", (long long)opset);
        if (v < 2) {
            sal_tensor wd = tf32(2, DIMS(2, 5), (float[]){1, 2, 0, 0, 0, 3, 4, 0, 0, 0});
            CHECK(max_diff(&dx, &wd) == 0, "Split opset %lld gradient with one output unseeded", (long long)opset);
            sal_tensor_free(&wd);
        }
        sal_tensor_free(&sp);
    }
    /* equal parts without sizes; int64 data */
    sal_tensor xi = ti64(1, DIMS(6), (int64_t[]){1, 2, 3, 4, 5, 6});
    CHECK_OK(oc_run((oc_node){13, "Split", 1, 3, &xi, NULL, 0, NULL}, y, NULL, 0, NULL));
    CHECK(((int64_t *)y[2].data)[1] == 6 && shape_is(&y[1], 1, DIMS(2)), "Split int64 equal parts");
    CHECK_FAILS(oc_run((oc_node){13, "Split", 1, 4, &xi, NULL, 0, NULL}, y, NULL, 0, NULL), SAL_ERR_SHAPE,
                "node 'n' (Split): an axis of 6 does not split into 4 equal parts");
    sal_tensor bad = VEC(2, 2);
    CHECK_FAILS(oc_run((oc_node){13, "Split", 2, 2, (sal_tensor[]){xi, bad}, NULL, 0, NULL}, y, NULL, 0, NULL),
                SAL_ERR_SHAPE, "add up to 4");
    /* gradients, every output seeded */
    sal_attr a[1] = {sal_attr_make_int("axis", 1)};
    gc(13, "Split", 2, (sal_tensor[]){trand(3, DIMS(2, 6, 3)), VEC(1, 0, 5)}, BOOLS(false, true), 3, 1, a);
    gc(13, "Split", 1, (sal_tensor[]){trand(2, DIMS(4, 3))}, BOOLS(false), 2, 0, NULL);
    FREE(&x, &y[0], &y[1], &y[2], &dx, &s0, &xi, &bad);
}

/* ---- Tile ---- */

static void test_tile(void) {
    sal_tensor x = tf32(2, DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6}), rep = VEC(2, 2), y = {0}, dx = {0};
    sal_tensor seed = tf32(2, DIMS(4, 6), NULL);
    for (int i = 0; i < 24; i++) sal_f32(&seed)[i] = (float)i;
    CHECK_OK(run1(13, "Tile", 2, (sal_tensor[]){x, rep}, NULL, 0, NULL, &y, &seed, &dx));
    bool ok = shape_is(&y, 2, DIMS(4, 6));
    for (int r = 0; ok && r < 4; r++)
        for (int c = 0; c < 6; c++) ok &= sal_f32(&y)[r * 6 + c] == sal_f32(&x)[(r % 2) * 3 + c % 3];
    CHECK(ok, "Tile values");
    /* dx[i][j] = sum over the four copies of seed */
    ok = true;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            float w = 0;
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) w += (float)((i + 2 * a) * 6 + j + 3 * b);
            ok &= sal_f32(&dx)[i * 3 + j] == w;
        }
    CHECK(ok, "Tile gradient");
    gc(13, "Tile", 2, (sal_tensor[]){trand(3, DIMS(2, 1, 3)), VEC(1, 3, 2)}, BOOLS(false, true), 1, 0, NULL);
    sal_tensor xi = ti64(1, DIMS(2), (int64_t[]){7, 8}), r3 = VEC(3);
    CHECK_OK(run1(13, "Tile", 2, (sal_tensor[]){xi, r3}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(shape_is(&y, 1, DIMS(6)) && ((int64_t *)y.data)[5] == 8, "Tile int64");
    sal_tensor r1 = VEC(2);
    CHECK_FAILS(run1(13, "Tile", 2, (sal_tensor[]){x, r1}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE,
                "node 'n' (Tile): repeats has 1 entries for an input of rank 2");
    FREE(&x, &rep, &y, &dx, &seed, &xi, &r3, &r1);
}

/* ---- CumSum ---- */

static void test_cumsum(void) {
    sal_tensor x = tf32(2, DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6}), y = {0}, ax1 = ti64(0, NULL, (int64_t[]){1});
    sal_tensor ax0 = ti64(1, DIMS(1), (int64_t[]){-2});
    struct {
        int excl, rev;
        sal_tensor *axis;
        float want[6];
    } c[] = {
        {0, 0, &ax1, {1, 3, 6, 4, 9, 15}},
        {1, 0, &ax1, {0, 1, 3, 0, 4, 9}},
        {0, 1, &ax1, {6, 5, 3, 15, 11, 6}},
        {1, 1, &ax1, {5, 3, 0, 11, 6, 0}},
        {0, 0, &ax0, {1, 2, 3, 5, 7, 9}},
        {1, 1, &ax0, {4, 5, 6, 0, 0, 0}},
    };
    for (size_t k = 0; k < sizeof c / sizeof *c; k++) {
        sal_attr at[2] = {sal_attr_make_int("exclusive", c[k].excl), sal_attr_make_int("reverse", c[k].rev)};
        CHECK_OK(run1(14, "CumSum", 2, (sal_tensor[]){x, *c[k].axis}, NULL, 2, at, &y, NULL, NULL));
        sal_tensor w = tf32(2, DIMS(2, 3), c[k].want);
        CHECK(max_diff(&y, &w) == 0, "CumSum case %zu", k);
        sal_tensor_free(&w);
        sal_attr ag[2] = {sal_attr_make_int("exclusive", c[k].excl), sal_attr_make_int("reverse", c[k].rev)};
        sal_tensor a = {0};
        SAL_ASSERT(sal_tensor_copy(&a, c[k].axis) == SAL_OK);
        gc(14, "CumSum", 2, (sal_tensor[]){trand(3, DIMS(2, 3, 4)), a}, BOOLS(false, true), 1, 2, ag);
    }
    sal_tensor ax5 = ti64(0, NULL, (int64_t[]){5});
    CHECK_FAILS(run1(14, "CumSum", 2, (sal_tensor[]){x, ax5}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_ARG,
                "(CumSum): axis 5 out of range");
    FREE(&x, &y, &ax1, &ax0, &ax5);
}

/* ---- Einsum ---- */

/* Direct evaluation: every assignment of the labels, out[o] += A[a] * B[b]; a size-1 operand dim
 * broadcasts. la, lb, lo: the labels of A, B (NULL: one operand) and the output, one per dim. */
static sal_tensor einsum_ref(const char *la, const sal_tensor *A, const char *lb, const sal_tensor *B, const char *lo) {
    int64_t size[128] = {0};
    const char *ls[2] = {la, lb};
    const sal_tensor *ts[2] = {A, B};
    char all[64];
    int na = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; ls[k] && ls[k][i]; i++) {
            int c = ls[k][i];
            if (ts[k]->dim[i] > size[c]) size[c] = ts[k]->dim[i];
            if (!strchr(all, c) || !na) all[na++] = (char)c, all[na] = 0;
        }
    int64_t od[8];
    int on = (int)strlen(lo);
    for (int i = 0; i < on; i++) od[i] = size[(int)lo[i]];
    sal_tensor out = tf32(on, od, NULL);
    int64_t idx[128] = {0}, total = 1;
    for (int i = 0; i < na; i++) total *= size[(int)all[i]];
    for (int64_t t = 0; t < total; t++) {
        int64_t r = t;
        for (int i = na - 1; i >= 0; i--) {
            idx[(int)all[i]] = r % size[(int)all[i]];
            r /= size[(int)all[i]];
        }
        double v = 1;
        for (int k = 0; k < 2; k++) {
            if (!ls[k]) continue;
            int64_t off = 0;
            for (int i = 0; ls[k][i]; i++) off = off * ts[k]->dim[i] + (ts[k]->dim[i] == 1 ? 0 : idx[(int)ls[k][i]]);
            v *= sal_f32(ts[k])[off];
        }
        int64_t off = 0;
        for (int i = 0; i < on; i++) off = off * od[i] + idx[(int)lo[i]];
        sal_f32(&out)[off] += (float)v;
    }
    return out;
}

static void einsum_case(const char *eq, const char *la, int ra, const int64_t *da, const char *lb, int rb,
                        const int64_t *db, const char *lo) {
    sal_tensor A = trand(ra, da), B = lb ? trand(rb, db) : (sal_tensor){0}, y = {0};
    int nin = lb ? 2 : 1;
    sal_attr at[1] = {sal_attr_make_string("equation", eq)};
    sal_status st = run1(12, "Einsum", nin, (sal_tensor[]){A, B}, NULL, 1, at, &y, NULL, NULL);
    CHECK(st == SAL_OK, "Einsum '%s': %s", eq, sal_last_error());
    sal_tensor w = einsum_ref(la, &A, lb, lb ? &B : NULL, lo);
    CHECK(max_diff(&y, &w) < 1e-4, "Einsum '%s' against direct loops (max diff %g)", eq, max_diff(&y, &w));
    sal_attr aa[1] = {sal_attr_make_string("equation", eq)};
    oc_accumulates((oc_node){12, "Einsum", nin, 1, (sal_tensor[]){A, B}, BOOLS(false, false), 1, aa}, 3);
    if (lb) { /* and into the second operand: "A,B->O" as "B,A->O" */
        char sw[64];
        const char *comma = strchr(eq, ','), *arrow = strstr(eq, "->"), *end = arrow ? arrow : eq + strlen(eq);
        snprintf(sw, sizeof sw, "%.*s,%.*s%s", (int)(end - comma - 1), comma + 1, (int)(comma - eq), eq, end);
        sal_attr ab[1] = {sal_attr_make_string("equation", sw)};
        oc_accumulates((oc_node){12, "Einsum", nin, 1, (sal_tensor[]){B, A}, BOOLS(false, false), 1, ab}, 3);
    }
    sal_attr ag[1] = {sal_attr_make_string("equation", eq)};
    gc(12, "Einsum", nin, (sal_tensor[]){A, B}, BOOLS(false, false), 1, 1, ag);
    FREE(&y, &w);
}

static void test_einsum(void) {
    /* attention: in place, no copies */
    einsum_case("bhid,bhjd->bhij", "bhid", 4, DIMS(2, 2, 3, 4), "bhjd", 4, DIMS(2, 2, 5, 4), "bhij");
    einsum_case("bhij,bhjd->bhid", "bhij", 4, DIMS(2, 2, 3, 5), "bhjd", 4, DIMS(2, 2, 5, 4), "bhid");
    /* linear layers */
    einsum_case("...ij,jk->...ik", "abij", 4, DIMS(2, 3, 2, 4), "jk", 2, DIMS(4, 3), "abik");
    einsum_case("bij,jk->bik", "bij", 3, DIMS(2, 3, 4), "jk", 2, DIMS(4, 5), "bik");
    einsum_case("bij,kj->bik", "bij", 3, DIMS(2, 3, 4), "kj", 2, DIMS(5, 4), "bik");
    /* transposed operands, a (batch, right, left) output, a permuted output, sums, broadcasting */
    einsum_case("bji,bjk->bik", "bji", 3, DIMS(2, 4, 3), "bjk", 3, DIMS(2, 4, 5), "bik");
    einsum_case("ij,jk->ki", "ij", 2, DIMS(3, 4), "jk", 2, DIMS(4, 5), "ki");
    einsum_case("ibj,jk->kbi", "ibj", 3, DIMS(3, 2, 4), "jk", 2, DIMS(4, 5), "kbi");
    einsum_case("ijs,jk->ik", "ijs", 3, DIMS(3, 4, 2), "jk", 2, DIMS(4, 5), "ik");
    einsum_case("ij,jkt->i", "ij", 2, DIMS(3, 4), "jkt", 3, DIMS(4, 2, 3), "i");
    einsum_case("...ij,...jk->...ik", "aij", 3, DIMS(1, 3, 4), "ajk", 3, DIMS(3, 4, 2), "aik");
    einsum_case("i,i", "i", 1, DIMS(5), "i", 1, DIMS(5), "");
    einsum_case("i,j->ij", "i", 1, DIMS(3), "j", 1, DIMS(4), "ij");
    einsum_case("ba,cb", "ba", 2, DIMS(3, 2), "cb", 2, DIMS(4, 3), "ac"); /* implicit output, sorted */
    /* one operand: transposes and sums */
    einsum_case("ij->ji", "ij", 2, DIMS(3, 4), NULL, 0, NULL, "ji");
    einsum_case("bij->j", "bij", 3, DIMS(2, 3, 4), NULL, 0, NULL, "j");
    einsum_case("...ij->...", "aij", 3, DIMS(2, 3, 4), NULL, 0, NULL, "a");
    /* diagonals */
    einsum_case("...ii->...i", "aii", 3, DIMS(2, 3, 3), NULL, 0, NULL, "ai");
    einsum_case("ii", "ii", 2, DIMS(4, 4), NULL, 0, NULL, "");
    einsum_case("iij,jk->ik", "iij", 3, DIMS(3, 3, 4), "jk", 2, DIMS(4, 2), "ik");
    /* refused at load, naming the node */
    sal_tensor a = trand(2, DIMS(3, 3)), y = {0};
    sal_attr d[1] = {sal_attr_make_string("equation", "ij->ii")};
    CHECK_FAILS(run1(12, "Einsum", 1, &a, NULL, 1, d, &y, NULL, NULL), SAL_ERR_FORMAT,
                "node 'n' (Einsum): output label 'i' repeats");
    sal_attr t3[1] = {sal_attr_make_string("equation", "ij,jk,kl->il")};
    CHECK_FAILS(run1(12, "Einsum", 3, (sal_tensor[]){a, a, a}, NULL, 1, t3, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "einsum of 3 operands");
    sal_attr bad[1] = {sal_attr_make_string("equation", "ij,jk->iz")};
    CHECK_FAILS(run1(12, "Einsum", 2, (sal_tensor[]){a, a}, NULL, 1, bad, &y, NULL, NULL), SAL_ERR_FORMAT,
                "output label not in any operand");
    sal_attr mis[1] = {sal_attr_make_string("equation", "ij,jk->ik")};
    sal_tensor b = trand(2, DIMS(4, 2));
    CHECK_FAILS(run1(12, "Einsum", 2, (sal_tensor[]){a, b}, NULL, 1, mis, &y, NULL, NULL), SAL_ERR_SHAPE, "sizes 3 and 4");
    FREE(&a, &b, &y);
}

/* ---- normalizations ---- */

/* (x - mean) / sqrt(var + eps) over rows of L, then * w[pi] + b[pi] with pi from `par` */
static sal_tensor norm_ref(const sal_tensor *x, int64_t L, const float *w, const float *b, int64_t (*par)(int64_t, int64_t),
                           float eps) {
    sal_tensor y = tf32(x->ndim, x->dim, NULL);
    int64_t n = sal_tensor_numel(x);
    for (int64_t r = 0; r < n / L; r++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < L; j++) m += sal_f32(x)[r * L + j];
        m /= (double)L;
        for (int64_t j = 0; j < L; j++) v += pow(sal_f32(x)[r * L + j] - m, 2);
        v /= (double)L;
        for (int64_t j = 0; j < L; j++) {
            int64_t pi = par(r, j);
            sal_f32(&y)[r * L + j] = (float)((sal_f32(x)[r * L + j] - m) / sqrt(v + eps) * w[pi] + b[pi]);
        }
    }
    return y;
}

static int64_t par_layer(int64_t r, int64_t j) { return (void)r, j; }
static int64_t par_inst(int64_t r, int64_t j) { return (void)j, r % 3; }  /* C = 3 */
static int64_t par_g18(int64_t r, int64_t j) { return (void)j, r % 2; }   /* G = 2 */
static int64_t par_g21(int64_t r, int64_t j) { return r % 2 * 2 + j / 4; } /* G = 2, C = 4, S = 4 */

static void test_norms(void) {
    /* LayerNormalization: values, Mean and InvStdDev outputs, gradients through all three */
    sal_tensor x = t_rand(&R, 3, DIMS(2, 3, 4), 2.0f), w = trand(1, DIMS(4)), b = trand(1, DIMS(4)), y[3] = {{0}};
    sal_attr eps[1] = {sal_attr_make_float("epsilon", 1e-3f)};
    CHECK_OK(oc_run((oc_node){17, "LayerNormalization", 3, 3, (sal_tensor[]){x, w, b}, BOOLS(false, true, true), 1, eps},
                    y, NULL, 0, NULL));
    sal_tensor want = norm_ref(&x, 4, sal_f32(&w), sal_f32(&b), par_layer, 1e-3f);
    CHECK(max_diff(&y[0], &want) < 1e-5, "LayerNormalization values (max diff %g)", max_diff(&y[0], &want));
    double m0 = 0;
    for (int j = 0; j < 4; j++) m0 += sal_f32(&x)[j] / 4.0;
    CHECK(shape_is(&y[1], 3, DIMS(2, 3, 1)) && fabs(sal_f32(&y[1])[0] - m0) < 1e-6 && shape_is(&y[2], 3, DIMS(2, 3, 1)),
          "LayerNormalization Mean and InvStdDev outputs");
    sal_attr ax1[1] = {sal_attr_make_int("axis", 1)};
    gc(17, "LayerNormalization", 3, (sal_tensor[]){trand(3, DIMS(2, 3, 4)), trand(2, DIMS(3, 4)), trand(2, DIMS(3, 4))},
       BOOLS(false, true, true), 3, 1, ax1);
    gc(17, "LayerNormalization", 3, (sal_tensor[]){trand(3, DIMS(2, 3, 4)), trand(1, DIMS(4)), trand(1, DIMS(4))},
       BOOLS(false, false, false), 1, 0, NULL);
    gc(17, "LayerNormalization", 2, (sal_tensor[]){trand(2, DIMS(3, 5)), trand(1, DIMS(5))}, BOOLS(false, true), 1, 0, NULL);
    gc(17, "LayerNormalization", 3, (sal_tensor[]){trand(2, DIMS(3, 5)), trand(0, NULL), trand(1, DIMS(1))},
       BOOLS(false, true, true), 1, 0, NULL); /* a scalar scale and bias broadcast */
    sal_tensor_free(&want);

    /* InstanceNormalization: per (n, c) statistics, per-channel affine */
    sal_tensor xi = trand(4, DIMS(2, 3, 2, 2)), s3 = trand(1, DIMS(3)), b3 = trand(1, DIMS(3));
    CHECK_OK(run1(13, "InstanceNormalization", 3, (sal_tensor[]){xi, s3, b3}, BOOLS(false, true, true), 0, NULL, &y[0], NULL, NULL));
    want = norm_ref(&xi, 4, sal_f32(&s3), sal_f32(&b3), par_inst, 1e-5f);
    CHECK(max_diff(&y[0], &want) < 1e-5, "InstanceNormalization values");
    sal_tensor_free(&want);
    gc(13, "InstanceNormalization", 3, (sal_tensor[]){trand(3, DIMS(2, 3, 5)), trand(1, DIMS(3)), trand(1, DIMS(3))},
       BOOLS(false, true, true), 1, 0, NULL);

    /* GroupNormalization: scale per group at opset 18, per channel at opset 21 */
    sal_tensor xg = trand(4, DIMS(2, 4, 2, 2)), s2 = trand(1, DIMS(2)), b2 = trand(1, DIMS(2));
    sal_tensor s4 = trand(1, DIMS(4)), b4 = trand(1, DIMS(4));
    sal_attr g2[1] = {sal_attr_make_int("num_groups", 2)};
    CHECK_OK(run1(18, "GroupNormalization", 3, (sal_tensor[]){xg, s2, b2}, BOOLS(false, true, true), 1, g2, &y[0], NULL, NULL));
    want = norm_ref(&xg, 8, sal_f32(&s2), sal_f32(&b2), par_g18, 1e-5f);
    CHECK(max_diff(&y[0], &want) < 1e-5, "GroupNormalization opset 18 values");
    sal_tensor_free(&want);
    sal_attr g21[1] = {sal_attr_make_int("num_groups", 2)};
    CHECK_OK(run1(21, "GroupNormalization", 3, (sal_tensor[]){xg, s4, b4}, BOOLS(false, true, true), 1, g21, &y[0], NULL, NULL));
    want = norm_ref(&xg, 8, sal_f32(&s4), sal_f32(&b4), par_g21, 1e-5f);
    CHECK(max_diff(&y[0], &want) < 1e-5, "GroupNormalization opset 21 values");
    sal_attr ga[1] = {sal_attr_make_int("num_groups", 2)}, gb[1] = {sal_attr_make_int("num_groups", 3)};
    gc(18, "GroupNormalization", 3, (sal_tensor[]){trand(4, DIMS(2, 4, 2, 2)), trand(1, DIMS(2)), trand(1, DIMS(2))},
       BOOLS(false, true, true), 1, 1, ga);
    gc(21, "GroupNormalization", 3, (sal_tensor[]){trand(3, DIMS(2, 6, 3)), trand(1, DIMS(6)), trand(1, DIMS(6))},
       BOOLS(false, true, true), 1, 1, gb);
    sal_attr g3[1] = {sal_attr_make_int("num_groups", 3)};
    CHECK_FAILS(run1(21, "GroupNormalization", 3, (sal_tensor[]){xg, s4, b4}, BOOLS(false, true, true), 1, g3, &y[0], NULL, NULL),
                SAL_ERR_SHAPE, "node 'n' (GroupNormalization): 4 channels do not split into 3 groups");
    sal_attr g0[1] = {sal_attr_make_int("num_groups", 0)};
    CHECK_FAILS(run1(21, "GroupNormalization", 3, (sal_tensor[]){xg, s4, b4}, BOOLS(false, true, true), 1, g0, &y[0], NULL, NULL),
                SAL_ERR_FORMAT, "num_groups");
    FREE(&x, &w, &b, &y[0], &y[1], &y[2], &want, &xi, &s3, &b3, &xg, &s2, &b2, &s4, &b4);
}

/* ---- ScatterND ---- */

static void test_scatternd(void) {
    /* data (3, 2, 2); two whole rows named by 1-tuples, and single elements by 3-tuples (one negative) */
    sal_tensor x = tf32(3, DIMS(3, 2, 2), (float[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
    sal_tensor i1 = ti64(2, DIMS(2, 1), (int64_t[]){2, 0}), u1 = tf32(3, DIMS(2, 2, 2), (float[]){20, 21, 22, 23, 30, 31, 32, 33});
    sal_tensor seed = tf32(3, DIMS(3, 2, 2), NULL), y = {0}, dx = {0}, du = {0};
    for (int i = 0; i < 12; i++) sal_f32(&seed)[i] = (float)(100 + i);
    CHECK_OK(run1(13, "ScatterND", 3, (sal_tensor[]){x, i1, u1}, NULL, 0, NULL, &y, &seed, &dx));
    float want[] = {30, 31, 32, 33, 4, 5, 6, 7, 20, 21, 22, 23};
    CHECK(y.data && !memcmp(y.data, want, sizeof want), "ScatterND replaces whole slices");
    float wdx[] = {0, 0, 0, 0, 104, 105, 106, 107, 0, 0, 0, 0};
    CHECK(dx.data && !memcmp(dx.data, wdx, sizeof wdx), "ScatterND: data gets the gradient where nothing was written");
    /* the gradient of updates: seed read back at the positions written */
    const sal_tensor *sd[1] = {&seed};
    CHECK_OK(oc_run((oc_node){13, "ScatterND", 3, 1, (sal_tensor[]){x, i1, u1}, NULL, 0, NULL}, &y, sd, 2, &du));
    float wdu[] = {108, 109, 110, 111, 100, 101, 102, 103};
    CHECK(du.data && !memcmp(du.data, wdu, sizeof wdu), "ScatterND: updates get the gradient of their positions");
    sal_tensor i3 = ti64(2, DIMS(2, 3), (int64_t[]){1, 0, 1, -1, 1, 0}), u3 = tf32(1, DIMS(2), (float[]){-1, -2});
    CHECK_OK(run1(13, "ScatterND", 3, (sal_tensor[]){x, i3, u3}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(y.data && sal_f32(&y)[5] == -1 && sal_f32(&y)[10] == -2 && sal_f32(&y)[4] == 4, "ScatterND of elements");
    gc(13, "ScatterND", 3, (sal_tensor[]){trand(3, DIMS(3, 2, 2)), ti64(2, DIMS(2, 1), (int64_t[]){2, 0}), trand(3, DIMS(2, 2, 2))},
       NULL, 1, 0, NULL);
    /* int64 data (Swin's attention masks are built this way) */
    sal_tensor xi = ti64(2, DIMS(2, 2), (int64_t[]){0, 0, 0, 0}), ii = ti64(2, DIMS(1, 2), (int64_t[]){1, 1});
    sal_tensor ui = ti64(1, DIMS(1), (int64_t[]){7});
    CHECK_OK(run1(13, "ScatterND", 3, (sal_tensor[]){xi, ii, ui}, NULL, 0, NULL, &y, NULL, NULL));
    CHECK(y.dtype == SAL_I64 && !memcmp(y.data, (int64_t[]){0, 0, 0, 7}, 4 * sizeof(int64_t)), "ScatterND on int64");
    /* refusals naming the node: a slice written twice, an index out of range, updates of the wrong
     * shape, a reduction */
    sal_tensor dup = ti64(2, DIMS(2, 1), (int64_t[]){1, -2}), out = ti64(2, DIMS(2, 1), (int64_t[]){1, 3});
    CHECK_FAILS(run1(13, "ScatterND", 3, (sal_tensor[]){x, dup, u1}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_ARG,
                "node 'n' (ScatterND): index tuple 1 names a slice already written");
    CHECK_FAILS(run1(13, "ScatterND", 3, (sal_tensor[]){x, out, u1}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_ARG,
                "index tuple 1 is out of range");
    CHECK_FAILS(run1(13, "ScatterND", 3, (sal_tensor[]){x, i1, u3}, NULL, 0, NULL, &y, NULL, NULL), SAL_ERR_SHAPE,
                "updates (2) do not fit indices (2,1) into data (3,2,2)");
    sal_attr red[1] = {sal_attr_make_string("reduction", "add")};
    CHECK_FAILS(run1(16, "ScatterND", 3, (sal_tensor[]){x, i1, u1}, NULL, 1, red, &y, NULL, NULL), SAL_ERR_UNSUPPORTED,
                "reduction 'add' is not supported");
    FREE(&x, &i1, &u1, &seed, &y, &dx, &du, &i3, &u3, &xi, &ii, &ui, &dup, &out);
}

/* ---- every backward adds to the gradient an input already has ---- */

static void test_accumulate(void) {
    sal_tensor x = trand(3, DIMS(2, 6, 4)), ax = VEC(1), sp = VEC(2, 4), rep = VEC(2, 1, 2), c6 = trand(1, DIMS(6));
    sal_tensor b6 = trand(1, DIMS(6)), w4 = trand(1, DIMS(4)), b4 = trand(1, DIMS(4)), s2 = trand(1, DIMS(2));
    static const char *red[] = {"ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare"};
    for (int k = 0; k < 4; k++) oc_accumulates((oc_node){18, red[k], 2, 1, (sal_tensor[]){x, ax}, NULL, 0, NULL}, 1);
    sal_attr a1[1] = {sal_attr_make_int("axis", 1)};
    oc_accumulates((oc_node){13, "Split", 2, 2, (sal_tensor[]){x, sp}, NULL, 1, a1}, 1);
    oc_accumulates((oc_node){13, "Tile", 2, 1, (sal_tensor[]){x, rep}, NULL, 0, NULL}, 1);
    sal_tensor si = ti64(2, DIMS(1, 1), (int64_t[]){1}), su = trand(3, DIMS(1, 6, 4));
    oc_accumulates((oc_node){13, "ScatterND", 3, 1, (sal_tensor[]){x, si, su}, NULL, 0, NULL}, 1);
    sal_tensor a0 = ti64(0, NULL, (int64_t[]){1});
    sal_attr ex[2] = {sal_attr_make_int("exclusive", 1), sal_attr_make_int("reverse", 1)};
    oc_accumulates((oc_node){14, "CumSum", 2, 1, (sal_tensor[]){x, a0}, NULL, 2, ex}, 1);
    oc_accumulates((oc_node){17, "LayerNormalization", 3, 3, (sal_tensor[]){x, w4, b4}, BOOLS(false, true, true), 0, NULL}, 1);
    oc_accumulates((oc_node){13, "InstanceNormalization", 3, 1, (sal_tensor[]){x, c6, b6}, BOOLS(false, true, true), 0, NULL}, 1);
    sal_attr g[1] = {sal_attr_make_int("num_groups", 2)};
    oc_accumulates((oc_node){18, "GroupNormalization", 3, 1, (sal_tensor[]){x, s2, s2}, BOOLS(false, true, true), 1, g}, 1);
    FREE(&x, &ax, &sp, &rep, &c6, &b6, &w4, &b4, &s2, &a0, &si, &su);
}

int main(void) {
    SAL_ASSERT(sal_blas_init() == SAL_OK);
    sal_rng_seed(&R, 42);
    test_traits();
    test_reduce_grads();
    test_reduce_values();
    test_argmax();
    test_split();
    test_tile();
    test_scatternd();
    test_cumsum();
    test_einsum();
    test_norms();
    test_accumulate();
    return t_done("test_ops_struct");
}
