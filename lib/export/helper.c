#include "export/helper.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

struct q2s_helper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t posted;  /* a job to run, or stopping */
    pthread_cond_t ended;   /* the job ended */
    q2s_helper_job *job;    /* posted and not yet taken, or NULL */
    void *opaque;
    bool running;           /* a job taken and not yet ended */
    bool stopping;
    int result;
    struct q2s_error error;
};

static void *helper_main(void *opaque)
{
    struct q2s_helper *helper = opaque;

    pthread_mutex_lock(&helper->lock);
    for (;;) {
        q2s_helper_job *job;
        struct q2s_error err;
        int result;

        while (!helper->stopping && !helper->job)
            pthread_cond_wait(&helper->posted, &helper->lock);
        if (!helper->job)
            break;
        job = helper->job;
        helper->job = NULL;
        helper->running = true;
        pthread_mutex_unlock(&helper->lock);

        result = job(helper->opaque, &err);

        pthread_mutex_lock(&helper->lock);
        helper->result = result;
        if (result < 0)
            helper->error = err;
        helper->running = false;
        pthread_cond_signal(&helper->ended);
    }
    pthread_mutex_unlock(&helper->lock);
    return NULL;
}

int q2s_helper_start(struct q2s_helper **result, struct q2s_error *err)
{
    struct q2s_helper *helper = calloc(1, sizeof *helper);
    sigset_t all, old;
    int error;

    *result = NULL;
    if (!helper)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate a thread");
    pthread_mutex_init(&helper->lock, NULL);
    pthread_cond_init(&helper->posted, NULL);
    pthread_cond_init(&helper->ended, NULL);
    /* Signals are for the caller's thread, whose blocking calls they
     * interrupt: the thread inherits a mask that blocks them all. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    error = pthread_create(&helper->thread, NULL, helper_main, helper);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (error != 0) {
        pthread_cond_destroy(&helper->ended);
        pthread_cond_destroy(&helper->posted);
        pthread_mutex_destroy(&helper->lock);
        free(helper);
        return q2s_error_set_errno(err, error, "cannot start a thread");
    }
    *result = helper;
    return 0;
}

void q2s_helper_post(struct q2s_helper *helper, q2s_helper_job *job,
                     void *opaque)
{
    pthread_mutex_lock(&helper->lock);
    helper->job = job;
    helper->opaque = opaque;
    pthread_cond_signal(&helper->posted);
    pthread_mutex_unlock(&helper->lock);
}

/* With the lock held. */
static void wait_idle(struct q2s_helper *helper)
{
    while (helper->job || helper->running)
        pthread_cond_wait(&helper->ended, &helper->lock);
}

int q2s_helper_wait(struct q2s_helper *helper, struct q2s_error *err)
{
    int result;

    pthread_mutex_lock(&helper->lock);
    wait_idle(helper);
    result = helper->result;
    if (result < 0)
        *err = helper->error;
    pthread_mutex_unlock(&helper->lock);
    return result;
}

void q2s_helper_stop(struct q2s_helper *helper)
{
    if (!helper)
        return;
    pthread_mutex_lock(&helper->lock);
    wait_idle(helper);
    helper->stopping = true;
    pthread_cond_signal(&helper->posted);
    pthread_mutex_unlock(&helper->lock);
    pthread_join(helper->thread, NULL);
    pthread_cond_destroy(&helper->ended);
    pthread_cond_destroy(&helper->posted);
    pthread_mutex_destroy(&helper->lock);
    free(helper);
}
