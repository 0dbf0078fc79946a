// gevent's context switch for AArch64 (AAPCS64). Same contract as
// switch_x86_64.S; src/arch/aarch64.rs is the only caller.
//
// gevent_switch(x0 = *mut usize where our stack pointer is saved,
//               x1 = the stack pointer of the context to resume,
//               x2 = one word passed across, untouched,
//               x30 = our resume address)
//   Entered with a plain `b` (after `adr x30, resume`), not `bl`, so the
//   return-address predictor is not pushed an entry that is never popped,
//   from an inline asm! block that declares x0-x18, x20-x28,
//   x30 and v0-v31 clobbered (so the compiler spills the live callee-saved
//   x20-x28 and d8-d15 itself). By hand we save what LLVM will not let asm!
//   clobber: x19 and the frame pointer x29, plus the link register x30 (the
//   resume address). A suspended context's stack:
//
//       | ...caller's frame... |
//       +----------------------+
//       | padding              |  saved_sp + 24
//       | saved x19            |  saved_sp + 16
//       | saved x30 (resume)   |  saved_sp + 8
//       | saved x29 (fp)       |  <- saved_sp + 0
//       +----------------------+
//
//   We leave with `br x30`, not `ret`: the return predictor would expect the
//   caller on the other stack and miss on every switch.
//
//   FPCR is NOT saved: like corosensei, it is a thread-wide setting here.
//
// gevent_entry: where the first switch into a fresh stack lands (the Rust side
//   lays out [x29 = &link slot][x30 = gevent_entry][x19 = 0][pad]). On entry:
//     sp  = stack top - 16, 16-byte aligned; [sp] is the greenlet's own
//           saved-sp slot, [sp + 8] its link slot
//     x29 = address of the link slot
//     x2  = the word the resumer passed (pointer to the start record)
//   The link slot holds the address of the resumer's saved-sp slot, so the CFI
//   below gives CFA = *(*x29) + 32 and unwinders continue into the resumer.

    .text
    .globl  gevent_switch
    .hidden gevent_switch
    .type   gevent_switch, %function
    .p2align 4
gevent_switch:
    .cfi_startproc
    // Save the frame record and x19 below the caller's sp.
    stp     x29, x30, [sp, #-32]!
    .cfi_def_cfa_offset 32
    .cfi_offset x29, -32
    .cfi_offset x30, -24
    str     x19, [sp, #16]
    .cfi_offset x19, -16
    // Publish our stack pointer; from here on we are suspended.
    mov     x9, sp
    str     x9, [x0]
    // sp -> the other context's [x29][x30][x19][pad].
    mov     sp, x1
    .cfi_undefined x30
    ldp     x29, x30, [sp]
    ldr     x19, [sp, #16]
    add     sp, sp, #32
    br      x30
    .cfi_endproc
    .size   gevent_switch, .-gevent_switch

    .globl  gevent_entry
    .hidden gevent_entry
    .type   gevent_entry, %function
    .p2align 4
gevent_entry:
    .cfi_startproc
    // Signal frame: see switch_x86_64.S (gdb's inner-frame check, exact pc).
    .cfi_signal_frame
    // DW_CFA_def_cfa_expression, 7 bytes:
    //   DW_OP_breg29 (x29) 0    -> address of the link slot
    //   DW_OP_deref             -> address of the resumer's saved-sp slot
    //   DW_OP_deref             -> the resumer's saved sp
    //   DW_OP_plus_uconst 32    -> skip [x29][x30][x19][pad]
    .cfi_escape 0x0f, 6, 0x8d, 0x00, 0x06, 0x06, 0x23, 32
    .cfi_offset x29, -32
    .cfi_offset x30, -24
    .cfi_offset x19, -16
    // First argument: the start record pointer the resumer passed in x2.
    mov     x0, x2
    // A call without `bl`: set the link register by hand and branch, so the
    // return predictor gets no entry that is never popped (the callee never
    // returns; greenlets leave by switching).
    adr     x30, 1f
    b       gevent_greenlet_main
1:
    // Never reached; keeps the return address inside the unwind range.
    brk     #1
    .cfi_endproc
    .size   gevent_entry, .-gevent_entry

    .section .note.GNU-stack,"",%progbits
