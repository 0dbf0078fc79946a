//! Greenlet stacks: carved from large `mmap`ed chunks, a guard zone at the
//! low end of each, pooled per hub so that spawning in the steady state makes
//! no system call. The guard is 64 KiB, not one page: the stacks of a chunk
//! lie back to back, and compilers let a frame skip that much unprobed
//! (GCC's stack-clash protection on aarch64 assumes a 64 KiB guard; without
//! it, C code probes nothing), so a smaller guard lets a large C frame land
//! in the neighbouring stack. It costs address space only. Invariant: a stack handed out is never in the pool, and a
//! chunk is unmapped only when the pool that carved it is dropped.
//!
//! Guards are installed with `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+), which
//! adds no kernel mapping, so a million stacks fit under the default
//! `vm.max_map_count`; on older kernels `mprotect(PROT_NONE)` does the job at
//! the price of one extra mapping per stack.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};

mod overflow;

pub(crate) use overflow::{install_overflow_handler, AltStack, MsgBuf};

/// The guard layout of a hub's stacks, kept apart from its `StackPool`: the
/// overflow handler reads it when a fault comes while the pool is borrowed
/// (a stack being carved, with system calls, on a greenlet's nearly full
/// stack). Brought up to date after each take from the pool.
#[derive(Debug, Default)]
pub(crate) struct GuardSpans(std::cell::RefCell<Vec<ChunkSpan>>);

impl GuardSpans {
    /// Copies the chunks `pool` mapped since the last call.
    pub(crate) fn sync(&self, pool: &StackPool) {
        if let Ok(mut spans) = self.0.try_borrow_mut() {
            if spans.len() < pool.chunks_mapped() {
                let known = spans.len();
                spans.extend(pool.spans_from(known));
            }
        }
    }

    /// True if `addr` lies in the guard of one of the stacks (`None`: the
    /// list is being updated).
    pub(crate) fn is_guard(&self, addr: usize) -> Option<bool> {
        let guard = guard_size();
        Some(self.0.try_borrow().ok()?.iter().any(|s| s.guards(addr, guard)))
    }
}

/// `MADV_GUARD_INSTALL` from linux/mman.h (not in every libc yet).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The smallest stack a greenlet may ask for (start record + a few frames).
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// The stack size greenlets get unless told otherwise.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// Panics unless `bytes` is a stack size a greenlet may ask for (below
/// 4 GiB, the one limit of `Builder::stack_size` and
/// `hub::set_default_stack_size`).
pub(crate) fn check_size(bytes: usize) -> u32 {
    u32::try_from(bytes)
        .unwrap_or_else(|_| panic!("gevent: a greenlet's stack size must be below 4 GiB (asked for {bytes} bytes)"))
}

/// Stacks larger than this give their pages back when they return to the
/// pool (a burst of big-stack greenlets would otherwise pin its memory).
const TRIM_ABOVE: usize = 256 * 1024;

/// Free stacks of a large size class kept as they are (a steady state of
/// large greenlets coming and going makes no system call).
const KEEP_WARM: usize = 4;

/// Gives the pages of `[addr, addr + len)` back to the kernel; they read
/// as zeros at their next touch.
fn release(addr: usize, len: usize) {
    // SAFETY: the range is a free stack of our own mapping (page-aligned:
    // sizes are rounded to pages), not its guard; nothing runs on it or
    // keeps references into it (the greenlet that gave it switched away for
    // good, and it was not handed out again since).
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// Chunks hold at most this many bytes, so one stays a modest mapping.
const MAX_CHUNK_BYTES: usize = 32 << 20;

/// How guard pages are made on this kernel: 0 unknown, 1 madvise, 2 mprotect.
static GUARD_MODE: AtomicU8 = AtomicU8::new(0);

/// The guard zone below each stack: 64 KiB, or a page if pages are larger.
pub(crate) fn guard_size() -> usize {
    (64 * 1024).max(page_size())
}

pub(crate) fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize })
}

/// One greenlet stack: `[guard | usable]`, `top` is the high end. Two
/// words (and `Option<Stack>` too), as it is moved with control blocks.
#[derive(Debug)]
pub(crate) struct Stack {
    top: std::num::NonZeroUsize,
    size: usize,
}

impl Stack {
    /// The highest address of the stack (exclusive), 16-byte aligned.
    pub(crate) fn top(&self) -> usize {
        self.top.get()
    }

    /// The guard range `[lo, hi)` below the usable part.
    pub(crate) fn guard_range(&self) -> (usize, usize) {
        let hi = self.top() - self.size;
        (hi - guard_size(), hi)
    }

    /// Usable bytes (without the guard).
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

struct Chunk {
    addr: usize,
    len: usize,
    /// Bytes from one stack's guard to the next one's.
    span: usize,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: the chunk was mapped by `Chunk::map` with this length and no
        // stack carved from it is in use (the pool is dropped only after every
        // greenlet of its hub is gone).
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// Where a chunk's stacks and guards lie (a copy of [`Chunk`]'s layout).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkSpan {
    addr: usize,
    len: usize,
    span: usize,
}

impl ChunkSpan {
    /// True if `addr` lies in the guard (`guard` bytes) of one of its stacks.
    pub(crate) fn guards(&self, addr: usize, guard: usize) -> bool {
        addr >= self.addr && addr < self.addr + self.len && (addr - self.addr) % self.span < guard
    }
}

impl Chunk {
    fn map(len: usize) -> io::Result<Chunk> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh anonymous mapping; we own it until `Drop`.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, -1, 0) };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // Transparent huge pages would give every stack 2 MiB of RSS.
        // SAFETY: advice on our own mapping; failure only costs memory.
        unsafe { libc::madvise(addr, len, libc::MADV_NOHUGEPAGE) };
        Ok(Chunk { addr: addr as usize, len, span: len })
    }
}

/// Makes the `len` bytes at `addr` a guard, by the cheapest means the kernel
/// has.
fn install_guard(addr: usize, len: usize) -> io::Result<()> {
    let p = addr as *mut libc::c_void;
    let mode = GUARD_MODE.load(Ordering::Relaxed);
    if mode != 2 {
        // SAFETY: `addr` is a page of a chunk we mapped and do not use.
        let ok = unsafe { libc::madvise(p, len, MADV_GUARD_INSTALL) } == 0;
        // The first time, check that the guard guards: an emulator (qemu-user)
        // may accept the advice and do nothing.
        if ok && (mode == 1 || !readable(addr)) {
            GUARD_MODE.store(1, Ordering::Relaxed);
            return Ok(());
        }
        GUARD_MODE.store(2, Ordering::Relaxed);
    }
    // SAFETY: as above; the page becomes inaccessible, which is the point.
    if unsafe { libc::mprotect(p, len, libc::PROT_NONE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True if the kernel lets a system call read the byte at `addr` (it
/// answers EFAULT for a guard page instead of faulting us).
fn readable(addr: usize) -> bool {
    let mut fds = [0; 2];
    // SAFETY: a fresh pipe, written once from `addr` and closed.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return false;
        }
        let n = libc::write(fds[1], addr as *const libc::c_void, 1);
        libc::close(fds[0]);
        libc::close(fds[1]);
        n == 1
    }
}

/// Free stacks of one size, and the chunks they were carved from.
struct SizeClass {
    size: usize,
    free: Vec<Stack>,
    next_chunk: usize,
}

/// The per-hub stack pool.
pub(crate) struct StackPool {
    classes: Vec<SizeClass>,
    chunks: Vec<Chunk>,
    page: usize,
    guard: usize,
    /// Stacks handed out and not given back.
    out: usize,
    /// The pages of a stack given back, to release at the next `take` or
    /// `give` (see [`give`](Self::give)).
    to_release: Option<(usize, usize)>,
}

impl StackPool {
    /// Releases the pages [`give`](Self::give) left to release: the greenlet
    /// that gave them has switched away for good since.
    #[inline]
    fn release_pending(&mut self) {
        if self.to_release.is_some() {
            self.release_now();
        }
    }

    #[cold]
    #[inline(never)]
    fn release_now(&mut self) {
        if let Some((addr, len)) = self.to_release.take() {
            release(addr, len);
        }
    }

    /// Chunks mapped so far (each one `mmap` call).
    pub(crate) fn chunks_mapped(&self) -> usize {
        self.chunks.len()
    }

    /// True if `addr` lies in the guard of one of this pool's stacks.
    #[cfg(test)]
    fn is_guard(&self, addr: usize) -> bool {
        self.spans_from(0).any(|s| s.guards(addr, self.guard))
    }

    /// The chunks from the `from`-th on, as spans (for a copy the overflow
    /// handler can read while the pool is borrowed: see [`GuardSpans`]).
    pub(crate) fn spans_from(&self, from: usize) -> impl Iterator<Item = ChunkSpan> + '_ {
        self.chunks[from.min(self.chunks.len())..].iter().map(|c| ChunkSpan { addr: c.addr, len: c.len, span: c.span })
    }

    /// Stacks handed out and not given back yet.
    pub(crate) fn stacks_out(&self) -> usize {
        self.out
    }

    /// Stacks waiting in the pool.
    pub(crate) fn free_stacks(&self) -> usize {
        self.classes.iter().map(|c| c.free.len()).sum()
    }
}

impl std::fmt::Debug for StackPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackPool").field("chunks", &self.chunks.len()).finish()
    }
}

impl StackPool {
    pub(crate) fn new() -> StackPool {
        StackPool {
            classes: Vec::new(),
            chunks: Vec::new(),
            page: page_size(),
            guard: guard_size(),
            out: 0,
            to_release: None,
        }
    }

    /// Rounds a requested size up to whole pages, at least [`MIN_STACK_SIZE`].
    pub(crate) fn round(&self, size: usize) -> usize {
        size.max(MIN_STACK_SIZE).div_ceil(self.page) * self.page
    }

    /// A stack of at least `size` usable bytes: from the pool if one is free,
    /// else carved from a new chunk.
    #[inline]
    pub(crate) fn take(&mut self, size: usize) -> io::Result<Stack> {
        // (Before a stack is handed out: it may be the one to release.)
        self.release_pending();
        // Fast path: the first class is the hub's default size, pre-rounded.
        if let Some(c) = self.classes.first_mut() {
            if c.size == size {
                if let Some(stack) = c.free.pop() {
                    self.out += 1;
                    return Ok(stack);
                }
            }
        }
        self.take_slow(size)
    }

    #[inline(never)]
    fn take_slow(&mut self, size: usize) -> io::Result<Stack> {
        let size = self.round(size);
        let class = match self.classes.iter().position(|c| c.size == size) {
            Some(i) => i,
            None => {
                self.classes.push(SizeClass { size, free: Vec::new(), next_chunk: 4 });
                self.classes.len() - 1
            }
        };
        if self.classes[class].free.is_empty() {
            self.carve(class)?;
        }
        self.out += 1;
        Ok(self.classes[class].free.pop().expect("a fresh chunk holds stacks"))
    }

    /// Returns a stack to its size class. A large one beyond the first
    /// [`KEEP_WARM`] free ones of its class gives its memory back to the
    /// kernel, at the pool's next `take` or `give`: a dying greenlet returns
    /// the stack it still runs on, so the release waits until it switched
    /// away for good.
    #[inline]
    pub(crate) fn give(&mut self, stack: Stack) {
        self.release_pending();
        self.out -= 1;
        let size = stack.size();
        if let Some(c) = self.classes.first_mut() {
            if c.size == size && size <= TRIM_ABOVE {
                return c.free.push(stack);
            }
        }
        let Some(c) = self.classes.iter_mut().find(|c| c.size == size) else {
            unreachable!("stack of size {size} returned to a pool that never made one")
        };
        if size > TRIM_ABOVE && c.free.len() >= KEEP_WARM {
            // Released, it goes below the warm ones (taken last).
            self.to_release = Some((stack.top() - size, size));
            c.free.insert(0, stack);
        } else {
            c.free.push(stack);
        }
    }

    /// Maps a chunk for `class`: chunks double from 4 stacks up to 32 MiB.
    fn carve(&mut self, class: usize) -> io::Result<()> {
        let guard_len = self.guard;
        let c = &mut self.classes[class];
        let span = c.size + guard_len;
        let count = c.next_chunk.min((MAX_CHUNK_BYTES / span).max(1));
        c.next_chunk = count * 2;
        let mut chunk = Chunk::map(span * count)?;
        chunk.span = span;
        let mut fresh = Vec::with_capacity(count);
        for i in 0..count {
            let guard = chunk.addr + i * span;
            install_guard(guard, guard_len)?;
            let top = std::num::NonZeroUsize::new(guard + span).expect("a mapping is never at address 0");
            fresh.push(Stack { top, size: c.size });
        }
        // Hand out the lowest addresses first (pop takes from the end).
        fresh.reverse();
        c.free.extend(fresh);
        self.chunks.push(chunk);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_to_pages_and_minimum() {
        let pool = StackPool::new();
        assert_eq!(pool.round(1), MIN_STACK_SIZE);
        assert_eq!(pool.round(MIN_STACK_SIZE + 1), MIN_STACK_SIZE + page_size());
    }

    #[test]
    fn stacks_are_reused_and_writable() {
        let mut pool = StackPool::new();
        let a = pool.take(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(a.size(), DEFAULT_STACK_SIZE);
        assert_eq!(a.top() % 16, 0);
        // SAFETY: the word below top is inside the usable part of our stack.
        unsafe { ((a.top() - 8) as *mut usize).write(7) };
        let top = a.top();
        pool.give(a);
        let b = pool.take(DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(b.top(), top, "the pool hands back the stack it got");
        pool.give(b);
    }

    #[test]
    fn the_guard_is_not_usable() {
        let mut pool = StackPool::new();
        let s = pool.take(MIN_STACK_SIZE).unwrap();
        let (lo, hi) = s.guard_range();
        assert_eq!(hi - lo, guard_size());
        assert!(hi - lo >= 64 * 1024, "a frame may skip up to 64 KiB unprobed");
        assert_eq!(hi + s.size(), s.top());
        assert!(!readable(lo), "the guard must refuse access");
        assert!(!readable(hi - 60 * 1024), "a 60 KiB frame below the stack lands in the guard");
        assert!(!readable(hi - 1), "the whole guard");
        assert!(readable(hi), "the first usable byte is readable");
        assert!(pool.is_guard(lo) && pool.is_guard(hi - 1) && !pool.is_guard(hi));
        pool.give(s);
    }
}
