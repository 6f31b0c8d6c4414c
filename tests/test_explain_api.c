/* The public explain API: a reused session gives the same bytes as a fresh one, a session of another
 * model is refused, targets resolve to max/min/given classes, and bad requests name their cause. */
#include "testutil.h"

int main(void) {
    sal_model *m, *other;
    CHECK_OK(sal_model_build("mlp", 10, 3, &m));
    CHECK_OK(sal_model_build("mlp", 10, 4, &other));
    sal_rng r;
    sal_rng_seed(&r, 9);
    sal_tensor x = t_rand(&r, 4, (int64_t[]){3, 1, 28, 28}, 0.5f);
    sal_session *s;
    CHECK_OK(sal_session_new(m, &s));
    const char *methods[] = {"gradient", "integrated_gradients", "guided_backprop"};
    for (int k = 0; k < 3; k++) {
        sal_explanation *a = NULL, *b = NULL, *c = NULL;
        sal_explain_opts o = {.method = methods[k]};
        CHECK_OK(sal_explain(m, &x, &o, &a));
        o.session = s;
        CHECK_OK(sal_explain(m, &x, &o, &b));
        CHECK_OK(sal_explain(m, &x, &o, &c)); /* second use of the same session */
        if (a && b && c) {
            size_t n = (size_t)sal_tensor_numel(sal_explanation_map(a)) * sizeof(float);
            CHECK(!memcmp(sal_explanation_map(a)->data, sal_explanation_map(b)->data, n) &&
                      !memcmp(sal_explanation_map(a)->data, sal_explanation_map(c)->data, n),
                  "%s: a reused session changed the result", methods[k]);
        }
        sal_explanation_free(a);
        sal_explanation_free(b);
        sal_explanation_free(c);
    }
    /* targets: max and min are the extremes of the model's own outputs; given classes are kept */
    sal_explanation *e = NULL;
    const sal_tensor *y;
    CHECK_OK(sal_forward(s, 1, &x, &y));
    float z[30];
    memcpy(z, y->data, sizeof z);
    for (int mode = 0; mode < 2; mode++) {
        sal_explain_opts o = {.method = "gradient", .target = mode ? SAL_TARGET_MIN : SAL_TARGET_MAX};
        CHECK_OK(sal_explain(m, &x, &o, &e));
        for (int i = 0; e && i < 3; i++) {
            int64_t t = sal_explanation_targets(e)[i];
            bool ok = true;
            for (int k = 0; k < 10; k++) ok &= mode ? z[i * 10 + t] <= z[i * 10 + k] : z[i * 10 + t] >= z[i * 10 + k];
            CHECK(ok && fabsf(sal_explanation_outputs(e)[i] - z[i * 10 + t]) < 1e-5f, "%s target of sample %d",
                  mode ? "min" : "max", i);
        }
        sal_explanation_free(e);
        e = NULL;
    }
    int64_t cls[3] = {7, 0, 4};
    sal_explain_opts o = {.method = "gradient", .target = SAL_TARGET_INDEX, .classes = cls, .nclasses = 3};
    CHECK_OK(sal_explain(m, &x, &o, &e));
    CHECK(e && sal_explanation_targets(e)[0] == 7 && sal_explanation_targets(e)[2] == 4, "given classes kept");
    sal_explanation_free(e);
    e = NULL;
    cls[1] = 10;
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "out of range");
    o = (sal_explain_opts){.method = "gradient", .session = s};
    CHECK_FAILS(sal_explain(other, &x, &o, &e), SAL_ERR_ARG, "another model");
    o = (sal_explain_opts){.method = "no_such_method"};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "no_such_method");
    const char *bad[] = {"steps=10"};
    o = (sal_explain_opts){.method = "gradient", .nparams = 1, .params = bad};
    CHECK_FAILS(sal_explain(m, &x, &o, &e), SAL_ERR_ARG, "no parameter 'steps'");
    CHECK(e == NULL, "failed calls return no explanation");
    sal_tensor_free(&x);
    sal_session_free(s);
    sal_model_free(m);
    sal_model_free(other);
    return t_done("test_explain_api");
}
