/* saliency report --in DIR --out DIR: the HTML report of audit results. */
#include "cli.h"

static const char k_help[] =
    "usage: saliency report --in DIR --out DIR [--title TEXT]\n\n"
    "Writes DIR/index.html: a static page (no scripts, no network) with, for each audit found in --in\n"
    "(and --in/audits), its verdict table, its figure grid, bar charts of the verdict metric, the\n"
    "randomization and deletion curves drawn as SVG, and one sentence per metric. The audits' files:\n"
    "NAME.json (saliency audit ... --json NAME.json), NAME.png (--figure) and NAME.csv beside it; an\n"
    "optional manifest.json adds titles, notes, models and highlight figures (docs/report.md).\n"
    "PNG, JSON and CSV files are copied next to index.html, so the folder can be moved as a whole.\n";

int cmd_report(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_help, stdout), 0;
    const char *in = NULL, *out = NULL;
    sal_report_opts o = {0};
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (cli_is(&a, "--in")) in = cli_value(&a);
        else if (cli_is(&a, "--out")) out = cli_value(&a);
        else if (cli_is(&a, "--title")) o.title = cli_value(&a);
        else return cli_unknown(&a, "report");
    }
    if (a.error) return 1;
    if (!in || !out) return cli_error("report", "needs --in DIR and --out DIR (see saliency report --help)");
    int n = 0;
    sal_status st = sal_report_write(in, out, &o, &n);
    if (st != SAL_OK) return cli_fail("report", st);
    printf("report of %d audit%s: %s/index.html\n", n, n == 1 ? "" : "s", out);
    return 0;
}
