/* Shared by the rule-based methods (relu_rules.c: guided backprop, deconvnet, RectGrad; deeplift.c):
 * which ops are linear, which need a method's own rule, and the rules every such method uses for
 * the linear part and for ops it has no rule for. */
#ifndef SAL_RELU_RULES_H
#define SAL_RELU_RULES_H

#include "method.h"

typedef enum {
    SAL_RK_OTHER = 0, /* nonlinear, no shared meaning: a method without a rule must refuse it */
    SAL_RK_LINEAR,    /* linear or affine in its float inputs: the gradient is every method's rule */
    SAL_RK_PRODUCT,   /* linear in each operand (Mul, Div, MatMul, Gemm, Conv, BatchNormalization):
                       * linear only while at most one operand depends on the model input */
    SAL_RK_RELU,
    SAL_RK_LEAKY,
    SAL_RK_SMOOTH,    /* Sigmoid, Tanh */
    SAL_RK_CLIP,
    SAL_RK_MAXPOOL,
    SAL_RK_GMAXPOOL,
    SAL_RK_SOFTMAX,   /* Softmax, LogSoftmax */
} sal_rule_kind;

sal_rule_kind sal_rule_kind_of(const sal_node *n);

/* Every method's rule state starts with this, so the shared rules can name the method. */
typedef struct {
    const char *method;
    const char *supported; /* what the method has rules for, for the refusal message */
} sal_rule_base;

/* The gradient, after checking that the node is linear in what depends on the model input. */
sal_status sal_rule_linear(sal_opctx *c, void *user);
/* Whether c's node is a Gemm whose input in[0] is a Relu's output (present in this pass). */
bool sal_gemm_over_relu(const sal_opctx *c);
/* sal_rule_linear for a Gemm over a Relu (sal_gemm_over_relu) whose rule passes nothing back where
 * the Relu's output is not positive, nor m1 where given (the same units in a reference pass): the
 * input gradient is computed for the other units only, reading only their rows of the weights
 * (sal_gemm_din_masked); for other nodes, or where that does not pay, sal_rule_linear. */
sal_status sal_rule_linear_masked(sal_opctx *c, void *user, const float *m1);
/* sal_rule_linear_masked without m1, for guided backprop and RectGrad, whose ReLU rules pass nothing
 * where the unit is off. */
sal_status sal_rule_linear_relu(sal_opctx *c, void *user);
/* Fails naming the node, its op and the method. Runs only when the walker reaches the node, so a
 * nonlinearity off the path from input to explained output does not stop a method. */
sal_status sal_rule_reject(sal_opctx *c, void *user);
/* Describe mode (sal_xctx.rules): the line of node i, which gets rule fn; own names the method's
 * own rules for its activations ("ReLU: ..."). */
sal_status sal_rule_describe(const sal_xctx *c, int i, sal_rule_fn fn, const char *own);

#endif
