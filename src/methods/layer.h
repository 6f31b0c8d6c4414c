/* Layer methods (Grad-CAM and relatives, FullGrad): choosing the layer and resampling maps from a
 * layer's resolution to the input's. */
#ifndef SAL_LAYER_H
#define SAL_LAYER_H

#include "method.h"

/* A layer: a node and the output value its map is computed on. */
typedef struct {
    int node, val;
} sal_layer;

/* Layers usable by CAM methods after a forward pass on s: nodes whose first output is float
 * (N, C, spatial...) with the input's batch N, more than one spatial position, and a path to model
 * output 0, in execution order (the last is the default). Writes up to max of them to out (may be
 * NULL) and the total to *count. */
sal_status sal_layer_candidates(const sal_session *s, sal_layer *out, int max, int *count);
/* The same for the explained output value outv instead of output 0. */
sal_status sal_layer_candidates_to(const sal_session *s, int outv, sal_layer *out, int max, int *count);

/* Resolves the layer named spec (a node name, else a value name; "auto" or "" = the default, the
 * last candidate) after a forward
 * pass on c->s, and records its node name in c->layer. Fails naming the layer and the candidates. */
sal_status sal_layer_resolve(sal_xctx *c, const char *spec, sal_layer *out);

/* ---- token layers (N, T, C) of transformers, read as (N, C, h, w) maps ---- */
typedef struct {
    bool on;
    int64_t prefix, h, w; /* leading tokens skipped (class, distillation), then an h x w grid */
} sal_tokens;
/* How layer value A (named layer) is read under the tokens parameter spec: "none" never as tokens;
 * "HxW" as tokens on that grid (the leading T - H W tokens skipped); "auto" as tokens when A has
 * rank 3, the input is an image (N, C, H, W), and T - k = h w for the smallest k in 0..8 with h : w
 * = H : W. Fails naming the layer when a given grid does not fit. */
sal_status sal_tokens_of(const sal_xctx *c, const char *spec, const char *layer, const sal_tensor *A, sal_tokens *t);
/* out := A (N, T, C) as (N, C, h, w), the prefix tokens dropped. */
sal_status sal_tokens_grid(const sal_tokens *t, const sal_tensor *A, sal_tensor *out);
/* sal_layer_resolve under the tokens parameter: with layer auto, when the default layer is a token
 * layer, the last token layer whose grid the explained output's gradient reaches (a ViT's last
 * blocks feed the head through the class token alone, so their patch tokens get no gradient). */
sal_status sal_layer_resolve_tokens(sal_xctx *c, const char *spec, const char *tokens, sal_layer *out,
                                    sal_tokens *t);

/* Linear interpolation of rows maps of nd spatial dims (rows, in[0], ..., in[nd-1]) to
 * (rows, out[0], ...), one axis at a time (bilinear for nd = 2), with half-pixel centres and edge
 * clamping as PyTorch's interpolate(align_corners=False) and OpenCV's resize. dst must not overlap
 * src. */
sal_status sal_resample_linear(const float *src, int64_t rows, int nd, const int64_t *in, float *dst,
                               const int64_t *out);

/* Spatial product of a (N, C, spatial...) tensor. */
int64_t sal_spatial_size(const sal_tensor *t);

/* Forward pass of c->x on c->s, skipped when the session already holds exactly that pass (sal_explain
 * runs one to find the targets). */
sal_status sal_layer_forward(sal_xctx *c);
/* Value v's activation readable as a plain tensor in c->s->act[v], and its gradient plain when the
 * next backward makes it (sal_method.layer_io): a forward pass that took a ReLU or an Add into v's
 * buffer (v then holds their output) runs again without doing so; a blocked v is converted. */
sal_status sal_layer_readable(sal_xctx *c, int v);
/* sal_layer_forward, then the gradient of the explained outputs at values vals[0..nv) (and at the
 * model input when input is true) into c->s->grad. value (N) gets the explained outputs, or NULL. */
sal_status sal_layer_grads(sal_xctx *c, int nv, const int *vals, bool input, float *value);

/* Fails unless a map of nd spatial dims can be resampled to the input (same number of spatial dims). */
sal_status sal_map_check(const sal_xctx *c, const char *layer, int nd);
/* Resamples a (N, spatial...) map of nd spatial dims sdim to the spatial size of the input x:
 * dst (N, x's spatial positions). layer names the map's layer in messages. */
sal_status sal_map_to_input(const sal_xctx *c, const char *layer, const float *map, int nd, const int64_t *sdim,
                            float *dst);
/* out := a tensor shaped as x holding the (N, x's spatial positions) map, the same in every channel;
 * for (N, D) inputs the map is (N, D) and copied. */
sal_status sal_map_spread(const sal_xctx *c, const float *map, sal_tensor *out);
/* Rescales each of n rows of len values to [0, 1] by min and max (a constant row becomes 0). */
void sal_minmax_rows(float *a, int64_t n, int64_t len);

#endif
