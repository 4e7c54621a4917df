//! The fiber layer: Python code on stacks of its own, switched to and from on the
//! thread that made them.
//!
//! Owns: the [`FiberCore`] (a native fiber plus the interpreter state of the code on
//! it) and the switch ([`switch`], and its fiber side, [`suspend`]); what crosses a switch ([`wire`]); thread ownership,
//! the per-thread stack pool and fork ([`home`]); how a fiber that nobody resumes ends
//! ([`lifetime`]); the `anywait.lowlevel.Fiber` class ([`pyfiber`]) and its fast entry
//! points ([`entry`]); what a fiber runs ([`body`]) and what its owner reports to the
//! cycle collector for it ([`gc`]); PEP 442 finalizers for our classes ([`finalizer`]).
//!
//! Invariants: a fiber runs only on its owner thread; no Python API call happens
//! between the two state swaps of a switch; nothing frees a stack that has frames on
//! it; a running fiber's core is reachable only through raw pointers (it is touched
//! from both sides of the switch).
//!
//! May call: `pystate` (the state swap), crate `anywait-fiber` (stacks), and the leaf
//! modules `fatal`. Knows nothing of portals, tasks or greenlet: layers above recognise
//! their own fibers by [`Tag`] and keep their own state beside the core.

pub(crate) mod body;
pub(crate) mod entry;
pub(crate) mod errors;
pub(crate) mod finalizer;
pub(crate) mod gc;
pub(crate) mod home;
pub(crate) mod lifetime;
pub(crate) mod linked;
pub(crate) mod pyfiber;
pub(crate) mod relay;
pub(crate) mod suspend;
pub(crate) mod switch;
pub(crate) mod wire;

pub(crate) use body::Body;
pub(crate) use suspend::suspend_running;
pub(crate) use switch::{current, resume, resume_wire, FiberCore, Status, Tag};
pub(crate) use wire::{error_from, Msg, Wire};
