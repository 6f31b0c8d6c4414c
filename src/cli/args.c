/* Option parsing and error reporting for the CLI. */
#include "cli.h"
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>

cli_args cli_args_start(int argc, char **argv, int first) {
    return (cli_args){.argc = argc, .argv = argv, .i = first - 1};
}

bool cli_next(cli_args *a) {
    if (a->error || ++a->i >= a->argc) return false;
    const char *s = a->argv[a->i];
    a->opt = a->pos = a->inl = NULL;
    if (s[0] == '-' && s[1] == '-' && s[2]) {
        const char *eq = strchr(s, '=');
        size_t n = eq ? (size_t)(eq - s) : strlen(s);
        if (n >= sizeof a->name) n = sizeof a->name - 1;
        memcpy(a->name, s, n);
        a->name[n] = '\0';
        a->opt = a->name;
        a->inl = eq ? eq + 1 : NULL;
    } else {
        a->pos = s;
    }
    return true;
}

bool cli_is(const cli_args *a, const char *name) { return a->opt && !strcmp(a->opt, name); }

const char *cli_value(cli_args *a) {
    if (a->inl) return a->inl;
    if (a->i + 1 >= a->argc) {
        fprintf(stderr, "saliency: option %s needs a value\n", a->opt);
        a->error = true;
        return "";
    }
    return a->argv[++a->i];
}

long cli_long(cli_args *a, long lo, long hi) {
    const char *opt = a->opt, *v = cli_value(a);
    if (a->error) return lo;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "saliency: option %s: '%s' is not an integer in [%ld, %ld]\n", opt, v, lo, hi);
        a->error = true;
    }
    return x;
}

double cli_double(cli_args *a) {
    const char *opt = a->opt, *v = cli_value(a);
    if (a->error) return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v) {
        fprintf(stderr, "saliency: option %s: '%s' is not a number\n", opt, v);
        a->error = true;
    }
    return x;
}

int cli_unknown(const cli_args *a, const char *cmd) {
    if (a->opt)
        fprintf(stderr, "saliency %s: unknown option %s (see saliency %s --help)\n", cmd, a->opt, cmd);
    else
        fprintf(stderr, "saliency %s: unexpected argument '%s' (see saliency %s --help)\n", cmd, a->pos, cmd);
    return 1;
}

int cli_fail(const char *cmd, sal_status st) {
    fprintf(stderr, "saliency %s: %s\n", cmd, *sal_last_error() ? sal_last_error() : sal_status_string(st));
    return 1;
}

int cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "saliency %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

bool cli_wants_help(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
    return false;
}

bool cli_is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

sal_status cli_load_array(const char *spec, bool test, sal_tensor *out) {
    size_t n = strlen(spec);
    if (cli_is_file(spec) || (n > 4 && !strcmp(spec + n - 4, ".npy"))) return sal_npy_read(spec, out);
    sal_dataset d;
    sal_status st = sal_dataset_load(spec, &d);
    if (st != SAL_OK) return st;
    sal_tensor *src = test && d.test_x.data ? &d.test_x : &d.train_x;
    *out = *src;
    memset(src, 0, sizeof *src);
    sal_dataset_free(&d);
    return SAL_OK;
}
