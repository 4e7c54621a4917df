//! greenlet's C API, as the bridge uses it, found without a dict lookup per step.
//!
//! The capsule `greenlet._C_API` has held the same slots since greenlet 2.0. Until
//! greenlet is imported no greenlet can exist and nothing needs bridging, so each step
//! asks [`api`], which costs a flag test (3.12+: a watcher on `sys.modules`) or a
//! version-tag compare (3.11) until greenlet shows up, and an atomic load after.

use std::ffi::c_int;
use std::ptr;
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::{ffi, intern};

use crate::modules::module_imported;

/// The part of greenlet's C API (capsule `greenlet._C_API`, the same slots since
/// greenlet 2.0) that the bridge uses.
#[derive(Clone, Copy)]
pub(crate) struct Api {
    pub(crate) new: NewFn,
    pub(crate) get_current: GetCurrentFn,
    pub(crate) switch: SwitchFn,
    pub(crate) set_parent: SetParentFn,
    pub(crate) active: ActiveFn,
    pub(crate) main: ActiveFn,
    pub(crate) get_parent: GetParentFn,
}

type Obj = *mut ffi::PyObject;
type NewFn = unsafe extern "C" fn(Obj, Obj) -> Obj;
type GetCurrentFn = unsafe extern "C" fn() -> Obj;
type SwitchFn = unsafe extern "C" fn(Obj, Obj, Obj) -> Obj;
type SetParentFn = unsafe extern "C" fn(Obj, Obj) -> c_int;
type ActiveFn = unsafe extern "C" fn(Obj) -> c_int;
type GetParentFn = unsafe extern "C" fn(Obj) -> Obj;

// SAFETY: function pointers into the greenlet extension, which is never unloaded.
unsafe impl Send for Api {}
// SAFETY: as above.
unsafe impl Sync for Api {}

static API: OnceLock<Api> = OnceLock::new();

/// greenlet's C API if the greenlet module has been imported, else None (then no
/// greenlet can exist, and there is nothing to bridge).
#[inline]
pub(crate) fn api(py: Python<'_>) -> Option<Api> {
    if let Some(api) = API.get() {
        return Some(*api);
    }
    if !modules_may_have_changed(py) {
        return None;
    }
    look_up_api(py)
}

/// [`api`] once `sys.modules` may hold greenlet. Out of line: `api` is inlined into
/// paths whose frames stay on every blocked task's stack.
#[inline(never)]
#[cold]
fn look_up_api(py: Python<'_>) -> Option<Api> {
    if !module_imported(intern!(py, "greenlet")) {
        return None;
    }
    // SAFETY: GIL held; the module is imported, so this only reads its attribute.
    let table = unsafe { ffi::PyCapsule_Import(c"greenlet._C_API".as_ptr(), 0) }
        .cast::<*mut std::ffi::c_void>();
    if table.is_null() {
        // Still importing (or not a greenlet we know): no greenlet can run yet.
        drop(PyErr::take(py));
        return None;
    }
    // SAFETY: the capsule holds greenlet's API table; in every greenlet since 2.0,
    // slots 3..=11 are these functions (greenlet.h: PyGreenlet_New_NUM ..
    // PyGreenlet_GET_PARENT_NUM; slot 8, PyGreenlet_MAIN, has ACTIVE's signature).
    let api = unsafe {
        let slot = |n: usize| *table.add(n);
        Api {
            new: std::mem::transmute::<*mut std::ffi::c_void, NewFn>(slot(3)),
            get_current: std::mem::transmute::<*mut std::ffi::c_void, GetCurrentFn>(slot(4)),
            switch: std::mem::transmute::<*mut std::ffi::c_void, SwitchFn>(slot(6)),
            set_parent: std::mem::transmute::<*mut std::ffi::c_void, SetParentFn>(slot(7)),
            active: std::mem::transmute::<*mut std::ffi::c_void, ActiveFn>(slot(10)),
            main: std::mem::transmute::<*mut std::ffi::c_void, ActiveFn>(slot(8)),
            get_parent: std::mem::transmute::<*mut std::ffi::c_void, GetParentFn>(slot(11)),
        }
    };
    Some(*API.get_or_init(|| api))
}

/// Whether `sys.modules` may have changed since the last lookup found no greenlet.
/// 3.12+ watch the module dict (any event sets a flag: no dependence on the event
/// numbering), so a step pays a flag test instead of a dict lookup; 3.11, or no free
/// watcher slot, always looks.
#[cfg(Py_3_12)]
fn modules_may_have_changed(_py: Python<'_>) -> bool {
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

    /// 0: not set up yet, 1: watching, 2: cannot watch (always look).
    static WATCH: AtomicU8 = AtomicU8::new(0);
    static CHANGED: AtomicBool = AtomicBool::new(true);

    extern "C" {
        fn PyDict_AddWatcher(
            callback: unsafe extern "C" fn(c_int, Obj, Obj, Obj) -> c_int,
        ) -> c_int;
    }

    unsafe extern "C" fn on_modules_event(
        _event: c_int,
        _dict: Obj,
        _key: Obj,
        _new: Obj,
    ) -> c_int {
        CHANGED.store(true, Ordering::Relaxed);
        0
    }

    match WATCH.load(Ordering::Relaxed) {
        1 => CHANGED.swap(false, Ordering::Relaxed),
        2 => true,
        _ => {
            // SAFETY: GIL held (the token); the module dict is the interpreter's own.
            let watching = unsafe {
                let id = PyDict_AddWatcher(on_modules_event);
                let modules = ffi::PyImport_GetModuleDict();
                id >= 0 && !modules.is_null() && ffi::PyDict_Watch(id, modules) == 0
            };
            if !watching {
                // SAFETY: GIL held; an error from a failed watcher set-up is dropped.
                unsafe { ffi::PyErr_Clear() };
            }
            WATCH.store(if watching { 1 } else { 2 }, Ordering::Relaxed);
            CHANGED.store(false, Ordering::Relaxed);
            true
        }
    }
}

/// 3.11: the module dict's PEP 509 version tag changes with every modification.
#[cfg(not(Py_3_12))]
fn modules_may_have_changed(_py: Python<'_>) -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The version at the last lookup (0: none yet; CPython's versions start at 1).
    static SEEN: AtomicU64 = AtomicU64::new(0);
    // SAFETY: GIL held (the token); the module dict is the interpreter's own, and a
    // dict in 3.11 (checked) has the public `ma_version_tag` field.
    let version = unsafe {
        let modules = ffi::PyImport_GetModuleDict();
        if modules.is_null() || ffi::PyDict_Check(modules) == 0 {
            return true;
        }
        (*modules.cast::<ffi::PyDictObject>()).ma_version_tag
    };
    SEEN.swap(version, Ordering::Relaxed) != version
}

/// greenlet's C API if an earlier [`api`] call found greenlet loaded: no look-up.
/// The worker loop uses it, since `note_resume` has just called [`api`] for this resume.
#[inline]
pub(crate) fn api_if_found() -> Option<Api> {
    API.get().copied()
}

impl Api {
    pub(crate) fn current<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: GIL held; a new reference or NULL with an exception.
        unsafe { Bound::from_owned_ptr_or_err(py, (self.get_current)()) }
    }

    /// `g.switch(arg)`.
    pub(crate) fn switch<'py>(
        &self,
        g: &Bound<'py, PyAny>,
        arg: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = g.py();
        let args = pyo3::types::PyTuple::new(py, [arg])?;
        // SAFETY: GIL held; `g` is a greenlet (made or returned by greenlet itself),
        // `args` a tuple; returns a new reference or NULL with an exception.
        unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                (self.switch)(g.as_ptr(), args.as_ptr(), ptr::null_mut()),
            )
        }
    }
}
