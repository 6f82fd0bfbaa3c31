/* The library's entry points that tie the passes together. */
#include <errno.h>
#include <stdlib.h>

#include "error.h"
#include "plan.h"
#include "scan.h"
#include "source.h"

int q2s_plan_build(struct q2s_source *source,
                   const struct q2s_options *options,
                   q2s_progress_fn *progress, void *progress_opaque,
                   struct q2s_plan **result, struct q2s_error *err)
{
    struct q2s_geometry geometry;
    struct q2s_runs data_clusters;
    struct q2s_plan *plan;

    if (q2s_geometry_init(&geometry, options, source->size, err) < 0)
        return -1;
    q2s_runs_init(&data_clusters);
    /* With data_file_raw every cluster is allocated: nothing to look for. */
    if (!options->data_file_raw &&
        q2s_scan(source, &geometry, &data_clusters, progress, progress_opaque,
                 err) < 0) {
        q2s_runs_free(&data_clusters);
        return -1;
    }
    plan = malloc(sizeof *plan);
    if (!plan) {
        q2s_runs_free(&data_clusters);
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate the plan");
    }
    if (q2s_plan_init(plan, &geometry, options, &data_clusters, err) < 0) {
        free(plan);
        return -1;
    }
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

void q2s_plan_summarize(const struct q2s_plan *plan,
                        struct q2s_plan_summary *summary)
{
    const struct q2s_geometry *g = &plan->geometry;

    *summary = (struct q2s_plan_summary){
        .image_size = plan->image_size,
        .virtual_size = g->virtual_size,
        .input_size = g->input_size,
        .cluster_size = g->cluster_size,
        .refcount_bits = g->refcount_bits,
        .data_clusters = q2s_runs_total(&plan->data_clusters),
        .l1_entries = g->l1_entries,
        .l2_tables = q2s_runs_total(&plan->l2_tables),
        .refcount_blocks = plan->refcount_blocks,
        .refcount_table_clusters = plan->refcount_table_clusters,
        .total_clusters = plan->total_clusters,
    };
}
