/* What the benchmark programs share. */
#ifndef SAL_BENCH_H
#define SAL_BENCH_H
#include "graph/exec.h"
#include <math.h>
#include <stdlib.h>

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n timings (sorts t). */
static inline double bench_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return t[n / 2];
}
#endif
