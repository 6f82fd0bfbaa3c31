/* The qcow2 header and its extensions from untrusted bytes (see
 * qcow2_header.h).  Every offset and length is checked before use; the
 * order of the checks is QEMU's (block/qcow2.c, qcow2_do_open() and
 * qcow2_read_extensions()), so that an image is refused here exactly
 * where QEMU stops reading it. */
#include "format/qcow2_header.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

/* length bytes at offset, zeros past the end of image. */
static void copy_at(const uint8_t *image, size_t image_length,
                    uint64_t offset, void *out, size_t length)
{
    size_t available = 0;

    if (offset < image_length)
        available = image_length - (size_t)offset;
    if (available > length)
        available = length;
    if (available)
        memcpy(out, image + offset, available);
    memset((uint8_t *)out + available, 0, length - available);
}

/* The fixed fields, from the first QCOW2_V3_MIN_HEADER_LENGTH bytes. */
static void read_fields(const uint8_t *h, struct qcow2_header_info *info)
{
    info->version = q2s_get_be32(h + 4);
    info->backing_name_offset = q2s_get_be64(h + 8);
    info->backing_name_length = q2s_get_be32(h + 16);
    info->cluster_bits = q2s_get_be32(h + 20);
    info->virtual_size = q2s_get_be64(h + 24);
    info->crypt_method = q2s_get_be32(h + 32);
    info->l1_size = q2s_get_be32(h + 36);
    info->l1_table_offset = q2s_get_be64(h + 40);
    info->refcount_table_offset = q2s_get_be64(h + 48);
    info->refcount_table_clusters = q2s_get_be32(h + 56);
    info->nb_snapshots = q2s_get_be32(h + 60);
    info->snapshots_offset = q2s_get_be64(h + 64);
    if (info->version == 2) {
        info->refcount_order = 4;
        info->header_length = QCOW2_V2_HEADER_LENGTH;
    } else {
        info->incompatible_features = q2s_get_be64(h + 72);
        info->compatible_features = q2s_get_be64(h + 80);
        info->autoclear_features = q2s_get_be64(h + 88);
        info->refcount_order = q2s_get_be32(h + 96);
        info->header_length = q2s_get_be32(h + 100);
    }
}

/* qcow2_read_extensions(): from header_length to end, each an 8-byte
 * type and length, then the data padded to 8 bytes; type 0 ends them. */
static int read_extensions(const uint8_t *image, size_t length,
                           uint64_t end, struct qcow2_header_info *info,
                           struct q2s_error *err)
{
    uint64_t offset = info->header_length;

    while (offset < end) {
        uint8_t extension[QCOW2_EXTENSION_HEADER_BYTES];
        uint32_t type, data_length;

        copy_at(image, length, offset, extension, sizeof extension);
        type = q2s_get_be32(extension);
        data_length = q2s_get_be32(extension + 4);
        offset += sizeof extension;
        if (offset > end || data_length > end - offset)
            return q2s_error_set(err, EPROTO, "header extension 0x%08" PRIx32
                                 " at byte %" PRIu64 " is too large (%" PRIu32
                                 " bytes)", type,
                                 offset - sizeof extension, data_length);
        if (type == 0)
            break;
        if (type == QCOW2_EXT_BACKING_FORMAT) {
            if (data_length > QCOW2_MAX_BACKING_FORMAT)
                return q2s_error_set(err, EPROTO, "backing format extension "
                                     "of %" PRIu32 " bytes: at most %d",
                                     data_length, QCOW2_MAX_BACKING_FORMAT);
            copy_at(image, length, offset, info->backing_format,
                    data_length);
            info->backing_format[data_length] = '\0';
        } else if (type == QCOW2_EXT_DATA_FILE_NAME) {
            /* The last one counts, as in QEMU. */
            info->data_file_named = true;
            info->data_file_name_offset = offset;
            info->data_file_name_length = data_length;
        }
        offset += ((uint64_t)data_length + QCOW2_EXTENSION_ALIGNMENT - 1) &
                  ~(uint64_t)(QCOW2_EXTENSION_ALIGNMENT - 1);
    }
    return 0;
}

int qcow2_header_parse(const uint8_t *image, size_t length,
                       struct qcow2_header_info *info, struct q2s_error *err)
{
    uint8_t header[QCOW2_V3_MIN_HEADER_LENGTH];

    memset(info, 0, sizeof *info);
    copy_at(image, length, 0, header, sizeof header);
    if (q2s_get_be32(header) != QCOW2_MAGIC)
        return q2s_error_set(err, EPROTO, "not a qcow2 image (no magic)");
    read_fields(header, info);
    if (info->version < 2 || info->version > 3)
        return q2s_error_set(err, EPROTO, "not a qcow2 image of version 2 "
                             "or 3 (version %" PRIu32 ")", info->version);
    if (info->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        info->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return q2s_error_set(err, EPROTO, "cluster_bits %" PRIu32 ": not "
                             "from %d to %d", info->cluster_bits,
                             QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS);
    info->cluster_size = UINT32_C(1) << info->cluster_bits;
    if (info->version == 3 &&
        info->header_length < QCOW2_V3_MIN_HEADER_LENGTH)
        return q2s_error_set(err, EPROTO, "header_length %" PRIu32 ": "
                             "shorter than %d bytes", info->header_length,
                             QCOW2_V3_MIN_HEADER_LENGTH);
    if (info->header_length > info->cluster_size)
        return q2s_error_set(err, EPROTO, "header_length %" PRIu32 ": "
                             "longer than a cluster", info->header_length);
    /* "compression_type" is byte 104, there when the header is longer. */
    if (info->header_length > offsetof(struct qcow2_header,
                                       compression_type))
        copy_at(image, length, offsetof(struct qcow2_header,
                                        compression_type),
                &info->compression_type, 1);
    if (info->backing_name_offset > info->cluster_size)
        return q2s_error_set(err, EPROTO, "backing file name offset %" PRIu64
                             ": past the first cluster",
                             info->backing_name_offset);
    /* The extensions end where the backing file name starts, or with
     * the first cluster. */
    return read_extensions(image, length,
                           info->backing_name_offset
                               ? info->backing_name_offset
                               : info->cluster_size,
                           info, err);
}

int qcow2_header_check_backing_name(const struct qcow2_header_info *info,
                                    struct q2s_error *err)
{
    if (info->backing_name_offset == 0)
        return 0;
    if (info->backing_name_length > QCOW2_MAX_BACKING_FILE_NAME ||
        info->backing_name_length >
            info->cluster_size - info->backing_name_offset)
        return q2s_error_set(err, ENAMETOOLONG, "the backing file name (%"
                             PRIu32 " bytes at offset %" PRIu64 ") is longer "
                             "than QEMU reads (1023 bytes, in the first "
                             "cluster)", info->backing_name_length,
                             info->backing_name_offset);
    return 0;
}

/* qcow2_validate_table(): entries of entry_bytes at offset, at most
 * max_bytes in all, cluster-aligned, ending within 2^63 (QEMU passes
 * offsets as int64_t). */
static int check_table(const struct qcow2_header_info *info, uint64_t offset,
                       uint64_t entries, uint64_t entry_bytes,
                       uint64_t max_bytes, const char *table,
                       struct q2s_error *err)
{
    if (entries > max_bytes / entry_bytes)
        return q2s_error_set(err, EFBIG, "the %s (%" PRIu64 " bytes) is "
                             "larger than QEMU takes (%" PRIu64 " bytes)",
                             table, entries * entry_bytes, max_bytes);
    if ((uint64_t)INT64_MAX - entries * entry_bytes < offset ||
        offset % info->cluster_size != 0)
        return q2s_error_set(err, EPROTO, "the %s offset %" PRIu64 " is "
                             "invalid (not cluster-aligned, or the table "
                             "ends past 2^63)", table, offset);
    /* QEMU then reads the table, which must lie where its block layer
     * reads at all (bdrv_check_request()). */
    if (entries > 0 && offset + entries * entry_bytes > QCOW2_MAX_READ_END)
        return q2s_error_set(err, EPROTO, "the %s at offset %" PRIu64
                             " ends past what QEMU reads (2^63 - 2^30)",
                             table, offset);
    return 0;
}

bool qcow2_header_has_extended_l2(const struct qcow2_header_info *info)
{
    return info->incompatible_features &
           (UINT64_C(1) << QCOW2_INCOMPAT_EXTL2_BIT);
}

uint64_t qcow2_l1_entries_needed(const struct qcow2_header_info *info)
{
    /* An L2 table is a cluster of 8-byte entries, 16-byte extended ones. */
    uint32_t l2_bits = info->cluster_bits -
                       (qcow2_header_has_extended_l2(info) ? 4 : 3);
    uint32_t shift = info->cluster_bits + l2_bits;
    uint64_t mask = (UINT64_C(1) << shift) - 1;

    return (info->virtual_size >> shift) + ((info->virtual_size & mask) != 0);
}

int qcow2_header_check_open(const struct qcow2_header_info *info,
                            struct q2s_error *err)
{
    bool compression_bit = info->incompatible_features &
                           (UINT64_C(1) << QCOW2_INCOMPAT_COMPRESSION_BIT);
    uint64_t unknown = info->incompatible_features &
                       ~(uint64_t)QCOW2_INCOMPAT_KNOWN_MASK;
    uint64_t l1_needed;

    /* validate_compression_type() */
    if (info->compression_type > QCOW2_COMPRESSION_TYPE_ZSTD)
        return q2s_error_set(err, ENOTSUP, "unknown compression type %u",
                             info->compression_type);
    if ((info->compression_type != QCOW2_COMPRESSION_TYPE_ZLIB) !=
        compression_bit)
        return q2s_error_set(err, EPROTO, "compression type %u with the "
                             "compression type feature bit %s",
                             info->compression_type,
                             compression_bit ? "set" : "clear");
    if (unknown)
        return q2s_error_set(err, ENOTSUP, "unknown incompatible features "
                             "0x%" PRIx64, unknown);
    if (info->refcount_order > 6)
        return q2s_error_set(err, EPROTO, "refcount_order %" PRIu32 ": "
                             "refcounts wider than 64 bits",
                             info->refcount_order);
    if (info->crypt_method > QCOW2_CRYPT_LUKS)
        return q2s_error_set(err, ENOTSUP, "unknown encryption method %"
                             PRIu32, info->crypt_method);
    if (qcow2_header_has_extended_l2(info) &&
        info->cluster_bits < QCOW2_EXTL2_MIN_CLUSTER_BITS)
        return q2s_error_set(err, EPROTO, "extended L2 entries in clusters "
                             "of %" PRIu32 " bytes: subclusters under 512 "
                             "bytes", info->cluster_size);
    if (info->refcount_table_clusters == 0)
        return q2s_error_set(err, EPROTO, "no refcount table");
    if (check_table(info, info->refcount_table_offset,
                    info->refcount_table_clusters, info->cluster_size,
                    Q2S_MAX_REFTABLE_BYTES, "refcount table", err) < 0 ||
        check_table(info, info->snapshots_offset, info->nb_snapshots,
                    QCOW2_SNAPSHOT_HEADER_BYTES,
                    (uint64_t)QCOW2_SNAPSHOT_HEADER_BYTES *
                        QCOW2_MAX_SNAPSHOTS, "snapshot table", err) < 0 ||
        check_table(info, info->l1_table_offset, info->l1_size, 8,
                    Q2S_MAX_L1_BYTES, "L1 table", err) < 0)
        return -1;
    l1_needed = qcow2_l1_entries_needed(info);
    if (l1_needed > INT32_MAX)
        return q2s_error_set(err, EFBIG, "a virtual size of %" PRIu64
                             " bytes: more than QEMU opens",
                             info->virtual_size);
    if (info->l1_size < l1_needed)
        return q2s_error_set(err, EPROTO, "the L1 table (%" PRIu32
                             " entries) is too small for the virtual size "
                             "(%" PRIu64 " needed)", info->l1_size,
                             l1_needed);
    return 0;
}

void qcow2_header_copy_name(const uint8_t *image, size_t image_length,
                            uint64_t offset, size_t length, char *name)
{
    copy_at(image, image_length, offset, name, length);
    name[length] = '\0';
}
