/* A stream target (standard output, a pipe, a socket): the disk in order.
 * The reader declares ranges in the order the image's tables and data
 * come, which for a stream written metadata first is the disk's order;
 * what comes ahead of the next byte to write is held (zero ranges as
 * their bounds, data in a byte store: memory, then a temporary file)
 * until the bytes before it are written. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fdio.h"
#include "common/heap.h"
#include "import/byte_store.h"
#include "import/target.h"

#define ZERO_BUFFER_BYTES (1024u * 1024)
/* Held data goes into pieces of at most this. */
#define HOLD_PIECE_BYTES (4u * 1024 * 1024)

struct held_range {
    uint64_t offset;
    uint64_t length;
    bool zero;
    struct byte_store_piece piece;  /* data */
};

static inline bool held_before(const struct held_range *a,
                               const struct held_range *b)
{
    return a->offset < b->offset;
}

Q2S_DEFINE_HEAP_TYPE(held_heap, struct held_range, held_before)

struct stream_state {
    int fd;
    bool own_fd;
    uint64_t written;        /* bytes of the disk written out, in order */
    struct held_heap held;
    struct byte_store store;
    bool store_ready;
    uint8_t *zeros;
    uint8_t *piece_buffer;
};

static int out(struct q2s_target *target, const uint8_t *buf, size_t length,
               struct q2s_error *err)
{
    struct stream_state *s = target->state;

    if (q2s_write_all(s->fd, buf, length, target->cancel) < 0) {
        if (errno == ECANCELED)
            return q2s_error_set(err, ECANCELED, "interrupted");
        return q2s_error_set_errno(err, errno, "write error on %s",
                                   target->name);
    }
    s->written += length;
    return 0;
}

static int out_zeros(struct q2s_target *target, uint64_t length,
                     struct q2s_error *err)
{
    struct stream_state *s = target->state;

    if (!s->zeros) {
        s->zeros = calloc(1, ZERO_BUFFER_BYTES);
        if (!s->zeros)
            return q2s_error_set(err, ENOMEM, "out of memory");
    }
    while (length > 0) {
        size_t n = length < ZERO_BUFFER_BYTES ? (size_t)length
                                              : ZERO_BUFFER_BYTES;

        if (out(target, s->zeros, n, err) < 0)
            return -1;
        length -= n;
    }
    return 0;
}

/* Writes out what is held at the next byte, and what follows it. */
static int drain(struct q2s_target *target, struct q2s_error *err)
{
    struct stream_state *s = target->state;
    const struct held_range *top;

    while ((top = held_heap_top(&s->held)) && top->offset == s->written) {
        struct held_range range;
        int ret;

        held_heap_pop(&s->held, &range);
        if (range.zero) {
            ret = out_zeros(target, range.length, err);
        } else if (range.piece.data) {
            ret = out(target, range.piece.data, range.length, err);
        } else {
            ret = byte_store_get(&s->store, &range.piece, 0,
                                 (uint32_t)range.length, s->piece_buffer, err);
            if (ret == 0)
                ret = out(target, s->piece_buffer, range.length, err);
        }
        byte_store_release(&s->store, &range.piece);
        if (ret < 0)
            return -1;
    }
    return 0;
}

static int hold(struct q2s_target *target, struct held_range *range,
                struct q2s_error *err)
{
    struct stream_state *s = target->state;

    if (range->offset < s->written)
        return q2s_error_set(err, ENOTRECOVERABLE, "bytes at %" PRIu64
                             " of the disk declared twice", range->offset);
    if (held_heap_push(&s->held, range) < 0) {
        byte_store_release(&s->store, &range->piece);
        return q2s_error_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

static int stream_write(struct q2s_target *target, const uint8_t *buf,
                        size_t length, uint64_t offset, struct q2s_error *err)
{
    struct stream_state *s = target->state;

    if (offset == s->written) {
        if (out(target, buf, length, err) < 0)
            return -1;
        return drain(target, err);
    }
    if (!s->store_ready) {
        s->piece_buffer = malloc(HOLD_PIECE_BYTES);
        if (!s->piece_buffer)
            return q2s_error_set(err, ENOMEM, "out of memory");
        byte_store_init(&s->store, target->spool_memory, target->directory,
                        "what arrives ahead of the next byte to write");
        s->store_ready = true;
    }
    while (length > 0) {
        struct held_range range = {.offset = offset};
        uint32_t n = length < HOLD_PIECE_BYTES ? (uint32_t)length
                                               : HOLD_PIECE_BYTES;

        range.length = n;
        if (byte_store_put(&s->store, buf, n, &range.piece, err) < 0 ||
            hold(target, &range, err) < 0)
            return -1;
        buf += n;
        offset += n;
        length -= n;
    }
    return 0;
}

static int stream_zero(struct q2s_target *target, uint64_t offset,
                       uint64_t length, struct q2s_error *err)
{
    struct stream_state *s = target->state;
    struct held_range range = {.offset = offset, .length = length,
                               .zero = true};

    if (offset == s->written) {
        if (out_zeros(target, length, err) < 0)
            return -1;
        return drain(target, err);
    }
    return hold(target, &range, err);
}

static int stream_finish(struct q2s_target *target, struct q2s_error *err)
{
    struct stream_state *s = target->state;

    if (drain(target, err) < 0)
        return -1;
    if (s->held.len || s->written != target->size)
        return q2s_error_set(err, ENOTRECOVERABLE, "%" PRIu64 " bytes of the "
                             "disk written out of %" PRIu64, s->written,
                             target->size);
    return 0;
}

static void stream_close(struct q2s_target *target)
{
    struct stream_state *s = target->state;

    for (size_t i = 0; i < s->held.len; i++)
        byte_store_release(&s->store, &s->held.ptr[i].piece);
    held_heap_free(&s->held);
    if (s->store_ready)
        byte_store_close(&s->store);
    if (s->own_fd)
        close(s->fd);
    free(s->zeros);
    free(s->piece_buffer);
    free(s);
    import_target_free(target);
}

static int stream_prepare(struct q2s_target *target, uint64_t virtual_size,
                          bool apply, bool target_is_zero,
                          struct q2s_error *err)
{
    (void)target_is_zero;  /* every byte is written anyway */
    if (apply)
        return q2s_error_set(err, EINVAL, "--apply needs a target that "
                             "holds the disk to apply the image to, not "
                             "a stream (%s)", target->name);
    target->size = virtual_size;
    target->known_zero = false;
    return 0;
}

static const struct import_target_ops stream_ops = {
    .prepare = stream_prepare,
    .write = stream_write,
    .zero = stream_zero,
    .finish = stream_finish,
    .close = stream_close,
};

int import_target_new_stream(int fd, const char *name, bool own_fd,
                             struct q2s_target **result,
                             struct q2s_error *err)
{
    struct stream_state *s = calloc(1, sizeof *s);
    struct q2s_target *target =
        import_target_new(IMPORT_TARGET_STREAM, &stream_ops, name);

    if (!s || !target) {
        free(s);
        import_target_free(target);
        if (own_fd)
            close(fd);
        return q2s_error_set(err, ENOMEM, "out of memory");
    }
    s->fd = fd;
    s->own_fd = own_fd;
    target->state = s;
    target->sequential = true;
    target->size = UINT64_MAX;
    *result = target;
    return 0;
}
