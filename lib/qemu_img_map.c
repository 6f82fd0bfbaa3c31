#define _GNU_SOURCE
#include "qemu_img_map.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* All of the program's standard output; NULL if it did not exit 0. */
static char *run_for_output(char *const argv[])
{
    posix_spawn_file_actions_t actions;
    int pipe_fds[2];
    char *output = NULL;
    size_t used = 0, capacity = 0;
    bool ok = true;
    pid_t pid;
    int status;

    if (pipe2(pipe_fds, O_CLOEXEC) < 0)
        return NULL;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null",
                                     O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                     O_RDONLY, 0);
    if (posix_spawnp(&pid, argv[0], &actions, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&actions);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return NULL;
    }
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    for (;;) {
        ssize_t n;

        if (used + 4096 + 1 > capacity) {
            char *bigger = realloc(output, capacity ? capacity * 2 : 65536);

            if (!bigger) {
                ok = false;
                break;
            }
            output = bigger;
            capacity = capacity ? capacity * 2 : 65536;
        }
        n = read(pipe_fds[0], output + used, capacity - used - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ok = n == 0;
            break;
        }
        used += (size_t)n;
    }
    close(pipe_fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(output);
        return NULL;
    }
    output[used] = '\0';
    return output;
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
    return m->length > 0;
}

int q2s_qemu_img_map(const char *image_options, const char *path,
                     struct q2s_mapping **result, size_t *count)
{
    char *argv[] = { "qemu-img", "map", "--image-opts", "--",
                     (char *)image_options, NULL };
    char *output = run_for_output(argv);
    struct q2s_mapping *mappings = NULL;
    size_t used = 0, capacity = 0;
    char *line, *next;

    *result = NULL;
    *count = 0;
    if (!output)
        return 0;
    /* The first line names the columns. */
    line = strchr(output, '\n');
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
        if (used > 0 && m.start < mappings[used - 1].start +
                                      mappings[used - 1].length)
            goto unexpected;
        if (used == capacity) {
            size_t bigger = capacity ? capacity * 2 : 64;
            struct q2s_mapping *grown =
                reallocarray(mappings, bigger, sizeof *grown);

            if (!grown) {
                free(mappings);
                free(output);
                return -1;
            }
            mappings = grown;
            capacity = bigger;
        }
        mappings[used++] = m;
    }
    free(output);
    *result = mappings;
    *count = used;
    return 0;

unexpected:
    free(mappings);
    free(output);
    return 0;
}
