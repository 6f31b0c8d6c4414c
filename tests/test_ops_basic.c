/* The op table; Gemm, MatMul, Relu, Flatten: forward against direct loops, gradients against finite differences. */
#include "testutil.h"

static void test_gemm_forward(void) {
    sal_rng r;
    sal_rng_seed(&r, 7);
    int64_t da[2] = {3, 4}, db[2] = {5, 4}, dc[1] = {5};
    sal_tensor A = t_rand(&r, 2, da, 1), B = t_rand(&r, 2, db, 1), C = t_rand(&r, 1, dc, 1);
    sal_model *g;
    CHECK_OK(sal_graph_create(NULL, &g));
    CHECK_OK(sal_graph_add_input(g, "a", SAL_F32, 2, (int64_t[]){-1, 4}));
    CHECK_OK(sal_graph_add_const(g, "b", &B));
    CHECK_OK(sal_graph_add_const(g, "c", &C));
    sal_attr at[2] = {sal_attr_make_int("transB", 1), sal_attr_make_float("alpha", 0.5f)};
    CHECK_OK(sal_graph_add_node(g, "Gemm", "fc", 3, (const char *[]){"a", "b", "c"}, 1, (const char *[]){"y"}, 2, at));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    sal_session *s;
    CHECK_OK(sal_session_new(g, &s));
    const sal_tensor *y;
    CHECK_OK(sal_forward(s, 1, &A, &y));
    const float *a = sal_f32(&A), *b = sal_f32(&g->val[sal_graph_find(g, "b")].t), *c = sal_f32(&g->val[sal_graph_find(g, "c")].t);
    double worst = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            double acc = c[j];
            for (int k = 0; k < 4; k++) acc += 0.5 * a[i * 4 + k] * b[j * 4 + k];
            worst = fmax(worst, fabs(acc - sal_f32(y)[i * 5 + j]));
        }
    CHECK(y->ndim == 2 && y->dim[0] == 3 && y->dim[1] == 5, "Gemm output shape");
    CHECK(worst < 1e-5, "Gemm forward differs from a direct loop by %g", worst);
    CHECK(g->val[sal_graph_find(g, "b")].param && g->val[sal_graph_find(g, "c")].param, "Gemm B and C are parameters");
    /* wrong input shape is refused with the input's name */
    sal_tensor bad = t_rand(&r, 2, (int64_t[]){3, 5}, 1);
    CHECK_FAILS(sal_forward(s, 1, &bad, &y), SAL_ERR_SHAPE, "input 'a'");
    sal_tensor_free(&bad);
    sal_session_free(s);
    sal_model_free(g);
    sal_tensor_free(&A);
}

/* A batch-1 Gemm with transB whose row has zeros reads a transposed copy of B kept by the node
 * (ops/linear.c: gemm_bt): against a double loop for a row with zeros, a dense row, the first
 * again, and after the weights change (the copy must follow them). */
static void test_gemm_sparse_row(void) {
    sal_rng r;
    sal_rng_seed(&r, 8);
    const int K = 300, N = 600;
    sal_tensor B = t_rand(&r, 2, (int64_t[]){N, K}, 1), C = t_rand(&r, 1, (int64_t[]){N}, 1);
    sal_model *g;
    CHECK_OK(sal_graph_create(NULL, &g));
    CHECK_OK(sal_graph_add_input(g, "a", SAL_F32, 2, (int64_t[]){-1, K}));
    CHECK_OK(sal_graph_add_const(g, "b", &B));
    CHECK_OK(sal_graph_add_const(g, "c", &C));
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    CHECK_OK(sal_graph_add_node(g, "Gemm", "fc", 3, (const char *[]){"a", "b", "c"}, 1, (const char *[]){"y"}, 1, at));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    sal_session *s;
    CHECK_OK(sal_session_new(g, &s));
    sal_tensor A[2] = {t_rand(&r, 2, (int64_t[]){1, K}, 1), t_rand(&r, 2, (int64_t[]){1, K}, 1)};
    for (int k = 0; k < K; k++) /* row 0: half zeros; row 1: none */
        if (k % 2) sal_f32(&A[0])[k] = 0.0f;
        else if (sal_f32(&A[1])[k] == 0.0f) sal_f32(&A[1])[k] = 1.0f;
    float *b = sal_f32(&g->val[sal_graph_find(g, "b")].t), *c = sal_f32(&g->val[sal_graph_find(g, "c")].t);
    static const int order[] = {0, 1, 0, 0};
    for (int q = 0; q < 4; q++) {
        if (q == 3) { /* new weights */
            for (int64_t i = 0; i < (int64_t)N * K; i++) b[i] = 0.5f - b[i];
            sal_model_weights_changed(g);
        }
        const sal_tensor *y;
        CHECK_OK(sal_forward(s, 1, &A[order[q]], &y));
        const float *a = sal_f32(&A[order[q]]);
        double worst = 0;
        for (int j = 0; j < N; j++) {
            double acc = c[j];
            for (int k = 0; k < K; k++) acc += (double)a[k] * b[(int64_t)j * K + k];
            worst = fmax(worst, fabs(acc - sal_f32(y)[j]));
        }
        CHECK(worst < 1e-4, "batch-1 Gemm, call %d (%s row): differs from a double loop by %g", q,
              order[q] ? "dense" : "sparse", worst);
    }
    sal_session_free(s);
    sal_model_free(g);
    sal_tensor_free(&A[0]);
    sal_tensor_free(&A[1]);
}

/* A Gemm on a batch of rows runs through oneDNN with its constant B kept packed (ops/linear.c:
 * gemm_packed), forward and input gradient, for B stored (N, K) (transB) and (K, N); a MatMul with a
 * constant B reads it in place or, with N a multiple of 256, from a copy with padded rows
 * (b_padded), as oneDNN's packed Gemm weights are then (conv_dnnl.c: mm_first), and its input
 * gradient reads a kept copy of B^T (bt_kept). Against double loops, at two batch sizes (a
 * primitive each), and after the weights change (packed and copied again). */
static void test_products_kept(const char *op, int N) {
    sal_rng r;
    sal_rng_seed(&r, 9);
    const int K = 96;
    bool gemm = !strcmp(op, "Gemm");
    for (int tb = 0; tb < 1 + gemm; tb++) {
        sal_tensor B = t_rand(&r, 2, tb ? (int64_t[]){N, K} : (int64_t[]){K, N}, 1);
        sal_tensor C = t_rand(&r, 1, (int64_t[]){N}, 1);
        sal_model *g;
        CHECK_OK(sal_graph_create(NULL, &g));
        CHECK_OK(sal_graph_add_input(g, "a", SAL_F32, 2, (int64_t[]){-1, K}));
        CHECK_OK(sal_graph_add_const(g, "b", &B));
        if (gemm) CHECK_OK(sal_graph_add_const(g, "c", &C));
        sal_attr at[1] = {sal_attr_make_int("transB", tb)};
        CHECK_OK(sal_graph_add_node(g, op, "fc", 2 + gemm, (const char *[]){"a", "b", "c"}, 1, (const char *[]){"y"},
                                    gemm, gemm ? at : NULL));
        if (!gemm) sal_attr_clear(&at[0]); /* the node took it over only when given */
        CHECK_OK(sal_graph_add_output(g, "y"));
        CHECK_OK(sal_graph_finalize(g));
        sal_session *s;
        CHECK_OK(sal_session_new(g, &s));
        float *b = sal_f32(&g->val[sal_graph_find(g, "b")].t);
        float *c = gemm ? sal_f32(&g->val[sal_graph_find(g, "c")].t) : NULL;
        static const int rows[] = {40, 24, 40, 40};
        for (int q = 0; q < 4; q++) {
            int M = rows[q];
            if (q == 3) { /* new weights */
                for (int64_t i = 0; i < (int64_t)N * K; i++) b[i] = 0.25f - 0.5f * b[i];
                sal_model_weights_changed(g);
            }
            sal_tensor A = t_rand(&r, 2, (int64_t[]){M, K}, 1), seed = t_rand(&r, 2, (int64_t[]){M, N}, 1);
            const sal_tensor *y, *dA;
            CHECK_OK(sal_forward(s, 1, &A, &y));
            CHECK_OK(sal_input_gradient(s, &seed, &dA));
            double wy = 0, wd = 0;
            for (int i = 0; i < M; i++) {
                for (int j = 0; j < N; j++) {
                    double acc = c ? c[j] : 0.0;
                    for (int k = 0; k < K; k++) acc += (double)sal_f32(&A)[i * K + k] * b[tb ? j * K + k : k * N + j];
                    wy = fmax(wy, fabs(acc - sal_f32(y)[i * N + j]));
                }
                for (int k = 0; k < K; k++) {
                    double acc = 0;
                    for (int j = 0; j < N; j++)
                        acc += (double)sal_f32(&seed)[i * N + j] * b[tb ? j * K + k : k * N + j];
                    wd = fmax(wd, fabs(acc - sal_f32(dA)[i * K + k]));
                }
            }
            CHECK(wy < 1e-4 && wd < 1e-4, "%s N=%d transB=%d, %d rows, call %d: forward off by %g, gradient by %g", op,
                  N, tb, M, q, wy, wd);
            sal_tensor_free(&A);
            sal_tensor_free(&seed);
        }
        sal_session_free(s);
        sal_model_free(g);
        if (!gemm) sal_tensor_free(&C);
    }
}

/* sal_sgemm with one row whose entries are mostly zero (a gradient or activation after a ReLU)
 * takes a path that skips the zero rows of B: check it against a double loop, for alpha/beta
 * variants, a strided row (transA), sizes that do and do not split across threads, and a row of
 * zeros. */
static void test_sparse_row(void) {
    sal_rng r;
    sal_rng_seed(&r, 11);
    CHECK_OK(sal_blas_init());
    const int sizes[][2] = {{7, 5}, {300, 257}, {1024, 784}};
    for (int si = 0; si < 3; si++)
        for (int zero_frac = 0; zero_frac < 3; zero_frac++)
            for (int ta = 0; ta < 2; ta++) {
                int K = sizes[si][0], N = sizes[si][1], lda = ta ? 3 : K;
                float *a = calloc((size_t)K * 3, sizeof *a), *B = malloc(sizeof *B * (size_t)K * N);
                float *c = malloc(sizeof *c * (size_t)N), *c0 = malloc(sizeof *c0 * (size_t)N);
                for (int k = 0; k < K; k++) {
                    double u = sal_rng_uniform(&r);
                    float v = (float)sal_rng_normal(&r);
                    /* zero_frac 0: half zero; 1: 90% zero; 2: all zero */
                    a[(size_t)k * (ta ? 3 : 1)] = zero_frac == 2 || u < (zero_frac ? 0.9 : 0.5) ? 0.0f : v;
                }
                for (int i = 0; i < K * N; i++) B[i] = (float)sal_rng_normal(&r);
                for (int j = 0; j < N; j++) c0[j] = (float)sal_rng_normal(&r);
                const float betas[3] = {0.0f, 1.0f, 0.25f};
                for (int bi = 0; bi < 3; bi++) {
                    memcpy(c, c0, sizeof *c * (size_t)N);
                    if (betas[bi] == 0.0f) c[0] = NAN; /* beta 0 ignores what C held */
                    sal_sgemm(ta, false, 1, N, K, 1.5f, a, lda, B, N, betas[bi], c, N);
                    double worst = 0;
                    for (int j = 0; j < N; j++) {
                        double acc = betas[bi] == 0.0f ? 0.0 : betas[bi] * (double)c0[j];
                        for (int k = 0; k < K; k++) acc += 1.5 * a[(size_t)k * (ta ? 3 : 1)] * (double)B[(size_t)k * N + j];
                        worst = fmax(worst, fabs(acc - c[j]) / (1.0 + fabs(acc)));
                    }
                    CHECK(worst < 1e-5, "sparse-row sgemm K=%d N=%d zeros=%d transA=%d beta=%g: off by %g", K, N,
                          zero_frac, ta, (double)betas[bi], worst);
                }
                free(a), free(B), free(c), free(c0);
            }
}

/* sal_rows_dot_masked: the dot products of the rows a mask picks (one mask or two), zero or left
 * as they were elsewhere, against a double loop; sizes on one thread and split across threads, a
 * row stride wider than the row, and masks whose first and last rows are not picked; masks that
 * pick nearly every row are declined. */
static void test_rows_dot_masked(void) {
    sal_rng r;
    sal_rng_seed(&r, 12);
    const int sizes[][3] = {{5, 7, 7}, {300, 600, 640}, {1024, 1024, 1024}}; /* K, N, row stride */
    for (int si = 0; si < 3; si++)
        for (int two = 0; two < 2; two++)
            for (int add = 0; add < 2; add++) {
                int K = sizes[si][0], N = sizes[si][1], ld = sizes[si][2];
                float *R = malloc(sizeof *R * (size_t)K * ld), *y = malloc(sizeof *y * (size_t)N);
                float *m0 = malloc(sizeof *m0 * (size_t)K), *m1 = malloc(sizeof *m1 * (size_t)K);
                float *o = malloc(sizeof *o * (size_t)K), *o0 = malloc(sizeof *o0 * (size_t)K);
                SAL_ASSERT(R && y && m0 && m1 && o && o0);
                for (int i = 0; i < K * ld; i++) R[i] = (float)sal_rng_normal(&r);
                for (int j = 0; j < N; j++) y[j] = (float)sal_rng_normal(&r);
                for (int k = 0; k < K; k++) {
                    m0[k] = sal_rng_uniform(&r) < 0.4 ? (float)sal_rng_uniform(&r) : -(float)sal_rng_uniform(&r);
                    m1[k] = sal_rng_uniform(&r) < 0.3 ? 1.0f : 0.0f;
                    o0[k] = (float)sal_rng_normal(&r);
                }
                for (int k = 0; k < (K > 20 ? 3 : 1); k++) /* the first and last rows unpicked */
                    m0[k] = m1[k] = m0[K - 1 - k] = m1[K - 1 - k] = 0.0f;
                m0[K / 2] = 0.5f; /* and one picked */
                memcpy(o, o0, sizeof *o * (size_t)K);
                bool ran = sal_rows_dot_masked(N, K, 0.5f, y, R, ld, m0, two ? m1 : NULL, add, o);
                double worst = 0;
                int picked = 0;
                for (int k = 0; k < K; k++) {
                    bool pick = m0[k] > 0 || (two && m1[k] > 0);
                    double want = add ? o0[k] : 0.0;
                    for (int j = 0; pick && j < N; j++) want += 0.5 * (double)R[(size_t)k * ld + j] * y[j];
                    worst = fmax(worst, fabs(want - o[k]) / (1.0 + fabs(want)));
                    picked += pick;
                }
                CHECK(ran && picked > 0 && picked < K && worst < 1e-4, /* sums of 1024 terms in float */
                      "masked rows' dot products K=%d N=%d, %s mask%s, %s: %d rows picked, off by %g", K, N,
                      two ? "two" : "one", two ? "s" : "", add ? "added" : "set", picked, worst);
                if (K >= 16) { /* nearly every row picked (more than K - K/8): declined, out untouched */
                    for (int k = 0; k < K; k++) m0[k] = k < K / 16 ? 0.0f : 1.0f;
                    memcpy(o, o0, sizeof *o * (size_t)K);
                    ran = sal_rows_dot_masked(N, K, 0.5f, y, R, ld, m0, two ? m1 : NULL, add, o);
                    CHECK(!ran && !memcmp(o, o0, sizeof *o * (size_t)K),
                          "masked rows' dot products K=%d N=%d with %d of %d rows picked: declined, nothing written",
                          K, N, K - K / 16, K);
                }
                free(R), free(y), free(m0), free(m1), free(o), free(o0);
            }
}

/* sal_sgemm's paths: OpenBLAS for small products, oneDNN's sgemm from 2^17 multiply-adds with
 * K >= 16, our dot products for one row against a transposed B of up to 2^15 (src/core/blas.c).
 * Both against a double loop, with transposes, leading dimensions wider than the matrices, alpha
 * and beta (beta 0 must ignore a NaN in C), at one and two threads (neither library promises the
 * same bits for both). */
static void test_general(void) {
    sal_rng r;
    sal_rng_seed(&r, 12);
    CHECK_OK(sal_blas_init());
    /* the first two: the matrix-vector paths (one row, one column) */
    const int shapes[][3] = {{1, 70, 40}, {45, 1, 33}, {5, 7, 3}, {33, 20, 15}, {64, 96, 40}, {197, 230, 77}, {16, 300, 784}};
    for (int si = 0; si < 7; si++)
        for (int t = 0; t < 4; t++) {
            int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], ta = t & 1, tb = t >> 1;
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
            float *A = malloc(sizeof *A * (size_t)lda * (ta ? K : M)), *B = malloc(sizeof *B * (size_t)ldb * (tb ? N : K));
            float *C0 = malloc(sizeof *C0 * (size_t)ldc * M), *C = malloc(sizeof *C * (size_t)ldc * M);
            float *C1 = malloc(sizeof *C1 * (size_t)ldc * M);
            for (int i = 0; i < lda * (ta ? K : M); i++) A[i] = (float)sal_rng_normal(&r);
            for (int i = 0; i < ldb * (tb ? N : K); i++) B[i] = (float)sal_rng_normal(&r);
            for (int i = 0; i < ldc * M; i++) C0[i] = (float)sal_rng_normal(&r);
            const float betas[2] = {0.0f, 0.5f};
            for (int bi = 0; bi < 2; bi++) {
                memcpy(C, C0, sizeof *C * (size_t)ldc * M);
                if (betas[bi] == 0.0f) C[0] = NAN;
                memcpy(C1, C, sizeof *C * (size_t)ldc * M);
                sal_set_threads(1);
                sal_sgemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, betas[bi], C1, ldc);
                sal_set_threads(2);
                sal_sgemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, betas[bi], C, ldc);
                sal_set_threads(0);
                for (int th = 1; th <= 2; th++) {
                    const float *Y = th == 1 ? C1 : C;
                    double worst = 0;
                    bool pad_kept = true;
                    for (int i = 0; i < M; i++) {
                        for (int j = 0; j < N; j++) {
                            double acc = betas[bi] == 0.0f ? 0.0 : betas[bi] * (double)C0[i * ldc + j];
                            for (int k = 0; k < K; k++)
                                acc += 0.75 * (double)A[ta ? k * lda + i : i * lda + k] * B[tb ? j * ldb + k : k * ldb + j];
                            worst = fmax(worst, fabs(acc - Y[i * ldc + j]) / (1.0 + fabs(acc)));
                        }
                        pad_kept &= Y[i * ldc + N] == C0[i * ldc + N];
                    }
                    /* float rounding grows with the sqrt of the terms summed */
                    CHECK(worst < 4e-6 * sqrt(K), "sgemm M=%d N=%d K=%d transA=%d transB=%d beta=%g, %d threads: off by %g",
                          M, N, K, ta, tb, (double)betas[bi], th, worst);
                    CHECK(pad_kept, "sgemm M=%d N=%d K=%d: a column beyond N was written", M, N, K);
                }
            }
            free(A), free(B), free(C0), free(C), free(C1);
        }
}

static void gc(const char *op, int nin, sal_tensor *in, const bool *cst, int nattr, sal_attr *attr) {
    t_gradcheck((t_gradcheck_spec){.op = op, .nin = nin, .in = in, .is_const = cst, .nattr = nattr, .attr = attr, .seed = 3});
    for (int i = 0; i < nin; i++) sal_tensor_free(&in[i]);
}

/* The op table: ids follow oplist.h, names round-trip, and traits are consistent with each other. */
static void test_op_table(void) {
    const sal_op *const *all = sal_op_all();
    int n = 0;
    for (; all[n]; n++) {
        const sal_op *op = all[n];
        CHECK(op->id == (sal_op_id)n && sal_op_get(op->id) == op, "op %s has id %d at index %d", op->name, op->id, n);
        CHECK(sal_op_lookup(op->name) == op, "lookup of %s", op->name);
        CHECK(!(op->traits & SAL_TR_VIEW) || (op->traits & SAL_TR_ROUTE), "%s: VIEW without ROUTE", op->name);
        CHECK(!(op->traits & SAL_TR_LINEAR) || (op->traits & SAL_TR_MULTILINEAR), "%s: LINEAR not MULTILINEAR", op->name);
        CHECK(!(op->traits & (SAL_TR_ADDITIVE | SAL_TR_MULTILINEAR)) || op->lin_in, "%s: linear in no input", op->name);
        CHECK(!(op->lin_in & op->bias_in), "%s: an input both multiplied and added", op->name);
        CHECK(op->max_in < 32 || !(op->traits & SAL_TR_MULTILINEAR), "%s: too many inputs for lin_in", op->name);
    }
    CHECK(n == SAL_OP_COUNT, "%d ops in the table, %d ids", n, SAL_OP_COUNT);
    CHECK(sal_op_lookup("NoSuchOp") == NULL, "unknown op name");
    /* linearity in what varies */
    struct { sal_op_id op; unsigned vary; bool linear; } cases[] = {
        {SAL_OP_Add, 3, true},   {SAL_OP_Mul, 1, true},   {SAL_OP_Mul, 3, false}, {SAL_OP_Div, 1, true},
        {SAL_OP_Div, 2, false},  {SAL_OP_Gemm, 5, true},  {SAL_OP_Gemm, 3, false}, {SAL_OP_Conv, 2, true},
        {SAL_OP_BatchNormalization, 1, true}, {SAL_OP_BatchNormalization, 4, false}, {SAL_OP_Relu, 1, false},
        {SAL_OP_Reshape, 1, true}, {SAL_OP_MaxPool, 1, false}, {SAL_OP_ReduceSum, 1, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sal_node nd = {.name = "n", .op = sal_op_get(cases[i].op)};
        CHECK(sal_node_linear_in(&nd, cases[i].vary) == cases[i].linear, "%s with inputs 0x%x varying: linear %d",
              nd.op->name, cases[i].vary, cases[i].linear);
    }
}

int main(void) {
    test_op_table();
    sal_rng r;
    sal_rng_seed(&r, 1);
    test_gemm_forward();
    test_gemm_sparse_row();
    test_products_kept("Gemm", 80);
    test_products_kept("Gemm", 256);
    test_products_kept("MatMul", 80);
    test_products_kept("MatMul", 512);
    test_sparse_row();
    test_rows_dot_masked();
    test_general();
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            sal_tensor in[3] = {t_rand(&r, 2, ta ? (int64_t[]){4, 3} : (int64_t[]){3, 4}, 1),
                                t_rand(&r, 2, tb ? (int64_t[]){5, 4} : (int64_t[]){4, 5}, 1),
                                t_rand(&r, 2, (int64_t[]){1, 5}, 1)};
            sal_attr at[3] = {sal_attr_make_int("transA", ta), sal_attr_make_int("transB", tb),
                              sal_attr_make_float("beta", 0.7f)};
            gc("Gemm", 3, in, (bool[]){false, true, true}, 3, at);
        }
    /* one row or one column: the matrix-vector path of sal_sgemm */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int vec = 0; vec < 2; vec++) {
                int64_t M = vec ? 3 : 1, N = vec ? 1 : 5;
                sal_tensor in[3] = {t_rand(&r, 2, ta ? (int64_t[]){4, M} : (int64_t[]){M, 4}, 1),
                                    t_rand(&r, 2, tb ? (int64_t[]){N, 4} : (int64_t[]){4, N}, 1),
                                    t_rand(&r, 1, (int64_t[]){N}, 1)};
                sal_attr at[3] = {sal_attr_make_int("transA", ta), sal_attr_make_int("transB", tb),
                                  sal_attr_make_float("alpha", 1.5f)};
                gc("Gemm", 3, in, (bool[]){false, true, true}, 3, at);
            }
    {
        sal_tensor in[2] = {t_rand(&r, 3, (int64_t[]){2, 3, 4}, 1), t_rand(&r, 2, (int64_t[]){4, 5}, 1)};
        gc("MatMul", 2, in, (bool[]){false, true}, 0, NULL);
    }
    {
        sal_tensor in[2] = {t_rand(&r, 3, (int64_t[]){2, 3, 4}, 1), t_rand(&r, 3, (int64_t[]){1, 4, 2}, 1)};
        gc("MatMul", 2, in, (bool[]){false, false}, 0, NULL);
    }
    {
        sal_tensor in[1] = {t_rand(&r, 2, (int64_t[]){4, 6}, 1)};
        gc("Relu", 1, in, (bool[]){false}, 0, NULL);
    }
    {
        sal_tensor in[1] = {t_rand(&r, 4, (int64_t[]){2, 3, 2, 2}, 1)};
        sal_attr at[1] = {sal_attr_make_int("axis", 2)};
        gc("Flatten", 1, in, (bool[]){false}, 1, at);
    }
    return t_done("test_ops_basic");
}
