/* Split, Tile and ScatterND: ops that only move elements, for any element type (float32 data, or the
 * int64 shape arithmetic and masks of exported models). */
#include "ops.h"
#include <string.h>

static sal_status need_data(const sal_opctx *c, int i) {
    if (!c->in[i]) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input %d is missing", i);
    return SAL_OK;
}

/* An int64 vector input (rank 0 or 1). */
static sal_status i64_vec(const sal_opctx *c, int i, const char *what, const int64_t **v, int64_t *n) {
    const sal_tensor *t = c->in[i];
    if (t->dtype != SAL_I64 || t->ndim > 1)
        return sal_node_fail(c->n, SAL_ERR_ARG, "%s must be a 1-D int64 tensor", what);
    *v = t->data;
    *n = sal_tensor_numel(t);
    return SAL_OK;
}

/* ---- Split: sizes from the `split` attribute (before opset 13) or input (from 13); without
 * them, equal parts (opset 18: num_outputs parts of ceil(D / num_outputs), the last smaller) ---- */

static sal_status split_init(sal_node *n, const sal_model *g) {
    const sal_attr *no = sal_attr_find(n, "num_outputs");
    if (no && (g->opset < 18 || no->i != n->nout))
        return sal_node_fail(n, SAL_ERR_FORMAT, "num_outputs = %lld, but the node has %d outputs", (long long)no->i,
                             n->nout);
    return SAL_OK;
}

/* The axis, the extents around it and each output's length along it (into len[n->nout]). */
static sal_status split_plan(const sal_opctx *c, int64_t *axis, int64_t *outer, int64_t *inner, int64_t *len) {
    SAL_TRY(need_data(c, 0));
    const sal_tensor *x = c->in[0];
    const sal_node *n = c->n;
    int64_t a = sal_attr_int(n, "axis", 0);
    if (x->ndim < 1 || a < -x->ndim || a >= x->ndim)
        return sal_node_fail(n, SAL_ERR_ARG, "axis %lld out of range for rank %d", (long long)a, x->ndim);
    *axis = a < 0 ? a + x->ndim : a;
    *outer = *inner = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i < *axis) *outer *= x->dim[i];
        if (i > *axis) *inner *= x->dim[i];
    }
    int64_t D = x->dim[*axis], ns = 0;
    const int64_t *s = NULL;
    if (c->g->opset < 13) {
        int k = 0;
        s = sal_attr_ints(n, "split", &k);
        ns = k;
    } else if (n->nin > 1 && c->in[1]) {
        SAL_TRY(i64_vec(c, 1, "split", &s, &ns));
    }
    if (s) {
        if (ns != n->nout)
            return sal_node_fail(n, SAL_ERR_ARG, "split has %lld sizes for %d outputs", (long long)ns, n->nout);
        int64_t tot = 0;
        for (int k = 0; k < n->nout; k++) {
            if (s[k] < 0 || s[k] > D) return sal_node_fail(n, SAL_ERR_ARG, "split size %lld out of range", (long long)s[k]);
            len[k] = s[k];
            tot += s[k];
        }
        if (tot != D)
            return sal_node_fail(n, SAL_ERR_SHAPE, "split sizes add up to %lld, the axis has %lld", (long long)tot,
                                 (long long)D);
        return SAL_OK;
    }
    int64_t k = n->nout;
    if (sal_attr_find(n, "num_outputs")) { /* opset 18: the last part takes what remains */
        int64_t part = (D + k - 1) / k;
        for (int i = 0; i < k; i++) len[i] = D - i * part < part ? (D - i * part > 0 ? D - i * part : 0) : part;
        return SAL_OK;
    }
    if (D % k)
        return sal_node_fail(n, SAL_ERR_SHAPE, "an axis of %lld does not split into %lld equal parts", (long long)D,
                             (long long)k);
    for (int i = 0; i < k; i++) len[i] = D / k;
    return SAL_OK;
}

static sal_status split_infer(sal_opctx *c) {
    int64_t axis, outer, inner, len[c->n->nout];
    SAL_TRY(split_plan(c, &axis, &outer, &inner, len));
    for (int k = 0; k < c->n->nout; k++) {
        if (!c->out[k]) continue;
        sal_same_shape(c, k, 0);
        c->out[k]->dim[axis] = len[k];
    }
    return SAL_OK;
}

static sal_status split_forward(sal_opctx *c) {
    int64_t axis, outer, inner, len[c->n->nout];
    SAL_TRY(split_plan(c, &axis, &outer, &inner, len));
    const sal_tensor *x = c->in[0];
    size_t es = sal_dtype_size(x->dtype);
    int64_t D = x->dim[axis], at = 0;
    for (int k = 0; k < c->n->nout; at += len[k], k++) {
        if (!c->out[k] || !len[k]) continue;
        const char *src = (const char *)x->data + (size_t)(at * inner) * es;
        char *dst = c->out[k]->data;
        size_t row = (size_t)(len[k] * inner) * es, srow = (size_t)(D * inner) * es;
        SAL_PAR_FOR(outer * len[k] * inner > 65536, "omp parallel for",
                    for (int64_t o = 0; o < outer; o++) memcpy(dst + (size_t)o * row, src + (size_t)o * srow, row););
    }
    return SAL_OK;
}

static sal_status split_backward(sal_opctx *c) {
    if (!c->din[0]) return SAL_OK;
    int64_t axis, outer, inner, len[c->n->nout];
    SAL_TRY(split_plan(c, &axis, &outer, &inner, len));
    int64_t D = c->in[0]->dim[axis], at = 0;
    float *dx = sal_f32(c->din[0]);
    for (int k = 0; k < c->n->nout; at += len[k], k++) {
        if (!c->dout[k]) continue;
        const float *dy = sal_f32(c->dout[k]);
        int64_t row = len[k] * inner;
        SAL_PAR_FOR(
            outer * row > 65536, "omp parallel for", for (int64_t o = 0; o < outer; o++) {
                sal_vadd(dx + o * D * inner + at * inner, dy + o * row, row);
            });
    }
    return SAL_OK;
}

const sal_op sal_op_Split = {
    SAL_OP_HEAD(Split), .traits = SAL_TR_ROUTE, .min_in = 1, .max_in = 2, .min_out = 1, .max_out = 64,
    .init = split_init, .infer = split_infer, .forward = split_forward, .backward = split_backward,
    .overwrites = true, SAL_BWD_ROUTE,
};

/* ---- Tile: output dim i = input dim i * repeats[i]; out[j] = in[j mod dim] ---- */

static sal_status tile_plan(const sal_opctx *c, const int64_t **rep) {
    SAL_TRY(need_data(c, 0));
    if (!c->in[1]) return sal_node_fail(c->n, SAL_ERR_FORMAT, "input 1 (repeats) is missing");
    int64_t n = 0;
    SAL_TRY(i64_vec(c, 1, "repeats", rep, &n));
    const sal_tensor *x = c->in[0];
    if (n != x->ndim)
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "repeats has %lld entries for an input of rank %d", (long long)n,
                             x->ndim);
    for (int i = 0; i < x->ndim; i++)
        if ((*rep)[i] < 0) return sal_node_fail(c->n, SAL_ERR_ARG, "repeats[%d] = %lld is negative", i, (long long)(*rep)[i]);
    return SAL_OK;
}

static sal_status tile_infer(sal_opctx *c) {
    const int64_t *rep;
    SAL_TRY(tile_plan(c, &rep));
    sal_same_shape(c, 0, 0);
    sal_tensor *o = c->out[0];
    for (int i = 0; i < o->ndim; i++) {
        if (rep[i] && o->dim[i] > ((int64_t)1 << 40) / rep[i]) {
            char b[160];
            return sal_node_fail(c->n, SAL_ERR_SHAPE, "tiling %s is too large",
                                 sal_shape_str(o->ndim, o->dim, b, sizeof b));
        }
        o->dim[i] *= rep[i];
    }
    return SAL_OK;
}

/* Offset into x of the first element of output row r (all axes but the last), rows of y. */
static int64_t tile_src_row(const sal_tensor *x, const sal_tensor *y, int64_t r) {
    int64_t off = 0, st = x->ndim ? x->dim[x->ndim - 1] : 1;
    for (int i = x->ndim - 2; i >= 0; i--) {
        off += (r % y->dim[i]) % x->dim[i] * st;
        r /= y->dim[i];
        st *= x->dim[i];
    }
    return off;
}

static sal_status tile_forward(sal_opctx *c) {
    const int64_t *rep;
    SAL_TRY(tile_plan(c, &rep));
    const sal_tensor *x = c->in[0], *y = c->out[0];
    size_t es = sal_dtype_size(x->dtype);
    int64_t W = x->ndim ? x->dim[x->ndim - 1] : 1, OW = y->ndim ? y->dim[y->ndim - 1] : 1;
    int64_t rows = OW ? sal_tensor_numel(y) / OW : 0;
    size_t wb = (size_t)W * es;
    SAL_PAR_FOR(
        rows * OW > 65536, "omp parallel for", for (int64_t r = 0; r < rows; r++) {
            const char *src = (const char *)x->data + (size_t)tile_src_row(x, y, r) * es;
            char *dst = (char *)y->data + (size_t)(r * OW) * es;
            for (int64_t j = 0; j < OW; j += W) memcpy(dst + (size_t)j * es, src, wb);
        });
    return SAL_OK;
}

/* Every copy's gradient adds into its source: rows in sequence, as copies share sources. */
static sal_status tile_backward(sal_opctx *c) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    const int64_t *rep;
    SAL_TRY(tile_plan(c, &rep));
    const sal_tensor *x = c->in[0], *y = c->out[0];
    int64_t W = x->ndim ? x->dim[x->ndim - 1] : 1, OW = y->ndim ? y->dim[y->ndim - 1] : 1;
    int64_t rows = OW ? sal_tensor_numel(y) / OW : 0;
    const float *dy = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    for (int64_t r = 0; r < rows; r++) {
        float *d = dx + tile_src_row(x, y, r);
        const float *g = dy + r * OW;
        for (int64_t j = 0; j < OW; j += W)
            for (int64_t i = 0; i < W; i++) d[i] += g[j + i];
    }
    return SAL_OK;
}

const sal_op sal_op_Tile = {
    SAL_OP_HEAD(Tile), .traits = SAL_TR_ROUTE, .min_in = 2, .max_in = 2, .min_out = 1, .max_out = 1,
    .infer = tile_infer, .forward = tile_forward, .backward = tile_backward,
    .overwrites = true,
};

/* ---- ScatterND(data, indices, updates): data with the slices that indices (..., k) names
 * replaced by updates; no reduction (Swin's attention masks as exported). The gradient goes to
 * data where nothing was written and to updates from the positions they were written to. A slice
 * named twice would make the output depend on the order of writes, so it is an error. ---- */

static sal_status scatternd_init(sal_node *n, const sal_model *g) {
    (void)g;
    const char *r = sal_attr_string(n, "reduction", "none");
    if (strcmp(r, "none"))
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "reduction '%s' is not supported (only 'none')", r);
    return SAL_OK;
}

/* Slices: how many index tuples, the tuple length k, the elements per slice. */
static sal_status scatternd_plan(const sal_opctx *c, int64_t *nidx, int64_t *k, int64_t *slice) {
    for (int i = 0; i < 3; i++) SAL_TRY(need_data(c, i));
    const sal_tensor *x = c->in[0], *ix = c->in[1], *u = c->in[2];
    if (ix->dtype != SAL_I64 || ix->ndim < 1)
        return sal_node_fail(c->n, SAL_ERR_ARG, "indices must be an int64 tensor of rank >= 1");
    *k = ix->dim[ix->ndim - 1];
    if (*k < 1 || *k > x->ndim)
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "index tuples of length %lld for data of rank %d", (long long)*k,
                             x->ndim);
    if (u->dtype != x->dtype)
        return sal_node_fail(c->n, SAL_ERR_UNSUPPORTED, "updates have data type %s, data %s",
                             sal_dtype_name(u->dtype), sal_dtype_name(x->dtype));
    /* updates' shape: indices.shape[:-1] + data.shape[k:] */
    bool ok = u->ndim == ix->ndim - 1 + x->ndim - (int)*k;
    for (int d = 0; ok && d < u->ndim; d++)
        ok = u->dim[d] == (d < ix->ndim - 1 ? ix->dim[d] : x->dim[*k + d - (ix->ndim - 1)]);
    if (!ok) {
        char a[96], b[96], e[96];
        return sal_node_fail(c->n, SAL_ERR_SHAPE, "updates %s do not fit indices %s into data %s",
                             sal_shape_str(u->ndim, u->dim, a, sizeof a), sal_shape_str(ix->ndim, ix->dim, b, sizeof b),
                             sal_shape_str(x->ndim, x->dim, e, sizeof e));
    }
    *nidx = sal_tensor_numel(ix) / *k;
    *slice = 1;
    for (int d = (int)*k; d < x->ndim; d++) *slice *= x->dim[d];
    return SAL_OK;
}

static sal_status scatternd_infer(sal_opctx *c) {
    int64_t nidx, k, slice;
    SAL_TRY(scatternd_plan(c, &nidx, &k, &slice));
    sal_same_shape(c, 0, 0);
    return SAL_OK;
}

/* The first element of slice i in data, negative indices counted from the end; -1 out of range. */
static int64_t scatternd_at(const sal_tensor *x, const int64_t *idx, int64_t k, int64_t slice) {
    int64_t at = 0;
    for (int64_t d = 0; d < k; d++) {
        int64_t v = idx[d] < 0 ? idx[d] + x->dim[d] : idx[d];
        if (v < 0 || v >= x->dim[d]) return -1;
        at = at * x->dim[d] + v;
    }
    return at * slice;
}

static sal_status scatternd_forward(sal_opctx *c) {
    int64_t nidx, k, slice;
    SAL_TRY(scatternd_plan(c, &nidx, &k, &slice));
    const sal_tensor *x = c->in[0], *u = c->in[2];
    const int64_t *idx = c->in[1]->data;
    size_t es = sal_dtype_size(x->dtype);
    int64_t nslices = slice ? sal_tensor_numel(x) / slice : 0;
    uint8_t *seen = sal_scratch_get(c->ws, 0, (size_t)nslices + 1);
    if (!seen) return SAL_ERR_NOMEM;
    memset(seen, 0, (size_t)nslices + 1);
    memcpy(c->out[0]->data, x->data, (size_t)sal_tensor_numel(x) * es);
    for (int64_t i = 0; i < nidx; i++) {
        int64_t at = scatternd_at(x, idx + i * k, k, slice);
        if (at < 0) return sal_node_fail(c->n, SAL_ERR_ARG, "index tuple %lld is out of range", (long long)i);
        if (slice && seen[at / slice]++)
            return sal_node_fail(c->n, SAL_ERR_ARG, "index tuple %lld names a slice already written", (long long)i);
        memcpy((char *)c->out[0]->data + at * es, (const char *)u->data + i * slice * es, (size_t)slice * es);
    }
    return SAL_OK;
}

static sal_status scatternd_backward(sal_opctx *c) {
    if (!c->dout[0] || c->out[0]->dtype != SAL_F32) return SAL_OK;
    int64_t nidx, k, slice;
    SAL_TRY(scatternd_plan(c, &nidx, &k, &slice));
    const sal_tensor *x = c->in[0];
    const int64_t *idx = c->in[1]->data;
    const float *dy = sal_f32(c->dout[0]);
    float *dx = c->din[0] ? sal_f32(c->din[0]) : NULL, *du = c->din[2] ? sal_f32(c->din[2]) : NULL;
    int64_t n = sal_tensor_numel(x);
    float *keep = NULL;
    if (dx) { /* dy with the written slices zeroed, then added */
        if (!(keep = sal_scratch_get(c->ws, 0, (size_t)n * sizeof *keep + 1))) return SAL_ERR_NOMEM;
        memcpy(keep, dy, (size_t)n * sizeof *keep);
    }
    for (int64_t i = 0; i < nidx; i++) {
        int64_t at = scatternd_at(x, idx + i * k, k, slice);
        if (at < 0) return sal_node_fail(c->n, SAL_ERR_ARG, "index tuple %lld is out of range", (long long)i);
        for (int64_t j = 0; j < slice; j++) {
            if (du) du[i * slice + j] += dy[at + j];
            if (keep) keep[at + j] = 0.0f;
        }
    }
    for (int64_t i = 0; dx && i < n; i++) dx[i] += keep[i];
    return SAL_OK;
}

const sal_op sal_op_ScatterND = {
    SAL_OP_HEAD(ScatterND), .traits = SAL_TR_ROUTE, .min_in = 3, .max_in = 3, .min_out = 1, .max_out = 1,
    .init = scatternd_init, .infer = scatternd_infer, .forward = scatternd_forward,
    .backward = scatternd_backward, .overwrites = true,
};
