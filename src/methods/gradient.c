/* The plain gradient (sensitivity map) and gradient x input. */
#include "method.h"

static const sal_param_spec k_none[] = {{NULL, NULL, NULL}};

/* Simonyan et al. 2014: d f_t / d x. */
static sal_status run_gradient(sal_xctx *c) {
    return sal_rule_grad(c, c->s, c->x, c->target, NULL, NULL, &c->out, NULL);
}

const sal_method sal_method_gradient = {
    .name = "gradient",
    .summary = "d output / d input (Simonyan et al. 2014, saliency maps)",
    .params = k_none,
    .run = run_gradient,
    .plain_io = true,
};

/* Shrikumar et al. 2016: x * d f_t / d x; not invariant to a constant input shift. */
static sal_status run_gxi(sal_xctx *c) {
    SAL_TRY(sal_rule_grad(c, c->s, c->x, c->target, NULL, NULL, &c->out, NULL));
    float *a = sal_f32(&c->out);
    const float *x = sal_f32(c->x);
    for (int64_t i = 0, n = sal_tensor_numel(c->x); i < n; i++) a[i] *= x[i];
    return SAL_OK;
}

const sal_method sal_method_gradient_x_input = {
    .name = "gradient_x_input",
    .summary = "input times gradient (Shrikumar et al. 2016; Kindermans et al. 2016)",
    .params = k_none,
    .run = run_gxi,
    .plain_io = true,
};
