/* Allocation maps: appending, the sorted and merged view, and a source
 * that reads only inside its map. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "export/map.h"
#include "export/source.h"
#include "export/sources/callbacks.h"

static void test_append_refuses_empty_and_overflow(void **state)
{
    struct q2s_error err;
    struct q2s_map map;

    (void)state;
    q2s_map_init(&map);
    assert_int_equal(q2s_map_append(&map, 10, 0, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(q2s_map_append(&map, UINT64_MAX, 2, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(q2s_map_append(&map, UINT64_MAX - 1, 1, &err), 0);
    assert_int_equal(map.count, 1);
    assert_int_equal(q2s_map_end(&map), UINT64_MAX);
    q2s_map_fini(&map);
}

/* map becomes the count extents (offset, length) in that order. */
static void map_of(struct q2s_map *map, const uint64_t (*extents)[2],
                   size_t count)
{
    struct q2s_error err;

    q2s_map_init(map);
    for (size_t i = 0; i < count; i++)
        assert_int_equal(q2s_map_append(map, extents[i][0], extents[i][1],
                                        &err), 0);
}

static void test_sorted_merges(void **state)
{
    /* Unsorted, overlapping, touching, contained. */
    static const uint64_t extents[][2] = {
        { 100, 10 }, { 0, 5 }, { 105, 20 }, { 5, 5 }, { 200, 1 },
        { 106, 2 }, { 50, 1 },
    };
    struct q2s_error err;
    struct q2s_map map, sorted;

    (void)state;
    map_of(&map, extents, sizeof extents / sizeof extents[0]);
    assert_int_equal(q2s_map_sorted(&sorted, &map, &err), 0);
    assert_int_equal(sorted.count, 4);
    assert_int_equal(sorted.extents[0].offset, 0);
    assert_int_equal(sorted.extents[0].length, 10);
    assert_int_equal(sorted.extents[1].offset, 50);
    assert_int_equal(sorted.extents[2].offset, 100);
    assert_int_equal(sorted.extents[2].length, 25);
    assert_int_equal(sorted.extents[3].offset, 200);
    /* The map itself keeps its order. */
    assert_int_equal(map.extents[0].offset, 100);
    assert_int_equal(q2s_map_find(&sorted, 0), 0);
    assert_int_equal(q2s_map_find(&sorted, 10), 1);
    assert_int_equal(q2s_map_find(&sorted, 124), 2);
    assert_int_equal(q2s_map_find(&sorted, 125), 3);
    assert_int_equal(q2s_map_find(&sorted, 201), 4);
    q2s_map_fini(&sorted);
    q2s_map_fini(&map);
}

#define INPUT_SIZE 4096

/* An input of bytes 1..255 repeated, all of it data unless holes says
 * otherwise, that remembers every byte it was asked to read. */
struct input {
    uint8_t read_mask[INPUT_SIZE];
    uint64_t hole_start, hole_end;  /* the backend's own hole */
};

static int input_read(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct input *input = opaque;

    for (size_t i = 0; i < count; i++) {
        ((uint8_t *)buf)[i] = (uint8_t)((offset + i) % 255 + 1);
        input->read_mask[offset + i] = 1;
    }
    return 0;
}

static int input_data(void *opaque, uint64_t offset, uint64_t *start,
                      uint64_t *end)
{
    struct input *input = opaque;

    if (offset >= input->hole_start && offset < input->hole_end)
        offset = input->hole_end;
    if (offset >= INPUT_SIZE)
        return 0;
    *start = offset;
    *end = offset < input->hole_start ? input->hole_start : INPUT_SIZE;
    return 1;
}

/* The one input of a test (cmocka runs them one after the other). */
static struct input input_state;

static struct q2s_source *open_input(struct input *input)
{
    struct q2s_source *source;
    struct q2s_error err;

    memset(input, 0, sizeof *input);
    input->hole_start = 2000;
    input->hole_end = 2100;
    assert_int_equal(q2s_source_new_callbacks(INPUT_SIZE, input_read,
                                              input_data, NULL, input,
                                              &source, &err), 0);
    return source;
}

static void test_source_reads_only_inside_the_map(void **state)
{
    /* 1900..2200, 100..250 in two, up to the end. */
    static const uint64_t extents[][2] = {
        { 1900, 300 }, { 100, 100 }, { 150, 100 }, { 4000, 96 },
    };
    static uint8_t buf[INPUT_SIZE];
    struct q2s_error err;
    struct q2s_source *source = open_input(&input_state);
    struct q2s_map map;
    uint64_t start, end;

    (void)state;
    map_of(&map, extents, sizeof extents / sizeof extents[0]);
    assert_int_equal(q2s_source_use_map(source, &map, &err), 0);
    q2s_map_fini(&map);  /* the source has its own copy */

    /* The data extents: the map cut by the backend's hole. */
    assert_int_equal(q2s_source_next_data(source, 0, &start, &end, &err), 1);
    assert_int_equal(start, 100);
    assert_int_equal(end, 250);
    assert_int_equal(q2s_source_next_data(source, 250, &start, &end, &err), 1);
    assert_int_equal(start, 1900);
    assert_int_equal(end, 2000);
    assert_int_equal(q2s_source_next_data(source, 2000, &start, &end, &err), 1);
    assert_int_equal(start, 2100);
    assert_int_equal(end, 2200);
    assert_int_equal(q2s_source_next_data(source, 2200, &start, &end, &err), 1);
    assert_int_equal(start, 4000);
    assert_int_equal(end, 4096);

    /* Reading everything: zeros outside, bytes inside, and nothing read
     * outside the map. */
    assert_int_equal(q2s_source_read_data(source, buf, INPUT_SIZE, 0, &err), 0);
    for (uint64_t i = 0; i < INPUT_SIZE; i++) {
        bool mapped = (i >= 100 && i < 250) || (i >= 1900 && i < 2000) ||
                      (i >= 2100 && i < 2200) || i >= 4000;

        assert_int_equal(buf[i], mapped ? (uint8_t)(i % 255 + 1) : 0);
        assert_int_equal(input_state.read_mask[i], mapped);
    }
    q2s_source_close(source);
}

static void test_source_map_checks_and_removal(void **state)
{
    static const uint64_t past_the_end[][2] = { { 4000, 97 } };
    struct q2s_error err;
    struct q2s_source *source = open_input(&input_state);
    struct q2s_map map;
    uint64_t start, end;

    (void)state;
    map_of(&map, past_the_end, 1);
    assert_int_equal(q2s_source_use_map(source, &map, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_non_null(strstr(err.message, "offset 4000"));
    assert_null(source->map);
    /* An empty map: nothing is data. */
    q2s_map_fini(&map);
    assert_int_equal(q2s_source_use_map(source, &map, &err), 0);
    assert_int_equal(q2s_source_next_data(source, 0, &start, &end, &err), 0);
    /* No map: all of it again. */
    assert_int_equal(q2s_source_use_map(source, NULL, &err), 0);
    assert_int_equal(q2s_source_next_data(source, 0, &start, &end, &err), 1);
    assert_int_equal(start, 0);
    assert_int_equal(end, 2000);
    q2s_source_close(source);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_refuses_empty_and_overflow),
        cmocka_unit_test(test_sorted_merges),
        cmocka_unit_test(test_source_reads_only_inside_the_map),
        cmocka_unit_test(test_source_map_checks_and_removal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
