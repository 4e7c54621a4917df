//! The portal layer: a native awaitable between the event loop and a task's coroutine,
//! which runs each step of the coroutine on a fiber and serves `await_` inside it.
//!
//! Owns: the `Portal` type ([`portal`]), step workers and the per-thread idle list
//! ([`worker`]), running a step (`send`/`throw` with `yield from` semantics: [`step`]),
//! `await_` ([`await_`]), the functions the Python side calls ([`scoped`]) and the
//! direct entry points ([`entry`]).
//!
//! Invariants (details in `worker`): a worker is bound to a portal only while one of
//! its steps is open, and holds no coroutine, context or frames when parked; each step
//! runs in the context of whoever resumed the portal; an open step keeps its own
//! reference to the coroutine, so a leaked stack never outlives the frames on it.
//!
//! May call: `interop` (steps of programs that use greenlet), `fiber`, `pystate` and
//! the leaf modules. Knows nothing of asyncio or Trio: `tasks` puts portals under
//! tasks.

pub(crate) mod await_;
pub(crate) mod entry;
#[allow(clippy::module_inception)]
pub(crate) mod portal;
pub(crate) mod scoped;
pub(crate) mod step;
pub(crate) mod worker;

pub(crate) use portal::Portal;
