/* Compressing clusters: what comes out inflates the way QEMU reads it, at
 * most the cluster size less one, the same every time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "error.h"
#include "format/qcow2_compress.h"

/* Raw inflate with a 4 KiB window, as QEMU's qcow2_zlib_decompress()
 * sets it up, but a byte of output per call: then every match must come
 * from the 4 KiB window, so a stream that reaches further back fails here
 * even where one call into a whole cluster would let it pass. */
static int strict_inflate(const uint8_t *in, size_t in_length, uint8_t *out,
                          size_t out_length)
{
    z_stream strm = { 0 };
    int ret = Z_OK;

    if (inflateInit2(&strm, -12) != Z_OK)
        return -1;
    strm.next_in = (Bytef *)(uintptr_t)in;
    strm.avail_in = (uInt)in_length;
    strm.next_out = out;
    while (ret == Z_OK && strm.total_out < out_length) {
        strm.avail_out = 1;
        ret = inflate(&strm, Z_NO_FLUSH);
    }
    inflateEnd(&strm);
    return (ret == Z_OK || ret == Z_STREAM_END) &&
                   strm.total_out == out_length
               ? 0 : -1;
}

static void fill_random(uint8_t *p, size_t length, uint64_t *seed)
{
    for (size_t i = 0; i < length; i++) {
        *seed = *seed * 6364136223846793005u + 1442695040888963407u;
        p[i] = (uint8_t)(*seed >> 56);
    }
}

/* A random block of period bytes, repeated: it compresses only with
 * matches reaching period bytes back. */
static void fill_periodic(uint8_t *p, size_t length, size_t period)
{
    uint64_t seed = period;

    fill_random(p, period, &seed);
    for (size_t i = period; i < length; i++)
        p[i] = p[i - period];
}

/* The check above catches a stream with a 32 KiB window. */
static void test_strict_inflate_catches_far_matches(void **state)
{
    const size_t cluster_size = 65536;
    uint8_t *in = malloc(cluster_size), *out = malloc(cluster_size * 2);
    uint8_t *back = malloc(cluster_size);
    z_stream strm = { 0 };

    (void)state;
    fill_periodic(in, cluster_size, 8192);
    assert_int_equal(deflateInit2(&strm, 6, Z_DEFLATED, -15, 9,
                                  Z_DEFAULT_STRATEGY), Z_OK);
    strm.next_in = in;
    strm.avail_in = (uInt)cluster_size;
    strm.next_out = out;
    strm.avail_out = (uInt)cluster_size * 2;
    assert_int_equal(deflate(&strm, Z_FINISH), Z_STREAM_END);
    assert_true(strm.total_out < cluster_size / 2);  /* it used them */
    assert_int_equal(strict_inflate(out, strm.total_out, back, cluster_size),
                     -1);
    deflateEnd(&strm);
    free(in);
    free(out);
    free(back);
}

/* expect_compressed: 1 if it must compress, 0 if it must not, -1 if
 * either will do. */
static void round_trip(enum q2s_compression type, uint32_t cluster_size,
                       const uint8_t *in, int expect_compressed)
{
    struct q2s_compressor *c;
    struct q2s_error err;
    uint8_t *out = malloc(cluster_size), *again = malloc(cluster_size);
    uint8_t *back = malloc(cluster_size);
    int bytes;

    assert_int_equal(q2s_compressor_new(type, q2s_compression_level(
                                                  type,
                                                  Q2S_COMPRESSION_LEVEL_DEFAULT),
                                        cluster_size, &c, &err),
                     0);
    bytes = q2s_compress_cluster(c, in, out, &err);
    assert_true(bytes >= 0 && bytes < (int)cluster_size);
    if (expect_compressed >= 0)
        assert_int_equal(bytes > 0, expect_compressed);
    if (bytes > 0) {
        /* The next cluster's bytes may follow in the image: inflating
         * must stop at the end of the stream anyway. */
        memset(out + bytes, 0xa5, cluster_size - (uint32_t)bytes);
        if (type == Q2S_COMPRESSION_ZLIB) {
            assert_int_equal(strict_inflate(out, cluster_size, back,
                                            cluster_size), 0);
        } else {
            assert_int_equal(ZSTD_decompress(back, cluster_size, out,
                                             (size_t)bytes),
                             cluster_size);
        }
        assert_memory_equal(back, in, cluster_size);
        /* The same bytes every time, from the same context. */
        assert_int_equal(q2s_compress_cluster(c, in, again, &err), bytes);
        assert_memory_equal(again, out, (size_t)bytes);
    }
    q2s_compressor_free(c);
    free(out);
    free(again);
    free(back);
}

static void test_round_trips(void **state)
{
    static const enum q2s_compression types[] = { Q2S_COMPRESSION_ZLIB,
                                                  Q2S_COMPRESSION_ZSTD };

    (void)state;
    for (size_t t = 0; t < 2; t++) {
        for (uint32_t cluster_size = 512; cluster_size <= 2 * 1024 * 1024;
             cluster_size *= 2) {
            uint8_t *in = malloc(cluster_size);
            uint64_t seed = cluster_size;

            /* Repeats from 1 KiB to 16 KiB back, where the cluster is
             * large enough: zlib must still keep to 4 KiB, so whether it
             * compresses those from 4 KiB on is its business. */
            for (size_t period = 1024; period <= 16384 &&
                                       period * 2 <= cluster_size;
                 period *= 2) {
                fill_periodic(in, cluster_size, period);
                round_trip(types[t], cluster_size, in,
                           types[t] == Q2S_COMPRESSION_ZSTD || period < 4096
                               ? 1 : -1);
            }
            fill_random(in, cluster_size, &seed);
            round_trip(types[t], cluster_size, in, 0);
            memset(in, 'x', cluster_size);
            round_trip(types[t], cluster_size, in, 1);
            free(in);
        }
    }
}

static void test_levels(void **state)
{
    int min, max, def;

    (void)state;
    q2s_compression_levels(Q2S_COMPRESSION_ZLIB, &min, &max, &def);
    assert_int_equal(min, 1);
    assert_int_equal(max, 9);
    assert_int_equal(def, 6);
    assert_int_equal(q2s_compression_level(Q2S_COMPRESSION_ZLIB, 2), 2);
    q2s_compression_levels(Q2S_COMPRESSION_ZSTD, &min, &max, &def);
    assert_true(min < 0);
    assert_int_equal(max, ZSTD_maxCLevel());
    assert_int_equal(q2s_compression_level(Q2S_COMPRESSION_ZSTD,
                                           Q2S_COMPRESSION_LEVEL_DEFAULT),
                     3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_inflate_catches_far_matches),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_levels),
    };

    return cmocka_run_group_tests_name("compress", tests, NULL, NULL);
}
