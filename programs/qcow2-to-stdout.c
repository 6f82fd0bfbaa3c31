/* qcow2-to-stdout: the command line, a thin layer over the library. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcow2-to-stdout.h"
#include "cli.h"
#include "map_option.h"
#include "progress.h"
#include "xapi.h"

#define PROGRAM "qcow2-to-stdout"
#define EXIT_USAGE CLI_EXIT_USAGE

struct cli {
    struct q2s_options *options;
    struct q2s_source_options *source_options;
    const char *input;
    bool data_file;
    bool data_file_raw;
    enum q2s_compression compression;
    int compression_level;
    bool measure;
    bool json;
    bool progress;
    int progress_fd;  /* --progress-fd, or -1 */
    uint64_t offset;
    uint64_t length;
    bool length_given;
    bool compression_option_given;  /* --compress-level or --compress-cache */
    bool stdout_closed;  /* at start; it is /dev/null now */
    const char *backing_file;    /* -B, or NULL */
    const char *backing_format;  /* -F, or NULL */
    const char *diff_format;     /* --diff-format, or NULL for raw */
    bool bitmap;                 /* --bitmap */
    bool shrink;                 /* --shrink */
    const char *map_name;  /* --map: a path, or fd:N */
    int map_fd;            /* N of fd:N, or -1 */
    const volatile sig_atomic_t *cancel_flag;
    struct xapi_options xapi;
};

static void usage_line(FILE *out)
{
    fprintf(out, "Usage: %s [-f FORMAT] [-c CLUSTER_SIZE] [-r REFCOUNT_BITS] "
            "[-d] [-R] [--diff BASE] [-B BACKING -F FORMAT] [OPTION]... "
            "INPUT\n", PROGRAM);
}

static void help(void)
{
    usage_line(stdout);
    printf("Convert a disk image to qcow2 and write it to standard output.\n"
           "\n"
           "  -f FORMAT          format of the input (default: raw); other "
           "formats QEMU\n"
           "                     reads (qcow2, vmdk, vhdx, vpc, vdi, ...) go "
           "through qemu-nbd\n"
           "  -c CLUSTER_SIZE    qcow2 cluster size, a power of two from 512 "
           "to 2M\n"
           "                     (default: %d)\n"
           "  -r REFCOUNT_BITS   width of the reference counts: 1, 2, 4, 8, "
           "16, 32 or 64\n"
           "                     (default: %d)\n"
           "  -d                 make INPUT the image's external data file\n"
           "  -R                 also set data_file_raw (implies -d)\n"
           "      --compress[=TYPE]\n"
           "                     store data clusters compressed where that "
           "saves space;\n"
           "                     TYPE is zlib (the default) or zstd\n"
           "      --compress-level=N\n"
           "                     zlib 1 to 9 (default 6); zstd 1 to 22, or "
           "negative for\n"
           "                     faster (default 3)\n"
           "  -j, --threads=N    compress on N threads (default: the CPUs "
           "available)\n"
           "      --spool-memory=SIZE\n"
           "                     keep up to SIZE in memory of what the "
           "first pass read\n"
           "                     for the second: compressed clusters, and "
           "the data of an\n"
           "                     NBD input, whose rest goes to an unlinked "
           "file in $TMPDIR\n"
           "                     (default: a quarter of the physical "
           "memory);\n"
           "                     --compress-cache=SIZE is its older name\n"
           "      --reread       read an NBD input again (and compress "
           "again) what does\n"
           "                     not fit in the spool memory, rather than "
           "keep it in a file\n"
           "      --one-pass     allocate the clusters the input reports as "
           "data (NBD block\n"
           "                     status, SEEK_DATA, --map) and read each "
           "byte once, straight\n"
           "                     into the output, nothing kept; clusters "
           "of zeros reported\n"
           "                     as data are stored as data; not with "
           "--compress or stdin\n"
           "      --measure      print the exact size of the image in bytes "
           "and exit\n"
           "      --json         with --measure: print a JSON object\n"
           "      --offset=N     write the image from byte N on (default: 0)\n"
           "      --length=N     write at most N bytes of the image\n"
           "      --untrusted    the image comes from someone else: refuse "
           "one that names\n"
           "                     another file (backing file, data file, "
           "extents), and\n"
           "                     limit the memory and time of qemu-nbd and "
           "qemu-img\n"
           "      --timeout=SECONDS\n"
           "                     fail when an NBD server or qemu-nbd takes "
           "longer than\n"
           "                     SECONDS for the handshake or for a reply "
           "(default: wait;\n"
           "                     %d with --untrusted)\n"
           "      --connections=N\n"
           "                     read an NBD URI over N connections (1 to "
           "16, default %d)\n"
           "                     when its server allows several "
           "(multi-conn)\n"
           "      --map=FILE     read the input only where the allocation "
           "map in FILE\n"
           "                     says its data lies; elsewhere it reads as "
           "zeros.  FILE\n"
           "                     holds the JSON of qemu-img map "
           "--output=json or of\n"
           "                     rbd diff --format=json; fd:N reads it "
           "from descriptor N\n"
           "      --diff=BASE    write a delta: only the clusters that "
           "differ from BASE, a\n"
           "                     raw file, block device or NBD URI (as "
           "XAPI's\n"
           "                     qcow2-to-stdout.py)\n"
           "      --diff-format=FORMAT\n"
           "                     the format of BASE (default: raw); others "
           "go through\n"
           "                     qemu-nbd\n"
           "  -B, --backing-file=NAME\n"
           "                     write an overlay of the backing file NAME "
           "(recorded as\n"
           "                     given): only the clusters that differ from "
           "it, as data\n"
           "                     or as zero clusters; the base compared with "
           "is --diff's\n"
           "                     BASE, or NAME itself from the current "
           "directory\n"
           "  -F, --backing-format=FORMAT\n"
           "                     the format of the backing file (required "
           "with -B)\n"
           "      --bitmap=NAME  with -B: the clusters that the dirty bitmap "
           "NAME marks are\n"
           "                     read, the rest left to the backing file; "
           "INPUT is an NBD\n"
           "                     URI whose server exports the bitmap, or an "
           "image (-f)\n"
           "                     that holds it\n"
           "      --shrink       with -B: allow an input smaller than its "
           "base\n"
           "      --json-header-map=FD, --json-header-info=FD\n"
           "                     the JSON of qemu-img map and qemu-img "
           "info --output=json\n"
           "                     on the qcow2 behind INPUT, read from "
           "inherited descriptor\n"
           "                     FD: the clusters the map lists are "
           "allocated, unread\n"
           "      --json-header-diff-map=FD, --json-header-diff-info=FD\n"
           "                     the same for BASE, with --diff and the "
           "two above\n"
           "  -p, --progress     show progress on standard error\n"
           "      --progress-fd=N\n"
           "                     write progress for a calling program to "
           "descriptor N, as\n"
           "                     vhd-tool --progress --machine does: each "
           "new whole\n"
           "                     percentage as three digits (000 to 100), "
           "no separator\n"
           "  -h, --help         show this help and exit\n"
           "      --version      show the version and exit\n"
           "\n"
           "INPUT is a regular file or a block device; an NBD URI "
           "(nbd://host/export,\n"
           "nbd+unix:///export?socket=PATH, ...; over TLS nbds://... or "
           "nbds+unix://...\n"
           "with tls-psk-file=FILE and USER@, or tls-certificates=DIR), read "
           "as raw; or -\n"
           "for a raw image on standard input (a pipe's data is kept in an "
           "unlinked file\n"
           "in $TMPDIR).\n"
           "Sizes take a suffix K, M, G or T (powers of 1024).  The output is "
           "never\n"
           "seeked: it can be a pipe.\n",
           Q2S_DEFAULT_CLUSTER_SIZE, Q2S_DEFAULT_REFCOUNT_BITS,
           Q2S_UNTRUSTED_TIMEOUT_SECONDS, Q2S_DEFAULT_CONNECTIONS);
}

static void print_error_line(const char *message)
{
    cli_print_error_line(PROGRAM, message);
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

static int fail(const char *message)
{
    print_error_line(message);
    return EXIT_FAILURE;
}

static int flush_stdout(const struct cli *cli)
{
    return cli_flush_stdout(PROGRAM, cli->stdout_closed);
}

enum {
    OPT_MEASURE = 256,
    OPT_JSON,
    OPT_OFFSET,
    OPT_LENGTH,
    OPT_VERSION,
    OPT_COMPRESS,
    OPT_COMPRESS_LEVEL,
    OPT_COMPRESS_CACHE,
    OPT_SPOOL_MEMORY,
    OPT_REREAD,
    OPT_ONE_PASS,
    OPT_UNTRUSTED,
    OPT_TIMEOUT,
    OPT_CONNECTIONS,
    OPT_PROGRESS_FD,
    OPT_MAP,
    OPT_DIFF,
    OPT_DIFF_FORMAT,
    OPT_BITMAP,
    OPT_SHRINK,
    OPT_JSON_HEADER,  /* + enum xapi_json */
};

/* A quarter of the physical memory: room for the compressed data of most
 * images, and the machine stays usable. */
static uint64_t default_compress_cache(void)
{
    long pages = sysconf(_SC_PHYS_PAGES);
    long page_size = sysconf(_SC_PAGE_SIZE);

    if (pages <= 0 || page_size <= 0)
        return 256 * 1024 * 1024;
    return (uint64_t)pages * (uint64_t)page_size / 4;
}

/* --progress-fd=N: a descriptor number above 2.  Standard input and
 * output are the input and the image; standard error carries messages,
 * which would break a reader that parses three bytes at a time (give 3>&2
 * for that).  Returns -1 to go on, or the exit status. */
static int parse_progress_fd(struct cli *cli, const char *text)
{
    static const char *const standard[] = {
        "standard input", "standard output, where the image goes",
        "standard error, where messages go",
    };

    if (text[strspn(text, "0123456789")] != '\0' ||
        !cli_parse_int(text, &cli->progress_fd))
        return usage_error("invalid progress descriptor '%s': must be a "
                           "descriptor number", text);
    if (cli->progress_fd <= 2)
        return usage_error("--progress-fd=%d: descriptor %d is %s; give "
                           "another", cli->progress_fd, cli->progress_fd,
                           standard[cli->progress_fd]);
    return -1;
}

/* A descriptor number for the fork's JSON options: not 1, where the image
 * goes. */
static bool parse_fd(const char *text, int *fd)
{
    int n;

    if (!cli_parse_int(text, &n) || n < 0 || n == STDOUT_FILENO)
        return false;
    *fd = n;
    return true;
}

/* A library error about the command line: a usage error.  Frees it. */
static int usage_error_from(struct q2s_error *err)
{
    int status = usage_error("%s", q2s_error_message(err));

    q2s_error_free(err);
    return status;
}

/* The options objects, with the defaults that come from the machine.
 * Returns -1 to go on, or the exit status. */
static int default_options(struct cli *cli)
{
    cli->options = q2s_options_new();
    cli->source_options = q2s_source_options_new();
    if (!cli->options || !cli->source_options)
        return fail("out of memory");
    cli->progress_fd = -1;
    cli->compression = Q2S_COMPRESSION_NONE;
    cli->compression_level = Q2S_COMPRESSION_LEVEL_DEFAULT;
    xapi_options_init(&cli->xapi);
    /* Valid by construction: the library's own bounds. */
    if (q2s_options_set_threads(cli->options,
                                cli_available_cpus() < Q2S_MAX_THREADS
                                    ? cli_available_cpus() : Q2S_MAX_THREADS,
                                NULL) < 0 ||
        q2s_options_set_compress_cache(cli->options, default_compress_cache(),
                                       NULL) < 0)
        return fail("out of memory");
    return -1;
}

/* What the options that name descriptors use each one for. */
struct descriptor_use {
    const char *option;
    int fd;
};

/* Each descriptor for one option: the JSON and --map readers close theirs
 * at its end, so a second reader would see a "Bad file descriptor", or
 * each a part of the text.  Not 2, where messages go, which the reader
 * would close before its message is written; not 0 when it is the input
 * or the base.  Returns -1 to go on, or the exit status. */
static int check_descriptors(const struct cli *cli)
{
    struct descriptor_use uses[XAPI_JSON_COUNT + 2];
    size_t count = 0;

    for (int i = 0; i < XAPI_JSON_COUNT; i++)
        if (cli->xapi.fds[i] >= 0)
            uses[count++] = (struct descriptor_use){
                xapi_json_option((enum xapi_json)i), cli->xapi.fds[i] };
    if (cli->map_fd >= 0)
        uses[count++] = (struct descriptor_use){ "--map", cli->map_fd };
    /* --progress-fd is above 2 already. */
    if (cli->progress_fd >= 0)
        uses[count++] = (struct descriptor_use){ "--progress-fd",
                                                 cli->progress_fd };
    for (size_t i = 0; i < count; i++) {
        if (uses[i].fd == STDERR_FILENO)
            return usage_error("%s: descriptor 2 is standard error, where "
                               "messages go; give another", uses[i].option);
        if (uses[i].fd == STDIN_FILENO) {
            const char *reader = strcmp(cli->input, "-") == 0 ? "input"
                : cli->xapi.diff_base &&
                  strcmp(cli->xapi.diff_base, "-") == 0 ? "base" : NULL;

            if (reader)
                return usage_error("%s 0 and the %s - would both read "
                                   "standard input", uses[i].option, reader);
        }
        for (size_t j = 0; j < i; j++)
            if (uses[j].fd == uses[i].fd)
                return usage_error("descriptor %d is given to both %s and "
                                   "%s", uses[i].fd, uses[j].option,
                                   uses[i].option);
    }
    return -1;
}

/* What only the options together, and the input, can tell: usage errors
 * too, found by the library's rules.  Returns -1 to go on, or the exit
 * status. */
static int check_combinations(struct cli *cli)
{
    struct q2s_error *err = NULL;

    q2s_options_set_allow_shrink(cli->options, cli->shrink);
    if (q2s_options_set_compression(cli->options, cli->compression,
                                    cli->compression_level, &err) < 0 ||
        (cli->data_file &&
         q2s_options_set_data_file(cli->options, cli->input,
                                   cli->data_file_raw, &err) < 0) ||
        (cli->backing_file &&
         q2s_options_set_backing_file(cli->options, cli->backing_file,
                                      cli->backing_format, &err) < 0) ||
        q2s_options_check(cli->options, cli->input, cli->source_options,
                          &err) < 0)
        return usage_error_from(err);
    return -1;
}

/* --map=FILE: a path, or fd:N with N a descriptor number.  -1 for an fd:
 * that is not followed by one. */
static int parse_map_name(struct cli *cli, const char *name)
{
    const char *digits = name + 3;
    uint64_t n;

    cli->map_name = name;
    cli->map_fd = -1;
    if (strncmp(name, "fd:", 3) != 0)
        return 0;
    if (digits[strspn(digits, "0123456789")] != '\0' ||
        !cli_parse_size(digits, &n) || n > INT_MAX)
        return -1;
    cli->map_fd = (int)n;
    return 0;
}

/* Returns -1 to go on, or the exit status. */
static int parse_arguments(struct cli *cli, int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { "measure", no_argument, NULL, OPT_MEASURE },
        { "json", no_argument, NULL, OPT_JSON },
        { "offset", required_argument, NULL, OPT_OFFSET },
        { "length", required_argument, NULL, OPT_LENGTH },
        { "progress", no_argument, NULL, 'p' },
        { "progress-fd", required_argument, NULL, OPT_PROGRESS_FD },
        { "compress", optional_argument, NULL, OPT_COMPRESS },
        { "compress-level", required_argument, NULL, OPT_COMPRESS_LEVEL },
        { "compress-cache", required_argument, NULL, OPT_COMPRESS_CACHE },
        { "spool-memory", required_argument, NULL, OPT_SPOOL_MEMORY },
        { "reread", no_argument, NULL, OPT_REREAD },
        { "one-pass", no_argument, NULL, OPT_ONE_PASS },
        { "threads", required_argument, NULL, 'j' },
        { "untrusted", no_argument, NULL, OPT_UNTRUSTED },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "connections", required_argument, NULL, OPT_CONNECTIONS },
        { "map", required_argument, NULL, OPT_MAP },
        { "diff", required_argument, NULL, OPT_DIFF },
        { "diff-format", required_argument, NULL, OPT_DIFF_FORMAT },
        { "backing-file", required_argument, NULL, 'B' },
        { "backing-format", required_argument, NULL, 'F' },
        { "bitmap", required_argument, NULL, OPT_BITMAP },
        { "shrink", no_argument, NULL, OPT_SHRINK },
        { "json-header-map", required_argument, NULL,
          OPT_JSON_HEADER + XAPI_MAP },
        { "json-header-info", required_argument, NULL,
          OPT_JSON_HEADER + XAPI_INFO },
        { "json-header-diff-map", required_argument, NULL,
          OPT_JSON_HEADER + XAPI_DIFF_MAP },
        { "json-header-diff-info", required_argument, NULL,
          OPT_JSON_HEADER + XAPI_DIFF_INFO },
        { NULL, 0, NULL, 0 },
    };
    struct q2s_error *err = NULL;
    uint64_t n;
    int c, status;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:c:r:dRj:phB:F:", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'f':
            if (q2s_source_options_set_format(cli->source_options, optarg,
                                              &err) < 0)
                return usage_error_from(err);
            break;
        case 'c':
            if (!cli_parse_size(optarg, &n) || n > UINT32_MAX)
                return usage_error("invalid cluster size '%s'", optarg);
            if (q2s_options_set_cluster_size(cli->options, (uint32_t)n,
                                             &err) < 0)
                return usage_error_from(err);
            break;
        case 'r':
            if (!cli_parse_size(optarg, &n) || n > UINT32_MAX)
                return usage_error("invalid refcount width '%s'", optarg);
            if (q2s_options_set_refcount_bits(cli->options, (uint32_t)n,
                                              &err) < 0)
                return usage_error_from(err);
            break;
        case 'd':
            cli->data_file = true;
            break;
        case 'R':
            cli->data_file = true;
            cli->data_file_raw = true;
            break;
        case 'p':
            cli->progress = true;
            break;
        case OPT_PROGRESS_FD:
            status = parse_progress_fd(cli, optarg);
            if (status >= 0)
                return status;
            break;
        case OPT_COMPRESS:
            if (!optarg || strcmp(optarg, "zlib") == 0)
                cli->compression = Q2S_COMPRESSION_ZLIB;
            else if (strcmp(optarg, "zstd") == 0)
                cli->compression = Q2S_COMPRESSION_ZSTD;
            else
                return usage_error("invalid compression type '%s': must be "
                                   "zlib or zstd", optarg);
            break;
        case OPT_COMPRESS_LEVEL:
            if (!cli_parse_int(optarg, &cli->compression_level))
                return usage_error("invalid compression level '%s'", optarg);
            cli->compression_option_given = true;
            break;
        case OPT_COMPRESS_CACHE:
            if (!cli_parse_size(optarg, &n))
                return usage_error("invalid compression cache size '%s'",
                                   optarg);
            if (q2s_options_set_compress_cache(cli->options, n, &err) < 0)
                return usage_error_from(err);
            cli->compression_option_given = true;
            break;
        case OPT_SPOOL_MEMORY:
            if (!cli_parse_size(optarg, &n))
                return usage_error("invalid spool memory size '%s'", optarg);
            if (q2s_options_set_spool_memory(cli->options, n, &err) < 0)
                return usage_error_from(err);
            break;
        case OPT_REREAD:
            q2s_options_set_reread(cli->options, true);
            break;
        case OPT_ONE_PASS:
            q2s_options_set_one_pass(cli->options, true);
            break;
        case 'j':
            if (!cli_parse_size(optarg, &n) || n > UINT32_MAX)
                return usage_error("invalid thread count '%s'", optarg);
            if (q2s_options_set_threads(cli->options, (uint32_t)n, &err) < 0)
                return usage_error_from(err);
            break;
        case OPT_UNTRUSTED:
            q2s_source_options_set_untrusted(cli->source_options, true);
            break;
        case OPT_DIFF:
            cli->xapi.diff_base = optarg;
            break;
        case OPT_DIFF_FORMAT:
            cli->diff_format = optarg;
            break;
        case 'B':
            cli->backing_file = optarg;
            break;
        case 'F':
            cli->backing_format = optarg;
            break;
        case OPT_BITMAP:
            if (q2s_source_options_set_dirty_bitmap(cli->source_options,
                                                    optarg, &err) < 0)
                return usage_error_from(err);
            cli->bitmap = true;
            break;
        case OPT_SHRINK:
            cli->shrink = true;
            break;
        case OPT_JSON_HEADER + XAPI_MAP:
        case OPT_JSON_HEADER + XAPI_INFO:
        case OPT_JSON_HEADER + XAPI_DIFF_MAP:
        case OPT_JSON_HEADER + XAPI_DIFF_INFO:
            if (!parse_fd(optarg, &cli->xapi.fds[c - OPT_JSON_HEADER]))
                return usage_error("invalid descriptor '%s' for %s: must be "
                                   "an open file descriptor other than 1 "
                                   "(standard output)", optarg,
                                   xapi_json_option(c - OPT_JSON_HEADER));
            break;
        case OPT_TIMEOUT:
            /* 0, the library's "wait for ever", is leaving it out here. */
            if (optarg[strspn(optarg, "0123456789")] != '\0' ||
                !cli_parse_size(optarg, &n) || n < 1 ||
                n > Q2S_MAX_TIMEOUT_SECONDS)
                return usage_error("invalid timeout '%s': must be a whole "
                                   "number of seconds from 1 to %d", optarg,
                                   Q2S_MAX_TIMEOUT_SECONDS);
            if (q2s_source_options_set_timeout(cli->source_options,
                                               (uint32_t)n, &err) < 0)
                return usage_error_from(err);
            break;
        case OPT_CONNECTIONS:
            if (optarg[strspn(optarg, "0123456789")] != '\0' ||
                !cli_parse_size(optarg, &n) || n < 1 || n > Q2S_MAX_CONNECTIONS)
                return usage_error("invalid number of connections '%s': "
                                   "must be from 1 to %d", optarg,
                                   Q2S_MAX_CONNECTIONS);
            if (q2s_source_options_set_connections(cli->source_options,
                                                   (uint32_t)n, &err) < 0)
                return usage_error_from(err);
            break;
        case OPT_MAP:
            if (parse_map_name(cli, optarg) < 0)
                return usage_error("invalid --map '%s': fd: takes a "
                                   "descriptor number, as in fd:3", optarg);
            break;
        case 'h':
            help();
            return flush_stdout(cli);
        case OPT_VERSION:
            printf("%s %s\n", PROGRAM, Q2S_VERSION);
            return flush_stdout(cli);
        case OPT_MEASURE:
            cli->measure = true;
            break;
        case OPT_JSON:
            cli->json = true;
            break;
        case OPT_OFFSET:
            if (!cli_parse_size(optarg, &cli->offset))
                return usage_error("invalid offset '%s'", optarg);
            break;
        case OPT_LENGTH:
            if (!cli_parse_size(optarg, &cli->length))
                return usage_error("invalid length '%s'", optarg);
            cli->length_given = true;
            break;
        case ':':
            /* A short option (also inside a group such as -dc) has its
             * letter in optopt; a long one, its own word. */
            if (optopt > 0 && optopt < 256)
                return usage_error("option '-%c' needs a value", optopt);
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt > 0 && optopt < 256)
                return usage_error("unknown option '-%c'", optopt);
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind == argc)
        return usage_error("no input given");
    /* The type is optional, so getopt takes "--compress zstd" for the
     * option and an input named zstd. */
    if (optind + 1 < argc && optind > 1 &&
        strcmp(argv[optind - 1], "--compress") == 0 &&
        (strcmp(argv[optind], "zlib") == 0 || strcmp(argv[optind], "zstd") == 0))
        return usage_error("write --compress=%s: the type is optional, so it "
                           "goes after '='", argv[optind]);
    if (optind + 1 < argc)
        return usage_error("more than one input given");
    cli->input = argv[optind];
    if (cli->xapi.diff_base && strcmp(cli->xapi.diff_base, "-") == 0 &&
        strcmp(cli->input, "-") == 0)
        return usage_error("standard input cannot be both the input and "
                           "the base of --diff");
    if (cli->json && !cli->measure)
        return usage_error("--json goes with --measure");
    if (cli->measure && (cli->offset != 0 || cli->length_given))
        return usage_error("--measure measures the whole image; it takes no "
                           "--offset or --length");
    if (cli->map_name && cli->data_file_raw)
        return usage_error("--map has no use with -R, which reads no input");
    if (cli->map_name && cli->xapi.fds[XAPI_MAP] >= 0)
        return usage_error("--map and --json-header-map both say where the "
                           "input's data lies; give one of them");
    if (q2s_options_get_one_pass(cli->options)) {
        if (strcmp(cli->input, "-") == 0)
            return usage_error("--one-pass needs an input that says where "
                               "its data lies before it is read; standard "
                               "input is read whole and kept first");
        if (cli->xapi.diff_base)
            return usage_error("--one-pass cannot write a delta: --diff "
                               "reads the data to compare it first");
        if (cli->xapi.fds[XAPI_MAP] >= 0)
            return usage_error("--one-pass has no use with "
                               "--json-header-map, which already reads the "
                               "data once");
    }
    if (cli->map_fd == STDIN_FILENO && strcmp(cli->input, "-") == 0)
        return usage_error("--map=fd:0 and the input - would both read "
                           "standard input");
    /* Every cluster is allocated, so the image would not be a delta. */
    if (cli->xapi.diff_base && cli->data_file_raw)
        return usage_error("--diff has no use with -R, which allocates "
                           "every cluster");
    if (cli->backing_format && !cli->backing_file)
        return usage_error("-F gives the format of the backing file: it goes "
                           "with -B");
    if (cli->bitmap && !cli->backing_file)
        return usage_error("--bitmap makes an increment: it needs -B and -F, "
                           "the backup it adds to");
    if (cli->bitmap && cli->xapi.diff_base)
        return usage_error("--bitmap and --diff both say what changed; give "
                           "one of them");
    if (cli->shrink && !cli->backing_file)
        return usage_error("--shrink goes with -B");
    if (cli->diff_format && !cli->xapi.diff_base)
        return usage_error("--diff-format gives the format of --diff's base: "
                           "it goes with --diff");
    if (cli->compression_option_given &&
        cli->compression == Q2S_COMPRESSION_NONE)
        return usage_error("--compress-level and --compress-cache go with "
                           "--compress");
    /* Nothing would read what is kept. */
    if (cli->measure) {
        q2s_options_set_spool_memory(cli->options, 0, NULL);
        q2s_options_set_reread(cli->options, true);
    }
    status = check_descriptors(cli);
    return status >= 0 ? status : check_combinations(cli);
}

static void print_measure(const struct cli *cli, const struct q2s_plan *plan)
{
    if (!cli->json) {
        printf("%" PRIu64 "\n", q2s_plan_get_image_size(plan));
        return;
    }
    printf("{\n"
           "    \"size\": %" PRIu64 ",\n"
           "    \"virtual-size\": %" PRIu64 ",\n"
           "    \"input-size\": %" PRIu64 ",\n"
           "    \"cluster-size\": %" PRIu32 ",\n"
           "    \"refcount-bits\": %" PRIu32 ",\n"
           "    \"data-clusters\": %" PRIu64 ",\n"
           "    \"compressed-clusters\": %" PRIu64 ",\n"
           "    \"compressed-bytes\": %" PRIu64 ",\n"
           "    \"zero-clusters\": %" PRIu64 ",\n"
           "    \"l1-entries\": %" PRIu64 ",\n"
           "    \"l2-tables\": %" PRIu64 ",\n"
           "    \"refcount-blocks\": %" PRIu64 ",\n"
           "    \"refcount-table-clusters\": %" PRIu64 ",\n"
           "    \"total-clusters\": %" PRIu64 "\n"
           "}\n",
           q2s_plan_get_image_size(plan), q2s_plan_get_virtual_size(plan),
           q2s_plan_get_input_size(plan), q2s_plan_get_cluster_size(plan),
           q2s_plan_get_refcount_bits(plan), q2s_plan_get_data_clusters(plan),
           q2s_plan_get_compressed_clusters(plan),
           q2s_plan_get_compressed_bytes(plan),
           q2s_plan_get_zero_clusters(plan), q2s_plan_get_l1_entries(plan),
           q2s_plan_get_l2_tables(plan), q2s_plan_get_refcount_blocks(plan),
           q2s_plan_get_refcount_table_clusters(plan),
           q2s_plan_get_total_clusters(plan));
}

/* The failure a conversion ends with: the library's, or the program's
 * own, reported once by main. */
struct failure {
    struct q2s_error *error;
    char message[1024];
};

static const char *failure_message(const struct failure *failure)
{
    return failure->error ? q2s_error_message(failure->error)
                          : failure->message;
}

static int run(const struct cli *cli, struct q2s_source *source,
               struct q2s_source *base, struct machine_progress *machine,
               struct failure *failure)
{
    struct progress progress = {
        .human = cli->progress,
        .display = {
            .phase = -1,
            .scan_label = cli->compression != Q2S_COMPRESSION_NONE
                              ? "compressing" : "scanning",
        },
        .machine = machine,
    };
    q2s_progress_callback *callback =
        cli->progress || machine->fd >= 0 ? report_progress : NULL;
    struct q2s_plan *plan = NULL;
    uint64_t image_size, length;
    int ret = -1;

    if ((base ? q2s_plan_build_delta(source, base, cli->options, callback,
                                     &progress, &plan, &failure->error)
              : q2s_plan_build(source, cli->options, callback, &progress,
                               &plan, &failure->error)) < 0)
        goto out;
    image_size = q2s_plan_get_image_size(plan);
    if (cli->measure) {
        print_measure(cli, plan);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            snprintf(failure->message, sizeof failure->message,
                     "write error: %s", strerror(errno));
            goto out;
        }
        ret = 0;
        goto out;
    }
    if (cli->offset > image_size) {
        snprintf(failure->message, sizeof failure->message,
                 "offset %" PRIu64 " lies beyond the end of the image "
                 "(%" PRIu64 " bytes)", cli->offset, image_size);
        goto out;
    }
    length = image_size - cli->offset;
    if (cli->length_given && cli->length < length)
        length = cli->length;
    ret = q2s_render(plan, source, STDOUT_FILENO, cli->offset, length,
                     callback, &progress, &failure->error);
out:
    if (progress.display.phase >= 0)
        fputc('\n', stderr);
    if (ret == 0)
        machine_progress_write(machine, 100);
    q2s_plan_free(plan);
    return ret;
}

/* Whether the file name names, from the current directory, is where the
 * image goes: a regular file or a block device that standard output is
 * (a shell empties the file before we start).  A name that is not a file
 * (an NBD URI, a name that does not exist) is not. */
static bool is_standard_output(const char *name)
{
    struct stat file, out;

    if (stat(name, &file) < 0 || fstat(STDOUT_FILENO, &out) < 0)
        return false;
    if (S_ISREG(file.st_mode) && S_ISREG(out.st_mode))
        return file.st_dev == out.st_dev && file.st_ino == out.st_ino;
    if (S_ISBLK(file.st_mode) && S_ISBLK(out.st_mode))
        return file.st_rdev == out.st_rdev;
    return false;
}

/* An overlay whose backing file or base is the output itself: the base
 * would be compared with as it is emptied or grows, and QEMU would read
 * the overlay's own bytes as its backing file's.  Refused before any
 * output. */
static int check_not_output(const struct cli *cli, struct failure *failure)
{
    /* --diff=- is standard input, not a file named "-". */
    const char *diff = cli->xapi.diff_base;
    const char *names[] = { cli->backing_file,
                            diff && strcmp(diff, "-") != 0 ? diff : NULL };
    const char *what[] = { "the backing file", "the base" };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i] && is_standard_output(names[i])) {
            snprintf(failure->message, sizeof failure->message,
                     "%s: %s is the standard output, where the image goes; "
                     "write the image to another file", names[i], what[i]);
            return -1;
        }
    }
    return 0;
}

/* The base to compare with: --diff's, in --diff-format; or, for an
 * overlay without --diff or --bitmap, the backing file itself, named from
 * the current directory, in its -F format.  Opened as the input is: the
 * same trust, timeout and cancel flag. */
static int open_base(const struct cli *cli, struct q2s_source **base,
                     struct failure *failure)
{
    const char *name = cli->xapi.diff_base, *format = cli->diff_format;
    struct q2s_source_options *options;
    int ret;

    *base = NULL;
    if (!name && cli->backing_file && !cli->bitmap) {
        /* The file QEMU reads: "-" is a file name there, not stdin. */
        name = strcmp(cli->backing_file, "-") == 0 ? "./-"
                                                   : cli->backing_file;
        format = cli->backing_format;
    }
    if (!name)
        return 0;
    options = q2s_source_options_new();
    if (!options) {
        snprintf(failure->message, sizeof failure->message, "out of memory");
        return -1;
    }
    q2s_source_options_set_untrusted(
        options, q2s_source_options_get_untrusted(cli->source_options));
    q2s_source_options_set_cancel_flag(options, cli->cancel_flag);
    ret = q2s_source_options_set_timeout(
        options, q2s_source_options_get_timeout(cli->source_options),
        &failure->error);
    if (ret == 0)
        ret = q2s_source_options_set_connections(
            options, q2s_source_options_get_connections(cli->source_options),
            &failure->error);
    if (ret == 0)
        ret = q2s_source_options_set_format(options, format, &failure->error);
    if (ret == 0)
        ret = q2s_source_open(name, options, base, &failure->error);
    q2s_source_options_free(options);
    return ret;
}

/* Pass 1 and pass 2 on the sources that the options name. */
static int convert(const struct cli *cli, struct machine_progress *machine,
                   struct failure *failure)
{
    struct q2s_source *source = NULL, *base = NULL;
    struct q2s_map *map = NULL;
    int ret = -1;

    /* The JSON first: a bad one starts no qemu-nbd. */
    if (xapi_apply(&cli->xapi, cli->options, cli->cancel_flag,
                   failure->message, sizeof failure->message) < 0 ||
        (cli->map_name &&
         load_map_option(cli->map_name, cli->map_fd, cli->cancel_flag, &map,
                         failure->message, sizeof failure->message) < 0))
        goto out;
    if (check_not_output(cli, failure) < 0)
        goto out;
    if (q2s_source_open(cli->input, cli->source_options, &source,
                        &failure->error) == 0 &&
        (!map || q2s_source_set_map(source, map, &failure->error) == 0) &&
        open_base(cli, &base, failure) == 0)
        ret = run(cli, source, base, machine, failure);
out:
    q2s_map_free(map);
    q2s_source_close(base);
    q2s_source_close(source);
    return ret;
}

int main(int argc, char **argv)
{
    bool closed[3];
    struct failure failure = { .error = NULL };
    struct cli cli = { .map_fd = -1 };
    struct machine_progress machine = { .program = PROGRAM, .scan_span = -1,
                                        .last = -1 };
    int status;

    if (cli_guard_standard_descriptors(closed) < 0)
        return EXIT_FAILURE;
    cli.stdout_closed = closed[STDOUT_FILENO];
    status = default_options(&cli);
    if (status < 0)
        status = parse_arguments(&cli, argc, argv);
    if (status < 0 && cli.stdout_closed)
        status = fail("standard output is closed; redirect it to where the "
                      "image should go");
    if (status < 0 && closed[STDIN_FILENO] && strcmp(cli.input, "-") == 0)
        status = fail("standard input is closed; it holds no image to read");
    if (status < 0 && !cli.measure && isatty(STDOUT_FILENO))
        status = fail("refusing to write to a terminal; redirect standard "
                      "output");
    if (status < 0 && cli.progress_fd >= 0)
        status = cli_check_progress_fd(PROGRAM, cli.progress_fd);
    if (status >= 0) {
        q2s_options_free(cli.options);
        q2s_source_options_free(cli.source_options);
        return status;
    }
    cli_catch_stop_signals();
    cli.cancel_flag = cli_stop_flag();
    q2s_source_options_set_cancel_flag(cli.source_options, cli_stop_flag());
    machine.fd = cli.progress_fd;
    machine.measure = cli.measure;
    machine_progress_write(&machine, 0);
    status = convert(&cli, &machine, &failure) < 0 ? EXIT_FAILURE
                                                   : EXIT_SUCCESS;
    q2s_options_free(cli.options);
    q2s_source_options_free(cli.source_options);
    /* Stopped by a signal: die of it, quietly, as a shell expects. */
    cli_die_of_stop_signal();
    if (status != EXIT_SUCCESS)
        fail(failure_message(&failure));
    q2s_error_free(failure.error);
    return status;
}
