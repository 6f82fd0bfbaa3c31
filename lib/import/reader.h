/* Reading a qcow2 image as a stream, never seeking (docs/interop/
 * qcow2.rst): the header first, then every byte in order.  Each table's
 * place is known from the one above it (header, L1, L2); what the stream
 * reaches before the table that maps it is kept in the host spool until
 * that table comes, and what no table can need any more is dropped.  Each
 * byte of the disk is declared to the target once: data, zeros, or (with
 * apply) left as it is.  Refcounts are never read: QEMU's reads do not
 * use them either. */
#ifndef Q2S_IMPORT_READER_H
#define Q2S_IMPORT_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/cancel.h"
#include "error.h"
#include "format/qcow2_header.h"
#include "import/decompress_pool.h"
#include "import/host_spool.h"
#include "import/need_heap.h"
#include "import/target.h"
#include "qcow2-to-stdout.h"

Q2S_DEFINE_VECTOR_TYPE(import_needs, struct import_need)

/* What the caller chose (the public q2s_import_options). */
struct q2s_import_options {
    bool apply;
    bool target_is_zero;
    bool flush;
    uint64_t spool_memory;
    unsigned threads;
    const char *directory;  /* NULL: $TMPDIR or /tmp */
    const volatile sig_atomic_t *cancel_flag;
};

struct q2s_import {
    struct q2s_import_options options;
    bool ran;               /* q2s_import_run() was called */
    bool target_changed;    /* prepare truncated it */
    void *owned_reader;     /* q2s_import_new_fd()'s, freed with it */
    struct q2s_cancel cancel;
    /* The stream. */
    q2s_import_read_callback *read;
    void *read_opaque;
    uint8_t *buffer;          /* what was read and not yet gone through */
    size_t buffer_size, buffer_used;
    uint64_t position;        /* the stream's bytes before buffer */
    bool end_of_stream;
    /* The header, once read. */
    bool header_read;
    struct qcow2_header_info header;
    char backing_file[QCOW2_MAX_BACKING_FILE_NAME + 1];
    bool extended_l2;
    uint32_t l2_entry_bytes;  /* 8, or 16 with subclusters */
    uint64_t l2_coverage;     /* guest bytes an L2 table maps */
    uint64_t l1_entries;      /* those the virtual size needs */
    /* The mapping. */
    struct need_heap waiting;     /* ahead in the stream */
    struct import_needs active;   /* being filled at the position */
    uint64_t l2_tables_pending;   /* known, not yet read */
    bool l1_read;
    bool map_complete;            /* every table read: nothing to keep */
    struct host_spool spool;
    /* The last sector of the compressed cluster that ended at tail_end,
     * for the spool if what follows goes there too (keep_tail()). */
    uint8_t tail[QCOW2_SECTOR_SIZE];
    uint64_t tail_end;
    uint32_t tail_length;
    struct decompress_pool *decompressors;
    /* The target, and the zeros gathered for it. */
    struct q2s_target *target;
    uint64_t zero_start, zero_length;
    /* What was done, for progress and messages. */
    uint64_t guest_bytes_done;
    uint64_t data_bytes_written;
    uint64_t target_bytes_changed;  /* written or zeroed */
    q2s_progress_callback *progress;
    void *progress_opaque;
    uint64_t progress_reported;
};

/* Reads the stream up to the end of its first cluster (or its end) and
 * the header there, and refuses what the importer cannot read. */
int import_read_header(struct q2s_import *imp, struct q2s_error *err);
/* Reads the rest of the stream, writing the disk to target, which
 * import_target_prepare() made ready. */
int import_run(struct q2s_import *imp, struct q2s_target *target,
               struct q2s_error *err);
/* Frees what the import holds, not the import itself. */
void import_free(struct q2s_import *imp);

#endif
