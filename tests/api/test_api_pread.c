/* q2s_pread() gives the bytes that q2s_render() streams, for any range:
 * around every boundary of the image (the header, the refcount table and
 * blocks, the L1 and L2 tables, the data, the compressed region, the end),
 * in chunks of any size in either order, and from several threads at
 * once; ranges past the end are refused.  The image is checked against
 * the disk too: its header and tables, its data clusters, and with
 * qemu-img compare when it is installed. */
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <qcow2-to-stdout.h>

#include "api_test.h"

/* The disk: not a whole number of sectors, let alone clusters. */
#define DISK_SIZE (5 * MiB + 1536 + 77)

static char disk_path[4200], image_path[4200], range_path[4200];
static uint8_t *disk;       /* its bytes, holes as zeros */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint8_t random_byte(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 24);
}

/* Bytes that compress, and bytes that do not. */
static void put_text(uint64_t offset, size_t length)
{
    for (size_t i = 0; i < length; i++)
        disk[offset + i] = (uint8_t)("qcow2 compresses this line. "[i % 28]);
}

static void put_random(uint64_t offset, size_t length)
{
    for (size_t i = 0; i < length; i++)
        disk[offset + i] = random_byte();
}

static void write_region(int fd, uint64_t offset, size_t length)
{
    assert_int_equal(pwrite(fd, disk + offset, length, (off_t)offset),
                     (ssize_t)length);
}

static int setup(void **state)
{
    int fd;

    if (scratch_setup(state) < 0)
        return -1;
    snprintf(disk_path, sizeof disk_path, "%s/disk.raw", scratch);
    snprintf(image_path, sizeof image_path, "%s/image.qcow2", scratch);
    snprintf(range_path, sizeof range_path, "%s/range", scratch);
    disk = calloc(1, DISK_SIZE);
    if (!disk)
        return -1;
    /* Compressible then random data in the first cluster; a run of
     * clusters, alternately random and compressible, across the 64 KiB
     * boundaries; a cluster of written zeros; a few bytes inside a
     * cluster; two clusters that do not compress; and the last bytes,
     * which end within a sector. */
    put_text(0, 4096);
    put_random(4096, 4096);
    for (uint64_t at = MiB - 1000; at < MiB - 1000 + 10 * 32768;
         at += 32768) {
        if ((at / 32768) % 2)
            put_random(at, 32768);
        else
            put_text(at, 32768);
    }
    put_text(3 * MiB + 100, 100);
    put_random(4 * MiB, 131072);
    put_random(DISK_SIZE - 700, 300);
    put_text(DISK_SIZE - 400, 400);

    fd = open(disk_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, DISK_SIZE) < 0)
        return -1;
    write_region(fd, 0, 8192);
    write_region(fd, MiB - 1000, 10 * 32768);
    write_region(fd, 2 * MiB, 65536);  /* zeros */
    write_region(fd, 3 * MiB, 4096);
    write_region(fd, 4 * MiB, 131072);
    write_region(fd, DISK_SIZE - 5000, 5000);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    free(disk);
    return scratch_teardown(state);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Fails at the first byte that differs, saying where. */
static void compare_at(const uint8_t *got, const uint8_t *expected,
                       uint64_t length, uint64_t offset, const char *what)
{
    if (memcmp(got, expected, length) != 0) {
        uint64_t i = 0;

        while (got[i] == expected[i])
            i++;
        fail_msg("%s: bytes %llu to %llu: byte %llu is %u, not %u", what,
                 (unsigned long long)offset,
                 (unsigned long long)(offset + length),
                 (unsigned long long)(offset + i), got[i], expected[i]);
    }
}

/* A thread that reads a pipe to its end, into memory that grows. */
struct collect {
    int fd;
    uint8_t *bytes;
    size_t length, capacity;
};

static void *collect(void *opaque)
{
    struct collect *d = opaque;

    for (;;) {
        ssize_t n;

        if (d->capacity - d->length < 65536) {
            d->capacity = d->capacity ? 2 * d->capacity : 1 << 20;
            d->bytes = realloc(d->bytes, d->capacity);
            if (!d->bytes)
                abort();
        }
        n = read(d->fd, d->bytes + d->length, d->capacity - d->length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        d->length += (size_t)n;
    }
    return NULL;
}

/* The image's bytes [offset, offset + length) as q2s_render() streams
 * them into a pipe. */
static uint8_t *render_to_pipe(const struct q2s_plan *plan,
                               struct q2s_source *source, uint64_t offset,
                               uint64_t length)
{
    struct collect d = { 0 };
    pthread_t thread;
    int fds[2];

    assert_int_equal(pipe(fds), 0);
    d.fd = fds[0];
    assert_int_equal(pthread_create(&thread, NULL, collect, &d), 0);
    EXPECT_OK(q2s_render(plan, source, fds[1], offset, length, NULL, NULL,
                         &error));
    close(fds[1]);
    pthread_join(thread, NULL);
    close(fds[0]);
    assert_int_equal(d.length, length);
    return d.bytes;
}

/* The same into a regular file, read back. */
static uint8_t *render_to_file(const char *path, const struct q2s_plan *plan,
                               struct q2s_source *source, uint64_t offset,
                               uint64_t length)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    uint8_t *bytes = malloc(length ? length : 1);
    struct stat st;

    assert_true(fd >= 0);
    assert_non_null(bytes);
    EXPECT_OK(q2s_render(plan, source, fd, offset, length, NULL, NULL,
                         &error));
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, length);
    assert_int_equal(pread(fd, bytes, length, 0), (ssize_t)length);
    close(fd);
    return bytes;
}

struct config {
    uint32_t cluster_size;
    uint32_t refcount_bits;
    enum q2s_compression compression;
    int level;
    uint64_t cache;
};

/* What one test works on: the plan, its stream, and the boundaries found
 * in the stream. */
struct image {
    const struct config *config;
    struct q2s_source *source;
    struct q2s_plan *plan;
    uint8_t *stream;
    uint64_t size;
    uint32_t cluster_size;
    uint64_t boundaries[256];
    size_t boundary_count;
};

static void add_boundary(struct image *im, uint64_t b)
{
    assert_true(im->boundary_count < sizeof im->boundaries /
                                         sizeof im->boundaries[0]);
    im->boundaries[im->boundary_count++] = b;
}

static uint64_t expected_data_clusters(uint32_t cluster_size)
{
    uint64_t count = 0;

    for (uint64_t at = 0; at < DISK_SIZE; at += cluster_size) {
        uint64_t length = DISK_SIZE - at < cluster_size ? DISK_SIZE - at
                                                        : cluster_size;

        for (uint64_t i = 0; i < length; i++) {
            if (disk[at + i]) {
                count++;
                break;
            }
        }
    }
    return count;
}

#define L1_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define COMPRESSED_FLAG (UINT64_C(1) << 62)

/* Reads the header and the tables of the stream: they must agree with
 * the plan and the disk; their offsets are the boundaries to read
 * around. */
static void parse_image(struct image *im)
{
    const uint8_t *s = im->stream;
    const struct q2s_plan *plan = im->plan;
    uint32_t cluster_bits = be32(s + 20);
    uint64_t cs = (uint64_t)1 << cluster_bits;
    uint64_t l1_offset = be64(s + 40), refcount_table = be64(s + 48);
    uint64_t l1_entries = be32(s + 36);
    uint64_t first_l2 = UINT64_MAX, first_data = UINT64_MAX;
    uint64_t first_compressed = UINT64_MAX, last_compressed_end = 0;
    uint64_t standard = 0, compressed = 0, l2_tables = 0;
    uint32_t x = 62 - (cluster_bits - 8);
    uint64_t compressed_region;

    assert_int_equal(be32(s), 0x514649fb);
    assert_int_equal(be32(s + 4), 3);
    assert_int_equal(cs, im->cluster_size);
    assert_true(be64(s + 24) == q2s_plan_get_virtual_size(plan));
    assert_int_equal(l1_entries, q2s_plan_get_l1_entries(plan));
    assert_int_equal(be32(s + 56), q2s_plan_get_refcount_table_clusters(plan));
    assert_int_equal(be32(s + 96), __builtin_ctz(im->config->refcount_bits));
    assert_true(l1_offset % cs == 0 && l1_offset < im->size);
    assert_true(refcount_table % cs == 0 && refcount_table < im->size);

    add_boundary(im, 0);
    add_boundary(im, cs);
    add_boundary(im, refcount_table);
    add_boundary(im, be64(s + refcount_table));  /* the first block */
    add_boundary(im, l1_offset);
    add_boundary(im, l1_offset + l1_entries * 8);
    for (uint64_t i = 0; i < l1_entries; i++) {
        uint64_t l2 = be64(s + l1_offset + 8 * i) & L1_OFFSET_MASK;

        if (!l2)
            continue;
        l2_tables++;
        if (l2 < first_l2)
            first_l2 = l2;
        assert_true(l2 + cs <= im->size);
        for (uint64_t j = 0; j < cs / 8; j++) {
            uint64_t entry = be64(s + l2 + 8 * j);
            uint64_t guest = (i * (cs / 8) + j) * cs;

            if (entry & COMPRESSED_FLAG) {
                uint64_t at = entry & ((UINT64_C(1) << x) - 1);
                uint64_t sectors = ((entry >> x) &
                                    ((UINT64_C(1) << (cluster_bits - 8)) - 1)) + 1;
                uint64_t end = (at & ~UINT64_C(511)) + sectors * 512;

                compressed++;
                if (at < first_compressed)
                    first_compressed = at;
                if (end > last_compressed_end)
                    last_compressed_end = end;
                if (compressed <= 8) {
                    add_boundary(im, at);
                    add_boundary(im, end);
                }
            } else if (entry & L1_OFFSET_MASK) {
                uint64_t at = entry & L1_OFFSET_MASK;
                uint64_t length = DISK_SIZE - guest < cs ? DISK_SIZE - guest
                                                         : cs;

                standard++;
                if (at < first_data)
                    first_data = at;
                assert_true(at + cs <= im->size);
                /* The data cluster holds the disk's bytes, zeros after
                 * its end. */
                assert_true(guest < DISK_SIZE);
                compare_at(s + at, disk + guest, length, at, "data cluster");
                for (uint64_t k = length; k < cs; k++)
                    assert_int_equal(s[at + k], 0);
            }
        }
    }
    assert_int_equal(l2_tables, q2s_plan_get_l2_tables(plan));
    assert_int_equal(standard + compressed, q2s_plan_get_data_clusters(plan));
    assert_int_equal(compressed, q2s_plan_get_compressed_clusters(plan));
    assert_int_equal(standard + compressed,
                     expected_data_clusters(im->cluster_size));
    add_boundary(im, first_l2);
    add_boundary(im, first_data);
    /* The compressed region ends the image, padded to a sector. */
    compressed_region = im->size -
                        ((q2s_plan_get_compressed_bytes(plan) + 511) & ~511u);
    add_boundary(im, compressed_region);
    if (compressed > 0) {
        assert_int_equal(first_compressed, compressed_region);
        assert_true(last_compressed_end <= im->size);
        assert_true(compressed_region % cs == 0);
        add_boundary(im, first_compressed);
        assert_true(im->size <= q2s_plan_get_total_clusters(plan) * cs);
        assert_true(im->size > (q2s_plan_get_total_clusters(plan) - 1) * cs);
    } else {
        assert_int_equal(q2s_plan_get_compressed_bytes(plan), 0);
        assert_int_equal(im->size, q2s_plan_get_total_clusters(plan) * cs);
    }
    /* The end, and the clusters before it. */
    for (uint64_t i = 0; i < 4 && i * cs <= im->size; i++)
        add_boundary(im, (im->size / cs - i) * cs);
    add_boundary(im, im->size);
}

/* qemu-img reads the same disk from the image, when it is installed. */
static void qemu_img_compare(const uint8_t *stream, uint64_t size)
{
    char command[9000];
    int fd, status;

    if (system("command -v qemu-img >/dev/null 2>&1") != 0)
        return;
    fd = open(image_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, stream, size), (ssize_t)size);
    close(fd);
    snprintf(command, sizeof command,
             "qemu-img compare -q -f raw -F qcow2 '%s' '%s'", disk_path,
             image_path);
    status = system(command);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void open_image(struct image *im, const struct config *config)
{
    struct q2s_options *options = q2s_options_new();

    memset(im, 0, sizeof *im);
    im->config = config;
    im->cluster_size = config->cluster_size;
    EXPECT_OK(q2s_options_set_cluster_size(options, config->cluster_size,
                                           &error));
    EXPECT_OK(q2s_options_set_refcount_bits(options, config->refcount_bits,
                                            &error));
    EXPECT_OK(q2s_options_set_compression(options, config->compression,
                                          config->level, &error));
    EXPECT_OK(q2s_options_set_threads(options, 2, &error));
    EXPECT_OK(q2s_options_set_compress_cache(options, config->cache, &error));
    EXPECT_OK(q2s_source_open(disk_path, NULL, &im->source, &error));
    assert_int_equal(q2s_source_get_size(im->source), DISK_SIZE);
    EXPECT_OK(q2s_plan_build(im->source, options, NULL, NULL, &im->plan,
                             &error));
    q2s_options_free(options);

    assert_int_equal(q2s_plan_get_input_size(im->plan), DISK_SIZE);
    assert_int_equal(q2s_plan_get_virtual_size(im->plan),
                     (DISK_SIZE + 511) & ~511);
    assert_int_equal(q2s_plan_get_cluster_size(im->plan),
                     config->cluster_size);
    assert_int_equal(q2s_plan_get_refcount_bits(im->plan),
                     config->refcount_bits);
    assert_int_equal(q2s_plan_get_data_clusters(im->plan),
                     expected_data_clusters(config->cluster_size));
    if (config->compression == Q2S_COMPRESSION_NONE ||
        config->refcount_bits == 1) {
        assert_int_equal(q2s_plan_get_compressed_clusters(im->plan), 0);
    } else {
        /* The text compresses, the random bytes do not. */
        assert_true(q2s_plan_get_compressed_clusters(im->plan) > 0);
        assert_true(q2s_plan_get_compressed_clusters(im->plan) <
                    q2s_plan_get_data_clusters(im->plan));
        assert_true(q2s_plan_get_compressed_bytes(im->plan) > 0);
    }
    im->size = q2s_plan_get_image_size(im->plan);
    im->stream = render_to_pipe(im->plan, im->source, 0, im->size);
    parse_image(im);
}

static void close_image(struct image *im)
{
    free(im->stream);
    q2s_plan_free(im->plan);
    q2s_source_close(im->source);
}

static void check_pread(const struct image *im, struct q2s_source *source,
                        uint64_t offset, uint64_t length, const char *what)
{
    uint8_t *buf = malloc(length ? length : 1);

    assert_non_null(buf);
    memset(buf, 0xa5, length);
    EXPECT_OK(q2s_pread(im->plan, source, buf, length, offset, &error));
    compare_at(buf, im->stream + offset, length, offset, what);
    free(buf);
}

static void check_chunks(const struct image *im, uint64_t chunk, bool reverse)
{
    uint64_t chunks = (im->size + chunk - 1) / chunk;

    for (uint64_t n = 0; n < chunks; n++) {
        uint64_t i = reverse ? chunks - 1 - n : n;
        uint64_t offset = i * chunk;
        uint64_t length = im->size - offset < chunk ? im->size - offset
                                                    : chunk;

        check_pread(im, im->source, offset, length, "chunk");
    }
}

static void check_out_of_range(const struct image *im)
{
    uint8_t buf[16];
    int fd = open(range_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct stat st;

    assert_true(fd >= 0);
    EXPECT_FAIL(EINVAL, q2s_pread(im->plan, im->source, buf, 1, im->size,
                                  &error));
    EXPECT_FAIL(EINVAL, q2s_pread(im->plan, im->source, buf, 0, im->size + 1,
                                  &error));
    EXPECT_FAIL(EINVAL, q2s_pread(im->plan, im->source, buf, 11,
                                  im->size - 10, &error));
    EXPECT_FAIL(EINVAL, q2s_pread(im->plan, im->source, buf, 2, UINT64_MAX,
                                  &error));
    EXPECT_FAIL(EINVAL, q2s_pread(im->plan, im->source, buf, SIZE_MAX, 1,
                                  &error));
    assert_int_equal(q2s_pread(im->plan, im->source, buf, 1, im->size, NULL),
                     -1);
    EXPECT_FAIL(EINVAL, q2s_render(im->plan, im->source, fd, im->size, 1,
                                   NULL, NULL, &error));
    EXPECT_FAIL(EINVAL, q2s_render(im->plan, im->source, fd, 0, im->size + 1,
                                   NULL, NULL, &error));
    EXPECT_FAIL(EINVAL, q2s_render(im->plan, im->source, fd, UINT64_MAX, 2,
                                   NULL, NULL, &error));
    assert_int_equal(q2s_render(im->plan, im->source, fd, 1, UINT64_MAX, NULL,
                                NULL, NULL),
                     -1);
    /* Nothing at the end is fine, and writes nothing. */
    EXPECT_OK(q2s_pread(im->plan, im->source, buf, 0, im->size, &error));
    EXPECT_OK(q2s_pread(im->plan, im->source, buf, 0, 0, &error));
    EXPECT_OK(q2s_render(im->plan, im->source, fd, im->size, 0, NULL, NULL,
                         &error));
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 0);
    close(fd);
}

static void random_access_equals_stream(const struct config *config)
{
    static const uint64_t chunks[] = { MiB, 65537, 4093 };
    struct q2s_source *second;
    struct image im;
    uint8_t *copy;

    open_image(&im, config);
    qemu_img_compare(im.stream, im.size);

    /* Into a file, the same bytes as into a pipe. */
    copy = render_to_file(image_path, im.plan, im.source, 0, im.size);
    compare_at(copy, im.stream, im.size, 0, "render into a file");
    free(copy);

    /* The whole image at once. */
    check_pread(&im, im.source, 0, im.size, "whole image");

    /* Around each boundary. */
    for (size_t i = 0; i < im.boundary_count; i++) {
        uint64_t b = im.boundaries[i];
        const uint64_t ks[] = { 1, 7, 512, im.cluster_size + 3 };

        assert_true(b <= im.size);
        for (size_t j = 0; j < 4; j++) {
            uint64_t from = b > ks[j] ? b - ks[j] : 0;
            uint64_t to = im.size - b > ks[j] ? b + ks[j] : im.size;

            check_pread(&im, im.source, from, to - from, "window");
            if (j == 1) {
                /* q2s_render of the same range, into a file and a pipe. */
                copy = render_to_file(range_path, im.plan, im.source, from,
                                      to - from);
                compare_at(copy, im.stream + from, to - from, from,
                           "rendered window");
                free(copy);
                copy = render_to_pipe(im.plan, im.source, from, to - from);
                compare_at(copy, im.stream + from, to - from, from,
                           "rendered window");
                free(copy);
            }
        }
    }

    /* In chunks, forward and backward. */
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        check_chunks(&im, chunks[i], false);
        if (chunks[i] != MiB)
            check_chunks(&im, chunks[i], true);
    }

    /* Through another source opened the same way. */
    EXPECT_OK(q2s_source_open(disk_path, NULL, &second, &error));
    check_pread(&im, second, 0, im.size, "second source");
    check_pread(&im, second, im.size / 3, im.size / 3, "second source");
    q2s_source_close(second);

    check_out_of_range(&im);
    close_image(&im);
}

static const struct config plain = { 65536, 16, Q2S_COMPRESSION_NONE,
                                     Q2S_COMPRESSION_LEVEL_DEFAULT, 0 };
static const struct config small = { 512, 16, Q2S_COMPRESSION_NONE,
                                     Q2S_COMPRESSION_LEVEL_DEFAULT, 0 };
static const struct config zlib_uncached = {
    65536, 16, Q2S_COMPRESSION_ZLIB, Q2S_COMPRESSION_LEVEL_DEFAULT, 0 };
static const struct config zlib_cached = { 65536, 16, Q2S_COMPRESSION_ZLIB, 1,
                                           64 * MiB };
static const struct config zstd_uncached = {
    65536, 16, Q2S_COMPRESSION_ZSTD, Q2S_COMPRESSION_LEVEL_DEFAULT, 0 };
static const struct config zstd_cached = { 65536, 64, Q2S_COMPRESSION_ZSTD,
                                           -5, 64 * MiB };
/* A cache that holds part of the compressed region. */
static const struct config zstd_small_clusters = {
    512, 8, Q2S_COMPRESSION_ZSTD, Q2S_COMPRESSION_LEVEL_DEFAULT, 20000 };
static const struct config zlib_refcount_1 = {
    4096, 1, Q2S_COMPRESSION_ZLIB, Q2S_COMPRESSION_LEVEL_DEFAULT, 0 };

static void test_plain(void **state)
{
    (void)state;
    random_access_equals_stream(&plain);
}

static void test_small_clusters(void **state)
{
    (void)state;
    random_access_equals_stream(&small);
}

static void test_zlib_uncached(void **state)
{
    (void)state;
    random_access_equals_stream(&zlib_uncached);
}

static void test_zlib_cached(void **state)
{
    (void)state;
    random_access_equals_stream(&zlib_cached);
}

static void test_zstd_uncached(void **state)
{
    (void)state;
    random_access_equals_stream(&zstd_uncached);
}

static void test_zstd_cached(void **state)
{
    (void)state;
    random_access_equals_stream(&zstd_cached);
}

static void test_zstd_small_clusters(void **state)
{
    (void)state;
    random_access_equals_stream(&zstd_small_clusters);
}

/* 1-bit refcounts cannot count shared clusters: nothing is compressed. */
static void test_zlib_refcount_1(void **state)
{
    (void)state;
    random_access_equals_stream(&zlib_refcount_1);
}

/* Threads reading one plan at once, each through its own source. */
struct reader {
    const struct image *im;
    unsigned seed;
    int mismatches, failures;
};

static void *read_ranges(void *opaque)
{
    struct reader *r = opaque;
    const struct image *im = r->im;
    struct q2s_source *source;
    uint8_t *buf = malloc(3 * 65536);

    if (!buf || q2s_source_open(disk_path, NULL, &source, NULL) < 0) {
        r->failures++;
        free(buf);
        return NULL;
    }
    for (int i = 0; i < 60; i++) {
        uint64_t offset = (uint64_t)rand_r(&r->seed) % im->size;
        uint64_t length = (uint64_t)rand_r(&r->seed) % (3 * 65536);

        if (length > im->size - offset)
            length = im->size - offset;
        if (q2s_pread(im->plan, source, buf, length, offset, NULL) < 0)
            r->failures++;
        else if (memcmp(buf, im->stream + offset, length) != 0)
            r->mismatches++;
    }
    q2s_source_close(source);
    free(buf);
    return NULL;
}

static void threads_read(const struct config *config)
{
    struct reader readers[4];
    pthread_t threads[4];
    struct image im;

    open_image(&im, config);
    for (int i = 0; i < 4; i++) {
        readers[i] = (struct reader){ .im = &im, .seed = 17u * (unsigned)i };
        assert_int_equal(pthread_create(&threads[i], NULL, read_ranges,
                                        &readers[i]),
                         0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(readers[i].failures, 0);
        assert_int_equal(readers[i].mismatches, 0);
    }
    close_image(&im);
}

static void test_threads_uncached(void **state)
{
    (void)state;
    threads_read(&zlib_uncached);
}

static void test_threads_cached(void **state)
{
    (void)state;
    threads_read(&zstd_cached);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_small_clusters),
        cmocka_unit_test(test_zlib_uncached),
        cmocka_unit_test(test_zlib_cached),
        cmocka_unit_test(test_zstd_uncached),
        cmocka_unit_test(test_zstd_cached),
        cmocka_unit_test(test_zstd_small_clusters),
        cmocka_unit_test(test_zlib_refcount_1),
        cmocka_unit_test(test_threads_uncached),
        cmocka_unit_test(test_threads_cached),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
