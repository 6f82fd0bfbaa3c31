/* An embedder's own input, read through its callbacks: a hypervisor's or a
 * storage system's API that is neither a file nor NBD. */
#include <errno.h>
#include <stdlib.h>

#include "error.h"
#include "export/source.h"
#include "export/sources/callbacks.h"

/* What one call to the caller's read may ask for. */
#define CALLBACK_READ_BYTES (1024 * 1024)

struct callback_source {
    struct q2s_source source;  /* first, so that the two convert */
    q2s_read_callback *read;
    q2s_data_callback *data;
    q2s_close_callback *close;
    void *opaque;
};

static struct callback_source *callback_source_of(struct q2s_source *source)
{
    return (struct callback_source *)source;
}

/* errno of a callback that failed without setting it is still a failure. */
static int callback_errno(void)
{
    return errno > 0 ? errno : EIO;
}

static int callback_next_data(struct q2s_source *source, uint64_t offset,
                              uint64_t *start, uint64_t *end,
                              struct q2s_error *err)
{
    struct callback_source *cb = callback_source_of(source);
    int found;

    if (offset >= source->size)
        return 0;
    if (!cb->data) {
        *start = offset;
        *end = source->size;
        return 1;
    }
    errno = 0;
    found = cb->data(cb->opaque, offset, start, end);
    if (found < 0)
        return q2s_error_set_errno(err, callback_errno(), "the caller's input "
                                   "could not tell where its data is at "
                                   "offset %llu", (unsigned long long)offset);
    if (found == 0)
        return 0;
    /* The scan trusts extents to move forward and stay inside the input;
     * so a wrong one is an error here, not a loop or a read past the end. */
    if (*start < offset || *end <= *start)
        return q2s_error_set(err, EPROTO, "the caller's input reported a bad "
                             "data extent %llu to %llu at offset %llu",
                             (unsigned long long)*start,
                             (unsigned long long)*end,
                             (unsigned long long)offset);
    if (*start >= source->size)
        return 0;
    if (*end > source->size)
        *end = source->size;
    return 1;
}

static int callback_read(struct q2s_source *source, void *buf, size_t length,
                         uint64_t offset, struct q2s_error *err)
{
    struct callback_source *cb = callback_source_of(source);

    errno = 0;
    if (cb->read(cb->opaque, buf, length, offset) < 0)
        return q2s_error_set_errno(err, callback_errno(), "the caller's input: "
                                   "read error at offset %llu",
                                   (unsigned long long)offset);
    return 0;
}

static int callback_check_size(struct q2s_source *source,
                               struct q2s_error *err)
{
    (void)source;
    (void)err;
    return 0;
}

static void callback_close(struct q2s_source *source)
{
    struct callback_source *cb = callback_source_of(source);

    if (cb->close)
        cb->close(cb->opaque);
    free(cb);
}

static const struct q2s_source_ops callback_ops = {
    .next_data = callback_next_data,
    .read = callback_read,
    .check_size = callback_check_size,
    .close = callback_close,
};

int q2s_source_new_callbacks(uint64_t size, q2s_read_callback *read,
                             q2s_data_callback *data,
                             q2s_close_callback *close, void *opaque,
                             struct q2s_source **result,
                             struct q2s_error *err)
{
    struct callback_source *cb;

    if (!read) {
        if (close)
            close(opaque);
        return q2s_error_set(err, EINVAL, "a caller's input needs a read "
                             "callback");
    }
    cb = calloc(1, sizeof *cb);
    if (!cb) {
        if (close)
            close(opaque);
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate the input");
    }
    *cb = (struct callback_source){
        .source = {
            .ops = &callback_ops,
            .size = size,
            .read_bytes = CALLBACK_READ_BYTES,
        },
        .read = read,
        .data = data,
        .close = close,
        .opaque = opaque,
    };
    *result = &cb->source;
    return 0;
}
