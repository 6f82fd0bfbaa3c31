/* Compressed clusters inflated as QEMU inflates them: what our compressor
 * writes comes back, with the rest of its last sector after it; what is
 * cut short, corrupt, or more than a cluster is refused, and never
 * written past the cluster. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "format/qcow2_compress.h"
#include "format/qcow2_decompress.h"
#include "format/qcow2_format.h"

/* A cluster that compresses, but not to nothing. */
static void fill(uint8_t *p, uint32_t size)
{
    for (uint32_t i = 0; i < size; i++)
        p[i] = (uint8_t)((i * 7) % 251 < 100 ? i % 13 : 'a' + i % 5);
}

static void round_trip(enum q2s_compression type, uint8_t qcow2_type,
                       uint32_t cluster_size)
{
    struct q2s_error err = { .code = 0 };
    struct q2s_compressor *compressor;
    struct qcow2_decompressor *d;
    uint8_t *in = malloc(cluster_size), *packed = calloc(1, cluster_size + 512);
    uint8_t *out = malloc(cluster_size + 64);
    int bytes;

    assert_non_null(in);
    assert_non_null(packed);
    assert_non_null(out);
    fill(in, cluster_size);
    assert_int_equal(q2s_compressor_new(type, q2s_compression_level(
                                            type, Q2S_COMPRESSION_LEVEL_DEFAULT),
                                        cluster_size, &compressor, &err), 0);
    bytes = q2s_compress_cluster(compressor, in, packed, &err);
    assert_true(bytes > 0);
    assert_int_equal(qcow2_decompressor_new(qcow2_type, cluster_size, &d,
                                            &err), 0);
    /* The sectors the descriptor names: whatever follows the data in its
     * last sector comes along. */
    memset(packed + bytes, 0xa5, 512);
    memset(out, 0x5a, cluster_size + 64);
    assert_int_equal(qcow2_decompress_cluster(
                         d, packed, qcow2_round_up_to_sector((uint64_t)bytes),
                         out, &err), 0);
    assert_memory_equal(out, in, cluster_size);
    for (uint32_t i = cluster_size; i < cluster_size + 64; i++)
        assert_int_equal(out[i], 0x5a);
    /* Cut short: it does not fill the cluster. */
    if (bytes > 8) {
        assert_int_equal(qcow2_decompress_cluster(d, packed, (size_t)bytes / 2,
                                                  out, &err), -1);
        assert_int_equal(err.code, EPROTO);
    }
    /* Corrupt. */
    memset(packed, 0xff, 16);
    assert_int_equal(qcow2_decompress_cluster(d, packed, (size_t)bytes, out,
                                              &err), -1);
    assert_int_equal(err.code, EPROTO);
    assert_null(strchr(err.message, '\n'));
    /* The state does not carry over to the next cluster. */
    q2s_compress_cluster(compressor, in, packed, &err);
    assert_int_equal(qcow2_decompress_cluster(d, packed, (size_t)bytes, out,
                                              &err), 0);
    assert_memory_equal(out, in, cluster_size);
    qcow2_decompressor_free(d);
    q2s_compressor_free(compressor);
    free(in);
    free(packed);
    free(out);
}

static void test_round_trips(void **state)
{
    (void)state;
    for (uint32_t bits = 9; bits <= 21; bits++) {
        round_trip(Q2S_COMPRESSION_ZLIB, QCOW2_COMPRESSION_TYPE_ZLIB,
                   UINT32_C(1) << bits);
        round_trip(Q2S_COMPRESSION_ZSTD, QCOW2_COMPRESSION_TYPE_ZSTD,
                   UINT32_C(1) << bits);
    }
}

/* More than a cluster inflates from the data of a larger cluster: refused,
 * the output written no further than the cluster. */
static void test_more_than_a_cluster(void **state)
{
    struct q2s_error err = { .code = 0 };
    struct q2s_compressor *compressor;
    struct qcow2_decompressor *d;
    uint8_t *in = malloc(65536), *packed = calloc(1, 65536);
    uint8_t out[4096 + 64];

    (void)state;
    fill(in, 65536);
    assert_int_equal(q2s_compressor_new(Q2S_COMPRESSION_ZSTD, 3, 65536,
                                        &compressor, &err), 0);
    int bytes = q2s_compress_cluster(compressor, in, packed, &err);

    assert_true(bytes > 0);
    assert_int_equal(qcow2_decompressor_new(QCOW2_COMPRESSION_TYPE_ZSTD, 4096,
                                            &d, &err), 0);
    memset(out, 0x5a, sizeof out);
    assert_int_equal(qcow2_decompress_cluster(d, packed, (size_t)bytes, out,
                                              &err), -1);
    assert_int_equal(err.code, EPROTO);
    for (size_t i = 4096; i < sizeof out; i++)
        assert_int_equal(out[i], 0x5a);
    qcow2_decompressor_free(d);
    q2s_compressor_free(compressor);
    assert_int_equal(qcow2_decompressor_new(7, 4096, &d, &err), -1);
    assert_int_equal(err.code, EINVAL);
    free(in);
    free(packed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_more_than_a_cluster),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
