//! Step workers: the fibers that portal steps run on.
//!
//! A worker is a fiber whose native body is a loop ("receive a step, run
//! `coro.send`/`coro.throw`, hand back the result"). Beside its [`FiberCore`] it keeps
//! the step it is running ([`StepWorker`]); the fiber layer knows it only by its
//! [`WORKER`] tag.
//!
//! Invariants:
//! * A worker is bound to a portal only while one of its steps is open; otherwise it
//!   is parked in this thread's idle list with no coroutine, no context and no frames,
//!   so a step that never calls `await_` costs one switch round trip and holds no stack
//!   after.
//! * `StepWorker::coro` is borrowed from the portal that is running the step; it is
//!   null whenever the worker is idle, and a parked worker resumed with it null
//!   returns from its loop (retires).
//! * Each new step takes on the context of the code that resumed the portal (the loop
//!   runs steps inside the task's context), and an open step keeps its own.

use std::cell::RefCell;
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;

use super::step::{self, StepOutcome};
use crate::fiber::{self, Body, FiberCore, Msg, Tag, Wire};
use crate::interop::greenlet::{self, Bridge, StepEnd};
use crate::pystate;

/// The tag of step workers among this thread's fibers.
pub(crate) const WORKER: Tag = Tag(1);

/// Idle workers kept per thread; more are retired when their step ends.
const IDLE_CAP: usize = 8;

/// A step worker: its fiber and the step it runs. Boxed, and never moved once made:
/// the fiber's body captured the core's address.
#[repr(C)]
pub(crate) struct StepWorker {
    /// First field (and `repr(C)`), so that the worker's body, handed the core's
    /// address, finds the rest of the worker at the same address.
    pub(crate) core: FiberCore,
    /// The coroutine the current step drives (see the module invariants); for a call
    /// portal the tuple `(fn, args, kwargs)`.
    pub(crate) coro: *mut ffi::PyObject,
    /// Whether `coro` is a call portal's `(fn, args, kwargs)`.
    pub(crate) call: bool,
    /// The context the open step started in (owned; null when idle): the one its
    /// resumer entered, which the resumer leaves when the step hands back (see
    /// `shareable_context`).
    pub(crate) step_context: *mut ffi::PyObject,
    /// Set by the worker before every hand-back.
    pub(crate) outcome: StepOutcome,
    /// Greenlet state of the worker's steps (see `interop::greenlet`).
    pub(crate) bridge: Bridge,
}

thread_local! {
    /// Parked step workers of this thread (no context, no frames: see module docs).
    static IDLE: RefCell<IdleWorkers> = const { RefCell::new(IdleWorkers(Vec::new())) };
}

/// Boxed: a worker's address is captured by its fiber body and must not move.
#[allow(clippy::vec_box)]
struct IdleWorkers(Vec<Box<StepWorker>>);

impl Drop for IdleWorkers {
    fn drop(&mut self) {
        // The thread is exiting: no Python code can run. A parked worker's stack holds
        // only the native loop with nothing to drop, so it is reset, not unwound.
        for worker in self.0.drain(..) {
            discard_parked(worker);
        }
    }
}

/// The step worker running on this thread right now (innermost fiber), or null.
#[inline]
pub(crate) fn current_worker() -> *mut StepWorker {
    let core = fiber::current();
    // SAFETY: CURRENT holds only live running cores; a WORKER-tagged core is the first
    // field of a live `StepWorker` (only `new_worker` makes such cores).
    if !core.is_null() && unsafe { (*core).tag() } == WORKER {
        core.cast::<StepWorker>()
    } else {
        ptr::null_mut()
    }
}

/// Whether code calling this runs in a portal step, so that `await_` works here.
#[inline]
pub(crate) fn in_portal_step() -> bool {
    let worker = current_worker();
    // SAFETY: a live running worker (see `current_worker`); a short read.
    !worker.is_null() && unsafe { !(*worker).coro.is_null() }
}

/// A parked worker from this thread's idle list, or a new one.
pub(crate) fn take_idle(py: Python<'_>) -> PyResult<Box<StepWorker>> {
    match IDLE.with(|idle| idle.borrow_mut().0.pop()) {
        Some(worker) => Ok(worker),
        None => new_worker(py),
    }
}

/// Points a parked worker at a portal's coroutine (`call`: a call portal's tuple) and
/// at the caller's context.
pub(crate) fn bind(
    mut worker: Box<StepWorker>,
    coro: *mut ffi::PyObject,
    call: bool,
) -> Box<StepWorker> {
    worker.coro = coro;
    worker.call = call;
    let context = pystate::current_context();
    // SAFETY: GIL held (callers run Python code); we hand the worker two references of
    // its own, one for its fiber's state and one for `step_context`.
    unsafe {
        ffi::Py_XINCREF(context);
        ffi::Py_XINCREF(context);
    }
    // The parked worker holds no context (park took it).
    let old = worker.core.replace_context(context);
    debug_assert!(old.is_null());
    debug_assert!(worker.step_context.is_null());
    worker.step_context = context;
    worker
}

/// The context in effect here, if it is the one the running portal step started in,
/// else null (borrowed). Such a context is entered only by the step's resumer (a task
/// step, which leaves it when this step hands back to it): another task may run in it
/// while this step waits in `await_`, and what that task sets there is seen here after
/// (as after an `await`). A context the step entered itself (`Context.run` on this
/// stack) stays entered while the step waits, and cannot be shared so.
pub(crate) fn shareable_context() -> *mut ffi::PyObject {
    let worker = current_worker();
    // SAFETY: a live running worker (see `current_worker`); short reads.
    if worker.is_null() || unsafe { (*worker).coro.is_null() } {
        return ptr::null_mut();
    }
    // SAFETY: as above.
    let step_context = unsafe { (*worker).step_context };
    if step_context == pystate::current_context() {
        step_context
    } else {
        ptr::null_mut()
    }
}

/// Resumes a bound worker with the loop's `msg`; returns what its step hands back
/// (`worker.outcome` says what that is).
pub(crate) fn resume(py: Python<'_>, worker: &mut StepWorker, msg: Wire) -> Wire {
    greenlet::note_resume(py, &mut worker.bridge);
    let raw: *mut FiberCore = &mut worker.core;
    // SAFETY: the worker is ours, parked or bound, on this thread (checked inside);
    // it has no Python object.
    unsafe { fiber::resume_wire(py, raw, ptr::null_mut(), msg) }
}

/// A new worker, parked and ready for its first step.
fn new_worker(py: Python<'_>) -> PyResult<Box<StepWorker>> {
    let body = Body::Native {
        run: worker_main,
        tag: WORKER,
    };
    let mut core = FiberCore::new(body, None)?;
    // The task's step handles an exception (a pure-Python Task wakes up inside
    // `except`, a step may run in a handler's await): the coroutine sees it natively.
    core.continue_exception_chain();
    // A tracer started while the step waits traces its frames once it resumes, as it
    // would trace a resumed coroutine's.
    core.tell_tracer_of_resumes();
    let mut worker = Box::new(StepWorker {
        core,
        coro: ptr::null_mut(),
        call: false,
        step_context: ptr::null_mut(),
        outcome: StepOutcome::Idle,
        bridge: Bridge::new(),
    });
    let raw: *mut FiberCore = &mut worker.core;
    // SAFETY: a fresh core on this thread without a Python object, in its final place;
    // the first resume runs `worker_main` up to its first park.
    unsafe { fiber::resume(py, raw, ptr::null_mut(), Ok(py.None())) }?;
    debug_assert_eq!(worker.outcome, StepOutcome::Idle);
    Ok(worker)
}

/// Parks (or retires) the worker of a step that has ended.
pub(crate) fn end_step(py: Python<'_>, worker: Box<StepWorker>) {
    release(py, park(py, worker));
}

/// Unbinds the worker of an ended step: no coroutine, no context (module invariant).
pub(crate) fn park(py: Python<'_>, mut worker: Box<StepWorker>) -> Box<StepWorker> {
    greenlet::forget_resume(py, &mut worker.bridge);
    worker.coro = ptr::null_mut();
    worker.outcome = StepOutcome::Idle;
    let context = worker.core.replace_context(ptr::null_mut());
    let step_context = std::mem::replace(&mut worker.step_context, ptr::null_mut());
    // SAFETY: GIL held (the token); both references were the worker's.
    unsafe {
        ffi::Py_XDECREF(context);
        ffi::Py_XDECREF(step_context);
    }
    worker
}

/// Puts a parked worker in this thread's idle list, or retires it if the list is full.
pub(crate) fn release(py: Python<'_>, worker: Box<StepWorker>) {
    let parked = IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        if idle.0.len() < IDLE_CAP {
            idle.0.push(worker);
            None
        } else {
            Some(worker)
        }
    });
    if let Some(worker) = parked {
        retire(py, worker);
    }
}

/// Ends a parked worker's loop and gives its stack back.
fn retire(py: Python<'_>, mut worker: Box<StepWorker>) {
    let raw: *mut FiberCore = &mut worker.core;
    // SAFETY: parked worker on this thread; a null `coro` asks its loop to return.
    let _ = unsafe { fiber::resume(py, raw, ptr::null_mut(), Ok(py.None())) };
}

/// Drops what a worker that will never run again owns, without running any of its
/// code, and leaks its stack (frames on it may still point at what it holds).
pub(crate) fn abandon(py: Python<'_>, mut worker: Box<StepWorker>) {
    let step_context = std::mem::replace(&mut worker.step_context, ptr::null_mut());
    // SAFETY: GIL held (the token); the reference was the worker's, and no frame
    // points at it through the worker (its stack holds its own references).
    unsafe { ffi::Py_XDECREF(step_context) };
    crate::fiber::lifetime::abandon(py, &mut worker.core);
    drop(worker); // the core's Drop leaks the suspended stack; the bridge leaks its own
}

/// Drops a parked step worker without running anything: its stack holds only the
/// native worker loop, which owns nothing, so it is reset rather than unwound, and the
/// stack goes back to the pool. Safe without the GIL: a parked worker holds no
/// Python reference (module invariant).
fn discard_parked(mut worker: Box<StepWorker>) {
    debug_assert!(worker.coro.is_null());
    if worker.bridge.has_runner() {
        // A runner greenlet keeps part of its stack on this one and cannot be ended
        // without running Python: leak both (the stack with the core's engine).
        worker.bridge.leak();
        drop(worker); // the core's Drop leaks the suspended engine and its stack
        return;
    }
    // SAFETY: a parked worker's stack holds the native loop suspended in
    // `suspend_running`, with no owned locals and no interpreter frames; its snapshot
    // holds no references (context taken at park).
    unsafe { worker.core.reset_parked() };
}

/// The native body of a step worker (see module docs). Its frame, and those of the
/// step it runs, stay on the stack while the step is blocked in `await_`: keep them
/// small (everything but a plain `send` lives out of line).
fn worker_main(py: Python<'_>, core: *mut FiberCore, first: Wire) -> Wire {
    first.release(py);
    let worker = core.cast::<StepWorker>();
    // SAFETY: this body runs only for cores made by `new_worker`, the first field of a
    // boxed `StepWorker` that outlives its fiber; this and the other derefs of `worker`
    // below are short field accesses with no other reference live.
    unsafe { (*worker).outcome = StepOutcome::Idle };
    // SAFETY: this worker is the running fiber (its body).
    let mut msg = unsafe { fiber::suspend_running(core, Wire::Value(py.None())) };
    loop {
        // SAFETY: as above.
        let coro = unsafe { (*worker).coro };
        if coro.is_null() {
            msg.release(py);
            // SAFETY: as above; the bridge is the worker's.
            greenlet::stop_runner(py, unsafe { &mut (*worker).bridge });
            return Wire::Value(py.None());
        }
        // SAFETY: as above.
        let top_level = unsafe { (*worker).core.resumed_from_thread_stack() };
        // SAFETY: as above.
        let call = unsafe { (*worker).call };
        // The step holds a reference of its own, for as long as it runs: if its portal
        // dies with the step open and the stack is leaked, the coroutine stays alive
        // with it (CPython must never finalize a coroutine whose frame is executing).
        // SAFETY: `coro` is held by the portal running this step; GIL held.
        unsafe { ffi::Py_INCREF(coro) };
        let (outcome, result) = match greenlet::api_if_found().filter(|_| top_level) {
            // SAFETY: as above.
            Some(api) => bridged(py, unsafe { &mut (*worker).bridge }, api, coro, call, msg),
            None if call => step::run_call(py, coro, msg),
            // SAFETY: as above.
            None => unsafe { step::run_step(py, coro, msg) },
        };
        // SAFETY: the reference taken above.
        unsafe { ffi::Py_DECREF(coro) };
        // SAFETY: as above.
        unsafe { (*worker).outcome = outcome };
        // SAFETY: as above.
        msg = unsafe { fiber::suspend_running(core, result) };
    }
}

/// A step run through the greenlet bridge (out of line, as the bridge is).
#[inline(never)]
#[cold]
fn bridged(
    py: Python<'_>,
    bridge: *mut Bridge,
    api: greenlet::Api,
    coro: *mut ffi::PyObject,
    call: bool,
    msg: Wire,
) -> (StepOutcome, Wire) {
    let (end, result) = greenlet::run_step(py, bridge, api, coro, call, msg);
    (outcome_of(end), result)
}

fn outcome_of(end: StepEnd) -> StepOutcome {
    match end {
        StepEnd::Yielded => StepOutcome::Yielded,
        StepEnd::Returned => StepOutcome::Returned,
        StepEnd::Raised => StepOutcome::Raised,
    }
}

/// Hands `trap` from the running worker's step to the event loop and returns the
/// loop's answer: what `await_` does with each trap.
///
/// # Safety
/// `worker` is the running worker ([`current_worker`], non-null), in a step.
#[inline]
pub(crate) unsafe fn suspend_with_trap(worker: *mut StepWorker, trap: Py<PyAny>) -> Wire {
    // SAFETY: the running worker (caller); a short write, then the switch.
    unsafe {
        (*worker).outcome = StepOutcome::Trap;
        fiber::suspend_running(&mut (*worker).core, Wire::Value(trap))
    }
}

/// What the greenlet bridge needs from this layer (it must not name the portal).
pub(crate) fn register_with_bridge() {
    greenlet::set_host(greenlet::StepHost {
        run_step: bridge_run_step,
        forward_trap: bridge_forward_trap,
        current_bridge: bridge_of_current,
    });
}

/// One step of `coro`, for the bridge's runner greenlet.
fn bridge_run_step(
    py: Python<'_>,
    coro: &Bound<'_, PyAny>,
    call: bool,
    msg: Msg,
) -> (StepEnd, Msg) {
    let (outcome, result) = step::run_any_step(py, coro, call, msg);
    let end = match outcome {
        StepOutcome::Yielded => StepEnd::Yielded,
        StepOutcome::Returned => StepEnd::Returned,
        _ => StepEnd::Raised,
    };
    (end, result)
}

/// [`suspend_with_trap`] for the bridge, which forwards traps from its greenlets.
fn bridge_forward_trap(py: Python<'_>, trap: Py<PyAny>) -> Msg {
    let worker = current_worker();
    if worker.is_null() {
        drop(trap.into_bound(py));
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "anywait's greenlet bridge forwarded a trap outside a step worker",
        ));
    }
    // SAFETY: the running worker, in a bridged step (the bridge's caller).
    unsafe { suspend_with_trap(worker, trap) }.into_msg(py)
}

/// The bridge state of the running worker, or null.
fn bridge_of_current() -> *mut Bridge {
    let worker = current_worker();
    if worker.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: a live running worker; only the field's address is taken.
    unsafe { &raw mut (*worker).bridge }
}
