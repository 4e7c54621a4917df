//! `ensure_portal()`'s fast path: give the current task a portal from Rust, for the two
//! common cases, a Trio task and an asyncio C Task (also what uvloop runs). Everything
//! else (pure-Python tasks, Task subclasses, Trio older than 0.23, no running task and
//! its error) is left to the general path in `anywait._tasks`, which does the same in
//! Python at several times the cost.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict};

use super::c_task::_swap_c_task_coro;
use super::immediate_step::ImmediateStep;
use crate::modules::module_imported;
use crate::portal::Portal;

/// What the asyncio case looks up once: `asyncio.tasks._CTask` (None without the C
/// accelerator), the running loop's getter, and how to find the loop's current task.
/// The loop is what the task needs later (for its `ImmediateStep`), so we find the task
/// from it rather than ask the task for it.
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
/// `in_trio_task`, `current_task` and `cancel_shielded_checkpoint`; None for a Trio
/// without `in_trio_task` (before 0.23), which the general path handles.
struct TrioNames {
    in_trio_task: Py<PyAny>,
    current_task: Py<PyAny>,
    cancel_shielded_checkpoint: Py<PyAny>,
}

static TRIO: PyOnceLock<Option<TrioNames>> = PyOnceLock::new();

/// Gives the current task a portal if it is a Trio task or an asyncio C Task. Returns
/// what the task must await so that the rest of its work runs in the portal (Trio: a
/// `cancel_shielded_checkpoint()`; C Task: an `ImmediateStep`), False if the task has
/// a portal already, or None when the general path must decide. A C Task whose
/// coroutine field cannot be located raises here.
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
            cancel_shielded_checkpoint: name("cancel_shielded_checkpoint")?,
        })
    })
    .as_ref()
}

/// `task.coro = Portal(task.coro)` for the running Trio task. Its next step is not
/// bound yet: Trio takes `task.coro.send` (or `.throw`) when it reschedules a task,
/// and clears it before running the task's step.
fn install_trio(task: &Bound<'_, PyAny>, trio: &TrioNames) -> PyResult<Py<PyAny>> {
    let py = task.py();
    let coro = task.getattr(intern!(py, "coro"))?;
    if coro.is_instance_of::<Portal>() {
        return Ok(has_one_already(py));
    }
    if let Ok(next) = task.getattr(intern!(py, "_next_send_fn")) {
        if !next.is_none() {
            // Not the running step's task after all (Trio changed): general path.
            return Ok(py.None());
        }
    }
    let portal = Bound::new(py, Portal::new(&coro)?)?;
    task.setattr(intern!(py, "coro"), portal)?;
    Ok(trio.cancel_shielded_checkpoint.bind(py).call0()?.unbind())
}

/// The C Task case (see `immediate_step` for how the task then enters its portal).
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
    let coro = task.call_method0(intern!(py, "get_coro"))?;
    if coro.is_instance_of::<Portal>() {
        return Ok(has_one_already(py));
    }
    let portal = Bound::new(py, Portal::new(&coro)?)?;
    _swap_c_task_coro(&task, &coro, portal.as_any())?;
    let step = ImmediateStep::new(loop_.unbind(), task.unbind());
    Ok(Bound::new(py, step)?.into_any().unbind())
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

/// What the fast path returns for a task that has a portal already.
fn has_one_already(py: Python<'_>) -> Py<PyAny> {
    PyBool::new(py, false).to_owned().into_any().unbind()
}
