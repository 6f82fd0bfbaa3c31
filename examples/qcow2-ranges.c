/* qcow2-ranges: an example of libqcow2-to-stdout that serves byte ranges.
 *
 *   qcow2-ranges INPUT OUTPUT [CHUNK]
 *
 * Converts INPUT (a raw file, or anything q2s_source_open() takes) to the
 * qcow2 image OUTPUT without streaming it: the plan gives the image's size
 * up front, then the image is read in CHUNK-byte ranges (1 MiB unless
 * given), last range first, each written at its place with pwrite(), as
 * an HTTP server answering Range requests or a multipart uploader would.
 *
 * Build it against an installed library:
 *   cc -o qcow2-ranges qcow2-ranges.c $(pkg-config --cflags --libs qcow2-to-stdout)
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <qcow2-to-stdout.h>

static int fail(const char *what, struct q2s_error *error)
{
    fprintf(stderr, "qcow2-ranges: %s: %s (errno %d)\n", what,
            q2s_error_message(error), q2s_error_code(error));
    q2s_error_free(error);
    return 1;
}

int main(int argc, char **argv)
{
    struct q2s_error *error = NULL;
    struct q2s_options *options;
    struct q2s_source *source;
    struct q2s_plan *plan;
    uint64_t image_size, offset;
    size_t chunk = 1024 * 1024;
    char *buffer;
    int out, status = 1;

    if (argc < 3 || argc > 4 || (argc == 4 && atol(argv[3]) <= 0)) {
        fprintf(stderr, "usage: qcow2-ranges INPUT OUTPUT [CHUNK]\n");
        return 2;
    }
    if (argc == 4)
        chunk = (size_t)atol(argv[3]);
    options = q2s_options_new();
    buffer = malloc(chunk);
    if (!options || !buffer) {
        perror("qcow2-ranges");
        return 1;
    }
    if (q2s_source_open(argv[1], NULL, &source, &error) < 0)
        return fail(argv[1], error);
    /* Pass 1: find the data and lay out the image. */
    if (q2s_plan_build(source, options, NULL, NULL, &plan, &error) < 0) {
        q2s_source_close(source);
        return fail("scan", error);
    }
    image_size = q2s_plan_get_image_size(plan);
    printf("%s: %" PRIu64 " bytes of qcow2 for %" PRIu64 " bytes of disk\n",
           argv[2], image_size, q2s_plan_get_virtual_size(plan));
    out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        perror(argv[2]);
        goto out;
    }
    /* Any range, in any order: here the last one first. */
    offset = image_size - (image_size - 1) % chunk - 1;
    for (;;) {
        size_t count = image_size - offset < chunk ? image_size - offset
                                                   : chunk;

        if (q2s_pread(plan, source, buffer, count, offset, &error) < 0) {
            fail("read", error);
            goto out;
        }
        if (pwrite(out, buffer, count, (off_t)offset) != (ssize_t)count) {
            perror(argv[2]);
            goto out;
        }
        if (offset == 0)
            break;
        offset -= chunk;
    }
    status = close(out) == 0 ? 0 : 1;
    out = -1;
out:
    if (out >= 0)
        close(out);
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
    free(buffer);
    return status;
}
