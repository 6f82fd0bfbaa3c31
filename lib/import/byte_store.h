/* Bytes the importer must keep until it knows where they go: in memory
 * while a budget allows, then in an unlinked file in a directory, which is
 * gone when it is closed whatever happens.  Unlike the exporter's cache,
 * running out is an error here: what the stream passed cannot be read
 * again. */
#ifndef Q2S_IMPORT_BYTE_STORE_H
#define Q2S_IMPORT_BYTE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct byte_store {
    uint64_t memory_left;   /* of the budget */
    const char *directory;  /* for the file */
    const char *purpose;    /* what it keeps, for messages */
    int fd;                 /* the file, or -1 until it is needed */
    uint64_t file_bytes;    /* the file's end: pieces are appended */
    uint64_t memory_held;   /* bytes in memory now, for tests and stats */
    uint64_t file_peak;     /* the file's size at its largest */
};

/* Where a piece was put: in memory at data (owned by the store until
 * byte_store_release()), or at file_offset of the file. */
struct byte_store_piece {
    uint8_t *data;
    uint64_t file_offset;
    uint32_t length;
};

/* purpose says what is kept ("what arrives before its table"). */
void byte_store_init(struct byte_store *store, uint64_t memory_budget,
                     const char *directory, const char *purpose);
/* Frees nothing held in pieces (release them first); closes the file. */
void byte_store_close(struct byte_store *store);

/* Copies length bytes in: 0, or -1 with ENOSPC, EIO... from the file. */
int byte_store_put(struct byte_store *store, const uint8_t *data,
                   uint32_t length, struct byte_store_piece *piece,
                   struct q2s_error *err);
/* Reads count bytes at offset within the piece into buf. */
int byte_store_get(const struct byte_store *store,
                   const struct byte_store_piece *piece, uint32_t offset,
                   uint32_t count, uint8_t *buf, struct q2s_error *err);
/* Gives a piece's memory back to the budget (a piece in the file keeps its
 * place: the file only grows). */
void byte_store_release(struct byte_store *store,
                        struct byte_store_piece *piece);

#endif
