/* The scan, through an in-memory source that records every read. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "export/scan.h"

#define MAX_EXTENTS 8
#define MAX_READS 256

struct fake_source {
    struct q2s_source source;  /* first */
    const uint8_t *bytes;
    uint64_t extents[MAX_EXTENTS][2];  /* [start, end) that may hold data */
    size_t extent_count;
    uint64_t reads[MAX_READS][2];      /* offset, length */
    size_t read_count;
    uint64_t fail_at;                  /* a read covering it fails */
};

static int fake_next_data(struct q2s_source *source, uint64_t offset,
                          uint64_t *start, uint64_t *end,
                          struct q2s_error *err)
{
    struct fake_source *fake = (struct fake_source *)source;

    (void)err;
    for (size_t i = 0; i < fake->extent_count; i++) {
        if (fake->extents[i][1] > offset) {
            *start = fake->extents[i][0] > offset ? fake->extents[i][0]
                                                  : offset;
            *end = fake->extents[i][1];
            return 1;
        }
    }
    return 0;
}

static int fake_read(struct q2s_source *source, void *buf, size_t length,
                     uint64_t offset, struct q2s_error *err)
{
    struct fake_source *fake = (struct fake_source *)source;

    assert_true(fake->read_count < MAX_READS);
    assert_true(offset + length <= source->size);
    fake->reads[fake->read_count][0] = offset;
    fake->reads[fake->read_count][1] = length;
    fake->read_count++;
    if (fake->fail_at >= offset && fake->fail_at < offset + length)
        return q2s_error_set(err, EIO, "read error at offset %llu",
                             (unsigned long long)fake->fail_at);
    memcpy(buf, fake->bytes + offset, length);
    return 0;
}

static int fake_check_size(struct q2s_source *source, struct q2s_error *err)
{
    (void)source;
    (void)err;
    return 0;
}

static void fake_close(struct q2s_source *source)
{
    (void)source;
}

static const struct q2s_source_ops fake_ops = {
    .next_data = fake_next_data,
    .read = fake_read,
    .check_size = fake_check_size,
    .close = fake_close,
};

static void fake_init(struct fake_source *fake, const uint8_t *bytes,
                      uint64_t size)
{
    memset(fake, 0, sizeof *fake);
    fake->source.ops = &fake_ops;
    fake->source.size = size;
    fake->source.read_bytes = 1024 * 1024;
    fake->bytes = bytes;
    fake->fail_at = UINT64_MAX;
}

/* Scans the fake source at the given cluster size into *data. */
static int scan_fake(struct fake_source *fake, uint32_t cluster_size,
                     struct q2s_runs *data, struct q2s_error *err)
{
    struct q2s_options options;
    struct q2s_geometry g;

    q2s_options_init(&options);
    options.cluster_size = cluster_size;
    assert_int_equal(
        q2s_geometry_init(&g, &options, fake->source.size, err), 0);
    q2s_runs_init(data);
    return q2s_scan(&fake->source, &g, NULL, data, NULL, NULL, NULL, err);
}

/* Two extents end and start inside one cluster: each byte of data is read
 * once, and no hole is read, between extents or inside a cluster. */
static void test_reads_each_cluster_once(void **state)
{
    const uint64_t size = 64 * 4096 + 100;  /* last cluster partial */
    uint8_t *bytes = calloc(1, size);
    struct fake_source fake;
    struct q2s_runs data;
    struct q2s_error err;

    (void)state;
    bytes[4096 + 10] = 1;   /* cluster 1 */
    bytes[4096 + 3000] = 2; /* cluster 1 again */
    bytes[40 * 4096] = 3;   /* cluster 40 */
    bytes[size - 1] = 4;    /* cluster 64, the partial one */
    fake_init(&fake, bytes, size);
    fake.extents[0][0] = 4096 + 10;
    fake.extents[0][1] = 4096 + 20;
    fake.extents[1][0] = 4096 + 3000;
    fake.extents[1][1] = 3 * 4096 + 5;  /* cluster 3 holds only zeros */
    fake.extents[2][0] = 40 * 4096;
    fake.extents[2][1] = 40 * 4096 + 1;
    fake.extents[3][0] = size - 50;
    fake.extents[3][1] = size;
    fake.extent_count = 4;
    assert_int_equal(scan_fake(&fake, 4096, &data, &err), 0);

    /* Every read lies inside a reported extent (holes, even inside a
     * cluster that holds data, are never read), no byte is read twice,
     * and nothing past the end. */
    assert_int_equal(fake.read_count, 5);
    for (size_t i = 0; i < fake.read_count; i++) {
        uint64_t start = fake.reads[i][0], end = start + fake.reads[i][1];
        bool inside = false;

        for (size_t e = 0; e < fake.extent_count; e++)
            inside |= start >= fake.extents[e][0] && end <= fake.extents[e][1];
        assert_true(inside);
        if (i > 0)
            assert_true(start >= fake.reads[i - 1][0] + fake.reads[i - 1][1]);
    }
    assert_int_equal(fake.reads[0][0], 4096 + 10);
    assert_int_equal(fake.reads[1][0], 4096 + 3000);
    assert_int_equal(fake.reads[1][1], 4096 - 3000);
    assert_int_equal(fake.reads[2][0], 2 * 4096);
    assert_int_equal(fake.reads[4][0], size - 50);

    /* Clusters 2 and 3 were read but hold zeros: not allocated. */
    assert_int_equal(data.count, 3);
    assert_int_equal(data.runs[0].start, 1);
    assert_int_equal(data.runs[0].length, 1);
    assert_int_equal(data.runs[1].start, 40);
    assert_int_equal(data.runs[2].start, 64);
    q2s_runs_free(&data);
    free(bytes);
}

/* A long extent is read in bounded chunks, and every byte counts. */
static void test_long_extent(void **state)
{
    const uint64_t size = 5 * 1024 * 1024 + 512;
    uint8_t *bytes = calloc(1, size);
    struct fake_source fake;
    struct q2s_runs data;
    struct q2s_error err;
    uint64_t covered = 0;

    (void)state;
    for (uint64_t i = 0; i < size; i += 512 * 3)
        bytes[i + 511] = 0xff;  /* the last byte of every third sector */
    fake_init(&fake, bytes, size);
    fake.extents[0][1] = size;
    fake.extent_count = 1;
    assert_int_equal(scan_fake(&fake, 512, &data, &err), 0);
    for (size_t i = 0; i < fake.read_count; i++) {
        assert_int_equal(fake.reads[i][0], covered);
        assert_true(fake.reads[i][1] <= 1024 * 1024);
        covered += fake.reads[i][1];
    }
    assert_int_equal(covered, size);
    assert_int_equal(q2s_runs_total(&data), (size / 512 + 2) / 3);
    q2s_runs_free(&data);
    free(bytes);
}

/* A failed read ends the scan with the source's message. */
static void test_read_error(void **state)
{
    const uint64_t size = 1024 * 1024;
    uint8_t *bytes = calloc(1, size);
    struct fake_source fake;
    struct q2s_runs data;
    struct q2s_error err;

    (void)state;
    fake_init(&fake, bytes, size);
    fake.extents[0][1] = size;
    fake.extent_count = 1;
    fake.fail_at = 777777;
    assert_int_equal(scan_fake(&fake, 65536, &data, &err), -1);
    assert_string_equal(err.message, "read error at offset 777777");
    q2s_runs_free(&data);
    free(bytes);
}

/* An extent the source gets wrong is refused, not trusted. */
static void test_bad_extent(void **state)
{
    uint8_t bytes[4096] = { 0 };
    struct fake_source fake;
    struct q2s_runs data;
    struct q2s_error err;

    (void)state;
    fake_init(&fake, bytes, sizeof bytes);
    fake.extents[0][0] = 0;
    fake.extents[0][1] = 8192;  /* past the end */
    fake.extent_count = 1;
    assert_int_equal(scan_fake(&fake, 512, &data, &err), -1);
    assert_non_null(strstr(err.message, "bad data extent"));
    assert_int_equal(fake.read_count, 0);
    q2s_runs_free(&data);
}

/* Pass 1 with compression on 1, 2 and 5 threads: the same clusters, the
 * same sizes, the same kept bytes; zeros are left out and what does not
 * compress is stored as it is. */
static void test_compressed_scan_threads(void **state)
{
    const uint32_t cluster_size = 4096;
    const uint64_t size = 3000 * 4096 + 1000;  /* several batches */
    static const uint32_t thread_counts[] = { 1, 2, 5 };
    uint8_t *bytes = calloc(1, size);
    struct q2s_clusters first = { 0 };
    struct q2s_cache first_cache = { 0 };
    uint64_t seed = 99;

    (void)state;
    for (uint64_t x = 0; x * cluster_size < size; x++) {
        uint8_t *cluster = bytes + x * cluster_size;
        uint64_t length = size - x * cluster_size < cluster_size
                              ? size - x * cluster_size : cluster_size;

        if (x % 3 == 0)
            continue;  /* zeros */
        for (uint64_t i = 0; i < length; i++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            /* Random bytes in every eighth, text-like in the others. */
            cluster[i] = x % 8 == 1 ? (uint8_t)(seed >> 56)
                                    : (uint8_t)("abcdefgh"[(seed >> 61)]);
        }
    }
    for (size_t t = 0; t < 3; t++) {
        struct fake_source fake;
        struct q2s_options options;
        struct q2s_geometry g;
        struct q2s_clusters clusters;
        struct q2s_cache cache;
        uint64_t memory_left = 1024 * 1024;  /* keeps only a part */
        struct q2s_error err;

        fake_init(&fake, bytes, size);
        fake.extents[0][1] = size;
        fake.extent_count = 1;
        q2s_options_init(&options);
        options.cluster_size = cluster_size;
        options.compression = Q2S_COMPRESSION_ZLIB;
        options.threads = thread_counts[t];
        assert_int_equal(q2s_geometry_init(&g, &options, size, &err), 0);
        q2s_clusters_init(&clusters, &g);
        q2s_cache_init(&cache, &memory_left, NULL);
        assert_int_equal(q2s_scan_compressed(&fake.source, &g, &options, NULL,
                                             &clusters, &cache, NULL, NULL,
                                             NULL, &err),
                         0);
        q2s_cache_finish(&cache);
        if (t == 0) {
            uint64_t data = 0, rank;

            for (uint64_t x = 0; x * cluster_size < size; x++)
                data += x % 3 != 0;
            assert_int_equal(q2s_runs_total(&clusters.raw) +
                                 q2s_runs_total(&clusters.compressed),
                             data);
            /* Cluster 1 is random, 2 text-like, 3 zeros. */
            assert_true(q2s_runs_rank(&clusters.raw, 1, &rank));
            assert_true(q2s_runs_rank(&clusters.compressed, 2, &rank));
            assert_false(q2s_runs_rank(&clusters.raw, 3, &rank));
            assert_false(q2s_runs_rank(&clusters.compressed, 3, &rank));
            assert_true(cache.full);
            assert_true(cache.bytes > 0 && cache.bytes <= 1024 * 1024);
            first = clusters;
            first_cache = cache;
            continue;
        }
        assert_int_equal(clusters.raw.count, first.raw.count);
        assert_memory_equal(clusters.raw.runs, first.raw.runs,
                            first.raw.count * sizeof *first.raw.runs);
        assert_int_equal(clusters.compressed.count, first.compressed.count);
        assert_memory_equal(clusters.compressed.runs, first.compressed.runs,
                            first.compressed.count *
                                sizeof *first.compressed.runs);
        assert_int_equal(clusters.packing.count, first.packing.count);
        assert_memory_equal(clusters.packing.sizes, first.packing.sizes,
                            first.packing.count * sizeof(uint32_t));
        assert_int_equal(cache.bytes, first_cache.bytes);
        for (uint64_t at = 0; at < cache.bytes;) {
            uint64_t n, n_first;
            struct q2s_cache_span a, b;

            q2s_cache_locate(&cache, at, &a);
            q2s_cache_locate(&first_cache, at, &b);
            n = a.length;
            n_first = b.length;
            assert_int_equal(n, n_first);
            assert_non_null(a.data);
            assert_memory_equal(a.data, b.data, n);
            at += n;
        }
        q2s_clusters_free(&clusters);
        q2s_cache_free(&cache);
    }
    q2s_clusters_free(&first);
    q2s_cache_free(&first_cache);
    free(bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_each_cluster_once),
        cmocka_unit_test(test_long_extent),
        cmocka_unit_test(test_read_error),
        cmocka_unit_test(test_bad_extent),
        cmocka_unit_test(test_compressed_scan_threads),
    };

    return cmocka_run_group_tests_name("scan", tests, NULL, NULL);
}
