//! `anywait._anywait`: the compiled core of anywait.
//!
//! Layers, bottom up (each a module): `pystate` (the interpreter state that follows a
//! native stack; the only place with per-version conditionals), `fiber` (switching
//! Python code between stacks, lifetimes), `pyfiber` + `finalizer` + `fastpath` (the Python class and functions).
//! The public Python API is `anywait.lowlevel`, which re-exports from here.

#[cfg(not(anywait_unsupported))]
mod awaiting;
#[cfg(not(anywait_unsupported))]
mod errors;
#[cfg(not(anywait_unsupported))]
mod fastpath;
#[cfg(not(anywait_unsupported))]
mod fiber;
#[cfg(not(anywait_unsupported))]
mod finalizer;
#[cfg(not(anywait_unsupported))]
mod greenlet_bridge;
#[cfg(not(anywait_unsupported))]
mod immediate_step;
#[cfg(not(anywait_unsupported))]
mod install_here;
#[cfg(not(anywait_unsupported))]
mod portal;
#[cfg(not(anywait_unsupported))]
mod pyfiber;
#[cfg(not(anywait_unsupported))]
mod pystate;
#[cfg(not(anywait_unsupported))]
mod taskglue;

use pyo3::prelude::*;

#[cfg(anywait_unsupported)]
#[pymodule(gil_used = true)]
fn _anywait(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Err(pyo3::exceptions::PyImportError::new_err(env!(
        "ANYWAIT_UNSUPPORTED"
    )))
}

#[cfg(not(anywait_unsupported))]
#[pymodule(gil_used = true)]
fn _anywait(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use pyo3::exceptions::PyImportError;
    use pyo3::type_object::PyTypeInfo;

    let py = m.py();
    pystate::layout::verify()
        .and_then(|()| pystate::verify_reserved_fits())
        .map_err(PyImportError::new_err)?;
    #[cfg(Py_3_14)]
    pystate::verify_live_stack_bounds().map_err(PyImportError::new_err)?;
    m.add_class::<pyfiber::PyFiber>()?;
    let fiber_type = pyfiber::PyFiber::type_object_raw(py);
    // SAFETY: PyO3 just created this heap type and no instance exists yet; this is the
    // only call.
    unsafe { finalizer::install::<{ finalizer::FIBER }>(fiber_type, pyfiber::finalize_fiber) }
        .map_err(PyImportError::new_err)?;
    m.add_function(wrap_pyfunction!(pyfiber::current, m)?)?;
    m.add_class::<portal::Portal>()?;
    let portal_type = portal::Portal::type_object_raw(py);
    // SAFETY: as above, for the Portal class.
    unsafe { finalizer::install::<{ finalizer::PORTAL }>(portal_type, portal::finalize_portal) }
        .map_err(PyImportError::new_err)?;
    portal::install_am_send(py)?;
    fastpath::install(m)?;
    m.add_function(wrap_pyfunction!(portal::_make_portal, m)?)?;
    m.add_function(wrap_pyfunction!(portal::_call_in_portal, m)?)?;
    m.add_function(wrap_pyfunction!(portal::_in_portal_step, m)?)?;
    m.add_function(wrap_pyfunction!(taskglue::_swap_c_task_coro, m)?)?;
    m.add_function(wrap_pyfunction!(install_here::_install_portal_here, m)?)?;
    m.add_class::<immediate_step::ImmediateStep>()?;
    m.add("FiberExit", py.get_type::<errors::FiberExit>())?;
    Ok(())
}
