/* An embedder's own input, read through its callbacks
 * (q2s_source_from_callbacks() in the public header). */
#ifndef Q2S_SOURCES_CALLBACKS_H
#define Q2S_SOURCES_CALLBACKS_H

#include "export/source.h"

/* Calls close(opaque) when it fails, as the public function promises. */
int q2s_source_new_callbacks(uint64_t size, q2s_read_callback *read,
                             q2s_data_callback *data,
                             q2s_close_callback *close, void *opaque,
                             struct q2s_source **result,
                             struct q2s_error *err);

#endif
