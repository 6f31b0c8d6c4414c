/* The batch driver (sal_run_batched, methods/common.c) and the methods that run through it:
 *   - the driver itself on a linear model, against closed forms: every (sample, variant) row once,
 *     in order, with its input, its target's gradient (the weight row) and its output value;
 *     seeded streams that make and take see alike and that do not depend on the chunk; the
 *     hooks in order; a failing hook stops the run;
 *   - LRP, Deep Taylor, DeepLIFT, SmoothGrad (around plain, relevance, DeepLIFT, random and nested
 *     inner methods), PatternNet, PatternAttribution and pattern estimation at chunk 1, 3 and the
 *     default agree to float rounding on a CNN with BatchNormalization and max pooling;
 *   - memory stays bounded by the chunk: four times the samples add only per-sample buffers. */
#include "testutil.h"
#include "methods/method.h"
#include "methods/sampling.h"
#include "saliency.h"

/* ---- the driver on y = W x (K outputs, D inputs, no bias) ---- */

enum { D = 5, K = 3, NS = 4, PER = 3 };

typedef struct {
    const float *x, *W; /* (NS, D), (K, D) */
    const int64_t *target;
    int per;
    int seen[NS][PER]; /* times each row was taken */
    int64_t order;     /* rows taken so far */
    bool in_order, grad;
    double worst_row, worst_grad, worst_val, worst_draw;
    uint64_t ids[NS][PER]; /* the stream ids the chunks hand on */
    int before, after;
    int64_t fail_at; /* before() fails on the chunk starting at this row; -1: never */
} drv;

/* Row (i, k) = x_i + k, plus a uniform draw from the pair's stream when seeded. */
static sal_status drv_make(void *u, int64_t i, int64_t k, float *row, sal_rng *r) {
    const drv *d = u;
    float e = r ? (float)sal_rng_uniform(r) : 0.0f;
    for (int j = 0; j < D; j++) row[j] = d->x[i * D + j] + (float)k + e;
    return SAL_OK;
}

/* Against closed forms: the row as made, d y_t / d x = W_t, y_t = W_t . row; the stream take gets
 * is the pair's own (sal_rng_stream of the sample's index), whatever the chunk. */
static void drv_take(void *u, int64_t i, int64_t k, const float *row, const float *g, float value, sal_rng *r) {
    drv *d = u;
    d->seen[i][k]++;
    d->in_order &= d->order == i * d->per + k;
    d->order++;
    float e = 0;
    if (r) {
        sal_rng want;
        sal_rng_stream(&want, 77, (uint64_t)i, k, d->per);
        e = (float)sal_rng_uniform(r);
        d->worst_draw = fmax(d->worst_draw, fabs(e - (float)sal_rng_uniform(&want)));
    }
    const float *w = d->W + d->target[i] * D;
    double y = 0;
    d->grad |= g != NULL;
    for (int j = 0; j < D; j++) {
        d->worst_row = fmax(d->worst_row, fabs(row[j] - (d->x[i * D + j] + (double)k + e)));
        if (g) d->worst_grad = fmax(d->worst_grad, fabs(g[j] - w[j]));
        y += (double)w[j] * row[j];
    }
    d->worst_val = fmax(d->worst_val, fabs(value - y));
}

static sal_status drv_before(void *u, const sal_chunk *ch) {
    drv *d = u;
    d->before++;
    if (ch->r0 == d->fail_at) return sal_fail(SAL_ERR_ARG, "before() refuses the chunk at row %lld", (long long)ch->r0);
    return SAL_OK;
}

static sal_status drv_after(void *u, const sal_chunk *ch) {
    drv *d = u;
    d->after++;
    d->in_order &= d->order == ch->r0 + ch->n; /* take() saw the chunk's rows first */
    for (int64_t r = 0; r < ch->n; r++) {
        int64_t i = (ch->r0 + r) / d->per, k = (ch->r0 + r) % d->per;
        d->ids[i][k] = ch->stream[r];
    }
    return SAL_OK;
}

static sal_model *linear_model(const float *W) {
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<linear>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 2, (int64_t[]){-1, D}) == SAL_OK);
    t_const(g, "W", 2, (int64_t[]){K, D}, W);
    sal_attr at[1] = {sal_attr_make_int("transB", 1)};
    t_node(g, "Gemm", "fc", 2, (const char *[]){"x", "W"}, "y", 1, at);
    return t_finish(g, "y");
}

static void test_driver(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 4);
    float W[K * D], xv[NS * D];
    t_randv(&rng, W, K * D, 1.0f);
    t_randv(&rng, xv, NS * D, 1.0f);
    sal_model *m = linear_model(W);
    sal_session *s;
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    sal_tensor x = t_tensor_of(2, (int64_t[]){NS, D}, xv);
    int64_t target[NS] = {0, 2, 1, 2};
    uint64_t ids1[NS][PER];
    const int64_t chunks[] = {1, 2, 5, 12, 64};
    for (int seeded = 0; seeded < 2; seeded++)
        for (int fo = 0; fo < 2; fo++)
            for (size_t ci = 0; ci < sizeof chunks / sizeof *chunks; ci++) {
                int64_t ch = chunks[ci], nch = (NS * PER + ch - 1) / ch;
                drv d = {.x = xv, .W = W, .target = target, .per = PER, .in_order = true, .fail_at = -1};
                sal_xctx c = {.m = m, .s = s, .x = &x, .target = target, .chunk = ch};
                sal_batched b = {.per_sample = PER, .make = drv_make, .take = drv_take, .before = drv_before,
                                 .after = drv_after, .u = &d, .forward_only = fo, .seeded = seeded, .seed = 77};
                CHECK_OK(sal_run_batched(&c, &b));
                bool once = true;
                for (int i = 0; i < NS; i++)
                    for (int k = 0; k < PER; k++) once &= d.seen[i][k] == 1;
                CHECK(once && d.in_order, "chunk %lld: every row once and in order", (long long)ch);
                CHECK(d.before == nch && d.after == nch, "chunk %lld: %d and %d hook calls, want %lld", (long long)ch,
                      d.before, d.after, (long long)nch);
                CHECK(d.worst_row < 1e-6 && d.worst_draw == 0, "chunk %lld seeded %d: rows off by %g, draws by %g",
                      (long long)ch, seeded, d.worst_row, d.worst_draw);
                CHECK(d.worst_val < 1e-5, "chunk %lld: output values off by %g", (long long)ch, d.worst_val);
                CHECK(fo ? !d.grad : d.grad && d.worst_grad < 1e-6, "chunk %lld forward_only %d: gradient off by %g",
                      (long long)ch, fo, d.worst_grad);
                if (ci == 0) memcpy(ids1, d.ids, sizeof ids1);
                CHECK(!memcmp(ids1, d.ids, sizeof ids1), "chunk %lld: the stream ids handed on depend on the chunk",
                      (long long)ch);
            }
    bool distinct = true;
    for (int a = 0; a < NS * PER; a++)
        for (int b = 0; b < a; b++) distinct &= ids1[a / PER][a % PER] != ids1[b / PER][b % PER];
    CHECK(distinct, "rows share a stream id");

    /* no make: the rows of x themselves, one per sample */
    for (int64_t ch = 1; ch <= 5; ch += 2) {
        drv d = {.x = xv, .W = W, .target = target, .per = 1, .in_order = true, .fail_at = -1};
        sal_xctx c = {.m = m, .s = s, .x = &x, .target = target, .chunk = ch};
        sal_batched b = {.take = drv_take, .u = &d};
        CHECK_OK(sal_run_batched(&c, &b));
        CHECK(d.order == NS && d.in_order && d.worst_row == 0 && d.worst_grad < 1e-6 && d.worst_val < 1e-5,
              "rows of x in chunks of %lld: %lld rows, off by %g, %g, %g", (long long)ch, (long long)d.order,
              d.worst_row, d.worst_grad, d.worst_val);
    }

    /* a failing hook ends the run with its message: rows after it are never taken */
    drv d = {.x = xv, .W = W, .target = target, .per = PER, .in_order = true, .fail_at = 6};
    sal_xctx c = {.m = m, .s = s, .x = &x, .target = target, .chunk = 3};
    sal_batched b = {.per_sample = PER, .make = drv_make, .take = drv_take, .before = drv_before, .after = drv_after,
                     .u = &d};
    CHECK_FAILS(sal_run_batched(&c, &b), SAL_ERR_ARG, "refuses the chunk at row 6");
    CHECK(d.order == 6 && d.after == 2, "after a failed chunk: %lld rows taken, %d chunks done", (long long)d.order,
          d.after);
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(m);
}

/* ---- the methods at chunk 1, 3 and the default ---- */

/* x (N,1,H,H) -> Conv 3x3 (C channels, pads 1) -> BatchNormalization -> Relu -> MaxPool 2x2 ->
 * Flatten -> Gemm (4) -> Relu -> Gemm (5). BatchNormalization makes LRP and the patterns canonize. */
static sal_model *cnn(sal_rng *r, int C, int H) {
    int F = C * (H / 2) * (H / 2);
    float *k = sal_malloc(sizeof(float) * (size_t)(C * 9)), *fw = sal_malloc(sizeof(float) * (size_t)(4 * F));
    float kb[64], bn[4][64], fb[4], hw[20], hb[5];
    SAL_ASSERT(k && fw && C <= 64);
    t_randv(r, k, C * 9, 0.5f);
    t_randv(r, kb, C, 0.1f);
    t_randv(r, fw, 4 * F, 0.3f);
    t_randv(r, fb, 4, 0.1f);
    t_randv(r, hw, 20, 0.5f);
    t_randv(r, hb, 5, 0.1f);
    for (int c = 0; c < C; c++) {
        bn[0][c] = (float)(0.5 + sal_rng_uniform(r));
        bn[1][c] = (float)(0.2 * sal_rng_normal(r));
        bn[2][c] = (float)(0.1 * sal_rng_normal(r));
        bn[3][c] = (float)(0.5 + sal_rng_uniform(r));
    }
    sal_model *g;
    SAL_ASSERT(sal_graph_create("<bn-cnn>", &g) == SAL_OK);
    SAL_ASSERT(sal_graph_add_input(g, "x", SAL_F32, 4, (int64_t[]){-1, 1, H, H}) == SAL_OK);
    t_const(g, "k", 4, (int64_t[]){C, 1, 3, 3}, k);
    t_const(g, "kb", 1, (int64_t[]){C}, kb);
    sal_attr pads[1] = {sal_attr_make_ints("pads", 4, (int64_t[]){1, 1, 1, 1})};
    t_node(g, "Conv", "conv", 3, (const char *[]){"x", "k", "kb"}, "c", 1, pads);
    const char *bnn[4] = {"bn.scale", "bn.B", "bn.mean", "bn.var"};
    for (int q = 0; q < 4; q++) t_const(g, bnn[q], 1, (int64_t[]){C}, bn[q]);
    sal_attr eps[1] = {sal_attr_make_float("epsilon", 1e-3f)};
    t_node(g, "BatchNormalization", "bn", 5, (const char *[]){"c", bnn[0], bnn[1], bnn[2], bnn[3]}, "n", 1, eps);
    t_node(g, "Relu", "r1", 1, (const char *[]){"n"}, "a", 0, NULL);
    sal_attr mp[2] = {sal_attr_make_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                      sal_attr_make_ints("strides", 2, (int64_t[]){2, 2})};
    t_node(g, "MaxPool", "pool", 1, (const char *[]){"a"}, "p", 2, mp);
    t_node(g, "Flatten", "flat", 1, (const char *[]){"p"}, "f", 0, NULL);
    sal_attr tb[1] = {sal_attr_make_int("transB", 1)};
    t_const(g, "fw", 2, (int64_t[]){4, F}, fw);
    t_const(g, "fb", 1, (int64_t[]){4}, fb);
    t_node(g, "Gemm", "fc1", 3, (const char *[]){"f", "fw", "fb"}, "z", 1, tb);
    t_node(g, "Relu", "r2", 1, (const char *[]){"z"}, "h", 0, NULL);
    t_const(g, "hw", 2, (int64_t[]){5, 4}, hw);
    t_const(g, "hb", 1, (int64_t[]){5}, hb);
    sal_attr tb2[1] = {sal_attr_make_int("transB", 1)}; /* add_node takes the attributes */
    t_node(g, "Gemm", "fc2", 3, (const char *[]){"h", "hw", "hb"}, "y", 1, tb2);
    sal_free(k);
    sal_free(fw);
    return t_finish(g, "y");
}

static sal_explanation *run(const sal_model *m, const sal_tensor *x, const sal_tensor *data, const char *method,
                            const char *const *params, int64_t chunk, bool prob) {
    int np = 0;
    while (params[np]) np++;
    int64_t cls[64];
    for (int i = 0; i < x->dim[0] && i < 64; i++) cls[i] = (i * 3 + 1) % 5;
    sal_explain_opts o = {.method = method, .nparams = np, .params = params, .target = SAL_TARGET_INDEX,
                          .classes = cls, .nclasses = x->dim[0], .chunk = chunk, .data = data, .prob = prob};
    sal_explanation *e = NULL;
    if (sal_explain(m, x, &o, &e) != SAL_OK) fprintf(stderr, "  (%s: %s)\n", method, sal_last_error());
    return e;
}

/* max |a - b| / max |b| */
static double rel_diff(const sal_tensor *a, const sal_tensor *b) {
    double d = 0, mx = 1e-30;
    for (int64_t i = 0, n = sal_tensor_numel(b); i < n; i++) {
        d = fmax(d, fabs((double)sal_f32(a)[i] - sal_f32(b)[i]));
        mx = fmax(mx, fabs(sal_f32(b)[i]));
    }
    return d / mx;
}

static void test_methods(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 21);
    sal_model *m = cnn(&rng, 3, 6);
    sal_tensor x = t_rand(&rng, 4, (int64_t[]){7, 1, 6, 6}, 1.0f), data = t_rand(&rng, 4, (int64_t[]){40, 1, 6, 6}, 1.0f);
    /* patterns at batch 1, 3 and the default agree; the default's file serves the pattern methods */
    sal_patterns *pat[3] = {NULL, NULL, NULL};
    const int64_t batches[3] = {1, 3, 0};
    for (int q = 0; q < 3; q++) {
        sal_patterns_opts po = {.batch = batches[q]};
        CHECK_OK(sal_patterns_estimate(m, &data, "data", &po, &pat[q]));
    }
    if (pat[0] && pat[1] && pat[2]) {
        double worst = 0;
        for (int i = 0; i < sal_patterns_count(pat[2]); i++)
            for (int relu = 0; relu < 2; relu++)
                for (int q = 0; q < 2; q++)
                    worst = fmax(worst, rel_diff(sal_patterns_tensor(pat[q], i, relu), sal_patterns_tensor(pat[2], i, relu)));
        CHECK(sal_patterns_count(pat[2]) == 3 && worst < 1e-4,
              "patterns at batch 1, 3 and 64: %d nodes, differ by %.3g (relative)", sal_patterns_count(pat[2]), worst);
    }
    t_scratch_make("sal_chunks");
    char ppath[600], pparam[620], dtparam[620];
    snprintf(ppath, sizeof ppath, "%s", t_tmp("p.pat"));
    if (pat[2]) CHECK_OK(sal_patterns_save(pat[2], ppath));
    snprintf(pparam, sizeof pparam, "patterns=%s", ppath);
    snprintf(dtparam, sizeof dtparam, "patterns=%s", ppath);
    for (int q = 0; q < 3; q++) sal_patterns_free(pat[q]);

    const struct {
        const char *method, *params[6];
        bool prob;
    } cases[] = {
        {"lrp_epsilon", {NULL}, false},
        {"lrp_epsilon", {NULL}, true},
        {"lrp_alpha_beta", {NULL}, false},
        {"lrp_epsilon_gamma_box", {"low=-3", "high=3", NULL}, false},
        {"deep_taylor", {NULL}, false},
        {"deep_taylor", {"root=pattern", dtparam, NULL}, false},
        {"patternnet", {pparam, NULL}, false},
        {"pattern_attribution", {pparam, NULL}, false},
        {"deeplift", {NULL}, false},
        {"deeplift", {"variant=revealcancel", NULL}, false},
        {"deeplift", {"baseline=black", NULL}, false},
        {"smoothgrad", {"samples=4", NULL}, false},
        {"smoothgrad", {"samples=3", "inner=lrp_epsilon", "variant=vargrad", NULL}, false},
        {"smoothgrad", {"samples=3", "inner=deeplift", "variant=squared", NULL}, false},
        {"smoothgrad", {"samples=3", "inner=gradient_shap", "inner.samples=4", NULL}, false},
        {"smoothgrad", {"samples=2", "inner=integrated_gradients", "inner.baseline=uniform", "inner.steps=3", NULL}, false},
        {"smoothgrad", {"samples=3", "inner=smoothgrad", "inner.samples=2", NULL}, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sal_explanation *e[3];
        const int64_t chunks[3] = {1, 3, 0};
        for (int q = 0; q < 3; q++) e[q] = run(m, &x, &data, cases[i].method, cases[i].params, chunks[q], cases[i].prob);
        if (e[0] && e[1] && e[2]) {
            const sal_tensor *ref = sal_explanation_map(e[2]);
            double d1 = rel_diff(sal_explanation_map(e[0]), ref), d3 = rel_diff(sal_explanation_map(e[1]), ref);
            double mx = 0;
            for (int64_t k = 0; k < sal_tensor_numel(ref); k++) mx = fmax(mx, fabs(sal_f32(ref)[k]));
            CHECK(d1 < 1e-5 && d3 < 1e-5 && mx > 0, "case %zu, %s%s: chunks 1 and 3 differ from the default by %.3g, "
                  "%.3g (relative; max |map| %g)", i, cases[i].method, cases[i].prob ? " prob" : "", d1, d3, mx);
            const char *metrics[] = {"relevance_conservation", "completeness_delta", "inner.completeness_delta"};
            for (int k = 0; k < 3; k++) {
                double v2 = sal_explanation_metric(e[2], metrics[k]);
                if (isnan(v2)) continue;
                double v1 = sal_explanation_metric(e[0], metrics[k]), v3 = sal_explanation_metric(e[1], metrics[k]);
                CHECK(fabs(v1 - v2) < 1e-4 && fabs(v3 - v2) < 1e-4, "case %zu, %s: %s %g, %g, %g at chunks 1, 3, "
                      "default", i, cases[i].method, metrics[k], v1, v3, v2);
            }
        } else {
            CHECK(false, "%s did not run at every chunk", cases[i].method);
        }
        for (int q = 0; q < 3; q++) sal_explanation_free(e[q]);
    }
    t_scratch_remove();
    sal_tensor_free(&x);
    sal_tensor_free(&data);
    sal_model_free(m);
}

/* ---- memory: bounded by the chunk ---- */

/* Peak bytes of a method run on x's first n samples at chunk 2, on a fresh session (sal_explain's
 * own forward pass over the whole batch, to pick targets, is not the method's). */
static size_t peak(const sal_model *m, const sal_tensor *x, int64_t n, const char *method, int np,
                   const char *const *key, const char *const *val) {
    sal_tensor v = sal_tensor_view(x);
    v.dim[0] = n;
    int64_t target[64];
    for (int i = 0; i < n; i++) target[i] = i % 5;
    sal_xctx c = {.m = m, .meth = sal_method_lookup(method), .x = &v, .target = target, .lo = -3, .hi = 3,
                  .chunk = 2, .nkv = np, .key = key, .val = val};
    SAL_ASSERT(c.meth && n <= 64 && sal_session_new(m, &c.s) == SAL_OK);
    size_t base = sal_memory_in_use();
    sal_memory_reset_peak();
    CHECK_OK(c.meth->run(&c));
    size_t p = sal_memory_peak() - base;
    sal_tensor_free(&c.out);
    sal_tensor_free(&c.layer_out);
    sal_session_free(c.s);
    return p;
}

/* Four times the samples add per-sample buffers (the map, the reference, SmoothGrad's moments: a
 * few floats per input element), not activations: a row's activations and gradients here are
 * over 100 floats per input element (16 channels, four tensors each, twice). */
static void test_memory(void) {
    sal_rng rng;
    sal_rng_seed(&rng, 8);
    sal_model *m = cnn(&rng, 16, 12);
    sal_tensor x = t_rand(&rng, 4, (int64_t[]){32, 1, 12, 12}, 1.0f);
    int64_t row = sal_row_size(&x);
    const struct {
        const char *method, *key[2], *val[2];
        int np;
    } cases[] = {
        {"lrp_epsilon", {NULL}, {NULL}, 0},
        {"deeplift", {NULL}, {NULL}, 0},
        {"smoothgrad", {"samples"}, {"3"}, 1},
        {"smoothgrad", {"samples", "inner"}, {"2", "lrp_epsilon"}, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t p8 = peak(m, &x, 8, cases[i].method, cases[i].np, cases[i].key, cases[i].val);
        size_t p32 = peak(m, &x, 32, cases[i].method, cases[i].np, cases[i].key, cases[i].val);
        size_t bound = (size_t)(24 * row) * 12 * sizeof(float);
        CHECK(p32 < p8 + bound, "%s %s: peak %zu bytes for 32 samples, %zu for 8: grows by more than 12 floats per "
              "input element (%zu)", cases[i].method, cases[i].np > 1 ? cases[i].val[1] : "", p32, p8, bound);
        if (getenv("SAL_VERBOSE")) printf("  %s: %zu -> %zu bytes (bound +%zu)\n", cases[i].method, p8, p32, bound);
    }
    sal_tensor_free(&x);
    sal_model_free(m);
}

int main(void) {
    test_driver();
    test_methods();
    test_memory();
    return t_done("test_methods_chunks");
}
