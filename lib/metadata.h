/* The bytes of the metadata clusters: header, refcount table, refcount
 * blocks, L1 table and L2 tables.  Pure functions of the plan. */
#ifndef Q2S_METADATA_H
#define Q2S_METADATA_H

#include <stdint.h>

#include "plan.h"

/* Bytes of the header cluster that the header and its extensions use,
 * with an external data file of that name (NULL for none). */
uint64_t q2s_header_bytes(const char *data_file_name);

/* Fills buf (cluster_size bytes) with host cluster number host_cluster,
 * which must lie before plan->data_offset: all the metadata. */
void q2s_metadata_cluster(const struct q2s_plan *plan, uint64_t host_cluster,
                          uint8_t *buf);

#endif
