/* Gemm and MatMul through sgemm. */
#include "ops.h"
#include "conv_dnnl.h"
#include "linear_ops.h"

typedef struct {
    bool ta, tb;
    float alpha, beta;
} gemm_p;

static sal_status gemm_init(sal_node *n, const sal_model *g) {
    (void)g;
    gemm_p *p = sal_calloc(1, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    p->ta = sal_attr_int(n, "transA", 0) != 0;
    p->tb = sal_attr_int(n, "transB", 0) != 0;
    p->alpha = sal_attr_float(n, "alpha", 1.0f);
    p->beta = sal_attr_float(n, "beta", 1.0f);
    n->p = p;
    return SAL_OK;
}

/* M, K, N of op(A) (M,K) times op(B) (K,N) */
static sal_status gemm_dims(const sal_opctx *c, int64_t *M, int64_t *K, int64_t *N) {
    const gemm_p *p = c->n->p;
    SAL_TRY(sal_need_f32(c, 0, 2));
    SAL_TRY(sal_need_f32(c, 1, 2));
    const sal_tensor *A = c->in[0], *B = c->in[1];
    *M = p->ta ? A->dim[1] : A->dim[0];
    *K = p->ta ? A->dim[0] : A->dim[1];
    int64_t kb = p->tb ? B->dim[1] : B->dim[0];
    *N = p->tb ? B->dim[0] : B->dim[1];
    if (kb != *K) {
        char a[160], b[160];
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "A %s and B %s do not multiply (transA=%d, transB=%d)",
                             sal_shape_str(A->ndim, A->dim, a, sizeof a), sal_shape_str(B->ndim, B->dim, b, sizeof b),
                             p->ta, p->tb);
    }
    return SAL_OK;
}

/* C broadcasts unidirectionally to (M,N): returns strides of its row and column. */
static sal_status gemm_cstride(const sal_opctx *c, int64_t M, int64_t N, int64_t *rs, int64_t *cs) {
    const sal_tensor *C = c->in[2];
    int64_t cm = 1, cn = 1;
    if (C->ndim == 1) cn = C->dim[0];
    else if (C->ndim == 2) cm = C->dim[0], cn = C->dim[1];
    else if (C->ndim != 0) return sal_node_fail(c->n, SAL_ERR_SHAPE, "C must have rank 0, 1 or 2");
    if ((cm != 1 && cm != M) || (cn != 1 && cn != N))
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "C (%lld,%lld) does not broadcast to (%lld,%lld)",
                             (long long)cm, (long long)cn, (long long)M, (long long)N);
    *rs = cm == 1 ? 0 : cn;
    *cs = cn == 1 ? 0 : 1;
    return SAL_OK;
}

static sal_status gemm_infer(sal_opctx *c) {
    int64_t M, K, N, rs, cs;
    SAL_TRY(gemm_dims(c, &M, &K, &N));
    if (c->n->nin > 2 && c->in[2]) {
        SAL_TRY(sal_need_f32(c, 2, -1));
        SAL_TRY(gemm_cstride(c, M, N, &rs, &cs));
    }
    c->out[0]->dtype = SAL_F32;
    c->out[0]->ndim = 2;
    c->out[0]->dim[0] = M;
    c->out[0]->dim[1] = N;
    return SAL_OK;
}

/* B^T of a Gemm with transB, kept while the model's weights do not change. Linear layers export
 * as Gemm with transB, and oneDNN's sgemm runs products with B transposed 1.5 to 9x slower than
 * untransposed ones once A has 8 rows or more (50 x 1024 x 1024: 1.06 ms against 0.32; OpenBLAS,
 * which we use there instead, 0.48 ms): a batch of rows is worth one transposed copy of a weight of
 * moderate size. (Training renews it after every step; made on a later call instead, results would
 * depend on how many calls came before.) */
typedef struct {
    float *bt; /* NULL until made */
    const float *src;
    uint64_t version;
    sal_mm_state *mm; /* B packed for oneDNN's product (gemm_packed) */
    float *pad;       /* a MatMul's B with padded rows (b_padded), NULL until made */
    const float *pad_src;
    uint64_t pad_version;
    float *gs;        /* sal_gemm_group_sums' copy, NULL until made */
    const float *gs_src;
    uint64_t gs_version;
    int64_t gs_S;
} gemm_state;

enum { GEMM_BT_MAX = 32 << 20 }; /* bytes: VGG16's 411 MB first classifier weight keeps its layout */

static void gemm_state_free(void *p) {
    gemm_state *s = p;
    sal_free(s->bt);
    sal_free(s->pad);
    sal_free(s->gs);
    sal_mm_state_free(s->mm);
    sal_free(s);
}

static gemm_state *gemm_state_of(const sal_opctx *c) {
    sal_node_state *ns = sal_node_state_of(c);
    if (!ns) return NULL;
    gemm_state *s = ns->p;
    if (!s) {
        if (!(s = sal_calloc(1, sizeof *s))) return NULL;
        ns->p = s;
        ns->free = gemm_state_free;
    }
    return s;
}

/* The copy bt_kept keeps, when it is of B at the model's weights version; NULL when there is none
 * (not made here). */
static const float *bt_current(const sal_opctx *c, const float *B) {
    sal_node_state *ns = sal_node_state_of(c);
    const gemm_state *s = ns ? ns->p : NULL;
    return s && s->bt && s->src == B && s->version == c->g->version ? s->bt : NULL;
}

/* The constant B (N, K) of c's node transposed to (K, N), kept in the node's state; NULL when too
 * large or out of memory. */
static const float *bt_kept(const sal_opctx *c, int64_t K, int64_t N, const float *B) {
    if ((size_t)(N * K) * sizeof(float) > GEMM_BT_MAX) return NULL;
    const float *cur = bt_current(c, B);
    gemm_state *s = cur ? NULL : gemm_state_of(c);
    if (cur || !s) return cur;
    sal_free(s->bt);
    if (!(s->bt = sal_malloc((size_t)(N * K) * sizeof(float)))) return NULL;
    s->src = B;
    s->version = c->g->version;
    enum { T = 16 }; /* in tiles: a column-order write per element would take a cache line each */
    for (int64_t j0 = 0; j0 < N; j0 += T)
        for (int64_t k0 = 0; k0 < K; k0 += T)
            for (int64_t j = j0; j < j0 + T && j < N; j++)
                for (int64_t k = k0; k < k0 + T && k < K; k++) s->bt[k * N + j] = B[j * K + k];
    return s->bt;
}

/* Whether B is the node's own constant weight (what the kept copies are made from). */
static bool own_weight(const sal_opctx *c, const float *B) {
    int v = c->n->in[1];
    return v >= 0 && c->g->val[v].kind == SAL_VAL_CONST && c->g->val[v].t.data == B;
}

/* The node's own constant B (K, N) with its rows N + 16 floats apart, kept in the node's state, where
 * N is a multiple of 512 (*ld = N + 16); else B itself (*ld = N). Rows a multiple of 2 KiB apart
 * share cache sets, and oneDNN's products on AVX2 ran up to 2x slower so (197 x 3072 x 768: 11.4 ms
 * against 6.1; as B^T, 197 x 768 x 3072: 7.1 against 6.1; ViT-B/16's gradient 0.66 -> 0.58 s).
 * At multiples of 1 KiB only (768, 2304) the gain was 10 to 17% a product, and nothing measurable
 * on ViT against 300 MB more of copies, so those stay in place. */
static const float *b_padded(const sal_opctx *c, const float *B, int64_t K, int64_t N, int64_t *ld) {
    *ld = N;
    if (N % 512 || !own_weight(c, B) || (size_t)(K * (N + 16)) * sizeof(float) > GEMM_BT_MAX) return B;
    gemm_state *s = gemm_state_of(c);
    if (!s) return B;
    if (!s->pad || s->pad_src != B || s->pad_version != c->g->version) {
        sal_free(s->pad);
        s->pad_src = NULL;
        if (!(s->pad = sal_malloc((size_t)(K * (N + 16)) * sizeof(float)))) return B;
        for (int64_t k = 0; k < K; k++) memcpy(s->pad + k * (N + 16), B + k * N, (size_t)N * sizeof(float));
        s->pad_src = B, s->pad_version = c->g->version;
    }
    *ld = N + 16;
    return s->pad;
}

/* Y (M, N) = A (M, K) op(B) for a batch of rows and the node's own constant B, through oneDNN with
 * B kept packed (sal_dnnl_matmul; op(B) = B^T when trans): the 50 rows of integrated gradients on
 * the MLP's 1024 x 1024 layers took 0.55 ms with sgemm, which packs B every call, and 0.33 so.
 * *done false: not run (too small, too large, another B, or no oneDNN kernel). */
static sal_status gemm_packed(const sal_opctx *c, bool trans, int64_t M, int64_t K, int64_t N, const float *A,
                              const float *B, float *Y, bool *done) {
    *done = false;
    if (!own_weight(c, B) || M < 8 || K < 16 || N < 16 || M * N * K < (1 << 17) ||
        (size_t)(N * K) * sizeof(float) > GEMM_BT_MAX)
        return SAL_OK;
    gemm_state *s = gemm_state_of(c);
    return s ? sal_dnnl_matmul(c, &s->mm, trans, M, K, N, A, B, Y, done) : SAL_OK;
}

/* The bounds of gemm_bt's batch-1 path (rows of B^T, K of them, N floats each: see there), shared
 * with din_masked, which reads the copy that path keeps. */
static bool rows_fit(int64_t K, int64_t N) { return K >= 64 && N >= 512 && N * K <= (2 << 20); }

/* Whether at least an eighth of a[0..K) is zero (sal_sgemm's threshold for skipping rows). */
static bool sparse_row(const float *a, int64_t K) {
    int64_t z = 0;
#pragma omp simd reduction(+ : z)
    for (int64_t k = 0; k < K; k++) z += a[k] == 0.0f;
    return z >= K / 8;
}

/* B (N, K) transposed to (K, N) when worth it (see gemm_state); NULL: use B as it is. A single row
 * A with zeros (a ReLU's output) takes it too: the product then reads only the rows of B^T that A's
 * nonzero entries pick (sal_sgemm), where with B it reads all of B. Batch-1 dense layers are bound
 * by reading their weights: the MLP's forward reads 7.2 MB instead of 11.2 at half zeros, 0.19 ->
 * 0.13 ms. Rows of B^T under 512 floats are too short to stream (the small CNN's 128: 10% slower),
 * and past 8 MiB the copy costs more memory than the layer's time is worth. The choice depends on
 * A alone, so that a result never depends on the calls before it. */
static const float *gemm_bt(const sal_opctx *c, int64_t M, int64_t K, int64_t N, const float *A, const float *B) {
    const gemm_p *p = c->n->p;
    if (!p->tb || p->ta || !own_weight(c, B)) return NULL;
    if (M == 1 && rows_fit(K, N) && sparse_row(A, K)) return bt_kept(c, K, N, B);
    if (M < 8 || K < 16 || M * N * K < (1 << 17)) return NULL;
    return bt_kept(c, K, N, B);
}

/* dA = alpha dY op(B)^T of a Gemm on one row, only where m0 > 0 or m1 > 0 (sal_rows_dot_masked): dA's
 * entry k is the product of dY with row k of B^T (B itself without transB; for transB the copy
 * that the forward's sparse path keeps, gemm_bt), so that the rows read are those the forward
 * read for m0 = A after a ReLU, on the same threads, while they are still in the cores' caches.
 * The MLP's gradient reads its 1024 x 1024 weights from L3 at about 60 GB/s on the Intel machine,
 * where the same rows come back from L2 for the last layer. Elsewhere dA is 0 (unchanged when not
 * fresh). *done false: not run (more rows, A transposed, B outside rows_fit, nearly all rows needed). */
static void din_masked(const sal_opctx *c, int64_t M, int64_t K, int64_t N, const float *dY, const float *B,
                       const float *m0, const float *m1, bool *done) {
    const gemm_p *p = c->n->p;
    *done = false;
    if (M != 1 || p->ta || !rows_fit(K, N)) return;
    /* with transB, the copy the forward's sparse path made: a mask sparse enough here had A (m0)
     * sparse enough there, and a dense one would leave a new copy unused */
    const float *R = p->tb ? (own_weight(c, B) ? bt_current(c, B) : NULL) : B;
    if (R)
        *done = sal_rows_dot_masked((int)N, (int)K, p->alpha, dY, R, (int)N, m0, m1, !(c->din_fresh & 1),
                                    sal_f32(c->din[0]));
}

sal_status sal_gemm_din_masked(const sal_opctx *c, const float *m1, bool *done) {
    int64_t M, K, N;
    *done = false;
    SAL_TRY(gemm_dims(c, &M, &K, &N));
    if (c->din[0] && c->dout[0])
        din_masked(c, M, K, N, sal_f32(c->dout[0]), sal_in_f(c, 1), sal_in_f(c, 0), m1, done);
    return SAL_OK;
}

/* c's node's B when the node is a Gemm without transA and B a float constant whose op(B) has K rows;
 * else NULL. *N: op(B)'s columns, *alpha: the node's alpha. */
static const sal_value *gemm_const_b(const sal_opctx *c, int64_t K, int64_t *N, float *alpha) {
    const sal_node *n = c->n;
    const gemm_p *p = n->p;
    if (!sal_node_is(n, SAL_OP_Gemm) || p->ta || n->nin < 2 || n->in[1] < 0) return NULL;
    const sal_value *B = &c->g->val[n->in[1]];
    if (B->kind != SAL_VAL_CONST || B->t.dtype != SAL_F32 || B->t.ndim != 2 || B->t.dim[p->tb] != K) return NULL;
    *N = B->t.dim[!p->tb];
    *alpha = p->alpha;
    return B;
}

const float *sal_gemm_rows(const sal_opctx *c, int64_t K, int64_t *N, float *alpha) {
    const sal_node *n = c->n;
    const sal_value *B = gemm_const_b(c, K, N, alpha), *C = n->nin > 2 && n->in[2] >= 0 ? &c->g->val[n->in[2]] : NULL;
    if (!B || (C && (C->kind != SAL_VAL_CONST || (C->t.ndim == 2 && C->t.dim[0] != 1)))) /* a bias per row */
        return NULL;
    return ((const gemm_p *)n->p)->tb ? bt_kept(c, K, *N, sal_f32(&B->t)) : sal_f32(&B->t);
}

/* out[0..n) = the sum of the S rows of r (S, n) in double, a strip of columns at a time */
static void rows_sum(const float *r, int64_t S, int64_t n, float *out) {
    for (int64_t j0 = 0; j0 < n; j0 += 256) {
        double acc[256] = {0};
        int64_t w = n - j0 < 256 ? n - j0 : 256;
        for (int64_t s = 0; s < S; s++)
#pragma omp simd
            for (int64_t j = 0; j < w; j++) acc[j] += r[s * n + j0 + j];
        for (int64_t j = 0; j < w; j++) out[j0 + j] = (float)acc[j];
    }
}

const float *sal_gemm_group_sums(const sal_opctx *c, int64_t K, int64_t S, int64_t *N, float *alpha) {
    const gemm_p *p = c->n->p;
    const sal_value *B = S >= 1 && K % S == 0 ? gemm_const_b(c, K, N, alpha) : NULL;
    int64_t nn = B ? *N : 0, Q = K / (S >= 1 ? S : 1);
    if (!B || (size_t)(Q * nn) * sizeof(float) > GEMM_BT_MAX) return NULL;
    const float *b = sal_f32(&B->t);
    sal_node_state *ns = sal_node_state_of(c);
    gemm_state *st = ns && ns->p ? ns->p : NULL;
    if (st && st->gs && st->gs_src == b && st->gs_S == S && st->gs_version == c->g->version) return st->gs;
    if (!(st = gemm_state_of(c))) return NULL;
    sal_free(st->gs);
    st->gs_src = NULL;
    if (!(st->gs = sal_malloc((size_t)(Q * nn) * sizeof(float)))) return NULL;
    float *gs = st->gs;
    if (p->tb) /* B (N, K): each group a run within a row */
        SAL_PAR_FOR(Q * nn * S > 65536, "omp parallel for", for (int64_t j = 0; j < nn; j++) {
            for (int64_t q = 0; q < Q; q++) gs[q * nn + j] = (float)sal_sum_d(b + j * K + q * S, S);
        });
    else /* B (K, N): S rows summed */
        SAL_PAR_FOR(Q * nn * S > 65536, "omp parallel for",
                    for (int64_t q = 0; q < Q; q++) rows_sum(b + q * S * nn, S, nn, gs + q * nn););
    st->gs_src = b, st->gs_S = S, st->gs_version = c->g->version;
    return gs;
}

static inline void epilogue_row(float *y, int64_t N, const float *b, int64_t cs, float beta, bool relu) {
    if (b && cs) {
#pragma omp simd
        for (int64_t j = 0; j < N; j++) y[j] += beta * b[j];
    } else if (b) {
        float v = beta * b[0];
#pragma omp simd
        for (int64_t j = 0; j < N; j++) y[j] += v;
    }
    if (relu) {
#pragma omp simd
        for (int64_t j = 0; j < N; j++) y[j] = y[j] > 0.0f ? y[j] : 0.0f;
    }
}

/* Y = max(Y + b, 0) with relu, else Y + b, per row: b a row of N (cs 1), one value (cs 0) or none. */
static void gemm_epilogue(float *Y, int64_t M, int64_t N, const float *b, int64_t cs, float beta, bool relu) {
    SAL_PAR_FOR(M * N > 65536, "omp parallel for",
                for (int64_t i = 0; i < M; i++) epilogue_row(Y + i * N, N, b, cs, beta, relu););
}

static sal_status gemm_forward(sal_opctx *c) {
    const gemm_p *p = c->n->p;
    int64_t M, K, N, rs = 0, cs = 0;
    SAL_TRY(gemm_dims(c, &M, &K, &N));
    const float *A = sal_in_f(c, 0), *B = sal_in_f(c, 1), *C = NULL;
    float *Y = sal_out_f(c, 0), beta = 0.0f;
    if (c->n->nin > 2 && c->in[2] && p->beta != 0.0f) {
        SAL_TRY(gemm_cstride(c, M, N, &rs, &cs));
        C = sal_in_f(c, 2);
    }
    /* a C that differs between rows is written first and the product added to it; a bias row is
     * added after the product, in the pass that applies a fused ReLU (graph/exec.c: fuse) */
    bool after = C && rs == 0;
    if (C && !after) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) Y[i * N + j] = p->beta * C[i * rs + j * cs];
        beta = 1.0f;
    }
    bool done = false;
    if (!p->ta && p->alpha == 1.0f && beta == 0.0f) SAL_TRY(gemm_packed(c, p->tb, M, K, N, A, B, Y, &done));
    const float *Bt = done ? NULL : gemm_bt(c, M, K, N, A, B);
    if (Bt) sal_sgemm(false, false, (int)M, (int)N, (int)K, p->alpha, A, (int)K, Bt, (int)N, beta, Y, (int)N);
    else if (!done) sal_sgemm(p->ta, p->tb, (int)M, (int)N, (int)K, p->alpha, A, p->ta ? (int)M : (int)K, B,
                              p->tb ? (int)K : (int)N, beta, Y, (int)N);
    if (after || c->relu_want) gemm_epilogue(Y, M, N, after ? C : NULL, cs, p->beta, c->relu_want);
    c->relu_done = c->relu_want;
    return SAL_OK;
}

static sal_status gemm_backward(sal_opctx *c) {
    const gemm_p *p = c->n->p;
    int64_t M, K, N, rs = 0, cs = 0;
    SAL_TRY(gemm_dims(c, &M, &K, &N));
    if (!c->dout[0]) return SAL_OK;
    const float *A = sal_in_f(c, 0), *B = sal_in_f(c, 1), *dY = sal_f32(c->dout[0]);
    int lda = p->ta ? (int)M : (int)K, ldb = p->tb ? (int)K : (int)N;
    /* a fresh gradient buffer (bwd_writes) is set by the product (beta 0) instead of added to; under
     * relu_in, dA is the gradient of the ReLU's input, fresh, masked where A is not positive */
    bool masked = false;
    if (c->din[0] && c->relu_in) din_masked(c, M, K, N, dY, B, A, NULL, &masked);
    bool done = masked;
    if (c->din[0] && !done && !p->ta && p->alpha == 1.0f && (c->din_fresh & 1)) /* dA = dY op(B)^T, B packed */
        SAL_TRY(gemm_packed(c, !p->tb, M, N, K, dY, B, sal_f32(c->din[0]), &done));
    if (c->din[0] && !done) {
        float *dA = sal_f32(c->din[0]), beta = c->din_fresh & 1 ? 0.0f : 1.0f;
        if (!p->ta) /* dA (M,K) = alpha dY op(B)^T */
            sal_sgemm(false, !p->tb, (int)M, (int)K, (int)N, p->alpha, dY, (int)N, B, ldb, beta, dA, (int)K);
        else /* dA (K,M) = alpha op(B) dY^T */
            sal_sgemm(p->tb, true, (int)K, (int)M, (int)N, p->alpha, B, ldb, dY, (int)N, beta, dA, (int)M);
    }
    if (c->din[0] && c->relu_in && !masked) sal_relu_mask(sal_f32(c->din[0]), sal_f32(c->din[0]), A, M * K);
    if (c->din[1]) {
        float *dB = sal_f32(c->din[1]), beta = c->din_fresh & 2 ? 0.0f : 1.0f;
        if (!p->tb) /* dB (K,N) = alpha op(A)^T dY */
            sal_sgemm(!p->ta, false, (int)K, (int)N, (int)M, p->alpha, A, lda, dY, (int)N, beta, dB, (int)N);
        else /* dB (N,K) = alpha dY^T op(A) */
            sal_sgemm(true, p->ta, (int)N, (int)K, (int)M, p->alpha, dY, (int)N, A, lda, beta, dB, (int)K);
    }
    if (c->n->nin > 2 && c->in[2] && c->din[2]) {
        SAL_TRY(gemm_cstride(c, M, N, &rs, &cs));
        float *dC = sal_f32(c->din[2]);
        sal_din_zero_fresh(c, 2);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) dC[i * rs + j * cs] += p->beta * dY[i * N + j];
    }
    return SAL_OK;
}

const sal_op sal_op_Gemm = {
    SAL_OP_HEAD(Gemm), .traits = SAL_TR_LINEAR | SAL_TR_MULTILINEAR, .lin_in = 0x3, .bias_in = 0x4, .min_in = 2, .max_in = 3, .min_out = 1, .max_out = 1, .param_mask = 0x6,
    .init = gemm_init, .infer = gemm_infer, .forward = gemm_forward, .backward = gemm_backward,
    .overwrites = true, .bwd_writes = 0x7, .bwd_known = true, .bwd_other = 0x3, /* dA reads B, dB reads A */
    .bwd_relu_in = true,
};

/* ---- MatMul: numpy semantics, batch dimensions broadcast ---- */

#define MM_PAR_WORK (1 << 20) /* multiply-adds below which batches run on one thread */

typedef struct {
    int64_t M, K, N, nbatch;
    int bnd; /* rank of the broadcast batch shape */
    int64_t bdim[SAL_MAX_DIMS], astr[SAL_MAX_DIMS], bstr[SAL_MAX_DIMS];
    bool a1, b1; /* operand was 1-D */
} mm_dims;

static sal_status mm_plan(const sal_opctx *c, mm_dims *d) {
    SAL_TRY(sal_need_f32(c, 0, -1));
    SAL_TRY(sal_need_f32(c, 1, -1));
    const sal_tensor *A = c->in[0], *B = c->in[1];
    if (A->ndim < 1 || B->ndim < 1) return sal_node_fail(c->n, SAL_ERR_SHAPE, "operands must have rank >= 1");
    memset(d, 0, sizeof *d);
    d->a1 = A->ndim == 1;
    d->b1 = B->ndim == 1;
    d->M = d->a1 ? 1 : A->dim[A->ndim - 2];
    d->K = A->dim[A->ndim - 1];
    int64_t kb = d->b1 ? B->dim[0] : B->dim[B->ndim - 2];
    d->N = d->b1 ? 1 : B->dim[B->ndim - 1];
    char a[160], b[160];
    if (kb != d->K)
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "%s and %s do not multiply", sal_shape_str(A->ndim, A->dim, a, sizeof a),
                             sal_shape_str(B->ndim, B->dim, b, sizeof b));
    int ab = d->a1 ? 0 : A->ndim - 2, bb = d->b1 ? 0 : B->ndim - 2;
    d->bnd = ab > bb ? ab : bb;
    int64_t as = d->M * d->K, bs = d->K * d->N;
    for (int i = d->bnd - 1; i >= 0; i--) {
        int ia = i - (d->bnd - ab), ib = i - (d->bnd - bb);
        int64_t da = ia >= 0 ? A->dim[ia] : 1, db = ib >= 0 ? B->dim[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "batch dimensions of %s and %s do not broadcast",
                                 sal_shape_str(A->ndim, A->dim, a, sizeof a), sal_shape_str(B->ndim, B->dim, b, sizeof b));
        d->bdim[i] = da == 1 ? db : da;
        d->astr[i] = da == 1 ? 0 : as;
        d->bstr[i] = db == 1 ? 0 : bs;
        as *= da;
        bs *= db;
    }
    d->nbatch = 1;
    for (int i = 0; i < d->bnd; i++) d->nbatch *= d->bdim[i];
    return SAL_OK;
}

/* Offsets of batch b into A and B. */
static void mm_offsets(const mm_dims *d, int64_t b, int64_t *oa, int64_t *ob) {
    *oa = *ob = 0;
    for (int i = d->bnd - 1; i >= 0; i--) {
        int64_t k = b % d->bdim[i];
        b /= d->bdim[i];
        *oa += k * d->astr[i];
        *ob += k * d->bstr[i];
    }
}

static sal_status mm_infer(sal_opctx *c) {
    mm_dims d;
    SAL_TRY(mm_plan(c, &d));
    sal_tensor *o = c->out[0];
    o->dtype = SAL_F32;
    o->ndim = d.bnd;
    memcpy(o->dim, d.bdim, sizeof(int64_t) * (size_t)d.bnd);
    if (!d.a1) o->dim[o->ndim++] = d.M;
    if (!d.b1) o->dim[o->ndim++] = d.N;
    return SAL_OK;
}

/* A (batch..., M, K) or (M, K) times a B of at most two axes: one product over all the rows. */
static bool one_b(const sal_opctx *c, const mm_dims *d) {
    return c->in[1]->ndim <= 2 && !d->a1 && (d->bnd == 0 || d->bstr[d->bnd - 1] == 0);
}

/* The loops over batches below are written twice, for a team and for no parallel region at all:
 * BLAS called inside an inactive region (a parallel construct whose `if` is false) starts a nested
 * team of its own, which cost 1.3 ms a call of a 113K multiply-add product (MobileNetV3's
 * squeeze-excitation convolutions, conv.c). */
static void mm_forward_batch(const mm_dims *d, const float *A, const float *B, float *Y, int64_t b) {
    int64_t oa, ob;
    mm_offsets(d, b, &oa, &ob);
    sal_sgemm(false, false, (int)d->M, (int)d->N, (int)d->K, 1.0f, A + oa, (int)d->K, B + ob, (int)d->N, 0.0f,
              Y + b * d->M * d->N, (int)d->N);
}

static void mm_backward_batch(const sal_opctx *c, const mm_dims *d, const float *A, const float *B, const float *dY,
                              float beta_a, float beta_b, int64_t b) {
    int64_t oa, ob;
    mm_offsets(d, b, &oa, &ob);
    const float *g = dY + b * d->M * d->N;
    if (c->din[0]) /* dA += dY B^T; broadcast batches accumulate */
        sal_sgemm(false, true, (int)d->M, (int)d->K, (int)d->N, 1.0f, g, (int)d->N, B + ob, (int)d->N, beta_a,
                  sal_f32(c->din[0]) + oa, (int)d->K);
    if (c->din[1]) /* dB += A^T dY */
        sal_sgemm(true, false, (int)d->K, (int)d->N, (int)d->M, 1.0f, A + oa, (int)d->K, g, (int)d->N, beta_b,
                  sal_f32(c->din[1]) + ob, (int)d->N);
}

static sal_status mm_forward(sal_opctx *c) {
    mm_dims d;
    SAL_TRY(mm_plan(c, &d));
    const float *A = sal_in_f(c, 0), *B = sal_in_f(c, 1);
    float *Y = sal_out_f(c, 0);
    /* A (batch..., M, K) with a 2-D B: one sgemm over all rows */
    if (one_b(c, &d)) {
        int64_t ldb;
        const float *Bp = b_padded(c, B, d.K, d.N, &ldb);
        sal_sgemm(false, false, (int)(d.nbatch * d.M), (int)d.N, (int)d.K, 1.0f, A, (int)d.K, Bp, (int)ldb, 0.0f,
                  Y, (int)d.N);
        return SAL_OK;
    }
    /* batched products (attention's heads): the batches share out the threads, each product on one
     * (sgemm inside a parallel region runs single-threaded); small ones are not worth a thread, and
     * run outside any parallel region (see mm_batches) */
    if (d.nbatch > 1 && d.nbatch * d.M * d.N * d.K > MM_PAR_WORK) {
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < d.nbatch; b++) mm_forward_batch(&d, A, B, Y, b);
    } else {
        for (int64_t b = 0; b < d.nbatch; b++) mm_forward_batch(&d, A, B, Y, b);
    }
    return SAL_OK;
}

static sal_status mm_backward(sal_opctx *c) {
    mm_dims d;
    SAL_TRY(mm_plan(c, &d));
    if (!c->dout[0]) return SAL_OK;
    const float *A = sal_in_f(c, 0), *B = sal_in_f(c, 1), *dY = sal_f32(c->dout[0]);
    /* a fresh gradient buffer (bwd_writes) is set by the product (beta 0) where the product covers
     * it once; an operand shared by broadcast batches is zeroed first and accumulated */
    float beta_a = c->din_fresh & 1 ? 0.0f : 1.0f, beta_b = c->din_fresh & 2 ? 0.0f : 1.0f;
    /* A (batch..., M, K) with a 2-D B: one product over all rows each, as forward */
    if (one_b(c, &d)) {
        int rows = (int)(d.nbatch * d.M);
        int64_t ldb = d.N;
        /* dA = dY B^T through a kept copy of B^T where B is the node's weight: products with B
         * transposed ran 10 to 75% slower than plain ones on oneDNN and OpenBLAS alike on Zen 4
         * (ViT's 197 x 768 x 3072: 5.3 ms against 4.1; ConvNeXt's 196 x 384 x 1536: 1.30 against
         * 1.04); a single row is a matrix-vector product either way */
        const float *Bt = c->din[0] && rows >= 8 && own_weight(c, B) ? bt_kept(c, d.N, d.K, B) : NULL;
        const float *Bp = c->din[0] && !Bt ? b_padded(c, B, d.K, d.N, &ldb) : B;
        if (Bt)
            sal_sgemm(false, false, rows, (int)d.K, (int)d.N, 1.0f, dY, (int)d.N, Bt, (int)d.K, beta_a,
                      sal_f32(c->din[0]), (int)d.K);
        else if (c->din[0])
            sal_sgemm(false, true, rows, (int)d.K, (int)d.N, 1.0f, dY, (int)d.N, Bp, (int)ldb, beta_a,
                      sal_f32(c->din[0]), (int)d.K);
        if (c->din[1])
            sal_sgemm(true, false, (int)d.K, (int)d.N, rows, 1.0f, A, (int)d.K, dY, (int)d.N, beta_b,
                      sal_f32(c->din[1]), (int)d.N);
        return SAL_OK;
    }
    /* each batch's dA is its own; dB may be shared by broadcast batches, so those run in order */
    bool shared_a = false, shared_b = false; /* an operand broadcast over some batch axis */
    for (int i = 0; i < d.bnd; i++) {
        shared_a |= d.bdim[i] > 1 && d.astr[i] == 0;
        shared_b |= d.bdim[i] > 1 && d.bstr[i] == 0;
    }
    if (c->din[0] && shared_a && beta_a == 0.0f) {
        memset(c->din[0]->data, 0, sizeof(float) * (size_t)sal_tensor_numel(c->din[0]));
        beta_a = 1.0f;
    }
    if (c->din[1] && shared_b && beta_b == 0.0f) {
        memset(c->din[1]->data, 0, sizeof(float) * (size_t)sal_tensor_numel(c->din[1]));
        beta_b = 1.0f;
    }
    if (d.nbatch > 1 && d.nbatch * d.M * d.N * d.K > MM_PAR_WORK && !(c->din[0] && shared_a) &&
        !(c->din[1] && shared_b)) {
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < d.nbatch; b++) mm_backward_batch(c, &d, A, B, dY, beta_a, beta_b, b);
    } else {
        for (int64_t b = 0; b < d.nbatch; b++) mm_backward_batch(c, &d, A, B, dY, beta_a, beta_b, b);
    }
    return SAL_OK;
}

const sal_op sal_op_MatMul = {
    SAL_OP_HEAD(MatMul), .traits = SAL_TR_LINEAR | SAL_TR_MULTILINEAR, .lin_in = 0x3, .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1, .param_mask = 0x3,
    .infer = mm_infer, .forward = mm_forward, .backward = mm_backward,
    .overwrites = true, .bwd_writes = 0x3, .bwd_known = true, .bwd_other = 0x3, /* dA reads B, dB reads A */
};
