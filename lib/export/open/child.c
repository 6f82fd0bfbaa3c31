/* Child processes that die with the tool and keep none of its
 * descriptors: a qemu-nbd left holding our standard output would keep
 * the reader of the stream from ever seeing its end. */
#define _GNU_SOURCE
#include "export/open/child.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

extern char **environ;

/* Where the child's descriptors are gathered before they take their final
 * numbers, above any of those numbers. */
#define CHILD_SCRATCH_FD 10
#define LISTEN_PID_PREFIX "LISTEN_PID="
#define LISTEN_PID_DIGITS 20

/* The full path of a program on $PATH (or the name itself if it holds a
 * slash); NULL if there is none.  Found before fork: the child may only
 * make async-signal-safe calls. */
static char *find_program(const char *program)
{
    const char *path = getenv("PATH");

    if (strchr(program, '/'))
        return access(program, X_OK) == 0 ? strdup(program) : NULL;
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t length = strcspn(path, ":");
        char *candidate;

        if (asprintf(&candidate, "%.*s/%s", (int)length, length ? path : ".",
                     program) < 0)
            return NULL;
        if (access(candidate, X_OK) == 0)
            return candidate;
        free(candidate);
        path += length;
        if (*path == ':')
            path++;
    }
    return NULL;
}

bool q2s_on_path(const char *program)
{
    char *found = find_program(program);

    free(found);
    return found != NULL;
}

/* Our environment without any socket activation variables of our own
 * caller, plus ours; *listen_pid points at the digits to fill in. */
static char **child_environment(bool socket_activation, char **listen_pid)
{
    size_t count = 0, used = 0;
    char **envp;

    while (environ && environ[count])
        count++;
    envp = calloc(count + 3, sizeof *envp);
    if (!envp)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        if (strncmp(environ[i], "LISTEN_", 7) != 0)
            envp[used++] = environ[i];
    }
    *listen_pid = NULL;
    if (socket_activation) {
        static char listen_fds[] = "LISTEN_FDS=1";

        *listen_pid = calloc(1, sizeof LISTEN_PID_PREFIX + LISTEN_PID_DIGITS);
        if (!*listen_pid) {
            free(envp);
            return NULL;
        }
        strcpy(*listen_pid, LISTEN_PID_PREFIX);
        envp[used++] = *listen_pid;
        envp[used++] = listen_fds;
    }
    return envp;
}

/* In the child: async-signal-safe only. */
static void write_decimal(char *out, long value)
{
    char digits[LISTEN_PID_DIGITS];
    int n = 0;

    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0 && n < LISTEN_PID_DIGITS);
    while (n > 0)
        *out++ = digits[--n];
    *out = '\0';
}

static void close_from(int first)
{
    if (close_range((unsigned)first, ~0U, 0) == 0)
        return;
    for (int fd = first; fd < 65536; fd++)
        close(fd);
}

/* In the child, between fork and exec: async-signal-safe only.  Reports
 * a failure's errno on report_fd. */
static _Noreturn void child_exec(const struct q2s_child_spec *spec,
                                 const char *path, char **envp,
                                 char *listen_pid, pid_t parent,
                                 int report_fd)
{
    int sources[4], next_fd, err;
    struct sigaction default_action = { .sa_handler = SIG_DFL };
    sigset_t none;

    /* Our handlers and ignored signals are not the child's business. */
    for (int signum = 1; signum < NSIG; signum++)
        sigaction(signum, &default_action, NULL);
    /* Dies with us, even by SIGKILL; if we died already, now. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    /* Gather everything above the final numbers, then put it there. */
    sources[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    sources[1] = spec->stdout_fd >= 0 ? spec->stdout_fd
                                      : open("/dev/null", O_WRONLY | O_CLOEXEC);
    sources[2] = spec->stderr_fd >= 0 ? spec->stderr_fd
                                      : open("/dev/null", O_WRONLY | O_CLOEXEC);
    sources[3] = spec->listen_fd;
    report_fd = fcntl(report_fd, F_DUPFD_CLOEXEC, CHILD_SCRATCH_FD);
    for (int i = 0; i < 4; i++) {
        if (sources[i] >= 0)
            sources[i] = fcntl(sources[i], F_DUPFD_CLOEXEC, CHILD_SCRATCH_FD);
        if (i < 3 && sources[i] < 0)
            goto fail;
    }
    if (report_fd < 0)
        _exit(127);
    next_fd = spec->listen_fd >= 0 ? 4 : 3;
    for (int i = 0; i < 4; i++) {
        if (sources[i] >= 0 && dup2(sources[i], i) < 0)
            goto fail;
    }
    if (dup2(report_fd, next_fd) < 0)
        goto fail;
    report_fd = next_fd;
    if (fcntl(report_fd, F_SETFD, FD_CLOEXEC) < 0)
        goto fail;
    close_from(report_fd + 1);
    if (listen_pid)
        write_decimal(listen_pid + sizeof LISTEN_PID_PREFIX - 1,
                      (long)getpid());
    if (spec->address_space_bytes) {
        struct rlimit limit = { spec->address_space_bytes,
                                spec->address_space_bytes };

        if (setrlimit(RLIMIT_AS, &limit) < 0)
            goto fail;
    }
    if (spec->cpu_seconds) {
        struct rlimit limit = { spec->cpu_seconds, spec->cpu_seconds };

        if (setrlimit(RLIMIT_CPU, &limit) < 0)
            goto fail;
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(path, spec->argv, envp);
fail:
    err = errno;
    while (write(report_fd, &err, sizeof err) < 0 && errno == EINTR)
        ;
    _exit(127);
}

int q2s_child_spawn(const struct q2s_child_spec *spec, pid_t *pid,
                    struct q2s_error *err)
{
    char *path = find_program(spec->argv[0]);
    char *listen_pid = NULL, **envp;
    sigset_t all, old;
    int report[2], child_errno = 0;
    pid_t parent = getpid(), child;
    ssize_t n;

    if (!path)
        return q2s_error_set(err, ENOENT, "%s is not installed (Debian package "
                             "qemu-utils)", spec->argv[0]);
    envp = child_environment(spec->listen_fd >= 0, &listen_pid);
    if (!envp || pipe2(report, O_CLOEXEC) < 0) {
        q2s_error_set_errno(err, envp ? errno : ENOMEM, "cannot start %s",
                            spec->argv[0]);
        free(envp);
        free(listen_pid);
        free(path);
        return -1;
    }
    /* No handler of ours may run in the child before it resets them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    child = fork();
    if (child == 0) {
        close(report[0]);
        child_exec(spec, path, envp, listen_pid, parent, report[1]);
    }
    child_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report[1]);
    free(envp);
    free(listen_pid);
    free(path);
    if (child < 0) {
        close(report[0]);
        return q2s_error_set_errno(err, child_errno, "cannot start %s",
                                   spec->argv[0]);
    }
    /* The report pipe closes on exec: nothing read means it ran. */
    do
        n = read(report[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof child_errno) {
        q2s_child_kill(child);
        return q2s_error_set_errno(err, child_errno, "cannot run %s",
                                   spec->argv[0]);
    }
    *pid = child;
    return 0;
}

void q2s_child_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

int q2s_child_wait(pid_t pid, const volatile sig_atomic_t *interrupted)
{
    /* Polled, not blocked on: a signal that lands just before a blocking
     * waitpid would not interrupt it. */
    struct timespec pause = { 0, 1000 * 1000 };
    int status = 0;
    pid_t done;

    while ((done = waitpid(pid, &status, WNOHANG)) == 0 ||
           (done < 0 && errno == EINTR)) {
        if (interrupted && *interrupted) {
            q2s_child_kill(pid);
            return -1;
        }
        nanosleep(&pause, NULL);
        if (pause.tv_nsec < 64 * 1000 * 1000)
            pause.tv_nsec *= 2;
    }
    return done < 0 ? -1 : status;
}
