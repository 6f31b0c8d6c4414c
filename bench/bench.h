/* What the benchmark programs share. */
#ifndef SAL_BENCH_H
#define SAL_BENCH_H
#include "graph/exec.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n timings (sorts t). */
static inline double bench_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return t[n / 2];
}

/* Median seconds per row of a forward pass of `chunk` rows that cycle through the first `nsrc`
 * samples of x (reps <= 64, after one untimed pass). */
static inline double bench_forward_per_row(sal_session *s, const sal_tensor *x, int64_t nsrc, int64_t chunk, int reps) {
    sal_tensor b = {0};
    int64_t dim[SAL_MAX_DIMS], row = sal_row_size(x);
    memcpy(dim, x->dim, sizeof dim);
    dim[0] = chunk;
    SAL_ASSERT(sal_tensor_alloc(&b, SAL_F32, x->ndim, dim) == SAL_OK);
    for (int64_t r = 0; r < chunk; r++)
        memcpy(sal_f32(&b) + r * row, sal_f32(x) + (r % nsrc) * row, (size_t)row * sizeof(float));
    double t[64];
    SAL_ASSERT(sal_exec_forward(s, &b) == SAL_OK);
    for (int k = 0; k < reps; k++) {
        double t0 = sal_now();
        SAL_ASSERT(sal_exec_forward(s, &b) == SAL_OK);
        t[k] = sal_now() - t0;
    }
    sal_tensor_free(&b);
    return bench_median(t, reps) / (double)chunk;
}
#endif
