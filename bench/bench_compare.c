/* One configuration of the side-by-side comparison (bench/compare.py, bench/peers.py): times our
 * forward pass or one method on one model at one batch size, in a process of its own, and prints
 * one line of key=value pairs for the driver to read.
 *
 * usage: bench_compare MODEL.onnx METHOD [--param K=V]... [--batch B] [--reps R] [--warmup W]
 *                      [--target C] [--seed S]
 * METHOD is `forward` (sal_forward on a session) or a method of `saliency methods`, run through
 * sal_explain on a reused session (its forward pass for the targets included). --target C explains
 * class C for every sample (default: the predicted class). The input is uniform in [0, 1).
 *
 * Prints: ms_per_img (median of the timed calls, per image), min_ms_per_img, reps, lib_peak_mb (the
 * most memory the library held during a call above what it held before: the session's buffers and
 * the method's, not the model's weights), maxrss_mb (the process's peak resident set, weights,
 * code and all), load_s (model loading), blas; or error=MESSAGE and exit status 1. */
#include "graph/exec.h"
#include <sys/resource.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int usage(void) {
    fprintf(stderr, "usage: bench_compare MODEL.onnx METHOD [--param K=V]... [--batch B] [--reps R] [--warmup W]"
                    " [--target C] [--seed S]\n");
    return 2;
}

static int fail(const char *what) {
    printf("error=%s: %s\n", what, sal_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    const char *path = argv[1], *method = argv[2];
    const char *params[64];
    int np = 0, batch = 1, reps = 10, warmup = 2, seed = 1;
    long long target = -1;
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--param") && np < 64) params[np++] = argv[++i];
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--target")) target = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--seed")) seed = atoi(argv[++i]);
        else return usage();
    }
    if (batch < 1 || reps < 1 || reps > 1000 || warmup < 0) return usage();
    bool fwd = !strcmp(method, "forward"), known = fwd;
    for (int k = 0; k < sal_method_count() && !known; k++) known = !strcmp(method, sal_method_name(k));
    if (!known) {
        printf("error=unknown method '%s'\n", method);
        return 1;
    }
    double t0 = sal_now();
    sal_model *m;
    if (sal_model_load(path, &m) != SAL_OK) return fail("loading");
    double load_s = sal_now() - t0;
    int nd;
    int64_t dim[SAL_MAX_DIMS];
    sal_model_input_shape(m, 0, &nd, dim);
    dim[0] = batch;
    sal_tensor x = {0}, data = {0};
    if (sal_tensor_alloc(&x, SAL_F32, nd, dim) != SAL_OK) return fail("input");
    dim[0] = 8; /* data rows for the methods that draw baselines from data (gradient SHAP) */
    if (sal_tensor_alloc(&data, SAL_F32, nd, dim) != SAL_OK) return fail("data");
    sal_rng r;
    sal_rng_seed(&r, (uint64_t)seed);
    for (int64_t i = 0, n = sal_tensor_numel(&x); i < n; i++) sal_f32(&x)[i] = (float)sal_rng_uniform(&r);
    for (int64_t i = 0, n = sal_tensor_numel(&data); i < n; i++) sal_f32(&data)[i] = (float)sal_rng_uniform(&r);
    sal_session *sess;
    if (sal_session_new(m, &sess) != SAL_OK) return fail("session");
    int64_t cls = target;
    sal_explain_opts o = {.method = method, .nparams = np, .params = params, .data = &data, .session = sess};
    if (target >= 0) o.target = SAL_TARGET_INDEX, o.classes = &cls, o.nclasses = 1;
    double *t = calloc((size_t)reps, sizeof *t);
    size_t peak = 0;
    sal_status st = SAL_OK;
    for (int rep = -warmup; rep < reps && st == SAL_OK; rep++) {
        size_t base = sal_memory_in_use();
        sal_memory_reset_peak();
        double s0 = sal_now();
        if (fwd) {
            const sal_tensor *y;
            st = sal_forward(sess, 1, &x, &y);
        } else {
            sal_explanation *e = NULL;
            st = sal_explain(m, &x, &o, &e);
            sal_explanation_free(e);
        }
        if (rep >= 0) t[rep] = sal_now() - s0;
        size_t p = sal_memory_peak() - base;
        if (p > peak) peak = p;
    }
    if (st != SAL_OK) return fail(method);
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("ms_per_img=%.4f min_ms_per_img=%.4f reps=%d lib_peak_mb=%.1f maxrss_mb=%.1f load_s=%.2f blas=%s\n",
           1e3 * t[reps / 2] / batch, 1e3 * t[0] / batch, reps, (double)peak / (1 << 20),
           (double)ru.ru_maxrss / 1024, load_s, sal_blas_info());
    free(t);
    sal_session_free(sess);
    sal_tensor_free(&x);
    sal_tensor_free(&data);
    sal_model_free(m);
    return 0;
}
