#define _GNU_SOURCE
#include "error.h"

#include <stdarg.h>
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
