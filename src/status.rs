//! Status lines on a terminal: one line per thing at work (an instance, a template, a spec
//! being built) saying what it does now and for how long, redrawn in place on stderr and
//! erased when it is done, so the lines printed meanwhile ("web1 is ready at ...") stay
//! clean. Off unless stderr is a terminal: logs, pipes and tests never see one.
//!
//! indicatif draws them (one `MultiProgress`, a spinner per line), as it draws the image
//! stage's bars ([`crate::image::progress`]).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often a spinner turns and its seconds are redrawn.
const TICK: Duration = Duration::from_millis(100);

/// The status lines, or nothing when they are off. Clones share the same lines.
#[derive(Clone, Default)]
pub struct Lines(Option<Arc<Shared>>);

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_on() {
            "Lines(on)"
        } else {
            "Lines(off)"
        })
    }
}

struct Shared {
    multi: MultiProgress,
    /// Where the lines go when they are not paused.
    target: fn() -> ProgressDrawTarget,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The lines in the order they appeared.
    lines: Vec<Line>,
    /// The width of the name column: the longest name shown so far.
    width: usize,
    /// How many holders want the terminal to themselves ([`Lines::paused`]).
    paused: usize,
}

struct Line {
    name: String,
    what: String,
    detail: String,
    bar: ProgressBar,
}

impl Line {
    fn redraw(&self, width: usize) {
        self.bar
            .set_message(text(&self.name, width, &self.what, &self.detail));
    }
}

/// A line's text but for its seconds: `web1  address`, `deb   build: Installing packages`.
pub fn text(name: &str, width: usize, what: &str, detail: &str) -> String {
    let mut s = format!("{name:<width$}  {what}");
    if !detail.is_empty() {
        s.push_str(": ");
        s.push_str(detail);
    }
    s
}

/// The seconds of a line: `12.3s`.
pub fn seconds(elapsed: Duration) -> String {
    format!("{:.1}s", elapsed.as_secs_f64())
}

impl Lines {
    /// No lines.
    pub fn off() -> Lines {
        Lines(None)
    }

    /// Lines on stderr when `wanted` and stderr is a terminal; otherwise none.
    pub fn on_stderr(wanted: bool) -> Lines {
        if wanted && std::io::stderr().is_terminal() {
            Lines::drawn_to(ProgressDrawTarget::stderr)
        } else {
            Lines::off()
        }
    }

    fn drawn_to(target: fn() -> ProgressDrawTarget) -> Lines {
        Lines(Some(Arc::new(Shared {
            multi: MultiProgress::with_draw_target(target()),
            target,
            state: Mutex::default(),
        })))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    fn state(shared: &Shared) -> MutexGuard<'_, State> {
        // A panic elsewhere while it was held leaves the lines as good as they were.
        shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `name` is at `what` from now on: its line says so (appearing if it had none), and
    /// its seconds count from now.
    pub fn show(&self, name: &str, what: &str) {
        let Some(shared) = &self.0 else { return };
        let mut state = Lines::state(shared);
        if name.len() > state.width {
            state.width = name.len();
            for line in &state.lines {
                line.redraw(name.len());
            }
        }
        let width = state.width;
        if let Some(line) = state.lines.iter_mut().find(|l| l.name == name) {
            line.what = what.to_string();
            line.detail.clear();
            line.bar.reset_elapsed();
            line.redraw(width);
            return;
        }
        let bar = shared.multi.add(ProgressBar::new_spinner());
        let style = ProgressStyle::with_template("{spinner} {msg}  {seconds}")
            .expect("a valid template")
            .with_key(
                "seconds",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&seconds(state.elapsed()));
                },
            );
        bar.set_style(style);
        bar.enable_steady_tick(TICK);
        let line = Line {
            name: name.to_string(),
            what: what.to_string(),
            detail: String::new(),
            bar,
        };
        line.redraw(width);
        state.lines.push(line);
    }

    /// More about what `name` is at (a tool's own report of its stage), its seconds still
    /// counting. Nothing if `name` has no line.
    pub fn detail(&self, name: &str, detail: &str) {
        let Some(shared) = &self.0 else { return };
        let mut state = Lines::state(shared);
        let width = state.width;
        if let Some(line) = state.lines.iter_mut().find(|l| l.name == name) {
            if line.detail != detail {
                line.detail = detail.to_string();
                line.redraw(width);
            }
        }
    }

    /// `name`'s line goes away (erased from the terminal).
    pub fn remove(&self, name: &str) {
        let Some(shared) = &self.0 else { return };
        let mut state = Lines::state(shared);
        if let Some(i) = state.lines.iter().position(|l| l.name == name) {
            let line = state.lines.remove(i);
            line.bar.finish_and_clear();
            shared.multi.remove(&line.bar);
        }
    }

    /// A line for `name` while the guard lives: shown at its first [`Lines::show`],
    /// removed when the guard is dropped (whatever the outcome of the work).
    pub fn line(&self, name: &str) -> LineGuard {
        LineGuard {
            lines: self.clone(),
            name: name.to_string(),
        }
    }

    /// Run `print`, which writes whole lines to the terminal, with the status lines
    /// erased meanwhile and drawn again below what it printed.
    pub fn print<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(shared) => shared.multi.suspend(print),
            None => print(),
        }
    }

    /// Erase the lines and draw none while the guard lives: a tool that talks to the
    /// terminal itself (ansible-playbook) has it. The lines come back when the last guard
    /// is dropped.
    pub fn paused(&self) -> Paused {
        if let Some(shared) = &self.0 {
            let mut state = Lines::state(shared);
            state.paused += 1;
            if state.paused == 1 {
                let _ = shared.multi.clear();
                shared.multi.set_draw_target(ProgressDrawTarget::hidden());
            }
        }
        Paused(self.clone())
    }

    /// What the lines say now, but for their seconds, in their order.
    pub fn shown(&self) -> Vec<String> {
        let Some(shared) = &self.0 else {
            return vec![];
        };
        let state = Lines::state(shared);
        state
            .lines
            .iter()
            .map(|l| text(&l.name, state.width, &l.what, &l.detail))
            .collect()
    }
}

/// Removes its line when dropped ([`Lines::line`]).
pub struct LineGuard {
    lines: Lines,
    name: String,
}

impl Drop for LineGuard {
    fn drop(&mut self) {
        self.lines.remove(&self.name);
    }
}

/// Keeps the lines off the terminal while it lives ([`Lines::paused`]).
pub struct Paused(Lines);

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(shared) = &self.0 .0 {
            let mut state = Lines::state(shared);
            state.paused = state.paused.saturating_sub(1);
            if state.paused == 0 {
                shared.multi.set_draw_target((shared.target)());
            }
        }
    }
}

/// Whole lines out of a tool's output as it comes in pieces.
#[derive(Default)]
pub struct LineSplitter {
    partial: Mutex<Vec<u8>>,
}

impl LineSplitter {
    /// The lines `chunk` completes (a carriage return ends one too: progress reports).
    pub fn feed(&self, chunk: &[u8]) -> Vec<String> {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines = vec![];
        for &b in chunk {
            if b == b'\n' || b == b'\r' {
                if !partial.is_empty() {
                    lines.push(String::from_utf8_lossy(&partial).into_owned());
                    partial.clear();
                }
            } else {
                partial.push(b);
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden() -> Lines {
        // The state is the same as on a terminal; only nothing is drawn.
        Lines::drawn_to(ProgressDrawTarget::hidden)
    }

    #[test]
    fn a_line_says_the_name_what_it_is_at_and_its_seconds() {
        assert_eq!(text("web1", 6, "address", ""), "web1    address");
        assert_eq!(
            text("deb", 3, "build", "Installing packages"),
            "deb  build: Installing packages"
        );
        assert_eq!(seconds(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(seconds(Duration::ZERO), "0.0s");
    }

    #[test]
    fn a_phase_begun_shows_up_and_a_finished_instances_line_goes_away() {
        let lines = hidden();
        let web1 = lines.line("web1");
        lines.show("web1", "clone");
        let db = lines.line("db");
        lines.show("db", "clone");
        lines.show("web1", "address");
        assert_eq!(lines.shown(), ["web1  address", "db    clone"]);
        drop(web1);
        assert_eq!(lines.shown(), ["db    clone"]);
        // A longer name widens the column of every line.
        lines.show("database", "boot");
        assert_eq!(lines.shown(), ["db        clone", "database  boot"]);
        drop(db);
        lines.remove("database");
        assert!(lines.shown().is_empty());
    }

    #[test]
    fn a_detail_adds_to_the_phase_until_the_next_phase() {
        let lines = hidden();
        lines.show("deb", "build");
        lines.detail("deb", "Opening the new disk");
        assert_eq!(lines.shown(), ["deb  build: Opening the new disk"]);
        lines.show("deb", "upload");
        assert_eq!(lines.shown(), ["deb  upload"]);
        // No line, no detail.
        lines.detail("other", "x");
        assert_eq!(lines.shown(), ["deb  upload"]);
    }

    #[test]
    fn off_there_are_no_lines_and_printing_still_prints() {
        let lines = Lines::off();
        lines.show("web1", "clone");
        assert!(lines.shown().is_empty());
        assert_eq!(lines.print(|| 7), 7);
        let _paused = lines.paused();
        assert!(!Lines::on_stderr(false).is_on());
    }

    #[test]
    fn pausing_keeps_the_lines_and_nests() {
        let lines = hidden();
        lines.show("web1", "playbook");
        let outer = lines.paused();
        let inner = lines.paused();
        drop(inner);
        drop(outer);
        assert_eq!(lines.shown(), ["web1  playbook"]);
        assert_eq!(lines.print(|| "printed"), "printed");
    }

    #[test]
    fn output_in_pieces_is_cut_into_whole_lines() {
        let s = LineSplitter::default();
        assert!(s.feed(b"[   0.0] Down").is_empty());
        assert_eq!(
            s.feed(b"loading\n[   1.2] Planning\r\n"),
            ["[   0.0] Downloading", "[   1.2] Planning"]
        );
        assert!(s.feed(b"\n").is_empty());
    }
}
