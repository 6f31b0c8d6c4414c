/* libFuzzer target: the IDX reader (plain or gzipped), through a memory-backed file since zlib's
 * gzread reads files. */
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    if (!path) return 0;
    sal_tensor t = {0};
    sal_status st = sal_idx_read(path, &t);
    fuzz_check_result(st, &t);
    if (st == SAL_OK) {
        SAL_ASSERT((t.ndim == 4 && t.dtype == SAL_F32 && t.dim[1] == 1) || (t.ndim == 1 && t.dtype == SAL_I64));
        if (t.dtype == SAL_F32)
            for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++)
                SAL_ASSERT(sal_f32(&t)[i] >= 0 && sal_f32(&t)[i] <= 1);
    }
    sal_tensor_free(&t);
    return 0;
}
