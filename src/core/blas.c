/* OpenBLAS, loaded at run time.
 *
 * Why dlopen: OpenBLAS 0.3.21 picks its kernels when it is loaded, from OPENBLAS_CORETYPE, and on
 * AVX-512 CPUs it falls back to Haswell kernels, about 1.8x slower than its SkylakeX ones (see
 * docs/performance.md). A library linked the ordinary way is loaded before main() runs, too early to
 * choose. Loading it here lets any program using libsaliency get the fast kernels. We also prefer the
 * OpenMP build of OpenBLAS, which shares our OpenMP thread pool instead of competing with it.
 * Set SAL_BLAS_CORETYPE to force a kernel family, or to "keep" to leave OPENBLAS_CORETYPE alone.
 *
 * Products that are not tiny go to oneDNN's sgemm instead (dnnl_sgemm, from the libdnnl the
 * convolutions use): measured here on AVX-512 it runs 7 to 25% faster than OpenBLAS's SkylakeX
 * kernels on transformer shapes (197 x 2304 x 768) and 1.5 to 5x on skinny ones (16 x 1024 x 784,
 * 128 x 10 x 3136), while OpenBLAS wins below about 2^17 multiply-adds or with K < 16 (dnnl's call
 * costs a few microseconds), and with B transposed unless A has a few rows or many (Linear layers
 * exported as Gemm with transB: 50 x 1000 x 1024 takes 1.2 ms on oneDNN, 0.54 on OpenBLAS; 4 x 1024
 * x 1024 0.07 against 0.35; but the input gradients of ConvNeXt's pointwise layers, 12544 x 384 x 96,
 * 2.3 ms against 3.5, and of 784 rows and K <= 1024, 2.3 against 2.5; with K = 3072 OpenBLAS wins
 * again, 2.9 against 3.7 for 196 rows). Without AVX-512 (Zen 3, OpenBLAS's Haswell kernels) oneDNN
 * wins with B transposed too: 52 x 1024 x 1024 0.95 ms against 1.29, 197 x 2304 x 768 5.1 against
 * 5.9, 3136 x 96 x 384 2.3 against 3.0 (medians of 40 calls). SAL_SGEMM=openblas keeps every
 * product on OpenBLAS (for comparisons); docs/performance.md has the figures. */
#include "core.h"
#include <dlfcn.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>

enum { RowMajor = 101, NoTrans = 111, Trans = 112 };
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                         float, float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef char *(*str_fn)(void);

static sgemm_fn g_sgemm;
static sgemv_fn g_sgemv;
static char g_info[256];
static sal_status g_status = SAL_ERR_INTERNAL;
static char g_err[512];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_dnnl = true;     /* large products through dnnl_sgemm */
static bool g_dnnl_nt = false; /* with B transposed too (below SkylakeX's kernels: Haswell's) */

bool sal_portable_kernels;

bool sal_cpu_avx512(void) {
#if defined(__x86_64__)
    static int has = -1; /* racing first calls store the same answer */
    if (has < 0) has = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return has && !sal_portable_kernels;
#else
    return false;
#endif
}

bool sal_cpu_avx2(void) {
#if defined(__x86_64__)
    static int has = -1;
    if (has < 0) has = __builtin_cpu_supports("avx2") ? 1 : 0;
    return has && !sal_portable_kernels;
#else
    return false;
#endif
}

bool sal_cpu_avx512_halves(void) {
#if defined(__x86_64__)
    static int has = -1;
    if (has < 0) {
        unsigned a, b, c, d, fam = 0;
        bool amd = __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u && d == 0x69746e65u; /* "AuthenticAMD" */
        if (amd && __get_cpuid(1, &a, &b, &c, &d)) fam = ((a >> 8) & 0xf) + ((a >> 20) & 0xff);
        has = amd && fam == 0x19 && __builtin_cpu_supports("avx512f"); /* Zen 3 and 4; Zen 3 has no AVX-512 */
    }
    return has;
#else
    return false;
#endif
}

/* Whether the CPU runs OpenBLAS's SkylakeX kernels (the AVX-512 subsets they use). */
static bool skylakex_cpu(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

static void choose_coretype(void) {
    const char *want = getenv("SAL_BLAS_CORETYPE");
    if (want && !strcmp(want, "keep")) return;
    if (want) {
        setenv("OPENBLAS_CORETYPE", want, 1);
        return;
    }
    const char *cur = getenv("OPENBLAS_CORETYPE");
    /* Only upgrade a missing or Haswell choice; any other explicit choice is the user's. */
    if (skylakex_cpu() && (!cur || !strcmp(cur, "Haswell"))) setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
}

static void load(void) {
    static const char *const libs[] = {
        "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/openblas-openmp/libopenblas.so.0",
        "libopenblas.so.0",
        "libopenblas.so",
    };
    choose_coretype();
    const char *e = getenv("SAL_SGEMM");
    g_dnnl = !(e && !strcmp(e, "openblas"));
    g_dnnl_nt = g_dnnl && !skylakex_cpu();
    void *h = NULL;
    const char *used = NULL;
    for (size_t i = 0; i < sizeof libs / sizeof libs[0] && !h; i++)
        if ((h = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL))) used = libs[i];
    if (!h) {
        snprintf(g_err, sizeof g_err,
                 "cannot load OpenBLAS (%s); install it: apt-get install libopenblas0-openmp", dlerror());
        g_status = SAL_ERR_IO;
        return;
    }
    g_sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
    g_sgemv = (sgemv_fn)dlsym(h, "cblas_sgemv");
    if (!g_sgemm || !g_sgemv) {
        snprintf(g_err, sizeof g_err, "%s lacks cblas_sgemm or cblas_sgemv", used);
        g_status = SAL_ERR_IO;
        return;
    }
    str_fn core = (str_fn)dlsym(h, "openblas_get_corename");
    str_fn cfg = (str_fn)dlsym(h, "openblas_get_config");
    snprintf(g_info, sizeof g_info, "%s [%s] %s%s", cfg ? cfg() : "OpenBLAS", core ? core() : "?", used,
             g_dnnl ? "; larger sgemm: oneDNN" : "");
    g_status = SAL_OK;
    /* The handle stays open for the life of the process, as a linked library would. */
}

sal_status sal_blas_init(void) {
    pthread_once(&g_once, load);
    if (g_status != SAL_OK) return sal_fail(g_status, "%s", g_err);
    return SAL_OK;
}

const char *sal_blas_info(void) { return g_info; }

/* c[0..n) += w0 r0 + w1 r1 + w2 r2 + w3 r3, compiled for AVX-512 and AVX2 as well, chosen at load */
SAL_CLONES void axpy4(int n, float *restrict c, const float *w, const float *const *r) {
    const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
    float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
#pragma omp simd
    for (int j = 0; j < n; j++) c[j] += w0 * r0[j] + w1 * r1[j] + w2 * r2[j] + w3 * r3[j];
}

/* c[j] = alpha (a . B[j, :]) + beta c[j] for j < N: a (K, stride inca), B (N, K) row-major */
SAL_CLONES void rows_dot(int N, int K, float alpha, const float *a, int inca, const float *B, int ldb, float beta,
                         float *c) {
    for (int j = 0; j < N; j++) {
        const float *b = B + (size_t)j * ldb;
        float s = 0.0f;
        if (inca == 1) {
#pragma omp simd reduction(+ : s)
            for (int k = 0; k < K; k++) s += a[k] * b[k];
        } else {
            for (int k = 0; k < K; k++) s += a[(size_t)k * inca] * b[k];
        }
        c[j] = alpha * s + (beta != 0.0f ? beta * c[j] : 0.0f);
    }
}

void sal_axpy4(int n, float *c, const float *w, const float *const *r) { axpy4(n, c, w, r); }

/* Thread t of nt's share of rows_axpy: its rows of B into its copy of c, then its columns of the copies
 * summed into c. */
static void rows_share(int t, int nt, int N, int K, float alpha, const float *a, int inca, const float *B, int ldb,
                       float beta, float *c, float *part) {
    float *cc = t == 0 ? c : part + (size_t)(t - 1) * (size_t)N;
    if (t == 0 && beta != 0.0f) {
        if (beta != 1.0f)
            for (int j = 0; j < N; j++) c[j] *= beta;
    } else {
        memset(cc, 0, sizeof *cc * (size_t)N);
    }
    int k0 = (int)((int64_t)K * t / nt), k1 = (int)((int64_t)K * (t + 1) / nt);
    const float *r[4];
    float w[4];
    int q = 0;
    for (int k = k0; k < k1; k++) {
        float v = a[(size_t)k * inca];
        if (v == 0.0f) continue;
        r[q] = B + (size_t)k * ldb;
        w[q++] = alpha * v;
        if (q == 4) axpy4(N, cc, w, r), q = 0;
    }
    for (int i = 0; i < q; i++) { /* the last rows, fewer than four */
        const float *ri = r[i];
#pragma omp simd
        for (int j = 0; j < N; j++) cc[j] += w[i] * ri[j];
    }
    if (nt == 1) return;
#pragma omp barrier
    int j0 = (int)((int64_t)N * t / nt), j1 = (int)((int64_t)N * (t + 1) / nt);
    for (int u = 1; u < nt; u++)
        for (int j = j0; j < j1; j++) c[j] += part[(size_t)(u - 1) * (size_t)N + j];
}

/* c (N) = alpha a B + beta c for a row a (K, stride inca) and row-major B (K,N), visiting only
 * the rows of B whose a[k] is not zero. Batch-1 dense layers are bound by reading B; after a ReLU
 * about half of a gradient's (or an activation's) entries are zero, and skipping their rows halves
 * that traffic (measured: 1.5x at half zeros, as fast as sgemv when dense). Each thread takes a
 * range of rows and streams them whole into its own copy of c (which stays in L1); the copies are
 * summed at the end. Four rows per sweep keep the loads ahead of the stores.
 * Returns false, doing nothing, when a is nearly dense and sgemv should do the product. */
static bool rows_axpy(int N, int K, float alpha, const float *a, int inca, const float *B, int ldb, float beta,
                      float *c) {
    int nz = 0;
    for (int k = 0; k < K; k++) nz += a[(size_t)k * inca] != 0.0f;
    if (nz > K - K / 8) return false; /* (nearly) dense: sgemv is as fast */
    int T = (int64_t)nz * N >= 1 << 15 ? omp_get_max_threads() : 1;
    if (T > 8) T = 8;
    float *part = T > 1 ? malloc(sizeof *part * (size_t)N * (size_t)(T - 1)) : NULL;
    if (!part) T = 1;
    if (T == 1) { /* no parallel region: see SAL_PAR_FOR */
        rows_share(0, 1, N, K, alpha, a, inca, B, ldb, beta, c, NULL);
        return true;
    }
#pragma omp parallel num_threads(T)
    rows_share(omp_get_thread_num(), omp_get_num_threads(), N, K, alpha, a, inca, B, ldb, beta, c, part);
    free(part);
    return true;
}

/* o[0..4) = the dot products of y[0..n) with rows r[0..4): four sums in flight at once */
SAL_CLONES void dot4(int n, const float *restrict y, const float *const *r, float *o) {
    const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int j = 0; j < n; j++) {
        float v = y[j];
        s0 += v * r0[j], s1 += v * r1[j], s2 += v * r2[j], s3 += v * r3[j];
    }
    o[0] = s0, o[1] = s1, o[2] = s2, o[3] = s3;
}

static bool row_needed(const float *m0, const float *m1, int k) { return m0[k] > 0.0f || (m1 && m1[k] > 0.0f); }

/* Thread t of nt's rows of sal_rows_dot_masked: the range of k that rows_share gives the same thread,
 * so that a row the forward product streamed into this core's cache is read from there. */
static void dots_share(int t, int nt, int N, int K, float alpha, const float *y, const float *R, int ldr,
                       const float *m0, const float *m1, bool add, float *out) {
    int k0 = (int)((int64_t)K * t / nt), k1 = (int)((int64_t)K * (t + 1) / nt), idx[4], q = 0;
    const float *r[4];
    float o[4];
    for (int k = k1 - 1; k >= k0 - 1; k--) { /* backwards: the forward's last rows are the likeliest in cache */
        if (k >= k0 && !row_needed(m0, m1, k)) {
            if (!add) out[k] = 0.0f;
            continue;
        }
        if (k >= k0) idx[q] = k, r[q++] = R + (size_t)k * (size_t)ldr;
        if (q == 0 || (q < 4 && k >= k0)) continue;
        for (int i = q; i < 4; i++) r[i] = r[0]; /* the last rows, fewer than four */
        dot4(N, y, r, o);
        for (int i = 0; i < q; i++) out[idx[i]] = alpha * o[i] + (add ? out[idx[i]] : 0.0f);
        q = 0;
    }
}

bool sal_rows_dot_masked(int N, int K, float alpha, const float *y, const float *R, int ldr, const float *m0,
                         const float *m1, bool add, float *out) {
    int nz = 0;
    for (int k = 0; k < K; k++) nz += row_needed(m0, m1, k);
    if (nz > K - K / 8) return false; /* nearly all rows: the plain product reads as much (rows_axpy) */
    int T = (int64_t)nz * N >= 1 << 15 ? omp_get_max_threads() : 1; /* as rows_axpy */
    if (T > 8) T = 8;
    if (T == 1) { /* no parallel region: see SAL_PAR_FOR */
        dots_share(0, 1, N, K, alpha, y, R, ldr, m0, m1, add, out);
        return true;
    }
#pragma omp parallel num_threads(T)
    dots_share(omp_get_thread_num(), omp_get_num_threads(), N, K, alpha, y, R, ldr, m0, m1, add, out);
    return true;
}

void sal_sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    SAL_ASSERT(g_sgemm); /* callers run sal_blas_init() when a session is made */
    if (M == 0 || N == 0) return;
    /* A single row or column is a matrix-vector product: sgemm would pack the whole matrix first,
     * which dominates batch-1 dense layers (bandwidth-bound on the weights). */
    if (M == 1 && !transB && rows_axpy(N, K, alpha, A, transA ? lda : 1, B, ldb, beta, C)) return;
    if (M == 1 && transB && (int64_t)N * K <= 32768) { /* a classifier's head, 1024 -> 10: OpenBLAS's two
                                                         * threads took 3.2 us, a dot product a row 0.5 */
        rows_dot(N, K, alpha, A, transA ? lda : 1, B, ldb, beta, C);
        return;
    }
    if (M == 1) { /* C^T = op(B)^T op(A)^T; op(A) is a row of K, stride 1 or lda */
        g_sgemv(RowMajor, transB ? NoTrans : Trans, transB ? N : K, transB ? K : N, alpha, B, ldb, A,
                transA ? lda : 1, beta, C, 1);
        return;
    }
    if (N == 1) { /* C = op(A) op(B); op(B) is a column of K, stride ldb or 1 */
        g_sgemv(RowMajor, transA ? Trans : NoTrans, transA ? K : M, transA ? M : K, alpha, A, lda, B,
                transB ? 1 : ldb, beta, C, ldc);
        return;
    }
    if (g_dnnl && K >= 16 && (int64_t)M * N * K >= (1 << 17) &&
        (!transB || g_dnnl_nt || M < 8 || (M >= 768 && K <= 1024)) &&
        dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) ==
            dnnl_success)
        return;
    g_sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, M, N, K, alpha, A, lda, B,
            ldb, beta, C, ldc);
}
