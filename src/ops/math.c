/* Pointwise math and activations: HardSigmoid, HardSwish, Elu, Selu, Softplus, Mish, Gelu, Erf,
 * Exp, Log, Neg, Abs, Sqrt, Reciprocal; the broadcasting binaries PRelu and Pow; the variadic
 * broadcasting Sum, Mean, Min and Max. Formulas and gradients follow ONNX and PyTorch (see
 * docs/onnx.md); where the derivative is undefined (kinks, Pow at x <= 0) we take PyTorch's choice. */
#include "ops.h"
#include <limits.h>
#include <math.h>

#define PAR_MIN 65536 /* below this many elements threads cost more than they save */

/* ---- unary float ops: y = F(x), dx += dy * D(x, y) ---- */

typedef struct {
    float a, b;  /* alpha and beta (HardSigmoid), alpha (Elu), alpha and gamma (Selu) */
    bool tanh;   /* Gelu's tanh approximation */
} act_p;

static sal_status act_init(sal_node *n, const sal_model *g) {
    (void)g;
    act_p *p = sal_calloc(1, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    n->p = p;
    switch (n->op->id) {
    case SAL_OP_HardSigmoid:
        p->a = sal_attr_float(n, "alpha", 0.2f);
        p->b = sal_attr_float(n, "beta", 0.5f);
        break;
    case SAL_OP_Elu: p->a = sal_attr_float(n, "alpha", 1.0f); break;
    case SAL_OP_Selu:
        p->a = sal_attr_float(n, "alpha", 1.67326319217681884765625f);
        p->b = sal_attr_float(n, "gamma", 1.05070102214813232421875f);
        break;
    case SAL_OP_Gelu: {
        const char *m = sal_attr_string(n, "approximate", "none");
        if (strcmp(m, "none") && strcmp(m, "tanh"))
            return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "approximate '%s' is unknown; 'none' and 'tanh' are supported",
                                 m);
        p->tanh = !strcmp(m, "tanh");
        break;
    }
    default: break;
    }
    /* HardSigmoid, Elu and Selu carry SAL_TR_MONOTONE, which a negative alpha (or gamma) would make
     * false; no exporter writes one */
    if (!(p->a >= 0.0f) || (n->op->id == SAL_OP_Selu && !(p->b >= 0.0f)))
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "alpha %g%s: negative values are not supported", p->a,
                             n->op->id == SAL_OP_Selu ? (p->b >= 0.0f ? "" : " or negative gamma") : "");
    return SAL_OK;
}

static sal_status f32_infer(sal_opctx *c) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

static inline float sigmoidf(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x); /* exp of a non-positive number only: no overflow */
    return e / (1.0f + e);
}

/* log(1 + e^x) without overflow for large x or loss for very negative x */
static inline float softplusf(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

static inline float mish_grad(float x) {
    float t = tanhf(softplusf(x));
    return t + x * sigmoidf(x) * (1.0f - t * t);
}

/* min(max(v, 0), 1) in comparisons, which the loops vectorize (fminf and fmaxf were libm calls,
 * 3 ms a call of MobileNetV3's first HardSigmoid); NaN stays NaN, as in PyTorch */
static inline float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* FWD computes y from x; DER the derivative from x and y; both may use the parameters a, b and
 * tanh of act_p (zero when the op has none). The loops on [i0, i1) are compiled for AVX-512 and
 * AVX2 too (HardSigmoid's went element by element in the baseline build: 0.64 ms of MobileNetV3-L's
 * 4.9 ms forward); VEC is UNARY_SIMD where FWD and DER vectorize, UNARY_SCALAR where they call libm
 * (clang refuses, as an error, an omp simd loop it cannot vectorize). */
#define UNARY_SIMD _Pragma("omp simd")
#define UNARY_SCALAR
#define UNARY_OP(NAME, TRAITS, INIT, VEC, FWD, DER)                                                \
    SAL_CLONES void NAME##_run(const act_p *p_, const float *xs, const float *ys, const float *dy, \
                               float *out, int64_t i0, int64_t i1, bool set) {                   \
        const float a = p_ ? p_->a : 0.0f, b = p_ ? p_->b : 0.0f;                                  \
        const bool approx = p_ && p_->tanh;                                                        \
        (void)a, (void)b, (void)approx;                                                            \
        if (!dy) {                                                                                 \
            VEC for (int64_t i = i0; i < i1; i++) {                                                \
                float x = xs[i];                                                                   \
                out[i] = (FWD);                                                                    \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        if (set) /* a fresh gradient buffer: written, not read (bwd_writes) */                    \
            VEC for (int64_t i = i0; i < i1; i++) {                                                \
                float x = xs[i], y = ys[i];                                                        \
                (void)x, (void)y;                                                                  \
                out[i] = dy[i] * (DER);                                                            \
            }                                                                                      \
        else                                                                                       \
            VEC for (int64_t i = i0; i < i1; i++) {                                                \
                float x = xs[i], y = ys[i];                                                        \
                (void)x, (void)y;                                                                  \
                out[i] += dy[i] * (DER);                                                           \
            }                                                                                      \
    }                                                                                              \
    static sal_status NAME##_forward(sal_opctx *c) {                                               \
        int64_t n = sal_tensor_numel(c->in[0]);                                                    \
        SAL_PAR_SPLIT(n > PAR_MIN, n, i0, i1,                                                      \
                      NAME##_run(c->n->p, sal_in_f(c, 0), NULL, NULL, sal_out_f(c, 0), i0, i1, false)); \
        return SAL_OK;                                                                             \
    }                                                                                              \
    static sal_status NAME##_backward(sal_opctx *c) {                                              \
        if (!sal_grad_flows(c)) return SAL_OK;                                                   \
        int64_t n = sal_tensor_numel(c->in[0]);                                                    \
        SAL_PAR_SPLIT(n > PAR_MIN, n, i0, i1,                                                      \
                      NAME##_run(c->n->p, sal_in_f(c, 0), sal_out_f(c, 0), sal_f32(c->dout[0]),    \
                                 sal_f32(c->din[0]), i0, i1, c->din_fresh & 1));                   \
        return SAL_OK;                                                                             \
    }                                                                                              \
    const sal_op sal_op_##NAME = {                                                                 \
        SAL_OP_HEAD(NAME), .traits = TRAITS, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1, \
        .init = INIT, .infer = f32_infer, .forward = NAME##_forward, .backward = NAME##_backward,   \
        .overwrites = true, .bwd_writes = 0x1,                                                     \
    };

/* max(0, min(1, a x + b)); the gradient is a strictly inside (0, 1), as in PyTorch */
UNARY_OP(HardSigmoid, SAL_TR_MONOTONE, act_init, UNARY_SIMD, clamp01(a * x + b),
         (a * x + b > 0.0f && a * x + b < 1.0f) ? a : 0.0f)
/* x HardSigmoid(x) with alpha 1/6, beta 1/2; PyTorch's gradient: 0 below -3, x/3 + 1/2 up to 3 */
UNARY_OP(HardSwish, 0, NULL, UNARY_SIMD, x * clamp01(x * (1.0f / 6.0f) + 0.5f),
         x < -3.0f ? 0.0f : x <= 3.0f ? x * (1.0f / 3.0f) + 0.5f : 1.0f)
UNARY_OP(Elu, SAL_TR_MONOTONE, act_init, UNARY_SCALAR, x > 0.0f ? x : a * expm1f(x), x > 0.0f ? 1.0f : a * expf(x))
UNARY_OP(Selu, SAL_TR_MONOTONE, act_init, UNARY_SCALAR,
         b * (x > 0.0f ? x : a * expm1f(x)), b * (x > 0.0f ? 1.0f : a * expf(x)))
UNARY_OP(Softplus, SAL_TR_MONOTONE, NULL, UNARY_SCALAR, softplusf(x), sigmoidf(x))
/* x tanh(softplus(x)); not monotone (a dip near x = -1.2) */
UNARY_OP(Mish, 0, NULL, UNARY_SCALAR, x * tanhf(softplusf(x)), mish_grad(x))
/* Gelu, Erf and Exp (GELU as exported, attention's exponentials) run on the vectorized sal_vgelu,
 * sal_verf and sal_vexp, in blocks that stay in the L1 cache. */
#define VBLOCK 1024

/* y = f(x) block by block, the blocks spread over the threads */
static sal_status vblock_forward(sal_opctx *c, void (*f)(float *, const float *, int64_t)) {
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                for (int64_t i = 0; i < n; i += VBLOCK) f(y + i, x + i, n - i < VBLOCK ? n - i : VBLOCK););
    return SAL_OK;
}

static sal_status erf_forward(sal_opctx *c) { return vblock_forward(c, sal_verf); }

static sal_status gelu_forward(sal_opctx *c) {
    const bool tf = ((const act_p *)c->n->p)->tanh;
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                for (int64_t i = 0; i < n; i += VBLOCK) sal_vgelu(y + i, x + i, n - i < VBLOCK ? n - i : VBLOCK, tf););
    return SAL_OK;
}

static sal_status gelu_backward(sal_opctx *c) {
    if (!sal_grad_flows(c)) return SAL_OK;
    const bool tf = ((const act_p *)c->n->p)->tanh, set = c->din_fresh & 1;
    const float *x = sal_in_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                for (int64_t i = 0; i < n; i += VBLOCK)
                    sal_vgelu_grad(dx + i, dy + i, x + i, n - i < VBLOCK ? n - i : VBLOCK, tf, set););
    return SAL_OK;
}

const sal_op sal_op_Gelu = {
    SAL_OP_HEAD(Gelu), .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .init = act_init, .infer = f32_infer, .forward = gelu_forward, .backward = gelu_backward, .overwrites = true,
    .bwd_writes = 0x1, .bwd_known = true, .bwd_self = 0x1,
};

static sal_status erf_backward(sal_opctx *c) { /* d erf = 2/sqrt(pi) exp(-x^2) */
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const float *x = sal_in_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR(
        n > PAR_MIN, "omp parallel for", for (int64_t i = 0; i < n; i += VBLOCK) {
            float t[VBLOCK];
            int64_t m = n - i < VBLOCK ? n - i : VBLOCK;
            for (int64_t j = 0; j < m; j++) t[j] = -x[i + j] * x[i + j];
            sal_vexp(t, t, m);
            for (int64_t j = 0; j < m; j++) dx[i + j] += dy[i + j] * 1.1283791670955126f * t[j];
        });
    return SAL_OK;
}

static sal_status exp_forward(sal_opctx *c) { return vblock_forward(c, sal_vexp); }

static sal_status exp_backward(sal_opctx *c) { /* d e^x = e^x = y */
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const float *y = sal_out_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR_SIMD(n > PAR_MIN, for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i];);
    return SAL_OK;
}

const sal_op sal_op_Erf = {
    SAL_OP_HEAD(Erf), .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = f32_infer, .forward = erf_forward, .backward = erf_backward, .overwrites = true,
    .bwd_known = true, .bwd_self = 0x1,
};

const sal_op sal_op_Exp = {
    SAL_OP_HEAD(Exp), .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = f32_infer, .forward = exp_forward, .backward = exp_backward, .overwrites = true,
    .bwd_known = true, .bwd_out = 0x1,
};
UNARY_OP(Log, 0, NULL, UNARY_SCALAR, logf(x), 1.0f / x)
/* the gradient at 0 is infinite, as in PyTorch; sqrtf an instruction (the Makefile's -fno-math-errno) */
UNARY_OP(Sqrt, 0, NULL, UNARY_SIMD, sqrtf(x), 0.5f / y)
UNARY_OP(Reciprocal, 0, NULL, UNARY_SIMD, 1.0f / x, -y * y)

/* ---- Neg and Abs: float32, and int64 for shape arithmetic ---- */

static sal_status f32_i64_infer(sal_opctx *c) {
    const sal_tensor *x = c->in[0];
    if (!x) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input 0 is missing");
    if (x->dtype != SAL_F32 && x->dtype != SAL_I64)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "input 0 has data type %s; only float32 and int64 are supported",
                             sal_dtype_name(x->dtype));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

static sal_status negabs_forward(sal_opctx *c, bool neg) {
    int64_t n = sal_tensor_numel(c->in[0]);
    if (c->in[0]->dtype == SAL_I64) {
        const int64_t *x = c->in[0]->data;
        int64_t *y = c->out[0]->data;
        /* through uint64: -INT64_MIN wraps instead of overflowing */
        for (int64_t i = 0; i < n; i++) y[i] = neg || x[i] < 0 ? (int64_t)(0 - (uint64_t)x[i]) : x[i];
        return SAL_OK;
    }
    const float *x = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    SAL_PAR_FOR(n > PAR_MIN, "omp parallel for", for (int64_t i = 0; i < n; i++) y[i] = neg ? -x[i] : fabsf(x[i]););
    return SAL_OK;
}

/* Abs at 0 gets gradient 0 (PyTorch's sign). */
static sal_status negabs_backward(sal_opctx *c, bool neg) {
    if (!c->din[0] || !c->dout[0] || c->in[0]->dtype != SAL_F32) return SAL_OK;
    const float *x = sal_in_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                for (int64_t i = 0; i < n; i++) dx[i] += neg           ? -dy[i]
                                                         : x[i] > 0.0f ? dy[i]
                                                         : x[i] < 0.0f ? -dy[i]
                                                                       : 0.0f;);
    return SAL_OK;
}

static sal_status neg_forward(sal_opctx *c) { return negabs_forward(c, true); }
static sal_status neg_backward(sal_opctx *c) { return negabs_backward(c, true); }
static sal_status abs_forward(sal_opctx *c) { return negabs_forward(c, false); }
static sal_status abs_backward(sal_opctx *c) { return negabs_backward(c, false); }

const sal_op sal_op_Neg = {
    SAL_OP_HEAD(Neg), .traits = SAL_TR_ADDITIVE, .lin_in = 0x1, .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = f32_i64_infer, .forward = neg_forward, .backward = neg_backward, .overwrites = true,
};

const sal_op sal_op_Abs = {
    SAL_OP_HEAD(Abs), .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = f32_i64_infer, .forward = abs_forward, .backward = abs_backward, .overwrites = true,
};

/* ---- PRelu: y = x for x > 0, slope x otherwise; the slope broadcasts to x's shape ---- */

static sal_status prelu_infer(sal_opctx *c) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    SAL_TRY(sal_need_f32(c, 1, -1));
    int nd;
    int64_t d[SAL_MAX_DIMS];
    const sal_tensor *x = c->in[0], *s = c->in[1];
    SAL_TRY(sal_bcast_shape(c, 2, (const sal_tensor *const[]){x, s}, &nd, d));
    bool same = nd == x->ndim;
    for (int i = 0; same && i < nd; i++) same = d[i] == x->dim[i];
    if (!same) {
        char a[160], b[160];
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "slope %s does not broadcast to the input's shape %s",
                             sal_shape_str(s->ndim, s->dim, b, sizeof b), sal_shape_str(x->ndim, x->dim, a, sizeof a));
    }
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

static sal_status prelu_forward(sal_opctx *c) {
    sal_bcast p;
    SAL_TRY(sal_bcast_make(c, 2, (const sal_tensor *const[]){c->in[0], c->in[1]}, &p));
    const float *x = sal_in_f(c, 0), *s = sal_in_f(c, 1);
    float *y = sal_out_f(c, 0);
    int64_t is = p.st[1][p.r - 1];
    SAL_PAR_FOR(
        p.n > PAR_MIN, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {
            int64_t off[SAL_BC_MAX];
            sal_bcast_at(&p, o, off);
            for (int64_t j = 0; j < p.inner; j++) {
                float v = x[off[0] + j];
                y[off[0] + j] = v > 0.0f ? v : s[off[1] + j * is] * v;
            }
        });
    return SAL_OK;
}

/* PyTorch's choice at x = 0: the slope side for x, nothing for the slope (x = 0 there anyway). */
static sal_status prelu_backward(sal_opctx *c) {
    if (!c->dout[0]) return SAL_OK;
    sal_bcast p;
    SAL_TRY(sal_bcast_make(c, 2, (const sal_tensor *const[]){c->in[0], c->in[1]}, &p));
    const float *x = sal_in_f(c, 0), *s = sal_in_f(c, 1), *dy = sal_f32(c->dout[0]);
    float *dx = c->din[0] ? sal_f32(c->din[0]) : NULL, *ds = c->din[1] ? sal_f32(c->din[1]) : NULL;
    int64_t is = p.st[1][p.r - 1];
    /* several outputs add into one slope element unless it is not broadcast */
    SAL_PAR_FOR(
        p.n > PAR_MIN && (!ds || p.numel[1] == p.n), "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {
            int64_t off[SAL_BC_MAX];
            sal_bcast_at(&p, o, off);
            for (int64_t j = 0; j < p.inner; j++) {
                float v = x[off[0] + j], g = dy[off[0] + j];
                if (dx) dx[off[0] + j] += v > 0.0f ? g : s[off[1] + j * is] * g;
                if (ds && !(v > 0.0f)) ds[off[1] + j * is] += v * g;
            }
        });
    return SAL_OK;
}

const sal_op sal_op_PRelu = {
    SAL_OP_HEAD(PRelu), .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1, .param_mask = 0x2,
    .infer = prelu_infer, .forward = prelu_forward, .backward = prelu_backward, .overwrites = true,
};

/* ---- Mod(A, B) with broadcasting, both float32 or both int64. fmod = 0 (integers only): the
 * remainder takes the divisor's sign (Python's %); fmod = 1: the dividend's (C's fmod, %).
 * Gradients (float32) as PyTorch's fmod: dA = 1, dB = -trunc(A / B). ---- */

static sal_status mod_infer(sal_opctx *c) {
    const sal_tensor *a = c->in[0], *b = c->in[1];
    if (!a || !b) return sal_node_fail(c->n, SAL_ERR_FORMAT, "needs two inputs");
    if (a->dtype != b->dtype || (a->dtype != SAL_F32 && a->dtype != SAL_I64))
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "inputs have data types %s and %s; both must be float32 or int64",
                             sal_dtype_name(a->dtype), sal_dtype_name(b->dtype));
    if (a->dtype == SAL_F32 && !sal_attr_int(c->n, "fmod", 0))
        return sal_node_fail(c->n, SAL_ERR_FORMAT, "float inputs need fmod = 1");
    sal_tensor *o = c->out[0];
    SAL_TRY(sal_bcast_shape(c, 2, (const sal_tensor *const[]){a, b}, &o->ndim, o->dim));
    o->dtype = a->dtype;
    return SAL_OK;
}

static sal_status mod_forward(sal_opctx *c) {
    sal_bcast p;
    SAL_TRY(sal_bcast_make(c, 2, (const sal_tensor *const[]){c->in[0], c->in[1]}, &p));
    int64_t ia = p.st[0][p.r - 1], ib = p.st[1][p.r - 1];
    bool fm = sal_attr_int(c->n, "fmod", 0) != 0;
    if (c->in[0]->dtype == SAL_F32) {
        const float *a = sal_f32(c->in[0]), *b = sal_f32(c->in[1]);
        float *y = sal_out_f(c, 0);
        SAL_PAR_FOR(
            p.n > PAR_MIN, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {
                int64_t off[SAL_BC_MAX];
                sal_bcast_at(&p, o, off);
                for (int64_t j = 0; j < p.inner; j++)
                    y[o * p.inner + j] = fmodf(a[off[0] + j * ia], b[off[1] + j * ib]);
            });
        return SAL_OK;
    }
    /* int64: shape arithmetic, small */
    const int64_t *a = c->in[0]->data, *b = c->in[1]->data;
    int64_t *y = c->out[0]->data;
    for (int64_t o = 0; o < p.nouter; o++) {
        int64_t off[SAL_BC_MAX];
        sal_bcast_at(&p, o, off);
        for (int64_t j = 0; j < p.inner; j++) {
            int64_t u = a[off[0] + j * ia], v = b[off[1] + j * ib], k = o * p.inner + j;
            if (v == 0) return sal_node_fail(c->n, SAL_ERR_NUMERIC, "integer division by zero at flat index %lld", (long long)k);
            int64_t r = v == -1 ? 0 : u % v; /* INT64_MIN % -1 overflows in C */
            y[k] = !fm && r != 0 && (r < 0) != (v < 0) ? r + v : r;
        }
    }
    return SAL_OK;
}

static sal_status mod_backward(sal_opctx *c) {
    if (!c->dout[0] || c->in[0]->dtype != SAL_F32) return SAL_OK;
    sal_bcast p;
    SAL_TRY(sal_bcast_make(c, 2, (const sal_tensor *const[]){c->in[0], c->in[1]}, &p));
    int64_t ia = p.st[0][p.r - 1], ib = p.st[1][p.r - 1];
    const float *a = sal_f32(c->in[0]), *b = sal_f32(c->in[1]), *dy = sal_f32(c->dout[0]);
    for (int w = 0; w < 2; w++) {
        float *d = c->din[w] ? sal_f32(c->din[w]) : NULL;
        if (!d) continue;
        SAL_PAR_FOR(
            p.n > PAR_MIN && p.numel[w] == p.n, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {
                int64_t off[SAL_BC_MAX];
                sal_bcast_at(&p, o, off);
                for (int64_t j = 0; j < p.inner; j++) {
                    float g = dy[o * p.inner + j];
                    if (w == 0)
                        d[off[0] + j * ia] += g;
                    else
                        d[off[1] + j * ib] -= g * truncf(a[off[0] + j * ia] / b[off[1] + j * ib]);
                }
            });
    }
    return SAL_OK;
}

const sal_op sal_op_Mod = {
    SAL_OP_HEAD(Mod), .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = mod_infer, .forward = mod_forward, .backward = mod_backward, .overwrites = true,
};

/* ---- Pow: x^y with broadcasting. Base float32 or int64 (the output's type), exponent float32 or
 * int64. Gradients (float32 base) as PyTorch's pow_backward:
 *   d/dx = y x^(y-1), and 0 where y = 0 (also at x = 0);
 *   d/dy = x^y log(x), and 0 where x = 0 and y >= 0; NaN for x < 0 (log of a negative number),
 *   -Inf for x = 0 and y < 0. ---- */

static sal_status pow_infer(sal_opctx *c) {
    const sal_tensor *x = c->in[0], *e = c->in[1];
    for (int i = 0; i < 2; i++) {
        const sal_tensor *t = c->in[i];
        if (!t) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input %d is missing", i);
        if (t->dtype != SAL_F32 && t->dtype != SAL_I64)
            return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED,
                                 "input %d has data type %s; only float32 and int64 are supported", i,
                                 sal_dtype_name(t->dtype));
    }
    sal_tensor *o = c->out[0];
    SAL_TRY(sal_bcast_shape(c, 2, (const sal_tensor *const[]){x, e}, &o->ndim, o->dim));
    o->dtype = x->dtype;
    return SAL_OK;
}

static inline double elem_d(const sal_tensor *t, int64_t i) {
    return t->dtype == SAL_F32 ? (double)sal_f32(t)[i] : (double)((const int64_t *)t->data)[i];
}

static sal_status pow_forward(sal_opctx *c) {
    sal_bcast p;
    const sal_tensor *X = c->in[0], *E = c->in[1];
    SAL_TRY(sal_bcast_make(c, 2, (const sal_tensor *const[]){X, E}, &p));
    int64_t ix = p.st[0][p.r - 1], ie = p.st[1][p.r - 1];
    if (X->dtype == SAL_F32 && E->dtype == SAL_F32) {
        const float *x = sal_f32(X), *e = sal_f32(E);
        float *y = sal_out_f(c, 0);
        if (sal_tensor_numel(E) == 1 && e[0] == 2.0f) { /* x^2 (LayerNorm's variance as exported): exact */
            int64_t n = sal_tensor_numel(X);
            SAL_PAR_FOR_SIMD(n > PAR_MIN, for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];);
            return SAL_OK;
        }
        SAL_PAR_FOR(
            p.n > PAR_MIN, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {
                int64_t off[SAL_BC_MAX];
                sal_bcast_at(&p, o, off);
                for (int64_t j = 0; j < p.inner; j++) y[o * p.inner + j] = powf(x[off[0] + j * ix], e[off[1] + j * ie]);
            });
        return SAL_OK;
    }
    /* mixed or integer types (shape arithmetic, small): in double, then to the base's type */
    for (int64_t o = 0; o < p.nouter; o++) {
        int64_t off[SAL_BC_MAX];
        sal_bcast_at(&p, o, off);
        for (int64_t j = 0; j < p.inner; j++) {
            double v = pow(elem_d(X, off[0] + j * ix), elem_d(E, off[1] + j * ie));
            int64_t k = o * p.inner + j;
            if (X->dtype == SAL_F32) {
                sal_out_f(c, 0)[k] = (float)v;
            } else {
                /* out-of-range conversion to an integer is undefined behaviour in C */
                if (!(v >= -9.2233720368547758e18 && v < 9.2233720368547758e18))
                    return sal_node_fail(c->n, SAL_ERR_NUMERIC, "int64 power %g at flat index %lld is out of range", v,
                                         (long long)k);
                ((int64_t *)c->out[0]->data)[k] = (int64_t)v; /* truncated toward zero */
            }
        }
    }
    return SAL_OK;
}

static sal_status pow_backward(sal_opctx *c) {
    if (!c->dout[0] || c->in[0]->dtype != SAL_F32) return SAL_OK;
    sal_bcast p;
    const sal_tensor *X = c->in[0], *E = c->in[1];
    SAL_TRY(sal_bcast_make(c, 2, (const sal_tensor *const[]){X, E}, &p));
    int64_t ix = p.st[0][p.r - 1], ie = p.st[1][p.r - 1];
    const float *x = sal_f32(X), *y = sal_out_f(c, 0), *dy = sal_f32(c->dout[0]);
    float *dx = c->din[0] ? sal_f32(c->din[0]) : NULL, *de = c->din[1] ? sal_f32(c->din[1]) : NULL;
    if (dx && !de && E->dtype == SAL_F32 && sal_tensor_numel(E) == 1 && sal_f32(E)[0] == 2.0f) { /* d x^2 = 2x */
        int64_t n = sal_tensor_numel(X);
        SAL_PAR_FOR_SIMD(n > PAR_MIN, for (int64_t i = 0; i < n; i++) dx[i] += 2.0f * x[i] * dy[i];);
        return SAL_OK;
    }
    for (int w = 0; w < 2; w++) {
        float *d = w ? de : dx;
        if (!d) continue;
        SAL_PAR_FOR(
            p.n > PAR_MIN && p.numel[w] == p.n, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {
                int64_t off[SAL_BC_MAX];
                sal_bcast_at(&p, o, off);
                for (int64_t j = 0; j < p.inner; j++) {
                    int64_t k = o * p.inner + j, a = off[0] + j * ix, b = off[1] + j * ie;
                    float xv = x[a], ev = (float)elem_d(E, b), g = dy[k];
                    if (w == 0)
                        d[a] += ev == 0.0f ? 0.0f : g * ev * powf(xv, ev - 1.0f);
                    else
                        d[b] += xv == 0.0f && ev >= 0.0f ? 0.0f : g * y[k] * logf(xv);
                }
            });
    }
    return SAL_OK;
}

const sal_op sal_op_Pow = {
    SAL_OP_HEAD(Pow), .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = pow_infer, .forward = pow_forward, .backward = pow_backward, .overwrites = true,
};

/* ---- Sum, Mean, Min, Max: any number of inputs, broadcast together. Each input is folded into the
 * output through a two-operand plan (output, input), so the count of inputs is unbounded. ---- */

typedef enum { V_SUM, V_MEAN, V_MIN, V_MAX } var_kind;

static sal_status var_infer(sal_opctx *c, var_kind k) {
    for (int i = 0; i < c->n->nin; i++) {
        const sal_tensor *t = c->in[i];
        if (!t) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input %d is missing", i);
        bool ok = t->dtype == SAL_F32 || (t->dtype == SAL_I64 && k != V_MEAN);
        if (!ok || t->dtype != c->in[0]->dtype)
            return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED,
                                 "input %d has data type %s (input 0: %s); all inputs must be float32%s", i,
                                 sal_dtype_name(t->dtype), sal_dtype_name(c->in[0]->dtype),
                                 k == V_MEAN ? "" : ", or all int64");
    }
    sal_tensor *o = c->out[0];
    SAL_TRY(sal_bcast_shape(c, c->n->nin, (const sal_tensor *const *)c->in, &o->ndim, o->dim));
    o->dtype = c->in[0]->dtype;
    return SAL_OK;
}

static sal_status var_pair(const sal_opctx *c, int i, sal_bcast *p) {
    return sal_bcast_make(c, 2, (const sal_tensor *const[]){c->out[0], c->in[i]}, p);
}

/* y = x (first) or y = y op x for one input, with the output contiguous (operand 0) */
#define VAR_FOLD(T, EXPR)                                                                          \
    do {                                                                                           \
        const T *xs = c->in[i]->data;                                                              \
        T *ys = c->out[0]->data;                                                                   \
        SAL_PAR_FOR(p.n > PAR_MIN, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {   \
            int64_t off[SAL_BC_MAX];                                                               \
            sal_bcast_at(&p, o, off);                                                              \
            T *yy = ys + o * p.inner;                                                              \
            const T *xx = xs + off[1];                                                             \
            for (int64_t j = 0; j < p.inner; j++) {                                                \
                T x = xx[j * ix], y = yy[j];                                                       \
                yy[j] = i == 0 ? x : (EXPR);                                                       \
            }                                                                                      \
        });                                                                                        \
    } while (0)

static sal_status var_forward(sal_opctx *c, var_kind k) {
    bool f = c->out[0]->dtype == SAL_F32;
    for (int i = 0; i < c->n->nin; i++) {
        sal_bcast p;
        SAL_TRY(var_pair(c, i, &p));
        int64_t ix = p.st[1][p.r - 1];
        /* NaN propagates through Min and Max, as in numpy and PyTorch */
        switch (k) {
        case V_SUM:
        case V_MEAN:
            if (f) VAR_FOLD(float, y + x);
            else VAR_FOLD(int64_t, (int64_t)((uint64_t)y + (uint64_t)x));
            break;
        case V_MIN:
            if (f) VAR_FOLD(float, x < y || isnan(x) ? x : y);
            else VAR_FOLD(int64_t, x < y ? x : y);
            break;
        case V_MAX:
            if (f) VAR_FOLD(float, x > y || isnan(x) ? x : y);
            else VAR_FOLD(int64_t, x > y ? x : y);
            break;
        }
    }
    if (k == V_MEAN) {
        float *y = sal_out_f(c, 0), s = 1.0f / (float)c->n->nin;
        int64_t n = sal_tensor_numel(c->out[0]);
        SAL_PAR_FOR(n > PAR_MIN, "omp parallel for", for (int64_t j = 0; j < n; j++) y[j] *= s;);
    }
    return SAL_OK;
}

/* Sum and Mean pass the gradient (over N) to every input, summed over its broadcast axes. Min and Max
 * pass it to the inputs equal to the output, shared evenly among ties (PyTorch's maximum and minimum
 * split a tie between their two inputs the same way). */
static sal_status var_backward(sal_opctx *c, var_kind k) {
    if (!c->dout[0] || c->out[0]->dtype != SAL_F32) return SAL_OK;
    const float *dy = sal_f32(c->dout[0]), *y = sal_out_f(c, 0);
    int64_t n = sal_tensor_numel(c->out[0]);
    float *share = NULL; /* Min, Max: 1 / (number of inputs equal to the output) */
    if (k == V_MIN || k == V_MAX) {
        if (!(share = sal_scratch_get(c->ws, 0, (size_t)n * sizeof *share)))
            return sal_node_fail(c->n, SAL_ERR_NOMEM, "%s", sal_last_error());
        memset(share, 0, (size_t)n * sizeof *share);
        for (int i = 0; i < c->n->nin; i++) {
            sal_bcast p;
            SAL_TRY(var_pair(c, i, &p));
            const float *x = sal_in_f(c, i);
            int64_t ix = p.st[1][p.r - 1];
            SAL_PAR_FOR(
                p.n > PAR_MIN, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {
                    int64_t off[SAL_BC_MAX];
                    sal_bcast_at(&p, o, off);
                    for (int64_t j = 0; j < p.inner; j++)
                        share[o * p.inner + j] += x[off[1] + j * ix] == y[o * p.inner + j];
                });
        }
        SAL_PAR_FOR(n > PAR_MIN, "omp parallel for",
                    for (int64_t j = 0; j < n; j++) share[j] = share[j] > 0.0f ? 1.0f / share[j] : 0.0f;);
    }
    float scale = k == V_MEAN ? 1.0f / (float)c->n->nin : 1.0f;
    for (int i = 0; i < c->n->nin; i++) {
        if (!c->din[i]) continue;
        sal_bcast p;
        SAL_TRY(var_pair(c, i, &p));
        const float *x = sal_in_f(c, i);
        float *dx = sal_f32(c->din[i]);
        int64_t ix = p.st[1][p.r - 1];
        SAL_PAR_FOR(
            p.n > PAR_MIN && p.numel[1] == p.n, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {
                int64_t off[SAL_BC_MAX];
                sal_bcast_at(&p, o, off);
                for (int64_t j = 0; j < p.inner; j++) {
                    int64_t q = o * p.inner + j, a = off[1] + j * ix;
                    if (share)
                        dx[a] += x[a] == y[q] ? dy[q] * share[q] : 0.0f;
                    else
                        dx[a] += dy[q] * scale;
                }
            });
    }
    return SAL_OK;
}

#define VAR_OP(NAME, KIND, ...)                                                                    \
    static sal_status NAME##_infer(sal_opctx *c) { return var_infer(c, KIND); }                    \
    static sal_status NAME##_forward(sal_opctx *c) { return var_forward(c, KIND); }                \
    static sal_status NAME##_backward(sal_opctx *c) { return var_backward(c, KIND); }              \
    const sal_op sal_op_##NAME = {                                                                 \
        SAL_OP_HEAD(NAME), .min_in = 1, .max_in = INT_MAX, .min_out = 1, .max_out = 1,             \
        .infer = NAME##_infer, .forward = NAME##_forward, .backward = NAME##_backward,             \
        .overwrites = true, __VA_ARGS__                                                            \
    };

/* inputs past the 31st fold into bit 31 of the walker's mask (sal_din_mask): all bits cover them */
VAR_OP(Sum, V_SUM, .traits = SAL_TR_ADDITIVE, .lin_in = 0xffffffffu)
VAR_OP(Mean, V_MEAN, .traits = SAL_TR_ADDITIVE, .lin_in = 0xffffffffu)
VAR_OP(Min, V_MIN)
VAR_OP(Max, V_MAX)
