/* Benchmark of the attribution methods: time per image and peak memory of sal_explain for every
 * method in the table, on the MLP, the CNN (batch 1 and 16) and the VGG16-shaped network (batch 1
 * and 4), using the ONNX models written by bench/models.py.
 *
 * usage: bench_methods [MODEL_DIR] [--model NAME] [--method NAME] [--batch B] [--reps R]
 * On VGG16 occlusion uses 16x16 windows with stride 16 (4x4/2 would mean 12100 forward passes per
 * image), and the black-box methods (lime, kernel_shap, rise, sobol: thousands of forward passes
 * each) are left to bench_blackbox; every other method runs with its defaults. Methods that need
 * inputs we do not give (pattern files) or cannot apply (layer methods on the MLP) print their error
 * instead. */
#include "bench.h"


int main(int argc, char **argv) {
    const char *dir = "build/bench/models", *only_model = NULL, *only_method = NULL;
    int only_batch = 0, reps = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) only_model = argv[++i];
        else if (!strcmp(argv[i], "--method") && i + 1 < argc) only_method = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) only_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (argv[i][0] != '-') dir = argv[i];
        else {
            fprintf(stderr, "usage: bench_methods [MODEL_DIR] [--model M] [--method M] [--batch B] [--reps R]\n");
            return 1;
        }
    }
    if (reps < 1 || reps > 64) reps = 3;
    static const struct {
        const char *name;
        int batches[2];
    } models[] = {{"mlp", {1, 16}}, {"cnn", {1, 16}}, {"vgg16", {1, 4}}};
    printf("%-6s %5s %-28s %12s %12s  %s\n", "model", "batch", "method", "ms/img", "peak MB", "note");
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
        if (only_model && strcmp(only_model, models[mi].name)) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.onnx", dir, models[mi].name);
        sal_model *m;
        if (sal_model_load(path, &m) != SAL_OK) {
            fprintf(stderr, "bench_methods: %s (run bench/models.py %s first)\n", sal_last_error(), dir);
            return 1;
        }
        bool vgg = !strcmp(models[mi].name, "vgg16");
        for (int bi = 0; bi < 2; bi++) {
            int b = models[mi].batches[bi], nd;
            if (only_batch && b != only_batch) continue;
            int64_t dim[SAL_MAX_DIMS];
            sal_model_input_shape(m, 0, &nd, dim);
            dim[0] = b;
            sal_tensor x = {0}, data = {0};
            SAL_ASSERT(sal_tensor_alloc(&x, SAL_F32, nd, dim) == SAL_OK);
            dim[0] = 8;
            SAL_ASSERT(sal_tensor_alloc(&data, SAL_F32, nd, dim) == SAL_OK);
            sal_rng r;
            sal_rng_seed(&r, 1);
            for (int64_t i = 0, n = sal_tensor_numel(&x); i < n; i++) sal_f32(&x)[i] = (float)sal_rng_uniform(&r);
            for (int64_t i = 0, n = sal_tensor_numel(&data); i < n; i++) sal_f32(&data)[i] = (float)sal_rng_uniform(&r);
            for (int k = 0; k < sal_method_count(); k++) {
                const char *name = sal_method_name(k);
                if (only_method && strcmp(only_method, name)) continue;
                if (vgg && (!strcmp(name, "lime") || !strcmp(name, "kernel_shap") || !strcmp(name, "rise") ||
                            !strcmp(name, "sobol"))) {
                    printf("%-6s %5d %-28s %12s %12s  %s\n", models[mi].name, b, name, "-", "-", "see bench_blackbox");
                    continue;
                }
                const char *params[2];
                int np = 0;
                if (vgg && !strcmp(name, "occlusion")) params[np++] = "window=16", params[np++] = "stride=16";
                sal_session *sess;
                SAL_ASSERT(sal_session_new(m, &sess) == SAL_OK);
                sal_explain_opts o = {.method = name, .nparams = np, .params = params, .data = &data, .session = sess};
                double t[64];
                size_t peak = 0;
                sal_status st = SAL_OK;
                int runs = vgg ? 1 : reps;
                /* run -1 warms the session and measures the memory (the session's buffers included);
                 * the timed runs follow */
                for (int rep = -1; rep < runs && st == SAL_OK; rep++) {
                    sal_explanation *e = NULL;
                    size_t base = sal_memory_in_use();
                    sal_memory_reset_peak();
                    double t0 = sal_now();
                    st = sal_explain(m, &x, &o, &e);
                    if (rep >= 0) t[rep] = sal_now() - t0;
                    size_t p = sal_memory_peak() - base;
                    if (p > peak) peak = p;
                    sal_explanation_free(e);
                }
                sal_session_free(sess);
                if (st != SAL_OK) {
                    printf("%-6s %5d %-28s %12s %12s  %.90s\n", models[mi].name, b, name, "-", "-", sal_last_error());
                } else {
                    printf("%-6s %5d %-28s %12.3f %12.1f  %s\n", models[mi].name, b, name, 1e3 * bench_median(t, runs) / b,
                           (double)peak / (1 << 20), vgg && !strcmp(name, "occlusion") ? "window=16 stride=16" : "");
                }
                fflush(stdout);
            }
            sal_tensor_free(&x);
            sal_tensor_free(&data);
        }
        sal_model_free(m);
    }
    printf("\nms/img: median wall time of sal_explain per image with a reused session, after one untimed run that\n"
           "warms it (defaults; includes the forward pass for targets); peak MB: most memory the library held\n"
           "during a call, above what it held before, the session's own buffers included (the untimed run).\n");
    return 0;
}
