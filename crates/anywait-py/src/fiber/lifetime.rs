//! How a suspended fiber ends when nobody will resume it again: killed on its own
//! thread, queued for its owner thread, or abandoned.
//!
//! A suspended fiber whose object dies is unwound by throwing `FiberExit` into it on
//! its own thread ([`kill`]; `GeneratorExit` into a linked fiber, as for a generator); if the object dies on another thread the core is queued
//! for its owner thread ([`place_orphan`]), and if the owner thread is gone the core is
//! abandoned ([`abandon`]): its references are dropped, its stack is leaked, none of its
//! code runs. A fiber that will not die is leaked the same way. Nothing here ever frees
//! a stack with frames on it.

use std::ptr;

use pyo3::exceptions::{PyGeneratorExit, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::{ffi, PyErr};

use super::errors::FiberExit;
use super::home;
use super::switch::{resume, FiberCore, Status};

/// How a fiber ended after `FiberExit` was thrown in.
pub(crate) enum KillOutcome {
    Died,
    /// It caught FiberExit and suspended again.
    Refused,
    /// Another exception escaped it.
    Raised(PyErr),
}

/// Throws `FiberExit` into a suspended fiber and runs it to its end.
///
/// # Safety
/// As for [`resume`]; the fiber is suspended and on this thread.
pub(crate) unsafe fn kill(
    py: Python<'_>,
    core: *mut FiberCore,
    pyobj: *mut ffi::PyObject,
) -> KillOutcome {
    // SAFETY: live core (caller).
    let linked = unsafe { (*core).linked() };
    let exit = if linked {
        PyErr::new::<PyGeneratorExit, _>(())
    } else {
        PyErr::new::<FiberExit, _>(())
    };
    // SAFETY: forwarded contract.
    match unsafe { resume(py, core, pyobj, Err(exit)) } {
        Err(e) if !linked && e.is_instance_of::<FiberExit>(py) => KillOutcome::Died,
        Err(e) if linked && e.is_instance_of::<PyGeneratorExit>(py) => KillOutcome::Died,
        Err(e) => KillOutcome::Raised(e),
        // SAFETY: live core.
        Ok(_) if unsafe { (*core).status() } == Status::Dead => KillOutcome::Died,
        Ok(_) => KillOutcome::Refused,
    }
}

/// What to do with the core of a suspended fiber whose Python object is dying.
pub(crate) enum Orphan {
    /// On its own thread: unwind it here and now.
    KillHere,
    /// Handed to its (living) owner thread, which unwinds it at its next fiber operation.
    Queued,
    /// Its thread is gone: references dropped, stack leaked, no code run.
    Abandoned,
}

/// A core travelling to its owner thread's queue. Boxed: its address is captured by
/// its fiber's body and must not change.
struct QueuedCore(Box<FiberCore>);

// SAFETY: a core is only moved to another thread's queue (under the GIL, from
// `place_orphan`) and is only ever resumed on its owner thread (`resume` checks).
// While queued nothing touches it.
unsafe impl Send for QueuedCore {}

impl QueuedCore {
    /// Unwinds the core on its owner thread (the queue's consumer).
    fn unwind(self, py: Python<'_>) {
        let QueuedCore(mut core) = self;
        let raw: *mut FiberCore = &mut *core;
        // SAFETY: the core is live (owned here), suspended, on its thread; it has no
        // Python object any more, so current() reports None while it unwinds.
        match unsafe { kill(py, raw, ptr::null_mut()) } {
            KillOutcome::Died => {}
            KillOutcome::Raised(e) => e.write_unraisable(py, None),
            KillOutcome::Refused => refused_to_die(py, &core),
        }
        drop(core);
    }
}

/// Disposes of the core of a suspended fiber whose object is dying on a thread that
/// may not be its own. `take` is called to move the core out when it must leave.
pub(crate) fn place_orphan(
    py: Python<'_>,
    core: &FiberCore,
    take: impl FnOnce() -> Box<FiberCore>,
) -> Orphan {
    if core.on_owner_thread() {
        return Orphan::KillHere;
    }
    let home = core.home();
    if home.is_alive(py) {
        let queued = QueuedCore(take());
        match home.queue(Box::new(move |py| queued.unwind(py))) {
            Ok(()) => return Orphan::Queued,
            // A poisoned queue: the work (and the core in it) is leaked, never dropped
            // here, where its frames cannot run.
            Err(work) => std::mem::forget(work),
        }
        return Orphan::Abandoned;
    }
    let mut core = take();
    abandon(py, &mut core);
    drop(core); // its Drop leaks the suspended engine and stack
    Orphan::Abandoned
}

/// Drops what a suspended fiber owns without running any of its code: body, context
/// and the references of its saved interpreter state. The caller then drops the core,
/// whose `Drop` leaks the suspended stack.
pub(crate) fn abandon(py: Python<'_>, core: &mut FiberCore) {
    core.release_suspended_references(py);
}

/// Ends the suspended fiber of an object that is garbage (its `tp_finalize`): unwound
/// here when this is its thread, queued for its thread otherwise, and if that thread has
/// ended, abandoned and reported. Errors escaping the unwinding are reported as
/// unraisable, with `obj`.
///
/// # Safety
/// `core` is `obj`'s live, suspended core, which `take` moves out of `obj`; the GIL is
/// held and `obj` is alive for the call.
pub(crate) unsafe fn end_suspended(
    py: Python<'_>,
    core: *mut FiberCore,
    obj: &Bound<'_, PyAny>,
    take: impl FnOnce() -> Box<FiberCore>,
) {
    // SAFETY: live core (caller).
    let linked = unsafe { (*core).linked() };
    // SAFETY: as above.
    match place_orphan(py, unsafe { &*core }, take) {
        Orphan::Queued => {}
        Orphan::Abandoned => {
            let what = if linked { "generator" } else { "fiber" };
            PyRuntimeError::new_err(format!(
                "a suspended anywait {what} was garbage-collected after its thread ended \
                 (or in a forked child, which has no copy of that thread); its stack is \
                 leaked and its finally blocks never run (close it on its own thread \
                 before the thread ends)"
            ))
            .write_unraisable(py, Some(obj));
        }
        // SAFETY: our core, suspended, on its own thread; `obj` is alive (caller).
        Orphan::KillHere => match unsafe { kill(py, core, obj.as_ptr()) } {
            KillOutcome::Died => {}
            KillOutcome::Raised(err) => err.write_unraisable(py, Some(obj)),
            // SAFETY: our core, still owned by `obj` (it refused to die).
            KillOutcome::Refused => refused_to_die(py, unsafe { &*core }),
        },
    }
}

/// Runs `finalize` (the part of a `tp_finalize` that may run fiber code) unless the
/// interpreter is shutting down: PyO3 refuses to attach then, and fiber code must not
/// run anyway (it could meet half-torn-down modules), so suspended fibers are left to go
/// down with the process. An exception pending on entry is kept, as `tp_finalize` must.
pub(crate) fn unless_shutting_down(finalize: impl FnOnce(Python<'_>)) {
    // SAFETY: no preconditions.
    if unsafe { ffi::Py_IsInitialized() } == 0 || crate::pystate::layout::interpreter_finalizing() {
        return;
    }
    Python::attach(|py| {
        let pending = PyErr::take(py);
        finalize(py);
        if let Some(err) = pending {
            err.restore(py);
        }
    });
}

/// Reports a fiber that caught the exception [`kill`] threw in and suspended again;
/// it is leaked.
pub(crate) fn refused_to_die(py: Python<'_>, core: &FiberCore) {
    let message = if core.linked() {
        "a garbage-collected generator ignored GeneratorExit (it suspended again); its \
         stack is leaked"
    } else {
        "a garbage-collected fiber caught FiberExit and suspended again; its stack is leaked"
    };
    PyRuntimeError::new_err(message).write_unraisable(py, None);
}

impl FiberCore {
    /// Drops what a suspended fiber owns without running any of its code: body,
    /// context, and the references its saved interpreter state holds. Its stack stays
    /// (dropping the core then leaks it): for a fiber that will never run again.
    pub(crate) fn release_suspended_references(&mut self, _py: Python<'_>) {
        if self.status() == Status::NotStarted {
            self.body = None;
        } else if let Some(body) = self.body.take() {
            // A started call is still on the stack that is being leaked, using the
            // body's objects through borrowed pointers: they leak with it.
            std::mem::forget(body);
        }
        self.context = None;
        // SAFETY: the frames stay where they are (leaked with the stack).
        unsafe { self.hidden.reveal() };
        if let Some(snapshot) = self.snapshot.take() {
            // SAFETY: GIL held (the `_py` token); the snapshot is not installed.
            unsafe { snapshot.release_references() };
        }
    }

    /// Ends a suspended fiber without running anything, and gives its stack back to
    /// the pool. Needs no GIL.
    ///
    /// # Safety
    /// The fiber is suspended on this thread, and what is suspended on its stack owns
    /// nothing and holds no interpreter frames (a native body parked in a suspend), so
    /// that throwing the stack away loses nothing; its snapshot holds no references.
    pub(crate) unsafe fn reset_parked(&mut self) {
        self.snapshot = None; // raw pointers only (caller)
        if let Some(engine) = self.engine.take() {
            // SAFETY: the stack holds nothing that needs unwinding (caller).
            let stack = unsafe { engine.reset_into_stack() };
            home::give_stack(stack);
        }
    }
}
