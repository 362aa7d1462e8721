//! Rendering of template keys and values with minijinja (Jinja-compatible), repeated until
//! the text is stable so params may reference params, and the helper functions virt-maker
//! templates use (the original's `template/filters/__init__.py`: same names, arguments,
//! defaults and results).

use crate::clock;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error as JError, ErrorKind, UndefinedBehavior, Value};
use std::path::{Path, PathBuf};

/// How many passes before a value that keeps changing is an error (a self-reference).
const MAX_PASSES: usize = 16;

pub struct Renderer {
    env: Environment<'static>,
}

/// A /proc/meminfo value (kB) in MiB, as the original's free_memory()/total_memory().
fn read_proc(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

/// The local time's year, month, day, hour, minute and second (`TZ` as the C library
/// reads it), as the original's date.today()/datetime.now(); UTC if the C library cannot
/// say.
fn time_parts() -> [u64; 6] {
    let now = clock::now();
    clock::local_parts(now).unwrap_or_else(|| clock::utc_parts(now))
}

fn fail(msg: String) -> JError {
    JError::new(ErrorKind::InvalidOperation, msg)
}

/// `enumerate(to_enumerate)`: (index, item) pairs, as Python's enumerate() (a mapping's
/// keys, a string's characters), so `{% for i, x in enumerate(xs) %}` unpacks them.
fn enumerate_fn(v: Value) -> Result<Value, JError> {
    let items = v
        .try_iter()
        .map_err(|_| fail(format!("enumerate({v}): cannot enumerate a {}", v.kind())))?;
    Ok(Value::from(
        items
            .enumerate()
            .map(|(i, x)| Value::from(vec![Value::from(i), x]))
            .collect::<Vec<_>>(),
    ))
}

/// `int(number)` as Python's int(): an integer as it is, a float truncated toward zero,
/// a boolean 0/1, a string of an optionally signed decimal integer (surrounding
/// whitespace and single `_` between digits allowed); anything else is an error.
fn int_fn(v: Value) -> Result<Value, JError> {
    let bad = |why: &str| fail(format!("int({}): {why}", repr(&v)));
    match v.kind() {
        ValueKind::Bool => return Ok(Value::from(i64::from(v.is_true()))),
        ValueKind::Number => {
            if let Ok(i) = i128::try_from(v.clone()) {
                return Ok(Value::from(i));
            }
            let f = f64::try_from(v.clone()).map_err(|_| bad("not a number"))?;
            if !f.is_finite() {
                return Err(bad("cannot convert an infinite or NaN float to an integer"));
            }
            return Ok(Value::from(f.trunc() as i128));
        }
        _ => {}
    }
    let Some(s) = v.as_str() else {
        return Err(bad(&format!(
            "expected a string or a number, got {}",
            v.kind()
        )));
    };
    parse_python_int(s)
        .map(Value::from)
        .ok_or_else(|| bad("not a base-10 integer"))
}

/// Python's int(str) for base 10.
fn parse_python_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let ok_underscores = !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if digits.is_empty() || !ok_underscores {
        return None;
    }
    let n: i128 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -n } else { n })
}

/// A value as a message shows it: strings quoted.
fn repr(v: &Value) -> String {
    match v.as_str() {
        Some(s) => format!("'{s}'"),
        None => v.to_string(),
    }
}

/// `from_yaml(yaml_string)`: the value the YAML text describes.
fn from_yaml_fn(text: String) -> Result<Value, JError> {
    let v: serde_json::Value =
        yaml_serde::from_str(&text).map_err(|e| fail(format!("from_yaml: invalid YAML: {e}")))?;
    Ok(Value::from_serialize(&v))
}

/// Whether the helpers may fetch from the network (`download`): not in a dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downloads {
    Fetch,
    /// `download(url, path)` returns `path` without fetching (a dry run writes nothing).
    Skip,
}

/// `download(url, path)`: fetch `url` to `path` unless a file is there already, and return
/// `path` as given, as the original (which ran wget). The data goes to a partial file
/// renamed into place when complete; the directory is made when missing.
fn download_fn(base: &Path, mode: Downloads, url: &str, path: &str) -> Result<String, JError> {
    let dest = resolve(base, path);
    if dest.is_file() || mode == Downloads::Skip {
        return Ok(path.to_string());
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(fail(format!(
            "download({url}, {path}): only http:// and https:// URLs can be downloaded"
        )));
    }
    let failed = |e: &dyn std::fmt::Display| {
        fail(format!(
            "download({url}, {path}): to {}: {e}",
            dest.display()
        ))
    };
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| failed(&e))?;
    }
    let cancel = crate::image::cancel::Cancel::new();
    let req = crate::image::download::Request {
        url,
        dest: &dest,
        expected: None,
        cancel: &cancel,
        progress: false,
    };
    crate::image::download::fetch(&req, &mut |_| {}).map_err(|e| failed(&e))?;
    Ok(path.to_string())
}

/// `file_contents(path, ignore_missing=False)`: the file's text; with `ignore_missing`
/// true, '' when there is no such file.
fn file_contents_fn(
    base: &Path,
    path: String,
    ignore: Option<Value>,
    kwargs: Kwargs,
) -> Result<String, JError> {
    let ignore = match (ignore, kwargs.get::<Option<Value>>("ignore_missing")?) {
        (Some(_), Some(_)) => {
            return Err(fail(
                "file_contents(): ignore_missing given twice".to_string(),
            ))
        }
        (a, b) => a.or(b).is_some_and(|v| v.is_true()),
    };
    kwargs.assert_all_used()?;
    let p = resolve(base, &path);
    if ignore && !p.is_file() {
        return Ok(String::new());
    }
    std::fs::read_to_string(&p).map_err(|e| {
        let hint = if p.exists() {
            ""
        } else {
            " (ignore_missing=true gives '' instead)"
        };
        fail(format!("file_contents({path}): {}: {e}{hint}", p.display()))
    })
}

const WORDS: &[&str] = &[
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heron", "iris", "juniper",
    "kestrel", "lumen", "maple", "nimbus", "onyx", "pine", "quartz", "raven", "sable", "tundra",
    "umber", "vale", "willow", "xenon", "yarrow", "zephyr",
];

/// A random lower-case word of `min..=max` letters (the original's bounds: 4 and 16),
/// from /usr/share/dict/words when it has one, else from a built-in list.
fn random_word(min: usize, max: usize) -> String {
    let fits =
        |w: &&str| (min..=max).contains(&w.len()) && w.chars().all(|c| c.is_ascii_lowercase());
    let dict = std::fs::read_to_string("/usr/share/dict/words").ok();
    let words: Vec<&str> = dict.iter().flat_map(|d| d.lines()).filter(fits).collect();
    let words = if words.is_empty() {
        WORDS.iter().copied().filter(fits).collect()
    } else {
        words
    };
    crate::random::choose(&words)
        .map(|w| w.to_string())
        .unwrap_or_default()
}

/// `random_word(max_length=16, min_length=4)`, keywords as the original takes them.
fn random_word_fn(kwargs: Kwargs) -> Result<String, JError> {
    let max: Option<usize> = kwargs.get("max_length")?;
    let min: Option<usize> = kwargs.get("min_length")?;
    kwargs.assert_all_used()?;
    Ok(random_word(min.unwrap_or(4), max.unwrap_or(16)))
}

impl Renderer {
    /// `base` is the template's directory (file_contents resolves against it, then the
    /// working directory); `cache_dir` is what `cache_dir()` returns.
    #[cfg(test)]
    pub fn new(base: &Path, cache_dir: &Path) -> Renderer {
        Renderer::with_downloads(base, cache_dir, Downloads::Fetch)
    }

    /// As [`Renderer::new`], with `download()` fetching or not.
    pub fn with_downloads(base: &Path, cache_dir: &Path, downloads: Downloads) -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        // Zero-padded strings, as the original's strftime("%m") etc.
        let t = |i: usize| move || format!("{:02}", time_parts()[i]);
        env.add_function("year", t(0));
        env.add_function("month", t(1));
        env.add_function("day", t(2));
        env.add_function("hour", t(3));
        env.add_function("minute", t(4));
        env.add_function("second", t(5));
        env.add_function("now", || {
            let p = time_parts();
            format!(
                "{:04}-{:02}-{:02}_{:02}-{:02}-{:02}",
                p[0], p[1], p[2], p[3], p[4], p[5]
            )
        });
        env.add_function("random_word", random_word_fn);
        env.add_function("random_hostname", || {
            format!("{}-{}", random_word(4, 7), random_word(4, 7))
        });
        env.add_function("nproc", || {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        env.add_function("free_memory", || {
            read_proc("/proc/meminfo", "MemAvailable:")
        });
        env.add_function("total_memory", || read_proc("/proc/meminfo", "MemTotal:"));
        let dir: PathBuf = base.to_path_buf();
        env.add_function(
            "file_contents",
            move |path: String, ignore: Option<Value>, kwargs: Kwargs| {
                file_contents_fn(&dir, path, ignore, kwargs)
            },
        );
        let dir: PathBuf = base.to_path_buf();
        env.add_function("download", move |url: String, path: String| {
            download_fn(&dir, downloads, &url, &path)
        });
        env.add_function("enumerate", enumerate_fn);
        env.add_function("int", int_fn);
        env.add_function("from_yaml", from_yaml_fn);
        let cache = cache_dir.display().to_string();
        env.add_function("cache_dir", move || cache.clone());
        env.add_function("at_least", |min: Value, v: Value| -> Value {
            match (min.as_i64(), v.as_i64()) {
                (Some(a), Some(b)) => Value::from(a.max(b)),
                _ => v,
            }
        });
        Renderer { env }
    }

    /// Render `text` with `ctx` until it no longer changes.
    pub fn render(&self, text: &str, ctx: &serde_json::Value) -> Result<String, String> {
        let mut cur = text.to_string();
        for _ in 0..MAX_PASSES {
            if !cur.contains("{{") && !cur.contains("{%") && !cur.contains("{#") {
                return Ok(cur);
            }
            let next = self.env.render_str(&cur, ctx).map_err(|e| describe(&e))?;
            if next == cur {
                return Ok(cur);
            }
            cur = next;
        }
        Err(format!(
            "'{text}' does not settle after {MAX_PASSES} renderings (does it refer to itself?)"
        ))
    }

    /// Render every key and string value of `v`, recursively.
    pub fn render_value(
        &self,
        v: &serde_json::Value,
        ctx: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        use serde_json::Value as J;
        Ok(match v {
            J::String(s) => J::String(self.render(s, ctx)?),
            J::Array(items) => J::Array(
                items
                    .iter()
                    .map(|i| self.render_value(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    out.insert(self.render(k, ctx)?, self.render_value(v, ctx)?);
                }
                J::Object(out)
            }
            other => other.clone(),
        })
    }

    /// Render params against themselves until stable.
    pub fn render_params(
        &self,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let mut cur = serde_json::Value::Object(params.clone());
        for _ in 0..MAX_PASSES {
            let next = self.render_value(&cur, &cur)?;
            if next == cur {
                break;
            }
            cur = next;
        }
        match cur {
            serde_json::Value::Object(m) => Ok(m),
            _ => unreachable!("params stay a mapping"),
        }
    }
}

fn describe(e: &JError) -> String {
    let mut msg = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.to_string());
    if e.kind() == ErrorKind::UndefinedError {
        msg = format!("undefined value ({msg}); is it missing from params?");
    }
    msg
}

/// A path in a template, resolved as paths in configuration files are.
pub use crate::config::plan::resolve;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r() -> Renderer {
        Renderer::new(Path::new("/nonexistent"), Path::new("/cache"))
    }

    #[test]
    fn params_may_reference_params() {
        let p = json!({"name": "web", "host": "{{ name }}-{{ n }}", "n": "{{ 1 + 1 }}", "fqdn": "{{ host }}.lan"});
        let out = r().render_params(p.as_object().unwrap()).unwrap();
        assert_eq!(out["fqdn"], "web-2.lan");
    }

    #[test]
    fn keys_and_values_are_rendered() {
        let ctx = json!({"k": "hostname", "v": "box"});
        let out = r()
            .render_value(&json!({"{{ k }}": ["{{ v }}", 3]}), &ctx)
            .unwrap();
        assert_eq!(out, json!({"hostname": ["box", 3]}));
    }

    #[test]
    fn helpers_work() {
        let ctx = json!({});
        let r = r();
        assert_eq!(r.render("{{ at_least(4, 2) }}", &ctx).unwrap(), "4");
        assert_eq!(r.render("{{ cache_dir() }}", &ctx).unwrap(), "/cache");
        assert!(r.render("{{ year() }}", &ctx).unwrap().starts_with("20"));
        // The original's forms: zero-padded strings, now() as %Y-%m-%d_%H-%M-%S, MiB.
        for f in ["month", "day", "hour", "minute", "second"] {
            let v = r.render(&format!("{{{{ {f}() }}}}"), &ctx).unwrap();
            assert_eq!(v.len(), 2, "{f}: {v}");
        }
        let now = r.render("{{ now() }}", &ctx).unwrap();
        assert_eq!(now.len(), 19, "{now}");
        assert_eq!((&now[10..11], &now[13..14]), ("_", "-"), "{now}");
        let mib: u64 = r
            .render("{{ total_memory() }}", &ctx)
            .unwrap()
            .parse()
            .unwrap();
        assert!((64..16 << 20).contains(&mib), "{mib}");
        assert!(
            r.render("{{ nproc() }}", &ctx)
                .unwrap()
                .parse::<u32>()
                .unwrap()
                >= 1
        );
        assert!(r
            .render("{{ random_hostname() }}", &ctx)
            .unwrap()
            .contains('-'));
        // The original's keywords (examples/30-using_filters uses max_length).
        let w = r
            .render("{{ random_word(max_length=5, min_length=5) }}", &ctx)
            .unwrap();
        assert_eq!(w.len(), 5, "{w}");
        assert!(r.render("{{ random_word(max_length=100) }}", &ctx).is_ok());
        assert!(r.render("{{ random_word(length=3) }}", &ctx).is_err());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("motd"), "hello").unwrap();
        let r = Renderer::new(dir.path(), Path::new("/c"));
        assert_eq!(
            r.render("{{ file_contents('motd') }}", &ctx).unwrap(),
            "hello"
        );
        let err = r.render("{{ file_contents('nope') }}", &ctx).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn the_originals_other_helpers() {
        let ctx = json!({"xs": ["a", "b"], "n": "42", "f": 3.9, "m": {"k": 1}});
        let r = r();
        let out = |t: &str| r.render(t, &ctx).unwrap();
        // enumerate: (index, item) pairs, unpacked by a for loop.
        assert_eq!(
            out("{% for i, x in enumerate(xs) %}{{ i }}={{ x }};{% endfor %}"),
            "0=a;1=b;"
        );
        assert_eq!(
            out("{% for i, k in enumerate(m) %}{{ i }}{{ k }}{% endfor %}"),
            "0k"
        );
        assert_eq!(out("{{ enumerate('ab') | list | length }}"), "2");
        assert!(r.render("{{ enumerate(3) }}", &ctx).is_err());
        // int: Python's int().
        assert_eq!(out("{{ int(n) + 1 }}"), "43");
        assert_eq!(out("{{ int(f) }}"), "3");
        assert_eq!(out("{{ int(-2.5) }}"), "-2");
        assert_eq!(out("{{ int(' -1_000 ') }}"), "-1000");
        assert_eq!(out("{{ int(true) }}"), "1");
        for bad in ["'3.5'", "'abc'", "''", "'1__0'", "'_1'", "none", "xs"] {
            let e = r
                .render(&format!("{{{{ int({bad}) }}}}"), &ctx)
                .unwrap_err();
            assert!(e.starts_with("int("), "{bad}: {e}");
        }
        let e = r.render("{{ int('x8') }}", &ctx).unwrap_err();
        assert!(e.contains("int('x8'): not a base-10 integer"), "{e}");
        // from_yaml: the value the text describes.
        assert_eq!(out("{{ from_yaml('a: [1, 2]').a[1] }}"), "2");
        assert_eq!(out("{{ from_yaml('- x\n- y') | join(',') }}"), "x,y");
        let e = r.render("{{ from_yaml('a: [') }}", &ctx).unwrap_err();
        assert!(e.contains("from_yaml: invalid YAML"), "{e}");
    }

    #[test]
    fn file_contents_ignore_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("motd"), "hello").unwrap();
        let r = Renderer::new(dir.path(), Path::new("/c"));
        let ctx = json!({});
        let out = |t: &str| r.render(t, &ctx);
        assert_eq!(out("{{ file_contents('motd', true) }}").unwrap(), "hello");
        assert_eq!(out("[{{ file_contents('nope', true) }}]").unwrap(), "[]");
        assert_eq!(
            out("[{{ file_contents('nope', ignore_missing=true) }}]").unwrap(),
            "[]"
        );
        let e = out("{{ file_contents('nope', ignore_missing=false) }}").unwrap_err();
        assert!(
            e.contains("file_contents(nope)") && e.contains("ignore_missing"),
            "{e}"
        );
        assert!(out("{{ file_contents('motd', ignore=true) }}").is_err());
        // A directory is not a file: '' when ignored, an error otherwise (as open()).
        std::fs::create_dir(dir.path().join("d")).unwrap();
        assert_eq!(out("[{{ file_contents('d', true) }}]").unwrap(), "[]");
        assert!(out("{{ file_contents('d') }}").is_err());
    }

    #[test]
    fn undefined_and_self_reference_are_errors() {
        let err = r().render("{{ missing }}", &json!({})).unwrap_err();
        assert!(err.contains("missing from params"), "{err}");
        let err = r()
            .render("{{ a }}", &json!({"a": "x{{ a }}"}))
            .unwrap_err();
        assert!(err.contains("does not settle"), "{err}");
    }
}
