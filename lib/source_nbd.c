#define _GNU_SOURCE
#include "source_nbd.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "qemu_img_map.h"

/* One request: many small ones in flight kept qemu-nbd busier than a few
 * large ones (measured: 256 KiB x 64 beat 2 MiB x 8 by about 2x). */
#define REQUEST_BYTES (256 * 1024)
/* Requests in flight at once for one read. */
#define REQUESTS_IN_FLIGHT 64
/* How much one block status query asks about. */
#define STATUS_QUERY_BYTES (UINT64_C(1) << 30)

struct extent {
    uint64_t start, end;
};

struct nbd_source {
    struct q2s_source source;  /* first */
    struct nbd_handle *nbd;
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
        return q2s_error_set(err, "%s: %s: %s", nbd->name, what, said);
    return q2s_error_set(err, "%s: %s: %s", nbd->name, what,
                         nbd_get_error() ? nbd_get_error() : "NBD error");
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

static int query_status(struct nbd_source *nbd, uint64_t offset,
                        struct q2s_error *err)
{
    uint64_t count;
    struct status_answer answer;

    offset -= offset % nbd->minimum_bytes;
    count = nbd->source.size - offset;
    answer = (struct status_answer){ .nbd = nbd, .offset = offset };

    if (count > STATUS_QUERY_BYTES)
        count = STATUS_QUERY_BYTES;
    nbd->extent_count = 0;
    if (nbd_block_status(nbd->nbd, count, offset,
                         (nbd_extent_callback){ .callback = status_callback,
                                                .user_data = &answer },
                         0) < 0) {
        if (answer.out_of_memory)
            return q2s_error_set_errno(err, ENOMEM, "%s: block status",
                                       nbd->name);
        return nbd_failure(nbd, err, "cannot get the block status");
    }
    if (answer.covered == 0)
        return q2s_error_set(err, "%s: the server described no extent at "
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
                return q2s_error_set(err, "interrupted");
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

/* Waits until no request is in flight: even when interrupted, since the
 * replies land in the caller's buffer (a second signal ends the wait). */
static int wait_for_requests(struct nbd_source *nbd, uint64_t offset,
                             struct q2s_error *err)
{
    while (nbd_aio_in_flight(nbd->nbd) > 0) {
        if (nbd_poll(nbd->nbd, -1) < 0 && errno != EINTR) {
            char what[96];

            snprintf(what, sizeof what, "connection lost while reading at "
                     "offset %llu", (unsigned long long)offset);
            return nbd_failure(nbd, err, what);
        }
    }
    if (q2s_source_interrupted(&nbd->source))
        return q2s_error_set(err, "interrupted");
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
        int ret = 0;

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
        /* Even after an error, let what was sent finish before the
         * buffer goes away. */
        if (count > 0 &&
            wait_for_requests(nbd, offsets[0],
                              ret < 0 ? &(struct q2s_error){ 0 } : err) < 0)
            ret = -1;
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

/* Reads up to *length bytes at offset (all, or fewer for an unaligned
 * head, leaving *length at what was read), keeping to the server's
 * minimum block size: an unaligned head or tail is read as a whole block
 * into a bounce buffer. */
static int read_aligned(struct nbd_source *nbd, uint8_t *p, size_t *length,
                        uint64_t offset, struct q2s_error *err)
{
    uint64_t block = nbd->minimum_bytes;
    uint64_t head = offset % block;
    uint8_t bounce[65536];

    if (head == 0 && *length >= block) {
        *length -= *length % block;  /* the tail comes next time */
        return read_requests(nbd, p, *length, offset, err);
    }
    /* One block around offset; past the end of the export only if its
     * size is not a multiple of the block, which the server allows. */
    {
        uint64_t start = offset - head;
        uint64_t size = nbd->source.size - start < block
                            ? nbd->source.size - start : block;

        if (*length > size - head)
            *length = (size_t)(size - head);
        if (read_requests(nbd, bounce, (size_t)size, start, err) < 0)
            return -1;
        memcpy(p, bounce + head, *length);
    }
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

    /* Closing the handle also ends a server that libnbd started, and
     * removes its socket. */
    if (nbd->nbd) {
        nbd_shutdown(nbd->nbd, 0);
        nbd_close(nbd->nbd);
    }
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

static struct nbd_source *nbd_source_new(const char *name,
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
    strcpy(nbd->name, name);
    nbd->nbd = nbd_create();
    if (!nbd->nbd ||
        nbd_add_meta_context(nbd->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0) {
        q2s_error_set(err, "%s: %s", name, nbd_get_error());
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

int q2s_source_open_nbd_uri(const char *uri, struct q2s_source **source,
                            struct q2s_error *err)
{
    struct nbd_source *nbd = nbd_source_new(uri, err);

    if (!nbd)
        return -1;
    if (nbd_connect_uri(nbd->nbd, uri) < 0) {
        nbd_failure(nbd, err, "cannot connect");
        nbd_source_close(&nbd->source);
        return -1;
    }
    if (nbd_source_ready(nbd, err) < 0) {
        nbd_source_close(&nbd->source);
        return -1;
    }
    *source = &nbd->source;
    return 0;
}

/* Whether a program is on $PATH. */
static bool on_path(const char *program)
{
    const char *path = getenv("PATH");

    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t length = strcspn(path, ":");
        char candidate[4096];

        snprintf(candidate, sizeof candidate, "%.*s/%s", (int)length,
                 length ? path : ".", program);
        if (access(candidate, X_OK) == 0)
            return true;
        path += length;
        if (*path == ':')
            path++;
    }
    return false;
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
static int use_map(struct nbd_source *nbd, const char *options,
                   const char *path)
{
    uint64_t file_size;

    if (q2s_qemu_img_map(options, path, &nbd->map, &nbd->map_count) < 0)
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

int q2s_source_open_qemu_nbd(const char *path, const char *format,
                             struct q2s_source **source,
                             struct q2s_error *err)
{
    struct nbd_source *nbd;
    char *options, *script = NULL;
    struct stat st;
    int memfd;

    if (!plausible_format(format))
        return q2s_error_set(err, "unknown input format '%s'", format);
    if (q2s_stat_input(path, &st, err) < 0)
        return -1;
    if (!on_path("qemu-nbd"))
        return q2s_error_set(err, "reading %s images needs qemu-nbd, which "
                             "is not installed (Debian package qemu-utils)",
                             format);
    nbd = nbd_source_new(path, err);
    if (!nbd)
        return -1;
    /* qemu-nbd's stderr goes to a memory file, so that its complaint
     * becomes part of one error message instead of a second line.  The
     * descriptor stays open across exec. */
    memfd = memfd_create("qemu-nbd-stderr", 0);
    if (memfd >= 0) {
        /* sh redirects only one-digit descriptors; 3 is the socket's. */
        nbd->server_stderr = fcntl(memfd, F_DUPFD, 4);
        close(memfd);
        if (nbd->server_stderr > 9) {
            close(nbd->server_stderr);
            nbd->server_stderr = -1;
        }
    }
    options = image_options(path, format, S_ISBLK(st.st_mode));
    if (!options ||
        (nbd->server_stderr >= 0 &&
         asprintf(&script, "exec \"$0\" \"$@\" 2>&%d", nbd->server_stderr) < 0)) {
        free(options);
        nbd_source_close(&nbd->source);
        return q2s_error_set_errno(err, ENOMEM, "%s", path);
    }
    {
        char *with_stderr[] = { "/bin/sh", "-c", script, "qemu-nbd",
                                "--read-only", "--image-opts", "--", options,
                                NULL };
        char **argv = script ? with_stderr : with_stderr + 3;

        char what[256];

        snprintf(what, sizeof what, "cannot open it as %s", format);
        if (nbd_connect_systemd_socket_activation(nbd->nbd, argv) < 0 ||
            nbd_source_ready(nbd, err) < 0) {
            nbd_failure(nbd, err, what);
            free(options);
            free(script);
            nbd_source_close(&nbd->source);
            return -1;
        }
    }
    if (use_map(nbd, options, path) < 0) {
        free(options);
        free(script);
        nbd_source_close(&nbd->source);
        return q2s_error_set_errno(err, ENOMEM, "%s", path);
    }
    free(options);
    free(script);
    *source = &nbd->source;
    return 0;
}
