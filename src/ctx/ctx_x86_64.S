/*
 * ctx_x86_64.S — weft__ctx_make and weft__ctx_switch for x86-64 System V (see ctx.h).
 *
 * A suspended context is nothing but the top of its own stack, which holds, from
 * the saved sp upwards (the layout weft__ctx_make forges for a new context):
 *
 *    0  MXCSR                      4  x87 control word (2 bytes, 2 unused)
 *    8  r15   16 r14   24 r13   32 r12   40 rbx   48 rbp
 *   56  return address
 *
 * Only the callee-saved state is kept: the caller of weft__ctx_switch has already
 * given up every other register, exactly as for an ordinary call. The FP control
 * words are callee-saved too (rounding mode, flush-to-zero), so each context keeps
 * its own. MXCSR is kept whole, so its sticky exception flags travel with the
 * context as well (a new context starts with them clear); the x87 status word and
 * the x87/SSE data registers are caller-saved and are not kept.
 *
 * Not marked for CET: a hardware shadow stack cannot follow a stack switch, so a
 * binary using weft must not ask for one.
 */

/* Comments are C-style: this file goes through the C preprocessor. */

    .text

/* void weft__ctx_switch(weft__ctx *from, weft__ctx *to)   rdi = from, rsi = to */
    .globl  weft__ctx_switch
    .hidden weft__ctx_switch
    .type   weft__ctx_switch, @function
    .p2align 4
weft__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r15, 0
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    (%rsi), %rsp
    /* From here the frame is the other context's, laid out identically, so the
     * CFI above still describes it. Loading the control words unconditionally
     * measured faster than comparing first to skip equal ones (reading back what
     * stmxcsr just stored waits on store forwarding); together they cost ~1 ns. */
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbp
    /* A plain ret, not pop + jmp: tasks suspend through the same scheduler call
     * site, so the return-stack predictor's guess is usually right, and a jump
     * would leave that stack one entry off and make every later ret mispredict
     * (a scheduler yield measured 10.5 ns with ret, 21-24 ns with jmp). */
    ret
    .cfi_endproc
    .size   weft__ctx_switch, .-weft__ctx_switch

/*
 * void weft__ctx_make(weft__ctx *ctx, void *stack_lo, size_t size,
 *                     weft__ctx_entry entry, void *arg)
 *   rdi = ctx, rsi = stack_lo, rdx = size, rcx = entry, r8 = arg
 *
 * Forges a switch frame whose return address is the trampoline, with entry in r12
 * and arg in r13. Above it, 16 zero bytes: the trampoline starts with rsp 16-aligned
 * (so its call leaves entry with rsp + 8 aligned, as the ABI requires) and a walker
 * that ignores the CFI still finds a null return address there.
 */
    .globl  weft__ctx_make
    .hidden weft__ctx_make
    .type   weft__ctx_make, @function
    .p2align 4
weft__ctx_make:
    .cfi_startproc
    leaq    (%rsi,%rdx), %rax
    andq    $-16, %rax
    subq    $80, %rax
    /* The new context inherits the creator's FP modes but none of its sticky
     * exception flags (MXCSR bits 0-5). */
    stmxcsr (%rax)
    andl    $0xffc0, (%rax)
    fnstcw  4(%rax)
    movw    $0, 6(%rax)
    xorl    %edx, %edx
    movq    %rdx, 8(%rax)           /* r15 */
    movq    %rdx, 16(%rax)          /* r14 */
    movq    %r8, 24(%rax)           /* r13 = arg */
    movq    %rcx, 32(%rax)          /* r12 = entry */
    movq    %rdx, 40(%rax)          /* rbx */
    movq    %rdx, 48(%rax)          /* rbp = 0 ends frame-pointer chains */
    leaq    .Ltrampoline_entry(%rip), %rcx
    movq    %rcx, 56(%rax)
    movq    %rdx, 64(%rax)
    movq    %rdx, 72(%rax)
    movq    %rax, (%rdi)
    ret
    .cfi_endproc
    .size   weft__ctx_make, .-weft__ctx_make

/*
 * The first code a new context runs: calls entry(arg), and aborts if entry ever
 * returns, since nothing lies above it to return to. rip is undefined here, which
 * tells unwinders and gdb that this is the outermost frame of the stack.
 */
    .type   weft__ctx_trampoline, @function
    .p2align 4
weft__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined %rip
    /* Unwinders look up a return address minus one: this nop keeps that lookup
     * inside this function while the first switch is about to return here. */
    nop
.Ltrampoline_entry:
    movq    %r13, %rdi
    callq   *%r12
    callq   abort@PLT
    ud2
    .cfi_endproc
    .size   weft__ctx_trampoline, .-weft__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
