/*
 * signal.c — Unix signals handled on a loop (weft_add_signal_handler,
 * weft_remove_signal_handler, weft_signal_wait: asyncio's add_signal_handler and
 * remove_signal_handler) and weft_run's Ctrl-C handling (asyncio.run's SIGINT).
 *
 * A signal is process-wide, so its state is in two parts:
 *   - the process's table, one entry per signal number: which loop owns it, the
 *     disposition it had before (put back when the loop lets it go), and the two
 *     things weft's handler touches, an arrival count and the owning loop's
 *     notifier. The handler (on_signal) bumps the count and calls weft_notify,
 *     the async-signal-safe wake-up of core/notify.c, and nothing else: no lock,
 *     no allocation, errno kept. Owner, previous disposition and installing are
 *     under table_lock, taken only on loops' threads, never by the handler.
 *   - the loop's state (slots[WEFT__SLOT_SIGNALS], made at first use): one
 *     notifier for every signal it owns, and per signal the user's callback, the
 *     tasks waiting and how many arrivals they have seen. The notifier's callback
 *     (on_notified) runs on the loop, takes each owned signal's arrivals from the
 *     table and runs the callback and wakes the waiters with them.
 * A loop owns a signal for the user (a callback, or tasks that waited) until
 * weft_remove_signal_handler or its end (the module's term); its notifier keeps the
 * loop waiting rather than reporting a deadlock only while it owns one for the user
 * (weft__notifier_hold): weft_run's own Ctrl-C handling does not count, or every
 * deadlock would wait for a Ctrl-C.
 *
 * Ctrl-C (SIGINT, taken by weft_run on the main thread when its disposition is the
 * default): the handler counts presses in ctrl_c_presses; the first one notifies,
 * and the loop cancels main; a second one, or any once main has finished, restores
 * SIG_DFL and raises SIGINT from the handler itself, so the process dies of it at
 * once even when the loop is stuck in a blocking call. A user's handler for SIGINT
 * on that loop turns ctrl_c_on off (SIGINT is then counted as any signal) until it
 * is removed.
 *
 * fork: the child of a fork gets back every signal's previous disposition (the
 * pthread_atfork child handler), so the process pool's zygote and workers, and any
 * child a program forks, are not left with a handler notifying a loop they do not
 * run (through a copy of its eventfd, shared with the parent).
 */
#include "proc/signals.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The handler reads and writes these from signal context: they must not hide a lock. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2,
               "signal.c needs lock-free atomic ints and pointers");

/* ------------------------------------------------------------------------ */
/* The process's table                                                      */
/* ------------------------------------------------------------------------ */

typedef struct entry {
    _Atomic(weft_notifier *) notifier; /* the owning loop's; NULL when none (read by on_signal) */
    atomic_uint arrivals;              /* bumped by on_signal, taken by the owning loop */
    weft_loop *owner;                  /* under table_lock */
    long owner_tid;                    /* the owning loop's thread, for messages */
    struct sigaction previous;         /* the disposition before weft took it */
} entry;

static entry table[NSIG];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

/* SIGINT taken by weft_run for Ctrl-C (the loop's ctrl_c), with no user's handler on top. */
static atomic_int ctrl_c_on;
static atomic_uint ctrl_c_presses;   /* since weft_run took SIGINT */
static atomic_int ctrl_c_main_done;  /* main has finished: a press kills at once */

static const struct sigaction sig_default; /* SIG_DFL, empty mask, no flags */

static long thread_id(void)
{
    return (long)syscall(SYS_gettid);
}

/* The name of sig: "SIGUSR1", "SIGRTMIN+2", or "signal N". */
static const char *signal_name(int sig, char *buf, size_t size)
{
    static const char *const names[] = {
        [SIGHUP] = "SIGHUP",   [SIGINT] = "SIGINT",       [SIGQUIT] = "SIGQUIT", [SIGILL] = "SIGILL",
        [SIGTRAP] = "SIGTRAP", [SIGABRT] = "SIGABRT",     [SIGBUS] = "SIGBUS",   [SIGFPE] = "SIGFPE",
        [SIGKILL] = "SIGKILL", [SIGUSR1] = "SIGUSR1",     [SIGSEGV] = "SIGSEGV", [SIGUSR2] = "SIGUSR2",
        [SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM",     [SIGTERM] = "SIGTERM", [SIGCHLD] = "SIGCHLD",
        [SIGCONT] = "SIGCONT", [SIGSTOP] = "SIGSTOP",     [SIGTSTP] = "SIGTSTP", [SIGTTIN] = "SIGTTIN",
        [SIGTTOU] = "SIGTTOU", [SIGURG] = "SIGURG",       [SIGXCPU] = "SIGXCPU", [SIGXFSZ] = "SIGXFSZ",
        [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF", [SIGWINCH] = "SIGWINCH", [SIGIO] = "SIGIO",
        [SIGSYS] = "SIGSYS",
#ifdef SIGSTKFLT
        [SIGSTKFLT] = "SIGSTKFLT",
#endif
#ifdef SIGPWR
        [SIGPWR] = "SIGPWR",
#endif
    };
    if (sig > 0 && (size_t)sig < sizeof names / sizeof names[0] && names[sig])
        return names[sig];
    if (sig >= SIGRTMIN && sig <= SIGRTMAX)
        snprintf(buf, size, "SIGRTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(buf, size, "signal %d", sig);
    return buf;
}

/* Whether weft can handle sig; -EINVAL with the message saying why not. */
static int check_signal(const char *what, int sig)
{
    char nb[24];
    if (sig <= 0 || sig >= NSIG)
        return weft__set_errmsg(-EINVAL, "%s: %d is not a signal number (they are 1 to %d)", what, sig,
                                NSIG - 1);
    if (sig == SIGKILL || sig == SIGSTOP)
        return weft__set_errmsg(-EINVAL, "%s: %s cannot be handled: the kernel never lets a process catch "
                                         "SIGKILL or SIGSTOP",
                                what, signal_name(sig, nb, sizeof nb));
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE)
        return weft__set_errmsg(-EINVAL, "%s: %s is a fault, delivered to the thread that made it: a handler "
                                         "that returns runs the faulting instruction again, forever (weft "
                                         "reports a crash in a task itself)",
                                what, signal_name(sig, nb, sizeof nb));
    if (sig > SIGSYS && sig < SIGRTMIN)
        return weft__set_errmsg(-EINVAL, "%s: signal %d is kept by the C library for its threads (the numbers "
                                         "between SIGSYS and SIGRTMIN); use SIGRTMIN+n",
                                what, sig);
    return 0;
}

/* weft's handler, for every signal a loop owns. Async-signal-safe: atomics,
 * weft_notify, and for a Ctrl-C that must kill, sigaction and raise. */
static void on_signal(int sig)
{
    int saved = errno;
    entry *e = &table[sig];
    if (sig == SIGINT && atomic_load(&ctrl_c_on)) {
        if (atomic_fetch_add(&ctrl_c_presses, 1) > 0 || atomic_load(&ctrl_c_main_done)) {
            /* Die of SIGINT: it is blocked while this handler runs, so the raised
             * one is delivered, with the default action, when the handler returns. */
            sigaction(SIGINT, &sig_default, NULL);
            raise(SIGINT);
            errno = saved;
            return;
        }
    } else {
        atomic_fetch_add(&e->arrivals, 1);
    }
    weft_notifier *n = atomic_load(&e->notifier);
    if (n)
        weft_notify(n); /* a stale one (the loop let go meanwhile) says -ESHUTDOWN: harmless */
    errno = saved;
}

/* A fork's child: every signal back to what it was before weft, and the table
 * empty; the lock, taken by prepare on this same thread, released. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&table_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&table_lock);
}

static void fork_child(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        entry *e = &table[sig];
        if (!e->owner)
            continue;
        sigaction(sig, &e->previous, NULL);
        e->owner = NULL;
        atomic_store(&e->notifier, NULL);
        atomic_store(&e->arrivals, 0);
    }
    atomic_store(&ctrl_c_on, 0);
    pthread_mutex_unlock(&table_lock);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_rc;

static void register_atfork(void)
{
    atfork_rc = pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Under table_lock: makes L the owner of sig with weft's handler, notifying n.
 * Returns 0 or sigaction's negative errno (nothing changed then). */
static int install(weft_loop *L, int sig, weft_notifier *n)
{
    entry *e = &table[sig];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: any thread may take the signal, and its blocking read(2) must not
     * fail with EINTR because of weft. SA_ONSTACK: a loop's thread has an alternate
     * stack (weft_run's crash reports), so a task whose stack is nearly full does
     * not overflow it by taking a signal. */
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    atomic_store(&e->arrivals, 0);
    atomic_store(&e->notifier, n); /* before the handler can run */
    if (sigaction(sig, &sa, &e->previous) != 0) {
        int err = -errno;
        atomic_store(&e->notifier, NULL);
        return err;
    }
    e->owner = L;
    e->owner_tid = thread_id();
    return 0;
}

/* Under table_lock: puts back sig's previous disposition; nobody owns it. */
static void uninstall(int sig)
{
    entry *e = &table[sig];
    sigaction(sig, &e->previous, NULL);
    atomic_store(&e->notifier, NULL);
    atomic_store(&e->arrivals, 0);
    e->owner = NULL;
}

/* ------------------------------------------------------------------------ */
/* The loop's state                                                         */
/* ------------------------------------------------------------------------ */

typedef struct caught {
    weft_signal_fn cb;    /* NULL: only tasks wait for it */
    void *arg;
    uint64_t total;       /* arrivals the loop has taken since it first owned the signal */
    uint64_t returned;    /* of those, the ones a weft_signal_wait accounted for (or dropped) */
    weft__fifo waiters;   /* tasks in weft_signal_wait */
    bool on;              /* the loop owns the signal for the user */
} caught;

typedef struct loop_signals {
    weft_loop *loop;
    weft_notifier *notifier; /* while the loop owns any signal (Ctrl-C's included) */
    size_t owned;            /* signals owned for the user */
    bool ctrl_c;             /* weft_run took SIGINT for Ctrl-C on this loop */
    bool main_cancelled;     /* a Ctrl-C cancelled main */
    weft_task *main;         /* until it finishes */
    caught sigs[NSIG];
} loop_signals;

static void on_notified(void *arg);

/* The loop's state, made if `make`; NULL without memory (message set). */
static loop_signals *state_of(weft_loop *L, const char *what, bool make)
{
    loop_signals *S = L->slots[WEFT__SLOT_SIGNALS];
    if (S || !make)
        return S;
    S = calloc(1, sizeof *S);
    if (!S) {
        weft__set_errmsg(-ENOMEM, "%s: out of memory for the loop's signal state", what);
        return NULL;
    }
    S->loop = L;
    L->slots[WEFT__SLOT_SIGNALS] = S;
    return S;
}

/* The notifier every signal of the loop wakes it through; made at need. */
static int ensure_notifier(loop_signals *S, const char *what)
{
    if (S->notifier)
        return 0;
    S->notifier = weft_notifier_new(on_notified, S);
    if (!S->notifier)
        return weft__set_errmsg(-ENOMEM, "%s: out of memory for the loop's signal notifier", what);
    return 0;
}

/* After the signals owned changed: the notifier holds the loop (keeps it waiting
 * rather than reporting a deadlock) while a user's signal is owned; it is freed
 * when nothing is. */
static void settle(loop_signals *S)
{
    if (!S->notifier)
        return;
    if (S->owned > 0) {
        weft__notifier_hold(S->notifier, true);
    } else if (S->ctrl_c) {
        weft__notifier_hold(S->notifier, false);
    } else {
        weft_notifier_free(S->notifier);
        S->notifier = NULL;
    }
}

/* Makes the loop own sig for the user. Returns 0, or -EBUSY, -ENOMEM, sigaction's
 * error, with the message set. */
static int take(loop_signals *S, int sig, const char *what)
{
    caught *c = &S->sigs[sig];
    if (c->on)
        return 0;
    pthread_once(&atfork_once, register_atfork);
    if (atfork_rc != 0)
        return weft__set_errmsg(-atfork_rc, "%s: cannot register the fork handler that gives a child process "
                                            "its signals back: %s",
                                what, strerror(atfork_rc));
    int rc = ensure_notifier(S, what);
    if (rc != 0)
        return rc;
    char nb[24];
    entry *e = &table[sig];
    pthread_mutex_lock(&table_lock);
    if (e->owner && e->owner != S->loop) {
        long tid = e->owner_tid;
        bool is_ctrl_c = sig == SIGINT && atomic_load(&ctrl_c_on);
        pthread_mutex_unlock(&table_lock);
        settle(S);
        if (is_ctrl_c)
            return weft__set_errmsg(-EBUSY, "%s: SIGINT is owned by weft_run's Ctrl-C handling on the main "
                                            "thread's loop (thread %ld); one loop of the process handles a "
                                            "signal: run that loop with weft_options.no_sigint to handle "
                                            "SIGINT on another",
                                    what, tid);
        return weft__set_errmsg(-EBUSY, "%s: %s is owned by another loop (the loop of thread %ld); one loop "
                                        "of the process handles a given signal: remove it there first",
                                what, signal_name(sig, nb, sizeof nb), tid);
    }
    if (e->owner == S->loop) {
        /* This loop's Ctrl-C handling had SIGINT: the user's handler goes on top. */
        atomic_store(&ctrl_c_on, 0);
        atomic_store(&e->arrivals, 0);
    } else {
        rc = install(S->loop, sig, S->notifier);
    }
    pthread_mutex_unlock(&table_lock);
    if (rc != 0) {
        settle(S);
        return weft__set_errmsg(rc, "%s: sigaction(%s) failed: %s", what, signal_name(sig, nb, sizeof nb),
                                weft_strerror(rc));
    }
    c->on = true;
    c->returned = c->total;
    S->owned++;
    settle(S);
    return 0;
}

/* The loop stops owning sig for the user: its previous disposition is back (for
 * SIGINT under Ctrl-C handling, that handling), arrivals not yet run are dropped
 * and waiting tasks get WEFT_ECLOSED. */
static void let_go(loop_signals *S, int sig)
{
    caught *c = &S->sigs[sig];
    entry *e = &table[sig];
    pthread_mutex_lock(&table_lock);
    if (sig == SIGINT && S->ctrl_c) {
        atomic_store(&e->arrivals, 0);
        atomic_store(&ctrl_c_on, 1);
    } else {
        uninstall(sig);
    }
    pthread_mutex_unlock(&table_lock);
    c->on = false;
    c->cb = NULL;
    c->arg = NULL;
    c->returned = c->total;
    weft_task *t;
    while ((t = (weft_task *)weft__fifo_pop(&c->waiters)) != NULL)
        weft__wake(t, WEFT_ECLOSED);
    S->owned--;
    settle(S);
}

/* Runs on the loop when a signal it owns has arrived (or a Ctrl-C came). */
static void on_notified(void *arg)
{
    loop_signals *S = arg;
    if (S->ctrl_c && S->main && !S->main_cancelled && atomic_load(&ctrl_c_presses) > 0) {
        S->main_cancelled = true;
        weft_cancel(S->main, "weft_run: SIGINT (Ctrl-C): main task cancelled");
    }
    /* A callback may add or remove handlers, its own too: each signal's state is
     * read afresh. */
    for (int sig = 1; sig < NSIG; sig++) {
        caught *c = &S->sigs[sig];
        if (!c->on)
            continue;
        unsigned n = atomic_exchange(&table[sig].arrivals, 0);
        if (n == 0)
            continue;
        c->total += n;
        weft_task *t;
        while ((t = (weft_task *)weft__fifo_pop(&c->waiters)) != NULL)
            weft__wake(t, 0);
        if (c->cb)
            c->cb(sig, n, c->arg);
    }
}

static loop_signals *owning_loop(const char *what, int *rc)
{
    weft_loop *L = weft__loop;
    if (!L) {
        *rc = weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task or callback of a running weft "
                                                "loop (start one with weft_run)",
                               what);
        return NULL;
    }
    loop_signals *S = state_of(L, what, true);
    if (!S)
        *rc = -ENOMEM;
    return S;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

int weft_add_signal_handler(int sig, weft_signal_fn cb, void *arg)
{
    const char *what = "weft_add_signal_handler";
    if (!weft__loop)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task or callback of a running weft "
                                                 "loop (start one with weft_run)",
                                what);
    int rc = check_signal(what, sig);
    if (rc != 0)
        return rc;
    if (!cb)
        return weft__set_errmsg(-EINVAL, "%s: the callback is NULL (to wait for a signal in a task, use "
                                         "weft_signal_wait)",
                                what);
    loop_signals *S = owning_loop(what, &rc);
    if (!S)
        return rc;
    rc = take(S, sig, what);
    if (rc != 0)
        return rc;
    S->sigs[sig].cb = cb;
    S->sigs[sig].arg = arg;
    return 0;
}

int weft_remove_signal_handler(int sig)
{
    const char *what = "weft_remove_signal_handler";
    weft_loop *L = weft__loop;
    if (!L)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called on the loop that handles the signal, from "
                                                 "a task or a callback",
                                what);
    int rc = check_signal(what, sig);
    if (rc != 0)
        return rc;
    loop_signals *S = state_of(L, what, false);
    if (S && S->sigs[sig].on) {
        let_go(S, sig);
        return 1;
    }
    pthread_mutex_lock(&table_lock);
    weft_loop *owner = table[sig].owner;
    long tid = table[sig].owner_tid;
    pthread_mutex_unlock(&table_lock);
    if (owner && owner != L) {
        char nb[24];
        return weft__set_errmsg(-EBUSY, "%s: %s is owned by another loop (the loop of thread %ld): remove it "
                                        "there",
                                what, signal_name(sig, nb, sizeof nb), tid);
    }
    return 0;
}

static void signal_unwait(weft_task *self, int reason)
{
    (void)reason;
    caught *c = self->wait_obj;
    weft__node *prev = NULL;
    for (weft__node *n = c->waiters.head; n; prev = n, n = n->next) {
        if (n != &self->node)
            continue;
        if (prev)
            prev->next = n->next;
        else
            c->waiters.head = n->next;
        if (c->waiters.tail == n)
            c->waiters.tail = prev;
        c->waiters.count--;
        return;
    }
}

/* weft_dump: which signal (the record's place in the loop's table says it). */
static void signal_describe(const weft_task *self, char *buf, size_t size)
{
    const caught *c = self->wait_obj;
    const loop_signals *S = weft__loop->slots[WEFT__SLOT_SIGNALS];
    char nb[24];
    int sig = S ? (int)(c - S->sigs) : 0;
    snprintf(buf, size, "%s", sig > 0 && sig < NSIG ? signal_name(sig, nb, sizeof nb) : "(unknown)");
}

static const weft__wait_kind signal_wait = {"signal", signal_unwait, signal_describe};

/* What a wait returns for the arrivals since `since`; they are accounted for. */
static int take_arrivals(caught *c, uint64_t since)
{
    uint64_t n = c->total - since;
    c->returned = c->total;
    return n > INT_MAX ? INT_MAX : (int)n;
}

int weft_signal_wait(int sig)
{
    const char *what = "weft_signal_wait";
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s must be called from a task of a running weft loop (start "
                                                 "one with weft_run)",
                                what);
    int rc = check_signal(what, sig);
    if (rc != 0)
        return rc;
    loop_signals *S = owning_loop(what, &rc);
    if (!S)
        return rc;
    rc = take(S, sig, what);
    if (rc != 0)
        return rc;
    caught *c = &S->sigs[sig];
    if (c->total > c->returned)
        return take_arrivals(c, c->returned);
    uint64_t since = c->total;
    weft__fifo_push(&c->waiters, &self->node);
    rc = weft__wait(&signal_wait, c);
    if (rc == -ECANCELED)
        return weft__cancelled_errmsg(self);
    if (rc == WEFT_ECLOSED) {
        char nb[24];
        return weft__set_errmsg(WEFT_ECLOSED, "%s: %s is no longer handled by this loop: "
                                              "weft_remove_signal_handler was called while the task waited",
                                what, signal_name(sig, nb, sizeof nb));
    }
    if (rc != 0)
        return rc;
    return take_arrivals(c, since);
}

void weft_exit_interrupted(void)
{
    fflush(NULL);
    sigaction(SIGINT, &sig_default, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGINT);
    _exit(128 + SIGINT);
}

/* ------------------------------------------------------------------------ */
/* weft_run's Ctrl-C handling                                               */
/* ------------------------------------------------------------------------ */

int weft__sigint_watch(weft_loop *L, const weft_options *opts)
{
    if ((opts && opts->no_sigint) || thread_id() != (long)getpid())
        return 0;
    /* Cheap refusal first: a program that ignores or handles SIGINT is left alone. */
    struct sigaction now;
    if (sigaction(SIGINT, NULL, &now) != 0 || (now.sa_flags & SA_SIGINFO) || now.sa_handler != SIG_DFL)
        return 0;
    const char *what = "weft_run";
    pthread_once(&atfork_once, register_atfork);
    if (atfork_rc != 0)
        return weft__set_errmsg(-atfork_rc, "weft_run: cannot register the fork handler that gives a child "
                                            "process its signals back: %s (weft_options.no_sigint runs "
                                            "without Ctrl-C handling)",
                                strerror(atfork_rc));
    loop_signals *S = state_of(L, what, true);
    if (!S || ensure_notifier(S, what) != 0)
        return weft__set_errmsg(-ENOMEM, "weft_run: out of memory for the Ctrl-C (SIGINT) handling");
    int rc = 0;
    pthread_mutex_lock(&table_lock);
    entry *e = &table[SIGINT];
    /* Checked again under the lock: a loop of another thread may have just taken it. */
    if (!e->owner && sigaction(SIGINT, NULL, &now) == 0 && !(now.sa_flags & SA_SIGINFO) &&
        now.sa_handler == SIG_DFL) {
        atomic_store(&ctrl_c_presses, 0);
        atomic_store(&ctrl_c_main_done, 0);
        atomic_store(&ctrl_c_on, 1);
        rc = install(L, SIGINT, S->notifier);
        if (rc == 0)
            S->ctrl_c = true;
        else
            atomic_store(&ctrl_c_on, 0);
    }
    pthread_mutex_unlock(&table_lock);
    settle(S);
    if (rc != 0)
        return weft__set_errmsg(rc, "weft_run: sigaction(SIGINT) failed: %s", weft_strerror(rc));
    return 0;
}

void weft__sigint_main(weft_loop *L, weft_task *main_task)
{
    loop_signals *S = state_of(L, "weft_run", false);
    if (S && S->ctrl_c)
        S->main = main_task;
}

bool weft__sigint_main_done(weft_loop *L)
{
    loop_signals *S = state_of(L, "weft_run", false);
    if (!S || !S->ctrl_c)
        return false;
    atomic_store(&ctrl_c_main_done, 1);
    S->main = NULL;
    return S->main_cancelled;
}

/* ------------------------------------------------------------------------ */
/* The module                                                               */
/* ------------------------------------------------------------------------ */

/* Every signal the loop owns goes back to its previous disposition (every task has
 * finished: none waits). */
static void signals_term(weft_loop *L)
{
    loop_signals *S = L->slots[WEFT__SLOT_SIGNALS];
    if (!S)
        return;
    for (int sig = 1; sig < NSIG; sig++)
        if (S->sigs[sig].on)
            let_go(S, sig);
    if (S->ctrl_c) {
        /* SIG_DFL first: a press meanwhile still finds the Ctrl-C handling on, and
         * main done, so it kills as it should rather than being counted for nobody. */
        pthread_mutex_lock(&table_lock);
        uninstall(SIGINT);
        atomic_store(&ctrl_c_on, 0);
        pthread_mutex_unlock(&table_lock);
        S->ctrl_c = false;
    }
    settle(S);
    L->slots[WEFT__SLOT_SIGNALS] = NULL;
    free(S);
}

const weft__module weft__module_signals = {"signals", NULL, NULL, signals_term};
