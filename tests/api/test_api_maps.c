/* Allocation maps as the public interface gives them: building a map,
 * parsing the JSON of qemu-img map, rbd diff and qemu-img info, a map on a
 * source (never read outside it, zeros there), the XAPI fork's input map
 * (allocated unread) and deltas against a base, with and without maps.
 * Inputs are the caller's callbacks, which check where they are read. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <qcow2-to-stdout.h>

#include "api_test.h"

#define CS 65536u

/* An input in memory that may only be read inside the extents of
 * allowed (all of it when allowed_count is 0). */
struct disk {
    uint8_t *bytes;
    uint64_t size;
    uint64_t allowed[8][2];  /* [start, end) */
    size_t allowed_count;
    int reads;
    bool forbid_reads;
    struct q2s_source *cancel;  /* cancelled by the first read if set */
};

static int disk_read(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct disk *d = opaque;
    bool inside = d->allowed_count == 0;

    d->reads++;
    for (size_t i = 0; i < d->allowed_count; i++)
        if (offset >= d->allowed[i][0] && offset + count <= d->allowed[i][1])
            inside = true;
    if (!inside || d->forbid_reads || offset + count > d->size) {
        print_error("read of %zu bytes at %llu outside the map\n", count,
                    (unsigned long long)offset);
        fail();
    }
    memcpy(buf, d->bytes + offset, count);
    if (d->cancel)
        q2s_source_cancel(d->cancel);
    return 0;
}

/* Bytes that are never zero, different at each offset and for each seed. */
static void disk_init(struct disk *d, uint64_t size, uint8_t seed)
{
    *d = (struct disk){ .size = size };
    d->bytes = malloc(size);
    assert_non_null(d->bytes);
    for (uint64_t i = 0; i < size; i++)
        d->bytes[i] = (uint8_t)(1 + (i * 7 + i / 4093 + seed) % 251);
}

static struct q2s_source *disk_source(struct disk *d)
{
    struct q2s_source *source = NULL;

    EXPECT_OK(q2s_source_from_callbacks(d->size, disk_read, NULL, NULL, d,
                                        &source, &error));
    return source;
}

static void allow(struct disk *d, uint64_t start, uint64_t end)
{
    d->allowed[d->allowed_count][0] = start;
    d->allowed[d->allowed_count][1] = end;
    d->allowed_count++;
}

/* A test's input, its source and options (64 KiB clusters, uncompressed). */
struct fixture {
    struct disk d;
    struct q2s_source *source;
    struct q2s_options *options;
};

static void fixture_open(struct fixture *f, uint64_t size, uint8_t seed)
{
    f->options = make_options(CS, Q2S_COMPRESSION_NONE, 0);
    disk_init(&f->d, size, seed);
    f->source = disk_source(&f->d);
}

static void fixture_close(struct fixture *f)
{
    q2s_source_close(f->source);
    q2s_options_free(f->options);
    free(f->d.bytes);
}

static struct q2s_plan *build(struct fixture *f)
{
    struct q2s_plan *plan = NULL;

    EXPECT_OK(q2s_plan_build(f->source, f->options, NULL, NULL, &plan,
                             &error));
    return plan;
}

static struct q2s_map *map_of(const uint64_t (*extents)[2], size_t count)
{
    struct q2s_map *map = q2s_map_new();

    assert_non_null(map);
    for (size_t i = 0; i < count; i++)
        EXPECT_OK(q2s_map_add(map, extents[i][0], extents[i][1], &error));
    assert_int_equal(q2s_map_get_extent_count(map), count);
    return map;
}

static uint64_t be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* The guest disk of a plan: its bytes in *guest (virtual size), and how
 * many clusters its L2 tables allocate.  Uncompressed images only. */
struct guest {
    uint8_t *bytes;
    uint64_t size;
    uint64_t allocated;
    bool cluster_allocated[64];
};

#define OFFSET_MASK UINT64_C(0x00fffffffffffe00)

static void read_guest(const struct q2s_plan *plan, struct q2s_source *source,
                       struct guest *g)
{
    uint64_t image_size = q2s_plan_get_image_size(plan);
    uint8_t *s = malloc(image_size);
    uint64_t l1_offset, l1_entries, per_l2 = CS / 8;

    assert_non_null(s);
    EXPECT_OK(q2s_pread(plan, source, s, image_size, 0, &error));
    assert_int_equal(be(s + 20, 4), 16);  /* 64 KiB clusters */
    g->size = be(s + 24, 8);
    assert_int_equal(g->size, q2s_plan_get_virtual_size(plan));
    l1_entries = be(s + 36, 4);
    l1_offset = be(s + 40, 8);
    g->bytes = calloc(1, g->size);
    g->allocated = 0;
    memset(g->cluster_allocated, 0, sizeof g->cluster_allocated);
    assert_non_null(g->bytes);
    for (uint64_t c = 0; c * CS < g->size; c++) {
        uint64_t l2, entry, length;

        assert_true(c / per_l2 < l1_entries);
        l2 = be(s + l1_offset + 8 * (c / per_l2), 8) & OFFSET_MASK;
        if (!l2)
            continue;
        entry = be(s + l2 + 8 * (c % per_l2), 8);
        if (!(entry & OFFSET_MASK) && !(entry & 1))
            continue;
        g->allocated++;
        if (c < 64)
            g->cluster_allocated[c] = true;
        length = g->size - c * CS < CS ? g->size - c * CS : CS;
        if (entry & OFFSET_MASK) {
            assert_true((entry & OFFSET_MASK) + length <= image_size);
            memcpy(g->bytes + c * CS, s + (entry & OFFSET_MASK), length);
        }
    }
    assert_int_equal(g->allocated, q2s_plan_get_data_clusters(plan));
    free(s);
}

static void test_map_new_add(void **state)
{
    struct q2s_map *map = q2s_map_new();

    (void)state;
    assert_non_null(map);
    assert_int_equal(q2s_map_get_extent_count(map), 0);
    EXPECT_OK(q2s_map_add(map, 0, 1, &error));
    EXPECT_OK(q2s_map_add(map, 0, 1, &error));  /* overlaps are kept */
    EXPECT_OK(q2s_map_add(map, UINT64_MAX - 10, 10, &error));
    EXPECT_FAIL(EINVAL, q2s_map_add(map, 4096, 0, &error));
    EXPECT_FAIL(EINVAL, q2s_map_add(map, UINT64_MAX - 10, 11, &error));
    EXPECT_FAIL(EINVAL, q2s_map_add(map, 1, UINT64_MAX, &error));
    assert_int_equal(q2s_map_add(map, 7, 0, NULL), -1);
    assert_int_equal(q2s_map_get_extent_count(map), 3);
    q2s_map_free(map);
    q2s_map_free(NULL);
}

static struct q2s_map *parse_map(const char *json)
{
    struct q2s_map *map = NULL;

    EXPECT_OK(q2s_map_from_json(json, strlen(json), &map, &error));
    assert_non_null(map);
    return map;
}

static void test_map_from_json(void **state)
{
    static const char qemu_img[] =
        "[{ \"start\": 0, \"length\": 65536, \"depth\": 0, \"present\": true,"
        " \"zero\": false, \"data\": true, \"offset\": 327680},\n"
        " { \"start\": 65536, \"length\": 131072, \"depth\": 0, \"present\":"
        " false, \"zero\": true, \"data\": false},\n"
        " { \"start\": 196608, \"length\": 512, \"depth\": 0, \"present\":"
        " true, \"zero\": false, \"data\": true, \"offset\": 393216}]\n";
    static const char rbd[] =
        "[{\"offset\":0,\"length\":4194304,\"exists\":\"true\"},"
        "{\"offset\":4194304,\"length\":4194304,\"exists\":\"false\"},"
        "{\"offset\":8388608,\"length\":4096,\"exists\":\"true\"},"
        "{\"offset\":9388608,\"length\":4096,\"exists\":true}]";
    static const char *const bad[] = {
        "[{\"start\": 0, \"length\": 512, \"data\": true},"
        " {\"start\": 512, \"length\": 512}]",
        "[{\"start\": 0, \"length\": 512, \"data\": true},"
        " {\"offset\": 512, \"length\": 512, \"exists\": \"true\"}]",
        "[{\"start\": 0, \"length\": -1, \"data\": true}]",
    };
    static const char *const bad_where[] = { "element 1", "element 1",
                                             "element 0" };
    struct q2s_map *map;

    (void)state;
    map = parse_map(qemu_img);
    assert_int_equal(q2s_map_get_extent_count(map), 2);
    q2s_map_free(map);
    map = parse_map(rbd);
    assert_int_equal(q2s_map_get_extent_count(map), 3);
    q2s_map_free(map);
    map = parse_map(" [ ] ");
    assert_int_equal(q2s_map_get_extent_count(map), 0);
    q2s_map_free(map);

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct q2s_error *error = NULL;

        map = (struct q2s_map *)&map;  /* must become NULL */
        assert_int_equal(q2s_map_from_json(bad[i], strlen(bad[i]), &map,
                                           &error), -1);
        assert_null(map);
        assert_non_null(error);
        assert_int_equal(q2s_error_code(error), EPROTO);
        if (!strstr(q2s_error_message(error), bad_where[i])) {
            print_error("'%s' does not name %s\n", q2s_error_message(error),
                        bad_where[i]);
            fail();
        }
        q2s_error_free(error);
    }
    EXPECT_FAIL(EPROTO, q2s_map_from_json("{}", 2, &map, &error));
    EXPECT_FAIL(EPROTO, q2s_map_from_json("", 0, &map, &error));
    /* The length counts, not a terminating NUL. */
    EXPECT_FAIL(EPROTO, q2s_map_from_json("[]", 1, &map, &error));
}

static void test_image_info_from_json(void **state)
{
    static const char info[] =
        "{\"virtual-size\": 10737418240, \"filename\": \"a.qcow2\","
        " \"cluster-size\": 65536, \"format\": \"qcow2\","
        " \"format-specific\": {\"type\": \"qcow2\", \"data\":"
        " {\"compat\": \"1.1\", \"refcount-bits\": 16}},"
        " \"actual-size\": 200704, \"dirty-flag\": false}";
    static const char no_cluster[] = "{\"virtual-size\": 1048576}";
    static const char bad_size[] = "{\"virtual-size\": \"1M\", "
                                   "\"cluster-size\": 65536}";
    uint64_t virtual_size = 0;
    uint32_t cluster_size = 0;

    (void)state;
    EXPECT_OK(q2s_image_info_from_json(info, strlen(info), &virtual_size,
                                       &cluster_size, &error));
    assert_int_equal(virtual_size, UINT64_C(10737418240));
    assert_int_equal(cluster_size, 65536);
    EXPECT_FAIL(EPROTO, q2s_image_info_from_json(
                            no_cluster, strlen(no_cluster), &virtual_size,
                            &cluster_size, &error));
    EXPECT_FAIL(EPROTO, q2s_image_info_from_json(
                            bad_size, strlen(bad_size), &virtual_size,
                            &cluster_size, &error));
    EXPECT_FAIL(EPROTO, q2s_image_info_from_json("[1]", 3, &virtual_size,
                                                 &cluster_size, &error));
}

/* A map on a source: the callback is read only inside the map, the image
 * has zeros outside it and the input's bytes inside; a map past the end
 * is refused; NULL removes the map. */
static void test_source_set_map(void **state)
{
    /* Out of order, overlapping, not on cluster boundaries. */
    static const uint64_t extents[][2] = {
        { MiB + 3, 70000 },
        { 100000, 5000 },
        { MiB + 50000, 100000 },
        { 3 * MiB, 1000 },
    };
    struct q2s_map *map = map_of(extents, 4), *too_far;
    struct q2s_plan *plan = NULL;
    struct fixture f;
    struct guest g;
    uint8_t *image, *again;

    (void)state;
    fixture_open(&f, 3 * MiB + 1000, 1);
    allow(&f.d, 100000, 105000);
    allow(&f.d, MiB + 3, MiB + 150000);
    allow(&f.d, 3 * MiB, 3 * MiB + 1000);
    EXPECT_OK(q2s_source_set_map(f.source, map, &error));
    /* The source keeps its own copy. */
    q2s_map_free(map);

    too_far = q2s_map_new();
    EXPECT_OK(q2s_map_add(too_far, 3 * MiB, 1001, &error));
    EXPECT_FAIL(EINVAL, q2s_source_set_map(f.source, too_far, &error));
    q2s_map_free(too_far);

    plan = build(&f);
    assert_true(f.d.reads > 0);
    /* Clusters 1, 16, 17, 18 and 48. */
    assert_int_equal(q2s_plan_get_data_clusters(plan), 5);
    read_guest(plan, f.source, &g);
    for (uint64_t i = 0; i < f.d.size; i++) {
        bool inside = (i >= 100000 && i < 105000) ||
                      (i >= MiB + 3 && i < MiB + 150000) || i >= 3 * MiB;
        uint8_t expected = inside ? f.d.bytes[i] : 0;

        if (g.bytes[i] != expected) {
            print_error("guest byte %llu is %u, not %u\n",
                        (unsigned long long)i, g.bytes[i], expected);
            fail();
        }
    }
    free(g.bytes);
    /* q2s_render writes what q2s_pread gives. */
    image = malloc(q2s_plan_get_image_size(plan));
    again = malloc(q2s_plan_get_image_size(plan));
    assert_true(image && again);
    EXPECT_OK(render_pipe(plan, f.source, image, &error));
    EXPECT_OK(q2s_pread(plan, f.source, again, q2s_plan_get_image_size(plan),
                        0, &error));
    assert_memory_equal(image, again, q2s_plan_get_image_size(plan));
    free(image);
    free(again);
    q2s_plan_free(plan);

    /* Without the map, all of it is read and is in the image. */
    EXPECT_OK(q2s_source_set_map(f.source, NULL, &error));
    f.d.allowed_count = 0;
    plan = build(&f);
    assert_int_equal(q2s_plan_get_data_clusters(plan), 49);
    read_guest(plan, f.source, &g);
    assert_memory_equal(g.bytes, f.d.bytes, f.d.size);
    free(g.bytes);
    q2s_plan_free(plan);
    fixture_close(&f);
}

/* The fork's input map: the virtual size is the one given, the clusters
 * the map touches are allocated without a read in pass 1, and the image
 * holds their bytes. */
static void test_options_set_input_map(void **state)
{
    static const uint64_t extents[][2] = {
        { 8 * CS, CS },
        { CS, 2 * CS },
    };
    const uint64_t virtual_size = 15 * CS;
    struct q2s_map *map = map_of(extents, 2), *too_far;
    struct q2s_plan *plan = NULL;
    struct fixture f;
    struct guest g;

    (void)state;
    fixture_open(&f, MiB, 2);
    EXPECT_OK(q2s_options_set_input_map(f.options, map, virtual_size,
                                        &error));
    q2s_map_free(map);

    /* Past the virtual size: refused, the map before kept. */
    too_far = q2s_map_new();
    EXPECT_OK(q2s_map_add(too_far, 14 * CS, CS + 1, &error));
    EXPECT_FAIL(EINVAL, q2s_options_set_input_map(f.options, too_far,
                                                  virtual_size, &error));
    q2s_map_free(too_far);

    f.d.forbid_reads = true;
    plan = build(&f);
    assert_int_equal(f.d.reads, 0);
    assert_int_equal(q2s_plan_get_virtual_size(plan), virtual_size);
    assert_int_equal(q2s_plan_get_data_clusters(plan), 3);
    f.d.forbid_reads = false;
    allow(&f.d, CS, 3 * CS);
    allow(&f.d, 8 * CS, 9 * CS);
    read_guest(plan, f.source, &g);
    assert_true(f.d.reads > 0);
    for (uint64_t c = 0; c < 15; c++) {
        bool mapped = c == 1 || c == 2 || c == 8;

        assert_int_equal(g.cluster_allocated[c], mapped);
        if (mapped)
            assert_memory_equal(g.bytes + c * CS, f.d.bytes + c * CS, CS);
    }
    free(g.bytes);
    q2s_plan_free(plan);

    /* Compression does not go with it. */
    EXPECT_OK(q2s_options_set_compression(f.options, Q2S_COMPRESSION_ZLIB,
                                          Q2S_COMPRESSION_LEVEL_DEFAULT,
                                          &error));
    EXPECT_FAIL(EINVAL, q2s_plan_build(f.source, f.options, NULL, NULL,
                                       &plan, &error));
    EXPECT_OK(q2s_options_set_compression(f.options, Q2S_COMPRESSION_NONE,
                                          Q2S_COMPRESSION_LEVEL_DEFAULT,
                                          &error));

    /* A virtual size larger than the input. */
    map = q2s_map_new();
    EXPECT_OK(q2s_options_set_input_map(f.options, map, MiB + 512, &error));
    q2s_map_free(map);
    EXPECT_FAIL(EINVAL, q2s_plan_build(f.source, f.options, NULL, NULL,
                                       &plan, &error));

    /* NULL removes it: the whole input is scanned. */
    EXPECT_OK(q2s_options_set_input_map(f.options, NULL, 0, &error));
    f.d.allowed_count = 0;
    plan = build(&f);
    assert_int_equal(q2s_plan_get_virtual_size(plan), MiB);
    assert_int_equal(q2s_plan_get_data_clusters(plan), 16);
    q2s_plan_free(plan);
    fixture_close(&f);
}

/* An extent that ends partway into a cluster: that cluster is read, and
 * allocated only if it holds data (the fork would lose it). */
static void test_input_map_partial_cluster(void **state)
{
    static const uint64_t extents[][2] = {
        { 5 * CS, 100 },
        { 9 * CS, 100 },
    };
    struct q2s_map *map = map_of(extents, 2);
    struct q2s_plan *plan = NULL;
    struct fixture f;
    struct guest g;

    (void)state;
    fixture_open(&f, MiB, 4);
    memset(f.d.bytes + 9 * CS, 0, CS);
    allow(&f.d, 5 * CS, 6 * CS);
    allow(&f.d, 9 * CS, 10 * CS);
    EXPECT_OK(q2s_options_set_input_map(f.options, map, MiB, &error));
    q2s_map_free(map);
    plan = build(&f);
    assert_true(f.d.reads > 0);
    assert_int_equal(q2s_plan_get_data_clusters(plan), 1);
    read_guest(plan, f.source, &g);
    assert_true(g.cluster_allocated[5]);
    assert_memory_equal(g.bytes + 5 * CS, f.d.bytes + 5 * CS, CS);
    free(g.bytes);
    q2s_plan_free(plan);
    fixture_close(&f);
}

/* An input and its base, 16 clusters each: the input differs from the
 * base in clusters 3 and 7, and has data in cluster 10 where the base
 * has zeros; the base has data in cluster 12 where the input has
 * zeros.  The input is input.d, read through input.source with
 * input.options. */
struct delta {
    struct fixture input;
    struct disk base;
    struct q2s_source *base_source;
};

static void delta_open(struct delta *t)
{
    fixture_open(&t->input, 16 * CS, 3);
    t->input.d.bytes[3 * CS + 100] ^= 0xff;
    t->input.d.bytes[8 * CS - 1] ^= 0xff;
    memset(t->input.d.bytes + 12 * CS, 0, CS);
    disk_init(&t->base, 16 * CS, 3);
    memset(t->base.bytes + 10 * CS, 0, CS);
    t->base_source = disk_source(&t->base);
}

static void delta_close(struct delta *t)
{
    fixture_close(&t->input);
    q2s_source_close(t->base_source);
    free(t->base.bytes);
}

static int build_delta(struct delta *t, struct q2s_plan **plan,
                       struct q2s_error **error)
{
    return q2s_plan_build_delta(t->input.source, t->base_source,
                                t->input.options, NULL, NULL, plan, error);
}

/* The plan allocates the four clusters that differ, with the input's
 * bytes. */
static void check_delta(const struct q2s_plan *plan, struct delta *t)
{
    static const uint64_t differing[] = { 3, 7, 10, 12 };
    struct guest g;

    assert_int_equal(q2s_plan_get_data_clusters(plan), 4);
    read_guest(plan, t->input.source, &g);
    for (size_t i = 0; i < 4; i++) {
        uint64_t c = differing[i];

        assert_true(g.cluster_allocated[c]);
        assert_memory_equal(g.bytes + c * CS, t->input.d.bytes + c * CS, CS);
    }
    free(g.bytes);
}

static void test_delta(void **state)
{
    struct q2s_plan *plan = NULL;
    struct delta t;

    (void)state;
    delta_open(&t);
    EXPECT_OK(build_delta(&t, &plan, &error));
    assert_int_equal(q2s_plan_get_virtual_size(plan), 16 * CS);
    check_delta(plan, &t);
    q2s_plan_free(plan);
    plan = NULL;

    /* Compression does not go with a delta. */
    EXPECT_OK(q2s_options_set_compression(t.input.options,
                                          Q2S_COMPRESSION_ZLIB,
                                          Q2S_COMPRESSION_LEVEL_DEFAULT,
                                          &error));
    EXPECT_FAIL(EINVAL, build_delta(&t, &plan, &error));
    assert_null(plan);
    delta_close(&t);
}

/* With both maps: only the clusters both list are read, from both
 * sources; those that differ are allocated, and those that only one map
 * lists are allocated unread. */
static void test_delta_with_maps(void **state)
{
    static const uint64_t input_extents[][2] = {
        { 10 * CS, CS }, { 2 * CS, 3 * CS }, { 7 * CS, CS },
    };
    static const uint64_t base_extents[][2] = {
        { 2 * CS, 3 * CS }, { 12 * CS, CS }, { 7 * CS, CS },
    };
    struct q2s_map *input_map = map_of(input_extents, 3);
    struct q2s_map *base_map = map_of(base_extents, 3);
    struct q2s_plan *plan = NULL;
    struct q2s_options *options;
    struct disk *input;
    struct delta t;

    (void)state;
    delta_open(&t);
    options = t.input.options;
    input = &t.input.d;
    EXPECT_OK(q2s_options_set_input_map(options, input_map, 16 * CS,
                                        &error));
    /* The input's map without the base's. */
    EXPECT_FAIL(EINVAL, build_delta(&t, &plan, &error));
    EXPECT_OK(q2s_options_set_base_map(options, base_map, 16 * CS, &error));
    q2s_map_free(input_map);
    q2s_map_free(base_map);

    allow(input, 2 * CS, 5 * CS);
    allow(input, 7 * CS, 8 * CS);
    allow(&t.base, 2 * CS, 5 * CS);
    allow(&t.base, 7 * CS, 8 * CS);
    EXPECT_OK(build_delta(&t, &plan, &error));
    assert_true(input->reads > 0 && t.base.reads > 0);
    /* The image reads the input where its map has data. */
    input->allowed_count = 0;
    check_delta(plan, &t);
    q2s_plan_free(plan);

    /* A base map past the base's virtual size is refused, the one before
     * kept. */
    base_map = q2s_map_new();
    EXPECT_OK(q2s_map_add(base_map, 0, 16 * CS + 1, &error));
    EXPECT_FAIL(EINVAL, q2s_options_set_base_map(options, base_map, 16 * CS,
                                                 &error));
    q2s_map_free(base_map);
    input->allowed_count = 2;
    EXPECT_OK(build_delta(&t, &plan, &error));
    assert_int_equal(q2s_plan_get_data_clusters(plan), 4);
    q2s_plan_free(plan);

    /* A base smaller than its virtual size. */
    EXPECT_OK(q2s_options_set_base_map(options, NULL, 0, &error));
    base_map = q2s_map_new();
    EXPECT_OK(q2s_options_set_base_map(options, base_map, 17 * CS, &error));
    q2s_map_free(base_map);
    EXPECT_FAIL(EINVAL, build_delta(&t, &plan, &error));
    delta_close(&t);
}

/* A cancel of the base stops the delta, and every later one. */
static void test_delta_cancel_base(void **state)
{
    struct q2s_plan *plan = NULL;
    struct delta t;

    (void)state;
    delta_open(&t);
    t.base.cancel = t.base_source;
    EXPECT_FAIL(ECANCELED, build_delta(&t, &plan, &error));
    assert_null(plan);
    assert_int_equal(t.base.reads, 1);
    t.base.cancel = NULL;
    EXPECT_FAIL(ECANCELED, build_delta(&t, &plan, &error));
    assert_int_equal(t.base.reads, 1);
    delta_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_new_add),
        cmocka_unit_test(test_map_from_json),
        cmocka_unit_test(test_image_info_from_json),
        cmocka_unit_test(test_source_set_map),
        cmocka_unit_test(test_options_set_input_map),
        cmocka_unit_test(test_input_map_partial_cluster),
        cmocka_unit_test(test_delta),
        cmocka_unit_test(test_delta_with_maps),
        cmocka_unit_test(test_delta_cancel_base),
    };

    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
