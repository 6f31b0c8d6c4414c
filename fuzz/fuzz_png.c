/* libFuzzer target: the PNG reader (libpng underneath, our size limits and conversions on top),
 * through a memory-backed file. */
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
    sal_status st = sal_png_read(path, &t);
    fuzz_check_result(st, &t);
    if (st == SAL_OK) {
        SAL_ASSERT(t.dtype == SAL_F32 && t.ndim == 3 && (t.dim[0] == 1 || t.dim[0] == 3));
        for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++)
            SAL_ASSERT(sal_f32(&t)[i] >= 0 && sal_f32(&t)[i] <= 1);
    }
    sal_tensor_free(&t);
    return 0;
}
