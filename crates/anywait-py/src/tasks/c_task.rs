//! Writing one private field of a running asyncio C `Task`: its coroutine, to put a
//! portal in its place (or, when a scoped portal ends, to take it out again).
//!
//! The C Task has no setter for it. We find the field at run time: scan the task
//! object's own memory for the address of the object `get_coro()` returns, require
//! exactly one match, and cache the offset per task type. Every later use checks that
//! the cached field still holds what the getter returns before writing, so a layout we
//! misread fails loudly, never silently. (Pure-Python tasks and Trio tasks have
//! attributes for this; see `anywait._tasks`.)

use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;

/// Located offsets of the coroutine field: (task type address, offset). A program has
/// one or two task types (asyncio's, uvloop's), so a short list beats a hash map (whose
/// SipHash alone cost more than the rest of a lookup).
static OFFSETS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

const WORD: usize = std::mem::size_of::<usize>();

fn find_offset(task: &Bound<'_, PyAny>, held: *mut ffi::PyObject) -> PyResult<usize> {
    let tp = task.get_type();
    let tp_addr = tp.as_type_ptr() as usize;
    let mut cache = OFFSETS
        .lock()
        .map_err(|_| PyRuntimeError::new_err("task glue lock poisoned"))?;
    if let Some(&(_, off)) = cache.iter().find(|&&(t, _)| t == tp_addr) {
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
            cache.push((tp_addr, *off));
            Ok(*off)
        }
        _ => Err(PyRuntimeError::new_err(format!(
            "cannot locate the coroutine field inside this {} object ({} candidate fields); \
             anywait cannot give it a portal",
            tp.name()?,
            matches.len()
        ))),
    }
}

/// Puts `new` in place of the task's coroutine (which must be `old`, the coroutine the
/// task runs now); the task then owns a reference to `new` and none to `old`. The
/// caller keeps `old` alive until the task's running step (if any) has ended: the C
/// step code uses the coroutine it started the step with, without a reference.
#[pyfunction]
pub(crate) fn _swap_c_task_coro(
    task: &Bound<'_, PyAny>,
    old: &Bound<'_, PyAny>,
    new: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let slot = checked_slot(task, old)?;
    // SAFETY: the field held a strong reference to `old`; it now holds one to `new`.
    // `old` stays alive as long as the caller holds it (see above); the C step code may
    // be using `old` right now without a reference of its own.
    unsafe {
        ffi::Py_INCREF(new.as_ptr());
        slot.write(new.as_ptr());
        ffi::Py_DECREF(old.as_ptr());
    }
    Ok(())
}

/// The located coroutine field of `task`, checked to hold `held` (what `get_coro()`
/// returned just now).
fn checked_slot(
    task: &Bound<'_, PyAny>,
    held: &Bound<'_, PyAny>,
) -> PyResult<*mut *mut ffi::PyObject> {
    let off = find_offset(task, held.as_ptr())?;
    // SAFETY: `off` is a word-aligned offset inside the task object's basic size.
    let slot = unsafe {
        task.as_ptr()
            .cast::<u8>()
            .add(off)
            .cast::<*mut ffi::PyObject>()
    };
    // SAFETY: as above; under the GIL nothing changes the field meanwhile.
    if unsafe { slot.read() } != held.as_ptr() {
        return Err(PyRuntimeError::new_err(
            "the task's coroutine field does not hold what get_coro() returns; refusing to write",
        ));
    }
    Ok(slot)
}
