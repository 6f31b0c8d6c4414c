/* Node attributes: lookup with defaults, and builders for programmatic graphs. */
#include "ir.h"

void sal_attr_clear(sal_attr *a) {
    sal_free(a->name);
    sal_free(a->s);
    sal_free(a->floats);
    sal_free(a->ints);
    sal_tensor_free(&a->t);
    memset(a, 0, sizeof *a);
}

const sal_attr *sal_attr_find(const sal_node *n, const char *name) {
    for (int i = 0; i < n->nattr; i++)
        if (!strcmp(n->attr[i].name, name)) return &n->attr[i];
    return NULL;
}

int64_t sal_attr_int(const sal_node *n, const char *name, int64_t def) {
    const sal_attr *a = sal_attr_find(n, name);
    return a && a->type == SAL_ATTR_INT ? a->i : def;
}

float sal_attr_float(const sal_node *n, const char *name, float def) {
    const sal_attr *a = sal_attr_find(n, name);
    return a && a->type == SAL_ATTR_FLOAT ? a->f : def;
}

const char *sal_attr_string(const sal_node *n, const char *name, const char *def) {
    const sal_attr *a = sal_attr_find(n, name);
    return a && a->type == SAL_ATTR_STRING && a->s ? a->s : def;
}

const int64_t *sal_attr_ints(const sal_node *n, const char *name, int *count) {
    const sal_attr *a = sal_attr_find(n, name);
    if (!a || a->type != SAL_ATTR_INTS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    return a->ints;
}

sal_attr sal_attr_make_int(const char *name, int64_t v) {
    return (sal_attr){.name = sal_strdup(name), .type = SAL_ATTR_INT, .i = v};
}

sal_attr sal_attr_make_float(const char *name, float v) {
    return (sal_attr){.name = sal_strdup(name), .type = SAL_ATTR_FLOAT, .f = v};
}

sal_attr sal_attr_make_string(const char *name, const char *s) {
    sal_attr a = {.name = sal_strdup(name), .type = SAL_ATTR_STRING, .s = sal_strdup(s)};
    if (!a.s) sal_attr_clear(&a);
    return a;
}

sal_attr sal_attr_make_ints(const char *name, int n, const int64_t *v) {
    sal_attr a = {.name = sal_strdup(name), .type = SAL_ATTR_INTS, .n = n};
    a.ints = sal_malloc((size_t)(n ? n : 1) * sizeof *a.ints);
    if (!a.ints) {
        sal_attr_clear(&a);
        return a;
    }
    memcpy(a.ints, v, (size_t)n * sizeof *v);
    return a;
}
