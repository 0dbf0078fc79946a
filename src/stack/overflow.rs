//! Stack-overflow detection: a SIGSEGV/SIGBUS handler, on an alternate
//! signal stack, that recognizes a hit on the running greenlet's guard page,
//! names the greenlet and aborts; every other fault goes to the handler
//! installed before ours (std's, or the default action).

use super::Chunk;

/// A fixed buffer for messages built inside a signal handler (no allocation).
pub(crate) struct MsgBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> MsgBuf<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> MsgBuf<'a> {
        MsgBuf { buf, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl std::fmt::Write for MsgBuf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Decides whether a fault address is a greenlet stack overflow; fills the
/// report into the buffer and returns its length if so.
pub(crate) type OverflowProbe = fn(usize, &mut [u8]) -> Option<usize>;

static PROBE: std::sync::OnceLock<OverflowProbe> = std::sync::OnceLock::new();
static PREVIOUS: std::sync::OnceLock<[libc::sigaction; 2]> = std::sync::OnceLock::new();

/// Installs (once per process) a SIGSEGV/SIGBUS handler that recognizes a hit
/// on a greenlet's guard page, prints `greenlet 'x' has overflowed its stack`
/// and aborts; any other fault goes to the handler installed before ours.
pub(crate) fn install_overflow_handler(probe: OverflowProbe) {
    if PROBE.set(probe).is_err() {
        return;
    }
    // Record the handlers we replace before ours can run, so a fault in
    // another thread meanwhile always finds where to delegate.
    let signals = [libc::SIGSEGV, libc::SIGBUS];
    let mut previous = [empty_sigaction(), empty_sigaction()];
    for (i, sig) in signals.into_iter().enumerate() {
        // SAFETY: querying the current action only.
        unsafe { libc::sigaction(sig, std::ptr::null(), &mut previous[i]) };
    }
    let _ = PREVIOUS.set(previous);
    for sig in signals {
        let mut action = empty_sigaction();
        action.sa_sigaction = on_fault as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: a valid sigaction for a handler that only reads memory,
        // writes to stderr and aborts or delegates.
        unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) };
    }
}

fn empty_sigaction() -> libc::sigaction {
    // SAFETY: sigaction is plain data; all-zero is a valid "default" value.
    unsafe { std::mem::zeroed() }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV/SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    let mut buf = [0u8; 512];
    if let Some(n) = PROBE.get().and_then(|probe| probe(addr, &mut buf)) {
        // SAFETY: write(2) and abort(3) are async-signal-safe.
        unsafe {
            libc::write(2, buf.as_ptr().cast(), n);
            libc::abort();
        }
    }
    let idx = if sig == libc::SIGSEGV { 0 } else { 1 };
    let Some(prev) = PREVIOUS.get().map(|p| p[idx]) else { return };
    if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
        // Restore the default action and return: the fault repeats and the
        // kernel handles it as if we had never been installed.
        let mut dfl = empty_sigaction();
        dfl.sa_sigaction = libc::SIG_DFL;
        // SAFETY: resetting a signal to its default action.
        unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it
        // has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain handler installed without SA_SIGINFO.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig);
    }
}

/// An alternate signal stack for the thread, so the overflow handler can run
/// when a greenlet's stack is exhausted. Installed only if the thread has
/// none (std gives its threads one); removed and unmapped on drop.
pub(crate) struct AltStack {
    chunk: Chunk,
}

impl std::fmt::Debug for AltStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AltStack").field("len", &self.chunk.len).finish()
    }
}

impl AltStack {
    const SIZE: usize = 64 * 1024;

    pub(crate) fn ensure() -> Option<AltStack> {
        let mut old: libc::stack_t = unsafe_zeroed_stack();
        // SAFETY: querying the current alternate stack.
        unsafe { libc::sigaltstack(std::ptr::null(), &mut old) };
        if old.ss_flags & libc::SS_DISABLE == 0 {
            return None;
        }
        let chunk = Chunk::map(Self::SIZE).ok()?;
        let new = libc::stack_t { ss_sp: chunk.addr as *mut libc::c_void, ss_flags: 0, ss_size: Self::SIZE };
        // SAFETY: the mapping outlives the registration (removed in Drop).
        unsafe { libc::sigaltstack(&new, std::ptr::null_mut()) };
        Some(AltStack { chunk })
    }
}

fn unsafe_zeroed_stack() -> libc::stack_t {
    // SAFETY: stack_t is plain data.
    unsafe { std::mem::zeroed() }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let off = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
        // SAFETY: disabling the alternate stack before its memory goes.
        unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
    }
}
