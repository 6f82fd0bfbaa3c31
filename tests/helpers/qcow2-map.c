/* qcow2-map [--read] IMAGE: what the guest reads of a qcow2 image, through
 * the format layer (lib/format/: the header, the entries, compressed
 * clusters inflated), for the integration tests, which hold it against
 * `qemu-img map` and `qemu-img convert`.  One line per run of subclusters
 * of one kind, "START LENGTH KIND [HOST_OFFSET]": KIND is data (with the
 * host offset of START), compressed, zero or unallocated.  With --read,
 * the disk's bytes instead, on stdout (unallocated as zeros: no backing
 * file; no external data file).  Reads the file with pread; exit 1 with a
 * message for an image the format layer refuses. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "format/qcow2_decompress.h"
#include "format/qcow2_entries.h"
#include "format/qcow2_header.h"

struct run {
    const char *kind;  /* NULL before the first */
    uint64_t start, length, host;
};

static void emit(struct run *run, const char *kind, uint64_t start,
                 uint64_t length, uint64_t host)
{
    bool is_data = strcmp(kind, "data") == 0;

    if (run->kind && strcmp(run->kind, kind) == 0 &&
        run->start + run->length == start &&
        (!is_data || run->host + run->length == host)) {
        run->length += length;
        return;
    }
    if (run->kind) {
        printf("%" PRIu64 " %" PRIu64 " %s", run->start, run->length,
               run->kind);
        if (strcmp(run->kind, "data") == 0)
            printf(" %" PRIu64, run->host);
        putchar('\n');
    }
    *run = (struct run){ kind, start, length, host };
}

/* --read: the bytes of each subcluster, written as it is decoded. */
struct reader {
    int fd;
    const struct qcow2_header_info *info;
    struct qcow2_decompressor *decompressor;
    uint8_t *cluster, *compressed;
};

static int write_all(const uint8_t *p, size_t n)
{
    return fwrite(p, 1, n, stdout) == n ? 0 : -1;
}

static int read_subcluster(struct reader *r,
                           const struct qcow2_cluster_mapping *m, uint32_t s,
                           uint64_t subcluster_size, uint64_t length,
                           struct q2s_error *err)
{
    uint32_t bit = UINT32_C(1) << s;

    if (m->kind == QCOW2_CLUSTER_COMPRESSED) {
        /* The whole cluster once, at its first subcluster. */
        if (s == 0) {
            ssize_t n;

            memset(r->compressed, 0, r->info->cluster_size * 2);
            n = pread(r->fd, r->compressed, m->compressed_bytes,
                      (off_t)m->host_offset);
            if (n < 0 ||
                qcow2_decompress_cluster(r->decompressor, r->compressed,
                                         m->compressed_bytes, r->cluster,
                                         err) < 0)
                return -1;
        }
        return write_all(r->cluster + s * subcluster_size, length);
    }
    memset(r->cluster, 0, subcluster_size);
    if ((m->data_mask & bit) &&
        pread(r->fd, r->cluster, length,
              (off_t)(m->host_offset + s * subcluster_size)) < 0)
        return -1;
    return write_all(r->cluster, length);
}

static int fail(const char *what)
{
    fprintf(stderr, "qcow2-map: %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    struct q2s_error err = { .code = 0 };
    struct qcow2_header_info info;
    struct run run = { NULL, 0, 0, 0 };
    uint8_t *first, *l1 = NULL, *l2 = NULL;
    uint32_t subclusters, entry_bytes, entries_per_l2;
    uint64_t subcluster_size, guest = 0;
    bool data_file, read_mode = argc == 3 && strcmp(argv[1], "--read") == 0;
    struct reader reader = { .fd = -1 };
    ssize_t n;
    int fd;

    if (argc != 2 + read_mode)
        return fail("usage: qcow2-map [--read] IMAGE");
    fd = open(argv[1 + read_mode], O_RDONLY);
    first = calloc(1, QCOW2_HEADER_MAX_BYTES);
    if (fd < 0 || !first)
        return fail("cannot open the image");
    n = pread(fd, first, QCOW2_HEADER_MAX_BYTES, 0);
    if (n < 0 || qcow2_header_parse(first, (size_t)n, &info, &err) < 0 ||
        qcow2_header_check_open(&info, &err) < 0)
        return fail(err.message[0] ? err.message : "cannot read");
    data_file = info.incompatible_features &
                (UINT64_C(1) << QCOW2_INCOMPAT_DATA_FILE_BIT);
    subclusters = qcow2_subclusters(&info);
    subcluster_size = info.cluster_size / subclusters;
    entry_bytes = subclusters > 1 ? 16 : 8;
    entries_per_l2 = info.cluster_size / entry_bytes;
    if (read_mode) {
        reader = (struct reader){ fd, &info, NULL,
                                  malloc(info.cluster_size),
                                  malloc((size_t)info.cluster_size * 2) };
        if (!reader.cluster || !reader.compressed ||
            qcow2_decompressor_new(info.compression_type, info.cluster_size,
                                   &reader.decompressor, &err) < 0)
            return fail("cannot set up reading");
    }
    l1 = calloc(1, (size_t)info.l1_size * 8 + 1);
    l2 = malloc(info.cluster_size);
    if (!l1 || !l2 ||
        pread(fd, l1, (size_t)info.l1_size * 8,
              (off_t)info.l1_table_offset) < 0)
        return fail("cannot read the L1 table");
    for (uint32_t i = 0; i < info.l1_size && guest < info.virtual_size; i++) {
        uint64_t l2_offset;

        if (qcow2_decode_l1_entry(&info, q2s_get_be64(l1 + 8 * (size_t)i),
                                  &l2_offset, &err) < 0)
            return fail(err.message);
        memset(l2, 0, info.cluster_size);
        if (l2_offset &&
            pread(fd, l2, info.cluster_size, (off_t)l2_offset) < 0)
            return fail("cannot read an L2 table");
        for (uint32_t j = 0; j < entries_per_l2 && guest < info.virtual_size;
             j++) {
            struct qcow2_cluster_mapping m;
            const uint8_t *e = l2 + (size_t)j * entry_bytes;

            uint64_t bitmap = entry_bytes == 16 ? q2s_get_be64(e + 8) : 0;

            if (qcow2_decode_l2_entry(&info, q2s_get_be64(e), bitmap,
                                      data_file, &m, &err) < 0)
                return fail(err.message);
            for (uint32_t s = 0; s < subclusters && guest < info.virtual_size;
                 s++) {
                uint64_t length = subcluster_size;
                const char *kind = "unallocated";

                if (length > info.virtual_size - guest)
                    length = info.virtual_size - guest;
                if (m.kind == QCOW2_CLUSTER_COMPRESSED)
                    kind = "compressed";
                else if (m.data_mask & (UINT32_C(1) << s))
                    kind = "data";
                else if (m.zero_mask & (UINT32_C(1) << s))
                    kind = "zero";
                if (read_mode) {
                    if (read_subcluster(&reader, &m, s, subcluster_size,
                                        length, &err) < 0)
                        return fail(err.message[0] ? err.message
                                                   : "cannot read data");
                } else {
                    emit(&run, kind, guest, length,
                         m.host_offset + s * subcluster_size);
                }
                guest += length;
            }
        }
    }
    if (read_mode) {
        /* Past the L1 table: nothing allocated, zeros. */
        memset(reader.cluster, 0, info.cluster_size);
        for (; guest < info.virtual_size; guest += n) {
            n = (ssize_t)(info.virtual_size - guest < info.cluster_size
                              ? info.virtual_size - guest
                              : info.cluster_size);
            if (write_all(reader.cluster, (size_t)n) < 0)
                return fail("cannot write");
        }
        qcow2_decompressor_free(reader.decompressor);
        free(reader.cluster);
        free(reader.compressed);
        if (fflush(stdout) != 0)
            return fail("cannot write");
    } else {
        if (guest < info.virtual_size)
            emit(&run, "unallocated", guest, info.virtual_size - guest, 0);
        emit(&run, "end", 0, 0, 0);
    }
    free(first);
    free(l1);
    free(l2);
    close(fd);
    return 0;
}
