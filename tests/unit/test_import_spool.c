/* The importer's keeping of bytes: the heap of needs comes out nearest
 * first; the host spool gives back what it kept, wherever it lies
 * (memory, the temporary file, the bytes not yet flushed, runs of zeros
 * kept as bounds), says where a range was not kept, and forgets
 * everything when cleared; the byte store keeps to its memory budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "import/byte_store.h"
#include "import/host_spool.h"
#include "import/need_heap.h"

static void test_heap_order(void **state)
{
    struct need_heap heap = {0};
    uint64_t starts[] = {90, 5, 77, 5, 1000, 0, 33, 64, 2, 500};
    uint64_t last = 0;

    (void)state;
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        struct import_need need = {.host_start = starts[i],
                                   .host_end = starts[i] + 1};

        assert_int_equal(need_heap_push(&heap, &need), 0);
    }
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        struct import_need need;

        assert_non_null(need_heap_top(&heap));
        need_heap_pop(&heap, &need);
        assert_true(need.host_start >= last);
        last = need.host_start;
    }
    assert_null(need_heap_top(&heap));
    need_heap_free(&heap);
}

static void pattern(uint8_t *p, size_t n, uint64_t at)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((at + i) * 31 % 251 + 1);
}

/* budget: memory for the store; the rest goes to the file. */
static void spool_round_trip(uint64_t budget)
{
    struct q2s_error err = {.code = 0};
    struct host_spool spool;
    size_t big = 3 * 1024 * 1024 + 17;
    uint8_t *in = malloc(big), *out = malloc(big), *zeros = calloc(1, 70000);
    uint64_t missing = 0;

    assert_non_null(in);
    assert_non_null(out);
    assert_non_null(zeros);
    host_spool_init(&spool, budget, "/tmp");
    /* [100, 100 + big), then a gap, then zeros, then a few bytes. */
    pattern(in, big, 100);
    assert_int_equal(host_spool_add(&spool, 100, in, big, &err), 0);
    assert_int_equal(host_spool_add(&spool, 5000000, zeros, 70000, &err), 0);
    assert_int_equal(host_spool_add(&spool, 5070000, in, 10, &err), 0);
    assert_int_equal(host_spool_end(&spool), 5070010);

    /* Across the pieces of the data. */
    assert_int_equal(host_spool_read(&spool, 100, (uint32_t)big, out, &missing,
                                     &err), 0);
    assert_memory_equal(in, out, big);
    assert_int_equal(host_spool_read(&spool, 1048000, 5000, out, &missing,
                                     &err), 0);
    assert_memory_equal(in + 1048000 - 100, out, 5000);
    /* The zeros and the bytes after them, still pending. */
    memset(out, 0xff, 70010);
    assert_int_equal(host_spool_read(&spool, 5000000, 70010, out, &missing,
                                     &err), 0);
    assert_memory_equal(out, zeros, 70000);
    assert_memory_equal(out + 70000, in, 10);
    /* Not kept: before the first byte, in the gap, past the end. */
    assert_int_equal(host_spool_read(&spool, 99, 2, out, &missing, &err), 1);
    assert_int_equal(missing, 99);
    assert_int_equal(host_spool_read(&spool, big + 90, 20, out, &missing,
                                     &err), 1);
    assert_int_equal(missing, big + 100);
    assert_int_equal(host_spool_read(&spool, 5070005, 6, out, &missing, &err),
                     1);
    assert_int_equal(missing, 5070010);
    assert_true(spool.peak_bytes >= big + 70010);
    if (budget < big)
        assert_true(spool.store.file_peak > 0);
    else
        assert_int_equal(spool.store.file_peak, 0);

    host_spool_clear(&spool);
    assert_int_equal(host_spool_read(&spool, 100, 1, out, &missing, &err), 1);
    assert_int_equal(spool.store.memory_held, 0);
    host_spool_free(&spool);
    free(in);
    free(out);
    free(zeros);
}

static void test_spool_in_memory(void **state)
{
    (void)state;
    spool_round_trip(UINT64_C(1) << 30);
}

static void test_spool_in_file(void **state)
{
    (void)state;
    spool_round_trip(1024 * 1024);
}

static void test_spool_no_memory(void **state)
{
    (void)state;
    spool_round_trip(0);
}

static void test_store_budget(void **state)
{
    struct q2s_error err = {.code = 0};
    struct byte_store store;
    struct byte_store_piece a, b;
    uint8_t data[100], back[100];

    (void)state;
    pattern(data, sizeof data, 0);
    byte_store_init(&store, 150, "/tmp", "test bytes");
    assert_int_equal(byte_store_put(&store, data, 100, &a, &err), 0);
    assert_non_null(a.data);
    /* Past the budget: the file. */
    assert_int_equal(byte_store_put(&store, data, 100, &b, &err), 0);
    assert_null(b.data);
    assert_int_equal(byte_store_get(&store, &b, 10, 90, back, &err), 0);
    assert_memory_equal(back, data + 10, 90);
    byte_store_release(&store, &a);
    assert_int_equal(store.memory_left, 150);
    byte_store_release(&store, &b);
    byte_store_close(&store);

    /* A directory where no file can be made. */
    byte_store_init(&store, 0, "/nonexistent/directory", "test bytes");
    assert_int_equal(byte_store_put(&store, data, 100, &a, &err), -1);
    assert_non_null(strstr(err.message, "/nonexistent/directory"));
    byte_store_close(&store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_order),
        cmocka_unit_test(test_spool_in_memory),
        cmocka_unit_test(test_spool_in_file),
        cmocka_unit_test(test_spool_no_memory),
        cmocka_unit_test(test_store_budget),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
