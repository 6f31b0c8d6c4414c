/* Checked allocation with a failure-injection hook, so tests can prove every error path frees
 * what it allocated. */
#include "core.h"

static long g_fail_after; /* 0: never fail */

void sal_alloc_fail_after(long k) { g_fail_after = k; }

static bool inject(void) {
    if (g_fail_after <= 0) return false;
    return --g_fail_after == 0;
}

void *sal_malloc(size_t n) { return inject() ? NULL : malloc(n ? n : 1); }
void *sal_calloc(size_t n, size_t size) { return inject() ? NULL : calloc(n ? n : 1, size ? size : 1); }
void *sal_realloc(void *p, size_t n) { return inject() ? NULL : realloc(p, n ? n : 1); }
void sal_free(void *p) { free(p); }

char *sal_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = sal_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
