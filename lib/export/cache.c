#include "export/cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/fdio.h"

/* Memory is taken a block at a time, zeroed: the gaps between compressed
 * clusters are zeros in the image too.  The budget is charged as pieces
 * fill a block. */
#define CACHE_BLOCK_BYTES (4 * 1024 * 1024)
/* Pieces go to the file this much at a time. */
#define PENDING_BYTES (4 * 1024 * 1024)

void q2s_cache_init(struct q2s_cache *cache, uint64_t *memory_left,
                    const char *directory)
{
    memset(cache, 0, sizeof *cache);
    cache->memory_left = memory_left;
    cache->directory = directory;
    cache->fd = -1;
}

void q2s_cache_free(struct q2s_cache *cache)
{
    for (size_t i = 0; i < cache->blocks.len; i++)
        munmap(cache->blocks.ptr[i], CACHE_BLOCK_BYTES);
    q2s_cache_blocks_free(&cache->blocks);
    if (cache->fd >= 0)
        close(cache->fd);
    cache->fd = -1;
    free(cache->pending);
    cache->pending = NULL;
    cache->bytes = 0;
    cache->memory_bytes = 0;
}

/* Blocks up to and including block index last.  Each is mapped on its
 * own and never reused, only unmapped: a pipe may still hold its pages
 * (q2s_sink_write_stable()), which the kernel then keeps as they are. */
static bool have_blocks(struct q2s_cache *cache, uint64_t last)
{
    while (cache->blocks.len <= last) {
        /* Populated at once: a fault per page cost more than the copy
         * into it (measured: 2 GiB of NBD data took 1.5 s longer). */
        uint8_t *block = mmap(NULL, CACHE_BLOCK_BYTES, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                              -1, 0);

        if (block == MAP_FAILED)
            return false;
        if (q2s_cache_blocks_append(&cache->blocks, block) < 0) {
            munmap(block, CACHE_BLOCK_BYTES);
            return false;
        }
    }
    return true;
}

/* Into memory, if the budget and the allocator allow. */
static bool store_in_memory(struct q2s_cache *cache, uint64_t start,
                            const uint8_t *data, size_t length)
{
    uint64_t end = start + length;
    uint64_t charge = end - cache->memory_bytes;  /* the gap counts too */

    if (cache->memory_closed || !cache->memory_left ||
        charge > *cache->memory_left ||
        !have_blocks(cache, (end - 1) / CACHE_BLOCK_BYTES))
        return false;
    for (uint64_t pos = start; pos < end;) {
        uint64_t within = pos % CACHE_BLOCK_BYTES;
        uint64_t n = CACHE_BLOCK_BYTES - within;

        if (n > end - pos)
            n = end - pos;
        memcpy(cache->blocks.ptr[pos / CACHE_BLOCK_BYTES] + within,
               data + (pos - start), (size_t)n);
        pos += n;
    }
    *cache->memory_left -= charge;
    cache->memory_bytes = end;
    return true;
}

/* Writes what is pending to the file; on failure nothing from
 * pending_start on is kept. */
static bool flush_pending(struct q2s_cache *cache)
{
    uint64_t offset = cache->pending_start - cache->memory_bytes;

    if (cache->pending_used > 0 &&
        q2s_pwrite_all(cache->fd, cache->pending, cache->pending_used,
                       offset) < 0) {
        cache->full = true;
        cache->bytes = cache->pending_start;
        cache->pending_used = 0;
        return false;
    }
    cache->pending_start += cache->pending_used;
    cache->pending_used = 0;
    return true;
}

/* Into the file, which is made at the first piece. */
static bool store_in_file(struct q2s_cache *cache, uint64_t start,
                          const uint8_t *data, size_t length)
{
    if (!cache->directory)
        return false;
    if (cache->fd < 0) {
        cache->pending = malloc(PENDING_BYTES);
        if (!cache->pending)
            return false;
        cache->fd = q2s_open_unlinked(cache->directory);
        if (cache->fd < 0)
            return false;
        cache->memory_closed = true;
        /* The file starts where memory ends: a gap before this piece
         * stays a hole. */
        cache->memory_bytes = cache->bytes;
        cache->pending_start = start;
    }
    while (length > 0) {
        uint64_t pending_end = cache->pending_start + cache->pending_used;
        size_t n;

        /* A gap that does not fit the buffer: write what is there, and
         * start again at the piece (the file has a hole). */
        if (start - pending_end > PENDING_BYTES - cache->pending_used) {
            if (!flush_pending(cache))
                return false;
            cache->pending_start = start;
            pending_end = start;
        }
        memset(cache->pending + cache->pending_used, 0,
               (size_t)(start - pending_end));
        cache->pending_used += (size_t)(start - pending_end);
        n = PENDING_BYTES - cache->pending_used;
        if (n > length)
            n = length;
        memcpy(cache->pending + cache->pending_used, data, n);
        cache->pending_used += n;
        data += n;
        start += n;
        length -= n;
        if (cache->pending_used == PENDING_BYTES && !flush_pending(cache))
            return false;
    }
    return true;
}

void q2s_cache_store(struct q2s_cache *cache, uint64_t start,
                     const uint8_t *data, size_t length)
{
    if (cache->full || length == 0)
        return;
    if (store_in_memory(cache, start, data, length) ||
        store_in_file(cache, start, data, length)) {
        if (!cache->full)
            cache->bytes = start + length;
        return;
    }
    cache->full = true;
}

void q2s_cache_finish(struct q2s_cache *cache)
{
    if (cache->fd >= 0 && !cache->full)
        flush_pending(cache);
    free(cache->pending);
    cache->pending = NULL;
    /* Nothing more comes: the budget and the directory may go. */
    cache->memory_left = NULL;
    cache->directory = NULL;
}

void q2s_cache_locate(const struct q2s_cache *cache, uint64_t offset,
                      struct q2s_cache_span *span)
{
    if (offset < cache->memory_bytes) {
        uint64_t within = offset % CACHE_BLOCK_BYTES;
        uint64_t end = cache->memory_bytes;

        span->data = cache->blocks.ptr[offset / CACHE_BLOCK_BYTES] + within;
        span->fd = -1;
        span->fd_offset = 0;
        span->length = CACHE_BLOCK_BYTES - within;
        if (span->length > end - offset)
            span->length = end - offset;
        return;
    }
    span->data = NULL;
    span->fd = cache->fd;
    span->fd_offset = offset - cache->memory_bytes;
    span->length = cache->bytes - offset;
}
