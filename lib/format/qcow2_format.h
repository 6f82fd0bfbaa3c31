/* The qcow2 on-disk format (QEMU's docs/interop/qcow2.rst): the header and
 * header extensions as structs of big-endian fields, named constants, and
 * big-endian stores. */
#ifndef Q2S_QCOW2_FORMAT_H
#define Q2S_QCOW2_FORMAT_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define QCOW2_MAGIC 0x514649fbu  /* "QFI\xfb" */
#define QCOW2_VERSION 3
/* Header length in QEMU 9.0: the fields through compression_type, padded
 * to a multiple of 8 ("Header", bytes 0 to 111). */
#define QCOW2_V3_HEADER_LENGTH 112

/* "Header": every field big-endian; fill with htobe32/htobe64 and copy the
 * whole struct out.  The fields a version 3 image has through
 * compression_type, in the spec's order and at its byte offsets. */
struct qcow2_header {
    uint32_t magic;                    /* 0 */
    uint32_t version;                  /* 4 */
    uint64_t backing_file_offset;      /* 8 */
    uint32_t backing_file_size;        /* 16 */
    uint32_t cluster_bits;             /* 20 */
    uint64_t size;                     /* 24: virtual disk size in bytes */
    uint32_t crypt_method;             /* 32 */
    uint32_t l1_size;                  /* 36: entries, not bytes */
    uint64_t l1_table_offset;          /* 40 */
    uint64_t refcount_table_offset;    /* 48 */
    uint32_t refcount_table_clusters;  /* 56 */
    uint32_t nb_snapshots;             /* 60 */
    uint64_t snapshots_offset;         /* 64 */
    uint64_t incompatible_features;    /* 72 */
    uint64_t compatible_features;      /* 80 */
    uint64_t autoclear_features;       /* 88 */
    uint32_t refcount_order;           /* 96 */
    uint32_t header_length;            /* 100 */
    uint8_t compression_type;          /* 104 */
    uint8_t padding[7];                /* 105: up to a multiple of 8 */
} __attribute__((packed));

_Static_assert(sizeof(struct qcow2_header) == QCOW2_V3_HEADER_LENGTH,
               "qcow2 header: bytes 0 to 111");
_Static_assert(offsetof(struct qcow2_header, cluster_bits) == 20,
               "qcow2 header: cluster_bits at byte 20");
_Static_assert(offsetof(struct qcow2_header, incompatible_features) == 72,
               "qcow2 header: incompatible_features at byte 72");
_Static_assert(offsetof(struct qcow2_header, header_length) == 100,
               "qcow2 header: header_length at byte 100");
_Static_assert(offsetof(struct qcow2_header, compression_type) == 104,
               "qcow2 header: compression_type at byte 104");

/* Bits of incompatible_features, compatible_features and
 * autoclear_features ("Header", bytes 72 to 95). */
#define QCOW2_INCOMPAT_DIRTY_BIT 0
#define QCOW2_INCOMPAT_CORRUPT_BIT 1
#define QCOW2_INCOMPAT_DATA_FILE_BIT 2
#define QCOW2_INCOMPAT_COMPRESSION_BIT 3
#define QCOW2_INCOMPAT_EXTL2_BIT 4
#define QCOW2_COMPAT_LAZY_REFCOUNTS_BIT 0
#define QCOW2_AUTOCLEAR_BITMAPS_BIT 0
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW_BIT 1

/* compression_type (byte 104): 0 is zlib. */
#define QCOW2_COMPRESSION_TYPE_ZLIB 0
#define QCOW2_COMPRESSION_TYPE_ZSTD 1

/* "Header extensions": a type, a length, then the data padded to a
 * multiple of 8.  A type of 0 ends them. */
struct qcow2_extension_header {
    uint32_t type;    /* big-endian */
    uint32_t length;  /* big-endian: bytes of data, without the padding */
} __attribute__((packed));

#define QCOW2_EXTENSION_HEADER_BYTES 8
#define QCOW2_EXTENSION_ALIGNMENT 8
#define QCOW2_EXT_FEATURE_NAME_TABLE 0x6803f857u
#define QCOW2_EXT_DATA_FILE_NAME 0x44415441u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
_Static_assert(sizeof(struct qcow2_extension_header) ==
                   QCOW2_EXTENSION_HEADER_BYTES,
               "qcow2 header extension: type and length");

/* backing_file_size: "Must not be longer than 1023 bytes" (qcow2.rst,
 * "Header"); qcow2_do_open also wants the name within the header
 * cluster. */
#define QCOW2_MAX_BACKING_FILE_NAME 1023
/* QEMU keeps the backing format in char[16] and refuses a longer
 * "Backing file format name" extension (qcow2_read_extensions). */
#define QCOW2_MAX_BACKING_FORMAT 15

/* The limits QEMU enforces when it opens an image (qcow2_do_open() in
 * block/qcow2.c), which an image written must keep and an image read is
 * held to.
 *
 * QCOW_MAX_L1_SIZE in QEMU's block/qcow2.h: qcow2_do_open refuses a larger
 * L1 table ("Active L1 table too large", through qcow2_validate_table). */
#define Q2S_MAX_L1_BYTES (32u * 1024 * 1024)
/* QCOW_MAX_REFTABLE_SIZE in block/qcow2.h: qcow2_do_open refuses a larger
 * refcount table ("Reference count table too large"). */
#define Q2S_MAX_REFTABLE_BYTES (8u * 1024 * 1024)
/* L1 entries, standard L2 entries and refcount table entries hold bits 9-55
 * (9-63 for the refcount table) of a host offset (qcow2.rst, "Cluster
 * mapping"; L1E_OFFSET_MASK, L2E_OFFSET_MASK and QCOW_MAX_CLUSTER_OFFSET,
 * 2^56 - 1, in block/qcow2.h): every cluster they point to must start
 * below 2^56, 64 PiB.  With an external data file, L2 entries point into
 * that file, at the guest offset. */
#define Q2S_MAX_OFFSET_END (UINT64_C(1) << 56)

/* BDRV_MAX_LENGTH in QEMU's include/block/block_int-common.h: its block
 * layer reads nothing that ends past INT64_MAX rounded down to 1 GiB. */
#define QCOW2_MAX_READ_END ((uint64_t)INT64_MAX & ~((UINT64_C(1) << 30) - 1))
/* QCOW_MAX_SNAPSHOTS, and the fixed part of a snapshot table entry
 * (QCowSnapshotHeader), which qcow2_validate_table() counts. */
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_SNAPSHOT_HEADER_BYTES 40
/* The incompatible features QEMU knows (QCOW2_INCOMPAT_MASK): an image with
 * any other bit set is refused. */
#define QCOW2_INCOMPAT_KNOWN_MASK \
    ((UINT64_C(1) << (QCOW2_INCOMPAT_EXTL2_BIT + 1)) - 1)
/* crypt_method: none, AES (refused by QEMU's system emulators), LUKS. */
#define QCOW2_CRYPT_NONE 0
#define QCOW2_CRYPT_LUKS 2
/* Extended L2 entries split a cluster into 32 subclusters, each at least
 * 512 bytes ("Extended L2 Entries"): clusters of 16 KiB or more. */
#define QCOW2_EXTL2_SUBCLUSTERS 32
#define QCOW2_EXTL2_MIN_CLUSTER_BITS 14

/* "Feature name table": one entry per named feature bit. */
enum qcow2_feature_type {
    QCOW2_FEATURE_INCOMPATIBLE = 0,
    QCOW2_FEATURE_COMPATIBLE = 1,
    QCOW2_FEATURE_AUTOCLEAR = 2,
};

struct qcow2_feature_name {
    uint8_t type;   /* an enum qcow2_feature_type */
    uint8_t bit;    /* 0 to 63 */
    char name[46];  /* padded with zeros, not necessarily terminated */
} __attribute__((packed));

#define QCOW2_FEATURE_NAME_ENTRY_BYTES 48
#define QCOW2_FEATURE_NAME_ENTRIES 8
#define QCOW2_FEATURE_NAME_TABLE_BYTES \
    (QCOW2_FEATURE_NAME_ENTRIES * QCOW2_FEATURE_NAME_ENTRY_BYTES)
_Static_assert(sizeof(struct qcow2_feature_name) ==
                   QCOW2_FEATURE_NAME_ENTRY_BYTES,
               "qcow2 feature name table entry: 48 bytes");

/* "Cluster mapping": bit 63 of L1 and L2 entries, refcount exactly one. */
#define QCOW2_OFLAG_COPIED (UINT64_C(1) << 63)
/* Bit 0 of a standard L2 entry: the cluster reads as all zeros, and
 * nothing is read from the backing file for it ("Standard Cluster
 * Descriptor", version 3 only).  With host offset 0, nothing is allocated. */
#define QCOW2_OFLAG_ZERO UINT64_C(1)
/* Bit 62 of L2 entries: a "Compressed Clusters Descriptor" follows. */
#define QCOW2_OFLAG_COMPRESSED (UINT64_C(1) << 62)

/* Compressed cluster descriptors count 512-byte sectors ("Compressed
 * Clusters Descriptor"), and QEMU keeps the virtual size a whole number
 * of them (bdrv_refresh_total_sectors), as the reference script does. */
#define QCOW2_SECTOR_BITS 9
#define QCOW2_SECTOR_SIZE (1u << QCOW2_SECTOR_BITS)

static inline uint64_t qcow2_round_up_to_sector(uint64_t bytes)
{
    return (bytes + QCOW2_SECTOR_SIZE - 1) & ~(uint64_t)(QCOW2_SECTOR_SIZE - 1);
}

/* "Compressed Clusters Descriptor": bits 0 to x - 1 hold the host offset,
 * bits x to 61 the number of 512-byte sectors after the first that the
 * compressed data touches, with x = 62 - (cluster_bits - 8). */
static inline uint32_t qcow2_compressed_offset_bits(uint32_t cluster_bits)
{
    return 62 - (cluster_bits - 8);
}

/* The L2 entry of bytes bytes of compressed data at host offset host. */
static inline uint64_t qcow2_compressed_descriptor(uint64_t host,
                                                   uint32_t bytes,
                                                   uint32_t cluster_bits)
{
    uint64_t more_sectors = ((host + bytes - 1) >> QCOW2_SECTOR_BITS) -
                            (host >> QCOW2_SECTOR_BITS);

    return QCOW2_OFLAG_COMPRESSED |
           more_sectors << qcow2_compressed_offset_bits(cluster_bits) | host;
}

static inline void q2s_put_be64(uint8_t *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, sizeof v);
}

/* Big-endian loads, for fields read from bytes of any alignment. */
static inline uint32_t q2s_get_be32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof v);
    return be32toh(v);
}

static inline uint64_t q2s_get_be64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof v);
    return be64toh(v);
}

#endif
