//! The `Portal` awaitable: it wraps a task's coroutine and stands in for it towards the
//! event loop, running each step on a step worker (see `worker`).
//!
//! The loop calls `send`/`throw` on the portal exactly as it would on the coroutine.
//! Each call is one *step*. If code inside the step calls `await_(aw)`, `await_`
//! drives `aw.__await__()` on the worker itself and forwards each trap it yields out
//! through the portal to the loop (the step is then *open* and the worker stays bound
//! to the portal); the loop's answer comes back in through the next `send`/`throw`.
//!
//! ```text
//!  event loop ── send(v) ──▶ Portal ── resume(v) ──▶ worker: coro.send(v)
//!                                                       └─ sync code ─ await_(aw)
//!                                                                        └─ aw yields trap
//!  event loop ◀── trap ───── Portal ◀── Trap ───────── suspend(trap)
//! ```
//!
//! Towards loops and introspection the portal looks like a coroutine: `send`, `throw`,
//! `close`, `__await__`/`__next__`, `am_send`, and the `cr_*` attributes forwarded to
//! the wrapped coroutine (reporting a task blocked in `await_` as suspended).

use std::cell::UnsafeCell;
use std::ptr;

use pyo3::exceptions::{PyGeneratorExit, PyRuntimeError, PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::{ffi, intern, PyTraverseError, PyVisit};

use super::await_::awaitable_iter;
use super::step::StepOutcome;
use super::worker::{self, StepWorker};
use crate::fatal::fatal;
use crate::fiber::{error_from, Msg, Wire};

extern "C" {
    /// Exported by every supported CPython: raises StopIteration(value) the way a
    /// returning coroutine does (wrapping tuples and exceptions correctly).
    fn _PyGen_SetStopIterationValue(value: *mut ffi::PyObject) -> std::ffi::c_int;
}

/// A coroutine whose steps run on fibers, so that `anywait.await_` works inside it.
#[pyclass(module = "anywait", name = "Portal", frozen, weakref)]
pub(crate) struct Portal {
    /// The coroutine; for a call portal, the tuple `(fn, args, kwargs)`.
    coro: Py<PyAny>,
    /// A call portal runs one sync call, `fn(*args, **kwargs)`, as its only step
    /// (`with_portal_run_sync` without a coroutine around the call).
    call: bool,
    state: UnsafeCell<PortalState>,
}

/// What a step did: yielded (or raised: a `Wire::Raise`), or returned.
enum Advanced {
    Yielded(Wire),
    Returned(Py<PyAny>),
}

struct PortalState {
    /// The worker of the open step, if a step is open.
    worker: Option<Box<StepWorker>>,
    /// A parked worker kept for this portal's next steps: once its steps ran inside
    /// greenlet (see `interop::greenlet`), greenlets they made live on its stack, and
    /// switching into one from another stack would be fatal, so the portal's steps
    /// stay on this worker.
    pinned: Option<Box<StepWorker>>,
    /// True while a step runs (re-entrant send is an error, as for coroutines).
    running: bool,
    /// True once a step returned or raised: the coroutine is done, nothing to finalize.
    finished: bool,
}

// SAFETY: all access to `state` happens with the GIL held; a bound worker is only ever
// resumed on its own thread (`fiber::resume` checks).
unsafe impl Send for Portal {}
// SAFETY: as above.
unsafe impl Sync for Portal {}

impl Portal {
    pub(crate) fn wrap(coro: Py<PyAny>) -> Self {
        Self::new_inner(coro, false)
    }

    /// `send(value)` (installed as a direct method by `portal::entry`).
    pub(crate) fn send_value(&self, py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        self.step(py, Ok(value))
    }

    pub(crate) fn new_inner(coro: Py<PyAny>, call: bool) -> Self {
        Self {
            coro,
            call,
            state: UnsafeCell::new(PortalState {
                worker: None,
                pinned: None,
                running: false,
                finished: false,
            }),
        }
    }

    /// Runs one step (or continues the open one) with `msg`; returns what the step
    /// yields to the loop, or raises StopIteration(value) when the coroutine returns.
    fn step(&self, py: Python<'_>, msg: Msg) -> Msg {
        match self.advance(py, Wire::from_msg(py, msg)) {
            Advanced::Returned(value) => {
                let value = value.into_bound(py);
                // SAFETY: GIL held; sets StopIteration(value) as a coroutine would.
                unsafe { _PyGen_SetStopIterationValue(value.as_ptr()) };
                Err(PyErr::fetch(py))
            }
            Advanced::Yielded(msg) => msg.into_msg(py),
        }
    }

    /// A step, reporting a return as a value (what `am_send` hands back without
    /// making a StopIteration).
    fn advance(&self, py: Python<'_>, msg: Wire) -> Advanced {
        // SAFETY: GIL held; no other reference to the state is live (re-entry is
        // refused below before anything is touched).
        let state = unsafe { &mut *self.state.get() };
        if state.running || (self.call && state.finished) {
            return Advanced::Yielded(refuse(py, state.running, msg));
        }
        let mut worker = match (state.worker.take(), state.pinned.take()) {
            (Some(worker), _) => worker,
            (None, Some(pinned)) => self.bind(pinned),
            (None, None) => match self.begin_step(py) {
                Ok(worker) => worker,
                Err(err) => {
                    msg.release(py);
                    return Advanced::Yielded(Wire::raise(py, err));
                }
            },
        };
        state.running = true;
        let result = worker::resume(py, &mut worker, msg);
        // SAFETY: GIL held; the step's code is done touching the state.
        let state = unsafe { &mut *self.state.get() };
        state.running = false;
        match worker.outcome {
            StepOutcome::Trap => {
                state.worker = Some(worker);
                Advanced::Yielded(result)
            }
            StepOutcome::Yielded if worker.bridge.has_runner() => {
                state.pinned = Some(worker::park(py, worker));
                Advanced::Yielded(result)
            }
            StepOutcome::Yielded => {
                worker::end_step(py, worker);
                Advanced::Yielded(result)
            }
            StepOutcome::Raised => {
                state.finished = true;
                worker::end_step(py, worker);
                Advanced::Yielded(result)
            }
            StepOutcome::Returned => {
                state.finished = true;
                worker::end_step(py, worker);
                match result {
                    Wire::Value(value) => Advanced::Returned(value),
                    raised => Advanced::Yielded(raised),
                }
            }
            // `resume` refused before the worker ran (an error was already pending, say):
            // the worker is untouched, so it is parked again and the error returned.
            StepOutcome::Idle => {
                worker::end_step(py, worker);
                Advanced::Yielded(result)
            }
        }
    }

    /// Takes a parked worker and points it at this portal's coroutine and at the
    /// caller's context.
    fn begin_step(&self, py: Python<'_>) -> PyResult<Box<StepWorker>> {
        Ok(self.bind(worker::take_idle(py)?))
    }

    /// Points a parked worker at this portal's coroutine and at the caller's context.
    fn bind(&self, worker: Box<StepWorker>) -> Box<StepWorker> {
        worker::bind(worker, self.coro.as_ptr(), self.call)
    }
}

/// The error for a step that cannot run: the portal is `running` already, or else a
/// call portal has finished.
#[inline(never)]
#[cold]
fn refuse(py: Python<'_>, running: bool, msg: Wire) -> Wire {
    msg.release(py);
    let err = if running {
        PyValueError::new_err("portal already executing")
    } else {
        // What a finished coroutine says (a coroutine portal's coroutine says it).
        PyRuntimeError::new_err("cannot reuse already awaited coroutine")
    };
    Wire::raise(py, err)
}

#[pymethods]
impl Portal {
    #[new]
    pub(crate) fn new(coro: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self::wrap(awaitable_iter(coro)?.unbind()))
    }

    /// The wrapped coroutine.
    #[getter]
    fn coro(&self, py: Python<'_>) -> Py<PyAny> {
        self.coro.clone_ref(py)
    }

    #[pyo3(signature = (exc, value = None, traceback = None))]
    fn throw(
        &self,
        py: Python<'_>,
        exc: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let err = match value {
            Some(v) if !v.is_none() => PyErr::from_value(v.clone()),
            _ => PyErr::from_value(exc.clone()),
        };
        if let Some(tb) = traceback.filter(|tb| !tb.is_none()) {
            err.value(py).setattr("__traceback__", tb)?;
        }
        self.step(py, Err(err))
    }

    /// Raise GeneratorExit inside the coroutine (at its `await_`, if one is open).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        // SAFETY: GIL held (a read).
        let running = unsafe { (*self.state.get()).running };
        if running {
            return Err(PyValueError::new_err("portal already executing"));
        }
        // Through a step, so that code in `finally` blocks may still `await_`.
        match self.step(py, Err(PyGeneratorExit::new_err(()))) {
            Ok(_) => Err(PyRuntimeError::new_err("coroutine ignored GeneratorExit")),
            Err(e)
                if e.is_instance_of::<PyGeneratorExit>(py)
                    || e.is_instance_of::<PyStopIteration>(py) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.step(py, Ok(py.None()))
    }

    #[getter]
    fn cr_frame(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        forward(self.coro.bind(py), &["cr_frame", "gi_frame"])
    }

    #[getter]
    fn cr_await(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        forward(self.coro.bind(py), &["cr_await", "gi_yieldfrom"])
    }

    #[getter]
    fn cr_code(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        forward(self.coro.bind(py), &["cr_code", "gi_code"])
    }

    /// True while a step runs. A coroutine blocked in `await_` is *executing* to
    /// CPython (its frame is on the worker's stack), but to the loop the task is
    /// suspended, as it would be at a native `await`: the portal reports that.
    #[getter]
    fn cr_running(&self, py: Python<'_>) -> PyResult<bool> {
        // SAFETY: GIL held (a read).
        let state = unsafe { &*self.state.get() };
        if state.running || state.worker.is_some() {
            return Ok(state.running);
        }
        forward(self.coro.bind(py), &["cr_running", "gi_running"])?
            .bind(py)
            .is_truthy()
    }

    /// True between steps of a started coroutine (also while blocked in `await_`), as
    /// for a native coroutine; `inspect.getcoroutinestate()` reads it.
    #[getter]
    fn cr_suspended(&self, py: Python<'_>) -> PyResult<bool> {
        // SAFETY: GIL held (a read).
        let state = unsafe { &*self.state.get() };
        if state.running || state.worker.is_some() {
            return Ok(!state.running);
        }
        forward(self.coro.bind(py), &["cr_suspended", "gi_suspended"])?
            .bind(py)
            .is_truthy()
    }

    /// 3.15's `cr_state` (what `inspect.getcoroutinestate()` reads there), with the
    /// same view of a step and of `await_` as `cr_running` and `cr_suspended`.
    #[cfg(Py_3_15)]
    #[getter]
    fn cr_state(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        // SAFETY: GIL held (a read).
        let state = unsafe { &*self.state.get() };
        if state.running {
            return Ok(intern!(py, "CORO_RUNNING").clone().into_any().unbind());
        }
        if state.worker.is_some() {
            return Ok(intern!(py, "CORO_SUSPENDED").clone().into_any().unbind());
        }
        // A generator-based coroutine names its states GEN_*; say them as CORO_*.
        let native = forward(self.coro.bind(py), &["cr_state", "gi_state"])?;
        let text = native.bind(py).str()?.to_string();
        match text.strip_prefix("GEN_") {
            Some(rest) => Ok(pyo3::types::PyString::new(py, &format!("CORO_{rest}"))
                .into_any()
                .unbind()),
            None => Ok(native),
        }
    }

    #[getter]
    fn __name__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        forward(self.coro.bind(py), &["__name__"])
    }

    #[getter]
    fn __qualname__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        forward(self.coro.bind(py), &["__qualname__"])
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<anywait.Portal for {}>",
            self.coro.bind(py).repr()?
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.coro)?;
        // An open step's worker holds a reference of its own to the coroutine, which
        // is deliberately not reported: the collector must never finalize a coroutine
        // CPython sees as executing ("coroutine already executing"); the portal's
        // finalizer ends the step instead. What the step's frames hold is reached only
        // through this portal, and is reported here (`fiber::gc`), unless the step runs
        // inside greenlet, whose frames are not the worker's to report.
        // SAFETY: GC traversal holds the GIL and never runs while a step is being
        // switched (an open step's worker is parked in the state, not running).
        let state = unsafe { &*self.state.get() };
        if let Some(worker) = state.worker.as_ref() {
            if !worker.bridge.has_runner() {
                // The portal's reference (reported above) and the step's own.
                let known = [(self.coro.as_ptr(), 2)];
                worker.core.visit_suspended_frames(&known, &visit)?;
            }
        }
        Ok(())
    }
}

fn forward(coro: &Bound<'_, PyAny>, names: &[&str]) -> PyResult<Py<PyAny>> {
    for name in names {
        if let Ok(v) = coro.getattr(*name) {
            return Ok(v.unbind());
        }
    }
    Ok(coro.py().None())
}

/// `am_send` of `Portal`: how CPython's own code (`await`/`yield from`, asyncio's C
/// Task, `PyIter_Send`) drives it; a return is handed back as a value, with no
/// StopIteration made and caught. Installed on the type at import (PyO3 has no
/// `am_send`).
pub(crate) unsafe extern "C" fn portal_am_send(
    obj: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    out: *mut *mut ffi::PyObject,
) -> ffi::PySendResult {
    // SAFETY: CPython calls slots with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: CPython passes a live object of our type and a borrowed argument
        // (which may be NULL for "send None").
        let (slf, value) = unsafe {
            let slf = Bound::from_borrowed_ptr(py, obj).cast_into_unchecked::<Portal>();
            let value = if arg.is_null() {
                py.None()
            } else {
                Bound::from_borrowed_ptr(py, arg).unbind()
            };
            (slf, value)
        };
        slf.get().advance(py, Wire::Value(value))
    }));
    match outcome {
        Ok(Advanced::Returned(value)) => {
            // SAFETY: the caller receives a new reference.
            unsafe { *out = value.into_ptr() };
            ffi::PySendResult::PYGEN_RETURN
        }
        Ok(Advanced::Yielded(Wire::Value(value))) => {
            // SAFETY: as above.
            unsafe { *out = value.into_ptr() };
            ffi::PySendResult::PYGEN_NEXT
        }
        Ok(Advanced::Yielded(Wire::Raise(exc))) => {
            error_from(py, exc).restore(py);
            // SAFETY: NULL result with the exception set, as the protocol requires.
            unsafe { *out = ptr::null_mut() };
            ffi::PySendResult::PYGEN_ERROR
        }
        Err(_) => fatal("a panic inside Portal.am_send"),
    }
}

/// Installs [`portal_am_send`] on the Portal type (which has `tp_as_async`, since
/// PyO3 made it `am_await` for `__await__`).
pub(crate) fn install_am_send(py: Python<'_>) -> PyResult<()> {
    use pyo3::type_object::PyTypeInfo;
    let tp = Portal::type_object_raw(py);
    // SAFETY: our own heap type, before any instance exists; `tp_as_async` points
    // into the heap type object, which CPython lets its creator fill in.
    unsafe {
        let slots = (*tp).tp_as_async;
        if slots.is_null() {
            return Err(PyRuntimeError::new_err("Portal has no tp_as_async"));
        }
        (*slots).am_send = Some(portal_am_send);
        ffi::PyType_Modified(tp);
    }
    Ok(())
}

/// `tp_finalize` of `Portal` (see `fiber::finalizer`): a portal that becomes garbage while
/// its coroutine is suspended closes the coroutine through a step, as CPython closes a
/// suspended coroutine, so that `finally` blocks in sync frames blocked in `await_`
/// run (and may themselves use `await_`, which raises as `await` would there).
/// Not for a coroutine in a reference cycle with its open step: see `__traverse__`.
pub(crate) unsafe extern "C" fn finalize_portal(obj: *mut ffi::PyObject) {
    // SAFETY: no preconditions. During shutdown no fiber code runs (it could meet
    // half-torn-down modules); an open step's stack goes down with the process.
    if unsafe { ffi::Py_IsInitialized() } == 0 || crate::pystate::layout::interpreter_finalizing() {
        return;
    }
    // Through PyO3's attach (not `assume_attached`), so that the references held by
    // errors made and dropped here are released now rather than deferred.
    Python::attach(|py| {
        // SAFETY: CPython calls tp_finalize with a live object of our type.
        let slf = unsafe { Bound::from_borrowed_ptr(py, obj).cast_into_unchecked::<Portal>() };
        let pending = PyErr::take(py);
        slf.get().finalize(py, &slf);
        if let Some(err) = pending {
            err.restore(py);
        }
    });
}

impl Portal {
    fn finalize(&self, py: Python<'_>, slf: &Bound<'_, Portal>) {
        // SAFETY: GIL held; nothing else touches the state during finalization.
        let state = unsafe { &mut *self.state.get() };
        if state.running {
            return; // unreachable: a running step holds a reference to its portal
        }
        if let Some(pinned) = state.pinned.take() {
            if pinned.core.on_owner_thread() {
                worker::release(py, pinned);
            } else {
                // Parked, but its runner greenlet can only be ended on its own thread.
                worker::abandon(py, pinned);
            }
        }
        let suspended = match &state.worker {
            Some(worker) if !worker.core.on_owner_thread() => {
                // Its frames can only run on their own thread, which is elsewhere now:
                // leak the worker (stack, frames and their references) rather than
                // free anything those frames may still point to.
                let worker = state.worker.take().expect("checked above");
                worker::abandon(py, worker);
                PyRuntimeError::new_err(
                    "an anywait portal with a task blocked in await_ was garbage-collected \
                     on another thread; its stack is leaked and its finally blocks never run",
                )
                .write_unraisable(py, Some(slf.as_any()));
                return;
            }
            Some(_) => true,
            // Suspended at a native await: closed here (rather than by the coroutine's
            // own finalizer) only if nothing else holds the coroutine, so that code in
            // its `finally` blocks still runs inside the portal.
            // SAFETY: GIL held; the coroutine is alive (we hold it).
            None if unsafe { ffi::Py_REFCNT(self.coro.as_ptr()) } == 1 && !state.finished => self
                .coro
                .bind(py)
                .getattr(intern!(py, "cr_suspended"))
                .and_then(|v| v.is_truthy())
                .unwrap_or(false),
            None => false,
        };
        if !suspended {
            return;
        }
        if let Err(err) = self.close(py) {
            err.write_unraisable(py, Some(slf.as_any()));
        }
        // A coroutine that awaited again while closing left its step open: nothing can
        // resume it any more, so the worker is leaked as above (close already reported
        // the RuntimeError, as CPython does for a coroutine ignoring GeneratorExit).
        // SAFETY: GIL held; the step is over.
        let state = unsafe { &mut *self.state.get() };
        if let Some(worker) = state.worker.take() {
            worker::abandon(py, worker);
        }
    }
}
