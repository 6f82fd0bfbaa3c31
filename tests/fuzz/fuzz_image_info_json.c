/* qemu-img info --output=json (lib/export/map_json.c), as --json-header-info
 * gives it: what is accepted is a virtual size below 2^63 and a cluster
 * size from 1 to 2^32 - 1, written back it reads as itself, and what is
 * refused leaves the caller's variables as they were. */
#include <errno.h>
#include <inttypes.h>

#include "export/map_json.h"
#include "fuzz.h"

#define UNTOUCHED_SIZE UINT64_C(0x5a5a5a5a5a5a5a5a)
#define UNTOUCHED_CLUSTER UINT32_C(0xa5a5a5a5)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct q2s_error err = { .code = 0 };
    uint64_t virtual_size = UNTOUCHED_SIZE, again_size;
    uint32_t cluster_size = UNTOUCHED_CLUSTER, again_cluster;
    char text[96];
    int length;

    if (q2s_parse_image_info_json((const char *)data, size, &virtual_size,
                                  &cluster_size, &err) < 0) {
        FUZZ_CHECK(err.code == EPROTO || err.code == ENOMEM);
        fuzz_check_message(err.message);
        FUZZ_CHECK(virtual_size == UNTOUCHED_SIZE);
        FUZZ_CHECK(cluster_size == UNTOUCHED_CLUSTER);
        return 0;
    }
    FUZZ_CHECK(virtual_size <= INT64_MAX);
    FUZZ_CHECK(cluster_size >= 1);
    length = snprintf(text, sizeof text, "{\"virtual-size\": %" PRIu64
                      ", \"cluster-size\": %" PRIu32 "}", virtual_size,
                      cluster_size);
    FUZZ_CHECK(length > 0 && (size_t)length < sizeof text);
    FUZZ_CHECK(q2s_parse_image_info_json(text, (size_t)length, &again_size,
                                         &again_cluster, &err) == 0);
    FUZZ_CHECK(again_size == virtual_size && again_cluster == cluster_size);
    return 0;
}
