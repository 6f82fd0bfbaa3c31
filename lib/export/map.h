/* Allocation maps: lists of extents where an input's data may lie.
 *
 * A map keeps its extents in the order they came (the XAPI fork walks
 * them in that order); q2s_map_sorted() gives the sorted, merged view
 * that reading needs. */
#ifndef Q2S_MAP_H
#define Q2S_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct q2s_extent {
    uint64_t offset;
    uint64_t length;  /* never 0; offset + length does not overflow */
};

struct q2s_map {
    struct q2s_extent *extents;
    size_t count;
    size_t capacity;
};

void q2s_map_init(struct q2s_map *map);
void q2s_map_fini(struct q2s_map *map);

/* An empty map on the heap, NULL if out of memory; and its end (NULL is
 * allowed). */
struct q2s_map *q2s_map_create(void);
void q2s_map_destroy(struct q2s_map *map);

/* Appends [offset, offset + length): EINVAL for length 0 or an end that
 * overflows, ENOMEM. */
int q2s_map_append(struct q2s_map *map, uint64_t offset, uint64_t length,
                   struct q2s_error *err);

/* *copy (initialised or not) becomes a copy of map. */
int q2s_map_copy(struct q2s_map *copy, const struct q2s_map *map,
                 struct q2s_error *err);

/* The largest end of an extent; 0 for an empty map. */
uint64_t q2s_map_end(const struct q2s_map *map);

/* *sorted (initialised or not) becomes the extents of map sorted by
 * offset, with those that overlap or touch merged into one. */
int q2s_map_sorted(struct q2s_map *sorted, const struct q2s_map *map,
                   struct q2s_error *err);

/* In a sorted map: the index of the first extent that ends after offset,
 * or sorted->count if none does. */
size_t q2s_map_find(const struct q2s_map *sorted, uint64_t offset);

#endif
