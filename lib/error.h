/* Filling a struct q2s_error: the core reports, the caller prints. */
#ifndef Q2S_ERROR_H
#define Q2S_ERROR_H

#include "qcow2_to_stdout.h"

/* Both return -1 so that "return q2s_error_set(...)" reads naturally. */
int q2s_error_set(struct q2s_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends ": strerror(errnum)". */
int q2s_error_set_errno(struct q2s_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
