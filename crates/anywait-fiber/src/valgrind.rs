//! Telling valgrind where the fiber stacks are.
//!
//! Valgrind's memcheck follows the stack pointer: when it moves up, the bytes it
//! leaves behind become inaccessible; when it jumps by more than `--max-stackframe`
//! (2 MB by default), memcheck guesses at a stack switch, warns ("client switching
//! stacks?") and, if the guess is wrong, marks megabytes of unrelated memory as
//! freshly allocated or dead. A jump into a *registered* stack is known to be a switch,
//! and stack traces taken on a fiber stop at that fiber's base instead of wandering off
//! into the mapping above it. So every [`crate::FiberStack`] registers its usable range
//! while it is mapped.
//!
//! # Client requests
//!
//! A program talks to valgrind by executing a "magic" instruction sequence that is a
//! no-op on a real CPU: rotations of one register by a total of 128 bits (the register
//! ends unchanged), then an exchange or `orr` of a register with itself. Valgrind's
//! instruction decoder recognises the sequence and answers the request whose
//! arguments sit in a six-word block in memory: `[request, arg1, ..., arg5]`. On a
//! real CPU nothing happens, and the register that carries the answer keeps the
//! default value put in it beforehand. The sequences and request codes below are the
//! ones `valgrind.h` documents (valgrind's ABI for client requests, stable since 3.x):
//!
//! | arch    | preamble (register, rotation amounts)   | request marker      | block | answer / default |
//! |---------|------------------------------------------|---------------------|-------|------------------|
//! | x86_64  | `rol rdi` by 3, 13, 61, 51               | `xchg rbx, rbx`     | `rax` | `rdx`            |
//! | aarch64 | `ror x12` by 3, 13, 51, 61               | `orr x10, x10, x10` | `x4`  | `x3`             |
//!
//! Elsewhere every request is a no-op that returns its default.
//!
//! The sequence is cheap on a real CPU, but [`running_on_valgrind`] is asked once and
//! cached, so outside valgrind registering a stack costs one atomic load.

use std::sync::atomic::{AtomicU8, Ordering};

/// `VG_USERREQ__RUNNING_ON_VALGRIND`: answers the nesting depth of valgrinds (0 natively).
const RUNNING_ON_VALGRIND: usize = 0x1001;
/// `VG_USERREQ__STACK_REGISTER(lowest byte, highest byte)`: answers the stack's id.
const STACK_REGISTER: usize = 0x1501;
/// `VG_USERREQ__STACK_DEREGISTER(id)`.
const STACK_DEREGISTER: usize = 0x1502;
/// `VG_USERREQ__STACK_CHANGE(id, lowest byte, highest byte)`.
const STACK_CHANGE: usize = 0x1503;

/// Sends one client request; returns `default` when not running under valgrind.
#[inline(always)]
fn client_request(default: usize, request: usize, args: [usize; 5]) -> usize {
    let block: [usize; 6] = [request, args[0], args[1], args[2], args[3], args[4]];
    request_raw(default, &block)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn request_raw(default: usize, block: &[usize; 6]) -> usize {
    let answer;
    // SAFETY: on a real CPU the sequence changes no register (rdi is rotated by 128
    // bits in all, rbx exchanged with itself) and only the flags, which asm! assumes
    // clobbered by default. Under valgrind, the request reads the six words at
    // `block` (alive and initialised for the duration of the call; asm! without
    // `nomem` tells the compiler memory is read) and writes only rdx. No stack use.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") block.as_ptr(),
            inout("rdx") default => answer,
            options(nostack),
        );
    }
    answer
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn request_raw(default: usize, block: &[usize; 6]) -> usize {
    let answer;
    // SAFETY: on a real CPU the sequence changes no register (x12 is rotated by 128
    // bits in all, x10 or-ed with itself) and no flags. Under valgrind, the request
    // reads the six words at `block` (alive and initialised for the duration of the
    // call; asm! without `nomem` tells the compiler memory is read) and writes only
    // x3. No stack use.
    unsafe {
        std::arch::asm!(
            "ror x12, x12, #3",
            "ror x12, x12, #13",
            "ror x12, x12, #51",
            "ror x12, x12, #61",
            "orr x10, x10, x10",
            in("x4") block.as_ptr(),
            inout("x3") default => answer,
            options(nostack),
        );
    }
    answer
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline(always)]
fn request_raw(default: usize, _block: &[usize; 6]) -> usize {
    default
}

const UNKNOWN: u8 = 0;
const NATIVE: u8 = 1;
const VALGRIND: u8 = 2;

/// Whether this process runs under valgrind, once asked (a process cannot move in or
/// out of valgrind, so the answer never changes).
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether this process runs under valgrind (any tool). Cached after the first call.
#[inline]
pub fn running_on_valgrind() -> bool {
    match MODE.load(Ordering::Relaxed) {
        NATIVE => false,
        VALGRIND => true,
        _ => probe(),
    }
}

#[cold]
fn probe() -> bool {
    let depth = client_request(0, RUNNING_ON_VALGRIND, [0; 5]);
    MODE.store(if depth > 0 { VALGRIND } else { NATIVE }, Ordering::Relaxed);
    depth > 0
}

/// Valgrind's handle on a registered stack; deregister it with [`stack_deregister`]
/// before the memory goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackId(usize);

/// Tells valgrind that `lowest..=highest` (addresses of the lowest and the highest
/// byte) is a stack. `None` when not running under valgrind.
pub fn stack_register(lowest: usize, highest: usize) -> Option<StackId> {
    if !running_on_valgrind() {
        return None;
    }
    Some(StackId(client_request(
        0,
        STACK_REGISTER,
        [lowest, highest, 0, 0, 0],
    )))
}

/// Forgets a stack registered with [`stack_register`].
pub fn stack_deregister(id: StackId) {
    client_request(0, STACK_DEREGISTER, [id.0, 0, 0, 0, 0]);
}

/// Moves a registered stack to `lowest..=highest`.
pub fn stack_change(id: StackId, lowest: usize, highest: usize) {
    client_request(0, STACK_CHANGE, [id.0, lowest, highest, 0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ANYWAIT_EXPECT_VALGRIND=1` is set by `tools/ci.sh valgrind` when it runs these
    /// tests under valgrind, so the magic sequence is checked both ways.
    fn expected() -> bool {
        std::env::var_os("ANYWAIT_EXPECT_VALGRIND").is_some_and(|v| v == "1")
    }

    #[test]
    fn running_on_valgrind_is_detected_and_stable() {
        assert_eq!(running_on_valgrind(), expected());
        assert_eq!(
            running_on_valgrind(),
            expected(),
            "the cached answer differs"
        );
    }

    #[test]
    fn requests_answer_their_default_natively() {
        if expected() {
            return;
        }
        assert_eq!(client_request(0, RUNNING_ON_VALGRIND, [0; 5]), 0);
        assert_eq!(
            client_request(0xdead_beef, STACK_REGISTER, [4096, 8191, 0, 0, 0]),
            0xdead_beef
        );
        assert_eq!(stack_register(4096, 8191), None);
    }

    #[test]
    fn a_registered_stack_can_move_and_go() {
        let mut area = vec![0u8; 8192];
        let lo = area.as_mut_ptr() as usize;
        let id = stack_register(lo, lo + 4095);
        assert_eq!(id.is_some(), expected());
        if let Some(id) = id {
            stack_change(id, lo, lo + 8191);
            stack_deregister(id);
        }
    }
}
