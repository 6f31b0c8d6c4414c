/* libFuzzer target: the PNG reader (libpng underneath; our limits and conversions on top). See targets.h. */
#include "targets.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_one_png(data, size);
    return 0;
}
