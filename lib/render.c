/* Pass 2: any byte range of the image, from the plan and the input. */
#include <errno.h>
#include <stdlib.h>

#include "error.h"
#include "metadata.h"
#include "plan.h"
#include "sink.h"
#include "source.h"

#define ZERO_COPY_MIN_BYTES (64 * 1024)
/* How much data goes between two progress reports. */
#define PROGRESS_STEP_BYTES (64 * 1024 * 1024)

struct render {
    const struct q2s_plan *plan;
    struct q2s_source *source;
    struct q2s_sink sink;
    uint8_t *buffer;  /* a cluster, or a good read of the source if larger */
    size_t buffer_bytes;
    uint64_t start, end;  /* the range being rendered */
    q2s_progress_fn *progress;
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
        if (q2s_sink_write(&r->sink, r->buffer + from, (size_t)length, err) < 0)
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
            return q2s_error_set(err, "interrupted");
        /* Zero-copy pays off for long runs; short ones are cheaper read
         * into the output buffer than with a flush and a splice each. */
        if (source->ops->locate && readable >= ZERO_COPY_MIN_BYTES)
            located = source->ops->locate(source, offset, readable, &fd,
                                          &fd_offset);
        if (located >= ZERO_COPY_MIN_BYTES &&
            q2s_sink_copy_fd(&r->sink, fd, fd_offset, located, &done,
                             err) < 0)
            return -1;
        if (done == 0) {
            done = readable < r->buffer_bytes ? readable : r->buffer_bytes;
            if (q2s_source_read_data(source, r->buffer, (size_t)done, offset,
                                     err) < 0 ||
                q2s_sink_write(&r->sink, r->buffer, (size_t)done, err) < 0)
                return -1;
        }
        offset += done;
        readable -= done;
        length -= done;
    }
    return q2s_sink_write_zeros(&r->sink, length, err);
}

/* Data clusters overlapping [*pos, r->end): runs of guest clusters that
 * are contiguous in the input are contiguous in the output too. */
static int render_data(struct render *r, uint64_t *pos, struct q2s_error *err)
{
    const struct q2s_plan *plan = r->plan;
    uint32_t bits = plan->geometry.cluster_bits;
    size_t i = q2s_runs_select(&plan->data_clusters,
                               (*pos - plan->data_offset) >> bits);

    for (; *pos < r->end && i < plan->data_clusters.count; i++) {
        const struct q2s_run *run = &plan->data_clusters.runs[i];
        uint64_t run_start = plan->data_offset + (run->rank << bits);
        uint64_t run_end = run_start + (run->length << bits);
        uint64_t input_offset = (run->start << bits) + (*pos - run_start);
        uint64_t stop = run_end < r->end ? run_end : r->end;

        while (*pos < stop) {
            uint64_t length = stop - *pos < PROGRESS_STEP_BYTES
                                  ? stop - *pos : PROGRESS_STEP_BYTES;

            if (copy_input(r, input_offset, length, err) < 0)
                return -1;
            *pos += length;
            input_offset += length;
            report(r, *pos);
        }
    }
    if (*pos < r->end)
        return q2s_error_set(err, "internal error: the plan has no data for "
                             "image offset %llu", (unsigned long long)*pos);
    return 0;
}

int q2s_render(const struct q2s_plan *plan, struct q2s_source *source,
               int out_fd, uint64_t offset, uint64_t length,
               q2s_progress_fn *progress, void *progress_opaque,
               struct q2s_error *err)
{
    struct render r = {
        .plan = plan,
        .source = source,
        .start = offset,
        .end = offset + length,
        .progress = progress,
        .progress_opaque = progress_opaque,
    };
    uint64_t pos = offset;
    uint64_t metadata_end;
    int ret = -1;

    if (offset > plan->image_size || length > plan->image_size - offset)
        return q2s_error_set(err, "bytes %llu to %llu lie beyond the end of "
                             "the image (%llu bytes)",
                             (unsigned long long)offset,
                             (unsigned long long)(offset + length),
                             (unsigned long long)plan->image_size);
    if (source->size != plan->geometry.input_size)
        return q2s_error_set(err, "the input is not the one that was scanned");
    if (source->ops->check_size(source, err) < 0)
        return -1;
    r.buffer_bytes = source->read_bytes;
    if (r.buffer_bytes < plan->geometry.cluster_size)
        r.buffer_bytes = plan->geometry.cluster_size;
    r.buffer = malloc(r.buffer_bytes);
    if (!r.buffer)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate a buffer");
    if (q2s_sink_init(&r.sink, out_fd, source->interrupted, err) < 0) {
        free(r.buffer);
        return -1;
    }
    metadata_end = plan->data_offset < r.end ? plan->data_offset : r.end;
    if (render_metadata(&r, &pos, metadata_end, err) < 0)
        goto out;
    report(&r, pos);
    if (pos < r.end && render_data(&r, &pos, err) < 0)
        goto out;
    if (q2s_sink_flush(&r.sink, err) < 0)
        goto out;
    report(&r, pos);
    ret = 0;
out:
    q2s_sink_fini(&r.sink);
    free(r.buffer);
    return ret;
}
