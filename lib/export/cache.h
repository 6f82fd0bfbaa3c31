/* What pass 1 keeps of a region of the image for pass 2: the compressed
 * region, so that pass 2 need not compress it again, and the data region
 * when the input costs much to read again (an NBD server), so that each of
 * its bytes is read once.
 *
 * Pieces are kept in order, each at its place in the region, the gaps
 * between them reading as zeros.  The region's start is kept in memory,
 * while a budget that several caches share allows; the rest, with a
 * directory, in an unlinked file there, which is gone when it is closed
 * whatever happens.  Without one, or once the file cannot be written (a
 * full disk), nothing after that is kept, and pass 2 computes the rest
 * again: running out is never an error. */
#ifndef Q2S_CACHE_H
#define Q2S_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/vector.h"

/* Blocks of the region, each allocated on its own. */
Q2S_DEFINE_VECTOR_TYPE(q2s_cache_blocks, uint8_t *)

struct q2s_cache {
    /* Memory not yet taken by any of the caches sharing it, or NULL for
     * none at all. */
    uint64_t *memory_left;
    const char *directory;  /* for the file, or NULL for none */
    uint64_t bytes;         /* bytes [0, bytes) of the region are kept */
    bool full;              /* a piece was not kept: nor is anything after */
    /* [0, memory_bytes) lies in blocks, [memory_bytes, bytes) in the file
     * at offset (region offset - memory_bytes). */
    uint64_t memory_bytes;
    bool memory_closed;     /* a piece went to the file: no more blocks */
    struct q2s_cache_blocks blocks;
    int fd;                 /* the file, or -1 */
    /* Pieces for the file, written to it a buffer at a time: the region's
     * bytes [pending_start, pending_start + pending_used). */
    uint8_t *pending;
    size_t pending_used;
    uint64_t pending_start;
};

/* Where kept bytes lie: in memory at data, or at fd_offset of fd. */
struct q2s_cache_span {
    const uint8_t *data;  /* or NULL */
    int fd;
    uint64_t fd_offset;
    uint64_t length;
};

/* memory_left (may be NULL: nothing in memory) and directory (may be NULL:
 * no file) must outlive the cache. */
void q2s_cache_init(struct q2s_cache *cache, uint64_t *memory_left,
                    const char *directory);
/* Frees the memory, closes the file. */
void q2s_cache_free(struct q2s_cache *cache);

/* Keeps the piece at [start, start + length) of the region, if it can;
 * start is at or after the end of the one kept before. */
void q2s_cache_store(struct q2s_cache *cache, uint64_t start,
                     const uint8_t *data, size_t length);

/* After the last store: what waits to go to the file goes, or if it
 * cannot, is not kept (bytes shrinks to what is in the file). */
void q2s_cache_finish(struct q2s_cache *cache);

/* The kept bytes from offset on (offset < cache->bytes), as many as lie
 * together, after q2s_cache_finish(). */
void q2s_cache_locate(const struct q2s_cache *cache, uint64_t offset,
                      struct q2s_cache_span *span);

#endif
