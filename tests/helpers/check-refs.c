/* check-refs [--untrusted] FORMAT IMAGE: runs q2s_check_image_references()
 * for the integration tests; exit 0, or 1 with its message on stderr. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "export/open/image_refs.h"

int main(int argc, char **argv)
{
    struct q2s_error err = { .code = 0 };
    bool untrusted = argc == 4 && strcmp(argv[1], "--untrusted") == 0;

    if (argc != 3 + untrusted) {
        fprintf(stderr, "usage: check-refs [--untrusted] FORMAT IMAGE\n");
        return 2;
    }
    if (q2s_check_image_references(argv[2 + untrusted], argv[1 + untrusted],
                                   untrusted, &err) < 0) {
        fprintf(stderr, "check-refs: %s\n", err.message);
        return 1;
    }
    return 0;
}
