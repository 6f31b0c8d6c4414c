/* libFuzzer target: the NPY reader, from memory (sal_npy_read_buffer shares every check with
 * sal_npy_read but the file-system ones). */
#include "fuzz.h"
#include "io/io.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sal_tensor t = {0};
    sal_status st = sal_npy_read_buffer(data, size, "fuzz.npy", &t);
    fuzz_check_result(st, &t);
    if (st == SAL_OK) {
        /* an accepted file holds exactly its header and the data its shape calls for */
        SAL_ASSERT(t.dtype == SAL_F32 || t.dtype == SAL_I64);
        SAL_ASSERT((size_t)sal_tensor_numel(&t) * (t.dtype == SAL_F32 ? 4 : 8) <= size);
    }
    sal_tensor_free(&t);
    return 0;
}
