/*
 * test_errors.c — errors as a user sees them: the names and descriptions of codes,
 * weft_fail and the recorded message, catching a failure of a coroutine function
 * called directly, and the stderr report of an error nobody retrieved.
 */
#include "common.h"

TestSuite(errors, .timeout = 20);

/* ---- weft_strerror / weft_errname -------------------------------------------- */

typedef struct known_code {
    int code;
    const char *name;
    const char *text; /* NULL: only "non-empty" is promised */
} known_code;

static const known_code known_codes[] = {
    {0, "0", "success"},
    {-ENOMEM, "ENOMEM", "Cannot allocate memory"},
    {-ECANCELED, "ECANCELED", NULL},
    {-ETIMEDOUT, "ETIMEDOUT", NULL},
#define WEFT_TEST_KNOWN_CODE(name, value, text) {name, #name, text},
    WEFT_ERRNO_MAP(WEFT_TEST_KNOWN_CODE)
#undef WEFT_TEST_KNOWN_CODE
};

#define KNOWN_CODES (sizeof known_codes / sizeof known_codes[0])

Test(errors, strerror_and_errname_name_every_code)
{
    for (size_t i = 0; i < KNOWN_CODES; i++) {
        const known_code *k = &known_codes[i];
        const char *text = weft_strerror(k->code);
        const char *name = weft_errname(k->code);
        cr_assert_not_null(text, "weft_strerror(%d) is NULL", k->code);
        cr_assert_not_null(name, "weft_errname(%d) is NULL", k->code);
        cr_assert_str_neq(text, "", "weft_strerror(%d) is empty", k->code);
        cr_assert_str_eq(name, k->name, "weft_errname(%d)", k->code);
        if (k->text)
            cr_assert_str_eq(text, k->text, "weft_strerror(%d)", k->code);
        for (size_t j = 0; j < i; j++) {
            cr_assert_str_neq(text, weft_strerror(known_codes[j].code), "codes %d and %d share a description",
                              k->code, known_codes[j].code);
            cr_assert_str_neq(name, weft_errname(known_codes[j].code), "codes %d and %d share a name", k->code,
                              known_codes[j].code);
        }
    }
}

Test(errors, unknown_code)
{
    cr_assert_str_eq(weft_errname(-987654), "E?");
    cr_assert_not_null(weft_strerror(-987654));
    cr_assert_str_neq(weft_strerror(-987654), "");
}

/* ---- weft_fail --------------------------------------------------------------------- */

typedef struct fail_report {
    void *fail_return;
    int recorded;
    char msg[64];
    int positive_code_recorded;
    int zero_code_recorded;
    char fresh_msg[64];
} fail_report;

static void *fail_and_look(void *arg)
{
    fail_report *r = arg;
    snprintf(r->fresh_msg, sizeof r->fresh_msg, "%s", weft_errmsg());
    r->fail_return = weft_fail(-EIO, "disk %d failed after %s", 3, "retries");
    r->recorded = weft_error();
    snprintf(r->msg, sizeof r->msg, "%s", weft_errmsg());
    weft_fail(EPIPE, "positive");
    r->positive_code_recorded = weft_error();
    weft_fail(0, "zero");
    r->zero_code_recorded = weft_error();
    weft_error_clear();
    return weft_fail(-EIO, "disk %d failed after %s", 3, "retries");
}

static void *await_failure(void *arg)
{
    fail_report *r = arg;
    weft_task *t = weft_spawn(fail_and_look, r);
    void *result = (void *)(intptr_t)-1;
    int rc = weft_await(t, &result);
    cr_expect_eq(rc, -EIO, "await gave %d", rc);
    cr_expect_str_eq(weft_errmsg(), "disk 3 failed after retries");
    cr_expect(result == NULL || (intptr_t)result == -1, "a value delivered for a failed task");
    return NULL;
}

Test(errors, fail_records_code_and_message)
{
    fail_report r;
    memset(&r, 0, sizeof r);
    r.fail_return = (void *)1;
    cr_assert_eq(run_virtual(await_failure, &r, NULL), 0);
    cr_assert_null(r.fail_return, "weft_fail did not return NULL");
    cr_assert_eq(r.recorded, -EIO);
    cr_assert_str_eq(r.msg, "disk 3 failed after retries");
    cr_assert_eq(r.positive_code_recorded, -EPIPE, "a positive code was not negated");
    cr_assert_eq(r.zero_code_recorded, -EINVAL, "code 0 did not become -EINVAL");
    cr_assert_str_eq(r.fresh_msg, "", "a fresh task's weft_errmsg() was \"%s\"", r.fresh_msg);
}

Test(errors, fail_outside_a_task)
{
    cr_assert_null(weft_fail(-EBADF, "outside %s", "the loop"));
    cr_assert_str_eq(weft_errmsg(), "outside the loop");
}

/* ---- catching a failure of a coroutine function called directly ------------------- */

static void *parse_number(void *arg)
{
    const char *text = arg;
    if (text[0] < '0' || text[0] > '9')
        return weft_fail(-EINVAL, "not a number: '%s'", text);
    return (void *)(intptr_t)(text[0] - '0');
}

typedef struct catch_report {
    int error_seen;
    int error_after_clear;
    char msg_after_clear[64];
    int good_error;
    intptr_t good_value;
} catch_report;

static void *catches(void *arg)
{
    catch_report *r = arg;
    void *value = parse_number("x1");
    r->error_seen = weft_error();
    cr_expect_null(value);
    weft_error_clear();
    r->error_after_clear = weft_error();
    snprintf(r->msg_after_clear, sizeof r->msg_after_clear, "%s", weft_errmsg());
    value = parse_number("7");
    r->good_error = weft_error();
    r->good_value = (intptr_t)value;
    return (void *)(intptr_t)100;
}

static void *does_not_catch(void *arg)
{
    (void)arg;
    parse_number("nope");
    /* The error stays recorded, so this value is dropped. */
    return (void *)(intptr_t)100;
}

static void *catch_main(void *arg)
{
    catch_report *r = arg;
    void *result = NULL;
    cr_expect_eq(weft_await(weft_spawn(catches, r), &result), 0);
    cr_expect_eq((intptr_t)result, 100);

    result = (void *)(intptr_t)-1;
    cr_expect_eq(weft_await(weft_spawn(does_not_catch, NULL), &result), -EINVAL);
    cr_expect_str_eq(weft_errmsg(), "not a number: 'nope'");
    cr_expect(result == NULL || (intptr_t)result == -1, "the value of a failed task was delivered");
    return NULL;
}

Test(errors, direct_call_failure_is_caught_with_error_clear)
{
    catch_report r;
    memset(&r, 0x55, sizeof r);
    cr_assert_eq(run_virtual(catch_main, &r, NULL), 0);
    cr_assert_eq(r.error_seen, -EINVAL);
    cr_assert_eq(r.error_after_clear, 0);
    cr_assert_str_eq(r.msg_after_clear, "not a number: 'x1'", "weft_error_clear dropped the message");
    cr_assert_eq(r.good_error, 0);
    cr_assert_eq(r.good_value, 7);
}

/* ---- passing an error on with its own message ---------------------------------- */

static void *fails_deep(void *arg)
{
    (void)arg;
    return weft_fail(-ECONNRESET, "peer %s went away", "db-1");
}

static void *passes_it_on(void *arg)
{
    (void)arg;
    int rc = weft_await(weft_spawn(fails_deep, NULL), NULL);
    /* weft.h: the message is formatted before the previous one is released. */
    return weft_fail(rc, "query failed: %s", weft_errmsg());
}

static void *pass_on_main(void *arg)
{
    char *msg = arg;
    int rc = weft_await(weft_spawn(passes_it_on, NULL), NULL);
    cr_expect_eq(rc, -ECONNRESET);
    snprintf(msg, 128, "%s", weft_errmsg());
    return NULL;
}

Test(errors, error_passed_on_with_its_message)
{
    char msg[128] = "";
    cr_assert_eq(run_virtual(pass_on_main, msg, NULL), 0);
    cr_assert_str_eq(msg, "query failed: peer db-1 went away");
}

/* ---- an error nobody retrieved is reported on stderr -------------------------- */

static void *fails_unwatched(void *arg)
{
    (void)arg;
    weft_sleep(0.5);
    return weft_fail(-EIO, "the disk is on fire");
}

static void *succeeds_unwatched(void *arg)
{
    (void)arg;
    weft_sleep(0.5);
    return NULL;
}

static void *cancelled_unwatched(void *arg)
{
    (void)arg;
    weft_sleep(100);
    return NULL;
}

static void *unretrieved_main(void *arg)
{
    (void)arg;
    weft_detach(weft_spawn_opts(fails_unwatched, NULL, &(weft_spawn_options){.name = "lost-worker"}));
    weft_detach(weft_spawn_opts(succeeds_unwatched, NULL, &(weft_spawn_options){.name = "happy-worker"}));
    weft_task *c = weft_spawn_opts(cancelled_unwatched, NULL, &(weft_spawn_options){.name = "stopped-worker"});
    weft_sleep(1);
    weft_cancel(c, NULL);
    weft_detach(c);
    weft_sleep(1);
    fputs("main done\n", stderr);
    return NULL;
}

static int unretrieved_scenario(void)
{
    return run_virtual(unretrieved_main, NULL, NULL) == 0 ? 0 : 3;
}

Test(errors, unretrieved_error_reported_on_stderr)
{
    child_outcome out;
    run_forked(unretrieved_scenario, &out);
    cr_assert(WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0, "the scenario failed (status %#x): %s",
              out.status, out.stderr_text);
    const char *report = strstr(out.stderr_text, "lost-worker");
    cr_assert_not_null(report, "no report naming the task; stderr was:\n%s", out.stderr_text);
    cr_assert_not_null(strstr(out.stderr_text, "the disk is on fire"), "the report lacks the message:\n%s",
                       out.stderr_text);
    /* Reported when the task finished and was freed (at 0.5), before main ended. */
    cr_assert_lt(report, strstr(out.stderr_text, "main done"), "reported late:\n%s", out.stderr_text);
    cr_assert_null(strstr(out.stderr_text, "happy-worker"), "a successful task was reported:\n%s",
                   out.stderr_text);
    cr_assert_null(strstr(out.stderr_text, "stopped-worker"), "a cancelled task was reported:\n%s",
                   out.stderr_text);
}

/* ---- the latest error: a readable code, a message that outlives the next call -- */

static void *noop(void *arg)
{
    return arg;
}

static void *failing(void *arg)
{
    (void)arg;
    return weft_fail(-EPERM, "no entry");
}

static void *errcode_main(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_errcode(), 0);
    /* Calls that return NULL leave their code beside their message. */
    cr_expect_null(weft_spawn(NULL, NULL));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect(strstr(weft_errmsg(), "weft_spawn") != NULL, "%s", weft_errmsg());
    cr_expect_null(weft_timeout_enter(NAN));
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect(!weft_call_ok(weft_call_soon(NULL, NULL)));
    cr_expect_eq(weft_errcode(), -EINVAL);
    /* An awaited task's error becomes the latest. */
    cr_expect_eq(weft_await(weft_spawn(failing, NULL), NULL), -EPERM);
    cr_expect_eq(weft_errcode(), -EPERM);
    /* weft_error() is the task's own outcome, untouched by all that. */
    cr_expect_eq(weft_error(), 0);
    return NULL;
}

Test(errors, calls_that_return_null_leave_a_readable_code)
{
    cr_assert_eq(run_virtual(errcode_main, NULL, NULL), 0);
    /* Outside a task: weft_run's own refusal. */
    cr_assert_eq(weft_run(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_errcode(), -EINVAL);
    cr_assert(strstr(weft_errmsg(), "main function is NULL") != NULL, "%s", weft_errmsg());
}

/* `printf("%d %s", weft_x(), weft_errmsg())`: C may call weft_errmsg() first, and
 * weft_x() then records a new error. The old message must still be readable
 * (under ASan a freed one is a reported use-after-free). */
static void *lifetime_main(void *arg)
{
    (void)arg;
    cr_expect_null(weft_spawn(NULL, NULL));
    const char *first = weft_errmsg();
    char copy[256];
    snprintf(copy, sizeof copy, "%s", first);
    for (int i = 0; i < 3; i++)
        cr_expect_null(weft_timeout_enter(NAN));
    cr_expect_str_eq(first, copy);
    char line[512];
    snprintf(line, sizeof line, "%s | %d", weft_errmsg(), weft_call_ok(weft_call_soon(NULL, NULL)));
    cr_expect(strstr(line, "weft_timeout_enter") != NULL || strstr(line, "weft_call_soon") != NULL, "%s", line);
    return NULL;
}

Test(errors, a_message_stays_readable_while_more_errors_come)
{
    cr_assert_eq(run_virtual(lifetime_main, NULL, NULL), 0);
}

/* A task that failed keeps its own message: a later failing call in the same task
 * (its latest error) does not replace what it failed with. */
static void *fails_then_calls(void *arg)
{
    (void)arg;
    weft_fail(-EINVAL, "mine");
    cr_expect_null(weft_spawn(NULL, NULL)); /* "weft_spawn: the function is NULL" */
    cr_expect(strstr(weft_errmsg(), "weft_spawn") != NULL);
    return NULL;
}

static void *own_message_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(fails_then_calls, NULL);
    cr_expect_eq(weft_await(t, NULL), -EINVAL);
    cr_expect_str_eq(weft_errmsg(), "mine");
    cr_expect_eq(weft_await(weft_spawn(noop, NULL), NULL), 0);
    return NULL;
}

Test(errors, a_task_ends_with_the_message_it_failed_with)
{
    cr_assert_eq(run_virtual(own_message_main, NULL, NULL), 0);
}
