#include "export/packing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/bits.h"
#include "common/search.h"

void q2s_packing_init(struct q2s_packing *packing, uint32_t cluster_bits,
                      uint32_t refcount_bits)
{
    memset(packing, 0, sizeof *packing);
    packing->cluster_bits = cluster_bits;
    packing->max_refcount = refcount_bits >= 64
                                ? UINT64_MAX
                                : (UINT64_C(1) << refcount_bits) - 1;
}

void q2s_packing_free(struct q2s_packing *packing)
{
    free(packing->sizes);
    packing->sizes = NULL;
    packing->count = packing->capacity = 0;
    q2s_packing_state_vector_free(&packing->checkpoints);
}

uint64_t q2s_packing_place(const struct q2s_packing *packing,
                           struct q2s_packing_state *state, uint32_t bytes)
{
    uint64_t cluster_size = UINT64_C(1) << packing->cluster_bits;
    uint64_t start, end;

    if (state->refs >= packing->max_refcount) {
        /* The host cluster can count no more references: move on. */
        state->cursor = q2s_round_up(state->cursor, cluster_size);
        state->refs = 0;
    }
    start = state->cursor;
    end = start + bytes;
    if (q2s_is_aligned(end, cluster_size))
        state->refs = 0;
    else if ((end - 1) >> packing->cluster_bits ==
             start >> packing->cluster_bits)
        state->refs++;
    else
        state->refs = 1;  /* it crossed into a host cluster of its own */
    state->cursor = end;
    return start;
}

int q2s_packing_append(struct q2s_packing *packing, uint32_t bytes,
                       uint64_t *start)
{
    if (bytes == 0 || bytes >= UINT32_C(1) << packing->cluster_bits) {
        errno = EINVAL;
        return -1;
    }
    if (Q2S_VECTOR_RESERVE(packing->sizes, packing->count, packing->capacity,
                           1) < 0)
        return -1;
    if (packing->count % Q2S_PACKING_STRIDE == 0 &&
        q2s_packing_state_vector_append(&packing->checkpoints,
                                        packing->end) < 0)
        return -1;
    packing->sizes[packing->count++] = bytes;
    *start = q2s_packing_place(packing, &packing->end, bytes);
    return 0;
}

void q2s_packing_seek(const struct q2s_packing *packing, uint64_t index,
                      struct q2s_packing_state *state)
{
    uint64_t i = index - index % Q2S_PACKING_STRIDE;

    if (index >= packing->count) {
        *state = packing->end;
        return;
    }
    *state = packing->checkpoints.ptr[i / Q2S_PACKING_STRIDE];
    for (; i < index; i++)
        q2s_packing_place(packing, state, packing->sizes[i]);
}

struct cursor_key {
    const struct q2s_packing_state *checkpoints;
    uint64_t offset;
};

static bool cursor_after(const void *ctx, size_t i)
{
    const struct cursor_key *k = ctx;

    return k->checkpoints[i].cursor > k->offset;
}

uint64_t q2s_packing_find(const struct q2s_packing *packing, uint64_t offset,
                          struct q2s_packing_state *state)
{
    struct cursor_key k = { packing->checkpoints.ptr, offset };
    size_t low;
    uint64_t i;

    if (packing->count == 0) {
        *state = packing->end;
        return 0;
    }
    /* The last checkpoint at or before offset: nothing before it reaches
     * past it.  The first is at 0, so there is one. */
    low = q2s_search_first(packing->checkpoints.len, cursor_after, &k) - 1;
    *state = packing->checkpoints.ptr[low];
    for (i = low * Q2S_PACKING_STRIDE; i < packing->count; i++) {
        struct q2s_packing_state before = *state;
        uint64_t start = q2s_packing_place(packing, state, packing->sizes[i]);

        if (start + packing->sizes[i] > offset) {
            *state = before;
            return i;
        }
    }
    return packing->count;
}
