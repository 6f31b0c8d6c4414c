/* A small string -> int hash map (open addressing, FNV-1a) for name lookups in large graphs. */
#include "core.h"

/* The starting value is mixed from this process's own (randomised) address layout: names in a model
 * file are chosen by whoever wrote it, and with a fixed start they could be picked to fall into one
 * bucket and make every lookup linear. */
static uint64_t hash_basis(void) {
    static const char anchor;
    uint64_t z = (uint64_t)(uintptr_t)&anchor + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return 1469598103934665603ull ^ (z ^ (z >> 31));
}

static uint64_t hash(const char *s) {
    uint64_t h = hash_basis();
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static sal_status grow(sal_strmap *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    char **keys = sal_calloc(ncap, sizeof *keys);
    int *vals = sal_calloc(ncap, sizeof *vals);
    if (!keys || !vals) {
        sal_free(keys);
        sal_free(vals);
        return sal_fail(SAL_ERR_NOMEM, "out of memory growing a name table");
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = hash(m->keys[i]) & (ncap - 1);
        while (keys[j]) j = (j + 1) & (ncap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    sal_free(m->keys);
    sal_free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = ncap;
    return SAL_OK;
}

sal_status sal_strmap_put(sal_strmap *m, const char *key, int val) {
    if ((m->len + 1) * 2 > m->cap) SAL_TRY(grow(m));
    size_t j = hash(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (!strcmp(m->keys[j], key)) {
            m->vals[j] = val;
            return SAL_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    if (!(m->keys[j] = sal_strdup(key))) return sal_fail(SAL_ERR_NOMEM, "out of memory in a name table");
    m->vals[j] = val;
    m->len++;
    return SAL_OK;
}

int sal_strmap_get(const sal_strmap *m, const char *key) {
    if (!m->cap) return -1;
    size_t j = hash(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (!strcmp(m->keys[j], key)) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void sal_strmap_free(sal_strmap *m) {
    for (size_t i = 0; i < m->cap; i++) sal_free(m->keys[i]);
    sal_free(m->keys);
    sal_free(m->vals);
    memset(m, 0, sizeof *m);
}
