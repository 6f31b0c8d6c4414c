/* saliency command-line tool: a thin layer over the public API. */
#include "saliency.h"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: saliency COMMAND [options]\n");
        return argc < 2;
    }
    fprintf(stderr, "saliency: unknown command '%s' (try --help)\n", argv[1]);
    return 1;
}
