//! What crosses a fiber switch: a value, or an exception to raise.
//!
//! [`Wire`] is the two-word form used on the switch path itself; [`Msg`] is the
//! `PyResult` the code on either side works with.

use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::{ffi, PyErr};

pub(crate) type Msg = PyResult<Py<PyAny>>;

/// A [`Msg`] as it crosses the stack switch: two words, where a `PyErr` is eight on
/// 3.11. Frames holding one (the fiber's root, the worker loop, `await_`) stay on
/// the stack of every task blocked in `await_`, so their size is memory per task.
/// Drop it with [`Wire::release`]: a `Py` dropped where PyO3 has counted no attach
/// is queued instead of released.
pub(crate) enum Wire {
    Value(Py<PyAny>),
    /// An exception instance, its traceback attached.
    Raise(Py<PyBaseException>),
}

impl Wire {
    #[inline]
    pub(crate) fn from_msg(py: Python<'_>, msg: Msg) -> Self {
        match msg {
            Ok(value) => Wire::Value(value),
            Err(err) => Wire::raise(py, err),
        }
    }

    /// An error as a `Wire` (normalizes it: the exception is made now). Through the
    /// interpreter's error indicator rather than `PyErr::into_value`, which drops
    /// references of its own: where PyO3 counts no attach, that would only queue them.
    #[inline(never)]
    pub(crate) fn raise(py: Python<'_>, err: PyErr) -> Self {
        err.restore(py);
        Wire::fetch(py)
    }

    /// The exception the last C API call raised (it must have raised).
    #[inline(never)]
    pub(crate) fn fetch(py: Python<'_>) -> Self {
        // SAFETY: GIL held; an exception is set (caller).
        let exc = unsafe { take_raised_exception() };
        debug_assert!(!exc.is_null(), "Wire::fetch without an exception set");
        // SAFETY: a new reference to an exception instance.
        Wire::Raise(unsafe {
            Bound::from_owned_ptr(py, exc)
                .cast_into_unchecked()
                .unbind()
        })
    }

    #[inline]
    pub(crate) fn into_msg(self, py: Python<'_>) -> Msg {
        match self {
            Wire::Value(value) => Ok(value),
            Wire::Raise(exc) => Err(error_from(py, exc)),
        }
    }

    /// Drops the reference now (see the type's docs).
    pub(crate) fn release(self, py: Python<'_>) {
        match self {
            Wire::Value(value) => drop(value.into_bound(py)),
            Wire::Raise(exc) => drop(exc.into_bound(py)),
        }
    }
}

/// Takes the exception being raised, as a normalized instance with its traceback
/// attached (a new reference; NULL if none is set).
///
/// # Safety
/// GIL held.
#[cfg(Py_3_12)]
unsafe fn take_raised_exception() -> *mut ffi::PyObject {
    // SAFETY: GIL held (caller).
    unsafe { ffi::PyErr_GetRaisedException() }
}

/// See the 3.12+ version.
///
/// # Safety
/// GIL held.
#[cfg(not(Py_3_12))]
unsafe fn take_raised_exception() -> *mut ffi::PyObject {
    use std::ptr;

    let mut ty = ptr::null_mut();
    let mut value = ptr::null_mut();
    let mut tb = ptr::null_mut();
    // SAFETY: GIL held (caller); the three out-pointers receive new references (or
    // NULL), which are released or returned below.
    unsafe {
        ffi::PyErr_Fetch(&mut ty, &mut value, &mut tb);
        if ty.is_null() {
            return ptr::null_mut();
        }
        ffi::PyErr_NormalizeException(&mut ty, &mut value, &mut tb);
        if !tb.is_null() && !value.is_null() {
            ffi::PyException_SetTraceback(value, tb);
        }
        ffi::Py_XDECREF(ty);
        ffi::Py_XDECREF(tb);
    }
    value
}

/// The `PyErr` that raises `exc` (out of line: only error paths pay for a `PyErr`).
#[inline(never)]
pub(crate) fn error_from(py: Python<'_>, exc: Py<PyBaseException>) -> PyErr {
    PyErr::from_value(exc.into_bound(py).into_any())
}
