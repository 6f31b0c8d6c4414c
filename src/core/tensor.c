/* Tensors: shape bookkeeping and buffer reuse. */
#include "core.h"

/* No single tensor may exceed this many elements (2^40 floats = 4 TiB): a forged dimension in a
 * file must fail here, not in malloc. */
#define SAL_MAX_NUMEL ((int64_t)1 << 40)

bool sal_shape_numel(int ndim, const int64_t *dim, int64_t *out) {
    int64_t n = 1;
    if (ndim < 0 || ndim > SAL_MAX_DIMS) return false;
    for (int i = 0; i < ndim; i++) {
        if (dim[i] < 0) return false;
        if (dim[i] != 0 && n > SAL_MAX_NUMEL / dim[i]) return false;
        n *= dim[i];
    }
    *out = n;
    return true;
}

size_t sal_dtype_size(sal_dtype dt) { return dt == SAL_I64 ? 8 : dt == SAL_BOOL ? 1 : 4; }

const char *sal_dtype_name(sal_dtype dt) {
    switch (dt) {
    case SAL_F32: return "float32";
    case SAL_I64: return "int64";
    case SAL_BOOL: return "bool";
    }
    /* a value no tensor should hold: a thread-local buffer keeps the message meaningful */
    static _Thread_local char buf[32];
    snprintf(buf, sizeof buf, "unknown (%d)", (int)dt);
    return buf;
}

int64_t sal_tensor_numel(const sal_tensor *t) {
    int64_t n = 0;
    return sal_shape_numel(t->ndim, t->dim, &n) ? n : 0;
}

const char *sal_shape_str(int ndim, const int64_t *dim, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)dim[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

static sal_status alloc(sal_tensor *t, sal_dtype dtype, int ndim, const int64_t *dim, bool zero) {
    int64_t numel;
    char sb[160];
    if (!sal_shape_numel(ndim, dim, &numel))
        return sal_fail(SAL_ERR_SHAPE, "invalid tensor shape %s", sal_shape_str(ndim, dim, sb, sizeof sb));
    size_t bytes = (size_t)numel * sal_dtype_size(dtype);
    /* an empty tensor gets a (1-byte) buffer too: kernels may then form `data + 0` on any
     * tensor, which on a NULL pointer would be undefined behaviour */
    if (t->cap < bytes || (t->cap == 0 && t->data) || !t->data) {
        /* checked here rather than left to sal_calloc so the message can say what was asked for */
        if (!sal_budget_fits(bytes)) {
            char what[200];
            snprintf(what, sizeof what, "a tensor of shape %s", sal_shape_str(ndim, dim, sb, sizeof sb));
            return sal_budget_check(bytes, what);
        }
        void *p = sal_malloc64(bytes);
        if (p && zero) memset(p, 0, bytes);
        if (!p)
            return sal_fail(SAL_ERR_NOMEM, "cannot allocate %zu bytes for a tensor of shape %s", bytes,
                            sal_shape_str(ndim, dim, sb, sizeof sb));
        if (t->cap) sal_free(t->data);
        t->data = p;
        t->cap = bytes ? bytes : 1;
    } else if (bytes && zero) {
        memset(t->data, 0, bytes);
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->dim[i] = dim[i];
    return SAL_OK;
}

sal_status sal_tensor_alloc(sal_tensor *t, sal_dtype dtype, int ndim, const int64_t *dim) {
    return alloc(t, dtype, ndim, dim, true);
}

sal_status sal_tensor_alloc_raw(sal_tensor *t, sal_dtype dtype, int ndim, const int64_t *dim) {
    return alloc(t, dtype, ndim, dim, false);
}

void sal_tensor_free(sal_tensor *t) {
    if (!t) return;
    if (t->cap) sal_free(t->data);
    memset(t, 0, sizeof *t);
}

sal_tensor sal_tensor_view(const sal_tensor *t) {
    sal_tensor v = *t;
    v.cap = 0;
    return v;
}

bool sal_tensor_same_shape(const sal_tensor *a, const sal_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

int64_t sal_row_size(const sal_tensor *x) {
    int64_t r = 1;
    for (int d = 1; d < x->ndim; d++) r *= x->dim[d];
    return r;
}

sal_status sal_tensor_copy(sal_tensor *dst, const sal_tensor *src) {
    SAL_TRY(sal_tensor_alloc(dst, src->dtype, src->ndim, src->dim));
    size_t bytes = (size_t)sal_tensor_numel(src) * sal_dtype_size(src->dtype);
    if (bytes) memcpy(dst->data, src->data, bytes);
    return SAL_OK;
}
