/* Finding all-zero blocks: what decides which clusters are allocated. */
#ifndef Q2S_COMMON_ZERO_H
#define Q2S_COMMON_ZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* p is 8-byte aligned and length a multiple of 64. */
static inline bool q2s_is_zero(const uint8_t *p, size_t length)
{
    const uint64_t *word = (const uint64_t *)(const void *)p;

    for (size_t i = 0; i < length / 8; i += 8) {
        if (word[i] | word[i + 1] | word[i + 2] | word[i + 3] | word[i + 4] |
            word[i + 5] | word[i + 6] | word[i + 7])
            return false;
    }
    return true;
}

/* Any p and length: the aligned middle as above, the ends a byte at a
 * time. */
static inline bool q2s_is_zero_unaligned(const uint8_t *p, size_t length)
{
    while (length > 0 && ((uintptr_t)p % 8 != 0 || length < 64)) {
        if (*p)
            return false;
        p++;
        length--;
    }
    if (!q2s_is_zero(p, length & ~(size_t)63))
        return false;
    p += length & ~(size_t)63;
    for (length %= 64; length > 0; length--, p++) {
        if (*p)
            return false;
    }
    return true;
}

#endif
