//! The one place that knows how a context switch works: the contract of the
//! `asm/switch_$ARCH.S` routines and the initial frame of a fresh stack.
//!
//! A *context* is a stack plus two words at a fixed place on it: its saved-sp
//! slot (where `switch` stores the stack pointer when it suspends) and its
//! link slot (the address of the resumer's saved-sp slot, read by unwinders
//! through the CFI of `gevent_entry`). Everything else is the caller's job.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
use aarch64 as imp;

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
use x86_64 as imp;

pub(crate) use imp::{init_frame, switch, FRAME_BYTES};

#[cfg(test)]
mod tests;

/// The two words every context keeps: `[sp_slot][link_slot]`, 16 bytes,
/// 16-byte aligned, stored right above the initial frame of a fresh stack.
pub(crate) const SLOT_BYTES: usize = 16;

const _: () = assert!(SLOT_BYTES % 16 == 0);
// The initial frame is whole words and leaves the slots 16-byte aligned.
const _: () = assert!(FRAME_BYTES % 8 == 0 && FRAME_BYTES <= 32);

/// A zeroed frame whose resume address is 0: an unwinder that reaches it
/// stops. Link slots that must end the chain point at [`TERMINATOR_SLOT`].
static TERMINATOR_FRAME: [usize; 4] = [0; 4];

/// A saved-sp slot whose saved stack pointer is the terminator frame.
static TERMINATOR_SLOT: &[usize; 4] = &TERMINATOR_FRAME;

/// The value to store in a link slot so that unwinding stops there.
pub(crate) fn terminator() -> usize {
    &TERMINATOR_SLOT as *const &[usize; 4] as usize
}

/// Where a context keeps its saved stack pointer and its unwind link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    /// Address of the word holding the saved stack pointer while suspended.
    pub sp_slot: *mut usize,
    /// Address of the word holding the resumer's `sp_slot` (for unwinders).
    pub link_slot: *mut usize,
}

impl Context {
    /// A context whose two words live at `slots` (16 bytes, 16-aligned).
    pub(crate) fn at(slots: *mut usize) -> Context {
        Context { sp_slot: slots, link_slot: slots.wrapping_add(1) }
    }

    /// Suspends the running context into `self` and resumes `to`, passing
    /// `data` across; returns the word passed by whoever resumes `self`.
    ///
    /// # Safety
    /// `self` must be the context that is running now, and `to` a suspended
    /// context (a fresh one from [`init_frame`] or one that called `switch`)
    /// whose stack stays mapped. No borrow of shared state may be held across
    /// the call: other contexts run before it returns.
    #[inline(always)]
    pub(crate) unsafe fn switch_to(self, to: Context, data: usize) -> usize {
        // SAFETY: both contexts' slots are live words (the caller's contract).
        // The target's link names us, so unwinders walk from it into our
        // frames; our own link is cut, so they stop after our frames instead
        // of following a chain that may have gone stale.
        unsafe {
            *to.link_slot = self.sp_slot as usize;
            *self.link_slot = terminator();
            switch(self.sp_slot, *to.sp_slot, data)
        }
    }

    /// As [`switch_to`](Self::switch_to) from a context that is dying (its
    /// stack goes back to the pool): the target's link is cut rather than
    /// pointed at our slots, which another context may soon overwrite.
    ///
    /// # Safety
    /// As [`switch_to`](Self::switch_to); `self` is never resumed again.
    #[inline(always)]
    pub(crate) unsafe fn leave_to(self, to: Context, data: usize) -> usize {
        // SAFETY: as `switch_to` (the caller's contract); our slots are still
        // mapped (a pooled stack stays mapped) and nothing reuses them before
        // the switch, which is the last thing to write them.
        unsafe {
            *to.link_slot = terminator();
            switch(self.sp_slot, *to.sp_slot, data)
        }
    }

    /// As [`switch_to`](Self::switch_to) for a strictly nested resume (a raw
    /// coroutine): only the target's link is written. Every context on such a
    /// chain is suspended inside the resume of the one before, so the chain
    /// never goes stale and needs no cut.
    ///
    /// # Safety
    /// As [`switch_to`](Self::switch_to), and `self` stays suspended until
    /// `to` suspends back to it with [`suspend_to`](Self::suspend_to).
    #[inline(always)]
    pub(crate) unsafe fn resume_nested(self, to: Context, data: usize) -> usize {
        // SAFETY: as `switch_to` (the caller's contract).
        unsafe {
            *to.link_slot = self.sp_slot as usize;
            switch(self.sp_slot, *to.sp_slot, data)
        }
    }

    /// Suspends back to the context that resumed `self` with
    /// [`resume_nested`](Self::resume_nested): no link to write (nobody walks
    /// a suspended coroutine's stack).
    ///
    /// # Safety
    /// As [`switch_to`](Self::switch_to), and `to` resumed `self`.
    #[inline(always)]
    pub(crate) unsafe fn suspend_to(self, to: Context, data: usize) -> usize {
        // SAFETY: as `switch_to` (the caller's contract).
        unsafe { switch(self.sp_slot, *to.sp_slot, data) }
    }
}

/// Asks the CPU to start fetching the cache line at `p` (the slots of the
/// context that runs next): with thousands of greenlets their contexts are
/// cold, and a switch would otherwise stall on that line.
#[inline(always)]
pub(crate) fn prefetch(p: *const usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and changes no state,
    // whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p.cast::<i8>(), core::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above: PRFM never faults.
    unsafe {
        core::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, preserves_flags, readonly))
    };
}
