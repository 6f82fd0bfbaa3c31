/* The options of XAPI's fork of the script (qcow2-to-stdout-xapi.py):
 * --diff BASE and the JSON of qemu-img map and qemu-img info on inherited
 * descriptors, --json-header-map/-info for the input and
 * --json-header-diff-map/-diff-info for the base. */
#ifndef Q2S_PROGRAM_XAPI_H
#define Q2S_PROGRAM_XAPI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qcow2-to-stdout.h"

enum xapi_json {
    XAPI_MAP,
    XAPI_INFO,
    XAPI_DIFF_MAP,
    XAPI_DIFF_INFO,
    XAPI_JSON_COUNT
};

struct xapi_options {
    const char *diff_base;     /* NULL without --diff */
    int fds[XAPI_JSON_COUNT];  /* -1 when not given */
};

void xapi_options_init(struct xapi_options *xapi);

/* The option's name, for messages. */
const char *xapi_json_option(enum xapi_json which);

/* Reads the JSON from the descriptors, parses it and sets the maps on
 * options (whose cluster size the info must agree with).  The fork's
 * pairs go together: a map without its info, or the other way round, is
 * refused; so is the input's pair with --diff but without the base's.
 * The base's pair is checked, and used only with --diff and the input's.
 * -1 with a message on failure. */
int xapi_apply(const struct xapi_options *xapi, struct q2s_options *options,
               const volatile sig_atomic_t *interrupted, char *message,
               size_t message_size);

#endif
