/* Where the importer writes the disk: one interface for a regular file, a
 * block device, an NBD export, a stream (standard output, a pipe) and a
 * caller's callbacks.  The reader declares every byte of the disk exactly
 * once, in any order: data, zeros, or (with --apply) left as it is. */
#ifndef Q2S_IMPORT_TARGET_H
#define Q2S_IMPORT_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cancel.h"
#include "error.h"
#include "qcow2-to-stdout.h"

struct q2s_target;

struct import_target_ops {
    /* What import_target_prepare() does for this kind; NULL for the
     * size checks alone. */
    int (*prepare)(struct q2s_target *target, uint64_t virtual_size,
                   bool apply, bool target_is_zero, struct q2s_error *err);
    /* Writes length bytes at offset of the disk. */
    int (*write)(struct q2s_target *target, const uint8_t *buf,
                 size_t length, uint64_t offset, struct q2s_error *err);
    /* Makes [offset, offset + length) read as zeros; never called for a
     * target that already does (known_zero). */
    int (*zero)(struct q2s_target *target, uint64_t offset, uint64_t length,
                struct q2s_error *err);
    /* After the last byte: what a stream holds back, the writes still in
     * flight, and with flush set whatever makes the writes last (fsync,
     * NBD flush). */
    int (*finish)(struct q2s_target *target, struct q2s_error *err);
    void (*close)(struct q2s_target *target);
};

enum import_target_kind {
    IMPORT_TARGET_FILE,
    IMPORT_TARGET_DEVICE,
    IMPORT_TARGET_NBD,
    IMPORT_TARGET_STREAM,
    IMPORT_TARGET_CALLBACKS,
};

struct q2s_target {
    const struct import_target_ops *ops;
    enum import_target_kind kind;
    char *name;          /* for messages */
    uint64_t size;       /* the bytes it holds; set by prepare for a file */
    /* Reads as zeros where nothing is written: a file just truncated, or
     * a target the caller says is zero. */
    bool known_zero;
    /* Writes only in order (a stream): the reader's declarations are put
     * in order by the target itself. */
    bool sequential;
    const struct q2s_cancel *cancel;  /* set by the import */
    bool flush;                       /* likewise: make the writes last */
    uint64_t spool_memory;            /* for a stream's reordering */
    const char *directory;            /* for its temporary file */
    void *state;                      /* the kind's own */
};

/* Makes the target ready for a disk of virtual_size bytes, before anything
 * is written: a file is truncated to it (without apply) or must have that
 * size (with apply); a device or an NBD export must be as large (exactly
 * as large with apply); a stream takes no apply.  -1 with EINVAL or
 * ENOSPC, the target untouched. */
int import_target_prepare(struct q2s_target *target, uint64_t virtual_size,
                          bool apply, bool target_is_zero,
                          struct q2s_error *err);


/* Each kind: a target of its own, or -1.  A descriptor the target owns
 * is closed with it, or on failure. */
int import_target_from_fd(int fd, const char *name, bool own_fd,
                          struct q2s_target **result, struct q2s_error *err);
int import_target_open_nbd(const char *uri, struct q2s_target **result,
                           struct q2s_error *err);
int import_target_from_callbacks(uint64_t size,
                                 q2s_target_write_callback *write,
                                 q2s_target_zero_callback *zero,
                                 q2s_target_flush_callback *flush,
                                 q2s_close_callback *close, void *opaque,
                                 struct q2s_target **result,
                                 struct q2s_error *err);
int import_target_new_stream(int fd, const char *name, bool own_fd,
                             struct q2s_target **result,
                             struct q2s_error *err);

/* Shared by the kinds: a new target with its name copied. */
struct q2s_target *import_target_new(enum import_target_kind kind,
                                     const struct import_target_ops *ops,
                                     const char *name);
void import_target_free(struct q2s_target *target);

/* Writes zeros by plain writes, for targets with no better way: through
 * ops->write, a buffer at a time. */
int import_target_write_zeros(struct q2s_target *target, uint64_t offset,
                              uint64_t length, struct q2s_error *err);

#endif
