//! The per-thread interpreter state that belongs to a native stack.
//!
//! CPython keeps, in each `PyThreadState`, facts about the code running on the thread's
//! one stack: the innermost frame, the recursion depth, where the next frame's memory
//! comes from, the exception being handled, the current contextvars context, and (3.14)
//! where the C stack ends. Once a thread runs code on several stacks, those facts belong
//! to a stack, not to the thread: every switch saves the leaving stack's values and
//! installs the arriving stack's.
//!
//! [`Snapshot`] holds one stack's values while it is not running; [`swap`] is the only
//! operation, and [`Snapshot::fresh`] makes the values a brand-new fiber starts with.
//! Which fields exist depends on the version (DESIGN.md has the table); this module is
//! the only place with version conditionals about the thread state.
//!
//! Invariants:
//! * A snapshot that is not installed owns the strong references it holds (`context`,
//!   the handled exception in `exc_state`, the trash list). `swap` moves them between
//!   the thread state and snapshots without touching reference counts.
//! * Between the two `swap`s around a stack switch no Python API is called: the
//!   interpreter would see a half-switched state, and a GC pass could run a `__del__`
//!   that switches again.

mod frame_link;
mod gc_view;
pub(crate) mod layout;
pub(crate) mod monitoring;
pub(crate) mod tracing;

pub(crate) use frame_link::FrameLink;
pub(crate) use gc_view::HiddenStacks;

use std::ffi::c_int;
use std::ptr;

use anywait_fiber::StackBounds;
use pyo3::ffi;

use layout::layout;

/// Size of the part of each fiber stack's reserved area this module uses: the fiber's
/// root C frame (3.11, 3.12) and its root frame data-stack chunk.
pub(crate) const RESERVED_BYTES: usize = 16 * 1024;

/// Where the root chunk starts inside the reserved area (after room for a `_PyCFrame`).
const CHUNK_OFFSET: usize = 64;

/// The stack size CPython's default C recursion budget (3.12, 3.13) is sized for: the
/// main thread's usual 8 MiB.
#[cfg(all(Py_3_12, not(Py_3_14)))]
const C_BUDGET_STACK_BYTES: usize = 8 * 1024 * 1024;

/// One stack's share of the thread state while that stack is not running.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The contextvars context (owned reference, may be NULL).
    context: *mut ffi::PyObject,
    /// 3.11/3.12: the innermost `_PyCFrame` (it holds the innermost frame).
    #[cfg(not(Py_3_13))]
    cframe: *mut u8,
    /// 3.13+: the innermost interpreter frame.
    #[cfg(Py_3_13)]
    current_frame: *mut u8,
    /// Python recursion depth, stored as a depth so that a `sys.setrecursionlimit`
    /// made while this stack was away applies when it comes back.
    recursion_depth: c_int,
    #[cfg(all(Py_3_12, not(Py_3_14)))]
    c_recursion_remaining: c_int,
    datastack_chunk: *mut u8,
    datastack_top: *mut u8,
    datastack_limit: *mut u8,
    exc_info: *mut u8,
    /// Copy of the thread's base `_PyErr_StackItem` (its `exc_value` is owned).
    exc_state: [*mut u8; 2],
    #[cfg(not(Py_3_13))]
    trash_delete_nesting: c_int,
    trash_delete_later: *mut u8,
    #[cfg(Py_3_13)]
    critical_section: usize,
    #[cfg(Py_3_13)]
    executor: *mut u8,
    /// 3.15: the exit of the JIT trace that led to the running one; meaningful only
    /// inside the executor chain of the code that was running, so it travels with
    /// `executor`.
    #[cfg(Py_3_15)]
    jit_exit: *mut u8,
    /// 3.14: `c_stack_top`, `c_stack_soft_limit`, `c_stack_hard_limit`.
    #[cfg(Py_3_14)]
    c_stack: [usize; 3],
    /// 3.15: `c_stack_init_base`, `c_stack_init_top`, the bounds
    /// `PyUnstable_ThreadState_ResetStackProtection` goes back to: a fiber's own stack,
    /// so that a reset made on a fiber keeps the fiber's bounds.
    #[cfg(Py_3_15)]
    c_stack_init: [usize; 2],
    /// The instrumentation version this stack last ran under (`monitoring`), set by
    /// whoever switches away from it; not part of the thread state.
    version: monitoring::Version,
}

/// The current thread's state (GIL held: the current, non-null one).
#[inline(always)]
pub(crate) fn thread_state() -> *mut ffi::PyThreadState {
    // SAFETY: no preconditions; with the GIL held this is the current, non-null state.
    let ts = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    debug_assert!(!ts.is_null());
    ts
}

#[inline(always)]
fn base(ts: *mut ffi::PyThreadState) -> *mut u8 {
    ts.cast::<u8>()
}

/// Reads `field` of the thread state.
macro_rules! get {
    ($ts:expr, $field:ident) => {
        // SAFETY: `$ts` is the live thread state (caller's contract) and `verify` checked
        // that the field exists with the size of the type it is read as.
        unsafe { *layout().$field.of(base($ts)) }
    };
}

/// Writes `field` of the thread state.
macro_rules! set {
    ($ts:expr, $field:ident, $value:expr) => {
        // SAFETY: as for `get!`.
        unsafe { *layout().$field.of(base($ts)) = $value }
    };
}

impl Snapshot {
    /// The state a new fiber starts with, for a fiber about to run on the stack
    /// described by `stack` on the thread whose state is `ts`.
    ///
    /// The fiber starts with no frames, depth 0, no exception being handled, an empty
    /// data stack whose root chunk lives in the stack's reserved area (so it is reused
    /// with the stack and never freed under live frames), and `context` (an owned
    /// reference, moved into the snapshot).
    ///
    /// # Safety
    /// `ts` is the current thread's state; `stack` describes a stack with at least
    /// [`RESERVED_BYTES`] of reserved area that no running code uses.
    pub(crate) unsafe fn fresh(
        ts: *mut ffi::PyThreadState,
        context: *mut ffi::PyObject,
        stack: &StackBounds,
    ) -> Self {
        debug_assert!(stack.reserved_bytes >= RESERVED_BYTES);
        let l = layout();
        let area = stack.reserved_area.as_ptr();

        // SAFETY: the chunk lies inside the reserved area (CHUNK_OFFSET + header <
        // RESERVED_BYTES), which nothing else uses; the field offsets are the
        // compiler's (layout.c).
        let (chunk, top, limit) = unsafe {
            let chunk = area.add(CHUNK_OFFSET);
            let chunk_bytes = RESERVED_BYTES - CHUNK_OFFSET;
            *l.chunk_previous.of::<*mut u8>(chunk) = ptr::null_mut();
            *l.chunk_size.of::<usize>(chunk) = chunk_bytes;
            *l.chunk_top.of::<usize>(chunk) = 0;
            // CPython places the first frame of a root chunk at data[1], so that popping
            // it never frees the chunk (pystate.c, push_chunk); an empty root chunk
            // therefore has its top at data[1].
            let data = l.chunk_data.of::<*mut ffi::PyObject>(chunk);
            (chunk, data.add(1).cast::<u8>(), chunk.add(chunk_bytes))
        };

        #[cfg(not(Py_3_13))]
        // SAFETY: the root C frame sits at the start of the reserved area (cframe_size <=
        // CHUNK_OFFSET, checked in `verify_reserved_fits`); `ts` is live.
        let cframe = unsafe {
            area.write_bytes(0, CHUNK_OFFSET);
            // `previous` points at the thread's root C frame, never at a frame on
            // another stack: the eval loop writes into `previous` on exit (3.11), and
            // that stack may be gone by then.
            *l.cframe_previous.of::<*mut u8>(area) = l.root_cframe.of::<u8>(base(ts));
            area
        };

        // 3.15: every chain of frames ends in the thread's base frame, a sentinel that
        // profilers use to tell a complete stack from a torn one; a fiber's chain ends
        // there too. Nothing ever writes to the sentinel, so all stacks share it.
        #[cfg(Py_3_15)]
        let no_frame: *mut u8 = get!(ts, base_frame);
        #[cfg(all(Py_3_13, not(Py_3_15)))]
        let no_frame: *mut u8 = ptr::null_mut();

        Self {
            context,
            #[cfg(not(Py_3_13))]
            cframe,
            #[cfg(Py_3_13)]
            current_frame: no_frame,
            recursion_depth: 0,
            #[cfg(all(Py_3_12, not(Py_3_14)))]
            c_recursion_remaining: c_budget(stack),
            datastack_chunk: chunk,
            datastack_top: top,
            datastack_limit: limit,
            // SAFETY: exc_state is a field of the live thread state.
            exc_info: unsafe { l.exc_state.of::<u8>(base(ts)) },
            exc_state: [ptr::null_mut(); 2],
            #[cfg(not(Py_3_13))]
            trash_delete_nesting: 0,
            trash_delete_later: ptr::null_mut(),
            #[cfg(Py_3_13)]
            critical_section: 0,
            #[cfg(Py_3_13)]
            executor: ptr::null_mut(),
            #[cfg(Py_3_15)]
            jit_exit: ptr::null_mut(),
            #[cfg(Py_3_14)]
            c_stack: c_stack_bounds(stack.usable_bottom, stack.base),
            #[cfg(Py_3_15)]
            c_stack_init: [stack.usable_bottom, stack.base],
            version: 0,
        }
    }

    /// The instrumentation version the stack last ran under.
    pub(crate) fn version(&self) -> monitoring::Version {
        self.version
    }

    /// Records the instrumentation version the stack stopped running under.
    pub(crate) fn set_version(&mut self, version: monitoring::Version) {
        self.version = version;
    }

    /// Whether the stack has Python frames of its own (whose code may need
    /// re-instrumenting when it runs again).
    pub(crate) fn has_frames(&self) -> bool {
        #[cfg(not(Py_3_13))]
        // SAFETY: a saved stack's innermost C frame is live (on that stack, or its root
        // C frame in the reserved area).
        let top: *mut u8 = unsafe { *layout().cframe_current_frame.of(self.cframe) };
        #[cfg(Py_3_13)]
        let top = self.current_frame;
        // 3.15: a chain with no frame of its own is the thread's base frame.
        #[cfg(Py_3_15)]
        let none: *mut u8 = {
            // SAFETY: no preconditions; the caller holds the GIL on this thread.
            let ts = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
            get!(ts, base_frame)
        };
        #[cfg(not(Py_3_15))]
        let none: *mut u8 = ptr::null_mut();
        !top.is_null() && top != none
    }

    /// The innermost interpreter frame of the saved stack (null when it has none; 3.15:
    /// the thread's base frame then).
    pub(crate) fn top_frame(&self) -> *mut u8 {
        #[cfg(not(Py_3_13))]
        // SAFETY: a saved stack's innermost C frame is live (on that stack, or its root
        // C frame in the reserved area).
        let top: *mut u8 = unsafe { *layout().cframe_current_frame.of(self.cframe) };
        #[cfg(Py_3_13)]
        let top = self.current_frame;
        top
    }

    /// Puts `context` (owned) in place of the snapshot's context, returning the old one
    /// (owned, possibly null).
    pub(crate) fn replace_context(&mut self, context: *mut ffi::PyObject) -> *mut ffi::PyObject {
        std::mem::replace(&mut self.context, context)
    }

    /// The snapshot's context (borrowed; may be null).
    pub(crate) fn context(&self) -> *mut ffi::PyObject {
        self.context
    }

    /// Counts the stack's frames on top of `depth` more (a linked fiber's on top of its
    /// resumer's), until [`Snapshot::unlink`] takes them off.
    pub(crate) fn shift_recursion_depth(&mut self, depth: c_int) {
        self.recursion_depth += depth;
    }

    /// Undoes, on the saved state of a linked stack, what linking it for one resume
    /// did: the resumer's `depth` comes off, and its exception chain no longer
    /// continues into the resumer's (whose items it pointed at may be gone by the next
    /// resume).
    pub(crate) fn unlink(&mut self, depth: c_int) {
        self.recursion_depth -= depth;
        self.exc_state[1] = ptr::null_mut();
    }

    /// Drops the references held by the snapshot of a stack that has finished (or will
    /// never run again). Frames, chunks and the trash list are not touched: a finished
    /// stack has none, and an abandoned one may still be pointed into.
    ///
    /// # Safety
    /// The GIL is held and the snapshot is not installed.
    pub(crate) unsafe fn release_references(self) {
        // SAFETY: both are owned references or NULL (type invariant); the GIL is held.
        unsafe {
            ffi::Py_XDECREF(self.context);
            ffi::Py_XDECREF(self.exc_state[0].cast::<ffi::PyObject>());
        }
    }

    /// Whether the data stack is back to an empty root chunk and no frame is live:
    /// the state of a fiber that returned normally.
    #[cfg(debug_assertions)]
    pub(crate) fn is_unwound(&self) -> bool {
        #[cfg(not(Py_3_13))]
        // SAFETY: a finished fiber's cframe is its root cframe, in its reserved area.
        let no_frame =
            unsafe { (*layout().cframe_current_frame.of::<*mut u8>(self.cframe)).is_null() };
        #[cfg(all(Py_3_13, not(Py_3_15)))]
        let no_frame = self.current_frame.is_null();
        #[cfg(Py_3_15)]
        let no_frame = {
            // SAFETY: no preconditions; the caller holds the GIL on this thread.
            let ts = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
            let base_frame: *mut u8 = get!(ts, base_frame);
            self.current_frame == base_frame
        };
        // After an `except` block the handled exception is None, not NULL (POP_EXCEPT).
        // SAFETY: taking the address of the None singleton.
        let none = unsafe { ffi::Py_None() }.cast::<u8>();
        let no_exception = self.exc_state[0].is_null() || self.exc_state[0] == none;
        no_frame && self.recursion_depth == 0 && no_exception
    }
}

/// Saves the state of the code now running on this thread and installs `install`.
/// Returns the saved state; swapping it back later resumes that code's view.
///
/// # Safety
/// `ts` is the current thread's state and the GIL is held; no Python API may be called
/// until the stack switch this accompanies is complete (module docs).
#[inline(always)]
pub(crate) unsafe fn swap(ts: *mut ffi::PyThreadState, install: Snapshot) -> Snapshot {
    let limit: c_int = get!(ts, recursion_limit);
    let remaining: c_int = get!(ts, recursion_remaining);

    #[cfg(not(Py_3_12))]
    let leaving_cframe: *mut u8 = get!(ts, cframe);
    #[cfg(not(Py_3_12))]
    // SAFETY: the running code's cframe is live (it is on the stack being left).
    let use_tracing: u8 = unsafe { *layout().cframe_use_tracing.of::<u8>(leaving_cframe) };

    let saved = Snapshot {
        context: get!(ts, context),
        #[cfg(not(Py_3_13))]
        cframe: get!(ts, cframe),
        #[cfg(Py_3_13)]
        current_frame: get!(ts, current_frame),
        recursion_depth: limit - remaining,
        #[cfg(all(Py_3_12, not(Py_3_14)))]
        c_recursion_remaining: get!(ts, c_recursion_remaining),
        datastack_chunk: get!(ts, datastack_chunk),
        datastack_top: get!(ts, datastack_top),
        datastack_limit: get!(ts, datastack_limit),
        exc_info: get!(ts, exc_info),
        exc_state: get!(ts, exc_state),
        #[cfg(not(Py_3_13))]
        trash_delete_nesting: get!(ts, trash_delete_nesting),
        trash_delete_later: get!(ts, trash_delete_later),
        #[cfg(Py_3_13)]
        critical_section: get!(ts, critical_section),
        #[cfg(Py_3_13)]
        executor: get!(ts, executor),
        #[cfg(Py_3_15)]
        jit_exit: get!(ts, jit_exit),
        #[cfg(Py_3_14)]
        c_stack: [
            get!(ts, c_stack_top),
            get!(ts, c_stack_soft_limit),
            get!(ts, c_stack_hard_limit),
        ],
        #[cfg(Py_3_15)]
        c_stack_init: [get!(ts, c_stack_init_base), get!(ts, c_stack_init_top)],
        version: 0, // recorded by the caller (`set_version`)
    };

    set!(ts, context, install.context);
    #[cfg(not(Py_3_13))]
    set!(ts, cframe, install.cframe);
    #[cfg(Py_3_13)]
    set!(ts, current_frame, install.current_frame);
    set!(ts, recursion_remaining, limit - install.recursion_depth);
    #[cfg(all(Py_3_12, not(Py_3_14)))]
    set!(ts, c_recursion_remaining, install.c_recursion_remaining);
    set!(ts, datastack_chunk, install.datastack_chunk);
    set!(ts, datastack_top, install.datastack_top);
    set!(ts, datastack_limit, install.datastack_limit);
    set!(ts, exc_info, install.exc_info);
    set!(ts, exc_state, install.exc_state);
    #[cfg(not(Py_3_13))]
    set!(ts, trash_delete_nesting, install.trash_delete_nesting);
    set!(ts, trash_delete_later, install.trash_delete_later);
    #[cfg(Py_3_13)]
    set!(ts, critical_section, install.critical_section);
    #[cfg(Py_3_13)]
    set!(ts, executor, install.executor);
    #[cfg(Py_3_15)]
    set!(ts, jit_exit, install.jit_exit);
    #[cfg(Py_3_15)]
    {
        set!(ts, c_stack_init_base, install.c_stack_init[0]);
        set!(ts, c_stack_init_top, install.c_stack_init[1]);
        // A remote profiler caches the frame it sampled last and trusts the chain
        // below it while that frame is not popped; after a switch the chain is
        // another stack's, so the cache is dropped the way the profiler resets it.
        set!(ts, last_profiled_frame, ptr::null_mut::<u8>());
    }
    #[cfg(Py_3_14)]
    {
        // Never install a zero hard limit for a fiber: CPython would re-derive the
        // bounds from the OS thread's stack. The thread's own zero (bounds not yet
        // computed) is restored as it was, which is exactly that re-derivation.
        set!(ts, c_stack_top, install.c_stack[0]);
        set!(ts, c_stack_soft_limit, install.c_stack[1]);
        set!(ts, c_stack_hard_limit, install.c_stack[2]);
    }

    #[cfg(not(Py_3_12))]
    // SAFETY: the arriving code's innermost cframe is live: it is on the stack being
    // resumed (or is a fresh fiber's root cframe). Tracing is per thread, and 3.11 keeps
    // its switch in every cframe, copied from one to the next.
    unsafe {
        *layout().cframe_use_tracing.of::<u8>(install.cframe) = use_tracing;
    }

    // ContextVar.get caches values per (thread, context version); a new context must
    // invalidate that cache.
    let ver: u64 = get!(ts, context_ver);
    set!(ts, context_ver, ver.wrapping_add(1));
    saved
}

/// Continues the exception chain of the stack just installed into that of the code
/// that installed it, whose state `outer` is: a linked stack sees its resumer's handled
/// exception where it handles none itself, as a generator sees its consumer's.
///
/// Every chain ends in the thread state's base item, which the installed stack now
/// uses; the resumer's own base item lives on in `outer`. So the installed stack's
/// base item continues into the resumer's innermost item, and the resumer's chain,
/// which ended in the base item by address, is made to end in `outer`'s copy of it
/// instead: the item that pointed at the base item is patched, and returned, for
/// [`restore_exception_chain`] to undo after the swap back. (Left alone, the chain
/// would come back to the installed stack's own item and loop.)
///
/// # Safety
/// `ts` is the current thread's state, with the linked stack's state installed;
/// `outer` stays in place until [`restore_exception_chain`] and [`Snapshot::unlink`]
/// have been applied after the swap back. The resumer's chain is not running: nothing
/// but this stack's code runs until then.
pub(crate) unsafe fn link_exception_chain(
    ts: *mut ffi::PyThreadState,
    outer: &Snapshot,
) -> *mut u8 {
    // SAFETY: exc_state is a field of the live thread state (caller).
    let base_item = unsafe { layout().exc_state.of::<u8>(base(ts)) };
    let outer_base = outer.exc_state.as_ptr().cast_mut().cast::<u8>();
    let mut patched: *mut u8 = ptr::null_mut();
    let continues_in = if outer.exc_info == base_item {
        outer_base
    } else {
        // The resumer's items are `_PyErr_StackItem`s of its running generators and
        // coroutines: {exc_value, previous_item}.
        let mut item = outer.exc_info.cast::<[*mut u8; 2]>();
        // SAFETY: the resumer's chain is live (its frames are suspended on its stack)
        // and ends in the base item (CPython's invariant for every chain).
        unsafe {
            while !item.is_null() && (*item)[1] != base_item {
                item = (*item)[1].cast();
            }
            if !item.is_null() {
                (*item)[1] = outer_base;
                patched = item.cast();
            }
        }
        outer.exc_info
    };
    let mut item: [*mut u8; 2] = get!(ts, exc_state);
    item[1] = continues_in;
    set!(ts, exc_state, item);
    patched
}

/// Undoes the patch [`link_exception_chain`] made to the resumer's chain (`patched`,
/// possibly null): its last item points at the thread state's base item again.
///
/// # Safety
/// `ts` is the current thread's state, the resumer's state installed again; `patched`
/// is what `link_exception_chain` returned for this resume.
pub(crate) unsafe fn restore_exception_chain(ts: *mut ffi::PyThreadState, patched: *mut u8) {
    if patched.is_null() {
        return;
    }
    // SAFETY: exc_state is a field of the live thread state; `patched` is an item of
    // the resumer's live chain (caller).
    unsafe {
        let base_item = layout().exc_state.of::<u8>(base(ts));
        (*patched.cast::<[*mut u8; 2]>())[1] = base_item;
    }
}

/// The item the thread state's base exception item continues into (its
/// `previous_item`): null for a stack whose chain is its own, or, while a fiber whose
/// chain continues into its resumer's runs, the resumer's chain ([`link_exception_chain`]).
///
/// # Safety
/// `ts` is the current thread's state; GIL held.
pub(crate) unsafe fn base_exception_continues_in(ts: *mut ffi::PyThreadState) -> *mut u8 {
    let item: [*mut u8; 2] = get!(ts, exc_state);
    item[1]
}

/// Makes the thread state's base exception item continue into `item` (an item of a
/// live chain, or null): for a greenlet of anywait's own that runs as part of the
/// fiber it was switched to from (`interop::greenlet`), whose base item greenlet keeps
/// apart.
///
/// # Safety
/// `ts` is the current thread's state; GIL held; `item` stays live until it is set
/// back to null, before the running code's stack is switched away from.
pub(crate) unsafe fn continue_base_exception_in(ts: *mut ffi::PyThreadState, item: *mut u8) {
    let mut base: [*mut u8; 2] = get!(ts, exc_state);
    base[1] = item;
    set!(ts, exc_state, base);
}

/// The Python recursion depth of the code running on this thread.
///
/// # Safety
/// `ts` is the current thread's state; GIL held.
pub(crate) unsafe fn recursion_depth(ts: *mut ffi::PyThreadState) -> c_int {
    let limit: c_int = get!(ts, recursion_limit);
    let remaining: c_int = get!(ts, recursion_remaining);
    limit - remaining
}

/// The current contextvars context of this thread (borrowed; may be null before any
/// context was used on the thread).
pub(crate) fn current_context() -> *mut ffi::PyObject {
    // SAFETY: no preconditions; with the GIL held this is the current state.
    let ts = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    get!(ts, context)
}

/// Makes `context` (a new reference) the running code's context, as assigning the
/// running greenlet's `gr_context` does, and returns the old one (owned, may be null).
///
/// # Safety
/// The GIL is held and `context` is a `contextvars.Context` or null.
pub(crate) unsafe fn replace_live_context(context: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: no preconditions; with the GIL held this is the current state.
    let ts = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    let old: *mut ffi::PyObject = get!(ts, context);
    set!(ts, context, context);
    // ContextVar.get caches values per (thread, context version), as in `swap`.
    let ver: u64 = get!(ts, context_ver);
    set!(ts, context_ver, ver.wrapping_add(1));
    old
}

/// The C recursion budget for a fiber stack: CPython's default budget, which is sized
/// for an 8 MiB stack, scaled to this stack's size.
#[cfg(all(Py_3_12, not(Py_3_14)))]
fn c_budget(stack: &StackBounds) -> c_int {
    let usable = stack.base - stack.usable_bottom;
    let full = layout().c_recursion_limit as usize;
    let scaled = full.saturating_mul(usable) / C_BUDGET_STACK_BYTES;
    c_int::try_from(scaled.clamp(1, full)).unwrap_or(c_int::MAX)
}

/// 3.14's stack-pointer bounds for the stack from `bottom` (its lowest usable address)
/// up to `base`, derived the way CPython derives a thread's: the hard limit one margin
/// above the bottom, the soft limit one more margin up, and the top at the base.
#[cfg(Py_3_14)]
fn c_stack_bounds(bottom: usize, base: usize) -> [usize; 3] {
    let margin = layout().stack_margin_bytes as usize;
    let hard = bottom + margin;
    [base, hard + margin, hard]
}

#[cfg(Py_3_15)]
extern "C" {
    fn PyUnstable_ThreadState_SetStackProtection(
        tstate: *mut ffi::PyThreadState,
        stack_start_addr: *mut std::ffi::c_void,
        stack_size: usize,
    ) -> c_int;
}

/// 3.15: checks that [`c_stack_bounds`] derives the bounds CPython's own
/// `PyUnstable_ThreadState_SetStackProtection` would give a stack. The switch path does
/// not call that function: it can only set bounds, while a switch must also put back
/// the thread's own (possibly not yet derived, zero) bounds exactly as they were, so
/// the stores stay either way (its cost was not measured: it could not replace them).
///
/// # Safety
/// `ts` is the current thread's state and the GIL is held.
#[cfg(Py_3_15)]
unsafe fn verify_stack_derivation(ts: *mut ffi::PyThreadState) -> Result<(), String> {
    let saved: [usize; 3] = [
        get!(ts, c_stack_top),
        get!(ts, c_stack_soft_limit),
        get!(ts, c_stack_hard_limit),
    ];
    // A made-up 1 MiB range: the function only does arithmetic on it, and the live
    // bounds are restored before anything can check the stack.
    let (bottom, size) = (0x7000_0000_0000_usize, 1 << 20);
    // SAFETY: the caller's contract; no Python code runs before the restore below.
    let status = unsafe { PyUnstable_ThreadState_SetStackProtection(ts, bottom as _, size) };
    let theirs: [usize; 3] = [
        get!(ts, c_stack_top),
        get!(ts, c_stack_soft_limit),
        get!(ts, c_stack_hard_limit),
    ];
    set!(ts, c_stack_top, saved[0]);
    set!(ts, c_stack_soft_limit, saved[1]);
    set!(ts, c_stack_hard_limit, saved[2]);
    let ours = c_stack_bounds(bottom, bottom + size);
    if status != 0 || theirs != ours {
        // SAFETY: the GIL is held; a failed call left a ValueError we replace.
        unsafe { ffi::PyErr_Clear() };
        return Err(format!(
            "CPython derives other C stack bounds than anywait for a stack \
             (status {status}, CPython {theirs:x?}, anywait {ours:x?})"
        ));
    }
    Ok(())
}

/// 3.14: checks, on the importing thread, that the stack bounds read through our
/// offsets describe the stack we are running on, with the margin we compiled for.
/// Wrong offsets would otherwise go unnoticed until a fiber overflowed its stack.
#[cfg(Py_3_14)]
pub(crate) fn verify_live_stack_bounds() -> Result<(), String> {
    // SAFETY: no preconditions; at import the GIL is held, so the state is current.
    let ts = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    let (top, soft, hard): (usize, usize, usize) = (
        get!(ts, c_stack_top),
        get!(ts, c_stack_soft_limit),
        get!(ts, c_stack_hard_limit),
    );
    #[cfg(Py_3_15)]
    // SAFETY: at import the GIL is held and `ts` is current.
    unsafe { verify_stack_derivation(ts) }?;
    if hard == 0 {
        return Ok(()); // not derived yet on this thread: nothing to compare
    }
    let here = &top as *const usize as usize;
    let margin = layout().stack_margin_bytes as usize;
    if !(hard < soft && soft < here && here <= top && soft - hard == margin) {
        return Err(format!(
            "the C stack bounds read from this CPython's thread state do not describe the \
             running stack (top {top:#x}, soft {soft:#x}, hard {hard:#x}, here {here:#x}, \
             margin {margin}); anywait was built for a different thread-state layout"
        ));
    }
    Ok(())
}

/// Checks that the reserved-area plan fits this interpreter's structs.
pub(crate) fn verify_reserved_fits() -> Result<(), String> {
    let l = layout();
    if l.cframe_size as usize > CHUNK_OFFSET {
        return Err(format!(
            "_PyCFrame is {} bytes, more than the {CHUNK_OFFSET} anywait reserves",
            l.cframe_size
        ));
    }
    Ok(())
}
