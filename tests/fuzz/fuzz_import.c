/* qcow2-from-stdin's reader (lib/import/reader.c) on a stream from
 * someone else, through the public interface: the input is the stream,
 * handed over in pieces of changing sizes, and the target a caller's
 * callbacks that check what the reader promises:
 *
 * - every write and zero lies within the disk's virtual size;
 * - each byte of the disk is declared once at most (tracked for disks of
 *   up to TRACKED_BYTES), and on success every byte exactly once, with
 *   the bytes written and zeroed adding up to what the import says;
 * - a refusal is one printable line with one of the documented codes. */
#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "qcow2-to-stdout.h"

#define TRACKED_BYTES (4u * 1024 * 1024)

struct stream {
    const uint8_t *data;
    size_t size, position;
};

struct disk {
    uint64_t size;
    uint64_t declared;   /* bytes written or zeroed */
    uint8_t *seen;       /* one flag per byte, for small disks */
};

static int read_piece(void *opaque, void *buf, size_t count, size_t *done)
{
    struct stream *s = opaque;
    /* Pieces from 1 byte to 64 KiB, as a pipe hands them out. */
    size_t piece = 1 + (s->position * 7919 + 13) % 65536;

    if (piece > count)
        piece = count;
    if (piece > s->size - s->position)
        piece = s->size - s->position;
    memcpy(buf, s->data + s->position, piece);
    s->position += piece;
    *done = piece;
    return 0;
}

static void declare(struct disk *d, uint64_t offset, uint64_t count)
{
    FUZZ_CHECK(count > 0);
    FUZZ_CHECK(offset <= d->size && count <= d->size - offset);
    if (d->seen) {
        for (uint64_t i = offset; i < offset + count; i++) {
            FUZZ_CHECK(!d->seen[i]);
            d->seen[i] = 1;
        }
    }
    d->declared += count;
}

static int write_cb(void *opaque, const void *buf, size_t count,
                    uint64_t offset)
{
    struct disk *d = opaque;

    (void)buf;
    declare(d, offset, count);
    return 0;
}

static int zero_cb(void *opaque, uint64_t offset, uint64_t count)
{
    declare(opaque, offset, count);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stream stream = {data, size, 0};
    struct disk disk = {0};
    struct q2s_import_options *options = q2s_import_options_new();
    struct q2s_import *imp = NULL;
    struct q2s_target *target = NULL;
    struct q2s_error *err = NULL;
    int ret;

    FUZZ_CHECK(options != NULL);
    q2s_import_options_set_threads(options, 1, NULL);
    /* Everything in memory: no temporary files while fuzzing. */
    q2s_import_options_set_spool_memory(options, 64u * 1024 * 1024, NULL);
    FUZZ_CHECK(q2s_import_new(read_piece, &stream, options, &imp, &err) == 0);
    ret = q2s_import_read_header(imp, &err);
    if (ret == 0) {
        disk.size = q2s_import_get_virtual_size(imp);
        if (disk.size <= TRACKED_BYTES) {
            disk.seen = calloc(1, disk.size ? disk.size : 1);
            FUZZ_CHECK(disk.seen != NULL);
        }
        FUZZ_CHECK(q2s_target_from_callbacks(disk.size, write_cb, zero_cb,
                                             NULL, NULL, &disk, &target,
                                             &err) == 0);
        ret = q2s_import_run(imp, target, NULL, NULL, &err);
    }
    if (ret == 0) {
        FUZZ_CHECK(disk.declared == disk.size);
        /* Written or zeroed: every byte, as the target is not zero. */
        FUZZ_CHECK(disk.declared == q2s_import_get_bytes_written(imp));
    } else {
        int code = q2s_error_code(err);

        FUZZ_CHECK(code == EPROTO || code == ENOTSUP || code == EFBIG ||
                   code == EINVAL || code == ENAMETOOLONG || code == ENOMEM);
        fuzz_check_message(q2s_error_message(err));
    }
    q2s_error_free(err);
    q2s_target_close(target);
    q2s_import_free(imp);
    q2s_import_options_free(options);
    free(disk.seen);
    return 0;
}
