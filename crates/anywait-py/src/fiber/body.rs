//! What a fiber runs: a Python call (`anywait.lowlevel.Fiber`, stackful generators) or
//! a native loop (a portal's step worker).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{ffi, PyErr};

use super::switch::{FiberCore, Tag};
use super::wire::Wire;
use crate::fatal::fatal;

/// What a fiber runs.
pub(crate) enum Body {
    /// `func(*args, **kwargs)`: the body of an `anywait.lowlevel.Fiber`. It stays in
    /// the core until the call returns, so that the core (and the collector, through
    /// its owner) accounts for the call's objects while the fiber is suspended.
    Call {
        func: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    },
    /// A native loop run on the fiber (a portal's step worker). It receives the
    /// message of the first resume and returns the fiber's final message; `tag` says
    /// whose it is.
    Native {
        run: fn(Python<'_>, *mut FiberCore, Wire) -> Wire,
        tag: Tag,
    },
}

/// Runs the body of `core` at the root of its stack, and returns the fiber's final
/// message.
///
/// # Safety
/// `core` is the running fiber's own core, just started with its body in place.
pub(super) unsafe fn run(py: Python<'_>, core: *mut FiberCore, first: Wire) -> Wire {
    // SAFETY: the running fiber's core (caller); a short read.
    let native = match unsafe { &(*core).body } {
        Some(Body::Native { run, .. }) => Some(*run),
        Some(Body::Call { .. }) => None,
        None => fatal("a fiber started without a body"),
    };
    if let Some(run) = native {
        // SAFETY: as above; a native body owns nothing.
        unsafe { (*core).body = None };
        return run(py, core, first);
    }
    // SAFETY: forwarded contract.
    unsafe { call_in_place(py, core, first) }
}

/// The body of an `anywait.lowlevel.Fiber`, called with borrowed pointers to the
/// objects the core keeps. Out of line: `run` sits at the root of every fiber stack,
/// portal workers' included, whose frames should stay small.
///
/// # Safety
/// As for [`run`]; the body is a `Body::Call`.
#[inline(never)]
unsafe fn call_in_place(py: Python<'_>, core: *mut FiberCore, first: Wire) -> Wire {
    // None (checked by `resume` before starting).
    first.release(py);
    // SAFETY: the body stays in the core until the call below returns: a started body
    // is only ever taken here, or leaked with a suspended stack (never dropped).
    let (func, args, kwargs) = match unsafe { &(*core).body } {
        Some(Body::Call { func, args, kwargs }) => (
            func.as_ptr(),
            args.as_ptr(),
            kwargs.as_ref().map_or(std::ptr::null_mut(), |k| k.as_ptr()),
        ),
        _ => fatal("a fiber's call body is missing"),
    };
    // SAFETY: live objects owned by the core for the whole call (above); GIL held.
    let result = unsafe {
        if kwargs.is_null() && ffi::PyTuple_GET_SIZE(args) == 0 {
            ffi::PyObject_CallNoArgs(func) // vectorcall: no argument tuple to unpack
        } else {
            ffi::PyObject_Call(func, args, kwargs)
        }
    };
    let result = if result.is_null() {
        Err(PyErr::fetch(py))
    } else {
        // SAFETY: a new reference.
        Ok(unsafe { Bound::from_owned_ptr(py, result) }.unbind())
    };
    // SAFETY: the call is over; the core is ours (running fiber).
    if let Some(Body::Call { func, args, kwargs }) = unsafe { (*core).body.take() } {
        // Dropped as Bound, like every object released on these paths: a `Py` dropped
        // where PyO3 has not counted an attach is queued for later instead of released.
        drop((
            func.into_bound(py),
            args.into_bound(py),
            kwargs.map(|k| k.into_bound(py)),
        ));
    }
    Wire::from_msg(py, result)
}
