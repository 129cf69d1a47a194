/*
 * compact.c — compact tasks: many tasks share one stack, and a suspended one keeps
 * only the bytes its frames use, copied to the heap (see core/core.h for the rule
 * that comes with it). The loop's scheduler calls in here, on the thread's own
 * stack, whenever a compact task is about to run.
 */
#include "core/core.h"

#ifndef WEFT_CTX_UCONTEXT

#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
/* Memcheck marks stack below a returning frame inaccessible; frames brought back
 * to those addresses are writable again. */
#define MAKE_WRITABLE(p, n) VALGRIND_MAKE_MEM_UNDEFINED(p, n)
#endif
#endif
#ifndef MAKE_WRITABLE
#define MAKE_WRITABLE(p, n) ((void)(p), (void)(n))
#endif

#ifdef WEFT__ASAN
#include <sanitizer/asan_interface.h>
/* Frames move between tasks at the same addresses, so the shadow memory a frame
 * left behind belongs to another task's frames: clear it before each copy. */
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Saved-frame buffers grow in steps of this many bytes, so a task whose depth
 * varies a little does not reallocate at every switch, while a typical sleeping
 * task (~200 bytes of frames) wastes little. */
#define SAVE_GRANULE 32

/* A compact task's descriptor and its saved frames are one allocation: the
 * frames follow the descriptor. */
static char *frames_of(weft__stack *d)
{
    return (char *)(d + 1);
}

static char *stack_top(const weft__stack *s)
{
    return s->lo + s->size;
}

/* Copies the owner's frames off the shared stack. */
static int evict(weft_loop *L)
{
    weft_task *o = L->shared_owner;
    if (!o)
        return 0;
    L->shared_owner = NULL;
    if (!o->stack || WEFT__STATE(o) == WEFT__DONE)
        return 0;
    weft__stack *d = o->stack;
    char *sp = d->ctx.sp;
    size_t used = (size_t)(stack_top(d) - sp);
    if (used > d->saved_cap) {
        size_t cap = (used + SAVE_GRANULE - 1) / SAVE_GRANULE * SAVE_GRANULE;
        weft__stack *bigger = weft__small_alloc(&L->small, sizeof *d + cap);
        if (!bigger) {
            L->shared_owner = o; /* still in place: nothing lost */
            return -ENOMEM;
        }
        memcpy(bigger, d, sizeof *d);
        weft__small_free(&L->small, d, sizeof *d + d->saved_cap);
        d = o->stack = bigger;
        d->saved_cap = (uint32_t)cap;
    }
    UNPOISON(sp, used);
    memcpy(frames_of(d), sp, used);
    d->saved_len = (uint32_t)used;
    L->compact_hint = d->saved_cap;
    return 0;
}

static int ensure_shared_stack(weft_loop *L)
{
    if (!L->shared_stack)
        L->shared_stack = weft__stack_get(&L->stacks, L->stacks.size);
    return L->shared_stack ? 0 : -ENOMEM;
}

int weft__compact_enter(weft_loop *L, weft_task *t, weft__ctx_entry entry)
{
    if (L->shared_owner == t)
        return 0;
    if (WEFT__STATE(t) == WEFT__NEW) {
        if (ensure_shared_stack(L) != 0)
            return -ENOMEM;
        /* Sized for as many frames as the last task saved: tasks spawned together
         * usually suspend at the same depth, and growing later would leave a
         * hole in the heap per task. */
        weft__stack *d = weft__small_alloc(&L->small, sizeof *d + L->compact_hint);
        if (!d)
            return -ENOMEM;
        memset(d, 0, sizeof *d);
        d->saved_cap = (uint32_t)L->compact_hint;
        if (evict(L) != 0) {
            weft__small_free(&L->small, d, sizeof *d + d->saved_cap);
            return -ENOMEM;
        }
        const weft__stack *shared = L->shared_stack;
        d->lo = shared->lo;
        d->size = shared->size;
        d->guarded = shared->guarded;
        d->compact = 1;
        t->stack = d;
        weft__ctx_make(&d->ctx, d->lo, d->size, entry, t);
        L->shared_owner = t;
        return 0;
    }
    /* Resuming: another task's frames are in the way. */
    if (evict(L) != 0)
        return -ENOMEM;
    weft__stack *d = t->stack;
    char *sp = d->ctx.sp;
    UNPOISON(sp, d->saved_len);
    MAKE_WRITABLE(sp, d->saved_len);
    memcpy(sp, frames_of(d), d->saved_len);
    L->shared_owner = t;
    return 0;
}

void weft__compact_release(weft_loop *L, weft_task *t)
{
    if (L->shared_owner == t)
        L->shared_owner = NULL;
    weft__small_free(&L->small, t->stack, sizeof *t->stack + t->stack->saved_cap);
    t->stack = NULL;
}

void weft__compact_destroy(weft_loop *L)
{
    if (L->shared_stack)
        weft__stack_put(&L->stacks, L->shared_stack);
    L->shared_stack = NULL;
    L->shared_owner = NULL;
}

#else /* WEFT_CTX_UCONTEXT: weft_spawn runs compact tasks as ordinary ones */

int weft__compact_enter(weft_loop *L, weft_task *t, weft__ctx_entry entry)
{
    (void)L, (void)t, (void)entry;
    return -ENOTSUP;
}

void weft__compact_release(weft_loop *L, weft_task *t)
{
    (void)L, (void)t;
}

void weft__compact_destroy(weft_loop *L)
{
    (void)L;
}
#endif
