//! Stackful generators: `@anywait.generator` objects and `yield_`.
//!
//! Owns: the generator object ([`object`]: `send`, `throw`, `close`, finalization), its
//! fast entry points ([`entry`]: `next()` and `yield_`), and the async generator
//! ([`asyncgen`]: a trap sink whose steps, [`step`], the consumer's task awaits).
//!
//! A stackful generator is a linked fiber (`FiberCore::new_linked`) running the
//! decorated function: each `next()` resumes it as part of the consumer (its context,
//! handled exception and recursion depth), and `yield_(value)`, called at any depth
//! below the function, even inside C callbacks, suspends it back to the consumer.
//! `await_` in it works wherever its consumer could `await_` (`fiber::relay`).
//!
//! Invariants: a generator's fiber is resumed only through [`object`], which gives
//! native generators' answers for a running, finished or unstarted one; `yield_` only
//! suspends the innermost running fiber, and only if that is a generator's.
//!
//! May call: `fiber`, `pystate` (is the interpreter finalizing) and the leaf `fatal`. The portal layer serves the relays of an
//! `await_` in a generator; this layer does not name it.

pub(crate) mod asyncgen;
pub(crate) mod entry;
pub(crate) mod object;
pub(crate) mod step;

use crate::fiber::Tag;

/// The tag of a stackful generator's fiber.
pub(crate) const GENERATOR: Tag = Tag(2);

/// The tag of a stackful async generator's fiber.
pub(crate) const ASYNC_GENERATOR: Tag = Tag(3);
