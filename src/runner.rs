//! The one way external tools are run: an argument vector (never a shell string), the
//! command logged at debug level, and a failure turned into an error that names the tool,
//! its exit code and the tail of its stderr.

use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// How many stderr lines an error message keeps.
const STDERR_TAIL_LINES: usize = 15;

/// The Debian package that provides a tool, for "not installed" messages.
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        "virt-builder" | "virt-sysprep" | "virt-customize" | "virt-index-validate" => {
            "guestfs-tools"
        }
        "guestfish" => "libguestfs-tools",
        "qemu-img" => "qemu-utils",
        "ssh" | "sftp" | "ssh-keyscan" | "ssh-keygen" => "openssh-client",
        "ansible" | "ansible-playbook" => "ansible",
        "virt-install" => "virtinst",
        "debootstrap" => "debootstrap",
        "tar" => "tar",
        "chroot" => "coreutils",
        _ => "unknown",
    }
}

/// Runs tools with a fixed extra environment (e.g. libguestfs' force_tcg).
#[derive(Debug, Clone, Default)]
pub struct Runner {
    pub env: Vec<(String, String)>,
    /// Forward the tool's stderr to ours while it runs (progress of long builds).
    pub show_output: bool,
    pub debug: bool,
}

/// How a cancellable run treats the tool's input and standard output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Io<'a> {
    /// Written to the tool's stdin (a script for guestfish: user values never pass
    /// through a shell).
    pub input: Option<&'a [u8]>,
    /// The tool's stdout is its log (debootstrap writes progress and errors there): it is
    /// shown and kept for the error message like stderr, not captured.
    pub stdout_is_log: bool,
}

/// The captured result of a successful run.
#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
}

impl Runner {
    /// Build a `Command` for `tool` with this runner's environment applied.
    pub fn command(&self, tool: &str, args: &[OsString]) -> Command {
        if self.debug {
            eprintln!("debug: run {}", render(tool, args));
        }
        let mut cmd = Command::new(tool);
        cmd.args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run `tool` to completion; stdout is captured, stderr is kept for the error message
    /// (and shown live when `show_output`).
    pub fn run(&self, tool: &str, args: &[OsString], context: &str) -> Result<Output> {
        self.run_watched(tool, args, context, &|| false, &|_| {})
    }

    /// Like [`Runner::run`], but the tool is stopped (SIGTERM) as soon as `cancel` returns
    /// true (checked every 50 ms while it runs); the result is then `Error::Interrupted`.
    /// Its end is noticed at once, not at the next check.
    pub fn run_cancellable(
        &self,
        tool: &str,
        args: &[OsString],
        context: &str,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<Output> {
        self.run_cancellable_io(tool, args, Io::default(), context, cancel)
    }

    /// Like [`Runner::run_cancellable`], with the tool's input and standard output as
    /// `io` says.
    pub fn run_cancellable_io(
        &self,
        tool: &str,
        args: &[OsString],
        io: Io,
        context: &str,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<Output> {
        self.run_full(tool, args, io, context, cancel, &|_| {})
    }

    /// Like [`Runner::run_cancellable`], and `watch` sees the tool's stdout as it comes
    /// (progress reports: qemu-img -p), not only at the end.
    pub fn run_watched(
        &self,
        tool: &str,
        args: &[OsString],
        context: &str,
        cancel: &(dyn Fn() -> bool + Sync),
        watch: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<Output> {
        self.run_full(tool, args, Io::default(), context, cancel, watch)
    }

    /// The one loop every run goes through: spawn, feed `io.input`, follow stdout and
    /// stderr, stop the tool when `cancel` says so, turn a failure into an error.
    fn run_full(
        &self,
        tool: &str,
        args: &[OsString],
        io: Io,
        context: &str,
        cancel: &(dyn Fn() -> bool + Sync),
        watch: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<Output> {
        let Io {
            input,
            stdout_is_log,
        } = io;
        let mut child = self
            .command(tool, args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(tool, e))?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (status, stdout, tail, cancelled) = std::thread::scope(|s| {
            if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
                // On a thread: a tool that writes before it reads all its input must not
                // dead-lock against us. Dropping the pipe is the tool's end of input.
                s.spawn(move || {
                    let _ = std::io::Write::write_all(&mut pipe, bytes);
                });
            }
            let out = s.spawn(move || {
                if stdout_is_log {
                    return (Vec::new(), self.follow_stderr(stdout));
                }
                (read_watched(stdout, watch), VecDeque::new())
            });
            let err = s.spawn(move || self.follow_stderr(stderr));
            // Wait for the exit without reaping it: until we reap, the PID stays ours, so
            // a kill can never hit another process.
            let (tx, rx) = std::sync::mpsc::channel();
            s.spawn(move || {
                loop {
                    // SAFETY: siginfo_t is plain data; waitid only writes into it.
                    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                    let rc = unsafe {
                        libc::waitid(
                            libc::P_PID,
                            pid as libc::id_t,
                            &mut info,
                            libc::WEXITED | libc::WNOWAIT,
                        )
                    };
                    if rc == 0
                        || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
                    {
                        break;
                    }
                }
                let _ = tx.send(());
            });
            let mut cancelled = false;
            let poll = std::time::Duration::from_millis(50);
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(poll) {
                if !cancelled && cancel() {
                    cancelled = true;
                    // SAFETY: the child is not reaped yet, so `pid` is still it.
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGTERM);
                    }
                }
            }
            let status = child.wait();
            let (stdout, mut tail) = out.join().unwrap_or_default();
            tail.extend(err.join().unwrap_or_default());
            while tail.len() > STDERR_TAIL_LINES {
                tail.pop_front();
            }
            (status, stdout, tail, cancelled)
        });
        let status = status.map_err(|e| spawn_error(tool, e))?;
        if cancelled {
            return Err(Error::Interrupted);
        }
        finish(tool, status, context, stdout, tail)
    }

    fn follow_stderr(&self, stderr: impl std::io::Read) -> VecDeque<String> {
        let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
        for line in BufReader::new(stderr).split(b'\n').map_while(|l| l.ok()) {
            let line = String::from_utf8_lossy(&line).into_owned();
            if self.show_output {
                eprintln!("{line}");
            }
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail
    }
}

/// Everything `reader` gives, each piece shown to `watch` as it arrives.
fn read_watched(mut reader: impl std::io::Read, watch: &dyn Fn(&[u8])) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                watch(&buf[..n]);
                all.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    all
}

/// The tool's output, or an error naming it, its exit code and the tail of its stderr.
fn finish(
    tool: &str,
    status: std::process::ExitStatus,
    context: &str,
    stdout: Vec<u8>,
    tail: VecDeque<String>,
) -> Result<Output> {
    if status.success() {
        return Ok(Output { stdout });
    }
    Err(Error::ToolFailed {
        tool: tool.to_string(),
        code: status.code().unwrap_or(-1),
        context: if context.is_empty() {
            String::new()
        } else {
            format!(" ({context})")
        },
        stderr_tail: tail.into_iter().collect::<Vec<_>>().join("\n"),
    })
}

/// A tool that cannot be started is almost always a missing package.
pub fn spawn_error(tool: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::ToolMissing {
            tool: tool.to_string(),
            package: package_of(tool).to_string(),
        }
    } else {
        Error::Other(format!("cannot run {tool}: {e}"))
    }
}

/// Render a command for logs, quoting arguments that need it. For display only.
pub fn render(tool: &str, args: &[OsString]) -> String {
    let mut s = tool.to_string();
    for a in args {
        let a = a.to_string_lossy();
        s.push(' ');
        if a.is_empty()
            || a.chars()
                .any(|c| c.is_whitespace() || "'\"$\\;&|<>()*?".contains(c))
        {
            s.push('\'');
            s.push_str(&a.replace('\'', "'\\''"));
            s.push('\'');
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// Convenience: turn a list of displayable items into an argument vector.
pub fn argv<I, S>(items: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    items.into_iter().map(|s| s.as_ref().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_its_package() {
        let err = Runner::default()
            .run("virt-builder-does-not-exist", &[], "")
            .unwrap_err();
        assert!(matches!(err, Error::ToolMissing { .. }), "{err}");
    }

    #[test]
    fn failure_names_tool_code_and_stderr_tail() {
        let args = argv(["-c", "echo first >&2; echo last >&2; exit 3"]);
        let err = Runner::default()
            .run("sh", &args, "building x")
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("sh failed with exit code 3 (building x)"),
            "{msg}"
        );
        assert!(msg.contains("last"), "{msg}");
    }

    #[test]
    fn captures_stdout() {
        let out = Runner::default()
            .run("printf", &argv(["%s", "a b"]), "")
            .unwrap();
        assert_eq!(out.stdout, b"a b");
    }

    #[test]
    fn cancellable_run_is_stopped_and_says_so() {
        let started = std::time::Instant::now();
        let fire_at = started + std::time::Duration::from_millis(200);
        let err = Runner::default()
            .run_cancellable("sleep", &argv(["30"]), "", &|| {
                std::time::Instant::now() > fire_at
            })
            .unwrap_err();
        assert!(matches!(err, Error::Interrupted), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn a_watched_run_shows_stdout_as_it_comes_and_still_returns_it() {
        let seen = std::sync::Mutex::new(Vec::new());
        // The first report is seen while the tool still runs: it waits (10 s at most) for
        // a file only the watcher creates, and says "done" only if it came.
        let dir = tempfile::tempdir().unwrap();
        let go = dir.path().join("go");
        let script = format!(
            "printf ' (1.00/100%%)\\r'; i=0; while [ ! -e '{0}' ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; [ -e '{0}' ] && printf done",
            go.display()
        );
        let out = Runner::default()
            .run_watched("sh", &argv(["-c", &script]), "", &|| false, &|b| {
                seen.lock().unwrap().extend_from_slice(b);
                let _ = std::fs::write(&go, b"");
            })
            .unwrap();
        assert_eq!(out.stdout, b" (1.00/100%)\rdone");
        assert_eq!(*seen.lock().unwrap(), out.stdout);
    }

    #[test]
    fn cancellable_run_reports_like_run() {
        let never = || false;
        let out = Runner::default()
            .run_cancellable("printf", &argv(["%s", "ok"]), "", &never)
            .unwrap();
        assert_eq!(out.stdout, b"ok");
        let err = Runner::default()
            .run_cancellable("sh", &argv(["-c", "echo why >&2; exit 4"]), "ctx", &never)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exit code 4 (ctx)") && err.contains("why"),
            "{err}"
        );
    }

    #[test]
    fn input_reaches_the_tools_stdin() {
        let never = || false;
        let out = Runner::default()
            .run_cancellable_io(
                "cat",
                &[],
                Io {
                    input: Some(b"script\n"),
                    ..Io::default()
                },
                "",
                &never,
            )
            .unwrap();
        assert_eq!(out.stdout, b"script\n");
    }

    #[test]
    fn a_tool_logging_to_stdout_has_its_errors_in_the_message() {
        let never = || false;
        let io = Io {
            stdout_is_log: true,
            ..Io::default()
        };
        let args = argv(["-c", "echo 'E: no such package' ; echo warn >&2; exit 1"]);
        let err = Runner::default()
            .run_cancellable_io("sh", &args, io, "", &never)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("E: no such package") && err.contains("warn"),
            "{err}"
        );
    }

    #[test]
    fn render_quotes_for_display() {
        assert_eq!(render("x", &argv(["a b", "c"])), "x 'a b' c");
    }
}
