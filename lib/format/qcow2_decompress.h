/* Inflating a compressed cluster as QEMU does (block/qcow2-threads.c,
 * qcow2_zlib_decompress() and qcow2_zstd_decompress()): the descriptor
 * gives the sectors the data touches, not its exact length, so the data
 * may be followed by other bytes; it must fill the cluster exactly.  The
 * output is one cluster whatever the input says: no input can make it
 * write or allocate more. */
#ifndef Q2S_FORMAT_QCOW2_DECOMPRESS_H
#define Q2S_FORMAT_QCOW2_DECOMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* One per thread: it keeps the decompressor's state between clusters. */
struct qcow2_decompressor;

/* For compression_type (QCOW2_COMPRESSION_TYPE_ZLIB or _ZSTD) and clusters
 * of cluster_size bytes.  -1 with EINVAL for another type, ENOMEM. */
int qcow2_decompressor_new(uint8_t compression_type, uint32_t cluster_size,
                           struct qcow2_decompressor **result,
                           struct q2s_error *err);
void qcow2_decompressor_free(struct qcow2_decompressor *decompressor);

/* Inflates at most length bytes of in into the cluster_size bytes of out.
 * -1 with EPROTO when the data is corrupt or does not fill the cluster
 * (QEMU's EIO), ENOMEM. */
int qcow2_decompress_cluster(struct qcow2_decompressor *decompressor,
                             const uint8_t *in, size_t length, uint8_t *out,
                             struct q2s_error *err);

#endif
