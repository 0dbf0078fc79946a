//! x86_64 System V side of the switch contract (see `asm/switch_x86_64.S`).
//!
//! ```text
//!  high  +-----------------------+ <- stack top
//!        | start record          |    (closure, result handle; see greenlet.rs)
//!        +-----------------------+
//!        | link slot             |    slots + 8
//!        | saved-sp slot         | <- slots (16-byte aligned), rsp at entry
//!        +-----------------------+
//!        | rip = gevent_entry    |    popped and jumped to by gevent_switch
//!        | rbp = &link slot      |    CFI anchor for the unwinder
//!        | rbx = 0               | <- initial saved sp
//!  low   +-----------------------+
//! ```

use core::arch::asm;

extern "C" {
    fn gevent_switch();
    fn gevent_entry();
}

/// Bytes of the initial frame below the slots: rbx, rbp, rip.
pub(crate) const FRAME_BYTES: usize = 24;

/// Lays out the initial frame under `slots` and returns the stack pointer to
/// resume it with.
///
/// # Safety
/// `slots` must be 16-byte aligned with at least [`FRAME_BYTES`] writable
/// bytes below it and 16 above it, all on a stack that stays mapped.
pub(crate) unsafe fn init_frame(slots: *mut usize) -> usize {
    // SAFETY: the caller guarantees the three words below `slots` are ours.
    unsafe {
        let frame = slots.sub(3);
        frame.write(0); // rbx
        frame.add(1).write(slots.add(1) as usize); // rbp: the link slot
        frame.add(2).write(gevent_entry as *const () as usize); // rip
        frame as usize
    }
}

/// Saves the running context's stack pointer to `*from`, resumes the context
/// whose saved stack pointer is `to`, passing `data`; returns the data passed
/// by whoever switches back.
///
/// # Safety
/// As [`super::Context::switch_to`].
#[inline(always)]
pub(crate) unsafe fn switch(from: *mut usize, to: usize, data: usize) -> usize {
    let out: usize;
    // SAFETY: gevent_switch saves rbx/rbp and the resume address (label 2,
    // passed in rcx) on our stack; every other register is declared clobbered
    // here, so the compiler keeps nothing live in them across the switch.
    // The block is not `nostack`: the compiler keeps the red zone free for
    // the three words pushed. We `jmp` rather than `call` (see the .S file).
    unsafe {
        asm!(
            "lea rcx, [rip + 2f]",
            "jmp {switch}",
            "2:",
            switch = sym gevent_switch,
            out("rcx") _,
            inout("rdi") from => _,
            inout("rsi") to => _,
            inout("rdx") data => out,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            clobber_abi("C"),
        );
    }
    out
}
