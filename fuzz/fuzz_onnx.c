/* libFuzzer target: the ONNX importer from serialized bytes through graph construction,
 * validation, topological sorting, op attribute parsing and constant folding (sal_onnx_load_buffer),
 * then a dry run of what an explanation does with the model: a forward pass on small inputs of the
 * declared shapes (every op's shape inference and kernel) and a backward pass from output 0. */
#include "fuzz.h"
#include "graph/exec.h"
#include "io/onnx.h"

/* Inputs larger than this in all are not run: the loader is the target, not the kernels' speed. */
#define MAX_INPUT_ELEMS ((int64_t)1 << 16)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    /* a forward and a backward pass touch every activation several times: keep them small */
    sal_set_memory_budget(FUZZ_BUDGET / 2);
    return 0;
}

static void dry_run(const sal_model *m, const uint8_t *data, size_t size) {
    int nin = sal_model_num_inputs(m);
    sal_tensor *x = calloc((size_t)nin + 1, sizeof *x);
    sal_session *s = NULL;
    int64_t total = 0;
    bool ok = x != NULL;
    for (int i = 0; i < nin && ok; i++) {
        const sal_tensor *decl = &m->val[m->input[i]].t;
        int64_t dim[SAL_MAX_DIMS], n;
        for (int d = 0; d < decl->ndim; d++) dim[d] = decl->dim[d] < 0 ? 1 : decl->dim[d];
        ok = sal_shape_numel(decl->ndim, dim, &n) && (total += n) <= MAX_INPUT_ELEMS &&
             sal_tensor_alloc(&x[i], decl->dtype, decl->ndim, dim) == SAL_OK;
        /* small values from the input bytes; int64 inputs (indices, shapes) stay 0 */
        for (int64_t k = 0; ok && decl->dtype == SAL_F32 && k < n; k++)
            sal_f32(&x[i])[k] = size ? (float)((int)data[(size_t)k % size] - 128) / 64.0f : 0.0f;
    }
    sal_status st = ok ? sal_session_new(m, &s) : SAL_ERR_ARG;
    if (st == SAL_OK && sal_model_num_outputs(m) >= 1) {
        st = sal_exec_forward(s, x);
        const sal_tensor *out = st == SAL_OK ? &s->act[m->output[0]] : NULL;
        if (out && out->dtype == SAL_F32) {
            sal_tensor seed = {0};
            if (sal_tensor_alloc(&seed, SAL_F32, out->ndim, out->dim) == SAL_OK) {
                for (int64_t k = 0, n = sal_tensor_numel(&seed); k < n; k++) sal_f32(&seed)[k] = 1.0f;
                int o = m->output[0];
                st = sal_exec_backward(s, 1, &o, &seed, NULL);
            }
            sal_tensor_free(&seed);
        }
    }
    if (st != SAL_OK) SAL_ASSERT(*sal_last_error());
    sal_session_free(s);
    for (int i = 0; x && i < nin; i++) sal_tensor_free(&x[i]);
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sal_model *m = NULL;
    sal_status st = sal_onnx_load_buffer(data, size, "fuzz.onnx", &m);
    if (st != SAL_OK) {
        SAL_ASSERT(m == NULL && *sal_last_error());
        return 0;
    }
    SAL_ASSERT(m->finalized && m->noutput >= 1);
    dry_run(m, data, size);
    sal_model_free(m);
    return 0;
}
