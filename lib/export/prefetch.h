/* Reading ahead along runs of clusters: while one part of the input is
 * read and handled, the next few MiB of the runs are being read by the
 * device (posix_fadvise WILLNEED for files and block devices).  It pays
 * where each read waits for a device, as through a loop device or
 * XAPI's tapdisk: the data of a map is scattered in small runs. */
#ifndef Q2S_PREFETCH_H
#define Q2S_PREFETCH_H

#include <stdint.h>

#include "export/runs.h"
#include "export/source.h"

struct q2s_prefetch {
    struct q2s_source *source;
    const struct q2s_runs *runs;  /* of clusters, read in this order */
    uint32_t cluster_bits;
    uint64_t asked_rank;          /* clusters of runs asked for so far */
};

void q2s_prefetch_init(struct q2s_prefetch *prefetch,
                       struct q2s_source *source, const struct q2s_runs *runs,
                       uint32_t cluster_bits);

/* To be called before reading from the member of runs of the given rank
 * on: keeps the next 16 MiB or so asked for, below end_rank (where the
 * caller stops reading). */
void q2s_prefetch_ahead(struct q2s_prefetch *prefetch, uint64_t rank,
                        uint64_t end_rank);

#endif
