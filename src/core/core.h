/* Internal core: errors, checked allocation, tensors, hashing, random numbers, BLAS. */
#ifndef SAL_CORE_H
#define SAL_CORE_H

#include "saliency.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

/* Records a formatted message for sal_last_error() and returns st, so failures read
 * `return sal_fail(SAL_ERR_FORMAT, "%s: truncated header", path);` */
sal_status sal_fail(sal_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message ("ctx: old message") and returns st unchanged. */
sal_status sal_wrap(sal_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Programmer errors only: report file and line, then abort. Never for bad input. */
#define SAL_ASSERT(c)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: internal assertion failed: %s\n", __FILE__, __LINE__, #c);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define SAL_TRY(expr)                                                                              \
    do {                                                                                           \
        sal_status st_ = (expr);                                                                   \
        if (st_ != SAL_OK) return st_;                                                             \
    } while (0)

/* All library allocations go through these, so a memory budget and failure injection apply
 * everywhere. They return NULL on failure without setting a message; callers report. */
void *sal_malloc(size_t n);
/* sal_malloc on a 64-byte boundary (a cache line; oneDNN reads tensors in place), freed with sal_free. */
void *sal_malloc64(size_t n);
void *sal_calloc(size_t n, size_t size);
void *sal_realloc(void *p, size_t n);
void sal_free(void *p);
/* Gives the C library's free pages back to the system (glibc's malloc_trim; elsewhere nothing), for
 * after freeing large buffers that blocks of other sizes would not fill again. */
void sal_memory_trim(void);
char *sal_strdup(const char *s);
/* Test hook: make the k-th allocation from now fail (k >= 1); 0 disables. */
void sal_alloc_fail_after(long k);
/* Memory budget (public part in saliency.h). sal_malloc and friends fail, without a message, when
 * the bytes live through them would exceed it. sal_budget_fits says whether `bytes` more fit;
 * sal_budget_check fails with SAL_ERR_NOMEM and a message "<what> needs N bytes, but the memory
 * budget of B has L left", for checks made before a large allocation. */
bool sal_budget_fits(size_t bytes);
/* The size of the last allocation the budget refused (0: none since the last call), cleared: sal_fail
 * adds the budget to a SAL_ERR_NOMEM message with it. */
size_t sal_budget_refused(void);
sal_status sal_budget_check(size_t bytes, const char *what);
/* "1.5 GiB" or "512 bytes" into buf. */
const char *sal_bytes_str(uint64_t n, char *buf, size_t len);

/* Product of dims with overflow and sign checks; false if negative or over the limit. */
bool sal_shape_numel(int ndim, const int64_t *dim, int64_t *out);
size_t sal_dtype_size(sal_dtype dt);
/* "float32", "int64", "bool" ("unknown (N)" for anything else), for messages. */
const char *sal_dtype_name(sal_dtype dt);
/* Tensor sharing another's data (never freed through the view). */
/* sal_tensor_alloc without the zeroing, for outputs a kernel overwrites whole. */
sal_status sal_tensor_alloc_raw(sal_tensor *t, sal_dtype dtype, int ndim, const int64_t *dim);
sal_tensor sal_tensor_view(const sal_tensor *t);
bool sal_tensor_same_shape(const sal_tensor *a, const sal_tensor *b);
/* "(1,3,224,224)" into buf. */
const char *sal_shape_str(int ndim, const int64_t *dim, char *buf, size_t n);
/* Copies shape and data, reusing dst's buffer when possible. */
sal_status sal_tensor_copy(sal_tensor *dst, const sal_tensor *src);
/* Elements per sample of x: the product of all dims but the first (1 for a rank-1 tensor). */
int64_t sal_row_size(const sal_tensor *x);

/* Hot loops compiled three times, picked at load: AVX-512 and AVX2 each with FMA (x86-64-v4, v3; the
 * Makefile lets GCC contract a * b + c there, which ISO C mode otherwise forbids), and the baseline.
 * Clone functions must be static: clang 14 names the resolver of an external one differently from
 * GCC, so calls from other files do not link; export a plain wrapper instead. Clang 14 drops an
 * "arch=x86-64-v3" clone without a word (and would pick "arch=haswell" on Intel's Haswell alone):
 * its AVX2 clone goes by the feature, without FMA. */
#ifdef __clang__
#define SAL_CLONE_AVX2 "avx2"
#else
#define SAL_CLONE_AVX2 "arch=x86-64-v3"
#endif
#define SAL_CLONES __attribute__((target_clones("arch=x86-64-v4", SAL_CLONE_AVX2, "default"))) static

/* Eight floats in GCC's and clang's vector extensions, for clone functions: a ymm register in the
 * AVX2 and AVX-512 clones, two xmm ones in the baseline. Loads and stores need 4-byte alignment
 * only. Pass them in macros, not functions: such a vector has no one ABI across the clones. */
typedef float sal_v8 __attribute__((vector_size(32)));
typedef int sal_v8i __attribute__((vector_size(32)));
typedef float sal_v8u __attribute__((vector_size(32), aligned(4), may_alias));
#define SAL_LD8(p) ((sal_v8) * (const sal_v8u *)(p))
#define SAL_ST8(p, v) (*(sal_v8u *)(p) = (v))

/* `#pragma omp parallel for if (c)` enters the OpenMP runtime even where c is false: a team of one
 * thread costs about 1.2 us here (libgomp 12), more than a ReLU over the small CNN's 6 272 values,
 * and ten such regions took a seventh of its gradient. These run the loop given last in a parallel region
 * (pragma p, or "omp parallel for simd") only where c holds, else as a plain loop (an omp simd one).
 * The loop holds no directive of its own: a loop that needs one calls an inline function. */
#define SAL_PAR_FOR(c, p, ...)                                                                                         \
    do {                                                                                                               \
        if (c) {                                                                                                       \
            _Pragma(p) __VA_ARGS__                                                                                     \
        } else {                                                                                                       \
            __VA_ARGS__                                                                                                \
        }                                                                                                              \
    } while (0)
#define SAL_PAR_FOR_SIMD(c, ...)                                                                                       \
    do {                                                                                                               \
        if (c) {                                                                                                       \
            _Pragma("omp parallel for simd") __VA_ARGS__                                                               \
        } else {                                                                                                       \
            _Pragma("omp simd") __VA_ARGS__                                                                            \
        }                                                                                                              \
    } while (0)

/* Runs the call given last with [lo, hi) the calling thread's equal share of [0, n) in a parallel
 * region where c holds, else once with [0, n) (the call holds the loop and its directives). */
#define SAL_PAR_SPLIT(c, n, lo, hi, ...)                                                                               \
    do {                                                                                                               \
        if (c) {                                                                                                       \
            _Pragma("omp parallel") {                                                                                  \
                int64_t t_ = omp_get_thread_num(), nt_ = omp_get_num_threads();                                       \
                int64_t lo = (n) * t_ / nt_, hi = (n) * (t_ + 1) / nt_;                                                \
                __VA_ARGS__;                                                                                           \
            }                                                                                                          \
        } else {                                                                                                       \
            int64_t lo = 0, hi = (n);                                                                                  \
            __VA_ARGS__;                                                                                               \
        }                                                                                                              \
    } while (0)

/* ---- vectorized elementwise math (vmath.c): y[i] = exp(x[i]), erf(x[i]) within a few ulps,
 * NaN kept, overflow to infinity and gradual underflow as libm; y may equal x ---- */
void sal_vexp(float *y, const float *x, int64_t n);
void sal_verf(float *y, const float *x, int64_t n);
/* sum of x[0..n) in double, the lanes' partial sums added at the end */
double sal_sum_d(const float *x, int64_t n);
/* d[0..n) += g[0..n), d and g not overlapping: the gradient routes' scatter-adds (a loop of its own
 * in each op was scalar where the compiler could not rule out the overlap) */
void sal_vadd(float *d, const float *g, int64_t n);
/* GELU (tanh_form: ONNX's approximate="tanh"), and dx[i] += dy[i] GELU'(x[i]) */
void sal_vgelu(float *y, const float *x, int64_t n, bool tanh_form);
void sal_vgelu_grad(float *dx, const float *dy, const float *x, int64_t n, bool tanh_form, bool set);
/* Softmax (logsm: LogSoftmax) along `rows` rows of len contiguous floats, and Softmax's backward
 * dx = y (dy - <dy, y>) set (fresh) or added; sums in double */
void sal_vsoftmax(float *y, const float *x, int64_t rows, int64_t len, bool logsm);
void sal_vsoftmax_grad(float *dx, const float *dy, const float *y, int64_t rows, int64_t len, bool fresh);

/* ---- numerics shared by methods, audits, feature visualization and heatmaps (numeric.c) ---- */
/* The q-th percentile (q in [0, 100]) of v[0..n), interpolating linearly between order statistics
 * (numpy's default): q = 0 gives the minimum, 100 the maximum; 0 when n <= 0. Sorts v. */
double sal_percentile(float *v, int64_t n, double q);
/* Gaussian blur of `planes` planes of H x W floats, along W and then along H (H = 1: signals):
 * kernel exp(-d^2 / (2 sigma^2)) for |d| <= ceil(3 sigma), normalized to sum 1, computed and summed
 * in double; taps beyond an edge repeat the edge value, so a constant plane stays constant.
 * sigma <= 0 copies. dst may be src. Fails only when out of memory. */
sal_status sal_gauss_blur(const float *src, float *dst, int64_t planes, int64_t H, int64_t W, double sigma);

/* String -> int map (open addressing). */
typedef struct {
    char **keys;
    int *vals;
    size_t cap, len;
} sal_strmap;
/* FNV-1a over 64-bit words (hash.c): the model hash and the patterns file's checksum. The result
 * depends on how the bytes are cut into pieces. */
#define SAL_FNV_OFFSET 0xcbf29ce484222325ULL
uint64_t sal_fnv64(uint64_t h, const void *data, size_t n);

sal_status sal_strmap_put(sal_strmap *m, const char *key, int val);
int sal_strmap_get(const sal_strmap *m, const char *key); /* -1 if absent */
void sal_strmap_free(sal_strmap *m);

/* Deterministic random numbers (xoshiro256**, seeded by splitmix64). */
typedef struct { uint64_t s[4]; } sal_rng;
void sal_rng_seed(sal_rng *r, uint64_t seed);
uint64_t sal_rng_u64(sal_rng *r);
double sal_rng_uniform(sal_rng *r); /* [0,1) */
double sal_rng_normal(sal_rng *r);

/* BLAS through OpenBLAS, loaded at first use with its fastest kernels for this CPU (see blas.c).
 * Row-major sgemm: C = alpha * op(A) op(B) + beta * C. */
sal_status sal_blas_init(void);
void sal_sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);
const char *sal_blas_info(void);
/* c[0..n) += w[0] r[0] + ... + w[3] r[3], with this CPU's widest vectors (AVX-512, AVX2) */
void sal_axpy4(int n, float *c, const float *w, const float *const *r);
/* out[k] = alpha R[k, :] . y[0..N) (plus out[k] when add) for the rows k < K where m0[k] > 0 or m1[k] > 0
 * (m1 may be NULL); the other out[k] are set to 0 (left as they are when add) and their rows not read.
 * Returns false, doing nothing, when more than seven eighths of the rows are needed.
 * A ReLU output's gradient through a dense layer needs only its active units' entries: R = the
 * layer's B^T read by rows, the same rows its batch-1 forward read (linear.c: gemm_din_masked). */
bool sal_rows_dot_masked(int N, int K, float alpha, const float *y, const float *R, int ldr, const float *m0,
                         const float *m1, bool add, float *out);

/* Whether kernels written for AVX-512 (intrinsics under a target attribute) may run: the CPU has
 * it, and sal_portable_kernels is false (tests set it to check the portable loops beside them). */
bool sal_cpu_avx512(void);
bool sal_cpu_avx2(void); /* the same for AVX2 */
/* Whether the CPU runs AVX-512 on 256-bit units, two halves an instruction (AMD's Zen 4): its
 * 512-bit kernels then do no more multiply-adds a cycle than AVX2's. */
bool sal_cpu_avx512_halves(void);
extern bool sal_portable_kernels;

double sal_now(void); /* monotonic seconds */

/* A growing string (sbuf.c): appends never fail one by one; oom tells afterwards. */
typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} sal_sbuf;
void sal_sb_printf(sal_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sal_sb_put(sal_sbuf *b, const char *s, size_t n); /* n bytes as they are */
void sal_sb_str(sal_sbuf *b, const char *s); /* a JSON string literal */
void sal_sb_num(sal_sbuf *b, double v);      /* a JSON number, null when not finite */
void sal_sb_csv(sal_sbuf *b, const char *s); /* a CSV field, quoted when needed */
void sal_sb_free(sal_sbuf *b);

#endif
