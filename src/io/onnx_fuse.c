/* LayerNorm and GELU as opset-13 exporters decompose them, recognized at import and loaded as the
 * one op later opsets have for each (LayerNormalization, opset 17; Gelu, opset 20). PyTorch writes
 * nn.LayerNorm as nine nodes and the exact GELU as five: run one by one they pass over the data
 * nine and five times and keep every intermediate for the backward pass (ViT-B/16: a third of the
 * memory of a gradient call). The fused op computes the same function; the exporter's rules for
 * it are the decomposition's (see docs/onnx.md), and sal_model_save writes the decomposition back
 * for an opset that lacks the op.
 *
 * Matched only where nothing else reads an intermediate and the constants are exactly the
 * decomposition's:
 *   LayerNorm: m = ReduceMean(x, axes -1); d = Sub(x, m); v = ReduceMean(Pow(d, 2), axes -1);
 *              y = Div(d, Sqrt(Add(v, eps))) * w + b, with w and b constant vectors
 *   GELU:      y = x * (Erf(x / sqrt 2) + 1) * 0.5, the 0.5 applied last or to x first
 *              (x * 0.5 * (1 + erf(...)), as Hugging Face writes it); x * (1 / sqrt 2) also */
#include "io/onnx.h"
#include "onnx.pb-c.h"
#include <math.h>

typedef Onnx__NodeProto NodeProto;

typedef struct {
    const Onnx__GraphProto *gp;
    const sal_model *g;  /* the constants: initializers and Constant nodes, imported first */
    sal_strmap prod;     /* value name -> index of the node writing it */
    sal_strmap reader;   /* value name -> index of a node reading it */
    sal_strmap uses;     /* value name -> node inputs and graph outputs that read it */
} matcher;

static bool is_op(const NodeProto *n, const char *op) {
    return n && n->op_type && !strcmp(n->op_type, op) && (!n->domain || !*n->domain || !strcmp(n->domain, "ai.onnx"));
}

static int uses(const matcher *mt, const char *v) {
    int k = sal_strmap_get(&mt->uses, v);
    return k < 0 ? 0 : k;
}

static const NodeProto *node_at(const matcher *mt, int i) { return i >= 0 ? mt->gp->node[i] : NULL; }

/* The node writing v (as its only output), or NULL. */
static const NodeProto *producer(const matcher *mt, const char *v, int *idx) {
    *idx = sal_strmap_get(&mt->prod, v);
    const NodeProto *n = node_at(mt, *idx);
    return n && n->n_output == 1 ? n : NULL;
}

/* The node reading v when it is v's only reader (no graph output either), or NULL. */
static const NodeProto *sole_reader(const matcher *mt, const char *v, int *idx) {
    *idx = uses(mt, v) == 1 ? sal_strmap_get(&mt->reader, v) : -1;
    const NodeProto *n = node_at(mt, *idx);
    return n && n->n_output == 1 ? n : NULL;
}

/* A constant float tensor named v, looking through Identity nodes (exporters alias shared weights
 * that way), or NULL. */
static const sal_tensor *constant(const matcher *mt, const char *v) {
    for (int depth = 0; depth < 8 && v && *v; depth++) {
        int k = sal_graph_find(mt->g, v);
        if (k >= 0 && mt->g->val[k].kind == SAL_VAL_CONST)
            return mt->g->val[k].t.dtype == SAL_F32 ? &mt->g->val[k].t : NULL;
        int i;
        const NodeProto *n = producer(mt, v, &i);
        if (!is_op(n, "Identity") || n->n_input != 1) return NULL;
        v = n->input[0];
    }
    return NULL;
}

static bool scalar(const matcher *mt, const char *v, float *f) {
    const sal_tensor *t = constant(mt, v);
    if (!t || sal_tensor_numel(t) != 1) return false;
    *f = sal_f32(t)[0];
    return true;
}

static bool scalar_is(const matcher *mt, const char *v, float want, float rel) {
    float f;
    return scalar(mt, v, &f) && fabsf(f - want) <= rel * fabsf(want);
}

/* The operand of binary node n that is not slot k's. */
static const char *other(const NodeProto *n, int k) { return n->input[1 - k]; }

/* Slot (0 or 1) of binary node n that reads v, or -1. */
static int slot_of(const NodeProto *n, const char *v) {
    if (n->n_input != 2) return -1;
    return !strcmp(n->input[0], v) ? 0 : !strcmp(n->input[1], v) ? 1 : -1;
}

static const Onnx__AttributeProto *attr(const NodeProto *n, const char *name) {
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k]->name && !strcmp(n->attribute[k]->name, name)) return n->attribute[k];
    return NULL;
}

/* ReduceMean over the last axis only, keeping it (axes as attribute before opset 18, input after). */
static bool mean_last(const matcher *mt, const NodeProto *n) {
    if (!is_op(n, "ReduceMean") || n->n_input < 1) return false;
    const Onnx__AttributeProto *kd = attr(n, "keepdims"), *ax = attr(n, "axes");
    if (kd && kd->i != 1) return false;
    if (ax) return ax->n_ints == 1 && ax->ints[0] == -1 && n->n_input == 1;
    if (n->n_input != 2) return false;
    int k = sal_graph_find(mt->g, n->input[1]);
    if (k < 0 || mt->g->val[k].kind != SAL_VAL_CONST) return false;
    const sal_tensor *t = &mt->g->val[k].t;
    return t->dtype == SAL_I64 && sal_tensor_numel(t) == 1 && ((const int64_t *)t->data)[0] == -1;
}

/* w or b of a layer normalization: a constant vector, or one number */
static bool affine_param(const matcher *mt, const char *v) {
    const sal_tensor *t = constant(mt, v);
    return t && (t->ndim == 1 || sal_tensor_numel(t) == 1);
}

/* Records a match: the nodes skip[0..n) fold into node last, which becomes f; false when one of
 * them belongs to an earlier match already. */
static bool take(sal_onnx_fusion *fz, const int *skip, int n, int last, sal_onnx_fusion f) {
    for (int j = 0; j < n; j++)
        if (fz[skip[j]].kind != SAL_FUSE_NONE) return false;
    if (fz[last].kind != SAL_FUSE_NONE) return false;
    for (int j = 0; j < n; j++) fz[skip[j]].kind = SAL_FUSE_SKIP;
    fz[last] = f;
    return true;
}

/* The LayerNorm ending at Div node i. */
static bool match_layernorm(const matcher *mt, int i, sal_onnx_fusion *fz) {
    const NodeProto *dv = mt->gp->node[i], *sq, *ad, *rv, *pw, *sb, *rm, *mu, *ab;
    int isq, iad, irv, ipw, isb, irm, imu, iab;
    if (!is_op(dv, "Div") || dv->n_input != 2 || dv->n_output != 1) return false;
    const char *d = dv->input[0];
    if (!is_op(sq = producer(mt, dv->input[1], &isq), "Sqrt") || uses(mt, sq->output[0]) != 1) return false;
    if (!is_op(ad = producer(mt, sq->input[0], &iad), "Add") || ad->n_input != 2 || uses(mt, ad->output[0]) != 1)
        return false;
    float eps;
    int ke = scalar(mt, ad->input[1], &eps) ? 1 : scalar(mt, ad->input[0], &eps) ? 0 : -1;
    if (ke < 0 || !(eps >= 0)) return false;
    if (!mean_last(mt, rv = producer(mt, other(ad, ke), &irv)) || uses(mt, rv->output[0]) != 1) return false;
    if (!is_op(pw = producer(mt, rv->input[0], &ipw), "Pow") || pw->n_input != 2 || uses(mt, pw->output[0]) != 1 ||
        strcmp(pw->input[0], d) || !scalar_is(mt, pw->input[1], 2.0f, 0.0f))
        return false;
    if (!is_op(sb = producer(mt, d, &isb), "Sub") || sb->n_input != 2 || uses(mt, d) != 2) return false;
    const char *x = sb->input[0];
    if (!mean_last(mt, rm = producer(mt, sb->input[1], &irm)) || strcmp(rm->input[0], x) ||
        uses(mt, rm->output[0]) != 1)
        return false;
    int k;
    if (!is_op(mu = sole_reader(mt, dv->output[0], &imu), "Mul") || (k = slot_of(mu, dv->output[0])) < 0 ||
        !affine_param(mt, other(mu, k)))
        return false;
    const char *w = other(mu, k);
    if (!is_op(ab = sole_reader(mt, mu->output[0], &iab), "Add") || (k = slot_of(ab, mu->output[0])) < 0 ||
        !affine_param(mt, other(ab, k)))
        return false;
    int skip[] = {irm, isb, ipw, irv, iad, isq, i, imu};
    return take(fz, skip, 8, iab, (sal_onnx_fusion){SAL_FUSE_LAYERNORM, {x, w, other(ab, k)}, eps});
}

/* The GELU around Erf node i. */
static bool match_gelu(const matcher *mt, int i, sal_onnx_fusion *fz) {
    const NodeProto *er = mt->gp->node[i], *sc, *ad, *m1, *m2, *h;
    int isc, iad, im1, im2, ih = -1, k;
    if (!is_op(er, "Erf") || er->n_input != 1 || er->n_output != 1) return false;
    if (!(sc = producer(mt, er->input[0], &isc)) || sc->n_input != 2 || uses(mt, er->input[0]) != 1) return false;
    const char *x = sc->input[0];
    if (!(is_op(sc, "Div") && scalar_is(mt, sc->input[1], (float)M_SQRT2, 1e-6f)) &&
        !(is_op(sc, "Mul") && scalar_is(mt, sc->input[1], (float)M_SQRT1_2, 1e-6f)))
        return false;
    if (!is_op(ad = sole_reader(mt, er->output[0], &iad), "Add") || (k = slot_of(ad, er->output[0])) < 0 ||
        !scalar_is(mt, other(ad, k), 1.0f, 0.0f))
        return false;
    if (!is_op(m1 = sole_reader(mt, ad->output[0], &im1), "Mul") || (k = slot_of(m1, ad->output[0])) < 0) return false;
    if (!strcmp(other(m1, k), x)) { /* x (1 + erf) then times 0.5 */
        if (!is_op(m2 = sole_reader(mt, m1->output[0], &im2), "Mul") || (k = slot_of(m2, m1->output[0])) < 0 ||
            !scalar_is(mt, other(m2, k), 0.5f, 0.0f))
            return false;
    } else { /* (0.5 x) (1 + erf) */
        int kh;
        if (!is_op(h = producer(mt, other(m1, k), &ih), "Mul") || uses(mt, h->output[0]) != 1 ||
            (kh = slot_of(h, x)) < 0 || !scalar_is(mt, other(h, kh), 0.5f, 0.0f))
            return false;
        im2 = im1;
        im1 = ih;
    }
    int skip[] = {isc, i, iad, im1};
    return take(fz, skip, 4, im2, (sal_onnx_fusion){SAL_FUSE_GELU, {x, NULL, NULL}, 0});
}

sal_status sal_onnx_find_fusions(const Onnx__GraphProto *gp, const sal_model *g, sal_onnx_fusion *fz) {
    matcher mt = {.gp = gp, .g = g};
    sal_status st = SAL_OK;
    for (size_t i = 0; i < gp->n_node && st == SAL_OK; i++) {
        const NodeProto *n = gp->node[i];
        fz[i].kind = SAL_FUSE_NONE;
        for (size_t k = 0; k < n->n_output && st == SAL_OK; k++)
            if (n->output[k] && *n->output[k]) st = sal_strmap_put(&mt.prod, n->output[k], (int)i);
        for (size_t k = 0; k < n->n_input && st == SAL_OK; k++) {
            const char *v = n->input[k];
            if (!v || !*v) continue;
            st = sal_strmap_put(&mt.uses, v, uses(&mt, v) + 1);
            if (st == SAL_OK) st = sal_strmap_put(&mt.reader, v, (int)i);
        }
    }
    for (size_t i = 0; i < gp->n_output && st == SAL_OK; i++)
        if (gp->output[i]->name) st = sal_strmap_put(&mt.uses, gp->output[i]->name, uses(&mt, gp->output[i]->name) + 1);
    /* a node already taken by one match is not the start of another */
    for (size_t i = 0; i < gp->n_node && st == SAL_OK; i++)
        if (fz[i].kind == SAL_FUSE_NONE && !match_layernorm(&mt, (int)i, fz)) match_gelu(&mt, (int)i, fz);
    sal_strmap_free(&mt.prod);
    sal_strmap_free(&mt.reader);
    sal_strmap_free(&mt.uses);
    return st == SAL_OK ? SAL_OK : sal_wrap(st, "%s", g->path);
}
