/*
 * weft/fd.h — waiting on file descriptors: a task suspends until a descriptor is
 * readable or writable (straight-line), or a loop callback runs whenever it is
 * (asyncio's loop.add_reader / add_writer). This is how weft drives another C
 * library's sockets: libcurl's multi interface, libpq, hiredis, c-ares.
 *
 * Registrations persist: waiting again on a descriptor weft already watches costs
 * no system call. The price is a rule, as libuv's uv_poll_stop before close:
 * after weft_fd_wait, call weft_fd_forget(fd) (or close with weft_fd_close)
 * before closing the descriptor. (Removing a descriptor's last reader or writer
 * callback also lets it go at once, so asyncio's habit, remove_reader then close,
 * is safe.) Closing a waited-on descriptor first has two consequences:
 *   - weft still takes the number as watched: a descriptor opened next under the
 *     same number may never report readiness. weft_fd_forget on that number, even
 *     late, repairs it; Debug and sanitizer builds notice the new file, say so on
 *     stderr and register it.
 *   - if the file is still open elsewhere (dup, fork), the kernel keeps the old
 *     registration and reports the old file's readiness under the new number:
 *     spurious wake-ups, or a loop spinning while the old file stays readable.
 *     Nothing weft can do afterwards undoes that; forget before closing.
 *
 * The descriptor should be non-blocking (O_NONBLOCK): readiness says an operation
 * will not block now, and another reader may still take the data first. Regular
 * files and directories cannot be watched (the kernel says they are always ready):
 * use weft_to_thread for them.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_FD_H
#define WEFT_FD_H

#include "base.h"
#include "callback.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The events of weft_fd_wait. */
#define WEFT_READABLE 1u /* data, a connection to accept, end of file or a hang-up */
#define WEFT_WRITABLE 2u /* room to write, or a connection's outcome */
#define WEFT_FD_ERROR 4u /* in a result only: an error or hang-up is pending (reading or
                            writing will tell which; getsockopt SO_ERROR for a socket) */

/*
 * weft_fd_wait — suspend the calling task until `fd` is ready for one of `events`
 * (WEFT_READABLE, WEFT_WRITABLE or both).
 * Returns: the events that are ready, a positive mask: those asked for that
 *   happened, and WEFT_FD_ERROR with every event asked for when the descriptor
 *   has an error or hung up (the next read or write then says what).
 * Suspends: always, at least once, even when the descriptor is ready already
 *   (other ready tasks run first); then until one of the events happens.
 * Errors: -EINVAL for no or unknown events; -EBADF for a negative descriptor, one
 *   that is not open, or one forgotten (weft_fd_forget) while the task waited;
 *   -EPERM for a descriptor the poller refuses (a regular file, a directory,
 *   /dev/null); -EBUSY when another task already waits on fd for the same
 *   direction, or a callback for that direction is set (one waiter per direction:
 *   a reading and a writing task may share a socket); -ENOMEM; WEFT_ENOTINLOOP
 *   outside a task, or in a callback.
 * On cancel: returns -ECANCELED at once, still watching nothing for this task;
 *   nothing is read or written.
 */
WEFT_API WEFT_WAIT int weft_fd_wait(int fd, unsigned events);

/*
 * weft_add_reader — call cb(arg) from the loop whenever `fd` is readable, each loop
 * iteration while it stays readable, until weft_remove_reader (loop.add_reader). A
 * second call for the same descriptor replaces the first's callback. The callback
 * runs outside any task: it must not suspend (see weft_call_soon). Level-triggered,
 * as asyncio's: a callback that leaves the data unread is called again at once, and
 * the loop spins until it reads or is removed.
 * Returns: 0.
 * Suspends: never.
 * Errors: -EINVAL for a NULL cb; -EBADF / -EPERM as weft_fd_wait; -EBUSY when a
 *   task is waiting in weft_fd_wait for fd to be readable; -ENOMEM;
 *   WEFT_ENOTINLOOP without a running loop.
 */
WEFT_API int weft_add_reader(int fd, weft_callback_fn cb, void *arg);

/*
 * weft_add_writer — as weft_add_reader, whenever `fd` is writable (loop.add_writer).
 * Returns: 0.
 * Suspends: never.
 * Errors: as weft_add_reader, for writing.
 */
WEFT_API int weft_add_writer(int fd, weft_callback_fn cb, void *arg);

/*
 * weft_remove_reader — stop calling fd's reader callback (loop.remove_reader).
 * When nothing else watches fd (no writer callback, no waiting task), the kernel
 * forgets it at once, so the descriptor may be closed next.
 * Returns: true if a reader callback was removed, false if there was none (or no
 *   loop runs).
 * Suspends: never.
 * Errors: none.
 */
WEFT_API bool weft_remove_reader(int fd);

/*
 * weft_remove_writer — stop calling fd's writer callback (loop.remove_writer); as
 * weft_remove_reader, the kernel forgets fd when nothing else watches it.
 * Returns: true if a writer callback was removed, false if there was none (or no
 *   loop runs).
 * Suspends: never.
 * Errors: none.
 */
WEFT_API bool weft_remove_writer(int fd);

/*
 * weft_fd_forget — make the loop forget `fd` before it is closed: its kernel
 * registration goes now, its reader and writer callbacks are removed, and tasks
 * waiting on it in weft_fd_wait wake with -EBADF.
 * Returns: true if weft was watching fd (registered, waited on or with a
 *   callback), false otherwise, and outside a running loop.
 * Suspends: never.
 * Errors: none.
 */
WEFT_API bool weft_fd_forget(int fd);

/*
 * weft_fd_close — weft_fd_forget(fd), then close(fd). Outside a running loop it is
 * close(fd).
 * Returns: 0.
 * Suspends: never.
 * Errors: close(2)'s error, negated (the descriptor is closed even then, as
 *   close(2) leaves it on Linux).
 */
WEFT_API int weft_fd_close(int fd);

#ifdef __cplusplus
}
#endif

#endif
