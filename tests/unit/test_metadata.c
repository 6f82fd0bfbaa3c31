/* The bytes of the metadata clusters. */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export/metadata.h"
#include "export/plan.h"

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof v);
    return be64toh(v);
}

static uint32_t be32_at(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof v);
    return be32toh(v);
}

static void make_plan(struct q2s_plan *plan, uint32_t cluster_size,
                      uint32_t refcount_bits, const char *data_file_name,
                      uint64_t input_size, const uint64_t *runs,
                      size_t run_count)
{
    struct q2s_options options;
    struct q2s_geometry geometry;
    struct q2s_clusters data;
    struct q2s_error err;

    q2s_options_init(&options);
    options.cluster_size = cluster_size;
    options.refcount_bits = refcount_bits;
    options.data_file_name = data_file_name;
    assert_int_equal(q2s_geometry_init(&geometry, &options, input_size, &err),
                     0);
    q2s_clusters_init(&data, &geometry);
    for (size_t i = 0; i < run_count; i++)
        assert_int_equal(q2s_runs_add(&data.raw, runs[2 * i], runs[2 * i + 1]),
                         0);
    assert_int_equal(q2s_plan_init(plan, &geometry, &options, &data, &err), 0);
}

static void test_header(void **state)
{
    const uint64_t runs[] = { 15, 1, 300, 20 };
    struct q2s_plan plan;
    uint8_t *buf = malloc(65536);

    (void)state;
    make_plan(&plan, 65536, 16, NULL, 100 * 1024 * 1024 - 100, runs, 2);
    q2s_metadata_cluster(&plan, 0, buf);
    assert_memory_equal(buf, "QFI\xfb", 4);
    assert_int_equal(be32_at(buf + 4), 3);
    assert_int_equal(be64_at(buf + 8), 0);
    assert_int_equal(be32_at(buf + 20), 16);
    assert_int_equal(be64_at(buf + 24), 100 * 1024 * 1024);  /* rounded */
    assert_int_equal(be32_at(buf + 36), 1);
    assert_int_equal(be64_at(buf + 40), 196608);
    assert_int_equal(be64_at(buf + 48), 65536);
    assert_int_equal(be32_at(buf + 56), 1);
    assert_int_equal(be64_at(buf + 72), 0);  /* incompatible features */
    assert_int_equal(be64_at(buf + 88), 0);  /* autoclear features */
    assert_int_equal(be32_at(buf + 96), 4);  /* refcount order */
    assert_int_equal(be32_at(buf + 100), 112);
    /* The feature name table follows the header. */
    assert_int_equal(be32_at(buf + 112), 0x6803f857);
    assert_int_equal(be32_at(buf + 116), 384);
    assert_int_equal(buf[120], 0);
    assert_int_equal(buf[121], 0);
    assert_string_equal((const char *)buf + 122, "dirty bit");
    assert_int_equal(buf[120 + 7 * 48], 2);
    assert_int_equal(buf[121 + 7 * 48], 1);
    assert_string_equal((const char *)buf + 122 + 7 * 48, "raw external data");
    for (size_t i = 120 + 384; i < 65536; i++)
        assert_int_equal(buf[i], 0);
    q2s_plan_fini(&plan);
    free(buf);
}

static void test_header_with_data_file(void **state)
{
    struct q2s_plan plan;
    uint8_t *buf = malloc(4096);

    (void)state;
    make_plan(&plan, 4096, 16, "dir/disk.raw", 1024 * 1024, NULL, 0);
    plan.data_file_raw = true;
    q2s_metadata_cluster(&plan, 0, buf);
    assert_int_equal(be64_at(buf + 72), 4);  /* external data file */
    assert_int_equal(be64_at(buf + 88), 2);  /* data_file_raw */
    assert_int_equal(be32_at(buf + 112), 0x44415441);
    assert_int_equal(be32_at(buf + 116), 12);
    assert_memory_equal(buf + 120, "dir/disk.raw\0\0\0\0", 16);
    assert_int_equal(be32_at(buf + 136), 0x6803f857);
    q2s_plan_fini(&plan);
    free(buf);
}

/* A refcount block of n entries of value 1 at every width: the last block
 * is partial, and entries narrower than a byte start at its low bits. */
static void test_refcount_blocks_every_width(void **state)
{
    (void)state;
    for (uint32_t bits = 1; bits <= 64; bits *= 2) {
        uint64_t per_block = 512 * 8 / bits;
        /* Enough data for two blocks, the second partial. */
        uint64_t data = per_block + 5;
        const uint64_t runs[] = { 0, data };
        struct q2s_plan plan;
        uint8_t buf[512];
        uint64_t first_block;

        make_plan(&plan, 512, bits, NULL, data * 512, runs, 1);
        first_block = plan.refcount_blocks_offset / 512;
        assert_int_equal(plan.refcount_blocks, 2);
        q2s_metadata_cluster(&plan, first_block, buf);
        for (uint64_t i = 0; i < per_block; i++) {
            uint64_t bit = i * bits;
            uint64_t value = 0;

            for (uint32_t b = 0; b < bits; b++) {
                uint64_t at = bit + b;
                /* Wider entries are big-endian: value bit b sits at byte
                 * (i+1)*bytes - 1 - b/8; narrower ones LSB first. */
                if (bits >= 8) {
                    uint64_t byte = (i + 1) * (bits / 8) - 1 - b / 8;
                    value |= (uint64_t)((buf[byte] >> (b % 8)) & 1) << b;
                } else {
                    value |= (uint64_t)((buf[at / 8] >> (at % 8)) & 1) << b;
                }
            }
            assert_int_equal(value, 1);
        }
        q2s_metadata_cluster(&plan, first_block + 1, buf);
        {
            uint64_t used = plan.total_clusters - per_block;
            uint64_t used_bytes = (used * bits + 7) / 8;

            assert_true(used > 0 && used < per_block);
            for (uint64_t i = used_bytes; i < 512; i++)
                assert_int_equal(buf[i], 0);
            if (bits >= 8)
                assert_int_equal(buf[used * (bits / 8) - 1], 1);
            else
                assert_int_equal(
                    (buf[(used - 1) * bits / 8] >> ((used - 1) * bits % 8)) &
                        ((1u << bits) - 1),
                    1);
        }
        /* The refcount table points at both blocks. */
        q2s_metadata_cluster(&plan, 1, buf);
        assert_int_equal(be64_at(buf), plan.refcount_blocks_offset);
        assert_int_equal(be64_at(buf + 8), plan.refcount_blocks_offset + 512);
        assert_int_equal(be64_at(buf + 16), 0);
        q2s_plan_fini(&plan);
    }
}

/* L1 entries point at the L2 tables in order; L2 entries at the data
 * clusters in order, or at the guest offset with a data file. */
static void test_l1_and_l2_entries(void **state)
{
    /* 4096-byte clusters: 512 entries per L2 table. */
    const uint64_t runs[] = { 3, 2, 1030, 1 };
    const uint64_t copied = UINT64_C(1) << 63;
    struct q2s_plan plan;
    uint8_t buf[4096];
    uint64_t l1 = 0, l2 = 0;

    (void)state;
    for (int with_file = 0; with_file < 2; with_file++) {
        make_plan(&plan, 4096, 16, with_file ? "d" : NULL, 8 * 1024 * 1024,
                  runs, 2);
        l1 = plan.l1_offset / 4096;
        l2 = plan.l2_offset / 4096;
        q2s_metadata_cluster(&plan, l1, buf);
        assert_int_equal(be64_at(buf), plan.l2_offset | copied);
        assert_int_equal(be64_at(buf + 8), 0);
        assert_int_equal(be64_at(buf + 16), (plan.l2_offset + 4096) | copied);
        assert_int_equal(be64_at(buf + 24), 0);

        q2s_metadata_cluster(&plan, l2, buf);
        assert_int_equal(be64_at(buf + 16), 0);
        assert_int_equal(be64_at(buf + 24),
                         (with_file ? 3 * 4096 : plan.data_offset) | copied);
        assert_int_equal(be64_at(buf + 32),
                         (with_file ? 4 * 4096 : plan.data_offset + 4096) |
                             copied);
        assert_int_equal(be64_at(buf + 40), 0);
        q2s_metadata_cluster(&plan, l2 + 1, buf);
        assert_int_equal(be64_at(buf + 6 * 8),
                         (with_file ? 1030 * 4096 : plan.data_offset + 8192) |
                             copied);
        for (size_t i = 0; i < 512; i++) {
            if (i != 6)
                assert_int_equal(be64_at(buf + i * 8), 0);
        }
        q2s_plan_fini(&plan);
    }
}

/* Entry i of a refcount block: big-endian when a byte or wider, else
 * packed from the least significant bit. */
static uint64_t refcount_at(const uint8_t *buf, uint64_t i, uint32_t bits)
{
    uint64_t value = 0;

    if (bits < 8)
        return (buf[i * bits / 8] >> (i * bits % 8)) & ((1u << bits) - 1);
    for (uint32_t b = 0; b < bits / 8; b++)
        value = value << 8 | buf[i * (bits / 8) + b];
    return value;
}

/* A plan with compressed clusters, as pass 1 would leave it. */
static void make_compressed_plan(struct q2s_plan *plan, uint32_t cluster_size,
                                 uint32_t refcount_bits,
                                 enum q2s_compression type,
                                 uint64_t guest_clusters,
                                 uint64_t **starts, uint32_t **sizes)
{
    struct q2s_options options;
    struct q2s_geometry geometry;
    struct q2s_clusters clusters;
    struct q2s_error err;
    uint64_t seed = 12345;

    q2s_options_init(&options);
    options.cluster_size = cluster_size;
    options.refcount_bits = refcount_bits;
    options.compression = type;
    assert_int_equal(q2s_geometry_init(&geometry, &options,
                                       guest_clusters * cluster_size, &err),
                     0);
    q2s_clusters_init(&clusters, &geometry);
    *starts = calloc(guest_clusters, sizeof **starts);
    *sizes = calloc(guest_clusters, sizeof **sizes);
    /* Cluster x: every fifth is stored as is, every seventh is a hole,
     * the others compress to sizes from 1 byte to a cluster less one. */
    for (uint64_t x = 0; x < guest_clusters; x++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        if (x % 7 == 3)
            continue;
        if (x % 5 == 0) {
            assert_int_equal(q2s_runs_add(&clusters.raw, x, 1), 0);
            continue;
        }
        (*sizes)[x] = 1 + (uint32_t)(seed >> 33) % (cluster_size - 1);
        assert_int_equal(q2s_runs_add(&clusters.compressed, x, 1), 0);
        assert_int_equal(q2s_packing_append(&clusters.packing, (*sizes)[x],
                                            &(*starts)[x]),
                         0);
    }
    assert_int_equal(q2s_plan_init(plan, &geometry, &options, &clusters, &err),
                     0);
}

/* Compressed clusters: zstd in the header, a "Compressed Clusters
 * Descriptor" in each L2 entry, and refcounts that count the compressed
 * clusters touching each host cluster, at every refcount width. */
static void test_compressed_clusters(void **state)
{
    const uint32_t cluster_size = 512;
    const uint64_t guest_clusters = 3000;  /* several L2 tables */

    (void)state;
    for (uint32_t bits = 2; bits <= 64; bits *= 2) {
        struct q2s_plan plan;
        uint64_t *starts, *refs, raw_rank = 0;
        uint32_t *sizes;
        uint8_t buf[512];
        uint64_t per_block = cluster_size * 8 / bits;
        uint64_t region = 0;

        make_compressed_plan(&plan, cluster_size, bits,
                             Q2S_COMPRESSION_ZSTD, guest_clusters, &starts,
                             &sizes);
        q2s_metadata_cluster(&plan, 0, buf);
        assert_int_equal(be64_at(buf + 72), 8);  /* compression type bit */
        assert_int_equal(buf[104], 1);           /* zstd */
        assert_int_equal(plan.compressed_offset,
                         plan.data_offset +
                             q2s_runs_total(&plan.data_clusters) * 512);
        assert_int_equal(plan.image_size,
                         plan.compressed_offset +
                             ((q2s_packing_bytes(&plan.packing) + 511) &
                              ~(uint64_t)511));

        /* The L2 entries, table by table (64 entries each). */
        for (uint64_t x = 0; x < guest_clusters; x++) {
            uint64_t rank;

            if (x % 64 == 0) {
                assert_true(q2s_runs_rank(&plan.l2_tables, x / 64, &rank));
                q2s_metadata_cluster(&plan, plan.l2_offset / 512 + rank, buf);
            }
            {
                uint64_t entry = be64_at(buf + (x % 64) * 8);

                if (x % 7 == 3) {
                    assert_int_equal(entry, 0);
                } else if (x % 5 == 0) {
                    assert_int_equal(entry, (plan.data_offset + raw_rank++ *
                                                                 512) |
                                                (UINT64_C(1) << 63));
                } else {
                    /* x = 62 - (9 - 8) = 61: one bit of extra sectors. */
                    uint64_t host = plan.compressed_offset + starts[x];
                    uint64_t extra = ((host + sizes[x] - 1) >> 9) -
                                     (host >> 9);

                    assert_int_equal(entry, (UINT64_C(1) << 62) |
                                                (extra << 61) | host);
                }
            }
        }

        /* Brute-force refcounts of every host cluster. */
        refs = calloc(plan.total_clusters, sizeof *refs);
        for (uint64_t c = 0; c < plan.compressed_offset / 512; c++)
            refs[c] = 1;
        for (uint64_t x = 0; x < guest_clusters; x++) {
            uint64_t host = plan.compressed_offset + starts[x];

            if (sizes[x] == 0)
                continue;
            for (uint64_t c = host / 512; c <= (host + sizes[x] - 1) / 512;
                 c++)
                refs[c]++;
        }
        for (uint64_t c = 0; c < plan.total_clusters; c++) {
            if (c % per_block == 0)
                q2s_metadata_cluster(&plan,
                                     plan.refcount_blocks_offset / 512 +
                                         c / per_block,
                                     buf);
            assert_true(refs[c] >= 1);
            assert_int_equal(refcount_at(buf, c % per_block, bits), refs[c]);
            region += c >= plan.compressed_offset / 512;
        }
        assert_int_equal(region, plan.compressed_host_clusters);
        free(refs);
        free(starts);
        free(sizes);
        q2s_plan_fini(&plan);
    }
}

/* An overlay's header: the backing file name after the extensions, the
 * "Backing file format name" extension; zero clusters in L2 as the zero
 * flag alone, beside a data cluster's pointer. */
static void test_overlay(void **state)
{
    struct q2s_options options;
    struct q2s_geometry geometry;
    struct q2s_clusters clusters;
    struct q2s_plan plan;
    struct q2s_error err;
    uint8_t *buf = malloc(512);

    (void)state;
    q2s_options_init(&options);
    options.cluster_size = 512;
    options.backing_file = "../base image.qcow2";
    options.backing_format = "qcow2";
    assert_int_equal(q2s_geometry_init(&geometry, &options, 64 * 512, &err),
                     0);
    q2s_clusters_init(&clusters, &geometry);
    assert_int_equal(q2s_runs_add(&clusters.raw, 3, 1), 0);
    assert_int_equal(q2s_runs_add(&clusters.zero, 4, 2), 0);
    assert_int_equal(q2s_plan_init(&plan, &geometry, &options, &clusters,
                                   &err), 0);
    q2s_metadata_cluster(&plan, 0, buf);
    /* 112 header, 8 + 8 "qcow2", 8 end: no room for the feature table. */
    assert_int_equal(be64_at(buf + 8), 136);
    assert_int_equal(be32_at(buf + 16), strlen("../base image.qcow2"));
    assert_memory_equal(buf + 136, "../base image.qcow2", 19);
    assert_int_equal(be32_at(buf + 112), 0xe2792aca);
    assert_int_equal(be32_at(buf + 116), 5);
    assert_memory_equal(buf + 120, "qcow2\0\0\0", 8);
    assert_int_equal(be64_at(buf + 128), 0);  /* the end */
    assert_int_equal(be64_at(buf + 72), 0);   /* no incompatible feature */

    /* One L2 table (64 entries of 8 bytes). */
    assert_int_equal(q2s_runs_total(&plan.l2_tables), 1);
    q2s_metadata_cluster(&plan, plan.l2_offset >> 9, buf);
    assert_int_equal(be64_at(buf + 3 * 8),
                     plan.data_offset | (UINT64_C(1) << 63));
    assert_int_equal(be64_at(buf + 4 * 8), 1);
    assert_int_equal(be64_at(buf + 5 * 8), 1);
    assert_int_equal(be64_at(buf + 6 * 8), 0);
    assert_int_equal(be64_at(buf + 2 * 8), 0);
    /* One data cluster: header, refcount table and block, L1, L2, data. */
    assert_int_equal(plan.image_size, 6 * 512);
    q2s_plan_fini(&plan);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_header_with_data_file),
        cmocka_unit_test(test_refcount_blocks_every_width),
        cmocka_unit_test(test_l1_and_l2_entries),
        cmocka_unit_test(test_compressed_clusters),
        cmocka_unit_test(test_overlay),
    };

    return cmocka_run_group_tests_name("metadata", tests, NULL, NULL);
}
