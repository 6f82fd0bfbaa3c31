/* Finding all-zero blocks: what decides which clusters are allocated. */
#ifndef Q2S_ZERO_H
#define Q2S_ZERO_H

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

#endif
