#include "export/fork_scan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/bits.h"
#include "export/fork_rules.h"
#include "export/helper.h"
#include "export/prefetch.h"

/* A window of this much of each source is read before comparing, at
 * least: large reads for block devices, which have no holes to skip. */
#define COMPARE_WINDOW_BYTES (4 * 1024 * 1024)
/* Windows of short runs (a map's scattered data) are read in batches, of
 * this many at most, that fill the buffers: a source may read a batch all
 * at once (file.c: direct reads in flight together). */
#define BATCH_WINDOWS 32
_Static_assert(BATCH_WINDOWS <= Q2S_READ_BATCH_MAX, "a batch is one read");

/* Clusters [first, first + count) of a batch. */
struct window {
    uint64_t first, count;
};

/* Clusters of the input compared with what the image would show without
 * them: the base's (zeros past its end), or zeros when there is no base. */
struct comparison {
    struct q2s_source *input;
    struct q2s_source *base;  /* NULL: compared with zeros */
    const struct q2s_geometry *geometry;
    uint64_t window_clusters;
    uint8_t *input_buffer;
    uint8_t *base_buffer;
    /* The base's last cluster when the base ends partway into it: the
     * fork reads it short and never finds it equal.  UINT64_MAX if none. */
    uint64_t partial_base_cluster;
    /* The fork's comparison, with that quirk; or an exact one, of the
     * bytes the guest sees (up to the virtual size). */
    bool as_the_fork;
    struct q2s_runs_builder *differing;
    /* Both sources read ahead along the clusters being compared. */
    struct q2s_prefetch input_ahead, base_ahead;
    /* Reads the base's window while the caller's thread reads the
     * input's: the two devices work at once.  NULL: one after the other
     * (no base, or one whose reads call the caller's callbacks). */
    struct q2s_helper *base_reader;
    /* The batch of windows to read and compare next, which fill the
     * buffers one after the other, and the rank in the runs of the first
     * one's first cluster, for the read ahead. */
    struct window batch[BATCH_WINDOWS];
    size_t batch_count;
    uint64_t batch_clusters;
    uint64_t batch_rank;
    uint64_t end_rank;
    q2s_progress_callback *progress;
    void *progress_opaque;
    uint64_t done_bytes;
    uint64_t total_bytes;
};

static int comparison_init(struct comparison *cmp, struct q2s_source *input,
                           struct q2s_source *base,
                           const struct q2s_geometry *geometry,
                           struct q2s_runs_builder *differing,
                           struct q2s_error *err)
{
    uint32_t cluster_size = geometry->cluster_size;
    size_t window_bytes;

    *cmp = (struct comparison){
        .input = input,
        .base = base,
        .geometry = geometry,
        .window_clusters = COMPARE_WINDOW_BYTES > cluster_size
                               ? COMPARE_WINDOW_BYTES / cluster_size : 1,
        .partial_base_cluster = base && base->size % cluster_size
                                    ? base->size / cluster_size : UINT64_MAX,
        .differing = differing,
    };
    window_bytes = (size_t)(cmp->window_clusters * cluster_size);
    if (posix_memalign((void **)&cmp->input_buffer, 4096, window_bytes) != 0 ||
        posix_memalign((void **)&cmp->base_buffer, 4096, window_bytes) != 0)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate the "
                                   "buffers to compare");
    if (!base)
        memset(cmp->base_buffer, 0, window_bytes);
    if (base && base->any_thread &&
        q2s_helper_start(&cmp->base_reader, err) < 0)
        return -1;
    return 0;
}

static void comparison_fini(struct comparison *cmp)
{
    q2s_helper_stop(cmp->base_reader);
    free(cmp->input_buffer);
    free(cmp->base_buffer);
}

/* Whether source may hold data in [from, to); if not, *next is where its
 * next data starts (UINT64_MAX if nowhere). */
static int may_hold_data(struct q2s_source *source, uint64_t from,
                         uint64_t to, uint64_t *next, struct q2s_error *err)
{
    uint64_t start, end;
    int found;

    *next = UINT64_MAX;
    if (!source || from >= source->size)
        return 0;
    found = q2s_source_next_data(source, from, &start, &end, err);
    if (found <= 0)
        return found;
    if (start < to)
        return 1;
    *next = start;
    return 0;
}

static int add_differing(struct comparison *cmp, uint64_t cluster,
                         struct q2s_error *err)
{
    if (q2s_runs_builder_add(cmp->differing, cluster, 1) < 0)
        return q2s_error_set_errno(err, errno, "cannot record the clusters "
                                   "that differ");
    return 0;
}

/* Clusters [first, first + count), which both sources read as zeros: only
 * the fork's partial base cluster differs. */
static int skip_zeros(struct comparison *cmp, uint64_t first, uint64_t count,
                      struct q2s_error *err)
{
    if (cmp->as_the_fork && cmp->partial_base_cluster - first < count)
        return add_differing(cmp, cmp->partial_base_cluster, err);
    return 0;
}

/* Bytes of cluster that the comparison looks at. */
static size_t compared_bytes(const struct comparison *cmp, uint64_t cluster)
{
    const struct q2s_geometry *g = cmp->geometry;
    uint64_t offset = cluster << g->cluster_bits;

    if (cmp->as_the_fork || g->virtual_size - offset >= g->cluster_size)
        return g->cluster_size;
    return (size_t)(g->virtual_size - offset);
}

/* The batch's reads of source into buffer. */
static int read_batch(const struct comparison *cmp, struct q2s_source *source,
                      uint8_t *buffer, struct q2s_error *err)
{
    uint32_t bits = cmp->geometry->cluster_bits;
    struct q2s_read reads[BATCH_WINDOWS];

    for (size_t i = 0; i < cmp->batch_count; i++) {
        reads[i] = (struct q2s_read){
            .buf = buffer,
            .length = (size_t)(cmp->batch[i].count << bits),
            .offset = cmp->batch[i].first << bits,
        };
        buffer += reads[i].length;
    }
    return q2s_source_read_batch(source, reads, cmp->batch_count, err);
}

/* base_reader's job: the base's part of the batch. */
static int read_base_batch(void *opaque, struct q2s_error *err)
{
    struct comparison *cmp = opaque;

    q2s_prefetch_ahead(&cmp->base_ahead, cmp->batch_rank, cmp->end_rank);
    return read_batch(cmp, cmp->base, cmp->base_buffer, err);
}

/* Reads the batch from both sources, the base's on base_reader if there
 * is one, and waits for both: with two failures, the input's is the one
 * reported. */
static int read_both(struct comparison *cmp, struct q2s_error *err)
{
    struct q2s_error base_err;
    int input_read, base_read;

    if (!cmp->base_reader) {
        q2s_prefetch_ahead(&cmp->input_ahead, cmp->batch_rank, cmp->end_rank);
        if (cmp->base)
            q2s_prefetch_ahead(&cmp->base_ahead, cmp->batch_rank,
                               cmp->end_rank);
        if (read_batch(cmp, cmp->input, cmp->input_buffer, err) < 0)
            return -1;
        return cmp->base ? read_batch(cmp, cmp->base, cmp->base_buffer, err)
                         : 0;
    }
    q2s_helper_post(cmp->base_reader, read_base_batch, cmp);
    q2s_prefetch_ahead(&cmp->input_ahead, cmp->batch_rank, cmp->end_rank);
    input_read = read_batch(cmp, cmp->input, cmp->input_buffer, err);
    base_read = q2s_helper_wait(cmp->base_reader, &base_err);
    if (input_read < 0)
        return -1;
    if (base_read < 0) {
        *err = base_err;
        return -1;
    }
    return 0;
}

static void advance(struct comparison *cmp, uint64_t count)
{
    cmp->done_bytes += count << cmp->geometry->cluster_bits;
    if (cmp->progress)
        cmp->progress(cmp->progress_opaque, Q2S_PHASE_SCAN, cmp->done_bytes,
                      cmp->total_bytes);
}

/* Reads the batch of windows from both sources and compares them. */
static int compare_batch(struct comparison *cmp, struct q2s_error *err)
{
    uint32_t bits = cmp->geometry->cluster_bits;
    size_t off = 0;

    if (cmp->batch_count == 0)
        return 0;
    if (read_both(cmp, err) < 0)
        return -1;
    for (size_t w = 0; w < cmp->batch_count; w++) {
        uint64_t first = cmp->batch[w].first;

        for (uint64_t i = 0; i < cmp->batch[w].count; i++) {
            bool differs = cmp->as_the_fork &&
                           first + i == cmp->partial_base_cluster;

            if (!differs)
                differs = memcmp(cmp->input_buffer + off,
                                 cmp->base_buffer + off,
                                 compared_bytes(cmp, first + i)) != 0;
            if (differs && add_differing(cmp, first + i, err) < 0)
                return -1;
            off += (size_t)1 << bits;
        }
        advance(cmp, cmp->batch[w].count);
    }
    cmp->batch_count = 0;
    cmp->batch_clusters = 0;
    return 0;
}

/* Adds clusters [first, first + count) to the batch, of rank rank in the
 * runs, after comparing the batch if they do not fit beside it. */
static int compare_window(struct comparison *cmp, uint64_t first,
                          uint64_t count, uint64_t rank,
                          struct q2s_error *err)
{
    if ((cmp->batch_count == BATCH_WINDOWS ||
         cmp->window_clusters - cmp->batch_clusters < count) &&
        compare_batch(cmp, err) < 0)
        return -1;
    if (cmp->batch_count == 0)
        cmp->batch_rank = rank;
    cmp->batch[cmp->batch_count++] = (struct window){ first, count };
    cmp->batch_clusters += count;
    return 0;
}

/* Compares the clusters of one run, a window at a time, jumping over what
 * both sources report as holes. */
static int compare_run(struct comparison *cmp, const struct q2s_run *run,
                       struct q2s_error *err)
{
    uint32_t bits = cmp->geometry->cluster_bits;
    uint64_t first = run->start, end = run->start + run->length;

    while (first < end) {
        uint64_t count = end - first < cmp->window_clusters
                             ? end - first : cmp->window_clusters;
        uint64_t from = first << bits, to = (first + count) << bits;
        uint64_t next_input, next_base, next;
        int input_data, base_data;

        if (q2s_source_interrupted(cmp->input) ||
            (cmp->base && q2s_source_interrupted(cmp->base)))
            return q2s_error_set(err, ECANCELED, "interrupted");
        input_data = may_hold_data(cmp->input, from, to, &next_input, err);
        if (input_data < 0)
            return -1;
        base_data = may_hold_data(cmp->base, from, to, &next_base, err);
        if (base_data < 0)
            return -1;
        if (!input_data && !base_data) {
            /* Both start their data at or past to: jump to the first. */
            next = next_input < next_base ? next_input : next_base;
            count = (next >> bits) < end ? (next >> bits) - first
                                         : end - first;
            /* The clusters that differ are recorded in order. */
            if (compare_batch(cmp, err) < 0 ||
                skip_zeros(cmp, first, count, err) < 0)
                return -1;
            advance(cmp, count);
        } else {
            uint64_t rank = run->rank + (first - run->start);

            if (compare_window(cmp, first, count, rank, err) < 0)
                return -1;
        }
        first += count;
    }
    return 0;
}

static int compare_runs(struct comparison *cmp, const struct q2s_runs *runs,
                        bool as_the_fork, struct q2s_error *err)
{
    uint32_t bits = cmp->geometry->cluster_bits;

    cmp->as_the_fork = as_the_fork;
    q2s_prefetch_init(&cmp->input_ahead, cmp->input, runs, bits);
    if (cmp->base)
        q2s_prefetch_init(&cmp->base_ahead, cmp->base, runs, bits);
    cmp->end_rank = q2s_runs_total(runs);
    for (size_t i = 0; i < runs->count; i++)
        if (compare_run(cmp, &runs->runs[i], err) < 0)
            return -1;
    return compare_batch(cmp, err);
}

/* *allocated becomes outright and the differing clusters together. */
static int merge_into(struct q2s_runs_builder *differing,
                      const struct q2s_runs *outright,
                      struct q2s_runs *allocated, struct q2s_error *err)
{
    for (size_t i = 0; i < outright->count; i++)
        if (q2s_runs_builder_add(differing, outright->runs[i].start,
                                 outright->runs[i].length) < 0)
            return q2s_error_set_errno(err, errno, "cannot record the "
                                       "clusters");
    if (q2s_runs_builder_finish(differing, allocated) < 0)
        return q2s_error_set_errno(err, errno, "cannot record the clusters");
    return 0;
}

int q2s_fork_check_size(const struct q2s_source *source,
                        uint64_t virtual_size, const char *what,
                        struct q2s_error *err)
{
    if (source->size < virtual_size)
        return q2s_error_set(err, EINVAL, "the %s has %llu bytes, fewer "
                             "than the virtual size of %llu bytes that its "
                             "info gives", what,
                             (unsigned long long)source->size,
                             (unsigned long long)virtual_size);
    return 0;
}

int q2s_scan_fork_map(struct q2s_source *input,
                      const struct q2s_geometry *geometry,
                      const struct q2s_options *options,
                      struct q2s_runs *allocated, struct q2s_error *err)
{
    struct q2s_runs outright, to_check;
    struct q2s_runs_builder differing;
    struct comparison cmp = { .base_reader = NULL };
    int ret = -1;

    q2s_runs_init(&outright);
    q2s_runs_init(&to_check);
    q2s_runs_builder_init(&differing);
    if (q2s_fork_mapped_clusters(options->input_map, geometry->cluster_bits,
                                 geometry->guest_clusters, &outright,
                                 &to_check, err) < 0 ||
        comparison_init(&cmp, input, NULL, geometry, &differing, err) < 0 ||
        compare_runs(&cmp, &to_check, false, err) < 0 ||
        merge_into(&differing, &outright, allocated, err) < 0)
        goto out;
    ret = 0;
out:
    comparison_fini(&cmp);
    q2s_runs_builder_free(&differing);
    q2s_runs_free(&outright);
    q2s_runs_free(&to_check);
    return ret;
}

/* What the fork compares: with maps, what its walk says; without, every
 * cluster of the input, against zeros past the base's end. */
static int clusters_to_compare(const struct q2s_options *options,
                               struct q2s_source *base,
                               const struct q2s_geometry *geometry,
                               struct q2s_runs *outright,
                               struct q2s_runs *to_compare,
                               struct q2s_runs *to_check,
                               struct q2s_error *err)
{
    uint64_t base_clusters;

    if (!options->input_map)
        return q2s_runs_add(to_compare, 0, geometry->guest_clusters) < 0
                   ? q2s_error_set_errno(err, errno, "cannot record the "
                                         "clusters to compare")
                   : 0;
    if (!options->base_map)
        return q2s_error_set(err, EINVAL, "with the input's map, a delta "
                             "needs the base's map and virtual size too "
                             "(--json-header-diff-map and "
                             "--json-header-diff-info)");
    if (q2s_fork_check_size(base, options->base_virtual_size, "base",
                            err) < 0)
        return -1;
    base_clusters = q2s_div_round_up(options->base_virtual_size,
                                     geometry->cluster_size);
    return q2s_fork_walk(options->input_map, options->base_map,
                         geometry->cluster_bits, geometry->guest_clusters,
                         base_clusters, outright, to_compare, to_check, err);
}

int q2s_scan_delta(struct q2s_source *input, struct q2s_source *base,
                   const struct q2s_geometry *geometry,
                   const struct q2s_options *options,
                   struct q2s_runs *allocated,
                   q2s_progress_callback *progress, void *progress_opaque,
                   struct q2s_error *err)
{
    struct q2s_runs outright, to_compare, to_check;
    struct q2s_runs_builder differing;
    struct comparison cmp = { .base_reader = NULL };
    int ret = -1;

    q2s_runs_init(&outright);
    q2s_runs_init(&to_compare);
    q2s_runs_init(&to_check);
    q2s_runs_builder_init(&differing);
    if (clusters_to_compare(options, base, geometry, &outright, &to_compare,
                            &to_check, err) < 0 ||
        comparison_init(&cmp, input, base, geometry, &differing, err) < 0)
        goto out;
    cmp.progress = progress;
    cmp.progress_opaque = progress_opaque;
    /* Most of what is compared is not read again in pass 2. */
    input->read_once = true;
    base->read_once = true;
    cmp.total_bytes = (q2s_runs_total(&to_compare) + q2s_runs_total(&to_check))
                      << geometry->cluster_bits;
    if (compare_runs(&cmp, &to_compare, true, err) < 0 ||
        compare_runs(&cmp, &to_check, false, err) < 0 ||
        merge_into(&differing, &outright, allocated, err) < 0)
        goto out;
    if (progress)
        progress(progress_opaque, Q2S_PHASE_SCAN, cmp.total_bytes,
                 cmp.total_bytes);
    ret = 0;
out:
    input->read_once = false;
    base->read_once = false;
    comparison_fini(&cmp);
    q2s_runs_builder_free(&differing);
    q2s_runs_free(&outright);
    q2s_runs_free(&to_compare);
    q2s_runs_free(&to_check);
    return ret;
}

int q2s_scan_changed(struct q2s_source *input, struct q2s_source *base,
                     const struct q2s_geometry *geometry,
                     struct q2s_runs *changed,
                     q2s_progress_callback *progress, void *progress_opaque,
                     struct q2s_error *err)
{
    struct q2s_runs every_cluster;
    struct q2s_runs_builder differing;
    struct comparison cmp = { .input_buffer = NULL, .base_buffer = NULL };
    int ret = -1;

    q2s_runs_init(&every_cluster);
    q2s_runs_builder_init(&differing);
    if (q2s_runs_add(&every_cluster, 0, geometry->guest_clusters) < 0) {
        q2s_error_set_errno(err, errno, "cannot record the clusters to "
                            "compare");
        goto out;
    }
    if (comparison_init(&cmp, input, base, geometry, &differing, err) < 0)
        goto out;
    cmp.progress = progress;
    cmp.progress_opaque = progress_opaque;
    cmp.total_bytes = geometry->guest_clusters << geometry->cluster_bits;
    /* Only what differs is read again, by the scan of its data. */
    input->read_once = true;
    base->read_once = true;
    if (compare_runs(&cmp, &every_cluster, false, err) < 0)
        goto out;
    if (q2s_runs_builder_finish(&differing, changed) < 0) {
        q2s_error_set_errno(err, errno, "cannot record the clusters");
        goto out;
    }
    ret = 0;
out:
    input->read_once = false;
    base->read_once = false;
    comparison_fini(&cmp);
    q2s_runs_builder_free(&differing);
    q2s_runs_free(&every_cluster);
    return ret;
}
