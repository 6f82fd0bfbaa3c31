/* Inputs read through NBD with libnbd: an NBD URI, or a disk image in any
 * format QEMU reads, served by a qemu-nbd that we start with systemd
 * socket activation (no socket path, pid file or mount left behind). */
#ifndef Q2S_SOURCE_NBD_H
#define Q2S_SOURCE_NBD_H

#include "source.h"

/* Both wait for the server as options->timeout_seconds and
 * options->interrupted say, while connecting too. */
int q2s_source_open_nbd_uri(const char *uri,
                            const struct q2s_source_options *options,
                            struct q2s_source **source,
                            struct q2s_error *err);
int q2s_source_open_qemu_nbd(const char *path,
                             const struct q2s_source_options *options,
                             struct q2s_source **source,
                             struct q2s_error *err);

#endif
