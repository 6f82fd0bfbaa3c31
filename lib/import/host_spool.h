/* What the stream passed before the importer knew whether it is needed:
 * bytes of the image by host offset, kept in the order they came (a byte
 * store under the spool memory, then a temporary file), until the whole
 * cluster mapping is known and the rest can go.  Runs of zeros take no
 * room. */
#ifndef Q2S_IMPORT_HOST_SPOOL_H
#define Q2S_IMPORT_HOST_SPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/vector.h"
#include "error.h"
#include "import/byte_store.h"

struct host_spool_extent {
    uint64_t host_start;
    uint32_t length;
    bool zero;                      /* all zeros: no piece */
    struct byte_store_piece piece;
};

Q2S_DEFINE_VECTOR_TYPE(host_spool_extents, struct host_spool_extent)

struct host_spool {
    struct byte_store store;
    struct host_spool_extents extents;  /* ascending, disjoint */
    /* Bytes not yet put in the store: [pending_start, + pending_used). */
    uint8_t *pending;
    uint64_t pending_start;
    uint32_t pending_used;
    uint64_t bytes_kept;  /* all ever kept, zeros too */
    uint64_t held_bytes;  /* kept now, zeros too */
    uint64_t peak_bytes;  /* the most held at once */
};

void host_spool_init(struct host_spool *spool, uint64_t memory_budget,
                     const char *directory);
/* Everything goes; the spool can be used again. */
void host_spool_clear(struct host_spool *spool);
void host_spool_free(struct host_spool *spool);

/* Keeps the bytes at [host_start, host_start + length), which start at or
 * after the end of the last ones kept. */
int host_spool_add(struct host_spool *spool, uint64_t host_start,
                   const uint8_t *data, size_t length, struct q2s_error *err);

/* The end of the last bytes kept, 0 when none are. */
uint64_t host_spool_end(const struct host_spool *spool);

/* Reads [host_start, host_start + length) into buf: 0; 1 when some of it
 * was not kept (*missing is then the first byte of it); -1 on error. */
int host_spool_read(struct host_spool *spool, uint64_t host_start,
                    uint32_t length, uint8_t *buf, uint64_t *missing,
                    struct q2s_error *err);

#endif
