//! The one way out of a state we cannot recover from (a leaf every layer may use).

/// Aborts the process, saying what broke.
pub(crate) fn fatal(what: &str) -> ! {
    eprintln!("anywait: fatal: {what}");
    std::process::abort()
}
