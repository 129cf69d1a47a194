/*
 * core.h — the core layer's internals: the loop and its iteration, tasks, stacks,
 * compact tasks, loop callbacks, thread-safe calls, the clock and the one
 * suspension primitive. It may use util/, ctx/ and io/; the layers above (combine,
 * sync, exec, run) use it. Never installed.
 *
 * Task life cycle (one state at a time; every transition is in task.c or loop.c):
 *
 *   NEW ──first run──▶ RUNNING ◀──resume── READY ◀──wake── WAITING
 *    │                   │  └──────────suspend─────────────────┘
 *    │ cancelled         │ fn returns
 *    ▼ before start      ▼
 *   DONE ◀───────────── DONE   (stack already back in the pool)
 *
 * Who may touch what:
 *   - node.next: the ready queue while NEW/READY, the loop's free list while free.
 *   - stack: the task while RUNNING/WAITING/READY after first run; NULL otherwise.
 *   - wait_kind/wait_obj: set by the task right before it suspends in weft__wait;
 *     read and cleared by whoever wakes or cancels it.
 *   - waiter/waiter_kind: set by the one consumer of the handle through
 *     weft__task_claim*; used once, when the task finishes.
 */
#ifndef WEFT__SRC_CORE_H
#define WEFT__SRC_CORE_H

#include "weft.h"
#include "ctx/ctx.h"
#include "io/io.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* What a weft__node in the ready queue is. */
enum { WEFT__NODE_TASK = 1, WEFT__NODE_CALLBACK = 2 };

/* ------------------------------------------------------------------------ */
/* Stacks (stack.c)                                                         */
/* ------------------------------------------------------------------------ */

/* A task stack. The descriptor sits at the top of its own mapping, above the
 * usable area, so a stack costs no separate allocation. */
typedef struct weft__stack {
    weft__ctx ctx;               /* saved registers of the task using it */
    struct weft__stack *next;    /* pool free list */
    char *lo;                    /* lowest usable byte (just above the guard page) */
    size_t size;                 /* usable bytes */
    uint8_t guarded;             /* a guard page lies below lo (no canary to check) */
    uint8_t from_slab;           /* part of a slab: never unmapped alone */
    uint8_t compact;             /* a compact task's view of the loop's shared stack */
    unsigned valgrind_id;
    uint32_t saved_len, saved_cap; /* compact: bytes of frames kept after the descriptor */
#ifdef WEFT__ASAN
    void *asan_fake_stack;
#endif
} weft__stack;

typedef struct weft__stack_pool {
    weft__stack *free;           /* free stacks of `size` bytes */
    size_t count, max;
    size_t size;                 /* the loop's default stack size */
    struct weft__slab *slabs;    /* slabs of many stacks, freed with the pool */
    weft__stack *slab_free;      /* free slab stacks of `size` bytes */
} weft__stack_pool;

/* The value written at the bottom of an unguarded stack and checked at every switch. */
#define WEFT__CANARY 0x5745465443414e59ull /* "WEFTCANY" */

int weft__stack_pool_init(weft__stack_pool *pool, size_t size, size_t max);
void weft__stack_pool_destroy(weft__stack_pool *pool);
/* Returns a stack of `size` bytes (pooled when size is the pool's), or NULL. */
weft__stack *weft__stack_get(weft__stack_pool *pool, size_t size);
void weft__stack_put(weft__stack_pool *pool, weft__stack *s);
/* Non-zero: slabs are made as on kernels without guard regions (MADV_GUARD_INSTALL),
 * so that the tests reach the canary path on any kernel. */
extern int weft__stack_guard_install_off;
/* Aborts with a report naming the task when an unguarded stack's canary is gone. */
void weft__stack_check_canary(const weft__stack *s, const weft_task *t);
static inline void weft__stack_check(const weft__stack *s, const weft_task *t)
{
    if (WEFT__UNLIKELY(!s->guarded))
        weft__stack_check_canary(s, t);
}
/* Installs the process's SIGSEGV handler and this thread's alternate signal stack. */
void weft__stack_overflow_handler_install(void);
size_t weft__page_size(void);

/* ------------------------------------------------------------------------ */
/* Compact tasks (compact.c)                                                */
/* ------------------------------------------------------------------------ */

/*
 * A compact task runs on a stack shared by every compact task of the loop; when
 * another compact task needs the shared stack, the used part of the previous
 * owner's (from its saved sp to the top) is copied out to the heap, and copied
 * back to the same addresses before it runs again. A suspended compact task so
 * costs the bytes its frames use (a few hundred) instead of a page or more.
 *
 * The rule that comes with it, for weft's own code as for users': nothing may
 * keep a pointer into a compact task's stack while that task is suspended. So
 * whatever a waiting task shares with others (a gather's state, ...) lives in
 * the task record or on the heap when the task is compact.
 *
 * Compact tasks always switch through the scheduler, which runs on the thread's
 * own stack: copying frames in and out of the shared stack cannot be done from it.
 */
/* Makes t the owner of the shared stack with its frames in place (a NEW task gets
 * its first frame). Returns 0 or -ENOMEM. */
int weft__compact_enter(weft_loop *L, weft_task *t, weft__ctx_entry entry);
/* A compact task has finished: drop its saved frames and descriptor. */
void weft__compact_release(weft_loop *L, weft_task *t);
void weft__compact_destroy(weft_loop *L);

/* ------------------------------------------------------------------------ */
/* Callbacks (callback.c): call_soon / call_later / call_at and their handles */
/* ------------------------------------------------------------------------ */

/* A scheduled callback. Records are type-stable (kept on the loop's free list,
 * never reused for anything else), so a stale weft_call is recognised by its
 * id: every use of a record gets a new one, and a free record has id 0. */
typedef struct weft__callback {
    weft__node node;     /* kind = CALLBACK; b1 = state; u32 = heap slot */
    weft_callback_fn cb;
    void *arg;
    uint64_t id;
} weft__callback;

enum { WEFT__CB_IN_HEAP = 1, WEFT__CB_READY, WEFT__CB_CANCELLED };

/* `when` for weft__callback_schedule: the ready queue, not the timer heap. */
#define WEFT__SOON INT64_MIN
/* Schedules cb(arg) on the ready queue (when == WEFT__SOON) or in the timer heap
 * at loop time `when` ns, which may be in the past, even negative: due timers run
 * in deadline order. Returns the record or NULL (-ENOMEM, no message set). */
weft__callback *weft__callback_schedule(weft_loop *L, int64_t when, weft_callback_fn cb, void *arg);
/* A record set aside now for a callback posted later, so that posting cannot
 * fail (done callbacks). NULL on ENOMEM. Post it, or release it unposted. */
weft__callback *weft__callback_reserve(weft_loop *L);
void weft__callback_post(weft_loop *L, weft__callback *c, weft_callback_fn cb, void *arg);
void weft__callback_release(weft_loop *L, weft__callback *c);
/* Runs a ready callback record taken from the ready queue, then frees it. */
void weft__callback_run(weft_loop *L, weft__callback *c);
/* Moves a due timer callback to the ready queue. */
void weft__callback_due(weft_loop *L, weft__callback *c);
/* Prevents a scheduled callback from running; false if it already ran or was cancelled. */
bool weft__callback_cancel(weft_loop *L, weft__callback *c);
/* Frees every record (the loop is ending; scheduled callbacks are dropped). */
void weft__callbacks_destroy(weft_loop *L);

/* ------------------------------------------------------------------------ */
/* Tasks                                                                    */
/* ------------------------------------------------------------------------ */

enum weft__task_state {
    WEFT__FREE = 0, /* a slot on the loop's free list */
    WEFT__NEW,      /* spawned, never run, in the ready queue */
    WEFT__READY,    /* started, in the ready queue */
    WEFT__RUNNING,
    WEFT__WAITING,  /* suspended in weft__wait */
    WEFT__DONE,
};

enum weft__task_flags {
    WEFT__DETACHED = 1 << 0,    /* nobody holds the handle: free it when done */
    WEFT__QUIET = 1 << 1,       /* its outcome was deliberately dropped: no report */
    WEFT__MAIN = 1 << 2,        /* the task weft_run started */
    WEFT__COMPACT = 1 << 3,     /* runs on the loop's shared stack (compact.c) */
    WEFT__GROUP_CHILD = 1 << 4, /* owned by a weft_group: no await/detach/gather */
    WEFT__FREE_LATER = 1 << 5,  /* given up while pinned: freed at the last unpin */
    WEFT__PARKED = 1 << 6,      /* ignored its cancellation at weft_run's end: never runs again */
};

/* Who has claimed a task's outcome (weft__task_claim*): nobody, a task to wake
 * (weft_await, weft_wait_for), or a weft__claim told synchronously (gather). */
enum weft__waiter_kind { WEFT__WAITER_NONE = 0, WEFT__WAITER_TASK, WEFT__WAITER_CLAIM };

/* What a waiting task unhooks from when it is woken for another reason
 * (cancellation, timeout): removes it from the timer heap, an awaited task, ... */
typedef void (*weft__unwait_fn)(weft_task *self, int reason);

/*
 * What a task waits on, as weft__wait is told it: one static record per kind of wait,
 * so that a waiting task says what it waits for (weft_dump, traces) at no cost to the
 * wait itself. `what` names it for people ("lock", "sleep", "stream read"); unwait is
 * the hook above (NULL: nothing to unhook); describe, when set, writes the particulars
 * of the wait of waiting task t (which lock and who holds it, which descriptor, ...)
 * into buf, from t->wait_obj; it is called on the loop's thread while t waits.
 */
typedef struct weft__wait_kind {
    const char *what;
    weft__unwait_fn unwait;
    void (*describe)(const weft_task *t, char *buf, size_t size);
} weft__wait_kind;

/* Rarely needed per-task data, allocated on first use. */
/*
 * Something told synchronously, from the loop, when a task finishes: a weft_wait,
 * an as_completed, a TaskGroup, a shielded await, a done callback. Listeners are
 * called in the order they were added, each unlinked before its call; a listener
 * must not free the task record (it may wake tasks, schedule callbacks, free
 * itself). The memory is the listener owner's.
 */
typedef struct weft__listener {
    struct weft__listener *next;
    void (*done)(struct weft__listener *self, weft_task *finished);
} weft__listener;

/*
 * The latest error of a task or of a thread outside any task (error.c): what
 * weft_errcode() and weft_errmsg() read. A message replaced is not freed at once
 * but kept among the last few (retired), so that the pointer weft_errmsg() gave
 * stays valid while a few more errors come: `printf("%d %s", weft_x(),
 * weft_errmsg())` is safe whichever argument C evaluates first.
 */
#define WEFT__RETIRED 4
typedef struct weft__errstate {
    char *msg;                       /* the latest error's message; of a finished task: its outcome's */
    char *fail_msg;                  /* weft_fail's message while its error stands */
    char *retired[WEFT__RETIRED];
    uint8_t next_retired;
    int32_t code;                    /* the latest error's code */
} weft__errstate;

/* Frees every message of an error state. */
void weft__errstate_free(weft__errstate *e);
/* Makes (code, msg) the latest error (msg owned, may be NULL), retiring the old message. */
void weft__errstate_set(weft__errstate *e, int code, char *msg);

typedef struct weft__task_extra {
    char *name;          /* NULL = "Task-<id>", formatted into default_name */
    weft__errstate es;   /* the latest error received, and weft_fail's */
    char *cancel_msg;
    weft_error_group *group; /* the group of the latest error, when it was WEFT_EGROUP */
    weft__listener *listeners;
    uint32_t pins;       /* scheduled done callbacks that will still read the record */
    uint32_t refused;    /* suspension points that returned -ECANCELED to it, cancelled */
    void (*drop)(void *result); /* weft_spawn_options.drop: frees a result nobody took */
    void *debug;         /* debug/'s record of it (debug mode), freed by the observer's forget */
    char default_name[24];
} weft__task_extra;

/* Adds a listener to a task that has not finished. Returns 0 or -ENOMEM. */
int weft__task_listen(weft_task *t, weft__listener *l);
/* Removes a listener that has not been called; no-op if it is not there. */
void weft__task_unlisten(weft_task *t, weft__listener *l);
/* Keeps a record alive for a scheduled callback that will read it (see
 * weft__task_free); unpin frees it if its handle was given up meanwhile. */
void weft__task_pin(weft_task *t);
void weft__task_unpin(weft_loop *L, weft_task *t);

struct weft_task {
    weft__node node;                 /* b1 = state, b2 = flags, b3 = waiter_kind, u32 = heap slot */
    weft__stack *stack;
    union {
        weft_fn fn;                  /* NEW: the function to run */
        void *wait_obj;              /* WAITING: what unwait unhooks from */
    };
    union {
        void *arg;                   /* until it finishes */
        void *result;                /* DONE */
    };
    const weft__wait_kind *wait_kind; /* WAITING: on what (NULL: parked, or a plain yield) */
    void *waiter;                    /* the task or gather to tell when done */
    weft__task_extra *extra;
    uint32_t id;
    int32_t err;                     /* recorded by weft_fail / the outcome when DONE */
    int32_t wake;                    /* the reason it was woken */
    uint16_t cancelling;             /* cancel requests not taken back by weft_uncancel */
    uint16_t stack_kib;              /* requested stack size in KiB; 0 = the loop's */
};

#define WEFT__STATE(t) ((t)->node.b1)
#define WEFT__FLAGS(t) ((t)->node.b2)
#define WEFT__WAITER_KIND(t) ((t)->node.b3)

/* weft_spawn_opts without the handle: the record (weft's own callers). */
weft_task *weft__spawn(weft_fn fn, void *arg, const weft_spawn_options *opts);

/* Turns a user's handle argument into its record `var`, or runs `stale_return`
 * (which returns from the calling function) when the handle cannot be used. */
#define WEFT__TASK_ARG(var, handle, stale_return)                    \
    weft_task *var;                                            \
    do {                                                       \
        bool stale_;                                           \
        var = weft__task_from(handle, &stale_);                \
        if (WEFT__UNLIKELY(stale_)) {                          \
            stale_return;                                      \
        }                                                      \
    } while (0)

/* Says why `what` was given a handle it cannot use (weft__handle_fault): -ESTALE
 * for a stale one, WEFT_ESTATE for another loop's, WEFT_ENOTINLOOP without a loop. */
int weft__stale_handle(const char *what);

/* ------------------------------------------------------------------------ */
/* The loop (loop.c)                                                        */
/* ------------------------------------------------------------------------ */

/*
 * A module that keeps per-loop state has a slot in the loop and an init/term pair:
 * weft_run (run.c, which holds the list) calls every init in order when the loop
 * starts and every term in reverse when it ends, so a module's state never
 * outlives the loop and nothing per-loop lives in a thread-local. drain, when set,
 * runs (in reverse order) after main and every task have finished and before any
 * term: a module waits there for work still outside the loop (thread pool calls),
 * running the loop as it needs. Core modules keep their state in weft_loop's own
 * fields; the modules above the core use slots[], by number.
 */
typedef struct weft__module {
    const char *name;
    int (*init)(weft_loop *L, const weft_options *opts); /* 0 or a negative errno */
    void (*drain)(weft_loop *L);
    void (*term)(weft_loop *L);
} weft__module;

enum weft__slot {
    WEFT__SLOT_POOLS,                /* exec/pool.c: the loop's port to the thread pools */
    WEFT__SLOT_NET,                  /* net/: the loop's streams, servers, datagram endpoints, lookups */
    WEFT__SLOT_PROC,                 /* proc/process.c: the loop's child processes */
    WEFT__SLOT_SIGNALS,              /* proc/signal.c: the signals the loop owns */
    WEFT__SLOT_DEBUG,                /* debug/: debug mode, watchdog, trace, step timing */
    WEFT__SLOT_COUNT
};

/* The core's modules, in the order their init runs (loop.c, fdwait.c, threadsafe.c, notify.c). */
extern const weft__module weft__module_memory, weft__module_tasks, weft__module_timers,
    weft__module_io, weft__module_fds, weft__module_threadsafe, weft__module_notify;

/* A descriptor tasks can wait on (fdwait.c): a watcher with at most one task
 * waiting for each direction, and the callbacks of weft_add_reader/writer.
 * Embedded by its owner, which calls weft__fd_forget before closing it. */
typedef struct weft__fd {
    weft__watcher w;
    weft_task *reader, *writer;      /* suspended in weft__fd_wait */
    weft_callback_fn on_read, on_write;
    void *read_arg, *write_arg;
} weft__fd;

/* The descriptors watched by number through the public calls: records indexed by
 * fd, kept (and their registrations with them) until forgotten or the loop ends. */
struct weft__fd_table {
    weft__fd **rec;
    size_t cap;
};

typedef struct weft__ts_call {
    weft_callback_fn cb;
    void *arg;
} weft__ts_call;

/* Task records come from slabs owned by the loop, so a million tasks are a
 * million small records, and leftovers can be found at shutdown by a scan. */
typedef struct weft__task_slab {
    struct weft__task_slab *next;
    size_t count;
    size_t bytes;                    /* of the mapping (bulk) or 0 (malloc) */
    weft_task tasks[];
} weft__task_slab;

/*
 * Observation: what the debug layer (debug mode, the watchdog, traces, step timing)
 * is told as the loop runs. The loop holds a pointer to one of these only while
 * something watches (L->observer, NULL otherwise), so that the cost when nothing
 * watches is one predictable branch at each switch, spawn, wake, callback and poll.
 * Every hook runs on the loop's thread; none may suspend, switch or fail.
 */
typedef struct weft__observer {
    /* t was just spawned (state NEW), on the spawner's stack or the scheduler's. */
    void (*spawned)(weft_loop *L, weft_task *t);
    /* t starts or resumes running (state RUNNING): called right before the switch
     * into it, on the stack of the task that hands over to it or the scheduler's. */
    void (*step_begin)(weft_loop *L, weft_task *t);
    /* The running task t stops: it waits (WAITING; t->wait_kind and t->wait_obj say
     * on what), yields (READY) or has returned (DONE). Called on t's stack, before
     * the switch away from it. `next`, when not NULL, is the task t hands the loop to
     * directly, whose step begins at once (no step_begin is called for it: one clock
     * read serves both; next may be t itself, the only task ready after a yield). */
    void (*step_end)(weft_loop *L, weft_task *t, weft_task *next);
    /* t was made ready by a wake-up (reason 0, -ECANCELED, -ETIMEDOUT), by the
     * running task (L->current), a callback, a timer or the poller. */
    void (*woken)(weft_loop *L, weft_task *t, int reason);
    /* A loop callback cb(arg) is about to run / has returned. */
    void (*callback_begin)(weft_loop *L, weft_callback_fn cb, void *arg);
    void (*callback_end)(weft_loop *L);
    /* The record of t is about to be freed (after its outcome was taken, or at the end). */
    void (*forget)(weft_loop *L, weft_task *t);
    /* weft reported something about t on stderr (an error nobody retrieved, a task
     * destroyed while pending, one that ignores its cancellation): debug mode adds
     * where t was created. */
    void (*reported)(weft_loop *L, const weft_task *t);
} weft__observer;

/* The loop's counters that cost nothing to keep (weft_loop_metrics reads them). */
typedef struct weft__loop_stats {
    int64_t started_ns;              /* the monotonic clock when the loop started */
    int64_t poll_ns;                 /* real time spent in the poller, waiting included */
    uint64_t polls;                  /* calls of the poller */
    uint64_t tasks_spawned;
    uint64_t callbacks_run;
} weft__loop_stats;

struct weft_loop {
    weft__fifo ready;
    weft_task *current;              /* running task, NULL in the scheduler */
    /* Observation (debug/): NULL while nothing watches; see weft__observer. Tested
     * at every switch, so it shares the first cache line with the ready queue. */
    const weft__observer *observer;
    weft__ctx sched_ctx;             /* the thread's own stack, running the loop */
    weft__stack_pool stacks;
    weft__heap timers;
    int64_t now;                     /* virtual time (virtual mode), ns */
    int64_t real_origin;             /* unused in real mode */
    uint8_t virtual_time;
    uint8_t shutting_down;           /* main returned: leftovers being cancelled */
    uint8_t serial;                  /* 1..7, in the low bits of its task handles */
    uint32_t next_task_id;
    size_t live_tasks;               /* spawned and not DONE */
    size_t external_refs;            /* calls running on other threads that will post back */
    uint64_t iteration;
    size_t batch_left;               /* items of the current iteration not run yet */
    /* I/O: watchers and the poller (io/). Here, beside the iteration's counters:
     * every switch reads io.active (weft__loop_next_direct). */
    weft__io io;
    weft__stack *shared_stack;       /* compact tasks run here (compact.c) */
    weft_task *shared_owner;         /* whose frames are on it now */
    size_t compact_hint;             /* bytes of frames the last compact task saved */
    weft__small small;               /* small records: compact tasks' frames, callbacks, listeners */
    weft__callback *free_callbacks;  /* callback records, type-stable (callback.c) */
    uint64_t next_callback_id;

    /* task record allocation */
    weft__task_slab *task_slabs;
    weft_task *free_tasks;
    size_t slab_next_size;

    /* the descriptors tasks and weft_add_reader/writer watch by number (fdwait.c) */
    struct weft__fd_table fds;

    /* callbacks posted from other threads (threadsafe.c) */
    struct weft__anchor *anchor;     /* what weft_loop_current hands out; outlives the loop */
    weft_loop *handle;               /* that handle, as users hold it */
    pthread_mutex_t ts_lock;
    weft__ts_call *ts_calls;
    size_t ts_count, ts_cap;
    atomic_size_t ts_pending;
    atomic_int closed;               /* weft_run is finishing: refuse new calls */

    /* notifiers (notify.c): woken from any thread or a signal handler */
    struct weft__notifier *notifiers;      /* live ones, touched only on the loop's thread */
    struct weft__notifier *notify_cursor;  /* the next one weft__run_notifications looks at */
    size_t notifier_count;           /* live: the loop waits for them rather than reporting a deadlock */
    atomic_int notify_pending;       /* some notifier was notified since the loop last looked */

    weft__loop_stats stats;          /* weft_loop_metrics' counters that cost nothing */

    /* Modules above the core keep their per-loop state here (see weft__module). */
    void *slots[WEFT__SLOT_COUNT];

#ifdef WEFT__ASAN
    void *asan_sched_fake;
    const void *asan_main_bottom;
    size_t asan_main_size;
#endif
};

extern WEFT__TLS weft_loop *weft__loop;

/* The current task, or NULL (outside a loop or in a callback). */
static inline weft_task *weft__current(void)
{
    weft_loop *L = weft__loop;
    return L ? L->current : NULL;
}

int64_t weft__mono_ns(void);       /* CLOCK_MONOTONIC in ns */

/*
 * Threads of weft's own that a fork cannot catch holding a lock: the debug layer's
 * watchdogs, which pthread_atfork handlers of theirs hold still, waiting, around every
 * fork. weft_procpool_new, which refuses to fork a process with other threads, does not
 * count them. Kept by their owner, read by anyone.
 */
extern atomic_size_t weft__fork_quiet_threads;

/*
 * Task handles. The weft_task * a user holds is the record's address with a tag:
 * in its top 16 bits (above every user-space address on x86-64 and AArch64) one
 * taken from the task's id, which is new at every use of a record, and in its low
 * 3 bits (records are 8-byte aligned) the serial of the task's loop. A handle
 * whose task has been consumed and freed, or whose record now holds another task,
 * no longer matches its record; one from another loop (or used from a thread
 * without a loop) does not match the caller's loop and is refused before its
 * record is touched. weft__task_from says which (weft__handle_fault) instead of
 * answering for another task. weft's own code passes untagged record pointers,
 * which are taken as they are. (A record's tag repeats every 65535 uses of that
 * record, and loop serials repeat every 7 loops: a handle kept that long, or of
 * the 8th loop running at once, could match again.)
 */
#define WEFT__TAG_SHIFT 48
#define WEFT__ADDR_MASK ((((uintptr_t)1 << WEFT__TAG_SHIFT) - 1) & ~(uintptr_t)7)

enum { WEFT__HANDLE_STALE = 1, WEFT__HANDLE_FOREIGN, WEFT__HANDLE_NO_LOOP };
/* Why this thread's latest weft__task_from refused a handle. */
extern WEFT__TLS uint8_t weft__handle_fault;

static inline uintptr_t weft__handle_tag(const weft_task *t)
{
    return (uintptr_t)(t->id % 65535u) + 1;
}

/* The handle users get for record t (NULL for NULL), made on t's own loop. */
static inline weft_task *weft__handle(weft_task *t)
{
    return t ? (weft_task *)((uintptr_t)t | weft__handle_tag(t) << WEFT__TAG_SHIFT | weft__loop->serial) : NULL;
}

/* The record handle h names: h itself if untagged (weft's own pointers), else the
 * record if the handle still names it on the caller's loop, else NULL with *stale
 * set and weft__handle_fault saying why. */
static inline weft_task *weft__task_from(const weft_task *h, bool *stale)
{
    uintptr_t v = (uintptr_t)h;
    *stale = false;
    if (WEFT__LIKELY((v >> WEFT__TAG_SHIFT) == 0 && (v & 7) == 0))
        return (weft_task *)h;
    weft_loop *L = weft__loop;
    if (WEFT__UNLIKELY(!L || (v & 7) != L->serial)) {
        weft__handle_fault = L ? WEFT__HANDLE_FOREIGN : WEFT__HANDLE_NO_LOOP;
        *stale = true;
        return NULL;
    }
    weft_task *t = (weft_task *)(v & WEFT__ADDR_MASK);
    if (WEFT__UNLIKELY(WEFT__STATE(t) == WEFT__FREE || weft__handle_tag(t) != v >> WEFT__TAG_SHIFT)) {
        weft__handle_fault = WEFT__HANDLE_STALE;
        *stale = true;
        return NULL;
    }
    return t;
}

/* The loop's time in ns. */
static inline int64_t weft__now(weft_loop *L)
{
    return L->virtual_time ? L->now : weft__mono_ns();
}
int64_t weft__seconds_to_ns(double s);
/* As weft__seconds_to_ns, keeping the sign: for deadlines already past. */
int64_t weft__seconds_to_ns_signed(double s);

/* While tasks are ready the loop polls the kernel only this often: a poll is a
 * system call (~1 µs here), dearer than a dozen task switches, and only I/O can
 * need it — cross-thread calls are seen through an atomic counter every
 * iteration. asyncio polls every iteration; libuv's and Tokio's bounds are of the
 * same order (Tokio: event_interval 61). */
#define WEFT__POLL_INTERVAL 61

/* The task to switch to directly from a suspending task, without a round trip
 * through the scheduler, or NULL when the scheduler has work to do first. */
static inline weft_task *weft__loop_next_direct(weft_loop *L)
{
    if (L->batch_left == 0) {
        /* The batch is over. Start the next iteration from here when it needs
         * nothing but running tasks: no poll due, no call from another thread,
         * no timer due. Otherwise the scheduler does it. */
        if (L->ready.count == 0 || atomic_load_explicit(&L->ts_pending, memory_order_acquire) != 0)
            return NULL;
        if (L->io.active && (L->iteration + 1) % WEFT__POLL_INTERVAL == 0)
            return NULL;
        if (L->timers.count && L->timers.e[0].when <= weft__now(L))
            return NULL;
        L->iteration++;
        L->batch_left = L->ready.count;
    }
    weft__node *n = L->ready.head;
    if (n->kind != WEFT__NODE_TASK || WEFT__STATE((weft_task *)n) != WEFT__READY ||
        (WEFT__FLAGS((weft_task *)n) & WEFT__COMPACT))
        return NULL;
    weft__fifo_pop(&L->ready);
    L->batch_left--;
    return (weft_task *)n;
}

/*
 * fdwait.c. weft__fd_init prepares an owner's descriptor. weft__fd_wait suspends
 * the current task until f is ready for `events` (WEFT__POLL_IN / _OUT). Returns
 * the events that happened (> 0; WEFT__POLL_ERR for an error or hang-up, with the
 * events asked for), -ECANCELED, -EBUSY when another task already waits for one of
 * them (no message set), -EBADFD when f is forgotten meanwhile, or the poller's
 * negative errno. weft__fd_forget wakes its waiters with -EBADFD, drops its
 * callbacks and forgets the watcher: call it before closing the descriptor.
 */
void weft__fd_init(weft__fd *f, int fd);
int weft__fd_wait(weft_loop *L, weft__fd *f, unsigned events);
void weft__fd_forget(weft_loop *L, weft__fd *f);

/* Makes a task runnable with the given wake reason (0, -ECANCELED, -ETIMEDOUT).
 * The task must be WAITING; its wait kind's unwait hook must already be dealt with. */
void weft__wake(weft_task *t, int reason);

/*
 * weft__wait — the one suspension primitive. The caller has registered the current
 * task wherever it waits (and will be woken from there with weft__wake). If the task
 * is cancelled, returns -ECANCELED at once after calling kind->unwait(self,
 * -ECANCELED); otherwise suspends until woken and returns the wake reason. A
 * canceller calls the unwait hook itself before waking the task.
 */
int weft__wait(const weft__wait_kind *kind, void *wait_obj);

/*
 * weft__wait_through_cancel — weft__wait for a wait that must happen even in a
 * cancelled task (a TaskGroup's exit waiting for its children, a server's end
 * waiting for its handlers), as asyncio's edge-triggered cancellation allows an
 * `await` in a `finally`. weft's cancellation is level-triggered: while the count
 * is above 0 weft__wait returns at once, and a loop around it would spin. So for
 * this one wait the task's count is set aside: a cancellation made meanwhile wakes
 * it once with -ECANCELED (weft_cancel increments the count, calls unwait, wakes),
 * and afterwards the count is the one set aside plus the new requests, so none is
 * lost or invented. Returns the wake reason.
 */
static inline int weft__wait_through_cancel(weft_task *self, const weft__wait_kind *kind, void *wait_obj)
{
    uint16_t held = self->cancelling;
    self->cancelling = 0;
    int rc = weft__wait(kind, wait_obj);
    unsigned total = (unsigned)held + self->cancelling;
    self->cancelling = (uint16_t)(total < UINT16_MAX ? total : UINT16_MAX);
    return rc;
}


/* Switches from the running task to the next ready task or to the scheduler (the task is already queued or
 * registered wherever it waits). */
void weft__suspend(weft_task *t);

weft_task *weft__task_alloc(weft_loop *L);
void weft__task_free(weft_loop *L, weft_task *t);
void weft__task_finish(weft_loop *L, weft_task *t);
/* Gives a task's stack back (to the pool, or drops a compact task's saved frames). */
void weft__task_release_stack(weft_loop *L, weft_task *t);
void weft__task_run_first(weft_loop *L, weft_task *t);
void weft__task_report_unretrieved(weft_task *t, const char *why);
/* After a report about t on stderr: lets debug mode add where t was created. */
void weft__task_reported(const weft_task *t);
/* Cancels every unfinished task with the message `why`; returns how many. */
size_t weft__loop_cancel_leftovers(weft_loop *L, const char *why);
/* Writes the names of the unfinished tasks (the first few, "and N more") into buf. */
void weft__loop_waiting_names(weft_loop *L, char *buf, size_t size);

/* Runs the loop until `until` is DONE (or, when until is NULL, until no task is
 * live). Returns 0, or WEFT_EDEADLOCK_LOOP when nothing can ever make progress. */
int weft__loop_run(weft_loop *L, weft_task *until);
/* Allocates a loop (the modules' init does the rest). NULL on ENOMEM. */
weft_loop *weft__loop_alloc(const weft_options *opts);
void weft__loop_free(weft_loop *L);

/* Frees every task record left when the loop ends, reporting errors nobody
 * retrieved and tasks destroyed while still pending. */
void weft__loop_reap(weft_loop *L);
/* threadsafe.c: the loop a user's weft_loop * names (weft's own pass as they are),
 * or NULL when that loop has finished. */
weft_loop *weft__loop_from(weft_loop *handle);
/* threadsafe.c: runs the callbacks other threads posted (once per iteration). */
void weft__run_threadsafe_calls(weft_loop *L);
/* notify.c: calls the callback of every notifier notified since the last time
 * (once per iteration, right after the thread-safe calls). */
void weft__run_notifications(weft_loop *L);
/* notify.c: whether a live notifier of the current loop keeps that loop waiting for
 * it (as weft_notifier_new's do) or lets it report a deadlock when every task waits.
 * proc/signal.c's notifier holds only while a user's handler or waiting task needs
 * a signal, not for weft_run's own Ctrl-C handling. A stale handle is ignored. */
void weft__notifier_hold(weft_notifier *h, bool hold);

/*
 * Claiming a task's outcome (task.c): the one path every consumer of a handle
 * takes (await, wait_for, shield, gather). A task's outcome has at most one
 * claimant, told when it finishes; the claimant then takes the outcome
 * (weft__task_take: result, message and error group handed to the current task,
 * record freed), or leaves early and lets the task go (weft__task_let_go: it runs
 * on alone and its outcome is dropped quietly), or, when the task finished but the
 * claimant was cancelled before it could run, drops it (weft__task_drop).
 */
typedef struct weft__claim {
    void (*done)(struct weft__claim *self, weft_task *finished); /* from weft__task_finish */
} weft__claim;

/* Whether the current task may consume t: not NULL, not itself, not a TaskGroup's
 * child, not claimed already. */
static inline bool weft__task_claimable(const weft_task *t)
{
    return t && t != weft__current() && !(WEFT__FLAGS(t) & (WEFT__GROUP_CHILD | WEFT__DETACHED)) &&
           WEFT__WAITER_KIND(t) == WEFT__WAITER_NONE;
}
/* Says why `what` may not consume t (-EINVAL with a message). */
int weft__task_claim_refused(const weft_task *t, const char *what);
/* 0 if `what` may consume t from the current task; else -EINVAL with a message. */
static inline int weft__task_check_claim(const weft_task *t, const char *what)
{
    return WEFT__LIKELY(weft__task_claimable(t)) ? 0 : weft__task_claim_refused(t, what);
}
void weft__task_claim_wake(weft_task *t, weft_task *waiter); /* wake `waiter` when t is done */
void weft__task_claim(weft_task *t, weft__claim *c);          /* call c->done when t is done */
bool weft__task_claimed_by(const weft_task *t, const void *by); /* a waiter task or a claim */
void weft__task_unclaim(weft_task *t);                        /* back to unclaimed, nothing else */
void weft__task_let_go(weft_task *t, bool cancel, const char *cancel_msg);
int weft__task_take(weft_loop *L, weft_task *t, void **result);
void weft__task_drop(weft_loop *L, weft_task *t);
/* Sets the current task's message for -ECANCELED (its cancel message, or a default). */
int weft__cancelled_errmsg(weft_task *self);

/* Error groups (error.c) */
/* Builds a group from `count` items, copying their strings and taking ownership
 * of each item's nested group. NULL on ENOMEM (the nested groups are freed). */
weft_error_group *weft__errgroup_new(const weft_error_item *items, size_t count);
void weft__errgroup_free(weft_error_group *g);
weft_error_group *weft__errgroup_copy(const weft_error_group *g); /* NULL on ENOMEM */
/* Hands `g` (owned, may be NULL) to the current task as the group of its latest
 * error; call right after the message was set. */
void weft__take_errgroup(weft_error_group *g);

/* Error helpers (error.c) */
weft__task_extra *weft__extra(weft_task *t);           /* NULL on ENOMEM */
/* Records an error message for the current task (or thread) without making it
 * the task's outcome: for errors a weft call returns. Returns code. */
int weft__set_errmsg(int code, const char *fmt, ...) WEFT_PRINTF(2, 3);
/* Hands `msg` (owned, may be NULL) to the current task (or thread) as the message
 * of its latest error, whose code is `code`. */
void weft__take_errmsg(int code, char *msg);
/* Forgets the thread's latest error (code 0, message ""): a pool thread between calls. */
void weft__clear_thread_error(void);
/* Takes (and clears) the error this thread recorded outside any task with
 * weft_fail: its code (0 if none) and, in *msg (may be NULL), weft_fail's message,
 * owned by the caller. For pool threads, after each call they run. */
int weft__thread_error_take(char **msg);
const char *weft__task_errmsg(weft_task *t);
/* Writes to stderr in one write(2), so reports from several threads do not interleave. */
void weft__report(const char *fmt, ...) WEFT_PRINTF(1, 2);


/* ------------------------------------------------------------------------ */
/* For seeing inside the loop (debug/'s weft_dump and the wait kinds' describe) */
/* ------------------------------------------------------------------------ */

/* loop.c: calls fn for every task record of L in use (spawned and not freed, DONE
 * included), in no particular order. fn must not free or spawn tasks. */
void weft__loop_for_each_task(weft_loop *L, void (*fn)(weft_loop *, weft_task *, void *), void *arg);
/* loop.c: "new", "ready", "running", "waiting", "done" (or "free"). */
const char *weft__task_state_name(const weft_task *t);
/* loop.c: loop time `when` (ns, as weft__now gives it) in seconds since the loop
 * started (virtual time: since 0). */
double weft__loop_seconds(weft_loop *L, int64_t when);
/* loop.c: writes when the timer of `owner` (a sleeping task's or a weft__callback's
 * node) fires: "in 1.50 s, at loop time 12.00 s", or "not scheduled". */
void weft__describe_timer(weft_loop *L, const weft__node *owner, char *buf, size_t size);
/* loop.c: writes `task 7 "fetch" (waiting)` for record t, which must be in use. */
void weft__describe_task(const weft_task *t, char *buf, size_t size);

#endif
