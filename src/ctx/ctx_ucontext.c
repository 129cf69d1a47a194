/*
 * ctx_ucontext.c — weft__ctx_make and weft__ctx_switch on getcontext/makecontext/
 * swapcontext, for machines without an assembly backend (see ctx.h). Several times
 * slower than the assembly: glibc's swapcontext saves and restores the signal mask
 * with a system call on every switch.
 */
#include "ctx.h"

#include <stdint.h>
#include <stdlib.h>

/*
 * makecontext passes only int arguments, so entry and arg travel as 32-bit halves.
 * Going through uint64_t keeps the shifts defined where pointers are 32 bits wide.
 */
static uint64_t join_halves(unsigned hi, unsigned lo)
{
    return ((uint64_t)hi << 32) | lo;
}

static void ctx_trampoline(unsigned entry_hi, unsigned entry_lo, unsigned arg_hi, unsigned arg_lo)
{
    weft__ctx_entry entry = (weft__ctx_entry)(uintptr_t)join_halves(entry_hi, entry_lo);
    void *arg = (void *)(uintptr_t)join_halves(arg_hi, arg_lo);
    entry(arg);
    /* uc_link is NULL, so returning would end the thread; entry must switch away. */
    abort();
}

void weft__ctx_make(weft__ctx *ctx, void *stack_lo, size_t size, weft__ctx_entry entry, void *arg)
{
    /* getcontext also captures this thread's FP environment, which the new
     * context thereby inherits. It cannot fail on Linux. */
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = stack_lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    uint64_t entry_bits = (uintptr_t)entry;
    uint64_t arg_bits = (uintptr_t)arg;
    makecontext(&ctx->uc, (void (*)(void))ctx_trampoline, 4, (unsigned)(entry_bits >> 32),
                (unsigned)entry_bits, (unsigned)(arg_bits >> 32), (unsigned)arg_bits);
}

void weft__ctx_switch(weft__ctx *from, weft__ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}
