/* Pass 2: any byte range of the image, from the plan and the input. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/bits.h"
#include "error.h"
#include "export/compress_pool.h"
#include "export/metadata.h"
#include "export/plan.h"
#include "export/prefetch.h"
#include "export/render.h"
#include "export/sink.h"
#include "export/source.h"

#define ZERO_COPY_MIN_BYTES (64 * 1024)
/* How much data goes between two progress reports. */
#define PROGRESS_STEP_BYTES (64 * 1024 * 1024)

struct render {
    const struct q2s_plan *plan;
    struct q2s_source *source;
    struct q2s_sink *sink;  /* the caller's */
    uint8_t *buffer;  /* a cluster, or a good read of the source if larger */
    size_t buffer_bytes;
    uint64_t start, end;  /* the range being rendered */
    struct q2s_pool *pool;  /* to compress again what the cache lacks */
    q2s_progress_callback *progress;
    void *progress_opaque;
};

static void report(struct render *r, uint64_t pos)
{
    if (r->progress)
        r->progress(r->progress_opaque, Q2S_PHASE_WRITE, pos - r->start,
                    r->end - r->start);
}

/* Metadata clusters overlapping [*pos, limit). */
static int render_metadata(struct render *r, uint64_t *pos, uint64_t limit,
                           struct q2s_error *err)
{
    const struct q2s_geometry *g = &r->plan->geometry;

    while (*pos < limit) {
        uint64_t cluster = *pos >> g->cluster_bits;
        uint64_t from = *pos - (cluster << g->cluster_bits);
        uint64_t length = g->cluster_size - from;

        if (length > limit - *pos)
            length = limit - *pos;
        q2s_metadata_cluster(r->plan, cluster, r->buffer);
        if (q2s_sink_write(r->sink, r->buffer + from, (size_t)length, err) < 0)
            return -1;
        *pos += length;
    }
    return 0;
}

/* length bytes of the input from offset on, zeros past its end. */
static int copy_input(struct render *r, uint64_t offset, uint64_t length,
                      struct q2s_error *err)
{
    struct q2s_source *source = r->source;
    uint64_t readable = 0;

    if (offset < source->size)
        readable = source->size - offset < length ? source->size - offset
                                                  : length;
    while (readable > 0) {
        uint64_t located = 0, done = 0, fd_offset = 0;
        int fd = -1;

        if (q2s_source_interrupted(source))
            return q2s_error_set(err, ECANCELED, "interrupted");
        /* Zero-copy pays off for long runs; short ones are cheaper read
         * into the output buffer than with a flush and a splice each. */
        if (readable >= ZERO_COPY_MIN_BYTES)
            located = q2s_source_locate(source, offset, readable, &fd,
                                        &fd_offset);
        if (located >= ZERO_COPY_MIN_BYTES &&
            q2s_sink_copy_fd(r->sink, fd, fd_offset, located, &done,
                             err) < 0)
            return -1;
        if (done == 0) {
            /* Into a caller's buffer, the input's bytes go straight. */
            uint8_t *room = q2s_sink_room(r->sink, readable);

            if (room) {
                done = readable;
                if (q2s_source_read_data(source, room, (size_t)done, offset,
                                         err) < 0)
                    return -1;
                q2s_sink_filled(r->sink, (size_t)done);
            } else {
                done = readable < r->buffer_bytes ? readable
                                                  : r->buffer_bytes;
                if (q2s_source_read_data(source, r->buffer, (size_t)done,
                                         offset, err) < 0 ||
                    q2s_sink_write(r->sink, r->buffer, (size_t)done,
                                   err) < 0)
                    return -1;
            }
        }
        offset += done;
        readable -= done;
        length -= done;
    }
    return q2s_sink_write_zeros(r->sink, length, err);
}

/* Writes up to *length bytes that pass 1 kept in cache, from offset (below
 * cache->bytes) on: as many as lie together, leaving *length at that.
 * Those in its file go without a copy where the output allows. */
static int write_kept(struct render *r, const struct q2s_cache *cache,
                      uint64_t offset, uint64_t *length,
                      struct q2s_error *err)
{
    struct q2s_cache_span span;
    uint64_t done = 0;

    q2s_cache_locate(cache, offset, &span);
    if (*length > span.length)
        *length = span.length;
    if (span.data)
        return q2s_sink_write_stable(r->sink, span.data, (size_t)*length,
                                     err);
    if (q2s_sink_copy_fd(r->sink, span.fd, span.fd_offset, *length, &done,
                         err) < 0)
        return -1;
    while (done < *length) {
        size_t n = *length - done < r->buffer_bytes
                       ? (size_t)(*length - done) : r->buffer_bytes;

        if (q2s_pread_full(span.fd, r->buffer, n, span.fd_offset + done,
                           "the temporary file", err) < 0 ||
            q2s_sink_write(r->sink, r->buffer, n, err) < 0)
            return -1;
        done += n;
    }
    return 0;
}

/* The bytes of one piece of a stream of reads. */
#define STREAM_PIECE_BYTES (1024 * 1024)

/* The data region from a source that streams its reads (an NBD server):
 * the data extents of the data clusters of [pos, limit) are asked for in
 * order, many requests in flight, and each piece is written as it comes,
 * so that neither the server waits for the output nor the output for a
 * round trip.  What lies between the pieces (holes inside a cluster, the
 * last cluster past the input's end) is written as zeros. */
struct data_stream {
    struct render *r;
    size_t run;              /* of plan->data_clusters, being asked for */
    uint64_t run_input_start, run_input_end;  /* the run in the input */
    uint64_t run_image_start;                 /* and in the image */
    uint64_t input_offset;   /* the next input byte to ask for */
    uint64_t limit;
    uint64_t pos;            /* the image offset after the last written */
    uint64_t reported;
};

static void stream_enter_run(struct data_stream *d, size_t run_index)
{
    const struct q2s_plan *plan = d->r->plan;
    const struct q2s_run *run = &plan->data_clusters.runs[run_index];
    uint32_t bits = plan->geometry.cluster_bits;

    d->run = run_index;
    d->run_input_start = run->start << bits;
    d->run_input_end = (run->start + run->length) << bits;
    d->run_image_start = plan->data_offset + (run->rank << bits);
}

/* q2s_stream's next: the next piece of data of the runs. */
static int stream_next(void *opaque, uint64_t *offset, size_t *length,
                       struct q2s_error *err)
{
    struct data_stream *d = opaque;
    struct q2s_source *source = d->r->source;

    for (;;) {
        uint64_t image, start, end, n;
        int ret;

        if (d->input_offset >= d->run_input_end) {
            if (d->run + 1 >= d->r->plan->data_clusters.count)
                return 0;
            stream_enter_run(d, d->run + 1);
            d->input_offset = d->run_input_start;
        }
        image = d->run_image_start + (d->input_offset - d->run_input_start);
        if (image >= d->limit || d->input_offset >= source->size)
            return 0;
        ret = q2s_source_next_data(source, d->input_offset, &start, &end,
                                   err);
        if (ret <= 0)
            return ret;  /* no data after: the rest is zeros */
        if (start > d->input_offset) {
            d->input_offset = start < d->run_input_end ? start
                                                        : d->run_input_end;
            continue;
        }
        n = (end < d->run_input_end ? end : d->run_input_end) -
            d->input_offset;
        if (n > d->limit - image)
            n = d->limit - image;
        if (n > STREAM_PIECE_BYTES)
            n = STREAM_PIECE_BYTES;
        *offset = d->input_offset;
        *length = (size_t)n;
        d->input_offset += n;
        return 1;
    }
}

/* q2s_stream's consume: zeros up to the piece's place, then the piece. */
static int stream_consume(void *opaque, const uint8_t *buf, uint64_t offset,
                          size_t length, struct q2s_error *err)
{
    struct data_stream *d = opaque;
    const struct q2s_plan *plan = d->r->plan;
    uint32_t bits = plan->geometry.cluster_bits;
    uint64_t rank, image;

    if (!q2s_runs_rank(&plan->data_clusters, offset >> bits, &rank))
        return q2s_error_set(err, ENOTRECOVERABLE, "internal error: input "
                             "offset %llu read for no data cluster",
                             (unsigned long long)offset);
    image = plan->data_offset + (rank << bits) +
            (offset & (plan->geometry.cluster_size - 1));
    if (image < d->pos)
        return q2s_error_set(err, ENOTRECOVERABLE, "internal error: input "
                             "offset %llu read out of order",
                             (unsigned long long)offset);
    if (q2s_sink_write_zeros(d->r->sink, image - d->pos, err) < 0 ||
        q2s_sink_write(d->r->sink, buf, length, err) < 0)
        return -1;
    d->pos = image + length;
    if (d->pos - d->reported >= PROGRESS_STEP_BYTES) {
        report(d->r, d->pos);
        d->reported = d->pos;
    }
    return 0;
}

/* [*pos, limit) of the data region, none of it kept by pass 1, through
 * the source's stream of reads. */
static int stream_data(struct render *r, uint64_t *pos, uint64_t limit,
                       struct q2s_error *err)
{
    const struct q2s_plan *plan = r->plan;
    struct data_stream d = {
        .r = r,
        .limit = limit,
        .pos = *pos,
        .reported = *pos,
    };
    struct q2s_stream stream = {
        .piece_bytes = STREAM_PIECE_BYTES,
        .next = stream_next,
        .consume = stream_consume,
        .opaque = &d,
    };

    stream_enter_run(&d, q2s_runs_select(&plan->data_clusters,
                                         (*pos - plan->data_offset) >>
                                             plan->geometry.cluster_bits));
    d.input_offset = d.run_input_start + (*pos - d.run_image_start);
    if (r->source->ops->read_stream(r->source, &stream, err) < 0 ||
        q2s_sink_write_zeros(r->sink, limit - d.pos, err) < 0)
        return -1;
    *pos = limit;
    report(r, *pos);
    return 0;
}

/* Data clusters stored as they are overlapping [*pos, limit): runs of
 * guest clusters that are contiguous in the input are contiguous in the
 * output too. */
static int render_data(struct render *r, uint64_t *pos, uint64_t limit,
                       struct q2s_error *err)
{
    const struct q2s_plan *plan = r->plan;
    uint32_t bits = plan->geometry.cluster_bits;
    size_t i = q2s_runs_select(&plan->data_clusters,
                               (*pos - plan->data_offset) >> bits);
    /* Data cluster ranks are their places in the data region. */
    uint64_t end_rank = q2s_div_round_up(limit - plan->data_offset,
                                         plan->geometry.cluster_size);
    struct q2s_prefetch prefetch;

    q2s_prefetch_init(&prefetch, r->source, &plan->data_clusters, bits);
    for (; *pos < limit && i < plan->data_clusters.count; i++) {
        const struct q2s_run *run = &plan->data_clusters.runs[i];
        uint64_t run_start = plan->data_offset + (run->rank << bits);
        uint64_t run_end = run_start + (run->length << bits);
        uint64_t input_offset = (run->start << bits) + (*pos - run_start);
        uint64_t stop = run_end < limit ? run_end : limit;

        while (*pos < stop) {
            uint64_t length = stop - *pos < PROGRESS_STEP_BYTES
                                  ? stop - *pos : PROGRESS_STEP_BYTES;

            uint64_t region_pos = *pos - plan->data_offset;

            if (region_pos >= plan->data_cache.bytes &&
                r->source->ops->read_stream && !r->source->map)
                return stream_data(r, pos, limit, err);
            if (region_pos < plan->data_cache.bytes) {
                if (write_kept(r, &plan->data_cache, region_pos, &length,
                               err) < 0)
                    return -1;
            } else {
                q2s_prefetch_ahead(&prefetch, region_pos >> bits, end_rank);
                if (copy_input(r, input_offset, length, err) < 0)
                    return -1;
            }
            *pos += length;
            input_offset += length;
            report(r, *pos);
        }
    }
    if (*pos < limit)
        return q2s_error_set(err, ENOTRECOVERABLE,
                             "internal error: the plan has no data for "
                             "image offset %llu", (unsigned long long)*pos);
    return 0;
}

/* A walk over the compressed clusters in order: where each comes from in
 * the input and goes to in the compressed region. */
struct chunk_walk {
    uint64_t index;
    struct q2s_packing_state state;
    size_t run;  /* the run of plan->compressed_clusters holding index */
};

struct chunk {
    uint64_t guest_cluster;
    uint64_t start;  /* in the compressed region */
    uint32_t bytes;
};

static void walk_from(const struct q2s_plan *plan, uint64_t region_offset,
                      struct chunk_walk *walk)
{
    walk->index = q2s_packing_find(&plan->packing, region_offset,
                                   &walk->state);
    walk->run = q2s_runs_select(&plan->compressed_clusters, walk->index);
}

/* The next compressed cluster, or false after the last. */
static bool walk_next(const struct q2s_plan *plan, struct chunk_walk *walk,
                      struct chunk *chunk)
{
    const struct q2s_runs *set = &plan->compressed_clusters;
    const struct q2s_run *run;

    if (walk->index >= plan->packing.count)
        return false;
    run = &set->runs[walk->run];
    chunk->guest_cluster = run->start + (walk->index - run->rank);
    chunk->bytes = plan->packing.sizes[walk->index];
    chunk->start = q2s_packing_place(&plan->packing, &walk->state,
                                     chunk->bytes);
    walk->index++;
    if (walk->index - run->rank == run->length)
        walk->run++;
    return true;
}

/* Writes the region from *pos on: zeros up to start, then the bytes of
 * data, which lie at [start, start + length); nothing at or past end. */
static int write_region(struct render *r, uint64_t *pos, uint64_t end,
                        uint64_t start, const uint8_t *data, uint64_t length,
                        struct q2s_error *err)
{
    uint64_t stop = start + length < end ? start + length : end;

    if (*pos < start) {
        uint64_t zeros = (start < end ? start : end) - *pos;

        if (q2s_sink_write_zeros(r->sink, zeros, err) < 0)
            return -1;
        *pos += zeros;
    }
    if (*pos < stop) {
        if (q2s_sink_write(r->sink, data + (*pos - start),
                           (size_t)(stop - *pos), err) < 0)
            return -1;
        *pos = stop;
    }
    return 0;
}

/* Reads the input clusters of a batch of compressed clusters, each run of
 * neighbours in one read. */
static int read_batch(struct render *r, struct q2s_batch *batch,
                      const uint64_t *guest_clusters, struct q2s_error *err)
{
    uint32_t bits = r->plan->geometry.cluster_bits;

    for (size_t i = 0, n; i < batch->count; i += n) {
        for (n = 1; i + n < batch->count &&
                    guest_clusters[i + n] == guest_clusters[i] + n;
             n++)
            ;
        if (q2s_source_read_clusters(r->source, batch->input + (i << bits),
                                     n << bits, guest_clusters[i] << bits,
                                     err) < 0)
            return -1;
    }
    return 0;
}

/* Writes what the threads compressed again, checking that it came out as
 * in pass 1. */
static int write_batch(struct render *r, const struct q2s_batch *batch,
                       struct chunk_walk *walk, uint64_t *pos, uint64_t end,
                       struct q2s_error *err)
{
    const struct q2s_plan *plan = r->plan;
    uint32_t cluster_size = plan->geometry.cluster_size;

    for (size_t i = 0; i < batch->count; i++) {
        struct chunk chunk;

        if (!walk_next(plan, walk, &chunk))
            return q2s_error_set(err, ENOTRECOVERABLE,
                                 "internal error: a compressed cluster "
                                 "too many");
        if (batch->result[i] != chunk.bytes)
            return q2s_error_set(err, ESTALE,
                                 "the input changed since it was read: "
                                 "the cluster at offset %llu compresses "
                                 "differently",
                                 (unsigned long long)(chunk.guest_cluster *
                                                      cluster_size));
        if (write_region(r, pos, end, chunk.start,
                         batch->output + i * (size_t)cluster_size,
                         chunk.bytes, err) < 0)
            return -1;
    }
    report(r, plan->compressed_offset + *pos);
    return 0;
}

static int collect_and_write(struct render *r, struct chunk_walk *walk,
                             uint64_t *pos, uint64_t end,
                             struct q2s_error *err)
{
    struct q2s_batch *batch;
    int ret;

    if (q2s_pool_collect(r->pool, &batch, err) < 0)
        return -1;
    if (!batch)
        return 0;
    ret = write_batch(r, batch, walk, pos, end, err);
    q2s_pool_release(r->pool, batch);
    return ret < 0 ? -1 : 1;
}

/* Region bytes [*pos, end) that the cache does not hold: the compressed
 * clusters they overlap are compressed again, in order, on the threads. */
static int recompress(struct render *r, uint64_t *pos, uint64_t end,
                      struct q2s_error *err)
{
    const struct q2s_plan *plan = r->plan;
    struct chunk_walk submit, write;
    uint64_t *guest_clusters;
    size_t capacity;
    struct chunk next;
    bool more;
    int ret = 0;

    if (q2s_pool_new(plan->compression, plan->compression_level,
                     plan->geometry.cluster_size, plan->threads,
                     &r->source->cancel, &r->pool, err) < 0)
        return -1;
    capacity = q2s_pool_batch_clusters(r->pool);
    guest_clusters = calloc(capacity, sizeof *guest_clusters);
    if (!guest_clusters)
        ret = q2s_error_set_errno(err, ENOMEM, "cannot allocate a buffer");
    walk_from(plan, *pos, &submit);
    write = submit;
    more = walk_next(plan, &submit, &next) && next.start < end;
    while (ret == 0 && more) {
        struct q2s_batch *batch = q2s_pool_get(r->pool);

        if (!batch) {
            ret = collect_and_write(r, &write, pos, end, err) < 0 ? -1 : 0;
            continue;
        }
        if (q2s_source_interrupted(r->source)) {
            ret = q2s_error_set(err, ECANCELED, "interrupted");
            break;
        }
        while (more && batch->count < capacity) {
            guest_clusters[batch->count++] = next.guest_cluster;
            more = walk_next(plan, &submit, &next) && next.start < end;
        }
        ret = read_batch(r, batch, guest_clusters, err);
        if (ret == 0)
            q2s_pool_submit(r->pool, batch);
    }
    if (ret == 0)
        while ((ret = collect_and_write(r, &write, pos, end, err)) > 0)
            ;
    free(guest_clusters);
    q2s_pool_free(r->pool);
    r->pool = NULL;
    if (ret < 0)
        return -1;
    return write_region(r, pos, end, end, NULL, 0, err);
}

/* The compressed region overlapping [*pos, r->end): what pass 1 kept from
 * memory, the rest compressed again. */
static int render_compressed(struct render *r, uint64_t *pos,
                             struct q2s_error *err)
{
    const struct q2s_plan *plan = r->plan;
    const struct q2s_cache *cache = &plan->cache;
    uint64_t region_pos = *pos - plan->compressed_offset;
    uint64_t region_end = r->end - plan->compressed_offset;
    int ret = 0;

    while (region_pos < region_end && region_pos < cache->bytes) {
        uint64_t length = region_end - region_pos;

        if (write_kept(r, cache, region_pos, &length, err) < 0)
            return -1;
        region_pos += length;
        report(r, plan->compressed_offset + region_pos);
    }
    if (region_pos < region_end)
        ret = recompress(r, &region_pos, region_end, err);
    *pos = plan->compressed_offset + region_pos;
    return ret;
}

/* Bytes [offset, offset + length) of the image into sink, which the
 * caller set up and frees. */
static int render_range(const struct q2s_plan *plan, struct q2s_source *source,
                        struct q2s_sink *sink, uint64_t offset,
                        uint64_t length, q2s_progress_callback *progress,
                        void *progress_opaque, struct q2s_error *err)
{
    struct render r = {
        .plan = plan,
        .source = source,
        .sink = sink,
        .start = offset,
        .end = offset + length,
        .progress = progress,
        .progress_opaque = progress_opaque,
    };
    uint64_t pos = offset;
    uint64_t metadata_end;
    int ret = -1;

    if (offset > plan->image_size || length > plan->image_size - offset)
        return q2s_error_set(err, EINVAL, "%llu bytes at offset %llu lie "
                             "beyond the end of the image (%llu bytes)",
                             (unsigned long long)length,
                             (unsigned long long)offset,
                             (unsigned long long)plan->image_size);
    if (source->size != plan->geometry.input_size)
        return q2s_error_set(err, EINVAL,
                             "the input is not the one that was scanned");
    /* A range of metadata alone reads nothing, and a caller's buffer is
     * filled without a write: look here, so that no call on a cancelled
     * source succeeds. */
    if (q2s_source_interrupted(source))
        return q2s_error_set(err, ECANCELED, "interrupted");
    if (q2s_source_check_size(source, err) < 0)
        return -1;
    r.buffer_bytes = source->read_bytes;
    if (r.buffer_bytes < plan->geometry.cluster_size)
        r.buffer_bytes = plan->geometry.cluster_size;
    r.buffer = malloc(r.buffer_bytes);
    if (!r.buffer)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate a buffer");
    metadata_end = plan->data_offset < r.end ? plan->data_offset : r.end;
    if (render_metadata(&r, &pos, metadata_end, err) < 0)
        goto out;
    report(&r, pos);
    if (pos < r.end &&
        render_data(&r, &pos,
                    plan->compressed_offset < r.end ? plan->compressed_offset
                                                    : r.end,
                    err) < 0)
        goto out;
    if (pos < r.end && render_compressed(&r, &pos, err) < 0)
        goto out;
    if (q2s_sink_flush(r.sink, err) < 0)
        goto out;
    report(&r, pos);
    ret = 0;
out:
    free(r.buffer);
    return ret;
}

int q2s_render_fd(const struct q2s_plan *plan, struct q2s_source *source,
                  int out_fd, uint64_t offset, uint64_t length,
                  q2s_progress_callback *progress, void *progress_opaque,
                  struct q2s_error *err)
{
    struct q2s_sink sink;
    int ret;

    if (q2s_sink_init(&sink, out_fd, &source->cancel, err) < 0)
        return -1;
    ret = render_range(plan, source, &sink, offset, length, progress,
                       progress_opaque, err);
    q2s_sink_fini(&sink);
    return ret;
}

int q2s_render_memory(const struct q2s_plan *plan, struct q2s_source *source,
                      void *buf, size_t count, uint64_t offset,
                      struct q2s_error *err)
{
    struct q2s_sink sink;
    int ret;

    q2s_sink_init_memory(&sink, buf, count, &source->cancel);
    ret = render_range(plan, source, &sink, offset, count, NULL, NULL, err);
    if (ret == 0 && sink.used != count)
        ret = q2s_error_set(err, ENOTRECOVERABLE, "internal error: %zu of "
                            "%zu bytes rendered", sink.used, count);
    q2s_sink_fini(&sink);
    return ret;
}
