/* Training: learns real MNIST digits, is byte-identical for a seed, and refuses bad data. */
#include "testutil.h"

/* All parameters of m concatenated in value order. */
static float *params(const sal_model *m, int64_t *n) {
    *n = sal_model_param_count(m);
    float *p = malloc((size_t)*n * sizeof *p), *q = p;
    for (int v = 0; v < m->nval; v++)
        if (m->val[v].param) {
            int64_t k = sal_tensor_numel(&m->val[v].t);
            memcpy(q, m->val[v].t.data, (size_t)k * sizeof *q);
            q += k;
        }
    return p;
}

/* Progress: each epoch ends once at done == total, the stage names the epoch. */
typedef struct {
    int calls, ends;
    char last[32];
} progress_log;

static void on_progress(void *user, const char *what, int64_t done, int64_t total, const char *detail) {
    progress_log *p = user;
    p->calls++;
    p->ends += done == total && total == 300 && !strncmp(detail, "loss ", 5);
    snprintf(p->last, sizeof p->last, "%s", what);
}

int main(void) {
    sal_dataset d;
    CHECK_OK(sal_dataset_load("mnist", &d));
    if (t_fail) return t_done("test_train");
    CHECK(d.train_x.dim[0] == 8000 && d.test_x.dim[0] == 2000, "mnist split 8000/2000, got %lld/%lld",
          (long long)d.train_x.dim[0], (long long)d.test_x.dim[0]);
    /* a 2000-sample subset keeps the test quick; a few epochs of the paper's MLP still generalise */
    d.train_x.dim[0] = d.train_y.dim[0] = 2000;
    sal_train_opts o = sal_train_defaults();
    o.epochs = 2;
    o.seed = 5;
    sal_model *a, *b, *c;
    CHECK_OK(sal_model_build("mlp", 10, 5, &a));
    CHECK(sal_model_param_count(a) == 784 * 1024 + 1024 + 2 * (1024 * 1024 + 1024) + 10250,
          "mlp parameter count %lld", (long long)sal_model_param_count(a));
    double acc0, acc;
    CHECK_OK(sal_accuracy(a, &d.test_x, &d.test_y, &acc0));
    CHECK_OK(sal_train(a, &d.train_x, &d.train_y, &o));
    CHECK_OK(sal_accuracy(a, &d.test_x, &d.test_y, &acc));
    CHECK(acc > 0.88 && acc > acc0 + 0.5, "held-out accuracy after training %.4f (before %.4f)", acc, acc0);

    /* same seed: byte-identical parameters; another seed: different ones */
    d.train_x.dim[0] = d.train_y.dim[0] = 300;
    o.epochs = 1;
    CHECK_OK(sal_model_build("mlp", 10, 5, &b));
    CHECK_OK(sal_model_build("mlp", 10, 5, &c));
    progress_log pl = {0};
    o.progress = on_progress, o.progress_user = &pl;
    CHECK_OK(sal_train(b, &d.train_x, &d.train_y, &o));
    CHECK(pl.ends == 1 && pl.calls >= 2 && !strcmp(pl.last, "epoch 1/1"), "training progress: %d calls, %d ends, '%s'",
          pl.calls, pl.ends, pl.last);
    o.progress = NULL;
    CHECK_OK(sal_train(c, &d.train_x, &d.train_y, &o));
    int64_t nb, nc;
    float *pb = params(b, &nb), *pc = params(c, &nc);
    CHECK(nb == nc && !memcmp(pb, pc, (size_t)nb * sizeof *pb), "same seed gave different parameters");
    sal_model_free(c);
    o.seed = 6;
    CHECK_OK(sal_model_build("mlp", 10, 5, &c));
    CHECK_OK(sal_train(c, &d.train_x, &d.train_y, &o));
    free(pc);
    pc = params(c, &nc);
    CHECK(memcmp(pb, pc, (size_t)nb * sizeof *pb) != 0, "different shuffling seeds gave identical parameters");

    /* SGD with momentum also learns */
    sal_model_free(c);
    CHECK_OK(sal_model_build("mlp", 10, 7, &c));
    o.opt = SAL_OPT_SGD;
    o.lr = 0.05f;
    o.epochs = 2;
    CHECK_OK(sal_train(c, &d.train_x, &d.train_y, &o));
    CHECK_OK(sal_accuracy(c, &d.test_x, &d.test_y, &acc));
    CHECK(acc > 0.7, "SGD held-out accuracy %.4f", acc);

    /* bad data */
    sal_tensor badx = {0};
    CHECK_OK(sal_tensor_alloc(&badx, SAL_F32, 4, (int64_t[]){4, 1, 27, 28}));
    CHECK_FAILS(sal_train(c, &badx, &d.train_y, &o), SAL_ERR_SHAPE, "input 'input'");
    sal_tensor_free(&badx);
    sal_tensor y2 = {0};
    CHECK_OK(sal_tensor_alloc(&y2, SAL_I64, 1, (int64_t[]){300}));
    ((int64_t *)y2.data)[3] = 12;
    CHECK_FAILS(sal_train(c, &d.train_x, &y2, &o), SAL_ERR_ARG, "out of range");
    sal_tensor_free(&y2);
    sal_model *e = NULL;
    CHECK_FAILS(sal_model_build("resnet", 10, 1, &e), SAL_ERR_ARG, "unknown architecture");
    CHECK(e == NULL, "a failed build returns no model");

    free(pb);
    free(pc);
    sal_model_free(a);
    sal_model_free(b);
    sal_model_free(c);
    d.train_x.dim[0] = d.train_y.dim[0] = 8000;
    sal_dataset_free(&d);
    return t_done("test_train");
}
