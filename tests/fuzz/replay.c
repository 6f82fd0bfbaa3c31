/* Runs a fuzz target on corpus files, without libFuzzer: what make check
 * does with every file of tests/fuzz/corpus/NAME/, so that what a fuzzer
 * once found stays fixed.  Each file runs in a child of its own, so that
 * a crash or a broken promise names the file; TAP out, one line per
 * directory or file given.
 *
 *     replay_NAME DIR_OR_FILE...
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"

/* The whole file, in memory of exactly its size (so that ASan and
 * valgrind see a read past the end). */
static int read_file(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t used = 0, capacity = 0;

    if (!f)
        return -1;
    for (;;) {
        size_t n;

        if (used == capacity) {
            uint8_t *bigger;

            capacity = capacity ? capacity * 2 : 4096;
            bigger = realloc(buf, capacity);
            if (!bigger) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = bigger;
        }
        n = fread(buf + used, 1, capacity - used, f);
        used += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *data = malloc(used ? used : 1);
    if (!*data) {
        free(buf);
        return -1;
    }
    memcpy(*data, buf, used);
    free(buf);
    *size = used;
    return 0;
}

/* Runs the target on one file in a child; true if it returned. */
static bool replay_file(const char *path)
{
    int status;
    pid_t pid;

    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        printf("# %s: fork: %s\n", path, strerror(errno));
        return false;
    }
    if (pid == 0) {
        uint8_t *data;
        size_t size;

        if (read_file(path, &data, &size) < 0) {
            fprintf(stderr, "%s: %s\n", path, strerror(errno));
            _exit(1);
        }
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            printf("# %s: waitpid: %s\n", path, strerror(errno));
            return false;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    if (WIFSIGNALED(status))
        printf("# %s: killed by signal %d\n", path, WTERMSIG(status));
    else
        printf("# %s: exit status %d\n", path, WEXITSTATUS(status));
    return false;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Every file of a directory, in name order; the number run and failed. */
static void replay_directory(const char *dir, size_t *run, size_t *failed)
{
    struct dirent **entries;
    int count = scandir(dir, &entries, NULL, by_name);

    if (count < 0) {
        printf("# %s: %s\n", dir, strerror(errno));
        (*failed)++;
        return;
    }
    for (int i = 0; i < count; i++) {
        char *path;
        struct stat st;

        if (entries[i]->d_name[0] != '.' &&
            asprintf(&path, "%s/%s", dir, entries[i]->d_name) >= 0) {
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                (*run)++;
                if (!replay_file(path))
                    (*failed)++;
            }
            free(path);
        }
        free(entries[i]);
    }
    free(entries);
}

int main(int argc, char **argv)
{
    const char *target = strrchr(argv[0], '/');
    bool all_passed = true;

    target = target ? target + 1 : argv[0];
    if (strncmp(target, "replay_", 7) == 0)
        target += 7;
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    printf("1..%d\n", argc - 1);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        size_t run = 0, failed = 0;

        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            replay_directory(argv[i], &run, &failed);
        } else {
            run = 1;
            failed = replay_file(argv[i]) ? 0 : 1;
        }
        if (run == 0)
            failed = 1;  /* an empty corpus replays nothing */
        printf("%s %d - %s: %zu corpus files replayed, %zu failed\n",
               failed ? "not ok" : "ok", i, target, run, failed);
        all_passed = all_passed && failed == 0;
    }
    return all_passed ? 0 : 1;
}
