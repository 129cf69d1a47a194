/*
 * test_stack.c — task stacks as a user sees them: deep recursion fits the default
 * stack, per-task and per-loop stack sizes are honoured, an overflow dies with a
 * report that says what to do, and tens of thousands of suspended tasks (more than
 * the kernel's map count allows separate guarded mappings for) work without a false
 * alarm, with guard pages installed in slabs or, on kernels without guard regions,
 * with canaries; and the guard pages of slabs can be lifted while gdb's gcore reads
 * the process, and put back.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS and madvise, hidden by -std=c11 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>

#include "common.h"

/* stack.c's switch to the path of kernels without guard regions (core.h). */
extern int weft__stack_guard_install_off;

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* Whether this kernel installs guard pages inside a mapping (Linux 6.13+). */
static bool kernel_has_guard_regions(void)
{
    void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = madvise(p, 4096, MADV_GUARD_INSTALL) == 0;
    munmap(p, 8192);
    return ok;
}

static long mappings_now(void)
{
    long lines = 0;
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -1;
    for (int c; (c = fgetc(f)) != EOF;)
        lines += c == '\n';
    fclose(f);
    return lines;
}

TestSuite(stack, .timeout = 120);

/* Recursion that really uses `frame` bytes per level: the buffer is volatile and
 * used after the recursive call, so no frame can be folded or tail-called away. */
static volatile int recursion_limit = 1 << 30;

static int recurse(int depth, int levels)
{
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[sizeof frame - 1] = (char)depth;
    if (depth >= levels || depth >= recursion_limit)
        return frame[0];
    return recurse(depth + 1, levels) + frame[sizeof frame - 1] - (char)depth;
}

static void *recurse_task(void *arg)
{
    int levels = (int)(intptr_t)arg;
    return (void *)(intptr_t)recurse(0, levels);
}

/* The last level returns (char)levels; each other level adds 0. */
static intptr_t recursion_result(int levels)
{
    return (char)levels;
}

/* ---- deep recursion on the default stack ------------------------------------- */

static void *deep_default_main(void *arg)
{
    (void)arg;
    void *result = NULL;
    /* ~200 KiB of frames, in a spawned task and in main itself. */
    cr_expect_eq(weft_await(weft_spawn(recurse_task, (void *)(intptr_t)190), &result), 0);
    cr_expect_eq((intptr_t)result, recursion_result(190));
    cr_expect_eq(weft_sleep(0.1), 0);
    return (void *)(intptr_t)recurse(0, 190);
}

Test(stack, deep_recursion_fits_default_stack)
{
    void *result = NULL;
    cr_assert_eq(run_virtual(deep_default_main, NULL, &result), 0);
    cr_assert_eq((intptr_t)result, recursion_result(190));
}

/* ---- per-task and per-loop stack sizes --------------------------------------- */

static void *big_stack_main(void *arg)
{
    (void)arg;
    void *result = NULL;
    /* ~800 KiB: more than the default, less than the 1 MiB asked for. */
    weft_task *t = weft_spawn_opts(recurse_task, (void *)(intptr_t)780,
                                   &(weft_spawn_options){.stack_size = 1024 * 1024, .name = "big"});
    cr_expect_not_null(t);
    cr_expect_eq(weft_await(t, &result), 0);
    cr_expect_eq((intptr_t)result, recursion_result(780));
    return NULL;
}

Test(stack, per_task_stack_size)
{
    cr_assert_eq(run_virtual(big_stack_main, NULL, NULL), 0);
}

static void *loop_stack_main(void *arg)
{
    (void)arg;
    void *result = NULL;
    cr_expect_eq(weft_await(weft_spawn(recurse_task, (void *)(intptr_t)1400), &result), 0);
    cr_expect_eq((intptr_t)result, recursion_result(1400));
    return (void *)(intptr_t)recurse(0, 1400);
}

Test(stack, per_loop_stack_size)
{
    void *result = NULL;
    /* ~1.4 MiB in main and in a spawned task, on a loop whose stacks are 2 MiB. */
    int rc = weft_run_opts(loop_stack_main, NULL, &result,
                           &(weft_options){.virtual_time = 1, .stack_size = 2 * 1024 * 1024});
    cr_assert_eq(rc, 0);
    cr_assert_eq((intptr_t)result, recursion_result(1400));
}

/* ---- a stack overflow is reported and aborts -------------------------------- */

static void *endless_recursion(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(0, 1 << 30);
}

static void *overflow_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(endless_recursion, NULL,
                                   &(weft_spawn_options){.name = "deep-diver", .stack_size = 64 * 1024});
    weft_await(t, NULL);
    fputs("survived the overflow\n", stderr);
    return NULL;
}

static int overflow_scenario(void)
{
    return run_virtual(overflow_main, NULL, NULL) == 0 ? 0 : 3;
}

Test(stack, overflow_aborts_with_a_report, .timeout = 30)
{
    child_outcome out;
    run_forked(overflow_scenario, &out);
    cr_assert(WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGABRT,
              "the overflowing process was not killed by SIGABRT (status %#x); stderr:\n%s", out.status,
              out.stderr_text);
    const char *text = out.stderr_text;
    cr_assert_not_null(strstr(text, "deep-diver"), "the report does not name the task:\n%s", text);
    bool names_size = strstr(text, "65536") || strstr(text, "64 KiB") || strstr(text, "64KiB") ||
                      strstr(text, "64 kB") || strstr(text, "64k");
    cr_assert(names_size, "the report does not give the stack size:\n%s", text);
    cr_assert_not_null(strstr(text, "stack_size"), "the report does not say how to raise the stack:\n%s", text);
}

/* ---- an overflow of an unguarded stack is caught by its canary ---------------- */

/* Tasks that hold guarded stacks until the process dies, so the next stacks are
 * unguarded: the kernel's map count allows ~30k guard pages by default. */
#define BUDGET_EATERS 40000

static void *hold_a_stack(void *arg)
{
    (void)arg;
    weft_sleep(1000);
    return NULL;
}

static volatile char *volatile probe_addr[2];

__attribute__((noinline)) static void probe_frames(int depth)
{
    volatile char frame[1024];
    frame[0] = 0;
    probe_addr[depth] = frame;
    if (depth == 0)
        probe_frames(1);
    frame[sizeof frame - 1] = 0;
}

/* Like recurse, but writes every byte of each frame, as a real overflow would. */
static int recurse_filling(int depth, int levels)
{
    volatile char frame[1024];
    for (size_t i = 0; i < sizeof frame; i++)
        frame[i] = (char)depth;
    if (depth >= levels)
        return frame[0];
    return recurse_filling(depth + 1, levels) + frame[sizeof frame - 1] - (char)depth;
}

/* Recurses ~2 KiB past the bottom of its 64 KiB stack (into the pad page that
 * holds the canary of a lone unguarded stack, so nothing faults), then yields. */
static void *canary_diver(void *arg)
{
    (void)arg;
    probe_frames(0);
    long stride = (long)(probe_addr[0] - probe_addr[1]);
    int levels = (int)((64 * 1024 + 2 * 1024) / stride);
    recurse_filling(0, levels);
    weft_yield();
    return NULL;
}

static void *canary_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < BUDGET_EATERS; i++)
        weft_detach(weft_spawn(hold_a_stack, NULL));
    weft_yield(); /* they all take their stacks */
    weft_task *t = weft_spawn_opts(canary_diver, NULL,
                                   &(weft_spawn_options){.name = "canary-diver", .stack_size = 64 * 1024});
    weft_await(t, NULL);
    fputs("survived the overflow\n", stderr);
    return NULL;
}

static int canary_scenario(void)
{
    /* Kernels with guard regions give every default stack a guard page, and the
     * budget eaters would not eat the budget: take the path of those without. */
    weft__stack_guard_install_off = 1;
    return run_virtual(canary_main, NULL, NULL) == 0 ? 0 : 3;
}

static long max_map_count(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    return max;
}

Test(stack, unguarded_overflow_caught_by_canary, .timeout = 60)
{
    if (max_map_count() / 2 > BUDGET_EATERS)
        cr_skip_test("vm.max_map_count allows more than %d guarded stacks", BUDGET_EATERS);
    child_outcome out;
    run_forked(canary_scenario, &out);
    const char *text = out.stderr_text;
    cr_assert(WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGABRT,
              "the overflowing process was not killed by SIGABRT (status %#x); stderr:\n%s", out.status, text);
    cr_assert_not_null(strstr(text, "canary-diver"), "the report does not name the task:\n%s", text);
    cr_assert_not_null(strstr(text, "canary"), "the overflow was not caught by the canary:\n%s", text);
    cr_assert_not_null(strstr(text, "stack_size"), "the report does not say how to raise the stack:\n%s", text);
}

/* ---- past the map budget, slab stacks still have guard pages ------------------ */

/* 40,000 default stacks alive (more than vm.max_map_count allows separate guarded
 * mappings for), then one more default task overflows: on a kernel with guard
 * regions its slab stack has a guard page like the first ones, and the mappings
 * did not grow with the tasks. */
static void *slab_guard_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < BUDGET_EATERS; i++)
        weft_detach(weft_spawn(hold_a_stack, NULL));
    weft_yield();
    long maps = mappings_now();
    if (maps < 0 || maps > 5000) {
        fprintf(stderr, "%ld mappings with %d stacks alive\n", maps, BUDGET_EATERS);
        exit(4);
    }
    weft_task *t = weft_spawn_opts(endless_recursion, NULL, &(weft_spawn_options){.name = "slab-diver"});
    weft_await(t, NULL);
    fputs("survived the overflow\n", stderr);
    return NULL;
}

static int slab_guard_scenario(void)
{
    return run_virtual(slab_guard_main, NULL, NULL) == 0 ? 0 : 3;
}

Test(stack, slab_stacks_past_the_map_budget_have_guard_pages, .timeout = 60)
{
    if (!kernel_has_guard_regions())
        cr_skip_test("this kernel has no guard regions (MADV_GUARD_INSTALL, Linux 6.13)");
    child_outcome out;
    run_forked(slab_guard_scenario, &out);
    const char *text = out.stderr_text;
    cr_assert(WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGABRT,
              "the overflowing process was not killed by SIGABRT (status %#x); stderr:\n%s", out.status, text);
    cr_assert_not_null(strstr(text, "slab-diver"), "the report does not name the task:\n%s", text);
    cr_assert_not_null(strstr(text, "hit the guard page"), "the overflow did not hit a guard page:\n%s", text);
}

/* ---- gcore reads every slab while its guards are lifted -------------------------- */

/* stack.c's entry for tools/weft-gdb.py's hooks around gdb's gcore. */
int weft__stack_guards_lift(int lift);

/* Bytes of [start, start + len) that /proc/self/mem gives before its first failure:
 * what gdb's gcore copies of a mapping (a guard page reads as EIO, and gdb keeps
 * nothing of the mapping past it). */
static size_t readable_through_proc_mem(uintptr_t start, size_t len)
{
    int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    static char chunk[65536];
    size_t done = 0;
    while (done < len) {
        size_t want = len - done < sizeof chunk ? len - done : sizeof chunk;
        ssize_t n = pread(fd, chunk, want, (off_t)(start + done));
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    return done;
}

/* The mapping holding `address`, from /proc/self/maps. */
static bool mapping_of(uintptr_t address, uintptr_t *start, uintptr_t *end)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return false;
    bool found = false;
    unsigned long lo, hi;
    char line[512];
    while (!found && fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= address && address < hi) {
            *start = lo;
            *end = hi;
            found = true;
        }
    fclose(f);
    return found;
}

typedef struct lift_report {
    size_t mapping, before, lifted, restored;
    int lift_rc, restore_rc;
} lift_report;

static void *look_at_own_slab(void *arg)
{
    lift_report *r = arg;
    volatile char here = 0;
    uintptr_t start, end;
    if (!mapping_of((uintptr_t)&here, &start, &end))
        return weft_fail(-ENOENT, "this task's stack is in no mapping of /proc/self/maps");
    r->mapping = end - start;
    r->before = readable_through_proc_mem(start, r->mapping);
    r->lift_rc = weft__stack_guards_lift(1);
    r->lifted = readable_through_proc_mem(start, r->mapping);
    r->restore_rc = weft__stack_guards_lift(0);
    r->restored = readable_through_proc_mem(start, r->mapping);
    return NULL;
}

static void *lift_main(void *arg)
{
    return weft_await(weft_spawn(look_at_own_slab, arg), NULL) == 0 ? NULL : weft_fail(-EIO, "%s", weft_errmsg());
}

Test(stack, guard_pages_lifted_for_gcore_and_put_back)
{
    if (!kernel_has_guard_regions())
        cr_skip_test("this kernel has no guard regions (MADV_GUARD_INSTALL, Linux 6.13)");
    lift_report r = {0};
    cr_assert_eq(run_virtual(lift_main, &r, NULL), 0, "%s", weft_errmsg());
    cr_assert_gt(r.mapping, 0);
    cr_expect_lt(r.before, r.mapping, "the slab read whole through /proc/self/mem: no guard page in it?");
    cr_expect_geq(r.lift_rc, 1, "weft__stack_guards_lift(1) returned %d", r.lift_rc);
    cr_expect_eq(r.lifted, r.mapping, "with the guards lifted, %zu of %zu bytes read", r.lifted, r.mapping);
    cr_expect_eq(r.restore_rc, r.lift_rc, "weft__stack_guards_lift(0) returned %d", r.restore_rc);
    cr_expect_eq(r.restored, r.before, "the guard pages were not put back (%zu bytes read, %zu before)", r.restored,
                 r.before);
}

/* ---- 40,000 suspended tasks ------------------------------------------------------ */

#define MANY_TASKS 40000

/* Each task fills part of its stack, sleeps, and checks the pattern is intact after
 * tens of thousands of other stacks have been switched to and back. */
static void *fill_sleep_check(void *arg)
{
    intptr_t id = (intptr_t)arg;
    volatile unsigned char pattern[2048];
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)(id * 31 + (intptr_t)i);
    if (weft_sleep(1.0 + 0.1 * (double)(id % 10)) != 0)
        return weft_fail(-EIO, "first sleep failed");
    for (size_t i = 0; i < sizeof pattern; i++)
        if (pattern[i] != (unsigned char)(id * 31 + (intptr_t)i))
            return weft_fail(-EFAULT, "task %ld: stack byte %zu changed while suspended", (long)id, i);
    if (weft_sleep(0.5) != 0)
        return weft_fail(-EIO, "second sleep failed");
    return (void *)(id + 1);
}

typedef struct many_report {
    int gather_rc;
    char msg[128];
    long wrong_results;
    double finished_at;
} many_report;

static void *many_main(void *arg)
{
    many_report *r = arg;
    weft_task **tasks = calloc(MANY_TASKS, sizeof *tasks);
    void **results = calloc(MANY_TASKS, sizeof *results);
    if (!tasks || !results)
        return weft_fail(-ENOMEM, "test arrays");
    for (intptr_t i = 0; i < MANY_TASKS; i++) {
        tasks[i] = weft_spawn(fill_sleep_check, (void *)i);
        if (!tasks[i])
            return weft_fail(-ENOMEM, "spawn %ld failed: %s", (long)i, weft_errmsg());
    }
    r->gather_rc = weft_gather(tasks, MANY_TASKS, results, NULL, 0);
    snprintf(r->msg, sizeof r->msg, "%s", weft_errmsg());
    r->finished_at = weft_time();
    for (intptr_t i = 0; i < MANY_TASKS; i++)
        if ((intptr_t)results[i] != i + 1)
            r->wrong_results++;
    free(tasks);
    free(results);
    return NULL;
}

Test(stack, forty_thousand_suspended_tasks, .timeout = 120)
{
    many_report r = {.gather_rc = 1};
    int rc = run_virtual(many_main, &r, NULL);
    cr_assert_eq(rc, 0, "weft_run: %d %s", rc, weft_errmsg());
    cr_assert_eq(r.gather_rc, 0, "gather: %d %s", r.gather_rc, r.msg);
    cr_assert_eq(r.wrong_results, 0);
    cr_assert(time_is(r.finished_at, 2.4), "the last task finished at %f", r.finished_at);
}

/* The same on the path of kernels without guard regions: guarded mappings up to
 * the budget, then unguarded slabs with a canary below each, checked at every switch. */
Test(stack, forty_thousand_suspended_tasks_without_guard_regions, .timeout = 120)
{
    weft__stack_guard_install_off = 1;
    many_report r = {.gather_rc = 1};
    int rc = run_virtual(many_main, &r, NULL);
    cr_assert_eq(rc, 0, "weft_run: %d %s", rc, weft_errmsg());
    cr_assert_eq(r.gather_rc, 0, "gather: %d %s", r.gather_rc, r.msg);
    cr_assert_eq(r.wrong_results, 0);
    cr_assert(time_is(r.finished_at, 2.4), "the last task finished at %f", r.finished_at);
}

/* ---- compact tasks: frames copied out and back keep their contents ------------ */

#define COMPACT_TASKS 5000

static void *compact_worker(void *arg)
{
    intptr_t id = (intptr_t)arg;
    volatile unsigned char pattern[1024];
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)(id * 7 + (intptr_t)i);
    /* Several suspensions, interleaved with every other compact task. */
    for (int round = 0; round < 3; round++) {
        if (weft_sleep(0.5 + 0.01 * (double)(id % 5)) != 0)
            return weft_fail(-EIO, "sleep failed");
        for (size_t i = 0; i < sizeof pattern; i++)
            if (pattern[i] != (unsigned char)(id * 7 + (intptr_t)i))
                return weft_fail(-EFAULT, "compact task %ld: byte %zu changed across a suspension", (long)id, i);
    }
    /* Deep frames in a compact task, after it has been copied back. */
    return (void *)(intptr_t)(recurse(0, 100) == recursion_result(100) ? id + 1 : -1);
}

static void *compact_main(void *arg)
{
    many_report *r = arg;
    weft_task **tasks = calloc(COMPACT_TASKS, sizeof *tasks);
    void **results = calloc(COMPACT_TASKS, sizeof *results);
    if (!tasks || !results)
        return weft_fail(-ENOMEM, "test arrays");
    for (intptr_t i = 0; i < COMPACT_TASKS; i++) {
        tasks[i] = weft_spawn_opts(compact_worker, (void *)i, &(weft_spawn_options){.compact = 1});
        if (!tasks[i])
            return weft_fail(-ENOMEM, "spawn %ld failed: %s", (long)i, weft_errmsg());
    }
    r->gather_rc = weft_gather(tasks, COMPACT_TASKS, results, NULL, 0);
    snprintf(r->msg, sizeof r->msg, "%s", weft_errmsg());
    r->finished_at = weft_time();
    for (intptr_t i = 0; i < COMPACT_TASKS; i++)
        if ((intptr_t)results[i] != i + 1)
            r->wrong_results++;
    free(tasks);
    free(results);
    return NULL;
}

Test(stack, compact_tasks_keep_their_frames, .timeout = 60)
{
    many_report r = {.gather_rc = 1};
    int rc = run_virtual(compact_main, &r, NULL);
    cr_assert_eq(rc, 0, "weft_run: %d %s", rc, weft_errmsg());
    cr_assert_eq(r.gather_rc, 0, "gather: %d %s", r.gather_rc, r.msg);
    cr_assert_eq(r.wrong_results, 0);
    cr_assert(time_is(r.finished_at, 3 * 0.54), "the last compact task finished at %f", r.finished_at);
}

/* A plain crash inside a task (a load from address 0x10, as a NULL struct
 * pointer's field would be; not NULL itself, which UBSan would stop first) names the
 * task on stderr, then the signal does what it would have done without weft: the
 * process dies of SIGSEGV. */
static void *dereferences_null(void *arg)
{
    volatile int *volatile p = (volatile int *)((uintptr_t)arg + 16);
    return (void *)(intptr_t)*p;
}

static void *crash_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_opts(dereferences_null, NULL, &(weft_spawn_options){.name = "careless"});
    weft_await(t, NULL);
    return NULL;
}

static int crash_body(void)
{
    weft_run(crash_main, NULL, NULL);
    return 0;
}

Test(stack, a_crash_in_a_task_names_the_task, .timeout = 30)
{
    child_outcome out;
    run_forked(crash_body, &out);
    /* Killed by the signal (or, under a sanitizer that handles SIGSEGV itself, ended
     * by its report): never a normal exit. */
    cr_assert(WIFSIGNALED(out.status) || (WIFEXITED(out.status) && WEXITSTATUS(out.status) != 0), "status %d: %s",
              out.status, out.stderr_text);
    cr_assert(strstr(out.stderr_text, "weft: task 'careless' crashed with SIGSEGV") != NULL, "%s", out.stderr_text);
    cr_assert(strstr(out.stderr_text, "at address 0x10") != NULL, "%s", out.stderr_text);
}
