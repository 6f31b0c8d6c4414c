/* Input invariance (Kindermans et al.): do the maps survive a constant shift of the input that the
 * model absorbs in its first layer's bias? The gradient does; gradient x input does not.
 *   cc audit.c $(pkg-config --cflags --libs saliency) -o audit
 *   ./audit model.onnx x.npy report.json */
#include <saliency.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 4) return fprintf(stderr, "usage: %s MODEL.onnx X.npy REPORT.json\n", argv[0]), 2;
    sal_model *model = NULL;
    sal_tensor x = {0}, shift = {0};
    sal_audit *a = NULL;
    char *json = NULL;
    sal_status st = sal_model_load(argv[1], &model);
    if (st == SAL_OK) st = sal_npy_read(argv[2], &x);
    if (st == SAL_OK) st = sal_tensor_alloc(&shift, SAL_F32, x.ndim - 1, x.dim + 1); /* one sample's shape */
    for (int64_t i = 0; st == SAL_OK && i < sal_tensor_numel(&shift); i++) sal_f32(&shift)[i] = -1;
    sal_audit_method methods[] = {{.name = "gradient"}, {.name = "gradient_x_input"}};
    sal_invariance_opts o = {.common = {.nmethods = 2, .methods = methods}, .shift = &shift};
    if (st == SAL_OK) st = sal_audit_invariance(model, &x, &o, &a);
    for (int i = 0; st == SAL_OK && i < sal_audit_count(a); i++)
        printf("%-20s %s\n", sal_audit_label(a, i), sal_audit_verdict(a, i));
    if (st == SAL_OK) st = sal_audit_json(a, &json);
    if (st == SAL_OK) st = sal_write_file(argv[3], json, strlen(json));
    if (st != SAL_OK) fprintf(stderr, "error: %s\n", sal_last_error());
    free(json);
    sal_audit_free(a);
    sal_tensor_free(&shift);
    sal_tensor_free(&x);
    sal_model_free(model);
    return st != SAL_OK;
}
