#include "xapi.h"

#include <stdio.h>
#include <stdlib.h>

#include "read_fds.h"

static const char *const option_names[XAPI_JSON_COUNT] = {
    [XAPI_MAP] = "--json-header-map",
    [XAPI_INFO] = "--json-header-info",
    [XAPI_DIFF_MAP] = "--json-header-diff-map",
    [XAPI_DIFF_INFO] = "--json-header-diff-info",
};

void xapi_options_init(struct xapi_options *xapi)
{
    xapi->diff_base = NULL;
    for (int i = 0; i < XAPI_JSON_COUNT; i++)
        xapi->fds[i] = -1;
}

const char *xapi_json_option(enum xapi_json which)
{
    return option_names[which];
}

/* Both of a map/info pair, or neither. */
static int check_pair(const struct xapi_options *xapi, enum xapi_json map,
                      enum xapi_json info, char *message,
                      size_t message_size)
{
    if ((xapi->fds[map] >= 0) == (xapi->fds[info] >= 0))
        return 0;
    snprintf(message, message_size, "%s needs %s too",
             option_names[xapi->fds[map] >= 0 ? map : info],
             option_names[xapi->fds[map] >= 0 ? info : map]);
    return -1;
}

/* A parsed pair: the map and, from the info, the virtual size. */
struct parsed_pair {
    struct q2s_map *map;
    uint64_t virtual_size;
};

static int parse_pair(const struct fd_text *map_text,
                      const struct fd_text *info_text, uint32_t cluster_size,
                      struct parsed_pair *pair, char *message,
                      size_t message_size)
{
    struct q2s_error *err = NULL;
    uint32_t info_cluster_size;

    if (q2s_map_from_json(map_text->data, map_text->length, &pair->map,
                          &err) < 0) {
        snprintf(message, message_size, "%s: %s", map_text->name,
                 q2s_error_message(err));
        q2s_error_free(err);
        return -1;
    }
    if (q2s_image_info_from_json(info_text->data, info_text->length,
                                 &pair->virtual_size, &info_cluster_size,
                                 &err) < 0) {
        snprintf(message, message_size, "%s: %s", info_text->name,
                 q2s_error_message(err));
        q2s_error_free(err);
        return -1;
    }
    /* The fork's clusters are the map's divided by -c. */
    if (info_cluster_size != cluster_size) {
        snprintf(message, message_size, "%s: the cluster size is %u, but "
                 "the image's is %u (-c): they must be the same",
                 info_text->name, info_cluster_size, cluster_size);
        return -1;
    }
    return 0;
}

int xapi_apply(const struct xapi_options *xapi, struct q2s_options *options,
               const volatile sig_atomic_t *interrupted, char *message,
               size_t message_size)
{
    struct fd_text texts[XAPI_JSON_COUNT];
    char names[XAPI_JSON_COUNT][48];
    size_t index_of[XAPI_JSON_COUNT];
    struct parsed_pair input = { NULL, 0 }, base = { NULL, 0 };
    uint32_t cluster_size = q2s_options_get_cluster_size(options);
    struct q2s_error *err = NULL;
    size_t count = 0;
    int ret = -1;

    if (check_pair(xapi, XAPI_MAP, XAPI_INFO, message, message_size) < 0 ||
        check_pair(xapi, XAPI_DIFF_MAP, XAPI_DIFF_INFO, message,
                   message_size) < 0)
        return -1;
    if (xapi->diff_base && xapi->fds[XAPI_MAP] >= 0 &&
        xapi->fds[XAPI_DIFF_MAP] < 0) {
        snprintf(message, message_size, "--diff with %s needs the base's "
                 "map and info too (%s and %s)", option_names[XAPI_MAP],
                 option_names[XAPI_DIFF_MAP], option_names[XAPI_DIFF_INFO]);
        return -1;
    }
    for (int i = 0; i < XAPI_JSON_COUNT; i++) {
        if (xapi->fds[i] < 0)
            continue;
        index_of[i] = count;
        snprintf(names[count], sizeof names[count], "%s %d",
                 option_names[i], xapi->fds[i]);
        texts[count] = (struct fd_text){ .fd = xapi->fds[i],
                                         .name = names[count] };
        count++;
    }
    if (read_fds_to_end(texts, count, JSON_TEXT_MAX_BYTES, interrupted,
                        message, message_size) < 0)
        goto out;
    if (xapi->fds[XAPI_MAP] >= 0 &&
        parse_pair(&texts[index_of[XAPI_MAP]], &texts[index_of[XAPI_INFO]],
                   cluster_size, &input, message, message_size) < 0)
        goto out;
    if (xapi->fds[XAPI_DIFF_MAP] >= 0 &&
        parse_pair(&texts[index_of[XAPI_DIFF_MAP]],
                   &texts[index_of[XAPI_DIFF_INFO]], cluster_size, &base,
                   message, message_size) < 0)
        goto out;
    if ((input.map &&
         q2s_options_set_input_map(options, input.map, input.virtual_size,
                                   &err) < 0) ||
        /* Without --diff and the input's map, the fork ignores the
         * base's. */
        (base.map && xapi->diff_base && input.map &&
         q2s_options_set_base_map(options, base.map, base.virtual_size,
                                  &err) < 0)) {
        snprintf(message, message_size, "%s", q2s_error_message(err));
        q2s_error_free(err);
        goto out;
    }
    ret = 0;
out:
    q2s_map_free(input.map);
    q2s_map_free(base.map);
    fd_texts_free(texts, count);
    return ret;
}
