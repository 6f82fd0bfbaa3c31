/* What every test of the public interface shares: checks of a call's
 * result and error, a scratch directory, and the clock.  Only the public
 * header and cmocka, like the tests. */
#ifndef Q2S_API_TEST_H
#define Q2S_API_TEST_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <qcow2-to-stdout.h>

#define MiB (1024 * 1024)
#define UNUSED __attribute__((unused))

/* A message is one line: no newline, no other control character. */
static UNUSED bool one_line(const char *message)
{
    for (const char *p = message; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return message[0] != '\0';
}

static UNUSED void check_error_at(int ret, struct q2s_error *error, int code,
                                  const char *file, int line)
{
    const char *message = error ? q2s_error_message(error) : NULL;

    if (ret != -1 || !error || q2s_error_code(error) != code || !message ||
        !one_line(message)) {
        print_error("%s:%d: expected -1 with %s in one line, got %d with "
                    "%s: '%s'\n", file, line, strerror(code), ret,
                    error ? strerror(q2s_error_code(error)) : "no error",
                    message ? message : "(none)");
        q2s_error_free(error);
        fail();
    }
    q2s_error_free(error);
}

static UNUSED void check_ok_at(int ret, struct q2s_error *error,
                               const char *file, int line)
{
    if (ret != 0 || error) {
        print_error("%s:%d: expected success, got %d: %s\n", file, line, ret,
                    error ? q2s_error_message(error) : "(no error)");
        q2s_error_free(error);
        fail();
    }
}

/* expr is a call that takes &error. */
#define EXPECT_FAIL(code, expr)                                              \
    do {                                                                     \
        struct q2s_error *error = NULL;                                      \
        int ret_ = (expr);                                                   \
        check_error_at(ret_, error, code, __FILE__, __LINE__);               \
    } while (0)
#define EXPECT_OK(expr)                                                      \
    do {                                                                     \
        struct q2s_error *error = NULL;                                      \
        int ret_ = (expr);                                                   \
        check_ok_at(ret_, error, __FILE__, __LINE__);                        \
    } while (0)

/* The test program's scratch directory, made by scratch_setup() and
 * removed, whatever a failed test left in it, by scratch_teardown(). */
static char scratch[4096];

static UNUSED const char *in_scratch(const char *name)
{
    static char paths[8][4200];
    static int next;
    char *path = paths[next++ % 8];

    snprintf(path, sizeof paths[0], "%s/%s", scratch, name);
    return path;
}

static UNUSED int scratch_setup(void **state)
{
    const char *tmp = getenv("TMPDIR");

    (void)state;
    snprintf(scratch, sizeof scratch, "%s/q2s-test.api.XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    return mkdtemp(scratch) ? 0 : -1;
}

static UNUSED int scratch_teardown(void **state)
{
    char command[4200];

    (void)state;
    snprintf(command, sizeof command, "rm -rf '%s'", scratch);
    return system(command) == 0 ? 0 : -1;
}

static UNUSED uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* How long a thing that should be quick may take: ms, times
 * $Q2S_TEST_TIME_SCALE when the tests run under valgrind, which makes
 * compression fifty times slower. */
static UNUSED uint64_t within_ms(uint64_t ms)
{
    const char *scale = getenv("Q2S_TEST_TIME_SCALE");

    return scale && atoi(scale) > 1 ? ms * (uint64_t)atoi(scale) : ms;
}

static UNUSED void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Options with 2 compression threads. */
static UNUSED struct q2s_options *make_options(uint32_t cluster_size,
                                               enum q2s_compression compression,
                                               uint64_t cache)
{
    struct q2s_options *options = q2s_options_new();

    assert_non_null(options);
    EXPECT_OK(q2s_options_set_cluster_size(options, cluster_size, &error));
    EXPECT_OK(q2s_options_set_compression(options, compression,
                                          Q2S_COMPRESSION_LEVEL_DEFAULT,
                                          &error));
    EXPECT_OK(q2s_options_set_threads(options, 2, &error));
    EXPECT_OK(q2s_options_set_compress_cache(options, cache, &error));
    return options;
}

/* A thread that reads a pipe to its end, counting the bytes. */
struct drain {
    int fd;
    uint8_t *bytes;  /* kept when not NULL */
    uint64_t length;
};

static UNUSED void *drain(void *opaque)
{
    struct drain *d = opaque;
    uint8_t buf[65536];
    ssize_t n;

    while ((n = read(d->fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        if (d->bytes)
            memcpy(d->bytes + d->length, buf, (size_t)n);
        d->length += (uint64_t)n;
    }
    return NULL;
}

/* q2s_render of the whole image into a pipe; returns its result, with
 * the bytes in *bytes if not NULL. */
static UNUSED int render_pipe(const struct q2s_plan *plan,
                              struct q2s_source *source, uint8_t *bytes,
                              struct q2s_error **error)
{
    struct drain d = { .bytes = bytes };
    pthread_t thread;
    int fds[2], ret;

    assert_int_equal(pipe(fds), 0);
    d.fd = fds[0];
    assert_int_equal(pthread_create(&thread, NULL, drain, &d), 0);
    ret = q2s_render(plan, source, fds[1], 0, q2s_plan_get_image_size(plan),
                     NULL, NULL, error);
    close(fds[1]);
    pthread_join(thread, NULL);
    close(fds[0]);
    if (ret == 0)
        assert_int_equal(d.length, q2s_plan_get_image_size(plan));
    return ret;
}

#endif
