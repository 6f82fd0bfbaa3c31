/* L1 and L2 entries from untrusted bytes (see qcow2_entries.h). */
#include "format/qcow2_entries.h"

#include <errno.h>
#include <inttypes.h>

#define ZERO_FLAG QCOW2_OFLAG_ZERO
#define COPIED_FLAG QCOW2_OFLAG_COPIED
#define COMPRESSED_FLAG QCOW2_OFLAG_COMPRESSED

uint32_t qcow2_subclusters(const struct qcow2_header_info *info)
{
    return qcow2_header_has_extended_l2(info) ? QCOW2_EXTL2_SUBCLUSTERS : 1;
}

static uint32_t all_subclusters(const struct qcow2_header_info *info)
{
    uint32_t n = qcow2_subclusters(info);

    return n == 32 ? UINT32_MAX : (UINT32_C(1) << n) - 1;
}

int qcow2_decode_l1_entry(const struct qcow2_header_info *info,
                          uint64_t entry, uint64_t *l2_offset,
                          struct q2s_error *err)
{
    *l2_offset = entry & QCOW2_ENTRY_OFFSET_MASK;
    if (*l2_offset % info->cluster_size != 0)
        return q2s_error_set(err, EPROTO, "L1 entry 0x%016" PRIx64 ": its "
                             "L2 table offset is not cluster-aligned", entry);
    return 0;
}

/* "Compressed Clusters Descriptor": x = 62 - (cluster_bits - 8) bits of
 * host offset, then the number of 512-byte sectors after the first
 * (qcow2_parse_compressed_l2_entry()). */
static void decode_compressed(const struct qcow2_header_info *info,
                              uint64_t entry,
                              struct qcow2_cluster_mapping *mapping)
{
    uint32_t shift = qcow2_compressed_offset_bits(info->cluster_bits);
    uint64_t sectors_mask = (UINT64_C(1) << (info->cluster_bits - 8)) - 1;
    uint64_t sectors = ((entry >> shift) & sectors_mask) + 1;

    mapping->kind = QCOW2_CLUSTER_COMPRESSED;
    mapping->host_offset = entry & ((UINT64_C(1) << shift) - 1);
    mapping->compressed_bytes =
        (uint32_t)(sectors * QCOW2_SECTOR_SIZE -
                   (mapping->host_offset & (QCOW2_SECTOR_SIZE - 1)));
    mapping->data_mask = all_subclusters(info);
}

int qcow2_decode_l2_entry(const struct qcow2_header_info *info,
                          uint64_t entry, uint64_t bitmap, bool data_file,
                          struct qcow2_cluster_mapping *mapping,
                          struct q2s_error *err)
{
    bool extended = qcow2_header_has_extended_l2(info);
    uint32_t alloc = (uint32_t)bitmap, zero = (uint32_t)(bitmap >> 32);
    uint64_t offset = entry & QCOW2_ENTRY_OFFSET_MASK;

    *mapping = (struct qcow2_cluster_mapping){ 0 };
    if (entry & COMPRESSED_FLAG) {
        /* QEMU refuses compressed clusters with a data file when it
         * reads them ("Compressed clusters are not supported with
         * external data files"), and their bitmap is reserved. */
        if (data_file)
            return q2s_error_set(err, EPROTO, "L2 entry 0x%016" PRIx64
                                 ": a compressed cluster in an image with "
                                 "an external data file", entry);
        if (extended && bitmap != 0)
            return q2s_error_set(err, EPROTO, "L2 entry 0x%016" PRIx64
                                 ": a compressed cluster with subcluster "
                                 "bits 0x%016" PRIx64, entry, bitmap);
        decode_compressed(info, entry, mapping);
        return 0;
    }
    /* Offset 0 is "unallocated", except in an external data file, whose
     * clusters all have refcount 1 and so the COPIED flag. */
    if (offset != 0 || (data_file && (entry & COPIED_FLAG))) {
        if (offset % info->cluster_size != 0)
            return q2s_error_set(err, EPROTO, "L2 entry 0x%016" PRIx64
                                 ": its host offset is not cluster-aligned",
                                 entry);
        mapping->host_offset = offset;
        if (!extended) {
            mapping->kind = QCOW2_CLUSTER_STANDARD;
            /* ZERO_ALLOC: allocated, and reads as zeros. */
            if (entry & ZERO_FLAG)
                mapping->zero_mask = 1;
            else
                mapping->data_mask = 1;
            return 0;
        }
        if (alloc & zero)
            return q2s_error_set(err, EPROTO, "L2 entry 0x%016" PRIx64
                                 ": subclusters both allocated and zero "
                                 "(bitmap 0x%016" PRIx64 ")", entry, bitmap);
        mapping->kind = QCOW2_CLUSTER_STANDARD;
        mapping->data_mask = alloc;
        mapping->zero_mask = zero;
        return 0;
    }
    mapping->kind = QCOW2_CLUSTER_UNALLOCATED;
    if (!extended) {
        /* ZERO_PLAIN: reads as zeros, nothing from a backing file. */
        if (entry & ZERO_FLAG)
            mapping->zero_mask = 1;
        return 0;
    }
    if (alloc != 0)
        return q2s_error_set(err, EPROTO, "L2 entry 0x%016" PRIx64 ": "
                             "subclusters allocated in an unallocated "
                             "cluster (bitmap 0x%016" PRIx64 ")", entry,
                             bitmap);
    mapping->zero_mask = zero;
    return 0;
}
