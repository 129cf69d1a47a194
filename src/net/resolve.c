/*
 * resolve.c — name resolution (loop.getaddrinfo): weft_getaddrinfo runs the
 * system's getaddrinfo on the default thread pool, because the resolver blocks
 * (files, DNS, NSS modules), and turns its EAI_* errors into weft codes with a
 * message naming what was asked. Also weft_format_address, the printable form of
 * an address the layer's messages use.
 *
 * Who frees a lookup. The record (question and answer) is handed to a pool thread,
 * and a caller cancelled meanwhile cannot tell whether the thread has it: the
 * pool drops a call that has not started without running it, and runs to the end
 * one that a worker has taken, possibly not yet inside lookup_run. So the record
 * carries a state both sides settle with one compare-and-swap:
 *   - the thread moves WAITING -> RUNNING before calling getaddrinfo;
 *   - a caller that leaves moves WAITING -> LEFT.
 * Whoever loses knows: a thread that finds LEFT skips the lookup; a caller that
 * finds RUNNING knows the record comes back to weft_to_thread_drop's drop, which
 * frees it with its answer. A caller that wins cannot know whether the record will
 * ever run, so it parks it on the loop's list of orphans: drop takes it off if it
 * comes back, and the network module frees the rest when the loop ends (after the
 * pools' drain, so no thread holds one then). Orphans are only the lookups
 * cancelled while queued behind busy threads, a few hundred bytes each.
 */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* Who frees a lookup whose caller was cancelled. The pool thread only moves WAITING to
 * RUNNING; every other step runs on the loop's thread, where the cancelled caller and
 * the drop (the answer coming back to nobody) may come in either order. */
enum {
    LOOKUP_WAITING = 0, /* not started */
    LOOKUP_RUNNING,     /* a thread is resolving it */
    LOOKUP_LEFT,        /* the caller left before it started: on net->orphans, freed by
                           the drop if a thread still takes it, else at the loop's end */
    LOOKUP_ABANDONED,   /* the caller left while it ran: the drop frees it */
    LOOKUP_RETURNED,    /* it came back to the drop before the cancelled caller resumed:
                           the caller frees it */
};

typedef struct lookup {
    weft__dlink orphan;      /* on net->orphans while LEFT */
    weft__net_loop *net;     /* set when orphaned */
    atomic_int state;
    struct addrinfo hints;
    struct addrinfo *res;
    int eai;
    int err;                 /* errno, for EAI_SYSTEM */
    char port[8];
    char *host;              /* NULL or points into name[] */
    char name[];
} lookup;

/* ------------------------------------------------------------------------ */
/* The errors                                                               */
/* ------------------------------------------------------------------------ */

int weft__resolve_error(int eai, int err, const char *host, int port)
{
    int code;
    const char *text;
    if (eai == EAI_SYSTEM) {
        code = err > 0 ? -err : -EIO;
        text = weft_strerror(code);
    } else {
        text = gai_strerror(eai);
        if (eai == EAI_NONAME || eai == EAI_NODATA || eai == EAI_ADDRFAMILY)
            code = WEFT_ENONAME; /* no address (of the family asked for) under that name */
        else if (eai == EAI_AGAIN)
            code = WEFT_ENAMETEMP;
        else if (eai == EAI_MEMORY)
            code = -ENOMEM;
        else
            code = WEFT_ERESOLVE;
    }
    return weft__set_errmsg(code, "cannot resolve %s%s%s port %d: %s", host ? "\"" : "",
                            host ? host : "(no host)", host ? "\"" : "", port, text);
}

/* ------------------------------------------------------------------------ */
/* The lookup, on a pool thread                                             */
/* ------------------------------------------------------------------------ */

static void *lookup_run(void *arg)
{
    lookup *lk = arg;
    int expected = LOOKUP_WAITING;
    if (!atomic_compare_exchange_strong(&lk->state, &expected, LOOKUP_RUNNING))
        return lk; /* its caller left before it started: nobody wants the answer */
    lk->eai = getaddrinfo(lk->host, lk->port, &lk->hints, &lk->res);
    lk->err = lk->eai == EAI_SYSTEM ? errno : 0;
    return lk;
}

static void lookup_free(lookup *lk)
{
    if (lk->res)
        freeaddrinfo(lk->res);
    free(lk);
}

/* On the loop, when the caller left while the lookup was out (weft_to_thread_drop). */
static void lookup_drop(void *result)
{
    lookup *lk = result;
    int state = atomic_load(&lk->state);
    if (state == LOOKUP_RUNNING) {
        /* Its caller was cancelled but has not run since: it still holds lk. */
        atomic_store(&lk->state, LOOKUP_RETURNED);
        return;
    }
    if (state == LOOKUP_LEFT)
        weft__dlist_unlink(&lk->net->orphans, &lk->orphan);
    lookup_free(lk);
}

void weft__resolve_term(weft_loop *L, weft__net_loop *net)
{
    (void)L;
    for (weft__dlink *l; (l = weft__dlist_pop_front(&net->orphans));)
        lookup_free(WEFT__CONTAINER_OF(l, lookup, orphan));
}

/* ------------------------------------------------------------------------ */
/* weft_getaddrinfo                                                         */
/* ------------------------------------------------------------------------ */

/* The answer of a lookup that needed no thread, after the one suspension every
 * awaited call makes (other ready tasks run first, as in asyncio). */
static int answer_after_yield(int eai, int err, struct addrinfo *res, const char *host, int port,
                              struct addrinfo **out)
{
    weft_task *self = weft__current();
    int rc = weft_yield();
    if (rc != 0) {
        if (res)
            freeaddrinfo(res);
        return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;
    }
    if (eai != 0)
        return weft__resolve_error(eai, err, host, port);
    *out = res;
    return 0;
}

int weft_getaddrinfo(const char *host, int port, const struct addrinfo *hints, struct addrinfo **res)
{
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_getaddrinfo must be called from a task of a running weft "
                                                 "loop (start one with weft_run)");
    if (!res)
        return weft__set_errmsg(-EINVAL, "weft_getaddrinfo: res is NULL");
    if (port < 0 || port > 65535)
        return weft__set_errmsg(-EINVAL, "weft_getaddrinfo: port %d is outside 0..65535", port);
    if (self->cancelling)
        return weft__cancelled_errmsg(self);

    struct addrinfo h = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    if (hints) {
        /* Only the fields getaddrinfo reads from hints; the rest must be zero. */
        h = (struct addrinfo){.ai_flags = hints->ai_flags, .ai_family = hints->ai_family,
                              .ai_socktype = hints->ai_socktype, .ai_protocol = hints->ai_protocol};
    }
    h.ai_flags |= AI_NUMERICSERV; /* the port is a number: never look up a service name */
    char service[8];
    snprintf(service, sizeof service, "%d", port);

    /* A numeric address (or no host at all) needs no resolver: answer it here,
     * still suspending once. Anything else is a name: off to a thread. */
    struct addrinfo numeric = h;
    numeric.ai_flags |= AI_NUMERICHOST;
    struct addrinfo *found = NULL;
    int eai = getaddrinfo(host, service, &numeric, &found);
    if (eai != EAI_NONAME || !host || (h.ai_flags & AI_NUMERICHOST))
        return answer_after_yield(eai, eai == EAI_SYSTEM ? errno : 0, eai == 0 ? found : NULL, host, port, res);

    size_t len = strlen(host);
    lookup *lk = calloc(1, sizeof *lk + len + 1);
    weft__net_loop *net = weft__net_state(weft__loop);
    if (!lk || !net) {
        free(lk);
        return weft__set_errmsg(-ENOMEM, "weft_getaddrinfo: out of memory resolving \"%s\"", host);
    }
    memcpy(lk->name, host, len + 1);
    lk->host = lk->name;
    memcpy(lk->port, service, sizeof lk->port);
    lk->hints = h;
    atomic_init(&lk->state, LOOKUP_WAITING);

    void *out = NULL;
    int rc = weft_to_thread_drop(lookup_run, lk, &out, lookup_drop);
    if (rc == 0) {
        /* out is lk: the thread ran it and the answer is ours. */
        eai = lk->eai;
        int err = lk->err;
        struct addrinfo *list = lk->res;
        lk->res = NULL;
        free(lk);
        if (eai != 0)
            return weft__resolve_error(eai, err, host, port);
        *res = list;
        return 0;
    }
    if (rc == -ECANCELED) {
        /* The orphan links go in first: a thread may take it the moment it is LEFT. */
        lk->net = net;
        int expected = LOOKUP_WAITING;
        if (atomic_compare_exchange_strong(&lk->state, &expected, LOOKUP_LEFT)) {
            weft__dlist_push_back(&net->orphans, &lk->orphan);
        } else if (expected == LOOKUP_RUNNING) {
            atomic_store(&lk->state, LOOKUP_ABANDONED); /* lookup_drop frees it */
        } else {
            lookup_free(lk); /* RETURNED: the answer came back first, and nobody wants it */
        }
        return weft__cancelled_errmsg(self);
    }
    /* The pool refused the call (no thread, no memory, shut down): it never ran. */
    free(lk);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Printing addresses                                                       */
/* ------------------------------------------------------------------------ */

char *weft_format_address(const struct sockaddr *addr, socklen_t len, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    char host[INET6_ADDRSTRLEN] = "";
    if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (addr && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        if (in6->sin6_scope_id)
            snprintf(buf, size, "[%s%%%u]:%u", host, (unsigned)in6->sin6_scope_id, (unsigned)ntohs(in6->sin6_port));
        else
            snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else if (addr && addr->sa_family == AF_UNIX && len >= (socklen_t)offsetof(struct sockaddr_un, sun_path)) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
        size_t n = (size_t)len - offsetof(struct sockaddr_un, sun_path);
        if (n > sizeof un->sun_path)
            n = sizeof un->sun_path;
        if (n == 0)
            snprintf(buf, size, "(unnamed)");
        else if (un->sun_path[0] == '\0') /* the abstract namespace, written as asyncio's users do */
            snprintf(buf, size, "@%.*s", (int)(n - 1), un->sun_path + 1);
        else
            snprintf(buf, size, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
    } else {
        snprintf(buf, size, "?");
    }
    return buf;
}

char *weft__format_ai(const struct addrinfo *ai, char *buf, size_t size)
{
    return weft_format_address(ai->ai_addr, ai->ai_addrlen, buf, size);
}
