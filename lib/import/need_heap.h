/* The byte ranges of the stream that the reader still waits for, the
 * nearest first: tables whose place the tables above them gave, and the
 * data their entries map.  A binary heap by host offset. */
#ifndef Q2S_IMPORT_NEED_HEAP_H
#define Q2S_IMPORT_NEED_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/heap.h"

enum import_need_kind {
    NEED_L1_TABLE,
    NEED_L2_TABLE,
    NEED_DATA,        /* guest bytes stored as they are */
    NEED_COMPRESSED,  /* a compressed cluster */
};

struct import_need {
    uint64_t host_first;  /* where it starts, for messages */
    uint64_t host_start;  /* the next byte wanted */
    uint64_t host_end;
    /* NEED_DATA: the guest offset of host_start; NEED_COMPRESSED: of its
     * cluster; NEED_L2_TABLE: of the table's first cluster. */
    uint64_t guest_offset;
    enum import_need_kind kind;
    /* Tables and compressed clusters gather here once the stream reaches
     * them (NULL before): filled bytes of host_end - first byte. */
    uint8_t *buffer;
    uint32_t filled;
    uint32_t length;      /* tables and compressed clusters: all of it */
};

static inline bool need_before(const struct import_need *a,
                               const struct import_need *b)
{
    return a->host_start < b->host_start;
}

Q2S_DEFINE_HEAP_TYPE(need_heap, struct import_need, need_before)

#endif
