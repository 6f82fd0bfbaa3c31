/* Being asked to stop: by a flag that the caller's signal handler sets,
 * or by q2s_source_cancel() from any thread (or a signal handler: a
 * lock-free atomic store is async-signal-safe).  Every long loop and
 * every wait looks at it, at least every Q2S_POLL_MILLISECONDS. */
#ifndef Q2S_CANCEL_H
#define Q2S_CANCEL_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

struct q2s_cancel {
    const volatile sig_atomic_t *flag;  /* the caller's; may be NULL */
    atomic_int requested;
};

_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "q2s_source_cancel() must be async-signal-safe");

static inline bool q2s_cancelled(const struct q2s_cancel *cancel)
{
    return (cancel->flag && *cancel->flag) ||
           atomic_load_explicit(&((struct q2s_cancel *)cancel)->requested,
                                memory_order_relaxed);
}

static inline void q2s_cancel_request(struct q2s_cancel *cancel)
{
    atomic_store_explicit(&cancel->requested, 1, memory_order_relaxed);
}

#endif
