//! What a fiber's owner reports to the cycle collector for it: the body and context of
//! a fiber not yet started, a running call's objects, and the references held by the
//! frames of a suspended fiber (see `pystate::gc_view` for why, and what is safe).

use std::ptr::NonNull;

use pyo3::prelude::*;
use pyo3::{ffi, PyTraverseError, PyVisit};

use super::body::Body;
use super::switch::{FiberCore, Status};

impl FiberCore {
    /// Objects the core owns directly: the body (until its call returns) and the
    /// context of a fiber not yet started.
    pub(crate) fn gc_referents(&self) -> impl Iterator<Item = &Py<PyAny>> {
        let body = self.body.iter().flat_map(|b| match b {
            Body::Call { func, args, kwargs } => [
                Some(func),
                Some(args.as_any()),
                kwargs.as_ref().map(|k| k.as_any()),
            ],
            Body::Native { .. } => [None, None, None],
        });
        body.flatten().chain(self.context.iter())
    }

    /// Reports to `visit` the references the frames of a suspended fiber own, when the
    /// collector may see them (`pystate::gc_view`). `known` lists objects the owner
    /// holds or reports itself, with how many of their references it explains. Nothing
    /// is reported for a running, finished or linked fiber.
    pub(crate) fn visit_suspended_frames(
        &self,
        known: &[(*mut ffi::PyObject, isize)],
        visit: &PyVisit<'_>,
    ) -> Result<(), PyTraverseError> {
        if self.status() != Status::Suspended || self.linked {
            return Ok(());
        }
        let Some(snapshot) = self.snapshot.as_ref() else {
            return Ok(());
        };
        // SAFETY: a suspended fiber's saved state, whose view `hide` recorded when it
        // suspended (not revealed until it runs again); GC traversal holds the GIL.
        unsafe {
            self.hidden
                .visit(snapshot, known, |obj| visit_object(visit, obj))
        }
    }
}

/// Visits an object the caller knows to be a live, owned reference.
fn visit_object(visit: &PyVisit<'_>, obj: NonNull<ffi::PyObject>) -> Result<(), PyTraverseError> {
    // SAFETY: `Py<PyAny>` is a transparent wrapper of a non-null object pointer; the
    // borrowed view is never dropped (ManuallyDrop) and lives only for the call.
    let obj = std::mem::ManuallyDrop::new(unsafe {
        std::mem::transmute::<NonNull<ffi::PyObject>, Py<PyAny>>(obj)
    });
    visit.call(&*obj)
}
