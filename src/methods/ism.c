/* In-silico mutagenesis (Zhou & Troyanskaya 2015) for one-hot sequences: every single-base
 * substitution, attribution(b, p) = f(x with base b at p) - f(x) (0 at the sequence's own base).
 *
 * mode=incremental (the default) does what fastISM (Nair et al. 2022) does: a substitution changes
 * one input position, so each layer recomputes only the outputs whose receptive field holds a
 * changed input, and reads the rest from the unmutated sequence's activations. It runs models that
 * are a chain Conv1D, Relu, MaxPool1D, Flatten/Reshape, Gemm/MatMul (+ bias Add), Relu, with an
 * optional final Softmax or Sigmoid, on (N, 4, L) inputs; on other graphs it runs mode=naive and
 * says so (checks.ism_incremental = 0). Two refinements keep it exact and small: the changed range
 * is trimmed after every layer to the outputs that really differ from the reference (after a ReLU
 * or a max-pool most do not), and the first dense layer sums per-position partial products in a
 * fixed order, so recomputing the changed positions' parts gives the same bits as a full pass.
 * mode=full runs a full pass per substitution through the same kernels (the reference the tests
 * compare with bit for bit); mode=naive runs every mutated sequence through the model as batched
 * forward passes (any graph). docs/sequences.md. */
#include "method.h"
#include <math.h>
#include <omp.h>

enum { K_CONV, K_RELU, K_POOL, K_DENSE1, K_DENSE, K_VRELU, K_BIAS, K_SOFTMAX, K_SIGMOID };

typedef struct {
    int kind;
    int64_t cin, lin, c, l; /* spatial: channels and length in and out; vector: c = size, l = 1 */
    int64_t k, s, d, p0;    /* conv and pool windows */
    float *w, *b;           /* conv [t][cin][c]; dense1 [p][cin][c]; dense [in][c]; owned */
} ilayer;

typedef struct {
    int n, nspatial; /* layers; the first nspatial act on (L, C) activations, position-major */
    int cap;         /* entries of ly (a failed build may leave weights one past n) */
    ilayer *ly;
} chain;

static void chain_free(chain *ch) {
    for (int i = 0; ch->ly && i < ch->cap; i++) sal_free(ch->ly[i].w), sal_free(ch->ly[i].b);
    sal_free(ch->ly);
}

static const sal_tensor *const_of(const sal_model *m, const sal_node *n, int k) {
    if (k >= n->nin || n->in[k] < 0) return NULL;
    const sal_value *v = &m->val[n->in[k]];
    return v->kind == SAL_VAL_CONST && v->t.dtype == SAL_F32 ? &v->t : NULL;
}

static const char k_oom[] = "out of memory";

/* Why the graph cannot run incrementally (NULL: it can), the chain built into ch. */
static const char *chain_build(const sal_model *m, int outv, int64_t C0, int64_t L0, chain *ch) {
    ch->ly = sal_calloc((size_t)m->nnode + 1, sizeof *ch->ly);
    if (!ch->ly) return k_oom;
    ch->cap = m->nnode + 1;
    int v = m->input[0];
    bool flat = false, vec = false;
    int64_t C = C0, L = L0;
    for (int i = 0; i < m->nnode; i++) {
        const sal_node *n = &m->node[i];
        if (n->nin < 1 || n->in[0] != v || n->nout != 1) return "the graph is not a chain of layers";
        for (int k = 1; k < n->nin; k++)
            if (n->in[k] >= 0 && m->val[n->in[k]].kind != SAL_VAL_CONST) return "a node reads a second varying input";
        ilayer *y = &ch->ly[ch->n];
        y->cin = C, y->lin = L;
        const char *op = n->op_type;
        if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
            v = n->out[0];
            continue;
        }
        if (!strcmp(op, "Flatten") || !strcmp(op, "Reshape")) {
            if (vec && strcmp(op, "Flatten")) return "a Reshape after the dense layers";
            flat = true, v = n->out[0];
            continue;
        }
        if (!strcmp(op, "Conv") && !flat && !vec) {
            const sal_tensor *W = const_of(m, n, 1), *B = const_of(m, n, 2);
            int np = 0, ns = 0, nd = 0;
            const int64_t *pads = sal_attr_ints(n, "pads", &np), *st = sal_attr_ints(n, "strides", &ns),
                          *dl = sal_attr_ints(n, "dilations", &nd);
            if (!W || W->ndim != 3 || W->dim[1] != C || sal_attr_int(n, "group", 1) != 1 ||
                strcmp(sal_attr_string(n, "auto_pad", "NOTSET"), "NOTSET") || (n->nin > 2 && n->in[2] >= 0 && !B))
                return "a Conv that is not a plain Conv1D with constant weights";
            y->kind = K_CONV, y->c = W->dim[0], y->k = W->dim[2];
            y->s = ns ? st[0] : 1, y->d = nd ? dl[0] : 1, y->p0 = np ? pads[0] : 0;
            int64_t p1 = np ? pads[1] : 0;
            y->l = (L + y->p0 + p1 - y->d * (y->k - 1) - 1) / y->s + 1;
            y->w = sal_malloc((size_t)(y->k * C * y->c) * sizeof *y->w);
            y->b = sal_calloc((size_t)y->c, sizeof *y->b);
            if (!y->w || !y->b) return k_oom;
            for (int64_t o = 0; o < y->c; o++) {
                for (int64_t c = 0; c < C; c++)
                    for (int64_t t = 0; t < y->k; t++) y->w[(t * C + c) * y->c + o] = sal_f32(W)[(o * C + c) * y->k + t];
                if (B) y->b[o] = sal_f32(B)[o];
            }
        } else if (!strcmp(op, "MaxPool") && !flat && !vec) {
            int nk = 0, np = 0, ns = 0, nd = 0;
            const int64_t *ks = sal_attr_ints(n, "kernel_shape", &nk), *pads = sal_attr_ints(n, "pads", &np),
                          *st = sal_attr_ints(n, "strides", &ns), *dl = sal_attr_ints(n, "dilations", &nd);
            if (nk != 1 || (nd && dl[0] != 1) || sal_attr_int(n, "ceil_mode", 0) ||
                strcmp(sal_attr_string(n, "auto_pad", "NOTSET"), "NOTSET") || n->nout != 1)
                return "a MaxPool that is not a plain MaxPool1D";
            y->kind = K_POOL, y->c = C, y->k = ks[0], y->s = ns ? st[0] : 1, y->d = 1, y->p0 = np ? pads[0] : 0;
            y->l = (L + y->p0 + (np ? pads[1] : 0) - y->k) / y->s + 1;
        } else if (!strcmp(op, "Relu")) {
            y->kind = vec ? K_VRELU : K_RELU, y->c = C, y->l = L;
        } else if ((!strcmp(op, "Gemm") || !strcmp(op, "MatMul")) && (flat || vec)) {
            const sal_tensor *W = const_of(m, n, 1), *B = const_of(m, n, 2);
            bool gemm = !strcmp(op, "Gemm"), tb = gemm && sal_attr_int(n, "transB", 0);
            if (!W || W->ndim != 2 || (gemm && sal_attr_int(n, "transA", 0)) || (gemm && n->nin > 2 && n->in[2] >= 0 && !B))
                return "a dense layer without constant weights";
            int64_t nin = tb ? W->dim[1] : W->dim[0], nout = tb ? W->dim[0] : W->dim[1];
            if (nin != C * L) return "a dense layer whose size does not match its input";
            float alpha = gemm ? sal_attr_float(n, "alpha", 1) : 1, beta = gemm ? sal_attr_float(n, "beta", 1) : 1;
            if (B && sal_tensor_numel(B) != nout && sal_tensor_numel(B) != 1) return "a Gemm bias that is not per output";
            y->kind = vec ? K_DENSE : K_DENSE1, y->c = nout, y->l = 1;
            y->w = sal_malloc((size_t)(nin * nout) * sizeof *y->w);
            y->b = sal_calloc((size_t)nout, sizeof *y->b);
            if (!y->w || !y->b) return k_oom;
            /* dense1 reads the flattened (C, L) input at c * L + p; its weights go to [p][c][out] */
            for (int64_t f = 0; f < nin; f++)
                for (int64_t h = 0; h < nout; h++) {
                    float wv = alpha * sal_f32(W)[tb ? h * nin + f : f * nout + h];
                    int64_t dst = vec ? f * nout + h : ((f % L) * C + f / L) * nout + h;
                    y->w[dst] = wv;
                }
            for (int64_t h = 0; B && h < nout; h++) y->b[h] = beta * sal_f32(B)[sal_tensor_numel(B) == 1 ? 0 : h];
            if (!vec) ch->nspatial = ch->n;
            vec = true, C = nout, L = 1;
            ch->n++;
            v = n->out[0];
            continue;
        } else if (!strcmp(op, "Add") && vec) {
            const sal_tensor *B = const_of(m, n, 1);
            if (!B || sal_tensor_numel(B) != C) return "an Add that is not a bias";
            y->kind = K_BIAS, y->c = C, y->l = 1;
            if (!(y->b = sal_malloc((size_t)C * sizeof *y->b))) return k_oom;
            memcpy(y->b, B->data, (size_t)C * sizeof *y->b);
        } else if ((!strcmp(op, "Softmax") || !strcmp(op, "Sigmoid")) && vec && n->out[0] == outv) {
            y->kind = !strcmp(op, "Softmax") ? K_SOFTMAX : K_SIGMOID, y->c = C, y->l = 1;
        } else {
            return "an op outside Conv1D, Relu, MaxPool1D, Flatten, Gemm/MatMul, Add, Softmax, Sigmoid";
        }
        if (!vec && y->l < 1) return "a layer with no output";
        C = y->c, L = y->l;
        ch->n++;
        v = n->out[0];
    }
    if (v != outv) return "the explained output is not the end of the chain";
    if (!vec) return "no dense layer ends the chain";
    return NULL;
}

/* ---- kernels: the same code computes a window and a full pass, so both give the same bits ---- */

/* Input row q of a layer: from the changed window [wa, wb) when inside it, else the reference. */
static inline const float *row_of(const float *ref, const float *win, int64_t wa, int64_t wb, int64_t q, int64_t C) {
    return q >= wa && q < wb ? win + (q - wa) * C : ref + q * C;
}

static void conv_rows(const ilayer *y, const float *ref, const float *win, int64_t wa, int64_t wb, int64_t ja,
                      int64_t jb, float *out) {
    int64_t C = y->cin, O = y->c;
    for (int64_t j = ja; j < jb; j++) {
        float *o = out + (j - ja) * O;
        memcpy(o, y->b, (size_t)O * sizeof *o);
        for (int64_t t = 0; t < y->k; t++) {
            int64_t q = j * y->s - y->p0 + t * y->d;
            if (q < 0 || q >= y->lin) continue;
            const float *r = row_of(ref, win, wa, wb, q, C);
            for (int64_t c = 0; c < C; c++) {
                float v = r[c];
                if (v == 0) continue; /* one-hot inputs and ReLU outputs: mostly zeros */
                const float *w = y->w + (t * C + c) * O;
#pragma omp simd
                for (int64_t k = 0; k < O; k++) o[k] += v * w[k];
            }
        }
    }
}

static void pool_rows(const ilayer *y, const float *ref, const float *win, int64_t wa, int64_t wb, int64_t ja,
                      int64_t jb, float *out) {
    int64_t C = y->c;
    for (int64_t j = ja; j < jb; j++) {
        float *o = out + (j - ja) * C;
        for (int64_t c = 0; c < C; c++) o[c] = -INFINITY;
        for (int64_t t = 0; t < y->k; t++) {
            int64_t q = j * y->s - y->p0 + t;
            if (q < 0 || q >= y->lin) continue;
            const float *r = row_of(ref, win, wa, wb, q, C);
            for (int64_t c = 0; c < C; c++) o[c] = r[c] > o[c] ? r[c] : o[c];
        }
    }
}

/* dense1's part of input position p: part[h] = sum_c w[p][c][h] * x[p][c] */
static void dense_part(const ilayer *y, const float *r, int64_t p, float *part) {
    int64_t C = y->cin, H = y->c;
    memset(part, 0, (size_t)H * sizeof *part);
    for (int64_t c = 0; c < C; c++) {
        float v = r[c];
        if (v == 0) continue;
        const float *w = y->w + (p * C + c) * H;
#pragma omp simd
        for (int64_t h = 0; h < H; h++) part[h] += v * w[h];
    }
}

/* The vector layers after dense1, in place on z (size at most vmax), then the explained value. */
static void vector_tail(const chain *ch, float *z, float *tmp) {
    for (int i = ch->nspatial + 1; i < ch->n; i++) {
        const ilayer *y = &ch->ly[i];
        switch (y->kind) {
        case K_DENSE:
            for (int64_t h = 0; h < y->c; h++) tmp[h] = y->b[h];
            for (int64_t f = 0; f < y->cin; f++) {
                float v = z[f];
                for (int64_t h = 0; h < y->c; h++) tmp[h] += v * y->w[f * y->c + h];
            }
            memcpy(z, tmp, (size_t)y->c * sizeof *z);
            break;
        case K_VRELU:
            for (int64_t h = 0; h < y->c; h++) z[h] = z[h] > 0 ? z[h] : 0;
            break;
        case K_BIAS:
            for (int64_t h = 0; h < y->c; h++) z[h] += y->b[h];
            break;
        case K_SIGMOID:
            for (int64_t h = 0; h < y->c; h++) z[h] = 1 / (1 + expf(-z[h]));
            break;
        case K_SOFTMAX: {
            float mx = z[0];
            double s = 0;
            for (int64_t h = 1; h < y->c; h++) mx = fmaxf(mx, z[h]);
            for (int64_t h = 0; h < y->c; h++) s += exp((double)z[h] - mx);
            for (int64_t h = 0; h < y->c; h++) z[h] = (float)(exp((double)z[h] - mx) / s);
            break;
        }
        }
    }
}

/* Per sample: the reference activations (act[i]: layer i's output, position-major; act[-1] the
 * input) and dense1's parts. */
typedef struct {
    const chain *ch;
    float **act;   /* nspatial + 1 buffers: act[0] input (L0, C0), act[i + 1] layer i's output */
    float *parts;  /* (Lp, H) */
    int64_t vmax;  /* the widest vector */
} refpass;

/* Full pass of the spatial layers from act[0], then dense1's parts and the vector tail into z. */
static void full_pass(const chain *ch, float **act, float *parts, float *z, float *tmp) {
    for (int i = 0; i < ch->nspatial; i++) {
        const ilayer *y = &ch->ly[i];
        if (y->kind == K_CONV) conv_rows(y, act[i], NULL, 0, 0, 0, y->l, act[i + 1]);
        else if (y->kind == K_POOL) pool_rows(y, act[i], NULL, 0, 0, 0, y->l, act[i + 1]);
        else
            for (int64_t e = 0; e < y->l * y->c; e++) act[i + 1][e] = act[i][e] > 0 ? act[i][e] : 0;
    }
    const ilayer *d = &ch->ly[ch->nspatial];
    int64_t Lp = d->lin, H = d->c;
    for (int64_t p = 0; p < Lp; p++) dense_part(d, act[ch->nspatial] + p * d->cin, p, parts + p * H);
    for (int64_t h = 0; h < H; h++) {
        float s = d->b[h];
        for (int64_t p = 0; p < Lp; p++) s += parts[p * H + h];
        z[h] = s;
    }
    vector_tail(ch, z, tmp);
}

/* Scratch of one thread for incremental passes. */
typedef struct {
    float **win; /* per spatial layer: its changed outputs; win[0]: the changed input rows */
    float *part, *z, *tmp;
} scratch;

/* One substitution: input rows [a, a + 1) replaced by `row`; z gets the output vector. */
static void incremental(const chain *ch, float *const *act, const float *parts, const float *row, int64_t a,
                        scratch *sc) {
    int64_t wa = a, wb = a + 1;
    memcpy(sc->win[0], row, (size_t)ch->ly[0].cin * sizeof *row);
    for (int i = 0; i < ch->nspatial && wa < wb; i++) {
        const ilayer *y = &ch->ly[i];
        int64_t ja, jb;
        if (y->kind == K_RELU) {
            ja = wa, jb = wb;
            for (int64_t e = 0; e < (jb - ja) * y->c; e++) sc->win[i + 1][e] = sc->win[i][e] > 0 ? sc->win[i][e] : 0;
        } else {
            int64_t span = (y->k - 1) * y->d, lo = wa - span + y->p0;
            ja = lo <= 0 ? 0 : (lo + y->s - 1) / y->s;
            jb = (wb - 1 + y->p0) / y->s + 1;
            if (jb > y->l) jb = y->l;
            if (ja >= jb) {
                wa = wb;
                break;
            }
            (y->kind == K_CONV ? conv_rows : pool_rows)(y, act[i], sc->win[i], wa, wb, ja, jb, sc->win[i + 1]);
        }
        /* trim to the outputs that differ from the reference */
        const float *ref = act[i + 1], *w = sc->win[i + 1];
        int64_t C = y->c, na = ja, nb = jb;
        while (na < nb && !memcmp(w + (na - ja) * C, ref + na * C, (size_t)C * sizeof *w)) na++;
        while (nb > na && !memcmp(w + (nb - 1 - ja) * C, ref + (nb - 1) * C, (size_t)C * sizeof *w)) nb--;
        if (na > ja) memmove(sc->win[i + 1], w + (na - ja) * C, (size_t)((nb - na) * C) * sizeof *w);
        wa = na, wb = nb;
    }
    const ilayer *d = &ch->ly[ch->nspatial];
    int64_t Lp = d->lin, H = d->c;
    for (int64_t p = wa; p < wb; p++) dense_part(d, sc->win[ch->nspatial] + (p - wa) * d->cin, p, sc->part + (p - wa) * H);
    for (int64_t h = 0; h < H; h++) {
        float s = d->b[h];
        for (int64_t p = 0; p < Lp; p++) s += p >= wa && p < wb ? sc->part[(p - wa) * H + h] : parts[p * H + h];
        sc->z[h] = s;
    }
    vector_tail(ch, sc->z, sc->tmp);
}

/* ---- the method ---- */

typedef struct {
    sal_xctx *c;
    int axis;              /* 1: (N, 4, L); 2: (N, L, 4) */
    int64_t L, per;        /* positions; rows per sample (naive) */
    int64_t *muts;         /* naive: per sample, per row k >= 1: p * 4 + b, or -1 for padding */
    float *val;            /* naive: (N, per) */
} ism_job;

static float xat(const ism_job *j, const float *x, int64_t b, int64_t p) {
    return j->axis == 1 ? x[b * j->L + p] : x[p * 4 + b];
}

/* Base of position p, or -1 when the column is not one-hot (N). */
static int base_at(const ism_job *j, const float *x, int64_t p) {
    int hot = -1, ones = 0;
    double s = 0;
    for (int b = 0; b < 4; b++) {
        float v = xat(j, x, b, p);
        s += v;
        if (v == 1) hot = b, ones++;
    }
    return s == 1 && ones == 1 ? hot : -1;
}

/* The explained value of an output vector z (size K): the target's entry, or its softmax
 * probability when asked for on a model that ends in logits. */
static float explained(const sal_xctx *c, const float *z, int64_t K, int64_t t) {
    if (!c->prob || c->out_prob) return z[t];
    float mx = z[0];
    double s = 0;
    for (int64_t k = 1; k < K; k++) mx = fmaxf(mx, z[k]);
    for (int64_t k = 0; k < K; k++) s += exp((double)z[k] - mx);
    return (float)(exp((double)z[t] - mx) / s);
}

static sal_status naive_make(void *u, int64_t i, int64_t k, float *row, sal_rng *r) {
    (void)r;
    const ism_job *j = u;
    int64_t R = 4 * j->L;
    memcpy(row, sal_f32(j->c->x) + i * R, (size_t)R * sizeof *row);
    int64_t mu = k ? j->muts[i * j->per + k] : -1;
    if (mu < 0) return SAL_OK;
    int64_t p = mu / 4, b = mu % 4;
    for (int q = 0; q < 4; q++) row[j->axis == 1 ? q * j->L + p : p * 4 + q] = (float)(q == b);
    return SAL_OK;
}

static void naive_take(void *u, int64_t i, int64_t k, const float *row, const float *g, float value, sal_rng *r) {
    (void)row, (void)g, (void)r;
    const ism_job *j = u;
    j->val[i * j->per + k] = value;
}

static sal_status run_naive(ism_job *j) {
    sal_xctx *c = j->c;
    int64_t N = c->x->dim[0], L = j->L;
    j->per = 1 + 4 * L;
    j->muts = sal_malloc((size_t)(N * j->per) * sizeof *j->muts);
    j->val = sal_malloc((size_t)(N * j->per) * sizeof *j->val);
    if (!j->muts || !j->val) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    int64_t most = 0;
    for (int64_t i = 0; i < N; i++) { /* the substitutions of sample i, then padding */
        const float *x = sal_f32(c->x) + i * 4 * L;
        int64_t k = 1;
        for (int64_t p = 0; p < L; p++) {
            int hot = base_at(j, x, p);
            for (int b = 0; b < 4; b++)
                if (b != hot) j->muts[i * j->per + k++] = p * 4 + b;
        }
        most = k > most ? k : most;
        for (; k < j->per; k++) j->muts[i * j->per + k] = -1;
    }
    /* rows per sample: the most substitutions any sample has (3L without N) */
    int64_t per = most;
    for (int64_t i = 0; i < N; i++)
        memmove(j->muts + i * per, j->muts + i * j->per, (size_t)per * sizeof *j->muts);
    j->per = per;
    /* a substitution changes two elements: through a first product, rows start at its output */
    sal_batched b = {.per_sample = per, .make = naive_make, .take = naive_take, .u = j, .forward_only = true,
                     .near = true};
    SAL_TRY(sal_run_batched(c, &b));
    float *out = sal_f32(&c->out);
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 1; k < per; k++) {
            int64_t mu = j->muts[i * per + k];
            if (mu < 0) continue;
            int64_t p = mu / 4, bb = mu % 4;
            out[i * 4 * L + (j->axis == 1 ? bb * L + p : p * 4 + bb)] = (float)((double)j->val[i * per + k] - j->val[i * per]);
        }
    return SAL_OK;
}

static sal_status run_chain(ism_job *j, const chain *ch, bool full) {
    sal_xctx *c = j->c;
    int64_t N = c->x->dim[0], L = j->L, ns = ch->nspatial;
    const ilayer *d = &ch->ly[ns];
    int64_t vmax = 4, wmax[64] = {0}, Kout = ch->ly[ch->n - 1].c;
    for (int i = 0; i < ch->n; i++) vmax = ch->ly[i].c > vmax ? ch->ly[i].c : vmax;
    if (ns >= 63) return sal_fail(SAL_ERR_UNSUPPORTED, "method ism: more than 63 layers");
    wmax[0] = 1; /* rows a window can hold per layer: bounded by the receptive field */
    for (int i = 0; i < ns; i++) {
        const ilayer *y = &ch->ly[i];
        wmax[i + 1] = y->kind == K_RELU ? wmax[i] : (wmax[i] + (y->k - 1) * y->d) / y->s + 2;
        if (wmax[i + 1] > y->l) wmax[i + 1] = y->l;
    }
    int nt = omp_get_max_threads();
    /* per thread: the activations (full mode mutates its own copy) and the windows */
    int64_t per_t = 0;
    for (int i = 0; i <= ns; i++) per_t += (i ? ch->ly[i - 1].l * ch->ly[i - 1].c : 4 * L) + wmax[i] * (i ? ch->ly[i - 1].c : 4);
    per_t += d->lin * d->c * 2 + 2 * vmax;
    float *mem = sal_malloc((size_t)(per_t * (nt + 1)) * sizeof *mem);
    float **ptr = sal_malloc((size_t)(2 * (ns + 1) * (nt + 1)) * sizeof *ptr);
    if (!mem || !ptr) {
        sal_free(mem), sal_free(ptr);
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    /* slot t (t < nt: threads; t = nt: the reference): act[0..ns], win[0..ns], parts, part, z, tmp */
    float **act = ptr, **win = ptr + (ns + 1) * (nt + 1);
    float *parts[nt + 1], *part[nt + 1], *zz[nt + 1], *tmp[nt + 1];
    for (int t = 0; t <= nt; t++) {
        float *q = mem + per_t * t;
        for (int i = 0; i <= ns; i++) {
            int64_t C = i ? ch->ly[i - 1].c : 4, Ll = i ? ch->ly[i - 1].l : L;
            act[t * (ns + 1) + i] = q, q += Ll * C;
            win[t * (ns + 1) + i] = q, q += wmax[i] * C;
        }
        parts[t] = q, q += d->lin * d->c;
        part[t] = q, q += d->lin * d->c;
        zz[t] = q, q += vmax;
        tmp[t] = q;
    }
    float *out = sal_f32(&c->out);
    for (int64_t i = 0; i < N; i++) {
        const float *x = sal_f32(c->x) + i * 4 * L;
        float **ra = act + nt * (ns + 1);
        for (int64_t p = 0; p < L; p++)
            for (int b = 0; b < 4; b++) ra[0][p * 4 + b] = x[b * L + p];
        full_pass(ch, ra, parts[nt], zz[nt], tmp[nt]);
        float f0 = explained(c, zz[nt], Kout, c->target[i]);
#pragma omp parallel for schedule(dynamic, 8)
        for (int64_t p = 0; p < L; p++) {
            int t = omp_get_thread_num();
            int hot = base_at(j, x, p);
            float **ta = act + t * (ns + 1);
            scratch sc = {.win = win + t * (ns + 1), .part = part[t], .z = zz[t], .tmp = tmp[t]};
            for (int b = 0; b < 4; b++) {
                float row[4] = {0}, f;
                row[b] = 1;
                if (b == hot) continue;
                if (full) { /* the mutated sequence from scratch */
                    memcpy(ta[0], ra[0], (size_t)(4 * L) * sizeof *ta[0]);
                    memcpy(ta[0] + p * 4, row, sizeof row);
                    full_pass(ch, ta, parts[t], zz[t], tmp[t]);
                } else {
                    incremental(ch, ra, parts[nt], row, p, &sc);
                }
                f = explained(c, zz[t], Kout, c->target[i]);
                out[i * 4 * L + b * L + p] = (float)((double)f - f0);
            }
        }
    }
    sal_free(mem);
    sal_free(ptr);
    return SAL_OK;
}

static sal_status run_ism(sal_xctx *c) {
    const sal_tensor *x = c->x;
    static const char *const modes[] = {"incremental", "full", "naive", NULL};
    static const char *const axes[] = {"auto", "1", "2", NULL};
    int mode, ax;
    SAL_TRY(sal_param_choice(c, "mode", modes, &mode));
    SAL_TRY(sal_param_choice(c, "axis", axes, &ax));
    if (x->ndim != 3 || (x->dim[1] != 4 && x->dim[2] != 4)) {
        char b[160];
        return sal_fail(SAL_ERR_SHAPE, "method ism: needs one-hot sequences (N, 4, L) or (N, L, 4), not %s",
                        sal_shape_str(x->ndim, x->dim, b, sizeof b));
    }
    ism_job j = {.c = c, .axis = ax ? ax : x->dim[1] == 4 ? 1 : 2};
    if (x->dim[j.axis] != 4) return sal_fail(SAL_ERR_SHAPE, "method ism: axis=%d does not hold 4 bases", j.axis);
    j.L = x->dim[j.axis == 1 ? 2 : 1];
    SAL_TRY(sal_tensor_alloc(&c->out, SAL_F32, x->ndim, x->dim));
    memset(c->out.data, 0, (size_t)sal_tensor_numel(x) * sizeof(float));
    chain ch = {0};
    const char *why = NULL;
    if (mode != 2) {
        if (c->region) why = "a region target";
        else if (j.axis != 1) why = "bases on the last axis";
        else why = chain_build(c->m, sal_explained(c, c->m), 4, j.L, &ch);
        if (!why && c->prob && !c->out_prob && ch.ly[ch.n - 1].kind == K_SIGMOID) why = "probabilities of a sigmoid output";
    }
    sal_status st;
    if (why == k_oom) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    else if (mode != 2 && !why) {
        st = run_chain(&j, &ch, mode == 1);
        sal_metric(c, "ism_incremental", mode == 0);
    } else {
        if (mode == 1) st = sal_fail(SAL_ERR_UNSUPPORTED, "method ism: mode=full cannot run this graph: %s", why);
        else st = run_naive(&j);
        sal_metric(c, "ism_incremental", 0);
    }
    chain_free(&ch);
    sal_free(j.muts);
    sal_free(j.val);
    return st;
}

static const sal_param_spec k_ism_params[] = {
    {"mode", "incremental", "incremental (recompute only what a substitution touches, as fastISM), full (a full "
                            "pass per substitution through the same kernels) or naive (batched forward passes of "
                            "the model; any graph)"},
    {"axis", "auto", "the axis holding the 4 bases: 1 (N, 4, L), 2 (N, L, 4), or auto (whichever has size 4)"},
    {NULL, NULL, NULL},
};

const sal_method sal_method_ism = {
    .name = "ism",
    .summary = "in-silico mutagenesis: output change for every single-base substitution, computed incrementally "
               "(Zhou & Troyanskaya 2015; fastISM, Nair et al. 2022)",
    .params = k_ism_params,
    .run = run_ism,
    .black_box = true,
    .sequence = true,
};
