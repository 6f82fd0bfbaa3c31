/* One binary search for every sorted array. */
#ifndef Q2S_COMMON_SEARCH_H
#define Q2S_COMMON_SEARCH_H

#include <stdbool.h>
#include <stddef.h>

/* The first index in [0, count) at which after(ctx, i) holds, or count if
 * there is none; after must be false then true along the indexes (false
 * for all, true for all and count 0 are fine).  Always inlined, so that a
 * static predicate is inlined too: the callers are hot loops. */
static inline __attribute__((always_inline)) size_t
q2s_search_first(size_t count, bool (*after)(const void *ctx, size_t i),
                 const void *ctx)
{
    size_t low = 0, high = count;

    while (low < high) {
        size_t mid = low + (high - low) / 2;

        if (after(ctx, mid))
            high = mid;
        else
            low = mid + 1;
    }
    return low;
}

#endif
