//! Direct entry points for the calls made on every switch: `Fiber.switch(value=None)`
//! and `suspend(value=None)`, and for constructing a `Fiber` (`tp_vectorcall` of the
//! class: calling the class skips `type.__call__` and PyO3's generic `*args, **kwargs`
//! parsing). The portal layer's entry points (`await_`, `Portal.send`) are built from
//! the same pieces ([`MethodDef`], [`finish`], [`def_ptr`]).
//!
//! Why not `#[pymethods]`: PyO3's generic trampoline (attach-count bookkeeping, the
//! argument-description walk) was a quarter of a switch round trip; and its attach
//! count is a thread-local that assumes every call returns on the stack it was made
//! on, which a call that switches stacks does not. These functions take the GIL as
//! held (CPython only calls them with it), parse their one optional argument by hand,
//! and catch panics at the boundary.
//!
//! `switch` is added to the `Fiber` type's dict as a method descriptor (which checks
//! the type of `self` before calling us), `suspend` is a module-level builtin.

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;

use super::pyfiber::PyFiber;
use super::suspend;
use crate::fatal::fatal;

/// A `PyMethodDef` that may live in a static (CPython reads it, never writes it).
#[repr(transparent)]
pub(crate) struct MethodDef(pub(crate) ffi::PyMethodDef);

// SAFETY: the definition is immutable after construction and holds only pointers to
// static data and functions.
unsafe impl Sync for MethodDef {}

const FASTCALL_KW: std::ffi::c_int = ffi::METH_FASTCALL | ffi::METH_KEYWORDS;

static SWITCH_DEF: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"switch".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunctionFastWithKeywords: switch_entry,
    },
    ml_flags: FASTCALL_KW,
    ml_doc: c"switch($self, value=None, /)\n--\n\nStart or resume the fiber and run it until it suspends or finishes; returns what it passes to suspend(), or its return value.".as_ptr(),
});

static SUSPEND_DEF: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"suspend".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunctionFastWithKeywords: suspend_entry,
    },
    ml_flags: FASTCALL_KW,
    ml_doc: c"suspend(value=None, /)\n--\n\nSuspend the current fiber, handing value to the code that resumed it; returns the value of the next switch().".as_ptr(),
});

/// The optional `value` argument, positional or by keyword; a borrowed reference
/// (None when absent), or NULL with TypeError set.
///
/// # Safety
/// The arguments are those CPython passes to a `METH_FASTCALL | METH_KEYWORDS`
/// function, GIL held.
unsafe fn value_arg(
    py: Python<'_>,
    name: &CStr,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    // SAFETY: vectorcall conventions (caller).
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf as usize) };
    let nkw = if kwnames.is_null() {
        0
    } else {
        // SAFETY: kwnames is a tuple of str (vectorcall conventions).
        unsafe { ffi::PyTuple_GET_SIZE(kwnames) }
    };
    let too_many = || {
        PyTypeError::new_err(format!(
            "{}() takes at most 1 argument ({} given)",
            name.to_string_lossy(),
            nargs + nkw
        ))
    };
    match (nargs, nkw) {
        // SAFETY: the None singleton is immortal or held by the interpreter.
        (0, 0) => Ok(unsafe { ffi::Py_None() }),
        // SAFETY: one positional argument is present.
        (1, 0) => Ok(unsafe { *args }),
        (0, 1) => {
            // SAFETY: kwnames has one item, a str.
            let key = unsafe { Bound::from_borrowed_ptr(py, ffi::PyTuple_GET_ITEM(kwnames, 0)) };
            if key.eq("value")? {
                // SAFETY: the keyword's value follows the positionals.
                Ok(unsafe { *args })
            } else {
                Err(PyTypeError::new_err(format!(
                    "{}() got an unexpected keyword argument {}",
                    name.to_string_lossy(),
                    key.repr()?
                )))
            }
        }
        _ => Err(too_many()),
    }
}

/// Converts a call's outcome into CPython's convention (new reference, or NULL with
/// the error set), aborting on a panic, which must never cross into C.
pub(crate) fn finish(
    py: Python<'_>,
    result: std::thread::Result<PyResult<Py<PyAny>>>,
) -> *mut ffi::PyObject {
    match result {
        Ok(Ok(value)) => value.into_ptr(),
        Ok(Err(err)) => raise(py, err),
        Err(_) => fatal("a Rust panic reached a Python call boundary"),
    }
}

/// Sets `err` as the current exception; returns NULL. Out of line, so that the entry
/// points stay small (`await_entry`'s frame stays on every blocked task's stack).
#[inline(never)]
fn raise(py: Python<'_>, err: PyErr) -> *mut ffi::PyObject {
    err.restore(py);
    ptr::null_mut()
}

/// The shared body of the `(value=None)` entry points: parses the optional value (as
/// an owned reference) and hands it to `call`, under the GIL, catching panics.
///
/// # Safety
/// The arguments are those CPython passes to a `METH_FASTCALL | METH_KEYWORDS`
/// function, with the GIL held.
pub(crate) unsafe fn with_value_arg(
    name: &CStr,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    call: impl FnOnce(Python<'_>, Py<PyAny>) -> PyResult<Py<PyAny>>,
) -> *mut ffi::PyObject {
    // SAFETY: the GIL is held (caller).
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: CPython's fastcall arguments (caller).
        let value = unsafe { value_arg(py, name, args, nargsf, kwnames) }?;
        // SAFETY: a borrowed argument, turned into an owned reference to send.
        call(py, unsafe { Bound::from_borrowed_ptr(py, value) }.unbind())
    }));
    finish(py, result)
}

unsafe extern "C" fn switch_entry(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with the GIL and fastcall arguments, and the
    // method descriptor checked that `slf` is a Fiber, borrowed for the call.
    unsafe {
        with_value_arg(c"switch", args, nargsf, kwnames, |py, value| {
            // The method descriptor checked that `slf` is a Fiber; it is borrowed for
            // the duration of the call (covered by the enclosing SAFETY comment).
            let slf = Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<PyFiber>();
            PyFiber::resume(&slf, Ok(value))
        })
    }
}

unsafe extern "C" fn suspend_entry(
    _module: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls builtins with the GIL and fastcall arguments.
    unsafe {
        with_value_arg(c"suspend", args, nargsf, kwnames, |_py, value| {
            // Refuses where the innermost fiber is not a user Fiber (a portal's step
            // worker, say), with the same words as outside any fiber.
            suspend::suspend(value)
        })
    }
}

pub(crate) fn def_ptr(def: &'static MethodDef) -> *mut ffi::PyMethodDef {
    ptr::from_ref(&def.0).cast_mut()
}

unsafe extern "C" fn fiber_new_entry(
    _cls: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls types with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| -> PyResult<Py<PyAny>> {
        // SAFETY: vectorcall conventions: `nargs` positionals, then one value per name
        // in `kwnames` (a tuple of str).
        let (nargs, names) = unsafe {
            let names = (!kwnames.is_null()).then(|| Bound::from_borrowed_ptr(py, kwnames));
            (ffi::PyVectorcall_NARGS(nargsf), names)
        };
        let nkw = names.as_ref().map_or(0, |n| n.len().unwrap_or(0));
        if nargs < 1 {
            return Err(PyTypeError::new_err(
                "Fiber() missing 1 required positional argument: 'func'",
            ));
        }
        // SAFETY: as above; every slot holds a borrowed reference.
        let all: Vec<Bound<'_, PyAny>> =
            unsafe { std::slice::from_raw_parts(args, nargs as usize + nkw) }
                .iter()
                // SAFETY: borrowed references valid for the call.
                .map(|&p| unsafe { Bound::from_borrowed_ptr(py, p) })
                .collect();
        let (positional, keyword_values) = all.split_at(nargs as usize);
        let rest = pyo3::types::PyTuple::new(py, &positional[1..])?;
        let kwargs = match names {
            None => None,
            Some(names) => {
                let dict = pyo3::types::PyDict::new(py);
                for (name, value) in names.try_iter()?.zip(keyword_values) {
                    dict.set_item(name?, value)?;
                }
                Some(dict)
            }
        };
        let fiber = PyFiber::build(&positional[0], &rest, kwargs.as_ref())?;
        Ok(Py::new(py, fiber)?.into_any())
    }));
    finish(py, result)
}

/// Adds `switch` to the Fiber type, its vectorcall constructor, and `suspend` to the module.
pub(crate) fn install(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let tp = py.get_type::<PyFiber>();
    // SAFETY: SWITCH_DEF is static and CPython only reads it (the `*mut` in the
    // signature is historical); the result is a new reference or NULL with an exception.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyDescr_NewMethod(tp.as_type_ptr(), def_ptr(&SWITCH_DEF)),
        )
    }?;
    // Heap types made by PyO3 accept new attributes; setattr also invalidates the
    // type's method cache.
    tp.setattr("switch", descr)?;
    // SAFETY: writing the constructor slot of our own heap type, before any instance
    // exists; `type` objects dispatch calls through `tp_vectorcall` when it is set.
    unsafe { (*tp.as_type_ptr()).tp_vectorcall = Some(fiber_new_entry) };
    let name = module.name()?;
    // SAFETY: SUSPEND_DEF is static; returns a new reference or NULL with an exception.
    let suspend = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyCFunction_NewEx(def_ptr(&SUSPEND_DEF), ptr::null_mut(), name.as_ptr()),
        )
    }?;
    module.add("suspend", suspend)?;
    Ok(())
}
