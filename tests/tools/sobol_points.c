/* Prints the first N points of the unscrambled D-dimensional Sobol' sequence of the library, one
 * point per line (for tests/test_blackbox.py, which compares them with SciPy's).
 * usage: sobol_points D N */
#include "methods/segments.h"

int main(int argc, char **argv) {
    if (argc != 3) return fprintf(stderr, "usage: sobol_points D N\n"), 2;
    long d = atol(argv[1]), n = atol(argv[2]);
    if (d < 1 || n < 1 || n > 1 << 20) return fprintf(stderr, "sobol_points: bad D or N\n"), 2;
    double *p = malloc(sizeof *p * (size_t)(d * n));
    if (!p || sal_sobol_points(d, n, p) != SAL_OK) return fprintf(stderr, "sobol_points: %s\n", sal_last_error()), 1;
    for (long i = 0; i < n; i++)
        for (long k = 0; k < d; k++) printf("%.17g%c", p[i * d + k], k == d - 1 ? '\n' : ' ');
    free(p);
    return 0;
}
