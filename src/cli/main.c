/* saliency command-line tool: a thin layer over the public API. */
#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} k_cmds[] = {
    {"info", cmd_info, "describe an ONNX model: inputs, outputs, nodes, shapes, parameters"},
    {"run", cmd_run, "forward pass: write the model's outputs for an input array"},
    {"train", cmd_train, "train a built-in architecture on MNIST, Fashion-MNIST or your arrays"},
    {"explain", cmd_explain, "attribution maps for inputs, by any method"},
    {"methods", cmd_methods, "list the attribution methods with their parameters"},
};

static void usage(FILE *f) {
    fprintf(f, "saliency %s: explain neural-network predictions and audit the explanations\n\n"
               "usage: saliency COMMAND [options]   (saliency COMMAND --help for details)\n\ncommands:\n",
            SAL_VERSION);
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++) fprintf(f, "  %-8s %s\n", k_cmds[i].name, k_cmds[i].what);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("saliency %s\n", SAL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        if (!strcmp(argv[1], k_cmds[i].name)) return k_cmds[i].fn(argc, argv);
    fprintf(stderr, "saliency: unknown command '%s' (try saliency --help)\n", argv[1]);
    return 1;
}
