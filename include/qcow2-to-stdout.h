/* qcow2-to-stdout: turn a disk image into a qcow2 image written as a stream.
 *
 * The public interface of the library.  A conversion has two passes:
 *
 *   1. q2s_plan_build() scans the input and computes an immutable plan:
 *      which guest clusters hold data and, from that, every offset of the
 *      output image.
 *   2. q2s_render() writes any byte range of the output image, as a pure
 *      function of (plan, input, range), strictly sequentially.
 *
 * Functions return 0 on success and -1 on failure, with a one-line message
 * in the caller's struct q2s_error.  Nothing here prints or exits.
 */
#ifndef QCOW2_TO_STDOUT_H
#define QCOW2_TO_STDOUT_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#define Q2S_VERSION "0.1.0"

#define Q2S_DEFAULT_CLUSTER_SIZE 65536
#define Q2S_MIN_CLUSTER_SIZE 512
#define Q2S_MAX_CLUSTER_SIZE (2 * 1024 * 1024)
#define Q2S_DEFAULT_REFCOUNT_BITS 16
/* The most compression threads the options may ask for.  Fewer are
 * started when the batches, which a fixed memory budget bounds, have work
 * for fewer (128 at most, at 64 KiB clusters and below), so this only
 * refuses counts that cannot be meant, such as a negative number turned
 * unsigned.  1024 is the limit the command line already had: this is the
 * same definition, token for token, so both can stand until the command
 * line uses this one. */
#define Q2S_MAX_THREADS 1024

/* How data clusters are stored ("compression_type" in the header). */
enum q2s_compression {
    Q2S_COMPRESSION_NONE,  /* every data cluster as it is */
    Q2S_COMPRESSION_ZLIB,
    Q2S_COMPRESSION_ZSTD,
};
/* compression_level: the type's own default (zlib 6, zstd 3). */
#define Q2S_COMPRESSION_LEVEL_DEFAULT INT_MIN

struct q2s_error {
    char message[512];
    int code;  /* an errno value */
};

struct q2s_options {
    uint32_t cluster_size;   /* power of two, 512 to 2 MiB */
    uint32_t refcount_bits;  /* power of two, 1 to 64 */
    /* Make the input the image's external data file, recorded under this
     * name in the header; NULL for a self-contained image. */
    const char *data_file_name;
    bool data_file_raw;      /* set data_file_raw; needs data_file_name */
    /* Store each data cluster compressed when that makes the image
     * smaller; not with a data file. */
    enum q2s_compression compression;
    int compression_level;
    uint32_t threads;        /* compression threads, at least 1 */
    /* Compressed clusters kept in memory from pass 1 for pass 2, which
     * compresses again those that did not fit. */
    uint64_t cache_bytes;
};

void q2s_options_init(struct q2s_options *options);
/* Checks what can be checked of the options alone. */
int q2s_options_check(const struct q2s_options *options, struct q2s_error *err);

/* An input: where the guest-visible bytes of the disk come from. */
struct q2s_source;

/* How an input is opened. */
struct q2s_source_options {
    /* NULL or "raw": the bytes as they are; any other format QEMU reads
     * goes through qemu-nbd.  A format is never probed. */
    const char *format;
    /* The image comes from someone else: refuse one that names another
     * file (a backing file, an external data file, vmdk extents) or whose
     * format is not inspected for such names, and run QEMU's programs
     * within resource limits.  Without it, a named file is still refused
     * when opening it could block (a FIFO, a device). */
    bool untrusted;
    /* Seconds an NBD server may go without answering before the
     * conversion fails; 0 waits for ever, except with untrusted, where it
     * means Q2S_UNTRUSTED_TIMEOUT_SECONDS. */
    uint32_t timeout_seconds;
    /* When *interrupted becomes non-zero (a signal handler sets it; it
     * may be NULL), every wait stops within a fraction of a second with
     * the error "interrupted", and children are ended. */
    const volatile sig_atomic_t *interrupted;
};
#define Q2S_UNTRUSTED_TIMEOUT_SECONDS 60

void q2s_source_options_init(struct q2s_source_options *options);

/* Opens an input.  A qemu-nbd started for it dies with the thread that
 * opened it (PR_SET_PDEATHSIG): open from a thread that outlives the
 * conversion.  The input is one of:
 *   "-"               standard input, a raw image (a pipe is read once and
 *                     its data kept in an unlinked file in $TMPDIR);
 *   an NBD URI        (nbd://, nbds://, nbd+unix://, ...), read as raw;
 *   anything else     a regular file or a block device. */
int q2s_source_open(const char *input, const struct q2s_source_options *options,
                    struct q2s_source **source, struct q2s_error *err);
/* Whether q2s_source_open() takes input for an NBD URI. */
bool q2s_input_is_nbd_uri(const char *input);
/* Also ends any server process the source started. */
void q2s_source_close(struct q2s_source *source);

enum q2s_phase {
    Q2S_PHASE_SCAN,   /* pass 1: reading the input to find the data */
    Q2S_PHASE_WRITE,  /* pass 2: writing the image */
};

/* Called now and then with the bytes done out of the phase's total. */
typedef void q2s_progress_fn(void *opaque, enum q2s_phase phase,
                             uint64_t done, uint64_t total);

struct q2s_plan;

int q2s_plan_build(struct q2s_source *source,
                   const struct q2s_options *options,
                   q2s_progress_fn *progress, void *progress_opaque,
                   struct q2s_plan **plan, struct q2s_error *err);
void q2s_plan_free(struct q2s_plan *plan);

struct q2s_plan_summary {
    uint64_t image_size;          /* bytes of the whole qcow2 stream */
    uint64_t virtual_size;        /* guest disk size */
    uint64_t input_size;
    uint32_t cluster_size;
    uint32_t refcount_bits;
    uint64_t data_clusters;       /* guest clusters that are allocated */
    uint64_t compressed_clusters; /* of which stored compressed */
    uint64_t compressed_bytes;    /* the bytes they take in the image */
    uint64_t l1_entries;
    uint64_t l2_tables;
    uint64_t refcount_blocks;
    uint64_t refcount_table_clusters;
    uint64_t total_clusters;      /* host clusters of the image */
};

void q2s_plan_summarize(const struct q2s_plan *plan,
                        struct q2s_plan_summary *summary);

/* Write bytes [offset, offset + length) of the image to out_fd, which is
 * never seeked.  The range must lie within the image. */
int q2s_render(const struct q2s_plan *plan, struct q2s_source *source,
               int out_fd, uint64_t offset, uint64_t length,
               q2s_progress_fn *progress, void *progress_opaque,
               struct q2s_error *err);

#endif
