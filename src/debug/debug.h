/*
 * debug.h — the debug layer's internals (layer 12, above proc/, below run.c): stack
 * capture and symbolization (symbols.c), debug mode and step timing (debug.c), the
 * blocked-loop watchdog (watchdog.c), task dumps (dump.c), the timeline trace
 * (trace.c) and the loop's metrics (metrics.c). Never installed.
 *
 * The core tells this layer what happens through a weft__observer (core.h), which the
 * loop holds only while something here watches; with everything off the layer costs
 * the loop nothing but the branches that test for it.
 */
#ifndef WEFT__SRC_DEBUG_H
#define WEFT__SRC_DEBUG_H

#include "core/core.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------------------ */
/* Stacks and symbols (symbols.c)                                           */
/* ------------------------------------------------------------------------ */

/* Frames kept of a captured stack: enough to reach user code from deep in libc. */
#define WEFT__FRAMES_MAX 32

/*
 * A captured stack: program counters, innermost first. pcs[0] is where the code was
 * (a signal's interrupted instruction, or the capturing call itself); every later one
 * is a return address, looked up one byte back so that the call's own line is found.
 */
typedef struct weft__backtrace {
    uintptr_t pcs[WEFT__FRAMES_MAX];
    int count;
    uint8_t first_is_return;     /* pcs[0] too is a return address (a suspended task's) */
} weft__backtrace;

/* Loads libunwind and libdw (dlopen, once per process; their absence leaves the
 * fallbacks). Call it before arming a signal whose handler captures a stack. */
void weft__symbols_load(void);

/* Captures the calling thread's own stack, leaving out the `skip` innermost frames
 * (the capturing functions). Async-signal-safe. Returns the frames captured. */
int weft__backtrace_here(weft__backtrace *bt, int skip);

/* As weft__backtrace_here, some 50 times faster (libunwind's per-thread cache of
 * frame layouts: ~60 ns for a task's stack, where a step-by-step walk takes ~3 µs,
 * masking signals twice per frame around its cache), but not async-signal-safe:
 * for debug mode's captures at every spawn and suspension. */
int weft__backtrace_quick(weft__backtrace *bt, int skip);

/* Captures the stack a signal interrupted, from inside its handler (uc is the
 * handler's third argument). Async-signal-safe. Returns the frames captured. */
int weft__backtrace_signal(weft__backtrace *bt, void *uc);

/* Captures the stack of suspended task t (WAITING or READY, its frames in place;
 * not the running task). Returns the frames captured, or 0 when they cannot be read
 * here (a compact task whose frames are copied out; no unwinder on this
 * architecture), with *why saying so. */
int weft__backtrace_task(const weft_task *t, weft__backtrace *bt, const char **why);

/* One frame, symbolized. A frame of an inlined call gives one entry per inlined
 * function, innermost first, all at the same pc. Strings are the symbolizer's and
 * live as long as the process (file names without their directories: see `path`). */
typedef struct weft__frame {
    uintptr_t pc;
    const char *function;        /* NULL: unknown */
    const char *path;            /* source file as compiled (NULL: no line information) */
    const char *file;            /* its last component */
    int line;
    uint8_t inlined;             /* this entry was inlined into the next one */
    uint8_t weft_own;            /* code of weft itself (src/ of this library) */
    uint8_t system;              /* outside the program's own files: libc, libraries */
} weft__frame;

/* Symbolizes frame i of bt into up to max entries (inlined calls first). Returns the
 * entries written (≥ 1: a frame nothing is known of still gets its pc). Thread-safe;
 * not async-signal-safe (it reads debug information, which allocates). */
int weft__symbolize(const weft__backtrace *bt, int i, weft__frame *out, int max);

/* Whether file:line information is available (libdw and the binary's -g). */
bool weft__symbols_have_lines(void);

/* Writes "function at file:line" (or what is known of it) for one entry. */
void weft__frame_format(const weft__frame *f, char *buf, size_t size);

/*
 * The first frame of bt that is the user's own code (not weft's, not libc's or
 * another library's, not a sanitizer's), with, in *callee, the frame it called (the
 * blocking libc function, weft's public call), and in *outer (may be NULL) the
 * function the user's frame was inlined into. Returns 0 and fills them (function NULL
 * where there is none), or -1 when no frame of bt is the user's.
 */
int weft__backtrace_user_frame(const weft__backtrace *bt, weft__frame *at, weft__frame *callee, weft__frame *outer);

/* Writes where bt is, as reports say it: "sleep() called from task_a at a.c:23" (with
 * `with_callee`), ", inlined in f at a.c:30" when the user's frame was inlined; or "in
 * X (no frame of the program's own code)". Returns whether a user frame was found. */
bool weft__backtrace_describe(const weft__backtrace *bt, bool with_callee, char *buf, size_t size);

/* Prints every frame of bt, one per line, each line starting with `indent`. */
void weft__backtrace_print(FILE *out, const weft__backtrace *bt, const char *indent);

/* ------------------------------------------------------------------------ */
/* The layer's per-loop state (debug.c)                                     */
/* ------------------------------------------------------------------------ */

/* What this layer keeps of one task, in debug mode only (weft__task_extra.debug). */
typedef struct weft__task_debug {
    weft__backtrace created;     /* where weft_spawn was called */
    weft__backtrace suspended;   /* where it last suspended (its resume point) */
    int64_t waiting_since_ns;    /* loop time it began to wait (its latest wait) */
    weft_fn fn;                  /* the function it runs, for a first step's report */
    bool from_loop;              /* spawned while no task ran (a callback, a server's accept) */
} weft__task_debug;

/* The settings, from weft_options and the environment (WEFT_DEBUG, ...). */
typedef struct weft__debug_settings {
    bool debug;                  /* debug mode */
    int64_t slow_step_ns;        /* report steps longer than this (debug mode) */
    int64_t watchdog_ns;         /* 0: no watchdog */
    char trace_file[512];        /* the trace's file, %p replaced by the pid; "": no trace */
    char trace_label[600];       /* how the user gave it: WEFT_TRACE=... or weft_options.trace_file "..." */
    bool time_steps;             /* time every step (metrics), implied by the above */
    bool dump_signal;            /* SIGQUIT dumps the loop's tasks */
    bool dump_signal_asked;      /* by the program (option or WEFT_DUMP_SIGNAL), not by debug mode */
} weft__debug_settings;

/* Reads the settings from opts (may be NULL) and the environment. Returns 0, or
 * -EINVAL with a message naming the option that is wrong; an environment value that
 * cannot be used is ignored, and said on stderr when `say`. */
int weft__debug_settings_read(const weft_options *opts, weft__debug_settings *set, bool say);

/* run.c, once main has returned and the tasks it left are cancelled: in debug mode,
 * those still running a second later are reported, with a dump of the loop (asyncio
 * would wait for them without a word). */
void weft__debug_main_returned(weft_loop *L);

/* Writes where a task was created from its creation stack: "fetch at crawl.c:42", or
 * for one the loop spawned (from_loop: no task ran), the callback or weft's own code
 * that did, "run by the loop". Thread-safe (the watchdog's thread uses it). */
void weft__debug_origin(const weft__backtrace *created, bool from_loop, char *buf, size_t size);

/* Writes where t was created ("fetch at crawl.c:42"), or why that is unknown. */
void weft__debug_task_origin(const weft_task *t, char *buf, size_t size);

struct weft__watchdog;
struct weft__trace;

typedef struct weft__debug {
    weft__debug_settings set;
    /* The step running now: a task (current) or a callback (cb), since step_start. */
    int64_t step_start_ns;
    weft_callback_fn cb;
    void *cb_arg;
    /* Step figures (weft_loop_metrics). */
    uint64_t steps;
    int64_t busy_ns;             /* sum of every step's time */
    int64_t longest_ns;
    uint32_t longest_task_id;    /* 0: a callback */
    char longest_name[48];
    /* Heartbeat for the watchdog: changed at every step's start and end and around
     * polls; read by the watchdog's thread. */
    _Atomic uint64_t beat;
    _Atomic(weft_task *) beat_task; /* the task running at the latest beat, or NULL */
    struct weft__watchdog *watchdog;
    struct weft__trace *trace;
    /* The callback running at the latest beat (its function), or 0: with beat_task,
     * what tells the watchdog a step runs rather than the loop waiting in its poller. */
    _Atomic(uintptr_t) beat_cb;
} weft__debug;

static inline weft__debug *weft__debug_of(weft_loop *L)
{
    return L->slots[WEFT__SLOT_DEBUG];
}

/* The task's debug record, or NULL (not debug mode, or no memory for one). */
weft__task_debug *weft__task_debug_of(const weft_task *t);

extern const weft__module weft__module_debug;


/* ------------------------------------------------------------------------ */
/* The SIGQUIT dump (dump.c)                                                */
/* ------------------------------------------------------------------------ */

/* When set.dump_signal: on the process's main thread, when SIGQUIT's disposition
 * is SIG_DFL, makes SIGQUIT print weft_dump to stderr at the loop's next iteration
 * instead of killing the process. Returns 0 (also when it leaves SIGQUIT alone), or
 * -ENOMEM / sigaction's error with the message set. stop puts SIG_DFL back. */
int weft__dump_signal_start(weft_loop *L);
void weft__dump_signal_stop(weft_loop *L);

/* ------------------------------------------------------------------------ */
/* The blocked-loop watchdog (watchdog.c)                                   */
/* ------------------------------------------------------------------------ */

/* Starts d's watchdog thread when d->set.watchdog_ns > 0 (a no-op otherwise), on the
 * loop's thread (it interrupts this thread to read its stack). Returns 0, or a negative
 * errno with a message. */
int weft__watchdog_start(weft_loop *L, weft__debug *d);
/* Stops and joins it (prompt: it sleeps on a condition variable); on the loop's thread. */
void weft__watchdog_stop(weft_loop *L, weft__debug *d);

/* ------------------------------------------------------------------------ */
/* The timeline trace (trace.c)                                             */
/* ------------------------------------------------------------------------ */

typedef struct weft__trace weft__trace;

/* Whether the trace file at path can be written (created if missing, not truncated):
 * 0, or a negative errno with the message "weft_run: WEFT_TRACE=path: cannot open ...".
 * Called while the settings are read, before the loop exists. */
int weft__trace_check(const char *path, const char *label);
/* Starts d's trace to d->set.trace_file (sets d->trace). Returns 0 or a negative
 * errno with a message. */
int weft__trace_open(weft_loop *L, weft__debug *d);
/* Writes what is left and closes the loop's part of the file (d->trace = NULL). */
void weft__trace_close(weft_loop *L, weft__debug *d);
/* The observer's events; `mono` is the monotonic clock the hook already read. */
void weft__trace_spawned(weft__trace *tr, weft_loop *L, weft_task *t);
void weft__trace_step_begin(weft__trace *tr, weft_loop *L, weft_task *t, int64_t mono);
void weft__trace_step_end(weft__trace *tr, weft_loop *L, weft_task *t, int64_t mono);
void weft__trace_woken(weft__trace *tr, weft_loop *L, weft_task *t, int reason);
void weft__trace_callback_begin(weft__trace *tr, weft_loop *L, weft_callback_fn cb, int64_t mono);
void weft__trace_callback_end(weft__trace *tr, weft_loop *L, int64_t mono);
void weft__trace_forget(weft__trace *tr, weft_loop *L, weft_task *t);

#endif
