/*
 * test_task.c — tasks as a user sees them: when a spawned task starts, the FIFO
 * order of the ready queue, await and its results, names, weft_current,
 * weft_task_done and detach.
 */
#include "common.h"

TestSuite(task, .timeout = 20);

/* ---- spawn does not run the task until its creator suspends ------------- */

static int spawn_flag;

static void *set_spawn_flag(void *arg)
{
    (void)arg;
    spawn_flag = 1;
    return NULL;
}

static void *spawn_then_check(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(set_spawn_flag, NULL);
    cr_expect_not_null(t);
    cr_expect_eq(spawn_flag, 0, "the task ran before its creator suspended");
    cr_expect_not(weft_task_done(t));
    /* Work that does not suspend still does not let it run. */
    for (volatile int i = 0; i < 100000; i++) {
    }
    cr_expect_eq(spawn_flag, 0, "the task ran before its creator suspended");
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(spawn_flag, 1, "the task had not run after one yield of its creator");
    cr_expect(weft_task_done(t));
    cr_expect_eq(weft_await(t, NULL), 0);
    return NULL;
}

Test(task, spawn_runs_only_when_creator_suspends)
{
    spawn_flag = 0;
    cr_assert_eq(run_virtual(spawn_then_check, NULL, NULL), 0);
    cr_assert_eq(spawn_flag, 1);
}

/* ---- FIFO interleaving ---------------------------------------------------- */

static void *record_and_yield_thrice(void *arg)
{
    const char *label = arg;
    for (int i = 0; i < 3; i++) {
        trace("%s%d", label, i);
        cr_expect_eq(weft_yield(), 0);
    }
    return NULL;
}

static void *fifo_main(void *arg)
{
    (void)arg;
    weft_task *tasks[3] = {
        weft_spawn(record_and_yield_thrice, "A"),
        weft_spawn(record_and_yield_thrice, "B"),
        weft_spawn(record_and_yield_thrice, "C"),
    };
    for (int i = 0; i < 3; i++) {
        trace("M%d", i);
        cr_expect_eq(weft_yield(), 0);
    }
    for (int i = 0; i < 3; i++)
        cr_expect_eq(weft_await(tasks[i], NULL), 0);
    return NULL;
}

Test(task, ready_queue_is_fifo)
{
    trace_reset();
    cr_assert_eq(run_virtual(fifo_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "M0 A0 B0 C0 M1 A1 B1 C1 M2 A2 B2 C2");
}

/* ---- a task woken during a batch runs after the tasks already ready ------ */

static weft_task *long_sleeper;

static void *sleep_until_cancelled(void *arg)
{
    (void)arg;
    int rc = weft_sleep(100);
    trace("S%s", rc == -ECANCELED ? "" : "?");
    return NULL;
}

static void *wake_sleeper(void *arg)
{
    (void)arg;
    cr_expect(weft_cancel(long_sleeper, NULL));
    trace("A");
    return NULL;
}

static void *just_record_b(void *arg)
{
    (void)arg;
    trace("B");
    return NULL;
}

static void *batch_main(void *arg)
{
    (void)arg;
    long_sleeper = weft_spawn(sleep_until_cancelled, NULL);
    cr_expect_eq(weft_yield(), 0); /* the sleeper is now waiting on its timer */
    weft_task *a = weft_spawn(wake_sleeper, NULL);
    weft_task *b = weft_spawn(just_record_b, NULL);
    cr_expect_eq(weft_yield(), 0);
    trace("M");
    cr_expect_eq(weft_await(a, NULL), 0);
    cr_expect_eq(weft_await(b, NULL), 0);
    /* It returned without weft_uncancel, so it ended cancelled. */
    cr_expect_eq(weft_await(long_sleeper, NULL), -ECANCELED);
    return NULL;
}

Test(task, task_woken_during_batch_runs_in_next_batch)
{
    trace_reset();
    cr_assert_eq(run_virtual(batch_main, NULL, NULL), 0);
    /* S was made ready by A; B and main were already ready, so they run first. */
    cr_assert_str_eq(trace_text, "A B M S");
}

/* ---- await ---------------------------------------------------------------- */

static void *return_arg(void *arg)
{
    return arg;
}

static void *await_result_main(void *arg)
{
    (void)arg;
    void *result = NULL;
    weft_task *t = weft_spawn(return_arg, (void *)(intptr_t)42);
    cr_expect_eq(weft_await(t, &result), 0);
    cr_expect_eq((intptr_t)result, 42);
    /* A NULL result pointer is allowed. */
    cr_expect_eq(weft_await(weft_spawn(return_arg, (void *)1), NULL), 0);
    return result;
}

Test(task, await_returns_result)
{
    void *result = NULL;
    cr_assert_eq(run_virtual(await_result_main, NULL, &result), 0);
    cr_assert_eq((intptr_t)result, 42);
}

static int bystander_ran;

static void *bystander(void *arg)
{
    (void)arg;
    bystander_ran = 1;
    return NULL;
}

static void *await_finished_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(return_arg, (void *)(intptr_t)7);
    cr_expect_eq(weft_yield(), 0);
    cr_expect(weft_task_done(t));
    weft_task *other = weft_spawn(bystander, NULL);
    void *result = NULL;
    cr_expect_eq(weft_await(t, &result), 0);
    cr_expect_eq((intptr_t)result, 7);
    cr_expect_eq(bystander_ran, 0, "awaiting a finished task suspended the caller");
    cr_expect_eq(weft_await(other, NULL), 0);
    cr_expect_eq(bystander_ran, 1);
    return NULL;
}

Test(task, await_of_finished_task_does_not_suspend)
{
    bystander_ran = 0;
    cr_assert_eq(run_virtual(await_finished_main, NULL, NULL), 0);
    cr_assert_eq(bystander_ran, 1);
}

static int await_null_rc;
static int await_self_rc;

static void *await_self(void *arg)
{
    (void)arg;
    await_self_rc = weft_await(weft_current(), NULL);
    return NULL;
}

static void *await_bad_main(void *arg)
{
    (void)arg;
    await_null_rc = weft_await(NULL, NULL);
    weft_task *t = weft_spawn(await_self, NULL);
    cr_expect_eq(weft_await(t, NULL), 0);
    return NULL;
}

Test(task, await_of_null_or_self_is_einval)
{
    await_null_rc = 1;
    await_self_rc = 1;
    cr_assert_eq(run_virtual(await_bad_main, NULL, NULL), 0);
    cr_assert_eq(await_null_rc, -EINVAL, "weft_await(NULL) gave %d", await_null_rc);
    cr_assert_eq(await_self_rc, -EINVAL, "awaiting oneself gave %d", await_self_rc);
}

/* A second task awaiting a task another already awaits is refused at once, with a
 * message; the first awaiter still gets the result. (It used to take the first
 * one's place silently, and the first then waited forever.) */
static int second_await_rc;
static char second_await_msg[256];

static void *second_awaiter(void *arg)
{
    second_await_rc = weft_await(arg, NULL);
    if (second_await_rc != 0)
        snprintf(second_await_msg, sizeof second_await_msg, "%s", weft_errmsg());
    return NULL;
}

static void *slow_value(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_sleep(1), 0);
    return (void *)(intptr_t)5;
}

static void *double_await_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(slow_value, NULL, &(weft_spawn_options){.name = "slow"});
    weft_task *first = weft_spawn(second_awaiter, t); /* runs first: the legitimate awaiter */
    cr_expect_eq(weft_sleep(0.1), 0);
    weft_task *second = weft_spawn(second_awaiter, t);
    cr_expect_eq(weft_await(second, NULL), 0);
    cr_expect_eq(second_await_rc, -EINVAL);
    cr_expect_eq(weft_await(first, NULL), 0);
    cr_expect_eq(second_await_rc, 0, "the first awaiter did not get the result");
    return NULL;
}

Test(task, a_second_awaiter_is_refused_and_the_first_still_gets_the_result)
{
    second_await_rc = 1;
    cr_assert_eq(run_virtual(double_await_main, NULL, NULL), 0);
    cr_assert(strstr(second_await_msg, "weft_await: slow is already being awaited") != NULL, "%s",
              second_await_msg);
}

/* A handle used after it was given up names no task any more: awaiting it again
 * gives -ESTALE at once, never the outcome of the task that now uses its record
 * (which used to come back with status 0, and that task's own await then hung). */
static void *return_word(void *arg)
{
    return arg;
}

static void *stale_main(void *arg)
{
    (void)arg;
    void *result = NULL;
    weft_task *t = weft_spawn(return_word, "first");
    cr_expect_eq(weft_await(t, &result), 0);
    cr_expect_str_eq(result, "first");
    weft_task *u = weft_spawn(return_word, "second");
    result = NULL;
    cr_expect_eq(weft_await(t, &result), -ESTALE);
    cr_expect_null(result);
    cr_expect(strstr(weft_errmsg(), "stale") != NULL, "%s", weft_errmsg());
    cr_expect_eq(weft_errcode(), -ESTALE);
    /* The other calls say so too, and change nothing. */
    cr_expect(!weft_cancel(t, NULL));
    cr_expect(!weft_task_done(t));
    cr_expect_str_eq(weft_task_name(t), "(stale task handle)");
    cr_expect_eq(weft_task_result(t, NULL), -ESTALE);
    weft_task *pair[2] = {u, t};
    cr_expect_eq(weft_gather(pair, 2, NULL, NULL, 0), -ESTALE);
    cr_expect(strstr(weft_errmsg(), "task 1") != NULL, "%s", weft_errmsg());
    /* The gather gave u up (detached, it runs on): a detached handle cannot be awaited. */
    cr_expect_eq(weft_await(u, NULL), -ESTALE);
    /* A fresh task still works, and a detached one refuses to be awaited. */
    weft_task *v = weft_spawn(return_word, "third");
    weft_detach(v);
    cr_expect_eq(weft_await(v, NULL), -ESTALE);
    cr_expect(strstr(weft_errmsg(), "detached") != NULL, "%s", weft_errmsg());
    weft_task *w = weft_spawn(return_word, "fourth");
    cr_expect_eq(weft_await(w, &result), 0);
    cr_expect_str_eq(result, "fourth");
    return NULL;
}

Test(task, a_consumed_handle_is_stale_never_another_tasks)
{
    cr_assert_eq(run_virtual(stale_main, NULL, NULL), 0);
}

/* Results nobody takes go to the spawner's drop function (LeakSanitizer checks
 * the malloc'd ones in the sanitizer build); results taken are never dropped. */
static int drops;

static void drop_result(void *result)
{
    drops++;
    free(result);
}

static void *make_result(void *arg)
{
    double *seconds = arg;
    if (seconds && weft_sleep(*seconds) != 0)
        return NULL;
    int *value = malloc(sizeof *value);
    if (value)
        *value = 7;
    return value;
}

static void *fails_soon(void *arg)
{
    (void)arg;
    weft_sleep(0.1);
    return weft_fail(-EIO, "no");
}

static void *drop_main(void *arg)
{
    (void)arg;
    static double later = 1;
    weft_spawn_options dropping = {.drop = drop_result};
    /* Taken by await: the caller's to free. */
    void *result = NULL;
    cr_expect_eq(weft_await(weft_spawn_opts(make_result, NULL, &dropping), &result), 0);
    cr_expect_eq(drops, 0);
    free(result);
    /* Awaited with no result pointer: dropped. */
    cr_expect_eq(weft_await(weft_spawn_opts(make_result, NULL, &dropping), NULL), 0);
    cr_expect_eq(drops, 1);
    /* Detached: dropped when it ends. */
    weft_detach(weft_spawn_opts(make_result, NULL, &dropping));
    cr_expect_eq(weft_sleep(0.01), 0);
    cr_expect_eq(drops, 2);
    /* Let go by a fail-fast gather: dropped when it ends later. */
    weft_task *pair[2] = {weft_spawn(fails_soon, NULL), weft_spawn_opts(make_result, &later, &dropping)};
    cr_expect_eq(weft_gather(pair, 2, NULL, NULL, 0), -EIO);
    cr_expect_eq(drops, 2);
    cr_expect_eq(weft_sleep(2), 0);
    cr_expect_eq(drops, 3);
    /* Gathered with a results array: taken. */
    weft_task *two[2] = {weft_spawn_opts(make_result, NULL, &dropping), weft_spawn_opts(make_result, NULL, &dropping)};
    void *results[2] = {NULL, NULL};
    cr_expect_eq(weft_gather(two, 2, results, NULL, 0), 0);
    cr_expect_eq(drops, 3);
    free(results[0]);
    free(results[1]);
    /* Left running when main returns: cancelled, nothing to drop; finished and
     * never awaited: dropped when weft_run ends. */
    weft_spawn_opts(make_result, NULL, &dropping);
    cr_expect_eq(weft_yield(), 0);
    return NULL;
}

Test(task, results_nobody_takes_go_to_the_drop_function)
{
    drops = 0;
    cr_assert_eq(run_virtual(drop_main, NULL, NULL), 0);
    cr_assert_eq(drops, 4);
}

/* Two tasks awaiting each other can never finish: the await that closes the
 * cycle is refused at once with -EDEADLK (asyncio waits forever; a periodic timer
 * would even hide it from the idle-loop deadlock report). */
static weft_task *cycle_a;
static int cycle_rc;

static void *awaits_a(void *arg)
{
    (void)arg;
    cycle_rc = weft_await(cycle_a, NULL);
    return NULL;
}

static void *awaits_b(void *arg)
{
    weft_task *b = weft_spawn_opts(awaits_a, NULL, &(weft_spawn_options){.name = "b"});
    (void)arg;
    return (void *)(intptr_t)weft_await(b, NULL);
}

static void *tick(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++)
        weft_sleep(1); /* keeps the loop busy: no idle-loop report */
    return NULL;
}

static void *await_cycle_main(void *arg)
{
    (void)arg;
    weft_task *ticker = weft_spawn(tick, NULL);
    cycle_a = weft_spawn_opts(awaits_b, NULL, &(weft_spawn_options){.name = "a"});
    void *result = NULL;
    /* main watches a without claiming it, so b may await it. */
    cr_expect_eq(weft_task_wait(cycle_a, &result), 0);
    cr_expect_eq(cycle_rc, -EDEADLK);
    cr_expect_eq((intptr_t)result, 0, "a's await of b: %ld", (long)(intptr_t)result);
    /* b's refused await consumed a's handle (as every await does): a is detached. */
    cr_expect_eq(weft_await(cycle_a, NULL), -ESTALE);
    cr_expect_eq(weft_await(ticker, NULL), 0);
    return NULL;
}

Test(task, an_await_cycle_is_refused)
{
    cycle_rc = 1;
    cr_assert_eq(run_virtual(await_cycle_main, NULL, NULL), 0);
}

/* ---- names ------------------------------------------------------------------ */

static int name_number(const char *name)
{
    int n = -1;
    char rest;
    if (name == NULL || sscanf(name, "Task-%d%c", &n, &rest) != 1)
        return -1;
    return n;
}

typedef struct name_report {
    int main_n;
    int spawned_n[3];
    char inside_name[64];
    char renamed[64];
    char opts_name[64];
    char set_name_self[64];
} name_report;

static void *record_own_name(void *arg)
{
    name_report *report = arg;
    snprintf(report->inside_name, sizeof report->inside_name, "%s", weft_task_name(NULL));
    cr_expect_eq(weft_task_set_name(weft_current(), "self-renamed"), 0);
    snprintf(report->set_name_self, sizeof report->set_name_self, "%s", weft_task_name(NULL));
    return NULL;
}

static void *names_main(void *arg)
{
    name_report *report = arg;
    report->main_n = name_number(weft_task_name(NULL));
    weft_task *t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = weft_spawn(return_arg, NULL);
        report->spawned_n[i] = name_number(weft_task_name(t[i]));
    }
    cr_expect_eq(weft_task_set_name(t[1], "renamed"), 0);
    snprintf(report->renamed, sizeof report->renamed, "%s", weft_task_name(t[1]));

    char name[32] = "fetcher";
    weft_task *named = weft_spawn_opts(record_own_name, report, &(weft_spawn_options){.name = name});
    name[0] = 'X'; /* the name was copied */
    snprintf(report->opts_name, sizeof report->opts_name, "%s", weft_task_name(named));
    cr_expect_eq(weft_await(named, NULL), 0);
    cr_expect_eq(weft_gather(t, 3, NULL, NULL, 0), 0);
    return NULL;
}

Test(task, names)
{
    name_report first, second;
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    cr_assert_eq(run_virtual(names_main, &first, NULL), 0);

    /* weft.h: N counts from 1 per loop, and main is Task-1. */
    cr_assert_eq(first.main_n, 1, "main is not named Task-1");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(first.spawned_n[i], i + 2, "spawned task %d is named Task-%d", i, first.spawned_n[i]);
    cr_assert_str_eq(first.renamed, "renamed");
    cr_assert_str_eq(first.opts_name, "fetcher");
    cr_assert_str_eq(first.inside_name, "fetcher");
    cr_assert_str_eq(first.set_name_self, "self-renamed");

    /* N counts per loop: a second loop hands out the same names. */
    cr_assert_eq(run_virtual(names_main, &second, NULL), 0);
    cr_assert_eq(second.main_n, first.main_n);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(second.spawned_n[i], first.spawned_n[i]);
}

/* ---- weft_current, weft_loop_current, weft_task_done ---------------------- */

static weft_task *seen_current;

static void *record_current(void *arg)
{
    (void)arg;
    seen_current = weft_current();
    cr_expect_eq(weft_sleep(1), 0);
    return NULL;
}

static void *current_main(void *arg)
{
    weft_loop **loop_out = arg;
    *loop_out = weft_loop_current();
    weft_task *me = weft_current();
    cr_expect_not_null(me);
    weft_task *t = weft_spawn(record_current, NULL);
    cr_expect_not(weft_task_done(t), "done before it ran");
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(seen_current, t, "weft_current() inside the task is not its handle");
    cr_expect_not(weft_task_done(t), "done while still sleeping");
    cr_expect_eq(weft_current(), me);
    cr_expect_eq(weft_sleep(2), 0);
    cr_expect(weft_task_done(t), "not done after it returned");
    cr_expect_eq(weft_await(t, NULL), 0);
    return NULL;
}

Test(task, current_and_done)
{
    weft_loop *loop = NULL;
    cr_assert_null(weft_current(), "weft_current() outside a loop");
    cr_assert_null(weft_loop_current(), "weft_loop_current() outside a loop");
    seen_current = NULL;
    cr_assert_eq(run_virtual(current_main, &loop, NULL), 0);
    cr_assert_not_null(loop);
    cr_assert_not_null(seen_current);
    cr_assert_null(weft_loop_current(), "weft_loop_current() after weft_run returned");
}

/* ---- detach ------------------------------------------------------------------ */

static double detached_finished_at = -1;

static void *detached_worker(void *arg)
{
    (void)arg;
    if (weft_sleep(1) == 0)
        detached_finished_at = weft_time();
    return (void *)1;
}

static void *detach_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(detached_worker, NULL);
    weft_detach(t);
    cr_expect_eq(weft_sleep(2), 0);
    return NULL;
}

Test(task, detached_task_runs_to_completion)
{
    detached_finished_at = -1;
    cr_assert_eq(run_virtual(detach_main, NULL, NULL), 0);
    cr_assert(time_is(detached_finished_at, 1.0), "detached task finished at %f", detached_finished_at);
}

/* ---- spawn refuses what it cannot run ------------------------------------------ */

typedef struct refusal {
    bool null_fn_refused, small_stack_refused, huge_stack_refused, min_stack_ok;
    char small_stack_msg[160];
} refusal;

static void *refusals_main(void *arg)
{
    refusal *r = arg;
    r->null_fn_refused = weft_spawn(NULL, NULL) == NULL;
    weft_task *t = weft_spawn_opts(return_arg, NULL, &(weft_spawn_options){.stack_size = WEFT_STACK_MIN - 1});
    r->small_stack_refused = t == NULL;
    snprintf(r->small_stack_msg, sizeof r->small_stack_msg, "%s", weft_errmsg());
    if (t)
        weft_detach(t);
    t = weft_spawn_opts(return_arg, NULL, &(weft_spawn_options){.stack_size = (size_t)65 * 1024 * 1024});
    r->huge_stack_refused = t == NULL;
    if (t)
        weft_detach(t);
    t = weft_spawn_opts(return_arg, (void *)(intptr_t)4, &(weft_spawn_options){.stack_size = WEFT_STACK_MIN});
    void *result = NULL;
    r->min_stack_ok = t != NULL && weft_await(t, &result) == 0 && (intptr_t)result == 4;
    weft_detach(NULL); /* does nothing */
    return NULL;
}

Test(task, spawn_refusals)
{
    refusal r;
    memset(&r, 0, sizeof r);
    cr_assert_eq(run_virtual(refusals_main, &r, NULL), 0);
    cr_assert(r.null_fn_refused, "weft_spawn(NULL) returned a task");
    cr_assert(r.small_stack_refused, "a stack below WEFT_STACK_MIN was accepted");
    cr_assert_not_null(strstr(r.small_stack_msg, "stack"), "the message does not say why: \"%s\"", r.small_stack_msg);
    cr_assert(r.huge_stack_refused, "a stack above 64 MiB was accepted");
    cr_assert(r.min_stack_ok, "a task with a stack of exactly WEFT_STACK_MIN failed");
}

/* ---- calls outside a loop ------------------------------------------------- */

Test(task, calls_outside_a_loop)
{
    cr_assert_null(weft_spawn(return_arg, NULL));
    cr_assert_str_neq(weft_errmsg(), "", "weft_spawn outside a loop left no message");
    cr_assert_eq(weft_sleep(0.01), WEFT_ENOTINLOOP);
    cr_assert_eq(weft_yield(), WEFT_ENOTINLOOP);
}
