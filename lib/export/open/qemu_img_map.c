#define _GNU_SOURCE
#include "export/open/qemu_img_map.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fdio.h"
#include "common/vector.h"
#include "error.h"
#include "export/open/child.h"
#include "export/source.h"

Q2S_DEFINE_VECTOR_TYPE(char_vector, char)

/* At least this much room for each read(2) of the output. */
#define READ_BYTES 4096

/* All of the program's standard output in *output; 0 with NULL if it
 * could not run, did not exit 0 or ran past the timeout (it is then
 * killed), -1 if interrupted or out of memory. */
static int run_for_output(char *const argv[],
                          const struct q2s_source_options *options,
                          char **result, struct q2s_error *err)
{
    const volatile sig_atomic_t *interrupted = options->interrupted;
    uint64_t deadline = options->timeout_seconds
                            ? q2s_now_milliseconds() +
                                  (uint64_t)options->timeout_seconds * 1000
                            : UINT64_MAX;
    struct q2s_child_spec spec = {
        .argv = argv, .stderr_fd = -1, .listen_fd = -1,
    };
    int pipe_fds[2];
    struct char_vector output = { 0 };
    int ret = 0, status;
    pid_t pid;

    *result = NULL;
    if (options->untrusted) {
        spec.address_space_bytes = Q2S_UNTRUSTED_ADDRESS_SPACE;
        spec.cpu_seconds = Q2S_UNTRUSTED_CPU_SECONDS;
    }
    if (pipe2(pipe_fds, O_CLOEXEC) < 0)
        return 0;
    spec.stdout_fd = pipe_fds[1];
    if (q2s_child_spawn(&spec, &pid, &(struct q2s_error){ 0 }) < 0) {
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return 0;
    }
    close(pipe_fds[1]);
    for (;;) {
        struct pollfd readable = { .fd = pipe_fds[0], .events = POLLIN };
        ssize_t n;

        if (interrupted && *interrupted) {
            ret = q2s_error_set(err, ECANCELED, "interrupted");
            break;
        }
        /* A backing file behind a server that stopped answering: the map
         * is only a shortcut, so it is given up. */
        if (q2s_now_milliseconds() >= deadline) {
            q2s_child_kill(pid);
            close(pipe_fds[0]);
            char_vector_free(&output);
            return 0;
        }
        if (poll(&readable, 1, Q2S_POLL_MILLISECONDS) <= 0)
            continue;
        /* One more for the '\0' at the end. */
        if (char_vector_reserve(&output, READ_BYTES + 1) < 0) {
            ret = q2s_error_set_errno(err, ENOMEM, "qemu-img map");
            break;
        }
        n = read(pipe_fds[0], output.ptr + output.len,
                 output.cap - output.len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* A read error only loses the shortcut. */
            if (n < 0)
                char_vector_free(&output);
            break;
        }
        output.len += (size_t)n;
    }
    close(pipe_fds[0]);
    if (ret < 0) {
        q2s_child_kill(pid);
        char_vector_free(&output);
        return -1;
    }
    status = q2s_child_wait(pid, interrupted);
    if (interrupted && *interrupted) {
        char_vector_free(&output);
        return q2s_error_set(err, ECANCELED, "interrupted");
    }
    if (!output.ptr || status < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        char_vector_free(&output);
        return 0;
    }
    output.ptr[output.len] = '\0';
    *result = output.ptr;
    return 0;
}

/* "0x10000   0x4000000   0x50000   name": three numbers, then the file
 * name to the end of the line. */
static bool parse_line(char *line, const char *path, struct q2s_mapping *m,
                       bool *same_file)
{
    uint64_t *fields[] = { &m->start, &m->length, &m->file_offset };
    char *p = line, *end;

    for (size_t i = 0; i < 3; i++) {
        while (*p == ' ')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        errno = 0;
        *fields[i] = strtoull(p, &end, 0);
        if (errno != 0 || end == p || *end != ' ')
            return false;
        p = end;
    }
    while (*p == ' ')
        p++;
    *same_file = strcmp(p, path) == 0;
    /* An end past 2^64 would wrap in every comparison after. */
    return m->length > 0 && m->length <= UINT64_MAX - m->start &&
           m->length <= UINT64_MAX - m->file_offset;
}

int q2s_parse_qemu_img_map_text(char *text, const char *path,
                                struct q2s_mapping_vector *mappings,
                                struct q2s_error *err)
{
    char *line, *next;

    *mappings = (struct q2s_mapping_vector){ 0 };
    /* The first line names the columns. */
    line = strchr(text, '\n');
    for (line = line ? line + 1 : NULL; line && *line; line = next) {
        struct q2s_mapping m;
        bool same_file;

        next = strchr(line, '\n');
        if (!next)
            goto unexpected;  /* every line ends */
        *next++ = '\0';
        if (!parse_line(line, path, &m, &same_file))
            goto unexpected;
        if (!same_file)
            continue;
        if (mappings->len > 0 &&
            m.start < mappings->ptr[mappings->len - 1].start +
                          mappings->ptr[mappings->len - 1].length)
            goto unexpected;
        if (q2s_mapping_vector_append(mappings, m) < 0) {
            q2s_mapping_vector_free(mappings);
            return q2s_error_set_errno(err, ENOMEM, "qemu-img map");
        }
    }
    return 0;

unexpected:
    q2s_mapping_vector_free(mappings);
    return 0;
}

int q2s_qemu_img_map(const char *image_options, const char *path,
                     const struct q2s_source_options *options,
                     struct q2s_mapping_vector *mappings,
                     struct q2s_error *err)
{
    char *argv[] = { "qemu-img", "map", "--image-opts", "--",
                     (char *)image_options, NULL };
    char *output;
    int ret;

    *mappings = (struct q2s_mapping_vector){ 0 };
    if (run_for_output(argv, options, &output, err) < 0)
        return -1;
    if (!output)
        return 0;
    ret = q2s_parse_qemu_img_map_text(output, path, mappings, err);
    free(output);
    return ret;
}
