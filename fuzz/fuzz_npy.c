/* libFuzzer target: the NPY reader, from memory (sal_npy_read_buffer shares every check with sal_npy_read but
 * the file-system ones). See targets.h. */
#include "targets.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_one_npy(data, size);
    return 0;
}
