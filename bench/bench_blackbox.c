/* Benchmark of the black-box methods (issue 18): time per image beside the time of the forward
 * passes they make, on the ONNX models written by bench/models.py:
 *   - KernelSHAP, 2000 coalitions over 50 SLIC superpixels, on the small CNN (28 x 28);
 *   - LIME (1000 masks) and Sobol (32 designs over an 8 x 8 grid) on the small CNN, for reference;
 *   - RISE, 1000 masks, on the VGG16-shaped network at 224 x 224.
 * For each: the median wall time of sal_explain per image (a reused session, after one untimed run),
 * the forward passes it makes (rows), the median time of one forward pass of a chunk of rows divided
 * by the chunk (ms per row), and the overhead: the share of the method's time not spent in those
 * forward passes (the target is under 10 %). The chunk is the same for both.
 *
 * usage: bench_blackbox [MODEL_DIR] [--reps R] [--quick] [--only cnn|vgg16] [--chunk C]
 * --quick: 200 coalitions, 100 LIME masks, 8 Sobol designs and 50 RISE masks, one rep: a smoke run
 * that checks the program, not a measurement. Measure on a quiet machine. */
#include "bench.h"


typedef struct {
    const char *model, *method, *params[4];
    int nparams;
} job;

int main(int argc, char **argv) {
    const char *dir = "build/bench/models", *only = NULL;
    int reps = 3;
    long chunk_arg = 0;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk_arg = atol(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = true;
        else if (argv[i][0] != '-') dir = argv[i];
        else {
            fprintf(stderr, "usage: bench_blackbox [MODEL_DIR] [--reps R] [--quick] [--only cnn|vgg16] [--chunk C]\n");
            return 1;
        }
    }
    if (reps < 1 || reps > 64 || quick) reps = quick ? 1 : 3;
    job jobs[] = {
        {"cnn", "kernel_shap", {"segments=slic:50", quick ? "samples=200" : "samples=2000", "seed=1"}, 3},
        {"cnn", "lime", {"segments=slic:50", quick ? "samples=100" : "samples=1000", "seed=1"}, 3},
        {"cnn", "sobol", {"segments=grid:8", quick ? "designs=8" : "designs=32"}, 2},
        {"vgg16", "rise", {quick ? "masks=50" : "masks=1000", "cells=7", "seed=1"}, 3},
    };
    printf("%-6s %-12s %7s %6s %12s %14s %14s %9s  %s\n", "model", "method", "rows", "chunk", "ms/img", "fwd ms/row",
           "fwd ms total", "overhead", "parameters");
    for (size_t k = 0; k < sizeof jobs / sizeof jobs[0]; k++) {
        const job *jb = &jobs[k];
        if (only && strcmp(only, jb->model)) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.onnx", dir, jb->model);
        sal_model *m;
        if (sal_model_load(path, &m) != SAL_OK) {
            fprintf(stderr, "bench_blackbox: %s (run bench/models.py %s --models cnn,vgg16 --export-only first)\n",
                    sal_last_error(), dir);
            return 1;
        }
        bool vgg = !strcmp(jb->model, "vgg16");
        int nd;
        int64_t dim[SAL_MAX_DIMS];
        sal_model_input_shape(m, 0, &nd, dim);
        dim[0] = 1;
        sal_tensor x = {0};
        SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, nd, dim) == SAL_OK);
        /* a smooth random image, so SLIC has regions to find: a sum of a few random waves */
        sal_rng r;
        sal_rng_seed(&r, 3);
        int64_t H = dim[nd - 2], W = dim[nd - 1], P = sal_row_size(&x) / (H * W);
        double f[4][3];
        for (int q = 0; q < 4; q++)
            for (int c = 0; c < 3; c++) f[q][c] = 6.28 * sal_rng_uniform(&r) * (c < 2 ? 3.0 / (double)H : 1);
        for (int64_t p = 0; p < P; p++)
            for (int64_t y = 0; y < H; y++)
                for (int64_t q = 0; q < W; q++) {
                    double v = 0;
                    for (int w = 0; w < 4; w++) v += sin(f[w][0] * (double)y + f[w][1] * (double)q + f[w][2] + (double)p);
                    sal_f32(&x)[(p * H + y) * W + q] = (float)(0.5 + 0.12 * v);
                }
        int64_t chunk = chunk_arg > 0 ? chunk_arg : vgg ? 4 : 64;
        sal_session *sess;
        SAL_ASSERT(sal_session_new(m, &sess) == SAL_OK);
        sal_explain_opts o = {.method = jb->method, .nparams = jb->nparams, .params = jb->params, .session = sess,
                              .chunk = chunk};
        double t[64];
        sal_status st = SAL_OK;
        double segs = NAN, exact = 0;
        int runs = vgg ? 1 : reps;
        for (int rep = -(vgg ? 0 : 1); rep < runs && st == SAL_OK; rep++) { /* VGG16: one timed run only */
            sal_explanation *e = NULL;
            double t0 = sal_now();
            st = sal_explain(m, &x, &o, &e);
            if (rep >= 0) t[rep] = sal_now() - t0;
            if (st == SAL_OK) segs = sal_explanation_metric(e, "segments"), exact = sal_explanation_metric(e, "exact_samples");
            sal_explanation_free(e);
        }
        if (st != SAL_OK) {
            printf("%-6s %-12s %.100s\n", jb->model, jb->method, sal_last_error());
        } else {
            /* the forward passes the method made: its rows, plus the one that picks the target */
            long v = 0;
            for (int i = 0; i < jb->nparams; i++)
                if (sscanf(jb->params[i], "samples=%ld", &v) == 1 || sscanf(jb->params[i], "masks=%ld", &v) == 1 ||
                    sscanf(jb->params[i], "designs=%ld", &v) == 1)
                    break;
            int64_t M = isnan(segs) ? 0 : (int64_t)segs, rows = v;
            if (!strcmp(jb->method, "kernel_shap")) rows = exact > 0 ? (int64_t)1 << M : 2 + v;
            if (!strcmp(jb->method, "sobol")) rows = v * (M + 2);
            double per = bench_forward_per_row(sess, &x, 1, chunk, vgg ? 2 : 10), tm = bench_median(t, runs);
            double fwd = per * (double)rows + per * (double)chunk; /* + the target pass, one row at chunk cost */
            char ps[160] = "";
            for (int i = 0; i < jb->nparams; i++)
                snprintf(ps + strlen(ps), sizeof ps - strlen(ps), "%s%s", i ? " " : "", jb->params[i]);
            if (M) snprintf(ps + strlen(ps), sizeof ps - strlen(ps), " (%lld segments)", (long long)M);
            printf("%-6s %-12s %7lld %6lld %12.1f %14.4f %14.1f %8.1f%%  %s\n", jb->model, jb->method, (long long)rows,
                   (long long)chunk, 1e3 * tm, 1e3 * per, 1e3 * fwd, 100 * (tm - fwd) / tm, ps);
        }
        fflush(stdout);
        sal_session_free(sess);
        sal_tensor_free(&x);
        sal_model_free(m);
    }
    printf("\nms/img: median wall time of sal_explain for one image (reused session; CNN after an untimed run).\n"
           "fwd ms/row: median time of a forward pass of one chunk of copies of the image, per row; fwd ms\n"
           "total: that times the rows, plus the pass that picks the target. overhead: (ms/img - fwd total) /\n"
           "ms/img, the time spent making masks, segments and solving (target: under 10 %%).%s\n",
           quick ? "\n--quick: a smoke run, not a measurement." : "");
    return 0;
}
