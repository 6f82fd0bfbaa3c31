/* The least a reader of a pipe can do with what comes: standard input
 * moved into FILE with splice(2), page by page, no copy into user memory,
 * nothing looked at.  make bench times `cat IMAGE | pipe-floor out.raw`
 * beside qcow2-from-stdin, which must also parse the image and look for
 * zero blocks, so that its figures can be read against what the pipe
 * itself costs on the machine. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    off64_t offset = 0;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "Usage: pipe-floor FILE < PIPE\n");
        return 2;
    }
    fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "pipe-floor: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    /* As qcow2-from-stdin asks for, best effort. */
    fcntl(STDIN_FILENO, F_SETPIPE_SZ, 1024 * 1024);
    for (;;) {
        ssize_t n = splice(STDIN_FILENO, NULL, fd, &offset, 1024 * 1024,
                           SPLICE_F_MOVE | SPLICE_F_MORE);

        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "pipe-floor: splice: %s\n", strerror(errno));
            return 1;
        }
    }
    if (close(fd) < 0) {
        fprintf(stderr, "pipe-floor: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    return 0;
}
