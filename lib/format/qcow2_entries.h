/* L1 and L2 table entries (docs/interop/qcow2.rst, "Cluster mapping",
 * "Standard Cluster Descriptor", "Compressed Clusters Descriptor",
 * "Extended L2 Entries") read from untrusted bytes, as QEMU reads them
 * (block/qcow2.h, qcow2_get_cluster_type() and
 * qcow2_get_subcluster_type(); block/qcow2-cluster.c).  Pure: entries in,
 * what the guest reads out. */
#ifndef Q2S_FORMAT_QCOW2_ENTRIES_H
#define Q2S_FORMAT_QCOW2_ENTRIES_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "format/qcow2_header.h"

/* Bits 9-55 of L1 and standard L2 entries: a host offset (L1E_OFFSET_MASK,
 * L2E_OFFSET_MASK). */
#define QCOW2_ENTRY_OFFSET_MASK UINT64_C(0x00fffffffffffe00)

/* What a guest cluster reads as. */
enum qcow2_cluster_kind {
    /* From the backing file where there is one, zeros otherwise; with
     * extended L2 entries, subclusters may still be zero or data. */
    QCOW2_CLUSTER_UNALLOCATED,
    /* Subclusters from the host cluster at host_offset (data_mask), zeros
     * (zero_mask), or, in neither mask, as unallocated. */
    QCOW2_CLUSTER_STANDARD,
    /* compressed_bytes at host_offset, at most, inflate to the cluster. */
    QCOW2_CLUSTER_COMPRESSED,
};

struct qcow2_cluster_mapping {
    enum qcow2_cluster_kind kind;
    uint64_t host_offset;       /* STANDARD, COMPRESSED */
    uint32_t compressed_bytes;  /* COMPRESSED: the sectors it touches */
    /* One bit per subcluster (32 with extended L2 entries, else 1), bit i
     * for subcluster i: read from the host cluster, or read as zeros.
     * Never both. */
    uint32_t data_mask;
    uint32_t zero_mask;
};

/* The subclusters of a cluster of the image: 32 with extended L2
 * entries, else 1. */
uint32_t qcow2_subclusters(const struct qcow2_header_info *info);

/* An L1 entry: *l2_offset is where its L2 table lies, 0 for none.  -1
 * with EPROTO for an offset that is not cluster-aligned (QEMU: "L2 table
 * offset ... unaligned"). */
int qcow2_decode_l1_entry(const struct qcow2_header_info *info,
                          uint64_t entry, uint64_t *l2_offset,
                          struct q2s_error *err);

/* An L2 entry, and its subcluster bitmap (0 without extended L2 entries);
 * data_file: the image has an external data file, where offset 0 is a
 * cluster like any other.  -1 with EPROTO for what QEMU fails to read: a
 * host offset that is not cluster-aligned, a subcluster both zero and
 * data, subclusters allocated in an unallocated cluster, a compressed
 * cluster with a bitmap or in an image with an external data file. */
int qcow2_decode_l2_entry(const struct qcow2_header_info *info,
                          uint64_t entry, uint64_t bitmap, bool data_file,
                          struct qcow2_cluster_mapping *mapping,
                          struct q2s_error *err);

#endif
