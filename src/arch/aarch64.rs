//! AArch64 (AAPCS64) side of the switch contract (see `asm/switch_aarch64.S`).
//!
//! ```text
//!  high  +-----------------------+ <- stack top
//!        | start record          |
//!        +-----------------------+
//!        | link slot             |    slots + 8
//!        | saved-sp slot         | <- slots (16-byte aligned), sp at entry
//!        +-----------------------+
//!        | padding               |
//!        | x19 = 0               |
//!        | x30 = gevent_entry    |    loaded and branched to by gevent_switch
//!        | x29 = &link slot      | <- initial saved sp; CFI anchor
//!  low   +-----------------------+
//! ```

use core::arch::asm;

extern "C" {
    fn gevent_switch();
    fn gevent_entry();
}

/// Bytes of the initial frame below the slots: x29, x30, x19, padding.
pub(crate) const FRAME_BYTES: usize = 32;

/// Lays out the initial frame under `slots` and returns the stack pointer to
/// resume it with.
///
/// # Safety
/// `slots` must be 16-byte aligned with at least [`FRAME_BYTES`] writable
/// bytes below it and 16 above it, all on a stack that stays mapped.
pub(crate) unsafe fn init_frame(slots: *mut usize) -> usize {
    // SAFETY: the caller guarantees the four words below `slots` are ours.
    unsafe {
        let frame = slots.sub(4);
        frame.write(slots.add(1) as usize); // x29: the link slot
        frame.add(1).write(gevent_entry as *const () as usize); // x30
        frame.add(2).write(0); // x19
        frame.add(3).write(0); // padding
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
    // SAFETY: gevent_switch saves x19, x29 and x30 on our stack; every other
    // register (x20-x28 and all of v0-v31, so d8-d15 too) is declared
    // clobbered, so the compiler keeps nothing live in them across the call.
    unsafe {
        asm!(
            "adr x30, 2f",
            "b {switch}",
            "2:",
            switch = sym gevent_switch,
            out("x30") _,
            inout("x0") from => _,
            inout("x1") to => _,
            inout("x2") data => out,
            out("x20") _, out("x21") _, out("x22") _, out("x23") _, out("x24") _,
            out("x25") _, out("x26") _, out("x27") _, out("x28") _,
            clobber_abi("C"),
        );
    }
    out
}
