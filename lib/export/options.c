/* The rules on the options, each stated once: the setters, the plan and
 * the command line all go through these. */
#include "export/options.h"

#include <errno.h>
#include <string.h>

#include "common/bits.h"
#include "export/map.h"
#include "export/metadata.h"
#include "format/qcow2_compress.h"
#include "format/qcow2_format.h"

void q2s_options_init(struct q2s_options *options)
{
    *options = (struct q2s_options){
        .cluster_size = Q2S_DEFAULT_CLUSTER_SIZE,
        .refcount_bits = Q2S_DEFAULT_REFCOUNT_BITS,
        .compression = Q2S_COMPRESSION_NONE,
        .compression_level = Q2S_COMPRESSION_LEVEL_DEFAULT,
        .threads = 1,
    };
}

void q2s_source_options_init(struct q2s_source_options *options)
{
    *options = (struct q2s_source_options){ .format = NULL };
}

int q2s_check_cluster_size(uint32_t cluster_size, struct q2s_error *err)
{
    if (!q2s_is_power_of_two(cluster_size) ||
        cluster_size < Q2S_MIN_CLUSTER_SIZE ||
        cluster_size > Q2S_MAX_CLUSTER_SIZE)
        return q2s_error_set(err, EINVAL, "invalid cluster size %u: must be "
                             "a power of two from 512 to 2097152",
                             cluster_size);
    return 0;
}

int q2s_check_refcount_bits(uint32_t refcount_bits, struct q2s_error *err)
{
    if (!q2s_is_power_of_two(refcount_bits) || refcount_bits > 64)
        return q2s_error_set(err, EINVAL, "invalid refcount width %u: must "
                             "be 1, 2, 4, 8, 16, 32 or 64", refcount_bits);
    return 0;
}

int q2s_check_compression(enum q2s_compression compression, int level,
                          struct q2s_error *err)
{
    int min, max, default_level;

    if (compression == Q2S_COMPRESSION_NONE) {
        if (level != Q2S_COMPRESSION_LEVEL_DEFAULT)
            return q2s_error_set(err, EINVAL, "a compression level %d "
                                 "without a compression type", level);
        return 0;
    }
    if (compression != Q2S_COMPRESSION_ZLIB &&
        compression != Q2S_COMPRESSION_ZSTD)
        return q2s_error_set(err, EINVAL, "unknown compression type %d",
                             (int)compression);
    q2s_compression_levels(compression, &min, &max, &default_level);
    if (level != Q2S_COMPRESSION_LEVEL_DEFAULT && (level < min || level > max))
        return q2s_error_set(err, EINVAL, "invalid %s compression level %d: "
                             "must be from %d to %d",
                             compression == Q2S_COMPRESSION_ZSTD ? "zstd"
                                                                 : "zlib",
                             level, min, max);
    return 0;
}

int q2s_check_threads(uint32_t threads, struct q2s_error *err)
{
    if (threads < 1 || threads > Q2S_MAX_THREADS)
        return q2s_error_set(err, EINVAL, "invalid thread count %u: must be "
                             "from 1 to %d", threads, Q2S_MAX_THREADS);
    return 0;
}

int q2s_check_connections(uint32_t connections, struct q2s_error *err)
{
    if (connections < 1 || connections > Q2S_MAX_CONNECTIONS)
        return q2s_error_set(err, EINVAL, "invalid number of connections "
                             "%u: must be from 1 to %d", connections,
                             Q2S_MAX_CONNECTIONS);
    return 0;
}

int q2s_check_timeout(uint32_t seconds, struct q2s_error *err)
{
    if (seconds > Q2S_MAX_TIMEOUT_SECONDS)
        return q2s_error_set(err, EINVAL, "invalid timeout %u: must be at "
                             "most %d seconds (0 waits for ever)", seconds,
                             Q2S_MAX_TIMEOUT_SECONDS);
    return 0;
}

int q2s_check_format(const char *format, struct q2s_error *err)
{
    if (format && format[0] == '\0')
        return q2s_error_set(err, EINVAL, "invalid format '': give a format "
                             "QEMU reads, or none for raw");
    return 0;
}

bool q2s_plausible_format(const char *format)
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

int q2s_check_dirty_bitmap(const char *name, struct q2s_error *err)
{
    /* QEMU's limit on a bitmap name (BDRV_BITMAP_MAX_NAME_SIZE). */
    if (name && (name[0] == '\0' || strlen(name) > 1023))
        return q2s_error_set(err, EINVAL, "invalid dirty bitmap name: it "
                             "must have 1 to 1023 bytes");
    return 0;
}

int q2s_check_backing_file(const char *name, const char *format,
                           struct q2s_error *err)
{
    if (!name)
        return format ? q2s_error_set(err, EINVAL, "a backing format needs "
                                      "a backing file") : 0;
    if (name[0] == '\0')
        return q2s_error_set(err, EINVAL, "the backing file name is empty");
    if (strlen(name) > QCOW2_MAX_BACKING_FILE_NAME)
        return q2s_error_set(err, EINVAL, "the backing file name is too "
                             "long: %zu bytes, more than the %d that qcow2 "
                             "allows", strlen(name),
                             QCOW2_MAX_BACKING_FILE_NAME);
    /* Never probed: QEMU would guess from the backing file's content. */
    if (!format || format[0] == '\0')
        return q2s_error_set(err, EINVAL, "a backing file needs its format "
                             "(-F), which is never probed");
    if (strlen(format) > QCOW2_MAX_BACKING_FORMAT ||
        !q2s_plausible_format(format))
        return q2s_error_set(err, EINVAL, "invalid backing format '%s': "
                             "give a format QEMU reads, such as qcow2 or "
                             "raw (at most %d bytes)", format,
                             QCOW2_MAX_BACKING_FORMAT);
    return 0;
}

int q2s_check_map_size(const struct q2s_map *map, uint64_t virtual_size,
                       const char *whose, struct q2s_error *err)
{
    uint64_t end = q2s_map_end(map);

    if (end > virtual_size)
        return q2s_error_set(err, EINVAL, "%s map reaches byte %llu, past "
                             "the virtual size of %llu bytes: it is the map "
                             "of another disk", whose,
                             (unsigned long long)end,
                             (unsigned long long)virtual_size);
    return 0;
}

int q2s_options_validate(const struct q2s_options *options,
                         struct q2s_error *err)
{
    if (q2s_check_cluster_size(options->cluster_size, err) < 0 ||
        q2s_check_refcount_bits(options->refcount_bits, err) < 0 ||
        q2s_check_compression(options->compression,
                              options->compression_level, err) < 0)
        return -1;
    if (options->compression != Q2S_COMPRESSION_NONE &&
        q2s_check_threads(options->threads, err) < 0)
        return -1;
    /* The L2 tables come before the data in the stream and hold the size
     * of every compressed cluster, known only once it is read. */
    if (options->one_pass && options->compression != Q2S_COMPRESSION_NONE)
        return q2s_error_set(err, EINVAL, "--one-pass cannot compress: the "
                             "L2 tables come first and hold every "
                             "compressed size; drop --one-pass (two passes "
                             "read the data once and keep only what is "
                             "compressed)");
    /* The fork allocates mapped clusters without reading them: there is
     * nothing to compress them from in pass 1. */
    if (options->input_map && options->compression != Q2S_COMPRESSION_NONE)
        return q2s_error_set(err, EINVAL, "compression cannot be combined "
                             "with the input's qemu-img map (the XAPI "
                             "fork's --json-header-map); --map can");
    if (options->data_file_raw && !options->data_file_name)
        return q2s_error_set(err, EINVAL, "data_file_raw needs an external "
                             "data file");
    if (q2s_check_backing_file(options->backing_file,
                               options->backing_format, err) < 0)
        return -1;
    if (options->backing_file &&
        (options->input_map || options->base_map))
        return q2s_error_set(err, EINVAL, "a backing file cannot be combined "
                             "with the XAPI fork's qemu-img maps "
                             "(--json-header-map); --map can");
    if (options->backing_file && options->data_file_name)
        return q2s_error_set(err, EINVAL, "a backing file cannot be combined "
                             "with an external data file");
    if (options->data_file_name &&
        options->compression != Q2S_COMPRESSION_NONE)
        return q2s_error_set(err, EINVAL, "compression cannot be combined "
                             "with an external data file, which holds the "
                             "data as it is");
    if (options->data_file_name &&
        options->cluster_size == Q2S_MIN_CLUSTER_SIZE)
        return q2s_error_set(err, EINVAL, "external data files require a "
                             "larger cluster size");
    if (q2s_header_layout(options->data_file_name, options->backing_file,
                          options->backing_format, options->cluster_size,
                          &(struct q2s_header_layout){ 0 }) < 0)
        return q2s_error_set(err, EINVAL, "the %s name is too long for a "
                             "%u-byte header cluster; use a shorter name or "
                             "a larger cluster size",
                             options->backing_file ? "backing file"
                                                   : "data file",
                             options->cluster_size);
    return 0;
}

int q2s_options_check_input(const struct q2s_options *options,
                            bool nameable_raw_file, struct q2s_error *err)
{
    if (options->data_file_name && !nameable_raw_file)
        return q2s_error_set(err, EINVAL, "an external data file must be a "
                             "raw file that the image can name, not standard "
                             "input, an NBD export or an image in another "
                             "format");
    return 0;
}
