/* --map=FILE: the allocation map in a file or on an inherited descriptor. */
#ifndef Q2S_PROGRAM_MAP_OPTION_H
#define Q2S_PROGRAM_MAP_OPTION_H

#include <signal.h>
#include <stddef.h>

#include "qcow2-to-stdout.h"

/* Reads the map that name (a path) or fd (fd:N, or -1) holds, to its end
 * (a pipe that another process fills will do), and parses it.  -1 with a
 * message on failure. */
int load_map_option(const char *name, int fd,
                    const volatile sig_atomic_t *interrupted,
                    struct q2s_map **map, char *message, size_t message_size);

#endif
