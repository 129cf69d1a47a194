/*
 * ctx_aarch64.S — weft__ctx_make and weft__ctx_switch for AArch64 AAPCS64 (see ctx.h).
 *
 * A suspended context is nothing but the top of its own stack, which holds, from
 * the saved sp upwards (the layout weft__ctx_make forges for a new context):
 *
 *     0  x19 x20    16  x21 x22    32  x23 x24    48  x25 x26    64  x27 x28
 *    80  x29 x30    96  d8  d9    112  d10 d11   128  d12 d13   144  d14 d15
 *   160  FPCR      168  unused                                   (176 bytes)
 *
 * Only the callee-saved state is kept: the caller of weft__ctx_switch has already
 * given up every other register, exactly as for an ordinary call. FPCR (rounding
 * mode, flush-to-zero) is per context; FPSR (the sticky flags) is not.
 *
 * No BTI/PAC marking: the switch is entered only by direct calls, and it returns
 * through the saved x30 of the other context untouched, so pac-ret callers still
 * authenticate against their own, unchanged sp.
 */

/* Comments are C-style: this file goes through the C preprocessor. */

    .text

/* void weft__ctx_switch(weft__ctx *from, weft__ctx *to)   x0 = from, x1 = to */
    .globl  weft__ctx_switch
    .hidden weft__ctx_switch
    .type   weft__ctx_switch, %function
    .p2align 4
weft__ctx_switch:
    .cfi_startproc
    sub     sp, sp, #176
    .cfi_def_cfa_offset 176
    stp     x19, x20, [sp, #0]
    .cfi_offset x19, -176
    .cfi_offset x20, -168
    stp     x21, x22, [sp, #16]
    .cfi_offset x21, -160
    .cfi_offset x22, -152
    stp     x23, x24, [sp, #32]
    .cfi_offset x23, -144
    .cfi_offset x24, -136
    stp     x25, x26, [sp, #48]
    .cfi_offset x25, -128
    .cfi_offset x26, -120
    stp     x27, x28, [sp, #64]
    .cfi_offset x27, -112
    .cfi_offset x28, -104
    stp     x29, x30, [sp, #80]
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    stp     d8, d9, [sp, #96]
    .cfi_offset d8, -80
    .cfi_offset d9, -72
    stp     d10, d11, [sp, #112]
    .cfi_offset d10, -64
    .cfi_offset d11, -56
    stp     d12, d13, [sp, #128]
    .cfi_offset d12, -48
    .cfi_offset d13, -40
    stp     d14, d15, [sp, #144]
    .cfi_offset d14, -32
    .cfi_offset d15, -24
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x10, sp
    str     x10, [x0]
    ldr     x10, [x1]
    mov     sp, x10
    /* From here the frame is the other context's, laid out identically, so the
     * CFI above still describes it. */
    ldr     x10, [sp, #160]
    /* Writing FPCR can stall the pipeline, and contexts nearly always share one
     * value: write it only when it differs. */
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x10
1:
    ldp     x19, x20, [sp, #0]
    .cfi_restore x19
    .cfi_restore x20
    ldp     x21, x22, [sp, #16]
    .cfi_restore x21
    .cfi_restore x22
    ldp     x23, x24, [sp, #32]
    .cfi_restore x23
    .cfi_restore x24
    ldp     x25, x26, [sp, #48]
    .cfi_restore x25
    .cfi_restore x26
    ldp     x27, x28, [sp, #64]
    .cfi_restore x27
    .cfi_restore x28
    ldp     x29, x30, [sp, #80]
    .cfi_restore x29
    .cfi_restore x30
    ldp     d8, d9, [sp, #96]
    .cfi_restore d8
    .cfi_restore d9
    ldp     d10, d11, [sp, #112]
    .cfi_restore d10
    .cfi_restore d11
    ldp     d12, d13, [sp, #128]
    .cfi_restore d12
    .cfi_restore d13
    ldp     d14, d15, [sp, #144]
    .cfi_restore d14
    .cfi_restore d15
    add     sp, sp, #176
    .cfi_def_cfa_offset 0
    ret
    .cfi_endproc
    .size   weft__ctx_switch, .-weft__ctx_switch

/*
 * void weft__ctx_make(weft__ctx *ctx, void *stack_lo, size_t size,
 *                     weft__ctx_entry entry, void *arg)
 *   x0 = ctx, x1 = stack_lo, x2 = size, x3 = entry, x4 = arg
 *
 * Forges a switch frame at the 16-aligned top of the stack whose x30 is the
 * trampoline, with entry in x19 and arg in x20, x29 = 0 (so frame-pointer chains
 * end at entry) and the creator's FPCR.
 */
    .globl  weft__ctx_make
    .hidden weft__ctx_make
    .type   weft__ctx_make, %function
    .p2align 4
weft__ctx_make:
    .cfi_startproc
    add     x9, x1, x2
    and     x9, x9, #~15
    sub     x9, x9, #176
    stp     x3, x4, [x9, #0]
    stp     xzr, xzr, [x9, #16]
    stp     xzr, xzr, [x9, #32]
    stp     xzr, xzr, [x9, #48]
    stp     xzr, xzr, [x9, #64]
    adr     x10, .Ltrampoline_entry
    stp     xzr, x10, [x9, #80]
    stp     xzr, xzr, [x9, #96]
    stp     xzr, xzr, [x9, #112]
    stp     xzr, xzr, [x9, #128]
    stp     xzr, xzr, [x9, #144]
    mrs     x10, fpcr
    stp     x10, xzr, [x9, #160]
    str     x9, [x0]
    ret
    .cfi_endproc
    .size   weft__ctx_make, .-weft__ctx_make

/*
 * The first code a new context runs: calls entry(arg), and aborts if entry ever
 * returns, since nothing lies above it to return to. x30 is undefined here, which
 * tells unwinders and gdb that this is the outermost frame of the stack.
 */
    .type   weft__ctx_trampoline, %function
    .p2align 4
weft__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    /* Unwinders look up a return address minus one: this nop keeps that lookup
     * inside this function while the first switch is about to return here. */
    nop
.Ltrampoline_entry:
    mov     x0, x20
    blr     x19
    bl      abort
    brk     #0
    .cfi_endproc
    .size   weft__ctx_trampoline, .-weft__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
