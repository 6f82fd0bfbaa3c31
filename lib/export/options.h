/* The options of a conversion and of opening an input: their fields, and
 * the rules on them, each stated once.  The public interface reaches them
 * through setters (api.c); the core reads the fields. */
#ifndef Q2S_OPTIONS_H
#define Q2S_OPTIONS_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "qcow2-to-stdout.h"

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
    /* Memory for what pass 1 keeps for pass 2 (cache.h): compressed
     * clusters, and the data of an input that costs much to read again. */
    uint64_t cache_bytes;
    /* What does not fit in it is read (and compressed) again rather than
     * kept in a temporary file. */
    bool reread;
    /* One pass: the allocated clusters are those the input reports as
     * holding data (q2s_options_set_one_pass()), and nothing is read
     * before the image is written. */
    bool one_pass;
    /* The XAPI fork's maps (qcow2-to-stdout-xapi.py): with input_map,
     * the clusters it touches are allocated unread and the virtual size
     * is input_virtual_size; base_map is the base's, for a delta.  NULL
     * without. */
    const struct q2s_map *input_map;
    uint64_t input_virtual_size;
    const struct q2s_map *base_map;
    uint64_t base_virtual_size;
    /* Make the image an overlay of this backing file, in this format,
     * both recorded as given; NULL for a self-contained image. */
    const char *backing_file;
    const char *backing_format;
    /* Allow an overlay whose virtual size is smaller than its base's. */
    bool allow_shrink;
};

struct q2s_source_options {
    /* NULL or "raw": the bytes as they are; any other format QEMU reads
     * goes through qemu-nbd.  A format is never probed. */
    const char *format;
    /* See q2s_source_options_set_untrusted(). */
    bool untrusted;
    /* Seconds an NBD server may go without answering before the
     * conversion fails; 0 waits for ever, except with untrusted, where it
     * means Q2S_UNTRUSTED_TIMEOUT_SECONDS. */
    uint32_t timeout_seconds;
    /* When *interrupted becomes non-zero (a signal handler sets it; it
     * may be NULL), every wait stops within a fraction of a second with
     * the error "interrupted", and children are ended. */
    const volatile sig_atomic_t *interrupted;
    /* A dirty bitmap that the NBD server exports (or qemu-nbd, started
     * with -B): what an increment reads.  NULL for none. */
    const char *dirty_bitmap;
    /* Connections to an NBD URI's server when it allows several; 0: the
     * default, Q2S_NBD_DEFAULT_CONNECTIONS. */
    uint32_t connections;
};

/* Whether a map fits a disk of virtual_size bytes: EINVAL if an extent
 * reaches past it (the map of another disk). */
int q2s_check_map_size(const struct q2s_map *map, uint64_t virtual_size,
                       const char *whose, struct q2s_error *err);

/* The defaults of q2s_options_new() and q2s_source_options_new(). */
void q2s_options_init(struct q2s_options *options);
void q2s_source_options_init(struct q2s_source_options *options);

/* The rules on one value each, which the setters apply. */
int q2s_check_cluster_size(uint32_t cluster_size, struct q2s_error *err);
int q2s_check_refcount_bits(uint32_t refcount_bits, struct q2s_error *err);
int q2s_check_compression(enum q2s_compression compression, int level,
                          struct q2s_error *err);
int q2s_check_threads(uint32_t threads, struct q2s_error *err);
int q2s_check_timeout(uint32_t seconds, struct q2s_error *err);
int q2s_check_connections(uint32_t connections, struct q2s_error *err);
int q2s_check_format(const char *format, struct q2s_error *err);
/* QEMU block driver names are lower-case words: anything else could
 * smuggle options into qemu-nbd's --image-opts, or name no driver. */
bool q2s_plausible_format(const char *format);
int q2s_check_dirty_bitmap(const char *name, struct q2s_error *err);
int q2s_check_backing_file(const char *name, const char *format,
                           struct q2s_error *err);

/* Every rule on the options, alone and together: what can be checked
 * before the input is known. */
int q2s_options_validate(const struct q2s_options *options,
                         struct q2s_error *err);

/* What the input must be for the options: a data file is a raw file that
 * the image can name, opened by name.  nameable_raw_file says whether the
 * input is one. */
int q2s_options_check_input(const struct q2s_options *options,
                            bool nameable_raw_file, struct q2s_error *err);

#endif
