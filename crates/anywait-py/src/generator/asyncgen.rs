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

use pyo3::exceptions::{
    PyGeneratorExit, PyRuntimeError, PyStopAsyncIteration, PyStopIteration, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{ffi, PyTraverseError, PyVisit};

use super::object::stop_iteration;
use super::ASYNC_GENERATOR;
use crate::fiber::lifetime::{self, KillOutcome, Orphan};
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
    running: Cell<bool>,
}

// SAFETY: every access happens with the GIL held, which serialises threads; the core
// refuses to run on any thread but its owner's (as for `StackfulGenerator`).
unsafe impl Send for StackfulAsyncGenerator {}
// SAFETY: as above.
unsafe impl Sync for StackfulAsyncGenerator {}

/// Which call made a step, for its first message and its errors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Send,
    Throw,
    Close,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Send => "anext",
            Kind::Throw => "athrow",
            Kind::Close => "aclose",
        }
    }
}

/// How one resume of the fiber ended, as a step sees it.
enum Outcome {
    /// The body awaits: hand this to the loop.
    Trap(Py<PyAny>),
    Yielded(Py<PyAny>),
    Returned,
    Raised(PyErr),
}

impl StackfulAsyncGenerator {
    fn core(&self) -> *mut FiberCore {
        // SAFETY: GIL held by every caller; the Box's address is stable.
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

    /// `firstiter(self)` once, remembering the `finalizer` then in effect.
    fn call_hooks(slf: &Bound<'_, Self>) -> PyResult<()> {
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
    fn resume(slf: &Bound<'_, Self>, msg: Wire) -> Outcome {
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
        // SAFETY: non-null core owned by self.
        let placed = lifetime::place_orphan(py, unsafe { &*core }, || {
            // SAFETY: GIL held; `core` is not used after being moved out.
            unsafe { (*me.core.get()).take() }.expect("core present")
        });
        if let Orphan::KillHere = placed {
            // SAFETY: our core, suspended, on its own thread; `slf` is alive.
            match unsafe { lifetime::kill(py, core, slf.as_ptr()) } {
                KillOutcome::Died => {}
                KillOutcome::Raised(err) => err.write_unraisable(py, Some(slf.as_any())),
                // SAFETY: our core, still owned by self.
                KillOutcome::Refused => lifetime::refused_to_die(py, unsafe { &*core }),
            }
        }
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
        })
    }

    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__(slf: &Bound<'_, Self>) -> AsyncGenStep {
        AsyncGenStep::new(slf, Kind::Send, slf.py().None())
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

/// Where a step is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StepState {
    Fresh,
    /// Resumed the generator, which awaits: answers from the loop go back in.
    Awaiting,
    Done,
}

/// The awaitable of one `__anext__`/`asend`/`athrow`/`aclose`.
#[pyclass(module = "anywait", name = "StackfulAsyncGenStep", frozen)]
pub(crate) struct AsyncGenStep {
    agen: Py<StackfulAsyncGenerator>,
    kind: Kind,
    /// The value to send, or the exception to throw, on the first resume.
    first: UnsafeCell<Option<Py<PyAny>>>,
    state: Cell<StepState>,
}

// SAFETY: as for the generator: GIL-serialised access only.
unsafe impl Send for AsyncGenStep {}
// SAFETY: as above.
unsafe impl Sync for AsyncGenStep {}

impl AsyncGenStep {
    fn new(agen: &Bound<'_, StackfulAsyncGenerator>, kind: Kind, first: Py<PyAny>) -> Self {
        Self {
            agen: agen.clone().unbind(),
            kind,
            first: UnsafeCell::new(Some(first)),
            state: Cell::new(StepState::Fresh),
        }
    }

    /// The first resume of the step: checks, then the message its kind sends, or
    /// `thrown` (an exception thrown into the step before it started goes into the
    /// generator, as for a native step).
    fn start(&self, py: Python<'_>, thrown: Option<Wire>) -> StepResult {
        let agen = self.agen.bind(py);
        let me = agen.get();
        if me.running.get() {
            self.state.set(StepState::Done);
            if let Some(thrown) = thrown {
                thrown.release(py);
            }
            return StepResult::Error(PyRuntimeError::new_err(format!(
                "{}(): asynchronous generator is already running",
                self.kind.name()
            )));
        }
        // SAFETY: GIL held; taken once (state Fresh).
        let first = unsafe { (*self.first.get()).take() }.expect("first message");
        let status = me.status();
        if status == Status::Dead {
            self.state.set(StepState::Done);
            if let Some(Wire::Raise(exc)) = thrown {
                return StepResult::Error(error_from(py, exc));
            }
            return match self.kind {
                Kind::Send => StepResult::Error(PyStopAsyncIteration::new_err(())),
                Kind::Throw | Kind::Close => StepResult::Value(py.None()),
            };
        }
        if status == Status::Running {
            self.state.set(StepState::Done);
            return StepResult::Error(PyValueError::new_err("async generator already executing"));
        }
        if let Err(err) = StackfulAsyncGenerator::call_hooks(agen) {
            return StepResult::Error(err);
        }
        let msg = match (self.kind, thrown) {
            (_, Some(thrown)) => {
                drop(first.into_bound(py));
                thrown
            }
            (kind, None) => match kind {
                Kind::Send => Wire::Value(first),
                Kind::Throw => Wire::raise(py, PyErr::from_value(first.into_bound(py))),
                Kind::Close if status == Status::NotStarted => {
                    // SAFETY: our core, not started.
                    unsafe { (*me.core()).close_unstarted() };
                    self.state.set(StepState::Done);
                    return StepResult::Value(py.None());
                }
                Kind::Close => Wire::raise(py, PyGeneratorExit::new_err(())),
            },
        };
        me.running.set(true);
        self.finish(py, StackfulAsyncGenerator::resume(agen, msg))
    }

    /// What the step does with one resume's outcome.
    fn finish(&self, py: Python<'_>, outcome: Outcome) -> StepResult {
        if let Outcome::Trap(trap) = outcome {
            self.state.set(StepState::Awaiting);
            return StepResult::Trap(trap);
        }
        self.state.set(StepState::Done);
        self.agen.get().running.set(false);
        match (self.kind, outcome) {
            (_, Outcome::Trap(_)) => unreachable!(),
            (Kind::Close, Outcome::Yielded(value)) => {
                drop(value.into_bound(py));
                StepResult::Error(PyRuntimeError::new_err(
                    "async generator ignored GeneratorExit",
                ))
            }
            (_, Outcome::Yielded(value)) => StepResult::Value(value),
            (Kind::Send, Outcome::Returned) => StepResult::Error(PyStopAsyncIteration::new_err(())),
            (_, Outcome::Returned) => StepResult::Value(py.None()),
            (Kind::Close, Outcome::Raised(err))
                if err.is_instance_of::<PyGeneratorExit>(py)
                    || err.is_instance_of::<PyStopAsyncIteration>(py) =>
            {
                StepResult::Value(py.None())
            }
            (_, Outcome::Raised(err)) => StepResult::Error(err),
        }
    }

    /// Sends the loop's answer (a value or an exception) to the awaiting generator.
    fn answer(slf: &Bound<'_, Self>, msg: Wire) -> StepResult {
        let py = slf.py();
        let me = slf.get();
        match me.state.get() {
            StepState::Fresh => match msg {
                Wire::Raise(_) => me.start(py, Some(msg)),
                Wire::Value(value) => {
                    drop(value.into_bound(py));
                    me.start(py, None)
                }
            },
            StepState::Awaiting => {
                let agen = me.agen.bind(py);
                me.finish(py, StackfulAsyncGenerator::resume(agen, msg))
            }
            StepState::Done => {
                msg.release(py);
                StepResult::Error(PyRuntimeError::new_err(
                    "cannot reuse already awaited __anext__()/asend()",
                ))
            }
        }
    }
}

/// What one resume of a step gives its awaiter.
enum StepResult {
    /// A trap for the loop (the step is not over).
    Trap(Py<PyAny>),
    /// The step's result.
    Value(Py<PyAny>),
    Error(PyErr),
}

impl StepResult {
    /// As an iterator's `__next__`/`send` gives it: a result is `StopIteration(value)`.
    fn into_iter_result(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            StepResult::Trap(trap) => Ok(trap),
            // Always carrying the value, None included: it is the awaited result.
            StepResult::Value(value) if value.is_none(py) => {
                Err(PyStopIteration::new_err((value,)))
            }
            StepResult::Value(value) => Err(stop_iteration(py, value)),
            StepResult::Error(err) => Err(err),
        }
    }
}

/// `am_send` of the step: what the interpreter's `await` calls, with no
/// `StopIteration` made for the result.
unsafe extern "C" fn step_am_send(
    slf: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    result: *mut *mut ffi::PyObject,
) -> ffi::PySendResult {
    // SAFETY: CPython calls am_send with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: CPython calls the slot of our type with an instance and a borrowed
        // argument (possibly NULL for None, by some callers).
        let (slf, arg) = unsafe {
            let slf = Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<AsyncGenStep>();
            let arg = if arg.is_null() {
                py.None()
            } else {
                Bound::from_borrowed_ptr(py, arg).unbind()
            };
            (slf, arg)
        };
        AsyncGenStep::answer(&slf, Wire::Value(arg))
    }));
    let step = outcome.unwrap_or_else(|_| crate::fatal::fatal("a Rust panic reached am_send"));
    let (status, value) = match step {
        StepResult::Trap(trap) => (ffi::PySendResult::PYGEN_NEXT, trap.into_ptr()),
        StepResult::Value(value) => (ffi::PySendResult::PYGEN_RETURN, value.into_ptr()),
        StepResult::Error(err) => {
            err.restore(py);
            (ffi::PySendResult::PYGEN_ERROR, ptr::null_mut())
        }
    };
    // SAFETY: `result` is the out-pointer CPython passed.
    unsafe { *result = value };
    status
}

/// `am_await` of the step: the step is its own iterator (PyO3's `__await__` stays for
/// lookups by name; the interpreter's `await` takes this slot).
unsafe extern "C" fn step_am_await(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls the slot with a live instance and the GIL held; the new
    // reference is the slot's result.
    unsafe { ffi::Py_NewRef(slf) }
}

/// `am_anext` of the generator: one new step (the call `async for` makes per item).
unsafe extern "C" fn generator_am_anext(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls the slot with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: a live instance of our type, borrowed for the call.
        let slf = unsafe {
            Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<StackfulAsyncGenerator>()
        };
        Py::new(py, AsyncGenStep::new(&slf, Kind::Send, py.None()))
    }));
    match made.unwrap_or_else(|_| crate::fatal::fatal("a Rust panic reached am_anext")) {
        Ok(step) => step.into_ptr(),
        Err(err) => {
            err.restore(py);
            ptr::null_mut()
        }
    }
}

/// Installs the direct async slots: the step's `am_send` and `am_await`, and the
/// generator's `am_anext` (both types have `tp_as_async`, from PyO3's `__await__` and
/// `__anext__`). PyO3's trampolines were a third of a native `__anext__` each.
pub(crate) fn install_async_slots(py: Python<'_>) -> PyResult<()> {
    use pyo3::type_object::PyTypeInfo;
    let step = AsyncGenStep::type_object_raw(py);
    let agen = StackfulAsyncGenerator::type_object_raw(py);
    // SAFETY: our own heap types, before any instance exists; `tp_as_async` points into
    // each heap type object, which CPython lets its creator fill in.
    unsafe {
        let (step_slots, agen_slots) = ((*step).tp_as_async, (*agen).tp_as_async);
        if step_slots.is_null() || agen_slots.is_null() {
            return Err(PyRuntimeError::new_err(
                "the async generator types have no tp_as_async",
            ));
        }
        (*step_slots).am_send = Some(step_am_send);
        (*step_slots).am_await = Some(step_am_await);
        (*agen_slots).am_anext = Some(generator_am_anext);
        ffi::PyType_Modified(step);
        ffi::PyType_Modified(agen);
    }
    Ok(())
}

#[pymethods]
impl AsyncGenStep {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::answer(slf, Wire::Value(slf.py().None())).into_iter_result(slf.py())
    }

    fn send(slf: &Bound<'_, Self>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        Self::answer(slf, Wire::Value(value)).into_iter_result(slf.py())
    }

    #[pyo3(signature = (typ, val=None, tb=None, /))]
    fn throw(
        slf: &Bound<'_, Self>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let exc = if typ.is_instance_of::<pyo3::exceptions::PyBaseException>() {
            typ.clone()
        } else {
            match val.filter(|v| !v.is_none()) {
                Some(v) => typ.call1((v,))?,
                None => typ.call0()?,
            }
        };
        if let Some(tb) = tb.filter(|t| !t.is_none()) {
            exc.call_method1("with_traceback", (tb,))?;
        }
        Self::answer(slf, Wire::raise(py, PyErr::from_value(exc))).into_iter_result(py)
    }

    /// Abandons the step (the coroutine awaiting it was closed): the generator stays
    /// suspended where it awaited, and is no longer running.
    fn close(&self, py: Python<'_>) {
        if self.state.replace(StepState::Done) == StepState::Awaiting {
            self.agen.get().running.set(false);
        }
        let _ = py;
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
    // SAFETY: no preconditions.
    if unsafe { ffi::Py_IsInitialized() } == 0 || crate::pystate::layout::interpreter_finalizing() {
        return;
    }
    Python::attach(|py| {
        let pending = PyErr::take(py);
        StackfulAsyncGenerator::finalize(&slf);
        if let Some(err) = pending {
            err.restore(py);
        }
    });
}
