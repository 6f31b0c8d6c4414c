/* `saliency info --rules METHOD`: the backward rule every node gets. Methods that decide rules per
 * node (the LRP family, Deep Taylor, the ReLU-rule methods, DeepLIFT) run in describe mode: they
 * build their plan as for a run, write one line per node into c->rules and return before any pass. */
#include "method.h"
#include <stdarg.h>

sal_status sal_rule_line(const sal_xctx *c, int i, const char *fmt, ...) {
    if (!c->rules || i < 0 || i >= c->m->nnode) return SAL_OK;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sal_free(c->rules[i]);
    c->rules[i] = sal_strdup(buf);
    return c->rules[i] ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
}

void sal_method_rules_free(char **rules, int n) {
    for (int i = 0; rules && i < n; i++) sal_free(rules[i]);
    sal_free(rules);
}

sal_status sal_method_rules(const sal_model *m, const char *name, int nparams, const char *const *params,
                            const char *output_name, char ***out) {
    *out = NULL;
    const sal_method *meth = name ? sal_method_lookup(name) : NULL;
    if (!meth) return sal_fail(SAL_ERR_ARG, "unknown method '%s' (saliency methods lists them)", name ? name : "");
    if (nparams < 0 || nparams > 64) return sal_fail(SAL_ERR_ARG, "too many parameters (at most 64)");
    char keys[64][64];
    const char *key[64], *val[64];
    for (int i = 0; i < nparams; i++) {
        const char *eq = params[i] ? strchr(params[i], '=') : NULL;
        size_t k = eq ? (size_t)(eq - params[i]) : 0;
        if (!eq || !k || k >= sizeof keys[0])
            return sal_fail(SAL_ERR_ARG, "parameter '%s' is not of the form key=value", params[i] ? params[i] : "");
        memcpy(keys[i], params[i], k);
        keys[i][k] = '\0';
        bool known = false;
        for (const sal_param_spec *p = meth->params; p->name && !known; p++) known = !strcmp(p->name, keys[i]);
        if (!known) return sal_fail(SAL_ERR_ARG, "method %s has no parameter '%s'", meth->name, keys[i]);
        key[i] = keys[i], val[i] = eq + 1;
    }
    int outv = m->output[0];
    for (int i = 0; output_name && i < m->noutput; i++)
        if (!strcmp(m->val[m->output[i]].name, output_name)) outv = m->output[i];
    if (output_name && strcmp(m->val[outv].name, output_name))
        return sal_fail(SAL_ERR_ARG, "output name '%s' is not an output of %s", output_name, m->path);
    char **rules = sal_calloc((size_t)m->nnode + 1, sizeof *rules);
    if (!rules) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_xctx c = {.m = m, .meth = meth, .nkv = nparams, .key = key, .val = val, .lo = 0, .hi = 1, .outv = outv,
                  .rules = rules};
    sal_status st = meth->describes ? meth->run(&c) : SAL_OK;
    for (int i = 0; st == SAL_OK && i < m->nnode && rules[0]; i++)
        if (!rules[i]) st = sal_rule_line(&c, i, "-");
    if (st == SAL_OK && !rules[0] && m->nnode)
        st = sal_fail(SAL_ERR_ARG, "method %s decides no rules per node: it uses every op's own gradient or "
                      "forward passes only", meth->name);
    sal_tensor_free(&c.out);
    sal_tensor_free(&c.layer_out);
    if (st != SAL_OK) {
        sal_method_rules_free(rules, m->nnode);
        return st;
    }
    *out = rules;
    return SAL_OK;
}
