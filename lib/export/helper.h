/* One thread of the library's own that runs one job at a time beside the
 * caller's thread: a delta reads the base's window on it while the caller
 * reads the input's, so that the two devices work at once. */
#ifndef Q2S_HELPER_H
#define Q2S_HELPER_H

#include "error.h"

struct q2s_helper;

/* What the thread runs: 0, or -1 with *err set. */
typedef int q2s_helper_job(void *opaque, struct q2s_error *err);

/* Starts the thread (with every signal blocked: they are the caller's). */
int q2s_helper_start(struct q2s_helper **helper, struct q2s_error *err);

/* Hands job to the thread, which must be idle (every job posted waited
 * for). */
void q2s_helper_post(struct q2s_helper *helper, q2s_helper_job *job,
                     void *opaque);

/* Waits for the job posted last to end: its result, with its error in
 * *err.  A job that reads a source ends promptly when the source is
 * cancelled, as the source's reads do on any thread. */
int q2s_helper_wait(struct q2s_helper *helper, struct q2s_error *err);

/* Waits for any job still running, ends the thread and frees it.  NULL
 * is allowed. */
void q2s_helper_stop(struct q2s_helper *helper);

#endif
