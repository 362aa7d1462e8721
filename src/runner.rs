//! The one way external tools are run: an argument vector (never a shell string), the
//! command logged at debug level, and a failure turned into a [`ToolError`] that names the
//! tool, its exit code and the tail of its stderr.
//!
//! ```ignore
//! runner.tool("qemu-img").args(&args).context("cloning web1").cancel(&c).run()?;
//! ```

// unsafe: waitid without reaping, so the SIGTERM of a cancelled tool can only reach it; each block says why it is sound.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// How many stderr lines an error message keeps.
const STDERR_TAIL_LINES: usize = 15;

/// A tool that could not be run to success. Every variant names the tool.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{tool} is not installed (install the Debian package '{package}')")]
    Missing { tool: String, package: &'static str },

    #[error("{tool} failed with exit code {code}{}:\n{stderr_tail}", in_context(.context))]
    Failed {
        tool: String,
        code: i32,
        /// What the run was for ("cloning web1"); empty when it says nothing more.
        context: String,
        stderr_tail: String,
    },

    #[error("cannot run {tool}: {source}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },

    /// Stopped on request (Ctrl-C): the tool was sent SIGTERM.
    #[error("interrupted")]
    Interrupted,
}

fn in_context(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" ({context})")
    }
}

impl ToolError {
    /// A missing tool is a host that is not ready (4); Ctrl-C is 130; a failure is 1.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            ToolError::Missing { .. } => 4,
            ToolError::Interrupted => 130,
            ToolError::Failed { .. } | ToolError::Spawn { .. } => 1,
        }
    }

    /// The tool's exit code, when it ran and failed.
    pub(crate) fn code(&self) -> Option<i32> {
        match self {
            ToolError::Failed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The Debian package that provides a tool, for "not installed" messages.
pub(crate) fn package_of(tool: &str) -> &'static str {
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

/// The libvirt domain type guests run under. Tools that start their own appliance
/// (libguestfs) must follow it: without KVM they must not try it.
pub use crate::choice::VirtType;

/// Runs tools under one environment (libguestfs' TCG settings, set from the virt type).
#[derive(Debug, Clone, Default)]
pub struct Runner {
    env: Vec<(String, String)>,
    tcg: bool,
    /// Forward the tool's stderr to ours while it runs (progress of long builds).
    show_output: bool,
    debug: bool,
}

/// The captured result of a successful run.
#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
}

impl Runner {
    /// The runner for guests of `virt_type`: under TCG, libguestfs runs its appliance
    /// directly and without KVM (`LIBGUESTFS_BACKEND=direct`, `force_tcg`).
    pub(crate) fn new(virt_type: VirtType) -> Runner {
        let tcg = virt_type == VirtType::Qemu;
        let mut runner = Runner {
            tcg,
            ..Runner::default()
        };
        if tcg {
            runner = runner
                .with_env("LIBGUESTFS_BACKEND", "direct")
                .with_env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
        }
        runner
    }

    /// Show the tools' stderr while they run.
    pub(crate) fn show_output(mut self, on: bool) -> Runner {
        self.show_output = on;
        self
    }

    /// Log each command before it runs (`debug: run ...`).
    pub(crate) fn debug(mut self, on: bool) -> Runner {
        self.debug = on;
        self
    }

    /// This runner with one more variable in every tool's environment.
    pub(crate) fn with_env(mut self, key: &str, value: impl Into<String>) -> Runner {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Whether the tools' stderr is shown while they run (their callers' step messages
    /// follow the same choice).
    pub(crate) fn shows_output(&self) -> bool {
        self.show_output
    }

    /// Whether guests (and tools' appliances) run under TCG, without KVM.
    pub(crate) fn is_tcg(&self) -> bool {
        self.tcg
    }

    /// Start describing a run of `tool`; nothing runs until [`Invocation::run`].
    pub(crate) fn tool(&self, tool: impl Into<String>) -> Invocation<'_> {
        Invocation {
            runner: self,
            tool: tool.into(),
            args: Vec::new(),
            env: Vec::new(),
            context: String::new(),
            cancel: None,
            watch: None,
            input: None,
            stdout: Stdout::Capture,
        }
    }
}

/// Where a tool's standard output goes.
#[derive(Debug)]
enum Stdout {
    /// Captured and returned (and shown to the watcher as it comes).
    Capture,
    /// The tool's log (debootstrap writes progress and errors there): shown and kept for
    /// the error message like stderr.
    Log,
    /// Written to a file.
    File(std::fs::File),
    /// Stdout and stderr are the user's terminal (ansible-playbook's report).
    Terminal,
}

/// Sees a tool's stdout as it comes.
type Watch<'a> = &'a (dyn Fn(&[u8]) + Sync);
/// Says when to stop a tool.
type Cancel<'a> = &'a (dyn Fn() -> bool + Sync);

/// One run of one tool, described step by step and started by [`Invocation::run`].
pub struct Invocation<'a> {
    runner: &'a Runner,
    tool: String,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    context: String,
    cancel: Option<Cancel<'a>>,
    watch: Option<Watch<'a>>,
    input: Option<&'a [u8]>,
    stdout: Stdout,
}

impl std::fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&render(&self.tool, &self.args))
    }
}

impl<'a> Invocation<'a> {
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// One more variable in this run's environment.
    pub(crate) fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// What the run is for, named in its error ("cloning web1").
    pub(crate) fn context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }

    /// Stop the tool (SIGTERM) as soon as `cancel` returns true (checked every 50 ms);
    /// the result is then [`ToolError::Interrupted`].
    pub(crate) fn cancel(mut self, cancel: Cancel<'a>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// `watch` sees the tool's stdout as it comes (progress reports: qemu-img -p).
    pub(crate) fn watch(mut self, watch: Watch<'a>) -> Self {
        self.watch = Some(watch);
        self
    }

    /// Written to the tool's stdin (a script for guestfish: user values never pass
    /// through a shell).
    pub(crate) fn input(mut self, bytes: &'a [u8]) -> Self {
        self.input = Some(bytes);
        self
    }

    /// The tool's stdout is its log: shown and kept for the error message, not captured.
    pub(crate) fn stdout_is_log(mut self) -> Self {
        self.stdout = Stdout::Log;
        self
    }

    /// The tool's stdout is written to `file`.
    pub(crate) fn stdout_to(mut self, file: std::fs::File) -> Self {
        self.stdout = Stdout::File(file);
        self
    }

    /// The tool talks to the user's terminal directly (its failure then says "see its
    /// output above").
    pub(crate) fn on_terminal(mut self) -> Self {
        self.stdout = Stdout::Terminal;
        self
    }

    fn command(&self) -> Command {
        if self.runner.debug {
            crate::log::debug(format_args!("run {}", render(&self.tool, &self.args)));
        }
        let mut cmd = Command::new(&self.tool);
        cmd.args(&self.args);
        for (k, v) in self.runner.env.iter().chain(&self.env) {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run the tool to completion: its output, or an error naming it, its exit code and
    /// the tail of its stderr (shown live when the runner shows output).
    pub(crate) fn run(self) -> Result<Output, ToolError> {
        let mut cmd = self.command();
        let terminal = matches!(self.stdout, Stdout::Terminal);
        cmd.stdin(if self.input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let log = matches!(self.stdout, Stdout::Log);
        match self.stdout {
            Stdout::Capture | Stdout::Log => cmd.stdout(Stdio::piped()),
            Stdout::File(f) => cmd.stdout(f),
            Stdout::Terminal => cmd.stdout(Stdio::inherit()),
        };
        cmd.stderr(if terminal {
            Stdio::inherit()
        } else {
            Stdio::piped()
        });
        let child = cmd.spawn().map_err(|e| spawn_error(&self.tool, e))?;
        let never = || false;
        let quiet = |_: &[u8]| {};
        let run = Running {
            show_output: self.runner.show_output,
            input: self.input,
            stdout_is_log: log,
            cancel: self.cancel.unwrap_or(&never),
            watch: self.watch.unwrap_or(&quiet),
        };
        let (status, stdout, tail) = run.wait(child).map_err(|e| match e {
            Waited::Interrupted => ToolError::Interrupted,
            Waited::Io(e) => spawn_error(&self.tool, e),
        })?;
        if status.success() {
            return Ok(Output { stdout });
        }
        let stderr_tail = if terminal {
            "see its output above".to_string()
        } else {
            tail.into_iter().collect::<Vec<_>>().join("\n")
        };
        Err(ToolError::Failed {
            tool: self.tool,
            code: status.code().unwrap_or(-1),
            context: self.context,
            stderr_tail,
        })
    }
}

enum Waited {
    Interrupted,
    Io(std::io::Error),
}

/// A started tool and how to follow it.
struct Running<'a> {
    show_output: bool,
    input: Option<&'a [u8]>,
    stdout_is_log: bool,
    cancel: Cancel<'a>,
    watch: Watch<'a>,
}

type Finished = (std::process::ExitStatus, Vec<u8>, VecDeque<String>);

impl Running<'_> {
    /// The one loop every run goes through: feed the input, follow stdout and stderr,
    /// stop the tool when `cancel` says so.
    fn wait(&self, mut child: std::process::Child) -> Result<Finished, Waited> {
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (status, stdout, tail, cancelled) = std::thread::scope(|s| {
            if let (Some(mut pipe), Some(bytes)) = (stdin, self.input) {
                // On a thread: a tool that writes before it reads all its input must not
                // dead-lock against us. Dropping the pipe is the tool's end of input.
                s.spawn(move || {
                    let _ = std::io::Write::write_all(&mut pipe, bytes);
                });
            }
            let out = s.spawn(move || match stdout {
                None => (Vec::new(), VecDeque::new()),
                Some(o) if self.stdout_is_log => (Vec::new(), self.follow_stderr(o)),
                Some(o) => (read_watched(o, self.watch), VecDeque::new()),
            });
            let err = s.spawn(move || stderr.map(|e| self.follow_stderr(e)).unwrap_or_default());
            let cancelled = self.wait_for_exit(s, pid);
            let status = child.wait();
            let (stdout, mut tail) = out.join().unwrap_or_default();
            tail.extend(err.join().unwrap_or_default());
            while tail.len() > STDERR_TAIL_LINES {
                tail.pop_front();
            }
            (status, stdout, tail, cancelled)
        });
        let status = status.map_err(Waited::Io)?;
        if cancelled {
            return Err(Waited::Interrupted);
        }
        Ok((status, stdout, tail))
    }

    /// Wait until the tool `pid` has exited, stopping it if `cancel` fires first; whether
    /// it was stopped. The exit is noticed at once, not at the next check.
    fn wait_for_exit<'s>(&self, s: &'s std::thread::Scope<'s, '_>, pid: u32) -> bool {
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
                if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
            let _ = tx.send(());
        });
        let mut cancelled = false;
        let poll = std::time::Duration::from_millis(50);
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(poll) {
            if !cancelled && (self.cancel)() {
                cancelled = true;
                // SAFETY: the child is not reaped yet, so `pid` is still it.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
        }
        cancelled
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

/// A tool that cannot be started is almost always a missing package.
pub(crate) fn spawn_error(tool: &str, e: std::io::Error) -> ToolError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ToolError::Missing {
            tool: tool.to_string(),
            package: package_of(tool),
        }
    } else {
        ToolError::Spawn {
            tool: tool.to_string(),
            source: e,
        }
    }
}

/// Render a command for logs, quoting arguments that need it. For display only.
pub(crate) fn render(tool: &str, args: &[OsString]) -> String {
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
pub(crate) fn argv<I, S>(items: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    items.into_iter().map(|s| s.as_ref().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Invocation<'static> {
        static RUNNER: std::sync::OnceLock<Runner> = std::sync::OnceLock::new();
        RUNNER
            .get_or_init(Runner::default)
            .tool("sh")
            .args(["-c", script])
    }

    #[test]
    fn missing_tool_names_its_package_and_is_a_host_problem() {
        let err = Runner::default()
            .tool("virt-builder-does-not-exist")
            .run()
            .unwrap_err();
        assert!(matches!(err, ToolError::Missing { .. }), "{err}");
        assert_eq!(err.exit_code(), 4);
    }

    #[test]
    fn failure_names_tool_code_and_stderr_tail() {
        let err = sh("echo first >&2; echo last >&2; exit 3")
            .context("building x")
            .run()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("sh failed with exit code 3 (building x)"),
            "{msg}"
        );
        assert!(msg.contains("last"), "{msg}");
        assert_eq!((err.code(), err.exit_code()), (Some(3), 1));
    }

    #[test]
    fn without_context_the_message_has_no_parentheses() {
        let msg = sh("exit 2").run().unwrap_err().to_string();
        assert!(msg.starts_with("sh failed with exit code 2:\n"), "{msg}");
    }

    #[test]
    fn captures_stdout() {
        let out = Runner::default()
            .tool("printf")
            .args(["%s", "a b"])
            .run()
            .unwrap();
        assert_eq!(out.stdout, b"a b");
    }

    #[test]
    fn cancelled_run_is_stopped_and_says_so() {
        let started = std::time::Instant::now();
        let fire_at = started + std::time::Duration::from_millis(200);
        let cancel = || std::time::Instant::now() > fire_at;
        let err = Runner::default()
            .tool("sleep")
            .arg("30")
            .cancel(&cancel)
            .run()
            .unwrap_err();
        assert!(matches!(err, ToolError::Interrupted), "{err}");
        assert_eq!(err.exit_code(), 130);
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
        let watch = |b: &[u8]| {
            seen.lock().unwrap().extend_from_slice(b);
            let _ = std::fs::write(&go, b"");
        };
        let out = sh(&script).watch(&watch).run().unwrap();
        assert_eq!(out.stdout, b" (1.00/100%)\rdone");
        assert_eq!(*seen.lock().unwrap(), out.stdout);
    }

    #[test]
    fn input_reaches_the_tools_stdin() {
        let out = Runner::default()
            .tool("cat")
            .input(b"script\n")
            .run()
            .unwrap();
        assert_eq!(out.stdout, b"script\n");
    }

    #[test]
    fn a_tool_logging_to_stdout_has_its_errors_in_the_message() {
        let err = sh("echo 'E: no such package' ; echo warn >&2; exit 1")
            .stdout_is_log()
            .run()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("E: no such package") && err.contains("warn"),
            "{err}"
        );
    }

    #[test]
    fn stdout_can_go_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = std::fs::File::create(&path).unwrap();
        sh("echo into-file").stdout_to(file).run().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"into-file\n");
    }

    #[test]
    fn a_tool_on_the_terminal_points_at_its_output() {
        let err = sh("exit 5")
            .on_terminal()
            .context("playbook p on web1")
            .run()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "sh failed with exit code 5 (playbook p on web1):\nsee its output above"
        );
    }

    #[test]
    fn qemu_virt_type_runs_libguestfs_under_tcg() {
        let tcg = Runner::new(VirtType::Qemu);
        assert!(tcg.is_tcg());
        let out = tcg
            .tool("sh")
            .args([
                "-c",
                "printf %s/%s \"$LIBGUESTFS_BACKEND\" \"$LIBGUESTFS_BACKEND_SETTINGS\"",
            ])
            .run()
            .unwrap();
        assert_eq!(out.stdout, b"direct/force_tcg");
        let kvm = Runner::new(VirtType::Kvm);
        assert!(!kvm.is_tcg());
        let out = kvm
            .tool("sh")
            .args(["-c", "printf %s \"${LIBGUESTFS_BACKEND_SETTINGS-unset}\""])
            .env("EXTRA", "1")
            .run()
            .unwrap();
        assert_eq!(out.stdout, b"unset");
    }

    #[test]
    fn render_quotes_for_display() {
        assert_eq!(render("x", &argv(["a b", "c"])), "x 'a b' c");
    }
}
