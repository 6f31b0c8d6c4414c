/* Benchmark: forward and forward+input-gradient time per image of the MLP, the CNN, a
 * VGG16-shaped network and torchvision's ResNet-50, MobileNetV2, ViT-B/16, ConvNeXt-T,
 * MobileNetV3-Large and Swin-T (224x224), with achieved GFLOP/s next to the sgemm rate measured in the same run, and
 * PyTorch's times on the same ONNX models (bench/models.py) when available.
 *
 * usage: bench [MODEL_DIR] [--quick]      (make bench runs it with build/bench/models) */
#include "bench.h"


/* GFLOP/s of sgemm M=N=K=n on this machine, now. */
static double sgemm_rate(int n) {
    float *a = calloc((size_t)n * n, 4), *b = calloc((size_t)n * n, 4), *c = calloc((size_t)n * n, 4);
    double t[7];
    for (int r = 0; r < 7; r++) {
        double t0 = sal_now();
        sal_sgemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[r] = sal_now() - t0;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * n / bench_median(t + 1, 6) * 1e-9;
}

/* Multiply-adds of Conv and Gemm/MatMul nodes after a forward pass, split by kind. */
static void count_flops(const sal_session *s, double *conv, double *dense) {
    const sal_model *m = s->m;
    *conv = *dense = 0;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        const sal_tensor *y = &s->act[n->out[0]];
        if (sal_node_is(n, SAL_OP_Conv)) {
            const sal_tensor *w = &s->act[n->in[1]];
            double k = 1;
            for (int d = 1; d < w->ndim; d++) k *= (double)w->dim[d];
            *conv += 2.0 * (double)sal_tensor_numel(y) * k;
        } else if (sal_node_is(n, SAL_OP_Gemm) || sal_node_is(n, SAL_OP_MatMul)) {
            const sal_tensor *x = &s->act[n->in[0]];
            *dense += 2.0 * (double)sal_tensor_numel(y) * (double)x->dim[x->ndim - 1];
        }
    }
}

/* Time of the Conv nodes in a forward pass as the session runs them (in its layouts, with the ReLUs
 * it fuses, on its kernels: oneDNN's, or Winograd's of our own on AVX2 machines), from its profile.
 * Run alone, node by node, a layer would see plain tensors and take another path. */
static double conv_time(sal_session *s, const sal_tensor *x) {
    const sal_tensor *y;
    SAL_ASSERT(sal_session_profile(s, true) == SAL_OK && sal_forward(s, 1, x, &y) == SAL_OK);
    double t = 0;
    for (int i = 0; i < s->m->nnode; i++)
        if (sal_node_is(&s->m->node[i], SAL_OP_Conv)) t += s->prof[i];
    SAL_ASSERT(sal_session_profile(s, false) == SAL_OK);
    return t;
}

static double torch_ms(const char *dir, const char *key) {
    char path[1024], k[128];
    double v;
    snprintf(path, sizeof path, "%s/torch.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return NAN;
    while (fscanf(f, "%127s %lf", k, &v) == 2)
        if (!strcmp(k, key)) {
            fclose(f);
            return v;
        }
    fclose(f);
    return NAN;
}

int main(int argc, char **argv) {
    const char *dir = "build/bench/models";
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else dir = argv[i];
    }
    if (sal_blas_init() != SAL_OK) {
        fprintf(stderr, "bench: %s\n", sal_last_error());
        return 1;
    }
    double peak = sgemm_rate(1024);
    printf("BLAS: %s\nsgemm 1024^3: %.1f GFLOP/s (this run)\n\n", sal_blas_info(), peak);
    printf("%-12s %5s %12s %12s %10s %10s %10s %12s %12s\n", "model", "batch", "fwd ms/img", "grad ms/img",
           "fwd GF/s", "conv GF/s", "conv/sgemm", "torch fwd", "torch grad");
    static const struct {
        const char *name;
        int batches[2];
        bool large; /* 3 timed runs */
    } models[] = {{"mlp", {1, 16}, false},      {"cnn", {1, 16}, false},         {"vgg16", {1, 4}, true},
                  {"resnet50", {1, 4}, true}, {"mobilenet_v2", {1, 4}, false}, {"vit_b_16", {1, 4}, true},
                  {"convnext_tiny", {1, 4}, false}, {"mobilenet_v3_large", {1, 4}, false}, {"swin_t", {1, 4}, false}};
    int rc = 0;
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.onnx", dir, models[mi].name);
        sal_model *m;
        if (sal_model_load(path, &m) != SAL_OK) {
            fprintf(stderr, "bench: %s (run bench/models.py %s first)\n", sal_last_error(), dir);
            rc = 1;
            continue;
        }
        for (int bi = 0; bi < 2; bi++) {
            int b = models[mi].batches[bi], nd, reps = models[mi].large || quick ? 3 : 50;
            int64_t dim[SAL_MAX_DIMS];
            sal_model_input_shape(m, 0, &nd, dim);
            dim[0] = b;
            sal_session *s;
            sal_tensor x = {0}, seed = {0};
            SAL_ASSERT(sal_session_new(m, &s) == SAL_OK && sal_tensor_alloc(&x, SAL_F32, nd, dim) == SAL_OK);
            for (int64_t i = 0, n = sal_tensor_numel(&x); i < n; i++) sal_f32(&x)[i] = (float)(i % 255) / 255.0f;
            const sal_tensor *y;
            double tf[64], tg[64], tc[64];
            SAL_ASSERT(sal_forward(s, 1, &x, &y) == SAL_OK);
            SAL_ASSERT(sal_tensor_alloc(&seed, SAL_F32, y->ndim, y->dim) == SAL_OK);
            for (int64_t i = 0; i < y->dim[0]; i++) sal_f32(&seed)[i * y->dim[1]] = 1.0f;
            for (int r = 0; r < reps; r++) {
                double t0 = sal_now();
                SAL_ASSERT(sal_forward(s, 1, &x, &y) == SAL_OK);
                tf[r] = sal_now() - t0;
                const sal_tensor *g;
                t0 = sal_now();
                SAL_ASSERT(sal_forward(s, 1, &x, &y) == SAL_OK && sal_input_gradient(s, &seed, &g) == SAL_OK);
                tg[r] = sal_now() - t0;
                tc[r] = conv_time(s, &x);
            }
            double conv, dense, f = bench_median(tf, reps), g = bench_median(tg, reps), c = bench_median(tc, reps);
            count_flops(s, &conv, &dense);
            char key[64];
            snprintf(key, sizeof key, "%s_b%d_forward", models[mi].name, b);
            double pf = torch_ms(dir, key);
            snprintf(key, sizeof key, "%s_b%d_gradient", models[mi].name, b);
            double pg = torch_ms(dir, key);
            printf("%-12s %5d %12.4f %12.4f %10.1f", models[mi].name, b, 1e3 * f / b, 1e3 * g / b,
                   (conv + dense) / f * 1e-9);
            if (conv > 0) printf(" %10.1f %9.0f%%", conv / c * 1e-9, 100 * conv / c * 1e-9 / peak);
            else printf(" %10s %10s", "-", "-");
            printf(" %12.4f %12.4f\n", pf, pg);
            fflush(stdout);
            sal_tensor_free(&x);
            sal_tensor_free(&seed);
            sal_session_free(s);
        }
        sal_model_free(m);
    }
    printf("\nms/img: median wall time per image; GF/s: multiply-adds x2 of Conv/Gemm/MatMul per second;\n"
           "torch: PyTorch 1.13 on the same models and weights, 2 threads, tcmalloc and the OpenMP OpenBLAS,\n"
           "one configuration per process (bench/models.py; nan: not measured)\n");
    return rc;
}
