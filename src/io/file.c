/* Whole-file reads and atomic writes. */
#include "io.h"
#include <errno.h>
#include <unistd.h>

sal_status sal_outfile_open(sal_outfile *f, const char *path) {
    memset(f, 0, sizeof *f);
    size_t n = strlen(path) + 32;
    f->path = sal_strdup(path);
    f->tmp = sal_malloc(n);
    if (!f->path || !f->tmp) {
        sal_outfile_abort(f);
        return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path);
    }
    /* same folder as the destination, so rename() stays within one file system */
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp) {
        sal_status st = sal_fail(SAL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        sal_free(f->path);
        sal_free(f->tmp);
        memset(f, 0, sizeof *f);
        return st;
    }
    return SAL_OK;
}

void sal_outfile_abort(sal_outfile *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp && f->fp) remove(f->tmp);
    sal_free(f->path);
    sal_free(f->tmp);
    memset(f, 0, sizeof *f);
}

sal_status sal_outfile_commit(sal_outfile *f) {
    int err = 0;
    if (fflush(f->fp) != 0 || ferror(f->fp) || fsync(fileno(f->fp)) != 0) err = errno ? errno : EIO;
    if (fclose(f->fp) != 0 && !err) err = errno ? errno : EIO;
    f->fp = NULL;
    if (!err && rename(f->tmp, f->path) != 0) err = errno;
    if (err) {
        remove(f->tmp);
        sal_status st = sal_fail(SAL_ERR_IO, "%s: write failed: %s", f->path, strerror(err));
        sal_free(f->path);
        sal_free(f->tmp);
        memset(f, 0, sizeof *f);
        return st;
    }
    sal_free(f->path);
    sal_free(f->tmp);
    memset(f, 0, sizeof *f);
    return SAL_OK;
}

sal_status sal_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return sal_fail(SAL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = sal_malloc(cap);
    sal_status st = SAL_OK;
    if (!buf) st = sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path);
    while (st == SAL_OK) {
        if (n == cap) {
            if (cap >= max_bytes) {
                st = sal_fail(SAL_ERR_FORMAT, "%s: larger than the %zu-byte limit", path, max_bytes);
                break;
            }
            size_t ncap = cap * 2 > max_bytes ? max_bytes : cap * 2;
            unsigned char *p = sal_realloc(buf, ncap);
            if (!p) {
                st = sal_fail(SAL_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, ncap);
                break;
            }
            buf = p;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) st = sal_fail(SAL_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(fp);
    if (st != SAL_OK) {
        sal_free(buf);
        return st;
    }
    *data = buf;
    *len = n;
    return SAL_OK;
}

sal_status sal_write_file(const char *path, const void *data, size_t len) {
    sal_outfile f;
    SAL_TRY(sal_outfile_open(&f, path));
    if (len && fwrite(data, 1, len, f.fp) != len) {
        sal_outfile_abort(&f);
        return sal_fail(SAL_ERR_IO, "%s: write failed", path);
    }
    return sal_outfile_commit(&f);
}
