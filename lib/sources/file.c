/* The raw input: a regular file or a block device. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fdio.h"
#include "error.h"
#include "source.h"
#include "sources/file.h"

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
 * (0.14 s against 0.21 s for 2048 runs of 128 KiB). */
#define DIRECT_READ_MIN_BYTES (1024 * 1024)
/* What O_DIRECT wants aligned: buffer, offset and length (a page covers
 * every logical block size). */
#define DIRECT_ALIGNMENT 4096

struct file_source {
    struct q2s_source source;  /* first, so that the two convert */
    int fd;
    int direct_fd;  /* a block device opened again with O_DIRECT, or -1 */
    bool is_block_device;
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
        close(file->direct_fd);
        file->direct_fd = -1;
    }
    return q2s_pread_full(file->fd, buf, length, offset, file->path, err);
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

    if (file->is_block_device)
        posix_fadvise(file->fd, (off_t)offset, (off_t)length,
                      POSIX_FADV_WILLNEED);
}

static void file_close(struct q2s_source *source)
{
    if (file_source_of(source)->direct_fd >= 0)
        close(file_source_of(source)->direct_fd);
    close(file_source_of(source)->fd);
    free(source);
}

static const struct q2s_source_ops file_ops = {
    .next_data = file_next_data,
    .read = file_read,
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
