//! The interop layer: other users of the thread's stacks that portal steps must keep
//! consistent. Today greenlet ([`greenlet`], on its C API: [`greenlet_api`]): a step that switches greenlets, or
//! `await_` inside a greenlet started in a step (SQLAlchemy's asyncio layer).
//!
//! May call: `fiber` (for the running fiber), `pystate` and the leaf modules. It runs
//! portal steps and forwards their traps, but through the narrow hooks the portal
//! layer registers at import ([`greenlet::StepHost`]), never by naming the portal.

pub(crate) mod greenlet;
pub(crate) mod greenlet_api;
