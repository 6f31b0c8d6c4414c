/* A growing string for the JSON, CSV and HTML the library writes. Writers append without checking
 * each call; a failed allocation sets oom, later appends do nothing, and the caller checks once. */
#include "core.h"
#include <math.h>
#include <stdarg.h>

/* Room for n more bytes and the terminating NUL; false (oom set) when the allocation fails. */
static bool grow(sal_sbuf *b, size_t n) {
    if (b->oom) return false;
    if (b->s && b->len + n < b->cap) return true;
    size_t ncap = (b->cap ? b->cap * 2 : 512) + n;
    char *p = sal_realloc(b->s, ncap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->s = p;
    b->cap = ncap;
    return true;
}

/* A format without conversions, or "%s" alone, is copied without vsnprintf: sal_explain's JSON
 * made some twenty such calls, 2 us of the small CNN's 65 us Grad-CAM. */
void sal_sb_printf(sal_sbuf *b, const char *fmt, ...) {
    if (!strchr(fmt, '%') || !strcmp(fmt, "%s")) {
        va_list ap;
        va_start(ap, fmt);
        const char *s = fmt[0] == '%' ? va_arg(ap, const char *) : fmt;
        va_end(ap);
        if (!s) s = "(null)"; /* as glibc's printf */
        sal_sb_put(b, s, strlen(s));
        return;
    }
    for (size_t need = 0; grow(b, need);) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        need = (size_t)k;
    }
}

void sal_sb_put(sal_sbuf *b, const char *s, size_t n) {
    if (!grow(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Runs of plain characters go in whole (a formatted call per character cost sal_explain a few
 * microseconds a call on every model). */
void sal_sb_str(sal_sbuf *b, const char *s) {
    sal_sb_put(b, "\"", 1);
    while (*s) {
        size_t n = strcspn(s, "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14"
                              "\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f");
        sal_sb_put(b, s, n);
        if (!s[n]) break;
        if (s[n] == '"' || s[n] == '\\') sal_sb_printf(b, "\\%c", s[n]);
        else sal_sb_printf(b, "\\u%04x", s[n]);
        s += n + 1;
    }
    sal_sb_put(b, "\"", 1);
}

void sal_sb_num(sal_sbuf *b, double v) {
    if (isfinite(v)) sal_sb_printf(b, "%.9g", v);
    else sal_sb_printf(b, "null");
}

void sal_sb_csv(sal_sbuf *b, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        sal_sb_printf(b, "%s", s);
        return;
    }
    sal_sb_printf(b, "\"");
    for (; *s; s++) sal_sb_printf(b, *s == '"' ? "\"\"" : "%c", *s);
    sal_sb_printf(b, "\"");
}

void sal_sb_free(sal_sbuf *b) {
    sal_free(b->s);
    memset(b, 0, sizeof *b);
}
