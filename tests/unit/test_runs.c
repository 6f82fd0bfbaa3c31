/* The run set: merging, rank and select. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "export/runs.h"

static void test_merges_adjacent_and_overlapping(void **state)
{
    struct q2s_runs set;

    (void)state;
    q2s_runs_init(&set);
    assert_int_equal(q2s_runs_add(&set, 10, 5), 0);   /* 10..14 */
    assert_int_equal(q2s_runs_add(&set, 15, 1), 0);   /* touches */
    assert_int_equal(q2s_runs_add(&set, 12, 6), 0);   /* overlaps: 10..17 */
    assert_int_equal(q2s_runs_add(&set, 16, 1), 0);   /* inside */
    assert_int_equal(q2s_runs_add(&set, 20, 0), 0);   /* empty: ignored */
    assert_int_equal(set.count, 1);
    assert_int_equal(set.runs[0].start, 10);
    assert_int_equal(set.runs[0].length, 8);
    assert_int_equal(q2s_runs_add(&set, 30, 2), 0);
    assert_int_equal(set.count, 2);
    assert_int_equal(set.runs[1].rank, 8);
    assert_int_equal(q2s_runs_total(&set), 10);
    q2s_runs_free(&set);
}

static void test_refuses_out_of_order_and_overflow(void **state)
{
    struct q2s_runs set;

    (void)state;
    q2s_runs_init(&set);
    assert_int_equal(q2s_runs_add(&set, 100, 1), 0);
    errno = 0;
    assert_int_equal(q2s_runs_add(&set, 99, 1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(q2s_runs_add(&set, UINT64_MAX, 2), -1);
    assert_int_equal(set.count, 1);
    q2s_runs_free(&set);
}

static void test_rank_and_select(void **state)
{
    struct q2s_runs set;
    uint64_t rank = 0;

    (void)state;
    q2s_runs_init(&set);
    /* Many runs, so that the array grows and the searches go deep. */
    for (uint64_t i = 0; i < 1000; i++)
        assert_int_equal(q2s_runs_add(&set, i * 10, 3), 0);
    assert_int_equal(set.count, 1000);
    assert_int_equal(q2s_runs_total(&set), 3000);

    assert_true(q2s_runs_rank(&set, 0, &rank));
    assert_int_equal(rank, 0);
    assert_true(q2s_runs_rank(&set, 5002, &rank));
    assert_int_equal(rank, 1502);
    assert_false(q2s_runs_rank(&set, 5003, &rank));
    assert_false(q2s_runs_rank(&set, 9993, &rank));
    assert_true(q2s_runs_rank(&set, 9992, &rank));
    assert_int_equal(rank, 2999);

    assert_int_equal(q2s_runs_search(&set, 5003), 501);
    assert_int_equal(q2s_runs_search(&set, 5002), 500);
    assert_int_equal(q2s_runs_search(&set, 100000), 1000);

    assert_int_equal(q2s_runs_select(&set, 0), 0);
    assert_int_equal(q2s_runs_select(&set, 2), 0);
    assert_int_equal(q2s_runs_select(&set, 3), 1);
    assert_int_equal(q2s_runs_select(&set, 2999), 999);
    assert_int_equal(q2s_runs_select(&set, 3000), 1000);
    q2s_runs_free(&set);
}

static void test_empty_set(void **state)
{
    struct q2s_runs set;
    uint64_t rank;

    (void)state;
    q2s_runs_init(&set);
    assert_int_equal(q2s_runs_total(&set), 0);
    assert_false(q2s_runs_rank(&set, 0, &rank));
    assert_int_equal(q2s_runs_search(&set, 0), 0);
    assert_int_equal(q2s_runs_select(&set, 0), 0);
    q2s_runs_free(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merges_adjacent_and_overlapping),
        cmocka_unit_test(test_refuses_out_of_order_and_overflow),
        cmocka_unit_test(test_rank_and_select),
        cmocka_unit_test(test_empty_set),
    };

    return cmocka_run_group_tests_name("runs", tests, NULL, NULL);
}
