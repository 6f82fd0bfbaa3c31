#include "runs.h"

#include <errno.h>
#include <stdlib.h>

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
    if (set->count == set->capacity) {
        size_t capacity = set->capacity ? set->capacity * 2 : 64;
        struct q2s_run *runs;

        if (capacity > SIZE_MAX / sizeof *runs) {
            errno = ENOMEM;
            return -1;
        }
        runs = realloc(set->runs, capacity * sizeof *runs);
        if (!runs)
            return -1;
        set->runs = runs;
        set->capacity = capacity;
    }
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

size_t q2s_runs_search(const struct q2s_runs *set, uint64_t x)
{
    size_t low = 0, high = set->count;

    while (low < high) {
        size_t mid = low + (high - low) / 2;

        if (run_end(&set->runs[mid]) <= x)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
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
    size_t low = 0, high = set->count;

    while (low < high) {
        size_t mid = low + (high - low) / 2;

        if (set->runs[mid].rank + set->runs[mid].length <= rank)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}
