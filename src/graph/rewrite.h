/* Graph rewrites: every new model made from another goes through one copy-with-edits, so attribute
 * copying, fresh names and rebuilding live here once. Users: canonization for LRP and the patterns
 * (BatchNormalization folding), the invariance audit (the shifted model), the randomization audit
 * (copies with re-drawn weights) and the patterns file (the model hash). */
#ifndef SAL_REWRITE_H
#define SAL_REWRITE_H

#include "graph.h"

/* One node's edit in a copy. Name arrays hold value names; "" omits an optional slot. */
typedef struct {
    int node;                        /* index in the source model */
    bool drop;                       /* leave the node out: its consumers must read something else */
    int nin;                         /* > 0: these inputs instead of the node's own */
    const char *const *in;
    int nout;                        /* > 0: these outputs instead */
    const char *const *out;
    const char *set_float;           /* a float attribute to set (or add), or NULL */
    float set_float_value;
    /* a node inserted right after this one, or add_name NULL */
    sal_op_id add_op;
    const char *add_name;
    int add_nin;
    const char *const *add_in;
    const char *add_out;
} sal_node_edit;

typedef struct {
    int nedit;
    const sal_node_edit *edit;
    int nconst;                      /* constants to add; the tensors are consumed (zeroed) */
    const char *const *const_name;
    sal_tensor *const_value;
    bool prune;                      /* leave out constants that no node of the copy reads */
} sal_model_edits;

/* A finalized copy of m with the edits applied (e may be NULL: a plain copy). Nodes of any arity
 * and any number of attributes are copied; nothing is truncated. */
sal_status sal_model_rewrite(const sal_model *m, const sal_model_edits *e, sal_model **out);

/* A value or node name in neither m nor g (may be NULL): base + suffix, then base + suffix + 2, ... */
void sal_fresh_name(const sal_model *m, const sal_model *g, const char *base, const char *suffix, char *buf,
                    size_t n);

/* Canonization for LRP and the pattern methods: every BatchNormalization whose input is the output
 * of a Conv or Gemm (read by nothing else) folded into that node's weights and bias, giving one
 * linear node with the same function (Guillemot et al. 2020; Motzkus et al. 2022 on why rules need
 * it: z+, gamma or alpha-beta applied to the linear node and then to the affine normalization are
 * not the rule applied to their composition). *nfolded counts the folds; with none, *out is NULL:
 * use m itself. The folded node keeps its name and takes over the normalization's output. */
sal_status sal_canonize(const sal_model *m, sal_model **out, int *nfolded);

/* Makes f2, the shifted model of f1 (sal_model_shifted, same shift), evaluate with f1's activations
 * beyond its first linear node: every session of f2 then runs f1 at input - shift beside it and
 * copies f1's values for the nodes both models share (by value name), so every decision downstream
 * (ReLU states, max-pool argmaxes, RectGrad thresholds) is f1's bit for bit, although f2's first
 * layer, weights and input stay its own. The values are the same numbers up to float rounding, which
 * would otherwise break f1's exact ties differently. f1 must outlive f2's sessions; shift NULL
 * removes the twin. */
sal_status sal_model_set_twin(sal_model *f2, const sal_model *f1, const sal_tensor *shift);

/* Re-draws every parameter of node `node` of m (a copy it owns): from N(0, sigma^2), or with
 * scaled, weights from N(0, 2 / fan_in) and zero biases. Input k's stream is seeded by seed + k. */
void sal_reinit_params(sal_model *m, int node, bool scaled, double sigma, uint64_t seed);

#endif
