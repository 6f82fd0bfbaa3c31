/* The bytes of the metadata clusters: header, refcount table, refcount
 * blocks, L1 table and L2 tables.  Pure functions of the plan. */
#ifndef Q2S_METADATA_H
#define Q2S_METADATA_H

#include <stdint.h>

#include "plan.h"

/* Host clusters before the data: all the metadata. */
uint64_t q2s_metadata_clusters(const struct q2s_plan *plan);

/* Fills buf (cluster_size bytes) with host cluster number host_cluster,
 * which must be below q2s_metadata_clusters(plan). */
void q2s_metadata_cluster(const struct q2s_plan *plan, uint64_t host_cluster,
                          uint8_t *buf);

#endif
