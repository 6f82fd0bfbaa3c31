/* The text of qemu-img map as the qemu-nbd source keeps it: the extents
 * of the image's own file, sorted and disjoint; none at all for a text
 * it does not expect, which then reads everything through NBD. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export/open/qemu_img_map.h"

#define PATH "/images/disk.qcow2"
#define COLUMNS "Offset          Length          Mapped to       File\n"

static struct q2s_mapping_vector parsed(const char *text)
{
    struct q2s_mapping_vector mappings;
    struct q2s_error err = { .code = 0 };
    char *copy = strdup(text);

    assert_non_null(copy);
    assert_int_equal(q2s_parse_qemu_img_map_text(copy, PATH, &mappings,
                                                 &err), 0);
    free(copy);
    return mappings;
}

static void test_own_file_kept(void **state)
{
    struct q2s_mapping_vector m;

    (void)state;
    m = parsed(COLUMNS
               "0               0x2000          0x5000          " PATH "\n"
               "0x2000          0x1000          0               /images/base.raw\n"
               "0x10000         0x10000         0x50000         " PATH "\n");
    assert_int_equal(m.len, 2);
    assert_int_equal(m.ptr[0].start, 0);
    assert_int_equal(m.ptr[0].length, 0x2000);
    assert_int_equal(m.ptr[0].file_offset, 0x5000);
    assert_int_equal(m.ptr[1].start, 0x10000);
    assert_int_equal(m.ptr[1].file_offset, 0x50000);
    q2s_mapping_vector_free(&m);
}

/* Each of these drops the whole map. */
static void test_unexpected_dropped(void **state)
{
    static const char *const texts[] = {
        COLUMNS "0x0 0x10 0x0 " PATH "\n0x8 0x10 0x20 " PATH "\n",
        COLUMNS "0x0 0x10 0x0 " PATH,
        COLUMNS "x 0x10 0x0 " PATH "\n",
        COLUMNS "0x0 0 0x0 " PATH "\n",
        /* Fuzz findings: an extent whose end, in the guest or in the
         * file, wraps past 2^64 was kept. */
        COLUMNS "0xfffffffffffffff0 0x20 0x0 " PATH "\n",
        COLUMNS "0 0x1000 0xfffffffffffff000 " PATH "\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct q2s_mapping_vector m = parsed(texts[i]);

        if (m.len != 0)
            fail_msg("kept %zu extents of: %s", m.len, texts[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_file_kept),
        cmocka_unit_test(test_unexpected_dropped),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
