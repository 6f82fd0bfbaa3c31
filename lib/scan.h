/* Pass 1: find the guest clusters that hold data. */
#ifndef Q2S_SCAN_H
#define Q2S_SCAN_H

#include "plan.h"
#include "source.h"

/* Adds to *data_clusters every guest cluster that holds a non-zero byte.
 * Holes that the source reports are not read, and no cluster is read
 * twice.  Reports progress as bytes of the input done. */
int q2s_scan(struct q2s_source *source, const struct q2s_geometry *geometry,
             struct q2s_runs *data_clusters, q2s_progress_fn *progress,
             void *progress_opaque, struct q2s_error *err);

#endif
