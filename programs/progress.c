/* Progress on stderr and on a descriptor for a calling program (see
 * progress.h). */
#define _GNU_SOURCE
#include "progress.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void show_progress(void *opaque, enum q2s_phase phase, uint64_t done,
                          uint64_t total)
{
    struct progress_display *display = opaque;
    int percent = total ? (int)((double)done * 10000 / (double)total) : 10000;

    if (display->phase != (int)phase) {
        if (display->phase >= 0)
            fputc('\n', stderr);
        display->phase = (int)phase;
        display->percent = -10000;
    }
    /* Like qemu-img -p: a new line of output for each whole percent. */
    if (percent - display->percent < 100 && percent != 10000)
        return;
    if (percent == display->percent)
        return;
    display->percent = percent;
    fprintf(stderr, "    %s (%d.%02d/100%%)\r",
            phase == Q2S_PHASE_SCAN ? display->scan_label : "writing",
            percent / 100,
            percent % 100);
    fflush(stderr);
}

/* Writes the 3 bytes of a value.  The whole run writes at most 303 bytes,
 * less than any pipe holds, so a write to a pipe does not block, and one
 * of 3 bytes is atomic.  A descriptor that is non-blocking and full skips
 * the value (a later one follows); one that takes part of a value gets the
 * rest within a second, or no more.  Returns 1 when written, 0 when
 * skipped, -1 on an error (errno set). */
static int write_progress_value(int fd, const char *text)
{
    size_t done = 0;

    while (done < 3) {
        ssize_t n = write(fd, text + done, 3 - done);

        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };

            if (done == 0)
                return 0;
            if (poll(&pfd, 1, 1000) <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
        } else {
            if (n == 0)
                errno = EIO;
            return -1;
        }
    }
    return 1;
}

/* Writes value if it is above the last one written.  A reader that has
 * gone (EPIPE), or any other error, ends the progress, not the conversion:
 * the image is what the caller wants, and XAPI itself judges a run by its
 * exit status, reading progress only for its task.  One warning says so. */
void machine_progress_write(struct machine_progress *m, int value)
{
    char text[12];
    int ret;

    if (m->fd < 0 || value <= m->last)
        return;
    snprintf(text, sizeof text, "%03d", value);
    ret = write_progress_value(m->fd, text);
    if (ret > 0) {
        m->last = value;
    } else if (ret < 0) {
        char message[160];

        snprintf(message, sizeof message, "warning: cannot write progress "
                 "to descriptor %d: %s; the conversion goes on without it",
                 m->fd, strerror(errno));
        cli_print_error_line(m->program, message);
        m->fd = -1;
    }
}

static void machine_progress_report(struct machine_progress *m,
                                    enum q2s_phase phase, uint64_t done,
                                    uint64_t total)
{
    double fraction = total && done < total ? (double)done / (double)total
                                            : 1.0;
    int base = 0, span, value;

    if (m->scan_span < 0)
        m->scan_span = m->measure ? 100
                       : phase == Q2S_PHASE_SCAN && done < total ? 50 : 0;
    if (phase == Q2S_PHASE_SCAN) {
        span = m->scan_span;
    } else {
        base = m->scan_span;
        span = 100 - base;
    }
    /* 100 only once the image is out whole. */
    value = base + (int)(fraction * span);
    machine_progress_write(m, value < 99 ? value : 99);
}

void report_progress(void *opaque, enum q2s_phase phase, uint64_t done,
                     uint64_t total)
{
    struct progress *progress = opaque;

    if (progress->human)
        show_progress(&progress->display, phase, done, total);
    machine_progress_report(progress->machine, phase, done, total);
}
