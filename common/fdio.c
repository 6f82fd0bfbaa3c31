#define _GNU_SOURCE
#include "common/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int is_interrupted(const struct q2s_cancel *cancel)
{
    if (cancel && q2s_cancelled(cancel)) {
        errno = ECANCELED;
        return 1;
    }
    return 0;
}

/* How long one poll(2) lasts before cancel is looked at again: a
 * q2s_source_cancel() from another thread sends no signal to wake it.
 * The same as Q2S_POLL_MILLISECONDS in lib/export/source.h. */
#define WAIT_POLL_MILLISECONDS 100

int q2s_wait_fd(int fd, short events,
                const struct q2s_cancel *cancel)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    int ready;

    for (;;) {
        if (is_interrupted(cancel))
            return -1;
        ready = poll(&pfd, 1, cancel ? WAIT_POLL_MILLISECONDS : -1);
        if (ready > 0)
            return 0;
        if (ready < 0 && errno != EINTR)
            return -1;
    }
}

int q2s_write_all(int fd, const void *buf, size_t length,
                  const struct q2s_cancel *cancel)
{
    const uint8_t *p = buf;

    while (length > 0) {
        ssize_t n;

        if (is_interrupted(cancel))
            return -1;
        n = write(fd, p, length);
        if (n < 0) {
            if (errno == EINTR)
                continue;  /* the flag is looked at above */
            if (errno == EAGAIN && q2s_wait_fd(fd, POLLOUT, cancel) == 0)
                continue;
            return -1;
        }
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

int q2s_pread_all(int fd, void *buf, size_t length, uint64_t offset,
                  size_t *done)
{
    uint8_t *p = buf;
    size_t got = 0;
    int ret = 0;

    while (got < length) {
        ssize_t n = pread(fd, p + got, length - got, (off_t)(offset + got));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? -1 : 1;
            break;
        }
        got += (size_t)n;
    }
    if (done)
        *done = got;
    return ret;
}

int q2s_pwrite_all(int fd, const void *buf, size_t length, uint64_t offset)
{
    const char *p = buf;

    while (length > 0) {
        ssize_t n = pwrite(fd, p, length, (off_t)offset);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        offset += (uint64_t)n;
        length -= (size_t)n;
    }
    return 0;
}

int q2s_fd_size(int fd, uint64_t *size)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return -1;
    if (S_ISBLK(st.st_mode))
        return ioctl(fd, BLKGETSIZE64, size);
    *size = (uint64_t)st.st_size;
    return 0;
}

uint64_t q2s_now_milliseconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int q2s_open_unlinked(const char *dir)
{
    char *path;
    int fd, saved;

    fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* Filesystems without O_TMPFILE: create, then unlink at once. */
    if (asprintf(&path, "%s/qcow2-to-stdout.XXXXXX", dir) < 0) {
        errno = ENOMEM;
        return -1;
    }
    fd = mkostemp(path, O_CLOEXEC);
    saved = errno;
    if (fd >= 0)
        unlink(path);
    free(path);
    errno = saved;
    return fd;
}
