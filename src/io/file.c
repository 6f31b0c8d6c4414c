/* Whole-file reads and atomic writes. */
#include "io.h"
#include <errno.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- temporary files of writes in progress, for sal_remove_pending_outputs ----
 * A signal handler may run at any moment, on any thread, so the registry is fixed storage that it
 * can read without locks: a slot's path is written while the slot is CLAIMED (ignored by the
 * handler) and only then marked ARMED. A write that finds no free slot, or a path too long for one,
 * simply goes unregistered: its temporary file would survive a signal, nothing worse. */
#define PENDING_SLOTS 16
#define PENDING_PATH 4096
enum { SLOT_FREE, SLOT_CLAIMED, SLOT_ARMED };
static char g_pending[PENDING_SLOTS][PENDING_PATH];
static atomic_int g_slot_state[PENDING_SLOTS];

static int pending_add(const char *tmp) {
    size_t n = strlen(tmp);
    if (n >= PENDING_PATH) return -1;
    for (int i = 0; i < PENDING_SLOTS; i++) {
        int want = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&g_slot_state[i], &want, SLOT_CLAIMED)) continue;
        memcpy(g_pending[i], tmp, n + 1);
        atomic_store(&g_slot_state[i], SLOT_ARMED);
        return i;
    }
    return -1;
}

static void pending_drop(int slot) {
    if (slot >= 0) atomic_store(&g_slot_state[slot], SLOT_FREE);
}

void sal_remove_pending_outputs(void) {
    for (int i = 0; i < PENDING_SLOTS; i++)
        if (atomic_load(&g_slot_state[i]) == SLOT_ARMED) unlink(g_pending[i]); /* async-signal-safe */
}

sal_status sal_outfile_open(sal_outfile *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->slot = -1;
    size_t n = strlen(path) + 32;
    f->path = sal_strdup(path);
    f->tmp = sal_malloc(n);
    if (!f->path || !f->tmp) {
        sal_outfile_abort(f);
        return sal_fail(SAL_ERR_NOMEM, "%s: out of memory", path);
    }
    /* same folder as the destination, so rename() stays within one file system */
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    /* registered before the file exists, so no moment has an unregistered temporary file */
    f->slot = pending_add(f->tmp);
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp) {
        sal_status st = sal_fail(SAL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        pending_drop(f->slot);
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
    if (f->tmp) pending_drop(f->slot);
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
    if (err) remove(f->tmp);
    /* dropped only after the rename or removal: a signal in between unlinks a name that no longer
     * exists, which is harmless */
    pending_drop(f->slot);
    if (err) {
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
    /* a regular file's size is known: one buffer of the right size (the +1 finds the end) */
    struct stat sb;
    size_t cap = 1 << 16, n = 0;
    if (fstat(fileno(fp), &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size < max_bytes)
        cap = (size_t)sb.st_size + 1;
    char what[300];
    snprintf(what, sizeof what, "%.200s: reading the file", path);
    sal_status st = sal_budget_check(cap, what);
    unsigned char *buf = st == SAL_OK ? sal_malloc(cap) : NULL;
    if (!buf && st == SAL_OK) st = sal_fail(SAL_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, cap);
    while (st == SAL_OK) {
        if (n == cap) {
            if (cap >= max_bytes) {
                st = sal_fail(SAL_ERR_FORMAT, "%s: larger than the %zu-byte limit", path, max_bytes);
                break;
            }
            size_t ncap = cap * 2 > max_bytes ? max_bytes : cap * 2;
            unsigned char *p = sal_realloc(buf, ncap);
            if (!p) {
                st = sal_budget_fits(ncap - cap) ? sal_fail(SAL_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, ncap)
                                                 : sal_budget_check(ncap - cap, what);
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
