/* Allocation maps: the list of extents as it came, and its sorted, merged
 * view. */
#include "export/map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/search.h"
#include "common/vector.h"

void q2s_map_init(struct q2s_map *map)
{
    map->extents = NULL;
    map->count = 0;
    map->capacity = 0;
}

void q2s_map_fini(struct q2s_map *map)
{
    free(map->extents);
    q2s_map_init(map);
}

struct q2s_map *q2s_map_create(void)
{
    struct q2s_map *map = malloc(sizeof *map);

    if (map)
        q2s_map_init(map);
    return map;
}

void q2s_map_destroy(struct q2s_map *map)
{
    if (map) {
        q2s_map_fini(map);
        free(map);
    }
}

static uint64_t extent_end(const struct q2s_extent *extent)
{
    return extent->offset + extent->length;
}

int q2s_map_append(struct q2s_map *map, uint64_t offset, uint64_t length,
                   struct q2s_error *err)
{
    uint64_t end;

    if (length == 0)
        return q2s_error_set(err, EINVAL, "empty map extent at offset %llu",
                             (unsigned long long)offset);
    if (__builtin_add_overflow(offset, length, &end))
        return q2s_error_set(err, EINVAL, "map extent at offset %llu: its "
                             "length %llu goes past 2^64",
                             (unsigned long long)offset,
                             (unsigned long long)length);
    if (Q2S_VECTOR_RESERVE(map->extents, map->count, map->capacity, 1) < 0)
        return q2s_error_set_errno(err, ENOMEM, "cannot grow the map");
    map->extents[map->count++] = (struct q2s_extent){ offset, length };
    return 0;
}

int q2s_map_copy(struct q2s_map *copy, const struct q2s_map *map,
                 struct q2s_error *err)
{
    q2s_map_init(copy);
    if (map->count == 0)
        return 0;
    if (Q2S_VECTOR_RESERVE(copy->extents, copy->count, copy->capacity,
                           map->count) < 0)
        return q2s_error_set_errno(err, ENOMEM, "cannot copy the map");
    memcpy(copy->extents, map->extents, map->count * sizeof *map->extents);
    copy->count = map->count;
    return 0;
}

uint64_t q2s_map_end(const struct q2s_map *map)
{
    uint64_t end = 0;

    for (size_t i = 0; i < map->count; i++)
        if (extent_end(&map->extents[i]) > end)
            end = extent_end(&map->extents[i]);
    return end;
}

static int by_offset(const void *a, const void *b)
{
    const struct q2s_extent *x = a, *y = b;

    return (x->offset > y->offset) - (x->offset < y->offset);
}

int q2s_map_sorted(struct q2s_map *sorted, const struct q2s_map *map,
                   struct q2s_error *err)
{
    size_t kept = 0;

    if (q2s_map_copy(sorted, map, err) < 0)
        return -1;
    /* An empty map has no array to give qsort. */
    if (sorted->count > 1)
        qsort(sorted->extents, sorted->count, sizeof *sorted->extents,
              by_offset);
    for (size_t i = 0; i < sorted->count; i++) {
        struct q2s_extent *extent = &sorted->extents[i];
        struct q2s_extent *last = kept ? &sorted->extents[kept - 1] : NULL;

        if (last && extent->offset <= extent_end(last)) {
            if (extent_end(extent) > extent_end(last))
                last->length = extent_end(extent) - last->offset;
        } else {
            sorted->extents[kept++] = *extent;
        }
    }
    sorted->count = kept;
    return 0;
}

struct map_position {
    const struct q2s_extent *extents;
    uint64_t offset;
};

static bool ends_after(const void *ctx, size_t i)
{
    const struct map_position *at = ctx;

    return extent_end(&at->extents[i]) > at->offset;
}

size_t q2s_map_find(const struct q2s_map *sorted, uint64_t offset)
{
    return q2s_search_first(sorted->count, ends_after,
                            &(struct map_position){ sorted->extents,
                                                    offset });
}
