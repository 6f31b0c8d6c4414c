/* Multi-object images for the pointing games: items of a labelled set (Fashion-MNIST) cropped to
 * their pixels and placed without overlap on a larger canvas, with a mask of each item's pixels. */
#include "audit.h"

typedef struct {
    int y0, x0, h, w;
} box;

/* The bounding box of pixels above thr in an (h, w) image; false when there are none. */
static bool tight_box(const float *img, int h, int w, double thr, box *b) {
    int y0 = h, y1 = -1, x0 = w, x1 = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (img[y * w + x] > thr) {
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
            }
    if (y1 < 0) return false;
    *b = (box){y0, x0, y1 - y0 + 1, x1 - x0 + 1};
    return true;
}

static bool overlaps(const box *a, const box *b) {
    return a->y0 < b->y0 + b->h && b->y0 < a->y0 + a->h && a->x0 < b->x0 + b->w && b->x0 < a->x0 + a->w;
}

sal_status sal_composite(const sal_tensor *x, const sal_tensor *y, const sal_composite_opts *o, sal_tensor *images,
                         sal_tensor *labels, sal_tensor *masks) {
    char b1[160];
    if (x->dtype != SAL_F32 || x->ndim != 4 || x->dim[1] != 1 || x->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "composite images need grey items (M, 1, h, w), not %s",
                        sal_shape_str(x->ndim, x->dim, b1, sizeof b1));
    if (y->dtype != SAL_I64 || y->ndim != 1 || y->dim[0] != x->dim[0])
        return sal_fail(SAL_ERR_SHAPE, "composite images need int64 item labels (%lld)", (long long)x->dim[0]);
    int items = o->items > 0 ? o->items : 2, imax = o->items_max > items ? o->items_max : items;
    int scale = o->scale > 0 ? o->scale : 1;
    double thr = o->threshold > 0 ? o->threshold : 0.1;
    int64_t M = x->dim[0], ih = x->dim[2] / scale, iw = x->dim[3] / scale;
    if (o->count < 1 || o->h < 1 || o->w < 1 || (int64_t)o->h * o->w > (1 << 24) || o->count > (1 << 24))
        return sal_fail(SAL_ERR_ARG, "composite: give a positive count and canvas size");
    if (ih < 1 || iw < 1) return sal_fail(SAL_ERR_ARG, "composite: scale %d leaves no pixels of %lldx%lld items", scale,
                                          (long long)x->dim[2], (long long)x->dim[3]);
    if (ih > o->h || iw > o->w)
        return sal_fail(SAL_ERR_ARG, "composite: %lldx%lld items do not fit a %dx%d canvas", (long long)ih, (long long)iw,
                        o->h, o->w);
    int64_t K = 0;
    const int64_t *lab = y->data;
    for (int64_t i = 0; i < M; i++) {
        if (lab[i] < 0 || lab[i] > 100000) return sal_fail(SAL_ERR_ARG, "composite: item label %lld out of range", (long long)lab[i]);
        if (lab[i] + 1 > K) K = lab[i] + 1;
    }
    if (imax > K) return sal_fail(SAL_ERR_ARG, "composite: %d items of distinct classes need %d classes; the labels have %lld",
                                  imax, imax, (long long)K);
    int64_t N = o->count, H = o->h, W = o->w;
    SAL_TRY(sal_tensor_alloc(images, SAL_F32, 4, (int64_t[]){N, 1, H, W}));
    SAL_TRY(sal_tensor_alloc(labels, SAL_F32, 2, (int64_t[]){N, K}));
    SAL_TRY(sal_tensor_alloc(masks, SAL_I64, 3, (int64_t[]){N, H, W}));
    float *item = sal_malloc((size_t)(ih * iw) * sizeof *item);
    int64_t *used = sal_malloc((size_t)imax * sizeof *used);
    box *placed = sal_malloc((size_t)imax * sizeof *placed);
    if (!item || !used || !placed) {
        sal_free(item), sal_free(used), sal_free(placed);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    sal_rng r;
    sal_rng_seed(&r, o->seed);
    sal_status st = SAL_OK;
    int64_t *mk = masks->data;
    for (int64_t n = 0; n < N && st == SAL_OK; n++) {
        int want = items + (int)(sal_rng_u64(&r) % (uint64_t)(imax - items + 1)), have = 0;
        float *img = sal_f32(images) + n * H * W;
        /* draws until the canvas holds `want` items; a canvas too small for them is an error */
        for (int tries = 0; have < want; tries++) {
            if (tries > 10000) {
                st = sal_fail(SAL_ERR_ARG, "composite: could not place %d items without overlap on a %lldx%lld canvas; "
                              "use a larger canvas, fewer items or a larger scale", want, (long long)H, (long long)W);
                break;
            }
            int64_t pick = (int64_t)(sal_rng_u64(&r) % (uint64_t)M);
            bool dup = false;
            for (int k = 0; k < have; k++) dup |= lab[used[k]] == lab[pick];
            if (dup) continue;
            /* shrink by box averaging */
            const float *src = sal_f32(x) + pick * x->dim[2] * x->dim[3];
            for (int64_t yy = 0; yy < ih; yy++)
                for (int64_t xx = 0; xx < iw; xx++) {
                    double s = 0;
                    for (int a = 0; a < scale; a++)
                        for (int b = 0; b < scale; b++) s += src[(yy * scale + a) * x->dim[3] + xx * scale + b];
                    item[yy * iw + xx] = (float)(s / (scale * scale));
                }
            box bb;
            if (!tight_box(item, (int)ih, (int)iw, thr, &bb)) continue;
            box at = {(int)(sal_rng_u64(&r) % (uint64_t)(H - bb.h + 1)), (int)(sal_rng_u64(&r) % (uint64_t)(W - bb.w + 1)),
                      bb.h, bb.w};
            bool clash = false;
            for (int k = 0; k < have && !clash; k++) clash = overlaps(&at, &placed[k]);
            if (clash) continue;
            for (int yy = 0; yy < bb.h; yy++)
                for (int xx = 0; xx < bb.w; xx++) {
                    float v = item[(bb.y0 + yy) * iw + bb.x0 + xx];
                    int64_t p = (int64_t)(at.y0 + yy) * W + at.x0 + xx;
                    img[p] = fmaxf(img[p], v);
                    if (v > thr) mk[n * H * W + p] = lab[pick] + 1;
                }
            sal_f32(labels)[n * K + lab[pick]] = 1.0f;
            used[have] = pick;
            placed[have++] = at;
        }
    }
    sal_free(item);
    sal_free(used);
    sal_free(placed);
    return st;
}
