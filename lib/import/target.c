#define _GNU_SOURCE
#include "import/target.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Zeros go to targets without a better way this much at a time. */
#define ZERO_BUFFER_BYTES (1024u * 1024)

struct q2s_target *import_target_new(enum import_target_kind kind,
                                     const struct import_target_ops *ops,
                                     const char *name)
{
    struct q2s_target *target = calloc(1, sizeof *target);

    if (!target)
        return NULL;
    target->name = strdup(name);
    if (!target->name) {
        free(target);
        return NULL;
    }
    target->kind = kind;
    target->ops = ops;
    return target;
}

void import_target_free(struct q2s_target *target)
{
    if (!target)
        return;
    free(target->name);
    free(target);
}

int import_target_write_zeros(struct q2s_target *target, uint64_t offset,
                              uint64_t length, struct q2s_error *err)
{
    uint8_t *zeros;

    if (length == 0)
        return 0;
    zeros = calloc(1, ZERO_BUFFER_BYTES);
    if (!zeros)
        return q2s_error_set(err, ENOMEM, "out of memory");
    while (length > 0) {
        size_t n = length < ZERO_BUFFER_BYTES ? (size_t)length
                                              : ZERO_BUFFER_BYTES;

        if (target->cancel && q2s_cancelled(target->cancel)) {
            free(zeros);
            return q2s_error_set(err, ECANCELED, "interrupted");
        }
        if (target->ops->write(target, zeros, n, offset, err) < 0) {
            free(zeros);
            return -1;
        }
        offset += n;
        length -= n;
    }
    free(zeros);
    return 0;
}

int import_target_prepare(struct q2s_target *target, uint64_t virtual_size,
                          bool apply, bool target_is_zero,
                          struct q2s_error *err)
{
    if (target->ops->prepare)
        return target->ops->prepare(target, virtual_size, apply,
                                    target_is_zero, err);
    if (apply && target->size != virtual_size)
        return q2s_error_set(err, EINVAL, "%s holds %" PRIu64 " bytes, the "
                             "image %" PRIu64 ": --apply needs a target of "
                             "the image's size", target->name, target->size,
                             virtual_size);
    if (target->size < virtual_size)
        return q2s_error_set(err, ENOSPC, "%s holds %" PRIu64 " bytes, "
                             "fewer than the image's %" PRIu64,
                             target->name, target->size, virtual_size);
    target->known_zero = target_is_zero;
    return 0;
}
