#include "packing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
    free(packing->checkpoints);
    packing->sizes = NULL;
    packing->checkpoints = NULL;
    packing->count = packing->capacity = 0;
}

uint64_t q2s_packing_place(const struct q2s_packing *packing,
                           struct q2s_packing_state *state, uint32_t bytes)
{
    uint64_t cluster_size = UINT64_C(1) << packing->cluster_bits;
    uint64_t start, end;

    if (state->refs >= packing->max_refcount) {
        /* The host cluster can count no more references: move on. */
        state->cursor = (state->cursor + cluster_size - 1) &
                        ~(cluster_size - 1);
        state->refs = 0;
    }
    start = state->cursor;
    end = start + bytes;
    if ((end & (cluster_size - 1)) == 0)
        state->refs = 0;
    else if ((end - 1) >> packing->cluster_bits ==
             start >> packing->cluster_bits)
        state->refs++;
    else
        state->refs = 1;  /* it crossed into a host cluster of its own */
    state->cursor = end;
    return start;
}

static int grow(struct q2s_packing *packing)
{
    uint64_t capacity = packing->capacity ? packing->capacity * 2 : 4096;
    uint64_t checkpoints = capacity / Q2S_PACKING_STRIDE + 1;
    uint32_t *sizes;
    struct q2s_packing_state *states;

    if (capacity > SIZE_MAX / sizeof *sizes) {
        errno = ENOMEM;
        return -1;
    }
    sizes = realloc(packing->sizes, capacity * sizeof *sizes);
    if (!sizes)
        return -1;
    packing->sizes = sizes;
    states = realloc(packing->checkpoints, checkpoints * sizeof *states);
    if (!states)
        return -1;
    packing->checkpoints = states;
    packing->capacity = capacity;
    return 0;
}

int q2s_packing_append(struct q2s_packing *packing, uint32_t bytes,
                       uint64_t *start)
{
    if (bytes == 0 || bytes >= UINT32_C(1) << packing->cluster_bits) {
        errno = EINVAL;
        return -1;
    }
    if (packing->count == packing->capacity && grow(packing) < 0)
        return -1;
    if (packing->count % Q2S_PACKING_STRIDE == 0)
        packing->checkpoints[packing->count / Q2S_PACKING_STRIDE] =
            packing->end;
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
    *state = packing->checkpoints[i / Q2S_PACKING_STRIDE];
    for (; i < index; i++)
        q2s_packing_place(packing, state, packing->sizes[i]);
}

uint64_t q2s_packing_find(const struct q2s_packing *packing, uint64_t offset,
                          struct q2s_packing_state *state)
{
    uint64_t low = 0, high, i;

    if (packing->count == 0) {
        *state = packing->end;
        return 0;
    }
    /* The last checkpoint at or before offset: nothing before it reaches
     * past it. */
    high = (packing->count - 1) / Q2S_PACKING_STRIDE;
    while (low < high) {
        uint64_t mid = low + (high - low + 1) / 2;

        if (packing->checkpoints[mid].cursor <= offset)
            low = mid;
        else
            high = mid - 1;
    }
    *state = packing->checkpoints[low];
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
