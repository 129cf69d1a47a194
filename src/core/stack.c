/*
 * stack.c — task stacks: mmap'd and committed only where touched, a guard page (or,
 * failing that, a canary) below each, pooled per loop for reuse, and the report of an
 * overflow.
 *
 * Why pooling: on the virtual machines we run on, the first touch of a fresh page
 * costs ~2–10 µs while a reused page costs nothing, so a stack that goes back to the
 * kernel and is faulted in again is the most expensive thing a task can do.
 *
 * Why slabs: a stack of the loop's default size comes from a slab of SLAB_STACKS
 * stacks made by one mmap. Where the kernel has guard regions (MADV_GUARD_INSTALL,
 * Linux 6.13), a guard page is installed below every stack of the slab in one
 * process_madvise call: the guard pages split no mapping, so any number of stacks is
 * guarded, a stack costs no mmap, mprotect or munmap of its own, and no canary has
 * to be read at each switch (a read of another page: ~6 % of W3's time).
 *
 * Guard pages inside a mapping and core files: the kernel's own core dump writes a
 * guard page as a hole and the rest of the mapping as it is (checked on 6.18), but
 * gdb's gcore reads memory through /proc/PID/mem, where a guard page reads as EIO,
 * and gdb 13 then stops copying that mapping and leaves the rest of it zeros. A
 * slab starts with a guard page, so every stack of it, saved registers included,
 * would be lost from the core. So the guarded slabs are kept on a process-wide
 * list, and tools/weft-gdb.py hooks gcore to call weft__stack_guards_lift in the
 * stopped process: guards removed before the copy, installed again after it
 * (docs/debugging.md).
 *
 * Without guard regions, a guard page makes a separate kernel mapping (two VMAs a
 * stack) and the kernel caps a process at vm.max_map_count mappings (65530 by
 * default, ~32k guarded stacks). So stacks are mapped one by one with a PROT_NONE
 * page below until that budget is spent; past it they come from unguarded slabs,
 * with a canary below each that is checked at every switch. Stacks of other sizes
 * are always mapped one by one, the same way.
 *
 * Where an unguarded stack's canary lives: in the 8 bytes just below its lowest
 * usable byte, which are the top of the region below it (each unguarded region
 * keeps its top CANARY_SLOT bytes for that), or a pad page at the bottom of the
 * mapping for the lowest stack. The region below's top page is touched anyway (its
 * descriptor and first frames are there), so the canary costs no page of its own:
 * a sleeping task on an unguarded stack costs one page, not two.
 *
 * What was measured and not kept: populating the top page of each new stack ahead
 * of use (MADV_POPULATE_WRITE, one process_madvise call for a slab's 64 top pages)
 * costs the same as the faults it replaces (1.62 against 1.64 µs a page, medians of
 * five alternating runs of 1M pages): the price of a fresh page here is allocating
 * and zeroing it, not the trap. See docs/benchmarks.md.
 */
#include "core/core.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* Linux 6.13's guard regions and 6.14's pidfd for "this process", spelled out for
 * older headers; an older kernel refuses them with EINVAL or EBADF. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif
#ifndef PIDFD_SELF_THREAD
#define PIDFD_SELF_THREAD (-10000)
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define WEFT__VALGRIND 1
#endif
#endif

#ifdef WEFT__ASAN
#include <sanitizer/asan_interface.h>
#endif

/* Stacks per unguarded slab: one mmap serves this many tasks. */
#define SLAB_STACKS 64
/* Mappings left for the rest of the program (heap arenas, libraries, sockets'
 * buffers...) when working out how many guarded stacks the kernel allows. */
#define MAP_COUNT_RESERVE 4096

struct weft__slab {
    struct weft__slab *next;
    void *base;
    size_t bytes;
    size_t stride;  /* bytes from one stack's region to the next */
    int guarded;    /* a guard page below every region, installed in the mapping */
    /* The process's guarded slabs, for weft__stack_guards_lift (gcore). */
    struct weft__slab *all_prev, *all_next;
};

/* Whether the kernel installs guard pages inside a mapping (MADV_GUARD_INSTALL):
 * unknown until the first slab, then known for the process. */
enum { GUARD_INSTALL_UNKNOWN, GUARD_INSTALL_YES, GUARD_INSTALL_NO };
static atomic_int guard_install = GUARD_INSTALL_UNKNOWN;
/* Set by the tests to take the path of kernels without guard regions. */
int weft__stack_guard_install_off;

/* Process-wide, because vm.max_map_count is a process-wide budget: the number of
 * guarded stacks alive in every loop of every thread. */
static atomic_size_t guarded_stacks;
static size_t guarded_limit;
static pthread_once_t limit_once = PTHREAD_ONCE_INIT;

/* Every guarded slab of the process, so that a debugger can lift their guard pages
 * while gdb's gcore reads the memory (see weft__stack_guards_lift). Touched only when
 * a guarded slab is made or unmapped, once per 64 stacks. */
static struct weft__slab *all_guarded;
static pthread_mutex_t all_guarded_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t all_guarded_once = PTHREAD_ONCE_INIT;

/* A fork while another thread holds the lock would leave it held in the child. */
static void all_guarded_prepare(void)
{
    pthread_mutex_lock(&all_guarded_lock);
}

static void all_guarded_release(void)
{
    pthread_mutex_unlock(&all_guarded_lock);
}

static void all_guarded_atfork(void)
{
    pthread_atfork(all_guarded_prepare, all_guarded_release, all_guarded_release);
}

static void all_guarded_add(struct weft__slab *slab)
{
    pthread_once(&all_guarded_once, all_guarded_atfork);
    pthread_mutex_lock(&all_guarded_lock);
    slab->all_prev = NULL;
    slab->all_next = all_guarded;
    if (all_guarded)
        all_guarded->all_prev = slab;
    all_guarded = slab;
    pthread_mutex_unlock(&all_guarded_lock);
}

static void all_guarded_remove(struct weft__slab *slab)
{
    pthread_mutex_lock(&all_guarded_lock);
    if (slab->all_prev)
        slab->all_prev->all_next = slab->all_next;
    else
        all_guarded = slab->all_next;
    if (slab->all_next)
        slab->all_next->all_prev = slab->all_prev;
    pthread_mutex_unlock(&all_guarded_lock);
}

size_t weft__page_size(void)
{
    /* Loops on several threads ask at once; every thread computes the same value. */
    static atomic_size_t page;
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (!p) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

static void read_map_limit(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    guarded_limit = max > 2 * MAP_COUNT_RESERVE ? (size_t)(max - MAP_COUNT_RESERVE) / 2 : (size_t)max / 4;
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* The descriptor lives at the top of the stack's own memory. */
static size_t desc_bytes(void)
{
    return round_up(sizeof(weft__stack), 64);
}

/* The top of an unguarded region that holds the canary of the stack above it. */
#define CANARY_SLOT 64

/* Bytes of a region that are not usable stack: the descriptor, and for an
 * unguarded stack the canary slot of its upper neighbour. */
static size_t reserved_bytes(int guarded)
{
    return desc_bytes() + (guarded ? 0 : CANARY_SLOT);
}

/* Describes the region [lo, lo + region) as a stack. An unguarded stack's canary
 * goes at lo - 8, which the caller has reserved for it. */
static weft__stack *describe(char *lo, size_t region, int guarded, int from_slab)
{
    weft__stack *s = (weft__stack *)(lo + region - reserved_bytes(guarded));
    memset(s, 0, sizeof *s);
    s->lo = lo;
    s->size = region - reserved_bytes(guarded);
    s->guarded = (uint8_t)guarded;
    s->from_slab = (uint8_t)from_slab;
    if (!guarded)
        memcpy(lo - sizeof(uint64_t), &(uint64_t){WEFT__CANARY}, sizeof(uint64_t));
#ifdef WEFT__VALGRIND
    s->valgrind_id = VALGRIND_STACK_REGISTER(lo, lo + s->size);
#endif
    return s;
}

static void undescribe(weft__stack *s)
{
#ifdef WEFT__VALGRIND
    VALGRIND_STACK_DEREGISTER(s->valgrind_id);
#endif
    (void)s;
}

static weft__stack *map_guarded(size_t size)
{
    size_t page = weft__page_size();
    char *base = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    if (mprotect(base, page, PROT_NONE) != 0) {
        munmap(base, size + page);
        return NULL;
    }
    atomic_fetch_add_explicit(&guarded_stacks, 1, memory_order_relaxed);
    return describe(base + page, size, 1, 0);
}

/* A lone unguarded stack: a pad page below it holds its canary. */
static weft__stack *map_unguarded(size_t size)
{
    size_t page = weft__page_size();
    char *base = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    return base == MAP_FAILED ? NULL : describe(base + page, size, 0, 0);
}

/* Region i of a slab. Both kinds start one page in: below the lowest region lies
 * its guard page, or the pad page holding its canary. */
static char *slab_region(const struct weft__slab *slab, size_t i)
{
    return (char *)slab->base + weft__page_size() + i * slab->stride;
}

/* Turns the page below every region of a fresh slab into a guard page, without
 * splitting the mapping: one system call for the whole slab where the kernel
 * takes a list of ranges, else one a page. Returns 0 or -errno. */
static int install_guards(struct weft__slab *slab)
{
    size_t page = weft__page_size();
    struct iovec guards[SLAB_STACKS];
    for (size_t i = 0; i < SLAB_STACKS; i++) {
        guards[i].iov_base = (char *)slab->base + i * slab->stride;
        guards[i].iov_len = page;
    }
#ifdef SYS_process_madvise
    if (syscall(SYS_process_madvise, PIDFD_SELF_THREAD, guards, SLAB_STACKS, MADV_GUARD_INSTALL, 0) ==
        (long)(SLAB_STACKS * page))
        return 0;
#endif
    /* Installing a guard twice is harmless, so a partial success above is redone. */
    for (size_t i = 0; i < SLAB_STACKS; i++)
        if (madvise(guards[i].iov_base, page, MADV_GUARD_INSTALL) != 0)
            return -errno;
    return 0;
}

/* Maps a slab of SLAB_STACKS stacks of the pool's size, guarded (a guard page
 * installed below each) or not (a canary below each). Returns 0, -ENOMEM, or
 * -EINVAL when the kernel has no guard regions. */
static int slab_refill(weft__stack_pool *pool, int guarded)
{
    size_t page = weft__page_size();
    struct weft__slab *slab = malloc(sizeof *slab);
    if (!slab)
        return -ENOMEM;
    slab->guarded = guarded;
    slab->stride = pool->size + (guarded ? page : 0);
    /* Unguarded: one pad page below the lowest stack holds its canary. */
    slab->bytes = slab->stride * SLAB_STACKS + (guarded ? 0 : page);
    slab->base = mmap(NULL, slab->bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (slab->base == MAP_FAILED) {
        free(slab);
        return -ENOMEM;
    }
    if (guarded) {
        int err = install_guards(slab);
        if (err != 0) {
            munmap(slab->base, slab->bytes);
            free(slab);
            return err == -ENOMEM || err == -EAGAIN ? -ENOMEM : -EINVAL;
        }
    }
    if (guarded)
        all_guarded_add(slab);
    slab->next = pool->slabs;
    pool->slabs = slab;
    for (size_t i = SLAB_STACKS; i-- > 0;) {
        weft__stack *s = describe(slab_region(slab, i), pool->size, guarded, 1);
        s->next = pool->slab_free;
        pool->slab_free = s;
    }
    return 0;
}

/* A guarded slab when the kernel can install guard pages: no mapping per stack,
 * so no vm.max_map_count budget, and no mmap, mprotect and munmap per stack. */
static int guarded_slab_refill(weft__stack_pool *pool)
{
    if (weft__stack_guard_install_off ||
        atomic_load_explicit(&guard_install, memory_order_relaxed) == GUARD_INSTALL_NO)
        return -EINVAL;
    int err = slab_refill(pool, 1);
    if (err == 0)
        atomic_store_explicit(&guard_install, GUARD_INSTALL_YES, memory_order_relaxed);
    else if (err == -EINVAL)
        atomic_store_explicit(&guard_install, GUARD_INSTALL_NO, memory_order_relaxed);
    return err;
}

static weft__stack *pop_slab_stack(weft__stack_pool *pool)
{
    weft__stack *s = pool->slab_free;
    pool->slab_free = s->next;
    return s;
}

int weft__stack_pool_init(weft__stack_pool *pool, size_t size, size_t max)
{
    memset(pool, 0, sizeof *pool);
    pool->size = round_up(size, weft__page_size());
    pool->max = max;
    pthread_once(&limit_once, read_map_limit);
    return 0;
}

weft__stack *weft__stack_get(weft__stack_pool *pool, size_t size)
{
    size = round_up(size, weft__page_size());
    if (size == pool->size) {
        if (pool->free) {
            weft__stack *s = pool->free;
            pool->free = s->next;
            pool->count--;
            return s;
        }
        if (pool->slab_free)
            return pop_slab_stack(pool);
        if (guarded_slab_refill(pool) == 0)
            return pop_slab_stack(pool);
    }
    if (atomic_load_explicit(&guarded_stacks, memory_order_relaxed) < guarded_limit) {
        weft__stack *s = map_guarded(size);
        if (s)
            return s;
        /* mprotect fails with ENOMEM when the map count runs out earlier than we
         * estimated (another part of the program maps a lot): fall through. */
    }
    if (size == pool->size) {
        if (slab_refill(pool, 0) != 0)
            return NULL;
        return pop_slab_stack(pool);
    }
    return map_unguarded(size);
}

/* Unmaps stack memory. Under AddressSanitizer, first clears the shadow its frames
 * left (a task's last frames never return, so their redzones stay poisoned): the
 * kernel may hand the same addresses to the next mmap, such as the loop's small
 * allocator's, and ASan would report that memory's first use as a stack underflow. */
static void unmap_stack_memory(void *p, size_t n)
{
#ifdef WEFT__ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
    munmap(p, n);
}

static void unmap(weft__stack *s)
{
    size_t page = weft__page_size();
    int guarded = s->guarded;
    size_t region = s->size + reserved_bytes(guarded);
    char *lo = s->lo;
    undescribe(s);
    /* Either kind has a page below lo: the guard, or the pad holding the canary. */
    unmap_stack_memory(lo - page, region + page);
    if (guarded)
        atomic_fetch_sub_explicit(&guarded_stacks, 1, memory_order_relaxed);
}

void weft__stack_put(weft__stack_pool *pool, weft__stack *s)
{
    if (s->from_slab) {
        s->next = pool->slab_free;
        pool->slab_free = s;
        return;
    }
    if (s->size + reserved_bytes(s->guarded) == pool->size && pool->count < pool->max) {
        s->next = pool->free;
        pool->free = s;
        pool->count++;
        return;
    }
    unmap(s);
}

void weft__stack_pool_destroy(weft__stack_pool *pool)
{
    while (pool->free) {
        weft__stack *s = pool->free;
        pool->free = s->next;
        unmap(s);
    }
    while (pool->slabs) {
        struct weft__slab *slab = pool->slabs;
        pool->slabs = slab->next;
#ifdef WEFT__VALGRIND
        for (size_t i = 0; i < SLAB_STACKS; i++)
            undescribe((weft__stack *)(slab_region(slab, i) + pool->size - reserved_bytes(slab->guarded)));
#endif
        if (slab->guarded)
            all_guarded_remove(slab);
        unmap_stack_memory(slab->base, slab->bytes);
        free(slab);
    }
    pool->slab_free = NULL;
    pool->count = 0;
}

/* For tools/weft-gdb.py's hooks around gdb's gcore, which reads the process
 * through /proc/PID/mem in 1 MiB pieces: a guard page there reads as EIO, and gdb 13
 * writes zeros from that piece to the mapping's end; a slab's lowest page is a guard,
 * so the whole slab would read as zeros in the core. lift != 0
 * removes the guard pages of every guarded slab (MADV_GUARD_REMOVE leaves the
 * stacks' own pages alone), lift == 0 installs them again. Called by the debugger
 * while the process is stopped, so the lock is only tried: a thread stopped while
 * holding it would hang the call. Returns the number of slabs, or -errno. */
int weft__stack_guards_lift(int lift);
int weft__stack_guards_lift(int lift)
{
    if (pthread_mutex_trylock(&all_guarded_lock) != 0)
        return -EBUSY;
    int n = 0, err = 0;
    for (struct weft__slab *slab = all_guarded; slab; slab = slab->all_next, n++) {
        int e = lift ? (madvise(slab->base, slab->bytes, MADV_GUARD_REMOVE) == 0 ? 0 : -errno)
                     : install_guards(slab);
        if (e != 0 && err == 0)
            err = e;
    }
    pthread_mutex_unlock(&all_guarded_lock);
    return err != 0 ? err : n;
}

/* ------------------------------------------------------------------------ */
/* Overflow reports                                                         */
/* ------------------------------------------------------------------------ */

/* Async-signal-safe message building: the report is written from a SIGSEGV
 * handler, where stdio must not be used. */
typedef struct {
    char buf[512];
    size_t len;
} msgbuf;

static void put_str(msgbuf *m, const char *s)
{
    while (*s && m->len < sizeof m->buf - 1)
        m->buf[m->len++] = *s++;
}

static void put_num(msgbuf *m, size_t n)
{
    char digits[24];
    int i = 0;
    do {
        digits[i++] = (char)('0' + n % 10);
        n /= 10;
    } while (n && i < 24);
    while (i > 0 && m->len < sizeof m->buf - 1)
        m->buf[m->len++] = digits[--i];
}

static void put_hex(msgbuf *m, uintptr_t v)
{
    char digits[2 * sizeof v];
    int i = 0;
    do {
        digits[i++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v && i < (int)sizeof digits);
    put_str(m, "0x");
    while (i > 0 && m->len < sizeof m->buf - 1)
        m->buf[m->len++] = digits[--i];
}

static void put_task_name(msgbuf *m, const weft_task *t)
{
    if (t->extra && t->extra->name) {
        put_str(m, t->extra->name);
    } else {
        put_str(m, "Task-");
        put_num(m, t->id);
    }
}

static WEFT__NORETURN void report_overflow(const weft__stack *s, const weft_task *t, const char *how)
{
    msgbuf m = {.len = 0};
    put_str(&m, "weft: stack overflow in task '");
    put_task_name(&m, t);
    put_str(&m, "': it used all of its ");
    put_num(&m, (s->size + desc_bytes()) / 1024);
    put_str(&m, " KiB stack (");
    put_str(&m, how);
    put_str(&m, "). Give it more with weft_spawn_options.stack_size, or every task more with "
                "weft_options.stack_size (default 256 KiB).\n");
    ssize_t w = write(STDERR_FILENO, m.buf, m.len);
    (void)w;
    abort();
}

void weft__stack_check_canary(const weft__stack *s, const weft_task *t)
{
    uint64_t v;
    memcpy(&v, s->lo - sizeof v, sizeof v);
    if (WEFT__UNLIKELY(v != WEFT__CANARY))
        report_overflow(s, t, "detected by the canary of an unguarded stack: more stacks were alive than "
                              "vm.max_map_count allows guard pages for, so neighbouring memory may be damaged");
}

/* The signals a crash in a task raises, and what handled them before weft. */
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
#define CRASH_SIGNALS (sizeof crash_signals / sizeof crash_signals[0])
static struct sigaction previous_handlers[CRASH_SIGNALS];
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV (an invalid memory access, such as a NULL pointer dereference)";
    case SIGBUS:
        return "SIGBUS (a bad memory access)";
    case SIGFPE:
        return "SIGFPE (an arithmetic error, such as an integer division by zero)";
    default:
        return "SIGILL (an illegal instruction)";
    }
}

/* A crash inside a task: says which task, in one write, before the signal goes
 * on to whatever handled it before (by default: the process dies of it). */
static void report_crash(int sig, const weft_task *t, const void *addr)
{
    msgbuf m = {.len = 0};
    put_str(&m, "weft: task '");
    put_task_name(&m, t);
    put_str(&m, "' crashed with ");
    put_str(&m, signal_name(sig));
    if (sig == SIGSEGV || sig == SIGBUS) {
        put_str(&m, " at address ");
        put_hex(&m, (uintptr_t)addr);
    }
    put_str(&m, "\n");
    ssize_t w = write(STDERR_FILENO, m.buf, m.len);
    (void)w;
}
/* Faults this far below a stack still count as its overflow: one large frame
 * (a big local array) can jump past the guard page. */
#define OVERFLOW_REACH ((size_t)64 * 1024)

static void on_crash(int sig, siginfo_t *info, void *uctx)
{
    weft_loop *L = weft__loop;
    weft_task *t = L ? L->current : NULL;
    if (t && t->stack && sig == SIGSEGV) {
        const weft__stack *s = t->stack;
        char *addr = info->si_addr;
        if (addr < s->lo && addr + OVERFLOW_REACH >= s->lo)
            report_overflow(s, t, s->guarded ? "it hit the guard page" : "it ran below its stack");
    }
    if (t)
        report_crash(sig, t, info->si_addr);
    /* Hand the signal to whoever handled it before, or let it kill. */
    size_t i = 0;
    while (i < CRASH_SIGNALS - 1 && crash_signals[i] != sig)
        i++;
    const struct sigaction *previous = &previous_handlers[i];
    if (previous->sa_flags & SA_SIGINFO) {
        if (previous->sa_sigaction) {
            previous->sa_sigaction(sig, info, uctx);
            return;
        }
    } else if (previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
        previous->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL); /* returning re-executes the fault, now fatal */
}

static void install_process_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < CRASH_SIGNALS; i++)
        sigaction(crash_signals[i], &sa, &previous_handlers[i]);
}

/* The handler needs a stack of its own: the faulting one is full. One per thread,
 * kept for the thread's life (a thread that ran one loop usually runs more). */
static WEFT__TLS void *altstack;

void weft__stack_overflow_handler_install(void)
{
    pthread_once(&handler_once, install_process_handler);
    if (altstack)
        return;
    stack_t old;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
        return; /* the program set its own */
    size_t size = 64 * 1024;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return;
    stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, size);
        return;
    }
    altstack = mem;
}
