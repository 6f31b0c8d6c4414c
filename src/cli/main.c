/* saliency command-line tool: a thin layer over the public API. */
#include "cli.h"
#include <signal.h>

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
    {"patterns", cmd_patterns, "estimate the signal patterns of PatternNet and PatternAttribution from data"},
    {"heatmap", cmd_heatmap, "draw attribution maps as PNG heatmaps (over the inputs, or in grids)"},
    {"visualize", cmd_visualize, "feature visualization: inputs that maximize a unit, channel, layer or class"},
    {"topk", cmd_topk, "the data samples that activate an objective most and least"},
    {"invert", cmd_invert, "model inversion: reconstruct inputs from a layer's representation"},
    {"audit", cmd_audit, "test whether explanations can be trusted: invariance, randomization, ..."},
    {"metric", cmd_metric, "score methods by an evaluation metric: faithfulness, robustness, localization, ..."},
    {"data", cmd_data, "build data sets: multi-object composites with masks for the pointing game"},
    {"report", cmd_report, "an HTML report of audit results: verdicts, figures, curves"},
    {"demo", cmd_demo, "the papers end to end: train, audit every method, write the report"},
};

static void usage(FILE *f) {
    fprintf(f, "saliency %s: explain neural-network predictions and audit the explanations\n\n"
               "usage: saliency COMMAND [options]   (saliency COMMAND --help for details)\n\ncommands:\n",
            SAL_VERSION);
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++) fprintf(f, "  %-9s %s\n", k_cmds[i].name, k_cmds[i].what);
    fprintf(f, "\noptions of every command:\n"
               "  --max-memory SIZE  most memory to hold at once, e.g. 512M or 2G (default: 3/4 of physical\n"
               "                     memory, %.1fG here); larger models and batches are refused up front\n",
            (double)sal_memory_default_budget() / (1u << 30));
}

/* "123", "512K", "1.5G", "2GiB" (binary units) -> bytes; 0 on a malformed or zero size. */
static size_t parse_size(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0)) return 0;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0, end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024, end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024, end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024, end++; break;
    default: break;
    }
    if (mul > 1 && end[0] == 'i' && end[1] == 'B') end += 2;
    else if (end[0] == 'B' && mul > 1) end++;
    if (*end || v * mul >= (double)SIZE_MAX || v * mul < 1) return 0;
    return (size_t)(v * mul);
}

/* Takes --max-memory out of argv wherever it stands (before or after the command), so every
 * command accepts it without knowing about it. Returns false after printing an error. */
static bool take_global_options(int *argc, char **argv) {
    int k = 1;
    for (int i = 1; i < *argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--max-memory")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "saliency: option --max-memory needs a value\n");
                return false;
            }
            v = argv[++i];
        } else if (!strncmp(argv[i], "--max-memory=", 13)) {
            v = argv[i] + 13;
        } else {
            argv[k++] = argv[i];
            continue;
        }
        size_t bytes = parse_size(v);
        if (!bytes) {
            fprintf(stderr, "saliency: option --max-memory: '%s' is not a size such as 800M or 4G\n", v);
            return false;
        }
        sal_set_memory_budget(bytes);
    }
    argv[k] = NULL;
    *argc = k;
    return true;
}

/* SIGINT/SIGTERM/SIGHUP during a write: remove the temporary file (the destination is only ever
 * replaced whole, by rename), then die of the same signal so the caller sees how we ended.
 * SA_RESETHAND makes the re-raised signal take the default action once this handler returns. */
static void on_signal(int sig) {
    sal_remove_pending_outputs();
    raise(sig);
}

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        /* a signal ignored by whoever started us (nohup, background jobs) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

int main(int argc, char **argv) {
    if (!take_global_options(&argc, argv)) return 1;
    install_signal_handlers();
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
        if (!strcmp(argv[1], k_cmds[i].name)) {
            int rc = k_cmds[i].fn(argc, argv);
            cli_mpi_end();
            return rc;
        }
    fprintf(stderr, "saliency: unknown command '%s' (try saliency --help)\n", argv[1]);
    return 1;
}
