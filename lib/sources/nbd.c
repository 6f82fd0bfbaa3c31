#define _GNU_SOURCE
#include "sources/nbd.h"

#include <errno.h>
#include <libnbd.h>
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
 * large ones (measured: 256 KiB x 64 beat 2 MiB x 8 by about 2x). */
#define REQUEST_BYTES (256 * 1024)
/* Requests in flight at once for one read. */
#define REQUESTS_IN_FLIGHT 64
/* How much one block status query asks about. */
#define STATUS_QUERY_BYTES (UINT64_C(1) << 30)
/* How long a clean disconnect may take before the socket is just closed. */
#define DISCONNECT_MILLISECONDS 1000

struct extent {
    uint64_t start, end;
};
Q2S_DEFINE_VECTOR_TYPE(extent_vector, struct extent)

/* What the last block status answer said about one meta context: the
 * extents whose flags match, within [start, end). */
struct status_cache {
    const char *context;
    uint32_t mask, match;  /* an extent is kept when (flags & mask) == match */
    uint64_t start, end;
    struct extent_vector extents;
};

struct nbd_source {
    struct q2s_source source;  /* first */
    /* NULL once the connection is dropped after a failure: no reply can
     * then land in a buffer that the caller has freed. */
    struct nbd_handle *nbd;
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
    struct status_cache allocation;
    /* qemu:dirty-bitmap:NAME, with a dirty bitmap: what is dirty. */
    char *dirty_context;       /* or NULL */
    struct status_cache dirty;
    q2s_nbd_said_fn *server_said;  /* or NULL */
    void *server_said_opaque;
    char name[];
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

/* Reports a libnbd failure, with what the server said if it said more. */
static int nbd_failure(struct nbd_source *nbd, struct q2s_error *err,
                       const char *what)
{
    char said[1024] = "";

    if (nbd->server_said)
        nbd->server_said(nbd->server_said_opaque, said, sizeof said);
    if (said[0])
        return q2s_error_set(err, nbd_errno_or(EIO), "%s: %s: %s", nbd->name,
                             what, said);
    return q2s_error_set(err, nbd_errno_or(EIO), "%s: %s: %s", nbd->name, what,
                         nbd_get_error() ? nbd_get_error() : "NBD error");
}

/* Ends the connection at once, after a failure or an interrupt. */
static void drop_connection(struct nbd_source *nbd)
{
    if (nbd->nbd) {
        nbd_close(nbd->nbd);
        nbd->nbd = NULL;
    }
}

static int connection_gone(struct nbd_source *nbd, struct q2s_error *err)
{
    return q2s_error_set(err, ENOTCONN,
                         "%s: the connection was closed after an "
                         "earlier error", nbd->name);
}

enum wait_goal {
    WAIT_CONNECTED,     /* the handshake is done */
    WAIT_REPLIES,       /* no command is in flight */
};

static bool reached(struct nbd_source *nbd, enum wait_goal goal)
{
    if (goal == WAIT_CONNECTED)
        return nbd_aio_is_ready(nbd->nbd) > 0;
    return nbd_aio_in_flight(nbd->nbd) == 0;
}

/* Runs the connection until goal is reached.  It polls in short slices,
 * so that an interrupt is seen at once, and fails when the server has
 * answered nothing for the timeout (a reply to any command counts; the
 * handshake must be over within it).  On failure the connection is
 * dropped; doing (what was waited for) goes into the message. */
static int wait_for(struct nbd_source *nbd, enum wait_goal goal,
                    const char *doing, struct q2s_error *err)
{
    uint64_t last_answer = q2s_now_milliseconds();
    int64_t in_flight = nbd_aio_in_flight(nbd->nbd);

    while (!reached(nbd, goal)) {
        int64_t still;

        if (q2s_cancelled(nbd->cancel)) {
            drop_connection(nbd);
            return q2s_error_set(err, ECANCELED, "interrupted");
        }
        if (nbd_poll(nbd->nbd, Q2S_POLL_MILLISECONDS) < 0 &&
            nbd_get_errno() != EINTR) {
            char what[160];

            snprintf(what, sizeof what, "%s %s", goal == WAIT_CONNECTED
                     ? "cannot connect" : "connection lost", doing);
            nbd_failure(nbd, err, what);
            drop_connection(nbd);
            return -1;
        }
        still = nbd_aio_in_flight(nbd->nbd);
        if (still < in_flight)
            last_answer = q2s_now_milliseconds();
        in_flight = still;
        if (nbd->timeout_seconds && !reached(nbd, goal) &&
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

struct status_answer {
    struct status_cache *cache;
    uint64_t offset;  /* where the answer starts */
    uint64_t covered; /* bytes it described */
    bool out_of_memory;
};

static int add_extent(struct status_cache *cache, uint64_t start,
                      uint64_t end)
{
    struct extent_vector *extents = &cache->extents;

    if (extents->len > 0 && extents->ptr[extents->len - 1].end == start) {
        extents->ptr[extents->len - 1].end = end;
        return 0;
    }
    return extent_vector_append(extents, (struct extent){ start, end });
}

/* Entries are (length, flags) pairs; other contexts than the cache's are
 * answered too when several were negotiated. */
static int status_callback(void *opaque, const char *context, uint64_t offset,
                           uint32_t *entries, size_t entry_count, int *error)
{
    struct status_answer *answer = opaque;
    struct status_cache *cache = answer->cache;
    uint64_t pos = offset;

    (void)error;
    if (strcmp(context, cache->context) != 0)
        return 0;
    for (size_t i = 0; i + 1 < entry_count; i += 2) {
        uint64_t end = pos + entries[i];

        if ((entries[i + 1] & cache->mask) == cache->match && end > pos &&
            add_extent(cache, pos, end) < 0) {
            answer->out_of_memory = true;
            return -1;
        }
        pos = end;
    }
    answer->covered = pos - answer->offset;
    return 0;
}

/* What is left of the export from offset (a multiple of the minimum block
 * size) is shorter than one block: its size is not a multiple of it.  No
 * aligned request can ask about that tail, so it is taken for data (and
 * for dirty), which a later read tries to get. */
static bool in_short_tail(const struct nbd_source *nbd, uint64_t offset)
{
    return nbd->source.size - offset < nbd->minimum_bytes;
}

static int query_status(struct nbd_source *nbd, struct status_cache *cache,
                        uint64_t offset, struct q2s_error *err)
{
    uint64_t count;
    struct status_answer answer;
    char doing[96];
    int64_t cookie;

    if (!nbd->nbd)
        return connection_gone(nbd, err);
    offset = q2s_round_down(offset, nbd->minimum_bytes);
    cache->extents.len = 0;
    if (in_short_tail(nbd, offset)) {
        if (add_extent(cache, offset, nbd->source.size) < 0)
            return q2s_error_set_errno(err, ENOMEM, "%s: block status",
                                       nbd->name);
        cache->start = offset;
        cache->end = nbd->source.size;
        return 0;
    }
    count = nbd->source.size - offset;
    if (count > STATUS_QUERY_BYTES)
        count = STATUS_QUERY_BYTES;
    /* Whole blocks only: the server may describe more than asked. */
    count = q2s_round_down(count, nbd->minimum_bytes);
    answer = (struct status_answer){ .cache = cache, .offset = offset };
    snprintf(doing, sizeof doing, "during a block status query at offset "
             "%llu", (unsigned long long)offset);
    cookie = nbd_aio_block_status(nbd->nbd, count, offset,
                                  (nbd_extent_callback){
                                      .callback = status_callback,
                                      .user_data = &answer },
                                  NBD_NULL_COMPLETION, 0);
    if (cookie < 0)
        return nbd_failure(nbd, err, "cannot get the block status");
    if (wait_for(nbd, WAIT_REPLIES, doing, err) < 0)
        return -1;
    if (nbd_aio_command_completed(nbd->nbd, cookie) < 0) {
        if (answer.out_of_memory)
            return q2s_error_set_errno(err, ENOMEM, "%s: block status",
                                       nbd->name);
        return nbd_failure(nbd, err, "cannot get the block status");
    }
    if (answer.covered == 0)
        return q2s_error_set(err, EPROTO,
                             "%s: the server described no extent of %s at "
                             "offset %llu", nbd->name, cache->context,
                             (unsigned long long)offset);
    cache->start = offset;
    cache->end = offset + answer.covered;
    if (cache->end > nbd->source.size)
        cache->end = nbd->source.size;
    return 0;
}

/* The first extent of the cache's kind at or after offset, asking the
 * server as needed: 1 with [*start, *end), 0 if none. */
static int next_extent(struct nbd_source *nbd, struct status_cache *cache,
                       uint64_t offset, uint64_t *start, uint64_t *end,
                       struct q2s_error *err)
{
    while (offset < nbd->source.size) {
        if (offset < cache->start || offset >= cache->end) {
            if (q2s_cancelled(nbd->cancel))
                return q2s_error_set(err, ECANCELED, "interrupted");
            if (query_status(nbd, cache, offset, err) < 0)
                return -1;
        }
        for (size_t i = 0; i < cache->extents.len; i++) {
            const struct extent *e = &cache->extents.ptr[i];

            if (e->end > offset && e->start < cache->end) {
                *start = e->start > offset ? e->start : offset;
                *end = e->end < cache->end ? e->end : cache->end;
                return 1;
            }
        }
        offset = cache->end;
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

/* Splits the reads into requests, REQUESTS_IN_FLIGHT of them in flight
 * at once, across reads: many small reads cost one round trip per batch,
 * not one each. */
static int read_requests_of(struct nbd_source *nbd,
                            const struct q2s_read *reads, size_t count,
                            struct q2s_error *err)
{
    size_t i = 0;
    size_t done = 0;  /* bytes of reads[i] asked for */

    while (i < count) {
        int64_t cookies[REQUESTS_IN_FLIGHT];
        uint64_t offsets[REQUESTS_IN_FLIGHT];
        size_t sent = 0;
        char doing[96];
        int ret = 0;

        if (!nbd->nbd)
            return connection_gone(nbd, err);
        while (sent < REQUESTS_IN_FLIGHT && i < count) {
            const struct q2s_read *piece = &reads[i];
            size_t n = piece->length - done < nbd->request_bytes
                           ? piece->length - done : nbd->request_bytes;
            uint64_t offset = piece->offset + done;

            if (n == 0) {
                i++;
                done = 0;
                continue;
            }
            cookies[sent] = nbd_aio_pread(nbd->nbd,
                                          (uint8_t *)piece->buf + done, n,
                                          offset, NBD_NULL_COMPLETION, 0);
            if (cookies[sent] < 0) {
                char what[96];

                snprintf(what, sizeof what, "cannot send a read request "
                         "for offset %llu", (unsigned long long)offset);
                ret = nbd_failure(nbd, err, what);
                break;
            }
            offsets[sent++] = offset;
            done += n;
            if (done == piece->length) {
                i++;
                done = 0;
            }
        }
        if (sent == 0)
            return ret;
        /* Even after an error, what was sent must finish (or the
         * connection go) before the buffer goes away. */
        snprintf(doing, sizeof doing, "while reading at offset %llu",
                 (unsigned long long)offsets[0]);
        if (wait_for(nbd, WAIT_REPLIES, doing,
                     ret < 0 ? &(struct q2s_error){ 0 } : err) < 0)
            return -1;
        for (size_t k = 0; k < sent; k++) {
            if (nbd_aio_command_completed(nbd->nbd, cookies[k]) < 0 &&
                ret == 0) {
                char what[64];

                snprintf(what, sizeof what, "read error at offset %llu",
                         (unsigned long long)offsets[k]);
                ret = nbd_failure(nbd, err, what);
            }
        }
        if (ret < 0)
            return -1;
    }
    return 0;
}

static int read_requests(struct nbd_source *nbd, uint8_t *p, size_t length,
                         uint64_t offset, struct q2s_error *err)
{
    struct q2s_read read = { p, length, offset };

    return read_requests_of(nbd, &read, 1, err);
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

    if (!nbd->nbd)
        return connection_gone(nbd, err);
    strict = nbd_get_strict_mode(nbd->nbd);
    nbd_set_strict_mode(nbd->nbd, strict & ~(uint32_t)LIBNBD_STRICT_ALIGN);
    ret = read_requests(nbd, p, length, offset, err);
    if (nbd->nbd)
        nbd_set_strict_mode(nbd->nbd, strict);
    if (ret < 0 && nbd->nbd) {
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

static int nbd_check_size(struct q2s_source *source, struct q2s_error *err)
{
    (void)source;
    (void)err;
    return 0;  /* an export's size is fixed for the connection */
}

static void nbd_source_close(struct q2s_source *source)
{
    struct nbd_source *nbd = nbd_of(source);

    /* A clean disconnect, briefly: a server that does not take it is
     * just left. */
    if (nbd->nbd && nbd_aio_is_ready(nbd->nbd) > 0 &&
        nbd_aio_disconnect(nbd->nbd, 0) == 0) {
        uint64_t deadline =
            q2s_now_milliseconds() + DISCONNECT_MILLISECONDS;

        while (nbd_aio_is_closed(nbd->nbd) <= 0 &&
               nbd_aio_is_dead(nbd->nbd) <= 0 &&
               !q2s_cancelled(nbd->cancel) &&
               q2s_now_milliseconds() < deadline &&
               (nbd_poll(nbd->nbd, Q2S_POLL_MILLISECONDS) >= 0 ||
                nbd_get_errno() == EINTR))
            ;
    }
    if (nbd->nbd)
        nbd_close(nbd->nbd);
    extent_vector_free(&nbd->allocation.extents);
    extent_vector_free(&nbd->dirty.extents);
    free(nbd->dirty_context);
    free(nbd);
}

static const struct q2s_source_ops nbd_ops = {
    .next_data = nbd_next_data,
    .next_dirty = nbd_next_dirty,
    .read = nbd_read,
    .read_batch = nbd_read_batch,
    .check_size = nbd_check_size,
    .close = nbd_source_close,
};

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
    nbd->allocation = (struct status_cache){
        .context = LIBNBD_CONTEXT_BASE_ALLOCATION,
        .mask = LIBNBD_STATE_ZERO,
        .match = 0,
    };
    if (params->dirty_bitmap &&
        asprintf(&nbd->dirty_context, "%s%s", Q2S_DIRTY_BITMAP_CONTEXT,
                 params->dirty_bitmap) < 0) {
        nbd->dirty_context = NULL;
        q2s_error_set_errno(err, ENOMEM, "%s", name);
        nbd_source_close(&nbd->source);
        return NULL;
    }
    /* "qemu:dirty-bitmap:": flag 1 is dirty (QEMU's docs/interop/nbd.txt). */
    nbd->dirty = (struct status_cache){
        .context = nbd->dirty_context,
        .mask = 1,
        .match = 1,
    };
    nbd->nbd = nbd_create();
    if (!nbd->nbd ||
        nbd_add_meta_context(nbd->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
        (nbd->dirty_context &&
         nbd_add_meta_context(nbd->nbd, nbd->dirty_context) < 0)) {
        q2s_error_set(err, nbd_errno_or(ENOMEM),
                      "%s: %s", name, nbd_get_error());
        nbd_source_close(&nbd->source);
        return NULL;
    }
    return nbd;
}

/* After connecting: the size, the block status, the request size. */
static int nbd_source_ready(struct nbd_source *nbd, struct q2s_error *err)
{
    int64_t size = nbd_get_size(nbd->nbd);
    int64_t maximum = nbd_get_block_size(nbd->nbd, LIBNBD_SIZE_MAXIMUM);

    if (size < 0)
        return nbd_failure(nbd, err, "cannot get the size");
    nbd->source.size = (uint64_t)size;
    nbd->has_allocation =
        nbd_can_meta_context(nbd->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) > 0;
    /* Checked now, before any output: without it, an increment would be
     * silently empty or full. */
    if (nbd->dirty_context &&
        nbd_can_meta_context(nbd->nbd, nbd->dirty_context) <= 0)
        return q2s_error_set(err, ENOENT, "%s: the server does not export "
                             "the dirty bitmap '%s' (meta context %s)",
                             nbd->name,
                             nbd->dirty_context +
                                 strlen(Q2S_DIRTY_BITMAP_CONTEXT),
                             nbd->dirty_context);
    int64_t minimum = nbd_get_block_size(nbd->nbd, LIBNBD_SIZE_MINIMUM);

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
                             struct q2s_source **source,
                             struct q2s_error *err)
{
    if (connected < 0) {
        nbd_failure(nbd, err, connect_what);
        nbd_source_close(&nbd->source);
        return -1;
    }
    if (wait_for(nbd, WAIT_CONNECTED, "during the handshake", err) < 0 ||
        nbd_source_ready(nbd, err) < 0) {
        nbd_source_close(&nbd->source);
        return -1;
    }
    *source = &nbd->source;
    return 0;
}

int q2s_source_open_nbd_uri(const char *uri,
                            const struct q2s_nbd_params *params,
                            struct q2s_source **source,
                            struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_source_new(uri, params, err);

    if (!nbd)
        return -1;
    return finish_connecting(nbd, nbd_aio_connect_uri(nbd->nbd, uri),
                             "cannot connect", source, err);
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
    return finish_connecting(nbd, nbd_aio_connect_socket(nbd->nbd, fd), what,
                             source, err);
}
