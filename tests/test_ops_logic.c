/* Bool tensors through the ops (src/ops/logic.c and the shape ops): comparisons and logic against
 * element-by-element loops written here, with broadcasting; Where's values and gradients (finite
 * differences); Cast to and from bool; shape ops moving bool data; Dropout's mask; refusals. */
#include "testutil.h"

#define DIMS(...) (int64_t[]){__VA_ARGS__}
#define BOOLS(...) (bool[]){__VA_ARGS__}

static sal_rng R;

static sal_tensor tf32(int ndim, const int64_t *dim, const float *v) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_F32, ndim, dim) == SAL_OK);
    if (v) memcpy(t.data, v, (size_t)sal_tensor_numel(&t) * sizeof *v);
    return t;
}

static sal_tensor ti64(int ndim, const int64_t *dim, const int64_t *v) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_I64, ndim, dim) == SAL_OK);
    if (v) memcpy(t.data, v, (size_t)sal_tensor_numel(&t) * sizeof *v);
    return t;
}

static sal_tensor tbool(int ndim, const int64_t *dim, const uint8_t *v) {
    sal_tensor t = {0};
    SAL_ASSERT(sal_tensor_alloc(&t, SAL_BOOL, ndim, dim) == SAL_OK);
    if (v) memcpy(t.data, v, (size_t)sal_tensor_numel(&t));
    return t;
}

static uint8_t *B(const sal_tensor *t) { return (uint8_t *)t->data; }

/* Runs one node (opset 13) with every input a graph input (constants where cst says) and copies
 * output 0 to *y. Consumes attr. */
static sal_status run1(const char *op, int nin, const sal_tensor *in, const bool *cst, int nattr, sal_attr *attr,
                       sal_tensor *y) {
    sal_model *g = NULL;
    sal_session *s = NULL;
    char names[8][16];
    const char *inn[8];
    sal_tensor feeds[8] = {{0}};
    int nf = 0;
    SAL_ASSERT(nin <= 8 && sal_graph_create("<run1>", &g) == SAL_OK);
    for (int i = 0; i < nin; i++) {
        snprintf(names[i], sizeof names[i], "i%d", i);
        inn[i] = names[i];
        if (cst && cst[i]) {
            sal_tensor t = {0};
            SAL_ASSERT(sal_tensor_copy(&t, &in[i]) == SAL_OK);
            SAL_ASSERT(sal_graph_add_const(g, names[i], &t) == SAL_OK);
        } else {
            SAL_ASSERT(sal_graph_add_input(g, names[i], in[i].dtype, in[i].ndim, in[i].dim) == SAL_OK);
            SAL_ASSERT(sal_tensor_copy(&feeds[nf++], &in[i]) == SAL_OK);
        }
    }
    sal_status st = sal_graph_add_node(g, op, "n", nin, inn, 1, (const char *[]){"y"}, nattr, attr);
    if (st == SAL_OK) st = sal_graph_add_output(g, "y");
    if (st == SAL_OK) st = sal_graph_finalize(g);
    if (st == SAL_OK) st = sal_session_new(g, &s);
    if (st == SAL_OK) st = sal_exec_forward(s, feeds);
    if (st == SAL_OK) st = sal_tensor_copy(y, &s->act[sal_graph_find(g, "y")]);
    for (int i = 0; i < nf; i++) sal_tensor_free(&feeds[i]);
    sal_session_free(s);
    sal_model_free(g);
    return st;
}

/* Element (i, j, k) of a tensor broadcast to (2, 3, 4): its own coordinates, 0 along size-1 axes. */
static int64_t bidx(const sal_tensor *t, int i, int j, int k) {
    int c[3] = {i, j, k};
    int64_t off = 0;
    for (int a = 0; a < t->ndim; a++) {
        int ax = 3 - t->ndim + a;
        off = off * t->dim[a] + (t->dim[a] == 1 ? 0 : c[ax]);
    }
    return off;
}

static double val(const sal_tensor *t, int64_t i) {
    return t->dtype == SAL_F32 ? sal_f32(t)[i] : t->dtype == SAL_I64 ? (double)((int64_t *)t->data)[i] : B(t)[i];
}

/* Each comparison on (2,3,4) against (3,1) and on (4) against (2,3,1), float32 and int64 with
 * shared values so that equalities occur, against the loop here. */
static void test_comparisons(void) {
    static const char *ops[] = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"};
    for (int shape = 0; shape < 2; shape++)
        for (int typ = 0; typ < 2; typ++) {
            const int64_t *da = shape ? DIMS(4) : DIMS(2, 3, 4), *db = shape ? DIMS(2, 3, 1) : DIMS(3, 1);
            int na = shape ? 1 : 3, nb = shape ? 3 : 2;
            sal_tensor a = typ ? ti64(na, da, NULL) : tf32(na, da, NULL);
            sal_tensor b = typ ? ti64(nb, db, NULL) : tf32(nb, db, NULL);
            for (int64_t i = 0; i < sal_tensor_numel(&a); i++) {
                int64_t v = (int64_t)(sal_rng_u64(&R) % 5) - 2;
                if (typ) ((int64_t *)a.data)[i] = v;
                else sal_f32(&a)[i] = (float)v * 0.5f;
            }
            for (int64_t i = 0; i < sal_tensor_numel(&b); i++) {
                int64_t v = (int64_t)(sal_rng_u64(&R) % 5) - 2;
                if (typ) ((int64_t *)b.data)[i] = v;
                else sal_f32(&b)[i] = (float)v * 0.5f;
            }
            for (int k = 0; k < 5; k++) {
                sal_tensor y = {0};
                CHECK_OK(run1(ops[k], 2, (sal_tensor[]){a, b}, NULL, 0, NULL, &y));
                bool ok = y.dtype == SAL_BOOL && y.ndim == 3 && y.dim[0] == 2 && y.dim[1] == 3 && y.dim[2] == 4;
                int eq = 0;
                for (int i = 0; ok && i < 2; i++)
                    for (int j = 0; j < 3; j++)
                        for (int q = 0; q < 4; q++) {
                            double x = val(&a, bidx(&a, i, j, q)), z = val(&b, bidx(&b, i, j, q));
                            bool want = k == 0 ? x == z : k == 1 ? x < z : k == 2 ? x > z : k == 3 ? x <= z : x >= z;
                            ok = ok && B(&y)[(i * 3 + j) * 4 + q] == want;
                            eq += x == z;
                        }
                CHECK(ok && eq > 0, "%s (%s) with broadcasting (%d equal pairs)", ops[k], typ ? "int64" : "float32", eq);
                sal_tensor_free(&y);
            }
            sal_tensor_free(&a);
            sal_tensor_free(&b);
        }
    /* NaN compares false, even with itself */
    sal_tensor n = tf32(1, DIMS(2), (float[]){NAN, 1}), y = {0};
    for (int k = 0; k < 5; k++) {
        CHECK_OK(run1(ops[k], 2, (sal_tensor[]){n, n}, NULL, 0, NULL, &y));
        CHECK(B(&y)[0] == 0 && B(&y)[1] == (k == 0 || k >= 3), "%s with NaN", ops[k]);
    }
    /* Equal on bool; others refuse bool; mixed types are refused */
    sal_tensor p = tbool(1, DIMS(4), (uint8_t[]){0, 0, 1, 1}), q = tbool(1, DIMS(4), (uint8_t[]){0, 1, 0, 1});
    CHECK_OK(run1("Equal", 2, (sal_tensor[]){p, q}, NULL, 0, NULL, &y));
    CHECK(!memcmp(y.data, (uint8_t[]){1, 0, 0, 1}, 4), "Equal on bool");
    CHECK_FAILS(run1("Less", 2, (sal_tensor[]){p, q}, NULL, 0, NULL, &y), SAL_ERR_UNSUPPORTED,
                "node 'n' (Less): inputs have data types bool and bool; both must be float32 or int64");
    sal_tensor i = ti64(1, DIMS(2), NULL);
    CHECK_FAILS(run1("Equal", 2, (sal_tensor[]){n, i}, NULL, 0, NULL, &y), SAL_ERR_UNSUPPORTED,
                "inputs have data types float32 and int64");
    sal_tensor w = tf32(1, DIMS(3), NULL);
    CHECK_FAILS(run1("Greater", 2, (sal_tensor[]){n, w}, NULL, 0, NULL, &y), SAL_ERR_SHAPE, "do not broadcast");
    sal_tensor *fr[] = {&n, &y, &p, &q, &i, &w};
    for (size_t k = 0; k < sizeof fr / sizeof *fr; k++) sal_tensor_free(fr[k]);
}

static void test_logic(void) {
    sal_tensor p = tbool(2, DIMS(2, 2), (uint8_t[]){0, 0, 1, 1}), q = tbool(1, DIMS(2), (uint8_t[]){0, 1}), y = {0};
    CHECK_OK(run1("And", 2, (sal_tensor[]){p, q}, NULL, 0, NULL, &y));
    CHECK(y.dtype == SAL_BOOL && y.ndim == 2 && !memcmp(y.data, (uint8_t[]){0, 0, 0, 1}, 4), "And with broadcasting");
    CHECK_OK(run1("Or", 2, (sal_tensor[]){p, q}, NULL, 0, NULL, &y));
    CHECK(!memcmp(y.data, (uint8_t[]){0, 1, 1, 1}, 4), "Or with broadcasting");
    CHECK_OK(run1("Not", 1, &p, NULL, 0, NULL, &y));
    CHECK(y.dtype == SAL_BOOL && !memcmp(y.data, (uint8_t[]){1, 1, 0, 0}, 4), "Not");
    sal_tensor f = tf32(1, DIMS(2), NULL);
    CHECK_FAILS(run1("And", 2, (sal_tensor[]){f, f}, NULL, 0, NULL, &y), SAL_ERR_UNSUPPORTED,
                "node 'n' (And): inputs have data types float32 and float32; both must be bool");
    CHECK_FAILS(run1("Not", 1, &f, NULL, 0, NULL, &y), SAL_ERR_UNSUPPORTED, "input 0 has data type float32; only bool");
    sal_tensor_free(&p);
    sal_tensor_free(&q);
    sal_tensor_free(&y);
    sal_tensor_free(&f);
}

static void test_where(void) {
    /* values: the condition (2,1) and X (3) and Y (2,3) broadcast together; every type of X, Y */
    sal_tensor c = tbool(2, DIMS(2, 1), (uint8_t[]){1, 0}), y = {0};
    sal_tensor xf = tf32(1, DIMS(3), (float[]){1, 2, 3}), yf = tf32(2, DIMS(2, 3), (float[]){-1, -2, -3, -4, -5, -6});
    CHECK_OK(run1("Where", 3, (sal_tensor[]){c, xf, yf}, NULL, 0, NULL, &y));
    CHECK(y.dtype == SAL_F32 && y.ndim == 2 && y.dim[1] == 3 &&
              !memcmp(y.data, (float[]){1, 2, 3, -4, -5, -6}, 6 * sizeof(float)),
          "Where on float32");
    sal_tensor xi = ti64(1, DIMS(3), (int64_t[]){1, 2, 3}), yi = ti64(0, NULL, (int64_t[]){9});
    CHECK_OK(run1("Where", 3, (sal_tensor[]){c, xi, yi}, NULL, 0, NULL, &y));
    CHECK(y.dtype == SAL_I64 && !memcmp(y.data, (int64_t[]){1, 2, 3, 9, 9, 9}, 6 * sizeof(int64_t)), "Where on int64");
    sal_tensor xb = tbool(1, DIMS(3), (uint8_t[]){1, 0, 1}), yb = tbool(1, DIMS(3), (uint8_t[]){0, 1, 1});
    CHECK_OK(run1("Where", 3, (sal_tensor[]){c, xb, yb}, NULL, 0, NULL, &y));
    CHECK(y.dtype == SAL_BOOL && !memcmp(y.data, (uint8_t[]){1, 0, 1, 0, 1, 1}, 6), "Where on bool");
    CHECK_FAILS(run1("Where", 3, (sal_tensor[]){xf, xf, xf}, NULL, 0, NULL, &y), SAL_ERR_UNSUPPORTED,
                "node 'n' (Where): the condition has data type float32; it must be bool");
    CHECK_FAILS(run1("Where", 3, (sal_tensor[]){c, xf, yi}, NULL, 0, NULL, &y), SAL_ERR_UNSUPPORTED,
                "X and Y differ in data type (float32 and int64)");
    CHECK(sal_op_lookup("Where")->traits == SAL_TR_ROUTE, "Where is a ROUTE");
    CHECK(sal_op_lookup("Equal")->traits == 0 && sal_op_lookup("Not")->traits == 0, "comparisons have no trait");

    /* gradients: a random condition (a constant), X and Y broadcast against it */
    for (int trial = 0; trial < 3; trial++) {
        int64_t cd[] = {2, 3, 4};
        sal_tensor cond = tbool(3, cd, NULL);
        for (int k = 0; k < 24; k++) B(&cond)[k] = sal_rng_u64(&R) & 1;
        sal_tensor in[3] = {cond, t_rand(&R, trial ? 2 : 3, trial ? DIMS(3, 1) : cd, 1.0f),
                            t_rand(&R, trial == 2 ? 0 : 1, DIMS(4), 1.0f)};
        t_gradcheck((t_gradcheck_spec){.op = "Where", .nin = 3, .in = in, .is_const = BOOLS(true, false, trial == 1),
                                       .seed = 3});
        for (int k = 0; k < 3; k++) sal_tensor_free(&in[k]);
    }
    sal_tensor *fr[] = {&c, &y, &xf, &yf, &xi, &yi, &xb, &yb};
    for (size_t k = 0; k < sizeof fr / sizeof *fr; k++) sal_tensor_free(fr[k]);
}

static void test_cast_bool(void) {
    sal_tensor f = tf32(1, DIMS(5), (float[]){0, -0.0f, 2.5f, NAN, -1}), y = {0}, z = {0};
    sal_attr to_b[1] = {sal_attr_make_int("to", 9)};
    CHECK_OK(run1("Cast", 1, &f, NULL, 1, to_b, &y));
    CHECK(y.dtype == SAL_BOOL && !memcmp(y.data, (uint8_t[]){0, 0, 1, 1, 1}, 5), "float32 -> bool (NaN is true)");
    sal_attr to_f[1] = {sal_attr_make_int("to", 1)};
    CHECK_OK(run1("Cast", 1, &y, NULL, 1, to_f, &z));
    CHECK(z.dtype == SAL_F32 && !memcmp(z.data, (float[]){0, 0, 1, 1, 1}, 5 * sizeof(float)), "bool -> float32");
    sal_attr to_i[1] = {sal_attr_make_int("to", 7)};
    CHECK_OK(run1("Cast", 1, &y, NULL, 1, to_i, &z));
    CHECK(z.dtype == SAL_I64 && !memcmp(z.data, (int64_t[]){0, 0, 1, 1, 1}, 5 * sizeof(int64_t)), "bool -> int64");
    sal_tensor i = ti64(1, DIMS(3), (int64_t[]){0, -7, INT64_MIN});
    to_b[0] = sal_attr_make_int("to", 9);
    CHECK_OK(run1("Cast", 1, &i, NULL, 1, to_b, &z));
    CHECK(z.dtype == SAL_BOOL && !memcmp(z.data, (uint8_t[]){0, 1, 1}, 3), "int64 -> bool");
    sal_attr to_h[1] = {sal_attr_make_int("to", 10)};
    CHECK_FAILS(run1("Cast", 1, &f, NULL, 1, to_h, &z), SAL_ERR_UNSUPPORTED, "node 'n' (Cast): cast to data type 10");
    sal_tensor *fr[] = {&f, &y, &z, &i};
    for (size_t k = 0; k < sizeof fr / sizeof *fr; k++) sal_tensor_free(fr[k]);
}

/* The shape ops move bool data byte by byte: Reshape, Transpose, Slice, Concat, Gather, Expand,
 * Unsqueeze; ConstantOfShape makes bool tensors; Dropout's mask is all true. */
static void test_shape_ops_on_bool(void) {
    uint8_t v[6] = {1, 0, 0, 1, 1, 0};
    sal_tensor b = tbool(2, DIMS(2, 3), v), y = {0};
    CHECK_OK(run1("Transpose", 1, &b, NULL, 0, NULL, &y));
    CHECK(y.dtype == SAL_BOOL && y.dim[0] == 3 && !memcmp(y.data, (uint8_t[]){1, 1, 0, 1, 0, 0}, 6), "Transpose of bool");
    sal_tensor shp = ti64(1, DIMS(1), (int64_t[]){6});
    CHECK_OK(run1("Reshape", 2, (sal_tensor[]){b, shp}, BOOLS(false, true), 0, NULL, &y));
    CHECK(y.dtype == SAL_BOOL && y.ndim == 1 && !memcmp(y.data, v, 6), "Reshape of bool");
    sal_tensor st = ti64(1, DIMS(1), (int64_t[]){1}), en = ti64(1, DIMS(1), (int64_t[]){3}), ax = ti64(1, DIMS(1), (int64_t[]){1});
    CHECK_OK(run1("Slice", 4, (sal_tensor[]){b, st, en, ax}, BOOLS(false, true, true, true), 0, NULL, &y));
    CHECK(y.dtype == SAL_BOOL && y.dim[1] == 2 && !memcmp(y.data, (uint8_t[]){0, 0, 1, 0}, 4), "Slice of bool");
    sal_attr cat[1] = {sal_attr_make_int("axis", 0)};
    CHECK_OK(run1("Concat", 2, (sal_tensor[]){b, b}, NULL, 1, cat, &y));
    CHECK(y.dtype == SAL_BOOL && y.dim[0] == 4 && !memcmp((uint8_t *)y.data + 6, v, 6), "Concat of bool");
    sal_tensor idx = ti64(1, DIMS(2), (int64_t[]){2, 0});
    sal_attr gax[1] = {sal_attr_make_int("axis", 1)};
    CHECK_OK(run1("Gather", 2, (sal_tensor[]){b, idx}, BOOLS(false, true), 1, gax, &y));
    CHECK(y.dtype == SAL_BOOL && !memcmp(y.data, (uint8_t[]){0, 1, 0, 1}, 4), "Gather of bool");
    sal_tensor eshape = ti64(1, DIMS(3), (int64_t[]){2, 2, 3});
    CHECK_OK(run1("Expand", 2, (sal_tensor[]){b, eshape}, BOOLS(false, true), 0, NULL, &y));
    CHECK(y.dtype == SAL_BOOL && y.ndim == 3 && !memcmp((uint8_t *)y.data + 6, v, 6), "Expand of bool");
    sal_tensor cs = ti64(1, DIMS(2), (int64_t[]){2, 2});
    sal_attr cv[1] = {{0}};
    cv[0].name = sal_strdup("value");
    cv[0].type = SAL_ATTR_TENSOR;
    cv[0].t = tbool(1, DIMS(1), (uint8_t[]){1});
    CHECK_OK(run1("ConstantOfShape", 1, &cs, BOOLS(false), 1, cv, &y));
    CHECK(y.dtype == SAL_BOOL && !memcmp(y.data, (uint8_t[]){1, 1, 1, 1}, 4), "ConstantOfShape with a bool value");
    sal_tensor r = tbool(0, NULL, (uint8_t[]){1});
    CHECK_FAILS(run1("Range", 3, (sal_tensor[]){r, r, r}, NULL, 0, NULL, &y), SAL_ERR_UNSUPPORTED, "start is bool");
    sal_tensor *fr[] = {&b, &y, &shp, &st, &en, &ax, &idx, &eshape, &cs, &r};
    for (size_t k = 0; k < sizeof fr / sizeof *fr; k++) sal_tensor_free(fr[k]);
}

/* Dropout in inference: output = input, mask all true (opset 10 on); training_mode must be false. */
static void test_dropout(void) {
    sal_model *g = NULL;
    sal_session *s = NULL;
    SAL_ASSERT(sal_graph_create("<dropout>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, DIMS(2, 2)) == SAL_OK);
    sal_tensor off = tbool(0, NULL, (uint8_t[]){0});
    SAL_ASSERT(sal_graph_add_const(g, "t", &off) == SAL_OK);
    CHECK_OK(sal_graph_add_node(g, "Dropout", "d", 3, (const char *[]){"x", "", "t"}, 2, (const char *[]){"y", "m"}, 0,
                                NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_add_output(g, "m"));
    CHECK_OK(sal_graph_finalize(g));
    CHECK_OK(sal_session_new(g, &s));
    sal_tensor x = tf32(2, DIMS(2, 2), (float[]){1, 2, 3, 4});
    CHECK_OK(sal_exec_forward(s, &x));
    const sal_tensor *m = &s->act[sal_graph_find(g, "m")], *y = &s->act[sal_graph_find(g, "y")];
    CHECK(m->dtype == SAL_BOOL && m->ndim == 2 && !memcmp(m->data, (uint8_t[]){1, 1, 1, 1}, 4) &&
              !memcmp(y->data, x.data, 4 * sizeof(float)),
          "Dropout passes the input and its mask is all true");
    sal_session_free(s);
    sal_model_free(g);

    SAL_ASSERT(sal_graph_create("<dropout>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, DIMS(2, 2)) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "t", SAL_BOOL, 0, NULL) == SAL_OK);
    CHECK_OK(sal_graph_add_node(g, "Dropout", "d", 3, (const char *[]){"x", "", "t"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_FAILS(sal_graph_finalize(g), SAL_ERR_UNSUPPORTED, "node 'd' (Dropout): training_mode must be a constant false");
    sal_model_free(g);

    /* training mode with a constant ratio 0 changes nothing (torchvision's Swin exports it);
     * with ratio 0.1 it is refused */
    for (int k = 0; k < 2; k++) {
        SAL_ASSERT(sal_graph_create("<dropout>", &g) == SAL_OK);
        SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, DIMS(2, 2)) == SAL_OK);
        sal_tensor on = tbool(0, NULL, (uint8_t[]){1}), ratio = tf32(0, NULL, (float[]){k ? 0.1f : 0.0f});
        SAL_ASSERT(sal_graph_add_const(g, "r", &ratio) == SAL_OK);
        SAL_ASSERT(sal_graph_add_const(g, "t", &on) == SAL_OK);
        CHECK_OK(sal_graph_add_node(g, "Dropout", "d", 3, (const char *[]){"x", "r", "t"}, 1, (const char *[]){"y"}, 0,
                                    NULL));
        CHECK_OK(sal_graph_add_output(g, "y"));
        if (k) {
            CHECK_FAILS(sal_graph_finalize(g), SAL_ERR_UNSUPPORTED, "or the ratio a constant 0");
        } else {
            CHECK_OK(sal_graph_finalize(g));
            CHECK_OK(sal_session_new(g, &s));
            CHECK_OK(sal_exec_forward(s, &x));
            CHECK(!memcmp(s->act[sal_graph_find(g, "y")].data, x.data, 4 * sizeof(float)),
                  "Dropout in training mode with ratio 0 passes the input");
            sal_session_free(s);
        }
        sal_model_free(g);
    }
    sal_tensor_free(&x);
}

int main(void) {
    sal_rng_seed(&R, 77);
    test_comparisons();
    test_logic();
    test_where();
    test_cast_bool();
    test_shape_ops_on_bool();
    test_dropout();
    return t_done("test_ops_logic");
}
