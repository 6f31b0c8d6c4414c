/* exp and erf over arrays, written so that the compiler vectorizes them (no libm calls inside the
 * loops), and compiled for AVX-512, AVX2 and the baseline, picked at load time: Softmax, GELU and
 * the exponential activations spend most of their time in these functions, and libm's scalar expf
 * and erff cost 5 to 20 ns an element. Both stay within a few float ulps of the exact values
 * (tests/test_core_numeric.c checks against libm in double over the whole range). */
#include "core.h"

/* The clones are static and the exported functions plain wrappers: clang 14 names the resolver of
 * an external target_clones function differently from GCC, so calls from other files do not link. */
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default"))) static

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

CLONES void vexp(float *y, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = exp1(x[i]);
}

void sal_vexp(float *y, const float *x, int64_t n) { vexp(y, x, n); }

/* erf: below 0.5 in magnitude its Taylor series to x^15 (the next term is under 1e-9 of erf(x));
 * above, 1 - erfc with erfc from the Chebyshev fit of Numerical Recipes (relative error below
 * 1.2e-7), whose exp is exp1. */
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
    float t = 1.0f / (1.0f + 0.5f * a);
    float q = 0.17087277f;
    q = q * t - 0.82215223f;
    q = q * t + 1.48851587f;
    q = q * t - 1.13520398f;
    q = q * t + 0.27886807f;
    q = q * t - 0.18628806f;
    q = q * t + 0.09678418f;
    q = q * t + 0.37409196f;
    q = q * t + 1.00002368f;
    q = q * t - 1.26551223f;
    float big = 1.0f - t * exp1(-z + q);
    big = x < 0 ? -big : big;
    return a < 0.5f ? small : big;
}

CLONES void verf(float *y, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = erf1(x[i]);
}

void sal_verf(float *y, const float *x, int64_t n) { verf(y, x, n); }

/* GELU, exact (x Phi(x)) or with tanh as ONNX's approximate="tanh"; the gradient from x alone, so
 * the backward needs no forward output. tanh(u) = sign(u) (1 - e) / (1 + e) with e = exp(-2|u|). */
#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_C 0.044715f

static inline float tanh1(float u) {
    float e = exp1(-2.0f * (u < 0 ? -u : u)), t = (1.0f - e) / (1.0f + e);
    return u < 0 ? -t : t;
}

CLONES void vgelu(float *y, const float *x, int64_t n, bool tanh_form) {
    if (tanh_form) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanh1(GELU_K * (v + GELU_C * v * v * v)));
        }
        return;
    }
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erf1(x[i] * 0.70710678118654752f));
}

CLONES void vgelu_grad(float *dx, const float *dy, const float *x, int64_t n, bool tanh_form) {
    if (tanh_form) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float v = x[i], t = tanh1(GELU_K * (v + GELU_C * v * v * v));
            dx[i] += dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * v * v));
        }
        return;
    }
#pragma omp simd /* Phi(x) + x phi(x) */
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float phi = v * exp1(-0.5f * v * v) * 0.3989422804014327f;
        dx[i] += dy[i] * (0.5f * (1.0f + erf1(v * 0.70710678118654752f)) + phi);
    }
}

void sal_vgelu(float *y, const float *x, int64_t n, bool tanh_form) { vgelu(y, x, n, tanh_form); }
void sal_vgelu_grad(float *dx, const float *dy, const float *x, int64_t n, bool tanh_form) {
    vgelu_grad(dx, dy, x, n, tanh_form);
}
