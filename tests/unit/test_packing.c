/* Where compressed clusters go, checked against the rules of qcow2.rst
 * with brute force: back to back, no host cluster touched by more of them
 * than its refcount can count, and every lookup agreeing with the walk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export/packing.h"

/* A small deterministic generator, so that failures repeat. */
static uint32_t next_random(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*seed >> 33);
}

static void test_back_to_back(void **state)
{
    struct q2s_packing packing;
    uint64_t start;

    (void)state;
    q2s_packing_init(&packing, 16, 16);
    assert_int_equal(q2s_packing_append(&packing, 1000, &start), 0);
    assert_int_equal(start, 0);
    assert_int_equal(q2s_packing_append(&packing, 65000, &start), 0);
    assert_int_equal(start, 1000);  /* crosses into the next host cluster */
    assert_int_equal(q2s_packing_append(&packing, 536, &start), 0);
    assert_int_equal(start, 66000);
    assert_int_equal(q2s_packing_bytes(&packing), 66536);
    assert_int_equal(packing.end.refs, 2);
    q2s_packing_free(&packing);
}

/* 2-bit refcounts count 3: the fourth compressed cluster in a host cluster
 * goes to the next one. */
static void test_refcount_limit(void **state)
{
    struct q2s_packing packing;
    uint64_t start;

    (void)state;
    q2s_packing_init(&packing, 9, 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(q2s_packing_append(&packing, 100, &start), 0);
        assert_int_equal(start, (uint64_t)i * 100);
    }
    assert_int_equal(q2s_packing_append(&packing, 100, &start), 0);
    assert_int_equal(start, 512);
    /* One that ends exactly at a boundary leaves the next cluster free. */
    assert_int_equal(q2s_packing_append(&packing, 412, &start), 0);
    assert_int_equal(start, 612);
    assert_int_equal(packing.end.refs, 0);
    assert_int_equal(q2s_packing_append(&packing, 1, &start), 0);
    assert_int_equal(start, 1024);
    q2s_packing_free(&packing);
}

/* Sizes of 0 and of a whole cluster are refused. */
static void test_bad_sizes(void **state)
{
    struct q2s_packing packing;
    uint64_t start;

    (void)state;
    q2s_packing_init(&packing, 9, 16);
    assert_int_equal(q2s_packing_append(&packing, 0, &start), -1);
    assert_int_equal(q2s_packing_append(&packing, 512, &start), -1);
    assert_int_equal(q2s_packing_append(&packing, 511, &start), 0);
    q2s_packing_free(&packing);
}

static void check_random(uint32_t cluster_bits, uint32_t refcount_bits,
                         uint64_t count, uint64_t seed)
{
    uint64_t cluster_size = UINT64_C(1) << cluster_bits;
    uint64_t max_refcount = refcount_bits >= 64
                                ? UINT64_MAX
                                : (UINT64_C(1) << refcount_bits) - 1;
    struct q2s_packing packing;
    uint64_t *starts = calloc(count, sizeof *starts);
    uint32_t *sizes = calloc(count, sizeof *sizes);
    uint64_t host_clusters, *refs;

    q2s_packing_init(&packing, cluster_bits, refcount_bits);
    for (uint64_t i = 0; i < count; i++) {
        /* Mostly small, some nearly a cluster. */
        uint32_t r = next_random(&seed);

        sizes[i] = r % 4 == 0 ? (uint32_t)(cluster_size - 1 - r % 8)
                              : 1 + r % (uint32_t)(cluster_size / 3);
        assert_int_equal(q2s_packing_append(&packing, sizes[i], &starts[i]),
                         0);
        if (i > 0) {
            uint64_t prev_end = starts[i - 1] + sizes[i - 1];

            /* Back to back, or at the next boundary when skipping. */
            assert_true(starts[i] >= prev_end);
            if (starts[i] != prev_end) {
                assert_int_equal(starts[i] % cluster_size, 0);
                assert_true(starts[i] - prev_end < cluster_size);
            }
        }
    }
    assert_int_equal(q2s_packing_bytes(&packing),
                     starts[count - 1] + sizes[count - 1]);

    /* No host cluster is touched by more than its refcount can count, and
     * none in the region is left untouched. */
    host_clusters = (q2s_packing_bytes(&packing) + cluster_size - 1) >>
                    cluster_bits;
    refs = calloc(host_clusters, sizeof *refs);
    for (uint64_t i = 0; i < count; i++)
        for (uint64_t c = starts[i] >> cluster_bits;
             c <= (starts[i] + sizes[i] - 1) >> cluster_bits; c++)
            refs[c]++;
    for (uint64_t c = 0; c < host_clusters; c++) {
        assert_true(refs[c] >= 1);
        assert_true(refs[c] <= max_refcount);
    }

    /* Seeking to any of them gives the state that places it where the
     * walk did; finding an offset gives the first that ends after it. */
    for (uint64_t i = 0; i < count; i += 1 + next_random(&seed) % 7) {
        struct q2s_packing_state st;
        uint64_t offset, found, expected = 0;

        q2s_packing_seek(&packing, i, &st);
        assert_int_equal(q2s_packing_place(&packing, &st, sizes[i]),
                         starts[i]);
        offset = next_random(&seed) % (q2s_packing_bytes(&packing) + 10);
        while (expected < count && starts[expected] + sizes[expected] <=
                                       offset)
            expected++;
        found = q2s_packing_find(&packing, offset, &st);
        assert_int_equal(found, expected);
        if (found < count)
            assert_int_equal(q2s_packing_place(&packing, &st, sizes[found]),
                             starts[found]);
    }
    free(refs);
    free(starts);
    free(sizes);
    q2s_packing_free(&packing);
}

static void test_random_layouts(void **state)
{
    static const uint32_t cluster_bits[] = { 9, 12, 16, 21 };
    static const uint32_t refcount_bits[] = { 2, 4, 8, 16, 64 };

    (void)state;
    for (size_t c = 0; c < sizeof cluster_bits / sizeof *cluster_bits; c++)
        for (size_t r = 0; r < sizeof refcount_bits / sizeof *refcount_bits;
             r++)
            check_random(cluster_bits[c], refcount_bits[r],
                         cluster_bits[c] == 21 ? 600 : 3000, c * 31 + r);
}

/* With 1-bit refcounts each compressed cluster has host clusters of its
 * own. */
static void test_one_bit_refcounts(void **state)
{
    (void)state;
    check_random(12, 1, 1000, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_refcount_limit),
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_random_layouts),
        cmocka_unit_test(test_one_bit_refcounts),
    };

    return cmocka_run_group_tests_name("packing", tests, NULL, NULL);
}
