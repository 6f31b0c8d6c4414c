/* png_stats FILE.png: prints "width height mean stddev nonwhite colours" of a PNG (values of the
 * grey level in [0, 255]; nonwhite: fraction of pixels below 245; colours: distinct quantized
 * RGB colours, at most 4096), so scripts can check that a screenshot is not blank. */
#include "../testutil.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: png_stats FILE.png\n");
        return 2;
    }
    sal_tensor t = {0};
    if (sal_png_read(argv[1], &t) != SAL_OK) {
        fprintf(stderr, "png_stats: %s\n", sal_last_error());
        return 1;
    }
    int64_t C = t.dim[0], H = t.dim[1], W = t.dim[2], n = H * W, nonwhite = 0, ncol = 0;
    const float *p = sal_f32(&t);
    static bool seen[4096];
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = p[i], g = C == 3 ? p[n + i] : r, b = C == 3 ? p[2 * n + i] : r;
        double y = 255 * (0.2126 * r + 0.7152 * g + 0.0722 * b);
        s += y, s2 += y * y;
        nonwhite += y < 245;
        int q = (int)(r * 15.99) << 8 | (int)(g * 15.99) << 4 | (int)(b * 15.99);
        if (!seen[q]) seen[q] = true, ncol++;
    }
    double mean = s / (double)n, var = s2 / (double)n - mean * mean;
    printf("%lld %lld %.2f %.2f %.4f %lld\n", (long long)W, (long long)H, mean, sqrt(var > 0 ? var : 0),
           (double)nonwhite / (double)n, (long long)ncol);
    sal_tensor_free(&t);
    return 0;
}
