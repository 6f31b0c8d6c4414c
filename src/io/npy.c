/* NPY files (numpy's .npy format, versions 1.0, 2.0 and 3.0).
 *
 * Layout: "\x93NUMPY", major, minor, header length (2 bytes little-endian in 1.0, 4 bytes in 2.0 and
 * 3.0), then a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n', then the raw data. Files are untrusted: the header is parsed
 * strictly and the data size is checked against the file size before anything is allocated. */
#include "io.h"
#include <errno.h>
#include <float.h>
#include <math.h>
#include <sys/stat.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c copies little-endian data as is: port the byte swapping for this host first"
#endif

/* numpy itself refuses headers over 10000 bytes by default; be a little more generous. */
#define NPY_MAX_HEADER (1u << 16)

typedef enum { NPY_F4, NPY_F8, NPY_I4, NPY_I8 } npy_kind;

typedef struct {
    npy_kind kind;
    int ndim;
    int64_t dim[SAL_MAX_DIMS];
} npy_header;

/* ---- header parsing: just enough of Python literal syntax for what numpy writes ---- */

typedef struct {
    const char *p, *end, *path;
} hparse;

static void skip_ws(hparse *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r')) h->p++;
}

static bool eat(hparse *h, char c) {
    skip_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return true;
    }
    return false;
}

/* A quoted string ('...' or "...") without escapes, copied into buf. */
static sal_status parse_str(hparse *h, char *buf, size_t n) {
    skip_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
        return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: expected a quoted string", h->path);
    char q = *h->p++;
    size_t k = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || k + 1 >= n)
            return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: unexpected string", h->path);
        buf[k++] = *h->p++;
    }
    if (h->p >= h->end) return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: unterminated string", h->path);
    h->p++;
    buf[k] = '\0';
    return SAL_OK;
}

static bool eat_word(hparse *h, const char *w) {
    skip_ws(h);
    size_t n = strlen(w);
    if ((size_t)(h->end - h->p) >= n && memcmp(h->p, w, n) == 0) {
        h->p += n;
        return true;
    }
    return false;
}

/* (d0, d1, ...) with an optional trailing comma; () is a 0-d array. */
static sal_status parse_shape(hparse *h, npy_header *hd) {
    if (!eat(h, '(')) return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: shape is not a tuple", h->path);
    hd->ndim = 0;
    for (;;) {
        if (eat(h, ')')) return SAL_OK;
        skip_ws(h);
        if (h->p >= h->end || *h->p < '0' || *h->p > '9')
            return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: shape entries must be non-negative integers",
                            h->path);
        int64_t v = 0;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
            int dgt = *h->p++ - '0';
            if (v > (INT64_MAX - dgt) / 10)
                return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: shape entry too large", h->path);
            v = v * 10 + dgt;
        }
        if (hd->ndim == SAL_MAX_DIMS)
            return sal_fail(SAL_ERR_UNSUPPORTED, "%s: NPY array has more than %d dimensions", h->path,
                            SAL_MAX_DIMS);
        hd->dim[hd->ndim++] = v;
        if (eat(h, ')')) return SAL_OK;
        if (!eat(h, ',')) return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: malformed shape tuple", h->path);
    }
}

static sal_status parse_descr(const char *path, const char *d, npy_kind *kind) {
    static const struct {
        const char *descr;
        npy_kind kind;
    } ok[] = {{"<f4", NPY_F4}, {"<f8", NPY_F8}, {"<i4", NPY_I4}, {"<i8", NPY_I8}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(d, ok[i].descr) == 0) {
            *kind = ok[i].kind;
            return SAL_OK;
        }
    const char *why = d[0] == '>' ? " (big-endian)" : "";
    return sal_fail(SAL_ERR_UNSUPPORTED,
                    "%s: NPY dtype '%s'%s is not supported (want little-endian float32, float64, int32 "
                    "or int64: '<f4', '<f8', '<i4', '<i8')",
                    path, d, why);
}

static sal_status parse_header(const char *path, const char *txt, size_t len, npy_header *hd) {
    hparse h = {txt, txt + len, path};
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    char key[32], descr[32];
    if (!eat(&h, '{')) return sal_fail(SAL_ERR_FORMAT, "%s: NPY header is not a dict", path);
    while (!eat(&h, '}')) {
        SAL_TRY(parse_str(&h, key, sizeof key));
        if (!eat(&h, ':')) return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: expected ':' after '%s'", path, key);
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            skip_ws(&h);
            if (h.p < h.end && *h.p == '[')
                return sal_fail(SAL_ERR_UNSUPPORTED, "%s: NPY structured dtypes are not supported", path);
            SAL_TRY(parse_str(&h, descr, sizeof descr));
            SAL_TRY(parse_descr(path, descr, &hd->kind));
            seen_descr = true;
        } else if (strcmp(key, "fortran_order") == 0 && !seen_fortran) {
            if (eat_word(&h, "True"))
                return sal_fail(SAL_ERR_UNSUPPORTED,
                                "%s: NPY array is in Fortran (column-major) order; save it C-contiguous", path);
            if (!eat_word(&h, "False"))
                return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: fortran_order is not True or False", path);
            seen_fortran = true;
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            SAL_TRY(parse_shape(&h, hd));
            seen_shape = true;
        } else {
            return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: unexpected or repeated key '%s'", path, key);
        }
        if (!eat(&h, ',')) {
            if (eat(&h, '}')) break;
            return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: expected ',' or '}' after '%s'", path, key);
        }
    }
    if (!seen_descr || !seen_fortran || !seen_shape)
        return sal_fail(SAL_ERR_FORMAT, "%s: NPY header lacks '%s'", path,
                        !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    skip_ws(&h); /* the padding */
    if (h.p != h.end) return sal_fail(SAL_ERR_FORMAT, "%s: NPY header: junk after the dict", path);
    return SAL_OK;
}

/* ---- reading ---- */

static size_t kind_size(npy_kind k) { return k == NPY_F4 || k == NPY_I4 ? 4 : 8; }

/* Reads and converts numel elements of a kind that differs from the tensor's dtype, in chunks. */
static sal_status read_converted(FILE *fp, const char *path, npy_kind kind, sal_tensor *t, int64_t numel) {
    enum { CHUNK = 4096 };
    unsigned char buf[CHUNK * 8];
    size_t isz = kind_size(kind);
    for (int64_t i = 0; i < numel; i += CHUNK) {
        size_t n = (size_t)(numel - i < CHUNK ? numel - i : CHUNK);
        if (fread(buf, isz, n, fp) != n) return sal_fail(SAL_ERR_FORMAT, "%s: NPY data truncated", path);
        for (size_t j = 0; j < n; j++) {
            if (kind == NPY_F8) {
                double v;
                memcpy(&v, buf + 8 * j, 8);
                /* out-of-range conversion to float is undefined in C: refuse rather than guess */
                if (isfinite(v) && fabs(v) > FLT_MAX)
                    return sal_fail(SAL_ERR_NUMERIC, "%s: float64 value %g at index %lld is outside the float32 range",
                                    path, v, (long long)(i + (int64_t)j));
                sal_f32(t)[i + (int64_t)j] = (float)v;
            } else {
                int32_t v;
                memcpy(&v, buf + 4 * j, 4);
                ((int64_t *)t->data)[i + (int64_t)j] = v;
            }
        }
    }
    return SAL_OK;
}

static sal_status read_le(FILE *fp, const char *path, size_t n, uint32_t *out) {
    unsigned char b[4];
    if (fread(b, 1, n, fp) != n) return sal_fail(SAL_ERR_FORMAT, "%s: NPY header truncated", path);
    *out = 0;
    for (size_t i = 0; i < n; i++) *out |= (uint32_t)b[i] << (8 * i);
    return SAL_OK;
}

/* Reads the magic, version and header of fp (positioned at its start), leaving fp at the data.
 * size: the bytes fp holds in all, against which the header's claims are checked. */
static sal_status npy_read_header(FILE *fp, const char *path, int64_t size, npy_header *out, int64_t *numel_out) {
    unsigned char magic[8];
    if (fread(magic, 1, 8, fp) != 8)
        return sal_fail(SAL_ERR_FORMAT, "%s: too short for an NPY file (truncated header)", path);
    if (memcmp(magic, "\x93NUMPY", 6) != 0) return sal_fail(SAL_ERR_FORMAT, "%s: not an NPY file (bad magic)", path);
    if (magic[6] < 1 || magic[6] > 3)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: NPY version %d.%d is not supported (1.0 to 3.0 are)", path,
                        magic[6], magic[7]);
    uint32_t hlen = 0;
    SAL_TRY(read_le(fp, path, magic[6] == 1 ? 2 : 4, &hlen));
    int64_t pre = magic[6] == 1 ? 10 : 12;
    if (hlen > NPY_MAX_HEADER) return sal_fail(SAL_ERR_FORMAT, "%s: NPY header length %u is implausible", path, hlen);
    if ((int64_t)hlen > size - pre)
        return sal_fail(SAL_ERR_FORMAT, "%s: NPY header truncated (%u bytes announced)", path, hlen);
    char *txt = sal_malloc(hlen + 1);
    if (!txt) return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path);
    if (fread(txt, 1, hlen, fp) != hlen) {
        sal_free(txt);
        return sal_fail(SAL_ERR_FORMAT, "%s: NPY header truncated", path);
    }
    txt[hlen] = '\0';
    /* numpy ends the header with '\n'; a NUL inside would hide text from the parser's view */
    npy_header hd = {0};
    sal_status st = SAL_OK;
    if (memchr(txt, '\0', hlen) || hlen == 0 || txt[hlen - 1] != '\n')
        st = sal_fail(SAL_ERR_FORMAT, "%s: NPY header is not newline-terminated text", path);
    if (st == SAL_OK) st = parse_header(path, txt, hlen, &hd);
    sal_free(txt);
    if (st != SAL_OK) return st;

    int64_t numel;
    char shp[200];
    if (!sal_shape_numel(hd.ndim, hd.dim, &numel))
        return sal_fail(SAL_ERR_FORMAT, "%s: NPY shape %s is too large", path, sal_shape_str(hd.ndim, hd.dim, shp, sizeof shp));
    /* the size check comes before allocation, so a forged shape cannot ask for terabytes */
    int64_t avail = size - pre - (int64_t)hlen, isz = (int64_t)kind_size(hd.kind);
    if (numel > avail / isz)
        return sal_fail(SAL_ERR_FORMAT, "%s: NPY data truncated: shape %s needs %lld bytes, the file has %lld", path,
                        sal_shape_str(hd.ndim, hd.dim, shp, sizeof shp), (long long)numel * isz, (long long)avail);
    if (numel * isz != avail)
        return sal_fail(SAL_ERR_FORMAT, "%s: %lld bytes of junk after the NPY data", path,
                        (long long)(avail - numel * isz));
    *out = hd;
    *numel_out = numel;
    return SAL_OK;
}

static sal_status npy_read_fp(FILE *fp, const char *path, int64_t size, sal_tensor *out) {
    npy_header hd;
    int64_t numel, isz;
    SAL_TRY(npy_read_header(fp, path, size, &hd, &numel));
    isz = (int64_t)kind_size(hd.kind);
    sal_status st = SAL_OK;
    sal_tensor t = {0};
    sal_dtype dt = hd.kind == NPY_F4 || hd.kind == NPY_F8 ? SAL_F32 : SAL_I64;
    st = sal_tensor_alloc(&t, dt, hd.ndim, hd.dim);
    if (st != SAL_OK) return sal_wrap(st, "%s", path);
    if (numel == 0) {
        /* nothing to read (and an empty tensor has no buffer) */
    } else if (hd.kind == NPY_F4 || hd.kind == NPY_I8) {
        if (fread(t.data, (size_t)isz, (size_t)numel, fp) != (size_t)numel)
            st = sal_fail(SAL_ERR_FORMAT, "%s: NPY data truncated", path);
    } else {
        st = read_converted(fp, path, hd.kind, &t, numel);
    }
    if (st != SAL_OK) {
        sal_tensor_free(&t);
        return st;
    }
    *out = t;
    return SAL_OK;
}

sal_status sal_npy_read(const char *path, sal_tensor *out) {
    if (!path || !out) return sal_fail(SAL_ERR_ARG, "sal_npy_read: NULL argument");
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) return sal_fail(SAL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    sal_status st = SAL_OK;
    if (fstat(fileno(fp), &sb) != 0) st = sal_fail(SAL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode)) st = sal_fail(SAL_ERR_IO, "%s: not a regular file", path);
    else st = npy_read_fp(fp, path, (int64_t)sb.st_size, out);
    fclose(fp);
    return st;
}

sal_status sal_npy_read_buffer(const unsigned char *data, size_t len, const char *name, sal_tensor *out) {
    memset(out, 0, sizeof *out);
    if (len == 0) return sal_fail(SAL_ERR_FORMAT, "%s: too short for an NPY file (truncated header)", name);
    FILE *fp = fmemopen((void *)data, len, "rb"); /* read-only: the cast drops const for the API only */
    if (!fp) return sal_fail(SAL_ERR_NOMEM, "%s: cannot open an in-memory stream: %s", name, strerror(errno));
    sal_status st = npy_read_fp(fp, name, (int64_t)len, out);
    fclose(fp);
    return st;
}

/* ---- writing ---- */

sal_status sal_npy_write(const char *path, const sal_tensor *t) {
    if (!path || !t) return sal_fail(SAL_ERR_ARG, "sal_npy_write: NULL argument");
    int64_t numel;
    if (t->dtype != SAL_F32 && t->dtype != SAL_I64 && t->dtype != SAL_BOOL)
        return sal_fail(SAL_ERR_ARG, "%s: cannot write a tensor of dtype %s", path, sal_dtype_name(t->dtype));
    if (!sal_shape_numel(t->ndim, t->dim, &numel))
        return sal_fail(SAL_ERR_ARG, "%s: cannot write a tensor with an invalid shape", path);
    if (numel > 0 && !t->data) return sal_fail(SAL_ERR_ARG, "%s: tensor has no data", path);

    /* dict, padded with spaces and a final '\n' so the data starts on a 64-byte boundary */
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     t->dtype == SAL_F32 ? "<f4" : t->dtype == SAL_I64 ? "<i8" : "|b1");
    for (int i = 0; i < t->ndim; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld,%s", (long long)t->dim[i],
                      i + 1 < t->ndim ? " " : "");
    if (t->ndim > 1) n--; /* "(3, 4)" but "(5,)" */
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
    /* 8 dims of at most 19 digits keep the dict far below 1.0's 65535-byte limit; 2.0 is never needed */
    SAL_ASSERT(n > 0 && (size_t)n + 64 < sizeof hdr);
    size_t total = ((size_t)10 + (size_t)n + 1 + 63) / 64 * 64, hlen = total - 10;
    memset(hdr + n, ' ', hlen - (size_t)n - 1);
    hdr[hlen - 1] = '\n';

    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    sal_outfile f;
    SAL_TRY(sal_outfile_open(&f, path));
    size_t isz = sal_dtype_size(t->dtype);
    if (fwrite(pre, 1, sizeof pre, f.fp) != sizeof pre || fwrite(hdr, 1, hlen, f.fp) != hlen ||
        (numel > 0 && fwrite(t->data, isz, (size_t)numel, f.fp) != (size_t)numel)) {
        int err = errno;
        sal_outfile_abort(&f);
        return sal_fail(SAL_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    return sal_outfile_commit(&f);
}

/* ---- streaming rows ---- */

sal_status sal_npy_stream_open(const char *path, sal_npy_stream *s) {
    memset(s, 0, sizeof *s);
    FILE *fp = fopen(path, "rb");
    if (!fp) return sal_fail(SAL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    npy_header hd;
    int64_t numel;
    sal_status st = SAL_OK;
    if (fstat(fileno(fp), &sb) != 0) st = sal_fail(SAL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode)) st = sal_fail(SAL_ERR_IO, "%s: not a regular file", path);
    else st = npy_read_header(fp, path, (int64_t)sb.st_size, &hd, &numel);
    if (st == SAL_OK && (hd.kind == NPY_I4 || hd.kind == NPY_I8))
        st = sal_fail(SAL_ERR_UNSUPPORTED, "%s: holds integers; float32 or float64 data is needed", path);
    if (st == SAL_OK && hd.ndim < 1) st = sal_fail(SAL_ERR_SHAPE, "%s: a scalar has no rows", path);
    if (st == SAL_OK && !(s->path = sal_strdup(path))) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st != SAL_OK) {
        fclose(fp);
        return st;
    }
    s->fp = fp;
    s->f64 = hd.kind == NPY_F8;
    s->ndim = hd.ndim;
    memcpy(s->dim, hd.dim, sizeof s->dim);
    return SAL_OK;
}

sal_status sal_npy_stream_read(sal_npy_stream *s, int64_t n, sal_tensor *out) {
    int64_t row = 1;
    for (int d = 1; d < s->ndim; d++) row *= s->dim[d];
    if (n > s->dim[0] - s->next) n = s->dim[0] - s->next;
    if (n < 0) n = 0;
    int64_t dim[SAL_MAX_DIMS];
    memcpy(dim, s->dim, sizeof dim);
    dim[0] = n;
    SAL_TRY(sal_tensor_alloc(out, SAL_F32, s->ndim, dim));
    if (n * row == 0) return SAL_OK;
    sal_status st = s->f64 ? read_converted(s->fp, s->path, NPY_F8, out, n * row)
                           : fread(out->data, sizeof(float), (size_t)(n * row), s->fp) == (size_t)(n * row)
                               ? SAL_OK
                               : sal_fail(SAL_ERR_FORMAT, "%s: NPY data truncated", s->path);
    if (st == SAL_OK) s->next += n;
    return st;
}

void sal_npy_stream_close(sal_npy_stream *s) {
    if (s->fp) fclose(s->fp);
    sal_free(s->path);
    memset(s, 0, sizeof *s);
}
