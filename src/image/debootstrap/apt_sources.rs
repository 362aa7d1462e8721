//! The mirror the host's apt uses for a suite: the default of a debootstrap build, so a
//! host that reaches only its own mirror (no internet) needs no setting.
//!
//! Looked up as apt reads its sources: one-line files (`sources.list`, then
//! `sources.list.d/*.list`), then deb822 files (`sources.list.d/*.sources`). The first
//! `deb` entry that serves the suite itself (not `-security` or `-updates`) wins.

use std::path::{Path, PathBuf};

/// The mirror URI (as written, trailing slash included) or None.
pub fn host_mirror(apt_dir: &Path, suite: &str) -> Option<String> {
    let list_d = apt_dir.join("sources.list.d");
    let one_line =
        std::iter::once(apt_dir.join("sources.list")).chain(files_with(&list_d, ".list"));
    for f in one_line {
        if let Some(m) = read(&f).and_then(|t| one_line_mirror(&t, suite)) {
            return Some(m);
        }
    }
    files_with(&list_d, ".sources")
        .into_iter()
        .find_map(|f| read(&f).and_then(|t| deb822_mirror(&t, suite)))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Files of `dir` ending in `suffix`, sorted by name (apt's order).
fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

/// `deb [options] URI suite components...`
pub(crate) fn one_line_mirror(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("deb")?;
        if !rest.starts_with([' ', '\t']) {
            return None; // deb-src, or a word that only starts with "deb"
        }
        let rest = rest.trim_start();
        // Options are in brackets and may contain spaces: [arch=amd64 signed-by=...].
        let rest = match rest.strip_prefix('[') {
            Some(opts) => opts.split_once(']')?.1,
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let (uri, s) = (words.next()?, words.next()?);
        (s == suite).then(|| uri.to_string())
    })
}

/// deb822 stanzas (separated by blank lines) with `Types: deb`, `Suites:` naming the
/// suite and a `URIs:` field; its first URI. `Enabled: no` stanzas are skipped, as apt
/// skips them. Field names are case-insensitive; comment lines are ignored.
pub(crate) fn deb822_mirror(text: &str, suite: &str) -> Option<String> {
    stanzas(text).into_iter().find_map(|fields| {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let words = |name: &str| get(name).unwrap_or("").split_whitespace();
        let enabled = !get("Enabled").is_some_and(|v| v.trim().eq_ignore_ascii_case("no"));
        let is_deb = words("Types").any(|t| t == "deb");
        let has_suite = words("Suites").any(|s| s == suite);
        let uri = words("URIs").next()?;
        (enabled && is_deb && has_suite).then(|| uri.to_string())
    })
}

/// Each stanza as (field, value) pairs; continuation lines are appended to the value.
fn stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = vec![];
    let mut cur: Vec<(String, String)> = vec![];
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            cur.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_SOURCES: &str = "Types: deb\n\
        # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
        URIs: http://deb.debian.org/debian\n\
        Suites: bookworm bookworm-updates\n\
        Components: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
        \n\
        Types: deb\n\
        URIs: http://deb.debian.org/debian-security\n\
        Suites: bookworm-security\n\
        Components: main\n";

    #[test]
    fn one_line_sources_with_options_and_other_suites() {
        let text = "# deb http://commented/debian bookworm main\n\
                    deb-src http://src/debian bookworm main\n\
                    deb http://security.debian.org/debian-security bookworm-security main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://mirror.lan/debian/ bookworm main\n\
                    deb http://later/debian bookworm main\n";
        assert_eq!(
            one_line_mirror(text, "bookworm").as_deref(),
            Some("http://mirror.lan/debian/")
        );
        assert_eq!(
            one_line_mirror(text, "bookworm-security").as_deref(),
            Some("http://security.debian.org/debian-security")
        );
        assert_eq!(one_line_mirror(text, "trixie"), None);
        assert_eq!(
            one_line_mirror("debx http://x/ bookworm main", "bookworm"),
            None
        );
    }

    #[test]
    fn deb822_sources_of_a_debian_12_host() {
        assert_eq!(
            deb822_mirror(DEBIAN_SOURCES, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(
            deb822_mirror(DEBIAN_SOURCES, "bookworm-security").as_deref(),
            Some("http://deb.debian.org/debian-security")
        );
        assert_eq!(deb822_mirror(DEBIAN_SOURCES, "trixie"), None);
    }

    #[test]
    fn deb822_skips_disabled_and_source_only_stanzas() {
        let text = "Types: deb-src\nURIs: http://src/debian\nSuites: bookworm\n\n\
                    Enabled: no\nTypes: deb\nURIs: http://off/debian\nSuites: bookworm\n\n\
                    types: deb deb-src\nuris: http://on/debian\n  http://second/debian\nsuites:\n  bookworm\n";
        assert_eq!(
            deb822_mirror(text, "bookworm").as_deref(),
            Some("http://on/debian")
        );
    }

    #[test]
    fn one_line_files_come_before_deb822_files() {
        let apt = tempfile::tempdir().unwrap();
        let d = apt.path().join("sources.list.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("debian.sources"), DEBIAN_SOURCES).unwrap();
        assert_eq!(
            host_mirror(apt.path(), "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        std::fs::write(
            d.join("local.list"),
            "deb http://lan/debian bookworm main\n",
        )
        .unwrap();
        assert_eq!(
            host_mirror(apt.path(), "bookworm").as_deref(),
            Some("http://lan/debian")
        );
        std::fs::write(
            apt.path().join("sources.list"),
            "deb http://first/debian bookworm main\n",
        )
        .unwrap();
        assert_eq!(
            host_mirror(apt.path(), "bookworm").as_deref(),
            Some("http://first/debian")
        );
        assert_eq!(host_mirror(apt.path(), "sid"), None);
    }
}
