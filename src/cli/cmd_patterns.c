/* saliency patterns: estimate the signal patterns of PatternNet and PatternAttribution. */
#include "cli.h"

static const char k_help[] =
    "usage: saliency patterns MODEL.onnx --data DATA --out PATTERNS [options]\n"
    "       saliency patterns --info PATTERNS\n\n"
    "Estimates, for every Gemm, MatMul and Conv node and every output unit (every output channel, over\n"
    "the input patches, for convolutions), the linear pattern a = cov[x,y] / (w^T cov[x,y]) and the\n"
    "two-component ReLU pattern (the same over the samples with y > 0), from the data's activations\n"
    "(Kindermans et al. 2018). The file records the model's hash and the data it came from; methods\n"
    "patternnet, pattern_attribution and deep_taylor (root=pattern) read it with --param patterns=FILE.\n"
    "  --data DATA    an NPY file of inputs (N, ...), float32 or float64, streamed batch by batch; or a\n"
    "                 data set name (mnist, fashion-mnist: its training images)\n"
    "  --out FILE     where to write the patterns\n"
    "  --batch N      samples per pass (default 64; memory grows with it)\n"
    "  --limit N      use at most N samples (default: all)\n"
    "  --quiet        no progress bar\n"
    "  --info FILE    describe a patterns file and exit\n";

static int show(const char *path, const sal_patterns *p) {
    printf("%s: model hash %016llx, %lld samples of %s\n", path, (unsigned long long)sal_patterns_model_hash(p),
           (long long)sal_patterns_samples(p), sal_patterns_source(p));
    for (int i = 0; i < sal_patterns_count(p); i++) {
        const sal_tensor *t = sal_patterns_tensor(p, i, 0);
        char shp[160] = "(";
        for (int d = 0; d < t->ndim; d++) {
            size_t k = strlen(shp);
            snprintf(shp + k, sizeof shp - k, "%s%lld", d ? "," : "", (long long)t->dim[d]);
        }
        strncat(shp, ")", sizeof shp - strlen(shp) - 1);
        printf("  %-24s %-18s degenerate units: %lld linear, %lld relu\n", sal_patterns_node(p, i), shp,
               (long long)sal_patterns_degenerate(p, i, 0), (long long)sal_patterns_degenerate(p, i, 1));
    }
    return 0;
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

int cmd_patterns(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_help, stdout), 0;
    const char *path = NULL, *data = NULL, *out = NULL, *info = NULL;
    cli_bar bar = {.keep = true, .unit = "samples"};
    sal_patterns_opts o = {.progress = cli_progress, .progress_user = &bar};
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (cli_is(&a, "--data")) data = cli_value(&a);
        else if (cli_is(&a, "--out")) out = cli_value(&a);
        else if (cli_is(&a, "--info")) info = cli_value(&a);
        else if (cli_is(&a, "--batch")) o.batch = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--limit")) o.limit = cli_long(&a, 2, 0x7fffffffL);
        else if (cli_is(&a, "--quiet")) o.progress = NULL;
        else if (!a.opt && !path) path = a.pos;
        else return cli_unknown(&a, "patterns");
    }
    if (a.error) return 1;
    sal_patterns *p = NULL;
    if (info) {
        sal_status st = sal_patterns_load(info, &p);
        if (st != SAL_OK) return cli_fail("patterns", st);
        show(info, p);
        sal_patterns_free(p);
        return 0;
    }
    if (!path) return cli_error("patterns", "missing MODEL.onnx (see saliency patterns --help)");
    if (!data) return cli_error("patterns", "missing --data DATA");
    if (!out) return cli_error("patterns", "missing --out PATTERNS");
    sal_model *m = NULL;
    sal_dataset ds = {0};
    sal_status st = sal_model_load(path, &m);
    if (st == SAL_OK) {
        if (ends_with(data, ".npy")) {
            st = sal_patterns_estimate_npy(m, data, &o, &p);
        } else {
            st = sal_dataset_load(data, &ds);
            if (st == SAL_OK) st = sal_patterns_estimate(m, &ds.train_x, data, &o, &p);
        }
    }
    if (st == SAL_OK) st = sal_patterns_save(p, out);
    int rc = st == SAL_OK ? show(out, p) : cli_fail("patterns", st);
    sal_patterns_free(p);
    sal_dataset_free(&ds);
    sal_model_free(m);
    return rc;
}
