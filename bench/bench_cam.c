/* Grad-CAM benchmark: milliseconds per image of `gradcam` on the small CNN and the VGG16-shaped
 * network of bench/models.py at batch 1, three ways: a plain forward pass for scale; sal_explain end
 * to end (a fresh session, target resolution, forward pass, backward pass down to the default layer
 * only, the map and its upsampling); and the same work on a warm session (forward pass, then the
 * method), which is what sal_explain costs without its per-call session setup. Issue 8's target:
 * faster than Captum's LayerGradCam, about 0.7 ms (CNN) and 171 ms (VGG16) per image at batch 1.
 *
 * usage: bench_cam [MODEL_DIR] [--quick]      (MODEL_DIR from bench/models.py; default build/bench/models) */
#include "methods/method.h"
#include <math.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef enum { T_FORWARD, T_EXPLAIN, T_WARM } timing;

/* The method on a warm session: forward pass, predicted class, then its run (which reuses that
 * forward pass), as sal_explain does minus creating the session. */
static sal_status warm_run(sal_session *s, const sal_tensor *x, const sal_method *meth) {
    SAL_TRY(sal_exec_forward(s, x));
    const sal_tensor *y = &s->act[s->m->output[0]];
    int64_t best = 0;
    for (int64_t k = 1; k < y->dim[1]; k++)
        if (sal_f32(y)[k] > sal_f32(y)[best]) best = k;
    sal_xctx c = {.m = s->m, .meth = meth, .s = s, .x = x, .target = &best, .chunk = 64, .lo = 0, .hi = 1};
    sal_status st = meth->run(&c);
    sal_tensor_free(&c.out);
    sal_tensor_free(&c.layer_out);
    return st;
}

/* Median over reps (after one warm-up call) of ms per call; NAN on failure. */
static double time_ms(const sal_model *m, const sal_tensor *x, const char *method, timing how, int reps) {
    double t[64];
    sal_session *s = NULL;
    if (how != T_EXPLAIN && sal_session_new(m, &s) != SAL_OK) return NAN;
    for (int r = -1; r < reps; r++) {
        double t0 = sal_now();
        sal_status st;
        if (how == T_EXPLAIN) {
            sal_explain_opts o = {.method = method};
            sal_explanation *e = NULL;
            st = sal_explain(m, x, &o, &e);
            sal_explanation_free(e);
        } else if (how == T_WARM) {
            st = warm_run(s, x, sal_method_lookup(method));
        } else {
            st = sal_exec_forward(s, x);
        }
        if (st != SAL_OK) {
            fprintf(stderr, "bench_cam: %s: %s\n", method, sal_last_error());
            sal_session_free(s);
            return NAN;
        }
        if (r >= 0) t[r] = 1e3 * (sal_now() - t0);
    }
    sal_session_free(s);
    qsort(t, (size_t)reps, sizeof t[0], cmp);
    return t[reps / 2];
}

int main(int argc, char **argv) {
    const char *dir = "build/bench/models";
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else dir = argv[i];
    }
    static const struct {
        const char *name;
        int64_t dim[4];
        int reps;
        double captum_ms;
    } nets[] = {{"cnn", {1, 1, 28, 28}, 50, 0.7}, {"vgg16", {1, 3, 224, 224}, 3, 171}};
    printf("%-8s %11s %18s %17s %14s\n", "model", "forward ms", "gradcam explain ms", "gradcam warm ms",
           "Captum ms [1]");
    int rc = 0;
    for (size_t k = 0; k < sizeof nets / sizeof nets[0]; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.onnx", dir, nets[k].name);
        sal_model *m = NULL;
        if (sal_model_load(path, &m) != SAL_OK) {
            fprintf(stderr, "bench_cam: %s (make the models with bench/models.py %s)\n", sal_last_error(), dir);
            rc = 1;
            continue;
        }
        sal_tensor x = {0};
        if (sal_tensor_alloc(&x, SAL_F32, 4, nets[k].dim) != SAL_OK) {
            sal_model_free(m);
            return 1;
        }
        srand(1);
        for (int64_t i = 0; i < sal_tensor_numel(&x); i++) sal_f32(&x)[i] = (float)rand() / (float)RAND_MAX;
        int reps = quick ? 1 : nets[k].reps;
        double fwd = time_ms(m, &x, "forward", T_FORWARD, reps), cam = time_ms(m, &x, "gradcam", T_EXPLAIN, reps),
               warm = time_ms(m, &x, "gradcam", T_WARM, reps);
        printf("%-8s %11.3f %18.3f %17.3f %14.1f\n", nets[k].name, fwd, cam, warm, nets[k].captum_ms);
        rc |= isnan(fwd) || isnan(cam) || isnan(warm);
        sal_tensor_free(&x);
        sal_model_free(m);
    }
    printf("batch 1, median of %s runs; [1] LayerGradCam per image, as quoted in issue 8 (not measured here)\n",
           quick ? "1" : "50 (cnn) / 3 (vgg16)");
    return rc;
}
