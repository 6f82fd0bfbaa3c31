/* What to tell about a failure to connect to an NBD URI that comes from
 * TLS: libnbd's words for it name a protocol step, not the cause. */
#ifndef Q2S_SOURCE_NBD_TLS_H
#define Q2S_SOURCE_NBD_TLS_H

#include "export/source.h"

/* After q2s_source_open_nbd_uri(uri, ...) failed with err: rewrites err
 * when the failure was TLS (a server that requires it, or that does not
 * offer it, or a handshake that failed), with what to do; leaves any
 * other failure as it was. */
void q2s_nbd_explain_tls_failure(const char *uri, struct q2s_error *err);

#endif
