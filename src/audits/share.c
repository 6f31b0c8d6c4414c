/* Audits shared by several processes (sal_shard, docs/scaling.md). The items of a stage (samples,
 * or the pointing game's pairs) run in batches of B; each process takes a contiguous run of whole
 * batches, so every batch is explained exactly as one process explains it (same rows, same
 * streams, same rounding). Per item, the audit writes the values its summaries need into a table;
 * the processes exchange their rows of it, and every process reduces the whole table in item order,
 * so the sums are taken in the order of a single process and the bytes agree. */
#include "audit.h"
#include "core/shard.h"

static void part(int64_t n, int64_t B, int rank, int nranks, int64_t *lo, int64_t *hi) {
    int64_t nb = (n + B - 1) / B;
    int64_t b0 = nb * rank / nranks, b1 = nb * (rank + 1) / nranks;
    *lo = b0 * B < n ? b0 * B : n;
    *hi = b1 * B < n ? b1 * B : n;
}

sal_status au_share_init(au_share *p, const sal_audit_common *c, int64_t n, int64_t B, int width) {
    const sal_shard *s = c->shard && c->shard->nranks > 1 ? c->shard : NULL;
    *p = (au_share){.s = s, .n = n, .B = B > 0 ? B : 16, .width = width, .key = -1, .hi = n};
    if (s) part(n, p->B, s->rank, s->nranks, &p->lo, &p->hi);
    if (width > 0) {
        p->v = sal_malloc((size_t)(n > 0 ? n : 1) * (size_t)width * sizeof *p->v);
        if (!p->v) return sal_fail(SAL_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < n * width; i++) p->v[i] = NAN;
    }
    return SAL_OK;
}

void au_share_free(au_share *p) {
    sal_free(p->v);
    p->v = NULL;
}

void au_share_skip(au_share *p, int64_t key) {
    if (p->key < 0) p->key = key;
}

/* Every process's rows of the table, to every process (count, offset: scratch of nranks each). */
static sal_status share_values(au_share *p, size_t *count, size_t *offset) {
    const sal_shard *s = p->s;
    for (int r = 0; r < s->nranks; r++) {
        int64_t lo, hi;
        part(p->n, p->B, r, s->nranks, &lo, &hi);
        count[r] = (size_t)(hi - lo) * (size_t)p->width * sizeof(double);
        offset[r] = (size_t)lo * (size_t)p->width * sizeof(double);
    }
    return s->allgatherv(s->user, p->v, count, offset);
}

/* Between two collectives nothing may fail on one process alone: whatever needs memory is taken
 * first, and its failure agreed (sal_shard_sync) before the next collective. */
sal_status au_share_maps(const au_share *p, sal_status st, sal_tensor *maps, int nmaps, const sal_tensor *x) {
    const sal_shard *s = p->s;
    if (!s || nmaps <= 0) return st;
    int R = s->nranks;
    size_t row = (size_t)au_row(x) * sizeof(float);
    /* which process holds which map (the one that explained its sample), then the maps themselves */
    unsigned char *have = calloc((size_t)R * (size_t)nmaps, 1);
    size_t *count = malloc(2 * (size_t)R * sizeof *count), *offset = count ? count + R : NULL;
    if (st == SAL_OK && (!have || !count)) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    char *buf = NULL;
    size_t total = 0;
    if ((st = sal_shard_sync(s, st, NULL, NULL, 0)) == SAL_OK) {
        for (int k = 0; k < nmaps; k++) have[(size_t)s->rank * (size_t)nmaps + (size_t)k] = maps[k].data != NULL;
        for (int r = 0; r < R; r++) count[r] = (size_t)nmaps, offset[r] = (size_t)r * (size_t)nmaps;
        st = s->allgatherv(s->user, have, count, offset);
    }
    for (int r = 0; st == SAL_OK && r < R; r++) {
        count[r] = 0;
        for (int k = 0; k < nmaps; k++) count[r] += have[(size_t)r * (size_t)nmaps + (size_t)k] ? row : 0;
        offset[r] = total;
        total += count[r];
    }
    if (st == SAL_OK) {
        buf = malloc(total ? total : 1);
        st = sal_shard_sync(s, buf ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory"), NULL, NULL, 0);
    }
    if (st == SAL_OK) {
        char *q = buf + offset[s->rank];
        for (int k = 0; k < nmaps; k++)
            if (maps[k].data) memcpy(q, maps[k].data, row), q += row;
        st = s->allgatherv(s->user, buf, count, offset);
    }
    for (int r = 0; st == SAL_OK && r < R; r++) {
        const char *q = buf + offset[r];
        for (int k = 0; k < nmaps && st == SAL_OK; k++) {
            if (!have[(size_t)r * (size_t)nmaps + (size_t)k]) continue;
            if (r != s->rank && !maps[k].data) st = au_keep_row(&maps[k], x, (const float *)(const void *)q);
            q += row;
        }
    }
    free(buf);
    free(have);
    free(count);
    return st;
}

sal_status au_share_end(au_share *p, sal_status st, au_result *r, int nmaps, const sal_tensor *x) {
    if (!p->s) return st;
    char text[1008] = "";
    int64_t key = p->key;
    if (key >= 0 && r && r->verdict) snprintf(text, sizeof text, "%s", r->verdict);
    size_t *count = malloc(2 * (size_t)p->s->nranks * sizeof *count);
    if (!count && st == SAL_OK) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    st = sal_shard_sync(p->s, st, &key, text, sizeof text);
    if (st == SAL_OK && key >= 0) { /* the skip a single process meets first: every process's verdict */
        if (r) {
            r->nmetric = 0;
            r->patterns = false;
            sal_free(r->curve);
            r->curve = NULL;
            au_verdict(r, SAL_VERDICT_SKIPPED, "%s", text);
        }
        p->key = key;
    } else if (st == SAL_OK && p->width > 0) {
        st = share_values(p, count, count + p->s->nranks);
    }
    free(count);
    if (st != SAL_OK || key >= 0) return st;
    return r ? au_share_maps(p, SAL_OK, r->maps, nmaps, x) : SAL_OK;
}
