//! A per-thread pool of idle stacks.
//!
//! Mapping a stack and installing its guard costs a few microseconds of system calls;
//! reusing one costs nothing. The pool keeps at most `cap` idle stacks and unmaps the
//! rest, so a burst of fibers gives its memory back once it is over while a steady
//! stream of short-lived fibers never calls `mmap`.
//!
//! A pool is not `Send`: it is meant to live in a thread-local, next to the fibers of
//! that thread.

use std::io;
use std::marker::PhantomData;

use crate::stack::{FiberStack, StackLayout};

/// Idle stacks of one layout, owned by one thread.
#[derive(Debug)]
pub struct StackPool {
    layout: StackLayout,
    /// Idle stacks, most recently used last (their top pages are the likeliest to be
    /// resident). Invariant: `idle.len() <= cap`, and no fiber runs on any of them.
    idle: Vec<FiberStack>,
    cap: usize,
    /// Keeps the pool on its thread.
    _not_send: PhantomData<*const ()>,
}

impl StackPool {
    /// A pool of stacks with `layout`, keeping at most `cap` of them idle.
    pub fn new(layout: StackLayout, cap: usize) -> Self {
        Self {
            layout: layout.normalised(),
            idle: Vec::with_capacity(cap),
            cap,
            _not_send: PhantomData,
        }
    }

    /// The (normalised) layout of every stack this pool hands out.
    pub fn layout(&self) -> StackLayout {
        self.layout
    }

    /// An idle stack, or a newly mapped one when none is idle.
    pub fn take(&mut self) -> io::Result<FiberStack> {
        match self.idle.pop() {
            Some(stack) => Ok(stack),
            None => FiberStack::new(self.layout),
        }
    }

    /// Returns a stack that nothing runs on any more. Beyond the cap it is unmapped.
    pub fn give(&mut self, stack: FiberStack) {
        debug_assert_eq!(stack.layout(), self.layout, "stack from another pool");
        if self.idle.len() < self.cap {
            self.idle.push(stack);
        }
    }

    /// Number of idle stacks held.
    pub fn idle_len(&self) -> usize {
        self.idle.len()
    }

    /// Unmaps idle stacks until at most `keep` remain.
    pub fn trim(&mut self, keep: usize) {
        self.idle.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> StackLayout {
        StackLayout {
            usable_bytes: 32 * 1024,
            reserved_bytes: 4096,
            base_skew: 0,
        }
    }

    #[test]
    fn reuses_given_back_stack() {
        let mut pool = StackPool::new(layout(), 2);
        let stack = pool.take().unwrap();
        let base = stack.reserved_area();
        pool.give(stack);
        assert_eq!(pool.idle_len(), 1);
        assert_eq!(pool.take().unwrap().reserved_area(), base);
    }

    #[test]
    fn unmaps_beyond_cap() {
        let mut pool = StackPool::new(layout(), 1);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        pool.give(a);
        pool.give(b);
        assert_eq!(pool.idle_len(), 1);
        pool.trim(0);
        assert_eq!(pool.idle_len(), 0);
    }
}
