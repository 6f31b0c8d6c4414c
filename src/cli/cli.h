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
/* Whether p names a regular file. */
bool cli_is_file(const char *p);
/* An .npy file, or a data set name (sal_dataset_load): its test part when `test` and it has one,
 * else its training part. */
sal_status cli_load_array(const char *spec, bool test, sal_tensor *out);

/* A progress bar for the library's sal_progress_fn callbacks (pass cli_progress and a cli_bar),
 * drawn on stderr only when it is a terminal, at most ten times a second. */
typedef struct {
    bool keep;        /* leave each finished stage's bar on its line (else erase it) */
    const char *unit; /* show "done/total UNIT, Ns left" (NULL: not) */
    char what[64];    /* the stage drawn */
    double t0, last;
} cli_bar;
void cli_progress(void *user, const char *what, int64_t done, int64_t total, const char *detail);

/* Several processes (src/cli/mpi.c, docs/scaling.md): under mpirun or srun, in a build with MPI,
 * cli_mpi_start makes this process one rank of many and holds its stderr back; cli_shard is what
 * the library shards with (NULL: one process). cli_mpi_agree (collective) agrees on every rank's
 * exit code (1: failed, with the last line it wrote to stderr as the message): 1 on every rank when
 * any failed. cli_mpi_finish gives stderr back; rank 0 prints its notes, or the agreed message.
 * Without MPI, or without a launcher: rank 0 of 1, and all of these do nothing. */
void cli_mpi_start(void);
const sal_shard *cli_shard(void);
int cli_rank(void);
int cli_nranks(void);
bool cli_launched(void); /* started by mpirun or srun (any number of ranks, one included) */
int cli_mpi_agree(const char *cmd, int rc);
/* Collective: rank 0 receives every rank's n bytes (all[r] of sizes[r]; free each, all and sizes),
 * the other ranks send theirs (*all NULL). One process: nothing (*all NULL). */
sal_status cli_mpi_gather(const void *mine, size_t n, char ***all, size_t **sizes);
int cli_mpi_finish(const char *cmd, int rc);
void cli_mpi_end(void);

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_methods(int argc, char **argv);
int cmd_patterns(int argc, char **argv);
int cmd_heatmap(int argc, char **argv);
int cmd_visualize(int argc, char **argv);
int cmd_topk(int argc, char **argv);
int cmd_invert(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_metric(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* Heatmap PNGs of `heatmap` and `explain --png`. Zero fields are defaults. */
typedef struct {
    sal_heatmap_opts heat; /* scale 0: about 224 pixels a side */
    sal_share share;       /* across the samples of a grid */
    int max, cols;         /* samples in a grid (at most 16) and per row; 0: 16 and 4 */
    int single;            /* the maps have no batch dimension */
    int batched;           /* the maps always have one (even when 2-D) */
    int one;               /* draw only sample `sample` */
    int64_t sample;
} cli_heatmap_opts;
/* Draws maps (N, ...) (one map when o->single, or 2-D and not o->batched) into png: one sample as
 * a heatmap, several as a grid; inputs (same batch, or one sample) go under the maps with
 * heat.overlay, else beside.
 * The names are the files the tensors came from, for messages. o may be NULL. Returns 0, or 1
 * after printing "saliency CMD: <message>". */
int cli_heatmap_png(const char *cmd, const char *png, const sal_tensor *maps, const char *map_name,
                    const sal_tensor *inputs, const char *in_name, const cli_heatmap_opts *o);

#endif
