//! One size grammar (qemu-img's) for virt-up `--size` and templates.d `size`: decimal
//! fractions with a suffix are sizes, a doubled suffix is not.

use crate::harness::TestEnv;

#[test]
fn a_doubled_suffix_on_the_command_line_is_refused_before_anything_is_built() {
    let env = TestEnv::new();
    env.run(&["web1", "--template", "deb", "--size", "20GG"])
        .fails(2, "--size \"20GG\"");
    assert_eq!(env.tool_runs("virt-builder"), 0);
    assert!(env.ls("pool").is_empty());
}

#[test]
fn a_templates_size_is_checked_when_the_configuration_is_loaded() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = debian-12-local\nvirt-builder-source = file:///nonexistent/index\nsize = 20GG\n",
    );
    env.run(&["deb", "--no-clone"])
        .fails(2, "invalid value \"20GG\" for 'size'");
    assert_eq!(env.tool_runs("virt-builder"), 0);
}

#[test]
fn a_fractional_template_size_reaches_virt_builder() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = debian-12-local\nvirt-builder-source = file:///nonexistent/index\nsize = 1.5G\n",
    );
    env.run(&["deb", "--no-clone"]).ok();
    let args = env.read("log/virt-builder.log");
    let lines: Vec<&str> = args.lines().collect();
    let at = lines.iter().position(|l| *l == "--size").expect("--size");
    assert_eq!(lines[at + 1], "1.5G");
}
