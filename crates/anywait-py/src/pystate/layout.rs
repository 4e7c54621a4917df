//! Raw access to CPython's private structs, through the offsets and sizes that
//! `csrc/layout.c` was compiled to (against the target interpreter's own headers).
//!
//! This is the only module that turns an offset into a pointer. Every field is checked
//! at import ([`verify`]) to have the size the Rust side reads it with; after that the
//! hot path does plain loads and stores at `base + offset`.

use std::ffi::{c_int, c_long, c_ulong};

use pyo3::ffi;

/// Where a field sits in its struct; `offset == -1` when the version has no such field.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    pub offset: c_long,
    pub size: c_long,
}

impl Field {
    pub fn present(self) -> bool {
        self.offset >= 0
    }

    /// A pointer to this field inside the struct at `base`.
    ///
    /// # Safety
    /// `base` points to a live struct of the type this field was measured in, the field
    /// is present, and `T` has the field's size (checked once by [`verify`]).
    #[inline(always)]
    pub unsafe fn of<T>(self, base: *mut u8) -> *mut T {
        debug_assert!(self.present());
        // SAFETY: in bounds of the struct at `base` by the caller's contract.
        unsafe { base.offset(self.offset as isize).cast::<T>() }
    }
}

/// Mirror of `struct anywait_layout` in csrc/layout.c (same fields, same order).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RawLayout {
    pub py_version_hex: c_long,
    pub tstate_size: c_long,
    pub debug_build: c_long,
    pub context: Field,
    pub context_ver: Field,
    pub recursion_remaining: Field,
    pub recursion_limit: Field,
    pub c_recursion_remaining: Field,
    pub cframe: Field,
    pub root_cframe: Field,
    pub current_frame: Field,
    pub datastack_chunk: Field,
    pub datastack_top: Field,
    pub datastack_limit: Field,
    pub exc_info: Field,
    pub exc_state: Field,
    pub trash_delete_nesting: Field,
    pub trash_delete_later: Field,
    pub critical_section: Field,
    pub executor: Field,
    pub c_stack_top: Field,
    pub c_stack_soft_limit: Field,
    pub c_stack_hard_limit: Field,
    pub cframe_use_tracing: Field,
    pub cframe_current_frame: Field,
    pub cframe_previous: Field,
    pub cframe_size: c_long,
    pub chunk_previous: Field,
    pub chunk_size: Field,
    pub chunk_top: Field,
    pub chunk_data: Field,
    pub c_recursion_limit: c_long,
    pub stack_margin_bytes: c_long,
    pub debug_version: c_long,
    pub debug_tstate_size: c_long,
    pub debug_tstate_current_frame: c_long,
    pub debug_tstate_datastack_chunk: c_long,
}

extern "C" {
    static anywait_layout: RawLayout;
}

/// The layout facts of the interpreter this extension was compiled for.
#[inline(always)]
pub(crate) fn layout() -> &'static RawLayout {
    // SAFETY: a constant C object, initialised at compile time and never written.
    unsafe { &anywait_layout }
}

#[cfg(not(Py_3_13))]
extern "C" {
    fn _Py_IsFinalizing() -> c_int;
}

#[cfg(Py_3_13)]
extern "C" {
    /// The runtime state; it starts with `_Py_DebugOffsets` (3.13+), whose entries
    /// `csrc/layout.c` located for us.
    static _PyRuntime: u8;
}

/// Reads the running interpreter's own value of a `_Py_DebugOffsets` entry.
#[cfg(Py_3_13)]
fn debug_offset(offset: c_long) -> u64 {
    // SAFETY: `offset` was computed by the compiler for `_PyRuntimeState`, and the
    // debug offsets are written once at interpreter start and never change.
    unsafe {
        std::ptr::addr_of!(_PyRuntime)
            .add(offset as usize)
            .cast::<u64>()
            .read_unaligned()
    }
}

/// 3.13+: the running interpreter's published layout must be the one we compiled
/// against (patch releases have moved thread-state fields).
#[cfg(Py_3_13)]
fn verify_against_runtime(l: &RawLayout) -> Result<(), String> {
    let facts = [
        (
            "PyThreadState size",
            debug_offset(l.debug_tstate_size),
            l.tstate_size,
        ),
        (
            "current_frame offset",
            debug_offset(l.debug_tstate_current_frame),
            l.current_frame.offset,
        ),
        (
            "datastack_chunk offset",
            debug_offset(l.debug_tstate_datastack_chunk),
            l.datastack_chunk.offset,
        ),
    ];
    for (what, running, compiled) in facts {
        if running != compiled as u64 {
            return Err(format!(
                "anywait was compiled against the headers of CPython {} but the running CPython {} \
                 has a different thread state ({what}: {running}, compiled for {compiled}); \
                 rebuild anywait against this interpreter",
                hex_version(l.py_version_hex as c_ulong),
                hex_version(debug_offset(l.debug_version) as c_ulong),
            ));
        }
    }
    Ok(())
}

/// Whether the interpreter is shutting down.
pub(crate) fn interpreter_finalizing() -> bool {
    #[cfg(Py_3_13)]
    // SAFETY: no preconditions.
    let finalizing = unsafe { ffi::Py_IsFinalizing() };
    #[cfg(not(Py_3_13))]
    // SAFETY: no preconditions (a plain read of the runtime's finalizing flag).
    let finalizing = unsafe { _Py_IsFinalizing() };
    finalizing != 0
}

/// The running interpreter's `PY_VERSION_HEX`.
pub(crate) fn runtime_version_hex() -> c_ulong {
    // SAFETY: an immutable exported constant.
    unsafe { ffi::Py_Version }
}

/// Checks, once at import, that the compiled layout fits the running interpreter and
/// the way the Rust side reads each field. An error names what does not fit.
pub(crate) fn verify() -> Result<(), String> {
    let l = layout();
    let ptr = std::mem::size_of::<*mut u8>() as c_long;
    let int = std::mem::size_of::<c_int>() as c_long;
    let compiled = l.py_version_hex as c_ulong;
    let running = runtime_version_hex();
    if compiled >> 16 != running >> 16 {
        return Err(format!(
            "anywait was compiled for CPython {} but is running on {}; reinstall it for this interpreter",
            hex_version(compiled),
            hex_version(running)
        ));
    }
    let mut checks: Vec<(&str, Field, c_long)> = vec![
        ("context", l.context, ptr),
        ("context_ver", l.context_ver, 8),
        ("recursion_remaining", l.recursion_remaining, int),
        ("recursion_limit", l.recursion_limit, int),
        ("datastack_chunk", l.datastack_chunk, ptr),
        ("datastack_top", l.datastack_top, ptr),
        ("datastack_limit", l.datastack_limit, ptr),
        ("exc_info", l.exc_info, ptr),
        ("exc_state", l.exc_state, 2 * ptr),
        ("trash_delete_later", l.trash_delete_later, ptr),
        ("chunk_previous", l.chunk_previous, ptr),
        ("chunk_size", l.chunk_size, ptr),
        ("chunk_top", l.chunk_top, ptr),
        ("chunk_data", l.chunk_data, ptr),
    ];
    #[cfg(not(Py_3_13))]
    checks.extend([
        ("cframe", l.cframe, ptr),
        ("root_cframe", l.root_cframe, l.cframe_size),
        ("cframe_current_frame", l.cframe_current_frame, ptr),
        ("cframe_previous", l.cframe_previous, ptr),
        ("trash_delete_nesting", l.trash_delete_nesting, int),
    ]);
    #[cfg(not(Py_3_12))]
    checks.push(("cframe_use_tracing", l.cframe_use_tracing, 1));
    #[cfg(all(Py_3_12, not(Py_3_14)))]
    checks.push(("c_recursion_remaining", l.c_recursion_remaining, int));
    #[cfg(Py_3_13)]
    checks.extend([
        ("current_frame", l.current_frame, ptr),
        ("critical_section", l.critical_section, ptr),
        ("executor", l.executor, ptr),
    ]);
    #[cfg(Py_3_14)]
    checks.extend([
        ("c_stack_top", l.c_stack_top, ptr),
        ("c_stack_soft_limit", l.c_stack_soft_limit, ptr),
        ("c_stack_hard_limit", l.c_stack_hard_limit, ptr),
    ]);
    #[cfg(Py_3_13)]
    verify_against_runtime(l)?;
    for (name, field, size) in checks {
        if !field.present() || field.size != size {
            return Err(format!(
                "anywait's view of CPython {}'s thread state does not fit: field {name} is {field:?}, expected size {size}",
                hex_version(running)
            ));
        }
    }
    Ok(())
}

fn hex_version(v: c_ulong) -> String {
    format!(
        "{}.{}.{}",
        (v >> 24) & 0xff,
        (v >> 16) & 0xff,
        (v >> 8) & 0xff
    )
}
