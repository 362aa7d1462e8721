//! Standard output of the three commands. A reader that goes away early (`virt-up --list |
//! head -1`) ends the process quietly with status 0, as other command-line tools' output
//! into a closed pipe does: Rust ignores SIGPIPE, so `println!` would panic with a
//! backtrace instead. SIGPIPE stays ignored, and not reset to its default, because
//! virt-up also writes into its children's pipes, and a child that exits early must not
//! kill it in the middle of a create.

use std::io::Write;

/// Print `args` (then a newline, if `newline`) on standard output; see the module.
pub fn write(args: std::fmt::Arguments, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        // What println! does on any other failure (a full disk, a closed descriptor).
        Err(e) => panic!("failed printing to stdout: {e}"),
    }
}

/// `println!` through [`write`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*), true) };
}

/// `print!` through [`write`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*), false) };
}
