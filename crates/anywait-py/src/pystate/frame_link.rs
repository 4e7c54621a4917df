//! A linked fiber's frame chain continued into its resumer's, for one resume: so that
//! `f_back` of the body's outermost frame (and `sys._getframe()` walks, `inspect.stack()`,
//! `warnings.warn(stacklevel=...)`) reach the consumer's frames while the body runs, as a
//! native generator's frame does. While the fiber is suspended its chain ends in nothing
//! again, as a suspended generator's frame does: the resumer's frames it pointed at may
//! be gone by the next resume.
//!
//! What is linked is the `previous` of the fiber's *bottom* frame, the outermost one on
//! its stack: the entry frame of the body's eval loop (3.12+), or the body's own frame
//! (3.11). CPython sets it once, when the body's eval starts, from the thread's current
//! frame, and on exit checks (3.11, 3.12 debug builds) that the root C frame's
//! `current_frame` agrees with it. So on 3.11/3.12 the fiber's root C frame carries the
//! resumer's frame for each resume, and the bottom frame's `previous` is re-pointed at
//! each resume once it is known; it is found by walking the fiber's chain at its first
//! suspension (the frame whose `previous` is the resumer's), and it stays the same
//! frame until the body returns.
//!
//! Invariant: between resumes no frame on the fiber's stack points at a frame
//! elsewhere, and no root C frame of a fiber names one.

use std::ptr;

use anywait_fiber::StackBounds;
use pyo3::ffi;

use super::layout::layout;
use super::{base, Snapshot};

/// Where a linked fiber's chain meets its resumer's (see the module docs).
#[derive(Debug)]
pub(crate) struct FrameLink {
    /// 3.11/3.12: the fiber's root C frame (the start of its stack's reserved area).
    #[cfg(not(Py_3_13))]
    root_cframe: *mut u8,
    /// The fiber's bottom frame, once found (null until then, and once the body has
    /// returned).
    bottom: *mut u8,
    /// The resumer's innermost frame during a resume (what the bottom points at).
    resumer: *mut u8,
}

impl FrameLink {
    /// The link of a fiber about to start on `stack` (whose snapshot
    /// [`Snapshot::fresh`] made).
    pub(crate) fn new(stack: &StackBounds) -> Self {
        #[cfg(Py_3_13)]
        let _ = stack;
        Self {
            #[cfg(not(Py_3_13))]
            root_cframe: stack.reserved_area.as_ptr(),
            bottom: ptr::null_mut(),
            resumer: ptr::null_mut(),
        }
    }

    /// Continues the fiber's chain into the resumer's innermost frame, before the
    /// switch into the fiber (whose saved state is `fiber`).
    ///
    /// # Safety
    /// `ts` is the current thread's state, installed for the resumer; `fiber` is the
    /// saved state of the suspended (or fresh) fiber this link belongs to; GIL held.
    #[inline]
    pub(crate) unsafe fn link(&mut self, ts: *mut ffi::PyThreadState, fiber: &mut Snapshot) {
        let l = layout();
        #[cfg(not(Py_3_13))]
        // SAFETY: the resumer's innermost C frame is live (it is on the running stack);
        // the fiber's root C frame is in its reserved area.
        let resumer: *mut u8 = unsafe {
            let cframe: *mut u8 = *l.cframe.of(base(ts));
            let resumer = *l.cframe_current_frame.of::<*mut u8>(cframe);
            *l.cframe_current_frame.of::<*mut u8>(self.root_cframe) = resumer;
            resumer
        };
        #[cfg(Py_3_13)]
        // SAFETY: a field of the live thread state.
        let resumer: *mut u8 = unsafe { *l.current_frame.of(base(ts)) };
        #[cfg(Py_3_13)]
        if fiber.current_frame == no_frame(ts) {
            // No frame on the fiber's stack yet: the body's eval will take this one as
            // its caller's.
            fiber.current_frame = resumer;
        }
        #[cfg(not(Py_3_13))]
        let _ = fiber;
        if !self.bottom.is_null() {
            // SAFETY: the bottom frame is live on the suspended fiber's stack until
            // the body returns (`unlink` forgets it then).
            unsafe { *l.frame_previous.of::<*mut u8>(self.bottom) = resumer };
        }
        self.resumer = resumer;
    }

    /// Ends the fiber's chain again after a switch back from it: `fiber` is its saved
    /// state, `finished` whether its body returned (its frames are all gone then).
    ///
    /// # Safety
    /// `ts` is the current thread's state (installed for the resumer again); `fiber` is
    /// the state the fiber just left, linked by [`FrameLink::link`] for this resume;
    /// GIL held.
    #[inline]
    pub(crate) unsafe fn unlink(
        &mut self,
        ts: *mut ffi::PyThreadState,
        fiber: &mut Snapshot,
        finished: bool,
    ) {
        let l = layout();
        let none = no_frame(ts);
        #[cfg(not(Py_3_13))]
        // SAFETY: the root C frame is in the fiber's reserved area; the innermost C
        // frame of a suspended fiber is live on its stack (or is the root one).
        let top: *mut u8 = unsafe {
            *l.cframe_current_frame.of::<*mut u8>(self.root_cframe) = ptr::null_mut();
            if fiber.cframe == self.root_cframe {
                ptr::null_mut()
            } else {
                *l.cframe_current_frame.of::<*mut u8>(fiber.cframe)
            }
        };
        #[cfg(Py_3_13)]
        let top: *mut u8 = {
            if fiber.current_frame == self.resumer {
                // The fiber has no frame of its own (not yet, or no more): its chain is
                // empty, not the resumer's.
                fiber.current_frame = none;
            }
            fiber.current_frame
        };
        let resumer = std::mem::replace(&mut self.resumer, ptr::null_mut());
        if finished {
            self.bottom = ptr::null_mut();
            return;
        }
        if self.bottom.is_null() {
            // SAFETY: the chain from a suspended fiber's innermost frame runs through
            // live frames on its stack down to the bottom, whose `previous` is the
            // resumer's frame (set by the eval loop at the body's start).
            self.bottom = unsafe { find_bottom(top, resumer, none) };
        }
        if !self.bottom.is_null() {
            // SAFETY: as above: the bottom frame is live on the suspended stack.
            unsafe { *l.frame_previous.of::<*mut u8>(self.bottom) = none };
        }
    }
}

/// The frame the first frame on a stack has as its `previous`: none (3.15: the thread's
/// base frame, the sentinel every chain ends in).
#[inline(always)]
fn no_frame(ts: *mut ffi::PyThreadState) -> *mut u8 {
    #[cfg(Py_3_15)]
    // SAFETY: a field of the live thread state.
    return unsafe { *layout().base_frame.of(base(ts)) };
    #[cfg(not(Py_3_15))]
    {
        let _ = ts;
        ptr::null_mut()
    }
}

/// Walks `previous` from `top` to the frame whose `previous` is `resumer`: the fiber's
/// bottom frame. Null if the chain has no such frame (no frame of its own).
///
/// # Safety
/// `top` is null, `none`, or a live frame whose chain of `previous` is live down to
/// `resumer`, `none` or null.
unsafe fn find_bottom(top: *mut u8, resumer: *mut u8, none: *mut u8) -> *mut u8 {
    let l = layout();
    let mut frame = top;
    while !frame.is_null() && frame != none && frame != resumer {
        // SAFETY: a live frame of the chain (caller).
        let previous = unsafe { *l.frame_previous.of::<*mut u8>(frame) };
        if previous == resumer {
            return frame;
        }
        frame = previous;
    }
    ptr::null_mut()
}
