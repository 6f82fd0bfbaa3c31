/* The start of the compressed region, kept in memory from pass 1 so that
 * pass 2 need not compress it again.  Compressed clusters are kept in
 * order, each at its place in the region, until one does not fit in the
 * budget; nothing after it is kept. */
#ifndef Q2S_CACHE_H
#define Q2S_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/vector.h"

/* Blocks of the region, each allocated on its own. */
Q2S_DEFINE_VECTOR_TYPE(q2s_cache_blocks, uint8_t *)

struct q2s_cache {
    uint64_t budget;
    uint64_t bytes;  /* bytes [0, bytes) of the region are kept */
    bool full;       /* a compressed cluster did not fit */
    struct q2s_cache_blocks blocks;
};

void q2s_cache_init(struct q2s_cache *cache, uint64_t budget);
void q2s_cache_free(struct q2s_cache *cache);

/* Keeps the compressed cluster at [start, start + length) of the region,
 * if it fits; start is at or after the end of the one kept before.  Memory
 * that cannot be had fills the cache, it is not an error. */
void q2s_cache_store(struct q2s_cache *cache, uint64_t start,
                     const uint8_t *data, size_t length);

/* The kept bytes from offset on (offset < cache->bytes), as many as lie
 * together in memory: *length of them. */
const uint8_t *q2s_cache_get(const struct q2s_cache *cache, uint64_t offset,
                             uint64_t *length);

#endif
