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
//! Only when the greenlet module is loaded, and only for steps started from the thread's
//! own stack: a step of a portal nested in another step is resumed from that step's
//! greenlet, which does not live on this worker's stack, so it runs unbridged (a trap
//! there returns to the outer step, where the current greenlet is at home anyway).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::{ffi, intern};

use crate::fiber::{self, FiberCore, Msg, StepOutcome};

/// Message tags between the runner (and greenlets inside it) and the worker loop.
const DONE: u8 = 0;
const TRAP: u8 = 1;

/// The greenlet module if it has been imported, else None (nothing to bridge).
pub(crate) fn loaded(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    // SAFETY: GIL held; returns a new reference, or NULL (with an error only if the
    // lookup itself failed, which we clear: then there is no greenlet to bridge).
    let module = unsafe { ffi::PyImport_GetModule(intern!(py, "greenlet").as_ptr()) };
    if module.is_null() {
        drop(PyErr::take(py));
        return None;
    }
    // SAFETY: a new reference.
    Some(unsafe { Bound::from_owned_ptr(py, module) })
}

/// Per-worker bridge state (in the worker's slot); references are owned.
pub(crate) struct Bridge {
    /// The worker's runner greenlet, once made.
    runner: Option<Py<PyAny>>,
    /// The greenlet current when the running step began; set only during a bridged step.
    loop_greenlet: Option<Py<PyAny>>,
}

impl Bridge {
    pub(crate) const fn new() -> Self {
        Self {
            runner: None,
            loop_greenlet: None,
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
/// Called by the worker loop, running as the loop's greenlet.
pub(crate) fn run_step(
    py: Python<'_>,
    core: *mut FiberCore,
    greenlet: &Bound<'_, PyAny>,
    coro: &Bound<'_, PyAny>,
    msg: Msg,
) -> (StepOutcome, Msg) {
    match bridged_step(py, core, greenlet, coro, msg) {
        Ok(done) => done,
        Err(err) => (StepOutcome::Raised, Err(err)),
    }
}

fn bridged_step(
    py: Python<'_>,
    core: *mut FiberCore,
    greenlet: &Bound<'_, PyAny>,
    coro: &Bound<'_, PyAny>,
    msg: Msg,
) -> PyResult<(StepOutcome, Msg)> {
    let current = greenlet.call_method0(intern!(py, "getcurrent"))?;
    // SAFETY: `core` is the running worker; short accesses, no other reference live.
    let runner = match unsafe { (*core).worker.bridge.runner.as_ref() } {
        Some(runner) if !runner.bind(py).getattr(intern!(py, "dead"))?.is_truthy()? => {
            let runner = runner.bind(py).clone();
            if !runner.getattr(intern!(py, "parent"))?.is(&current) {
                runner.setattr(intern!(py, "parent"), &current)?;
            }
            runner
        }
        _ => {
            let body = wrap_pyfunction!(_greenlet_runner, py)?;
            let runner = greenlet
                .getattr(intern!(py, "greenlet"))?
                .call1((body, &current))?;
            // SAFETY: as above.
            unsafe { (*core).worker.bridge.runner = Some(runner.clone().unbind()) };
            runner
        }
    };
    // The step runs in the task's context, as an unbridged step would: the runner
    // adopts it (a greenlet may only set its context from its own thread, and one that
    // has not started yet has none).
    let context = crate::pystate::current_context();
    let context = if context.is_null() {
        py.None().into_bound(py)
    } else {
        // SAFETY: the thread's current context, a borrowed reference.
        unsafe { Bound::from_borrowed_ptr(py, context) }
    };
    // SAFETY: as above.
    unsafe { (*core).worker.bridge.loop_greenlet = Some(current.unbind()) };
    let job = (coro, pack(py, msg)?, context).into_pyobject(py)?;
    let mut reply = runner.call_method1(intern!(py, "switch"), (job,));
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
                unsafe { (*core).worker.bridge.runner.take().map(std::mem::forget) };
                break Err(err);
            }
        };
        if tag == DONE {
            let outcome = match sender.extract::<u8>()? {
                0 => StepOutcome::Yielded,
                1 => StepOutcome::Returned,
                _ => StepOutcome::Raised,
            };
            break Ok((outcome, unpack(&payload)));
        }
        // A trap from `await_` in `sender`: forward it to the loop as an unbridged step
        // would, with the loop's greenlet current, then hand the answer back.
        // SAFETY: as above.
        unsafe { (*core).worker.outcome = StepOutcome::Trap };
        let answer = fiber::suspend_msg(Ok(payload.unbind()));
        reply = sender.call_method1(intern!(py, "switch"), (pack(py, answer)?,));
    };
    // SAFETY: as above.
    let loop_greenlet = unsafe { (*core).worker.bridge.loop_greenlet.take() };
    drop(loop_greenlet.map(|g| g.into_bound(py)));
    result
}

/// Whether the running worker's step is bridged; if so, forwards `trap` to the worker
/// loop through the loop's greenlet and returns the loop's answer.
pub(crate) fn forward_trap<'py>(
    py: Python<'py>,
    core: *mut FiberCore,
    trap: Bound<'py, PyAny>,
) -> Result<Msg, Bound<'py, PyAny>> {
    // SAFETY: `core` is the running worker; a short read.
    let Some(loop_greenlet) = (unsafe { (*core).worker.bridge.loop_greenlet.as_ref() }) else {
        return Err(trap);
    };
    let loop_greenlet = loop_greenlet.bind(py).clone();
    let Some(greenlet) = loaded(py) else {
        return Ok(Err(PyRuntimeError::new_err(
            "the greenlet module disappeared during a bridged step",
        )));
    };
    let sender = match greenlet.call_method0(intern!(py, "getcurrent")) {
        Ok(sender) => sender,
        Err(err) => return Ok(Err(err)),
    };
    let reply = loop_greenlet.call_method1(intern!(py, "switch"), ((TRAP, trap, sender),));
    Ok(reply.and_then(|packed| unpack(&packed)))
}

/// The body of a worker's runner greenlet: runs steps until told to stop (None).
#[pyfunction]
fn _greenlet_runner(py: Python<'_>, job: Bound<'_, PyAny>) -> PyResult<()> {
    let mut job = job;
    loop {
        if job.is_none() {
            return Ok(());
        }
        let (coro, packed, context): (Bound<'_, PyAny>, Bound<'_, PyAny>, Bound<'_, PyAny>) =
            job.extract()?;
        if !context.is_none() {
            let this = loaded(py)
                .ok_or_else(|| PyRuntimeError::new_err("greenlet is not loaded"))?
                .call_method0(intern!(py, "getcurrent"))?;
            this.setattr(intern!(py, "gr_context"), context)?;
        }
        let (outcome, result) = crate::portal::run_step(py, &coro, unpack(&packed));
        drop(coro);
        let code: u8 = match outcome {
            StepOutcome::Yielded => 0,
            StepOutcome::Returned => 1,
            _ => 2,
        };
        let core = fiber::current();
        // SAFETY: the runner only runs inside its worker's bridged step, which set the
        // loop greenlet and keeps it until the step's DONE message is received.
        let loop_greenlet = unsafe { (*core).worker.bridge.loop_greenlet.as_ref() }
            .map(|g| g.bind(py).clone())
            .ok_or_else(|| {
                PyRuntimeError::new_err("anywait greenlet runner resumed outside a step")
            })?;
        let done = (DONE, pack(py, result)?, code);
        job = loop_greenlet.call_method1(intern!(py, "switch"), (done,))?;
    }
}

/// Ends a parked worker's runner greenlet on the worker's own stack (called by the
/// worker loop before it returns, running as the greenlet current on this thread).
pub(crate) fn stop_runner(py: Python<'_>, core: *mut FiberCore) {
    // SAFETY: `core` is the running worker; a short access.
    let Some(runner) = (unsafe { (*core).worker.bridge.runner.take() }) else {
        return;
    };
    let runner = runner.into_bound(py);
    let alive = runner
        .getattr(intern!(py, "dead"))
        .and_then(|d| d.is_truthy())
        .map(|dead| !dead)
        .unwrap_or(false);
    if alive {
        let current = loaded(py).and_then(|g| g.call_method0(intern!(py, "getcurrent")).ok());
        if let Some(current) = current {
            let _ = runner.setattr(intern!(py, "parent"), current);
        }
        if let Err(err) = runner.call_method1(intern!(py, "switch"), (py.None(),)) {
            err.write_unraisable(py, Some(&runner));
        }
    }
}
