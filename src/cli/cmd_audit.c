/* saliency audit invariance|randomization|class-sensitivity|pointing|faithfulness|motif */
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
    "  faithfulness        deletion/insertion curves, AOPC, rank correlation with an occlusion map\n"
    "  motif               one-hot DNA with planted motifs: AUROC/AUPRC of the planted positions\n\n"
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
    "  --own-decisions     f2's maps from its own activations (default: f1's beyond the first layer, equal\n"
    "                      up to rounding, so rounding cannot break f1's exact max-pool ties differently)\n"
    "randomization:\n"
    "  --mode cascading|independent|both   (default both)\n"
    "  --init gaussian|scaled   N(0, sigma^2) (default, sigma 0.01) or N(0, 2/fan_in) with zero biases\n"
    "  --sigma S\n"
    "pointing:\n"
    "  --masks M.npy       (N,H,W) class + 1 per pixel (0: background), or (N,K,H,W)\n"
    "  --labels Y.npy      (N,K) multi-hot\n"
    "  --radius R          a hit lies closer than R pixels to the object (default: TorchRay's 15 at 224,\n"
    "                      scaled with the image; a negative R: on the object itself)\n"
    "  --point-map energy|max_abs|sum   the plane the maximum is taken on (default energy: sum of |map|)\n"
    "faithfulness:\n"
    "  --steps N           points per curve (default 20)\n"
    "  --replace value[:V]|blur[:SIGMA]|noise[:SD]   what removed pixels become (default value:0;\n"
    "                      noise SD is a fraction of the input range, default 0.3; blur sigma 3)\n"
    "  --occlusion-param KEY=VALUE   options of the occlusion map compared with (repeatable)\n"
    "motif (docs/sequences.md):\n"
    "  --masks M.npy       (N, L) planted positions, non-zero on a motif (saliency data dna)\n"
    "  --position-score abs|own|sum   a position's score: sum over bases of |map| (default), the\n"
    "                      map at the sequence's own base, or the signed sum\n"
    "  --logos FILE.svg    sequence logos of the --figure-sample: its bases, each method's map, the\n"
    "                      planted positions shaded (the report shows NAME-logos.svg beside NAME.json)\n"
    "Under mpirun or srun the ranks share the batches and rank 0 writes the same files, to the byte\n"
    "(docs/scaling.md).\n"
    "Exit status: 0 done (whatever the verdicts), 1 error, 2 a verdict failed with --fail-on-violation.\n";

#define MAX_METHODS 256
#define MAX_PARAMS 512

enum { INVARIANCE, RANDOMIZATION, CLASS, POINTING, FAITHFULNESS, MOTIF, NAUDITS };
static const char *const k_audits[] = {"invariance", "randomization", "class-sensitivity", "pointing", "faithfulness",
                                       "motif"};

/* What the command line asks for. */
typedef struct {
    int which;
    const char *path, *in, *data, *json, *csv, *figure, *plot, *methods;
    long limit;
    bool fail_on, quiet;
    sal_audit_common common;
    sal_audit_method meth[MAX_METHODS];
    const char *param[MAX_PARAMS];
    int start[MAX_METHODS], nm, np;
    /* invariance: one of the shifts */
    const char *shift_v, *checker, *shift_img, *target_img, *save_shift, *save_model;
    double amp, clip, tscale;
    bool own;
    long xsample;
    sal_randomization_opts rnd;
    const char *mode, *init;
    sal_pointing_opts pt;
    const char *masks, *labels, *point_map;
    sal_faithfulness_opts fa;
    const char *replace, *occ[64];
    int nocc;
    sal_motif_opts mo;
    const char *pos_score, *logos;
} audit_args;

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

static int print_table(int which, const sal_audit *a) {
    static const char *const keys[][3] = {
        {"max_norm_diff", "spearman", "ssim"},
        {"cascading_mean_hog_spearman", "final_hog_spearman", "final_spearman_abs"},
        {"hog_spearman", "spearman", "hog_pearson"},
        {"pointing_accuracy", "restricted_accuracy", "gap"},
        {"aopc_morf", "deletion_morf_auc", "occlusion_spearman"},
        {"auroc", "auprc", "samples_scored"},
    };
    int w = 6;
    for (int i = 0; i < sal_audit_count(a); i++) {
        int l = (int)strlen(sal_audit_label(a, i));
        if (l > w) w = l;
    }
    if (w > 60) w = 60;
    printf("%-*s", w, "method");
    for (int k = 0; k < 3; k++) printf("  %14.14s", keys[which][k]);
    printf("  verdict\n");
    for (int i = 0; i < sal_audit_count(a); i++) {
        printf("%-*.*s", w, w, sal_audit_label(a, i));
        for (int k = 0; k < 3; k++) {
            double v = sal_audit_metric(a, i, keys[which][k]);
            if (isfinite(v)) printf("  %14.6g", v);
            else printf("  %14s", "-");
        }
        printf("  %s\n", sal_audit_verdict(a, i));
    }
    return 0;
}

/* One option of an audit; false when it is none of them. */
static bool audit_option(cli_args *a, audit_args *g) {
    if (cli_is(a, "--shift")) g->shift_v = cli_value(a);
    else if (cli_is(a, "--checkerboard")) g->checker = cli_value(a);
    else if (cli_is(a, "--shift-image")) g->shift_img = cli_value(a);
    else if (cli_is(a, "--amp")) g->amp = cli_double(a);
    else if (cli_is(a, "--target-image")) g->target_img = cli_value(a);
    else if (cli_is(a, "--sample")) g->xsample = cli_long(a, 0, 1L << 40);
    else if (cli_is(a, "--clip")) g->clip = cli_double(a);
    else if (cli_is(a, "--target-scale")) g->tscale = cli_double(a);
    else if (cli_is(a, "--save-shift")) g->save_shift = cli_value(a);
    else if (cli_is(a, "--save-model")) g->save_model = cli_value(a);
    else if (cli_is(a, "--own-decisions")) g->own = true;
    else if (cli_is(a, "--mode")) g->mode = cli_value(a);
    else if (cli_is(a, "--init")) g->init = cli_value(a);
    else if (cli_is(a, "--sigma")) g->rnd.sigma = cli_double(a);
    else if (cli_is(a, "--masks")) g->masks = cli_value(a);
    else if (cli_is(a, "--labels")) g->labels = cli_value(a);
    else if (cli_is(a, "--radius")) g->pt.radius = cli_double(a);
    else if (cli_is(a, "--point-map")) g->point_map = cli_value(a);
    else if (cli_is(a, "--position-score")) g->pos_score = cli_value(a);
    else if (cli_is(a, "--logos")) g->logos = cli_value(a);
    else if (cli_is(a, "--steps")) g->fa.steps = (int)cli_long(a, 1, 10000);
    else if (cli_is(a, "--replace")) g->replace = cli_value(a);
    else if (cli_is(a, "--occlusion-param")) {
        if (g->nocc < 64) g->occ[g->nocc++] = cli_value(a);
        else a->error = cli_error("audit", "too many --occlusion-param options");
    } else return false;
    return true;
}

/* The options every audit shares; 0 done, 1 after printing an error. */
static int parse(int argc, char **argv, audit_args *g) {
    sal_audit_common *o = &g->common;
    cli_args a = cli_args_start(argc, argv, 3);
    while (cli_next(&a)) {
        if (cli_is(&a, "--input")) g->in = cli_value(&a);
        else if (cli_is(&a, "--data")) g->data = cli_value(&a);
        else if (cli_is(&a, "--limit")) g->limit = cli_long(&a, 1, 1L << 40);
        else if (cli_is(&a, "--json")) g->json = cli_value(&a);
        else if (cli_is(&a, "--csv")) g->csv = cli_value(&a);
        else if (cli_is(&a, "--figure")) g->figure = cli_value(&a);
        else if (cli_is(&a, "--figure-sample")) o->figure_sample = cli_long(&a, 0, 1L << 40);
        else if (cli_is(&a, "--plot")) g->plot = cli_value(&a);
        else if (cli_is(&a, "--tol")) o->tol = cli_double(&a);
        else if (cli_is(&a, "--seed")) o->seed = (uint64_t)cli_long(&a, 0, 0x7fffffffL);
        else if (cli_is(&a, "--batch")) o->batch = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--chunk")) o->chunk = cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--fail-on-violation")) g->fail_on = true;
        else if (cli_is(&a, "--quiet")) g->quiet = true;
        else if (cli_is(&a, "--methods")) g->methods = cli_value(&a);
        else if (cli_is(&a, "--method")) {
            if (g->nm == MAX_METHODS) return cli_error("audit", "too many --method options (at most %d)", MAX_METHODS);
            g->meth[g->nm].name = cli_value(&a);
            g->start[g->nm++] = g->np;
        } else if (cli_is(&a, "--param")) {
            const char *v = cli_value(&a);
            if (!g->nm && !a.error) return cli_error("audit", "--param %s must follow the --method it belongs to", v);
            if (g->np == MAX_PARAMS) return cli_error("audit", "too many --param options");
            g->param[g->np++] = v;
        } else if (cli_is(&a, "--output")) {
            const char *v = cli_value(&a);
            if (!strcmp(v, "prob")) o->prob = 1;
            else if (strcmp(v, "logit") && !a.error) return cli_error("audit", "--output must be logit or prob, not '%s'", v);
        } else if (audit_option(&a, g)) {
        } else if (!a.opt && !g->path) g->path = a.pos;
        else return cli_unknown(&a, "audit");
    }
    if (a.error) return 1;
    if (!g->path) return cli_error("audit", "missing MODEL.onnx (see saliency audit --help)");
    if (!g->in) return cli_error("audit", "missing --input X.npy (or a data set name)");
    if (o->tol < 0 || !isfinite(o->tol)) return cli_error("audit", "--tol must be a non-negative number");
    if (g->rnd.sigma < 0 || !isfinite(g->rnd.sigma)) return cli_error("audit", "--sigma must be positive");
    if (g->nm && g->methods) return cli_error("audit", "give either --method (with its --param) or --methods, not both");
    return 0;
}

/* Options that belong to one audit only, and the methods: --method NAME [--param K=V]..., --methods
 * all|A,B, or every method by default. */
static int check(audit_args *g) {
    const struct {
        const void *set;
        const char *opt;
        int audit;
    } only[] = {
        {g->shift_v, "--shift", INVARIANCE}, {g->checker, "--checkerboard", INVARIANCE},
        {g->shift_img, "--shift-image", INVARIANCE}, {g->target_img, "--target-image", INVARIANCE},
        {g->save_shift, "--save-shift", INVARIANCE}, {g->save_model, "--save-model", INVARIANCE},
        {g->own ? "" : NULL, "--own-decisions", INVARIANCE},
        {g->mode, "--mode", RANDOMIZATION}, {g->init, "--init", RANDOMIZATION},
        {g->masks && g->which != MOTIF ? g->masks : NULL, "--masks", POINTING}, {g->pos_score, "--position-score", MOTIF}, {g->logos, "--logos", MOTIF},
        {g->labels, "--labels", POINTING}, {g->point_map, "--point-map", POINTING}, {g->replace, "--replace", FAITHFULNESS},
        {g->nocc ? "" : NULL, "--occlusion-param", FAITHFULNESS},
    };
    for (size_t i = 0; i < sizeof only / sizeof only[0]; i++)
        if (only[i].set && only[i].audit != g->which)
            return cli_error("audit", "%s belongs to the %s audit, not %s", only[i].opt, k_audits[only[i].audit],
                             k_audits[g->which]);
    if (g->figure && g->which == MOTIF)
        return cli_error("audit", "the motif audit draws no figure grid (sequence logos: --logos FILE.svg)");
    if (g->plot && g->which != RANDOMIZATION && g->which != FAITHFULNESS)
        return cli_error("audit", "--plot draws the curves of the randomization and faithfulness audits");
    static char mbuf[4096];
    if (g->methods && strcmp(g->methods, "all")) {
        snprintf(mbuf, sizeof mbuf, "%s", g->methods);
        for (char *tok = strtok(mbuf, ","); tok; tok = strtok(NULL, ",")) {
            if (g->nm == MAX_METHODS) return cli_error("audit", "too many methods in --methods");
            g->meth[g->nm++].name = tok;
        }
        if (!g->nm) return cli_error("audit", "--methods needs 'all' or a list of method names");
    }
    for (int i = 0; i < g->nm; i++) {
        int end = i + 1 < g->nm ? g->start[i + 1] : g->np;
        if (g->methods) end = g->start[i]; /* names from --methods take no parameters */
        g->meth[i].params = g->param + g->start[i];
        g->meth[i].nparams = end - g->start[i];
        bool known = false;
        for (int k = 0; k < sal_method_count() && !known; k++) known = !strcmp(sal_method_name(k), g->meth[i].name);
        if (!known) return cli_error("audit", "unknown method '%s' (saliency methods lists them)", g->meth[i].name);
    }
    g->common.methods = g->nm ? g->meth : NULL;
    g->common.nmethods = g->nm;
    return 0;
}

/* The audit-specific choices given as words. */
static int choices(audit_args *g) {
    if (g->mode) {
        if (!strcmp(g->mode, "cascading")) g->rnd.mode = 1;
        else if (!strcmp(g->mode, "independent")) g->rnd.mode = 2;
        else if (!strcmp(g->mode, "both")) g->rnd.mode = 3;
        else return cli_error("audit", "--mode must be cascading, independent or both, not '%s'", g->mode);
    }
    if (g->init) {
        if (!strcmp(g->init, "scaled")) g->rnd.scaled = 1;
        else if (strcmp(g->init, "gaussian")) return cli_error("audit", "--init must be gaussian or scaled, not '%s'", g->init);
    }
    if (g->point_map) {
        static const char *const how[] = {"energy", "max_abs", "sum"};
        int k = 0;
        while (k < 3 && strcmp(g->point_map, how[k])) k++;
        if (k == 3) return cli_error("audit", "--point-map must be energy, max_abs or sum, not '%s'", g->point_map);
        g->pt.reduce = (sal_point_map)k;
    }
    if (g->replace) {
        const char *r = g->replace, *colon = strchr(r, ':');
        size_t k = colon ? (size_t)(colon - r) : strlen(r);
        double v = NAN;
        char *end;
        if (colon && ((v = strtod(colon + 1, &end)), end == colon + 1 || *end || !isfinite(v)))
            return cli_error("audit", "--replace %s: '%s' is not a number", r, colon + 1);
        sal_faithfulness_opts *f = &g->fa;
        if (k == 5 && !strncmp(r, "value", 5)) f->replace = SAL_REPLACE_VALUE, f->value = colon ? v : 0;
        else if (k == 4 && !strncmp(r, "blur", 4)) f->replace = SAL_REPLACE_BLUR, f->blur_sigma = colon ? v : 0;
        else if (k == 5 && !strncmp(r, "noise", 5)) f->replace = SAL_REPLACE_NOISE, f->noise = colon ? v : 0;
        else return cli_error("audit", "--replace must be value[:V], blur[:SIGMA] or noise[:SD], not '%s'", r);
        if (f->replace != SAL_REPLACE_VALUE && colon && !(v > 0))
            return cli_error("audit", "--replace %s: the blur sigma or noise level must be positive", r);
    }
    if (g->which == INVARIANCE) {
        if (!!g->shift_v + !!g->checker + !!g->shift_img + !!g->target_img != 1)
            return cli_error("audit", "invariance needs exactly one of --shift, --checkerboard, --shift-image, "
                             "--target-image");
        if (!(g->clip > 0)) return cli_error("audit", "--clip must be positive");
    }
    if (g->pos_score) {
        static const char *const how[] = {"abs", "own", "sum"};
        int k = 0;
        while (k < 3 && strcmp(g->pos_score, how[k])) k++;
        if (k == 3) return cli_error("audit", "--position-score must be abs, own or sum, not '%s'", g->pos_score);
        g->mo.score = (sal_position_score)k;
    }
    if (g->which == MOTIF && !g->masks) return cli_error("audit", "motif needs --masks M.npy (planted positions)");
    if (g->which == POINTING && (!g->masks || !g->labels))
        return cli_error("audit", "pointing needs --masks M.npy and --labels Y.npy");
    return 0;
}

/* The invariance audit's shift, shaped as one sample of x, into shift (img: scratch). 0, or 1 after
 * printing the error. */
static int make_shift(const audit_args *g, const sal_model *m, const sal_tensor *x, sal_tensor *img, sal_tensor *shift) {
    const int64_t *sdim = x->dim + 1;
    int sn = x->ndim - 1;
    sal_status st;
    if (g->shift_v) {
        char *end;
        double v = strtod(g->shift_v, &end);
        if (end == g->shift_v || *end || !isfinite(v)) return cli_error("audit", "--shift must be a number, not '%s'", g->shift_v);
        if ((st = sal_tensor_alloc(shift, SAL_F32, sn, sdim)) != SAL_OK) return cli_fail("audit", st);
        for (int64_t i = 0; i < sal_tensor_numel(shift); i++) sal_f32(shift)[i] = (float)v;
        return 0;
    }
    if (g->checker) {
        char *end;
        long cell = strtol(g->checker, &end, 10);
        double amp = *end == ',' ? strtod(end + 1, &end) : NAN;
        if (*end || cell < 1 || cell > 1 << 20 || !isfinite(amp))
            return cli_error("audit", "--checkerboard must read CELL,AMPLITUDE (e.g. 4,0.5), not '%s'", g->checker);
        st = sal_shift_checkerboard(sn, sdim, (int)cell, amp, shift);
        return st == SAL_OK ? 0 : cli_fail("audit", st);
    }
    const char *file = g->shift_img ? g->shift_img : g->target_img;
    if (g->target_img && g->xsample >= x->dim[0])
        return cli_error("audit", "--sample %ld is out of range (%lld samples)", g->xsample, (long long)x->dim[0]);
    if (load_image(file, img)) return 1;
    if (g->shift_img) {
        st = sal_shift_image(img, sn, sdim, g->amp, shift);
    } else {
        sal_tensor one = *x;
        one.cap = 0, one.dim[0] = 1;
        one.data = sal_f32(x) + g->xsample * (sal_tensor_numel(x) / x->dim[0]);
        st = sal_shift_targeted(m, &one, img, g->tscale, g->clip, shift);
    }
    return st == SAL_OK ? 0 : cli_error("audit", "%s: %s", file, sal_last_error());
}

/* Runs the audit g asks for on m and x. 0, or 1 after printing the error. */
static int run(audit_args *g, sal_model *m, const sal_tensor *x, sal_audit **rep) {
    sal_tensor shift = {0}, img = {0}, mk = {0}, lb = {0};
    sal_model *f2 = NULL;
    sal_status st = SAL_OK;
    int rc = 0;
    switch (g->which) {
    case INVARIANCE: {
        if ((rc = make_shift(g, m, x, &img, &shift))) break;
        if (g->save_shift) st = sal_npy_write(g->save_shift, &shift);
        if (st == SAL_OK && g->save_model) st = sal_model_shifted(m, &shift, &f2);
        if (st == SAL_OK && g->save_model) st = sal_model_save(f2, g->save_model);
        sal_invariance_opts io = {.common = g->common, .shift = &shift, .own_decisions = g->own};
        if (st == SAL_OK) st = sal_audit_invariance(m, x, &io, rep);
        break;
    }
    case RANDOMIZATION:
        g->rnd.common = g->common;
        st = sal_audit_randomization(m, x, &g->rnd, rep);
        break;
    case CLASS: st = sal_audit_class_sensitivity(m, x, &(sal_class_sensitivity_opts){.common = g->common}, rep); break;
    case POINTING:
        if ((st = sal_npy_read(g->masks, &mk)) != SAL_OK || (st = sal_npy_read(g->labels, &lb)) != SAL_OK) break;
        if (g->limit && mk.ndim >= 1 && g->limit < mk.dim[0]) mk.dim[0] = g->limit;
        if (g->limit && lb.ndim >= 1 && g->limit < lb.dim[0]) lb.dim[0] = g->limit;
        g->pt.common = g->common, g->pt.masks = &mk, g->pt.labels = &lb;
        st = sal_audit_pointing(m, x, &g->pt, rep);
        break;
    case MOTIF:
        if ((st = sal_npy_read(g->masks, &mk)) != SAL_OK) break;
        if (g->limit && mk.ndim >= 1 && g->limit < mk.dim[0]) mk.dim[0] = g->limit;
        g->mo.common = g->common, g->mo.masks = &mk;
        st = sal_audit_motif(m, x, &g->mo, rep);
        break;
    default:
        g->fa.common = g->common, g->fa.nocc_params = g->nocc, g->fa.occ_params = g->occ;
        st = sal_audit_faithfulness(m, x, &g->fa, rep);
    }
    if (!rc && st != SAL_OK) rc = cli_fail("audit", st);
    sal_model_free(f2);
    sal_tensor *t[] = {&shift, &img, &mk, &lb};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) sal_tensor_free(t[i]);
    return rc;
}

/* The files asked for, and the table. */
static int write_outputs(const audit_args *g, const sal_audit *rep) {
    char *js = NULL, *cs = NULL;
    sal_status st = SAL_OK;
    if (g->json && (st = sal_audit_json(rep, &js)) == SAL_OK) st = sal_write_file(g->json, js, strlen(js));
    if (st == SAL_OK && g->csv && (st = sal_audit_csv(rep, &cs)) == SAL_OK) st = sal_write_file(g->csv, cs, strlen(cs));
    if (st == SAL_OK && g->figure) st = sal_audit_figure(rep, g->figure);
    if (st == SAL_OK && g->plot) st = sal_audit_plot(rep, g->plot);
    if (st == SAL_OK && g->logos) st = sal_audit_logos(rep, g->logos);
    free(js);
    free(cs);
    if (st != SAL_OK) return cli_fail("audit", st);
    if (!g->quiet) print_table(g->which, rep);
    return 0;
}

/* The audit on this process (its share under mpirun); rank 0 writes the files and prints. */
static int audit_main(int argc, char **argv) {
    static audit_args g;
    memset(&g, 0, sizeof g);
    g.which = -1, g.amp = 1, g.clip = 0.3, g.common.seed = 1;
    for (int i = 0; i < NAUDITS; i++)
        if (!strcmp(argv[2], k_audits[i])) g.which = i;
    sal_model *m = NULL;
    sal_tensor x = {0}, d = {0};
    sal_audit *rep = NULL;
    int rc = 1;
    if (g.which < 0) {
        cli_error("audit", "unknown audit '%s' (invariance, randomization, class-sensitivity, pointing, "
                  "faithfulness, motif)", argv[2]);
        goto agree;
    }
    if (parse(argc, argv, &g) || check(&g) || choices(&g)) goto agree;
    cli_bar bar = {0};
    g.common.model_name = g.path;
    g.common.progress = cli_progress, g.common.progress_user = &bar;
    g.common.shard = cli_shard();
    sal_status st = sal_model_load(g.path, &m);
    if (st == SAL_OK) st = cli_load_array(g.in, true, &x);
    if (st == SAL_OK && g.data) st = cli_load_array(g.data, false, &d);
    if (st != SAL_OK) {
        cli_fail("audit", st);
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
        cli_error("audit", "%s: the input must be a float batch (N, ...)", g.in);
        goto agree;
    }
    if (g.limit && g.limit < x.dim[0]) x.dim[0] = g.limit;
    if (g.figure && (g.which == INVARIANCE || g.which == RANDOMIZATION) && g.common.figure_sample >= x.dim[0]) {
        cli_error("audit", "figure sample %lld is out of range (%lld samples)", (long long)g.common.figure_sample,
                  (long long)x.dim[0]);
        goto agree;
    }
    g.common.data = g.data ? &d : NULL;
    g.common.data_name = g.data ? g.data : g.in;
    if (run(&g, m, &x, &rep)) goto agree;
    int ran = 0;
    for (int i = 0; i < sal_audit_count(rep); i++) {
        if (!sal_audit_skipped(rep, i)) ran++;
        else if (g.nm) /* a method the user named: say why it did not run */
            fprintf(stderr, "saliency audit: %s %s\n", sal_audit_label(rep, i), sal_audit_verdict(rep, i));
    }
    if (!ran) { /* nothing was audited: an error, and no report */
        cli_error("audit", "no method could run on this model and data (see the reasons above)");
        goto agree;
    }
    rc = 0;
agree: /* every rank's outcome, then rank 0's files (one process: as they are) */
    rc = cli_mpi_agree("audit", rc);
    if (!rc && cli_rank() == 0) rc = write_outputs(&g, rep);
    rc = cli_mpi_agree("audit", rc);
    if (!rc) rc = g.fail_on && sal_audit_violations(rep) ? 2 : 0;
    sal_audit_free(rep);
    sal_model_free(m);
    sal_tensor_free(&x);
    sal_tensor_free(&d);
    return rc;
}

int cmd_audit(int argc, char **argv) {
    if (argc < 3 || cli_wants_help(argc, argv)) {
        fputs(k_help, argc < 3 && !cli_wants_help(argc, argv) ? stderr : stdout);
        return argc < 3 && !cli_wants_help(argc, argv);
    }
    cli_mpi_start();
    return cli_mpi_finish("audit", audit_main(argc, argv));
}
