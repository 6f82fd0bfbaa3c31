/* Inputs read through NBD with libnbd: an NBD URI, or a disk image in any
 * format QEMU reads, served by a qemu-nbd that libnbd starts with systemd
 * socket activation (no socket path, pid file or mount left behind). */
#ifndef Q2S_SOURCE_NBD_H
#define Q2S_SOURCE_NBD_H

#include "source.h"

int q2s_source_open_nbd_uri(const char *uri,
                            const volatile sig_atomic_t *interrupted,
                            struct q2s_source **source, struct q2s_error *err);
int q2s_source_open_qemu_nbd(const char *path, const char *format,
                             const volatile sig_atomic_t *interrupted,
                             struct q2s_source **source,
                             struct q2s_error *err);

#endif
