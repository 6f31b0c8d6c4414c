/* exp and erf over arrays, written so that the compiler vectorizes them (no libm calls inside the
 * loops), and compiled for AVX-512, AVX2 and the baseline, picked at load time: Softmax, GELU and
 * the exponential activations spend most of their time in these functions, and libm's scalar expf
 * and erff cost 5 to 20 ns an element. Both stay within a few float ulps of the exact values
 * (tests/test_core_numeric.c checks against libm in double over the whole range). */
#include "core.h"
#include <math.h>

static inline float bits_to_float(int32_t i) {
    float f;
    __builtin_memcpy(&f, &i, sizeof f);
    return f;
}

/* e^x: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two parts, so r is exact to float), e^r
 * from Cephes' degree-6 polynomial, and 2^n applied in two halves so that results in the
 * subnormal range underflow gradually and large ones overflow to infinity. NaN stays NaN. */
static inline float exp1(float x) {
    float c = x > 88.8f ? 88.8f : x < -104.0f ? -104.0f : x; /* comparisons keep NaN */
    float t = c * 1.44269504088896341f + 12582912.0f;        /* round to nearest by the float sum */
    float n = t - 12582912.0f;
    float r = c - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    /* NaN (e is NaN already) takes k = 0: converting NaN to an integer is undefined behaviour */
    int32_t k = (int32_t)(n == n ? n : 0.0f), h = k / 2;
    uint32_t s1 = (uint32_t)(h + 127) << 23, s2 = (uint32_t)(k - h + 127) << 23; /* unsigned: no UB on NaN's k */
    return e * bits_to_float((int32_t)s1) * bits_to_float((int32_t)s2);
}

SAL_CLONES void vexp(float *y, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = exp1(x[i]);
}

void sal_vexp(float *y, const float *x, int64_t n) { vexp(y, x, n); }

/* e^(q - z - zl) for z exact and zl small beside it (z + zl a square known to twice float's
 * precision): far out (z ~ 70 for GELU at x = -12) the float rounding of q - z - zl alone would cost
 * 1e-5 of the result, so the rounding errors of both subtractions (Fast2Sum each, exact as |z| >=
 * |q| and |q - z| >= |zl| wherever it matters) go into it as a first-order factor (left out for an
 * infinite z, where they are NaN). */
static inline float exp_sq(float q, float z, float zl) {
    float s1 = q - z, s = s1 - zl, c = (q - (s1 + z)) + ((s1 - s) - zl);
    return exp1(s) * (1.0f + (z < 1e30f ? c : 0.0f));
}

/* erfc(a) for a >= 0 from the Chebyshev fit of Numerical Recipes (relative error below 1.2e-7):
 * t e^(q(t) - a^2) with t = 1 / (1 + a / 2), q(t) in [-1.2656, 0]. */
static inline float erfc_q(float t) {
    float q = 0.17087277f;
    q = q * t - 0.82215223f;
    q = q * t + 1.48851587f;
    q = q * t - 1.13520398f;
    q = q * t + 0.27886807f;
    q = q * t - 0.18628806f;
    q = q * t + 0.09678418f;
    q = q * t + 0.37409196f;
    q = q * t + 1.00002368f;
    return q * t - 1.26551223f;
}

/* z + zl is a^2 as exp_sq takes it */
static inline float erfc1(float a, float z, float zl) {
    float t = 1.0f / (1.0f + 0.5f * a);
    return t * exp_sq(erfc_q(t), z, zl);
}

/* x^2 / 2 = h + l, h exact: x's upper 12 significant bits (xh) square exactly, and so do the
 * products with the lower part, so l is all that rounds. Needs no FMA, so every clone gets it. */
static inline float half_sq(float x, float *l) {
    int32_t b;
    __builtin_memcpy(&b, &x, sizeof b);
    float xh = bits_to_float(b & ~0xfff), xl = x - xh;
    *l = xh * xl + 0.5f * xl * xl;
    return 0.5f * xh * xh;
}

/* erf: below 0.5 in magnitude its Taylor series to x^15 (the next term is under 1e-9 of erf(x));
 * above, 1 - erfc. */
static inline float erf1(float x) {
    float a = x < 0 ? -x : x, z = x * x;
    float s = -1.0f / 75600.0f; /* x^15 / (7! 15) with the sign, then down to x */
    s = s * z + 1.0f / 9360.0f;
    s = s * z - 1.0f / 1320.0f;
    s = s * z + 1.0f / 216.0f;
    s = s * z - 1.0f / 42.0f;
    s = s * z + 1.0f / 10.0f;
    s = s * z - 1.0f / 3.0f;
    s = s * z + 1.0f;
    float small = 1.1283791670955126f * x * s;
    float big = 1.0f - erfc1(a, z, 0.0f); /* 1 - erfc: erfc's rounding of a^2 is far below erf's ulp */
    big = x < 0 ? -big : big;
    return a < 0.5f ? small : big;
}

SAL_CLONES void verf(float *y, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = erf1(x[i]);
}

void sal_verf(float *y, const float *x, int64_t n) { verf(y, x, n); }

SAL_CLONES double sum_d(const float *x, int64_t n) {
    double w = 0;
#pragma omp simd reduction(+ : w)
    for (int64_t i = 0; i < n; i++) w += x[i];
    return w;
}

double sal_sum_d(const float *x, int64_t n) { return sum_d(x, n); }

SAL_CLONES void vadd(float *restrict d, const float *restrict g, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) d[i] += g[i];
}

void sal_vadd(float *d, const float *g, int64_t n) { vadd(d, g, n); }

/* GELU, exact (x Phi(x)) or with tanh as ONNX's approximate="tanh"; the gradient from x alone, so
 * the backward needs no forward output. tanh(u) = sign(u) (1 - e) / (1 + e) with e = exp(-2|u|). */
#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_C 0.044715f

/* e^q for q in erfc_q's range [-1.2656, 0]: 0.53125 e^d with d = q - ln 0.53125 in [-0.633, 0.633],
 * from a polynomial fitted to its relative error (1.3e-8 with float coefficients). Centred so that
 * its sum does not cancel (about q = -1.2 a polynomial in q itself lost 2.6e-7 to rounding), and on
 * a constant that floats hold exactly. */
static inline float exp_q(float q) {
    float d = q + 0.6325225587f, p = 1.049858913e-04f;
    p = p * d + 7.478080693e-04f;
    p = p * d + 4.427743246e-03f;
    p = p * d + 2.213317434e-02f;
    p = p * d + 8.854155653e-02f;
    p = p * d + 2.656251410e-01f;
    p = p * d + 0.53125f;
    return p * d + 0.53125f;
}

/* Phi(x) = erfc(-x / sqrt 2) / 2, with z + zl = x^2 / 2 from half_sq: one branch in every lane,
 * and Phi keeps its relative accuracy in the negative tail, where 1 + erf(x / sqrt 2) would cancel. */
static inline float phi_cdf(float x, float z, float zl) {
    float h = 0.5f * erfc1((x < 0 ? -x : x) * 0.70710678118654752f, z, zl); /* a^2 from x: a is rounded */
    return x < 0 ? h : 1.0f - h;
}

static inline float tanh1(float u) {
    float e = exp1(-2.0f * (u < 0 ? -u : u)), t = (1.0f - e) / (1.0f + e);
    return u < 0 ? -t : t;
}

SAL_CLONES void vgelu(float *y, const float *x, int64_t n, bool tanh_form) {
    if (tanh_form) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanh1(GELU_K * (v + GELU_C * v * v * v)));
        }
        return;
    }
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float zl, z = half_sq(x[i], &zl);
        y[i] = x[i] * phi_cdf(x[i], z, zl);
    }
}

static inline float gelu_tanh_d(float v) {
    float t = tanh1(GELU_K * (v + GELU_C * v * v * v));
    return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * v * v);
}

/* Phi(x) + x phi(x) from z + zl = x^2 / 2 (half_sq, called in each loop: clang vectorizes those
 * loops only with its out-parameter in the loop's own body). phi is e^-z over sqrt(2 pi), and Phi's
 * erfc, t e^(q - z), is taken as t e^q e^-z, so that one exp serves both (1.7x faster than two);
 * the forward keeps e^(q - z) whole, whose fewer roundings hold its error under 5e-7 where the
 * product's came to 5.4e-7 without FMA (clang's AVX2 clone). Below x = -13.2, where e^-z is
 * subnormal, the result (under 1e-37) keeps fewer digits. */
static inline __attribute__((always_inline)) float gelu_d(float v, float z, float zl) {
    float t = 1.0f / ((v < 0 ? -v : v) * 0.35355339059327376f + 1.0f); /* 1 / (1 + a / 2), a = |x| / sqrt 2 */
    float e = exp_sq(0.0f, z, zl), h = 0.5f * t * exp_q(erfc_q(t)) * e;
    return (v < 0 ? h : 1.0f - h) + v * e * 0.3989422804014327f;
}

/* set: dx is written, not added to (a fresh gradient buffer: no zeroing pass, no read of it) */
SAL_CLONES void vgelu_grad(float *dx, const float *dy, const float *x, int64_t n, bool tanh_form, bool set) {
    if (tanh_form && set) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * gelu_tanh_d(x[i]);
    } else if (tanh_form) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * gelu_tanh_d(x[i]);
    } else if (set) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float v = x[i], zl, z = half_sq(v, &zl);
            dx[i] = dy[i] * gelu_d(v, z, zl);
        }
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float v = x[i], zl, z = half_sq(v, &zl);
            dx[i] += dy[i] * gelu_d(v, z, zl);
        }
    }
}

void sal_vgelu(float *y, const float *x, int64_t n, bool tanh_form) { vgelu(y, x, n, tanh_form); }
void sal_vgelu_grad(float *dx, const float *dy, const float *x, int64_t n, bool tanh_form, bool set) {
    vgelu_grad(dx, dy, x, n, tanh_form, set);
}

/* Softmax along rows of len contiguous floats (attention's last axis): y = exp(x - max) / sum, the
 * sum in double; logsm: x - max - log(sum). One pass per row after the maximum, so that short rows
 * (Swin's 49) do not pay a call and a loop prologue per step. Maxima skip NaN as fmaxf would. An
 * entry more than SM_FLUSH below the maximum takes exp 0 instead of a subnormal (at most 1.6e-38
 * of the maximum's 1): each subnormal result cost a microcode assist, and Swin's shifted windows
 * add -100 to the masked scores, which made its Softmax five times slower in those blocks. */
#define SM_FLUSH 87.0f /* e^-87 = 1.6e-38, still a normal float (FLT_MIN is 1.2e-38) */
SAL_CLONES void vsoftmax(float *y, const float *x, int64_t rows, int64_t len, bool logsm) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xv = x + r * len;
        float *yv = y + r * len, m = -INFINITY, mv[16]; /* sixteen running maxima: gcc and clang vectorize them */
        for (int i = 0; i < 16; i++) mv[i] = -INFINITY;
        int64_t j0 = 0;
        for (; j0 + 16 <= len; j0 += 16)
#pragma omp simd
            for (int i = 0; i < 16; i++) mv[i] = xv[j0 + i] > mv[i] ? xv[j0 + i] : mv[i];
        for (int64_t j = j0; j < len; j++) m = xv[j] > m ? xv[j] : m;
        for (int i = 0; i < 16; i++) m = mv[i] > m ? mv[i] : m;
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < len; j++) { /* LogSoftmax overwrites these below */
            float d = xv[j] - m, e = exp1(d < -SM_FLUSH ? -SM_FLUSH : d); /* NaN stays NaN */
            yv[j] = e;
            sum += e; /* a flushed entry's e^-87 is far below the sum's ulp (the sum is at least 1) */
        }
        if (logsm) {
            float ls = (float)log(sum);
#pragma omp simd
            for (int64_t j = 0; j < len; j++) yv[j] = xv[j] - m - ls;
        } else {
            float q = (float)(1.0 / sum), z = 0.0f * q; /* z: NaN in a row with a NaN, as every output */
#pragma omp simd
            for (int64_t j = 0; j < len; j++) yv[j] = xv[j] - m < -SM_FLUSH ? z : yv[j] * q;
        }
    }
}

/* Softmax's backward along such rows: dx = y (dy - <dy, y>), the dot product in double; set
 * (fresh) or added. */
SAL_CLONES void vsoftmax_grad(float *dx, const float *dy, const float *y, int64_t rows, int64_t len, bool fresh) {
    for (int64_t r = 0; r < rows; r++) {
        const float *g = dy + r * len, *yv = y + r * len;
        float *d = dx + r * len;
        double dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < len; j++) dot += (double)g[j] * yv[j];
        if (fresh) {
#pragma omp simd
            for (int64_t j = 0; j < len; j++) d[j] = (float)(yv[j] * (g[j] - dot));
        } else {
#pragma omp simd
            for (int64_t j = 0; j < len; j++) d[j] += (float)(yv[j] * (g[j] - dot));
        }
    }
}

void sal_vsoftmax(float *y, const float *x, int64_t rows, int64_t len, bool logsm) { vsoftmax(y, x, rows, len, logsm); }
void sal_vsoftmax_grad(float *dx, const float *dy, const float *y, int64_t rows, int64_t len, bool fresh) {
    vsoftmax_grad(dx, dy, y, rows, len, fresh);
}
