/* torch_compare DIR: checks the library against PyTorch on one exported model.
 *
 * DIR holds what tests/torch/export_models.py writes: model.onnx, x.npy (a batch), logits.npy,
 * targets.npy (int64, one class per sample) and grad.npy = d(sum_i logits[i, targets[i]]) / dx.
 * Runs the model on x and compares the logits (max error within 1e-4 of the largest reference
 * magnitude), then the input gradient of the same one-hot seed (within 1e-3); then repeats both on
 * the first sample alone, which exercises the dynamic batch axis. Prints the worst errors; exits
 * 0 when everything matches, 1 on a mismatch, 2 when something cannot run at all. */
#include "saliency.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define LOGIT_TOL 1e-4
#define GRAD_TOL 1e-3

static int g_bad;

/* Compares n floats; reports the worst absolute error relative to the largest |ref|. */
static void compare(const char *what, const float *got, const float *ref, int64_t n, double tol) {
    double scale = 0, worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= worst)) { /* also catches NaN */
            worst = e;
            at = i;
        }
    }
    double rel = scale > 0 ? worst / scale : worst;
    bool ok = rel <= tol;
    printf("  %-24s %s  worst |diff| %.3g at [%lld] (got %.7g, torch %.7g), max |torch| %.3g, relative %.2g (tol %.0e)\n",
           what, ok ? "ok  " : "FAIL", worst, (long long)at, n ? got[at] : 0.0, n ? ref[at] : 0.0, scale, rel, tol);
    if (!ok) g_bad++;
}

static bool same_shape(const sal_tensor *a, const sal_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

/* Forward and input gradient on x; compares with logits / grad rows [0, rows). */
static int run(sal_session *s, const sal_tensor *x, const sal_tensor *logits, const sal_tensor *targets,
               const sal_tensor *grad, const char *label) {
    const sal_tensor *out[8] = {0}, *g[8] = {0};
    sal_tensor seed = {0};
    int64_t rows = x->dim[0];
    char what[64];
    if (sal_forward(s, 1, x, out) != SAL_OK) {
        printf("  %s: forward failed: %s\n", label, sal_last_error());
        return 1;
    }
    const sal_tensor *y = out[0];
    if (y->dtype != SAL_F32 || y->ndim != 2 || y->dim[0] != rows || y->dim[1] != logits->dim[1]) {
        printf("  %s: output has shape ndim %d (%lld,%lld), want (%lld,%lld)\n", label, y->ndim,
               (long long)(y->ndim > 0 ? y->dim[0] : -1), (long long)(y->ndim > 1 ? y->dim[1] : -1), (long long)rows,
               (long long)logits->dim[1]);
        return 1;
    }
    int64_t ncls = y->dim[1], per = sal_tensor_numel(x) / (rows ? rows : 1);
    snprintf(what, sizeof what, "%s logits", label);
    compare(what, sal_f32(y), sal_f32(logits), rows * ncls, LOGIT_TOL);

    if (sal_tensor_alloc(&seed, SAL_F32, 2, y->dim) != SAL_OK) {
        printf("  %s: %s\n", label, sal_last_error());
        return 1;
    }
    for (int64_t i = 0; i < rows; i++) {
        int64_t t = ((const int64_t *)targets->data)[i];
        if (t < 0 || t >= ncls) {
            printf("  %s: target %lld of sample %lld is not a class of %lld\n", label, (long long)t, (long long)i,
                   (long long)ncls);
            sal_tensor_free(&seed);
            return 1;
        }
        sal_f32(&seed)[i * ncls + t] = 1.0f;
    }
    sal_status st = sal_input_gradient(s, &seed, g);
    sal_tensor_free(&seed);
    if (st != SAL_OK) {
        printf("  %s: input gradient failed: %s\n", label, sal_last_error());
        return 1;
    }
    if (!g[0] || !same_shape(g[0], x)) {
        printf("  %s: input gradient does not have the input's shape\n", label);
        return 1;
    }
    snprintf(what, sizeof what, "%s input gradient", label);
    compare(what, sal_f32(g[0]), sal_f32(grad), rows * per, GRAD_TOL);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR   (DIR from tests/torch/export_models.py)\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    char path[4096];
    sal_tensor x = {0}, logits = {0}, targets = {0}, grad = {0}, x1 = {0};
    sal_model *m = NULL;
    sal_session *s = NULL;
    int rc = 2;
    struct {
        const char *name;
        sal_tensor *t;
    } files[] = {{"x.npy", &x}, {"logits.npy", &logits}, {"targets.npy", &targets}, {"grad.npy", &grad}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        if (sal_npy_read(path, files[i].t) != SAL_OK) {
            printf("%s\n", sal_last_error());
            goto done;
        }
    }
    if (x.dtype != SAL_F32 || x.ndim < 2 || logits.dtype != SAL_F32 || logits.ndim != 2 ||
        logits.dim[0] != x.dim[0] || targets.dtype != SAL_I64 || targets.ndim != 1 || targets.dim[0] != x.dim[0] ||
        grad.dtype != SAL_F32 || !same_shape(&grad, &x) || x.dim[0] < 1) {
        printf("%s: reference files do not fit together\n", dir);
        goto done;
    }
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    if (sal_model_load(path, &m) != SAL_OK || sal_session_new(m, &s) != SAL_OK) {
        printf("%s\n", sal_last_error());
        goto done;
    }
    if (sal_model_num_inputs(m) != 1) {
        printf("%s: expected one input, the model has %d\n", path, sal_model_num_inputs(m));
        goto done;
    }
    printf("%s: %lld parameters\n", path, (long long)sal_model_param_count(m));
    rc = run(s, &x, &logits, &targets, &grad, "batch");
    if (rc == 0) {
        /* the first sample alone: the batch axis is dynamic; this reuses the session's buffers */
        x1 = x;
        x1.cap = 0; /* a view */
        x1.dim[0] = 1;
        rc = run(s, &x1, &logits, &targets, &grad, "sample 0");
    }
    if (rc == 0) rc = g_bad ? 1 : 0;
    printf("%s: %s\n", dir, rc == 0 ? "match" : "MISMATCH");
done:
    sal_session_free(s);
    sal_model_free(m);
    sal_tensor_free(&x);
    sal_tensor_free(&logits);
    sal_tensor_free(&targets);
    sal_tensor_free(&grad);
    return rc;
}
