//! Values the plan refuses: each is an exit-2 error that names the value, where it was set
//! and what is accepted, before any template is built.

use crate::harness::TestEnv;

/// `virt-up web1 --template deb <args>` fails with exit 2 and `needle`, and nothing was
/// built: virt-builder never ran and the pool is empty.
fn refused_before_any_build(env: &TestEnv, args: &[&str], needle: &str) {
    let mut argv = vec!["web1", "--template", "deb"];
    argv.extend_from_slice(args);
    env.run(&argv).fails(2, needle);
    assert_eq!(
        env.tool_runs("virt-builder"),
        0,
        "{args:?} built the template"
    );
    assert!(env.ls("pool").is_empty(), "{args:?}: {:?}", env.ls("pool"));
    assert!(env.ls("data/instance").is_empty(), "{args:?}");
}

#[test]
fn memory_and_vcpus_out_of_bounds_are_refused() {
    let env = TestEnv::new();
    let memory = "expected a whole number from 64 to 16777216";
    refused_before_any_build(
        &env,
        &["--memory", "0"],
        &format!("--memory \"0\": {memory}"),
    );
    refused_before_any_build(
        &env,
        &["--memory", "1000000000000"],
        &format!("--memory \"1000000000000\": {memory}"),
    );
    refused_before_any_build(
        &env,
        &["--vcpus", "100000"],
        "--vcpus \"100000\": expected a whole number from 1 to 512",
    );
}

#[test]
fn a_zero_or_malformed_size_is_refused() {
    let env = TestEnv::new();
    refused_before_any_build(
        &env,
        &["--size", "0"],
        "--size \"0\": expected a size of more than 0 bytes",
    );
    refused_before_any_build(
        &env,
        &["--size", "20GG"],
        "--size \"20GG\": expected a size like 20G",
    );
}

#[test]
fn a_bad_size_in_templates_d_names_its_line() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nsize = 0\n",
    );
    let file = env.path("config/templates.d/test.cfg");
    refused_before_any_build(
        &env,
        &[],
        &format!("{}:3: invalid value \"0\" for 'size'", file.display()),
    );
}

#[test]
fn a_dns_domain_that_is_not_one_is_refused() {
    let env = TestEnv::new();
    refused_before_any_build(
        &env,
        &["--dns-domain", "bad domain!"],
        "--dns-domain \"bad domain!\": expected a DNS domain like example.com",
    );
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\ndns-domain = -lab.example\n",
    );
    refused_before_any_build(&env, &[], "invalid value \"-lab.example\" for 'dns-domain'");
}

#[test]
fn relative_virtup_directories_are_refused_and_relative_xdg_ones_ignored() {
    for var in ["VIRTUP_DATA_HOME", "VIRTUP_CONFIG_HOME"] {
        let mut env = TestEnv::new();
        env.set(var, "relative/dir");
        env.run(&["--show-paths"]).fails(
            2,
            &format!("{var}=\"relative/dir\": expected an absolute path"),
        );
        refused_before_any_build(&env, &[], var);
    }
    let mut env = TestEnv::new();
    // Unset (empty is unset) so that XDG_DATA_HOME would decide.
    env.set("VIRTUP_DATA_HOME", "");
    env.set("XDG_DATA_HOME", "relative");
    let out = env.run(&["--show-paths", "--json"]).ok().stdout;
    let paths: serde_json::Value = serde_json::from_str(&out).unwrap();
    let home = env.path("home/.local/share/virt-up");
    assert_eq!(paths["data"], home.display().to_string());
}

#[test]
fn two_templates_with_one_disk_name_are_refused_naming_both() {
    let env = TestEnv::new();
    env.write("config/templates.d/test.cfg", "[a/b]\nos-version = x\n");
    env.write(
        "config/templates.d/z.cfg",
        "# other\n[a-b]\nos-version = y\n",
    );
    let first = env.path("config/templates.d/test.cfg");
    let second = env.path("config/templates.d/z.cfg");
    let run = env.run(&["web1", "--template", "a-b"]).fails(
        2,
        &format!(
            "{}:2: template [a-b] and template [a/b] ({}:1) both have the disk name 'TEMPLATE-a-b'",
            second.display(),
            first.display()
        ),
    );
    assert!(run.stderr.contains("rename one of them"), "{}", run.stderr);
    env.run(&["--show-templates"]).fails(2, "TEMPLATE-a-b");
    assert_eq!(env.tool_runs("virt-builder"), 0);
}
