#define _GNU_SOURCE
#include "read_fds.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Long enough to be idle, short enough to see a signal soon: a signal that
 * comes just before poll(2) does not interrupt it. */
#define POLL_MILLISECONDS 100

/* Room for more in text: a file's whole size at once, else doubling. */
static int grow(struct fd_text *text, size_t limit)
{
    size_t capacity = text->capacity ? text->capacity * 2 : 64 * 1024;
    struct stat st;
    char *bigger;

    if (text->capacity == 0 && fstat(text->fd, &st) == 0 &&
        S_ISREG(st.st_mode) && st.st_size >= 0 &&
        (uint64_t)st.st_size < limit)
        capacity = (size_t)st.st_size + 2;
    if (capacity > limit + 2)
        capacity = limit + 2;
    bigger = realloc(text->data, capacity);
    if (!bigger)
        return -1;
    text->data = bigger;
    text->capacity = capacity;
    return 0;
}

/* Reads what one descriptor has now: 1 at its end, 0 for more to come,
 * -1 with a message. */
static int read_some(struct fd_text *text, size_t limit, char *message,
                     size_t message_size)
{
    ssize_t n;

    /* One byte stays for the NUL, one to see a text past the limit. */
    if (text->capacity - text->length < 2 && grow(text, limit) < 0) {
        snprintf(message, message_size, "%s: out of memory", text->name);
        return -1;
    }
    n = read(text->fd, text->data + text->length,
             text->capacity - text->length - 1);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        snprintf(message, message_size, "%s: %s", text->name,
                 strerror(errno));
        return -1;
    }
    text->length += (size_t)n;
    text->data[text->length] = '\0';
    if (text->length > limit) {
        snprintf(message, message_size, "%s: larger than %zu MiB, the most "
                 "it may take", text->name, limit >> 20);
        return -1;
    }
    return n == 0;
}

int read_fds_to_end(struct fd_text *texts, size_t count, size_t limit,
                    const volatile sig_atomic_t *interrupted, char *message,
                    size_t message_size)
{
    struct pollfd polls[count ? count : 1];
    size_t open_count = count;
    int ret = 0;

    for (size_t i = 0; i < count; i++) {
        int flags = fcntl(texts[i].fd, F_GETFL);

        polls[i] = (struct pollfd){ .fd = texts[i].fd, .events = POLLIN };
        /* read(2) would say only "Bad file descriptor". */
        if (ret == 0 && flags >= 0 && (flags & O_ACCMODE) == O_WRONLY) {
            snprintf(message, message_size, "%s: not open for reading",
                     texts[i].name);
            ret = -1;
        }
    }
    while (open_count > 0 && ret == 0) {
        int ready;

        if (interrupted && *interrupted) {
            snprintf(message, message_size, "interrupted");
            ret = -1;
            break;
        }
        ready = poll(polls, count, POLL_MILLISECONDS);
        if (ready < 0 && errno != EINTR) {
            snprintf(message, message_size, "poll: %s", strerror(errno));
            ret = -1;
        }
        for (size_t i = 0; i < count && ready > 0 && ret == 0; i++) {
            int done;

            if (polls[i].fd < 0 || polls[i].revents == 0)
                continue;
            if (polls[i].revents & POLLNVAL) {
                snprintf(message, message_size, "%s: %s", texts[i].name,
                         strerror(EBADF));
                ret = -1;
                break;
            }
            done = read_some(&texts[i], limit, message, message_size);
            if (done < 0) {
                ret = -1;
            } else if (done > 0) {
                close(polls[i].fd);
                polls[i].fd = -1;  /* poll skips it */
                open_count--;
            }
        }
    }
    for (size_t i = 0; i < count; i++)
        if (polls[i].fd >= 0 && !(polls[i].revents & POLLNVAL))
            close(polls[i].fd);
    return ret;
}

void fd_texts_free(struct fd_text *texts, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(texts[i].data);
        texts[i].data = NULL;
        texts[i].length = texts[i].capacity = 0;
    }
}
