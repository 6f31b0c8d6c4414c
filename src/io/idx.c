/* IDX files (the MNIST / Fashion-MNIST format), plain or gzipped.
 *
 * Layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, each
 * dimension as a 4-byte big-endian integer, then the data. zlib's gzread reads both plain and
 * gzipped files, so the decompressed size is only known at the end: the data is read in chunks into
 * a buffer that grows with what actually arrives, and a forged dimension costs nothing. */
#include "io.h"
#include <errno.h>
#include <zlib.h>

#define IDX_CHUNK (1u << 20)

/* Reads up to n bytes into buf; *got says how many arrived before the end of the file. */
static sal_status gz_read_all(gzFile gz, const char *path, unsigned char *buf, size_t n, size_t *got) {
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < IDX_CHUNK ? n - *got : IDX_CHUNK;
        int r = gzread(gz, buf + *got, (unsigned)want);
        if (r < 0) break;
        if (r == 0) break;
        *got += (size_t)r;
    }
    /* a gzip stream cut short or with a bad checksum reports here, even after returning all data */
    int code;
    const char *msg = gzerror(gz, &code);
    if (code == Z_ERRNO) return sal_fail(SAL_ERR_IO, "%s: read error: %s", path, strerror(errno));
    if (code == Z_BUF_ERROR) return sal_fail(SAL_ERR_FORMAT, "%s: gzip data truncated", path);
    if (code != Z_OK) {
        size_t n = strlen(path); /* zlib's message repeats the path */
        if (!strncmp(msg, path, n) && !strncmp(msg + n, ": ", 2)) msg += n + 2;
        return sal_fail(SAL_ERR_FORMAT, "%s: corrupt gzip data: %s", path, msg);
    }
    return SAL_OK;
}

static sal_status idx_read_gz(gzFile gz, const char *path, sal_tensor *out) {
    unsigned char head[4], dimb[4 * 3];
    size_t r;
    SAL_TRY(gz_read_all(gz, path, head, 4, &r));
    if (r < 4) return sal_fail(SAL_ERR_FORMAT, "%s: too short for an IDX file (truncated header)", path);
    if (head[0] != 0 || head[1] != 0)
        return sal_fail(SAL_ERR_FORMAT, "%s: not an IDX file (bad magic %02x%02x%02x%02x)", path, head[0], head[1],
                        head[2], head[3]);
    if (head[2] != 0x08)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: IDX data type 0x%02x is not supported (only 0x08, unsigned byte)",
                        path, head[2]);
    int nd = head[3];
    if (nd != 1 && nd != 3)
        return sal_fail(SAL_ERR_UNSUPPORTED, "%s: IDX file has %d dimensions; only labels (1) and images (3) are supported",
                        path, nd);
    SAL_TRY(gz_read_all(gz, path, dimb, (size_t)(4 * nd), &r));
    if (r < (size_t)(4 * nd)) return sal_fail(SAL_ERR_FORMAT, "%s: IDX header truncated", path);
    int64_t d[3], numel;
    for (int i = 0; i < nd; i++)
        d[i] = (int64_t)dimb[4 * i] << 24 | (int64_t)dimb[4 * i + 1] << 16 | (int64_t)dimb[4 * i + 2] << 8 | dimb[4 * i + 3];
    if (!sal_shape_numel(nd, d, &numel))
        return sal_fail(SAL_ERR_FORMAT, "%s: IDX dimensions are too large", path);

    /* raw bytes first: grow only as data arrives */
    unsigned char *raw = NULL;
    size_t have = 0, cap = 0;
    sal_status st = SAL_OK;
    while (st == SAL_OK && (int64_t)have < numel) {
        size_t want = (size_t)numel - have < IDX_CHUNK ? (size_t)numel - have : IDX_CHUNK;
        if (have + want > cap) {
            size_t ncap = cap ? cap * 2 : IDX_CHUNK;
            if (ncap > (size_t)numel) ncap = (size_t)numel;
            unsigned char *p = sal_realloc(raw, ncap);
            if (!p) {
                /* a gzip bomb or a forged count ends here, under the memory budget */
                char what[300];
                snprintf(what, sizeof what, "%.200s: reading IDX data (%lld bytes declared)", path, (long long)numel);
                st = sal_budget_fits(ncap - cap) ? sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path)
                                                 : sal_budget_check(ncap - cap, what);
                break;
            }
            raw = p;
            cap = ncap;
        }
        st = gz_read_all(gz, path, raw + have, want, &r);
        if (st == SAL_OK && r < want)
            st = sal_fail(SAL_ERR_FORMAT, "%s: IDX data truncated: %lld of %lld bytes", path,
                          (long long)(have + r), (long long)numel);
        have += want;
    }
    if (st == SAL_OK) {
        unsigned char extra;
        st = gz_read_all(gz, path, &extra, 1, &r);
        if (st == SAL_OK && r > 0) st = sal_fail(SAL_ERR_FORMAT, "%s: junk after the IDX data", path);
    }

    sal_tensor t = {0};
    if (st == SAL_OK) {
        if (nd == 3) {
            st = sal_tensor_alloc(&t, SAL_F32, 4, (int64_t[]){d[0], 1, d[1], d[2]});
            if (st == SAL_OK)
                for (int64_t i = 0; i < numel; i++) sal_f32(&t)[i] = (float)raw[i] / 255.0f;
        } else {
            st = sal_tensor_alloc(&t, SAL_I64, 1, d);
            if (st == SAL_OK)
                for (int64_t i = 0; i < numel; i++) ((int64_t *)t.data)[i] = raw[i];
        }
        if (st != SAL_OK) sal_wrap(st, "%s", path);
    }
    sal_free(raw);
    if (st != SAL_OK) {
        sal_tensor_free(&t);
        return st;
    }
    *out = t;
    return SAL_OK;
}

sal_status sal_idx_read(const char *path, sal_tensor *out) {
    if (!path || !out) return sal_fail(SAL_ERR_ARG, "sal_idx_read: NULL argument");
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return errno ? sal_fail(SAL_ERR_IO, "%s: cannot open: %s", path, strerror(errno))
                     : sal_fail(SAL_ERR_NOMEM, "%s: out of memory opening", path);
    sal_status st = idx_read_gz(gz, path, out);
    gzclose(gz);
    return st;
}
