//! A per-thread pool of idle stacks.
//!
//! Mapping a stack and installing its guard costs a few microseconds of system calls;
//! reusing one costs nothing. The pool keeps as many idle stacks as were recently in
//! use at once (at least `min_idle`, at most `max_idle`) and unmaps the rest, so a
//! steady load of N fibers at a time (a server with N requests in flight) stops calling
//! `mmap` once it has N stacks, while a burst gives its memory back once it is over.
//! "Recently" is a window of gives: at its end the remembered peak falls to half, or to
//! what is in use then if that is more, and idle stacks beyond it are unmapped.
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
    /// resident). Invariant: `idle.len() <= max_idle`, and no fiber runs on any of them.
    idle: Vec<FiberStack>,
    min_idle: usize,
    max_idle: usize,
    /// Stacks handed out and not given back (a stack leaked with its fiber stays
    /// counted: harmless, the count only sizes the pool).
    in_use: usize,
    /// The most stacks in use at once lately: how many idle ones are worth keeping.
    peak: usize,
    /// Gives left in the current window (see the module docs).
    window_left: usize,
    /// Keeps the pool on its thread.
    _not_send: PhantomData<*const ()>,
}

impl StackPool {
    /// A pool of stacks with `layout`, keeping at most `cap` of them idle.
    pub fn new(layout: StackLayout, cap: usize) -> Self {
        Self::with_limits(layout, cap, cap)
    }

    /// A pool of stacks with `layout` that keeps as many idle stacks as were recently
    /// in use at once, but at least `min_idle` and at most `max_idle`.
    pub fn with_limits(layout: StackLayout, min_idle: usize, max_idle: usize) -> Self {
        let max_idle = max_idle.max(min_idle);
        Self {
            layout: layout.normalised(),
            idle: Vec::with_capacity(min_idle),
            min_idle,
            max_idle,
            in_use: 0,
            peak: 0,
            window_left: Self::window(max_idle),
            _not_send: PhantomData,
        }
    }

    fn window(max_idle: usize) -> usize {
        (4 * max_idle).max(64)
    }

    /// The (normalised) layout of every stack this pool hands out.
    pub fn layout(&self) -> StackLayout {
        self.layout
    }

    /// An idle stack, or a newly mapped one when none is idle.
    pub fn take(&mut self) -> io::Result<FiberStack> {
        let stack = match self.idle.pop() {
            Some(stack) => stack,
            None => FiberStack::new(self.layout)?,
        };
        self.in_use += 1;
        self.peak = self.peak.max(self.in_use);
        Ok(stack)
    }

    /// How many idle stacks the pool keeps now.
    fn keep(&self) -> usize {
        self.peak.clamp(self.min_idle, self.max_idle)
    }

    /// Returns a stack that nothing runs on any more. Beyond what the pool keeps, it is
    /// unmapped.
    pub fn give(&mut self, stack: FiberStack) {
        debug_assert_eq!(stack.layout(), self.layout, "stack from another pool");
        self.in_use = self.in_use.saturating_sub(1);
        if self.idle.len() < self.keep() {
            self.idle.push(stack);
        }
        self.window_left -= 1;
        if self.window_left == 0 {
            self.window_left = Self::window(self.max_idle);
            self.peak = (self.peak / 2).max(self.in_use);
            self.idle.truncate(self.keep());
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
    fn keeps_as_many_as_were_in_use_at_once_within_its_limits() {
        let mut pool = StackPool::with_limits(layout(), 2, 6);
        // Waves of 5 at once: after the first, no wave maps a stack.
        for wave in 0..3 {
            let stacks: Vec<_> = (0..5).map(|_| pool.take().unwrap()).collect();
            let bases: Vec<_> = stacks.iter().map(|s| s.reserved_area()).collect();
            for stack in stacks {
                pool.give(stack);
            }
            assert_eq!(pool.idle_len(), 5, "wave {wave}");
            let again: Vec<_> = (0..5).map(|_| pool.take().unwrap()).collect();
            let mut reused: Vec<_> = again.iter().map(|s| s.reserved_area()).collect();
            reused.sort();
            let mut expected = bases.clone();
            expected.sort();
            assert_eq!(reused, expected, "wave {wave} mapped new stacks");
            for stack in again {
                pool.give(stack);
            }
        }
        // 10 at once: only max_idle of them stay.
        let stacks: Vec<_> = (0..10).map(|_| pool.take().unwrap()).collect();
        for stack in stacks {
            pool.give(stack);
        }
        assert_eq!(pool.idle_len(), 6);
    }

    #[test]
    fn a_burst_gives_its_stacks_back_over_the_following_windows() {
        let mut pool = StackPool::with_limits(layout(), 1, 8);
        let burst: Vec<_> = (0..8).map(|_| pool.take().unwrap()).collect();
        for stack in burst {
            pool.give(stack);
        }
        assert_eq!(pool.idle_len(), 8);
        // Then one fiber at a time, for a few windows: the peak halves each window.
        for _ in 0..4 * StackPool::window(8) {
            let stack = pool.take().unwrap();
            pool.give(stack);
        }
        assert_eq!(pool.idle_len(), 1);
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
