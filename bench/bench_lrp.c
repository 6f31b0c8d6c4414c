/* LRP, Deep Taylor and pattern methods benchmark: milliseconds per image of every method of issue 7
 * through sal_explain (target resolution, canonization, the forward pass and the backward pass with
 * rules) and the peak memory the library held during one call, on the MLP, the small CNN and the
 * VGG16-shaped network of bench/models.py at batch 1, next to a plain forward pass for scale.
 * Issue 7's target: faster than Zennit's EpsilonGammaBox, about 2.9 ms (MLP) and 1.4 s (VGG16) per
 * image at batch 1 on this machine. The machines are shared and noisy, so each method is also given
 * as a multiple of our gradient measured in the same run, next to Zennit's EpsilonGammaBox as a
 * multiple of PyTorch's gradient (1.30 ms MLP, 268 ms VGG16; /work/shared/PERFORMANCE-NOTES.md).
 *
 * The pattern methods need patterns: they are estimated first from random inputs (the time per image
 * does not depend on what the patterns hold). VGG16's sums take three doubles and a float per weight
 * (3.9 GB), so its pattern methods run only with --vgg-patterns.
 *
 * usage: bench_lrp [MODEL_DIR] [--quick] [--vgg-patterns]   (MODEL_DIR from bench/models.py) */
#include "saliency.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median ms per call over reps (after one warm-up) and the peak bytes of one call; NAN on failure. */
static double time_ms(const sal_model *m, const sal_tensor *x, const char *method, const char *param, int reps,
                      double *peak_mb) {
    double t[64];
    sal_session *s = NULL;
    *peak_mb = NAN;
    if (!method && sal_session_new(m, &s) != SAL_OK) return NAN;
    for (int r = -1; r < reps; r++) {
        sal_memory_reset_peak();
        size_t base = sal_memory_in_use();
        double t0 = now();
        sal_status st;
        if (method) {
            sal_explain_opts o = {.method = method, .nparams = param ? 1 : 0, .params = &param};
            sal_explanation *e = NULL;
            st = sal_explain(m, x, &o, &e);
            sal_explanation_free(e);
        } else {
            const sal_tensor *out[8];
            st = sal_forward(s, 1, x, out);
        }
        if (st != SAL_OK) {
            fprintf(stderr, "bench_lrp: %s: %s\n", method ? method : "forward", sal_last_error());
            sal_session_free(s);
            return NAN;
        }
        if (r >= 0) t[r] = 1e3 * (now() - t0);
        *peak_mb = (double)(sal_memory_peak() - base) / (1 << 20);
    }
    sal_session_free(s);
    qsort(t, (size_t)reps, sizeof t[0], cmp);
    return t[reps / 2];
}

int main(int argc, char **argv) {
    const char *dir = "build/bench/models";
    bool quick = false, vgg_pat = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--vgg-patterns")) vgg_pat = true;
        else dir = argv[i];
    }
    static const struct {
        const char *name;
        int64_t dim[4];
        int ndim, reps;
        double zennit_ms, torch_grad_ms;
    } nets[] = {{"mlp", {1, 1, 28, 28}, 4, 20, 2.9, 1.30},
                {"cnn", {1, 1, 28, 28}, 4, 20, NAN, 0.67},
                {"vgg16", {1, 3, 224, 224}, 4, 3, 1435, 268}};
    static const char *const methods[] = {
        "gradient", "lrp_0", "lrp_epsilon", "lrp_gamma", "lrp_alpha_beta", "lrp_zplus", "lrp_epsilon_plus",
        "lrp_epsilon_gamma_box", "lrp_epsilon_alpha2_beta1", "deep_taylor", "patternnet", "pattern_attribution", NULL,
    };
    char patpath[] = "/tmp/bench_lrp_XXXXXX";
    int fd = mkstemp(patpath);
    if (fd < 0) return 1;
    close(fd);
    printf("%-7s %-26s %12s %10s %11s %14s %16s\n", "model", "method", "ms per image", "peak MB", "x gradient",
           "Zennit EGB ms", "Zennit x torch grad");
    int rc = 0;
    for (size_t k = 0; k < sizeof nets / sizeof nets[0]; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.onnx", dir, nets[k].name);
        sal_model *m = NULL;
        if (sal_model_load(path, &m) != SAL_OK) {
            fprintf(stderr, "bench_lrp: %s (make the models with bench/models.py %s)\n", sal_last_error(), dir);
            rc = 1;
            continue;
        }
        sal_tensor x = {0}, data = {0};
        int64_t dd[4];
        memcpy(dd, nets[k].dim, sizeof dd);
        dd[0] = 64;
        if (sal_tensor_alloc(&x, SAL_F32, nets[k].ndim, nets[k].dim) != SAL_OK) return 1;
        srand(1);
        for (int64_t i = 0; i < sal_tensor_numel(&x); i++) sal_f32(&x)[i] = (float)rand() / (float)RAND_MAX;
        bool is_vgg = !strcmp(nets[k].name, "vgg16"), have_pat = false;
        if (!is_vgg || vgg_pat) {
            sal_patterns *p = NULL;
            double t0 = now();
            if (is_vgg) dd[0] = 4;
            if (sal_tensor_alloc(&data, SAL_F32, nets[k].ndim, dd) == SAL_OK) {
                for (int64_t i = 0; i < sal_tensor_numel(&data); i++) sal_f32(&data)[i] = (float)rand() / (float)RAND_MAX;
                have_pat = sal_patterns_estimate(m, &data, "random", NULL, &p) == SAL_OK && sal_patterns_save(p, patpath) == SAL_OK;
            }
            if (!have_pat) fprintf(stderr, "bench_lrp: patterns for %s: %s\n", nets[k].name, sal_last_error());
            else fprintf(stderr, "(%s: patterns from %lld random samples in %.0f ms)\n", nets[k].name, (long long)dd[0],
                         1e3 * (now() - t0));
            sal_patterns_free(p);
        }
        int reps = quick ? 1 : nets[k].reps;
        double mb;
        double fwd = time_ms(m, &x, NULL, NULL, reps, &mb), grad = NAN;
        printf("%-7s %-26s %12.3f %10.1f\n", nets[k].name, "(forward pass)", fwd, mb);
        char par[600];
        snprintf(par, sizeof par, "patterns=%s", patpath);
        for (int j = 0; methods[j]; j++) {
            bool pat = strstr(methods[j], "pattern") != NULL;
            if (pat && !have_pat) {
                printf("%-7s %-26s %12s %10s\n", nets[k].name, methods[j], "skipped", "");
                continue;
            }
            double ms = time_ms(m, &x, methods[j], pat ? par : NULL, reps, &mb);
            bool egb = !strcmp(methods[j], "lrp_epsilon_gamma_box");
            if (!strcmp(methods[j], "gradient")) grad = ms;
            printf("%-7s %-26s %12.3f %10.1f %11.2f", nets[k].name, methods[j], ms, mb, ms / grad);
            if (egb && !isnan(nets[k].zennit_ms))
                printf(" %14.1f %16.2f", nets[k].zennit_ms, nets[k].zennit_ms / nets[k].torch_grad_ms);
            printf("\n");
            rc |= isnan(ms);
        }
        sal_tensor_free(&x);
        sal_tensor_free(&data);
        sal_model_free(m);
    }
    unlink(patpath);
    printf("batch 1, median of %s runs; Zennit: EpsilonGammaBox per image as quoted in issue 7 (not measured here)\n",
           quick ? "1" : "20 (mlp, cnn) / 3 (vgg16)");
    return rc;
}
