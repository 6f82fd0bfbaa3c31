/* The files an image names: what QEMU would open besides the image itself
 * (backing files, a qcow2 external data file, vmdk extents and parent),
 * checked before any QEMU program opens it.  An image from someone else
 * can name any host file, whose content would then end up in the output
 * (the information leak behind CVE-2024-32498), or a FIFO, on which
 * QEMU's open blocks. */
#ifndef Q2S_IMAGE_REFS_H
#define Q2S_IMAGE_REFS_H

#include <stdbool.h>

#include "qcow2-to-stdout.h"

/* Checks the files that an image in the given format names, before any
 * QEMU program opens it: backing files (following the chain), a qcow2
 * external data file, vmdk extents and parent.  Always refuses a named
 * file that exists and is neither a regular file nor a block device (a
 * FIFO or a character device would block or act when QEMU opens it).
 * With untrusted, refuses any image that names another file at all, any
 * format this module does not inspect, and a backing file recorded
 * without a format.  0, or -1 with a one-line message in err. */
int q2s_check_image_references(const char *path, const char *format,
                               bool untrusted, struct q2s_error *err);

#endif
