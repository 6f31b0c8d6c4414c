/* Resize (opsets 10 to 19) and Upsample (opset 9, and the scales attribute of older files):
 * nearest and (multi-)linear interpolation, by scales or sizes.
 *
 * Each output coordinate maps back to the input through the coordinate transformation mode
 * (half_pixel, pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn,
 * half_pixel_symmetric); nearest rounds it (round_prefer_floor/ceil, floor, ceil), linear blends its
 * two neighbours (clamped to the edge, which is what ONNX's reference and PyTorch compute). Every
 * resized axis is one such 1-D resampling, y[o, j, :] = w0[j] x[o, i0[j], :] + w1[j] x[o, i1[j], :],
 * so an n-D resize is n passes over (outer, axis, inner) views, and the gradient is the passes'
 * adjoints in reverse order. Both modes are linear in X (ADDITIVE): nearest only routes elements.
 * Opset 10 Resize and Upsample use the asymmetric transform with nearest rounding down when
 * enlarging and up when shrinking, as ONNX Runtime does. Cubic, tf_crop_and_resize and antialiased
 * linear resizing are refused when the model loads. */
#include "ops.h"
#include <math.h>

typedef enum { CT_HALF, CT_PYTORCH_HALF, CT_ALIGN, CT_ASYM, CT_TF_NN, CT_HALF_SYM } rs_ct;
typedef enum { NR_PREFER_FLOOR, NR_PREFER_CEIL, NR_FLOOR, NR_CEIL, NR_SIMPLE } rs_near;
typedef enum { KEEP_STRETCH, KEEP_NOT_LARGER, KEEP_NOT_SMALLER } rs_keep;

typedef struct {
    bool linear, upsample;
    rs_ct ct;
    rs_near nr;
    rs_keep keep;
    int naxes;
    int64_t axes[SAL_MAX_DIMS];
} rs_p;

static sal_status pick(const sal_node *n, const char *attr, const char *def, const char *const *names, int count,
                       int *out) {
    const char *v = sal_attr_string(n, attr, def);
    for (int i = 0; i < count; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return SAL_OK;
        }
    return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "%s '%s' is not supported", attr, v);
}

static sal_status rs_init_common(sal_node *n, const sal_model *g, bool upsample) {
    rs_p *p = sal_calloc(1, sizeof *p);
    if (!p) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    n->p = p;
    p->upsample = upsample;
    const char *mode = sal_attr_string(n, "mode", "nearest");
    if (!strcmp(mode, "linear") || (upsample && !strcmp(mode, "bilinear"))) p->linear = true;
    else if (strcmp(mode, "nearest"))
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "mode '%s' is not supported (nearest and linear are)", mode);
    bool old = upsample || g->opset < 11;
    if (old) {
        p->ct = CT_ASYM;
        p->nr = NR_SIMPLE;
        return SAL_OK;
    }
    static const char *const cts[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                      "tf_half_pixel_for_nn", "half_pixel_symmetric"};
    const char *ct = sal_attr_string(n, "coordinate_transformation_mode", "half_pixel");
    if (!strcmp(ct, "tf_crop_and_resize"))
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "coordinate_transformation_mode 'tf_crop_and_resize' is not "
                             "supported");
    int v = 0;
    SAL_TRY(pick(n, "coordinate_transformation_mode", "half_pixel", cts, 6, &v));
    p->ct = (rs_ct)v;
    static const char *const nrs[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    SAL_TRY(pick(n, "nearest_mode", "round_prefer_floor", nrs, 4, &v));
    p->nr = (rs_near)v;
    static const char *const keeps[] = {"stretch", "not_larger", "not_smaller"};
    SAL_TRY(pick(n, "keep_aspect_ratio_policy", "stretch", keeps, 3, &v));
    p->keep = (rs_keep)v;
    if (p->linear && sal_attr_int(n, "antialias", 0) != 0)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "antialiased linear resizing is not supported");
    int na = 0;
    const int64_t *ax = sal_attr_ints(n, "axes", &na);
    if (ax && (na < 1 || na > SAL_MAX_DIMS)) return sal_node_fail(n, SAL_ERR_FORMAT, "axes has %d entries", na);
    p->naxes = ax ? na : 0;
    if (ax) memcpy(p->axes, ax, sizeof *ax * (size_t)na);
    return SAL_OK;
}

static sal_status resize_init(sal_node *n, const sal_model *g) { return rs_init_common(n, g, false); }
static sal_status upsample_init(sal_node *n, const sal_model *g) { return rs_init_common(n, g, true); }

/* Output size and scale of every axis of X. */
typedef struct {
    int r;
    int64_t in[SAL_MAX_DIMS], out[SAL_MAX_DIMS];
    double scale[SAL_MAX_DIMS];
    double len[SAL_MAX_DIMS]; /* the resized length the transforms use: in * scale when scales are
                               * given, as in ONNX's reference (align_corners differs otherwise) */
} rs_plan;

/* An input that is given and holds elements (exporters pass empty tensors for "absent"). */
static const sal_tensor *given(const sal_opctx *c, int i) {
    return i < c->n->nin && c->in[i] && sal_tensor_numel(c->in[i]) > 0 ? c->in[i] : NULL;
}

static sal_status rs_plan_make(const sal_opctx *c, rs_plan *q) {
    const rs_p *p = c->n->p;
    SAL_TRY(sal_need_f32(c, 0, -1));
    const sal_tensor *x = c->in[0];
    q->r = x->ndim;
    bool on[SAL_MAX_DIMS] = {false}; /* the axes scales or sizes speak of */
    int map[SAL_MAX_DIMS];           /* entry of scales or sizes for each of those axes */
    int nent = x->ndim;
    if (p->naxes) {
        nent = p->naxes;
        for (int k = 0; k < p->naxes; k++) {
            int64_t a = p->axes[k] < 0 ? p->axes[k] + x->ndim : p->axes[k];
            if (a < 0 || a >= x->ndim || on[a])
                return sal_node_fail(c->n, SAL_ERR_ARG, "axes entry %lld is out of range or repeated", (long long)p->axes[k]);
            on[a] = true;
            map[a] = k;
        }
    } else {
        for (int i = 0; i < x->ndim; i++) on[i] = true, map[i] = i;
    }
    const float *scales = NULL;
    const int64_t *sizes = NULL;
    int si = c->g->opset < 11 || p->upsample ? 1 : 2;
    const sal_tensor *ts = given(c, si), *tz = p->upsample || c->g->opset < 11 ? NULL : given(c, 3);
    if (p->upsample && c->n->nin < 2) { /* opsets 7 and 8: an attribute */
        const sal_attr *a = sal_attr_find(c->n, "scales");
        if (!a || a->type != SAL_ATTR_FLOATS || a->n != x->ndim)
            return sal_node_fail(c->n, SAL_ERR_FORMAT, "needs %d scales (the scales input or attribute)", x->ndim);
        scales = a->floats;
    } else if (tz) {
        if (ts) return sal_node_fail(c->n, SAL_ERR_ARG, "scales and sizes are both given; only one may be");
        if (tz->dtype != SAL_I64 || tz->ndim != 1 || tz->dim[0] != nent)
            return sal_node_fail(c->n, SAL_ERR_ARG, "sizes must be %d int64 values", nent);
        sizes = tz->data;
    } else if (ts) {
        if (ts->dtype != SAL_F32 || ts->ndim != 1 || ts->dim[0] != nent)
            return sal_node_fail(c->n, SAL_ERR_ARG, "scales must be %d float values", nent);
        scales = sal_f32(ts);
    } else {
        return sal_node_fail(c->n, SAL_ERR_ARG, "neither scales nor sizes is given");
    }
    /* keep_aspect_ratio_policy: one scale for all the axes sizes speak of */
    double common = 0;
    if (sizes && p->keep != KEEP_STRETCH)
        for (int i = 0; i < x->ndim; i++)
            if (on[i] && x->dim[i] > 0) {
                double s = (double)sizes[map[i]] / (double)x->dim[i];
                if (common == 0 || (p->keep == KEEP_NOT_LARGER ? s < common : s > common)) common = s;
            }
    for (int i = 0; i < x->ndim; i++) {
        int64_t in = x->dim[i], out = in;
        double s = 1;
        if (on[i] && scales) {
            s = scales[map[i]];
            if (!(s > 0) || !isfinite(s))
                return sal_node_fail(c->n, SAL_ERR_ARG, "scale %g for axis %d is not positive", s, i);
            double o = floor((double)in * s);
            if (o > (double)((int64_t)1 << 40))
                return sal_node_fail(c->n, SAL_ERR_SHAPE, "axis %d would have %g elements", i, o);
            out = (int64_t)o;
        } else if (on[i]) {
            if (common > 0) out = (int64_t)floor((double)in * common + 0.5);
            else out = sizes[map[i]];
            if (out < 0 || out > ((int64_t)1 << 40))
                return sal_node_fail(c->n, SAL_ERR_ARG, "size %lld for axis %d is out of range", (long long)out, i);
            s = common > 0 ? common : in ? (double)out / (double)in : 1;
        }
        q->in[i] = in;
        q->out[i] = out;
        q->scale[i] = s;
        q->len[i] = on[i] && scales ? (double)in * s : (double)out;
    }
    return SAL_OK;
}

static sal_status rs_infer(sal_opctx *c) {
    rs_plan q;
    SAL_TRY(rs_plan_make(c, &q));
    sal_same_shape(c, 0, 0);
    memcpy(c->out[0]->dim, q.out, sizeof(int64_t) * (size_t)q.r);
    return SAL_OK;
}

/* The taps of one axis: output j reads i0[j] with weight w0[j] and i1[j] with w1[j]. */
typedef struct {
    int64_t *i0, *i1;
    float *w0, *w1;
} taps;

/* The input coordinate of output coordinate j of an axis of in -> out elements at scale s. */
static double src_coord(rs_ct ct, int64_t j, int64_t in, int64_t out, double len, double s) {
    double x = (double)j;
    switch (ct) {
    case CT_HALF: return (x + 0.5) / s - 0.5;
    case CT_PYTORCH_HALF: return len > 1 ? (x + 0.5) / s - 0.5 : 0;
    case CT_ALIGN: return len > 1 ? x * (double)(in - 1) / (len - 1) : 0;
    case CT_ASYM: return x / s;
    case CT_TF_NN: return (x + 0.5) / s;
    case CT_HALF_SYM: {
        double adj = (double)out / (s * (double)in), center = (double)in / 2;
        return center * (1 - adj) + (x + 0.5) / s - 0.5;
    }
    }
    return x;
}

/* Fills the taps of an axis; false when they are the identity (nothing to do on this axis). */
static bool make_taps(const rs_p *p, int64_t in, int64_t out, double len, double s, taps *t) {
    bool id = in == out;
    for (int64_t j = 0; j < out; j++) {
        double x = src_coord(p->ct, j, in, out, len, s);
        int64_t a, b;
        float w1 = 0;
        if (!p->linear) {
            switch (p->nr) {
            case NR_PREFER_FLOOR: x = ceil(x - 0.5); break;
            case NR_PREFER_CEIL: x = floor(x + 0.5); break;
            case NR_FLOOR: x = floor(x); break;
            case NR_CEIL: x = ceil(x); break;
            case NR_SIMPLE: x = s < 1 ? ceil(x) : floor(x); break;
            }
            a = b = x < 0 ? 0 : x > (double)(in - 1) ? in - 1 : (int64_t)x;
        } else {
            x = x < 0 ? 0 : x > (double)(in - 1) ? (double)(in - 1) : x;
            a = (int64_t)floor(x);
            b = a + 1 < in ? a + 1 : a;
            w1 = (float)(x - (double)a);
        }
        t->i0[j] = a;
        t->i1[j] = b;
        t->w0[j] = 1.0f - w1;
        t->w1[j] = w1;
        id = id && a == j && w1 == 0;
    }
    return !id;
}

/* The passes of one call: the resized axes in order, with their taps. */
typedef struct {
    rs_plan q;
    int np;
    int ax[SAL_MAX_DIMS];
    taps t[SAL_MAX_DIMS];
} rs_passes;

static sal_status rs_passes_make(const sal_opctx *c, rs_passes *ps) {
    SAL_TRY(rs_plan_make(c, &ps->q));
    const rs_plan *q = &ps->q;
    int64_t tot = 0;
    for (int i = 0; i < q->r; i++) tot += q->out[i];
    char *mem = sal_scratch_get(c->ws, 2, (size_t)tot * (2 * sizeof(int64_t) + 2 * sizeof(float)) + 1);
    if (!mem) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
    ps->np = 0;
    for (int i = 0; i < q->r; i++) {
        if (q->in[i] == 0) continue; /* then the output is empty too, or the axis has no source */
        taps *t = &ps->t[ps->np];
        int64_t o = q->out[i];
        t->i0 = (int64_t *)mem, t->i1 = t->i0 + o;
        t->w0 = (float *)(t->i1 + o), t->w1 = t->w0 + o;
        mem = (char *)(t->w1 + o);
        if (make_taps(c->n->p, q->in[i], o, q->len[i], q->scale[i], t)) ps->ax[ps->np++] = i;
    }
    return SAL_OK;
}

/* (outer, Din, inner) -> (outer, Dout, inner) along one axis. */
static void pass_fwd(const taps *t, bool linear, int64_t outer, int64_t Din, int64_t Dout, int64_t inner,
                     const float *x, float *y) {
    if (inner == 1) { /* the last axis: one element per tap */
        SAL_PAR_FOR(
            outer * Dout > 32768, "omp parallel for", for (int64_t o = 0; o < outer; o++) {
                const float *xr = x + o * Din;
                float *d = y + o * Dout;
                if (!linear)
                    for (int64_t j = 0; j < Dout; j++) d[j] = xr[t->i0[j]];
                else
                    for (int64_t j = 0; j < Dout; j++) d[j] = t->w0[j] * xr[t->i0[j]] + t->w1[j] * xr[t->i1[j]];
            });
        return;
    }
    SAL_PAR_FOR(
        outer * Dout * inner > 32768, "omp parallel for", for (int64_t r = 0; r < outer * Dout; r++) {
            int64_t o = r / Dout, j = r % Dout;
            const float *a = x + (o * Din + t->i0[j]) * inner, *b = x + (o * Din + t->i1[j]) * inner;
            float *d = y + r * inner, w0 = t->w0[j], w1 = t->w1[j];
            if (!linear)
                memcpy(d, a, sizeof *d * (size_t)inner);
            else
                for (int64_t k = 0; k < inner; k++) d[k] = w0 * a[k] + w1 * b[k];
        });
}

/* The adjoint: gx (outer, Din, inner) += taps^T gy; each outer slice is one thread's. */
static void pass_bwd(const taps *t, int64_t outer, int64_t Din, int64_t Dout, int64_t inner, const float *gy,
                     float *gx) {
    SAL_PAR_FOR(
        outer > 1 && outer * Dout * inner > 32768, "omp parallel for",
        for (int64_t o = 0; o < outer; o++) for (int64_t j = 0; j < Dout; j++) {
            float *a = gx + (o * Din + t->i0[j]) * inner, *b = gx + (o * Din + t->i1[j]) * inner;
            const float *g = gy + (o * Dout + j) * inner;
            float w0 = t->w0[j], w1 = t->w1[j];
            for (int64_t k = 0; k < inner; k++) a[k] += w0 * g[k];
            if (w1 != 0)
                for (int64_t k = 0; k < inner; k++) b[k] += w1 * g[k];
        });
}

/* outer and inner extents of axis a when the axes before `done` passes are already resized */
static void extents(const rs_plan *q, const int64_t *cur, int a, int64_t *outer, int64_t *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < q->r; i++) {
        if (i < a) *outer *= cur[i];
        if (i > a) *inner *= cur[i];
    }
}

static sal_status rs_forward(sal_opctx *c) {
    rs_passes ps;
    SAL_TRY(rs_passes_make(c, &ps));
    const rs_p *p = c->n->p;
    const rs_plan *q = &ps.q;
    const float *src = sal_in_f(c, 0);
    float *y = sal_out_f(c, 0);
    if (ps.np == 0) {
        memcpy(y, src, sizeof *y * (size_t)sal_tensor_numel(c->out[0]));
        return SAL_OK;
    }
    int64_t cur[SAL_MAX_DIMS];
    memcpy(cur, q->in, sizeof cur);
    for (int k = 0; k < ps.np; k++) {
        int a = ps.ax[k];
        int64_t outer, inner;
        extents(q, cur, a, &outer, &inner);
        float *dst = y;
        if (k + 1 < ps.np) {
            dst = sal_scratch_get(c->ws, k % 2, sizeof(float) * (size_t)(outer * q->out[a] * inner + 1));
            if (!dst) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
        }
        pass_fwd(&ps.t[k], p->linear, outer, cur[a], q->out[a], inner, src, dst);
        cur[a] = q->out[a];
        src = dst;
    }
    return SAL_OK;
}

static sal_status rs_backward(sal_opctx *c) {
    if (!c->din[0] || !c->dout[0]) return SAL_OK;
    rs_passes ps;
    SAL_TRY(rs_passes_make(c, &ps));
    const rs_plan *q = &ps.q;
    const float *g = sal_f32(c->dout[0]);
    float *dx = sal_f32(c->din[0]);
    if (ps.np == 0) {
        sal_vadd(dx, g, sal_tensor_numel(c->out[0]));
        return SAL_OK;
    }
    int64_t cur[SAL_MAX_DIMS]; /* the shape after pass k: outputs up to ax[k], inputs after */
    memcpy(cur, q->out, sizeof cur);
    for (int k = ps.np - 1; k >= 0; k--) {
        int a = ps.ax[k];
        int64_t outer, inner;
        extents(q, cur, a, &outer, &inner);
        float *dst = dx;
        if (k > 0) {
            size_t n = (size_t)(outer * q->in[a] * inner);
            dst = sal_scratch_get(c->ws, k % 2, sizeof(float) * (n + 1));
            if (!dst) return sal_wrap(SAL_ERR_NOMEM, "node '%s' (%s)", c->n->name, c->n->op_type);
            memset(dst, 0, sizeof(float) * n);
        }
        pass_bwd(&ps.t[k], outer, q->in[a], q->out[a], inner, g, dst);
        cur[a] = q->in[a];
        g = dst;
    }
    return SAL_OK;
}

/* linear in X for both modes; scales, sizes and roi only shape the result */
const sal_op sal_op_Resize = {
    SAL_OP_HEAD(Resize), .traits = SAL_TR_ADDITIVE, .lin_in = 0x1, .min_in = 1, .max_in = 4, .min_out = 1, .max_out = 1,
    .init = resize_init, .infer = rs_infer, .forward = rs_forward, .backward = rs_backward,
    .overwrites = true,
};

const sal_op sal_op_Upsample = {
    SAL_OP_HEAD(Upsample), .traits = SAL_TR_ADDITIVE, .lin_in = 0x1, .min_in = 1, .max_in = 2, .min_out = 1, .max_out = 1,
    .init = upsample_init, .infer = rs_infer, .forward = rs_forward, .backward = rs_backward,
    .overwrites = true,
};
