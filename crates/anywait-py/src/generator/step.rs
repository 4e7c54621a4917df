//! One step of a stackful async generator: the awaitable that `__anext__`, `asend`,
//! `athrow` and `aclose` return (see `asyncgen`), and its direct async slots.
//!
//! A step resumes the generator's fiber, hands each trap it suspends with to the
//! awaiting task (as the awaitable's next value), sends the loop's answers back in,
//! and ends with the value the generator yields, or with its end.

use std::cell::{Cell, UnsafeCell};
use std::ptr;

use pyo3::exceptions::{
    PyGeneratorExit, PyRuntimeError, PyStopAsyncIteration, PyStopIteration, PyValueError,
};
use pyo3::ffi;
use pyo3::prelude::*;

use super::asyncgen::{Outcome, StackfulAsyncGenerator};
use super::object::stop_iteration;
use crate::fiber::{error_from, Status, Wire};

/// Which call made a step, for its first message and its errors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
    /// The generator, until the step is done: a done step holds nothing, so that the
    /// generator can keep one as its spare (see [`AsyncGenStep::recycle`]) without a
    /// reference cycle, which would delay its finalization to the cyclic GC.
    agen: UnsafeCell<Option<Py<StackfulAsyncGenerator>>>,
    kind: Cell<Kind>,
    /// The value to send, or the exception to throw, on the first resume.
    first: UnsafeCell<Option<Py<PyAny>>>,
    state: Cell<StepState>,
}

// SAFETY: as for the generator: GIL-serialised access only.
unsafe impl Send for AsyncGenStep {}
// SAFETY: as above.
unsafe impl Sync for AsyncGenStep {}

impl AsyncGenStep {
    pub(super) fn new(
        agen: &Bound<'_, StackfulAsyncGenerator>,
        kind: Kind,
        first: Py<PyAny>,
    ) -> Self {
        Self {
            agen: UnsafeCell::new(Some(agen.clone().unbind())),
            kind: Cell::new(kind),
            first: UnsafeCell::new(Some(first)),
            state: Cell::new(StepState::Fresh),
        }
    }

    /// The `__anext__` step of `agen`: its spare (a done step nothing else holds),
    /// made fresh, or a new one. `async for` makes one per item; reusing it saves the
    /// allocation, as CPython's free list of native steps does.
    pub(super) fn next_of(agen: &Bound<'_, StackfulAsyncGenerator>) -> PyResult<Py<Self>> {
        let py = agen.py();
        // SAFETY: GIL held; the spare is only touched here and in `recycle`.
        if let Some(spare) = unsafe { (*agen.get().spare.get()).take() } {
            // SAFETY: a live object; GIL held.
            if unsafe { ffi::Py_REFCNT(spare.as_ptr()) } == 1 {
                let step = spare.get();
                // SAFETY: GIL held; nothing else holds the step, so nothing reads these.
                unsafe {
                    *step.agen.get() = Some(agen.clone().unbind());
                    *step.first.get() = Some(py.None());
                }
                step.kind.set(Kind::Send);
                step.state.set(StepState::Fresh);
                return Ok(spare);
            }
        }
        Py::new(py, Self::new(agen, Kind::Send, py.None()))
    }

    /// The generator, while the step is not done.
    fn agen<'a, 'py>(&'a self, py: Python<'py>) -> &'a Bound<'py, StackfulAsyncGenerator> {
        // SAFETY: GIL held (the token); the field changes only when the step is done.
        unsafe { (*self.agen.get()).as_ref() }
            .expect("a step that is not done has its generator")
            .bind(py)
    }

    /// Once the step is done: lets go of the generator, first offering it this step as
    /// its spare (if it has none) for its next `__anext__`.
    fn recycle(slf: &Bound<'_, Self>) {
        let me = slf.get();
        // SAFETY: GIL held; the step is done, so nothing reads the field any more.
        let Some(agen) = (unsafe { (*me.agen.get()).take() }) else {
            return;
        };
        // A step that ended before its first resume still holds its message: a done
        // step holds nothing (the spare is not traversed by the collector).
        // SAFETY: GIL held; as above.
        let first = unsafe { (*me.first.get()).take() };
        drop(first.map(|f| f.into_bound(slf.py())));
        // SAFETY: GIL held; as in `next_of`.
        let spare = unsafe { &mut *agen.get().spare.get() };
        if spare.is_none() {
            *spare = Some(slf.clone().unbind());
        }
        // Dropping the generator's reference last: it may be the last one, and its
        // finalization may run Python code.
        drop(agen.into_bound(slf.py()));
    }

    /// The first resume of the step: checks, then the message its kind sends, or
    /// `thrown` (an exception thrown into the step before it started goes into the
    /// generator, as for a native step).
    fn start(&self, py: Python<'_>, thrown: Option<Wire>) -> StepResult {
        let agen = self.agen(py);
        let me = agen.get();
        if me.running.get() {
            self.state.set(StepState::Done);
            if let Some(thrown) = thrown {
                thrown.release(py);
            }
            return StepResult::Error(PyRuntimeError::new_err(format!(
                "{}(): asynchronous generator is already running",
                self.kind.get().name()
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
            return match self.kind.get() {
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
        let msg = match (self.kind.get(), thrown) {
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
        self.agen(py).get().running.set(false);
        match (self.kind.get(), outcome) {
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
        let me = slf.get();
        let was_done = me.state.get() == StepState::Done;
        let result = Self::answer_step(slf, msg);
        if !was_done && me.state.get() == StepState::Done {
            Self::recycle(slf);
        }
        result
    }

    fn answer_step(slf: &Bound<'_, Self>, msg: Wire) -> StepResult {
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
                let agen = me.agen(py);
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

/// `tp_iternext` of the step: what the interpreter's `await` calls on 3.12+ (its
/// `SEND` takes `tp_iternext` for None, where 3.11 took `am_send`). The result leaves
/// as `StopIteration(value)`, made directly (not through a lazily built error), as a
/// native step's is.
unsafe extern "C" fn step_iternext(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_iternext with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: CPython calls the slot of our type with an instance, borrowed.
        let slf =
            unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<AsyncGenStep>() };
        AsyncGenStep::answer(&slf, Wire::Value(py.None()))
    }));
    match outcome.unwrap_or_else(|_| crate::fatal::fatal("a Rust panic reached tp_iternext")) {
        StepResult::Trap(trap) => trap.into_ptr(),
        // NULL with no exception set: StopIteration(None).
        StepResult::Value(value) if value.is_none(py) => ptr::null_mut(),
        StepResult::Value(value) => {
            // SAFETY: GIL held; `value` is owned here. StopIteration(value) is made by
            // calling the class, so that a tuple or an exception is its one argument.
            unsafe {
                let stop = ffi::PyObject_CallOneArg(ffi::PyExc_StopIteration, value.as_ptr());
                if !stop.is_null() {
                    ffi::PyErr_SetObject(ffi::PyExc_StopIteration, stop);
                    ffi::Py_DECREF(stop);
                }
            }
            ptr::null_mut()
        }
        StepResult::Error(err) => {
            err.restore(py);
            ptr::null_mut()
        }
    }
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
        AsyncGenStep::next_of(&slf)
    }));
    match made.unwrap_or_else(|_| crate::fatal::fatal("a Rust panic reached am_anext")) {
        Ok(step) => step.into_ptr(),
        Err(err) => {
            err.restore(py);
            ptr::null_mut()
        }
    }
}

/// Installs the direct slots: the step's `am_send`, `am_await` and `tp_iternext`, and the
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
        (*step).tp_iternext = Some(step_iternext);
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
            self.agen(py).get().running.set(false);
        }
        // SAFETY: GIL held; the step is done, so nothing reads the field any more.
        let agen = unsafe { (*self.agen.get()).take() };
        drop(agen.map(|a| a.into_bound(py)));
    }
}
