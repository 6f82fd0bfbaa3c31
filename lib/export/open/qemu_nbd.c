/* A disk image in any format QEMU reads, served by a qemu-nbd that we
 * start and read through the NBD source, which this source wraps: what
 * qemu-nbd says on its stderr goes into the NBD source's messages, the
 * extents that `qemu-img map` finds as they are in the image file are
 * read (and spliced) from that file directly, and closing ends qemu-nbd. */
#define _GNU_SOURCE
#include "export/open/qemu_nbd.h"

#include <errno.h>
#include <fcntl.h>
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
#include "common/search.h"
#include "error.h"
#include "export/open/child.h"
#include "export/open/image_refs.h"
#include "export/open/qemu_img_map.h"
#include "export/sources/nbd.h"

struct qemu_nbd_source {
    struct q2s_source source;  /* first */
    /* qemu_nbd_ops, with read_stream when every byte comes through
     * qemu-nbd. */
    struct q2s_source_ops ops;
    struct q2s_source *nbd;    /* our connection to qemu-nbd, or NULL */
    pid_t server_pid;          /* qemu-nbd, or 0 once reaped */
    int server_stderr;         /* what qemu-nbd said, or -1 */
    /* The extents whose bytes lie in the image file as they are, read
     * (and spliced) from it directly. */
    int image_fd;
    struct q2s_mapping_vector map;
    char name[];
};

static struct qemu_nbd_source *qemu_nbd_of(struct q2s_source *source)
{
    return (struct qemu_nbd_source *)source;
}

/* The last message that qemu-nbd wrote on its stderr, without its final
 * newline, or "" if it said nothing.  A message is its last line, or from
 * the last line that starts with "qemu-nbd: " on: a name that the message
 * quotes (a bitmap's, a file's) may hold newlines, which the program
 * escapes. */
#define SERVER_PREFIX "qemu-nbd: "

static void server_said(void *opaque, char *line, size_t size)
{
    struct qemu_nbd_source *q = opaque;
    char text[4096];
    ssize_t n;
    char *last, *cut;

    line[0] = '\0';
    if (q->server_stderr < 0)
        return;
    n = pread(q->server_stderr, text, sizeof text - 1, 0);
    if (n <= 0)
        return;
    text[n] = '\0';
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    last = NULL;
    for (char *at = strstr(text, SERVER_PREFIX); at;
         at = strstr(at + 1, SERVER_PREFIX))
        if (at == text || at[-1] == '\n')
            last = at;
    if (!last) {
        last = strrchr(text, '\n');
        last = last ? last + 1 : text;
    }
    /* "qemu-nbd: Failed to blk_new_open '<options>': <reason>": the
     * reason is what matters. */
    while ((cut = strstr(last, "': ")) != NULL)
        last = cut + 3;
    /* Cut to fit, on purpose. */
    n = (ssize_t)strnlen(last, size - 1);
    memcpy(line, last, (size_t)n);
    line[n] = '\0';
}

/* Whether qemu-nbd has exited (it is then reaped). */
static bool server_exited(struct qemu_nbd_source *q)
{
    if (q->server_pid <= 0 ||
        waitpid(q->server_pid, NULL, WNOHANG) != q->server_pid)
        return false;
    q->server_pid = 0;
    return true;
}

static int qemu_nbd_next_data(struct q2s_source *source, uint64_t offset,
                              uint64_t *start, uint64_t *end,
                              struct q2s_error *err)
{
    struct q2s_source *nbd = qemu_nbd_of(source)->nbd;

    return q2s_source_next_data(nbd, offset, start, end, err);
}

static int qemu_nbd_next_dirty(struct q2s_source *source, uint64_t offset,
                               uint64_t *start, uint64_t *end,
                               struct q2s_error *err)
{
    struct q2s_source *nbd = qemu_nbd_of(source)->nbd;

    return nbd->ops->next_dirty(nbd, offset, start, end, err);
}

struct map_position {
    const struct q2s_mapping *map;
    uint64_t offset;
};

static bool ends_after(const void *ctx, size_t i)
{
    const struct map_position *at = ctx;

    return at->map[i].start + at->map[i].length > at->offset;
}

/* Index of the first mapping that ends after offset. */
static size_t map_search(const struct qemu_nbd_source *q, uint64_t offset)
{
    return q2s_search_first(q->map.len, ends_after,
                            &(struct map_position){ q->map.ptr, offset });
}

static int qemu_nbd_read(struct q2s_source *source, void *buf, size_t length,
                         uint64_t offset, struct q2s_error *err)
{
    struct qemu_nbd_source *q = qemu_nbd_of(source);
    struct q2s_source *nbd = qemu_nbd_of(source)->nbd;
    uint8_t *p = buf;

    while (length > 0) {
        size_t i = map_search(q, offset);
        size_t n = length;

        if (i < q->map.len && q->map.ptr[i].start <= offset) {
            const struct q2s_mapping *m = &q->map.ptr[i];

            if (m->start + m->length - offset < n)
                n = (size_t)(m->start + m->length - offset);
            if (q2s_pread_full(q->image_fd, p, n,
                               m->file_offset + (offset - m->start),
                               q->name, err) < 0)
                return -1;
        } else {
            if (i < q->map.len && q->map.ptr[i].start - offset < n)
                n = (size_t)(q->map.ptr[i].start - offset);
            if (nbd->ops->read(nbd, p, n, offset, err) < 0)
                return -1;
        }
        p += n;
        offset += n;
        length -= n;
    }
    return 0;
}

static uint64_t qemu_nbd_locate(struct q2s_source *source, uint64_t offset,
                                uint64_t length, int *fd, uint64_t *fd_offset)
{
    struct qemu_nbd_source *q = qemu_nbd_of(source);
    size_t i = map_search(q, offset);
    const struct q2s_mapping *m;

    if (i == q->map.len || q->map.ptr[i].start > offset)
        return 0;
    m = &q->map.ptr[i];
    *fd = q->image_fd;
    *fd_offset = m->file_offset + (offset - m->start);
    return m->start + m->length - offset < length
               ? m->start + m->length - offset : length;
}

static int qemu_nbd_check_size(struct q2s_source *source,
                               struct q2s_error *err)
{
    struct q2s_source *nbd = qemu_nbd_of(source)->nbd;

    return q2s_source_check_size(nbd, err);
}

static void qemu_nbd_close(struct q2s_source *source)
{
    struct qemu_nbd_source *q = qemu_nbd_of(source);

    /* The connection first: a clean disconnect needs the server. */
    q2s_source_close(q->nbd);
    q2s_child_kill(q->server_pid);
    if (q->server_stderr >= 0)
        close(q->server_stderr);
    if (q->image_fd >= 0)
        close(q->image_fd);
    q2s_mapping_vector_free(&q->map);
    free(q);
}

/* Only without a map: every byte then comes through qemu-nbd. */
static int qemu_nbd_read_stream(struct q2s_source *source,
                                const struct q2s_stream *stream,
                                struct q2s_error *err)
{
    struct q2s_source *nbd = qemu_nbd_of(source)->nbd;

    return nbd->ops->read_stream(nbd, stream, err);
}

static const struct q2s_source_ops qemu_nbd_ops = {
    .next_data = qemu_nbd_next_data,
    .next_dirty = qemu_nbd_next_dirty,
    .read = qemu_nbd_read,
    .locate = qemu_nbd_locate,
    .check_size = qemu_nbd_check_size,
    .close = qemu_nbd_close,
};

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
static int use_map(struct qemu_nbd_source *q, const char *image_opts,
                   const char *path, const struct q2s_source_options *options,
                   struct q2s_error *err)
{
    uint64_t file_size;

    if (q2s_qemu_img_map(image_opts, path, options, &q->map, err) < 0)
        return -1;
    if (q->map.len == 0)
        return 0;
    q->image_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (q->image_fd < 0 || q2s_fd_size(q->image_fd, &file_size) < 0)
        goto drop;
    for (size_t i = 0; i < q->map.len; i++) {
        const struct q2s_mapping *m = &q->map.ptr[i];

        if (m->start > q->source.size ||
            m->length > q->source.size - m->start ||
            m->file_offset > file_size ||
            m->length > file_size - m->file_offset)
            goto drop;
    }
    return 0;

drop:
    q2s_mapping_vector_free(&q->map);
    return 0;
}

/* A listening socket for qemu-nbd and our connection to it, with no name
 * left anywhere: bound in a private directory, connected to (the
 * connection waits in the backlog), and its name and directory removed
 * before qemu-nbd starts.  So no other process can ever connect, and
 * nothing is left in tmpdir whatever happens later. */
static int private_socket(const char *tmpdir, int *listen_fd, int *client_fd,
                          struct q2s_error *err)
{
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    char directory[sizeof address.sun_path - 2];
    int saved;

    if (strlen(tmpdir) + sizeof "/q2s-XXXXXX" > sizeof directory)
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
 * gets by systemd socket activation, and connects the NBD source to it.
 * Its stderr goes to a memory file, so that its complaint becomes part of
 * one error message. */
static int start_qemu_nbd(struct qemu_nbd_source *q, char *image_opts,
                          const struct q2s_source_options *options,
                          const char *tmpdir, struct q2s_error *err)
{
    /* With a dirty bitmap, qemu-nbd exports it (-B): a persistent bitmap
     * of the image. */
    char *with_bitmap[] = { "qemu-nbd", "--read-only", "-B",
                            (char *)options->dirty_bitmap, "--image-opts",
                            "--", image_opts, NULL };
    char *without[] = { "qemu-nbd", "--read-only", "--image-opts", "--",
                        image_opts, NULL };
    struct q2s_child_spec spec = {
        .argv = options->dirty_bitmap ? with_bitmap : without,
        .stdout_fd = -1,
    };
    struct q2s_nbd_params params = {
        .dirty_bitmap = options->dirty_bitmap,
        .timeout_seconds = options->timeout_seconds,
        /* The caller cancels this source, not the one inside. */
        .cancel = &q->source.cancel,
        .server = "qemu-nbd",
        .server_said = server_said,
        .server_said_opaque = q,
    };
    int client_fd;

    q->server_stderr = memfd_create("qemu-nbd-stderr", MFD_CLOEXEC);
    if (private_socket(tmpdir, &spec.listen_fd, &client_fd, err) < 0)
        return -1;
    spec.stderr_fd = q->server_stderr;
    if (options->untrusted)
        spec.address_space_bytes = Q2S_UNTRUSTED_ADDRESS_SPACE;
    if (q2s_child_spawn(&spec, &q->server_pid, err) < 0) {
        close(spec.listen_fd);
        close(client_fd);
        return -1;
    }
    close(spec.listen_fd);
    if (q2s_source_open_nbd_socket(client_fd, q->name, &params, &q->nbd,
                                   err) < 0)
        return -1;
    q->source.size = q->nbd->size;
    q->source.read_bytes = q->nbd->read_bytes;
    q->source.any_thread = true;
    return 0;
}

int q2s_source_open_qemu_nbd(const char *path,
                             const struct q2s_source_options *options,
                             const char *tmpdir, struct q2s_source **source,
                             struct q2s_error *err)
{
    const char *format = options->format;
    struct qemu_nbd_source *q;
    char *image_opts;
    struct stat st;

    if (!q2s_plausible_format(format))
        return q2s_error_set(err, EINVAL, "unknown input format '%s'", format);
    if (q2s_stat_input(path, &st, err) < 0)
        return -1;
    if (!q2s_on_path("qemu-nbd"))
        return q2s_error_set(err, ENOENT,
                             "reading %s images needs qemu-nbd, which "
                             "is not installed (Debian package qemu-utils)",
                             format);
    /* Before QEMU opens anything: what the image names could block it or
     * leak another file into the output. */
    if (q2s_check_image_references(path, format, options->untrusted,
                                   err) < 0)
        return -1;
    q = calloc(1, sizeof *q + strlen(path) + 1);
    if (!q)
        return q2s_error_set_errno(err, ENOMEM, "%s", path);
    q->ops = qemu_nbd_ops;
    q->source.ops = &q->ops;
    q->source.cancel.flag = options->interrupted;
    q->server_stderr = -1;
    q->image_fd = -1;
    strcpy(q->name, path);
    image_opts = image_options(path, format, S_ISBLK(st.st_mode));
    if (!image_opts) {
        qemu_nbd_close(&q->source);
        return q2s_error_set_errno(err, ENOMEM, "%s", path);
    }
    if (start_qemu_nbd(q, image_opts, options, tmpdir, err) < 0 ||
        use_map(q, image_opts, path, options, err) < 0) {
        char said[1024];

        /* When qemu-nbd gave up, its own reason beats "connection lost". */
        server_said(q, said, sizeof said);
        if (said[0] && server_exited(q))
            q2s_error_set(err, EIO,
                          "%s: cannot open it as %s: %s", path, format,
                          said);
        free(image_opts);
        qemu_nbd_close(&q->source);
        return -1;
    }
    free(image_opts);
    /* Nothing of the data lies in the image file as it is (compressed
     * clusters, or a format qemu-img map gives no offsets for): all of it
     * comes through qemu-nbd, and pass 1 keeps what it reads.  Where the
     * map places data in the file, pass 2 reads it there again, from the
     * page cache. */
    q->source.reread_costly = q->map.len == 0;
    /* Of an image that qemu-img map places nothing of in the file, the
     * reads stream, many in flight, as an NBD URI's do. */
    if (q->map.len == 0 && q->nbd->ops->read_stream)
        q->ops.read_stream = qemu_nbd_read_stream;
    *source = &q->source;
    return 0;
}
