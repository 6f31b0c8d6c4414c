/* Time spent in each OpenMP parallel region of a program, by region: an LD_PRELOAD library that wraps
 * libgomp's GOMP_parallel and, at exit, prints to stderr each region's outlined function, how many
 * times it ran and its mean wall time, then the total in regions against the span from the first
 * region's start to the last one's end. A region runs every thread of its team, so its time is the
 * slowest thread's plus the team's start and join: where a batch-1 pass of a small model waits.
 *
 *   make build/bench/gomp_regions.so
 *   LD_PRELOAD=build/bench/gomp_regions.so build/bench/bench_compare MODEL.onnx gradient --reps 1000 --warmup 0
 *
 * A region of a static function prints as module+0xOFFSET: `addr2line -f -e MODULE 0xOFFSET` names
 * it. Regions started elsewhere (GOMP_parallel_start, OpenMP 4 loops of other shapes) are not seen.
 * Counts are not locked: time only programs that start regions from one thread (ours do). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>

enum { MAXFN = 128 };

typedef void (*parallel_fn)(void (*)(void *), void *, unsigned, unsigned);

static struct {
    void *fn;
    long n;
    double t;
} g_fn[MAXFN];
static int g_nfn;
static double g_first, g_last, g_in;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void GOMP_parallel(void (*fn)(void *), void *data, unsigned nthreads, unsigned flags) {
    static parallel_fn real;
    if (!real) real = (parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
    double t0 = now();
    real(fn, data, nthreads, flags);
    double t1 = now();
    if (g_first == 0) g_first = t0;
    g_last = t1, g_in += t1 - t0;
    int i = 0;
    while (i < g_nfn && g_fn[i].fn != (void *)fn) i++;
    if (i == g_nfn && g_nfn < MAXFN) g_fn[g_nfn++].fn = (void *)fn;
    if (i < MAXFN) g_fn[i].n++, g_fn[i].t += t1 - t0;
}

__attribute__((destructor)) static void report(void) {
    for (int i = 0; i < g_nfn; i++) {
        Dl_info d;
        const char *mod = "?", *sym = NULL;
        unsigned long off = 0;
        if (dladdr(g_fn[i].fn, &d)) {
            mod = d.dli_fname, sym = d.dli_sname && d.dli_saddr == g_fn[i].fn ? d.dli_sname : NULL;
            off = (unsigned long)((char *)g_fn[i].fn - (char *)d.dli_fbase);
        }
        if (sym) fprintf(stderr, "region %s", sym);
        else fprintf(stderr, "region %s+0x%lx", mod, off);
        fprintf(stderr, " n=%ld %.2f us\n", g_fn[i].n, 1e6 * g_fn[i].t / (double)g_fn[i].n);
    }
    fprintf(stderr, "regions: %.3f s of a %.3f s span\n", g_in, g_last - g_first);
}
