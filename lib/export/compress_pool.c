#include "export/compress_pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/zero.h"
#include "error.h"
#include "format/qcow2_compress.h"

/* A batch holds two claims (see CLAIM_BYTES) for every thread, so that
 * each has its share, and at least this much input, so that the caller's
 * reads stay large... */
#define BATCH_MIN_BYTES (4 * 1024 * 1024)
/* ...but all the batches' buffers together, input and output, fit this
 * budget, whatever the thread count: with batches sized by the threads
 * alone, -j 1024 at 2 MiB clusters had 4 GiB batches and took the whole
 * input into memory.  64 MiB is what two threads at 2 MiB clusters
 * already used (batches of 2 x 2 x 2 MiB), so two threads keep the
 * batches they had at every cluster size.  It is a fixed amount, not a
 * share of the --compress-cache budget: the cache is output kept for
 * pass 2, which may well be 0, not room to work in. */
#define BATCHES_BUDGET_BYTES (64 * 1024 * 1024)
/* How often a caller waiting for a batch looks whether it was interrupted:
 * a signal does not end a wait on a condition variable. */
#define INTERRUPT_POLL_NS (50 * 1000 * 1000)
/* One batch being filled, one being drained, two for the threads. */
#define BATCHES 4
/* A thread takes about this much input at once, so that small clusters do
 * not make it take the lock for each. */
#define CLAIM_BYTES (64 * 1024)
/* Input bytes a batch may hold: its input and its output buffers, in each
 * of the BATCHES, within the budget. */
#define BATCH_MAX_BYTES (BATCHES_BUDGET_BYTES / (2 * BATCHES))
_Static_assert(BATCH_MAX_BYTES >= BATCH_MIN_BYTES &&
               BATCH_MAX_BYTES >= 2 * Q2S_MAX_CLUSTER_SIZE,
               "the budget holds the smallest batches, and batches of two "
               "of the largest clusters");

enum batch_state { BATCH_FREE, BATCH_FILLING, BATCH_SUBMITTED, BATCH_COLLECTED };

struct slot {
    struct q2s_batch batch;
    enum batch_state state;
    size_t claimed;   /* clusters handed to threads */
    size_t finished;  /* clusters done */
    bool failed;
};

struct worker {
    struct q2s_pool *pool;
    struct q2s_compressor *compressor;
    pthread_t thread;
    bool started;
};

struct q2s_pool {
    uint32_t cluster_size;
    size_t batch_clusters;
    size_t claim_clusters;
    struct slot slots[BATCHES];
    /* Submitted batches, oldest first: a ring of slot indices. */
    size_t queue[BATCHES];
    size_t queue_head, queue_length;

    pthread_mutex_t lock;
    pthread_cond_t work;  /* clusters to take, or stopping */
    pthread_cond_t done;  /* a batch finished */
    bool stopping;         /* read without the lock too: atomic */
    /* Workers still in worker_main, and whether the caller left them to
     * finish alone: then the last one out frees the pool. */
    uint32_t workers_running;
    bool abandoned;
    struct q2s_error error;  /* the first failure of a thread */
    const struct q2s_cancel *cancel;

    struct worker *workers;
    uint32_t worker_count;
};

/* The oldest submitted batch with clusters left to take, or NULL. */
static struct slot *next_work(struct q2s_pool *pool)
{
    for (size_t i = 0; i < pool->queue_length; i++) {
        struct slot *slot = &pool->slots[pool->queue[(pool->queue_head + i) %
                                                     BATCHES]];

        if (slot->claimed < slot->batch.count)
            return slot;
    }
    return NULL;
}

static bool compress_one(struct worker *worker, struct q2s_batch *batch,
                         size_t i, struct q2s_error *err)
{
    uint32_t cluster_size = worker->pool->cluster_size;
    const uint8_t *in = batch->input + i * cluster_size;
    int bytes;

    if (q2s_is_zero(in, cluster_size)) {
        batch->result[i] = 0;
        return true;
    }
    bytes = q2s_compress_cluster(worker->compressor, in,
                                 batch->output + i * cluster_size, err);
    if (bytes < 0)
        return false;
    batch->result[i] = bytes == 0 ? cluster_size : (uint32_t)bytes;
    return true;
}

static void pool_destroy(struct q2s_pool *pool);

static bool stopping(struct q2s_pool *pool)
{
    return __atomic_load_n(&pool->stopping, __ATOMIC_ACQUIRE);
}

static void *worker_main(void *opaque)
{
    struct worker *worker = opaque;
    struct q2s_pool *pool = worker->pool;
    bool last_out;

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        struct slot *slot;
        struct q2s_error err;
        size_t first, count;
        bool ok = true;

        slot = NULL;
        while (!stopping(pool) && !(slot = next_work(pool)))
            pthread_cond_wait(&pool->work, &pool->lock);
        if (!slot)
            break;
        first = slot->claimed;
        count = slot->batch.count - first;
        if (count > pool->claim_clusters)
            count = pool->claim_clusters;
        slot->claimed += count;
        pthread_mutex_unlock(&pool->lock);

        /* A pool that is stopping wants no more of this claim. */
        for (size_t i = first; ok && i < first + count && !stopping(pool);
             i++)
            ok = compress_one(worker, &slot->batch, i, &err);

        pthread_mutex_lock(&pool->lock);
        if (!ok && !slot->failed) {
            slot->failed = true;
            pool->error = err;
        }
        slot->finished += count;
        if (slot->finished == slot->batch.count)
            pthread_cond_broadcast(&pool->done);
    }
    last_out = --pool->workers_running == 0 && pool->abandoned;
    pthread_mutex_unlock(&pool->lock);
    if (last_out)
        pool_destroy(pool);
    return NULL;
}

static int start_workers(struct q2s_pool *pool, enum q2s_compression type,
                         int level, uint32_t threads, struct q2s_error *err)
{
    sigset_t all, old;
    int ret = 0;

    pool->workers = calloc(threads, sizeof *pool->workers);
    if (!pool->workers)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate threads");
    /* Signals are for the caller's thread, whose blocking calls they
     * interrupt: the workers inherit a mask that blocks them all. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (uint32_t i = 0; i < threads; i++) {
        struct worker *worker = &pool->workers[i];
        int error;

        pool->worker_count++;
        worker->pool = pool;
        if (q2s_compressor_new(type, level, pool->cluster_size,
                               &worker->compressor, err) < 0) {
            ret = -1;
            break;
        }
        pthread_mutex_lock(&pool->lock);
        pool->workers_running++;
        pthread_mutex_unlock(&pool->lock);
        error = pthread_create(&worker->thread, NULL, worker_main, worker);
        if (error != 0) {
            pthread_mutex_lock(&pool->lock);
            pool->workers_running--;
            pthread_mutex_unlock(&pool->lock);
            ret = q2s_error_set_errno(err, error, "cannot start a thread");
            break;
        }
        worker->started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ret;
}

/* Timed waits on it are not moved by changes of the wall clock. */
static void init_monotonic_cond(pthread_cond_t *cond)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

int q2s_pool_new(enum q2s_compression type, int level, uint32_t cluster_size,
                 uint32_t threads, const struct q2s_cancel *cancel,
                 struct q2s_pool **result, struct q2s_error *err)
{
    struct q2s_pool *pool;
    size_t claim_bytes, batch_bytes, clusters, claims;

    if (threads == 0)
        return q2s_error_set(err, EINVAL, "at least one compression thread is "
                             "needed");
    pool = calloc(1, sizeof *pool);
    if (!pool)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate threads");
    /* Clusters and both bounds are powers of two: a batch is whole claims
     * of whole clusters. */
    claim_bytes = cluster_size >= CLAIM_BYTES ? cluster_size : CLAIM_BYTES;
    batch_bytes = threads > BATCH_MAX_BYTES / (2 * claim_bytes)
                      ? BATCH_MAX_BYTES : 2 * threads * claim_bytes;
    if (batch_bytes < BATCH_MIN_BYTES)
        batch_bytes = BATCH_MIN_BYTES;
    clusters = batch_bytes / cluster_size;
    /* No more threads than a batch has claims: with that many, the
     * batches submitted after the oldest one are there for whichever
     * finishes first, so none waits for work while the caller keeps up;
     * more would only add compressors, hundreds of KiB each. */
    claims = batch_bytes / claim_bytes;
    if (threads > claims)
        threads = (uint32_t)claims;
    pool->cluster_size = cluster_size;
    pool->cancel = cancel;
    pool->batch_clusters = clusters;
    pool->claim_clusters = claim_bytes / cluster_size;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work, NULL);
    init_monotonic_cond(&pool->done);
    for (size_t i = 0; i < BATCHES; i++) {
        struct q2s_batch *batch = &pool->slots[i].batch;

        if (posix_memalign((void **)&batch->input, 4096, batch_bytes) != 0 ||
            !(batch->output = malloc(batch_bytes)) ||
            !(batch->result = calloc(clusters, sizeof *batch->result))) {
            q2s_pool_free(pool);
            return q2s_error_set_errno(err, ENOMEM, "cannot allocate "
                                       "compression buffers");
        }
    }
    if (start_workers(pool, type, level, threads, err) < 0) {
        q2s_pool_free(pool);
        return -1;
    }
    *result = pool;
    return 0;
}

void q2s_pool_free(struct q2s_pool *pool)
{
    bool leave;

    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    __atomic_store_n(&pool->stopping, true, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->work);
    /* Interrupted: a thread may be inside one cluster for seconds (zstd
     * at level 22 on 2 MiB), which no call can cut short.  The caller
     * goes on at once; the last thread out frees the pool. */
    leave = q2s_cancelled(pool->cancel) &&
            pool->workers_running > 0;
    if (leave) {
        pool->abandoned = true;
        for (uint32_t i = 0; i < pool->worker_count; i++) {
            if (pool->workers[i].started)
                pthread_detach(pool->workers[i].thread);
        }
    }
    pthread_mutex_unlock(&pool->lock);
    if (leave)
        return;
    for (uint32_t i = 0; i < pool->worker_count; i++) {
        if (pool->workers[i].started)
            pthread_join(pool->workers[i].thread, NULL);
    }
    pool_destroy(pool);
}

/* Frees the pool once no worker runs. */
static void pool_destroy(struct q2s_pool *pool)
{
    for (uint32_t i = 0; i < pool->worker_count; i++)
        q2s_compressor_free(pool->workers[i].compressor);
    free(pool->workers);
    for (size_t i = 0; i < BATCHES; i++) {
        free(pool->slots[i].batch.input);
        free(pool->slots[i].batch.output);
        free(pool->slots[i].batch.result);
    }
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->work);
    pthread_cond_destroy(&pool->done);
    free(pool);
}

size_t q2s_pool_batch_clusters(const struct q2s_pool *pool)
{
    return pool->batch_clusters;
}

static struct slot *slot_of(struct q2s_batch *batch)
{
    return (struct slot *)(void *)batch;  /* the batch is a slot's first field */
}

struct q2s_batch *q2s_pool_get(struct q2s_pool *pool)
{
    /* Only this thread moves slots out of BATCH_FREE and BATCH_COLLECTED. */
    for (size_t i = 0; i < BATCHES; i++) {
        struct slot *slot = &pool->slots[i];

        if (slot->state == BATCH_FREE) {
            slot->state = BATCH_FILLING;
            slot->batch.count = 0;
            return &slot->batch;
        }
    }
    return NULL;
}

void q2s_pool_submit(struct q2s_pool *pool, struct q2s_batch *batch)
{
    struct slot *slot = slot_of(batch);

    pthread_mutex_lock(&pool->lock);
    slot->state = BATCH_SUBMITTED;
    slot->claimed = slot->finished = 0;
    slot->failed = false;
    pool->queue[(pool->queue_head + pool->queue_length) % BATCHES] =
        (size_t)(slot - pool->slots);
    pool->queue_length++;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->lock);
}

int q2s_pool_collect(struct q2s_pool *pool, struct q2s_batch **batch,
                     struct q2s_error *err)
{
    struct slot *slot;
    int ret = 0;

    pthread_mutex_lock(&pool->lock);
    if (pool->queue_length == 0) {
        pthread_mutex_unlock(&pool->lock);
        *batch = NULL;
        return 0;
    }
    slot = &pool->slots[pool->queue[pool->queue_head]];
    while (slot->finished < slot->batch.count) {
        struct timespec deadline;

        if (q2s_cancelled(pool->cancel)) {
            pthread_mutex_unlock(&pool->lock);
            *batch = NULL;
            return q2s_error_set(err, ECANCELED, "interrupted");
        }
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += INTERRUPT_POLL_NS;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&pool->done, &pool->lock, &deadline);
    }
    pool->queue_head = (pool->queue_head + 1) % BATCHES;
    pool->queue_length--;
    slot->state = BATCH_COLLECTED;
    if (slot->failed) {
        *err = pool->error;
        ret = -1;
    }
    pthread_mutex_unlock(&pool->lock);
    *batch = &slot->batch;
    return ret;
}

void q2s_pool_release(struct q2s_pool *pool, struct q2s_batch *batch)
{
    struct slot *slot = slot_of(batch);

    pthread_mutex_lock(&pool->lock);
    slot->state = BATCH_FREE;
    pthread_mutex_unlock(&pool->lock);
}
