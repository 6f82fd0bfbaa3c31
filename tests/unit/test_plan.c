/* The plan arithmetic, against values checked by hand. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "export/metadata.h"
#include "export/plan.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)
#define PiB (UINT64_C(1) << 50)

static struct q2s_options options_of(uint32_t cluster_size,
                                     uint32_t refcount_bits)
{
    struct q2s_options options;

    q2s_options_init(&options);
    options.cluster_size = cluster_size;
    options.refcount_bits = refcount_bits;
    return options;
}

/* Builds a plan for an input of input_size bytes whose data clusters are
 * the runs given as (start, length) pairs. */
static void make_plan(struct q2s_plan *plan, const struct q2s_options *options,
                      uint64_t input_size, const uint64_t *runs,
                      size_t run_count)
{
    struct q2s_geometry geometry;
    struct q2s_clusters data;
    struct q2s_error err;

    assert_int_equal(q2s_geometry_init(&geometry, options, input_size, &err),
                     0);
    q2s_clusters_init(&data, &geometry);
    for (size_t i = 0; i < run_count; i++)
        assert_int_equal(q2s_runs_add(&data.raw, runs[2 * i], runs[2 * i + 1]),
                         0);
    assert_int_equal(q2s_plan_init(plan, &geometry, options, &data, &err), 0);
    assert_int_equal(data.raw.count, 0);  /* ownership went to the plan */
}

/* Plans an input of input_size bytes whose clusters all hold data (or,
 * with data_file_raw, are all mapped); returns what q2s_plan_init returns.
 * The plan is left empty when it fails. */
static int plan_all_data(struct q2s_plan *plan,
                         const struct q2s_options *options,
                         uint64_t input_size, struct q2s_error *err)
{
    struct q2s_geometry geometry;
    struct q2s_clusters data;

    assert_int_equal(q2s_geometry_init(&geometry, options, input_size, err),
                     0);
    q2s_clusters_init(&data, &geometry);
    if (!options->data_file_raw)
        assert_int_equal(q2s_runs_add(&data.raw, 0, geometry.guest_clusters),
                         0);
    return q2s_plan_init(plan, &geometry, options, &data, err);
}

static void test_defaults(void **state)
{
    struct q2s_options options;

    (void)state;
    q2s_options_init(&options);
    assert_int_equal(options.cluster_size, 65536);
    assert_int_equal(options.refcount_bits, 16);
    assert_null(options.data_file_name);
    assert_false(options.data_file_raw);
}

/* 100 MiB at 64 KiB clusters with 21 data clusters in one L2 table:
 * 1 header + 1 L1 + 1 L2 + 21 data = 24; one refcount block (32768
 * refcounts) and one table cluster make 26 clusters. */
static void test_small_image_64k(void **state)
{
    struct q2s_options options = options_of(65536, 16);
    const uint64_t runs[] = { 15, 1, 300, 20 };
    struct q2s_plan plan;

    (void)state;
    make_plan(&plan, &options, 100 * MiB, runs, 2);
    assert_int_equal(plan.geometry.virtual_size, 100 * MiB);
    assert_int_equal(plan.geometry.guest_clusters, 1600);
    assert_int_equal(plan.geometry.l1_entries, 1);
    assert_int_equal(plan.geometry.l1_clusters, 1);
    assert_int_equal(q2s_runs_total(&plan.l2_tables), 1);
    assert_int_equal(plan.refcount_blocks, 1);
    assert_int_equal(plan.refcount_table_clusters, 1);
    assert_int_equal(plan.total_clusters, 26);
    assert_int_equal(plan.refcount_table_offset, 65536);
    assert_int_equal(plan.refcount_blocks_offset, 131072);
    assert_int_equal(plan.l1_offset, 196608);
    assert_int_equal(plan.l2_offset, 262144);
    assert_int_equal(plan.data_offset, 327680);
    assert_int_equal(plan.image_size, 1703936);
    q2s_plan_fini(&plan);
}

/* Sizes that are not multiples of 512 or of the cluster. */
static void test_unaligned_sizes(void **state)
{
    struct q2s_options options = options_of(4096, 16);
    struct q2s_geometry g;
    struct q2s_error err;

    (void)state;
    assert_int_equal(q2s_geometry_init(&g, &options, 1, &err), 0);
    assert_int_equal(g.virtual_size, 512);
    assert_int_equal(g.guest_clusters, 1);
    assert_int_equal(q2s_geometry_init(&g, &options, 4097, &err), 0);
    assert_int_equal(g.virtual_size, 4608);
    assert_int_equal(g.guest_clusters, 2);
    /* 512 entries per L2 table: 513 clusters need two L1 entries. */
    assert_int_equal(q2s_geometry_init(&g, &options, 512 * 4096 + 1, &err), 0);
    assert_int_equal(g.l1_entries, 2);
    assert_int_equal(g.l1_clusters, 1);
    assert_int_equal(q2s_geometry_init(&g, &options, 0, &err), 0);
    assert_int_equal(g.virtual_size, 0);
    assert_int_equal(g.l1_entries, 0);
    assert_int_equal(g.l1_clusters, 0);
}

/* The fixed point of refcount blocks and table clusters, for the smallest
 * and largest clusters and several widths. */
static void test_refcount_fixed_point(void **state)
{
    static const struct {
        uint64_t other_clusters;
        uint32_t cluster_size, refcount_bits;
        uint64_t blocks, tables;
    } cases[] = {
        /* 512-byte clusters, 64-bit refcounts: 64 per block, 64 per table.
         * 64 others + 1 block + 1 table = 66 > 64: a second block. */
        { 64, 512, 64, 2, 1 },
        { 62, 512, 64, 1, 1 },
        { 63, 512, 64, 2, 1 },
        /* 4096 others: 64 blocks, 1 table; 4161 needs 66 blocks, so 2
         * table clusters; 4164 still fits 66. */
        { 4096, 512, 64, 66, 2 },
        /* 1-bit refcounts: 4096 per 512-byte block. */
        { 4094, 512, 1, 1, 1 },
        { 4095, 512, 1, 2, 1 },
        /* 2 MiB clusters, 1 bit: 16 Mi refcounts per block. */
        { 1, 2097152, 1, 1, 1 },
        { 16777214, 2097152, 1, 1, 1 },
        { 16777215, 2097152, 1, 2, 1 },
        /* 2 MiB clusters, 64 bits: 262144 per block and per table. */
        { 262142, 2097152, 64, 1, 1 },
        { 262143, 2097152, 64, 2, 1 },
        /* Every width at 64 KiB: 524288 / bits refcounts per block. */
        { 524286, 65536, 1, 1, 1 },
        { 262142, 65536, 2, 1, 1 },
        { 262143, 65536, 2, 2, 1 },
        { 131070, 65536, 4, 1, 1 },
        { 65534, 65536, 8, 1, 1 },
        { 32766, 65536, 16, 1, 1 },
        { 32767, 65536, 16, 2, 1 },
        { 16384, 65536, 32, 2, 1 },
        { 8192, 65536, 64, 2, 1 },
        /* Many blocks: 8192 others at 512/64 need 128 blocks, 2 tables;
         * 8322 needs 131 blocks, 3 tables; 8326 needs 131. */
        { 8192, 512, 64, 131, 3 },
        { 0, 65536, 16, 0, 0 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t blocks, tables;

        q2s_refcount_clusters(cases[i].other_clusters, cases[i].cluster_size,
                              cases[i].refcount_bits, &blocks, &tables);
        assert_int_equal(blocks, cases[i].blocks);
        assert_int_equal(tables, cases[i].tables);
    }
}

/* QEMU's L1 limit: 32 MiB of entries, 4 Mi entries.  At 512-byte clusters
 * an L2 table maps 64 clusters: 2^22 * 64 * 512 = 128 GiB at most.  At
 * 64 KiB clusters: 2^22 * 8192 * 65536 = 2 PiB. */
static void test_l1_limit(void **state)
{
    struct q2s_options small = options_of(512, 16);
    struct q2s_options large = options_of(65536, 16);
    struct q2s_geometry g;
    struct q2s_error err;

    (void)state;
    assert_int_equal(q2s_geometry_init(&g, &small, 128 * GiB, &err), 0);
    assert_int_equal(g.l1_entries, 4194304);
    assert_int_equal(g.l1_clusters, 65536);
    assert_int_equal(q2s_geometry_init(&g, &small, 128 * GiB + 1, &err), -1);
    assert_non_null(strstr(err.message, "too large"));
    assert_int_equal(q2s_geometry_init(&g, &large, 2 * PiB, &err), 0);
    assert_int_equal(g.l1_entries, 4194304);
    assert_int_equal(g.l1_clusters, 512);
    assert_int_equal(q2s_geometry_init(&g, &large, 2 * PiB + 512, &err), -1);
    assert_int_equal(q2s_geometry_init(&g, &large, UINT64_MAX, &err), -1);
}

/* The L1 message names the limit; at 2 MiB clusters (2^61 bytes, 2 EiB)
 * no larger cluster size exists to suggest. */
static void test_l1_limit_messages(void **state)
{
    struct q2s_options small = options_of(512, 16);
    struct q2s_options largest = options_of(2097152, 16);
    struct q2s_geometry g;
    struct q2s_error err;

    (void)state;
    assert_int_equal(q2s_geometry_init(&g, &small, 128 * GiB + 1, &err), -1);
    assert_string_equal(err.message,
                        "the virtual size is too large: the L1 table would "
                        "take 4194305 entries, more than QEMU's limit of "
                        "32 MiB (4194304 entries of 8 bytes): use a larger "
                        "cluster size");
    assert_int_equal(q2s_geometry_init(&g, &largest, UINT64_C(1) << 61, &err),
                     0);
    assert_int_equal(g.l1_entries, 4194304);
    assert_int_equal(q2s_geometry_init(&g, &largest,
                                       (UINT64_C(1) << 61) + 512, &err), -1);
    assert_non_null(strstr(err.message, "L1 table"));
    assert_null(strstr(err.message, "-c"));
}

/* qcow2_do_open refuses an image without a refcount table ("Image does not
 * contain a reference count table"): even an empty input gets one, since
 * the header cluster needs a refcount. */
static void test_empty_input_has_refcount_table(void **state)
{
    struct q2s_options options = options_of(65536, 16);
    struct q2s_plan plan;

    (void)state;
    make_plan(&plan, &options, 0, NULL, 0);
    assert_int_equal(plan.geometry.l1_entries, 0);
    assert_int_equal(plan.refcount_table_clusters, 1);
    assert_int_equal(plan.refcount_blocks, 1);
    q2s_plan_fini(&plan);
}

/* QEMU's refcount table limit: QCOW_MAX_REFTABLE_SIZE (8 MiB) in
 * block/qcow2.h, which qcow2_do_open checks through qcow2_validate_table
 * ("Reference count table too large").  At 512-byte clusters and 64-bit
 * refcounts that is 16384 table clusters, 2^20 refcount blocks of 64
 * refcounts: 2^26 host clusters, reached by 65012214 data clusters (with
 * their 1015816 L2 tables, 15873 L1 clusters and the header). */
static void test_refcount_table_limit_512(void **state)
{
    struct q2s_options options = options_of(512, 64);
    struct q2s_plan plan;
    struct q2s_error err;

    (void)state;
    assert_int_equal(plan_all_data(&plan, &options, UINT64_C(65012214) * 512, &err), 0);
    assert_int_equal(plan.refcount_table_clusters, 16384);
    assert_int_equal(plan.refcount_blocks, 1048576);
    assert_int_equal(plan.total_clusters, 67108864);
    q2s_plan_fini(&plan);

    assert_int_equal(plan_all_data(&plan, &options, UINT64_C(65012215) * 512, &err), -1);
    assert_string_equal(err.message,
                        "the refcount table would take 16385 clusters, more "
                        "than QEMU's limit of 8 MiB (16384 clusters of 512 "
                        "bytes): use a larger cluster size or a narrower "
                        "refcount width");
    q2s_plan_fini(&plan);
}

/* The same limit at the default geometry, 64 KiB clusters and 16-bit
 * refcounts: 128 table clusters, 2^20 blocks of 32768 refcounts, 2^35 host
 * clusters.  Just under 2 PiB of data reaches it, before the L1 limit. */
static void test_refcount_table_limit_64k(void **state)
{
    struct q2s_options options = options_of(65536, 16);
    struct q2s_plan plan;
    struct q2s_error err;

    (void)state;
    assert_int_equal(plan_all_data(&plan, &options,
                                   UINT64_C(34354495487) * 65536, &err), 0);
    assert_int_equal(plan.refcount_table_clusters, 128);
    assert_int_equal(plan.total_clusters, UINT64_C(1) << 35);
    q2s_plan_fini(&plan);

    assert_int_equal(plan_all_data(&plan, &options,
                                   UINT64_C(34354495488) * 65536, &err), -1);
    assert_non_null(strstr(err.message, "the refcount table would take 129 "
                                        "clusters"));
    q2s_plan_fini(&plan);

}

/* L1 and L2 entries hold bits 9-55 of a host offset (qcow2.rst, "Cluster
 * mapping"; L1E_OFFSET_MASK and L2E_OFFSET_MASK in QEMU's block/qcow2.h,
 * QCOW_MAX_CLUSTER_OFFSET = 2^56 - 1): every cluster of the image must
 * start below 64 PiB.  At 2 MiB clusters the refcount table allows more,
 * so this limit comes first: 2^35 host clusters, reached by 34359476222
 * data clusters. */
static void test_host_offset_limit(void **state)
{
    struct q2s_options options = options_of(2097152, 64);
    struct q2s_plan plan;
    struct q2s_error err;

    (void)state;
    assert_int_equal(plan_all_data(&plan, &options,
                                   UINT64_C(34359476222) * 2097152, &err), 0);
    assert_int_equal(plan.total_clusters, UINT64_C(1) << 35);
    assert_int_equal(plan.image_size, UINT64_C(1) << 56);
    q2s_plan_fini(&plan);

    assert_int_equal(plan_all_data(&plan, &options,
                                   UINT64_C(34359476223) * 2097152, &err), -1);
    assert_non_null(strstr(err.message, "64 PiB"));
    q2s_plan_fini(&plan);
}

/* With an external data file, L2 entries hold offsets into that file,
 * which are guest offsets: the last allocated cluster must start below
 * 64 PiB too, whatever the size of the image itself. */
static void test_data_file_offset_limit(void **state)
{
    struct q2s_options options = options_of(2097152, 16);
    struct q2s_geometry geometry;
    struct q2s_clusters data;
    struct q2s_plan plan;
    struct q2s_error err;

    (void)state;
    options.data_file_name = "disk.raw";
    /* One data cluster, the last that starts below 2^56. */
    assert_int_equal(q2s_geometry_init(&geometry, &options, UINT64_C(1) << 56,
                                       &err), 0);
    q2s_clusters_init(&data, &geometry);
    assert_int_equal(q2s_runs_add(&data.raw, (UINT64_C(1) << 35) - 1, 1), 0);
    assert_int_equal(q2s_plan_init(&plan, &geometry, &options, &data, &err), 0);
    q2s_plan_fini(&plan);
    /* The next one starts at 2^56. */
    assert_int_equal(q2s_geometry_init(&geometry, &options,
                                       (UINT64_C(1) << 56) + 512, &err), 0);
    q2s_clusters_init(&data, &geometry);
    assert_int_equal(q2s_runs_add(&data.raw, UINT64_C(1) << 35, 1), 0);
    assert_int_equal(q2s_plan_init(&plan, &geometry, &options, &data, &err),
                     -1);
    assert_non_null(strstr(err.message, "64 PiB"));
    q2s_plan_fini(&plan);

    /* With data_file_raw every cluster is mapped: the virtual size. */
    options.data_file_raw = true;
    assert_int_equal(plan_all_data(&plan, &options, UINT64_C(1) << 56, &err),
                     0);
    q2s_plan_fini(&plan);
    assert_int_equal(plan_all_data(&plan, &options, (UINT64_C(1) << 56) + 1,
                                   &err), -1);
    assert_non_null(strstr(err.message, "64 PiB"));
    q2s_plan_fini(&plan);
}

/* A 1 PiB disk with data in three far-apart places: the plan holds three
 * runs, whatever the virtual size. */
static void test_sparse_petabyte(void **state)
{
    struct q2s_options options = options_of(65536, 16);
    const uint64_t runs[] = { 0, 16, 1 << 20, 1, (PiB >> 16) - 1, 1 };
    struct q2s_plan plan;

    (void)state;
    make_plan(&plan, &options, PiB, runs, 3);
    assert_int_equal(plan.geometry.l1_entries, 2097152);
    assert_int_equal(plan.geometry.l1_clusters, 256);
    assert_int_equal(plan.data_clusters.count, 3);
    assert_int_equal(q2s_runs_total(&plan.l2_tables), 3);
    /* 1 + 256 + 3 + 18 = 278 others, one block, one table cluster. */
    assert_int_equal(plan.total_clusters, 280);
    assert_int_equal(plan.l1_offset, 3 * 65536);
    assert_int_equal(plan.l2_offset, (3 + 256) * 65536);
    assert_int_equal(plan.data_offset, (3 + 256 + 3) * 65536);
    assert_int_equal(plan.image_size, 280 * 65536);
    q2s_plan_fini(&plan);
}

/* With -d the data clusters stay in the data file; with -R every cluster
 * is mapped there. */
static void test_external_data_file(void **state)
{
    struct q2s_options options = options_of(65536, 16);
    const uint64_t runs[] = { 15, 1, 300, 20 };
    struct q2s_plan plan;

    (void)state;
    options.data_file_name = "disk.raw";
    make_plan(&plan, &options, 100 * MiB, runs, 2);
    assert_string_equal(plan.data_file_name, "disk.raw");
    assert_int_equal(q2s_runs_total(&plan.data_clusters), 21);
    /* 1 + 1 + 1 = 3 others, 1 block, 1 table: 5 clusters. */
    assert_int_equal(plan.total_clusters, 5);
    assert_int_equal(plan.image_size, plan.data_offset);
    q2s_plan_fini(&plan);

    options.data_file_raw = true;
    /* 2 GiB + 1 byte at 64 KiB: 32769 clusters, 5 L2 tables. */
    make_plan(&plan, &options, 2 * GiB + 1, NULL, 0);
    assert_int_equal(q2s_runs_total(&plan.data_clusters), 32769);
    assert_int_equal(q2s_runs_total(&plan.l2_tables), 5);
    assert_int_equal(plan.total_clusters, 1 + 1 + 5 + 2);
    q2s_plan_fini(&plan);
}

static void test_options_checked(void **state)
{
    struct q2s_options options = options_of(65536, 16);
    char long_name[65536];
    struct q2s_header_layout layout;
    struct q2s_error err;

    (void)state;
    assert_int_equal(q2s_options_validate(&options, &err), 0);
    options.cluster_size = 256;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    options.cluster_size = 4 * 1024 * 1024;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    options.cluster_size = 3 * 65536;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    options.cluster_size = 65536;
    options.refcount_bits = 128;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    options.refcount_bits = 3;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    options.refcount_bits = 16;
    options.data_file_raw = true;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    options.data_file_name = "x";
    assert_int_equal(q2s_options_validate(&options, &err), 0);
    options.cluster_size = 512;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    assert_non_null(strstr(err.message, "larger cluster size"));

    /* The name, the feature table and the header share one cluster:
     * 112 + 8 + name + 8 + 384 bytes. */
    options.cluster_size = 1024;
    memset(long_name, 'a', sizeof long_name);
    long_name[1024 - 112 - 8 - 8 - 384] = '\0';
    options.data_file_name = long_name;
    assert_int_equal(q2s_header_layout(long_name, NULL, NULL, 1024,
                                       &layout), 0);
    assert_int_equal(layout.bytes, 1024);
    assert_int_equal(q2s_options_validate(&options, &err), 0);
    long_name[1024 - 112 - 8 - 8 - 384] = 'a';
    long_name[1024 - 112 - 8 - 8 - 384 + 1] = '\0';
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    assert_non_null(strstr(err.message, "too long"));
}

/* Compression needs from 1 to Q2S_MAX_THREADS threads: a count beyond
 * that (a negative number come through an unsigned one, say) is refused
 * rather than tried. */
static void test_thread_count_checked(void **state)
{
    struct q2s_options options = options_of(65536, 16);
    struct q2s_error err;

    (void)state;
    options.compression = Q2S_COMPRESSION_ZLIB;
    options.threads = 0;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    options.threads = 1;
    assert_int_equal(q2s_options_validate(&options, &err), 0);
    options.threads = Q2S_MAX_THREADS;
    assert_int_equal(q2s_options_validate(&options, &err), 0);
    options.threads = Q2S_MAX_THREADS + 1;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    assert_non_null(strstr(err.message, "invalid thread count 1025: must be from 1 to 1024"));
    options.threads = UINT32_MAX;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
}

/* L2 tables are shared by neighbouring runs and counted once. */
static void test_l2_tables_shared(void **state)
{
    struct q2s_options options = options_of(512, 16);
    /* 64 entries per table: clusters 0..63 table 0, 64..127 table 1. */
    const uint64_t runs[] = { 0, 1, 63, 2, 100, 1, 128, 64, 1000, 1 };
    struct q2s_plan plan;

    (void)state;
    make_plan(&plan, &options, 1 * MiB, runs, 5);
    /* Tables 0, 1, 2 and 15. */
    assert_int_equal(q2s_runs_total(&plan.l2_tables), 4);
    assert_int_equal(plan.l2_tables.count, 2);
    assert_int_equal(q2s_runs_total(&plan.data_clusters), 69);
    q2s_plan_fini(&plan);
}

/* A backing file name goes after the extensions and their end; at 512
 * bytes the feature name table makes room for it. */
static void test_backing_file_layout(void **state)
{
    struct q2s_header_layout layout;
    char name[1100];

    (void)state;
    /* 112 header, 8 + 8 "raw", 8 + 384 features, 8 end. */
    assert_int_equal(q2s_header_layout(NULL, "b", "raw", 65536, &layout), 0);
    assert_true(layout.feature_table);
    assert_int_equal(layout.backing_name_offset, 112 + 16 + 392 + 8);
    assert_int_equal(layout.bytes, 112 + 16 + 392 + 8 + 1);
    assert_int_equal(q2s_header_layout(NULL, "b", "raw", 512, &layout), 0);
    assert_false(layout.feature_table);
    assert_int_equal(layout.backing_name_offset, 112 + 16 + 8);
    /* 512 - 136 = 376 bytes of name at most. */
    memset(name, 'n', sizeof name);
    name[376] = '\0';
    assert_int_equal(q2s_header_layout(NULL, name, "qcow2", 512, &layout), 0);
    assert_int_equal(layout.bytes, 512);
    name[376] = 'n';
    name[377] = '\0';
    assert_int_equal(q2s_header_layout(NULL, name, "qcow2", 512, &layout),
                     -1);
    /* qcow2 allows 1023 bytes, whatever the cluster. */
    memset(name, 'n', sizeof name);
    name[1023] = '\0';
    assert_int_equal(q2s_header_layout(NULL, name, "raw", 65536, &layout), 0);
    name[1023] = 'n';
    name[1024] = '\0';
    assert_int_equal(q2s_header_layout(NULL, name, "raw", 65536, &layout),
                     -1);
}

/* Backing file and format are checked together; never one without the
 * other, never with a data file or the fork's maps. */
static void test_backing_file_options(void **state)
{
    struct q2s_options options = options_of(65536, 16);
    struct q2s_error err;
    char name[1025];

    (void)state;
    options.backing_file = "base.qcow2";
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    assert_non_null(strstr(err.message, "format"));
    options.backing_format = "qcow2";
    assert_int_equal(q2s_options_validate(&options, &err), 0);
    options.backing_format = "a-format-name-of-16";
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    /* Not a driver name: options for qemu-nbd, or nothing QEMU opens. */
    options.backing_format = "raw,file.x=y";
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    options.backing_format = "Raw";
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    options.backing_format = "raw";
    options.data_file_name = "data";
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    options.data_file_name = NULL;
    memset(name, 'n', sizeof name);
    name[1024] = '\0';
    options.backing_file = name;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    assert_non_null(strstr(err.message, "too long"));
    name[600] = '\0';
    options.cluster_size = 512;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
    assert_non_null(strstr(err.message, "header cluster"));
    options.backing_file = NULL;
    assert_int_equal(q2s_options_validate(&options, &err), -1);
}

/* Zero clusters need L2 tables as data clusters do, and no host
 * cluster. */
static void test_zero_clusters(void **state)
{
    struct q2s_options options = options_of(512, 16);
    struct q2s_geometry geometry;
    struct q2s_clusters clusters;
    struct q2s_plan plan, without;
    struct q2s_error err;

    (void)state;
    options.backing_file = "b";
    options.backing_format = "raw";
    assert_int_equal(q2s_geometry_init(&geometry, &options, 1 * MiB, &err), 0);
    q2s_clusters_init(&clusters, &geometry);
    assert_int_equal(q2s_runs_add(&clusters.raw, 0, 1), 0);
    /* Tables 0 (shared with the data cluster) and 3. */
    assert_int_equal(q2s_runs_add(&clusters.zero, 10, 5), 0);
    assert_int_equal(q2s_runs_add(&clusters.zero, 200, 1), 0);
    assert_int_equal(q2s_plan_init(&plan, &geometry, &options, &clusters,
                                   &err), 0);
    assert_int_equal(q2s_runs_total(&plan.l2_tables), 2);
    assert_int_equal(q2s_runs_total(&plan.zero_clusters), 6);

    q2s_clusters_init(&clusters, &geometry);
    assert_int_equal(q2s_runs_add(&clusters.raw, 0, 1), 0);
    assert_int_equal(q2s_runs_add(&clusters.raw, 200, 1), 0);
    assert_int_equal(q2s_plan_init(&without, &geometry, &options, &clusters,
                                   &err), 0);
    /* One data cluster fewer, the same metadata. */
    assert_int_equal(plan.image_size + 512, without.image_size);
    q2s_plan_fini(&plan);
    q2s_plan_fini(&without);

    /* Past the end of the disk: a bug, refused. */
    q2s_clusters_init(&clusters, &geometry);
    assert_int_equal(q2s_runs_add(&clusters.zero, geometry.guest_clusters, 1),
                     0);
    assert_int_equal(q2s_plan_init(&plan, &geometry, &options, &clusters,
                                   &err), -1);
    assert_int_equal(err.code, ENOTRECOVERABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_small_image_64k),
        cmocka_unit_test(test_unaligned_sizes),
        cmocka_unit_test(test_refcount_fixed_point),
        cmocka_unit_test(test_l1_limit),
        cmocka_unit_test(test_l1_limit_messages),
        cmocka_unit_test(test_empty_input_has_refcount_table),
        cmocka_unit_test(test_refcount_table_limit_512),
        cmocka_unit_test(test_refcount_table_limit_64k),
        cmocka_unit_test(test_host_offset_limit),
        cmocka_unit_test(test_data_file_offset_limit),
        cmocka_unit_test(test_sparse_petabyte),
        cmocka_unit_test(test_external_data_file),
        cmocka_unit_test(test_options_checked),
        cmocka_unit_test(test_thread_count_checked),
        cmocka_unit_test(test_l2_tables_shared),
        cmocka_unit_test(test_backing_file_layout),
        cmocka_unit_test(test_backing_file_options),
        cmocka_unit_test(test_zero_clusters),
    };

    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
