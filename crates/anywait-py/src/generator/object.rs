//! The stackful generator object: what `@anywait.generator` functions return.
//!
//! It answers as a native generator does: `send`/`throw`/`close` and iteration, the
//! same errors for a running, finished or unstarted generator, PEP 479 (a
//! `StopIteration` escaping the body becomes `RuntimeError`), `close()` returning the
//! body's return value (3.13+), and `GeneratorExit` thrown in when it is collected
//! while suspended. Its frames are not `gi_frame`: they live on the fiber's own stack.

use std::cell::UnsafeCell;
use std::ptr;

use pyo3::exceptions::{
    PyBaseException, PyDeprecationWarning, PyGeneratorExit, PyRuntimeError, PyStopIteration,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTraceback, PyTuple, PyType};
use pyo3::{ffi, PyTraverseError, PyVisit};

use super::GENERATOR;
use crate::fiber::lifetime;
use crate::fiber::{resume_wire, Body, FiberCore, Status, Wire};

/// A generator whose body yields with `anywait.yield_()` from any depth.
#[pyclass(module = "anywait", name = "StackfulGenerator", frozen, weakref)]
pub(crate) struct StackfulGenerator {
    /// None once the core was handed to its owner thread to be unwound there.
    core: UnsafeCell<Option<Box<FiberCore>>>,
    name: Py<PyAny>,
    qualname: Py<PyAny>,
}

// SAFETY: every access to `core` happens with the GIL held, which serialises threads;
// the core refuses to run on any thread but its owner's, and only leaves this object
// through `lifetime::place_orphan` (during finalization, GIL held).
unsafe impl Send for StackfulGenerator {}
// SAFETY: as above.
unsafe impl Sync for StackfulGenerator {}

/// How one resume of a generator ended.
pub(crate) enum Resumed {
    Yielded(Py<PyAny>),
    Returned(Py<PyAny>),
    Raised(PyErr),
}

impl StackfulGenerator {
    fn core(&self) -> *mut FiberCore {
        // SAFETY: GIL held by every caller; the Box's address is stable and the pointer
        // is used only while self is alive.
        unsafe {
            (*self.core.get())
                .as_deref_mut()
                .map_or(ptr::null_mut(), |c| c as *mut _)
        }
    }

    /// The fiber's status, with a relaying fiber (waiting in `await_`) counted as
    /// running: it is executing, as far as anyone else can tell.
    pub(crate) fn status(&self) -> Status {
        let core = self.core();
        if core.is_null() {
            return Status::Dead;
        }
        // SAFETY: non-null core owned by self, read under the GIL.
        let (status, relaying) = unsafe { ((*core).status(), (*core).relaying()) };
        if relaying {
            Status::Running
        } else {
            status
        }
    }

    /// Resumes the generator with `msg` (a value to send, or an exception to throw).
    pub(crate) fn resume(slf: &Bound<'_, Self>, msg: Wire) -> Resumed {
        let py = slf.py();
        let me = slf.get();
        let core = me.core();
        match me.status() {
            Status::Suspended => {}
            Status::Running => {
                msg.release(py);
                return Resumed::Raised(PyValueError::new_err("generator already executing"));
            }
            Status::Dead => {
                return match msg {
                    Wire::Value(value) => {
                        drop(value.into_bound(py));
                        Resumed::Raised(PyStopIteration::new_err(()))
                    }
                    Wire::Raise(exc) => Resumed::Raised(crate::fiber::error_from(py, exc)),
                };
            }
            Status::NotStarted => {
                if let Wire::Value(value) = &msg {
                    if !value.is_none(py) {
                        msg.release(py);
                        return Resumed::Raised(PyTypeError::new_err(
                            "can't send non-None value to a just-started generator",
                        ));
                    }
                }
            }
        }
        // SAFETY: the core is owned by `slf`, which this call keeps alive.
        let out = unsafe { resume_wire(py, core, slf.as_ptr(), msg) };
        // SAFETY: as above.
        if unsafe { (*core).status() } != Status::Dead {
            return match out {
                Wire::Value(value) => Resumed::Yielded(value),
                // A generator's fiber suspends only with a value (`yield_`); an error
                // here is the resume refused (another thread, say).
                Wire::Raise(exc) => Resumed::Raised(crate::fiber::error_from(py, exc)),
            };
        }
        match out {
            Wire::Value(value) => Resumed::Returned(value),
            Wire::Raise(exc) => Resumed::Raised(escaped(py, crate::fiber::error_from(py, exc))),
        }
    }

    /// Runs when the object is garbage (tp_finalize): closes a suspended generator.
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

/// What a generator whose body raised `err` raises: PEP 479 turns a `StopIteration`
/// escaping the body into `RuntimeError`, so that it cannot end the consumer's loop.
fn escaped(py: Python<'_>, err: PyErr) -> PyErr {
    if !err.is_instance_of::<PyStopIteration>(py) {
        return err;
    }
    let replaced = PyRuntimeError::new_err("generator raised StopIteration");
    let cause = err.value(py).clone();
    let value = replaced.value(py);
    value.setattr("__cause__", &cause).ok();
    value.setattr("__context__", &cause).ok();
    replaced
}

/// `StopIteration` carrying a generator's return value.
pub(crate) fn stop_iteration(py: Python<'_>, value: Py<PyAny>) -> PyErr {
    if value.is_none(py) {
        return PyStopIteration::new_err(());
    }
    PyStopIteration::new_err((value,))
}

impl Resumed {
    /// The outcome as `send()`'s result: the yielded value, or an exception.
    pub(crate) fn into_send_result(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Resumed::Yielded(value) => Ok(value),
            Resumed::Returned(value) => Err(stop_iteration(py, value)),
            Resumed::Raised(err) => Err(err),
        }
    }
}

/// The exception `throw(typ, val, tb)` raises, built as the interpreter builds it.
fn thrown_exception<'py>(
    typ: &Bound<'py, PyAny>,
    val: Option<&Bound<'py, PyAny>>,
    tb: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let val = val.filter(|v| !v.is_none());
    let tb = tb.filter(|t| !t.is_none());
    if let Some(tb) = tb {
        if !tb.is_instance_of::<PyTraceback>() {
            return Err(PyTypeError::new_err(
                "throw() third argument must be a traceback object",
            ));
        }
    }
    let exc = if typ.is_instance_of::<PyBaseException>() {
        if val.is_some() {
            return Err(PyTypeError::new_err(
                "instance exception may not have a separate value",
            ));
        }
        typ.clone()
    } else if typ
        .cast::<PyType>()
        .is_ok_and(|t| t.is_subclass_of::<PyBaseException>().unwrap_or(false))
    {
        match val {
            None => typ.call0()?,
            Some(v) if v.is_instance(typ)? => v.clone(),
            Some(v) => match v.cast::<PyTuple>() {
                Ok(args) => typ.call1(args.clone())?,
                Err(_) => typ.call1((v,))?,
            },
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "exceptions must be classes or instances deriving from BaseException, not {}",
            typ.get_type().name()?
        )));
    };
    if let Some(tb) = tb {
        exc.call_method1("with_traceback", (tb,))?;
    }
    Ok(exc)
}

#[pymethods]
impl StackfulGenerator {
    /// Internal: `@anywait.generator` makes these; `func(*args, **kwargs)` is the body.
    #[new]
    #[pyo3(signature = (func, args, kwargs=None, /))]
    fn new(
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let py = func.py();
        if !func.is_callable() {
            return Err(PyTypeError::new_err(
                "a stackful generator needs a callable body",
            ));
        }
        let name = func.getattr("__name__").unwrap_or_else(|_| {
            func.repr()
                .map_or_else(|_| py.None().into_bound(py), Bound::into_any)
        });
        let qualname = func
            .getattr("__qualname__")
            .unwrap_or_else(|_| name.clone());
        let body = Body::Call {
            func: func.clone().unbind(),
            args: args.clone().unbind(),
            kwargs: kwargs.filter(|k| !k.is_empty()).map(|k| k.clone().unbind()),
        };
        Ok(Self {
            core: UnsafeCell::new(Some(Box::new(FiberCore::new_linked(body, GENERATOR)?))),
            name: name.unbind(),
            qualname: qualname.unbind(),
        })
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    // The type's `tp_iternext` is replaced by `entry::iternext`; this is `__next__`
    // looked up by name.
    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::resume(slf, Wire::Value(slf.py().None())).into_send_result(slf.py())
    }

    /// Resumes the generator, making the `yield_()` it is suspended in return `value`;
    /// returns the next value it yields.
    fn send(slf: &Bound<'_, Self>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        Self::resume(slf, Wire::Value(value)).into_send_result(slf.py())
    }

    /// Raises an exception at the `yield_()` the generator is suspended in; returns the
    /// next value it yields.
    #[pyo3(signature = (typ, val=None, tb=None, /))]
    fn throw(
        slf: &Bound<'_, Self>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if (val.is_some() || tb.is_some()) && cfg!(Py_3_12) {
            PyErr::warn(
                py,
                &py.get_type::<PyDeprecationWarning>(),
                c"the (type, exc, tb) signature of throw() is deprecated, use the single-arg signature instead.",
                1,
            )?;
        }
        let exc = thrown_exception(typ, val, tb)?;
        let wire = Wire::raise(py, PyErr::from_value(exc));
        Self::resume(slf, wire).into_send_result(py)
    }

    /// Raises `GeneratorExit` at the `yield_()` the generator is suspended in, so that
    /// its `finally` blocks run; returns its return value if it returns (3.13+).
    fn close(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let core = slf.get().core();
        match slf.get().status() {
            Status::Dead => return Ok(py.None()),
            Status::NotStarted => {
                // SAFETY: our core (non-null: status is not Dead), GIL held.
                unsafe { (*core).close_unstarted() };
                return Ok(py.None());
            }
            Status::Running => {
                return Err(PyValueError::new_err("generator already executing"));
            }
            Status::Suspended => {}
        }
        let exit = Wire::raise(py, PyGeneratorExit::new_err(()));
        match Self::resume(slf, exit) {
            Resumed::Yielded(value) => {
                drop(value.into_bound(py));
                Err(PyRuntimeError::new_err("generator ignored GeneratorExit"))
            }
            Resumed::Returned(value) if cfg!(Py_3_13) => Ok(value),
            Resumed::Returned(_) => Ok(py.None()),
            Resumed::Raised(err) if err.is_instance_of::<PyGeneratorExit>(py) => Ok(py.None()),
            Resumed::Raised(err) => Err(err),
        }
    }

    /// Whether the generator is executing (or waiting in `await_` inside it).
    #[getter]
    fn gi_running(&self) -> bool {
        self.status() == Status::Running
    }

    /// Whether the generator is suspended in a `yield_()`.
    #[getter]
    fn gi_suspended(&self) -> bool {
        self.status() == Status::Suspended
    }

    #[getter]
    fn __name__(&self, py: Python<'_>) -> Py<PyAny> {
        self.name.clone_ref(py)
    }

    #[getter]
    fn __qualname__(&self, py: Python<'_>) -> Py<PyAny> {
        self.qualname.clone_ref(py)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Ok(format!(
            "<anywait stackful generator object {} at {:p}>",
            slf.get().qualname.bind(slf.py()).str()?,
            slf.as_ptr()
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.name)?;
        visit.call(&self.qualname)?;
        let core = self.core();
        if !core.is_null() {
            // SAFETY: GC traversal runs with the GIL held, never mid-update of the core.
            for obj in unsafe { (*core).gc_referents() } {
                visit.call(obj)?;
            }
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

/// `tp_finalize` of `StackfulGenerator` (installed by `finalizer::install`).
pub(crate) unsafe extern "C" fn finalize_generator(obj: *mut ffi::PyObject) {
    // SAFETY: CPython calls tp_finalize with the GIL held.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: CPython calls tp_finalize with a live object of our type.
    let slf =
        unsafe { Bound::from_borrowed_ptr(py, obj).cast_into_unchecked::<StackfulGenerator>() };
    if slf.get().status() != Status::Suspended {
        return;
    }
    // As for fibers: no generator code runs during shutdown.
    lifetime::unless_shutting_down(|py| slf.get().finalize(py, slf.as_any()));
}
