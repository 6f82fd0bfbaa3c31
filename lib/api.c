/* The public functions that belong to neither direction: the version, and
 * which names are NBD URIs (an exporter's input, an importer's target).
 * Each direction's own are in lib/export/api.c and lib/import/api.c. */
#include <stdbool.h>
#include <string.h>

#include "qcow2-to-stdout.h"

unsigned q2s_version_number(void)
{
    return Q2S_VERSION_NUMBER;
}

const char *q2s_version_string(void)
{
    return Q2S_VERSION;
}

/* The URI schemes libnbd connects to (nbd_connect_uri(3)). */
bool q2s_input_is_nbd_uri(const char *input)
{
    static const char *const schemes[] = {
        "nbd://", "nbds://", "nbd+unix://", "nbds+unix://", "nbd+vsock://",
        "nbds+vsock://",
    };

    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        if (strncmp(input, schemes[i], strlen(schemes[i])) == 0)
            return true;
    }
    return false;
}
