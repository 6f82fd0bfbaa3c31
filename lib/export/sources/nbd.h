/* Inputs read through NBD with libnbd: the client of one export, reached
 * by an NBD URI or over a socket that is already connected.  Starting a
 * server is not done here (see export/open/qemu_nbd.c). */
#ifndef Q2S_SOURCE_NBD_H
#define Q2S_SOURCE_NBD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "export/source.h"

/* Writes into line (size bytes) the last thing the server said about a
 * failure, without its newline, or "" if it said nothing: for a server
 * that complains elsewhere than over NBD, such as on its stderr. */
typedef void q2s_nbd_said_fn(void *opaque, char *line, size_t size);

struct q2s_nbd_params {
    uint32_t timeout_seconds;  /* without an answer; 0: wait for ever */
    /* The flag of the source's own cancel (may be NULL), looked at while
     * connecting too. */
    const volatile sig_atomic_t *interrupted;
    /* Or NULL: the cancel to look at instead of the source's own, for a
     * source that wraps this one and is the one the caller cancels. */
    const struct q2s_cancel *cancel;
    /* Optional, for a server the caller started: its name, for "cannot
     * connect to NAME", and what it said, which then goes into every
     * message about a failure instead of libnbd's. */
    const char *server;
    q2s_nbd_said_fn *server_said;
    void *server_said_opaque;
    /* Or NULL: the name of a dirty bitmap that the server must export as
     * the meta context Q2S_DIRTY_BITMAP_CONTEXT NAME (ENOENT if not),
     * which ops->next_dirty then reads. */
    const char *dirty_bitmap;
    /* Connections to read over when the server allows several (URIs
     * only), at most Q2S_NBD_MAX_CONNECTIONS; 0: the default. */
    uint32_t connections;
};

#define Q2S_NBD_DEFAULT_CONNECTIONS Q2S_DEFAULT_CONNECTIONS
#define Q2S_NBD_MAX_CONNECTIONS Q2S_MAX_CONNECTIONS

/* QEMU's meta context for its dirty bitmaps (docs/interop/nbd.txt). */
#define Q2S_DIRTY_BITMAP_CONTEXT "qemu:dirty-bitmap:"


/* Both wait for the server (the handshake too) as params say, and read
 * the export's size, block status and block sizes. */
int q2s_source_open_nbd_uri(const char *uri,
                            const struct q2s_nbd_params *params,
                            struct q2s_source **source,
                            struct q2s_error *err);
/* fd is a connected stream socket, which the source owns from the call
 * on, even when it fails; name is for messages. */
int q2s_source_open_nbd_socket(int fd, const char *name,
                               const struct q2s_nbd_params *params,
                               struct q2s_source **source,
                               struct q2s_error *err);

#endif
