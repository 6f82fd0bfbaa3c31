#include "export/runs.h"

#include <errno.h>
#include <stdlib.h>

#include "common/search.h"
#include "common/vector.h"

void q2s_runs_init(struct q2s_runs *set)
{
    set->runs = NULL;
    set->count = 0;
    set->capacity = 0;
}

void q2s_runs_free(struct q2s_runs *set)
{
    free(set->runs);
    q2s_runs_init(set);
}

static uint64_t run_end(const struct q2s_run *run)
{
    return run->start + run->length;
}

int q2s_runs_add(struct q2s_runs *set, uint64_t start, uint64_t length)
{
    uint64_t end;

    if (length == 0)
        return 0;
    if (__builtin_add_overflow(start, length, &end)) {
        errno = EINVAL;
        return -1;
    }
    if (set->count > 0) {
        struct q2s_run *last = &set->runs[set->count - 1];

        if (start < last->start) {
            errno = EINVAL;
            return -1;
        }
        if (start <= run_end(last)) {
            if (end > run_end(last))
                last->length = end - last->start;
            return 0;
        }
    }
    if (Q2S_VECTOR_RESERVE(set->runs, set->count, set->capacity, 1) < 0)
        return -1;
    set->runs[set->count] = (struct q2s_run){
        .start = start,
        .length = length,
        .rank = q2s_runs_total(set),
    };
    set->count++;
    return 0;
}

uint64_t q2s_runs_total(const struct q2s_runs *set)
{
    if (set->count == 0)
        return 0;
    return set->runs[set->count - 1].rank + set->runs[set->count - 1].length;
}

/* What the two searches compare with: a member, or a rank. */
struct runs_key {
    const struct q2s_run *runs;
    uint64_t key;
};

static bool ends_after_member(const void *ctx, size_t i)
{
    const struct runs_key *k = ctx;

    return run_end(&k->runs[i]) > k->key;
}

static bool ends_after_rank(const void *ctx, size_t i)
{
    const struct runs_key *k = ctx;

    return k->runs[i].rank + k->runs[i].length > k->key;
}

size_t q2s_runs_search(const struct q2s_runs *set, uint64_t x)
{
    struct runs_key k = { set->runs, x };

    return q2s_search_first(set->count, ends_after_member, &k);
}

bool q2s_runs_rank(const struct q2s_runs *set, uint64_t x, uint64_t *rank)
{
    size_t i = q2s_runs_search(set, x);

    if (i == set->count || x < set->runs[i].start)
        return false;
    *rank = set->runs[i].rank + (x - set->runs[i].start);
    return true;
}

size_t q2s_runs_select(const struct q2s_runs *set, uint64_t rank)
{
    struct runs_key k = { set->runs, rank };

    return q2s_search_first(set->count, ends_after_rank, &k);
}

void q2s_runs_builder_init(struct q2s_runs_builder *builder)
{
    q2s_runs_init(&builder->unsorted);
}

void q2s_runs_builder_free(struct q2s_runs_builder *builder)
{
    q2s_runs_free(&builder->unsorted);
}

int q2s_runs_builder_add(struct q2s_runs_builder *builder, uint64_t start,
                         uint64_t length)
{
    struct q2s_runs *unsorted = &builder->unsorted;
    uint64_t end;

    /* Most runs come in order: those merge as in a set. */
    if (unsorted->count == 0 ||
        start >= unsorted->runs[unsorted->count - 1].start)
        return q2s_runs_add(unsorted, start, length);
    if (length == 0)
        return 0;
    if (__builtin_add_overflow(start, length, &end)) {
        errno = EINVAL;
        return -1;
    }
    if (Q2S_VECTOR_RESERVE(unsorted->runs, unsorted->count,
                           unsorted->capacity, 1) < 0)
        return -1;
    unsorted->runs[unsorted->count++] = (struct q2s_run){ start, length, 0 };
    return 0;
}

static int compare_starts(const void *a, const void *b)
{
    const struct q2s_run *x = a, *y = b;

    return x->start < y->start ? -1 : x->start > y->start;
}

int q2s_runs_builder_finish(struct q2s_runs_builder *builder,
                            struct q2s_runs *set)
{
    struct q2s_runs *unsorted = &builder->unsorted;
    int ret = 0;

    if (unsorted->count > 0)
        qsort(unsorted->runs, unsorted->count, sizeof *unsorted->runs,
              compare_starts);
    /* Sorted by start, each run starts at or after the last merged one's
     * start, which is what q2s_runs_add() merges. */
    for (size_t i = 0; i < unsorted->count && ret == 0; i++)
        ret = q2s_runs_add(set, unsorted->runs[i].start,
                           unsorted->runs[i].length);
    q2s_runs_builder_free(builder);
    return ret;
}
