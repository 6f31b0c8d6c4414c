/* OpenBLAS, loaded at run time.
 *
 * Why dlopen: OpenBLAS 0.3.21 picks its kernels when it is loaded, from OPENBLAS_CORETYPE, and on
 * AVX-512 CPUs it falls back to Haswell kernels, about 1.8x slower than its SkylakeX ones (see
 * docs/performance.md). A library linked the ordinary way is loaded before main() runs, too early to
 * choose. Loading it here lets any program using libsaliency get the fast kernels. We also prefer the
 * OpenMP build of OpenBLAS, which shares our OpenMP thread pool instead of competing with it.
 * Set SAL_BLAS_CORETYPE to force a kernel family, or to "keep" to leave OPENBLAS_CORETYPE alone. */
#include "core.h"
#include <dlfcn.h>
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

static void choose_coretype(void) {
    const char *want = getenv("SAL_BLAS_CORETYPE");
    if (want && !strcmp(want, "keep")) return;
    if (want) {
        setenv("OPENBLAS_CORETYPE", want, 1);
        return;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    const char *cur = getenv("OPENBLAS_CORETYPE");
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    /* Only upgrade a missing or Haswell choice; any other explicit choice is the user's. */
    if (avx512 && (!cur || !strcmp(cur, "Haswell"))) setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
#endif
}

static void load(void) {
    static const char *const libs[] = {
        "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/openblas-openmp/libopenblas.so.0",
        "libopenblas.so.0",
        "libopenblas.so",
    };
    choose_coretype();
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
    snprintf(g_info, sizeof g_info, "%s [%s] %s", cfg ? cfg() : "OpenBLAS", core ? core() : "?", used);
    g_status = SAL_OK;
    /* The handle stays open for the life of the process, as a linked library would. */
}

sal_status sal_blas_init(void) {
    pthread_once(&g_once, load);
    if (g_status != SAL_OK) return sal_fail(g_status, "%s", g_err);
    return SAL_OK;
}

const char *sal_blas_info(void) { return g_info; }

void sal_sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    SAL_ASSERT(g_sgemm); /* callers run sal_blas_init() when a session is made */
    if (M == 0 || N == 0) return;
    /* A single row or column is a matrix-vector product: sgemm would pack the whole matrix first,
     * which dominates batch-1 dense layers (bandwidth-bound on the weights). */
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
    g_sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, M, N, K, alpha, A, lda, B,
            ldb, beta, C, ldc);
}
