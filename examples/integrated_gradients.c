/* Integrated gradients: why did the model predict what it did for each sample of X.npy?
 *   cc integrated_gradients.c $(pkg-config --cflags --libs saliency) -o integrated_gradients
 *   ./integrated_gradients model.onnx x.npy attributions.npy */
#include <saliency.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 4) return fprintf(stderr, "usage: %s MODEL.onnx X.npy OUT.npy\n", argv[0]), 2;
    sal_model *model = NULL;
    sal_tensor x = {0};
    sal_explanation *e = NULL;
    const char *params[] = {"baseline=zero", "steps=32"};
    sal_explain_opts o = {.method = "integrated_gradients", .nparams = 2, .params = params};
    sal_status st = sal_model_load(argv[1], &model);
    if (st == SAL_OK) st = sal_npy_read(argv[2], &x);
    if (st == SAL_OK) st = sal_explain(model, &x, &o, &e); /* explains the predicted class */
    if (st == SAL_OK) st = sal_npy_write(argv[3], sal_explanation_map(e));
    if (st == SAL_OK) /* completeness: the attributions sum to f(x) - f(baseline) */
        printf("sample 0: class %lld, logit %.4f, completeness error %.2g\n", (long long)sal_explanation_targets(e)[0],
               sal_explanation_outputs(e)[0], sal_explanation_metric(e, "completeness_delta"));
    else fprintf(stderr, "error: %s\n", sal_last_error());
    sal_explanation_free(e);
    sal_tensor_free(&x);
    sal_model_free(model);
    return st != SAL_OK;
}
