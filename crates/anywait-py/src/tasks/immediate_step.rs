//! `ImmediateStep`: how `ensure_portal()` gets a running asyncio C Task into its new
//! portal without a trip through the event loop.
//!
//! The step that calls `ensure_portal()` runs on the thread's own stack and cannot move
//! into the portal; only the task's *next* step can. A bare yield would have the loop
//! run that next step, one loop iteration later (`call_soon`, the selector, the ready
//! queue: most of what a fresh portal task used to cost). Instead `ensure_portal()`
//! yields this future-like object. The task's step code handles it as it handles any
//! foreign future: it calls `add_done_callback(task_wakeup)`, and then records it as
//! the future the task waits on (`task._fut_waiter`). In `add_done_callback` the old
//! step's coroutine has already suspended, so we run the task's next step right there,
//! through the task's own wakeup (which goes through the portal now): we leave the
//! task, call the wakeup, and enter the task again, so that the step code we return
//! into finds the task as it left it.
//!
//! That next step may itself wait on a future: the task then records that future in
//! `_fut_waiter`, which the outer step code is about to overwrite with this object,
//! without releasing it. So we take the future out of the field (and its reference
//! with it) and keep it here: `cancel()` forwards to it, which is all a task asks of
//! the future it waits on (`Task.cancel()`); the task's next step clears the field,
//! releasing this object and with it the future.
//!
//! Used only for the C Task (also uvloop's); anything other than that task's own
//! wakeup passed to `add_done_callback` is scheduled as for a finished future.

use pyo3::exceptions::PyRuntimeWarning;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{IntoPyDict, PyBool, PyDict, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

use super::c_task;

/// `asyncio.tasks._c_enter_task` and `_c_leave_task`: what the C Task's step uses.
static ENTER_LEAVE: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();

fn enter_leave(py: Python<'_>) -> PyResult<&(Py<PyAny>, Py<PyAny>)> {
    ENTER_LEAVE.get_or_try_init(py, || {
        let tasks = py.import("asyncio.tasks")?;
        Ok((
            tasks.getattr("_c_enter_task")?.unbind(),
            tasks.getattr("_c_leave_task")?.unbind(),
        ))
    })
}

/// One finished C `Future` (result None) for every task's wakeup (see
/// `add_done_callback`), or None if none can be made (no C accelerator, and then no C
/// Task either): the wakeup then gets the step object and calls its `result()`. The
/// future's loop is a stand-in: a future asks its loop only for the debug flag, when it
/// is made, and this one is never awaited, scheduled or shown to anyone.
static FINISHED: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();

fn finished_future(py: Python<'_>) -> Option<&Py<PyAny>> {
    FINISHED
        .get_or_init(py, || {
            let make = || -> PyResult<Py<PyAny>> {
                // `bool()` is False: the stand-in loop is not in debug mode.
                let stand_in = py.import("types")?.getattr("SimpleNamespace")?.call(
                    (),
                    Some(&[("get_debug", py.get_type::<PyBool>())].into_py_dict(py)?),
                )?;
                let future = py
                    .import("asyncio.futures")?
                    .getattr("_CFuture")?
                    .call((), Some(&[("loop", stand_in)].into_py_dict(py)?))?;
                future.call_method1("set_result", (py.None(),))?;
                Ok(future.unbind())
            };
            make().ok()
        })
        .as_ref()
}

/// A finished future-like object whose done callback, when it is the waiting task's
/// own wakeup, runs at once (see the module docs).
#[pyclass(module = "anywait", name = "_ImmediateStep")]
pub(crate) struct ImmediateStep {
    loop_: Py<PyAny>,
    /// The task, until its next step has run (kept no longer: the task holds this
    /// object as its `_fut_waiter`).
    task: Option<Py<PyAny>>,
    /// What the task's next step left it waiting on, taken from the task.
    waiter: Option<Py<PyAny>>,
    /// Set by `__next__`: the object yields itself once, as a pending future does.
    yielded: bool,
    /// The flag asyncio's tasks set and clear on the futures they wait on.
    #[pyo3(get, set)]
    _asyncio_future_blocking: bool,
}

/// What a finished future does with a done callback: schedule it.
fn schedule(
    slf: &Bound<'_, ImmediateStep>,
    callback: &Bound<'_, PyAny>,
    context: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let py = slf.py();
    let kwargs = PyDict::new(py);
    kwargs.set_item(intern!(py, "context"), context)?;
    let loop_ = slf.borrow().loop_.clone_ref(py);
    loop_.call_method(py, intern!(py, "call_soon"), (callback, slf), Some(&kwargs))?;
    Ok(())
}

#[pymethods]
impl ImmediateStep {
    #[new]
    pub(crate) fn new(loop_: Py<PyAny>, task: Py<PyAny>) -> Self {
        Self {
            loop_,
            task: Some(task),
            waiter: None,
            yielded: false,
            _asyncio_future_blocking: true,
        }
    }

    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Yields this object once (to the task), then returns None.
    fn __next__(mut slf: PyRefMut<'_, Self>) -> Option<Py<Self>> {
        if slf.yielded {
            return None;
        }
        slf.yielded = true;
        Some(slf.into())
    }

    fn get_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.loop_.clone_ref(py)
    }

    fn done(&self) -> bool {
        true
    }

    fn result(&self) {}

    #[pyo3(signature = (callback, *, context = None))]
    fn add_done_callback(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let (task, loop_) = {
            let mut this = slf.borrow_mut();
            (this.task.take(), this.loop_.clone_ref(py))
        };
        // The C Task's wakeup is a builtin function bound to the task.
        let own_wakeup = match &task {
            // SAFETY: `callback` is a live object; its type is checked before the
            // builtin-function accessor reads it.
            Some(task) => unsafe {
                ffi::PyCFunction_Check(callback.as_ptr()) != 0
                    && ffi::PyCFunction_GetSelf(callback.as_ptr()) == task.as_ptr()
            },
            None => false,
        };
        let Some(task) = task.filter(|_| own_wakeup) else {
            return schedule(slf, callback, context);
        };
        let task = task.bind(py);
        let loop_ = loop_.bind(py);
        let (enter, leave) = enter_leave(py)?;
        if leave.call1(py, (loop_, task)).is_err() {
            // Not called from that task's running step after all: schedule it.
            return schedule(slf, callback, context);
        }
        // The wakeup only asks its argument for the result: a finished C Future answers
        // from its struct, anything else through a `result()` method call (on 3.11-3.13
        // with the method's name made from a C string each time).
        let stepped = match finished_future(py) {
            Some(done) => callback.call1((done,)),
            None => callback.call1((slf,)),
        };
        // Enter again whatever the step did: the step code we return into leaves it.
        enter.call1(py, (loop_, task))?;
        stepped?;
        match c_task::take_c_task_waiter(task) {
            Ok(waiter) => slf.borrow_mut().waiter = waiter,
            Err(err) => {
                // The field could not be located: the step code will overwrite it and
                // leak one reference to the future. Keep the future (for `cancel`).
                let waiter = task.getattr(intern!(py, "_fut_waiter"))?;
                slf.borrow_mut().waiter = Some(waiter.unbind());
                PyErr::warn(
                    py,
                    &py.get_type::<PyRuntimeWarning>(),
                    &std::ffi::CString::new(format!("anywait: {err}; one future leaked"))?,
                    1,
                )?;
            }
        }
        Ok(())
    }

    /// Cancels what the task waits on, with the arguments the task passed.
    #[pyo3(signature = (*args, **kwargs))]
    fn cancel(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        match &self.waiter {
            Some(waiter) => waiter.call_method(py, intern!(py, "cancel"), args, kwargs),
            None => Ok(false.into_pyobject(py)?.to_owned().into_any().unbind()),
        }
    }

    /// The repr of what the task waits on (a task's repr shows its `_fut_waiter`).
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        match &self.waiter {
            Some(waiter) => Ok(waiter.bind(py).repr()?.to_string()),
            None => Ok("<anywait._ImmediateStep (done)>".to_owned()),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        visit.call(&self.task)?;
        visit.call(&self.waiter)
    }

    fn __clear__(&mut self) {
        self.task = None;
        self.waiter = None;
    }
}
