/* The plan: where every piece of the output image goes.
 *
 * Pure arithmetic, no I/O.  The layout is the reference script's:
 *
 *   header cluster | refcount table | refcount blocks | L1 table |
 *   L2 tables | data clusters
 *
 * then, with compression, the compressed region: compressed clusters
 * packed back to back (packing.h), padded to a 512-byte sector.
 *
 * Given the options, the input size and the set of guest clusters that hold
 * data (with the compressed size of those to be stored compressed), every
 * offset of the output follows.
 */
#ifndef Q2S_PLAN_H
#define Q2S_PLAN_H

#include "export/cache.h"
#include "export/metadata.h"
#include "export/options.h"
#include "export/packing.h"
#include "export/runs.h"
#include "format/qcow2_format.h"
#include "qcow2-to-stdout.h"

/* The plan checks the limits QEMU enforces when it opens an image
 * (format/qcow2_format.h), so that no image QEMU refuses is ever
 * written. */

/* What follows from the options and the input size alone. */
struct q2s_geometry {
    uint32_t cluster_size;
    uint32_t cluster_bits;
    uint32_t refcount_bits;
    uint32_t refcount_order;
    uint64_t input_size;
    uint64_t virtual_size;      /* input size rounded up to 512 bytes */
    uint64_t guest_clusters;    /* clusters of the virtual disk */
    uint32_t l2_entries_per_table;
    uint64_t l1_entries;
    uint64_t l1_clusters;
};

/* What pass 1 found: the guest clusters that hold data. */
struct q2s_clusters {
    struct q2s_runs raw;         /* stored as they are */
    struct q2s_runs compressed;  /* stored compressed */
    struct q2s_packing packing;  /* the compressed ones, in the same order */
    /* An overlay's clusters that read as zeros where its backing file's
     * do not: L2 entries with the zero flag, no data. */
    struct q2s_runs zero;
};

void q2s_clusters_init(struct q2s_clusters *clusters,
                       const struct q2s_geometry *geometry);
void q2s_clusters_free(struct q2s_clusters *clusters);

struct q2s_plan {
    struct q2s_geometry geometry;
    char *data_file_name;       /* NULL without an external data file */
    bool data_file_raw;
    char *backing_file;         /* NULL for a self-contained image */
    char *backing_format;       /* with backing_file */
    struct q2s_header_layout header_layout;
    enum q2s_compression compression;
    int compression_level;
    uint32_t threads;

    struct q2s_runs data_clusters;        /* guest clusters stored as is */
    struct q2s_runs compressed_clusters;  /* guest clusters compressed */
    struct q2s_runs zero_clusters;        /* zero flag, nothing stored */
    struct q2s_packing packing;           /* where the compressed ones go */
    struct q2s_cache cache;               /* what pass 1 kept of them */
    /* What pass 1 kept of the data clusters stored as they are, by their
     * place in the data region: for inputs that cost much to read again
     * (NBD servers), never with compression. */
    struct q2s_cache data_cache;
    struct q2s_runs l2_tables;      /* L1 indices whose L2 table exists */

    uint64_t refcount_table_clusters;
    uint64_t refcount_blocks;
    uint64_t total_clusters;        /* every host cluster of the image */

    uint64_t refcount_table_offset;
    uint64_t refcount_blocks_offset;
    uint64_t l1_offset;
    uint64_t l2_offset;
    uint64_t data_offset;
    uint64_t compressed_offset;     /* the compressed region */
    uint64_t compressed_host_clusters;
    uint64_t image_size;
};

/* Checks the options and the input size (cluster size, refcount width, the
 * header space the data file name needs, the L1 size limit): what can be
 * checked before the input is read. */
int q2s_geometry_init(struct q2s_geometry *geometry,
                      const struct q2s_options *options, uint64_t input_size,
                      struct q2s_error *err);

/* Refcount blocks and refcount table clusters for an image whose other
 * clusters number other_clusters: a fixed point, since the refcount
 * structures need refcounts of their own.  Computed as the reference does,
 * so that the same input gives the same bytes. */
void q2s_refcount_clusters(uint64_t other_clusters, uint32_t cluster_size,
                           uint32_t refcount_bits, uint64_t *refcount_blocks,
                           uint64_t *refcount_table_clusters);

/* Computes the plan, and refuses one that QEMU would not open (the
 * refcount table size, host offsets past 2^56, with an external data file
 * guest offsets past 2^56, compressed cluster offsets past what their
 * descriptors hold).  Takes ownership of *clusters (left empty), whose
 * members must lie below geometry->guest_clusters; with data_file_raw, it
 * must be empty, as every cluster is allocated.  The cache starts empty. */
int q2s_plan_init(struct q2s_plan *plan, const struct q2s_geometry *geometry,
                  const struct q2s_options *options,
                  struct q2s_clusters *clusters, struct q2s_error *err);
void q2s_plan_fini(struct q2s_plan *plan);

#endif
