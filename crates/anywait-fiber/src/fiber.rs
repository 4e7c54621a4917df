//! A coroutine on a [`FiberStack`] that is never unwound while suspended.
//!
//! corosensei unwinds a suspended coroutine when it is dropped, by throwing a Rust
//! panic through every frame on its stack. Our stacks carry C frames of the Python
//! interpreter, and unwinding through them is undefined behaviour. So [`Fiber`] keeps
//! the coroutine in a `ManuallyDrop` and decides itself what dropping means:
//!
//! | state when dropped  | what happens                                              |
//! |---------------------|-----------------------------------------------------------|
//! | never resumed       | the closure is dropped without running; stack unmapped    |
//! | finished            | stack unmapped (or handed back with [`Fiber::into_stack`]) |
//! | suspended           | everything is leaked: the stack stays mapped forever      |
//!
//! The embedder is expected to finish suspended fibers itself (the Python layer throws
//! an exit exception in and runs the fiber to its end); leaking is the last resort for
//! one that refuses, because something may still point into its stack.
//!
//! `Fiber` is neither `Send` nor `Sync`: its stack holds frames of the thread that runs it.
//!
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<anywait_fiber::Fiber<(), (), ()>>();
//! ```

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use corosensei::{Coroutine, CoroutineResult, Yielder};

use crate::stack::{FiberStack, StackLayout};

/// Addresses of a fiber's stack, for code that must describe the stack to others
/// (the interpreter's stack-overflow checks) while the stack itself is owned by the
/// running coroutine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackBounds {
    /// Lowest usable address (just above the guard region).
    pub usable_bottom: usize,
    /// The stack base: the highest address of the C stack, where it starts.
    pub base: usize,
    /// The embedder's reserved area (starts at `base`).
    pub reserved_area: NonNull<u8>,
    /// Size of the reserved area in bytes.
    pub reserved_bytes: usize,
}

impl StackBounds {
    fn of(stack: &FiberStack) -> Self {
        let StackLayout { reserved_bytes, .. } = stack.layout();
        let reserved_area = stack.reserved_area();
        Self {
            usable_bottom: stack.usable_bottom(),
            base: reserved_area.as_ptr() as usize,
            reserved_area,
            reserved_bytes,
        }
    }
}

/// A stackful coroutine running on a [`FiberStack`]; see the module docs.
pub struct Fiber<Input, Yield, Return> {
    /// Invariant: dropped only when it is finished or was never resumed.
    co: ManuallyDrop<Coroutine<Input, Yield, Return, FiberStack>>,
    bounds: StackBounds,
}

impl<Input, Yield, Return> Fiber<Input, Yield, Return>
where
    Input: 'static,
    Yield: 'static,
    Return: 'static,
{
    /// A fiber that will run `body` on `stack` when first resumed.
    ///
    /// `body` must not let a panic escape while foreign (C) frames are above it on the
    /// fiber stack; a panic escaping `body` itself is carried over to the caller of
    /// [`Fiber::resume`].
    pub fn new<F>(stack: FiberStack, body: F) -> Self
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
    {
        let bounds = StackBounds::of(&stack);
        Self {
            co: ManuallyDrop::new(Coroutine::with_stack(stack, body)),
            bounds,
        }
    }

    /// Runs the fiber until it suspends or returns.
    ///
    /// # Panics
    /// If the fiber has finished.
    #[inline]
    pub fn resume(&mut self, input: Input) -> CoroutineResult<Yield, Return> {
        self.co.resume(input)
    }

    /// Whether the fiber has been resumed at least once.
    pub fn started(&self) -> bool {
        self.co.started()
    }

    /// Whether the fiber has returned.
    pub fn done(&self) -> bool {
        self.co.done()
    }

    /// Whether the fiber is parked in a suspend (started and not finished).
    pub fn suspended(&self) -> bool {
        self.started() && !self.done()
    }

    /// The addresses of this fiber's stack.
    pub fn bounds(&self) -> StackBounds {
        self.bounds
    }

    /// Takes the stack back from a fiber that finished or never ran, for reuse.
    ///
    /// # Panics
    /// If the fiber is suspended: its stack is still in use.
    pub fn into_stack(self) -> FiberStack {
        assert!(
            !self.suspended(),
            "cannot take the stack of a suspended fiber"
        );
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the coroutine is moved out
        // exactly once.
        let mut co = unsafe { ManuallyDrop::take(&mut this.co) };
        // Not started: drops the closure without running anything. Done: no-op.
        co.force_unwind();
        co.into_stack()
    }

    /// Takes the stack back from a suspended fiber without unwinding it: as if the
    /// fiber had jumped back to its start.
    ///
    /// # Safety
    /// Nothing on the fiber's stack needs dropping, and nothing anywhere points into
    /// it (no foreign frames, no borrowed data).
    pub unsafe fn reset_into_stack(self) -> FiberStack {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again.
        let mut co = unsafe { ManuallyDrop::take(&mut this.co) };
        // SAFETY: the caller guarantees nothing on the stack needs dropping.
        unsafe { co.force_reset() };
        co.into_stack()
    }

    /// Abandons the fiber whatever its state, leaking its stack if it is suspended.
    pub fn leak(self) {
        drop(self);
    }
}

impl<Input, Yield, Return> Drop for Fiber<Input, Yield, Return> {
    fn drop(&mut self) {
        if self.co.started() && !self.co.done() {
            // Suspended: frames on this stack may be pointed to from elsewhere and must
            // not be unwound. Leak the coroutine and its stack (module docs).
            return;
        }
        // Never resumed: drops the closure; finished: no-op.
        self.co.force_unwind();
        // SAFETY: not used again; the coroutine is finished or never ran, so dropping it
        // unwinds nothing.
        unsafe { ManuallyDrop::drop(&mut self.co) };
    }
}

/// Re-exported so embedders need not depend on corosensei directly.
pub use corosensei::CoroutineResult as Resumed;

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    fn stack() -> FiberStack {
        FiberStack::new(StackLayout {
            usable_bytes: 64 * 1024,
            reserved_bytes: 4096,
            base_skew: 0,
        })
        .unwrap()
    }

    #[test]
    fn suspend_and_resume() {
        let mut fiber = Fiber::new(stack(), |y: &Yielder<i32, i32>, first| {
            let second = y.suspend(first + 1);
            second * 10
        });
        assert!(!fiber.started());
        assert!(matches!(fiber.resume(1), Resumed::Yield(2)));
        assert!(fiber.suspended());
        assert!(matches!(fiber.resume(5), Resumed::Return(50)));
        assert!(fiber.done());
    }

    #[test]
    fn stack_is_reused_after_finish() {
        let mut fiber = Fiber::new(stack(), |_: &Yielder<(), ()>, ()| 7);
        let base = fiber.bounds().base;
        assert!(matches!(fiber.resume(()), Resumed::Return(7)));
        let again = Fiber::new(fiber.into_stack(), |_: &Yielder<(), ()>, ()| 8);
        assert_eq!(again.bounds().base, base);
    }

    #[test]
    fn unstarted_fiber_drops_closure_without_running() {
        let ran = Rc::new(Cell::new(false));
        let dropped = Rc::new(Cell::new(false));
        struct OnDrop(Rc<Cell<bool>>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let guard = OnDrop(dropped.clone());
        let ran2 = ran.clone();
        let fiber = Fiber::new(stack(), move |_: &Yielder<(), ()>, ()| {
            let _g = &guard;
            ran2.set(true);
        });
        drop(fiber.into_stack());
        assert!(!ran.get());
        assert!(dropped.get());
    }

    #[test]
    fn suspended_fiber_is_leaked_not_unwound() {
        let unwound = Rc::new(Cell::new(false));
        struct OnDrop(Rc<Cell<bool>>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let flag = unwound.clone();
        let mut fiber = Fiber::new(stack(), move |y: &Yielder<(), ()>, ()| {
            let _g = OnDrop(flag);
            y.suspend(());
        });
        assert!(matches!(fiber.resume(()), Resumed::Yield(())));
        drop(fiber);
        assert!(!unwound.get(), "a suspended fiber must never be unwound");
    }

    #[test]
    fn reset_reclaims_a_suspended_stack() {
        let mut fiber = Fiber::new(stack(), |y: &Yielder<(), ()>, ()| {
            y.suspend(());
        });
        let base = fiber.bounds().base;
        assert!(matches!(fiber.resume(()), Resumed::Yield(())));
        // SAFETY: the body holds nothing that needs dropping while suspended.
        let stack = unsafe { fiber.reset_into_stack() };
        let mut again = Fiber::new(stack, |_: &Yielder<(), ()>, ()| 3);
        assert_eq!(again.bounds().base, base);
        assert!(matches!(again.resume(()), Resumed::Return(3)));
    }

    #[test]
    fn panic_in_body_reaches_resumer() {
        let mut fiber = Fiber::new(stack(), |_: &Yielder<(), ()>, ()| panic!("boom"));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fiber.resume(())));
        assert!(caught.is_err());
        assert!(fiber.done());
    }

    #[test]
    fn fibers_nest() {
        let mut outer = Fiber::new(stack(), |y: &Yielder<(), u32>, ()| {
            let mut inner = Fiber::new(stack(), |yi: &Yielder<(), u32>, ()| {
                yi.suspend(1);
                2
            });
            let Resumed::Yield(a) = inner.resume(()) else {
                unreachable!()
            };
            y.suspend(a);
            let Resumed::Return(b) = inner.resume(()) else {
                unreachable!()
            };
            b + 10
        });
        assert!(matches!(outer.resume(()), Resumed::Yield(1)));
        assert!(matches!(outer.resume(()), Resumed::Return(12)));
    }

    #[test]
    fn stack_overflow_hits_the_guard() {
        // Run in a forked child: overflowing must kill it with SIGSEGV, never corrupt
        // memory next to the stack.
        // SAFETY: the test harness may be multi-threaded; the child only runs the fiber
        // and exits, touching no locks held by other threads.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            fn recurse(n: u64) -> u64 {
                if n == u64::MAX {
                    return 0;
                }
                let buf = [n; 64];
                std::hint::black_box(&buf);
                recurse(n + 1) + buf[3]
            }
            let mut fiber = Fiber::new(stack(), |_: &Yielder<(), ()>, ()| {
                std::hint::black_box(recurse(0));
            });
            fiber.resume(());
            // SAFETY: _exit is always safe to call.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: pid is our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFSIGNALED(status));
        assert_eq!(libc::WTERMSIG(status), libc::SIGSEGV);
    }
}
