/* check-header IMAGE: reads a qcow2 image's header as the importer will
 * (lib/format/qcow2_header.c: the header and extensions, the backing file
 * name, the open-time limits) for the integration tests, which hold the
 * verdict against QEMU's.  Exit 0, or 1 with the reason on stderr. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "format/qcow2_header.h"

int main(int argc, char **argv)
{
    struct q2s_error err = { .code = 0 };
    struct qcow2_header_info info;
    uint8_t *first;
    size_t length;
    FILE *f;

    if (argc != 2) {
        fprintf(stderr, "usage: check-header IMAGE\n");
        return 2;
    }
    f = fopen(argv[1], "rb");
    first = malloc(QCOW2_HEADER_MAX_BYTES);
    if (!f || !first) {
        perror(argv[1]);
        return 2;
    }
    length = fread(first, 1, QCOW2_HEADER_MAX_BYTES, f);
    fclose(f);
    if (qcow2_header_parse(first, length, &info, &err) < 0 ||
        qcow2_header_check_open(&info, &err) < 0 ||
        qcow2_header_check_backing_name(&info, &err) < 0) {
        fprintf(stderr, "check-header: %s\n", err.message);
        free(first);
        return 1;
    }
    free(first);
    return 0;
}
