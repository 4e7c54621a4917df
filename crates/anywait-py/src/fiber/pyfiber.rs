//! The Python face of fibers: `anywait.lowlevel.Fiber` and `current` (`switch` and
//! `suspend` are in `entry`).
//!
//! Argument checks and error wording live here; the switching lives in `switch`.

use std::cell::UnsafeCell;
use std::ptr;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{ffi, PyTraverseError, PyVisit};

use super::body::Body;
use super::lifetime::{self, KillOutcome};
use super::switch::{self, FiberCore, Status};
use super::wire::Msg;

/// A function running on its own native stack, which it can leave and re-enter at any
/// call depth with `suspend()` / `switch()`.
#[pyclass(module = "anywait.lowlevel", name = "Fiber", frozen, weakref)]
pub(crate) struct PyFiber {
    /// None once the core was handed to its owner thread to be unwound there.
    core: UnsafeCell<Option<Box<FiberCore>>>,
}

// SAFETY: every access to `core` happens with the GIL held, which serialises threads;
// FiberCore itself refuses to run on any thread but its owner's, and a core only leaves
// this object through `lifetime::place_orphan` (during finalization, GIL held).
unsafe impl Send for PyFiber {}
// SAFETY: as above.
unsafe impl Sync for PyFiber {}

impl PyFiber {
    fn core(&self) -> *mut FiberCore {
        // SAFETY: GIL held by every caller; the Box's address is stable, and the
        // returned pointer is only used while this object (its owner) is alive.
        unsafe {
            (*self.core.get())
                .as_deref_mut()
                .map_or(ptr::null_mut(), |c| c as *mut _)
        }
    }

    fn status(&self) -> Status {
        let core = self.core();
        if core.is_null() {
            return Status::Dead;
        }
        // SAFETY: non-null core owned by self, read under the GIL.
        unsafe { (*core).status() }
    }

    /// A fiber that will run `func(*args, **kwargs)` in a copy of the current context.
    pub(crate) fn build(
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let py = func.py();
        if !func.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "Fiber() needs a callable to run, got {}",
                func.get_type().name()?
            )));
        }
        // SAFETY: GIL held; returns a new reference or NULL with an exception set.
        let context = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent()) }?;
        let body = Body::Call {
            func: func.clone().unbind(),
            args: args.clone().unbind(),
            kwargs: kwargs.map(|k| k.clone().unbind()),
        };
        Ok(Self {
            core: UnsafeCell::new(Some(Box::new(FiberCore::new(
                body,
                Some(context.unbind()),
            )?))),
        })
    }

    pub(crate) fn resume(slf: &Bound<'_, Self>, msg: Msg) -> PyResult<Py<PyAny>> {
        let core = slf.get().core();
        if core.is_null() {
            return Err(PyRuntimeError::new_err("cannot switch to a finished fiber"));
        }
        // SAFETY: the core is owned by `slf`, which this call keeps alive.
        unsafe { switch::resume(slf.py(), core, slf.as_ptr(), msg) }
    }

    /// Runs when the object is garbage (tp_finalize): unwinds a suspended fiber.
    fn finalize(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) {
        let core = self.core();
        if core.is_null() || self.status() != Status::Suspended {
            return;
        }
        // SAFETY: our live, suspended core, moved out only by the closure; GIL held and
        // `obj` (this object) alive for tp_finalize.
        unsafe {
            lifetime::end_suspended(py, core, obj, || {
                (*self.core.get()).take().expect("core present")
            })
        };
    }
}

#[pymethods]
impl PyFiber {
    #[new]
    #[pyo3(signature = (func, /, *args, **kwargs))]
    fn new(
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        // Calls to the class normally take the vectorcall constructor in `entry`;
        // this is the path for `Fiber.__new__(Fiber, ...)` and the like.
        Self::build(func, args, kwargs)
    }

    // `switch` is installed by `entry`.

    /// Raises `exc` inside the fiber at its suspension point.
    fn throw(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let is_exception = exc.is_instance_of::<pyo3::exceptions::PyBaseException>()
            || exc.cast::<pyo3::types::PyType>().is_ok_and(|t| {
                t.is_subclass_of::<pyo3::exceptions::PyBaseException>()
                    .unwrap_or(false)
            });
        if !is_exception {
            return Err(PyTypeError::new_err(
                "exceptions must be classes or instances deriving from BaseException",
            ));
        }
        Self::resume(slf, Err(PyErr::from_value(exc.clone())))
    }

    /// Unwinds a suspended fiber with FiberExit.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let core = slf.get().core();
        match slf.get().status() {
            Status::Dead => Ok(()),
            Status::Running => Err(PyRuntimeError::new_err("cannot close a running fiber")),
            Status::NotStarted => {
                // SAFETY: our core (non-null: status is not Dead), GIL held.
                unsafe { (*core).close_unstarted() };
                Ok(())
            }
            // SAFETY: our core, suspended; `slf` is kept alive by this call.
            Status::Suspended => match unsafe { lifetime::kill(py, core, slf.as_ptr()) } {
                KillOutcome::Died => Ok(()),
                KillOutcome::Raised(err) => Err(err),
                KillOutcome::Refused => Err(PyRuntimeError::new_err("fiber ignored FiberExit")),
            },
        }
    }

    /// Whether the fiber has started running.
    #[getter]
    fn started(&self) -> bool {
        self.status() != Status::NotStarted
    }

    /// Whether the fiber has finished (returned, raised, was closed, or never will run).
    #[getter]
    fn dead(&self) -> bool {
        self.status() == Status::Dead
    }

    /// Whether the fiber is executing, or waiting for a fiber it resumed.
    #[getter]
    fn running(&self) -> bool {
        self.status() == Status::Running
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let state = match slf.get().status() {
            Status::NotStarted => "not started",
            Status::Running => "running",
            Status::Suspended => "suspended",
            Status::Dead => "dead",
        };
        format!(
            "<anywait.lowlevel.Fiber object at {:p} ({state})>",
            slf.as_ptr()
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let core = self.core();
        if !core.is_null() {
            // SAFETY: GC traversal runs with the GIL held and never while our own code
            // is mutating the core (it allocates nothing mid-update).
            for obj in unsafe { (*core).gc_referents() } {
                visit.call(obj)?;
            }
            // The frames of a suspended fiber are reached only through this object.
            // SAFETY: as above.
            unsafe { (*core).visit_suspended_frames(&[], &visit) }?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let core = self.core();
        if !core.is_null() {
            // SAFETY: as in __traverse__.
            unsafe { (*core).clear_unstarted() };
        }
    }
}

/// `tp_finalize` of `Fiber` (installed by `finalizer::install`).
pub(crate) unsafe extern "C" fn finalize_fiber(obj: *mut ffi::PyObject) {
    // SAFETY: CPython calls tp_finalize with the GIL held.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: CPython calls tp_finalize with a live object of our type.
    let slf = unsafe { Bound::from_borrowed_ptr(py, obj).cast_into_unchecked::<PyFiber>() };
    // Only a suspended fiber has anything to unwind: the common case returns here.
    if slf.get().status() != Status::Suspended {
        return;
    }
    lifetime::unless_shutting_down(|py| slf.get().finalize(py, slf.as_any()));
}

/// The running fiber, or None.
#[pyfunction]
pub(crate) fn current(py: Python<'_>) -> Option<Py<PyAny>> {
    switch::current_object(py)
}
