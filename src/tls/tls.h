/*
 * tls.h — the TLS layer's internal header. The layer sits above net/: it gives a
 * stream its TLS connection through the hooks in net/net.h (weft__tls_ops, and
 * weft__tls_hook at the head of every weft_tls_context) and keeps OpenSSL's types
 * to itself.
 *
 *   tls.c   contexts, the connection inside a TLS stream, the handshake, errors
 */
#ifndef WEFT__SRC_TLS_H
#define WEFT__SRC_TLS_H

#include "net/net.h"

#endif
