//! Relaying `await_` from a fiber nested in a portal step.
//!
//! Sync code in a portal step may resume a fiber of its own (a `lowlevel.Fiber`, a
//! stackful generator), and code on that fiber may call `await_`. Its traps belong to
//! the step's event loop, two stacks away: the nested fiber suspends with the trap and
//! the `relaying` mark ([`suspend_relaying`]); the call that resumed it, on the
//! resumer's stack, sees the mark and hands the trap on from there ([`serve`]), with
//! the handler the portal layer registered (which suspends the step, or relays once
//! more from a fiber nested deeper); the loop's answer goes back into the nested fiber.
//! To code on either side nothing happened but the `await_`.
//!
//! The fiber layer knows nothing of portals: the handler is registered from above
//! ([`set_handler`]). While a fiber relays it is busy: resuming it from elsewhere is
//! refused, as for a running fiber.
//!
//! A *trap sink* is a fiber whose resumer takes the traps itself instead (an
//! `@anywait.async_generator`'s fiber: its resumer is the awaitable the consumer's
//! task drives, which yields each trap to the task's loop): `await_` on it, or relayed
//! down to it, suspends it with the trap and the `trapped` mark ([`suspend_trapped`]),
//! which its resumer reads ([`take_trapped`]).

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;

use super::suspend::suspend_running;
use super::switch::{switch_into, FiberCore};
use super::wire::Wire;

/// Hands a trap relayed from a nested fiber on to the event loop (see the module
/// docs); returns the loop's answer.
pub(crate) type Handler = fn(Python<'_>, Py<PyAny>) -> Wire;

static HANDLER: OnceLock<Handler> = OnceLock::new();

/// Registers the relay handler (the portal layer, at import).
pub(crate) fn set_handler(handler: Handler) {
    let _ = HANDLER.set(handler);
}

/// Suspends the running fiber `core`, handing `trap` to its resumer to relay; returns
/// the loop's answer.
///
/// # Safety
/// `core` is the innermost running fiber of this thread, and its resumer runs inside
/// something that serves relays (a portal step, perhaps through further fibers).
pub(crate) unsafe fn suspend_relaying(core: *mut FiberCore, trap: Py<PyAny>) -> Wire {
    // SAFETY: the running core (caller); a short write before the switch.
    unsafe {
        (*core).relaying = true;
        suspend_running(core, Wire::Value(trap))
    }
}

/// Serves the relays of `core`, which has just suspended relaying with `out`, until it
/// suspends or finishes for good; returns what it hands back then.
///
/// # Safety
/// As for `switch::resume`; `core` is suspended with `relaying` set.
#[inline(never)]
pub(super) unsafe fn serve(
    py: Python<'_>,
    core: *mut FiberCore,
    pyobj: *mut ffi::PyObject,
    mut out: Wire,
) -> Wire {
    let Some(handler) = HANDLER.get() else {
        crate::fatal::fatal("a fiber relayed an await_ trap, but no relay handler is registered")
    };
    // SAFETY: live core (caller), read and written between switches only.
    while unsafe { (*core).relaying } {
        let answer = match out {
            Wire::Value(trap) => handler(py, trap),
            // Only a trap is ever relayed (suspend_relaying).
            Wire::Raise(_) => crate::fatal::fatal("a fiber relayed an exception as a trap"),
        };
        // SAFETY: as above; the fiber is still suspended where it relayed.
        unsafe { (*core).relaying = false };
        // SAFETY: forwarded contract; the core is suspended, on this thread.
        out = unsafe { switch_into(py, core, pyobj, answer) };
    }
    out
}

/// Makes a fiber that has not started a trap sink (see the module docs).
pub(crate) fn make_trap_sink(core: &mut FiberCore) {
    core.trap_sink = true;
}

/// Whether `core` is a trap sink.
#[inline]
pub(crate) fn is_trap_sink(core: *const FiberCore) -> bool {
    // SAFETY: callers pass live cores (CURRENT and its resumers); a short read.
    !core.is_null() && unsafe { (*core).trap_sink }
}

/// Suspends the running trap sink `core`, handing `trap` to its resumer; returns the
/// loop's answer, which the resumer sends back in.
///
/// # Safety
/// `core` is the innermost running fiber of this thread, and a trap sink.
pub(crate) unsafe fn suspend_trapped(core: *mut FiberCore, trap: Py<PyAny>) -> Wire {
    // SAFETY: the running core (caller); a short write before the switch.
    unsafe {
        (*core).trapped = true;
        suspend_running(core, Wire::Value(trap))
    }
}

/// Whether the trap sink `core` suspended with a trap (and clears the mark).
pub(crate) fn take_trapped(core: &mut FiberCore) -> bool {
    std::mem::take(&mut core.trapped)
}
