/*
 * test_debug_mode.c — debug mode as a user sees it, on stderr: a task whose step runs
 * too long is reported by name with the lines where it was created, where it resumed
 * and where it suspended; the threshold (0.1 s by default) is set by an option or
 * WEFT_SLOW_STEP; a slow callback is named by its function; an error nobody retrieved
 * says where its task was created; bad settings make weft_run fail naming them; with
 * debug mode off nothing is reported and tasks cost no more memory.
 *
 * stderr is captured by pointing descriptor 2 at a temporary file around weft_run
 * (weft writes its reports there with write(2)). The lines expected are found by
 * scanning this very file for marker comments, so editing it cannot silently break
 * them. Steps busy-wait on the monotonic clock, so a loaded machine only makes them
 * longer: checks of "reported" use steps well over the threshold, and the only check
 * of "not reported" uses a 20 ms step against the default 100 ms.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

static void clean_env(void)
{
    unsetenv("WEFT_DEBUG");
    unsetenv("WEFT_SLOW_STEP");
    unsetenv("WEFT_WATCHDOG");
    unsetenv("WEFT_TRACE");
    unsetenv("WEFT_DUMP_SIGNAL");
}

TestSuite(debug_mode, .init = clean_env, .timeout = 60);

/* ---- helpers ------------------------------------------------------------- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The line of this file holding the comment marking `name` (the marker is a comment
 * of an at-sign and the name). */
static int marker_line(const char *name)
{
    char want[80];
    snprintf(want, sizeof want, "/* @%s */", name);
    FILE *f = fopen(__FILE__, "r");
    cr_assert_not_null(f, "cannot open this test's source %s to find its markers", __FILE__);
    char line[512];
    int n = 0, found = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        if (strstr(line, want)) {
            found = n;
            break;
        }
    }
    fclose(f);
    cr_assert_neq(found, 0, "marker %s not found in %s", want, __FILE__);
    return found;
}

static FILE *capture_file;
static int saved_stderr = -1;

static void capture_start(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    cr_assert_not_null(capture_file);
    saved_stderr = dup(STDERR_FILENO);
    cr_assert_geq(saved_stderr, 0);
    cr_assert_geq(dup2(fileno(capture_file), STDERR_FILENO), 0);
}

/* Ends the capture; returns what was written to stderr (static, NUL-terminated), and
 * echoes it to the real stderr so that a failing test shows it. */
static const char *capture_end(void)
{
    static char text[65536];
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    rewind(capture_file);
    size_t n = fread(text, 1, sizeof text - 1, capture_file);
    text[n] = '\0';
    fclose(capture_file);
    if (n > 0)
        fprintf(stderr, "---- captured stderr ----\n%s-------------------------\n", text);
    return text;
}

/* Runs fn as main of a loop with opts; returns what the run wrote to stderr. */
static const char *run_captured(weft_fn fn, const weft_options *opts, int *rc)
{
    capture_start();
    *rc = weft_run_opts(fn, NULL, NULL, opts);
    return capture_end();
}

/* The report that starts with `head` (through the next line that starts with
 * "weft:"), copied into buf; false when there is none. */
static bool report_of(const char *text, const char *head, char *buf, size_t size)
{
    const char *at = strstr(text, head);
    if (!at)
        return false;
    const char *end = strstr(at + 1, "\nweft:");
    size_t len = end ? (size_t)(end - at) : strlen(at);
    if (len >= size)
        len = size - 1;
    memcpy(buf, at, len);
    buf[len] = '\0';
    return true;
}

/* The line of report `r` that starts (after its indent) with `label`. */
static bool line_of(const char *r, const char *label, char *buf, size_t size)
{
    const char *at = strstr(r, label);
    if (!at)
        return false;
    const char *end = strchr(at, '\n');
    size_t len = end ? (size_t)(end - at) : strlen(at);
    if (len >= size)
        len = size - 1;
    memcpy(buf, at, len);
    buf[len] = '\0';
    return true;
}

/* ---- the slow step's report names the task and its lines ------------------- */

static void *hog(void *arg)
{
    (void)arg;
    (void)weft_sleep(0.001); /* @hog-first-sleep */
    double end = mono_s() + 0.15;
    while (mono_s() < end) {
    }
    (void)weft_sleep(0.001); /* @hog-second-sleep */
    return NULL;
}

static void *hog_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(hog, NULL, &(weft_spawn_options){.name = "hog"}); /* @spawn-hog */
    cr_expect_not_null(t);
    (void)weft_await(t, NULL);
    return NULL;
}

Test(debug_mode, slow_step_report_names_the_task_and_its_lines)
{
    int rc;
    const char *err = run_captured(hog_main, &(weft_options){.debug = 1}, &rc);
    cr_assert_eq(rc, 0);

    char r[4096], line[1024], want[256];
    cr_assert(report_of(err, "weft: slow step: hog ran ", r, sizeof r), "no slow-step report of hog");
    double secs = 0;
    cr_expect_eq(sscanf(r, "weft: slow step: hog ran %lf s", &secs), 1);
    cr_expect(secs >= 0.14 && secs < 10, "hog ran %.3f s by the report, busy-waiting 0.15 s", secs);
    cr_expect_not_null(strstr(r, "debug mode reports steps over 0.100 s"), "the default threshold is 0.1 s");

    cr_assert(line_of(r, "created at ", line, sizeof line));
    snprintf(want, sizeof want, "hog_main at test_debug_mode.c:%d", marker_line("spawn-hog"));
    cr_expect_not_null(strstr(line, want), "'%s' does not say %s", line, want);

    cr_assert(line_of(r, "resumed at ", line, sizeof line));
    snprintf(want, sizeof want, "hog at test_debug_mode.c:%d", marker_line("hog-first-sleep"));
    cr_expect_not_null(strstr(line, want), "'%s' does not say %s", line, want);
    cr_expect_not_null(strstr(line, "weft_sleep"), "'%s' does not name the call it resumed from", line);

    cr_assert(line_of(r, "suspended at ", line, sizeof line));
    snprintf(want, sizeof want, "hog at test_debug_mode.c:%d", marker_line("hog-second-sleep"));
    cr_expect_not_null(strstr(line, want), "'%s' does not say %s", line, want);
    cr_expect_not_null(strstr(line, ", waiting on: sleep"), "'%s' does not say what it waits on", line);
}

/* ---- the threshold --------------------------------------------------------- */

static void *quick(void *arg)
{
    (void)arg;
    double end = mono_s() + 0.02;
    while (mono_s() < end) {
    }
    (void)weft_sleep(0.001);
    return NULL;
}

static void *quick_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(quick, NULL, &(weft_spawn_options){.name = "quick"});
    (void)weft_await(t, NULL);
    return NULL;
}

Test(debug_mode, step_of_20ms_not_reported_by_default)
{
    int rc;
    const char *err = run_captured(quick_main, &(weft_options){.debug = 1}, &rc);
    cr_assert_eq(rc, 0);
    cr_expect_null(strstr(err, "slow step: quick"), "a 20 ms step was reported over the default 0.1 s");
}

Test(debug_mode, step_of_20ms_reported_over_slow_step_option)
{
    int rc;
    const char *err = run_captured(quick_main, &(weft_options){.debug = 1, .slow_step = 0.01}, &rc);
    cr_assert_eq(rc, 0);
    char r[4096];
    cr_assert(report_of(err, "weft: slow step: quick ran ", r, sizeof r), "a 20 ms step over slow_step = 0.01 "
                                                                           "was not reported");
    cr_expect_not_null(strstr(r, "debug mode reports steps over 0.010 s"));
}

Test(debug_mode, step_of_20ms_reported_over_weft_slow_step_env)
{
    setenv("WEFT_DEBUG", "1", 1);
    setenv("WEFT_SLOW_STEP", "0.01", 1);
    int rc;
    const char *err = run_captured(quick_main, NULL, &rc);
    cr_assert_eq(rc, 0);
    char r[4096];
    cr_assert(report_of(err, "weft: slow step: quick ran ", r, sizeof r), "a 20 ms step over WEFT_SLOW_STEP=0.01 "
                                                                           "was not reported");
    cr_expect_not_null(strstr(r, "debug mode reports steps over 0.010 s"));
}

/* ---- a slow callback --------------------------------------------------------- */

static void slow_callback(void *arg)
{
    (void)arg;
    double end = mono_s() + 0.15;
    while (mono_s() < end) {
    }
}

/* A main that schedules `scheduled` as a loop callback and lets it run. */
static weft_callback_fn scheduled;
static void *callback_main(void *arg)
{
    (void)arg;
    cr_assert(weft_call_ok(weft_call_soon(scheduled, NULL)));
    (void)weft_sleep(0.01);
    return NULL;
}

Test(debug_mode, slow_callback_named_by_its_function)
{
    int rc;
    scheduled = slow_callback;
    const char *err = run_captured(callback_main, &(weft_options){.debug = 1}, &rc);
    cr_assert_eq(rc, 0);
    char r[4096];
    cr_assert(report_of(err, "weft: slow step: the callback slow_callback", r, sizeof r),
              "no report naming the callback slow_callback");
    cr_expect_not_null(strstr(r, "test_debug_mode.c:"), "the report does not say where the callback is");
}

/* ---- an error nobody retrieved says where its task was created -------------- */

static void *doomed(void *arg)
{
    (void)arg;
    (void)weft_sleep(0.001);
    return weft_fail(-EIO, "the disk is on fire");
}

static void *unretrieved_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(doomed, NULL, &(weft_spawn_options){.name = "doomed"}); /* @spawn-doomed */
    weft_detach(t);
    (void)weft_sleep(0.02);
    return NULL;
}

Test(debug_mode, unretrieved_error_says_where_its_task_was_created)
{
    int rc;
    const char *err = run_captured(unretrieved_main, &(weft_options){.debug = 1}, &rc);
    cr_assert_eq(rc, 0);
    char r[4096], want[256];
    cr_assert(report_of(err, "weft: doomed failed with", r, sizeof r), "the unretrieved error was not reported");
    cr_expect_not_null(strstr(r, "the disk is on fire"));
    snprintf(want, sizeof want, "doomed was created at unretrieved_main at test_debug_mode.c:%d",
             marker_line("spawn-doomed"));
    cr_expect_not_null(strstr(r, want), "the report does not say '%s'", want);
}

Test(debug_mode, unretrieved_error_without_debug_mode_has_no_origin)
{
    int rc;
    const char *err = run_captured(unretrieved_main, NULL, &rc);
    cr_assert_eq(rc, 0);
    cr_expect_not_null(strstr(err, "weft: doomed failed with"), "the unretrieved error was not reported");
    cr_expect_null(strstr(err, "was created at"));
}

/* ---- debug mode off: no report, no memory per task --------------------------- */

Test(debug_mode, off_reports_nothing)
{
    int rc;
    const char *err = run_captured(hog_main, NULL, &rc);
    cr_assert_eq(rc, 0);
    cr_expect_null(strstr(err, "slow step"), "a slow step was reported with debug mode off");
    cr_expect_eq(err[0], '\0', "something was written to stderr with debug mode off");
}

#define MANY 2000

static void *parked(void *arg)
{
    (void)arg;
    (void)weft_sleep(100);
    return NULL;
}

/* Heap bytes per task while MANY plain tasks wait (stacks are mapped apart). */
static void *heap_per_task_main(void *arg)
{
    double *per_task = arg;
    static weft_task *t[MANY];
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < MANY; i++)
        t[i] = weft_spawn(parked, NULL);
    (void)weft_yield();
    struct mallinfo2 after = mallinfo2();
    *per_task = ((double)after.uordblks + (double)after.hblkhd - (double)before.uordblks - (double)before.hblkhd) /
                MANY;
    for (int i = 0; i < MANY; i++)
        weft_cancel(t[i], NULL);
    for (int i = 0; i < MANY; i++)
        (void)weft_await(t[i], NULL);
    return NULL;
}

Test(debug_mode, off_costs_no_memory_per_task)
{
    double off = 0, on = 0;
    cr_assert_eq(weft_run_opts(heap_per_task_main, &off, NULL, &(weft_options){.virtual_time = 1}), 0);
    cr_assert_eq(weft_run_opts(heap_per_task_main, &on, NULL, &(weft_options){.virtual_time = 1, .debug = 1}), 0);
    cr_log_info("heap bytes per task: %.0f with debug mode off, %.0f on", off, on);
    if (off == 0 && on == 0)
        cr_skip_test("mallinfo2 sees none of the heap (a sanitizer's allocator serves it)");
    /* Debug mode keeps two captured stacks per task (over 500 bytes); without it a
     * task is its record in a slab. */
    cr_expect_gt(on - off, 400, "debug mode adds %.0f bytes per task (off: %.0f, on: %.0f): is it on?", on - off,
                 off, on);
    cr_expect_lt(off, 400, "a plain task costs %.0f heap bytes with debug mode off", off);
}

/* ---- bad settings -------------------------------------------------------------- */

static int main_ran;

static void *never(void *arg)
{
    (void)arg;
    main_ran = 1;
    return NULL;
}

static void expect_refused(const weft_options *opts, const char *names)
{
    main_ran = 0;
    int rc = weft_run_opts(never, NULL, NULL, opts);
    cr_expect_eq(rc, -EINVAL, "weft_run returned %d for a bad %s", rc, names);
    cr_expect_not_null(strstr(weft_errmsg(), names), "the message '%s' does not name %s", weft_errmsg(), names);
    cr_expect_eq(main_ran, 0, "main ran despite a bad %s", names);
}

/* A bad value in the environment is said on stderr and ignored: the program runs. */
static void expect_ignored(const char *var, const char *value, const char *problem)
{
    setenv(var, value, 1);
    main_ran = 0;
    capture_start();
    int rc = weft_run_opts(never, NULL, NULL, NULL);
    const char *err = capture_end();
    char want[200];
    snprintf(want, sizeof want, "weft: %s=%s ignored: it %s", var, value, problem);
    cr_expect_eq(rc, 0, "weft_run returned %d with %s=%s", rc, var, value);
    cr_expect_eq(main_ran, 1, "main did not run with %s=%s", var, value);
    const char *said = strstr(err, want);
    cr_expect_not_null(said, "stderr '%s' does not say '%s'", err, want);
    cr_expect(!said || !strstr(said + 1, want), "'%s' is said more than once: '%s'", want, err);
}

Test(debug_mode, off_words_turn_debug_mode_off)
{
    setenv("WEFT_DEBUG", "off", 1);
    int rc;
    const char *err = run_captured(hog_main, &(weft_options){.debug = 1}, &rc);
    cr_expect_eq(rc, 0);
    cr_expect_null(strstr(err, "slow step"), "WEFT_DEBUG=off left debug mode on: '%s'", err);
}

Test(debug_mode, bad_weft_slow_step_env)
{
    expect_ignored("WEFT_SLOW_STEP", "abc", "is not a number of seconds");
}

Test(debug_mode, bad_weft_watchdog_env)
{
    expect_ignored("WEFT_WATCHDOG", "-1", "is negative");
}

Test(debug_mode, out_of_range_env)
{
    expect_ignored("WEFT_SLOW_STEP", "1e9", "is out of range");
}

Test(debug_mode, empty_trace_file_option)
{
    expect_refused(&(weft_options){.trace_file = ""}, "trace_file");
}

Test(debug_mode, bad_slow_step_option)
{
    expect_refused(&(weft_options){.debug = 1, .slow_step = -1}, "slow_step");
}

/* ---- calls from another thread stay errors ------------------------------------- */

static void *other_thread(void *arg)
{
    int *rc = arg;
    rc[0] = weft_sleep(0.001);
    weft_loop_metrics m;
    rc[1] = weft_get_loop_metrics(&m);
    return NULL;
}

static void *wrong_thread_main(void *arg)
{
    int *rc = arg;
    pthread_t th;
    cr_expect_eq(pthread_create(&th, NULL, other_thread, rc), 0);
    pthread_join(th, NULL); /* blocks the loop briefly: the point is the other thread's calls */
    return NULL;
}

Test(debug_mode, calls_from_another_thread_are_errors)
{
    int rc[2] = {1, 1};
    cr_assert_eq(weft_run_opts(wrong_thread_main, rc, NULL, &(weft_options){.debug = 1}), 0);
    cr_expect_eq(rc[0], WEFT_ENOTINLOOP, "weft_sleep from a plain thread returned %d", rc[0]);
    cr_expect_eq(rc[1], WEFT_ENOTINLOOP, "weft_get_loop_metrics from a plain thread returned %d", rc[1]);
}

/* ---- leftovers that do not end ------------------------------------------------- */

static int defiant_rounds;

/* Uncancels itself for 2 s of (virtual) time after main has returned. */
static void *defiant(void *arg)
{
    (void)arg;
    bool cancelled = false;
    for (;;) {
        int rc = weft_sleep(0.05);
        if (rc == -ECANCELED) {
            weft_uncancel();
            cancelled = true;
        }
        if (cancelled && ++defiant_rounds >= 40)
            return NULL;
    }
}

static void *leave_defiant(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(defiant, NULL, &(weft_spawn_options){.name = "defiant"});
    cr_assert_not_null(t);
    weft_detach(t);
    cr_assert_eq(weft_sleep(0.01), 0); /* it has started: a task cancelled before it starts never runs */
    return NULL;
}

Test(debug_mode, leftovers_still_running_are_reported)
{
    defiant_rounds = 0;
    capture_start();
    int rc = weft_run_opts(leave_defiant, NULL, NULL, &(weft_options){.debug = 1, .virtual_time = 1});
    const char *err = capture_end();
    cr_expect_eq(rc, 0);
    cr_expect_not_null(strstr(err, "1 task is still running 1.0 s after weft_run's main returned"),
                       "no report of the leftover: '%s'", err);
    cr_expect_not_null(strstr(err, "task 2 \"defiant\""), "the dump does not list the leftover: '%s'", err);
    cr_expect_not_null(strstr(err, "created at leave_defiant at test_debug_mode.c:"),
                       "the dump does not say where it was created: '%s'", err);
}

Test(debug_mode, leftovers_are_not_reported_without_debug_mode)
{
    defiant_rounds = 0;
    capture_start();
    int rc = weft_run_opts(leave_defiant, NULL, NULL, &(weft_options){.virtual_time = 1});
    const char *err = capture_end();
    cr_expect_eq(rc, 0);
    cr_expect_null(strstr(err, "still running"), "reported without debug mode: '%s'", err);
}

/* ---- debug mode refuses a compact task's local as a spawn argument -------------- */

static void *reads_arg(void *arg)
{
    return arg;
}

static void *spawns_with_local(void *arg)
{
    int *refused = arg;
    int local = 42;
    weft_task *t = weft_spawn(reads_arg, &local);
    *refused = t == NULL && weft_errcode() == -EINVAL && strstr(weft_errmsg(), "compact task") != NULL;
    if (t)
        (void)weft_await(t, NULL);
    return NULL;
}

static void *compact_main(void *arg)
{
    weft_task *t = weft_spawn_opts(spawns_with_local, arg, &(weft_spawn_options){.compact = 1});
    cr_assert_not_null(t);
    (void)weft_await(t, NULL);
    return NULL;
}

Test(debug_mode, refuses_a_compact_tasks_local_as_spawn_argument)
{
    int refused = 0;
    int rc = weft_run_opts(compact_main, &refused, NULL, &(weft_options){.debug = 1});
    cr_expect_eq(rc, 0);
    cr_expect(refused, "debug mode let weft_spawn take a pointer into a compact task's stack");
}

/* ---- a task spawned by a loop callback is not said to come from main ------------ */

static void *failing_child(void *arg)
{
    (void)arg;
    return weft_fail(-EIO, "failing child");
}

static void spawning_callback(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(failing_child, NULL, &(weft_spawn_options){.name = "from-callback"}); /* @cb-spawn */
    if (t)
        weft_detach(t);
}

Test(debug_mode, a_task_spawned_by_a_callback_names_the_callback)
{
    int rc;
    scheduled = spawning_callback;
    const char *err = run_captured(callback_main, &(weft_options){.debug = 1}, &rc);
    cr_expect_eq(rc, 0);
    char want[160];
    snprintf(want, sizeof want, "from-callback was created at spawning_callback at test_debug_mode.c:%d, run by the loop",
             marker_line("cb-spawn"));
    cr_expect_not_null(strstr(err, want), "'%s' does not say '%s'", err, want);
}
