//! Native stacks for fibers.
//!
//! Each stack is one anonymous private mapping:
//!
//! ```text
//!  low addresses                                                   high addresses
//!  +-------------+------------------------------------+------------------------+
//!  | guard       | usable C stack  (grows downwards)  | reserved area          |
//!  | GUARD_BYTES | `usable_bytes`                     | `reserved_bytes`       |
//!  +-------------+------------------------------------+------------------------+
//!  ^ map_start   ^ usable_bottom()                    ^ base()                 ^ map_start + map_len
//!  = limit()
//! ```
//!
//! The reserved area belongs to the embedder: the Python layer keeps the fiber's root
//! frame data-stack chunk and root C frame there, so they live exactly as long as the
//! native stack does (a leaked stack leaks them too, and nothing is freed while the
//! interpreter may still point into it).
//!
//! # Guard regions without extra mappings
//!
//! A classic guard page is a `PROT_NONE` range, which splits the mapping in two: a
//! guarded stack then costs two VMAs, and `vm.max_map_count` (65530 by default) caps a
//! process at about 32,000 suspended fibers. Linux 6.13 added `MADV_GUARD_INSTALL`,
//! which marks pages as guard pages in the page tables without touching the VMA, so
//! adjacent stacks merge into a single VMA. We use it when the kernel has it and fall
//! back to `mprotect` otherwise ([`guard_mode`] tells which one is in use). When the
//! kernel refuses a mapping anyway, the error comes back as an [`std::io::Error`] for
//! the embedder to turn into a clear message.
//!
//! Pages are committed lazily: a stack costs address space, and memory only for the
//! pages actually touched. `MAP_STACK` keeps transparent huge pages off the stack, so
//! touching one byte commits 4 KiB rather than 2 MiB.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};

use corosensei::stack::{Stack, StackPointer};

use crate::valgrind;

/// Size of the guard region below every stack.
///
/// Larger than one page so that a function with a big frame cannot step over it.
pub const GUARD_BYTES: usize = 64 * 1024;

/// `MADV_GUARD_INSTALL` (Linux 6.13+), not yet exported by every `libc` release.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// How guard regions are being made in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardMode {
    /// Page-table guard markers: one mapping per stack, and neighbours merge.
    PageTableMarkers,
    /// `mprotect(PROT_NONE)`: two mappings per stack.
    Mprotect,
}

const MODE_UNKNOWN: u8 = 0;
const MODE_MARKERS: u8 = 1;
const MODE_MPROTECT: u8 = 2;

/// Remembers whether `MADV_GUARD_INSTALL` works, so an old kernel is probed only once.
static GUARD_MODE: AtomicU8 = AtomicU8::new(MODE_UNKNOWN);

/// The guard technique in use, once a stack has been made (`None` before the first).
pub fn guard_mode() -> Option<GuardMode> {
    match GUARD_MODE.load(Ordering::Relaxed) {
        MODE_MARKERS => Some(GuardMode::PageTableMarkers),
        MODE_MPROTECT => Some(GuardMode::Mprotect),
        _ => None,
    }
}

/// The sizes of a stack. Once normalised, `usable_bytes` is a multiple of the page
/// size, `base_skew` a multiple of 16 below one page, and `base_skew + reserved_bytes`
/// a multiple of the page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackLayout {
    /// Bytes usable by the C stack, between the guard and the reserved area (plus
    /// `base_skew`).
    pub usable_bytes: usize,
    /// Bytes above the stack base reserved for the embedder.
    pub reserved_bytes: usize,
    /// How far the stack base sits above the page boundary that ends the usable
    /// bytes: the top of the C stack and the start of the reserved area then share a
    /// page, so a fiber that uses little of both touches one page instead of two.
    pub base_skew: usize,
}

impl StackLayout {
    /// Rounds the sizes up to whole pages (see the type's docs).
    pub fn normalised(self) -> Self {
        let page = page_size();
        let up = |n: usize| n.div_ceil(page) * page;
        let base_skew = self.base_skew.min(page - 16) & !15;
        Self {
            usable_bytes: up(self.usable_bytes.max(corosensei::stack::MIN_STACK_SIZE)),
            reserved_bytes: up(base_skew + self.reserved_bytes) - base_skew,
            base_skew,
        }
    }

    fn map_len(&self) -> usize {
        GUARD_BYTES + self.usable_bytes + self.base_skew + self.reserved_bytes
    }
}

/// An owned, guarded native stack (see the module docs for its layout).
///
/// Dropping it unmaps the memory, so it must only be dropped once nothing runs on it
/// and nothing points into it; [`crate::Fiber`] leaks the stack of a fiber that is
/// still suspended instead.
#[derive(Debug)]
pub struct FiberStack {
    /// Start of the mapping (the lowest guard byte). Invariant: a live mapping of
    /// `layout.map_len()` bytes that this value owns.
    map_start: NonNull<u8>,
    layout: StackLayout,
    /// Valgrind's id for the usable range (`usable_bottom()..base()`) when running
    /// under valgrind, registered from mapping to unmapping; `None` natively.
    valgrind_id: Option<valgrind::StackId>,
}

impl FiberStack {
    /// Maps a new stack. `layout` is normalised to whole pages.
    pub fn new(layout: StackLayout) -> io::Result<Self> {
        let layout = layout.normalised();
        let len = layout.map_len();
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing
        // aliases nothing; the arguments are valid for mmap.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut stack = Self {
            map_start: NonNull::new(ptr.cast::<u8>()).expect("mmap returned NULL"),
            layout,
            valgrind_id: None,
        };
        stack.install_guard()?; // on error `stack` is dropped, which unmaps it
        let bottom = stack.usable_bottom();
        let base = stack.reserved_area().as_ptr() as usize;
        stack.valgrind_id = valgrind::stack_register(bottom, base - 1);
        Ok(stack)
    }

    fn install_guard(&self) -> io::Result<()> {
        let start = self.map_start.as_ptr().cast::<libc::c_void>();
        if GUARD_MODE.load(Ordering::Relaxed) != MODE_MPROTECT {
            // SAFETY: the range is the first GUARD_BYTES of our own mapping, which no one
            // uses yet; the advice only installs guard markers there.
            let rc = unsafe { libc::madvise(start, GUARD_BYTES, MADV_GUARD_INSTALL) };
            if rc == 0 {
                GUARD_MODE.store(MODE_MARKERS, Ordering::Relaxed);
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
            GUARD_MODE.store(MODE_MPROTECT, Ordering::Relaxed);
        }
        // SAFETY: as above; the range becomes inaccessible, which is the point.
        let rc = unsafe { libc::mprotect(start, GUARD_BYTES, libc::PROT_NONE) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The layout this stack was made with.
    pub fn layout(&self) -> StackLayout {
        self.layout
    }

    /// Lowest address the C stack may use (just above the guard region).
    pub fn usable_bottom(&self) -> usize {
        self.map_start.as_ptr() as usize + GUARD_BYTES
    }

    /// Start of the embedder's reserved area, which is also the stack base.
    pub fn reserved_area(&self) -> NonNull<u8> {
        // SAFETY: GUARD_BYTES + usable_bytes + base_skew stays inside the mapping
        // (map_len adds the reserved bytes on top), so the result is in bounds and
        // non-null.
        unsafe {
            NonNull::new_unchecked(
                self.map_start
                    .as_ptr()
                    .add(GUARD_BYTES + self.layout.usable_bytes + self.layout.base_skew),
            )
        }
    }

    /// Gives the committed memory of the usable stack back to the kernel, keeping the
    /// mapping (and its guard markers) for reuse. The reserved area is left alone.
    pub fn release_memory(&self) -> io::Result<()> {
        // SAFETY: the range is inside our own mapping and nothing runs on this stack
        // (we hold it by value, so no fiber uses it); its contents are dead.
        let rc = unsafe {
            libc::madvise(
                self.usable_bottom() as *mut libc::c_void,
                self.layout.usable_bytes,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for FiberStack {
    fn drop(&mut self) {
        if let Some(id) = self.valgrind_id.take() {
            valgrind::stack_deregister(id);
        }
        // SAFETY: we own the mapping (type invariant) and, by the contract on dropping a
        // FiberStack, nothing runs on it or points into it any more.
        let rc = unsafe {
            libc::munmap(
                self.map_start.as_ptr().cast::<libc::c_void>(),
                self.layout.map_len(),
            )
        };
        debug_assert_eq!(rc, 0, "munmap of a fiber stack failed");
    }
}

// SAFETY: base() and limit() are 16-byte aligned (limit page aligned, base a multiple
// of 16 above a page boundary: StackLayout::normalised), the usable range is at
// least MIN_STACK_SIZE bytes (StackLayout::normalised), and the region below it is a
// guard region that traps on access.
unsafe impl Stack for FiberStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.reserved_area().as_ptr() as usize).expect("stack base is null")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.map_start.as_ptr() as usize).expect("stack limit is null")
    }
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> StackLayout {
        StackLayout {
            usable_bytes: 64 * 1024,
            reserved_bytes: 100,
            base_skew: 0,
        }
    }

    #[test]
    fn layout_is_page_rounded_and_ordered() {
        let stack = FiberStack::new(small()).unwrap();
        let page = page_size();
        assert_eq!(stack.layout().reserved_bytes, page);
        assert_eq!(stack.limit().get() + GUARD_BYTES, stack.usable_bottom());
        assert_eq!(
            stack.usable_bottom() + stack.layout().usable_bytes,
            stack.base().get()
        );
    }

    #[test]
    fn a_skewed_base_shares_a_page_with_the_reserved_area() {
        let page = page_size();
        let layout = StackLayout {
            base_skew: 3584,
            ..small()
        };
        let stack = FiberStack::new(layout).expect("mmap");
        let l = stack.layout();
        let base = stack.base().get();
        assert_eq!(base % 16, 0);
        assert_eq!(l.base_skew, 3584.min(page - 16) & !15);
        assert_eq!(base - stack.usable_bottom(), l.usable_bytes + l.base_skew);
        assert_eq!(
            (base + l.reserved_bytes) % page,
            0,
            "the mapping ends on a page"
        );
        assert!(l.reserved_bytes >= 100);
        // The whole reserved area is writable, and so is the stack's top.
        // SAFETY: both ranges are inside our own mapping, which nothing else uses.
        unsafe {
            stack
                .reserved_area()
                .as_ptr()
                .write_bytes(0xA5, l.reserved_bytes);
            ((base - 64) as *mut u8).write_bytes(0x5A, 64);
        }
    }

    #[test]
    fn reserved_area_is_writable() {
        let stack = FiberStack::new(small()).unwrap();
        let area = stack.reserved_area().as_ptr();
        // SAFETY: the reserved area is ours, at least one page long.
        unsafe {
            area.write_bytes(0xAB, page_size());
            assert_eq!(*area.add(page_size() - 1), 0xAB);
        }
    }

    #[test]
    fn guard_mode_is_known_after_first_stack() {
        let _stack = FiberStack::new(small()).unwrap();
        assert!(guard_mode().is_some());
    }

    fn mapping_count() -> usize {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .count()
    }

    #[test]
    fn guarded_stacks_do_not_cost_a_mapping_each_with_markers() {
        let _probe = FiberStack::new(small()).unwrap();
        if guard_mode() != Some(GuardMode::PageTableMarkers) {
            return; // old kernel: two mappings per stack is the documented fallback
        }
        let before = mapping_count();
        let stacks: Vec<_> = (0..1000)
            .map(|_| FiberStack::new(small()).unwrap())
            .collect();
        let added = mapping_count().saturating_sub(before);
        assert!(added < 100, "1000 stacks added {added} mappings");
        drop(stacks);
    }

    #[test]
    fn guard_region_traps() {
        // SAFETY: the child only touches its own stack's guard and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let stack = FiberStack::new(small()).unwrap();
            let guard = (stack.usable_bottom() - 1) as *mut u8;
            // SAFETY: not safe at all: this write must fault, which is what we test.
            unsafe { guard.write_volatile(1) };
            // SAFETY: _exit is always safe to call.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: pid is our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV);
    }

    #[test]
    fn release_memory_zeroes_the_stack() {
        let stack = FiberStack::new(small()).unwrap();
        let p = stack.usable_bottom() as *mut u8;
        // SAFETY: inside the usable range of a stack nothing runs on.
        unsafe {
            p.write(7);
            stack.release_memory().unwrap();
            assert_eq!(p.read(), 0);
        }
    }
}
