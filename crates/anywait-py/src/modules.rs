//! Whether a module is imported, without importing it (a leaf every layer may use:
//! the greenlet bridge asks about greenlet, the install fast path about Trio).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Whether `sys.modules` holds `name`: a bare lookup in the interpreter's module dict
/// (no import, no reference, no error: `PyDict_GetItem` swallows any).
pub(crate) fn module_imported(name: &Bound<'_, PyString>) -> bool {
    // SAFETY: GIL held (`name` is bound); the module dict is a borrowed reference the
    // interpreter owns.
    unsafe {
        let modules = ffi::PyImport_GetModuleDict();
        !modules.is_null()
            && ffi::PyDict_Check(modules) != 0
            && !ffi::PyDict_GetItem(modules, name.as_ptr()).is_null()
    }
}
