/* One interface for every input: where the guest-visible bytes come from.
 * Each kind of input implements these operations in a file of its own. */
#ifndef Q2S_SOURCE_H
#define Q2S_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "qcow2_to_stdout.h"

struct q2s_source_ops {
    /* Finds the first extent at or after offset that may hold data (holes
     * read as zeros and are never read).  Returns 1 with [*start, *end),
     * 0 if the rest of the input is a hole, -1 on error.  Reporting a hole
     * as data is allowed; the other way round is not. */
    int (*next_data)(struct q2s_source *source, uint64_t offset,
                     uint64_t *start, uint64_t *end, struct q2s_error *err);
    /* Reads exactly length bytes at offset, all below source->size. */
    int (*read)(struct q2s_source *source, void *buf, size_t length,
                uint64_t offset, struct q2s_error *err);
    /* Fails if the input no longer has the size it had when opened. */
    int (*check_size)(struct q2s_source *source, struct q2s_error *err);
    void (*close)(struct q2s_source *source);
};

struct q2s_source {
    const struct q2s_source_ops *ops;
    uint64_t size;
    /* A descriptor whose bytes are the input's, at the same offsets, that
     * the output may splice or copy from; -1 if there is none. */
    int fd;
};

#endif
