/* The thread count of the calling thread's OpenMP regions (sal_set_threads in saliency.h). */
#include "core.h"
#include <omp.h>
#include <stdlib.h>

void sal_set_threads(int n) {
    if (n <= 0) { /* OpenMP's own default, which omp_set_num_threads has overwritten */
        const char *env = getenv("OMP_NUM_THREADS");
        long v = env ? strtol(env, NULL, 10) : 0;
        n = v > 0 && v < 1 << 16 ? (int)v : omp_get_num_procs();
    }
    omp_set_num_threads(n);
}

int sal_threads(void) { return omp_get_max_threads(); }
