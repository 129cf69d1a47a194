/*
 * weft/udp.h — UDP datagram endpoints: asyncio's loop.create_datagram_endpoint in
 * straight-line form. Where asyncio calls a protocol's datagram_received, a weft
 * task calls weft_datagram_recvfrom and suspends until a datagram comes.
 *
 *   asyncio                                            weft
 *   t, p = await loop.create_datagram_endpoint(        d = weft_datagram_open(&(weft_datagram_options){
 *       P, local_addr=("127.0.0.1", 9999))                 .local_host = "127.0.0.1", .local_port = 9999})
 *   t.sendto(data, addr)                               weft_datagram_sendto(d, data, n, addr, addrlen)
 *   P.datagram_received(data, addr)                    n = weft_datagram_recvfrom(d, buf, size, &addr, &len)
 *   P.error_received(exc)                              a negative result of recvfrom or sendto
 *   t.get_extra_info("sockname")                       weft_datagram_sockname(d, &addr, &len)
 *   t.close()                                          weft_datagram_close(d)
 *
 * An endpoint is one UDP socket. With a remote address it is connected: it sends
 * without an address, receives only that peer's datagrams, and hears of the peer's
 * ICMP "port unreachable" as -ECONNREFUSED from its next recvfrom or sendto. An
 * endpoint belongs to the loop that opened it; an endpoint left open when its loop
 * ends is closed then and reported on stderr (asyncio's ResourceWarning). Handles
 * are checked as task handles are: one used after weft_datagram_close gives
 * -ESTALE, another loop's gives WEFT_ESTATE.
 *
 * One task at a time may wait in recvfrom, and one in sendto (a send waits only
 * while the socket's buffer is full): a second gets -EBUSY. Several tasks may
 * send and receive when none has to wait.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_UDP_H
#define WEFT_UDP_H

#include "base.h"
#include "net.h"

#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How weft_datagram_open makes its endpoint; all zeros is not enough by itself:
 * give a local address, a remote address, or a family. */
typedef struct weft_datagram_options {
    const char *local_host;  /* bind to this address (a name is resolved); NULL with
                                local_port: every address of the family ("0.0.0.0", "::") */
    int local_port;          /* 0 = a port the kernel picks */
    const char *remote_host; /* non-NULL: connect to remote_host:remote_port */
    int remote_port;
    int family;              /* 0 = AF_UNSPEC (from the addresses); AF_INET or AF_INET6 */
    int reuse_port;          /* nonzero: SO_REUSEPORT (several endpoints share a port) */
    int allow_broadcast;     /* nonzero: SO_BROADCAST */
} weft_datagram_options;

/*
 * weft_datagram_open — open a UDP endpoint (loop.create_datagram_endpoint). The
 * names are resolved with weft_getaddrinfo; each local and remote address of the
 * same family is tried in the resolver's order until one socket binds and connects.
 * Without local_host or local_port the kernel picks the local address at the first
 * send (or at connect). opts NULL or without any address nor family is an error.
 * Returns: the endpoint (given up with weft_datagram_close), or NULL with
 *   weft_errcode() and weft_errmsg() saying why.
 * Suspends: always, at least once: while resolving (other ready tasks run first).
 * Errors: the resolver's (WEFT_ENONAME, WEFT_ENAMETEMP, WEFT_ERESOLVE);
 *   -EADDRINUSE, -EADDRNOTAVAIL, -EACCES binding; the socket's and connect's errors
 *   (-ENETUNREACH, ...): when every address failed, the last one's, with each
 *   address and its error in weft_errmsg(); -EINVAL (no address nor family, a
 *   family other than AF_INET / AF_INET6, a port outside 0..65535, remote_host
 *   without remote_port); -EMFILE, -ENFILE, -ENOMEM; -ECANCELED; WEFT_ENOTINLOOP.
 * On cancel: returns NULL with -ECANCELED; no socket is left open.
 */
WEFT_API WEFT_WAIT weft_datagram *weft_datagram_open(const weft_datagram_options *opts);

/*
 * weft_datagram_sendto — send one datagram of n bytes (DatagramTransport.sendto).
 * addr NULL sends to a connected endpoint's peer; a connected endpoint also takes
 * its peer's own address.
 * Returns: n (a datagram is sent whole or not at all).
 * Suspends: only while the socket's send buffer is full, until it has room.
 * Errors: -ECONNREFUSED (connected: the peer's port was unreachable, reported by an
 *   earlier datagram's ICMP error; the endpoint stays usable); -EISCONN (an address
 *   other than the peer's on a connected endpoint); -EDESTADDRREQ (no address on an
 *   endpoint that is not connected); -EMSGSIZE (larger than a datagram can be);
 *   -EAFNOSUPPORT (an address of another family); -ENETUNREACH, -EHOSTUNREACH and
 *   sendto's other errors, negated; -EINVAL (NULL buf with n > 0); -EBUSY (another
 *   task is already waiting to send on d); WEFT_ECLOSED (d was closed while the
 *   task waited); -ESTALE; WEFT_ESTATE; -ECANCELED; WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED; nothing was sent.
 */
WEFT_API WEFT_WAIT ssize_t weft_datagram_sendto(weft_datagram *d, const void *buf, size_t n,
                                                const struct sockaddr *addr, socklen_t addrlen);

/*
 * weft_datagram_recvfrom — receive one datagram (what asyncio hands to
 * datagram_received). The sender's address goes to addr (*addrlen: its size on
 * entry, the address's length on return); both may be NULL.
 * Returns: the datagram's length (0 for an empty datagram), its bytes in buf.
 * Suspends: when no datagram is waiting, until one comes or an error does.
 * Errors: -EMSGSIZE when the datagram was longer than n: buf holds its first n
 *   bytes, the rest is lost, addr is set, weft_errmsg() gives the full length (a
 *   buffer of 65535 bytes never truncates UDP); -ECONNREFUSED (connected: the peer's
 *   port was unreachable, after an ICMP error; the next call receives again);
 *   recvfrom's other errors, negated; -EINVAL (NULL buf with n > 0, or addr
 *   without addrlen); -EBUSY (another task is already receiving on d);
 *   WEFT_ECLOSED (d was closed while the task waited); -ESTALE; WEFT_ESTATE;
 *   -ECANCELED; WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED; no datagram was taken: the next call gets it.
 */
WEFT_API WEFT_WAIT ssize_t weft_datagram_recvfrom(weft_datagram *d, void *buf, size_t n, struct sockaddr *addr,
                                                  socklen_t *addrlen);

/* weft_datagram_sockname / weft_datagram_peername — the endpoint's local address
 * and a connected endpoint's peer (get_extra_info('sockname' / 'peername'));
 * *len is the size of addr on entry, the address's length on return.
 * Returns: 0.
 * Suspends: never.
 * Errors: -ENOTCONN (peername of an endpoint that is not connected); -EINVAL (NULL
 *   addr or len); -ESTALE; WEFT_ESTATE; WEFT_ENOTINLOOP. */
WEFT_API int weft_datagram_sockname(weft_datagram *d, struct sockaddr *addr, socklen_t *len);
WEFT_API int weft_datagram_peername(weft_datagram *d, struct sockaddr *addr, socklen_t *len);

/* weft_datagram_fd — the socket (get_extra_info('socket')), for setsockopt (say,
 * multicast membership); receiving from it directly takes datagrams from recvfrom.
 * Returns: the descriptor.
 * Suspends: never.
 * Errors: -ESTALE; WEFT_ESTATE; WEFT_ENOTINLOOP. */
WEFT_API int weft_datagram_fd(weft_datagram *d);

/* weft_datagram_close — close the socket and give up the handle
 * (DatagramTransport.close). Tasks waiting in recvfrom or sendto on d wake with
 * WEFT_ECLOSED. Datagrams already sent are the kernel's: nothing is waited for.
 * Returns: 0.
 * Suspends: never.
 * Errors: -ESTALE (closed already); WEFT_ESTATE; WEFT_ENOTINLOOP. */
WEFT_API int weft_datagram_close(weft_datagram *d);

#ifdef __cplusplus
}
#endif

#endif
