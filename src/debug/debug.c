/*
 * debug.c — the debug layer's loop module and its observer: reads the settings
 * (weft_options and WEFT_DEBUG, WEFT_SLOW_STEP, WEFT_WATCHDOG, WEFT_TRACE,
 * WEFT_DUMP_SIGNAL), installs the observer the core calls when anything is on, keeps
 * the heartbeat the watchdog reads, times steps for the metrics when asked, and is debug
 * mode itself: where each task was created and where it last suspended, the report of
 * a step that ran too long (naming the task, where it was created, where it resumed
 * and where it stopped), and the report of tasks main left behind that do not end.
 *
 * The watchdog (watchdog.c), the SIGQUIT dump (dump.c) and the trace (trace.c) are
 * started and stopped from here and fed by this observer.
 */
#include "debug/debug.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* asyncio's loop.slow_callback_duration. */
#define SLOW_STEP_DEFAULT_NS ((int64_t)100 * 1000 * 1000)
/* The watchdog's threshold when debug mode turns it on without one given. */
#define WATCHDOG_DEFAULT_NS ((int64_t)1000 * 1000 * 1000)

weft__task_debug *weft__task_debug_of(const weft_task *t)
{
    return t->extra ? t->extra->debug : NULL;
}

/* ------------------------------------------------------------------------ */
/* Settings                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * The environment is for watching a program without rebuilding it, so a value there
 * that cannot be used is said on stderr and ignored: the program runs as if it were
 * unset. A bad weft_options field is the program's own mistake, and weft_run refuses
 * it with -EINVAL and a message. Where both are given, the environment wins.
 */

/* An on/off variable: -1 when unset or empty (no say), 0 for "0", 1 otherwise (asyncio
 * takes any non-empty PYTHONASYNCIODEBUG as on). */
static int env_switch(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return -1;
    static const char *const off[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
        if (strcasecmp(v, off[i]) == 0)
            return 0;
    return 1;
}

/* Checks a number of seconds: NULL when usable, else what is wrong with it. */
static const char *seconds_problem(double s)
{
    if (!isfinite(s))
        return "is not a number of seconds";
    if (s < 0)
        return "is negative";
    if (s > 1e6)
        return "is out of range";
    return NULL;
}

/* Reads a number of seconds from the environment variable `name` into *ns: kept when
 * the variable is unset or empty, or (said on stderr) unusable. */
static void env_seconds(const char *name, int64_t *ns, bool say)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return;
    char *end = NULL;
    errno = 0;
    double s = strtod(v, &end);
    const char *problem = end == v || *end != '\0' ? "is not a number of seconds" : seconds_problem(s);
    if (errno == ERANGE)
        problem = "is out of range";
    if (problem) {
        if (say)
            weft__report("weft: %s=%s ignored: it %s (give one from 0 to 1000000, such as 0.05)", name, v,
                         problem);
        return;
    }
    *ns = weft__seconds_to_ns(s);
}

static int option_seconds(const char *name, double s, int64_t *ns)
{
    if (s == 0)
        return 0;
    const char *problem = seconds_problem(s);
    if (problem)
        return weft__set_errmsg(-EINVAL, "weft_run: weft_options.%s = %g %s (give one from 0 to 1000000, such as "
                                         "0.05)", name, s, problem);
    *ns = weft__seconds_to_ns(s);
    return 0;
}

/* The trace's file name with each %p replaced by the process's id (one file per
 * process, for programs that run other weft programs, which inherit WEFT_TRACE) and
 * %% by %. Returns 0, or -ENAMETOOLONG with a message. */
static int trace_path(const char *given, weft__debug_settings *set)
{
    size_t n = 0, cap = sizeof set->trace_file;
    for (const char *c = given; *c; c++) {
        char piece[32];
        if (c[0] == '%' && c[1] == 'p') {
            snprintf(piece, sizeof piece, "%ld", (long)getpid());
            c++;
        } else if (c[0] == '%' && c[1] == '%') {
            snprintf(piece, sizeof piece, "%%");
            c++;
        } else {
            piece[0] = *c;
            piece[1] = '\0';
        }
        size_t len = strlen(piece);
        if (n + len >= cap)
            return weft__set_errmsg(-ENAMETOOLONG, "weft_run: %s: the file name is longer than %zu bytes",
                                    set->trace_label, cap - 1);
        memcpy(set->trace_file + n, piece, len);
        n += len;
    }
    set->trace_file[n] = '\0';
    return 0;
}

int weft__debug_settings_read(const weft_options *opts, weft__debug_settings *set, bool say)
{
    memset(set, 0, sizeof *set);
    int env_debug = env_switch("WEFT_DEBUG");
    set->debug = env_debug >= 0 ? env_debug : (opts && opts->debug);

    /* 0 means the default, from either source. */
    int64_t slow = 0;
    int rc = option_seconds("slow_step", opts ? opts->slow_step : 0, &slow);
    if (rc != 0)
        return rc;
    env_seconds("WEFT_SLOW_STEP", &slow, say);
    set->slow_step_ns = slow > 0 ? slow : SLOW_STEP_DEFAULT_NS;

    int64_t watchdog = set->debug ? WATCHDOG_DEFAULT_NS : 0;
    rc = option_seconds("watchdog", opts ? opts->watchdog : 0, &watchdog);
    if (rc != 0)
        return rc;
    env_seconds("WEFT_WATCHDOG", &watchdog, say); /* WEFT_WATCHDOG=0: off, debug mode or not */
    set->watchdog_ns = watchdog;

    if (opts && opts->trace_file) {
        if (!*opts->trace_file)
            return weft__set_errmsg(-EINVAL, "weft_run: weft_options.trace_file is an empty string: give a file "
                                             "name, or NULL for no trace");
        snprintf(set->trace_label, sizeof set->trace_label, "weft_options.trace_file \"%s\"", opts->trace_file);
        if ((rc = trace_path(opts->trace_file, set)) != 0 ||
            (rc = weft__trace_check(set->trace_file, set->trace_label)) != 0)
            return rc;
    }
    const char *env_trace = getenv("WEFT_TRACE");
    if (env_trace && *env_trace) {
        weft__debug_settings env = *set;
        snprintf(env.trace_label, sizeof env.trace_label, "WEFT_TRACE=%s", env_trace);
        if (trace_path(env_trace, &env) == 0 && weft__trace_check(env.trace_file, env.trace_label) == 0) {
            memcpy(set->trace_file, env.trace_file, sizeof set->trace_file);
            memcpy(set->trace_label, env.trace_label, sizeof set->trace_label);
        } else if (say) {
            weft__report("weft: %s; tracing is off", weft_errmsg() + (strncmp(weft_errmsg(), "weft_run: ", 10) ? 0 : 10));
        }
    }

    int env_dump = env_switch("WEFT_DUMP_SIGNAL");
    set->dump_signal = env_dump >= 0 ? env_dump : (set->debug || (opts && opts->dump_signal));
    set->dump_signal_asked = env_dump >= 0 ? env_dump : (opts && opts->dump_signal);
    set->time_steps = set->debug || set->trace_file[0] || (opts && opts->time_steps);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Debug mode: creation sites, resume points, slow steps                    */
/* ------------------------------------------------------------------------ */

void weft__debug_task_origin(const weft_task *t, char *buf, size_t size)
{
    weft__task_debug *td = weft__task_debug_of(t);
    if (!td) {
        snprintf(buf, size, "(where it was created is known in debug mode: WEFT_DEBUG=1)");
        return;
    }
    weft__debug_origin(&td->created, td->from_loop, buf, size);
}

void weft__debug_origin(const weft__backtrace *created, bool from_loop, char *buf, size_t size)
{
    if (!from_loop) {
        weft__backtrace_describe(created, false, buf, size);
        return;
    }
    /* Spawned by the loop itself (a callback, a server accepting a connection): the
     * frames beyond weft_run are the program's main, which did not create it. */
    weft__backtrace inside = *created;
    for (int i = 0; i < inside.count; i++) {
        weft__frame f[8];
        int n = weft__symbolize(&inside, i, f, 8);
        bool run = false;
        for (int k = 0; k < n; k++)
            run |= f[k].function && strncmp(f[k].function, "weft_run", 8) == 0;
        if (run) {
            inside.count = i;
            break;
        }
    }
    char where[400];
    if (weft__backtrace_describe(&inside, false, where, sizeof where))
        snprintf(buf, size, "%s, run by the loop (not by a task)", where);
    else if (inside.count > 0) {
        weft__frame f;
        weft__symbolize(&inside, 0, &f, 1);
        for (int i = 0; i < inside.count; i++) {
            /* The outermost of weft's own frames inside the loop: what spawned it. */
            weft__frame e;
            weft__symbolize(&inside, i, &e, 1);
            if (e.weft_own && e.function && strncmp(e.function, "weft__", 6) != 0 &&
                strncmp(e.function, "weft_spawn", 10) != 0)
                f = e;
        }
        weft__frame_format(&f, where, sizeof where);
        snprintf(buf, size, "weft's own %s, run by the loop (a server's connection, a pool's call, ...)", where);
    } else {
        snprintf(buf, size, "the loop itself (not a task)");
    }
}

static void report_slow_step(weft_loop *L, weft_task *t, int64_t ns, const weft__backtrace *resumed,
                             const weft__backtrace *stopped)
{
    char created[400], from[400], to[400];
    weft__debug_task_origin(t, created, sizeof created);
    weft__task_debug *td = weft__task_debug_of(t);
    if (resumed && resumed->count) {
        weft__backtrace_describe(resumed, true, from, sizeof from);
    } else if (td && td->fn) {
        /* Its first step: the function it runs, where it begins. */
        weft__backtrace entry = {.pcs = {(uintptr_t)td->fn}, .count = 1, .first_is_return = 0};
        weft__frame f;
        char where[300];
        weft__symbolize(&entry, 0, &f, 1);
        weft__frame_format(&f, where, sizeof where);
        snprintf(from, sizeof from, "its start, %s", where);
    } else {
        snprintf(from, sizeof from, "its start");
    }
    const char *how = WEFT__STATE(t) == WEFT__DONE      ? "returned"
                      : WEFT__STATE(t) == WEFT__WAITING ? "suspended"
                                                         : "yielded";
    if (WEFT__STATE(t) == WEFT__DONE)
        snprintf(to, sizeof to, "its end");
    else
        weft__backtrace_describe(stopped, true, to, sizeof to);
    char waits[160] = "";
    if (WEFT__STATE(t) == WEFT__WAITING && t->wait_kind)
        snprintf(waits, sizeof waits, ", waiting on: %s", t->wait_kind->what);
    weft__report("weft: slow step: %s ran %.3f s without yielding to the loop (debug mode reports steps over "
                 "%.3f s)\n  created at %s\n  resumed at %s\n  %s at %s%s",
                 weft_task_name(t), (double)ns / 1e9, (double)weft__debug_of(L)->set.slow_step_ns / 1e9, created,
                 from, how, to, waits);
}

static void report_slow_callback(weft__debug *d, weft_callback_fn cb, int64_t ns)
{
    weft__backtrace bt = {.pcs = {(uintptr_t)cb}, .count = 1, .first_is_return = 0};
    weft__frame f;
    char where[300];
    weft__symbolize(&bt, 0, &f, 1);
    weft__frame_format(&f, where, sizeof where);
    weft__report("weft: slow step: the callback %s ran %.3f s without returning to the loop (debug mode reports "
                 "steps over %.3f s)", where, (double)ns / 1e9, (double)d->set.slow_step_ns / 1e9);
}

/* ------------------------------------------------------------------------ */
/* The observer                                                             */
/* ------------------------------------------------------------------------ */

/* A step of task t (NULL: a callback) took ns. The name is read only for a new
 * longest step: weft_task_name makes a task's record of rare data, which a plain
 * task never needs. */
static void step_done(weft__debug *d, int64_t ns, const weft_task *t)
{
    d->steps++;
    d->busy_ns += ns;
    if (ns > d->longest_ns) {
        d->longest_ns = ns;
        d->longest_task_id = t ? t->id : 0;
        snprintf(d->longest_name, sizeof d->longest_name, "%s", t ? weft_task_name(t) : "(callback)");
    }
}

static void obs_spawned(weft_loop *L, weft_task *t)
{
    weft__debug *d = weft__debug_of(L);
    if (d->set.debug) {
        weft__task_extra *x = weft__extra(t);
        weft__task_debug *td = x ? calloc(1, sizeof *td) : NULL;
        if (td) {
            /* Two frames of weft's own at least (this hook, weft__spawn): left to
             * weft__backtrace_user_frame to skip, with any wrapper of weft's. */
            weft__backtrace_quick(&td->created, 1);
            td->fn = t->fn;
            td->from_loop = L->current == NULL && !(WEFT__FLAGS(t) & WEFT__MAIN);
            x->debug = td;
        }
    }
    if (d->trace)
        weft__trace_spawned(d->trace, L, t);
}

/* The heartbeat moves on. Only the loop's thread writes it: a load and a release
 * store (plain moves on x86-64), not a locked read-modify-write at every switch. */
static inline void beat(weft__debug *d)
{
    uint64_t b = atomic_load_explicit(&d->beat, memory_order_relaxed);
    atomic_store_explicit(&d->beat, b + 1, memory_order_release);
}

/* A step begins at `now` (0 when steps are not timed). */
static void step_begins(weft__debug *d, weft_loop *L, weft_task *t, int64_t now)
{
    d->step_start_ns = now;
    atomic_store_explicit(&d->beat_task, t, memory_order_relaxed);
    beat(d);
    if (d->trace)
        weft__trace_step_begin(d->trace, L, t, now);
}

/* The clock, when steps are timed (time_steps, debug mode, a trace); the watchdog
 * alone needs only the heartbeat, and a clock read is most of a switch's cost. */
static inline int64_t step_clock(const weft__debug *d)
{
    return d->set.time_steps ? weft__mono_ns() : 0;
}

static void obs_step_begin(weft_loop *L, weft_task *t)
{
    weft__debug *d = weft__debug_of(L);
    step_begins(d, L, t, step_clock(d));
}

static void obs_step_end(weft_loop *L, weft_task *t, weft_task *next)
{
    weft__debug *d = weft__debug_of(L);
    int64_t now = step_clock(d);
    int64_t ns = now - d->step_start_ns;
    if (d->trace)
        weft__trace_step_end(d->trace, L, t, now);
    if (next) {
        step_begins(d, L, next, now);
    } else {
        atomic_store_explicit(&d->beat_task, NULL, memory_order_relaxed);
        beat(d);
    }
    if (!d->set.time_steps)
        return;
    step_done(d, ns, t);
    if (!d->set.debug)
        return;
    weft__task_debug *td = weft__task_debug_of(t);
    bool slow = ns > d->set.slow_step_ns;
    /* Where it stopped: its resume point next time, and the report's last line
     * (a task that returned has neither). */
    bool done = WEFT__STATE(t) == WEFT__DONE;
    weft__backtrace here;
    here.count = 0;
    if (!done && (td || slow))
        weft__backtrace_quick(&here, 1);
    if (slow)
        report_slow_step(L, t, ns, td ? &td->suspended : NULL, &here);
    if (td && !done) {
        td->suspended = here;
        td->waiting_since_ns = weft__now(L);
    }
}

static void obs_woken(weft_loop *L, weft_task *t, int reason)
{
    weft__debug *d = weft__debug_of(L);
    if (d->trace)
        weft__trace_woken(d->trace, L, t, reason);
}

static void obs_callback_begin(weft_loop *L, weft_callback_fn cb, void *arg)
{
    weft__debug *d = weft__debug_of(L);
    d->cb = cb;
    d->cb_arg = arg;
    d->step_start_ns = step_clock(d);
    atomic_store_explicit(&d->beat_cb, (uintptr_t)cb, memory_order_relaxed);
    beat(d);
    if (d->trace)
        weft__trace_callback_begin(d->trace, L, cb, d->step_start_ns);
}

static void obs_callback_end(weft_loop *L)
{
    weft__debug *d = weft__debug_of(L);
    int64_t ns = step_clock(d) - d->step_start_ns;
    atomic_store_explicit(&d->beat_cb, 0, memory_order_relaxed);
    beat(d);
    if (d->trace)
        weft__trace_callback_end(d->trace, L, d->step_start_ns + ns);
    if (d->set.time_steps)
        step_done(d, ns, NULL);
    if (d->set.debug && ns > d->set.slow_step_ns)
        report_slow_callback(d, d->cb, ns);
    d->cb = NULL;
    d->cb_arg = NULL;
}

static void obs_forget(weft_loop *L, weft_task *t)
{
    weft__debug *d = weft__debug_of(L);
    if (d->trace)
        weft__trace_forget(d->trace, L, t);
    if (t->extra && t->extra->debug) {
        free(t->extra->debug);
        t->extra->debug = NULL;
    }
}

static void obs_reported(weft_loop *L, const weft_task *t)
{
    weft__debug *d = weft__debug_of(L);
    if (!d->set.debug || !weft__task_debug_of(t))
        return;
    char created[300];
    weft__debug_task_origin(t, created, sizeof created);
    weft__report("  %s was created at %s", weft_task_name(t), created);
}

static const weft__observer observer = {
    .spawned = obs_spawned,
    .step_begin = obs_step_begin,
    .step_end = obs_step_end,
    .woken = obs_woken,
    .callback_begin = obs_callback_begin,
    .callback_end = obs_callback_end,
    .forget = obs_forget,
    .reported = obs_reported,
};

/* ------------------------------------------------------------------------ */
/* Leftovers that do not end                                                */
/* ------------------------------------------------------------------------ */

#define LEFTOVERS_WAIT_NS ((int64_t)1000 * 1000 * 1000)

static void report_leftovers(void *arg)
{
    weft_loop *L = arg;
    if (L->live_tasks == 0)
        return;
    char names[512];
    weft__loop_waiting_names(L, names, sizeof names);
    weft__report("weft: %zu task%s still running %.1f s after weft_run's main returned and cancelled %s, and "
                 "weft_run waits for %s: %s. Does %s check what its waits return, or uncancel itself "
                 "(weft_uncancel)? The loop as it is now:",
                 L->live_tasks, L->live_tasks == 1 ? " is" : "s are", (double)LEFTOVERS_WAIT_NS / 1e9,
                 L->live_tasks == 1 ? "it" : "them", L->live_tasks == 1 ? "it" : "them", names,
                 L->live_tasks == 1 ? "it" : "each");
    (void)weft_dump(stderr);
}

void weft__debug_main_returned(weft_loop *L)
{
    weft__debug *d = weft__debug_of(L);
    if (!d || !d->set.debug || L->live_tasks == 0)
        return;
    /* Not kept alive by this: the loop ends when its tasks do, dropping the callback. */
    (void)weft__callback_schedule(L, weft__now(L) + LEFTOVERS_WAIT_NS, report_leftovers, L);
}

/* ------------------------------------------------------------------------ */
/* The module                                                               */
/* ------------------------------------------------------------------------ */

/* Stops, in reverse, what debug_init started: the end of the loop, or an init that
 * failed halfway (each stop is a no-op for what did not start). */
static void debug_stop(weft_loop *L, weft__debug *d)
{
    weft__watchdog_stop(L, d);
    weft__dump_signal_stop(L);
    if (d->trace)
        weft__trace_close(L, d);
    L->observer = NULL;
    L->slots[WEFT__SLOT_DEBUG] = NULL;
    free(d);
}

static int debug_init(weft_loop *L, const weft_options *opts)
{
    weft__debug_settings set;
    int rc = weft__debug_settings_read(opts, &set, false); /* weft_run has said what is wrong */
    if (rc != 0)
        return rc;
    weft__debug *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->set = set;
    L->slots[WEFT__SLOT_DEBUG] = d;
    if (set.debug || set.watchdog_ns || set.dump_signal)
        weft__symbols_load();
    if (set.trace_file[0] && (rc = weft__trace_open(L, d)) != 0)
        goto failed;
    if (set.time_steps || set.watchdog_ns)
        L->observer = &observer;
    if (set.dump_signal && (rc = weft__dump_signal_start(L)) != 0)
        goto failed;
    if ((rc = weft__watchdog_start(L, d)) != 0)
        goto failed;
    return 0;

failed:
    debug_stop(L, d);
    return rc;
}

static void debug_term(weft_loop *L)
{
    debug_stop(L, weft__debug_of(L));
}

const weft__module weft__module_debug = {"debug layer", debug_init, NULL, debug_term};
