#include "import/decompress_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "format/qcow2_decompress.h"

/* Jobs per thread in flight: enough that no thread waits for the reader
 * while a burst of small compressed clusters goes by. */
#define JOBS_PER_THREAD 16

struct decompress_pool {
    uint32_t cluster_size;
    unsigned thread_count;     /* 0: inline */
    pthread_t *threads;
    struct qcow2_decompressor **decompressors;  /* one per thread */
    pthread_mutex_t lock;
    pthread_cond_t work_ready;  /* for the threads */
    pthread_cond_t job_done;    /* for the caller */
    struct decompress_job *queue_head, *queue_tail;  /* waiting */
    struct decompress_job *done;                     /* finished */
    struct decompress_job *free_jobs;
    unsigned in_flight;   /* submitted, not yet taken */
    unsigned max_in_flight;
    bool stopping;
};

static void run_job(struct qcow2_decompressor *d, struct decompress_job *job)
{
    job->status = qcow2_decompress_cluster(d, job->input, job->input_length,
                                           job->output, &job->err);
    free(job->input);
    job->input = NULL;
}

static void *worker(void *opaque)
{
    struct decompress_pool *pool = opaque;
    struct qcow2_decompressor *d = NULL;

    pthread_mutex_lock(&pool->lock);
    /* Each thread takes the next decompressor as its own. */
    for (unsigned i = 0; i < pool->thread_count; i++) {
        if (pool->decompressors[i]) {
            d = pool->decompressors[i];
            pool->decompressors[i] = NULL;
            break;
        }
    }
    for (;;) {
        struct decompress_job *job;

        while (!pool->queue_head && !pool->stopping)
            pthread_cond_wait(&pool->work_ready, &pool->lock);
        if (pool->stopping)
            break;
        job = pool->queue_head;
        pool->queue_head = job->next;
        if (!pool->queue_head)
            pool->queue_tail = NULL;
        pthread_mutex_unlock(&pool->lock);
        run_job(d, job);
        pthread_mutex_lock(&pool->lock);
        job->next = pool->done;
        pool->done = job;
        pthread_cond_signal(&pool->job_done);
    }
    pthread_mutex_unlock(&pool->lock);
    qcow2_decompressor_free(d);
    return NULL;
}

int decompress_pool_new(uint8_t compression_type, uint32_t cluster_size,
                        unsigned threads, struct decompress_pool **result,
                        struct q2s_error *err)
{
    struct decompress_pool *pool = calloc(1, sizeof *pool);
    unsigned decompressors = threads > 1 ? threads : 1;
    unsigned started = 0;

    if (!pool)
        return q2s_error_set(err, ENOMEM, "out of memory");
    pool->cluster_size = cluster_size;
    pool->thread_count = threads > 1 ? threads : 0;
    pool->max_in_flight = decompressors * JOBS_PER_THREAD;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work_ready, NULL);
    pthread_cond_init(&pool->job_done, NULL);
    pool->decompressors = calloc(decompressors, sizeof *pool->decompressors);
    if (!pool->decompressors) {
        q2s_error_set(err, ENOMEM, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < decompressors; i++) {
        if (qcow2_decompressor_new(compression_type, cluster_size,
                                   &pool->decompressors[i], err) < 0)
            goto fail;
    }
    if (pool->thread_count) {
        pool->threads = calloc(pool->thread_count, sizeof *pool->threads);
        if (!pool->threads) {
            q2s_error_set(err, ENOMEM, "out of memory");
            goto fail;
        }
        for (; started < pool->thread_count; started++) {
            int ret = pthread_create(&pool->threads[started], NULL, worker,
                                     pool);

            if (ret) {
                q2s_error_set_errno(err, ret, "cannot start a thread");
                goto fail;
            }
        }
    }
    *result = pool;
    return 0;

fail:
    pool->thread_count = started;
    decompress_pool_free(pool);
    return -1;
}

static void free_list(struct decompress_job *job)
{
    while (job) {
        struct decompress_job *next = job->next;

        free(job->input);
        free(job->output);
        free(job);
        job = next;
    }
}

void decompress_pool_free(struct decompress_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->thread_count; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    /* Those no thread took, and the inline one. */
    if (pool->decompressors) {
        unsigned n = pool->thread_count ? pool->thread_count : 1;

        for (unsigned i = 0; i < n; i++)
            qcow2_decompressor_free(pool->decompressors[i]);
    }
    free(pool->decompressors);
    free_list(pool->queue_head);
    free_list(pool->done);
    free_list(pool->free_jobs);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->work_ready);
    pthread_cond_destroy(&pool->job_done);
    free(pool);
}

bool decompress_pool_full(struct decompress_pool *pool)
{
    bool full;

    pthread_mutex_lock(&pool->lock);
    full = pool->in_flight >= pool->max_in_flight;
    pthread_mutex_unlock(&pool->lock);
    return full;
}

int decompress_pool_submit(struct decompress_pool *pool,
                           uint64_t guest_offset, uint64_t host_offset,
                           uint8_t *input, uint32_t input_length,
                           bool cut_short, struct q2s_error *err)
{
    struct decompress_job *job;

    pthread_mutex_lock(&pool->lock);
    job = pool->free_jobs;
    if (job)
        pool->free_jobs = job->next;
    pthread_mutex_unlock(&pool->lock);
    if (!job) {
        job = calloc(1, sizeof *job);
        if (job)
            job->output = malloc(pool->cluster_size);
        if (!job || !job->output) {
            if (job)
                free(job);
            free(input);
            return q2s_error_set(err, ENOMEM, "out of memory");
        }
    }
    job->guest_offset = guest_offset;
    job->host_offset = host_offset;
    job->input = input;
    job->input_length = input_length;
    job->cut_short = cut_short;
    job->next = NULL;
    if (!pool->thread_count) {
        run_job(pool->decompressors[0], job);
        pthread_mutex_lock(&pool->lock);
        pool->in_flight++;
        job->next = pool->done;
        pool->done = job;
        pthread_mutex_unlock(&pool->lock);
        return 0;
    }
    pthread_mutex_lock(&pool->lock);
    pool->in_flight++;
    if (pool->queue_tail)
        pool->queue_tail->next = job;
    else
        pool->queue_head = job;
    pool->queue_tail = job;
    pthread_cond_signal(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

struct decompress_job *decompress_pool_take(struct decompress_pool *pool,
                                            bool wait)
{
    struct decompress_job *job;

    pthread_mutex_lock(&pool->lock);
    while (wait && !pool->done && pool->in_flight > 0)
        pthread_cond_wait(&pool->job_done, &pool->lock);
    job = pool->done;
    if (job) {
        pool->done = job->next;
        pool->in_flight--;
    }
    pthread_mutex_unlock(&pool->lock);
    return job;
}

void decompress_pool_recycle(struct decompress_pool *pool,
                             struct decompress_job *job)
{
    pthread_mutex_lock(&pool->lock);
    job->next = pool->free_jobs;
    pool->free_jobs = job;
    pthread_mutex_unlock(&pool->lock);
}
