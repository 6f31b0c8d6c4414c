/* Pattern estimation, the patterns file, PatternNet and PatternAttribution (src/methods/pattern.c):
 *   - on signal-plus-distractor data x = a_s y + a_d e and the linear model w that extracts y
 *     (w^T a_d = 0, w^T a_s = 1), PatternNet recovers a_s while the gradient recovers w, as in
 *     Kindermans et al. 2018 (Fig. 2);
 *   - estimated patterns equal the closed forms computed here in double, for Gemm (both weight
 *     layouts), MatMul and a strided, padded Conv (over its input patches);
 *   - streaming an NPY file in batches gives what the data in memory gives;
 *   - the file round-trips, and corruption, truncation, a bad magic, another version or junk are
 *     refused; patterns of another model are refused by hash;
 *   - PatternNet and PatternAttribution equal the hand backward passes on a ReLU MLP;
 *     PatternAttribution conserves on a linear model; deep_taylor root=pattern is PatternAttribution. */
#include "testutil.h"
#include "methods/lrp.h"
#include "saliency.h"
#include <unistd.h>

static void gemm(sal_model *g, const char *name, const char *in, const char *out, int K, int D, const float *W,
                 const float *b, bool transB) {
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.W", name);
    snprintf(bn, sizeof bn, "%s.b", name);
    t_const(g, wn, 2, transB ? (int64_t[]){K, D} : (int64_t[]){D, K}, W);
    if (b) t_const(g, bn, 1, (int64_t[]){K}, b);
    sal_attr at[1] = {sal_attr_make_int("transB", transB)};
    t_node(g, "Gemm", name, b ? 3 : 2, (const char *[]){in, wn, bn}, out, 1, at);
}

static double cosine(const float *a, const double *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += a[i] * b[i], aa += (double)a[i] * a[i], bb += b[i] * b[i];
    return ab / sqrt(aa * bb + 1e-300);
}

static double rel_err(const float *got, const double *want, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs(got[i] - want[i]));
        s = fmax(s, fabs(want[i]));
    }
    return d / fmax(s, 1e-12);
}

static int pattern_index(const sal_patterns *p, const char *name) {
    for (int i = 0; i < sal_patterns_count(p); i++)
        if (!strcmp(sal_patterns_node(p, i), name)) return i;
    return -1;
}

static sal_explanation *explain(const sal_model *m, const sal_tensor *x, const char *method, int np,
                                const char *const *params, int64_t target) {
    sal_explain_opts o = {.method = method, .nparams = np, .params = params, .target = SAL_TARGET_INDEX,
                          .classes = &target, .nclasses = 1};
    sal_explanation *e = NULL;
    if (sal_explain(m, x, &o, &e) != SAL_OK) fprintf(stderr, "  (%s: %s)\n", method, sal_last_error());
    return e;
}

/* ---- 1. signal and distractor ---- */

static void test_signal_distractor(void) {
    enum { D = 16, N = 4000 };
    sal_rng rng;
    sal_rng_seed(&rng, 2018);
    double as[D], ad[D], w[D], dd = 0, sd = 0, sps = 0;
    /* a distractor close to the signal, so that the filter must point far away from both */
    for (int j = 0; j < D; j++) as[j] = sal_rng_normal(&rng);
    for (int j = 0; j < D; j++) ad[j] = 0.8 * as[j] + 0.6 * sal_rng_normal(&rng);
    for (int j = 0; j < D; j++) dd += ad[j] * ad[j], sd += as[j] * ad[j];
    for (int j = 0; j < D; j++) w[j] = as[j] - sd / dd * ad[j]; /* orthogonal to the distractor */
    for (int j = 0; j < D; j++) sps += w[j] * as[j];
    for (int j = 0; j < D; j++) w[j] /= sps; /* w^T a_s = 1, w^T a_d = 0 */
    float W[2 * D];
    for (int j = 0; j < D; j++) W[j] = (float)w[j], W[D + j] = (float)-w[j];
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<linear>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, D}) == SAL_OK);
    gemm(g, "w", "x", "y", 2, D, W, NULL, true);
    sal_model *m = t_finish(g, "y");
    sal_tensor x = {0};
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 2, (int64_t[]){N, D}) == SAL_OK);
    for (int n = 0; n < N; n++) {
        double y = sal_rng_normal(&rng), e = sal_rng_normal(&rng);
        for (int j = 0; j < D; j++) sal_f32(&x)[n * D + j] = (float)(as[j] * y + ad[j] * e + 0.5);
    }
    sal_patterns *p = NULL;
    CHECK_OK(sal_patterns_estimate(m, &x, "signal+distractor", NULL, &p));
    if (!p) goto done;
    CHECK_OK(sal_patterns_save(p, t_tmp("sd.pat")));
    char par[600];
    snprintf(par, sizeof par, "patterns=%s", t_tmp("sd.pat"));
    sal_tensor xs = x; /* the first 8 samples */
    xs.dim[0] = 8;
    xs.cap = 0;
    for (int kind = 0; kind < 2; kind++) {
        const char *params[] = {par, kind ? "pattern=linear" : "pattern=relu"};
        sal_explanation *e = explain(m, &xs, "patternnet", 2, params, 0);
        sal_explanation *gr = explain(m, &xs, "gradient", 0, NULL, 0);
        if (!e || !gr) {
            CHECK(0, "patternnet or gradient failed");
            sal_explanation_free(e);
            sal_explanation_free(gr);
            continue;
        }
        double worst = 1, gw = 1, gs = 0;
        for (int n = 0; n < 8; n++) {
            const float *pm = sal_f32(sal_explanation_map(e)) + n * D, *gm = sal_f32(sal_explanation_map(gr)) + n * D;
            worst = fmin(worst, fabs(cosine(pm, as, D)));
            gw = fmin(gw, cosine(gm, w, D));
            gs = fmax(gs, fabs(cosine(gm, as, D)));
        }
        printf("  signal+distractor (%s patterns): |cos(PatternNet, a_s)| >= %.5f, cos(gradient, w) >= %.5f, "
               "|cos(gradient, a_s)| <= %.3f\n", kind ? "linear" : "relu", worst, gw, gs);
        CHECK(worst > 0.99, "PatternNet (%s patterns) recovers the signal direction with cosine %.4f only",
              kind ? "linear" : "relu", worst);
        CHECK(gw > 0.9999, "the gradient is the filter w (cosine %.6f)", gw);
        CHECK(gs < 0.8, "the gradient should not be the signal direction (cosine %.4f)", gs);
        sal_explanation_free(e);
        sal_explanation_free(gr);
    }
    /* PatternAttribution on the linear model: (w * a) y, which sums to y since w^T a = 1 */
    const char *pa[] = {par, "pattern=linear"};
    sal_explanation *e = explain(m, &xs, "pattern_attribution", 2, pa, 0);
    if (e) {
        double rc = sal_explanation_metric(e, "relevance_conservation");
        CHECK(fabs(rc - 1) < 1e-4, "pattern_attribution on a linear model: relevance_conservation %.8f, want 1", rc);
        const sal_tensor *A = sal_patterns_tensor(p, pattern_index(p, "w"), 0);
        double worst = 0;
        for (int n = 0; n < 8; n++) {
            double want[D];
            for (int j = 0; j < D; j++) want[j] = (double)W[j] * sal_f32(A)[j] * sal_explanation_outputs(e)[n];
            worst = fmax(worst, rel_err(sal_f32(sal_explanation_map(e)) + n * D, want, D));
        }
        CHECK(worst < 1e-5, "pattern_attribution = (w * a) y: relative error %.3g", worst);
    } else {
        CHECK(0, "pattern_attribution failed");
    }
    sal_explanation_free(e);
    /* deep_taylor with the pattern root point is PatternAttribution */
    const char *pd[] = {"root=pattern", par, "pattern=linear"};
    sal_explanation *e2 = explain(m, &xs, "deep_taylor", 3, pd, 0);
    e = explain(m, &xs, "pattern_attribution", 2, pa, 0);
    if (e && e2) {
        const float *a = sal_f32(sal_explanation_map(e)), *b = sal_f32(sal_explanation_map(e2));
        double d = 0;
        for (int i = 0; i < 8 * D; i++) d = fmax(d, fabs(a[i] - b[i]));
        CHECK(d == 0, "deep_taylor root=pattern differs from pattern_attribution by %.3g", d);
    } else {
        CHECK(0, "deep_taylor root=pattern failed");
    }
    sal_explanation_free(e);
    sal_explanation_free(e2);
    sal_patterns_free(p);
done:
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- 2. closed forms ---- */

/* Patterns of one unit from samples (x_i, y_i), i < n, x of dimension d (strided rows). */
static void hand_pattern(const double *X, const double *Y, int n, int d, const double *w, bool relu, double *a) {
    double cnt = 0, ey = 0, ex[64] = {0}, exy[64] = {0};
    for (int i = 0; i < n; i++) {
        if (relu && !(Y[i] > 0)) continue;
        cnt++;
        ey += Y[i];
        for (int j = 0; j < d; j++) ex[j] += X[i * d + j], exy[j] += X[i * d + j] * Y[i];
    }
    double c[64], den = 0;
    for (int j = 0; j < d; j++) {
        c[j] = exy[j] / cnt - ex[j] / cnt * ey / cnt;
        den += w[j] * c[j];
    }
    for (int j = 0; j < d; j++) a[j] = c[j] / den;
}

static void test_closed_forms(void) {
    enum { N = 300, D = 6, H1 = 5, K = 3 };
    sal_rng rng;
    sal_rng_seed(&rng, 7);
    float W1[H1 * D], b1[H1], W2[D * K]; /* fc1: transB (H1, D); mm: (H1, K) */
    t_randv(&rng, W1, H1 * D, 0.5f);
    t_randv(&rng, b1, H1, 0.3f);
    t_randv(&rng, W2, H1 * K, 0.5f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<mlp>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, D}) == SAL_OK);
    gemm(g, "fc1", "x", "z1", H1, D, W1, b1, true);
    t_node(g, "Relu", "r1", 1, (const char *[]){"z1"}, "a1", 0, NULL);
    t_const(g, "mm.W", 2, (int64_t[]){H1, K}, W2);
    t_node(g, "MatMul", "mm", 2, (const char *[]){"a1", "mm.W"}, "y", 0, NULL);
    sal_model *m = t_finish(g, "y");
    sal_tensor x = {0};
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 2, (int64_t[]){N, D}) == SAL_OK);
    for (int i = 0; i < N * D; i++) sal_f32(&x)[i] = (float)(0.5 + (1 + i % D) * 0.3 * sal_rng_normal(&rng));
    sal_patterns_opts o = {.batch = 37};
    sal_patterns *p = NULL;
    CHECK_OK(sal_patterns_estimate(m, &x, "mlp data", &o, &p));
    if (p) {
        static double X[N * D], Z[N * H1], A1[N * H1], Y[N];
        for (int n = 0; n < N; n++) {
            for (int j = 0; j < D; j++) X[n * D + j] = sal_f32(&x)[n * D + j];
            for (int k = 0; k < H1; k++) {
                double s = b1[k];
                for (int j = 0; j < D; j++) s += (double)W1[k * D + j] * X[n * D + j];
                Z[n * H1 + k] = s;
                A1[n * H1 + k] = s > 0 ? s : 0;
            }
        }
        int i1 = pattern_index(p, "fc1"), i2 = pattern_index(p, "mm");
        CHECK(i1 >= 0 && i2 >= 0 && sal_patterns_count(p) == 2, "patterns for fc1 and mm");
        for (int relu = 0; relu < 2 && i1 >= 0 && i2 >= 0; relu++) {
            double worst = 0;
            for (int k = 0; k < H1; k++) { /* fc1: unit k is row k of W1 (5, 6) */
                double w[D], a[D];
                for (int n = 0; n < N; n++) Y[n] = Z[n * H1 + k];
                for (int j = 0; j < D; j++) w[j] = W1[k * D + j];
                hand_pattern(X, Y, N, D, w, relu, a);
                worst = fmax(worst, rel_err(sal_f32(sal_patterns_tensor(p, i1, relu)) + k * D, a, D));
            }
            CHECK(worst < 1e-4, "fc1 %s patterns: relative error %.3g against the closed form", relu ? "relu" : "linear", worst);
            worst = 0;
            for (int k = 0; k < K; k++) { /* mm: unit k is column k of W2 (5, 3) */
                double w[H1], a[H1];
                for (int n = 0; n < N; n++) {
                    double s = 0;
                    for (int j = 0; j < H1; j++) s += W2[j * K + k] * A1[n * H1 + j];
                    Y[n] = s;
                }
                for (int j = 0; j < H1; j++) w[j] = W2[j * K + k];
                hand_pattern(A1, Y, N, H1, w, relu, a);
                float got[H1];
                for (int j = 0; j < H1; j++) got[j] = sal_f32(sal_patterns_tensor(p, i2, relu))[j * K + k];
                worst = fmax(worst, rel_err(got, a, H1));
            }
            CHECK(worst < 1e-4, "MatMul %s patterns: relative error %.3g against the closed form", relu ? "relu" : "linear", worst);
        }
        /* w^T a = 1 for every unit that is not degenerate */
        const float *a = sal_f32(sal_patterns_tensor(p, i1, 1));
        for (int k = 0; k < H1; k++) {
            double s = 0;
            for (int j = 0; j < D; j++) s += (double)W1[k * D + j] * a[k * D + j];
            CHECK(fabs(s - 1) < 1e-4, "fc1 unit %d: w^T a = %.6f", k, s);
        }

        /* PatternNet and PatternAttribution on this ReLU net, by hand */
        CHECK_OK(sal_patterns_save(p, t_tmp("mlp.pat")));
        char par[600];
        snprintf(par, sizeof par, "patterns=%s", t_tmp("mlp.pat"));
        sal_tensor xs = x;
        xs.dim[0] = 5;
        xs.cap = 0;
        /* the default pattern=auto: two-component where a ReLU follows (fc1), linear at the output (mm) */
        const float *Af = sal_f32(sal_patterns_tensor(p, i1, 1)), *Am = sal_f32(sal_patterns_tensor(p, i2, 0));
        for (int attr = 0; attr < 2; attr++) {
            sal_explanation *e = explain(m, &xs, attr ? "pattern_attribution" : "patternnet", 1, (const char *[]){par}, 1);
            if (!e) {
                CHECK(0, "pattern method failed");
                continue;
            }
            double worst2 = 0;
            for (int n = 0; n < 5; n++) {
                double yt = 0, r1[H1], want[D];
                for (int j = 0; j < H1; j++) yt += W2[j * K + 1] * A1[n * H1 + j];
                for (int j = 0; j < H1; j++) {
                    double e2 = attr ? (double)W2[j * K + 1] * Am[j * K + 1] : Am[j * K + 1];
                    r1[j] = Z[n * H1 + j] > 0 ? e2 * yt : 0;
                }
                for (int i = 0; i < D; i++) {
                    double s = 0;
                    for (int k = 0; k < H1; k++) s += (attr ? (double)W1[k * D + i] * Af[k * D + i] : Af[k * D + i]) * r1[k];
                    want[i] = s;
                }
                worst2 = fmax(worst2, rel_err(sal_f32(sal_explanation_map(e)) + n * D, want, D));
            }
            CHECK(worst2 < 1e-4, "%s on a ReLU MLP: relative error %.3g against the hand backward pass",
                  attr ? "pattern_attribution" : "patternnet", worst2);
            sal_explanation_free(e);
        }
    }
    /* streaming an NPY file in batches of 7, using 250 samples, gives the same as memory */
    CHECK_OK(sal_npy_write(t_tmp("data.npy"), &x));
    sal_patterns *ps = NULL, *pm = NULL;
    sal_patterns_opts o2 = {.batch = 7, .limit = 250}, o3 = {.batch = 250};
    sal_tensor x250 = x;
    x250.dim[0] = 250;
    x250.cap = 0;
    CHECK_OK(sal_patterns_estimate_npy(m, t_tmp("data.npy"), &o2, &ps));
    CHECK_OK(sal_patterns_estimate(m, &x250, "memory", &o3, &pm));
    if (ps && pm) {
        CHECK(sal_patterns_samples(ps) == 250, "streamed %lld samples, want 250", (long long)sal_patterns_samples(ps));
        CHECK(strstr(sal_patterns_source(ps), "data.npy (300,6)") != NULL, "source '%s' names the file and its shape",
              sal_patterns_source(ps));
        for (int i = 0; i < 2; i++)
            for (int t = 0; t < 2; t++) {
                const sal_tensor *a = sal_patterns_tensor(ps, i, t), *b = sal_patterns_tensor(pm, i, t);
                double want[64];
                for (int64_t k = 0; k < sal_tensor_numel(b); k++) want[k] = sal_f32(b)[k];
                double e = rel_err(sal_f32(a), want, sal_tensor_numel(b));
                CHECK(e < 1e-4, "streamed and in-memory patterns of node %d differ by %.3g", i, e);
            }
    }
    sal_patterns_free(ps);
    sal_patterns_free(pm);
    sal_patterns_free(p);
    sal_tensor_free(&x);
    sal_model_free(m);
}

static void test_conv_closed_form(void) {
    enum { N = 40, C = 2, H = 5, MO = 3, OH = 3, KF = 4 };
    sal_rng rng;
    sal_rng_seed(&rng, 8);
    float k[MO * C * 9], kb[MO], fw[KF * MO * OH * OH];
    t_randv(&rng, k, MO * C * 9, 0.5f);
    t_randv(&rng, kb, MO, 0.2f);
    t_randv(&rng, fw, KF * MO * OH * OH, 0.3f);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<conv>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, C, H, H}) == SAL_OK);
    t_const(g, "k", 4, (int64_t[]){MO, C, 3, 3}, k);
    t_const(g, "kb", 1, (int64_t[]){MO}, kb);
    sal_attr ca[2] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    t_node(g, "Conv", "conv", 3, (const char *[]){"x", "k", "kb"}, "c", 2, ca);
    t_node(g, "Relu", "r", 1, (const char *[]){"c"}, "a", 0, NULL);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"a"}, "f", 0, NULL);
    gemm(g, "fc", "f", "y", KF, MO * OH * OH, fw, NULL, true);
    sal_model *m = t_finish(g, "y");
    sal_tensor x = {0};
    SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, 4, (int64_t[]){N, C, H, H}) == SAL_OK);
    for (int i = 0; i < N * C * H * H; i++) sal_f32(&x)[i] = (float)(0.3 + sal_rng_normal(&rng));
    sal_patterns *p = NULL;
    CHECK_OK(sal_patterns_estimate(m, &x, NULL, &(sal_patterns_opts){.batch = 16}, &p));
    int ic = p ? pattern_index(p, "conv") : -1;
    CHECK(ic >= 0, "a pattern for the conv node");
    if (ic >= 0) {
        static double P[N * OH * OH * C * 9], Y[N * OH * OH];
        for (int relu = 0; relu < 2; relu++) {
            double worst = 0;
            for (int mo = 0; mo < MO; mo++) {
                int s = 0;
                for (int n = 0; n < N; n++)
                    for (int oy = 0; oy < OH; oy++)
                        for (int ox = 0; ox < OH; ox++, s++) {
                            double y = kb[mo];
                            for (int c = 0; c < C; c++)
                                for (int t = 0; t < 9; t++) {
                                    int iy = oy * 2 - 1 + t / 3, ix = ox * 2 - 1 + t % 3;
                                    double v = iy < 0 || iy >= H || ix < 0 || ix >= H
                                                   ? 0
                                                   : sal_f32(&x)[((n * C + c) * H + iy) * H + ix];
                                    P[s * C * 9 + c * 9 + t] = v; /* the patch, zeros in the padding */
                                    y += k[(mo * C + c) * 9 + t] * v;
                                }
                            Y[s] = y;
                        }
                double w[C * 9], a[C * 9];
                for (int j = 0; j < C * 9; j++) w[j] = k[mo * C * 9 + j];
                hand_pattern(P, Y, s, C * 9, w, relu, a);
                worst = fmax(worst, rel_err(sal_f32(sal_patterns_tensor(p, ic, relu)) + mo * C * 9, a, C * 9));
            }
            CHECK(worst < 1e-4, "conv %s patterns: relative error %.3g against the closed form over patches",
                  relu ? "relu" : "linear", worst);
        }
    }
    sal_patterns_free(p);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- 3. the file ---- */

static long file_bytes(const char *path, unsigned char **buf) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)n + 16);
    if (fread(*buf, 1, (size_t)n, f) != (size_t)n) n = -1;
    fclose(f);
    return n;
}

static void write_bytes(const char *path, const unsigned char *b, long n) {
    FILE *f = fopen(path, "wb");
    SAL_ASSERT(f && fwrite(b, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
}

static void test_file(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 12);
    float W[4 * 3], W2[4 * 3];
    t_randv(&rng, W, 12, 1.0f);
    memcpy(W2, W, sizeof W);
    W2[5] += 0.25f;
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<a>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 3}) == SAL_OK);
    gemm(g, "fc", "x", "y", 4, 3, W, NULL, true);
    sal_model *m = t_finish(g, "y");
    SAL_ASSERT(sal_graph_create("<b>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 3}) == SAL_OK);
    gemm(g, "fc", "x", "y", 4, 3, W2, NULL, true);
    sal_model *m2 = t_finish(g, "y");
    CHECK(sal_model_hash(m) != sal_model_hash(m2), "models differing in one weight have the same hash");
    sal_tensor x = t_rand(&rng, 2, (int64_t[]){64, 3}, 1.0f);
    sal_patterns *p = NULL, *q = NULL;
    CHECK_OK(sal_patterns_estimate(m, &x, "rand", NULL, &p));
    if (!p) goto done;
    const char *f = t_tmp("a.pat");
    CHECK_OK(sal_patterns_save(p, f));
    CHECK_OK(sal_patterns_load(f, &q));
    if (q) {
        CHECK(sal_patterns_model_hash(q) == sal_model_hash(m) && sal_patterns_samples(q) == 64 &&
                  !strcmp(sal_patterns_source(q), sal_patterns_source(p)) && sal_patterns_count(q) == 1 &&
                  !strcmp(sal_patterns_node(q, 0), "fc"),
              "loaded header differs");
        for (int t = 0; t < 2; t++)
            CHECK(!memcmp(sal_patterns_tensor(p, 0, t)->data, sal_patterns_tensor(q, 0, t)->data, sizeof(float) * 12) &&
                      sal_patterns_degenerate(p, 0, t) == sal_patterns_degenerate(q, 0, t),
                  "loaded pattern %d differs", t);
    }
    sal_patterns_free(q);
    q = NULL;
    unsigned char *b = NULL;
    long n = file_bytes(f, &b);
    SAL_ASSERT(n > 100);
    const char *bad = t_tmp("bad.pat");
    b[n / 2] ^= 0x10;
    write_bytes(bad, b, n);
    CHECK_FAILS(sal_patterns_load(bad, &q), SAL_ERR_FORMAT, "checksum mismatch");
    b[n / 2] ^= 0x10;
    write_bytes(bad, b, n - 5);
    CHECK_FAILS(sal_patterns_load(bad, &q), SAL_ERR_FORMAT, "truncated patterns file");
    write_bytes(bad, b, 30);
    CHECK_FAILS(sal_patterns_load(bad, &q), SAL_ERR_FORMAT, "truncated");
    memcpy(b + n, "xx", 2);
    write_bytes(bad, b, n + 2);
    CHECK_FAILS(sal_patterns_load(bad, &q), SAL_ERR_FORMAT, "junk");
    b[8] = 2;
    write_bytes(bad, b, n);
    CHECK_FAILS(sal_patterns_load(bad, &q), SAL_ERR_UNSUPPORTED, "version 2");
    b[8] = 1;
    b[0] = 'X';
    write_bytes(bad, b, n);
    CHECK_FAILS(sal_patterns_load(bad, &q), SAL_ERR_FORMAT, "not a patterns file");
    write_bytes(bad, b, 0);
    CHECK_FAILS(sal_patterns_load(bad, &q), SAL_ERR_FORMAT, "truncated");
    CHECK_FAILS(sal_patterns_load(t_tmp("none.pat"), &q), SAL_ERR_IO, "cannot open");
    free(b);
    /* another model's patterns */
    char par[600];
    snprintf(par, sizeof par, "patterns=%s", f);
    sal_explain_opts o = {.method = "patternnet", .nparams = 1, .params = (const char *[]){par}};
    sal_explanation *e = NULL;
    CHECK_FAILS(sal_explain(m2, &x, &o, &e), SAL_ERR_ARG, "was estimated for another model");
    CHECK_OK(sal_explain(m, &x, &o, &e));
    /* patterns in memory give the map the file gives, bit for bit; they are checked by hash too */
    sal_explain_opts om = {.method = "patternnet", .patterns = p};
    sal_explanation *em = NULL;
    CHECK_OK(sal_explain(m, &x, &om, &em));
    if (e && em)
        CHECK(!memcmp(sal_explanation_map(e)->data, sal_explanation_map(em)->data, sizeof(float) * 64 * 3),
              "patterns in memory and from the file differ");
    sal_explanation_free(em);
    em = NULL;
    CHECK_FAILS(sal_explain(m2, &x, &om, &em), SAL_ERR_ARG, "the patterns in memory were estimated for another model");
    om.patterns = NULL;
    CHECK_FAILS(sal_explain(m, &x, &om, &em), SAL_ERR_ARG, "needs patterns=FILE");
    sal_explanation_free(e);
    e = NULL;
    o.params = (const char *[]){"patterns=/nonexistent/p.pat"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_IO, "/nonexistent/p.pat");
    /* a weight-first MatMul has no units to estimate for */
    SAL_ASSERT(sal_graph_create("<wx>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){3, -1}) == SAL_OK);
    t_const(g, "Wt", 2, (int64_t[]){4, 3}, W);
    t_node(g, "MatMul", "wx", 2, (const char *[]){"Wt", "x"}, "y", 0, NULL);
    sal_model *m3 = t_finish(g, "y");
    sal_tensor x3 = t_rand(&rng, 2, (int64_t[]){3, 5}, 1.0f);
    sal_patterns *p3 = NULL;
    CHECK_FAILS(sal_patterns_estimate(m3, &x3, NULL, NULL, &p3), SAL_ERR_UNSUPPORTED, "node 'wx' (MatMul): patterns need");
    sal_patterns_free(p3);
    sal_tensor_free(&x3);
    sal_model_free(m3);
    /* too few samples */
    sal_tensor x1 = x;
    x1.dim[0] = 1;
    x1.cap = 0;
    CHECK_FAILS(sal_patterns_estimate(m, &x1, "one", NULL, &p3), SAL_ERR_ARG, "at least 2 samples");
done:
    sal_patterns_free(p);
    sal_tensor_free(&x);
    sal_model_free(m);
    sal_model_free(m2);
}

/* ---- 4. BatchNormalization folded before estimation and explanation ---- */

/* Which configurations read patterns without naming a file; and estimation reports its progress. */
static void log_progress(void *user, const char *what, int64_t done, int64_t total, const char *detail) {
    int64_t *seen = user;
    int i = 0;
    while (i < 7 && seen[i] >= 0) i++;
    seen[i] = !strcmp(what, "patterns") && total == 50 && detail && !*detail ? done : -2;
    seen[i + 1] = -1;
}

static void test_needs_and_progress(void) {
    CHECK(sal_method_needs_patterns("patternnet", 0, NULL) && sal_method_needs_patterns("pattern_attribution", 0, NULL),
          "the pattern methods read patterns");
    CHECK(!sal_method_needs_patterns("patternnet", 1, (const char *[]){"patterns=a.pat"}), "a file is named");
    CHECK(!sal_method_needs_patterns("deep_taylor", 0, NULL), "deep_taylor's default root reads none");
    CHECK(sal_method_needs_patterns("deep_taylor", 2, (const char *[]){"root=zero", "root=pattern"}),
          "deep_taylor root=pattern (the last value given wins)");
    CHECK(!sal_method_needs_patterns("gradient", 0, NULL) && !sal_method_needs_patterns("no_such", 0, NULL) &&
              !sal_method_needs_patterns(NULL, 0, NULL),
          "other and unknown methods read none");
    sal_rng rng;
    sal_rng_seed(&rng, 7);
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<p>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, 3}) == SAL_OK);
    float W[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1};
    gemm(g, "fc", "x", "y", 4, 3, W, NULL, true);
    sal_model *m = t_finish(g, "y");
    sal_tensor x = t_rand(&rng, 2, (int64_t[]){50, 3}, 1.0f);
    int64_t seen[8] = {-1}, n = 0;
    sal_patterns *p = NULL;
    CHECK_OK(sal_patterns_estimate(m, &x, NULL, &(sal_patterns_opts){.batch = 16, .progress = log_progress, .progress_user = seen}, &p));
    for (int i = 0; i < 8 && seen[i] >= 0; i++) n++;
    CHECK(n == 4 && seen[0] == 16 && seen[1] == 32 && seen[2] == 48 && seen[3] == 50, "progress: %lld calls, last %lld",
          (long long)n, n ? (long long)seen[n - 1] : -1LL);
    sal_patterns_free(p);
    sal_tensor_free(&x);
    sal_model_free(m);
}

static void test_batchnorm(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 99);
    float k[3 * 9], fw[2 * 48];
    t_randv(&rng, k, 27, 0.5f);
    t_randv(&rng, fw, 96, 0.3f);
    float sc[3] = {1.5f, 0.7f, 1.1f}, sh[3] = {0.1f, -0.2f, 0.3f}, mu[3] = {0.2f, 0.1f, -0.1f}, var[3] = {0.5f, 1.2f, 0.9f};
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<bn>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 4, 4}) == SAL_OK);
    t_const(g, "k", 4, (int64_t[]){3, 1, 3, 3}, k);
    sal_attr pa[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    t_node(g, "Conv", "conv", 2, (const char *[]){"x", "k"}, "c", 1, pa);
    t_const(g, "sc", 1, (int64_t[]){3}, sc);
    t_const(g, "sh", 1, (int64_t[]){3}, sh);
    t_const(g, "mu", 1, (int64_t[]){3}, mu);
    t_const(g, "var", 1, (int64_t[]){3}, var);
    t_node(g, "BatchNormalization", "bn", 5, (const char *[]){"c", "sc", "sh", "mu", "var"}, "n", 0, NULL);
    t_node(g, "Relu", "r", 1, (const char *[]){"n"}, "a", 0, NULL);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"a"}, "f", 0, NULL);
    gemm(g, "fc", "f", "y", 2, 48, fw, NULL, true);
    sal_model *m = t_finish(g, "y");
    sal_tensor x = t_rand(&rng, 4, (int64_t[]){50, 1, 4, 4}, 1.0f);
    sal_patterns *p = NULL;
    CHECK_OK(sal_patterns_estimate(m, &x, "bn data", NULL, &p));
    if (p) {
        CHECK(sal_patterns_count(p) == 2 && pattern_index(p, "conv") >= 0, "patterns for the folded conv and fc");
        CHECK_OK(sal_patterns_save(p, t_tmp("bn.pat")));
        char par[600];
        snprintf(par, sizeof par, "patterns=%s", t_tmp("bn.pat"));
        sal_explanation *e = explain(m, &x, "pattern_attribution", 1, (const char *[]){par}, 0);
        CHECK(e && sal_explanation_metric(e, "batchnorm_folded") == 1, "pattern_attribution on a BatchNorm net");
        sal_explanation_free(e);
    }
    sal_patterns_free(p);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- 6. input invariance (Kindermans et al. 2019, section 3.3.2) ----
 * Network 2 sees x - 1 and its first bias compensates, so both compute the same function. The
 * PatternAttribution root point follows the data's covariance, so its maps agree; the zero root
 * point (LRP-0) does not. */
static void test_input_invariance(void) {
    enum { D = 10, H = 8, K = 3, N = 600 };
    sal_rng rng;
    sal_rng_seed(&rng, 2019);
    float W1[H * D], b1[H], b1s[H], W2[K * H], b2[K];
    t_randv(&rng, W1, H * D, 0.5f);
    t_randv(&rng, b1, H, 0.2f);
    t_randv(&rng, W2, K * H, 0.5f);
    t_randv(&rng, b2, K, 0.1f);
    for (int k = 0; k < H; k++) {
        double s = b1[k];
        for (int j = 0; j < D; j++) s += W1[k * D + j]; /* W1 (x - 1) + b1 + W1 1 = W1 x + b1 */
        b1s[k] = (float)s;
    }
    sal_model *net[2];
    for (int v = 0; v < 2; v++) {
        sal_model *g;
        SAL_ASSERT(sal_graph_create(v ? "<net2>" : "<net1>", &g) == SAL_OK);
        SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, D}) == SAL_OK);
        gemm(g, "fc1", "x", "z1", H, D, W1, v ? b1s : b1, true);
        t_node(g, "Relu", "r1", 1, (const char *[]){"z1"}, "a1", 0, NULL);
        gemm(g, "fc2", "a1", "y", K, H, W2, b2, true);
        net[v] = t_finish(g, "y");
    }
    sal_tensor x[2] = {{0}};
    for (int v = 0; v < 2; v++) SAL_ASSERT(sal_tensor_alloc(&x[v], SAL_F32, 2, (int64_t[]){N, D}) == SAL_OK);
    for (int i = 0; i < N * D; i++) {
        float u = (float)sal_rng_uniform(&rng);
        sal_f32(&x[0])[i] = u;
        sal_f32(&x[1])[i] = u - 1.0f;
    }
    char par[2][600];
    for (int v = 0; v < 2; v++) {
        sal_patterns *p = NULL;
        CHECK_OK(sal_patterns_estimate(net[v], &x[v], NULL, NULL, &p));
        const char *f = t_tmp(v ? "inv2.pat" : "inv1.pat");
        if (p) CHECK_OK(sal_patterns_save(p, f));
        sal_patterns_free(p);
        snprintf(par[v], sizeof par[v], "patterns=%s", f);
    }
    const char *methods[] = {"pattern_attribution", "patternnet", "deep_taylor", "lrp_0"};
    for (int k = 0; k < 4; k++) {
        sal_explanation *e[2];
        for (int v = 0; v < 2; v++) {
            sal_tensor xs = x[v];
            xs.dim[0] = 16;
            xs.cap = 0;
            const char *pp[] = {par[v], "root=zero"};
            e[v] = explain(net[v], &xs, methods[k], k < 2 ? 1 : k == 2 ? 1 : 0, k < 2 ? pp : pp + 1, 0);
        }
        if (e[0] && e[1]) {
            double want[16 * D], mx = 0;
            for (int i = 0; i < 16 * D; i++) want[i] = sal_f32(sal_explanation_map(e[0]))[i], mx = fmax(mx, fabs(want[i]));
            CHECK(mx > 1e-3, "%s: the maps are (nearly) zero (%.3g), which would agree trivially", methods[k], mx);
            double d = rel_err(sal_f32(sal_explanation_map(e[1])), want, 16 * D);
            if (k < 2) CHECK(d < 1e-3, "%s is input invariant: the shifted twin's maps differ by %.3g", methods[k], d);
            else CHECK(d > 0.1, "%s (zero root point) should change with the shift, differs by %.3g only", methods[k], d);
            printf("  input invariance: %-22s maps of the shifted twin differ by %.3g (relative)\n",
                   k == 2 ? "deep_taylor root=zero" : methods[k], d);
        } else {
            CHECK(0, "%s failed on the twins", methods[k]);
        }
        sal_explanation_free(e[0]);
        sal_explanation_free(e[1]);
    }
    unlink(t_tmp("inv1.pat"));
    unlink(t_tmp("inv2.pat"));
    for (int v = 0; v < 2; v++) {
        sal_tensor_free(&x[v]);
        sal_model_free(net[v]);
    }
}

/* ---- 5. every allocation failing in turn: an error with a message, nothing leaked ---- */

static sal_status pattern_pipeline(const sal_model *m, const sal_tensor *x, const char *path, const char *par) {
    sal_patterns *p = NULL, *q = NULL;
    sal_explanation *e = NULL;
    sal_status st = sal_patterns_estimate(m, x, "sweep", &(sal_patterns_opts){.batch = 5}, &p);
    if (st == SAL_OK) st = sal_patterns_save(p, path);
    if (st == SAL_OK) st = sal_patterns_load(path, &q);
    sal_explain_opts o = {.method = "pattern_attribution", .nparams = 1, .params = &par};
    if (st == SAL_OK) st = sal_explain(m, x, &o, &e);
    sal_explanation_free(e);
    sal_patterns_free(p);
    sal_patterns_free(q);
    return st;
}

static void test_alloc_failures(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 5);
    float k[2 * 9], fw[3 * 32], b[3];
    t_randv(&rng, k, 18, 0.5f);
    t_randv(&rng, fw, 96, 0.3f);
    t_randv(&rng, b, 3, 0.1f);
    float sc[2] = {1.2f, 0.8f}, sh[2] = {0.1f, -0.1f}, mu[2] = {0.1f, 0.0f}, var[2] = {1.0f, 0.5f};
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<sweep>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 4, 4}) == SAL_OK);
    t_const(g, "k", 4, (int64_t[]){2, 1, 3, 3}, k);
    sal_attr pa[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    t_node(g, "Conv", "conv", 2, (const char *[]){"x", "k"}, "c", 1, pa);
    t_const(g, "sc", 1, (int64_t[]){2}, sc);
    t_const(g, "sh", 1, (int64_t[]){2}, sh);
    t_const(g, "mu", 1, (int64_t[]){2}, mu);
    t_const(g, "var", 1, (int64_t[]){2}, var);
    t_node(g, "BatchNormalization", "bn", 5, (const char *[]){"c", "sc", "sh", "mu", "var"}, "n", 0, NULL);
    t_node(g, "Relu", "r", 1, (const char *[]){"n"}, "a", 0, NULL);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"a"}, "f", 0, NULL);
    gemm(g, "fc", "f", "y", 3, 32, fw, b, true);
    sal_model *m = t_finish(g, "y");
    sal_tensor x = t_rand(&rng, 4, (int64_t[]){12, 1, 4, 4}, 1.0f);
    const char *path = t_tmp("sweep.pat");
    char par[600];
    snprintf(par, sizeof par, "patterns=%s", path);
    CHECK_OK(pattern_pipeline(m, &x, path, par)); /* a clean run: lazily made state is not a leak */
    size_t base = sal_memory_in_use();
    long n, leaks = 0, silent = 0, other = 0;
    sal_status st = SAL_ERR_NOMEM;
    for (n = 1; n < 100000 && st != SAL_OK; n++) {
        sal_alloc_fail_after(n);
        st = pattern_pipeline(m, &x, path, par);
        sal_alloc_fail_after(0);
        if (st != SAL_OK && !*sal_last_error()) silent++;
        if (st != SAL_OK && st != SAL_ERR_NOMEM && other++ < 3)
            fprintf(stderr, "allocation %ld failing gives %s: %s\n", n, sal_status_string(st), sal_last_error());
        if (sal_memory_in_use() != base && leaks++ < 3)
            fprintf(stderr, "allocation %ld failing leaks %zu bytes\n", n, sal_memory_in_use() - base);
        base = sal_memory_in_use();
    }
    printf("  alloc sweep: patterns estimate, save, load, pattern_attribution: %ld allocations\n", n - 1);
    CHECK(st == SAL_OK && n > 20, "the sweep reached a full run (%ld allocations)", n - 1);
    CHECK(leaks == 0 && silent == 0 && other == 0, "%ld leaks, %ld failures without a message, %ld misreported", leaks,
          silent, other);
    unlink(path);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* A convolution whose output reaches its ReLU through an Add of a constant (the invariance audit's
 * shifted model after a padded first convolution adds its shift that way) has the units of that
 * Add's output: a per-channel constant c there is the bias b + c of the same convolution, so
 * both models must get the same patterns of both kinds, the two-component one in auto mode, and
 * the same PatternNet map. */
static void test_shift_add(void) {
    sal_rng r;
    sal_rng_seed(&r, 31);
    sal_tensor w = t_rand(&r, 4, (int64_t[]){3, 1, 3, 3}, 0.5f), w2 = t_rand(&r, 2, (int64_t[]){2, 3 * 36}, 0.3f);
    float b[3] = {0.1f, -0.2f, 0.05f}, c[3] = {0.3f, -0.1f, -0.25f}, bc[3];
    for (int k = 0; k < 3; k++) bc[k] = b[k] + c[k];
    sal_model *ms[2];
    for (int v = 0; v < 2; v++) {
        SAL_ASSERT(sal_graph_create(v ? "conv+add" : "conv", &ms[v]) == SAL_OK);
        sal_model *g = ms[v];
        CHECK_OK(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, 6, 6}));
        t_const(g, "w", 4, w.dim, sal_f32(&w));
        t_const(g, "b", 1, (int64_t[]){3}, v ? b : bc);
        t_const(g, "w2", 2, w2.dim, sal_f32(&w2));
        sal_attr at[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){3, 3}),
                          sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
        t_node(g, "Conv", "conv", 3, (const char *[]){"x", "w", "b"}, v ? "z0" : "z", 2, at);
        if (v) {
            t_const(g, "c", 4, (int64_t[]){1, 3, 1, 1}, c);
            t_node(g, "Add", "shift", 2, (const char *[]){"z0", "c"}, "z", 0, NULL);
        }
        t_node(g, "Relu", "relu", 1, (const char *[]){"z"}, "a", 0, NULL);
        t_node(g, "Flatten", "flat", 1, (const char *[]){"a"}, "f", 0, NULL);
        sal_attr at2[1] = {sal_attr_make_int("transB", 1)};
        t_node(g, "Gemm", "fc", 2, (const char *[]){"f", "w2"}, "y", 1, at2);
        ms[v] = t_finish(g, "y");
    }
    sal_tensor x = t_rand(&r, 4, (int64_t[]){40, 1, 6, 6}, 1.0f);
    sal_patterns *p[2] = {NULL, NULL};
    for (int v = 0; v < 2; v++) CHECK_OK(sal_patterns_estimate(ms[v], &x, "x", NULL, &p[v]));
    if (p[0] && p[1]) {
        int i0 = pattern_index(p[0], "conv"), i1 = pattern_index(p[1], "conv");
        for (int k = 0; k < 2 && i0 >= 0 && i1 >= 0; k++) {
            const sal_tensor *a = sal_patterns_tensor(p[0], i0, k), *a1 = sal_patterns_tensor(p[1], i1, k);
            double d = 0, big = 0;
            for (int64_t e = 0; e < sal_tensor_numel(a); e++)
                d = fmax(d, fabs(sal_f32(a)[e] - sal_f32(a1)[e])), big = fmax(big, fabs(sal_f32(a)[e]));
            CHECK(d <= 1e-5 * big, "%s pattern of a conv before an Add of a constant: off by %g of %g",
                  k ? "two-component" : "linear", d, big);
        }
        sal_explain_opts o = {.method = "patternnet", .target = SAL_TARGET_MAX};
        sal_explanation *e[2] = {NULL, NULL};
        for (int v = 0; v < 2; v++) {
            o.patterns = p[v];
            CHECK_OK(sal_explain(ms[v], &x, &o, &e[v]));
        }
        if (e[0] && e[1]) {
            const sal_tensor *m0 = sal_explanation_map(e[0]), *m1 = sal_explanation_map(e[1]);
            double d = 0, big = 0;
            for (int64_t k = 0; k < sal_tensor_numel(m0); k++)
                d = fmax(d, fabs(sal_f32(m0)[k] - sal_f32(m1)[k])), big = fmax(big, fabs(sal_f32(m0)[k]));
            CHECK(d <= 1e-5 * big, "PatternNet through an Add of a constant: off by %g of %g", d, big);
        }
        for (int v = 0; v < 2; v++) sal_explanation_free(e[v]);
    }
    for (int v = 0; v < 2; v++) {
        sal_patterns_free(p[v]);
        sal_model_free(ms[v]);
    }
    sal_tensor *t[] = {&w, &w2, &x};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) sal_tensor_free(t[i]);
}

int main(void) {
    t_scratch_make("sal_test_patterns");
    test_shift_add();
    test_signal_distractor();
    test_closed_forms();
    test_conv_closed_form();
    test_file();
    test_needs_and_progress();
    test_batchnorm();
    test_input_invariance();
    test_alloc_failures();
    t_scratch_remove();
    return t_done("test_patterns");
}
