/* The small helpers in common/: vector, binary search, bits and fd I/O. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/bits.h"
#include "common/fdio.h"
#include "common/search.h"
#include "common/vector.h"

Q2S_DEFINE_VECTOR_TYPE(u64_vector, uint64_t)

static void test_vector_grows(void **state)
{
    struct u64_vector v = { 0 };
    size_t last_cap = 0;

    (void)state;
    assert_int_equal(u64_vector_reserve(&v, 0), 0);
    assert_null(v.ptr);  /* nothing asked, nothing allocated */
    for (uint64_t i = 0; i < 100000; i++) {
        assert_int_equal(u64_vector_append(&v, i * 3), 0);
        assert_true(v.len <= v.cap);
        if (v.cap != last_cap) {
            assert_true(last_cap == 0 || v.cap >= 2 * last_cap);
            last_cap = v.cap;
        }
    }
    assert_int_equal(v.len, 100000);
    for (size_t i = 0; i < v.len; i++)
        assert_int_equal(v.ptr[i], i * 3);
    /* Room already there: no change. */
    assert_int_equal(u64_vector_reserve(&v, v.cap - v.len), 0);
    assert_int_equal(v.cap, last_cap);
    u64_vector_free(&v);
    assert_null(v.ptr);
    assert_int_equal(v.len, 0);
    assert_int_equal(v.cap, 0);
}

static void test_vector_overflow(void **state)
{
    struct u64_vector v = { 0 };
    uint64_t *before;

    (void)state;
    assert_int_equal(u64_vector_append(&v, 7), 0);
    before = v.ptr;
    /* len + n past SIZE_MAX, then bytes past SIZE_MAX (never a realloc of
     * a huge size, which sanitizers would report). */
    errno = 0;
    assert_int_equal(u64_vector_reserve(&v, SIZE_MAX), -1);
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_int_equal(u64_vector_reserve(&v, SIZE_MAX / sizeof(uint64_t)), -1);
    assert_int_equal(errno, ENOMEM);
    /* The vector is as it was. */
    assert_ptr_equal(v.ptr, before);
    assert_int_equal(v.len, 1);
    assert_int_equal(v.ptr[0], 7);
    u64_vector_free(&v);
}

/* The same growth on an array kept in fields of other names. */
static void test_vector_reserve_fields(void **state)
{
    struct {
        uint32_t *items;
        uint64_t count;
        size_t capacity;
    } a = { 0 };

    (void)state;
    for (uint32_t i = 0; i < 5000; i++) {
        assert_int_equal(Q2S_VECTOR_RESERVE(a.items, a.count, a.capacity, 1),
                         0);
        a.items[a.count++] = i;
    }
    assert_true(a.capacity >= a.count);
    for (uint32_t i = 0; i < 5000; i++)
        assert_int_equal(a.items[i], i);
    errno = 0;
    assert_int_equal(Q2S_VECTOR_RESERVE(a.items, a.count, a.capacity,
                                        SIZE_MAX / sizeof(uint32_t)), -1);
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(a.items[4999], 4999);
    free(a.items);
}

struct sorted {
    const int *values;
    int key;
};

static bool at_least(const void *ctx, size_t i)
{
    const struct sorted *sorted = ctx;

    return sorted->values[i] >= sorted->key;
}

static size_t first_at_least(const int *values, size_t count, int key)
{
    struct sorted sorted = { values, key };

    return q2s_search_first(count, at_least, &sorted);
}

static void test_search_boundaries(void **state)
{
    static const int values[] = { 1, 3, 3, 5, 8, 13, 21 };
    size_t count = sizeof values / sizeof *values;

    (void)state;
    assert_int_equal(first_at_least(values, 0, 0), 0);       /* empty */
    assert_int_equal(first_at_least(values, count, 0), 0);   /* all true */
    assert_int_equal(first_at_least(values, count, 22), count);  /* none */
    assert_int_equal(first_at_least(values, 1, 1), 0);       /* single */
    assert_int_equal(first_at_least(values, 1, 2), 1);
    assert_int_equal(first_at_least(values, count, 3), 1);   /* first of equals */
    assert_int_equal(first_at_least(values, count, 4), 3);
    assert_int_equal(first_at_least(values, count, 21), count - 1);
    /* Every boundary of every length against a linear scan. */
    for (size_t n = 0; n <= count; n++) {
        for (int key = 0; key <= 22; key++) {
            size_t expected = 0;

            while (expected < n && values[expected] < key)
                expected++;
            assert_int_equal(first_at_least(values, n, key), expected);
        }
    }
}

static void test_bits_limits(void **state)
{
    const uint64_t top = UINT64_C(1) << 63;

    (void)state;
    assert_false(q2s_is_power_of_two(0));
    assert_true(q2s_is_power_of_two(1));
    assert_true(q2s_is_power_of_two(2));
    assert_false(q2s_is_power_of_two(3));
    assert_true(q2s_is_power_of_two(top));
    assert_false(q2s_is_power_of_two(top + 1));
    assert_false(q2s_is_power_of_two(UINT64_MAX));

    assert_int_equal(q2s_div_round_up(0, 1), 0);
    assert_int_equal(q2s_div_round_up(1, 1), 1);
    assert_int_equal(q2s_div_round_up(1, 2), 1);
    assert_int_equal(q2s_div_round_up(4, 2), 2);
    assert_int_equal(q2s_div_round_up(5, 2), 3);
    assert_int_equal(q2s_div_round_up(UINT64_MAX, 1), UINT64_MAX);
    assert_int_equal(q2s_div_round_up(UINT64_MAX, 2), top);  /* no overflow */
    assert_int_equal(q2s_div_round_up(UINT64_MAX, top), 2);
    assert_int_equal(q2s_div_round_up(UINT64_MAX, UINT64_MAX), 1);

    assert_int_equal(q2s_round_up(0, 8), 0);
    assert_int_equal(q2s_round_up(1, 8), 8);
    assert_int_equal(q2s_round_up(8, 8), 8);
    assert_int_equal(q2s_round_up(9, 1), 9);
    assert_int_equal(q2s_round_up(top, top), top);
    assert_int_equal(q2s_round_up(1, top), top);
    assert_int_equal(q2s_round_up(UINT64_MAX, 2), 0);  /* wraps, as said */
    assert_int_equal(q2s_round_down(0, 8), 0);
    assert_int_equal(q2s_round_down(15, 8), 8);
    assert_int_equal(q2s_round_down(UINT64_MAX, 1), UINT64_MAX);
    assert_int_equal(q2s_round_down(UINT64_MAX, top), top);
    assert_int_equal(q2s_round_down(UINT64_MAX, 2), UINT64_MAX - 1);
    assert_true(q2s_is_aligned(0, 512));
    assert_true(q2s_is_aligned(1024, 512));
    assert_false(q2s_is_aligned(1023, 512));
    assert_true(q2s_is_aligned(UINT64_MAX, 1));
    assert_false(q2s_is_aligned(UINT64_MAX, top));
    assert_true(q2s_is_aligned(top, top));

    assert_int_equal(q2s_log2_power_of_two(1), 0);
    assert_int_equal(q2s_log2_power_of_two(2), 1);
    assert_int_equal(q2s_log2_power_of_two(65536), 16);
    assert_int_equal(q2s_log2_power_of_two(top), 63);
}

static void test_write_all_and_pread_all(void **state)
{
    FILE *file = tmpfile();
    uint8_t out[10000], in[10000 + 10];
    size_t done = 12345;
    uint64_t size;
    int fd;

    (void)state;
    assert_non_null(file);
    fd = fileno(file);
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)(i * 7);
    assert_int_equal(q2s_write_all(fd, out, sizeof out, NULL), 0);
    assert_int_equal(q2s_write_all(fd, out, 0, NULL), 0);
    assert_int_equal(q2s_fd_size(fd, &size), 0);
    assert_int_equal(size, sizeof out);

    /* All of it, part of it, and an empty read. */
    assert_int_equal(q2s_pread_all(fd, in, sizeof out, 0, &done), 0);
    assert_int_equal(done, sizeof out);
    assert_memory_equal(in, out, sizeof out);
    assert_int_equal(q2s_pread_all(fd, in, 100, 5000, NULL), 0);
    assert_memory_equal(in, out + 5000, 100);
    assert_int_equal(q2s_pread_all(fd, in, 0, 0, &done), 0);
    assert_int_equal(done, 0);
    /* The end of the file first: 1, with how much there was. */
    assert_int_equal(q2s_pread_all(fd, in, sizeof in, 0, &done), 1);
    assert_int_equal(done, sizeof out);
    assert_int_equal(q2s_pread_all(fd, in, 10, sizeof out, &done), 1);
    assert_int_equal(done, 0);
    assert_int_equal(q2s_pread_all(fd, in, 10, sizeof out + 100, NULL), 1);
    fclose(file);

    /* An error: -1 with errno. */
    errno = 0;
    assert_int_equal(q2s_pread_all(-1, in, 10, 0, &done), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(done, 0);
    errno = 0;
    assert_int_equal(q2s_write_all(-1, out, 10, NULL), -1);
    assert_int_equal(errno, EBADF);
    errno = 0;
    assert_int_equal(q2s_fd_size(-1, &size), -1);
    assert_int_equal(errno, EBADF);
}

struct drain {
    int fd;
    size_t bytes;
    uint8_t sum;
};

static void *drain_pipe(void *arg)
{
    struct drain *drain = arg;
    uint8_t buf[4096];
    ssize_t n;

    usleep(10000);  /* let the writer fill the pipe first */
    while ((n = read(drain->fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            drain->sum += buf[i];
        drain->bytes += (size_t)n;
    }
    return NULL;
}

static void test_write_all_waits_on_a_full_pipe(void **state)
{
    const size_t length = 4 * 1024 * 1024;  /* well past a pipe's buffer */
    uint8_t *data = malloc(length), sum = 0;
    struct drain drain = { 0 };
    pthread_t reader;
    int fds[2];

    (void)state;
    assert_non_null(data);
    for (size_t i = 0; i < length; i++) {
        data[i] = (uint8_t)(i % 251);
        sum += data[i];
    }
    assert_int_equal(pipe2(fds, O_NONBLOCK), 0);
    drain.fd = fds[0];
    assert_int_equal(fcntl(fds[0], F_SETFL, 0), 0);  /* the reader blocks */
    assert_int_equal(pthread_create(&reader, NULL, drain_pipe, &drain), 0);
    assert_int_equal(q2s_write_all(fds[1], data, length, NULL), 0);
    close(fds[1]);
    assert_int_equal(pthread_join(reader, NULL), 0);
    close(fds[0]);
    assert_int_equal(drain.bytes, length);
    assert_int_equal(drain.sum, sum);
    free(data);
}

static void test_write_all_interrupted(void **state)
{
    volatile sig_atomic_t interrupted = 1;
    struct q2s_cancel cancel = { .flag = &interrupted };
    uint8_t byte = 1, got;
    int fds[2];

    (void)state;
    assert_int_equal(pipe(fds), 0);
    errno = 0;
    assert_int_equal(q2s_write_all(fds[1], &byte, 1, &cancel), -1);
    assert_int_equal(errno, ECANCELED);
    interrupted = 0;
    assert_int_equal(q2s_write_all(fds[1], &byte, 1, &cancel), 0);
    /* From another thread: q2s_source_cancel() sets this one. */
    q2s_cancel_request(&cancel);
    errno = 0;
    assert_int_equal(q2s_write_all(fds[1], &byte, 1, &cancel), -1);
    assert_int_equal(errno, ECANCELED);
    close(fds[1]);
    assert_int_equal(read(fds[0], &got, 1), 1);  /* only the second one */
    assert_int_equal(read(fds[0], &got, 1), 0);
    close(fds[0]);
}

static void test_clock(void **state)
{
    uint64_t before = q2s_now_milliseconds(), after;

    (void)state;
    usleep(20000);
    after = q2s_now_milliseconds();
    assert_true(after >= before + 10);
    assert_true(after < before + 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_grows),
        cmocka_unit_test(test_vector_overflow),
        cmocka_unit_test(test_vector_reserve_fields),
        cmocka_unit_test(test_search_boundaries),
        cmocka_unit_test(test_bits_limits),
        cmocka_unit_test(test_write_all_and_pread_all),
        cmocka_unit_test(test_write_all_waits_on_a_full_pipe),
        cmocka_unit_test(test_write_all_interrupted),
        cmocka_unit_test(test_clock),
    };

    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
