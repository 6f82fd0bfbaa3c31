/* Where an image's data lies in its own file, as `qemu-img map` says. */
#ifndef Q2S_QEMU_IMG_MAP_H
#define Q2S_QEMU_IMG_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/vector.h"
#include "error.h"
#include "qcow2-to-stdout.h"

struct q2s_mapping {
    uint64_t start;        /* guest offset */
    uint64_t length;
    uint64_t file_offset;  /* where those bytes are in the image file */
};
Q2S_DEFINE_VECTOR_TYPE(q2s_mapping_vector, struct q2s_mapping)

/* Runs `qemu-img map --image-opts IMAGE_OPTIONS` and keeps the extents
 * mapped into the file named path itself: not a backing file, an external
 * data file or another extent file.  Returns them sorted and disjoint, or
 * none (mappings->len == 0) when qemu-img is missing, fails (as it does for
 * compressed or encrypted clusters), or says anything unexpected: the
 * map is only ever a shortcut, and so when it takes longer than
 * options->timeout_seconds.  With options->untrusted, qemu-img runs
 * within the resource limits for images from someone else.  Returns -1
 * only when out of memory or interrupted (options->interrupted), having
 * killed qemu-img. */
int q2s_qemu_img_map(const char *image_options, const char *path,
                     const struct q2s_source_options *options,
                     struct q2s_mapping_vector *mappings,
                     struct q2s_error *err);

/* The text qemu-img map prints (a line naming the columns, then "START
 * LENGTH OFFSET FILE" lines) into mappings, as q2s_qemu_img_map() keeps
 * them: those of the file named path, sorted and disjoint, or none at all
 * for a text it does not expect.  text is changed.  -1 only when out of
 * memory. */
int q2s_parse_qemu_img_map_text(char *text, const char *path,
                                struct q2s_mapping_vector *mappings,
                                struct q2s_error *err);

#endif
