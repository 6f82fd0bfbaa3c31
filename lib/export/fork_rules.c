#include "export/fork_rules.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/search.h"
#include "common/vector.h"

/* A run of clusters as the fork computes it from an extent, first to last
 * inclusive: int(start / cs) to int((start + length) / cs) - 1. */
struct fork_interval {
    uint64_t first;
    uint64_t last;
};

/* The fork's interval of an extent; false when it is empty. */
static bool fork_interval(const struct q2s_extent *extent,
                          uint32_t cluster_bits, struct fork_interval *iv)
{
    uint64_t end_cluster = (extent->offset + extent->length) >> cluster_bits;

    iv->first = extent->offset >> cluster_bits;
    if (end_cluster <= iv->first)
        return false;
    iv->last = end_cluster - 1;
    return true;
}

/* The cluster an extent ends in partway, which the fork's interval leaves
 * out; false if it ends on a cluster boundary. */
static bool partial_end_cluster(const struct q2s_extent *extent,
                                uint32_t cluster_bits, uint64_t *cluster)
{
    uint64_t end = extent->offset + extent->length;

    if ((end & ((UINT64_C(1) << cluster_bits) - 1)) == 0)
        return false;
    *cluster = end >> cluster_bits;
    return true;
}

static int no_memory(struct q2s_error *err)
{
    return q2s_error_set_errno(err, ENOMEM, "cannot record the clusters of "
                               "the maps");
}

/* The members of *set found in no fork interval of map: the partial end
 * clusters that the fork loses. */
static int partial_clusters(const struct q2s_map *map, uint32_t cluster_bits,
                            const struct q2s_runs *fork_clusters,
                            struct q2s_runs *set, struct q2s_error *err)
{
    struct q2s_runs_builder builder;
    uint64_t rank;

    q2s_runs_builder_init(&builder);
    for (size_t i = 0; i < map->count; i++) {
        uint64_t cluster;

        if (partial_end_cluster(&map->extents[i], cluster_bits, &cluster) &&
            !q2s_runs_rank(fork_clusters, cluster, &rank) &&
            q2s_runs_builder_add(&builder, cluster, 1) < 0) {
            q2s_runs_builder_free(&builder);
            return no_memory(err);
        }
    }
    return q2s_runs_builder_finish(&builder, set) < 0 ? no_memory(err) : 0;
}

/* The union of the fork intervals of map. */
static int fork_clusters_of(const struct q2s_map *map, uint32_t cluster_bits,
                            struct q2s_runs *set, struct q2s_error *err)
{
    struct q2s_runs_builder builder;
    struct fork_interval iv;

    q2s_runs_builder_init(&builder);
    for (size_t i = 0; i < map->count; i++) {
        if (fork_interval(&map->extents[i], cluster_bits, &iv) &&
            q2s_runs_builder_add(&builder, iv.first,
                                 iv.last - iv.first + 1) < 0) {
            q2s_runs_builder_free(&builder);
            return no_memory(err);
        }
    }
    return q2s_runs_builder_finish(&builder, set) < 0 ? no_memory(err) : 0;
}

/* Adds the members of set below limit. */
static int add_below(struct q2s_runs_builder *builder,
                     const struct q2s_runs *set, uint64_t limit)
{
    for (size_t i = 0; i < set->count; i++) {
        const struct q2s_run *run = &set->runs[i];

        if (run->start >= limit)
            break;
        if (q2s_runs_builder_add(builder, run->start,
                                 run->start + run->length > limit
                                     ? limit - run->start
                                     : run->length) < 0)
            return -1;
    }
    return 0;
}

/* The partial clusters of both maps (those of base_map may be NULL) that
 * no fork interval of their own map has, below guest_clusters. */
static int missed_clusters(const struct q2s_map *input_map,
                           const struct q2s_runs *input_fork,
                           const struct q2s_map *base_map,
                           const struct q2s_runs *base_fork,
                           uint32_t cluster_bits, uint64_t guest_clusters,
                           struct q2s_runs *to_check, struct q2s_error *err)
{
    struct q2s_runs input_partial, base_partial;
    struct q2s_runs_builder builder;
    int ret = -1;

    q2s_runs_init(&input_partial);
    q2s_runs_init(&base_partial);
    q2s_runs_builder_init(&builder);
    if (partial_clusters(input_map, cluster_bits, input_fork, &input_partial,
                         err) < 0 ||
        (base_map && partial_clusters(base_map, cluster_bits, base_fork,
                                      &base_partial, err) < 0))
        goto out;
    if (add_below(&builder, &input_partial, guest_clusters) < 0 ||
        add_below(&builder, &base_partial, guest_clusters) < 0 ||
        q2s_runs_builder_finish(&builder, to_check) < 0) {
        no_memory(err);
        goto out;
    }
    ret = 0;
out:
    q2s_runs_builder_free(&builder);
    q2s_runs_free(&input_partial);
    q2s_runs_free(&base_partial);
    return ret;
}

int q2s_fork_mapped_clusters(const struct q2s_map *map, uint32_t cluster_bits,
                             uint64_t guest_clusters,
                             struct q2s_runs *allocated,
                             struct q2s_runs *to_check,
                             struct q2s_error *err)
{
    struct q2s_runs fork_clusters;
    struct q2s_runs_builder builder;
    int ret = -1;

    q2s_runs_init(&fork_clusters);
    q2s_runs_builder_init(&builder);
    if (fork_clusters_of(map, cluster_bits, &fork_clusters, err) < 0 ||
        missed_clusters(map, &fork_clusters, NULL, NULL, cluster_bits,
                        guest_clusters, to_check, err) < 0)
        goto out;
    if (add_below(&builder, &fork_clusters, guest_clusters) < 0 ||
        q2s_runs_builder_finish(&builder, allocated) < 0) {
        no_memory(err);
        goto out;
    }
    ret = 0;
out:
    q2s_runs_builder_free(&builder);
    q2s_runs_free(&fork_clusters);
    return ret;
}

/* One bit per cluster of the base's intervals below guest_clusters, in
 * pages allocated when first set: a hostile map may name huge intervals,
 * of which the walk only touches the clusters the input's map lists. */
#define PAGE_BITS (UINT64_C(1) << 18)

struct lazy_bits {
    uint8_t **pages;
    size_t page_count;
};

static bool bit_get(const struct lazy_bits *bits, uint64_t bit)
{
    const uint8_t *page = bits->pages[bit / PAGE_BITS];

    return page && (page[(bit % PAGE_BITS) / 8] >> (bit % 8) & 1);
}

static int bit_set(struct lazy_bits *bits, uint64_t bit)
{
    uint8_t **page = &bits->pages[bit / PAGE_BITS];

    if (!*page && !(*page = calloc(1, PAGE_BITS / 8)))
        return -1;
    (*page)[(bit % PAGE_BITS) / 8] |= (uint8_t)(1u << (bit % 8));
    return 0;
}

static void bits_free(struct lazy_bits *bits)
{
    for (size_t i = 0; i < bits->page_count; i++)
        free(bits->pages[i]);
    free(bits->pages);
}

/* The fork's Interval: the base's intervals sorted by first cluster.  A
 * cluster taken out is "removed"; where the fork splits [a, b] at c into
 * [a, c] and [c + 1, b], a "cut" is recorded after c.  The piece holding a
 * cluster then ends at the nearest removed cluster or cut, or at its
 * interval's ends, which is what the fork's list of pieces holds. */
struct base_set {
    struct fork_interval *intervals;
    uint64_t *first_bit;  /* of each interval */
    size_t count;
    uint64_t guest_clusters;
    struct lazy_bits removed, cut;
};

static int compare_firsts(const void *a, const void *b)
{
    const struct fork_interval *x = a, *y = b;

    return x->first < y->first ? -1 : x->first > y->first;
}

static void base_set_free(struct base_set *set)
{
    free(set->intervals);
    free(set->first_bit);
    bits_free(&set->removed);
    bits_free(&set->cut);
}

static int base_set_init(struct base_set *set, const struct q2s_map *map,
                         uint32_t cluster_bits, uint64_t guest_clusters,
                         struct q2s_error *err)
{
    uint64_t bits = 0;
    size_t pages;

    *set = (struct base_set){ .guest_clusters = guest_clusters };
    set->intervals = calloc(map->count ? map->count : 1,
                            sizeof *set->intervals);
    set->first_bit = calloc(map->count ? map->count : 1,
                            sizeof *set->first_bit);
    if (!set->intervals || !set->first_bit)
        return no_memory(err);
    for (size_t i = 0; i < map->count; i++)
        if (fork_interval(&map->extents[i], cluster_bits,
                          &set->intervals[set->count]))
            set->count++;
    /* Python's sort, by first cluster; overlapping intervals would make
     * the fork's binary search miss pieces, and its output wrong. */
    qsort(set->intervals, set->count, sizeof *set->intervals,
          compare_firsts);
    for (size_t i = 0; i < set->count; i++) {
        const struct fork_interval *iv = &set->intervals[i];

        if (i > 0 && iv->first <= set->intervals[i - 1].last)
            return q2s_error_set(err, EPROTO, "the base's map has "
                                 "overlapping extents at cluster %llu",
                                 (unsigned long long)iv->first);
        set->first_bit[i] = bits;
        if (iv->first < guest_clusters)
            bits += (iv->last < guest_clusters ? iv->last + 1
                                               : guest_clusters) - iv->first;
    }
    pages = (size_t)(bits / PAGE_BITS + 1);
    set->removed.pages = calloc(pages, sizeof *set->removed.pages);
    set->cut.pages = calloc(pages, sizeof *set->cut.pages);
    if (!set->removed.pages || !set->cut.pages)
        return no_memory(err);
    set->removed.page_count = set->cut.page_count = pages;
    return 0;
}

struct cluster_key {
    const struct fork_interval *intervals;
    uint64_t cluster;
};

static bool ends_at_or_after(const void *ctx, size_t i)
{
    const struct cluster_key *k = ctx;

    return k->intervals[i].last >= k->cluster;
}

/* The interval holding cluster, or set->count. */
static size_t base_set_find(const struct base_set *set, uint64_t cluster)
{
    struct cluster_key key = { set->intervals, cluster };
    size_t i = q2s_search_first(set->count, ends_at_or_after, &key);

    return i < set->count && set->intervals[i].first <= cluster ? i
                                                               : set->count;
}

/* The walk's step for one cluster of the input's map (below
 * guest_clusters): 1 if the fork compares it, 0 if it allocates it or
 * leaves it in the set, -1 without memory. */
static int base_set_visit(struct base_set *set, uint64_t cluster,
                          bool *allocate)
{
    size_t i = base_set_find(set, cluster);
    const struct fork_interval *iv;
    uint64_t bit;
    bool piece_starts, piece_ends;

    *allocate = false;
    if (i == set->count) {
        *allocate = true;
        return 0;
    }
    iv = &set->intervals[i];
    bit = set->first_bit[i] + (cluster - iv->first);
    if (bit_get(&set->removed, bit)) {
        *allocate = true;
        return 0;
    }
    piece_starts = cluster == iv->first || bit_get(&set->removed, bit - 1) ||
                   bit_get(&set->cut, bit - 1);
    piece_ends = cluster == iv->last ||
                 (cluster + 1 < set->guest_clusters &&
                  bit_get(&set->removed, bit + 1)) ||
                 bit_get(&set->cut, bit);
    /* Shrunk from either end, or deleted: out of the set, and compared.
     * Split: it stays in the left piece (the fork's right = cluster), to
     * be allocated with the rest of the set whatever the comparison. */
    if (piece_starts || piece_ends)
        return bit_set(&set->removed, bit) < 0 ? -1 : 1;
    return bit_set(&set->cut, bit) < 0 ? -1 : 0;
}

/* Allocates what is left of the set below guest_clusters: runs of bits
 * not removed, a page that was never touched at once. */
static int base_set_rest(const struct base_set *set,
                         struct q2s_runs_builder *allocated)
{
    for (size_t i = 0; i < set->count; i++) {
        const struct fork_interval *iv = &set->intervals[i];
        uint64_t end = iv->last < set->guest_clusters ? iv->last + 1
                                                      : set->guest_clusters;
        uint64_t cluster = iv->first;

        while (cluster < end) {
            uint64_t bit = set->first_bit[i] + (cluster - iv->first);
            uint64_t untouched = PAGE_BITS - bit % PAGE_BITS;

            if (set->removed.pages[bit / PAGE_BITS]) {
                untouched = 1;
                if (bit_get(&set->removed, bit)) {
                    cluster++;
                    continue;
                }
            }
            if (untouched > end - cluster)
                untouched = end - cluster;
            if (q2s_runs_builder_add(allocated, cluster, untouched) < 0)
                return -1;
            cluster += untouched;
        }
    }
    return 0;
}

/* One cluster of the input's map, as the fork's loop takes it. */
static int walk_cluster(struct base_set *set, uint64_t cluster,
                        uint64_t base_clusters,
                        struct q2s_runs_builder *allocated,
                        struct q2s_runs_builder *to_compare)
{
    bool allocate = cluster >= base_clusters;
    int compared = 0;

    if (!allocate && (compared = base_set_visit(set, cluster, &allocate)) < 0)
        return -1;
    if (allocate)
        return q2s_runs_builder_add(allocated, cluster, 1);
    return compared ? q2s_runs_builder_add(to_compare, cluster, 1) : 0;
}

int q2s_fork_walk(const struct q2s_map *input_map,
                  const struct q2s_map *base_map, uint32_t cluster_bits,
                  uint64_t guest_clusters, uint64_t base_clusters,
                  struct q2s_runs *allocated, struct q2s_runs *to_compare,
                  struct q2s_runs *to_check, struct q2s_error *err)
{
    struct q2s_runs_builder allocated_builder, compare_builder;
    struct q2s_runs input_fork, base_fork;
    struct base_set set;
    struct fork_interval iv;
    int ret = -1;

    q2s_runs_builder_init(&allocated_builder);
    q2s_runs_builder_init(&compare_builder);
    q2s_runs_init(&input_fork);
    q2s_runs_init(&base_fork);
    if (base_set_init(&set, base_map, cluster_bits, guest_clusters,
                      err) < 0 ||
        fork_clusters_of(input_map, cluster_bits, &input_fork, err) < 0 ||
        fork_clusters_of(base_map, cluster_bits, &base_fork, err) < 0 ||
        missed_clusters(input_map, &input_fork, base_map, &base_fork,
                        cluster_bits, guest_clusters, to_check, err) < 0)
        goto out;
    /* The fork's loop, in its map's order; what lies past the guest
     * clusters would overflow its bitmaps. */
    for (size_t i = 0; i < input_map->count; i++) {
        if (!fork_interval(&input_map->extents[i], cluster_bits, &iv))
            continue;
        for (uint64_t c = iv.first; c <= iv.last && c < guest_clusters; c++)
            if (walk_cluster(&set, c, base_clusters, &allocated_builder,
                             &compare_builder) < 0)
                goto nomem;
    }
    if (base_set_rest(&set, &allocated_builder) < 0 ||
        q2s_runs_builder_finish(&allocated_builder, allocated) < 0 ||
        q2s_runs_builder_finish(&compare_builder, to_compare) < 0)
        goto nomem;
    ret = 0;
    goto out;
nomem:
    no_memory(err);
out:
    q2s_runs_builder_free(&allocated_builder);
    q2s_runs_builder_free(&compare_builder);
    q2s_runs_free(&input_fork);
    q2s_runs_free(&base_fork);
    base_set_free(&set);
    return ret;
}
