/*
 * test_notify.c — notifiers as a user sees them on one thread: a real signal
 * handler (SIGALRM from a timer, SIGUSR1 from raise) waking a task through
 * weft_notify, notifies merging into one call and a notify from inside the
 * callback making another, stale handles (after weft_notifier_free and after
 * weft_run returned, also once the record is reused), a loop waiting only on a
 * notifier not reported as a deadlock while a finished main with a live notifier
 * does not hang, and weft_call_soon_threadsafe called from a signal handler that
 * interrupted it returning -EDEADLK instead of hanging. The notifies from other
 * threads are in test_threads.c (ThreadSanitizer runs that one).
 */
#include "common.h"

#include <signal.h>
#include <string.h>
#include <sys/time.h>

TestSuite(notify, .timeout = 20);

static void install(int sig, void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    cr_assert_eq(sigaction(sig, &sa, NULL), 0);
}

/* ---- a signal handler wakes a task ---------------------------------------------- */

static weft_notifier *the_notifier;
static volatile sig_atomic_t signals_seen;
static volatile sig_atomic_t handler_rc = 1;

static void on_signal(int sig)
{
    (void)sig;
    signals_seen++;
    handler_rc = weft_notify(the_notifier);
}

static int callback_calls;

static void set_event(void *arg)
{
    callback_calls++;
    weft_event_set(arg);
}

static void *wait_for_alarm(void *arg)
{
    (void)arg;
    weft_event *ev = weft_event_new();
    cr_assert_not_null(ev);
    the_notifier = weft_notifier_new(set_event, ev);
    cr_assert_not_null(the_notifier, "%s", weft_errmsg());
    install(SIGALRM, on_signal);
    /* 20 ms from now, while the loop sleeps in the poller with nothing else to
     * wait for: only the handler's notify can wake it. */
    struct itimerval it = {.it_value = {.tv_usec = 20000}};
    cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    int rc = weft_event_wait(ev);
    cr_expect_eq(rc, 0, "the wait ended with %d (%s)", rc, weft_errmsg());
    cr_expect_eq(signals_seen, 1);
    cr_expect_eq(handler_rc, 0);
    cr_expect_eq(callback_calls, 1);
    cr_expect_eq(weft_notifier_free(the_notifier), 0);
    weft_event_free(ev);
    return NULL;
}

Test(notify, sigalrm_handler_wakes_a_waiting_task)
{
    signals_seen = 0;
    callback_calls = 0;
    cr_assert_eq(weft_run(wait_for_alarm, NULL, NULL), 0, "%s", weft_errmsg());
    signal(SIGALRM, SIG_DFL);
}

static void *raise_in_a_task(void *arg)
{
    (void)arg;
    weft_event *ev = weft_event_new();
    the_notifier = weft_notifier_new(set_event, ev);
    cr_assert_not_null(the_notifier);
    install(SIGUSR1, on_signal);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_expect_eq(handler_rc, 0);
    cr_expect_eq(callback_calls, 0, "the callback runs from the loop, not from the handler");
    cr_expect_eq(weft_event_wait(ev), 0);
    cr_expect_eq(callback_calls, 1);
    cr_expect_eq(weft_notifier_free(the_notifier), 0);
    weft_event_free(ev);
    return NULL;
}

Test(notify, raise_from_a_task_reaches_the_callback)
{
    signals_seen = 0;
    callback_calls = 0;
    cr_assert_eq(run_virtual(raise_in_a_task, NULL, NULL), 0, "%s", weft_errmsg());
    signal(SIGUSR1, SIG_DFL);
}

/* ---- merging, and a notify from inside the callback ----------------------------- */

static int calls;
static int renotify_left;

static void count(void *arg)
{
    (void)arg;
    calls++;
}

static void nothing(void *arg)
{
    (void)arg;
    calls++;
}

static void *merge_main(void *arg)
{
    (void)arg;
    weft_notifier *h = weft_notifier_new(count, NULL);
    cr_assert_not_null(h);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(weft_notify(h), 0);
    cr_expect_eq(calls, 0, "nothing runs before the loop gets to it");
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(calls, 1, "five notifies before the loop got to them make one call, not %d", calls);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(calls, 1, "no notify, no call");
    cr_expect_eq(weft_notifier_free(h), 0);
    return NULL;
}

Test(notify, notifies_before_the_callback_merge)
{
    calls = 0;
    renotify_left = 0;
    cr_assert_eq(run_virtual(merge_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static weft_notifier *self_notifier;

static void renotify_self(void *arg)
{
    (void)arg;
    calls++;
    if (renotify_left > 0) {
        renotify_left--;
        cr_expect_eq(weft_notify(self_notifier), 0);
    }
}

static void *renotify_main(void *arg)
{
    (void)arg;
    self_notifier = weft_notifier_new(renotify_self, NULL);
    cr_assert_not_null(self_notifier);
    renotify_left = 3;
    cr_expect_eq(weft_notify(self_notifier), 0);
    for (int i = 0; i < 10 && calls < 4; i++)
        cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(calls, 4, "a notify made while the callback runs makes one more call (got %d)", calls);
    cr_expect_eq(weft_notifier_free(self_notifier), 0);
    return NULL;
}

Test(notify, notify_from_the_callback_makes_another_call)
{
    calls = 0;
    cr_assert_eq(run_virtual(renotify_main, NULL, NULL), 0, "%s", weft_errmsg());
}

static void free_self(void *arg)
{
    (void)arg;
    calls++;
    cr_expect_eq(weft_notifier_free(self_notifier), 0, "a callback may free its own notifier");
}

static void *free_in_callback_main(void *arg)
{
    (void)arg;
    self_notifier = weft_notifier_new(free_self, NULL);
    weft_notifier *other = weft_notifier_new(free_self, NULL);
    cr_assert(self_notifier && other);
    cr_expect_eq(weft_notify(self_notifier), 0);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(calls, 1);
    cr_expect_eq(weft_notify(self_notifier), -ESHUTDOWN);
    cr_expect_eq(weft_notify(other), 0, "the other notifier is untouched");
    cr_expect_eq(weft_notifier_free(other), 0);
    return NULL;
}

Test(notify, callback_frees_its_own_notifier)
{
    calls = 0;
    cr_assert_eq(run_virtual(free_in_callback_main, NULL, NULL), 0, "%s", weft_errmsg());
}

/* ---- stale handles ---------------------------------------------------------------- */

static weft_notifier *kept;

static void *free_then_use(void *arg)
{
    (void)arg;
    weft_notifier *n = weft_notifier_new(nothing, NULL);
    cr_assert_not_null(n);
    cr_expect_eq(weft_notify(n), 0);
    cr_expect_eq(weft_notifier_free(n), 0);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(calls, 0, "a notify made before free does not run after it");
    cr_expect_eq(weft_notify(n), -ESHUTDOWN);
    cr_expect_eq(weft_notifier_free(n), -ESTALE);
    cr_expect(strstr(weft_errmsg(), "already freed") != NULL, "message: %s", weft_errmsg());
    /* The next notifier may reuse the record: the old handle still names nothing. */
    weft_notifier *again = weft_notifier_new(nothing, NULL);
    cr_assert_not_null(again);
    cr_expect_eq(weft_notify(n), -ESHUTDOWN);
    cr_expect_eq(weft_notifier_free(n), -ESTALE);
    cr_expect_eq(weft_notify(again), 0);
    kept = again; /* left for weft_run to free */
    return NULL;
}

Test(notify, stale_handles_give_eshutdown)
{
    calls = 0;
    cr_assert_eq(run_virtual(free_then_use, NULL, NULL), 0, "%s", weft_errmsg());
    cr_expect_eq(weft_notify(kept), -ESHUTDOWN, "the loop freed it when it ended");
    cr_expect_eq(weft_notify(NULL), -EINVAL);
    cr_expect_eq(weft_notifier_free(kept), WEFT_ENOTINLOOP);
    cr_expect_eq(weft_notifier_new(nothing, NULL), NULL);
    cr_expect_eq(weft_errcode(), WEFT_ENOTINLOOP);
    /* A new loop reusing the record does not revive the old handle. */
    cr_assert_eq(run_virtual(free_then_use, NULL, NULL), 0);
    cr_expect_eq(weft_notify(kept), -ESHUTDOWN);
}

static void *null_callback(void *arg)
{
    (void)arg;
    cr_expect_eq(weft_notifier_new(NULL, NULL), NULL);
    cr_expect_eq(weft_errcode(), -EINVAL);
    cr_expect_eq(weft_notifier_free(NULL), -EINVAL);
    return NULL;
}

Test(notify, null_arguments_are_refused)
{
    cr_assert_eq(run_virtual(null_callback, NULL, NULL), 0);
}

/* ---- deadlock detection --------------------------------------------------------- */

static void *wait_forever(void *arg)
{
    /* Cancelled when main returns: survive it once and wait again, for good. */
    if (weft_event_wait(arg) == -ECANCELED) {
        weft_uncancel();
        (void)weft_event_wait(arg);
    }
    return NULL;
}

static weft_event *ev_kept;

static void *main_leaves_a_notifier(void *arg)
{
    (void)arg;
    ev_kept = weft_event_new();
    cr_assert_not_null(weft_notifier_new(nothing, NULL));
    weft_detach(weft_spawn(wait_forever, ev_kept));
    cr_expect_eq(weft_yield(), 0);
    return NULL;
}

Test(notify, finished_main_with_a_live_notifier_does_not_hang)
{
    /* Before main returned, the notifier kept the loop waiting; after, the task
     * that ignores its cancellation is reported, not waited for. */
    int rc = weft_run(main_leaves_a_notifier, NULL, NULL);
    cr_expect_eq(rc, WEFT_EDEADLOCK_LOOP, "weft_run returned %d (%s)", rc, weft_errmsg());
    weft_event_free(ev_kept);
}

static void *no_notifier_deadlocks(void *arg)
{
    (void)arg;
    weft_event *ev = weft_event_new();
    weft_notifier *n = weft_notifier_new(nothing, NULL);
    cr_assert_eq(weft_notifier_free(n), 0);
    int rc = weft_event_wait(ev);
    weft_event_free(ev);
    return (void *)(intptr_t)rc;
}

Test(notify, a_freed_notifier_no_longer_holds_off_deadlock_detection)
{
    cr_expect_eq(weft_run(no_notifier_deadlocks, NULL, NULL), WEFT_EDEADLOCK_LOOP);
}

/* ---- call_soon_threadsafe from a signal handler ----------------------------------
 *
 * The only moment weft_call_soon_threadsafe calls out while holding the loop's
 * locks is the realloc that grows its queue (at the first call to a loop). This
 * executable is linked with --wrap=realloc (tests/CMakeLists.txt), so the handler
 * can be run right there, deterministically, on the same thread. */
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

static volatile sig_atomic_t raise_in_realloc;
static weft_loop *loop_for_handler;
static volatile int nested_rc = 1;
static char nested_msg[512];

void *__wrap_realloc(void *p, size_t n)
{
    if (raise_in_realloc) {
        raise_in_realloc = 0;
        raise(SIGUSR2);
    }
    return __real_realloc(p, n);
}

static void post_from_handler(int sig)
{
    (void)sig;
    nested_rc = weft_call_soon_threadsafe(loop_for_handler, nothing, NULL);
    snprintf(nested_msg, sizeof nested_msg, "%s", weft_errmsg());
}

static void *threadsafe_in_handler_main(void *arg)
{
    (void)arg;
    loop_for_handler = weft_loop_current();
    install(SIGUSR2, post_from_handler);
    raise_in_realloc = 1;
    cr_expect_eq(weft_call_soon_threadsafe(loop_for_handler, nothing, NULL), 0);
    cr_expect_eq(raise_in_realloc, 0, "the handler ran inside the call");
    cr_expect_eq(nested_rc, -EDEADLK, "the handler's call returned %d", nested_rc);
    cr_expect(strstr(nested_msg, "weft_notify") != NULL, "message: %s", nested_msg);
    cr_expect_eq(weft_yield(), 0);
    cr_expect_eq(calls, 1, "the interrupted call itself went through");
    return NULL;
}

Test(notify, call_soon_threadsafe_relocked_from_a_handler_gives_edeadlk)
{
    calls = 0;
    cr_assert_eq(weft_run(threadsafe_in_handler_main, NULL, NULL), 0, "%s", weft_errmsg());
    signal(SIGUSR2, SIG_DFL);
}
