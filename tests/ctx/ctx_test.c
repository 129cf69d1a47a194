/*
 * ctx_test.c — checks one context-switch backend (src/ctx/ctx.h) on its own: no
 * other part of weft and no test framework, so the same file also runs
 * cross-compiled for AArch64 under qemu. Prints one line per test, then
 * "N passed, M failed", and exits non-zero on any failure.
 *
 * Under AddressSanitizer or ThreadSanitizer every switch is announced to the
 * sanitizer (the fiber_* helpers), as the scheduler does, so the sanitizers check
 * the backend instead of tripping over stacks they were not told about.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx.h"

#include <execinfo.h>
#include <fenv.h>
#include <float.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif
/* GCC names the sanitizers with macros, Clang with __has_feature. */
#if defined(__SANITIZE_ADDRESS__)
#define WITH_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define WITH_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WITH_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define WITH_TSAN 1
#endif
#endif
#if defined(WITH_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(WITH_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

#define NOINLINE __attribute__((noinline))

/* ------------------------------------------------------------------------ */
/* A minimal harness                                                        */
/* ------------------------------------------------------------------------ */

static int tests_passed, tests_failed, current_test_failures;
static const char *current_test = "";

/* A broken switch often loops instead of crashing: name the test that hung. */
static void on_watchdog(int sig)
{
    static const char hung[] = "ctx_test: timed out in ";
    (void)sig;
    if (write(STDERR_FILENO, hung, sizeof hung - 1) < 0 ||
        write(STDERR_FILENO, current_test, strlen(current_test)) < 0 || write(STDERR_FILENO, "\n", 1) < 0)
        _exit(124);
    _exit(124);
}

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            current_test_failures++;                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

static void run_test(const char *name, void (*test)(void))
{
    current_test_failures = 0;
    current_test = name;
    test();
    if (current_test_failures == 0) {
        tests_passed++;
        printf("ok   %s\n", name);
    } else {
        tests_failed++;
        printf("FAIL %s\n", name);
    }
    fflush(stdout);
}

#define RUN(test) run_test(#test, test)

/* ------------------------------------------------------------------------ */
/* Fibers: a context with its stack, announced to the sanitizers            */
/* ------------------------------------------------------------------------ */

typedef struct fiber {
    weft__ctx ctx;
    void *map; /* guard page + stack; NULL for the thread's own stack */
    size_t map_size;
    void *stack_lo;
    size_t stack_size;
    void *asan_fake_stack;
    void *tsan_fiber;
} fiber;

/* The thread's original context. */
static fiber main_fiber;

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* A stack of `size` bytes with an inaccessible page below it, so an overflow
 * faults at once instead of scribbling over a neighbour. */
static void *map_stack(fiber *f, size_t size)
{
    f->map_size = size + page_size();
    f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (f->map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (mprotect(f->map, page_size(), PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    return (char *)f->map + page_size();
}

/* Makes f run entry(arg) on [lo, lo + size) at its first switch. */
static void fiber_make_on(fiber *f, void *lo, size_t size, weft__ctx_entry entry, void *arg)
{
    f->stack_lo = lo;
    f->stack_size = size;
    f->asan_fake_stack = NULL;
#if defined(WITH_TSAN)
    f->tsan_fiber = __tsan_create_fiber(0);
#endif
    weft__ctx_make(&f->ctx, lo, size, entry, arg);
}

static void fiber_make(fiber *f, size_t size, weft__ctx_entry entry, void *arg)
{
    memset(f, 0, sizeof *f);
    fiber_make_on(f, map_stack(f, size), size, entry, arg);
}

static void fiber_free(fiber *f)
{
#if defined(WITH_TSAN)
    __tsan_destroy_fiber(f->tsan_fiber);
#endif
    munmap(f->map, f->map_size);
    f->map = NULL;
}

/*
 * Announce a switch from `from` to `to`; `final` when `from` will never resume.
 * Always inlined: ThreadSanitizer records each function's entry and exit on the
 * current fiber, so the function that tells it about the switch must be the one
 * that also makes the switch and later resumes.
 */
static inline __attribute__((always_inline)) void fiber_leaving(fiber *from, fiber *to, bool final)
{
#if defined(WITH_ASAN)
    __sanitizer_start_switch_fiber(final ? NULL : &from->asan_fake_stack, to->stack_lo, to->stack_size);
#else
    (void)from;
    (void)final;
#endif
#if defined(WITH_TSAN)
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#else
    (void)to;
#endif
}

/* Announce that `self` runs again (or, from its entry, for the first time). */
static void fiber_arrived(fiber *self)
{
#if defined(WITH_ASAN)
    const void *from_lo;
    size_t from_size;
    __sanitizer_finish_switch_fiber(self->asan_fake_stack, &from_lo, &from_size);
    /* The first fiber ever started is started from the thread's own stack, whose
     * bounds only the sanitizer knows: learn them here. */
    if (main_fiber.stack_lo == NULL) {
        main_fiber.stack_lo = (void *)from_lo;
        main_fiber.stack_size = from_size;
    }
#else
    (void)self;
#endif
}

static void fiber_switch(fiber *from, fiber *to)
{
    fiber_leaving(from, to, false);
    weft__ctx_switch(&from->ctx, &to->ctx);
    fiber_arrived(from);
}

/* The last switch out of a fiber whose entry is done. */
static void fiber_exit(fiber *from, fiber *to)
{
    fiber_leaving(from, to, true);
    weft__ctx_switch(&from->ctx, &to->ctx);
    fprintf(stderr, "a finished fiber was resumed\n");
    abort();
}

/* ------------------------------------------------------------------------ */
/* Values passed back and forth arrive in order                             */
/* ------------------------------------------------------------------------ */

enum { PINGPONG_ROUNDS = 1000 };

typedef struct player {
    fiber f;
    int id;
} player;

static long pingpong_mailbox;
static int pingpong_log[PINGPONG_ROUNDS];
static int pingpong_len;
static bool pingpong_quit;

static void pingpong_entry(void *arg)
{
    player *self = arg;
    fiber_arrived(&self->f);
    while (!pingpong_quit) {
        if (pingpong_len < PINGPONG_ROUNDS)
            pingpong_log[pingpong_len++] = self->id;
        pingpong_mailbox = pingpong_mailbox * 3 + self->id;
        fiber_switch(&self->f, &main_fiber);
    }
    fiber_exit(&self->f, &main_fiber);
}

static void test_ping_pong_1000_switches_in_order(void)
{
    player a = {.id = 1}, b = {.id = 2};
    fiber_make(&a.f, 64 * 1024, pingpong_entry, &a);
    fiber_make(&b.f, 64 * 1024, pingpong_entry, &b);
    pingpong_len = 0;
    pingpong_quit = false;
    bool in_order = true;
    for (int i = 0; i < PINGPONG_ROUNDS; i++) {
        player *p = (i % 2 == 0) ? &a : &b;
        pingpong_mailbox = i;
        fiber_switch(&main_fiber, &p->f);
        if (pingpong_mailbox != (long)i * 3 + p->id || pingpong_len != i + 1 || pingpong_log[i] != p->id) {
            fprintf(stderr, "round %d: mailbox %ld, log length %d\n", i, pingpong_mailbox, pingpong_len);
            in_order = false;
            break;
        }
    }
    CHECK(in_order);
    CHECK(pingpong_len == PINGPONG_ROUNDS);
    pingpong_quit = true;
    fiber_switch(&main_fiber, &a.f);
    fiber_switch(&main_fiber, &b.f);
    fiber_free(&a.f);
    fiber_free(&b.f);
}

/* ------------------------------------------------------------------------ */
/* Contexts switch straight to each other, not only to and from main        */
/* ------------------------------------------------------------------------ */

enum { RING_SIZE = 8, RING_LAPS = 100 };

typedef struct ring_member {
    fiber f;
    fiber *next;
    char name;
} ring_member;

static char ring_trace[RING_SIZE * RING_LAPS + 1];
static size_t ring_trace_len;

static void ring_entry(void *arg)
{
    ring_member *self = arg;
    fiber_arrived(&self->f);
    for (int lap = 0; lap < RING_LAPS - 1; lap++) {
        ring_trace[ring_trace_len++] = self->name;
        fiber_switch(&self->f, self->next);
    }
    ring_trace[ring_trace_len++] = self->name;
    fiber_exit(&self->f, self->next);
}

static void test_ring_of_contexts_passes_control_around(void)
{
    static ring_member ring[RING_SIZE];
    for (int i = 0; i < RING_SIZE; i++) {
        ring[i].name = (char)('a' + i);
        ring[i].next = (i + 1 < RING_SIZE) ? &ring[i + 1].f : &main_fiber;
        fiber_make(&ring[i].f, 32 * 1024, ring_entry, &ring[i]);
    }
    ring_trace_len = 0;
    for (int lap = 0; lap < RING_LAPS; lap++)
        fiber_switch(&main_fiber, &ring[0].f);
    ring_trace[ring_trace_len] = '\0';
    bool in_order = ring_trace_len == RING_SIZE * RING_LAPS;
    for (size_t i = 0; in_order && i < ring_trace_len; i++)
        in_order = ring_trace[i] == 'a' + (char)(i % RING_SIZE);
    CHECK(in_order);
    for (int i = 0; i < RING_SIZE; i++)
        fiber_free(&ring[i].f);
}

/* ------------------------------------------------------------------------ */
/* Callee-saved registers, checked one by one from assembly                 */
/* ------------------------------------------------------------------------ */

/*
 * ctx_test_regs_switch(from, to, seed) fills every callee-saved register with
 * seed + k (k = 1, 2, ...), calls weft__ctx_switch(from, to), and returns a mask
 * with bit k-1 set for each register that no longer holds seed + k once control
 * comes back. The other side does the same with another seed, so a register the
 * switch forgets to restore holds the other side's value and shows up.
 */
#if defined(__x86_64__) || defined(__aarch64__)
#define HAVE_REGS_SWITCH 1
uint64_t ctx_test_regs_switch(weft__ctx *from, weft__ctx *to, uint64_t seed);

#if defined(__x86_64__)
#define X86_SET(reg, k) "  leaq " #k "(%rdx), " reg "\n"
#define X86_CHECK(reg, k) \
    "  leaq " #k "(%rdx), %rcx\n  cmpq %rcx, " reg "\n  je 1f\n  orq $(1 << (" #k " - 1)), %rax\n1:\n"
/* rbx rbp r12-r15: six registers. */
__asm__(".pushsection .text\n"
        ".globl ctx_test_regs_switch\n"
        ".type ctx_test_regs_switch, @function\n"
        "ctx_test_regs_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  pushq %rdx\n" /* the seed; also realigns the stack for the call */
        X86_SET("%rbx", 1) X86_SET("%rbp", 2) X86_SET("%r12", 3) X86_SET("%r13", 4)
        X86_SET("%r14", 5) X86_SET("%r15", 6)
        "  call weft__ctx_switch@PLT\n"
        "  movq (%rsp), %rdx\n"
        "  xorl %eax, %eax\n"
        X86_CHECK("%rbx", 1) X86_CHECK("%rbp", 2) X86_CHECK("%r12", 3) X86_CHECK("%r13", 4)
        X86_CHECK("%r14", 5) X86_CHECK("%r15", 6)
        "  popq %rdx\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size ctx_test_regs_switch, .-ctx_test_regs_switch\n"
        ".popsection\n");
enum { REGS_CHECKED = 6 };
#else
#define A64_SET(reg, k) "  add " reg ", x2, #" #k "\n"
#define A64_SETD(dreg, k) "  add x9, x2, #" #k "\n  fmov " dreg ", x9\n"
#define A64_CHECK(reg, k) \
    "  add x9, x2, #" #k "\n  cmp " reg ", x9\n  cset x10, ne\n  orr x0, x0, x10, lsl #(" #k " - 1)\n"
#define A64_CHECKD(dreg, k) "  fmov x11, " dreg "\n" A64_CHECK("x11", k)
/* x19-x29 and d8-d15: nineteen registers (x30 is checked by coming back at all). */
__asm__(".pushsection .text\n"
        ".globl ctx_test_regs_switch\n"
        ".type ctx_test_regs_switch, %function\n"
        "ctx_test_regs_switch:\n"
        "  stp x29, x30, [sp, #-176]!\n"
        "  stp x19, x20, [sp, #16]\n  stp x21, x22, [sp, #32]\n  stp x23, x24, [sp, #48]\n"
        "  stp x25, x26, [sp, #64]\n  stp x27, x28, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n  stp d14, d15, [sp, #144]\n"
        "  str x2, [sp, #160]\n"
        A64_SET("x19", 1) A64_SET("x20", 2) A64_SET("x21", 3) A64_SET("x22", 4)
        A64_SET("x23", 5) A64_SET("x24", 6) A64_SET("x25", 7) A64_SET("x26", 8)
        A64_SET("x27", 9) A64_SET("x28", 10) A64_SET("x29", 11)
        A64_SETD("d8", 12) A64_SETD("d9", 13) A64_SETD("d10", 14) A64_SETD("d11", 15)
        A64_SETD("d12", 16) A64_SETD("d13", 17) A64_SETD("d14", 18) A64_SETD("d15", 19)
        "  bl weft__ctx_switch\n"
        "  ldr x2, [sp, #160]\n"
        "  mov x0, #0\n"
        A64_CHECK("x19", 1) A64_CHECK("x20", 2) A64_CHECK("x21", 3) A64_CHECK("x22", 4)
        A64_CHECK("x23", 5) A64_CHECK("x24", 6) A64_CHECK("x25", 7) A64_CHECK("x26", 8)
        A64_CHECK("x27", 9) A64_CHECK("x28", 10) A64_CHECK("x29", 11)
        A64_CHECKD("d8", 12) A64_CHECKD("d9", 13) A64_CHECKD("d10", 14) A64_CHECKD("d11", 15)
        A64_CHECKD("d12", 16) A64_CHECKD("d13", 17) A64_CHECKD("d14", 18) A64_CHECKD("d15", 19)
        "  ldp x19, x20, [sp, #16]\n  ldp x21, x22, [sp, #32]\n  ldp x23, x24, [sp, #48]\n"
        "  ldp x25, x26, [sp, #64]\n  ldp x27, x28, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n  ldp d14, d15, [sp, #144]\n"
        "  ldp x29, x30, [sp], #176\n"
        "  ret\n"
        ".size ctx_test_regs_switch, .-ctx_test_regs_switch\n"
        ".popsection\n");
enum { REGS_CHECKED = 19 };
#endif

enum { REGS_ROUNDS = 100 };
static const uint64_t main_seed = 0x1111111100000000u, other_seed = 0x7777777700000000u;

typedef struct regs_other {
    fiber f;
    uint64_t lost; /* registers the other side found changed */
    bool quit;
} regs_other;

static uint64_t regs_switch(fiber *from, fiber *to, uint64_t seed)
{
    fiber_leaving(from, to, false);
    uint64_t lost = ctx_test_regs_switch(&from->ctx, &to->ctx, seed);
    fiber_arrived(from);
    return lost;
}

static void regs_entry(void *arg)
{
    regs_other *self = arg;
    fiber_arrived(&self->f);
    while (!self->quit)
        self->lost |= regs_switch(&self->f, &main_fiber, other_seed);
    fiber_exit(&self->f, &main_fiber);
}

static void test_callee_saved_registers_survive(void)
{
    regs_other other = {0};
    fiber_make(&other.f, 64 * 1024, regs_entry, &other);
    uint64_t lost = 0;
    for (int i = 0; i < REGS_ROUNDS; i++)
        lost |= regs_switch(&main_fiber, &other.f, main_seed);
    if (lost | other.lost)
        fprintf(stderr, "registers lost (bit k-1 = k-th of %d): main %#llx, other %#llx\n",
                (int)REGS_CHECKED, (unsigned long long)lost, (unsigned long long)other.lost);
    CHECK(lost == 0);
    CHECK(other.lost == 0);
    other.quit = true;
    fiber_switch(&main_fiber, &other.f);
    fiber_free(&other.f);
}
#endif

/* ------------------------------------------------------------------------ */
/* Many live integer and double locals survive switches (compiled -O2)      */
/* ------------------------------------------------------------------------ */

NOINLINE static void pause_without_switching(void)
{
    __asm__ volatile("" ::: "memory");
}

/*
 * Keeps eight integers and eight doubles live across every switch, more than the
 * callee-saved registers hold, so the compiler keeps some in those registers
 * (d8-d15 on AArch64) and spills the rest to the stack. With peer == NULL it runs
 * the same arithmetic without switching: the reference.
 */
NOINLINE static uint64_t juggle(fiber *self, fiber *peer, uint64_t seed, int rounds)
{
    volatile uint64_t opaque_seed = seed;
    uint64_t a = opaque_seed, b = a ^ 0x9e3779b97f4a7c15u, c = a * 3, d = a + 7;
    uint64_t e = ~a, f = a >> 3, g = a << 5, h = a ^ 0xff;
    double x = (double)(a & 0xffff), y = x * 0.5, z = x + 1.5, w = 2.25;
    double u = x * x, v = 0.125, p = 3.0, q = x - 9.0;
    for (int r = 0; r < rounds; r++) {
        a = a * 6364136223846793005u + 1442695040888963407u;
        b ^= a >> 29;
        c += b;
        d = ((d << 7) | (d >> 57)) ^ c;
        e += d * 5;
        f ^= e >> 11;
        g += f;
        h = h * 31 + g;
        x = x * 0.5 + y;
        y = y * 0.25 + z;
        z = z * 0.75 + w;
        w = w * 0.5 + u;
        u = u * 0.125 + v;
        v = v * 0.5 + p;
        p = p * 0.25 + q;
        q = q * 0.5 + (double)(a >> 40);
        if (peer)
            fiber_switch(self, peer);
        else
            pause_without_switching();
    }
    double mixed = x + 2 * y + 3 * z + 5 * w + 7 * u + 11 * v + 13 * p + 17 * q;
    uint64_t mixed_bits;
    memcpy(&mixed_bits, &mixed, sizeof mixed_bits);
    return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ mixed_bits;
}

enum { JUGGLE_ROUNDS = 300 };

typedef struct juggler {
    fiber f;
    fiber *peer;
    uint64_t seed, result;
} juggler;

static void juggler_entry(void *arg)
{
    juggler *self = arg;
    fiber_arrived(&self->f);
    self->result = juggle(&self->f, self->peer, self->seed, JUGGLE_ROUNDS);
    fiber_exit(&self->f, &main_fiber);
}

static void test_live_locals_survive_switches(void)
{
    juggler a = {.seed = 12345}, b = {.seed = 987654321};
    a.peer = &b.f;
    b.peer = &a.f;
    fiber_make(&a.f, 64 * 1024, juggler_entry, &a);
    fiber_make(&b.f, 64 * 1024, juggler_entry, &b);
    /* a and b alternate until a finishes; b's last switch went to a, so b still
     * has to be resumed once to finish. */
    fiber_switch(&main_fiber, &a.f);
    fiber_switch(&main_fiber, &b.f);
    CHECK(a.result == juggle(NULL, NULL, a.seed, JUGGLE_ROUNDS));
    CHECK(b.result == juggle(NULL, NULL, b.seed, JUGGLE_ROUNDS));
    CHECK(a.result != b.result);
    fiber_free(&a.f);
    fiber_free(&b.f);
}

/* ------------------------------------------------------------------------ */
/* FP control state belongs to each context                                 */
/* ------------------------------------------------------------------------ */

/* 1/3 rounded by the SSE/NEON unit under the current rounding mode. */
NOINLINE static double third(void)
{
    volatile double one = 1.0, three = 3.0;
    return one / three;
}

#if defined(__x86_64__)
/* The same through the x87 unit, whose rounding mode is a separate register. */
NOINLINE static long double third_x87(void)
{
    volatile long double one = 1.0L, three = 3.0L;
    return one / three;
}
#endif

static double third_rounded(int mode)
{
    int saved = fegetround();
    fesetround(mode);
    double value = third();
    fesetround(saved);
    return value;
}

typedef struct rounding_probe {
    fiber f;
    int mode_first, mode_after_main_changed_its_own;
    double third_first, third_after;
#if defined(__x86_64__)
    long double third_x87_after;
#endif
} rounding_probe;

static void rounding_entry(void *arg)
{
    rounding_probe *self = arg;
    fiber_arrived(&self->f);
    fesetround(FE_UPWARD);
    self->mode_first = fegetround();
    self->third_first = third();
    fiber_switch(&self->f, &main_fiber);
    self->mode_after_main_changed_its_own = fegetround();
    self->third_after = third();
#if defined(__x86_64__)
    self->third_x87_after = third_x87();
#endif
    fiber_exit(&self->f, &main_fiber);
}

static void test_rounding_mode_is_per_context(void)
{
    double up = third_rounded(FE_UPWARD), down = third_rounded(FE_DOWNWARD);
    double nearest = third_rounded(FE_TONEAREST);
    CHECK(up > down);
#if defined(__x86_64__)
    long double x87_nearest = third_x87();
    fesetround(FE_DOWNWARD);
    long double x87_down = third_x87();
    fesetround(FE_UPWARD);
    long double x87_up = third_x87();
    fesetround(FE_TONEAREST);
    CHECK(x87_up > x87_down);
#endif
    CHECK(fegetround() == FE_TONEAREST);

    rounding_probe probe;
    fiber_make(&probe.f, 64 * 1024, rounding_entry, &probe);
    fiber_switch(&main_fiber, &probe.f);
    CHECK(probe.mode_first == FE_UPWARD);
    CHECK(probe.third_first == up);
    /* The probe's FE_UPWARD stayed with the probe. */
    CHECK(fegetround() == FE_TONEAREST);
    CHECK(third() == nearest);
#if defined(__x86_64__)
    CHECK(third_x87() == x87_nearest);
#endif

    fesetround(FE_DOWNWARD);
    fiber_switch(&main_fiber, &probe.f);
    /* ...and main's FE_DOWNWARD stayed with main. */
    CHECK(probe.mode_after_main_changed_its_own == FE_UPWARD);
    CHECK(probe.third_after == up);
#if defined(__x86_64__)
    CHECK(probe.third_x87_after == x87_up);
#endif
    CHECK(fegetround() == FE_DOWNWARD);
    CHECK(third() == down);
#if defined(__x86_64__)
    CHECK(third_x87() == x87_down);
#endif
    fesetround(FE_TONEAREST);
    fiber_free(&probe.f);
}

typedef struct inherit_probe {
    fiber f;
    int mode;
    double third;
} inherit_probe;

static void inherit_entry(void *arg)
{
    inherit_probe *self = arg;
    fiber_arrived(&self->f);
    self->mode = fegetround();
    self->third = third();
    fiber_exit(&self->f, &main_fiber);
}

static void test_new_context_inherits_creators_rounding_mode(void)
{
    double toward_zero = third_rounded(FE_TOWARDZERO);
    inherit_probe probe;
    fesetround(FE_TOWARDZERO);
    fiber_make(&probe.f, 64 * 1024, inherit_entry, &probe);
    fesetround(FE_TONEAREST);
    fiber_switch(&main_fiber, &probe.f);
    CHECK(probe.mode == FE_TOWARDZERO);
    CHECK(probe.third == toward_zero);
    CHECK(fegetround() == FE_TONEAREST);
    fiber_free(&probe.f);
}

#if defined(__x86_64__) || defined(__aarch64__)
#define HAVE_FLUSH_TO_ZERO 1
#if defined(__x86_64__)
enum { MXCSR_FTZ = 1u << 15 };
static bool flush_to_zero_is_on(void)
{
    return (_mm_getcsr() & MXCSR_FTZ) != 0;
}
static void set_flush_to_zero(bool on)
{
    unsigned csr = _mm_getcsr();
    _mm_setcsr(on ? csr | MXCSR_FTZ : csr & ~(unsigned)MXCSR_FTZ);
}
#else
#define FPCR_FZ ((uint64_t)1 << 24)
static uint64_t read_fpcr(void)
{
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
}
static bool flush_to_zero_is_on(void)
{
    return (read_fpcr() & FPCR_FZ) != 0;
}
static void set_flush_to_zero(bool on)
{
    uint64_t fpcr = read_fpcr();
    fpcr = on ? fpcr | FPCR_FZ : fpcr & ~FPCR_FZ;
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
}
#endif

/* Half the smallest normal double: a subnormal, or 0 when flushing to zero. */
NOINLINE static double half_of_dbl_min(void)
{
    volatile double smallest = DBL_MIN, half = 0.5;
    return smallest * half;
}

typedef struct ftz_probe {
    fiber f;
    bool on_first, on_after;
    double tiny_first, tiny_after;
} ftz_probe;

static void ftz_entry(void *arg)
{
    ftz_probe *self = arg;
    fiber_arrived(&self->f);
    set_flush_to_zero(true);
    self->on_first = flush_to_zero_is_on();
    self->tiny_first = half_of_dbl_min();
    fiber_switch(&self->f, &main_fiber);
    self->on_after = flush_to_zero_is_on();
    self->tiny_after = half_of_dbl_min();
    fiber_exit(&self->f, &main_fiber);
}

static void test_flush_to_zero_is_per_context(void)
{
    CHECK(!flush_to_zero_is_on());
    CHECK(half_of_dbl_min() > 0.0);
    ftz_probe probe;
    fiber_make(&probe.f, 64 * 1024, ftz_entry, &probe);
    fiber_switch(&main_fiber, &probe.f);
    CHECK(probe.on_first);
    CHECK(probe.tiny_first == 0.0);
    CHECK(!flush_to_zero_is_on());
    CHECK(half_of_dbl_min() > 0.0);
    fiber_switch(&main_fiber, &probe.f);
    CHECK(probe.on_after);
    CHECK(probe.tiny_after == 0.0);
    CHECK(!flush_to_zero_is_on());
    CHECK(half_of_dbl_min() > 0.0);
    fiber_free(&probe.f);
}
#endif

/* ------------------------------------------------------------------------ */
/* The stack inside entry is aligned as the ABI requires                    */
/* ------------------------------------------------------------------------ */

typedef double double_pair __attribute__((vector_size(16)));

typedef struct alignment_probe {
    fiber f;
    uintptr_t entry_frame, probe_frame, aligned_local;
    double_pair pair;
    char text[32];
} alignment_probe;

NOINLINE static void probe_alignment(alignment_probe *self)
{
    /* The compiler trusts the ABI: it aligns these only relative to the incoming
     * stack pointer, and uses aligned vector loads and stores on the pair. */
    _Alignas(16) volatile unsigned char local[16];
    volatile double_pair pair = {1.5, 2.5};
    local[0] = 1;
    pair = pair * pair;
    self->pair = pair;
    self->probe_frame = (uintptr_t)__builtin_frame_address(0);
    self->aligned_local = (uintptr_t)local;
    snprintf(self->text, sizeof self->text, "%.3f %g", third(), 1e-300 * 3.0);
}

static void alignment_entry(void *arg)
{
    alignment_probe *self = arg;
    fiber_arrived(&self->f);
    self->entry_frame = (uintptr_t)__builtin_frame_address(0);
    probe_alignment(self);
    fiber_exit(&self->f, &main_fiber);
}

static void test_stack_is_aligned_in_entry(void)
{
    /* Stack bounds at every misalignment: make must align them itself. */
    static const size_t lo_offsets[] = {0, 1, 4, 8, 12};
    static const size_t size_trims[] = {0, 3, 8, 15};
    for (size_t i = 0; i < sizeof lo_offsets / sizeof lo_offsets[0]; i++) {
        for (size_t j = 0; j < sizeof size_trims / sizeof size_trims[0]; j++) {
            alignment_probe probe;
            memset(&probe, 0, sizeof probe);
            size_t size = 64 * 1024;
            char *lo = map_stack(&probe.f, size);
            fiber_make_on(&probe.f, lo + lo_offsets[i], size - lo_offsets[i] - size_trims[j],
                          alignment_entry, &probe);
            fiber_switch(&main_fiber, &probe.f);
            bool ok = probe.entry_frame % 16 == 0 && probe.probe_frame % 16 == 0 &&
                      probe.aligned_local % 16 == 0 && probe.pair[0] == 2.25 && probe.pair[1] == 6.25 &&
                      strcmp(probe.text, "0.333 3e-300") == 0;
            if (!ok)
                fprintf(stderr, "stack_lo + %zu, size - %zu: frames %#lx %#lx, local %#lx, text '%s'\n",
                        lo_offsets[i], size_trims[j], (unsigned long)probe.entry_frame,
                        (unsigned long)probe.probe_frame, (unsigned long)probe.aligned_local, probe.text);
            CHECK(ok);
            fiber_free(&probe.f);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Deep recursion inside a context on a 256 KiB stack                       */
/* ------------------------------------------------------------------------ */

enum { DEEP_STACK = 256 * 1024, DEEP_TARGET = 200 * 1024 };

/* Recurses until the frames below `top` span `target` bytes. The variable-length
 * array keeps each frame on the real stack even under AddressSanitizer. */
NOINLINE static uint64_t dive(unsigned depth, uintptr_t top, size_t target, unsigned *deepest)
{
    volatile unsigned char pad[200 + (depth & 1)];
    pad[0] = (unsigned char)depth;
    pad[sizeof pad - 1] = (unsigned char)(depth >> 8);
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    uint64_t below = 0;
    if (top - here < target)
        below = dive(depth + 1, top, target, deepest);
    else
        *deepest = depth;
    return below + depth + pad[0] + pad[sizeof pad - 1];
}

typedef struct deep_probe {
    fiber f;
    unsigned deepest;
    uint64_t sum;
} deep_probe;

static void deep_entry(void *arg)
{
    deep_probe *self = arg;
    fiber_arrived(&self->f);
    uintptr_t top = (uintptr_t)__builtin_frame_address(0);
    self->sum = dive(0, top, DEEP_TARGET, &self->deepest);
    fiber_exit(&self->f, &main_fiber);
}

static void test_deep_recursion_on_256k_stack(void)
{
    deep_probe probe = {0};
    fiber_make(&probe.f, DEEP_STACK, deep_entry, &probe);
    fiber_switch(&main_fiber, &probe.f);
    uint64_t expected = 0;
    for (unsigned d = 0; d <= probe.deepest; d++)
        expected += d + (d & 0xff) + ((d >> 8) & 0xff);
    CHECK(probe.deepest > 100);
    CHECK(probe.sum == expected);
    fiber_free(&probe.f);
}

/* ------------------------------------------------------------------------ */
/* An entry that returns aborts the process                                 */
/* ------------------------------------------------------------------------ */

static void returning_entry(void *arg)
{
    fiber_arrived(arg);
}

static void test_returning_entry_aborts(void)
{
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        fiber f;
        fiber_make(&f, 64 * 1024, returning_entry, &f);
        fiber_switch(&main_fiber, &f);
        _exit(3); /* came back: the trampoline returned instead of aborting */
    }
    CHECK(child > 0);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT))
        fprintf(stderr, "child status %#x\n", (unsigned)status);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

/* ------------------------------------------------------------------------ */
/* Unwinding inside a context stops at its first frame                      */
/* ------------------------------------------------------------------------ */

typedef struct unwind_probe {
    fiber f;
    int frames;
} unwind_probe;

NOINLINE static int count_frames(void)
{
    void *frames[64];
    int n = backtrace(frames, 64);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
    return n;
}

static void unwind_entry(void *arg)
{
    unwind_probe *self = arg;
    fiber_arrived(&self->f);
    self->frames = count_frames();
    fiber_exit(&self->f, &main_fiber);
}

static void test_backtrace_ends_at_context_start(void)
{
    unwind_probe probe = {0};
    fiber_make(&probe.f, 64 * 1024, unwind_entry, &probe);
    fiber_switch(&main_fiber, &probe.f);
    /* count_frames, unwind_entry, the trampoline, and for ucontext glibc's start
     * frame: an unwinder walking past the start would find garbage or many more. */
    if (probe.frames < 2 || probe.frames > 5)
        fprintf(stderr, "backtrace found %d frames\n", probe.frames);
    CHECK(probe.frames >= 2 && probe.frames <= 5);
    fiber_free(&probe.f);
}

/* ------------------------------------------------------------------------ */

int main(void)
{
#if defined(WITH_TSAN)
    main_fiber.tsan_fiber = __tsan_get_current_fiber();
#endif
#if defined(WEFT_CTX_UCONTEXT)
    const char *backend = "ucontext";
#elif defined(__x86_64__)
    const char *backend = "x86-64 assembly";
#elif defined(__aarch64__)
    const char *backend = "AArch64 assembly";
#else
    const char *backend = "?";
#endif
    printf("ctx_test: backend %s\n", backend);
    fflush(stdout);
    signal(SIGALRM, on_watchdog);
    alarm(60);

#if defined(HAVE_REGS_SWITCH)
    RUN(test_callee_saved_registers_survive); /* first: the most precise diagnosis */
#endif
    RUN(test_ping_pong_1000_switches_in_order);
    RUN(test_ring_of_contexts_passes_control_around);
    RUN(test_live_locals_survive_switches);
    RUN(test_rounding_mode_is_per_context);
    RUN(test_new_context_inherits_creators_rounding_mode);
#if defined(HAVE_FLUSH_TO_ZERO)
    RUN(test_flush_to_zero_is_per_context);
#endif
    RUN(test_stack_is_aligned_in_entry);
    RUN(test_deep_recursion_on_256k_stack);
    RUN(test_returning_entry_aborts);
    RUN(test_backtrace_ends_at_context_start);

    printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed == 0 ? 0 : 1;
}
