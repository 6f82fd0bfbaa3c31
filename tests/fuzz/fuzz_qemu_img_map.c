/* The text of `qemu-img map` (lib/export/open/qemu_img_map.c): what is kept is
 * sorted, disjoint, never empty, and ends where a uint64_t can say, as
 * the qemu-nbd source that reads through it relies on. */
#include "export/open/qemu_img_map.h"
#include "fuzz.h"

/* Lines of other files than path are dropped, as those of a backing file
 * are. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_string(data, size);
    struct q2s_mapping_vector mappings;
    struct q2s_error err = { .code = 0 };
    const char *path = "/images/disk.qcow2";

    FUZZ_CHECK(q2s_parse_qemu_img_map_text(text, path, &mappings, &err) ==
               0);
    for (size_t i = 0; i < mappings.len; i++) {
        const struct q2s_mapping *m = &mappings.ptr[i];

        FUZZ_CHECK(m->length > 0);
        FUZZ_CHECK(m->start + m->length > m->start);
        FUZZ_CHECK(m->file_offset + m->length > m->file_offset);
        if (i > 0)
            FUZZ_CHECK(m->start >= mappings.ptr[i - 1].start +
                                       mappings.ptr[i - 1].length);
    }
    q2s_mapping_vector_free(&mappings);
    free(text);
    return 0;
}
