/* saliency explain / saliency methods */
#include "cli.h"

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
    "  --chunk N             samples per batched pass (bounds memory; default: as many as keep a\n"
    "                        pass near 512 MiB, at most 64)\n"
    "  --json FILE           method, parameters with defaults, targets, outputs and checks\n"
    "  --layer-out L.npy     layer methods (gradcam, ...): the map at the layer's resolution (N,1,h,w)\n"
    "  --png FILE            also draw the maps as a heatmap PNG (a grid for several samples;\n"
    "                        saliency heatmap draws them with more options)\n"
    "  --overlay             with --png: draw each map over its input\n";

int cmd_explain(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_help, stdout), 0;
    const char *path = NULL, *in = NULL, *out = NULL, *json = NULL, *data = NULL, *target = "max", *range = NULL;
    const char *png = NULL, *layer_out = NULL, *tmask = NULL;
    cli_heatmap_opts ho = {.heat.colorbar = 1, .batched = 1};
    const char *params[64];
    static char rules[64][272]; /* "rule=" + the --rule values, which params point into */
    static char segs[1040];     /* "segments=" + the --segments path */
    int nr = 0;
    sal_explain_opts o = {0};
    int np = 0;
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (cli_is(&a, "--input")) in = cli_value(&a);
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
    char *js = NULL;
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
    if ((st = sal_explain(m, &x, &o, &e)) != SAL_OK) goto fail;
    if (sal_explanation_fallback(e))
        fprintf(stderr, "saliency explain: %s cannot run on %s (%s); explained with %s instead (--fallback)\n",
                o.method, path, sal_explanation_fallback(e), sal_explanation_method(e));
    sal_output_kind ok = sal_model_output_kind(m);
    for (int i = 0; i < sal_method_count() && (ok == SAL_OUTPUT_SOFTMAX || ok == SAL_OUTPUT_SIGMOID); i++)
        if (!strcmp(sal_method_name(i), o.method) && sal_method_logits_note(i))
            fprintf(stderr, "saliency explain: note: %s outputs probabilities; %s is defined on logits: %s\n", path,
                    o.method, sal_method_logits_note(i));
    if ((st = sal_npy_write(out, sal_explanation_map(e))) != SAL_OK) goto fail;
    if (layer_out) {
        const sal_tensor *lm = sal_explanation_layer_map(e);
        if (!lm) {
            cli_error("explain", "method %s gives no layer map for --layer-out (gradcam and the other one-layer "
                      "methods do)", o.method);
            goto done;
        }
        if ((st = sal_npy_write(layer_out, lm)) != SAL_OK) goto fail;
    }
    if (png && cli_heatmap_png("explain", png, sal_explanation_map(e), out, ho.heat.overlay ? &x : NULL, in, &ho))
        goto done;
    if (json) {
        if ((st = sal_explanation_json(e, &js)) != SAL_OK) goto fail;
        if ((st = sal_write_file(json, js, strlen(js))) != SAL_OK) goto fail;
    }
    rc = 0;
    goto done;
fail:
    cli_fail("explain", st);
done:
    free(js);
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_tensor_free(&d);
    sal_tensor_free(&mk);
    sal_model_free(m);
    return rc;
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
