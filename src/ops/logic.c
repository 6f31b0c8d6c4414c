/* Comparisons (Equal, Less, Greater, LessOrEqual, GreaterOrEqual) and logic (Not, And, Or) with bool
 * outputs, and Where, which picks elements of X or Y by a bool condition. All broadcast as numpy
 * does. Comparisons and logic have no gradient: their outputs are bool. */
#include "ops.h"

#define PAR_MIN 65536

/* Bool outputs carry no gradient, but the walker may still visit the node when one of its inputs
 * leads to a wanted value. */
static sal_status no_grad(sal_opctx *c) {
    (void)c;
    return SAL_OK;
}

static sal_status need_two(const sal_opctx *c) {
    if (!c->in[0] || !c->in[1]) return sal_node_fail(c->n, SAL_ERR_FORMAT, "needs two inputs");
    return SAL_OK;
}

/* ---- comparisons: float32 or int64 (Equal: bool too), both of one type ---- */

typedef enum { C_EQ, C_LT, C_GT, C_LE, C_GE, C_AND, C_OR } cmp_kind;

static sal_status cmp_infer(sal_opctx *c, cmp_kind k) {
    SAL_TRY(need_two(c));
    const sal_tensor *A = c->in[0], *B = c->in[1];
    bool logic = k == C_AND || k == C_OR;
    bool ok = A->dtype == B->dtype &&
              (logic ? A->dtype == SAL_BOOL : A->dtype == SAL_F32 || A->dtype == SAL_I64 || (k == C_EQ && A->dtype == SAL_BOOL));
    if (!ok)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "inputs have data types %s and %s; %s", sal_dtype_name(A->dtype),
                             sal_dtype_name(B->dtype),
                             logic       ? "both must be bool"
                             : k == C_EQ ? "both must be float32, int64 or bool"
                                         : "both must be float32 or int64");
    sal_tensor *o = c->out[0];
    SAL_TRY(sal_bcast_shape(c, 2, (const sal_tensor *const[]){A, B}, &o->ndim, o->dim));
    o->dtype = SAL_BOOL;
    return SAL_OK;
}

#define CMP_LOOP(T, EXPR)                                                                          \
    do {                                                                                           \
        const T *as = c->in[0]->data, *bs = c->in[1]->data;                                        \
        SAL_PAR_FOR(p.n > PAR_MIN, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {   \
            int64_t off[SAL_BC_MAX];                                                               \
            sal_bcast_at(&p, o, off);                                                              \
            for (int64_t j = 0; j < p.inner; j++) {                                                \
                T a = as[off[0] + j * ia], b = bs[off[1] + j * ib];                                \
                y[o * p.inner + j] = (EXPR);                                                       \
            }                                                                                      \
        });                                                                                        \
    } while (0)

#define CMP_TYPED(T)                                                                               \
    switch (k) {                                                                                   \
    case C_EQ: CMP_LOOP(T, a == b); break;                                                         \
    case C_LT: CMP_LOOP(T, a < b); break;                                                          \
    case C_GT: CMP_LOOP(T, a > b); break;                                                          \
    case C_LE: CMP_LOOP(T, a <= b); break;                                                         \
    case C_GE: CMP_LOOP(T, a >= b); break;                                                         \
    case C_AND: CMP_LOOP(T, a && b); break;                                                        \
    case C_OR: CMP_LOOP(T, a || b); break;                                                         \
    }

static sal_status cmp_forward(sal_opctx *c, cmp_kind k) {
    sal_bcast p;
    SAL_TRY(sal_bcast_make(c, 2, (const sal_tensor *const[]){c->in[0], c->in[1]}, &p));
    int64_t ia = p.st[0][p.r - 1], ib = p.st[1][p.r - 1];
    uint8_t *y = c->out[0]->data;
    switch (c->in[0]->dtype) {
    case SAL_F32: CMP_TYPED(float); break;
    case SAL_I64: CMP_TYPED(int64_t); break;
    case SAL_BOOL: CMP_TYPED(uint8_t); break;
    }
    return SAL_OK;
}

#define CMP_OP(NAME, KIND)                                                                         \
    static sal_status NAME##_infer(sal_opctx *c) { return cmp_infer(c, KIND); }                    \
    static sal_status NAME##_forward(sal_opctx *c) { return cmp_forward(c, KIND); }                \
    const sal_op sal_op_##NAME = {                                                                 \
        SAL_OP_HEAD(NAME), .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1,                   \
        .infer = NAME##_infer, .forward = NAME##_forward, .backward = no_grad, .overwrites = true,  \
        .bwd_known = true,                                                                         \
    };

CMP_OP(Equal, C_EQ)
CMP_OP(Less, C_LT)
CMP_OP(Greater, C_GT)
CMP_OP(LessOrEqual, C_LE)
CMP_OP(GreaterOrEqual, C_GE)
CMP_OP(And, C_AND)
CMP_OP(Or, C_OR)

/* ---- Not ---- */

static sal_status not_infer(sal_opctx *c) {
    const sal_tensor *x = c->in[0];
    if (!x) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input 0 is missing");
    if (x->dtype != SAL_BOOL)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "input 0 has data type %s; only bool is supported",
                             sal_dtype_name(x->dtype));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

static sal_status not_forward(sal_opctx *c) {
    const uint8_t *x = c->in[0]->data;
    uint8_t *y = c->out[0]->data;
    int64_t n = sal_tensor_numel(c->in[0]);
    SAL_PAR_FOR(n > PAR_MIN, "omp parallel for", for (int64_t i = 0; i < n; i++) y[i] = !x[i];);
    return SAL_OK;
}

const sal_op sal_op_Not = {
    SAL_OP_HEAD(Not), .min_in = 1, .max_in = 1, .min_out = 1, .max_out = 1,
    .infer = not_infer, .forward = not_forward, .backward = no_grad, .overwrites = true, .bwd_known = true,
};

/* ---- Where(condition, X, Y): X where the condition holds, else Y; X and Y of any one type ---- */

static sal_status where_operands(const sal_opctx *c, sal_bcast *p) {
    return sal_bcast_make(c, 3, (const sal_tensor *const[]){c->in[0], c->in[1], c->in[2]}, p);
}

static sal_status where_infer(sal_opctx *c) {
    const sal_tensor *C = c->in[0], *X = c->in[1], *Y = c->in[2];
    if (!C || !X || !Y) return sal_node_fail(c->n, SAL_ERR_FORMAT, "needs three inputs");
    if (C->dtype != SAL_BOOL)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "the condition has data type %s; it must be bool",
                             sal_dtype_name(C->dtype));
    if (X->dtype != Y->dtype)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "X and Y differ in data type (%s and %s)",
                             sal_dtype_name(X->dtype), sal_dtype_name(Y->dtype));
    sal_tensor *o = c->out[0];
    SAL_TRY(sal_bcast_shape(c, 3, (const sal_tensor *const[]){C, X, Y}, &o->ndim, o->dim));
    o->dtype = X->dtype;
    return SAL_OK;
}

#define WHERE_LOOP(T)                                                                              \
    do {                                                                                           \
        const T *xs = c->in[1]->data, *ys = c->in[2]->data;                                        \
        T *out = c->out[0]->data;                                                                  \
        SAL_PAR_FOR(p.n > PAR_MIN, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {   \
            int64_t off[SAL_BC_MAX];                                                               \
            sal_bcast_at(&p, o, off);                                                              \
            for (int64_t j = 0; j < p.inner; j++)                                                  \
                out[o * p.inner + j] = cs[off[0] + j * s[0]] ? xs[off[1] + j * s[1]] : ys[off[2] + j * s[2]]; \
        });                                                                                        \
    } while (0)

static sal_status where_forward(sal_opctx *c) {
    sal_bcast p;
    SAL_TRY(where_operands(c, &p));
    const uint8_t *cs = c->in[0]->data;
    int64_t s[3] = {p.st[0][p.r - 1], p.st[1][p.r - 1], p.st[2][p.r - 1]};
    switch (sal_dtype_size(c->out[0]->dtype)) {
    case 8: WHERE_LOOP(int64_t); break;
    case 4: WHERE_LOOP(float); break;
    default: WHERE_LOOP(uint8_t); break;
    }
    return SAL_OK;
}

/* The gradient goes to X where the condition holds, to Y elsewhere (summed over broadcast axes). */
static sal_status where_backward(sal_opctx *c) {
    if (!c->dout[0] || c->out[0]->dtype != SAL_F32) return SAL_OK;
    sal_bcast p;
    SAL_TRY(where_operands(c, &p));
    const uint8_t *cs = c->in[0]->data;
    const float *dy = sal_f32(c->dout[0]);
    int64_t s[3] = {p.st[0][p.r - 1], p.st[1][p.r - 1], p.st[2][p.r - 1]};
    for (int w = 1; w <= 2; w++) {
        if (!c->din[w]) continue;
        float *d = sal_f32(c->din[w]);
        bool take = w == 1;
        SAL_PAR_FOR(
            p.n > PAR_MIN && p.numel[w] == p.n, "omp parallel for", for (int64_t o = 0; o < p.nouter; o++) {
                int64_t off[SAL_BC_MAX];
                sal_bcast_at(&p, o, off);
                for (int64_t j = 0; j < p.inner; j++)
                    if ((cs[off[0] + j * s[0]] != 0) == take) d[off[w] + j * s[w]] += dy[o * p.inner + j];
            });
    }
    return SAL_OK;
}

const sal_op sal_op_Where = {
    SAL_OP_HEAD(Where), .traits = SAL_TR_ROUTE, .min_in = 3, .max_in = 3, .min_out = 1, .max_out = 1,
    .infer = where_infer, .forward = where_forward, .backward = where_backward, .overwrites = true,
    .bwd_known = true, .bwd_other = 0x1, /* the condition */
};
