/* Pass 1 with the rules of XAPI's fork of the script: allocation from the
 * input's qemu-img map, and deltas against a base (--diff), whose clusters
 * are compared side by side in large reads. */
#ifndef Q2S_FORK_SCAN_H
#define Q2S_FORK_SCAN_H

#include "export/plan.h"
#include "export/source.h"

/* The source must hold the virtual size its info gives: EINVAL if not
 * (the info of another disk).  what names it in the message. */
int q2s_fork_check_size(const struct q2s_source *source,
                        uint64_t virtual_size, const char *what,
                        struct q2s_error *err);

/* With options->input_map and no base: the clusters of
 * q2s_fork_mapped_clusters() into *allocated (empty), unread; of the
 * partial clusters it leaves to check, those that are not all zeros. */
int q2s_scan_fork_map(struct q2s_source *input,
                      const struct q2s_geometry *geometry,
                      const struct q2s_options *options,
                      struct q2s_runs *allocated, struct q2s_error *err);

/* A delta: into *allocated (empty), without options->input_map every
 * cluster of the input that differs from the base's (zeros past the
 * base's end); with it, the clusters of q2s_fork_walk(), those it
 * compares only where they differ.  As in the fork, the base's last
 * cluster, when the base ends partway into it, counts as different.
 * Holes that both sources report are not read. */
int q2s_scan_delta(struct q2s_source *input, struct q2s_source *base,
                   const struct q2s_geometry *geometry,
                   const struct q2s_options *options,
                   struct q2s_runs *allocated,
                   q2s_progress_callback *progress, void *progress_opaque,
                   struct q2s_error *err);

/* For an overlay: into *changed (empty), every cluster of the input whose
 * bytes, up to the virtual size, differ from the base's (zeros past the
 * base's end), exactly.  Holes that both sources report are not read. */
int q2s_scan_changed(struct q2s_source *input, struct q2s_source *base,
                     const struct q2s_geometry *geometry,
                     struct q2s_runs *changed,
                     q2s_progress_callback *progress, void *progress_opaque,
                     struct q2s_error *err);

#endif
