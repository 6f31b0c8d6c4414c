/* FNV-1a over 64-bit words, shared by the model hash (graph/rewrite.c) and the patterns file's
 * checksum (methods/pattern.c).
 * A piece of 64 bytes or more is hashed in four interleaved lanes (word i into lane i % 4, lanes
 * seeded h, h ^ 1, h ^ 2, h ^ 3), whose states then go into h as four words: one multiply chain
 * runs at about 2 GB/s, four at several times that, and VGG16's 550 MB of weights are hashed on
 * every use of a patterns file. The remaining words, then bytes, go into h directly. */
#include "core.h"

#define FNV_PRIME 0x100000001b3ULL

uint64_t sal_fnv64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    if (n >= 64) {
        uint64_t l[4] = {h, h ^ 1, h ^ 2, h ^ 3};
        for (; n >= 32; n -= 32, p += 32) {
            uint64_t w[4];
            memcpy(w, p, 32);
            for (int i = 0; i < 4; i++) l[i] = (l[i] ^ w[i]) * FNV_PRIME;
        }
        for (int i = 0; i < 4; i++) h = (h ^ l[i]) * FNV_PRIME;
    }
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * FNV_PRIME;
    }
    for (; n; n--, p++) h = (h ^ *p) * FNV_PRIME;
    return h;
}

