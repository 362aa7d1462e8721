//! Status lines (issue 13): on a terminal, a line per instance or template says what it is
//! at and for how long; off a terminal, and with --quiet, there is none. The terminal is a
//! pseudo-terminal made by util-linux's `script`, which runs the command on it and copies
//! what it shows to its own stdout.
//!
//! In this tier the guest never gets an address: a create waits out its 1 s address
//! timeout, the phase a user watches on the line.

use crate::harness::{path_str, Bin, TestEnv};

/// `virt-up ARGS` on a terminal (`redirect`: a shell redirection added to it): what the
/// terminal showed, escape sequences and carriage returns included.
fn on_terminal(env: &TestEnv, args: &[&str], redirect: &str) -> String {
    bin_on_terminal(env, Bin::VirtUp, args, redirect)
}

fn bin_on_terminal(env: &TestEnv, bin: Bin, args: &[&str], redirect: &str) -> String {
    let mut line = quote(bin.program());
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line.push_str(redirect);
    let out = env
        .command_of("script", &["-qec", &line, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .expect("script (util-linux) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The text of the status lines drawn for `name`: `name  phase` as it appeared.
fn drew(screen: &str, name: &str, phase: &str) -> bool {
    screen.contains(&format!("{name}  {phase}"))
}

#[test]
fn on_a_terminal_each_instance_and_template_has_a_line_with_its_phase_and_seconds() {
    let mut env = TestEnv::new();
    // A virt-builder that reports a stage as the real one does (time-stamped, on stdout)
    // and works at it for a while (a few redraws of the line), then is the fake one.
    let dir = env.path("wrap");
    env.write(
        "wrap/virt-builder",
        "#!/bin/sh\necho '[   2.5] Installing packages: nginx'\nsleep 0.5\nPATH=${PATH#*:} exec virt-builder \"$@\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.join("virt-builder"), mode).unwrap();
    env.prepend_path(&dir);
    let screen = on_terminal(&env, &["web1", "--template", "deb"], "");
    // The template's build with virt-builder's stage, then the instance's wait for its
    // address, with seconds.
    assert!(
        drew(&screen, "deb", "build: Installing packages: nginx"),
        "{screen:?}"
    );
    assert!(drew(&screen, "web1", "address"), "{screen:?}");
    assert!(
        regex_like_seconds(&screen, "web1  address  "),
        "no seconds after the phase: {screen:?}"
    );
    // The messages a user reads are there too, each on its own line.
    assert!(
        screen.contains("web1: timed out after 1 s in phase 'address'"),
        "{screen:?}"
    );
}

/// `prefix` followed by seconds, `0.4s`.
fn regex_like_seconds(screen: &str, prefix: &str) -> bool {
    screen.match_indices(prefix).any(|(i, _)| {
        let rest = &screen[i + prefix.len()..];
        let digits: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        digits.contains('.') && rest[digits.len()..].starts_with('s')
    })
}

#[test]
fn with_stderr_not_a_terminal_there_is_no_line() {
    let env = TestEnv::new();
    // A pipe (the harness's).
    let run = env
        .run(&["web1", "--template", "deb"])
        .fails(5, "in phase 'address'");
    assert!(!drew(&run.stderr, "web1", "address"), "{}", run.stderr);
    assert!(!drew(&run.stderr, "deb", "build"), "{}", run.stderr);
    // A file, with stdout still the terminal.
    let err = env.path("stderr.txt");
    let redirect = format!(" 2>{}", quote(path_str(&err)));
    let screen = on_terminal(&env, &["web1", "--template", "deb"], &redirect);
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(stderr.contains("in phase 'address'"), "{stderr}");
    for text in [&screen, &stderr] {
        assert!(!drew(text, "web1", "address"), "{text:?}");
    }
}

#[test]
fn quiet_and_debug_draw_no_line_on_a_terminal() {
    let env = TestEnv::new();
    let screen = on_terminal(&env, &["web1", "--template", "deb", "--quiet"], "");
    assert!(screen.contains("in phase 'address'"), "{screen:?}");
    assert!(!drew(&screen, "web1", "address"), "{screen:?}");
    assert!(!drew(&screen, "deb", "build"), "{screen:?}");
    // --debug says each phase when it ends instead (lines would cut those up).
    let env = TestEnv::new();
    let screen = on_terminal(&env, &["web1", "--template", "deb", "--debug"], "");
    assert!(screen.contains("web1: phase boot took"), "{screen:?}");
    assert!(!drew(&screen, "web1", "address"), "{screen:?}");
}

const SPEC: &str = "spec:\n  import:\n    virt-builder:\n      image: debian-12\n  steps:\n    - hostname: h1\n    - copy: {dest: /etc/motd, content: hi}\n  export:\n    qcow2:\n      path: out/t.qcow2\n      create_dir: true\n";

#[test]
fn virt_maker_on_a_terminal_has_a_line_with_the_step_it_is_at_and_none_with_v() {
    let env = TestEnv::new();
    env.write("t/t.yml", SPEC);
    let file = env.path("t/t.yml");
    let args = ["build", "-f", path_str(&file)];
    let screen = bin_on_terminal(&env, Bin::VirtMaker, &args, "");
    let name = path_str(&file);
    assert!(
        drew(&screen, name, "1/4 import (virt-builder)"),
        "{screen:?}"
    );
    assert!(
        drew(&screen, name, "2/4 steps 1..2 (hostname, copy)"),
        "{screen:?}"
    );
    // Its step lines (stdout) are printed whole, not cut up by the status line.
    assert!(screen.contains(&format!("[HOSTNA] {name}: ")), "{screen:?}");
    assert!(env.path("t/out/t.qcow2").is_file());
    // -v shows the tools' own output instead.
    std::fs::write(&file, SPEC.replace("h1", "h2")).unwrap();
    let verbose = ["build", "-v", "-f", path_str(&file)];
    let screen = bin_on_terminal(&env, Bin::VirtMaker, &verbose, "");
    assert!(screen.contains("[HOSTNA] "), "{screen:?}");
    assert!(!drew(&screen, name, "2/4"), "{screen:?}");
}
