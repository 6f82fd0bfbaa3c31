/* A raw image that can be read only once, in order: a pipe or a socket on
 * standard input.
 *
 * The scan needs the size before it starts and the writing needs the data
 * again, so opening reads the whole stream and keeps its non-zero 512-byte
 * sectors, packed, in an unlinked file in a directory that the caller
 * chooses (the program's $TMPDIR): the disk space it takes is the size of
 * the data, not of the virtual disk.  The source then answers from that
 * file, and all-zero sectors read as holes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bits.h"
#include "common/fdio.h"
#include "common/zero.h"
#include "error.h"
#include "export/runs.h"
#include "export/source.h"
#include "export/sources/stream.h"

#define SECTOR_BYTES 512
#define SECTOR_BITS 9
#define STREAM_READ_BYTES (1024 * 1024)

struct stream_source {
    struct q2s_source source;  /* first */
    int spool_fd;
    struct q2s_runs sectors;  /* the non-zero sectors; rank = where kept */
    char name[];
};

static struct stream_source *stream_of(struct q2s_source *source)
{
    return (struct stream_source *)source;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static int stream_next_data(struct q2s_source *source, uint64_t offset,
                            uint64_t *start, uint64_t *end,
                            struct q2s_error *err)
{
    struct stream_source *stream = stream_of(source);
    size_t i = q2s_runs_search(&stream->sectors, offset >> SECTOR_BITS);
    const struct q2s_run *run;

    (void)err;
    if (i == stream->sectors.count)
        return 0;
    run = &stream->sectors.runs[i];
    *start = run->start << SECTOR_BITS;
    if (*start < offset)
        *start = offset;
    *end = min_u64((run->start + run->length) << SECTOR_BITS, source->size);
    return 1;
}

/* Where offset lies in the spool file, and how many bytes from there on
 * are kept contiguously; 0 if offset is in a zero sector. */
static uint64_t spool_extent(struct stream_source *stream, uint64_t offset,
                             uint64_t *spool_offset)
{
    size_t i = q2s_runs_search(&stream->sectors, offset >> SECTOR_BITS);
    const struct q2s_run *run;
    uint64_t run_start;

    if (i == stream->sectors.count)
        return 0;
    run = &stream->sectors.runs[i];
    run_start = run->start << SECTOR_BITS;
    if (offset < run_start)
        return 0;
    *spool_offset = (run->rank << SECTOR_BITS) + (offset - run_start);
    return min_u64((run->start + run->length) << SECTOR_BITS,
                   stream->source.size) - offset;
}

/* Bytes from offset up to the next kept sector (or the end). */
static uint64_t zeros_until_data(struct stream_source *stream, uint64_t offset)
{
    size_t i = q2s_runs_search(&stream->sectors, offset >> SECTOR_BITS);

    if (i == stream->sectors.count)
        return stream->source.size - offset;
    return min_u64(stream->sectors.runs[i].start << SECTOR_BITS,
                   stream->source.size) - offset;
}

static int stream_read(struct q2s_source *source, void *buf, size_t length,
                       uint64_t offset, struct q2s_error *err)
{
    struct stream_source *stream = stream_of(source);
    uint8_t *p = buf;

    while (length > 0) {
        uint64_t spool_offset = 0;
        uint64_t kept = spool_extent(stream, offset, &spool_offset);
        size_t n;

        if (kept == 0) {
            n = (size_t)min_u64(length, zeros_until_data(stream, offset));
            memset(p, 0, n);
        } else {
            ssize_t got;

            n = (size_t)min_u64(length, kept);
            got = pread(stream->spool_fd, p, n, (off_t)spool_offset);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                return q2s_error_set_errno(err, got < 0 ? errno : EIO,
                                           "%s: cannot read back the data "
                                           "kept for offset %llu",
                                           stream->name,
                                           (unsigned long long)offset);
            n = (size_t)got;
        }
        p += n;
        length -= n;
        offset += n;
    }
    return 0;
}

static uint64_t stream_locate(struct q2s_source *source, uint64_t offset,
                              uint64_t length, int *fd, uint64_t *fd_offset)
{
    struct stream_source *stream = stream_of(source);
    uint64_t kept = spool_extent(stream, offset, fd_offset);

    *fd = stream->spool_fd;
    return min_u64(kept, length);
}

static int stream_check_size(struct q2s_source *source, struct q2s_error *err)
{
    (void)source;
    (void)err;
    return 0;  /* what was read is kept: it cannot change */
}

static void stream_close(struct q2s_source *source)
{
    struct stream_source *stream = stream_of(source);

    if (stream->spool_fd >= 0)
        close(stream->spool_fd);
    q2s_runs_free(&stream->sectors);
    free(stream);
}

static const struct q2s_source_ops stream_ops = {
    .next_data = stream_next_data,
    .read = stream_read,
    .locate = stream_locate,
    .check_size = stream_check_size,
    .close = stream_close,
};

/* An unlinked file in dir, gone when closed, whatever happens. */
static int open_spool(const char *dir, struct q2s_error *err)
{
    int fd = q2s_open_unlinked(dir);

    if (fd < 0)
        q2s_error_set_errno(err, errno, "cannot create a temporary file in "
                            "%s", dir);
    return fd;
}

/* Waits until the input has data (or its end) to read: 1, or 0 when the
 * wait timed out.  Waiting in poll(), never in read(), does for a pipe
 * with O_NONBLOCK set (the descriptor may be shared with a parent that
 * set it, so it is left as it is) and closes the gap in which a signal
 * caught just before a blocking read() would not interrupt it. */
static int wait_readable(struct stream_source *stream, int fd,
                         struct q2s_error *err)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int ready = poll(&pfd, 1, Q2S_POLL_MILLISECONDS);

    if (ready < 0 && errno != EINTR)
        return q2s_error_set_errno(err, errno, "%s: cannot wait for data",
                                   stream->name);
    return ready > 0;
}

/* Fills buf from fd; returns the bytes read, fewer only at the end. */
static ssize_t read_full(struct stream_source *stream, int fd, uint8_t *buf,
                         size_t length, struct q2s_error *err)
{
    size_t done = 0;

    while (done < length) {
        ssize_t n;
        int ready;

        /* Looked at before every read: a writer faster than the tool
         * never makes a read fail with EINTR. */
        if (q2s_source_interrupted(&stream->source))
            return q2s_error_set(err, ECANCELED, "interrupted");
        ready = wait_readable(stream, fd, err);
        if (ready < 0)
            return -1;
        if (ready == 0)
            continue;
        n = read(fd, buf + done, length - done);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return q2s_error_set_errno(err, errno, "%s: read error at offset "
                                       "%llu", stream->name,
                                       (unsigned long long)
                                       (stream->source.size + done));
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Reads the stream to its end, keeping the non-zero sectors. */
static int spool(struct stream_source *stream, int fd, struct q2s_error *err)
{
    uint8_t *buffer;
    int ret = -1;

    if (posix_memalign((void **)&buffer, 4096, STREAM_READ_BYTES) != 0)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate a buffer");
    for (;;) {
        ssize_t got = read_full(stream, fd, buffer, STREAM_READ_BYTES, err);
        size_t padded, kept_from = 0, kept = 0;

        if (got < 0)
            goto out;
        if (got == 0)
            break;
        /* A last partial sector counts as a whole one, padded with zeros. */
        padded = (size_t)q2s_round_up((uint64_t)got, SECTOR_BYTES);
        memset(buffer + got, 0, padded - (size_t)got);
        for (size_t off = 0; off <= padded; off += SECTOR_BYTES) {
            bool data = off < padded && !q2s_is_zero(buffer + off,
                                                     SECTOR_BYTES);

            if (data) {
                if (kept == 0)
                    kept_from = off;
                kept += SECTOR_BYTES;
                if (q2s_runs_add(&stream->sectors,
                                 (stream->source.size + off) >> SECTOR_BITS,
                                 1) < 0) {
                    q2s_error_set_errno(err, errno, "cannot record the data");
                    goto out;
                }
                continue;
            }
            /* Write each run of kept sectors at once. */
            if (kept > 0 &&
                q2s_write_all(stream->spool_fd, buffer + kept_from, kept,
                              NULL) < 0) {
                q2s_error_set_errno(err, errno, "cannot keep the data of %s "
                                    "in a temporary file", stream->name);
                goto out;
            }
            kept = 0;
        }
        if (__builtin_add_overflow(stream->source.size, (uint64_t)got,
                                   &stream->source.size)) {
            q2s_error_set(err, EFBIG, "%s: too large", stream->name);
            goto out;
        }
        if ((size_t)got < STREAM_READ_BYTES)
            break;
    }
    ret = 0;
out:
    free(buffer);
    return ret;
}

int q2s_source_open_stream(int fd, const char *name, const char *tmpdir,
                           const volatile sig_atomic_t *interrupted,
                           struct q2s_source **result, struct q2s_error *err)
{
    struct stream_source *stream = calloc(1, sizeof *stream + strlen(name) + 1);

    if (!stream)
        return q2s_error_set_errno(err, ENOMEM, "%s", name);
    stream->source.ops = &stream_ops;
    stream->source.read_bytes = STREAM_READ_BYTES;
    stream->source.spooled = true;
    stream->source.any_thread = true;
    stream->source.cancel.flag = interrupted;
    strcpy(stream->name, name);
    q2s_runs_init(&stream->sectors);
    stream->spool_fd = open_spool(tmpdir, err);
    if (stream->spool_fd < 0 || spool(stream, fd, err) < 0) {
        stream_close(&stream->source);
        return -1;
    }
    *result = &stream->source;
    return 0;
}
