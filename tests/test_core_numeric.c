/* The shared numerics of core/: JSON string literals, sal_row_size, sal_percentile against order statistics of known
 * sets, and sal_gauss_blur against a direct 2-D convolution with edge replication and against the
 * closed form of an impulse's response. */
#include "testutil.h"

static void test_row_size(void) {
    sal_tensor t = {.ndim = 4, .dim = {5, 3, 7, 2}};
    CHECK(sal_row_size(&t) == 42, "row of (5,3,7,2): %lld", (long long)sal_row_size(&t));
    t.ndim = 1;
    CHECK(sal_row_size(&t) == 1, "row of (5): %lld", (long long)sal_row_size(&t));
    t = (sal_tensor){.ndim = 3, .dim = {0, 4, 6}};
    CHECK(sal_row_size(&t) == 24, "row of (0,4,6): %lld", (long long)sal_row_size(&t));
}

/* v = a shuffled 0..n-1: the q-th percentile is q/100 (n-1) exactly (linear interpolation). */
static void test_percentile(void) {
    enum { N = 101 };
    float v[N];
    sal_rng r;
    sal_rng_seed(&r, 5);
    const double qs[] = {0, 0.5, 10, 33.3, 50, 97.25, 99.9, 100};
    for (size_t j = 0; j < sizeof qs / sizeof *qs; j++) {
        for (int i = 0; i < N; i++) v[i] = (float)i;
        for (int i = N - 1; i > 0; i--) { /* Fisher-Yates */
            int k = (int)(sal_rng_u64(&r) % (uint64_t)(i + 1));
            float t = v[i];
            v[i] = v[k];
            v[k] = t;
        }
        double got = sal_percentile(v, N, qs[j]), want = qs[j] / 100 * (N - 1);
        CHECK(fabs(got - want) < 1e-9, "percentile %g of 0..100: %.12g, want %.12g", qs[j], got, want);
    }
    /* repeated values and negatives: {-3, 1, 1, 8}: position q/100 * 3 between order statistics */
    float w[4] = {8, 1, -3, 1};
    CHECK(sal_percentile(w, 4, 0) == -3, "min");
    float w2[4] = {8, 1, -3, 1};
    CHECK(fabs(sal_percentile(w2, 4, 20) - (-3 + 0.6 * 4)) < 1e-6, "20th percentile of {-3,1,1,8}");
    float w3[4] = {8, 1, -3, 1};
    CHECK(fabs(sal_percentile(w3, 4, 90) - (1 + 0.7 * 7)) < 1e-6, "90th percentile of {-3,1,1,8}");
    float one = 4;
    CHECK(sal_percentile(&one, 1, 37) == 4, "one value");
    CHECK(sal_percentile(NULL, 0, 50) == 0, "no values");
}

static int64_t clamp(int64_t v, int64_t n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

/* Direct 2-D convolution of each plane with the outer product of the 1-D kernel, in double. */
static void direct_blur(const float *x, double *out, int64_t P, int64_t H, int64_t W, double sigma) {
    int64_t r = (int64_t)ceil(3 * sigma);
    double k[64], sum = 0;
    for (int64_t d = -r; d <= r; d++) sum += k[d + r] = exp(-(double)(d * d) / (2 * sigma * sigma));
    for (int64_t p = 0; p < P; p++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++) {
                double s = 0;
                for (int64_t a = -r; a <= r; a++)
                    for (int64_t b = -r; b <= r; b++)
                        s += (H > 1 ? k[a + r] / sum : (a == 0)) * k[b + r] / sum *
                             x[(p * H + clamp(y + a, H)) * W + clamp(xx + b, W)];
                out[(p * H + y) * W + xx] = s;
            }
}

static void test_blur(void) {
    sal_rng r;
    sal_rng_seed(&r, 9);
    const struct {
        int64_t P, H, W;
        double sigma;
    } cases[] = {{3, 9, 11, 1.3}, {2, 1, 17, 2.0}, {1, 5, 4, 2.5}, {2, 12, 12, 0.4}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int64_t P = cases[c].P, H = cases[c].H, W = cases[c].W, n = P * H * W;
        float *x = sal_malloc((size_t)n * sizeof *x), *y = sal_malloc((size_t)n * sizeof *y);
        double *want = sal_malloc((size_t)n * sizeof *want);
        SAL_ASSERT(x && y && want);
        for (int64_t i = 0; i < n; i++) x[i] = (float)sal_rng_normal(&r);
        direct_blur(x, want, P, H, W, cases[c].sigma);
        CHECK_OK(sal_gauss_blur(x, y, P, H, W, cases[c].sigma));
        double err = 0;
        for (int64_t i = 0; i < n; i++) err = fmax(err, fabs(y[i] - want[i]));
        CHECK(err < 1e-6, "blur (%lld,%lld,%lld) sigma %g: %g from a direct convolution", (long long)P, (long long)H,
              (long long)W, cases[c].sigma, err);
        CHECK_OK(sal_gauss_blur(x, x, P, H, W, cases[c].sigma)); /* in place: the same bytes */
        CHECK(!memcmp(x, y, (size_t)n * sizeof *x), "in-place blur differs");
        sal_free(x);
        sal_free(y);
        sal_free(want);
    }
    /* an impulse far from the edges: the normalized Gaussian exp(-(dy^2 + dx^2) / (2 s^2)) / Z^2 */
    enum { S = 21 };
    float im[S * S] = {0}, out[S * S];
    im[10 * S + 10] = 1;
    double s = 1.5, z = 0;
    for (int d = -5; d <= 5; d++) z += exp(-d * d / (2 * s * s));
    CHECK_OK(sal_gauss_blur(im, out, 1, S, S, s));
    double err = 0, total = 0;
    for (int y = 0; y < S; y++)
        for (int xx = 0; xx < S; xx++) {
            int dy = y - 10, dx = xx - 10;
            double want = abs(dy) <= 5 && abs(dx) <= 5 ? exp(-(dy * dy + dx * dx) / (2 * s * s)) / (z * z) : 0;
            err = fmax(err, fabs(out[y * S + xx] - want));
            total += out[y * S + xx];
        }
    CHECK(err < 1e-7, "impulse response off the closed form by %g", err);
    CHECK(fabs(total - 1) < 1e-6, "impulse response sums to %.9g", total);
    /* constants stay constant; sigma 0 copies */
    float cst[4 * 6], cb[4 * 6];
    for (int i = 0; i < 24; i++) cst[i] = 2.5f;
    CHECK_OK(sal_gauss_blur(cst, cb, 1, 4, 6, 3.0));
    for (int i = 0; i < 24; i++) err = fmax(err, fabs(cb[i] - 2.5));
    CHECK(err < 1e-6, "a constant plane changed by %g", err);
    CHECK_OK(sal_gauss_blur(im, out, 1, S, S, 0));
    CHECK(!memcmp(im, out, sizeof im), "sigma 0 should copy");
    sal_alloc_fail_after(1);
    CHECK_FAILS(sal_gauss_blur(im, out, 1, S, S, 1), SAL_ERR_NOMEM, "out of memory");
    sal_alloc_fail_after(0);
}

/* Error of got against the double reference in units of the float spacing at the reference (the
 * spacing of the smallest normal below it, so subnormal results count absolute error). */
static double ulps(float got, double ref) {
    double a = fabs(ref) < 1.1754943508222875e-38 ? 1.1754943508222875e-38 : fabs(ref);
    return fabs((double)got - ref) / (ldexp(1.0, ilogb(a) - 23));
}

/* sal_vexp and sal_verf against libm in double over their whole range, special values, and in
 * place; lengths that leave a vector tail. */
static void test_vmath(void) {
    enum { N = 2000003 };
    float *x = malloc(sizeof *x * N), *y = malloc(sizeof *y * N);
    for (int i = 0; i < N; i++) x[i] = -110.0f + 205.0f * (float)i / (N - 1);
    sal_vexp(y, x, N);
    double worst = 0, at = 0;
    int noinf = 0;
    for (int i = 0; i < N; i++) {
        double ref = exp((double)x[i]);
        if (ref > 3.4028234663852886e38) {
            noinf += !(isinf(y[i]) && y[i] > 0);
            continue;
        }
        double u = ulps(y[i], ref);
        if (u > worst) worst = u, at = x[i];
    }
    CHECK(worst <= 2.0, "sal_vexp: %.2f ulps at x = %g", worst, at);
    CHECK(noinf == 0, "sal_vexp: %d results above FLT_MAX are not +inf", noinf);
    for (int i = 0; i < N; i++) x[i] = -6.0f + 12.0f * (float)i / (N - 1);
    memcpy(y, x, sizeof *y * N);
    sal_verf(y, y, N); /* in place */
    worst = 0;
    for (int i = 0; i < N; i++) {
        double u = fabs((double)y[i] - erf((double)x[i])) / fmax(fabs(erf((double)x[i])), 1e-30);
        if (u > worst) worst = u, at = x[i];
    }
    CHECK(worst < 3e-7, "sal_verf: relative error %.3g at x = %g", worst, at);
    float sp[7] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-30f, -1e-30f}, e[7], f[7];
    sal_vexp(e, sp, 7);
    sal_verf(f, sp, 7);
    CHECK(isnan(e[0]) && isinf(e[1]) && e[2] == 0 && e[3] == 1 && e[4] == 1 && e[5] == 1, "exp of NaN, inf, -inf, 0");
    CHECK(isnan(f[0]) && f[1] == 1 && f[2] == -1 && f[3] == 0 && f[5] > 0 && fabs(f[5] / 1.1283791670955126e-30 - 1) < 1e-6 &&
              f[6] < 0,
          "erf of NaN, inf, -inf, 0, tiny: %g %g %g %g %g", f[0], f[1], f[2], f[3], f[5]);
    free(x);
    free(y);
}

/* sal_vgelu and sal_vgelu_grad, exact and tanh forms, against their formulas in double: the exact
 * form to a relative error of its terms (x Phi(x), and Phi(x) + |x| phi(x) for the gradient, which
 * crosses zero) down the negative tail, where 1 + erf would cancel; the tanh form to its size. The
 * gradient set into a buffer of NaNs, then added to it. */
static void test_vgelu(void) {
    enum { N = 300007 };
    float *x = malloc(sizeof *x * N), *y = malloc(sizeof *y * N);
    float *dy = malloc(sizeof *dy * N), *dx = malloc(sizeof *dx * N);
    for (int i = 0; i < N; i++) x[i] = -12.0f + 24.0f * (float)i / (N - 1), dy[i] = i % 2 ? 2.0f : -0.5f;
    for (int tf = 0; tf < 2; tf++) {
        sal_vgelu(y, x, N, tf);
        for (int i = 0; i < N; i++) dx[i] = NAN; /* set: written, not read */
        sal_vgelu_grad(dx, dy, x, N, tf, true);
        double worst = 0, wgrad = 0, at = 0, gat = 0;
        for (int i = 0; i < N; i++) {
            double v = x[i], cdf, pdf = exp(-0.5 * v * v) / sqrt(2 * M_PI), ref, dref, scale;
            if (tf) {
                double u = sqrt(2 / M_PI) * (v + 0.044715 * v * v * v), t = tanh(u);
                cdf = 0.5 * (1 + t);
                ref = v * cdf;
                dref = cdf + 0.5 * v * (1 - t * t) * sqrt(2 / M_PI) * (1 + 3 * 0.044715 * v * v);
                scale = fabs(v) + 1e-30; /* 1 + tanh cancels in the tail: error against x's size */
            } else {
                cdf = 0.5 * erfc(-v / sqrt(2.0));
                ref = v * cdf;
                dref = cdf + v * pdf;
                scale = fabs(ref) + 1e-37;
            }
            double e = fabs(y[i] - ref) / scale;
            double g = fabs(dx[i] / dy[i] - dref) / (tf ? 1.0 : cdf + fabs(v) * pdf + 1e-37);
            if (e > worst) worst = e, at = v;
            if (g > wgrad) wgrad = g, gat = v;
        }
        CHECK(worst < (tf ? 1e-6 : 5e-7), "sal_vgelu (tanh %d): relative error %.3g at x = %g", tf, worst, at);
        CHECK(wgrad < (tf ? 2e-6 : 5e-7), "sal_vgelu_grad (tanh %d): relative error %.3g at x = %g", tf, wgrad, gat);
        float d0 = dx[N / 3], d1 = dx[N - 5];
        sal_vgelu_grad(dx, dy, x, N, tf, false);
        CHECK(dx[N / 3] == 2 * d0 && dx[N - 5] == 2 * d1, "sal_vgelu_grad adds to dx: %g %g", dx[N / 3] / d0,
              dx[N - 5] / d1);
    }
    free(x);
    free(y);
    free(dy);
    free(dx);
}

/* JSON string literals (sal_sb_str): plain runs as they are, quotes and backslashes escaped, control
 * characters as \u00XX; a long string grows the buffer past its first 512 bytes. */
static void test_json_strings(void) {
    sal_sbuf b = {0};
    sal_sb_str(&b, "a\"b\\c\nd\x01" "e");
    sal_sb_str(&b, "");
    CHECK(b.s && !strcmp(b.s, "\"a\\\"b\\\\c\\u000ad\\u0001e\"\"\""), "escaped: %s", b.s ? b.s : "(null)");
    char big[1500];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[700] = '"';
    size_t before = b.len;
    sal_sb_str(&b, big);
    CHECK(!b.oom && b.len == before + 1502 && b.s[before + 701] == '\\' && b.s[before + 702] == '"' &&
              b.s[b.len - 1] == '"' && b.s[b.len] == '\0',
          "a 1499-byte string with one quote: %zu bytes added", b.len - before);
    sal_sb_free(&b);
    /* sal_sb_printf's formats without conversions and "%s" alone skip vsnprintf: the same bytes, and
     * past the first 512 too */
    sal_sb_printf(&b, "plain, no conversions");
    sal_sb_printf(&b, "%s", "-arg-");
    const char *volatile nul = NULL; /* not seen as NULL by the format check */
    sal_sb_printf(&b, "%s", nul);
    sal_sb_printf(&b, "%d%%", 5);
    sal_sb_printf(&b, "%s", big);
    CHECK(!b.oom && b.len == 21 + 5 + 6 + 2 + 1499 && !strncmp(b.s, "plain, no conversions-arg-(null)5%x", 35) &&
              b.s[b.len - 1] == 'x' && b.s[b.len] == '\0',
          "sal_sb_printf's copies: %zu bytes, %.40s", b.len, b.s ? b.s : "(null)");
    sal_sb_free(&b);
}

int main(void) {
    test_json_strings();
    test_vmath();
    test_vgelu();
    test_row_size();
    test_percentile();
    test_blur();
    return t_done("test_core_numeric");
}
