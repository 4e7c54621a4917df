//! Instrumentation of the frames of a stack that was not running when tools changed
//! (3.12+).
//!
//! Since 3.12 tracing, profiling and `sys.monitoring` work by rewriting the bytecode of
//! code objects (instrumenting them), and each code object records the interpreter's
//! instrumentation version it was instrumented for. When tools change (`sys.settrace`,
//! `sys.setprofile`, `sys.monitoring.set_events`, a debugger, coverage), CPython bumps
//! the version and re-instruments the code of every frame then executing on a thread,
//! found through each thread's current frame chain; other code catches up when it next
//! starts a frame. A stack that is not running at that moment (a suspended fiber; the
//! thread's own stack while a fiber runs) has its frames on no chain: resumed as they
//! are, they would go on with the old instrumentation, missing events or (3.13+ debug
//! builds) failing the assertion that executing code is up to date.
//!
//! So every stack remembers the [`Version`] it last ran under, and one that runs again
//! under a later one has the code of its frames re-instrumented ([`refresh`]) before any
//! of them goes on. CPython exports no call that instruments one code object, but
//! changing a code object's *local* events does exactly that, without bumping the
//! version (which would make every other suspended stack stale in turn): `refresh` sets
//! and clears one local event of a `sys.monitoring` tool id of anywait's own on each
//! code object on the running stack. The tool id is taken (a free one, named "anywait")
//! the first time it is needed and kept: freeing it bumps the version on
//! 3.14+. With all six tool ids in use nothing is re-instrumented (reported once).
//!
//! Before 3.12 tracing is a per-thread switch carried across switches by `swap`; the
//! version is always 0 there.
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

#[cfg(Py_3_12)]
use super::{base, layout::layout};

/// The interpreter's instrumentation version (see the module docs).
pub(crate) type Version = u64;

/// The instrumentation version now: one load from the interpreter state.
///
/// # Safety
/// `ts` is the current thread's live state; GIL held. No Python API is called.
#[inline(always)]
pub(crate) unsafe fn version(ts: *mut ffi::PyThreadState) -> Version {
    #[cfg(Py_3_12)]
    {
        let l = layout();
        // SAFETY: fields of the live thread and interpreter states (caller); `verify`
        // checked their sizes.
        unsafe {
            let interp: *mut u8 = *l.tstate_interp.of(base(ts));
            *l.interp_monitoring_version.of::<u64>(interp)
        }
    }
    #[cfg(not(Py_3_12))]
    {
        let _ = ts;
        0
    }
}

/// The name of the tool id anywait re-instruments with.
const TOOL_NAME: &str = "anywait";

/// The tool id, once taken (None: none was free).
static TOOL: PyOnceLock<Option<u8>> = PyOnceLock::new();

/// Re-instruments the code of every frame on the running stack's chain for the tools in
/// effect now (see the module docs). An error is reported as unraisable: the code goes
/// on with the instrumentation it has.
#[cold]
#[inline(never)]
pub(crate) fn refresh(py: Python<'_>) {
    if let Err(err) = refresh_chain(py) {
        err.write_unraisable(py, None);
    }
}

fn refresh_chain(py: Python<'_>) -> PyResult<()> {
    let monitoring = py.import("sys")?.getattr("monitoring")?;
    let Some(tool) = tool_id(py, &monitoring)? else {
        return Ok(());
    };
    let event = monitoring.getattr("events")?.getattr("PY_START")?;
    let set_local_events = monitoring.getattr("set_local_events")?;
    // SAFETY: GIL held; a borrowed reference to the running frame, or null.
    let top = unsafe { ffi::PyEval_GetFrame() };
    if top.is_null() {
        return Ok(());
    }
    // SAFETY: a live frame object (borrowed above).
    let mut frame = unsafe { Bound::from_borrowed_ptr(py, top.cast()) };
    loop {
        let code = frame.getattr("f_code")?;
        // Setting a local event instruments the code for it and the global ones; clearing
        // it again leaves the code instrumented for the global events of this version.
        set_local_events.call1((tool, &code, &event))?;
        set_local_events.call1((tool, &code, 0))?;
        let back = frame.getattr("f_back")?;
        if back.is_none() {
            return Ok(());
        }
        frame = back;
    }
}

/// anywait's tool id: the one it took before, or a free one, taken now: those CPython
/// assigns no role first (3, 4), then the optimizer's, profiler's, coverage's and
/// debugger's.
fn tool_id(py: Python<'_>, monitoring: &Bound<'_, PyAny>) -> PyResult<Option<u8>> {
    if let Some(taken) = TOOL.get(py) {
        return Ok(*taken);
    }
    let mut found = None;
    for id in [4u8, 3, 5, 2, 1, 0] {
        if monitoring.call_method1("get_tool", (id,))?.is_none() {
            monitoring.call_method1("use_tool_id", (id, TOOL_NAME))?;
            found = Some(id);
            break;
        }
    }
    if found.is_none() {
        PyRuntimeError::new_err(
            "anywait: every sys.monitoring tool id is in use, so the code of fibers resumed \
             after tracing, profiling or monitoring changed keeps its old instrumentation \
             (events may be missed)",
        )
        .write_unraisable(py, None);
    }
    Ok(*TOOL.get_or_init(py, || found))
}
