/* Audit results read back from their JSON (docs/audits.md) into the struct the audits fill
 * (audits/audit.h), so that the report draws numbers: metrics, verdict outcomes, curves. Files of
 * other versions or written by hand may lack members: a missing number reads NAN, a missing curve
 * point NAN, an unknown audit keeps its results and metrics. */
#include "report.h"

/* Pass, fail, skipped or undetermined. Files carry the outcome in the audit's boolean metric and in
 * the verdict's words ("skipped: ...", "undetermined ...", "not invariant", "insensitive"). */
static sal_verdict outcome_of(au_kind kind, const rj_value *r) {
    const char *v = rj_getstr(r, "verdict", "");
    if (rj_num(rj_get(r, "skipped")) == 1 || !strncmp(v, "skipped", 7)) return SAL_VERDICT_SKIPPED;
    if (!strncmp(v, "undetermined", 12)) return SAL_VERDICT_UNDETERMINED;
    double ok = kind < AU_NKINDS ? rj_getnum(r, au_pass_key[kind]) : NAN;
    if (isfinite(ok)) return ok != 0 ? SAL_VERDICT_PASS : SAL_VERDICT_FAIL;
    if (!strncmp(v, "not ", 4) || !strncmp(v, "in", 2)) return SAL_VERDICT_FAIL;
    return *v ? SAL_VERDICT_PASS : SAL_VERDICT_UNDETERMINED;
}

static char *dup(const char *s) { return sal_strdup(s ? s : ""); }

/* Every number, boolean or null member of r except "skipped", in file order. */
static void load_metrics(const rj_value *r, au_result *out) {
    for (int k = 0; k < r->n; k++) {
        const rj_value *v = &r->items[k];
        if (!strcmp(r->keys[k], "skipped") || !strcmp(r->keys[k], "reference") || strlen(r->keys[k]) >= sizeof out->mkey[0])
            continue;
        if (v->type == RJ_BOOL) au_metric_bool(out, r->keys[k], v->num != 0);
        else if (v->type == RJ_NUM || v->type == RJ_NULL) au_metric(out, r->keys[k], rj_num(v));
    }
}

/* A curve array of n points (NAN where missing) into v, spaced `stride` doubles apart. */
static void load_points(const rj_value *arr, const char *key, int n, double *v, int stride) {
    for (int s = 0; s < n; s++) {
        const rj_value *p = rj_at(arr, s);
        v[(size_t)s * (size_t)stride] = key ? rj_getnum(p, key) : rj_num(p);
    }
}

static int array_len(const rj_value *v) { return v && v->type == RJ_ARR ? v->n : 0; }

/* randomization: "cascading" and "independent", arrays of {"step", "layer", <similarities>} */
static sal_status load_randomization(const rj_value *r, au_result *out) {
    const rj_value *mode[2] = {rj_get(r, "cascading"), rj_get(r, "independent")};
    int n = array_len(mode[0]) > array_len(mode[1]) ? array_len(mode[0]) : array_len(mode[1]);
    if (!n) return SAL_OK;
    if (!(out->curve = sal_malloc((size_t)2 * (size_t)n * AU_NSIM * sizeof *out->curve)))
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    out->npoint = n;
    for (int md = 0; md < 2; md++)
        for (int k = 0; k < AU_NSIM; k++)
            load_points(mode[md], au_sim_name[k], n, out->curve + (size_t)md * (size_t)n * AU_NSIM + k, AU_NSIM);
    return SAL_OK;
}

/* faithfulness: "curves": {"deletion_morf": [...], ...} */
static sal_status load_faithfulness(const rj_value *r, au_result *out) {
    const rj_value *cv = rj_get(r, "curves");
    if (!cv || cv->type != RJ_OBJ) return SAL_OK;
    int n = 0;
    for (int k = 0; k < AU_NCURVE; k++) n = array_len(rj_get(cv, au_curve_name[k])) > n ? array_len(rj_get(cv, au_curve_name[k])) : n;
    if (!(out->curve = sal_malloc((size_t)AU_NCURVE * (size_t)(n ? n : 1) * sizeof *out->curve)))
        return sal_fail(SAL_ERR_NOMEM, "out of memory");
    out->npoint = n;
    for (int k = 0; k < AU_NCURVE; k++) load_points(rj_get(cv, au_curve_name[k]), NULL, n, out->curve + k * n, 1);
    return SAL_OK;
}

static sal_status load_result(const rj_value *r, au_kind kind, au_result *out) {
    const char *method = rj_getstr(r, "method", "?"), *label = rj_getstr(r, "label", "");
    out->method = dup(method);
    out->label = dup(*label ? label : method);
    out->verdict = dup(rj_getstr(r, "verdict", ""));
    if (!out->method || !out->label || !out->verdict) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    /* "params": {"key": "value"} as given, back to "key=value" (the papers' rows match on them) */
    const rj_value *pv = rj_get(r, "params");
    if (pv && pv->type == RJ_OBJ && pv->n > 0) {
        if (!(out->params = sal_calloc((size_t)pv->n, sizeof *out->params))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        for (int k = 0; k < pv->n; k++, out->nparams++) {
            sal_sbuf b = {0};
            sal_sb_printf(&b, "%s=%s", pv->keys[k], rj_str(&pv->items[k], ""));
            if (b.oom || !b.s) {
                sal_sb_free(&b);
                return sal_fail(SAL_ERR_NOMEM, "out of memory");
            }
            out->params[k] = b.s;
        }
    }
    out->outcome = outcome_of(kind, r);
    out->patterns = rj_get(r, "patterns") != NULL;
    out->reference = rj_num(rj_get(r, "reference")) == 1;
    load_metrics(r, out);
    if (kind == AU_RANDOMIZATION) return load_randomization(r, out);
    if (kind == AU_FAITHFULNESS) return load_faithfulness(r, out);
    return SAL_OK;
}

/* The top-level numbers the report draws: the layers randomized (the cascade's step names, else
 * "layers"), the random order's deletion curve and AOPC. */
static sal_status load_top(const rj_value *d, sal_audit *a) {
    if (a->kind == AU_RANDOMIZATION) {
        const rj_value *res = rj_get(d, "results"), *steps = NULL, *layers = rj_get(d, "layers");
        for (int i = 0; i < res->n; i++) {
            const rj_value *c = rj_get(&res->items[i], "cascading");
            a->rnd.mode |= (c ? 1 : 0) | (rj_get(&res->items[i], "independent") ? 2 : 0);
            if (array_len(c) > array_len(steps)) steps = c;
        }
        int n = steps ? array_len(steps) - 1 : array_len(layers);
        if (n > 0 && !(a->rnd.layer = sal_calloc((size_t)n, sizeof *a->rnd.layer))) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        for (int s = 0; s < n; s++, a->rnd.nlayer++)
            if (!(a->rnd.layer[s] = dup(steps ? rj_getstr(rj_at(steps, s + 1), "layer", "") : rj_str(rj_at(layers, s), ""))))
                return sal_fail(SAL_ERR_NOMEM, "out of memory");
    }
    if (a->kind == AU_FAITHFULNESS) {
        const rj_value *rnd = rj_get(d, "random"), *del = rj_get(rnd, "deletion");
        int n = array_len(del);
        a->fa.aopc = rj_getnum(rnd, "aopc");
        a->fa.prob = !strcmp(rj_getstr(d, "output", ""), "probability");
        a->fa.steps = n - 1;
        if (n && !(a->fa.curve = sal_malloc((size_t)AU_NCURVE * (size_t)n * sizeof *a->fa.curve)))
            return sal_fail(SAL_ERR_NOMEM, "out of memory");
        for (int k = 0; k < AU_NCURVE * n; k++) a->fa.curve[k] = NAN;
        load_points(del, NULL, n, a->fa.curve + AU_DEL_MORF * n, 1);
    }
    return SAL_OK;
}

sal_status rp_audit_load(const rj_value *doc, sal_audit **out) {
    *out = NULL;
    const char *name = rj_getstr(doc, "audit", "");
    au_kind kind = AU_NKINDS;
    for (int k = 0; k < AU_NKINDS; k++)
        if (!strcmp(name, au_kind_name[k])) kind = (au_kind)k;
    const rj_value *res = rj_get(doc, "results");
    int n = res && res->type == RJ_ARR ? res->n : 0;
    double seed = rj_getnum(doc, "seed");
    sal_audit_common c = {.model_name = rj_getstr(doc, "model", ""), .data_name = rj_getstr(doc, "data", ""),
                          .seed = isfinite(seed) && seed >= 0 ? (uint64_t)seed : 0};
    sal_audit *a = NULL;
    SAL_TRY(au_audit_new(kind, &c, n, 0, 0, &a));
    a->tol = rj_getnum(doc, "tolerance");
    sal_status st = SAL_OK;
    for (int i = 0; i < n && st == SAL_OK; i++) st = load_result(&res->items[i], kind, &a->res[i]);
    if (st == SAL_OK) st = load_top(doc, a);
    if (st != SAL_OK) {
        sal_audit_free(a);
        return st;
    }
    *out = a;
    return SAL_OK;
}
