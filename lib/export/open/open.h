/* Opening an input by its name: the policy of a program (what "-" means,
 * when to start qemu-nbd, where temporary files go), which an embedder
 * with its own input leaves out. */
#ifndef Q2S_OPEN_H
#define Q2S_OPEN_H

#include <stdbool.h>

#include "export/source.h"

/* "-" for standard input, an NBD URI, or a file, block device or image in
 * options->format through qemu-nbd. */
int q2s_open_input(const char *input, const struct q2s_source_options *options,
                   struct q2s_source **source, struct q2s_error *err);

/* Whether q2s_open_input() would open input as a raw file or block device
 * by its name: what an external data file must be. */
bool q2s_input_is_raw_file(const char *input,
                           const struct q2s_source_options *options);

#endif
