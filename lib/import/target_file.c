/* Targets on a descriptor: a regular file (written at its offsets, left
 * sparse), a block device (zeroed with BLKZEROOUT), and, for anything
 * else, a stream (target_stream.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fdio.h"
#include "import/target.h"

struct fd_state {
    int fd;
    bool own_fd;
    uint64_t unflushed;  /* bytes written since writeback was started */
};

/* With a flush at the end, writeback is started every WRITEBACK_BYTES,
 * without waiting for it: the disk writes while the stream is read, and
 * the flush has little left to wait for (it waited 2 s for 2 GiB when all
 * came at once). */
#define WRITEBACK_BYTES (32u * 1024 * 1024)

static int fd_of(const struct q2s_target *target)
{
    return ((const struct fd_state *)target->state)->fd;
}

static int fd_write(struct q2s_target *target, const uint8_t *buf,
                    size_t length, uint64_t offset, struct q2s_error *err)
{
    struct fd_state *state = target->state;

    if (q2s_pwrite_all(state->fd, buf, length, offset) < 0)
        return q2s_error_set_errno(err, errno, "cannot write to %s",
                                   target->name);
    state->unflushed += length;
    if (target->flush && state->unflushed >= WRITEBACK_BYTES) {
        state->unflushed = 0;
        /* Best effort: a file system without it flushes at the end. */
        sync_file_range(state->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
    return 0;
}

/* A hole in a file reads as zeros; a file system without holes gets
 * zeros written. */
static int file_zero(struct q2s_target *target, uint64_t offset,
                     uint64_t length, struct q2s_error *err)
{
    if (fallocate(fd_of(target), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)offset, (off_t)length) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS)
        return q2s_error_set_errno(err, errno, "cannot zero a range of %s",
                                   target->name);
    return import_target_write_zeros(target, offset, length, err);
}

/* BLKZEROOUT takes 512-byte sectors; the ends of a range that is not
 * aligned, and devices that do not take it, get zeros written. */
static int device_zero(struct q2s_target *target, uint64_t offset,
                       uint64_t length, struct q2s_error *err)
{
    uint64_t end = offset + length;
    uint64_t aligned_start = (offset + 511) & ~UINT64_C(511);
    uint64_t aligned_end = end & ~UINT64_C(511);

    if (aligned_start < aligned_end) {
        uint64_t range[2] = {aligned_start, aligned_end - aligned_start};

        if (ioctl(fd_of(target), BLKZEROOUT, range) == 0) {
            if (import_target_write_zeros(target, offset,
                                          aligned_start - offset, err) < 0)
                return -1;
            return import_target_write_zeros(target, aligned_end,
                                             end - aligned_end, err);
        }
        if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EINVAL)
            return q2s_error_set_errno(err, errno, "cannot zero a range of "
                                       "%s", target->name);
    }
    return import_target_write_zeros(target, offset, length, err);
}

static int fd_finish(struct q2s_target *target, struct q2s_error *err)
{
    if (target->flush && fdatasync(fd_of(target)) < 0 && errno != EINVAL)
        return q2s_error_set_errno(err, errno, "cannot flush %s",
                                   target->name);
    return 0;
}

static void fd_close(struct q2s_target *target)
{
    struct fd_state *state = target->state;

    if (state->own_fd)
        close(state->fd);
    free(state);
    import_target_free(target);
}

static int file_prepare(struct q2s_target *target, uint64_t virtual_size,
                        bool apply, bool target_is_zero,
                        struct q2s_error *err);

static const struct import_target_ops file_ops = {
    .prepare = file_prepare,
    .write = fd_write,
    .zero = file_zero,
    .finish = fd_finish,
    .close = fd_close,
};

static const struct import_target_ops device_ops = {
    .write = fd_write,
    .zero = device_zero,
    .finish = fd_finish,
    .close = fd_close,
};

static int file_prepare(struct q2s_target *target, uint64_t virtual_size,
                        bool apply, bool target_is_zero,
                        struct q2s_error *err)
{
    int fd = fd_of(target);
    struct stat st;

    if (fstat(fd, &st) < 0)
        return q2s_error_set_errno(err, errno, "cannot stat %s",
                                   target->name);
    if (apply) {
        if ((uint64_t)st.st_size != virtual_size)
            return q2s_error_set(err, EINVAL, "%s holds %llu bytes, the "
                                 "image %llu: --apply needs a target of the "
                                 "image's size", target->name,
                                 (unsigned long long)st.st_size,
                                 (unsigned long long)virtual_size);
        target->size = virtual_size;
        target->known_zero = false;
        return 0;
    }
    if (virtual_size > INT64_MAX)
        return q2s_error_set(err, EFBIG, "%s cannot hold %llu bytes",
                             target->name, (unsigned long long)virtual_size);
    /* All of it a hole, which reads as zeros: the old bytes punched out
     * (a truncation to nothing would make ext4 write the whole file back
     * at close, as it does for a file replaced by truncation), or, where
     * holes cannot be punched, truncated away. */
    if (!target_is_zero && st.st_size > 0 &&
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                  st.st_size) < 0 &&
        ftruncate(fd, 0) < 0)
        return q2s_error_set_errno(err, errno, "cannot empty %s",
                                   target->name);
    if (ftruncate(fd, (off_t)virtual_size) < 0)
        return q2s_error_set_errno(err, errno, "cannot make %s %llu bytes "
                                   "long", target->name,
                                   (unsigned long long)virtual_size);
    target->size = virtual_size;
    target->known_zero = true;
    return 0;
}

int import_target_from_fd(int fd, const char *name, bool own_fd,
                          struct q2s_target **result, struct q2s_error *err)
{
    struct q2s_target *target;
    struct fd_state *state;
    struct stat st;
    int flags;

    if (fstat(fd, &st) < 0 || (flags = fcntl(fd, F_GETFL)) < 0) {
        q2s_error_set_errno(err, errno, "cannot use %s", name);
        goto fail_fd;
    }
    if ((flags & O_ACCMODE) == O_RDONLY) {
        q2s_error_set(err, EBADF, "%s is open for reading only", name);
        goto fail_fd;
    }
    /* A file opened to append cannot be written at offsets: a stream. */
    if (!(S_ISREG(st.st_mode) && !(flags & O_APPEND)) && !S_ISBLK(st.st_mode)) {
        return import_target_new_stream(fd, name, own_fd, result, err);
    }
    state = calloc(1, sizeof *state);
    target = import_target_new(S_ISBLK(st.st_mode) ? IMPORT_TARGET_DEVICE
                                                   : IMPORT_TARGET_FILE,
                               S_ISBLK(st.st_mode) ? &device_ops : &file_ops,
                               name);
    if (!state || !target) {
        free(state);
        import_target_free(target);
        q2s_error_set(err, ENOMEM, "out of memory");
        goto fail_fd;
    }
    state->fd = fd;
    state->own_fd = own_fd;
    target->state = state;
    if (S_ISBLK(st.st_mode) && q2s_fd_size(fd, &target->size) < 0) {
        q2s_error_set_errno(err, errno, "cannot read the size of %s", name);
        fd_close(target);
        return -1;
    }
    *result = target;
    return 0;

fail_fd:
    if (own_fd)
        close(fd);
    return -1;
}
