/*
 * sync.c — asyncio's synchronisation primitives for the tasks of one loop: Lock,
 * Event, Condition, Semaphore (bounded or not) and Barrier, with the semantics of
 * CPython 3.12's Lib/asyncio/locks.py.
 *
 * Every primitive keeps its waiting tasks chained through their node.next (free
 * while a task waits), first come first served; a cancelled waiter unhooks itself
 * through its unwait hook. Nothing of a waiter lives on its stack, which may be a
 * compact task's and move while it waits.
 *
 * What a release frees is handed straight to the first waiter (the lock, a
 * permit, a notification) instead of being left for whoever runs first, so a task
 * that releases and at once acquires again queues behind the waiters: no barging.
 * The waker marks the task it hands something to (see hand_over); a task that is
 * cancelled after that, before it runs again, finds the mark and passes what it
 * was given on to the next waiter, as asyncio's waiters do.
 */
#include "core/core.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                           */
/* ------------------------------------------------------------------------ */

/*
 * The mark a waker leaves in a task's wait_obj when it wakes it with something
 * handed over. wait_obj keeps whatever weft__wait stored until the task waits
 * again, and a cancellation never touches it, so the task, once it runs, can tell
 * "given the lock, then cancelled" from "cancelled while still queued" — the wake
 * reason cannot, since a cancellation overwrites it.
 */
static char handed_mark;

static void hand_over(weft_task *t)
{
    t->wait_obj = &handed_mark;
    weft__wake(t, 0);
}

static bool was_handed(const weft_task *self)
{
    return self->wait_obj == &handed_mark;
}

/* Unlinks a task from a wait queue, wherever it is; no-op if it is not there. */
static void waitq_remove(weft__fifo *q, weft_task *t)
{
    weft__fifo_remove(q, &t->node);
}

static weft_task *waitq_pop(weft__fifo *q)
{
    return (weft_task *)weft__fifo_pop(q);
}

/* For weft_dump: t's place in a wait queue (1: the first), 0 if it is not there. */
static size_t waitq_place(const weft__fifo *q, const weft_task *t)
{
    size_t i = 1;
    for (const weft__node *n = q->head; n; n = n->next, i++)
        if (n == &t->node)
            return i;
    return 0;
}

/* The loop a new primitive belongs to, or NULL with the message set. */
static weft_loop *creating_loop(const char *what)
{
    weft_loop *L = weft__loop;
    if (!L)
        weft__set_errmsg(WEFT_ENOTINLOOP, "%s needs a running weft loop: make it from a task (start one "
                                          "with weft_run)", what);
    return L;
}

static void *out_of_memory(const char *what)
{
    weft__set_errmsg(-ENOMEM, "%s: out of memory", what);
    return NULL;
}

/* Checks a call that may suspend: made from a task of the object's loop, on an
 * object that exists. Returns the calling task, or NULL with *rc set. */
static weft_task *waiting_caller(const char *what, const void *obj, const weft_loop *owner, int *rc)
{
    weft_task *self = weft__current();
    if (!self) {
        *rc = weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task of a running weft loop "
                                                "(start one with weft_run)", what);
        return NULL;
    }
    if (!obj) {
        *rc = weft__set_errmsg(-EINVAL, "%s: the object is NULL (did its _new call fail?)", what);
        return NULL;
    }
    if (owner != weft__loop) {
        *rc = weft__set_errmsg(WEFT_ESTATE, "%s: the object belongs to another thread's loop; weft's "
                                            "primitives are for the tasks of the loop that made them", what);
        return NULL;
    }
    return self;
}

/* Checks a call that never suspends but may wake tasks, so must run on the
 * object's loop (from a task or a callback). Returns 0 or the error. */
static int on_owner_loop(const char *what, const void *obj, const weft_loop *owner)
{
    if (!obj)
        return weft__set_errmsg(-EINVAL, "%s: the object is NULL (did its _new call fail?)", what);
    if (!weft__loop)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task or callback of the loop "
                                                 "that made the object (from another thread: through "
                                                 "weft_call_soon_threadsafe)", what);
    if (owner != weft__loop)
        return weft__set_errmsg(WEFT_ESTATE, "%s: the object belongs to another thread's loop; call it "
                                             "there through weft_call_soon_threadsafe", what);
    return 0;
}

/* For the calls that return nothing: a misuse is reported, the call ignored. */
static bool void_call_ok(const char *what, const void *obj, const weft_loop *owner)
{
    if (!obj)
        return false;
    if (on_owner_loop(what, obj, owner) == 0)
        return true;
    weft__report("weft: %s ignored: %s", what, weft_errmsg());
    return false;
}

static int refuse_free(const char *what, size_t waiting, const char *waits_for)
{
    return weft__set_errmsg(-EBUSY, "%s: %zu task(s) still %s; free it once they have returned "
                                    "(or cancel them first)", what, waiting, waits_for);
}

/* ------------------------------------------------------------------------ */
/* Lock                                                                     */
/* ------------------------------------------------------------------------ */

struct weft_lock {
    weft_loop *loop;
    bool locked;
    weft_task *owner;        /* the task that holds it; compared, never dereferenced */
    uint32_t owner_id;       /* with owner: a record reused by a later task is not the holder */
    weft__fifo waiters;
    size_t in_acquire;       /* tasks inside an acquire: queued, or handed the lock and not yet resumed */
    bool handed;             /* released to a waiter that has not run yet: locked() says false,
                                as asyncio's does, though nobody else may take it meanwhile */
};

weft_lock *weft_lock_new(void)
{
    weft_loop *L = creating_loop("weft_lock_new");
    if (!L)
        return NULL;
    weft_lock *lock = calloc(1, sizeof *lock);
    if (!lock)
        return out_of_memory("weft_lock_new");
    lock->loop = L;
    return lock;
}

int weft_lock_free(weft_lock *lock)
{
    if (!lock)
        return 0;
    if (lock->in_acquire)
        return refuse_free("weft_lock_free", lock->in_acquire, "wait to acquire the lock");
    free(lock);
    return 0;
}

static void lock_take(weft_lock *lock, weft_task *t)
{
    lock->locked = true;
    lock->owner = t;
    lock->owner_id = t->id;
}

static bool lock_held_by(const weft_lock *lock, const weft_task *t)
{
    return lock->locked && lock->owner == t && lock->owner_id == t->id;
}

/* The lock is being let go: it goes straight to the first waiter, if any. */
static void lock_pass_on(weft_lock *lock)
{
    weft_task *next = waitq_pop(&lock->waiters);
    if (!next) {
        lock->locked = false;
        lock->owner = NULL;
        lock->handed = false;
        return;
    }
    lock_take(lock, next);
    lock->handed = true;
    hand_over(next);
}

static void lock_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft_lock *lock = self->wait_obj;
    waitq_remove(&lock->waiters, self);
}

/* weft_dump: which lock, who holds it (the owner record is type-stable: reading its
 * state and id is safe even once freed), and the queue. */
static void lock_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_lock *lock = self->wait_obj;
    const weft_task *owner = lock->owner;
    char holder[128];
    if (!lock->locked || !owner)
        snprintf(holder, sizeof holder, "free");
    else if (WEFT__STATE(owner) == WEFT__FREE || owner->id != lock->owner_id)
        snprintf(holder, sizeof holder, "held by task %u, which has finished without releasing it", lock->owner_id);
    else {
        char who[96];
        weft__describe_task(owner, who, sizeof who);
        snprintf(holder, sizeof holder, "held by %s", who);
    }
    snprintf(buf, size, "%p %s; %zu of %zu waiting", (const void *)lock, holder,
             waitq_place(&lock->waiters, self), lock->waiters.count);
}

static const weft__wait_kind lock_wait = {"lock", lock_unwait, lock_describe};

static void lock_unwait(weft_task *self, int reason);

/* Whether acquiring `lock` would make `self` wait for itself: the lock is held by
 * self, or by a task that waits to acquire a lock held by ... self. */
static bool lock_waits_for(const weft_lock *lock, const weft_task *self)
{
    for (int hops = 0; lock && hops < 10000; hops++) {
        if (!lock->locked || lock->handed)
            return false;
        const weft_task *owner = lock->owner;
        if (!owner || WEFT__STATE(owner) == WEFT__FREE || owner->id != lock->owner_id)
            return false;
        if (owner == self)
            return true;
        if (WEFT__STATE(owner) != WEFT__WAITING || owner->wait_kind != &lock_wait)
            return false;
        lock = owner->wait_obj; /* the lock that owner waits for */
    }
    return false;
}

static bool lock_free_for(const weft_lock *lock)
{
    return !lock->locked && lock->waiters.count == 0;
}

int weft_lock_acquire(weft_lock *lock)
{
    int rc;
    weft_task *self = waiting_caller("weft_lock_acquire", lock, lock ? lock->loop : NULL, &rc);
    if (!self)
        return rc;
    if (lock_free_for(lock)) {
        lock_take(lock, self);
        return 0;
    }
    if (lock_waits_for(lock, self)) {
        if (lock_held_by(lock, self))
            return weft__set_errmsg(-EDEADLK, "weft_lock_acquire: %s already holds this lock; weft's locks are "
                                              "not reentrant (as asyncio's), so it would wait for itself "
                                              "forever", weft_task_name(self));
        return weft__set_errmsg(-EDEADLK, "weft_lock_acquire: %s would wait forever: the lock is held by %s, "
                                          "which waits (through the locks it needs) for a lock %s holds",
                                weft_task_name(self), weft_task_name(lock->owner), weft_task_name(self));
    }
    lock->in_acquire++;
    weft__fifo_push(&lock->waiters, &self->node);
    rc = weft__wait(&lock_wait, lock);
    lock->in_acquire--;
    if (was_handed(self)) {
        if (rc == 0) {
            lock->handed = false;
            return 0;
        }
        /* Given the lock, then cancelled before it could run: the next waiter has it. */
        lock_pass_on(lock);
    }
    return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;
}

/*
 * Acquires the lock even though the task is, or becomes, cancelled: a condition
 * wait must return holding the lock whatever happens (asyncio retries its
 * acquire until it succeeds). The cancel requests are set aside while it waits, as
 * weft_group_wait does, and given back, with any that arrived meanwhile, once the
 * lock is held. A request that comes after the lock was handed over does not make
 * it give the lock away: it would only queue for it again.
 */
static void lock_acquire_regardless(weft_lock *lock, weft_task *self)
{
    unsigned held = self->cancelling;
    self->cancelling = 0;
    for (;;) {
        if (lock_free_for(lock)) {
            lock_take(lock, self);
            break;
        }
        lock->in_acquire++;
        weft__fifo_push(&lock->waiters, &self->node);
        weft__wait(&lock_wait, lock);
        lock->in_acquire--;
        held += self->cancelling;
        self->cancelling = 0;
        if (was_handed(self)) {
            lock->handed = false;
            break;
        }
        /* Cancelled while queued: it left the queue; queue again, at the back,
         * as asyncio's retried acquire does. */
    }
    self->cancelling = (uint16_t)(held < UINT16_MAX ? held : UINT16_MAX);
}

int weft_lock_release(weft_lock *lock)
{
    int rc = on_owner_loop("weft_lock_release", lock, lock ? lock->loop : NULL);
    if (rc)
        return rc;
    if (!lock->locked || lock->handed)
        return weft__set_errmsg(WEFT_ESTATE, "weft_lock_release: the lock is not locked (released twice, "
                                             "or released without a successful weft_lock_acquire)");
    lock_pass_on(lock);
    return 0;
}

bool weft_lock_locked(const weft_lock *lock)
{
    return lock && lock->locked && !lock->handed;
}

/* ------------------------------------------------------------------------ */
/* Event                                                                    */
/* ------------------------------------------------------------------------ */

/* A woken waiter never touches the event again, so the event can be freed as
 * soon as it has been set, before its waiters have run. */
struct weft_event {
    weft_loop *loop;
    bool set;
    weft__fifo waiters;
};

weft_event *weft_event_new(void)
{
    weft_loop *L = creating_loop("weft_event_new");
    if (!L)
        return NULL;
    weft_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return out_of_memory("weft_event_new");
    ev->loop = L;
    return ev;
}

int weft_event_free(weft_event *ev)
{
    if (!ev)
        return 0;
    if (ev->waiters.count)
        return refuse_free("weft_event_free", ev->waiters.count, "wait for the event");
    free(ev);
    return 0;
}

void weft_event_set(weft_event *ev)
{
    if (!void_call_ok("weft_event_set", ev, ev ? ev->loop : NULL) || ev->set)
        return;
    ev->set = true;
    weft_task *t;
    while ((t = waitq_pop(&ev->waiters)) != NULL)
        weft__wake(t, 0);
}

void weft_event_clear(weft_event *ev)
{
    if (ev)
        ev->set = false;
}

bool weft_event_is_set(const weft_event *ev)
{
    return ev && ev->set;
}

static void event_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft_event *ev = self->wait_obj;
    waitq_remove(&ev->waiters, self);
}

static void event_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_event *ev = self->wait_obj;
    snprintf(buf, size, "%p, not set; %zu waiting", (const void *)ev, ev->waiters.count);
}

static const weft__wait_kind event_wait = {"event", event_unwait, event_describe};

int weft_event_wait(weft_event *ev)
{
    int rc;
    weft_task *self = waiting_caller("weft_event_wait", ev, ev ? ev->loop : NULL, &rc);
    if (!self)
        return rc;
    if (ev->set)
        return 0;
    weft__fifo_push(&ev->waiters, &self->node);
    rc = weft__wait(&event_wait, ev);
    return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;
}

/* ------------------------------------------------------------------------ */
/* Condition                                                                */
/* ------------------------------------------------------------------------ */

struct weft_cond {
    weft_loop *loop;
    weft_lock *lock;
    bool own_lock;           /* made by weft_cond_new, freed with the condition */
    weft__fifo waiters;     /* waiting for a notification */
    size_t in_wait;          /* tasks inside weft_cond_wait, notified or not */
};

weft_cond *weft_cond_new(weft_lock *lock)
{
    weft_loop *L = creating_loop("weft_cond_new");
    if (!L)
        return NULL;
    if (lock && lock->loop != L) {
        weft__set_errmsg(WEFT_ESTATE, "weft_cond_new: the lock belongs to another thread's loop");
        return NULL;
    }
    weft_cond *cond = calloc(1, sizeof *cond);
    if (!cond)
        return out_of_memory("weft_cond_new");
    if (!lock) {
        lock = weft_lock_new();
        if (!lock) {
            free(cond);
            return out_of_memory("weft_cond_new");
        }
        cond->own_lock = true;
    }
    cond->loop = L;
    cond->lock = lock;
    return cond;
}

int weft_cond_free(weft_cond *cond)
{
    if (!cond)
        return 0;
    if (cond->in_wait)
        return refuse_free("weft_cond_free", cond->in_wait, "wait on the condition");
    if (cond->own_lock && cond->lock->in_acquire)
        return refuse_free("weft_cond_free", cond->lock->in_acquire, "wait to acquire the condition's lock");
    if (cond->own_lock)
        weft_lock_free(cond->lock);
    free(cond);
    return 0;
}

weft_lock *weft_cond_lock(weft_cond *cond)
{
    return cond ? cond->lock : NULL;
}

/* The checks of wait and notify: the calling task must hold the lock. */
static int check_holder(const char *what, const weft_cond *cond)
{
    int rc = on_owner_loop(what, cond, cond ? cond->loop : NULL);
    if (rc)
        return rc;
    weft_task *self = weft__current();
    if (!self || !lock_held_by(cond->lock, self))
        return weft__set_errmsg(WEFT_ESTATE, "%s: the calling %s does not hold the condition's lock%s; "
                                             "acquire weft_cond_lock(cond) with weft_lock_acquire first",
                                what, self ? "task" : "callback",
                                cond->lock->locked ? " (another task holds it)" : "");
    return 0;
}

static void cond_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft_cond *cond = self->wait_obj;
    waitq_remove(&cond->waiters, self);
}

static void cond_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_cond *cond = self->wait_obj;
    snprintf(buf, size, "%p (lock %p); %zu waiting for a notification", (const void *)cond,
             (const void *)cond->lock, cond->waiters.count);
}

static const weft__wait_kind cond_wait = {"condition", cond_unwait, cond_describe};

/* Wakes up to n waiters, first come first served; each will re-acquire the lock. */
static void cond_notify(weft_cond *cond, size_t n)
{
    weft_task *t;
    while (n-- > 0 && (t = waitq_pop(&cond->waiters)) != NULL)
        hand_over(t);
}

int weft_cond_wait(weft_cond *cond)
{
    int rc;
    weft_task *self = waiting_caller("weft_cond_wait", cond, cond ? cond->loop : NULL, &rc);
    if (!self)
        return rc;
    if ((rc = check_holder("weft_cond_wait", cond)) != 0)
        return rc;
    /* Already cancelled: the wait would end at once and take the lock back, so
     * nothing is let go at all. */
    if (self->cancelling)
        return weft__cancelled_errmsg(self);

    cond->in_wait++;
    lock_pass_on(cond->lock);
    weft__fifo_push(&cond->waiters, &self->node);
    weft__wait(&cond_wait, cond);
    bool notified = was_handed(self);
    lock_acquire_regardless(cond->lock, self);
    cond->in_wait--;
    if (self->cancelling) {
        /* Cancelled while waiting or while taking the lock back. A notification
         * already received is not lost: the next waiter gets it. */
        if (notified)
            cond_notify(cond, 1);
        return weft__cancelled_errmsg(self);
    }
    return 0;
}

int weft_cond_wait_for(weft_cond *cond, bool (*pred)(void *arg), void *arg)
{
    if (!pred)
        return weft__set_errmsg(-EINVAL, "weft_cond_wait_for: the predicate is NULL");
    int rc;
    if (!waiting_caller("weft_cond_wait_for", cond, cond ? cond->loop : NULL, &rc))
        return rc;
    if ((rc = check_holder("weft_cond_wait_for", cond)) != 0)
        return rc;
    while (!pred(arg))
        if ((rc = weft_cond_wait(cond)) != 0)
            return rc;
    return 0;
}

int weft_cond_notify(weft_cond *cond, size_t n)
{
    int rc = check_holder("weft_cond_notify", cond);
    if (rc)
        return rc;
    cond_notify(cond, n);
    return 0;
}

int weft_cond_notify_all(weft_cond *cond)
{
    int rc = check_holder("weft_cond_notify_all", cond);
    if (rc)
        return rc;
    cond_notify(cond, cond->waiters.count);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Semaphore and BoundedSemaphore                                           */
/* ------------------------------------------------------------------------ */

struct weft_sem {
    weft_loop *loop;
    long value;              /* permits free now (not counting those handed to a waiter) */
    long bound;              /* a bounded semaphore's initial value; -1 = unbounded */
    weft__fifo waiters;
    size_t in_acquire;       /* tasks inside an acquire: queued, or handed a permit and not yet resumed */
};

static weft_sem *sem_new(const char *what, long value, long bound)
{
    weft_loop *L = creating_loop(what);
    if (!L)
        return NULL;
    if (value < 0) {
        weft__set_errmsg(-EINVAL, "%s: the initial value %ld is negative; a semaphore holds 0 or more permits",
                         what, value);
        return NULL;
    }
    weft_sem *sem = calloc(1, sizeof *sem);
    if (!sem)
        return out_of_memory(what);
    sem->loop = L;
    sem->value = value;
    sem->bound = bound;
    return sem;
}

weft_sem *weft_sem_new(long value)
{
    return sem_new("weft_sem_new", value, -1);
}

weft_sem *weft_bounded_sem_new(long value)
{
    return sem_new("weft_bounded_sem_new", value, value);
}

int weft_sem_free(weft_sem *sem)
{
    if (!sem)
        return 0;
    if (sem->in_acquire)
        return refuse_free("weft_sem_free", sem->in_acquire, "wait to acquire the semaphore");
    free(sem);
    return 0;
}

/* Hands free permits to the waiters, first come first served. */
static void sem_serve(weft_sem *sem)
{
    while (sem->value > 0 && sem->waiters.count) {
        sem->value--;
        hand_over(waitq_pop(&sem->waiters));
    }
}

static void sem_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft_sem *sem = self->wait_obj;
    waitq_remove(&sem->waiters, self);
}

static void sem_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_sem *sem = self->wait_obj;
    char bound[48] = "";
    if (sem->bound >= 0)
        snprintf(bound, sizeof bound, " of %ld", sem->bound);
    snprintf(buf, size, "%p, value %ld%s; %zu of %zu waiting", (const void *)sem, sem->value, bound,
             waitq_place(&sem->waiters, self), sem->waiters.count);
}

static const weft__wait_kind sem_wait = {"semaphore", sem_unwait, sem_describe};

bool weft_sem_locked(const weft_sem *sem)
{
    return sem && (sem->value == 0 || sem->waiters.count > 0);
}

long weft_sem_value(const weft_sem *sem)
{
    return sem ? sem->value : 0;
}

int weft_sem_acquire(weft_sem *sem)
{
    int rc;
    weft_task *self = waiting_caller("weft_sem_acquire", sem, sem ? sem->loop : NULL, &rc);
    if (!self)
        return rc;
    if (!weft_sem_locked(sem)) {
        sem->value--;
        return 0;
    }
    sem->in_acquire++;
    weft__fifo_push(&sem->waiters, &self->node);
    rc = weft__wait(&sem_wait, sem);
    sem->in_acquire--;
    if (was_handed(self)) {
        if (rc == 0)
            return 0;
        /* Given a permit, then cancelled before it could run: it goes on. */
        sem->value++;
        sem_serve(sem);
    }
    return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;
}

int weft_sem_release(weft_sem *sem)
{
    int rc = on_owner_loop("weft_sem_release", sem, sem ? sem->loop : NULL);
    if (rc)
        return rc;
    if (sem->bound >= 0 && sem->value >= sem->bound)
        return weft__set_errmsg(WEFT_ESTATE, "weft_sem_release: the bounded semaphore was released more "
                                             "times than it was acquired (its value is already its initial "
                                             "value %ld)", sem->bound);
    if (sem->value == LONG_MAX)
        return weft__set_errmsg(-EOVERFLOW, "weft_sem_release: the semaphore already holds LONG_MAX permits");
    sem->value++;
    sem_serve(sem);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Barrier                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * The last party to arrive lets the others go at once and the barrier is empty
 * again, ready for the next round, without asyncio's draining phase. Each waiter
 * learns its index from its wake reason: its place among the parties that passed
 * together, counted when they pass, so indices stay 0 .. parties-1 even when a
 * cancelled party left the queue. A woken waiter never touches the barrier again.
 */
struct weft_barrier {
    weft_loop *loop;
    size_t parties;
    bool broken;
    weft__fifo waiters;
};

weft_barrier *weft_barrier_new(size_t parties)
{
    weft_loop *L = creating_loop("weft_barrier_new");
    if (!L)
        return NULL;
    if (parties == 0 || parties > INT_MAX) {
        weft__set_errmsg(-EINVAL, "weft_barrier_new: %zu parties; a barrier needs 1 to %d", parties, INT_MAX);
        return NULL;
    }
    weft_barrier *b = calloc(1, sizeof *b);
    if (!b)
        return out_of_memory("weft_barrier_new");
    b->loop = L;
    b->parties = parties;
    return b;
}

int weft_barrier_free(weft_barrier *b)
{
    if (!b)
        return 0;
    if (b->waiters.count)
        return refuse_free("weft_barrier_free", b->waiters.count, "wait at the barrier");
    free(b);
    return 0;
}

static void barrier_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft_barrier *b = self->wait_obj;
    waitq_remove(&b->waiters, self);
}

static void barrier_describe(const weft_task *self, char *buf, size_t size)
{
    const weft_barrier *b = self->wait_obj;
    snprintf(buf, size, "%p, %zu of %zu parties arrived", (const void *)b, b->waiters.count, b->parties);
}

static const weft__wait_kind barrier_wait = {"barrier", barrier_unwait, barrier_describe};

/* Wakes every waiter with its index, or with `broken`. */
static void barrier_wake_all(weft_barrier *b, bool broken)
{
    int index = 0;
    weft_task *t;
    while ((t = waitq_pop(&b->waiters)) != NULL)
        weft__wake(t, broken ? WEFT_EBROKEN : index++);
}

int weft_barrier_wait(weft_barrier *b)
{
    int rc;
    weft_task *self = waiting_caller("weft_barrier_wait", b, b ? b->loop : NULL, &rc);
    if (!self)
        return rc;
    if (b->broken)
        return weft__set_errmsg(WEFT_EBROKEN, "weft_barrier_wait: the barrier is broken (aborted); "
                                              "weft_barrier_reset makes it usable again");
    if (b->waiters.count + 1 == b->parties) {
        int index = (int)b->waiters.count;
        barrier_wake_all(b, false);
        return index;
    }
    weft__fifo_push(&b->waiters, &self->node);
    rc = weft__wait(&barrier_wait, b);
    if (rc == -ECANCELED)
        return weft__cancelled_errmsg(self);
    if (rc == WEFT_EBROKEN)
        return weft__set_errmsg(WEFT_EBROKEN, "weft_barrier_wait: the barrier was aborted or reset while "
                                              "%s waited", weft_task_name(self));
    return rc;
}

void weft_barrier_reset(weft_barrier *b)
{
    if (!void_call_ok("weft_barrier_reset", b, b ? b->loop : NULL))
        return;
    barrier_wake_all(b, true);
    b->broken = false;
}

void weft_barrier_abort(weft_barrier *b)
{
    if (!void_call_ok("weft_barrier_abort", b, b ? b->loop : NULL))
        return;
    b->broken = true;
    barrier_wake_all(b, true);
}

size_t weft_barrier_n_waiting(const weft_barrier *b)
{
    return b ? b->waiters.count : 0;
}

bool weft_barrier_broken(const weft_barrier *b)
{
    return b && b->broken;
}
