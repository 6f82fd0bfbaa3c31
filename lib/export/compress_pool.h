/* Compressing clusters on several threads.
 *
 * The caller fills a batch with clusters and submits it; worker threads
 * share out its clusters; the caller collects batches back in the order it
 * submitted them.  Each cluster is compressed on its own, so the bytes do
 * not depend on the number of threads.
 */
#ifndef Q2S_COMPRESS_POOL_H
#define Q2S_COMPRESS_POOL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cancel.h"
#include "error.h"

struct q2s_batch {
    uint64_t first_cluster;  /* the caller's, for its own bookkeeping */
    size_t count;            /* clusters in the batch */
    uint8_t *input;          /* count clusters, one after the other */
    uint8_t *output;         /* cluster i's compressed bytes at i clusters */
    /* For each cluster: 0 if it is all zeros, the cluster size if it does
     * not compress, else its compressed size. */
    uint32_t *result;
};

struct q2s_pool;

/* Compresses on up to threads threads: fewer when a batch, which the
 * memory budget bounds whatever the thread count, has work for fewer.
 * When cancel says so, a collect that is waiting fails with
 * "interrupted"; cancel must outlive the pool. */
int q2s_pool_new(enum q2s_compression type, int level, uint32_t cluster_size,
                 uint32_t threads, const struct q2s_cancel *cancel,
                 struct q2s_pool **result, struct q2s_error *err);
/* Stops the threads; batches in flight are dropped. */
void q2s_pool_free(struct q2s_pool *pool);

/* Clusters that a batch holds. */
size_t q2s_pool_batch_clusters(const struct q2s_pool *pool);

/* An empty batch to fill, or NULL if all are in flight: then collect one. */
struct q2s_batch *q2s_pool_get(struct q2s_pool *pool);
void q2s_pool_submit(struct q2s_pool *pool, struct q2s_batch *batch);
/* Waits for the oldest batch submitted and not yet collected: 0 with it in
 * *batch, or NULL if there is none; -1 if compressing it failed. */
int q2s_pool_collect(struct q2s_pool *pool, struct q2s_batch **batch,
                     struct q2s_error *err);
/* Gives a collected batch back. */
void q2s_pool_release(struct q2s_pool *pool, struct q2s_batch *batch);

#endif
