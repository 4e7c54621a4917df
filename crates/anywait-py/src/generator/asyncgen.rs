//! The stackful async generator: what `@anywait.async_generator` functions return.
//!
//! Its body runs on a linked fiber that is a trap sink (`fiber::relay`): `yield_()` at
//! any depth suspends it with a value, and `await_()` (or an `await` in an async body,
//! which runs under `await_`) suspends it with a trap. The consumer's task drives one
//! [`AsyncGenStep`] per `__anext__`/`asend`/`athrow`/`aclose`: the step resumes the
//! fiber, yields each trap to the task's loop and sends the loop's answer back in,
//! until the fiber yields a value (the step's result) or ends. So the consumer needs
//! no portal: the traps leave through the await of the step, as for a native async
//! generator.
//!
//! It answers as a native async generator does (the same errors for a running,
//! finished or unstarted one, PEP 525's conversions, `aclose()` semantics) and calls
//! the interpreter's async-generator hooks: `firstiter` on first use, and on
//! collection, if it has not finished, the `finalizer` (which schedules its
//! `aclose()` on the loop that first iterated it); with no hooks it is closed at once.

use std::cell::{Cell, UnsafeCell};
use std::ptr;

use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{ffi, PyTraverseError, PyVisit};

use super::step::{AsyncGenStep, Kind};
use super::ASYNC_GENERATOR;
use crate::fiber::lifetime;
use crate::fiber::relay;
use crate::fiber::{error_from, resume_wire, Body, FiberCore, Status, Wire};

/// An async generator whose body yields with `anywait.yield_()` from any depth.
#[pyclass(module = "anywait", name = "StackfulAsyncGenerator", frozen, weakref)]
pub(crate) struct StackfulAsyncGenerator {
    core: UnsafeCell<Option<Box<FiberCore>>>,
    name: Py<PyAny>,
    qualname: Py<PyAny>,
    /// Whether `firstiter` was called (on the first step).
    hooks_called: Cell<bool>,
    /// The `finalizer` hook in effect at the first step (None: none).
    finalizer: UnsafeCell<Option<Py<PyAny>>>,
    /// Whether a step is between its first resume and its end (`ag_running`).
    pub(super) running: Cell<bool>,
    /// A done `__anext__` step, reused by the next one (see `AsyncGenStep::next_of`).
    pub(super) spare: UnsafeCell<Option<Py<AsyncGenStep>>>,
}

// SAFETY: every access happens with the GIL held, which serialises threads; the core
// refuses to run on any thread but its owner's (as for `StackfulGenerator`).
unsafe impl Send for StackfulAsyncGenerator {}
// SAFETY: as above.
unsafe impl Sync for StackfulAsyncGenerator {}

/// How one resume of the fiber ended, as a step sees it.
pub(super) enum Outcome {
    /// The body awaits: hand this to the loop.
    Trap(Py<PyAny>),
    Yielded(Py<PyAny>),
    Returned,
    Raised(PyErr),
}

impl StackfulAsyncGenerator {
    pub(super) fn core(&self) -> *mut FiberCore {
        // SAFETY: GIL held by every caller; the Box's address is stable.
        unsafe {
            (*self.core.get())
                .as_deref_mut()
                .map_or(ptr::null_mut(), |c| c as *mut _)
        }
    }

    pub(super) fn status(&self) -> Status {
        let core = self.core();
        if core.is_null() {
            return Status::Dead;
        }
        // SAFETY: non-null core owned by self, read under the GIL.
        unsafe { (*core).status() }
    }

    /// `firstiter(self)` once, remembering the `finalizer` then in effect.
    pub(super) fn call_hooks(slf: &Bound<'_, Self>) -> PyResult<()> {
        let me = slf.get();
        if me.hooks_called.replace(true) {
            return Ok(());
        }
        let py = slf.py();
        let hooks = py.import("sys")?.call_method0("get_asyncgen_hooks")?;
        let firstiter = hooks.get_item(0)?;
        let finalizer = hooks.get_item(1)?;
        if !finalizer.is_none() {
            // SAFETY: GIL held; written once, before any step ran.
            unsafe { *me.finalizer.get() = Some(finalizer.unbind()) };
        }
        if !firstiter.is_none() {
            firstiter.call1((slf,))?;
        }
        Ok(())
    }

    /// Resumes the fiber with `msg`.
    pub(super) fn resume(slf: &Bound<'_, Self>, msg: Wire) -> Outcome {
        let py = slf.py();
        let core = slf.get().core();
        // SAFETY: the core is owned by `slf`, which this call keeps alive.
        let out = unsafe { resume_wire(py, core, slf.as_ptr(), msg) };
        // SAFETY: as above; nothing else holds the core now.
        let c = unsafe { &mut *core };
        if c.status() != Status::Dead {
            return match out {
                Wire::Value(value) if relay::take_trapped(c) => Outcome::Trap(value),
                Wire::Value(value) => Outcome::Yielded(value),
                Wire::Raise(exc) => Outcome::Raised(error_from(py, exc)),
            };
        }
        match out {
            Wire::Value(value) => {
                drop(value.into_bound(py));
                Outcome::Returned
            }
            Wire::Raise(exc) => Outcome::Raised(escaped(py, error_from(py, exc))),
        }
    }

    fn finalize(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let me = slf.get();
        let core = me.core();
        if core.is_null() || me.status() != Status::Suspended || me.running.get() {
            return;
        }
        // SAFETY: GIL held; read once the generator is garbage.
        if let Some(finalizer) = unsafe { (*me.finalizer.get()).as_ref() } {
            if let Err(err) = finalizer.bind(py).call1((slf,)) {
                err.write_unraisable(py, Some(slf.as_any()));
            }
            return;
        }
        // SAFETY: our live, suspended core, moved out only by the closure; GIL held and
        // `slf` alive for tp_finalize.
        unsafe {
            lifetime::end_suspended(py, core, slf.as_any(), || {
                (*me.core.get()).take().expect("core present")
            })
        };
    }
}

/// PEP 525: `StopAsyncIteration` or `StopIteration` escaping the body is RuntimeError.
fn escaped(py: Python<'_>, err: PyErr) -> PyErr {
    let which = if err.is_instance_of::<PyStopAsyncIteration>(py) {
        "StopAsyncIteration"
    } else if err.is_instance_of::<PyStopIteration>(py) {
        "StopIteration"
    } else {
        return err;
    };
    let replaced = PyRuntimeError::new_err(format!("async generator raised {which}"));
    let cause = err.value(py).clone();
    let value = replaced.value(py);
    value.setattr("__cause__", &cause).ok();
    value.setattr("__context__", &cause).ok();
    replaced
}

#[pymethods]
impl StackfulAsyncGenerator {
    /// Internal: `@anywait.async_generator` makes these; `func(*args, **kwargs)` is
    /// the body (a sync callable: async bodies are wrapped to run under `await_`).
    #[new]
    #[pyo3(signature = (func, args, kwargs=None, /))]
    fn new(
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let name = func
            .getattr("__name__")
            .or_else(|_| func.repr().map(Bound::into_any))?;
        let qualname = func
            .getattr("__qualname__")
            .unwrap_or_else(|_| name.clone());
        let body = Body::Call {
            func: func.clone().unbind(),
            args: args.clone().unbind(),
            kwargs: kwargs.filter(|k| !k.is_empty()).map(|k| k.clone().unbind()),
        };
        let mut core = FiberCore::new_linked(body, ASYNC_GENERATOR)?;
        relay::make_trap_sink(&mut core);
        Ok(Self {
            core: UnsafeCell::new(Some(Box::new(core))),
            name: name.unbind(),
            qualname: qualname.unbind(),
            hooks_called: Cell::new(false),
            finalizer: UnsafeCell::new(None),
            running: Cell::new(false),
            spare: UnsafeCell::new(None),
        })
    }

    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__(slf: &Bound<'_, Self>) -> PyResult<Py<AsyncGenStep>> {
        AsyncGenStep::next_of(slf)
    }

    /// The awaitable that resumes the generator with `value` (its next value).
    fn asend(slf: &Bound<'_, Self>, value: Py<PyAny>) -> AsyncGenStep {
        AsyncGenStep::new(slf, Kind::Send, value)
    }

    /// The awaitable that raises `exc` where the generator is suspended.
    fn athrow(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>) -> PyResult<AsyncGenStep> {
        let is_exception = exc.is_instance_of::<pyo3::exceptions::PyBaseException>()
            || exc.cast::<pyo3::types::PyType>().is_ok_and(|t| {
                t.is_subclass_of::<pyo3::exceptions::PyBaseException>()
                    .unwrap_or(false)
            });
        if !is_exception {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "exceptions must be classes or instances deriving from BaseException",
            ));
        }
        let exc = if exc.is_instance_of::<pyo3::exceptions::PyBaseException>() {
            exc.clone()
        } else {
            exc.call0()?
        };
        Ok(AsyncGenStep::new(slf, Kind::Throw, exc.unbind()))
    }

    /// The awaitable that raises `GeneratorExit` where the generator is suspended, so
    /// that its `finally` blocks (which may await) run.
    fn aclose(slf: &Bound<'_, Self>) -> AsyncGenStep {
        AsyncGenStep::new(slf, Kind::Close, slf.py().None())
    }

    #[getter]
    fn ag_running(&self) -> bool {
        self.running.get()
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
            "<anywait stackful async_generator object {} at {:p}>",
            slf.get().qualname.bind(slf.py()).str()?,
            slf.as_ptr()
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.name)?;
        visit.call(&self.qualname)?;
        // SAFETY: GC traversal runs with the GIL held, never mid-update.
        if let Some(finalizer) = unsafe { (*self.finalizer.get()).as_ref() } {
            visit.call(finalizer)?;
        }
        let core = self.core();
        if !core.is_null() {
            // SAFETY: as above.
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

/// `tp_finalize` of `StackfulAsyncGenerator` (installed by `finalizer::install`).
pub(crate) unsafe extern "C" fn finalize_async_generator(obj: *mut ffi::PyObject) {
    // SAFETY: CPython calls tp_finalize with the GIL held.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: CPython calls tp_finalize with a live object of our type.
    let slf = unsafe {
        Bound::from_borrowed_ptr(py, obj).cast_into_unchecked::<StackfulAsyncGenerator>()
    };
    if slf.get().status() != Status::Suspended {
        return;
    }
    lifetime::unless_shutting_down(|_| StackfulAsyncGenerator::finalize(&slf));
}
