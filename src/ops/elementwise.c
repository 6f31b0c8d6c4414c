/* Add, Sub, Mul, Div with numpy broadcasting, on float32 and int64 (shape arithmetic). */
#include "ops.h"

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV } bin_kind;

/* The output's index space with each operand's element strides (0 along broadcast dimensions).
 * Size-1 dimensions are dropped and runs of dimensions that both operands walk contiguously are
 * merged, so the innermost loop is as long as possible. */
typedef struct {
    int r;
    int64_t dim[SAL_MAX_DIMS], sa[SAL_MAX_DIMS], sb[SAL_MAX_DIMS];
    int64_t n, inner, na, nb;
} bin_plan;

static sal_status bin_plan_make(const sal_opctx *c, bin_plan *p) {
    const sal_tensor *A = c->in[0], *B = c->in[1];
    int nd;
    int64_t od[SAL_MAX_DIMS];
    if (!sal_broadcast_shape(A, B, &nd, od)) {
        char a[160], b[160];
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "shapes %s and %s do not broadcast",
                             sal_shape_str(A->ndim, A->dim, a, sizeof a), sal_shape_str(B->ndim, B->dim, b, sizeof b));
    }
    int64_t sa[SAL_MAX_DIMS], sb[SAL_MAX_DIMS], acca = 1, accb = 1;
    for (int i = nd - 1; i >= 0; i--) {
        int ia = i - (nd - A->ndim), ib = i - (nd - B->ndim);
        int64_t da = ia >= 0 ? A->dim[ia] : 1, db = ib >= 0 ? B->dim[ib] : 1;
        sa[i] = da == 1 ? 0 : acca;
        sb[i] = db == 1 ? 0 : accb;
        acca *= da;
        accb *= db;
    }
    memset(p, 0, sizeof *p);
    p->na = acca;
    p->nb = accb;
    p->n = 1;
    for (int i = 0; i < nd; i++) {
        p->n *= od[i];
        if (od[i] == 1) continue;
        int k = p->r - 1;
        if (k >= 0 && p->sa[k] == sa[i] * od[i] && p->sb[k] == sb[i] * od[i]) {
            p->dim[k] *= od[i];
            p->sa[k] = sa[i];
            p->sb[k] = sb[i];
            continue;
        }
        p->dim[p->r] = od[i];
        p->sa[p->r] = sa[i];
        p->sb[p->r] = sb[i];
        p->r++;
    }
    if (p->r == 0) { /* every dimension is 1: one element */
        p->r = 1;
        p->dim[0] = 1;
    }
    p->inner = p->dim[p->r - 1];
    return SAL_OK;
}

/* Operand offsets of the first element of inner run o. */
static inline void bin_offsets(const bin_plan *p, int64_t o, int64_t *oa, int64_t *ob) {
    *oa = *ob = 0;
    for (int k = p->r - 2; k >= 0; k--) {
        int64_t i = o % p->dim[k];
        o /= p->dim[k];
        *oa += i * p->sa[k];
        *ob += i * p->sb[k];
    }
}

static sal_status bin_infer(sal_opctx *c) {
    const sal_tensor *A = c->in[0], *B = c->in[1];
    if (!A || !B) return sal_node_fail(c->n, SAL_ERR_FORMAT, "needs two inputs");
    if ((A->dtype != SAL_F32 && A->dtype != SAL_I64) || A->dtype != B->dtype)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED,
                             "inputs have data types %d and %d; only two float32 or two int64 are supported",
                             (int)A->dtype, (int)B->dtype);
    sal_tensor *o = c->out[0];
    if (!sal_broadcast_shape(A, B, &o->ndim, o->dim)) {
        char a[160], b[160];
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "shapes %s and %s do not broadcast",
                             sal_shape_str(A->ndim, A->dim, a, sizeof a), sal_shape_str(B->ndim, B->dim, b, sizeof b));
    }
    o->dtype = A->dtype;
    return SAL_OK;
}

#define BIN_LOOP(T, EXPR)                                                                          \
    do {                                                                                           \
        const T *a_ = (const T *)c->in[0]->data, *b_ = (const T *)c->in[1]->data;                  \
        T *y_ = (T *)c->out[0]->data;                                                              \
        _Pragma("omp parallel for if (p.n > 65536)") for (int64_t o = 0; o < nouter; o++) {       \
            int64_t oa, ob;                                                                        \
            bin_offsets(&p, o, &oa, &ob);                                                          \
            const T *x_ = a_ + oa, *z_ = b_ + ob;                                                  \
            T *yy_ = y_ + o * p.inner;                                                             \
            for (int64_t j = 0; j < p.inner; j++) {                                                \
                T x = x_[j * ia], z = z_[j * ib];                                                  \
                yy_[j] = (EXPR);                                                                   \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static sal_status bin_forward(sal_opctx *c, bin_kind k) {
    bin_plan p;
    SAL_TRY(bin_plan_make(c, &p));
    if (p.n == 0) return SAL_OK;
    int64_t nouter = p.n / p.inner, ia = p.sa[p.r - 1], ib = p.sb[p.r - 1];
    if (c->in[0]->dtype == SAL_F32) {
        switch (k) {
        case BIN_ADD: BIN_LOOP(float, x + z); break;
        case BIN_SUB: BIN_LOOP(float, x - z); break;
        case BIN_MUL: BIN_LOOP(float, x * z); break;
        case BIN_DIV: BIN_LOOP(float, x / z); break;
        }
        return SAL_OK;
    }
    if (k == BIN_DIV) { /* integer division by zero is undefined behaviour in C: refuse it */
        const int64_t *b = c->in[1]->data;
        for (int64_t i = 0; i < p.nb; i++)
            if (b[i] == 0) return sal_node_fail(c->n, SAL_ERR_NUMERIC, "int64 division by zero");
    }
    /* wrap-around instead of signed-overflow UB on forged shape values */
    switch (k) {
    case BIN_ADD: BIN_LOOP(int64_t, (int64_t)((uint64_t)x + (uint64_t)z)); break;
    case BIN_SUB: BIN_LOOP(int64_t, (int64_t)((uint64_t)x - (uint64_t)z)); break;
    case BIN_MUL: BIN_LOOP(int64_t, (int64_t)((uint64_t)x * (uint64_t)z)); break;
    case BIN_DIV: BIN_LOOP(int64_t, (z == -1) ? (int64_t)(0 - (uint64_t)x) : x / z); break;
    }
    return SAL_OK;
}

/* dL/dA or dL/dB (which = 0 or 1). Runs in parallel only when the operand is not broadcast, as
 * otherwise several outputs add into one element. */
static void bin_grad(const sal_opctx *c, const bin_plan *p, bin_kind k, int which) {
    const float *a = sal_in_f(c, 0), *b = sal_in_f(c, 1), *dy = sal_f32(c->dout[0]);
    float *d = sal_f32(c->din[which]);
    int64_t nouter = p->n / p->inner, ia = p->sa[p->r - 1], ib = p->sb[p->r - 1];
#pragma omp parallel for if (p->n > 65536 && (which ? p->nb : p->na) == p->n)
    for (int64_t o = 0; o < nouter; o++) {
        int64_t oa, ob;
        bin_offsets(p, o, &oa, &ob);
        const float *g = dy + o * p->inner, *x = a + oa, *z = b + ob;
        float *dd = d + (which ? ob : oa);
        int64_t s = which ? ib : ia;
        for (int64_t j = 0; j < p->inner; j++) {
            float v = g[j];
            switch (k) {
            case BIN_ADD: break;
            case BIN_SUB: v = which ? -v : v; break;
            case BIN_MUL: v *= which ? x[j * ia] : z[j * ib]; break;
            case BIN_DIV: {
                float zz = z[j * ib];
                v = which ? -v * x[j * ia] / (zz * zz) : v / zz;
                break;
            }
            }
            dd[j * s] += v;
        }
    }
}

static sal_status bin_backward(sal_opctx *c, bin_kind k) {
    if (!c->dout[0] || c->in[0]->dtype != SAL_F32) return SAL_OK;
    bin_plan p;
    SAL_TRY(bin_plan_make(c, &p));
    if (p.n == 0) return SAL_OK;
    for (int w = 0; w < 2; w++)
        if (c->din[w]) bin_grad(c, &p, k, w);
    return SAL_OK;
}

#define BIN_OP(NAME, KIND, ...)                                                                            \
    static sal_status NAME##_forward(sal_opctx *c) { return bin_forward(c, KIND); }               \
    static sal_status NAME##_backward(sal_opctx *c) { return bin_backward(c, KIND); }             \
    const sal_op sal_op_##NAME = {                                                                 \
        SAL_OP_HEAD(NAME), .traits = __VA_ARGS__, .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1, .param_mask = 0x2,   \
        .infer = bin_infer, .forward = NAME##_forward, .backward = NAME##_backward,               \
    };

BIN_OP(Add, BIN_ADD, SAL_TR_ARITH | SAL_TR_ADDITIVE, .lin_in = 0x3)
BIN_OP(Sub, BIN_SUB, SAL_TR_ARITH | SAL_TR_ADDITIVE, .lin_in = 0x3)
BIN_OP(Mul, BIN_MUL, SAL_TR_ARITH | SAL_TR_MULTILINEAR, .lin_in = 0x3)
BIN_OP(Div, BIN_DIV, SAL_TR_ARITH | SAL_TR_MULTILINEAR, .lin_in = 0x1)
