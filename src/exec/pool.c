/*
 * pool.c — thread executors: pools of threads that run blocking functions while the
 * calling task waits (weft_to_thread, weft_pool_*: asyncio.to_thread,
 * loop.run_in_executor, concurrent.futures.ThreadPoolExecutor), the process-wide
 * default pool, and weft_run_in_loop (asyncio.run_coroutine_threadsafe).
 *
 * A call's way: the task fills a call record, puts it on its loop's list of calls
 * to hand over (the loop's "port") and suspends. Once per loop iteration a callback
 * hands the calls made meanwhile to their pools, one lock and one round of wake-ups
 * per pool. A worker takes a call, runs it, and pushes it on the port's lock-free
 * completion stack; only the push that finds the stack empty asks the loop to drain
 * it (weft_call_soon_threadsafe), so a burst of completions costs the loop one
 * wake-up. The drain wakes each waiting task, which takes its result and frees the
 * record. Measured on W6 (peers/README.md, 2-core VM): with a lock per call on both
 * sides (pool and port) weft made ~0.48 M calls/s, its threads sleeping on each
 * other's locks; batched hand-over and the lock-free stack make it ~0.9-1.0 M
 * (libuv's queue_work: ~0.6 M).
 *
 * Who owns a call record (never the task's stack: the task may be compact):
 *   - pending (on the port) or queued (in the pool): the caller's loop or the pool.
 *     A caller that leaves (cancelled) unlinks and frees it: it never runs.
 *   - running, or pushed on the port: the completion path. A caller that leaves only
 *     forgets it (call->task = NULL) and the drain frees it; a caller the drain woke
 *     frees it itself after reading the result.
 *   - held (weft__to_thread_held, exec.h): the caller's throughout. A caller
 *     cancelled while it runs waits on, so the drain only marks it back.
 * Records are so freed on the loop's thread only, and come from its small allocator.
 * Each record holds a reference on its pool, so a pool freed by weft_pool_free while
 * completions are still on their way stays readable until the last is processed.
 *
 * Every call submitted from a loop counts in L->external_refs until its completion
 * is processed: meanwhile the loop waits in the poller rather than report a deadlock.
 *
 * The default pool (the choice weft.h leaves open): one per process, created by the
 * first weft_to_thread of any loop with weft_default_pool_size() threads, shared by
 * the loops of every thread that use it. Each such loop is a user; when its weft_run
 * ends, the loop waits for its own calls (still running callbacks meanwhile, so a
 * blocking call that itself calls weft_run_in_loop on this loop is answered), and the
 * last user to finish shuts the pool down and joins its threads, as asyncio.run ends
 * with shutdown_default_executor. The next weft_to_thread, on any thread, creates a
 * new pool, with the size set at that time. So no thread outlives the loops that used
 * it, and weft_set_default_pool_size works again between runs.
 */
#include "util/dlist.h"
#include "exec/exec.h"

#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The most threads a pool may have: more only add memory and contention. */
#define POOL_MAX_THREADS 1024

typedef struct pool_call pool_call;
typedef struct loop_port loop_port;

enum call_state {
    CALL_PENDING = 0, /* on its loop's list of calls to hand to the pool */
    CALL_QUEUED,     /* in the pool's queue */
    CALL_TAKEN,      /* taken by a worker, or dropped by a shutdown: on its way back */
};

struct pool_call {
    union {
        weft__dlink link;    /* the port's pending list, then the pool's queue */
        pool_call *next_done; /* then the port's completion stack */
    };
    weft_blocking_fn fn;
    void *arg;
    void *result;
    void (*drop)(void *result); /* frees a result nobody takes (the _drop calls) */
    char *msg;               /* the blocking function's weft_fail message, malloc'd */
    int err;
    uint8_t fate;            /* why it never ran, if it did not */
    uint8_t held;            /* HELD_*: its caller stays until it is back (weft__to_thread_held) */
    uint8_t back;            /* held: its completion has been processed (loop thread only) */
    uint8_t unrun;           /* held: taken back before it started; it never runs (loop thread only) */
    atomic_int *stop;        /* held: set to 1 when the caller is cancelled while it runs */
    atomic_int state;        /* PENDING (loop thread) -> QUEUED -> TAKEN (under the pool's lock) */
    weft_task *task;         /* the waiting task, NULL once it left; loop thread only */
    loop_port *port;
    weft_pool *pool;
};

enum call_held {
    HELD = 1,        /* weft__to_thread_held: the caller frees the record */
    HELD_ALWAYS = 2, /* ... and it runs even when its caller is cancelled before it starts */
};

enum call_fate {
    CALL_RAN = 0,
    CALL_DROPPED,    /* queued when its pool was shut down without waiting */
    CALL_REFUSED,    /* its pool was shut down before it was handed over */
    CALL_NO_THREAD,  /* its pool could not start any thread */
};

/* A task suspended in weft_pool_shutdown(pool, true). */
typedef struct shutdown_waiter {
    struct shutdown_waiter *next;
    weft_loop *loop;
    weft_task *task;         /* NULL once it left; loop thread only */
    weft_pool *pool;
    bool posted;             /* the wake-up is on its way (under the pool's lock) */
} shutdown_waiter;

struct weft_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;            /* idle workers wait here for calls */
    pthread_cond_t idle;            /* threads blocked in a waiting shutdown */
    weft__dlist queue;              /* queued calls, oldest first */
    size_t queued, running;
    size_t max_threads;
    size_t threads;                 /* started; their ids are tids[0..threads) */
    size_t idle_workers;            /* waiting on `work` */
    size_t wakes_pending;           /* signals sent to idle workers not yet woken */
    atomic_bool shutdown;           /* written under lock; read without it by a quick check */
    shutdown_waiter *waiters;
    atomic_size_t refs;             /* the owner's + one per call record + one per waiter */
    pthread_t *tids;
};

/*
 * A loop's side of every pool: the list its completions arrive on. Made at the
 * loop's first call, freed when its weft_run ends (by the drain, if one is still
 * scheduled then).
 */
struct loop_port {
    weft_loop *loop;
    _Atomic(pool_call *) done;      /* finished calls, newest first (a lock-free stack) */
    atomic_size_t pushing;          /* threads inside port_push: the port must outlive them */
    atomic_size_t drains_posted;
    atomic_size_t running;          /* calls of this loop running on a pool's thread (metrics) */
    /* The loop thread's only: */
    size_t drains_run;
    bool orphan;                    /* weft_run has ended: the last drain scheduled frees the port */
    weft__dlist pending;            /* calls not handed to their pool yet */
    weft__callback *flush;          /* scheduled to hand them over, or NULL */
    size_t outstanding;             /* calls submitted whose completion is not processed */
    weft_task *closer;              /* waits for outstanding to reach 0 at the end of weft_run */
    weft_pool *default_pool;        /* the default pool this loop is a user of */
};


/* The call whose link is `link`; NULL for NULL. */
static inline pool_call *call_of(weft__dlink *link)
{
    return link ? WEFT__CONTAINER_OF(link, pool_call, link) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Pools: references, threads                                               */
/* ------------------------------------------------------------------------ */

static void pool_ref(weft_pool *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

static void pool_unref(weft_pool *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    free(p->tids);
    free(p);
}

static size_t cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* asyncio's (concurrent.futures') default: min(32, os.cpu_count() + 4). */
static size_t standard_pool_size(void)
{
    size_t n = cpu_count() + 4;
    return n < 32 ? n : 32;
}

weft_pool *weft_pool_new(size_t threads)
{
    if (threads > POOL_MAX_THREADS) {
        weft__set_errmsg(-EINVAL, "weft_pool_new: %zu threads is more than the %d a pool may have", threads,
                         POOL_MAX_THREADS);
        return NULL;
    }
    if (threads == 0)
        threads = standard_pool_size();
    weft_pool *p = calloc(1, sizeof *p);
    pthread_t *tids = p ? calloc(threads, sizeof *tids) : NULL;
    if (!tids) {
        free(p);
        weft__set_errmsg(-ENOMEM, "weft_pool_new: out of memory for a pool of %zu threads", threads);
        return NULL;
    }
    p->tids = tids;
    p->max_threads = threads;
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    return p;
}

static bool pool_is_idle(const weft_pool *p)
{
    return p->running == 0 && weft__dlist_empty(&p->queue);
}

static void post_or_retry(weft_loop *L, weft_callback_fn cb, void *arg);

static void shutdown_waiter_woken(void *arg);

/* A shut-down pool has nothing left to run: tell whoever waits. Under p->lock. */
static void notify_idle(weft_pool *p)
{
    pthread_cond_broadcast(&p->idle);
    while (p->waiters) {
        shutdown_waiter *w = p->waiters;
        p->waiters = w->next;
        w->posted = true;
        /* Posted under the lock: the waiter's unwait takes it too, so its loop is
         * still running while we post. */
        post_or_retry(w->loop, shutdown_waiter_woken, w);
    }
}

static void port_push(loop_port *port, pool_call *c);

static void *worker_main(void *arg)
{
    weft_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        pool_call *c = call_of(weft__dlist_pop_front(&p->queue));
        if (!c) {
            if (p->shutdown)
                break;
            p->idle_workers++;
            pthread_cond_wait(&p->work, &p->lock);
            p->idle_workers--;
            if (p->wakes_pending > 0)
                p->wakes_pending--;
            continue;
        }
        p->queued--;
        p->running++;
        atomic_store_explicit(&c->state, CALL_TAKEN, memory_order_relaxed);
        pthread_mutex_unlock(&p->lock);

        /* The port lives while c is outstanding: until port_push has returned. */
        loop_port *port = c->port;
        atomic_fetch_add_explicit(&port->running, 1, memory_order_relaxed);
        void *result = c->fn(c->arg);
        char *msg = NULL;
        int err = weft__thread_error_take(&msg);
        c->result = err ? NULL : result;
        c->err = err;
        c->msg = msg;
        atomic_fetch_sub_explicit(&port->running, 1, memory_order_relaxed);
        port_push(port, c); /* c may be freed from here on */

        pthread_mutex_lock(&p->lock);
        p->running--;
        if (p->shutdown && pool_is_idle(p))
            notify_idle(p);
    }
    pthread_mutex_unlock(&p->lock);
    weft__clear_thread_error(); /* a message some call left without an error */
    return NULL;
}

/* Starts one more worker, with every asynchronous signal blocked: signals are for
 * the loops' threads. Under p->lock. Returns 0 or a negative errno. */
static int start_worker(weft_pool *p)
{
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&p->tids[p->threads], NULL, worker_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    p->threads++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The loop's port: completions coming back                                 */
/* ------------------------------------------------------------------------ */

static void port_drain(void *arg);

/* weft_call_soon_threadsafe that cannot be allowed to fail: a lost completion
 * would leave a task waiting forever. Out of memory, it tries again. */
static void post_or_retry(weft_loop *L, weft_callback_fn cb, void *arg)
{
    while (weft_call_soon_threadsafe(L, cb, arg) == -ENOMEM)
        nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
}

/*
 * From any thread: a call is done (or dropped). Lock-free, because a mutex here,
 * taken by every worker for every call, made W6's threads sleep on each other.
 * The push that finds the stack empty schedules the drain: any drain scheduled
 * before has already taken the stack, so the new drain is the one that takes
 * this call. `pushing` keeps the port (and its loop) alive until the post is in.
 */
static void port_push(loop_port *port, pool_call *c)
{
    atomic_fetch_add_explicit(&port->pushing, 1, memory_order_acquire);
    pool_call *old = atomic_load_explicit(&port->done, memory_order_relaxed);
    do
        c->next_done = old;
    while (!atomic_compare_exchange_weak_explicit(&port->done, &old, c, memory_order_release,
                                                  memory_order_relaxed));
    if (!old) {
        atomic_fetch_add_explicit(&port->drains_posted, 1, memory_order_relaxed);
        post_or_retry(port->loop, port_drain, port);
    }
    atomic_fetch_sub_explicit(&port->pushing, 1, memory_order_release);
}

static void call_free(weft_loop *L, pool_call *c)
{
    weft_pool *p = c->pool;
    /* A result nobody took (the caller left, or passed no result pointer). */
    if (c->drop && c->err == 0 && c->result && c->fate == CALL_RAN)
        c->drop(c->result);
    free(c->msg);
    weft__small_free(&L->small, c, sizeof *c);
    pool_unref(p);
}

/* Loop thread: a call's completion has been taken off the port. */
static void call_returned(weft_loop *L, loop_port *port, pool_call *c)
{
    port->outstanding--;
    L->external_refs--;
    if (c->held)
        c->back = 1; /* its caller is still there, waiting or about to wait again */
    if (c->task)
        weft__wake(c->task, 0); /* the task frees the record */
    else if (!c->held)
        call_free(L, c);
    if (port->closer && port->outstanding == 0) {
        weft_task *closer = port->closer;
        port->closer = NULL;
        weft__wake(closer, 0);
    }
}

/* Loop thread: processes a list taken from port->done, oldest first. */
static void process_done(weft_loop *L, loop_port *port, pool_call *newest_first)
{
    pool_call *oldest_first = NULL;
    while (newest_first) {
        pool_call *next = newest_first->next_done;
        newest_first->next_done = oldest_first;
        oldest_first = newest_first;
        newest_first = next;
    }
    while (oldest_first) {
        pool_call *next = oldest_first->next_done;
        call_returned(L, port, oldest_first);
        oldest_first = next;
    }
}

/* The callback port_push schedules on the loop. */
static void port_drain(void *arg)
{
    loop_port *port = arg;
    port->drains_run++;
    if (port->orphan) {
        /* weft_run has ended: every call is back, this drain has nothing to do,
         * and the last one frees the port. */
        if (port->drains_run == atomic_load_explicit(&port->drains_posted, memory_order_relaxed))
            free(port);
        return;
    }
    process_done(weft__loop, port, atomic_exchange_explicit(&port->done, NULL, memory_order_acquire));
}

static loop_port *port_get(weft_loop *L)
{
    loop_port *port = L->slots[WEFT__SLOT_POOLS];
    if (port)
        return port;
    port = calloc(1, sizeof *port);
    if (!port)
        return NULL;
    port->loop = L;
    L->slots[WEFT__SLOT_POOLS] = port;
    return port;
}

/* ------------------------------------------------------------------------ */
/* The default pool                                                         */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static weft_pool *default_pool;     /* NULL until a loop needs it; dropped by the last user */
static size_t default_users;        /* loops that used it and whose weft_run has not ended */
static size_t default_size;         /* 0 = standard_pool_size() */

size_t weft_default_pool_size(void)
{
    pthread_mutex_lock(&default_lock);
    size_t n = default_pool ? default_pool->max_threads : default_size ? default_size : standard_pool_size();
    pthread_mutex_unlock(&default_lock);
    return n;
}

int weft_set_default_pool_size(size_t threads)
{
    if (threads > POOL_MAX_THREADS)
        return weft__set_errmsg(-EINVAL, "weft_set_default_pool_size: %zu threads is more than the %d a pool "
                                         "may have", threads, POOL_MAX_THREADS);
    pthread_mutex_lock(&default_lock);
    if (default_pool) {
        size_t now = default_pool->max_threads;
        pthread_mutex_unlock(&default_lock);
        return weft__set_errmsg(WEFT_ESTATE, "weft_set_default_pool_size: the default pool already runs with "
                                             "%zu threads (it lives while a loop that used weft_to_thread runs); "
                                             "set the size before the first weft_to_thread, or make a pool of "
                                             "your own with weft_pool_new", now);
    }
    default_size = threads;
    pthread_mutex_unlock(&default_lock);
    return 0;
}

/* Makes the current loop a user of the default pool (creating it), once per loop. */
static weft_pool *default_pool_for(loop_port *port)
{
    if (port->default_pool)
        return port->default_pool;
    pthread_mutex_lock(&default_lock);
    if (!default_pool)
        default_pool = weft_pool_new(default_size);
    weft_pool *p = default_pool;
    if (p)
        default_users++;
    pthread_mutex_unlock(&default_lock);
    port->default_pool = p;
    return p;
}

/* The loop is done with the default pool; the last user shuts it down. */
static void default_pool_leave(loop_port *port)
{
    weft_pool *p = port->default_pool;
    if (!p)
        return;
    port->default_pool = NULL;
    pthread_mutex_lock(&default_lock);
    bool last = --default_users == 0;
    if (last)
        default_pool = NULL;
    pthread_mutex_unlock(&default_lock);
    if (last)
        weft_pool_free(p); /* every user's calls are done: its threads are idle */
}

/* ------------------------------------------------------------------------ */
/* Running a call                                                           */
/* ------------------------------------------------------------------------ */

static int not_in_task(const char *what)
{
    return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task of a running weft loop "
                                             "(start one with weft_run)", what);
}

/* Takes a queued call out of the pool's queue. Under p->lock. */
static void unqueue(weft_pool *p, pool_call *c)
{
    weft__dlist_unlink(&p->queue, &c->link);
    p->queued--;
}

/* Takes back a call that has not started (on the port or in its pool's queue):
 * true if it did, and it will never run; false if a worker has it. */
static bool call_take_back(weft_loop *L, pool_call *c)
{
    int state = atomic_load_explicit(&c->state, memory_order_acquire);
    if (state == CALL_PENDING) {
        loop_port *port = c->port;
        weft__dlist_unlink(&port->pending, &c->link);
        port->outstanding--;
        L->external_refs--;
        return true;
    }
    if (state == CALL_QUEUED) {
        weft_pool *p = c->pool; /* alive: c holds a reference */
        pthread_mutex_lock(&p->lock);
        if (atomic_load_explicit(&c->state, memory_order_relaxed) == CALL_QUEUED) {
            unqueue(p, c);
            if (p->shutdown && pool_is_idle(p))
                notify_idle(p);
            pthread_mutex_unlock(&p->lock);
            c->port->outstanding--;
            L->external_refs--;
            return true;
        }
        pthread_mutex_unlock(&p->lock);
    }
    return false;
}

/* The waiting task leaves early (cancelled, or its timeout scope expired). */
static void call_unwait(weft_task *self, int reason)
{
    (void)reason;
    pool_call *c = self->wait_obj;
    weft_loop *L = weft__loop;
    self->wait_obj = NULL; /* tells run_call the record is no longer its to free */
    if (call_take_back(L, c)) {
        call_free(L, c); /* it never runs */
        return;
    }
    c->task = NULL; /* running or on its way back: the drain frees it */
}

/* weft_dump: where the call is ("the function" itself is named by the dump, which
 * can symbolize it: see weft__pools_for_each_call). */
static const char *call_where(const pool_call *c)
{
    switch (atomic_load_explicit(&c->state, memory_order_acquire)) {
    case CALL_PENDING:
        return "not handed to its pool yet";
    case CALL_QUEUED:
        return "queued, waiting for a thread";
    default:
        return c->back ? "back" : "running on a pool thread";
    }
}

static void call_describe(const weft_task *self, char *buf, size_t size)
{
    const pool_call *c = self->wait_obj;
    snprintf(buf, size, "%s%s", call_where(c), c->pool == c->port->default_pool ? ", default pool" : "");
}

static const weft__wait_kind call_wait = {"thread pool call", call_unwait, call_describe};

/* A held call's task is cancelled: a call not started is taken back (unless it
 * must run); one running is waited for again, its stop flag raised. The record
 * stays the caller's either way. */
static void held_unwait(weft_task *self, int reason)
{
    (void)reason;
    pool_call *c = self->wait_obj;
    c->task = NULL;
    if (!(c->held & HELD_ALWAYS) && call_take_back(weft__loop, c)) {
        c->unrun = 1;
        return;
    }
    if (c->stop)
        atomic_store_explicit(c->stop, 1, memory_order_relaxed);
}

static const weft__wait_kind held_wait = {"thread pool call (not cancellable)", held_unwait, call_describe};

/*
 * Appends the calls first..last (n of them, linked by next/prev) to p's queue and
 * wakes or starts the threads they need: one signal per sleeping worker needed, a
 * new thread (up to the size) for each call no sleeping worker takes, as
 * ThreadPoolExecutor does. Returns 0, or -ESHUTDOWN / -EAGAIN with the calls not
 * queued.
 */
static int hand_over(weft_pool *p, pool_call *first, pool_call *last, size_t n)
{
    pthread_mutex_lock(&p->lock);
    if (p->shutdown) {
        pthread_mutex_unlock(&p->lock);
        return -ESHUTDOWN;
    }
    for (pool_call *c = first;; c = call_of(c->link.next)) {
        atomic_store_explicit(&c->state, CALL_QUEUED, memory_order_relaxed);
        if (c == last)
            break;
    }
    weft__dlist_append_chain(&p->queue, &first->link, &last->link);
    p->queued += n;
    size_t sleeping = p->idle_workers - p->wakes_pending;
    size_t wake = n < sleeping ? n : sleeping;
    p->wakes_pending += wake;
    if (wake > 1 && wake == sleeping)
        pthread_cond_broadcast(&p->work);
    else
        for (size_t i = 0; i < wake; i++)
            pthread_cond_signal(&p->work);
    for (size_t more = n - wake; more > 0 && p->threads < p->max_threads; more--)
        if (start_worker(p) != 0)
            break; /* the threads already running take the calls */
    if (p->threads == 0) {
        weft__dlist_detach_chain(&p->queue, &first->link); /* still linked, for the caller */
        p->queued -= n;
        for (pool_call *c = first;; c = call_of(c->link.next)) {
            atomic_store_explicit(&c->state, CALL_PENDING, memory_order_relaxed);
            if (c == last)
                break;
        }
        pthread_mutex_unlock(&p->lock);
        return -EAGAIN;
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/*
 * Loop thread, once per loop iteration in which tasks made calls: hands the calls
 * to their pools, one lock and one round of wake-ups per pool rather than per call.
 * Calls a pool refuses go back to their tasks at once.
 */
static void flush_calls(void *arg)
{
    loop_port *port = arg;
    weft_loop *L = weft__loop;
    port->flush = NULL;
    pool_call *c = call_of(port->pending.head);
    port->pending = (weft__dlist){NULL, NULL};
    weft__dlist refused = {NULL, NULL};
    while (c) {
        pool_call *first = c, *last = c;
        size_t n = 1;
        while (last->link.next && call_of(last->link.next)->pool == first->pool) {
            last = call_of(last->link.next);
            n++;
        }
        c = call_of(last->link.next);
        int rc = hand_over(first->pool, first, last, n);
        if (rc == 0)
            continue;
        for (pool_call *r = first;; r = call_of(r->link.next)) {
            r->err = rc;
            r->fate = rc == -ESHUTDOWN ? CALL_REFUSED : CALL_NO_THREAD;
            if (r == last)
                break;
        }
        weft__dlist_append_chain(&refused, &first->link, &last->link);
    }
    for (weft__dlink *r; (r = weft__dlist_pop_front(&refused));)
        call_returned(L, port, call_of(r));
}

static int refusal(const char *what)
{
    return weft__set_errmsg(-ESHUTDOWN, "%s: the pool has been shut down (weft_pool_shutdown) and takes no new "
                                        "calls; create a new pool with weft_pool_new", what);
}

static int no_thread(const char *what)
{
    return weft__set_errmsg(-EAGAIN, "%s: the pool could not start any thread (the process is out of threads "
                                     "or memory)", what);
}

static void closer_unwait(weft_task *self, int reason)
{
    (void)reason;
    loop_port *port = self->wait_obj;
    port->closer = NULL;
}

static void closer_describe(const weft_task *self, char *buf, size_t size)
{
    const loop_port *port = self->wait_obj;
    snprintf(buf, size, "%zu calls of this loop still out", port->outstanding);
}

static const weft__wait_kind closer_wait = {"thread pool calls to finish", closer_unwait, closer_describe};

/*
 * Makes a call record for fn(arg) on pool p (NULL: the default pool) and hands it
 * to the pool (at the next flush), counted as outstanding. Returns the record, or
 * NULL with *err and its message set; nothing was submitted then.
 */
static pool_call *call_submit(weft_pool *p, weft_blocking_fn fn, void *arg, void (*drop)(void *), const char *what,
                              int *err)
{
    weft_loop *L = weft__loop;
    loop_port *port = port_get(L);
    if (!p) {
        if (!port) {
            *err = weft__set_errmsg(-ENOMEM, "%s: out of memory", what);
            return NULL;
        }
        p = default_pool_for(port);
        if (!p) {
            *err = weft__set_errmsg(-ENOMEM, "%s: out of memory for the default thread pool", what);
            return NULL;
        }
    }
    if (atomic_load_explicit(&p->shutdown, memory_order_relaxed)) {
        *err = refusal(what);
        return NULL;
    }
    pool_call *c = port ? weft__small_alloc(&L->small, sizeof *c) : NULL;
    if (!c) {
        *err = weft__set_errmsg(-ENOMEM, "%s: out of memory for the call", what);
        return NULL;
    }
    memset(c, 0, sizeof *c);
    c->fn = fn;
    c->arg = arg;
    c->drop = drop;
    c->task = weft__current();
    c->port = port;
    c->pool = p;
    pool_ref(p);
    if (!port->flush && !(port->flush = weft__callback_schedule(L, WEFT__SOON, flush_calls, port))) {
        /* No memory to defer it: hand it over now. */
        int rc = hand_over(p, c, c, 1);
        if (rc != 0) {
            call_free(L, c);
            *err = rc == -ESHUTDOWN ? refusal(what) : no_thread(what);
            return NULL;
        }
    } else {
        weft__dlist_push_back(&port->pending, &c->link);
    }
    port->outstanding++;
    L->external_refs++;
    return c;
}

/* The outcome of a call that came back (with its message set), its result in
 * *result (result may be NULL). The record is still to be freed. */
static int call_outcome(pool_call *c, void **result, const char *what)
{
    int rc = c->err;
    if (rc == 0) {
        if (result) {
            *result = c->result;
            c->result = NULL; /* taken: not the drop function's */
        }
    } else if (c->fate == CALL_DROPPED) {
        weft__set_errmsg(rc, "%s: the pool was shut down without waiting before this call started; it "
                             "never ran", what);
    } else if (c->fate == CALL_REFUSED) {
        refusal(what);
    } else if (c->fate == CALL_NO_THREAD) {
        no_thread(what);
    } else if (c->msg) {
        weft__take_errmsg(rc, c->msg);
        c->msg = NULL;
    } else {
        weft__set_errmsg(rc, "%s: the blocking function failed with %s (%s)", what, weft_errname(rc),
                         weft_strerror(rc));
    }
    return rc;
}

static int run_call(weft_pool *p, weft_blocking_fn fn, void *arg, void **result, void (*drop)(void *),
                    const char *what)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (result)
        *result = NULL;
    if (!self)
        return not_in_task(what);
    if (!fn)
        return weft__set_errmsg(-EINVAL, "%s: the function is NULL", what);
    if (self->cancelling)
        return weft__cancelled_errmsg(self); /* it must not run: the caller could never see its result */
    int rc;
    pool_call *c = call_submit(p, fn, arg, drop, what, &rc);
    if (!c)
        return rc;

    rc = weft__wait(&call_wait, c);
    if (self->wait_obj == NULL) /* it left while the call was out: the record is not ours */
        return rc == -ECANCELED ? weft__cancelled_errmsg(self) : rc;
    /* Woken by the drain: the record is ours, even if a cancellation came since. */
    if (rc == 0)
        rc = call_outcome(c, result, what);
    else if (rc == -ECANCELED)
        rc = weft__cancelled_errmsg(self); /* its result is dropped */
    call_free(L, c);
    return rc;
}

int weft__to_thread_held(weft_blocking_fn fn, void *arg, atomic_int *stop, bool always, const char *what)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (!self)
        return not_in_task(what);
    if (self->cancelling && !always)
        return weft__cancelled_errmsg(self); /* it never runs */
    int rc;
    pool_call *c = call_submit(NULL, fn, arg, NULL, what, &rc);
    if (!c)
        return rc;
    c->held = HELD | (always ? HELD_ALWAYS : 0);
    c->stop = stop;
    /* The cancellations that come while the call runs are set aside and stay the
     * task's: its next suspension point reports them. */
    while (!c->back && !c->unrun) {
        c->task = self;
        (void)weft__wait_through_cancel(self, &held_wait, c);
    }
    if (c->unrun) {
        call_free(L, c);
        return weft__cancelled_errmsg(self);
    }
    rc = call_outcome(c, NULL, what);
    call_free(L, c);
    return rc;
}

int weft_to_thread(weft_blocking_fn fn, void *arg, void **result)
{
    return run_call(NULL, fn, arg, result, NULL, "weft_to_thread");
}

int weft_to_thread_drop(weft_blocking_fn fn, void *arg, void **result, void (*drop)(void *result))
{
    return run_call(NULL, fn, arg, result, drop, "weft_to_thread_drop");
}

int weft_pool_run_drop(weft_pool *pool, weft_blocking_fn fn, void *arg, void **result, void (*drop)(void *result))
{
    if (!pool) {
        if (result)
            *result = NULL;
        return weft__set_errmsg(-EINVAL, "weft_pool_run: the pool is NULL (did weft_pool_new fail? "
                                         "weft_errmsg() said why)");
    }
    return run_call(pool, fn, arg, result, drop, "weft_pool_run");
}

int weft_pool_run(weft_pool *pool, weft_blocking_fn fn, void *arg, void **result)
{
    return weft_pool_run_drop(pool, fn, arg, result, NULL);
}

/* ------------------------------------------------------------------------ */
/* Shutting a pool down                                                     */
/* ------------------------------------------------------------------------ */

/* Loop thread: the pool a task waits on has emptied. */
static void shutdown_waiter_woken(void *arg)
{
    shutdown_waiter *w = arg;
    weft_loop *L = weft__loop;
    L->external_refs--;
    if (w->task) {
        weft__wake(w->task, 0); /* the task frees the record */
        return;
    }
    pool_unref(w->pool);
    free(w);
}

static void shutdown_unwait(weft_task *self, int reason)
{
    (void)reason;
    shutdown_waiter *w = self->wait_obj;
    self->wait_obj = NULL;
    weft_pool *p = w->pool;
    pthread_mutex_lock(&p->lock);
    if (w->posted) {
        pthread_mutex_unlock(&p->lock);
        w->task = NULL; /* shutdown_waiter_woken frees it */
        return;
    }
    for (shutdown_waiter **q = &p->waiters; *q; q = &(*q)->next) {
        if (*q == w) {
            *q = w->next;
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    weft__loop->external_refs--;
    pool_unref(p);
    free(w);
}

static void shutdown_describe(const weft_task *self, char *buf, size_t size)
{
    const shutdown_waiter *w = self->wait_obj;
    snprintf(buf, size, "pool %p to empty", (const void *)w->pool);
}

static const weft__wait_kind shutdown_wait = {"thread pool shutdown", shutdown_unwait, shutdown_describe};

/* A task waits, suspended, for a shut-down pool to empty. */
static int shutdown_wait_in_task(weft_pool *p, weft_task *self)
{
    weft_loop *L = weft__loop;
    shutdown_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return weft__set_errmsg(-ENOMEM, "weft_pool_shutdown: out of memory to wait (the pool is shut down)");
    w->loop = L;
    w->task = self;
    w->pool = p;
    pthread_mutex_lock(&p->lock);
    if (pool_is_idle(p)) {
        pthread_mutex_unlock(&p->lock);
        free(w);
        return 0;
    }
    w->next = p->waiters;
    p->waiters = w;
    pool_ref(p);
    pthread_mutex_unlock(&p->lock);
    L->external_refs++;
    int rc = weft__wait(&shutdown_wait, w);
    if (self->wait_obj != NULL) { /* woken: the record is ours */
        pool_unref(p);
        free(w);
    }
    if (rc == -ECANCELED)
        return weft__set_errmsg(-ECANCELED, "weft_pool_shutdown: %s was cancelled while waiting; the shutdown "
                                            "goes on", weft_task_name(self));
    return rc;
}

static int pool_shutdown(weft_pool *p, bool wait, bool block_thread)
{
    loop_port *port = weft__loop ? weft__loop->slots[WEFT__SLOT_POOLS] : NULL;
    if (port && port->flush) {
        /* Calls this loop's tasks made before the shutdown reach their pools
         * first, so that they are waited for or dropped rather than refused. */
        weft__callback_cancel(weft__loop, port->flush);
        flush_calls(port);
    }
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->shutdown, true);
    pthread_cond_broadcast(&p->work); /* idle workers see the flag and leave */
    weft__dlist dropped = {NULL, NULL};
    if (!wait) {
        dropped = p->queue;
        for (weft__dlink *l = dropped.head; l; l = l->next)
            atomic_store_explicit(&call_of(l)->state, CALL_TAKEN, memory_order_relaxed);
        p->queue = (weft__dlist){NULL, NULL};
        p->queued = 0;
    }
    if (pool_is_idle(p))
        notify_idle(p);
    pthread_mutex_unlock(&p->lock);
    /* Their callers get -ESHUTDOWN. A caller that leaves meanwhile sees CALL_TAKEN
     * and leaves the record to its drain. */
    for (weft__dlink *l; (l = weft__dlist_pop_front(&dropped));) {
        pool_call *c = call_of(l); /* off the list before port_push lets it go */
        c->err = -ESHUTDOWN;
        c->fate = CALL_DROPPED;
        port_push(c->port, c);
    }
    if (!wait)
        return 0;
    weft_task *self = weft__current();
    if (self && !block_thread)
        return shutdown_wait_in_task(p, self);
    pthread_mutex_lock(&p->lock);
    while (!pool_is_idle(p))
        pthread_cond_wait(&p->idle, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int weft_pool_shutdown(weft_pool *pool, bool wait)
{
    if (!pool)
        return weft__set_errmsg(-EINVAL, "weft_pool_shutdown: the pool is NULL");
    return pool_shutdown(pool, wait, false);
}

void weft_pool_free(weft_pool *pool)
{
    if (!pool)
        return;
    pool_shutdown(pool, true, true);
    /* No thread starts after the shutdown, so `threads` is final. */
    pthread_mutex_lock(&pool->lock);
    size_t threads = pool->threads;
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < threads; i++)
        pthread_join(pool->tids[i], NULL);
    pool_unref(pool);
}

/* ------------------------------------------------------------------------ */
/* The end of weft_run                                                      */
/* ------------------------------------------------------------------------ */

/* Waits, as a task, until every call of the loop is back: the loop goes on
 * running callbacks meanwhile. */
static void *wait_for_calls(void *arg)
{
    loop_port *port = arg;
    while (port->outstanding > 0) {
        port->closer = weft__current();
        if (weft__wait(&closer_wait, port) == -ECANCELED)
            weft_uncancel(); /* nothing may stop the loop from waiting for its calls */
    }
    return NULL;
}

static void pools_drain(weft_loop *L)
{
    loop_port *port = L->slots[WEFT__SLOT_POOLS];
    if (!port)
        return;
    if (port->flush) {
        /* Every task is done, so every call it held was taken back. */
        weft__callback_cancel(L, port->flush);
        port->flush = NULL;
    }
    while (port->outstanding > 0) {
        weft_task *closer = weft__spawn(wait_for_calls, port, NULL);
        if (closer) {
            weft__loop_run(L, closer);
            weft__task_free(L, closer);
            continue;
        }
        /* No memory for a task: take the completions by hand until they are in. */
        pool_call *list = atomic_exchange_explicit(&port->done, NULL, memory_order_acquire);
        if (list)
            process_done(L, port, list);
        else
            nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
    }
    /* The last pushes may still be posting their drains (a few instructions). */
    while (atomic_load_explicit(&port->pushing, memory_order_acquire) > 0)
        sched_yield();
    L->slots[WEFT__SLOT_POOLS] = NULL;
    default_pool_leave(port);
    if (port->drains_run == atomic_load_explicit(&port->drains_posted, memory_order_relaxed))
        free(port);
    else
        port->orphan = true; /* run_threadsafe_calls runs the drains still scheduled */
}

const weft__module weft__module_pools = {"thread pools", NULL, pools_drain, NULL};

/* ------------------------------------------------------------------------ */
/* weft_run_in_loop                                                         */
/* ------------------------------------------------------------------------ */

/* Shared by the thread that waits and the loop that runs the task. */
typedef struct loop_request {
    weft__listener listener;     /* first: told when the task ends */
    weft_fn fn;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t answered;
    bool done;                   /* under lock, with err/result/msg */
    int err;
    void *result;
    char *msg;
    weft_task *task;             /* loop thread only; NULL once it ended */
    bool timed_out;              /* loop thread only: cancelled by the caller's timeout */
    double timeout;
    atomic_int refs;             /* the caller's, the loop's, and a pending cancel's */
} loop_request;

static void request_unref(loop_request *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(r->msg);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->answered);
    free(r);
}

/* Loop thread: the outcome goes to the waiting thread; drops the loop's reference. */
static void request_answer(loop_request *r, int err, void *result, char *msg)
{
    pthread_mutex_lock(&r->lock);
    r->err = err;
    r->result = err ? NULL : result;
    r->msg = msg;
    r->done = true;
    pthread_cond_signal(&r->answered);
    pthread_mutex_unlock(&r->lock);
    request_unref(r);
}

static char *text(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void request_task_done(weft__listener *l, weft_task *t)
{
    loop_request *r = (loop_request *)l;
    r->task = NULL;
    int err = t->err;
    char *msg = NULL;
    if (err == -ECANCELED && weft__loop->shutting_down && !r->timed_out) {
        err = -ESHUTDOWN;
        msg = text("weft_run_in_loop: the loop finished (its main returned) before the task did; the task "
                   "was cancelled");
    } else if (err && t->extra) {
        msg = t->extra->es.msg;
        t->extra->es.msg = NULL;
    }
    request_answer(r, err, err ? NULL : t->result, msg);
    if (!err)
        t->result = NULL; /* handed to the caller */
}

/* Loop thread, from weft_call_soon_threadsafe: start the task. */
static void request_start(void *arg)
{
    loop_request *r = arg;
    weft_loop *L = weft__loop;
    if (L->shutting_down) {
        request_answer(r, -ESHUTDOWN, NULL,
                       text("weft_run_in_loop: the loop was finishing (its main had returned); the task was "
                            "not started"));
        return;
    }
    weft_task *t = weft__spawn(r->fn, r->arg, NULL);
    if (!t) {
        request_answer(r, -ENOMEM, NULL, text(weft_errmsg()));
        return;
    }
    r->listener.done = request_task_done;
    if (weft__task_listen(t, &r->listener) != 0) {
        weft_cancel(t, NULL); /* not started yet: it never runs */
        WEFT__FLAGS(t) |= WEFT__QUIET;
        weft_detach(t);
        request_answer(r, -ENOMEM, NULL, text("weft_run_in_loop: out of memory to watch the task"));
        return;
    }
    /* Its outcome goes to the caller, so nobody else need retrieve it. */
    WEFT__FLAGS(t) |= WEFT__DETACHED | WEFT__QUIET;
    r->task = t;
}

/* Loop thread: the caller timed out. */
static void request_cancel(void *arg)
{
    loop_request *r = arg;
    if (r->task) {
        char msg[96];
        snprintf(msg, sizeof msg, "weft_run_in_loop: the caller's timeout of %g s expired", r->timeout);
        r->timed_out = true;
        weft_cancel(r->task, msg);
    }
    request_unref(r);
}

int weft_run_in_loop(weft_loop *loop, weft_fn fn, void *arg, void **result, double timeout)
{
    if (result)
        *result = NULL;
    if (!loop || !fn)
        return weft__set_errmsg(-EINVAL, "weft_run_in_loop: the %s is NULL", loop ? "function" : "loop");
    if (isnan(timeout))
        return weft__set_errmsg(-EINVAL, "weft_run_in_loop: the timeout is NaN");
    if (weft__loop && weft__loop == weft__loop_from(loop))
        return weft__set_errmsg(-EDEADLK, "weft_run_in_loop: called from the loop's own thread, which would "
                                          "block waiting for a task only it can run; spawn the function with "
                                          "weft_spawn and await it instead");
    loop_request *r = calloc(1, sizeof *r);
    if (!r)
        return weft__set_errmsg(-ENOMEM, "weft_run_in_loop: out of memory");
    r->fn = fn;
    r->arg = arg;
    r->timeout = timeout;
    atomic_init(&r->refs, 2);
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->answered, &attr);
    pthread_condattr_destroy(&attr);

    int rc = weft_call_soon_threadsafe(loop, request_start, r);
    if (rc != 0) {
        atomic_store(&r->refs, 1);
        request_unref(r);
        if (rc == -ESHUTDOWN)
            return weft__set_errmsg(rc, "weft_run_in_loop: the loop has finished");
        return weft__set_errmsg(rc, "weft_run_in_loop: could not reach the loop: %s", weft_strerror(rc));
    }

    bool forever = timeout >= WEFT_FOREVER;
    struct timespec deadline;
    if (!forever) {
        int64_t ns = weft__mono_ns() + weft__seconds_to_ns(timeout);
        deadline.tv_sec = (time_t)(ns / 1000000000);
        deadline.tv_nsec = (long)(ns % 1000000000);
    }
    pthread_mutex_lock(&r->lock);
    while (!r->done) {
        if (forever)
            pthread_cond_wait(&r->answered, &r->lock);
        else if (pthread_cond_timedwait(&r->answered, &r->lock, &deadline) == ETIMEDOUT)
            break;
    }
    if (!r->done) {
        /* Posted under the lock: the loop cannot answer, and so cannot finish,
         * until the post is in. */
        atomic_fetch_add(&r->refs, 1);
        if (weft_call_soon_threadsafe(loop, request_cancel, r) != 0)
            atomic_fetch_sub(&r->refs, 1); /* the loop is finishing: it cancels the task itself */
        pthread_mutex_unlock(&r->lock);
        request_unref(r);
        return weft__set_errmsg(-ETIMEDOUT, "weft_run_in_loop: no result within %g s; the task was cancelled",
                                timeout);
    }
    rc = r->err;
    if (rc == 0 && result)
        *result = r->result;
    char *msg = r->msg;
    r->msg = NULL;
    pthread_mutex_unlock(&r->lock);
    request_unref(r);
    if (rc != 0) {
        if (msg)
            weft__take_errmsg(rc, msg);
        else
            weft__set_errmsg(rc, "weft_run_in_loop: the task failed with %s", weft_errname(rc));
    } else {
        free(msg);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Counts for the loop's metrics                                            */
/* ------------------------------------------------------------------------ */

/*
 * Loop thread: the calls this loop has submitted to thread pools, in two counts.
 * *running: on a pool's thread now. *queued: submitted and waiting for a thread
 * (on the port, not handed over yet, or in a pool's queue). Calls finished and on
 * their way back (on the completion stack) are in neither. No lock: the completion
 * stack only grows under us (its drain runs on this thread), and `running` is read
 * once; a call finishing at that very instant may count as queued for that instant.
 */
void weft__pools_counts(weft_loop *L, uint64_t *queued, uint64_t *running)
{
    loop_port *port = L->slots[WEFT__SLOT_POOLS];
    *queued = 0;
    *running = 0;
    if (!port)
        return;
    size_t back = 0;
    for (pool_call *c = atomic_load_explicit(&port->done, memory_order_acquire); c; c = c->next_done)
        back++;
    size_t run = atomic_load_explicit(&port->running, memory_order_relaxed);
    size_t waiting = port->outstanding > back + run ? port->outstanding - back - run : 0;
    *queued = waiting;
    *running = run;
}

/* ------------------------------------------------------------------------ */
/* The calls in flight, for weft_dump                                       */
/* ------------------------------------------------------------------------ */

typedef struct calls_pass {
    void (*fn)(const weft__pool_call_info *call, void *arg);
    void *arg;
    size_t found;
} calls_pass;

static void call_of_task(weft_loop *L, weft_task *t, void *arg)
{
    (void)L;
    calls_pass *pass = arg;
    if (WEFT__STATE(t) != WEFT__WAITING || (t->wait_kind != &call_wait && t->wait_kind != &held_wait))
        return;
    const pool_call *c = t->wait_obj;
    int state = atomic_load_explicit(&c->state, memory_order_acquire);
    weft__pool_call_info info = {
        .fn = c->fn,
        .arg = c->arg,
        .task = t,
        .where = call_where(c),
        .running = state == CALL_TAKEN && !c->back,
        .held = c->held != 0,
        .default_pool = c->pool == c->port->default_pool,
    };
    pass->found++;
    pass->fn(&info, pass->arg);
}

/* The records are reached through their waiting tasks: a call keeps no list of the
 * calls of its loop (the hot path stays as it is), and a task that waits is what a
 * dump is about. Calls whose task left are only counted. */
size_t weft__pools_for_each_call(weft_loop *L, void (*fn)(const weft__pool_call_info *call, void *arg), void *arg,
                                 size_t *outstanding)
{
    calls_pass pass = {fn, arg, 0};
    weft__loop_for_each_task(L, call_of_task, &pass);
    const loop_port *port = L->slots[WEFT__SLOT_POOLS];
    if (outstanding)
        *outstanding = port ? port->outstanding : 0;
    return pass.found;
}
