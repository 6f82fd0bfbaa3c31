/* Filling a struct q2s_error: the core reports, the caller prints. */
#ifndef Q2S_ERROR_H
#define Q2S_ERROR_H

#include "qcow2-to-stdout.h"

/* Opaque in the public header, which hands out copies (api.c). */
struct q2s_error {
    char message[512];
    int code;  /* an errno value */
};

/* Both return -1 so that "return q2s_error_set(...)" reads naturally.
 * code is an errno value that says what kind of failure it is, for a
 * program to act on: EINVAL for options or arguments that cannot be used,
 * EFBIG for an image past a limit of qcow2 or QEMU, ECANCELED when
 * interrupted, ETIMEDOUT for a server that stopped answering, ESTALE for
 * an input that changed while being converted, EPROTO for an input or
 * server that answered nonsense, EPERM for an image refused as untrusted,
 * ENOTRECOVERABLE for a bug of ours; what a system call said otherwise. */
int q2s_error_set(struct q2s_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends ": strerror(errnum)"; the code is errnum. */
int q2s_error_set_errno(struct q2s_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Gives the caller of a public function a copy of err in *error (if
 * error is not NULL), its message made one line: each control character
 * a C escape.  Returns -1, for "return q2s_error_give(...)". */
int q2s_error_give(struct q2s_error **error, const struct q2s_error *err);

#endif
