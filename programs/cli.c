/* What the programs' command lines share (see cli.h). */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool cli_parse_size(const char *text, uint64_t *value)
{
    static const char suffixes[] = "KMGTPE";
    unsigned long long n;
    const char *suffix;
    char *end;

    /* strtoull() would take spaces and a sign, and wrap "-1". */
    if (*text < '0' || *text > '9')
        return false;
    errno = 0;
    n = strtoull(text, &end, 10);
    if (errno != 0)
        return false;
    if (*end != '\0') {
        /* Upper case by clearing bit 5, which makes a space a NUL: that
         * strchr() would find at the end of suffixes. */
        char upper = (char)(end[0] & ~0x20);

        suffix = upper ? strchr(suffixes, upper) : NULL;
        if (!suffix || end[1] != '\0')
            return false;
        for (long i = 0; i <= suffix - suffixes; i++) {
            if (n > UINT64_MAX / 1024)
                return false;
            n *= 1024;
        }
    }
    *value = n;
    return true;
}

bool cli_parse_int(const char *text, int *value)
{
    long n;
    char *end;

    /* strtol() would skip spaces first. */
    if (text[0] != '-' && text[0] != '+' && (text[0] < '0' || text[0] > '9'))
        return false;
    errno = 0;
    n = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || n < INT_MIN + 1 ||
        n > INT_MAX)
        return false;
    *value = (int)n;
    return true;
}

/* One line on stderr, whatever a file name or a server's message holds:
 * control characters are written as C escapes. */
void cli_print_error_line(const char *program, const char *message)
{
    fprintf(stderr, "%s: ", program);
    for (const unsigned char *c = (const unsigned char *)message; *c; c++) {
        if (*c == '\n')
            fputs("\\n", stderr);
        else if (*c == '\r')
            fputs("\\r", stderr);
        else if (*c == '\t')
            fputs("\\t", stderr);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(stderr, "\\x%02x", *c);
        else
            fputc(*c, stderr);
    }
    fputc('\n', stderr);
}

/* The signal that asked us to stop, for the handler to set and the
 * program to read: the only state outside main, as a handler needs it. */
static volatile sig_atomic_t stop_signal;

const volatile sig_atomic_t *cli_stop_flag(void)
{
    return &stop_signal;
}

void cli_die_of_stop_signal(void)
{
    if (stop_signal) {
        signal(stop_signal, SIG_DFL);
        raise(stop_signal);
    }
}

static void catch_unless_ignored(int signum, const struct sigaction *action)
{
    struct sigaction old;

    if (sigaction(signum, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
        sigaction(signum, action, NULL);
}

static void on_stop_signal(int signum)
{
    /* A second signal does not wait for the clean-up: a call that began
     * just before the first one may block until the reader reads. */
    if (stop_signal) {
        signal(signum, SIG_DFL);
        raise(signum);
    }
    stop_signal = signum;
}

/* Every signal whose default is to end the process, and which can be
 * caught.  Faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) are
 * not: a child dies with us all the same (PR_SET_PDEATHSIG). */
static const int stop_signals[] = {
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM,
    SIGPROF, SIGXCPU, SIGXFSZ, SIGIO, SIGPWR, SIGSTKFLT,
};

/* Stop signals interrupt blocking calls (no SA_RESTART), so that the
 * library sees them, cleans up (a qemu-nbd it started) and returns; main
 * then dies of the same signal.  A signal ignored by whoever started us
 * (nohup) stays ignored. */
void cli_catch_stop_signals(void)
{
    struct sigaction action = { .sa_handler = on_stop_signal };

    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++)
        catch_unless_ignored(stop_signals[i], &action);
    for (int signum = SIGRTMIN; signum <= SIGRTMAX; signum++)
        catch_unless_ignored(signum, &action);
    /* A reader that goes away is an error to report, not a silent death. */
    signal(SIGPIPE, SIG_IGN);
}

/* Descriptors 0, 1 and 2 that are closed would be taken by the next ones
 * opened (a spool file, a socket), which would then receive the stream or
 * the messages.  So each gets /dev/null, and closed[fd] says which were:
 * a closed stdout is an error, as there is nowhere to write the stream.
 * -1 if /dev/null cannot be opened. */
int cli_guard_standard_descriptors(bool closed[3])
{
    for (int fd = 0; fd <= 2; fd++) {
        closed[fd] = fcntl(fd, F_GETFD) < 0 && errno == EBADF;
        if (closed[fd]) {
            int null_fd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);

            /* The lowest free number: fd itself, as lower ones are open. */
            if (null_fd != fd) {
                if (null_fd >= 0)
                    close(null_fd);
                return -1;
            }
        }
    }
    return 0;
}

/* The CPUs this process may run on. */
uint32_t cli_available_cpus(void)
{
    cpu_set_t set;
    long online;

    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (uint32_t)CPU_COUNT(&set);
    online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (uint32_t)online : 1;
}

/* The --progress-fd descriptor must be open for writing; it is kept from
 * the programs we start (qemu-nbd), so that the reader sees the end of
 * file when we exit.  Returns -1 to go on, or the exit status. */
int cli_check_progress_fd(const char *program, int fd)
{
    char message[128];
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0) {
        snprintf(message, sizeof message, "--progress-fd=%d: descriptor %d "
                 "is not open", fd, fd);
        cli_print_error_line(program, message);
        return EXIT_FAILURE;
    }
    if ((flags & O_ACCMODE) == O_RDONLY) {
        snprintf(message, sizeof message, "--progress-fd=%d: descriptor %d "
                 "is not open for writing", fd, fd);
        cli_print_error_line(program, message);
        return EXIT_FAILURE;
    }
    flags = fcntl(fd, F_GETFD);
    if (flags >= 0)
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    return -1;
}

int cli_usage_error_v(const char *program, void (*usage_line)(FILE *out),
                      const char *fmt, va_list ap)
{
    char message[1024];

    vsnprintf(message, sizeof message, fmt, ap);
    cli_print_error_line(program, message);
    usage_line(stderr);
    fprintf(stderr, "Try '%s --help' for more information.\n", program);
    return CLI_EXIT_USAGE;
}

int cli_flush_stdout(const char *program, bool stdout_closed)
{
    char message[128];

    if (stdout_closed) {
        cli_print_error_line(program, "write error: standard output is "
                             "closed");
        return EXIT_FAILURE;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        snprintf(message, sizeof message, "write error: %s", strerror(errno));
        cli_print_error_line(program, message);
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
