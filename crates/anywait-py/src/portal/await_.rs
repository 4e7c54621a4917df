//! `await_`: what `await x` does, from sync code running in a portal step.
//!
//! `await_` drives `x.__await__()` on the step's worker fiber. Each value the iterator
//! yields is a trap for the event loop: the worker suspends with it (outcome `Trap`),
//! the portal hands it to the loop, and the loop's answer arrives as the result of the
//! suspend and is sent (or thrown) into the iterator, exactly as the interpreter's
//! `yield from` would. Because the awaited code runs on the same fiber, it may itself
//! call sync code that calls `await_`: nesting needs nothing more.

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use super::step::{throw_exception, Thrown};
use super::worker::{self, current_worker};
use crate::fiber::{self, relay, FiberCore, Wire};
use crate::interop::greenlet;

/// The error of `await_` where no portal step runs. It also says it in greenback's
/// words, for code written against greenback that runs on anywait unchanged.
const NO_PORTAL: &str = "await_() needs a portal, and there is none here: call `await \
     anywait.ensure_portal()` in this task first, start the program with anywait.run(), \
     run this code under anywait.with_portal_run(), or, in sync code with no event loop \
     running, call anywait.start_loop() first (in greenback's words: you must create a \
     greenback portal first, with `await greenback.ensure_portal()`)";

/// Asked for a better message when `await_` finds no portal (set by the Python side,
/// which knows about tasks: a task that gave itself a portal that is not in effect yet).
static NO_PORTAL_HINT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Sets the callable `await_` asks for its no-portal message (None: the default one).
#[pyfunction]
pub(crate) fn _set_no_portal_hint(py: Python<'_>, hint: Py<PyAny>) -> PyResult<()> {
    NO_PORTAL_HINT
        .set(py, hint)
        .map_err(|_| PyRuntimeError::new_err("the no-portal hint is set already"))
}

/// Called with the awaitable when `await_` finds no portal, before it fails: sync code
/// on a thread with a persistent loop (`anywait.start_loop`) awaits on that loop. It
/// returns the result, raises, or returns `NotImplemented` for "no loop here either".
static SYNC_FIRST: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Sets the callable `await_` hands an awaitable to where no portal step runs.
#[pyfunction]
pub(crate) fn _set_sync_first(py: Python<'_>, fallback: Py<PyAny>) -> PyResult<()> {
    SYNC_FIRST
        .set(py, fallback)
        .map_err(|_| PyRuntimeError::new_err("the sync-first fallback is set already"))
}

/// Asked what an `await_` in a portal step that ends in `CancelledError` should raise
/// instead (set by the Python side: the Jupyter extension turns a cancellation it made
/// for Ctrl-C into `KeyboardInterrupt` there). `(CancelledError, hook)`; the hook
/// returns None, or the exception to raise.
static CANCELLED_HOOK: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();

/// Sets the hook an `await_` ending in `cancelled_type` consults (see `CANCELLED_HOOK`).
#[pyfunction]
pub(crate) fn _set_cancelled_hook(
    py: Python<'_>,
    cancelled_type: Py<PyAny>,
    hook: Py<PyAny>,
) -> PyResult<()> {
    CANCELLED_HOOK
        .set(py, (cancelled_type, hook))
        .map_err(|_| PyRuntimeError::new_err("the cancelled hook is set already"))
}

/// The iterator that `await obj` would drive, with the interpreter's own errors for
/// objects that cannot be awaited.
pub(crate) fn awaitable_iter<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    // SAFETY: type checks on a live object.
    if unsafe { ffi::PyCoro_CheckExact(obj.as_ptr()) } != 0 {
        return Ok(obj.clone());
    }
    // Generators decorated with types.coroutine are awaitable as they are.
    // SAFETY: as above.
    if unsafe { ffi::PyGen_CheckExact(obj.as_ptr()) } != 0 {
        let flags: i64 = obj.getattr("gi_code")?.getattr("co_flags")?.extract()?;
        const CO_ITERABLE_COROUTINE: i64 = 0x100;
        if flags & CO_ITERABLE_COROUTINE != 0 {
            return Ok(obj.clone());
        }
    }
    let ty = obj.get_type();
    // SAFETY: reading the type's slot table of a live type object.
    let am_await = unsafe {
        let slots = (*ty.as_type_ptr()).tp_as_async;
        if slots.is_null() {
            None
        } else {
            (*slots).am_await
        }
    };
    let Some(am_await) = am_await else {
        return Err(PyTypeError::new_err(not_awaitable_message(
            &ty.name()?.to_string(),
        )));
    };
    // SAFETY: calling the type's own am_await slot on an instance; new reference or
    // NULL with an exception set.
    let it = unsafe { Bound::from_owned_ptr_or_err(py, am_await(obj.as_ptr())) }?;
    // SAFETY: type checks on a live object.
    let is_coroutine = unsafe { ffi::PyCoro_CheckExact(it.as_ptr()) } != 0;
    // SAFETY: as above.
    let is_iterator = unsafe { ffi::PyIter_Check(it.as_ptr()) } != 0;
    if is_coroutine || !is_iterator {
        return Err(PyTypeError::new_err(bad_await_result_message(
            &ty,
            &it,
            is_coroutine,
        )?));
    }
    Ok(it)
}

/// The interpreter's own message for an `__await__` that returned `it`, which is a
/// coroutine or not an iterator.
#[cfg(Py_3_15)]
fn bad_await_result_message(
    ty: &Bound<'_, PyType>,
    it: &Bound<'_, PyAny>,
    _is_coroutine: bool,
) -> PyResult<String> {
    Ok(format!(
        "{}.__await__() must return an iterator, not {}",
        ty.fully_qualified_name()?,
        it.get_type().fully_qualified_name()?
    ))
}

#[cfg(not(Py_3_15))]
fn bad_await_result_message(
    _ty: &Bound<'_, PyType>,
    it: &Bound<'_, PyAny>,
    is_coroutine: bool,
) -> PyResult<String> {
    if is_coroutine {
        return Ok("__await__() returned a coroutine".to_owned());
    }
    Ok(format!(
        "__await__() returned non-iterator of type '{}'",
        it.get_type().name()?
    ))
}

#[cfg(Py_3_14)]
fn not_awaitable_message(type_name: &str) -> String {
    format!("'{type_name}' object can't be awaited")
}

#[cfg(not(Py_3_14))]
fn not_awaitable_message(type_name: &str) -> String {
    format!("object {type_name} can't be used in 'await' expression")
}

/// `await_(aw)`: see the module docs and the stub.
///
/// Its frame stays on the stack of every task blocked in it, so everything but the
/// send-and-suspend loop lives out of line: a smaller frame keeps a blocked task's
/// stack within one page (`benches/bench_portal.py`, RSS row).
pub(crate) fn await_(py: Python<'_>, aw: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let worker = current_worker();
    // SAFETY: a live running worker (`current_worker`); a short read.
    if worker.is_null() || unsafe { (*worker).coro.is_null() } {
        return await_nested(py, aw);
    }
    drive(py, aw, |trap| {
        // SAFETY: `worker` is the running worker, in its step (checked above); the
        // bridge is its own field.
        match greenlet::forward_trap(py, unsafe { &raw mut (*worker).bridge }, trap) {
            Ok(answer) => answer,
            // SAFETY: as above.
            Err(trap) => unsafe { worker::suspend_with_trap(worker, trap.unbind()) },
        }
    })
}

/// Runs `x.__await__()` as `await x` would, handing each trap to `hand`, which returns
/// the event loop's answer.
#[inline(always)]
fn drive<'py>(
    py: Python<'py>,
    aw: &Bound<'py, PyAny>,
    mut hand: impl FnMut(Bound<'py, PyAny>) -> Wire,
) -> PyResult<Py<PyAny>> {
    // SAFETY: a type check on a live object.
    let it = if unsafe { ffi::PyCoro_CheckExact(aw.as_ptr()) } != 0 {
        aw.clone()
    } else {
        awaitable_iter_or_close(aw)?
    };
    let mut msg = Wire::Value(py.None());
    loop {
        let trap = match msg {
            Wire::Value(value) => {
                let value = value.into_bound(py);
                let mut out: *mut ffi::PyObject = std::ptr::null_mut();
                // SAFETY: GIL held; live objects; `out` receives a new reference.
                let status = unsafe { ffi::PyIter_Send(it.as_ptr(), value.as_ptr(), &mut out) };
                drop(value);
                match status {
                    // SAFETY: on NEXT `out` is a new reference.
                    ffi::PySendResult::PYGEN_NEXT => unsafe { Bound::from_owned_ptr(py, out) },
                    ffi::PySendResult::PYGEN_RETURN => {
                        // SAFETY: on RETURN `out` is a new reference.
                        return Ok(unsafe { Bound::from_owned_ptr(py, out).unbind() });
                    }
                    ffi::PySendResult::PYGEN_ERROR => return Err(raised(py, fetch_error(py))),
                }
            }
            Wire::Raise(exc) => match throw_exception(py, &it, exc) {
                Thrown::Yielded(trap) => trap.into_bound(py),
                Thrown::Returned(value) => return Ok(value),
                Thrown::Raised(err) => return Err(raised(py, err)),
            },
        };
        msg = hand(trap);
    }
}

/// `await_` where the innermost fiber is no step worker: on a fiber nested in a portal
/// step (a `lowlevel.Fiber` or a stackful generator resumed by the step's sync code),
/// the traps are relayed back to the step (`fiber::relay`); elsewhere, see
/// [`outside_portal`].
#[inline(never)]
fn await_nested(py: Python<'_>, aw: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let core = fiber::current();
    if relay::is_trap_sink(core) {
        // SAFETY: `core` is the running fiber, a trap sink, whose resumer takes traps.
        return drive(py, aw, |trap| unsafe {
            relay::suspend_trapped(core, trap.unbind())
        });
    }
    if !served_below(core) {
        return outside_portal(aw);
    }
    // SAFETY: `core` is the running fiber, and a portal step or a trap sink below
    // serves its relays (checked above; the chain of resumers below a running fiber
    // does not change).
    drive(py, aw, |trap| unsafe {
        relay::suspend_relaying(core, trap.unbind())
    })
}

/// Whether the chain of fibers that resumed one another, from `core` down, reaches a
/// step worker in its step or a trap sink (every fiber above it serves relays:
/// `fiber::relay`).
fn served_below(mut core: *mut FiberCore) -> bool {
    while !core.is_null() {
        if relay::is_trap_sink(core) {
            return true;
        }
        // SAFETY: CURRENT and the resumers of running fibers are live running cores.
        if unsafe { (*core).tag() } == worker::WORKER {
            // SAFETY: a WORKER-tagged core is the first field of a live StepWorker.
            return unsafe { !(*core.cast::<worker::StepWorker>()).coro.is_null() };
        }
        // SAFETY: as above.
        core = unsafe { (*core).resumer() };
    }
    false
}

/// The relay handler (`fiber::relay`): hands a trap relayed from a nested fiber to the
/// step or to the trap sink running, or relays it once more from a fiber nested one
/// level less deep.
pub(crate) fn relay_trap(py: Python<'_>, trap: Py<PyAny>) -> Wire {
    let worker = current_worker();
    // SAFETY: a live running worker (`current_worker`); a short read.
    if !worker.is_null() && unsafe { !(*worker).coro.is_null() } {
        // SAFETY: the running worker, in its step.
        let bridge = unsafe { &raw mut (*worker).bridge };
        return match greenlet::forward_trap(py, bridge, trap.into_bound(py)) {
            Ok(answer) => answer,
            // SAFETY: as above.
            Err(trap) => unsafe { worker::suspend_with_trap(worker, trap.unbind()) },
        };
    }
    let core = fiber::current();
    if relay::is_trap_sink(core) {
        // SAFETY: the running fiber, a trap sink.
        return unsafe { relay::suspend_trapped(core, trap) };
    }
    // The fiber that resumed the relaying one is itself nested in the step: `await_`
    // checked the whole chain before the first relay, and it cannot change meanwhile.
    // SAFETY: the running fiber, whose resumers reach the step or a trap sink.
    unsafe { relay::suspend_relaying(core, trap) }
}

/// `await_` outside any portal step: the persistent loop's, if the thread has one (the
/// sync-first fallback decides), else the no-portal error.
#[inline(never)]
fn outside_portal(aw: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let py = aw.py();
    if let Some(fallback) = SYNC_FIRST.get(py) {
        let outcome = fallback.bind(py).call1((aw,))?;
        if !outcome.is(py.NotImplemented()) {
            return Ok(outcome.unbind());
        }
    }
    Err(no_portal(aw))
}

/// The error of an `await_` outside any portal step.
#[inline(never)]
#[cold]
fn no_portal(aw: &Bound<'_, PyAny>) -> PyErr {
    close_if_coroutine(aw);
    let py = aw.py();
    let hinted = NO_PORTAL_HINT
        .get(py)
        .and_then(|hint| hint.bind(py).call0().ok())
        .and_then(|message| message.extract::<String>().ok());
    PyRuntimeError::new_err(hinted.unwrap_or_else(|| NO_PORTAL.to_owned()))
}

/// [`awaitable_iter`] for anything but a coroutine, closing `aw` if it fails.
#[inline(never)]
fn awaitable_iter_or_close<'py>(aw: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    awaitable_iter(aw).inspect_err(|_| close_if_coroutine(aw))
}

/// The exception the awaited iterator raised (out of line, as for `await_` itself).
#[inline(never)]
fn fetch_error(py: Python<'_>) -> PyErr {
    PyErr::fetch(py)
}

/// What an `await_` whose awaitable raised `err` raises: `err`, unless it is a
/// cancellation and the cancelled hook says otherwise (a failing hook is reported as
/// unraisable, and `err` stands).
#[inline(never)]
#[cold]
fn raised(py: Python<'_>, err: PyErr) -> PyErr {
    let Some((cancelled_type, hook)) = CANCELLED_HOOK.get(py) else {
        return err;
    };
    let value = err.value(py);
    if !value.is_instance(cancelled_type.bind(py)).unwrap_or(false) {
        return err;
    }
    match hook.bind(py).call1((value,)) {
        Ok(instead) if !instead.is_none() => PyErr::from_value(instead),
        Ok(_) => err,
        Err(failure) => {
            failure.write_unraisable(py, Some(hook.bind(py)));
            err
        }
    }
}

/// A coroutine handed to a failing `await_` is closed, as the interpreter would leave
/// it: no "coroutine was never awaited" warning for an error we already reported.
fn close_if_coroutine(aw: &Bound<'_, PyAny>) {
    // SAFETY: a type check on a live object.
    if unsafe { ffi::PyCoro_CheckExact(aw.as_ptr()) } != 0 {
        let _ = aw.call_method0("close");
    }
}
