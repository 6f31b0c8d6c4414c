/* saliency explain / saliency methods */
#include "cli.h"
#include <math.h>

static const char k_help[] =
    "usage: saliency explain MODEL.onnx --input X.npy --method NAME --out A.npy [options]\n\n"
    "Computes an attribution map for every sample of X (shape (N, ...) or one sample without the\n"
    "batch dimension). A.npy has the shape of X.\n"
    "  --method NAME         see `saliency methods`\n"
    "  --param KEY=VALUE     a method parameter (repeatable); `saliency methods` lists them\n"
    "  --rule NODE=RULE      LRP methods: shorthand for --param rule=NODE=RULE (repeatable; first match\n"
    "                        wins), e.g. --rule 'conv*=gamma:0.25' --rule '*=epsilon:1e-6'\n"
    "  --segments S.npy      black-box methods (lime, kernel_shap, sobol): integer labels per element\n"
    "                        (the input's shape, one sample's, or the spatial plane's); shorthand for\n"
    "                        --param segments=S.npy\n"
    "  --fallback NAME       when the method cannot run on this graph (a node without a gradient or\n"
    "                        without a rule of the method), explain with NAME instead (lime,\n"
    "                        kernel_shap, rise, sobol, occlusion, or ism on one-hot sequences); says\n"
    "                        so, and the JSON records it.\n"
    "                        --param fallback.KEY=VALUE sets the fallback's parameters\n"
    "  --target T            max (predicted class, default), min, a class K, K1,K2,... per sample, or\n"
    "                        sum: the sum of the whole output (segmentation and detection maps)\n"
    "  --target-mask M.npy   the sum of the output weighted by M, which broadcasts to the output (a\n"
    "                        sample's shape, the whole output, or trailing axes such as (H, W))\n"
    "  --output-name NAME    the model output to explain (default: the first)\n"
    "  --output logit|prob   explain the logit (default) or the softmax probability\n"
    "  --data D.npy          reference data for data-dependent baselines and the input range\n"
    "  --range LO,HI         the input range (default: from --data, else from X)\n"
    "  --batch N             samples per explanation call (default: all at once; 16 under mpirun or\n"
    "                        srun, where ranks share the batches: docs/scaling.md)\n"
    "  --chunk N             samples per batched pass (bounds memory; default: as many as keep a\n"
    "                        pass near 512 MiB, at most 64)\n"
    "  --json FILE           method, parameters with defaults, targets, outputs and checks\n"
    "  --layer-out L.npy     layer methods (gradcam, ...): the map at the layer's resolution (N,1,h,w)\n"
    "  --png FILE            also draw the maps as a heatmap PNG (a grid for several samples;\n"
    "                        saliency heatmap draws them with more options)\n"
    "  --overlay             with --png: draw each map over its input\n"
    "Under mpirun or srun the ranks share the batches and rank 0 writes (docs/scaling.md).\n";

/* x's rows [i0, i0 + n) as a view. */
static sal_tensor rows(const sal_tensor *x, int64_t i0, int64_t n) {
    sal_tensor v = *x;
    v.cap = 0, v.dim[0] = n;
    v.data = sal_f32(x) + i0 * (sal_tensor_numel(x) / x->dim[0]);
    return v;
}

/* This rank's batches of x explained and joined into *e (NULL: it has none). The batches are those
 * of one process with the same --batch: the same rows, streams and input range. */
static sal_status explain_share(const sal_model *m, const sal_tensor *x, sal_explain_opts o, int64_t batch,
                                sal_explanation **e) {
    *e = NULL;
    int64_t N = x->dim[0], nb = (N + batch - 1) / batch, R = cli_nranks(), r = cli_rank();
    int64_t b0 = nb * r / R, b1 = nb * (r + 1) / R;
    if (nb > 1 && o.data_lo == 0 && o.data_hi == 0 && !o.data) { /* the range of all of x, not of a batch */
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0, n = sal_tensor_numel(x); i < n; i++) lo = fmin(lo, sal_f32(x)[i]), hi = fmax(hi, sal_f32(x)[i]);
        o.data_lo = lo, o.data_hi = hi > lo ? hi : lo + 1;
    }
    sal_explanation **parts = calloc((size_t)(b1 > b0 ? b1 - b0 : 1), sizeof *parts);
    if (!parts) return SAL_ERR_NOMEM;
    const int64_t *classes = o.classes;
    sal_status st = SAL_OK;
    for (int64_t b = b0; b < b1 && st == SAL_OK; b++) {
        int64_t i0 = b * batch, n = N - i0 < batch ? N - i0 : batch;
        sal_tensor xb = rows(x, i0, n);
        o.first = i0;
        if (classes && o.nclasses == N && N > 1) o.classes = classes + i0, o.nclasses = n;
        st = sal_explain(m, &xb, &o, &parts[b - b0]);
    }
    if (st == SAL_OK && b1 - b0 == 1) *e = parts[0], parts[0] = NULL;
    else if (st == SAL_OK && b1 > b0) st = sal_explanation_join((const sal_explanation *const *)parts, (int)(b1 - b0), e);
    for (int64_t b = b0; b < b1; b++) sal_explanation_free(parts[b - b0]);
    free(parts);
    return st;
}

/* Every rank's share (packed in mine) to rank 0, joined there in rank order into *e. */
static sal_status gather(sal_explanation **e, const void *mine, size_t n) {
    char **all = NULL;
    size_t *sizes = NULL;
    sal_status st = cli_mpi_gather(mine, n, &all, &sizes);
    if (st != SAL_OK || !all) return st; /* failed, or not rank 0 */
    int R = cli_nranks(), np = 0;
    sal_explanation **parts = calloc((size_t)R, sizeof *parts);
    st = parts ? SAL_OK : SAL_ERR_NOMEM;
    for (int r = 0; st == SAL_OK && r < R; r++)
        if (sizes[r]) st = sal_explanation_unpack(all[r], sizes[r], &parts[np++]);
    if (st == SAL_OK) {
        sal_explanation_free(*e);
        *e = NULL;
        st = sal_explanation_join((const sal_explanation *const *)parts, np, e);
    }
    for (int i = 0; parts && i < np; i++) sal_explanation_free(parts[i]);
    for (int r = 0; r < R; r++) free(all[r]);
    free(parts);
    free(all);
    free(sizes);
    return st;
}

/* The JSON of e with "ranks" first, as the audits record it. */
static sal_status json_text(const sal_explanation *e, char **out) {
    char *js = NULL;
    sal_status st = sal_explanation_json(e, &js);
    if (st != SAL_OK) return st;
    size_t n = strlen(js);
    *out = malloc(n + 32);
    if (*out) snprintf(*out, n + 32, "{\n  \"ranks\": %d,%s", cli_nranks(), js + 1);
    free(js);
    return *out ? SAL_OK : SAL_ERR_NOMEM;
}

/* The files and notes of an explanation (rank 0). 0, or 1 after printing the error. */
static int write_explanation(const sal_explanation *e, const sal_model *m, const sal_explain_opts *o, const char *path,
                             const char *out, const char *layer_out, const char *png, const char *json,
                             const sal_tensor *x, const char *in, const cli_heatmap_opts *ho) {
    if (sal_explanation_fallback(e))
        fprintf(stderr, "saliency explain: %s cannot run on %s (%s); explained with %s instead (--fallback)\n",
                o->method, path, sal_explanation_fallback(e), sal_explanation_method(e));
    sal_output_kind ok = sal_model_output_kind(m);
    for (int i = 0; i < sal_method_count() && (ok == SAL_OUTPUT_SOFTMAX || ok == SAL_OUTPUT_SIGMOID); i++)
        if (!strcmp(sal_method_name(i), o->method) && sal_method_logits_note(i))
            fprintf(stderr, "saliency explain: note: %s outputs probabilities; %s is defined on logits: %s\n", path,
                    o->method, sal_method_logits_note(i));
    sal_status st = sal_npy_write(out, sal_explanation_map(e));
    if (st != SAL_OK) return cli_fail("explain", st);
    if (layer_out) {
        const sal_tensor *lm = sal_explanation_layer_map(e);
        if (!lm)
            return cli_error("explain", "method %s gives no layer map for --layer-out (gradcam and the other one-layer "
                             "methods do)", o->method);
        if ((st = sal_npy_write(layer_out, lm)) != SAL_OK) return cli_fail("explain", st);
    }
    if (png && cli_heatmap_png("explain", png, sal_explanation_map(e), out, ho->heat.overlay ? x : NULL, in, ho)) return 1;
    if (json) {
        char *js = NULL;
        if ((st = json_text(e, &js)) == SAL_OK) st = sal_write_file(json, js, strlen(js));
        free(js);
        if (st != SAL_OK) return cli_fail("explain", st);
    }
    return 0;
}

static int explain_main(int argc, char **argv) {
    const char *path = NULL, *in = NULL, *out = NULL, *json = NULL, *data = NULL, *target = "max", *range = NULL;
    const char *png = NULL, *layer_out = NULL, *tmask = NULL;
    cli_heatmap_opts ho = {.heat.colorbar = 1, .batched = 1};
    const char *params[64];
    static char rules[64][272]; /* "rule=" + the --rule values, which params point into */
    static char segs[1040];     /* "segments=" + the --segments path */
    int nr = 0;
    sal_explain_opts o = {0};
    int np = 0;
    int64_t batch = 0;
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (cli_is(&a, "--input")) in = cli_value(&a);
        else if (cli_is(&a, "--batch")) batch = cli_long(&a, 1, 1L << 40);
        else if (cli_is(&a, "--method")) o.method = cli_value(&a);
        else if (cli_is(&a, "--out")) out = cli_value(&a);
        else if (cli_is(&a, "--json")) json = cli_value(&a);
        else if (cli_is(&a, "--layer-out")) layer_out = cli_value(&a);
        else if (cli_is(&a, "--png")) png = cli_value(&a);
        else if (cli_is(&a, "--overlay")) ho.heat.overlay = 1;
        else if (cli_is(&a, "--data")) data = cli_value(&a);
        else if (cli_is(&a, "--target")) target = cli_value(&a);
        else if (cli_is(&a, "--target-mask")) tmask = cli_value(&a);
        else if (cli_is(&a, "--output-name")) o.output_name = cli_value(&a);
        else if (cli_is(&a, "--range")) range = cli_value(&a);
        else if (cli_is(&a, "--chunk")) o.chunk = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--fallback")) o.fallback = cli_value(&a);
        else if (cli_is(&a, "--segments")) {
            const char *v = cli_value(&a);
            if (a.error) return 1;
            if (np == 64) return cli_error("explain", "too many --param and --rule options");
            if (snprintf(segs, sizeof segs, "segments=%s", v) >= (int)sizeof segs)
                return cli_error("explain", "--segments '%s' is too long", v);
            params[np++] = segs;
        }
        else if (cli_is(&a, "--param")) {
            if (np == 64) return cli_error("explain", "too many --param and --rule options");
            params[np++] = cli_value(&a);
        } else if (cli_is(&a, "--rule")) {
            if (np == 64) return cli_error("explain", "too many --param and --rule options");
            const char *v = cli_value(&a);
            if (a.error) return 1;
            if (snprintf(rules[nr], sizeof rules[nr], "rule=%s", v) >= (int)sizeof rules[nr])
                return cli_error("explain", "--rule '%s' is too long", v);
            params[np++] = rules[nr++];
        } else if (cli_is(&a, "--output")) {
            const char *v = cli_value(&a);
            if (!strcmp(v, "prob")) o.prob = 1;
            else if (strcmp(v, "logit") && !a.error) return cli_error("explain", "--output must be logit or prob, not '%s'", v);
        } else if (!a.opt && !path) path = a.pos;
        else return cli_unknown(&a, "explain");
    }
    if (a.error) return 1;
    if (!path) return cli_error("explain", "missing MODEL.onnx (see saliency explain --help)");
    if (!in) return cli_error("explain", "missing --input X.npy");
    if (!o.method) return cli_error("explain", "missing --method (see saliency methods)");
    if (!out) return cli_error("explain", "missing --out A.npy");
    if (ho.heat.overlay && !png) return cli_error("explain", "--overlay needs --png FILE");
    o.nparams = np;
    o.params = params;
    int64_t classes[4096];
    if (tmask && strcmp(target, "max"))
        return cli_error("explain", "--target-mask replaces --target: give one of them");
    if (tmask) o.target = SAL_TARGET_MASK;
    else if (!strcmp(target, "sum")) o.target = SAL_TARGET_SUM;
    else if (!strcmp(target, "max")) o.target = SAL_TARGET_MAX;
    else if (!strcmp(target, "min")) o.target = SAL_TARGET_MIN;
    else {
        o.target = SAL_TARGET_INDEX;
        const char *p = target;
        while (*p) {
            char *end;
            long k = strtol(p, &end, 10);
            if (end == p || k < 0 || (*end && *end != ',') || o.nclasses == 4096)
                return cli_error("explain", "--target must be max, min, sum, a class index or a list K1,K2,...: '%s'",
                                 target);
            classes[o.nclasses++] = k;
            p = *end ? end + 1 : end;
        }
        o.classes = classes;
    }
    if (range) {
        char *end;
        o.data_lo = strtod(range, &end);
        if (*end != ',' || (o.data_hi = strtod(end + 1, &end), *end) || !(o.data_hi > o.data_lo))
            return cli_error("explain", "--range must be LO,HI with LO < HI: '%s'", range);
    }
    sal_model *m = NULL;
    sal_tensor x = {0}, d = {0}, mk = {0};
    sal_explanation *e = NULL;
    void *mine = NULL; /* this rank's share, packed for rank 0 */
    size_t nmine = 0;
    int rc = 1;
    sal_status st = sal_model_load(path, &m);
    if (st == SAL_OK) st = sal_npy_read(in, &x);
    if (st == SAL_OK && data) st = sal_npy_read(data, &d);
    if (st == SAL_OK && tmask) st = sal_npy_read(tmask, &mk);
    if (st != SAL_OK) goto fail;
    int nd;
    int64_t dim[SAL_MAX_DIMS];
    sal_model_input_shape(m, 0, &nd, dim);
    if (x.ndim == nd - 1 && nd > 1) { /* one sample: add the batch dimension */
        memmove(x.dim + 1, x.dim, sizeof(int64_t) * (size_t)x.ndim);
        x.dim[0] = 1;
        x.ndim++;
    }
    o.data = data ? &d : NULL;
    o.target_mask = tmask ? &mk : NULL;
    /* samples per sal_explain call: all at once, unless --batch; under mpirun or srun 16, whatever
     * the number of ranks, so that every rank count explains the same batches */
    if (!batch) batch = cli_launched() ? 16 : x.dim[0] > 0 ? x.dim[0] : 1;
    if (x.dtype != SAL_F32 || x.ndim < 1 || x.dim[0] < 1) { /* sal_explain says what is wrong */
        if ((st = sal_explain(m, &x, &o, &e)) != SAL_OK) goto fail;
    } else if (tmask && batch < x.dim[0]) {
        cli_error("explain", "--target-mask explains all samples at once: leave out --batch (and mpirun)");
        goto done;
    }
    if (!e && (st = explain_share(m, &x, o, batch, &e)) != SAL_OK) goto fail;
    if (cli_shard() && e && (st = sal_explanation_pack(e, &mine, &nmine)) != SAL_OK) goto fail;
    rc = 0;
    goto done;
fail:
    cli_fail("explain", st);
done:
    /* every rank's outcome; then the shares to rank 0, which writes */
    rc = cli_mpi_agree("explain", rc);
    if (!rc && cli_shard()) rc = (st = gather(&e, mine, nmine)) != SAL_OK ? cli_fail("explain", st) : 0;
    rc = cli_mpi_agree("explain", rc);
    if (!rc && cli_rank() == 0) rc = write_explanation(e, m, &o, path, out, layer_out, png, json, &x, in, &ho);
    rc = cli_mpi_agree("explain", rc);
    free(mine);
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_tensor_free(&d);
    sal_tensor_free(&mk);
    sal_model_free(m);
    return rc;
}

int cmd_explain(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_help, stdout), 0;
    cli_mpi_start();
    return cli_mpi_finish("explain", explain_main(argc, argv));
}

int cmd_methods(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        puts("usage: saliency methods\n\nLists every attribution method with its parameters and defaults.");
        return 0;
    }
    if (argc > 2) return cli_error("methods", "takes no arguments");
    for (int i = 0; i < sal_method_count(); i++) {
        printf("%s\n    %s\n", sal_method_name(i), sal_method_summary(i));
        if (sal_method_logits_note(i)) printf("    on a model that outputs probabilities: %s\n", sal_method_logits_note(i));
        for (int k = 0; k < sal_method_nparams(i); k++) {
            const char *name, *def, *help;
            sal_method_param(i, k, &name, &def, &help);
            printf("    --param %s=%s\n        %s\n", name, *def ? def : "<required>", help);
        }
    }
    return 0;
}
