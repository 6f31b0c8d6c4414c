/* Writers of audit results: JSON (docs/audits.md) and CSV. They read the numbers the audits
 * computed; the layout of each audit's own members is here, in one place. */
#include "audit.h"
#include <stdlib.h>

static sal_status finish(sal_sbuf *b, char **out, const char *what) {
    if (b->oom) {
        sal_sb_free(b);
        return sal_fail(SAL_ERR_NOMEM, "out of memory writing the %s report", what);
    }
    size_t n = b->len + 1;
    *out = malloc(n); /* the caller frees with free(), not through our allocator */
    if (!*out) {
        sal_sb_free(b);
        return sal_fail(SAL_ERR_NOMEM, "out of memory writing the %s report", what);
    }
    memcpy(*out, b->s ? b->s : "", n);
    sal_sb_free(b);
    return SAL_OK;
}

static void num_array(sal_sbuf *b, const double *v, int64_t n) {
    sal_sb_printf(b, "[");
    for (int64_t s = 0; s < n; s++) {
        sal_sb_printf(b, "%s", s ? ", " : "");
        sal_sb_num(b, v[s]);
    }
    sal_sb_printf(b, "]");
}

/* ---- JSON: each audit's top-level members ---- */

static void top_invariance(sal_sbuf *b, const sal_audit *a) {
    sal_sb_printf(b, ",\n  \"model_check\": {\"max_abs_diff\": ");
    sal_sb_num(b, a->inv.max_abs_diff);
    sal_sb_printf(b, ", \"max_rel_diff\": ");
    sal_sb_num(b, a->inv.max_rel_diff);
    sal_sb_printf(b, ", \"same_predictions\": %lld, \"samples\": %lld}", (long long)a->inv.same_predictions,
                  (long long)a->samples);
    sal_sb_printf(b, ",\n  \"f2_activations\": \"%s\"", a->inv.own ? "its own" : "f1's beyond the first layer");
    sal_sb_printf(b, ",\n  \"shift\": {\"min\": ");
    sal_sb_num(b, a->inv.shift_min);
    sal_sb_printf(b, ", \"max\": ");
    sal_sb_num(b, a->inv.shift_max);
    sal_sb_printf(b, "}");
}

static void top_randomization(sal_sbuf *b, const sal_audit *a) {
    sal_sb_printf(b, ",\n  \"layers\": [");
    for (int l = 0; l < a->rnd.nlayer; l++) {
        sal_sb_printf(b, "%s", l ? ", " : "");
        sal_sb_str(b, a->rnd.layer[l]);
    }
    sal_sb_printf(b, "],\n  \"init\": \"%s\"", a->rnd.scaled ? "scaled gaussian N(0, 2/fan_in), zero biases" : "gaussian");
    if (!a->rnd.scaled) {
        sal_sb_printf(b, ",\n  \"sigma\": ");
        sal_sb_num(b, a->rnd.sigma);
    }
    sal_sb_printf(b, ",\n  \"target\": \"the trained model's predicted class\"");
}

static void top_pointing(sal_sbuf *b, const sal_audit *a) {
    sal_sb_printf(b, ",\n  \"trials\": %lld,\n  \"images\": %lld,\n  \"top_class_labelled\": ", (long long)a->pt.trials,
                  (long long)a->pt.images);
    sal_sb_num(b, a->pt.top_labelled);
    static const char *const how[] = {"energy", "max_abs", "sum"};
    sal_sb_printf(b, ",\n  \"radius\": ");
    sal_sb_num(b, a->pt.radius);
    sal_sb_printf(b, ",\n  \"map\": \"%s\"", how[a->pt.reduce]);
}

static void top_faithfulness(sal_sbuf *b, const sal_audit *a) {
    static const char *const rep[] = {"value", "blur", "noise"}, *const repkey[] = {"value", "sigma", "sd"};
    sal_sb_printf(b, ",\n  \"output\": \"%s\",\n  \"steps\": %lld,\n  \"replacement\": {\"kind\": \"%s\", \"%s\": ",
                  a->fa.prob ? "probability" : "logit", (long long)a->fa.steps, rep[a->fa.replace],
                  repkey[a->fa.replace]);
    sal_sb_num(b, a->fa.rep);
    sal_sb_printf(b, "},\n  \"random\": {\"deletion_auc\": ");
    sal_sb_num(b, a->fa.del_auc);
    sal_sb_printf(b, ", \"insertion_auc\": ");
    sal_sb_num(b, a->fa.ins_auc);
    sal_sb_printf(b, ", \"aopc\": ");
    sal_sb_num(b, a->fa.aopc);
    sal_sb_printf(b, ", \"deletion\": ");
    num_array(b, a->fa.curve + AU_DEL_MORF * (a->fa.steps + 1), a->fa.steps + 1);
    sal_sb_printf(b, "},\n  \"occlusion\": ");
    if (a->fa.have_occ) {
        sal_sb_printf(b, "{\"params\": [");
        for (int k = 0; k < a->fa.nocc; k++) {
            sal_sb_printf(b, "%s", k ? ", " : "");
            sal_sb_str(b, a->fa.occ[k]);
        }
        sal_sb_printf(b, "]}");
    } else {
        sal_sb_printf(b, "{\"skipped\": ");
        sal_sb_str(b, a->fa.occ_err ? a->fa.occ_err : "");
        sal_sb_printf(b, "}");
    }
}

/* ---- JSON: each audit's curves in a result ---- */

/* The name of the layer randomized at step s (none at step 0). */
static const char *step_layer(const sal_audit *a, int s) { return s && s <= a->rnd.nlayer ? a->rnd.layer[s - 1] : ""; }

static void curves_randomization(sal_sbuf *b, const sal_audit *a, const au_result *r) {
    int n = r->npoint;
    for (int md = 0; md < 2; md++) {
        if (!(a->rnd.mode & (1 << md))) continue;
        const double *cv = r->curve + (size_t)md * (size_t)n * AU_NSIM;
        sal_sb_printf(b, ",\n      \"%s\": [", md ? "independent" : "cascading");
        for (int s = 0; s < n; s++) {
            sal_sb_printf(b, "%s\n        {\"step\": %d, \"layer\": ", s ? "," : "", s);
            sal_sb_str(b, step_layer(a, s));
            for (int k = 0; k < AU_NSIM; k++) {
                sal_sb_printf(b, ", \"%s\": ", au_sim_name[k]);
                sal_sb_num(b, cv[s * AU_NSIM + k]);
            }
            sal_sb_printf(b, "}");
        }
        sal_sb_printf(b, "\n      ]");
    }
}

static void curves_faithfulness(sal_sbuf *b, const au_result *r) {
    sal_sb_printf(b, ",\n      \"curves\": {");
    for (int k = 0; k < AU_NCURVE; k++) {
        sal_sb_printf(b, "%s\"%s\": ", k ? ", " : "", au_curve_name[k]);
        num_array(b, r->curve + k * r->npoint, r->npoint);
    }
    sal_sb_printf(b, "}");
}

/* The parameters given, as a JSON object (a bare "key" maps to ""). */
static void params_object(sal_sbuf *b, const au_result *r) {
    sal_sb_printf(b, "{");
    for (int k = 0; k < r->nparams; k++) {
        const char *p = r->params[k], *eq = strchr(p, '=');
        sal_sb_printf(b, "%s", k ? ", " : "");
        if (!eq) {
            sal_sb_str(b, p);
            sal_sb_printf(b, ": \"\"");
            continue;
        }
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - p), p);
        sal_sb_str(b, key);
        sal_sb_printf(b, ": ");
        sal_sb_str(b, eq + 1);
    }
    sal_sb_printf(b, "}");
}

static void result_json(sal_sbuf *b, const sal_audit *a, const au_result *r) {
    sal_sb_printf(b, "\n    {\n      \"method\": ");
    sal_sb_str(b, r->method ? r->method : "");
    sal_sb_printf(b, ",\n      \"label\": ");
    sal_sb_str(b, r->label ? r->label : "");
    sal_sb_printf(b, ",\n      \"params\": ");
    params_object(b, r);
    sal_sb_printf(b, ",\n      \"skipped\": %s", au_ran(r) ? "false" : "true");
    if (r->reference) sal_sb_printf(b, ",\n      \"reference\": true"); /* not a method: an oracle or a random map */
    for (int k = 0; k < r->nmetric; k++) {
        sal_sb_printf(b, ",\n      ");
        sal_sb_str(b, r->mkey[k]);
        sal_sb_printf(b, ": ");
        if (r->mbool[k]) sal_sb_printf(b, "%s", r->mval[k] != 0 ? "true" : "false");
        else sal_sb_num(b, r->mval[k]);
    }
    if (au_ran(r) && r->patterns)
        sal_sb_printf(b, ",\n      \"patterns\": \"%s\"",
                      a->kind == AU_INVARIANCE && !a->inv.own
                          ? "estimated by the audit for f1 from its reference data; f2 uses f1's"
                          : "estimated by the audit for each model from its reference data");
    if (au_ran(r) && r->curve && a->kind == AU_RANDOMIZATION) curves_randomization(b, a, r);
    if (au_ran(r) && r->curve && a->kind == AU_FAITHFULNESS) curves_faithfulness(b, r);
    sal_sb_printf(b, ",\n      \"verdict\": ");
    sal_sb_str(b, r->verdict ? r->verdict : "");
    sal_sb_printf(b, "\n    }");
}

sal_status sal_audit_json(const sal_audit *a, char **json) {
    *json = NULL;
    sal_sbuf b = {0};
    sal_sb_printf(&b, "{\n  \"audit\": ");
    sal_sb_str(&b, a->kind < AU_NKINDS ? au_kind_name[a->kind] : "unknown");
    sal_sb_printf(&b, ",\n  \"version\": \"%s\",\n  \"ranks\": %d,\n  \"model\": ", SAL_VERSION, a->ranks);
    sal_sb_str(&b, a->model);
    sal_sb_printf(&b, ",\n  \"data\": ");
    sal_sb_str(&b, a->data);
    sal_sb_printf(&b, ",\n  \"seed\": %llu,\n  \"tolerance\": ", (unsigned long long)a->seed);
    sal_sb_num(&b, a->tol);
    switch (a->kind) {
    case AU_INVARIANCE: top_invariance(&b, a); break;
    case AU_RANDOMIZATION: top_randomization(&b, a); break;
    case AU_POINTING: top_pointing(&b, a); break;
    case AU_FAITHFULNESS: top_faithfulness(&b, a); break;
    default: break;
    }
    sal_sb_printf(&b, ",\n  \"violations\": %d,\n  \"results\": [", sal_audit_violations(a));
    for (int i = 0; i < a->nres; i++) {
        sal_sb_printf(&b, "%s", i ? "," : "");
        result_json(&b, a, &a->res[i]);
    }
    sal_sb_printf(&b, "\n  ]\n}\n");
    return finish(&b, json, "JSON");
}

/* ---- CSV ---- */

/* One row per method, mode and step. */
static void csv_randomization(sal_sbuf *b, const sal_audit *a) {
    sal_sb_printf(b, "method,label,mode,step,layer");
    for (int k = 0; k < AU_NSIM; k++) sal_sb_printf(b, ",%s", au_sim_name[k]);
    sal_sb_printf(b, "\n");
    for (int j = 0; j < a->nres; j++) {
        const au_result *r = &a->res[j];
        for (int md = 0; md < 2 && au_ran(r); md++) {
            if (!(a->rnd.mode & (1 << md))) continue;
            const double *cv = r->curve + (size_t)md * (size_t)r->npoint * AU_NSIM;
            for (int s = 0; s < r->npoint; s++) {
                sal_sb_csv(b, r->method);
                sal_sb_printf(b, ",");
                sal_sb_csv(b, r->label);
                sal_sb_printf(b, ",%s,%d,", md ? "independent" : "cascading", s);
                sal_sb_csv(b, step_layer(a, s));
                for (int k = 0; k < AU_NSIM; k++) {
                    if (isfinite(cv[s * AU_NSIM + k])) sal_sb_printf(b, ",%.9g", cv[s * AU_NSIM + k]);
                    else sal_sb_printf(b, ",");
                }
                sal_sb_printf(b, "\n");
            }
        }
    }
}

/* One row per curve point: the random order's deletion and insertion, then every method's four. */
static void csv_faithfulness(sal_sbuf *b, const sal_audit *a) {
    int64_t S = a->fa.steps;
    sal_sb_printf(b, "method,label,curve,fraction,value\n");
    for (int k = 0; k < 2; k++)
        for (int64_t s = 0; s <= S; s++)
            sal_sb_printf(b, "random,random,%s,%.6g,%.9g\n", k ? "insertion" : "deletion", (double)s / (double)S,
                          a->fa.curve[(k ? AU_INS_MORF : AU_DEL_MORF) * (S + 1) + s]);
    for (int j = 0; j < a->nres; j++) {
        const au_result *r = &a->res[j];
        int64_t n = r->npoint;
        for (int k = 0; k < AU_NCURVE && au_ran(r); k++)
            for (int64_t s = 0; s < n; s++) {
                sal_sb_csv(b, r->method);
                sal_sb_printf(b, ",");
                sal_sb_csv(b, r->label);
                sal_sb_printf(b, ",%s,%.6g,%.9g\n", au_curve_name[k], (double)s / (double)(n - 1), r->curve[k * n + s]);
            }
    }
}

/* One row per result; the columns are the metrics of the first result that ran. */
static void csv_results(sal_sbuf *b, const sal_audit *a) {
    const au_result *first = NULL;
    for (int i = 0; i < a->nres && !first; i++)
        if (au_ran(&a->res[i])) first = &a->res[i];
    sal_sb_printf(b, "method,label");
    for (int k = 0; first && k < first->nmetric; k++) sal_sb_printf(b, ",%s", first->mkey[k]);
    sal_sb_printf(b, ",verdict\n");
    for (int i = 0; i < a->nres; i++) {
        const au_result *r = &a->res[i];
        sal_sb_csv(b, r->method ? r->method : "");
        sal_sb_printf(b, ",");
        sal_sb_csv(b, r->label ? r->label : "");
        for (int k = 0; first && k < first->nmetric; k++) {
            double v = sal_audit_metric(a, i, first->mkey[k]);
            sal_sb_printf(b, ",");
            if (!au_ran(r) || !isfinite(v)) continue;
            if (first->mbool[k]) sal_sb_printf(b, "%s", v != 0 ? "true" : "false");
            else sal_sb_printf(b, "%.9g", v);
        }
        sal_sb_printf(b, ",");
        sal_sb_csv(b, r->verdict ? r->verdict : "");
        sal_sb_printf(b, "\n");
    }
}

sal_status sal_audit_csv(const sal_audit *a, char **csv) {
    *csv = NULL;
    sal_sbuf b = {0};
    if (a->kind == AU_RANDOMIZATION) csv_randomization(&b, a);
    else if (a->kind == AU_FAITHFULNESS) csv_faithfulness(&b, a);
    else csv_results(&b, a);
    return finish(&b, csv, "CSV");
}
