/* The JSON that storage tools write about an image: allocation maps
 * (qemu-img map --output=json, rbd diff --format=json) and qemu-img
 * info --output=json.  Untrusted text: every failure is EPROTO with a
 * message that says where. */
#ifndef Q2S_MAP_JSON_H
#define Q2S_MAP_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "export/map.h"

/* A map made of text's extents (a new one in *map), parsed one element
 * at a time: memory for the extents, not for the whole document. */
int q2s_parse_map_json(const char *text, size_t length, struct q2s_map **map,
                       struct q2s_error *err);

/* "virtual-size" and "cluster-size" of a qemu-img info object, at most
 * Q2S_IMAGE_INFO_JSON_MAX_BYTES of text. */
#define Q2S_IMAGE_INFO_JSON_MAX_BYTES (16 * 1024 * 1024)
int q2s_parse_image_info_json(const char *text, size_t length,
                              uint64_t *virtual_size, uint32_t *cluster_size,
                              struct q2s_error *err);

#endif
