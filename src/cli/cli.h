/* Shared helpers of the command-line tool. */
#ifndef SAL_CLI_H
#define SAL_CLI_H

#include "saliency.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Option iteration over argv[first..argc): accepts "--name value" and "--name=value".
 *   cli_args a = cli_args_start(argc, argv, 2);
 *   while (cli_next(&a)) { if (cli_is(&a, "--out")) out = cli_value(&a); ... else return cli_unknown(&a); }
 * Positional arguments come back with a.opt == NULL and a.pos set. */
typedef struct {
    int argc, i;
    char **argv;
    const char *opt; /* current option name (without "=value"), or NULL for a positional */
    const char *pos; /* current positional argument */
    const char *inl; /* value given inline with '=' */
    char name[64];
    bool error;
} cli_args;

cli_args cli_args_start(int argc, char **argv, int first);
bool cli_next(cli_args *a);
bool cli_is(const cli_args *a, const char *name);
/* The option's value; on a missing value prints an error and sets a->error (returns ""). */
const char *cli_value(cli_args *a);
long cli_long(cli_args *a, long lo, long hi);
double cli_double(cli_args *a);
int cli_unknown(const cli_args *a, const char *cmd);

/* Prints "saliency CMD: <message>" from sal_last_error() and returns 1. */
int cli_fail(const char *cmd, sal_status st);
/* Prints "saliency CMD: <formatted>" and returns 1. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool cli_wants_help(int argc, char **argv);

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_methods(int argc, char **argv);

#endif
