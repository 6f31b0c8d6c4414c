/* Checked allocation with a failure-injection hook, so tests can prove every error path frees
 * what it allocated, and a memory budget: the bytes live through these functions are counted and
 * an allocation that would exceed the budget fails before anything is allocated.
 *
 * Sizes are taken from malloc_usable_size rather than a header in front of each block: a block that
 * some code frees with plain free() (or allocates with plain malloc and frees with sal_free) then
 * only skews the count, it never corrupts the heap. */
#include "core.h"
#include <malloc.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <unistd.h>

/* Atomic, as OpenMP workers allocate too. g_fail_after 0: never fail. g_budget 0: not yet derived
 * from the machine (see budget()). */
static atomic_long g_fail_after;
static atomic_size_t g_live, g_peak, g_budget;

void sal_alloc_fail_after(long k) { atomic_store(&g_fail_after, k); }

static bool inject(void) {
    if (atomic_load(&g_fail_after) <= 0) return false;
    return atomic_fetch_sub(&g_fail_after, 1) == 1;
}

size_t sal_memory_default_budget(void) {
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || psz <= 0) return (size_t)4 << 30; /* unknown machine: a modest 4 GiB */
    uint64_t phys = (uint64_t)pages * (uint64_t)psz;
    uint64_t b = phys / 4 * 3;
    return b > SIZE_MAX ? SIZE_MAX : (size_t)b;
}

static size_t budget(void) {
    size_t b = atomic_load(&g_budget);
    if (!b) {
        size_t want = sal_memory_default_budget(), zero = 0;
        atomic_compare_exchange_strong(&g_budget, &zero, want);
        b = atomic_load(&g_budget);
    }
    return b;
}

void sal_set_memory_budget(size_t bytes) { atomic_store(&g_budget, bytes ? bytes : sal_memory_default_budget()); }
size_t sal_memory_budget(void) { return budget(); }
size_t sal_memory_in_use(void) { return atomic_load(&g_live); }
size_t sal_memory_peak(void) { return atomic_load(&g_peak); }
void sal_memory_reset_peak(void) { atomic_store(&g_peak, atomic_load(&g_live)); }

bool sal_budget_fits(size_t bytes) {
    size_t b = budget(), live = atomic_load(&g_live);
    return live <= b && bytes <= b - live;
}

/* The size of the last request the budget refused, kept until a failure's message names the budget
 * (sal_fail): the allocators fail without a message, and "out of memory" alone hid a budget that
 * --max-memory had set. */
static _Atomic size_t g_refused;

static bool fits(size_t n) {
    if (sal_budget_fits(n)) return true;
    atomic_store(&g_refused, n ? n : 1);
    return false;
}

size_t sal_budget_refused(void) { return atomic_exchange(&g_refused, 0); }

static void count(void *p) {
    if (!p) return;
    size_t n = malloc_usable_size(p), now = atomic_fetch_add(&g_live, n) + n;
    size_t peak = atomic_load(&g_peak);
    while (now > peak && !atomic_compare_exchange_weak(&g_peak, &peak, now)) {}
}

/* Saturates at zero: a block from plain malloc freed here must not wrap the count around. */
static void sub_live(size_t n) {
    size_t cur = atomic_load(&g_live);
    while (!atomic_compare_exchange_weak(&g_live, &cur, cur > n ? cur - n : 0)) {}
}

static void uncount(void *p) {
    if (p) sub_live(malloc_usable_size(p));
}

/* Large blocks are fresh mmap'ed pages, and each 4 KiB page faulted in costs, in a VM above all:
 * asking for transparent huge pages over the block (where the kernel gives them only on request)
 * cuts the faults of a VGG-sized session up to 512-fold. Only a hint: failure changes nothing. */
static void *huge(void *p, size_t n) {
    const uintptr_t H = (uintptr_t)2 << 20;
    if (p && n >= 2 * H) {
        uintptr_t a = ((uintptr_t)p + H - 1) & ~(H - 1), e = ((uintptr_t)p + n) & ~(H - 1);
        if (e > a) madvise((void *)a, e - a, MADV_HUGEPAGE);
    }
    return p;
}

void *sal_malloc(size_t n) {
    if (inject() || !fits(n)) return NULL;
    void *p = huge(malloc(n ? n : 1), n);
    count(p);
    return p;
}

void *sal_malloc64(size_t n) {
    void *p = NULL;
    if (inject() || !fits(n) || posix_memalign(&p, 64, n ? n : 1)) return NULL;
    count(huge(p, n));
    return p;
}

void *sal_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    if (inject() || !fits(n * size)) return NULL;
    void *p = huge(calloc(n ? n : 1, size ? size : 1), n * size);
    count(p);
    return p;
}

void *sal_realloc(void *p, size_t n) {
    size_t old = p ? malloc_usable_size(p) : 0;
    if (inject() || (n > old && !fits(n - old))) return NULL;
    void *q = huge(realloc(p, n ? n : 1), n);
    if (!q) return NULL; /* p is untouched and still counted */
    sub_live(old);
    count(q);
    return q;
}

void sal_free(void *p) {
    uncount(p);
    free(p);
}

void sal_memory_trim(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

char *sal_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = sal_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Human-readable byte counts for messages: "1.5 GiB", "512 bytes". */
const char *sal_bytes_str(uint64_t n, char *buf, size_t len) {
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (n < 1024) {
        snprintf(buf, len, "%llu bytes", (unsigned long long)n);
        return buf;
    }
    double v = (double)n;
    int u = -1;
    while (v >= 1024 && u < 5) v /= 1024, u++;
    snprintf(buf, len, "%.1f %s", v, unit[u]);
    return buf;
}

sal_status sal_budget_check(size_t bytes, const char *what) {
    if (sal_budget_fits(bytes)) return SAL_OK;
    char a[32], b[32], c[32];
    return sal_fail(SAL_ERR_NOMEM, "%s needs %zu bytes (%s), but the memory budget of %s has %s left (raise it with "
                    "--max-memory or sal_set_memory_budget)",
                    what, bytes, sal_bytes_str(bytes, a, sizeof a), sal_bytes_str(budget(), b, sizeof b),
                    sal_bytes_str(sal_memory_in_use() < budget() ? budget() - sal_memory_in_use() : 0, c, sizeof c));
}
