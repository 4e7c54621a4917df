//! Replacing the coroutine of a running asyncio C `Task`.
//!
//! The C Task keeps its coroutine in a private struct field with no setter. We find
//! that field at run time: scan the task object's own memory for the address of the
//! coroutine `task.get_coro()` returns, require exactly one match, and cache the
//! offset per task type. Every later use checks that the cached field still holds
//! `get_coro()` before writing, so a layout we misread fails loudly, never silently.
//! (Pure-Python tasks and Trio tasks have an attribute for this; see `anywait._glue`.)

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;

/// Offsets of the coroutine field, by task type address.
static OFFSETS: Mutex<Option<HashMap<usize, usize>>> = Mutex::new(None);

const WORD: usize = std::mem::size_of::<usize>();

fn find_offset(task: &Bound<'_, PyAny>, coro: *mut ffi::PyObject) -> PyResult<usize> {
    let tp = task.get_type();
    let key = tp.as_type_ptr() as usize;
    let mut cache = OFFSETS
        .lock()
        .map_err(|_| PyRuntimeError::new_err("task glue lock poisoned"))?;
    if let Some(&off) = cache.get_or_insert_with(HashMap::new).get(&key) {
        return Ok(off);
    }
    // SAFETY: reading the basic size of a live type object.
    let size = usize::try_from(unsafe { (*tp.as_type_ptr()).tp_basicsize }).unwrap_or(0);
    let base = task.as_ptr().cast::<u8>();
    let header = std::mem::size_of::<ffi::PyObject>();
    let matches: Vec<usize> = (header..size.saturating_sub(WORD - 1))
        .step_by(WORD)
        // SAFETY: every offset is inside the object's basic size, word aligned.
        .filter(|&off| unsafe { base.add(off).cast::<*mut ffi::PyObject>().read() } == coro)
        .collect();
    match matches.as_slice() {
        [off] => {
            cache.get_or_insert_with(HashMap::new).insert(key, *off);
            Ok(*off)
        }
        _ => Err(PyRuntimeError::new_err(format!(
            "cannot locate the coroutine inside this {} object ({} candidate fields); \
             anywait cannot give it a portal",
            tp.name()?,
            matches.len()
        ))),
    }
}

/// Puts `new` in place of the task's coroutine (which must be `old`, the coroutine the
/// task runs now); the task then owns a reference to `new` and none to `old`.
#[pyfunction]
pub(crate) fn _swap_c_task_coro(
    task: &Bound<'_, PyAny>,
    old: &Bound<'_, PyAny>,
    new: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let off = find_offset(task, old.as_ptr())?;
    // SAFETY: `off` is a word-aligned offset inside the task object that holds
    // `old` (checked next, under the GIL, so nothing changes it meanwhile).
    let slot = unsafe {
        task.as_ptr()
            .cast::<u8>()
            .add(off)
            .cast::<*mut ffi::PyObject>()
    };
    // SAFETY: as above.
    if unsafe { slot.read() } != old.as_ptr() {
        return Err(PyRuntimeError::new_err(
            "the task's coroutine field does not hold its coroutine; refusing to write",
        ));
    }
    // SAFETY: the field held a strong reference to `old`; it now holds one to `new`.
    // `old` stays alive as long as the caller holds it (the portal does); the C step
    // code may be using `old` right now without a reference of its own.
    unsafe {
        ffi::Py_INCREF(new.as_ptr());
        slot.write(new.as_ptr());
        ffi::Py_DECREF(old.as_ptr());
    }
    Ok(())
}
