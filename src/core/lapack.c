/* LAPACK, loaded at run time.
 *
 * Why dlopen, as for OpenBLAS (blas.c): linking -llapacke loads Debian's liblapack.so.3 at start-up,
 * which the alternatives system points at the pthreads build of OpenBLAS. The process would then
 * hold two OpenBLAS copies: the pthreads one with its own thread pool (the oversubscription that
 * docs/performance.md measured) beside the OpenMP one blas.c chose. Loaded here, after
 * sal_blas_init, liblapack.so.3's need for libopenblas.so.0 is met by the copy already loaded, so
 * LAPACK's own BLAS calls run on the OpenMP pool and the fast kernels. */
#include "lapack.h"
#include <dlfcn.h>
#include <lapacke.h>
#include <pthread.h>

static __typeof__(LAPACKE_dgelsd) *g_gelsd;
static __typeof__(LAPACKE_dgbsv) *g_gbsv;
static sal_status g_status = SAL_ERR_INTERNAL;
static char g_err[512];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void load(void) {
    g_status = SAL_ERR_IO;
    if (sal_blas_init() != SAL_OK) {
        snprintf(g_err, sizeof g_err, "LAPACK needs OpenBLAS: %s", sal_last_error());
        return;
    }
    void *h = dlopen("liblapacke.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("liblapacke.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(g_err, sizeof g_err, "cannot load LAPACKE (%s); install it: apt-get install liblapacke-dev",
                 dlerror());
        return;
    }
    g_gelsd = (__typeof__(LAPACKE_dgelsd) *)dlsym(h, "LAPACKE_dgelsd");
    g_gbsv = (__typeof__(LAPACKE_dgbsv) *)dlsym(h, "LAPACKE_dgbsv");
    if (!g_gelsd || !g_gbsv) {
        snprintf(g_err, sizeof g_err, "liblapacke lacks LAPACKE_dgelsd or LAPACKE_dgbsv");
        return;
    }
    g_status = SAL_OK; /* the handle stays open for the life of the process */
}

sal_status sal_lapack_init(void) {
    pthread_once(&g_once, load);
    if (g_status != SAL_OK) return sal_fail(g_status, "%s", g_err);
    return SAL_OK;
}

/* A negative info: LAPACKE's own workspace or transposed copies could not be allocated, or a bug. */
static sal_status bad_info(const char *routine, lapack_int info) {
    if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
        return sal_fail(SAL_ERR_NOMEM, "%s: out of memory for LAPACK's workspace", routine);
    return sal_fail(SAL_ERR_INTERNAL, "%s: argument %d is invalid", routine, (int)-info);
}

sal_status sal_lapack_gelsd(int m, int n, double *A, double *b, double rcond, int *rank) {
    SAL_TRY(sal_lapack_init());
    int k = m < n ? m : n;
    double *s = sal_malloc((size_t)(k > 0 ? k : 1) * sizeof *s);
    if (!s) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    lapack_int r = 0, info = g_gelsd(LAPACK_ROW_MAJOR, m, n, 1, A, n, b, 1, s, rcond, &r);
    sal_free(s);
    if (info < 0) return bad_info("dgelsd", info);
    if (info > 0) return sal_fail(SAL_ERR_NUMERIC, "dgelsd: the SVD did not converge");
    if (rank) *rank = (int)r;
    return SAL_OK;
}

sal_status sal_lapack_gbsv(int n, int kl, int ku, int nrhs, double *ab, double *b) {
    SAL_TRY(sal_lapack_init());
    lapack_int *piv = sal_malloc((size_t)(n > 0 ? n : 1) * sizeof *piv);
    if (!piv) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    lapack_int info = g_gbsv(LAPACK_COL_MAJOR, n, kl, ku, nrhs, ab, 2 * kl + ku + 1, piv, b, n);
    sal_free(piv);
    if (info < 0) return bad_info("dgbsv", info);
    if (info > 0) return sal_fail(SAL_ERR_NUMERIC, "dgbsv: the banded system is singular");
    return SAL_OK;
}
