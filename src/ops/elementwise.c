/* Add, Sub, Mul, Div with numpy broadcasting, on float32 and int64 (shape arithmetic), and the
 * broadcasting plan (sal_bcast) that the other elementwise files share. */
#include "ops.h"

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV } bin_kind;

/* ---- numpy broadcasting, shared by the elementwise ops of other files (ops.h) ---- */

sal_status sal_bcast_shape(const sal_opctx *c, int nop, const sal_tensor *const *t, int *ndim, int64_t *dim) {
    sal_tensor acc = {.ndim = 0}, next;
    for (int k = 0; k < nop; k++, acc = next) {
        if (!sal_broadcast_shape(&acc, t[k], &next.ndim, next.dim)) {
            char a[160], b[160];
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "shapes %s and %s do not broadcast",
                                 sal_shape_str(acc.ndim, acc.dim, a, sizeof a),
                                 sal_shape_str(t[k]->ndim, t[k]->dim, b, sizeof b));
        }
    }
    *ndim = acc.ndim;
    memcpy(dim, acc.dim, sizeof acc.dim);
    return SAL_OK;
}

sal_status sal_bcast_make(const sal_opctx *c, int nop, const sal_tensor *const *t, sal_bcast *p) {
    SAL_ASSERT(nop >= 1 && nop <= SAL_BC_MAX);
    int nd;
    int64_t od[SAL_MAX_DIMS], st[SAL_BC_MAX][SAL_MAX_DIMS], acc[SAL_BC_MAX];
    SAL_TRY(sal_bcast_shape(c, nop, t, &nd, od));
    memset(p, 0, sizeof *p);
    p->nop = nop;
    for (int k = 0; k < nop; k++) {
        acc[k] = 1;
        for (int i = nd - 1; i >= 0; i--) {
            int j = i - (nd - t[k]->ndim);
            int64_t d = j >= 0 ? t[k]->dim[j] : 1;
            st[k][i] = d == 1 ? 0 : acc[k];
            acc[k] *= d;
        }
        p->numel[k] = acc[k];
    }
    p->n = 1;
    for (int i = 0; i < nd; i++) {
        p->n *= od[i];
        if (od[i] == 1) continue;
        int r = p->r - 1;
        bool merge = r >= 0;
        for (int k = 0; k < nop && merge; k++) merge = p->st[k][r] == st[k][i] * od[i];
        if (merge) {
            p->dim[r] *= od[i];
        } else {
            r = p->r++;
            p->dim[r] = od[i];
        }
        for (int k = 0; k < nop; k++) p->st[k][r] = st[k][i];
    }
    if (p->r == 0) { /* every dimension is 1: one element */
        p->r = 1;
        p->dim[0] = 1;
    }
    p->inner = p->dim[p->r - 1];
    p->nouter = p->n / p->inner;
    return SAL_OK;
}

static sal_status bin_plan_make(const sal_opctx *c, sal_bcast *p) {
    return sal_bcast_make(c, 2, (const sal_tensor *const[]){c->in[0], c->in[1]}, p);
}

static sal_status bin_infer(sal_opctx *c) {
    const sal_tensor *A = c->in[0], *B = c->in[1];
    if (!A || !B) return sal_node_fail(c->n, SAL_ERR_FORMAT, "needs two inputs");
    if ((A->dtype != SAL_F32 && A->dtype != SAL_I64) || A->dtype != B->dtype)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED,
                             "inputs have data types %s and %s; only two float32 or two int64 are supported",
                             sal_dtype_name(A->dtype), sal_dtype_name(B->dtype));
    sal_tensor *o = c->out[0];
    SAL_TRY(sal_bcast_shape(c, 2, (const sal_tensor *const[]){A, B}, &o->ndim, o->dim));
    o->dtype = A->dtype;
    return SAL_OK;
}

#define BIN_INNER(T, EXPR, XA, ZB)                                                                 \
    do {                                                                                           \
        _Pragma("omp simd") for (int64_t j = 0; j < p.inner; j++) {                               \
            T x = (XA), z = (ZB);                                                                  \
            yy_[j] = (EXPR);                                                                       \
        }                                                                                          \
    } while (0)

/* Runs o of the outer loop (p.nouter runs of p.inner elements each) */
#define BIN_RUN(T, EXPR)                                                                           \
    do {                                                                                           \
        int64_t off[SAL_BC_MAX];                                                                   \
        sal_bcast_at(&p, o, off);                                                                  \
        const T *x_ = a_ + off[0], *z_ = b_ + off[1];                                              \
        T *yy_ = y_ + o * p.inner;                                                                 \
        /* the common strides spelled out, so that the compiler vectorizes them */                 \
        if (ia == 1 && ib == 1) BIN_INNER(T, EXPR, x_[j], z_[j]);                                  \
        else if (ia == 1 && ib == 0) BIN_INNER(T, EXPR, x_[j], z_[0]);                             \
        else if (ia == 0 && ib == 1) BIN_INNER(T, EXPR, x_[0], z_[j]);                             \
        else BIN_INNER(T, EXPR, x_[j * ia], z_[j * ib]);                                           \
    } while (0)

/* in a parallel region only where it pays (SAL_PAR_FOR: the runs' directives keep them out of one) */
#define BIN_LOOP(T, EXPR)                                                                          \
    do {                                                                                           \
        const T *a_ = (const T *)c->in[0]->data, *b_ = (const T *)c->in[1]->data;                  \
        T *y_ = (T *)c->out[0]->data;                                                              \
        if (p.n > 65536) {                                                                         \
            _Pragma("omp parallel for") for (int64_t o = 0; o < p.nouter; o++) BIN_RUN(T, EXPR);   \
        } else {                                                                                   \
            for (int64_t o = 0; o < p.nouter; o++) BIN_RUN(T, EXPR);                               \
        }                                                                                          \
    } while (0)

#define FLAT_LOOP(N, STMT)                                                                         \
    do {                                                                                           \
        const int64_t n_ = (N);                                                                    \
        SAL_PAR_FOR_SIMD(n_ > 65536, for (int64_t i = 0; i < n_; i++) STMT;);                      \
    } while (0)

static sal_status bin_forward(sal_opctx *c, bin_kind k) {
    sal_bcast p;
    SAL_TRY(bin_plan_make(c, &p));
    if (p.n == 0) return SAL_OK;
    int64_t ia = p.st[0][p.r - 1], ib = p.st[1][p.r - 1];
    if (c->in[0]->dtype == SAL_F32 && p.r == 1 && ia == 1 && ib == 1) { /* same shapes: flat, simd */
        const float *a = sal_in_f(c, 0), *b = sal_in_f(c, 1);
        float *y = sal_out_f(c, 0);
        switch (k) {
        case BIN_ADD: FLAT_LOOP(p.n, y[i] = a[i] + b[i]); break;
        case BIN_SUB: FLAT_LOOP(p.n, y[i] = a[i] - b[i]); break;
        case BIN_MUL: FLAT_LOOP(p.n, y[i] = a[i] * b[i]); break;
        case BIN_DIV: FLAT_LOOP(p.n, y[i] = a[i] / b[i]); break;
        }
        return SAL_OK;
    }
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
        for (int64_t i = 0; i < p.numel[1]; i++)
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

/* One run of bin_grad: EXPR (of j) added to the operand's elements dd[j * s] along the run (set
 * instead where `set`), or, where the operand is constant along it (s == 0: a broadcast bias,
 * LayerNorm's mean and deviation), summed first and added once. */
#define GRAD_RUN(EXPR)                                                                             \
    do {                                                                                           \
        if (s == 0) {                                                                              \
            float t_ = 0;                                                                          \
            _Pragma("omp simd reduction(+ : t_)") for (int64_t j = 0; j < p->inner; j++) t_ += (EXPR); \
            dd[0] = set ? t_ : dd[0] + t_;                                                         \
        } else if (set) {                                                                          \
            _Pragma("omp simd") for (int64_t j = 0; j < p->inner; j++) dd[j * s] = (EXPR);         \
        } else {                                                                                   \
            _Pragma("omp simd") for (int64_t j = 0; j < p->inner; j++) dd[j * s] += (EXPR);        \
        }                                                                                          \
    } while (0)

typedef struct {
    const sal_bcast *p;
    bin_kind k;
    int which;
    const float *a, *b, *dy;
    float *d;
    int64_t ia, ib, s;
    bool set, rx, rz; /* rx, rz: the gradient reads A, B */
} grad_job;

/* Runs [o0, o1) of bin_grad */
static void grad_runs(const grad_job *q, int64_t o0, int64_t o1) {
    const sal_bcast *p = q->p;
    const int64_t ia = q->ia, ib = q->ib, s = q->s;
    const int which = q->which;
    const bool set = q->set;
    for (int64_t o = o0; o < o1; o++) {
        int64_t off[SAL_BC_MAX];
        sal_bcast_at(p, o, off);
        /* only the operands the gradient reads: the others' data may be gone (sal_op.bwd_known) */
        const float *g = q->dy + o * p->inner, *x = q->rx ? q->a + off[0] : NULL, *z = q->rz ? q->b + off[1] : NULL;
        float *dd = q->d + off[which];
        /* the other operand's stride: 0 and 1 spelled out for the vectorizer */
        int64_t io = which ? ia : ib;
        const float *ot = which ? x : z;
        switch (q->k) {
        case BIN_ADD: GRAD_RUN(g[j]); break;
        case BIN_SUB:
            if (which) GRAD_RUN(-g[j]);
            else GRAD_RUN(g[j]);
            break;
        case BIN_MUL:
            if (io == 1) GRAD_RUN(g[j] * ot[j]);
            else if (io == 0) GRAD_RUN(g[j] * ot[0]);
            else GRAD_RUN(g[j] * ot[j * io]);
            break;
        case BIN_DIV:
            if (!which && ib == 0) GRAD_RUN(g[j] / z[0]);
            else if (!which) GRAD_RUN(g[j] / z[j * ib]);
            else if (ib == 0 && ia == 1) GRAD_RUN(-g[j] * x[j] / (z[0] * z[0]));
            else GRAD_RUN(-g[j] * x[j * ia] / (z[j * ib] * z[j * ib]));
            break;
        }
    }
}

/* dL/dA or dL/dB (which = 0 or 1). Runs in parallel where no two runs add into one element: the
 * operand is not broadcast, or it is constant along each run and each run has its own element; a
 * fresh gradient buffer (sal_op.bwd_writes) is then set rather than added to, else zeroed first. */
static void bin_grad(const sal_opctx *c, const sal_bcast *p, bin_kind k, int which) {
    const float *a = sal_in_f(c, 0), *b = sal_in_f(c, 1), *dy = sal_f32(c->dout[0]);
    float *d = sal_f32(c->din[which]);
    int64_t ia = p->st[0][p->r - 1], ib = p->st[1][p->r - 1], s = which ? ib : ia;
    bool once = p->numel[which] == p->n || (s == 0 && p->numel[which] == p->nouter); /* each element one run */
    bool set = (c->din_fresh >> which & 1) && once;
    if ((c->din_fresh >> which & 1) && !once) memset(d, 0, sizeof(float) * (size_t)p->numel[which]);
    if (p->r == 1 && ia == 1 && ib == 1 && (k == BIN_ADD || k == BIN_SUB || k == BIN_MUL)) {
        /* same shapes (residual adds, gates): flat, simd */
        const float sign = k == BIN_SUB && which ? -1.0f : 1.0f, *o = which ? a : b;
        if (k == BIN_MUL && set) FLAT_LOOP(p->n, d[i] = dy[i] * o[i]);
        else if (k == BIN_MUL) FLAT_LOOP(p->n, d[i] += dy[i] * o[i]);
        else if (set) FLAT_LOOP(p->n, d[i] = sign * dy[i]);
        else FLAT_LOOP(p->n, d[i] += sign * dy[i]);
        return;
    }
    bool par = p->n > 65536 && once;
    grad_job q = {p, k, which, a, b, dy, d, ia, ib, s, set, which && (k == BIN_MUL || k == BIN_DIV),
                  k == BIN_DIV || (k == BIN_MUL && !which)};
    SAL_PAR_SPLIT(par, p->nouter, o0, o1, grad_runs(&q, o0, o1));
}

static sal_status bin_backward(sal_opctx *c, bin_kind k) {
    if (!c->dout[0] || c->in[0]->dtype != SAL_F32) return SAL_OK;
    sal_bcast p;
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
        .overwrites = true, .bwd_writes = 0x3, .blk = SAL_BLK_SAME,                                \
    };

/* What the gradients read (bin_grad): nothing of a sum; a product's other factor; a quotient's
 * divisor, and its dividend for the divisor's gradient. */
BIN_OP(Add, BIN_ADD, SAL_TR_ARITH | SAL_TR_ADDITIVE, .lin_in = 0x3, .bwd_pass = 0x3, .bwd_known = true)
BIN_OP(Sub, BIN_SUB, SAL_TR_ARITH | SAL_TR_ADDITIVE, .lin_in = 0x3, .bwd_pass = 0x1, .bwd_known = true)
BIN_OP(Mul, BIN_MUL, SAL_TR_ARITH | SAL_TR_MULTILINEAR, .lin_in = 0x3, .bwd_known = true, .bwd_other = 0x3)
BIN_OP(Div, BIN_DIV, SAL_TR_ARITH | SAL_TR_MULTILINEAR, .lin_in = 0x1, .bwd_known = true, .bwd_self = 0x2,
       .bwd_other = 0x3)
