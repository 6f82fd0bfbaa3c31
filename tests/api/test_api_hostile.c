/* The public interface against a hostile embedder: what other tests did
 * not try and what once went wrong.  A cancel while the output takes
 * nothing, names with control characters in the messages, file
 * descriptors that cannot be read, ranges whose end wraps around. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <qcow2-to-stdout.h>

#include "api_test.h"

/* An input of text, all of it data. */
static int text_read(void *opaque, void *buf, size_t count, uint64_t offset)
{
    uint8_t *p = buf;

    (void)opaque;
    for (size_t i = 0; i < count; i++)
        p[i] = (uint8_t)("a hostile embedder. "[(offset + i) % 20]);
    return 0;
}

/* Cancels a source after a delay; then, so that a render stuck on an
 * output nobody reads ends even when the cancel does not reach it, reads
 * the pipe empty until told to stop. */
struct canceller {
    pthread_t thread;
    struct q2s_source *source;
    unsigned delay_ms;
    int drain_fd;  /* read end of the output pipe */
    unsigned drain_after_ms;
    atomic_bool done;
};

static void *canceller_main(void *opaque)
{
    struct canceller *c = opaque;
    uint64_t start = now_ms();
    char sink[65536];

    sleep_ms(c->delay_ms);
    q2s_source_cancel(c->source);
    while (!atomic_load(&c->done) && now_ms() - start < c->drain_after_ms)
        sleep_ms(10);
    while (!atomic_load(&c->done))
        if (read(c->drain_fd, sink, sizeof sink) <= 0)
            sleep_ms(10);
    return NULL;
}

/* q2s_source_cancel() from another thread while q2s_render() waits for a
 * non-blocking pipe that nobody reads: ECANCELED within a fraction of a
 * second, as the header promises.  It used to wait in poll(2) for ever. */
static void test_cancel_nonblocking_output(void **state)
{
    struct q2s_options *options = q2s_options_new();
    struct q2s_source *source;
    struct q2s_plan *plan;
    struct canceller c = { .delay_ms = 100, .drain_after_ms = 3000 };
    int pipe_fds[2];
    uint64_t start;

    (void)state;
    EXPECT_OK(q2s_source_from_callbacks(16 * MiB, text_read, NULL, NULL,
                                        NULL, &source, &error));
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    assert_int_equal(pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK), 0);
    c.source = source;
    c.drain_fd = pipe_fds[0];
    atomic_init(&c.done, false);
    assert_int_equal(pthread_create(&c.thread, NULL, canceller_main, &c), 0);
    start = now_ms();
    {
        struct q2s_error *error = NULL;
        int ret = q2s_render(plan, source, pipe_fds[1], 0,
                             q2s_plan_get_image_size(plan), NULL, NULL,
                             &error);
        uint64_t took = now_ms() - start;

        atomic_store(&c.done, true);
        pthread_join(c.thread, NULL);
        check_error_at(ret, error, ECANCELED, __FILE__, __LINE__);
        if (took >= within_ms(1100)) {
            print_error("the cancel took %llu ms\n",
                        (unsigned long long)took);
            fail();
        }
    }
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
}

/* Names that the caller gave, with newlines and escapes in them, end up
 * in messages, which stay one line. */
static void test_messages_are_one_line(void **state)
{
    struct q2s_source_options *source_options = q2s_source_options_new();
    struct q2s_source *source = NULL;
    struct q2s_error *error = NULL;

    (void)state;
    /* Written as C escapes, as the program writes names. */
    assert_int_equal(q2s_source_open("no such\nfile\r\033[31m", NULL,
                                     &source, &error), -1);
    assert_non_null(error);
    assert_int_equal(q2s_error_code(error), ENOENT);
    assert_non_null(strstr(q2s_error_message(error),
                           "no such\\nfile\\r\\x1b[31m: "));
    q2s_error_free(error);
    EXPECT_FAIL(ENOENT, q2s_source_open("no such\nfile\r\033[31m",
                                        NULL, &source, &error));
    EXPECT_OK(q2s_source_options_set_format(source_options, "qcow2\nx",
                                            &error));
    EXPECT_FAIL(EINVAL, q2s_source_open("nbd://localhost/x\ny",
                                        source_options, &source, &error));
    q2s_source_options_free(source_options);
}

/* A descriptor the source cannot read is refused when the source is made,
 * as a pipe or a directory is, not at the first read. */
static void test_from_fd_not_readable(void **state)
{
    const char *path = in_scratch("write-only.raw");
    struct q2s_source *source = NULL;
    int fd;

    (void)state;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, MiB), 0);
    assert_int_equal(pwrite(fd, "data", 4, 4096), 4);
    EXPECT_FAIL(EBADF, q2s_source_from_fd(fd, &source, &error));
    close(fd);
    fd = open(path, O_PATH | O_CLOEXEC);
    assert_true(fd >= 0);
    EXPECT_FAIL(EBADF, q2s_source_from_fd(fd, &source, &error));
    close(fd);
    fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    EXPECT_OK(q2s_source_from_fd(fd, &source, &error));
    close(fd);
    assert_int_equal(q2s_source_get_size(source), MiB);
    q2s_source_close(source);
}

/* A range whose end passes 2^64 is refused, and the message does not give
 * an end that wrapped around to a small number. */
static void test_range_past_2_64(void **state)
{
    struct q2s_options *options = q2s_options_new();
    struct q2s_source *source;
    struct q2s_plan *plan;
    struct q2s_error *error = NULL;
    uint8_t buf[16];
    int fd;

    (void)state;
    EXPECT_OK(q2s_source_from_callbacks(MiB, text_read, NULL, NULL, NULL,
                                        &source, &error));
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    assert_int_equal(q2s_pread(plan, source, buf, sizeof buf,
                               UINT64_MAX - 8, &error), -1);
    assert_non_null(error);
    assert_int_equal(q2s_error_code(error), EINVAL);
    if (!strstr(q2s_error_message(error), "18446744073709551607") ||
        strstr(q2s_error_message(error), " to 7 ")) {
        print_error("message: %s\n", q2s_error_message(error));
        fail();
    }
    q2s_error_free(error);
    EXPECT_FAIL(EINVAL, q2s_pread(plan, source, buf, SIZE_MAX, 1, &error));
    fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    EXPECT_FAIL(EINVAL, q2s_render(plan, source, fd, 2, UINT64_MAX, NULL,
                                   NULL, &error));
    /* Empty ranges at the end, and a NULL buffer for none. */
    EXPECT_OK(q2s_render(plan, source, fd, q2s_plan_get_image_size(plan), 0,
                         NULL, NULL, &error));
    EXPECT_OK(q2s_pread(plan, source, NULL, 0, q2s_plan_get_image_size(plan),
                        &error));
    EXPECT_FAIL(EINVAL, q2s_pread(plan, source, NULL, 0,
                                  q2s_plan_get_image_size(plan) + 1, &error));
    close(fd);
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
}

/* An input whose read cancels its own source, the first time or the
 * first time after reads_left more. */
struct self_cancelling {
    struct q2s_source *source;
    int reads_left;
};

static int self_cancelling_read(void *opaque, void *buf, size_t count,
                                uint64_t offset)
{
    struct self_cancelling *s = opaque;

    text_read(NULL, buf, count, offset);
    if (s->reads_left-- == 0)
        q2s_source_cancel(s->source);
    return 0;
}

/* A cancel during the call's last read, made by the read callback itself:
 * the call fails with ECANCELED, as the header says, rather than finish
 * as if nothing had happened.  One window of input, so the read is the
 * last; with and without compression; then q2s_pread and q2s_render. */
static void test_cancel_in_last_read(void **state)
{
    for (int compression = 0; compression < 2; compression++) {
        struct q2s_options *options = q2s_options_new();
        struct self_cancelling s = { .reads_left = 0 };
        struct q2s_plan *plan = NULL;
        uint8_t buf[4096];
        uint64_t size;
        int fd;

        (void)state;
        if (compression)
            EXPECT_OK(q2s_options_set_compression(
                options, Q2S_COMPRESSION_ZSTD, Q2S_COMPRESSION_LEVEL_DEFAULT,
                &error));
        EXPECT_OK(q2s_source_from_callbacks(65536, self_cancelling_read,
                                            NULL, NULL, &s, &s.source,
                                            &error));
        EXPECT_FAIL(ECANCELED, q2s_plan_build(s.source, options, NULL, NULL,
                                              &plan, &error));
        assert_null(plan);
        q2s_source_close(s.source);

        /* Built on a source that is left alone, read through one that
         * cancels itself in its only read. */
        EXPECT_OK(q2s_source_from_callbacks(65536, text_read, NULL, NULL,
                                            NULL, &s.source, &error));
        EXPECT_OK(q2s_plan_build(s.source, options, NULL, NULL, &plan,
                                 &error));
        q2s_source_close(s.source);
        size = q2s_plan_get_image_size(plan);
        assert_true(size > sizeof buf);
        s.reads_left = 0;
        EXPECT_OK(q2s_source_from_callbacks(65536, self_cancelling_read,
                                            NULL, NULL, &s, &s.source,
                                            &error));
        EXPECT_FAIL(ECANCELED, q2s_pread(plan, s.source, buf, sizeof buf,
                                         size - sizeof buf, &error));
        q2s_source_close(s.source);
        s.reads_left = 0;
        EXPECT_OK(q2s_source_from_callbacks(65536, self_cancelling_read,
                                            NULL, NULL, &s, &s.source,
                                            &error));
        fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        EXPECT_FAIL(ECANCELED, q2s_render(plan, s.source, fd, 0, size, NULL,
                                          NULL, &error));
        close(fd);
        q2s_source_close(s.source);
        q2s_plan_free(plan);
        q2s_options_free(options);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_nonblocking_output),
        cmocka_unit_test(test_messages_are_one_line),
        cmocka_unit_test(test_from_fd_not_readable),
        cmocka_unit_test(test_range_past_2_64),
        cmocka_unit_test(test_cancel_in_last_read),
    };

    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
