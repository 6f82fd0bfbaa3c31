#include "cache.h"

#include <stdlib.h>
#include <string.h>

/* Memory is taken a block at a time, zeroed: the gaps between compressed
 * clusters are zeros in the image too. */
#define CACHE_BLOCK_BYTES (4 * 1024 * 1024)

void q2s_cache_init(struct q2s_cache *cache, uint64_t budget)
{
    memset(cache, 0, sizeof *cache);
    cache->budget = budget;
}

void q2s_cache_free(struct q2s_cache *cache)
{
    for (size_t i = 0; i < cache->blocks.len; i++)
        free(cache->blocks.ptr[i]);
    q2s_cache_blocks_free(&cache->blocks);
    cache->bytes = 0;
}

/* Blocks up to and including block index last. */
static bool have_blocks(struct q2s_cache *cache, uint64_t last)
{
    while (cache->blocks.len <= last) {
        uint8_t *block = calloc(1, CACHE_BLOCK_BYTES);

        if (!block || q2s_cache_blocks_append(&cache->blocks, block) < 0) {
            free(block);
            return false;
        }
    }
    return true;
}

void q2s_cache_store(struct q2s_cache *cache, uint64_t start,
                     const uint8_t *data, size_t length)
{
    if (cache->full)
        return;
    if (start > cache->budget || length > cache->budget - start ||
        !have_blocks(cache, (start + length - 1) / CACHE_BLOCK_BYTES)) {
        cache->full = true;
        return;
    }
    for (uint64_t pos = start; pos < start + length;) {
        uint64_t within = pos % CACHE_BLOCK_BYTES;
        uint64_t n = CACHE_BLOCK_BYTES - within;

        if (n > start + length - pos)
            n = start + length - pos;
        memcpy(cache->blocks.ptr[pos / CACHE_BLOCK_BYTES] + within,
               data + (pos - start), (size_t)n);
        pos += n;
    }
    cache->bytes = start + length;
}

const uint8_t *q2s_cache_get(const struct q2s_cache *cache, uint64_t offset,
                             uint64_t *length)
{
    uint64_t within = offset % CACHE_BLOCK_BYTES;

    *length = CACHE_BLOCK_BYTES - within;
    if (*length > cache->bytes - offset)
        *length = cache->bytes - offset;
    return cache->blocks.ptr[offset / CACHE_BLOCK_BYTES] + within;
}
