/* A disk image in any format QEMU reads, served by a qemu-nbd that we
 * start with systemd socket activation (no socket path, pid file or mount
 * left behind) and read through the NBD source. */
#ifndef Q2S_QEMU_NBD_H
#define Q2S_QEMU_NBD_H

#include "export/source.h"

/* Checks what the image names, starts qemu-nbd with its private socket
 * made in tmpdir (or in /tmp when tmpdir is too long for a socket name)
 * and waits for it as options->timeout_seconds and options->interrupted
 * say.  The source ends qemu-nbd when closed. */
int q2s_source_open_qemu_nbd(const char *path,
                             const struct q2s_source_options *options,
                             const char *tmpdir, struct q2s_source **source,
                             struct q2s_error *err);

#endif
