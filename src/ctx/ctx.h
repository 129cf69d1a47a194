/*
 * ctx.h — the machine context switch: the one interface between the scheduler and
 * the per-architecture code that saves and restores a task's registers.
 *
 * Backends (chosen at configure time, see cmake/ctx.cmake):
 *   ctx_x86_64.S   x86-64 System V: rbx rbp r12–r15, rsp, MXCSR control bits, x87 CW
 *   ctx_aarch64.S  AArch64 AAPCS64: x19–x30, sp, d8–d15, FPCR
 *   ctx_ucontext.c portable fallback on getcontext/makecontext/swapcontext
 *                  (slow: glibc's swapcontext makes a signal-mask system call)
 * WEFT_CTX_UCONTEXT is defined when the fallback is in use.
 */
#ifndef WEFT_CTX_H
#define WEFT_CTX_H

#include <stddef.h>

#ifdef WEFT_CTX_UCONTEXT
#include <ucontext.h>
typedef struct weft__ctx {
    ucontext_t uc;
} weft__ctx;
#else
/* The whole saved state lives on the suspended stack; only its top is kept here. */
typedef struct weft__ctx {
    void *sp;
} weft__ctx;
#endif

/* An entry function: called on the new stack, must never return (switch away
 * for the last time instead). */
typedef void (*weft__ctx_entry)(void *arg);

/*
 * weft__ctx_make — prepare `ctx` so that the first weft__ctx_switch to it calls
 * entry(arg) on the stack [stack_lo, stack_lo + size) with a 16-byte-aligned stack
 * and the FP control state of the thread that called weft__ctx_make. Debuggers and
 * unwinders see entry's frame as the outermost frame of that stack.
 */
void weft__ctx_make(weft__ctx *ctx, void *stack_lo, size_t size, weft__ctx_entry entry, void *arg);

/*
 * weft__ctx_switch — save the current registers into `from` and resume `to`.
 * Returns when some other context switches back to `from`.
 */
void weft__ctx_switch(weft__ctx *from, weft__ctx *to);

#endif
