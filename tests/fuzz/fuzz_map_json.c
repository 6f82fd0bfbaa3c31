/* Allocation maps in JSON (lib/export/map_json.c: qemu-img map, rbd
 * diff): what is accepted is extents that are never empty and end before
 * 2^63; the sorted view is sorted, disjoint and covers exactly the same
 * bytes; the virtual-size check takes the map's end and refuses a byte
 * less; and the map written back as qemu-img map JSON reads as itself. */
#include <errno.h>
#include <inttypes.h>

#include "export/map.h"
#include "export/map_json.h"
#include "export/options.h"
#include "fuzz.h"

/* map as qemu-img map --output=json prints it; the caller frees it. */
static char *as_qemu_img_map(const struct q2s_map *map, size_t *length)
{
    size_t capacity = 3 + map->count * 96;
    char *text = malloc(capacity);
    size_t used = 0;

    FUZZ_CHECK(text != NULL);
    used += (size_t)snprintf(text + used, capacity - used, "[");
    for (size_t i = 0; i < map->count; i++)
        used += (size_t)snprintf(text + used, capacity - used,
                                 "%s{\"start\": %" PRIu64 ", \"length\": %"
                                 PRIu64 ", \"data\": true}", i ? ",\n" : "",
                                 map->extents[i].offset,
                                 map->extents[i].length);
    used += (size_t)snprintf(text + used, capacity - used, "]");
    FUZZ_CHECK(used < capacity);
    *length = used;
    return text;
}

static int by_offset(const void *a, const void *b)
{
    const struct q2s_extent *x = a, *y = b;

    return (x->offset > y->offset) - (x->offset < y->offset);
}

static uint64_t end_of(const struct q2s_extent *e)
{
    return e->offset + e->length;
}

/* The sorted view holds the same bytes as the map: swept in order of
 * offset, the map's extents fall into the sorted view's one after the
 * other (as q2s_map_find() finds them), each starting where the ones
 * before it reached or earlier, and together they reach exactly from
 * the start to the end of each. */
static void check_coverage(const struct q2s_map *map,
                           const struct q2s_map *sorted)
{
    struct q2s_extent *in_order = malloc((map->count + 1) *
                                         sizeof *in_order);
    size_t current = SIZE_MAX;
    uint64_t reach = 0;

    FUZZ_CHECK(in_order != NULL);
    if (map->count)
        memcpy(in_order, map->extents, map->count * sizeof *in_order);
    qsort(in_order, map->count, sizeof *in_order, by_offset);
    for (size_t i = 0; i < map->count; i++) {
        const struct q2s_extent *e = &in_order[i];
        size_t at = q2s_map_find(sorted, e->offset);

        FUZZ_CHECK(at < sorted->count);
        if (at != current) {
            FUZZ_CHECK(current == SIZE_MAX ? at == 0 : at == current + 1);
            if (current != SIZE_MAX)
                FUZZ_CHECK(reach == end_of(&sorted->extents[current]));
            FUZZ_CHECK(e->offset == sorted->extents[at].offset);
            current = at;
            reach = e->offset;
        }
        FUZZ_CHECK(e->offset <= reach);
        if (end_of(e) > reach)
            reach = end_of(e);
    }
    if (current == SIZE_MAX) {
        FUZZ_CHECK(sorted->count == 0);
    } else {
        FUZZ_CHECK(current == sorted->count - 1);
        FUZZ_CHECK(reach == end_of(&sorted->extents[current]));
    }
    free(in_order);
}

static void check_sorted(const struct q2s_map *map)
{
    struct q2s_error err = { .code = 0 };
    struct q2s_map sorted;

    FUZZ_CHECK(q2s_map_sorted(&sorted, map, &err) == 0);
    for (size_t i = 0; i < sorted.count; i++) {
        const struct q2s_extent *e = &sorted.extents[i];

        FUZZ_CHECK(e->length > 0);
        /* Extents that touch are merged, so a gap lies between any two. */
        if (i > 0)
            FUZZ_CHECK(e->offset > sorted.extents[i - 1].offset +
                                       sorted.extents[i - 1].length);
    }
    check_coverage(map, &sorted);
    q2s_map_fini(&sorted);
}

static void check_virtual_size(const struct q2s_map *map)
{
    struct q2s_error err = { .code = 0 };
    uint64_t end = q2s_map_end(map);

    FUZZ_CHECK(q2s_check_map_size(map, end, "the input's", &err) == 0);
    if (end > 0) {
        FUZZ_CHECK(q2s_check_map_size(map, end - 1, "the input's", &err) <
                   0);
        fuzz_check_message(err.message);
    }
}

static void check_round_trip(const struct q2s_map *map)
{
    struct q2s_error err = { .code = 0 };
    struct q2s_map *again;
    size_t length;
    char *text = as_qemu_img_map(map, &length);

    FUZZ_CHECK(q2s_parse_map_json(text, length, &again, &err) == 0);
    FUZZ_CHECK(again->count == map->count);
    for (size_t i = 0; i < map->count; i++) {
        FUZZ_CHECK(again->extents[i].offset == map->extents[i].offset);
        FUZZ_CHECK(again->extents[i].length == map->extents[i].length);
    }
    q2s_map_destroy(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct q2s_error err = { .code = 0 };
    struct q2s_map *map = (struct q2s_map *)&err;

    if (q2s_parse_map_json((const char *)data, size, &map, &err) < 0) {
        FUZZ_CHECK(map == NULL);
        FUZZ_CHECK(err.code == EPROTO || err.code == ENOMEM);
        fuzz_check_message(err.message);
        return 0;
    }
    for (size_t i = 0; i < map->count; i++) {
        FUZZ_CHECK(map->extents[i].length > 0);
        FUZZ_CHECK(map->extents[i].offset + map->extents[i].length <=
                   INT64_MAX);
        FUZZ_CHECK(map->extents[i].offset + map->extents[i].length >
                   map->extents[i].offset);
    }
    check_sorted(map);
    check_virtual_size(map);
    check_round_trip(map);
    q2s_map_destroy(map);
    return 0;
}
