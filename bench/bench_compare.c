/* One configuration of the side-by-side comparison (bench/compare.py, bench/peers.py): times our
 * forward pass or one method on one model at one batch size, in a process of its own, and prints
 * one line of key=value pairs for the driver to read.
 *
 * usage: bench_compare MODEL.onnx METHOD [--param K=V]... [--batch B] [--reps R] [--warmup W]
 *                      [--warmup-s S] [--target C] [--seed S] [--chunk K] [--profile] [--nodes N]
 * (--warmup-s: the warm-up goes on past its W calls until S seconds have passed, default 0.5, as in
 * bench/torch_worker.py; K: rows per pass of batched methods, 0 = auto; --profile: time per op type,
 * forward and backward, summed over the timed calls, on stderr, and per node for the N slowest
 * nodes: all of models of up to 40 nodes unless --nodes says)
 * METHOD is `forward` (sal_forward on a session that keeps only the outputs, sal_session_keep_values,
 * as PyTorch's forward under no_grad keeps none) or a method of `saliency methods`, run through
 * sal_explain on a reused session (its forward pass for the targets included). --target C explains
 * class C for every sample (default: the predicted class). The input is uniform in [0, 1).
 *
 * Prints: ms_per_img (median of the timed calls, per image), min_ms_per_img, reps, lib_peak_mb (the
 * most memory the library held during a call above what it held before: the session's buffers and
 * the method's, not the model's weights), call_rss_mb (the process's resident peak during the calls,
 * warm-up included: weights, code and all, from VmHWM reset after loading), maxrss_mb (the process's
 * resident peak over its life, loading included, from getrusage), load_s (model loading), blas; or
 * error=MESSAGE and exit status 1. */
#include "bench.h"
#include <sys/resource.h>


/* The resident peak (VmHWM) restarts from the current resident size, so that the peak of the calls
 * is not the peak of loading (the ONNX file, its parsed form and the weights held at once). */
static void reset_rss_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static double rss_peak_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = NAN;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024;
}

static int usage(void) {
    fprintf(stderr, "usage: bench_compare MODEL.onnx METHOD [--param K=V]... [--batch B] [--reps R] [--warmup W]"
                    " [--warmup-s S] [--target C] [--seed S] [--chunk K] [--profile] [--nodes N]\n");
    return 2;
}

/* Seconds per op type over the timed calls, forward and backward, largest first, then the nodes
 * nodes slowest nodes (in graph order), on stderr. */
static void print_profile(const sal_session *s, int nodes) {
    const sal_model *m = s->m;
    const char *name[SAL_OP_COUNT] = {0};
    double f[SAL_OP_COUNT] = {0}, b[SAL_OP_COUNT] = {0}, tot = 0;
    for (int i = 0; i < m->nnode; i++) {
        int k = m->node[i].op ? (int)m->node[i].op->id : -1;
        if (k < 0 || k >= SAL_OP_COUNT) continue;
        name[k] = m->node[i].op_type;
        f[k] += s->prof[i], b[k] += s->prof[m->nnode + i];
        tot += s->prof[i] + s->prof[m->nnode + i];
    }
    for (;;) {
        int best = -1;
        for (int k = 0; k < SAL_OP_COUNT; k++)
            if (name[k] && (best < 0 || f[k] + b[k] > f[best] + b[best])) best = k;
        if (best < 0) break;
        fprintf(stderr, "%-20s fwd %9.2f ms  bwd %9.2f ms  %5.1f%%\n", name[best], 1e3 * f[best], 1e3 * b[best],
                100 * (f[best] + b[best]) / (tot > 0 ? tot : 1));
        name[best] = NULL;
    }
    if (nodes < 0) nodes = m->nnode <= 40 ? m->nnode : 0;
    double cut = -1; /* the nodes-th largest total: a node at or above it is printed */
    for (int k = 0; k < nodes && k < m->nnode; k++) {
        double next = -1;
        for (int i = 0; i < m->nnode; i++) {
            double t = s->prof[i] + s->prof[m->nnode + i];
            if ((cut < 0 || t < cut) && t > next) next = t;
        }
        if (next < 0) break; /* fewer distinct totals than nodes: cut keeps the smallest */
        cut = next;
    }
    for (int i = 0; nodes > 0 && i < m->nnode; i++) {
        const char *nm = m->node[i].name;
        size_t len = strlen(nm);
        if (s->prof[i] + s->prof[m->nnode + i] >= cut) /* the name's end: exporters' names share long prefixes */
            fprintf(stderr, "  %-40.40s %-18.18s fwd %9.2f ms  bwd %9.2f ms\n", len > 40 ? nm + len - 40 : nm,
                    m->node[i].op_type, 1e3 * s->prof[i], 1e3 * s->prof[m->nnode + i]);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    const char *path = argv[1], *method = argv[2];
    const char *params[64];
    int np = 0, batch = 1, reps = 10, warmup = 2, seed = 1, chunk = 0;
    double warmup_s = 0.5;
    long long target = -1;
    bool profile = false;
    int nodes = -1;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--profile")) {
            profile = true;
            continue;
        }
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--param") && np < 64) params[np++] = argv[++i];
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup-s")) warmup_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--target")) target = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--seed")) seed = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk")) chunk = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nodes")) nodes = atoi(argv[++i]);
        else return usage();
    }
    if (batch < 1 || reps < 1 || reps > 1000 || warmup < 0) return usage();
    bool fwd = !strcmp(method, "forward"), known = fwd;
    for (int k = 0; k < sal_method_count() && !known; k++) known = !strcmp(method, sal_method_name(k));
    if (!known) {
        printf("error=unknown method '%s'\n", method);
        return 1;
    }
    /* every resource starts empty so that one cleanup serves every exit */
    sal_model *m = NULL;
    sal_session *sess = NULL;
    sal_tensor x = {0}, data = {0};
    double *t = calloc((size_t)reps, sizeof *t);
    const char *stage = "loading";
    double t0 = sal_now();
    sal_status st = t ? sal_model_load(path, &m) : sal_fail(SAL_ERR_NOMEM, "out of memory");
    double load_s = sal_now() - t0;
    int nd;
    int64_t dim[SAL_MAX_DIMS];
    if (st == SAL_OK) {
        stage = "input";
        sal_model_input_shape(m, 0, &nd, dim);
        dim[0] = batch;
        st = sal_tensor_alloc(&x, SAL_F32, nd, dim);
        dim[0] = 8; /* data rows for the methods that draw baselines from data (gradient SHAP) */
        if (st == SAL_OK) st = sal_tensor_alloc(&data, SAL_F32, nd, dim);
    }
    if (st == SAL_OK) {
        sal_rng r;
        sal_rng_seed(&r, (uint64_t)seed);
        for (int64_t i = 0, n = sal_tensor_numel(&x); i < n; i++) sal_f32(&x)[i] = (float)sal_rng_uniform(&r);
        for (int64_t i = 0, n = sal_tensor_numel(&data); i < n; i++) sal_f32(&data)[i] = (float)sal_rng_uniform(&r);
        stage = "session";
        st = sal_session_new(m, &sess);
        if (st == SAL_OK && fwd) sal_session_keep_values(sess, 0);
    }
    int64_t cls = target;
    sal_explain_opts o = {.method = method, .nparams = np, .params = params, .data = &data, .session = sess,
                          .chunk = chunk};
    if (target >= 0) o.target = SAL_TARGET_INDEX, o.classes = &cls, o.nclasses = 1;
    size_t peak = 0;
    if (st == SAL_OK) stage = method;
    reset_rss_peak();
    double w0 = sal_now();
    for (int rep = -warmup; rep < reps && st == SAL_OK; rep++) {
        if (rep == 0 && profile) st = sal_session_profile(sess, true);
        size_t base = sal_memory_in_use();
        sal_memory_reset_peak();
        double s0 = sal_now();
        if (fwd) {
            const sal_tensor *y;
            st = sal_forward(sess, 1, &x, &y);
        } else {
            sal_explanation *e = NULL;
            st = sal_explain(m, &x, &o, &e);
            sal_explanation_free(e);
        }
        if (rep >= 0) t[rep] = sal_now() - s0;
        size_t p = sal_memory_peak() - base;
        if (p > peak) peak = p;
        /* the warm-up lasts its calls and at least warmup_s seconds: this VM's cores start slow out of
         * idle (a run of 50 two-millisecond calls after a second's pause took 1.5x as long) */
        if (rep == -1 && sal_now() - w0 < warmup_s) rep--;
    }
    if (st == SAL_OK) {
        qsort(t, (size_t)reps, sizeof *t, bench_cmp_double);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("ms_per_img=%.4f min_ms_per_img=%.4f reps=%d lib_peak_mb=%.1f call_rss_mb=%.1f maxrss_mb=%.1f "
               "load_s=%.2f blas=%s\n", 1e3 * t[reps / 2] / batch, 1e3 * t[0] / batch, reps, (double)peak / (1 << 20),
               rss_peak_mb(), (double)ru.ru_maxrss / 1024, load_s, sal_blas_info());
        if (profile) print_profile(sess, nodes);
    } else {
        printf("error=%s: %s\n", stage, sal_last_error());
    }
    free(t);
    sal_session_free(sess);
    sal_tensor_free(&x);
    sal_tensor_free(&data);
    sal_model_free(m);
    return st == SAL_OK ? 0 : 1;
}
