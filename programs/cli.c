/* Numbers and sizes on the command line (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

bool cli_parse_size(const char *text, uint64_t *value)
{
    static const char suffixes[] = "KMGTPE";
    unsigned long long n;
    const char *suffix;
    char *end;

    /* strtoull() would take spaces and a sign, and wrap "-1". */
    if (*text < '0' || *text > '9')
        return false;
    errno = 0;
    n = strtoull(text, &end, 10);
    if (errno != 0)
        return false;
    if (*end != '\0') {
        /* Upper case by clearing bit 5, which makes a space a NUL: that
         * strchr() would find at the end of suffixes. */
        char upper = (char)(end[0] & ~0x20);

        suffix = upper ? strchr(suffixes, upper) : NULL;
        if (!suffix || end[1] != '\0')
            return false;
        for (long i = 0; i <= suffix - suffixes; i++) {
            if (n > UINT64_MAX / 1024)
                return false;
            n *= 1024;
        }
    }
    *value = n;
    return true;
}

bool cli_parse_int(const char *text, int *value)
{
    long n;
    char *end;

    /* strtol() would skip spaces first. */
    if (text[0] != '-' && text[0] != '+' && (text[0] < '0' || text[0] > '9'))
        return false;
    errno = 0;
    n = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || n < INT_MIN + 1 ||
        n > INT_MAX)
        return false;
    *value = (int)n;
    return true;
}
