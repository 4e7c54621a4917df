//! Running one step of a coroutine, on whatever stack the caller is on: `send` or
//! `throw` with `yield from` semantics, and the one call of a call portal.

use std::ptr;

use pyo3::exceptions::{PyGeneratorExit, PyStopIteration};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::fiber::{error_from, Msg, Wire};

/// What a step worker reports when it hands control back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepOutcome {
    /// Parked, waiting for a step (or never ran one).
    Idle,
    /// The awaited object inside `await_` yielded a trap for the event loop.
    Trap,
    /// The step ended: the coroutine yielded this value to the loop.
    Yielded,
    /// The step ended: the coroutine returned this value.
    Returned,
    /// The step ended: the coroutine raised.
    Raised,
}

/// One step of the coroutine `coro`: `send(value)` or `throw(exc)`.
///
/// # Safety
/// `coro` is a live object (borrowed), GIL held.
#[inline]
pub(crate) unsafe fn run_step(
    py: Python<'_>,
    coro: *mut ffi::PyObject,
    msg: Wire,
) -> (StepOutcome, Wire) {
    let value = match msg {
        Wire::Value(value) => value.into_bound(py),
        Wire::Raise(exc) => return throw_step(py, coro, exc),
    };
    let mut out: *mut ffi::PyObject = ptr::null_mut();
    // SAFETY: GIL held; both objects are alive; `out` receives a new reference.
    let status = unsafe { ffi::PyIter_Send(coro, value.as_ptr(), &mut out) };
    drop(value);
    match status {
        // SAFETY: on NEXT/RETURN `out` is a new reference.
        ffi::PySendResult::PYGEN_NEXT => (
            StepOutcome::Yielded,
            Wire::Value(unsafe { Bound::from_owned_ptr(py, out).unbind() }),
        ),
        // SAFETY: as above.
        ffi::PySendResult::PYGEN_RETURN => (
            StepOutcome::Returned,
            Wire::Value(unsafe { Bound::from_owned_ptr(py, out).unbind() }),
        ),
        ffi::PySendResult::PYGEN_ERROR => (StepOutcome::Raised, Wire::fetch(py)),
    }
}

/// [`run_step`] (or [`run_call`]) for callers holding a [`Msg`]: the greenlet runner.
pub(crate) fn run_any_step(
    py: Python<'_>,
    coro: &Bound<'_, PyAny>,
    call: bool,
    msg: Msg,
) -> (StepOutcome, Msg) {
    let msg = Wire::from_msg(py, msg);
    let (outcome, result) = if call {
        run_call(py, coro.as_ptr(), msg)
    } else {
        // SAFETY: `coro` is alive (borrowed by the caller).
        unsafe { run_step(py, coro.as_ptr(), msg) }
    };
    (outcome, result.into_msg(py))
}

/// `coro.throw(exc)` for a step (out of line: see `worker_main`).
#[inline(never)]
fn throw_step(
    py: Python<'_>,
    coro: *mut ffi::PyObject,
    exc: Py<pyo3::exceptions::PyBaseException>,
) -> (StepOutcome, Wire) {
    // SAFETY: `coro` is live (run_step's contract).
    let coro = unsafe { Bound::from_borrowed_ptr(py, coro) };
    match throw_exception(py, &coro, exc) {
        Thrown::Yielded(v) => (StepOutcome::Yielded, Wire::Value(v)),
        Thrown::Returned(v) => (StepOutcome::Returned, Wire::Value(v)),
        Thrown::Raised(e) => (StepOutcome::Raised, Wire::raise(py, e)),
    }
}

/// The one step of a call portal: `fn(*args, **kwargs)`. An exception thrown in
/// before it runs is raised, as by a coroutine that has not started.
#[inline(never)]
pub(crate) fn run_call(py: Python<'_>, call: *mut ffi::PyObject, msg: Wire) -> (StepOutcome, Wire) {
    // SAFETY: the portal running this step holds `call`.
    let call = unsafe { Bound::from_borrowed_ptr(py, call) };
    let run = || -> PyResult<Py<PyAny>> {
        if let Wire::Raise(exc) = msg {
            return Err(error_from(py, exc));
        }
        msg.release(py);
        let (func, args, kwargs): (
            Bound<'_, PyAny>,
            Bound<'_, pyo3::types::PyTuple>,
            Option<Bound<'_, pyo3::types::PyDict>>,
        ) = call.extract()?;
        Ok(func.call(args, kwargs.as_ref())?.unbind())
    };
    match run() {
        Ok(value) => (StepOutcome::Returned, Wire::Value(value)),
        Err(err) => (StepOutcome::Raised, Wire::raise(py, err)),
    }
}

pub(crate) enum Thrown {
    Yielded(Py<PyAny>),
    Returned(Py<PyAny>),
    Raised(PyErr),
}

/// [`throw_into`] for an exception that crossed a switch. Out of line: its callers
/// (`await_`, the worker loop) have frames on every blocked task's stack.
#[inline(never)]
pub(crate) fn throw_exception(
    py: Python<'_>,
    it: &Bound<'_, PyAny>,
    exc: Py<pyo3::exceptions::PyBaseException>,
) -> Thrown {
    throw_into(py, it, error_from(py, exc))
}

/// `it.throw(exc)` with `yield from` semantics: an iterator without `throw` gets the
/// exception raised at the delegation point; GeneratorExit closes it first.
pub(crate) fn throw_into(py: Python<'_>, it: &Bound<'_, PyAny>, exc: PyErr) -> Thrown {
    if exc.is_instance_of::<PyGeneratorExit>(py) {
        if let Ok(close) = it.getattr("close") {
            if let Err(err) = close.call0() {
                return Thrown::Raised(err);
            }
        }
        return Thrown::Raised(exc);
    }
    let Ok(throw) = it.getattr("throw") else {
        return Thrown::Raised(exc);
    };
    match throw.call1((exc.into_value(py),)) {
        Ok(v) => Thrown::Yielded(v.unbind()),
        Err(err) if err.is_instance_of::<PyStopIteration>(py) => {
            let value = err.value(py).getattr("value").map(Bound::unbind);
            match value {
                Ok(v) => Thrown::Returned(v),
                Err(e) => Thrown::Raised(e),
            }
        }
        Err(err) => Thrown::Raised(err),
    }
}
