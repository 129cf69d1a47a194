/*
 * curl_weft.c — drives one libcurl multi handle from a weft loop (curl_weft.h says what
 * for). curl tells us which sockets to watch and when to call it back; weft watches them
 * and keeps the timer; each transfer ends by setting a future its task awaits:
 *
 *   CURLMOPT_SOCKETFUNCTION  on_socket: weft_add_reader / weft_add_writer per socket,
 *                            weft_remove_reader / weft_remove_writer on CURL_POLL_REMOVE
 *   CURLMOPT_TIMERFUNCTION   on_timer:  one weft_call_later, replaced at each change
 *   readiness or timer       drive:     curl_multi_socket_action, then
 *                            collect_done: curl_multi_info_read → the transfer's future
 *
 * Everything curl does happens in loop callbacks or in the calling task, on the loop's
 * thread: no locks, and curl's calls never block (sockets are non-blocking, and the
 * resolver runs on curl's own thread, polled through the timer).
 */
#define _POSIX_C_SOURCE 200809L
#include "curl_weft.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

/* A socket curl asked us to watch; curl keeps the pointer for us (curl_multi_assign)
 * and passes it back on every change, and the callbacks need the descriptor. */
struct watched {
    weft_curl *cw;
    curl_socket_t fd;
    struct watched *prev, *next;
};

/* One request in flight. On the heap, not the task's stack: loop callbacks reach it
 * (CURLINFO_PRIVATE) while its task is suspended. */
struct transfer {
    weft_curl *cw;
    CURL *easy;
    weft_future *done; /* set by collect_done or fail_all; awaited by weft_curl_get */
    bool in_multi;     /* still added to cw->multi: the task must take it out */
    CURLcode result;   /* curl's outcome, once done */
    CURLMcode multi_error;
    struct weft_curl_body *out;
    bool out_of_memory;
    struct transfer *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

struct weft_curl {
    CURLM *multi;
    weft_loop *loop;
    weft_call timer;
    bool timer_set;
    bool closing; /* in weft_curl_free: no timer may be scheduled any more */
    struct watched *sockets;
    struct transfer *transfers;
    char *ca_file; /* weft_curl_set_ca_file, or NULL: the system's store */
};

/* weft_fail for a call that returns a code rather than a coroutine's NULL: records the
 * message as the task's error (weft_curl_get's contract) and gives the code back. */
static long fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long fail(int code, const char *fmt, ...)
{
    char message[CURL_ERROR_SIZE + 512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    weft_fail(code, "%s", message);
    return code;
}

/* ------------------------------------------------------------------------ */
/* Completion                                                               */
/* ------------------------------------------------------------------------ */

/* The handle's list of transfers in flight, which fail_all and weft_curl_free need. */
static void link_transfer(struct transfer *t)
{
    weft_curl *cw = t->cw;
    t->in_multi = true;
    t->prev = NULL;
    t->next = cw->transfers;
    if (cw->transfers)
        cw->transfers->prev = t;
    cw->transfers = t;
}

static void unlink_transfer(struct transfer *t)
{
    weft_curl *cw = t->cw;
    t->in_multi = false;
    if (t->prev)
        t->prev->next = t->next;
    else
        cw->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

/* Takes t out of the multi handle and wakes its task. The future may already be
 * cancelled (its task was cancelled and has not run yet): setting it then fails
 * harmlessly, and the task finds the transfer already out of the multi. */
static void finish(struct transfer *t)
{
    curl_multi_remove_handle(t->cw->multi, t->easy);
    unlink_transfer(t);
    (void)weft_future_set_result(t->done, NULL);
}

/* Hands every finished transfer to its task. Called after each socket action, never
 * from inside one of curl's callbacks (curl forbids removing handles there). */
static void collect_done(weft_curl *cw)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(cw->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        char *private = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &private);
        struct transfer *t = (struct transfer *)private;
        t->result = msg->data.result; /* msg is invalid once the handle is removed */
        finish(t);
    }
}

/* The multi handle itself failed (out of memory, or a callback of ours refused): no
 * transfer will report DONE, so each is ended here rather than left waiting forever. */
static void fail_all(weft_curl *cw, CURLMcode mc)
{
    while (cw->transfers) {
        cw->transfers->multi_error = mc;
        finish(cw->transfers);
    }
}

/* Tells curl what happened on fd (or that its timer expired), then collects results.
 * CURLM_BAD_SOCKET only says curl no longer knows fd (a readiness report that arrived
 * after curl let the socket go): nothing is wrong with the transfers then. */
static void drive(weft_curl *cw, curl_socket_t fd, int flags)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(cw->multi, fd, flags, &running);
    collect_done(cw);
    if (mc != CURLM_OK && mc != CURLM_BAD_SOCKET)
        fail_all(cw, mc);
}

/* ------------------------------------------------------------------------ */
/* Sockets: CURLMOPT_SOCKETFUNCTION                                          */
/* ------------------------------------------------------------------------ */

/* Loop callbacks: they must not suspend, and curl_multi_socket_action never does.
 * The watched record may be freed inside drive (CURL_POLL_REMOVE), so its fields are
 * read first. */
static void on_readable(void *arg)
{
    struct watched *w = arg;
    drive(w->cw, w->fd, CURL_CSELECT_IN);
}

static void on_writable(void *arg)
{
    struct watched *w = arg;
    drive(w->cw, w->fd, CURL_CSELECT_OUT);
}

static void forget_watched(weft_curl *cw, struct watched *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        cw->sockets = w->next;
    if (w->next)
        w->next->prev = w->prev;
    free(w);
}

/* curl says which directions it now wants for socket s. CURL_POLL_REMOVE comes before
 * curl closes the socket: removing the last callback lets weft drop the descriptor at
 * once, which is weft's rule for descriptors about to be closed. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    weft_curl *cw = userp;
    struct watched *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        weft_remove_reader(s);
        weft_remove_writer(s);
        if (w) {
            curl_multi_assign(cw->multi, s, NULL);
            forget_watched(cw, w);
        }
        return 0;
    }
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w)
            return -1; /* curl then fails the multi call, and fail_all ends the transfers */
        *w = (struct watched){.cw = cw, .fd = s, .next = cw->sockets};
        if (cw->sockets)
            cw->sockets->prev = w;
        cw->sockets = w;
        curl_multi_assign(cw->multi, s, w);
    }
    /* add_reader on a descriptor that already has one replaces it: no double watch. */
    int err = 0;
    if (what & CURL_POLL_IN)
        err = weft_add_reader(s, on_readable, w);
    else
        weft_remove_reader(s);
    if (!err && (what & CURL_POLL_OUT))
        err = weft_add_writer(s, on_writable, w);
    else if (!err)
        weft_remove_writer(s);
    return err ? -1 : 0;
}

/* CURLOPT_CLOSESOCKETFUNCTION: curl closes its sockets itself. It sends CURL_POLL_REMOVE
 * first for those we watch, but a socket it closes without one (a connection attempt
 * dropped early, the cache emptied at cleanup) must still leave weft before its number
 * can come back for another file: weft_fd_close forgets, then closes. */
static int close_socket(void *clientp, curl_socket_t s)
{
    (void)clientp;
    return weft_fd_close(s) == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------ */
/* The timer: CURLMOPT_TIMERFUNCTION                                         */
/* ------------------------------------------------------------------------ */

static void on_timeout(void *arg)
{
    weft_curl *cw = arg;
    cw->timer_set = false;
    drive(cw, CURL_SOCKET_TIMEOUT, 0);
}

/* curl keeps one deadline per multi handle and tells us each time it moves: -1 means
 * none, 0 means as soon as possible. curl must not be called back from inside this
 * callback, so even 0 goes through the loop (weft_call_later(0): the next iteration). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    weft_curl *cw = userp;
    if (cw->timer_set) {
        weft_call_cancel(cw->timer);
        cw->timer_set = false;
    }
    if (timeout_ms < 0 || cw->closing)
        return 0;
    cw->timer = weft_call_later((double)timeout_ms / 1000.0, on_timeout, cw);
    if (!weft_call_ok(cw->timer))
        return -1;
    cw->timer_set = true;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Bodies                                                                   */
/* ------------------------------------------------------------------------ */

static size_t on_data(char *data, size_t size, size_t count, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * count;
    struct weft_curl_body *b = t->out;
    if (!b || len == 0)
        return len;
    if (len > SIZE_MAX / 2 - b->size) {
        t->out_of_memory = true;
        return 0;
    }
    if (b->size + len + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity < b->size + len + 1)
            capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (!grown) {
            t->out_of_memory = true;
            return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
        }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->size, data, len);
    b->size += len;
    b->data[b->size] = '\0';
    return len;
}

void weft_curl_body_free(struct weft_curl_body *body)
{
    if (!body)
        return;
    free(body->data);
    *body = (struct weft_curl_body){0};
}

/* ------------------------------------------------------------------------ */
/* The calls                                                                */
/* ------------------------------------------------------------------------ */

weft_curl *weft_curl_new(void)
{
    weft_loop *loop = weft_loop_current();
    if (!loop) {
        weft_fail(WEFT_ENOTINLOOP, "weft_curl_new: call it from a task of a running loop");
        return NULL;
    }
    weft_curl *cw = calloc(1, sizeof *cw);
    if (!cw || !(cw->multi = curl_multi_init())) {
        free(cw);
        weft_fail(-ENOMEM, "weft_curl_new: no memory for a curl multi handle");
        return NULL;
    }
    cw->loop = loop;
    curl_multi_setopt(cw->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(cw->multi, CURLMOPT_SOCKETDATA, cw);
    curl_multi_setopt(cw->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(cw->multi, CURLMOPT_TIMERDATA, cw);
    return cw;
}

int weft_curl_free(weft_curl *cw)
{
    if (!cw)
        return 0;
    if (cw->transfers)
        return -EBUSY;
    cw->closing = true;
    if (cw->timer_set)
        weft_call_cancel(cw->timer);
    cw->timer_set = false;
    /* Closes the cached connections: CURL_POLL_REMOVE and close_socket for each. */
    curl_multi_cleanup(cw->multi);
    while (cw->sockets) {
        weft_remove_reader(cw->sockets->fd);
        weft_remove_writer(cw->sockets->fd);
        forget_watched(cw, cw->sockets);
    }
    free(cw->ca_file);
    free(cw);
    return 0;
}

int weft_curl_set_ca_file(weft_curl *cw, const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return (int)fail(-ENOMEM, "weft_curl_set_ca_file: no memory");
    free(cw->ca_file);
    cw->ca_file = copy;
    return 0;
}

/* The error code and message for a transfer curl ended with an error. The socket's
 * errno, when curl kept one, says most (Connection refused); curl's error buffer says
 * the rest (which host and port). */
static long transfer_error(struct transfer *t, const char *url)
{
    int code;
    const char *what;
    if (t->multi_error != CURLM_OK) {
        code = t->multi_error == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
        return fail(code, "GET %s: %s", url, curl_multi_strerror(t->multi_error));
    }
    long os_errno = 0;
    curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno);
    switch (t->result) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        code = WEFT_ENONAME;
        what = weft_strerror(code);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        code = -ETIMEDOUT;
        what = weft_strerror(code);
        break;
    case CURLE_OUT_OF_MEMORY:
        code = -ENOMEM;
        what = weft_strerror(code);
        break;
    case CURLE_WRITE_ERROR:
        if (t->out_of_memory) {
            code = -ENOMEM;
            what = "no memory for the response body";
            break;
        }
        /* fall through */
    default:
        code = os_errno > 0 ? (int)-os_errno : -EIO;
        what = os_errno > 0 ? weft_strerror(code) : curl_easy_strerror(t->result);
        break;
    }
    const char *detail = t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);
    return fail(code, "GET %s: %s (curl: %s)", url, what, detail);
}

long weft_curl_get(weft_curl *cw, const char *url, double timeout_s, struct weft_curl_body *out)
{
    if (!cw || !url)
        return fail(-EINVAL, "weft_curl_get: NULL handle or URL");
    if (weft_loop_current() != cw->loop)
        return fail(WEFT_ESTATE, "weft_curl_get: the handle belongs to another loop");
    struct transfer *t = calloc(1, sizeof *t);
    if (!t)
        return fail(-ENOMEM, "GET %s: no memory", url);
    t->cw = cw;
    t->out = out;
    t->easy = curl_easy_init();
    t->done = weft_future_new();
    if (!t->easy || !t->done) {
        curl_easy_cleanup(t->easy);
        (void)weft_future_free(t->done);
        free(t);
        return fail(-ENOMEM, "GET %s: no memory", url);
    }
    CURL *easy = t->easy;
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)t);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM: this thread runs other tasks */
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cw->ca_file)
        curl_easy_setopt(easy, CURLOPT_CAINFO, cw->ca_file);

    /* The limit is a weft timeout scope, not CURLOPT_TIMEOUT: it covers the whole call,
     * and it takes the same path as any cancellation from outside. */
    weft_timeout *scope = NULL;
    if (timeout_s > 0) {
        scope = weft_timeout_enter(timeout_s);
        if (!scope) {
            int err = weft_errcode();
            curl_easy_cleanup(easy);
            (void)weft_future_free(t->done);
            free(t);
            return fail(err, "GET %s: %s", url, weft_errmsg());
        }
    }
    long status;
    CURLMcode mc = curl_multi_add_handle(cw->multi, easy);
    if (mc != CURLM_OK) {
        int err = mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
        status = fail(err, "GET %s: %s", url, curl_multi_strerror(mc));
    } else {
        link_transfer(t);
        /* curl's timer callback has scheduled the first socket action; the loop does the
         * rest while this task waits. */
        status = weft_future_await(t->done, NULL);
    }
    if (scope)
        status = weft_timeout_exit(scope, (int)status);

    /* Cancelled or timed out while curl was still working: take the transfer out of the
     * multi here (curl closes its connection, saying CURL_POLL_REMOVE first), so that no
     * callback can reach it once it is freed below. */
    if (t->in_multi) {
        curl_multi_remove_handle(cw->multi, easy);
        unlink_transfer(t);
    }

    if (status == -ETIMEDOUT)
        status = fail(-ETIMEDOUT, "GET %s: timed out after %g s", url, timeout_s);
    else if (status == 0 && (t->result != CURLE_OK || t->multi_error != CURLM_OK))
        status = transfer_error(t, url);
    else if (status == 0)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    /* Otherwise -ECANCELED, or an error weft_fail has already described. */

    curl_easy_cleanup(easy);
    (void)weft_future_free(t->done);
    free(t);
    return status;
}
