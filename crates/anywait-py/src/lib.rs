//! `anywait._anywait`: the compiled core of anywait.
//!
//! Layers, top down; each is a folder whose `mod.rs` says what it owns, its invariants
//! and what it may call. Calls go downward only.
//!
//! | layer       | owns                                                                  |
//! |-------------|-----------------------------------------------------------------------|
//! | `generator/`| stackful generators: `@anywait.generator` objects and `yield_`        |
//! | `tasks/`    | putting a portal under a running asyncio C Task or Trio task          |
//! | `portal/`   | the `Portal` awaitable, step workers, `await_`, scoped calls          |
//! | `interop/`  | keeping other stack users consistent across steps (greenlet)          |
//! | `fiber/`    | Python code on stacks of its own: switch, lifetimes, `lowlevel.Fiber` |
//! | `pystate/`  | the per-thread interpreter state that follows a stack (per version)   |
//!
//! Leaves any layer may use: `fatal` (abort with a message), `modules` (is a module
//! imported). Below everything: crate `anywait-fiber` (stacks, pool, the raw switch)
//! and the C accessor `csrc/layout.c` (CPython-private struct fields). Beside the
//! layers, calling none of them: `input_hook` (the interpreter's `PyOS_InputHook`, which
//! `python -m anywait` runs its loop from while the prompt waits).
//!
//! The Python package wraps this: `anywait` (public API) and `anywait.lowlevel`
//! re-export from here; `anywait._tasks` is the general (Python) path of `tasks/`.

#[cfg(not(anywait_unsupported))]
mod fatal;
#[cfg(not(anywait_unsupported))]
mod fiber;
#[cfg(not(anywait_unsupported))]
mod generator;
#[cfg(not(anywait_unsupported))]
mod input_hook;
#[cfg(not(anywait_unsupported))]
mod interop;
#[cfg(not(anywait_unsupported))]
mod modules;
#[cfg(not(anywait_unsupported))]
mod portal;
#[cfg(not(anywait_unsupported))]
mod pystate;
#[cfg(not(anywait_unsupported))]
mod tasks;

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

    use fiber::finalizer;
    use fiber::pyfiber::{self, PyFiber};
    use portal::{scoped, Portal};

    let py = m.py();
    pystate::layout::verify()
        .and_then(|()| pystate::verify_reserved_fits())
        .map_err(PyImportError::new_err)?;
    #[cfg(Py_3_14)]
    pystate::verify_live_stack_bounds().map_err(PyImportError::new_err)?;

    // fiber/
    m.add_class::<PyFiber>()?;
    let fiber_type = PyFiber::type_object_raw(py);
    // SAFETY: PyO3 just created this heap type and no instance exists yet; this is the
    // only call.
    unsafe { finalizer::install::<{ finalizer::FIBER }>(fiber_type, pyfiber::finalize_fiber) }
        .map_err(PyImportError::new_err)?;
    m.add_function(wrap_pyfunction!(pyfiber::current, m)?)?;
    fiber::entry::install(m)?;
    m.add("FiberExit", py.get_type::<fiber::errors::FiberExit>())?;

    // portal/ (and the hooks interop/ calls it through)
    portal::worker::register_with_bridge();
    fiber::relay::set_handler(portal::await_::relay_trap);
    m.add_class::<Portal>()?;
    let portal_type = Portal::type_object_raw(py);
    // SAFETY: as above, for the Portal class.
    unsafe {
        finalizer::install::<{ finalizer::PORTAL }>(portal_type, portal::portal::finalize_portal)
    }
    .map_err(PyImportError::new_err)?;
    portal::portal::install_am_send(py)?;
    portal::entry::install(m)?;
    m.add_function(wrap_pyfunction!(scoped::_make_portal, m)?)?;
    m.add_function(wrap_pyfunction!(scoped::_call_in_portal, m)?)?;
    m.add_function(wrap_pyfunction!(scoped::_in_portal_step, m)?)?;
    m.add_function(wrap_pyfunction!(scoped::_shareable_context, m)?)?;
    m.add_function(wrap_pyfunction!(portal::await_::_set_no_portal_hint, m)?)?;
    m.add_function(wrap_pyfunction!(portal::await_::_set_sync_first, m)?)?;
    m.add_function(wrap_pyfunction!(portal::await_::_set_cancelled_hook, m)?)?;

    // input_hook.rs (python -m anywait)
    m.add_function(wrap_pyfunction!(input_hook::_set_input_hook, m)?)?;

    // generator/
    m.add_class::<generator::object::StackfulGenerator>()?;
    let generator_type = generator::object::StackfulGenerator::type_object_raw(py);
    // SAFETY: as above, for the StackfulGenerator class.
    unsafe {
        finalizer::install::<{ finalizer::GENERATOR }>(
            generator_type,
            generator::object::finalize_generator,
        )
    }
    .map_err(PyImportError::new_err)?;
    generator::entry::install(m)?;
    m.add_class::<generator::asyncgen::StackfulAsyncGenerator>()?;
    m.add_class::<generator::step::AsyncGenStep>()?;

    let async_generator_type = generator::asyncgen::StackfulAsyncGenerator::type_object_raw(py);
    // SAFETY: as above, for the StackfulAsyncGenerator class.
    unsafe {
        finalizer::install::<{ finalizer::ASYNC_GENERATOR }>(
            async_generator_type,
            generator::asyncgen::finalize_async_generator,
        )
    }
    .map_err(PyImportError::new_err)?;
    generator::step::install_async_slots(py)?;

    // tasks/
    m.add_function(wrap_pyfunction!(tasks::c_task::_swap_c_task_coro, m)?)?;
    m.add_function(wrap_pyfunction!(
        tasks::install_here::_install_portal_here,
        m
    )?)?;
    Ok(())
}
