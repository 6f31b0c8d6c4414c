/* The products' floor of a model's forward pass and input gradient: every Conv, Gemm and MatMul
 * (with constant weights) node's matrix products timed alone through sal_sgemm, warm, the best of
 * --reps calls each: a convolution's forward W (M x K) times its columns (K x P) per sample and
 * group, its input gradient W^T dY (K x M times M x P); a dense layer's forward and the product
 * that takes its output gradient to its input, each in the faster of the weight's two layouts.
 * Nothing else counts (im2col, pooling, activations, rules, bookkeeping), so no implementation
 * built on these products at this machine's rates runs a forward pass or an input gradient in
 * less than the sums printed. docs/performance.md sets them beside the peers' times.
 *
 * A one-row dense layer over a ReLU is timed a second time with every other entry of its input (and
 * of its output gradient, where a ReLU reads its output) zero, as a ReLU leaves about half: the
 * products then skip those rows of the weights (sal_sgemm's rows_axpy), and their sums are the floor
 * of an implementation that does so, below the dense one.
 *
 * Each product is timed on the same buffers call after call, so its weights come from the cores'
 * caches. A batch-1 pass over weights larger than those reads them from farther out every call:
 * the rate at which all threads stream buffers that do not fit L2 (4 MiB each, eight in turn) is
 * printed too, with the weights' bytes over it, the floor of reading every weight once.
 *
 * usage: bench_floor MODEL.onnx [--batch B] [--reps R] */
#include "bench.h"
#include <omp.h>
#include <stdio.h>

/* Best seconds of sgemm(ta, tb, M, N, K) over reps calls on buffers of random floats; with half,
 * every other entry of A zero. */
static double best_sgemm(bool ta, bool tb, int M, int N, int K, int reps, bool half) {
    float *a = malloc(sizeof(float) * (size_t)M * (size_t)K), *b = malloc(sizeof(float) * (size_t)K * (size_t)N);
    float *c = malloc(sizeof(float) * (size_t)M * (size_t)N);
    SAL_ASSERT(a && b && c);
    for (size_t i = 0; i < (size_t)M * (size_t)K; i++) a[i] = half && i % 2 ? 0.0f : (float)(i % 7 + 1) * 0.1f;
    for (size_t i = 0; i < (size_t)K * (size_t)N; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = sal_now();
        sal_sgemm(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.0f, c, N);
        double t = sal_now() - t0;
        if (t < best) best = t;
    }
    free(a), free(b), free(c);
    return best;
}

/* Sum of b[i0..i1) (a multiple of 32 long), 32 sums in flight: the loads, not the adds, set the pace. */
SAL_CLONES float sum_range(const float *b, int64_t i0, int64_t i1) {
    float acc[32] = {0}, t = 0.0f;
    for (int64_t i = i0; i < i1; i += 32)
        for (int j = 0; j < 32; j++) acc[j] += b[i + j];
    for (int j = 0; j < 32; j++) t += acc[j];
    return t;
}

/* Sum of one buffer of n floats (a multiple of 32 per thread), each thread its share. */
static float stream_sum(const float *b, int64_t n) {
    float t = 0.0f;
#pragma omp parallel reduction(+ : t)
    {
        int64_t nt = omp_get_num_threads(), k = omp_get_thread_num();
        t += sum_range(b, n / 32 * k / nt * 32, n / 32 * (k + 1) / nt * 32);
    }
    return t;
}

/* GB/s (best, median) at which all threads read buffers of 4 MiB, eight taken in turn. */
static void stream_rate(double *best, double *median) {
    enum { NB = 8, NF = 1 << 20, PASSES = 800 };
    float *b = malloc(sizeof(float) * (size_t)NB * NF);
    double *t = malloc(sizeof(double) * PASSES);
    SAL_ASSERT(b && t);
    for (size_t i = 0; i < (size_t)NB * NF; i++) b[i] = (float)(i % 3);
    volatile float sink = 0.0f;
    for (int r = 0; r < PASSES; r++) {
        double t0 = sal_now();
        sink += stream_sum(b + (size_t)(r % NB) * NF, NF);
        t[r] = sal_now() - t0;
    }
    (void)sink;
    qsort(t, PASSES, sizeof *t, bench_cmp_double);
    *best = 4.0 * NF / t[0] * 1e-9;
    *median = 4.0 * NF / t[PASSES / 2] * 1e-9;
    free(b), free(t);
}

/* The faster of a product with B as it is or transposed (a layout a weight may be kept in). */
static double best_either(int M, int N, int K, int reps, bool half) {
    double x = best_sgemm(false, false, M, N, K, reps, half), y = best_sgemm(false, true, M, N, K, reps, half);
    return x < y ? x : y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_floor MODEL.onnx [--batch B] [--reps R]\n");
        return 2;
    }
    int batch = 1, reps = 2000;
    for (int i = 2; i < argc; i += 2) {
        bool b = !strcmp(argv[i], "--batch"), r = !strcmp(argv[i], "--reps");
        if ((!b && !r) || i + 1 >= argc) {
            fprintf(stderr, "bench_floor: unknown option or missing value: %s\n", argv[i]);
            return 2;
        }
        *(b ? &batch : &reps) = atoi(argv[i + 1]);
    }
    if (batch < 1 || reps < 1) {
        fprintf(stderr, "bench_floor: --batch and --reps take positive numbers\n");
        return 2;
    }
    sal_model *m = NULL;
    sal_session *s = NULL;
    sal_tensor x = {0};
    int nd;
    int64_t dim[SAL_MAX_DIMS];
    sal_status st = sal_model_load(argv[1], &m);
    if (st == SAL_OK) {
        sal_model_input_shape(m, 0, &nd, dim);
        dim[0] = batch;
        st = sal_tensor_alloc(&x, SAL_F32, nd, dim);
    }
    if (st == SAL_OK) st = sal_session_new(m, &s);
    if (st == SAL_OK) st = sal_exec_forward(s, &x); /* the values' shapes */
    if (st != SAL_OK) {
        fprintf(stderr, "bench_floor: %s\n", sal_last_error());
        sal_session_free(s);
        sal_model_free(m);
        sal_tensor_free(&x);
        return 1;
    }
    printf("%s, batch %d, sgemm best of %d calls: %s\n\n", argv[1], batch, reps, sal_blas_info());
    printf("%-32s %-7s %-20s %10s %10s %9s %10s %10s\n", "node", "op", "products", "fwd us", "grad us", "GFLOP/s",
           "fwd 1/2", "grad 1/2");
    double fwd = 0, grad = 0, fwd2 = 0, grad2 = 0, wbytes = 0;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        bool conv = sal_node_is(n, SAL_OP_Conv), gemm = sal_node_is(n, SAL_OP_Gemm), mm = sal_node_is(n, SAL_OP_MatMul);
        if (!(conv || gemm || mm) || n->nin < 2 || n->in[1] < 0 || m->val[n->in[1]].kind != SAL_VAL_CONST) continue;
        const sal_tensor *X = &s->act[n->in[0]], *W = &s->act[n->in[1]], *Y = &s->act[n->out[0]];
        double tf, tb, tf2, tb2, macs;
        char what[32];
        if (conv) { /* per sample and group: (Mg x Kc) (Kc x P), and back (Kc x Mg) (Mg x P) */
            int64_t G = sal_attr_int(n, "group", 1), Mg = W->dim[0] / G, Kc = 1, P = 1;
            for (int d = 1; d < W->ndim; d++) Kc *= W->dim[d];
            for (int d = 2; d < Y->ndim; d++) P *= Y->dim[d];
            int64_t k = X->dim[0] * G;
            tf = (double)k * best_sgemm(false, false, (int)Mg, (int)P, (int)Kc, reps, false);
            tb = (double)k * best_sgemm(true, false, (int)Kc, (int)P, (int)Mg, reps, false);
            tf2 = tf, tb2 = tb;
            macs = (double)k * (double)(Mg * P * Kc);
            snprintf(what, sizeof what, "%lldx %lldx%lldx%lld", (long long)k, (long long)Mg, (long long)P,
                     (long long)Kc);
        } else { /* rows x K times K x N, and the output gradient back: rows x N times N x K */
            if (W->ndim != 2) continue;
            bool tb_ = gemm && sal_attr_int(n, "transB", 0);
            int64_t K = W->dim[tb_ ? 1 : 0], N = W->dim[tb_ ? 0 : 1], rows = sal_tensor_numel(X) / K;
            tf = best_either((int)rows, (int)N, (int)K, reps, false);
            tb = best_either((int)rows, (int)K, (int)N, reps, false);
            int p = m->val[n->in[0]].kind == SAL_VAL_NODE ? m->val[n->in[0]].producer : -1;
            bool rin = rows == 1 && p >= 0 && sal_node_is(&m->node[p], SAL_OP_Relu), rout = false;
            for (int j = 0; rows == 1 && j < m->nnode; j++)
                rout |= sal_node_is(&m->node[j], SAL_OP_Relu) && m->node[j].in[0] == n->out[0];
            tf2 = rin ? best_either((int)rows, (int)N, (int)K, reps, true) : tf;
            tb2 = rout ? best_either((int)rows, (int)K, (int)N, reps, true) : tb;
            macs = (double)(rows * N * K);
            snprintf(what, sizeof what, "%lldx%lldx%lld", (long long)rows, (long long)N, (long long)K);
        }
        const char *nm = n->name;
        size_t len = strlen(nm);
        printf("%-32.32s %-7s %-20s %10.2f %10.2f %9.0f %10.2f %10.2f\n", len > 32 ? nm + len - 32 : nm, n->op_type,
               what, 1e6 * tf, 1e6 * tb, 2 * macs / tf * 1e-9, 1e6 * tf2, 1e6 * tb2);
        fwd += tf;
        grad += tf + tb;
        fwd2 += tf2;
        grad2 += tf2 + tb2;
        wbytes += (double)sal_tensor_numel(W) * sizeof(float);
    }
    printf("\nproducts' floor per image: forward %.2f us, forward and input gradient %.2f us\n", 1e6 * fwd / batch,
           1e6 * grad / batch);
    printf("with half of each one-row dense layer's input and output gradient zero where a ReLU makes them (the "
           "1/2 columns): forward %.2f us, forward and input gradient %.2f us\n",
           1e6 * fwd2 / batch, 1e6 * grad2 / batch);
    double sbest, smed;
    stream_rate(&sbest, &smed);
    printf("streaming 4 MiB buffers on %d threads: %.1f GB/s median (%.1f best); the weights, %.2f MB, once at the "
           "median: %.2f us\n", omp_get_max_threads(), smed, sbest, wbytes * 1e-6, 1e6 * wbytes / (smed * 1e9));
    sal_session_free(s);
    sal_model_free(m);
    sal_tensor_free(&x);
    return 0;
}
