//! Direct entry points of the portal layer: `await_(awaitable)` (a module-level
//! builtin) and `Portal.send(value)` (a method descriptor: Trio calls it once per step
//! of every portal task). Why not `#[pymethods]`: see `fiber::entry`, whose pieces
//! these are built from.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;

use super::portal::Portal;
use crate::fiber::entry::{def_ptr, finish, MethodDef};

static AWAIT_DEF: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"await_".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunction: await_entry,
    },
    ml_flags: ffi::METH_O,
    // The same text as the stub's docstring (python/anywait/_anywait.pyi); the API
    // reference (docs/api) is built from this one.
    ml_doc: c"await_(awaitable, /)\n--\n\n\
Await ``awaitable`` from sync code running in a task that has a portal, exactly as\n\
``await awaitable`` would at this point (same value, exception, cancellation,\n\
context and checkpoints), and return its result.\n\
\n\
RuntimeError if there is no portal (call ``await anywait.ensure_portal()`` first, or\n\
use ``anywait.run``), including outside any event loop and on another thread; the\n\
interpreter's own TypeError for objects that cannot be awaited. A coroutine passed\n\
to a failing ``await_`` is closed."
        .as_ptr(),
});

static PORTAL_SEND_DEF: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"send".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunction: portal_send_entry,
    },
    ml_flags: ffi::METH_O,
    ml_doc:
        c"send($self, value, /)\n--\n\nRun the next step with `value`, as coroutine.send() does."
            .as_ptr(),
});

unsafe extern "C" fn await_entry(
    _module: *mut ffi::PyObject,
    aw: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls builtins with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: METH_O passes one borrowed argument.
        let aw = unsafe { Bound::from_borrowed_ptr(py, aw) };
        super::await_::await_(py, &aw)
    }));
    finish(py, result)
}

/// `Portal.send(value)`: Trio drives each step through it.
unsafe extern "C" fn portal_send_entry(
    slf: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the method descriptor checked that `slf` is a Portal; METH_O passes
        // one borrowed argument.
        let (slf, value) = unsafe {
            (
                Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<Portal>(),
                Bound::from_borrowed_ptr(py, value).unbind(),
            )
        };
        slf.get().send_value(py, value)
    }));
    finish(py, result)
}

/// Adds `await_` to the module and `send` to the Portal type.
pub(crate) fn install(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let name = module.name()?;
    // SAFETY: AWAIT_DEF is static; returns a new reference or NULL with an exception.
    let await_ = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyCFunction_NewEx(def_ptr(&AWAIT_DEF), ptr::null_mut(), name.as_ptr()),
        )
    }?;
    module.add("await_", await_)?;
    let portal = py.get_type::<Portal>();
    // SAFETY: PORTAL_SEND_DEF is static and CPython only reads it; a new reference or
    // NULL with an exception.
    let send = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyDescr_NewMethod(portal.as_type_ptr(), def_ptr(&PORTAL_SEND_DEF)),
        )
    }?;
    portal.setattr("send", send)?;
    Ok(())
}
