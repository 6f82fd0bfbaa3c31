#include "export/scan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/zero.h"
#include "error.h"
#include "export/compress_pool.h"
#include "format/qcow2_compress.h"

static uint64_t align_down(uint64_t n, uint64_t alignment)
{
    return n & ~(alignment - 1);
}

/* Reads done together: the runs of an increment are small and scattered,
 * and a source where each read is a round trip does many at once
 * (q2s_source_read_batch()). */
#define GATHER_PIECES Q2S_READ_BATCH_MAX

struct gather {
    struct q2s_read pieces[GATHER_PIECES];
    size_t count;
    size_t bytes;  /* of the scan's buffer that the pieces take */
};

struct scan {
    struct q2s_source *source;
    const struct q2s_geometry *geometry;
    size_t window_bytes;  /* whole clusters */
    /* Takes the clusters [pos, pos + length), cluster-aligned. */
    int (*window)(struct scan *scan, uint64_t pos, uint64_t length,
                  struct q2s_error *err);
    q2s_progress_callback *progress;
    void *progress_opaque;
    /* The only clusters to look at, or NULL for all. */
    const struct q2s_runs *only;

    /* Without compression: the window is read here and looked at.  The
     * data clusters go into data_cache (or NULL) while they fit, with
     * compression those stored as they are. */
    uint8_t *buffer;
    struct q2s_runs *data_clusters;
    struct q2s_cache *data_cache;
    /* Or NULL: without compression, with only, on a source that reads
     * batches at once, the clusters to look at are gathered here. */
    struct gather *gather;

    /* With compression: windows go to the threads in batches. */
    struct q2s_pool *pool;
    struct q2s_clusters *clusters;
    struct q2s_cache *cache;
};

/* Without compression: the clusters of buf, which holds [pos, pos +
 * length), that are not all zeros. */
static int look_at(struct scan *scan, uint64_t pos, const uint8_t *buf,
                   uint64_t length, struct q2s_error *err)
{
    uint32_t cluster_size = scan->geometry->cluster_size;

    for (uint64_t off = 0; off < length; off += cluster_size) {
        /* Clusters come in order: its place among the data clusters. */
        uint64_t rank = q2s_runs_total(scan->data_clusters);

        if (q2s_is_zero(buf + off, cluster_size))
            continue;
        if (q2s_runs_add(scan->data_clusters,
                         (pos + off) >> scan->geometry->cluster_bits, 1) < 0)
            return q2s_error_set_errno(err, errno, "cannot record the data "
                                       "clusters");
        if (scan->data_cache)
            q2s_cache_store(scan->data_cache,
                            rank << scan->geometry->cluster_bits, buf + off,
                            cluster_size);
    }
    return 0;
}

static int find_data(struct scan *scan, uint64_t pos, uint64_t length,
                     struct q2s_error *err)
{
    /* Only the data in the window: a cluster that an extent only partly
     * covers has its holes filled with zeros, not read. */
    if (q2s_source_read_clusters(scan->source, scan->buffer, (size_t)length,
                                 pos, err) < 0)
        return -1;
    return look_at(scan, pos, scan->buffer, length, err);
}

/* Reads the gathered pieces at once, then looks at them in order. */
static int flush_gather(struct scan *scan, struct q2s_error *err)
{
    struct gather *g = scan->gather;
    const struct q2s_read *last;

    if (g->count == 0)
        return 0;
    if (q2s_source_interrupted(scan->source))
        return q2s_error_set(err, ECANCELED, "interrupted");
    if (q2s_source_read_batch(scan->source, g->pieces, g->count, err) < 0)
        return -1;
    for (size_t i = 0; i < g->count; i++)
        if (look_at(scan, g->pieces[i].offset, g->pieces[i].buf,
                    g->pieces[i].length, err) < 0)
            return -1;
    last = &g->pieces[g->count - 1];
    if (scan->progress)
        scan->progress(scan->progress_opaque, Q2S_PHASE_SCAN,
                       last->offset + last->length < scan->source->size
                           ? last->offset + last->length
                           : scan->source->size,
                       scan->source->size);
    g->count = 0;
    g->bytes = 0;
    return 0;
}

/* Adds [start, end), cluster-aligned, to the pieces, reading them when
 * the buffer or the pieces are full. */
static int gather_extent(struct scan *scan, uint64_t start, uint64_t end,
                         struct q2s_error *err)
{
    struct gather *g = scan->gather;

    while (start < end) {
        uint64_t n;

        if ((g->bytes == scan->window_bytes || g->count == GATHER_PIECES) &&
            flush_gather(scan, err) < 0)
            return -1;
        n = end - start < scan->window_bytes - g->bytes
                ? end - start : scan->window_bytes - g->bytes;
        g->pieces[g->count++] = (struct q2s_read){
            scan->buffer + g->bytes, (size_t)n, start };
        g->bytes += (size_t)n;
        start += n;
    }
    return 0;
}

/* Hands [start, end) -- cluster-aligned, start below the input size -- to
 * scan->window a window at a time. */
static int scan_extent(struct scan *scan, uint64_t start, uint64_t end,
                       struct q2s_error *err)
{
    struct q2s_source *source = scan->source;

    for (uint64_t pos = start; pos < end;) {
        uint64_t length = end - pos < scan->window_bytes ? end - pos
                                                         : scan->window_bytes;

        if (q2s_source_interrupted(source))
            return q2s_error_set(err, ECANCELED, "interrupted");
        if (scan->window(scan, pos, length, err) < 0)
            return -1;
        pos += length;
        if (scan->progress)
            scan->progress(scan->progress_opaque, Q2S_PHASE_SCAN,
                           pos < source->size ? pos : source->size,
                           source->size);
    }
    return 0;
}

/* Every extent of [from, to) that may hold data, in whole clusters (from
 * and to are cluster-aligned); holes are not read, and no cluster twice. */
static int scan_range(struct scan *scan, uint64_t from, uint64_t to,
                      struct q2s_error *err)
{
    uint32_t cluster_size = scan->geometry->cluster_size;
    uint64_t offset = from;

    while (offset < to) {
        uint64_t start, end;
        int ret = q2s_source_next_data(scan->source, offset, &start, &end,
                                       err);

        if (ret < 0)
            return -1;
        if (ret == 0 || start >= to)
            break;
        /* The next search starts after the last whole cluster, so that an
         * extent ending mid-cluster does not make the next one read that
         * cluster again. */
        start = align_down(start, cluster_size);
        end = align_down(end + cluster_size - 1, cluster_size);
        if (end > to)
            end = to;
        if ((scan->gather ? gather_extent(scan, start, end, err)
                          : scan_extent(scan, start, end, err)) < 0)
            return -1;
        offset = end;
    }
    return 0;
}

/* The whole input, or the clusters of scan->only. */
static int scan_input(struct scan *scan, struct q2s_error *err)
{
    struct q2s_source *source = scan->source;
    uint32_t bits = scan->geometry->cluster_bits;
    /* The end of the last cluster, which may reach past the input. */
    uint64_t input_end = align_down(source->size + scan->geometry->cluster_size
                                        - 1, scan->geometry->cluster_size);

    if (!scan->only) {
        if (scan_range(scan, 0, input_end, err) < 0)
            return -1;
    } else {
        for (size_t i = 0; i < scan->only->count; i++) {
            const struct q2s_run *run = &scan->only->runs[i];
            uint64_t from = run->start << bits;
            uint64_t to = (run->start + run->length) << bits;

            if (from >= source->size)
                break;
            if (scan_range(scan, from, to < input_end ? to : input_end,
                           err) < 0)
                return -1;
        }
        if (scan->gather && flush_gather(scan, err) < 0)
            return -1;
    }
    if (scan->progress)
        scan->progress(scan->progress_opaque, Q2S_PHASE_SCAN, source->size,
                       source->size);
    return 0;
}

/* A piece of a stream: the most a stream's piece holds (a multiple of the
 * cluster size, and many requests of a server). */
#define STREAM_PIECE_BYTES (1024 * 1024)

/* Where a streamed scan is: the range being searched for data, and the
 * extent being cut into pieces. */
struct stream_walk {
    struct scan *scan;
    size_t run;             /* the next run of scan->only */
    uint64_t offset;        /* where the search for data goes on */
    uint64_t range_end;     /* the end of the range searched */
    uint64_t piece_start;   /* the extent's part still to give */
    uint64_t extent_end;
    uint64_t input_end;     /* the end of the last cluster */
    size_t piece_bytes;
};

/* Moves to the next range of clusters to search: false after the last. */
static bool next_range(struct stream_walk *w)
{
    const struct q2s_runs *only = w->scan->only;
    uint32_t bits = w->scan->geometry->cluster_bits;

    if (!only || w->run >= only->count)
        return false;
    w->offset = only->runs[w->run].start << bits;
    w->range_end = (only->runs[w->run].start + only->runs[w->run].length)
                   << bits;
    w->run++;
    if (w->offset >= w->scan->source->size)
        return false;
    if (w->range_end > w->input_end)
        w->range_end = w->input_end;
    return true;
}

/* q2s_stream's next: the extents that may hold data, rounded out to
 * whole clusters (as scan_range), cut into pieces. */
static int stream_next(void *opaque, uint64_t *offset, size_t *length,
                       struct q2s_error *err)
{
    struct stream_walk *w = opaque;
    struct q2s_source *source = w->scan->source;
    uint32_t cluster_size = w->scan->geometry->cluster_size;

    while (w->piece_start >= w->extent_end) {
        uint64_t start, end;
        int ret;

        if (q2s_source_interrupted(source))
            return q2s_error_set(err, ECANCELED, "interrupted");
        if (w->offset >= w->range_end && !next_range(w))
            return 0;
        ret = q2s_source_next_data(source, w->offset, &start, &end, err);
        if (ret < 0)
            return -1;
        if (ret == 0 || start >= w->range_end) {
            w->offset = w->range_end;
            continue;
        }
        w->piece_start = align_down(start, cluster_size);
        w->extent_end = align_down(end + cluster_size - 1, cluster_size);
        if (w->extent_end > w->range_end)
            w->extent_end = w->range_end;
        w->offset = w->extent_end;
    }
    *offset = w->piece_start;
    *length = w->extent_end - w->piece_start < w->piece_bytes
                  ? (size_t)(w->extent_end - w->piece_start) : w->piece_bytes;
    w->piece_start += *length;
    /* The last cluster may reach past the input: that part reads as
     * zeros (stream_consume), it is not asked for. */
    if (*offset + *length > source->size)
        *length = (size_t)(source->size - *offset);
    return 1;
}

/* q2s_stream's consume: the piece's clusters are looked at. */
static int stream_consume(void *opaque, const uint8_t *buf, uint64_t offset,
                          size_t length, struct q2s_error *err)
{
    struct stream_walk *w = opaque;
    struct scan *scan = w->scan;
    uint32_t cluster_size = scan->geometry->cluster_size;
    size_t whole = length & ~((size_t)cluster_size - 1);

    if (look_at(scan, offset, buf, whole, err) < 0)
        return -1;
    if (whole < length) {
        memset(scan->buffer, 0, cluster_size);
        memcpy(scan->buffer, buf + whole, length - whole);
        if (look_at(scan, offset + whole, scan->buffer, cluster_size,
                    err) < 0)
            return -1;
    }
    if (scan->progress)
        scan->progress(scan->progress_opaque, Q2S_PHASE_SCAN,
                       offset + length, scan->source->size);
    return 0;
}

/* The scan of a source that streams its reads: requests stay in flight
 * while the clusters that came are looked at. */
static int scan_streamed(struct scan *scan, struct q2s_error *err)
{
    struct q2s_source *source = scan->source;
    uint32_t cluster_size = scan->geometry->cluster_size;
    struct stream_walk walk = {
        .scan = scan,
        .input_end = align_down(source->size + cluster_size - 1,
                                cluster_size),
        .piece_bytes = cluster_size > STREAM_PIECE_BYTES
                           ? cluster_size : STREAM_PIECE_BYTES,
    };
    struct q2s_stream stream = {
        .piece_bytes = walk.piece_bytes,
        .next = stream_next,
        .consume = stream_consume,
        .opaque = &walk,
    };

    if (!scan->only)
        walk.range_end = walk.input_end;
    if (source->ops->read_stream(source, &stream, err) < 0)
        return -1;
    if (scan->progress)
        scan->progress(scan->progress_opaque, Q2S_PHASE_SCAN, source->size,
                       source->size);
    return 0;
}

int q2s_scan(struct q2s_source *source, const struct q2s_geometry *geometry,
             const struct q2s_runs *only, struct q2s_runs *data_clusters,
             struct q2s_cache *data_cache, q2s_progress_callback *progress,
             void *progress_opaque, struct q2s_error *err)
{
    uint32_t cluster_size = geometry->cluster_size;
    struct scan scan = {
        .source = source,
        .geometry = geometry,
        /* Whole clusters, as many as make a good read for the source. */
        .window_bytes = source->read_bytes > cluster_size
                            ? source->read_bytes & ~((size_t)cluster_size - 1)
                            : cluster_size,
        .window = find_data,
        .progress = progress,
        .progress_opaque = progress_opaque,
        .only = only,
        .data_clusters = data_clusters,
        .data_cache = data_cache,
    };
    struct gather gather = { .count = 0 };
    int ret;

    /* A map's holes must read as zeros, which only read_clusters does. */
    bool streamed = source->ops->read_stream && !source->map;

    if (only && source->ops->read_batch)
        scan.gather = &gather;
    if (posix_memalign((void **)&scan.buffer, 4096, scan.window_bytes) != 0)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate the scan "
                                   "buffer");
    ret = streamed ? scan_streamed(&scan, err) : scan_input(&scan, err);
    free(scan.buffer);
    return ret;
}

/* The clusters of [first, end) (bytes: cluster-aligned, end at most the
 * input's end rounded up to a cluster) that the source's data extents
 * touch, into *data_clusters, after *next_cluster (the first not yet
 * added), which moves on. */
static int add_allocated(struct q2s_source *source,
                         const struct q2s_geometry *geometry, uint64_t first,
                         uint64_t end, struct q2s_runs *data_clusters,
                         uint64_t *next_cluster, struct q2s_error *err)
{
    uint32_t bits = geometry->cluster_bits;
    uint64_t offset = first;

    while (offset < end && offset < source->size) {
        uint64_t start, extent_end, from, to;
        int ret;

        if (q2s_source_interrupted(source))
            return q2s_error_set(err, ECANCELED, "interrupted");
        ret = q2s_source_next_data(source, offset, &start, &extent_end, err);
        if (ret < 0)
            return -1;
        if (ret == 0 || start >= end)
            break;
        if (extent_end > end)
            extent_end = end;
        from = start >> bits;
        if (from < *next_cluster)
            from = *next_cluster;
        /* q2s_source_next_data() checked: extent_end > start. */
        to = ((extent_end - 1) >> bits) + 1;
        if (from < to) {
            if (q2s_runs_add(data_clusters, from, to - from) < 0)
                return q2s_error_set_errno(err, errno, "cannot record the "
                                           "data clusters");
            *next_cluster = to;
        }
        offset = extent_end;
    }
    return 0;
}

int q2s_scan_allocation(struct q2s_source *source,
                        const struct q2s_geometry *geometry,
                        const struct q2s_runs *only,
                        struct q2s_runs *data_clusters,
                        q2s_progress_callback *progress,
                        void *progress_opaque, struct q2s_error *err)
{
    uint32_t bits = geometry->cluster_bits;
    uint64_t input_end = geometry->guest_clusters << bits;
    uint64_t next_cluster = 0;

    if (!only) {
        if (add_allocated(source, geometry, 0, input_end, data_clusters,
                          &next_cluster, err) < 0)
            return -1;
    } else {
        for (size_t i = 0; i < only->count; i++) {
            const struct q2s_run *run = &only->runs[i];

            if (add_allocated(source, geometry, run->start << bits,
                              (run->start + run->length) << bits,
                              data_clusters, &next_cluster, err) < 0)
                return -1;
        }
    }
    /* Once, at the end: it reads no data, and a caller's share of the
     * progress for it (--progress-fd) is then none. */
    if (progress)
        progress(progress_opaque, Q2S_PHASE_SCAN, source->size, source->size);
    return 0;
}

/* A compressed batch, in input order: which clusters hold data, how each
 * is stored, and the compressed ones into the cache while it has room. */
static int record_batch(struct scan *scan, const struct q2s_batch *batch,
                        struct q2s_error *err)
{
    uint32_t cluster_size = scan->geometry->cluster_size;
    struct q2s_clusters *clusters = scan->clusters;

    for (size_t i = 0; i < batch->count; i++) {
        uint64_t cluster = batch->first_cluster + i;
        uint32_t bytes = batch->result[i];
        uint64_t start;

        if (bytes == 0)
            continue;  /* all zeros */
        if (bytes == cluster_size) {
            /* Its place among the data clusters. */
            uint64_t rank = q2s_runs_total(&clusters->raw);

            if (q2s_runs_add(&clusters->raw, cluster, 1) < 0)
                return q2s_error_set_errno(err, errno, "cannot record the "
                                           "data clusters");
            if (scan->data_cache)
                q2s_cache_store(scan->data_cache,
                                rank << scan->geometry->cluster_bits,
                                batch->input + i * (size_t)cluster_size,
                                cluster_size);
            continue;
        }
        if (q2s_runs_add(&clusters->compressed, cluster, 1) < 0 ||
            q2s_packing_append(&clusters->packing, bytes, &start) < 0)
            return q2s_error_set_errno(err, errno, "cannot record the "
                                       "compressed clusters");
        q2s_cache_store(scan->cache, start,
                        batch->output + i * (size_t)cluster_size, bytes);
    }
    return 0;
}

/* Records the oldest batch in flight: 1 if there was one, 0 if none. */
static int collect_batch(struct scan *scan, struct q2s_error *err)
{
    struct q2s_batch *batch;
    int ret;

    if (q2s_pool_collect(scan->pool, &batch, err) < 0)
        return -1;  /* the pool goes with its batches */
    if (!batch)
        return 0;
    ret = record_batch(scan, batch, err);
    q2s_pool_release(scan->pool, batch);
    return ret < 0 ? -1 : 1;
}

/* With compression: the window goes to the threads, whose earlier work is
 * recorded when a batch is needed. */
static int compress_window(struct scan *scan, uint64_t pos, uint64_t length,
                           struct q2s_error *err)
{
    struct q2s_batch *batch;

    while (!(batch = q2s_pool_get(scan->pool))) {
        if (collect_batch(scan, err) < 0)
            return -1;
    }
    if (q2s_source_read_clusters(scan->source, batch->input, (size_t)length,
                                 pos, err) < 0)
        return -1;
    batch->first_cluster = pos >> scan->geometry->cluster_bits;
    batch->count = (size_t)(length >> scan->geometry->cluster_bits);
    q2s_pool_submit(scan->pool, batch);
    return 0;
}

int q2s_scan_compressed(struct q2s_source *source,
                        const struct q2s_geometry *geometry,
                        const struct q2s_options *options,
                        const struct q2s_runs *only,
                        struct q2s_clusters *clusters, struct q2s_cache *cache,
                        struct q2s_cache *data_cache,
                        q2s_progress_callback *progress, void *progress_opaque,
                        struct q2s_error *err)
{
    struct scan scan = {
        .source = source,
        .geometry = geometry,
        .window = compress_window,
        .progress = progress,
        .progress_opaque = progress_opaque,
        .only = only,
        .clusters = clusters,
        .cache = cache,
        .data_cache = data_cache,
    };
    int ret;

    if (q2s_pool_new(options->compression,
                     q2s_compression_level(options->compression,
                                           options->compression_level),
                     geometry->cluster_size, options->threads,
                     &source->cancel, &scan.pool, err) < 0)
        return -1;
    scan.window_bytes =
        q2s_pool_batch_clusters(scan.pool) * (size_t)geometry->cluster_size;
    ret = scan_input(&scan, err);
    if (ret == 0)
        while ((ret = collect_batch(&scan, err)) > 0)
            ;
    q2s_pool_free(scan.pool);
    return ret < 0 ? -1 : 0;
}
