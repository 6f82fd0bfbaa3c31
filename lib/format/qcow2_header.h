/* Reading a qcow2 header and its extensions (docs/interop/qcow2.rst,
 * "Header" and "Header extensions") from untrusted bytes, as QEMU's
 * qcow2_do_open() and qcow2_read_extensions() read them before opening
 * any file the image names.  Pure: bytes in, fields out, no I/O. */
#ifndef Q2S_FORMAT_QCOW2_HEADER_H
#define Q2S_FORMAT_QCOW2_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "format/qcow2_format.h"

#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
/* The most of an image that the header, its extensions and the backing
 * file name can occupy: one cluster of the largest size. */
#define QCOW2_HEADER_MAX_BYTES (UINT32_C(1) << QCOW2_MAX_CLUSTER_BITS)
#define QCOW2_V2_HEADER_LENGTH 72
#define QCOW2_V3_MIN_HEADER_LENGTH 104

/* What the header says, in host byte order.  Fields a version 2 header
 * lacks read as QEMU gives them (refcount_order 4, header_length 72, the
 * feature bits and compression_type 0). */
struct qcow2_header_info {
    uint32_t version;                  /* 2 or 3 */
    uint32_t cluster_bits;             /* QCOW2_MIN_ to QCOW2_MAX_CLUSTER_BITS */
    uint32_t cluster_size;
    uint32_t header_length;            /* at most cluster_size */
    uint64_t virtual_size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint8_t compression_type;          /* 0 where the header has none */
    /* Where the backing file name lies: offset 0 for none.  The offset is
     * at most cluster_size; the length is as recorded, unchecked until
     * qcow2_header_check_backing_name(). */
    uint64_t backing_name_offset;
    uint32_t backing_name_length;
    /* The "Backing file format name" extension, "" without one. */
    char backing_format[QCOW2_MAX_BACKING_FORMAT + 1];
    /* The last "External data file name" extension, if any: its bytes
     * lie in the header cluster, past header_length. */
    bool data_file_named;
    uint64_t data_file_name_offset;
    uint32_t data_file_name_length;
};

/* Reads the header of the image whose first length bytes are image (the
 * first cluster, or the whole image if it is shorter; what lies past
 * length reads as zeros, as QEMU's bdrv_pread() reads past the end of a
 * file).  0, or -1 with EPROTO and a message for what QEMU refuses before
 * it opens a file the image names: not qcow2 (the message then starts
 * "not a qcow2 image"), a version, cluster size or header length QEMU
 * does not take, a backing file name offset past the first cluster, an
 * extension that overflows its area, a backing format of 16 bytes or
 * more. */
int qcow2_header_parse(const uint8_t *image, size_t length,
                       struct qcow2_header_info *info, struct q2s_error *err);

/* QEMU's check of the backing file name, which it makes after opening the
 * data file: at most QCOW2_MAX_BACKING_FILE_NAME bytes, inside the first
 * cluster.  0 (also without a backing file), or -1 with ENAMETOOLONG. */
int qcow2_header_check_backing_name(const struct qcow2_header_info *info,
                                    struct q2s_error *err);

/* The rest of what qcow2_do_open() refuses, in its order, for a reader of
 * the whole image: the compression type, incompatible features QEMU does
 * not know, the refcount width, an encryption method QEMU does not know,
 * extended L2 entries in clusters under 16 KiB, the refcount, snapshot
 * and L1 tables (their size within QEMU's limits, a cluster-aligned
 * offset, an end within 2^63), and an L1 table too small for the virtual
 * size.  0, or -1 with EPROTO (malformed), ENOTSUP (what QEMU does not
 * know) or EFBIG (past QEMU's limits) and a message. */
int qcow2_header_check_open(const struct qcow2_header_info *info,
                            struct q2s_error *err);

/* Whether L2 entries are extended ones, 16 bytes with a subcluster
 * bitmap ("Extended L2 Entries", incompatible feature bit 4). */
bool qcow2_header_has_extended_l2(const struct qcow2_header_info *info);

/* The L1 entries an image of virtual_size bytes needs (size_to_l1() in
 * QEMU): one per L2 table of guest clusters. */
uint64_t qcow2_l1_entries_needed(const struct qcow2_header_info *info);

/* Copies length bytes at offset of image (zeros past image_length) into
 * name, which holds length + 1 bytes, and ends it with a NUL: a name is a
 * C string to QEMU, ending at its first NUL. */
void qcow2_header_copy_name(const uint8_t *image, size_t image_length,
                            uint64_t offset, size_t length, char *name);

#endif
