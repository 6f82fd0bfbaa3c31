/* Reading files and inherited descriptors to their end, for the JSON a
 * calling program passes (--map, XAPI's --json-header-* options). */
#ifndef Q2S_PROGRAM_READ_FDS_H
#define Q2S_PROGRAM_READ_FDS_H

#include <signal.h>
#include <stddef.h>

/* The most JSON text an option may bring: the map of a large, fragmented
 * image runs to hundreds of MB. */
#define JSON_TEXT_MAX_BYTES ((size_t)1 << 30)

struct fd_text {
    int fd;
    const char *name;  /* what messages call it */
    char *data;        /* malloc'ed, NUL-terminated; NULL before */
    size_t length;
    size_t capacity;
};

/* Reads every descriptor of texts[0..count) to its end, all at once: the
 * parent may fill several pipes in any order, and would wait for ever on
 * one that we did not read while we waited on another.  Closes them.
 * Fails, with a message, on a descriptor that is not open, a read error,
 * more than limit bytes, or when *interrupted becomes non-zero.  0 or -1;
 * the caller frees the texts with fd_texts_free() either way. */
int read_fds_to_end(struct fd_text *texts, size_t count, size_t limit,
                    const volatile sig_atomic_t *interrupted, char *message,
                    size_t message_size);

void fd_texts_free(struct fd_text *texts, size_t count);

#endif
