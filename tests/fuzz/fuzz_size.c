/* Sizes and numbers on the command line (programs/cli.c): what is taken
 * is exactly the documented grammar, with the value a second, independent
 * reading gives, and a value printed back reads as itself. */
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>

#include "fuzz.h"
#include "programs/cli.h"

/* The grammar of cli.h, read another way: digits, then at most one of
 * KMGTPE in either case; no value past 2^64 - 1. */
static bool expected_size(const char *text, uint64_t *value)
{
    static const char suffixes[] = "KMGTPE";
    unsigned __int128 n = 0;
    size_t digits = 0;
    const char *p = text;

    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        n = n * 10 + (unsigned)(*p - '0');
        if (n > UINT64_MAX)
            return false;
    }
    if (digits == 0)
        return false;
    if (*p != '\0') {
        int power = -1;

        for (int i = 0; suffixes[i]; i++) {
            if (*p == suffixes[i] || *p == suffixes[i] + ('a' - 'A'))
                power = i + 1;
        }
        if (power < 0 || p[1] != '\0')
            return false;
        for (int i = 0; i < power; i++) {
            n *= 1024;
            if (n > UINT64_MAX)
                return false;
        }
    }
    *value = (uint64_t)n;
    return true;
}

/* An optional sign, then digits; from INT_MIN + 1 to INT_MAX. */
static bool expected_int(const char *text, int *value)
{
    bool negative = false;
    long long n = 0;
    const char *p = text;

    if (*p == '-' || *p == '+')
        negative = *p++ == '-';
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (*p - '0');
        if (n > (long long)INT_MAX + 1)
            return false;
    }
    if (*p != '\0' || n > INT_MAX)
        return false;
    *value = (int)(negative ? -n : n);
    return true;
}

static void check_size(const char *text)
{
    uint64_t value = 0, expected = 0, again = 0;
    bool taken = cli_parse_size(text, &value);
    char printed[32];

    FUZZ_CHECK(taken == expected_size(text, &expected));
    if (!taken)
        return;
    FUZZ_CHECK(value == expected);
    snprintf(printed, sizeof printed, "%" PRIu64, value);
    FUZZ_CHECK(cli_parse_size(printed, &again) && again == value);
    /* With the largest suffix that divides it, the same value. */
    for (int power = 6; power > 0; power--) {
        uint64_t unit = UINT64_C(1) << (10 * power);

        if (value != 0 && value % unit == 0) {
            snprintf(printed, sizeof printed, "%" PRIu64 "%c", value / unit,
                     "KMGTPE"[power - 1]);
            FUZZ_CHECK(cli_parse_size(printed, &again) && again == value);
            break;
        }
    }
}

static void check_int(const char *text)
{
    int value = 0, expected = 0, again = 0;
    bool taken = cli_parse_int(text, &value);
    char printed[16];

    FUZZ_CHECK(taken == expected_int(text, &expected));
    if (!taken)
        return;
    FUZZ_CHECK(value == expected);
    snprintf(printed, sizeof printed, "%d", value);
    FUZZ_CHECK(cli_parse_int(printed, &again) && again == value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_string(data, size);

    check_size(text);
    check_int(text);
    free(text);
    return 0;
}
