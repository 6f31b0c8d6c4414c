/* libFuzzer target: the FASTA reader (sal_fasta_read) on a memfd. See targets.h. */
#include "targets.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_one_fasta(data, size);
    return 0;
}
