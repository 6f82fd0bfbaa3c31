/* The XAPI fork's rules on its maps, cluster by cluster, as its Python
 * computes them (qcow2-to-stdout-xapi.py, class Interval). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "export/fork_rules.h"

#define CLUSTER_BITS 16
#define C(n) ((uint64_t)(n) << CLUSTER_BITS)

/* A map of extents given in clusters: {first, end} pairs. */
static struct q2s_map map_of(const uint64_t (*extents)[2], size_t count)
{
    struct q2s_map map;

    q2s_map_init(&map);
    for (size_t i = 0; i < count; i++)
        assert_int_equal(q2s_map_append(&map, extents[i][0],
                                        extents[i][1] - extents[i][0], NULL),
                         0);
    return map;
}

/* The set as a string of cluster numbers, "0-3,8" and so on. */
static void assert_set(const struct q2s_runs *set, const char *expected)
{
    char text[256] = "", *p = text;

    for (size_t i = 0; i < set->count; i++) {
        uint64_t first = set->runs[i].start;
        uint64_t last = first + set->runs[i].length - 1;

        p += sprintf(p, i ? ",%llu" : "%llu", (unsigned long long)first);
        if (last != first)
            p += sprintf(p, "-%llu", (unsigned long long)last);
    }
    assert_string_equal(text, expected);
}

static void test_mapped_clusters(void **state)
{
    /* Aligned; ending partway (the fork drops cluster 9, to be checked);
     * starting partway (the fork takes cluster 20); past the disk. */
    static const uint64_t extents[][2] = {
        { C(2), C(4) }, { C(8), C(9) + 512 }, { C(20) + 512, C(22) },
        { C(30), C(40) },
    };
    struct q2s_map map = map_of(extents, 4);
    struct q2s_runs allocated, to_check;

    (void)state;
    q2s_runs_init(&allocated);
    q2s_runs_init(&to_check);
    assert_int_equal(q2s_fork_mapped_clusters(&map, CLUSTER_BITS, 32,
                                              &allocated, &to_check, NULL),
                     0);
    assert_set(&allocated, "2-3,8,20-21,30-31");
    assert_set(&to_check, "9");
    q2s_runs_free(&allocated);
    q2s_runs_free(&to_check);
    q2s_map_fini(&map);
}

/* Walks input through base with every cluster inside the disk. */
static void walk(const uint64_t (*input)[2], size_t input_count,
                 const uint64_t (*base)[2], size_t base_count,
                 uint64_t base_clusters, const char *allocated_expected,
                 const char *compared_expected)
{
    struct q2s_map input_map = map_of(input, input_count);
    struct q2s_map base_map = map_of(base, base_count);
    struct q2s_runs allocated, to_compare, to_check;

    q2s_runs_init(&allocated);
    q2s_runs_init(&to_compare);
    q2s_runs_init(&to_check);
    assert_int_equal(q2s_fork_walk(&input_map, &base_map, CLUSTER_BITS, 100,
                                   base_clusters, &allocated, &to_compare,
                                   &to_check, NULL),
                     0);
    assert_set(&allocated, allocated_expected);
    assert_set(&to_compare, compared_expected);
    assert_set(&to_check, "");
    q2s_runs_free(&allocated);
    q2s_runs_free(&to_compare);
    q2s_runs_free(&to_check);
    q2s_map_fini(&input_map);
    q2s_map_fini(&base_map);
}

static void test_walk_shrinks_from_the_left(void **state)
{
    static const uint64_t base[][2] = { { C(0), C(10) } };
    static const uint64_t input[][2] = { { C(0), C(4) } };

    (void)state;
    /* Compared: 0-3; the rest of the base's run hides its data. */
    walk(input, 1, base, 1, 100, "4-9", "0-3");
}

static void test_walk_splits_inside_a_run(void **state)
{
    static const uint64_t base[][2] = { { C(0), C(10) } };
    static const uint64_t input[][2] = { { C(3), C(8) } };

    (void)state;
    /* Cluster 3 splits [0, 9] into [0, 3] and [4, 9]: it stays in the set
     * and is allocated whatever it holds; 4-7 are compared. */
    walk(input, 1, base, 1, 100, "0-3,8-9", "4-7");
}

static void test_walk_in_the_map_order(void **state)
{
    static const uint64_t base[][2] = { { C(0), C(10) } };
    static const uint64_t input[][2] = { { C(5), C(6) }, { C(4), C(5) } };

    (void)state;
    /* 5 splits [0, 9]; then 4 splits [0, 5]: both stay. */
    walk(input, 2, base, 1, 100, "0-9", "");
}

static void test_walk_outside_the_base(void **state)
{
    static const uint64_t base[][2] = { { C(2), C(4) } };
    static const uint64_t input[][2] = { { C(0), C(3) }, { C(6), C(8) } };

    (void)state;
    /* 0-1 not in the base's set, 6-7 past its 6 clusters: allocated
     * unread; 2 compared; 3 left in the base's set. */
    walk(input, 2, base, 1, 6, "0-1,3,6-7", "2");
}

static void test_walk_partial_clusters_to_check(void **state)
{
    static const uint64_t base[][2] = { { C(0), C(2) + 512 } };
    static const uint64_t input[][2] = { { C(0), C(1) + 512 } };
    struct q2s_map input_map = map_of(input, 1);
    struct q2s_map base_map = map_of(base, 1);
    struct q2s_runs allocated, to_compare, to_check;

    (void)state;
    q2s_runs_init(&allocated);
    q2s_runs_init(&to_compare);
    q2s_runs_init(&to_check);
    assert_int_equal(q2s_fork_walk(&input_map, &base_map, CLUSTER_BITS, 3, 3,
                                   &allocated, &to_compare, &to_check, NULL),
                     0);
    assert_set(&allocated, "1");
    assert_set(&to_compare, "0");
    assert_set(&to_check, "1-2");
    q2s_runs_free(&allocated);
    q2s_runs_free(&to_compare);
    q2s_runs_free(&to_check);
    q2s_map_fini(&input_map);
    q2s_map_fini(&base_map);
}

static void test_walk_refuses_overlapping_base_extents(void **state)
{
    static const uint64_t base[][2] = { { C(0), C(4) }, { C(2), C(6) } };
    struct q2s_map input_map = map_of(base, 1);
    struct q2s_map base_map = map_of(base, 2);
    struct q2s_runs allocated, to_compare, to_check;
    struct q2s_error err;

    (void)state;
    q2s_runs_init(&allocated);
    q2s_runs_init(&to_compare);
    q2s_runs_init(&to_check);
    assert_int_equal(q2s_fork_walk(&input_map, &base_map, CLUSTER_BITS, 10,
                                   10, &allocated, &to_compare, &to_check,
                                   &err),
                     -1);
    assert_int_equal(err.code, EPROTO);
    q2s_runs_free(&allocated);
    q2s_runs_free(&to_compare);
    q2s_runs_free(&to_check);
    q2s_map_fini(&input_map);
    q2s_map_fini(&base_map);
}

static void test_builder_sorts_and_merges(void **state)
{
    struct q2s_runs_builder builder;
    struct q2s_runs set;

    (void)state;
    q2s_runs_builder_init(&builder);
    q2s_runs_init(&set);
    assert_int_equal(q2s_runs_builder_add(&builder, 10, 2), 0);
    assert_int_equal(q2s_runs_builder_add(&builder, 12, 1), 0);
    assert_int_equal(q2s_runs_builder_add(&builder, 3, 2), 0);
    assert_int_equal(q2s_runs_builder_add(&builder, 4, 3), 0);
    assert_int_equal(q2s_runs_builder_add(&builder, 11, 0), 0);
    assert_int_equal(q2s_runs_builder_add(&builder, 0, 1), 0);
    assert_int_equal(q2s_runs_builder_add(&builder, 1, UINT64_MAX), -1);
    assert_int_equal(q2s_runs_builder_finish(&builder, &set), 0);
    assert_set(&set, "0,3-6,10-12");
    assert_int_equal(set.runs[2].rank, 5);
    q2s_runs_free(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapped_clusters),
        cmocka_unit_test(test_walk_shrinks_from_the_left),
        cmocka_unit_test(test_walk_splits_inside_a_run),
        cmocka_unit_test(test_walk_in_the_map_order),
        cmocka_unit_test(test_walk_outside_the_base),
        cmocka_unit_test(test_walk_partial_clusters_to_check),
        cmocka_unit_test(test_walk_refuses_overlapping_base_extents),
        cmocka_unit_test(test_builder_sorts_and_merges),
    };

    return cmocka_run_group_tests_name("fork_rules", tests, NULL, NULL);
}
