/* The C side of bench/python_overhead.py: median time of one call, as a C program makes it, of
 * sal_forward (run) and of sal_explain (a method with its defaults) on one input, with one
 * session reused across calls as the Python package does.
 *
 * usage: bench_call MODEL.onnx X.npy METHOD REPS
 * prints: "run US" and "explain US", microseconds per call (medians of REPS calls after one warm-up). */
#include "bench.h"
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    if (argc != 5 || atoi(argv[4]) < 1) {
        fprintf(stderr, "usage: bench_call MODEL.onnx X.npy METHOD REPS\n");
        return 1;
    }
    int reps = atoi(argv[4]);
    sal_model *m = NULL;
    sal_session *s = NULL;
    sal_tensor x = {0};
    double *t = malloc(sizeof(double) * (size_t)reps);
    sal_status st = t ? sal_model_load(argv[1], &m) : SAL_ERR_NOMEM;
    if (st == SAL_OK) st = sal_npy_read(argv[2], &x);
    if (st == SAL_OK) st = sal_session_new(m, &s);
    const sal_tensor *y[16];
    for (int i = -1; i < reps && st == SAL_OK; i++) {
        double t0 = now_us();
        st = sal_forward(s, 1, &x, y);
        if (i >= 0) t[i] = now_us() - t0;
    }
    if (st == SAL_OK) printf("run %.2f\n", bench_median(t, reps));
    sal_explain_opts o = {.method = argv[3], .session = s};
    for (int i = -1; i < reps && st == SAL_OK; i++) {
        sal_explanation *e = NULL;
        double t0 = now_us();
        st = sal_explain(m, &x, &o, &e);
        const sal_tensor *map = st == SAL_OK ? sal_explanation_map(e) : NULL; /* as Python reads it */
        (void)map;
        sal_explanation_free(e);
        if (i >= 0) t[i] = now_us() - t0;
    }
    if (st == SAL_OK) printf("explain %.2f\n", bench_median(t, reps));
    else fprintf(stderr, "bench_call: %s\n", sal_last_error());
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(m);
    free(t);
    return st != SAL_OK;
}
