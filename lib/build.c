/* Pass 1 as a whole: the scan of the input, then the plan. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "build.h"
#include "fork_scan.h"
#include "error.h"
#include "plan.h"
#include "scan.h"
#include "source.h"

/* Compressed clusters must share host clusters to save anything, which
 * 1-bit refcounts cannot count: then every cluster is stored as it is. */
static bool compresses(const struct q2s_options *options)
{
    return options->compression != Q2S_COMPRESSION_NONE &&
           options->refcount_bits > 1;
}

/* Which clusters the input allocates: with a base, where the two differ;
 * with the XAPI fork's input map, the clusters it touches; otherwise
 * those that hold data. */
static int find_clusters(struct q2s_source *source, struct q2s_source *base,
                         const struct q2s_options *options,
                         const struct q2s_geometry *geometry,
                         struct q2s_clusters *clusters,
                         struct q2s_cache *cache,
                         q2s_progress_callback *progress,
                         void *progress_opaque, struct q2s_error *err)
{
    /* With data_file_raw every cluster is allocated: nothing to look for. */
    if (options->data_file_raw)
        return 0;
    if (base)
        return q2s_scan_delta(source, base, geometry, options, &clusters->raw,
                              progress, progress_opaque, err);
    if (options->input_map)
        return q2s_scan_fork_map(source, geometry, options, &clusters->raw,
                                 err);
    if (compresses(options))
        return q2s_scan_compressed(source, geometry, options, clusters, cache,
                                   progress, progress_opaque, err);
    return q2s_scan(source, geometry, &clusters->raw, progress,
                    progress_opaque, err);
}

int q2s_build_plan(struct q2s_source *source, struct q2s_source *base,
                   const struct q2s_options *options,
                   q2s_progress_callback *progress, void *progress_opaque,
                   struct q2s_plan **result, struct q2s_error *err)
{
    struct q2s_geometry geometry;
    struct q2s_clusters clusters;
    struct q2s_cache cache;
    struct q2s_plan *plan;
    int ret;

    if (q2s_options_check_input(options, source->raw_file, err) < 0 ||
        q2s_geometry_init(&geometry, options, source->size, err) < 0 ||
        (options->input_map &&
         q2s_fork_check_size(source, options->input_virtual_size, "input",
                             err) < 0))
        return -1;
    /* A delta stores as data the clusters of zeros that hide the base's,
     * which the compressed scan would leave out. */
    if (base && options->compression != Q2S_COMPRESSION_NONE)
        return q2s_error_set(err, EINVAL, "compression cannot be combined "
                             "with a delta (--diff) yet");
    q2s_clusters_init(&clusters, &geometry);
    q2s_cache_init(&cache, options->cache_bytes);
    ret = find_clusters(source, base, options, &geometry, &clusters, &cache,
                        progress, progress_opaque, err);
    plan = ret < 0 ? NULL : malloc(sizeof *plan);
    if (!plan) {
        if (ret == 0)
            q2s_error_set_errno(err, ENOMEM, "cannot allocate the plan");
        q2s_clusters_free(&clusters);
        q2s_cache_free(&cache);
        return -1;
    }
    if (q2s_plan_init(plan, &geometry, options, &clusters, err) < 0) {
        q2s_cache_free(&cache);
        free(plan);
        return -1;
    }
    plan->cache = cache;
    *result = plan;
    return 0;
}

void q2s_plan_free(struct q2s_plan *plan)
{
    if (plan) {
        q2s_plan_fini(plan);
        free(plan);
    }
}
