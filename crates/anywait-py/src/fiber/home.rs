//! A thread's fiber home: its stack pool, its identity (alive, fork generation) and the
//! queue of work that must run on it.
//!
//! A fiber belongs to the thread that made it: its frames may only ever run there.
//! Every core keeps an `Arc<ThreadHome>` of its thread, so that code on another thread
//! (a Python object dying there) can tell whether the owner is still alive and hand it
//! work. After `fork()` the child has only the forking thread: the fork generation
//! makes every other home read as dead there.
//!
//! This module knows nothing of cores: queued work is a closure (the fiber layer's
//! `lifetime` module queues the unwinding of an orphaned core), run by the owner thread
//! at its next fiber operation ([`run_pending`]).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

use anywait_fiber::{FiberStack, StackLayout, StackPool};
use pyo3::exceptions::{PyMemoryError, PyRuntimeError};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::pystate;

/// Usable C stack per fiber: the size of a main thread's stack, which CPython's default
/// limits are tuned for. Only touched pages cost memory.
const STACK_USABLE_BYTES: usize = 8 * 1024 * 1024;
/// The stack base sits this far into the reserved area's first page, so the C stack's
/// top and the reserved area's start (root C frame, root data-stack chunk) share it.
/// With the small frames of the switch path (see `Wire`), a task blocked in
/// `await_(event.wait())` then touches that one page only: its C stack peaks at
/// 2.0-3.2 KiB on 3.11-3.13, asyncio and Trio (benches/bench_portal.py, RSS row).
const STACK_BASE_SKEW: usize = 3584;

/// Idle stacks kept per thread: at least this many, and as many as were lately in use
/// at once, up to `POOL_MAX_IDLE` (so N tasks in flight at a time stop mapping stacks;
/// with a cap of 16, 100 at a time mapped and unmapped one per portal lifecycle, about
/// 12 µs each: benches/soak.py). More are unmapped when they come back.
const POOL_MIN_IDLE: usize = 16;
/// The most idle stacks a thread keeps: 2 GiB of address space, a few MiB resident.
const POOL_MAX_IDLE: usize = 256;

/// Work queued for a home's thread, run there with the GIL held. It owns what it needs
/// (an orphaned core); if the thread exits first, the work is leaked, never dropped:
/// dropping it could release objects that frames on a leaked stack still use.
pub(crate) type PendingWork = Box<dyn FnOnce(Python<'_>) + Send>;

/// A thread's identity for fibers, shared by the fibers it made.
pub(crate) struct ThreadHome {
    /// False once the thread has exited.
    alive: AtomicBool,
    /// The fork generation this home belongs to: after `fork()` only the forking
    /// thread exists in the child, and only its home is moved to the new generation.
    generation: AtomicU64,
    /// Work from other threads, to be run here (see [`PendingWork`]).
    pending: Mutex<Vec<PendingWork>>,
    has_pending: AtomicBool,
    /// The id of the thread's Python thread state (`PyThreadState_GetID`), or
    /// `NO_PYTHON_THREAD` until fibers are used there.
    python_thread: AtomicU64,
}

const NO_PYTHON_THREAD: u64 = u64::MAX;

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Work that other threads queued for a thread which ended before running it (see
/// `ThreadFibers::drop`): leaked there, where no Python code can run, counted here,
/// and reported by the next fiber operation on any thread ([`run_pending`]).
static LEAKED_AT_EXIT: AtomicUsize = AtomicUsize::new(0);

impl ThreadHome {
    /// Whether the thread still exists, and can run the work queued for it.
    ///
    /// A thread's Python thread state is deleted (and, before 3.13, `Thread.join()`
    /// returns) before its native thread-locals are destroyed, which is when `alive`
    /// clears: so a thread whose Python thread state is gone counts as ended, or work
    /// queued in between would never run, and never be reported.
    pub(crate) fn is_alive(&self, _py: Python<'_>) -> bool {
        if !self.alive.load(Ordering::Acquire)
            || self.generation.load(Ordering::Acquire) != FORK_GENERATION.load(Ordering::Acquire)
        {
            return false;
        }
        let id = self.python_thread.load(Ordering::Acquire);
        id == NO_PYTHON_THREAD || python_thread_exists(id)
    }

    /// Queues `work` for this home's thread; hands it back if the queue is unusable
    /// (poisoned), so the caller can dispose of it otherwise.
    pub(crate) fn queue(&self, work: PendingWork) -> Result<(), PendingWork> {
        match self.pending.lock() {
            Ok(mut pending) => {
                pending.push(work);
                self.has_pending.store(true, Ordering::Release);
                Ok(())
            }
            Err(_) => Err(work),
        }
    }

    /// Whether this is the home of the calling thread.
    #[inline]
    pub(crate) fn is_current(self: &Arc<Self>) -> bool {
        std::ptr::eq(Arc::as_ptr(self), HOME.with(Cell::get))
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
        // Work queued too late: the interpreter is gone for this thread, so what it
        // owns cannot be released either. Leak it.
        if let Ok(mut pending) = self.home.pending.lock() {
            for work in pending.drain(..) {
                std::mem::forget(work);
                LEAKED_AT_EXIT.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

thread_local! {
    /// This thread's home, once made (a cheap copy of `THREAD.home`'s address for the
    /// ownership check on every switch).
    static HOME: Cell<*const ThreadHome> = const { Cell::new(std::ptr::null()) };
    static THREAD: ThreadFibers = ThreadFibers {
        home: Arc::new(ThreadHome {
            alive: AtomicBool::new(true),
            generation: AtomicU64::new(FORK_GENERATION.load(Ordering::Acquire)),
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
            python_thread: AtomicU64::new(NO_PYTHON_THREAD),
        }),
        pool: RefCell::new(StackPool::with_limits(
            StackLayout {
                usable_bytes: STACK_USABLE_BYTES,
                reserved_bytes: pystate::RESERVED_BYTES,
                base_skew: STACK_BASE_SKEW,
            },
            POOL_MIN_IDLE,
            POOL_MAX_IDLE,
        )),
    };
}

/// The calling thread's home (made on first use).
pub(crate) fn this_home() -> PyResult<Arc<ThreadHome>> {
    ensure_fork_hook();
    let home = THREAD
        .try_with(|t| t.home.clone())
        .map_err(|_| PyRuntimeError::new_err("this thread is exiting; fibers cannot be used"))?;
    HOME.with(|h| h.set(Arc::as_ptr(&home)));
    if home.python_thread.load(Ordering::Relaxed) == NO_PYTHON_THREAD {
        // SAFETY: no preconditions; callers hold the GIL, so this is the thread's state.
        let ts = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
        if !ts.is_null() {
            // SAFETY: the live thread state of this thread.
            // (PyO3 declares the C uint64_t as i64: the bits are the id.)
            let id = unsafe { ffi::PyThreadState_GetID(ts) } as u64;
            home.python_thread.store(id, Ordering::Release);
        }
    }
    Ok(home)
}

/// Whether the interpreter still has the Python thread state with this id. The
/// interpreter's list of thread states changes under the GIL (held here) except for
/// insertions at its head, which a walk from the head may miss harmlessly.
fn python_thread_exists(id: u64) -> bool {
    // SAFETY: GIL held by the caller (`is_alive`'s token); the list is walked as
    // CPython's own debugging helpers walk it.
    unsafe {
        let mut ts = ffi::PyInterpreterState_ThreadHead(ffi::PyInterpreterState_Get());
        while !ts.is_null() {
            if ffi::PyThreadState_GetID(ts) as u64 == id {
                return true;
            }
            ts = ffi::PyThreadState_Next(ts);
        }
    }
    false
}

/// Runs the work other threads queued for this one (cheap when there is none: a
/// thread-local and an atomic load).
#[inline]
pub(crate) fn run_pending(py: Python<'_>) {
    if LEAKED_AT_EXIT.load(Ordering::Relaxed) != 0 {
        report_leaked_at_exit(py);
    }
    let Ok(Some(home)) = THREAD.try_with(|t| {
        t.home
            .has_pending
            .load(Ordering::Acquire)
            .then(|| t.home.clone())
    }) else {
        return;
    };
    run_pending_of(py, &home);
}

#[inline(never)]
#[cold]
fn report_leaked_at_exit(py: Python<'_>) {
    let leaked = LEAKED_AT_EXIT.swap(0, Ordering::AcqRel);
    if leaked == 0 {
        return;
    }
    PyRuntimeError::new_err(format!(
        "{leaked} suspended anywait fiber(s) or generator(s) garbage-collected on another \
         thread were queued for their own thread, which ended before it could unwind \
         them: their stacks are leaked and their finally blocks never ran (close them on \
         their own thread)"
    ))
    .write_unraisable(py, None);
}

#[inline(never)]
#[cold]
fn run_pending_of(py: Python<'_>, home: &ThreadHome) {
    home.has_pending.store(false, Ordering::Release);
    let work: Vec<_> = match home.pending.lock() {
        Ok(mut pending) => pending.drain(..).collect(),
        Err(_) => return,
    };
    for job in work {
        job(py);
    }
}

/// A stack from this thread's pool (or a new mapping).
pub(crate) fn take_stack() -> PyResult<FiberStack> {
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

/// Gives an unused stack back to this thread's pool.
pub(crate) fn give_stack(stack: FiberStack) {
    let _ = THREAD.try_with(|t| t.pool.borrow_mut().give(stack));
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
