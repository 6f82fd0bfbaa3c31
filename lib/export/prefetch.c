#include "export/prefetch.h"

/* Enough for a device to stay busy while 4 MiB are compared or written,
 * little enough to stay in the page cache until read. */
#define PREFETCH_BYTES (16 * 1024 * 1024)

void q2s_prefetch_init(struct q2s_prefetch *prefetch,
                       struct q2s_source *source, const struct q2s_runs *runs,
                       uint32_t cluster_bits)
{
    *prefetch = (struct q2s_prefetch){
        .source = source,
        .runs = runs,
        .cluster_bits = cluster_bits,
    };
}

void q2s_prefetch_ahead(struct q2s_prefetch *prefetch, uint64_t rank,
                        uint64_t end_rank)
{
    const struct q2s_runs *runs = prefetch->runs;
    uint64_t ahead = PREFETCH_BYTES >> prefetch->cluster_bits;
    uint64_t total = q2s_runs_total(runs);
    uint64_t want;
    size_t i;

    if (!prefetch->source->ops->prefetch)
        return;
    if (end_rank < total)
        total = end_rank;
    /* Asked in batches of half the distance, not a cluster at a time. */
    if (prefetch->asked_rank > rank && prefetch->asked_rank - rank >= ahead / 2)
        return;
    /* Within a run the kernel's own read-ahead does better (asked for
     * with WILLNEED, a block device's pages come a few at a time): only
     * the runs after the one being read. */
    if (prefetch->asked_rank <= rank) {
        i = q2s_runs_select(runs, rank);
        prefetch->asked_rank = i < runs->count
                                   ? runs->runs[i].rank + runs->runs[i].length
                                   : rank;
    }
    want = rank + ahead < total ? rank + ahead : total;
    for (i = q2s_runs_select(runs, prefetch->asked_rank);
         i < runs->count && prefetch->asked_rank < want; i++) {
        const struct q2s_run *run = &runs->runs[i];
        uint64_t first = run->start + (prefetch->asked_rank - run->rank);
        uint64_t count = run->rank + run->length - prefetch->asked_rank;

        if (count > want - prefetch->asked_rank)
            count = want - prefetch->asked_rank;
        q2s_source_prefetch(prefetch->source,
                            first << prefetch->cluster_bits,
                            count << prefetch->cluster_bits);
        prefetch->asked_rank += count;
    }
}
