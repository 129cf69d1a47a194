/*
 * weft/chan.h — Go's channels between the tasks of one loop: values of a fixed size
 * copied in and out, buffered or not, closed by the sender, and select over several.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_CHAN_H
#define WEFT_CHAN_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A channel carries values of `elem_size` bytes between tasks of one loop, copied
 * in and out (Go's chan T). capacity 0 = unbuffered: a send waits for a receiver.
 */
typedef struct weft_chan weft_chan;

/* weft_chan_new — a channel. Needs no running loop; a channel belongs to the loop
 * that made it (or, made outside one, to the first loop that uses it), and the
 * calls from another thread's loop give WEFT_ESTATE.
 * Returns: the channel, or NULL with weft_errmsg().
 * Suspends: never.
 * Errors (NULL returned): -EINVAL for elem_size 0 or over 1 GiB; -ENOMEM. */
WEFT_API weft_chan *weft_chan_new(size_t elem_size, size_t capacity);
/* weft_chan_free — free the channel (values still buffered are dropped).
 * Returns: 0; NULL returns 0.
 * Suspends: never.
 * Errors: -EBUSY while a task waits on it (right after weft_chan_close it always
 *   succeeds). */
WEFT_API int weft_chan_free(weft_chan *ch);

/*
 * weft_chan_send — copy *elem into the channel, waiting until a receiver or buffer
 * space takes it.
 * As for every channel call: an operation that can complete without waiting does so
 * even in a cancelled task (clean-up can still send a last value or drain), and one
 * that has completed reports success even if a cancellation arrives before the task
 * runs again.
 * Returns: 0.
 * Suspends: unless a waiting receiver or buffer space takes the value at once, or the
 *   channel is closed.
 * Errors: WEFT_ECLOSED (the channel is or gets closed; nothing sent); -ECANCELED
 *   (nothing sent); -ENOMEM (nothing sent); -EINVAL; WEFT_ENOTINLOOP (outside a
 *   loop, or from a callback when it would have to wait).
 * On cancel: returns -ECANCELED; nothing is sent (no receiver gets the value).
 */
WEFT_API WEFT_WAIT int weft_chan_send(weft_chan *ch, const void *elem);

/*
 * weft_chan_recv — receive into *out (elem_size bytes), waiting for a value.
 * out may be NULL: the value is dropped.
 * Returns: 0.
 * Suspends: unless a value is buffered, a sender waits, or the channel is closed.
 * Errors: WEFT_ECLOSED once the channel is closed and drained (*out is zeroed, Go's
 *   zero value); -ECANCELED (nothing received); -ENOMEM; -EINVAL; WEFT_ENOTINLOOP
 *   (as for send).
 * On cancel: returns -ECANCELED; nothing is received and *out is untouched.
 */
WEFT_API WEFT_WAIT int weft_chan_recv(weft_chan *ch, void *out);

/* weft_chan_close — close the channel: waiting receivers get WEFT_ECLOSED (after
 * the buffered values are received), waiting senders get WEFT_ECLOSED.
 * Returns: 0.
 * Suspends: never.
 * Errors: WEFT_ESTATE if already closed, or if the channel belongs to another
 *   thread's loop; WEFT_ENOTINLOOP from a thread without a loop once a loop uses
 *   it; -EINVAL for NULL. */
WEFT_API int weft_chan_close(weft_chan *ch);

/* weft_chan_len — values buffered now; weft_chan_cap — the buffer's capacity (0:
 * unbuffered).
 * Returns: those counts; 0 for NULL.
 * Suspends: never.
 * Errors: none. */
WEFT_API size_t weft_chan_len(const weft_chan *ch);
WEFT_API size_t weft_chan_cap(const weft_chan *ch);

enum { WEFT_SEND = 1, WEFT_RECV = 2 };

/* One operation of a weft_select. */
typedef struct weft_select_case {
    weft_chan *chan;  /* NULL: the case is ignored (Go's nil channel) */
    int op;           /* WEFT_SEND or WEFT_RECV */
    void *elem;       /* SEND: the value to copy from; RECV: where to copy to (may be NULL) */
    int result;       /* out, for the chosen case: 0, or WEFT_ECLOSED */
} weft_select_case;

/*
 * weft_select — wait until one of the operations can proceed, perform it, and return
 * its index (Go's select). When several are ready, one is chosen at random, so
 * no case starves (the choice is pseudo-random from a fixed seed per channel, so a
 * program's runs repeat). timeout: seconds to wait (WEFT_FOREVER for none; 0 = Go's
 * `default:`, do not wait). A receive on a closed channel, or a send on one, is
 * ready and completes with result WEFT_ECLOSED.
 * A negative timeout acts as 0; cases not chosen keep their `result` untouched.
 * Returns: the index (≥ 0).
 * Suspends: unless a case is ready or the timeout is 0 or negative.
 * Errors: -ETIMEDOUT (nothing done); -ECANCELED (nothing done); -ENOMEM (nothing
 *   done); -EINVAL (no case with a channel and no timeout, a bad op, a send with a
 *   NULL elem, NaN); WEFT_ENOTINLOOP (as for send).
 * On cancel: returns -ECANCELED; no case is performed and every `result` is
 *   untouched.
 */
WEFT_API WEFT_WAIT int weft_select(weft_select_case *cases, size_t n, double timeout);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_CHAN_H */
