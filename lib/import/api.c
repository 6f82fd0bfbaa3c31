/* The public interface of the importer (include/qcow2-to-stdout.h,
 * "Importing"): options, the import, targets; each a thin layer over
 * reader.c and the targets that turns a struct q2s_error into one the
 * caller owns. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tmpdir.h"
#include "error.h"
#include "import/reader.h"
#include "import/target.h"
#include "qcow2-to-stdout.h"

struct q2s_import_options *q2s_import_options_new(void)
{
    struct q2s_import_options *options = calloc(1, sizeof *options);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (!options) {
        errno = ENOMEM;
        return NULL;
    }
    options->spool_memory = Q2S_IMPORT_DEFAULT_SPOOL_MEMORY;
    options->threads = cores < 1 ? 1
                       : cores > Q2S_MAX_THREADS ? Q2S_MAX_THREADS
                                                 : (unsigned)cores;
    return options;
}

void q2s_import_options_free(struct q2s_import_options *options)
{
    free(options);
}

void q2s_import_options_set_apply(struct q2s_import_options *options,
                                  bool apply)
{
    options->apply = apply;
}

bool q2s_import_options_get_apply(const struct q2s_import_options *options)
{
    return options->apply;
}

void q2s_import_options_set_flush(struct q2s_import_options *options,
                                  bool flush)
{
    options->flush = flush;
}

bool q2s_import_options_get_flush(const struct q2s_import_options *options)
{
    return options->flush;
}

void q2s_import_options_set_target_is_zero(struct q2s_import_options *options,
                                           bool is_zero)
{
    options->target_is_zero = is_zero;
}

bool q2s_import_options_get_target_is_zero(
    const struct q2s_import_options *options)
{
    return options->target_is_zero;
}

int q2s_import_options_set_spool_memory(struct q2s_import_options *options,
                                        uint64_t bytes,
                                        struct q2s_error **error)
{
    (void)error;  /* any amount will do: past it, a file */
    options->spool_memory = bytes;
    return 0;
}

uint64_t q2s_import_options_get_spool_memory(
    const struct q2s_import_options *options)
{
    return options->spool_memory;
}

int q2s_import_options_set_threads(struct q2s_import_options *options,
                                   uint32_t threads, struct q2s_error **error)
{
    struct q2s_error err;

    if (threads < 1 || threads > Q2S_MAX_THREADS) {
        q2s_error_set(&err, EINVAL, "threads must be from 1 to %d",
                      Q2S_MAX_THREADS);
        return q2s_error_give(error, &err);
    }
    options->threads = threads;
    return 0;
}

uint32_t q2s_import_options_get_threads(
    const struct q2s_import_options *options)
{
    return options->threads;
}

void q2s_import_options_set_temporary_directory(
    struct q2s_import_options *options, const char *directory)
{
    options->directory = directory;
}

void q2s_import_options_set_cancel_flag(struct q2s_import_options *options,
                                        const volatile sig_atomic_t *flag)
{
    options->cancel_flag = flag;
}

/* ---- The import ---------------------------------------------------- */

struct fd_reader {
    int fd;
    const struct q2s_cancel *cancel;
};

static int read_fd(void *opaque, void *buf, size_t count, size_t *done)
{
    struct fd_reader *r = opaque;

    for (;;) {
        ssize_t n = read(r->fd, buf, count);

        if (n >= 0) {
            *done = (size_t)n;
            return 0;
        }
        if (errno != EINTR)
            return -1;
        if (q2s_cancelled(r->cancel)) {
            errno = ECANCELED;
            return -1;
        }
    }
}

int q2s_import_new(q2s_import_read_callback *read, void *opaque,
                   const struct q2s_import_options *options,
                   struct q2s_import **import, struct q2s_error **error)
{
    struct q2s_import *imp = calloc(1, sizeof *imp);
    struct q2s_error err;

    if (!imp) {
        q2s_error_set(&err, ENOMEM, "out of memory");
        return q2s_error_give(error, &err);
    }
    imp->options = *options;
    if (!imp->options.directory)
        imp->options.directory = q2s_temporary_directory();
    imp->cancel.flag = options->cancel_flag;
    imp->read = read;
    imp->read_opaque = opaque;
    host_spool_init(&imp->spool, imp->options.spool_memory,
                    imp->options.directory);
    *import = imp;
    return 0;
}

int q2s_import_new_fd(int fd, const struct q2s_import_options *options,
                      struct q2s_import **import, struct q2s_error **error)
{
    struct fd_reader *reader = malloc(sizeof *reader);
    struct q2s_error err;

    if (!reader) {
        q2s_error_set(&err, ENOMEM, "out of memory");
        return q2s_error_give(error, &err);
    }
    if (q2s_import_new(read_fd, reader, options, import, error) < 0) {
        free(reader);
        return -1;
    }
    reader->fd = fd;
    reader->cancel = &(*import)->cancel;
    (*import)->owned_reader = reader;
    /* Fewer, larger reads from a pipe; best effort. */
    fcntl(fd, F_SETPIPE_SZ, 1024 * 1024);
    return 0;
}

void q2s_import_free(struct q2s_import *import)
{
    if (!import)
        return;
    import_free(import);
    free(import->owned_reader);
    free(import);
}

void q2s_import_cancel(struct q2s_import *import)
{
    q2s_cancel_request(&import->cancel);
}

int q2s_import_read_header(struct q2s_import *import, struct q2s_error **error)
{
    struct q2s_error err;

    if (import_read_header(import, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

uint64_t q2s_import_get_virtual_size(const struct q2s_import *import)
{
    return import->header.virtual_size;
}

uint32_t q2s_import_get_cluster_size(const struct q2s_import *import)
{
    return import->header.cluster_size;
}

uint32_t q2s_import_get_version(const struct q2s_import *import)
{
    return import->header.version;
}

uint32_t q2s_import_get_refcount_bits(const struct q2s_import *import)
{
    return UINT32_C(1) << import->header.refcount_order;
}

const char *q2s_import_get_backing_file(const struct q2s_import *import)
{
    return import->header.backing_name_offset && import->backing_file[0]
               ? import->backing_file
               : NULL;
}

const char *q2s_import_get_backing_format(const struct q2s_import *import)
{
    return import->header.backing_format;
}

enum q2s_compression q2s_import_get_compression(
    const struct q2s_import *import)
{
    return import->header.compression_type == QCOW2_COMPRESSION_TYPE_ZSTD
               ? Q2S_COMPRESSION_ZSTD
               : Q2S_COMPRESSION_ZLIB;
}

bool q2s_import_get_extended_l2(const struct q2s_import *import)
{
    return import->extended_l2;
}

uint64_t q2s_import_get_bytes_written(const struct q2s_import *import)
{
    return import->target_bytes_changed;
}

bool q2s_import_get_target_changed(const struct q2s_import *import)
{
    return import->target_changed || import->target_bytes_changed > 0;
}

static int check(const struct q2s_import *import, struct q2s_error *err)
{
    const char *backing = q2s_import_get_backing_file(import);

    if (import->options.apply && import->options.target_is_zero)
        return q2s_error_set(err, EINVAL, "--target-is-zero has no use with "
                             "--apply, which writes onto what the target "
                             "holds");
    if (backing && !import->options.apply)
        return q2s_error_set(err, EINVAL, "the image is an overlay of \"%s\": "
                             "write its base first, then this image onto it "
                             "with --apply", backing);
    return 0;
}

int q2s_import_check(struct q2s_import *import, struct q2s_error **error)
{
    struct q2s_error err;

    if (import_read_header(import, &err) < 0 || check(import, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

uint64_t q2s_import_get_bytes_read(const struct q2s_import *import)
{
    return import->position + import->buffer_used;
}

uint64_t q2s_import_get_spool_peak(const struct q2s_import *import)
{
    return import->spool.peak_bytes;
}

int q2s_import_run(struct q2s_import *import, struct q2s_target *target,
                   q2s_progress_callback *progress, void *progress_opaque,
                   struct q2s_error **error)
{
    struct q2s_error err;

    if (import->ran) {
        q2s_error_set(&err, EINVAL, "the import ran already");
        return q2s_error_give(error, &err);
    }
    import->ran = true;
    if (import_read_header(import, &err) < 0 || check(import, &err) < 0)
        return q2s_error_give(error, &err);
    if (import_target_prepare(target, import->header.virtual_size,
                              import->options.apply,
                              import->options.target_is_zero, &err) < 0)
        return q2s_error_give(error, &err);
    /* A file is truncated by now. */
    import->target_changed = target->kind == IMPORT_TARGET_FILE &&
                             !import->options.apply;
    target->spool_memory = import->options.spool_memory;
    target->directory = import->options.directory;
    import->progress = progress;
    import->progress_opaque = progress_opaque;
    if (progress)
        progress(progress_opaque, Q2S_PHASE_WRITE, 0,
                 import->header.virtual_size);
    if (import_run(import, target, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

/* ---- Targets ------------------------------------------------------- */

int q2s_target_open(const char *name, const struct q2s_import_options *options,
                    struct q2s_target **target, struct q2s_error **error)
{
    struct q2s_error err;
    int fd;

    if (q2s_input_is_nbd_uri(name)) {
        if (import_target_open_nbd(name, target, &err) < 0)
            return q2s_error_give(error, &err);
        return 0;
    }
    /* A file that --apply writes onto must be there already. */
    fd = open(name, O_WRONLY | O_CLOEXEC | (options->apply ? 0 : O_CREAT),
              0666);
    if (fd < 0) {
        q2s_error_set_errno(&err, errno, "%s", name);
        return q2s_error_give(error, &err);
    }
    if (import_target_from_fd(fd, name, true, target, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

int q2s_target_from_fd(int fd, struct q2s_target **target,
                       struct q2s_error **error)
{
    struct q2s_error err;
    char name[32];

    snprintf(name, sizeof name, "descriptor %d", fd);
    if (import_target_from_fd(fd, name, false, target, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

int q2s_target_from_callbacks(uint64_t size, q2s_target_write_callback *write,
                              q2s_target_zero_callback *zero,
                              q2s_target_flush_callback *flush,
                              q2s_close_callback *close, void *opaque,
                              struct q2s_target **target,
                              struct q2s_error **error)
{
    struct q2s_error err;

    if (import_target_from_callbacks(size, write, zero, flush, close, opaque,
                                     target, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

uint64_t q2s_target_get_size(const struct q2s_target *target)
{
    return target->size;
}

void q2s_target_close(struct q2s_target *target)
{
    if (target)
        target->ops->close(target);
}
