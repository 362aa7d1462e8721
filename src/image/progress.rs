//! Progress bars on stderr for the long parts of making an image (downloads,
//! decompression, copies, qemu-img convert), drawn only when stderr is a terminal: tests,
//! CI logs, pipes and the JSON gen-vm-image prints never see one.
//!
//! indicatif draws them (rate-limited redraws, ETA, a clean erase when done); it is the
//! bar crate most Rust CLIs use (cargo-style tools, uv, rustup), and needs nothing that
//! clashes with the `libc` the `virt` crate pins.

use std::io::{IsTerminal, Read};

/// A bar, or nothing when not wanted or stderr is not a terminal. Erased when dropped.
pub(crate) struct Progress(Option<indicatif::ProgressBar>);

/// qemu-img reports a fraction: the bar counts tenths of a percent.
const PERMILLE: u64 = 1000;

impl Progress {
    /// No bar.
    pub(crate) fn none() -> Progress {
        Progress(None)
    }

    /// A bar over `total` bytes (a byte counter when the total is unknown).
    pub(crate) fn bytes(wanted: bool, what: &str, total: Option<u64>) -> Progress {
        Progress::new(
            wanted,
            what,
            total,
            "{bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
    }

    /// A bar in percent, for tools that report how far they are (qemu-img -p).
    pub(crate) fn percent(wanted: bool, what: &str) -> Progress {
        Progress::new(wanted, what, Some(PERMILLE), "{percent}% eta {eta}")
    }

    fn new(wanted: bool, what: &str, total: Option<u64>, counts: &str) -> Progress {
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress::none();
        }
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let template = match total {
            Some(_) => format!("{{msg}} {{bar:40}} {counts}"),
            None => "{msg} {spinner} {bytes} {bytes_per_sec}".to_string(),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        Progress(Some(bar))
    }

    pub(crate) fn is_drawn(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn set(&self, position: u64) {
        if let Some(b) = &self.0 {
            b.set_position(position);
        }
    }

    /// Set a percent bar from a fraction in percent (0.0 to 100.0).
    pub(crate) fn set_percent(&self, percent: f64) {
        self.set((percent.clamp(0.0, 100.0) * (PERMILLE as f64 / 100.0)) as u64);
    }

    fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// `reader`, advancing the bar by every byte read from it.
    pub(crate) fn reader<R: Read>(&self, reader: R) -> Counting<'_, R> {
        Counting {
            inner: reader,
            progress: self,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// A reader that moves a [`Progress`] bar on.
pub(crate) struct Counting<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// The last complete report in qemu-img -p output: `    (12.34/100%)\r` -> 12.34.
pub(crate) fn qemu_img_percent(output: &str) -> Option<f64> {
    output.rsplit('(').find_map(|record| {
        record
            .split_once("/100%)")
            .and_then(|(value, _)| value.trim().parse::<f64>().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_img_reports_are_read_from_the_last_complete_one() {
        assert_eq!(qemu_img_percent("    (0.00/100%)\r"), Some(0.0));
        assert_eq!(
            qemu_img_percent("    (0.00/100%)\r    (12.50/100%)\r    (13"),
            Some(12.5)
        );
        assert_eq!(qemu_img_percent("    (100.00/100%)\r\n"), Some(100.0));
        assert_eq!(qemu_img_percent(""), None);
        assert_eq!(qemu_img_percent("    (1"), None);
    }

    #[test]
    fn no_bar_off_a_terminal_and_reading_through_one_is_transparent() {
        // Off a terminal (CI, a pipe) no bar is drawn even when asked for.
        let p = Progress::bytes(true, "test", Some(3));
        assert!(!p.is_drawn() || std::io::stderr().is_terminal());
        let mut out = vec![];
        p.reader(&b"abc"[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
        assert!(!Progress::percent(false, "x").is_drawn());
    }
}
