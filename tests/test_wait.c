/*
 * test_wait.c — weft_wait, weft_as_completed and weft_shield as a user sees them:
 * which tasks are done when each call returns and at what virtual time, that a
 * task's error stays the task's, that timeouts and the caller's cancellation
 * cancel nothing else, that handles stay usable, and the arguments refused.
 */
#include "common.h"

#include <stdint.h>

TestSuite(wait, .timeout = 20);
TestSuite(as_completed, .timeout = 20);
TestSuite(shield, .timeout = 20);

/* A task description: sleep, then succeed with `value` or fail with `err`. */
typedef struct job {
    const char *name;
    double sleep;       /* < 0: do not sleep at all */
    intptr_t value;
    int err;
    const char *msg;
    int sleep_rc;       /* what its sleep returned */
    double finished_at; /* -1 until it reached its end */
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    j->sleep_rc = j->sleep >= 0 ? weft_sleep(j->sleep) : 0;
    j->finished_at = weft_time();
    trace("%s", j->name);
    if (j->sleep_rc != 0)
        return NULL;
    if (j->err != 0)
        return weft_fail(j->err, "%s", j->msg);
    return (void *)j->value;
}

static void reset_jobs(job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jobs[i].sleep_rc = 1;
        jobs[i].finished_at = -1;
    }
}

static weft_task *spawn_job(job *j)
{
    return weft_spawn_opts(run_job, j, &(weft_spawn_options){.name = j->name});
}

/* Awaits a task and checks its outcome: the value, or the error and its message. */
static void expect_outcome(weft_task *t, intptr_t value, int err, const char *msg)
{
    void *r = (void *)-1;
    int rc = weft_await(t, &r);
    cr_expect_eq(rc, err, "await gave %d, expected %d", rc, err);
    if (err == 0)
        cr_expect_eq((intptr_t)r, value);
    else
        cr_expect_str_eq(weft_errmsg(), msg);
}

/* The three tasks of the brief: 0.03 s, 0.01 s, and 0.02 s failing with -EIO. */
static job three[3];

static void set_up_three(void)
{
    job init[3] = {
        {.name = "slow", .sleep = 0.03, .value = 10},
        {.name = "fast", .sleep = 0.01, .value = 20},
        {.name = "bad", .sleep = 0.02, .err = -EIO, .msg = "disk gone"},
    };
    memcpy(three, init, sizeof init);
    reset_jobs(three, 3);
    trace_reset();
}

typedef struct wait_report {
    int rc;
    double at;
    size_t ndone, npending;
    weft_task *done[3], *pending[3];
    weft_task *tasks[3];
} wait_report;

/* Spawns the three tasks, waits with `return_when`, records what wait returned. */
static void wait_on_three(wait_report *w, int return_when, double timeout)
{
    for (int i = 0; i < 3; i++)
        w->tasks[i] = spawn_job(&three[i]);
    w->ndone = w->npending = 99;
    w->rc = weft_wait(w->tasks, 3, return_when, timeout, w->done, &w->ndone, w->pending, &w->npending);
    w->at = weft_time();
    trace("wait");
}

/* Awaits the three tasks, checking each one's own outcome. */
static void await_three(weft_task **tasks)
{
    expect_outcome(tasks[0], 10, 0, NULL);
    expect_outcome(tasks[1], 20, 0, NULL);
    expect_outcome(tasks[2], 0, -EIO, "disk gone");
}

/* ---- the three return_when conditions --------------------------------------- */

static void *first_completed_main(void *arg)
{
    wait_report *w = arg;
    wait_on_three(w, WEFT_FIRST_COMPLETED, WEFT_FOREVER);
    cr_expect_eq(w->rc, 0);
    cr_expect(time_is(w->at, 0.01), "FIRST_COMPLETED returned at %f", w->at);
    cr_expect_eq(w->ndone, 1);
    cr_expect_eq(w->done[0], w->tasks[1], "done[0] is not the 0.01 s task");
    cr_expect_eq(w->npending, 2);
    cr_expect_eq(w->pending[0], w->tasks[0], "pending not in argument order");
    cr_expect_eq(w->pending[1], w->tasks[2], "pending not in argument order");
    cr_expect(!weft_task_done(w->tasks[0]) && !weft_task_done(w->tasks[2]));
    await_three(w->tasks);
    return NULL;
}

Test(wait, first_completed_returns_at_the_first_end)
{
    wait_report w;
    set_up_three();
    cr_assert_eq(run_virtual(first_completed_main, &w, NULL), 0, "%s", weft_errmsg());
    cr_assert_str_eq(trace_text, "fast wait bad slow");
}

static void *first_exception_main(void *arg)
{
    wait_report *w = arg;
    wait_on_three(w, WEFT_FIRST_EXCEPTION, WEFT_FOREVER);
    cr_expect_eq(w->rc, 0, "a task's error became wait's: %d", w->rc);
    cr_expect(time_is(w->at, 0.02), "FIRST_EXCEPTION returned at %f", w->at);
    cr_expect_eq(w->ndone, 2);
    cr_expect_eq(w->done[0], w->tasks[1]);
    cr_expect_eq(w->done[1], w->tasks[2]);
    cr_expect_eq(w->npending, 1);
    cr_expect_eq(w->pending[0], w->tasks[0]);
    /* The failure is read from the task, without consuming it... */
    void *r = (void *)1;
    cr_expect_eq(weft_task_result(w->tasks[2], &r), -EIO);
    cr_expect_str_eq(weft_errmsg(), "disk gone");
    cr_expect_null(r);
    /* ...and is still there for whoever awaits it. */
    await_three(w->tasks);
    return NULL;
}

Test(wait, first_exception_returns_at_the_first_failure)
{
    wait_report w;
    set_up_three();
    cr_assert_eq(run_virtual(first_exception_main, &w, NULL), 0, "%s", weft_errmsg());
    cr_assert_str_eq(trace_text, "fast bad wait slow");
}

static void *all_completed_main(void *arg)
{
    wait_report *w = arg;
    wait_on_three(w, WEFT_ALL_COMPLETED, WEFT_FOREVER);
    cr_expect_eq(w->rc, 0, "a task's error became wait's: %d", w->rc);
    cr_expect(time_is(w->at, 0.03), "ALL_COMPLETED returned at %f", w->at);
    cr_expect_eq(w->ndone, 3);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(w->done[i], w->tasks[i], "done[%d] not in argument order", i);
    cr_expect_eq(w->npending, 0);
    await_three(w->tasks);
    return NULL;
}

Test(wait, all_completed_returns_when_all_have_ended)
{
    wait_report w;
    set_up_three();
    cr_assert_eq(run_virtual(all_completed_main, &w, NULL), 0, "%s", weft_errmsg());
    cr_assert_str_eq(trace_text, "fast bad slow wait");
}

/* ---- FIRST_EXCEPTION: a cancellation is not an exception ---------------------- */

static void *cancel_after(void *arg)
{
    weft_task *victim = arg;
    cr_expect_eq(weft_sleep(0.005), 0);
    cr_expect(weft_cancel(victim, NULL));
    return NULL;
}

static void *cancellation_not_exception_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = spawn_job(&jobs[i]);
    weft_task *canceller = weft_spawn(cancel_after, tasks[1]);
    weft_task *done[3];
    size_t ndone = 0, npending = 9;
    cr_expect_eq(weft_wait(tasks, 3, WEFT_FIRST_EXCEPTION, WEFT_FOREVER, done, &ndone, NULL, &npending), 0);
    cr_expect(time_is(weft_time(), 0.03), "a cancelled task counted as a failure: wait returned at %f",
              weft_time());
    cr_expect_eq(ndone, 3);
    cr_expect_eq(npending, 0);
    cr_expect_eq(weft_await(canceller, NULL), 0);
    expect_outcome(tasks[0], 1, 0, NULL);
    cr_expect_eq(weft_await(tasks[1], NULL), -ECANCELED);
    expect_outcome(tasks[2], 3, 0, NULL);
    return NULL;
}

Test(wait, first_exception_ignores_cancelled_tasks)
{
    job jobs[3] = {
        {.name = "a", .sleep = 0.01, .value = 1},
        {.name = "b", .sleep = 1, .value = 2},
        {.name = "c", .sleep = 0.03, .value = 3},
    };
    reset_jobs(jobs, 3);
    cr_assert_eq(run_virtual(cancellation_not_exception_main, jobs, NULL), 0, "%s", weft_errmsg());
    cr_assert_eq(jobs[1].sleep_rc, -ECANCELED);
}

/* ---- timeout: partial sets, nothing cancelled -------------------------------- */

static void *timeout_main(void *arg)
{
    wait_report *w = arg;
    wait_on_three(w, WEFT_ALL_COMPLETED, 0.015);
    cr_expect_eq(w->rc, 0, "a timeout is not an error for wait: %d", w->rc);
    cr_expect(time_is(w->at, 0.015), "wait with a timeout returned at %f", w->at);
    cr_expect_eq(w->ndone, 1);
    cr_expect_eq(w->done[0], w->tasks[1]);
    cr_expect_eq(w->npending, 2);
    cr_expect_eq(w->pending[0], w->tasks[0]);
    cr_expect_eq(w->pending[1], w->tasks[2]);
    /* The pending ones run on to their own ends and can be awaited. */
    await_three(w->tasks);
    cr_expect(time_is(weft_time(), 0.03));
    return NULL;
}

Test(wait, timeout_gives_partial_sets_and_cancels_nothing)
{
    wait_report w;
    set_up_three();
    cr_assert_eq(run_virtual(timeout_main, &w, NULL), 0, "%s", weft_errmsg());
    cr_assert_str_eq(trace_text, "fast wait bad slow");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(three[i].sleep_rc, 0, "task %d was cancelled by wait's timeout", i);
    cr_assert(time_is(three[0].finished_at, 0.03));
    cr_assert(time_is(three[2].finished_at, 0.02));
}

static void *zero_timeout_main(void *arg)
{
    wait_report *w = arg;
    wait_on_three(w, WEFT_ALL_COMPLETED, 0);
    cr_expect_eq(w->rc, 0);
    cr_expect(time_is(w->at, 0), "timeout 0 waited until %f", w->at);
    cr_expect_eq(w->ndone, 0);
    cr_expect_eq(w->npending, 3);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(w->pending[i], w->tasks[i]);
    await_three(w->tasks);
    return NULL;
}

Test(wait, zero_timeout_does_not_wait)
{
    wait_report w;
    set_up_three();
    cr_assert_eq(run_virtual(zero_timeout_main, &w, NULL), 0, "%s", weft_errmsg());
    /* wait returned after one suspension, before any task finished. */
    cr_assert_str_eq(trace_text, "wait fast bad slow");
}

/* ---- finished tasks: one suspension, no waiting ----------------------------------
 * asyncio.wait always awaits once (the done callbacks of finished tasks come through
 * call_soon), so other ready tasks run before it returns, but no time passes. */

static void *bystander(void *arg)
{
    (void)arg;
    trace("bystander");
    return NULL;
}

static void *already_done_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[2] = {spawn_job(&jobs[0]), spawn_job(&jobs[1])};
    cr_expect_eq(weft_sleep(1), 0);
    weft_task *other = weft_spawn(bystander, NULL);
    weft_task *done[2];
    size_t ndone = 0, npending = 9;
    trace("wait-all");
    cr_expect_eq(weft_wait(tasks, 2, WEFT_ALL_COMPLETED, WEFT_FOREVER, done, &ndone, NULL, &npending), 0);
    trace("returned");
    cr_expect_eq(ndone, 2);
    cr_expect_eq(npending, 0);
    cr_expect_eq(done[0], tasks[0]);
    cr_expect_eq(done[1], tasks[1]);
    cr_expect(time_is(weft_time(), 1.0), "time moved to %f", weft_time());

    /* FIRST_COMPLETED with one finished and one running returns at once too. */
    job *late = &jobs[2];
    weft_task *mixed[2] = {spawn_job(late), tasks[0]};
    weft_task *pending[2];
    trace("wait-first");
    cr_expect_eq(weft_wait(mixed, 2, WEFT_FIRST_COMPLETED, WEFT_FOREVER, done, &ndone, pending, &npending), 0);
    trace("returned");
    cr_expect_eq(ndone, 1);
    cr_expect_eq(done[0], tasks[0]);
    cr_expect_eq(npending, 1);
    cr_expect_eq(pending[0], mixed[0]);

    /* FIRST_EXCEPTION with a failure already in: at once as well. */
    weft_task *with_failure[3] = {mixed[0], tasks[1], tasks[0]};
    trace("wait-exc");
    cr_expect_eq(weft_wait(with_failure, 3, WEFT_FIRST_EXCEPTION, WEFT_FOREVER, done, &ndone, pending, &npending),
                 0);
    trace("returned");
    cr_expect_eq(ndone, 2);
    cr_expect_eq(done[0], tasks[1]);
    cr_expect_eq(done[1], tasks[0]);
    cr_expect(time_is(weft_time(), 1.0), "time moved to %f", weft_time());

    cr_expect_eq(weft_await(other, NULL), 0);
    expect_outcome(tasks[0], 5, 0, NULL);
    expect_outcome(tasks[1], 0, -EPERM, "no");
    expect_outcome(mixed[0], 7, 0, NULL);
    return NULL;
}

Test(wait, finished_tasks_return_after_one_suspension)
{
    job jobs[3] = {
        {.name = "a", .sleep = -1, .value = 5},
        {.name = "b", .sleep = -1, .err = -EPERM, .msg = "no"},
        {.name = "late", .sleep = 2, .value = 7},
    };
    reset_jobs(jobs, 3);
    trace_reset();
    cr_assert_eq(run_virtual(already_done_main, jobs, NULL), 0, "%s", weft_errmsg());
    /* The bystander, ready when the first wait began, ran before that wait returned. */
    cr_assert_str_eq(trace_text, "a b wait-all bystander returned wait-first returned wait-exc returned late");
}

/* ---- the waiting task is cancelled -------------------------------------------- */

typedef struct cancelled_waiter {
    weft_task *tasks[3];
    int rc;
    double at;
    size_t ndone, npending;
    char msg[64];
} cancelled_waiter;

static void *waiter_task(void *arg)
{
    cancelled_waiter *c = arg;
    c->ndone = c->npending = 99;
    weft_task *done[3], *pending[3];
    c->rc = weft_wait(c->tasks, 3, WEFT_ALL_COMPLETED, 10, done, &c->ndone, pending, &c->npending);
    c->at = weft_time();
    snprintf(c->msg, sizeof c->msg, "%s", weft_errmsg());
    trace("waiter-out");
    return NULL;
}

static void *cancel_waiter_main(void *arg)
{
    cancelled_waiter *c = arg;
    for (int i = 0; i < 3; i++)
        c->tasks[i] = spawn_job(&three[i]);
    weft_task *w = weft_spawn(waiter_task, c);
    cr_expect_eq(weft_sleep(0.015), 0);
    cr_expect(weft_cancel(w, "stop waiting"));
    cr_expect_eq(weft_await(w, NULL), -ECANCELED);
    cr_expect(time_is(weft_time(), 0.015));
    await_three(c->tasks);
    /* wait's timer is gone: nothing fires at 10 s. */
    cr_expect_eq(weft_sleep(20), 0);
    return NULL;
}

Test(wait, cancelled_caller_returns_at_once_and_cancels_nothing)
{
    cancelled_waiter c;
    set_up_three();
    cr_assert_eq(run_virtual(cancel_waiter_main, &c, NULL), 0, "%s", weft_errmsg());
    cr_assert_eq(c.rc, -ECANCELED);
    cr_assert(time_is(c.at, 0.015), "wait returned at %f", c.at);
    cr_assert_str_eq(c.msg, "stop waiting");
    cr_assert_eq(c.ndone, 0);
    cr_assert_eq(c.npending, 0);
    cr_assert_str_eq(trace_text, "fast waiter-out bad slow");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(three[i].sleep_rc, 0, "task %d was cancelled with the waiter", i);
}

/* ---- several watchers of one task ------------------------------------------- */

static void *wait_for_first(void *arg)
{
    weft_task **tasks = arg;
    size_t ndone = 0;
    weft_task *done[2];
    cr_expect_eq(weft_wait(tasks, 2, WEFT_FIRST_COMPLETED, WEFT_FOREVER, done, &ndone, NULL, NULL), 0);
    cr_expect_eq(ndone, 1);
    trace("watcher@%.2f", weft_time());
    return NULL;
}

static void *shared_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[2] = {spawn_job(&jobs[0]), spawn_job(&jobs[1])};
    weft_task *w1 = weft_spawn(wait_for_first, tasks);
    weft_task *w2 = weft_spawn(wait_for_first, tasks);
    weft_task *ac_list[1] = {tasks[1]};
    weft_as_completed *ac = weft_as_completed_new(ac_list, 1, WEFT_FOREVER);
    cr_expect_not_null(ac);
    /* The handle is still free for one consumer while all of them watch it. */
    expect_outcome(tasks[0], 1, 0, NULL);
    trace("awaited@%.2f", weft_time());
    cr_expect_eq(weft_await(w1, NULL), 0);
    cr_expect_eq(weft_await(w2, NULL), 0);
    weft_task *t = NULL;
    cr_expect_eq(weft_as_completed_next(ac, &t), 1);
    cr_expect_eq(t, tasks[1]);
    weft_as_completed_free(ac);
    expect_outcome(tasks[1], 2, 0, NULL);
    return NULL;
}

Test(wait, a_task_can_be_watched_by_many_and_still_awaited)
{
    job jobs[2] = {{.name = "a", .sleep = 0.01, .value = 1}, {.name = "b", .sleep = 0.02, .value = 2}};
    reset_jobs(jobs, 2);
    trace_reset();
    cr_assert_eq(run_virtual(shared_main, jobs, NULL), 0, "%s", weft_errmsg());
    cr_assert_str_eq(trace_text, "a watcher@0.01 watcher@0.01 awaited@0.01 b");
}

/* ---- compact waiters ---------------------------------------------------------- */

static const weft_spawn_options compact = {.compact = 1};

/* A compact task that keeps the shared stack busy while others sleep on it. */
static void *compact_churn(void *arg)
{
    char buf[512];
    memset(buf, (int)(intptr_t)arg, sizeof buf);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(weft_sleep(0.004), 0);
    for (size_t i = 0; i < sizeof buf; i++)
        if (buf[i] != (char)(intptr_t)arg)
            return weft_fail(-EFAULT, "frame corrupted");
    return NULL;
}

static void *compact_waiter(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = weft_spawn_opts(run_job, &jobs[i], &compact);
    weft_task *done[3];
    size_t ndone = 0, npending = 0;
    cr_expect_eq(weft_wait(tasks, 3, WEFT_FIRST_COMPLETED, WEFT_FOREVER, done, &ndone, NULL, &npending), 0);
    cr_expect(time_is(weft_time(), 0.01));
    cr_expect_eq(done[0], tasks[1]);
    weft_as_completed *ac = weft_as_completed_new(tasks, 3, WEFT_FOREVER);
    weft_task *t, *order[3];
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(weft_as_completed_next(ac, &t), 1);
        order[i] = t;
    }
    cr_expect_eq(weft_as_completed_next(ac, &t), 0);
    weft_as_completed_free(ac);
    cr_expect_eq(order[0], tasks[1]);
    cr_expect_eq(order[1], tasks[2]);
    cr_expect_eq(order[2], tasks[0]);
    void *r = NULL;
    cr_expect_eq(weft_shield(tasks[0], &r), 0);
    cr_expect_eq((intptr_t)r, 10);
    cr_expect_eq(weft_await(tasks[1], NULL), 0);
    cr_expect_eq(weft_await(tasks[2], NULL), -EIO);
    return NULL;
}

static void *compact_main(void *arg)
{
    weft_task *churn[2] = {weft_spawn_opts(compact_churn, (void *)1, &compact),
                           weft_spawn_opts(compact_churn, (void *)2, &compact)};
    weft_task *w = weft_spawn_opts(compact_waiter, arg, &compact);
    cr_expect_eq(weft_await(w, NULL), 0, "%s", weft_errmsg());
    cr_expect_eq(weft_await(churn[0], NULL), 0, "%s", weft_errmsg());
    cr_expect_eq(weft_await(churn[1], NULL), 0, "%s", weft_errmsg());
    return NULL;
}

Test(wait, compact_tasks_can_wait)
{
    set_up_three();
    cr_assert_eq(run_virtual(compact_main, three, NULL), 0, "%s", weft_errmsg());
}

/* ---- many tasks ------------------------------------------------------------------ */

#define MANY 100

static void *sleep_index(void *arg)
{
    weft_sleep((double)(intptr_t)arg / 1000);
    return arg;
}

static void *many_main(void *arg)
{
    (void)arg;
    weft_task *tasks[MANY], *done[MANY];
    for (intptr_t i = 0; i < MANY; i++)
        tasks[i] = weft_spawn(sleep_index, (void *)(MANY - i));
    size_t ndone = 0, npending = 0;
    cr_expect_eq(weft_wait(tasks, MANY, WEFT_ALL_COMPLETED, WEFT_FOREVER, done, &ndone, NULL, &npending), 0);
    cr_expect(time_is(weft_time(), 0.1), "returned at %f", weft_time());
    cr_expect_eq(ndone, MANY);
    weft_as_completed *ac = weft_as_completed_new(tasks, MANY, WEFT_FOREVER);
    weft_task *t;
    size_t count = 0;
    while (weft_as_completed_next(ac, &t) == 1)
        cr_expect_eq(t, tasks[count++], "finished tasks are not handed out in argument order");
    cr_expect_eq(count, MANY);
    weft_as_completed_free(ac);
    /* A repeat at the far end of a long list is found too. */
    weft_task *saved = tasks[MANY - 1];
    tasks[MANY - 1] = tasks[7];
    cr_expect_eq(weft_wait(tasks, MANY, WEFT_ALL_COMPLETED, WEFT_FOREVER, done, &ndone, NULL, NULL), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "tasks 7 and 99 are the same task") != NULL, "message: %s", weft_errmsg());
    tasks[MANY - 1] = saved;
    for (intptr_t i = 0; i < MANY; i++) {
        void *r = NULL;
        cr_expect_eq(weft_await(tasks[i], &r), 0);
        cr_expect_eq((intptr_t)r, MANY - i);
    }
    return NULL;
}

Test(wait, many_tasks)
{
    cr_assert_eq(run_virtual(many_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- arguments refused --------------------------------------------------------- */

static void expect_einval(int rc, const char *needle)
{
    cr_expect_eq(rc, -EINVAL, "gave %d for '%s'", rc, needle);
    cr_expect(strstr(weft_errmsg(), needle) != NULL, "message '%s' lacks '%s'", weft_errmsg(), needle);
}

static void *bad_args_main(void *arg)
{
    job *jobs = arg;
    weft_task *a = spawn_job(&jobs[0]), *b = spawn_job(&jobs[1]);
    weft_task *ok[2] = {a, b}, *with_null[2] = {a, NULL}, *twice[3] = {a, b, a};
    weft_task *with_self[2] = {a, weft_current()};
    weft_task *done[3], *pending[3];
    size_t ndone = 5, npending = 5;
    expect_einval(weft_wait(ok, 0, WEFT_ALL_COMPLETED, WEFT_FOREVER, done, &ndone, pending, &npending),
                  "weft_wait: no tasks to wait for (n is 0)");
    cr_expect_eq(ndone, 0);
    cr_expect_eq(npending, 0);
    expect_einval(weft_wait(NULL, 2, WEFT_ALL_COMPLETED, WEFT_FOREVER, done, &ndone, pending, &npending),
                  "weft_wait: tasks is NULL but n is 2");
    expect_einval(weft_wait(with_null, 2, WEFT_ALL_COMPLETED, WEFT_FOREVER, done, &ndone, pending, &npending),
                  "weft_wait: task 1 is NULL");
    expect_einval(weft_wait(twice, 3, WEFT_ALL_COMPLETED, WEFT_FOREVER, done, &ndone, pending, &npending),
                  "weft_wait: tasks 0 and 2 are the same task (a)");
    expect_einval(weft_wait(ok, 2, 0, WEFT_FOREVER, done, &ndone, pending, &npending),
                  "weft_wait: return_when is 0; use WEFT_FIRST_COMPLETED");
    expect_einval(weft_wait(ok, 2, 4, WEFT_FOREVER, done, &ndone, pending, &npending), "return_when is 4");
    expect_einval(weft_wait(ok, 2, WEFT_ALL_COMPLETED, NAN, done, &ndone, pending, &npending),
                  "weft_wait: the timeout is NaN");
    expect_einval(weft_wait(with_self, 2, WEFT_FIRST_COMPLETED, WEFT_FOREVER, done, &ndone, pending, &npending),
                  "weft_wait: task 1 is the calling task itself");

    cr_expect_null(weft_as_completed_new(with_null, 2, WEFT_FOREVER));
    cr_expect_str_eq(weft_errmsg(), "weft_as_completed_new: task 1 is NULL (did weft_spawn fail?)");
    cr_expect_null(weft_as_completed_new(twice, 3, WEFT_FOREVER));
    cr_expect(strstr(weft_errmsg(), "tasks 0 and 2 are the same task") != NULL, "%s", weft_errmsg());
    cr_expect_null(weft_as_completed_new(ok, 2, NAN));
    cr_expect(strstr(weft_errmsg(), "the timeout is NaN") != NULL, "%s", weft_errmsg());
    cr_expect_null(weft_as_completed_new(NULL, 1, WEFT_FOREVER));
    cr_expect(strstr(weft_errmsg(), "tasks is NULL but n is 1") != NULL, "%s", weft_errmsg());
    weft_task *t = (weft_task *)1;
    expect_einval(weft_as_completed_next(NULL, &t), "the iterator is NULL");
    cr_expect_null(t);

    /* No tasks at all is an empty iteration, as in asyncio. */
    weft_as_completed *empty = weft_as_completed_new(NULL, 0, WEFT_FOREVER);
    cr_expect_not_null(empty);
    cr_expect_eq(weft_as_completed_next(empty, &t), 0);
    weft_as_completed_free(empty);

    expect_einval(weft_shield(NULL, NULL), "weft_shield: the task is NULL");
    expect_einval(weft_shield(weft_current(), NULL), "weft_shield: a task cannot await itself");

    /* None of the refused calls touched the tasks. */
    cr_expect_eq(strcmp(trace_text, ""), 0, "a refused call let the tasks run: %s", trace_text);
    expect_outcome(a, 1, 0, NULL);
    expect_outcome(b, 2, 0, NULL);
    return NULL;
}

Test(wait, bad_arguments_are_refused_with_a_message)
{
    job jobs[2] = {{.name = "a", .sleep = 0.01, .value = 1}, {.name = "b", .sleep = 0.02, .value = 2}};
    reset_jobs(jobs, 2);
    trace_reset();
    cr_assert_eq(run_virtual(bad_args_main, jobs, NULL), 0, "%s", weft_errmsg());
}

Test(wait, outside_a_loop)
{
    weft_task *none[1] = {NULL};
    size_t ndone = 3;
    cr_assert_eq(weft_wait(none, 1, WEFT_ALL_COMPLETED, WEFT_FOREVER, NULL, &ndone, NULL, NULL), WEFT_ENOTINLOOP);
    cr_assert_eq(ndone, 0);
    cr_assert(strstr(weft_errmsg(), "weft_wait must be called from a task") != NULL, "%s", weft_errmsg());
    cr_assert_null(weft_as_completed_new(none, 1, WEFT_FOREVER));
    cr_assert_eq(weft_shield(NULL, NULL), WEFT_ENOTINLOOP);
}

/* ---- as_completed ------------------------------------------------------------- */

typedef struct ac_step {
    int rc;
    weft_task *task;
    double at;
} ac_step;

static void *as_completed_order_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = spawn_job(&jobs[i]);
    weft_as_completed *ac = weft_as_completed_new(tasks, 3, WEFT_FOREVER);
    cr_expect_not_null(ac, "%s", weft_errmsg());
    const int expected[3] = {1, 2, 0};
    const double at[3] = {0.1, 0.2, 0.3};
    for (int i = 0; i < 3; i++) {
        weft_task *t = NULL;
        cr_expect_eq(weft_as_completed_next(ac, &t), 1);
        cr_expect_eq(t, tasks[expected[i]], "step %d gave the wrong task", i);
        cr_expect(time_is(weft_time(), at[i]), "step %d at %f", i, weft_time());
        cr_expect(weft_task_done(t));
        trace("got-%s", weft_task_name(t));
    }
    weft_task *t = (weft_task *)1;
    cr_expect_eq(weft_as_completed_next(ac, &t), 0);
    cr_expect_null(t);
    cr_expect_eq(weft_as_completed_next(ac, &t), 0, "exhaustion is not sticky");
    cr_expect(time_is(weft_time(), 0.3));
    weft_as_completed_free(ac);
    for (int i = 0; i < 3; i++)
        expect_outcome(tasks[i], jobs[i].value, 0, NULL);
    return NULL;
}

Test(as_completed, completion_order_at_the_completion_times)
{
    job jobs[3] = {
        {.name = "x", .sleep = 0.3, .value = 1},
        {.name = "y", .sleep = 0.1, .value = 2},
        {.name = "z", .sleep = 0.2, .value = 3},
    };
    reset_jobs(jobs, 3);
    trace_reset();
    cr_assert_eq(run_virtual(as_completed_order_main, jobs, NULL), 0, "%s", weft_errmsg());
    cr_assert_str_eq(trace_text, "y got-y z got-z x got-x");
}

static void *finished_first_main(void *arg)
{
    job *jobs = arg;
    weft_task *b = spawn_job(&jobs[0]), *c = spawn_job(&jobs[1]), *d = spawn_job(&jobs[2]), *a = spawn_job(&jobs[3]);
    cr_expect_eq(weft_yield(), 0); /* c and a end; b and d sleep */
    weft_task *tasks[4] = {b, c, d, a};
    weft_as_completed *ac = weft_as_completed_new(tasks, 4, WEFT_FOREVER);
    weft_task *t;
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(weft_as_completed_next(ac, &t), 1);
        trace("got-%s@%.2f", weft_task_name(t), weft_time());
    }
    cr_expect_eq(weft_as_completed_next(ac, &t), 0);
    weft_as_completed_free(ac);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(weft_await(tasks[i], NULL), 0);
    return NULL;
}

Test(as_completed, tasks_already_finished_come_first_in_argument_order)
{
    job jobs[4] = {
        {.name = "b", .sleep = 0.1},
        {.name = "c", .sleep = -1},
        {.name = "d", .sleep = 0.05},
        {.name = "a", .sleep = -1},
    };
    reset_jobs(jobs, 4);
    trace_reset();
    cr_assert_eq(run_virtual(finished_first_main, jobs, NULL), 0, "%s", weft_errmsg());
    cr_assert_str_eq(trace_text, "c a got-c@0.00 got-a@0.00 d got-d@0.05 b got-b@0.10");
}

static void *ac_timeout_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = spawn_job(&jobs[i]);
    weft_as_completed *ac = weft_as_completed_new(tasks, 3, 0.2);
    weft_task *t = NULL;
    cr_expect_eq(weft_as_completed_next(ac, &t), 1);
    cr_expect_eq(t, tasks[0]);
    cr_expect(time_is(weft_time(), 0.1));
    cr_expect_eq(weft_as_completed_next(ac, &t), -ETIMEDOUT);
    cr_expect_null(t);
    cr_expect(time_is(weft_time(), 0.2), "timed out at %f", weft_time());
    cr_expect_str_eq(weft_errmsg(), "as_completed: timed out after 0.2 s with 2 of 3 tasks unfinished "
                                    "(none was cancelled)");
    cr_expect_eq(weft_as_completed_next(ac, &t), -ETIMEDOUT, "the timeout is not sticky");
    cr_expect(time_is(weft_time(), 0.2));
    /* Tasks finishing after the deadline are not handed out: still -ETIMEDOUT. */
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect_eq(weft_as_completed_next(ac, &t), -ETIMEDOUT);
    weft_as_completed_free(ac);
    for (int i = 0; i < 3; i++)
        expect_outcome(tasks[i], jobs[i].value, 0, NULL);
    return NULL;
}

Test(as_completed, timeout_cancels_nothing_and_repeats)
{
    job jobs[3] = {
        {.name = "p", .sleep = 0.1, .value = 1},
        {.name = "q", .sleep = 0.3, .value = 2},
        {.name = "r", .sleep = 0.5, .value = 3},
    };
    reset_jobs(jobs, 3);
    cr_assert_eq(run_virtual(ac_timeout_main, jobs, NULL), 0, "%s", weft_errmsg());
    cr_assert_eq(jobs[1].sleep_rc, 0, "as_completed's timeout cancelled a task");
    cr_assert_eq(jobs[2].sleep_rc, 0, "as_completed's timeout cancelled a task");
    cr_assert(time_is(jobs[2].finished_at, 0.5));
}

/* asyncio's order: what finished before the deadline is handed out before the
 * TimeoutError, even when asked for after the deadline. */
static void *finished_before_deadline_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[2] = {spawn_job(&jobs[0]), spawn_job(&jobs[1])};
    weft_as_completed *ac = weft_as_completed_new(tasks, 2, 0.2);
    cr_expect_eq(weft_sleep(0.25), 0);
    weft_task *t = NULL;
    cr_expect_eq(weft_as_completed_next(ac, &t), 1);
    cr_expect_eq(t, tasks[0]);
    cr_expect_eq(weft_as_completed_next(ac, &t), -ETIMEDOUT);
    weft_as_completed_free(ac);

    /* A deadline already passed: the finished tasks, then -ETIMEDOUT at once. */
    ac = weft_as_completed_new(tasks, 2, 0);
    cr_expect_eq(weft_as_completed_next(ac, &t), 1);
    cr_expect_eq(t, tasks[0]);
    cr_expect_eq(weft_as_completed_next(ac, &t), -ETIMEDOUT);
    cr_expect(time_is(weft_time(), 0.25));
    weft_as_completed_free(ac);

    /* All finished before the deadline: no timeout ever. */
    cr_expect_eq(weft_sleep(1), 0);
    ac = weft_as_completed_new(tasks, 2, 0);
    cr_expect_eq(weft_as_completed_next(ac, &t), 1);
    cr_expect_eq(weft_as_completed_next(ac, &t), 1);
    cr_expect_eq(weft_as_completed_next(ac, &t), 0);
    weft_as_completed_free(ac);
    for (int i = 0; i < 2; i++)
        cr_expect_eq(weft_await(tasks[i], NULL), 0);
    return NULL;
}

Test(as_completed, finished_before_the_deadline_still_handed_out)
{
    job jobs[2] = {{.name = "early", .sleep = 0.1}, {.name = "late", .sleep = 0.3}};
    reset_jobs(jobs, 2);
    cr_assert_eq(run_virtual(finished_before_deadline_main, jobs, NULL), 0, "%s", weft_errmsg());
}

typedef struct ac_consumer {
    job *jobs;
    weft_task *tasks[2];
    int rcs[4];
    double at[4];
} ac_consumer;

static void *consumer_task(void *arg)
{
    ac_consumer *c = arg;
    weft_as_completed *ac = weft_as_completed_new(c->tasks, 2, WEFT_FOREVER);
    weft_task *t;
    c->rcs[0] = weft_as_completed_next(ac, &t);
    c->at[0] = weft_time();
    /* Level-triggered: while cancelled, it keeps returning -ECANCELED. */
    c->rcs[1] = weft_as_completed_next(ac, &t);
    c->at[1] = weft_time();
    weft_uncancel();
    /* Taken back: the iterator is still usable. */
    c->rcs[2] = weft_as_completed_next(ac, &t);
    c->at[2] = weft_time();
    cr_expect_eq(t, c->tasks[0]);
    c->rcs[3] = weft_as_completed_next(ac, &t);
    c->at[3] = weft_time();
    cr_expect_eq(t, c->tasks[1]);
    weft_as_completed_free(ac);
    return NULL;
}

static void *ac_cancel_main(void *arg)
{
    ac_consumer *c = arg;
    c->tasks[0] = spawn_job(&c->jobs[0]);
    c->tasks[1] = spawn_job(&c->jobs[1]);
    weft_task *consumer = weft_spawn(consumer_task, c);
    cr_expect_eq(weft_sleep(0.05), 0);
    weft_cancel(consumer, NULL);
    cr_expect_eq(weft_await(consumer, NULL), 0);
    for (int i = 0; i < 2; i++)
        cr_expect_eq(weft_await(c->tasks[i], NULL), 0);
    return NULL;
}

Test(as_completed, cancelled_consumer_keeps_the_iterator)
{
    job jobs[2] = {{.name = "one", .sleep = 0.1}, {.name = "two", .sleep = 0.2}};
    reset_jobs(jobs, 2);
    ac_consumer c = {.jobs = jobs};
    cr_assert_eq(run_virtual(ac_cancel_main, &c, NULL), 0, "%s", weft_errmsg());
    cr_assert_eq(c.rcs[0], -ECANCELED);
    cr_assert(time_is(c.at[0], 0.05));
    cr_assert_eq(c.rcs[1], -ECANCELED);
    cr_assert(time_is(c.at[1], 0.05));
    cr_assert_eq(c.rcs[2], 1);
    cr_assert(time_is(c.at[2], 0.1));
    cr_assert_eq(c.rcs[3], 1);
    cr_assert(time_is(c.at[3], 0.2));
    cr_assert_eq(jobs[0].sleep_rc, 0, "the consumer's cancellation reached a task");
    cr_assert_eq(jobs[1].sleep_rc, 0, "the consumer's cancellation reached a task");
}

/* Freeing early unhooks everything: tasks end and the deadline passes harmlessly
 * (under ASan a listener or timer left behind would touch freed memory). */
static void *free_early_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[2] = {spawn_job(&jobs[0]), spawn_job(&jobs[1])};
    weft_as_completed *ac = weft_as_completed_new(tasks, 2, 0.15);
    weft_task *t;
    cr_expect_eq(weft_as_completed_next(ac, &t), 1);
    weft_as_completed_free(ac);
    cr_expect_eq(weft_sleep(1), 0);
    for (int i = 0; i < 2; i++)
        cr_expect_eq(weft_await(tasks[i], NULL), 0);
    return NULL;
}

Test(as_completed, free_before_the_end_unhooks_everything)
{
    job jobs[2] = {{.name = "one", .sleep = 0.1}, {.name = "two", .sleep = 0.2}};
    reset_jobs(jobs, 2);
    cr_assert_eq(run_virtual(free_early_main, jobs, NULL), 0, "%s", weft_errmsg());
}

static void *second_consumer(void *arg)
{
    weft_as_completed *ac = arg;
    weft_task *t;
    cr_expect_eq(weft_as_completed_next(ac, &t), WEFT_ESTATE);
    cr_expect(strstr(weft_errmsg(), "is already waiting on this iterator") != NULL, "%s", weft_errmsg());
    return NULL;
}

static void *two_consumers_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[1] = {spawn_job(&jobs[0])};
    weft_as_completed *ac = weft_as_completed_new(tasks, 1, WEFT_FOREVER);
    weft_task *other = weft_spawn(second_consumer, ac);
    weft_task *t;
    cr_expect_eq(weft_as_completed_next(ac, &t), 1);
    cr_expect_eq(weft_await(other, NULL), 0);
    weft_as_completed_free(ac);
    cr_expect_eq(weft_await(tasks[0], NULL), 0);
    return NULL;
}

Test(as_completed, one_waiter_at_a_time)
{
    job jobs[1] = {{.name = "one", .sleep = 0.1}};
    reset_jobs(jobs, 1);
    cr_assert_eq(run_virtual(two_consumers_main, jobs, NULL), 0, "%s", weft_errmsg());
}

/* An iterator outlives the loop: freeing it afterwards touches nothing of the loop's. */
static void *outlive_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[2] = {spawn_job(&jobs[0]), spawn_job(&jobs[1])};
    weft_as_completed *ac = weft_as_completed_new(tasks, 2, 5);
    weft_detach(tasks[0]);
    weft_detach(tasks[1]);
    cr_expect_eq(weft_yield(), 0); /* they start sleeping */
    return ac;
}

Test(as_completed, freed_after_the_loop_ended)
{
    job jobs[2] = {{.name = "one", .sleep = 10}, {.name = "two", .sleep = 20}};
    reset_jobs(jobs, 2);
    void *ac = NULL;
    cr_assert_eq(run_virtual(outlive_main, jobs, &ac), 0, "%s", weft_errmsg());
    cr_assert_not_null(ac);
    cr_assert_eq(jobs[0].sleep_rc, -ECANCELED, "the loop's end did not cancel the leftover task");
    weft_as_completed_free(ac);
}

/* Freeing the iterator under a task waiting in next is a mistake that must not
 * crash: that call returns WEFT_ESTATE and never touches the iterator again. */
typedef struct freed_under {
    weft_as_completed *ac;
    int rc;
    char msg[128];
} freed_under;

static void *waits_on_iterator(void *arg)
{
    freed_under *f = arg;
    weft_task *t = (weft_task *)1;
    f->rc = weft_as_completed_next(f->ac, &t);
    snprintf(f->msg, sizeof f->msg, "%s", weft_errmsg());
    cr_expect_null(t);
    return NULL;
}

static void *free_under_waiter_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[1] = {spawn_job(&jobs[0])};
    freed_under f = {.ac = weft_as_completed_new(tasks, 1, 0.5)};
    weft_task *consumer = weft_spawn_opts(waits_on_iterator, &f, &(weft_spawn_options){.name = "consumer"});
    cr_expect_eq(weft_sleep(0.05), 0);
    weft_as_completed_free(f.ac);
    cr_expect_eq(weft_await(consumer, NULL), 0);
    cr_expect_eq(f.rc, WEFT_ESTATE);
    cr_expect_str_eq(f.msg, "weft_as_completed_next: the iterator was freed while consumer waited on it");
    cr_expect(time_is(weft_time(), 0.05));
    cr_expect_eq(weft_await(tasks[0], NULL), 0);
    cr_expect_eq(weft_sleep(1), 0);
    return NULL;
}

Test(as_completed, freed_under_a_waiting_task)
{
    job jobs[1] = {{.name = "one", .sleep = 0.1}};
    reset_jobs(jobs, 1);
    cr_assert_eq(run_virtual(free_under_waiter_main, jobs, NULL), 0, "%s", weft_errmsg());
}

/* ---- shield --------------------------------------------------------------------- */

static void *shield_normal_main(void *arg)
{
    job *jobs = arg;
    weft_task *t = spawn_job(&jobs[0]);
    void *r = NULL;
    cr_expect_eq(weft_shield(t, &r), 0);
    cr_expect_eq((intptr_t)r, 42);
    cr_expect(time_is(weft_time(), 0.1));
    /* An error comes through as from weft_await. */
    t = spawn_job(&jobs[1]);
    r = (void *)1;
    cr_expect_eq(weft_shield(t, &r), -EIO);
    cr_expect_null(r);
    cr_expect_str_eq(weft_errmsg(), "boom");
    cr_expect(time_is(weft_time(), 0.3));
    /* A finished task: at once, without suspending. */
    t = spawn_job(&jobs[2]);
    cr_expect_eq(weft_sleep(0.01), 0);
    weft_task *other = weft_spawn(bystander, NULL);
    trace("shield");
    cr_expect_eq(weft_shield(t, &r), 0);
    trace("returned");
    cr_expect_eq((intptr_t)r, 7);
    cr_expect_eq(weft_await(other, NULL), 0);
    return NULL;
}

Test(shield, returns_the_outcome_like_await)
{
    job jobs[3] = {
        {.name = "good", .sleep = 0.1, .value = 42},
        {.name = "bad", .sleep = 0.2, .err = -EIO, .msg = "boom"},
        {.name = "quick", .sleep = -1, .value = 7},
    };
    reset_jobs(jobs, 3);
    trace_reset();
    cr_assert_eq(run_virtual(shield_normal_main, jobs, NULL), 0, "%s", weft_errmsg());
    cr_assert_str_eq(trace_text, "good bad quick shield returned bystander");
}

typedef struct shielder {
    weft_task *task;
    int rc;
    double at;
    char msg[64];
} shielder;

static void *shielding_task(void *arg)
{
    shielder *s = arg;
    void *r = (void *)1;
    s->rc = weft_shield(s->task, &r);
    s->at = weft_time();
    snprintf(s->msg, sizeof s->msg, "%s", weft_errmsg());
    cr_expect_null(r);
    trace("shielder-out");
    return NULL;
}

static void *shield_cancel_main(void *arg)
{
    job *jobs = arg;
    shielder s[2] = {{.task = spawn_job(&jobs[0])}, {.task = spawn_job(&jobs[1])}};
    weft_task *w[2] = {weft_spawn(shielding_task, &s[0]), weft_spawn(shielding_task, &s[1])};
    cr_expect_eq(weft_sleep(0.05), 0);
    cr_expect(weft_cancel(w[0], "go away"));
    cr_expect(weft_cancel(w[1], NULL));
    for (int i = 0; i < 2; i++) {
        /* It returned while cancelled, so it ended cancelled (asyncio's rule). */
        cr_expect_eq(weft_await(w[i], NULL), -ECANCELED);
        cr_expect_eq(s[i].rc, -ECANCELED);
        cr_expect(time_is(s[i].at, 0.05), "shield returned at %f", s[i].at);
        cr_expect(!weft_task_done(s[i].task));
    }
    cr_expect_str_eq(s[0].msg, "go away");
    /* The handles were not consumed: the outcomes are still there. */
    expect_outcome(s[0].task, 42, 0, NULL);
    cr_expect(time_is(weft_time(), 0.1));
    expect_outcome(s[1].task, 0, -EIO, "boom");
    cr_expect(time_is(weft_time(), 0.2));
    return NULL;
}

Test(shield, cancelled_caller_leaves_the_task_running_and_its_handle_usable)
{
    job jobs[2] = {
        {.name = "good", .sleep = 0.1, .value = 42},
        {.name = "bad", .sleep = 0.2, .err = -EIO, .msg = "boom"},
    };
    reset_jobs(jobs, 2);
    trace_reset();
    cr_assert_eq(run_virtual(shield_cancel_main, jobs, NULL), 0, "%s", weft_errmsg());
    cr_assert_str_eq(trace_text, "shielder-out shielder-out good bad");
    cr_assert_eq(jobs[0].sleep_rc, 0, "the shielded task was cancelled");
    cr_assert_eq(jobs[1].sleep_rc, 0, "the shielded task was cancelled");
}

static void *shield_already_cancelled_main(void *arg)
{
    job *jobs = arg;
    weft_task *t = spawn_job(&jobs[0]);
    weft_cancel(weft_current(), NULL);
    cr_expect_eq(weft_shield(t, NULL), -ECANCELED);
    cr_expect_eq(weft_uncancel(), 0);
    /* Still ours to await, and it ran untouched. */
    expect_outcome(t, 42, 0, NULL);
    cr_expect(time_is(weft_time(), 0.1));
    return NULL;
}

Test(shield, already_cancelled_caller_returns_at_once)
{
    job jobs[1] = {{.name = "good", .sleep = 0.1, .value = 42}};
    reset_jobs(jobs, 1);
    cr_assert_eq(run_virtual(shield_already_cancelled_main, jobs, NULL), 0, "%s", weft_errmsg());
    cr_assert_eq(jobs[0].sleep_rc, 0);
}

static void *shield_cancelled_finished_main(void *arg)
{
    job *jobs = arg;
    weft_task *t = spawn_job(&jobs[0]);
    cr_expect_eq(weft_sleep(0.2), 0); /* t has finished */
    weft_cancel(weft_current(), NULL);
    /* -ECANCELED from weft_shield always leaves the handle with the caller. */
    cr_expect_eq(weft_shield(t, NULL), -ECANCELED);
    cr_expect_eq(weft_uncancel(), 0);
    expect_outcome(t, 42, 0, NULL);
    return NULL;
}

Test(shield, cancelled_caller_keeps_the_handle_of_a_finished_task)
{
    job jobs[1] = {{.name = "good", .sleep = 0.1, .value = 42}};
    reset_jobs(jobs, 1);
    cr_assert_eq(run_virtual(shield_cancelled_finished_main, jobs, NULL), 0, "%s", weft_errmsg());
}

static void *await_it(void *arg)
{
    return (void *)(intptr_t)weft_await(arg, NULL);
}

static void *shield_awaited_main(void *arg)
{
    job *jobs = arg;
    weft_task *t = spawn_job(&jobs[0]);
    weft_task *consumer = weft_spawn(await_it, t);
    cr_expect_eq(weft_yield(), 0); /* the consumer now awaits t */
    expect_einval(weft_shield(t, NULL), "is already being awaited or gathered");
    void *r = (void *)1;
    cr_expect_eq(weft_await(consumer, &r), 0);
    cr_expect_eq((intptr_t)r, 0, "the consumer's await gave %d", (int)(intptr_t)r);
    return NULL;
}

Test(shield, refuses_a_task_someone_else_awaits)
{
    job jobs[1] = {{.name = "good", .sleep = 0.1, .value = 42}};
    reset_jobs(jobs, 1);
    cr_assert_eq(run_virtual(shield_awaited_main, jobs, NULL), 0, "%s", weft_errmsg());
}

/* ---- weft_task_wait: many waiters, no consumption ------------------------------ */

TestSuite(task_wait, .timeout = 20);

static void *value_after(void *arg)
{
    double *seconds = arg;
    if (weft_sleep(*seconds) != 0)
        return weft_fail(-ECANCELED, "value_after cancelled");
    return (void *)(intptr_t)42;
}

static void *one_waiter(void *arg)
{
    void *result = NULL;
    int rc = weft_task_wait(arg, &result);
    trace("%s:%d:%ld@%g", weft_task_name(NULL), rc, (long)(intptr_t)result, weft_time());
    return NULL;
}

static void *many_waiters_main(void *arg)
{
    (void)arg;
    static double one = 1;
    weft_task *t = weft_spawn(value_after, &one);
    weft_task *w[3];
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "w%d", i);
        w[i] = weft_spawn_opts(one_waiter, t, &(weft_spawn_options){.name = name});
    }
    /* The owner takes the outcome (and frees the record) as the waiters wake. */
    void *result = NULL;
    cr_expect_eq(weft_await(t, &result), 0);
    cr_expect_eq((intptr_t)result, 42);
    cr_expect_eq(weft_gather(w, 3, NULL, NULL, 0), 0);
    return NULL;
}

Test(task_wait, many_tasks_wait_for_one_and_the_owner_still_awaits_it)
{
    trace_reset();
    cr_assert_eq(run_virtual(many_waiters_main, NULL, NULL), 0);
    cr_assert_str_eq(trace_text, "w0:0:42@1 w1:0:42@1 w2:0:42@1");
}

static void *failing_child(void *arg)
{
    (void)arg;
    weft_sleep(0.5);
    return weft_fail(-EIO, "disk gone");
}

static void *group_body_main(void *arg)
{
    (void)arg;
    weft_group *g = weft_group_new();
    static double one = 1;
    weft_task *fast = weft_group_spawn(g, value_after, &one);
    void *result = NULL;
    /* The body waits for one child of its group (weft_await refuses: the group owns it). */
    cr_expect_eq(weft_task_wait(fast, &result), 0);
    cr_expect_eq((intptr_t)result, 42);
    cr_expect(time_is(weft_time(), 1));
    weft_task *bad = weft_group_spawn(g, failing_child, NULL);
    cr_expect_eq(weft_task_wait(bad, NULL), -ECANCELED, "the body is cancelled by the group when bad fails");
    cr_expect_eq(weft_group_wait(g, -ECANCELED), WEFT_EGROUP);
    weft_group_free(g);
    return NULL;
}

Test(task_wait, a_group_body_waits_for_one_of_its_children)
{
    cr_assert_eq(run_virtual(group_body_main, NULL, NULL), 0);
}

static void *tw_waiter_of(void *arg)
{
    return (void *)(intptr_t)weft_task_wait(arg, NULL);
}

static void *tw_cancel_waiter_main(void *arg)
{
    (void)arg;
    static double ten = 10;
    weft_task *t = weft_spawn(value_after, &ten);
    weft_task *a = weft_spawn(tw_waiter_of, t);
    weft_task *b = weft_spawn(tw_waiter_of, t);
    cr_expect_eq(weft_sleep(1), 0);
    /* As asyncio's await: cancelling a waiter cancels the task it waits for, and
     * the other waiter sees that outcome. */
    weft_cancel(a, NULL);
    void *rb = NULL;
    cr_expect_eq(weft_await(a, NULL), -ECANCELED);
    cr_expect_eq(weft_await(b, &rb), 0);
    cr_expect_eq((intptr_t)rb, -ECANCELED);
    cr_expect_eq(weft_await(t, NULL), -ECANCELED);
    cr_expect(time_is(weft_time(), 1));
    /* A finished task: its outcome at once, and the handle is still the owner's. */
    static double none = 0;
    weft_task *done = weft_spawn(value_after, &none);
    cr_expect_eq(weft_sleep(0.1), 0);
    void *r = NULL;
    cr_expect_eq(weft_task_wait(done, &r), 0);
    cr_expect_eq((intptr_t)r, 42);
    cr_expect_eq(weft_await(done, &r), 0);
    cr_expect_eq(weft_task_wait(NULL, NULL), -EINVAL);
    cr_expect_eq(weft_task_wait(weft_current(), NULL), -EINVAL);
    return NULL;
}

Test(task_wait, a_cancelled_waiter_cancels_the_task_as_asyncio_does)
{
    cr_assert_eq(run_virtual(tw_cancel_waiter_main, NULL, NULL), 0);
}
