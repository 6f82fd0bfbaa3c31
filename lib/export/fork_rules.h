/* The XAPI fork's rules on which clusters its maps allocate
 * (qcow2-to-stdout-xapi.py, write_qcow2_content() and class Interval),
 * as pure arithmetic: no I/O, so that the same maps always give the same
 * clusters.  The man page states them for users. */
#ifndef Q2S_FORK_RULES_H
#define Q2S_FORK_RULES_H

#include <stdint.h>

#include "error.h"
#include "export/map.h"
#include "export/runs.h"

/* The fork takes an extent [start, start + length) for clusters
 * int(start / cs) to int((start + length) / cs) - 1, which leaves out the
 * cluster an extent ends in partway (the last of a disk whose size is not
 * a multiple of the cluster size).  Where that loses data, the fork is
 * wrong; where it does not, its bytes are right.  So such clusters go to
 * *to_check, for the caller to allocate only those whose bytes (up to the
 * virtual size) differ from what the image would show without them:
 * zeros, or the base's bytes for a delta. */

/* --json-header-map without --diff: the clusters of map's fork intervals
 * below guest_clusters into *allocated, the partial ones into *to_check
 * (both empty). */
int q2s_fork_mapped_clusters(const struct q2s_map *map, uint32_t cluster_bits,
                             uint64_t guest_clusters,
                             struct q2s_runs *allocated,
                             struct q2s_runs *to_check,
                             struct q2s_error *err);

/* --diff with maps of both: the fork's walk of the input's clusters, in
 * its map's order, through the set of the base's.  A cluster at or past
 * base_clusters (the base's virtual size in clusters), or not in the set,
 * is allocated; one in the set is taken out of it and compared with the
 * base's (*to_compare), except where the fork's Interval splits a run:
 * the cluster it splits at stays in the set (compared too, and counted
 * twice if it differs, which makes the fork's refcounts wrong).  What is
 * left of the set is allocated, to hide the base's data.  The partial clusters of both maps
 * go to *to_check.  All three below guest_clusters, all empty at first.
 * EPROTO for base extents that overlap. */
int q2s_fork_walk(const struct q2s_map *input_map,
                  const struct q2s_map *base_map, uint32_t cluster_bits,
                  uint64_t guest_clusters, uint64_t base_clusters,
                  struct q2s_runs *allocated, struct q2s_runs *to_compare,
                  struct q2s_runs *to_check, struct q2s_error *err);

#endif
