/* One interface for every input: where the guest-visible bytes come from.
 * Each kind of input implements these operations in a file of its own. */
#ifndef Q2S_SOURCE_H
#define Q2S_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/cancel.h"
#include "export/map.h"
#include "export/options.h"
#include "export/runs.h"
#include "qcow2-to-stdout.h"

/* One read of a batch (q2s_source_read_batch()). */
struct q2s_read {
    void *buf;
    size_t length;
    uint64_t offset;
};

/* A stream of reads (ops->read_stream): the caller says what to read
 * next, the source hands each piece on in order once it has it. */
struct q2s_stream {
    size_t piece_bytes;  /* the most one piece holds */
    /* The next piece: 1 with [*offset, *offset + *length), all below the
     * source's size; 0 after the last; -1 on error. */
    int (*next)(void *opaque, uint64_t *offset, size_t *length,
                struct q2s_error *err);
    /* Each piece, in the order next gave them; buf holds its bytes during
     * the call.  Failing stops the stream. */
    int (*consume)(void *opaque, const uint8_t *buf, uint64_t offset,
                   size_t length, struct q2s_error *err);
    void *opaque;
};

/* The most reads a batch holds. */
#define Q2S_READ_BATCH_MAX 64

struct q2s_source_ops {
    /* Finds the first extent at or after offset that may hold data (holes
     * and zeros are never read).  Returns 1 with [*start, *end), 0 if the
     * rest of the input is a hole, -1 on error.  Reporting a hole as data
     * is allowed; the other way round is not. */
    int (*next_data)(struct q2s_source *source, uint64_t offset,
                     uint64_t *start, uint64_t *end, struct q2s_error *err);
    /* Optional: with a dirty bitmap, the first extent at or after offset
     * that it marks dirty, as next_data does for data. */
    int (*next_dirty)(struct q2s_source *source, uint64_t offset,
                      uint64_t *start, uint64_t *end, struct q2s_error *err);
    /* Reads exactly length bytes at offset, all below source->size. */
    int (*read)(struct q2s_source *source, void *buf, size_t length,
                uint64_t offset, struct q2s_error *err);
    /* Optional: reads count (at most Q2S_READ_BATCH_MAX) reads like
     * read, each all data and below source->size, maybe all in flight at
     * once: many small reads of a device then wait for it once. */
    int (*read_batch)(struct q2s_source *source, const struct q2s_read *reads,
                      size_t count, struct q2s_error *err);
    /* Optional: reads what stream->next says, in pieces, many in flight
     * at all times, each handed to stream->consume in order: a source
     * where each read is a round trip then never waits idle.  The pieces
     * are read as they are, past where the source's extents say data
     * ends too (a map is not applied). */
    int (*read_stream)(struct q2s_source *source,
                       const struct q2s_stream *stream,
                       struct q2s_error *err);
    /* Optional: where bytes from offset on lie contiguously in a file
     * descriptor, so that the output can splice or copy them without
     * reading them.  Returns how many (at most length) with *fd and
     * *fd_offset, or 0. */
    uint64_t (*locate)(struct q2s_source *source, uint64_t offset,
                       uint64_t length, int *fd, uint64_t *fd_offset);
    /* Optional: starts reading [offset, offset + length) in the
     * background, for a read that comes soon: a device then works while
     * the caller compares or writes what came before. */
    void (*prefetch)(struct q2s_source *source, uint64_t offset,
                     uint64_t length);
    /* Fails if the input no longer has the size it had when opened. */
    int (*check_size)(struct q2s_source *source, struct q2s_error *err);
    void (*close)(struct q2s_source *source);
};

struct q2s_source {
    const struct q2s_source_ops *ops;
    uint64_t size;
    /* A good size for one read; sources that split a read into requests
     * in flight at once want large ones. */
    size_t read_bytes;
    /* A regular file or block device opened by name, which an image can
     * name as its external data file. */
    bool raw_file;
    /* Read whole when opened and kept (a pipe): nothing to gain from one
     * pass, which it cannot have. */
    bool spooled;
    /* Reading data again in pass 2 costs a round trip per run (a server):
     * pass 1 keeps some of what it reads (see build.c). */
    bool reread_costly;
    /* Set while large reads are not to be read again soon (a delta's
     * comparison): a source may then read them around its page cache,
     * which for a whole device costs more than the reads. */
    bool read_once;
    /* Whether its reads may run on a thread of the library's own while
     * the caller's thread reads another source: they call nothing of the
     * caller's (no callbacks) and share nothing with another source. */
    bool any_thread;
    /* Whether the caller wants to stop.  Long loops check it. */
    struct q2s_cancel cancel;
    /* Where the data may lie, sorted and merged (q2s_source_use_map());
     * NULL: anywhere the operations say. */
    struct q2s_map *map;
};

static inline int q2s_source_interrupted(const struct q2s_source *source)
{
    return q2s_cancelled(&source->cancel);
}

/* The checked calls of the operations, which the core goes through:
 * ops->next_data with its extent checked (EPROTO for one that goes back,
 * is empty, or ends past the input); ops->locate, 0 without it; and
 * ops->check_size.  With a map, next_data gives only what lies inside its
 * extents, and locate only bytes inside one (maybe fewer than asked): the
 * rest reads as zeros and is never read. */
int q2s_source_next_data(struct q2s_source *source, uint64_t offset,
                         uint64_t *start, uint64_t *end,
                         struct q2s_error *err);
uint64_t q2s_source_locate(struct q2s_source *source, uint64_t offset,
                           uint64_t length, int *fd, uint64_t *fd_offset);
int q2s_source_check_size(struct q2s_source *source, struct q2s_error *err);

/* Adds to *dirty (empty) every guest cluster of cluster_bits bits below
 * guest_clusters that the source's dirty bitmap marks dirty in any part:
 * EINVAL if the source has none, EPROTO for an extent that goes back or
 * past the end. */
int q2s_source_dirty_clusters(struct q2s_source *source,
                              uint32_t cluster_bits, uint64_t guest_clusters,
                              struct q2s_runs *dirty, struct q2s_error *err);

/* ops->prefetch, if the source has it, for what lies below its size. */
void q2s_source_prefetch(struct q2s_source *source, uint64_t offset,
                         uint64_t length);

/* From now on the source reads as zeros outside the extents of map (any
 * order, overlaps allowed), which it copies sorted and merged; EINVAL for
 * an extent past the end of the source.  NULL removes the map. */
int q2s_source_use_map(struct q2s_source *source, const struct q2s_map *map,
                       struct q2s_error *err);

/* Reads [offset, offset + length) like ops->read, but only the extents
 * that may hold data: the rest is filled with zeros, never read. */
int q2s_source_read_data(struct q2s_source *source, uint8_t *buf,
                         size_t length, uint64_t offset,
                         struct q2s_error *err);

/* The same for whole clusters, which may reach past the end of the input:
 * what lies past it reads as zeros. */
int q2s_source_read_clusters(struct q2s_source *source, uint8_t *buf,
                             size_t length, uint64_t offset,
                             struct q2s_error *err);

/* q2s_source_read_clusters() of each of count reads (any number), those
 * that are all data through ops->read_batch if the source has it. */
int q2s_source_read_batch(struct q2s_source *source,
                          const struct q2s_read *reads, size_t count,
                          struct q2s_error *err);

/* How long one wait (for a server, a child, a pipe) lasts before the
 * interrupt flag and any timeout are looked at again: a signal caught
 * just before a blocking call would not interrupt it.  The clock for
 * timeouts is q2s_now_milliseconds() in common/fdio.h. */
#define Q2S_POLL_MILLISECONDS 100

/* pread(2) of exactly length bytes; name and offset go in the message. */
int q2s_pread_full(int fd, void *buf, size_t length, uint64_t offset,
                   const char *name, struct q2s_error *err);

/* stat(2) of an input named by the user, refused unless it is a regular
 * file or a block device; before any open, as opening a FIFO or a device
 * may block or act. */
int q2s_stat_input(const char *path, struct stat *st, struct q2s_error *err);

#endif
