#include "import/byte_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fdio.h"

void byte_store_init(struct byte_store *store, uint64_t memory_budget,
                     const char *directory, const char *purpose)
{
    memset(store, 0, sizeof *store);
    store->memory_left = memory_budget;
    store->directory = directory;
    store->purpose = purpose;
    store->fd = -1;
}

void byte_store_close(struct byte_store *store)
{
    if (store->fd >= 0)
        close(store->fd);
    store->fd = -1;
}

int byte_store_put(struct byte_store *store, const uint8_t *data,
                   uint32_t length, struct byte_store_piece *piece,
                   struct q2s_error *err)
{
    piece->length = length;
    piece->data = NULL;
    piece->file_offset = 0;
    if (length <= store->memory_left) {
        piece->data = malloc(length ? length : 1);
        if (piece->data) {
            memcpy(piece->data, data, length);
            store->memory_left -= length;
            store->memory_held += length;
            return 0;
        }
        /* Out of memory: the file will do. */
    }
    if (store->fd < 0) {
        store->fd = q2s_open_unlinked(store->directory);
        if (store->fd < 0)
            return q2s_error_set_errno(
                err, errno, "cannot make a temporary file in %s for %s",
                store->directory, store->purpose);
    }
    if (q2s_pwrite_all(store->fd, data, length, store->file_bytes) < 0)
        return q2s_error_set_errno(
            err, errno, "cannot keep %s in a temporary file in %s",
            store->purpose, store->directory);
    piece->file_offset = store->file_bytes;
    store->file_bytes += length;
    if (store->file_bytes > store->file_peak)
        store->file_peak = store->file_bytes;
    return 0;
}

int byte_store_get(const struct byte_store *store,
                   const struct byte_store_piece *piece, uint32_t offset,
                   uint32_t count, uint8_t *buf, struct q2s_error *err)
{
    if (piece->data) {
        memcpy(buf, piece->data + offset, count);
        return 0;
    }
    switch (q2s_pread_all(store->fd, buf, count, piece->file_offset + offset,
                          NULL)) {
    case 0:
        return 0;
    case 1:
        return q2s_error_set(err, EIO, "the temporary file in %s is "
                             "shorter than what was written to it",
                             store->directory);
    default:
        return q2s_error_set_errno(err, errno, "cannot read the temporary "
                                   "file in %s", store->directory);
    }
}

void byte_store_release(struct byte_store *store,
                        struct byte_store_piece *piece)
{
    if (piece->data) {
        free(piece->data);
        store->memory_left += piece->length;
        store->memory_held -= piece->length;
        piece->data = NULL;
    }
}
