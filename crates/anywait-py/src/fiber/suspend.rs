//! Suspending the running fiber: the other half of a switch, on the fiber's side.
//!
//! The fiber hands its message to the engine's yielder and, once resumed, before any of
//! its Python frames goes on, re-instruments their code if tools changed meanwhile
//! (`pystate::monitoring`), and tells a legacy tracer about the frames resumed if the
//! resume asked for it (`pystate::tracing`).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use super::switch::{current, FiberCore, Tag};
use super::wire::{Msg, Wire};
use crate::pystate;

/// Suspends the innermost running fiber, handing `value` to its resumer; returns what
/// the next resume delivers.
pub(crate) fn suspend(value: Py<PyAny>) -> Msg {
    suspend_msg(Ok(value))
}

/// Like [`suspend`], handing the resumer either a value or an exception. Only a
/// [`Tag::PLAIN`] fiber is suspended this way: the others suspend through their
/// owners, which know what their resumer expects.
pub(crate) fn suspend_msg(msg: Msg) -> Msg {
    // SAFETY: the GIL is held by whoever runs Python code on this thread.
    let py = unsafe { Python::assume_attached() };
    let core = current();
    // SAFETY: CURRENT holds only live running cores.
    if core.is_null() || unsafe { (*core).tag } != Tag::PLAIN {
        Wire::from_msg(py, msg).release(py);
        return Err(PyRuntimeError::new_err(
            "suspend() called outside a fiber; it can only be called from code running in a Fiber",
        ));
    }
    // SAFETY: `core` is this thread's innermost running fiber.
    unsafe { suspend_running(core, Wire::from_msg(py, msg)) }.into_msg(py)
}

/// Suspends `core` (see [`suspend`]) with the message as it crosses the switch: for
/// callers that know the running fiber (a portal step).
///
/// # Safety
/// `core` is the innermost running fiber of this thread.
pub(crate) unsafe fn suspend_running(core: *mut FiberCore, msg: Wire) -> Wire {
    debug_assert!(
        !core.is_null() && core == current(),
        "not the running fiber"
    );
    // SAFETY: a running core's yielder was set by its body on entry and lives on its
    // stack until the body returns, which cannot happen while we are inside it.
    let yielder = unsafe { &*(*core).yielder };
    let msg = yielder.suspend(msg);
    // SAFETY: running again: the core is live and this fiber's.
    if unsafe { std::mem::take(&mut (*core).stale_instrumentation) } {
        // SAFETY: a resumed fiber runs with the GIL held.
        pystate::monitoring::refresh(unsafe { Python::assume_attached() });
    }
    // SAFETY: as above.
    if let Some(below) = unsafe { (*core).report_resume_below.take() } {
        // SAFETY: as above.
        let py = unsafe { Python::assume_attached() };
        if let Err(err) = pystate::tracing::report_resumed_frames(py, below) {
            // CPython raises a tracer's error in the frame whose resume it was told
            // about, and the value sent is lost with it; here it is raised where the
            // fiber resumes (its innermost frame, at the `await_` or `yield_`).
            msg.release(py);
            return Wire::raise(py, err);
        }
    }
    msg
}
