/* The output: sequential writes to one descriptor, never a seek.
 *
 * Small writes are gathered in a buffer.  Input bytes that need no change
 * can go straight from an input descriptor with the fastest call that the
 * output allows: splice into a pipe, copy_file_range into a regular file,
 * sendfile into anything else. */
#ifndef Q2S_SINK_H
#define Q2S_SINK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qcow2-to-stdout.h"

enum q2s_sink_copy_method {
    Q2S_COPY_SPLICE,
    Q2S_COPY_FILE_RANGE,
    Q2S_COPY_SENDFILE,
    Q2S_COPY_NONE,  /* plain writes only */
};

struct q2s_sink {
    int fd;
    enum q2s_sink_copy_method copy_method;
    uint8_t *buffer;
    size_t used;
    size_t capacity;
    const volatile sig_atomic_t *interrupted;  /* may be NULL */
};

/* A blocked write that a signal interrupts fails if *interrupted is set
 * (interrupted may be NULL), and is tried again otherwise. */
int q2s_sink_init(struct q2s_sink *sink, int fd,
                  const volatile sig_atomic_t *interrupted,
                  struct q2s_error *err);
/* Frees the buffer; does not flush it or close the descriptor. */
void q2s_sink_fini(struct q2s_sink *sink);

int q2s_sink_write(struct q2s_sink *sink, const void *data, size_t length,
                   struct q2s_error *err);
int q2s_sink_write_zeros(struct q2s_sink *sink, uint64_t length,
                         struct q2s_error *err);
int q2s_sink_flush(struct q2s_sink *sink, struct q2s_error *err);

/* Copies bytes [offset, offset + length) of in_fd without passing them
 * through user space.  *copied tells how many went; less than length (even
 * 0) without an error means the fast path is not available for this pair
 * of descriptors and the caller must write the rest itself. */
int q2s_sink_copy_fd(struct q2s_sink *sink, int in_fd, uint64_t offset,
                     uint64_t length, uint64_t *copied,
                     struct q2s_error *err);

#endif
