/* Pass 1 as a whole: the scan of the input, then the plan. */
#ifndef Q2S_BUILD_H
#define Q2S_BUILD_H

#include "export/options.h"
#include "export/plan.h"
#include "export/source.h"

/* Checks the options against the input, finds its allocated clusters
 * (unless data_file_raw makes every cluster allocated): by a scan, from
 * the XAPI fork's input map, or against base (NULL but for a delta); then
 * computes the plan. */
int q2s_build_plan(struct q2s_source *source, struct q2s_source *base,
                   const struct q2s_options *options,
                   q2s_progress_callback *progress, void *progress_opaque,
                   struct q2s_plan **plan, struct q2s_error *err);

#endif
