/* A caller's own target, through its callbacks (q2s_target_from_callbacks). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "import/target.h"
#include "qcow2-to-stdout.h"

struct callbacks_state {
    q2s_target_write_callback *write;
    q2s_target_zero_callback *zero;
    q2s_target_flush_callback *flush;
    q2s_close_callback *close;
    void *opaque;
};

/* A callback that fails without saying why gets EIO. */
static int callback_failed(const char *what, struct q2s_error *err)
{
    int e = errno ? errno : EIO;

    return q2s_error_set_errno(err, e, "the target's %s callback failed",
                               what);
}

static int cb_write(struct q2s_target *target, const uint8_t *buf,
                    size_t length, uint64_t offset, struct q2s_error *err)
{
    struct callbacks_state *s = target->state;

    errno = 0;
    if (s->write(s->opaque, buf, length, offset) < 0)
        return callback_failed("write", err);
    return 0;
}

static int cb_zero(struct q2s_target *target, uint64_t offset,
                   uint64_t length, struct q2s_error *err)
{
    struct callbacks_state *s = target->state;

    if (!s->zero)
        return import_target_write_zeros(target, offset, length, err);
    errno = 0;
    if (s->zero(s->opaque, offset, length) < 0)
        return callback_failed("zero", err);
    return 0;
}

static int cb_finish(struct q2s_target *target, struct q2s_error *err)
{
    struct callbacks_state *s = target->state;

    errno = 0;
    if (s->flush && s->flush(s->opaque) < 0)
        return callback_failed("flush", err);
    return 0;
}

static void cb_close(struct q2s_target *target)
{
    struct callbacks_state *s = target->state;

    if (s->close)
        s->close(s->opaque);
    free(s);
    import_target_free(target);
}

static const struct import_target_ops callbacks_ops = {
    .write = cb_write,
    .zero = cb_zero,
    .finish = cb_finish,
    .close = cb_close,
};

int import_target_from_callbacks(uint64_t size,
                                 q2s_target_write_callback *write,
                                 q2s_target_zero_callback *zero,
                                 q2s_target_flush_callback *flush,
                                 q2s_close_callback *close, void *opaque,
                                 struct q2s_target **result,
                                 struct q2s_error *err)
{
    struct callbacks_state *s;
    struct q2s_target *target;

    if (!write)
        return q2s_error_set(err, EINVAL, "a target needs a write callback");
    s = calloc(1, sizeof *s);
    target = import_target_new(IMPORT_TARGET_CALLBACKS, &callbacks_ops,
                               "the target");
    if (!s || !target) {
        free(s);
        import_target_free(target);
        return q2s_error_set(err, ENOMEM, "out of memory");
    }
    *s = (struct callbacks_state){write, zero, flush, close, opaque};
    target->state = s;
    target->size = size;
    *result = target;
    return 0;
}
