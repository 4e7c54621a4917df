//! The interpreter's input hook (`PyOS_InputHook`), for `python -m anywait`: the
//! interactive prompt calls it while it waits for a key (GNU readline between its
//! selects, with the GIL released; the 3.13+ REPL from Python, with the GIL held), and
//! the REPL's hook runs the persistent loop meanwhile, so background tasks keep
//! running at the prompt. A leaf: no other module uses it.

use std::ffi::c_int;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

extern "C" {
    /// `int (*PyOS_InputHook)(void)` (pythonrun.h; pyo3-ffi leaves it out).
    static mut PyOS_InputHook: Option<unsafe extern "C" fn() -> c_int>;
}

/// The Python callable the hook calls (set once; None in it means "not installed").
static HOOK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Calls the Python hook with the GIL (taken if readline released it). An exception
/// it raises cannot reach the prompt from here: it is reported as unraisable, so the
/// Python side handles its own (Ctrl-C included) before returning.
unsafe extern "C" fn call_hook() -> c_int {
    Python::attach(|py| {
        if let Some(hook) = HOOK.get(py) {
            if let Err(err) = hook.bind(py).call0() {
                err.write_unraisable(py, Some(hook.bind(py)));
            }
        }
    });
    0
}

/// Makes `hook` (a callable taking no arguments) the interpreter's input hook, or
/// removes ours with None. RuntimeError if another input hook is installed (Tkinter's,
/// say), or if a different callable was set before.
#[pyfunction]
#[pyo3(signature = (hook, /))]
pub(crate) fn _set_input_hook(py: Python<'_>, hook: Option<Py<PyAny>>) -> PyResult<()> {
    // SAFETY: the GIL is held, and the interpreter reads PyOS_InputHook only from the
    // thread reading input, which is this one while it runs Python code; a plain
    // load and store of a function pointer.
    let current = unsafe { PyOS_InputHook };
    let ours: unsafe extern "C" fn() -> c_int = call_hook;
    match hook {
        None => {
            if current.is_some_and(|f| std::ptr::fn_addr_eq(f, ours)) {
                // SAFETY: as above.
                unsafe { PyOS_InputHook = None };
            }
            Ok(())
        }
        Some(hook) => {
            if current.is_some_and(|f| !std::ptr::fn_addr_eq(f, ours)) {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "another input hook is installed (PyOS_InputHook; a GUI toolkit's?)",
                ));
            }
            if let Some(set) = HOOK.get(py) {
                if !set.bind(py).is(hook.bind(py)) {
                    return Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "the input hook was set to another callable already",
                    ));
                }
            } else {
                let _ = HOOK.set(py, hook);
            }
            // SAFETY: as above.
            unsafe { PyOS_InputHook = Some(ours) };
            Ok(())
        }
    }
}
