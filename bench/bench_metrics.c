/* Benchmark of the evaluation metrics (issue 19, docs/metrics.md): pixel flipping with one pixel per
 * step (784 steps) and ROAD (9 levels, noisy linear imputation) on the small CNN (`saliency train
 * --arch cnn`, trained here for one epoch on 4000 MNIST digits so the maps mean something), for
 * 100 held-out digits and 35 method configurations (every image method with its defaults,
 * but attention rollout, which needs attention, and LIME and KernelSHAP, whose own cost would
 * drown the metric's). Per configuration: the time of the method's maps alone, of each metric
 * (maps included), the forward passes the metric made (rows) and what they cost at the time of one
 * forward pass per row measured beside it (chunk 256), and the metric's overhead beyond maps and
 * forward passes.
 *
 * usage: bench_metrics [--samples N] [--quick] [--only pixel_flipping|road] [--chunk C] [--method M]
 * --method: that method only (repeatable). --quick: 10 samples, 4 methods, 28 pixel-flipping
 * steps: a smoke run, not a measurement.
 * Needs MNIST (make data, or SAL_MNIST_DIR). Measure on a quiet machine. */
#include "bench.h"

static double forward_per_row(const sal_model *m, const sal_tensor *x, int64_t chunk, int reps) {
    sal_session *s;
    SAL_ASSERT(sal_session_new(m, &s) == SAL_OK);
    double per = bench_forward_per_row(s, x, x->dim[0], chunk, reps);
    sal_session_free(s);
    return per;
}

int main(int argc, char **argv) {
    long N = 100, chunk = 256;
    bool quick = false;
    const char *only = NULL, *pick[16];
    int npick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--samples") && i + 1 < argc) N = atol(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = atol(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--method") && i + 1 < argc && npick < 16) pick[npick++] = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = true;
        else {
            fprintf(stderr, "usage: bench_metrics [--samples N] [--quick] [--only pixel_flipping|road] [--chunk C] "
                            "[--method M]...\n");
            return 1;
        }
    }
    if (quick) N = 10;
    if (N < 1 || chunk < 1) return fprintf(stderr, "bench_metrics: --samples and --chunk must be positive\n"), 1;
    sal_dataset d;
    if (sal_dataset_load("mnist", &d) != SAL_OK) return fprintf(stderr, "bench_metrics: %s\n", sal_last_error()), 1;
    sal_model *m;
    SAL_ASSERT(sal_model_build("cnn", 10, 1, &m) == SAL_OK);
    sal_train_opts to = sal_train_defaults();
    to.epochs = 1;
    sal_tensor tx = d.train_x, ty = d.train_y;
    tx.dim[0] = ty.dim[0] = tx.dim[0] < 4000 ? tx.dim[0] : 4000;
    double t0 = sal_now(), acc = 0;
    SAL_ASSERT(sal_train(m, &tx, &ty, &to) == SAL_OK);
    sal_tensor x = d.test_x;
    x.dim[0] = x.dim[0] < N ? x.dim[0] : N;
    sal_tensor y = d.test_y;
    y.dim[0] = x.dim[0];
    SAL_ASSERT(sal_accuracy(m, &x, &y, &acc) == SAL_OK);
    printf("small CNN: trained in %.1f s, accuracy %.2f on the %lld samples scored\n", sal_now() - t0, acc,
           (long long)x.dim[0]);
    sal_tensor ref = d.train_x; /* reference data: gradient_shap's baselines */
    ref.dim[0] = ref.dim[0] < 100 ? ref.dim[0] : 100;
    double per = forward_per_row(m, &x, chunk, 10);
    printf("forward pass: %.4f ms per row at chunk %ld\n\n", 1e3 * per, chunk);
    static const char *const skip[] = {"attention_rollout", "lime", "kernel_shap"};
    const char *meths[64];
    int nm = 0;
    for (int i = 0; i < sal_method_count() && nm < 64; i++) {
        bool out = false;
        for (size_t k = 0; k < sizeof skip / sizeof skip[0]; k++) out |= !strcmp(sal_method_name(i), skip[k]);
        if (!out && !sal_method_sequence_only(i)) meths[nm++] = sal_method_name(i); /* images here */
    }
    if (npick) memcpy(meths, pick, sizeof(char *) * (size_t)npick), nm = npick;
    else if (quick) meths[0] = "gradient", meths[1] = "integrated_gradients", meths[2] = "lrp_epsilon", meths[3] = "gradcam", nm = 4;
    const char *pf_steps = quick ? "steps=28" : "steps=0";
    int64_t pf_rows = (quick ? 29 : 785) * x.dim[0], road_rows = 9 * x.dim[0];
    printf("%-26s %9s %11s %9s %9s %11s %9s %9s\n", "method", "maps s", "flipping s", "fwd s",
           "overhead", "ROAD s", "fwd s", "overhead");
    double tot[2] = {0}, tmaps = 0;
    for (int j = 0; j < nm; j++) {
        sal_audit_method am = {meths[j], 0, NULL};
        sal_metric_opts o = {.common = {.methods = &am, .nmethods = 1, .data = &ref, .seed = 1, .chunk = chunk, .batch = 16}};
        /* the maps alone: the metric's own explanation calls, in the same slices */
        sal_metric_opts om = o;
        om.params = (const char *[]){"k=1"}, om.nparams = 1;
        sal_metric_result *r = NULL;
        sal_tensor mk = {0};
        SAL_ASSERT(sal_tensor_alloc(&mk, SAL_F32, 3, (int64_t[]){x.dim[0], 28, 28}) == SAL_OK);
        sal_f32(&mk)[0] = 1;
        om.masks = &mk;
        double a = sal_now();
        sal_status st = sal_metric_compute(m, &x, "top_k_intersection", &om, &r); /* maps plus a sort */
        double tm = sal_now() - a;
        sal_metric_result_free(r);
        sal_tensor_free(&mk);
        printf("%-26s %9.2f", meths[j], tm);
        if (st != SAL_OK) {
            printf("  %s\n", sal_last_error());
            continue;
        }
        tmaps += tm;
        const char *names[2] = {"pixel_flipping", "road"};
        for (int k = 0; k < 2; k++) {
            if (only && strcmp(only, names[k])) {
                printf(" %11s %9s %9s", "-", "-", "-");
                continue;
            }
            o.params = k == 0 ? &pf_steps : NULL, o.nparams = k == 0;
            a = sal_now();
            st = sal_metric_compute(m, &x, names[k], &o, &r);
            double t = sal_now() - a, fwd = per * (double)(k == 0 ? pf_rows : road_rows);
            const char *why = st != SAL_OK ? sal_last_error() : sal_metric_result_skipped(r, 0);
            tot[k] += t;
            if (!why) printf(" %11.2f %9.2f %8.1f%%", t, fwd, 100 * (t - tm - fwd) / t);
            else fprintf(stderr, "%s %s: %s\n", meths[j], names[k], why), printf(" %11s %9s %9s", "failed", "", "");
            sal_metric_result_free(r);
        }
        printf("\n");
        fflush(stdout);
    }
    printf("\n%d configurations, %lld samples: maps %.1f s; pixel flipping %.1f s (%lld forward rows each); ROAD %.1f s "
           "(%lld rows each)\n", nm, (long long)x.dim[0], tmaps, tot[0], (long long)pf_rows, tot[1], (long long)road_rows);
    sal_model_free(m);
    sal_dataset_free(&d);
    return 0;
}
