/* Overlays as the public interface gives them: the backing file options
 * and their checks, an overlay from q2s_plan_build_delta() (changed
 * clusters as data, wiped ones as zero clusters, the rest left to the
 * backing file), a base larger than the input, and the dirty bitmap's
 * refusals.  The image is read back through q2s_pread() and parsed here
 * only for its L2 entries; the integration tests check it with qemu-img. */
#define _GNU_SOURCE
#include <endian.h>

#include "api_test.h"

#define CS 65536u

/* An input in memory whose reads are counted. */
struct disk {
    uint8_t *bytes;
    uint64_t size;
    int reads;
};

static int disk_read(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct disk *d = opaque;

    d->reads++;
    memcpy(buf, d->bytes + offset, count);
    return 0;
}

static struct q2s_source *disk_source(struct disk *d, uint64_t size,
                                      uint8_t fill)
{
    struct q2s_source *source = NULL;

    *d = (struct disk){ .size = size };
    d->bytes = malloc(size);
    assert_non_null(d->bytes);
    memset(d->bytes, fill, size);
    EXPECT_OK(q2s_source_from_callbacks(size, disk_read, NULL, NULL, d,
                                        &source, &error));
    return source;
}

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof v);
    return be64toh(v);
}

static struct q2s_options *overlay_options(void)
{
    struct q2s_options *options = q2s_options_new();

    assert_non_null(options);
    EXPECT_OK(q2s_options_set_backing_file(options, "base.img", "raw",
                                           &error));
    return options;
}

static void test_backing_file_options(void **state)
{
    struct q2s_options *options = q2s_options_new();
    char name[1100];

    (void)state;
    assert_null(q2s_options_get_backing_file(options));
    EXPECT_FAIL(EINVAL, q2s_options_set_backing_file(options, "b", NULL,
                                                     &error));
    EXPECT_FAIL(EINVAL, q2s_options_set_backing_file(options, "", "raw",
                                                     &error));
    EXPECT_FAIL(EINVAL, q2s_options_set_backing_file(
                            options, "b", "sixteen-bytes-xx", &error));
    memset(name, 'n', sizeof name);
    name[1024] = '\0';
    EXPECT_FAIL(EINVAL, q2s_options_set_backing_file(options, name, "raw",
                                                     &error));
    assert_null(q2s_options_get_backing_file(options));
    name[600] = '\0';
    EXPECT_OK(q2s_options_set_backing_file(options, name, "qcow2", &error));
    assert_string_equal(q2s_options_get_backing_format(options), "qcow2");
    /* 600 bytes do not fit a 512-byte header cluster. */
    EXPECT_OK(q2s_options_set_cluster_size(options, 512, &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "x", NULL, &error));
    EXPECT_OK(q2s_options_set_cluster_size(options, CS, &error));
    EXPECT_OK(q2s_options_set_data_file(options, "x", false, &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "x", NULL, &error));
    EXPECT_OK(q2s_options_set_data_file(options, NULL, false, &error));
    EXPECT_OK(q2s_options_set_backing_file(options, NULL, NULL, &error));
    assert_null(q2s_options_get_backing_file(options));
    assert_false(q2s_options_get_allow_shrink(options));
    q2s_options_set_allow_shrink(options, true);
    assert_true(q2s_options_get_allow_shrink(options));
    q2s_options_free(options);
}

/* Input = base, but cluster 1 rewritten and cluster 3 wiped: one data
 * cluster, one zero cluster, the rest unallocated. */
static void test_overlay_from_delta(void **state)
{
    struct disk input_disk, base_disk;
    struct q2s_source *input = disk_source(&input_disk, 8 * CS, 0x11);
    struct q2s_source *base = disk_source(&base_disk, 8 * CS, 0x11);
    struct q2s_options *options = overlay_options();
    struct q2s_plan *plan = NULL;
    uint8_t *image, *l2;
    uint64_t size, l1_offset, l2_offset;

    (void)state;
    memset(input_disk.bytes + CS, 0x22, 100);
    memset(input_disk.bytes + 3 * CS, 0, CS);
    EXPECT_OK(q2s_plan_build_delta(input, base, options, NULL, NULL, &plan,
                                   &error));
    assert_int_equal(q2s_plan_get_data_clusters(plan), 1);
    assert_int_equal(q2s_plan_get_zero_clusters(plan), 1);
    size = q2s_plan_get_image_size(plan);
    image = malloc(size);
    assert_non_null(image);
    EXPECT_OK(q2s_pread(plan, input, image, size, 0, &error));
    /* The header names the backing file: offset, then 8 bytes of name. */
    assert_int_equal(be64_at(image + 16) >> 32, 8);
    assert_memory_equal(image + be64_at(image + 8), "base.img", 8);
    l1_offset = be64_at(image + 40);
    l2_offset = be64_at(image + l1_offset) & ~(UINT64_C(1) << 63);
    l2 = image + l2_offset;
    assert_int_equal(be64_at(l2), 0);
    assert_int_equal(be64_at(l2 + 8) & (UINT64_C(1) << 63), UINT64_C(1) << 63);
    assert_memory_equal(image + (be64_at(l2 + 8) & ~(UINT64_C(1) << 63)),
                        input_disk.bytes + CS, CS);
    assert_int_equal(be64_at(l2 + 16), 0);
    assert_int_equal(be64_at(l2 + 24), 1);  /* the zero flag alone */
    assert_int_equal(be64_at(l2 + 32), 0);
    free(image);
    q2s_plan_free(plan);

    /* A base larger than the input: refused, unless allowed. */
    q2s_source_close(base);
    free(base_disk.bytes);
    base = disk_source(&base_disk, 9 * CS, 0x11);
    EXPECT_FAIL(EINVAL, q2s_plan_build_delta(input, base, options, NULL, NULL,
                                             &plan, &error));
    q2s_options_set_allow_shrink(options, true);
    EXPECT_OK(q2s_plan_build_delta(input, base, options, NULL, NULL, &plan,
                                   &error));
    assert_int_equal(q2s_plan_get_virtual_size(plan), 8 * CS);
    q2s_plan_free(plan);

    q2s_options_free(options);
    q2s_source_close(input);
    q2s_source_close(base);
    free(input_disk.bytes);
    free(base_disk.bytes);
}

/* Without a base, an overlay needs a dirty bitmap, which only NBD inputs
 * have: refused, without a read. */
static void test_bitmap_refusals(void **state)
{
    struct disk input_disk;
    struct q2s_source *input = disk_source(&input_disk, 4 * CS, 0x11);
    struct q2s_options *options = overlay_options();
    struct q2s_source_options *source_options = q2s_source_options_new();
    struct q2s_source *file = NULL;
    struct q2s_plan *plan = NULL;
    FILE *f;

    (void)state;
    EXPECT_FAIL(EINVAL, q2s_plan_build(input, options, NULL, NULL, &plan,
                                       &error));
    assert_int_equal(input_disk.reads, 0);
    EXPECT_FAIL(EINVAL, q2s_source_options_set_dirty_bitmap(source_options,
                                                            "", &error));
    EXPECT_OK(q2s_source_options_set_dirty_bitmap(source_options, "b0",
                                                  &error));
    assert_string_equal(q2s_source_options_get_dirty_bitmap(source_options),
                        "b0");
    f = fopen(in_scratch("disk.raw"), "w");
    assert_non_null(f);
    fclose(f);
    EXPECT_FAIL(EINVAL, q2s_source_open(in_scratch("disk.raw"),
                                        source_options, &file, &error));
    assert_null(file);
    EXPECT_OK(q2s_source_options_set_dirty_bitmap(source_options, NULL,
                                                  &error));
    assert_null(q2s_source_options_get_dirty_bitmap(source_options));
    q2s_source_options_free(source_options);
    q2s_options_free(options);
    q2s_source_close(input);
    free(input_disk.bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backing_file_options),
        cmocka_unit_test(test_overlay_from_delta),
        cmocka_unit_test(test_bitmap_refusals),
    };

    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
