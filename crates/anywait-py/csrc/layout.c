/*
 * Layout facts of the target interpreter's private structs, for anywait's Rust code.
 *
 * This file holds no logic: it is compiled against the headers of the interpreter the
 * extension is built for, so every offset and size below is the compiler's, never a
 * hand-written number. A field the version does not have is {-1, 0}.
 * The Rust mirror of `struct anywait_layout` is in src/pystate/layout.rs; keep them in
 * the same order.
 */
#include <Python.h>
#include <stddef.h>

/* _PyInterpreterFrame (for `previous`) is internal in every version; so is the
 * interpreter state (3.12+: its instrumentation version). */
#define Py_BUILD_CORE 1
/* 3.12's public objimpl.h makes this a macro for extensions; its internal pycore_gc.h
 * defines the function itself. */
#undef _PyGC_FINALIZED
#include "internal/pycore_frame.h"
#if PY_VERSION_HEX >= 0x030C0000
#  include "internal/pycore_interp.h"
#endif

#if PY_VERSION_HEX >= 0x030D0000
/* 3.13+ publish their real layout for debuggers in _PyRuntime.debug_offsets; anywait
 * reads it at import to check that it was compiled for this very interpreter. */
#  include "internal/pycore_runtime.h"
#  define DEBUG_OFFSET(field) ((long)offsetof(_PyRuntimeState, debug_offsets.field))
#else
#  define DEBUG_OFFSET(field) (-1L)
#endif
#if PY_VERSION_HEX >= 0x030E0000
/* 3.14 keeps the C stack bounds in _PyThreadStateImpl, an internal struct (3.15 also
 * the bounds ResetStackProtection restores, and the base frame every chain ends in). */
#  include "internal/pycore_tstate.h"
#  include "internal/pycore_pythonrun.h"
#  define ANYWAIT_TSTATE_IMPL _PyThreadStateImpl
/* 3.14 made the generator struct (whose frame is embedded in it) internal, and the
 * value stack a stack of tagged references. */
#  include "internal/pycore_genobject.h"
#  include "internal/pycore_stackref.h"
#endif

typedef struct { long offset; long size; } anywait_field;

#define FIELD(type, field) { (long)offsetof(type, field), (long)sizeof(((type *)0)->field) }
#define ABSENT { -1, 0 }

struct anywait_layout {
    long py_version_hex;
    long tstate_size;
    long debug_build;
    anywait_field context;
    anywait_field context_ver;
    anywait_field recursion_remaining;
    anywait_field recursion_limit;
    anywait_field c_recursion_remaining;
    anywait_field cframe;
    anywait_field root_cframe;
    anywait_field current_frame;
    anywait_field datastack_chunk;
    anywait_field datastack_top;
    anywait_field datastack_limit;
    anywait_field exc_info;
    anywait_field exc_state;
    anywait_field trash_delete_nesting;
    anywait_field trash_delete_later;
    anywait_field critical_section;
    anywait_field executor;
    anywait_field c_stack_top;
    anywait_field c_stack_soft_limit;
    anywait_field c_stack_hard_limit;
    anywait_field c_stack_init_base;
    anywait_field c_stack_init_top;
    anywait_field base_frame;
    anywait_field last_profiled_frame;
    anywait_field jit_exit;
    anywait_field cframe_use_tracing;
    anywait_field cframe_current_frame;
    anywait_field cframe_previous;
    long cframe_size;
    anywait_field chunk_previous;
    anywait_field chunk_size;
    anywait_field chunk_top;
    anywait_field chunk_data;
    anywait_field frame_previous;
    anywait_field tstate_interp;
    anywait_field interp_monitoring_version;
    long c_recursion_limit;
    long stack_margin_bytes;
    /* Offsets inside _PyRuntime of the debug-offset entries (-1 before 3.13); each
     * entry is a uint64_t holding the running interpreter's own value. */
    long debug_version;
    long debug_tstate_size;
    long debug_tstate_current_frame;
    long debug_tstate_datastack_chunk;
    long debug_tstate_base_frame;
    long debug_frame_previous;
    /* What the collector's view of a suspended fiber's frames reads (pystate/gc_view.rs). */
    anywait_field frame_owner;
    anywait_field frame_code;
    anywait_field frame_funcobj;
    anywait_field frame_localsplus;
    anywait_field frame_stacktop;
    anywait_field frame_stackpointer;
    anywait_field code_nlocalsplus;
    anywait_field gen_iframe;
    long owned_by_thread;
    long owned_by_generator;
    /* 3.14+: the low bits of a stack reference that mark it as not owning a count. */
    long stackref_tag_bits;
    /* A build whose stack references are not tagged pointers (Py_STACKREF_DEBUG). */
    long stackref_opaque;
    /* The legacy tracer (sys.settrace, PyEval_SetTrace) of a thread, and its nesting
     * (pystate/tracing.rs). */
    anywait_field tstate_c_tracefunc;
    anywait_field tstate_c_traceobj;
    anywait_field tstate_tracing;
};

const struct anywait_layout anywait_layout = {
    .py_version_hex = PY_VERSION_HEX,
    .tstate_size = (long)sizeof(PyThreadState),
#ifdef Py_DEBUG
    .debug_build = 1,
#else
    .debug_build = 0,
#endif
    .context = FIELD(PyThreadState, context),
    .context_ver = FIELD(PyThreadState, context_ver),
#if PY_VERSION_HEX >= 0x030C0000
    .recursion_remaining = FIELD(PyThreadState, py_recursion_remaining),
    .recursion_limit = FIELD(PyThreadState, py_recursion_limit),
#else
    .recursion_remaining = FIELD(PyThreadState, recursion_remaining),
    .recursion_limit = FIELD(PyThreadState, recursion_limit),
#endif
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030E0000
    .c_recursion_remaining = FIELD(PyThreadState, c_recursion_remaining),
#else
    .c_recursion_remaining = ABSENT,
#endif
#if PY_VERSION_HEX < 0x030D0000
    .cframe = FIELD(PyThreadState, cframe),
    .root_cframe = FIELD(PyThreadState, root_cframe),
    .current_frame = ABSENT,
#else
    .cframe = ABSENT,
    .root_cframe = ABSENT,
    .current_frame = FIELD(PyThreadState, current_frame),
#endif
    .datastack_chunk = FIELD(PyThreadState, datastack_chunk),
    .datastack_top = FIELD(PyThreadState, datastack_top),
    .datastack_limit = FIELD(PyThreadState, datastack_limit),
    .exc_info = FIELD(PyThreadState, exc_info),
    .exc_state = FIELD(PyThreadState, exc_state),
#if PY_VERSION_HEX >= 0x030D0000
    .trash_delete_nesting = ABSENT,
    .trash_delete_later = FIELD(PyThreadState, delete_later),
    .critical_section = FIELD(PyThreadState, critical_section),
#elif PY_VERSION_HEX >= 0x030C0000
    .trash_delete_nesting = FIELD(PyThreadState, trash.delete_nesting),
    .trash_delete_later = FIELD(PyThreadState, trash.delete_later),
    .critical_section = ABSENT,
#else
    .trash_delete_nesting = FIELD(PyThreadState, trash_delete_nesting),
    .trash_delete_later = FIELD(PyThreadState, trash_delete_later),
    .critical_section = ABSENT,
#endif
#if PY_VERSION_HEX >= 0x030E0000
    .executor = FIELD(PyThreadState, current_executor),
    .c_stack_top = FIELD(ANYWAIT_TSTATE_IMPL, c_stack_top),
    .c_stack_soft_limit = FIELD(ANYWAIT_TSTATE_IMPL, c_stack_soft_limit),
    .c_stack_hard_limit = FIELD(ANYWAIT_TSTATE_IMPL, c_stack_hard_limit),
#elif PY_VERSION_HEX >= 0x030D0000
    .executor = FIELD(PyThreadState, previous_executor),
    .c_stack_top = ABSENT,
    .c_stack_soft_limit = ABSENT,
    .c_stack_hard_limit = ABSENT,
#else
    .executor = ABSENT,
    .c_stack_top = ABSENT,
    .c_stack_soft_limit = ABSENT,
    .c_stack_hard_limit = ABSENT,
#endif
#if PY_VERSION_HEX >= 0x030F0000
    .c_stack_init_base = FIELD(ANYWAIT_TSTATE_IMPL, c_stack_init_base),
    .c_stack_init_top = FIELD(ANYWAIT_TSTATE_IMPL, c_stack_init_top),
    .base_frame = FIELD(PyThreadState, base_frame),
    .last_profiled_frame = FIELD(PyThreadState, last_profiled_frame),
    .jit_exit = FIELD(PyThreadState, jit_exit),
#else
    .c_stack_init_base = ABSENT,
    .c_stack_init_top = ABSENT,
    .base_frame = ABSENT,
    .last_profiled_frame = ABSENT,
    .jit_exit = ABSENT,
#endif
#if PY_VERSION_HEX < 0x030C0000
    .cframe_use_tracing = FIELD(_PyCFrame, use_tracing),
#else
    .cframe_use_tracing = ABSENT,
#endif
#if PY_VERSION_HEX < 0x030D0000
    .cframe_current_frame = FIELD(_PyCFrame, current_frame),
    .cframe_previous = FIELD(_PyCFrame, previous),
    .cframe_size = (long)sizeof(_PyCFrame),
#else
    .cframe_current_frame = ABSENT,
    .cframe_previous = ABSENT,
    .cframe_size = 0,
#endif
    .chunk_previous = FIELD(_PyStackChunk, previous),
    .chunk_size = FIELD(_PyStackChunk, size),
    .chunk_top = FIELD(_PyStackChunk, top),
    .chunk_data = FIELD(_PyStackChunk, data),
    .frame_previous = FIELD(_PyInterpreterFrame, previous),
    .tstate_interp = FIELD(PyThreadState, interp),
#if PY_VERSION_HEX >= 0x030D0000
    .interp_monitoring_version = FIELD(PyInterpreterState, ceval.instrumentation_version),
#elif PY_VERSION_HEX >= 0x030C0000
    .interp_monitoring_version = FIELD(PyInterpreterState, monitoring_version),
#else
    .interp_monitoring_version = ABSENT,
#endif
#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
    .c_recursion_limit = Py_C_RECURSION_LIMIT,
#elif PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    .c_recursion_limit = C_RECURSION_LIMIT,
#else
    .c_recursion_limit = 0,
#endif
#if PY_VERSION_HEX >= 0x030E0000
    .stack_margin_bytes = (long)_PyOS_STACK_MARGIN_BYTES,
#else
    .stack_margin_bytes = 0,
#endif
    .debug_version = DEBUG_OFFSET(version),
    .debug_tstate_size = DEBUG_OFFSET(thread_state.size),
    .debug_tstate_current_frame = DEBUG_OFFSET(thread_state.current_frame),
    .debug_tstate_datastack_chunk = DEBUG_OFFSET(thread_state.datastack_chunk),
#if PY_VERSION_HEX >= 0x030F0000
    .debug_tstate_base_frame = DEBUG_OFFSET(thread_state.base_frame),
#else
    .debug_tstate_base_frame = -1L,
#endif
    .debug_frame_previous = DEBUG_OFFSET(interpreter_frame.previous),
    .frame_owner = FIELD(_PyInterpreterFrame, owner),
#if PY_VERSION_HEX >= 0x030D0000
    .frame_code = FIELD(_PyInterpreterFrame, f_executable),
#else
    .frame_code = FIELD(_PyInterpreterFrame, f_code),
#endif
#if PY_VERSION_HEX >= 0x030C0000
    .frame_funcobj = FIELD(_PyInterpreterFrame, f_funcobj),
#else
    .frame_funcobj = FIELD(_PyInterpreterFrame, f_func),
#endif
    .frame_localsplus = FIELD(_PyInterpreterFrame, localsplus),
#if PY_VERSION_HEX >= 0x030E0000
    .frame_stacktop = ABSENT,
    .frame_stackpointer = FIELD(_PyInterpreterFrame, stackpointer),
#else
    .frame_stacktop = FIELD(_PyInterpreterFrame, stacktop),
    .frame_stackpointer = ABSENT,
#endif
    .code_nlocalsplus = FIELD(PyCodeObject, co_nlocalsplus),
    .gen_iframe = FIELD(PyGenObject, gi_iframe),
    .owned_by_thread = FRAME_OWNED_BY_THREAD,
    .owned_by_generator = FRAME_OWNED_BY_GENERATOR,
#if PY_VERSION_HEX >= 0x030E0000
    .stackref_tag_bits = (long)Py_TAG_BITS,
#else
    .stackref_tag_bits = 0,
#endif
#if defined(Py_STACKREF_DEBUG) || defined(Py_GIL_DISABLED)
    .stackref_opaque = 1,
#else
    .stackref_opaque = 0,
#endif
    .tstate_c_tracefunc = FIELD(PyThreadState, c_tracefunc),
    .tstate_c_traceobj = FIELD(PyThreadState, c_traceobj),
    .tstate_tracing = FIELD(PyThreadState, tracing),
};
