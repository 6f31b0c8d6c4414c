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
} sal_method;

#define SAL_MAX_METRICS 16

struct sal_xctx {
    const sal_model *m;
    const sal_method *meth;
    sal_session *s;        /* a session on m; methods may run it freely */
    const sal_tensor *x;   /* (N, ...) the model's input */
    int64_t *target;       /* (N) class per sample */
    bool prob;             /* explain softmax probabilities instead of logits */
    int nkv;               /* user parameters, checked against meth->params */
    const char *const *key, *const *val;
    const sal_tensor *data; /* optional (M, ...) reference data */
    double lo, hi;          /* input range */
    int64_t chunk;          /* rows per batched pass */
    const sal_patterns *patterns; /* optional patterns in memory (sal_explain_opts.patterns) */
    sal_tensor out;         /* OUT: the attribution, shaped as x */
    sal_tensor layer_out;   /* OUT, optional: a map at a layer's resolution */
    char layer[128];        /* the layer used, for layer methods */
    int nmetric;
    char mkey[SAL_MAX_METRICS][48];
    double mval[SAL_MAX_METRICS];
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

/* ---- building blocks ---- */
/* Seed for the backward pass from outputs y (B,K): one-hot at target[b] for logits, or the gradient
 * of the softmax probability of target[b] when c->prob. Also returns each row's explained value. */
sal_status sal_target_seed(const sal_xctx *c, const sal_tensor *y, const int64_t *target, sal_tensor *seed,
                           float *value /* (B) or NULL */);
/* Forward x (B, ...) on s, then the backward pass with per-node rules (NULL: plain gradient) from the
 * target seed; g gets the result at the model input, shaped as x. value (B) gets the explained
 * outputs when not NULL. */
sal_status sal_rule_grad(const sal_xctx *c, sal_session *s, const sal_tensor *x, const int64_t *target,
                         const sal_rule_fn *rules, void *user, sal_tensor *g, float *value);

/* Runs per_sample variants of every sample through the network in chunks of at most c->chunk rows
 * (memory is bounded by the chunk, not by the number of variants):
 *   make(u, i, k, row)          fills the input row of variant k of sample i;
 *   take(u, i, k, row, g, v)    receives that row, its gradient (NULL when forward_only) and the
 *                               explained output value. */
typedef struct {
    int64_t per_sample;
    sal_status (*make)(void *u, int64_t i, int64_t k, float *row);
    void (*take)(void *u, int64_t i, int64_t k, const float *row, const float *g, float value);
    void *u;
    bool forward_only;
    const sal_rule_fn *rules; /* per node, or NULL */
    void *rule_user;
} sal_batched;
sal_status sal_run_batched(sal_xctx *c, const sal_batched *b);

/* Elements per sample of x (product of all dims but the first). */
int64_t sal_row_size(const sal_tensor *x);

#endif
