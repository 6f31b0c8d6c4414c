/* saliency run MODEL.onnx --input X.npy --out Y.npy */
#include "cli.h"
#include <math.h>

static const char k_help[] =
    "usage: saliency run MODEL.onnx --input [NAME=]X.npy ... --out [NAME=]Y.npy ...\n\n"
    "Runs a forward pass and writes outputs as NPY. --input is repeatable for models with several\n"
    "inputs (by name, or in order); --out without a name writes the first output. An input with\n"
    "one dimension fewer than the model expects is taken as a single sample (batch 1). Unless an\n"
    "--out names a value, the pass keeps only the outputs, reusing each activation's memory.\n";

#define MAXIO 16

/* "NAME=FILE" or "FILE": splits into name ("" when none) and file. Exporters put '=' and '/' in
 * names (tf2onnx's "serving_default/input:0"), so a prefix that names something of the model
 * (known()) wins at any '='; otherwise the text before the first '=' is a name unless it has a '/'
 * (then the whole argument is a path), and an unknown name is the caller's error to report. */
static const char *split(const char *arg, char *name, size_t n, bool (*known)(const void *, const char *),
                         const void *ctx) {
    for (const char *eq = strchr(arg, '='); eq; eq = strchr(eq + 1, '=')) {
        snprintf(name, n, "%.*s", (int)(eq - arg), arg);
        if (known(ctx, name)) return eq + 1;
    }
    const char *eq = strchr(arg, '=');
    if (!eq || memchr(arg, '/', (size_t)(eq - arg))) {
        name[0] = '\0';
        return arg;
    }
    snprintf(name, n, "%.*s", (int)(eq - arg), arg);
    return eq + 1;
}

static bool is_input(const void *m, const char *name) {
    for (int i = 0; i < sal_model_num_inputs(m); i++)
        if (!strcmp(sal_model_input_name(m, i), name)) return true;
    return false;
}

static bool is_value(const void *s, const char *name) { return sal_session_value(s, name) != NULL; }

int cmd_run(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_help, stdout), 0;
    const char *path = NULL, *ins[MAXIO], *outs[MAXIO];
    int nin = 0, nout = 0;
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (cli_is(&a, "--input") && nin < MAXIO) ins[nin++] = cli_value(&a);
        else if (cli_is(&a, "--out") && nout < MAXIO) outs[nout++] = cli_value(&a);
        else if (!a.opt && !path) path = a.pos;
        else return cli_unknown(&a, "run");
    }
    if (a.error) return 1;
    if (!path) return cli_error("run", "missing MODEL.onnx (see saliency run --help)");
    if (!nin) return cli_error("run", "missing --input X.npy");
    if (!nout) return cli_error("run", "missing --out Y.npy");
    sal_model *m;
    sal_status st = sal_model_load(path, &m);
    if (st != SAL_OK) return cli_fail("run", st);
    int rc = 1, mi = sal_model_num_inputs(m), mo = sal_model_num_outputs(m);
    sal_tensor x[MAXIO] = {{0}};
    bool fed[MAXIO] = {0};
    sal_session *s = NULL;
    const sal_tensor *y[64];
    if (nin != mi) {
        cli_error("run", "%s takes %d inputs, %d given", path, mi, nin);
        goto done;
    }
    for (int i = 0; i < nin; i++) {
        char name[256];
        const char *file = split(ins[i], name, sizeof name, is_input, m);
        int slot = i;
        if (*name) {
            for (slot = 0; slot < mi && strcmp(sal_model_input_name(m, slot), name); slot++) {}
            if (slot == mi) {
                cli_error("run", "%s has no input named '%s'", path, name);
                goto done;
            }
        }
        if (fed[slot]) {
            cli_error("run", "input '%s' given twice", sal_model_input_name(m, slot));
            goto done;
        }
        fed[slot] = true;
        if ((st = sal_npy_read(file, &x[slot])) != SAL_OK) {
            cli_fail("run", st);
            goto done;
        }
        int nd;
        int64_t dim[SAL_MAX_DIMS];
        sal_model_input_shape(m, slot, &nd, dim);
        if (x[slot].ndim == nd - 1 && nd > 1) { /* a single sample: add the batch dimension */
            memmove(x[slot].dim + 1, x[slot].dim, sizeof(int64_t) * (size_t)x[slot].ndim);
            x[slot].dim[0] = 1;
            x[slot].ndim++;
        }
    }
    if ((st = sal_session_new(m, &s)) != SAL_OK) {
        cli_fail("run", st);
        goto done;
    }
    bool named = false; /* an --out NAME=FILE may ask for an inner value */
    for (int i = 0; i < nout; i++) named |= strchr(outs[i], '=') != NULL;
    if (!named) sal_session_keep_values(s, 0); /* the outputs alone: a few activations held at a time */
    if ((st = sal_forward(s, mi, x, y)) != SAL_OK) {
        cli_fail("run", st);
        goto done;
    }
    for (int i = 0; i < nout; i++) {
        char name[256];
        const char *file = split(outs[i], name, sizeof name, is_value, s);
        const sal_tensor *t = y[0];
        if (*name && !(t = sal_session_value(s, name))) {
            cli_error("run", "%s has no value named '%s'", path, name);
            goto done;
        }
        int64_t bad = -1;
        for (int64_t j = 0, n = t->dtype == SAL_F32 ? sal_tensor_numel(t) : 0; j < n && bad < 0; j++)
            if (!isfinite(sal_f32(t)[j])) bad = j;
        if (bad >= 0) { /* a named value is not checked by sal_forward, which sees outputs only */
            cli_error("run", "%s: value '%s' has a non-finite value (%g) at flat index %lld; not writing %s", path,
                      name, (double)sal_f32(t)[bad], (long long)bad, file);
            goto done;
        }
        if ((st = sal_npy_write(file, t)) != SAL_OK) {
            cli_fail("run", st);
            goto done;
        }
    }
    (void)mo;
    rc = 0;
done:
    for (int i = 0; i < MAXIO; i++) sal_tensor_free(&x[i]);
    sal_session_free(s);
    sal_model_free(m);
    return rc;
}
