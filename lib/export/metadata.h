/* The bytes of the metadata clusters: header, refcount table, refcount
 * blocks, L1 table and L2 tables.  Pure functions of the plan. */
#ifndef Q2S_METADATA_H
#define Q2S_METADATA_H

#include <stdbool.h>
#include <stdint.h>

struct q2s_plan;

/* How the header cluster holds the header, its extensions and the
 * backing file name. */
struct q2s_header_layout {
    /* Whether the "Feature name table" extension is written: it is only
     * informative, and is left out when a backing file name would not fit
     * beside it (512-byte clusters). */
    bool feature_table;
    uint64_t backing_name_offset;  /* 0 without a backing file */
    uint64_t bytes;                /* used, from the start of the cluster */
};

/* The layout with an external data file and a backing file of those
 * names (NULL for none; backing_format goes with backing_file): -1 when
 * they cannot fit a header cluster of cluster_size bytes. */
int q2s_header_layout(const char *data_file_name, const char *backing_file,
                      const char *backing_format, uint32_t cluster_size,
                      struct q2s_header_layout *layout);

/* Fills buf (cluster_size bytes) with host cluster number host_cluster,
 * which must lie before plan->data_offset: all the metadata. */
void q2s_metadata_cluster(const struct q2s_plan *plan, uint64_t host_cluster,
                          uint8_t *buf);

#endif
