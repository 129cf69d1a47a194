/*
 * test_group.c — weft_group (asyncio.TaskGroup) as a user sees it: leaving waits for
 * every child; the first failure cancels the siblings and the body, and every error
 * comes back in one group in completion order; cancellation from outside; spawning
 * from children and while waiting; what is refused, and with which message.
 */
#include "common.h"

TestSuite(group, .timeout = 20);

/* ---- helpers ---------------------------------------------------------------- */

/* What a child does: sleep, then succeed with `value` or fail with err/msg. When its
 * sleep is cancelled it may clean up for `cleanup_sleep` seconds (surviving the
 * cancellation meanwhile) and may then fail with cleanup_err/cleanup_msg. */
typedef struct job {
    const char *name;
    double sleep;
    intptr_t value;
    int err;
    const char *msg;
    double cleanup_sleep;
    int cleanup_err;
    const char *cleanup_msg;
    int sleep_rc;       /* what its sleep returned (1: it never ran) */
    double ended_at;    /* -1 until it reached its end */
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    trace("%s+", j->name);
    j->sleep_rc = weft_sleep(j->sleep);
    if (j->sleep_rc == -ECANCELED) {
        trace("%s:cancelled", j->name);
        if (j->cleanup_sleep > 0) {
            weft_uncancel();
            cr_expect_eq(weft_sleep(j->cleanup_sleep), 0, "%s: the clean-up sleep was interrupted", j->name);
        }
        j->ended_at = weft_time();
        if (j->cleanup_err)
            return weft_fail(j->cleanup_err, "%s", j->cleanup_msg);
        return weft_fail(-ECANCELED, "%s stopped", j->name);
    }
    j->ended_at = weft_time();
    trace("%s-", j->name);
    if (j->err)
        return weft_fail(j->err, "%s", j->msg);
    return (void *)j->value;
}

static void reset_jobs(job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jobs[i].sleep_rc = 1;
        jobs[i].ended_at = -1;
    }
}

static weft_task *spawn_job(weft_group *g, job *j)
{
    return weft_group_spawn_opts(g, run_job, j, &(weft_spawn_options){.name = j->name});
}

/* Compares one item of an error group; `where` names it in failure messages. */
static void expect_item(const weft_error_item *it, int code, const char *task, const char *msg, const char *where)
{
    cr_expect_eq(it->code, code, "%s: code %s, expected %s", where, weft_errname(it->code), weft_errname(code));
    cr_expect_str_eq(it->task, task, "%s: task", where);
    cr_expect_str_eq(it->msg, msg, "%s: message", where);
}

/* Runs main_fn inside a task named "owner" spawned from the loop's main task, so
 * error items and messages name the owner predictably; returns its outcome. */
typedef struct owner_run {
    weft_fn fn;
    void *arg;
    weft_spawn_options opts;
    int rc;
    char msg[256];
} owner_run;

static void *owner_main(void *arg)
{
    owner_run *o = arg;
    o->opts.name = "owner";
    weft_task *t = weft_spawn_opts(o->fn, o->arg, &o->opts);
    o->rc = weft_await(t, NULL);
    snprintf(o->msg, sizeof o->msg, "%s", weft_errmsg());
    return NULL;
}

static int run_as_owner(weft_fn fn, void *arg, int compact)
{
    owner_run o = {.fn = fn, .arg = arg, .opts = {.compact = compact}};
    cr_assert_eq(run_virtual(owner_main, &o, NULL), 0, "the loop failed: %s", weft_errmsg());
    return o.rc;
}

/* ---- the success path (seed s4_taskgroup) ----------------------------------- */

static void *coro(void *arg)
{
    job *j = arg;
    trace("%s starts", j->name);
    cr_expect_eq(weft_sleep(j->sleep), 0);
    trace("%s ends", j->name);
    return (void *)j->name;
}

typedef struct seed_report {
    int rc;
    double left_at;
    void *r1, *r2;
    int rc1, rc2;
} seed_report;

static seed_report seed;

static void *seed_main(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    cr_expect_not_null(g, "%s", weft_errmsg());
    weft_task *t1 = weft_group_spawn(g, coro, &jobs[0]);
    weft_task *t2 = weft_group_spawn(g, coro, &jobs[1]);
    seed.rc = weft_group_wait(g, 0);
    seed.left_at = weft_time();
    trace("left");
    seed.rc1 = weft_task_result(t1, &seed.r1);
    seed.rc2 = weft_task_result(t2, &seed.r2);
    cr_expect(weft_task_done(t1) && weft_task_done(t2));
    weft_group_free(g);
    return NULL;
}

Test(group, leaving_waits_for_every_child_and_results_stay_readable)
{
    job jobs[2] = {{.name = "coro1", .sleep = 2}, {.name = "coro2", .sleep = 1}};
    trace_reset();
    memset(&seed, 0, sizeof seed);
    cr_assert_eq(run_virtual(seed_main, jobs, NULL), 0);
    cr_assert_eq(seed.rc, 0, "weft_group_wait returned %s", weft_errname(seed.rc));
    cr_assert(time_is(seed.left_at, 2.0), "the group was left at %f, not 2.0 (children run concurrently)",
              seed.left_at);
    cr_assert_str_eq(trace_text, "coro1 starts coro2 starts coro2 ends coro1 ends left");
    cr_assert_eq(seed.rc1, 0);
    cr_assert_eq(seed.rc2, 0);
    cr_assert_str_eq(seed.r1, "coro1");
    cr_assert_str_eq(seed.r2, "coro2");
}

/* ---- the first failure cancels the siblings and the body --------------------- */

typedef struct failure_report {
    int body_rc;
    double body_interrupted_at;
    bool cancelled_in_body;
    int rc;
    double left_at;
    char msg[256];
    size_t count;
    weft_error_item items[4];
    char item_msgs[4][64], item_tasks[4][32];
    bool nested[4];
    bool cancelled_after;
    int later_sleep_rc;
    double later_at;
    int quiet_rc;
} failure_report;

static failure_report fr;

static void copy_group(const weft_error_group *eg)
{
    fr.count = eg ? eg->count : 0;
    for (size_t i = 0; i < fr.count && i < 4; i++) {
        fr.items[i] = eg->items[i];
        snprintf(fr.item_msgs[i], sizeof fr.item_msgs[i], "%s", eg->items[i].msg);
        snprintf(fr.item_tasks[i], sizeof fr.item_tasks[i], "%s", eg->items[i].task);
        fr.items[i].msg = fr.item_msgs[i];
        fr.items[i].task = fr.item_tasks[i];
        fr.nested[i] = eg->items[i].nested != NULL;
    }
}

static void *failure_body(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    weft_task *kids[3];
    for (int i = 0; i < 3; i++)
        kids[i] = spawn_job(g, &jobs[i]);
    fr.body_rc = weft_sleep(5);
    fr.body_interrupted_at = weft_time();
    fr.cancelled_in_body = weft_cancelled();
    trace("body:%s", weft_errname(fr.body_rc));
    fr.rc = weft_group_wait(g, fr.body_rc);
    fr.left_at = weft_time();
    trace("left");
    snprintf(fr.msg, sizeof fr.msg, "%s", weft_errmsg());
    copy_group(weft_errgroup());
    fr.cancelled_after = weft_cancelled();
    fr.later_sleep_rc = weft_sleep(1);
    fr.later_at = weft_time();
    fr.quiet_rc = weft_task_result(kids[2], NULL);
    weft_group_free(g);
    return NULL;
}

Test(group, first_failure_cancels_siblings_and_body_and_collects_every_error)
{
    job jobs[3] = {
        {.name = "failer", .sleep = 0.01, .err = -EPERM, .msg = "not allowed"},
        {.name = "sibling", .sleep = 1, .cleanup_err = -EIO, .cleanup_msg = "clean-up of sibling failed"},
        {.name = "quiet", .sleep = 1},
    };
    reset_jobs(jobs, 3);
    trace_reset();
    memset(&fr, 0, sizeof fr);
    int rc = run_as_owner(failure_body, jobs, 0);
    cr_assert_eq(rc, 0, "the owner ended with %s", weft_errname(rc));
    /* The body's suspension point was interrupted when the child failed. */
    cr_assert_eq(fr.body_rc, -ECANCELED);
    cr_assert(time_is(fr.body_interrupted_at, 0.01), "the body was interrupted at %f", fr.body_interrupted_at);
    cr_assert(fr.cancelled_in_body, "the body was not cancelled");
    cr_assert_eq(jobs[1].sleep_rc, -ECANCELED);
    cr_assert_eq(jobs[2].sleep_rc, -ECANCELED);
    cr_assert(time_is(jobs[2].ended_at, 0.01));
    cr_assert_str_eq(trace_text, "failer+ sibling+ quiet+ failer- sibling:cancelled quiet:cancelled "
                                 "body:ECANCELED left");
    /* Every error, in completion order: the failure, then the clean-up error. */
    cr_assert_eq(fr.rc, WEFT_EGROUP, "weft_group_wait returned %s", weft_errname(fr.rc));
    cr_assert(time_is(fr.left_at, 0.01), "left at %f", fr.left_at);
    cr_assert_eq(fr.count, 2, "%zu errors", fr.count);
    expect_item(&fr.items[0], -EPERM, "failer", "not allowed", "item 0");
    expect_item(&fr.items[1], -EIO, "sibling", "clean-up of sibling failed", "item 1");
    cr_assert(!fr.nested[0] && !fr.nested[1]);
    cr_assert_str_eq(fr.msg, "unhandled errors in the weft_group of owner (2 sub-errors); the first: failer "
                             "failed with EPERM: not allowed");
    /* The group took its cancellation of the owner back. */
    cr_assert(!fr.cancelled_after, "the owner was left cancelled");
    cr_assert_eq(fr.later_sleep_rc, 0);
    cr_assert(time_is(fr.later_at, 1.01), "a later sleep ended at %f", fr.later_at);
    cr_assert_eq(fr.quiet_rc, -ECANCELED, "the cancelled sibling's outcome: %s", weft_errname(fr.quiet_rc));
}

/* ---- the body's own error comes after the children's ------------------------ */

static void *parse_input(void *arg)
{
    (void)arg;
    return weft_fail(-EINVAL, "bad input at line %d", 3);
}

static void *body_error_body(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    spawn_job(g, &jobs[0]);
    spawn_job(g, &jobs[1]);
    cr_expect_eq(weft_sleep(0.5), 0);
    parse_input(NULL); /* asyncio's `await parse_input()` raising */
    int rc = weft_error();
    weft_error_clear();
    trace("body:%s", weft_errname(rc));
    fr.rc = weft_group_wait(g, rc);
    fr.left_at = weft_time();
    snprintf(fr.msg, sizeof fr.msg, "%s", weft_errmsg());
    copy_group(weft_errgroup());
    fr.cancelled_after = weft_cancelled();
    weft_group_free(g);
    return NULL;
}

Test(group, body_error_comes_after_the_errors_of_cancelled_children)
{
    job jobs[2] = {
        {.name = "a", .sleep = 10, .cleanup_sleep = 0.25, .cleanup_err = -EIO, .cleanup_msg = "a: flush failed"},
        {.name = "b", .sleep = 10, .cleanup_err = -EPIPE, .cleanup_msg = "b: peer gone"},
    };
    reset_jobs(jobs, 2);
    trace_reset();
    memset(&fr, 0, sizeof fr);
    cr_assert_eq(run_as_owner(body_error_body, jobs, 0), 0);
    cr_assert_str_eq(trace_text, "a+ b+ body:EINVAL a:cancelled b:cancelled");
    cr_assert_eq(fr.rc, WEFT_EGROUP, "weft_group_wait returned %s", weft_errname(fr.rc));
    /* a's clean-up takes 0.25 s: the group waited for it. */
    cr_assert(time_is(fr.left_at, 0.75), "left at %f", fr.left_at);
    cr_assert_eq(fr.count, 3, "%zu errors", fr.count);
    expect_item(&fr.items[0], -EPIPE, "b", "b: peer gone", "item 0");
    expect_item(&fr.items[1], -EIO, "a", "a: flush failed", "item 1");
    expect_item(&fr.items[2], -EINVAL, "owner", "bad input at line 3", "item 2 (the body)");
    cr_assert(!fr.cancelled_after, "the body's error left the owner cancelled");
}

static void *body_error_alone_body(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    spawn_job(g, &jobs[0]);
    parse_input(NULL);
    int rc = weft_error();
    weft_error_clear();
    fr.rc = weft_group_wait(g, rc);
    fr.left_at = weft_time();
    copy_group(weft_errgroup());
    weft_group_free(g);
    return NULL;
}

Test(group, body_error_alone_is_a_group_of_one_and_unstarted_children_never_run)
{
    job jobs[1] = {{.name = "never", .sleep = 1}};
    reset_jobs(jobs, 1);
    trace_reset();
    memset(&fr, 0, sizeof fr);
    cr_assert_eq(run_as_owner(body_error_alone_body, jobs, 0), 0);
    cr_assert_eq(fr.rc, WEFT_EGROUP);
    cr_assert(time_is(fr.left_at, 0.0));
    cr_assert_eq(fr.count, 1);
    expect_item(&fr.items[0], -EINVAL, "owner", "bad input at line 3", "the body's item");
    cr_assert_eq(jobs[0].sleep_rc, 1, "a child cancelled before it started still ran");
    cr_assert_str_eq(trace_text, "");
}

/* ---- a failure while the body waits in weft_group_wait ---------------------- */

static void *failure_while_waiting_body(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    spawn_job(g, &jobs[0]);
    spawn_job(g, &jobs[1]);
    fr.rc = weft_group_wait(g, 0);
    fr.left_at = weft_time();
    copy_group(weft_errgroup());
    fr.cancelled_after = weft_cancelled();
    fr.later_sleep_rc = weft_sleep(1);
    fr.later_at = weft_time();
    weft_group_free(g);
    return NULL;
}

Test(group, failure_while_the_body_waits_cancels_siblings_and_leaves_owner_uncancelled)
{
    job jobs[2] = {
        {.name = "slow", .sleep = 1},
        {.name = "failer", .sleep = 0.3, .err = -ENOENT, .msg = "no such thing"},
    };
    reset_jobs(jobs, 2);
    trace_reset();
    memset(&fr, 0, sizeof fr);
    cr_assert_eq(run_as_owner(failure_while_waiting_body, jobs, 0), 0);
    cr_assert_eq(fr.rc, WEFT_EGROUP);
    cr_assert(time_is(fr.left_at, 0.3), "left at %f", fr.left_at);
    cr_assert_eq(jobs[0].sleep_rc, -ECANCELED);
    cr_assert_eq(fr.count, 1);
    expect_item(&fr.items[0], -ENOENT, "failer", "no such thing", "item 0");
    cr_assert(!fr.cancelled_after, "the owner was left cancelled");
    cr_assert_eq(fr.later_sleep_rc, 0);
    cr_assert(time_is(fr.later_at, 1.3));
}

/* ---- cancellation of the owner from outside --------------------------------- */

typedef struct outside_report {
    int body_rc;
    double body_interrupted_at;
    int rc;
    double left_at;
    char msg[128];
    bool has_group;
    bool children_done;
    bool cancelled_after;
    size_t count;
    bool second_cancel_made;
} outside_report;

static outside_report outside;

static void *outside_body(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    weft_task *kids[2] = {spawn_job(g, &jobs[0]), spawn_job(g, &jobs[1])};
    outside.body_rc = weft_sleep(10);
    outside.body_interrupted_at = weft_time();
    outside.rc = weft_group_wait(g, outside.body_rc);
    outside.left_at = weft_time();
    snprintf(outside.msg, sizeof outside.msg, "%s", weft_errmsg());
    outside.has_group = weft_errgroup() != NULL;
    outside.count = weft_errgroup() ? weft_errgroup()->count : 0;
    outside.children_done = weft_task_done(kids[0]) && weft_task_done(kids[1]);
    outside.cancelled_after = weft_cancelled();
    weft_group_free(g);
    return weft_fail(outside.rc, "%s", weft_errmsg());
}

static void *outside_main(void *arg)
{
    weft_task *owner = weft_spawn_opts(outside_body, arg, &(weft_spawn_options){.name = "owner"});
    cr_expect_eq(weft_sleep(1), 0);
    weft_cancel(owner, NULL);
    /* Cancelled again while it waits for the children's clean-up: the wait goes on. */
    cr_expect_eq(weft_sleep(0.2), 0);
    outside.second_cancel_made = weft_cancel(owner, NULL);
    int rc = weft_await(owner, NULL);
    return (void *)(intptr_t)rc;
}

Test(group, cancel_from_outside_cancels_children_waits_for_them_and_returns_ecanceled)
{
    job jobs[2] = {
        {.name = "worker", .sleep = 10},
        {.name = "tidy", .sleep = 10, .cleanup_sleep = 0.5},
    };
    reset_jobs(jobs, 2);
    trace_reset();
    memset(&outside, 0, sizeof outside);
    void *result = NULL;
    cr_assert_eq(run_virtual(outside_main, jobs, &result), 0);
    cr_assert_eq(outside.body_rc, -ECANCELED);
    cr_assert(time_is(outside.body_interrupted_at, 1.0));
    cr_assert_eq(jobs[0].sleep_rc, -ECANCELED);
    cr_assert(time_is(jobs[0].ended_at, 1.0));
    cr_assert_eq(jobs[1].sleep_rc, -ECANCELED);
    cr_assert(time_is(jobs[1].ended_at, 1.5));
    cr_assert(outside.second_cancel_made, "the owner had already finished at 1.2");
    cr_assert_eq(outside.rc, -ECANCELED, "weft_group_wait returned %s", weft_errname(outside.rc));
    cr_assert(time_is(outside.left_at, 1.5), "left at %f: the second cancellation cut the wait short",
              outside.left_at);
    cr_assert(!outside.has_group, "a plain cancellation came with an error group");
    cr_assert_str_eq(outside.msg, "owner was cancelled");
    cr_assert(outside.children_done);
    cr_assert(outside.cancelled_after, "the outside cancellation was taken back");
    cr_assert_eq((intptr_t)result, -ECANCELED, "the owner ended with %s", weft_errname((int)(intptr_t)result));
}

Test(group, child_errors_have_priority_over_an_outside_cancellation)
{
    job jobs[2] = {
        {.name = "worker", .sleep = 10},
        {.name = "tidy", .sleep = 10, .cleanup_sleep = 0.5, .cleanup_err = -EIO, .cleanup_msg = "tidy failed"},
    };
    reset_jobs(jobs, 2);
    memset(&outside, 0, sizeof outside);
    void *result = NULL;
    cr_assert_eq(run_virtual(outside_main, jobs, &result), 0);
    cr_assert_eq(outside.rc, WEFT_EGROUP, "weft_group_wait returned %s", weft_errname(outside.rc));
    cr_assert(time_is(outside.left_at, 1.5));
    cr_assert_eq(outside.count, 1);
    cr_assert(outside.cancelled_after, "the outside cancellation was taken back");
    /* It passed the group on: an error, unlike a value, is not turned into a cancellation. */
    cr_assert_eq((intptr_t)result, WEFT_EGROUP, "the owner ended with %s", weft_errname((int)(intptr_t)result));
}

static void *cancel_while_waiting_body(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    weft_task *kids[2] = {spawn_job(g, &jobs[0]), spawn_job(g, &jobs[1])};
    outside.rc = weft_group_wait(g, 0);
    outside.left_at = weft_time();
    snprintf(outside.msg, sizeof outside.msg, "%s", weft_errmsg());
    outside.children_done = weft_task_done(kids[0]) && weft_task_done(kids[1]);
    outside.cancelled_after = weft_cancelled();
    weft_group_free(g);
    return NULL;
}

static void *cancel_while_waiting_main(void *arg)
{
    weft_task *owner = weft_spawn_opts(cancel_while_waiting_body, arg, &(weft_spawn_options){.name = "owner"});
    cr_expect_eq(weft_sleep(1), 0);
    weft_cancel(owner, "shutting down");
    return (void *)(intptr_t)weft_await(owner, NULL);
}

Test(group, cancel_from_outside_while_the_owner_waits_cancels_the_children)
{
    job jobs[2] = {{.name = "worker", .sleep = 10}, {.name = "tidy", .sleep = 10, .cleanup_sleep = 0.5}};
    reset_jobs(jobs, 2);
    memset(&outside, 0, sizeof outside);
    void *result = NULL;
    cr_assert_eq(run_virtual(cancel_while_waiting_main, jobs, &result), 0);
    cr_assert_eq(jobs[0].sleep_rc, -ECANCELED);
    cr_assert(time_is(jobs[0].ended_at, 1.0), "worker ended at %f", jobs[0].ended_at);
    cr_assert_eq(outside.rc, -ECANCELED, "weft_group_wait returned %s", weft_errname(outside.rc));
    cr_assert(time_is(outside.left_at, 1.5), "left at %f", outside.left_at);
    cr_assert_str_eq(outside.msg, "shutting down");
    cr_assert(outside.children_done);
    cr_assert(outside.cancelled_after);
    cr_assert_eq((intptr_t)result, -ECANCELED);
}

static void *unseen_cancel_body(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    spawn_job(g, &jobs[0]);
    cr_expect_eq(weft_sleep(0.5), 0);
    /* Cancelled while running: no suspension point has reported it yet. */
    weft_cancel(weft_current(), NULL);
    outside.rc = weft_group_wait(g, 0);
    outside.left_at = weft_time();
    outside.cancelled_after = weft_cancelled();
    weft_group_free(g);
    return NULL;
}

Test(group, a_cancellation_the_body_has_not_seen_yet_is_taken_by_the_wait)
{
    job jobs[1] = {{.name = "worker", .sleep = 10}};
    reset_jobs(jobs, 1);
    memset(&outside, 0, sizeof outside);
    cr_assert_eq(run_as_owner(unseen_cancel_body, jobs, 0), -ECANCELED);
    cr_assert_eq(outside.rc, -ECANCELED, "weft_group_wait returned %s", weft_errname(outside.rc));
    cr_assert_eq(jobs[0].sleep_rc, -ECANCELED);
    cr_assert(time_is(outside.left_at, 0.5), "left at %f: the children were not cancelled", outside.left_at);
    cr_assert(outside.cancelled_after);
}

/* ---- spawning from a child and while the body waits ------------------------- */

typedef struct spawner_state {
    weft_group *g;
    job jobs[2];
    weft_task *late;
    double waiting_from;
} spawner_state;

static void *spawner(void *arg)
{
    spawner_state *s = arg;
    cr_expect_not_null(spawn_job(s->g, &s->jobs[0]), "%s", weft_errmsg());
    trace("spawned %s", s->jobs[0].name);
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect(time_is(s->waiting_from, 0.5), "the body is not waiting yet");
    s->late = spawn_job(s->g, &s->jobs[1]);
    cr_expect_not_null(s->late, "%s", weft_errmsg());
    trace("spawned %s", s->jobs[1].name);
    return NULL;
}

static void *spawn_from_child_body(void *arg)
{
    spawner_state *s = arg;
    s->g = weft_group_new();
    weft_group_spawn_opts(s->g, spawner, s, &(weft_spawn_options){.name = "spawner"});
    cr_expect_eq(weft_sleep(0.5), 0);
    s->waiting_from = weft_time();
    trace("body waits");
    fr.rc = weft_group_wait(s->g, 0);
    fr.left_at = weft_time();
    void *r = NULL;
    cr_expect_eq(weft_task_result(s->late, &r), 0);
    cr_expect_eq((intptr_t)r, 42);
    weft_group_free(s->g);
    return NULL;
}

Test(group, children_spawn_into_the_group_before_and_while_the_body_waits)
{
    spawner_state s = {.jobs = {{.name = "early", .sleep = 0.9}, {.name = "late", .sleep = 1.5, .value = 42}}};
    reset_jobs(s.jobs, 2);
    trace_reset();
    memset(&fr, 0, sizeof fr);
    cr_assert_eq(run_as_owner(spawn_from_child_body, &s, 0), 0);
    cr_assert_eq(fr.rc, 0, "weft_group_wait returned %s", weft_errname(fr.rc));
    cr_assert(time_is(fr.left_at, 2.5), "left at %f: a child spawned while waiting was not waited for",
              fr.left_at);
    cr_assert_str_eq(trace_text, "spawned early early+ body waits early- spawned late late+ late-");
}

/* ---- what is refused --------------------------------------------------------- */

typedef struct refusal_report {
    bool spawned_while_aborting, spawned_by_child_while_aborting, spawned_after;
    char aborting_msg[256], child_msg[256], after_msg[256];
    int second_wait, foreign_wait;
    char second_msg[128], foreign_msg[160];
    int rc;
} refusal_report;

static refusal_report refusal;
static weft_group *refusal_group;

static void *noop(void *arg)
{
    return arg;
}

static void *clean_up_spawner(void *arg)
{
    (void)arg;
    int rc = weft_sleep(10);
    cr_expect_eq(rc, -ECANCELED);
    refusal.spawned_by_child_while_aborting = weft_group_spawn(refusal_group, noop, NULL) != NULL;
    snprintf(refusal.child_msg, sizeof refusal.child_msg, "%s", weft_errmsg());
    return NULL;
}

static void *foreign_waiter(void *arg)
{
    (void)arg;
    refusal.foreign_wait = weft_group_wait(refusal_group, 0);
    snprintf(refusal.foreign_msg, sizeof refusal.foreign_msg, "%s", weft_errmsg());
    return NULL;
}

static void *refusal_body(void *arg)
{
    job *jobs = arg;
    weft_group *g = refusal_group = weft_group_new();
    weft_group_spawn_opts(g, foreign_waiter, NULL, &(weft_spawn_options){.name = "stranger"});
    weft_group_spawn_opts(g, clean_up_spawner, NULL, &(weft_spawn_options){.name = "helper"});
    spawn_job(g, &jobs[0]);
    int rc = weft_sleep(5);
    refusal.spawned_while_aborting = weft_group_spawn(g, noop, NULL) != NULL;
    snprintf(refusal.aborting_msg, sizeof refusal.aborting_msg, "%s", weft_errmsg());
    refusal.rc = weft_group_wait(g, rc);
    refusal.second_wait = weft_group_wait(g, 0);
    snprintf(refusal.second_msg, sizeof refusal.second_msg, "%s", weft_errmsg());
    refusal.spawned_after = weft_group_spawn(g, noop, NULL) != NULL;
    snprintf(refusal.after_msg, sizeof refusal.after_msg, "%s", weft_errmsg());
    weft_group_free(g);
    return NULL;
}

Test(group, spawn_after_a_failure_or_after_the_end_and_misplaced_waits_are_refused)
{
    job jobs[1] = {{.name = "failer", .sleep = 0.1, .err = -EIO, .msg = "broken"}};
    reset_jobs(jobs, 1);
    trace_reset();
    memset(&refusal, 0, sizeof refusal);
    cr_assert_eq(run_as_owner(refusal_body, jobs, 0), 0);
    cr_assert_eq(refusal.foreign_wait, WEFT_ESTATE);
    cr_assert_str_eq(refusal.foreign_msg, "weft_group_wait: called from stranger, but the group belongs to "
                                          "owner, which must leave it itself");
    cr_assert(!refusal.spawned_while_aborting, "the body spawned into a group shutting down");
    cr_assert_str_eq(refusal.aborting_msg, "weft_group_spawn: the weft_group of owner is shutting down because "
                                           "failer failed; no new task can join it");
    cr_assert(!refusal.spawned_by_child_while_aborting, "a child spawned into a group shutting down");
    cr_assert_str_eq(refusal.child_msg, refusal.aborting_msg);
    cr_assert_eq(refusal.rc, WEFT_EGROUP);
    cr_assert_eq(refusal.second_wait, WEFT_ESTATE);
    cr_assert_str_eq(refusal.second_msg, "weft_group_wait: the group has already been left (call "
                                         "weft_group_wait once per group)");
    cr_assert(!refusal.spawned_after, "a task joined a finished group");
    cr_assert_str_eq(refusal.after_msg, "weft_group_spawn: the weft_group of owner is finished (every child "
                                        "ended after weft_group_wait was called); open a new group");
}

static void *null_main(void *arg)
{
    (void)arg;
    cr_expect_null(weft_group_spawn(NULL, noop, NULL));
    cr_expect_not_null(strstr(weft_errmsg(), "the group is NULL"), "%s", weft_errmsg());
    cr_expect_eq(weft_group_wait(NULL, 0), -EINVAL);
    weft_group_free(NULL);
    weft_group *g = weft_group_new();
    cr_expect_null(weft_group_spawn(g, NULL, NULL), "a NULL function was spawned");
    cr_expect_str_eq(weft_errmsg(), "weft_spawn: the function is NULL");
    cr_expect_eq(weft_group_wait(g, 0), 0, "the failed spawn left something to wait for");
    weft_group_free(g);
    return NULL;
}

Test(group, null_arguments_and_outside_a_task)
{
    cr_assert_null(weft_group_new());
    cr_assert_not_null(strstr(weft_errmsg(), "weft_group_new must be called from a task"), "%s", weft_errmsg());
    cr_assert_eq(run_virtual(null_main, NULL, NULL), 0);
}

/* ---- a child's own group stays nested ---------------------------------------- */

static void *inner_owner(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    spawn_job(g, &jobs[0]);
    int rc = weft_group_wait(g, 0);
    weft_group_free(g);
    return weft_fail(rc, "%s", weft_errmsg()); /* passes the group on */
}

typedef struct nested_report {
    int rc;
    size_t count;
    int code;
    char task[32];
    size_t nested_count;
    int nested_code;
    char nested_task[32], nested_msg[64];
    bool nested_has_nested;
    int child_rc;
} nested_report;

static nested_report nested;

static void *nested_body(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    weft_task *child = weft_group_spawn_opts(g, inner_owner, jobs, &(weft_spawn_options){.name = "inner-owner"});
    nested.rc = weft_group_wait(g, 0);
    const weft_error_group *eg = weft_errgroup();
    cr_expect_not_null(eg);
    if (eg) {
        nested.count = eg->count;
        nested.code = eg->items[0].code;
        snprintf(nested.task, sizeof nested.task, "%s", eg->items[0].task);
        const weft_error_group *in = eg->items[0].nested;
        cr_expect_not_null(in, "the child's group was not kept");
        if (in) {
            nested.nested_count = in->count;
            nested.nested_code = in->items[0].code;
            snprintf(nested.nested_task, sizeof nested.nested_task, "%s", in->items[0].task);
            snprintf(nested.nested_msg, sizeof nested.nested_msg, "%s", in->items[0].msg);
            nested.nested_has_nested = in->items[0].nested != NULL;
        }
    }
    nested.child_rc = weft_task_result(child, NULL);
    weft_group_free(g);
    return NULL;
}

Test(group, a_childs_group_error_stays_nested)
{
    job jobs[1] = {{.name = "grandchild", .sleep = 0.2, .err = -EIO, .msg = "deep failure"}};
    reset_jobs(jobs, 1);
    trace_reset();
    memset(&nested, 0, sizeof nested);
    cr_assert_eq(run_as_owner(nested_body, jobs, 0), 0);
    cr_assert_eq(nested.rc, WEFT_EGROUP);
    cr_assert_eq(nested.count, 1, "the nested group was flattened into %zu items", nested.count);
    cr_assert_eq(nested.code, WEFT_EGROUP);
    cr_assert_str_eq(nested.task, "inner-owner");
    cr_assert_eq(nested.nested_count, 1);
    cr_assert_eq(nested.nested_code, -EIO);
    cr_assert_str_eq(nested.nested_task, "grandchild");
    cr_assert_str_eq(nested.nested_msg, "deep failure");
    cr_assert(!nested.nested_has_nested);
    cr_assert_eq(nested.child_rc, WEFT_EGROUP, "the child's own outcome changed");
}

static void *body_passes_inner_group(void *arg)
{
    job *jobs = arg;
    weft_group *outer = weft_group_new();
    weft_task *bystander = spawn_job(outer, &jobs[0]);
    weft_group *inner = weft_group_new();
    spawn_job(inner, &jobs[1]);
    int rc = weft_group_wait(inner, 0);
    weft_group_free(inner);
    /* The inner group took its cancellation back: the outer body goes on. */
    cr_expect(!weft_cancelled(), "the inner group left the owner cancelled");
    nested.rc = weft_group_wait(outer, rc);
    const weft_error_group *eg = weft_errgroup();
    cr_expect_not_null(eg);
    if (eg && eg->count == 1) {
        nested.count = eg->count;
        nested.code = eg->items[0].code;
        snprintf(nested.task, sizeof nested.task, "%s", eg->items[0].task);
        const weft_error_group *in = eg->items[0].nested;
        cr_expect_not_null(in, "the body's group was not kept");
        if (in) {
            nested.nested_count = in->count;
            nested.nested_code = in->items[0].code;
            snprintf(nested.nested_task, sizeof nested.nested_task, "%s", in->items[0].task);
            snprintf(nested.nested_msg, sizeof nested.nested_msg, "%s", in->items[0].msg);
        }
    }
    nested.child_rc = weft_task_result(bystander, NULL);
    weft_group_free(outer);
    return NULL;
}

Test(group, a_body_passing_on_an_inner_groups_error_keeps_it_nested)
{
    job jobs[2] = {
        {.name = "bystander", .sleep = 5},
        {.name = "inner-child", .sleep = 0.2, .err = -EIO, .msg = "inner failure"},
    };
    reset_jobs(jobs, 2);
    trace_reset();
    memset(&nested, 0, sizeof nested);
    cr_assert_eq(run_as_owner(body_passes_inner_group, jobs, 0), 0);
    cr_assert_eq(nested.rc, WEFT_EGROUP);
    cr_assert_eq(nested.count, 1);
    cr_assert_eq(nested.code, WEFT_EGROUP);
    cr_assert_str_eq(nested.task, "owner");
    cr_assert_eq(nested.nested_count, 1);
    cr_assert_eq(nested.nested_code, -EIO);
    cr_assert_str_eq(nested.nested_task, "inner-child");
    cr_assert_str_eq(nested.nested_msg, "inner failure");
    /* The body's error aborted the outer group at once. */
    cr_assert_eq(nested.child_rc, -ECANCELED);
    cr_assert(time_is(jobs[0].ended_at, 0.2), "the bystander ended at %f", jobs[0].ended_at);
}

/* ---- the group owns its children --------------------------------------------- */

typedef struct ownership_report {
    int await_rc, gather_rc, rc;
    char await_msg[160], gather_msg[160];
    double left_at;
    int child_rc;
    void *child_result;
} ownership_report;

static ownership_report own;

static void *ownership_main(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    weft_task *child = spawn_job(g, &jobs[0]);
    own.await_rc = weft_await(child, NULL);
    snprintf(own.await_msg, sizeof own.await_msg, "%s", weft_errmsg());
    weft_task *list[1] = {child};
    own.gather_rc = weft_gather(list, 1, NULL, NULL, 0);
    snprintf(own.gather_msg, sizeof own.gather_msg, "%s", weft_errmsg());
    weft_detach(child);
    fputs("detach returned\n", stderr);
    own.rc = weft_group_wait(g, 0);
    own.left_at = weft_time();
    own.child_rc = weft_task_result(child, &own.child_result);
    weft_group_free(g);
    return NULL;
}

static job ownership_jobs[1] = {{.name = "kept", .sleep = 1, .value = 7}};

static int ownership_scenario(void)
{
    reset_jobs(ownership_jobs, 1);
    memset(&own, 0, sizeof own);
    int rc = run_virtual(ownership_main, ownership_jobs, NULL);
    /* The checks: the exit status says which one failed. */
    if (rc != 0)
        return 10;
    if (own.await_rc != -EINVAL || !strstr(own.await_msg, "weft_await: kept belongs to a weft_group"))
        return 11;
    if (own.gather_rc != -EINVAL || !strstr(own.gather_msg, "belongs to a weft_group"))
        return 12;
    if (own.rc != 0 || !time_is(own.left_at, 1.0))
        return 13;
    if (own.child_rc != 0 || (intptr_t)own.child_result != 7)
        return 14;
    return 0;
}

Test(group, group_children_cannot_be_awaited_gathered_or_detached)
{
    child_outcome out;
    run_forked(ownership_scenario, &out);
    cr_assert(WIFEXITED(out.status), "the scenario died (status %#x): %s", out.status, out.stderr_text);
    cr_assert_eq(WEXITSTATUS(out.status), 0, "check %d failed; stderr:\n%s", WEXITSTATUS(out.status),
                 out.stderr_text);
    const char *report = strstr(out.stderr_text, "weft_detach(kept) ignored: the task belongs to a weft_group");
    cr_assert_not_null(report, "no report of the refused detach; stderr:\n%s", out.stderr_text);
    cr_assert_lt(report, strstr(out.stderr_text, "detach returned"));
}

/* ---- misuse reported on stderr ------------------------------------------------ */

static void *misuse_main(void *arg)
{
    (void)arg;
    weft_group *g = weft_group_new();
    weft_group_spawn_opts(g, noop, NULL, &(weft_spawn_options){.name = "quick"});
    weft_group_free(g); /* not left yet: reported, not freed */
    fputs("free returned\n", stderr);
    if (weft_group_wait(g, 0) != 0)
        return weft_fail(-EIO, "the group was unusable after the refused free");
    weft_group_free(g);
    return NULL;
}

static int free_misuse_scenario(void)
{
    return run_virtual(misuse_main, NULL, NULL) == 0 ? 0 : 3;
}

Test(group, freeing_a_group_not_left_is_reported_and_refused)
{
    child_outcome out;
    run_forked(free_misuse_scenario, &out);
    cr_assert(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "the scenario failed (status %#x): %s",
              out.status, out.stderr_text);
    const char *report = strstr(out.stderr_text, "weft_group_free ignored: the weft_group of Task-1 has not been "
                                                 "left; call weft_group_wait(g, rc) first");
    cr_assert_not_null(report, "no report; stderr:\n%s", out.stderr_text);
    cr_assert_lt(report, strstr(out.stderr_text, "free returned"));
}

/* An owner that returns without leaving its group is reported, and the errors of
 * its orphans too, as nobody can retrieve them. */
static weft_group *orphans_group;

static void *orphan_failer(void *arg)
{
    (void)arg;
    weft_sleep(1);
    return weft_fail(-EIO, "orphan failed");
}

static void *careless_owner(void *arg)
{
    (void)arg;
    orphans_group = weft_group_new();
    weft_group_spawn_opts(orphans_group, orphan_failer, NULL, &(weft_spawn_options){.name = "orphan"});
    return NULL; /* forgot weft_group_wait */
}

static void *orphans_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(careless_owner, NULL, &(weft_spawn_options){.name = "careless"});
    cr_expect_eq(weft_await(t, NULL), 0);
    fputs("owner gone\n", stderr);
    if (weft_group_spawn(orphans_group, noop, NULL) != NULL)
        return weft_fail(-EIO, "a child joined a group whose owner is gone");
    cr_expect_eq(weft_sleep(2), 0);
    fputs("main done\n", stderr);
    return NULL;
}

static int orphans_scenario(void)
{
    return run_virtual(orphans_main, NULL, NULL) == 0 ? 0 : 3;
}

Test(group, an_owner_returning_without_leaving_is_reported_and_orphan_errors_too)
{
    child_outcome out;
    run_forked(orphans_scenario, &out);
    cr_assert(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "the scenario failed (status %#x): %s",
              out.status, out.stderr_text);
    const char *gone = strstr(out.stderr_text, "careless returned without leaving its weft_group");
    cr_assert_not_null(gone, "no report; stderr:\n%s", out.stderr_text);
    cr_assert_lt(gone, strstr(out.stderr_text, "owner gone"));
    const char *orphan = strstr(out.stderr_text, "orphan failed with EIO");
    cr_assert_not_null(orphan, "the orphan's error was not reported; stderr:\n%s", out.stderr_text);
    cr_assert_not_null(strstr(orphan, "orphan failed ("), "stderr:\n%s", out.stderr_text);
    cr_assert_lt(orphan, strstr(out.stderr_text, "main done"));
    /* Reported once, not again when the loop ends. */
    cr_assert_null(strstr(orphan + 1, "orphan failed with"), "reported twice:\n%s", out.stderr_text);
}

/* ---- compact owner and children --------------------------------------------- */

static void *compact_body(void *arg)
{
    job *jobs = arg;
    weft_group *g = weft_group_new();
    for (int i = 0; i < 3; i++)
        weft_group_spawn_opts(g, run_job, &jobs[i], &(weft_spawn_options){.name = jobs[i].name, .compact = 1});
    fr.body_rc = weft_sleep(5);
    fr.rc = weft_group_wait(g, fr.body_rc);
    fr.left_at = weft_time();
    copy_group(weft_errgroup());
    fr.cancelled_after = weft_cancelled();
    weft_group_free(g);
    return NULL;
}

Test(group, compact_owner_and_children)
{
    job jobs[3] = {
        {.name = "c1", .sleep = 0.5, .value = 1},
        {.name = "c2", .sleep = 1, .err = -EIO, .msg = "c2 broke"},
        {.name = "c3", .sleep = 3, .cleanup_sleep = 0.5, .cleanup_err = -EPIPE, .cleanup_msg = "c3 cleanup"},
    };
    reset_jobs(jobs, 3);
    trace_reset();
    memset(&fr, 0, sizeof fr);
    cr_assert_eq(run_as_owner(compact_body, jobs, 1), 0);
    cr_assert_eq(fr.body_rc, -ECANCELED);
    cr_assert_eq(fr.rc, WEFT_EGROUP);
    cr_assert(time_is(fr.left_at, 1.5), "left at %f", fr.left_at);
    cr_assert_eq(fr.count, 2);
    expect_item(&fr.items[0], -EIO, "c2", "c2 broke", "item 0");
    expect_item(&fr.items[1], -EPIPE, "c3", "c3 cleanup", "item 1");
    cr_assert(!fr.cancelled_after);
}
