/* The raw input: a regular file or a block device. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fdio.h"
#include "error.h"
#include "export/source.h"
#include "export/sources/file.h"

/* Large enough to make few system calls, small enough to stay in cache
 * between the read and the zero check. */
#define FILE_READ_BYTES (1024 * 1024)
/* A block device has no holes to skip, so all of it is read, and the size
 * of each read sets the size of the requests it sees: the kernel's
 * readahead for a read grows to the read's size (up to the device's
 * largest request) even when the device's read_ahead_kb is small.  1 MiB
 * reads made 1 MiB requests on a device with the usual 128 KiB readahead,
 * where dd bs=4M, the yardstick, made requests of the device's maximum. */
#define BLOCK_DEVICE_READ_BYTES (4 * 1024 * 1024)
/* With source.read_once, reads at least this large, aligned, go to a
 * block device with O_DIRECT.  Through its page cache, reading a whole
 * device costs pages to allocate and, at the last close, to drop: a loop
 * device read 4 GiB in 0.5 s direct, 0.65 to 9 s buffered as memory was
 * tight or not.  Smaller reads (the scattered runs of a map) stay
 * buffered, where read-ahead serves them better than a wait for each
 * (0.14 s against 0.21 s for 2048 runs of 128 KiB) -- unless they come
 * in a batch, whose reads are all in flight at once (Linux AIO): direct
 * then, whatever their size. */
#define DIRECT_READ_MIN_BYTES (1024 * 1024)
/* What O_DIRECT wants aligned: buffer, offset and length (a page covers
 * every logical block size). */
#define DIRECT_ALIGNMENT 4096

struct file_source {
    struct q2s_source source;  /* first, so that the two convert */
    int fd;
    int direct_fd;  /* a block device opened again with O_DIRECT, or -1 */
    bool is_block_device;
    /* For batches of direct reads: a Linux AIO context made at the first
     * (0 until then), and whether making one failed (none then). */
    aio_context_t aio;
    bool aio_refused;
    char path[];
};

static struct file_source *file_source_of(struct q2s_source *source)
{
    return (struct file_source *)source;
}

static int file_next_data(struct q2s_source *source, uint64_t offset,
                          uint64_t *start, uint64_t *end,
                          struct q2s_error *err)
{
    struct file_source *file = file_source_of(source);
    off_t data, hole;

    if (offset >= source->size)
        return 0;
    /* Block devices report no holes; scan them whole. */
    if (file->is_block_device)
        goto all_data;
    data = lseek(file->fd, (off_t)offset, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO)
            return 0;
        if (errno == EINVAL || errno == EOPNOTSUPP)
            goto all_data;
        return q2s_error_set_errno(err, errno, "%s: cannot find data at "
                                   "offset %llu", file->path,
                                   (unsigned long long)offset);
    }
    if ((uint64_t)data >= source->size)
        return 0;
    hole = lseek(file->fd, data, SEEK_HOLE);
    if (hole < 0)
        return q2s_error_set_errno(err, errno, "%s: cannot find a hole at "
                                   "offset %llu", file->path,
                                   (unsigned long long)data);
    *start = (uint64_t)data;
    *end = (uint64_t)hole < source->size ? (uint64_t)hole : source->size;
    return 1;

all_data:
    *start = offset;
    *end = source->size;
    return 1;
}

static bool direct_read_fits(const struct file_source *file, const void *buf,
                             size_t length, uint64_t offset)
{
    return file->source.read_once && file->direct_fd >= 0 &&
           length >= DIRECT_READ_MIN_BYTES &&
           (uintptr_t)buf % DIRECT_ALIGNMENT == 0 &&
           offset % DIRECT_ALIGNMENT == 0 && length % DIRECT_ALIGNMENT == 0;
}

/* Direct reads refused after all, or short: through the page cache from
 * now on. */
static void stop_direct(struct file_source *file)
{
    close(file->direct_fd);
    file->direct_fd = -1;
}

static int file_read(struct q2s_source *source, void *buf, size_t length,
                     uint64_t offset, struct q2s_error *err)
{
    struct file_source *file = file_source_of(source);

    if (direct_read_fits(file, buf, length, offset)) {
        if (q2s_pread_full(file->direct_fd, buf, length, offset, file->path,
                           err) == 0)
            return 0;
        if (err->code != EINVAL && err->code != ESTALE)
            return -1;
        /* Refused after all, or short: through the page cache from now
         * on, this read included (which reports a short one). */
        stop_direct(file);
    }
    return q2s_pread_full(file->fd, buf, length, offset, file->path, err);
}

/* Whether the reads of a batch may go direct, all in flight at once. */
static bool direct_batch_fits(struct file_source *file,
                              const struct q2s_read *reads, size_t count)
{
    if (!file->source.read_once || file->direct_fd < 0 || file->aio_refused)
        return false;
    for (size_t i = 0; i < count; i++)
        if ((uintptr_t)reads[i].buf % DIRECT_ALIGNMENT != 0 ||
            reads[i].offset % DIRECT_ALIGNMENT != 0 ||
            reads[i].length % DIRECT_ALIGNMENT != 0)
            return false;
    if (file->aio == 0 &&
        syscall(SYS_io_setup, Q2S_READ_BATCH_MAX, &file->aio) < 0) {
        file->aio = 0;
        file->aio_refused = true;
        return false;
    }
    return true;
}

/* Waits for the reads in flight until none is: their buffers are the
 * caller's.  Records the first failure: its read's index in *failed and
 * its result (negative errno, or bytes read if short) in *failed_res. */
static int reap(struct file_source *file, const struct iocb *iocbs,
                size_t in_flight, const struct q2s_read *reads,
                size_t *failed, int64_t *failed_res)
{
    struct io_event events[Q2S_READ_BATCH_MAX];

    while (in_flight > 0) {
        long got = syscall(SYS_io_getevents, file->aio, 1L, (long)in_flight,
                           events, NULL);

        if (got < 0) {
            if (errno == EINTR)
                continue;
            /* Cannot happen with a valid context; destroying it waits for
             * what is in flight. */
            syscall(SYS_io_destroy, file->aio);
            file->aio = 0;
            file->aio_refused = true;
            return -1;
        }
        for (long i = 0; i < got; i++) {
            size_t index = (size_t)((const struct iocb *)(uintptr_t)
                                        events[i].obj - iocbs);

            if (events[i].res != (int64_t)reads[index].length &&
                index < *failed) {
                *failed = index;
                *failed_res = events[i].res;
            }
        }
        in_flight -= (size_t)got;
    }
    return 0;
}

/* The batch's reads, all in flight at once on the direct fd.  1: to be
 * read through the page cache instead (direct reads refused, or a short
 * one, which a buffered read then reports). */
static int direct_batch(struct file_source *file, const struct q2s_read *reads,
                        size_t count, struct q2s_error *err)
{
    struct iocb iocbs[Q2S_READ_BATCH_MAX];
    struct iocb *pointers[Q2S_READ_BATCH_MAX];
    size_t submitted = 0, failed = count;
    int64_t failed_res = 0;
    int submit_errno = 0;

    for (size_t i = 0; i < count; i++) {
        iocbs[i] = (struct iocb){
            .aio_fildes = (uint32_t)file->direct_fd,
            .aio_lio_opcode = IOCB_CMD_PREAD,
            .aio_buf = (uint64_t)(uintptr_t)reads[i].buf,
            .aio_nbytes = reads[i].length,
            .aio_offset = (int64_t)reads[i].offset,
        };
        pointers[i] = &iocbs[i];
    }
    while (submitted < count) {
        long done = syscall(SYS_io_submit, file->aio,
                            (long)(count - submitted), pointers + submitted);

        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0) {
            submit_errno = done < 0 ? errno : EAGAIN;
            break;
        }
        submitted += (size_t)done;
    }
    if (reap(file, iocbs, submitted, reads, &failed, &failed_res) < 0 ||
        (submit_errno != 0 && submit_errno != EINVAL))
        return 1;  /* read again, buffered, and reported as such */
    if (submit_errno == EINVAL || failed_res == -EINVAL ||
        (failed < count && failed_res >= 0)) {
        stop_direct(file);
        return 1;
    }
    if (failed < count)
        return q2s_error_set_errno(err, (int)-failed_res, "%s: read error "
                                   "at offset %llu", file->path,
                                   (unsigned long long)reads[failed].offset);
    return 0;
}

static int file_read_batch(struct q2s_source *source,
                           const struct q2s_read *reads, size_t count,
                           struct q2s_error *err)
{
    struct file_source *file = file_source_of(source);

    if (direct_batch_fits(file, reads, count)) {
        int ret = direct_batch(file, reads, count, err);

        if (ret <= 0)
            return ret;
    }
    for (size_t i = 0; i < count; i++)
        if (file_read(source, reads[i].buf, reads[i].length, reads[i].offset,
                      err) < 0)
            return -1;
    return 0;
}

/* The same device again, with O_DIRECT; -1 where that is refused. */
static int open_direct(int fd)
{
    char path[64];

    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return open(path, O_RDONLY | O_DIRECT | O_CLOEXEC | O_NOCTTY);
}

static int file_check_size(struct q2s_source *source, struct q2s_error *err)
{
    struct file_source *file = file_source_of(source);
    uint64_t size;

    if (q2s_fd_size(file->fd, &size) < 0)
        return q2s_error_set_errno(err, errno, "%s: cannot get its size",
                                   file->path);
    if (size != source->size)
        return q2s_error_set(err, ESTALE,
                             "%s: its size changed from %llu to %llu "
                             "bytes during the conversion", file->path,
                             (unsigned long long)source->size,
                             (unsigned long long)size);
    return 0;
}

/* The input's bytes are the file's, at the same offsets. */
static uint64_t file_locate(struct q2s_source *source, uint64_t offset,
                            uint64_t length, int *fd, uint64_t *fd_offset)
{
    *fd = file_source_of(source)->fd;
    *fd_offset = offset;
    return length;
}

/* The kernel reads ahead in the background (readahead(2) would wait for
 * the reads on a block device).  Only for block devices, whose reads wait
 * for a device: a regular file's data is mostly in the page cache, where
 * a system call per run would cost more than it saves. */
static void file_prefetch(struct q2s_source *source, uint64_t offset,
                          uint64_t length)
{
    struct file_source *file = file_source_of(source);

    /* Not for direct reads, which the page cache does not serve. */
    if (file->is_block_device &&
        !(source->read_once && file->direct_fd >= 0 && !file->aio_refused))
        posix_fadvise(file->fd, (off_t)offset, (off_t)length,
                      POSIX_FADV_WILLNEED);
}

static void file_close(struct q2s_source *source)
{
    if (file_source_of(source)->aio != 0)
        syscall(SYS_io_destroy, file_source_of(source)->aio);
    if (file_source_of(source)->direct_fd >= 0)
        close(file_source_of(source)->direct_fd);
    close(file_source_of(source)->fd);
    free(source);
}

static const struct q2s_source_ops file_ops = {
    .next_data = file_next_data,
    .read = file_read,
    .read_batch = file_read_batch,
    .locate = file_locate,
    .prefetch = file_prefetch,
    .check_size = file_check_size,
    .close = file_close,
};

/* Takes fd, open on a regular file or a block device, and closes it on
 * failure too. */
int q2s_source_open_fd(int fd, const char *name, struct q2s_source **result,
                       struct q2s_error *err)
{
    struct file_source *file;
    struct stat st;

    if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
        close(fd);
        return q2s_error_set(err, ESTALE,
                             "%s: changed while being opened", name);
    }
    file = calloc(1, sizeof *file + strlen(name) + 1);
    if (!file) {
        close(fd);
        return q2s_error_set_errno(err, ENOMEM, "%s", name);
    }
    file->source.ops = &file_ops;
    file->source.read_bytes =
        S_ISBLK(st.st_mode) ? BLOCK_DEVICE_READ_BYTES : FILE_READ_BYTES;
    file->source.raw_file = true;
    file->source.any_thread = true;
    file->fd = fd;
    file->is_block_device = S_ISBLK(st.st_mode);
    file->direct_fd = file->is_block_device ? open_direct(fd) : -1;
    strcpy(file->path, name);
    if (q2s_fd_size(fd, &file->source.size) < 0) {
        q2s_error_set_errno(err, errno, "%s: cannot get its size", name);
        file_close(&file->source);
        return -1;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    *result = &file->source;
    return 0;
}

int q2s_source_open_file(const char *path, struct q2s_source **result,
                         struct q2s_error *err)
{
    struct stat st;
    int fd;

    if (q2s_stat_input(path, &st, err) < 0)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return q2s_error_set_errno(err, errno, "%s", path);
    return q2s_source_open_fd(fd, path, result, err);
}
