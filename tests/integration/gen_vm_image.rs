//! gen-vm-image: the real binary with real qemu-img on small images made here, a loopback
//! HTTP server for URL inputs (with Range, cut-short and changed-file modes), and libvirt's
//! test driver (with a console log written by the test) for `configure`.

use crate::harness::{path_str, tool, Gvi, Run};
use crate::http::Server;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The digest Python's hashlib computes (the reference the original tool used).
fn hashlib(alg: &str, path: &Path, read_bytes: Option<usize>) -> String {
    let script = "import hashlib,sys\nh=hashlib.new(sys.argv[1])\nd=open(sys.argv[2],'rb').read()\nn=int(sys.argv[3])\nh.update(d[:n] if n else d)\nprint(h.hexdigest())";
    let n = read_bytes.unwrap_or(0).to_string();
    tool("python3", &["-c", script, alg, path_str(path), &n])
        .trim()
        .to_string()
}

struct ImageInfo {
    format: String,
    virtual_size: u64,
    compat: Option<String>,
}

fn info(p: &Path) -> ImageInfo {
    let v: serde_json::Value =
        serde_json::from_str(&tool("qemu-img", &["info", "--output=json", path_str(p)])).unwrap();
    ImageInfo {
        format: v["format"].as_str().unwrap().to_string(),
        virtual_size: v["virtual-size"].as_u64().unwrap(),
        compat: v["format-specific"]["data"]["compat"]
            .as_str()
            .map(str::to_string),
    }
}

/// The guest-visible contents of two images are the same (extra space reads as zeros).
#[track_caller]
fn same_content(a: &Path, b: &Path) {
    tool("qemu-img", &["compare", path_str(a), path_str(b)]);
}

fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino()
}

// ---------------------------------------------------------------------------------------
// single

#[test]
fn single_blank_image_has_the_originals_name_format_and_size() {
    let g = Gvi::new();
    let run = g.run(&["single", "blank", "20G", "--verbose"]).ok();
    assert!(run.response().contains("generated-images/blank.qcow2"));
    let out = g.path("generated-images/blank.qcow2");
    let i = info(&out);
    assert_eq!(i.format, "qcow2");
    assert_eq!(i.compat.as_deref(), Some("1.1"));
    // 20G is 20 GiB (the original made its shrink decision on 20,000,000 bytes).
    assert_eq!(i.virtual_size, 20 << 30);
    assert!(!run.doc()["verbose_messages"].as_array().unwrap().is_empty());
    assert_eq!(g.ls("generated-images"), ["blank.qcow2"]);
    // Without --verbose the list is empty.
    let quiet = g.run(&["single", "other", "1M"]).ok();
    assert_eq!(quiet.doc()["verbose_messages"], serde_json::json!([]));
}

#[test]
fn single_from_a_local_image_with_a_checksum_version_and_raw_output() {
    let g = Gvi::new();
    let (_, input) = g.make_input("in", 8);
    let sum = hashlib("sha256", &input, None).to_uppercase();
    g.run(&[
        "single", "deb", "64M", "-i", "in.qcow2", "-ict", "SHA256", "-ic", &sum, "-V", "9.10",
        "-of", "raw", "-od", "out",
    ])
    .ok();
    let out = g.path("out/deb-9.10.raw");
    let i = info(&out);
    assert_eq!((i.format.as_str(), i.virtual_size), ("raw", 64 << 20));
    same_content(&input, &out);
    assert_eq!(g.ls("out"), ["deb-9.10.raw"]);
}

#[test]
fn every_hashlib_algorithm_users_have_is_accepted() {
    let g = Gvi::new();
    let (_, input) = g.make_input("in", 1);
    for (alg, spelled) in [
        ("md5", "md5"),
        ("sha1", "sha1"),
        ("sha224", "sha224"),
        ("sha384", "SHA384"),
        ("sha512", "sha512"),
        ("blake2b", "blake2b"),
        ("blake2s", "blake2s"),
        ("sha3_256", "sha3-256"),
        ("sha3_512", "sha3_512"),
    ] {
        let sum = hashlib(alg, &input, None);
        g.run(&[
            "single", alg, "2M", "-i", "in.qcow2", "-ict", spelled, "-ic", &sum,
        ])
        .ok();
    }
    assert_eq!(g.ls("generated-images").len(), 9);
}

#[test]
fn read_bytes_and_buffer_size_hash_a_prefix() {
    let g = Gvi::new();
    let (_, input) = g.make_input("in", 1);
    let prefix = hashlib("sha256", &input, Some(1000));
    g.run(&[
        "single", "p", "2M", "-i", "in.qcow2", "-ict", "sha256", "-ic", &prefix, "-icrb", "1000",
        "-icbs", "7",
    ])
    .ok();
    // The whole file's sum is not the prefix's.
    g.run(&[
        "single", "q", "2M", "-i", "in.qcow2", "-ict", "sha256", "-ic", &prefix,
    ])
    .fails(6, "checksum mismatch");
}

#[test]
fn checksum_mismatch_leaves_no_output_and_keeps_an_existing_one() {
    let g = Gvi::new();
    let (_, input) = g.make_input("in", 4);
    let wrong = "0".repeat(64);
    let run = g
        .run(&[
            "single", "x", "8M", "-i", "in.qcow2", "-ict", "sha256", "-ic", &wrong,
        ])
        .fails(6, "checksum mismatch");
    assert!(run.response().contains(&hashlib("sha256", &input, None)));
    assert!(
        g.ls("generated-images").is_empty(),
        "{:?}",
        g.ls("generated-images")
    );
    // An image made before survives a failed --overwrite untouched.
    g.run(&["single", "x", "8M"]).ok();
    let before = inode(&g.path("generated-images/x.qcow2"));
    g.run(&[
        "single",
        "x",
        "8M",
        "-i",
        "in.qcow2",
        "-ict",
        "sha256",
        "-ic",
        &wrong,
        "--overwrite",
    ])
    .fails(6, "checksum mismatch");
    assert_eq!(inode(&g.path("generated-images/x.qcow2")), before);
    assert_eq!(g.ls("generated-images"), ["x.qcow2"]);
}

#[test]
fn checksum_mistakes_are_reported_before_any_work() {
    let g = Gvi::new();
    g.make_input("in", 1);
    g.run(&["single", "x", "8M", "-i", "in.qcow2", "-ic", "abcd"])
        .fails(4, "input_checksum_type");
    g.run(&["single", "x", "8M", "-i", "in.qcow2", "-ict", "sha256"])
        .fails(4, "input_checksum");
    g.run(&[
        "single", "x", "8M", "-i", "in.qcow2", "-ict", "crc32", "-ic", "ab",
    ])
    .fails(6, "unknown checksum type 'crc32'");
    g.run(&[
        "single", "x", "8M", "-i", "in.qcow2", "-ict", "md5", "-ic", "abc",
    ])
    .fails(6, "32 hex digits");
    assert!(!g.path("generated-images").exists());
}

#[test]
fn missing_input_bad_size_bad_format() {
    let g = Gvi::new();
    g.run(&["single", "x", "8M", "-i", "nope.qcow2"])
        .fails(1, "nope.qcow2");
    g.run(&["single", "x", "10GB"]).fails(11, "'10GB'");
    g.run(&["single", "x", "1.5"]).fails(11, "suffix");
    g.run(&["single", "x", "8M", "-of", "vmdk"])
        .fails(5, "'vmdk'");
    std::fs::write(g.path("junk.bin"), b"").unwrap();
    g.run(&["single", "x", "8M", "-i", "junk.bin", "-if", "qcow2"])
        .fails(3, "junk.bin");
    assert!(g.ls("generated-images").is_empty());
}

#[test]
fn an_input_in_the_output_format_is_copied_others_are_converted() {
    let g = Gvi::new();
    let (raw, qcow2) = g.make_input("in", 4);
    // Self-contained qcow2 compat 1.1 -> qcow2: copied as it is, then resized.
    let run = g
        .run(&["single", "copy", "8M", "-i", "in.qcow2", "-v"])
        .ok();
    assert!(run.doc()["verbose_messages"]
        .to_string()
        .contains("Copied the input as it is"));
    same_content(&qcow2, &g.path("generated-images/copy.qcow2"));
    // Raw -> raw: copied with holes where the data is zero (here 6 of 8 MiB, written out).
    let mut half = std::fs::read(&raw).unwrap()[..2 << 20].to_vec();
    half.resize(8 << 20, 0);
    std::fs::write(g.path("half.raw"), &half).unwrap();
    g.run(&["single", "sparse", "8M", "-i", "half.raw", "-of", "raw"])
        .ok();
    let out = g.path("generated-images/sparse.raw");
    same_content(&g.path("half.raw"), &out);
    use std::os::unix::fs::MetadataExt;
    let allocated = std::fs::metadata(&out).unwrap().blocks() * 512;
    assert!(allocated <= 3 << 20, "{allocated} bytes allocated");
    // Compressed clusters and internal snapshots are not carried into the output.
    let packed = g.path("packed.qcow2");
    tool(
        "qemu-img",
        &[
            "convert",
            "-c",
            "-O",
            "qcow2",
            path_str(&raw),
            path_str(&packed),
        ],
    );
    tool("qemu-img", &["snapshot", "-c", "snap1", path_str(&qcow2)]);
    for (input, name) in [("packed.qcow2", "unpacked"), ("in.qcow2", "nosnap")] {
        let run = g.run(&["single", name, "8M", "-i", input, "-v"]).ok();
        assert!(
            run.doc()["verbose_messages"]
                .to_string()
                .contains("Converted to qcow2"),
            "{input}"
        );
        let out = g.path(&format!("generated-images/{name}.qcow2"));
        same_content(&raw, &out);
        let check: serde_json::Value = serde_json::from_str(&tool(
            "qemu-img",
            &["check", "--output=json", path_str(&out)],
        ))
        .unwrap();
        assert_eq!(
            check["compressed-clusters"].as_u64().unwrap_or(0),
            0,
            "{input}"
        );
        let listed = tool("qemu-img", &["snapshot", "-l", path_str(&out)]);
        assert!(!listed.contains("snap1"), "{input}: {listed}");
    }
}

#[test]
fn a_directory_is_not_an_input() {
    let g = Gvi::new();
    std::fs::create_dir(g.path("dir")).unwrap();
    g.run(&["single", "x", "8M", "-i", "dir"])
        .fails(3, "is a directory");
}

#[test]
fn shrinking_is_refused_unless_asked_for() {
    let g = Gvi::new();
    let (_, input) = g.make_input("in", 8);
    g.run(&["single", "small", "4M", "-i", "in.qcow2"])
        .fails(7, "refusing to shrink");
    assert!(g.ls("generated-images").is_empty());
    g.run(&["single", "small", "4M", "-i", "in.qcow2", "--shrink"])
        .ok();
    assert_eq!(
        info(&g.path("generated-images/small.qcow2")).virtual_size,
        4 << 20
    );
    // Growing needs nothing; the same size is kept as it is.
    g.run(&["single", "same", "8M", "-i", "in.qcow2"]).ok();
    same_content(&input, &g.path("generated-images/same.qcow2"));
}

#[test]
fn compressed_inputs_are_hashed_as_given_and_decompressed() {
    let g = Gvi::new();
    let (raw, _) = g.make_input("disk", 4);
    tool("xz", &["-k", "-1", "-T1", path_str(&raw)]);
    tool("gzip", &["-k", "-1", path_str(&raw)]);
    for (file, alg) in [("disk.raw.xz", "sha512"), ("disk.raw.gz", "md5")] {
        let sum = hashlib(alg, &g.path(file), None);
        let name = file.replace('.', "-");
        g.run(&[
            "single", &name, "8M", "-i", file, "-ict", alg, "-ic", &sum, "-if", "raw",
        ])
        .ok();
        same_content(&raw, &g.path(&format!("generated-images/{name}.qcow2")));
    }
    assert_eq!(
        g.ls("generated-images").len(),
        2,
        "{:?}",
        g.ls("generated-images")
    );
    // A mismatch on a compressed input leaves nothing either.
    g.run(&[
        "single",
        "bad",
        "8M",
        "-i",
        "disk.raw.xz",
        "-ict",
        "md5",
        "-ic",
        &"1".repeat(32),
    ])
    .fails(6, "checksum mismatch");
    assert_eq!(g.ls("generated-images").len(), 2);
}

#[test]
fn existing_output_is_kept_unless_overwrite() {
    let g = Gvi::new();
    g.run(&["single", "x", "8M"]).ok();
    let out = g.path("generated-images/x.qcow2");
    let first = inode(&out);
    let run = g.run(&["single", "x", "16M"]).ok();
    assert!(
        run.response().contains("already exists"),
        "{}",
        run.response()
    );
    assert_eq!(inode(&out), first);
    assert_eq!(info(&out).virtual_size, 8 << 20);
    g.run(&["single", "x", "16M", "--overwrite"]).ok();
    assert_eq!(info(&out).virtual_size, 16 << 20);
    assert_eq!(g.ls("generated-images"), ["x.qcow2"]);
}

#[test]
fn output_directory_that_cannot_be_made_is_code_3() {
    let g = Gvi::new();
    std::fs::write(g.path("file"), b"").unwrap();
    g.run(&["single", "x", "8M", "-od", "file/sub"])
        .fails(3, "file/sub");
}

#[test]
fn version_flag_of_the_program() {
    let g = Gvi::new();
    let out = g.command(&["--version"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("gen-vm-image "));
}

// ---------------------------------------------------------------------------------------
// multiple

#[test]
fn multiple_builds_every_image_and_keeps_version_text() {
    let g = Gvi::new();
    let (_, input) = g.make_input("in", 4);
    let sum = hashlib("sha256", &input, None);
    std::fs::write(
        g.path("arch.yml"),
        format!(
            "owner: me\nimages:\n  blank:\n    name: blank\n    version: 9.10\n    size: 8M\n    format: raw\n  base:\n    name: base\n    size: 8M\n    input:\n      path: in.qcow2\n      format: qcow2\n      checksum:\n        type: sha256\n        value: {}\n  derived:\n    name: derived\n    version: 2\n    size: 16M\n    input: images/base.qcow2\n",
            sum.to_uppercase()
        ),
    )
    .unwrap();
    let run = g.run(&["multiple", "arch.yml", "-od", "images", "-v"]).ok();
    assert!(run
        .response()
        .starts_with("Successfully built the images in: "));
    assert_eq!(
        g.ls("images"),
        ["base.qcow2", "blank-9.10.raw", "derived-2.qcow2"]
    );
    same_content(&input, &g.path("images/derived-2.qcow2"));
    assert_eq!(
        info(&g.path("images/derived-2.qcow2")).virtual_size,
        16 << 20
    );
    let verbose = run.doc()["verbose_messages"].to_string();
    assert!(verbose.contains("derived: "), "{verbose}");
}

#[test]
fn multiple_honours_overwrite() {
    let g = Gvi::new();
    std::fs::write(
        g.path("arch.yml"),
        "owner: me\nimages:\n  a:\n    name: a\n    size: 8M\n  b:\n    name: b\n    size: 8M\n    format: raw\n",
    )
    .unwrap();
    g.run(&["multiple", "arch.yml"]).ok();
    let a = g.path("generated-images/a.qcow2");
    let b = g.path("generated-images/b.raw");
    let (ia, ib) = (inode(&a), inode(&b));
    g.run(&["multiple", "arch.yml"]).ok();
    assert_eq!(
        (inode(&a), inode(&b)),
        (ia, ib),
        "replaced without --overwrite"
    );
    std::fs::write(
        g.path("arch.yml"),
        "owner: me\nimages:\n  a:\n    name: a\n    size: 16M\n  b:\n    name: b\n    size: 16M\n    format: raw\n",
    )
    .unwrap();
    g.run(&["multiple", "arch.yml", "--overwrite"]).ok();
    assert_ne!(inode(&a), ia);
    assert_eq!(info(&a).virtual_size, 16 << 20);
    assert_eq!(info(&b).virtual_size, 16 << 20);
    assert_eq!(g.ls("generated-images"), ["a.qcow2", "b.raw"]);
}

#[test]
fn multiple_reports_architecture_mistakes_with_the_image_and_key() {
    let g = Gvi::new();
    let cases = [
        (
            "owner: me\nimages:\n  img1:\n    size: 1G\n",
            4,
            "image 'img1': missing attribute 'name'",
        ),
        (
            "images:\n  img1:\n    name: n\n    size: 1G\n",
            4,
            "'owner'",
        ),
        (
            "owner: me\nimages:\n  img1:\n    name: n\n    size: [1]\n",
            5,
            "image 'img1': 'size' must be a string",
        ),
        (
            "owner: me\nimages:\n  img1:\n    name: n\n    size: 10GB\n",
            11,
            "image 'img1': 'size'",
        ),
        ("owner: me\nimages: [\n", 2, "cannot load"),
    ];
    for (text, code, needle) in cases {
        std::fs::write(g.path("arch.yml"), text).unwrap();
        g.run(&["multiple", "arch.yml"]).fails(code, needle);
    }
    g.run(&["multiple", "nope.yml"]).fails(1, "nope.yml");
    assert!(!g.path("generated-images").exists());
}

#[test]
fn one_failing_image_does_not_stop_the_others() {
    let g = Gvi::new();
    g.make_input("in", 1);
    std::fs::write(
        g.path("arch.yml"),
        format!(
            "owner: me\nimages:\n  good:\n    name: good\n    size: 8M\n  bad:\n    name: bad\n    size: 8M\n    input:\n      path: in.qcow2\n      checksum:\n        type: md5\n        value: {}\n  after:\n    name: after\n    size: 8M\n  from-bad:\n    name: from-bad\n    size: 8M\n    input: generated-images/bad.qcow2\n",
            "0".repeat(32)
        ),
    )
    .unwrap();
    let run = g
        .run(&["multiple", "arch.yml", "-j", "1"])
        .fails(6, "image 'bad': checksum mismatch");
    // An image made from a failed one is not attempted, and says why.
    assert!(
        run.response()
            .contains("image 'from-bad' (return code 3): not made: its input, image 'bad', failed"),
        "{}",
        run.response()
    );
    assert_eq!(g.ls("generated-images"), ["after.qcow2", "good.qcow2"]);
}

// ---------------------------------------------------------------------------------------
// URL inputs: a loopback HTTP server (see http.rs)

#[test]
fn url_input_is_downloaded_hashed_and_cleaned_up() {
    let g = Gvi::new();
    let (_, input) = g.make_input("in", 4);
    let server = Server::start();
    server.put("d.qcow2", std::fs::read(&input).unwrap(), "\"v1\"");
    let sum = hashlib("sha512", &input, None);
    g.run(&[
        "single",
        "web",
        "8M",
        "-i",
        &server.url("d.qcow2"),
        "-ict",
        "sha512",
        "-ic",
        &sum,
    ])
    .ok();
    same_content(&input, &g.path("generated-images/web.qcow2"));
    // No download, part or metadata is left next to the image.
    assert_eq!(g.ls("generated-images"), ["web.qcow2"]);
    let log = server.log();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].path.as_str(), log[0].status), ("d.qcow2", 200));
}

#[test]
fn url_input_compressed_with_xz() {
    let g = Gvi::new();
    let (raw, _) = g.make_input("disk", 2);
    tool("xz", &["-k", "-1", "-T1", path_str(&raw)]);
    let server = Server::start();
    server.put(
        "disk.raw.xz",
        std::fs::read(g.path("disk.raw.xz")).unwrap(),
        "\"x\"",
    );
    g.run(&[
        "single",
        "x",
        "4M",
        "-i",
        &server.url("disk.raw.xz"),
        "-if",
        "raw",
    ])
    .ok();
    same_content(&raw, &g.path("generated-images/x.qcow2"));
    assert_eq!(g.ls("generated-images"), ["x.qcow2"]);
}

#[test]
fn interrupted_download_is_resumed_not_restarted() {
    let g = Gvi::new();
    let (_, input) = g.make_input("in", 6);
    let data = std::fs::read(&input).unwrap();
    let total = data.len();
    let server = Server::start();
    server.put("d.qcow2", data, "\"v1\"");
    let cut = 1_500_000;
    server.state.lock().unwrap().cut_next_after = Some(cut);
    let sum = hashlib("sha256", &input, None);
    let args = [
        "single",
        "web",
        "8M",
        "-i",
        &server.url("d.qcow2"),
        "-ict",
        "sha256",
        "-ic",
        &sum,
    ];
    let first = g.run(&args).fails(10, "resume");
    assert!(first.response().contains(&server.url("d.qcow2")));
    // No image; the partial download is kept for the next run.
    assert!(!g.path("generated-images/web.qcow2").exists());
    assert!(g
        .ls("generated-images")
        .iter()
        .any(|f| f.ends_with(".download.part")));
    g.run(&args).ok();
    same_content(&input, &g.path("generated-images/web.qcow2"));
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1].range.as_deref(), Some(&*format!("bytes={cut}-")));
    assert_eq!(log[1].status, 206);
    // Each byte crossed the network once.
    assert_eq!(log[0].body_bytes + log[1].body_bytes, total);
    assert_eq!(g.ls("generated-images"), ["web.qcow2"]);
}

#[test]
fn a_partial_download_of_a_file_that_changed_is_not_spliced() {
    let g = Gvi::new();
    let (_, old) = g.make_input("old", 4);
    let (_, new) = g.make_input("new-image", 5);
    let server = Server::start();
    server.put("d.qcow2", std::fs::read(&old).unwrap(), "\"old\"");
    server.state.lock().unwrap().cut_next_after = Some(1_000_000);
    let url = server.url("d.qcow2");
    g.run(&["single", "web", "8M", "-i", &url])
        .fails(10, "resume");
    // The file changes on the server; the next run asks If-Range "old" and gets it whole.
    server.put("d.qcow2", std::fs::read(&new).unwrap(), "\"new\"");
    g.run(&["single", "web", "8M", "-i", &url]).ok();
    same_content(&new, &g.path("generated-images/web.qcow2"));
    let log = server.log();
    assert_eq!(log[1].status, 200, "{log:?}");
}

#[test]
fn a_downloaded_image_may_not_name_a_backing_file() {
    let g = Gvi::new();
    let (_, base) = g.make_input("base", 1);
    let overlay = g.path("overlay.qcow2");
    tool(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            path_str(&base),
            path_str(&overlay),
        ],
    );
    let server = Server::start();
    server.put("o.qcow2", std::fs::read(&overlay).unwrap(), "\"o\"");
    g.run(&["single", "x", "8M", "-i", &server.url("o.qcow2")])
        .fails(3, "backing file");
    assert!(
        g.ls("generated-images").is_empty(),
        "{:?}",
        g.ls("generated-images")
    );
    // A local overlay is the user's own: it is flattened.
    g.run(&["single", "flat", "8M", "-i", "overlay.qcow2"]).ok();
    same_content(&base, &g.path("generated-images/flat.qcow2"));
}

#[test]
fn download_failures_are_code_10_and_bad_downloads_are_not_kept() {
    let g = Gvi::new();
    let (_, input) = g.make_input("in", 1);
    let server = Server::start();
    g.run(&["single", "x", "8M", "-i", &server.url("missing.qcow2")])
        .fails(10, "404");
    server.put("d.qcow2", std::fs::read(&input).unwrap(), "\"v1\"");
    g.run(&[
        "single",
        "x",
        "8M",
        "-i",
        &server.url("d.qcow2"),
        "-ict",
        "md5",
        "-ic",
        &"a".repeat(32),
    ])
    .fails(6, "checksum mismatch");
    // Data that does not hash right is not kept to resume from.
    assert!(
        g.ls("generated-images").is_empty(),
        "{:?}",
        g.ls("generated-images")
    );
}

#[test]
fn ctrl_c_leaves_no_output_and_the_download_resumes() {
    let g = Gvi::new();
    let (_, input) = g.make_input("in", 8);
    let server = Server::start();
    server.put("d.qcow2", std::fs::read(&input).unwrap(), "\"v1\"");
    server.state.lock().unwrap().trickle = true;
    let url = server.url("d.qcow2");
    let mut child = g
        .command(&["single", "web", "16M", "-i", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let part = g.path("generated-images/.web.qcow2.download.part");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < (256 << 10) {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stderr).unwrap();
    assert_eq!(doc["status"], "failed");
    assert!(!g.path("generated-images/web.qcow2").exists());
    assert!(!g.path("generated-images/.web.qcow2.part").exists());
    server.state.lock().unwrap().trickle = false;
    g.run(&["single", "web", "16M", "-i", &url]).ok();
    same_content(&input, &g.path("generated-images/web.qcow2"));
    // (The interrupted response may be logged after this one: its thread ends later.)
    let log = server.log();
    assert!(
        log.iter().any(|s| s.range.is_some() && s.status == 206),
        "{log:?}"
    );
}

// ---------------------------------------------------------------------------------------
// configure, against libvirt's test driver; the test plays the guest's serial console

struct Configure {
    g: Gvi,
    image: PathBuf,
}

impl Configure {
    fn new() -> Configure {
        let g = Gvi::new();
        let (_, image) = g.make_input("img", 2);
        std::fs::create_dir_all(g.path("cloud-init-config")).unwrap();
        std::fs::write(
            g.path("cloud-init-config/user-data"),
            "#cloud-config\nwrite_files:\n  - path: /etc/proof\n    content: hi\n",
        )
        .unwrap();
        let mut g = g;
        g.with_fake_tools();
        Configure { g, image }
    }

    fn console(&self, text: &str) {
        std::fs::write(self.g.path("console.log"), text).unwrap();
    }

    fn run(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "configure",
            "img.qcow2",
            "--connect",
            "test:///default",
            "--console-log",
            "console.log",
            "--domain-name",
            "vut-gvi-it",
        ];
        args.extend_from_slice(extra);
        self.g.run(&args)
    }

    fn sysprep_runs(&self) -> String {
        std::fs::read_to_string(self.g.path("log/virt-sysprep.log")).unwrap_or_default()
    }

    fn image_digest(&self) -> String {
        hashlib("sha256", &self.image, None)
    }
}

const FINISHED: &str = "[   30.1] cloud-init[500]: Cloud-init v. 22.4.2 running 'modules:final' at Mon, 01 Jan 2024 00:00:29 +0000. Up 29.00 seconds.\r\n[   30.2] cloud-init[500]: Cloud-init v. 22.4.2 finished at Mon, 01 Jan 2024 00:00:30 +0000. Datasource DataSourceNoCloud [seed=/dev/vdb][dsmode=net].  Up 30.00 seconds\r\n";

#[test]
fn configure_boots_waits_for_cloud_init_powers_off_and_resets() {
    let c = Configure::new();
    c.console(FINISHED);
    let run = c.run(&["-v"]).ok();
    assert!(
        run.response().contains("Configured img.qcow2"),
        "{}",
        run.response()
    );
    // virt-sysprep reset the guest's disk (the overlay whose changes are then committed).
    let sysprep = c.sysprep_runs();
    assert!(sysprep.contains(".img.qcow2.configure.qcow2"), "{sysprep}");
    // The real virt-sysprep refuses a --format that follows the -a it applies to.
    let args: Vec<&str> = sysprep.lines().collect();
    let pos = |a: &str| args.iter().position(|x| *x == a).unwrap();
    assert!(pos("--format") < pos("-a"), "{args:?}");
    // The seed: an ISO 9660 volume labelled cidata with the user's user-data and a
    // made-up meta-data.
    let seed = c.g.path("image-config/seed.img");
    let pvd = tool("isoinfo", &["-d", "-i", path_str(&seed)]);
    assert!(pvd.contains("Volume id: cidata"), "{pvd}");
    let user_data = tool(
        "isoinfo",
        &["-i", path_str(&seed), "-J", "-x", "/user-data"],
    );
    assert!(user_data.contains("/etc/proof"));
    let meta = tool(
        "isoinfo",
        &["-i", path_str(&seed), "-J", "-x", "/meta-data"],
    );
    assert!(
        meta.contains("instance-id: ") && meta.contains("local-hostname: img"),
        "{meta}"
    );
    // Nothing is left next to the image.
    assert_eq!(
        c.g.ls("")
            .iter()
            .filter(|f| f.contains("img.qcow2"))
            .collect::<Vec<_>>(),
        ["img.qcow2"]
    );
}

#[test]
fn configure_without_cloud_init_says_so_and_leaves_the_image_alone() {
    let c = Configure::new();
    let before = c.image_digest();
    c.console("Debian GNU/Linux 12 debian ttyS0\r\n\r\ndebian login: ");
    let run = c.run(&[]).fails(12, "has no cloud-init");
    assert!(run.response().contains("console.log"), "{}", run.response());
    assert_eq!(c.image_digest(), before);
    assert!(c.sysprep_runs().is_empty());
    assert!(!c.g.path(".img.qcow2.configure.qcow2").exists());
}

#[test]
fn configure_times_out_instead_of_hanging() {
    let c = Configure::new();
    c.console("SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n");
    let started = Instant::now();
    let run = c.run(&["--timeout", "1"]).fails(12, "timed out after 1 s");
    assert!(started.elapsed() < Duration::from_secs(60));
    let response = run.response();
    assert!(response.contains("no cloud-init output"), "{response}");
    assert!(response.contains("console.log"), "{response}");
    assert!(c.sysprep_runs().is_empty());
}

#[test]
fn configure_reports_failed_cloud_init_modules() {
    let c = Configure::new();
    let before = c.image_digest();
    c.console(&format!(
        "[   20.0] cloud-init[400]: 2024-01-01 00:00:20,000 - util.py[WARNING]: Running module runcmd (<module 'cloudinit.config.cc_runcmd'>) failed\r\n{FINISHED}"
    ));
    c.run(&[]).fails(12, "cloud-init finished with errors");
    assert_eq!(c.image_digest(), before);
}

#[test]
fn configure_reports_a_failed_reset_and_leaves_the_image_alone() {
    let mut c = Configure::new();
    let before = c.image_digest();
    c.console(FINISHED);
    let bin = c.g.path("failing-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("virt-sysprep");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'virt-sysprep: error: no space left' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    c.g.prepend_path(&bin);
    c.run(&[]).fails(13, "no space left");
    assert_eq!(c.image_digest(), before);
    assert!(!c.g.path(".img.qcow2.configure.qcow2").exists());
}

#[test]
fn configure_refuses_an_existing_domain_and_a_host_cpu_without_kvm() {
    let c = Configure::new();
    c.console(FINISHED);
    // libvirt's test driver always has a domain named "test".
    c.g.run(&[
        "configure",
        "img.qcow2",
        "--connect",
        "test:///default",
        "--console-log",
        "console.log",
        "--domain-name",
        "test",
    ])
    .fails(12, "'test' already exists");
    c.run(&["--cpu-model", "host"]).fails(5, "--virt-type kvm");
    assert!(c.sysprep_runs().is_empty());
}

#[test]
fn configure_needs_its_inputs() {
    let c = Configure::new();
    c.console(FINISHED);
    c.run(&["--user-data", "nope"]).fails(1, "nope");
    c.run(&["--meta-data", "nope-meta"]).fails(1, "nope-meta");
    c.g.run(&["configure", "missing.qcow2", "--connect", "test:///default"])
        .fails(1, "missing.qcow2");
    std::fs::remove_file(c.g.path("cloud-init-config/user-data")).unwrap();
    c.run(&[]).fails(1, "user-data");
    assert!(c.sysprep_runs().is_empty());
}

#[test]
fn configure_with_the_originals_option_names() {
    let c = Configure::new();
    c.console(FINISHED);
    std::fs::write(c.g.path("meta"), "instance-id: fixed-1\n").unwrap();
    c.g.run(&[
        "configure",
        "--image-input-path",
        "img.qcow2",
        "--config-user-data-path",
        "cloud-init-config/user-data",
        "--config-meta-data-path",
        "meta",
        "--config-seed-output-path",
        "seeds/s.img",
        "--connect",
        "test:///default",
        "--console-log",
        "console.log",
    ])
    .ok();
    let meta = tool(
        "isoinfo",
        &[
            "-i",
            path_str(&c.g.path("seeds/s.img")),
            "-J",
            "-x",
            "/meta-data",
        ],
    );
    assert_eq!(meta, "instance-id: fixed-1\n");
}
