/* libFuzzer target: the IDX reader (plain or gzipped), through a memory-backed file. See targets.h. */
#include "targets.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_one_idx(data, size);
    return 0;
}
