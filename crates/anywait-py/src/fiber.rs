//! Fibers that run Python code: the engine behind `anywait.lowlevel.Fiber`.
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
//! Lifetimes. A fiber's Python object owns its core. A suspended fiber whose object
//! dies is unwound by throwing `FiberExit` into it on its own thread (`kill`); if the
//! object dies on another thread the core is queued for its owner thread, and if the
//! owner thread is gone the core is abandoned: its references are dropped, its stack
//! is leaked, none of its code runs. A fiber that will not die is leaked the same way.
//! Nothing here ever frees a stack with frames on it.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};

use anywait_fiber::{Fiber as Engine, FiberStack, Resumed, StackLayout, StackPool, Yielder};
use pyo3::exceptions::{PyBaseException, PyMemoryError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{ffi, PyErr};

use crate::errors::FiberExit;
use crate::pystate::{self, Snapshot};

/// What a switch delivers, in both directions: a value, or an exception to raise.
pub(crate) type Msg = PyResult<Py<PyAny>>;

/// A [`Msg`] as it crosses the stack switch: two words, where a `PyErr` is eight on
/// 3.11. Frames holding one (the fiber's root, the worker loop, `await_`) stay on
/// the stack of every task blocked in `await_`, so their size is memory per task.
/// Drop it with [`Wire::release`]: a `Py` dropped where PyO3 has counted no attach
/// is queued instead of released.
pub(crate) enum Wire {
    Value(Py<PyAny>),
    /// An exception instance, its traceback attached.
    Raise(Py<PyBaseException>),
}

impl Wire {
    #[inline]
    pub(crate) fn from_msg(py: Python<'_>, msg: Msg) -> Self {
        match msg {
            Ok(value) => Wire::Value(value),
            Err(err) => Wire::raise(py, err),
        }
    }

    /// An error as a `Wire` (normalizes it: the exception is made now). Through the
    /// interpreter's error indicator rather than `PyErr::into_value`, which drops
    /// references of its own: where PyO3 counts no attach, that would only queue them.
    #[inline(never)]
    pub(crate) fn raise(py: Python<'_>, err: PyErr) -> Self {
        err.restore(py);
        Wire::fetch(py)
    }

    /// The exception the last C API call raised (it must have raised).
    #[inline(never)]
    pub(crate) fn fetch(py: Python<'_>) -> Self {
        // SAFETY: GIL held; an exception is set (caller).
        let exc = unsafe { take_raised_exception() };
        debug_assert!(!exc.is_null(), "Wire::fetch without an exception set");
        // SAFETY: a new reference to an exception instance.
        Wire::Raise(unsafe {
            Bound::from_owned_ptr(py, exc)
                .cast_into_unchecked()
                .unbind()
        })
    }

    #[inline]
    pub(crate) fn into_msg(self, py: Python<'_>) -> Msg {
        match self {
            Wire::Value(value) => Ok(value),
            Wire::Raise(exc) => Err(error_from(py, exc)),
        }
    }

    /// Drops the reference now (see the type's docs).
    pub(crate) fn release(self, py: Python<'_>) {
        match self {
            Wire::Value(value) => drop(value.into_bound(py)),
            Wire::Raise(exc) => drop(exc.into_bound(py)),
        }
    }
}

/// Takes the exception being raised, as a normalized instance with its traceback
/// attached (a new reference; NULL if none is set).
///
/// # Safety
/// GIL held.
#[cfg(Py_3_12)]
unsafe fn take_raised_exception() -> *mut ffi::PyObject {
    // SAFETY: GIL held (caller).
    unsafe { ffi::PyErr_GetRaisedException() }
}

/// See the 3.12+ version.
///
/// # Safety
/// GIL held.
#[cfg(not(Py_3_12))]
unsafe fn take_raised_exception() -> *mut ffi::PyObject {
    let mut ty = ptr::null_mut();
    let mut value = ptr::null_mut();
    let mut tb = ptr::null_mut();
    // SAFETY: GIL held (caller); the three out-pointers receive new references (or
    // NULL), which are released or returned below.
    unsafe {
        ffi::PyErr_Fetch(&mut ty, &mut value, &mut tb);
        if ty.is_null() {
            return ptr::null_mut();
        }
        ffi::PyErr_NormalizeException(&mut ty, &mut value, &mut tb);
        if !tb.is_null() && !value.is_null() {
            ffi::PyException_SetTraceback(value, tb);
        }
        ffi::Py_XDECREF(ty);
        ffi::Py_XDECREF(tb);
    }
    value
}

/// The `PyErr` that raises `exc` (out of line: only error paths pay for a `PyErr`).
#[inline(never)]
pub(crate) fn error_from(py: Python<'_>, exc: Py<PyBaseException>) -> PyErr {
    PyErr::from_value(exc.into_bound(py).into_any())
}

/// Usable C stack per fiber: the size of a main thread's stack, which CPython's default
/// limits are tuned for. Only touched pages cost memory.
const STACK_USABLE_BYTES: usize = 8 * 1024 * 1024;
/// The stack base sits this far into the reserved area's first page, so the C stack's
/// top and the reserved area's start (root C frame, root data-stack chunk) share it.
/// With the small frames of the switch path (see `Wire`), a task blocked in
/// `await_(event.wait())` then touches that one page only: its C stack peaks at
/// 2.0-3.2 KiB on 3.11-3.13, asyncio and Trio (benches/bench_portal.py, RSS row).
const STACK_BASE_SKEW: usize = 3584;

/// Idle stacks kept per thread; more are unmapped when they come back.
const POOL_CAP: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    NotStarted,
    /// On the thread's active chain: executing, or resumed another fiber that is.
    Running,
    Suspended,
    Dead,
}

/// What a fiber runs.
pub(crate) enum Body {
    /// `func(*args, **kwargs)`: the body of an `anywait.lowlevel.Fiber`.
    Call {
        func: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    },
    /// A native loop run on the fiber (a portal's step worker). It receives the
    /// message of the first resume and returns the fiber's final message.
    Native(fn(Python<'_>, *mut FiberCore, Wire) -> Wire),
}

impl Body {
    fn run(self, py: Python<'_>, core: *mut FiberCore, first: Wire) -> Wire {
        match self {
            Body::Call { func, args, kwargs } => call_body(py, func, args, kwargs, first),
            Body::Native(run) => run(py, core, first),
        }
    }
}

/// The body of an `anywait.lowlevel.Fiber`. Out of line: `Body::run` sits at the root
/// of every fiber stack, portal workers' included, whose frames should stay small.
#[inline(never)]
fn call_body(
    py: Python<'_>,
    func: Py<PyAny>,
    args: Py<PyTuple>,
    kwargs: Option<Py<PyDict>>,
    first: Wire,
) -> Wire {
    // None (checked by `resume` before starting). Dropped as Bound, like every object
    // released on these paths: a `Py` dropped where PyO3 has not counted an attach is
    // queued for later instead of released.
    first.release(py);
    let func = func.into_bound(py);
    let args = args.into_bound(py);
    let kwargs = kwargs.map(|k| k.into_bound(py));
    let result = if args.is_empty() && kwargs.is_none() {
        func.call0() // vectorcall: no argument tuple to unpack
    } else {
        func.call(args, kwargs.as_ref())
    };
    Wire::from_msg(py, result.map(Bound::unbind))
}

/// What a portal step worker reports when it hands control back (see `portal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepOutcome {
    /// Parked, waiting for a step (or never ran one).
    Idle,
    /// The awaited object inside `await_` yielded a trap for the event loop.
    Trap,
    /// The step ended: the coroutine yielded this value to the loop.
    Yielded,
    /// The step ended: the coroutine returned this value.
    Returned,
    /// The step ended: the coroutine raised.
    Raised,
}

/// The portal's side of a step worker. Only meaningful for `Body::Native` workers.
pub(crate) struct WorkerSlot {
    /// The coroutine the current step drives (borrowed from the portal, which holds it
    /// for as long as the worker is bound to it); null when idle, and the request to
    /// retire when a worker is resumed with it null.
    pub coro: *mut ffi::PyObject,
    /// Set by the worker before every hand-back.
    pub outcome: StepOutcome,
    /// Whether `coro` is a call portal's `(fn, args, kwargs)` (see `portal`).
    pub call: bool,
    /// Greenlet state of the worker's steps (see `greenlet_bridge`).
    pub bridge: crate::greenlet_bridge::Bridge,
}

/// A thread's identity for fibers, shared by the fibers it made.
pub(crate) struct ThreadHome {
    /// False once the thread has exited.
    alive: AtomicBool,
    /// The fork generation this home belongs to: after `fork()` only the forking
    /// thread exists in the child, and only its home is moved to the new generation.
    generation: AtomicU64,
    /// Cores of fibers whose Python objects died on another thread, to be unwound here.
    pending: Mutex<Vec<QueuedCore>>,
    has_pending: AtomicBool,
}

/// A core travelling to its owner thread's queue. Boxed: its address is captured by
/// its fiber's body and must not change.
struct QueuedCore(Box<FiberCore>);

// SAFETY: a core is only moved to another thread's queue (under the GIL, from
// `place_orphan`) and is only ever resumed on its owner thread (`resume` checks).
// While queued nothing touches it.
unsafe impl Send for QueuedCore {}

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

impl ThreadHome {
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
            && self.generation.load(Ordering::Acquire) == FORK_GENERATION.load(Ordering::Acquire)
    }
}

/// Per-thread fiber machinery, made on first use.
struct ThreadFibers {
    home: Arc<ThreadHome>,
    pool: RefCell<StackPool>,
}

impl Drop for ThreadFibers {
    fn drop(&mut self) {
        self.home.alive.store(false, Ordering::Release);
        // Cores queued too late to be unwound: the interpreter is gone for this thread,
        // so their references cannot be dropped either. Leak them.
        if let Ok(mut pending) = self.home.pending.lock() {
            for QueuedCore(core) in pending.drain(..) {
                std::mem::forget(core);
            }
        }
    }
}

thread_local! {
    /// The innermost running fiber of this thread (null on the thread's own stack).
    static CURRENT: Cell<*mut FiberCore> = const { Cell::new(ptr::null_mut()) };
    /// This thread's home, once made (a cheap copy of `THREAD.home`'s address for the
    /// ownership check on every switch).
    static HOME: Cell<*const ThreadHome> = const { Cell::new(ptr::null()) };
    static THREAD: ThreadFibers = ThreadFibers {
        home: Arc::new(ThreadHome {
            alive: AtomicBool::new(true),
            generation: AtomicU64::new(FORK_GENERATION.load(Ordering::Acquire)),
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
        }),
        pool: RefCell::new(StackPool::new(
            StackLayout {
                usable_bytes: STACK_USABLE_BYTES,
                reserved_bytes: pystate::RESERVED_BYTES,
                base_skew: STACK_BASE_SKEW,
            },
            POOL_CAP,
        )),
    };
}

fn this_home() -> PyResult<Arc<ThreadHome>> {
    let home = THREAD
        .try_with(|t| t.home.clone())
        .map_err(|_| PyRuntimeError::new_err("this thread is exiting; fibers cannot be used"))?;
    HOME.with(|h| h.set(Arc::as_ptr(&home)));
    Ok(home)
}

/// The engine type: every switch carries a [`Wire`] each way.
type FiberEngine = Engine<Wire, Wire, Wire>;

/// The state of one fiber. Lives in a `Box` (its address is captured by the body
/// closure and stored in [`CURRENT`]) owned by the Python `Fiber` object.
///
/// All access happens on the owner thread with the GIL held, through raw pointers:
/// the same core is reached both from the resumer (`resume`) and from the fiber itself
/// (`suspend`, `current`), so no `&mut FiberCore` may live across a switch.
pub(crate) struct FiberCore {
    status: Status,
    /// Present from first resume until the fiber finishes.
    engine: Option<FiberEngine>,
    /// The fiber's interpreter state while it is not running (None while running, and
    /// once dead). Before the first resume: None; made by `start`.
    snapshot: Option<Snapshot>,
    /// Until started.
    body: Option<Body>,
    /// For step workers: the step they are running.
    pub(crate) worker: WorkerSlot,
    /// The context the fiber will run in, until started (then owned by the snapshot).
    context: Option<Py<PyAny>>,
    /// Valid while the fiber runs or is suspended: set by the body on entry.
    yielder: *const Yielder<Wire, Wire>,
    /// Who resumed us (another fiber, or null for the thread's own stack); valid while
    /// running. Restored into CURRENT when we suspend or finish.
    resumer: *mut FiberCore,
    /// Borrowed pointer to our Python object while running (the call that resumed us
    /// holds a reference); null otherwise, and during a kill after the object died.
    pyobj: *mut ffi::PyObject,
    home: Arc<ThreadHome>,
}

impl FiberCore {
    /// `context` is the contextvars context the fiber starts in (None: empty).
    pub(crate) fn new(body: Body, context: Option<Py<PyAny>>) -> PyResult<Box<Self>> {
        ensure_fork_hook();
        Ok(Box::new(Self {
            status: Status::NotStarted,
            engine: None,
            snapshot: None,
            body: Some(body),
            worker: WorkerSlot {
                coro: ptr::null_mut(),
                outcome: StepOutcome::Idle,
                call: false,
                bridge: crate::greenlet_bridge::Bridge::new(),
            },
            context,
            yielder: ptr::null(),
            resumer: ptr::null_mut(),
            pyobj: ptr::null_mut(),
            home: this_home()?,
        }))
    }

    pub(crate) fn status(&self) -> Status {
        self.status
    }

    /// Objects the GC may traverse: the body and context of a fiber not yet started.
    pub(crate) fn gc_referents(&self) -> impl Iterator<Item = &Py<PyAny>> {
        let body = self.body.iter().flat_map(|b| match b {
            Body::Call { func, args, kwargs } => [
                Some(func),
                Some(args.as_any()),
                kwargs.as_ref().map(|k| k.as_any()),
            ],
            Body::Native(_) => [None, None, None],
        });
        body.flatten().chain(self.context.iter())
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

    pub(crate) fn on_owner_thread(&self) -> bool {
        ptr::eq(Arc::as_ptr(&self.home), HOME.with(Cell::get))
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
    run_pending_kills(py);
    // SAFETY: live core (caller); no other reference to it is active here.
    let c = unsafe { &mut *core };
    if c.status == Status::Suspended && c.on_owner_thread() {
        // SAFETY: forwarded contract.
        return unsafe { switch_into(py, core, pyobj, msg) };
    }
    // SAFETY: forwarded contract.
    unsafe { resume_other(py, core, pyobj, msg) }
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
    if !c.on_owner_thread() {
        return refuse(
            msg,
            PyRuntimeError::new_err(
                "cannot switch to a fiber from a thread other than the one that created it",
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
    let stack = take_stack()?;
    // SAFETY: live core; nothing else references it during this call.
    let c = unsafe { &mut *core };
    let context = c.context.take().map_or(ptr::null_mut(), Py::into_ptr);
    let body_core = core;
    let engine = FiberEngine::new(stack, move |yielder: &Yielder<Wire, Wire>, first: Wire| {
        // SAFETY: the thread that resumed us holds the GIL.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: the core outlives its engine (it owns it). The borrow ends before any
        // Python code runs: from then on the core is reached through raw pointers by
        // `suspend`, `current` and GC traversal.
        let body = unsafe {
            let c = &mut *body_core;
            c.yielder = yielder;
            c.body.take().expect("fiber body already taken")
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            body.run(py, body_core, first)
        }));
        result.unwrap_or_else(|_| fatal("a Rust panic reached the root of a fiber stack"))
    });
    // SAFETY: this thread's state; the stack is fresh from the pool and unused.
    let snapshot = unsafe { Snapshot::fresh(thread_state(), context, &engine.bounds()) };
    c.engine = Some(engine);
    c.snapshot = Some(snapshot);
    Ok(())
}

/// The switch proper (see the module diagram).
///
/// # Safety
/// `core` is live, started and suspended (or freshly started), on this thread.
unsafe fn switch_into(
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
    let ts = thread_state();
    // One thread-local access for the whole switch: the fiber runs on this thread, so
    // the cell's address stays valid across it.
    let current_cell: *const Cell<*mut FiberCore> = CURRENT.with(ptr::from_ref);
    // SAFETY: live core, and the only reference until the engine is resumed; the cell
    // is this thread's and outlives the call.
    let fiber_state = unsafe {
        let c = &mut *core;
        c.resumer = (*current_cell).replace(core);
        c.pyobj = pyobj;
        c.status = Status::Running;
        c.snapshot
            .take()
            .expect("suspended fiber without a snapshot")
    };

    // SAFETY: ts is this thread's state, GIL held; from here to the swap back only the
    // stack switch happens (no Python API).
    let outer = unsafe { pystate::swap(ts, fiber_state) };
    // SAFETY: the engine is present while started and not finished; `&mut` to it lasts
    // only for the resume call, during which the fiber touches the core through its own
    // raw pointer, never the engine.
    let resumed = unsafe { (*core).engine.as_mut().expect("engine").resume(msg) };
    // SAFETY: as above: back on the resumer's stack, restoring its view.
    let fiber_state = unsafe { pystate::swap(ts, outer) };

    // SAFETY: the fiber is parked or finished: nothing else references the core now.
    let c = unsafe { &mut *core };
    // SAFETY: as above (same thread, cell alive).
    unsafe { (*current_cell).set(c.resumer) };
    c.resumer = ptr::null_mut();
    c.pyobj = ptr::null_mut();
    match resumed {
        Resumed::Yield(value) => {
            c.status = Status::Suspended;
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
            give_stack(engine.into_stack());
            let _ = py;
            result
        }
    }
}

/// Suspends the innermost running fiber, handing `value` to its resumer; returns what
/// the next resume delivers.
pub(crate) fn suspend(value: Py<PyAny>) -> Msg {
    suspend_msg(Ok(value))
}

/// Like [`suspend`], handing the resumer either a value or an exception.
pub(crate) fn suspend_msg(msg: Msg) -> Msg {
    let core = current();
    if core.is_null() {
        return Err(PyRuntimeError::new_err(
            "suspend() called outside a fiber; it can only be called from code running in a Fiber",
        ));
    }
    // SAFETY: the GIL is held by whoever runs Python code on this thread.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: `core` is this thread's innermost running fiber.
    unsafe { suspend_running(core, Wire::from_msg(py, msg)) }.into_msg(py)
}

/// Suspends `core` (see [`suspend`]) with the message as it crosses the switch: for
/// callers that know the running fiber (a portal step).
///
/// # Safety
/// `core` is the innermost running fiber of this thread.
pub(crate) unsafe fn suspend_running(core: *mut FiberCore, msg: Wire) -> Wire {
    debug_assert!(
        !core.is_null() && core == current(),
        "not the running fiber"
    );
    // SAFETY: a running core's yielder was set by its body on entry and lives on its
    // stack until the body returns, which cannot happen while we are inside it.
    let yielder = unsafe { &*(*core).yielder };
    yielder.suspend(msg)
}

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
    let exit = PyErr::new::<FiberExit, _>(());
    // SAFETY: forwarded contract.
    match unsafe { resume(py, core, pyobj, Err(exit)) } {
        Err(e) if e.is_instance_of::<FiberExit>(py) => KillOutcome::Died,
        Err(e) => KillOutcome::Raised(e),
        // SAFETY: live core.
        Ok(_) if unsafe { (*core).status } == Status::Dead => KillOutcome::Died,
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
    let home = core.home.clone();
    if home.is_alive() {
        if let Ok(mut pending) = home.pending.lock() {
            pending.push(QueuedCore(take()));
            home.has_pending.store(true, Ordering::Release);
            return Orphan::Queued;
        }
    }
    abandon(py, take());
    Orphan::Abandoned
}

/// Drops what a suspended fiber owns without running any of its code; leaks its stack.
pub(crate) fn abandon(_py: Python<'_>, mut core: Box<FiberCore>) {
    core.body = None;
    core.context = None;
    if let Some(snapshot) = core.snapshot.take() {
        // SAFETY: GIL held (the `_py` token); the snapshot is not installed.
        unsafe { snapshot.release_references() };
    }
    drop(core); // its Drop leaks the suspended engine and stack
}

/// Unwinds the fibers whose objects died on other threads (called on the owner thread).
pub(crate) fn run_pending_kills(py: Python<'_>) {
    let Ok(Some(home)) = THREAD.try_with(|t| {
        t.home
            .has_pending
            .load(Ordering::Acquire)
            .then(|| t.home.clone())
    }) else {
        return;
    };
    home.has_pending.store(false, Ordering::Release);
    let cores: Vec<_> = match home.pending.lock() {
        Ok(mut pending) => pending.drain(..).map(|QueuedCore(core)| core).collect(),
        Err(_) => return,
    };
    for mut core in cores {
        let raw: *mut FiberCore = &mut *core;
        // SAFETY: the core is live (owned here), suspended, on its thread; it has no
        // Python object any more, so current() reports None while it unwinds.
        match unsafe { kill(py, raw, ptr::null_mut()) } {
            KillOutcome::Died => {}
            KillOutcome::Raised(e) => e.write_unraisable(py, None),
            KillOutcome::Refused => refused_to_die(py),
        }
        drop(core);
    }
}

/// Drops a parked step worker without running anything: its stack holds only the
/// native worker loop, which owns nothing, so it is reset rather than unwound, and the
/// stack goes back to the pool. Safe without the GIL: a parked worker holds no
/// Python reference (portal invariant).
pub(crate) fn discard_parked_worker(mut worker: Box<FiberCore>) {
    debug_assert!(worker.worker.coro.is_null());
    if worker.worker.bridge.has_runner() {
        // A runner greenlet keeps part of its stack on this one and cannot be ended
        // without running Python: leak both (the stack with the core's engine).
        worker.worker.bridge.leak();
        worker.snapshot = None;
        drop(worker); // Drop leaks the suspended engine and its stack
        return;
    }
    worker.snapshot = None; // no references (context taken at park), raw pointers only
    if let Some(engine) = worker.engine.take() {
        // SAFETY: a parked worker's stack holds the native loop suspended in
        // `suspend_msg`, with no owned locals and no interpreter frames.
        let stack = unsafe { engine.reset_into_stack() };
        give_stack(stack);
    }
}

/// Reports a fiber that caught `FiberExit` and suspended again; it is leaked.
pub(crate) fn refused_to_die(py: Python<'_>) {
    PyRuntimeError::new_err(
        "a garbage-collected fiber caught FiberExit and suspended again; its stack is leaked",
    )
    .write_unraisable(py, None);
}

fn take_stack() -> PyResult<FiberStack> {
    let taken = THREAD
        .try_with(|t| t.pool.borrow_mut().take())
        .map_err(|_| PyRuntimeError::new_err("this thread is exiting; fibers cannot be used"))?;
    taken.map_err(|err| {
        let hint = match anywait_fiber::guard_mode() {
            Some(anywait_fiber::GuardMode::Mprotect) => {
                " (each fiber stack costs two memory mappings on this kernel; \
                 raise vm.max_map_count or run fewer fibers at once)"
            }
            _ => "",
        };
        PyMemoryError::new_err(format!("cannot map a stack for a new fiber: {err}{hint}"))
    })
}

fn give_stack(stack: FiberStack) {
    let _ = THREAD.try_with(|t| t.pool.borrow_mut().give(stack));
}

fn thread_state() -> *mut ffi::PyThreadState {
    // SAFETY: no preconditions; with the GIL held this is the current, non-null state.
    let ts = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    debug_assert!(!ts.is_null());
    ts
}

/// Aborts the process: a state we cannot recover from.
pub(crate) fn fatal(what: &str) -> ! {
    eprintln!("anywait: fatal: {what}");
    std::process::abort()
}

/// After `fork()` the child has only the forking thread: every other thread's home
/// must read as dead there, and the forking thread's as alive.
fn ensure_fork_hook() {
    static ONCE: Once = Once::new();
    extern "C" fn after_fork_in_child() {
        let generation = FORK_GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
        let _ = THREAD.try_with(|t| t.home.generation.store(generation, Ordering::Release));
    }
    ONCE.call_once(|| {
        // SAFETY: registering a handler that only touches atomics and a thread-local.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}
