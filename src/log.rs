//! The one place `debug: ...` lines are written (the UI's and the runner's), so they look
//! the same and go to the same stream.

/// Write one debug line to stderr. Callers decide whether debug output is on.
pub(crate) fn debug(msg: impl std::fmt::Display) {
    eprintln!("debug: {msg}");
}
