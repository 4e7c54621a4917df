//! The `call` events a legacy tracer (`sys.settrace`, `PyEval_SetTrace`: pdb, coverage's
//! `ctrace` and `pytrace` cores) gets for frames resumed by a switch.
//!
//! A coroutine or generator frame resumed by `send` gets a `call` event, and the tracer
//! answers with the frame's local trace function (bdb's, if the file has breakpoints or
//! it is stepping; coverage's, always): that is how a tracer started while the frame was
//! suspended comes to trace the rest of it. Frames resumed by a fiber switch (the sync
//! frames under `await_` or `yield_`, and a portal task's coroutine frame) get no event
//! from CPython, so [`report_resumed_frames`] gives one, outermost frame first, to each
//! frame of the resumed stack that has no local trace function yet. A frame that has one
//! already is left alone: the tracer knows it, and a second `call` for a frame that is
//! not a coroutine would read, to bdb, as a real call (`--Call--`, a stop when stepping
//! over `await_`). The `return` event a suspending coroutine gets has no such twin, for
//! the same reason (bdb takes a sync frame's `return` for its real return).
//!
//! Invariant: nothing here runs unless a legacy tracer is set and the thread is not
//! already inside one (`tracing == 0`), so a switch without tracing pays one load.

use std::ffi::c_int;

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;

use super::layout::layout;
use super::{base, thread_state};

/// The thread's legacy tracer and its argument.
#[derive(Clone, Copy)]
struct Tracer {
    func: ffi::Py_tracefunc,
    obj: *mut ffi::PyObject,
}

/// The legacy tracer set on the thread whose state is `ts`, unless none is or the
/// thread is inside a tracer call already.
///
/// # Safety
/// `ts` is the current thread's live state; GIL held.
#[inline(always)]
unsafe fn tracer(ts: *mut ffi::PyThreadState) -> Option<Tracer> {
    let l = layout();
    // SAFETY: fields of the live thread state (caller); `verify` checked their sizes
    // (a function pointer, a pointer, an int).
    unsafe {
        let func = *l
            .tstate_c_tracefunc
            .of::<Option<ffi::Py_tracefunc>>(base(ts));
        let tracing = *l.tstate_tracing.of::<c_int>(base(ts));
        match func {
            Some(func) if tracing == 0 => Some(Tracer {
                func,
                obj: *l.tstate_c_traceobj.of::<*mut ffi::PyObject>(base(ts)),
            }),
            _ => None,
        }
    }
}

/// Whether a legacy tracer would be told about frames resumed now (see the module docs).
///
/// # Safety
/// `ts` is the current thread's live state; GIL held.
#[inline(always)]
pub(crate) unsafe fn tracer_set(ts: *mut ffi::PyThreadState) -> bool {
    // SAFETY: forwarded contract.
    unsafe { tracer(ts) }.is_some()
}

/// The running stack's innermost frame object (borrowed; created if it had none), or
/// null: what [`report_resumed_frames`] stops at when the stack about to be resumed
/// continues into this one.
pub(crate) fn innermost_frame(_py: Python<'_>) -> *mut ffi::PyObject {
    // SAFETY: GIL held (the token); a borrowed reference or null (no frame, or no
    // memory for the frame object, which CPython clears).
    unsafe { ffi::PyEval_GetFrame().cast() }
}

/// Gives the legacy tracer a `call` event for each frame of the stack just resumed that
/// has no local trace function, outermost first (see the module docs). The stack's
/// frames are those from the innermost one down to `below` (the resumer's innermost
/// frame, where the chain continues into the resumer's; null: to the end of the chain).
/// An error the tracer raises is returned, as CPython raises it in the frame resumed.
pub(crate) fn report_resumed_frames(py: Python<'_>, below: *mut ffi::PyObject) -> PyResult<()> {
    let ts = thread_state();
    // SAFETY: this thread's state, GIL held.
    if unsafe { !tracer_set(ts) } {
        return Ok(());
    }
    let mut frames: Vec<Bound<'_, PyAny>> = Vec::new();
    // SAFETY: GIL held; a borrowed frame object or null, made owned here.
    let mut frame = unsafe { Bound::from_borrowed_ptr_or_opt(py, ffi::PyEval_GetFrame().cast()) };
    while let Some(f) = frame {
        if f.as_ptr() == below {
            break;
        }
        // SAFETY: a live frame object; a new reference or null (the chain's end).
        let back = unsafe { ffi::PyFrame_GetBack(f.as_ptr().cast()) };
        // SAFETY: as above.
        frame = unsafe { Bound::from_owned_ptr_or_opt(py, back.cast()) };
        frames.push(f);
    }
    for f in frames.iter().rev() {
        // SAFETY: as above; the tracer may have been removed by the previous event.
        let Some(tracer) = (unsafe { tracer(ts) }) else {
            break;
        };
        if !f.getattr(intern!(py, "f_trace"))?.is_none() {
            continue;
        }
        // SAFETY: GIL held; the tracer's own contract (a live frame object, a borrowed
        // argument), with tracing paused around it as CPython pauses it for its events.
        let failed = unsafe {
            ffi::PyThreadState_EnterTracing(ts);
            let status = (tracer.func)(
                tracer.obj,
                f.as_ptr().cast(),
                ffi::PyTrace_CALL,
                ffi::Py_None(),
            );
            ffi::PyThreadState_LeaveTracing(ts);
            status != 0
        };
        if failed {
            return Err(PyErr::take(py).unwrap_or_else(|| {
                pyo3::exceptions::PySystemError::new_err(
                    "the trace function failed without an exception",
                )
            }));
        }
    }
    Ok(())
}
