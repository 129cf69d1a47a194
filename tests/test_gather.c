/*
 * test_gather.c — weft_gather as a user sees it: results in argument order, the
 * first failure returned at once while the others run on, WEFT_RETURN_EXCEPTIONS,
 * cancellation of the gatherer, and the cases that need no waiting.
 */
#include "common.h"

TestSuite(gather, .timeout = 20);

/* A task description: sleep, then succeed with `value` or fail with `err`. */
typedef struct job {
    double sleep;
    intptr_t value;
    int err;
    const char *msg;
    int sleep_rc;       /* what its sleep returned */
    double finished_at; /* -1 until it reached its end */
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    j->sleep_rc = weft_sleep(j->sleep);
    j->finished_at = weft_time();
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

/* ---- results in argument order -------------------------------------------- */

static void *order_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = weft_spawn(run_job, &jobs[i]);
    void *results[3] = {0};
    int errs[3] = {7, 7, 7};
    cr_expect_eq(weft_gather(tasks, 3, results, errs, 0), 0);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq((intptr_t)results[i], jobs[i].value, "slot %d", i);
        cr_expect_eq(errs[i], 0, "slot %d", i);
    }
    cr_expect(time_is(weft_time(), 3.0), "gather ended at %f", weft_time());
    return NULL;
}

Test(gather, results_in_argument_order)
{
    job jobs[3] = {{.sleep = 3, .value = 10}, {.sleep = 1, .value = 20}, {.sleep = 2, .value = 30}};
    reset_jobs(jobs, 3);
    cr_assert_eq(run_virtual(order_main, jobs, NULL), 0);
    /* They really ran concurrently, finishing in the order of their sleeps. */
    cr_assert(time_is(jobs[0].finished_at, 3.0));
    cr_assert(time_is(jobs[1].finished_at, 1.0));
    cr_assert(time_is(jobs[2].finished_at, 2.0));
}

/* ---- without RETURN_EXCEPTIONS: the first failure, at once ---------------- */

typedef struct first_failure_report {
    int rc;
    double returned_at;
    char msg[64];
    int errs[3];
    void *results[3];
} first_failure_report;

static first_failure_report first_failure;

static void *first_failure_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = weft_spawn(run_job, &jobs[i]);
    first_failure.rc = weft_gather(tasks, 3, first_failure.results, first_failure.errs, 0);
    first_failure.returned_at = weft_time();
    snprintf(first_failure.msg, sizeof first_failure.msg, "%s", weft_errmsg());
    /* The others keep running: wait long enough to see them end. */
    cr_expect_eq(weft_sleep(10), 0);
    return NULL;
}

Test(gather, first_failure_returned_at_once)
{
    job jobs[3] = {
        {.sleep = 3, .value = 10},
        {.sleep = 1, .err = -EIO, .msg = "disk gone"},
        {.sleep = 2, .err = -EPERM, .msg = "not allowed"},
    };
    reset_jobs(jobs, 3);
    memset(&first_failure, 0, sizeof first_failure);
    first_failure.errs[0] = first_failure.errs[2] = 7;
    first_failure.results[1] = (void *)1;
    cr_assert_eq(run_virtual(first_failure_main, jobs, NULL), 0);
    cr_assert_eq(first_failure.rc, -EIO, "gather returned %d", first_failure.rc);
    cr_assert(time_is(first_failure.returned_at, 1.0), "gather returned at %f, not when the first failure happened",
              first_failure.returned_at);
    cr_assert_str_eq(first_failure.msg, "disk gone");
    cr_assert_eq(first_failure.errs[1], -EIO);
    cr_assert_null(first_failure.results[1]);
    cr_assert_eq(first_failure.errs[0], -EINPROGRESS, "errs[0] of a task still running: %d", first_failure.errs[0]);
    cr_assert_eq(first_failure.errs[2], -EINPROGRESS, "errs[2] of a task still running: %d", first_failure.errs[2]);
    /* The slower tasks were not cancelled: they ran to their ends. */
    cr_assert_eq(jobs[0].sleep_rc, 0, "the slow succeeding task was cancelled");
    cr_assert(time_is(jobs[0].finished_at, 3.0));
    cr_assert_eq(jobs[2].sleep_rc, 0, "the slow failing task was cancelled");
    cr_assert(time_is(jobs[2].finished_at, 2.0));
}

/* ---- with RETURN_EXCEPTIONS: every slot filled ------------------------------- */

static void *all_outcomes_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[4];
    for (int i = 0; i < 4; i++)
        tasks[i] = weft_spawn(run_job, &jobs[i]);
    void *results[4] = {(void *)1, (void *)1, (void *)1, (void *)1};
    int errs[4] = {7, 7, 7, 7};
    cr_expect_eq(weft_gather(tasks, 4, results, errs, WEFT_RETURN_EXCEPTIONS), 0);
    cr_expect(time_is(weft_time(), 3.0), "gather ended at %f", weft_time());
    cr_expect_eq((intptr_t)results[0], 10);
    cr_expect_eq(errs[0], 0);
    cr_expect_null(results[1]);
    cr_expect_eq(errs[1], -EIO);
    cr_expect_null(results[2]);
    cr_expect_eq(errs[2], -EPERM);
    cr_expect_eq((intptr_t)results[3], 40);
    cr_expect_eq(errs[3], 0);
    return NULL;
}

Test(gather, return_exceptions_fills_every_slot)
{
    job jobs[4] = {
        {.sleep = 3, .value = 10},
        {.sleep = 1, .err = -EIO, .msg = "disk gone"},
        {.sleep = 2, .err = -EPERM, .msg = "not allowed"},
        {.sleep = 0.5, .value = 40},
    };
    reset_jobs(jobs, 4);
    cr_assert_eq(run_virtual(all_outcomes_main, jobs, NULL), 0);
}

/* ---- weft_gather_msgs keeps every slot's message ---------------------------------- */

/* What msgs[] holds before the call: a slot left untouched is a bug, not a string to free. */
static char unset_msg[] = "unset";

static void free_msgs(char **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (msgs[i] != unset_msg)
            free(msgs[i]);
}

static void *messages_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = weft_spawn(run_job, &jobs[i]);
    int errs[3] = {7, 7, 7};
    char *msgs[3] = {unset_msg, unset_msg, unset_msg};
    cr_expect_eq(weft_gather_msgs(tasks, 3, NULL, errs, msgs, WEFT_RETURN_EXCEPTIONS), 0);
    cr_expect_eq(errs[0], -EIO);
    cr_expect_eq(errs[1], 0);
    cr_expect_eq(errs[2], -EPERM);
    cr_expect_str_eq(msgs[0] ? msgs[0] : "(null)", "disk gone");
    cr_expect_null(msgs[1], "a task that succeeded has a message");
    cr_expect_str_eq(msgs[2] ? msgs[2] : "(null)", "not allowed");
    free_msgs(msgs, 3);

    /* Without the flag: the first failure's slot has its message, unfinished ones NULL. */
    for (int i = 0; i < 3; i++)
        tasks[i] = weft_spawn(run_job, &jobs[i]);
    msgs[0] = msgs[1] = msgs[2] = unset_msg;
    cr_expect_eq(weft_gather_msgs(tasks, 3, NULL, NULL, msgs, 0), -EIO);
    cr_expect_str_eq(msgs[0] ? msgs[0] : "(null)", "disk gone");
    cr_expect_null(msgs[1], "a task not finished yet has a message");
    cr_expect_null(msgs[2], "a task not finished yet has a message");
    free_msgs(msgs, 3);
    cr_expect_eq(weft_sleep(10), 0);
    return NULL;
}

Test(gather, gather_msgs_keeps_every_message)
{
    job jobs[3] = {
        {.sleep = 1, .err = -EIO, .msg = "disk gone"},
        {.sleep = 2, .value = 20},
        {.sleep = 3, .err = -EPERM, .msg = "not allowed"},
    };
    reset_jobs(jobs, 3);
    cr_assert_eq(run_virtual(messages_main, jobs, NULL), 0);
}

/* ---- cancelling the gatherer cancels the unfinished children ----------------- */

typedef struct gatherer_report {
    int rc;
    double returned_at;
} gatherer_report;

static gatherer_report gatherer;

static void *gatherer_task(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = weft_spawn(run_job, &jobs[i]);
    gatherer.rc = weft_gather(tasks, 3, NULL, NULL, 0);
    gatherer.returned_at = weft_time();
    return NULL;
}

static void *cancel_gatherer_main(void *arg)
{
    weft_task *g = weft_spawn(gatherer_task, arg);
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect(weft_cancel(g, NULL));
    cr_expect_eq(weft_await(g, NULL), -ECANCELED);
    /* The children were left to finish on their own. */
    cr_expect_eq(weft_sleep(0.5), 0);
    return NULL;
}

Test(gather, cancelling_gatherer_cancels_children)
{
    job jobs[3] = {{.sleep = 0.5, .value = 1}, {.sleep = 10, .value = 2}, {.sleep = 20, .value = 3}};
    reset_jobs(jobs, 3);
    gatherer.rc = 1;
    cr_assert_eq(run_virtual(cancel_gatherer_main, jobs, NULL), 0);
    cr_assert_eq(gatherer.rc, -ECANCELED);
    cr_assert(time_is(gatherer.returned_at, 1.0), "gather returned at %f", gatherer.returned_at);
    cr_assert_eq(jobs[0].sleep_rc, 0, "the child finished before the cancel saw %d", jobs[0].sleep_rc);
    cr_assert(time_is(jobs[0].finished_at, 0.5));
    for (int i = 1; i < 3; i++) {
        cr_assert_eq(jobs[i].sleep_rc, -ECANCELED, "child %d was not cancelled", i);
        cr_assert(time_is(jobs[i].finished_at, 1.0), "child %d ended at %f", i, jobs[i].finished_at);
    }
}

/* ---- gathering finished tasks does not suspend ----------------------------- */

static int gather_bystander_ran;

static void *gather_bystander(void *arg)
{
    (void)arg;
    gather_bystander_ran = 1;
    return NULL;
}

static void *finished_main(void *arg)
{
    job *jobs = arg;
    weft_task *tasks[2] = {weft_spawn(run_job, &jobs[0]), weft_spawn(run_job, &jobs[1])};
    cr_expect_eq(weft_sleep(1), 0);
    cr_expect(weft_task_done(tasks[0]) && weft_task_done(tasks[1]));
    weft_task *other = weft_spawn(gather_bystander, NULL);
    void *results[2] = {0};
    cr_expect_eq(weft_gather(tasks, 2, results, NULL, 0), 0);
    cr_expect_eq(gather_bystander_ran, 0, "gathering finished tasks suspended the caller");
    cr_expect_eq((intptr_t)results[0], 5);
    cr_expect_eq((intptr_t)results[1], 6);
    cr_expect_eq(weft_await(other, NULL), 0);
    return NULL;
}

Test(gather, finished_tasks_do_not_suspend)
{
    job jobs[2] = {{.sleep = -1, .value = 5}, {.sleep = -1, .value = 6}};
    reset_jobs(jobs, 2);
    gather_bystander_ran = 0;
    cr_assert_eq(run_virtual(finished_main, jobs, NULL), 0);
    cr_assert_eq(gather_bystander_ran, 1);
}

/* ---- degenerate calls ---------------------------------------------------------- */

static void *empty_and_bad_main(void *arg)
{
    int *rcs = arg;
    weft_task *other = weft_spawn(gather_bystander, NULL);
    rcs[0] = weft_gather(NULL, 0, NULL, NULL, 0);
    rcs[1] = weft_gather(NULL, 0, NULL, NULL, WEFT_RETURN_EXCEPTIONS);
    cr_expect_eq(gather_bystander_ran, 0, "gather of nothing suspended the caller");
    weft_task *none[1] = {NULL};
    rcs[2] = weft_gather(none, 1, NULL, NULL, 0);
    cr_expect_eq(weft_await(other, NULL), 0);
    return NULL;
}

Test(gather, zero_tasks_and_null_task)
{
    int rcs[3] = {1, 1, 1};
    gather_bystander_ran = 0;
    cr_assert_eq(run_virtual(empty_and_bad_main, rcs, NULL), 0);
    cr_assert_eq(rcs[0], 0, "gather of 0 tasks gave %d", rcs[0]);
    cr_assert_eq(rcs[1], 0, "gather of 0 tasks with RETURN_EXCEPTIONS gave %d", rcs[1]);
    cr_assert_eq(rcs[2], -EINVAL, "gather of a NULL task gave %d", rcs[2]);
}
