/*
 * splice-extents: the lower bound for the benchmark.
 *
 * Usage: splice-extents FILE | consumer
 *
 * Walks the data extents of FILE with lseek(SEEK_DATA/SEEK_HOLE) and moves
 * each of them, once, into standard output (which must be a pipe) with
 * splice(2).  Nothing is read into user space, nothing is inspected and no
 * qcow2 metadata is produced: this is the time the kernel needs just to move
 * the allocated bytes of FILE into the pipe, which no converter writing to
 * the same pipe can beat.
 *
 * The pipe is grown to 1 MiB if possible, as qcow2-to-stdout does for its
 * own output, so that both pay the same wake-up costs.
 *
 * Exits 0 on success and 1, with a message on standard error, on any error.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -Werror -o splice-extents splice-extents.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PIPE_BYTES (1024 * 1024)
/* splice() takes a size_t but moves at most about 2 GiB per call anyway. */
#define MAX_CHUNK ((size_t)1 << 30)

static const char *program = "splice-extents";

static void die(const char *what, const char *path, int errnum)
{
    if (path)
        fprintf(stderr, "%s: %s '%s': %s\n", program, what, path,
                strerror(errnum));
    else
        fprintf(stderr, "%s: %s: %s\n", program, what, strerror(errnum));
    exit(1);
}

/* Waits until a non-blocking standard output can take more. */
static void wait_writable(void)
{
    struct pollfd pfd = { .fd = STDOUT_FILENO, .events = POLLOUT };

    while (poll(&pfd, 1, -1) < 0) {
        if (errno != EINTR)
            die("cannot wait for standard output", NULL, errno);
    }
}

/* Moves [offset, offset + length) of fd into standard output. */
static uint64_t splice_range(int fd, const char *path, off_t offset,
                             off_t length)
{
    loff_t in_offset = offset;
    off_t end = offset + length;
    uint64_t moved = 0;

    while (in_offset < end) {
        off_t left = end - in_offset;
        size_t chunk = (uint64_t)left < MAX_CHUNK ? (size_t)left : MAX_CHUNK;
        ssize_t n = splice(fd, &in_offset, STDOUT_FILENO, NULL, chunk,
                           SPLICE_F_MORE);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                wait_writable();
                continue;
            }
            die("cannot splice from", path, errno);
        }
        if (n == 0) {
            fprintf(stderr, "%s: '%s' ended early, at byte %lld of an "
                    "extent that should end at %lld\n", program, path,
                    (long long)in_offset, (long long)end);
            exit(1);
        }
        moved += (uint64_t)n;
    }
    return moved;
}

int main(int argc, char **argv)
{
    const char *path;
    struct stat st;
    off_t offset = 0;
    uint64_t moved = 0;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "Usage: %s FILE | consumer\n", program);
        return 2;
    }
    path = argv[1];

    if (fstat(STDOUT_FILENO, &st) < 0)
        die("cannot inspect standard output", NULL, errno);
    if (!S_ISFIFO(st.st_mode)) {
        fprintf(stderr, "%s: standard output must be a pipe\n", program);
        return 1;
    }
    if (fcntl(STDOUT_FILENO, F_GETPIPE_SZ) < PIPE_BYTES)
        (void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, PIPE_BYTES); /* best effort */

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("cannot open", path, errno);
    if (fstat(fd, &st) < 0)
        die("cannot inspect", path, errno);
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: '%s' is not a regular file\n", program, path);
        return 1;
    }

    while (offset < st.st_size) {
        off_t data = lseek(fd, offset, SEEK_DATA);
        off_t hole;

        if (data < 0) {
            if (errno == ENXIO)     /* only a hole is left */
                break;
            die("cannot find the next data extent of", path, errno);
        }
        hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0)
            die("cannot find the end of a data extent of", path, errno);
        if (hole <= data) {
            fprintf(stderr, "%s: '%s': SEEK_HOLE from %lld returned %lld\n",
                    program, path, (long long)data, (long long)hole);
            return 1;
        }
        moved += splice_range(fd, path, data, hole - data);
        offset = hole;
    }

    if (close(fd) < 0)
        die("cannot close", path, errno);
    if (getenv("SPLICE_EXTENTS_VERBOSE"))
        fprintf(stderr, "%s: moved %llu bytes\n", program,
                (unsigned long long)moved);
    return 0;
}
