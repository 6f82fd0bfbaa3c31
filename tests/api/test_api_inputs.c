/* Inputs opened by name or descriptor, cancellation (from another thread
 * during the build and the render, and by a flag that a signal handler
 * sets), and the error codes of the header that a test can provoke
 * without root: ENOENT, EISDIR, EINVAL, EBADF, ESTALE, EPERM, ETIMEDOUT,
 * ECANCELED, EPIPE.  test_api_callbacks.c: a caller's own input. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <qcow2-to-stdout.h>

#include "api_test.h"

static void fill_text(uint8_t *p, size_t length)
{
    for (size_t i = 0; i < length; i++)
        p[i] = (uint8_t)("a caller's own input. "[i % 22]);
}

/* An input whose bytes depend on their offset alone, slow to read once
 * slow_ms is set; it gives up (EIO) after max_reads reads, so that a
 * cancellation that is not seen fails the test rather than hangs it. */
struct slow_disk {
    atomic_int slow_ms;
    atomic_int reads;
    int max_reads;
};

static int slow_read(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct slow_disk *s = opaque;
    uint8_t *p = buf;

    if (atomic_fetch_add(&s->reads, 1) >= s->max_reads) {
        errno = EIO;
        return -1;
    }
    if (atomic_load(&s->slow_ms))
        sleep_ms((unsigned)atomic_load(&s->slow_ms));
    while (count > 0) {
        size_t in_sector = 512 - (size_t)(offset % 512);
        size_t n = in_sector < count ? in_sector : count;

        memset(p, (int)(offset / 512 % 251) + 1, n);
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

struct canceller {
    struct q2s_source *source;
    unsigned delay_ms;
    pthread_t thread;
};

static void *cancel_later(void *opaque)
{
    struct canceller *c = opaque;

    sleep_ms(c->delay_ms);
    q2s_source_cancel(c->source);
    return NULL;
}

static void start_canceller(struct canceller *c, struct q2s_source *source,
                            unsigned delay_ms)
{
    c->source = source;
    c->delay_ms = delay_ms;
    assert_int_equal(pthread_create(&c->thread, NULL, cancel_later, c), 0);
}

/* Cancelled 100 ms into a build that would take many seconds. */
static void cancel_build(enum q2s_compression compression)
{
    struct slow_disk s = { .max_reads = 400 };
    struct q2s_options *options = make_options(65536, compression, 0);
    struct q2s_source *source;
    struct q2s_plan *plan = NULL;
    struct canceller c;
    uint64_t start;

    atomic_store(&s.slow_ms, 20);
    EXPECT_OK(q2s_source_from_callbacks(1024ull * MiB, slow_read, NULL, NULL,
                                        &s, &source, &error));
    start = now_ms();
    start_canceller(&c, source, 100);
    EXPECT_FAIL(ECANCELED, q2s_plan_build(source, options, NULL, NULL, &plan,
                                          &error));
    assert_true(now_ms() - start < within_ms(1100));
    assert_null(plan);
    pthread_join(c.thread, NULL);
    /* And every later call. */
    EXPECT_FAIL(ECANCELED, q2s_plan_build(source, options, NULL, NULL, &plan,
                                          &error));
    q2s_source_close(source);
    q2s_options_free(options);
}

static void test_cancel_build(void **state)
{
    (void)state;
    cancel_build(Q2S_COMPRESSION_NONE);
}

static void test_cancel_compressed_build(void **state)
{
    (void)state;
    cancel_build(Q2S_COMPRESSION_ZLIB);
}

/* Cancelled 100 ms into a render that would take seconds. */
static void test_cancel_render(void **state)
{
    struct slow_disk s = { .max_reads = 1000 };
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_source *source;
    struct q2s_plan *plan;
    struct canceller c;
    uint64_t start;
    uint8_t buf[4096];

    (void)state;
    EXPECT_OK(q2s_source_from_callbacks(64 * MiB, slow_read, NULL, NULL, &s,
                                        &source, &error));
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    assert_int_equal(q2s_plan_get_data_clusters(plan), 1024);
    atomic_store(&s.slow_ms, 50);
    start = now_ms();
    start_canceller(&c, source, 100);
    EXPECT_FAIL(ECANCELED, render_pipe(plan, source, NULL, &error));
    assert_true(now_ms() - start < within_ms(1100));
    pthread_join(c.thread, NULL);
    EXPECT_FAIL(ECANCELED, q2s_pread(plan, source, buf, sizeof buf, 0,
                                     &error));
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
}

static void write_file(const char *path, uint64_t size, uint64_t data_at)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    uint8_t block[4096];

    assert_true(fd >= 0);
    fill_text(block, sizeof block);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(pwrite(fd, block, sizeof block, (off_t)data_at),
                     (ssize_t)sizeof block);
    close(fd);
}

/* The cancel flag of a file source: once set, the build, q2s_pread and
 * q2s_render fail. */
static void test_cancel_flag(void **state)
{
    static volatile sig_atomic_t flag;
    const char *path = in_scratch("flag.raw");
    struct q2s_source_options *source_options = q2s_source_options_new();
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_source *source;
    struct q2s_plan *plan = NULL;
    uint8_t buf[4096];

    (void)state;
    write_file(path, 4 * MiB, MiB);
    q2s_source_options_set_cancel_flag(source_options, &flag);
    flag = 0;
    EXPECT_OK(q2s_source_open(path, source_options, &source, &error));
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    EXPECT_OK(q2s_pread(plan, source, buf, sizeof buf, 0, &error));
    flag = 1;
    EXPECT_FAIL(ECANCELED, q2s_pread(plan, source, buf, sizeof buf, 0,
                                     &error));
    EXPECT_FAIL(ECANCELED, render_pipe(plan, source, NULL, &error));
    q2s_plan_free(plan);
    plan = NULL;
    EXPECT_FAIL(ECANCELED, q2s_plan_build(source, options, NULL, NULL, &plan,
                                          &error));
    q2s_source_close(source);

    /* Set before the build. */
    EXPECT_OK(q2s_source_open(path, source_options, &source, &error));
    EXPECT_FAIL(ECANCELED, q2s_plan_build(source, options, NULL, NULL, &plan,
                                          &error));
    q2s_source_close(source);
    flag = 0;
    q2s_source_options_free(source_options);
    q2s_options_free(options);
}

static volatile sig_atomic_t alarm_flag;

static void on_alarm(int signal)
{
    (void)signal;
    alarm_flag = 1;
}

/* A signal handler sets the flag while standard input, a pipe that never
 * ends, is being read. */
static void test_cancel_flag_from_signal(void **state)
{
    struct q2s_source_options *source_options = q2s_source_options_new();
    struct sigaction action = { .sa_handler = on_alarm }, old;
    struct itimerval timer = { .it_value = { 0, 100000 } };
    struct q2s_source *source = NULL;
    int fds[2], saved_stdin = dup(STDIN_FILENO), ret;
    struct q2s_error *error = NULL;
    uint64_t start, elapsed;

    (void)state;
    assert_true(saved_stdin >= 0);
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
    assert_int_equal(write(fds[1], "some data", 9), 9);
    q2s_source_options_set_cancel_flag(source_options, &alarm_flag);
    alarm_flag = 0;
    sigemptyset(&action.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &action, &old), 0);
    start = now_ms();
    assert_int_equal(setitimer(ITIMER_REAL, &timer, NULL), 0);
    ret = q2s_source_open("-", source_options, &source, &error);
    elapsed = now_ms() - start;
    /* Before anything can fail: no alarm may come after the handler. */
    setitimer(ITIMER_REAL, &(struct itimerval){ { 0, 0 }, { 0, 0 } }, NULL);
    sigaction(SIGALRM, &old, NULL);
    check_error_at(ret, error, ECANCELED, __FILE__, __LINE__);
    assert_true(elapsed < within_ms(1100));
    assert_true(alarm_flag);
    assert_null(source);
    dup2(saved_stdin, STDIN_FILENO);
    close(saved_stdin);
    close(fds[0]);
    close(fds[1]);
    q2s_source_options_free(source_options);
}

static void test_open_errors(void **state)
{
    struct q2s_source_options *source_options = q2s_source_options_new();
    const char *fifo = in_scratch("fifo");
    const char *file = in_scratch("open.raw");
    struct q2s_source *source = NULL;
    int fds[2];

    (void)state;
    write_file(file, MiB, 0);
    EXPECT_FAIL(ENOENT, q2s_source_open(in_scratch("missing.raw"), NULL,
                                        &source, &error));
    assert_int_equal(q2s_source_open(in_scratch("missing.raw"), NULL, &source,
                                     NULL),
                     -1);
    EXPECT_FAIL(ENOENT, q2s_source_open(in_scratch("no/such/dir.raw"),
                                        source_options, &source, &error));
    EXPECT_FAIL(EISDIR, q2s_source_open(scratch, NULL, &source, &error));
    /* A FIFO is never opened: that could block. */
    assert_int_equal(mkfifo(fifo, 0600), 0);
    EXPECT_FAIL(EINVAL, q2s_source_open(fifo, NULL, &source, &error));
    /* Standard input and NBD are raw. */
    EXPECT_OK(q2s_source_options_set_format(source_options, "qcow2", &error));
    EXPECT_FAIL(EINVAL, q2s_source_open("-", source_options, &source,
                                        &error));
    EXPECT_FAIL(EINVAL, q2s_source_open("nbd://localhost:1", source_options,
                                        &source, &error));
    assert_null(source);

    /* A descriptor of a pipe is not a file; a closed one is nothing. */
    assert_int_equal(pipe(fds), 0);
    EXPECT_FAIL(EINVAL, q2s_source_from_fd(fds[0], &source, &error));
    close(fds[0]);
    close(fds[1]);
    EXPECT_FAIL(EBADF, q2s_source_from_fd(fds[0], &source, &error));
    assert_int_equal(q2s_source_from_fd(-1, &source, NULL), -1);
    q2s_source_options_free(source_options);
}

/* A descriptor the caller opened and then closed: the source keeps its
 * own. */
static void test_from_fd(void **state)
{
    const char *path = in_scratch("fd.raw");
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_source *source;
    struct q2s_plan *plan;
    uint8_t buf[512];
    int fd;

    (void)state;
    write_file(path, 2 * MiB + 512, MiB);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    EXPECT_OK(q2s_source_from_fd(fd, &source, &error));
    close(fd);
    assert_int_equal(q2s_source_get_size(source), 2 * MiB + 512);
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    assert_int_equal(q2s_plan_get_data_clusters(plan), 1);
    EXPECT_OK(render_pipe(plan, source, NULL, &error));
    EXPECT_OK(q2s_pread(plan, source, buf, sizeof buf, 0, &error));
    assert_memory_equal(buf, "QFI\xfb", 4);
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
}

/* A file that changes size between the build and the render. */
static void test_changed_file(void **state)
{
    const char *path = in_scratch("shrinks.raw");
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_source *source;
    struct q2s_plan *plan;
    uint8_t buf[4096];

    (void)state;
    write_file(path, 2 * MiB, MiB + 4096);
    EXPECT_OK(q2s_source_open(path, NULL, &source, &error));
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    assert_int_equal(truncate(path, MiB), 0);
    EXPECT_FAIL(ESTALE, render_pipe(plan, source, NULL, &error));
    EXPECT_FAIL(ESTALE, q2s_pread(plan, source, buf, sizeof buf, 0, &error));
    assert_int_equal(truncate(path, 3 * MiB), 0);
    EXPECT_FAIL(ESTALE, q2s_pread(plan, source, buf, sizeof buf, 0, &error));
    assert_int_equal(q2s_pread(plan, source, buf, sizeof buf, 0, NULL), -1);
    assert_int_equal(truncate(path, 2 * MiB), 0);
    EXPECT_OK(q2s_pread(plan, source, buf, sizeof buf, 0, &error));
    q2s_plan_free(plan);
    q2s_source_close(source);

    /* A source of another size is not the one the plan was built from. */
    EXPECT_OK(q2s_source_open(path, NULL, &source, &error));
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    q2s_source_close(source);
    write_file(path, 2 * MiB + 512, MiB);
    EXPECT_OK(q2s_source_open(path, NULL, &source, &error));
    EXPECT_FAIL(EINVAL, q2s_pread(plan, source, buf, sizeof buf, 0, &error));
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
}

static bool have(const char *program)
{
    char command[256];

    snprintf(command, sizeof command, "command -v %s >/dev/null 2>&1",
             program);
    return system(command) == 0;
}

/* Untrusted images that name other files, or whose format is not looked
 * at, are refused. */
static void test_untrusted(void **state)
{
    struct q2s_source_options *source_options = q2s_source_options_new();
    const char *raw = in_scratch("untrusted.raw");
    struct q2s_source *source = NULL;
    char command[9000];

    (void)state;
    write_file(raw, MiB, 0);
    q2s_source_options_set_untrusted(source_options, true);
    EXPECT_OK(q2s_source_options_set_format(source_options, "dmg", &error));
    EXPECT_FAIL(EPERM, q2s_source_open(raw, source_options, &source, &error));
    assert_null(source);
    if (!have("qemu-img")) {
        q2s_source_options_free(source_options);
        skip();
    }
    snprintf(command, sizeof command,
             "cd '%s' && qemu-img create -q -f qcow2 -b untrusted.raw -F raw "
             "top.qcow2", scratch);
    assert_int_equal(system(command), 0);
    EXPECT_OK(q2s_source_options_set_format(source_options, "qcow2", &error));
    EXPECT_FAIL(EPERM, q2s_source_open(in_scratch("top.qcow2"),
                                       source_options, &source, &error));
    assert_int_equal(q2s_source_open(in_scratch("top.qcow2"), source_options,
                                     &source, NULL),
                     -1);
    assert_null(source);
    q2s_source_options_free(source_options);
}

/* An NBD server that stops answering: nbdkit delays every read by 5 s,
 * the timeout is 1 s. */
static void test_timeout(void **state)
{
    const char *socket_path = in_scratch("nbd.sock");
    struct q2s_source_options *source_options = q2s_source_options_new();
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_source *source = NULL;
    struct q2s_plan *plan = NULL;
    char uri[4300];
    uint64_t start;
    pid_t pid;
    int status;

    (void)state;
    if (!have("nbdkit")) {
        print_message("nbdkit is not installed\n");
        q2s_source_options_free(source_options);
        q2s_options_free(options);
        skip();
    }
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);

        /* It complains of the reads it could not answer. */
        if (null >= 0)
            dup2(null, STDERR_FILENO);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execlp("nbdkit", "nbdkit", "-f", "-U", socket_path,
               "--filter=delay", "pattern", "1M", "rdelay=5", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && access(socket_path, F_OK) != 0; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            print_message("nbdkit could not start\n");
            q2s_source_options_free(source_options);
            q2s_options_free(options);
            skip();
        }
        sleep_ms(10);
    }
    snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", socket_path);
    EXPECT_OK(q2s_source_options_set_timeout(source_options, 1, &error));
    EXPECT_OK(q2s_source_open(uri, source_options, &source, &error));
    assert_int_equal(q2s_source_get_size(source), MiB);
    start = now_ms();
    EXPECT_FAIL(ETIMEDOUT, q2s_plan_build(source, options, NULL, NULL, &plan,
                                          &error));
    assert_true(now_ms() - start >= 900);
    assert_true(now_ms() - start < within_ms(4000));
    q2s_source_close(source);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    q2s_source_options_free(source_options);
    q2s_options_free(options);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_build),
        cmocka_unit_test(test_cancel_compressed_build),
        cmocka_unit_test(test_cancel_render),
        cmocka_unit_test(test_cancel_flag),
        cmocka_unit_test(test_cancel_flag_from_signal),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_from_fd),
        cmocka_unit_test(test_changed_file),
        cmocka_unit_test(test_untrusted),
        cmocka_unit_test(test_timeout),
    };

    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
