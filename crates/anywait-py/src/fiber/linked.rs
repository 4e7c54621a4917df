//! Linked fibers: what a fiber that runs as part of its resumer (a stackful
//! generator's) takes from it on each resume (see `FiberCore::new_linked`).
//!
//! `switch::switch_into` calls [`lend`] before the switch; the rest of the link (the
//! exception chain, undone after the switch) is `pystate`'s, since it is made of
//! thread-state fields.

use std::ptr;

use pyo3::ffi;

use pyo3::prelude::*;

use super::body::Body;
use super::switch::{FiberCore, Tag};
use crate::pystate::{self, Snapshot};

/// What linking a fiber to its resumer for one resume changed (see [`lend`]).
pub(super) struct Link {
    /// The resumer's recursion depth, added to the fiber's for the resume.
    pub(super) depth: std::ffi::c_int,
    /// The fiber's previous context, to release once the switch is complete (owned,
    /// or null).
    pub(super) released_context: *mut ffi::PyObject,
}

impl Link {
    /// What an unlinked fiber's resume changes: nothing.
    pub(super) const NONE: Link = Link {
        depth: 0,
        released_context: ptr::null_mut(),
    };
}

/// Gives a linked fiber, about to be resumed, its resumer's context and recursion
/// depth (see [`FiberCore::new_linked`]).
///
/// The context: while the fiber runs in the context it was last lent (or none yet), it
/// gets the resumer's current one, the object itself. A fiber that suspended inside
/// `Context.run` of another context keeps that one: the code suspended there must see
/// it when it resumes.
///
/// # Safety
/// `core` is live, this thread's, suspended (or freshly started) and about to be
/// switched into; GIL held.
#[inline(never)]
pub(super) unsafe fn lend(ts: *mut ffi::PyThreadState, core: *mut FiberCore) -> Link {
    // SAFETY: live core (caller), not otherwise borrowed here.
    let c = unsafe { &mut *core };
    let state = c
        .snapshot
        .as_mut()
        .expect("suspended fiber without a snapshot");
    // SAFETY: this thread's state (caller).
    let depth = unsafe { pystate::recursion_depth(ts) };
    let mut link = Link {
        depth,
        released_context: ptr::null_mut(),
    };
    state.shift_recursion_depth(depth);
    let ours = state.context();
    if ours.is_null() || ours == c.lent_context {
        let mut theirs = pystate::current_context();
        if theirs.is_null() {
            // The thread has no context yet: make it one now, so that what the fiber
            // sets is in a context both sides share. Copying the current context
            // creates the thread's (the copy itself is dropped).
            // SAFETY: GIL held; a new reference or NULL with an exception set.
            let copy = unsafe { ffi::PyContext_CopyCurrent() };
            if copy.is_null() {
                // SAFETY: GIL held; out of memory here leaves the fiber context-less.
                unsafe { ffi::PyErr_Clear() };
            }
            // SAFETY: an owned reference or null.
            unsafe { ffi::Py_XDECREF(copy) };
            theirs = pystate::current_context();
        }
        if theirs != ours {
            // SAFETY: a live context object or null; the snapshot will own this one.
            unsafe { ffi::Py_XINCREF(theirs) };
            link.released_context = state.replace_context(theirs);
            c.lent_context = theirs;
        }
    }
    link
}

/// Continues a linked fiber's frame chain into its resumer's for the resume about to
/// happen (see `pystate::FrameLink`).
///
/// # Safety
/// `core` is live, linked, and about to be switched into; `fiber_state` is its saved
/// state, taken out for the switch; `ts` is this thread's state, the resumer's view
/// installed; GIL held.
#[inline]
pub(super) unsafe fn link_frames(
    ts: *mut ffi::PyThreadState,
    core: *mut FiberCore,
    fiber_state: &mut Snapshot,
) {
    // SAFETY: live core (caller); the link is not otherwise borrowed.
    if let Some(frames) = unsafe { (*core).frames.as_mut() } {
        // SAFETY: forwarded contract.
        unsafe { frames.link(ts, fiber_state) };
    }
}

/// Ends a linked fiber's frame chain again once it has suspended or `finished`.
///
/// # Safety
/// As for [`link_frames`], after the switch back: `fiber_state` is the state the fiber
/// left, linked for this resume.
#[inline]
pub(super) unsafe fn unlink_frames(
    ts: *mut ffi::PyThreadState,
    core: *mut FiberCore,
    fiber_state: &mut Snapshot,
    finished: bool,
) {
    // SAFETY: live core (caller); the link is not otherwise borrowed.
    if let Some(frames) = unsafe { (*core).frames.as_mut() } {
        // SAFETY: forwarded contract.
        unsafe { frames.unlink(ts, fiber_state, finished) };
    }
}

impl FiberCore {
    /// A fiber running `body` as part of whoever resumes it, as a generator's frame
    /// runs as part of its consumer's: on each resume it gets the resumer's contextvars
    /// context (the object itself, so that changes flow both ways), its handled
    /// exception (what `sys.exc_info()` sees where the fiber handles none), and its
    /// recursion depth (the fiber's frames count on top of the resumer's). It is
    /// unwound with `GeneratorExit` (`lifetime`). `tag` says whose it is, as for a
    /// native body.
    pub(crate) fn new_linked(body: Body, tag: Tag) -> PyResult<Self> {
        let mut core = Self::new(body, None)?;
        core.tag = tag;
        core.linked = true;
        core.chains_exceptions = true;
        core.tells_tracer_of_resumes = true;
        Ok(core)
    }

    /// Makes each resume of the fiber give a `sys.settrace` tracer the `call` event a
    /// resumed coroutine frame gets, for the fiber's frames it does not trace yet
    /// (`pystate::tracing`): for a fiber whose frames stand in for a coroutine's (a
    /// portal's worker runs task steps so). Linked fibers do it already.
    pub(crate) fn tell_tracer_of_resumes(&mut self) {
        self.tells_tracer_of_resumes = true;
    }

    /// Makes the fiber see its resumer's handled exception where it handles none, on
    /// each resume, as a coroutine's frame sees the one handled by whoever steps it (a
    /// portal's worker runs task steps so); the rest stays unlinked.
    pub(crate) fn continue_exception_chain(&mut self) {
        self.chains_exceptions = true;
    }

    /// Whether the fiber is linked to its resumer ([`FiberCore::new_linked`]).
    #[inline]
    pub(crate) fn linked(&self) -> bool {
        self.linked
    }
}
