/* Einsum of one or two operands, the contractions that attention and linear layers export to
 * ("bhid,bhjd->bhij", "bhij,bhjd->bhid", "...ij,jk->...ik", "bij,jk->bik"), transposes and sums.
 *
 * With two operands every label is one of
 *   batch     in A, B and the output        left   in A and the output       right  in B and the output
 *   contract  in A and B, not the output    sumA   in A only                 sumB   in B only
 * so the product is one batched matrix product Y'[b] (M, N) = A'[b] (M, K) B'[b] (K, N) through
 * sgemm, with A' = A laid out as (batch, left, contract) and B' = B as (batch, contract, right).
 * When an operand already has that layout (either order of its last two groups, which sgemm's
 * transpose flags absorb) it is used in place; attention's products need no copy at all. Otherwise
 * it is gathered into that layout, summing its sumA/sumB labels and broadcasting size-1 dims. The
 * output is written in place when its labels read (batch, left, right), or (batch, right, left) with
 * the operands swapped; else Y' is permuted into it. One operand: a permutation with sums. A label
 * repeated within an operand ("...ii->...i") reads its diagonal: the label's stride is the sum of
 * its dims' strides, and that operand is gathered. Three or more operands are refused. */
#include "ops.h"
#include <limits.h>
#include <omp.h>

#define NCODE (52 + SAL_MAX_DIMS) /* a-z, A-Z, then the ellipsis dims */
#define ELL 127                   /* "..." in a parsed term */

typedef struct {
    int nop;
    int nt[3];                    /* labels of each term (operands, then output), ELL counted once */
    signed char t[3][NCODE + 1];  /* parsed terms */
} ein_p;

/* A label's code: 0-25 a-z, 26-51 A-Z; -1 for anything else. */
static int code_of(char ch) { return ch >= 'a' && ch <= 'z' ? ch - 'a' : ch >= 'A' && ch <= 'Z' ? ch - 'A' + 26 : -1; }

static sal_status parse_term(const sal_node *n, const char *s, size_t len, int k, ein_p *p) {
    bool seen[52] = {false}, ell = false;
    p->nt[k] = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (ell || i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.')
                return sal_node_fail(n, SAL_ERR_FORMAT, "bad ellipsis in the equation");
            ell = true;
            i += 2;
            p->t[k][p->nt[k]++] = ELL;
            continue;
        }
        int c = code_of(s[i]);
        if (c < 0) return sal_node_fail(n, SAL_ERR_FORMAT, "unexpected character '%c' in the equation", s[i]);
        if (seen[c] && k == 2) return sal_node_fail(n, SAL_ERR_FORMAT, "output label '%c' repeats", s[i]);
        seen[c] = true;
        if (p->nt[k] >= SAL_MAX_DIMS) return sal_node_fail(n, SAL_ERR_FORMAT, "a term has more than %d labels", SAL_MAX_DIMS);
        p->t[k][p->nt[k]++] = (signed char)c;
    }
    return SAL_OK;
}

static sal_status ein_init(sal_node *n, const sal_model *g) {
    (void)g;
    const char *eq0 = sal_attr_string(n, "equation", NULL);
    if (!eq0) return sal_node_fail(n, SAL_ERR_FORMAT, "the equation attribute is required");
    char eq[256];
    size_t m = 0;
    for (const char *s = eq0; *s; s++)
        if (*s != ' ') {
            if (m + 1 >= sizeof eq) return sal_node_fail(n, SAL_ERR_FORMAT, "equation too long");
            eq[m++] = *s;
        }
    eq[m] = '\0';
    ein_p *p = sal_calloc(1, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    n->p = p;
    const char *arrow = strstr(eq, "->"), *end = arrow ? arrow : eq + m;
    int nop = 1;
    for (const char *s = eq; s < end; s++) nop += *s == ',';
    if (nop != n->nin)
        return sal_node_fail(n, SAL_ERR_FORMAT, "equation '%s' has %d operands, the node %d inputs", eq0, nop, n->nin);
    if (nop > 2)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "equation '%s': einsum of %d operands (at most 2 are supported)",
                             eq0, nop);
    p->nop = nop;
    const char *s = eq;
    for (int k = 0; k < nop; k++) {
        const char *e = k + 1 < nop ? strchr(s, ',') : end;
        SAL_TRY(parse_term(n, s, (size_t)(e - s), k, p));
        s = e + 1;
    }
    if (arrow) {
        if (strstr(arrow + 2, "->")) return sal_node_fail(n, SAL_ERR_FORMAT, "equation '%s' has two arrows", eq0);
        SAL_TRY(parse_term(n, arrow + 2, strlen(arrow + 2), 2, p));
    } else { /* implicit output: the ellipsis, then the labels seen once, in alphabetical order */
        int cnt[52] = {0};
        bool ell = false;
        for (int k = 0; k < nop; k++)
            for (int i = 0; i < p->nt[k]; i++) {
                if (p->t[k][i] == ELL) ell = true;
                else cnt[p->t[k][i]]++;
            }
        if (ell) p->t[2][p->nt[2]++] = ELL;
        for (int c = 26; c < 52; c++) /* ASCII order: upper case first */
            if (cnt[c] == 1) p->t[2][p->nt[2]++] = (signed char)c;
        for (int c = 0; c < 26; c++)
            if (cnt[c] == 1) p->t[2][p->nt[2]++] = (signed char)c;
    }
    for (int i = 0; i < p->nt[2]; i++) {
        int c = p->t[2][i];
        bool found = false;
        for (int k = 0; k < nop; k++)
            for (int j = 0; j < p->nt[k]; j++) found |= p->t[k][j] == c;
        if (!found) return sal_node_fail(n, SAL_ERR_FORMAT, "equation '%s': output label not in any operand", eq0);
    }
    return SAL_OK;
}

/* ---- the plan for one call ---- */

typedef struct {
    int n;
    int c[NCODE];
} codes;

typedef struct {
    int64_t size[NCODE];
    codes op[3];                 /* each operand's and the output's codes, ellipsis expanded */
    int64_t str[3][NCODE];       /* row-major strides per code (summed over a repeated label);
                                  * 0 where absent or broadcast */
    bool bcast[2];               /* an operand broadcasts a size-1 dim */
    int ia, ib;                  /* which input plays A and B (swapped for a (batch, right, left) output) */
    codes bat, left, right, con, sum[2];
    int64_t Bt, M, N, K;
    bool ta, tb, da, db, dy;     /* transposed in place; A, B, Y used in place */
} ein_plan;

static bool has(const codes *s, int c) {
    for (int i = 0; i < s->n; i++)
        if (s->c[i] == c) return true;
    return false;
}

static void push(codes *s, int c) { s->c[s->n++] = c; }
static void push_new(codes *s, int c) {
    if (!has(s, c)) push(s, c);
}

/* whether s is the concatenation a ++ b ++ c */
static bool is_cat(const codes *s, const codes *a, const codes *b, const codes *c) {
    if (s->n != a->n + b->n + c->n) return false;
    const codes *parts[3] = {a, b, c};
    for (int k = 0, i = 0; k < 3; k++)
        for (int j = 0; j < parts[k]->n; j++, i++)
            if (s->c[i] != parts[k]->c[j]) return false;
    return true;
}

static int64_t prod(const ein_plan *q, const codes *s) {
    int64_t r = 1;
    for (int i = 0; i < s->n; i++) r *= q->size[s->c[i]];
    return r;
}

static void classify(ein_plan *q) {
    const codes *A = &q->op[q->ia], *B = &q->op[q->ib], *Y = &q->op[2];
    q->bat.n = q->left.n = q->right.n = q->con.n = q->sum[0].n = q->sum[1].n = 0;
    for (int i = 0; i < Y->n; i++) {
        int c = Y->c[i];
        push(has(A, c) && has(B, c) ? &q->bat : has(A, c) ? &q->left : &q->right, c);
    }
    for (int i = 0; i < A->n; i++)
        if (!has(Y, A->c[i])) push_new(has(B, A->c[i]) ? &q->con : &q->sum[0], A->c[i]);
    for (int i = 0; i < B->n; i++)
        if (!has(Y, B->c[i]) && !has(A, B->c[i])) push_new(&q->sum[1], B->c[i]);
}

static sal_status ein_plan_make(const sal_opctx *c, ein_plan *q) {
    const ein_p *p = c->n->p;
    memset(q, 0, sizeof *q);
    int E = 0;
    for (int k = 0; k < p->nop; k++) {
        SAL_TRY(sal_need_f32(c, k, -1));
        int ne = c->in[k]->ndim - (p->nt[k] - (memchr(p->t[k], ELL, (size_t)p->nt[k]) ? 1 : 0));
        bool ell = memchr(p->t[k], ELL, (size_t)p->nt[k]) != NULL;
        if (ne < 0 || (!ell && ne != 0))
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "operand %d has rank %d, which does not fit its %d labels", k,
                                 c->in[k]->ndim, p->nt[k] - ell);
        if (ne > E) E = ne;
    }
    for (int i = 0; i < NCODE; i++) q->size[i] = -1;
    for (int k = 0; k < p->nop; k++) {
        const sal_tensor *x = c->in[k];
        int ne = x->ndim - (p->nt[k] - (memchr(p->t[k], ELL, (size_t)p->nt[k]) ? 1 : 0));
        codes *o = &q->op[k];
        for (int i = 0; i < p->nt[k]; i++) {
            if (p->t[k][i] != ELL) push(o, p->t[k][i]);
            else
                for (int e = 0; e < ne; e++) push(o, 52 + E - ne + e); /* ellipsis dims align right */
        }
        for (int i = 0; i < o->n; i++) {
            int64_t d = x->dim[i], *s = &q->size[o->c[i]];
            if (*s < 0 || *s == 1) *s = d;
            else if (d != *s && d != 1)
                return sal_node_fail(c->n, SAL_ERR_SHAPE, "a label has sizes %lld and %lld in the operands",
                                     (long long)*s, (long long)d);
        }
    }
    for (int i = 0; i < p->nt[2]; i++) {
        if (p->t[2][i] != ELL) push(&q->op[2], p->t[2][i]);
        else
            for (int e = 0; e < E; e++) push(&q->op[2], 52 + e);
    }
    for (int k = 0; k < p->nop; k++) {
        const sal_tensor *x = c->in[k];
        int64_t acc = 1;
        for (int i = x->ndim - 1; i >= 0; i--) {
            int cd = q->op[k].c[i];
            bool b = x->dim[i] != q->size[cd];
            q->bcast[k] |= b;
            q->str[k][cd] += b ? 0 : acc; /* a repeated label walks the diagonal: its strides add */
            acc *= x->dim[i];
        }
    }
    if (p->nop == 1) return SAL_OK;
    q->ia = 0, q->ib = 1;
    classify(q);
    /* a (batch, right, left) output: B^T A^T is written in place */
    if (q->left.n && q->right.n && !is_cat(&q->op[2], &q->bat, &q->left, &q->right) &&
        is_cat(&q->op[2], &q->bat, &q->right, &q->left)) {
        q->ia = 1, q->ib = 0;
        classify(q);
    }
    const codes *A = &q->op[q->ia], *B = &q->op[q->ib];
    q->Bt = prod(q, &q->bat), q->M = prod(q, &q->left), q->N = prod(q, &q->right), q->K = prod(q, &q->con);
    if (q->M > INT_MAX || q->N > INT_MAX || q->K > INT_MAX || q->M * q->K > INT_MAX || q->K * q->N > INT_MAX ||
        q->M * q->N > INT_MAX)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "product too large for 32-bit matrix sizes");
    q->da = !q->bcast[q->ia] && !q->sum[0].n;
    q->ta = q->da && !is_cat(A, &q->bat, &q->left, &q->con);
    q->da = q->da && (!q->ta || is_cat(A, &q->bat, &q->con, &q->left));
    q->db = !q->bcast[q->ib] && !q->sum[1].n;
    q->tb = q->db && !is_cat(B, &q->bat, &q->con, &q->right);
    q->db = q->db && (!q->tb || is_cat(B, &q->bat, &q->right, &q->con));
    q->ta = q->ta && q->da;
    q->tb = q->tb && q->db;
    q->dy = is_cat(&q->op[2], &q->bat, &q->left, &q->right);
    return SAL_OK;
}

static sal_status ein_infer(sal_opctx *c) {
    ein_plan q;
    SAL_TRY(ein_plan_make(c, &q));
    sal_tensor *o = c->out[0];
    o->dtype = SAL_F32;
    o->ndim = q.op[2].n;
    for (int i = 0; i < o->ndim; i++) o->dim[i] = q.size[q.op[2].c[i]];
    return SAL_OK;
}

/* ---- strided gather with sums, and its adjoint ---- */

/* The index space of dst (codes t, contiguous) over a source with strides st per code, summing
 * over codes u of the source. */
typedef struct {
    int nt, nu;
    int64_t td[NCODE], ts[NCODE], ud[NCODE], us[NCODE];
    int64_t n, nsum;
    bool injective; /* distinct dst elements read distinct source elements */
} gplan;

static void gplan_make(gplan *g, const ein_plan *q, const codes *t, const codes *u, const int64_t *st) {
    memset(g, 0, sizeof *g);
    g->n = g->nsum = 1;
    g->injective = true;
    for (int i = 0; i < t->n; i++) {
        g->td[i] = q->size[t->c[i]];
        g->ts[i] = st[t->c[i]];
        g->n *= g->td[i];
        if (g->ts[i] == 0 && g->td[i] > 1) g->injective = false;
    }
    for (int i = 0; i < (u ? u->n : 0); i++) {
        g->ud[i] = q->size[u->c[i]];
        g->us[i] = st[u->c[i]];
        g->nsum *= g->ud[i];
    }
    g->nt = t->n;
    g->nu = u ? u->n : 0;
}

static inline int64_t goff(const int64_t *d, const int64_t *s, int n, int64_t i) {
    int64_t off = 0;
    for (int k = n - 1; k >= 0; k--) {
        off += (i % d[k]) * s[k];
        i /= d[k];
    }
    return off;
}

/* dst[t] = sum over u of src[t, u] */
static void gather(const gplan *g, const float *src, float *dst) {
    int64_t inner = g->nt ? g->td[g->nt - 1] : 1, is = g->nt ? g->ts[g->nt - 1] : 0;
    int64_t rows = inner ? g->n / inner : 0;
    SAL_PAR_FOR(
        g->n * g->nsum > 32768, "omp parallel for", for (int64_t r = 0; r < rows; r++) {
            const float *s = src + goff(g->td, g->ts, g->nt - 1, r);
            float *d = dst + r * inner;
            if (g->nsum == 1) {
                for (int64_t j = 0; j < inner; j++) d[j] = s[j * is];
                continue;
            }
            for (int64_t j = 0; j < inner; j++) {
                double acc = 0;
                for (int64_t u = 0; u < g->nsum; u++) acc += s[j * is + goff(g->ud, g->us, g->nu, u)];
                d[j] = (float)acc;
            }
        });
}

/* the adjoint: src[t, u] += dst[t] for every u */
static void scatter_add(const gplan *g, float *src, const float *dst) {
    int64_t inner = g->nt ? g->td[g->nt - 1] : 1, is = g->nt ? g->ts[g->nt - 1] : 0;
    int64_t rows = inner ? g->n / inner : 0;
    SAL_PAR_FOR(
        g->injective && g->n * g->nsum > 32768, "omp parallel for", for (int64_t r = 0; r < rows; r++) {
            float *s = src + goff(g->td, g->ts, g->nt - 1, r);
            const float *d = dst + r * inner;
            for (int64_t u = 0; u < g->nsum; u++) {
                float *su = s + goff(g->ud, g->us, g->nu, u);
                for (int64_t j = 0; j < inner; j++) su[j * is] += d[j];
            }
        });
}

/* canonical (contiguous) strides of the codes a ++ b ++ c */
static void canon_strides(const ein_plan *q, const codes *a, const codes *b, const codes *c, int64_t *st) {
    const codes *parts[3] = {c, b, a};
    int64_t acc = 1;
    memset(st, 0, sizeof(int64_t) * NCODE);
    for (int k = 0; k < 3; k++)
        for (int i = parts[k]->n - 1; i >= 0; i--) {
            st[parts[k]->c[i]] = acc;
            acc *= q->size[parts[k]->c[i]];
        }
}

static void cat3(codes *o, const codes *a, const codes *b, const codes *c) {
    o->n = 0;
    const codes *parts[3] = {a, b, c};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < parts[k]->n; i++) push(o, parts[k]->c[i]);
}

/* A' (batch, left, contract) or B' (batch, contract, right): in place, or gathered into slot. */
static const float *operand(sal_opctx *c, const ein_plan *q, bool isA, int slot) {
    int k = isA ? q->ia : q->ib;
    if (isA ? q->da : q->db) return sal_in_f(c, k);
    codes t;
    if (isA) cat3(&t, &q->bat, &q->left, &q->con);
    else cat3(&t, &q->bat, &q->con, &q->right);
    gplan g;
    gplan_make(&g, q, &t, &q->sum[isA ? 0 : 1], q->str[k]);
    float *buf = sal_scratch_get(c->ws, slot, sizeof(float) * (size_t)(g.n ? g.n : 1));
    if (buf) gather(&g, sal_in_f(c, k), buf);
    return buf;
}

/* Y[b] = op(A[b]) op(B[b]) (beta 0) or += (beta 1), for every batch b. */
static void bmm(const ein_plan *q, bool ta, bool tb, int M, int N, int K, const float *A, int64_t sa, const float *B,
                int64_t sb, float beta, float *Y, int64_t sy) {
    if (K == 0) { /* no terms: sgemm may leave C alone */
        if (beta == 0.0f) memset(Y, 0, sizeof *Y * (size_t)(q->Bt * sy));
        return;
    }
    double work = (double)q->Bt * M * N * K;
    if (q->Bt > 1 && work > (1 << 18) && (q->Bt >= omp_get_max_threads() || (double)M * N * K < (1 << 21))) {
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < q->Bt; b++)
            sal_sgemm(ta, tb, M, N, K, 1.0f, A + b * sa, ta ? M : K, B + b * sb, tb ? K : N, beta, Y + b * sy, N);
    } else { /* outside any parallel region: see linear.c's mm_forward_batch */
        for (int64_t b = 0; b < q->Bt; b++)
            sal_sgemm(ta, tb, M, N, K, 1.0f, A + b * sa, ta ? M : K, B + b * sb, tb ? K : N, beta, Y + b * sy, N);
    }
}

static sal_status ein_nomem(const sal_opctx *c) { return sal_wrap(SAL_ERR_NOMEM, "node '%s' (Einsum)", c->n->name); }

static sal_status ein_forward(sal_opctx *c) {
    ein_plan q;
    SAL_TRY(ein_plan_make(c, &q));
    const ein_p *p = c->n->p;
    float *y = sal_out_f(c, 0);
    if (p->nop == 1) {
        codes u = {0};
        for (int i = 0; i < q.op[0].n; i++)
            if (!has(&q.op[2], q.op[0].c[i])) push_new(&u, q.op[0].c[i]);
        gplan g;
        gplan_make(&g, &q, &q.op[2], &u, q.str[0]);
        gather(&g, sal_in_f(c, 0), y);
        return SAL_OK;
    }
    const float *A = operand(c, &q, true, 0), *B = operand(c, &q, false, 1);
    float *Yc = q.dy ? y : sal_scratch_get(c->ws, 2, sizeof(float) * (size_t)(q.Bt * q.M * q.N + 1));
    if (!A || !B || !Yc) return ein_nomem(c);
    bmm(&q, q.ta, q.tb, (int)q.M, (int)q.N, (int)q.K, A, q.M * q.K, B, q.K * q.N, 0.0f, Yc, q.M * q.N);
    if (!q.dy) { /* permute Y' (batch, left, right) into the output's order */
        int64_t st[NCODE];
        canon_strides(&q, &q.bat, &q.left, &q.right, st);
        gplan g;
        gplan_make(&g, &q, &q.op[2], NULL, st);
        gather(&g, Yc, y);
    }
    return SAL_OK;
}

static sal_status ein_backward(sal_opctx *c) {
    if (!c->dout[0]) return SAL_OK;
    ein_plan q;
    SAL_TRY(ein_plan_make(c, &q));
    const ein_p *p = c->n->p;
    const float *dy = sal_f32(c->dout[0]);
    if (p->nop == 1) {
        if (!c->din[0]) return SAL_OK;
        codes u = {0};
        for (int i = 0; i < q.op[0].n; i++)
            if (!has(&q.op[2], q.op[0].c[i])) push_new(&u, q.op[0].c[i]);
        gplan g;
        gplan_make(&g, &q, &q.op[2], &u, q.str[0]);
        scatter_add(&g, sal_f32(c->din[0]), dy);
        return SAL_OK;
    }
    float *dA = c->din[q.ia] ? sal_f32(c->din[q.ia]) : NULL, *dB = c->din[q.ib] ? sal_f32(c->din[q.ib]) : NULL;
    if (!dA && !dB) return SAL_OK;
    const int M = (int)q.M, N = (int)q.N, K = (int)q.K;
    const int64_t sa = q.M * q.K, sb = q.K * q.N, sy = q.M * q.N;
    const float *G = dy; /* dY' (batch, left, right) */
    if (!q.dy) {
        float *buf = sal_scratch_get(c->ws, 2, sizeof(float) * (size_t)(q.Bt * sy + 1));
        if (!buf) return ein_nomem(c);
        int64_t st[NCODE];
        canon_strides(&q, &q.bat, &q.left, &q.right, st);
        codes t;
        cat3(&t, &q.bat, &q.left, &q.right);
        /* dY' [t] = dY at the output position of t: gather from the output's strides */
        int64_t ost[NCODE] = {0}, acc = 1;
        for (int i = q.op[2].n - 1; i >= 0; i--) {
            ost[q.op[2].c[i]] = acc;
            acc *= q.size[q.op[2].c[i]];
        }
        gplan g;
        gplan_make(&g, &q, &t, NULL, ost);
        gather(&g, dy, buf);
        G = buf;
    }
    if (dA) {
        const float *B = operand(c, &q, false, 1);
        if (!B) return ein_nomem(c);
        if (q.da && !q.ta) /* dA (M,K) += dY op(B)^T */
            bmm(&q, false, !q.tb, M, K, N, G, sy, B, sb, 1.0f, dA, sa);
        else if (q.da) /* dA (K,M) += op(B) dY^T */
            bmm(&q, q.tb, true, K, M, N, B, sb, G, sy, 1.0f, dA, sa);
        else {
            float *buf = sal_scratch_get(c->ws, 3, sizeof(float) * (size_t)(q.Bt * sa + 1));
            if (!buf) return ein_nomem(c);
            bmm(&q, false, !q.tb, M, K, N, G, sy, B, sb, 0.0f, buf, sa);
            codes t;
            cat3(&t, &q.bat, &q.left, &q.con);
            gplan g;
            gplan_make(&g, &q, &t, &q.sum[0], q.str[q.ia]);
            scatter_add(&g, dA, buf);
        }
    }
    if (dB) {
        const float *A = operand(c, &q, true, 0);
        if (!A) return ein_nomem(c);
        if (q.db && !q.tb) /* dB (K,N) += op(A)^T dY */
            bmm(&q, !q.ta, false, K, N, M, A, sa, G, sy, 1.0f, dB, sb);
        else if (q.db) /* dB (N,K) += dY^T op(A) */
            bmm(&q, true, q.ta, N, K, M, G, sy, A, sa, 1.0f, dB, sb);
        else {
            float *buf = sal_scratch_get(c->ws, 4, sizeof(float) * (size_t)(q.Bt * sb + 1));
            if (!buf) return ein_nomem(c);
            bmm(&q, !q.ta, false, K, N, M, A, sa, G, sy, 0.0f, buf, sb);
            codes t;
            cat3(&t, &q.bat, &q.con, &q.right);
            gplan g;
            gplan_make(&g, &q, &t, &q.sum[1], q.str[q.ib]);
            scatter_add(&g, dB, buf);
        }
    }
    return SAL_OK;
}

/* any number of inputs reaches init, which refuses more than two by name */
const sal_op sal_op_Einsum = {
    SAL_OP_HEAD(Einsum), .traits = SAL_TR_MULTILINEAR, .lin_in = 0x3, .min_in = 1, .max_in = 16, .min_out = 1, .max_out = 1, .param_mask = 0x3,
    .init = ein_init, .infer = ein_infer, .forward = ein_forward, .backward = ein_backward,
    .overwrites = true,
};
