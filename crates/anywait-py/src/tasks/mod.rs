//! The task layer: putting a portal under a running task, so that the loop drives the
//! task's coroutine through it from the next step on.
//!
//! Owns: the asyncio C Task's coroutine field, located at run time and checked before
//! every write, never a hard-coded offset ([`c_task`]); `ensure_portal()`'s fast path
//! for Trio tasks and C Tasks ([`install_here`]). Pure-Python tasks, Task subclasses
//! and the general path live in `anywait._tasks` (Python).
//!
//! May call: `portal` (to make portals) and the leaf modules; nothing below it needs
//! to know about tasks.

pub(crate) mod c_task;
pub(crate) mod install_here;
