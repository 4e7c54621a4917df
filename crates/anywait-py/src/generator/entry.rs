//! The calls made once per item: `next()` on a stackful generator (its `tp_iternext`)
//! and `anywait.yield_(value=None)`, as direct entry points for the reasons
//! `fiber::entry` gives: PyO3's generic trampoline costs a large share of a switch, and
//! between `yield_`'s call and its return the consumer's code runs on another stack,
//! which PyO3's per-call bookkeeping does not expect.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;

use super::object::{stop_iteration, Resumed, StackfulGenerator};
use super::{ASYNC_GENERATOR, GENERATOR};
use crate::fiber::entry::{def_ptr, finish, with_value_arg, MethodDef};
use crate::fiber::{self, FiberCore, Status, Wire};

/// `tp_iternext`: the next value, or NULL (with `StopIteration` set only when the
/// body returned something other than None, as for a native generator).
unsafe extern "C" fn iternext(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_iternext with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: CPython calls the slot of our type with an instance, borrowed for the
        // call.
        let slf =
            unsafe { Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<StackfulGenerator>() };
        if slf.get().status() == Status::Dead {
            return Ok(None);
        }
        match StackfulGenerator::resume(&slf, Wire::Value(py.None())) {
            Resumed::Yielded(value) => Ok(Some(value)),
            Resumed::Returned(value) if value.is_none(py) => Ok(None),
            Resumed::Returned(value) => Err(stop_iteration(py, value)),
            Resumed::Raised(err) => Err(err),
        }
    }));
    match result {
        Ok(Ok(None)) => ptr::null_mut(),
        Ok(Ok(Some(value))) => value.into_ptr(),
        Ok(Err(err)) => finish(py, Ok(Err(err))),
        Err(panic) => finish(py, Err(panic)),
    }
}

static YIELD_DEF: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"yield_".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunctionFastWithKeywords: yield_entry,
    },
    ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
    ml_doc: c"yield_(value=None, /)\n--\n\nSuspend the innermost running anywait generator, producing value; returns what its consumer sends (None for next()).".as_ptr(),
});

unsafe extern "C" fn yield_entry(
    _module: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls builtins with the GIL and fastcall arguments.
    unsafe { with_value_arg(c"yield_", args, nargsf, kwnames, yield_value) }
}

/// `yield_(value)`: suspends the innermost running fiber if it is a generator's.
fn yield_value(py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
    let core = fiber::current();
    // SAFETY: CURRENT holds only live running cores.
    if core.is_null() || !is_generator(unsafe { (*core).tag() }) {
        drop(value.into_bound(py));
        return Err(not_in_generator(core));
    }
    // SAFETY: `core` is this thread's innermost running fiber, a generator's.
    unsafe { fiber::suspend_running(core, Wire::Value(value)) }.into_msg(py)
}

fn is_generator(tag: crate::fiber::Tag) -> bool {
    tag == GENERATOR || tag == ASYNC_GENERATOR
}

/// The error of `yield_` where the innermost running fiber is no generator's.
#[cold]
#[inline(never)]
fn not_in_generator(core: *mut FiberCore) -> PyErr {
    let mut below = core;
    while !below.is_null() {
        // SAFETY: CURRENT and the resumers of running fibers are live running cores.
        if is_generator(unsafe { (*below).tag() }) {
            return PyRuntimeError::new_err(
                "yield_() called in a fiber (a lowlevel.Fiber or a portal step) that runs \
                 inside an anywait generator: yield_() suspends the innermost running \
                 fiber, which must be the generator's; call it from the generator's own \
                 code, outside the inner fiber",
            );
        }
        // SAFETY: as above.
        below = unsafe { (*below).resumer() };
    }
    PyRuntimeError::new_err(
        "yield_() called outside an anywait generator: it works in code that a function \
         decorated with @anywait.generator calls (at any depth) while that generator runs",
    )
}

/// Installs the generator type's `tp_iternext` and adds `yield_` to the module.
pub(crate) fn install(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let tp = py.get_type::<StackfulGenerator>();
    // SAFETY: writing a slot of our own heap type before any instance exists; the
    // type already has a tp_iternext (PyO3's, from `__next__`), so it is an iterator
    // type to CPython either way. PyType_Modified drops cached lookups.
    unsafe {
        (*tp.as_type_ptr()).tp_iternext = Some(iternext);
        ffi::PyType_Modified(tp.as_type_ptr());
    }
    let name = module.name()?;
    // SAFETY: YIELD_DEF is static; returns a new reference or NULL with an exception.
    let yield_ = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyCFunction_NewEx(def_ptr(&YIELD_DEF), ptr::null_mut(), name.as_ptr()),
        )
    }?;
    module.add("yield_", yield_)?;
    Ok(())
}
