/* Progress bars on stderr for the library's progress callbacks; drawn only on a terminal. */
#include "cli.h"
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress(void *user, const char *what, int64_t done, int64_t total, const char *detail) {
    cli_bar *b = user;
    if (!b || !isatty(2)) return;
    double t = now();
    if (strcmp(b->what, what)) { /* a new stage: its own clock */
        snprintf(b->what, sizeof b->what, "%s", what);
        b->t0 = t, b->last = 0;
    }
    if (total < 1) total = 1;
    if (done > total) done = total;
    if (done < total && t - b->last < 0.1) return; /* at most ten frames a second */
    b->last = t;
    int w = 30, fill = (int)(w * done / total);
    fprintf(stderr, "\r%s [%.*s%*s] %3d%% ", what, fill, "==============================", w - fill, "",
            (int)(100 * done / total));
    if (b->unit) {
        double el = t - b->t0, eta = done ? el * (double)(total - done) / (double)done : 0;
        fprintf(stderr, "%lld/%lld %s, %.0fs left ", (long long)done, (long long)total, b->unit, eta);
    }
    if (b->keep) fprintf(stderr, "%s", detail);
    else fprintf(stderr, "%-40.40s", detail);
    if (done == total) {
        if (b->keep) fputc('\n', stderr);
        else fprintf(stderr, "\r%*s\r", 100, "");
    }
}
