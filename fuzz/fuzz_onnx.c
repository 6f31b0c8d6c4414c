/* libFuzzer target: the ONNX importer through graph construction, constant folding, and a
 * forward and backward pass of the model on small inputs. See targets.h. */
#include "targets.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    /* a forward and a backward pass touch every activation several times: keep them small */
    sal_set_memory_budget(FUZZ_BUDGET / 2);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_one_onnx(data, size);
    return 0;
}
