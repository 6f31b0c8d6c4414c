/* saliency info MODEL.onnx */
#include "cli.h"

static const char k_help[] =
    "usage: saliency info MODEL.onnx [--batch N]\n"
    "       saliency info MODEL.onnx --rules METHOD [--param KEY=VALUE ...] [--output-name NAME]\n\n"
    "Prints the model's inputs, outputs, nodes (name, op, output shapes) and parameter count.\n"
    "Shapes come from a forward pass on zeros at batch N (default 1).\n"
    "With --rules, prints instead the backward rule every node gets from METHOD (the LRP methods,\n"
    "deep_taylor, deconvnet, guided_backprop, rectgrad, rectgrad_mod, deeplift) with its parameters.\n";

/* --rules METHOD: a table of node, op and rule. */
static int print_rules(const sal_model *m, const char *method, int np, const char *const *params, const char *out) {
    char **rules = NULL;
    sal_status st = sal_method_rules(m, method, np, params, out, &rules);
    if (st != SAL_OK) return cli_fail("info", st);
    printf("%-4s %-40s %-20s %s\n", "#", "node", "op", "rule");
    for (int i = 0; i < sal_model_num_nodes(m); i++)
        printf("%-4d %-40s %-20s %s\n", i, sal_model_node_name(m, i), sal_model_node_op(m, i), rules[i]);
    sal_method_rules_free(rules, sal_model_num_nodes(m));
    return 0;
}

static void print_shape(const sal_tensor *t) {
    printf("(");
    for (int d = 0; d < t->ndim; d++) printf(d ? ",%lld" : "%lld", (long long)t->dim[d]);
    printf(")");
}

int cmd_info(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_help, stdout), 0;
    const char *path = NULL, *rules = NULL, *outname = NULL, *params[64];
    int np = 0;
    long batch = 1;
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (cli_is(&a, "--batch")) batch = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--rules")) rules = cli_value(&a);
        else if (cli_is(&a, "--output-name")) outname = cli_value(&a);
        else if (cli_is(&a, "--param")) {
            if (np == 64) return cli_error("info", "too many --param options");
            params[np++] = cli_value(&a);
        }
        else if (!a.opt && !path) path = a.pos;
        else return cli_unknown(&a, "info");
    }
    if (a.error) return 1;
    if (!path) return cli_error("info", "missing MODEL.onnx (see saliency info --help)");
    sal_model *m;
    if ((np || outname) && !rules) return cli_error("info", "--param and --output-name go with --rules METHOD");
    sal_status st = sal_model_load(path, &m);
    if (st != SAL_OK) return cli_fail("info", st);
    if (rules) {
        int rc = print_rules(m, rules, np, params, outname);
        sal_model_free(m);
        return rc;
    }
    printf("model     %s\nproducer  %s\nopset     %lld\nparams    %lld\n", path, sal_model_producer(m),
           (long long)sal_model_opset(m), (long long)sal_model_param_count(m));
    /* a dry run on zeros gives every value's shape */
    int nin = sal_model_num_inputs(m);
    sal_tensor *x = calloc((size_t)nin + 1, sizeof *x);
    sal_session *s = NULL;
    bool shapes = x != NULL;
    for (int i = 0; i < nin && shapes; i++) {
        int nd;
        int64_t dim[SAL_MAX_DIMS];
        sal_model_input_shape(m, i, &nd, dim);
        printf("input     %s ", sal_model_input_name(m, i));
        for (int d = 0; d < nd; d++) {
            printf(d ? ",%lld" : "(%lld", (long long)dim[d]);
            if (dim[d] < 0) dim[d] = batch;
        }
        printf(")\n");
        shapes = sal_tensor_alloc(&x[i], SAL_F32, nd, dim) == SAL_OK;
    }
    const sal_tensor *outs[64];
    if (shapes && sal_model_num_outputs(m) <= 64)
        /* a non-finite output on zeros (a Log, say) still leaves every shape known */
        shapes = sal_session_new(m, &s) == SAL_OK && ((st = sal_forward(s, nin, x, outs)) == SAL_OK || st == SAL_ERR_NUMERIC);
    if (!shapes) printf("(shapes unavailable: %s)\n", sal_last_error());
    for (int i = 0; i < sal_model_num_outputs(m); i++) {
        printf("output    %s ", sal_model_output_name(m, i));
        const sal_tensor *t = shapes ? sal_session_value(s, sal_model_output_name(m, i)) : NULL;
        if (t) print_shape(t);
        printf("\n");
    }
    static const char *const kinds[] = {"scores (logits)", "probabilities (Softmax)", "probabilities per class (Sigmoid)",
                                        "log-probabilities (LogSoftmax)"};
    sal_output_kind ok = sal_model_output_kind(m);
    printf("outputs   %s\n", kinds[ok]);
    if (ok == SAL_OUTPUT_SOFTMAX || ok == SAL_OUTPUT_SIGMOID) {
        printf("          --output prob takes them as they are (no second softmax), and --output logit explains\n"
               "          them too: the logits lie inside the model. Methods defined on logits:");
        for (int i = 0, k = 0; i < sal_method_count(); i++)
            if (sal_method_logits_note(i)) printf("%s %s", k++ ? "," : "", sal_method_name(i));
        printf(" (saliency methods says why)\n");
    }
    printf("\n%-4s %-28s %-20s %s\n", "#", "node", "op", shapes ? "output shapes" : "outputs");
    for (int i = 0; i < sal_model_num_nodes(m); i++) {
        printf("%-4d %-28s %-20s ", i, sal_model_node_name(m, i), sal_model_node_op(m, i));
        for (int k = 0; k < sal_model_node_num_outputs(m, i); k++) {
            const char *o = sal_model_node_output(m, i, k);
            const sal_tensor *t = shapes && *o ? sal_session_value(s, o) : NULL;
            if (k) printf(" ");
            if (t) print_shape(t);
            else printf("%s", o);
        }
        printf("\n");
    }
    /* layers a CAM method can use, with the default marked */
    int *cam = NULL, ncam = 0;
    if (shapes && sal_cam_layers(s, NULL, 0, &ncam) == SAL_OK && ncam > 0 && (cam = calloc((size_t)ncam, sizeof *cam)) &&
        sal_cam_layers(s, cam, ncam, &ncam) == SAL_OK) {
        printf("\nlayers for gradcam and the other layer methods (--param layer=NAME):\n");
        for (int j = 0; j < ncam; j++) {
            const sal_tensor *t = sal_session_value(s, sal_model_node_output(m, cam[j], 0));
            printf("  %-28s ", sal_model_node_name(m, cam[j]));
            if (t) print_shape(t);
            printf("%s\n", j == ncam - 1 ? "  (default)" : "");
        }
    }
    free(cam);
    for (int i = 0; i < nin && x; i++) sal_tensor_free(&x[i]);
    free(x);
    sal_session_free(s);
    sal_model_free(m);
    return 0;
}
