/* Status names and the per-thread error message. */
#include "core.h"
#include <stdarg.h>

static _Thread_local char g_msg[1024];

static const char *const k_names[] = {
    [SAL_OK] = "ok",
    [SAL_ERR_ARG] = "bad argument",
    [SAL_ERR_IO] = "i/o error",
    [SAL_ERR_FORMAT] = "bad format",
    [SAL_ERR_UNSUPPORTED] = "unsupported",
    [SAL_ERR_SHAPE] = "shape mismatch",
    [SAL_ERR_NOMEM] = "out of memory",
    [SAL_ERR_NUMERIC] = "non-finite values",
    [SAL_ERR_INTERNAL] = "internal error",
};
_Static_assert(sizeof k_names / sizeof k_names[0] == SAL_STATUS_COUNT, "status names out of sync");

const char *sal_status_string(sal_status st) {
    return (unsigned)st < SAL_STATUS_COUNT ? k_names[st] : "unknown status";
}

const char *sal_last_error(void) { return g_msg; }

sal_status sal_fail(sal_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    size_t refused = st == SAL_ERR_NOMEM ? sal_budget_refused() : 0;
    if (refused && !strstr(g_msg, "memory budget")) { /* sal_budget_check's messages name it already */
        char a[32], b[32];
        size_t k = strlen(g_msg);
        snprintf(g_msg + k, sizeof g_msg - k, " (%s more did not fit the memory budget of %s: raise it with "
                 "--max-memory or sal_set_memory_budget)", sal_bytes_str(refused, a, sizeof a),
                 sal_bytes_str(sal_memory_budget(), b, sizeof b));
    }
    return st;
}

sal_status sal_wrap(sal_status st, const char *fmt, ...) {
    char prefix[512], old[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    size_t k = strlen(prefix);
    memcpy(g_msg, prefix, k);
    g_msg[k++] = ':';
    g_msg[k++] = ' ';
    size_t room = sizeof g_msg - k - 1, n = strlen(old);
    memcpy(g_msg + k, old, n < room ? n : room);
    g_msg[k + (n < room ? n : room)] = '\0';
    return st;
}
