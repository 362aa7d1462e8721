//! Cancellation: a token long operations check between steps (reads, polls), fired by
//! Ctrl-C/SIGTERM or by the code itself (a checksum mismatch stops the conversion that runs
//! alongside). Work in progress is then removed, so an interrupted run leaves no
//! half-written output.

// unsafe: signal handlers for Ctrl-C and SIGTERM (libc::sigaction); each block says why it is sound.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // A second Ctrl-C: the user insists; die the default way.
        // SAFETY: signal() and raise() are async-signal-safe.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// Turn SIGINT and SIGTERM into a flag that [`Cancel`] tokens see (a second signal kills
/// at once). For front-ends; call once at start-up.
pub fn install_interrupt_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches an atomic (and async-signal-safe calls).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            // SA_RESTART: reads and waits resume; the flag is polled.
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// The interrupt handler for as long as this guard lives, then the dispositions from
/// before it. For library code that must clean up after a Ctrl-C (unmount, remove a work
/// tree) in a front-end that otherwise lets the signal kill it at once.
pub(crate) struct InterruptScope {
    old: [(libc::c_int, libc::sigaction); 2],
}

impl InterruptScope {
    pub(crate) fn enter() -> InterruptScope {
        // SAFETY: sigaction only reads and writes these plain structs.
        let save = |sig| unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old);
            (sig, old)
        };
        let old = [save(libc::SIGINT), save(libc::SIGTERM)];
        install_interrupt_handler();
        InterruptScope { old }
    }
}

impl Drop for InterruptScope {
    fn drop(&mut self) {
        for (sig, old) in &self.old {
            // SAFETY: restores a disposition sigaction returned.
            unsafe {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
    }
}

/// True once SIGINT or SIGTERM arrived (with the handler installed).
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A cancellation token; clones share it. Cancelled also when the process is interrupted,
/// and when its parent (see [`Cancel::child`]) is.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    own: Arc<AtomicBool>,
    parent: Option<Box<Cancel>>,
}

impl Cancel {
    pub(crate) fn new() -> Cancel {
        Cancel::default()
    }

    pub(crate) fn cancel(&self) {
        self.own.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled_here()
            || interrupted()
            || self.parent.as_ref().is_some_and(|p| p.is_cancelled())
    }

    /// True when this token itself (not a parent, not a signal) was cancelled.
    pub(crate) fn cancelled_here(&self) -> bool {
        self.own.load(Ordering::SeqCst)
    }

    /// A token cancelled with this one, that can also be cancelled on its own.
    pub(crate) fn child(&self) -> Cancel {
        Cancel {
            own: Arc::default(),
            parent: Some(Box::new(self.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_follows_parent_but_not_the_other_way() {
        let parent = Cancel::new();
        let child = parent.child();
        child.cancel();
        assert!(child.is_cancelled() && child.cancelled_here());
        assert!(!parent.is_cancelled());
        let other = parent.child();
        parent.cancel();
        assert!(other.is_cancelled() && !other.cancelled_here());
    }
}
