/* An NBD export as the target, through libnbd: data with NBD_CMD_WRITE,
 * zeros with NBD_CMD_WRITE_ZEROES where the server takes it, then a
 * flush. */
#define _GNU_SOURCE
#include <errno.h>
#include <libnbd.h>
#include <stdlib.h>

#include "import/target.h"

/* NBD requests carry 32-bit lengths; zeroing goes a GiB at a time. */
#define NBD_ZERO_BYTES (UINT64_C(1) << 30)

static int nbd_errno_or(int fallback)
{
    int e = nbd_get_errno();

    return e ? e : fallback;
}

static int nbd_failed(struct q2s_target *target, const char *what,
                      struct q2s_error *err)
{
    return q2s_error_set(err, nbd_errno_or(EIO), "%s: %s: %s", target->name,
                         what, nbd_get_error());
}

static int target_nbd_write(struct q2s_target *target, const uint8_t *buf,
                            size_t length, uint64_t offset,
                            struct q2s_error *err)
{
    if (nbd_pwrite(target->state, buf, length, offset, 0) < 0)
        return nbd_failed(target, "cannot write", err);
    return 0;
}

static int target_nbd_zero(struct q2s_target *target, uint64_t offset,
                           uint64_t length, struct q2s_error *err)
{
    if (nbd_can_zero(target->state) <= 0)
        return import_target_write_zeros(target, offset, length, err);
    while (length > 0) {
        uint64_t n = length < NBD_ZERO_BYTES ? length : NBD_ZERO_BYTES;

        if (target->cancel && q2s_cancelled(target->cancel))
            return q2s_error_set(err, ECANCELED, "interrupted");
        if (nbd_zero(target->state, n, offset, 0) < 0)
            return nbd_failed(target, "cannot zero", err);
        offset += n;
        length -= n;
    }
    return 0;
}

static int target_nbd_finish(struct q2s_target *target, struct q2s_error *err)
{
    if (nbd_can_flush(target->state) > 0 && nbd_flush(target->state, 0) < 0)
        return nbd_failed(target, "cannot flush", err);
    if (nbd_shutdown(target->state, 0) < 0)
        return nbd_failed(target, "cannot disconnect", err);
    return 0;
}

static void target_nbd_close(struct q2s_target *target)
{
    nbd_close(target->state);
    import_target_free(target);
}

static const struct import_target_ops nbd_ops = {
    .write = target_nbd_write,
    .zero = target_nbd_zero,
    .finish = target_nbd_finish,
    .close = target_nbd_close,
};

int import_target_open_nbd(const char *uri, struct q2s_target **result,
                           struct q2s_error *err)
{
    struct q2s_target *target =
        import_target_new(IMPORT_TARGET_NBD, &nbd_ops, uri);
    struct nbd_handle *nbd;
    int64_t size;

    if (!target)
        return q2s_error_set(err, ENOMEM, "out of memory");
    nbd = nbd_create();
    if (!nbd) {
        import_target_free(target);
        return q2s_error_set(err, nbd_errno_or(ENOMEM), "%s: %s", uri,
                             nbd_get_error());
    }
    target->state = nbd;
    /* The URI may name the files of its TLS credentials, as an input's
     * may (sources/nbd.c). */
    if (nbd_set_uri_allow_local_file(nbd, true) < 0 ||
        nbd_connect_uri(nbd, uri) < 0) {
        q2s_error_set(err, nbd_errno_or(ECONNREFUSED), "%s: %s", uri,
                      nbd_get_error());
        target_nbd_close(target);
        return -1;
    }
    if (nbd_is_read_only(nbd) > 0) {
        q2s_error_set(err, EROFS, "%s: the export is read-only", uri);
        target_nbd_close(target);
        return -1;
    }
    size = nbd_get_size(nbd);
    if (size < 0) {
        nbd_failed(target, "cannot read the export's size", err);
        target_nbd_close(target);
        return -1;
    }
    target->size = (uint64_t)size;
    *result = target;
    return 0;
}
