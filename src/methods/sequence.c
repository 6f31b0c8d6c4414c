/* Methods for one-hot sequences (docs/sequences.md):
 *  - deeplift_shap: DeepLIFT averaged over references that are dinucleotide shuffles of the
 *    sequence itself (Lundberg & Lee 2017's DeepSHAP with the references of Shrikumar's deeplift
 *    and tf-modisco pipelines), so a contribution is measured against sequences of the same
 *    composition, not against an all-zero "sequence" that no model has seen;
 *  - hypothetical: what each base would contribute at each position, from the multipliers
 *    projected onto the four bases (tf-modisco's hypothetical contributions). */
#include "method.h"
#include "io/io.h"

/* The axis holding the bases: the `axis` parameter, or whichever of 1 and 2 has size 4. */
static sal_status bases_axis(const sal_xctx *c, int *axis, int64_t *L) {
    const sal_tensor *x = c->x;
    static const char *const axes[] = {"auto", "1", "2", NULL};
    int ax;
    SAL_TRY(sal_param_choice(c, "axis", axes, &ax));
    if (x->ndim != 3 || (x->dim[1] != 4 && x->dim[2] != 4)) {
        char b[160];
        return sal_fail(SAL_ERR_SHAPE, "method %s: needs one-hot sequences (N, 4, L) or (N, L, 4), not %s",
                        c->meth->name, sal_shape_str(x->ndim, x->dim, b, sizeof b));
    }
    *axis = ax ? ax : x->dim[1] == 4 ? 1 : 2;
    if (x->dim[*axis] != 4) return sal_fail(SAL_ERR_SHAPE, "method %s: axis=%d does not hold 4 bases", c->meth->name, *axis);
    *L = x->dim[*axis == 1 ? 2 : 1];
    return SAL_OK;
}

/* Element (b, p) of a one-hot row. */
static inline int64_t at(int axis, int64_t L, int64_t b, int64_t p) { return axis == 1 ? b * L + p : p * 4 + b; }

/* DeepLIFT of every sample against R shuffles of itself: contributions (N*R rows) into c->out of
 * a sub-context, averaged per sample into out; when hyp is not NULL, the hypothetical
 * contributions m[b, p] - sum_c ref[c, p] m[c, p] averaged over the references into hyp. */
static sal_status shap_run(sal_xctx *c, int axis, int64_t L, sal_tensor *out, sal_tensor *hyp) {
    long R, seed;
    SAL_TRY(sal_param_int(c, "references", 1, 10000, &R));
    SAL_TRY(sal_param_int(c, "seed", 0, 0x7fffffffL, &seed));
    const sal_tensor *x = c->x;
    int64_t N = x->dim[0], row = 4 * L;
    sal_tensor xr = {0}, refs = {0}, mult = {0};
    int64_t *tgt = sal_malloc((size_t)(N * R) * sizeof *tgt);
    sal_status st = tgt ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) st = sal_dna_shuffle(x, axis, R, (uint64_t)seed, &refs);
    if (st == SAL_OK) st = sal_tensor_alloc(&xr, SAL_F32, 3, refs.dim);
    for (int64_t i = 0; st == SAL_OK && i < N * R; i++) {
        memcpy(sal_f32(&xr) + i * row, sal_f32(x) + (i / R) * row, (size_t)row * sizeof(float));
        tgt[i] = c->target[i / R];
    }
    sal_xctx d = *c; /* the same method and parameters on the repeated samples */
    d.x = &xr, d.target = tgt, d.stream = NULL, d.out = (sal_tensor){0}, d.nmetric = 0;
    if (st == SAL_OK) st = sal_deeplift_refs(&d, &refs, hyp ? &mult : NULL);
    if (st == SAL_OK) st = sal_tensor_alloc(out, SAL_F32, x->ndim, x->dim);
    if (st == SAL_OK && hyp) st = sal_tensor_alloc(hyp, SAL_F32, x->ndim, x->dim);
    for (int64_t i = 0; st == SAL_OK && i < N; i++) {
        float *o = sal_f32(out) + i * row, *h = hyp ? sal_f32(hyp) + i * row : NULL;
        for (int64_t e = 0; e < row; e++) {
            double s = 0;
            for (int64_t r = 0; r < R; r++) s += sal_f32(&d.out)[(i * R + r) * row + e];
            o[e] = (float)(s / (double)R);
        }
        for (int64_t p = 0; h && p < L; p++) {
            double acc[4] = {0};
            for (int64_t r = 0; r < R; r++) {
                const float *m = sal_f32(&mult) + (i * R + r) * row, *rf = sal_f32(&refs) + (i * R + r) * row;
                double base = 0;
                for (int b = 0; b < 4; b++) base += (double)rf[at(axis, L, b, p)] * m[at(axis, L, b, p)];
                for (int b = 0; b < 4; b++) acc[b] += m[at(axis, L, b, p)] - base;
            }
            for (int b = 0; b < 4; b++) h[at(axis, L, b, p)] = (float)(acc[b] / (double)R);
        }
    }
    for (int k = 0; st == SAL_OK && k < d.nmetric; k++) sal_metric(c, d.mkey[k], d.mval[k]);
    sal_tensor_free(&d.out);
    sal_tensor_free(&xr);
    sal_tensor_free(&refs);
    sal_tensor_free(&mult);
    sal_free(tgt);
    return st;
}

static sal_status run_deeplift_shap(sal_xctx *c) {
    int axis;
    int64_t L;
    if (c->rules) return sal_deeplift_refs(c, NULL, NULL); /* describe mode: DeepLIFT's rules */
    SAL_TRY(bases_axis(c, &axis, &L));
    return shap_run(c, axis, L, &c->out, NULL);
}

#define SHAP_PARAMS                                                                                                   \
    {"references", "20", "dinucleotide shuffles of each sequence used as references; contributions are averaged"},   \
        {"seed", "1", "the shuffles' random seed"},                                                                  \
        {"axis", "auto", "the axis holding the 4 bases: 1 (N, 4, L), 2 (N, L, 4), or auto"},                          \
        {"variant", "rescale", "DeepLIFT's rule at nonlinearities: rescale or revealcancel"},                          \
        {"maxpool", "conserving", "DeepLIFT's max-pooling rule: conserving, captum or gradient"}

static const sal_param_spec k_shap_params[] = {SHAP_PARAMS, {NULL, NULL, NULL}};

const sal_method sal_method_deeplift_shap = {
    .name = "deeplift_shap",
    .summary = "DeepLIFT averaged over dinucleotide-shuffled references of each sequence (DeepSHAP, Lundberg & Lee "
               "2017; shuffles: Altschul & Erickson 1985)",
    .params = k_shap_params,
    .run = run_deeplift_shap,
    .logits = "it is DeepLIFT, which explains the logits before an output Softmax and refuses --output prob",
    .describes = true,
    .sequence = true,
};

/* Hypothetical contributions: multipliers = the gradient, mean-centred over the four bases at each
 * position (the gradient's component off the simplex of one-hot inputs says nothing; Majdandzic
 * et al. 2023), or DeepLIFT-SHAP's multipliers against the shuffled references, minus the
 * reference's own share (tf-modisco): at the sequence's own base they are its DeepLIFT-SHAP
 * contributions. */
static sal_status run_hypothetical(sal_xctx *c) {
    static const char *const kinds[] = {"gradient", "deeplift_shap", NULL};
    int kind, axis;
    int64_t L;
    SAL_TRY(sal_param_choice(c, "multipliers", kinds, &kind));
    SAL_TRY(bases_axis(c, &axis, &L));
    if (kind == 1) {
        sal_tensor contrib = {0};
        sal_status st = shap_run(c, axis, L, &contrib, &c->out);
        sal_tensor_free(&contrib);
        return st;
    }
    SAL_TRY(sal_rule_grad(c, c->s, c->x, c->target, NULL, NULL, &c->out, NULL));
    int64_t N = c->x->dim[0];
    for (int64_t i = 0; i < N; i++) {
        float *g = sal_f32(&c->out) + i * 4 * L;
        for (int64_t p = 0; p < L; p++) {
            double mean = 0;
            for (int b = 0; b < 4; b++) mean += g[at(axis, L, b, p)];
            mean /= 4;
            for (int b = 0; b < 4; b++) g[at(axis, L, b, p)] = (float)(g[at(axis, L, b, p)] - mean);
        }
    }
    return SAL_OK;
}

static const sal_param_spec k_hyp_params[] = {
    {"multipliers", "gradient", "gradient (mean-centred over the bases) or deeplift_shap (against dinucleotide "
                                "shuffles; the parameters below)"},
    SHAP_PARAMS,
    {NULL, NULL, NULL},
};

const sal_method sal_method_hypothetical = {
    .name = "hypothetical",
    .summary = "hypothetical contributions of every base at every position: gradient or DeepLIFT-SHAP multipliers "
               "projected onto the bases (tf-modisco, Shrikumar et al. 2018)",
    .params = k_hyp_params,
    .run = run_hypothetical,
    .sequence = true,
};
