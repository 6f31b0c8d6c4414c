/* sal_report_write: the audits' JSON, CSV and PNG outputs become one static HTML page with its
 * pictures beside it (docs/report.md). No scripts, no network, no timestamps: the same inputs give
 * the same bytes. */
#include "json.h"
#include "report.h"
#include "io/io.h"
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#define MAX_JSON ((size_t)64 << 20)
#define MAX_COPY ((size_t)256 << 20)
#define MAX_AUDITS 256

/* ---- what each audit is ---- */

typedef struct {
    const char *name, *title, *pass_key;
    const char *about; /* HTML */
    const char *bar_key, *bar_key2, *bar_label, *bar_label2;
    int logx, bounded;
    const char *columns[8]; /* the verdict table's metrics (NULL: every scalar) */
} kind_info;

static const kind_info k_kinds[] = {
    {"invariance", "Input invariance", "invariant",
     "A second model f<sub>2</sub> gets the first layer's bias changed so that it absorbs a shift m of the "
     "input: f<sub>2</sub>(x + m) = f<sub>1</sub>(x) for every x, so both models make the same decision for "
     "the same reason. An explanation of that decision should not change. Methods whose maps do change "
     "explain the input's offset, not the model; with a targeted shift they can be made to draw any picture "
     "(Kindermans et al., <i>The (Un)reliability of Saliency Methods</i>).",
     "max_norm_diff", NULL, "largest normalized difference between the maps of f1 and f2", NULL, 1, 0, {NULL}},
    {"randomization", "Parameter randomization", "sensitive",
     "The weights are re-initialized layer by layer from the top (cascading) and one layer at a time "
     "(independent). Once the weights are random the model has forgotten everything it learned, so a map "
     "that still looks the same was explaining the input (its edges, the digit's outline), not the model "
     "(Adebayo et al., <i>Sanity Checks for Saliency Maps</i>; Khakzar et al., section 2).",
     "cascading_mean_hog_spearman", "independent_mean_hog_spearman",
     "Spearman correlation of HOG features with the trained model's map, mean over the cascade",
     "mean over layers randomized alone", 0, 1,
     {"cascading_mean_hog_spearman", "final_hog_spearman", "final_spearman_abs", "independent_mean_hog_spearman"}},
    {"class-sensitivity", "Class sensitivity", "class_sensitive",
     "For each image, the maps for the highest- and the lowest-scoring class are compared. They should "
     "differ: a method that draws the same picture for both explains the image, not the prediction "
     "(Rebuffi et al., as used by Khakzar et al.).",
     "hog_spearman", NULL, "Spearman correlation of HOG features, top vs bottom class map", NULL, 0, 1, {NULL}},
    {"pointing", "Pointing games", "class_sensitive",
     "Images hold several labelled objects. The pointing game asks whether the map for class k peaks on an "
     "object of class k (Zhang et al.). The restricted game asks only the map of the top class to point at "
     "each object: a method that scores as well there finds objects without listening to the class it was "
     "asked about (Khakzar et al., <i>Rethinking Positive Aggregation and Propagation of Gradients</i>).",
     "pointing_accuracy", "restricted_accuracy", "pointing accuracy", "restricted pointing accuracy", 0, 1, {NULL}},
    {"faithfulness", "Faithfulness", "faithful",
     "Pixels are removed (replaced) in the order the map ranks them. If the map is faithful to the model, "
     "removing the most relevant pixels first destroys the prediction faster than removing them in random "
     "order, and inserting them first restores it faster (pixel flipping and AOPC, Samek et al.; deletion "
     "and insertion, Petsiuk et al.). The maps are also compared with occlusion, which measures relevance "
     "directly.",
     "aopc_morf", NULL, "AOPC, most relevant first (higher: the map finds what matters)", NULL, 0, 0,
     {"aopc_morf", "aopc_random", "aopc_lerf", "deletion_morf_auc", "insertion_morf_auc", "occlusion_spearman"}},
    {"motif", "Motif recovery", "recovers_motifs",
     "Sequences hold motif instances planted at known positions (simulated data). Each method's attribution "
     "per position (summed over the four bases) ranks the positions; the ranking is scored against the planted "
     "positions by the area under the ROC curve and the average precision, per sequence, then averaged. The "
     "planted mask itself (an oracle) and a random map frame the methods (ground-truth benchmarks as in "
     "Shrikumar et al. and Majdandzic et al.).",
     "auroc", "auprc", "mean AUROC of the planted positions", "mean average precision", 0, 1, {"auroc", "auprc", "samples_scored"}},
};
#define NKINDS (int)(sizeof k_kinds / sizeof k_kinds[0])

static const kind_info *find_kind(const char *name) {
    for (int i = 0; i < NKINDS; i++)
        if (!strcmp(k_kinds[i].name, name)) return &k_kinds[i];
    return NULL;
}

/* ---- what each metric means ---- */

typedef struct {
    const char *kind, *key, *text; /* kind NULL: any audit */
} metric_info;

static const metric_info k_metrics[] = {
    {"invariance", "max_norm_diff", "The largest difference between the two models' maps, relative to the largest "
                                    "value of f1's map, over all samples (0: identical maps)."},
    {"invariance", "max_abs_diff", "The same difference in the maps' own units."},
    {"invariance", "spearman", "Rank correlation between the two models' maps, averaged over the samples (1: same "
                               "ranking of the input elements)."},
    {"invariance", "ssim", "Structural similarity of the two maps (1: the same picture)."},
    {"class-sensitivity", "spearman", "Rank correlation between the maps of the top and the bottom class (near 1: "
                                      "the method ignores the class)."},
    {"class-sensitivity", "hog_spearman", "The same for HOG features, which compare the maps' shapes and edges; "
                                          "below the threshold the method is class-sensitive."},
    {"class-sensitivity", "hog_pearson", "Linear correlation of the two maps' HOG features."},
    {"class-sensitivity", "identical_fraction", "Fraction of images whose two maps are exactly equal."},
    {"pointing", "pointing_accuracy", "Fraction of (image, present class) pairs whose class map peaks on an object "
                                      "of that class."},
    {"pointing", "restricted_accuracy", "The same when only the top class's map is used for every object."},
    {"pointing", "gap", "Pointing minus restricted accuracy: how much the class asked for matters."},
    {"pointing", "hits", "Pairs the class maps hit."},
    {"pointing", "restricted_hits", "Pairs the top-class map hit."},
    {"pointing", "trials", "(Image, present class) pairs played."},
    {"faithfulness", "deletion_morf_auc", "Area under the output while the most relevant pixels are removed "
                                          "first (lower: the map found what the prediction needs)."},
    {"faithfulness", "deletion_lerf_auc", "The same removing the least relevant first (higher is better)."},
    {"faithfulness", "insertion_morf_auc", "Area under the output while the most relevant pixels are put back "
                                           "first into an emptied image (higher is better)."},
    {"faithfulness", "insertion_lerf_auc", "The same inserting the least relevant first (lower is better)."},
    {"faithfulness", "aopc_morf", "Average drop of the output over the deletion steps, most relevant first "
                                  "(higher is better)."},
    {"faithfulness", "aopc_lerf", "The same deleting the least relevant first (lower is better)."},
    {"faithfulness", "aopc_random", "The same for a random order: the bar a map has to beat."},
    {"faithfulness", "occlusion_spearman", "Rank correlation with an occlusion map, which measures each "
                                           "region's effect on the output directly."},
};

static const char *randomization_base(const char *k) {
    if (!strcmp(k, "spearman")) return "rank correlation with the trained model's map";
    if (!strcmp(k, "spearman_abs")) return "rank correlation of the absolute values (sign ignored)";
    if (!strcmp(k, "ssim")) return "structural similarity of the |maps|";
    if (!strcmp(k, "hog_pearson")) return "linear correlation of HOG features of the |maps|";
    if (!strcmp(k, "hog_spearman")) return "rank correlation of HOG features of the |maps| (the verdict's measure)";
    return NULL;
}

/* One sentence on a metric, into b; false when unknown. */
static bool metric_text(sal_sbuf *b, const char *kind, const char *key) {
    for (size_t i = 0; i < sizeof k_metrics / sizeof k_metrics[0]; i++)
        if ((!k_metrics[i].kind || !strcmp(k_metrics[i].kind, kind)) && !strcmp(k_metrics[i].key, key)) {
            sal_sb_printf(b, "%s", k_metrics[i].text);
            return true;
        }
    if (!strcmp(kind, "randomization")) {
        const char *base = NULL, *when = NULL;
        if (!strncmp(key, "final_", 6)) base = randomization_base(key + 6), when = "after randomizing every layer (cascading)";
        else if (!strncmp(key, "cascading_mean_", 15))
            base = randomization_base(key + 15),
            when = "averaged over the cascade's steps (top layer random, top two, ..., all); the verdict's measure";
        else if (!strncmp(key, "independent_mean_", 17))
            base = randomization_base(key + 17), when = "averaged over the layers randomized one at a time";
        if (base) {
            sal_sb_printf(b, "The %s, %s (near 0: the map changed, as it should).", base, when);
            return true;
        }
    }
    return false;
}

/* ---- files ---- */

typedef struct {
    char *dir, *stem;          /* the JSON is dir/stem.json */
    rj_value doc;              /* the file; its top-level members describe the setting */
    sal_audit *au;             /* its results, outcomes, metrics and curves as numbers (load.c) */
    const kind_info *kind;
    const rj_value *meta;      /* the manifest's entry, or NULL */
    char *figure;              /* name of the copied figure grid in the output, or NULL */
    bool csv;                  /* stem.csv copied too */
} rp_audit;

/* A metric's results (saliency metric --json): dir/stem.json, and stem.csv when beside it. */
typedef struct {
    char *dir, *stem;
    rj_value doc;
    bool csv;
} rp_metric;

typedef struct {
    const char *in, *out;
    rp_audit *a;
    int na;
    rp_metric *m;
    int nm;
    rj_value manifest;
    char *manifest_dir;
    sal_sbuf notes;              /* HTML list items: files skipped and why */
    int nsvg;
} rp_ctx;

static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = sal_malloc(n);
    if (p) snprintf(p, n, "%s%s%s", a, *a && a[strlen(a) - 1] != '/' ? "/" : "", b);
    return p;
}

static bool is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static sal_status mkdirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return sal_fail(SAL_ERR_ARG, "%.80s...: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return sal_fail(SAL_ERR_IO, "%s: cannot create: %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    if (!is_dir(path)) return sal_fail(SAL_ERR_IO, "%s: not a folder", path);
    return SAL_OK;
}

/* Copies in_dir/name to out_dir/name unless they are the same file. */
static sal_status copy_file(const rp_ctx *c, const char *dir, const char *name) {
    char *src = path_join(dir, name), *dst = path_join(c->out, name);
    sal_status st = src && dst ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    struct stat s1, s2;
    if (st == SAL_OK && stat(src, &s1) == 0 && stat(dst, &s2) == 0 && s1.st_dev == s2.st_dev && s1.st_ino == s2.st_ino) {
        sal_free(src), sal_free(dst);
        return SAL_OK;
    }
    unsigned char *data = NULL;
    size_t len = 0;
    if (st == SAL_OK) st = sal_read_file(src, MAX_COPY, &data, &len);
    if (st == SAL_OK) st = sal_write_file(dst, data, len);
    sal_free(data);
    sal_free(src);
    sal_free(dst);
    return st;
}

static sal_status save_text(const rp_ctx *c, const char *name, sal_sbuf *b) {
    if (b->oom) return sal_fail(SAL_ERR_NOMEM, "out of memory writing %s", name);
    char *p = path_join(c->out, name);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_status st = sal_write_file(p, b->s ? b->s : "", b->len);
    sal_free(p);
    return st;
}

static sal_status read_json(const char *path, rj_value *v) {
    unsigned char *txt = NULL;
    size_t len = 0;
    SAL_TRY(sal_read_file(path, MAX_JSON, &txt, &len));
    sal_status st = rj_parse((const char *)txt, len, path, v);
    sal_free(txt);
    return st;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The JSON files of dir (sorted), as audits; manifest.json as the manifest. */
static sal_status scan(rp_ctx *c, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return sal_fail(SAL_ERR_IO, "%s: cannot open the folder: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    sal_status st = SAL_OK;
    for (struct dirent *e; st == SAL_OK && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") || e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = sal_realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) {
                st = sal_fail(SAL_ERR_NOMEM, "out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = sal_strdup(e->d_name))) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        else n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n && st == SAL_OK; i++) {
        char *path = path_join(dir, names[i]);
        if (!path) {
            st = sal_fail(SAL_ERR_NOMEM, "out of memory");
            break;
        }
        rj_value v;
        sal_status r = read_json(path, &v);
        if (r == SAL_ERR_NOMEM) st = r;
        else if (r != SAL_OK) {
            sal_sb_printf(&c->notes, "<li><code>");
            rp_esc(&c->notes, path);
            sal_sb_printf(&c->notes, "</code>: ");
            rp_esc(&c->notes, sal_last_error());
            sal_sb_printf(&c->notes, "</li>\n");
        } else if (!strcmp(names[i], "manifest.json") && !c->manifest_dir) {
            c->manifest = v;
            if (!(c->manifest_dir = sal_strdup(dir))) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        } else if (rj_getstr(&v, "audit", NULL) && rj_get(&v, "results") && rj_get(&v, "results")->type == RJ_ARR) {
            size_t len = strlen(names[i]) - 5;
            bool dup = false;
            for (int k = 0; k < c->na && !dup; k++) dup = strlen(c->a[k].stem) == len && !strncmp(c->a[k].stem, names[i], len);
            if (dup || c->na == MAX_AUDITS) {
                sal_sb_printf(&c->notes, "<li><code>");
                rp_esc(&c->notes, path);
                sal_sb_printf(&c->notes, "</code>: %s</li>\n", dup ? "another folder holds results of the same name" : "too many audits");
                rj_free(&v);
            } else {
                rp_audit *a = &c->a[c->na++];
                memset(a, 0, sizeof *a);
                a->doc = v;
                a->dir = sal_strdup(dir);
                a->stem = sal_malloc(len + 1);
                if (a->stem) memcpy(a->stem, names[i], len), a->stem[len] = 0;
                a->kind = find_kind(rj_getstr(&v, "audit", ""));
                if (!a->dir || !a->stem) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
                if (st == SAL_OK) st = rp_audit_load(&a->doc, &a->au);
            }
        } else if (rj_getstr(&v, "metric", NULL) && rj_get(&v, "results") && rj_get(&v, "results")->type == RJ_ARR &&
                   c->nm < MAX_AUDITS) {
            rp_metric *mt = &c->m[c->nm++];
            size_t len = strlen(names[i]) - 5;
            mt->doc = v;
            mt->dir = sal_strdup(dir);
            mt->stem = sal_malloc(len + 1);
            if (mt->stem) memcpy(mt->stem, names[i], len), mt->stem[len] = 0;
            if (!mt->dir || !mt->stem) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
        } else {
            rj_free(&v); /* some other JSON file */
        }
        sal_free(path);
    }
    for (int i = 0; i < n; i++) sal_free(names[i]);
    sal_free(names);
    return st;
}

/* ---- page pieces ---- */

static const char k_css[] =
    ":root{--ink:#1d2330;--muted:#5b6472;--line:#e3e6ea;--bg:#f6f7f9;--good:#2e9e6b;--bad:#d1495b;--skip:#9a9a9a;"
    "--accent:#3b5bdb}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;font:15px/1.55 'DejaVu Sans',Helvetica,Arial,sans-serif;color:var(--ink);background:var(--bg)}\n"
    "header.top{background:linear-gradient(120deg,#1f2a44,#3b5bdb 60%,#7048e8);color:#fff;padding:36px 6vw 30px}\n"
    "header.top h1{margin:0 0 6px;font-size:30px;letter-spacing:.2px}\n"
    "header.top p{margin:4px 0;max-width:900px;color:#e6e9ff}\n"
    "nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:8px 6vw;"
    "white-space:nowrap;overflow-x:auto}\n"
    "nav a{color:var(--accent);text-decoration:none;margin-right:18px;font-size:14px}\n"
    "main{padding:18px 6vw 40px}\n"
    "section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px;margin:18px 0;"
    "box-shadow:0 1px 2px rgba(0,0,0,.03)}\n"
    "h2{margin:0 0 8px;font-size:22px}h3{margin:18px 0 8px;font-size:16px}\n"
    ".sub{color:var(--muted);font-size:13.5px;margin:0 0 10px}\n"
    ".about{max-width:980px}\n"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin:10px 0}\n"
    ".card{flex:1 1 160px;background:var(--bg);border-radius:8px;padding:10px 14px;min-width:150px}\n"
    ".card b{display:block;font-size:24px}.card span{color:var(--muted);font-size:13px}\n"
    "table{border-collapse:collapse;font-size:13px}\n"
    "th,td{padding:4px 9px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}\n"
    "th{background:#fbfbfc;font-weight:600;position:sticky;top:0}\n"
    "td.l,th.l{text-align:left}\n"
    ".scroll{overflow-x:auto;max-width:100%}\n"
    ".badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}\n"
    ".pass{background:var(--good)}.fail{background:var(--bad)}.skip{background:var(--skip)}.unk{background:#c9a227}\n"
    ".why{color:var(--muted);font-size:11.5px}\n"
    "td.verdict{white-space:normal;min-width:220px;max-width:380px}\n"
    "table.matrix td{text-align:center;padding:3px 6px}\n"
    "table.matrix td.l{text-align:left}\n"
    "table.matrix th.rot{height:120px;vertical-align:bottom;padding:0 2px 6px}\n"
    "table.matrix th.rot div{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;font-size:12px}\n"
    "table.matrix th a{text-decoration:none}\n"
    "table.wrap td.l{white-space:normal}table.wrap td.l b{white-space:nowrap}\n"
    ".cell{display:inline-block;width:24px;height:20px;border-radius:4px;color:#fff;font-weight:700;line-height:20px;"
    "font-size:13px}\n"
    ".cell.pass{background:var(--good)}.cell.fail{background:var(--bad)}.cell.skip{background:#d6d6d6;color:#777}"
    ".cell.unk{background:#e9d8a6;color:#6b5a1e}\n"
    "figure{margin:12px 0}figcaption{color:var(--muted);font-size:13px;margin-top:4px;max-width:900px}\n"
    "figure.grid img{max-width:100%;height:auto;image-rendering:pixelated;border:1px solid var(--line);border-radius:4px}\n"
    ".hero{display:flex;flex-wrap:wrap;gap:22px;align-items:flex-start}\n"
    ".hero figure{flex:0 1 auto}\n"
    ".hero img{max-width:100%;image-rendering:pixelated;border-radius:6px;border:1px solid var(--line)}\n"
    ".legend{display:flex;gap:24px;flex-wrap:wrap;align-items:center;color:var(--muted);font-size:12.5px}\n"
    ".panels{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:8px}\n"
    ".panels img{width:100%;height:auto}\n"
    ".key{display:flex;flex-wrap:wrap;gap:14px;font-size:12.5px;color:var(--muted);margin:6px 0}\n"
    ".key i{display:inline-block;width:22px;height:0;border-top:3px solid;vertical-align:middle;margin-right:5px}\n"
    "dl.metrics{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;font-size:13px;margin:8px 0}\n"
    "dl.metrics dt{font-family:monospace;color:var(--accent)}dl.metrics dd{margin:0}\n"
    "details summary{cursor:pointer;color:var(--accent);margin:8px 0}\n"
    ".two{display:flex;flex-wrap:wrap;gap:22px;align-items:flex-start}\n"
    "code{background:#f0f2f5;padding:1px 4px;border-radius:3px;font-size:12.5px}\n"
    "pre{background:#1f2430;color:#e6e6e6;padding:10px 14px;border-radius:8px;overflow-x:auto;font-size:12.5px}\n"
    "footer{color:var(--muted);font-size:12.5px;padding:10px 6vw 30px}\n"
    "a{color:var(--accent)}\n";

/* The CSS class of an outcome. */
static const char *outcome(const au_result *r) {
    static const char *const cls[] = {"pass", "fail", "unk", "skip"};
    return cls[r->outcome];
}

/* The audit's title: the manifest's, else the audit's name and its model. */
static void audit_title(sal_sbuf *b, const rp_audit *a, bool short_form) {
    const char *t = rj_getstr(a->meta, short_form ? "short" : "title", NULL);
    if (t) {
        rp_esc(b, t);
        return;
    }
    rp_esc(b, a->kind ? a->kind->title : rj_getstr(&a->doc, "audit", "audit"));
    const char *model = rj_getstr(&a->doc, "model", "");
    if (*model && !short_form) {
        sal_sb_printf(b, " &middot; ");
        rp_esc(b, model);
    }
    if (short_form) {
        sal_sb_printf(b, " (");
        rp_esc(b, a->stem);
        sal_sb_printf(b, ")");
    }
}

static void fmt_num(sal_sbuf *b, double v) {
    if (!isfinite(v)) sal_sb_printf(b, "&ndash;");
    else if (v != 0 && (fabs(v) < 1e-3 || fabs(v) >= 1e5)) sal_sb_printf(b, "%.2e", v);
    else if (v == floor(v) && fabs(v) < 1e5) sal_sb_printf(b, "%.0f", v);
    else sal_sb_printf(b, "%.3f", v);
}

/* Scalar metric names of an audit's results, in the order of the first result that ran. */
static int metric_keys(const rp_audit *a, const char **keys, int max) {
    const au_result *first = NULL;
    for (int i = 0; i < a->au->nres && !first; i++)
        if (au_ran(&a->au->res[i])) first = &a->au->res[i];
    int n = 0;
    if (first && a->kind && a->kind->columns[0]) {
        for (int k = 0; k < 8 && a->kind->columns[k] && n < max; k++)
            for (int q = 0; q < first->nmetric; q++)
                if (!strcmp(first->mkey[q], a->kind->columns[k])) keys[n++] = a->kind->columns[k];
        return n;
    }
    for (int k = 0; first && k < first->nmetric && n < max; k++)
        if (!a->kind || strcmp(first->mkey[k], a->kind->pass_key)) keys[n++] = first->mkey[k];
    return n;
}

/* Metric `key` of result r: its value, and whether it is a boolean. */
static double metric(const au_result *r, const char *key, bool *is_bool) {
    *is_bool = false;
    for (int k = 0; k < r->nmetric; k++)
        if (!strcmp(r->mkey[k], key)) return *is_bool = r->mbool[k], r->mval[k];
    return NAN;
}

/* Verdict badge; the whole verdict (with its reason, which restates the metrics) is its tooltip. */
static void verdict_cell(sal_sbuf *b, const au_result *r) {
    const char *v = r->verdict, *cls = outcome(r), *paren = strstr(v, " (");
    const char *colon = !strncmp(v, "skipped:", 8) ? v + 8 : NULL;
    size_t head = colon ? 7 : paren ? (size_t)(paren - v) : strlen(v);
    sal_sb_printf(b, "<td class=\"l verdict\"><span class=\"badge %s\" title=\"", cls);
    rp_esc(b, v);
    sal_sb_printf(b, "\">");
    char h[96];
    snprintf(h, sizeof h, "%.*s", (int)(head < sizeof h - 1 ? head : sizeof h - 1), v);
    rp_esc(b, *h ? h : cls);
    sal_sb_printf(b, "</span></td>");
}

static sal_status write_svg(rp_ctx *c, const char *stem, const char *what, sal_sbuf *svg, char *name, size_t cap) {
    snprintf(name, cap, "%s-%s.svg", stem, what);
    sal_status st = save_text(c, name, svg);
    sal_sb_free(svg);
    return st;
}

/* The bar chart of the audit's main metric. */
static sal_status bars(rp_ctx *c, const rp_audit *a, sal_sbuf *h) {
    const kind_info *k = a->kind;
    int n = a->au->nres;
    const char **labels = sal_calloc((size_t)n + 1, sizeof *labels);
    double *v = sal_calloc((size_t)n + 1, sizeof *v), *v2 = sal_calloc((size_t)n + 1, sizeof *v2);
    int *good = sal_calloc((size_t)n + 1, sizeof *good);
    if (!labels || !v || !v2 || !good) {
        sal_free(labels), sal_free(v), sal_free(v2), sal_free(good);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    double lo = 0, hi = k->bounded ? 1 : 0, tol = a->au->tol;
    bool any2 = false;
    for (int i = 0; i < n; i++) {
        const au_result *r = &a->au->res[i];
        labels[i] = r->label;
        v[i] = au_metric_get(r, k->bar_key);
        v2[i] = k->bar_key2 ? au_metric_get(r, k->bar_key2) : NAN;
        good[i] = r->outcome == SAL_VERDICT_PASS ? 1 : r->outcome == SAL_VERDICT_FAIL ? 0 : -1;
        for (int q = 0; q < 2; q++) {
            double x = q ? v2[i] : v[i];
            if (!isfinite(x)) continue;
            any2 |= q == 1;
            lo = fmin(lo, x), hi = fmax(hi, x);
        }
    }
    double thr = NAN;
    char thr_label[96] = "";
    if (!strcmp(k->name, "faithfulness")) {
        thr = a->au->fa.aopc;
        snprintf(thr_label, sizeof thr_label, "random order %.3g", thr);
    } else if (!strcmp(k->name, "pointing")) {
        thr = NAN; /* the verdict compares the two bars */
    } else if (isfinite(tol)) {
        thr = tol;
        snprintf(thr_label, sizeof thr_label, "threshold %g", tol);
    }
    if (isfinite(thr)) lo = fmin(lo, thr), hi = fmax(hi, thr);
    if (k->logx) lo = 1e-7, hi = fmax(hi * 2, 10);
    else if (hi > lo) hi += (hi - lo) * 0.06;
    rp_bars spec = {.n = n, .labels = labels, .v = v, .v2 = any2 ? v2 : NULL, .good = good, .lo = lo, .hi = hi,
                    .threshold = thr, .logx = k->logx, .xlabel = k->bar_label, .vlabel = k->bar_key,
                    .v2label = k->bar_key2, .threshold_label = *thr_label ? thr_label : NULL};
    sal_sbuf svg = {0};
    rp_svg_bars(&svg, &spec);
    char name[512];
    sal_status st = write_svg(c, a->stem, "bars", &svg, name, sizeof name);
    if (st == SAL_OK) {
        sal_sb_printf(h, "<figure><img src=\"");
        rp_url(h, name);
        sal_sb_printf(h, "\" alt=\"");
        rp_esc(h, k->bar_label);
        sal_sb_printf(h, " per method\"><figcaption>");
        rp_esc(h, k->bar_label);
        if (any2 && k->bar_label2) {
            sal_sb_printf(h, "; the thin pale bar: ");
            rp_esc(h, k->bar_label2);
        }
        sal_sb_printf(h, ". Green: the method passes, red: it fails, grey: skipped.</figcaption></figure>\n");
    }
    sal_free(labels), sal_free(v), sal_free(v2), sal_free(good);
    return st;
}

static const char *const k_colors[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"};

/* Small multiples of the randomization curves: one panel per method. */
static sal_status randomization_panels(rp_ctx *c, const rp_audit *a, sal_sbuf *h) {
    static const int keys[] = {AU_HOG_S, AU_SPEAR_ABS, AU_SPEAR, AU_SSIM};
    static const char *const names[] = {"Spearman of HOG (cascading)", "Spearman of |map| (cascading)",
                                        "Spearman (cascading)", "SSIM (cascading)"};
    const sal_audit *au = a->au;
    double tol = au->tol, ylo = -0.2;
    /* one y range for all panels: down to the lowest correlation seen */
    for (int i = 0; i < au->nres; i++)
        for (int64_t q = 0, n = (int64_t)2 * au->res[i].npoint * AU_NSIM; au->res[i].curve && q < n; q++) {
            double v = au->res[i].curve[q];
            if (q % AU_NSIM != AU_HOG_P && isfinite(v) && v < ylo) ylo = floor(v * 5) / 5;
        }
    bool any = false;
    sal_status st = SAL_OK;
    for (int i = 0; i < au->nres && st == SAL_OK; i++) {
        const au_result *r = &au->res[i];
        int L = r->npoint;
        if (!r->curve || !(au->rnd.mode & 1) || L < 2) continue;
        if (!any) {
            sal_sb_printf(h, "<h3>Similarity to the trained model's map as layers are randomized</h3>\n<div class=\"key\">");
            for (int k = 0; k < 4; k++) sal_sb_printf(h, "<span><i style=\"border-color:%s\"></i>%s</span>", k_colors[k], names[k]);
            sal_sb_printf(h, "<span><i style=\"border-color:%s;border-top-style:dashed\"></i>Spearman of HOG, each layer "
                         "randomized alone</span></div>\n<div class=\"panels\">\n", k_colors[0]);
            any = true;
        }
        double *y = sal_calloc((size_t)L * 5, sizeof *y);
        const char **ticks = sal_calloc((size_t)L, sizeof *ticks);
        if (!y || !ticks) {
            sal_free(y), sal_free(ticks);
            return sal_fail(SAL_ERR_NOMEM, "out of memory");
        }
        const double *cas = r->curve, *ind = r->curve + (size_t)L * AU_NSIM;
        for (int s = 0; s < L; s++) {
            for (int k = 0; k < 4; k++) y[k * L + s] = cas[s * AU_NSIM + keys[k]];
            y[4 * L + s] = au->rnd.mode & 2 ? ind[s * AU_NSIM + AU_HOG_S] : NAN;
            ticks[s] = s == 0 ? "trained" : s <= au->rnd.nlayer ? au->rnd.layer[s - 1] : "";
        }
        rp_series sr[5];
        for (int k = 0; k < 5; k++)
            sr[k] = (rp_series){.name = k < 4 ? names[k] : "Spearman of HOG, each layer alone", .y = y + k * L, .n = L,
                                .color = k_colors[k < 4 ? k : 0], .width = k == 0 ? 2.6 : k == 4 ? 1.4 : 1.5,
                                .dash = k == 4 ? 1 : 0};
        rp_chart ch = {.w = 300, .h = 200, .title = r->label, .xlabel = "randomized from the top down to",
                       .xlo = 0, .xhi = L - 1, .ylo = ylo, .yhi = 1, .xticks = ticks, .nxticks = L, .yref = tol,
                       .yref_label = "threshold"};
        sal_sbuf svg = {0};
        rp_svg_lines(&svg, &ch, sr, 5);
        char what[32], name[512];
        snprintf(what, sizeof what, "curve%d", i);
        st = write_svg(c, a->stem, what, &svg, name, sizeof name);
        if (st == SAL_OK) {
            sal_sb_printf(h, "<img src=\"");
            rp_url(h, name);
            sal_sb_printf(h, "\" alt=\"randomization curves of ");
            rp_esc(h, r->label);
            sal_sb_printf(h, "\">\n");
        }
        sal_free(y), sal_free(ticks);
    }
    if (any) sal_sb_printf(h, "</div>\n");
    return st;
}

/* Small multiples of the deletion and insertion curves. */
static sal_status faithfulness_panels(rp_ctx *c, const rp_audit *a, sal_sbuf *h) {
    static const char *const names[] = {"deletion, most relevant first", "deletion, least relevant first",
                                        "insertion, most relevant first", "insertion, least relevant first"};
    static const char *const colors[] = {"#d1495b", "#0072b2", "#2e9e6b", "#9d7bd8"};
    const sal_audit *au = a->au;
    int nr = au->fa.curve ? (int)au->fa.steps + 1 : 0; /* the random order's deletion curve */
    const double *rnd = nr ? au->fa.curve + AU_DEL_MORF * nr : NULL;
    /* one y range for all panels, so they compare */
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < au->nres; i++)
        for (int q = 0; au->res[i].curve && q < AU_NCURVE * au->res[i].npoint; q++)
            if (isfinite(au->res[i].curve[q])) lo = fmin(lo, au->res[i].curve[q]), hi = fmax(hi, au->res[i].curve[q]);
    for (int s = 0; s < nr; s++)
        if (isfinite(rnd[s])) lo = fmin(lo, rnd[s]), hi = fmax(hi, rnd[s]);
    if (!(hi >= lo)) return SAL_OK;
    double pad = (hi - lo) * 0.05 + 1e-9;
    lo -= pad, hi += pad;
    bool any = false;
    sal_status st = SAL_OK;
    const char *output = rj_getstr(&a->doc, "output", "output");
    for (int i = 0; i < au->nres && st == SAL_OK; i++) {
        const au_result *r = &au->res[i];
        if (!r->curve) continue;
        if (!any) {
            sal_sb_printf(h, "<h3>Deletion and insertion curves</h3>\n<div class=\"key\">");
            for (int k = 0; k < 4; k++)
                sal_sb_printf(h, "<span><i style=\"border-color:%s%s\"></i>%s</span>", colors[k],
                          k == 1 || k == 3 ? ";border-top-style:dotted" : "", names[k]);
            if (rnd) sal_sb_printf(h, "<span><i style=\"border-color:#888;border-top-style:dashed\"></i>deletion in random order</span>");
            sal_sb_printf(h, "</div>\n<div class=\"panels\">\n");
            any = true;
        }
        rp_series sr[5];
        double *xs[5] = {0};
        int ns = 0;
        for (int k = 0; k < 5 && st == SAL_OK; k++) {
            int n = k < 4 ? r->npoint : nr;
            const double *v = k < 4 ? r->curve + k * r->npoint : rnd;
            if (n < 2) continue;
            double *xy = sal_malloc((size_t)n * 2 * sizeof *xy);
            if (!xy) {
                st = sal_fail(SAL_ERR_NOMEM, "out of memory");
                break;
            }
            xs[ns] = xy;
            for (int s = 0; s < n; s++) xy[s] = (double)s / (n - 1), xy[n + s] = v[s];
            sr[ns++] = (rp_series){.name = k < 4 ? names[k] : "deletion in random order", .x = xy, .y = xy + n, .n = n,
                                   .color = k < 4 ? colors[k] : "#888", .width = k == 0 ? 2.4 : 1.5,
                                   .dash = k == 4 ? 1 : k == 1 || k == 3 ? 2 : 0};
        }
        if (st == SAL_OK) {
            rp_chart ch = {.w = 300, .h = 200, .title = r->label, .xlabel = "fraction of pixels replaced",
                           .ylabel = output, .xlo = 0, .xhi = 1, .ylo = lo, .yhi = hi, .yref = NAN};
            sal_sbuf svg = {0};
            rp_svg_lines(&svg, &ch, sr, ns);
            char what[32], name[512];
            snprintf(what, sizeof what, "curve%d", i);
            st = write_svg(c, a->stem, what, &svg, name, sizeof name);
            if (st == SAL_OK) {
                sal_sb_printf(h, "<img src=\"");
                rp_url(h, name);
                sal_sb_printf(h, "\" alt=\"deletion and insertion curves of ");
                rp_esc(h, r->label);
                sal_sb_printf(h, "\">\n");
            }
        }
        for (int k = 0; k < ns; k++) sal_free(xs[k]);
    }
    if (any) sal_sb_printf(h, "</div>\n");
    return st;
}

/* The audit's setting: model, data, seed, tolerance and its own top-level facts. */
static void setting(sal_sbuf *h, const rp_audit *a) {
    const rj_value *d = &a->doc;
    sal_sb_printf(h, "<p class=\"sub\">");
    const char *model = rj_getstr(d, "model", ""), *data = rj_getstr(d, "data", "");
    if (*model) sal_sb_printf(h, "model <code>"), rp_esc(h, model), sal_sb_printf(h, "</code> &middot; ");
    if (*data) sal_sb_printf(h, "data <code>"), rp_esc(h, data), sal_sb_printf(h, "</code> &middot; ");
    sal_sb_printf(h, "seed %.0f", rj_getnum(d, "seed"));
    double tol = rj_getnum(d, "tolerance");
    if (isfinite(tol)) sal_sb_printf(h, " &middot; tolerance %g", tol);
    const rj_value *mc = rj_get(d, "model_check");
    if (mc) {
        sal_sb_printf(h, " &middot; model check: f<sub>2</sub>(x + m) = f<sub>1</sub>(x) up to ");
        fmt_num(h, rj_getnum(mc, "max_abs_diff"));
        double same = rj_getnum(mc, "same_predictions"), n = rj_getnum(mc, "samples");
        if (isfinite(same) && isfinite(n)) sal_sb_printf(h, ", same prediction on %.0f of %.0f samples", same, n);
    }
    const rj_value *sh = rj_get(d, "shift");
    if (sh && isfinite(rj_getnum(sh, "min")))
        sal_sb_printf(h, " &middot; shift values in [%.3g, %.3g]", rj_getnum(sh, "min"), rj_getnum(sh, "max"));
    const rj_value *rep = rj_get(d, "replacement");
    if (rep) sal_sb_printf(h, " &middot; removed pixels replaced by %s", rj_getstr(rep, "kind", "?"));
    const rj_value *layers = rj_get(d, "layers");
    if (layers && layers->type == RJ_ARR) {
        sal_sb_printf(h, " &middot; layers randomized, top first:");
        for (int i = 0; i < layers->n; i++) sal_sb_printf(h, " <code>"), rp_esc(h, rj_str(&layers->items[i], "?")), sal_sb_printf(h, "</code>");
    }
    sal_sb_printf(h, "</p>\n");
}

static sal_status audit_section(rp_ctx *c, rp_audit *a, int idx, sal_sbuf *h) {
    const kind_info *k = a->kind;
    const char *kname = k ? k->name : rj_getstr(&a->doc, "audit", "");
    sal_sb_printf(h, "<section id=\"a%d\">\n<h2>", idx);
    audit_title(h, a, false);
    sal_sb_printf(h, "</h2>\n");
    setting(h, a);
    if (k) sal_sb_printf(h, "<p class=\"about\">%s</p>\n", k->about);
    const char *note = rj_getstr(a->meta, "note", NULL);
    if (note) {
        sal_sb_printf(h, "<p class=\"about\">");
        rp_esc(h, note);
        sal_sb_printf(h, "</p>\n");
    }
    /* counts */
    const sal_audit *au = a->au;
    int np = 0, nf = 0, ns = 0;
    for (int i = 0; i < au->nres; i++) {
        sal_verdict v = au->res[i].outcome;
        np += v == SAL_VERDICT_PASS, nf += v == SAL_VERDICT_FAIL, ns += v == SAL_VERDICT_SKIPPED || v == SAL_VERDICT_UNDETERMINED;
    }
    sal_sb_printf(h, "<div class=\"cards\"><div class=\"card\"><b style=\"color:var(--good)\">%d</b><span>pass</span></div>"
                 "<div class=\"card\"><b style=\"color:var(--bad)\">%d</b><span>fail</span></div>"
                 "<div class=\"card\"><b style=\"color:var(--skip)\">%d</b><span>skipped or undetermined</span></div></div>\n",
              np, nf, ns);
    sal_status st = SAL_OK;
    /* the figure grid first: pictures before numbers */
    if (a->figure) {
        sal_sb_printf(h, "<h3>Figure: rows are methods</h3>\n<figure class=\"grid\"><img src=\"");
        rp_url(h, a->figure);
        sal_sb_printf(h, "\" alt=\"figure grid of the ");
        rp_esc(h, kname);
        sal_sb_printf(h, " audit\"><figcaption>");
        const char *cap = rj_getstr(a->meta, "figure_caption", NULL);
        if (cap) rp_esc(h, cap);
        else sal_sb_printf(h, "Each row is one method; each heatmap is scaled to its own 99.5th percentile of |value|.");
        sal_sb_printf(h, "</figcaption></figure>\n<div class=\"legend\"><span>Legend:</span><img src=\"legend-diverging.svg\" "
                     "alt=\"diverging colour bar\"><span>maps with both signs</span><img src=\"legend-sequential.svg\" "
                     "alt=\"sequential colour bar\"><span>maps of one sign (magnitude)</span></div>\n");
    }
    if (k && au->nres) st = bars(c, a, h);
    if (st == SAL_OK && k && !strcmp(k->name, "randomization")) st = randomization_panels(c, a, h);
    if (st == SAL_OK && k && !strcmp(k->name, "faithfulness")) st = faithfulness_panels(c, a, h);
    /* the verdict table */
    const char *keys[AU_MAX_METRICS];
    int nk = metric_keys(a, keys, AU_MAX_METRICS);
    sal_sb_printf(h, "<h3>Verdicts</h3>\n<div class=\"scroll\"><table>\n<tr><th class=\"l\">method</th>");
    for (int q = 0; q < nk; q++) sal_sb_printf(h, "<th>"), rp_esc(h, keys[q]), sal_sb_printf(h, "</th>");
    sal_sb_printf(h, "<th class=\"l\">verdict</th></tr>\n");
    for (int i = 0; i < au->nres; i++) {
        const au_result *r = &au->res[i];
        bool skip = !au_ran(r);
        sal_sb_printf(h, "<tr><td class=\"l\">");
        rp_esc(h, r->label);
        sal_sb_printf(h, "</td>");
        const char *why = r->verdict;
        if (skip && nk > 0) { /* the reason, across the metric columns */
            sal_sb_printf(h, "<td class=\"l why\" colspan=\"%d\" style=\"white-space:normal\">", nk);
            rp_esc(h, !strncmp(why, "skipped: ", 9) ? why + 9 : why);
            sal_sb_printf(h, "</td>");
        }
        for (int q = 0; q < nk && !skip; q++) {
            bool is_bool;
            double v = metric(r, keys[q], &is_bool);
            sal_sb_printf(h, "<td>");
            if (is_bool) sal_sb_printf(h, "%s", v != 0 ? "yes" : "no");
            else fmt_num(h, v);
            sal_sb_printf(h, "</td>");
        }
        verdict_cell(h, r);
        sal_sb_printf(h, "</tr>\n");
    }
    sal_sb_printf(h, "</table></div>\n");
    if (k) rp_papers(h, k->name, au, rj_getstr(a->meta, "paper_shift", NULL));
    /* what the numbers mean */
    sal_sb_printf(h, "<dl class=\"metrics\">\n");
    for (int q = 0; q < nk; q++) {
        sal_sbuf t = {0};
        if (!metric_text(&t, kname, keys[q]) || t.oom) {
            h->oom |= t.oom;
            sal_sb_free(&t);
            continue;
        }
        sal_sb_printf(h, "<dt>");
        rp_esc(h, keys[q]);
        sal_sb_printf(h, "</dt><dd>");
        rp_esc(h, t.s ? t.s : "");
        sal_sb_printf(h, "</dd>\n");
        sal_sb_free(&t);
    }
    sal_sb_printf(h, "</dl>\n<p class=\"sub\">Data: <a href=\"");
    rp_url(h, a->stem);
    sal_sb_printf(h, ".json\">");
    rp_esc(h, a->stem);
    sal_sb_printf(h, ".json</a>");
    if (a->csv) {
        sal_sb_printf(h, " &middot; <a href=\"");
        rp_url(h, a->stem);
        sal_sb_printf(h, ".csv\">");
        rp_esc(h, a->stem);
        sal_sb_printf(h, ".csv</a>");
    }
    sal_sb_printf(h, "</p>\n</section>\n");
    return st;
}

/* Rows: every method label in the order first seen; columns: the audits. */
static sal_status matrix(const rp_ctx *c, sal_sbuf *h) {
    int cap = 0, n = 0;
    for (int i = 0; i < c->na; i++) cap += c->a[i].au->nres;
    const char **rows = sal_calloc((size_t)cap + 1, sizeof *rows);
    if (!rows) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->na; i++) {
        const sal_audit *au = c->a[i].au;
        for (int k = 0; k < au->nres; k++) {
            const char *l = au->res[k].label;
            if (au->res[k].reference) continue; /* the motif audit's oracle and random map: its own table */
            bool seen = false;
            for (int q = 0; q < n && !seen; q++) seen = !strcmp(rows[q], l);
            if (!seen) rows[n++] = l;
        }
    }
    sal_sb_printf(h, "<section id=\"matrix\">\n<h2>Which explanations can be trusted?</h2>\n"
                 "<p class=\"sub\">Each row is an attribution method, each column an audit. "
                 "<span class=\"cell pass\">&#10003;</span> passes, <span class=\"cell fail\">&#10007;</span> fails, "
                 "<span class=\"cell skip\">&ndash;</span> could not run (hover for the reason), "
                 "<span class=\"cell unk\">?</span> undetermined. Click a column for its figures and numbers.</p>\n"
                 "<div class=\"scroll\"><table class=\"matrix\">\n<tr><th class=\"l\">method</th>");
    for (int i = 0; i < c->na; i++) {
        sal_sb_printf(h, "<th class=\"rot\"><div><a href=\"#a%d\">", i);
        audit_title(h, &c->a[i], true);
        sal_sb_printf(h, "</a></div></th>");
    }
    sal_sb_printf(h, "<th>passed</th></tr>\n");
    for (int q = 0; q < n; q++) {
        sal_sb_printf(h, "<tr><td class=\"l\">");
        rp_esc(h, rows[q]);
        sal_sb_printf(h, "</td>");
        int pass = 0, ran = 0;
        for (int i = 0; i < c->na; i++) {
            const sal_audit *au = c->a[i].au;
            const au_result *r = NULL;
            for (int k = 0; k < au->nres && !r; k++)
                if (!strcmp(au->res[k].label, rows[q])) r = &au->res[k];
            if (!r) {
                sal_sb_printf(h, "<td></td>");
                continue;
            }
            const char *o = outcome(r);
            pass += r->outcome == SAL_VERDICT_PASS, ran += r->outcome == SAL_VERDICT_PASS || r->outcome == SAL_VERDICT_FAIL;
            sal_sb_printf(h, "<td><span class=\"cell %s\" title=\"", o);
            rp_esc(h, r->verdict);
            sal_sb_printf(h, "\">%s</span></td>", !strcmp(o, "pass") ? "&#10003;" : !strcmp(o, "fail") ? "&#10007;"
                                              : !strcmp(o, "skip") ? "&ndash;" : "?");
        }
        sal_sb_printf(h, "<td>%d / %d</td></tr>\n", pass, ran);
    }
    sal_sb_printf(h, "</table></div>\n</section>\n");
    sal_free(rows);
    return SAL_OK;
}

/* Methods against metrics (saliency metric): each cell the mean over the samples where the metric is
 * defined, the best of each column in bold; hover for the sd, median and samples. */
static sal_status metrics_section(rp_ctx *c, sal_sbuf *h) {
    int cap = 0, n = 0;
    for (int i = 0; i < c->nm; i++) cap += rj_get(&c->m[i].doc, "results")->n;
    const char **rows = sal_calloc((size_t)cap + 1, sizeof *rows);
    if (!rows) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->nm; i++) {
        const rj_value *res = rj_get(&c->m[i].doc, "results");
        for (int k = 0; k < res->n; k++) {
            const char *l = rj_getstr(&res->items[k], "label", "?");
            bool seen = false;
            for (int q = 0; q < n && !seen; q++) seen = !strcmp(rows[q], l);
            if (!seen) rows[n++] = l;
        }
    }
    sal_sb_printf(h, "<section id=\"metrics\">\n<h2>Evaluation metrics</h2>\n<p class=\"sub\">Each row is an attribution "
                 "method, each column a metric (<code>saliency metric</code>, docs/metrics.md): the mean over the samples "
                 "where it is defined, &uarr; higher or &darr; lower is better, the best in bold. Hover a cell for the "
                 "spread.</p>\n<div class=\"scroll\"><table>\n<tr><th class=\"l\">method</th>");
    for (int i = 0; i < c->nm; i++) {
        const char *better = rj_getstr(&c->m[i].doc, "better", "");
        sal_sb_printf(h, "<th title=\"");
        rp_esc(h, rj_getstr(&c->m[i].doc, "summary", ""));
        sal_sb_printf(h, "\">");
        rp_esc(h, rj_getstr(&c->m[i].doc, "metric", "?"));
        sal_sb_printf(h, " %s<br><small>", !strcmp(better, "higher") ? "&uarr;" : !strcmp(better, "lower") ? "&darr;" : "");
        rp_esc(h, rj_getstr(&c->m[i].doc, "family", ""));
        sal_sb_printf(h, "</small></th>");
    }
    sal_sb_printf(h, "</tr>\n");
    for (int q = 0; q < n; q++) {
        sal_sb_printf(h, "<tr><td class=\"l\">");
        rp_esc(h, rows[q]);
        sal_sb_printf(h, "</td>");
        for (int i = 0; i < c->nm; i++) {
            const rj_value *res = rj_get(&c->m[i].doc, "results"), *r = NULL;
            const char *better = rj_getstr(&c->m[i].doc, "better", "");
            int sign = !strcmp(better, "higher") ? 1 : !strcmp(better, "lower") ? -1 : 0;
            double best = NAN;
            for (int k = 0; k < res->n; k++) {
                double v = rj_getnum(&res->items[k], "mean");
                if (!strcmp(rj_getstr(&res->items[k], "label", ""), rows[q])) r = &res->items[k];
                if (sign && isfinite(v) && (isnan(best) || sign * v > sign * best)) best = v;
            }
            if (!r) {
                sal_sb_printf(h, "<td></td>");
                continue;
            }
            const char *sk = rj_getstr(r, "skipped", NULL);
            double v = rj_getnum(r, "mean");
            sal_sb_printf(h, "<td title=\"");
            if (sk) rp_esc(h, sk);
            else sal_sb_printf(h, "sd %.4g, median %.4g, defined for %.0f of %.0f samples", rj_getnum(r, "sd"),
                               rj_getnum(r, "median"), rj_getnum(r, "defined"), rj_getnum(&c->m[i].doc, "samples"));
            sal_sb_printf(h, "\">%s", !sk && v == best ? "<b>" : "");
            fmt_num(h, sk ? NAN : v);
            sal_sb_printf(h, "%s</td>", !sk && v == best ? "</b>" : "");
        }
        sal_sb_printf(h, "</tr>\n");
    }
    sal_sb_printf(h, "</table></div>\n<ul class=\"sub\">\n");
    for (int i = 0; i < c->nm; i++) {
        const rj_value *d = &c->m[i].doc, *pv = rj_get(d, "params");
        sal_sb_printf(h, "<li><b>");
        rp_esc(h, rj_getstr(d, "metric", "?"));
        sal_sb_printf(h, "</b>: ");
        rp_esc(h, rj_getstr(d, "summary", ""));
        sal_sb_printf(h, "; %s of %.0f samples", rj_getstr(d, "output", "logit"), rj_getnum(d, "samples"));
        for (int k = 0; pv && pv->type == RJ_OBJ && k < pv->n; k++) {
            sal_sb_printf(h, ", ");
            rp_esc(h, pv->keys[k]);
            sal_sb_printf(h, "=");
            rp_esc(h, rj_str(&pv->items[k], ""));
        }
        sal_sb_printf(h, " (<a href=\"");
        rp_url(h, c->m[i].stem);
        sal_sb_printf(h, ".json\">JSON</a>");
        if (c->m[i].csv) {
            sal_sb_printf(h, ", <a href=\"");
            rp_url(h, c->m[i].stem);
            sal_sb_printf(h, ".csv\">CSV</a>");
        }
        sal_sb_printf(h, ")</li>\n");
    }
    sal_sb_printf(h, "</ul>\n</section>\n");
    sal_free(rows);
    return SAL_OK;
}

/* The manifest's models and extra figures. */
static sal_status manifest_parts(rp_ctx *c, sal_sbuf *h) {
    const rj_value *mf = &c->manifest, *figs = rj_get(mf, "figures"), *models = rj_get(mf, "models");
    sal_status st = SAL_OK;
    if (figs && figs->type == RJ_ARR && figs->n) {
        sal_sb_printf(h, "<section id=\"highlights\">\n<h2>");
        rp_esc(h, rj_getstr(mf, "figures_title", "Highlights"));
        sal_sb_printf(h, "</h2>\n<div class=\"hero\">\n");
        for (int i = 0; i < figs->n && st == SAL_OK; i++) {
            const rj_value *f = &figs->items[i];
            const char *file = rj_getstr(f, "file", NULL);
            if (!file || strchr(file, '/') || file[0] == '.') continue;
            char *src = path_join(c->manifest_dir, file);
            if (!src) return sal_fail(SAL_ERR_NOMEM, "out of memory");
            bool ok = is_file(src);
            sal_free(src);
            if (!ok) continue;
            if ((st = copy_file(c, c->manifest_dir, file)) != SAL_OK) break;
            sal_sb_printf(h, "<figure><img src=\"");
            rp_url(h, file);
            sal_sb_printf(h, "\" alt=\"");
            rp_esc(h, rj_getstr(f, "title", file));
            sal_sb_printf(h, "\"><figcaption><b>");
            rp_esc(h, rj_getstr(f, "title", ""));
            sal_sb_printf(h, "</b> ");
            rp_esc(h, rj_getstr(f, "caption", ""));
            sal_sb_printf(h, "</figcaption></figure>\n");
        }
        sal_sb_printf(h, "</div>\n<div class=\"legend\"><img src=\"legend-diverging.svg\" alt=\"diverging colour bar\">"
                     "<span>blue: evidence against, red: evidence for the explained class</span></div>\n</section>\n");
    }
    if (models && models->type == RJ_ARR && models->n) {
        sal_sb_printf(h, "<section id=\"models\">\n<h2>Models</h2>\n<div class=\"scroll\"><table class=\"wrap\">\n<tr><th class=\"l\">model"
                     "</th><th class=\"l\">architecture</th><th class=\"l\">trained on</th><th>held-out accuracy</th>"
                     "<th>training</th></tr>\n");
        for (int i = 0; i < models->n; i++) {
            const rj_value *m = &models->items[i];
            sal_sb_printf(h, "<tr><td class=\"l\"><b>");
            rp_esc(h, rj_getstr(m, "name", "?"));
            sal_sb_printf(h, "</b></td><td class=\"l\">");
            rp_esc(h, rj_getstr(m, "arch", ""));
            sal_sb_printf(h, "</td><td class=\"l\">");
            rp_esc(h, rj_getstr(m, "data", ""));
            sal_sb_printf(h, "</td><td>");
            double acc = rj_getnum(m, "accuracy");
            if (isfinite(acc)) sal_sb_printf(h, "%.1f%%", 100 * acc);
            else sal_sb_printf(h, "&ndash;");
            sal_sb_printf(h, "</td><td>");
            double sec = rj_getnum(m, "train_seconds");
            if (rj_getnum(m, "cached") == 1) sal_sb_printf(h, "reused (hash matched)");
            else if (isfinite(sec)) sal_sb_printf(h, "%.0f s", sec);
            sal_sb_printf(h, "</td></tr>\n");
        }
        sal_sb_printf(h, "</table></div>\n");
        const char *mnote = rj_getstr(mf, "models_note", NULL);
        if (mnote) sal_sb_printf(h, "<p class=\"sub\">"), rp_esc(h, mnote), sal_sb_printf(h, "</p>\n");
        sal_sb_printf(h, "</section>\n");
    }
    return st;
}

static int kind_rank(const rp_audit *a) {
    for (int i = 0; i < NKINDS; i++)
        if (a->kind == &k_kinds[i]) return i;
    return NKINDS;
}

static int rank(const rp_audit *a) {
    double o = rj_getnum(a->meta, "order");
    return isfinite(o) ? (int)o : 1000 + kind_rank(a);
}

static int by_rank(const void *x, const void *y) {
    const rp_audit *a = x, *b = y;
    int ra = rank(a), rb = rank(b);
    if (ra != rb) return ra < rb ? -1 : 1;
    return strcmp(a->stem, b->stem);
}

static sal_status build(rp_ctx *c, const sal_report_opts *o) {
    SAL_TRY(mkdirs(c->out));
    /* the manifest entries (matched by file name) and the files beside each JSON */
    const rj_value *entries = rj_get(&c->manifest, "audits");
    for (int i = 0; i < c->na; i++) {
        rp_audit *a = &c->a[i];
        for (int k = 0; entries && entries->type == RJ_ARR && k < entries->n; k++) {
            const char *f = rj_getstr(&entries->items[k], "file", "");
            size_t n = strlen(a->stem);
            if (!strncmp(f, a->stem, n) && !strcmp(f + n, ".json")) a->meta = &entries->items[k];
        }
    }
    for (int i = 0; i < c->na; i++) {
        rp_audit *a = &c->a[i];
        char name[600];
        static const char *const figs[] = {"%s.png", "%s-figure.png", "%s.figure.png", "%s-logos.svg"};
        for (int k = 0; k < 4 && !a->figure; k++) {
            snprintf(name, sizeof name, figs[k], a->stem);
            char *p = path_join(a->dir, name);
            if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
            bool found = is_file(p);
            sal_free(p);
            if (found) {
                SAL_TRY(copy_file(c, a->dir, name));
                if (!(a->figure = sal_strdup(name))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
            }
        }
        snprintf(name, sizeof name, "%s.json", a->stem);
        SAL_TRY(copy_file(c, a->dir, name));
        snprintf(name, sizeof name, "%s.csv", a->stem);
        char *p = path_join(a->dir, name);
        if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        a->csv = is_file(p);
        sal_free(p);
        if (a->csv) SAL_TRY(copy_file(c, a->dir, name));
    }
    for (int i = 0; i < c->nm; i++) {
        rp_metric *mt = &c->m[i];
        char name[600];
        snprintf(name, sizeof name, "%s.json", mt->stem);
        SAL_TRY(copy_file(c, mt->dir, name));
        snprintf(name, sizeof name, "%s.csv", mt->stem);
        char *p = path_join(mt->dir, name);
        if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        mt->csv = is_file(p);
        sal_free(p);
        if (mt->csv) SAL_TRY(copy_file(c, mt->dir, name));
    }
    /* order: the manifest's "order", else by kind, then by name */
    qsort(c->a, (size_t)c->na, sizeof *c->a, by_rank);
    /* legends */
    sal_sbuf svg = {0};
    rp_svg_colorbar(&svg, SAL_CMAP_DIVERGING);
    sal_status st = save_text(c, "legend-diverging.svg", &svg);
    sal_sb_free(&svg);
    if (st == SAL_OK) {
        rp_svg_colorbar(&svg, SAL_CMAP_SEQUENTIAL);
        st = save_text(c, "legend-sequential.svg", &svg);
        sal_sb_free(&svg);
    }
    if (st != SAL_OK) return st;
    /* the page */
    sal_sbuf h = {0};
    const char *title = o && o->title ? o->title : rj_getstr(&c->manifest, "title", "Can these explanations be trusted?");
    sal_sb_printf(&h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    rp_esc(&h, title);
    sal_sb_printf(&h, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<header class=\"top\">\n<h1>", k_css);
    rp_esc(&h, title);
    sal_sb_printf(&h, "</h1>\n");
    const char *intro = rj_getstr(&c->manifest, "intro", NULL);
    sal_sb_printf(&h, "<p>");
    if (intro) rp_esc(&h, intro);
    else sal_sb_printf(&h, "Attribution maps say which input pixels drove a prediction. The audits below test whether "
                       "those maps can be trusted: whether they change when the model does not, stay the same when "
                       "the model is destroyed, ignore the class they were asked about, or fail to find what the "
                       "model uses.");
    sal_sb_printf(&h, "</p>\n");
    const char *sub = rj_getstr(&c->manifest, "subtitle", NULL);
    if (sub) sal_sb_printf(&h, "<p>"), rp_esc(&h, sub), sal_sb_printf(&h, "</p>\n");
    sal_sb_printf(&h, "</header>\n<nav>");
    if (c->na) sal_sb_printf(&h, "<a href=\"#matrix\">Overview</a>");
    if (c->nm) sal_sb_printf(&h, "<a href=\"#metrics\">Metrics</a>");
    if (rj_get(&c->manifest, "figures")) sal_sb_printf(&h, "<a href=\"#highlights\">Highlights</a>");
    if (rj_get(&c->manifest, "models")) sal_sb_printf(&h, "<a href=\"#models\">Models</a>");
    for (int i = 0; i < c->na; i++) {
        sal_sb_printf(&h, "<a href=\"#a%d\">", i);
        audit_title(&h, &c->a[i], true);
        sal_sb_printf(&h, "</a>");
    }
    sal_sb_printf(&h, "</nav>\n<main>\n");
    st = manifest_parts(c, &h);
    if (st == SAL_OK && c->na) st = matrix(c, &h);
    if (st == SAL_OK && c->nm) st = metrics_section(c, &h);
    for (int i = 0; i < c->na && st == SAL_OK; i++) st = audit_section(c, &c->a[i], i, &h);
    if (st == SAL_OK) {
        sal_sb_printf(&h, "</main>\n<footer>\n");
        const char *how = rj_getstr(&c->manifest, "reproduce", NULL);
        if (how) sal_sb_printf(&h, "<p>Reproduce: <code>"), rp_esc(&h, how), sal_sb_printf(&h, "</code></p>\n");
        if (c->notes.len) sal_sb_printf(&h, "<p>Files not shown:</p>\n<ul>\n%s</ul>\n", c->notes.s);
        sal_sb_printf(&h, "<p>Written by saliency %s (<code>saliency report</code>). Static HTML: no scripts, no network."
                      "</p>\n</footer>\n</body>\n</html>\n", SAL_VERSION);
        st = save_text(c, "index.html", &h);
    }
    sal_sb_free(&h);
    return st;
}

sal_status sal_report_write(const char *in_dir, const char *out_dir, const sal_report_opts *o, int *naudits) {
    if (naudits) *naudits = 0;
    if (!in_dir || !*in_dir || !out_dir || !*out_dir) return sal_fail(SAL_ERR_ARG, "the report needs an input and an output folder");
    if (!is_dir(in_dir)) return sal_fail(SAL_ERR_IO, "%s: not a folder", in_dir);
    rp_ctx c = {.in = in_dir, .out = out_dir};
    c.a = sal_calloc(MAX_AUDITS, sizeof *c.a);
    c.m = sal_calloc(MAX_AUDITS, sizeof *c.m);
    if (!c.a || !c.m) {
        sal_free(c.a), sal_free(c.m);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    sal_status st = scan(&c, in_dir);
    char *sub = st == SAL_OK ? path_join(in_dir, "audits") : NULL;
    if (st == SAL_OK && !sub) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK && is_dir(sub)) st = scan(&c, sub);
    sal_free(sub);
    sub = st == SAL_OK ? path_join(in_dir, "metrics") : NULL;
    if (st == SAL_OK && !sub) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK && is_dir(sub)) st = scan(&c, sub);
    sal_free(sub);
    if (st == SAL_OK && c.na == 0 && c.nm == 0)
        st = sal_fail(SAL_ERR_ARG, "%s holds no audit results and no metric results (NAME.json files written by `saliency audit ... --json` or `saliency metric ... --json`)", in_dir);
    if (st == SAL_OK && c.notes.oom) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = build(&c, o);
    if (st == SAL_OK && naudits) *naudits = c.na;
    for (int i = 0; i < c.na; i++) {
        rj_free(&c.a[i].doc);
        sal_audit_free(c.a[i].au);
        sal_free(c.a[i].dir);
        sal_free(c.a[i].stem);
        sal_free(c.a[i].figure);
    }
    sal_free(c.a);
    for (int i = 0; i < c.nm; i++) {
        rj_free(&c.m[i].doc);
        sal_free(c.m[i].dir);
        sal_free(c.m[i].stem);
    }
    sal_free(c.m);
    rj_free(&c.manifest);
    sal_free(c.manifest_dir);
    sal_sb_free(&c.notes);
    return st;
}
