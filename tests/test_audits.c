/* Audits: similarity metrics against hand-computed values, the shifted-model construction
 * (f2(x + m) = f1(x) for Gemm, MatMul and Conv first layers, constant and checkerboard shifts), the
 * audits end to end on small models, composite images and multi-label training. */
#include "testutil.h"
#include "audits/audit.h"

static void test_correlations(void) {
    /* rho = 1 - 6 sum d^2 / (n (n^2 - 1)): d = (-1, 1, -1, 1, 0), sum d^2 = 4 -> 1 - 24/120 = 0.8 */
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {2, 1, 4, 3, 5};
    CHECK(fabs(sal_spearman(a, b, 5) - 0.8) < 1e-9, "spearman %g, want 0.8", sal_spearman(a, b, 5));
    /* ranks are what counts: a monotone transform keeps rho = 1 */
    float c[5] = {1, 8, 27, 64, 125};
    CHECK(fabs(sal_spearman(a, c, 5) - 1) < 1e-12, "spearman of a monotone map %g", sal_spearman(a, c, 5));
    /* ties: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): cov 4.5, var 4.5 and 5 -> 4.5 / sqrt(22.5) */
    float t[4] = {1, 2, 2, 3}, u[4] = {1, 2, 3, 4};
    double want = 4.5 / sqrt(22.5);
    CHECK(fabs(sal_spearman(t, u, 4) - want) < 1e-6, "spearman with ties %g, want %g", sal_spearman(t, u, 4), want);
    float k[4] = {3, 3, 3, 3};
    CHECK(isnan(sal_spearman(k, u, 4)), "spearman of a constant is undefined");
    CHECK(isnan(sal_spearman(a, b, 1)), "spearman of one value is undefined");
    float p[3] = {1, 2, 3}, q[3] = {2, 4, 6}, r[3] = {3, 2, 1.5f};
    CHECK(fabs(sal_pearson(p, q, 3) - 1) < 1e-12, "pearson %g", sal_pearson(p, q, 3));
    /* (1,2,3) vs (3,2,1.5): deviations (-1,0,1) and (0.8333,-0.1667,-0.6667): cov -1.5, var 2 and 1.1667 */
    want = -1.5 / sqrt(2 * (0.8333333333 * 0.8333333333 + 0.1666666667 * 0.1666666667 + 0.6666666667 * 0.6666666667));
    CHECK(fabs(sal_pearson(p, r, 3) - want) < 1e-6, "pearson %g, want %g", sal_pearson(p, r, 3), want);
}

static void test_ssim(void) {
    float a[16 * 16], b[16 * 16];
    sal_rng g;
    sal_rng_seed(&g, 3);
    for (int i = 0; i < 256; i++) a[i] = (float)sal_rng_uniform(&g);
    double s;
    CHECK_OK(sal_ssim(a, a, 16, 16, 1, &s));
    CHECK(fabs(s - 1) < 1e-12, "SSIM of an image with itself %g", s);
    /* constant images alpha, beta: no variance, so SSIM = (2 alpha beta + C1) / (alpha^2 + beta^2 + C1) */
    for (int i = 0; i < 256; i++) a[i] = 0.5f, b[i] = 0.25f;
    double c1 = 1e-4, want = (2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1);
    CHECK_OK(sal_ssim(a, b, 16, 16, 1, &s));
    CHECK(fabs(s - want) < 1e-9, "SSIM of constants %g, want %g", s, want);
    for (int i = 0; i < 256; i++) a[i] = 0, b[i] = 1;
    CHECK_OK(sal_ssim(a, b, 16, 16, 1, &s));
    CHECK(fabs(s - c1 / (1 + c1)) < 1e-12, "SSIM black vs white %g", s);
    /* equal means, opposite structure: the structure term is (C2 - 2 var) / (2 var + C2) < 0 */
    for (int i = 0; i < 256; i++) a[i] = (float)((i / 16 + i % 16) % 2), b[i] = 1 - a[i];
    CHECK_OK(sal_ssim(a, b, 16, 16, 1, &s));
    CHECK(s < -0.9, "SSIM of a checkerboard and its inverse %g", s);
    /* small images use the whole image as the (odd) window */
    CHECK_OK(sal_ssim(a, a, 4, 4, 1, &s));
    CHECK(fabs(s - 1) < 1e-12, "SSIM of 4x4 %g", s);
    CHECK_FAILS(sal_ssim(a, b, 16, 16, 0, &s), SAL_ERR_ARG, "positive range");
}

/* HOG as scikit-image computes it (the Python test compares with skimage itself); here closed
 * forms on 4x4 images, one 4-pixel cell, one block. */
static void test_hog(void) {
    /* a vertical edge: columns 0 0 1 1. g_col = 1 in columns 1 and 2 of every row (skimage zeroes
     * only the border columns of g_col and the border rows of g_row): 8 pixels at angle 0, all in
     * bin 0 (hard binning). One bin: L2-Hys gives 1. */
    float img[16];
    for (int i = 0; i < 16; i++) img[i] = (float)(i % 4 >= 2);
    sal_hog_opts o = {.cell = 4, .block = 1, .bins = 9};
    float f[9];
    int64_t n;
    CHECK_OK(sal_hog(img, 4, 4, &o, f, &n));
    CHECK(n == 9, "HOG length %lld", (long long)n);
    for (int k = 0; k < 9; k++) CHECK(fabsf(f[k] - (k == 0)) < 1e-6f, "vertical edge bin %d: %g", k, (double)f[k]);
    /* a horizontal edge: gradient at 90 degrees, bin 4 = [80, 100) */
    for (int i = 0; i < 16; i++) img[i] = (float)(i / 4 >= 2);
    CHECK_OK(sal_hog(img, 4, 4, &o, f, &n));
    for (int k = 0; k < 9; k++) CHECK(fabsf(f[k] - (k == 4)) < 1e-6f, "horizontal edge bin %d: %g", k, (double)f[k]);
    /* a ramp I = x + y: inner pixels (2, 2) at 45 degrees (bin 2, |g| = 2 sqrt 2), inner rows on the
     * border columns (0, 2) at 90 (bin 4), border rows at inner columns (2, 0) at 0 (bin 0), 4 pixels
     * each, the corners nothing; cell means over 16 pixels, then L2-Hys. */
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) img[y * 4 + x] = (float)(x + y);
    double h[9] = {0};
    h[0] = 4 * 2.0 / 16, h[2] = 4 * 2 * sqrt(2.0) / 16, h[4] = 4 * 2.0 / 16;
    for (int pass = 0; pass < 2; pass++) {
        double ss = 0;
        for (int k = 0; k < 9; k++) ss += h[k] * h[k];
        for (int k = 0; k < 9; k++) {
            h[k] /= sqrt(ss + 1e-10);
            if (pass == 0 && h[k] > 0.2) h[k] = 0.2;
        }
    }
    CHECK_OK(sal_hog(img, 4, 4, &o, f, &n));
    for (int k = 0; k < 9; k++) CHECK(fabs(f[k] - h[k]) < 1e-6, "ramp bin %d: %g, want %g", k, (double)f[k], h[k]);
    /* skimage's defaults: 8-pixel cells, 3x3-cell blocks: 28x28 holds 3x3 cells, one block of 81 */
    CHECK_OK(sal_hog(img, 28, 28, NULL, NULL, &n));
    CHECK(n == 81, "HOG length of 28x28: %lld", (long long)n);
    CHECK_OK(sal_hog(img, 224, 224, NULL, NULL, &n));
    CHECK(n == 26 * 26 * 81, "HOG length of 224x224: %lld", (long long)n);
    /* cells adapted to the image on request: 28 -> 4-pixel cells, 7x7 cells, 5x5 blocks */
    CHECK_OK(sal_hog(img, 28, 28, &(sal_hog_opts){.cell = -1}, NULL, &n));
    CHECK(n == 5 * 5 * 81, "HOG length of 28x28 with adapted cells: %lld", (long long)n);
    CHECK_FAILS(sal_hog(img, 16, 16, NULL, NULL, &n), SAL_ERR_SHAPE, "fewer than a block");
}

/* max |f2(x + m) - f1(x)| relative to max |f1(x)|, over the batch x */
static double shift_error(const sal_model *f1, const sal_model *f2, const sal_tensor *x, const sal_tensor *m) {
    sal_tensor xs = {0}, y1 = {0};
    SAL_ASSERT(sal_tensor_copy(&xs, x) == SAL_OK);
    int64_t row = sal_tensor_numel(m);
    for (int64_t i = 0; i < sal_tensor_numel(x); i++) sal_f32(&xs)[i] += sal_f32(m)[i % row];
    sal_session *s1, *s2;
    SAL_ASSERT(sal_session_new(f1, &s1) == SAL_OK && sal_session_new(f2, &s2) == SAL_OK);
    const sal_tensor *o1[1], *o2[1];
    double err = INFINITY, big = 0;
    if (sal_forward(s1, 1, x, o1) == SAL_OK && sal_tensor_copy(&y1, o1[0]) == SAL_OK && sal_forward(s2, 1, &xs, o2) == SAL_OK) {
        err = 0;
        for (int64_t i = 0; i < sal_tensor_numel(&y1); i++) {
            err = fmax(err, fabs((double)sal_f32(&y1)[i] - sal_f32(o2[0])[i]));
            big = fmax(big, fabs((double)sal_f32(&y1)[i]));
        }
        err /= big > 0 ? big : 1;
    }
    sal_session_free(s1);
    sal_session_free(s2);
    sal_tensor_free(&xs);
    sal_tensor_free(&y1);
    return err;
}

/* Conv without padding -> Relu -> Flatten -> Gemm: a constant shift folds into the conv's bias. */
static sal_model *conv_valid_model(sal_rng *r) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("conv-valid", &g) == SAL_OK);
    sal_tensor w = t_rand(r, 4, (int64_t[]){4, 2, 3, 3}, 0.3f), b = t_rand(r, 1, (int64_t[]){4}, 0.1f);
    sal_tensor w2 = t_rand(r, 2, (int64_t[]){3, 4 * 4 * 4}, 0.2f), b2 = t_rand(r, 1, (int64_t[]){3}, 0.1f);
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 2, 6, 6}));
    CHECK_OK(sal_graph_add_const(g, "w", &w));
    CHECK_OK(sal_graph_add_const(g, "b", &b));
    CHECK_OK(sal_graph_add_const(g, "w2", &w2));
    CHECK_OK(sal_graph_add_const(g, "b2", &b2));
    sal_attr at[1] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3})};
    CHECK_OK(sal_graph_add_node(g, "Conv", "conv", 3, (const char *[]){"x", "w", "b"}, 1, (const char *[]){"c"}, 1, at));
    CHECK_OK(sal_graph_add_node(g, "Relu", "relu", 1, (const char *[]){"c"}, 1, (const char *[]){"a"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "Flatten", "flat", 1, (const char *[]){"a"}, 1, (const char *[]){"f"}, 0, NULL));
    sal_attr at2[1] = {sal_attr_make_int("transB", 1)};
    CHECK_OK(sal_graph_add_node(g, "Gemm", "fc", 3, (const char *[]){"f", "w2", "b2"}, 1, (const char *[]){"y"}, 1, at2));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    return g;
}

/* x (N,4) MatMul W (4,3) -> Add b -> Relu -> MatMul (3,2): MatMul first layers get an Add after them. */
static sal_model *matmul_model(sal_rng *r) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("matmul", &g) == SAL_OK);
    sal_tensor w = t_rand(r, 2, (int64_t[]){4, 3}, 0.5f), b = t_rand(r, 1, (int64_t[]){3}, 0.1f);
    sal_tensor w2 = t_rand(r, 2, (int64_t[]){3, 2}, 0.5f);
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}));
    CHECK_OK(sal_graph_add_const(g, "w", &w));
    CHECK_OK(sal_graph_add_const(g, "b", &b));
    CHECK_OK(sal_graph_add_const(g, "w2", &w2));
    CHECK_OK(sal_graph_add_node(g, "MatMul", "mm", 2, (const char *[]){"x", "w"}, 1, (const char *[]){"h"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "Add", "add", 2, (const char *[]){"h", "b"}, 1, (const char *[]){"hb"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "Relu", "relu", 1, (const char *[]){"hb"}, 1, (const char *[]){"a"}, 0, NULL));
    CHECK_OK(sal_graph_add_node(g, "MatMul", "mm2", 2, (const char *[]){"a", "w2"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    return g;
}

static void check_shifted(const char *what, const sal_model *f1, const sal_tensor *x, const sal_tensor *m, int extra_nodes) {
    sal_model *f2 = NULL;
    CHECK_OK(sal_model_shifted(f1, m, &f2));
    if (!f2) return;
    double e = shift_error(f1, f2, x, m);
    CHECK(e < 1e-5, "%s: max |f2(x+m) - f1(x)| / max |f1(x)| = %g", what, e);
    CHECK(sal_model_num_nodes(f2) == sal_model_num_nodes(f1) + extra_nodes, "%s: %d nodes, want %d", what,
          sal_model_num_nodes(f2), sal_model_num_nodes(f1) + extra_nodes);
    /* the weights are the same: only the first layer's bias (or an added constant) differs */
    CHECK(sal_model_param_count(f2) >= sal_model_param_count(f1), "%s: parameters lost", what);
    sal_model_free(f2);
}

static void test_shifted_models(void) {
    sal_rng r;
    sal_rng_seed(&r, 11);
    sal_tensor m = {0};
    /* Gemm first (through Flatten): folds into the bias for any shift */
    sal_model *mlp = NULL;
    CHECK_OK(sal_model_build("mlp:1x6x6", 10, 5, &mlp));
    sal_tensor x = t_rand(&r, 4, (int64_t[]){5, 1, 6, 6}, 0.5f);
    CHECK_OK(sal_tensor_alloc(&m, SAL_F32, 3, (int64_t[]){1, 6, 6}));
    for (int i = 0; i < 36; i++) sal_f32(&m)[i] = -1;
    check_shifted("Gemm, constant -1", mlp, &x, &m, 0);
    CHECK_OK(sal_shift_checkerboard(3, (int64_t[]){1, 6, 6}, 2, 0.7, &m));
    CHECK(sal_f32(&m)[0] == 0 && sal_f32(&m)[2] == 0.7f && sal_f32(&m)[6 * 2] == 0.7f && sal_f32(&m)[6 * 2 + 2] == 0,
          "checkerboard cells");
    check_shifted("Gemm, checkerboard", mlp, &x, &m, 0);
    /* the shifted model is a model: it saves and loads */
    sal_model *f2 = NULL, *back = NULL;
    CHECK_OK(sal_model_shifted(mlp, &m, &f2));
    CHECK_OK(sal_model_save(f2, "test_audits_f2.onnx"));
    CHECK_OK(sal_model_load("test_audits_f2.onnx", &back));
    if (back) CHECK(shift_error(mlp, back, &x, &m) < 1e-5, "saved shifted model");
    remove("test_audits_f2.onnx");
    sal_model_free(back);
    sal_model_free(f2);
    /* a copy computes the same */
    sal_model *cp = NULL;
    CHECK_OK(sal_model_copy(mlp, &cp));
    sal_tensor zero = {0};
    CHECK_OK(sal_tensor_alloc(&zero, SAL_F32, 3, (int64_t[]){1, 6, 6}));
    if (cp) CHECK(shift_error(mlp, cp, &x, &zero) == 0, "copy differs");
    sal_tensor_free(&zero);
    sal_model_free(cp);
    sal_tensor_free(&x);
    sal_model_free(mlp);

    /* Conv with padding: the correction varies at the border, so an Add node carries it */
    sal_model *cnn = NULL;
    CHECK_OK(sal_model_build("cnn:1x8x8", 4, 6, &cnn));
    x = t_rand(&r, 4, (int64_t[]){3, 1, 8, 8}, 0.5f);
    CHECK_OK(sal_tensor_alloc(&m, SAL_F32, 3, (int64_t[]){1, 8, 8}));
    for (int i = 0; i < 64; i++) sal_f32(&m)[i] = -1;
    check_shifted("Conv (padded), constant -1", cnn, &x, &m, 1);
    CHECK_OK(sal_shift_checkerboard(3, (int64_t[]){1, 8, 8}, 2, 0.5, &m));
    check_shifted("Conv (padded), checkerboard", cnn, &x, &m, 1);
    sal_tensor_free(&x);
    sal_model_free(cnn);

    /* Conv without padding: a constant shift folds into the bias; a checkerboard needs the Add */
    sal_model *cv = conv_valid_model(&r);
    x = t_rand(&r, 4, (int64_t[]){3, 2, 6, 6}, 0.5f);
    CHECK_OK(sal_tensor_alloc(&m, SAL_F32, 3, (int64_t[]){2, 6, 6}));
    for (int i = 0; i < 72; i++) sal_f32(&m)[i] = i < 36 ? -1.0f : 0.25f; /* constant per channel */
    check_shifted("Conv (valid), constant per channel", cv, &x, &m, 0);
    CHECK_OK(sal_shift_checkerboard(3, (int64_t[]){2, 6, 6}, 1, -0.3, &m));
    check_shifted("Conv (valid), checkerboard", cv, &x, &m, 1);
    sal_tensor_free(&x);
    sal_model_free(cv);

    sal_model *mm = matmul_model(&r);
    x = t_rand(&r, 2, (int64_t[]){4, 4}, 1.0f);
    CHECK_OK(sal_tensor_alloc(&m, SAL_F32, 1, (int64_t[]){4}));
    for (int i = 0; i < 4; i++) sal_f32(&m)[i] = (float)(i - 2);
    check_shifted("MatMul", mm, &x, &m, 1);
    /* wrong shapes and models that cannot absorb a shift fail with a message */
    sal_tensor bad = {0};
    CHECK_OK(sal_tensor_alloc(&bad, SAL_F32, 1, (int64_t[]){5}));
    sal_model *f = NULL;
    CHECK_FAILS(sal_model_shifted(mm, &bad, &f), SAL_ERR_SHAPE, "does not fit");
    sal_tensor_free(&bad);
    sal_tensor_free(&x);
    sal_model_free(mm);

    sal_model *g;
    SAL_ASSERT(sal_graph_create("relu-first", &g) == SAL_OK);
    CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 4}));
    CHECK_OK(sal_graph_add_node(g, "Relu", "r0", 1, (const char *[]){"x"}, 1, (const char *[]){"y"}, 0, NULL));
    CHECK_OK(sal_graph_add_output(g, "y"));
    CHECK_OK(sal_graph_finalize(g));
    CHECK_OK(sal_tensor_alloc(&m, SAL_F32, 1, (int64_t[]){4}));
    CHECK_FAILS(sal_model_shifted(g, &m, &f), SAL_ERR_UNSUPPORTED, "node 'r0' (Relu)");
    sal_model_free(g);
    sal_tensor_free(&m);
}

/* a small MLP trained for a moment on synthetic data, for the audits end to end */
static sal_model *small_mlp(sal_tensor *x, sal_tensor *y) {
    sal_rng r;
    sal_rng_seed(&r, 5);
    *x = t_rand(&r, 4, (int64_t[]){64, 1, 6, 6}, 1.0f);
    SAL_ASSERT(sal_tensor_alloc(y, SAL_I64, 1, (int64_t[]){64}) == SAL_OK);
    for (int i = 0; i < 64 * 36; i++) sal_f32(x)[i] = (float)sal_rng_uniform(&r);
    for (int i = 0; i < 64; i++) { /* class = which quarter of the image is brightest */
        double q[4] = {0};
        for (int p = 0; p < 36; p++) q[(p / 6 >= 3) * 2 + (p % 6 >= 3)] += sal_f32(x)[i * 36 + p];
        int b = 0;
        for (int k = 1; k < 4; k++)
            if (q[k] > q[b]) b = k;
        ((int64_t *)y->data)[i] = b;
    }
    sal_model *m = NULL;
    CHECK_OK(sal_model_build("mlp:1x6x6", 4, 1, &m));
    sal_train_opts o = sal_train_defaults();
    o.epochs = 3;
    o.batch = 16;
    CHECK_OK(sal_train(m, x, y, &o));
    return m;
}

/* What the progress callback saw. */
typedef struct {
    int calls, ends;
    bool ok; /* done never went backwards nor past total, and total never changed */
    int64_t done, total;
    char what[32];
} progress_log;

static void on_progress(void *user, const char *what, int64_t done, int64_t total, const char *detail) {
    progress_log *p = user;
    if (!p->calls) p->ok = true, p->total = total;
    p->ok &= done >= p->done && done <= total && total == p->total && detail != NULL;
    p->done = done;
    p->ends += done == total;
    p->calls++;
    snprintf(p->what, sizeof p->what, "%s", what);
}

static void test_audits(void) {
    sal_tensor x = {0}, y = {0}, shift = {0};
    sal_model *m = small_mlp(&x, &y);
    if (!m) return;
    sal_tensor xa = au_rows(&x, 0, 6);
    CHECK_OK(sal_tensor_alloc(&shift, SAL_F32, 3, (int64_t[]){1, 6, 6}));
    for (int i = 0; i < 36; i++) sal_f32(&shift)[i] = -1;
    const char *ig_black[] = {"baseline=black", "steps=16"}, *ig_zero[] = {"baseline=zero", "steps=16"};
    const char *sg_gi[] = {"inner=gradient_x_input", "samples=8"}, *sg[] = {"samples=8"};
    sal_audit_method meths[] = {
        {"gradient", 0, NULL}, {"gradient_x_input", 0, NULL}, {"integrated_gradients", 2, ig_black},
        {"integrated_gradients", 2, ig_zero}, {"smoothgrad", 1, sg}, {"smoothgrad", 2, sg_gi}, {"gradient_shap", 0, NULL},
    };
    const bool invariant[] = {true, false, true, false, true, false};
    progress_log pl = {0};
    sal_invariance_opts o = {.common = {.methods = meths, .nmethods = 7, .model_name = "mlp", .data_name = "synthetic",
                                        .seed = 2, .batch = 4, .progress = on_progress, .progress_user = &pl},
                             .shift = &shift};
    sal_audit *a = NULL;
    CHECK_OK(sal_audit_invariance(m, &xa, &o, &a));
    /* progress: the audit's name, never backwards, done = total once at the end */
    CHECK(pl.calls > 2 && pl.ok && pl.ends == 1 && !strcmp(pl.what, "invariance") && pl.total == 7 * 6,
          "progress: %d calls, ok %d, %d ends, '%s', total %lld", pl.calls, pl.ok, pl.ends, pl.what, (long long)pl.total);
    if (a) {
        CHECK(sal_audit_count(a) == 7, "%d results", sal_audit_count(a));
        for (int i = 0; i < 6; i++) {
            double v = sal_audit_metric(a, i, "invariant");
            CHECK(!sal_audit_skipped(a, i) && v == invariant[i], "%s: %s", sal_audit_label(a, i), sal_audit_verdict(a, i));
            CHECK(sal_audit_outcome(a, i) == (invariant[i] ? SAL_VERDICT_PASS : SAL_VERDICT_FAIL), "%s: outcome %d",
                  sal_audit_label(a, i), (int)sal_audit_outcome(a, i));
        }
        CHECK(sal_audit_skipped(a, 6) && sal_audit_outcome(a, 6) == SAL_VERDICT_SKIPPED &&
              strstr(sal_audit_verdict(a, 6), "skipped: ") && strstr(sal_audit_verdict(a, 6), "--data"),
              "gradient_shap without data: %s", sal_audit_verdict(a, 6));
        /* the numbers are the result's: gradient's maps of f1 and f2 agree to rounding */
        CHECK(a->res[0].maps[0].data && a->res[0].maps[1].data && sal_tensor_numel(&a->res[0].maps[0]) == 36,
              "the figure sample's maps are kept");
        CHECK_OK(sal_audit_figure(a, t_tmp("inv.png")));
        sal_tensor png = {0};
        CHECK_OK(sal_png_read(t_tmp("inv.png"), &png));
        sal_tensor_free(&png);
        CHECK_FAILS(sal_audit_plot(a, t_tmp("never.png")), SAL_ERR_ARG, "draws no curves");
        CHECK(sal_audit_violations(a) == 3, "%d violations", sal_audit_violations(a));
        CHECK(!strcmp(sal_audit_label(a, 2), "integrated_gradients(baseline=black,steps=16)"), "label %s",
              sal_audit_label(a, 2));
        char *js = NULL, *csv = NULL;
        CHECK_OK(sal_audit_json(a, &js));
        CHECK(js && strstr(js, "\"audit\": \"invariance\"") && strstr(js, "\"model_check\": {\"max_abs_diff\": ") &&
              strstr(js, "\"max_norm_diff\": ") && strstr(js, "\"invariant\": true") &&
              strstr(js, "\"params\": {\"baseline\": \"black\", \"steps\": \"16\"}") && strstr(js, "\"seed\": 2"),
              "JSON:\n%s", js ? js : "");
        CHECK_OK(sal_audit_csv(a, &csv));
        CHECK(csv && !strncmp(csv, "method,label,max_norm_diff,max_abs_diff,spearman,ssim,invariant,verdict\n", 72),
              "CSV:\n%s", csv ? csv : "");
        free(js);
        free(csv);
        sal_audit_free(a);
    }
    /* with reference data gradient_shap runs too (on data shifted alike for f2) */
    o.common.methods = meths + 6, o.common.nmethods = 1, o.common.data = &x, o.common.progress = NULL;
    CHECK_OK(sal_audit_invariance(m, &xa, &o, &a));
    if (a) CHECK(!sal_audit_skipped(a, 0), "gradient_shap with data: %s", sal_audit_verdict(a, 0));
    sal_audit_free(a);
    o.common.data = NULL;
    /* PatternNet gets patterns estimated for f1 and for f2, in memory; f2 absorbs the shift in its
     * bias, so its patterns and maps are f1's (the method is invariant) */
    sal_audit_method pat[] = {{"patternnet", 0, NULL}, {"pattern_attribution", 0, NULL}};
    o.common.methods = pat, o.common.nmethods = 2;
    CHECK_OK(sal_audit_invariance(m, &xa, &o, &a));
    if (a) {
        for (int i = 0; i < 2; i++)
            CHECK(sal_audit_outcome(a, i) == SAL_VERDICT_PASS && a->res[i].patterns, "%s: %s", sal_audit_label(a, i),
                  sal_audit_verdict(a, i));
        char *js = NULL;
        CHECK_OK(sal_audit_json(a, &js));
        CHECK(js && strstr(js, "\"patterns\": \"estimated by the audit"), "the JSON says the patterns were estimated");
        free(js);
    }
    sal_audit_free(a);

    /* the other audits run and report their metrics */
    sal_audit_method two[] = {{"gradient", 0, NULL}, {"gradient_x_input", 0, NULL}};
    sal_audit_common p = {.methods = two, .nmethods = 2, .seed = 3, .batch = 4};
    sal_randomization_opts ro = {.common = p};
    CHECK_OK(sal_audit_randomization(m, &xa, &ro, &a));
    if (a) {
        /* 6x6 maps hold no 3x3 block of 8-pixel cells: no HOG, so |maps| decide */
        double v = sal_audit_metric(a, 0, "final_spearman_abs");
        CHECK(isnan(sal_audit_metric(a, 0, "final_hog_spearman")) && isfinite(v) && v < 0.5 &&
                  strstr(sal_audit_verdict(a, 0), "Spearman of |maps|"),
              "gradient after full randomization: Spearman of |maps| %g (%s)", v, sal_audit_verdict(a, 0));
        char *csv = NULL;
        CHECK_OK(sal_audit_csv(a, &csv));
        /* 2 methods x 2 modes x (4 layers + the trained model) rows, and a header */
        int lines = 0;
        for (const char *c = csv; c && *c; c++) lines += *c == '\n';
        CHECK(lines == 1 + 2 * 2 * 5, "randomization CSV has %d lines", lines);
        free(csv);
        /* the curves are numbers in the result: step 0 compares the map with itself, and the
         * cascade's mean is the mean of its steps */
        const double *cv = a->res[0].curve;
        double mean = 0;
        for (int s = 1; s <= 4; s++) mean += cv[s * AU_NSIM + AU_SPEAR_ABS] / 4;
        CHECK(a->rnd.nlayer == 4 && cv[AU_SPEAR_ABS] == 1 &&
                  fabs(mean - sal_audit_metric(a, 0, "cascading_mean_spearman_abs")) < 1e-12,
              "randomization curves: %d layers, mean %g", a->rnd.nlayer, mean);
        CHECK_OK(sal_audit_plot(a, t_tmp("rand-plot.png")));
        CHECK_OK(sal_audit_figure(a, t_tmp("rand-fig.png")));
        sal_audit_free(a);
    }
    CHECK_OK(sal_audit_class_sensitivity(m, &xa, &(sal_class_sensitivity_opts){.common = p}, &a));
    if (a) {
        CHECK(isfinite(sal_audit_metric(a, 0, "spearman")), "class sensitivity spearman");
        sal_audit_free(a);
    }
    sal_faithfulness_opts fo = {.common = p, .steps = 6};
    CHECK_OK(sal_audit_faithfulness(m, &xa, &fo, &a));
    if (a) {
        double mo = sal_audit_metric(a, 0, "aopc_morf"), lo = sal_audit_metric(a, 0, "aopc_lerf");
        CHECK(mo > lo, "deleting the most relevant pixels first changes more (AOPC %g vs %g)", mo, lo);
        CHECK(isfinite(sal_audit_metric(a, 0, "occlusion_spearman")), "occlusion correlation");
        /* AOPC from the mean deletion curve: the mean over steps of v[0] - v[s] is linear in v */
        const double *del = a->res[0].curve + AU_DEL_MORF * 7;
        double ao = 0;
        for (int s = 0; s <= 6; s++) ao += (del[0] - del[s]) / 7;
        CHECK(fabs(ao - mo) < 1e-9 * fmax(1, fabs(mo)), "AOPC %g from the mean curve, %g reported", ao, mo);
        CHECK_OK(sal_audit_plot(a, t_tmp("faith-plot.png")));
        sal_audit_free(a);
    }
    /* pointing: masks that put class k in quarter k of every image */
    sal_tensor masks = {0}, labels = {0};
    CHECK_OK(sal_tensor_alloc(&masks, SAL_I64, 3, (int64_t[]){6, 6, 6}));
    CHECK_OK(sal_tensor_alloc(&labels, SAL_F32, 2, (int64_t[]){6, 4}));
    for (int i = 0; i < 6; i++) {
        for (int pix = 0; pix < 36; pix++) ((int64_t *)masks.data)[i * 36 + pix] = (pix / 6 >= 3) * 2 + (pix % 6 >= 3) + 1;
        sal_f32(&labels)[i * 4 + i % 4] = 1;
        sal_f32(&labels)[i * 4 + (i + 1) % 4] = 1;
    }
    sal_pointing_opts po = {.common = p, .masks = &masks, .labels = &labels};
    CHECK_OK(sal_audit_pointing(m, &xa, &po, &a));
    if (a) {
        CHECK(sal_audit_metric(a, 0, "trials") == 12, "12 pointing trials, got %g", sal_audit_metric(a, 0, "trials"));
        double acc = sal_audit_metric(a, 0, "pointing_accuracy");
        CHECK(acc >= 0 && acc <= 1, "pointing accuracy %g", acc);
        sal_audit_free(a);
    }
    po.labels = &y; /* int labels (N) are not multi-hot */
    CHECK_FAILS(sal_audit_pointing(m, &xa, &po, &a), SAL_ERR_SHAPE, "multi-hot");
    sal_tensor_free(&masks);
    sal_tensor_free(&labels);
    /* an unknown method is an error, not a skip */
    sal_audit_method bogus = {"no_such_method", 0, NULL};
    p.methods = &bogus, p.nmethods = 1;
    CHECK_FAILS(sal_audit_class_sensitivity(m, &xa, &(sal_class_sensitivity_opts){.common = p}, &a), SAL_ERR_ARG,
                "unknown method 'no_such_method'");
    sal_tensor_free(&shift);
    sal_tensor_free(&x);
    sal_tensor_free(&y);
    sal_model_free(m);
}

/* The pointing game as TorchRay plays it, on a linear model whose gradient map for class k is its
 * weight row: class 0 has +1 at (10,10) and -2 at (40,40), class 1 +3 at (20,20) and -1 at (30,30).
 * The maximum of the energy |map| points at (40,40) and (20,20), that of the signed map at (10,10)
 * and (20,20). Objects: class 0 one pixel at (40,43), class 1 at (20,23), 3 pixels away. On 56 x 56
 * TorchRay's 15 pixels at 224 become 3.75: both hit (9 < 14.06); with radius 3 (9 < 9 fails) or
 * on the object itself, neither does. */
static void test_pointing_torchray(void) {
    enum { S = 56, P = S * S };
    static float w[P * 2];
    memset(w, 0, sizeof w);
    w[(10 * S + 10) * 2 + 0] = 1, w[(40 * S + 40) * 2 + 0] = -2;
    w[(20 * S + 20) * 2 + 1] = 3, w[(30 * S + 30) * 2 + 1] = -1;
    sal_model *m = NULL;
    SAL_ASSERT(sal_graph_create("point", &m) == SAL_OK);
    CHECK_OK(sal_graph_add_input(m, "x", SAL_F32, 4, (int64_t[]){-1, 1, S, S}));
    t_const(m, "w", 2, (int64_t[]){P, 2}, w);
    t_const(m, "b", 1, (int64_t[]){2}, (const float[]){0, 1}); /* at x = 0 the top class is 1 */
    t_node(m, "Flatten", "flat", 1, (const char *[]){"x"}, "f", 0, NULL);
    t_node(m, "Gemm", "fc", 3, (const char *[]){"f", "w", "b"}, "y", 0, NULL);
    m = t_finish(m, "y");
    sal_tensor x = {0}, masks = {0}, labels = {0};
    CHECK_OK(sal_tensor_alloc(&x, SAL_F32, 4, (int64_t[]){1, 1, S, S}));
    CHECK_OK(sal_tensor_alloc(&masks, SAL_I64, 3, (int64_t[]){1, S, S}));
    CHECK_OK(sal_tensor_alloc(&labels, SAL_F32, 2, (int64_t[]){1, 2}));
    ((int64_t *)masks.data)[40 * S + 43] = 1, ((int64_t *)masks.data)[20 * S + 23] = 2;
    sal_f32(&labels)[0] = sal_f32(&labels)[1] = 1;
    sal_audit_method grad = {"gradient", 0, NULL};
    const struct {
        double radius;
        sal_point_map how;
        double acc, racc;
    } cases[] = {
        {0, SAL_POINT_ENERGY, 1, 0.5},   /* the restricted game shows class 1's map for both */
        {0, SAL_POINT_SUM, 0.5, 0.5},    /* class 0's signed maximum is far from its object */
        {0, SAL_POINT_MAXABS, 1, 0.5},   /* one channel: max |.| is the energy */
        {3, SAL_POINT_ENERGY, 0, 0},     /* strictly closer than the radius */
        {3.01, SAL_POINT_ENERGY, 1, 0.5},
        {-1, SAL_POINT_ENERGY, 0, 0},    /* on the object itself */
    };
    for (size_t i = 0; m && i < sizeof cases / sizeof cases[0]; i++) {
        sal_pointing_opts po = {.common = {.methods = &grad, .nmethods = 1}, .masks = &masks, .labels = &labels,
                                .radius = cases[i].radius, .reduce = cases[i].how};
        sal_audit *a = NULL;
        CHECK_OK(sal_audit_pointing(m, &x, &po, &a));
        if (!a) continue;
        double acc = sal_audit_metric(a, 0, "pointing_accuracy"), racc = sal_audit_metric(a, 0, "restricted_accuracy");
        CHECK(acc == cases[i].acc && racc == cases[i].racc && sal_audit_metric(a, 0, "pointing_class_mean") == acc,
              "pointing case %zu (radius %g, map %d): accuracy %g, restricted %g; want %g, %g", i, cases[i].radius,
              (int)cases[i].how, acc, racc, cases[i].acc, cases[i].racc);
        if (i == 0) {
            char *js = NULL;
            CHECK_OK(sal_audit_json(a, &js));
            CHECK(js && strstr(js, "\"radius\": 3.75") && strstr(js, "\"map\": \"energy\""), "pointing JSON:\n%s",
                  js ? js : "");
            free(js);
        }
        sal_audit_free(a);
    }
    sal_tensor_free(&x);
    sal_tensor_free(&masks);
    sal_tensor_free(&labels);
    sal_model_free(m);
}

/* A model whose output ignores its input: every gradient map is zero, so no correlation, ranking
 * or maximum is defined. Each audit says "undetermined" (the pass key null), never a verdict. */
static void test_undetermined(void) {
    enum { S = 12, P = S * S };
    static float w[P * 3];
    memset(w, 0, sizeof w);
    sal_model *m = NULL;
    SAL_ASSERT(sal_graph_create("flat", &m) == SAL_OK);
    CHECK_OK(sal_graph_add_input(m, "x", SAL_F32, 4, (int64_t[]){-1, 1, S, S}));
    t_const(m, "w", 2, (int64_t[]){P, 3}, w);
    t_const(m, "b", 1, (int64_t[]){3}, (const float[]){0, 1, 2});
    t_node(m, "Flatten", "flat", 1, (const char *[]){"x"}, "f", 0, NULL);
    t_node(m, "Gemm", "fc", 3, (const char *[]){"f", "w", "b"}, "y", 0, NULL);
    m = t_finish(m, "y");
    sal_rng r;
    sal_rng_seed(&r, 4);
    sal_tensor x = t_rand(&r, 4, (int64_t[]){3, 1, S, S}, 1.0f), masks = {0}, labels = {0};
    CHECK_OK(sal_tensor_alloc(&masks, SAL_I64, 3, (int64_t[]){3, S, S}));
    CHECK_OK(sal_tensor_alloc(&labels, SAL_F32, 2, (int64_t[]){3, 3}));
    for (int i = 0; i < 3 * P; i++) ((int64_t *)masks.data)[i] = 1 + i % 3;
    for (int i = 0; i < 9; i++) sal_f32(&labels)[i] = 1;
    sal_audit_method grad = {"gradient", 0, NULL};
    sal_audit_common c = {.methods = &grad, .nmethods = 1, .seed = 1};
    for (int kind = 0; kind < 4 && m; kind++) {
        sal_audit *a = NULL;
        const char *key = kind == 0 ? "class_sensitive" : kind == 1 ? "class_sensitive" : kind == 2 ? "faithful" : "sensitive";
        if (kind == 0) CHECK_OK(sal_audit_class_sensitivity(m, &x, &(sal_class_sensitivity_opts){.common = c}, &a));
        else if (kind == 1)
            CHECK_OK(sal_audit_pointing(m, &x, &(sal_pointing_opts){.common = c, .masks = &masks, .labels = &labels}, &a));
        else if (kind == 2) CHECK_OK(sal_audit_faithfulness(m, &x, &(sal_faithfulness_opts){.common = c, .steps = 4}, &a));
        else CHECK_OK(sal_audit_randomization(m, &x, &(sal_randomization_opts){.common = c}, &a));
        if (!a) continue;
        char *js = NULL;
        CHECK_OK(sal_audit_json(a, &js));
        char want[64];
        snprintf(want, sizeof want, "\"%s\": null", key);
        /* randomization: the trained model's map is zero, so no step compares */
        CHECK(sal_audit_outcome(a, 0) == SAL_VERDICT_UNDETERMINED && !strncmp(sal_audit_verdict(a, 0), "undetermined (", 14) &&
                  isnan(sal_audit_metric(a, 0, key)) && js && strstr(js, want) && sal_audit_violations(a) == 0,
              "%s: %s", au_kind_name[a->kind], sal_audit_verdict(a, 0));
        free(js);
        sal_audit_free(a);
    }
    sal_tensor_free(&x);
    sal_tensor_free(&masks);
    sal_tensor_free(&labels);
    sal_model_free(m);
}

/* Every audit and writer under an allocation failure at every step: out of memory, never a crash
 * or a leak (the sanitizer build checks leaks), and the audit completes once allocations succeed. */
static void test_alloc_failures(void) {
    sal_rng r;
    sal_rng_seed(&r, 9);
    /* a tiny MLP: x (N,1,4,4) -> Flatten -> Gemm 16x6 -> Relu -> Gemm 6x3 */
    sal_model *m = NULL;
    SAL_ASSERT(sal_graph_create("tiny", &m) == SAL_OK);
    CHECK_OK(sal_graph_add_input(m, "x", SAL_F32, 4, (int64_t[]){-1, 1, 4, 4}));
    sal_tensor w1 = t_rand(&r, 2, (int64_t[]){16, 6}, 0.5f), w2 = t_rand(&r, 2, (int64_t[]){6, 3}, 0.5f);
    t_const(m, "w1", 2, w1.dim, sal_f32(&w1));
    t_const(m, "w2", 2, w2.dim, sal_f32(&w2));
    t_const(m, "b1", 1, (int64_t[]){6}, (const float[]){0.1f, -0.1f, 0.2f, 0, 0.1f, 0.3f});
    sal_tensor_free(&w1);
    sal_tensor_free(&w2);
    t_node(m, "Flatten", "flat", 1, (const char *[]){"x"}, "f", 0, NULL);
    t_node(m, "Gemm", "fc1", 3, (const char *[]){"f", "w1", "b1"}, "h", 0, NULL);
    t_node(m, "Relu", "relu", 1, (const char *[]){"h"}, "a", 0, NULL);
    t_node(m, "Gemm", "fc2", 2, (const char *[]){"a", "w2"}, "y", 0, NULL);
    m = t_finish(m, "y");
    sal_tensor x = t_rand(&r, 4, (int64_t[]){2, 1, 4, 4}, 1.0f), shift = {0}, masks = {0}, labels = {0};
    CHECK_OK(sal_tensor_alloc(&shift, SAL_F32, 3, (int64_t[]){1, 4, 4}));
    CHECK_OK(sal_tensor_alloc(&masks, SAL_I64, 3, (int64_t[]){2, 4, 4}));
    CHECK_OK(sal_tensor_alloc(&labels, SAL_F32, 2, (int64_t[]){2, 3}));
    for (int i = 0; i < 16; i++) sal_f32(&shift)[i] = 0.5f, ((int64_t *)masks.data)[i] = ((int64_t *)masks.data)[16 + i] = 1 + i % 3;
    sal_f32(&labels)[0] = sal_f32(&labels)[4] = 1;
    sal_audit_method meths[] = {{"gradient", 0, NULL}, {"patternnet", 0, NULL}};
    sal_audit_common c = {.methods = meths, .nmethods = 2, .batch = 2};
    for (int kind = 0; kind < 5 && m; kind++) {
        long k = 1;
        for (; k < 200000; k++) {
            sal_audit *a = NULL;
            char *js = NULL, *csv = NULL;
            sal_alloc_fail_after(k);
            sal_status st;
            if (kind == 0) st = sal_audit_invariance(m, &x, &(sal_invariance_opts){.common = c, .shift = &shift}, &a);
            else if (kind == 1) st = sal_audit_randomization(m, &x, &(sal_randomization_opts){.common = c}, &a);
            else if (kind == 2) st = sal_audit_class_sensitivity(m, &x, &(sal_class_sensitivity_opts){.common = c}, &a);
            else if (kind == 3)
                st = sal_audit_pointing(m, &x, &(sal_pointing_opts){.common = c, .masks = &masks, .labels = &labels}, &a);
            else st = sal_audit_faithfulness(m, &x, &(sal_faithfulness_opts){.common = c, .steps = 2}, &a);
            if (st == SAL_OK) st = sal_audit_json(a, &js);
            if (st == SAL_OK) st = sal_audit_csv(a, &csv);
            if (st == SAL_OK) st = sal_audit_figure(a, t_tmp("alloc.png"));
            sal_alloc_fail_after(0);
            free(js);
            free(csv);
            bool ran = a && !sal_audit_skipped(a, 0) && !sal_audit_skipped(a, 1);
            sal_audit_free(a);
            if (st == SAL_OK) {
                CHECK(ran, "audit %d: a method was skipped when allocations succeeded", kind);
                break;
            }
            CHECK(st == SAL_ERR_NOMEM, "audit %d, allocation %ld: %s (%s)", kind, k, sal_status_string(st), sal_last_error());
            if (st != SAL_ERR_NOMEM) break;
        }
        CHECK(k > 20 && k < 200000, "audit %d: %ld allocations walked", kind, k);
        printf("  alloc sweep: %s, %ld allocations\n", au_kind_name[kind], k);
    }
    sal_tensor *t[] = {&x, &shift, &masks, &labels};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) sal_tensor_free(t[i]);
    sal_model_free(m);
}

static void test_composite_and_bce(void) {
    /* items: 3x4 bars of class k in a 6x6 image */
    sal_tensor it = {0}, lab = {0}, img = {0}, y = {0}, mk = {0};
    CHECK_OK(sal_tensor_alloc(&it, SAL_F32, 4, (int64_t[]){12, 1, 6, 6}));
    CHECK_OK(sal_tensor_alloc(&lab, SAL_I64, 1, (int64_t[]){12}));
    for (int i = 0; i < 12; i++) {
        ((int64_t *)lab.data)[i] = i % 4;
        for (int yy = 1; yy < 4; yy++)
            for (int xx = 1; xx < 5; xx++) sal_f32(&it)[i * 36 + yy * 6 + xx] = 0.5f + 0.1f * (float)(i % 4);
    }
    sal_composite_opts o = {.count = 40, .h = 12, .w = 12, .items = 2, .items_max = 3, .seed = 9};
    CHECK_OK(sal_composite(&it, &lab, &o, &img, &y, &mk));
    bool ok = true;
    for (int64_t n = 0; n < 40 && ok; n++) {
        int count = 0;
        for (int k = 0; k < 4; k++) {
            int pixels = 0;
            for (int p = 0; p < 144; p++) pixels += ((int64_t *)mk.data)[n * 144 + p] == k + 1;
            bool on = sal_f32(&y)[n * 4 + k] == 1;
            count += on;
            /* each item is 3x4 = 12 pixels; distinct classes, no overlap */
            ok &= on ? pixels == 12 : pixels == 0;
        }
        ok &= count >= 2 && count <= 3;
        for (int p = 0; p < 144; p++) ok &= (((int64_t *)mk.data)[n * 144 + p] != 0) == (sal_f32(&img)[n * 144 + p] > 0);
    }
    CHECK(ok, "composite masks, labels and images agree");
    sal_tensor img2 = {0}, y2 = {0}, mk2 = {0};
    CHECK_OK(sal_composite(&it, &lab, &o, &img2, &y2, &mk2));
    CHECK(!memcmp(img.data, img2.data, 40 * 144 * sizeof(float)), "the same seed gives the same images");
    o.h = o.w = 6;
    o.items = 3;
    CHECK_FAILS(sal_composite(&it, &lab, &o, &img2, &y2, &mk2), SAL_ERR_ARG, "without overlap");

    /* multi-label training: sigmoid + BCE lowers the loss and predicts the labels */
    sal_model *m = NULL;
    CHECK_OK(sal_model_build("mlp:1x12x12", 4, 3, &m));
    sal_train_opts t = sal_train_defaults();
    t.loss = SAL_LOSS_BCE;
    t.epochs = 1;
    double acc0 = 0, acc1 = 0;
    CHECK_OK(sal_accuracy(m, &img, &y, &acc0));
    t.epochs = 30;
    t.batch = 8;
    CHECK_OK(sal_train(m, &img, &y, &t));
    CHECK_OK(sal_accuracy(m, &img, &y, &acc1));
    CHECK(acc1 > 0.95 && acc1 > acc0, "multi-label accuracy %g (before training %g)", acc1, acc0);
    t.loss = SAL_LOSS_SOFTMAX;
    CHECK_FAILS(sal_train(m, &img, &y, &t), SAL_ERR_ARG, "int64 class labels");
    t.loss = SAL_LOSS_BCE;
    sal_tensor yint = {0};
    CHECK_OK(sal_tensor_alloc(&yint, SAL_I64, 1, (int64_t[]){40}));
    CHECK_FAILS(sal_train(m, &img, &yint, &t), SAL_ERR_ARG, "multi-hot");
    sal_tensor_free(&yint);
    sal_model_free(m);
    sal_tensor *all[] = {&it, &lab, &img, &y, &mk, &img2, &y2, &mk2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sal_tensor_free(all[i]);
}

int main(void) {
    t_scratch_make("sal_test_audits");
    test_correlations();
    test_ssim();
    test_hog();
    test_shifted_models();
    test_audits();
    test_pointing_torchray();
    test_undetermined();
    test_alloc_failures();
    test_composite_and_bce();
    t_scratch_remove();
    return t_done("test_audits");
}
