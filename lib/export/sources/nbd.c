#define _GNU_SOURCE
#include "export/sources/nbd.h"

#include <errno.h>
#include <libnbd.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bits.h"
#include "common/fdio.h"
#include "common/vector.h"
#include "error.h"

/* One request: many small ones in flight kept qemu-nbd busier than a few
 * large ones (measured: 256 KiB x 64 beat 2 MiB x 8 by about 2x), and
 * nbdcopy uses the same. */
#define REQUEST_BYTES (256 * 1024)
/* Requests in flight at once on each connection, as nbdcopy. */
#define REQUESTS_IN_FLIGHT 64
/* The most bytes a stream of reads keeps in flight over all connections:
 * one connection with 64 requests in flight read as fast as four on a
 * local server (measured), and a stream's memory stays small. */
#define STREAM_BYTES_IN_FLIGHT (32 * 1024 * 1024)
/* How much one block status query asks about. */
#define STATUS_QUERY_BYTES (UINT64_C(1) << 30)
/* How long a clean disconnect may take before the socket is just closed. */
#define DISCONNECT_MILLISECONDS 1000
/* How long the handshake of a connection beyond the first may take before
 * it is given up and the others go on: a server may advertise multi-conn
 * and yet take one client at a time (qemu-nbd with its default
 * --shared=1), keeping the next one waiting for ever. */
#define EXTRA_CONNECT_MILLISECONDS 2000

struct extent {
    uint64_t start, end;
};
Q2S_DEFINE_VECTOR_TYPE(extent_vector, struct extent)

struct status_context;

/* One block status query, and what its answer said about one meta
 * context: the extents whose flags match, within [start, end). */
struct status_query {
    struct nbd_source *nbd;
    struct status_context *context;
    struct extent_vector extents;
    uint64_t start, end;
    bool in_flight;    /* sent, not answered */
    bool answered;     /* [start, end) holds the answer */
    int error;         /* the answer's, or 0 */
    bool out_of_memory;
    /* An extent of the context's kind reached past the export's end:
     * no export holds that, so the answer is not believed. */
    bool past_end;
};

/* A meta context: its current answer, and the next one asked for ahead,
 * so that a scan of a disk of many extents does not wait a round trip for
 * each answer. */
struct status_context {
    const char *name;
    uint32_t mask, match;  /* an extent is kept when (flags & mask) == match */
    struct status_query queries[2];
    unsigned current;
};

struct nbd_source {
    struct q2s_source source;  /* first */
    /* The connections; connections is 0 once they are dropped after a
     * failure: no reply can then land in a buffer that the caller has
     * freed.  The first one alone asks about block status. */
    struct nbd_handle *handles[Q2S_NBD_MAX_CONNECTIONS];
    size_t connections;
    size_t next_handle;        /* where the next request goes */
    uint64_t answers;          /* replies so far, for the timeout */
    /* Commands whose completion callback ran, not yet retired.  They are
     * retired apart: libnbd 1.14 reads a command it freed when one that
     * retires itself is failed while it is being sent (a connection that
     * dies then), as valgrind showed. */
    uint64_t unretired;
    uint32_t timeout_seconds;  /* 0: wait for ever */
    /* What says stop: the source's own, or that of a source wrapping it,
     * which the caller cancels. */
    const struct q2s_cancel *cancel;
    bool has_allocation;       /* base:allocation was negotiated */
    uint64_t request_bytes;
    /* A power of two (1 at least): requests are multiples of it, aligned. */
    uint64_t minimum_bytes;
    /* base:allocation: what may hold data ("Only what reads as zeros is
     * left out: a hole without the zero flag may read as anything", NBD
     * protocol). */
    struct status_context allocation;
    /* qemu:dirty-bitmap:NAME, with a dirty bitmap: what is dirty. */
    char *dirty_context;       /* or NULL */
    struct status_context dirty;
    q2s_nbd_said_fn *server_said;  /* or NULL */
    void *server_said_opaque;
    char name[];
};

/* The requests of one read, or of one piece of a stream: how many are
 * unanswered, and the failed one of the lowest offset (replies come in
 * any order). */
struct tracker {
    uint64_t pending;
    int error;
    uint64_t error_offset;
    /* The request being sent, and whether it was answered (failed) while
     * it was: a connection that dies then fails it at once. */
    const struct request *submitting;
    bool answered_while_submitting;
};

/* One read request in flight, freed by libnbd when it is retired or its
 * connection closed. */
struct request {
    struct nbd_source *nbd;
    struct tracker *tracker;
    uint64_t offset;
};

/* libnbd's errno for its last error, or fallback when it has none. */
static int nbd_errno_or(int fallback)
{
    int errnum = nbd_get_errno();

    return errnum > 0 ? errnum : fallback;
}

static struct nbd_source *nbd_of(struct q2s_source *source)
{
    return (struct nbd_source *)source;
}

/* What the server said about a failure, if it said anything. */
static bool server_said(struct nbd_source *nbd, char *said, size_t size)
{
    said[0] = '\0';
    if (nbd->server_said)
        nbd->server_said(nbd->server_said_opaque, said, size);
    return said[0] != '\0';
}

/* Reports a libnbd failure, with what the server said if it said more. */
static int nbd_failure(struct nbd_source *nbd, struct q2s_error *err,
                       const char *what)
{
    char said[1024];

    if (server_said(nbd, said, sizeof said))
        return q2s_error_set(err, nbd_errno_or(EIO), "%s: %s: %s", nbd->name,
                             what, said);
    return q2s_error_set(err, nbd_errno_or(EIO), "%s: %s: %s", nbd->name, what,
                         nbd_get_error() ? nbd_get_error() : "NBD error");
}

/* Reports a command that the server answered with an error (errnum). */
static int answer_failure(struct nbd_source *nbd, struct q2s_error *err,
                          int errnum, const char *what)
{
    char said[1024];

    if (server_said(nbd, said, sizeof said))
        return q2s_error_set(err, errnum, "%s: %s: %s", nbd->name, what,
                             said);
    return q2s_error_set(err, errnum, "%s: %s: %s", nbd->name, what,
                         strerror(errnum));
}

/* Ends the connections at once, after a failure or an interrupt. */
static void drop_connection(struct nbd_source *nbd)
{
    for (size_t i = 0; i < nbd->connections; i++)
        nbd_close(nbd->handles[i]);
    nbd->connections = 0;
    nbd->unretired = 0;  /* closing retired them */
}

static int connection_gone(struct nbd_source *nbd, struct q2s_error *err)
{
    return q2s_error_set(err, ENOTCONN,
                         "%s: the connection was closed after an "
                         "earlier error", nbd->name);
}

/* Retires the commands whose completion callbacks ran. */
static void retire_completed(struct nbd_source *nbd)
{
    for (size_t i = 0; i < nbd->connections && nbd->unretired > 0; i++) {
        int64_t cookie;

        while (nbd->unretired > 0 &&
               (cookie = nbd_aio_peek_command_completed(nbd->handles[i])) >
                   0) {
            /* Its outcome went to the callback. */
            (void)nbd_aio_command_completed(nbd->handles[i], cookie);
            nbd->unretired--;
        }
    }
}

/* One poll(2) of connections [from, to) for what libnbd waits for, up to
 * milliseconds, then lets each one move on.  -1 when a connection
 * failed, with libnbd's error and *failed its index. */
static int poll_connections(struct nbd_source *nbd, size_t from, size_t to,
                            int milliseconds, size_t *failed)
{
    struct pollfd all[Q2S_NBD_MAX_CONNECTIONS];
    struct pollfd *fds = all + from;
    size_t count = to - from;
    int ready;

    for (size_t i = 0; i < count; i++) {
        struct nbd_handle *handle = nbd->handles[from + i];
        unsigned direction = nbd_aio_get_direction(handle);

        fds[i].fd = nbd_aio_get_fd(handle);
        fds[i].events = 0;
        fds[i].revents = 0;
        if (fds[i].fd < 0) {
            *failed = from + i;
            return -1;
        }
        if (direction & LIBNBD_AIO_DIRECTION_READ)
            fds[i].events |= POLLIN;
        if (direction & LIBNBD_AIO_DIRECTION_WRITE)
            fds[i].events |= POLLOUT;
    }
    ready = poll(fds, count, milliseconds);
    if (ready <= 0)
        return 0;  /* a signal or the time: the caller looks again */
    for (size_t i = 0; i < count; i++) {
        struct nbd_handle *handle = nbd->handles[from + i];
        int ret = 0;

        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
            ret = nbd_aio_notify_read(handle);
        else if (fds[i].revents & POLLOUT)
            ret = nbd_aio_notify_write(handle);
        /* A server that closed the connection has gone as much as one
         * that broke it. */
        if (ret < 0 || nbd_aio_is_dead(handle) > 0 ||
            nbd_aio_is_closed(handle) > 0) {
            *failed = from + i;
            return -1;
        }
    }
    retire_completed(nbd);
    return 0;
}

/* Reports that connection failed failed (what, doing), and drops them
 * all. */
static int connection_failed(struct nbd_source *nbd, size_t failed,
                             const char *what, const char *doing,
                             struct q2s_error *err)
{
    char message[160];

    snprintf(message, sizeof message, "%s %s", what, doing);
    if (nbd_aio_is_closed(nbd->handles[failed]) > 0)
        q2s_error_set(err, ECONNRESET, "%s: %s: the server closed the "
                      "connection", nbd->name, message);
    else
        nbd_failure(nbd, err, message);
    drop_connection(nbd);
    return -1;
}

/* Before requests are sent: what the connections have to say is taken in
 * first, so that a server that went away is found out here.  libnbd 1.14
 * reads a request it freed when the connection dies while the request is
 * being sent (valgrind: "invalid read" in nbd_aio_pread). */
static int check_connections(struct nbd_source *nbd, uint64_t offset,
                             struct q2s_error *err)
{
    size_t failed;
    char doing[96];

    if (nbd->connections == 0)
        return connection_gone(nbd, err);
    if (poll_connections(nbd, 0, nbd->connections, 0, &failed) == 0)
        return 0;
    snprintf(doing, sizeof doing, "while reading at offset %llu",
             (unsigned long long)offset);
    return connection_failed(nbd, failed, "connection lost", doing, err);
}

typedef bool wait_done_fn(struct nbd_source *nbd, const void *arg);

static bool first_ready(struct nbd_source *nbd, const void *arg)
{
    (void)arg;
    return nbd_aio_is_ready(nbd->handles[0]) > 0;
}


/* Runs the connections until done says so.  It polls in short slices,
 * so that an interrupt is seen at once, and fails when the server has
 * answered nothing for the timeout (a reply to any command counts; the
 * handshake must be over within it).  On failure the connections are
 * dropped; doing (what was waited for) goes into the message. */
static int wait_until(struct nbd_source *nbd, wait_done_fn *done,
                      const void *arg, const char *doing,
                      struct q2s_error *err)
{
    uint64_t last_answer = q2s_now_milliseconds();
    uint64_t answers = nbd->answers;

    while (!done(nbd, arg)) {
        size_t failed;

        if (nbd->connections == 0)
            return connection_gone(nbd, err);
        if (q2s_cancelled(nbd->cancel)) {
            drop_connection(nbd);
            return q2s_error_set(err, ECANCELED, "interrupted");
        }
        if (poll_connections(nbd, 0, nbd->connections, Q2S_POLL_MILLISECONDS,
                             &failed) < 0)
            return connection_failed(nbd, failed, done == first_ready
                                     ? "cannot connect" : "connection lost",
                                     doing, err);
        if (nbd->answers != answers) {
            answers = nbd->answers;
            last_answer = q2s_now_milliseconds();
        }
        if (nbd->timeout_seconds && !done(nbd, arg) &&
            q2s_now_milliseconds() - last_answer >=
                (uint64_t)nbd->timeout_seconds * 1000) {
            q2s_error_set(err, ETIMEDOUT,
                          "%s: the server did not answer for %u s %s",
                          nbd->name, nbd->timeout_seconds, doing);
            drop_connection(nbd);
            return -1;
        }
    }
    return 0;
}

static bool tracker_done(struct nbd_source *nbd, const void *arg)
{
    const struct tracker *tracker = arg;

    (void)nbd;
    return tracker->pending == 0;
}

static bool query_done(struct nbd_source *nbd, const void *arg)
{
    const struct status_query *query = arg;

    (void)nbd;
    return !query->in_flight;
}

static int request_done(void *user_data, int *error)
{
    struct request *request = user_data;
    struct tracker *tracker = request->tracker;

    request->nbd->answers++;
    if (tracker->submitting == request)
        tracker->answered_while_submitting = true;
    if (*error &&
        (!tracker->error || request->offset < tracker->error_offset)) {
        tracker->error = *error;
        tracker->error_offset = request->offset;
    }
    tracker->pending--;
    request->nbd->unretired++;
    return 0;  /* retired later, by retire_completed() */
}

/* Sends a read of length bytes at offset into buf, counted in tracker, on
 * the next connection in turn. */
static int send_read(struct nbd_source *nbd, uint8_t *buf, size_t length,
                     uint64_t offset, struct tracker *tracker,
                     struct q2s_error *err)
{
    struct request *request = malloc(sizeof *request);
    struct nbd_handle *handle;
    int64_t cookie;

    if (!request)
        return q2s_error_set_errno(err, ENOMEM, "%s: read request",
                                   nbd->name);
    *request = (struct request){ nbd, tracker, offset };
    handle = nbd->handles[nbd->next_handle++ % nbd->connections];
    tracker->pending++;
    tracker->submitting = request;
    tracker->answered_while_submitting = false;
    cookie = nbd_aio_pread(handle, buf, length, offset,
                           (nbd_completion_callback){
                               .callback = request_done,
                               .user_data = request,
                               .free = free },
                           0);
    tracker->submitting = NULL;
    if (cookie < 0) {
        char what[96];

        /* libnbd has freed the request; unless the connection died while
         * it was sent, it did not call back. */
        if (!tracker->answered_while_submitting)
            tracker->pending--;
        snprintf(what, sizeof what, "cannot send a read request for offset "
                 "%llu", (unsigned long long)offset);
        return nbd_failure(nbd, err, what);
    }
    return 0;
}

/* Sends the reads of [offset, offset + length) into buf, in requests. */
static int send_reads(struct nbd_source *nbd, uint8_t *buf, size_t length,
                      uint64_t offset, struct tracker *tracker,
                      struct q2s_error *err)
{
    for (size_t done = 0; done < length;) {
        size_t n = length - done < nbd->request_bytes
                       ? length - done : (size_t)nbd->request_bytes;

        if (send_read(nbd, buf + done, n, offset + done, tracker, err) < 0)
            return -1;
        done += n;
    }
    return 0;
}

/* Waits for what tracker counts; after an error too, so that no reply
 * lands later in a buffer that goes away (or the connections are gone). */
static int wait_for_reads(struct nbd_source *nbd, struct tracker *tracker,
                          uint64_t offset, int sent, struct q2s_error *err)
{
    char doing[96];

    snprintf(doing, sizeof doing, "while reading at offset %llu",
             (unsigned long long)offset);
    if (wait_until(nbd, tracker_done, tracker, doing,
                   sent < 0 ? &(struct q2s_error){ 0 } : err) < 0 ||
        sent < 0)
        return -1;
    if (tracker->error) {
        char what[64];

        snprintf(what, sizeof what, "read error at offset %llu",
                 (unsigned long long)tracker->error_offset);
        return answer_failure(nbd, err, tracker->error, what);
    }
    return 0;
}

/* Reads each of the reads (aligned to the minimum block size) in
 * requests, all in flight at once across the connections. */
static int read_requests_of(struct nbd_source *nbd,
                            const struct q2s_read *reads, size_t count,
                            struct q2s_error *err)
{
    struct tracker tracker = { 0 };
    int sent = 0;

    if (check_connections(nbd, count ? reads[0].offset : 0, err) < 0)
        return -1;
    for (size_t i = 0; i < count && sent == 0; i++)
        sent = send_reads(nbd, reads[i].buf, reads[i].length,
                          reads[i].offset, &tracker, err);
    return wait_for_reads(nbd, &tracker, count ? reads[0].offset : 0, sent,
                          err);
}

static int read_requests(struct nbd_source *nbd, uint8_t *p, size_t length,
                         uint64_t offset, struct q2s_error *err)
{
    struct q2s_read read = { p, length, offset };

    return read_requests_of(nbd, &read, 1, err);
}

static int add_extent(struct extent_vector *extents, uint64_t start,
                      uint64_t end)
{
    if (extents->len > 0 && extents->ptr[extents->len - 1].end == start) {
        extents->ptr[extents->len - 1].end = end;
        return 0;
    }
    return extent_vector_append(extents, (struct extent){ start, end });
}

/* Entries are (length, flags) pairs; other contexts than the query's are
 * answered too when several were negotiated. */
static int status_callback(void *opaque, const char *context, uint64_t offset,
                           uint32_t *entries, size_t entry_count, int *error)
{
    struct status_query *query = opaque;
    const struct status_context *ctx = query->context;
    uint64_t pos = offset;

    (void)error;
    if (strcmp(context, ctx->name) != 0)
        return 0;
    for (size_t i = 0; i + 1 < entry_count; i += 2) {
        uint64_t end = pos + entries[i];

        if ((entries[i + 1] & ctx->mask) == ctx->match && end > pos) {
            if (end > query->nbd->source.size)
                query->past_end = true;
            if (add_extent(&query->extents, pos, end) < 0) {
                query->out_of_memory = true;
                return -1;
            }
        }
        pos = end;
    }
    if (pos > query->end)
        query->end = pos;
    return 0;
}

static int status_done(void *user_data, int *error)
{
    struct status_query *query = user_data;

    query->nbd->answers++;
    query->error = *error;
    query->in_flight = false;
    query->answered = true;
    query->nbd->unretired++;
    return 0;  /* retired later, by retire_completed() */
}

/* What is left of the export from offset (a multiple of the minimum block
 * size) is shorter than one block: its size is not a multiple of it.  No
 * aligned request can ask about that tail, so it is taken for data (and
 * for dirty), which a later read tries to get. */
static bool in_short_tail(const struct nbd_source *nbd, uint64_t offset)
{
    return nbd->source.size - offset < nbd->minimum_bytes;
}

/* Asks about [offset, ...) (a multiple of the minimum block size, below
 * the size) into query, without waiting for the answer. */
static int send_query(struct nbd_source *nbd, struct status_query *query,
                      uint64_t offset, struct q2s_error *err)
{
    uint64_t count;

    query->extents.len = 0;
    query->start = offset;
    query->end = offset;
    query->error = 0;
    query->out_of_memory = false;
    query->past_end = false;
    query->answered = false;
    if (in_short_tail(nbd, offset)) {
        query->answered = true;
        query->end = nbd->source.size;
        if (add_extent(&query->extents, offset, nbd->source.size) < 0)
            query->out_of_memory = true;
        return 0;
    }
    count = nbd->source.size - offset;
    if (count > STATUS_QUERY_BYTES)
        count = STATUS_QUERY_BYTES;
    /* Whole blocks only: the server may describe more than asked. */
    count = q2s_round_down(count, nbd->minimum_bytes);
    query->in_flight = true;
    if (nbd_aio_block_status(nbd->handles[0], count, offset,
                             (nbd_extent_callback){
                                 .callback = status_callback,
                                 .user_data = query },
                             (nbd_completion_callback){
                                 .callback = status_done,
                                 .user_data = query },
                             0) < 0) {
        query->in_flight = false;
        return nbd_failure(nbd, err, "cannot get the block status");
    }
    return 0;
}

/* Waits for the answer to query, and checks it. */
static int finish_query(struct nbd_source *nbd, struct status_query *query,
                        struct q2s_error *err)
{
    char doing[96];

    snprintf(doing, sizeof doing, "during a block status query at offset "
             "%llu", (unsigned long long)query->start);
    if (wait_until(nbd, query_done, query, doing, err) < 0)
        return -1;
    if (query->out_of_memory)
        return q2s_error_set_errno(err, ENOMEM, "%s: block status",
                                   nbd->name);
    if (query->error) {
        char what[96];

        snprintf(what, sizeof what, "cannot get the block status at offset "
                 "%llu", (unsigned long long)query->start);
        return answer_failure(nbd, err, query->error, what);
    }
    if (query->past_end)
        return q2s_error_set(err, EPROTO, "%s: the server reported %s "
                             "data past the end of the export (%llu bytes) "
                             "at offset %llu", nbd->name,
                             query->context->name,
                             (unsigned long long)nbd->source.size,
                             (unsigned long long)query->start);
    if (query->end == query->start)
        return q2s_error_set(err, EPROTO,
                             "%s: the server described no extent of %s at "
                             "offset %llu", nbd->name, query->context->name,
                             (unsigned long long)query->start);
    if (query->end > nbd->source.size)
        query->end = nbd->source.size;
    return 0;
}

/* Makes the context's current answer cover offset: the one asked ahead
 * if it starts there, else a new query; then asks ahead again. */
static int answer_for(struct nbd_source *nbd, struct status_context *ctx,
                      uint64_t offset, struct q2s_error *err)
{
    uint64_t start = q2s_round_down(offset, nbd->minimum_bytes);
    struct status_query *ahead = &ctx->queries[!ctx->current];
    struct status_query *current;

    if (nbd->connections == 0)
        return connection_gone(nbd, err);
    if ((ahead->in_flight || ahead->answered) && ahead->start == start) {
        ctx->current = !ctx->current;
    } else {
        /* A query asked ahead for elsewhere must be answered before its
         * extents can be reused. */
        if (ahead->in_flight && finish_query(nbd, ahead, err) < 0 &&
            nbd->connections == 0)
            return -1;
        ahead->answered = false;
        if (send_query(nbd, &ctx->queries[ctx->current], start, err) < 0)
            return -1;
    }
    current = &ctx->queries[ctx->current];
    if (finish_query(nbd, current, err) < 0)
        return -1;
    ahead = &ctx->queries[!ctx->current];
    if (current->end < nbd->source.size &&
        send_query(nbd, ahead, current->end, err) < 0)
        return -1;
    return 0;
}

/* The first extent of the context's kind at or after offset, asking the
 * server as needed: 1 with [*start, *end), 0 if none. */
static int next_extent(struct nbd_source *nbd, struct status_context *ctx,
                       uint64_t offset, uint64_t *start, uint64_t *end,
                       struct q2s_error *err)
{
    while (offset < nbd->source.size) {
        const struct status_query *query = &ctx->queries[ctx->current];

        if (!query->answered || query->in_flight || offset < query->start ||
            offset >= query->end) {
            if (q2s_cancelled(nbd->cancel))
                return q2s_error_set(err, ECANCELED, "interrupted");
            if (answer_for(nbd, ctx, offset, err) < 0)
                return -1;
            query = &ctx->queries[ctx->current];
        }
        for (size_t i = 0; i < query->extents.len; i++) {
            const struct extent *e = &query->extents.ptr[i];

            if (e->end > offset && e->start < query->end) {
                *start = e->start > offset ? e->start : offset;
                *end = e->end < query->end ? e->end : query->end;
                return 1;
            }
        }
        offset = query->end;
    }
    return 0;
}

static int nbd_next_data(struct q2s_source *source, uint64_t offset,
                         uint64_t *start, uint64_t *end,
                         struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_of(source);

    if (!nbd->has_allocation) {
        if (offset >= source->size)
            return 0;
        *start = offset;
        *end = source->size;
        return 1;
    }
    return next_extent(nbd, &nbd->allocation, offset, start, end, err);
}

static int nbd_next_dirty(struct q2s_source *source, uint64_t offset,
                          uint64_t *start, uint64_t *end,
                          struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_of(source);

    if (!nbd->dirty_context)
        return q2s_error_set(err, EINVAL, "%s: no dirty bitmap was asked "
                             "for", nbd->name);
    return next_extent(nbd, &nbd->dirty, offset, start, end, err);
}

/* The end of an export whose size is not a multiple of the server's
 * minimum block size: no aligned request can read it, so it is asked for
 * as it is, which many servers allow (libnbd's client-side alignment
 * check is lifted for this one request). */
static int read_short_tail(struct nbd_source *nbd, uint8_t *p, size_t length,
                           uint64_t offset, struct q2s_error *err)
{
    uint32_t strict;
    int ret;

    if (nbd->connections == 0)
        return connection_gone(nbd, err);
    strict = nbd_get_strict_mode(nbd->handles[0]);
    for (size_t i = 0; i < nbd->connections; i++)
        nbd_set_strict_mode(nbd->handles[i],
                            strict & ~(uint32_t)LIBNBD_STRICT_ALIGN);
    ret = read_requests(nbd, p, length, offset, err);
    for (size_t i = 0; i < nbd->connections; i++)
        nbd_set_strict_mode(nbd->handles[i], strict);
    if (ret < 0 && nbd->connections > 0) {
        char why[sizeof err->message];

        snprintf(why, sizeof why, "%s", err->message);
        return q2s_error_set(err, EIO, "cannot read the last %zu bytes: the "
                             "export's size, %llu, is not a multiple of the "
                             "server's minimum block size, %llu, and the "
                             "server refuses a shorter request (%s)",
                             length, (unsigned long long)nbd->source.size,
                             (unsigned long long)nbd->minimum_bytes, why);
    }
    return ret;
}

/* Reads up to *length bytes at offset (all, or fewer for an unaligned
 * head, leaving *length at what was read), keeping to the server's
 * minimum block size: an unaligned head or tail is read as a whole block
 * into a bounce buffer. */
static int read_aligned(struct nbd_source *nbd, uint8_t *p, size_t *length,
                        uint64_t offset, struct q2s_error *err)
{
    uint64_t block = nbd->minimum_bytes;
    uint64_t head = offset % block;
    uint64_t start = offset - head;
    uint8_t bounce[65536];

    if (head == 0 && *length >= block) {
        *length -= *length % block;  /* the tail comes next time */
        return read_requests(nbd, p, *length, offset, err);
    }
    if (in_short_tail(nbd, start)) {
        uint64_t size = nbd->source.size - start;

        if (*length > size - head)
            *length = (size_t)(size - head);
        if (read_short_tail(nbd, bounce, (size_t)size, start, err) < 0)
            return -1;
    } else {
        if (*length > block - head)
            *length = (size_t)(block - head);
        if (read_requests(nbd, bounce, (size_t)block, start, err) < 0)
            return -1;
    }
    memcpy(p, bounce + head, *length);
    return 0;
}

static int nbd_read(struct q2s_source *source, void *buf, size_t length,
                    uint64_t offset, struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_of(source);
    uint8_t *p = buf;

    while (length > 0) {
        size_t n = length;

        if (read_aligned(nbd, p, &n, offset, err) < 0)
            return -1;
        p += n;
        offset += n;
        length -= n;
    }
    return 0;
}

/* Reads that keep to the server's minimum block size go out together;
 * otherwise each is read on its own, with its bounce buffers. */
static int nbd_read_batch(struct q2s_source *source,
                          const struct q2s_read *reads, size_t count,
                          struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_of(source);

    for (size_t i = 0; i < count; i++) {
        if (reads[i].offset % nbd->minimum_bytes != 0 ||
            reads[i].length % nbd->minimum_bytes != 0) {
            for (size_t j = 0; j < count; j++)
                if (nbd_read(source, reads[j].buf, reads[j].length,
                             reads[j].offset, err) < 0)
                    return -1;
            return 0;
        }
    }
    return read_requests_of(nbd, reads, count, err);
}


/* A piece of a stream: its buffer, and its requests. */
struct piece {
    uint8_t *buf;
    uint64_t offset;
    size_t length;
    struct tracker tracker;
    /* Not aligned to the minimum block size: read when its turn comes,
     * through the bounce buffers of nbd_read(). */
    bool deferred;
};

static bool piece_aligned(const struct nbd_source *nbd,
                          const struct piece *piece)
{
    return piece->offset % nbd->minimum_bytes == 0 &&
           piece->length % nbd->minimum_bytes == 0;
}

/* Keeps REQUESTS_IN_FLIGHT requests on every connection all the time (as
 * nbdcopy does): a piece is asked for as soon as its buffer is free, and
 * the pieces are handed on in order as they are complete. */
static int nbd_read_stream(struct q2s_source *source,
                           const struct q2s_stream *stream,
                           struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_of(source);
    size_t requests_per_piece =
        q2s_div_round_up(stream->piece_bytes, nbd->request_bytes);
    size_t slots, head = 0, used = 0;
    struct piece *pieces;
    bool ended = false;
    int ret = 0;

    if (nbd->connections == 0)
        return connection_gone(nbd, err);
    slots = REQUESTS_IN_FLIGHT * nbd->connections / requests_per_piece;
    if (slots > STREAM_BYTES_IN_FLIGHT / stream->piece_bytes)
        slots = STREAM_BYTES_IN_FLIGHT / stream->piece_bytes;
    if (slots < 2)
        slots = 2;
    pieces = calloc(slots, sizeof *pieces);
    if (!pieces)
        return q2s_error_set_errno(err, ENOMEM, "%s: read buffers",
                                   nbd->name);
    while (ret == 0) {
        struct piece *piece;

        while (!ended && used < slots) {
            int more;

            piece = &pieces[(head + used) % slots];
            /* A buffer when first needed: a short stream (a small range
             * of the image) takes only what it uses. */
            if (!piece->buf &&
                posix_memalign((void **)&piece->buf, 4096,
                               stream->piece_bytes) != 0) {
                piece->buf = NULL;
                ret = q2s_error_set_errno(err, ENOMEM, "%s: read buffers",
                                          nbd->name);
                break;
            }
            more = stream->next(stream->opaque, &piece->offset,
                                &piece->length, err);
            if (more <= 0) {
                ended = true;
                ret = more;
                break;
            }
            piece->tracker = (struct tracker){ 0 };
            piece->deferred = !piece_aligned(nbd, piece);
            used++;
            if (!piece->deferred &&
                ((ret = check_connections(nbd, piece->offset, err)) < 0 ||
                 (ret = send_reads(nbd, piece->buf, piece->length,
                                   piece->offset, &piece->tracker, err)) < 0))
                break;
        }
        if (ret < 0 || used == 0)
            break;
        piece = &pieces[head];
        if (piece->deferred)
            ret = nbd_read(source, piece->buf, piece->length, piece->offset,
                           err);
        else
            ret = wait_for_reads(nbd, &piece->tracker, piece->offset, 0, err);
        if (ret == 0)
            ret = stream->consume(stream->opaque, piece->buf, piece->offset,
                                  piece->length, err);
        head = (head + 1) % slots;
        used--;
    }
    /* Replies still to come must not land in freed buffers. */
    for (size_t i = 0; ret < 0 && i < slots; i++)
        if (pieces[i].tracker.pending > 0)
            drop_connection(nbd);
    for (size_t i = 0; i < slots; i++)
        free(pieces[i].buf);
    free(pieces);
    return ret;
}

static int nbd_check_size(struct q2s_source *source, struct q2s_error *err)
{
    (void)source;
    (void)err;
    return 0;  /* an export's size is fixed for the connection */
}

static bool all_closed(struct nbd_source *nbd, const void *arg)
{
    (void)arg;
    for (size_t i = 0; i < nbd->connections; i++)
        if (nbd_aio_is_closed(nbd->handles[i]) <= 0 &&
            nbd_aio_is_dead(nbd->handles[i]) <= 0)
            return false;
    return true;
}

static void free_context(struct status_context *ctx)
{
    extent_vector_free(&ctx->queries[0].extents);
    extent_vector_free(&ctx->queries[1].extents);
}

static void nbd_source_close(struct q2s_source *source)
{
    struct nbd_source *nbd = nbd_of(source);
    uint64_t deadline = q2s_now_milliseconds() + DISCONNECT_MILLISECONDS;
    bool asked = false;

    /* A clean disconnect, briefly: a server that does not take it is
     * just left. */
    for (size_t i = 0; i < nbd->connections; i++)
        if (nbd_aio_is_ready(nbd->handles[i]) > 0 &&
            nbd_aio_disconnect(nbd->handles[i], 0) == 0)
            asked = true;
    while (asked && !all_closed(nbd, NULL) && !q2s_cancelled(nbd->cancel) &&
           q2s_now_milliseconds() < deadline) {
        size_t failed;

        if (poll_connections(nbd, 0, nbd->connections, Q2S_POLL_MILLISECONDS,
                             &failed) < 0)
            break;
    }
    drop_connection(nbd);
    free_context(&nbd->allocation);
    free_context(&nbd->dirty);
    free(nbd->dirty_context);
    free(nbd);
}

static const struct q2s_source_ops nbd_ops = {
    .next_data = nbd_next_data,
    .next_dirty = nbd_next_dirty,
    .read = nbd_read,
    .read_batch = nbd_read_batch,
    .read_stream = nbd_read_stream,
    .check_size = nbd_check_size,
    .close = nbd_source_close,
};

static void init_context(struct nbd_source *nbd, struct status_context *ctx,
                         const char *name, uint32_t mask, uint32_t match)
{
    *ctx = (struct status_context){
        .name = name, .mask = mask, .match = match };
    for (size_t i = 0; i < 2; i++) {
        ctx->queries[i].nbd = nbd;
        ctx->queries[i].context = ctx;
    }
}

/* A new handle: the first asks for the meta contexts, which the block
 * status queries need; the others only read. */
static struct nbd_handle *new_handle(struct nbd_source *nbd, bool first,
                                     struct q2s_error *err)
{
    struct nbd_handle *handle = nbd_create();

    if (!handle ||
        (first &&
         (nbd_add_meta_context(handle, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
          (nbd->dirty_context &&
           nbd_add_meta_context(handle, nbd->dirty_context) < 0)))) {
        q2s_error_set(err, nbd_errno_or(ENOMEM), "%s: %s", nbd->name,
                      nbd_get_error());
        if (handle)
            nbd_close(handle);
        return NULL;
    }
    return handle;
}

static struct nbd_source *nbd_source_new(const char *name,
                                         const struct q2s_nbd_params *params,
                                         struct q2s_error *err)
{
    struct nbd_source *nbd = calloc(1, sizeof *nbd + strlen(name) + 1);

    if (!nbd) {
        q2s_error_set_errno(err, ENOMEM, "%s", name);
        return NULL;
    }
    nbd->source.ops = &nbd_ops;
    nbd->source.read_bytes = REQUEST_BYTES * REQUESTS_IN_FLIGHT;
    nbd->source.reread_costly = true;
    nbd->source.any_thread = true;
    nbd->request_bytes = REQUEST_BYTES;
    nbd->minimum_bytes = 1;
    nbd->timeout_seconds = params->timeout_seconds;
    nbd->source.cancel.flag = params->interrupted;
    nbd->cancel = params->cancel ? params->cancel : &nbd->source.cancel;
    nbd->server_said = params->server_said;
    nbd->server_said_opaque = params->server_said_opaque;
    strcpy(nbd->name, name);
    init_context(nbd, &nbd->allocation, LIBNBD_CONTEXT_BASE_ALLOCATION,
                 LIBNBD_STATE_ZERO, 0);
    if (params->dirty_bitmap &&
        asprintf(&nbd->dirty_context, "%s%s", Q2S_DIRTY_BITMAP_CONTEXT,
                 params->dirty_bitmap) < 0) {
        nbd->dirty_context = NULL;
        q2s_error_set_errno(err, ENOMEM, "%s", name);
        nbd_source_close(&nbd->source);
        return NULL;
    }
    /* "qemu:dirty-bitmap:": flag 1 is dirty (QEMU's docs/interop/nbd.txt). */
    init_context(nbd, &nbd->dirty, nbd->dirty_context, 1, 1);
    nbd->handles[0] = new_handle(nbd, true, err);
    if (!nbd->handles[0]) {
        nbd_source_close(&nbd->source);
        return NULL;
    }
    nbd->connections = 1;
    return nbd;
}

/* After connecting: the size, the block status, the request size. */
static int nbd_source_ready(struct nbd_source *nbd, struct q2s_error *err)
{
    struct nbd_handle *handle = nbd->handles[0];
    int64_t size = nbd_get_size(handle);
    int64_t maximum = nbd_get_block_size(handle, LIBNBD_SIZE_MAXIMUM);
    int64_t minimum = nbd_get_block_size(handle, LIBNBD_SIZE_MINIMUM);

    if (size < 0)
        return nbd_failure(nbd, err, "cannot get the size");
    nbd->source.size = (uint64_t)size;
    nbd->has_allocation =
        nbd_can_meta_context(handle, LIBNBD_CONTEXT_BASE_ALLOCATION) > 0;
    /* Checked now, before any output: without it, an increment would be
     * silently empty or full. */
    if (nbd->dirty_context &&
        nbd_can_meta_context(handle, nbd->dirty_context) <= 0)
        return q2s_error_set(err, ENOENT, "%s: the server does not export "
                             "the dirty bitmap '%s' (meta context %s)",
                             nbd->name,
                             nbd->dirty_context +
                                 strlen(Q2S_DIRTY_BITMAP_CONTEXT),
                             nbd->dirty_context);
    if (maximum > 0 && (uint64_t)maximum < nbd->request_bytes)
        nbd->request_bytes = (uint64_t)maximum;
    /* A power of two up to 64 KiB (NBD protocol, "Block size
     * constraints"); anything else is not honoured. */
    if (minimum > 1 && minimum <= 65536 &&
        q2s_is_power_of_two((uint64_t)minimum) &&
        (uint64_t)minimum <= nbd->request_bytes)
        nbd->minimum_bytes = (uint64_t)minimum;
    return 0;
}

/* Once the connection is under way (connected is what starting it
 * returned): waits for the handshake, then takes in what the server
 * offers.  Closes the source on failure. */
static int finish_connecting(struct nbd_source *nbd, int connected,
                             const char *connect_what,
                             struct q2s_error *err)
{
    if (connected < 0) {
        nbd_failure(nbd, err, connect_what);
        nbd_source_close(&nbd->source);
        return -1;
    }
    if (wait_until(nbd, first_ready, NULL, "during the handshake",
                   err) < 0 ||
        nbd_source_ready(nbd, err) < 0) {
        nbd_source_close(&nbd->source);
        return -1;
    }
    return 0;
}

/* A fresh handle, before it connects to a URI: the URI may name the
 * files of its TLS credentials (tls-psk-file=, tls-certificates=), which
 * libnbd refuses by default.  The URI is the caller's input, named as a
 * file name is: it reads nothing its caller could not. */
static int setup_uri_handle(struct nbd_source *nbd, struct nbd_handle *handle,
                            struct q2s_error *err)
{
    if (nbd_set_uri_allow_local_file(handle, true) < 0)
        return q2s_error_set(err, nbd_errno_or(EINVAL), "%s: %s", nbd->name,
                             nbd_get_error());
    return 0;
}

/* Whether another connection sees the export as the first does: the same
 * size and block size constraints.  A server that says otherwise on
 * another connection (multi-conn promises the same data, not that the
 * server is consistent) would have requests that fit the first's size
 * refused on it, or answered from something else. */
static bool same_export(struct nbd_handle *first, struct nbd_handle *other)
{
    static const int constraints[] = { LIBNBD_SIZE_MINIMUM,
                                       LIBNBD_SIZE_MAXIMUM };

    if (nbd_get_size(other) != nbd_get_size(first))
        return false;
    for (size_t i = 0; i < sizeof constraints / sizeof constraints[0]; i++)
        if (nbd_get_block_size(other, constraints[i]) !=
            nbd_get_block_size(first, constraints[i]))
            return false;
    return true;
}

/* More connections to uri, up to wanted in all, when the server says
 * that they see the same data (NBD_FLAG_CAN_MULTI_CONN): reads then go
 * over all of them.  One that cannot be had in a short time is given up,
 * and the others go on; this never fails. */
static void add_connections(struct nbd_source *nbd, const char *uri,
                            uint32_t wanted)
{
    size_t first_extra = nbd->connections;
    uint64_t deadline = q2s_now_milliseconds() + EXTRA_CONNECT_MILLISECONDS;
    size_t count;

    if (wanted > Q2S_NBD_MAX_CONNECTIONS)
        wanted = Q2S_NBD_MAX_CONNECTIONS;
    if (wanted <= 1 || nbd_can_multi_conn(nbd->handles[0]) <= 0)
        return;
    for (count = first_extra; count < wanted; count++) {
        struct q2s_error ignored = { 0 };
        struct nbd_handle *handle = new_handle(nbd, false, &ignored);

        if (!handle)
            break;
        if (setup_uri_handle(nbd, handle, &ignored) < 0 ||
            nbd_aio_connect_uri(handle, uri) < 0) {
            nbd_close(handle);
            break;
        }
        nbd->handles[count] = handle;
    }
    /* Their handshakes, all at once; the first connection is idle. */
    for (;;) {
        size_t ready = first_extra;
        size_t failed;

        while (ready < count && nbd_aio_is_ready(nbd->handles[ready]) > 0)
            ready++;
        if (ready == count || q2s_cancelled(nbd->cancel) ||
            q2s_now_milliseconds() >= deadline)
            break;
        /* Only the new ones: nothing is in flight on the others. */
        if (poll_connections(nbd, first_extra, count, Q2S_POLL_MILLISECONDS,
                             &failed) < 0)
            break;
    }
    /* Keep those that are ready and agree with the first, in order; close
     * the rest. */
    nbd->connections = first_extra;
    for (size_t i = first_extra; i < count; i++) {
        if (nbd_aio_is_ready(nbd->handles[i]) > 0 &&
            same_export(nbd->handles[0], nbd->handles[i]) &&
            nbd->connections == i)
            nbd->connections++;
        else
            nbd_close(nbd->handles[i]);
    }
}

int q2s_source_open_nbd_uri(const char *uri,
                            const struct q2s_nbd_params *params,
                            struct q2s_source **source,
                            struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_source_new(uri, params, err);

    if (!nbd)
        return -1;
    if (setup_uri_handle(nbd, nbd->handles[0], err) < 0) {
        nbd_source_close(&nbd->source);
        return -1;
    }
    if (finish_connecting(nbd, nbd_aio_connect_uri(nbd->handles[0], uri),
                          "cannot connect", err) < 0)
        return -1;
    add_connections(nbd, uri, params->connections
                                  ? params->connections
                                  : Q2S_NBD_DEFAULT_CONNECTIONS);
    *source = &nbd->source;
    return 0;
}

int q2s_source_open_nbd_socket(int fd, const char *name,
                               const struct q2s_nbd_params *params,
                               struct q2s_source **source,
                               struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_source_new(name, params, err);
    char what[160];

    if (!nbd) {
        close(fd);
        return -1;
    }
    snprintf(what, sizeof what, "cannot connect to %s",
             params->server ? params->server : "the server");
    /* The handle owns the socket from here on, even on failure. */
    if (finish_connecting(nbd, nbd_aio_connect_socket(nbd->handles[0], fd),
                          what, err) < 0)
        return -1;
    *source = &nbd->source;
    return 0;
}
