/* Sobol attribution (Fel, Cadene, Chalvidal, Cord, Vigouroux & Serre 2021, "Look at the Variance!
 * Efficient Black-box Explanations with Sobol-based Sensitivity Analysis"): each segment s gets a
 * real mask value m_s in [0, 1] (element e of segment s becomes base + m_s (x - base)), and the
 * total-order Sobol index of m_s says how much of the output's variance involves it. The designs
 * are quasi-Monte-Carlo: the first n points of an unscrambled 2M-dimensional Sobol' sequence
 * (Joe & Kuo's direction numbers) give the matrices A (first M coordinates) and B (the rest), and
 * C_s is A with column s taken from B, so n (M + 2) forward passes. Jansen's estimator:
 *   ST_s = sum_j (f(A_j) - f(C_s,j))^2 / (2 n Var[f(A), f(B)]).
 * The design has no randomness: the same input gives the same bytes. */
#include "sampling.h"
#include "segments.h"
#include "sobol_table.h"
#include <math.h>

enum { BITS = 32 };

/* Direction numbers v[d][b] (BITS per dimension, as BITS-bit integers) of dimensions 0 .. D - 1, by
 * Bratley & Fox's recurrence m_i = 2 a_1 m_{i-1} ^ ... ^ 2^{s-1} a_{s-1} m_{i-s+1} ^ 2^s m_{i-s} ^ m_{i-s}
 * (the same as SciPy's Sobol). */
static void directions(int64_t D, uint32_t *v) {
    int64_t off = 0;
    for (int64_t d = 0; d < D; d++) {
        uint64_t m[BITS];
        int s = 0;
        if (d == 0) {
            for (int b = 0; b < BITS; b++) m[b] = 1;
        } else {
            unsigned p = sobol_poly[d];
            while (p >> (s + 1)) s++;
            for (int b = 0; b < s; b++) m[b] = sobol_m[off + b];
            off += s;
            for (int b = s; b < BITS; b++) {
                uint64_t nv = m[b - s];
                for (int k = 0; k < s; k++)
                    if ((p >> (s - 1 - k)) & 1) nv ^= m[b - k - 1] << (k + 1);
                m[b] = nv;
            }
        }
        for (int b = 0; b < BITS; b++) v[d * BITS + b] = (uint32_t)(m[b] << (BITS - 1 - b));
    }
}

/* Coordinate d of point i of the sequence in Gray-code order (point 0 is the origin), as SciPy's
 * Sobol(scramble=False).random() draws them. */
static double point(const uint32_t *v, int64_t i, int64_t d) {
    uint64_t g = (uint64_t)i ^ ((uint64_t)i >> 1);
    uint32_t x = 0;
    for (int b = 0; g; b++, g >>= 1)
        if (g & 1) x ^= v[d * BITS + b];
    return (double)x / 4294967296.0;
}

typedef struct {
    const uint32_t *v;
    int64_t n; /* designs */
} sobol_plan;

/* Row k of a sample: A_k (k < n), B_{k-n} (k < 2n), else C_{s,j}, s = (k - 2n) / n, j = (k - 2n) % n. */
static void sobol_coef(const sal_bb_job *j, int64_t k, float *a) {
    const sobol_plan *p = j->user;
    int64_t M = j->nseg, n = p->n;
    int64_t idx = k < n ? k : (k - n) % n, from_b = k >= n && k < 2 * n, swap = k >= 2 * n ? (k - 2 * n) / n : -1;
    for (int64_t s = 0; s < M; s++) a[s] = (float)point(p->v, idx, from_b || s == swap ? M + s : s);
}

sal_status sal_sobol_points(int64_t dims, int64_t n, double *out) {
    if (dims < 1 || dims > SOBOL_DIMS)
        return sal_fail(SAL_ERR_ARG, "Sobol' points: %lld dimensions (1 to %d)", (long long)dims, SOBOL_DIMS);
    uint32_t *v = sal_malloc((size_t)(dims * BITS) * sizeof *v);
    if (!v) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    directions(dims, v);
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < dims; d++) out[i * dims + d] = point(v, i, d);
    sal_free(v);
    return SAL_OK;
}

static sal_status run_sobol(sal_xctx *c) {
    long designs;
    SAL_TRY(sal_param_int(c, "designs", 2, 1 << 24, &designs));
    const sal_tensor *x = c->x;
    int64_t N = x->dim[0], row = sal_row_size(x), maxM = 0, n = designs;
    sal_segments seg = {0};
    sal_tensor base = {0};
    SAL_TRY(sal_segments_make(c, &seg));
    sal_status st = sal_method_baseline(c, &base);
    for (int64_t i = 0; i < N; i++) maxM = seg.nseg[i] > maxM ? seg.nseg[i] : maxM;
    if (st == SAL_OK && 2 * maxM > SOBOL_DIMS)
        st = sal_fail(SAL_ERR_ARG, "method %s: %lld segments need a %lld-dimensional design; the direction numbers "
                      "go to %d dimensions (at most %d segments: segments=grid:G or slic:K)", c->meth->name,
                      (long long)maxM, 2 * (long long)maxM, SOBOL_DIMS, SOBOL_DIMS / 2);
    uint32_t *v = sal_malloc((size_t)(2 * maxM * BITS) * sizeof *v);
    sobol_plan p = {.v = v, .n = n};
    sal_bb_job j = {.row = row, .coef = sobol_coef, .user = &p};
    j.a = sal_malloc((size_t)maxM * sizeof *j.a);
    j.value = sal_malloc((size_t)(n * (maxM + 2)) * sizeof *j.value);
    double *st_s = sal_malloc((size_t)maxM * sizeof *st_s);
    if (st == SAL_OK && (!v || !j.a || !j.value || !st_s)) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) {
        directions(2 * maxM, v);
        st = sal_tensor_alloc(&c->out, SAL_F32, x->ndim, x->dim);
    }
    for (int64_t i = 0; i < N && st == SAL_OK; i++) {
        int64_t M = seg.nseg[i];
        j.x = sal_f32(x) + i * row, j.base = sal_f32(&base) + i * row, j.label = seg.label + i * row;
        j.nseg = M, j.rows = n * (M + 2);
        st = sal_bb_run_job(c, i, &j);
        if (st != SAL_OK) break;
        const float *fa = j.value; /* f(A), then f(B) */
        double mean = 0, var = 0;
        for (int64_t q = 0; q < 2 * n; q++) mean += fa[q];
        mean /= (double)(2 * n);
        for (int64_t q = 0; q < 2 * n; q++) var += ((double)fa[q] - mean) * ((double)fa[q] - mean);
        var /= (double)(2 * n);
        for (int64_t s = 0; s < M; s++) {
            const float *fc = j.value + (2 + s) * n;
            double acc = 0;
            for (int64_t q = 0; q < n; q++) acc += ((double)fa[q] - fc[q]) * ((double)fa[q] - fc[q]);
            st_s[s] = var > 0 ? acc / (2 * (double)n * var) : 0; /* a constant output depends on nothing */
        }
        sal_segments_spread(j.label, row, st_s, sal_f32(&c->out) + i * row);
    }
    if (st == SAL_OK) sal_metric(c, "segments", sal_segments_mean(&seg));
    sal_segments_free(&seg);
    sal_tensor_free(&base);
    sal_free(v), sal_free(j.a), sal_free(j.value), sal_free(st_s);
    return st;
}

static const sal_param_spec k_sobol_params[] = {
    {"segments", "grid:8",
     "the features: grid:G or GHxGW (Fel et al.'s upsampled grid masks), slic:K, patch:K or HxW, pixel (= "
     "position), element, axis:K, or a .npy file of integer labels (--segments); at most 512 segments"},
    {"compactness", "10", "segments=slic:K: weight of space against colour (SLIC's m; colours span 0-100)"},
    {"designs", "32", "points n of the quasi-Monte-Carlo design (a power of two keeps Sobol' points balanced); "
                      "n (segments + 2) forward passes"},
    {"baseline", "zero",
     "what a segment masked to 0 takes: zero (the paper's inpainting), black (the data minimum), uniform "
     "(seeded), blur (see sigma), mean (of --data) or a .npy file"},
    {"sigma", "3", "baseline=blur: standard deviation of the Gaussian, in elements"},
    {"seed", "0", "baseline=uniform: random seed (the design itself is deterministic)"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_sobol = {
    .name = "sobol",
    .summary = "total-order Sobol indices of segment masks over quasi-Monte-Carlo designs (Fel et al. 2021)",
    .params = k_sobol_params,
    .run = run_sobol,
    .black_box = true,
};
