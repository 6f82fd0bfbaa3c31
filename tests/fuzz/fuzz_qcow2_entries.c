/* L1 and L2 entries of an image from someone else, as the format layer
 * decodes them (lib/format/qcow2_entries.c), and compressed clusters as
 * it inflates them (lib/format/qcow2_decompress.c): the reader of
 * qcow2-from-stdin relies on what these promise.
 *
 * The input's first byte picks the image (cluster size, extended L2
 * entries, an external data file, the compression type); then come
 * entries, 8 bytes each (16 with extended L2 entries), and the last
 * entry's compressed data is what follows it.
 *
 * - a decoded L1 entry points to a cluster-aligned L2 table;
 * - a decoded L2 entry reads each subcluster from one place: data at a
 *   cluster-aligned host offset, zeros, or unallocated, never two;
 * - a compressed cluster's bytes end on a sector boundary, at most two
 *   clusters long (what the sector count can say), and inflate into
 *   exactly one cluster or are refused, never writing past it. */
#include <errno.h>
#include <stdbool.h>

#include "format/qcow2_decompress.h"
#include "format/qcow2_entries.h"
#include "fuzz.h"

#define GUARD_BYTES 64

static void check_inflate(const struct qcow2_header_info *info,
                          const uint8_t *data, size_t size)
{
    struct q2s_error err = { .code = 0 };
    struct qcow2_decompressor *d;
    uint8_t *out = malloc(info->cluster_size + GUARD_BYTES);

    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(qcow2_decompressor_new(info->compression_type,
                                      info->cluster_size, &d, &err) == 0);
    memset(out + info->cluster_size, 0xa5, GUARD_BYTES);
    if (qcow2_decompress_cluster(d, data, size, out, &err) < 0) {
        FUZZ_CHECK(err.code == EPROTO || err.code == ENOMEM);
        fuzz_check_message(err.message);
    }
    for (size_t i = 0; i < GUARD_BYTES; i++)
        FUZZ_CHECK(out[info->cluster_size + i] == 0xa5);
    qcow2_decompressor_free(d);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qcow2_header_info info = { .version = 3 };
    struct q2s_error err = { .code = 0 };
    uint32_t subclusters, all;
    size_t entry_bytes;
    bool data_file;

    if (size < 1)
        return 0;
    info.cluster_bits = 9 + data[0] % 13;
    info.cluster_size = UINT32_C(1) << info.cluster_bits;
    if ((data[0] & 0x80) && info.cluster_bits >= QCOW2_EXTL2_MIN_CLUSTER_BITS)
        info.incompatible_features |=
            UINT64_C(1) << QCOW2_INCOMPAT_EXTL2_BIT;
    data_file = data[0] & 0x40;
    info.compression_type = (data[0] & 0x20) ? QCOW2_COMPRESSION_TYPE_ZSTD
                                             : QCOW2_COMPRESSION_TYPE_ZLIB;
    subclusters = qcow2_subclusters(&info);
    all = subclusters == 32 ? UINT32_MAX : 1;
    entry_bytes = subclusters > 1 ? 16 : 8;
    data++;
    size--;
    for (size_t at = 0; at + entry_bytes <= size; at += entry_bytes) {
        struct qcow2_cluster_mapping m;
        uint64_t l2_offset, entry = q2s_get_be64(data + at);

        if (qcow2_decode_l1_entry(&info, entry, &l2_offset, &err) == 0) {
            FUZZ_CHECK(l2_offset % info.cluster_size == 0);
            FUZZ_CHECK(l2_offset < Q2S_MAX_OFFSET_END);
        } else {
            FUZZ_CHECK(err.code == EPROTO);
            fuzz_check_message(err.message);
        }
        uint64_t bitmap = entry_bytes == 16 ? q2s_get_be64(data + at + 8) : 0;

        if (qcow2_decode_l2_entry(&info, entry, bitmap, data_file, &m,
                                  &err) < 0) {
            FUZZ_CHECK(err.code == EPROTO);
            fuzz_check_message(err.message);
            continue;
        }
        FUZZ_CHECK((m.data_mask & m.zero_mask) == 0);
        FUZZ_CHECK(((m.data_mask | m.zero_mask) & ~all) == 0);
        switch (m.kind) {
        case QCOW2_CLUSTER_UNALLOCATED:
            FUZZ_CHECK(m.data_mask == 0);
            break;
        case QCOW2_CLUSTER_STANDARD:
            FUZZ_CHECK(m.host_offset % info.cluster_size == 0);
            FUZZ_CHECK(m.host_offset < Q2S_MAX_OFFSET_END);
            FUZZ_CHECK(m.host_offset != 0 || data_file);
            break;
        case QCOW2_CLUSTER_COMPRESSED:
            FUZZ_CHECK(!data_file);
            FUZZ_CHECK(m.data_mask == all && m.zero_mask == 0);
            FUZZ_CHECK(m.compressed_bytes > 0);
            /* The sectors field counts up to two clusters' worth. */
            FUZZ_CHECK(m.compressed_bytes <= 2 * info.cluster_size);
            FUZZ_CHECK((m.host_offset + m.compressed_bytes) %
                           QCOW2_SECTOR_SIZE == 0);
            if (at + entry_bytes * 2 > size) {
                size_t rest = size - at - entry_bytes;

                check_inflate(&info, data + at + entry_bytes,
                              rest < m.compressed_bytes ? rest
                                                        : m.compressed_bytes);
            }
            break;
        }
    }
    /* Whatever the entries, the data after them inflates or is refused. */
    if (size > 0)
        check_inflate(&info, data, size);
    return 0;
}
