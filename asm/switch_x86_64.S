// gevent's context switch for x86_64 (System V ABI).
//
// Two symbols, one contract (src/arch/x86_64.rs is the only caller):
//
// gevent_switch(rdi = *mut usize where our stack pointer is saved,
//               rsi = the stack pointer of the context to resume,
//               rdx = one word passed across, untouched,
//               rcx = our resume address)
//   Entered with `jmp`, not `call`, from an inline asm! block that declares
//   every other register clobbered, so the compiler spills only what is live.
//   By hand we save only what LLVM will not let asm! clobber: rbx and rbp,
//   plus the resume address. A suspended context's stack therefore looks
//   like this (its saved stack pointer points at the lowest word):
//
//       | ...caller's frame... |
//       +----------------------+
//       | resume address (rip) |                             saved_sp + 16
//       | saved rbp            |                             saved_sp + 8
//       | saved rbx            |  <- saved_sp                saved_sp + 0
//       +----------------------+
//
//   No `call` and no `ret`: a `call` here would push a return-stack-buffer
//   entry that is never popped (we leave on another stack), so every `ret`
//   after the switch would mispredict; we leave with `pop rcx; jmp rcx`,
//   which the indirect-branch predictor learns.
//
//   MXCSR and the x87 control word are NOT saved: like corosensei (and unlike
//   Boost.Context), they are thread-wide settings here; a greenlet that changes
//   the rounding mode changes it for the thread.
//
// gevent_entry: where the first switch into a fresh stack lands (the Rust side
//   lays out an initial frame [rbx = 0][rbp = &link slot][rip = gevent_entry]).
//   On entry:
//     rsp = stack top - 16, 16-byte aligned; [rsp] is the greenlet's own
//           saved-sp slot, [rsp + 8] its link slot
//     rbp = address of the link slot (popped from the initial frame)
//     rdx = the word the resumer passed (pointer to the start record)
//   The link slot always holds the address of the *resumer's* saved-sp slot
//   (the Rust side stores it before each switch into this stack). The CFI
//   below tells unwinders that this frame's caller is the resumer, suspended
//   inside gevent_switch: CFA = *(*rbp) + 24, so gdb `bt`, perf and
//   std::backtrace walk from a greenlet's stack into whoever resumed it.

    .text
    .globl  gevent_switch
    .hidden gevent_switch
    .type   gevent_switch, @function
    .p2align 4
gevent_switch:
    .cfi_startproc
    // Nothing was pushed: the CFA is rsp and the return address is in rcx.
    .cfi_def_cfa %rsp, 0
    .cfi_register %rip, %rcx
    push    %rcx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rip, 0
    push    %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    push    %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbx, 0
    // Publish our stack pointer; from here on we are suspended.
    mov     %rsp, (%rdi)
    // rsp -> the other context's [rbx][rbp][rip].
    mov     %rsi, %rsp
    .cfi_undefined %rip
    pop     %rbx
    pop     %rbp
    pop     %rcx
    jmp     *%rcx
    .cfi_endproc
    .size   gevent_switch, .-gevent_switch

    .globl  gevent_entry
    .hidden gevent_entry
    .type   gevent_entry, @function
    .p2align 4
gevent_entry:
    .cfi_startproc
    // Marked as a signal frame: the resumer's stack may lie below or above
    // ours, and gdb refuses a caller frame "inner" to its callee unless the
    // callee is a signal frame. It also makes unwinders use the resume address
    // as it is (not minus one), which is right: it follows a `call`.
    .cfi_signal_frame
    // DW_CFA_def_cfa_expression, 6 bytes:
    //   DW_OP_breg6 (rbp) 0     -> address of the link slot
    //   DW_OP_deref             -> address of the resumer's saved-sp slot
    //   DW_OP_deref             -> the resumer's saved sp
    //   DW_OP_plus_uconst 24    -> skip [rbx][rbp][rip]: the resumer's CFA
    .cfi_escape 0x0f, 6, 0x76, 0x00, 0x06, 0x06, 0x23, 24
    .cfi_offset %rip, -8
    .cfi_offset %rbp, -16
    .cfi_offset %rbx, -24
    // First argument: the start record pointer the resumer passed in rdx.
    mov     %rdx, %rdi
    // A call without `call`: push the return address by hand and jump, so
    // the return-stack buffer gets no entry that is never popped (the callee
    // never returns; greenlets leave by switching). rsp was 16-byte aligned,
    // so the callee sees it as after a normal call.
    lea     gevent_entry_return(%rip), %rax
    push    %rax
    jmp     gevent_greenlet_main@PLT
gevent_entry_return:
    // Never reached; keeps the return address inside this function's unwind
    // range.
    ud2
    .cfi_endproc
    .size   gevent_entry, .-gevent_entry

    .section .note.GNU-stack,"",@progbits
