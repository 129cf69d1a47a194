/*
 * net.h — the network layer's internal header: what its files share. The layer
 * builds asyncio's streams, servers and datagram endpoints on the core's
 * descriptor watchers and suspensions, and resolves names on the thread pool.
 *
 *   resolve.c   weft_getaddrinfo: getaddrinfo on the default pool, errors mapped
 *   connect.c   connecting a TCP socket to host:port: every address, happy eyeballs
 *   stream.c    weft_stream: buffered reading and writing, drain, close
 *   server.c    weft_server: listening sockets, the accept loop, connection tasks
 *   datagram.c  weft_datagram: UDP endpoints
 */
#ifndef WEFT__SRC_NET_H
#define WEFT__SRC_NET_H

#include "exec/exec.h"
#include "util/dlist.h"

#include <netdb.h>
#include <sys/socket.h>

/*
 * Connects a TCP socket to host:port as weft_open_connection describes (resolving,
 * every address tried, happy eyeballs, local address, TCP_NODELAY unless o->nagle).
 * o may be NULL. Returns the connected, non-blocking, close-on-exec descriptor, or a
 * negative error with the message set (weft__set_errmsg). Suspends.
 */
int weft__connect_tcp(const char *host, int port, const weft_connect_options *o);

/* The resolver's error (EAI_*, with errno for EAI_SYSTEM) as a weft code, with the
 * message naming host and the resolver's text. */
int weft__resolve_error(int eai, int err, const char *host, int port);

/*
 * The network's per-loop state (slots[WEFT__SLOT_NET]), made at first use. Its
 * module (datagram.c) frees it when the loop ends, after the thread pools'
 * drain: by then no lookup is still running on a pool thread.
 */
typedef struct weft__net_loop {
    weft__dlist datagrams;        /* open endpoints (datagram.c), reported if left open */
    struct weft__dgram *free_dgrams; /* closed endpoint records, kept for stale handles */
    weft__dlist orphans;          /* lookups whose caller left before they ran (resolve.c) */
} weft__net_loop;

/* The current loop's network state, made on first use; NULL on ENOMEM. */
weft__net_loop *weft__net_state(weft_loop *L);
/* resolve.c: frees the lookups left on net->orphans (the loop is ending). */
void weft__resolve_term(weft__net_loop *net);
/* datagram.c: the loop's network module. */
extern const weft__module weft__module_net;

/* weft_format_address for a getaddrinfo entry. */
char *weft__format_ai(const struct addrinfo *ai, char *buf, size_t size);

#endif
