/* Compressing one cluster the way QEMU reads it back ("Compressed Cluster
 * Layout" in qcow2.rst): a raw deflate stream that inflates with a 4 KiB
 * window for zlib, one zstd frame for zstd. */
#ifndef Q2S_FORMAT_QCOW2_COMPRESS_H
#define Q2S_FORMAT_QCOW2_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "qcow2-to-stdout.h"

/* One per thread: it keeps the compressor's state between clusters. */
struct q2s_compressor;

int q2s_compressor_new(enum q2s_compression type, int level,
                       uint32_t cluster_size, struct q2s_compressor **result,
                       struct q2s_error *err);
void q2s_compressor_free(struct q2s_compressor *compressor);

/* Compresses the cluster at in into out (cluster_size bytes).  Returns the
 * compressed size, which is below cluster_size, or 0 if the cluster does
 * not compress to less than cluster_size bytes; -1 on error.  The same
 * input and settings always give the same bytes. */
int q2s_compress_cluster(struct q2s_compressor *compressor, const uint8_t *in,
                         uint8_t *out, struct q2s_error *err);

/* The level to use: level itself, or the type's default for
 * Q2S_COMPRESSION_LEVEL_DEFAULT. */
int q2s_compression_level(enum q2s_compression type, int level);

/* The levels that a type accepts, and its default. */
void q2s_compression_levels(enum q2s_compression type, int *min, int *max,
                            int *default_level);

#endif
