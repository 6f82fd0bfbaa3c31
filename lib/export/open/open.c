/* Opening an input by its name: "-" for standard input, an NBD URI, a
 * file or block device, or an image in another format through qemu-nbd.
 * This is the policy of a program (what "-" means, when to start a
 * server); an embedder that has its own input uses the constructors in
 * the public header instead. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tmpdir.h"
#include "error.h"
#include "export/open/open.h"
#include "export/open/qemu_nbd.h"
#include "export/source.h"
#include "export/sources/file.h"
#include "export/sources/nbd.h"
#include "export/sources/nbd_tls.h"
#include "export/sources/stream.h"

static bool is_raw(const char *format)
{
    return !format || strcmp(format, "raw") == 0;
}

/* Standard input: read in place when it is a file or a block device,
 * kept in a temporary file when it is a pipe or a socket. */
static int open_stdin(const volatile sig_atomic_t *interrupted,
                      struct q2s_source **source, struct q2s_error *err)
{
    struct stat st;
    int fd;

    if (fstat(STDIN_FILENO, &st) < 0)
        return q2s_error_set_errno(err, errno, "standard input");
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
        fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            return q2s_error_set_errno(err, errno, "standard input");
        return q2s_source_open_fd(fd, "standard input", source, err);
    }
    if (S_ISDIR(st.st_mode))
        return q2s_error_set(err, EISDIR, "standard input: is a directory");
    if (isatty(STDIN_FILENO))
        return q2s_error_set(err, EINVAL,
                             "standard input is a terminal; give an "
                             "image on a pipe or a file");
    return q2s_source_open_stream(STDIN_FILENO, "standard input",
                                  q2s_temporary_directory(), interrupted, source,
                                  err);
}

bool q2s_input_is_raw_file(const char *input,
                           const struct q2s_source_options *options)
{
    return strcmp(input, "-") != 0 && !q2s_input_is_nbd_uri(input) &&
           is_raw(options->format);
}

int q2s_open_input(const char *input, const struct q2s_source_options *options,
                   struct q2s_source **source, struct q2s_error *err)
{
    const char *format = options->format;
    struct q2s_source_options effective = *options;
    int ret;

    if (effective.untrusted && effective.timeout_seconds == 0)
        effective.timeout_seconds = Q2S_UNTRUSTED_TIMEOUT_SECONDS;
    /* Only an NBD server exports a dirty bitmap. */
    if (options->dirty_bitmap &&
        (strcmp(input, "-") == 0 ||
         (!q2s_input_is_nbd_uri(input) && is_raw(format))))
        return q2s_error_set(err, EINVAL, "a dirty bitmap needs an NBD "
                             "input: an NBD URI, or an image in a format "
                             "such as qcow2 (-f), which qemu-nbd exports "
                             "with its bitmap");
    if (strcmp(input, "-") == 0) {
        if (!is_raw(format))
            return q2s_error_set(err, EINVAL,
                                 "standard input can only be read as a "
                                 "raw image");
        ret = open_stdin(options->interrupted, source, err);
        /* Not a name that an image can give for its data file. */
        if (ret == 0)
            (*source)->raw_file = false;
    } else if (q2s_input_is_nbd_uri(input)) {
        if (!is_raw(format))
            return q2s_error_set(err, EINVAL,
                                 "an NBD export is read as raw; the format %s "
                                 "does not apply to it", format);
        struct q2s_nbd_params params = {
            .timeout_seconds = effective.timeout_seconds,
            .interrupted = options->interrupted,
            .dirty_bitmap = options->dirty_bitmap,
            .connections = options->connections,
        };

        ret = q2s_source_open_nbd_uri(input, &params, source, err);
        if (ret < 0)
            q2s_nbd_explain_tls_failure(input, err);
    } else if (is_raw(format)) {
        ret = q2s_source_open_file(input, source, err);
    } else {
        ret = q2s_source_open_qemu_nbd(input, &effective,
                                       q2s_temporary_directory(), source, err);
    }
    /* The stream and NBD sources had it already, to stop while opening. */
    if (ret == 0)
        (*source)->cancel.flag = options->interrupted;
    return ret;
}
