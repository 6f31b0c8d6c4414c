/* Evaluation metrics (docs/metrics.md): the table, the per-sample driver and the helpers the metric
 * families share. A metric scores the maps of a slice of samples, one value per sample (and, for
 * some, a curve per sample); metric.c explains the slices, aggregates and writes. */
#ifndef SAL_METRIC_H
#define SAL_METRIC_H

#include "audit.h"

#define MT_MAX_PARAMS 6

typedef struct mt_ctx mt_ctx;

typedef struct {
    const char *name, *family, *summary;
    int better;               /* 1 higher is better, -1 lower, 0 neither */
    bool masks;               /* needs sal_metric_opts.masks */
    const char *param[MT_MAX_PARAMS][3]; /* name, default, help; NULL name ends the list */
    const char *curve_x;      /* what a curve's points are (NULL: no curve) */
    int (*npoint)(const mt_ctx *c); /* points per curve */
    double hit;               /* > 0: the aggregate also gives the fraction of values >= hit */
    /* Scores samples i0 .. i0 + n - 1 whose maps are A (n rows) into v[q] and, with a curve, into
     * cv[q * npoint ...]. */
    sal_status (*run)(mt_ctx *c, int64_t i0, int64_t n, const float *A, double *v, double *cv);
    /* For the one metric that compares samples with each other (sufficiency): after every slice ran,
     * the values of all c->N samples into v from what run kept in c->keep. NULL for the others. */
    sal_status (*finish)(mt_ctx *c, double *v);
} mt_metric;

extern const mt_metric mt_complexity[], mt_localization[], mt_faithfulness[], mt_robustness[], mt_randomization[],
    mt_axiomatic[];
extern const int mt_ncomplexity, mt_nlocalization, mt_nfaithfulness, mt_nrobustness, mt_nrandomization, mt_naxiomatic;

struct mt_ctx {
    const sal_model *m;
    const sal_tensor *x;
    const sal_metric_opts *o;
    const mt_metric *mt;
    const sal_audit_method *meth;
    int64_t N, row, C, H, W, HW, K, chunk, B;
    double lo, hi;
    bool softmax;             /* score probabilities of a model whose output is not one yet */
    double p[MT_MAX_PARAMS];  /* the metric's parameters as numbers (NAN: not a number) */
    const char *ps[MT_MAX_PARAMS]; /* and as given */
    int64_t *target;          /* the predicted class of every sample */
    float *y0;                /* its explained output at x */
    float *mask;              /* localization: (N, HW) 0 or 1 */
    int npoint;
    sal_session *s;
    sal_tensor batch, A2;     /* perturbed rows; maps of perturbed rows */
    float *scores;            /* (rows) of the last mt_forward */
    int8_t *top;              /* (rows): the target is still the top class */
    float *logits;            /* (rows, K) when mt_forward was asked for them */
    float *rep;               /* (rows, nrep) the representation asked for */
    int64_t nrep, cap;
    uint8_t *keep;            /* sufficiency: each sample's binarized map (N, HW) */
    au_patcache pc;
};

/* ---- helpers (metric.c) ---- */
/* c->batch shaped as rows copies of x's sample; returns its data. */
sal_status mt_rows(mt_ctx *c, int64_t rows, float **out);
/* Builds row r of a perturbation run into row (row elements); must depend on r alone, since rows
 * are made chunk by chunk. */
typedef void (*mt_make_fn)(const mt_ctx *c, int64_t r, float *row, void *u);
/* Forward passes of rows 0 .. rows - 1 in chunks of c->chunk, each chunk made by make (NULL: the
 * first rows of c->batch as they are): c->scores (the output for class t, a probability when prob)
 * and c->top; with logits, c->logits; with rep (a value name), c->rep and c->nrep. */
sal_status mt_forward(mt_ctx *c, int64_t rows, mt_make_fn make, void *u, int64_t t, bool prob, bool logits,
                      const char *rep);
/* The maps of the first rows of c->batch for class t into c->A2 (the method under test). */
sal_status mt_explain_rows(mt_ctx *c, int64_t rows, int64_t t);
/* The maps of x by the method under test on model m (patterns, when it needs them, estimated for m
 * into pc) for classes cls (one per row of x) into out. */
sal_status mt_explain(mt_ctx *c, const sal_model *m, au_patcache *pc, const sal_tensor *x, const int64_t *cls,
                      sal_tensor *out);
/* The random stream of sample i (independent of slices and chunks), and of row r of sample i. */
void mt_rng(const mt_ctx *c, int64_t i, sal_rng *g);
void mt_rng_row(const mt_ctx *c, int64_t i, int64_t r, sal_rng *g);
/* Channel sum (of |values| when abs) of one map into plane (HW). */
void mt_plane(const mt_ctx *c, const float *a, bool abs, double *plane);
/* Positions 0 .. n - 1 by v descending (ties: lower position first). */
sal_status mt_order(const double *v, int64_t n, int64_t *order);
/* Sets pixel p (every channel) of row to v. */
static inline void mt_set(const mt_ctx *c, float *row, int64_t p, float v) {
    for (int64_t ch = 0; ch < c->C; ch++) row[ch * c->HW + p] = v;
}
/* Pearson correlation of doubles; NAN when undefined. Spearman: of their ranks. */
double mt_pearson(const double *a, const double *b, int64_t n);
double mt_spearman(const double *a, const double *b, int64_t n);
/* The parameter as a count: p rounded (at most a million), or dflt when p <= 0. */
int64_t mt_count(double p, int64_t dflt);

#endif
