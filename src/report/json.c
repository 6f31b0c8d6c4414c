/* JSON reader: recursive descent over a bounded buffer; see json.h. */
#include "json.h"
#include <math.h>

typedef struct {
    const char *p, *start, *end, *name;
} rj_parser;

static sal_status bad(rj_parser *j, const char *what) {
    if (j->p >= j->end) return sal_fail(SAL_ERR_FORMAT, "%s: unexpected end of JSON (%s)", j->name, what);
    return sal_fail(SAL_ERR_FORMAT, "%s: byte %zu: %s", j->name, (size_t)(j->p - j->start), what);
}

static void ws(rj_parser *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static bool lit(rj_parser *j, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n)) return false;
    j->p += n;
    return true;
}

static bool digit(const rj_parser *j, const char *q) { return q < j->end && *q >= '0' && *q <= '9'; }

static sal_status number(rj_parser *j, double *v) {
    const char *q = j->p;
    if (q < j->end && *q == '-') q++;
    if (!digit(j, q)) return bad(j, "expected a value");
    if (*q == '0') q++;
    else
        while (digit(j, q)) q++;
    if (q < j->end && *q == '.') {
        if (!digit(j, ++q)) return bad(j, "malformed number");
        while (digit(j, q)) q++;
    }
    if (q < j->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < j->end && (*q == '+' || *q == '-')) q++;
        if (!digit(j, q)) return bad(j, "malformed number");
        while (digit(j, q)) q++;
    }
    char buf[64];
    size_t n = (size_t)(q - j->p);
    if (n >= sizeof buf) return bad(j, "number too long");
    memcpy(buf, j->p, n);
    buf[n] = 0;
    *v = strtod(buf, NULL);
    j->p = q;
    return SAL_OK;
}

static int hex4(const char *p) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static size_t utf8(unsigned cp, char *o) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[2] = (char)(0x80 | (cp & 0x3f)), 3;
    o[0] = (char)(0xf0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string literal at j->p (on the opening quote). Escapes never lengthen the text, so the
 * decoded string fits in the literal's length. */
static sal_status string(rj_parser *j, char **out) {
    const char *q = ++j->p;
    while (q < j->end && *q != '"') q += *q == '\\' && q + 1 < j->end ? 2 : 1;
    if (q >= j->end) return bad(j, "unterminated string");
    char *s = sal_malloc((size_t)(q - j->p) + 1), *o = s;
    if (!s) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", j->name);
    while (j->p < q) {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20) {
            sal_free(s);
            return bad(j, "control character in a string");
        }
        if (c != '\\') {
            *o++ = (char)c, j->p++;
            continue;
        }
        char e = j->p[1];
        j->p += 2;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            int cp = q - j->p >= 4 ? hex4(j->p) : -1;
            if (cp < 0) break;
            j->p += 4;
            unsigned u = (unsigned)cp;
            if (cp >= 0xd800 && cp < 0xdc00 && q - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
                int lo = hex4(j->p + 2);
                if (lo >= 0xdc00 && lo < 0xe000) u = 0x10000 + (((unsigned)cp - 0xd800) << 10) + ((unsigned)lo - 0xdc00), j->p += 6;
            }
            if (u >= 0xd800 && u < 0xe000) u = 0xfffd; /* a lone surrogate */
            o += utf8(u, o);
            continue;
        }
        default: e = 0; break;
        }
        if (!e || (e == 'u' && j->p[-1] == 'u')) {
            sal_free(s);
            j->p -= 2;
            return bad(j, "bad escape in a string");
        }
    }
    *o = 0;
    j->p = q + 1;
    *out = s;
    return SAL_OK;
}

static sal_status value(rj_parser *j, rj_value *v, int depth);

/* Appends a member to an array or object being built (capacity doubles). */
static sal_status push(rj_parser *j, rj_value *v, int *cap) {
    if (v->n < *cap) return SAL_OK;
    int nc = *cap ? *cap * 2 : 4;
    rj_value *it = sal_realloc(v->items, (size_t)nc * sizeof *it);
    if (!it) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", j->name);
    v->items = it;
    if (v->type == RJ_OBJ) {
        char **k = sal_realloc(v->keys, (size_t)nc * sizeof *k);
        if (!k) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", j->name);
        v->keys = k;
    }
    *cap = nc;
    return SAL_OK;
}

static sal_status container(rj_parser *j, rj_value *v, int depth) {
    bool obj = *j->p == '{';
    char close = obj ? '}' : ']';
    v->type = obj ? RJ_OBJ : RJ_ARR;
    if (depth >= RJ_MAX_DEPTH) return bad(j, "nested too deeply");
    j->p++;
    ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return SAL_OK;
    }
    int cap = 0;
    for (;;) {
        SAL_TRY(push(j, v, &cap));
        rj_value *it = &v->items[v->n];
        memset(it, 0, sizeof *it);
        ws(j);
        if (obj) {
            if (j->p >= j->end || *j->p != '"') return bad(j, "expected a member name");
            SAL_TRY(string(j, &v->keys[v->n]));
            v->n++; /* counted now, so rj_free releases the name on any failure below */
            ws(j);
            if (j->p >= j->end || *j->p != ':') return bad(j, "expected ':'");
            j->p++;
            SAL_TRY(value(j, it, depth + 1));
        } else {
            v->n++;
            SAL_TRY(value(j, it, depth + 1));
        }
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return SAL_OK;
        }
        return bad(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static sal_status value(rj_parser *j, rj_value *v, int depth) {
    ws(j);
    if (j->p >= j->end) return bad(j, "expected a value");
    switch (*j->p) {
    case '{':
    case '[': return container(j, v, depth);
    case '"': v->type = RJ_STR; return string(j, &v->str);
    case 't':
    case 'f':
        v->type = RJ_BOOL;
        if (lit(j, "true")) return v->num = 1, SAL_OK;
        if (lit(j, "false")) return v->num = 0, SAL_OK;
        return bad(j, "expected a value");
    case 'n':
        v->type = RJ_NULL;
        return lit(j, "null") ? SAL_OK : bad(j, "expected a value");
    default: v->type = RJ_NUM; return number(j, &v->num);
    }
}

sal_status rj_parse(const char *txt, size_t len, const char *name, rj_value *out) {
    memset(out, 0, sizeof *out);
    rj_parser j = {.p = txt, .start = txt, .end = txt + len, .name = name ? name : "JSON"};
    sal_status st = value(&j, out, 0);
    if (st == SAL_OK) {
        ws(&j);
        if (j.p < j.end) st = bad(&j, "trailing characters after the JSON value");
    }
    if (st != SAL_OK) rj_free(out);
    return st;
}

void rj_free(rj_value *v) {
    if (!v) return;
    for (int i = 0; i < v->n; i++) {
        if (v->items) rj_free(&v->items[i]);
        if (v->keys) sal_free(v->keys[i]);
    }
    sal_free(v->items);
    sal_free(v->keys);
    sal_free(v->str);
    memset(v, 0, sizeof *v);
}

const rj_value *rj_get(const rj_value *v, const char *key) {
    if (!v || v->type != RJ_OBJ) return NULL;
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->keys[i], key)) return &v->items[i];
    return NULL;
}

const rj_value *rj_at(const rj_value *v, int i) {
    return v && v->type == RJ_ARR && i >= 0 && i < v->n ? &v->items[i] : NULL;
}

double rj_num(const rj_value *v) { return v && (v->type == RJ_NUM || v->type == RJ_BOOL) ? v->num : NAN; }

const char *rj_str(const rj_value *v, const char *def) { return v && v->type == RJ_STR ? v->str : def; }

double rj_getnum(const rj_value *v, const char *key) { return rj_num(rj_get(v, key)); }

const char *rj_getstr(const rj_value *v, const char *key, const char *def) { return rj_str(rj_get(v, key), def); }
