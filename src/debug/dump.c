/*
 * dump.c — task dumps: weft_dump prints every task of the loop (its state, what it
 * waits on and for how long, where it was created, its stack), the loop's callbacks
 * waiting to run and its thread pool calls in flight, as Go prints its goroutines;
 * and the SIGQUIT dump (set.dump_signal), which asks the loop for one from the
 * signal handler and lets the program go on.
 *
 * What a task waits on comes from its wait kind (core.h): `what` names it, and the
 * kind's describe hook, written beside each wait in its own module, gives the
 * particulars (which lock and its holder, which descriptor, when a timer fires).
 * The dump only reads: it runs on the loop's thread, from a task or a callback, and
 * nothing changes while it walks the records.
 *
 * The SIGQUIT handler does nothing but weft_notify (async-signal-safe): the dump
 * itself runs on the loop, among its callbacks, at its next iteration. A loop stuck
 * in a task that does not yield dumps only once that task gives the loop back (the
 * watchdog, WEFT_WATCHDOG, is what reports a loop stuck there).
 */
#include "debug/debug.h"
#include "exec/exec.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Pieces of a dump                                                         */
/* ------------------------------------------------------------------------ */

/* Writes "function at file:line" of the code at pc (a function's address). */
static void describe_code(const void *pc, char *buf, size_t size)
{
    weft__backtrace bt = {.pcs = {(uintptr_t)pc}, .count = 1, .first_is_return = 0};
    weft__frame f;
    weft__symbolize(&bt, 0, &f, 1);
    weft__frame_format(&f, buf, size);
    if (f.weft_own) {
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, " (weft's own)");
    }
}

typedef struct task_list {
    weft_task **v;
    size_t n, cap;
    bool no_memory;
} task_list;

static void collect_task(weft_loop *L, weft_task *t, void *arg)
{
    (void)L;
    task_list *list = arg;
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 64;
        weft_task **v = realloc(list->v, cap * sizeof *v);
        if (!v) {
            list->no_memory = true;
            return;
        }
        list->v = v;
        list->cap = cap;
    }
    list->v[list->n++] = t;
}

static int by_id(const void *a, const void *b)
{
    const weft_task *x = *(weft_task *const *)a, *y = *(weft_task *const *)b;
    return (x->id > y->id) - (x->id < y->id);
}

typedef struct call_list {
    weft__pool_call_info v[64];
    size_t n, more;
} call_list;

static void collect_call(const weft__pool_call_info *call, void *arg)
{
    call_list *calls = arg;
    if (calls->n < sizeof calls->v / sizeof calls->v[0])
        calls->v[calls->n++] = *call;
    else
        calls->more++;
}

static const weft__pool_call_info *call_of_task(const call_list *calls, const weft_task *t)
{
    for (size_t i = 0; i < calls->n; i++)
        if (calls->v[i].task == t)
            return &calls->v[i];
    return NULL;
}

/* How long t has waited, from debug mode's record: "waiting, 1.500 s", or the plain
 * state without it. */
static void state_and_time(weft_loop *L, const weft_task *t, char *buf, size_t size)
{
    const weft__task_debug *td = weft__task_debug_of(t);
    uint8_t st = WEFT__STATE(t);
    if (td && td->suspended.count && (st == WEFT__WAITING || st == WEFT__READY)) {
        double s = (double)(weft__now(L) - td->waiting_since_ns) / 1e9;
        snprintf(buf, size, "%s, %s %.3f s", weft__task_state_name(t), st == WEFT__WAITING ? "for" : "last ran",
                 s);
        if (st == WEFT__READY) {
            size_t n = strlen(buf);
            snprintf(buf + n, size - n, " ago");
        }
    } else {
        snprintf(buf, size, "%s", weft__task_state_name(t));
    }
}

static void print_task(FILE *out, weft_loop *L, weft_task *t, const weft__backtrace *here, const call_list *calls)
{
    char state[96];
    state_and_time(L, t, state, sizeof state);
    uint8_t flags = WEFT__FLAGS(t);
    fprintf(out, "task %u \"%s\"%s%s [%s]\n", t->id, weft_task_name(t), flags & WEFT__MAIN ? " (main)" : "",
            t->cancelling ? " (cancelling)" : "", state);

    uint8_t st = WEFT__STATE(t);
    if (st == WEFT__WAITING) {
        const weft__wait_kind *kind = t->wait_kind;
        char detail[512] = "";
        if (kind && kind->describe)
            kind->describe(t, detail, sizeof detail);
        const weft__pool_call_info *call = call_of_task(calls, t);
        if (call) {
            char fn[256], rest[512];
            describe_code((const void *)call->fn, fn, sizeof fn);
            snprintf(rest, sizeof rest, "%s; %s", fn, detail);
            memcpy(detail, rest, sizeof detail);
        }
        if (!kind)
            fprintf(out, "  waits on: nothing named (parked)\n");
        else if (detail[0])
            fprintf(out, "  waits on: %s (%s)\n", kind->what, detail);
        else
            fprintf(out, "  waits on: %s\n", kind->what);
    } else if (st == WEFT__DONE) {
        fprintf(out, "  finished%s%s; its outcome not taken yet\n", t->err ? " with " : "",
                t->err ? weft_errname(t->err) : "");
    }

    if (weft__task_debug_of(t)) {
        char created[320];
        weft__debug_task_origin(t, created, sizeof created);
        fprintf(out, "  created at %s\n", created);
    }

    weft__backtrace bt;
    const char *why = NULL;
    if (st == WEFT__NEW) {
        char fn[256];
        describe_code((const void *)t->fn, fn, sizeof fn);
        fprintf(out, "  not started yet: will run %s\n", fn);
    } else if (st == WEFT__RUNNING) {
        if (here && here->count) {
            fprintf(out, "  stack (it called weft_dump):\n");
            weft__backtrace_print(out, here, "    ");
        } else {
            fprintf(out, "  stack: (not captured)\n");
        }
    } else if (st == WEFT__WAITING || st == WEFT__READY) {
        if (weft__backtrace_task(t, &bt, &why) > 0) {
            fprintf(out, "  stack:\n");
            weft__backtrace_print(out, &bt, "    ");
        } else {
            fprintf(out, "  stack: not available: %s\n", why ? why : "no frames could be read");
        }
    }
    fputc('\n', out);
}

/* One timer of the heap, for sorting by when it fires. */
typedef struct timer_ref {
    int64_t when;
    uint64_t seq;
    const weft__node *owner;
} timer_ref;

static int by_when(const void *a, const void *b)
{
    const timer_ref *x = a, *y = b;
    if (x->when != y->when)
        return x->when < y->when ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The callbacks waiting to run: ready ones in their order, then the timed ones by
 * deadline. Returns how many were listed. */
static size_t print_callbacks(FILE *out, weft_loop *L)
{
    char fn[256];
    size_t listed = 0, ready = 0, timed = 0, sleeps = 0;
    for (const weft__node *n = L->ready.head; n; n = n->next)
        if (n->kind == WEFT__NODE_CALLBACK && n->b1 != WEFT__CB_CANCELLED)
            ready++;
    for (size_t i = 0; i < L->timers.count; i++) {
        if (L->timers.e[i].owner->kind == WEFT__NODE_CALLBACK)
            timed++;
        else
            sleeps++;
    }
    weft__debug *d = weft__debug_of(L);
    bool running = d && d->cb && !L->current;
    fprintf(out, "loop callbacks: %zu ready, %zu timed (and %zu sleeping task%s in the timer heap)\n", ready, timed,
            sleeps, sleeps == 1 ? "" : "s");
    if (running) {
        describe_code((const void *)d->cb, fn, sizeof fn);
        fprintf(out, "  running now: %s (arg %p)\n", fn, d->cb_arg);
    }
    for (const weft__node *n = L->ready.head; n; n = n->next) {
        if (n->kind != WEFT__NODE_CALLBACK || n->b1 == WEFT__CB_CANCELLED)
            continue;
        const weft__callback *c = (const weft__callback *)n;
        describe_code((const void *)c->cb, fn, sizeof fn);
        fprintf(out, "  ready: %s (arg %p)\n", fn, c->arg);
        listed++;
    }
    if (timed) {
        timer_ref *refs = malloc(timed * sizeof *refs);
        size_t k = 0;
        for (size_t i = 0; refs && i < L->timers.count; i++) {
            const weft__heap_entry *e = &L->timers.e[i];
            if (e->owner->kind == WEFT__NODE_CALLBACK)
                refs[k++] = (timer_ref){e->when, e->seq, e->owner};
        }
        if (refs)
            qsort(refs, k, sizeof *refs, by_when);
        else
            fprintf(out, "  (no memory to list the timed ones)\n");
        for (size_t i = 0; i < k; i++) {
            const weft__callback *c = (const weft__callback *)refs[i].owner;
            char when[96];
            weft__describe_timer(L, refs[i].owner, when, sizeof when);
            describe_code((const void *)c->cb, fn, sizeof fn);
            fprintf(out, "  timed, %s: %s (arg %p)\n", when, fn, c->arg);
            listed++;
        }
        free(refs);
    }
    /* Copied under the lock, symbolized outside it: other threads post meanwhile. */
    weft__ts_call posted_calls[16];
    pthread_mutex_lock(&L->ts_lock);
    size_t posted = L->ts_count;
    size_t copied = posted < 16 ? posted : 16;
    if (copied) /* ts_calls is NULL until a first call is posted */
        memcpy(posted_calls, L->ts_calls, copied * sizeof *posted_calls);
    pthread_mutex_unlock(&L->ts_lock);
    for (size_t i = 0; i < copied; i++) {
        describe_code((const void *)posted_calls[i].cb, fn, sizeof fn);
        fprintf(out, "  posted from another thread: %s (arg %p)\n", fn, posted_calls[i].arg);
    }
    if (posted > 16)
        fprintf(out, "  and %zu more posted from other threads\n", posted - 16);
    fputc('\n', out);
    return listed;
}

static void print_calls(FILE *out, weft_loop *L, const call_list *calls, size_t outstanding)
{
    if (outstanding == 0 && calls->n == 0) {
        fprintf(out, "thread pool calls in flight: none\n\n");
        return;
    }
    fprintf(out, "thread pool calls in flight: %zu submitted by this loop and not back", outstanding);
    if (outstanding > calls->n + calls->more)
        fprintf(out, " (%zu of them left by their cancelled task)", outstanding - calls->n - calls->more);
    fputs("\n", out);
    for (size_t i = 0; i < calls->n; i++) {
        const weft__pool_call_info *c = &calls->v[i];
        char fn[256], since[64] = "";
        describe_code((const void *)c->fn, fn, sizeof fn);
        const weft__task_debug *td = weft__task_debug_of(c->task);
        if (td && td->suspended.count)
            snprintf(since, sizeof since, ", waiting %.3f s", (double)(weft__now(L) - td->waiting_since_ns) / 1e9);
        fprintf(out, "  %s (arg %p): %s%s, for task %u \"%s\"%s%s\n", fn, c->arg, c->where,
                c->default_pool ? " of the default pool" : "", c->task->id, weft_task_name(c->task), since,
                c->held ? " (it waits through cancellation)" : "");
    }
    if (calls->more)
        fprintf(out, "  and %zu more\n", calls->more);
    fputc('\n', out);
}

/* The dump itself; `here` is the caller's stack when a task called it, `why` what
 * asked for it ("weft_dump", "SIGQUIT"). */
static int dump(weft_loop *L, FILE *out, const weft__backtrace *here, const char *why)
{
    task_list tasks = {0};
    weft__loop_for_each_task(L, collect_task, &tasks);
    if (tasks.n)
        qsort(tasks.v, tasks.n, sizeof *tasks.v, by_id);
    call_list *calls = calloc(1, sizeof *calls);
    size_t outstanding = 0;
    if (calls)
        weft__pools_for_each_call(L, collect_call, calls, &outstanding);

    size_t waiting = 0, ready = 0, finished = 0;
    for (size_t i = 0; i < tasks.n; i++) {
        waiting += WEFT__STATE(tasks.v[i]) == WEFT__WAITING;
        ready += WEFT__STATE(tasks.v[i]) == WEFT__READY || WEFT__STATE(tasks.v[i]) == WEFT__NEW;
        finished += WEFT__STATE(tasks.v[i]) == WEFT__DONE;
    }
    char done[48] = "";
    if (finished)
        snprintf(done, sizeof done, ", %zu finished", finished);
    fprintf(out,
            "weft: task dump (%s): %zu task%s (%zu waiting, %zu ready, %zu running%s), loop time %.3f s%s, "
            "iteration %llu%s\n\n",
            why, tasks.n, tasks.n == 1 ? "" : "s", waiting, ready, (size_t)(L->current != NULL), done, weft__loop_seconds(L, weft__now(L)),
            L->virtual_time ? " (virtual)" : "", (unsigned long long)L->iteration,
            weft__debug_of(L) && weft__debug_of(L)->set.debug
                ? ""
                : "\n(where tasks were created and how long they have waited are shown in debug mode, WEFT_DEBUG=1)");
    static const call_list no_calls;
    for (size_t i = 0; i < tasks.n; i++)
        print_task(out, L, tasks.v[i], here, calls ? calls : &no_calls);
    if (tasks.no_memory)
        fprintf(out, "(no memory to list every task: some are missing above)\n\n");
    print_callbacks(out, L);
    if (calls)
        print_calls(out, L, calls, outstanding);
    fprintf(out, "weft: end of task dump\n");
    free(calls);
    free(tasks.v);
    return (int)tasks.n;
}

int weft_dump(FILE *out)
{
    weft_loop *L = weft__loop;
    if (!L)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_dump must be called on a thread running a weft loop, from "
                                                 "a task or a callback (start one with weft_run)");
    if (!out)
        out = stderr;
    weft__backtrace here;
    here.count = 0;
    if (L->current)
        weft__backtrace_here(&here, 0); /* from the caller of weft_dump outwards */
    int n = dump(L, out, &here, "weft_dump");
    if (fflush(out) != 0 || ferror(out))
        return weft__set_errmsg(-EIO, "weft_dump: writing the dump failed: %s", strerror(errno ? errno : EIO));
    return n;
}

/* ------------------------------------------------------------------------ */
/* SIGQUIT                                                                  */
/* ------------------------------------------------------------------------ */

/* The one loop that owns SIGQUIT for dumps (the main thread's), and its notifier.
 * The handler reads the notifier; the rest is the loop thread's. */
static _Atomic(weft_notifier *) quit_notifier;
static weft_loop *quit_loop;
static pthread_once_t quit_once = PTHREAD_ONCE_INIT;

/* Async-signal-safe: weft_notify, or, once no loop wants it (the handler left in
 * place by another owner that restored it later), SIGQUIT's default action. */
/* A SIGQUIT the loop has not dumped for yet: one that comes as the loop ends is dumped
 * by weft__dump_signal_stop rather than lost. */
static atomic_int quit_pending;

static void on_sigquit(int sig)
{
    int saved = errno;
    weft_notifier *n = atomic_load(&quit_notifier);
    if (n && weft_notify(n) == 0) {
        atomic_store(&quit_pending, 1);
        errno = saved;
        return;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig); /* blocked while this handler runs: delivered, fatal, when it returns */
    errno = saved;
}

/* A forked child has no loop to dump: SIGQUIT is fatal there again. */
static void quit_fork_child(void)
{
    if (atomic_load(&quit_notifier)) {
        atomic_store(&quit_notifier, NULL);
        quit_loop = NULL;
        signal(SIGQUIT, SIG_DFL);
    }
}

static void quit_register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, quit_fork_child);
}

static void on_quit_notified(void *arg)
{
    weft_loop *L = arg;
    atomic_store(&quit_pending, 0);
    (void)dump(L, stderr, NULL, "SIGQUIT");
    fflush(stderr);
}

static bool sigquit_is_default(void)
{
    struct sigaction now;
    return sigaction(SIGQUIT, NULL, &now) == 0 && !(now.sa_flags & SA_SIGINFO) && now.sa_handler == SIG_DFL;
}

/* Why this loop cannot take SIGQUIT, or NULL when it can. */
static const char *sigquit_unavailable(void)
{
    if (syscall(SYS_gettid) != getpid())
        return "this loop does not run on the process's main thread";
    if (quit_loop)
        return "another loop of the process has it";
    struct sigaction now;
    if (sigaction(SIGQUIT, NULL, &now) == 0 && !(now.sa_flags & SA_SIGINFO) && now.sa_handler == SIG_IGN)
        return "SIGQUIT is ignored (a shell starts background jobs so)";
    if (!sigquit_is_default())
        return "the program handles SIGQUIT itself";
    return NULL;
}

int weft__dump_signal_start(weft_loop *L)
{
    const char *why = sigquit_unavailable();
    if (why) {
        /* Left alone; said when the program asked for it, not when debug mode did. */
        weft__debug *d = weft__debug_of(L);
        if (d && d->set.dump_signal_asked)
            weft__report("weft: no SIGQUIT dump for this loop (weft_options.dump_signal / WEFT_DUMP_SIGNAL): %s; "
                         "call weft_dump from the program instead", why);
        return 0;
    }
    pthread_once(&quit_once, quit_register_atfork);
    /* Modules start before their loop is current: the notifier is made on L. */
    weft_loop *was = weft__loop;
    weft__loop = L;
    weft_notifier *n = weft_notifier_new(on_quit_notified, L);
    if (n)
        weft__notifier_hold(n, false); /* a deadlock is still reported: SIGQUIT is no reason to wait */
    weft__loop = was;
    if (!n)
        return weft__set_errmsg(-ENOMEM, "weft_run: out of memory for the SIGQUIT dump's notifier "
                                         "(weft_options.dump_signal, WEFT_DUMP_SIGNAL or debug mode)");
    atomic_store(&quit_notifier, n);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigquit;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    if (sigaction(SIGQUIT, &sa, NULL) != 0) {
        int err = -errno;
        atomic_store(&quit_notifier, NULL);
        weft__loop = L;
        weft_notifier_free(n);
        weft__loop = was;
        return weft__set_errmsg(err, "weft_run: sigaction(SIGQUIT) failed for the task dump: %s", strerror(-err));
    }
    quit_loop = L;
    return 0;
}

void weft__dump_signal_stop(weft_loop *L)
{
    if (quit_loop != L)
        return;
    /* Asked for as the loop ended, after its last turn: said, not lost (every task has
     * finished by now: there is nothing left to list). */
    if (atomic_exchange(&quit_pending, 0))
        weft__report("weft: SIGQUIT came as the loop was ending (after its last turn): no task was left to dump");
    /* SIG_DFL back, unless a handler of the program's own replaced ours meanwhile
     * (weft_add_signal_handler): that one stays, and gives ours back later, which
     * then acts as SIG_DFL (on_sigquit). */
    struct sigaction now;
    if (sigaction(SIGQUIT, NULL, &now) == 0 && !(now.sa_flags & SA_SIGINFO) && now.sa_handler == on_sigquit)
        signal(SIGQUIT, SIG_DFL);
    weft_notifier *n = atomic_exchange(&quit_notifier, NULL);
    quit_loop = NULL;
    if (n) {
        weft_loop *was = weft__loop;
        weft__loop = L;
        weft_notifier_free(n);
        weft__loop = was;
    }
}
