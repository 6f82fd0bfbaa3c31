/* The header of an image from someone else, as the check of the files
 * it names reads it (lib/format/qcow2_header.c, lib/export/open/image_refs.c):
 *
 * - the qcow2 header parser: what it accepts has a version, cluster size
 *   and header length QEMU takes, extensions inside the area before the
 *   backing file name, a backing format that fits QEMU's char[16]; a
 *   backing file name that passes its check is at most 1023 bytes inside
 *   the first cluster; a header that passes the open-time check has its
 *   tables aligned, within QEMU's limits and where QEMU reads, and an L1
 *   table large enough for the virtual size;
 * - the whole check, the input being an image file of each inspected
 *   format (and probed), trusted and untrusted: 0, or -1 with one
 *   printable line (names an image holds are quoted with escapes).
 *
 * The image is a memfd; the names it holds resolve below /proc/self/fd,
 * where little exists, or wherever an absolute name points (stat, and
 * reading the first bytes of regular files, as the check does). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "export/open/image_refs.h"
#include "format/qcow2_header.h"
#include "fuzz.h"

static void check_header(const uint8_t *data, size_t size)
{
    struct qcow2_header_info info;
    struct q2s_error err = { .code = 0 };
    uint64_t extensions_end;

    if (qcow2_header_parse(data, size, &info, &err) < 0) {
        FUZZ_CHECK(err.code == EPROTO);
        fuzz_check_message(err.message);
        return;
    }
    FUZZ_CHECK(info.version == 2 || info.version == 3);
    FUZZ_CHECK(info.cluster_bits >= QCOW2_MIN_CLUSTER_BITS &&
               info.cluster_bits <= QCOW2_MAX_CLUSTER_BITS);
    FUZZ_CHECK(info.cluster_size == UINT32_C(1) << info.cluster_bits);
    FUZZ_CHECK(info.header_length >= (info.version == 2
                                          ? QCOW2_V2_HEADER_LENGTH
                                          : QCOW2_V3_MIN_HEADER_LENGTH));
    FUZZ_CHECK(info.header_length <= info.cluster_size);
    FUZZ_CHECK(info.version == 3 || (info.incompatible_features == 0 &&
                                     info.refcount_order == 4));
    FUZZ_CHECK(info.backing_name_offset <= info.cluster_size);
    FUZZ_CHECK(strlen(info.backing_format) <= QCOW2_MAX_BACKING_FORMAT);
    extensions_end = info.backing_name_offset ? info.backing_name_offset
                                              : info.cluster_size;
    if (info.data_file_named) {
        FUZZ_CHECK(info.data_file_name_offset >= info.header_length + 8);
        FUZZ_CHECK(info.data_file_name_offset <= extensions_end);
        FUZZ_CHECK(info.data_file_name_length <=
                   extensions_end - info.data_file_name_offset);
    }
    if (qcow2_header_check_open(&info, &err) < 0) {
        FUZZ_CHECK(err.code == EPROTO || err.code == ENOTSUP ||
                   err.code == EFBIG);
        fuzz_check_message(err.message);
    } else {
        /* What the reader of the whole image relies on. */
        FUZZ_CHECK(info.refcount_order <= 6);
        FUZZ_CHECK(info.compression_type <= QCOW2_COMPRESSION_TYPE_ZSTD);
        FUZZ_CHECK(info.refcount_table_clusters > 0);
        FUZZ_CHECK(info.l1_size >= qcow2_l1_entries_needed(&info));
        FUZZ_CHECK((uint64_t)info.l1_size * 8 <= Q2S_MAX_L1_BYTES);
        FUZZ_CHECK(info.l1_table_offset % info.cluster_size == 0);
        FUZZ_CHECK(info.refcount_table_offset % info.cluster_size == 0);
        FUZZ_CHECK(info.l1_size == 0 ||
                   info.l1_table_offset + (uint64_t)info.l1_size * 8 <=
                       QCOW2_MAX_READ_END);
        FUZZ_CHECK(info.refcount_table_offset +
                       (uint64_t)info.refcount_table_clusters *
                           info.cluster_size <= QCOW2_MAX_READ_END);
    }
    if (qcow2_header_check_backing_name(&info, &err) < 0) {
        FUZZ_CHECK(err.code == ENAMETOOLONG);
        fuzz_check_message(err.message);
    } else if (info.backing_name_offset) {
        char name[QCOW2_MAX_BACKING_FILE_NAME + 1];

        FUZZ_CHECK(info.backing_name_length <= QCOW2_MAX_BACKING_FILE_NAME);
        FUZZ_CHECK(info.backing_name_offset + info.backing_name_length <=
                   info.cluster_size);
        qcow2_header_copy_name(data, size, info.backing_name_offset,
                               info.backing_name_length, name);
        FUZZ_CHECK(strlen(name) <= info.backing_name_length);
    }
}

static void check_references(const uint8_t *data, size_t size)
{
    static const char *const formats[] = {
        "qcow2", "qcow", "qed", "vmdk", "",
    };
    static int fd = -1;
    char path[64];

    if (fd < 0)
        fd = memfd_create("image", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    for (size_t done = 0; done < size; ) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);

        FUZZ_CHECK(n > 0);
        done += (size_t)n;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        for (int untrusted = 0; untrusted <= 1; untrusted++) {
            struct q2s_error err = { .code = 0 };
            int ret = q2s_check_image_references(path, formats[i],
                                                 untrusted, &err);

            FUZZ_CHECK(ret == 0 || ret == -1);
            if (ret < 0) {
                FUZZ_CHECK(err.code != 0);
                fuzz_check_message(err.message);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_header(data, size);
    check_references(data, size);
    return 0;
}
