/* An NBD export as the target, through libnbd: data with NBD_CMD_WRITE,
 * zeros with NBD_CMD_WRITE_ZEROES where the server takes it, then a
 * flush. */
#define _GNU_SOURCE
#include <errno.h>
#include <libnbd.h>
#include <stdlib.h>
#include <string.h>

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

/* Requests are sent without waiting for their replies, up to
 * MAX_IN_FLIGHT at a time (each write with its own copy of the bytes),
 * and waited for in nbd_poll() a short while at a time, so that a cancel
 * (a signal) is seen even while a server does not answer. */
#define MAX_IN_FLIGHT 16
#define POLL_MILLISECONDS 100

struct nbd_state {
    struct nbd_handle *nbd;
    int error;  /* the first a reply carried, 0 if none */
};

/* One request in flight: the bytes of a write, freed by libnbd once the
 * command is retired, whatever happens to it. */
struct request {
    struct nbd_state *state;
    uint8_t *copy;
};

static int on_reply(void *opaque, int *error)
{
    struct request *request = opaque;

    if (*error && !request->state->error)
        request->state->error = *error;
    return 1;  /* retire the command */
}

static void free_request(void *opaque)
{
    struct request *request = opaque;

    free(request->copy);
    free(request);
}

/* The completion of a new request; NULL when out of memory (copy is then
 * freed). */
static struct request *new_request(struct nbd_state *state, uint8_t *copy)
{
    struct request *request = malloc(sizeof *request);

    if (!request) {
        free(copy);
        return NULL;
    }
    request->state = state;
    request->copy = copy;
    return request;
}

#define COMPLETION(request)                                                  \
    ((nbd_completion_callback){.callback = on_reply, .user_data = (request), \
                               .free = free_request})

/* Waits until at most max requests are in flight. */
static int wait_in_flight(struct q2s_target *target, int max,
                          struct q2s_error *err)
{
    struct nbd_state *state = target->state;

    while (nbd_aio_in_flight(state->nbd) > max) {
        if (target->cancel && q2s_cancelled(target->cancel))
            return q2s_error_set(err, ECANCELED, "interrupted");
        if (nbd_poll(state->nbd, POLL_MILLISECONDS) < 0)
            return nbd_failed(target, "connection lost", err);
    }
    if (state->error)
        return q2s_error_set_errno(err, state->error, "%s: the server "
                                   "refused a request", target->name);
    return 0;
}

static int target_nbd_write(struct q2s_target *target, const uint8_t *buf,
                            size_t length, uint64_t offset,
                            struct q2s_error *err)
{
    struct nbd_state *state = target->state;
    struct request *request;
    uint8_t *copy;

    if (wait_in_flight(target, MAX_IN_FLIGHT - 1, err) < 0)
        return -1;
    copy = malloc(length);
    if (!copy || !(request = new_request(state, copy)))
        return q2s_error_set(err, ENOMEM, "out of memory");
    memcpy(copy, buf, length);
    if (nbd_aio_pwrite(state->nbd, copy, length, offset, COMPLETION(request),
                       0) < 0)
        return nbd_failed(target, "cannot write", err);
    return 0;
}

static int target_nbd_zero(struct q2s_target *target, uint64_t offset,
                           uint64_t length, struct q2s_error *err)
{
    struct nbd_state *state = target->state;

    if (nbd_can_zero(state->nbd) <= 0)
        return import_target_write_zeros(target, offset, length, err);
    while (length > 0) {
        uint64_t n = length < NBD_ZERO_BYTES ? length : NBD_ZERO_BYTES;

        struct request *request;

        if (wait_in_flight(target, MAX_IN_FLIGHT - 1, err) < 0)
            return -1;
        request = new_request(state, NULL);
        if (!request)
            return q2s_error_set(err, ENOMEM, "out of memory");
        if (nbd_aio_zero(state->nbd, n, offset, COMPLETION(request), 0) < 0)
            return nbd_failed(target, "cannot zero", err);
        offset += n;
        length -= n;
    }
    return 0;
}

static int target_nbd_finish(struct q2s_target *target, struct q2s_error *err)
{
    struct nbd_state *state = target->state;

    if (wait_in_flight(target, 0, err) < 0)
        return -1;
    if (target->flush && nbd_can_flush(state->nbd) > 0) {
        struct request *request = new_request(state, NULL);

        if (!request)
            return q2s_error_set(err, ENOMEM, "out of memory");
        if (nbd_aio_flush(state->nbd, COMPLETION(request), 0) < 0)
            return nbd_failed(target, "cannot flush", err);
        if (wait_in_flight(target, 0, err) < 0)
            return -1;
    }
    if (nbd_shutdown(state->nbd, 0) < 0)
        return nbd_failed(target, "cannot disconnect", err);
    return 0;
}

static void target_nbd_close(struct q2s_target *target)
{
    struct nbd_state *state = target->state;

    if (state) {
        nbd_close(state->nbd);
        free(state);
    }
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
    struct nbd_state *state = calloc(1, sizeof *state);
    struct nbd_handle *nbd;
    int64_t size;

    if (!target || !state) {
        free(state);
        import_target_free(target);
        return q2s_error_set(err, ENOMEM, "out of memory");
    }
    nbd = nbd_create();
    if (!nbd) {
        free(state);
        import_target_free(target);
        return q2s_error_set(err, nbd_errno_or(ENOMEM), "%s: %s", uri,
                             nbd_get_error());
    }
    state->nbd = nbd;
    target->state = state;
    /* The URI may name the files of its TLS credentials, as an input's
     * may (export/sources/nbd.c). */
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
