/* The raw input: a regular file or a block device. */
#ifndef Q2S_SOURCES_FILE_H
#define Q2S_SOURCES_FILE_H

#include "export/source.h"

/* Opens path, refused unless it is a regular file or a block device. */
int q2s_source_open_file(const char *path, struct q2s_source **source,
                         struct q2s_error *err);
/* Takes fd, open on a regular file or a block device, and closes it on
 * failure too; name goes in messages. */
int q2s_source_open_fd(int fd, const char *name, struct q2s_source **source,
                       struct q2s_error *err);

#endif
