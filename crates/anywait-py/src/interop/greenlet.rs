//! Portal steps in a program that uses greenlets (SQLAlchemy's asyncio layer, gevent-
//! style libraries): `await_` inside a greenlet that sync code started in a step.
//!
//! greenlet keeps one *current greenlet* per thread and assumes that every greenlet of
//! the thread lives on the stack it runs on. A step worker runs on a stack of its own,
//! so if a trap left the worker while a greenlet started in the step was current, the
//! event loop and every other step would run "inside" that greenlet, and the next
//! greenlet switch anywhere would copy stack memory between unrelated stacks.
//!
//! Invariant kept here: whenever control leaves or enters a worker, the current
//! greenlet is the one that was current when the step began (the loop's). To keep it
//! while greenlets run inside a step, the step itself runs in the worker's *runner*
//! greenlet, started (once per worker) and resumed only from the worker loop. A trap
//! raised in any greenlet of the step switches back to the loop's greenlet, which is
//! always waiting in the worker loop (never in user code); the worker forwards the trap,
//! and switches back into the greenlet that raised it with the loop's answer.
//!
//! Greenlets made in a step live on its worker's stack (greenlet restores a greenlet's
//! saved stack to the addresses it ran at), so a portal whose steps ran here keeps this
//! worker for all its later steps (`PortalState::pinned`): a greenlet that
//! SQLAlchemy's `greenlet_spawn` resumes in a later step is then resumed on its own
//! stack, whatever other tasks hold meanwhile.
//!
//! Only when the greenlet module is loaded, and only for steps started from the thread's
//! own stack: a step of a portal nested in another step (an eager task's first step)
//! is resumed from that step's greenlet, which does not live on this worker's stack, so
//! it runs unbridged, as does the step during which greenlet was first imported. There
//! a trap may hand control back only from the greenlet that was current when the worker
//! was resumed (`note_resume`); from any other, `await_` raises instead.

use std::ptr;
use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;

use super::greenlet_api::api;
pub(crate) use super::greenlet_api::{api_if_found, Api};
use crate::fatal::fatal;
use crate::fiber::{Msg, Wire};

/// How a step run in the runner greenlet ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepEnd {
    Yielded,
    Returned,
    Raised,
}

/// What the bridge needs from the portal layer above it, registered once at import
/// (`portal::worker::register_with_bridge`): the bridge runs portal steps and forwards
/// their traps, but must not name the portal.
pub(crate) struct StepHost {
    /// Runs one step of a portal's coroutine (`call`: a call portal's tuple) with `msg`;
    /// called inside the runner greenlet.
    pub(crate) run_step: fn(Python<'_>, &Bound<'_, PyAny>, bool, Msg) -> (StepEnd, Msg),
    /// Hands a trap from the running step worker to the event loop; returns the answer.
    pub(crate) forward_trap: fn(Python<'_>, Py<PyAny>) -> Msg,
    /// The bridge state of the step worker running now, or null.
    pub(crate) current_bridge: fn() -> *mut Bridge,
}

static HOST: OnceLock<StepHost> = OnceLock::new();

/// Registers the portal layer's hooks (once, at import).
pub(crate) fn set_host(host: StepHost) {
    let _ = HOST.set(host);
}

fn host() -> &'static StepHost {
    HOST.get()
        .unwrap_or_else(|| fatal("the greenlet bridge ran before the portal layer registered"))
}

/// Message tags between the runner (and greenlets inside it) and the worker loop.
const DONE: u8 = 0;
const TRAP: u8 = 1;

/// Per-worker bridge state (a field of the portal's step worker); references are owned.
pub(crate) struct Bridge {
    /// The worker's runner greenlet, once made.
    runner: Option<Py<PyAny>>,
    /// The greenlet current when the running step began; set only during a bridged step.
    loop_greenlet: Option<Py<PyAny>>,
    /// For an unbridged step with greenlet loaded: the greenlet current when the worker
    /// was last resumed (a trap may hand control back only from that greenlet).
    resumed_in: Option<Py<PyAny>>,
    /// During a bridged step: what the worker's base exception item continues into (its
    /// resumer's chain) at the latest switch into the runner, which continues its own
    /// into it while it runs (see [`chain_runner_exceptions`]).
    resumer_exceptions: *mut u8,
}

impl Bridge {
    pub(crate) const fn new() -> Self {
        Self {
            runner: None,
            loop_greenlet: None,
            resumed_in: None,
            resumer_exceptions: ptr::null_mut(),
        }
    }

    /// Whether a runner greenlet exists (its stack slice lives on the worker's stack).
    pub(crate) fn has_runner(&self) -> bool {
        self.runner.is_some()
    }

    /// Forgets the references without touching their refcounts: for a worker dropped
    /// when no Python code can run (the runner's frames may still point at them).
    pub(crate) fn leak(&mut self) {
        if let Some(runner) = self.runner.take() {
            std::mem::forget(runner);
        }
        if let Some(g) = self.loop_greenlet.take() {
            std::mem::forget(g);
        }
        if let Some(g) = self.resumed_in.take() {
            std::mem::forget(g);
        }
    }
}

impl Drop for Bridge {
    /// A runner still here was not ended by `stop_runner`: its stack slice belongs to a
    /// worker that is being leaked or abandoned. Releasing it would make greenlet kill
    /// it, switching onto that stack from wherever we are: it is leaked instead.
    fn drop(&mut self) {
        self.leak();
    }
}

fn pack(py: Python<'_>, msg: Msg) -> PyResult<Bound<'_, PyAny>> {
    let (ok, value) = match msg {
        Ok(value) => (true, value.into_bound(py)),
        Err(err) => (false, err.into_value(py).into_bound(py).into_any()),
    };
    Ok((ok, value).into_pyobject(py)?.into_any())
}

fn unpack(packed: &Bound<'_, PyAny>) -> Msg {
    let (ok, value): (bool, Bound<'_, PyAny>) = packed.extract()?;
    if ok {
        Ok(value.unbind())
    } else {
        Err(PyErr::from_value(value))
    }
}

/// Runs one step of `coro` inside the worker's runner greenlet (see module docs).
/// Called by the worker loop, running as the loop's greenlet. Never inlined: its frame
/// would otherwise grow the worker loop's, and every step's stack with it.
#[inline(never)]
#[cold]
pub(crate) fn run_step(
    py: Python<'_>,
    bridge: *mut Bridge,
    api: Api,
    coro: *mut ffi::PyObject,
    call: bool,
    msg: Wire,
) -> (StepEnd, Wire) {
    // SAFETY: `coro` is held by the portal running this step.
    let coro = unsafe { Bound::from_borrowed_ptr(py, coro) };
    match bridged_step(py, bridge, api, &coro, call, msg.into_msg(py)) {
        Ok((end, result)) => (end, Wire::from_msg(py, result)),
        Err(err) => (StepEnd::Raised, Wire::raise(py, err)),
    }
}

/// The worker's runner greenlet, made if needed, with `current` as its parent.
fn runner<'py>(
    py: Python<'py>,
    bridge: *mut Bridge,
    api: Api,
    current: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `bridge` is the running worker's; short accesses, no other reference live.
    if let Some(runner) = unsafe { (*bridge).runner.as_ref() } {
        let runner = runner.bind(py).clone();
        // SAFETY: GIL held; `runner` is a greenlet.
        if unsafe { (api.active)(runner.as_ptr()) } != 0 {
            // SAFETY: as above; a new reference or NULL (no parent).
            let parent =
                unsafe { Bound::from_owned_ptr_or_opt(py, (api.get_parent)(runner.as_ptr())) };
            if !parent.is_some_and(|p| p.is(current)) {
                // SAFETY: as above; `current` is a greenlet of this thread.
                if unsafe { (api.set_parent)(runner.as_ptr(), current.as_ptr()) } < 0 {
                    return Err(PyErr::fetch(py));
                }
            }
            return Ok(runner);
        }
    }
    let body = wrap_pyfunction!(_greenlet_runner, py)?;
    // SAFETY: GIL held; greenlet(run=body, parent=current): a new reference or NULL.
    let runner =
        unsafe { Bound::from_owned_ptr_or_err(py, (api.new)(body.as_ptr(), current.as_ptr())) }?;
    // SAFETY: as above.
    unsafe { (*bridge).runner = Some(runner.clone().unbind()) };
    Ok(runner)
}

fn bridged_step(
    py: Python<'_>,
    bridge: *mut Bridge,
    api: Api,
    coro: &Bound<'_, PyAny>,
    call: bool,
    msg: Msg,
) -> PyResult<(StepEnd, Msg)> {
    let current = api.current(py)?;
    let runner = runner(py, bridge, api, &current)?;
    // The step runs in the task's context, as an unbridged step would: the runner
    // adopts it (a greenlet has a context of its own).
    let context = crate::pystate::current_context();
    let context = if context.is_null() {
        py.None().into_bound(py)
    } else {
        // SAFETY: the thread's current context, a borrowed reference.
        unsafe { Bound::from_borrowed_ptr(py, context) }
    };
    // SAFETY: as above.
    unsafe { (*bridge).loop_greenlet = Some(current.unbind()) };
    let job = (coro, pack(py, msg)?, context, call)
        .into_pyobject(py)?
        .into_any();
    note_resumer_exceptions(bridge);
    let mut reply = api.switch(&runner, job);
    let result = loop {
        let parts = reply.and_then(|r| {
            r.extract::<(u8, Bound<'_, PyAny>, Bound<'_, PyAny>)>()
                .map_err(|_| {
                    PyRuntimeError::new_err(
                        "a greenlet switched into anywait's step machinery (the parent of \
                         the greenlet running a portal step) with a value of its own; \
                         the step is abandoned",
                    )
                })
        });
        let (tag, payload, sender) = match parts {
            Ok(parts) => parts,
            Err(err) => {
                // The runner is stuck somewhere in user code: never resume it again.
                // SAFETY: as above.
                unsafe { (*bridge).runner.take().map(std::mem::forget) };
                break Err(err);
            }
        };
        if tag == DONE {
            let outcome = match sender.extract::<u8>()? {
                0 => StepEnd::Yielded,
                1 => StepEnd::Returned,
                _ => StepEnd::Raised,
            };
            break Ok((outcome, unpack(&payload)));
        }
        // A trap from `await_` in `sender`: forward it to the loop as an unbridged step
        // would, with the loop's greenlet current, then hand the answer back.
        let answer = (host().forward_trap)(py, payload.unbind());
        note_resumer_exceptions(bridge);
        reply = pack(py, answer).and_then(|answer| api.switch(&sender, answer));
    };
    // SAFETY: as above.
    let loop_greenlet = unsafe { (*bridge).loop_greenlet.take() };
    drop(loop_greenlet.map(|g| g.into_bound(py)));
    result
}

/// Worker side, before a switch into the step's greenlets: remembers what the worker's
/// exception chain continues into now (its resumer's, for this resume).
fn note_resumer_exceptions(bridge: *mut Bridge) {
    // SAFETY: this thread's state (GIL held by the caller); a short access to the
    // running worker's bridge.
    unsafe {
        let ts = ffi::compat::PyThreadState_GetUnchecked();
        (*bridge).resumer_exceptions = crate::pystate::base_exception_continues_in(ts);
    }
}

/// Runner side, `on` when it starts running (a step, or an answer to its trap) and off
/// before it switches away: the runner runs as part of the worker, so its exception
/// chain continues into the worker's resumer's, as an unbridged step's does (greenlet
/// keeps each greenlet's base exception item apart). Only the runner's: a user's
/// greenlet keeps greenlet's own rule.
fn chain_runner_exceptions(py: Python<'_>, bridge: *mut Bridge, on: bool) {
    // SAFETY: a short read of the running worker's bridge (null: none).
    let Some(b) = (unsafe { bridge.as_ref() }) else {
        return;
    };
    let is_runner = b.runner.as_ref().is_some_and(|runner| {
        api(py)
            .and_then(|api| api.current(py).ok())
            .is_some_and(|current| current.is(runner.bind(py)))
    });
    if !is_runner {
        return;
    }
    let item = if on {
        b.resumer_exceptions
    } else {
        ptr::null_mut()
    };
    // SAFETY: this thread's state, the runner's installed; the item is the live
    // resumer's chain for this resume of the worker, and is unset before the runner
    // switches away.
    unsafe {
        let ts = ffi::compat::PyThreadState_GetUnchecked();
        crate::pystate::continue_base_exception_in(ts, item);
    }
}

/// Called before a worker is resumed: for a step that is not bridged (greenlet not
/// loaded when it began, or a nested step), remembers the greenlet current now, which
/// `forward_trap` requires when the step hands control back. Nothing to do (and no
/// cost beyond a flag test) while greenlet is not loaded.
#[inline]
pub(crate) fn note_resume(py: Python<'_>, bridge: &mut Bridge) {
    if bridge.loop_greenlet.is_some() {
        return; // bridged: traps leave through the loop's greenlet
    }
    let now = api(py)
        .and_then(|api| api.current(py).ok())
        .map(Bound::unbind);
    if let Some(old) = std::mem::replace(&mut bridge.resumed_in, now) {
        drop(old.into_bound(py));
    }
}

/// Drops what `note_resume` kept (the step has ended).
pub(crate) fn forget_resume(py: Python<'_>, bridge: &mut Bridge) {
    if let Some(old) = bridge.resumed_in.take() {
        drop(old.into_bound(py));
    }
}

/// In an unbridged step, a trap may hand control back only from the greenlet that was
/// current when the worker was resumed (the main greenlet if greenlet was not loaded
/// then): from any other, the resumer and every other task would run "inside" that
/// greenlet (see module docs).
fn check_unbridged_trap(py: Python<'_>, bridge: *mut Bridge) -> PyResult<()> {
    let Some(api) = api(py) else {
        return Ok(());
    };
    check_trap_greenlet(py, bridge, api)
}

/// [`check_unbridged_trap`] once greenlet is loaded.
#[inline(never)]
#[cold]
fn check_trap_greenlet(py: Python<'_>, bridge: *mut Bridge, api: Api) -> PyResult<()> {
    let current = api.current(py)?;
    // SAFETY: `bridge` is the running worker's; a short read.
    let fine = match unsafe { (*bridge).resumed_in.as_ref() } {
        Some(resumed_in) => current.is(resumed_in.bind(py)),
        // SAFETY: GIL held; `current` is a greenlet.
        None => (unsafe { (api.main)(current.as_ptr()) }) != 0,
    };
    if fine {
        return Ok(());
    }
    Err(PyRuntimeError::new_err(
        "await_() inside a greenlet that this portal step cannot hand back to the event \
         loop: greenlet was imported after the step began (import it before starting \
         tasks), or the step began nested in another task's step (an eager task) and \
         switched greenlets",
    ))
}

/// Whether the running worker's step is bridged; if so, forwards `trap` to the worker
/// loop through the loop's greenlet and returns the loop's answer. Inline and small:
/// its caller, `await_`, has a frame on every blocked task's stack, so the greenlet
/// paths live out of line.
#[inline]
pub(crate) fn forward_trap<'py>(
    py: Python<'py>,
    bridge: *mut Bridge,
    trap: Bound<'py, PyAny>,
) -> Result<Wire, Bound<'py, PyAny>> {
    // SAFETY: `bridge` is the running worker's; a short read.
    if unsafe { (*bridge).loop_greenlet.is_some() } {
        return Ok(forward_bridged(py, bridge, trap));
    }
    match check_unbridged_trap(py, bridge) {
        Ok(()) => Err(trap),
        Err(err) => Ok(Wire::raise(py, err)),
    }
}

/// `forward_trap` for a bridged step.
#[inline(never)]
#[cold]
fn forward_bridged(py: Python<'_>, bridge: *mut Bridge, trap: Bound<'_, PyAny>) -> Wire {
    // SAFETY: `bridge` is the running worker's; a short read.
    let loop_greenlet = unsafe { (*bridge).loop_greenlet.as_ref() }
        .expect("forward_bridged on an unbridged step")
        .bind(py)
        .clone();
    let Some(api) = api(py) else {
        return Wire::raise(
            py,
            PyRuntimeError::new_err("greenlet's C API disappeared during a bridged step"),
        );
    };
    let message = api
        .current(py)
        .and_then(|sender| Ok((TRAP, trap, sender).into_pyobject(py)?.into_any()));
    chain_runner_exceptions(py, bridge, false);
    let reply = message.and_then(|m| api.switch(&loop_greenlet, m));
    chain_runner_exceptions(py, bridge, true);
    Wire::from_msg(py, reply.and_then(|packed| unpack(&packed)))
}

/// The body of a worker's runner greenlet: runs steps until told to stop (None).
#[pyfunction]
fn _greenlet_runner(py: Python<'_>, job: Bound<'_, PyAny>) -> PyResult<()> {
    let mut job = job;
    loop {
        if job.is_none() {
            return Ok(());
        }
        let (coro, packed, context, call): (
            Bound<'_, PyAny>,
            Bound<'_, PyAny>,
            Bound<'_, PyAny>,
            bool,
        ) = job.extract()?;
        let context = if context.is_none() {
            ptr::null_mut()
        } else {
            context.into_ptr()
        };
        // SAFETY: GIL held; `context` is a new reference to a Context (or null), which
        // the thread state takes over; the old one is ours to release.
        let old = unsafe { crate::pystate::replace_live_context(context) };
        // SAFETY: as above.
        unsafe { ffi::Py_XDECREF(old) };
        chain_runner_exceptions(py, (host().current_bridge)(), true);
        let (end, result) = (host().run_step)(py, &coro, call, unpack(&packed));
        drop(coro);
        let code: u8 = match end {
            StepEnd::Yielded => 0,
            StepEnd::Returned => 1,
            StepEnd::Raised => 2,
        };
        let bridge = (host().current_bridge)();
        // SAFETY: the runner only runs inside its worker's bridged step, which set the
        // loop greenlet and keeps it until the step's DONE message is received; a null
        // bridge (no worker running) is refused below.
        let loop_greenlet = unsafe { bridge.as_ref() }
            .and_then(|b| b.loop_greenlet.as_ref())
            .map(|g| g.bind(py).clone())
            .ok_or_else(|| {
                PyRuntimeError::new_err("anywait greenlet runner resumed outside a step")
            })?;
        let done = (DONE, pack(py, result)?, code)
            .into_pyobject(py)?
            .into_any();
        let api = api(py).ok_or_else(|| PyRuntimeError::new_err("greenlet is not loaded"))?;
        chain_runner_exceptions(py, bridge, false);
        job = api.switch(&loop_greenlet, done)?;
    }
}

/// Ends a parked worker's runner greenlet on the worker's own stack (called by the
/// worker loop before it returns, running as the greenlet current on this thread).
pub(crate) fn stop_runner(py: Python<'_>, bridge: &mut Bridge) {
    let Some(runner) = bridge.runner.take() else {
        return;
    };
    let runner = runner.into_bound(py);
    let Some(api) = api(py) else {
        return;
    };
    // SAFETY: GIL held; `runner` is a greenlet.
    let alive = unsafe { (api.active)(runner.as_ptr()) } != 0;
    if alive {
        if let Ok(current) = api.current(py) {
            // SAFETY: GIL held; both are greenlets of this thread.
            if unsafe { (api.set_parent)(runner.as_ptr(), current.as_ptr()) } < 0 {
                drop(PyErr::take(py));
            }
        }
        if let Err(err) = api.switch(&runner, py.None().into_bound(py)) {
            err.write_unraisable(py, Some(&runner));
        }
    }
}
