/* A caller's own input, read through its callbacks, as the public
 * interface gives it: read only where the data callback reports data, and
 * making the image that a file with the same bytes makes; what its
 * callbacks' errors and bad answers become, when its close is called, and
 * the size limits.  test_api_inputs.c: inputs opened by name,
 * cancellation and the other error codes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <qcow2-to-stdout.h>

#include "api_test.h"

/* An input in memory that reports some extents as data; the rest reads
 * as zeros and must never be read. */
#define DISK_SIZE (3 * MiB + 1000)

enum bad_extent { GOOD, START_BEFORE_OFFSET, END_BEFORE_START, EMPTY };

struct mem_disk {
    uint8_t *bytes;
    uint64_t size;
    uint64_t extents[4][2];
    size_t extent_count;
    bool all_data;          /* the data callback says all is data */
    int read_errno;         /* reads fail with it when fail_reads */
    bool fail_reads;
    bool fail_data;
    int data_errno;
    enum bad_extent bad;
    int reads, bad_reads, closes;
};

static int mem_read(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct mem_disk *d = opaque;
    bool inside = d->all_data;

    d->reads++;
    for (size_t i = 0; i < d->extent_count; i++)
        if (offset >= d->extents[i][0] && offset + count <= d->extents[i][1])
            inside = true;
    if (!inside || count == 0 || offset + count > d->size)
        d->bad_reads++;
    if (d->fail_reads) {
        errno = d->read_errno;
        return -1;
    }
    memcpy(buf, d->bytes + offset, count);
    return 0;
}

static int mem_data(void *opaque, uint64_t offset, uint64_t *start,
                    uint64_t *end)
{
    struct mem_disk *d = opaque;

    if (d->fail_data) {
        errno = d->data_errno;
        return -1;
    }
    if (d->bad == START_BEFORE_OFFSET && offset > 0) {
        *start = offset - 1;
        *end = offset + 4096;
        return 1;
    }
    if (d->bad == END_BEFORE_START || d->bad == EMPTY) {
        *start = offset + 4096;
        *end = d->bad == EMPTY ? *start : offset + 100;
        return 1;
    }
    if (d->all_data) {
        /* Past the end: the library clips it. */
        *start = offset;
        *end = UINT64_MAX;
        return 1;
    }
    for (size_t i = 0; i < d->extent_count; i++) {
        if (d->extents[i][1] > offset) {
            *start = d->extents[i][0] > offset ? d->extents[i][0] : offset;
            *end = d->extents[i][1];
            return 1;
        }
    }
    return 0;
}

static void mem_close(void *opaque)
{
    ((struct mem_disk *)opaque)->closes++;
}

static void fill_text(uint8_t *p, size_t length)
{
    for (size_t i = 0; i < length; i++)
        p[i] = (uint8_t)("a caller's own input. "[i % 22]);
}

static void fill_random(uint8_t *p, size_t length, uint32_t seed)
{
    for (size_t i = 0; i < length; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* Data in the first cluster, a run across clusters, a reported extent
 * that holds only zeros, and the end; zeros elsewhere.  The same bytes go
 * into a sparse file at path. */
static void mem_disk_init(struct mem_disk *d, const char *path)
{
    static const uint64_t extents[4][2] = {
        { 0, 6000 },
        { MiB + 100, MiB + 200000 },
        { 2 * MiB + 65536, 2 * MiB + 2 * 65536 },
        { 3 * MiB, DISK_SIZE },
    };
    int fd;

    memset(d, 0, sizeof *d);
    d->size = DISK_SIZE;
    d->bytes = calloc(1, DISK_SIZE);
    assert_non_null(d->bytes);
    memcpy(d->extents, extents, sizeof extents);
    d->extent_count = 4;
    fill_text(d->bytes, 3000);
    fill_random(d->bytes + 3000, 3000, 1);
    fill_text(d->bytes + MiB + 100, 100000);
    fill_random(d->bytes + MiB + 100100, 99900, 2);
    fill_text(d->bytes + 3 * MiB + 10, 500);
    fill_random(d->bytes + DISK_SIZE - 300, 300, 3);
    if (!path)
        return;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK_SIZE), 0);
    for (size_t i = 0; i < 4; i++) {
        size_t length = (size_t)(extents[i][1] - extents[i][0]);

        assert_int_equal(pwrite(fd, d->bytes + extents[i][0], length,
                                (off_t)extents[i][0]),
                         (ssize_t)length);
    }
    close(fd);
}

static struct q2s_source *mem_source(struct mem_disk *d, bool with_data)
{
    struct q2s_source *source;

    if (!with_data)
        d->all_data = true;  /* every read is in order */
    EXPECT_OK(q2s_source_from_callbacks(d->size, mem_read,
                                        with_data ? mem_data : NULL,
                                        mem_close, d, &source, &error));
    assert_int_equal(q2s_source_get_size(source), d->size);
    return source;
}

static uint8_t *pread_all(const struct q2s_plan *plan,
                          struct q2s_source *source)
{
    uint64_t size = q2s_plan_get_image_size(plan);
    uint8_t *bytes = malloc(size);

    assert_non_null(bytes);
    EXPECT_OK(q2s_pread(plan, source, bytes, size, 0, &error));
    return bytes;
}

/* The image of the callbacks is the image of the file with the same
 * bytes, and only reported extents are read. */
static void callbacks_equal_file(uint32_t cluster_size,
                                 enum q2s_compression compression,
                                 uint64_t cache, bool with_data)
{
    const char *path = in_scratch("same.raw");
    struct q2s_options *options = make_options(cluster_size, compression,
                                               cache);
    struct q2s_source *file, *callbacks;
    struct q2s_plan *file_plan, *plan;
    struct mem_disk d;
    uint8_t *expected, *got;
    uint64_t size;

    mem_disk_init(&d, path);
    EXPECT_OK(q2s_source_open(path, NULL, &file, &error));
    EXPECT_OK(q2s_plan_build(file, options, NULL, NULL, &file_plan, &error));
    callbacks = mem_source(&d, with_data);
    EXPECT_OK(q2s_plan_build(callbacks, options, NULL, NULL, &plan, &error));
    assert_true(d.reads > 0);

    size = q2s_plan_get_image_size(plan);
    assert_int_equal(size, q2s_plan_get_image_size(file_plan));
    assert_int_equal(q2s_plan_get_data_clusters(plan),
                     q2s_plan_get_data_clusters(file_plan));
    assert_int_equal(q2s_plan_get_compressed_clusters(plan),
                     q2s_plan_get_compressed_clusters(file_plan));
    assert_int_equal(q2s_plan_get_compressed_bytes(plan),
                     q2s_plan_get_compressed_bytes(file_plan));
    /* The extent of zeros holds no data cluster; the others do. */
    if (cluster_size == 65536)
        assert_int_equal(q2s_plan_get_data_clusters(plan), 6);
    if (compression != Q2S_COMPRESSION_NONE)
        assert_true(q2s_plan_get_compressed_clusters(plan) > 0);

    expected = pread_all(file_plan, file);
    got = pread_all(plan, callbacks);
    assert_memory_equal(got, expected, size);
    memset(got, 0, size);
    EXPECT_OK(render_pipe(plan, callbacks, got, &error));
    assert_memory_equal(got, expected, size);
    /* A range in the middle. */
    EXPECT_OK(q2s_pread(plan, callbacks, got, size / 2, size / 4, &error));
    assert_memory_equal(got, expected + size / 4, size / 2);

    assert_int_equal(d.bad_reads, 0);
    assert_int_equal(d.closes, 0);
    q2s_plan_free(plan);
    q2s_source_close(callbacks);
    assert_int_equal(d.closes, 1);
    q2s_plan_free(file_plan);
    q2s_source_close(file);
    q2s_options_free(options);
    free(expected);
    free(got);
    free(d.bytes);
    unlink(path);
}

static void test_callbacks_plain(void **state)
{
    (void)state;
    callbacks_equal_file(65536, Q2S_COMPRESSION_NONE, 0, true);
    callbacks_equal_file(512, Q2S_COMPRESSION_NONE, 0, true);
}

static void test_callbacks_compressed(void **state)
{
    (void)state;
    callbacks_equal_file(65536, Q2S_COMPRESSION_ZLIB, 0, true);
    callbacks_equal_file(4096, Q2S_COMPRESSION_ZSTD, 64 * MiB, true);
    callbacks_equal_file(512, Q2S_COMPRESSION_ZLIB, 0, true);
}

/* No data callback, and one that reports extents past the end: all of
 * it is read, and the image is the same. */
static void test_callbacks_all_data(void **state)
{
    (void)state;
    callbacks_equal_file(65536, Q2S_COMPRESSION_NONE, 0, false);
    callbacks_equal_file(65536, Q2S_COMPRESSION_ZSTD, 0, false);
}

static void test_callbacks_extents_past_end(void **state)
{
    struct mem_disk d;
    struct q2s_source *source;
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_plan *plan;

    (void)state;
    mem_disk_init(&d, NULL);
    d.all_data = true;
    source = mem_source(&d, true);
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    assert_int_equal(d.bad_reads, 0);
    assert_int_equal(q2s_plan_get_data_clusters(plan), 6);
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
    free(d.bytes);
}

/* The build fails with code, and the input is closed once. */
static void build_fails(struct mem_disk *d, bool with_data, int code)
{
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_source *source = mem_source(d, with_data);
    struct q2s_plan *plan = NULL;

    EXPECT_FAIL(code, q2s_plan_build(source, options, NULL, NULL, &plan,
                                     &error));
    assert_null(plan);
    /* The same without an error to fill in. */
    assert_int_equal(q2s_plan_build(source, options, NULL, NULL, &plan, NULL),
                     -1);
    assert_int_equal(d->bad_reads, 0);
    q2s_source_close(source);
    assert_int_equal(d->closes, 1);
    q2s_options_free(options);
    d->closes = 0;
}

static void test_callback_errors(void **state)
{
    struct mem_disk d;

    (void)state;
    mem_disk_init(&d, NULL);
    d.fail_reads = true;
    d.read_errno = EIO;
    build_fails(&d, true, EIO);
    /* A callback that fails without saying why still fails. */
    d.read_errno = 0;
    build_fails(&d, true, EIO);
    build_fails(&d, false, EIO);
    d.read_errno = ENOSPC;
    build_fails(&d, true, ENOSPC);
    d.fail_reads = false;

    d.fail_data = true;
    d.data_errno = EACCES;
    build_fails(&d, true, EACCES);
    d.data_errno = 0;
    build_fails(&d, true, EIO);
    d.fail_data = false;

    d.bad = START_BEFORE_OFFSET;
    build_fails(&d, true, EPROTO);
    d.bad = END_BEFORE_START;
    build_fails(&d, true, EPROTO);
    d.bad = EMPTY;
    build_fails(&d, true, EPROTO);
    free(d.bytes);
}

/* A read that fails after the build fails q2s_pread and q2s_render. */
static void test_callback_errors_after_build(void **state)
{
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_source *source;
    struct q2s_plan *plan;
    struct mem_disk d;
    uint8_t *buf;
    uint64_t size;

    (void)state;
    mem_disk_init(&d, NULL);
    source = mem_source(&d, true);
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    size = q2s_plan_get_image_size(plan);
    buf = malloc(size);
    d.fail_reads = true;
    d.read_errno = EIO;
    EXPECT_FAIL(EIO, q2s_pread(plan, source, buf, size, 0, &error));
    EXPECT_FAIL(EIO, render_pipe(plan, source, NULL, &error));
    assert_int_equal(q2s_pread(plan, source, buf, size, 0, NULL), -1);
    /* The header alone reads nothing. */
    EXPECT_OK(q2s_pread(plan, source, buf, 512, 0, &error));
    d.read_errno = ENXIO;
    EXPECT_FAIL(ENXIO, q2s_pread(plan, source, buf, size, 0, &error));
    d.fail_reads = false;
    EXPECT_OK(q2s_pread(plan, source, buf, size, 0, &error));
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
    free(buf);
    free(d.bytes);
}

/* Close is called once, also when the constructor fails. */
static void test_callback_close(void **state)
{
    struct q2s_source *source = NULL;
    struct mem_disk d = { .size = 100 };

    (void)state;
    EXPECT_FAIL(EINVAL, q2s_source_from_callbacks(100, NULL, mem_data,
                                                  mem_close, &d, &source,
                                                  &error));
    assert_null(source);
    assert_int_equal(d.closes, 1);
    assert_int_equal(q2s_source_from_callbacks(100, NULL, NULL, mem_close, &d,
                                               &source, NULL),
                     -1);
    assert_int_equal(d.closes, 2);
    /* No close callback. */
    EXPECT_FAIL(EINVAL, q2s_source_from_callbacks(100, NULL, NULL, NULL, &d,
                                                  &source, &error));
    EXPECT_OK(q2s_source_from_callbacks(100, mem_read, NULL, NULL, &d,
                                        &source, &error));
    q2s_source_close(source);
    EXPECT_OK(q2s_source_from_callbacks(100, mem_read, NULL, mem_close, &d,
                                        &source, &error));
    assert_int_equal(d.closes, 2);
    q2s_source_close(source);
    assert_int_equal(d.closes, 3);
    q2s_source_close(NULL);
}

static int no_data(void *opaque, uint64_t offset, uint64_t *start,
                   uint64_t *end)
{
    (void)opaque;
    (void)offset;
    (void)start;
    (void)end;
    return 0;
}

static int never_read(void *opaque, void *buf, size_t count, uint64_t offset)
{
    (void)opaque;
    (void)buf;
    (void)count;
    (void)offset;
    errno = EINVAL;
    return -1;
}

/* The build fails with code for an empty disk of this size. */
static void build_size(uint64_t size, uint32_t cluster_size, int code)
{
    struct q2s_options *options = make_options(cluster_size,
                                               Q2S_COMPRESSION_NONE, 0);
    struct q2s_source *source;
    struct q2s_plan *plan = NULL;

    EXPECT_OK(q2s_source_from_callbacks(size, never_read, no_data, NULL, NULL,
                                        &source, &error));
    if (code) {
        EXPECT_FAIL(code, q2s_plan_build(source, options, NULL, NULL, &plan,
                                         &error));
        assert_int_equal(q2s_plan_build(source, options, NULL, NULL, &plan,
                                        NULL),
                         -1);
    } else {
        uint8_t header[512];

        EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
        assert_true(q2s_plan_get_virtual_size(plan) == size);
        EXPECT_OK(q2s_pread(plan, source, header, sizeof header, 0, &error));
        assert_memory_equal(header, "QFI\xfb", 4);
        q2s_plan_free(plan);
    }
    q2s_source_close(source);
    q2s_options_free(options);
}

/* qcow2 and QEMU limits: the L1 table of at most 32 MiB, 2^22 entries,
 * which at 2 MiB clusters map 2^61 bytes. */
static void test_too_big(void **state)
{
    (void)state;
    build_size(UINT64_C(1) << 62, 512, EFBIG);
    build_size(UINT64_C(1) << 62, 2 * MiB, EFBIG);
    build_size(UINT64_MAX, 2 * MiB, EFBIG);
    build_size(UINT64_MAX - 511, 65536, EFBIG);
    build_size(UINT64_C(1) << 61, 2 * MiB, 0);
    build_size((UINT64_C(1) << 61) + 512, 2 * MiB, EFBIG);
    /* 512-byte clusters: 64 entries to an L2 table, 2^28 bytes of L1. */
    build_size(UINT64_C(1) << 37, 512, 0);
    build_size((UINT64_C(1) << 37) + 512, 512, EFBIG);
}

/* Data that compresses differently when it is compressed again. */
static void test_changed_callbacks(void **state)
{
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_ZLIB,
                                               0);
    struct q2s_source *source;
    struct q2s_plan *plan;
    struct mem_disk d;

    (void)state;
    mem_disk_init(&d, NULL);
    source = mem_source(&d, true);
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    assert_true(q2s_plan_get_compressed_clusters(plan) > 0);
    fill_random(d.bytes, 3000, 4);
    EXPECT_FAIL(ESTALE, render_pipe(plan, source, NULL, &error));
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
    free(d.bytes);
}

/* Options that the build refuses before reading. */
static void test_build_refuses_options(void **state)
{
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_source *source;
    struct q2s_plan *plan = NULL;
    struct mem_disk d;

    (void)state;
    mem_disk_init(&d, NULL);
    source = mem_source(&d, true);
    /* A caller's input cannot be named as a data file. */
    EXPECT_OK(q2s_options_set_data_file(options, "disk.raw", false, &error));
    EXPECT_FAIL(EINVAL, q2s_plan_build(source, options, NULL, NULL, &plan,
                                       &error));
    assert_null(plan);
    assert_int_equal(d.reads, 0);
    q2s_source_close(source);
    q2s_options_free(options);
    free(d.bytes);
}

/* One pass: the plan reads nothing, the clusters the extents touch are
 * data (the extent of zeros too), and rendering reads only inside the
 * extents.  Not with compression: EINVAL before any read. */
static void test_one_pass(void **state)
{
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_source *source;
    struct q2s_plan *plan = NULL;
    struct mem_disk d;
    uint8_t *image;

    (void)state;
    mem_disk_init(&d, NULL);
    source = mem_source(&d, true);
    assert_false(q2s_options_get_one_pass(options));
    q2s_options_set_one_pass(options, true);
    assert_true(q2s_options_get_one_pass(options));
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    assert_int_equal(d.reads, 0);
    assert_true(q2s_plan_get_data_clusters(plan) > 6);
    image = pread_all(plan, source);
    assert_true(d.reads > 0);
    assert_int_equal(d.bad_reads, 0);
    free(image);
    q2s_plan_free(plan);

    d.reads = 0;
    EXPECT_OK(q2s_options_set_compression(options, Q2S_COMPRESSION_ZLIB, 6,
                                          &error));
    EXPECT_FAIL(EINVAL, q2s_plan_build(source, options, NULL, NULL, &plan,
                                       &error));
    assert_int_equal(d.reads, 0);
    q2s_source_close(source);
    q2s_options_free(options);
    free(d.bytes);
}

/* The output's errors are the system's. */
static void test_output_errors(void **state)
{
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE,
                                               0);
    struct q2s_source *source;
    struct q2s_plan *plan;
    struct mem_disk d;
    void (*old)(int);
    int fds[2];

    (void)state;
    mem_disk_init(&d, NULL);
    source = mem_source(&d, true);
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    EXPECT_FAIL(EBADF, q2s_render(plan, source, -1, 0, 4096, NULL, NULL,
                                  &error));
    /* A pipe nobody reads; SIGPIPE is the caller's to ignore. */
    old = signal(SIGPIPE, SIG_IGN);
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    EXPECT_FAIL(EPIPE, q2s_render(plan, source, fds[1], 0,
                                  q2s_plan_get_image_size(plan), NULL, NULL,
                                  &error));
    close(fds[1]);
    signal(SIGPIPE, old);
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
    free(d.bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callbacks_plain),
        cmocka_unit_test(test_callbacks_compressed),
        cmocka_unit_test(test_callbacks_all_data),
        cmocka_unit_test(test_callbacks_extents_past_end),
        cmocka_unit_test(test_callback_errors),
        cmocka_unit_test(test_callback_errors_after_build),
        cmocka_unit_test(test_callback_close),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_changed_callbacks),
        cmocka_unit_test(test_build_refuses_options),
        cmocka_unit_test(test_one_pass),
        cmocka_unit_test(test_output_errors),
    };

    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
