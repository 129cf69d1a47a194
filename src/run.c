/*
 * run.c — the top of the library: weft_run (asyncio.run). It creates a loop, runs
 * main to completion, cancels and finishes what main left behind, lets the modules
 * wait for work still outside the loop, and tears everything down in reverse.
 * It may use every layer; nothing calls it.
 */
#include "core/core.h"
#include "debug/debug.h"
#include "exec/exec.h"
#include "net/net.h"
#include "proc/process.h"
#include "proc/signals.h"

#include <stdlib.h>

/* ------------------------------------------------------------------------ */
/* The loop's modules                                                       */
/* ------------------------------------------------------------------------ */

/* Every module with per-loop state, in the order their init runs; term runs in
 * reverse, drain (after main and every task) in reverse too. A module may rely on
 * those before it: the I/O module on memory, thread-safe calls and notifiers on
 * I/O (their wake-up), the thread pools on thread-safe calls (their completions),
 * the network on the thread pools (its lookups' answers come back through them)
 * and on I/O, the subprocesses on the network (their pipes are streams, closed
 * by their term before the network's), the signals on the notifiers (weft's
 * handler wakes the loop through one). */
static const weft__module *const modules[] = {
    &weft__module_memory,
    &weft__module_tasks,
    &weft__module_timers,
    &weft__module_io,
    &weft__module_fds,
    &weft__module_threadsafe,
    &weft__module_notify,
    &weft__module_pools,
    &weft__module_net,
    &weft__module_proc,
    &weft__module_signals,
    &weft__module_debug,
};
#define MODULE_COUNT (sizeof modules / sizeof modules[0])

static void modules_term(weft_loop *L, size_t count)
{
    while (count-- > 0)
        if (modules[count]->term)
            modules[count]->term(L);
}

/* Makes a loop with every module started, or says which could not start. */
static int loop_create(weft_loop **out, const weft_options *opts)
{
    weft_loop *L = weft__loop_alloc(opts);
    if (!L)
        return weft__set_errmsg(-ENOMEM, "weft_run: out of memory for the loop");
    for (size_t i = 0; i < MODULE_COUNT; i++) {
        int rc = modules[i]->init ? modules[i]->init(L, opts) : 0;
        if (rc != 0) {
            modules_term(L, i);
            weft__loop_free(L);
            return weft__set_errmsg(rc, "weft_run: could not start the loop's %s: %s", modules[i]->name,
                                    weft_strerror(rc));
        }
    }
    *out = L;
    return 0;
}

static void loop_destroy(weft_loop *L)
{
    modules_term(L, MODULE_COUNT);
    weft__loop = NULL;
    weft__loop_free(L);
}

/* ------------------------------------------------------------------------ */
/* weft_run                                                                 */
/* ------------------------------------------------------------------------ */

int weft_run_opts(weft_fn main_fn, void *arg, void **result, const weft_options *opts)
{
    if (result)
        *result = NULL;
    if (weft__loop) {
        int rc = weft__set_errmsg(WEFT_ENESTED, "weft_run called from inside a running loop: spawn the "
                                                "function as a task (weft_spawn) and await it instead");
        return rc;
    }
    if (!main_fn) {
        return weft__set_errmsg(-EINVAL, "weft_run: the main function is NULL");
    }
    if (opts && opts->stack_size && opts->stack_size < WEFT_STACK_MIN) {
        weft__set_errmsg(-EINVAL, "weft_run: weft_options.stack_size %zu is below WEFT_STACK_MIN (%zu bytes)",
                         opts->stack_size, (size_t)WEFT_STACK_MIN);
        return -EINVAL;
    }
    weft__debug_settings debug_settings;
    int rc = weft__debug_settings_read(opts, &debug_settings, true);
    if (rc != 0)
        return rc; /* a bad WEFT_DEBUG, WEFT_TRACE, ... setting, with its message */
    weft_loop *L = NULL;
    rc = loop_create(&L, opts);
    if (rc != 0)
        return rc;
    weft__stack_overflow_handler_install();
    weft__loop = L;
    /* Ctrl-C cancels main, as asyncio.run's SIGINT handler does (proc/signal.c). */
    rc = weft__sigint_watch(L, opts);
    if (rc != 0) {
        loop_destroy(L);
        return rc;
    }

    weft_task *main_task = weft__task_alloc(L);
    if (!main_task) {
        loop_destroy(L);
        return weft__set_errmsg(-ENOMEM, "weft_run: out of memory for the main task");
    }
    main_task->fn = main_fn;
    main_task->arg = arg;
    main_task->id = ++L->next_task_id;
    WEFT__STATE(main_task) = WEFT__NEW;
    WEFT__FLAGS(main_task) = WEFT__MAIN;
    L->live_tasks++;
    L->stats.tasks_spawned++;
    weft__fifo_push(&L->ready, &main_task->node);
    if (L->observer)
        L->observer->spawned(L, main_task);
    weft__sigint_main(L, main_task);

    int deadlock = weft__loop_run(L, main_task);
    if (deadlock) {
        char names[512];
        weft__loop_waiting_names(L, names, sizeof names);
        weft__report("weft: deadlock: every task is waiting and nothing can wake them (no ready task, no "
                     "timer, no I/O, no call from another thread): %s; cancelling them", names);
        weft__loop_cancel_leftovers(L, "weft_run: deadlock: every task was waiting and nothing could wake "
                                       "them; cancelled");
        weft__loop_run(L, main_task);
    }
    bool interrupted = weft__sigint_main_done(L);
    int err = main_task->err;
    if (result && !err && !deadlock) {
        *result = main_task->result;
        main_task->result = NULL;
    }
    char *msg = main_task->extra ? main_task->extra->es.msg : NULL;
    if (main_task->extra)
        main_task->extra->es.msg = NULL;
    weft__task_free(L, main_task);

    L->shutting_down = 1;
    weft__loop_cancel_leftovers(L, "weft_run: main returned; leftover task cancelled");
    weft__debug_main_returned(L);
    int stuck = weft__loop_run(L, NULL);
    for (size_t i = MODULE_COUNT; i-- > 0;)
        if (modules[i]->drain)
            modules[i]->drain(L);
    weft__loop_reap(L);
    loop_destroy(L);

    if (deadlock) {
        free(msg);
        return weft__set_errmsg(WEFT_EDEADLOCK_LOOP, "weft_run: deadlock: main was waiting and nothing could "
                                                     "wake it");
    }
    if (err == -ECANCELED && interrupted) {
        /* asyncio.run raises KeyboardInterrupt here. */
        free(msg);
        return weft__set_errmsg(WEFT_EINTERRUPTED, "weft_run: main was cancelled by SIGINT (Ctrl-C); "
                                                   "weft_exit_interrupted() ends the process as killed by it");
    }
    weft__take_errmsg(err, msg);
    if (err)
        return err;
    if (stuck) {
        return weft__set_errmsg(WEFT_EDEADLOCK_LOOP, "weft_run: tasks left behind by main ignored cancellation "
                                                     "and could never finish (reported on stderr)");
    }
    return 0;
}

int weft_run(weft_fn main_fn, void *arg, void **result)
{
    return weft_run_opts(main_fn, arg, result, NULL);
}
