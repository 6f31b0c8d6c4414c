/* The papers' own results beside ours (docs/audits.md, "The papers beside us"). The figures are
 * transcribed from the papers (Kindermans et al. 2019, Khakzar et al. 2020) and from the table
 * TorchRay publishes with its pointing-game benchmark (docs/pointing.csv); the report prints them
 * next to an audit's verdicts and says which of the papers' orderings our numbers reproduce. */
#include "report.h"
#include <math.h>

typedef struct {
    const char *method, *key, *val; /* key NULL: any configuration; else the value it must have, */
    bool dflt;                      /* which is the method's default (a result without key matches) */
    const char *name;               /* the paper's name */
    const char *paper;              /* the paper's figure(s) as text */
    double v;                       /* the figure the orderings compare (NAN: none) */
    const char *verdicts;           /* invariance: the paper's verdicts under the constant shift, the
                                       checkerboard, the cat ('i' invariant, 'n' not, '-' not stated);
                                       randomization: "s" sensitive or "i" insensitive; else NULL */
} p_row;

typedef struct {
    int hi, lo; /* rows: the paper has hi's figure above lo's */
} p_order;

typedef struct {
    const char *kind, *cite, *differ; /* HTML */
    const char *col;                  /* what the paper's column holds */
    const char *ours, *ours2;         /* our metric(s) shown beside it (NULL: our verdict) */
    double scale;                     /* ours times this is in the paper's units */
    const char *order_key;            /* our metric the orderings compare (NULL: by verdict) */
    const char *order_what;           /* what an ordering says, e.g. "correlates more" */
    const char *order_note;           /* which of the paper's figures the orderings quote */
    const p_row *rows;
    int nrows;
    const p_order *orders;
    int norders;
} p_source;

#define N_(a) (int)(sizeof a / sizeof a[0])

/* Kindermans et al., sections 3-4, figures 2-6 (the paper's MLP on MNIST). */
static const p_row k_kind_rows[] = {
    {"gradient", NULL, NULL, false, "gradient", "invariant under every shift (section 3.1)", NAN, "iii"},
    {"guided_backprop", NULL, NULL, false, "GuidedBackprop", "invariant under every shift (section 3.1)", NAN, "iii"},
    {"patternnet", NULL, NULL, false, "PatternNet", "invariant under every shift (section 3.1)", NAN, "iii"},
    {"pattern_attribution", NULL, NULL, false, "PatternAttribution (DTD, PA root)", "invariant under every shift",
     NAN, "iii"},
    {"deep_taylor", "root", "pattern", false, "DTD, PA reference point", "invariant under every shift", NAN, "iii"},
    {"deep_taylor", "root", "zero", false, "DTD, LRP (zero) reference point", "not invariant (figures 3-6)", NAN, "nnn"},
    {"lrp_0", NULL, NULL, false, "LRP (DTD with the zero root)", "not invariant (figures 3-6)", NAN, "nnn"},
    {"gradient_x_input", NULL, NULL, false, "gradient x input", "not invariant (figures 3-6)", NAN, "nnn"},
    {"integrated_gradients", "baseline", "black", false, "IG, black reference",
     "invariant to the constant shift (figure 3), not to the checkerboard or the cat (figures 4-6)", NAN, "inn"},
    {"integrated_gradients", "baseline", "zero", true, "IG, zero reference", "not invariant (figures 3-6)", NAN, "nnn"},
    {"smoothgrad", "inner", "gradient", true, "SG over the gradient", "invariant to the constant shift (figure 5)", NAN,
     "i--"},
    {"smoothgrad", "inner", "gradient_x_input", false, "SG over gradient x input",
     "not invariant to the constant shift (figure 5)", NAN, "n--"},
};

/* Khakzar et al., tables 2 and 4: Spearman correlation of HOG features, max- vs min-class maps,
 * VGG-16 on PASCAL VOC07. LRP-gamma = infinity is z+ (their section 4). */
static const p_row k_cs_rows[] = {
    {"gradcam", NULL, NULL, false, "GradCAM", "0.03", 0.03, NULL},
    {"fullgrad", NULL, NULL, false, "FullGrad", "0.48", 0.48, NULL},
    {"gradcam_pp", NULL, NULL, false, "GradCAM++", "0.37", 0.37, NULL},
    {"gradcam_pos", NULL, NULL, false, "GradCAM_Pos", "0.69", 0.69, NULL},
    {"gradmid", NULL, NULL, false, "GradMid", "0.29", 0.29, NULL},
    {"cumulative_gradcam", NULL, NULL, false, "CumulativeGradCAM", "0.92", 0.92, NULL},
    {"cumulative_gradmid", NULL, NULL, false, "CumulativeGradMid", "0.36", 0.36, NULL},
    {"guided_backprop", NULL, NULL, false, "Guided Backprop", "0.99", 0.99, NULL},
    {"gradient", NULL, NULL, false, "Gradients", "0.44", 0.44, NULL},
    {"rectgrad", NULL, NULL, false, "RectGrad", "0.99", 0.99, NULL},
    {"rectgrad_mod", NULL, NULL, false, "RectGrad_Mod", "0.72", 0.72, NULL},
    {"lrp_zplus", NULL, NULL, false, "LRP-&gamma;=&infin; (z+)", "0.99", 0.99, NULL},
    {"lrp_0", NULL, NULL, false, "LRP-0", "0.59", 0.59, NULL},
};
/* positive aggregation / propagation above its counterpart */
static const p_order k_cs_orders[] = {{3, 0}, {2, 0}, {1, 0}, {5, 0}, {7, 8}, {9, 10}, {11, 12}};

/* Khakzar et al., tables 1 and 3: pointing / restricted pointing accuracy (%), VGG-16 on the
 * multi-object images of PASCAL VOC07; the orderings compare the gap between the two games. */
static const p_row k_pg_rows[] = {
    {"gradcam", NULL, NULL, false, "GradCAM", "74.1 / 48.9", 74.1 - 48.9, NULL},
    {"fullgrad", NULL, NULL, false, "FullGrad", "58.4 / 50.5", 58.4 - 50.5, NULL},
    {"gradcam_pp", NULL, NULL, false, "GradCAM++", "66.2 / 54.1", 66.2 - 54.1, NULL},
    {"gradcam_pos", NULL, NULL, false, "GradCAM_Pos", "60.4 / 58.1", 60.4 - 58.1, NULL},
    {"gradmid", NULL, NULL, false, "GradMid", "63.9 / 56.3", 63.9 - 56.3, NULL},
    {"cumulative_gradcam", NULL, NULL, false, "CumulativeGradCAM", "58.1 / 56.2", 58.1 - 56.2, NULL},
    {"cumulative_gradmid", NULL, NULL, false, "CumulativeGradMid", "64.1 / 56.3", 64.1 - 56.3, NULL},
    {"guided_backprop", NULL, NULL, false, "Guided Backprop", "48.7 / 47.5", 48.7 - 47.5, NULL},
    {"gradient", NULL, NULL, false, "Gradients", "52.7 / 45.1", 52.7 - 45.1, NULL},
    {"rectgrad", NULL, NULL, false, "RectGrad", "51.2 / 50.0", 51.2 - 50.0, NULL},
    {"rectgrad_mod", NULL, NULL, false, "RectGrad_Mod", "59.5 / 53.8", 59.5 - 53.8, NULL},
    {"lrp_zplus", NULL, NULL, false, "LRP-&gamma;=&infin; (z+)", "50.6 / 50.0", 50.6 - 50.0, NULL},
    {"lrp_0", NULL, NULL, false, "LRP-0", "51.1 / 44.2", 51.1 - 44.2, NULL},
};
/* the counterpart's gap above the positive method's */
static const p_order k_pg_orders[] = {{0, 3}, {8, 7}, {10, 9}, {12, 11}};

/* TorchRay's pointing-game table (docs/pointing.csv): per-class mean accuracy (%), PASCAL VOC 2007
 * test, all images, VGG16 / ResNet50. Excitation backprop is LRP z+ (Khakzar et al., section 4). */
static const p_row k_tr_rows[] = {
    {"gradcam", NULL, NULL, false, "grad_cam", "86.6 / 90.4", 86.6, NULL},
    {"lrp_zplus", NULL, NULL, false, "excitation_backprop", "77.1 / 84.5", 77.1, NULL},
    {"gradient", NULL, NULL, false, "gradient", "76.3 / 72.3", 76.3, NULL},
    {"guided_backprop", NULL, NULL, false, "guided_backprop", "75.9 / 77.2", 75.9, NULL},
    {"deconvnet", NULL, NULL, false, "deconvnet", "67.5 / 68.6", 67.5, NULL},
};
/* orderings that hold for both networks of the table */
static const p_order k_tr_orders[] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {2, 4}, {3, 4}};

/* Khakzar et al., section 4 and figures 4-5 (cascading randomization, VGG-16, 1000 ImageNet
 * images), in words: positive propagation survives randomization, its counterparts do not. */
static const p_row k_rnd_rows[] = {
    {"guided_backprop", NULL, NULL, false, "Guided Backprop", "insensitive", NAN, "i"},
    {"rectgrad", NULL, NULL, false, "RectGrad", "insensitive", NAN, "i"},
    {"lrp_zplus", NULL, NULL, false, "LRP-&gamma;=&infin; (z+)", "insensitive", NAN, "i"},
    {"fullgrad", NULL, NULL, false, "FullGrad", "insensitive (considerably)", NAN, "i"},
    {"cumulative_gradcam", NULL, NULL, false, "CumulativeGradCAM", "the least sensitive", NAN, "i"},
    {"gradient", NULL, NULL, false, "Gradients", "sensitive", NAN, "s"},
    {"rectgrad_mod", NULL, NULL, false, "RectGrad_Mod", "sensitive", NAN, "s"},
    {"lrp_0", NULL, NULL, false, "LRP-0", "sensitive", NAN, "s"},
};

static const p_source k_sources[] = {
    {"invariance",
     "Kindermans et al., <i>The (Un)reliability of Saliency Methods</i>: the verdicts of sections 3-4 "
     "(figures 2-6) for the constant shift m = -1, the checkerboard and the targeted &ldquo;cat&rdquo;.",
     "Their network is the same 3 x 1024 ReLU MLP on MNIST in [0, 1]; ours is trained for fewer epochs.",
     "paper's verdict", NULL, NULL, 1, NULL, NULL, NULL, k_kind_rows, N_(k_kind_rows), NULL, 0},
    {"class-sensitivity",
     "Khakzar et al., <i>Rethinking Positive Aggregation and Propagation of Gradients in Gradient-based "
     "Saliency Methods</i>, tables 2 and 4: Spearman correlation of HOG features between the max- and "
     "min-class maps (higher: less class-sensitive).",
     "They explain VGG-16 on PASCAL VOC07 images; our networks are small MLPs and CNNs on 28 x 28 MNIST and "
     "Fashion-MNIST digits and garments, whose maps hold a single HOG block.",
     "paper (Spearman HOG)", "hog_spearman", NULL, 1, "hog_spearman", "correlates more between classes than", "", k_cs_rows,
     N_(k_cs_rows), k_cs_orders, N_(k_cs_orders)},
    {"pointing",
     "Khakzar et al., tables 1 and 3: pointing / restricted pointing accuracy (%); a class-sensitive "
     "method loses accuracy in the restricted game.",
     "They play on VGG-16 and PASCAL VOC07's multi-object images; ours is a small CNN on composite images "
     "of a few MNIST digits or Fashion-MNIST items (the demo's: MNIST digits, 32 x 32).",
     "paper: pointing / restricted (%)", "pointing_accuracy", "restricted_accuracy", 100, "gap", "loses more in the restricted game than",
     ", pointing minus restricted:",
     k_pg_rows, N_(k_pg_rows), k_pg_orders, N_(k_pg_orders)},
    {"pointing",
     "The pointing-game table published with TorchRay (Fong et al.'s benchmark of Zhang et al.'s game): "
     "per-class mean accuracy (%) on PASCAL VOC 2007 test, VGG16 / ResNet50. Contrastive excitation "
     "backprop (79.9 / 90.7), RISE (86.9 / 86.4), extremal perturbation (88.0 / 88.9) and the centre "
     "baseline (69.6 / 69.6) are not methods here; Grad-CAM and contrastive excitation backprop lead RISE, "
     "the gradient and the centre baseline on ResNet50, while on VGG16 RISE edges Grad-CAM.",
     "Their networks are ImageNet-scale VGG16 and ResNet50 on natural images; ours is a small CNN on "
     "composite images of a few MNIST digits or Fashion-MNIST items, with the tolerance scaled to the image.",
     "TorchRay: VGG16 / ResNet50 (%)", "pointing_class_mean", NULL, 100, "pointing_class_mean", "points better than",
     " VGG16; ResNet50 agrees:",
     k_tr_rows, N_(k_tr_rows), k_tr_orders, N_(k_tr_orders)},
    {"randomization",
     "Khakzar et al., section 4 and figures 4-5 (with Adebayo et al.'s cascading randomization): positive "
     "propagation and positive aggregation survive randomization, their counterparts do not.",
     "They randomize VGG-16 on 1000 ImageNet images; our networks are small MLPs and CNNs on 28 x 28 images, "
     "where the first layer holds much of what a map shows.",
     "paper", NULL, NULL, 1, NULL, NULL, NULL, k_rnd_rows, N_(k_rnd_rows), NULL, 0},
};

/* Whether result r is the configuration row p names. */
static bool row_matches(const p_row *p, const au_result *r) {
    if (!r->method || strcmp(p->method, r->method)) return false;
    if (!p->key) return true;
    size_t n = strlen(p->key);
    for (int i = 0; i < r->nparams; i++)
        if (!strncmp(r->params[i], p->key, n) && r->params[i][n] == '=') return !strcmp(r->params[i] + n + 1, p->val);
    return p->dflt;
}

static const au_result *find_row(const sal_audit *au, const p_row *p) {
    for (int i = 0; i < au->nres; i++)
        if (au_ran(&au->res[i]) && row_matches(p, &au->res[i])) return &au->res[i];
    return NULL;
}

static double metric_of(const au_result *r, const char *key) {
    for (int i = 0; r && i < r->nmetric; i++)
        if (!strcmp(r->mkey[i], key)) return r->mval[i];
    return NAN;
}

/* v times scale; percentages (scale 100) with one decimal, correlations with two */
static void num(sal_sbuf *h, double v, double scale) {
    if (isfinite(v)) sal_sb_printf(h, scale == 100 ? "%.1f" : "%.2f", v * scale);
    else sal_sb_printf(h, "&ndash;");
}

/* a figure of the paper, already in its units */
static void paper_num(sal_sbuf *h, double v, double scale) {
    sal_sb_printf(h, scale == 100 ? "%.1f" : "%.2f", v);
}

/* Index of the invariance shift ("constant", "checkerboard", "cat"), -1 when unknown. */
static int shift_index(const char *shift) {
    static const char *const names[] = {"constant", "checkerboard", "cat"};
    for (int i = 0; shift && i < 3; i++)
        if (!strcmp(shift, names[i])) return i;
    return -1;
}

static void source_block(sal_sbuf *h, const p_source *s, const sal_audit *au, int shift) {
    bool by_verdict = s->rows[0].verdicts != NULL;
    int found = 0;
    for (int k = 0; k < s->nrows; k++) found += find_row(au, &s->rows[k]) != NULL;
    if (!found) return;
    sal_sb_printf(h, "<p class=\"about\">%s %s</p>\n<div class=\"scroll\"><table>\n<tr><th class=\"l\">method</th>"
                  "<th class=\"l\">the paper's name</th><th class=\"l\">%s</th><th>ours</th>%s</tr>\n",
                  s->cite, s->differ, s->col, by_verdict ? "<th class=\"l\">agrees</th>" : "");
    int agree = 0, judged = 0;
    for (int k = 0; k < s->nrows; k++) {
        const p_row *p = &s->rows[k];
        const au_result *r = find_row(au, p);
        sal_sb_printf(h, "<tr><td class=\"l\">");
        if (r) rp_esc(h, r->label);
        else if (p->key) sal_sb_printf(h, "%s(%s=%s)", p->method, p->key, p->val);
        else rp_esc(h, p->method);
        sal_sb_printf(h, "</td><td class=\"l\">%s</td><td class=\"l\">%s</td><td>", p->name, p->paper);
        if (!r) sal_sb_printf(h, "not run");
        else if (s->ours) {
            num(h, metric_of(r, s->ours), s->scale);
            if (s->ours2) sal_sb_printf(h, " / "), num(h, metric_of(r, s->ours2), s->scale);
        }
        else rp_esc(h, r->verdict ? r->verdict : "");
        sal_sb_printf(h, "</td>");
        if (by_verdict) {
            /* invariance: the paper's verdict for this audit's shift; randomization: its one verdict */
            char want = strlen(p->verdicts) == 1 ? p->verdicts[0] : shift >= 0 ? p->verdicts[shift] : '-';
            bool decided = r && (r->outcome == SAL_VERDICT_PASS || r->outcome == SAL_VERDICT_FAIL) && want != '-';
            /* pass is "invariant" (invariance) or "sensitive" (randomization) */
            bool pass_wanted = want == (strlen(p->verdicts) == 1 ? 's' : 'i');
            bool ok = decided && (r->outcome == SAL_VERDICT_PASS) == pass_wanted;
            sal_sb_printf(h, "<td class=\"l\">%s</td>", !decided ? "&ndash;" : ok ? "yes" : "no");
            judged += decided, agree += ok;
        }
        sal_sb_printf(h, "</tr>\n");
    }
    sal_sb_printf(h, "</table></div>\n");
    if (by_verdict) {
        if (judged)
            sal_sb_printf(h, "<p class=\"sub\">Our verdicts agree with the paper's for %d of %d methods it decides.</p>\n",
                          agree, judged);
        else if (shift < 0 && !strcmp(s->kind, "invariance"))
            sal_sb_printf(h, "<p class=\"sub\">Which of the paper's shifts this is is not recorded, so the verdicts are "
                          "not compared.</p>\n");
        return;
    }
    int repro = 0, tried = 0;
    sal_sb_printf(h, "<p class=\"sub\">The paper's orderings:</p>\n<ul class=\"sub\">\n");
    for (int k = 0; k < s->norders; k++) {
        const p_row *a = &s->rows[s->orders[k].hi], *b = &s->rows[s->orders[k].lo];
        const au_result *ra = find_row(au, a), *rb = find_row(au, b);
        double va = metric_of(ra, s->order_key), vb = metric_of(rb, s->order_key);
        sal_sb_printf(h, "<li>%s %s %s (paper%s ", a->name, s->order_what, b->name, s->order_note);
        paper_num(h, a->v, s->scale);
        sal_sb_printf(h, " vs ");
        paper_num(h, b->v, s->scale);
        sal_sb_printf(h, "): ");
        if (!isfinite(va) || !isfinite(vb)) {
            sal_sb_printf(h, "not checked (%s)</li>\n", !ra || !rb ? "a method did not run" : "a value is undefined");
            continue;
        }
        tried++;
        repro += va > vb;
        sal_sb_printf(h, "ours ");
        num(h, va, s->scale);
        sal_sb_printf(h, " vs ");
        num(h, vb, s->scale);
        sal_sb_printf(h, ", %s</li>\n", va > vb ? "reproduced" : "not reproduced");
    }
    sal_sb_printf(h, "</ul>\n<p class=\"sub\">We reproduce %d of the %d orderings we could check.</p>\n", repro, tried);
}

void rp_papers(sal_sbuf *h, const char *kind, const sal_audit *au, const char *shift) {
    bool any = false;
    for (int i = 0; i < N_(k_sources); i++) {
        const p_source *s = &k_sources[i];
        if (strcmp(s->kind, kind)) continue;
        size_t before = h->len;
        if (!any) sal_sb_printf(h, "<h3>The papers beside us</h3>\n");
        size_t mid = h->len;
        source_block(h, s, au, shift_index(shift));
        if (h->len == mid && !any) h->len = before; /* nothing of this source ran: no heading either */
        else any = true;
    }
    if (h->s && h->len < h->cap) h->s[h->len] = '\0';
}
