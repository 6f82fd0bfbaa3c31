#define _GNU_SOURCE
#include "map_option.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "read_fds.h"

int load_map_option(const char *name, int fd,
                    const volatile sig_atomic_t *interrupted,
                    struct q2s_map **map, char *message, size_t message_size)
{
    struct fd_text text = { .fd = fd, .name = name };
    struct q2s_error *err = NULL;
    int ret;

    if (text.fd < 0)
        text.fd = open(name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (text.fd < 0) {
        snprintf(message, message_size, "%s: %s", name, strerror(errno));
        return -1;
    }
    ret = read_fds_to_end(&text, 1, JSON_TEXT_MAX_BYTES, interrupted,
                          message, message_size);
    if (ret == 0 && q2s_map_from_json(text.data, text.length, map,
                                      &err) < 0) {
        snprintf(message, message_size, "%s: %s", name,
                 q2s_error_message(err));
        q2s_error_free(err);
        ret = -1;
    }
    fd_texts_free(&text, 1);
    return ret;
}
