/* What the fuzz targets share.  Each target is one function,
 * LLVMFuzzerTestOneInput(), built two ways: with libFuzzer (make fuzz,
 * clang), and with replay.c's main() (make check, any compiler), which
 * runs it on every file of the target's corpus.
 *
 * A target checks more than "no crash": what a parser accepts must be
 * what its callers rely on.  A broken promise aborts, which libFuzzer
 * reports as a finding and saves the input that caused it. */
#ifndef Q2S_FUZZ_H
#define Q2S_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(condition)                                             \
    do {                                                                  \
        if (!(condition)) {                                               \
            fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__,      \
                    __LINE__, #condition);                                \
            abort();                                                      \
        }                                                                 \
    } while (0)

/* A message as the programs print it: one line, not empty, no control
 * characters (a crafted input must not reach the terminal raw). */
static inline void fuzz_check_message(const char *message)
{
    FUZZ_CHECK(message[0] != '\0');
    for (const unsigned char *p = (const unsigned char *)message; *p; p++)
        FUZZ_CHECK(*p >= 0x20 && *p != 0x7f);
}

/* The input as a C string: up to its first NUL, as argv and file names
 * are.  The caller frees it. */
static inline char *fuzz_string(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);

    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

#endif
