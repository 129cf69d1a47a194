/*
 * metrics.c — weft_get_loop_metrics: the loop's counters in one struct, as
 * tokio-metrics gives them to Tokio's users. Everything is counted elsewhere, where it
 * happens (the core's weft__loop_stats, the step figures debug.c's observer keeps while
 * steps are timed, the thread pools' per-loop counts); this file only gathers them, so
 * that reading them costs one clock read and no lock.
 */
#include "debug/debug.h"
#include "exec/exec.h"

#include <errno.h>
#include <string.h>

_Static_assert(sizeof ((weft__debug *)0)->longest_name == sizeof ((weft_loop_metrics *)0)->longest_step_task,
               "the longest step's task name is copied whole");

int weft_get_loop_metrics(weft_loop_metrics *out)
{
    weft_loop *L = weft__loop;
    if (!L)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_get_loop_metrics needs a running weft loop (call it from a "
                                                 "task or a callback)");
    if (!out)
        return weft__set_errmsg(-EINVAL, "weft_get_loop_metrics: out is NULL; pass the address of a "
                                         "weft_loop_metrics to fill");
    memset(out, 0, sizeof *out);
    out->iterations = L->iteration;
    out->tasks_alive = L->live_tasks;
    out->tasks_spawned = L->stats.tasks_spawned;
    out->ready = L->ready.count;
    out->timers = L->timers.count;
    out->callbacks_run = L->stats.callbacks_run;
    out->polls = L->stats.polls;
    out->elapsed_ns = weft__mono_ns() - L->stats.started_ns;
    out->poll_ns = L->stats.poll_ns;
    out->run_ns = out->elapsed_ns > out->poll_ns ? out->elapsed_ns - out->poll_ns : 0;

    const weft__debug *d = weft__debug_of(L);
    if (d && d->set.time_steps) {
        out->steps_timed = 1;
        out->steps = d->steps;
        out->longest_step_ns = d->longest_ns;
        out->longest_step_task_id = d->longest_task_id;
        memcpy(out->longest_step_task, d->longest_name, sizeof out->longest_step_task);
    }
    weft__pools_counts(L, &out->pool_calls_queued, &out->pool_calls_running);
    return 0;
}
