#define _GNU_SOURCE
#include "export/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/fdio.h"
#include "error.h"

#define SINK_BUFFER_BYTES (1024 * 1024)
/* A bigger pipe means fewer wake-ups of the reader and of us. */
#define SINK_PIPE_BYTES (1024 * 1024)
/* One fast-path call moves at most this much (sendfile and splice take a
 * size_t but stop at about 2 GiB anyway). */
#define SINK_COPY_CHUNK (1024 * 1024 * 1024)

int q2s_sink_init(struct q2s_sink *sink, int fd,
                  const struct q2s_cancel *cancel,
                  struct q2s_error *err)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return q2s_error_set_errno(err, errno, "cannot inspect the output");
    sink->fd = fd;
    sink->cancel = cancel;
    sink->used = 0;
    sink->capacity = SINK_BUFFER_BYTES;
    sink->buffer = malloc(sink->capacity);
    if (!sink->buffer)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate the output "
                                   "buffer");
    if (S_ISFIFO(st.st_mode)) {
        sink->copy_method = Q2S_COPY_SPLICE;
        if (fcntl(fd, F_GETPIPE_SZ) < SINK_PIPE_BYTES)
            (void)fcntl(fd, F_SETPIPE_SZ, SINK_PIPE_BYTES);  /* best effort */
    } else if (S_ISREG(st.st_mode)) {
        sink->copy_method = Q2S_COPY_FILE_RANGE;
    } else {
        sink->copy_method = Q2S_COPY_SENDFILE;
    }
    return 0;
}

void q2s_sink_init_memory(struct q2s_sink *sink, void *buffer,
                          size_t capacity, const struct q2s_cancel *cancel)
{
    *sink = (struct q2s_sink){
        .fd = -1,
        .copy_method = Q2S_COPY_PREAD,
        .buffer = buffer,
        .capacity = capacity,
        .cancel = cancel,
    };
}

void q2s_sink_fini(struct q2s_sink *sink)
{
    if (sink->fd >= 0)
        free(sink->buffer);
    sink->buffer = NULL;
}

uint8_t *q2s_sink_room(struct q2s_sink *sink, uint64_t length)
{
    if (sink->fd >= 0 || length > sink->capacity - sink->used)
        return NULL;
    return sink->buffer + sink->used;
}

void q2s_sink_filled(struct q2s_sink *sink, size_t length)
{
    sink->used += length;
}

/* A caller's buffer is never flushed: the plan's ranges add up to it. */
static int memory_overflow(struct q2s_error *err)
{
    return q2s_error_set(err, ENOTRECOVERABLE, "internal error: more bytes "
                         "than the range asked for");
}

/* A signal that stops a write part way makes it return what it wrote,
 * not EINTR: so look before every call. */
static int check_interrupted(struct q2s_sink *sink, struct q2s_error *err)
{
    if (q2s_cancelled(sink->cancel))
        return q2s_error_set(err, ECANCELED, "interrupted");
    return 0;
}

/* After a common/fdio call failed: ECANCELED is the interrupt flag. */
static int fdio_error(struct q2s_error *err, const char *what)
{
    if (errno == ECANCELED)
        return q2s_error_set(err, ECANCELED, "interrupted");
    return q2s_error_set_errno(err, errno, "%s", what);
}

/* Waits until a non-blocking output can take more. */
static int wait_writable(struct q2s_sink *sink, struct q2s_error *err)
{
    if (q2s_wait_fd(sink->fd, POLLOUT, sink->cancel) < 0)
        return fdio_error(err, "cannot wait for the output");
    return 0;
}

/* After a failed call: 1 to try it again (interrupted, or a non-blocking
 * output that was full and now takes more), 0 if errno is the call's real
 * error, -1 if waiting failed. */
static int should_retry(struct q2s_sink *sink, struct q2s_error *err)
{
    if (errno == EINTR)
        return check_interrupted(sink, err) < 0 ? -1 : 1;
    if (errno == EAGAIN)
        return wait_writable(sink, err) < 0 ? -1 : 1;
    return 0;
}

static int write_all(struct q2s_sink *sink, const uint8_t *data, size_t length,
                     struct q2s_error *err)
{
    if (q2s_write_all(sink->fd, data, length, sink->cancel) < 0)
        return fdio_error(err, "write error");
    return 0;
}

int q2s_sink_flush(struct q2s_sink *sink, struct q2s_error *err)
{
    size_t used = sink->used;

    if (sink->fd < 0)
        return 0;
    sink->used = 0;
    return write_all(sink, sink->buffer, used, err);
}

int q2s_sink_write(struct q2s_sink *sink, const void *data, size_t length,
                   struct q2s_error *err)
{
    const uint8_t *p = data;

    /* A buffer's worth or more goes out as it is, not through a copy. */
    if (sink->used + length > sink->capacity ||
        (sink->fd >= 0 && length >= sink->capacity)) {
        if (sink->fd < 0)
            return memory_overflow(err);
        if (q2s_sink_flush(sink, err) < 0)
            return -1;
        if (length >= sink->capacity)
            return write_all(sink, p, length, err);
    }
    memcpy(sink->buffer + sink->used, p, length);
    sink->used += length;
    return 0;
}

/* Errors that mean "this call cannot do this pair", not "the data is bad". */
static bool fast_path_unsupported(int errnum)
{
    return errnum == EINVAL || errnum == ENOSYS || errnum == EOPNOTSUPP ||
           errnum == EXDEV || errnum == EBADF || errnum == ETXTBSY;
}

int q2s_sink_write_stable(struct q2s_sink *sink, const void *data,
                          size_t length, struct q2s_error *err)
{
    const uint8_t *p = data;

    if (sink->copy_method != Q2S_COPY_SPLICE ||
        length < sink->capacity - sink->used)
        return q2s_sink_write(sink, data, length, err);
    if (q2s_sink_flush(sink, err) < 0)
        return -1;
    while (length > 0) {
        struct iovec iov = { (void *)p, length };
        ssize_t n;

        if (check_interrupted(sink, err) < 0)
            return -1;
        n = vmsplice(sink->fd, &iov, 1, 0);
        if (n < 0) {
            int retry = should_retry(sink, err);

            if (retry < 0)
                return -1;
            if (retry > 0)
                continue;
            if (fast_path_unsupported(errno))
                return write_all(sink, p, length, err);
            return q2s_error_set_errno(err, errno, "write error");
        }
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

int q2s_sink_write_zeros(struct q2s_sink *sink, uint64_t length,
                         struct q2s_error *err)
{
    if (sink->fd < 0 && length > sink->capacity - sink->used)
        return memory_overflow(err);
    while (length > 0) {
        size_t room = sink->capacity - sink->used;
        size_t n = length < room ? (size_t)length : room;

        memset(sink->buffer + sink->used, 0, n);
        sink->used += n;
        length -= n;
        if (sink->used == sink->capacity && q2s_sink_flush(sink, err) < 0)
            return -1;
    }
    return 0;
}

/* One copy from the input's page cache straight into the caller's buffer,
 * where a read into the render buffer would add a second. */
static int copy_into_memory(struct q2s_sink *sink, int in_fd, uint64_t offset,
                            uint64_t length, uint64_t *copied,
                            struct q2s_error *err)
{
    size_t done;
    int ret;

    if (length > sink->capacity - sink->used)
        return memory_overflow(err);
    if (check_interrupted(sink, err) < 0)
        return -1;
    ret = q2s_pread_all(in_fd, sink->buffer + sink->used, (size_t)length,
                        offset, &done);
    sink->used += done;
    *copied = done;
    if (ret < 0)
        return q2s_error_set_errno(err, errno, "read error at input "
                                   "offset %llu",
                                   (unsigned long long)(offset + done));
    if (ret > 0)
        return q2s_error_set(err, ESTALE, "unexpected end of input at "
                             "offset %llu (did it shrink while being "
                             "read?)", (unsigned long long)(offset + done));
    return 0;
}

int q2s_sink_copy_fd(struct q2s_sink *sink, int in_fd, uint64_t offset,
                     uint64_t length, uint64_t *copied, struct q2s_error *err)
{
    uint64_t done = 0;

    *copied = 0;
    if (sink->copy_method == Q2S_COPY_NONE || length == 0)
        return 0;
    if (sink->copy_method == Q2S_COPY_PREAD)
        return copy_into_memory(sink, in_fd, offset, length, copied, err);
    if (q2s_sink_flush(sink, err) < 0)
        return -1;
    while (done < length) {
        size_t chunk = length - done < SINK_COPY_CHUNK
                           ? (size_t)(length - done) : SINK_COPY_CHUNK;
        loff_t in_offset = (loff_t)(offset + done);
        ssize_t n;

        if (check_interrupted(sink, err) < 0)
            return -1;

        switch (sink->copy_method) {
        case Q2S_COPY_SPLICE:
            n = splice(in_fd, &in_offset, sink->fd, NULL, chunk,
                       SPLICE_F_MORE);
            break;
        case Q2S_COPY_FILE_RANGE:
            n = copy_file_range(in_fd, &in_offset, sink->fd, NULL, chunk, 0);
            break;
        default:
            n = sendfile(sink->fd, in_fd, &in_offset, chunk);
            break;
        }
        if (n < 0) {
            int retry = should_retry(sink, err);

            if (retry < 0)
                return -1;
            if (retry > 0)
                continue;
            /* The caller writes the rest, from *copied on, itself; a
             * real fault of the output shows up again there. */
            if (fast_path_unsupported(errno)) {
                sink->copy_method = Q2S_COPY_NONE;
                return 0;
            }
            if (errno == EPIPE)
                return q2s_error_set_errno(err, errno, "write error");
            return q2s_error_set_errno(err, errno, "cannot copy input bytes "
                                       "%llu to %llu to the output",
                                       (unsigned long long)(offset + done),
                                       (unsigned long long)(offset + length));
        }
        if (n == 0)
            return q2s_error_set(err, ESTALE,
                                 "unexpected end of input at offset %llu "
                                 "(did it shrink while being read?)",
                                 (unsigned long long)(offset + done));
        done += (uint64_t)n;
        *copied = done;
    }
    return 0;
}
