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

#include "common/cancel.h"
#include "error.h"

enum q2s_sink_copy_method {
    Q2S_COPY_SPLICE,
    Q2S_COPY_FILE_RANGE,
    Q2S_COPY_SENDFILE,
    Q2S_COPY_PREAD,  /* into a caller's buffer */
    Q2S_COPY_NONE,   /* plain writes only */
};

struct q2s_sink {
    int fd;            /* -1 for a caller's buffer */
    enum q2s_sink_copy_method copy_method;
    uint8_t *buffer;
    size_t used;
    size_t capacity;
    const struct q2s_cancel *cancel;
};

/* A blocked write that a signal interrupts fails if cancel says so, and
 * is tried again otherwise. */
int q2s_sink_init(struct q2s_sink *sink, int fd,
                  const struct q2s_cancel *cancel,
                  struct q2s_error *err);
/* A sink that fills buffer, of exactly capacity bytes, for q2s_pread():
 * writes go straight to it, and input bytes are read into it. */
void q2s_sink_init_memory(struct q2s_sink *sink, void *buffer,
                          size_t capacity, const struct q2s_cancel *cancel);
/* Frees the buffer; does not flush it or close the descriptor. */
void q2s_sink_fini(struct q2s_sink *sink);

int q2s_sink_write(struct q2s_sink *sink, const void *data, size_t length,
                   struct q2s_error *err);
/* The same for bytes that stay as they are, mapped, for as long as the
 * output's reader may come to them (memory the caller never writes again
 * and only unmaps, never reuses): into a pipe they go by reference
 * (vmsplice), with no copy. */
int q2s_sink_write_stable(struct q2s_sink *sink, const void *data,
                          size_t length, struct q2s_error *err);
int q2s_sink_write_zeros(struct q2s_sink *sink, uint64_t length,
                         struct q2s_error *err);
int q2s_sink_flush(struct q2s_sink *sink, struct q2s_error *err);

/* For a caller's buffer: where the next length bytes go, for the caller
 * to fill and then pass to q2s_sink_filled(); NULL for a descriptor, or
 * when they would not fit. */
uint8_t *q2s_sink_room(struct q2s_sink *sink, uint64_t length);
void q2s_sink_filled(struct q2s_sink *sink, size_t length);

/* Copies bytes [offset, offset + length) of in_fd without passing them
 * through user space.  *copied tells how many went; less than length (even
 * 0) without an error means the fast path is not available for this pair
 * of descriptors and the caller must write the rest itself. */
int q2s_sink_copy_fd(struct q2s_sink *sink, int in_fd, uint64_t offset,
                     uint64_t length, uint64_t *copied,
                     struct q2s_error *err);

#endif
