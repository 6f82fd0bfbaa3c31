/* Inputs read through NBD with libnbd: an NBD URI, or a disk image in any
 * format QEMU reads, served by a qemu-nbd that libnbd starts with systemd
 * socket activation (no socket path, pid file or mount left behind). */
#ifndef Q2S_SOURCE_NBD_H
#define Q2S_SOURCE_NBD_H

#include "source.h"

/* Opening does not wait on anything a signal should cut short; the
 * caller sets source->interrupted for what follows. */
int q2s_source_open_nbd_uri(const char *uri, struct q2s_source **source,
                            struct q2s_error *err);
int q2s_source_open_qemu_nbd(const char *path, const char *format,
                             struct q2s_source **source,
                             struct q2s_error *err);

#endif
