/*
 * watchdog.c — the blocked-loop watchdog: a thread per loop that notices when one step
 * (a task running between two suspensions, or a callback) has held the loop's thread
 * for longer than a threshold and, while it still does, prints where that thread is
 * stuck, as file:line, with its whole stack, and then how long the step held the loop
 * once it lets go.
 *
 * How it knows: the observer (debug.c) bumps the loop's heartbeat d->beat at every
 * step's start and end and says which task (beat_task) or callback (beat_cb) runs. The
 * watchdog samples the beat twenty times per threshold; a beat unchanged for the
 * threshold while a step runs is a blocked loop. A beat unchanged while no step runs is
 * an idle loop waiting in the poller, which is fine however long it lasts. All the loop
 * pays is the observer at each switch (two stores and an atomic add, ~2.5 ns here; no
 * clock read unless steps are timed for something else, debug mode or a trace, and
 * then the report's figures are the step's own); the watchdog's thread wakes twenty
 * times per threshold, and the figures it reports are then late by at most a
 * twentieth of it.
 *
 * How it reads the stack: it interrupts the loop's thread with SIGRTMIN+5 (pthread_kill).
 * The handler, async-signal-safe, claims the request, captures the interrupted stack
 * (weft__backtrace_signal) and what the report names (task id and name, callback, the
 * step's start) into the loop's watchdog record, found through a thread-local pointer
 * that only the loop's own thread sets, and publishes it with an atomic store. The
 * watchdog's thread waits for that (at most 200 ms), symbolizes on its own thread and
 * writes the report in one write(2).
 *
 * A handled signal makes an interrupted nanosleep() or clock_nanosleep() return EINTR
 * (Linux never restarts the sleeps, SA_RESTART or not), so glibc's sleep(), usleep()
 * and nanosleep() would return early: the watchdog would change what the program does.
 * So, on x86-64 Linux, the watchdog first reads which system call the loop's thread is
 * in (/proc/self/task/TID/syscall) and, when it is one of those sleeps, the handler
 * makes it end when it would have: an absolute sleep, or a relative one whose
 * remaining-time argument is its request (glibc's sleep() passes one timespec as both,
 * and the kernel has written the time left into it), is issued again by rewinding the
 * thread onto its `syscall` instruction; any other relative sleep (usleep, nanosleep(&ts,
 * NULL) or with a separate remaining-time argument) is finished inside the handler with
 * restart_syscall(2), which sleeps on to the deadline the kernel kept for the sleep (its
 * restart block, cleared only when the handler returns), and the sleep then returns 0;
 * another signal arriving meanwhile makes it return EINTR, as it would have anyway.
 * Other calls the signal interrupts are restarted by SA_RESTART, except those Linux
 * never restarts (poll, select, epoll_wait, semop with a timeout, a socket read with
 * SO_RCVTIMEO...), which return EINTR as with any signal; elsewhere than x86-64, the
 * sleeps do too.
 *
 * SIGRTMIN+5 is taken once per process, only if it has no handler of someone else's; if
 * it has one, the watchdog says so once and reports blocked steps without their stack.
 */
#include "debug/debug.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* How long the watchdog waits for the loop's thread to answer the signal. */
#define ANSWER_WAIT_NS ((int64_t)200 * 1000 * 1000)
/* How often it looks once it has reported a blocked step (for the unblocked line). */
#define UNBLOCK_POLL_NS ((int64_t)10 * 1000 * 1000)

struct weft__watchdog {
    weft__debug *d;
    int64_t threshold_ns;
    pthread_t loop_thread;
    pid_t loop_tid;                    /* its kernel id, for /proc/self/task/TID/syscall */
    pthread_t thread;
    pthread_mutex_t lock;              /* stop and the condition the thread sleeps on */
    pthread_cond_t wake;
    bool stop;

    /* The request and its answer. The watchdog writes sleep_nr and sleep_pc, then stores
     * a new request number (release); the handler claims it by exchanging it for 0,
     * writes the capture and stores the number into `answered` (release). */
    _Atomic uint64_t request;
    _Atomic uint64_t answered;
    uint64_t requests;                 /* the last number used (watchdog's thread only) */
    long sleep_nr;                     /* the sleep the thread is in (0: none to resume) */
    uintptr_t sleep_pc;                /* where its system call returns */

    /* The capture, written by the handler on the loop's thread. */
    weft__backtrace stack;
    weft__backtrace created;           /* where the task was spawned (debug mode) */
    bool created_from_loop;            /* by the loop, not by a task */
    uint64_t beat;                     /* the heartbeat when it was taken */
    int64_t step_start_ns;
    uint32_t task_id;                  /* 0: a callback (or nothing) ran */
    char name[48];                     /* the task's own name, "" if it has none */
    uintptr_t cb;
    /* What the handler did to a sleep the signal interrupted: nothing (no sleep),
     * rewound the thread to issue it again, or sleeps on to its deadline itself. */
    enum { SLEEP_NONE, SLEEP_RESUMED, SLEEP_FINISHED } sleep_effect;
};

/* Every watchdog of the process, for the fork handlers: a fork waits until each is
 * back waiting on its condition (not in the middle of a report, which allocates) and
 * holds it there until the fork is done, so a child never inherits a lock a watchdog
 * held. weft_procpool_new can then fork beside them (weft__fork_quiet_threads). */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft__watchdog *all_watchdogs[64];
static size_t all_count;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
    pthread_mutex_lock(&all_lock);
    for (size_t i = 0; i < all_count; i++)
        pthread_mutex_lock(&all_watchdogs[i]->lock);
}

static void fork_done(void)
{
    for (size_t i = all_count; i-- > 0;)
        pthread_mutex_unlock(&all_watchdogs[i]->lock);
    pthread_mutex_unlock(&all_lock);
}

static void atfork_register(void)
{
    pthread_atfork(fork_prepare, fork_done, fork_done);
}

/* Adds w to the list (false when 64 loops of the process are already watched: then it
 * is not counted as quiet, and a process pool refuses to fork beside it). */
static bool listed_add(struct weft__watchdog *w)
{
    pthread_once(&atfork_once, atfork_register);
    pthread_mutex_lock(&all_lock);
    bool ok = all_count < sizeof all_watchdogs / sizeof all_watchdogs[0];
    if (ok)
        all_watchdogs[all_count++] = w;
    pthread_mutex_unlock(&all_lock);
    if (ok)
        atomic_fetch_add(&weft__fork_quiet_threads, 1);
    return ok;
}

static void listed_remove(struct weft__watchdog *w)
{
    pthread_mutex_lock(&all_lock);
    for (size_t i = 0; i < all_count; i++) {
        if (all_watchdogs[i] == w) {
            all_watchdogs[i] = all_watchdogs[--all_count];
            atomic_fetch_sub(&weft__fork_quiet_threads, 1);
            break;
        }
    }
    pthread_mutex_unlock(&all_lock);
}

/* The loop's watchdog on this thread, for the handler: set and cleared by the loop's
 * own thread (start and stop), read only by the handler on that thread. */
static WEFT__TLS struct weft__watchdog *watchdog_here;

/* Whether SIGRTMIN+5 is ours: 0 not yet looked, 1 ours, -1 someone else's. */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int signal_state;
static atomic_flag warned_foreign = ATOMIC_FLAG_INIT;

static int capture_signal(void)
{
    return SIGRTMIN + 5;
}

/* ------------------------------------------------------------------------ */
/* The loop's side: the handler                                             */
/* ------------------------------------------------------------------------ */

/*
 * A sleep the kernel stopped for our signal: makes it end when it would have (see the
 * file's comment). Called by the handler before it answers; returns true when the
 * sleep is to be finished by finish_sleep, after the answer.
 */
static bool resume_sleep(struct weft__watchdog *w, void *ucv)
{
#if defined(__x86_64__) && defined(__linux__)
    ucontext_t *uc = ucv;
    greg_t *g = uc->uc_mcontext.gregs;
    if (w->sleep_nr == 0 || g[REG_RAX] != -EINTR || (uintptr_t)g[REG_RIP] != w->sleep_pc)
        return false;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    if (ip[-2] != 0x0f || ip[-1] != 0x05) /* not just after a `syscall` instruction */
        return false;
    bool absolute = w->sleep_nr == SYS_clock_nanosleep && (g[REG_RSI] & TIMER_ABSTIME);
    bool request_updated = w->sleep_nr == SYS_nanosleep ? g[REG_RDI] == g[REG_RSI] : g[REG_RDX] == g[REG_R10];
    if (absolute || request_updated) {
        /* Issued again as it is: the same deadline, or the time left (the kernel wrote
         * it into the remaining-time argument, which is the request). */
        g[REG_RAX] = w->sleep_nr;
        g[REG_RIP] -= 2;
        w->sleep_effect = SLEEP_RESUMED;
        return false;
    }
    /* A relative sleep whose request says the whole time: the kernel still holds its
     * deadline (the thread's restart block, which only the return from this handler
     * clears), and restart_syscall sleeps on to it. */
    w->sleep_effect = SLEEP_FINISHED;
    return true;
#else
    (void)w;
    (void)ucv;
    return false;
#endif
}

/* Finishes the sleep resume_sleep chose to, on the handler's stack: its result (0, or
 * -EINTR if another signal interrupts it) becomes the interrupted call's. */
static void finish_sleep(void *ucv)
{
#if defined(__x86_64__) && defined(__linux__)
    ucontext_t *uc = ucv;
    long rc = syscall(SYS_restart_syscall);
    uc->uc_mcontext.gregs[REG_RAX] = rc == 0 ? 0 : -errno;
#else
    (void)ucv;
#endif
}

static void on_capture_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    int saved_errno = errno;
    struct weft__watchdog *w = watchdog_here;
    uint64_t want = w ? atomic_load_explicit(&w->request, memory_order_acquire) : 0;
    /* Claimed once: a late or repeated signal finds no request and does nothing. */
    if (want && atomic_compare_exchange_strong_explicit(&w->request, &want, 0, memory_order_acq_rel,
                                                        memory_order_relaxed)) {
        weft__debug *d = w->d;
        w->sleep_effect = SLEEP_NONE;
        weft__backtrace_signal(&w->stack, uc);
        w->beat = atomic_load_explicit(&d->beat, memory_order_relaxed);
        w->step_start_ns = d->step_start_ns;
        weft_task *t = atomic_load_explicit(&d->beat_task, memory_order_relaxed);
        w->cb = atomic_load_explicit(&d->beat_cb, memory_order_relaxed);
        w->task_id = t ? t->id : 0;
        w->name[0] = '\0';
        w->created.count = 0;
        if (t && t->extra) {
            const char *name = t->extra->name;
            size_t i = 0;
            for (; name && name[i] && i < sizeof w->name - 1; i++)
                w->name[i] = name[i];
            w->name[i] = '\0';
            const weft__task_debug *td = t->extra->debug;
            if (td) {
                w->created = td->created;
                w->created_from_loop = td->from_loop;
            }
        }
        bool finish = resume_sleep(w, uc);
        atomic_store_explicit(&w->answered, want, memory_order_release);
        if (finish)
            finish_sleep(uc);
    }
    errno = saved_errno;
}

/* Takes SIGRTMIN+5 for the process unless someone else has. Returns true if it is ours. */
static bool install_handler(void)
{
    int state = atomic_load(&signal_state);
    if (state != 0)
        return state > 0;
    pthread_mutex_lock(&install_lock);
    state = atomic_load(&signal_state);
    if (state == 0) {
        struct sigaction old;
        state = -1;
        if (sigaction(capture_signal(), NULL, &old) == 0) {
            bool foreign = (old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != NULL
                                                      : old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN;
            if (!foreign) {
                struct sigaction sa;
                memset(&sa, 0, sizeof sa);
                sa.sa_sigaction = on_capture_signal;
                sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
                sigemptyset(&sa.sa_mask);
                if (sigaction(capture_signal(), &sa, NULL) == 0)
                    state = 1;
            }
        }
        atomic_store(&signal_state, state);
    }
    pthread_mutex_unlock(&install_lock);
    return state > 0;
}

/* Whether SIGRTMIN+5 still runs our handler (a program may have taken it since). */
static bool handler_still_ours(void)
{
    struct sigaction now;
    if (atomic_load(&signal_state) <= 0 || sigaction(capture_signal(), NULL, &now) != 0)
        return false;
    return (now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_capture_signal;
}

static void warn_foreign_handler(void)
{
    if (atomic_flag_test_and_set(&warned_foreign))
        return;
    weft__report("weft: the watchdog cannot read the loop's stack: SIGRTMIN+5, the signal it interrupts the "
                 "loop's thread with, has a handler that is not weft's; blocked steps are reported without "
                 "their stack (free SIGRTMIN+5 to see them)");
}

/* ------------------------------------------------------------------------ */
/* The watchdog's side                                                      */
/* ------------------------------------------------------------------------ */

/* Reads the system call the loop's thread is blocked in: a sleep the handler can issue
 * again is kept in w->sleep_nr and w->sleep_pc, anything else leaves them 0. */
static void read_blocking_call(struct weft__watchdog *w)
{
    w->sleep_nr = 0;
    w->sleep_pc = 0;
#if defined(__x86_64__) && defined(__linux__)
    char path[64], text[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)w->loop_tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return;
    text[n] = '\0';
    /* "NR arg1 .. arg6 sp pc" (or "running", or "-1 sp pc" outside any call). */
    long nr;
    unsigned long args[6], sp, pc;
    if (sscanf(text, "%ld %lx %lx %lx %lx %lx %lx %lx %lx", &nr, &args[0], &args[1], &args[2], &args[3],
               &args[4], &args[5], &sp, &pc) != 9)
        return;
    if (nr == SYS_nanosleep || nr == SYS_clock_nanosleep) {
        w->sleep_nr = nr;
        w->sleep_pc = (uintptr_t)pc;
    }
#endif
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pause_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Interrupts the loop's thread and waits for its stack. Returns true with w's capture
 * filled, false when the thread did not answer in time (it blocks the signal). */
static bool capture(struct weft__watchdog *w)
{
    read_blocking_call(w);
    uint64_t id = ++w->requests;
    atomic_store_explicit(&w->request, id, memory_order_release);
    if (pthread_kill(w->loop_thread, capture_signal()) != 0) {
        atomic_store_explicit(&w->request, 0, memory_order_relaxed);
        return false;
    }
    int64_t until = mono_ns() + ANSWER_WAIT_NS;
    for (;;) {
        if (atomic_load_explicit(&w->answered, memory_order_acquire) == id)
            return true;
        if (mono_ns() >= until) {
            uint64_t want = id;
            if (atomic_compare_exchange_strong(&w->request, &want, 0))
                return false; /* withdrawn: a late signal will find nothing to do */
            /* The handler has claimed it and is writing: it ends soon. */
            until = mono_ns() + ANSWER_WAIT_NS;
        }
        pause_ns(1000 * 1000);
    }
}

/* Names a callback by its function. */
static void callback_name(uintptr_t cb, char *buf, size_t size)
{
    weft__backtrace bt = {.pcs = {cb}, .count = 1, .first_is_return = 0};
    weft__frame f;
    weft__symbolize(&bt, 0, &f, 1);
    if (f.function)
        snprintf(buf, size, "%s", f.function);
    else
        snprintf(buf, size, "at 0x%jx", (uintmax_t)cb);
}


static void write_all(const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        text += n;
        len -= (size_t)n;
    }
}

/* Loops watched in the process: with more than one, a report says whose loop. */
static atomic_int watched_loops;

/* What a report calls the step: "task blocker (Task-2)", "the callback on_timer"; with
 * several loops watched, whose loop: "task Task-1 of the loop on thread 4242". */
static void step_name_of(uint32_t task_id, const char *name, uintptr_t cb, char *buf, size_t size);

static void step_name(const struct weft__watchdog *w, uint32_t task_id, const char *name, uintptr_t cb, char *buf,
                      size_t size)
{
    step_name_of(task_id, name, cb, buf, size);
    size_t used = strlen(buf);
    if (atomic_load(&watched_loops) > 1 && used < size)
        snprintf(buf + used, size - used, " of the loop on thread %d", (int)w->loop_tid);
}

static void step_name_of(uint32_t task_id, const char *name, uintptr_t cb, char *buf, size_t size)
{
    if (task_id && name[0])
        snprintf(buf, size, "task %s (Task-%u)", name, task_id);
    else if (task_id)
        snprintf(buf, size, "task Task-%u", task_id);
    else if (cb) {
        char fn[200];
        callback_name(cb, fn, sizeof fn);
        snprintf(buf, size, "the callback %s", fn);
    } else
        snprintf(buf, size, "a step");
}

/* Reports the blocked step whose beat is `beat`, seen unchanged since seen_ns. Returns
 * false if the step ended meanwhile (nothing printed). *who gets the step's short name
 * for the unblocked line and *start_ns when it began. */
static bool report_blocked(struct weft__watchdog *w, uint64_t beat, int64_t seen_ns, char *who, size_t who_size,
                           int64_t *start_ns)
{
    weft__debug *d = w->d;
    bool have_stack = false;
    if (atomic_load(&signal_state) > 0 && handler_still_ours())
        have_stack = capture(w) && w->beat == beat;
    else
        warn_foreign_handler();
    /* A stack captured with the beat unchanged was taken while the step held the loop,
     * even if the step has ended since (our signal may have ended a sleep). Without
     * one, a step that ended while we looked is not reported. */
    if (!have_stack && atomic_load_explicit(&d->beat, memory_order_acquire) != beat)
        return false;

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return false;
    char what[300];
    int64_t now = mono_ns();
    if (have_stack) {
        *start_ns = d->set.time_steps ? w->step_start_ns : seen_ns;
        step_name(w, w->task_id, w->name, w->cb, what, sizeof what);
        if (w->task_id && w->name[0])
            snprintf(who, who_size, "%s", w->name);
        else if (w->task_id)
            snprintf(who, who_size, "Task-%u", w->task_id);
        else
            snprintf(who, who_size, "%s", what);
        char where[600];
        weft__backtrace_describe(&w->stack, true, where, sizeof where);
        fprintf(out, "weft: loop blocked for %.2f s in %s: %s\n", (double)(now - *start_ns) / 1e9, what, where);
        fprintf(out, "  the loop's thread is stuck here (read by interrupting it with SIGRTMIN+5):\n");
        weft__backtrace_print(out, &w->stack, "    ");
        char created[500];
        if (w->created.count) {
            weft__debug_origin(&w->created, w->created_from_loop, created, sizeof created);
            fprintf(out, "  %s was created at %s\n", who, created);
        } else if (w->task_id && !d->set.debug) {
            fprintf(out, "  (where the task was created is known in debug mode: WEFT_DEBUG=1)\n");
        }
        if (w->sleep_effect != SLEEP_NONE)
            fprintf(out, "  (the sleep it is in goes on to its end: the watchdog's signal does not shorten it)\n");
    } else {
        *start_ns = seen_ns;
        weft_task *t = atomic_load_explicit(&d->beat_task, memory_order_acquire);
        uintptr_t cb = atomic_load_explicit(&d->beat_cb, memory_order_relaxed);
        step_name(w, t ? t->id : 0, "", t ? 0 : cb, what, sizeof what);
        snprintf(who, who_size, "%s", what);
        fprintf(out, "weft: loop blocked for at least %.2f s in %s (its stack could not be read%s)\n",
                (double)(now - seen_ns) / 1e9, what,
                atomic_load(&signal_state) > 0 ? ": the loop's thread did not take SIGRTMIN+5 within 0.2 s; it "
                                                  "blocks the signal, or waits in the kernel uninterruptibly"
                                                : ": SIGRTMIN+5 is not weft's");
    }
    fclose(out);
    write_all(text, len);
    free(text);
    return true;
}

static void say_unblocked(int64_t ns, const char *who)
{
    char line[400];
    int n = snprintf(line, sizeof line, "weft: loop unblocked after %.2f s (%s)\n", (double)ns / 1e9, who);
    write_all(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* A step is running: a task or a callback, as opposed to the loop idle in its poller. */
static bool step_running(weft__debug *d)
{
    return atomic_load_explicit(&d->beat_task, memory_order_relaxed) != NULL ||
           atomic_load_explicit(&d->beat_cb, memory_order_relaxed) != 0;
}

static void *watch(void *arg)
{
    struct weft__watchdog *w = arg;
    weft__debug *d = w->d;
    /* Twenty looks per threshold: when steps are not timed, the step's start is
     * taken as the look that first saw its beat, so the figures reported are late
     * by at most a twentieth of the threshold. */
    int64_t period = w->threshold_ns / 20;
    if (period < 1000 * 1000)
        period = 1000 * 1000;
    uint64_t seen = atomic_load_explicit(&d->beat, memory_order_acquire);
    int64_t seen_ns = mono_ns();
    bool reported = false;
    char who[300] = "";
    int64_t start_ns = 0;

    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        int64_t wait = reported && UNBLOCK_POLL_NS < period ? UNBLOCK_POLL_NS : period;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + wait;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        while (!w->stop && pthread_cond_timedwait(&w->wake, &w->lock, &until) != ETIMEDOUT) {
        }
        if (w->stop)
            break;
        pthread_mutex_unlock(&w->lock);

        uint64_t beat = atomic_load_explicit(&d->beat, memory_order_acquire);
        int64_t now = mono_ns();
        if (beat != seen) {
            if (reported)
                say_unblocked(now - start_ns, who);
            seen = beat;
            seen_ns = now;
            reported = false;
        } else if (!reported && now - seen_ns >= w->threshold_ns && step_running(d) &&
                   atomic_load_explicit(&d->beat, memory_order_acquire) == seen) {
            reported = report_blocked(w, seen, seen_ns, who, sizeof who, &start_ns);
        }
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    /* Stopped (the loop ends) right after the step let go, before the next look. */
    if (reported && atomic_load_explicit(&d->beat, memory_order_acquire) != seen)
        say_unblocked(mono_ns() - start_ns, who);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Start and stop (debug_init / debug_term, on the loop's thread)           */
/* ------------------------------------------------------------------------ */

/* The unwinder initializes itself at its first use: done once, here, so that it is
 * not a signal handler's first use (it loads libraries) and so that two loops starting
 * at once do not both do it. */
static pthread_once_t unwinder_once = PTHREAD_ONCE_INIT;

static void warm_unwinder(void)
{
    weft__backtrace warm;
    weft__backtrace_here(&warm, 0);
}

int weft__watchdog_start(weft_loop *L, weft__debug *d)
{
    (void)L;
    if (d->set.watchdog_ns <= 0)
        return 0;
    struct weft__watchdog *w = calloc(1, sizeof *w);
    if (!w)
        return weft__set_errmsg(-ENOMEM, "weft_run: out of memory for the watchdog");
    w->d = d;
    w->threshold_ns = d->set.watchdog_ns;
    w->loop_thread = pthread_self();
    w->loop_tid = (pid_t)syscall(SYS_gettid);
    pthread_once(&unwinder_once, warm_unwinder);
    if (!install_handler())
        warn_foreign_handler();

    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->lock, NULL);
    int rc = pthread_cond_init(&w->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_destroy(&w->lock);
        free(w);
        return weft__set_errmsg(-rc, "weft_run: could not start the watchdog: %s", strerror(rc));
    }
    watchdog_here = w;
    /* The watchdog's thread takes no signal: the process's go to the program's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&w->thread, NULL, watch, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        watchdog_here = NULL;
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return weft__set_errmsg(-rc, "weft_run: could not start the watchdog's thread: %s", strerror(rc));
    }
    pthread_setname_np(w->thread, "weft-watchdog");
    d->watchdog = w;
    atomic_fetch_add(&watched_loops, 1);
    (void)listed_add(w);
    return 0;
}

void weft__watchdog_stop(weft_loop *L, weft__debug *d)
{
    (void)L;
    struct weft__watchdog *w = d->watchdog;
    if (!w)
        return;
    listed_remove(w);
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    atomic_fetch_sub(&watched_loops, 1);
    /* A signal still pending (the thread blocked it) finds no watchdog. */
    watchdog_here = NULL;
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
    d->watchdog = NULL;
}
