/* Attribution methods: each is a driver over the shared backward walker. A method picks the rule
 * of each node (sal_rule_fn, graph/exec.h), shapes the inputs it runs (interpolation paths, noise
 * samples, occlusion windows) as batches, and combines the results. */
#ifndef SAL_METHOD_H
#define SAL_METHOD_H

#include "graph/exec.h"

typedef struct {
    const char *name; /* from the shared vocabulary: baseline, steps, rule, inner, samples, ... */
    const char *def;  /* default value as text; "" = none */
    const char *help;
} sal_param_spec;

typedef struct sal_xctx sal_xctx;

typedef struct sal_method {
    const char *name;
    const char *summary; /* one line, with the paper */
    const sal_param_spec *params; /* terminated by {NULL} */
    sal_status (*run)(sal_xctx *c);
    /* Whether this configuration reads patterns and names no file for them (NULL: never); run by
     * sal_method_needs_patterns on a context holding only the parameters. */
    bool (*needs_patterns)(const sal_xctx *c);
    /* Needs forward passes only (occlusion and the black-box methods): it runs on any graph the
     * forward pass runs, and can stand in for a method that lacks a backward rule (--fallback). */
    bool black_box;
    /* Why the method is defined on logits, for models whose output is a probability (NULL: it is
     * not): sal_explain records it in the JSON and the CLI prints it. */
    const char *logits;
    /* Whether run() supports describe mode (sal_xctx.rules): it decides a rule per node. */
    bool describes;
    /* Takes one-hot sequences only, (N, 4, L) or (N, L, 4) (sequence.c, ism.c). */
    bool sequence;
    /* Reads nothing of its session but the explained output and the input's gradient, and its
     * backward rules, if any, are indifferent to the order of elements within a sample (elementwise,
     * per-sample percentiles, the ops' own gradients): its session may keep activations in blocked
     * layouts (graph/exec.h). A wrapper (SmoothGrad) qualifies when its inner method does. */
    bool plain_io;
    /* Reads inner values only at its layer, made readable first (layer.h: sal_layer_readable), and
     * its input gradient through plain_io methods: its session may keep activations blocked and take
     * ReLUs into their producers, as a plain_io method's does (Grad-CAM on ResNet-50: 34 -> 28-30 ms). */
    bool layer_io;
} sal_method;

#define SAL_MAX_METRICS 16

struct sal_xctx {
    const sal_model *m;
    const sal_method *meth;
    sal_session *s;        /* a session on m; methods may run it freely */
    const sal_tensor *x;   /* (N, ...) the model's input */
    int64_t *target;       /* (N) class per sample */
    bool prob;             /* explain softmax probabilities instead of logits */
    bool out_prob;         /* the model's output already is a probability (a Softmax or Sigmoid
                              ends it): `prob` takes it as it is, with no second softmax */
    int nkv;               /* user parameters, checked against meth->params */
    const char *const *key, *const *val;
    const sal_tensor *data; /* optional (M, ...) reference data */
    double lo, hi;          /* input range */
    int64_t chunk;          /* rows per batched pass */
    const uint64_t *stream; /* per sample: the id its random streams derive from (sampling.h); NULL:
                               its index. A wrapper (SmoothGrad) sets it for the rows it hands on,
                               so nested random methods do not depend on the chunking either */
    const sal_patterns *patterns; /* optional patterns in memory (sal_explain_opts.patterns) */
    int outv;               /* the explained output: a value of m (target.c) */
    bool region;            /* a region target (sum or mask): target[i] then holds the sample whose
                               mask row applies, not a class */
    const float *mask;      /* region: weights (mask_rows, mask_row) over a sample's output; NULL: sum */
    int64_t mask_rows, mask_row; /* rows: 1 (one mask for every sample) or N; row: a sample's output size */
    char **rules;           /* describe mode (sal_method_rules): a method with per-node rules writes the
                               rule of each node of m here (sal_strdup'd) instead of running; x is NULL */
    sal_tensor out;         /* OUT: the attribution, shaped as x */
    sal_tensor layer_out;   /* OUT, optional: a map at a layer's resolution */
    char layer[128];        /* the layer used, for layer methods */
    int nmetric;
    char mkey[SAL_MAX_METRICS][48];
    double mval[SAL_MAX_METRICS];
    char series_key[48];    /* OUT, optional: one figure per sample (a per-sample check), listed in */
    double *series;         /* the JSON under "per_sample"; sal_malloc'd (N), freed by sal_explain */
};

const sal_method *sal_method_lookup(const char *name);

/* ---- parameters: the user's value, else the method's default ---- */
const char *sal_param(const sal_xctx *c, const char *name);
sal_status sal_param_int(const sal_xctx *c, const char *name, long lo, long hi, long *out);
sal_status sal_param_float(const sal_xctx *c, const char *name, double lo, double hi, double *out);
sal_status sal_param_bool(const sal_xctx *c, const char *name, bool *out);
/* Every value the user gave for a repeatable parameter, in the order given (the default, when not
 * empty and none was given, counts as one). Writes at most max to vals; returns the total. */
int sal_param_all(const sal_xctx *c, const char *name, const char **vals, int max);
/* Index of the value in a NULL-terminated list of choices. */
sal_status sal_param_choice(const sal_xctx *c, const char *name, const char *const *choices, int *idx);
/* Records a reported figure (completeness delta, ...). */
void sal_metric(sal_xctx *c, const char *key, double v);

/* Describe mode: line i := text for node i of c->m (nothing when c->rules is NULL). */
sal_status sal_rule_line(const sal_xctx *c, int i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- building blocks ---- */
/* The baseline of every sample, shaped as c->x, from the parameters `baseline` (zero, black,
 * uniform, blur, mean: the mean of the reference data, or a .npy file), `sigma` (blur) and `seed`
 * (uniform); a method calling it declares all three (integrated.c). */
sal_status sal_method_baseline(const sal_xctx *c, sal_tensor *base);
/* The explained output's value in model m: c->outv for c->m, else the value of the same name (a
 * rewritten copy such as LRP's canonized model keeps the names). */
int sal_explained(const sal_xctx *c, const sal_model *m);
/* Whether value v of m is the explained output. */
static inline bool sal_is_explained(const sal_xctx *c, const sal_model *m, int v) { return v >= 0 && v == sal_explained(c, m); }
/* Picks the output (o->output_name), checks the target against it and fills c->out, c->target,
 * c->region and c->mask (into mask, owned by the caller) after the forward pass on c->s. target.c */
sal_status sal_target_resolve(sal_xctx *c, const sal_explain_opts *o, sal_tensor *mask);
/* Region targets: the seed (mask rows, or ones) and each row's explained value, the weighted sum of
 * its output. y (B, ...) is the explained output; target[b] the sample of row b. target.c */
sal_status sal_region_seed(const sal_xctx *c, const sal_tensor *y, const int64_t *target, sal_tensor *seed,
                           float *value);
/* The relevance seed of LRP-like methods: the explained output's value placed where the gradient
 * seed is (the logit, or the probability on the target's logit), or mask * y for region targets. */
sal_status sal_relevance_seed(const sal_xctx *c, const sal_tensor *y, const int64_t *target, sal_tensor *seed,
                              float *value);
/* Seed for the backward pass from outputs y (B,K): one-hot at target[b] for logits, or the gradient
 * of the softmax probability of target[b] when c->prob. Also returns each row's explained value. */
sal_status sal_target_seed(const sal_xctx *c, const sal_tensor *y, const int64_t *target, sal_tensor *seed,
                           float *value /* (B) or NULL */);
/* Forward x (B, ...) on s, then the backward pass with per-node rules (NULL: plain gradient) from the
 * target seed; g gets the result at the model input, shaped as x. value (B) gets the explained
 * outputs when not NULL. */
sal_status sal_rule_grad(const sal_xctx *c, sal_session *s, const sal_tensor *x, const int64_t *target,
                         const sal_rule_fn *rules, void *user, sal_tensor *g, float *value);

/* DeepLIFT (deeplift.c) of c->x against references x0 shaped as c->x (NULL: its `baseline`
 * parameter), with its parameters variant and maxpool read from c; c->out gets the contributions,
 * mult (optional) the multipliers at the input, and c's metrics the completeness figures. */
sal_status sal_deeplift_refs(sal_xctx *c, const sal_tensor *x0, sal_tensor *mult);

/* ---- the batch driver ----
 * sal_run_batched runs per_sample variants (rows) of every sample through the network in chunks
 * of at most c->chunk rows, so memory is bounded by the chunk, not by the number of variants.
 * Row r of the run is variant r % per_sample of sample r / per_sample. Per chunk it
 *   1. makes the input: make() per row, fill() for the whole chunk, or else the rows of c->x
 *      themselves (a view, per_sample 1);
 *   2. calls before() (e.g. DeepLIFT's reference pass);
 *   3. runs the pass: pass(), or by default the forward pass (forward_only) or the backward pass
 *      with `rules` from the target seed (sal_rule_grad) on session s (NULL: c->s);
 *   4. hands each row to take(), then the chunk to after() (per-chunk accumulation).
 * A seeded run gives make and take the random stream of their (sample, variant) pair, the same
 * for any chunking (sampling.h). Every hook is optional. */
typedef struct {
    int64_t r0, n;          /* rows [r0, r0 + n) of the run */
    const sal_tensor *x;    /* the chunk's input (n, ...) */
    int64_t *target;        /* per row: its sample's target (NULL when c->target is) */
    const uint64_t *stream; /* per row: a stream id for a method run on the row (sal_xctx.stream) */
    sal_session *s;         /* the session of the pass */
    const sal_tensor *g;    /* after the pass: the result at the input, shaped as x; NULL: none */
    float *value;           /* per row: the explained output, after the pass */
} sal_chunk;

typedef struct {
    int64_t per_sample; /* rows per sample; 0 means 1 */
    int64_t samples;    /* 0: c->x->dim[0] */
    sal_status (*make)(void *u, int64_t i, int64_t k, float *row, sal_rng *r); /* r: NULL unless seeded */
    sal_status (*fill)(void *u, int64_t r0, int64_t n, sal_tensor *buf, sal_tensor *x); /* x: a view, or buf */
    bool seeded;
    uint64_t seed;
    bool forward_only;
    /* forward_only rows made by make() that differ from their sample (row i of c->x) in a few
     * elements: through a one-product head (sal_exec_front_product) only those elements' share of
     * the product is computed, and the tail runs from the front (metric rows_from_front: how
     * many rows did) */
    bool near;
    const sal_rule_fn *rules; /* per node, or NULL */
    void *rule_user;
    sal_session *s;
    sal_status (*before)(void *u, const sal_chunk *ch);
    sal_status (*pass)(void *u, sal_chunk *ch); /* sets ch->g when it has a result at the input */
    void (*take)(void *u, int64_t i, int64_t k, const float *row, const float *g, float value, sal_rng *r);
    sal_status (*after)(void *u, const sal_chunk *ch);
    void *u;
} sal_batched;
sal_status sal_run_batched(sal_xctx *c, const sal_batched *b);

#endif
