//! virt-up's command line as the original tool's users use it: `-n`, `--delete --all` and
//! its question, flags that do nothing refused, and existing instances started again; and
//! the daily verbs beyond it (`--start`, `--stop`, `--info`, `--list NAME`, `-q`, `--json`).

// unsafe: libc's pseudo-terminal calls, to answer --delete --all's question on a terminal.
#![allow(unsafe_code)]

use crate::harness::TestEnv;
use crate::run::Run;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

const MAC: &str = "52:54:00:00:00:77";
const HOST_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyOfWeb1ForTheTestsOnly0000";

/// A made instance's record (and its disk) as virt-up writes it; with `host_key` also its
/// known_hosts entry, which a start checks the guest's SSH server against.
fn write_instance(env: &TestEnv, name: &str, host_key: bool) {
    let record = serde_json::json!({
        "name": name, "template": "deb", "created": "2026-01-01T00:00:00Z",
        "phase": "ready", "pid": 1, "os_version": "x", "hostname": name, "domain": name,
        "disk": env.path(&format!("pool/{name}.qcow2")), "format": "qcow2", "memory": 512,
        "vcpus": 1, "graphics": "none", "root": {"username": "root", "ssh_identity": "/k"},
        "user": {"username": "virt", "ssh_identity": "/k"}, "address-source": "arp",
        "ssh_options": {}, "address": "192.168.122.77", "mac": MAC,
        "uri": env.uri(), "identity": "firstboot",
        "console_log": env.path(&format!("data/console/{name}.log")),
        "inventory": true, "cloned": true, "from": env.path("pool/TEMPLATE-deb.qcow2")
    });
    env.write(&format!("data/instance/{name}.json"), &record.to_string());
    env.write(&format!("pool/{name}.qcow2"), "disk");
    if host_key {
        env.write("data/known_hosts", &format!("{name} {HOST_KEY}\n"));
    }
}

/// Add a domain to the test driver's fixture: defined in every process, stopped
/// (`running` false; the test driver's run state 5, shut off) or running.
fn define_domain(env: &TestEnv, name: &str, running: bool) {
    let state = if running {
        ""
    } else {
        "<test:runstate>5</test:runstate>"
    };
    let domain = format!(
        "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\
         <name>{name}</name><memory>524288</memory><os><type>hvm</type></os><devices>\
         <interface type='network'><mac address='{MAC}'/><source network='default'/></interface>\
         </devices>{state}</domain>"
    );
    let node = env
        .read("node.xml")
        .replacen("<node>\n", &format!("<node>\n{domain}\n"), 1);
    env.write("node.xml", &node);
}

fn state_of(env: &TestEnv, name: &str) -> String {
    let out = env.run(&["--list", "--all", "--json"]).ok().stdout;
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Run virt-up with stdin on a pseudo-terminal, typing `answer` once it has asked.
fn run_on_terminal(env: &TestEnv, args: &[&str], answer: &str) -> Run {
    // SAFETY: plain libc calls on descriptors this function owns.
    let (master, slave) = unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let name = libc::ptsname(master);
        assert!(!name.is_null());
        let slave = libc::open(name, libc::O_RDWR | libc::O_NOCTTY);
        assert!(slave >= 0, "open pts");
        (
            std::fs::File::from(OwnedFd::from_raw_fd(master)),
            OwnedFd::from_raw_fd(slave),
        )
    };
    let mut child = env
        .command(args)
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // Wait for the question, then answer it on the terminal.
    let mut asked = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&asked).contains("[y/n] > ") {
        match stderr.read(&mut byte).unwrap() {
            0 => break,
            _ => asked.push(byte[0]),
        }
    }
    let mut master = master;
    master.write_all(answer.as_bytes()).unwrap();
    let mut rest = Vec::new();
    stderr.read_to_end(&mut rest).unwrap();
    asked.extend(rest);
    let mut out = child.wait_with_output().unwrap();
    out.stderr = asked;
    Run::from(out)
}

/// A built template `deb` and an instance web1 of it.
fn template_and_instance() -> TestEnv {
    let env = TestEnv::new();
    env.run(&["deb", "--no-clone"]).ok();
    write_instance(&env, "web1", true);
    env
}

#[test]
fn dash_n_is_the_short_form_of_name() {
    let env = TestEnv::new();
    write_instance(&env, "web1", true);
    write_instance(&env, "web2", true);
    env.run(&["-n", "web1", "-n", "web2", "--delete"]).ok();
    assert!(env.ls("data/instance").is_empty());
    assert!(env.ls("pool").is_empty());
}

#[test]
fn delete_all_without_a_terminal_needs_yes_and_deletes_nothing_without_it() {
    let env = template_and_instance();
    let run = env
        .run(&["--delete", "--all"])
        .fails(2, "no terminal to ask on");
    assert!(
        run.stderr.contains("web1, template deb") && run.stderr.contains("--yes"),
        "{}",
        run.stderr
    );
    assert_eq!(env.ls("pool"), ["TEMPLATE-deb.qcow2", "web1.qcow2"]);
    assert_eq!(
        env.ls("data/instance"),
        [
            format!("{}.json", env.template_stem("deb")),
            "web1.json".into()
        ]
    );

    let run = env.run(&["--delete", "--all", "--yes"]).ok();
    let deleted_web1 = run.stderr.find("deleted web1").unwrap();
    let deleted_template = run.stderr.find("deleted template deb").unwrap();
    assert!(deleted_web1 < deleted_template, "{}", run.stderr);
    assert!(env.ls("pool").is_empty(), "{:?}", env.ls("pool"));
    assert!(env.ls("data/instance").is_empty());
    assert!(!env.read("data/inventory.yaml").contains("web1"));

    let run = env.run(&["--delete", "--all"]).ok();
    assert!(run.stderr.contains("nothing to delete"), "{}", run.stderr);
}

#[test]
fn delete_all_asks_on_the_terminal() {
    let env = template_and_instance();
    let run = run_on_terminal(&env, &["--delete", "--all"], "n\n").ok();
    assert!(
        run.stderr
            .contains("About to delete: web1, template deb\nContinue? [y/n] > "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing deleted"), "{}", run.stderr);
    assert_eq!(env.ls("pool"), ["TEMPLATE-deb.qcow2", "web1.qcow2"]);

    let run = run_on_terminal(&env, &["--delete", "--all"], "y\n").ok();
    assert!(
        run.stderr.contains("deleted template deb"),
        "{}",
        run.stderr
    );
    assert!(env.ls("pool").is_empty(), "{:?}", env.ls("pool"));
    assert!(env.ls("data/instance").is_empty());
}

#[test]
fn a_template_by_name_is_still_deleted_with_delete_all() {
    let env = TestEnv::new();
    env.run(&["deb", "--no-clone"]).ok();
    env.run(&["deb", "--delete", "--all"]).ok();
    assert!(env.ls("pool").is_empty());
}

#[test]
fn a_flag_that_would_do_nothing_is_refused_naming_where_it_applies() {
    let env = TestEnv::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["web1", "--template", "deb", "--yes"],
            "--yes does not apply to creating instances (it applies to --delete)",
        ),
        (
            &["web1", "--login", "--memory", "1024"],
            "--memory does not apply to --login (it applies to creating instances)",
        ),
        (
            &["deb", "--no-clone", "--size", "9G"],
            "--size does not apply to --no-clone",
        ),
        (
            &["deb", "--no-clone", "--host", "lab2"],
            "--host does not apply to --no-clone",
        ),
        (
            &["web1", "--template", "deb", "--force"],
            "--force does not apply to creating instances (it applies to --init, --no-clone)",
        ),
        (&["--list", "--force"], "--force does not apply to --list"),
        (
            &["web1", "--login", "--json"],
            "--json does not apply to --login",
        ),
        (
            &["web1", "--template", "deb", "--all"],
            "--all does not apply",
        ),
        (
            &["web1", "--login", "--no-clone"],
            "--no-clone does not apply to --login",
        ),
        (&["web1", "--show-paths"], "--show-paths takes no <name>"),
        (
            &["web1", "--playbook", "p", "--template", "deb"],
            "--template does not apply to --playbook",
        ),
        (
            &["web1", "--template", "deb", "--no-clone"],
            "--no-clone builds one template",
        ),
    ];
    for (args, message) in cases {
        env.run(args).fails(2, message);
    }
    assert_eq!(env.tool_runs("virt-builder"), 0);
    assert!(env.ls("data/instance").is_empty());
}

#[test]
fn no_clone_takes_the_template_as_name_or_as_template_option() {
    let env = TestEnv::new();
    env.run(&["--template", "deb", "--no-clone"]).ok();
    assert_eq!(env.ls("pool"), ["TEMPLATE-deb.qcow2"]);
    env.run(&["-n", "deb", "--template", "deb", "--no-clone"])
        .ok();
    assert_eq!(env.tool_runs("virt-builder"), 1);
}

#[test]
fn creating_a_stopped_instance_starts_it_and_waits_for_it_keeping_it_when_that_fails() {
    let env = TestEnv::new();
    write_instance(&env, "web1", true);
    define_domain(&env, "web1", false);
    assert_eq!(state_of(&env, "web1"), "shut off");
    // The test driver's guest never answers: the start is seen reaching the readiness
    // wait (its address phase), where a new instance's boot would be.
    let run = env
        .run(&["web1", "--template", "deb", "--memory", "2048"])
        .fails(5, "web1: timed out after 1 s in phase 'address'");
    assert!(run.stderr.contains("starting web1"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("web1 already made: --memory not applied"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("already exists"), "{}", run.stderr);
    // Nothing was built or removed: the instance is kept for the user to look at.
    assert_eq!(env.tool_runs("virt-builder"), 0);
    assert_eq!(env.ls("pool"), ["web1.qcow2"]);
    assert_eq!(env.ls("data/instance"), ["web1.json"]);
    assert!(env.read("data/known_hosts").contains("web1 ssh-ed25519"));
    // Without --template: the instance's own template's settings (its timeouts).
    env.run(&["web1"]).fails(5, "in phase 'address'");
}

#[test]
fn creating_a_running_instance_waits_for_it_without_starting_it() {
    let env = TestEnv::new();
    write_instance(&env, "web1", true);
    define_domain(&env, "web1", true);
    let run = env
        .run(&["web1", "--template", "deb"])
        .fails(5, "web1: timed out after 1 s in phase 'address'");
    assert!(!run.stderr.contains("starting web1"), "{}", run.stderr);
}

#[test]
fn an_existing_instance_of_another_template_or_without_a_host_key_is_refused() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/other.cfg",
        "[other]\nos-version = debian-12-local\n",
    );
    write_instance(&env, "web1", false);
    define_domain(&env, "web1", false);
    let run = env
        .run(&["web1", "--template", "other"])
        .fails(3, "instance 'web1' already exists");
    assert!(
        run.stderr
            .contains("web1 was made from template 'deb', not 'other'"),
        "{}",
        run.stderr
    );
    env.run(&["web1", "--template", "deb"])
        .fails(3, "web1: no host key recorded in");
    assert_eq!(state_of(&env, "web1"), "shut off");
}

#[test]
fn login_and_playbook_start_a_stopped_instance_first() {
    let env = TestEnv::new();
    write_instance(&env, "web1", true);
    define_domain(&env, "web1", false);
    let run = env
        .run(&["web1", "--login"])
        .fails(5, "web1: timed out after 1 s in phase 'address'");
    assert!(run.stderr.contains("starting web1"), "{}", run.stderr);
    assert!(!run.stderr.contains("virsh"), "{}", run.stderr);
    env.write("config/playbooks/hello.yml", "- hosts: all\n  tasks: []\n");
    let run = env
        .run(&["web1", "--playbook", "hello"])
        .fails(5, "in phase 'address'");
    assert!(run.stderr.contains("starting web1"), "{}", run.stderr);
    assert_eq!(env.ls("data/instance"), ["web1.json"]);
}

#[test]
fn cp_args_is_accepted_with_a_warning_that_it_is_ignored() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = debian-12-local\nimage-format = raw\ncp-args = --sparse=always\n",
    );
    let run = env.run(&["--show-templates"]).ok();
    assert!(
        run.stderr
            .contains("test.cfg:4: 'cp-args' in [deb] is ignored:")
            && run.stderr.contains("libvirt's storage API")
            && !run.stderr.contains("unknown key"),
        "{}",
        run.stderr
    );
}

/// The inventory has the original's layout: `all.children.virt_up_managed.hosts` for the
/// instances and `all.children.virt_up_templates.hosts` for templates, the latter there
/// even when empty (a template is a host of it only while it runs, for its
/// template-playbook: a built template is powered off and has no address).
#[test]
fn inventory_has_the_managed_and_templates_groups() {
    let env = template_and_instance();
    write_instance(&env, "web2", false);
    env.run(&["web2", "--delete"]).ok();
    let text = env.read("data/inventory.yaml");
    let v: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    let children = &v["all"]["children"];
    let web1 = &children["virt_up_managed"]["hosts"]["web1"];
    assert_eq!(
        web1["ansible_host"].as_str(),
        Some("192.168.122.77"),
        "{text}"
    );
    assert_eq!(web1["ansible_user"].as_str(), Some("virt"), "{text}");
    assert!(children["virt_up_managed"]["hosts"].get("web2").is_none());
    assert_eq!(
        children["virt_up_templates"]["hosts"],
        yaml_serde::Value::Mapping(Default::default()),
        "{text}"
    );
    assert_eq!(env.mode("data/inventory.yaml"), 0o600);
}

/// The rows of a `--json` output that is an array.
fn json_rows(run: &Run) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}):\n{}", run.stdout);
    });
    v.as_array().expect("an array").clone()
}

/// The test driver keeps a domain's state in one process only (each run reads the fixture
/// again), so each command's own output is what shows the state it left.
#[test]
fn stop_and_start_change_the_state_and_bad_names_change_nothing() {
    let env = template_and_instance();
    write_instance(&env, "web2", false);
    let known = env.read("data/known_hosts");
    env.write("data/known_hosts", &format!("{known}web2 {HOST_KEY}\n"));
    define_domain(&env, "web1", true);
    define_domain(&env, "web2", false);
    // A name that is not an instance: nothing is stopped.
    let run = env.run(&["web1", "nosuch", "--stop"]).fails(3, "nosuch");
    assert!(!run.stderr.contains("stopped"), "{}", run.stderr);
    env.run(&["--stop"])
        .fails(2, "--stop needs the <name> of an instance");

    let run = env.run(&["web1", "web2", "--stop", "--json"]).ok();
    assert!(run.stderr.contains("web1 is stopped"), "{}", run.stderr);
    assert!(run.stderr.contains("web2 is not running"), "{}", run.stderr);
    let rows = json_rows(&run);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web1", "web2"], "in the order given");
    assert!(rows.iter().all(|r| r["state"] == "shut off"), "{rows:?}");

    // Started, then waited for: the test driver's guest never gets an address, so the
    // wait times out (the instance is kept).
    let run = env.run(&["web2", "--start"]).fails(5, "web2: timed out");
    assert!(run.stderr.contains("starting web2"), "{}", run.stderr);
    // A template is not an instance.
    env.run(&["deb", "--restart"]).fails(3, "deb");
}

#[test]
fn list_filters_by_name_q_prints_names_and_info_shows_one_instance() {
    let env = TestEnv::new();
    write_instance(&env, "web1", true);
    write_instance(&env, "web2", false);
    let rows = json_rows(&env.run(&["--list", "web2", "--json"]).ok());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "web2");
    assert_eq!(env.run(&["--list", "-q"]).ok().stdout, "web1\nweb2\n");
    env.run(&["--list", "nosuch"]).fails(3, "nosuch");
    let table = env.run(&["--list"]).ok().stdout;
    let header = table.lines().next().unwrap();
    for column in ["NAME", "STATE", "ADDRESS", "VCPUS", "MEMORY", "USER"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(table.contains("512M") && table.contains("virt"), "{table}");

    // web1 has the DHCP reservation a fixed-address create makes.
    let file = "data/instance/web1.json";
    let mut record: serde_json::Value = serde_json::from_str(&env.read(file)).unwrap();
    record["reservation"] = serde_json::json!({"network": "default", "address": "192.168.122.77"});
    env.write(file, &record.to_string());
    let info = env.run(&["web1", "--info", "--json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["reservation"]["address"], "192.168.122.77", "{info}");
    assert_eq!(v["name"], "web1");
    assert_eq!(v["address"], "192.168.122.77");
    assert_eq!(v["mac"], MAC);
    assert_eq!(v["key"], "/k");
    assert_eq!(v["host"], env.uri().as_str());
    assert_eq!(v["state"], "missing", "no domain in the test driver");
    assert!(v["disk_used"].is_u64(), "{info}");
    let text = env.run(&["web1", "--info"]).ok().stdout;
    assert!(
        text.contains("address") && text.contains("192.168.122.77"),
        "{text}"
    );
    assert!(
        text.contains("reservation  192.168.122.77 on network default"),
        "{text}"
    );
    env.run(&["nosuch", "--info"]).fails(3, "nosuch");
    env.run(&["web1", "web2", "--info"])
        .fails(2, "exactly one <name>");
}

#[test]
fn delete_json_gives_the_deleted_records() {
    let env = template_and_instance();
    let rows = json_rows(&env.run(&["web1", "--delete", "--json"]).ok());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "web1");
    assert_eq!(rows[0]["state"], "deleted");
    assert_eq!(rows[0]["address"], "192.168.122.77");
}

/// A playbook for an instance left out of the inventory (`--no-inventory`) runs on a
/// one-host inventory of its own: the shared one has no such host for `--limit`.
#[test]
fn a_playbook_reaches_an_instance_that_is_not_in_the_inventory() {
    let mut env = TestEnv::new();
    write_instance(&env, "web1", true);
    let path = env.path("data/instance/web1.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"inventory\":true", "\"inventory\":false"),
    )
    .unwrap();
    define_domain(&env, "web1", true);
    env.write("config/playbooks/hello.yml", "- hosts: all\n  tasks: []\n");
    // ansible-playbook: keeps the inventory it was given and its arguments.
    env.write(
        "bin/ansible-playbook",
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$FAKE_LOG/ansible-playbook.args\"\ncp \"$2\" \"$FAKE_LOG/inventory.yaml\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    let fake = env.path("bin/ansible-playbook");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = env.path("bin");
    env.prepend_path(&bin);
    env.run(&["web1", "--playbook", "hello"]).ok();
    let args = env.read("log/ansible-playbook.args");
    assert!(args.contains("--limit\nweb1\n"), "{args}");
    let given = env.read("log/inventory.yaml");
    let v: yaml_serde::Value = yaml_serde::from_str(&given).unwrap();
    let web1 = &v["all"]["children"]["virt_up_managed"]["hosts"]["web1"];
    assert_eq!(
        web1["ansible_host"].as_str(),
        Some("192.168.122.77"),
        "{given}"
    );
    assert!(!args.contains(&env.path("data/inventory.yaml").display().to_string()));
    assert!(!env.read("data/inventory.yaml").contains("web1"));
}

/// What bash offers for the words `words` (the last one being completed) with virt-up's
/// committed completion.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = format!(
        "source '{COMPLETIONS}/virt-up.bash'\nCOMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1))\n\
         _virt__up virt-up \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD - 1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    );
    let mut args = vec!["-c", script.as_str(), "bash"];
    args.extend_from_slice(words);
    shell_lines("bash", &args)
}

/// Tab after `virt-up w` offers the instances, after `--template d` the templates, from
/// the user's records and templates.d at that moment; `--show-templates -q` is the list.
#[test]
fn bash_completes_instance_and_template_names() {
    let env = TestEnv::new();
    assert_eq!(env.run(&["--show-templates", "-q"]).ok().stdout, "deb\n");
    assert_eq!(bash_completes(&["virt-up", "w"]), ["web1", "web2"]);
    assert_eq!(
        bash_completes(&["virt-up", "db1", "--login", "-n", "d"]),
        ["db1"]
    );
    assert_eq!(
        bash_completes(&["virt-up", "web3", "--template", "d"]),
        ["deb"]
    );
    assert_eq!(bash_completes(&["virt-up", "web1", "--lo"]), ["--login"]);
}

/// Runs `shell` with `args` (bash, or zsh or fish, which `make host` installs) with the
/// virt-up under test first on PATH and the instances web1, web2 and db1; its output lines.
fn shell_lines(shell: &str, args: &[&str]) -> Vec<String> {
    let mut env = TestEnv::new();
    for name in ["web1", "web2", "db1"] {
        write_instance(&env, name, false);
    }
    let bin = std::path::Path::new(crate::harness::Bin::VirtUp.program());
    env.prepend_path(bin.parent().unwrap());
    let out = env
        .command_of(shell, args)
        .output()
        .unwrap_or_else(|e| panic!("{shell} (installed by make host): {e}"));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

const COMPLETIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/completions");

/// fish's own completion engine (`complete -C`) on the committed script.
#[test]
fn fish_completes_instance_and_template_names() {
    let script = format!(
        "source {COMPLETIONS}/virt-up.fish; complete -C 'virt-up w'; \
         complete -C 'virt-up web3 --template d'"
    );
    let lines = shell_lines("fish", &["-c", &script]);
    let words: Vec<&str> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(words, ["web1", "web2", "deb"], "{lines:?}");
}

/// zsh's functions the completion names for instances and templates (compadd stands in
/// for the completion system, which needs a terminal).
#[test]
fn zsh_completes_instance_and_template_names() {
    let script = format!(
        "autoload -U compinit && compinit -u -D; source {COMPLETIONS}/virt-up.zsh; \
         compadd() {{ shift; print -l -- \"$@\"; }}; \
         _virt_up_instances; _virt_up_templates"
    );
    let lines = shell_lines("zsh", &["-c", &script]);
    assert_eq!(lines, ["db1", "web1", "web2", "deb"]);
}

/// Every snapshot verb: a bad snapshot name is refused before libvirt sees it, an
/// unknown instance, a template or an unknown snapshot is exit 3, and none changes the
/// instance (it stays running, its record as it was).
#[test]
fn snapshot_verbs_refuse_bad_input_and_change_nothing() {
    let env = template_and_instance();
    define_domain(&env, "web1", true);
    let record = env.read("data/instance/web1.json");
    for verb in ["--snapshot", "--revert", "--delete-snapshot"] {
        env.run(&["web1", verb, "a b"])
            .fails(2, "not allowed in a snapshot name");
        env.run(&["web1", verb, "<x>"])
            .fails(2, "not allowed in a snapshot name");
        env.run(&["nosuch", verb, "s1"]).fails(3, "nosuch");
        env.run(&["deb", verb, "s1"]).fails(3, "deb");
    }
    for verb in ["--revert", "--delete-snapshot"] {
        let run = env
            .run(&["web1", verb, "s1"])
            .fails(3, "web1 has no snapshot 's1'");
        assert!(!run.stderr.contains("stopping"), "{}", run.stderr);
    }
    env.run(&["nosuch", "--snapshots"]).fails(3, "nosuch");
    env.run(&["deb", "--snapshots"]).fails(3, "deb");
    env.run(&["web1", "web2", "--snapshots"])
        .fails(2, "exactly one <name>");
    env.run(&["--snapshots"]).fails(2, "a <name> is required");
    let run = env.run(&["web1", "--snapshots", "--json"]).ok();
    assert_eq!(json_rows(&run).len(), 0);
    assert_eq!(env.read("data/instance/web1.json"), record);
    let info = env.run(&["web1", "--info", "--json"]).ok();
    assert!(info.stdout.contains("running"), "{}", info.stdout);
}

/// Set `key` of `name`'s record to `value` (JSON).
fn edit_record(env: &TestEnv, name: &str, key: &str, value: serde_json::Value) {
    let file = format!("data/instance/{name}.json");
    let mut record: serde_json::Value = serde_json::from_str(&env.read(&file)).unwrap();
    record[key] = value;
    env.write(&file, &record.to_string());
}

/// `--reset` checks every name, and what it needs to give the same identity back (the
/// identity seed, the pinned host key, a first-boot identity), before anything is turned
/// off or removed: each refusal says why, and the instance's disk is the one it had.
#[test]
fn reset_refuses_what_it_cannot_give_back_and_changes_nothing() {
    let env = template_and_instance();
    define_domain(&env, "web1", true);
    let seed = env.path("pool/web1-seed.tar");
    let untouched = |env: &TestEnv| assert_eq!(env.read("pool/web1.qcow2"), "disk");

    env.run(&["--reset"])
        .fails(2, "--reset needs the <name> of an instance");
    env.run(&["deb", "--reset"]).fails(3, "deb");
    let run = env.run(&["web1", "nosuch", "--reset"]).fails(3, "nosuch");
    assert!(!run.stderr.contains("resetting"), "{}", run.stderr);
    untouched(&env);

    env.run(&["web1", "--reset"])
        .fails(3, "its record lists no identity seed");
    edit_record(&env, "web1", "extra_files", serde_json::json!([seed]));
    env.run(&["web1", "--reset"])
        .fails(3, "web1-seed.tar is not in the pool");
    env.write("pool/web1-seed.tar", "seed");
    edit_record(&env, "web1", "identity", "sysprep".into());
    env.run(&["web1", "--reset"]).fails(3, "by virt-sysprep");
    edit_record(&env, "web1", "identity", "firstboot".into());
    env.write("data/known_hosts", "");
    env.run(&["web1", "--reset"])
        .fails(3, "no host key is recorded");
    untouched(&env);
    assert_eq!(state_of(&env, "web1"), "running");
    assert_eq!(env.read("pool/web1-seed.tar"), "seed", "the seed is kept");
}

/// A reset that can go ahead turns the instance off, gives it a new disk cloned from the
/// template (the old one's content is gone), keeps its seed, and boots it (the test
/// driver's guest never answers, so the wait times out, naming the phase).
#[test]
fn reset_replaces_the_disk_and_keeps_the_identity_seed() {
    let env = template_and_instance();
    define_domain(&env, "web1", true);
    edit_record(
        &env,
        "web1",
        "extra_files",
        serde_json::json!([env.path("pool/web1-seed.tar")]),
    );
    env.write("pool/web1-seed.tar", "seed");
    let run = env.run(&["web1", "--reset"]).fails(5, "web1: timed out");
    assert!(run.stderr.contains("resetting web1"), "{}", run.stderr);
    assert_ne!(
        env.read("pool/web1.qcow2"),
        "disk",
        "the old disk is still there"
    );
    assert_eq!(env.read("pool/web1-seed.tar"), "seed", "the seed is kept");
    assert_eq!(
        env.ls("data/instance"),
        [
            format!("{}.json", env.template_stem("deb")),
            "web1.json".into()
        ]
    );
}
