/* Integer helpers for sizes and offsets: rounding and powers of two. */
#ifndef Q2S_COMMON_BITS_H
#define Q2S_COMMON_BITS_H

#include <stdbool.h>
#include <stdint.h>

static inline bool q2s_is_power_of_two(uint64_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

/* n / d rounded up, without the overflow of (n + d - 1) / d; d > 0. */
static inline uint64_t q2s_div_round_up(uint64_t n, uint64_t d)
{
    return n / d + (n % d != 0);
}

/* The multiples of a power of two: alignment must be one.  Rounding up
 * wraps to 0 past the last multiple below 2^64, as the caller's own
 * arithmetic would. */
static inline uint64_t q2s_round_down(uint64_t n, uint64_t alignment)
{
    return n & ~(alignment - 1);
}

static inline uint64_t q2s_round_up(uint64_t n, uint64_t alignment)
{
    return (n + alignment - 1) & ~(alignment - 1);
}

static inline bool q2s_is_aligned(uint64_t n, uint64_t alignment)
{
    return (n & (alignment - 1)) == 0;
}

/* k for n = 2^k; n must be a power of two. */
static inline uint32_t q2s_log2_power_of_two(uint64_t n)
{
    return (uint32_t)__builtin_ctzll(n);
}

#endif
