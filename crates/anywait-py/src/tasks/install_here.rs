//! `ensure_portal()`'s fast path: give the current task a portal from Rust, for the two
//! common cases, a Trio task and an asyncio C Task (also what uvloop runs). Everything
//! else (pure-Python tasks, Task subclasses, Trio older than 0.23, no running task and
//! its error) is left to the general path in `anywait._tasks`, which does the same in
//! Python at several times the cost.
//!
//! Either way `ensure_portal()` is a checkpoint, as greenback documents it: the task
//! then yields to the loop (Trio: `trio.lowlevel.checkpoint()`, a schedule point and a
//! cancellation point; asyncio: a bare yield, where a pending `cancel()` is delivered).
//! That yield is also what moves the task into a portal just installed: the step that
//! called `ensure_portal()` runs on the thread's own stack and cannot move, only the
//! task's next step can. Code already in a portal step (a scoped portal of
//! `with_portal_run`, say) gets the checkpoint and no portal of its own.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBool;
#[cfg(not(Py_3_12))]
use pyo3::types::PyDict;

use super::c_task::_swap_c_task_coro;
use crate::modules::module_imported;
use crate::portal::worker::in_portal_step;
use crate::portal::Portal;

/// What the asyncio case looks up once: `asyncio.tasks._CTask` (None without the C
/// accelerator), the running loop's getter, and how to find the loop's current task
/// (from the loop: cheaper than `asyncio.current_task()` on 3.11).
struct AsyncioNames {
    c_task: Py<PyAny>,
    get_running_loop: Py<PyAny>,
    /// 3.11: the C Task's own table of current tasks by loop (`current_task()` is
    /// Python code that reads it there, at some ten times the cost of the lookup);
    /// None if it is not a dict, then `current_task` is called.
    #[cfg(not(Py_3_12))]
    current_tasks: Option<Py<PyDict>>,
    /// `asyncio.current_task` (C code from 3.12 on), called with the loop.
    current_task: Py<PyAny>,
}

static ASYNCIO: PyOnceLock<AsyncioNames> = PyOnceLock::new();

/// What the Trio case looks up once Trio is imported: `trio.lowlevel`'s
/// `in_trio_task`, `current_task` and `checkpoint`; None for a Trio without
/// `in_trio_task` (before 0.23), which the general path handles.
struct TrioNames {
    in_trio_task: Py<PyAny>,
    current_task: Py<PyAny>,
    checkpoint: Py<PyAny>,
}

static TRIO: PyOnceLock<Option<TrioNames>> = PyOnceLock::new();

/// Gives the current task a portal, unless `await_` already works here, if it is a
/// Trio task or an asyncio C Task. Returns the checkpoint the task must then await:
/// Trio's `checkpoint()` coroutine, or True for one bare yield (asyncio); None when the
/// general path must decide. A C Task whose coroutine field cannot be located raises.
#[pyfunction]
pub(crate) fn _install_portal_here(py: Python<'_>) -> PyResult<Py<PyAny>> {
    if module_imported(intern!(py, "trio")) {
        let Some(trio) = trio_names(py) else {
            return Ok(py.None());
        };
        if trio.in_trio_task.bind(py).call0()?.is_truthy()? {
            let task = trio.current_task.bind(py).call0()?;
            return install_trio(&task, trio);
        }
    }
    install_c_task(py)
}

fn trio_names(py: Python<'_>) -> Option<&TrioNames> {
    TRIO.get_or_init(py, || {
        let lowlevel = py.import("trio.lowlevel").ok()?;
        let name = |attr: &str| lowlevel.getattr(attr).ok().map(Bound::unbind);
        Some(TrioNames {
            in_trio_task: name("in_trio_task")?,
            current_task: name("current_task")?,
            checkpoint: name("checkpoint")?,
        })
    })
    .as_ref()
}

/// `task.coro = Portal(task.coro)` for the running Trio task. Its next step is not
/// bound yet: Trio takes `task.coro.send` (or `.throw`) when it reschedules a task,
/// and clears it before running the task's step.
fn install_trio(task: &Bound<'_, PyAny>, trio: &TrioNames) -> PyResult<Py<PyAny>> {
    let py = task.py();
    let checkpoint = || Ok(trio.checkpoint.bind(py).call0()?.unbind());
    if in_portal_step() {
        return checkpoint();
    }
    let coro = task.getattr(intern!(py, "coro"))?;
    if coro.is_instance_of::<Portal>() {
        return checkpoint(); // bestowed by the task on itself: effective from the yield
    }
    if let Ok(next) = task.getattr(intern!(py, "_next_send_fn")) {
        if !next.is_none() {
            // Not the running step's task after all (Trio changed): general path.
            return Ok(py.None());
        }
    }
    let portal = Bound::new(py, Portal::new(&coro)?)?;
    task.setattr(intern!(py, "coro"), portal)?;
    checkpoint()
}

/// The C Task case.
fn install_c_task(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let names = ASYNCIO.get_or_try_init(py, || -> PyResult<_> {
        let tasks = py.import("asyncio.tasks")?;
        Ok(AsyncioNames {
            c_task: tasks
                .getattr("_CTask")
                .map_or_else(|_| py.None(), Bound::unbind),
            get_running_loop: py
                .import("asyncio.events")?
                .getattr("get_running_loop")?
                .unbind(),
            #[cfg(not(Py_3_12))]
            current_tasks: tasks
                .getattr("_current_tasks")
                .ok()
                .and_then(|table| table.cast_into::<PyDict>().ok())
                .map(Bound::unbind),
            current_task: tasks.getattr("current_task")?.unbind(),
        })
    })?;
    let general = || Ok(py.None());
    if names.c_task.is_none(py) {
        return general();
    }
    let Ok(loop_) = names.get_running_loop.bind(py).call0() else {
        return general();
    };
    let task = match current_task(py, names, &loop_) {
        Ok(Some(task)) if task.get_type().is(names.c_task.bind(py)) => task,
        _ => return general(),
    };
    let bare_yield = || Ok(PyBool::new(py, true).to_owned().into_any().unbind());
    if in_portal_step() {
        return bare_yield();
    }
    let coro = task.call_method0(intern!(py, "get_coro"))?;
    if coro.is_instance_of::<Portal>() {
        return bare_yield(); // bestowed by the task on itself: effective from the yield
    }
    let portal = Bound::new(py, Portal::new(&coro)?)?;
    _swap_c_task_coro(&task, &coro, portal.as_any())?;
    bare_yield()
}

/// The task running on `loop_` (the running loop), if any.
fn current_task<'py>(
    py: Python<'py>,
    names: &AsyncioNames,
    loop_: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    #[cfg(not(Py_3_12))]
    if let Some(table) = &names.current_tasks {
        return table.bind(py).get_item(loop_);
    }
    let task = names.current_task.bind(py).call1((loop_,))?;
    Ok((!task.is_none()).then_some(task))
}
