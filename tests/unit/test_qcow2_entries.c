/* L1 and L2 entries as the format layer decodes them: what QEMU's images
 * never hold, refused (test_qcow2_entries.sh holds the rest against
 * qemu-img map), and compressed descriptors as the writer encodes them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "format/qcow2_entries.h"

static struct qcow2_header_info image(uint32_t cluster_bits, bool extended)
{
    struct qcow2_header_info info = { .version = 3 };

    info.cluster_bits = cluster_bits;
    info.cluster_size = UINT32_C(1) << cluster_bits;
    if (extended)
        info.incompatible_features = UINT64_C(1) << QCOW2_INCOMPAT_EXTL2_BIT;
    return info;
}

static void refused(const struct qcow2_header_info *info, uint64_t entry,
                    uint64_t bitmap, bool data_file, const char *want)
{
    struct qcow2_cluster_mapping m;
    struct q2s_error err = { .code = 0 };

    assert_int_equal(qcow2_decode_l2_entry(info, entry, bitmap, data_file,
                                           &m, &err), -1);
    assert_int_equal(err.code, EPROTO);
    if (!strstr(err.message, want))
        fail_msg("\"%s\" does not say \"%s\"", err.message, want);
}

static void test_l1(void **state)
{
    struct qcow2_header_info info = image(16, false);
    struct q2s_error err = { .code = 0 };
    uint64_t l2;

    (void)state;
    assert_int_equal(qcow2_decode_l1_entry(&info, QCOW2_OFLAG_COPIED | 0x30000,
                                           &l2, &err), 0);
    assert_int_equal(l2, 0x30000);
    /* Reserved bits are not an offset. */
    assert_int_equal(qcow2_decode_l1_entry(&info, UINT64_C(0x7f000000000001ff),
                                           &l2, &err), 0);
    assert_int_equal(l2, 0);
    assert_int_equal(qcow2_decode_l1_entry(&info, 0x30200, &l2, &err), -1);
    assert_non_null(strstr(err.message, "not cluster-aligned"));
}

static void test_standard(void **state)
{
    struct qcow2_header_info info = image(16, false);
    struct qcow2_cluster_mapping m;
    struct q2s_error err = { .code = 0 };

    (void)state;
    assert_int_equal(qcow2_decode_l2_entry(&info, 0, 0, false, &m, &err), 0);
    assert_int_equal(m.kind, QCOW2_CLUSTER_UNALLOCATED);
    assert_int_equal(m.data_mask | m.zero_mask, 0);
    assert_int_equal(qcow2_decode_l2_entry(&info, QCOW2_OFLAG_ZERO, 0, false,
                                           &m, &err), 0);
    assert_int_equal(m.kind, QCOW2_CLUSTER_UNALLOCATED);
    assert_int_equal(m.zero_mask, 1);
    assert_int_equal(qcow2_decode_l2_entry(&info, QCOW2_OFLAG_COPIED | 0x50000,
                                           0, false, &m, &err), 0);
    assert_int_equal(m.kind, QCOW2_CLUSTER_STANDARD);
    assert_int_equal(m.host_offset, 0x50000);
    assert_int_equal(m.data_mask, 1);
    assert_int_equal(qcow2_decode_l2_entry(&info, 0x50000 | QCOW2_OFLAG_ZERO,
                                           0, false, &m, &err), 0);
    assert_int_equal(m.zero_mask, 1);
    assert_int_equal(m.data_mask, 0);
    /* Offset 0 with COPIED: the first cluster of an external data file,
     * unallocated in the image file itself. */
    assert_int_equal(qcow2_decode_l2_entry(&info, QCOW2_OFLAG_COPIED, 0, true,
                                           &m, &err), 0);
    assert_int_equal(m.kind, QCOW2_CLUSTER_STANDARD);
    assert_int_equal(m.host_offset, 0);
    assert_int_equal(qcow2_decode_l2_entry(&info, QCOW2_OFLAG_COPIED, 0, false,
                                           &m, &err), 0);
    assert_int_equal(m.kind, QCOW2_CLUSTER_UNALLOCATED);
    refused(&info, 0x50200, 0, false, "not cluster-aligned");
}

static void test_compressed(void **state)
{
    (void)state;
    for (uint32_t bits = 9; bits <= 21; bits++) {
        struct qcow2_header_info info = image(bits, false);
        struct qcow2_cluster_mapping m;
        struct q2s_error err = { .code = 0 };
        uint64_t hosts[] = { 0x1000, 0x1001ff, 0x12345 };

        for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
            uint32_t bytes = info.cluster_size - 7;

            assert_int_equal(qcow2_decode_l2_entry(
                                 &info, qcow2_compressed_descriptor(hosts[i], bytes, bits),
                                 0, false, &m, &err), 0);
            assert_int_equal(m.kind, QCOW2_CLUSTER_COMPRESSED);
            assert_int_equal(m.host_offset, hosts[i]);
            /* The sectors it touches, from its first byte on. */
            assert_true(m.compressed_bytes >= bytes);
            assert_true(m.compressed_bytes < bytes + QCOW2_SECTOR_SIZE);
            assert_int_equal((hosts[i] + m.compressed_bytes) % QCOW2_SECTOR_SIZE, 0);
        }
        refused(&info, qcow2_compressed_descriptor(0x1000, 100, bits), 0,
                true, "external data file");
    }
}

static void test_subclusters(void **state)
{
    struct qcow2_header_info info = image(16, true);
    struct qcow2_cluster_mapping m;
    struct q2s_error err = { .code = 0 };

    (void)state;
    assert_int_equal(qcow2_subclusters(&info), 32);
    assert_int_equal(qcow2_decode_l2_entry(&info, 0x50000, 0x0000000f000000f0,
                                           false, &m, &err), 0);
    assert_int_equal(m.kind, QCOW2_CLUSTER_STANDARD);
    assert_int_equal(m.data_mask, 0xf0);
    assert_int_equal(m.zero_mask, 0xf);
    assert_int_equal(qcow2_decode_l2_entry(&info, 0, UINT64_C(0xffffffff00000000),
                                           false, &m, &err), 0);
    assert_int_equal(m.kind, QCOW2_CLUSTER_UNALLOCATED);
    assert_int_equal(m.zero_mask, UINT32_MAX);
    /* Bit 0 is no zero flag with subclusters. */
    assert_int_equal(qcow2_decode_l2_entry(&info, QCOW2_OFLAG_ZERO, 0, false,
                                           &m, &err), 0);
    assert_int_equal(m.zero_mask, 0);
    refused(&info, 0x50000, 0x0000000100000001, false, "both allocated and zero");
    refused(&info, 0, 1, false, "allocated in an unallocated cluster");
    refused(&info, qcow2_compressed_descriptor(0x1000, 100, 16), 1, false,
            "subcluster bits");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_l1),
        cmocka_unit_test(test_standard),
        cmocka_unit_test(test_compressed),
        cmocka_unit_test(test_subclusters),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
