/* What the command lines of the project's programs share: numbers and
 * sizes as options take them.  Option values are untrusted text: these
 * never overflow and never take a partial number. */
#ifndef Q2S_PROGRAM_CLI_H
#define Q2S_PROGRAM_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* A decimal number with an optional binary suffix K, M, G, T, P or E
 * (either case): digits first, nothing after the suffix, no value past
 * 2^64 - 1. */
bool cli_parse_size(const char *text, uint64_t *value);

/* A whole decimal number, possibly signed, from INT_MIN + 1 to INT_MAX;
 * nothing before or after it. */
bool cli_parse_int(const char *text, int *value);

#endif
