/* The files an image names: crafted qcow2, qcow, qed and vmdk headers in
 * a temporary directory, checked in both modes. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "export/open/image_refs.h"

static char dir[] = "/tmp/q2s-refs.XXXXXX";

/* dir/name, in a static buffer: one at a time. */
static const char *at(const char *name)
{
    static char paths[4][4096];
    static int next;
    char *path = paths[next++ % 4];

    snprintf(path, sizeof paths[0], "%s/%s", dir, name);
    return path;
}

static void write_file(const char *name, const void *bytes, size_t length)
{
    FILE *f = fopen(at(name), "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, length, f), length);
    assert_int_equal(fclose(f), 0);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* What a crafted qcow2 header holds ("Header" and "Header extensions" in
 * docs/interop/qcow2.rst). */
struct qcow2_spec {
    uint32_t version;            /* 2 or 3 */
    const char *backing;         /* NULL: none */
    const char *backing_format;  /* NULL: no extension */
    const char *data_file;       /* NULL: no extension */
    bool data_file_bit;          /* incompatible feature bit 2 */
    /* Lies, when non-zero: */
    uint64_t backing_offset;
    uint32_t backing_size;
    uint32_t extension_length;   /* of the data file extension */
    size_t file_size;            /* default: one 64 KiB cluster */
};

#define CLUSTER 65536

static void write_qcow2(const char *name, const struct qcow2_spec *spec)
{
    static uint8_t buf[CLUSTER];
    uint32_t header_length = spec->version == 2 ? 72 : 104;
    size_t pos = header_length;

    memset(buf, 0, sizeof buf);
    memcpy(buf, "QFI\xfb", 4);
    put_be32(buf + 4, spec->version);
    put_be32(buf + 20, 16);                      /* cluster_bits */
    put_be64(buf + 24, 1 << 20);                 /* size */
    if (spec->version == 3) {
        put_be64(buf + 72, spec->data_file_bit ? 1u << 2 : 0);
        put_be32(buf + 96, 4);                   /* refcount_order */
        put_be32(buf + 100, header_length);
    }
    if (spec->backing_format) {
        size_t length = strlen(spec->backing_format);

        put_be32(buf + pos, 0xe2792aca);
        put_be32(buf + pos + 4, (uint32_t)length);
        memcpy(buf + pos + 8, spec->backing_format, length);
        pos += 8 + ((length + 7) & ~(size_t)7);
    }
    if (spec->data_file) {
        size_t length = strlen(spec->data_file);

        put_be32(buf + pos, 0x44415441);
        put_be32(buf + pos + 4, spec->extension_length
                                    ? spec->extension_length
                                    : (uint32_t)length);
        memcpy(buf + pos + 8, spec->data_file, length);
        pos += 8 + ((length + 7) & ~(size_t)7);
    }
    pos += 8;                                    /* end of extensions */
    if (spec->backing) {
        uint64_t offset = spec->backing_offset ? spec->backing_offset : pos;
        size_t length = strlen(spec->backing);

        put_be64(buf + 8, offset);
        put_be32(buf + 16, spec->backing_size ? spec->backing_size
                                              : (uint32_t)length);
        if (offset + length <= sizeof buf)
            memcpy(buf + offset, spec->backing, length);
    }
    write_file(name, buf, spec->file_size ? spec->file_size : sizeof buf);
}

static void make_fifo(const char *name)
{
    assert_int_equal(mkfifo(at(name), 0600), 0);
}

static void make_regular(const char *name)
{
    write_file(name, "some bytes", 10);
}

/* The outcome of checking dir/name: 0, or -1 with a message that
 * contains want (one line). */
static void expect(const char *name, const char *format, bool untrusted,
                   int want_ret, const char *want)
{
    struct q2s_error err = { .code = 0 };
    int ret = q2s_check_image_references(at(name), format, untrusted, &err);

    if (ret != want_ret || (want && !strstr(err.message, want)))
        fail_msg("%s (%s, %s): got %d \"%s\", want %d \"%s\"", name, format,
                 untrusted ? "untrusted" : "trusted", ret, err.message,
                 want_ret, want ? want : "");
    if (ret < 0) {
        assert_null(strchr(err.message, '\n'));
        assert_true(strlen(err.message) > 0);
    }
}

static void allowed(const char *name, const char *format, bool untrusted)
{
    expect(name, format, untrusted, 0, NULL);
}

static void refused(const char *name, const char *format, bool untrusted,
                    const char *want)
{
    expect(name, format, untrusted, -1, want);
}

static void test_qcow2_without_references(void **state)
{
    (void)state;
    write_qcow2("plain3.qcow2", &(struct qcow2_spec){ .version = 3 });
    write_qcow2("plain2.qcow2", &(struct qcow2_spec){ .version = 2 });
    allowed("plain3.qcow2", "qcow2", false);
    allowed("plain3.qcow2", "qcow2", true);
    allowed("plain2.qcow2", "qcow2", true);
}

static void test_qcow2_backing_file(void **state)
{
    (void)state;
    make_regular("base.raw");
    write_qcow2("over2.qcow2", &(struct qcow2_spec){
        .version = 2, .backing = "base.raw", .backing_format = "raw" });
    write_qcow2("over3.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "base.raw", .backing_format = "raw" });
    allowed("over2.qcow2", "qcow2", false);
    allowed("over3.qcow2", "qcow2", false);
    refused("over2.qcow2", "qcow2", true,
            "untrusted: the image names a backing file \"base.raw\"");
    refused("over3.qcow2", "qcow2", true, "backing file \"base.raw\"");
    /* One that does not exist: QEMU fails to open it, nothing leaks. */
    write_qcow2("missing.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "no-such-file", .backing_format = "raw" });
    allowed("missing.qcow2", "qcow2", false);
    refused("missing.qcow2", "qcow2", true, "\"no-such-file\"");
}

static void test_qcow2_backing_fifo_and_device(void **state)
{
    (void)state;
    make_fifo("base.fifo");
    /* Relative to the image's directory, not to ours. */
    write_qcow2("on-fifo.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "base.fifo", .backing_format = "raw" });
    refused("on-fifo.qcow2", "qcow2", false,
            "its backing file \"base.fifo\" is a FIFO; refusing, as QEMU "
            "would block opening it");
    write_qcow2("on-null.qcow2", &(struct qcow2_spec){
        .version = 2, .backing = "/dev/null" });
    refused("on-null.qcow2", "qcow2", false,
            "\"/dev/null\" is a character device");
    /* The file: protocol is a file all the same. */
    write_qcow2("on-file-fifo.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "file:/dev/null" });
    refused("on-file-fifo.qcow2", "qcow2", false, "character device");
}

static void test_qcow2_data_file(void **state)
{
    (void)state;
    make_regular("data.raw");
    make_fifo("data.fifo");
    write_qcow2("data.qcow2", &(struct qcow2_spec){
        .version = 3, .data_file = at("data.raw"), .data_file_bit = true });
    allowed("data.qcow2", "qcow2", false);
    refused("data.qcow2", "qcow2", true,
            "untrusted: the image names a data file");
    write_qcow2("data-fifo.qcow2", &(struct qcow2_spec){
        .version = 3, .data_file = at("data.fifo"), .data_file_bit = true });
    refused("data-fifo.qcow2", "qcow2", false, "is a FIFO");
    /* Relative: QEMU (qcow2_do_open) hands the name to bdrv_open_child()
     * as it is, so the current directory; the image's is checked too. */
    write_qcow2("data-rel-fifo.qcow2", &(struct qcow2_spec){
        .version = 3, .data_file = "data.fifo", .data_file_bit = true });
    refused("data-rel-fifo.qcow2", "qcow2", false, "is a FIFO");
    /* Without the feature bit QEMU ignores the name. */
    write_qcow2("data-no-bit.qcow2", &(struct qcow2_spec){
        .version = 3, .data_file = at("data.fifo") });
    allowed("data-no-bit.qcow2", "qcow2", false);
    allowed("data-no-bit.qcow2", "qcow2", true);
    /* The bit without a name: QEMU wants a data-file option. */
    write_qcow2("data-no-name.qcow2", &(struct qcow2_spec){
        .version = 3, .data_file_bit = true });
    allowed("data-no-name.qcow2", "qcow2", false);
    refused("data-no-name.qcow2", "qcow2", true, "data file");
}

static void test_qcow2_lying_header(void **state)
{
    (void)state;
    make_fifo("lie.fifo");
    /* A name longer than QEMU reads (1023 bytes at most). */
    write_qcow2("long-name.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "lie.fifo", .backing_size = 2000 });
    refused("long-name.qcow2", "qcow2", false, "backing file name");
    refused("long-name.qcow2", "qcow2", true, "backing file name");
    /* A name that runs past the first cluster. */
    write_qcow2("past-cluster.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "lie.fifo", .backing_offset = CLUSTER - 4 });
    refused("past-cluster.qcow2", "qcow2", false, "backing file name");
    /* An offset past the cluster: QEMU refuses the image as a whole. */
    write_qcow2("past-offset.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "lie.fifo", .backing_offset = UINT64_MAX });
    allowed("past-offset.qcow2", "qcow2", false);
    /* A name past the end of the file reads as zeros: no backing file. */
    write_qcow2("past-eof.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "lie.fifo", .backing_offset = 4096,
        .file_size = 1024 });
    allowed("past-eof.qcow2", "qcow2", true);
    /* A data file extension longer than the header area: QEMU refuses
     * ("Header extension too large") before opening anything. */
    write_qcow2("ext-too-long.qcow2", &(struct qcow2_spec){
        .version = 3, .data_file = "lie.fifo", .data_file_bit = true,
        .extension_length = 0xfffffff0 });
    allowed("ext-too-long.qcow2", "qcow2", false);
    /* A file cut in the middle of its header. */
    write_qcow2("short.qcow2", &(struct qcow2_spec){
        .version = 3, .file_size = 10 });
    allowed("short.qcow2", "qcow2", true);
}

static void test_names_with_control_characters(void **state)
{
    struct q2s_error err = { .code = 0 };

    (void)state;
    write_qcow2("evil.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "a\nb\033[31m\"c" });
    assert_int_equal(q2s_check_image_references(at("evil.qcow2"), "qcow2",
                                                true, &err), -1);
    assert_null(strchr(err.message, '\n'));
    assert_null(strchr(err.message, '\033'));
    assert_non_null(strstr(err.message, "\"a\\nb\\x1b[31m\\\"c\""));
}

static void test_protocol_names(void **state)
{
    (void)state;
    write_qcow2("nbd.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "nbd:localhost:10809", .backing_format = "raw" });
    allowed("nbd.qcow2", "qcow2", false);
    refused("nbd.qcow2", "qcow2", true, "\"nbd:localhost:10809\"");
    write_qcow2("json.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "json:{\"driver\":\"null-co\"}" });
    allowed("json.qcow2", "qcow2", false);
    refused("json.qcow2", "qcow2", true, "backing file");
}

static void test_backing_chain(void **state)
{
    (void)state;
    make_fifo("chain.fifo");
    make_regular("chain.raw");
    /* top -> mid (format recorded) -> bottom (format probed) -> FIFO */
    write_qcow2("chain-bottom.qcow2", &(struct qcow2_spec){
        .version = 2, .backing = "chain.fifo" });
    write_qcow2("chain-mid.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "chain-bottom.qcow2" });
    write_qcow2("chain-top.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "chain-mid.qcow2", .backing_format = "qcow2" });
    refused("chain-top.qcow2", "qcow2", false, "\"chain.fifo\" is a FIFO");
    refused("chain-top.qcow2", "qcow2", true, "\"chain-mid.qcow2\"");
    /* The same chain ending in a regular file. */
    write_qcow2("good-bottom.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "chain.raw", .backing_format = "raw" });
    write_qcow2("good-top.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "good-bottom.qcow2" });
    allowed("good-top.qcow2", "qcow2", false);
    /* A recorded format that does not match: QEMU refuses to open it. */
    write_qcow2("wrong-format.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "chain-bottom.qcow2",
        .backing_format = "qed" });
    allowed("wrong-format.qcow2", "qcow2", false);
}

static void test_backing_loop_and_depth(void **state)
{
    char name[64], next[64];

    (void)state;
    write_qcow2("loop-a.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "loop-b.qcow2", .backing_format = "qcow2" });
    write_qcow2("loop-b.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "loop-a.qcow2", .backing_format = "qcow2" });
    refused("loop-a.qcow2", "qcow2", false, "loops back");
    write_qcow2("self.qcow2", &(struct qcow2_spec){
        .version = 3, .backing = "self.qcow2" });
    refused("self.qcow2", "qcow2", false, "loops back");

    /* 100 images: deeper than any real chain. */
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "deep%d.qcow2", i);
        snprintf(next, sizeof next, "deep%d.qcow2", i + 1);
        write_qcow2(name, &(struct qcow2_spec){
            .version = 3, .backing = i < 99 ? next : NULL,
            .backing_format = "qcow2" });
    }
    refused("deep0.qcow2", "qcow2", false, "backing chain");
    allowed("deep50.qcow2", "qcow2", false);
}

static void write_qcow1(const char *name, const char *backing)
{
    uint8_t buf[512] = { 0 };

    memcpy(buf, "QFI\xfb", 4);
    put_be32(buf + 4, 1);
    put_be64(buf + 8, 64);
    put_be32(buf + 16, (uint32_t)strlen(backing));
    memcpy(buf + 64, backing, strlen(backing));
    write_file(name, buf, sizeof buf);
}

static void test_qcow1(void **state)
{
    (void)state;
    make_fifo("q1.fifo");
    make_regular("q1.raw");
    write_qcow1("q1-fifo.qcow", "q1.fifo");
    write_qcow1("q1-raw.qcow", "q1.raw");
    refused("q1-fifo.qcow", "qcow", false, "is a FIFO");
    allowed("q1-raw.qcow", "qcow", false);
    refused("q1-raw.qcow", "qcow", true, "backing file \"q1.raw\"");
}

/* QEDHeader in QEMU's block/qed.h, little-endian. */
static void write_qed(const char *name, const char *backing, bool raw,
                      uint32_t offset, uint32_t size)
{
    static uint8_t buf[4096];

    memset(buf, 0, sizeof buf);
    memcpy(buf, "QED\0", 4);
    put_le32(buf + 4, 4096);     /* cluster_size */
    put_le32(buf + 8, 1);        /* table_size */
    put_le32(buf + 12, 1);       /* header_size, in clusters */
    if (backing) {
        put_le64(buf + 16, 1 | (raw ? 4 : 0));
        put_le32(buf + 56, offset ? offset : 64);
        put_le32(buf + 60, size ? size : (uint32_t)strlen(backing));
        memcpy(buf + 64, backing, strlen(backing));
    }
    write_file(name, buf, sizeof buf);
}

static void test_qed(void **state)
{
    (void)state;
    make_fifo("qed.fifo");
    make_regular("qed.raw");
    write_qed("qed-plain.qed", NULL, false, 0, 0);
    write_qed("qed-fifo.qed", "qed.fifo", true, 0, 0);
    write_qed("qed-raw.qed", "qed.raw", true, 0, 0);
    write_qed("qed-outside.qed", "qed.fifo", true, 4090, 0);
    allowed("qed-plain.qed", "qed", true);
    refused("qed-fifo.qed", "qed", false, "is a FIFO");
    allowed("qed-raw.qed", "qed", false);
    refused("qed-raw.qed", "qed", true, "backing file \"qed.raw\"");
    refused("qed-outside.qed", "qed", false, "backing file name");
}

/* A VMDK4 sparse header ("KDMV") with a descriptor at sector 1. */
static void write_kdmv(const char *name, uint64_t capacity,
                       const char *descriptor)
{
    static uint8_t buf[16384];

    memset(buf, 0, sizeof buf);
    memcpy(buf, "KDMV", 4);
    put_le32(buf + 4, 1);              /* version */
    put_le64(buf + 12, capacity);
    put_le64(buf + 20, 128);           /* granularity */
    put_le64(buf + 28, 1);             /* desc_offset, in sectors */
    put_le64(buf + 36, 20);            /* desc_size */
    memcpy(buf + 512, descriptor, strlen(descriptor));
    write_file(name, buf, sizeof buf);
}

static void test_vmdk(void **state)
{
    (void)state;
    make_fifo("vm.fifo");
    make_regular("vm-flat.raw");
    make_regular("vm-parent.vmdk");
    write_file("desc-fifo.vmdk",
               "# Disk DescriptorFile\nversion=1\ncreateType=\"twoGbMaxExtentFlat\"\n"
               "RW 2048 FLAT \"vm-flat.raw\" 0\nRW 2048 FLAT \"vm.fifo\" 0\n",
               strlen("# Disk DescriptorFile\nversion=1\ncreateType=\"twoGbMaxExtentFlat\"\n"
                      "RW 2048 FLAT \"vm-flat.raw\" 0\nRW 2048 FLAT \"vm.fifo\" 0\n"));
    refused("desc-fifo.vmdk", "vmdk", false, "extent \"vm.fifo\" is a FIFO");
    write_file("desc-good.vmdk",
               "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
               "RW 2048 FLAT \"vm-flat.raw\" 0\n",
               strlen("# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
                      "RW 2048 FLAT \"vm-flat.raw\" 0\n"));
    allowed("desc-good.vmdk", "vmdk", false);
    refused("desc-good.vmdk", "vmdk", true, "untrusted: ");
    /* A device as a sparse extent, across lines as sscanf() reads it. */
    write_file("desc-null.vmdk", "RW\n\n 9\n SPARSE \"/dev/null\"\n",
               strlen("RW\n\n 9\n SPARSE \"/dev/null\"\n"));
    refused("desc-null.vmdk", "vmdk", false, "character device");

    /* Monolithic sparse: the file is its own extent; only the parent. */
    write_kdmv("sparse.vmdk", 2048, "# Disk DescriptorFile\nversion=1\n"
               "RW 2048 SPARSE \"vm.fifo\"\n");
    allowed("sparse.vmdk", "vmdk", true);
    write_kdmv("child-fifo.vmdk", 2048, "# Disk DescriptorFile\n"
               "parentFileNameHint=\"vm.fifo\"\n");
    refused("child-fifo.vmdk", "vmdk", false, "\"vm.fifo\" is a FIFO");
    write_kdmv("child.vmdk", 2048, "parentFileNameHint=\"vm-parent.vmdk\"\n");
    refused("child.vmdk", "vmdk", true,
            "untrusted: the image names a parent file \"vm-parent.vmdk\"");
    /* Capacity 0 with a descriptor: QEMU reads it as a descriptor file
     * (vmdk_open_vmdk4), extents and all. */
    write_kdmv("embedded.vmdk", 0, "# Disk DescriptorFile\n"
               "RW 2048 FLAT \"vm.fifo\" 0\n");
    refused("embedded.vmdk", "vmdk", false, "is a FIFO");
    refused("embedded.vmdk", "vmdk", true, "untrusted: ");
}

static void test_formats(void **state)
{
    (void)state;
    make_regular("any.img");
    /* Formats that cannot name another file in QEMU. */
    allowed("any.img", "vhdx", true);
    allowed("any.img", "vpc", true);
    allowed("any.img", "vdi", true);
    allowed("any.img", "parallels", true);
    /* Others are not inspected. */
    refused("any.img", "luks", true,
            "untrusted: format luks is not inspected");
    allowed("any.img", "luks", false);
    /* The image itself must be a file or a block device. */
    make_fifo("top.fifo");
    refused("top.fifo", "qcow2", false, "not a regular file");
    refused("no-such.qcow2", "qcow2", false, "No such file or directory");
}

static int remove_dir(void **state)
{
    char command[128];

    (void)state;
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    return system(command) == 0 ? 0 : -1;
}

static int make_dir(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qcow2_without_references),
        cmocka_unit_test(test_qcow2_backing_file),
        cmocka_unit_test(test_qcow2_backing_fifo_and_device),
        cmocka_unit_test(test_qcow2_data_file),
        cmocka_unit_test(test_qcow2_lying_header),
        cmocka_unit_test(test_names_with_control_characters),
        cmocka_unit_test(test_protocol_names),
        cmocka_unit_test(test_backing_chain),
        cmocka_unit_test(test_backing_loop_and_depth),
        cmocka_unit_test(test_qcow1),
        cmocka_unit_test(test_qed),
        cmocka_unit_test(test_vmdk),
        cmocka_unit_test(test_formats),
    };

    return cmocka_run_group_tests_name("image_refs", tests, make_dir,
                                       remove_dir);
}
