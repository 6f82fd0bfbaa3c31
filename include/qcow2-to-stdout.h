/* qcow2-to-stdout: turn a disk image into a qcow2 image written as a
 * stream, or read as any byte range.
 *
 * The public interface of libqcow2-to-stdout.  A conversion has two passes:
 *
 *   1. q2s_plan_build() scans an input (struct q2s_source) and computes
 *      an immutable plan: which guest clusters hold data and, from that,
 *      every offset of the output image, whose size is then known.
 *   2. q2s_render() writes any byte range of the image to a file
 *      descriptor, strictly sequentially (a pipe will do); q2s_pread()
 *      fills a buffer with any byte range.  Both give the same bytes.
 *
 * Every object is opaque, made and freed by the library, and read or
 * changed through functions, so that later versions can add to them
 * without breaking programs built against this header.
 *
 * Errors: a function that can fail returns 0 on success and -1 on
 * failure.  Its last argument, struct q2s_error **error, may be NULL; if
 * not, a failure stores there an error that the caller frees with
 * q2s_error_free(): a one-line message and an errno value that says what
 * kind of failure it is:
 *   EINVAL           an option or argument that cannot be used;
 *   ENOMEM           out of memory;
 *   EFBIG            the image would pass a limit of qcow2 or of QEMU;
 *   ECANCELED        cancelled (q2s_source_cancel() or the cancel flag);
 *   ETIMEDOUT        an NBD server stopped answering for longer than the
 *                    timeout;
 *   ESTALE           the input changed while it was being converted;
 *   EPROTO           an input or server answered nonsense;
 *   EPERM            an image refused as untrusted;
 *   ENOTRECOVERABLE  a bug of the library;
 *   otherwise        what a system call, libnbd or a caller's callback
 *                    said (ENOENT, EACCES, EIO, EPIPE, ENOSPC, ...).
 * Nothing in the library prints, exits or changes signal dispositions.
 *
 * Threads: a plan never changes once built, so any number of threads may
 * render or read it at once, each with its own source opened on the same
 * input.  A source serves one call at a time (q2s_plan_build, q2s_render,
 * q2s_pread); q2s_source_cancel() is the exception: any thread or signal
 * handler may call it at any time.  Options may be shared by threads that
 * only read them.  The library keeps no global state.
 */
#ifndef QCOW2_TO_STDOUT_H
#define QCOW2_TO_STDOUT_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the shared library exports: these functions and nothing else. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define Q2S_API __attribute__((visibility("default")))
#else
#define Q2S_API
#endif

#define Q2S_VERSION_MAJOR 0
#define Q2S_VERSION_MINOR 5
#define Q2S_VERSION_MICRO 0
/* 10000 * major + 100 * minor + micro, for comparisons in #if. */
#define Q2S_VERSION_NUMBER \
    (Q2S_VERSION_MAJOR * 10000 + Q2S_VERSION_MINOR * 100 + Q2S_VERSION_MICRO)
#define Q2S_VERSION "0.5.0"

/* The version of the library running, which may be newer than the header
 * a program was built with. */
Q2S_API unsigned q2s_version_number(void);
Q2S_API const char *q2s_version_string(void);

/* Errors. */
struct q2s_error;

/* An errno value (see above). */
Q2S_API int q2s_error_code(const struct q2s_error *error);
/* One line, no newline. */
Q2S_API const char *q2s_error_message(const struct q2s_error *error);
/* NULL is allowed. */
Q2S_API void q2s_error_free(struct q2s_error *error);

/* Conversion options: how the image is laid out. */
#define Q2S_DEFAULT_CLUSTER_SIZE 65536
#define Q2S_MIN_CLUSTER_SIZE 512
#define Q2S_MAX_CLUSTER_SIZE (2 * 1024 * 1024)
#define Q2S_DEFAULT_REFCOUNT_BITS 16
/* The most compression threads the options take.  Fewer are started when
 * the batches, which a fixed memory budget bounds, have work for fewer. */
#define Q2S_MAX_THREADS 1024

/* How data clusters are stored ("compression_type" in the header). */
enum q2s_compression {
    Q2S_COMPRESSION_NONE,  /* every data cluster as it is */
    Q2S_COMPRESSION_ZLIB,
    Q2S_COMPRESSION_ZSTD
};
/* A compression level that means the type's own default (zlib 6, zstd 3). */
#define Q2S_COMPRESSION_LEVEL_DEFAULT INT_MIN

struct q2s_options;
/* How an input is opened by name (below). */
struct q2s_source_options;

/* New options hold the defaults: 64 KiB clusters, 16-bit refcounts, no
 * data file, no compression, one thread, no compression cache.  NULL with
 * errno ENOMEM when out of memory. */
Q2S_API struct q2s_options *q2s_options_new(void);
Q2S_API void q2s_options_free(struct q2s_options *options);

/* Each setter refuses (EINVAL) a value that can never be right, leaving
 * the options as they were; q2s_options_check() then looks at them
 * together. */

/* A power of two from 512 to 2 MiB. */
Q2S_API int q2s_options_set_cluster_size(
    struct q2s_options *options, uint32_t cluster_size,
    struct q2s_error **error);
Q2S_API uint32_t q2s_options_get_cluster_size(
    const struct q2s_options *options);

/* The width of a reference count: 1, 2, 4, 8, 16, 32 or 64. */
Q2S_API int q2s_options_set_refcount_bits(
    struct q2s_options *options, uint32_t refcount_bits,
    struct q2s_error **error);
Q2S_API uint32_t q2s_options_get_refcount_bits(
    const struct q2s_options *options);

/* Make the input the image's external data file, which the image names
 * as name (copied); raw also sets data_file_raw, which makes every cluster
 * allocated.  NULL name: a self-contained image.  The input must then be
 * a raw file or block device opened by name, not standard input, an NBD
 * export or another format. */
Q2S_API int q2s_options_set_data_file(struct q2s_options *options,
                                      const char *name, bool raw,
                                      struct q2s_error **error);
/* NULL without a data file. */
Q2S_API const char *q2s_options_get_data_file(
    const struct q2s_options *options);
Q2S_API bool q2s_options_get_data_file_raw(const struct q2s_options *options);

/* Store each data cluster compressed when that makes it smaller; level
 * is zlib's 1 to 9, zstd's -131072 to 22, or
 * Q2S_COMPRESSION_LEVEL_DEFAULT, which is the only level that goes with
 * Q2S_COMPRESSION_NONE.  Not with a data file.  With 1-bit
 * refcounts, which cannot count the clusters that share a host cluster,
 * every cluster is stored as it is. */
Q2S_API int q2s_options_set_compression(struct q2s_options *options,
                                        enum q2s_compression compression,
                                        int level, struct q2s_error **error);
Q2S_API enum q2s_compression q2s_options_get_compression(
    const struct q2s_options *options);
Q2S_API int q2s_options_get_compression_level(
    const struct q2s_options *options);

/* Threads that compress: 1 to Q2S_MAX_THREADS. */
Q2S_API int q2s_options_set_threads(struct q2s_options *options,
                                    uint32_t threads,
                                    struct q2s_error **error);
Q2S_API uint32_t q2s_options_get_threads(const struct q2s_options *options);

/* Memory in bytes for what pass 1 keeps for the rendering of the image
 * (default 0): the compressed clusters, which would otherwise be
 * compressed again, and the data of an input that costs a round trip to
 * read again (an NBD server, or an image through qemu-nbd), which would
 * otherwise be read again.  Of the latter, and of its compressed
 * clusters, what does not fit goes to an unlinked temporary file in
 * $TMPDIR (or /tmp), as much disk as the data takes, unless reread is set
 * (q2s_options_set_reread()); the file is gone when the plan is freed or
 * the process ends.  A caller that only wants the size (the plan) sets 0
 * and reread.  Running out of disk is not an error: what was not kept is
 * read again. */
Q2S_API int q2s_options_set_spool_memory(
    struct q2s_options *options, uint64_t bytes, struct q2s_error **error);
Q2S_API uint64_t q2s_options_get_spool_memory(
    const struct q2s_options *options);
/* The older names of the two above. */
Q2S_API int q2s_options_set_compress_cache(
    struct q2s_options *options, uint64_t bytes, struct q2s_error **error);
Q2S_API uint64_t q2s_options_get_compress_cache(
    const struct q2s_options *options);
/* Read again (and compress again) what does not fit in the spool memory,
 * rather than keep it in a temporary file: for a server on the same
 * machine, reading again can cost less than writing the file.  Default:
 * false. */
Q2S_API void q2s_options_set_reread(struct q2s_options *options,
                                    bool reread);
Q2S_API bool q2s_options_get_reread(const struct q2s_options *options);

/* One pass (default: false): the clusters allocated in the image are
 * those the source reports as holding data (an NBD server's block status,
 * SEEK_DATA of a file, a map, the extents of a callbacks source), so that
 * the plan reads nothing, and rendering reads each data byte once, in
 * order, straight into the output; nothing is kept.  A cluster reported
 * as data is stored as data even where it reads as zeros; where the
 * source reports a hole or zeros that hold data, the image follows the
 * report.  Not with compression (the compressed sizes would be needed
 * before the L2 tables that precede them), a delta, the XAPI fork's
 * input map, or a source spooled from a pipe (EINVAL from
 * q2s_plan_build()).  With a backing file and a dirty bitmap, the dirty
 * clusters reported as data are data, the rest of them zero clusters. */
Q2S_API void q2s_options_set_one_pass(struct q2s_options *options,
                                      bool one_pass);
Q2S_API bool q2s_options_get_one_pass(const struct q2s_options *options);

/* Make the image an overlay (an increment) of the backing file name, in
 * format (both required, copied, and written into the image exactly as
 * given: QEMU opens name relative to the image's directory, and never
 * probes the format).  Then q2s_plan_build() makes an increment from the
 * source's dirty bitmap (q2s_source_options_set_dirty_bitmap()), and
 * q2s_plan_build_delta() an overlay of what differs from its base: each
 * cluster that changed is stored as data, or with the zero flag where it
 * now reads as zeros; the rest reads from the backing file.  EINVAL for a
 * name longer than qcow2's 1023 bytes or a format longer than QEMU's 15;
 * a name that does not fit the header cluster fails in
 * q2s_options_check().  Not with a data file or the fork's maps.  NULL
 * name: a self-contained image. */
Q2S_API int q2s_options_set_backing_file(struct q2s_options *options,
                                         const char *name, const char *format,
                                         struct q2s_error **error);
/* NULL without a backing file. */
Q2S_API const char *q2s_options_get_backing_file(
    const struct q2s_options *options);
Q2S_API const char *q2s_options_get_backing_format(
    const struct q2s_options *options);

/* Allow an overlay smaller than its base (a disk that shrank): the base's
 * data past the overlay's end is then out of the guest's sight.  Refused
 * (EINVAL) by default. */
Q2S_API void q2s_options_set_allow_shrink(struct q2s_options *options,
                                          bool allow);
Q2S_API bool q2s_options_get_allow_shrink(const struct q2s_options *options);

/* The options together (EINVAL), and the input named input as
 * q2s_source_open() would open it with source_options (which may be NULL
 * for the defaults): a data file must be a raw file opened by name.  What
 * q2s_plan_build() would refuse before reading anything. */
Q2S_API int q2s_options_check(const struct q2s_options *options,
                              const char *input,
                              const struct q2s_source_options *source_options,
                              struct q2s_error **error);

/* Inputs: where the guest-visible bytes of the disk come from. */
struct q2s_source;

/* Defaults: raw, trusted, no timeout, no cancel flag.  NULL with errno
 * ENOMEM when out of memory. */
Q2S_API struct q2s_source_options *q2s_source_options_new(void);
Q2S_API void q2s_source_options_free(struct q2s_source_options *options);

/* NULL or "raw": the bytes as they are; any other format QEMU reads goes
 * through qemu-nbd, which must be installed.  A format is never probed.
 * The name is copied; "" is refused. */
Q2S_API int q2s_source_options_set_format(
    struct q2s_source_options *options, const char *format,
    struct q2s_error **error);
/* "raw" when none was set. */
Q2S_API const char *q2s_source_options_get_format(
    const struct q2s_source_options *options);

/* The image comes from someone else: refuse one that names another file
 * (a backing file, an external data file, vmdk extents) or whose format
 * is not inspected for such names, and run QEMU's programs within
 * resource limits.  Without it, a named file is still refused when opening
 * it could block (a FIFO, a device). */
Q2S_API void q2s_source_options_set_untrusted(
    struct q2s_source_options *options, bool untrusted);
Q2S_API bool q2s_source_options_get_untrusted(
    const struct q2s_source_options *options);

/* A dirty bitmap to read with the input, for an increment: an NBD server
 * must export it as the meta context "qemu:dirty-bitmap:NAME" (qemu-nbd
 * -B NAME; an image in another format is exported so by the qemu-nbd that
 * the library starts), or q2s_source_open() fails with ENOENT, before
 * anything is read.  Other inputs are refused (EINVAL).  NULL: none. */
Q2S_API int q2s_source_options_set_dirty_bitmap(
    struct q2s_source_options *options, const char *name,
    struct q2s_error **error);
Q2S_API const char *q2s_source_options_get_dirty_bitmap(
    const struct q2s_source_options *options);

/* Seconds an NBD server (or qemu-nbd) may go without answering before the
 * call fails with ETIMEDOUT, at most Q2S_MAX_TIMEOUT_SECONDS; 0 waits for
 * ever, except with untrusted, where it means
 * Q2S_UNTRUSTED_TIMEOUT_SECONDS. */
#define Q2S_MAX_TIMEOUT_SECONDS 86400
#define Q2S_UNTRUSTED_TIMEOUT_SECONDS 60
Q2S_API int q2s_source_options_set_timeout(
    struct q2s_source_options *options, uint32_t seconds,
    struct q2s_error **error);
Q2S_API uint32_t q2s_source_options_get_timeout(
    const struct q2s_source_options *options);

/* Connections over which an NBD URI's export is read, when its server
 * says that they all see the same data (multi-conn), from 1 to
 * Q2S_MAX_CONNECTIONS; default Q2S_DEFAULT_CONNECTIONS, as nbdcopy.  A
 * server that does not allow several gets one; a connection beyond the
 * first that is not had within two seconds is given up. */
#define Q2S_DEFAULT_CONNECTIONS 4
#define Q2S_MAX_CONNECTIONS 16
Q2S_API int q2s_source_options_set_connections(
    struct q2s_source_options *options, uint32_t connections,
    struct q2s_error **error);
Q2S_API uint32_t q2s_source_options_get_connections(
    const struct q2s_source_options *options);

/* A flag that a signal handler sets to stop: once *flag is non-zero, the
 * opening and every later call on the source stop within a fraction of a
 * second with ECANCELED, having ended any process they started.  The flag
 * must outlive the source; NULL for none. */
Q2S_API void q2s_source_options_set_cancel_flag(
    struct q2s_source_options *options, const volatile sig_atomic_t *flag);

/* Opens an input by name:
 *   "-"           standard input, a raw image (a pipe is read once and its
 *                 data kept in an unlinked file in $TMPDIR, or /tmp);
 *   an NBD URI    (nbd://, nbds://, nbd+unix://, ...), read as raw; the
 *                 files its TLS parameters name (tls-psk-file=,
 *                 tls-certificates=) are read, as a file name is;
 *   anything else a regular file or a block device, or an image in the
 *                 options' format through a qemu-nbd that the library
 *                 starts, which dies with the thread that opened the
 *                 source: open from a thread that outlives it.
 * options may be NULL for the defaults. */
Q2S_API int q2s_source_open(const char *input,
                            const struct q2s_source_options *options,
                            struct q2s_source **source,
                            struct q2s_error **error);
/* Whether q2s_source_open() takes input for an NBD URI. */
Q2S_API bool q2s_input_is_nbd_uri(const char *input);

/* A raw image on a regular file or block device that the caller opened
 * for reading (EBADF if write-only or O_PATH); the source reads a
 * duplicate of fd, which the caller may close. */
Q2S_API int q2s_source_from_fd(int fd, struct q2s_source **source,
                               struct q2s_error **error);

/* A caller's own input, read through its callbacks.  Each returns -1 with
 * errno set on failure, which fails the call that needed it.
 *
 * read: fill buf with count bytes at offset; count > 0 and
 *   offset + count <= size.  Only ever called for extents that data
 *   reported as data.
 * data: the first extent at or after offset that may hold data: return 1
 *   with [*start, *end) (offset <= *start < *end), or 0 when the rest of
 *   the input reads as zeros.  Reporting zeros as data costs a read;
 *   reporting data as a hole loses it.  NULL: all of it may hold data.
 * close: called once, from q2s_source_close(), or when this constructor
 *   fails; may be NULL. */
typedef int q2s_read_callback(void *opaque, void *buf, size_t count,
                              uint64_t offset);
typedef int q2s_data_callback(void *opaque, uint64_t offset, uint64_t *start,
                              uint64_t *end);
typedef void q2s_close_callback(void *opaque);

Q2S_API int q2s_source_from_callbacks(uint64_t size, q2s_read_callback *read,
                                      q2s_data_callback *data,
                                      q2s_close_callback *close, void *opaque,
                                      struct q2s_source **source,
                                      struct q2s_error **error);

/* Bytes of the input. */
Q2S_API uint64_t q2s_source_get_size(const struct q2s_source *source);

/* Makes the call running on the source, and every later one, fail with
 * ECANCELED within a fraction of a second, ending any process the source
 * started.  Safe from any thread and from a signal handler.  One wait it
 * cannot end: a q2s_render() blocked in write(2) on a blocking pipe or
 * socket whose reader stopped reading, which only a signal caught by a
 * handler installed without SA_RESTART interrupts; to cancel a render
 * from another thread whatever the reader does, give it a non-blocking
 * fd. */
Q2S_API void q2s_source_cancel(struct q2s_source *source);

/* Also ends any server process the source started.  NULL is allowed. */
Q2S_API void q2s_source_close(struct q2s_source *source);

/* Progress. */
enum q2s_phase {
    Q2S_PHASE_SCAN,   /* pass 1: reading the input to find the data */
    Q2S_PHASE_WRITE   /* pass 2: writing the image */
};

/* Called now and then, on the calling thread, with the bytes done out of
 * the phase's total. */
typedef void q2s_progress_callback(void *opaque, enum q2s_phase phase,
                                   uint64_t done, uint64_t total);

/* Plans. */
struct q2s_plan;

/* Pass 1: reads the data of the source (never what it reports as holes)
 * and computes the image.  options is only read; progress may be NULL.
 * With a backing file in the options, an increment: only the clusters
 * that the source's dirty bitmap marks are read (EINVAL without one). */
Q2S_API int q2s_plan_build(struct q2s_source *source,
                           const struct q2s_options *options,
                           q2s_progress_callback *progress,
                           void *progress_opaque, struct q2s_plan **plan,
                           struct q2s_error **error);
Q2S_API void q2s_plan_free(struct q2s_plan *plan);

/* Bytes of the whole qcow2 image. */
Q2S_API uint64_t q2s_plan_get_image_size(const struct q2s_plan *plan);
/* The guest disk: the input size rounded up to 512 bytes. */
Q2S_API uint64_t q2s_plan_get_virtual_size(const struct q2s_plan *plan);
Q2S_API uint64_t q2s_plan_get_input_size(const struct q2s_plan *plan);
Q2S_API uint32_t q2s_plan_get_cluster_size(const struct q2s_plan *plan);
Q2S_API uint32_t q2s_plan_get_refcount_bits(const struct q2s_plan *plan);
/* Guest clusters that are allocated, of which compressed, and the bytes
 * these take in the image. */
Q2S_API uint64_t q2s_plan_get_data_clusters(const struct q2s_plan *plan);
Q2S_API uint64_t q2s_plan_get_compressed_clusters(const struct q2s_plan *plan);
/* An overlay's clusters stored with the zero flag (no data). */
Q2S_API uint64_t q2s_plan_get_zero_clusters(const struct q2s_plan *plan);
Q2S_API uint64_t q2s_plan_get_compressed_bytes(const struct q2s_plan *plan);
Q2S_API uint64_t q2s_plan_get_l1_entries(const struct q2s_plan *plan);
Q2S_API uint64_t q2s_plan_get_l2_tables(const struct q2s_plan *plan);
Q2S_API uint64_t q2s_plan_get_refcount_blocks(const struct q2s_plan *plan);
Q2S_API uint64_t q2s_plan_get_refcount_table_clusters(
    const struct q2s_plan *plan);
/* Host clusters of the image. */
Q2S_API uint64_t q2s_plan_get_total_clusters(const struct q2s_plan *plan);

/* Allocation maps: where an input's data may lie, as the storage system
 * behind it tells (qemu-img map, rbd diff), so that the rest is never
 * read.  A map is a list of extents in the order they were added. */
struct q2s_map;

/* An empty map; NULL if out of memory. */
Q2S_API struct q2s_map *q2s_map_new(void);
/* Appends the extent [offset, offset + length): EINVAL if length is 0 or
 * the end overflows. */
Q2S_API int q2s_map_add(struct q2s_map *map, uint64_t offset,
                        uint64_t length, struct q2s_error **error);
Q2S_API size_t q2s_map_get_extent_count(const struct q2s_map *map);
/* NULL is allowed. */
Q2S_API void q2s_map_free(struct q2s_map *map);

/* Parses the JSON output of `qemu-img map --output=json` (its entries
 * with "data": true are the extents) or of `rbd diff --format=json`
 * (entries whose "exists" is true), told apart by their keys; anything
 * else fails with EPROTO and a message that says where. */
Q2S_API int q2s_map_from_json(const char *text, size_t length,
                              struct q2s_map **map, struct q2s_error **error);

/* Parses the JSON output of `qemu-img info --output=json`: the virtual
 * size and the cluster size (EPROTO if either is missing or bad). */
Q2S_API int q2s_image_info_from_json(const char *text, size_t length,
                                     uint64_t *virtual_size,
                                     uint32_t *cluster_size,
                                     struct q2s_error **error);

/* From now on the source reads as zeros outside the extents of map, and
 * never reads there; inside them it reads as before.  Extents may come in
 * any order and overlap; EINVAL for one that reaches past the end of the
 * source.  The map is copied; NULL removes it. */
Q2S_API int q2s_source_set_map(struct q2s_source *source,
                               const struct q2s_map *map,
                               struct q2s_error **error);

/* What XAPI's fork of the script (qcow2-to-stdout-xapi.py) does with the
 * output of qemu-img map and qemu-img info on the qcow2 file behind a
 * block device.
 *
 * q2s_options_set_input_map(): every guest cluster that an extent of map
 * touches is allocated, and not read in pass 1; the image's virtual size
 * is virtual_size.  q2s_options_set_base_map(): the same about the base
 * of q2s_plan_build_delta().  Both copy the map; NULL removes it. */
Q2S_API int q2s_options_set_input_map(struct q2s_options *options,
                                      const struct q2s_map *map,
                                      uint64_t virtual_size,
                                      struct q2s_error **error);
Q2S_API int q2s_options_set_base_map(struct q2s_options *options,
                                     const struct q2s_map *map,
                                     uint64_t virtual_size,
                                     struct q2s_error **error);

/* Pass 1 of a delta against base (the fork's --diff): allocates the
 * clusters of source that differ from base's, and those that base's map
 * lists and the input's does not, so that the image, given base as its
 * backing file, reads as source.  See the man page for the rules.  With
 * a backing file in the options, an overlay instead: the clusters whose
 * bytes differ from base's (zeros past its end), as data or zero
 * clusters; EINVAL if base is larger than the source, unless allowed. */
Q2S_API int q2s_plan_build_delta(struct q2s_source *source,
                                 struct q2s_source *base,
                                 const struct q2s_options *options,
                                 q2s_progress_callback *progress,
                                 void *progress_opaque,
                                 struct q2s_plan **plan,
                                 struct q2s_error **error);

/* Pass 2: writes bytes [offset, offset + length) of the image to fd,
 * which is never seeked and may be non-blocking (the call then waits in
 * poll(2) for it to take more); the range must lie within the image.
 * source is the one the plan was built from, or one opened the same way
 * on the same input.  progress may be NULL.  A pipe or socket whose
 * reader has gone raises SIGPIPE, as any write does: a program that is
 * to see EPIPE instead ignores SIGPIPE, as the command line does. */
Q2S_API int q2s_render(const struct q2s_plan *plan, struct q2s_source *source,
                       int fd, uint64_t offset, uint64_t length,
                       q2s_progress_callback *progress, void *progress_opaque,
                       struct q2s_error **error);

/* Fills buf with bytes [offset, offset + count) of the image, the same
 * bytes as q2s_render() writes: for a program that serves ranges itself.
 * The range must lie within the image. */
Q2S_API int q2s_pread(const struct q2s_plan *plan, struct q2s_source *source,
                      void *buf, size_t count, uint64_t offset,
                      struct q2s_error **error);

/* Importing: a qcow2 image read as a stream, written as the disk it
 * describes (the program qcow2-from-stdin).
 *
 * The stream is read once, in order, never seeked: any layout QEMU
 * writes (tables before or after the data they map), qcow2 version 2 or
 * 3, every cluster size and refcount width, subclusters, zlib and zstd
 * compressed clusters.  What arrives before the table that maps it is
 * kept (memory up to the spool memory, then an unlinked temporary file)
 * until that table comes.  The target gets exactly what QEMU reads from
 * the image: data where it has data, zeros everywhere else (with apply:
 * what the image leaves unallocated stays as the target has it).
 *
 *     q2s_import_new_fd(0, options, &import, &error);
 *     q2s_import_read_header(import, &error);     then the getters
 *     q2s_target_open("disk.raw", options, &target, &error);
 *     q2s_import_run(import, target, NULL, NULL, &error);
 *
 * Errors as above; EPROTO for a stream that is not a qcow2 image QEMU
 * reads (truncated, references past its end, tables that use the same
 * bytes twice), ENOTSUP for one it cannot import (encrypted, an external
 * data file), EINVAL for a target that cannot take the disk. */
struct q2s_import_options;
struct q2s_import;
struct q2s_target;

/* The defaults: no apply, no flush, a target not known to be zero, the default
 * spool memory, as many threads as cores, $TMPDIR (or /tmp).  NULL with
 * errno ENOMEM. */
#define Q2S_IMPORT_DEFAULT_SPOOL_MEMORY (256 * 1024 * 1024)
Q2S_API struct q2s_import_options *q2s_import_options_new(void);
Q2S_API void q2s_import_options_free(struct q2s_import_options *options);
/* The stream is an overlay or a delta: written onto what the target
 * holds, which must be of the disk's size.  Without it, an image that
 * names a backing file is refused. */
Q2S_API void q2s_import_options_set_apply(struct q2s_import_options *options,
                                          bool apply);
Q2S_API bool q2s_import_options_get_apply(
    const struct q2s_import_options *options);
/* Make the writes last before q2s_import_run() returns: fdatasync(2) of a
 * file or device, an NBD flush.  Off by default, as for qemu-img convert
 * (cache mode unsafe), nbdcopy (--flush) and dd (conv=fsync). */
Q2S_API void q2s_import_options_set_flush(struct q2s_import_options *options,
                                          bool flush);
Q2S_API bool q2s_import_options_get_flush(
    const struct q2s_import_options *options);
/* The target reads as zeros already: the ranges that are zeros in the
 * image are not written (qemu-img convert --target-is-zero). */
Q2S_API void q2s_import_options_set_target_is_zero(
    struct q2s_import_options *options, bool is_zero);
Q2S_API bool q2s_import_options_get_target_is_zero(
    const struct q2s_import_options *options);
/* Memory for what arrives before its table (and, for a stream target,
 * what arrives before the bytes of the disk ahead of it); past it, a
 * temporary file. */
Q2S_API int q2s_import_options_set_spool_memory(
    struct q2s_import_options *options, uint64_t bytes,
    struct q2s_error **error);
Q2S_API uint64_t q2s_import_options_get_spool_memory(
    const struct q2s_import_options *options);
/* Threads that inflate compressed clusters, 1 to Q2S_MAX_THREADS; 1
 * inflates them on the calling thread. */
Q2S_API int q2s_import_options_set_threads(
    struct q2s_import_options *options, uint32_t threads,
    struct q2s_error **error);
Q2S_API uint32_t q2s_import_options_get_threads(
    const struct q2s_import_options *options);
/* Where the temporary file goes; NULL for $TMPDIR, or /tmp.  The string
 * must outlive the options. */
Q2S_API void q2s_import_options_set_temporary_directory(
    struct q2s_import_options *options, const char *directory);
/* As q2s_source_options_set_cancel_flag(). */
Q2S_API void q2s_import_options_set_cancel_flag(
    struct q2s_import_options *options, const volatile sig_atomic_t *flag);

/* Reads count bytes at most into buf: 0 with *done set (0 at the end of
 * the stream), or -1 with errno. */
typedef int q2s_import_read_callback(void *opaque, void *buf, size_t count,
                                     size_t *done);
/* A stream read from fd (a pipe, a socket, a file: never seeked), or
 * through a caller's callback.  The options are copied. */
Q2S_API int q2s_import_new_fd(int fd, const struct q2s_import_options *options,
                              struct q2s_import **import,
                              struct q2s_error **error);
Q2S_API int q2s_import_new(q2s_import_read_callback *read, void *opaque,
                           const struct q2s_import_options *options,
                           struct q2s_import **import,
                           struct q2s_error **error);
Q2S_API void q2s_import_free(struct q2s_import *import);
/* Makes the call running on the import fail with ECANCELED: from any
 * thread or a signal handler. */
Q2S_API void q2s_import_cancel(struct q2s_import *import);

/* Reads the header: then the getters below say what it holds.  Refuses
 * an image the importer cannot read before anything is written anywhere
 * (an overlay without apply only by q2s_import_check() and
 * q2s_import_run(), so that a program can first say what the header
 * holds). */
Q2S_API int q2s_import_read_header(struct q2s_import *import,
                                   struct q2s_error **error);
/* What q2s_import_run() refuses before it touches a target: an overlay
 * without apply (EINVAL, naming the backing file), apply with
 * target_is_zero (EINVAL).  Reads the header first if need be: a program
 * calls it before it opens (and so creates) a target. */
Q2S_API int q2s_import_check(struct q2s_import *import,
                             struct q2s_error **error);
Q2S_API uint64_t q2s_import_get_virtual_size(const struct q2s_import *import);
Q2S_API uint32_t q2s_import_get_cluster_size(const struct q2s_import *import);
Q2S_API uint32_t q2s_import_get_version(const struct q2s_import *import);
Q2S_API uint32_t q2s_import_get_refcount_bits(const struct q2s_import *import);
/* NULL when the image names none. */
Q2S_API const char *q2s_import_get_backing_file(
    const struct q2s_import *import);
/* "" when the image names none. */
Q2S_API const char *q2s_import_get_backing_format(
    const struct q2s_import *import);
Q2S_API enum q2s_compression q2s_import_get_compression(
    const struct q2s_import *import);
Q2S_API bool q2s_import_get_extended_l2(const struct q2s_import *import);

/* Targets: where the disk goes. */
/* A regular file (made if it does not exist, unless apply), a block
 * device or an NBD URI (as q2s_input_is_nbd_uri() says). */
Q2S_API int q2s_target_open(const char *name,
                            const struct q2s_import_options *options,
                            struct q2s_target **target,
                            struct q2s_error **error);
/* A descriptor the caller opened for writing: a regular file or block
 * device is written at its offsets; anything else (a pipe, a socket, a
 * terminal) gets the disk in order, as a stream.  fd stays the caller's. */
Q2S_API int q2s_target_from_fd(int fd, struct q2s_target **target,
                               struct q2s_error **error);
/* A caller's target of size bytes.  write puts count bytes at offset;
 * zero (may be NULL: zeros are then written) makes a range read as zeros;
 * flush (may be NULL) runs after the last write; close (may be NULL) when
 * the target is closed.  Each returns 0, or -1 with errno. */
typedef int q2s_target_write_callback(void *opaque, const void *buf,
                                      size_t count, uint64_t offset);
typedef int q2s_target_zero_callback(void *opaque, uint64_t offset,
                                     uint64_t count);
typedef int q2s_target_flush_callback(void *opaque);
Q2S_API int q2s_target_from_callbacks(uint64_t size,
                                      q2s_target_write_callback *write,
                                      q2s_target_zero_callback *zero,
                                      q2s_target_flush_callback *flush,
                                      q2s_close_callback *close, void *opaque,
                                      struct q2s_target **target,
                                      struct q2s_error **error);
/* Bytes the target holds; UINT64_MAX for a stream. */
Q2S_API uint64_t q2s_target_get_size(const struct q2s_target *target);
Q2S_API void q2s_target_close(struct q2s_target *target);

/* Reads the rest of the stream (the header too, if not read yet) and
 * writes the disk to target: refused before anything is written when the
 * target cannot take it (a device or export smaller than the disk; with
 * apply, a target of another size, or a stream).  progress (may be NULL)
 * gets Q2S_PHASE_WRITE with the bytes of the disk done and its size.  A
 * failure after writing began leaves the target partly written:
 * q2s_import_get_bytes_written() says how much. */
Q2S_API int q2s_import_run(struct q2s_import *import,
                           struct q2s_target *target,
                           q2s_progress_callback *progress,
                           void *progress_opaque, struct q2s_error **error);
/* Bytes of the target written or zeroed so far. */
Q2S_API uint64_t q2s_import_get_bytes_written(
    const struct q2s_import *import);
/* Whether anything of the target was changed: written, zeroed, or (a
 * regular file) truncated. */
Q2S_API bool q2s_import_get_target_changed(const struct q2s_import *import);
/* Bytes of the stream read so far. */
Q2S_API uint64_t q2s_import_get_bytes_read(const struct q2s_import *import);
/* The most that was kept at once in memory and in the temporary file:
 * what arrived before its table. */
Q2S_API uint64_t q2s_import_get_spool_peak(const struct q2s_import *import);

#ifdef __cplusplus
}
#endif

#endif
