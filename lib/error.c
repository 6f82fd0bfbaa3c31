#define _GNU_SOURCE
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

int q2s_error_set(struct q2s_error *err, int code, const char *fmt, ...)
{
    va_list ap;

    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int q2s_error_set_errno(struct q2s_error *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    size_t used;

    err->code = errnum;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    used = strlen(err->message);
    snprintf(err->message + used, sizeof err->message - used, ": %s",
             strerror(errnum));
    return -1;
}

/* Handed out when even a copy of an error cannot be allocated; never
 * freed, never written. */
static const struct q2s_error out_of_memory = {
    .message = "out of memory",
    .code = ENOMEM,
};

/* Writes message into out (of size bytes) as one line: each control
 * character as a C escape (\n, \r, \t, \x1b), as the program writes
 * its own messages; cut short, never in the middle of an escape, if it
 * does not fit. */
static void one_line(char *out, size_t size, const char *message)
{
    size_t used = 0;

    for (const unsigned char *c = (const unsigned char *)message; *c; c++) {
        char escape[5];
        size_t n;

        if (*c == '\n')
            n = (size_t)snprintf(escape, sizeof escape, "\\n");
        else if (*c == '\r')
            n = (size_t)snprintf(escape, sizeof escape, "\\r");
        else if (*c == '\t')
            n = (size_t)snprintf(escape, sizeof escape, "\\t");
        else if (*c < 0x20 || *c == 0x7f)
            n = (size_t)snprintf(escape, sizeof escape, "\\x%02x", *c);
        else
            n = (size_t)snprintf(escape, sizeof escape, "%c", *c);
        if (used + n >= size)
            break;
        memcpy(out + used, escape, n);
        used += n;
    }
    out[used] = '\0';
}

/* The message is one line even when a name the caller gave, or what a
 * server or QEMU said, holds newlines or escapes. */
int q2s_error_give(struct q2s_error **error, const struct q2s_error *err)
{
    struct q2s_error *copy;

    if (!error)
        return -1;
    copy = malloc(sizeof *copy);
    if (copy) {
        copy->code = err->code;
        one_line(copy->message, sizeof copy->message, err->message);
    }
    *error = copy ? copy : (struct q2s_error *)&out_of_memory;
    return -1;
}

void q2s_error_free(struct q2s_error *error)
{
    if (error != &out_of_memory)
        free(error);
}

int q2s_error_code(const struct q2s_error *error)
{
    return error->code;
}

const char *q2s_error_message(const struct q2s_error *error)
{
    return error->message;
}
