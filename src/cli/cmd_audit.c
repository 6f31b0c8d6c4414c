/* saliency audit invariance|randomization|class-sensitivity|pointing|faithfulness */
#include "cli.h"
#include <math.h>
#include <sys/stat.h>

static const char k_help[] =
    "usage: saliency audit AUDIT MODEL.onnx --input X [options]\n\n"
    "Tests whether attribution methods can be trusted on a model and data (docs/audits.md).\n"
    "Audits:\n"
    "  invariance          Kindermans et al.: a model f2 with f2(x + m) = f1(x) should get the same maps\n"
    "  randomization       Adebayo et al.: maps must change when the weights are re-initialized\n"
    "  class-sensitivity   Rebuffi et al.: maps of the top and the bottom class must differ\n"
    "  pointing            pointing game and Khakzar et al.'s restricted pointing game (masks, labels)\n"
    "  faithfulness        deletion/insertion curves, AOPC, rank correlation with an occlusion map\n\n"
    "Inputs and methods (every audit):\n"
    "  --input X           an .npy batch (N, ...) (or one sample), or a data set name (mnist,\n"
    "                      fashion-mnist: its held-out part)\n"
    "  --limit N           audit only the first N samples (default: all)\n"
    "  --data D            reference data (.npy or a data set's training part): gradient_shap baselines\n"
    "                      and the input range (\"black\" baselines); default: the audited samples\n"
    "  --method NAME       a method to audit (repeatable; saliency methods lists them)\n"
    "  --param KEY=VALUE   a parameter of the --method before it (repeatable)\n"
    "  --methods all|A,B   every method of the table (the default), or a list, with default parameters\n"
    "  --output logit|prob explain (and measure) the logit (default) or the softmax probability\n"
    "  --tol T             verdict threshold (default per audit, see docs/audits.md)\n"
    "  --seed N            every random choice of the audit (default 1)\n"
    "  --batch N           samples per explanation call (default 16)\n"
    "  --chunk N           rows per batched pass inside a method (default: sized to the model, at most 64)\n"
    "Outputs:\n"
    "  --json FILE         the report as JSON     --csv FILE   results (or curves) as CSV\n"
    "  --figure FILE.png   a grid of maps         --figure-sample I   the sample it shows (default 0)\n"
    "  --plot FILE.png     randomization, faithfulness: the curves\n"
    "  --fail-on-violation exit 2 when a verdict fails (default: verdicts are data, exit 0)\n"
    "  --quiet             no table on stdout\n"
    "invariance:\n"
    "  --shift V           a constant shift, e.g. -1 (the paper's [0,1] -> [-1,0])\n"
    "  --checkerboard C,A  cells of C pixels alternating 0 and A\n"
    "  --shift-image FILE  a .png or .npy image (resized to the input) times --amp (default 1)\n"
    "  --target-image FILE the targeted shift of the paper's section 4: m = s / (df1(x)/dx) - x for\n"
    "                      sample --sample of X (default 0), clipped to [-clip, clip]\n"
    "  --clip C            default 0.3     --target-scale S   strength of s (default: max |grad x input|)\n"
    "  --save-shift M.npy  write the shift     --save-model F2.onnx   write the shifted model\n"
    "randomization:\n"
    "  --mode cascading|independent|both   (default both)\n"
    "  --init gaussian|scaled   N(0, sigma^2) (default, sigma 0.01) or N(0, 2/fan_in) with zero biases\n"
    "  --sigma S\n"
    "pointing:\n"
    "  --masks M.npy       (N,H,W) class + 1 per pixel (0: background), or (N,K,H,W)\n"
    "  --labels Y.npy      (N,K) multi-hot     --radius R   pixels of slack around a mask (default 0)\n"
    "faithfulness:\n"
    "  --steps N           points per curve (default 20)\n"
    "  --replace value[:V]|blur[:SIGMA]|noise[:SD]   what removed pixels become (default value:0;\n"
    "                      noise SD is a fraction of the input range, default 0.3; blur sigma 3)\n"
    "  --occlusion-param KEY=VALUE   options of the occlusion map compared with (repeatable)\n"
    "Exit status: 0 done (whatever the verdicts), 1 error, 2 a verdict failed with --fail-on-violation.\n";

#define MAX_METHODS 256
#define MAX_PARAMS 512

typedef struct {
    sal_audit_method meth[MAX_METHODS];
    const char *param[MAX_PARAMS];
    int start[MAX_METHODS];
    int nm, np;
} method_list;

static bool is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* An .npy file, or a data set name (its test part when `test` and it has one, else its training part). */
static sal_status load_array(const char *spec, bool test, sal_tensor *out) {
    size_t n = strlen(spec);
    if (is_file(spec) || (n > 4 && !strcmp(spec + n - 4, ".npy"))) return sal_npy_read(spec, out);
    sal_dataset d;
    sal_status st = sal_dataset_load(spec, &d);
    if (st != SAL_OK) return st;
    sal_tensor *src = test && d.test_x.data ? &d.test_x : &d.train_x;
    *out = *src;
    memset(src, 0, sizeof *src);
    sal_dataset_free(&d);
    return SAL_OK;
}

/* An image for a shift: a PNG, or an .npy (H,W) / (C,H,W) / (1,C,H,W). Returns 0, or 1 after
 * printing the error. */
static int load_image(const char *path, sal_tensor *out) {
    size_t n = strlen(path);
    sal_status st = n > 4 && !strcmp(path + n - 4, ".png") ? sal_png_read(path, out) : sal_npy_read(path, out);
    if (st != SAL_OK) return cli_fail("audit", st);
    if (out->ndim == 4 && out->dim[0] == 1) {
        memmove(out->dim, out->dim + 1, 3 * sizeof(int64_t));
        out->ndim = 3;
    }
    if (out->dtype != SAL_F32 || out->ndim < 2 || out->ndim > 3)
        return cli_error("audit", "%s: an image must be float (H,W) or (C,H,W)", path);
    return 0;
}

static int print_table(const char *audit, const sal_audit *a) {
    static const char *const keys[][4] = {
        {"invariance", "max_norm_diff", "spearman", "ssim"},
        {"randomization", "cascading_mean_hog_spearman", "final_hog_spearman", "final_spearman_abs"},
        {"class-sensitivity", "hog_spearman", "spearman", "hog_pearson"},
        {"pointing", "pointing_accuracy", "restricted_accuracy", "gap"},
        {"faithfulness", "aopc_morf", "deletion_morf_auc", "occlusion_spearman"},
    };
    int row = 0;
    for (int i = 0; i < 5; i++)
        if (!strcmp(keys[i][0], audit)) row = i;
    int w = 6;
    for (int i = 0; i < sal_audit_count(a); i++) {
        int l = (int)strlen(sal_audit_label(a, i));
        if (l > w) w = l;
    }
    if (w > 60) w = 60;
    printf("%-*s", w, "method");
    for (int k = 1; k < 4; k++) printf("  %14.14s", keys[row][k]);
    printf("  verdict\n");
    for (int i = 0; i < sal_audit_count(a); i++) {
        printf("%-*.*s", w, w, sal_audit_label(a, i));
        for (int k = 1; k < 4; k++) {
            double v = sal_audit_metric(a, i, keys[row][k]);
            if (isfinite(v)) printf("  %14.6g", v);
            else printf("  %14s", "-");
        }
        printf("  %s\n", sal_audit_verdict(a, i));
    }
    return 0;
}

int cmd_audit(int argc, char **argv) {
    if (argc < 3 || cli_wants_help(argc, argv)) {
        fputs(k_help, argc < 3 && !cli_wants_help(argc, argv) ? stderr : stdout);
        return argc < 3 && !cli_wants_help(argc, argv);
    }
    const char *audit = argv[2];
    static const char *const audits[] = {"invariance", "randomization", "class-sensitivity", "pointing", "faithfulness"};
    int which = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(audit, audits[i])) which = i;
    if (which < 0)
        return cli_error("audit", "unknown audit '%s' (invariance, randomization, class-sensitivity, pointing, "
                         "faithfulness)", audit);
    const char *path = NULL, *in = NULL, *data = NULL, *json = NULL, *csv = NULL, *methods = NULL;
    const char *shift_v = NULL, *checker = NULL, *shift_img = NULL, *target_img = NULL, *save_shift = NULL;
    const char *save_model = NULL, *masks = NULL, *labels = NULL, *replace = NULL, *mode = NULL, *init = NULL;
    double amp = 1, clip = 0.3, tscale = 0;
    long limit = 0, xsample = 0;
    bool fail_on = false, quiet = false;
    static method_list ml;
    memset(&ml, 0, sizeof ml);
    const char *occ[64];
    int nocc = 0;
    sal_audit_opts o = {.seed = 1};
    cli_args a = cli_args_start(argc, argv, 3);
    while (cli_next(&a)) {
        if (cli_is(&a, "--input")) in = cli_value(&a);
        else if (cli_is(&a, "--data")) data = cli_value(&a);
        else if (cli_is(&a, "--limit")) limit = cli_long(&a, 1, 1L << 40);
        else if (cli_is(&a, "--json")) json = cli_value(&a);
        else if (cli_is(&a, "--csv")) csv = cli_value(&a);
        else if (cli_is(&a, "--figure")) o.figure = cli_value(&a);
        else if (cli_is(&a, "--figure-sample")) o.figure_sample = cli_long(&a, 0, 1L << 40);
        else if (cli_is(&a, "--plot")) o.plot = cli_value(&a);
        else if (cli_is(&a, "--tol")) o.tol = cli_double(&a);
        else if (cli_is(&a, "--seed")) o.seed = (uint64_t)cli_long(&a, 0, 0x7fffffffL);
        else if (cli_is(&a, "--batch")) o.batch = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--chunk")) o.chunk = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--fail-on-violation")) fail_on = true;
        else if (cli_is(&a, "--quiet")) quiet = true;
        else if (cli_is(&a, "--methods")) methods = cli_value(&a);
        else if (cli_is(&a, "--method")) {
            if (ml.nm == MAX_METHODS) return cli_error("audit", "too many --method options (at most %d)", MAX_METHODS);
            ml.meth[ml.nm].name = cli_value(&a);
            ml.start[ml.nm++] = ml.np;
        } else if (cli_is(&a, "--param")) {
            const char *v = cli_value(&a);
            if (!ml.nm && !a.error) return cli_error("audit", "--param %s must follow the --method it belongs to", v);
            if (ml.np == MAX_PARAMS) return cli_error("audit", "too many --param options");
            ml.param[ml.np++] = v;
        } else if (cli_is(&a, "--output")) {
            const char *v = cli_value(&a);
            if (!strcmp(v, "prob")) o.prob = 1;
            else if (strcmp(v, "logit") && !a.error) return cli_error("audit", "--output must be logit or prob, not '%s'", v);
        }
        /* invariance */
        else if (cli_is(&a, "--shift")) shift_v = cli_value(&a);
        else if (cli_is(&a, "--checkerboard")) checker = cli_value(&a);
        else if (cli_is(&a, "--shift-image")) shift_img = cli_value(&a);
        else if (cli_is(&a, "--amp")) amp = cli_double(&a);
        else if (cli_is(&a, "--target-image")) target_img = cli_value(&a);
        else if (cli_is(&a, "--sample")) xsample = cli_long(&a, 0, 1L << 40);
        else if (cli_is(&a, "--clip")) clip = cli_double(&a);
        else if (cli_is(&a, "--target-scale")) tscale = cli_double(&a);
        else if (cli_is(&a, "--save-shift")) save_shift = cli_value(&a);
        else if (cli_is(&a, "--save-model")) save_model = cli_value(&a);
        /* randomization */
        else if (cli_is(&a, "--mode")) mode = cli_value(&a);
        else if (cli_is(&a, "--init")) init = cli_value(&a);
        else if (cli_is(&a, "--sigma")) o.sigma = cli_double(&a);
        /* pointing */
        else if (cli_is(&a, "--masks")) masks = cli_value(&a);
        else if (cli_is(&a, "--labels")) labels = cli_value(&a);
        else if (cli_is(&a, "--radius")) o.radius = (int)cli_long(&a, 0, 1 << 20);
        /* faithfulness */
        else if (cli_is(&a, "--steps")) o.steps = (int)cli_long(&a, 1, 10000);
        else if (cli_is(&a, "--replace")) replace = cli_value(&a);
        else if (cli_is(&a, "--occlusion-param")) {
            if (nocc == 64) return cli_error("audit", "too many --occlusion-param options");
            occ[nocc++] = cli_value(&a);
        } else if (!a.opt && !path) path = a.pos;
        else return cli_unknown(&a, "audit");
    }
    if (a.error) return 1;
    if (!path) return cli_error("audit", "missing MODEL.onnx (see saliency audit --help)");
    if (!in) return cli_error("audit", "missing --input X.npy (or a data set name)");
    if (o.tol < 0 || !isfinite(o.tol)) return cli_error("audit", "--tol must be a non-negative number");
    if (o.sigma < 0 || !isfinite(o.sigma)) return cli_error("audit", "--sigma must be positive");
    if (ml.nm && methods) return cli_error("audit", "give either --method (with its --param) or --methods, not both");
    /* options that belong to one audit only */
    const struct {
        const void *set;
        const char *opt;
        int audit;
    } only[] = {
        {shift_v, "--shift", 0}, {checker, "--checkerboard", 0}, {shift_img, "--shift-image", 0},
        {target_img, "--target-image", 0}, {save_shift, "--save-shift", 0}, {save_model, "--save-model", 0},
        {mode, "--mode", 1}, {init, "--init", 1}, {masks, "--masks", 3}, {labels, "--labels", 3},
        {replace, "--replace", 4}, {nocc ? "" : NULL, "--occlusion-param", 4},
    };
    for (size_t i = 0; i < sizeof only / sizeof only[0]; i++)
        if (only[i].set && only[i].audit != which)
            return cli_error("audit", "%s belongs to the %s audit, not %s", only[i].opt, audits[only[i].audit], audit);
    if (o.plot && which != 1 && which != 4)
        return cli_error("audit", "--plot draws the curves of the randomization and faithfulness audits");
    /* methods: --method NAME [--param K=V]..., --methods all|A,B, or every method by default */
    static char mbuf[4096];
    if (methods && strcmp(methods, "all")) {
        snprintf(mbuf, sizeof mbuf, "%s", methods);
        for (char *tok = strtok(mbuf, ","); tok; tok = strtok(NULL, ",")) {
            if (ml.nm == MAX_METHODS) return cli_error("audit", "too many methods in --methods");
            ml.meth[ml.nm++].name = tok;
        }
        if (!ml.nm) return cli_error("audit", "--methods needs 'all' or a list of method names");
    }
    for (int i = 0; i < ml.nm; i++) {
        int end = i + 1 < ml.nm ? ml.start[i + 1] : ml.np;
        if (methods) end = ml.start[i]; /* names from --methods take no parameters */
        ml.meth[i].params = ml.param + ml.start[i];
        ml.meth[i].nparams = end - ml.start[i];
        bool known = false;
        for (int k = 0; k < sal_method_count() && !known; k++) known = !strcmp(sal_method_name(k), ml.meth[i].name);
        if (!known) return cli_error("audit", "unknown method '%s' (saliency methods lists them)", ml.meth[i].name);
    }
    o.methods = ml.nm ? ml.meth : NULL;
    o.nmethods = ml.nm;
    o.nocc_params = nocc;
    o.occ_params = occ;
    o.model_name = path;
    o.progress = 1;
    if (mode) {
        if (!strcmp(mode, "cascading")) o.mode = 1;
        else if (!strcmp(mode, "independent")) o.mode = 2;
        else if (!strcmp(mode, "both")) o.mode = 3;
        else return cli_error("audit", "--mode must be cascading, independent or both, not '%s'", mode);
    }
    if (init) {
        if (!strcmp(init, "scaled")) o.scaled = 1;
        else if (strcmp(init, "gaussian")) return cli_error("audit", "--init must be gaussian or scaled, not '%s'", init);
    }
    if (replace) {
        const char *colon = strchr(replace, ':');
        size_t k = colon ? (size_t)(colon - replace) : strlen(replace);
        double v = NAN;
        if (colon) {
            char *end;
            v = strtod(colon + 1, &end);
            if (end == colon + 1 || *end || !isfinite(v))
                return cli_error("audit", "--replace %s: '%s' is not a number", replace, colon + 1);
        }
        if (k == 5 && !strncmp(replace, "value", 5)) o.replace = SAL_REPLACE_VALUE, o.value = colon ? v : 0;
        else if (k == 4 && !strncmp(replace, "blur", 4)) o.replace = SAL_REPLACE_BLUR, o.blur_sigma = colon ? v : 0;
        else if (k == 5 && !strncmp(replace, "noise", 5)) o.replace = SAL_REPLACE_NOISE, o.noise = colon ? v : 0;
        else return cli_error("audit", "--replace must be value[:V], blur[:SIGMA] or noise[:SD], not '%s'", replace);
        if ((o.replace != SAL_REPLACE_VALUE && colon && !(v > 0)))
            return cli_error("audit", "--replace %s: the blur sigma or noise level must be positive", replace);
    }
    if (which == 0) {
        int nshift = !!shift_v + !!checker + !!shift_img + !!target_img;
        if (nshift != 1)
            return cli_error("audit", "invariance needs exactly one of --shift, --checkerboard, --shift-image, "
                             "--target-image");
        if (!(clip > 0)) return cli_error("audit", "--clip must be positive");
    }
    if (which == 3 && (!masks || !labels)) return cli_error("audit", "pointing needs --masks M.npy and --labels Y.npy");

    sal_model *m = NULL, *f2 = NULL;
    sal_tensor x = {0}, d = {0}, shift = {0}, img = {0}, mk = {0}, lb = {0};
    sal_audit *rep = NULL;
    char *js = NULL, *cs = NULL;
    int rc = 1;
    sal_status st = sal_model_load(path, &m);
    if (st == SAL_OK) st = load_array(in, true, &x);
    if (st == SAL_OK && data) st = load_array(data, false, &d);
    if (st != SAL_OK) goto fail;
    int nd;
    int64_t dim[SAL_MAX_DIMS];
    sal_model_input_shape(m, 0, &nd, dim);
    if (x.ndim == nd - 1 && nd > 1) { /* one sample: add the batch dimension */
        memmove(x.dim + 1, x.dim, sizeof(int64_t) * (size_t)x.ndim);
        x.dim[0] = 1;
        x.ndim++;
    }
    if (x.dtype != SAL_F32 || x.ndim < 2 || x.dim[0] < 1) {
        cli_error("audit", "%s: the input must be a float batch (N, ...)", in);
        goto done;
    }
    if (limit && limit < x.dim[0]) x.dim[0] = limit;
    o.data = data ? &d : NULL;
    o.data_name = data ? data : in;
    if (which == 0) {
        const int64_t *sdim = x.dim + 1;
        int sn = x.ndim - 1;
        if (shift_v) {
            char *end;
            double v = strtod(shift_v, &end);
            if (end == shift_v || *end || !isfinite(v)) {
                cli_error("audit", "--shift must be a number, not '%s'", shift_v);
                goto done;
            }
            if ((st = sal_tensor_alloc(&shift, SAL_F32, sn, sdim)) != SAL_OK) goto fail;
            for (int64_t i = 0; i < sal_tensor_numel(&shift); i++) sal_f32(&shift)[i] = (float)v;
        } else if (checker) {
            char *end;
            long cell = strtol(checker, &end, 10);
            double amp2 = *end == ',' ? strtod(end + 1, &end) : NAN;
            if (*end || cell < 1 || cell > 1 << 20 || !isfinite(amp2)) {
                cli_error("audit", "--checkerboard must read CELL,AMPLITUDE (e.g. 4,0.5), not '%s'", checker);
                goto done;
            }
            if ((st = sal_shift_checkerboard(sn, sdim, (int)cell, amp2, &shift)) != SAL_OK) goto fail;
        } else if (shift_img) {
            if (load_image(shift_img, &img)) goto done;
            if ((st = sal_shift_image(&img, sn, sdim, amp, &shift)) != SAL_OK) {
                cli_error("audit", "%s: %s", shift_img, sal_last_error());
                goto done;
            }
        } else {
            if (xsample >= x.dim[0]) {
                cli_error("audit", "--sample %ld is out of range (%lld samples)", xsample, (long long)x.dim[0]);
                goto done;
            }
            if (load_image(target_img, &img)) goto done;
            sal_tensor one = x;
            one.cap = 0;
            one.dim[0] = 1;
            one.data = sal_f32(&x) + xsample * (sal_tensor_numel(&x) / x.dim[0]);
            if ((st = sal_shift_targeted(m, &one, &img, tscale, clip, &shift)) != SAL_OK) {
                cli_error("audit", "%s: %s", target_img, sal_last_error());
                goto done;
            }
        }
        o.shift = &shift;
        if (save_shift && (st = sal_npy_write(save_shift, &shift)) != SAL_OK) goto fail;
        if (save_model) {
            if ((st = sal_model_shifted(m, &shift, &f2)) != SAL_OK) goto fail;
            if ((st = sal_model_save(f2, save_model)) != SAL_OK) goto fail;
        }
        st = sal_audit_invariance(m, &x, &o, &rep);
    } else if (which == 1) {
        st = sal_audit_randomization(m, &x, &o, &rep);
    } else if (which == 2) {
        st = sal_audit_class_sensitivity(m, &x, &o, &rep);
    } else if (which == 3) {
        if ((st = sal_npy_read(masks, &mk)) != SAL_OK || (st = sal_npy_read(labels, &lb)) != SAL_OK) goto fail;
        if (limit && mk.ndim >= 1 && limit < mk.dim[0]) mk.dim[0] = limit;
        if (limit && lb.ndim >= 1 && limit < lb.dim[0]) lb.dim[0] = limit;
        o.masks = &mk;
        o.labels = &lb;
        st = sal_audit_pointing(m, &x, &o, &rep);
    } else {
        st = sal_audit_faithfulness(m, &x, &o, &rep);
    }
    if (st != SAL_OK) goto fail;
    int ran = 0;
    for (int i = 0; i < sal_audit_count(rep); i++) {
        if (!sal_audit_skipped(rep, i)) {
            ran++;
            continue;
        }
        if (ml.nm) /* a method the user named: say why it did not run */
            fprintf(stderr, "saliency audit: %s %s\n", sal_audit_label(rep, i), sal_audit_verdict(rep, i));
    }
    if (!ran) { /* nothing was audited: an error, and no report */
        cli_error("audit", "no method could run on this model and data (see the reasons above)");
        goto done;
    }
    if (json) {
        if ((st = sal_audit_json(rep, &js)) != SAL_OK || (st = sal_write_file(json, js, strlen(js))) != SAL_OK) goto fail;
    }
    if (csv) {
        if ((st = sal_audit_csv(rep, &cs)) != SAL_OK || (st = sal_write_file(csv, cs, strlen(cs))) != SAL_OK) goto fail;
    }
    if (!quiet) print_table(audit, rep);
    rc = fail_on && sal_audit_violations(rep) ? 2 : 0;
    goto done;
fail:
    cli_fail("audit", st);
done:
    free(js);
    free(cs);
    sal_audit_free(rep);
    sal_model_free(m);
    sal_model_free(f2);
    sal_tensor_free(&x);
    sal_tensor_free(&d);
    sal_tensor_free(&shift);
    sal_tensor_free(&img);
    sal_tensor_free(&mk);
    sal_tensor_free(&lb);
    return rc;
}
