#define _GNU_SOURCE
#include "import/reader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/zero.h"
#include "format/qcow2_entries.h"

/* What one read of the stream asks for; the header needs the first
 * QCOW2_HEADER_MAX_BYTES in the buffer at once. */
#define READ_BUFFER_BYTES (4u * 1024 * 1024)
/* Backward references are served from the spool a piece at a time. */
#define SPOOL_PIECE_BYTES (1024u * 1024)
/* Blocks of data that are all zeros are not written to a target that
 * reads as zeros already, as qemu-img convert leaves them out (-S 4k). */
#define SPARSE_BLOCK_BYTES 4096u

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- The stream ---------------------------------------------------- */

static int read_more(struct q2s_import *imp, struct q2s_error *err)
{
    size_t done = 0;

    if (q2s_cancelled(&imp->cancel))
        return q2s_error_set(err, ECANCELED, "interrupted");
    if (imp->read(imp->read_opaque, imp->buffer + imp->buffer_used,
                  imp->buffer_size - imp->buffer_used, &done) < 0) {
        if (errno == EINTR || errno == ECANCELED)
            return q2s_error_set(err, ECANCELED, "interrupted");
        return q2s_error_set_errno(err, errno, "cannot read the image");
    }
    if (done == 0)
        imp->end_of_stream = true;
    imp->buffer_used += done;
    return 0;
}

int import_read_header(struct q2s_import *imp, struct q2s_error *err)
{
    struct qcow2_header_info *h = &imp->header;

    if (imp->header_read)
        return 0;
    if (!imp->buffer) {
        imp->buffer = malloc(READ_BUFFER_BYTES);
        if (!imp->buffer)
            return q2s_error_set(err, ENOMEM, "out of memory");
        imp->buffer_size = READ_BUFFER_BYTES;
    }
    /* The first cluster holds the header, its extensions and the backing
     * file name: read up to its end, which the cluster size (bytes 20 to
     * 23) says, and no further, so that --info answers at once. */
    for (;;) {
        size_t wanted = QCOW2_HEADER_MAX_BYTES;

        if (imp->buffer_used >= 24) {
            uint32_t bits = q2s_get_be32(imp->buffer + 20);

            if (bits >= QCOW2_MIN_CLUSTER_BITS &&
                bits <= QCOW2_MAX_CLUSTER_BITS)
                wanted = (size_t)1 << bits;
        }
        if (imp->buffer_used >= wanted || imp->end_of_stream)
            break;
        if (read_more(imp, err) < 0)
            return -1;
    }
    if (imp->buffer_used == 0)
        return q2s_error_set(err, EPROTO, "not a qcow2 image: the stream is "
                             "empty");
    /* The header, its extensions and the backing file name lie in the
     * first cluster, which QEMU's images always hold whole: a stream that
     * ends inside it is cut short, before any target is touched. */
    if (imp->buffer_used >= 4 &&
        q2s_get_be32(imp->buffer) == QCOW2_MAGIC && imp->end_of_stream) {
        uint32_t bits = imp->buffer_used >= 24
                            ? q2s_get_be32(imp->buffer + 20) : 0;

        if (imp->buffer_used < QCOW2_V2_HEADER_LENGTH ||
            (bits >= QCOW2_MIN_CLUSTER_BITS && bits <= QCOW2_MAX_CLUSTER_BITS &&
             imp->buffer_used < (size_t)1 << bits))
            return q2s_error_set(err, EPROTO, "the image ends at byte %zu, "
                                 "inside its first cluster, which holds the "
                                 "header: a truncated stream",
                                 imp->buffer_used);
    }
    if (qcow2_header_parse(imp->buffer, imp->buffer_used, h, err) < 0 ||
        qcow2_header_check_open(h, err) < 0 ||
        qcow2_header_check_backing_name(h, err) < 0)
        return -1;
    if (h->crypt_method != QCOW2_CRYPT_NONE)
        return q2s_error_set(err, ENOTSUP, "the image is encrypted; decrypt "
                             "it first (qemu-img convert --object secret,...)");
    if (h->incompatible_features & (UINT64_C(1) << QCOW2_INCOMPAT_DATA_FILE_BIT))
        return q2s_error_set(err, ENOTSUP, "the image keeps its data in an "
                             "external data file, which a stream does not "
                             "carry");
    /* Without a backing file (offset 0) the length is whatever it says:
     * QEMU reads no name then, and neither does this. */
    if (h->backing_name_offset != 0)
        qcow2_header_copy_name(imp->buffer, imp->buffer_used,
                               h->backing_name_offset,
                               h->backing_name_length, imp->backing_file);
    imp->extended_l2 = qcow2_header_has_extended_l2(h);
    imp->l2_entry_bytes = imp->extended_l2 ? 16 : 8;
    imp->l2_coverage = (uint64_t)(h->cluster_size / imp->l2_entry_bytes) *
                       h->cluster_size;
    imp->l1_entries = qcow2_l1_entries_needed(h);
    imp->header_read = true;
    return 0;
}

/* ---- What the target gets ----------------------------------------- */

static void report(struct q2s_import *imp, bool last)
{
    uint64_t total = imp->header.virtual_size;

    if (!imp->progress)
        return;
    if (last || imp->guest_bytes_done - imp->progress_reported >=
                    total / 1000 + 1) {
        imp->progress_reported = imp->guest_bytes_done;
        imp->progress(imp->progress_opaque, Q2S_PHASE_WRITE,
                      imp->guest_bytes_done, total);
    }
}

static int flush_zeros(struct q2s_import *imp, struct q2s_error *err)
{
    uint64_t start = imp->zero_start, length = imp->zero_length;

    if (length == 0)
        return 0;
    imp->zero_length = 0;
    if (!imp->target->known_zero) {
        if (imp->target->ops->zero(imp->target, start, length, err) < 0)
            return -1;
        imp->target_bytes_changed += length;
    }
    imp->guest_bytes_done += length;
    report(imp, false);
    return 0;
}

/* Guest bytes that read as zeros: gathered into runs for the target. */
static int declare_zeros(struct q2s_import *imp, uint64_t guest,
                         uint64_t length, struct q2s_error *err)
{
    if (length == 0)
        return 0;
    if (imp->zero_length && imp->zero_start + imp->zero_length == guest) {
        imp->zero_length += length;
        return 0;
    }
    if (flush_zeros(imp, err) < 0)
        return -1;
    imp->zero_start = guest;
    imp->zero_length = length;
    return 0;
}

/* Guest bytes the image leaves unallocated: zeros, or with apply what the
 * target holds already. */
static int declare_unallocated(struct q2s_import *imp, uint64_t guest,
                               uint64_t length, struct q2s_error *err)
{
    if (!imp->options.apply)
        return declare_zeros(imp, guest, length, err);
    imp->guest_bytes_done += length;
    report(imp, false);
    return 0;
}

static int target_write(struct q2s_import *imp, const uint8_t *buf,
                        size_t length, uint64_t guest, struct q2s_error *err)
{
    if (imp->target->ops->write(imp->target, buf, length, guest, err) < 0)
        return -1;
    imp->data_bytes_written += length;
    imp->target_bytes_changed += length;
    return 0;
}

/* Guest data: to a target that reads as zeros, without its zero blocks,
 * so that a file stays sparse. */
static int write_data(struct q2s_import *imp, const uint8_t *buf,
                      size_t length, uint64_t guest, struct q2s_error *err)
{
    if (length == 0)
        return 0;
    if (imp->target->known_zero && !imp->target->sequential) {
        size_t pos = 0;

        while (pos < length) {
            size_t block = SPARSE_BLOCK_BYTES -
                           (size_t)((guest + pos) % SPARSE_BLOCK_BYTES);
            size_t run = pos;
            bool zero;

            if (block > length - pos)
                block = length - pos;
            zero = q2s_is_zero_unaligned(buf + pos, block);
            /* The run of blocks like this one. */
            for (run = pos + block; run < length;) {
                size_t next = length - run < SPARSE_BLOCK_BYTES
                                  ? length - run
                                  : SPARSE_BLOCK_BYTES;

                if (q2s_is_zero_unaligned(buf + run, next) != zero)
                    break;
                run += next;
            }
            if (!zero &&
                target_write(imp, buf + pos, run - pos, guest + pos, err) < 0)
                return -1;
            pos = run;
        }
    } else if (target_write(imp, buf, length, guest, err) < 0) {
        return -1;
    }
    imp->guest_bytes_done += length;
    report(imp, false);
    return 0;
}

/* ---- Needs --------------------------------------------------------- */

static const char *need_name(enum import_need_kind kind)
{
    switch (kind) {
    case NEED_L1_TABLE:
        return "the L1 table";
    case NEED_L2_TABLE:
        return "the L2 table";
    case NEED_DATA:
        return "the data";
    case NEED_COMPRESSED:
        return "the compressed cluster";
    }
    return "?";
}

/* "the L2 table at byte H (guest offset G)", for messages. */
static void describe_need(const struct import_need *need, char *text,
                          size_t size)
{
    uint64_t host = need->host_first;
    uint64_t guest = need->guest_offset;

    /* A run of data clusters: where it started, on both sides. */
    if (need->kind == NEED_DATA)
        guest -= need->host_start - need->host_first;

    if (need->kind == NEED_L1_TABLE)
        snprintf(text, size, "the L1 table at byte %" PRIu64, host);
    else
        snprintf(text, size, "%s at byte %" PRIu64 " (guest offset %" PRIu64
                 ")", need_name(need->kind), host, guest);
}

static int add_need(struct q2s_import *imp, struct import_need *need,
                    struct q2s_error *err);

/* Extents of guest data in one table, gathered into runs contiguous on
 * both sides: a metadata-first stream of any size then waits for a few
 * runs, not for every cluster. */
struct run_builder {
    bool open;
    uint64_t host_start, host_end, guest_offset;
};

static int run_flush(struct q2s_import *imp, struct run_builder *run,
                     struct q2s_error *err)
{
    struct import_need need = {
        .host_start = run->host_start,
        .host_end = run->host_end,
        .guest_offset = run->guest_offset,
        .kind = NEED_DATA,
    };

    if (!run->open)
        return 0;
    run->open = false;
    return add_need(imp, &need, err);
}

static int run_add(struct q2s_import *imp, struct run_builder *run,
                   uint64_t host, uint64_t guest, uint64_t length,
                   struct q2s_error *err)
{
    if (run->open && run->host_end == host &&
        run->guest_offset + (run->host_end - run->host_start) == guest) {
        run->host_end += length;
        return 0;
    }
    if (run_flush(imp, run, err) < 0)
        return -1;
    *run = (struct run_builder){true, host, host + length, guest};
    return 0;
}

/* One L2 entry's cluster at guest, up to the virtual size. */
static int map_cluster(struct q2s_import *imp,
                       const struct qcow2_cluster_mapping *m, uint64_t guest,
                       struct run_builder *run, struct q2s_error *err)
{
    const struct qcow2_header_info *h = &imp->header;
    uint64_t cluster_end = min_u64(guest + h->cluster_size, h->virtual_size);
    uint32_t subclusters = imp->extended_l2 ? QCOW2_EXTL2_SUBCLUSTERS : 1;
    uint64_t sub_size = h->cluster_size / subclusters;

    if (m->kind == QCOW2_CLUSTER_COMPRESSED) {
        struct import_need need = {
            .host_start = m->host_offset,
            .host_end = m->host_offset + m->compressed_bytes,
            .guest_offset = guest,
            .kind = NEED_COMPRESSED,
            .length = m->compressed_bytes,
        };

        return add_need(imp, &need, err);
    }
    for (uint32_t i = 0; i < subclusters; i++) {
        uint64_t start = guest + i * sub_size;
        uint64_t length;

        if (start >= cluster_end)
            break;
        length = min_u64(sub_size, cluster_end - start);
        if (m->data_mask & (UINT32_C(1) << i)) {
            if (run_add(imp, run, m->host_offset + i * sub_size, start,
                        length, err) < 0)
                return -1;
        } else if (m->zero_mask & (UINT32_C(1) << i)) {
            if (declare_zeros(imp, start, length, err) < 0)
                return -1;
        } else if (declare_unallocated(imp, start, length, err) < 0) {
            return -1;
        }
    }
    return 0;
}

static void check_map_complete(struct q2s_import *imp)
{
    if (imp->l1_read && imp->l2_tables_pending == 0 && !imp->map_complete) {
        /* Every table is read: what the spool holds that no entry took is
         * needed by none. */
        imp->map_complete = true;
        host_spool_clear(&imp->spool);
        imp->tail_length = 0;
    }
}

static int read_l2_table(struct q2s_import *imp, const struct import_need *need,
                         struct q2s_error *err)
{
    const struct qcow2_header_info *h = &imp->header;
    uint32_t entries = h->cluster_size / imp->l2_entry_bytes;
    struct run_builder run = {0};

    for (uint32_t i = 0; i < entries; i++) {
        uint64_t guest = need->guest_offset + (uint64_t)i * h->cluster_size;
        const uint8_t *p = need->buffer + (size_t)i * imp->l2_entry_bytes;
        struct qcow2_cluster_mapping m;

        if (guest >= h->virtual_size)
            break;
        if (qcow2_decode_l2_entry(h, q2s_get_be64(p),
                                  imp->extended_l2 ? q2s_get_be64(p + 8) : 0,
                                  false, &m, err) < 0) {
            char what[128];

            describe_need(need, what, sizeof what);
            snprintf(err->message + strlen(err->message),
                     sizeof err->message - strlen(err->message),
                     " (entry %" PRIu32 " of %s)", i, what);
            return -1;
        }
        if (map_cluster(imp, &m, guest, &run, err) < 0)
            return -1;
    }
    if (run_flush(imp, &run, err) < 0 || flush_zeros(imp, err) < 0)
        return -1;
    imp->l2_tables_pending--;
    check_map_complete(imp);
    return 0;
}

static int read_l1_table(struct q2s_import *imp, const uint8_t *table,
                         struct q2s_error *err)
{
    const struct qcow2_header_info *h = &imp->header;

    for (uint64_t i = 0; i < imp->l1_entries; i++) {
        uint64_t guest = i * imp->l2_coverage;
        uint64_t l2_offset;
        struct import_need need = {
            .kind = NEED_L2_TABLE,
            .guest_offset = guest,
            .length = h->cluster_size,
        };

        if (qcow2_decode_l1_entry(h, q2s_get_be64(table + i * 8), &l2_offset,
                                  err) < 0) {
            snprintf(err->message + strlen(err->message),
                     sizeof err->message - strlen(err->message),
                     " (L1 entry %" PRIu64 ")", i);
            return -1;
        }
        if (l2_offset == 0) {
            if (declare_unallocated(imp, guest,
                                    min_u64(imp->l2_coverage,
                                            h->virtual_size - guest),
                                    err) < 0)
                return -1;
            continue;
        }
        need.host_start = l2_offset;
        need.host_end = l2_offset + h->cluster_size;
        imp->l2_tables_pending++;
        if (add_need(imp, &need, err) < 0)
            return -1;
    }
    if (flush_zeros(imp, err) < 0)
        return -1;
    imp->l1_read = true;
    check_map_complete(imp);
    return 0;
}

/* Keeps the last sector of a compressed cluster's bytes: the next
 * compressed cluster may start in it (QEMU packs them to the byte), and
 * its table may come later.  It goes to the spool only if what follows
 * it does too. */
static void keep_tail(struct q2s_import *imp, const struct import_need *need)
{
    uint64_t start = need->host_end - need->length;
    uint64_t sector = (need->host_end - 1) & ~(uint64_t)(QCOW2_SECTOR_SIZE - 1);

    if (imp->map_complete)
        return;
    if (sector > start)
        start = sector;
    if (imp->tail_length && imp->tail_end == need->host_end &&
        imp->tail_end - imp->tail_length <= start)
        return;
    imp->tail_end = need->host_end;
    imp->tail_length = (uint32_t)(need->host_end - start);
    memcpy(imp->tail, need->buffer + (start - (need->host_end - need->length)),
           imp->tail_length);
}

static int take_decompressed(struct q2s_import *imp, bool wait,
                             struct q2s_error *err)
{
    struct decompress_job *job;

    while ((job = decompress_pool_take(imp->decompressors, wait))) {
        int ret = job->status;

        if (ret < 0 && job->cut_short) {
            q2s_error_set(err, EPROTO, "the image ends at byte %" PRIu64
                          ", inside the compressed cluster at byte %" PRIu64
                          " (guest offset %" PRIu64 "): a truncated stream",
                          imp->position, job->host_offset, job->guest_offset);
        } else if (ret < 0) {
            q2s_error_set(err, job->err.code, "the compressed cluster at "
                          "byte %" PRIu64 " (guest offset %" PRIu64 "): %s",
                          job->host_offset, job->guest_offset,
                          job->err.message);
        } else {
            ret = write_data(imp, job->output,
                             (size_t)min_u64(imp->header.cluster_size,
                                             imp->header.virtual_size -
                                                 job->guest_offset),
                             job->guest_offset, err);
        }
        decompress_pool_recycle(imp->decompressors, job);
        if (ret < 0)
            return -1;
    }
    return 0;
}

static int need_complete(struct q2s_import *imp, struct import_need *need,
                         struct q2s_error *err)
{
    int ret = 0;

    switch (need->kind) {
    case NEED_L1_TABLE:
        ret = read_l1_table(imp, need->buffer, err);
        break;
    case NEED_L2_TABLE:
        ret = read_l2_table(imp, need, err);
        break;
    case NEED_DATA:
        break;
    case NEED_COMPRESSED:
        /* (Cut short by the end of the stream, nothing follows it.) */
        if (need->filled == need->length)
            keep_tail(imp, need);
        if (decompress_pool_full(imp->decompressors) &&
            take_decompressed(imp, true, err) < 0) {
            ret = -1;
            break;
        }
        /* Cut short by the end of the stream: only what came is
         * inflated, and it must be enough. */
        ret = decompress_pool_submit(imp->decompressors, need->guest_offset,
                                     need->host_first, need->buffer,
                                     need->filled, need->filled < need->length,
                                     err);
        need->buffer = NULL;  /* the pool's now */
        break;
    }
    free(need->buffer);
    need->buffer = NULL;
    return ret;
}

/* A need whose bytes the stream passed already: from the spool, then the
 * rest from the stream. */
static int add_need_behind(struct q2s_import *imp, struct import_need *need,
                           struct q2s_error *err)
{
    uint64_t behind_end = min_u64(need->host_end, imp->position);
    uint8_t *piece = NULL;

    if (need->kind != NEED_DATA) {
        need->buffer = malloc(need->length);
        if (!need->buffer)
            return q2s_error_set(err, ENOMEM, "out of memory");
    } else {
        piece = malloc(SPOOL_PIECE_BYTES);
        if (!piece)
            return q2s_error_set(err, ENOMEM, "out of memory");
    }
    while (need->host_start < behind_end) {
        uint32_t n = (uint32_t)min_u64(behind_end - need->host_start,
                                       SPOOL_PIECE_BYTES);
        uint8_t *into = piece ? piece : need->buffer + need->filled;
        uint64_t missing;
        int ret = host_spool_read(&imp->spool, need->host_start, n, into,
                                  &missing, err);

        if (ret == 1) {
            char what[128];

            describe_need(need, what, sizeof what);
            q2s_error_set(err, EPROTO, "%s needs byte %" PRIu64 ", which the "
                          "stream passed already as part of another table or "
                          "cluster: the image uses the same bytes twice, "
                          "which QEMU's images never do", what, missing);
        }
        if (ret == 0 && piece)
            ret = write_data(imp, piece, n, need->guest_offset, err);
        if (ret != 0) {
            free(piece);
            free(need->buffer);
            need->buffer = NULL;
            return -1;
        }
        need->host_start += n;
        if (piece)
            need->guest_offset += n;
        else
            need->filled += n;
    }
    free(piece);
    if (need->host_start < need->host_end) {
        if (import_needs_append(&imp->active, *need) < 0) {
            free(need->buffer);
            return q2s_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
    }
    return need_complete(imp, need, err);
}

static int add_need(struct q2s_import *imp, struct import_need *need,
                    struct q2s_error *err)
{
    if (need->host_end <= need->host_start)
        return 0;
    need->host_first = need->host_start;
    if (need->host_start >= imp->position) {
        if (need_heap_push(&imp->waiting, need) < 0)
            return q2s_error_set(err, ENOMEM, "out of memory");
        return 0;
    }
    return add_need_behind(imp, need, err);
}

/* ---- Going through the stream ------------------------------------- */

/* Bytes at the position that no need takes: kept while some table is
 * still to come, else dropped. */
static int pass_unknown(struct q2s_import *imp, const uint8_t *buf,
                        size_t length, struct q2s_error *err)
{
    if (imp->map_complete)
        return 0;
    if (imp->tail_length && imp->tail_end == imp->position) {
        uint32_t skip = 0;
        uint64_t tail_start = imp->tail_end - imp->tail_length;
        uint64_t kept_end = host_spool_end(&imp->spool);

        if (kept_end > tail_start)
            skip = (uint32_t)min_u64(kept_end - tail_start, imp->tail_length);
        if (host_spool_add(&imp->spool, tail_start + skip, imp->tail + skip,
                           imp->tail_length - skip, err) < 0)
            return -1;
    }
    imp->tail_length = 0;
    return host_spool_add(&imp->spool, imp->position, buf, length, err);
}

static int feed(struct q2s_import *imp, const uint8_t *buf, size_t length,
                struct q2s_error *err)
{
    while (length > 0) {
        const struct import_need *next;
        uint64_t step = length;

        /* Needs that start here become active. */
        while ((next = need_heap_top(&imp->waiting)) &&
               next->host_start <= imp->position) {
            struct import_need need;

            need_heap_pop(&imp->waiting, &need);
            if (need.kind != NEED_DATA) {
                need.buffer = malloc(need.length);
                if (!need.buffer)
                    return q2s_error_set(err, ENOMEM, "out of memory");
            }
            if (import_needs_append(&imp->active, need) < 0) {
                free(need.buffer);
                return q2s_error_set(err, ENOMEM, "out of memory");
            }
        }
        if (next)
            step = min_u64(step, next->host_start - imp->position);
        for (size_t i = 0; i < imp->active.len; i++)
            step = min_u64(step, imp->active.ptr[i].host_end - imp->position);
        if (imp->active.len == 0) {
            if (pass_unknown(imp, buf, (size_t)step, err) < 0)
                return -1;
        } else {
            imp->tail_length = 0;
            for (size_t i = 0; i < imp->active.len; i++) {
                struct import_need *need = &imp->active.ptr[i];

                if (need->kind == NEED_DATA) {
                    if (write_data(imp, buf, (size_t)step,
                                   need->guest_offset, err) < 0)
                        return -1;
                    need->guest_offset += step;
                } else {
                    memcpy(need->buffer + need->filled, buf, (size_t)step);
                    need->filled += (uint32_t)step;
                }
                need->host_start += step;
            }
        }
        imp->position += step;
        buf += step;
        length -= (size_t)step;
        /* Needs that end here are complete; completing one may add needs
         * (behind, served at once, or ahead). */
        for (size_t i = 0; i < imp->active.len;) {
            struct import_need need = imp->active.ptr[i];

            if (need.host_start < need.host_end) {
                i++;
                continue;
            }
            imp->active.ptr[i] = imp->active.ptr[--imp->active.len];
            if (need_complete(imp, &need, err) < 0)
                return -1;
        }
    }
    return take_decompressed(imp, false, err);
}

/* The stream ended: what is still wanted is missing, except the end of a
 * compressed cluster's last sector, which QEMU reads as zeros past the
 * end of the file: the compressed data may end before it.  Such a
 * cluster is inflated from the bytes that came, which must hold it all
 * (QEMU would inflate zeros for the rest, and write what they give). */
static int end_of_stream(struct q2s_import *imp, struct q2s_error *err)
{
    const struct import_need *missing = NULL;
    char what[128];

    for (size_t i = 0; i < imp->active.len;) {
        struct import_need need = imp->active.ptr[i];

        if (need.kind != NEED_COMPRESSED) {
            missing = &imp->active.ptr[i];
            break;
        }
        imp->active.ptr[i] = imp->active.ptr[--imp->active.len];
        if (need_complete(imp, &need, err) < 0)
            return -1;
    }
    if (!missing)
        missing = need_heap_top(&imp->waiting);
    if (missing) {
        describe_need(missing, what, sizeof what);
        if (missing->host_first < imp->position)
            return q2s_error_set(err, EPROTO, "the image ends at byte %"
                                 PRIu64 ", inside %s, which ends at byte %"
                                 PRIu64 ": a truncated stream",
                                 imp->position, what, missing->host_end);
        return q2s_error_set(err, EPROTO, "the image ends at byte %" PRIu64
                             ", before %s: a truncated stream, or a "
                             "reference past its end", imp->position, what);
    }
    if (take_decompressed(imp, true, err) < 0)
        return -1;
    if (!imp->map_complete)
        return q2s_error_set(err, ENOTRECOVERABLE, "the mapping is not "
                             "complete at the end of the stream");
    return 0;
}

int import_run(struct q2s_import *imp, struct q2s_target *target,
               struct q2s_error *err)
{
    const struct qcow2_header_info *h = &imp->header;
    struct import_need l1 = {
        .kind = NEED_L1_TABLE,
        .host_start = h->l1_table_offset,
        .host_end = h->l1_table_offset + imp->l1_entries * 8,
        .length = (uint32_t)(imp->l1_entries * 8),
    };

    imp->target = target;
    target->cancel = &imp->cancel;
    target->flush = imp->options.flush;
    if (decompress_pool_new(h->compression_type, h->cluster_size,
                            imp->options.threads, &imp->decompressors,
                            err) < 0)
        return -1;
    if (imp->l1_entries == 0) {
        imp->l1_read = true;
        check_map_complete(imp);
    } else if (add_need(imp, &l1, err) < 0) {
        return -1;
    }
    for (;;) {
        if (feed(imp, imp->buffer, imp->buffer_used, err) < 0)
            return -1;
        imp->buffer_used = 0;
        if (imp->end_of_stream)
            break;
        if (read_more(imp, err) < 0)
            return -1;
    }
    if (end_of_stream(imp, err) < 0 || flush_zeros(imp, err) < 0)
        return -1;
    if (target->ops->finish(target, err) < 0)
        return -1;
    report(imp, true);
    return 0;
}

void import_free(struct q2s_import *imp)
{
    for (size_t i = 0; i < imp->active.len; i++)
        free(imp->active.ptr[i].buffer);
    import_needs_free(&imp->active);
    for (size_t i = 0; i < imp->waiting.len; i++)
        free(imp->waiting.ptr[i].buffer);
    need_heap_free(&imp->waiting);
    host_spool_free(&imp->spool);
    decompress_pool_free(imp->decompressors);
    free(imp->buffer);
}
