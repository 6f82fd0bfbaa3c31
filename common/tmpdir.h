/* Where temporary files go, in both directions: the exporter's spool of a
 * pipe on standard input and its caches, the importer's spools. */
#ifndef Q2S_COMMON_TMPDIR_H
#define Q2S_COMMON_TMPDIR_H

/* The directory for temporary files: $TMPDIR, or /tmp. */
const char *q2s_temporary_directory(void);

#endif
