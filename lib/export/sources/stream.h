/* A raw image on a pipe or a socket, read once. */
#ifndef Q2S_SOURCES_STREAM_H
#define Q2S_SOURCES_STREAM_H

#include <signal.h>

#include "export/source.h"

/* Reads fd to its end, keeping its data in an unlinked file in tmpdir;
 * waits stop when *interrupted is set (it may be NULL). */
int q2s_source_open_stream(int fd, const char *name, const char *tmpdir,
                           const volatile sig_atomic_t *interrupted,
                           struct q2s_source **source, struct q2s_error *err);

#endif
