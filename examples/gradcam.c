/* Grad-CAM at a convolutional layer, drawn over the first input as a PNG.
 *   cc gradcam.c $(pkg-config --cflags --libs saliency) -o gradcam
 *   ./gradcam model.onnx x.npy cam.png [LAYER]      (LAYER: default the last spatial layer) */
#include <saliency.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) return fprintf(stderr, "usage: %s MODEL.onnx X.npy OUT.png [LAYER]\n", argv[0]), 2;
    sal_model *model = NULL;
    sal_session *s = NULL;
    sal_tensor x = {0};
    sal_explanation *e = NULL;
    const sal_tensor *outputs[1];
    int layers[64], nlayers = 0;
    sal_status st = sal_model_load(argv[1], &model);
    if (st == SAL_OK) st = sal_npy_read(argv[2], &x);
    /* the layers Grad-CAM can use are known after a forward pass */
    if (st == SAL_OK) st = sal_session_new(model, &s);
    if (st == SAL_OK) st = sal_forward(s, 1, &x, outputs);
    if (st == SAL_OK) st = sal_cam_layers(s, layers, 64, &nlayers);
    for (int i = 0; st == SAL_OK && i < nlayers && i < 64; i++) printf("layer %s\n", sal_model_node_name(model, layers[i]));
    char layer[300];
    snprintf(layer, sizeof layer, "layer=%s", argc == 5 ? argv[4] : "auto");
    const char *params[] = {layer};
    sal_explain_opts o = {.method = "gradcam", .nparams = 1, .params = params, .session = s};
    if (st == SAL_OK) st = sal_explain(model, &x, &o, &e);
    if (st == SAL_OK) {
        const sal_tensor *lm = sal_explanation_layer_map(e); /* (N, 1, h, w) at the layer's resolution */
        printf("class %lld, layer map %lldx%lld\n", (long long)sal_explanation_targets(e)[0], (long long)lm->dim[2],
               (long long)lm->dim[3]);
        sal_tensor map0 = *sal_explanation_map(e), x0 = x; /* sample 0 (the map has the input's shape) */
        map0.dim[0] = x0.dim[0] = 1;
        map0.cap = x0.cap = 0;                             /* borrowed views */
        sal_heatmap_opts h = {.overlay = 1, .colorbar = 1, .scale = 8};
        st = sal_heatmap_png(argv[3], &map0, &x0, &h);
    }
    if (st != SAL_OK) fprintf(stderr, "error: %s\n", sal_last_error());
    sal_explanation_free(e);
    sal_session_free(s);
    sal_tensor_free(&x);
    sal_model_free(model);
    return st != SAL_OK;
}
