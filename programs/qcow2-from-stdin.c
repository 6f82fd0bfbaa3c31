/* qcow2-from-stdin: reads a qcow2 image as a stream on standard input and
 * writes the disk it describes to a file, a block device, an NBD export
 * or standard output.  A thin layer over the library's importer. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "qcow2-to-stdout.h"

#define PROGRAM "qcow2-from-stdin"
#define EXIT_USAGE CLI_EXIT_USAGE

struct cli {
    struct q2s_import_options *options;
    const char *target;   /* "-" for standard output */
    bool progress;
    int progress_fd;
    bool info, json;
    bool stdout_closed;
};

static void usage_line(FILE *out)
{
    fprintf(out, "Usage: %s [OPTIONS] [TARGET] < IMAGE.qcow2\n", PROGRAM);
}

static void help(void)
{
    usage_line(stdout);
    printf("Read a qcow2 image from standard input, as a stream (never "
           "seeked: a pipe will do),\n"
           "and write the disk it describes to TARGET: a regular file "
           "(made, or truncated to\n"
           "the disk's size, and left sparse), a block device (written "
           "over its first bytes;\n"
           "one smaller than the disk is refused), an NBD URI, or - (the "
           "default): the raw\n"
           "disk on standard output, in order.\n"
           "\n"
           "Any layout QEMU writes is read: tables before or after the "
           "data they map,\n"
           "version 2 and 3, clusters of 512 bytes to 2 MiB, subclusters, "
           "zlib and zstd\n"
           "compressed clusters.  What arrives before the table that maps "
           "it is kept (in\n"
           "memory up to --spool-memory, then in an unlinked file in "
           "$TMPDIR) until the\n"
           "table comes.  The target gets what QEMU reads from the image: "
           "data where it has\n"
           "data, zeros everywhere else.\n"
           "\n"
           "Options:\n"
           "      --apply          the image is an overlay or a delta: "
           "write its data and\n"
           "                       zero clusters onto what TARGET holds, "
           "which must be of the\n"
           "                       disk's size; what it leaves unallocated "
           "stays as it is\n"
           "      --target-is-zero TARGET reads as zeros already: do not "
           "zero what the\n"
           "                       image leaves as zeros\n"
           "      --flush          make the writes last before exiting: "
           "fdatasync of a file or\n"
           "                       device, an NBD flush (by default, as "
           "with qemu-img convert\n"
           "                       and dd, they may still be in the page "
           "cache)\n"
           "      --spool-memory=SIZE  memory for what arrives before its "
           "table (default %u MiB);\n"
           "                       past it, a temporary file\n"
           "  -j, --threads=N      threads that inflate compressed clusters "
           "(default: one per\n"
           "                       CPU)\n"
           "  -p, --progress       show progress on standard error\n"
           "      --progress-fd=N  write progress for a calling program to "
           "descriptor N (3 or\n"
           "                       more): each new percentage as three "
           "digits\n"
           "      --info           print what the header says, and exit "
           "without writing\n"
           "      --json           the same, as one JSON object\n"
           "  -h, --help           show this help and exit\n"
           "      --version        show the version and exit\n"
           "\n"
           "SIZE takes a suffix K, M, G, T, P or E (powers of 1024).\n"
           "Exit status: 0 done, 1 failed (the message says how much of "
           "TARGET was written),\n"
           "2 usage error.\n",
           (unsigned)(Q2S_IMPORT_DEFAULT_SPOOL_MEMORY >> 20));
}

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    int status;

    va_start(ap, fmt);
    status = cli_usage_error_v(PROGRAM, usage_line, fmt, ap);
    va_end(ap);
    return status;
}

/* Stopped by a signal, the program dies of it quietly (main), as a shell
 * expects: no message. */
static int fail(const char *message)
{
    if (!*cli_stop_flag())
        cli_print_error_line(PROGRAM, message);
    return EXIT_FAILURE;
}

static int flush_stdout(const struct cli *cli)
{
    return cli_flush_stdout(PROGRAM, cli->stdout_closed);
}

enum {
    OPT_APPLY = 256,
    OPT_TARGET_IS_ZERO,
    OPT_FLUSH,
    OPT_SPOOL_MEMORY,
    OPT_PROGRESS_FD,
    OPT_INFO,
    OPT_JSON,
    OPT_VERSION,
};

/* Returns -1 to go on, or the exit status. */
static int parse_arguments(struct cli *cli, int argc, char **argv)
{
    static const struct option long_options[] = {
        {"apply", no_argument, NULL, OPT_APPLY},
        {"target-is-zero", no_argument, NULL, OPT_TARGET_IS_ZERO},
        {"flush", no_argument, NULL, OPT_FLUSH},
        {"spool-memory", required_argument, NULL, OPT_SPOOL_MEMORY},
        {"threads", required_argument, NULL, 'j'},
        {"progress", no_argument, NULL, 'p'},
        {"progress-fd", required_argument, NULL, OPT_PROGRESS_FD},
        {"info", no_argument, NULL, OPT_INFO},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    struct q2s_error *err = NULL;
    uint64_t size;
    int c, n;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":j:ph", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_APPLY:
            q2s_import_options_set_apply(cli->options, true);
            break;
        case OPT_TARGET_IS_ZERO:
            q2s_import_options_set_target_is_zero(cli->options, true);
            break;
        case OPT_FLUSH:
            q2s_import_options_set_flush(cli->options, true);
            break;
        case OPT_SPOOL_MEMORY:
            if (!cli_parse_size(optarg, &size))
                return usage_error("invalid spool memory size '%s'", optarg);
            q2s_import_options_set_spool_memory(cli->options, size, NULL);
            break;
        case 'j':
            if (!cli_parse_int(optarg, &n) || n < 1 ||
                q2s_import_options_set_threads(cli->options, (uint32_t)n,
                                               &err) < 0) {
                q2s_error_free(err);
                return usage_error("invalid thread count '%s': must be from "
                                   "1 to %d", optarg, Q2S_MAX_THREADS);
            }
            break;
        case 'p':
            cli->progress = true;
            break;
        case OPT_PROGRESS_FD:
            if (optarg[strspn(optarg, "0123456789")] != '\0' ||
                !cli_parse_int(optarg, &cli->progress_fd))
                return usage_error("invalid progress descriptor '%s': must "
                                   "be a descriptor number", optarg);
            if (cli->progress_fd <= 2)
                return usage_error("--progress-fd=%d: descriptors 0 to 2 "
                                   "are the image, the disk and messages; "
                                   "give another", cli->progress_fd);
            break;
        case OPT_INFO:
            cli->info = true;
            break;
        case OPT_JSON:
            cli->json = true;
            break;
        case 'h':
            help();
            return flush_stdout(cli);
        case OPT_VERSION:
            printf("%s %s\n", PROGRAM, q2s_version_string());
            return flush_stdout(cli);
        case ':':
            if (optopt)
                return usage_error("option '-%c' needs a value", optopt);
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt)
                return usage_error("unknown option '-%c'", optopt);
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        cli->target = argv[optind++];
    if (optind < argc)
        return usage_error("more than one target given");
    if ((cli->info || cli->json) && cli->target)
        return usage_error("--info and --json print the header and write "
                           "nothing: they take no target");
    if ((cli->info || cli->json) && (cli->progress || cli->progress_fd >= 0))
        return usage_error("--info and --json write nothing: no progress "
                           "to show");
    if (q2s_import_options_get_apply(cli->options) &&
        q2s_import_options_get_target_is_zero(cli->options))
        return usage_error("--target-is-zero has no use with --apply, which "
                           "writes onto what the target holds");
    if (!cli->target)
        cli->target = "-";
    if (strcmp(cli->target, "-") == 0 &&
        q2s_import_options_get_apply(cli->options))
        return usage_error("--apply writes onto a disk: give its file, "
                           "device or NBD URI as TARGET, not standard output");
    return -1;
}

static const char *compression_name(enum q2s_compression type)
{
    return type == Q2S_COMPRESSION_ZSTD ? "zstd" : "zlib";
}

/* The length of the valid UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_sequence(const unsigned char *p)
{
    unsigned c = p[0];
    size_t length = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2
                  : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4
                                                                     : 0;

    for (size_t i = 1; i < length; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
        (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return length;
}

/* A JSON string: quotes, backslashes and control characters escaped, a
 * byte that is not UTF-8 (a name is the image's bytes) as U+FFFD. */
static void print_json_string(const char *text)
{
    const unsigned char *c = (const unsigned char *)text;

    putchar('"');
    while (*c) {
        size_t n = utf8_sequence(c);

        if (n == 0) {
            printf("\\ufffd");
            c++;
        } else if (*c == '"' || *c == '\\') {
            printf("\\%c", *c++);
        } else if (*c < 0x20 || *c == 0x7f) {
            printf("\\u%04x", *c++);
        } else {
            fwrite(c, 1, n, stdout);
            c += n;
        }
    }
    putchar('"');
}

static void print_info(const struct cli *cli, const struct q2s_import *imp)
{
    const char *backing = q2s_import_get_backing_file(imp);
    const char *format = q2s_import_get_backing_format(imp);

    if (cli->json) {
        printf("{\"virtual-size\": %" PRIu64 ", \"cluster-size\": %" PRIu32
               ", \"version\": %" PRIu32 ", \"refcount-bits\": %" PRIu32
               ", \"compression-type\": \"%s\", \"extended-l2\": %s"
               ", \"backing-filename\": ",
               q2s_import_get_virtual_size(imp),
               q2s_import_get_cluster_size(imp), q2s_import_get_version(imp),
               q2s_import_get_refcount_bits(imp),
               compression_name(q2s_import_get_compression(imp)),
               q2s_import_get_extended_l2(imp) ? "true" : "false");
        if (backing)
            print_json_string(backing);
        else
            printf("null");
        printf(", \"backing-format\": ");
        if (backing && *format)
            print_json_string(format);
        else
            printf("null");
        printf("}\n");
        return;
    }
    printf("virtual size: %" PRIu64 "\n", q2s_import_get_virtual_size(imp));
    printf("cluster size: %" PRIu32 "\n", q2s_import_get_cluster_size(imp));
    printf("version: %" PRIu32 "\n", q2s_import_get_version(imp));
    printf("refcount bits: %" PRIu32 "\n", q2s_import_get_refcount_bits(imp));
    printf("compression type: %s\n",
           compression_name(q2s_import_get_compression(imp)));
    printf("extended l2: %s\n", q2s_import_get_extended_l2(imp) ? "yes" : "no");
    if (backing) {
        /* A name is the image's bytes: shown as one line. */
        printf("backing file: ");
        for (const unsigned char *c = (const unsigned char *)backing; *c; c++)
            printf(*c < 0x20 || *c == 0x7f ? "\\x%02x" : "%c", *c);
        printf("\n");
        if (*format)
            printf("backing file format: %s\n", format);
    }
}

/* A failure once the import ran: what became of the target. */
static int fail_after(const char *message, const struct cli *cli,
                      const struct q2s_import *imp)
{
    const char *name = strcmp(cli->target, "-") == 0 ? "standard output"
                                                     : cli->target;
    char line[1200];

    if (!q2s_import_get_target_changed(imp))
        snprintf(line, sizeof line, "%s (%s was not changed)", message, name);
    else if (q2s_import_get_bytes_written(imp) == 0)
        snprintf(line, sizeof line, "%s (%s is not the disk: it was "
                 "truncated to the disk's size, nothing written yet)",
                 message, name);
    else
        snprintf(line, sizeof line, "%s (%s is not the disk: %" PRIu64
                 " bytes of it were written or zeroed)", message, name,
                 q2s_import_get_bytes_written(imp));
    return fail(line);
}

static int import(struct cli *cli, struct machine_progress *machine)
{
    struct progress progress = {
        .human = cli->progress,
        .display = {.scan_label = "reading", .phase = -1},
        .machine = machine,
    };
    struct q2s_import *imp = NULL;
    struct q2s_target *target = NULL;
    struct q2s_error *err = NULL;
    int status;

    if (q2s_import_new_fd(STDIN_FILENO, cli->options, &imp, &err) < 0 ||
        q2s_import_read_header(imp, &err) < 0) {
        status = fail(q2s_error_message(err));
        goto out;
    }
    if (cli->info || cli->json) {
        print_info(cli, imp);
        status = flush_stdout(cli);
        goto out;
    }
    /* Before the target is opened, which makes a file. */
    if (q2s_import_check(imp, &err) < 0) {
        status = fail(q2s_error_message(err));
        goto out;
    }
    if (strcmp(cli->target, "-") == 0) {
        if (q2s_target_from_fd(STDOUT_FILENO, &target, &err) < 0) {
            status = fail(q2s_error_message(err));
            goto out;
        }
    } else if (q2s_target_open(cli->target, cli->options, &target, &err) < 0) {
        status = fail(q2s_error_message(err));
        goto out;
    }
    if (q2s_import_run(imp, target, report_progress, &progress, &err) < 0) {
        status = fail_after(q2s_error_message(err), cli, imp);
        goto out;
    }
    machine_progress_write(machine, 100);
    status = EXIT_SUCCESS;
out:
    if (progress.display.phase >= 0)
        fputc('\n', stderr);
    q2s_error_free(err);
    q2s_target_close(target);
    q2s_import_free(imp);
    return status;
}

int main(int argc, char **argv)
{
    bool closed[3];
    struct cli cli = {.progress_fd = -1};
    struct machine_progress machine = {.program = PROGRAM, .scan_span = -1,
                                       .last = -1, .fd = -1};
    int status;

    if (cli_guard_standard_descriptors(closed) < 0)
        return EXIT_FAILURE;
    cli.stdout_closed = closed[STDOUT_FILENO];
    cli.options = q2s_import_options_new();
    if (!cli.options)
        return fail("out of memory");
    q2s_import_options_set_threads(cli.options, cli_available_cpus(), NULL);
    status = parse_arguments(&cli, argc, argv);
    if (status < 0 && closed[STDIN_FILENO])
        status = fail("standard input is closed; it holds no image to read");
    if (status < 0 && isatty(STDIN_FILENO))
        status = fail("standard input is a terminal; give the image there "
                      "(< IMAGE.qcow2, or a pipe)");
    if (status < 0 && !cli.info && !cli.json &&
        strcmp(cli.target, "-") == 0) {
        if (cli.stdout_closed)
            status = fail("standard output is closed; give a TARGET or "
                          "redirect it to where the disk should go");
        else if (isatty(STDOUT_FILENO))
            status = fail("refusing to write a disk to a terminal; give a "
                          "TARGET or redirect standard output");
    }
    if (status < 0 && cli.progress_fd >= 0)
        status = cli_check_progress_fd(PROGRAM, cli.progress_fd);
    if (status >= 0) {
        q2s_import_options_free(cli.options);
        return status;
    }
    cli_catch_stop_signals();
    q2s_import_options_set_cancel_flag(cli.options, cli_stop_flag());
    machine.fd = cli.progress_fd;
    machine_progress_write(&machine, 0);
    status = import(&cli, &machine);
    q2s_import_options_free(cli.options);
    cli_die_of_stop_signal();
    return status;
}
