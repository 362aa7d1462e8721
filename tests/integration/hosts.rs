//! Several libvirt hosts (`[host NAME]` in settings.cfg): new instances are placed across
//! them by capacity, each host gets the template once (the disk built for the first is
//! uploaded to the next), a host that does not answer is left out and named, and nothing
//! is made when an instance has no place. The hosts are test-driver nodes, each with its
//! own pool directory.

use crate::harness::TestEnv;

/// A second test-driver node `name` with its own pool directory `pool-NAME`; its URI.
fn node(env: &TestEnv, name: &str) -> String {
    std::fs::create_dir_all(env.path(&format!("pool-{name}"))).unwrap();
    let fixture = format!(
        "<node>\n<network><name>default</name><bridge name='virbr0'/><forward/>\
         <ip address='192.168.122.1' netmask='255.255.255.0'/></network>\n\
         <pool type='dir'><name>default</name>\
         <target><path>{}</path></target></pool>\n</node>\n",
        env.path(&format!("pool-{name}")).display()
    );
    env.write(&format!("{name}.xml"), &fixture);
    format!("test://{}", env.path(&format!("{name}.xml")).display())
}

fn with_hosts(env: &TestEnv, hosts: &str) {
    let settings = env.read("config/settings.cfg");
    env.write("config/settings.cfg", &format!("{settings}{hosts}"));
}

#[test]
fn instances_are_spread_over_the_hosts_and_each_gets_the_template_once() {
    let env = TestEnv::new();
    let (a, b) = (node(&env, "a"), node(&env, "b"));
    with_hosts(
        &env,
        &format!(
            "[host a]\nuri = {a}\nmax-instances = 1\n[host b]\nuri = {b}\nmax-instances = 1\n"
        ),
    );
    // The test driver's guests never get an address: both creates time out, after they
    // were placed and their templates made.
    let out = env.run(&["w1", "w2", "--template", "deb", "--debug"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("host a: w1") && out.stderr.contains("host b: w2"),
        "{}",
        out.stderr
    );
    assert_eq!(
        env.ls("pool-a"),
        ["TEMPLATE-deb.qcow2"],
        "the failed clone is gone"
    );
    assert_eq!(env.ls("pool-b"), ["TEMPLATE-deb.qcow2"], "{}", out.stderr);
    assert_eq!(
        env.tool_runs("virt-builder"),
        1,
        "built once, uploaded twice"
    );
    assert!(
        out.stderr.contains("built for another host"),
        "{}",
        out.stderr
    );
    assert!(
        env.ls("pool").is_empty(),
        "nothing on the default connection"
    );
    let listed = env.run(&["--list", "--all", "--json"]).ok().stdout;
    let rows: serde_json::Value = serde_json::from_str(&listed).unwrap();
    // The template's two records (the failed instances are gone), one on each host.
    let mut hosts: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host_name"].as_str().unwrap())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["a", "b"], "{listed}");
    // The same disk on both hosts: one digest, recorded with each.
    let digests: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["disk_digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests[0].len(), 64, "{listed}");
    assert_eq!(digests[0], digests[1], "{listed}");
}

#[test]
fn with_no_room_anywhere_nothing_is_made_and_every_host_is_named() {
    let env = TestEnv::new();
    let a = node(&env, "a");
    with_hosts(
        &env,
        &format!(
            "[host a]\nuri = {a}\nmax-instances = 1\n[host down]\nuri = test://{}\n",
            env.path("missing.xml").display()
        ),
    );
    env.run(&["w1", "w2", "--template", "deb"])
        .fails(4, "no host has room for w")
        .fails(4, "a: 1 of max 1 instances")
        .fails(4, "down: did not answer");
    assert!(env.ls("pool-a").is_empty(), "no template built");
    assert_eq!(env.tool_runs("virt-builder"), 0);
    assert!(env.ls("data/instance").is_empty());
    // Pinned to the host that does not answer: refused, naming it.
    env.run(&["w1", "--template", "deb", "--host", "down"])
        .fails(4, "down: did not answer");
}

/// A template's own `libvirt-uri`: its template and instances are made on that host, not
/// on the run's connection; the instance is worked on there afterwards.
#[test]
fn a_template_with_its_own_libvirt_uri_lives_on_that_host() {
    let env = TestEnv::new();
    let b = node(&env, "b");
    let templates = env.read("config/templates.d/test.cfg");
    env.write(
        "config/templates.d/test.cfg",
        &format!("{templates}libvirt-uri = {b}\n"),
    );
    env.run(&["deb", "--no-clone"]).ok();
    assert_eq!(env.ls("pool-b"), ["TEMPLATE-deb.qcow2"]);
    assert!(env.ls("pool").is_empty(), "nothing on the run's connection");
    let out = env.run(&["w1", "--template", "deb", "--debug"]);
    assert_ne!(out.code, 0, "the test driver's guest gets no address");
    assert!(
        out.stderr.contains(&format!("connecting to {b}")),
        "{}",
        out.stderr
    );
    assert_eq!(
        env.ls("pool-b"),
        ["TEMPLATE-deb.qcow2"],
        "the failed clone is gone"
    );
    assert_eq!(
        env.tool_runs("virt-builder"),
        1,
        "the template was built once"
    );
}
