/* saliency metric NAME MODEL --input X --method M [...]: one evaluation metric for each method. */
#include "cli.h"
#include <math.h>
#include <sys/stat.h>

static const char k_help[] =
    "usage: saliency metric NAME MODEL.onnx --input X [options]\n"
    "       saliency metric --list\n\n"
    "Scores attribution methods on a model and data with one evaluation metric (docs/metrics.md): a value\n"
    "per sample, and their mean, sd and median. Families: faithfulness, robustness, localization (needs\n"
    "--masks), complexity, randomization, axiomatic; --list shows every metric with its parameters.\n\n"
    "  --input X           an .npy batch (N, ...) (or one sample), or a data set name (its held-out part)\n"
    "  --limit N           only the first N samples\n"
    "  --data D            reference data (.npy or a data set): baselines, patterns, the input range\n"
    "  --method NAME       a method to score (repeatable), --param KEY=VALUE its parameters\n"
    "  --methods all|A,B   every method (the default) or a list, with default parameters\n"
    "  --metric-param KEY=VALUE   a parameter of the metric (repeatable; --list shows them)\n"
    "  --masks M.npy       localization: (N, H, W) or (N, 1, H, W), non-zero on the object\n"
    "  --output logit|prob score the logit (default) or the softmax probability of the predicted class\n"
    "  --seed N            the metric's random draws (default 1): the same at any --batch and --chunk\n"
    "  --batch N           samples per explanation call (default 16)\n"
    "  --chunk N           rows per forward pass (default: sized to the model, at most 256)\n"
    "  --json FILE         results as JSON (saliency report shows them)   --csv FILE   one row per sample\n"
    "  --quiet             no table on stdout\n"
    "Under mpirun or srun the ranks share the batches and rank 0 writes the same files, to the byte\n"
    "(the JSON's \"ranks\" aside; docs/scaling.md).\n"
    "Exit status: 0 done, 1 error (bad arguments, or no method could run).\n";

#define MAX_METHODS 256
#define MAX_PARAMS 512

static int list(void) {
    const char *fam = "";
    for (int i = 0; i < sal_metric_count(); i++) {
        if (strcmp(fam, sal_metric_family(i))) printf("%s%s:\n", i ? "\n" : "", fam = sal_metric_family(i));
        int b = sal_metric_better(i);
        printf("  %-34s %s [%s]\n", sal_metric_name(i), sal_metric_summary(i), b > 0 ? "higher is better" : b < 0 ? "lower is better" : "");
        for (int k = 0; k < sal_metric_nparams(i); k++) {
            const char *name, *def, *help;
            sal_metric_param(i, k, &name, &def, &help);
            printf("      %s=%s  %s\n", name, *def ? def : "\"\"", help);
        }
    }
    return 0;
}

typedef struct {
    const char *name, *path, *in, *data, *json, *csv, *masks, *methods;
    long limit;
    bool quiet;
    sal_metric_opts o;
    sal_audit_method meth[MAX_METHODS];
    const char *param[MAX_PARAMS], *mparam[64];
    int start[MAX_METHODS], nm, np, nmp;
} metric_args;

static int parse(int argc, char **argv, metric_args *g) {
    sal_audit_common *o = &g->o.common;
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (cli_is(&a, "--input")) g->in = cli_value(&a);
        else if (cli_is(&a, "--data")) g->data = cli_value(&a);
        else if (cli_is(&a, "--limit")) g->limit = cli_long(&a, 1, 1L << 40);
        else if (cli_is(&a, "--json")) g->json = cli_value(&a);
        else if (cli_is(&a, "--csv")) g->csv = cli_value(&a);
        else if (cli_is(&a, "--masks")) g->masks = cli_value(&a);
        else if (cli_is(&a, "--seed")) o->seed = (uint64_t)cli_long(&a, 0, 0x7fffffffL);
        else if (cli_is(&a, "--batch")) o->batch = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--chunk")) o->chunk = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--quiet")) g->quiet = true;
        else if (cli_is(&a, "--methods")) g->methods = cli_value(&a);
        else if (cli_is(&a, "--method")) {
            if (g->nm == MAX_METHODS) return cli_error("metric", "too many --method options (at most %d)", MAX_METHODS);
            g->meth[g->nm].name = cli_value(&a);
            g->start[g->nm++] = g->np;
        } else if (cli_is(&a, "--param")) {
            const char *v = cli_value(&a);
            if (!g->nm && !a.error) return cli_error("metric", "--param %s must follow the --method it belongs to", v);
            if (g->np == MAX_PARAMS) return cli_error("metric", "too many --param options");
            g->param[g->np++] = v;
        } else if (cli_is(&a, "--metric-param")) {
            if (g->nmp == 64) return cli_error("metric", "too many --metric-param options");
            g->mparam[g->nmp++] = cli_value(&a);
        } else if (cli_is(&a, "--output")) {
            const char *v = cli_value(&a);
            if (!strcmp(v, "prob")) o->prob = 1;
            else if (strcmp(v, "logit") && !a.error) return cli_error("metric", "--output must be logit or prob, not '%s'", v);
        } else if (!a.opt && !g->name) g->name = a.pos;
        else if (!a.opt && !g->path) g->path = a.pos;
        else return cli_unknown(&a, "metric");
    }
    if (a.error) return 1;
    bool known = false;
    for (int i = 0; g->name && i < sal_metric_count() && !known; i++) known = !strcmp(g->name, sal_metric_name(i));
    if (!g->name) return cli_error("metric", "missing the metric's NAME (saliency metric --list shows them)");
    if (!known) return cli_error("metric", "unknown metric '%s' (saliency metric --list shows them)", g->name);
    if (!g->path) return cli_error("metric", "missing MODEL.onnx (see saliency metric --help)");
    if (!g->in) return cli_error("metric", "missing --input X.npy (or a data set name)");
    if (g->nm && g->methods) return cli_error("metric", "give either --method (with its --param) or --methods, not both");
    static char mbuf[4096];
    if (g->methods && strcmp(g->methods, "all")) {
        snprintf(mbuf, sizeof mbuf, "%s", g->methods);
        for (char *tok = strtok(mbuf, ","); tok; tok = strtok(NULL, ",")) {
            if (g->nm == MAX_METHODS) return cli_error("metric", "too many methods in --methods");
            g->start[g->nm] = g->np;
            g->meth[g->nm++].name = tok;
        }
    }
    for (int i = 0; i < g->nm; i++) {
        int end = i + 1 < g->nm ? g->start[i + 1] : g->np;
        g->meth[i].params = g->param + g->start[i];
        g->meth[i].nparams = end - g->start[i];
        bool ok = false;
        for (int k = 0; k < sal_method_count() && !ok; k++) ok = !strcmp(sal_method_name(k), g->meth[i].name);
        if (!ok) return cli_error("metric", "unknown method '%s' (saliency methods lists them)", g->meth[i].name);
    }
    o->methods = g->nm ? g->meth : NULL;
    o->nmethods = g->nm;
    g->o.params = g->mparam;
    g->o.nparams = g->nmp;
    return 0;
}

static void table(const sal_metric_result *r) {
    int w = 6;
    for (int i = 0; i < sal_metric_result_count(r); i++) {
        int l = (int)strlen(sal_metric_result_label(r, i));
        w = l > w ? l : w;
    }
    w = w > 60 ? 60 : w;
    printf("%-*s  %14s\n", w, "method", "mean");
    for (int i = 0; i < sal_metric_result_count(r); i++) {
        double v = sal_metric_result_mean(r, i);
        const char *sk = sal_metric_result_skipped(r, i);
        printf("%-*.*s  ", w, w, sal_metric_result_label(r, i));
        if (sk) printf("%14s  %s\n", "-", sk);
        else if (isfinite(v)) printf("%14.6g\n", v);
        else printf("%14s  (undefined for every sample)\n", "-");
    }
}

/* The metric on this process (its share under mpirun); rank 0 writes the files and prints. */
static int metric_main(int argc, char **argv) {
    static metric_args g;
    memset(&g, 0, sizeof g);
    g.o.common.seed = 1;
    sal_model *m = NULL;
    sal_tensor x = {0}, d = {0}, mk = {0};
    sal_metric_result *r = NULL;
    char *js = NULL, *cs = NULL;
    int rc = 1;
    sal_status st = SAL_OK;
    if (parse(argc, argv, &g)) goto agree;
    cli_bar bar = {0};
    g.o.common.model_name = g.path;
    g.o.common.progress = cli_progress, g.o.common.progress_user = &bar;
    g.o.common.shard = cli_shard();
    st = sal_model_load(g.path, &m);
    if (st == SAL_OK) st = cli_load_array(g.in, true, &x);
    if (st == SAL_OK && g.data) st = cli_load_array(g.data, false, &d);
    if (st == SAL_OK && g.masks) st = sal_npy_read(g.masks, &mk);
    if (st != SAL_OK) {
        cli_fail("metric", st);
        goto agree;
    }
    int nd;
    int64_t dim[SAL_MAX_DIMS];
    sal_model_input_shape(m, 0, &nd, dim);
    if (x.ndim == nd - 1 && nd > 1) { /* one sample: add the batch dimension */
        memmove(x.dim + 1, x.dim, sizeof(int64_t) * (size_t)x.ndim);
        x.dim[0] = 1;
        x.ndim++;
    }
    if (x.dtype != SAL_F32 || x.ndim < 2 || x.dim[0] < 1) {
        cli_error("metric", "%s: the input must be a float batch (N, ...)", g.in);
        goto agree;
    }
    if (g.limit && g.limit < x.dim[0]) x.dim[0] = g.limit;
    g.o.common.data = g.data ? &d : NULL;
    g.o.common.data_name = g.data ? g.data : g.in;
    g.o.masks = g.masks ? &mk : NULL;
    if ((st = sal_metric_compute(m, &x, g.name, &g.o, &r)) != SAL_OK) {
        cli_fail("metric", st);
        goto agree;
    }
    int ran = 0;
    for (int i = 0; i < sal_metric_result_count(r); i++) {
        if (!sal_metric_result_skipped(r, i)) ran++;
        else if (g.nm)
            fprintf(stderr, "saliency metric: %s %s\n", sal_metric_result_label(r, i), sal_metric_result_skipped(r, i));
    }
    if (!ran) {
        cli_error("metric", "no method could run on this model and data (see the reasons above)");
        goto agree;
    }
    rc = 0;
agree: /* every rank's outcome, then rank 0's files (one process: as they are) */
    rc = cli_mpi_agree("metric", rc);
    if (!rc && cli_rank() == 0) {
        if (g.json && (st = sal_metric_json(r, &js)) == SAL_OK) st = sal_write_file(g.json, js, strlen(js));
        if (st == SAL_OK && g.csv && (st = sal_metric_csv(r, &cs)) == SAL_OK) st = sal_write_file(g.csv, cs, strlen(cs));
        if (st != SAL_OK) rc = cli_fail("metric", st);
        else if (!g.quiet) table(r);
    }
    rc = cli_mpi_agree("metric", rc);
    free(js);
    free(cs);
    sal_metric_result_free(r);
    sal_model_free(m);
    sal_tensor_free(&x);
    sal_tensor_free(&d);
    sal_tensor_free(&mk);
    return rc;
}

int cmd_metric(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[2], "--list")) return list();
    if (argc < 3 || cli_wants_help(argc, argv)) {
        fputs(k_help, argc < 3 && !cli_wants_help(argc, argv) ? stderr : stdout);
        return argc < 3 && !cli_wants_help(argc, argv);
    }
    cli_mpi_start();
    return cli_mpi_finish("metric", metric_main(argc, argv));
}
