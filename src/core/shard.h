/* Agreement between the processes of a sharded run (sal_shard). */
#ifndef SAL_SHARD_H
#define SAL_SHARD_H

#include "saliency.h"
#include <stddef.h>

/* Collective (every process of s calls it at the same point). st: this process's failure, which
 * ends the run (SAL_OK: none). *key (may be NULL): the position of a non-fatal event here, such as
 * a method skipped at a batch (-1: none), with its text. Returns the lowest failing rank's status
 * and message on every process (see sal_shard_agree; *s->ended set); else SAL_OK with *key and text set to the
 * lowest key any process reported, and its text. s NULL or one process: returns st, key untouched. */
sal_status sal_shard_sync(const sal_shard *s, sal_status st, int64_t *key, char *text, size_t ntext);

#endif
