/* The importer through the public interface alone, as an embedder uses
 * it: an image made by the exporter in memory (q2s_pread()), read back as
 * a stream through a read callback in small pieces, into a callbacks
 * target; the disk must come back exactly, at every cluster size, plain
 * and compressed, on one thread and several.  Also: the header's getters,
 * --apply of an overlay onto what the target holds, an overlay refused
 * without apply, a target too small, a second run refused, a cancel, and
 * a descriptor target (a pipe: the disk in order). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>

#include "api_test.h"

#define DISK_SIZE (3 * MiB + 4096 + 512)

static uint64_t rng = 0x2545f4914f6cdd1du;

static void fill_disk(uint8_t *disk, uint64_t seed)
{
    rng = seed;
    memset(disk, 0, DISK_SIZE);
    for (size_t i = 0; i < 200000; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        disk[70000 + i] = (uint8_t)(i % 3 ? rng >> 24 : 'q');
    }
    memcpy(disk + 2 * MiB + 5, "in the middle", 13);
    memset(disk + DISK_SIZE - 700, 0x5a, 700);
}

struct memory_disk {
    const uint8_t *bytes;
    uint64_t size;
};

static int memory_read(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct memory_disk *d = opaque;

    memcpy(buf, d->bytes + offset, count);
    return 0;
}

/* The image of disk with options, made in memory. */
static uint8_t *export_image(const uint8_t *disk, struct q2s_options *options,
                             uint64_t *image_size)
{
    struct memory_disk d = {disk, DISK_SIZE};
    struct q2s_source *source;
    struct q2s_plan *plan;
    uint8_t *image;

    EXPECT_OK(q2s_source_from_callbacks(DISK_SIZE, memory_read, NULL, NULL,
                                        &d, &source, &error));
    EXPECT_OK(q2s_plan_build(source, options, NULL, NULL, &plan, &error));
    *image_size = q2s_plan_get_image_size(plan);
    image = malloc(*image_size);
    assert_non_null(image);
    EXPECT_OK(q2s_pread(plan, source, image, *image_size, 0, &error));
    q2s_plan_free(plan);
    q2s_source_close(source);
    return image;
}

/* The stream, handed out a few odd-sized pieces at a time. */
struct stream {
    const uint8_t *bytes;
    uint64_t size, position;
    struct q2s_import *cancel_at_half;
};

static int stream_read(void *opaque, void *buf, size_t count, size_t *done)
{
    struct stream *s = opaque;
    size_t n = 1 + (size_t)(s->position * 40503 % 30011);

    if (s->cancel_at_half && s->position > s->size / 2)
        q2s_import_cancel(s->cancel_at_half);
    if (n > count)
        n = count;
    if (n > s->size - s->position)
        n = (size_t)(s->size - s->position);
    memcpy(buf, s->bytes + s->position, n);
    s->position += n;
    *done = n;
    return 0;
}

struct memory_target {
    uint8_t *bytes;
    uint64_t size;
    unsigned flushes, closes;
};

static int target_write(void *opaque, const void *buf, size_t count,
                        uint64_t offset)
{
    struct memory_target *t = opaque;

    assert_true(offset + count <= t->size);
    memcpy(t->bytes + offset, buf, count);
    return 0;
}

static int target_zero(void *opaque, uint64_t offset, uint64_t count)
{
    struct memory_target *t = opaque;

    assert_true(offset + count <= t->size);
    memset(t->bytes + offset, 0, count);
    return 0;
}

static int target_flush(void *opaque)
{
    ((struct memory_target *)opaque)->flushes++;
    return 0;
}

static void target_close(void *opaque)
{
    ((struct memory_target *)opaque)->closes++;
}

/* Imports image into t (which keeps what it held where the image says
 * nothing, with apply). */
static int import_into(const uint8_t *image, uint64_t image_size,
                       struct memory_target *t, uint32_t threads, bool apply,
                       struct q2s_error **error_out)
{
    struct stream s = {image, image_size, 0, NULL};
    struct q2s_import_options *options = q2s_import_options_new();
    struct q2s_import *imp;
    struct q2s_target *target;
    int ret;

    assert_non_null(options);
    q2s_import_options_set_apply(options, apply);
    EXPECT_OK(q2s_import_options_set_threads(options, threads, &error));
    EXPECT_OK(q2s_import_new(stream_read, &s, options, &imp, &error));
    q2s_import_options_free(options);  /* copied */
    EXPECT_OK(q2s_target_from_callbacks(t->size, target_write, target_zero,
                                        target_flush, target_close, t,
                                        &target, &error));
    assert_int_equal(q2s_target_get_size(target), t->size);
    ret = q2s_import_run(imp, target, NULL, NULL, error_out);
    if (ret == 0)
        assert_int_equal(q2s_import_get_bytes_read(imp), image_size);
    q2s_target_close(target);
    q2s_import_free(imp);
    return ret;
}

static void round_trip(uint32_t cluster_size, enum q2s_compression compression,
                       uint32_t threads)
{
    uint8_t *disk = malloc(DISK_SIZE);
    struct memory_target t = {malloc(DISK_SIZE), DISK_SIZE, 0, 0};
    struct q2s_options *options = make_options(cluster_size, compression, 0);
    uint64_t image_size;
    uint8_t *image;

    assert_non_null(disk);
    assert_non_null(t.bytes);
    fill_disk(disk, cluster_size + threads);
    memset(t.bytes, 0xee, DISK_SIZE);  /* none of it may stay */
    image = export_image(disk, options, &image_size);
    EXPECT_OK(import_into(image, image_size, &t, threads, false, &error));
    assert_memory_equal(t.bytes, disk, DISK_SIZE);
    assert_int_equal(t.flushes, 1);
    assert_int_equal(t.closes, 1);
    q2s_options_free(options);
    free(image);
    free(disk);
    free(t.bytes);
}

static void test_round_trips(void **state)
{
    (void)state;
    round_trip(512, Q2S_COMPRESSION_NONE, 1);
    round_trip(65536, Q2S_COMPRESSION_NONE, 1);
    round_trip(2 * MiB, Q2S_COMPRESSION_NONE, 1);
    round_trip(4096, Q2S_COMPRESSION_ZLIB, 1);
    round_trip(65536, Q2S_COMPRESSION_ZSTD, 3);
    round_trip(65536, Q2S_COMPRESSION_ZLIB, 2);
}

static void test_header_getters(void **state)
{
    uint8_t *disk = calloc(1, DISK_SIZE);
    struct q2s_options *options = make_options(4096, Q2S_COMPRESSION_ZSTD, 0);
    uint64_t image_size;
    uint8_t *image;
    struct stream s;
    struct q2s_import_options *import_options = q2s_import_options_new();
    struct q2s_import *imp;

    (void)state;
    assert_non_null(disk);
    image = export_image(disk, options, &image_size);
    s = (struct stream){image, image_size, 0, NULL};
    EXPECT_OK(q2s_import_new(stream_read, &s, import_options, &imp, &error));
    EXPECT_OK(q2s_import_read_header(imp, &error));
    assert_int_equal(q2s_import_get_virtual_size(imp), DISK_SIZE);
    assert_int_equal(q2s_import_get_cluster_size(imp), 4096);
    assert_int_equal(q2s_import_get_version(imp), 3);
    assert_int_equal(q2s_import_get_refcount_bits(imp), 16);
    assert_int_equal(q2s_import_get_compression(imp), Q2S_COMPRESSION_ZSTD);
    assert_false(q2s_import_get_extended_l2(imp));
    assert_null(q2s_import_get_backing_file(imp));
    q2s_import_free(imp);
    q2s_import_options_free(import_options);
    q2s_options_free(options);
    free(image);
    free(disk);
}

/* An overlay of the disk's first version: applied onto it, the second;
 * without apply, refused; onto a target of another size, refused. */
static void test_apply(void **state)
{
    uint8_t *v1 = malloc(DISK_SIZE), *v2 = malloc(DISK_SIZE);
    struct memory_target t = {malloc(DISK_SIZE), DISK_SIZE, 0, 0};
    struct memory_target small = {malloc(DISK_SIZE), DISK_SIZE - 512, 0, 0};
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE, 0);
    struct memory_disk base = {NULL, DISK_SIZE};
    struct q2s_source *source, *base_source;
    struct q2s_plan *plan;
    uint64_t image_size;
    uint8_t *image;

    (void)state;
    assert_non_null(v1);
    assert_non_null(v2);
    assert_non_null(t.bytes);
    assert_non_null(small.bytes);
    fill_disk(v1, 1);
    memcpy(v2, v1, DISK_SIZE);
    memset(v2 + 70000, 0, 130000);         /* zeros over data */
    memcpy(v2 + 3 * MiB, "new data", 8);    /* data over a hole */
    base.bytes = v1;
    EXPECT_OK(q2s_options_set_backing_file(options, "v1.qcow2", "qcow2",
                                           &error));
    {
        struct memory_disk d = {v2, DISK_SIZE};

        EXPECT_OK(q2s_source_from_callbacks(DISK_SIZE, memory_read, NULL,
                                            NULL, &d, &source, &error));
        EXPECT_OK(q2s_source_from_callbacks(DISK_SIZE, memory_read, NULL,
                                            NULL, &base, &base_source,
                                            &error));
        EXPECT_OK(q2s_plan_build_delta(source, base_source, options, NULL,
                                       NULL, &plan, &error));
        image_size = q2s_plan_get_image_size(plan);
        image = malloc(image_size);
        assert_non_null(image);
        EXPECT_OK(q2s_pread(plan, source, image, image_size, 0, &error));
        q2s_plan_free(plan);
        q2s_source_close(source);
        q2s_source_close(base_source);
    }
    /* The overlay holds less than the disk: it is an increment. */
    assert_true(image_size < DISK_SIZE / 4);
    memcpy(t.bytes, v1, DISK_SIZE);
    EXPECT_FAIL(EINVAL, import_into(image, image_size, &t, 1, false, &error));
    assert_memory_equal(t.bytes, v1, DISK_SIZE);
    EXPECT_FAIL(EINVAL, import_into(image, image_size, &small, 1, true,
                                    &error));
    EXPECT_OK(import_into(image, image_size, &t, 1, true, &error));
    assert_memory_equal(t.bytes, v2, DISK_SIZE);
    q2s_options_free(options);
    free(image);
    free(v1);
    free(v2);
    free(t.bytes);
    free(small.bytes);
}

static void test_refusals(void **state)
{
    uint8_t *disk = malloc(DISK_SIZE);
    struct memory_target t = {malloc(DISK_SIZE), DISK_SIZE - 1, 0, 0};
    struct q2s_options *options = make_options(65536, Q2S_COMPRESSION_NONE, 0);
    struct q2s_import_options *import_options = q2s_import_options_new();
    uint64_t image_size;
    uint8_t *image;
    struct q2s_import *imp;
    struct q2s_target *target;
    struct stream s;

    (void)state;
    assert_non_null(disk);
    fill_disk(disk, 9);
    image = export_image(disk, options, &image_size);
    /* A target smaller than the disk: refused before anything. */
    EXPECT_FAIL(ENOSPC, import_into(image, image_size, &t, 1, false, &error));
    t.size = DISK_SIZE;
    /* Not qcow2, and an empty stream. */
    s = (struct stream){disk + 70000, 4096, 0, NULL};
    EXPECT_OK(q2s_import_new(stream_read, &s, import_options, &imp, &error));
    EXPECT_FAIL(EPROTO, q2s_import_read_header(imp, &error));
    q2s_import_free(imp);
    s = (struct stream){image, 0, 0, NULL};
    EXPECT_OK(q2s_import_new(stream_read, &s, import_options, &imp, &error));
    EXPECT_FAIL(EPROTO, q2s_import_read_header(imp, &error));
    q2s_import_free(imp);
    /* Cut short: the data never comes. */
    s = (struct stream){image, image_size / 2, 0, NULL};
    EXPECT_OK(q2s_import_new(stream_read, &s, import_options, &imp, &error));
    EXPECT_OK(q2s_target_from_callbacks(DISK_SIZE, target_write, target_zero,
                                        NULL, NULL, &t, &target, &error));
    EXPECT_FAIL(EPROTO, q2s_import_run(imp, target, NULL, NULL, &error));
    /* Once only. */
    EXPECT_FAIL(EINVAL, q2s_import_run(imp, target, NULL, NULL, &error));
    q2s_target_close(target);
    q2s_import_free(imp);
    /* Cancelled half way. */
    s = (struct stream){image, image_size, 0, NULL};
    EXPECT_OK(q2s_import_new(stream_read, &s, import_options, &imp, &error));
    s.cancel_at_half = imp;
    EXPECT_OK(q2s_target_from_callbacks(DISK_SIZE, target_write, NULL, NULL,
                                        NULL, &t, &target, &error));
    EXPECT_FAIL(ECANCELED, q2s_import_run(imp, target, NULL, NULL, &error));
    q2s_target_close(target);
    q2s_import_free(imp);
    /* Options refuse what can never be right. */
    EXPECT_FAIL(EINVAL, q2s_import_options_set_threads(import_options, 0,
                                                       &error));
    EXPECT_FAIL(EINVAL, q2s_target_from_callbacks(1, NULL, NULL, NULL, NULL,
                                                  NULL, &target, &error));
    q2s_import_options_free(import_options);
    q2s_options_free(options);
    free(image);
    free(disk);
    free(t.bytes);
}

/* A pipe as the target: the disk in order, whole. */
static void test_fd_stream_target(void **state)
{
    uint8_t *disk = malloc(DISK_SIZE), *got = calloc(1, DISK_SIZE);
    struct q2s_options *options = make_options(4096, Q2S_COMPRESSION_NONE, 0);
    struct q2s_import_options *import_options = q2s_import_options_new();
    struct drain d = {.bytes = got};
    uint64_t image_size;
    uint8_t *image;
    struct q2s_import *imp;
    struct q2s_target *target;
    pthread_t thread;
    struct stream s;
    int fds[2];

    (void)state;
    assert_non_null(disk);
    assert_non_null(got);
    fill_disk(disk, 4);
    image = export_image(disk, options, &image_size);
    s = (struct stream){image, image_size, 0, NULL};
    assert_int_equal(pipe(fds), 0);
    d.fd = fds[0];
    assert_int_equal(pthread_create(&thread, NULL, drain, &d), 0);
    EXPECT_OK(q2s_import_new(stream_read, &s, import_options, &imp, &error));
    EXPECT_OK(q2s_target_from_fd(fds[1], &target, &error));
    assert_int_equal(q2s_target_get_size(target), UINT64_MAX);
    EXPECT_OK(q2s_import_run(imp, target, NULL, NULL, &error));
    q2s_target_close(target);  /* the descriptor stays ours */
    close(fds[1]);
    pthread_join(thread, NULL);
    close(fds[0]);
    assert_int_equal(d.length, DISK_SIZE);
    assert_memory_equal(got, disk, DISK_SIZE);
    q2s_import_free(imp);
    q2s_import_options_free(import_options);
    q2s_options_free(options);
    free(image);
    free(disk);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_header_getters),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_fd_stream_target),
    };

    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
