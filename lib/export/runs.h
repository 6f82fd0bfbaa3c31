/* A set of non-negative integers stored as sorted, disjoint runs.
 *
 * The plan uses it for the allocated guest clusters and for the allocated
 * L2 tables, so that memory grows with the data, not the virtual size.
 * Each run also records its rank: how many members come before it, which
 * turns "where does this cluster go in the output" into a binary search.
 */
#ifndef Q2S_RUNS_H
#define Q2S_RUNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct q2s_run {
    uint64_t start;
    uint64_t length;  /* never 0 */
    uint64_t rank;    /* members in the runs before this one */
};

struct q2s_runs {
    struct q2s_run *runs;
    size_t count;
    size_t capacity;
};

void q2s_runs_init(struct q2s_runs *set);
void q2s_runs_free(struct q2s_runs *set);

/* Adds [start, start + length).  Runs must come in increasing order; a run
 * that overlaps or touches the last one is merged into it.  Returns -1 with
 * errno set (ENOMEM, or EINVAL for out-of-order or overflowing input). */
int q2s_runs_add(struct q2s_runs *set, uint64_t start, uint64_t length);

/* Number of members. */
uint64_t q2s_runs_total(const struct q2s_runs *set);

/* Index of the first run that ends after x (so that contains x, or lies
 * wholly after it); set->count if there is none. */
size_t q2s_runs_search(const struct q2s_runs *set, uint64_t x);

/* Whether x is a member; if so *rank is the number of members below x. */
bool q2s_runs_rank(const struct q2s_runs *set, uint64_t x, uint64_t *rank);

/* Index of the run that holds the member of the given rank (0-based);
 * set->count if rank >= total. */
size_t q2s_runs_select(const struct q2s_runs *set, uint64_t rank);

/* Runs that come in any order, overlapping or not (the XAPI fork's rules
 * allocate clusters as its maps list them): collected here, then sorted
 * and merged into a set. */
struct q2s_runs_builder {
    struct q2s_runs unsorted;  /* in the order added; rank unused */
};

void q2s_runs_builder_init(struct q2s_runs_builder *builder);
void q2s_runs_builder_free(struct q2s_runs_builder *builder);

/* Adds [start, start + length), in any order; -1 with errno set (ENOMEM,
 * or EINVAL for an end that overflows). */
int q2s_runs_builder_add(struct q2s_runs_builder *builder, uint64_t start,
                         uint64_t length);

/* Adds what was collected to *set, which must be empty, and frees the
 * builder; -1 with errno ENOMEM. */
int q2s_runs_builder_finish(struct q2s_runs_builder *builder,
                            struct q2s_runs *set);

#endif
