//! Stackful fibers on guarded native stacks, with no Python in sight.
//!
//! This crate is the bottom layer of anywait. It knows nothing about CPython; the
//! Python layer (`anywait-py`) builds on three pieces:
//!
//! * [`FiberStack`]: one mapping holding a guard region, a C stack and a small area
//!   reserved for the embedder, with guard regions that do not cost a mapping each
//!   where the kernel allows (see [`stack`]).
//! * [`StackPool`]: a per-thread free list of stacks, so starting a fiber does not
//!   map memory.
//! * [`Fiber`]: a corosensei coroutine on such a stack that is never unwound while
//!   suspended (see [`fiber`]).
//!
//! Under valgrind every stack is registered as one while it is mapped (see
//! [`valgrind`]), so fiber switches are not mistaken for wild stack-pointer moves.
//!
//! Invariants the embedder relies on:
//! 1. a stack is unmapped only when no fiber is suspended on it;
//! 2. a suspended fiber is never unwound by Rust: dropping one leaks it;
//! 3. nothing here is `Send`: a fiber runs on the thread that made it.

pub mod fiber;
pub mod pool;
pub mod stack;
pub mod valgrind;

pub use corosensei::Yielder;
pub use fiber::{Fiber, Resumed, StackBounds};
pub use pool::StackPool;
pub use stack::{guard_mode, page_size, FiberStack, GuardMode, StackLayout, GUARD_BYTES};
