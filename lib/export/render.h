/* Pass 2: any byte range of the image, as a pure function of the plan and
 * the input, into a descriptor or a caller's buffer. */
#ifndef Q2S_RENDER_H
#define Q2S_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "export/plan.h"
#include "export/source.h"

/* Writes the range to out_fd, which is never seeked. */
int q2s_render_fd(const struct q2s_plan *plan, struct q2s_source *source,
                  int out_fd, uint64_t offset, uint64_t length,
                  q2s_progress_callback *progress, void *progress_opaque,
                  struct q2s_error *err);

/* Fills buf with the count bytes from offset on. */
int q2s_render_memory(const struct q2s_plan *plan, struct q2s_source *source,
                      void *buf, size_t count, uint64_t offset,
                      struct q2s_error *err);

#endif
