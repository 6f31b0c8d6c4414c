/* In-silico mutagenesis: incremental (fastISM-style) against naive batched forward passes on the
 * seqcnn at a given length (docs/sequences.md). Prints the median seconds per sequence of each mode
 * and their ratio, and checks that both give the same map to float tolerance.
 *   build/bench/bench_ism [L=1000] [sequences=2] [repeats=3] */
#include "bench.h"

static double run(const sal_model *m, const sal_tensor *x, const char *mode, sal_tensor *keep) {
    const char *p[1] = {mode};
    sal_explain_opts o = {.method = "ism", .nparams = 1, .params = p};
    sal_explanation *e = NULL;
    double t0 = sal_now();
    sal_status st = sal_explain(m, x, &o, &e);
    double t = sal_now() - t0;
    if (st != SAL_OK) {
        fprintf(stderr, "bench_ism: %s\n", sal_last_error());
        exit(1);
    }
    if (keep) {
        const sal_tensor *a = sal_explanation_map(e);
        SAL_ASSERT(sal_tensor_alloc(keep, SAL_F32, a->ndim, a->dim) == SAL_OK);
        memcpy(keep->data, a->data, (size_t)sal_tensor_numel(a) * sizeof(float));
    }
    sal_explanation_free(e);
    return t;
}

int main(int argc, char **argv) {
    int64_t L = argc > 1 ? atol(argv[1]) : 1000, N = argc > 2 ? atol(argv[2]) : 2;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    if (L < 16 || N < 1 || reps < 1 || reps > 64) return fprintf(stderr, "usage: bench_ism [L] [sequences] [repeats]\n"), 2;
    char arch[64];
    snprintf(arch, sizeof arch, "seqcnn:4x%lld", (long long)L);
    int ids[2] = {sal_dna_motif_lookup("CTCF"), sal_dna_motif_lookup("SPI1")};
    sal_dna_opts d = {.count = N, .length = L, .gc = 0.42, .cpg = 0.25, .nmotifs = 2, .motifs = ids, .seed = 1};
    sal_tensor x = {0}, y = {0}, mk = {0}, a = {0}, b = {0};
    sal_model *m = NULL;
    if (sal_dna_simulate(&d, &x, &y, &mk) != SAL_OK || sal_model_build(arch, 3, 1, &m) != SAL_OK)
        return fprintf(stderr, "bench_ism: %s\n", sal_last_error()), 1;
    double ti[64], tn[64];
    run(m, &x, "mode=incremental", &a); /* warm-up: BLAS, oneDNN primitives */
    for (int r = 0; r < reps; r++) {
        ti[r] = run(m, &x, "mode=incremental", NULL);
        tn[r] = run(m, &x, "mode=naive", r ? NULL : &b);
    }
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < sal_tensor_numel(&a); i++) {
        worst = fmax(worst, fabs((double)sal_f32(&a)[i] - sal_f32(&b)[i]));
        scale = fmax(scale, fabs((double)sal_f32(&b)[i]));
    }
    double mi = bench_median(ti, reps) / (double)N, mn = bench_median(tn, reps) / (double)N;
    printf("ism on seqcnn, L = %lld, %lld sequences (%lld substitutions each), median of %d\n", (long long)L,
           (long long)N, (long long)(3 * L), reps);
    printf("  naive (batched forward passes) %8.4f s per sequence\n", mn);
    printf("  incremental                    %8.4f s per sequence\n", mi);
    printf("  speedup %.1fx; max |incremental - naive| %.3g (largest delta %.3g)\n", mn / mi, worst, scale);
    sal_model_free(m);
    sal_tensor *ts[] = {&x, &y, &mk, &a, &b};
    for (int i = 0; i < 5; i++) sal_tensor_free(ts[i]);
    return 0;
}
