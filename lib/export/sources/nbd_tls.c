#define _GNU_SOURCE
#include "export/sources/nbd_tls.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

/* The text is libnbd's (1.14: "handshake: server requires TLS encryption
 * first", "handshake: server refused TLS, but handle TLS setting is
 * 'require'", "gnutls_handshake: ...", "getlogin_r: ..."), which has no
 * other way to tell these apart: libnbd reports the server's
 * NBD_REP_ERR_TLS_REQD as ENOTSUP, as it does for a server without TLS.
 * Another libnbd that words them otherwise leaves its own message, which
 * says the same less plainly. */
void q2s_nbd_explain_tls_failure(const char *uri, struct q2s_error *err)
{
    bool tls = strncmp(uri, "nbds", 4) == 0;
    const char *detail;
    char said[sizeof err->message];

    if (!tls) {
        if (err->code == ENOTSUP &&
            strstr(err->message, "server requires TLS"))
            q2s_error_set(err, ENOTSUP, "%s: the server requires TLS: use an "
                          "nbds:// or nbds+unix:// URI with tls-psk-file= or "
                          "tls-certificates=", uri);
        return;
    }
    if (err->code == ENOTSUP && strstr(err->message, "server refused TLS")) {
        q2s_error_set(err, ENOTSUP, "%s: the server does not offer TLS, "
                      "which an nbds URI requires", uri);
    } else if (strstr(err->message, "getlogin_r")) {
        /* libnbd's user name for TLS, when the URI has none, is the login
         * name, which a process without a terminal may not have. */
        q2s_error_set(err, EINVAL, "%s: no user name for TLS: give it in the "
                      "URI, as in nbds+unix://USER@/?socket=PATH&"
                      "tls-psk-file=FILE", uri);
    } else if ((detail = strstr(err->message, "gnutls_"))) {
        snprintf(said, sizeof said, "%s", detail);
        if (strstr(said, "certificate verification"))
            q2s_error_set(err, err->code, "%s: the server's TLS certificate "
                          "is not trusted (not signed by the CA in "
                          "tls-certificates=DIR, or not for this host "
                          "name): %s", uri, said);
        else
            q2s_error_set(err, err->code, "%s: the TLS handshake failed: "
                          "the server did not take the credentials (a wrong "
                          "key or user name, or a client certificate it "
                          "does not trust?): %s", uri, said);
    }
}
