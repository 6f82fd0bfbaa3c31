/* The on-disk structs of qcow2_format.h against the byte offsets and sizes
 * of the tables in QEMU's docs/interop/qcow2.rst, written out here by hand
 * from the spec rather than from the structs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "format/qcow2_format.h"

#define FIELD_SIZE(type, field) sizeof(((type *)0)->field)

/* Each field's first byte and size: "Header", bytes 0 to 104, and the
 * padding up to header_length (112). */
static void test_header_offsets(void **state)
{
    (void)state;
#define CHECK(field, offset, size)                                            \
    do {                                                                      \
        assert_int_equal(offsetof(struct qcow2_header, field), offset);       \
        assert_int_equal(FIELD_SIZE(struct qcow2_header, field), size);       \
    } while (0)
    CHECK(magic, 0, 4);
    CHECK(version, 4, 4);
    CHECK(backing_file_offset, 8, 8);
    CHECK(backing_file_size, 16, 4);
    CHECK(cluster_bits, 20, 4);
    CHECK(size, 24, 8);
    CHECK(crypt_method, 32, 4);
    CHECK(l1_size, 36, 4);
    CHECK(l1_table_offset, 40, 8);
    CHECK(refcount_table_offset, 48, 8);
    CHECK(refcount_table_clusters, 56, 4);
    CHECK(nb_snapshots, 60, 4);
    CHECK(snapshots_offset, 64, 8);
    CHECK(incompatible_features, 72, 8);
    CHECK(compatible_features, 80, 8);
    CHECK(autoclear_features, 88, 8);
    CHECK(refcount_order, 96, 4);
    CHECK(header_length, 100, 4);
    CHECK(compression_type, 104, 1);
    CHECK(padding, 105, 7);
#undef CHECK
    assert_int_equal(sizeof(struct qcow2_header), 112);
}

/* "Header extensions": type at 0, length at 4, data from 8.  "Feature name
 * table": type at 0, bit number at 1, name at 2 to 47. */
static void test_extension_offsets(void **state)
{
    (void)state;
    assert_int_equal(offsetof(struct qcow2_extension_header, type), 0);
    assert_int_equal(FIELD_SIZE(struct qcow2_extension_header, type), 4);
    assert_int_equal(offsetof(struct qcow2_extension_header, length), 4);
    assert_int_equal(FIELD_SIZE(struct qcow2_extension_header, length), 4);
    assert_int_equal(sizeof(struct qcow2_extension_header), 8);

    assert_int_equal(offsetof(struct qcow2_feature_name, type), 0);
    assert_int_equal(offsetof(struct qcow2_feature_name, bit), 1);
    assert_int_equal(offsetof(struct qcow2_feature_name, name), 2);
    assert_int_equal(FIELD_SIZE(struct qcow2_feature_name, name), 46);
    assert_int_equal(sizeof(struct qcow2_feature_name), 48);
    assert_int_equal(QCOW2_FEATURE_INCOMPATIBLE, 0);
    assert_int_equal(QCOW2_FEATURE_COMPATIBLE, 1);
    assert_int_equal(QCOW2_FEATURE_AUTOCLEAR, 2);
}

/* "Compressed Clusters Descriptor": x = 62 - (cluster_bits - 8) offset
 * bits, then the count of further 512-byte sectors, up to bit 61. */
static void test_compressed_descriptor(void **state)
{
    (void)state;
    assert_int_equal(QCOW2_SECTOR_SIZE, 512);
    assert_int_equal(qcow2_compressed_offset_bits(9), 61);
    assert_int_equal(qcow2_compressed_offset_bits(16), 54);
    assert_int_equal(qcow2_compressed_offset_bits(21), 49);
    /* 100 bytes within one sector: no further sectors. */
    assert_int_equal(qcow2_compressed_descriptor(0x10000, 100, 16),
                     UINT64_C(1) << 62 | 0x10000);
    /* Bytes 0x101f0 to 0x103ff touch sectors 0x80 and 0x81. */
    assert_int_equal(qcow2_compressed_descriptor(0x101f0, 0x210, 16),
                     UINT64_C(1) << 62 | UINT64_C(1) << 54 | 0x101f0);
    /* 512-byte clusters leave one bit, 61, for the count: 0x3f0 to 0x453
     * touch sectors 1 and 2. */
    assert_int_equal(qcow2_compressed_descriptor(0x3f0, 100, 9),
                     UINT64_C(1) << 62 | UINT64_C(1) << 61 | 0x3f0);
    assert_int_equal(qcow2_round_up_to_sector(0), 0);
    assert_int_equal(qcow2_round_up_to_sector(1), 512);
    assert_int_equal(qcow2_round_up_to_sector(512), 512);
    assert_int_equal(qcow2_round_up_to_sector(513), 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_offsets),
        cmocka_unit_test(test_extension_offsets),
        cmocka_unit_test(test_compressed_descriptor),
    };

    return cmocka_run_group_tests_name("qcow2_format", tests, NULL, NULL);
}
