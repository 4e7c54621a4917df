//! PEP 442 finalization for a PyO3 class.
//!
//! A suspended fiber that becomes garbage must be unwound by running Python code in it
//! (`FiberExit` thrown in, `finally` blocks run). That needs a `tp_finalize` slot: it
//! runs while the object is still valid (CPython temporarily resurrects it), in the
//! cyclic GC before any `tp_clear`, and CPython copes when the finalizer resurrects the
//! object for good. PyO3 0.30 has no `__del__` support (PyO3 issue #2479), so after the
//! class is created we set `tp_finalize` and wrap `tp_dealloc` the way CPython's own
//! generator dealloc does: call the finalizer first, and deallocate only if the object
//! was not resurrected.
//!
//! Only `install` touches a type object, once per class, at module import. Each class
//! has its own slot in `PYO3_DEALLOCS` (a const parameter of its deallocator).

use std::sync::OnceLock;

use pyo3::ffi;

/// The class's finalizer: receives the object, GIL held, no exception set.
pub(crate) type Finalize = unsafe extern "C" fn(*mut ffi::PyObject);

/// Classes that can have a finalizer: one slot each in `PYO3_DEALLOCS`.
pub(crate) const FIBER: usize = 0;
pub(crate) const PORTAL: usize = 1;
pub(crate) const GENERATOR: usize = 2;
pub(crate) const ASYNC_GENERATOR: usize = 3;
const SLOTS: usize = 4;

/// PyO3's own deallocator of each class, called after finalization.
static PYO3_DEALLOCS: [OnceLock<ffi::destructor>; SLOTS] = [const { OnceLock::new() }; SLOTS];

/// Installs `finalize` as the type's `tp_finalize` and a `tp_dealloc` that runs it.
/// `SLOT` names the class ([`FIBER`], [`PORTAL`]).
///
/// # Safety
/// `tp` is a heap type made by PyO3 for a class whose instances `finalize` can handle,
/// not yet instantiated, and no other type is installed with the same `SLOT`.
pub(crate) unsafe fn install<const SLOT: usize>(
    tp: *mut ffi::PyTypeObject,
    finalize: Finalize,
) -> Result<(), String> {
    // SAFETY: `tp` is a live heap type object (caller), which CPython lets its creator
    // mutate before first use; PyType_Modified drops any cached slot lookups.
    unsafe {
        let original = (*tp).tp_dealloc.ok_or("the class has no tp_dealloc")?;
        PYO3_DEALLOCS[SLOT]
            .set(original)
            .map_err(|_| "finalizer installed twice")?;
        (*tp).tp_finalize = Some(finalize);
        (*tp).tp_dealloc = Some(dealloc_after_finalize::<SLOT>);
        ffi::PyType_Modified(tp);
    }
    Ok(())
}

unsafe extern "C" fn dealloc_after_finalize<const SLOT: usize>(obj: *mut ffi::PyObject) {
    // SAFETY: called by CPython with a dying object of our type (refcount 0), GIL held.
    // A negative result means tp_finalize resurrected the object: it must not be freed.
    if unsafe { ffi::PyObject_CallFinalizerFromDealloc(obj) } < 0 {
        return;
    }
    let dealloc = PYO3_DEALLOCS[SLOT].get().expect("finalizer not installed");
    // SAFETY: the object is dead again and finalized; PyO3's dealloc frees it.
    unsafe { dealloc(obj) };
}
