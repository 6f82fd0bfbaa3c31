/* The public interface (include/qcow2-to-stdout.h): opaque objects, their
 * setters and getters, and the entry points, each a thin layer over the
 * core that turns its struct q2s_error into one the caller owns. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "export/build.h"
#include "export/map.h"
#include "export/map_json.h"
#include "export/open/open.h"
#include "export/options.h"
#include "export/plan.h"
#include "export/render.h"
#include "export/runs.h"
#include "export/source.h"
#include "export/sources/callbacks.h"
#include "export/sources/file.h"

/* The public options own their strings; the core's struct only points. */
struct options_handle {
    struct q2s_options options;  /* first, so that the two convert */
    char *data_file_name;
    char *backing_file;
    char *backing_format;
    struct q2s_map input_map;
    struct q2s_map base_map;
};

struct q2s_options *q2s_options_new(void)
{
    struct options_handle *handle = calloc(1, sizeof *handle);

    if (!handle)
        return NULL;
    q2s_options_init(&handle->options);
    return &handle->options;
}

void q2s_options_free(struct q2s_options *options)
{
    struct options_handle *handle = (struct options_handle *)options;

    if (handle) {
        free(handle->data_file_name);
        free(handle->backing_file);
        free(handle->backing_format);
        q2s_map_fini(&handle->input_map);
        q2s_map_fini(&handle->base_map);
        free(handle);
    }
}

/* A setter: apply the rule, then store. */
#define SET_CHECKED(check, field, value, error)                              \
    do {                                                                     \
        struct q2s_error err_;                                               \
                                                                             \
        if ((check) < 0)                                                     \
            return q2s_error_give(error, &err_);                                 \
        (field) = (value);                                                   \
        return 0;                                                            \
    } while (0)

int q2s_options_set_cluster_size(struct q2s_options *options,
                                 uint32_t cluster_size,
                                 struct q2s_error **error)
{
    SET_CHECKED(q2s_check_cluster_size(cluster_size, &err_),
                options->cluster_size, cluster_size, error);
}

uint32_t q2s_options_get_cluster_size(const struct q2s_options *options)
{
    return options->cluster_size;
}

int q2s_options_set_refcount_bits(struct q2s_options *options,
                                  uint32_t refcount_bits,
                                  struct q2s_error **error)
{
    SET_CHECKED(q2s_check_refcount_bits(refcount_bits, &err_),
                options->refcount_bits, refcount_bits, error);
}

uint32_t q2s_options_get_refcount_bits(const struct q2s_options *options)
{
    return options->refcount_bits;
}

int q2s_options_set_data_file(struct q2s_options *options, const char *name,
                              bool raw, struct q2s_error **error)
{
    struct options_handle *handle = (struct options_handle *)options;
    struct q2s_error err;
    char *copy = NULL;

    if (!name && raw) {
        q2s_error_set(&err, EINVAL, "data_file_raw needs an external data "
                      "file");
        return q2s_error_give(error, &err);
    }
    if (name && name[0] == '\0') {
        q2s_error_set(&err, EINVAL, "the data file name is empty");
        return q2s_error_give(error, &err);
    }
    if (name && !(copy = strdup(name))) {
        q2s_error_set_errno(&err, ENOMEM, "cannot copy the data file name");
        return q2s_error_give(error, &err);
    }
    free(handle->data_file_name);
    handle->data_file_name = copy;
    options->data_file_name = copy;
    options->data_file_raw = raw;
    return 0;
}

int q2s_options_set_backing_file(struct q2s_options *options,
                                 const char *name, const char *format,
                                 struct q2s_error **error)
{
    struct options_handle *handle = (struct options_handle *)options;
    struct q2s_error err;
    char *name_copy = NULL, *format_copy = NULL;

    if (q2s_check_backing_file(name, format, &err) < 0)
        return q2s_error_give(error, &err);
    if (name && (!(name_copy = strdup(name)) ||
                 !(format_copy = strdup(format)))) {
        free(name_copy);
        q2s_error_set_errno(&err, ENOMEM, "cannot copy the backing file "
                            "name");
        return q2s_error_give(error, &err);
    }
    free(handle->backing_file);
    free(handle->backing_format);
    handle->backing_file = name_copy;
    handle->backing_format = format_copy;
    options->backing_file = name_copy;
    options->backing_format = format_copy;
    return 0;
}

const char *q2s_options_get_backing_file(const struct q2s_options *options)
{
    return options->backing_file;
}

const char *q2s_options_get_backing_format(const struct q2s_options *options)
{
    return options->backing_format;
}

void q2s_options_set_allow_shrink(struct q2s_options *options, bool allow)
{
    options->allow_shrink = allow;
}

bool q2s_options_get_allow_shrink(const struct q2s_options *options)
{
    return options->allow_shrink;
}

/* Copies map into *copy and points *field at it (NULL for no map), after
 * checking it against the virtual size. */
static int set_fork_map(struct q2s_map *copy, const struct q2s_map **field,
                        uint64_t *size_field, const struct q2s_map *map,
                        uint64_t virtual_size, const char *whose,
                        struct q2s_error **error)
{
    struct q2s_map new_copy;
    struct q2s_error err;

    if (map && (q2s_check_map_size(map, virtual_size, whose, &err) < 0 ||
                q2s_map_copy(&new_copy, map, &err) < 0))
        return q2s_error_give(error, &err);
    q2s_map_fini(copy);
    *field = NULL;
    *size_field = 0;
    if (map) {
        *copy = new_copy;
        *field = copy;
        *size_field = virtual_size;
    }
    return 0;
}

int q2s_options_set_input_map(struct q2s_options *options,
                              const struct q2s_map *map,
                              uint64_t virtual_size, struct q2s_error **error)
{
    struct options_handle *handle = (struct options_handle *)options;

    return set_fork_map(&handle->input_map, &options->input_map,
                        &options->input_virtual_size, map, virtual_size,
                        "the input's", error);
}

int q2s_options_set_base_map(struct q2s_options *options,
                             const struct q2s_map *map, uint64_t virtual_size,
                             struct q2s_error **error)
{
    struct options_handle *handle = (struct options_handle *)options;

    return set_fork_map(&handle->base_map, &options->base_map,
                        &options->base_virtual_size, map, virtual_size,
                        "the base's", error);
}

const char *q2s_options_get_data_file(const struct q2s_options *options)
{
    return options->data_file_name;
}

bool q2s_options_get_data_file_raw(const struct q2s_options *options)
{
    return options->data_file_raw;
}

int q2s_options_set_compression(struct q2s_options *options,
                                enum q2s_compression compression, int level,
                                struct q2s_error **error)
{
    struct q2s_error err;

    if (q2s_check_compression(compression, level, &err) < 0)
        return q2s_error_give(error, &err);
    options->compression = compression;
    options->compression_level = level;
    return 0;
}

enum q2s_compression
q2s_options_get_compression(const struct q2s_options *options)
{
    return options->compression;
}

int q2s_options_get_compression_level(const struct q2s_options *options)
{
    return options->compression_level;
}

int q2s_options_set_threads(struct q2s_options *options, uint32_t threads,
                            struct q2s_error **error)
{
    SET_CHECKED(q2s_check_threads(threads, &err_), options->threads, threads,
                error);
}

uint32_t q2s_options_get_threads(const struct q2s_options *options)
{
    return options->threads;
}

int q2s_options_set_compress_cache(struct q2s_options *options,
                                   uint64_t bytes, struct q2s_error **error)
{
    (void)error;
    options->cache_bytes = bytes;
    return 0;
}

uint64_t q2s_options_get_compress_cache(const struct q2s_options *options)
{
    return options->cache_bytes;
}

int q2s_options_set_spool_memory(struct q2s_options *options, uint64_t bytes,
                                 struct q2s_error **error)
{
    return q2s_options_set_compress_cache(options, bytes, error);
}

uint64_t q2s_options_get_spool_memory(const struct q2s_options *options)
{
    return q2s_options_get_compress_cache(options);
}

void q2s_options_set_reread(struct q2s_options *options, bool reread)
{
    options->reread = reread;
}

bool q2s_options_get_reread(const struct q2s_options *options)
{
    return options->reread;
}

void q2s_options_set_one_pass(struct q2s_options *options, bool one_pass)
{
    options->one_pass = one_pass;
}

bool q2s_options_get_one_pass(const struct q2s_options *options)
{
    return options->one_pass;
}

int q2s_options_check(const struct q2s_options *options, const char *input,
                      const struct q2s_source_options *source_options,
                      struct q2s_error **error)
{
    struct q2s_source_options defaults;
    struct q2s_error err;

    if (!source_options) {
        q2s_source_options_init(&defaults);
        source_options = &defaults;
    }
    if (q2s_options_validate(options, &err) < 0 ||
        (input &&
         q2s_options_check_input(
             options, q2s_input_is_raw_file(input, source_options), &err) < 0))
        return q2s_error_give(error, &err);
    return 0;
}

struct source_options_handle {
    struct q2s_source_options options;  /* first, so that the two convert */
    char *format;
    char *dirty_bitmap;
};

struct q2s_source_options *q2s_source_options_new(void)
{
    struct source_options_handle *handle = calloc(1, sizeof *handle);

    if (!handle)
        return NULL;
    q2s_source_options_init(&handle->options);
    return &handle->options;
}

void q2s_source_options_free(struct q2s_source_options *options)
{
    struct source_options_handle *handle =
        (struct source_options_handle *)options;

    if (handle) {
        free(handle->format);
        free(handle->dirty_bitmap);
        free(handle);
    }
}

int q2s_source_options_set_format(struct q2s_source_options *options,
                                  const char *format,
                                  struct q2s_error **error)
{
    struct source_options_handle *handle =
        (struct source_options_handle *)options;
    struct q2s_error err;
    char *copy = NULL;

    if (q2s_check_format(format, &err) < 0)
        return q2s_error_give(error, &err);
    if (format && !(copy = strdup(format))) {
        q2s_error_set_errno(&err, ENOMEM, "cannot copy the format name");
        return q2s_error_give(error, &err);
    }
    free(handle->format);
    handle->format = copy;
    options->format = copy;
    return 0;
}

const char *
q2s_source_options_get_format(const struct q2s_source_options *options)
{
    return options->format ? options->format : "raw";
}

int q2s_source_options_set_dirty_bitmap(struct q2s_source_options *options,
                                        const char *name,
                                        struct q2s_error **error)
{
    struct source_options_handle *handle =
        (struct source_options_handle *)options;
    struct q2s_error err;
    char *copy = NULL;

    if (q2s_check_dirty_bitmap(name, &err) < 0)
        return q2s_error_give(error, &err);
    if (name && !(copy = strdup(name))) {
        q2s_error_set_errno(&err, ENOMEM, "cannot copy the bitmap name");
        return q2s_error_give(error, &err);
    }
    free(handle->dirty_bitmap);
    handle->dirty_bitmap = copy;
    options->dirty_bitmap = copy;
    return 0;
}

const char *q2s_source_options_get_dirty_bitmap(
    const struct q2s_source_options *options)
{
    return options->dirty_bitmap;
}

void q2s_source_options_set_untrusted(struct q2s_source_options *options,
                                      bool untrusted)
{
    options->untrusted = untrusted;
}

bool q2s_source_options_get_untrusted(const struct q2s_source_options *options)
{
    return options->untrusted;
}

int q2s_source_options_set_timeout(struct q2s_source_options *options,
                                   uint32_t seconds, struct q2s_error **error)
{
    SET_CHECKED(q2s_check_timeout(seconds, &err_), options->timeout_seconds,
                seconds, error);
}

uint32_t q2s_source_options_get_timeout(
    const struct q2s_source_options *options)
{
    return options->timeout_seconds;
}

int q2s_source_options_set_connections(struct q2s_source_options *options,
                                       uint32_t connections,
                                       struct q2s_error **error)
{
    SET_CHECKED(q2s_check_connections(connections, &err_),
                options->connections, connections, error);
}

uint32_t q2s_source_options_get_connections(
    const struct q2s_source_options *options)
{
    return options->connections ? options->connections
                                : Q2S_DEFAULT_CONNECTIONS;
}

void q2s_source_options_set_cancel_flag(struct q2s_source_options *options,
                                        const volatile sig_atomic_t *flag)
{
    options->interrupted = flag;
}

int q2s_source_open(const char *input,
                    const struct q2s_source_options *options,
                    struct q2s_source **source, struct q2s_error **error)
{
    struct q2s_source_options defaults;
    struct q2s_error err;

    if (!options) {
        q2s_source_options_init(&defaults);
        options = &defaults;
    }
    if (q2s_open_input(input, options, source, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

int q2s_source_from_fd(int fd, struct q2s_source **source,
                       struct q2s_error **error)
{
    struct q2s_error err;
    char name[64];
    struct stat st;
    int copy, flags;

    snprintf(name, sizeof name, "file descriptor %d", fd);
    if (fstat(fd, &st) < 0) {
        q2s_error_set_errno(&err, errno, "%s", name);
        return q2s_error_give(error, &err);
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        q2s_error_set(&err, EINVAL, "%s: not a regular file or a block "
                      "device", name);
        return q2s_error_give(error, &err);
    }
    /* O_PATH and O_WRONLY descriptors pass fstat(2) but fail every read:
     * refused here rather than at the first read of data. */
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || (flags & O_PATH) || (flags & O_ACCMODE) == O_WRONLY) {
        q2s_error_set(&err, EBADF, "%s: not open for reading", name);
        return q2s_error_give(error, &err);
    }
    copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) {
        q2s_error_set_errno(&err, errno, "%s", name);
        return q2s_error_give(error, &err);
    }
    if (q2s_source_open_fd(copy, name, source, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

int q2s_source_from_callbacks(uint64_t size, q2s_read_callback *read,
                              q2s_data_callback *data,
                              q2s_close_callback *close, void *opaque,
                              struct q2s_source **source,
                              struct q2s_error **error)
{
    struct q2s_error err;

    if (q2s_source_new_callbacks(size, read, data, close, opaque, source,
                                 &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

uint64_t q2s_source_get_size(const struct q2s_source *source)
{
    return source->size;
}

void q2s_source_cancel(struct q2s_source *source)
{
    q2s_cancel_request(&source->cancel);
}

int q2s_source_set_map(struct q2s_source *source, const struct q2s_map *map,
                       struct q2s_error **error)
{
    struct q2s_error err;

    if (q2s_source_use_map(source, map, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

struct q2s_map *q2s_map_new(void)
{
    return q2s_map_create();
}

int q2s_map_add(struct q2s_map *map, uint64_t offset, uint64_t length,
                struct q2s_error **error)
{
    struct q2s_error err;

    if (q2s_map_append(map, offset, length, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

size_t q2s_map_get_extent_count(const struct q2s_map *map)
{
    return map->count;
}

void q2s_map_free(struct q2s_map *map)
{
    q2s_map_destroy(map);
}

int q2s_map_from_json(const char *text, size_t length, struct q2s_map **map,
                      struct q2s_error **error)
{
    struct q2s_error err;

    if (q2s_parse_map_json(text, length, map, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

int q2s_image_info_from_json(const char *text, size_t length,
                             uint64_t *virtual_size, uint32_t *cluster_size,
                             struct q2s_error **error)
{
    struct q2s_error err;

    if (q2s_parse_image_info_json(text, length, virtual_size, cluster_size,
                                  &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

/* A call that got to its end looks once more: a cancel that came during
 * its last read, which no later loop looked at, still fails it, as the
 * header promises for the call running. */
static int cancelled_after(struct q2s_source *source, struct q2s_error *err)
{
    if (q2s_source_interrupted(source))
        return q2s_error_set(err, ECANCELED, "interrupted");
    return 0;
}

static int build(struct q2s_source *source, struct q2s_source *base,
                 const struct q2s_options *options,
                 q2s_progress_callback *progress, void *progress_opaque,
                 struct q2s_plan **plan, struct q2s_error **error)
{
    struct q2s_error err;

    if (q2s_build_plan(source, base, options, progress, progress_opaque,
                       plan, &err) < 0)
        return q2s_error_give(error, &err);
    if (cancelled_after(source, &err) < 0 ||
        (base && cancelled_after(base, &err) < 0)) {
        q2s_plan_free(*plan);
        *plan = NULL;
        return q2s_error_give(error, &err);
    }
    return 0;
}

int q2s_plan_build(struct q2s_source *source,
                   const struct q2s_options *options,
                   q2s_progress_callback *progress, void *progress_opaque,
                   struct q2s_plan **plan, struct q2s_error **error)
{
    return build(source, NULL, options, progress, progress_opaque, plan,
                 error);
}

int q2s_plan_build_delta(struct q2s_source *source, struct q2s_source *base,
                         const struct q2s_options *options,
                         q2s_progress_callback *progress,
                         void *progress_opaque, struct q2s_plan **plan,
                         struct q2s_error **error)
{
    return build(source, base, options, progress, progress_opaque, plan,
                 error);
}

uint64_t q2s_plan_get_image_size(const struct q2s_plan *plan)
{
    return plan->image_size;
}

uint64_t q2s_plan_get_virtual_size(const struct q2s_plan *plan)
{
    return plan->geometry.virtual_size;
}

uint64_t q2s_plan_get_input_size(const struct q2s_plan *plan)
{
    return plan->geometry.input_size;
}

uint32_t q2s_plan_get_cluster_size(const struct q2s_plan *plan)
{
    return plan->geometry.cluster_size;
}

uint32_t q2s_plan_get_refcount_bits(const struct q2s_plan *plan)
{
    return plan->geometry.refcount_bits;
}

uint64_t q2s_plan_get_data_clusters(const struct q2s_plan *plan)
{
    return q2s_runs_total(&plan->data_clusters) +
           q2s_runs_total(&plan->compressed_clusters);
}

uint64_t q2s_plan_get_zero_clusters(const struct q2s_plan *plan)
{
    return q2s_runs_total(&plan->zero_clusters);
}

uint64_t q2s_plan_get_compressed_clusters(const struct q2s_plan *plan)
{
    return q2s_runs_total(&plan->compressed_clusters);
}

uint64_t q2s_plan_get_compressed_bytes(const struct q2s_plan *plan)
{
    return q2s_packing_bytes(&plan->packing);
}

uint64_t q2s_plan_get_l1_entries(const struct q2s_plan *plan)
{
    return plan->geometry.l1_entries;
}

uint64_t q2s_plan_get_l2_tables(const struct q2s_plan *plan)
{
    return q2s_runs_total(&plan->l2_tables);
}

uint64_t q2s_plan_get_refcount_blocks(const struct q2s_plan *plan)
{
    return plan->refcount_blocks;
}

uint64_t q2s_plan_get_refcount_table_clusters(const struct q2s_plan *plan)
{
    return plan->refcount_table_clusters;
}

uint64_t q2s_plan_get_total_clusters(const struct q2s_plan *plan)
{
    return plan->total_clusters;
}

int q2s_render(const struct q2s_plan *plan, struct q2s_source *source,
               int fd, uint64_t offset, uint64_t length,
               q2s_progress_callback *progress, void *progress_opaque,
               struct q2s_error **error)
{
    struct q2s_error err;

    if (q2s_render_fd(plan, source, fd, offset, length, progress,
                      progress_opaque, &err) < 0 ||
        cancelled_after(source, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}

int q2s_pread(const struct q2s_plan *plan, struct q2s_source *source,
              void *buf, size_t count, uint64_t offset,
              struct q2s_error **error)
{
    struct q2s_error err;

    if (q2s_render_memory(plan, source, buf, count, offset, &err) < 0 ||
        cancelled_after(source, &err) < 0)
        return q2s_error_give(error, &err);
    return 0;
}
