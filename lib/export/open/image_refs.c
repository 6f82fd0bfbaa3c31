/* The files an image names, read from its header the way QEMU reads them
 * (the functions named below are QEMU's), before qemu-nbd or qemu-img
 * opens anything.  The image is hostile: every length and offset from it
 * is checked before use, what lies past the end of a file reads as zeros
 * (as bdrv_pread() sees it), and names are quoted with escapes in
 * messages.  Where QEMU would refuse the image before opening any file it
 * names, the image is left for QEMU to refuse with its own message. */
#define _GNU_SOURCE
#include "export/open/image_refs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fdio.h"
#include "error.h"
#include "export/source.h"
#include "format/qcow2_header.h"

/* QEMU has no limit (bdrv_open_backing_file() recurses; a loop recurses
 * until it runs out of file descriptors): far more than real chains. */
#define MAX_CHAIN_IMAGES 64
/* The longest name kept: QEMU's name buffers (bs->backing_file,
 * auto_backing_file) are PATH_MAX bytes. */
#define MAX_NAME 4095
/* What of a name a message shows. */
#define MAX_SHOWN 120

/* qcow (version 1) has qcow2's magic, and its backing name limit. */
#define QCOW_MAGIC QCOW2_MAGIC
#define QCOW_MAX_BACKING_NAME QCOW2_MAX_BACKING_FILE_NAME

/* QED (QEMU's block/qed.h: QEDHeader, little-endian). */
#define QED_HEADER_BYTES 64
#define QED_F_BACKING_FILE 0x01
#define QED_F_BACKING_FORMAT_NO_PROBE 0x04

/* VMDK (QEMU's block/vmdk.c). */
#define VMDK4_MAGIC 0x4b444d56u            /* "KDMV" */
#define VMDK3_MAGIC 0x434f5744u            /* "COWD" */
#define VMDK_SPARSE_DESC_OFFSET 0x200      /* s->desc_offset in vmdk_open() */
#define VMDK_DESC_SIZE (20 * 512)          /* DESC_SIZE */
#define VMDK_MAX_DESC ((1 << 20) - 1)      /* vmdk_read_desc() */
#define VMDK_MAX_EXTENT_NAME 511           /* "%511[^\n\r\"]" */
/* The probe reads this much (BLOCK_PROBE_BUF_SIZE). */
#define PROBE_BYTES 2048

struct checker {
    const char *top;          /* the image given, first in messages */
    bool untrusted;
    struct q2s_error *err;
    /* The image being inspected, below the top: its name as the image
     * above it wrote it, for messages. */
    const char *below;
    /* The images of the chain so far, to find a loop. */
    dev_t devs[MAX_CHAIN_IMAGES];
    ino_t inos[MAX_CHAIN_IMAGES];
    size_t images;
};

struct image {
    const char *path;         /* as QEMU names it */
    int fd;
    uint64_t size;
};

/* The backing file an image names, when there is one to inspect next. */
struct backing {
    char *name;               /* as written in the image */
    char *path;               /* as QEMU resolves it */
    char format[QCOW2_MAX_BACKING_FORMAT + 1];  /* "" when not recorded */
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 |
           p[0];
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p + 4) << 32 | le32(p);
}

/* name in double quotes, with C escapes for quotes, backslashes, control
 * characters and bytes past ASCII (a crafted name may hold a newline or
 * a terminal escape), cut with "..." past MAX_SHOWN characters. */
static const char *quoted(const char *name, char *buf, size_t size)
{
    size_t used = 0, shown = 0;

    buf[used++] = '"';
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        char piece[8];

        if (shown++ == MAX_SHOWN) {
            memcpy(piece, "...", 4);
        } else if (*p == '"' || *p == '\\') {
            snprintf(piece, sizeof piece, "\\%c", *p);
        } else if (*p == '\n') {
            memcpy(piece, "\\n", 3);
        } else if (*p < 0x20 || *p >= 0x7f) {
            snprintf(piece, sizeof piece, "\\x%02x", *p);
        } else {
            piece[0] = (char)*p;
            piece[1] = '\0';
        }
        if (used + strlen(piece) + 2 > size)
            break;
        memcpy(buf + used, piece, strlen(piece));
        used += strlen(piece);
        if (shown > MAX_SHOWN)
            break;
    }
    buf[used++] = '"';
    buf[used] = '\0';
    return buf;
}

#define QUOTED_BYTES (MAX_SHOWN * 4 + 8)

/* Sets the message "TOP: [backing file "B": ]what" and returns -1. */
__attribute__((format(printf, 2, 3)))
static int refuse(struct checker *c, const char *fmt, ...)
{
    char what[sizeof c->err->message];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (c->below) {
        char below[QUOTED_BYTES];

        return q2s_error_set(c->err, EPERM, "%s: backing file %s: %s", c->top,
                             quoted(c->below, below, sizeof below), what);
    }
    return q2s_error_set(c->err, EPERM, "%s: %s", c->top, what);
}

/* path_has_protocol() in QEMU's block.c: a ':' before any '/'. */
static bool has_protocol(const char *path)
{
    return path[strcspn(path, ":/")] == ':';
}

/* path_combine() in QEMU's block.c: name relative to the directory of
 * base (after any "protocol:"), unless absolute. */
static char *path_combine(const char *base, const char *name)
{
    const char *start = base, *slash = strrchr(base, '/');
    size_t length;
    char *path;

    if (name[0] == '/')
        return strdup(name);
    if (has_protocol(base))
        start = strchr(base, ':') + 1;
    if (slash && slash + 1 > start)
        start = slash + 1;
    length = (size_t)(start - base);
    path = malloc(length + strlen(name) + 1);
    if (path) {
        memcpy(path, base, length);
        strcpy(path + length, name);
    }
    return path;
}

/* bdrv_get_full_backing_filename_from_filename(): a protocol or an
 * absolute name as it is, else relative to the image that names it. */
static char *backing_path(const char *image, const char *name)
{
    if (has_protocol(name))
        return strdup(name);
    return path_combine(image, name);
}

/* The local file behind a name with a protocol prefix, for the protocols
 * of QEMU's file-posix.c, which strip it (raw_parse_filename()); NULL for
 * the others (nbd:, json:, ...), which cannot be checked here. */
static const char *local_file(const char *name)
{
    static const char *const prefixes[] = {
        "file:", "host_device:", "host_cdrom:",
    };

    if (!has_protocol(name))
        return name;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return name + strlen(prefixes[i]);
    }
    return NULL;
}

static const char *article(const char *noun)
{
    return strchr("aeiou", noun[0]) ? "an" : "a";
}

/* Checks one file that an image names (kind: "backing file", "data
 * file", ...), resolved to path.  1 if it exists as a regular file or a
 * block device (*st then describes it), 0 if there is nothing to check
 * (a protocol; a file that cannot be found, which QEMU fails to open as
 * well), -1 if refused. */
static int check_named(struct checker *c, const char *kind, const char *name,
                       const char *path, struct stat *st)
{
    char shown[QUOTED_BYTES];
    const char *file;

    if (c->untrusted)
        return refuse(c, "untrusted: the image names %s %s %s",
                      article(kind), kind, quoted(name, shown, sizeof shown));
    file = local_file(path);
    if (!file || stat(file, st) < 0)
        return 0;
    if (S_ISREG(st->st_mode) || S_ISBLK(st->st_mode))
        return 1;
    quoted(name, shown, sizeof shown);
    if (S_ISFIFO(st->st_mode))
        return refuse(c, "its %s %s is a FIFO; refusing, as QEMU would "
                      "block opening it", kind, shown);
    if (S_ISCHR(st->st_mode))
        return refuse(c, "its %s %s is a character device; refusing, as "
                      "opening it may block or act", kind, shown);
    return refuse(c, "its %s %s is %s; refusing", kind, shown,
                  S_ISDIR(st->st_mode) ? "a directory"
                                       : "not a regular file or a block "
                                         "device");
}

/* Reads length bytes at offset as bdrv_pread() gives them to a format
 * driver: past the end of the file, zeros (bdrv_aligned_preadv()). */
static int read_at(struct checker *c, const struct image *image, void *buf,
                   size_t length, uint64_t offset)
{
    uint8_t *p = buf;

    memset(buf, 0, length);
    if (offset >= image->size)
        return 0;
    if (length > image->size - offset)
        length = (size_t)(image->size - offset);
    while (length > 0) {
        ssize_t n = pread(image->fd, p, length, (off_t)offset);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            char shown[QUOTED_BYTES];

            return refuse(c, "cannot read %s: %s",
                          quoted(image->path, shown, sizeof shown),
                          strerror(errno));
        }
        if (n == 0)
            break;  /* shrunk: the rest stays zeros */
        p += n;
        offset += (uint64_t)n;
        length -= (size_t)n;
    }
    return 0;
}

/* A name of length bytes at offset, up to its first NUL as QEMU's C
 * strings end there; NULL (after a message) if out of memory. */
static char *read_name(struct checker *c, const struct image *image,
                       size_t length, uint64_t offset)
{
    char *name = malloc(length + 1);

    if (!name) {
        q2s_error_set_errno(c->err, ENOMEM, "%s", c->top);
        return NULL;
    }
    if (read_at(c, image, name, length, offset) < 0) {
        free(name);
        return NULL;
    }
    name[length] = '\0';
    return name;
}

/* Takes the backing file that an image names (name, as written; format
 * as recorded, or ""): checked, and kept in *next when there is an image
 * there to inspect in turn.  An empty name names nothing
 * (bdrv_open_backing_file()).  Frees name. */
static int take_backing(struct checker *c, const struct image *image,
                        char *name, const char *format, const char *kind,
                        struct backing *next)
{
    struct stat st;
    char *path;
    int ret;

    if (name[0] == '\0') {
        free(name);
        return 0;
    }
    path = backing_path(image->path, name);
    if (!path) {
        free(name);
        return q2s_error_set_errno(c->err, ENOMEM, "%s", c->top);
    }
    ret = check_named(c, kind, name, path, &st);
    if (ret == 1) {
        /* "file:NAME" is NAME to QEMU (raw_parse_filename()), relative
         * to the current directory, and so are the names it holds in
         * turn (path_combine() keeps the prefix): followed as NAME. */
        if (local_file(path) != path) {
            char *file = strdup(local_file(path));

            free(path);
            path = file;
            if (!path) {
                free(name);
                return q2s_error_set_errno(c->err, ENOMEM, "%s", c->top);
            }
        }
        next->name = name;
        next->path = path;
        snprintf(next->format, sizeof next->format, "%s", format);
        return 0;
    }
    free(name);
    free(path);
    return ret < 0 ? -1 : 0;
}

/* The backing file whose name is length bytes at offset in the header,
 * taken as take_backing() takes it. */
static int take_backing_at(struct checker *c, const struct image *image,
                           size_t length, uint64_t offset, const char *format,
                           struct backing *next)
{
    char *name = read_name(c, image, length, offset);

    if (!name)
        return -1;
    return take_backing(c, image, name, format, "backing file", next);
}

/* The files a qcow2 header names, in the order QEMU opens them: the
 * external data file (in qcow2_do_open()), then the backing file. */
static int check_qcow2_names(struct checker *c, const struct image *image,
                             const uint8_t *first, size_t length,
                             const struct qcow2_header_info *info,
                             struct backing *next)
{
    struct q2s_error name_err;
    char *name;

    if (info->incompatible_features &
        (UINT64_C(1) << QCOW2_INCOMPAT_DATA_FILE_BIT)) {
        struct stat st;
        char *beside;
        int ret;

        if (!info->data_file_named) {
            /* QEMU then wants a data-file option ("'data-file' is
             * required for this image") and fails without one. */
            if (c->untrusted)
                return refuse(c, "untrusted: the image needs an external "
                              "data file, and does not record its name");
            return 0;
        }
        if (info->data_file_name_length > MAX_NAME)
            return refuse(c, "its data file name is %" PRIu32 " bytes, "
                          "longer than a path; refusing",
                          info->data_file_name_length);
        name = malloc(info->data_file_name_length + 1);
        if (!name)
            return q2s_error_set_errno(c->err, ENOMEM, "%s", c->top);
        qcow2_header_copy_name(first, length, info->data_file_name_offset,
                               info->data_file_name_length, name);
        if (name[0] == '\0' && c->untrusted) {
            free(name);
            return refuse(c, "untrusted: the image needs an external "
                          "data file, and does not record its name");
        }
        /* qcow2_do_open() hands the name to bdrv_open_child() as it is:
         * relative to the current directory (QEMU 7.2 does so).  The same
         * name beside the image is checked too, in case a QEMU resolves
         * it as it does a backing file. */
        ret = name[0] ? check_named(c, "data file", name, name, &st) : 0;
        if (ret >= 0 && name[0] && !has_protocol(name) && name[0] != '/') {
            beside = path_combine(image->path, name);
            if (!beside) {
                free(name);
                return q2s_error_set_errno(c->err, ENOMEM, "%s", c->top);
            }
            ret = check_named(c, "data file", name, beside, &st);
            free(beside);
        }
        free(name);
        if (ret < 0)
            return -1;
    }

    if (info->backing_name_offset == 0)
        return 0;
    if (qcow2_header_check_backing_name(info, &name_err) < 0)
        return refuse(c, "%s; refusing", name_err.message);
    name = malloc(info->backing_name_length + 1);
    if (!name)
        return q2s_error_set_errno(c->err, ENOMEM, "%s", c->top);
    qcow2_header_copy_name(first, length, info->backing_name_offset,
                           info->backing_name_length, name);
    return take_backing(c, image, name, info->backing_format,
                        "backing file", next);
}

/* qcow2: qcow2_do_open() and qcow2_read_extensions(), on the first
 * cluster (format/qcow2_header.c). */
static int inspect_qcow2(struct checker *c, const struct image *image,
                         struct backing *next)
{
    struct qcow2_header_info info;
    struct q2s_error parse_err;
    uint8_t header[QCOW2_V3_MIN_HEADER_LENGTH];
    size_t length;
    uint8_t *first;
    int ret = 0;

    /* What QEMU refuses before it opens a file the image names is left
     * for QEMU to refuse, with its own message.  The fixed fields decide
     * most of it; the extensions need the first cluster, as far as the
     * file goes. */
    if (read_at(c, image, header, sizeof header, 0) < 0)
        return -1;
    if (qcow2_header_parse(header, sizeof header, &info, &parse_err) < 0)
        return 0;
    length = info.cluster_size < image->size ? info.cluster_size
                                             : (size_t)image->size;
    first = malloc(length ? length : 1);
    if (!first)
        return q2s_error_set_errno(c->err, ENOMEM, "%s", c->top);
    if (read_at(c, image, first, length, 0) < 0) {
        free(first);
        return -1;
    }
    if (qcow2_header_parse(first, length, &info, &parse_err) == 0)
        ret = check_qcow2_names(c, image, first, length, &info, next);
    free(first);
    return ret;
}

/* qcow (version 1): qcow_open(); the backing format is probed. */
static int inspect_qcow(struct checker *c, const struct image *image,
                        struct backing *next)
{
    uint8_t header[20];
    uint64_t backing_offset;
    uint32_t backing_length;

    if (read_at(c, image, header, sizeof header, 0) < 0)
        return -1;
    if (q2s_get_be32(header) != QCOW_MAGIC || q2s_get_be32(header + 4) != 1)
        return 0;
    backing_offset = q2s_get_be64(header + 8);
    backing_length = q2s_get_be32(header + 16);
    if (backing_offset == 0)
        return 0;
    if (backing_length > QCOW_MAX_BACKING_NAME)
        return refuse(c, "its backing file name is %" PRIu32 " bytes, more "
                      "than QEMU reads (1023); refusing", backing_length);
    return take_backing_at(c, image, backing_length, backing_offset, "",
                           next);
}

/* QED: bdrv_qed_do_open(); a raw backing file when the image says so,
 * else probed. */
static int inspect_qed(struct checker *c, const struct image *image,
                       struct backing *next)
{
    uint8_t header[QED_HEADER_BYTES];
    uint32_t cluster_size, header_clusters, name_offset, name_length;
    uint64_t features;

    if (read_at(c, image, header, sizeof header, 0) < 0)
        return -1;
    if (memcmp(header, "QED", 4) != 0)
        return 0;
    cluster_size = le32(header + 4);
    header_clusters = le32(header + 12);
    features = le64(header + 16);
    name_offset = le32(header + 56);
    name_length = le32(header + 60);
    if (!(features & QED_F_BACKING_FILE))
        return 0;
    /* QEMU refuses a header size that overflows, and a name outside the
     * header or as long as PATH_MAX (qed_read_string()). */
    if (cluster_size == 0 || header_clusters > UINT32_MAX / cluster_size)
        return 0;
    if ((uint64_t)name_offset + name_length >
            (uint64_t)cluster_size * header_clusters ||
        name_length > MAX_NAME)
        return refuse(c, "its backing file name (%" PRIu32 " bytes at "
                      "offset %" PRIu32 ") is not where QEMU reads one; "
                      "refusing", name_length, name_offset);
    return take_backing_at(c, image, name_length, name_offset,
                           features & QED_F_BACKING_FORMAT_NO_PROBE ? "raw"
                                                                    : "",
                           next);
}

/* vmdk_read_desc(): from offset, as many bytes as the file has, at most
 * 1 MiB - 1, as a C string. */
static char *read_descriptor(struct checker *c, const struct image *image,
                             uint64_t offset)
{
    size_t length = image->size < VMDK_MAX_DESC ? (size_t)image->size
                                                : VMDK_MAX_DESC;

    return read_name(c, image, length, offset);
}

static bool is_scanf_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' ||
           ch == '\f' || ch == '\r';
}

static const char *skip_spaces(const char *p)
{
    while (is_scanf_space(*p))
        p++;
    return p;
}

/* "%Ns": spaces skipped, then 1 to max other characters. */
static const char *scan_word(const char *p, char *word, size_t max)
{
    size_t n = 0;

    p = skip_spaces(p);
    while (*p && !is_scanf_space(*p) && n < max)
        word[n++] = *p++;
    word[n] = '\0';
    return n ? p : NULL;
}

/* "%" SCNd64: spaces skipped, a sign, at least one digit. */
static const char *scan_integer(const char *p)
{
    p = skip_spaces(p);
    if (*p == '+' || *p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return NULL;
    while (*p >= '0' && *p <= '9')
        p++;
    return p;
}

/* The extent name on the line at p, as vmdk_parse_extents() scans it:
 * sscanf(p, "%10s %" SCNd64 " %10s \"%511[^\n\r\"]\" %" SCNd64, ...),
 * which crosses line ends where it skips spaces.  True for an "RW" line
 * with a name (at least four matches): every such line, whatever its
 * type and size, which is more than QEMU opens, never less. */
static bool scan_extent(const char *p, char name[VMDK_MAX_EXTENT_NAME + 1])
{
    char access[11], type[11];
    size_t n = 0;

    p = scan_word(p, access, 10);
    if (p)
        p = scan_integer(p);
    if (p)
        p = scan_word(p, type, 10);
    if (!p)
        return false;
    p = skip_spaces(p);
    if (*p++ != '"')
        return false;
    while (*p && *p != '\n' && *p != '\r' && *p != '"' &&
           n < VMDK_MAX_EXTENT_NAME)
        name[n++] = *p++;
    name[n] = '\0';
    return n > 0 && strcmp(access, "RW") == 0;
}

static bool is_blank_line(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\v' || *p == '\f' || *p == '\r')
        p++;
    return *p == '\n';
}

/* A sparse extent that holds a descriptor of its own (capacity 0 and a
 * descriptor offset): QEMU's vmdk_open_vmdk4() parses it for extents in
 * turn, without limit. */
static bool holds_descriptor(const uint8_t header[44])
{
    return q2s_get_be32(header) == VMDK4_MAGIC && le64(header + 12) == 0 &&
           le64(header + 28) != 0;
}

static int check_extent(struct checker *c, const char *name,
                        const char *path)
{
    struct stat st;
    struct image extent = { .path = path };
    uint8_t header[44];
    int ret = check_named(c, "extent", name, path, &st);

    if (ret <= 0 || local_file(path) != path)
        return ret;
    extent.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (extent.fd < 0)
        return 0;
    ret = q2s_fd_size(extent.fd, &extent.size) < 0
              ? 0 : read_at(c, &extent, header, sizeof header, 0);
    if (ret == 0 && extent.size > 0 && holds_descriptor(header)) {
        char shown[QUOTED_BYTES];

        ret = refuse(c, "its extent %s is itself a vmdk descriptor; "
                     "refusing, as QEMU would follow it without limit",
                     quoted(name, shown, sizeof shown));
    }
    close(extent.fd);
    return ret;
}

/* The extents of a descriptor (vmdk_parse_extents()): names relative to
 * the directory of the file that holds the descriptor (bdrv_dirname()). */
static int check_extents(struct checker *c, const struct image *image,
                         const char *descriptor)
{
    char name[VMDK_MAX_EXTENT_NAME + 1];

    for (const char *p = descriptor; *p; ) {
        const char *end = strchr(p, '\n');

        /* A blank line scans as the next line does: skipped, so that a
         * long run of them costs no more than once. */
        if (!is_blank_line(p) && scan_extent(p, name)) {
            char *path = path_combine(image->path, name);
            int ret;

            if (!path)
                return q2s_error_set_errno(c->err, ENOMEM, "%s", c->top);
            ret = check_extent(c, name, path);
            free(path);
            if (ret < 0)
                return -1;
        }
        p = end ? end + 1 : p + strlen(p);
    }
    return 0;
}

/* VMDK: vmdk_open().  A sparse file ("KDMV", "COWD") is its own extent;
 * anything else is a descriptor naming its extents; either may name a
 * parent (vmdk_parent_open()), opened as vmdk. */
static int inspect_vmdk(struct checker *c, const struct image *image,
                        struct backing *next)
{
    uint8_t header[44];
    uint64_t parent_at = VMDK_SPARSE_DESC_OFFSET;
    char *descriptor = NULL, *hint, *end;
    char area[VMDK_DESC_SIZE + 3];
    uint32_t magic;

    if (image->size < 4)
        return 0;  /* QEMU: "File is too small, not a valid image" */
    if (read_at(c, image, header, sizeof header, 0) < 0)
        return -1;
    magic = q2s_get_be32(header);
    if (magic != VMDK4_MAGIC && magic != VMDK3_MAGIC) {
        parent_at = 0;  /* vmdk_open_desc_file(): s->desc_offset = 0 */
        if (c->untrusted)
            return refuse(c, "untrusted: the image is a vmdk descriptor, "
                          "which names its extent files");
        descriptor = read_descriptor(c, image, 0);
        if (!descriptor)
            return -1;
    } else if (holds_descriptor(header)) {
        /* vmdk_open_vmdk4(): the descriptor at desc_offset sectors (the
         * shift wraps as QEMU's does) is parsed as a descriptor file. */
        if (c->untrusted)
            return refuse(c, "untrusted: the image holds a vmdk "
                          "descriptor, which names extent files");
        descriptor = read_descriptor(c, image, le64(header + 28) << 9);
        if (!descriptor)
            return -1;
    }
    if (descriptor && check_extents(c, image, descriptor) < 0) {
        free(descriptor);
        return -1;
    }
    free(descriptor);

    /* vmdk_parent_open(): DESC_SIZE bytes at s->desc_offset, a C string;
     * the name starts 2 bytes past "parentFileNameHint" (="), wherever
     * that lands, and ends at the next '"'.  Three zero bytes past the
     * area keep that in bounds. */
    memset(area, 0, sizeof area);
    if (read_at(c, image, area, VMDK_DESC_SIZE, parent_at) < 0)
        return -1;
    hint = strstr(area, "parentFileNameHint");
    if (!hint)
        return 0;
    hint += strlen("parentFileNameHint") + 2;
    end = strchr(hint, '"');
    if (!end)
        return 0;  /* QEMU fails the open */
    if (end - hint > MAX_NAME)
        return refuse(c, "its parent file name is longer than QEMU reads; "
                      "refusing");
    *end = '\0';
    hint = strdup(hint);
    if (!hint)
        return q2s_error_set_errno(c->err, ENOMEM, "%s", c->top);
    return take_backing(c, image, hint, "vmdk", "parent file", next);
}

/* QEMU's probe (bdrv_probe_all()) among the formats inspected here:
 * qcow2_probe(), qcow_probe(), bdrv_qed_probe(), vmdk_probe().  NULL for
 * anything else, which then names no file that is checked here. */
static const char *probe(struct checker *c, const struct image *image,
                         int *ret)
{
    char buf[PROBE_BYTES];
    const uint8_t *bytes = (const uint8_t *)buf;
    size_t length = image->size < sizeof buf ? (size_t)image->size
                                             : sizeof buf;

    *ret = read_at(c, image, buf, length, 0);
    if (*ret < 0 || length < 4)
        return NULL;
    if (q2s_get_be32(bytes) == QCOW_MAGIC && length >= 8) {
        uint32_t version = q2s_get_be32(bytes + 4);

        return version >= 2 ? "qcow2" : version == 1 ? "qcow" : NULL;
    }
    if (memcmp(buf, "QED", 4) == 0)
        return "qed";
    if (q2s_get_be32(bytes) == VMDK4_MAGIC ||
        q2s_get_be32(bytes) == VMDK3_MAGIC)
        return "vmdk";
    /* A text descriptor: comment and blank lines, then "version=N". */
    for (size_t i = 0; i < length; ) {
        if (buf[i] == '#') {
            while (i < length && buf[i] != '\n')
                i++;
            i++;
        } else if (buf[i] == ' ') {
            while (i < length && buf[i] == ' ')
                i++;
            if (i < length && buf[i] == '\r')
                i++;
            if (i == length || buf[i] != '\n')
                return NULL;
            i++;
        } else {
            const char *p = buf + i;
            size_t left = length - i;

            if (left >= 10 && strncmp(p, "version=", 8) == 0 &&
                p[8] >= '1' && p[8] <= '3' &&
                (p[9] == '\n' || (left >= 11 && p[9] == '\r' &&
                                  p[10] == '\n')))
                return "vmdk";
            return NULL;
        }
    }
    return NULL;
}

/* Formats whose QEMU driver opens no file but the image: vhdx refuses a
 * differencing image (vhdx_parse_metadata(): VHDX_PARAMS_HAS_PARENT is
 * ENOTSUP), vdi one with a parent UUID (vdi_open()), vpc never reads its
 * parent locators (vpc_open()), parallels opens only its own file
 * (parallels_open()). */
static bool names_no_file(const char *format)
{
    static const char *const formats[] = {
        "raw", "vhdx", "vpc", "vdi", "parallels",
    };

    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if (strcmp(format, formats[i]) == 0)
            return true;
    }
    return false;
}

static bool is_inspected(const char *format)
{
    return strcmp(format, "qcow2") == 0 || strcmp(format, "qcow") == 0 ||
           strcmp(format, "qed") == 0 || strcmp(format, "vmdk") == 0 ||
           names_no_file(format);
}

/* One image of the chain, in format ("" to probe): what it names is
 * checked, and its backing file left in *next. */
static int inspect(struct checker *c, const char *path, const char *format,
                   struct backing *next)
{
    struct image image = { .path = path };
    struct stat st;
    int ret = 0;

    if (names_no_file(format))
        return 0;
    image.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (image.fd < 0)
        return 0;  /* QEMU cannot open it either */
    /* Still what stat() saw, not something swapped in since. */
    if (fstat(image.fd, &st) < 0 ||
        (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) ||
        q2s_fd_size(image.fd, &image.size) < 0) {
        close(image.fd);
        return refuse(c, "the image changed while being inspected");
    }
    if (format[0] == '\0')
        format = probe(c, &image, &ret);
    if (ret < 0 || !format)
        ret = ret < 0 ? -1 : 0;
    else if (strcmp(format, "qcow2") == 0)
        ret = inspect_qcow2(c, &image, next);
    else if (strcmp(format, "qcow") == 0)
        ret = inspect_qcow(c, &image, next);
    else if (strcmp(format, "qed") == 0)
        ret = inspect_qed(c, &image, next);
    else if (strcmp(format, "vmdk") == 0)
        ret = inspect_vmdk(c, &image, next);
    close(image.fd);
    return ret;
}

/* Remembers the image about to be inspected; refuses a loop and a chain
 * longer than MAX_CHAIN_IMAGES. */
static int enter(struct checker *c, const struct stat *st)
{
    for (size_t i = 0; i < c->images; i++) {
        if (c->devs[i] == st->st_dev && c->inos[i] == st->st_ino)
            return refuse(c, "its backing chain loops back to an image "
                          "already in it; refusing, as QEMU would open it "
                          "again and again");
    }
    if (c->images == MAX_CHAIN_IMAGES)
        return refuse(c, "its backing chain is longer than %d images; "
                      "refusing", MAX_CHAIN_IMAGES);
    c->devs[c->images] = st->st_dev;
    c->inos[c->images] = st->st_ino;
    c->images++;
    return 0;
}

int q2s_check_image_references(const char *path, const char *format,
                               bool untrusted, struct q2s_error *err)
{
    struct checker c = { .top = path, .untrusted = untrusted, .err = err };
    struct backing current = { 0 };
    struct stat st;
    int ret;

    if (!format)
        format = "raw";
    if (untrusted && !is_inspected(format))
        return q2s_error_set(err, EPERM, "%s: untrusted: format %s is not "
                             "inspected, so the files it may name are not "
                             "known", path, format);
    if (q2s_stat_input(path, &st, err) < 0)
        return -1;
    if (enter(&c, &st) < 0)
        return -1;
    ret = inspect(&c, path, format, &current);
    while (ret == 0 && current.path) {
        struct backing next = { 0 };

        c.below = current.name;
        if (stat(current.path, &st) < 0)
            break;  /* gone since: QEMU fails to open it */
        ret = enter(&c, &st);
        if (ret == 0)
            ret = inspect(&c, current.path, current.format, &next);
        free(current.name);
        free(current.path);
        c.below = NULL;
        current = next;
    }
    free(current.name);
    free(current.path);
    return ret;
}
