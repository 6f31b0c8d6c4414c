/* Layer-wise relevance propagation, Deep Taylor decomposition and the pattern methods: internals
 * shared by lrp.c and pattern.c (and the tests).
 *
 * Relevance is a backward pass with rules: the walker's gradient buffers carry relevance R, seeded
 * with the explained output value at the target unit. Linear nodes (Gemm, MatMul, Conv) use one of
 * the LRP rules below through the "apply with these weights" / "apply transposed" primitives of
 * ops/linear_ops.h; every other node has a fixed rule by op type (see lrp.c). */
#ifndef SAL_LRP_H
#define SAL_LRP_H

#include "method.h"
#include "graph/rewrite.h"
#include "ops/linear_ops.h"

typedef enum {
    SAL_LRP_ZERO = 0,   /* z-rule: R_j = sum_k x_j w_jk / z_k R_k (bias absorbs its share) */
    SAL_LRP_EPSILON,    /* z_k + eps sign(z_k) in the denominator */
    SAL_LRP_GAMMA,      /* weights w + gamma w+, bias b + gamma b+ */
    SAL_LRP_ALPHA_BETA, /* alpha (x w)+ / z+  -  beta (x w)- / z-, biases ignored */
    SAL_LRP_ZB,         /* x w - low w+ - high w-, biases ignored (bounded input box) */
    SAL_LRP_WSQUARE,    /* w^2 / sum w^2 (unbounded input domain) */
    SAL_LRP_FLAT,       /* 1 / (number of inputs) */
} sal_lrp_kind;

typedef struct {
    sal_lrp_kind kind;
    double a, b; /* epsilon; gamma; alpha, beta; low, high (NAN: the input range) */
} sal_lrp_rule;

/* "0", "epsilon[:EPS]", "gamma[:G]", "alpha_beta[:A[:B]]", "alpha1beta0", "alpha2beta1", "zplus",
 * "zb[:LOW:HIGH]", "wsquare", "flat" (and a few aliases, see lrp.c). Fails with a message naming
 * the spec. Omitted parameters take defaults (epsilon 0.25, gamma 0.25, alpha 2 beta 1, zb: the
 * input range); "alpha_beta:A" means beta = A - 1. */
sal_status sal_lrp_rule_parse(const char *spec, sal_lrp_rule *r);
/* "epsilon:0.25" etc. into buf. */
const char *sal_lrp_rule_str(const sal_lrp_rule *r, char *buf, size_t n);

/* What a method assigns, before the user's `rule` entries (tried first; the first match wins). */
/* Softmax attention (lrp_transformer.c): attention weights held constant (CP-LRP), or relevance
 * through the softmax by AttnLRP's rule. */
enum { SAL_ATTN_CONSTANT = 0, SAL_ATTN_ATTNLRP };

typedef struct {
    const char *method;       /* for messages */
    bool has_first;           /* linear nodes that read the model input (through shape-only ops) get */
    sal_lrp_rule first;       /* this rule; else their class's */
    sal_lrp_rule conv, dense; /* the other Conv nodes, and the other Gemm / MatMul nodes */
    int nuser;
    const char *const *user;  /* "PATTERN[,PATTERN...]=RULE": glob over node names or op types, or
                                 @input, @conv, @dense */
    bool maxpool_proportional;
    bool zennit;              /* z+, alpha-beta and gamma as Zennit computes them: the bias of a group's sign
                                 joins its denominator, gamma also covers negative inputs and outputs */
    bool first_conv;          /* `first` goes to the first Conv node in graph order (Zennit's first_map),
                                 not to the linear nodes that read the input */
    double stabilizer;        /* added with the sign of the denominator where no epsilon is given */
    double lo, hi;            /* the box of zb rules without bounds */
    int attention;            /* SAL_ATTN_* */
    const char *out_name;     /* the explained output; NULL: the model's first */
} sal_lrp_config;

typedef struct sal_lrp_plan sal_lrp_plan;

/* A plan for model m (already canonized): the rule of every node, checked up front so that an op
 * without an LRP rule is refused naming the node. */
sal_status sal_lrp_plan_new(const sal_model *m, const sal_lrp_config *cfg, sal_lrp_plan **out);
void sal_lrp_plan_free(sal_lrp_plan *p);
/* Walker rules (per node) and their user pointer. */
const sal_rule_fn *sal_lrp_plan_rules(const sal_lrp_plan *p);
/* The rule given to linear node i (NULL for other nodes), for reports and tests. */
const sal_lrp_rule *sal_lrp_plan_rule(const sal_lrp_plan *p, int node);
/* What node i gets, in words ("epsilon:1e-06", "z-rule", "uniform: 1/2 of each term to each operand",
 * ...), into buf. */
const char *sal_lrp_plan_describe(const sal_lrp_plan *p, int node, char *buf, size_t n);

/* ---- how relevance flows through products, gates, attention and normalizations
 * (lrp_transformer.c) ---- */
enum { SAL_HELD_NONE = 0, SAL_HELD_GATE, SAL_HELD_ATTENTION, SAL_HELD_DIVISOR };
typedef struct {
    bool *vary;          /* per value: depends on the model input through float arithmetic */
    bool *live;          /* per node: relevance from the explained output reaches it */
    unsigned *held;      /* per node: bit k, operand k is held constant */
    unsigned char *why;  /* per node: SAL_HELD_* */
} sal_lrp_flow;
/* The analysis of m for the explained output value out (attention: SAL_ATTN_*). */
sal_status sal_lrp_flow_make(const sal_model *m, int out, int attention, sal_lrp_flow *f);
void sal_lrp_flow_free(sal_lrp_flow *f);
/* Layer-, Instance- and GroupNormalization with their statistics held constant: the z-rule of the
 * layer made linear (stab: the denominators' stabilizer). */
sal_status sal_lrp_norm(sal_opctx *c, double stab);

/* Forward of x (B, ...) on s (skipped when s's last forward pass was on these very values), seed
 * R = the explained output (logit, or softmax probability when prob) at target[b] of output 0,
 * then the backward pass with rules. Afterwards s->grad[v] holds
 * the relevance of every value v on a path from the input (s->grad[input] is the map). value (B)
 * gets the seeds when not NULL. */
sal_status sal_lrp_backward(sal_session *s, const sal_tensor *x, const int64_t *target, bool prob,
                            const sal_rule_fn *rules, void *user, float *value);

/* The same for the target of c (any output, class or region targets; lrp_pass's call). */
sal_status sal_lrp_backward_c(const sal_xctx *c, sal_session *s, const sal_tensor *x, const int64_t *target,
                              const sal_rule_fn *rules, void *user, float *value);

/* Runs sal_lrp_backward over c->x through sal_run_batched (chunks of c->chunk rows) on model m
 * (c->m or a canonized copy of it) and writes c->out. conservation: report the metrics relevance_conservation (mean over
 * samples of sum(map) / explained value) and relevance_conservation_worst (largest |ratio - 1|). */
sal_status sal_lrp_drive(sal_xctx *c, const sal_model *m, const sal_rule_fn *rules, void *user, bool conservation);

/* ---- patterns (pattern.c) ---- */

/* Which pattern each linear node uses: the two-component (ReLU) one where only ReLUs read its
 * output and the linear one elsewhere (the output layer), or one kind everywhere. */
enum { SAL_PATTERN_AUTO = 0, SAL_PATTERN_RELU, SAL_PATTERN_LINEAR };

/* A copy of p made the patterns of model m (its hash): the invariance audit gives the shifted
 * model f2 the patterns of f1, whose nodes it shares by name (docs/audits.md). */
sal_status sal_patterns_for_model(const sal_patterns *p, const sal_model *m, sal_patterns **out);

/* The pattern methods on c: PatternNet (backward through the patterns) or PatternAttribution
 * (through w * a), with the patterns of the file named by the `patterns` parameter, else those in
 * memory (c->patterns). kind: SAL_PATTERN_*. */
sal_status sal_pattern_run(sal_xctx *c, bool attribution, int kind);

#endif
