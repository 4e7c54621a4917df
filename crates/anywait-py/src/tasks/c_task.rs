//! Writing two private fields of a running asyncio C `Task`: its coroutine (to put a
//! portal in its place) and the future it waits on (see `immediate_step`).
//!
//! The C Task has no setter for either. We find each field at run time: scan the task
//! object's own memory for the address of the object the task's getter returns
//! (`get_coro()`, `_fut_waiter`), require exactly one match, and cache the offset per
//! task type and field. Every later use checks that the cached field still holds what
//! the getter returns before writing, so a layout we misread fails loudly, never
//! silently. (Pure-Python tasks and Trio tasks have attributes for this; see
//! `anywait._tasks`.)

use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;

/// A private field of the C Task that we locate and write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    Coro,
    FutWaiter,
}

/// Located offsets: (task type address, field, offset). A program has one or two task
/// types (asyncio's, uvloop's), so a short list beats a hash map (whose SipHash alone
/// cost more than the rest of a lookup).
static OFFSETS: Mutex<Vec<(usize, Field, usize)>> = Mutex::new(Vec::new());

const WORD: usize = std::mem::size_of::<usize>();

fn find_offset(task: &Bound<'_, PyAny>, field: Field, held: *mut ffi::PyObject) -> PyResult<usize> {
    let tp = task.get_type();
    let tp_addr = tp.as_type_ptr() as usize;
    let mut cache = OFFSETS
        .lock()
        .map_err(|_| PyRuntimeError::new_err("task glue lock poisoned"))?;
    if let Some(&(_, _, off)) = cache.iter().find(|&&(t, f, _)| t == tp_addr && f == field) {
        return Ok(off);
    }
    // SAFETY: reading the basic size of a live type object.
    let size = usize::try_from(unsafe { (*tp.as_type_ptr()).tp_basicsize }).unwrap_or(0);
    let base = task.as_ptr().cast::<u8>();
    let header = std::mem::size_of::<ffi::PyObject>();
    let matches: Vec<usize> = (header..size.saturating_sub(WORD - 1))
        .step_by(WORD)
        // SAFETY: every offset is inside the object's basic size, word aligned.
        .filter(|&off| unsafe { base.add(off).cast::<*mut ffi::PyObject>().read() } == held)
        .collect();
    match matches.as_slice() {
        [off] => {
            cache.push((tp_addr, field, *off));
            Ok(*off)
        }
        _ => Err(PyRuntimeError::new_err(format!(
            "cannot locate the {field:?} field inside this {} object ({} candidate fields); \
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
    let slot = checked_slot(task, Field::Coro, old)?;
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

/// The located `field` of `task`, checked to hold `held` (what the task's getter for
/// that field returned just now).
fn checked_slot(
    task: &Bound<'_, PyAny>,
    field: Field,
    held: &Bound<'_, PyAny>,
) -> PyResult<*mut *mut ffi::PyObject> {
    let off = find_offset(task, field, held.as_ptr())?;
    // SAFETY: `off` is a word-aligned offset inside the task object's basic size.
    let slot = unsafe {
        task.as_ptr()
            .cast::<u8>()
            .add(off)
            .cast::<*mut ffi::PyObject>()
    };
    // SAFETY: as above; under the GIL nothing changes the field meanwhile.
    if unsafe { slot.read() } != held.as_ptr() {
        return Err(PyRuntimeError::new_err(format!(
            "the task's {field:?} field does not hold what its getter returns; refusing to write"
        )));
    }
    Ok(slot)
}

/// Empties the task's `_fut_waiter` field and returns what it held (with the field's
/// reference), or None if it held nothing.
pub(crate) fn take_c_task_waiter(task: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
    let waiter = task.getattr(intern!(task.py(), "_fut_waiter"))?;
    if waiter.is_none() {
        return Ok(None);
    }
    let slot = checked_slot(task, Field::FutWaiter, &waiter)?;
    // SAFETY: the field holds a strong reference to `waiter` (checked); it moves to
    // the caller, and the field is left empty, which the C Task allows (it is empty
    // whenever the task does not wait on a future).
    unsafe { slot.write(std::ptr::null_mut()) };
    // SAFETY: the reference the field held, now ours.
    let owned = unsafe { Bound::from_owned_ptr(task.py(), waiter.as_ptr()) };
    Ok(Some(owned.unbind()))
}
