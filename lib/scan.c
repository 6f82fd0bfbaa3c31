#include "scan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "zero.h"

static uint64_t align_down(uint64_t n, uint64_t alignment)
{
    return n & ~(alignment - 1);
}

struct scan {
    struct q2s_source *source;
    const struct q2s_geometry *geometry;
    uint8_t *buffer;
    size_t buffer_bytes;
    struct q2s_runs *data_clusters;
    q2s_progress_fn *progress;
    void *progress_opaque;
};

/* Reads [start, end) -- cluster-aligned, start below the input size -- and
 * records its clusters that are not all zeros. */
static int scan_extent(struct scan *scan, uint64_t start, uint64_t end,
                       struct q2s_error *err)
{
    struct q2s_source *source = scan->source;
    uint32_t cluster_size = scan->geometry->cluster_size;

    for (uint64_t pos = start; pos < end;) {
        uint64_t length = end - pos < scan->buffer_bytes ? end - pos
                                                         : scan->buffer_bytes;
        uint64_t readable = source->size - pos < length ? source->size - pos
                                                        : length;

        if (q2s_source_interrupted(source))
            return q2s_error_set(err, "interrupted");
        /* Only the data in the window: a cluster that an extent only
         * partly covers has its holes filled with zeros, not read. */
        if (q2s_source_read_data(source, scan->buffer, (size_t)readable,
                                 pos, err) < 0)
            return -1;
        /* The last cluster may extend past the end of the input. */
        memset(scan->buffer + readable, 0, (size_t)(length - readable));
        for (uint64_t off = 0; off < length; off += cluster_size) {
            if (!q2s_is_zero(scan->buffer + off, cluster_size) &&
                q2s_runs_add(scan->data_clusters,
                             (pos + off) >> scan->geometry->cluster_bits,
                             1) < 0)
                return q2s_error_set_errno(err, errno, "cannot record the "
                                           "data clusters");
        }
        pos += readable;
        if (scan->progress)
            scan->progress(scan->progress_opaque, Q2S_PHASE_SCAN, pos,
                           source->size);
        pos += length - readable;
    }
    return 0;
}

int q2s_scan(struct q2s_source *source, const struct q2s_geometry *geometry,
             struct q2s_runs *data_clusters, q2s_progress_fn *progress,
             void *progress_opaque, struct q2s_error *err)
{
    uint32_t cluster_size = geometry->cluster_size;
    struct scan scan = {
        .source = source,
        .geometry = geometry,
        /* Whole clusters, as many as make a good read for the source. */
        .buffer_bytes = source->read_bytes > cluster_size
                            ? source->read_bytes & ~((size_t)cluster_size - 1)
                            : cluster_size,
        .data_clusters = data_clusters,
        .progress = progress,
        .progress_opaque = progress_opaque,
    };
    uint64_t offset = 0;
    int ret = 0;

    if (posix_memalign((void **)&scan.buffer, 4096, scan.buffer_bytes) != 0)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate the scan "
                                   "buffer");
    while (offset < source->size) {
        uint64_t start, end;

        ret = source->ops->next_data(source, offset, &start, &end, err);
        if (ret <= 0)
            break;
        ret = 0;
        if (start < offset || end <= start || end > source->size) {
            ret = q2s_error_set(err, "the input reported a bad data extent "
                                "%llu to %llu", (unsigned long long)start,
                                (unsigned long long)end);
            break;
        }
        /* Whole clusters, and the next search starts after the last one,
         * so that an extent ending mid-cluster does not make the next one
         * read that cluster again. */
        start = align_down(start, cluster_size);
        end = align_down(end + cluster_size - 1, cluster_size);
        ret = scan_extent(&scan, start, end, err);
        if (ret < 0)
            break;
        offset = end;
    }
    free(scan.buffer);
    if (ret == 0 && progress)
        progress(progress_opaque, Q2S_PHASE_SCAN, source->size, source->size);
    return ret < 0 ? -1 : 0;
}
