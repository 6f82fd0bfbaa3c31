/* The source interface: the checks every caller goes through, and the
 * small helpers that inputs share. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fdio.h"
#include "error.h"
#include "export/source.h"

int q2s_stat_input(const char *path, struct stat *st, struct q2s_error *err)
{
    if (stat(path, st) < 0)
        return q2s_error_set_errno(err, errno, "%s", path);
    if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
        return q2s_error_set(err, S_ISDIR(st->st_mode) ? EISDIR : EINVAL,
                             "%s: %s", path,
                             S_ISDIR(st->st_mode)
                                 ? "is a directory"
                                 : "is not a regular file or a block device");
    return 0;
}

int q2s_pread_full(int fd, void *buf, size_t length, uint64_t offset,
                   const char *name, struct q2s_error *err)
{
    size_t done;
    int ret = q2s_pread_all(fd, buf, length, offset, &done);

    /* The message names where the read stopped. */
    offset += done;
    if (ret < 0)
        return q2s_error_set_errno(err, errno, "%s: read error at offset "
                                   "%llu", name, (unsigned long long)offset);
    if (ret > 0)
        return q2s_error_set(err, ESTALE,
                             "%s: unexpected end of input at offset "
                             "%llu (did it shrink while being read?)",
                             name, (unsigned long long)offset);
    return 0;
}

/* An extent a source reported, from offset on: the scan trusts extents to
 * move forward and stay in the input (a wrong one would loop, or read past
 * the end).  1 if it does, -1 with EPROTO if not. */
static int check_extent(const struct q2s_source *source, uint64_t offset,
                        uint64_t start, uint64_t end, const char *kind,
                        struct q2s_error *err)
{
    if (start < offset || end <= start || end > source->size)
        return q2s_error_set(err, EPROTO, "the input reported a bad %s "
                             "extent %llu to %llu", kind,
                             (unsigned long long)start,
                             (unsigned long long)end);
    return 1;
}

/* ops->next_data, checked. */
static int backend_next_data(struct q2s_source *source, uint64_t offset,
                             uint64_t *start, uint64_t *end,
                             struct q2s_error *err)
{
    int found = source->ops->next_data(source, offset, start, end, err);

    return found > 0 ? check_extent(source, offset, *start, *end, "data", err)
                     : found;
}

int q2s_source_dirty_clusters(struct q2s_source *source,
                              uint32_t cluster_bits, uint64_t guest_clusters,
                              struct q2s_runs *dirty, struct q2s_error *err)
{
    uint64_t offset = 0, start, end;
    int found;

    if (!source->ops->next_dirty)
        return q2s_error_set(err, EINVAL, "a dirty bitmap can only be read "
                             "from an NBD input (an NBD URI, or an image in "
                             "another format through qemu-nbd)");
    while ((found = source->ops->next_dirty(source, offset, &start, &end,
                                            err)) > 0) {
        uint64_t first = start >> cluster_bits;
        uint64_t last = ((end - 1) >> cluster_bits) + 1;

        if (check_extent(source, offset, start, end, "dirty", err) < 0)
            return -1;
        if (q2s_source_interrupted(source))
            return q2s_error_set(err, ECANCELED, "interrupted");
        if (last > guest_clusters)
            last = guest_clusters;
        /* A cluster partly dirty is dirty; the next extent may share it,
         * which q2s_runs_add merges. */
        if (first < last && q2s_runs_add(dirty, first, last - first) < 0)
            return q2s_error_set_errno(err, errno, "cannot record the dirty "
                                       "clusters");
        offset = end;
    }
    return found;
}

int q2s_source_next_data(struct q2s_source *source, uint64_t offset,
                         uint64_t *start, uint64_t *end,
                         struct q2s_error *err)
{
    const struct q2s_map *map = source->map;

    if (!map)
        return backend_next_data(source, offset, start, end, err);
    /* The first data extent that meets an extent of the map.  Each turn
     * returns or moves offset past an extent of the map. */
    for (;;) {
        size_t i = q2s_map_find(map, offset);
        const struct q2s_extent *extent;
        uint64_t extent_end;
        int found;

        if (i == map->count)
            return 0;
        extent = &map->extents[i];
        extent_end = extent->offset + extent->length;
        if (offset < extent->offset)
            offset = extent->offset;
        found = backend_next_data(source, offset, start, end, err);
        if (found <= 0)
            return found;
        if (*start < extent_end) {
            if (*end > extent_end)
                *end = extent_end;
            return 1;
        }
        offset = *start;
    }
}

uint64_t q2s_source_locate(struct q2s_source *source, uint64_t offset,
                           uint64_t length, int *fd, uint64_t *fd_offset)
{
    const struct q2s_map *map = source->map;

    if (!source->ops->locate)
        return 0;
    if (map) {
        size_t i = q2s_map_find(map, offset);
        const struct q2s_extent *extent;

        /* Only bytes that may be read: the caller reads the rest through
         * q2s_source_read_data(), which fills the holes with zeros. */
        if (i == map->count)
            return 0;
        extent = &map->extents[i];
        if (extent->offset > offset)
            return 0;
        if (extent->offset + extent->length - offset < length)
            length = extent->offset + extent->length - offset;
    }
    return source->ops->locate(source, offset, length, fd, fd_offset);
}

void q2s_source_prefetch(struct q2s_source *source, uint64_t offset,
                         uint64_t length)
{
    /* With a map, a read ahead could read where the map says not to. */
    if (!source->ops->prefetch || source->map || offset >= source->size)
        return;
    if (length > source->size - offset)
        length = source->size - offset;
    source->ops->prefetch(source, offset, length);
}

int q2s_source_use_map(struct q2s_source *source, const struct q2s_map *map,
                       struct q2s_error *err)
{
    struct q2s_map *sorted = NULL;

    if (map) {
        for (size_t i = 0; i < map->count; i++) {
            const struct q2s_extent *extent = &map->extents[i];

            if (extent->offset + extent->length > source->size)
                return q2s_error_set(
                    err, EINVAL, "the map's extent at offset %llu (%llu "
                    "bytes) reaches past the end of the input (%llu bytes)",
                    (unsigned long long)extent->offset,
                    (unsigned long long)extent->length,
                    (unsigned long long)source->size);
        }
        sorted = q2s_map_create();
        if (!sorted)
            return q2s_error_set_errno(err, ENOMEM, "cannot copy the map");
        if (q2s_map_sorted(sorted, map, err) < 0) {
            q2s_map_destroy(sorted);
            return -1;
        }
    }
    q2s_map_destroy(source->map);
    source->map = sorted;
    return 0;
}

int q2s_source_check_size(struct q2s_source *source, struct q2s_error *err)
{
    return source->ops->check_size(source, err);
}

int q2s_source_read_data(struct q2s_source *source, uint8_t *buf,
                         size_t length, uint64_t offset,
                         struct q2s_error *err)
{
    uint64_t end = offset + length;

    while (offset < end) {
        uint64_t start = end, stop = end;
        int found = q2s_source_next_data(source, offset, &start, &stop, err);

        if (found < 0)
            return -1;
        if (found == 0 || start > end)
            start = end;
        if (stop > end)
            stop = end;
        memset(buf, 0, (size_t)(start - offset));
        buf += start - offset;
        if (start < stop &&
            source->ops->read(source, buf, (size_t)(stop - start), start,
                              err) < 0)
            return -1;
        buf += stop > start ? stop - start : 0;
        offset = stop > start ? stop : start;
    }
    return 0;
}

int q2s_source_read_clusters(struct q2s_source *source, uint8_t *buf,
                             size_t length, uint64_t offset,
                             struct q2s_error *err)
{
    size_t readable = 0;

    if (offset < source->size)
        readable = source->size - offset < length
                       ? (size_t)(source->size - offset) : length;
    if (readable > 0 &&
        q2s_source_read_data(source, buf, readable, offset, err) < 0)
        return -1;
    memset(buf + readable, 0, length - readable);
    return 0;
}

/* Whether read lies below the source's size in one extent of data. */
static int all_data(struct q2s_source *source, const struct q2s_read *read,
                    struct q2s_error *err)
{
    uint64_t start, end;
    int found;

    if (read->offset >= source->size ||
        source->size - read->offset < read->length)
        return 0;
    found = q2s_source_next_data(source, read->offset, &start, &end, err);
    if (found <= 0)
        return found;
    return start == read->offset && end - start >= read->length;
}

int q2s_source_read_batch(struct q2s_source *source,
                          const struct q2s_read *reads, size_t count,
                          struct q2s_error *err)
{
    struct q2s_read whole[Q2S_READ_BATCH_MAX];
    size_t wholes = 0;

    for (size_t i = 0; i < count; i++) {
        int found = 0;

        /* A batch of one is a read. */
        if (source->ops->read_batch && count > 1 &&
            wholes < Q2S_READ_BATCH_MAX) {
            found = all_data(source, &reads[i], err);
            if (found < 0)
                return -1;
        }
        if (found)
            whole[wholes++] = reads[i];
        else if (q2s_source_read_clusters(source, reads[i].buf,
                                          reads[i].length, reads[i].offset,
                                          err) < 0)
            return -1;
    }
    if (wholes == 0)
        return 0;
    return source->ops->read_batch(source, whole, wholes, err);
}

void q2s_source_close(struct q2s_source *source)
{
    struct q2s_map *map;

    if (!source)
        return;
    /* The map is the interface's, whatever the kind of input; close frees
     * the source itself. */
    map = source->map;
    source->ops->close(source);
    q2s_map_destroy(map);
}
