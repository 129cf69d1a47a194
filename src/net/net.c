/*
 * net.c — what the network layer's files share at run time: the checks that turn
 * a user's handle back into a stream, server or datagram record (net.h says how
 * handles are made), and the layer's loop module, which makes the per-loop state
 * when a loop starts and closes whatever is left when it ends.
 */
#include "net/net.h"

#include <errno.h>
#include <stdlib.h>

void *weft__net_from(const void *h, uint8_t kind, const char *what, int *err)
{
    static const char *const names[] = {"?", "stream", "server", "datagram endpoint"};
    const char *name = names[kind < 4 ? kind : 0];
    uintptr_t v = (uintptr_t)h;
    weft_loop *L = weft__loop;
    if (!h) {
        *err = weft__set_errmsg(-EINVAL, "%s: the %s is NULL", what, name);
        return NULL;
    }
    if (!L) {
        *err = weft__set_errmsg(WEFT_ENOTINLOOP, "%s needs a task or callback of the %s's loop", what, name);
        return NULL;
    }
    if ((v & 7) != L->serial || (v >> WEFT__TAG_SHIFT) == 0) {
        *err = weft__set_errmsg(WEFT_ESTATE, "%s: the %s belongs to another thread's loop (or is not a weft "
                                             "handle); use it from its own loop's tasks",
                                what, name);
        return NULL;
    }
    weft__net_obj *o = (weft__net_obj *)(v & WEFT__ADDR_MASK);
    if (o->kind != kind || o->gen != (v >> WEFT__TAG_SHIFT)) {
        static const char *const given_up[] = {"?", "closed or aborted", "its wait_closed or serve_forever returned",
                                               "closed"};
        *err = weft__set_errmsg(-ESTALE, "%s: the %s handle is stale: it was already given up (%s), and its "
                                         "record may now belong to another %s",
                                what, name, given_up[kind < 4 ? kind : 0], name);
        return NULL;
    }
    return o;
}

static int net_init(weft_loop *L, const weft_options *opts)
{
    (void)opts;
    weft__net_loop *net = calloc(1, sizeof *net);
    if (!net)
        return -ENOMEM;
    L->slots[WEFT__SLOT_NET] = net;
    return 0;
}

/* After main, every task and the pools' drain: the connection tasks have finished,
 * and no lookup is still running on a pool thread. */
static void net_term(weft_loop *L)
{
    weft__net_loop *net = weft__net_state(L);
    if (!net)
        return;
    weft__servers_term(L, net);
    weft__streams_term(L, net);
    weft__datagrams_term(L, net);
    weft__resolve_term(L, net);
    free(net);
    L->slots[WEFT__SLOT_NET] = NULL;
}

const weft__module weft__module_net = {"network", net_init, NULL, net_term};
