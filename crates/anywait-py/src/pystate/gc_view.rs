//! The cycle collector's view of the frames of a suspended fiber.
//!
//! CPython's collector finds garbage by subtracting, from each object's reference
//! count, the references that other tracked objects report from `tp_traverse`. The
//! frames of a thread's running chain are owned by no object, so what they hold is
//! never reported: it counts as referenced from outside, and stays alive. That is right
//! for a chain that runs; for the chain of a suspended fiber it means that a cycle
//! through a task blocked in `await_` is never collected, where the same task written
//! with `await` is. So the owner of a suspended fiber (the portal of an open step, or
//! the `lowlevel.Fiber` object) reports the references of the fiber's frames from its
//! own `tp_traverse`, as if it owned them: they are reached only through it.
//!
//! What is reported, frame by frame along the saved chain:
//! * thread-owned frames (plain calls): their locals, and their value stack where
//!   CPython recorded its extent (before 3.14: `stacktop >= 0`, while an inline Python
//!   call is open; 3.14+: `stackpointer`, spilled at every call that can escape), and
//!   their function object;
//! * generator-owned frames (the coroutine of the task, and what it awaits): the same
//!   locals and stack, nothing else (the generator reports its frame's other fields).
//!
//! What is never reported: the frame objects (`frame_obj`: their `tp_clear` would wipe
//! a live frame's locals), `f_locals`, 3.14+'s tagged stack references (they own no
//! count), and the generator objects of the chain themselves. Those stay reachable
//! shells, so that the collector never finalizes a generator CPython sees as executing
//! ("coroutine already executing"); the owner's finalizer unwinds the fiber instead,
//! which ends them properly.
//!
//! Invariants:
//! * Every reference reported is a real one, owned by a frame of the chain, and is
//!   reported by nobody else. Reporting less is always safe (it only keeps objects
//!   alive); reporting more would let the collector free what a frame still uses.
//! * A generator frame on the chain would be reported twice: `gen_traverse` reports its
//!   locals and stack too while its extent is valid. So while the fiber is suspended
//!   its extent is hidden ([`HiddenStacks::hide`]: `stacktop = -1`, or on 3.14+
//!   `stackpointer = localsplus`), and given back before the fiber runs again
//!   ([`HiddenStacks::reveal`]). Nothing but the interpreter running that frame reads
//!   the extent of an executing frame, and it runs only after the reveal.
//! * If a generator of the chain has references beyond those the chain and its owner
//!   account for, someone outside holds it: as for a native suspended coroutine, what
//!   its frames hold is then reachable from there, and nothing at all is reported.

use std::ffi::{c_char, c_int, c_long};
use std::ptr::{self, NonNull};

use pyo3::ffi;

use super::layout::layout;
use super::Snapshot;

/// Generator frames on one chain whose extent can be hidden; a deeper nesting of
/// coroutines is not reported (the view then says nothing: always safe).
const CAP: usize = 16;

/// Frames `hide` walks at most: it runs at every suspension, at about a nanosecond a
/// frame. A deeper chain is not reported (measured by benches/bench_fiber.py).
const MAX_DEPTH: usize = 128;

/// The generator frames of a suspended chain, with the extents hidden from
/// `gen_traverse` while the fiber is suspended (module docs).
pub(crate) struct HiddenStacks {
    /// The frame, and its real extent: `stacktop` (before 3.14) or `stackpointer`.
    entries: [(*mut u8, isize); CAP],
    len: usize,
    /// Whether the chain's frames may be reported: every generator frame is hidden, and
    /// the build's stack references are ones this module can read.
    complete: bool,
    /// 3.15: the thread's base frame, where every chain ends (compared, never read:
    /// the thread may be gone when a collection on another thread looks); null before.
    end: *mut u8,
}

/// The parts of an interpreter frame this module reads.
struct FrameView {
    owner: c_char,
    localsplus: *mut usize,
    /// How many entries of `localsplus` hold references (locals, then the stack).
    len: usize,
}

impl HiddenStacks {
    pub(crate) const fn new() -> Self {
        Self {
            entries: [(ptr::null_mut(), 0); CAP],
            len: 0,
            complete: false,
            end: ptr::null_mut(),
        }
    }

    /// Records the generator frames of the chain `snapshot` saved and hides their
    /// extents (module invariants).
    ///
    /// # Safety
    /// `snapshot` was just saved from a fiber that suspended on this thread (its frames
    /// are live and will not run until [`HiddenStacks::reveal`]); `ts` is this thread's
    /// state; nothing is hidden now.
    pub(crate) unsafe fn hide(&mut self, snapshot: &Snapshot, ts: *mut ffi::PyThreadState) {
        debug_assert_eq!(self.len, 0);
        let l = layout();
        #[cfg(Py_3_15)]
        // SAFETY: this thread's live state; `verify` checked the field.
        let end: *mut u8 = unsafe { *l.base_frame.of(ts.cast::<u8>()) };
        #[cfg(not(Py_3_15))]
        let end: *mut u8 = {
            let _ = ts;
            ptr::null_mut()
        };
        self.end = end;
        let mut complete = l.stackref_opaque == 0;
        let mut frame = snapshot.top_frame();
        let mut depth = 0;
        while !frame.is_null() && frame != end {
            depth += 1;
            if depth > MAX_DEPTH {
                complete = false;
                break;
            }
            // SAFETY: a frame of the suspended chain: live (caller).
            let owner = unsafe { *l.frame_owner.of::<c_char>(frame) };
            if c_long::from(owner) == l.owned_by_generator {
                if self.len == CAP {
                    complete = false;
                    break;
                }
                // SAFETY: as above; the frame does not run until `reveal`.
                let extent = unsafe { swap_extent(frame, None) };
                self.entries[self.len] = (frame, extent);
                self.len += 1;
            }
            // SAFETY: as above.
            frame = unsafe { *l.frame_previous.of::<*mut u8>(frame) };
        }
        self.complete = complete;
    }

    /// Gives the hidden generator frames their extents back, before the fiber runs.
    ///
    /// # Safety
    /// The frames recorded by `hide` are still live (the fiber has not run since).
    #[inline]
    pub(crate) unsafe fn reveal(&mut self) {
        for &(frame, extent) in &self.entries[..self.len] {
            // SAFETY: recorded by `hide` from the chain, which has not run since (caller).
            unsafe { swap_extent(frame, Some(extent)) };
        }
        self.len = 0;
        self.complete = false;
    }

    /// Calls `visit` on every reference the frames of the suspended chain own that this
    /// view may report (module docs). `known` lists, for objects the owner accounts
    /// for, how many of their references it explains (reported or held by it).
    ///
    /// # Safety
    /// `snapshot` is the saved state this view was recorded from with `hide`, not
    /// revealed since; the GIL is held.
    pub(crate) unsafe fn visit<E>(
        &self,
        snapshot: &Snapshot,
        known: &[(*mut ffi::PyObject, isize)],
        mut visit: impl FnMut(NonNull<ffi::PyObject>) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.complete {
            return Ok(());
        }
        let l = layout();
        // The chain's generators and the references to them each explains.
        let mut gens = [(ptr::null_mut::<ffi::PyObject>(), 0isize); CAP];
        for (slot, &(frame, _)) in gens.iter_mut().zip(&self.entries[..self.len]) {
            // SAFETY: a generator's frame is embedded in the generator at `gen_iframe`.
            let gen = unsafe { frame.sub(l.gen_iframe.offset as usize) }.cast::<ffi::PyObject>();
            let held = known.iter().filter(|k| k.0 == gen).map(|k| k.1).sum();
            *slot = (gen, held);
        }
        let gens = &mut gens[..self.len];
        // First pass: every frame must be readable, and the chain's generators held by
        // the chain and the owner only.
        // SAFETY: forwarded contract.
        let readable = unsafe {
            self.each_reference(snapshot, |obj| {
                if let Some(g) = gens.iter_mut().find(|g| g.0 == obj.as_ptr()) {
                    g.1 += 1;
                }
                Ok::<(), ()>(())
            })
        };
        let held_elsewhere = |&(g, held): &(*mut ffi::PyObject, isize)| {
            // SAFETY: live generators (their frames are on the chain); GIL held.
            unsafe { ffi::Py_REFCNT(g) != held }
        };
        if readable.is_err() || gens.iter().any(held_elsewhere) {
            return Ok(());
        }
        // SAFETY: forwarded contract.
        let second = unsafe {
            self.each_reference(snapshot, |obj| {
                if gens.iter().any(|g| g.0 == obj.as_ptr()) {
                    return Ok(());
                }
                visit(obj)
            })
        };
        match second {
            Ok(()) | Err(None) => Ok(()),
            Err(Some(err)) => Err(err),
        }
    }

    /// Calls `f` on each reference the chain's frames own (locals, recorded stacks, and
    /// thread-owned frames' functions); `Err(None)` if a frame is not one this module
    /// can read (nothing should be reported then), `Err(Some(e))` if `f` failed.
    ///
    /// # Safety
    /// As for [`HiddenStacks::visit`].
    unsafe fn each_reference<E>(
        &self,
        snapshot: &Snapshot,
        mut f: impl FnMut(NonNull<ffi::PyObject>) -> Result<(), E>,
    ) -> Result<(), Option<E>> {
        let l = layout();
        let mut frame = snapshot.top_frame();
        while !frame.is_null() && frame != self.end {
            let saved = self.entries[..self.len]
                .iter()
                .find(|e| e.0 == frame)
                .map(|e| e.1);
            // SAFETY: a frame of the suspended chain (caller), with its hidden extent.
            if let Some(view) = unsafe { read_frame(frame, saved) }.map_err(|()| None)? {
                for i in 0..view.len {
                    // SAFETY: the first `len` entries hold references (read_frame).
                    let bits = unsafe { *view.localsplus.add(i) };
                    if let Some(obj) = owned(bits) {
                        f(obj).map_err(Some)?;
                    }
                }
                if c_long::from(view.owner) == l.owned_by_thread {
                    // SAFETY: a thread-owned frame's function is a strong reference.
                    let func = unsafe { *l.frame_funcobj.of::<usize>(frame) };
                    if let Some(obj) = owned(func) {
                        f(obj).map_err(Some)?;
                    }
                }
            }
            // SAFETY: as above.
            frame = unsafe { *l.frame_previous.of::<*mut u8>(frame) };
        }
        Ok(())
    }
}

/// The object a frame slot owns a reference to, if any: not null, and (3.14+) not a
/// tagged reference, which owns no count.
#[inline]
fn owned(bits: usize) -> Option<NonNull<ffi::PyObject>> {
    let tags = layout().stackref_tag_bits as usize;
    if bits & tags != 0 {
        return None;
    }
    NonNull::new(bits as *mut ffi::PyObject)
}

/// What the view reads of `frame`: `Ok(None)` for a frame it does not report (entry
/// frames and the like), `Err` for a Python frame it cannot account for (a generator
/// frame that is not hidden, one whose code is not a code object): nothing may be
/// reported then. `saved` is the real extent of a hidden generator frame.
///
/// # Safety
/// `frame` is a live frame of a suspended chain.
unsafe fn read_frame(frame: *mut u8, saved: Option<isize>) -> Result<Option<FrameView>, ()> {
    let l = layout();
    // SAFETY: live frame (caller).
    let owner = unsafe { *l.frame_owner.of::<c_char>(frame) };
    let by_generator = c_long::from(owner) == l.owned_by_generator;
    if !by_generator && c_long::from(owner) != l.owned_by_thread {
        return Ok(None);
    }
    if by_generator && saved.is_none() {
        return Err(()); // not hidden: its generator reports it
    }
    // SAFETY: as above; the code is a strong reference (3.14+: a stack reference,
    // whose tag bits are not part of the pointer).
    let code_bits = unsafe { *l.frame_code.of::<usize>(frame) };
    let code = (code_bits & !(l.stackref_tag_bits as usize)) as *mut ffi::PyObject;
    // SAFETY: a live object; comparing its type with the code type's address.
    if code.is_null() || unsafe { ffi::Py_TYPE(code) } != &raw mut ffi::PyCode_Type {
        return Err(());
    }
    // SAFETY: a live code object (checked above).
    let nlocalsplus = unsafe { *l.code_nlocalsplus.of::<c_int>(code.cast()) };
    // SAFETY: as above.
    let localsplus = unsafe { l.frame_localsplus.of::<usize>(frame) };
    // SAFETY: live frame (caller).
    let extent = saved.unwrap_or_else(|| unsafe { read_extent(frame) });
    let nlocalsplus = usize::try_from(nlocalsplus).map_err(|_| ())?;
    let len = extent_len(localsplus, extent).unwrap_or(nlocalsplus);
    Ok(Some(FrameView {
        owner,
        localsplus,
        len: len.max(nlocalsplus),
    }))
}

/// How many slots an extent covers, when it is recorded.
#[cfg(not(Py_3_14))]
fn extent_len(_localsplus: *mut usize, stacktop: isize) -> Option<usize> {
    usize::try_from(stacktop).ok()
}

#[cfg(Py_3_14)]
fn extent_len(localsplus: *mut usize, stackpointer: isize) -> Option<usize> {
    let base = localsplus as isize;
    (stackpointer >= base).then(|| (stackpointer - base) as usize / std::mem::size_of::<usize>())
}

/// A frame's extent (`stacktop`, or `stackpointer` as an address).
///
/// # Safety
/// `frame` is a live frame.
unsafe fn read_extent(frame: *mut u8) -> isize {
    let l = layout();
    #[cfg(not(Py_3_14))]
    // SAFETY: live frame (caller); `verify` checked the field's size.
    let extent = unsafe { *l.frame_stacktop.of::<c_int>(frame) } as isize;
    #[cfg(Py_3_14)]
    // SAFETY: as above.
    let extent = unsafe { *l.frame_stackpointer.of::<isize>(frame) };
    extent
}

/// Sets a frame's extent to `to` (None: hidden) and returns the one it had.
///
/// # Safety
/// `frame` is a live frame that is not running.
unsafe fn swap_extent(frame: *mut u8, to: Option<isize>) -> isize {
    let l = layout();
    // SAFETY: live frame (caller).
    let old = unsafe { read_extent(frame) };
    #[cfg(not(Py_3_14))]
    // SAFETY: as above; -1 is what CPython stores while a frame's stack is not recorded.
    unsafe {
        *l.frame_stacktop.of::<c_int>(frame) = to.unwrap_or(-1) as c_int
    };
    #[cfg(Py_3_14)]
    // SAFETY: as above; an empty extent (at the locals' start) covers nothing.
    unsafe {
        let hidden = l.frame_localsplus.of::<u8>(frame) as isize;
        *l.frame_stackpointer.of::<isize>(frame) = to.unwrap_or(hidden)
    };
    old
}
