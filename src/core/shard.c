/* Agreement between the processes of a sharded run (sal_shard, docs/scaling.md): every process
 * reports its outcome in one fixed-size record through the caller's allgather, so a failure on one
 * process ends the run on all of them with one message, and none waits for a peer that left. Every
 * exchange of the audits starts with such a record, and so does the CLI's closing agreement: a
 * process that failed on its own meets its peers at whatever exchange they wait in. */
#include "core.h"
#include "shard.h"

typedef struct {
    int32_t st;        /* a failure that ends the run; SAL_OK: none */
    int32_t pad;
    int64_t key;       /* the first event of the caller's (a skipped method), its position; -1: none */
    char text[1008];   /* the failure's message, or the event's text */
} shard_rec;
_Static_assert(sizeof(shard_rec) == 1024, "shard records are exchanged as raw bytes");

/* The agreement of sal_shard_sync, with the failure's message given (NULL: sal_last_error()). */
static sal_status sync(const sal_shard *s, sal_status st, const char *msg, int64_t *key, char *text, size_t ntext) {
    if (!s || s->nranks <= 1) return st;
    shard_rec mine = {.st = (int32_t)st, .key = key ? *key : -1};
    snprintf(mine.text, sizeof mine.text, "%s",
             st != SAL_OK ? (msg ? msg : sal_last_error()) : key && *key >= 0 && text ? text : "");
    /* plain malloc: a failing allocation here must not be mistaken for the budget's */
    shard_rec *all = malloc((size_t)s->nranks * sizeof *all);
    if (!all) return sal_fail(SAL_ERR_NOMEM, "out of memory (agreeing with %d processes)", s->nranks);
    sal_status xs = s->allgather(s->user, &mine, all, sizeof mine);
    if (xs != SAL_OK) {
        free(all);
        return xs;
    }
    int bad = -1, nbad = 0, best = -1;
    for (int r = 0; r < s->nranks; r++) {
        if (all[r].st != SAL_OK) {
            nbad++;
            if (bad < 0) bad = r;
        } else if (all[r].key >= 0 && (best < 0 || all[r].key < all[best].key)) {
            best = r;
        }
    }
    sal_status out = SAL_OK;
    if (bad >= 0) {
        bool alike = nbad == s->nranks;
        for (int r = 1; r < s->nranks && alike; r++) alike = all[r].st == all[0].st && !strcmp(all[r].text, all[0].text);
        all[bad].text[sizeof all[bad].text - 1] = '\0';
        if (alike) out = sal_fail((sal_status)all[bad].st, "%s", all[bad].text);
        else out = sal_fail((sal_status)all[bad].st, "rank %d of %d: %s", bad, s->nranks, all[bad].text);
        if (s->ended) *s->ended = bad;
    } else if (key) {
        *key = best >= 0 ? all[best].key : -1;
        if (best >= 0 && text && ntext) snprintf(text, ntext, "%s", all[best].text);
    }
    free(all);
    return out;
}

sal_status sal_shard_sync(const sal_shard *s, sal_status st, int64_t *key, char *text, size_t ntext) {
    return sync(s, st, NULL, key, text, ntext);
}

sal_status sal_shard_agree(const sal_shard *s, sal_status st, const char *msg) { return sync(s, st, msg, NULL, NULL, 0); }
