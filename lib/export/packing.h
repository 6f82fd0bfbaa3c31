/* Where compressed clusters go: pure arithmetic, no I/O.
 *
 * Compressed clusters are packed back to back, in guest order, from the
 * start of the compressed region, crossing host cluster boundaries where
 * they must ("Compressed Clusters Descriptor" in qcow2.rst).  The refcount
 * of a host cluster is the number of compressed clusters that touch it; when
 * that reaches what the refcount width can hold, the next compressed cluster
 * starts at the next host cluster boundary.
 *
 * Only the compressed sizes are stored, 4 bytes per compressed cluster,
 * with the packing state every Q2S_PACKING_STRIDE clusters, so that where
 * any of them lies follows from a short walk.
 */
#ifndef Q2S_PACKING_H
#define Q2S_PACKING_H

#include <stddef.h>
#include <stdint.h>

#include "common/vector.h"

#define Q2S_PACKING_STRIDE 256

struct q2s_packing_state {
    uint64_t cursor;  /* bytes of the region used: where the next one may go */
    uint64_t refs;    /* compressed clusters touching the host cluster that
                       * holds cursor; 0 when cursor is at its start */
};

Q2S_DEFINE_VECTOR_TYPE(q2s_packing_state_vector, struct q2s_packing_state)

struct q2s_packing {
    uint32_t cluster_bits;
    uint64_t max_refcount;
    uint32_t *sizes;  /* compressed bytes of each, below the cluster size */
    uint64_t count;
    size_t capacity;
    /* The state before compressed cluster i * Q2S_PACKING_STRIDE. */
    struct q2s_packing_state_vector checkpoints;
    struct q2s_packing_state end;  /* after the last one */
};

void q2s_packing_init(struct q2s_packing *packing, uint32_t cluster_bits,
                      uint32_t refcount_bits);
void q2s_packing_free(struct q2s_packing *packing);

/* Adds the next compressed cluster, of bytes bytes (1 to cluster size - 1),
 * and tells where it starts in the region.  -1 with errno on failure. */
int q2s_packing_append(struct q2s_packing *packing, uint32_t bytes,
                       uint64_t *start);

/* From the state before a compressed cluster of bytes bytes: where it
 * starts, and the state after it. */
uint64_t q2s_packing_place(const struct q2s_packing *packing,
                           struct q2s_packing_state *state, uint32_t bytes);

/* The state before compressed cluster index (index <= count). */
void q2s_packing_seek(const struct q2s_packing *packing, uint64_t index,
                      struct q2s_packing_state *state);

/* The first compressed cluster that ends after offset in the region, with
 * the state before it; packing->count if none does. */
uint64_t q2s_packing_find(const struct q2s_packing *packing, uint64_t offset,
                          struct q2s_packing_state *state);

/* Bytes of the region, up to the end of the last compressed cluster. */
static inline uint64_t q2s_packing_bytes(const struct q2s_packing *packing)
{
    return packing->end.cursor;
}

#endif
