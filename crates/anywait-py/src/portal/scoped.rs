//! The portal layer's functions for the Python side: a portal for one call
//! (`with_portal_run_sync`), a portal around a coroutine (`with_portal_run`, the task
//! glue written in Python), and whether `await_` works here.

use pyo3::prelude::*;

use super::portal::Portal;
use super::worker::{in_portal_step, shareable_context};

/// Whether code calling this runs in a portal step (so `await_` works here): lets
/// `with_portal_run*` skip making a nested portal, which would only add a fiber.
#[pyfunction]
pub(crate) fn _in_portal_step() -> bool {
    in_portal_step()
}

/// The contextvars context in effect here if a task may share it while this portal
/// step waits in `await_` (it is the one the step started in), else None: nested
/// `asyncio.run` runs its task there, so that what it sets is seen after, as after an
/// `await`.
#[pyfunction]
pub(crate) fn _shareable_context(py: Python<'_>) -> Option<Py<PyAny>> {
    let context = shareable_context();
    // SAFETY: GIL held (the token); a borrowed reference to a live context (the thread
    // state holds it), of which we take a new one.
    (!context.is_null()).then(|| unsafe { Bound::from_borrowed_ptr(py, context) }.unbind())
}

/// A portal whose one step calls `func(*args, **kwargs)` (`with_portal_run_sync`).
#[pyfunction]
pub(crate) fn _call_in_portal(
    py: Python<'_>,
    func: Bound<'_, PyAny>,
    args: Bound<'_, pyo3::types::PyTuple>,
    kwargs: Option<Bound<'_, pyo3::types::PyDict>>,
) -> PyResult<Py<Portal>> {
    let call = (func, args, kwargs).into_pyobject(py)?.into_any().unbind();
    Py::new(py, Portal::new_inner(call, true))
}

/// Wraps a coroutine in a portal (used by loop glue written in Python).
#[pyfunction]
pub(crate) fn _make_portal(py: Python<'_>, coro: &Bound<'_, PyAny>) -> PyResult<Py<Portal>> {
    Py::new(py, Portal::new(coro)?)
}
