use crate::harness::TestEnv;

#[test]
fn invalid_value_names_file_line_and_accepted_values() {
    let env = TestEnv::new();
    env.write("config/settings.cfg", "[common]\n\nimage-format = vmdk\n");
    let run = env.run(&["web1", "--template", "deb"]).fails(
        2,
        "settings.cfg:3: invalid value \"vmdk\" for 'image-format': expected one of: qcow2, raw",
    );
    assert!(run
        .stderr
        .contains(&env.path("config").display().to_string()));
}

#[test]
fn unknown_key_is_a_warning_with_file_and_line() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nmemroy = 4\n",
    );
    let run = env.run(&["--show-templates"]).ok();
    assert!(
        run.stderr.contains(
            "test.cfg:3: unknown key 'memroy' in [deb] is ignored (did you mean 'memory'?)"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("deb"));
}

#[test]
fn broken_ini_is_an_error_naming_the_line() {
    let env = TestEnv::new();
    env.write("config/templates.d/test.cfg", "os-version = x\n");
    env.run(&["--show-templates"]).fails(2, "test.cfg");
}

#[test]
fn user_config_overrides_system_config() {
    let env = TestEnv::new();
    env.write(
        "system/templates.d/sys.cfg",
        "[deb]\nos-version = sys-os\nmemory = 700\n[sysonly]\nos-version = other\n",
    );
    env.write("config/templates.d/test.cfg", "[deb]\nmemory = 900\n");
    let out = env.run(&["--show-templates", "--json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deb"]["memory"], "900");
    assert_eq!(v["deb"]["os-version"], "sys-os");
    assert_eq!(v["sysonly"]["os-version"], "other");
}

#[test]
fn init_installs_shipped_files_and_refuses_to_overwrite() {
    let mut env = TestEnv::new();
    env.set(
        "VIRTUP_CONFIG_HOME",
        &env.path("fresh").display().to_string(),
    );
    env.run(&["--init"]).ok();
    assert!(env.read("fresh/settings.cfg").contains("[common]"));
    assert!(env
        .read("fresh/templates.d/local.cfg")
        .contains("[debian-12-local]"));
    assert!(env.read("fresh/playbooks/hello.yml").contains("hosts: all"));
    env.write("fresh/settings.cfg", "# mine\n");
    env.run(&["--init"]).fails(2, "use --force");
    assert_eq!(env.read("fresh/settings.cfg"), "# mine\n");
    env.run(&["--init", "--force"]).ok();
    assert!(env.read("fresh/settings.cfg").contains("[common]"));
    let shown = env.run(&["--show-templates"]).ok().stdout;
    for t in [
        "debian-12",
        "ubuntu-22.04",
        "fedora-40",
        "centosstream-9",
        "debian-12-local",
    ] {
        assert!(shown.contains(t), "{shown}");
    }
}

#[test]
fn show_paths_lists_inventory_and_ssh_config() {
    let env = TestEnv::new();
    let out = env.run(&["--show-paths", "--json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["inventory"],
        env.path("data/inventory.yaml").display().to_string()
    );
    assert_eq!(
        v["ssh-config"],
        env.path("data/ssh_config").display().to_string()
    );
    assert_eq!(
        v["lock"],
        env.path("run/virt-up.lock").display().to_string()
    );
    let text = env.run(&["--show-paths"]).ok().stdout;
    assert!(text.contains("inventory"));
}
