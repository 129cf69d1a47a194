/*
 * weft/sync.h — synchronisation between the tasks of one loop: Lock, Event,
 * Condition, Semaphore (bounded or not) and Barrier, with asyncio's semantics.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * asyncio's primitives, for tasks of one loop (not for threads). Each is a heap
 * object made with _new (NULL with weft_errmsg() on -ENOMEM) and released with
 * _free, which returns 0 (also for NULL) or refuses with -EBUSY, freeing nothing,
 * while a task waits on it. Waiters are served in the order they arrived, and a task that
 * releases and at once re-acquires queues behind them (no barging). A call that
 * would wait returns -ECANCELED when its task is cancelled, having taken nothing; one
 * that need not wait (a free lock, a set event) succeeds even then. Every call
 * gives -EINVAL for a NULL object, WEFT_ENOTINLOOP outside a loop and WEFT_ESTATE
 * from a loop other than the one that made the object (the calls that return
 * nothing report that misuse on stderr and do nothing).
 */
typedef struct weft_lock weft_lock;
typedef struct weft_event weft_event;
typedef struct weft_cond weft_cond;
typedef struct weft_sem weft_sem;
typedef struct weft_barrier weft_barrier;

/* weft_lock_new — an unlocked lock (asyncio.Lock).
 * Returns: the lock, or NULL with weft_errmsg().
 * Suspends: never.
 * Errors (NULL returned): -ENOMEM; WEFT_ENOTINLOOP outside a loop. */
WEFT_API weft_lock *weft_lock_new(void);

/* weft_lock_free — free the lock (held or not).
 * Returns: 0 (also for NULL).
 * Suspends: never.
 * Errors: -EBUSY (nothing freed) while a task waits to acquire it. */
WEFT_API int weft_lock_free(weft_lock *lock);

/*
 * weft_lock_acquire — take the lock, waiting behind earlier waiters
 * (`await lock.acquire()`). Not reentrant: a task that holds it and acquires again
 * waits forever (the loop reports the deadlock).
 * Returns: 0 with the lock held.
 * Suspends: unless it is free and nobody waits (then it is taken even by a
 *   cancelled task).
 * Errors: -ECANCELED (the lock is not held; if it had just been handed over, it
 *   passes on to the next waiter); -EDEADLK at once when the wait could never end:
 *   the caller holds the lock already (locks are not reentrant), or its holder
 *   waits, through other locks, for one the caller holds; -EINVAL (NULL);
 *   WEFT_ENOTINLOOP; WEFT_ESTATE (a lock of another loop).
 * On cancel: returns -ECANCELED without the lock; the task leaves the line of
 *   waiters, and a lock handed to it before it could run passes on to the next one.
 */
WEFT_API WEFT_WAIT int weft_lock_acquire(weft_lock *lock);

/* weft_lock_release — release it; the first waiter gets it next. Any task or callback
 * of the loop may release it, not only the holder (as in asyncio).
 * Returns: 0.
 * Suspends: never.
 * Errors: WEFT_ESTATE if it is not locked (or belongs to another loop); -EINVAL;
 *   WEFT_ENOTINLOOP. */
WEFT_API int weft_lock_release(weft_lock *lock);

/* weft_lock_locked — true while some task holds it (lock.locked()). As in asyncio,
 * a lock released to a waiting task is not locked until that task runs, though no
 * other task can take it first (acquires queue behind the waiters: no barging).
 * Returns: that; false for NULL.
 * Suspends: never.
 * Errors: none. */
WEFT_API bool weft_lock_locked(const weft_lock *lock);

/* weft_event_new — an event, initially clear (asyncio.Event).
 * Returns: the event, or NULL with weft_errmsg().
 * Suspends: never.
 * Errors (NULL returned): -ENOMEM; WEFT_ENOTINLOOP outside a loop. */
WEFT_API weft_event *weft_event_new(void);

/* weft_event_free — free the event (a set event may be freed before its woken
 * waiters have run).
 * Returns: 0 (also for NULL).
 * Suspends: never.
 * Errors: -EBUSY (nothing freed) while a task waits for it. */
WEFT_API int weft_event_free(weft_event *ev);

/* weft_event_set — set it and wake every waiter (they return 0 even if the event
 * is cleared before they run). weft_event_clear — clear it.
 * Returns: nothing (both).
 * Suspends: never.
 * Errors: none returned. weft_event_set outside the event's loop is reported on
 *   stderr and ignored; weft_event_clear makes no check. */
WEFT_API void weft_event_set(weft_event *ev);
WEFT_API void weft_event_clear(weft_event *ev);
/* weft_event_is_set — true while set (false for NULL).
 * Returns: that.
 * Suspends: never.
 * Errors: none. */
WEFT_API bool weft_event_is_set(const weft_event *ev);

/* weft_event_wait — wait until the event is set (at once if it is).
 * Returns: 0.
 * Suspends: unless the event is set.
 * Errors: -ECANCELED; -EINVAL; WEFT_ENOTINLOOP; WEFT_ESTATE (another loop's event).
 * On cancel: returns -ECANCELED and leaves the wait, also when the event was set
 *   just before the cancellation and the task had not run again yet; other waiters
 *   are not affected. */
WEFT_API WEFT_WAIT int weft_event_wait(weft_event *ev);

/*
 * weft_cond_new — a condition variable (asyncio.Condition) over `lock` (NULL: a
 * lock of its own, freed with it).
 * Returns: the condition, or NULL with weft_errmsg().
 * Suspends: never.
 * Errors (NULL returned): -ENOMEM; WEFT_ENOTINLOOP outside a loop; WEFT_ESTATE for
 *   a lock of another loop.
 */
WEFT_API weft_cond *weft_cond_new(weft_lock *lock);

/* weft_cond_free — free the condition (and its own lock, if it made one).
 * Returns: 0 (also for NULL).
 * Suspends: never.
 * Errors: -EBUSY (nothing freed) while a task waits on the condition or on its own
 *   lock. */
WEFT_API int weft_cond_free(weft_cond *cond);

/* weft_cond_lock — the condition's lock: acquire and release it with
 * weft_lock_acquire / weft_lock_release.
 * Returns: the lock; NULL for NULL.
 * Suspends: never.
 * Errors: none. */
WEFT_API weft_lock *weft_cond_lock(weft_cond *cond);

/*
 * weft_cond_wait — release the lock, wait to be notified, re-acquire the lock.
 * The caller must hold the lock.
 * Returns: 0 with the lock held.
 * Suspends: until notified, then until the lock is re-acquired; not at all in a task
 *   already cancelled.
 * Errors: WEFT_ESTATE (the calling task does not hold the lock; nothing happens);
 *   -ECANCELED (see On cancel); -EINVAL; WEFT_ENOTINLOOP.
 * On cancel: -ECANCELED — the lock has been re-acquired even so (as in asyncio: the
 *   cancelled task waits for it), and a notification the cancelled task had already
 *   received passes to the next waiter; a task already cancelled when it calls gets
 *   -ECANCELED at once, the lock kept.
 */
WEFT_API WEFT_WAIT int weft_cond_wait(weft_cond *cond);

/*
 * weft_cond_wait_for — wait until pred(arg) is true (checked at once, then after
 * each notification), with the lock held throughout the checks.
 * Returns: 0 when pred is true.
 * Suspends: as weft_cond_wait, unless pred is true at once.
 * Errors: as weft_cond_wait; -EINVAL for a NULL pred.
 * On cancel: as weft_cond_wait (-ECANCELED with the lock held).
 */
WEFT_API WEFT_WAIT int weft_cond_wait_for(weft_cond *cond, bool (*pred)(void *arg), void *arg);

/* weft_cond_notify — wake up to n waiters (n = 0 wakes none); weft_cond_notify_all —
 * all. The caller must hold the lock.
 * Returns: 0 (both).
 * Suspends: never.
 * Errors: WEFT_ESTATE if the caller does not hold the lock (a callback never does);
 *   -EINVAL; WEFT_ENOTINLOOP. */
WEFT_API int weft_cond_notify(weft_cond *cond, size_t n);
WEFT_API int weft_cond_notify_all(weft_cond *cond);

/*
 * weft_sem_new — a semaphore holding `value` permits (asyncio.Semaphore);
 * weft_bounded_sem_new — one whose releases may not exceed its initial value
 * (asyncio.BoundedSemaphore).
 * Returns: the semaphore, or NULL with weft_errmsg().
 * Suspends: never.
 * Errors (NULL returned): -EINVAL for a negative value; -ENOMEM; WEFT_ENOTINLOOP
 *   outside a loop.
 */
WEFT_API weft_sem *weft_sem_new(long value);
WEFT_API weft_sem *weft_bounded_sem_new(long value);

/* weft_sem_free — free the semaphore.
 * Returns: 0 (also for NULL).
 * Suspends: never.
 * Errors: -EBUSY (nothing freed) while a task waits to acquire it. */
WEFT_API int weft_sem_free(weft_sem *sem);

/* weft_sem_acquire — take a permit, waiting FIFO when none is free or others wait.
 * Returns: 0.
 * Suspends: when no permit is free or others wait.
 * Errors: -ECANCELED (no permit taken); -EINVAL; WEFT_ENOTINLOOP; WEFT_ESTATE
 *   (another loop's semaphore).
 * On cancel: returns -ECANCELED with no permit taken; a permit handed to it before it
 *   could run goes on to the next waiter. */
WEFT_API WEFT_WAIT int weft_sem_acquire(weft_sem *sem);

/* weft_sem_release — give a permit back (to the first waiter if any).
 * Returns: 0.
 * Suspends: never.
 * Errors: WEFT_ESTATE for a bounded semaphore released more than acquired (or from
 *   another loop); -EOVERFLOW at LONG_MAX permits; -EINVAL; WEFT_ENOTINLOOP. */
WEFT_API int weft_sem_release(weft_sem *sem);

/* weft_sem_value — permits free now; weft_sem_locked — true if acquire would wait.
 * Returns: weft_sem_value: the permits (0 for NULL); weft_sem_locked: that (false
 *   for NULL).
 * Suspends: never.
 * Errors: none. */
WEFT_API long weft_sem_value(const weft_sem *sem);
WEFT_API bool weft_sem_locked(const weft_sem *sem);

/* weft_barrier_new — a barrier for `parties` tasks (asyncio.Barrier).
 * Returns: the barrier, or NULL with weft_errmsg().
 * Suspends: never.
 * Errors (NULL returned): -EINVAL if 0 (or above INT_MAX); -ENOMEM; WEFT_ENOTINLOOP
 *   outside a loop. */
WEFT_API weft_barrier *weft_barrier_new(size_t parties);

/* weft_barrier_free — free the barrier.
 * Returns: 0 (also for NULL).
 * Suspends: never.
 * Errors: -EBUSY (nothing freed) while a task waits at it. */
WEFT_API int weft_barrier_free(weft_barrier *b);

/*
 * weft_barrier_wait — wait until `parties` tasks are waiting, then all go on; the
 * barrier is cyclic and can be used again at once.
 * Returns: the caller's index, 0 .. parties-1 (≥ 0: its place among the parties
 *   that passed together, so a cancelled party leaves no gap).
 * Suspends: unless the caller is the last party (all pass at once, even if it is
 *   cancelled) or the barrier is broken.
 * Errors: WEFT_EBROKEN if the barrier was aborted or reset while waiting or is
 *   broken; -ECANCELED (the task leaves without breaking the barrier for the
 *   others); -EINVAL; WEFT_ENOTINLOOP; WEFT_ESTATE (another loop's barrier).
 * On cancel: returns -ECANCELED; the task leaves the barrier without breaking it,
 *   and the others wait for a full set of parties. A party the barrier had already
 *   let through, cancelled before it ran again, also gets -ECANCELED: its index is
 *   lost.
 */
WEFT_API WEFT_WAIT int weft_barrier_wait(weft_barrier *b);

/* weft_barrier_reset — back to the empty state; current waiters get WEFT_EBROKEN.
 * weft_barrier_abort — break it: current and future waits get WEFT_EBROKEN until a
 * reset.
 * Returns: nothing (both).
 * Suspends: never.
 * Errors: none returned (misuse is reported on stderr and ignored). */
WEFT_API void weft_barrier_reset(weft_barrier *b);
WEFT_API void weft_barrier_abort(weft_barrier *b);
/* weft_barrier_n_waiting — parties waiting now; weft_barrier_broken — true after an
 * abort until a reset.
 * Returns: weft_barrier_n_waiting: the count; weft_barrier_broken: that. 0 / false
 *   for NULL.
 * Suspends: never.
 * Errors: none. */
WEFT_API size_t weft_barrier_n_waiting(const weft_barrier *b);
WEFT_API bool weft_barrier_broken(const weft_barrier *b);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_SYNC_H */
