/* Pass 1 as a whole: the scan of the input, then the plan. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/tmpdir.h"
#include "error.h"
#include "export/build.h"
#include "export/cache.h"
#include "export/fork_scan.h"
#include "export/plan.h"
#include "export/scan.h"
#include "export/source.h"

/* Compressed clusters must share host clusters to save anything, which
 * 1-bit refcounts cannot count: then every cluster is stored as it is. */
static bool compresses(const struct q2s_options *options)
{
    return options->compression != Q2S_COMPRESSION_NONE &&
           options->refcount_bits > 1;
}

/* What pass 1 keeps of the data clusters stored as they are: nothing
 * from an input that is cheap to read again (a file, in the page cache);
 * from one where each byte read again costs a round trip to a server and
 * the server's storage once more, all of it, in memory while the budget
 * allows and then, unless the caller chose to read again, in a file. */
static bool keeps_data(const struct q2s_source *source,
                       const struct q2s_options *options)
{
    return source->reread_costly && !options->one_pass;
}

/* Runs of set that are not in taken (both sorted) into *rest (empty). */
static int subtract(const struct q2s_runs *set, const struct q2s_runs *taken,
                    struct q2s_runs *rest)
{
    size_t j = 0;

    for (size_t i = 0; i < set->count; i++) {
        uint64_t pos = set->runs[i].start;
        uint64_t end = pos + set->runs[i].length;

        while (j < taken->count &&
               taken->runs[j].start + taken->runs[j].length <= pos)
            j++;
        for (size_t k = j; pos < end && k < taken->count &&
                           taken->runs[k].start < end; k++) {
            const struct q2s_run *t = &taken->runs[k];

            if (t->start > pos && q2s_runs_add(rest, pos, t->start - pos) < 0)
                return -1;
            if (t->start + t->length > pos)
                pos = t->start + t->length;
        }
        if (pos < end && q2s_runs_add(rest, pos, end - pos) < 0)
            return -1;
    }
    return 0;
}

/* The members of a or b into *both (empty). */
static int union_of(const struct q2s_runs *a, const struct q2s_runs *b,
                    struct q2s_runs *both)
{
    struct q2s_runs_builder members;
    const struct q2s_runs *sets[] = { a, b };

    q2s_runs_builder_init(&members);
    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; i < sets[s]->count; i++) {
            if (q2s_runs_builder_add(&members, sets[s]->runs[i].start,
                                     sets[s]->runs[i].length) < 0) {
                q2s_runs_builder_free(&members);
                return -1;
            }
        }
    }
    return q2s_runs_builder_finish(&members, both);
}

/* An overlay's clusters (qcow2.rst, "Cluster mapping" with a backing
 * file): those that changed -- where the input differs from base, or,
 * without a base, where the input's dirty bitmap says -- are read again
 * and stored as data where they hold any, as zero clusters where they
 * do not.  The rest is left to the backing file, unread with a bitmap. */
static int find_overlay_clusters(struct q2s_source *source,
                                 struct q2s_source *base,
                                 const struct q2s_options *options,
                                 const struct q2s_geometry *geometry,
                                 struct q2s_clusters *clusters,
                                 struct q2s_cache *cache,
                                 struct q2s_cache *data_cache,
                                 q2s_progress_callback *progress,
                                 void *progress_opaque, struct q2s_error *err)
{
    struct q2s_runs changed, data;
    int ret;

    q2s_runs_init(&changed);
    q2s_runs_init(&data);
    ret = base ? q2s_scan_changed(source, base, geometry, &changed, progress,
                                  progress_opaque, err)
               : q2s_source_dirty_clusters(source, geometry->cluster_bits,
                                           geometry->guest_clusters, &changed,
                                           err);
    if (ret == 0)
        ret = compresses(options)
                  ? q2s_scan_compressed(source, geometry, options, &changed,
                                        clusters, cache, data_cache, progress,
                                        progress_opaque, err)
                  : q2s_scan(source, geometry, &changed, &clusters->raw,
                             data_cache, progress, progress_opaque, err);
    /* What changed to zeros: in neither set of data. */
    if (ret == 0 &&
        (union_of(&clusters->raw, &clusters->compressed, &data) < 0 ||
         subtract(&changed, &data, &clusters->zero) < 0))
        ret = q2s_error_set_errno(err, ENOMEM, "cannot record the clusters "
                                  "of the overlay");
    q2s_runs_free(&changed);
    q2s_runs_free(&data);
    return ret;
}

/* One pass (q2s_options_set_one_pass()): the clusters the source reports
 * as data, nothing read.  An increment's dirty clusters that it reports as
 * data are data, the rest of them zero clusters (qcow2.rst, "Cluster
 * mapping": the zero flag hides the backing file's). */
static int find_reported_clusters(struct q2s_source *source,
                                  const struct q2s_options *options,
                                  const struct q2s_geometry *geometry,
                                  struct q2s_clusters *clusters,
                                  q2s_progress_callback *progress,
                                  void *progress_opaque,
                                  struct q2s_error *err)
{
    struct q2s_runs changed;
    int ret;

    if (!options->backing_file)
        return q2s_scan_allocation(source, geometry, NULL, &clusters->raw,
                                   progress, progress_opaque, err);
    q2s_runs_init(&changed);
    ret = q2s_source_dirty_clusters(source, geometry->cluster_bits,
                                    geometry->guest_clusters, &changed, err);
    if (ret == 0)
        ret = q2s_scan_allocation(source, geometry, &changed, &clusters->raw,
                                  progress, progress_opaque, err);
    if (ret == 0 && subtract(&changed, &clusters->raw, &clusters->zero) < 0)
        ret = q2s_error_set_errno(err, ENOMEM, "cannot record the clusters "
                                  "of the overlay");
    q2s_runs_free(&changed);
    return ret;
}

/* What one pass cannot do with this input, said before anything is read
 * (compression: q2s_options_validate()). */
static int check_one_pass(const struct q2s_source *source,
                          const struct q2s_source *base,
                          const struct q2s_options *options,
                          struct q2s_error *err)
{
    if (base)
        return q2s_error_set(err, EINVAL, "one pass cannot write a delta: "
                             "finding what differs from the base reads "
                             "the data before the image is written");
    if (options->input_map)
        return q2s_error_set(err, EINVAL, "one pass cannot be combined "
                             "with the XAPI fork's input map, which "
                             "already reads the data once");
    if (source->spooled)
        return q2s_error_set(err, EINVAL, "one pass needs an input that "
                             "says where its data lies before it is read; "
                             "a pipe is read whole and kept first");
    return 0;
}

/* Which clusters the input allocates: with a base, where the two differ;
 * with the XAPI fork's input map, the clusters it touches; otherwise
 * those that hold data. */
static int find_clusters(struct q2s_source *source, struct q2s_source *base,
                         const struct q2s_options *options,
                         const struct q2s_geometry *geometry,
                         struct q2s_clusters *clusters,
                         struct q2s_cache *cache, struct q2s_cache *data_cache,
                         q2s_progress_callback *progress,
                         void *progress_opaque, struct q2s_error *err)
{
    /* With data_file_raw every cluster is allocated: nothing to look for. */
    if (options->data_file_raw)
        return 0;
    if (options->one_pass)
        return find_reported_clusters(source, options, geometry, clusters,
                                      progress, progress_opaque, err);
    if (options->backing_file)
        return find_overlay_clusters(source, base, options, geometry,
                                     clusters, cache, data_cache, progress,
                                     progress_opaque, err);
    if (base)
        return q2s_scan_delta(source, base, geometry, options, &clusters->raw,
                              progress, progress_opaque, err);
    if (options->input_map)
        return q2s_scan_fork_map(source, geometry, options, &clusters->raw,
                                 err);
    if (compresses(options))
        return q2s_scan_compressed(source, geometry, options, NULL, clusters,
                                   cache, data_cache, progress,
                                   progress_opaque, err);
    return q2s_scan(source, geometry, NULL, &clusters->raw, data_cache,
                    progress, progress_opaque, err);
}

int q2s_build_plan(struct q2s_source *source, struct q2s_source *base,
                   const struct q2s_options *options,
                   q2s_progress_callback *progress, void *progress_opaque,
                   struct q2s_plan **result, struct q2s_error *err)
{
    struct q2s_geometry geometry;
    struct q2s_clusters clusters;
    struct q2s_cache cache, data_cache;
    struct q2s_plan *plan;
    /* One memory budget for both caches. */
    uint64_t memory_left = options->cache_bytes;
    const char *spool_directory =
        options->reread ? NULL : q2s_temporary_directory();
    bool keep = keeps_data(source, options);
    int ret;

    if (q2s_options_check_input(options, source->raw_file, err) < 0 ||
        (options->one_pass &&
         check_one_pass(source, base, options, err) < 0) ||
        q2s_geometry_init(&geometry, options, source->size, err) < 0 ||
        (options->input_map &&
         q2s_fork_check_size(source, options->input_virtual_size, "input",
                             err) < 0))
        return -1;
    /* The backing file's data past the overlay's end would be cut off. */
    if (options->backing_file && base &&
        base->size > geometry.virtual_size && !options->allow_shrink)
        return q2s_error_set(err, EINVAL, "the base has %llu bytes, more "
                             "than the input's %llu: an overlay smaller "
                             "than its backing file hides the rest of it "
                             "(allow it with --shrink)",
                             (unsigned long long)base->size,
                             (unsigned long long)geometry.virtual_size);
    /* The fork's delta stores as data the clusters of zeros that hide the
     * base's, which the compressed scan would leave out. */
    if (base && !options->backing_file &&
        options->compression != Q2S_COMPRESSION_NONE)
        return q2s_error_set(err, EINVAL, "compression cannot be combined "
                             "with a delta (--diff) yet");
    q2s_clusters_init(&clusters, &geometry);
    /* Compressing again costs only CPU, for a file: compressed clusters
     * go to a file only when reading them again costs more. */
    q2s_cache_init(&cache, &memory_left, keep ? spool_directory : NULL);
    q2s_cache_init(&data_cache, keep ? &memory_left : NULL,
                   keep ? spool_directory : NULL);
    ret = find_clusters(source, base, options, &geometry, &clusters, &cache,
                        &data_cache, progress, progress_opaque, err);
    q2s_cache_finish(&cache);
    q2s_cache_finish(&data_cache);
    plan = ret < 0 ? NULL : malloc(sizeof *plan);
    if (!plan) {
        if (ret == 0)
            q2s_error_set_errno(err, ENOMEM, "cannot allocate the plan");
        q2s_clusters_free(&clusters);
        q2s_cache_free(&cache);
        q2s_cache_free(&data_cache);
        return -1;
    }
    if (q2s_plan_init(plan, &geometry, options, &clusters, err) < 0) {
        q2s_cache_free(&cache);
        q2s_cache_free(&data_cache);
        free(plan);
        return -1;
    }
    plan->cache = cache;
    plan->data_cache = data_cache;
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
