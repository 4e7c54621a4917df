//! Fibers that run Python code: the core behind `anywait.lowlevel.Fiber` and the
//! portal's step workers.
//!
//! A [`FiberCore`] pairs a native fiber (crate `anywait-fiber`) with the interpreter
//! state of the code running on it ([`Snapshot`]). Resuming it is:
//!
//! ```text
//!   resumer's stack                         fiber's stack
//!   ---------------                         -------------
//!   resume(): checks, then
//!     swap(ts, fiber snapshot) -> saved     (no Python API from here ...)
//!     engine.resume(msg) ─────────────────▶ suspend() returns msg / body starts
//!                                           ... Python code runs ...
//!                                           suspend(v): yielder.suspend(v)
//!     ◀──────────────────────────────────── (or the body returns)
//!     swap(ts, saved) -> fiber snapshot     (... to here)
//! ```
//!
//! Both swaps happen on the resumer's side, so the fiber side of a switch is a bare
//! stack switch. The current fiber of each thread is a thread-local pointer
//! ([`current`]), which makes `suspend()` and `current()` O(1).
//!
//! A core does not know who made it or why: a fiber with a native body (a portal's
//! step worker) is recognised by its owner through its [`Tag`], and whatever state the
//! owner keeps beside it lives in the owner's own struct (see `portal::worker`).
//! How fibers end when nobody resumes them is in `lifetime`; thread ownership, the
//! stack pool and fork in `home`.

use std::cell::Cell;
use std::ptr;
use std::sync::Arc;

use anywait_fiber::{Fiber as Engine, Resumed, Yielder};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::{ffi, PyErr};

use super::body::{self, Body};
use super::home::{self, ThreadHome};
use super::linked::{lend, link_frames, unlink_frames, Link};
use super::relay;
use super::wire::{Msg, Wire};
use crate::fatal::fatal;
use crate::pystate::{self, FrameLink, HiddenStacks, Snapshot};

/// Which layer made a fiber, so that it can recognise its own among the running ones
/// ([`current`]). The fiber layer stores it and never interprets it, but for one rule:
/// only [`Tag::PLAIN`] fibers (`anywait.lowlevel.Fiber`) may be suspended from Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tag(pub(crate) u8);

impl Tag {
    /// A fiber running a Python callable (`Body::Call`).
    pub(crate) const PLAIN: Tag = Tag(0);
}

thread_local! {
    /// The innermost running fiber of this thread (null on the thread's own stack).
    static CURRENT: Cell<*mut FiberCore> = const { Cell::new(ptr::null_mut()) };
}

/// The engine type: every switch carries a [`Wire`] each way.
pub(super) type FiberEngine = Engine<Wire, Wire, Wire>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    NotStarted,
    /// On the thread's active chain: executing, or resumed another fiber that is.
    Running,
    Suspended,
    Dead,
}

/// The state of one fiber. It must not move once started (its address is captured by
/// the body closure and stored in [`CURRENT`]): it lives in a `Box`, owned by the
/// Python `Fiber` object, or inside the boxed struct of whoever made it.
///
/// All access happens on the owner thread with the GIL held, through raw pointers:
/// the same core is reached both from the resumer (`resume`) and from the fiber itself
/// (`suspend`, `current`), so no `&mut FiberCore` may live across a switch.
pub(crate) struct FiberCore {
    status: Status,
    /// Present from first resume until the fiber finishes.
    pub(super) engine: Option<FiberEngine>,
    /// The fiber's interpreter state while it is not running (None while running, and
    /// once dead). Before the first resume: None; made by `start`.
    pub(super) snapshot: Option<Snapshot>,
    /// Until started.
    pub(super) body: Option<Body>,
    /// Whose fiber this is (see [`Tag`]); fixed at creation.
    pub(super) tag: Tag,
    /// The context the fiber will run in, until started (then owned by the snapshot).
    pub(super) context: Option<Py<PyAny>>,
    /// Valid while the fiber runs or is suspended: set by the body on entry.
    pub(super) yielder: *const Yielder<Wire, Wire>,
    /// Who resumed us (another fiber, or null for the thread's own stack); valid while
    /// running. Restored into CURRENT when we suspend or finish.
    resumer: *mut FiberCore,
    /// Borrowed pointer to our Python object while running (the call that resumed us
    /// holds a reference); null otherwise, and during a kill after the object died.
    pyobj: *mut ffi::PyObject,
    home: Arc<ThreadHome>,
    /// A linked fiber runs as part of whoever resumes it, the way a generator's frame
    /// runs as part of its consumer's: see [`FiberCore::new_linked`].
    pub(super) linked: bool,
    /// Linked fibers: the resumer's context the fiber was last given (borrowed, for
    /// comparison only: the snapshot owns its context). While the fiber's context is
    /// still that one, the next resume gives it the next resumer's.
    pub(super) lent_context: *mut ffi::PyObject,
    /// Set while the fiber is suspended handing a trap of an `await_` in it to its
    /// resumer (see `relay`); such a fiber is busy, not free to resume.
    pub(super) relaying: bool,
    /// A trap sink's resumer takes the traps of `await_` in it itself (see `relay`).
    pub(super) trap_sink: bool,
    /// Set when a trap sink suspended with a trap rather than a value; cleared by
    /// whoever reads it (`relay::take_trapped`).
    pub(super) trapped: bool,
    /// The fiber's exception chain continues into its resumer's on each resume (linked
    /// fibers, and those made to by [`FiberCore::continue_exception_chain`]).
    pub(super) chains_exceptions: bool,
    /// Set when the fiber is resumed under a later instrumentation version than it ran:
    /// it re-instruments its frames' code as soon as it is running (`suspend_running`).
    pub(super) stale_instrumentation: bool,
    /// Linked fibers, once started: where their frame chain meets the resumer's.
    pub(super) frames: Option<FrameLink>,
    /// The fiber runs as part of its resumer, as a coroutine's or generator's frame
    /// runs as part of whoever steps it (linked fibers, portal step workers): a
    /// `sys.settrace` tracer is told of the frames each resume resumes
    /// ([`FiberCore::tell_tracer_of_resumes`], `pystate::tracing`).
    pub(super) tells_tracer_of_resumes: bool,
    /// Set by a resume under a legacy tracer, for the fiber to report its resumed frames
    /// to it once running (`pystate::tracing`): where they end, the resumer's innermost
    /// frame object (borrowed for the resume), or null.
    pub(super) report_resume_below: Option<*mut ffi::PyObject>,
    /// While suspended (not linked): the generator frames of its chain, hidden from
    /// their generators' traversal so that the owner can report them (`gc`).
    pub(super) hidden: HiddenStacks,
}

impl FiberCore {
    /// `context` is the contextvars context the fiber starts in (None: empty). The
    /// core may be moved until its first resume, never after (see the type's docs).
    pub(crate) fn new(body: Body, context: Option<Py<PyAny>>) -> PyResult<Self> {
        let tag = match body {
            Body::Call { .. } => Tag::PLAIN,
            Body::Native { tag, .. } => tag,
        };
        Ok(Self {
            status: Status::NotStarted,
            engine: None,
            snapshot: None,
            body: Some(body),
            tag,
            context,
            yielder: ptr::null(),
            resumer: ptr::null_mut(),
            pyobj: ptr::null_mut(),
            home: home::this_home()?,
            linked: false,
            lent_context: ptr::null_mut(),
            relaying: false,
            trap_sink: false,
            trapped: false,
            chains_exceptions: false,
            stale_instrumentation: false,
            frames: None,
            tells_tracer_of_resumes: false,
            report_resume_below: None,
            hidden: HiddenStacks::new(),
        })
    }

    /// Who resumed the running fiber: another fiber, or null for the thread's stack.
    #[inline]
    pub(crate) fn resumer(&self) -> *mut FiberCore {
        self.resumer
    }

    /// Whether the fiber is suspended handing a trap to its resumer (see `relay`).
    #[inline]
    pub(crate) fn relaying(&self) -> bool {
        self.relaying
    }

    pub(crate) fn status(&self) -> Status {
        self.status
    }

    #[inline]
    pub(crate) fn tag(&self) -> Tag {
        self.tag
    }

    pub(crate) fn home(&self) -> &Arc<ThreadHome> {
        &self.home
    }

    /// Gives a suspended fiber `context` (an owned reference) in place of its own, and
    /// returns its old one (owned, possibly null): a step worker runs each new step in
    /// the context of whoever resumes it.
    pub(crate) fn replace_context(&mut self, context: *mut ffi::PyObject) -> *mut ffi::PyObject {
        self.snapshot
            .as_mut()
            .expect("replace_context on a fiber that is not suspended")
            .replace_context(context)
    }

    /// Drops the body and context of a fiber that never started (GC clear, close).
    pub(crate) fn clear_unstarted(&mut self) {
        if self.status == Status::NotStarted {
            self.body = None;
            self.context = None;
        }
    }

    /// Marks a fiber that never ran as finished, dropping its body and context.
    pub(crate) fn close_unstarted(&mut self) {
        debug_assert_eq!(self.status, Status::NotStarted);
        self.clear_unstarted();
        self.status = Status::Dead;
    }

    /// Whether the running fiber was resumed from its thread's own stack (not from
    /// inside another fiber).
    pub(crate) fn resumed_from_thread_stack(&self) -> bool {
        self.resumer.is_null()
    }

    #[inline]
    pub(crate) fn on_owner_thread(&self) -> bool {
        self.home.is_current()
    }
}

impl Drop for FiberCore {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            // Only a suspended (refused to die, or abandoned) fiber still has an engine:
            // the engine leaks its stack, and the snapshot's references leak with it,
            // since frames on that stack may still use them.
            debug_assert!(engine.suspended());
            // Snapshot holds raw pointers and has no Drop: discarding it leaks them.
            self.snapshot = None;
            // SAFETY: the suspended frames stay where they are (leaked with the stack).
            unsafe { self.hidden.reveal() };
            // A started body's call may still be using its objects on that stack.
            if let Some(body) = self.body.take() {
                std::mem::forget(body);
            }
            engine.leak();
        }
    }
}

/// The innermost running fiber's core on this thread, or null.
#[inline]
pub(crate) fn current() -> *mut FiberCore {
    CURRENT.with(Cell::get)
}

/// The Python object of the innermost running fiber, if any (and if it still exists).
pub(crate) fn current_object(py: Python<'_>) -> Option<Py<PyAny>> {
    let core = current();
    if core.is_null() {
        return None;
    }
    // SAFETY: CURRENT only holds cores that are running on this thread, which are alive
    // (owned by an object the resuming call holds, or by a kill in progress).
    let obj = unsafe { (*core).pyobj };
    // SAFETY: a non-null pyobj is alive while its fiber runs (field invariant).
    (!obj.is_null()).then(|| unsafe { Bound::from_borrowed_ptr(py, obj) }.unbind())
}

/// Resumes (or starts) the fiber, delivering `msg`, and returns what it hands back:
/// the value it suspended with or returned, or the exception that escaped it.
///
/// # Safety
/// `core` points to a live core, and `pyobj` is its Python object (or null) kept alive
/// by the caller for the duration of the call.
pub(crate) unsafe fn resume(
    py: Python<'_>,
    core: *mut FiberCore,
    pyobj: *mut ffi::PyObject,
    msg: Msg,
) -> Msg {
    let msg = Wire::from_msg(py, msg);
    // SAFETY: forwarded contract.
    unsafe { resume_wire(py, core, pyobj, msg) }.into_msg(py)
}

/// [`resume`] with the message as it crosses the switch.
///
/// # Safety
/// As for [`resume`].
pub(crate) unsafe fn resume_wire(
    py: Python<'_>,
    core: *mut FiberCore,
    pyobj: *mut ffi::PyObject,
    msg: Wire,
) -> Wire {
    // Fibers whose objects died on other threads are unwound at this thread's next
    // fiber operation (cheap when there are none: a thread-local and an atomic load).
    home::run_pending(py);
    // SAFETY: live core (caller); no other reference to it is active here.
    let c = unsafe { &mut *core };
    let out = if c.status == Status::Suspended && !c.relaying && c.on_owner_thread() {
        // SAFETY: forwarded contract.
        unsafe { switch_into(py, core, pyobj, msg) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { resume_other(py, core, pyobj, msg) }
    };
    // SAFETY: live core (caller); read after the switch, nothing else holds it.
    if unsafe { (*core).relaying } {
        // SAFETY: forwarded contract; the fiber is suspended relaying.
        return unsafe { relay::serve(py, core, pyobj, out) };
    }
    out
}

/// [`resume_wire`] for all but the common case (a suspended fiber on its own thread):
/// a first resume, or an error.
///
/// # Safety
/// As for [`resume`].
#[inline(never)]
unsafe fn resume_other(
    py: Python<'_>,
    core: *mut FiberCore,
    pyobj: *mut ffi::PyObject,
    msg: Wire,
) -> Wire {
    // SAFETY: live core (caller); no other reference to it is active here.
    let c = unsafe { &mut *core };
    let refuse = |msg: Wire, err: PyErr| {
        msg.release(py);
        Wire::raise(py, err)
    };
    if c.linked && c.status == Status::NotStarted && !c.on_owner_thread() {
        // A generator may be made on one thread and consumed on another, as a native
        // one may: until it starts it has no stack, and it belongs to the thread that
        // starts it.
        match home::this_home() {
            Ok(home) => c.home = home,
            Err(err) => return refuse(msg, err),
        }
    }
    if !c.on_owner_thread() {
        if c.linked {
            return refuse(
                msg,
                PyRuntimeError::new_err(
                    "cannot resume this generator from a thread other than the one that \
                     started it: its frames are on that thread's fiber stack",
                ),
            );
        }
        return refuse(
            msg,
            PyRuntimeError::new_err(
                "cannot switch to a fiber from a thread other than the one that created it",
            ),
        );
    }
    if c.relaying {
        return refuse(
            msg,
            PyValueError::new_err(
                "cannot resume this fiber: it is waiting in await_() for its resumer's event loop",
            ),
        );
    }
    match c.status {
        Status::Running => refuse(msg, PyRuntimeError::new_err(
            "cannot switch to a running fiber (it is executing, or waiting for a fiber it resumed)",
        )),
        Status::Dead => refuse(msg, PyRuntimeError::new_err("cannot switch to a finished fiber")),
        Status::NotStarted => {
            let value = match msg {
                Wire::Raise(exc) => {
                    // Thrown in before the body ran: the fiber dies without running.
                    c.status = Status::Dead;
                    c.body = None;
                    c.context = None;
                    return Wire::Raise(exc);
                }
                Wire::Value(value) => value.into_bound(py),
            };
            if !value.is_none() {
                return Wire::raise(
                    py,
                    PyTypeError::new_err("can't send non-None value to a fiber that has not started"),
                );
            }
            // SAFETY: forwarded contract.
            if let Err(err) = unsafe { start(core) } {
                return Wire::raise(py, err);
            }
            // SAFETY: as above.
            unsafe { switch_into(py, core, pyobj, Wire::Value(value.unbind())) }
        }
        // SAFETY: forwarded contract.
        Status::Suspended => unsafe { switch_into(py, core, pyobj, msg) },
    }
}

/// Makes the engine and initial snapshot of a fiber about to run for the first time.
///
/// # Safety
/// `core` is live, not started, and owned by this thread.
unsafe fn start(core: *mut FiberCore) -> PyResult<()> {
    let stack = home::take_stack()?;
    // SAFETY: live core; nothing else references it during this call.
    let c = unsafe { &mut *core };
    let context = c.context.take().map_or(ptr::null_mut(), Py::into_ptr);
    let body_core = core;
    let engine = FiberEngine::new(stack, move |yielder: &Yielder<Wire, Wire>, first: Wire| {
        // SAFETY: the thread that resumed us holds the GIL.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: the core outlives its engine (it owns it). From here on the core is
        // reached through raw pointers only, by `suspend`, `current` and GC traversal.
        unsafe { (*body_core).yielder = yielder };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the running fiber's own core, started with its body.
            unsafe { body::run(py, body_core, first) }
        }));
        result.unwrap_or_else(|_| fatal("a Rust panic reached the root of a fiber stack"))
    });
    // SAFETY: this thread's state; the stack is fresh from the pool and unused.
    let snapshot = unsafe { Snapshot::fresh(pystate::thread_state(), context, &engine.bounds()) };
    if c.linked {
        c.frames = Some(FrameLink::new(&engine.bounds()));
    }
    c.engine = Some(engine);
    c.snapshot = Some(snapshot);
    Ok(())
}

/// The switch proper (see the module diagram).
///
/// # Safety
/// `core` is live, started and suspended (or freshly started), on this thread.
pub(super) unsafe fn switch_into(
    py: Python<'_>,
    core: *mut FiberCore,
    pyobj: *mut ffi::PyObject,
    msg: Wire,
) -> Wire {
    // SAFETY: no error indicator check needs more than the GIL.
    if unsafe { !ffi::PyErr_Occurred().is_null() } {
        msg.release(py);
        return Wire::raise(
            py,
            PyRuntimeError::new_err("cannot switch fibers while an exception is pending"),
        );
    }
    let ts = pystate::thread_state();
    // One thread-local access for the whole switch: the fiber runs on this thread, so
    // the cell's address stays valid across it.
    let current_cell: *const Cell<*mut FiberCore> = CURRENT.with(ptr::from_ref);
    // SAFETY: this thread's state, GIL held; a short read of the live core.
    if unsafe { pystate::tracing::tracer_set(ts) && (*core).tells_tracer_of_resumes } {
        // A fiber that runs as part of its resumer tells a tracer about the frames this
        // resume resumes, as their native twins' resumes would. Nothing is switched or
        // lent yet: making the resumer's frame object may run a collection, and a
        // finalizer that switches to this fiber meanwhile is refused here.
        // SAFETY: a short read of the live core.
        let before = unsafe { (*core).status };
        let below = pystate::tracing::innermost_frame(py);
        // SAFETY: as above.
        if unsafe { (*core).status != before || (*core).snapshot.is_none() } {
            msg.release(py);
            return Wire::raise(
                py,
                PyRuntimeError::new_err(
                    "cannot switch to this fiber: code run while switching to it (a \
                     finalizer) switched to it first",
                ),
            );
        }
        // SAFETY: live core, not running yet.
        unsafe { (*core).report_resume_below = Some(below) };
    }
    // SAFETY: a short read of the live core.
    let linked = unsafe { (*core).linked };
    let mut link = Link::NONE;
    if linked {
        // SAFETY: live core, this thread, GIL held; nothing is switched yet (this may
        // call the C API: CURRENT and the status are still the resumer's view).
        link = unsafe { lend(ts, core) };
    }
    // SAFETY: live core, and the only reference until the engine is resumed; the cell
    // is this thread's and outlives the call.
    let mut fiber_state = unsafe {
        let c = &mut *core;
        c.resumer = (*current_cell).replace(core);
        c.pyobj = pyobj;
        c.status = Status::Running;
        // The chain runs again: its generator frames get their extents back first.
        c.hidden.reveal();
        c.snapshot
            .take()
            .expect("suspended fiber without a snapshot")
    };
    // SAFETY: this thread's state, GIL held; no Python API.
    let version = unsafe { pystate::monitoring::version(ts) };
    if fiber_state.version() != version && fiber_state.has_frames() {
        // SAFETY: live core, not running yet.
        unsafe { (*core).stale_instrumentation = true };
    }
    if linked {
        // SAFETY: the resumer's state is installed; `fiber_state` is this core's.
        unsafe { link_frames(ts, core, &mut fiber_state) };
    }

    // SAFETY: ts is this thread's state, GIL held; from here to the swap back only the
    // stack switch happens (no Python API).
    let outer = unsafe { pystate::swap(ts, fiber_state) };
    let mut patched = ptr::null_mut();
    // SAFETY: a short read of the live core.
    let chained = unsafe { (*core).chains_exceptions };
    if chained {
        // SAFETY: the fiber's state is installed; `outer` stays where it is (a local)
        // until the swap back, after which the link is undone.
        patched = unsafe { pystate::link_exception_chain(ts, &outer) };
    }
    // SAFETY: the engine is present while started and not finished; `&mut` to it lasts
    // only for the resume call, during which the fiber touches the core through its own
    // raw pointer, never the engine.
    let resumed = unsafe { (*core).engine.as_mut().expect("engine").resume(msg) };
    // SAFETY: as above: back on the resumer's stack, restoring its view.
    let mut fiber_state = unsafe { pystate::swap(ts, outer) };
    if chained {
        fiber_state.unlink(link.depth);
        // SAFETY: the resumer's state is installed again; `patched` came from this
        // resume's link.
        unsafe { pystate::restore_exception_chain(ts, patched) };
    }
    if linked {
        let finished = matches!(resumed, Resumed::Return(_));
        // SAFETY: as above; the frames were linked for this resume.
        unsafe { unlink_frames(ts, core, &mut fiber_state, finished) };
    }

    // SAFETY: the fiber is parked or finished: nothing else references the core now.
    let c = unsafe { &mut *core };
    // SAFETY: as above (same thread, cell alive).
    unsafe { (*current_cell).set(c.resumer) };
    c.resumer = ptr::null_mut();
    c.pyobj = ptr::null_mut();
    // Unless the fiber took them (a first resume, a return from a body's start, does
    // not): the resumer's frame is no longer borrowed.
    c.report_resume_below = None;
    // The context the fiber had before this resume lent it a new one; released only
    // now that the switch is complete (its deallocation may run Python code).
    // SAFETY: an owned reference or null; GIL held.
    unsafe { ffi::Py_XDECREF(link.released_context) };
    // SAFETY: this thread's state, GIL held.
    let version_now = unsafe { pystate::monitoring::version(ts) };
    fiber_state.set_version(version_now);
    let out = match resumed {
        Resumed::Yield(value) => {
            c.status = Status::Suspended;
            if !c.linked {
                // SAFETY: the chain was just saved and stays suspended until `reveal`.
                unsafe { c.hidden.hide(&fiber_state, ts) };
            }
            c.snapshot = Some(fiber_state);
            value
        }
        Resumed::Return(result) => {
            c.status = Status::Dead;
            c.yielder = ptr::null();
            #[cfg(debug_assertions)]
            debug_assert!(
                fiber_state.is_unwound(),
                "fiber finished with live state: {fiber_state:?}"
            );
            // SAFETY: GIL held, snapshot no longer installed.
            unsafe { fiber_state.release_references() };
            let engine = c.engine.take().expect("engine");
            home::give_stack(engine.into_stack());
            result
        }
    };
    if version_now != version {
        // Tools changed while the fiber ran: the resumer's frames, off every chain
        // meanwhile, have the old instrumentation. (Python code runs here: the core's
        // state is complete again.)
        pystate::monitoring::refresh(py);
    }
    out
}
