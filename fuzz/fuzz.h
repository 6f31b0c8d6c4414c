/* Shared setup of the libFuzzer targets (see docs/robustness.md).
 *
 * Every target: a memory budget far below libFuzzer's own limit, so a forged size is refused by
 * the library (the behaviour under test) rather than reported as an out-of-memory "crash" by the
 * fuzzer; one OpenMP thread, so runs are reproducible and cheap; and, for readers that only take a
 * path, the input placed in a memory-backed file. */
#ifndef SAL_FUZZ_H
#define SAL_FUZZ_H

#include "core/core.h"
#include <sys/mman.h>
#include <unistd.h>

/* Small enough that the work one input can cause (every kernel is linear or so in the memory it
 * touches) stays well inside the per-input timeout even under ASan on a loaded machine. */
#define FUZZ_BUDGET ((size_t)64 << 20)

static inline void fuzz_setup(void) {
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    sal_set_memory_budget(FUZZ_BUDGET);
}

/* A path whose file holds exactly data[0..size): one memfd rewritten for every input. Opening the
 * /proc link gives the reader a fresh file offset each time. NULL if the file cannot be written. */
static inline const char *fuzz_file(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("sal_fuzz", 0);
        if (fd < 0) return NULL;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) return NULL;
    size_t done = 0;
    while (done < size) {
        ssize_t k = pwrite(fd, data + done, size - done, (off_t)done);
        if (k <= 0) return NULL;
        done += (size_t)k;
    }
    return path;
}

/* A reader either succeeds with a well-formed tensor or fails with a message: check both. */
static inline void fuzz_check_result(sal_status st, const sal_tensor *t) {
    if (st != SAL_OK) {
        SAL_ASSERT(st < SAL_STATUS_COUNT && *sal_last_error());
        SAL_ASSERT(t->data == NULL && t->cap == 0);
        return;
    }
    int64_t n;
    SAL_ASSERT(sal_shape_numel(t->ndim, t->dim, &n));
    SAL_ASSERT(t->cap >= (size_t)n * sal_dtype_size(t->dtype));
    /* touch every byte, so a short buffer shows up under ASan */
    volatile uint8_t acc = 0;
    for (size_t i = 0; i < (size_t)n * sal_dtype_size(t->dtype); i++) acc ^= ((const uint8_t *)t->data)[i];
    (void)acc;
}

#endif
