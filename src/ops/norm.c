/* BatchNormalization in inference mode: y = scale (x - mean) / sqrt(var + eps) + B per channel. */
#include "ops.h"
#include <math.h>

static sal_status bn_init(sal_node *n, const sal_model *g) {
    (void)g;
    if (sal_attr_int(n, "training_mode", 0) != 0)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "training mode is not supported (inference only)");
    for (int k = 1; k < n->nout; k++)
        if (n->out[k] >= 0)
            return sal_node_fail(n, SAL_ERR_UNSUPPORTED,
                                 "output %d (running or saved statistics of training mode) is not supported", k);
    return SAL_OK;
}

/* Channels C and elements per channel and sample (the product of the spatial dims). */
static sal_status bn_dims(const sal_opctx *c, int64_t *N, int64_t *C, int64_t *S) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0];
    if (x->ndim < 2) return sal_node_fail(c->n, SAL_ERR_SHAPE, "X must have rank >= 2 (N,C,...), got rank %d", x->ndim);
    *N = x->dim[0];
    *C = x->dim[1];
    *S = 1;
    for (int i = 2; i < x->ndim; i++) *S *= x->dim[i];
    static const char *const names[] = {"X", "scale", "B", "mean", "var"};
    for (int i = 1; i < 5; i++) {
        SAL_TRY(sal_need_f32(c, i, -1));
        if (c->in[i]->ndim != 1 || c->in[i]->dim[0] != *C)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "%s must have shape (%lld), the channels of X", names[i],
                                 (long long)*C);
    }
    return SAL_OK;
}

static sal_status bn_infer(sal_opctx *c) {
    int64_t N, C, S;
    SAL_TRY(bn_dims(c, &N, &C, &S));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

static sal_status bn_forward(sal_opctx *c) {
    int64_t N, C, S;
    SAL_TRY(bn_dims(c, &N, &C, &S));
    float eps = sal_attr_float(c->n, "epsilon", 1e-5f);
    const float *x = sal_in_f(c, 0), *sc = sal_in_f(c, 1), *b = sal_in_f(c, 2), *mu = sal_in_f(c, 3),
                *var = sal_in_f(c, 4);
    float *y = sal_out_f(c, 0);
#pragma omp parallel for if (N * C * S > 65536)
    for (int64_t nc = 0; nc < N * C; nc++) {
        int64_t ch = nc % C;
        float a = (float)(sc[ch] / sqrt((double)var[ch] + eps));
        float off = b[ch] - a * mu[ch];
        const float *xx = x + nc * S;
        float *yy = y + nc * S;
        for (int64_t i = 0; i < S; i++) yy[i] = a * xx[i] + off;
    }
    return SAL_OK;
}

/* dX = dY a; dscale = sum dY xhat; dB = sum dY; dmean = -a sum dY;
 * dvar = -scale / 2 (var + eps)^-3/2 sum dY (x - mean). */
static sal_status bn_backward(sal_opctx *c) {
    if (!c->dout[0]) return SAL_OK;
    int64_t N, C, S;
    SAL_TRY(bn_dims(c, &N, &C, &S));
    float eps = sal_attr_float(c->n, "epsilon", 1e-5f);
    const float *x = sal_in_f(c, 0), *sc = sal_in_f(c, 1), *mu = sal_in_f(c, 3), *var = sal_in_f(c, 4),
                *dy = sal_f32(c->dout[0]);
    float *dx = c->din[0] ? sal_f32(c->din[0]) : NULL;
    bool stats = c->din[1] || c->din[2] || c->din[3] || c->din[4];
#pragma omp parallel for if (N * C * S > 65536)
    for (int64_t ch = 0; ch < C; ch++) {
        double inv = 1.0 / sqrt((double)var[ch] + eps), a = sc[ch] * inv;
        double sdy = 0, sdyc = 0; /* sum dY, sum dY (x - mean) */
        for (int64_t n = 0; n < N; n++) {
            const float *xx = x + (n * C + ch) * S, *g = dy + (n * C + ch) * S;
            float *d = dx ? dx + (n * C + ch) * S : NULL;
            for (int64_t i = 0; i < S; i++) {
                if (d) d[i] += (float)(a * g[i]);
                if (stats) {
                    sdy += g[i];
                    sdyc += (double)g[i] * ((double)xx[i] - mu[ch]);
                }
            }
        }
        if (c->din[1]) sal_f32(c->din[1])[ch] += (float)(sdyc * inv);
        if (c->din[2]) sal_f32(c->din[2])[ch] += (float)sdy;
        if (c->din[3]) sal_f32(c->din[3])[ch] -= (float)(a * sdy);
        if (c->din[4]) sal_f32(c->din[4])[ch] += (float)(-0.5 * sc[ch] * inv * inv * inv * sdyc);
    }
    return SAL_OK;
}

const sal_op sal_op_BatchNormalization = {
    SAL_OP_HEAD(BatchNormalization), .traits = SAL_TR_NORM | SAL_TR_MULTILINEAR, .lin_in = 0x1, .min_in = 5, .max_in = 5, .min_out = 1, .max_out = 5, .param_mask = 0x6,
    .init = bn_init, .infer = bn_infer, .forward = bn_forward, .backward = bn_backward,
};
