/*
 * weft/errors.h — errors: weft's own codes (WEFT_E*), their names and texts, failing a
 * task with a message (weft_fail), reading the current error and its message, and the
 * error groups a TaskGroup collects.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_ERRORS_H
#define WEFT_ERRORS_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * weft's own codes, for failures errno has no name for. They are negative like
 * every other error and far from errno's range.
 */
#define WEFT_ERRNO_MAP(X)                                                             \
    X(WEFT_EDEADLOCK_LOOP, -10001, "every task is waiting and nothing can wake them") \
    X(WEFT_ENOTINLOOP, -10002, "called outside a task of a running weft loop")      \
    X(WEFT_ENESTED, -10003, "weft_run called from inside a running loop")             \
    X(WEFT_EGROUP, -10004, "several errors happened; weft_errgroup() lists them")   \
    X(WEFT_ESTATE, -10005, "the object is not in a state that allows this call")      \
    X(WEFT_EFULL, -10006, "the queue is full")                                        \
    X(WEFT_EEMPTY, -10007, "the queue is empty")                                      \
    X(WEFT_EBROKEN, -10008, "the barrier is broken (aborted or reset)")               \
    X(WEFT_ECLOSED, -10009, "the channel or stream is closed")                        \
    X(WEFT_EBROKENPOOL, -10010, "a worker process of the pool died during the call")  \
    X(WEFT_EINCOMPLETE, -10011, "the stream ended before the bytes asked for came")   \
    X(WEFT_ELIMIT, -10012, "the separator was not found within the stream's limit")  \
    X(WEFT_ENONAME, -10013, "the host name is not known")                             \
    X(WEFT_ENAMETEMP, -10014, "the name could not be resolved now; try again later")  \
    X(WEFT_ERESOLVE, -10015, "name resolution failed")                                \
    X(WEFT_ETLS, -10016, "the TLS handshake or connection failed")                        \
    X(WEFT_ETLS_UNKNOWN_CA, -10017, "certificate verify failed: unable to get local issuer certificate (unknown CA)") \
    X(WEFT_ETLS_HOSTNAME, -10018, "certificate verify failed: hostname mismatch")        \
    X(WEFT_ETLS_EXPIRED, -10019, "certificate verify failed: certificate has expired")   \
    X(WEFT_ETLS_CERT, -10020, "certificate refused: the peer's failed verification, or the peer refused ours") \
    X(WEFT_ETLS_VERSION, -10021, "unsupported protocol: no TLS version both sides accept") \
    X(WEFT_ETLS_TIMEOUT, -10022, "the TLS handshake timed out")                           \
    X(WEFT_ETLS_EOF, -10023, "unexpected eof while reading: the peer closed the TLS connection without close_notify") \
    X(WEFT_EINTERRUPTED, -10024, "interrupted by SIGINT (Ctrl-C): the main task was cancelled")

enum weft_errno {
#define WEFT__ERRNO_ENUM(name, value, text) name = value,
    WEFT_ERRNO_MAP(WEFT__ERRNO_ENUM)
#undef WEFT__ERRNO_ENUM
};

/*
 * weft_strerror — a short English description of an error code.
 * Returns: a static string for every code: weft's own (WEFT_E*), negative errno codes
 *   (-ENOMEM → "Cannot allocate memory"), and 0 ("success"); "unknown error" for a
 *   code it does not know. Never NULL. Any thread.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API const char *weft_strerror(int code);

/*
 * weft_errname — the symbolic name of an error code.
 * Returns: "ECANCELED", "ETIMEDOUT", "WEFT_ENOTINLOOP", "0" for success, "E?" for an
 *   unknown code. Never NULL. Any thread.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API const char *weft_errname(int code);

/*
 * weft_fail — end the current coroutine function with an error:
 *     return weft_fail(-ECONNRESET, "peer %s went away", host);
 * Records `code` (negative; a positive code is negated, 0 becomes -EINVAL) and the
 * formatted message as the current task's error. When the task's function returns
 * while an error is recorded, the task ends with that error and its return value is
 * dropped. A caller that runs a coroutine function directly (asyncio's `await f()`)
 * sees the failure with weft_error() and may take it back with weft_error_clear()
 * (asyncio's `except`).
 * The message is formatted before the previous one is released, so passing an error
 * on with `return weft_fail(rc, "%s", weft_errmsg());` is safe.
 * Returns: NULL, so it can be returned from a `void *` coroutine function.
 * Suspends: never. Outside a task it records the code and message for the thread
 *   (in a pool thread: the error of the blocking call).
 * Errors: none. Without memory for the message, the code is still recorded and the
 *   message is "".
 */
WEFT_API void *weft_fail(int code, const char *fmt, ...) WEFT_PRINTF(2, 3);

/*
 * weft_error — the error recorded in the current task by weft_fail (0 if none).
 * Returns: that code, or 0; outside a task, the code recorded for the thread.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API int weft_error(void);

/*
 * weft_error_clear — forget the current task's recorded error, as `except` does in
 * asyncio. The message stays readable through weft_errmsg() until the next error.
 * Returns: nothing.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API void weft_error_clear(void);

/*
 * weft_errmsg — the message of the latest error the current task (or thread, outside
 * a task) raised with weft_fail or received from a weft call: the awaited task's
 * message, or a sentence from weft saying what went wrong and what to do.
 * Returns: a string owned by the task (or thread). It stays valid while three more
 *   errors are recorded after it, so `printf("%d: %s\n", weft_x(), weft_errmsg())`
 *   is safe whichever argument C evaluates first; copy it to keep it longer, and
 *   never use it after the task has finished. "" if there has been no error.
 *   Never NULL.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API const char *weft_errmsg(void);

/*
 * weft_errcode — the code of the error weft_errmsg() describes: what the latest
 * failing weft call returned in this task (or thread, outside a task), including
 * calls that return NULL or a failed weft_call (weft_spawn, weft_queue_new,
 * weft_timeout_enter, ...), an awaited task's error, or weft_fail's code. Unlike
 * weft_error(), it is not the task's own outcome.
 * Returns: that negative code, or 0 if there has been no error.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API int weft_errcode(void);

/*
 * An error group: the several errors a TaskGroup collected (asyncio's
 * ExceptionGroup). A call that returns WEFT_EGROUP leaves one readable through
 * weft_errgroup(); the item list is in the order the errors happened.
 */
typedef struct weft_error_group weft_error_group;
typedef struct weft_error_item {
    int code;                        /* the error (never 0) */
    const char *msg;                 /* its message ("" if none) */
    const char *task;                /* the name of the task it came from */
    const weft_error_group *nested;  /* code == WEFT_EGROUP: the child's own group */
} weft_error_item;
struct weft_error_group {
    size_t count;
    const weft_error_item *items;
};

/*
 * weft_errgroup — the error group of the latest error the current task received
 * (or raised by returning a WEFT_EGROUP it received), or NULL when that error was
 * not a group. Owned by the task, valid until its next weft call that can fail.
 * A task that returns with WEFT_EGROUP hands its group on to whoever awaits it.
 * Returns: the group, or NULL (always NULL outside a task).
 * Suspends: never.
 * Errors: none.
 */
WEFT_API const weft_error_group *weft_errgroup(void);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_ERRORS_H */
