/* Input shifts for the invariance audit: checkerboards, images, and the targeted ("cat") shift. */
#include "audit.h"

static sal_status check_sample_shape(int ndim, const int64_t *dim) {
    int64_t n;
    if (ndim < 1 || ndim > SAL_MAX_DIMS - 1 || !sal_shape_numel(ndim, dim, &n) || n < 1)
        return sal_fail(SAL_ERR_SHAPE, "a shift needs a non-empty sample shape");
    return SAL_OK;
}

/* Height and width of a sample shape: its last two axes after the channels; (C, L): 1 x L. */
static void sample_hw(int ndim, const int64_t *dim, int64_t *C, int64_t *H, int64_t *W) {
    *C = ndim >= 2 ? dim[0] : 1;
    *W = dim[ndim - 1];
    *H = 1;
    for (int d = 1; d < ndim - 1; d++) *H *= dim[d];
}

sal_status sal_shift_checkerboard(int ndim, const int64_t *dim, int cell, double amp, sal_tensor *out) {
    SAL_TRY(check_sample_shape(ndim, dim));
    if (cell < 1) return sal_fail(SAL_ERR_ARG, "checkerboard cell size must be at least 1 (got %d)", cell);
    if (!isfinite(amp)) return sal_fail(SAL_ERR_ARG, "checkerboard amplitude must be finite");
    SAL_TRY(sal_tensor_alloc(out, SAL_F32, ndim, dim));
    int64_t C, H, W;
    sample_hw(ndim, dim, &C, &H, &W);
    float *p = sal_f32(out);
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++) p[(c * H + y) * W + x] = ((y / cell + x / cell) % 2) ? (float)amp : 0.0f;
    return SAL_OK;
}

sal_status sal_shift_image(const sal_tensor *img, int ndim, const int64_t *dim, double amp, sal_tensor *out) {
    SAL_TRY(check_sample_shape(ndim, dim));
    if (img->dtype != SAL_F32 || (img->ndim != 2 && img->ndim != 3) || sal_tensor_numel(img) < 1) {
        char b[160];
        return sal_fail(SAL_ERR_SHAPE, "a shift image must be float (H,W) or (C,H,W), not %s",
                        sal_shape_str(img->ndim, img->dim, b, sizeof b));
    }
    int64_t ic = img->ndim == 3 ? img->dim[0] : 1, ih = img->dim[img->ndim - 2], iw = img->dim[img->ndim - 1];
    int64_t C, H, W;
    sample_hw(ndim, dim, &C, &H, &W);
    if (ic != 1 && ic != C && C != 1)
        return sal_fail(SAL_ERR_SHAPE, "a shift image with %lld channels does not fit samples with %lld",
                        (long long)ic, (long long)C);
    SAL_TRY(sal_tensor_alloc(out, SAL_F32, ndim, dim));
    const float *s = sal_f32(img);
    float *p = sal_f32(out);
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++) {
                /* bilinear, pixel centres aligned */
                double sy = ((double)y + 0.5) * (double)ih / (double)H - 0.5, sx = ((double)x + 0.5) * (double)iw / (double)W - 0.5;
                sy = fmin(fmax(sy, 0), (double)(ih - 1));
                sx = fmin(fmax(sx, 0), (double)(iw - 1));
                int64_t y0 = (int64_t)sy, x0 = (int64_t)sx, y1 = y0 + 1 < ih ? y0 + 1 : y0, x1 = x0 + 1 < iw ? x0 + 1 : x0;
                double fy = sy - (double)y0, fx = sx - (double)x0, v = 0;
                int64_t c0 = ic == C ? c : 0, c1 = ic == C ? c + 1 : ic; /* average channels down to one */
                for (int64_t k = c0; k < c1; k++) {
                    const float *q = s + k * ih * iw;
                    v += (1 - fy) * ((1 - fx) * q[y0 * iw + x0] + fx * q[y0 * iw + x1]) +
                         fy * ((1 - fx) * q[y1 * iw + x0] + fx * q[y1 * iw + x1]);
                }
                p[(c * H + y) * W + x] = (float)(amp * v / (double)(c1 - c0));
            }
    return SAL_OK;
}

sal_status sal_shift_targeted(const sal_model *m, const sal_tensor *x, const sal_tensor *target, double scale,
                              double clip, sal_tensor *out) {
    if (!(clip > 0)) return sal_fail(SAL_ERR_ARG, "the targeted shift needs a positive clip (got %g)", clip);
    int nd;
    int64_t dim[SAL_MAX_DIMS];
    sal_model_input_shape(m, 0, &nd, dim);
    if (nd < 2 || x->dtype != SAL_F32 || (x->ndim != nd && x->ndim != nd - 1) || (x->ndim == nd && x->dim[0] != 1))
        return sal_fail(SAL_ERR_SHAPE, "the targeted shift needs one sample of the model's input");
    const int64_t *sdim = x->ndim == nd ? x->dim + 1 : x->dim;
    sal_tensor xb = sal_tensor_view(x), g = {0}, s = {0};
    xb.ndim = nd;
    xb.dim[0] = 1;
    memcpy(xb.dim + 1, sdim, sizeof(int64_t) * (size_t)(nd - 1));
    sal_audit_method grad = {.name = "gradient"};
    au_xopts xo = {.meth = &grad, .target = SAL_TARGET_MAX};
    sal_status st = au_explain(m, &xb, &xo, &g, NULL);
    if (st != SAL_OK) return sal_wrap(st, "targeted shift: gradient of %s", m->path);
    st = sal_shift_image(target, nd - 1, sdim, 1.0, &s);
    if (st == SAL_OK) st = sal_tensor_alloc(out, SAL_F32, nd - 1, sdim);
    if (st == SAL_OK) {
        int64_t n = sal_tensor_numel(&s);
        const float *gx = sal_f32(&g), *xv = sal_f32(x), *sv = sal_f32(&s);
        if (!(scale > 0)) { /* the target at the strength of the true gradient x input */
            scale = 0;
            for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)gx[i] * xv[i]));
            if (scale == 0) scale = 1;
        }
        float *mo = sal_f32(out);
        for (int64_t i = 0; i < n; i++) {
            double v = gx[i] != 0 ? scale * sv[i] / gx[i] - xv[i] : 0;
            mo[i] = (float)fmin(fmax(v, -clip), clip);
        }
    }
    sal_tensor_free(&g);
    sal_tensor_free(&s);
    return st;
}
