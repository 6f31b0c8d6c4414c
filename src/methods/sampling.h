/* Random draws of the sampling methods (SmoothGrad noise, uniform and data baselines, path points).
 * Every (sample, variant) pair gets its own stream, so results do not depend on the chunk size or
 * on the order rows are run in: the same seed gives the same bytes. */
#ifndef SAL_SAMPLING_H
#define SAL_SAMPLING_H

#include "method.h"
#include <errno.h>

/* The stream of variant k of sample `id` under `seed`: the seed picks a random 64-bit origin and the
 * pair an offset from it, so distinct pairs (and seeds) get unrelated splitmix64 seeds. */
static inline void sal_rng_stream(sal_rng *r, uint64_t seed, uint64_t id, int64_t k, int64_t per_sample) {
    sal_rng_seed(r, seed);
    uint64_t origin = sal_rng_u64(r);
    sal_rng_seed(r, origin + id * (uint64_t)per_sample + (uint64_t)k);
}

/* The id of sample i's streams: its index, or the id a wrapping method gave the row. */
static inline uint64_t sal_stream_id(const sal_xctx *c, int64_t i) { return c->stream ? c->stream[i] : (uint64_t)i; }

/* The id that variant k of sample i hands to a method run on it as one of its samples: a random
 * 64-bit number drawn from the pair, so the nested method's streams neither depend on where the
 * row lands in a chunk nor coincide with the streams of the run itself. */
static inline uint64_t sal_stream_child(const sal_xctx *c, int64_t i, int64_t k, int64_t per_sample) {
    sal_rng r;
    sal_rng_seed(&r, (sal_stream_id(c, i) * (uint64_t)per_sample + (uint64_t)k) ^ 0x5a17c0de5eed1e55ULL);
    return sal_rng_u64(&r);
}

/* Parses "seed" as an unsigned 64-bit integer. */
static inline sal_status sal_parse_seed(const char *method, const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long s = strtoull(v, &end, 10);
    if (errno || end == v || *end || *v == '-')
        return sal_fail(SAL_ERR_ARG, "method %s: parameter seed=%s must be a non-negative integer", method, v);
    *out = (uint64_t)s;
    return SAL_OK;
}

#endif
