/* Inflating compressed clusters on several threads while the reader goes
 * on with the stream.  Clusters come back in any order, each with the
 * guest offset it belongs at. */
#ifndef Q2S_IMPORT_DECOMPRESS_POOL_H
#define Q2S_IMPORT_DECOMPRESS_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct decompress_job {
    uint64_t guest_offset;
    uint64_t host_offset;      /* for messages */
    uint8_t *input;            /* owned by the job */
    uint32_t input_length;
    uint8_t *output;           /* one cluster */
    bool cut_short;            /* the stream ended inside its bytes */
    int status;                /* 0, or -1 with err */
    struct q2s_error err;
    struct decompress_job *next;
};

struct decompress_pool;

/* threads of 1 or less inflate in the caller, in submit. */
int decompress_pool_new(uint8_t compression_type, uint32_t cluster_size,
                        unsigned threads, struct decompress_pool **result,
                        struct q2s_error *err);
void decompress_pool_free(struct decompress_pool *pool);

/* Hands input (malloc'd, now the pool's) over; the caller takes finished
 * jobs first while decompress_pool_full().  -1 with ENOMEM. */
int decompress_pool_submit(struct decompress_pool *pool,
                           uint64_t guest_offset, uint64_t host_offset,
                           uint8_t *input, uint32_t input_length,
                           bool cut_short, struct q2s_error *err);
/* A finished job, or NULL: with wait, NULL only when none is in flight.
 * Give it back with decompress_pool_recycle(). */
struct decompress_job *decompress_pool_take(struct decompress_pool *pool,
                                            bool wait);
void decompress_pool_recycle(struct decompress_pool *pool,
                             struct decompress_job *job);
/* Whether the most jobs the pool holds are in flight. */
bool decompress_pool_full(struct decompress_pool *pool);

#endif
