/* The JSON of qemu-img map, rbd diff and qemu-img info: both map shapes,
 * and a clear EPROTO for everything else. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export/map_json.h"

/* Parses text, which must succeed; the caller frees the map. */
static struct q2s_map *parsed(const char *text)
{
    struct q2s_error err = { .code = 0 };
    struct q2s_map *map = NULL;

    if (q2s_parse_map_json(text, strlen(text), &map, &err) < 0)
        fail_msg("%s: %s", text, err.message);
    assert_non_null(map);
    return map;
}

/* Parsing length bytes of text fails with EPROTO and a message holding
 * want. */
static void refused_n(const char *text, size_t length, const char *want)
{
    struct q2s_error err = { .code = 0 };
    struct q2s_map *map = (struct q2s_map *)&err;

    assert_int_equal(q2s_parse_map_json(text, length, &map, &err), -1);
    assert_null(map);
    assert_int_equal(err.code, EPROTO);
    if (!strstr(err.message, want))
        fail_msg("\"%s\" does not say \"%s\"", err.message, want);
    assert_null(strchr(err.message, '\n'));
}

static void refused(const char *text, const char *want)
{
    refused_n(text, strlen(text), want);
}

static void assert_extent(const struct q2s_map *map, size_t i,
                          uint64_t offset, uint64_t length)
{
    assert_true(i < map->count);
    assert_int_equal(map->extents[i].offset, offset);
    assert_int_equal(map->extents[i].length, length);
}

/* text parses to the count extents (offset, length), in that order. */
static void parses_to(const char *text, const uint64_t (*want)[2],
                      size_t count)
{
    struct q2s_map *map = parsed(text);

    assert_int_equal(map->count, count);
    for (size_t i = 0; i < count; i++)
        assert_extent(map, i, want[i][0], want[i][1]);
    q2s_map_destroy(map);
}

static void test_qemu_img_map(void **state)
{
    static const uint64_t want[][2] = { { 0, 65536 }, { 196608, 4096 } };

    (void)state;
    /* As qemu-img 7 writes it: holes and zeros left out, "offset" only
     * where the data is. */
    parses_to(
        "[{ \"start\": 0, \"length\": 65536, \"depth\": 0, \"present\": true,"
        " \"zero\": false, \"data\": true, \"compressed\": false,"
        " \"offset\": 0},\n"
        "{ \"start\": 65536, \"length\": 131072, \"depth\": 0,"
        " \"present\": false, \"zero\": true, \"data\": false,"
        " \"compressed\": false},\n"
        "{ \"start\": 196608, \"length\": 4096, \"depth\": 0,"
        " \"present\": true, \"zero\": false, \"data\": true,"
        " \"compressed\": false, \"offset\": 196608}]\n",
        want, 2);
}

static void test_rbd_diff(void **state)
{
    static const uint64_t want[][2] = { { 0, 4194304 }, { 16777216, 512 } };

    (void)state;
    /* rbd writes "exists" as a string; a boolean is taken too. */
    parses_to(
        "[{\"offset\":0,\"length\":4194304,\"exists\":\"true\"},"
        "{\"offset\":4194304,\"length\":4194304,\"exists\":\"false\"},"
        "{\"offset\":16777216,\"length\":512,\"exists\":true},"
        "{\"offset\":8388608,\"length\":512,\"exists\":false}]",
        want, 2);
}

static void test_empty_and_skipped(void **state)
{
    static const uint64_t want[][2] = {
        { 9223372036854775806ULL, 1 }, { 10, 3 },
    };

    (void)state;
    parses_to(" [ ] ", NULL, 0);
    /* Empty extents are no error, and not kept; order is kept. */
    parses_to("[{\"start\":5,\"length\":0,\"data\":true},"
              "{\"start\":9223372036854775806,\"length\":1,\"data\":true},"
              "{\"start\":10,\"length\":3,\"data\":true}]",
              want, 2);
}

static void test_not_json(void **state)
{
    (void)state;
    refused("", "empty");
    refused(" \n\t", "empty");
    refused("hello", "unexpected character");
    refused("[{\"start\":0,\"length\":1,\"data\":true}", "ends after element 0");
    refused("[{\"start\":0,\"length\":1,", "element 0: unexpected end of data");
    refused("[", "element 0: unexpected end of data");
    refused("[{\"start\":0,\"length\":1,\"data\":true},]", "element 1");
    refused("[{\"start\":0,\"length\":1,\"data\":true} {}]",
            "after element 0: ',' or ']' expected");
    /* Invalid UTF-8, in a string and outside one. */
    refused("[{\"start\":0,\"length\":1,\"data\":true,\"x\":\"\xff\xfe\"}]",
            "utf-8");
    refused("[\xff]", "element 0");
    refused_n("[{\"start\":0,\0\"length\":1,\"data\":true}]", 37, "element 0");
}

static void test_not_an_array_of_objects(void **state)
{
    (void)state;
    refused("{\"start\":0,\"length\":1,\"data\":true}", "an object, not an array");
    refused("42", "an integer, not an array");
    refused("\"x\"", "a string, not an array");
    refused("[1]", "element 0: an integer, not an object");
    refused("[{\"start\":0,\"length\":1,\"data\":true},[]]",
            "element 1: an array, not an object");
    refused("[{\"start\":0,\"length\":1,\"data\":true},null]",
            "element 1: null, not an object");
    refused("[{\"length\":1}]", "element 0: neither a qemu-img map entry");
}

static void test_missing_keys_and_mixed_shapes(void **state)
{
    (void)state;
    refused("[{\"start\":0,\"length\":1,\"data\":true},"
            "{\"start\":0,\"length\":1,\"data\":true},"
            "{\"start\":0,\"length\":1,\"data\":true},"
            "{\"start\":0,\"data\":true}]",
            "map JSON: element 3: missing key \"length\"");
    refused("[{\"start\":0,\"length\":1}]", "element 0: missing key \"data\"");
    refused("[{\"offset\":0,\"exists\":\"true\"}]",
            "element 0: missing key \"length\"");
    refused("[{\"length\":1,\"exists\":\"true\"}]",
            "element 0: missing key \"offset\"");
    refused("[{\"start\":0,\"length\":1,\"data\":true},"
            "{\"offset\":0,\"length\":1,\"exists\":\"true\"}]",
            "element 1: an rbd diff entry where the first is a qemu-img map");
    refused("[{\"offset\":0,\"length\":1,\"exists\":\"true\"},"
            "{\"start\":0,\"length\":1,\"data\":true}]",
            "element 1: a qemu-img map entry where the first is an rbd diff");
    refused("[{\"start\":0,\"length\":1,\"data\":true},{\"length\":1}]",
            "element 1: missing key \"start\"");
}

static void test_bad_numbers(void **state)
{
    (void)state;
    refused("[{\"start\":-1,\"length\":1,\"data\":true}]",
            "element 0: \"start\" is negative");
    refused("[{\"start\":0,\"length\":-99999999999999999999,\"data\":true}]",
            "\"length\" is negative");
    refused("[{\"start\":9223372036854775808,\"length\":1,\"data\":true}]",
            "\"start\" is larger than 2^63 - 1");
    refused("[{\"start\":18446744073709551616,\"length\":1,\"data\":true}]",
            "\"start\" is larger than 2^63 - 1");
    refused("[{\"start\":0,\"length\":99999999999999999999999,\"data\":true}]",
            "\"length\" is larger than 2^63 - 1");
    refused("[{\"start\":1e30,\"length\":1,\"data\":true}]",
            "\"start\" is a number with a fraction or an exponent, not an "
            "integer");
    refused("[{\"start\":1.0,\"length\":1,\"data\":true}]", "not an integer");
    refused("[{\"start\":\"0\",\"length\":1,\"data\":true}]",
            "\"start\" is a string, not an integer");
    refused("[{\"start\":null,\"length\":1,\"data\":true}]",
            "\"start\" is null, not an integer");
    refused("[{\"start\":9223372036854775807,\"length\":1,\"data\":true}]",
            "element 0: the extent ends past 2^63 - 1");
    refused("[{\"offset\":4611686018427387904,\"length\":4611686018427387904,"
            "\"exists\":\"true\"}]", "ends past 2^63 - 1");
}

static void test_bad_flags(void **state)
{
    (void)state;
    refused("[{\"start\":0,\"length\":1,\"data\":1}]",
            "\"data\" is an integer, not a boolean");
    refused("[{\"start\":0,\"length\":1,\"data\":\"true\"}]",
            "\"data\" is a string, not a boolean");
    refused("[{\"offset\":0,\"length\":1,\"exists\":\"yes\"}]",
            "\"exists\" is neither \"true\" nor \"false\"");
    refused("[{\"offset\":0,\"length\":1,\"exists\":1}]",
            "\"exists\" is an integer, not a boolean");
}

static void test_deep_nesting_and_trailing_text(void **state)
{
    size_t depth = 10000;
    char *deep = malloc(2 * depth + 1);

    (void)state;
    assert_non_null(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    refused(deep, "nesting too deep");
    /* Deep in an element's key that is not read, too. */
    memcpy(deep, "[{\"x\":", 6);
    refused(deep, "element 0: nesting too deep");
    free(deep);
    refused("[] x", "unexpected text after the end, at byte 3");
    refused("[]]", "unexpected text after the end");
    refused("[{\"start\":0,\"length\":1,\"data\":true}]{}",
            "unexpected text after the end");
}

/* Info: "virtual-size" and "cluster-size". */
static int info(const char *text, uint64_t *virtual_size,
                uint32_t *cluster_size, struct q2s_error *err)
{
    return q2s_parse_image_info_json(text, strlen(text), virtual_size,
                                     cluster_size, err);
}

/* Refused with a message holding want, the caller's variables as they
 * were (a fuzz finding: a virtual size past 2^63 - 1, or a cluster size
 * out of range after a good virtual size, was written before the
 * refusal). */
static void info_refused(const char *text, const char *want)
{
    struct q2s_error err = { .code = 0 };
    uint64_t virtual_size = 7;
    uint32_t cluster_size = 9;

    assert_int_equal(info(text, &virtual_size, &cluster_size, &err), -1);
    assert_int_equal(err.code, EPROTO);
    assert_int_equal(virtual_size, 7);
    assert_int_equal(cluster_size, 9);
    if (!strstr(err.message, want))
        fail_msg("\"%s\" does not say \"%s\"", err.message, want);
}

static void test_image_info(void **state)
{
    struct q2s_error err = { .code = 0 };
    uint64_t virtual_size = 0;
    uint32_t cluster_size = 0;

    (void)state;
    assert_int_equal(
        info("{\n    \"children\": [{\"name\": \"file\", \"info\": {}}],\n"
             "    \"virtual-size\": 10737418240,\n"
             "    \"filename\": \"disk.qcow2\",\n"
             "    \"cluster-size\": 65536,\n"
             "    \"format\": \"qcow2\",\n"
             "    \"format-specific\": {\"type\": \"qcow2\", \"data\": "
             "{\"compat\": \"1.1\", \"refcount-bits\": 16}},\n"
             "    \"dirty-flag\": false\n}\n",
             &virtual_size, &cluster_size, &err),
        0);
    assert_int_equal(virtual_size, 10737418240ULL);
    assert_int_equal(cluster_size, 65536);
    info_refused("{\"virtual-size\": 1048576, \"format\": \"raw\"}",
                 "info JSON: missing key \"cluster-size\"");
    info_refused("{\"cluster-size\": 65536}",
                 "info JSON: missing key \"virtual-size\"");
    info_refused("{\"virtual-size\": \"1\", \"cluster-size\": 65536}",
                 "\"virtual-size\" is a string, not an integer");
    info_refused("{\"virtual-size\": -1, \"cluster-size\": 65536}",
                 "\"virtual-size\" is negative");
    info_refused("{\"virtual-size\": 1, \"cluster-size\": 0}",
                 "\"cluster-size\" 0 is not from 1");
    info_refused("{\"virtual-size\": 1, \"cluster-size\": 4294967296}",
                 "\"cluster-size\" 4294967296 is not from 1");
    info_refused("{\"virtual-size\": 9223372036854775808, "
                 "\"cluster-size\": 512}", "larger than 2^63 - 1");
    info_refused("{\"virtual-size\": 1, \"cluster-size\": 1.5}",
                 "not an integer");
    info_refused("[]", "info JSON: an array, not an object");
    info_refused("", "info JSON: the text is empty");
    info_refused("{\"virtual-size\": 1,", "info JSON: unexpected end of data");
    info_refused("not json", "info JSON: null expected at byte 1");
    info_refused("{\"virtual-size\": 1, \"cluster-size\": 512, x}",
                 "info JSON: quoted object property name expected at byte 41");
    info_refused("{\"virtual-size\": 1, \"cluster-size\": 512} {}",
                 "unexpected text after the end");
}

static void test_image_info_too_large(void **state)
{
    size_t length = Q2S_IMAGE_INFO_JSON_MAX_BYTES + 1;
    char *text = malloc(length);
    struct q2s_error err = { .code = 0 };
    uint64_t virtual_size;
    uint32_t cluster_size;

    (void)state;
    assert_non_null(text);
    memset(text, ' ', length);
    assert_int_equal(q2s_parse_image_info_json(text, length, &virtual_size,
                                               &cluster_size, &err),
                     -1);
    assert_int_equal(err.code, EPROTO);
    assert_non_null(strstr(err.message, "larger than 16 MiB"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qemu_img_map),
        cmocka_unit_test(test_rbd_diff),
        cmocka_unit_test(test_empty_and_skipped),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_not_an_array_of_objects),
        cmocka_unit_test(test_missing_keys_and_mixed_shapes),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_deep_nesting_and_trailing_text),
        cmocka_unit_test(test_image_info),
        cmocka_unit_test(test_image_info_too_large),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
