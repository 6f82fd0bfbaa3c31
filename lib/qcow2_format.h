/* Constants of the qcow2 format (QEMU's docs/interop/qcow2.rst) and
 * big-endian stores. */
#ifndef Q2S_QCOW2_FORMAT_H
#define Q2S_QCOW2_FORMAT_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

#define QCOW2_MAGIC 0x514649fbu  /* "QFI\xfb" */
#define QCOW2_VERSION 3
/* Header length in QEMU 9.0: the fields through compression_type, padded
 * to a multiple of 8 ("Header", bytes 0 to 111). */
#define QCOW2_V3_HEADER_LENGTH 112

/* "Header extensions": a 4-byte type, a 4-byte length, the data padded to
 * a multiple of 8. */
#define QCOW2_EXTENSION_HEADER_BYTES 8
#define QCOW2_EXT_FEATURE_NAME_TABLE 0x6803f857u
#define QCOW2_EXT_DATA_FILE_NAME 0x44415441u
#define QCOW2_FEATURE_NAME_ENTRY_BYTES 48
#define QCOW2_FEATURE_NAME_ENTRIES 8
#define QCOW2_FEATURE_NAME_TABLE_BYTES \
    (QCOW2_FEATURE_NAME_ENTRIES * QCOW2_FEATURE_NAME_ENTRY_BYTES)

#define QCOW2_INCOMPAT_DATA_FILE_BIT 2
#define QCOW2_INCOMPAT_COMPRESSION_BIT 3
#define QCOW2_COMPRESSION_TYPE_ZSTD 1
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW_BIT 1

/* "Cluster mapping": bit 63 of L1 and L2 entries, refcount exactly one. */
#define QCOW2_OFLAG_COPIED (UINT64_C(1) << 63)
/* Bit 62 of L2 entries: a "Compressed Clusters Descriptor" follows. */
#define QCOW2_OFLAG_COMPRESSED (UINT64_C(1) << 62)
#define QCOW2_SECTOR_BITS 9

static inline void q2s_put_be16(uint8_t *p, uint16_t v)
{
    v = htobe16(v);
    memcpy(p, &v, sizeof v);
}

static inline void q2s_put_be32(uint8_t *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, sizeof v);
}

static inline void q2s_put_be64(uint8_t *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, sizeof v);
}

#endif
