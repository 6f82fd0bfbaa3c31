/* Pass 1: find the guest clusters that hold data, and with compression
 * compress them to learn their sizes. */
#ifndef Q2S_SCAN_H
#define Q2S_SCAN_H

#include "export/cache.h"
#include "export/plan.h"
#include "export/source.h"

/* Adds to *data_clusters (which holds only clusters before those to
 * come) every guest cluster that holds a non-zero byte, among those of
 * only (NULL: all of them), and keeps their bytes in *data_cache (unless
 * NULL) at their place in the data region, while they fit.  Holes that
 * the source reports are not read, and no cluster is read twice.  Reports
 * progress as bytes of the input done. */
int q2s_scan(struct q2s_source *source, const struct q2s_geometry *geometry,
             const struct q2s_runs *only, struct q2s_runs *data_clusters,
             struct q2s_cache *data_cache, q2s_progress_callback *progress,
             void *progress_opaque, struct q2s_error *err);

/* One pass: adds to *data_clusters (empty) every guest cluster, among
 * those of only (NULL: all of them), that an extent the source reports as
 * data touches, reading nothing.  Reports progress once, all done. */
int q2s_scan_allocation(struct q2s_source *source,
                        const struct q2s_geometry *geometry,
                        const struct q2s_runs *only,
                        struct q2s_runs *data_clusters,
                        q2s_progress_callback *progress,
                        void *progress_opaque, struct q2s_error *err);

/* The same with the compression of options, on options->threads threads:
 * each cluster that holds data goes to clusters->compressed (with its size
 * in clusters->packing) if it compresses, else to clusters->raw.  The
 * compressed bytes go into *cache, and those stored as they are into
 * *data_cache (unless NULL), while they fit. */
int q2s_scan_compressed(struct q2s_source *source,
                        const struct q2s_geometry *geometry,
                        const struct q2s_options *options,
                        const struct q2s_runs *only,
                        struct q2s_clusters *clusters, struct q2s_cache *cache,
                        struct q2s_cache *data_cache,
                        q2s_progress_callback *progress, void *progress_opaque,
                        struct q2s_error *err);

#endif
