/* The HTML report: the JSON reader against hand-written documents (escapes, numbers, nesting, every
 * kind of malformed input), then sal_report_write on audit files written here in the documented
 * schema: the page's parts, the SVG charts, copied files, determinism, bad folders and files, and
 * allocation failures at every step. */
#include "testutil.h"
#include "io/io.h"
#include "report/json.h"
#include "report/report.h"
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_text(const char *path, const char *s) {
    FILE *fp = fopen(path, "wb");
    SAL_ASSERT(fp);
    SAL_ASSERT(fwrite(s, 1, strlen(s), fp) == strlen(s));
    fclose(fp);
}

static char *slurp(const char *path) {
    unsigned char *d = NULL;
    size_t n = 0;
    if (sal_read_file(path, 1 << 26, &d, &n) != SAL_OK) return NULL;
    char *s = sal_malloc(n + 1);
    SAL_ASSERT(s);
    memcpy(s, d, n);
    s[n] = 0;
    sal_free(d);
    return s;
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static sal_status parse(const char *s, rj_value *v) { return rj_parse(s, strlen(s), "t.json", v); }

static void test_json(void) {
    rj_value v;
    CHECK_OK(parse(" {\"a\": [1, -2.5e2, 0.125, true, false, null], \"b\": {\"c\": \"x\\\"y\\\\z\\n\"}, \"e\": {}} ", &v));
    const rj_value *a = rj_get(&v, "a");
    CHECK(a && a->type == RJ_ARR && a->n == 6, "array of 6");
    CHECK(rj_num(rj_at(a, 0)) == 1 && rj_num(rj_at(a, 1)) == -250 && rj_num(rj_at(a, 2)) == 0.125, "numbers");
    CHECK(rj_num(rj_at(a, 3)) == 1 && rj_num(rj_at(a, 4)) == 0 && isnan(rj_num(rj_at(a, 5))), "true false null");
    CHECK(rj_at(a, 6) == NULL && rj_at(a, -1) == NULL, "out of range");
    CHECK(!strcmp(rj_getstr(rj_get(&v, "b"), "c", ""), "x\"y\\z\n"), "escapes");
    CHECK(rj_get(&v, "e") && rj_get(&v, "e")->type == RJ_OBJ && rj_get(&v, "e")->n == 0, "empty object");
    CHECK(rj_get(&v, "zz") == NULL && isnan(rj_getnum(&v, "zz")) && !strcmp(rj_getstr(&v, "zz", "d"), "d"), "missing");
    rj_free(&v);
    rj_free(&v); /* a second free of a freed value is harmless */

    /* \u escapes: BMP, a surrogate pair, a lone surrogate */
    CHECK_OK(parse("\"\\u00e9\\u20ac\\ud83d\\ude00\\ud800x\\/\"", &v));
    CHECK(v.type == RJ_STR && !strcmp(v.str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbdx/"), "unicode: %s", v.str);
    rj_free(&v);
    CHECK_OK(parse("[[[]], [{}], \"\"]", &v));
    rj_free(&v);

    /* nesting: the limit holds, one more fails */
    char deep[2 * RJ_MAX_DEPTH + 8];
    for (int d = 0; d < 2; d++) {
        int n = RJ_MAX_DEPTH + d;
        memset(deep, '[', (size_t)n);
        memset(deep + n, ']', (size_t)n);
        deep[2 * n] = 0;
        sal_status st = parse(deep, &v);
        CHECK(d ? st == SAL_ERR_FORMAT && strstr(sal_last_error(), "nested too deeply") : st == SAL_OK,
              "depth %d: %s", n, sal_last_error());
        rj_free(&v);
    }
    static const struct {
        const char *doc, *msg;
    } bad[] = {
        {"", "unexpected end"},           {"[1,]", "expected a value"},      {"{\"a\" 1}", "expected ':'"},
        {"{\"a\": 1,}", "member name"},   {"[1 2]", "expected ','"},         {"01", "trailing"},
        {"1.", "malformed number"},       {"1e", "malformed number"},        {"-", "expected a value"},
        {"\"abc", "unterminated"},        {"\"a\\qb\"", "bad escape"},       {"\"\\u12g4\"", "bad escape"},
        {"\"a\tb\"", "control character"}, {"tru", "expected a value"},      {"nul", "expected a value"},
        {"[1] x", "trailing"},            {"{\"a\": [1, {\"b\": }]}", "expected a value"},
        {"{1: 2}", "member name"},        {"[\"\\u00\"]", "bad escape"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sal_status st = parse(bad[i].doc, &v);
        CHECK(st == SAL_ERR_FORMAT && strstr(sal_last_error(), bad[i].msg) && strstr(sal_last_error(), "t.json"),
              "'%s': %s (%s), wanted '%s'", bad[i].doc, sal_status_string(st), sal_last_error(), bad[i].msg);
        CHECK(v.type == RJ_NULL && v.n == 0 && !v.items, "'%s' left an empty value", bad[i].doc);
    }
    /* allocation failures at every step */
    const char *doc = "{\"a\": [1, 2, 3, 4, 5, {\"k\": \"v\"}], \"b\": \"str\", \"c\": {\"d\": [\"x\", \"y\"]}}";
    long i = 1;
    for (; i < 1000; i++) {
        sal_alloc_fail_after(i);
        sal_status st = parse(doc, &v);
        sal_alloc_fail_after(0);
        if (st == SAL_OK) break;
        CHECK(st == SAL_ERR_NOMEM, "json allocation failure %ld: %s", i, sal_last_error());
    }
    CHECK(i > 5 && i < 1000, "json: %ld allocations walked", i);
    rj_free(&v);
}

/* Audit files as sal_audit_json writes them (docs/audits.md). */
static const char k_inv[] =
    "{\n  \"audit\": \"invariance\",\n  \"version\": \"0.1.0\",\n  \"model\": \"mlp.onnx\",\n  \"data\": \"digits <&>\",\n"
    "  \"seed\": 1,\n  \"tolerance\": 0.01,\n  \"model_check\": {\"max_abs_diff\": 3e-06, \"max_rel_diff\": 1e-7, "
    "\"same_predictions\": 8, \"samples\": 8},\n  \"shift\": {\"min\": -1, \"max\": -1},\n  \"violations\": 1,\n"
    "  \"results\": [\n    {\"method\": \"gradient\", \"label\": \"gradient\", \"params\": {}, \"skipped\": false,\n"
    "      \"max_norm_diff\": 1e-7, \"max_abs_diff\": 2e-8, \"spearman\": 1, \"ssim\": 1, \"invariant\": true,\n"
    "      \"verdict\": \"invariant (max normalized difference 1e-07 <= tolerance 0.01)\"},\n"
    "    {\"method\": \"gradient_x_input\", \"label\": \"gradient_x_input\", \"params\": {}, \"skipped\": false,\n"
    "      \"max_norm_diff\": 1.7, \"max_abs_diff\": 0.8, \"spearman\": -0.2, \"ssim\": null, \"invariant\": false,\n"
    "      \"verdict\": \"not invariant (max normalized difference 1.7 > tolerance 0.01)\"},\n"
    "    {\"method\": \"gradcam\", \"label\": \"gradcam\", \"params\": {}, \"skipped\": true,\n"
    "      \"verdict\": \"skipped: no spatial layer <here>\"}\n  ]\n}\n";

static const char k_rand[] =
    "{\"audit\": \"randomization\", \"model\": \"cnn.onnx\", \"data\": \"x.npy\", \"seed\": 3, \"tolerance\": 0.5,\n"
    " \"layers\": [\"c1\", \"c2\", \"fc\"], \"violations\": 1, \"results\": [\n"
    "  {\"method\": \"gradient\", \"label\": \"gradient\", \"params\": {}, \"skipped\": false, \"final_hog_spearman\": 0.1,\n"
    "   \"cascading_mean_hog_spearman\": 0.25, \"independent_mean_hog_spearman\": 0.3, \"sensitive\": true, \"cascading\": [\n"
    "    {\"step\": 0, \"layer\": \"\", \"spearman\": 1, \"spearman_abs\": 1, \"ssim\": 1, \"hog_pearson\": 1, \"hog_spearman\": 1},\n"
    "    {\"step\": 1, \"layer\": \"fc\", \"spearman\": 0.5, \"spearman_abs\": 0.6, \"ssim\": 0.4, \"hog_pearson\": 0.5, \"hog_spearman\": 0.4},\n"
    "    {\"step\": 2, \"layer\": \"c2\", \"spearman\": 0.1, \"spearman_abs\": 0.2, \"ssim\": null, \"hog_pearson\": 0.1, \"hog_spearman\": 0.1}],\n"
    "   \"independent\": [{\"step\": 0, \"hog_spearman\": 1}, {\"step\": 1, \"hog_spearman\": 0.5}, {\"step\": 2, \"hog_spearman\": 0.2}],\n"
    "   \"verdict\": \"sensitive (mean over the cascade Spearman of HOG 0.25 < threshold 0.5)\"},\n"
    "  {\"method\": \"guided_backprop\", \"label\": \"guided_backprop\", \"params\": {}, \"skipped\": false,\n"
    "   \"final_hog_spearman\": 0.9, \"cascading_mean_hog_spearman\": 0.95, \"sensitive\": false, \"cascading\": [{\"step\": 0, \"layer\": \"\", \"hog_spearman\": 1},\n"
    "   {\"step\": 1, \"layer\": \"fc\", \"hog_spearman\": 0.95}], \"verdict\": \"insensitive (0.95 >= threshold 0.5)\"}]}\n";

static const char k_faith[] =
    "{\"audit\": \"faithfulness\", \"model\": \"m\", \"data\": \"d\", \"seed\": 1, \"tolerance\": 0, \"output\": \"logit\",\n"
    " \"random\": {\"deletion_auc\": 2, \"insertion_auc\": 3, \"aopc\": 0.5, \"deletion\": [4, 3, 2.5, 2]},\n"
    " \"results\": [{\"method\": \"occlusion\", \"label\": \"occlusion(window=4)\", \"params\": {\"window\": \"4\"},\n"
    "  \"skipped\": false, \"aopc_morf\": 1.5, \"aopc_random\": 0.5, \"faithful\": true,\n"
    "  \"curves\": {\"deletion_morf\": [4, 2, 1, 0.5], \"deletion_lerf\": [4, 4, 3.5, 3], \"insertion_morf\": [0, 2, 3, 4],\n"
    "  \"insertion_lerf\": [0, 0.5, 1, 4]}, \"verdict\": \"faithful (AOPC 1.5 > random order 0.5)\"}]}\n";

static const char k_manifest[] =
    "{\"title\": \"My <audits>\", \"intro\": \"An intro.\", \"reproduce\": \"make demo\",\n"
    " \"models\": [{\"name\": \"mlp\", \"arch\": \"784-10\", \"data\": \"digits\", \"accuracy\": 0.97, \"train_seconds\": 12,"
    " \"cached\": false}],\n"
    " \"figures\": [{\"file\": \"hero.png\", \"title\": \"Hero\", \"caption\": \"A picture.\"},"
    " {\"file\": \"../escape.png\", \"title\": \"no\"}, {\"file\": \"absent.png\"}],\n"
    " \"audits\": [{\"file\": \"rand.json\", \"order\": 0, \"title\": \"Randomization first\", \"short\": \"rand\","
    " \"note\": \"A note.\"}, {\"file\": \"inv.json\", \"order\": 1}]}\n";

static void make_inputs(void) {
    char sub[600];
    snprintf(sub, sizeof sub, "%s/in/audits", t_scratch());
    SAL_ASSERT(mkdir(t_tmp("in"), 0777) == 0 && mkdir(sub, 0777) == 0);
    write_text(t_tmp("in/audits/inv.json"), k_inv);
    write_text(t_tmp("in/audits/inv.csv"), "method,label\ngradient,gradient\n");
    write_text(t_tmp("in/rand.json"), k_rand);
    write_text(t_tmp("in/audits/faith.json"), k_faith);
    write_text(t_tmp("in/audits/manifest.json"), k_manifest);
    write_text(t_tmp("in/audits/broken.json"), "{\"audit\": ");
    write_text(t_tmp("in/audits/other.json"), "{\"something\": \"else\"}");
    /* a figure grid for inv, and the manifest's hero picture */
    uint8_t px[4 * 3 * 3];
    for (int i = 0; i < 36; i++) px[i] = (uint8_t)(i * 7);
    CHECK_OK(sal_png_write(t_tmp("in/audits/inv.png"), 4, 3, 3, px));
    CHECK_OK(sal_png_write(t_tmp("in/audits/hero.png"), 4, 3, 3, px));
}

/* Audit files read back into the result struct: the curves, metrics and outcomes as numbers. */
static void test_load(void) {
    rj_value v;
    sal_audit *a = NULL;
    CHECK_OK(rj_parse(k_rand, strlen(k_rand), "rand", &v));
    CHECK_OK(rp_audit_load(&v, &a));
    if (a) {
        const au_result *r = &a->res[0], *g = &a->res[1];
        CHECK(a->kind == AU_RANDOMIZATION && a->nres == 2 && a->tol == 0.5 && a->seed == 3, "randomization header");
        CHECK(r->npoint == 3 && r->curve[1 * AU_NSIM + AU_SPEAR_ABS] == 0.6 && isnan(r->curve[2 * AU_NSIM + AU_SSIM]) &&
                  r->curve[(3 + 2) * AU_NSIM + AU_HOG_S] == 0.2 && isnan(r->curve[(3 + 1) * AU_NSIM + AU_SPEAR]),
              "randomization curves: the cascade's and the independent layers' points, null and missing as NAN");
        CHECK(a->rnd.nlayer == 2 && !strcmp(a->rnd.layer[0], "fc") && !strcmp(a->rnd.layer[1], "c2") && a->rnd.mode == 3,
              "the cascade's layers, top first");
        CHECK(r->outcome == SAL_VERDICT_PASS && g->outcome == SAL_VERDICT_FAIL && g->npoint == 2 &&
                  au_metric_get(g, "final_hog_spearman") == 0.9 && r->nmetric == 4 && r->mbool[3],
              "outcomes and metrics");
    }
    sal_audit_free(a);
    rj_free(&v);
    CHECK_OK(rj_parse(k_faith, strlen(k_faith), "faith", &v));
    CHECK_OK(rp_audit_load(&v, &a));
    if (a) {
        const au_result *r = &a->res[0];
        CHECK(a->kind == AU_FAITHFULNESS && r->npoint == 4 && r->curve[AU_INS_MORF * 4 + 2] == 3 && a->fa.steps == 3 &&
                  a->fa.curve[AU_DEL_MORF * 4 + 1] == 3 && a->fa.aopc == 0.5,
              "faithfulness curves and the random order's");
    }
    sal_audit_free(a);
    rj_free(&v);
    CHECK_OK(rj_parse(k_inv, strlen(k_inv), "inv", &v));
    CHECK_OK(rp_audit_load(&v, &a));
    if (a)
        CHECK(a->res[1].outcome == SAL_VERDICT_FAIL && a->res[2].outcome == SAL_VERDICT_SKIPPED &&
                  !strcmp(a->res[2].verdict, "skipped: no spatial layer <here>") && isnan(au_metric_get(&a->res[1], "ssim")),
              "invariance outcomes, skip reason, a null metric");
    sal_audit_free(a);
    rj_free(&v);
}

static void test_report(void) {
    make_inputs();
    int n = -1;
    CHECK_OK(sal_report_write(t_tmp("in"), t_tmp("out/deeper"), NULL, &n));
    CHECK(n == 3, "3 audits, got %d", n);
    char *html = slurp(t_tmp("out/deeper/index.html"));
    CHECK(html != NULL, "index.html written");
    if (!html) return;
    CHECK(strstr(html, "<!DOCTYPE html>") && strstr(html, "</html>"), "a whole page");
    CHECK(!strstr(html, "<script") && !strstr(html, "http://") && !strstr(html, "https://"), "no scripts, no network");
    CHECK(strstr(html, "<title>My &lt;audits&gt;</title>"), "the manifest's title, escaped");
    CHECK(strstr(html, "digits &lt;&amp;&gt;"), "data names escaped");
    CHECK(strstr(html, "no spatial layer &lt;here&gt;"), "skip reasons shown, escaped");
    /* order: the manifest's */
    const char *r = strstr(html, "<section id=\"a0\">"), *i = strstr(html, "<section id=\"a1\">");
    const char *f = strstr(html, "<section id=\"a2\">");
    CHECK(r && i && f && strstr(r, "Randomization first") < i && strstr(i, "Input invariance") < f &&
              strstr(f, "Faithfulness"),
          "sections in the manifest's order, then by kind");
    CHECK(strstr(html, "A note."), "the manifest's note");
    CHECK(strstr(html, "same prediction on 8 of 8 samples"), "the model check");
    CHECK(count(html, "badge pass") == 3 && count(html, "badge fail") == 2 && count(html, "badge skip") == 1,
          "verdict badges: %d pass, %d fail, %d skip", count(html, "badge pass"), count(html, "badge fail"),
          count(html, "badge skip"));
    CHECK(count(html, "class=\"cell pass\"") == 3 + 1 && count(html, "class=\"cell fail\"") == 2 + 1,
          "the matrix (and its legend)");
    CHECK(strstr(html, "<dt>max_norm_diff</dt>") && strstr(html, "<dt>aopc_morf</dt>") &&
              strstr(html, "<dt>final_hog_spearman</dt>"),
          "one sentence per metric");
    CHECK(strstr(html, "<td>yes</td>") == NULL, "the verdict boolean is not repeated as a column");
    CHECK(strstr(html, "src=\"inv.png\"") && strstr(html, "src=\"hero.png\""), "figures referenced");
    CHECK(!strstr(html, "escape.png") && !strstr(html, "absent.png"), "no figure outside the folder or missing");
    CHECK(strstr(html, "broken.json") && !strstr(html, "other.json"), "unreadable JSON listed, other JSON ignored");
    CHECK(strstr(html, "href=\"inv.csv\"") && !strstr(html, "href=\"rand.csv\""), "CSV linked when present");
    CHECK(strstr(html, "97.0%"), "the models table");
    static const char *const files[] = {"inv.png", "hero.png", "inv.json", "inv.csv", "rand.json", "faith.json",
                                        "legend-diverging.svg", "legend-sequential.svg", "inv-bars.svg",
                                        "rand-bars.svg", "rand-curve0.svg", "rand-curve1.svg", "faith-bars.svg",
                                        "faith-curve0.svg"};
    char path[700];
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        snprintf(path, sizeof path, "%s/out/deeper/%s", t_scratch(), files[k]);
        CHECK(exists(path), "%s written", files[k]);
        if (strstr(files[k], ".svg")) {
            char *svg = slurp(path);
            CHECK(svg && !strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) && strstr(svg, "</svg>"),
                  "%s is an SVG document", files[k]);
            sal_free(svg);
        }
        CHECK(strstr(html, files[k]) || strstr(files[k], ".json"), "%s used by the page", files[k]);
    }
    /* the curves: a path per series with points; NaN breaks the line */
    snprintf(path, sizeof path, "%s/out/deeper/rand-curve0.svg", t_scratch());
    char *svg = slurp(path);
    CHECK(svg && count(svg, "<path") == 5 && strstr(svg, ">trained<") && strstr(svg, ">fc<"), "randomization panel");
    sal_free(svg);
    snprintf(path, sizeof path, "%s/out/deeper/faith-curve0.svg", t_scratch());
    svg = slurp(path);
    CHECK(svg && count(svg, "<path") == 5 && strstr(svg, "occlusion(window=4)"), "faithfulness panel");
    sal_free(svg);
    /* the same inputs give the same bytes */
    CHECK_OK(sal_report_write(t_tmp("in"), t_tmp("out2"), NULL, NULL));
    char *again = slurp(t_tmp("out2/index.html"));
    CHECK(again && !strcmp(html, again), "deterministic");
    sal_free(again);
    sal_report_opts o = {.title = "Other"};
    CHECK_OK(sal_report_write(t_tmp("in"), t_tmp("out2"), &o, NULL));
    again = slurp(t_tmp("out2/index.html"));
    CHECK(again && strstr(again, "<title>Other</title>"), "title option");
    sal_free(again);
    /* writing into the folder read from */
    CHECK_OK(sal_report_write(t_tmp("in/audits"), t_tmp("in/audits"), NULL, &n));
    CHECK(n == 2, "in place: %d audits", n);
    sal_free(html);

    /* refused */
    CHECK_FAILS(sal_report_write(t_tmp("nope"), t_tmp("o3"), NULL, NULL), SAL_ERR_IO, "not a folder");
    SAL_ASSERT(mkdir(t_tmp("empty"), 0777) == 0);
    CHECK_FAILS(sal_report_write(t_tmp("empty"), t_tmp("o3"), NULL, NULL), SAL_ERR_ARG, "no audit results");
    write_text(t_tmp("afile"), "x");
    CHECK_FAILS(sal_report_write(t_tmp("in"), t_tmp("afile/sub"), NULL, NULL), SAL_ERR_IO, "afile");
    CHECK_FAILS(sal_report_write("", t_tmp("o3"), NULL, NULL), SAL_ERR_ARG, "folder");

    /* allocation failures at every step */
    long k = 1;
    for (; k < 100000; k++) {
        sal_alloc_fail_after(k);
        sal_status st = sal_report_write(t_tmp("in"), t_tmp("out3"), NULL, NULL);
        sal_alloc_fail_after(0);
        if (st == SAL_OK) break;
        CHECK(st == SAL_ERR_NOMEM, "report allocation failure %ld: %s (%s)", k, sal_status_string(st), sal_last_error());
    }
    CHECK(k > 50 && k < 100000, "report: %ld allocations walked", k);
    /* no temporary files left anywhere */
    DIR *d = opendir(t_tmp("out3"));
    int tmpfiles = 0;
    for (struct dirent *e; d && (e = readdir(d));) tmpfiles += strstr(e->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    CHECK(tmpfiles == 0, "%d temporary files left", tmpfiles);
}

/* The papers beside us: Khakzar et al.'s table 4 and orderings next to a class-sensitivity audit,
 * Kindermans et al.'s verdicts next to an invariance audit whose shift the manifest names, and
 * Khakzar et al.'s randomization findings. */
static void test_papers(void) {
    static const char cs[] =
        "{\"audit\": \"class-sensitivity\", \"model\": \"m\", \"data\": \"d\", \"seed\": 1, \"tolerance\": 0.5,\n"
        " \"results\": [{\"method\": \"gradient\", \"label\": \"gradient\", \"params\": {}, \"skipped\": false,\n"
        "  \"hog_spearman\": 0.3, \"class_sensitive\": true, \"verdict\": \"class-sensitive\"},\n"
        " {\"method\": \"guided_backprop\", \"label\": \"guided_backprop\", \"params\": {}, \"skipped\": false,\n"
        "  \"hog_spearman\": 0.8, \"class_sensitive\": false, \"verdict\": \"not class-sensitive\"},\n"
        " {\"method\": \"lrp_0\", \"label\": \"lrp_0\", \"params\": {}, \"skipped\": false,\n"
        "  \"hog_spearman\": 0.5, \"class_sensitive\": false, \"verdict\": \"not class-sensitive\"},\n"
        " {\"method\": \"lrp_zplus\", \"label\": \"lrp_zplus\", \"params\": {}, \"skipped\": false,\n"
        "  \"hog_spearman\": 0.4, \"class_sensitive\": true, \"verdict\": \"class-sensitive\"}]}\n";
    SAL_ASSERT(mkdir(t_tmp("pin"), 0777) == 0);
    write_text(t_tmp("pin/cs.json"), cs);
    write_text(t_tmp("pin/inv.json"), k_inv);
    write_text(t_tmp("pin/rand.json"), k_rand);
    write_text(t_tmp("pin/manifest.json"), "{\"audits\": [{\"file\": \"inv.json\", \"paper_shift\": \"checkerboard\"}]}");
    CHECK_OK(sal_report_write(t_tmp("pin"), t_tmp("pout"), NULL, NULL));
    char *html = slurp(t_tmp("pout/index.html"));
    CHECK(html != NULL, "index.html written");
    if (!html) return;
    CHECK(count(html, "<h3>The papers beside us</h3>") == 3, "a papers block per audit (%d)",
          count(html, "<h3>The papers beside us</h3>"));
    /* class sensitivity: table 4's figures, two orderings checked, one reproduced */
    CHECK(strstr(html, "<td class=\"l\">Guided Backprop</td><td class=\"l\">0.99</td><td>0.80</td>") != NULL,
          "Khakzar et al.'s 0.99 beside our 0.80");
    CHECK(strstr(html, "Guided Backprop correlates more between classes than Gradients (paper 0.99 vs 0.44): ours 0.80 "
                       "vs 0.30, reproduced") != NULL,
          "an ordering reproduced");
    CHECK(strstr(html, "(paper 0.99 vs 0.59): ours 0.40 vs 0.50, not reproduced") != NULL, "an ordering not reproduced");
    CHECK(strstr(html, "We reproduce 1 of the 2 orderings we could check.") != NULL, "the count of orderings");
    CHECK(strstr(html, "<td class=\"l\">fullgrad</td><td class=\"l\">FullGrad</td><td class=\"l\">0.48</td><td>not run</td>"),
          "a method that did not run");
    /* invariance under the checkerboard: gradient invariant (paper: invariant), gradient x input not (paper: not) */
    CHECK(strstr(html, "Our verdicts agree with the paper's for 2 of 2 methods it decides.") != NULL,
          "invariance verdicts compared for the manifest's shift");
    /* randomization: gradient sensitive, guided backprop insensitive, as Khakzar et al. find */
    const char *rs = strstr(html, "Khakzar et al., section 4 and figures 4-5");
    CHECK(rs && strstr(rs, "Our verdicts agree with the paper's for 2 of 2 methods it decides."),
          "randomization findings compared");
    sal_free(html);
}

int main(void) {
    t_scratch_make("sal_test_report");
    test_json();
    test_load();
    test_report();
    test_papers();
    t_scratch_remove();
    return t_done("test_report");
}
