#define _GNU_SOURCE
#include "sources/nbd.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fdio.h"
#include "open/child.h"
#include "error.h"
#include "open/image_refs.h"
#include "open/qemu_img_map.h"

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

struct nbd_source {
    struct q2s_source source;  /* first */
    /* NULL once the connection is dropped after a failure: no reply can
     * then land in a buffer that the caller has freed. */
    struct nbd_handle *nbd;
    pid_t server_pid;          /* a qemu-nbd we started, or 0 */
    uint32_t timeout_seconds;  /* 0: wait for ever */
    bool has_allocation;       /* base:allocation was negotiated */
    uint64_t request_bytes;
    uint64_t minimum_bytes;    /* requests are multiples of this, aligned */
    /* The data extents of the last block status answer, which covered
     * [status_start, status_end). */
    uint64_t status_start, status_end;
    struct extent *extents;
    size_t extent_count, extent_capacity;
    int server_stderr;         /* what qemu-nbd said, or -1 */
    /* For a local image: the extents whose bytes lie in the image file
     * as they are, read (and spliced) from it directly. */
    int image_fd;
    struct q2s_mapping *map;
    size_t map_count;
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

/* The last line that the server wrote on its stderr, without its newline,
 * or "" if it said nothing. */
static void server_said(struct nbd_source *nbd, char *line, size_t size)
{
    char text[4096];
    ssize_t n;
    char *last, *cut;

    line[0] = '\0';
    if (nbd->server_stderr < 0)
        return;
    n = pread(nbd->server_stderr, text, sizeof text - 1, 0);
    if (n <= 0)
        return;
    text[n] = '\0';
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    last = strrchr(text, '\n');
    last = last ? last + 1 : text;
    /* "qemu-nbd: Failed to blk_new_open '<options>': <reason>": the
     * reason is what matters. */
    while ((cut = strstr(last, "': ")) != NULL)
        last = cut + 3;
    /* Cut to fit, on purpose. */
    n = (ssize_t)strnlen(last, size - 1);
    memcpy(line, last, (size_t)n);
    line[n] = '\0';
}

/* Reports a libnbd failure, with what the server said if it said more. */
static int nbd_failure(struct nbd_source *nbd, struct q2s_error *err,
                       const char *what)
{
    char said[1024];

    server_said(nbd, said, sizeof said);
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
    return q2s_error_set(err, ENOTCONN, "%s: the connection was closed after an "
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

        if (q2s_source_interrupted(&nbd->source)) {
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
            q2s_error_set(err, ETIMEDOUT, "%s: the server did not answer for %u s %s",
                          nbd->name, nbd->timeout_seconds, doing);
            drop_connection(nbd);
            return -1;
        }
    }
    return 0;
}

struct status_answer {
    struct nbd_source *nbd;
    uint64_t offset;  /* where the answer starts */
    uint64_t covered; /* bytes it described */
    bool out_of_memory;
};

static int add_extent(struct nbd_source *nbd, uint64_t start, uint64_t end)
{
    if (nbd->extent_count > 0 &&
        nbd->extents[nbd->extent_count - 1].end == start) {
        nbd->extents[nbd->extent_count - 1].end = end;
        return 0;
    }
    if (nbd->extent_count == nbd->extent_capacity) {
        size_t capacity = nbd->extent_capacity ? nbd->extent_capacity * 2 : 64;
        struct extent *extents =
            reallocarray(nbd->extents, capacity, sizeof *extents);

        if (!extents)
            return -1;
        nbd->extents = extents;
        nbd->extent_capacity = capacity;
    }
    nbd->extents[nbd->extent_count++] = (struct extent){ start, end };
    return 0;
}

/* base:allocation: entries are (length, flags) pairs. */
static int status_callback(void *opaque, const char *context, uint64_t offset,
                           uint32_t *entries, size_t entry_count, int *error)
{
    struct status_answer *answer = opaque;
    uint64_t pos = offset;

    (void)error;
    if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
        return 0;
    for (size_t i = 0; i + 1 < entry_count; i += 2) {
        uint64_t end = pos + entries[i];

        /* Only what reads as zeros is left out: a hole without the zero
         * flag may read as anything (NBD protocol, "base:allocation"). */
        if (!(entries[i + 1] & LIBNBD_STATE_ZERO) && end > pos &&
            add_extent(answer->nbd, pos, end) < 0) {
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
 * aligned request can ask about that tail, so it is taken for data, which
 * a later read tries to get. */
static bool in_short_tail(const struct nbd_source *nbd, uint64_t offset)
{
    return nbd->source.size - offset < nbd->minimum_bytes;
}

static int query_status(struct nbd_source *nbd, uint64_t offset,
                        struct q2s_error *err)
{
    uint64_t count;
    struct status_answer answer;
    char doing[96];
    int64_t cookie;

    if (!nbd->nbd)
        return connection_gone(nbd, err);
    offset -= offset % nbd->minimum_bytes;
    nbd->extent_count = 0;
    if (in_short_tail(nbd, offset)) {
        if (add_extent(nbd, offset, nbd->source.size) < 0)
            return q2s_error_set_errno(err, ENOMEM, "%s: block status",
                                       nbd->name);
        nbd->status_start = offset;
        nbd->status_end = nbd->source.size;
        return 0;
    }
    count = nbd->source.size - offset;
    if (count > STATUS_QUERY_BYTES)
        count = STATUS_QUERY_BYTES;
    /* Whole blocks only: the server may describe more than asked. */
    count -= count % nbd->minimum_bytes;
    answer = (struct status_answer){ .nbd = nbd, .offset = offset };
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
        return q2s_error_set(err, EPROTO, "%s: the server described no extent at "
                             "offset %llu", nbd->name,
                             (unsigned long long)offset);
    nbd->status_start = offset;
    nbd->status_end = offset + answer.covered;
    if (nbd->status_end > nbd->source.size)
        nbd->status_end = nbd->source.size;
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
    while (offset < source->size) {
        if (offset < nbd->status_start || offset >= nbd->status_end) {
            if (q2s_source_interrupted(source))
                return q2s_error_set(err, ECANCELED, "interrupted");
            if (query_status(nbd, offset, err) < 0)
                return -1;
        }
        for (size_t i = 0; i < nbd->extent_count; i++) {
            const struct extent *e = &nbd->extents[i];

            if (e->end > offset && e->start < nbd->status_end) {
                *start = e->start > offset ? e->start : offset;
                *end = e->end < nbd->status_end ? e->end : nbd->status_end;
                return 1;
            }
        }
        offset = nbd->status_end;
    }
    return 0;
}

/* Splits the read into requests that are all in flight at once. */
static int read_requests(struct nbd_source *nbd, uint8_t *p, size_t length,
                         uint64_t offset, struct q2s_error *err)
{
    while (length > 0) {
        int64_t cookies[REQUESTS_IN_FLIGHT];
        uint64_t offsets[REQUESTS_IN_FLIGHT];
        size_t count = 0;
        char doing[96];
        int ret = 0;

        if (!nbd->nbd)
            return connection_gone(nbd, err);
        for (; count < REQUESTS_IN_FLIGHT && length > 0; count++) {
            size_t n = length < nbd->request_bytes ? length
                                                   : nbd->request_bytes;

            cookies[count] = nbd_aio_pread(nbd->nbd, p, n, offset,
                                           NBD_NULL_COMPLETION, 0);
            if (cookies[count] < 0) {
                char what[96];

                snprintf(what, sizeof what, "cannot send a read request "
                         "for offset %llu", (unsigned long long)offset);
                ret = nbd_failure(nbd, err, what);
                break;
            }
            offsets[count] = offset;
            p += n;
            offset += n;
            length -= n;
        }
        if (count == 0)
            return -1;
        /* Even after an error, what was sent must finish (or the
         * connection go) before the buffer goes away. */
        snprintf(doing, sizeof doing, "while reading at offset %llu",
                 (unsigned long long)offsets[0]);
        if (wait_for(nbd, WAIT_REPLIES, doing,
                     ret < 0 ? &(struct q2s_error){ 0 } : err) < 0)
            return -1;
        for (size_t i = 0; i < count; i++) {
            if (nbd_aio_command_completed(nbd->nbd, cookies[i]) < 0 &&
                ret == 0) {
                char what[64];

                snprintf(what, sizeof what, "read error at offset %llu",
                         (unsigned long long)offsets[i]);
                ret = nbd_failure(nbd, err, what);
            }
        }
        if (ret < 0)
            return -1;
    }
    return 0;
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

/* Index of the first mapping that ends after offset. */
static size_t map_search(const struct nbd_source *nbd, uint64_t offset)
{
    size_t low = 0, high = nbd->map_count;

    while (low < high) {
        size_t mid = low + (high - low) / 2;

        if (nbd->map[mid].start + nbd->map[mid].length <= offset)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

static int nbd_read(struct q2s_source *source, void *buf, size_t length,
                    uint64_t offset, struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_of(source);
    uint8_t *p = buf;

    while (length > 0) {
        size_t i = map_search(nbd, offset);
        size_t n = length;

        if (i < nbd->map_count && nbd->map[i].start <= offset) {
            const struct q2s_mapping *m = &nbd->map[i];

            if (m->start + m->length - offset < n)
                n = (size_t)(m->start + m->length - offset);
            if (q2s_pread_full(nbd->image_fd, p, n,
                               m->file_offset + (offset - m->start),
                               nbd->name, err) < 0)
                return -1;
        } else {
            if (i < nbd->map_count && nbd->map[i].start - offset < n)
                n = (size_t)(nbd->map[i].start - offset);
            if (read_aligned(nbd, p, &n, offset, err) < 0)
                return -1;
        }
        p += n;
        offset += n;
        length -= n;
    }
    return 0;
}

static uint64_t nbd_locate(struct q2s_source *source, uint64_t offset,
                           uint64_t length, int *fd, uint64_t *fd_offset)
{
    struct nbd_source *nbd = nbd_of(source);
    size_t i = map_search(nbd, offset);
    const struct q2s_mapping *m;

    if (i == nbd->map_count || nbd->map[i].start > offset)
        return 0;
    m = &nbd->map[i];
    *fd = nbd->image_fd;
    *fd_offset = m->file_offset + (offset - m->start);
    return m->start + m->length - offset < length
               ? m->start + m->length - offset : length;
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
               !q2s_source_interrupted(source) &&
               q2s_now_milliseconds() < deadline &&
               (nbd_poll(nbd->nbd, Q2S_POLL_MILLISECONDS) >= 0 ||
                nbd_get_errno() == EINTR))
            ;
    }
    if (nbd->nbd)
        nbd_close(nbd->nbd);
    q2s_child_kill(nbd->server_pid);
    if (nbd->server_stderr >= 0)
        close(nbd->server_stderr);
    if (nbd->image_fd >= 0)
        close(nbd->image_fd);
    free(nbd->map);
    free(nbd->extents);
    free(nbd);
}

static const struct q2s_source_ops nbd_ops = {
    .next_data = nbd_next_data,
    .read = nbd_read,
    .locate = nbd_locate,
    .check_size = nbd_check_size,
    .close = nbd_source_close,
};

static struct nbd_source *
nbd_source_new(const char *name, const struct q2s_source_options *options,
               struct q2s_error *err)
{
    struct nbd_source *nbd = calloc(1, sizeof *nbd + strlen(name) + 1);

    if (!nbd) {
        q2s_error_set_errno(err, ENOMEM, "%s", name);
        return NULL;
    }
    nbd->source.ops = &nbd_ops;
    nbd->source.read_bytes = REQUEST_BYTES * REQUESTS_IN_FLIGHT;
    nbd->request_bytes = REQUEST_BYTES;
    nbd->minimum_bytes = 1;
    nbd->server_stderr = -1;
    nbd->image_fd = -1;
    nbd->timeout_seconds = options->timeout_seconds;
    nbd->source.cancel.flag = options->interrupted;
    strcpy(nbd->name, name);
    nbd->nbd = nbd_create();
    if (!nbd->nbd ||
        nbd_add_meta_context(nbd->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0) {
        q2s_error_set(err, nbd_errno_or(ENOMEM), "%s: %s", name, nbd_get_error());
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
    int64_t minimum = nbd_get_block_size(nbd->nbd, LIBNBD_SIZE_MINIMUM);

    if (maximum > 0 && (uint64_t)maximum < nbd->request_bytes)
        nbd->request_bytes = (uint64_t)maximum;
    /* A power of two up to 64 KiB (NBD protocol, "Block size
     * constraints"); anything else is not honoured. */
    if (minimum > 1 && minimum <= 65536 && (minimum & (minimum - 1)) == 0 &&
        (uint64_t)minimum <= nbd->request_bytes)
        nbd->minimum_bytes = (uint64_t)minimum;
    return 0;
}

/* Whether the qemu-nbd we started has exited (it is then reaped). */
static bool server_exited(struct nbd_source *nbd)
{
    if (nbd->server_pid <= 0 ||
        waitpid(nbd->server_pid, NULL, WNOHANG) != nbd->server_pid)
        return false;
    nbd->server_pid = 0;
    return true;
}

/* Waits for the handshake, then takes in what the server offers. */
static int finish_connecting(struct nbd_source *nbd, struct q2s_error *err)
{
    if (wait_for(nbd, WAIT_CONNECTED, "during the handshake", err) < 0)
        return -1;
    return nbd_source_ready(nbd, err);
}

int q2s_source_open_nbd_uri(const char *uri,
                            const struct q2s_source_options *options,
                            struct q2s_source **source,
                            struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_source_new(uri, options, err);

    if (!nbd)
        return -1;
    if (nbd_aio_connect_uri(nbd->nbd, uri) < 0) {
        nbd_failure(nbd, err, "cannot connect");
        nbd_source_close(&nbd->source);
        return -1;
    }
    if (finish_connecting(nbd, err) < 0) {
        nbd_source_close(&nbd->source);
        return -1;
    }
    *source = &nbd->source;
    return 0;
}

/* QEMU block driver names are lower-case words; anything else could
 * smuggle options into --image-opts. */
static bool plausible_format(const char *format)
{
    if (!*format)
        return false;
    for (const char *c = format; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-'))
            return false;
    }
    return true;
}

/* --image-opts value: commas in the file name are doubled. */
static char *image_options(const char *path, const char *format,
                           bool block_device)
{
    size_t commas = 0;
    char *options, *p;

    for (const char *c = path; *c; c++)
        commas += *c == ',';
    if (asprintf(&options, "driver=%s,read-only=on,file.driver=%s,"
                 "file.filename=%*s", format,
                 block_device ? "host_device" : "file",
                 (int)(strlen(path) + commas), "") < 0)
        return NULL;
    p = options + strlen(options) - strlen(path) - commas;
    for (const char *c = path; *c; c++) {
        *p++ = *c;
        if (*c == ',')
            *p++ = ',';
    }
    return options;
}

/* Reads and checks the map of a local image.  A map that does not fit
 * the image or its file is dropped: everything then goes through NBD. */
static int use_map(struct nbd_source *nbd, const char *image_opts,
                   const char *path, const struct q2s_source_options *options,
                   struct q2s_error *err)
{
    uint64_t file_size;

    if (q2s_qemu_img_map(image_opts, path, options, &nbd->map,
                         &nbd->map_count, err) < 0)
        return -1;
    if (nbd->map_count == 0)
        return 0;
    nbd->image_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (nbd->image_fd < 0 || q2s_fd_size(nbd->image_fd, &file_size) < 0)
        goto drop;
    for (size_t i = 0; i < nbd->map_count; i++) {
        const struct q2s_mapping *m = &nbd->map[i];

        if (m->start > nbd->source.size ||
            m->length > nbd->source.size - m->start ||
            m->file_offset > file_size ||
            m->length > file_size - m->file_offset)
            goto drop;
    }
    return 0;

drop:
    free(nbd->map);
    nbd->map = NULL;
    nbd->map_count = 0;
    return 0;
}

/* A listening socket for qemu-nbd and our connection to it, with no name
 * left anywhere: bound in a private directory, connected to (the
 * connection waits in the backlog), and its name and directory removed
 * before qemu-nbd starts.  So no other process can ever connect, and
 * nothing is left in $TMPDIR whatever happens later. */
static int private_socket(int *listen_fd, int *client_fd,
                          struct q2s_error *err)
{
    const char *tmpdir = getenv("TMPDIR");
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    char directory[sizeof address.sun_path - 2];
    int saved;

    if (!tmpdir || !*tmpdir ||
        strlen(tmpdir) + sizeof "/q2s-XXXXXX" > sizeof directory)
        tmpdir = "/tmp";
    snprintf(directory, sizeof directory, "%s/q2s-XXXXXX", tmpdir);
    *client_fd = -1;
    *listen_fd = -1;
    if (!mkdtemp(directory))
        return q2s_error_set_errno(err, errno, "cannot make a directory for "
                                   "qemu-nbd's socket in %s", tmpdir);
    snprintf(address.sun_path, sizeof address.sun_path, "%s/s", directory);
    *listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *client_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*listen_fd < 0 || *client_fd < 0 ||
        bind(*listen_fd, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(*listen_fd, 1) < 0 ||
        connect(*client_fd, (struct sockaddr *)&address, sizeof address) < 0)
        goto fail;
    unlink(address.sun_path);
    rmdir(directory);
    return 0;

fail:
    saved = errno;
    unlink(address.sun_path);
    rmdir(directory);
    if (*listen_fd >= 0)
        close(*listen_fd);
    if (*client_fd >= 0)
        close(*client_fd);
    return q2s_error_set_errno(err, saved, "cannot make a socket for "
                               "qemu-nbd");
}

/* Starts qemu-nbd on the image, served to us alone over a socket that it
 * gets by systemd socket activation.  Its stderr goes to a memory file,
 * so that its complaint becomes part of one error message. */
static int start_qemu_nbd(struct nbd_source *nbd, char *image_opts,
                          bool untrusted, struct q2s_error *err)
{
    char *argv[] = { "qemu-nbd", "--read-only", "--image-opts", "--",
                     image_opts, NULL };
    struct q2s_child_spec spec = { .argv = argv, .stdout_fd = -1 };
    int client_fd;

    nbd->server_stderr = memfd_create("qemu-nbd-stderr", MFD_CLOEXEC);
    if (private_socket(&spec.listen_fd, &client_fd, err) < 0)
        return -1;
    spec.stderr_fd = nbd->server_stderr;
    if (untrusted)
        spec.address_space_bytes = Q2S_UNTRUSTED_ADDRESS_SPACE;
    if (q2s_child_spawn(&spec, &nbd->server_pid, err) < 0) {
        close(spec.listen_fd);
        close(client_fd);
        return -1;
    }
    close(spec.listen_fd);
    /* The handle owns the socket from here on, even on failure. */
    if (nbd_aio_connect_socket(nbd->nbd, client_fd) < 0)
        return nbd_failure(nbd, err, "cannot connect to qemu-nbd");
    return 0;
}

int q2s_source_open_qemu_nbd(const char *path,
                             const struct q2s_source_options *options,
                             struct q2s_source **source,
                             struct q2s_error *err)
{
    const char *format = options->format;
    struct nbd_source *nbd;
    char *image_opts;
    struct stat st;

    if (!plausible_format(format))
        return q2s_error_set(err, EINVAL, "unknown input format '%s'", format);
    if (q2s_stat_input(path, &st, err) < 0)
        return -1;
    if (!q2s_on_path("qemu-nbd"))
        return q2s_error_set(err, ENOENT, "reading %s images needs qemu-nbd, which "
                             "is not installed (Debian package qemu-utils)",
                             format);
    /* Before QEMU opens anything: what the image names could block it or
     * leak another file into the output. */
    if (q2s_check_image_references(path, format, options->untrusted,
                                   err) < 0)
        return -1;
    nbd = nbd_source_new(path, options, err);
    if (!nbd)
        return -1;
    image_opts = image_options(path, format, S_ISBLK(st.st_mode));
    if (!image_opts) {
        nbd_source_close(&nbd->source);
        return q2s_error_set_errno(err, ENOMEM, "%s", path);
    }
    if (start_qemu_nbd(nbd, image_opts, options->untrusted, err) < 0 ||
        finish_connecting(nbd, err) < 0 ||
        use_map(nbd, image_opts, path, options, err) < 0) {
        char said[1024];

        /* When qemu-nbd gave up, its own reason beats "connection lost". */
        server_said(nbd, said, sizeof said);
        if (said[0] && server_exited(nbd))
            q2s_error_set(err, EIO, "%s: cannot open it as %s: %s", path, format,
                          said);
        free(image_opts);
        nbd_source_close(&nbd->source);
        return -1;
    }
    free(image_opts);
    *source = &nbd->source;
    return 0;
}
