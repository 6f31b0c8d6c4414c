/* Sliding-window geometry shared by Conv and the pooling ops. Spatial ranks 1 to 3 are normalized
 * to three dimensions (depth, height, width) by leading size-1 dimensions, so one loop nest serves
 * 1-D, 2-D and 3-D windows. */
#ifndef SAL_WINDOW_H
#define SAL_WINDOW_H

#include "ops.h"

typedef enum { SAL_AUTOPAD_NOTSET, SAL_AUTOPAD_SAME_UPPER, SAL_AUTOPAD_SAME_LOWER, SAL_AUTOPAD_VALID } sal_autopad;

/* Attributes as written in the node; nsp is 0 when no attribute fixes the spatial rank. */
typedef struct {
    int nsp;
    bool has_k, has_s, has_d, has_pads;
    sal_autopad autopad;
    bool ceil_mode;
    int64_t k[3], s[3], d[3], pads[6]; /* pads: begins then ends, as in ONNX */
} sal_win_attr;

/* Resolved geometry for one input shape, normalized to 3 spatial dimensions. */
typedef struct {
    int nsp; /* the real spatial rank */
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
    int64_t in_sz, out_sz, k_sz; /* products of in, out and k */
} sal_win;

/* 2-D windows of 2x2 at stride 2, no padding or dilation, inside the input: the pools between
 * convolutions, which get loops of their own. */
static inline bool sal_win_2x2(const sal_win *w) {
    return w->nsp == 2 && w->k[1] == 2 && w->k[2] == 2 && w->s[1] == 2 && w->s[2] == 2 && w->d[1] == 1 &&
           w->d[2] == 1 && w->pb[1] == 0 && w->pb[2] == 0 && 2 * w->out[1] <= w->in[1] && 2 * w->out[2] <= w->in[2];
}

/* Parses kernel_shape, strides, dilations, pads, auto_pad and ceil_mode (ceil_mode only when
 * `pool`). need_k: kernel_shape is required (pooling). */
sal_status sal_win_parse(const sal_node *n, bool need_k, bool pool, sal_win_attr *a);

/* Refuses a kernel of k taps dilated by d along spatial dimension i that is empty (a window of no
 * taps) or spans more than 2^40: both planners (sal_win_plan, ConvTranspose's) take k from the
 * weights, whose shape no attribute bounds. */
sal_status sal_win_check_kernel(const sal_node *n, int i, int64_t k, int64_t d);

/* Geometry for spatial input dims in_sp[0..nsp); k_w: kernel dims from the weights (Conv) or NULL. */
sal_status sal_win_plan(const sal_node *n, const sal_win_attr *a, int nsp, const int64_t *in_sp,
                        const int64_t *k_w, sal_win *w);

/* Range [*lo, *hi) of the i in [0, count) whose position off + i*step falls in [0, in): the kernel
 * taps of one output, or the outputs that one tap reaches. */
static inline void sal_win_range(int64_t off, int64_t step, int64_t count, int64_t in, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + step - 1) / step;
    int64_t h = off >= in ? 0 : (in - off - 1) / step + 1;
    if (h > count) h = count;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

#endif
