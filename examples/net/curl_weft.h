/*
 * curl_weft.h — libcurl's multi interface driven by a weft loop, so that a task fetches a
 * URL in one straight-line call while the loop runs every other task. Part of the fetch
 * example, not of libweft: it uses weft's public API only (weft_add_reader/add_writer for
 * curl's sockets, weft_call_later for curl's timer, a weft_future per transfer), which is
 * the point — any C library that hands out its sockets plugs into weft the same way.
 *
 *     weft_curl *cw = weft_curl_new();           // one per loop, from a task
 *     struct weft_curl_body body = {0};
 *     long status = weft_curl_get(cw, "http://127.0.0.1:8000/", 2.0, &body);
 *     if (status < 0) ... weft_errmsg() says why (refused, timed out, name not known)
 *     weft_curl_body_free(&body);
 *     weft_curl_free(cw);                         // once no transfer is left
 */
#ifndef CURL_WEFT_H
#define CURL_WEFT_H

#include <stddef.h>

/* One libcurl multi handle bound to the loop that made it; tasks of that loop share it,
 * so connections are reused between their requests. */
typedef struct weft_curl weft_curl;

/* A response body, grown as data arrives; data is NUL-terminated once non-empty. */
struct weft_curl_body {
    char *data;
    size_t size;
    size_t capacity;
};

/*
 * weft_curl_new — a multi handle driven by the running loop.
 * Returns: the handle, or NULL after weft_fail (weft_errmsg() says why).
 * Suspends: never. From a task (call curl_global_init before weft_run).
 */
weft_curl *weft_curl_new(void);

/*
 * weft_curl_set_ca_file — trust the CAs of this PEM file for https:// URLs instead of the
 * system's store (curl's --cacert); the server's certificate and name are still checked.
 * Returns: 0, or -ENOMEM after weft_fail.
 * Suspends: never.
 */
int weft_curl_set_ca_file(weft_curl *cw, const char *path);

/*
 * weft_curl_get — GET `url`, suspending the calling task until the response is complete
 * or `timeout_s` seconds have passed (0 or less: no limit of its own; a timeout scope or
 * weft_cancel around the call works as well). The body is appended to *out (may be NULL
 * to discard it), which must stay valid and must not live on a compact task's stack:
 * curl writes into it from the loop while the task waits.
 * Returns: the HTTP status (200, 404, ...), or a negative code after weft_fail, with a
 *   message naming the URL: -ECONNREFUSED and the other errno codes of the socket,
 *   -ETIMEDOUT, WEFT_ENONAME (host name not known), -ENOMEM, -EIO (another curl error,
 *   curl's text in the message), WEFT_ESTATE (a handle of another loop). -ECANCELED when
 *   the caller is cancelled: then no weft_fail, the cancellation goes on as usual.
 *   Having called weft_fail, a task that carries on after an error calls
 *   weft_error_clear() (asyncio's `except`), or it ends with that error.
 * Suspends: until the transfer ends. On cancel or timeout the transfer is taken out of
 *   the multi handle and freed before the call returns: no callback touches it after.
 */
long weft_curl_get(weft_curl *cw, const char *url, double timeout_s, struct weft_curl_body *out);

/* weft_curl_body_free — release a body's memory and empty it. */
void weft_curl_body_free(struct weft_curl_body *body);

/*
 * weft_curl_free — close the cached connections and release the handle (NULL: nothing).
 * Returns: 0, or -EBUSY (nothing freed) while a transfer is still in flight.
 * Suspends: never.
 */
int weft_curl_free(weft_curl *cw);

#endif
