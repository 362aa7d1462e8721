//! Rendering of template keys and values with minijinja (Jinja-compatible), repeated until
//! the text is stable so params may reference params, and the helper functions virt-maker
//! templates use.

use minijinja::{Environment, Error as JError, ErrorKind, UndefinedBehavior, Value};
use std::path::Path;

/// How many passes before a value that keeps changing is an error (a self-reference).
const MAX_PASSES: usize = 16;

pub struct Renderer {
    env: Environment<'static>,
}

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
        * 1024
}

/// Local time parts (UTC; the original used local time, this host runs in UTC).
fn time_parts() -> [u64; 6] {
    crate::records::utc_parts(crate::stepcache::now())
}

const WORDS: &[&str] = &[
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heron", "iris", "juniper",
    "kestrel", "lumen", "maple", "nimbus", "onyx", "pine", "quartz", "raven", "sable", "tundra",
    "umber", "vale", "willow", "xenon", "yarrow", "zephyr",
];

fn random_word() -> String {
    let dict = std::fs::read_to_string("/usr/share/dict/words").ok();
    let words: Vec<&str> = match &dict {
        Some(d) => d
            .lines()
            .filter(|w| w.len() >= 4 && w.chars().all(|c| c.is_ascii_lowercase()))
            .collect(),
        None => vec![],
    };
    let words = if words.is_empty() {
        WORDS.to_vec()
    } else {
        words
    };
    crate::random::choose(&words)
        .map(|w| w.to_string())
        .unwrap_or_default()
}

impl Renderer {
    /// `base` is the template's directory (file_contents resolves against it, then the
    /// working directory); `cache_dir` is what `cache_dir()` returns.
    pub fn new(base: &Path, cache_dir: &Path) -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let t = |i: usize| move || time_parts()[i];
        env.add_function("year", t(0));
        env.add_function("month", t(1));
        env.add_function("day", t(2));
        env.add_function("hour", t(3));
        env.add_function("minute", t(4));
        env.add_function("second", t(5));
        env.add_function("now", || {
            let p = time_parts();
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                p[0], p[1], p[2], p[3], p[4], p[5]
            )
        });
        env.add_function("random_word", random_word);
        env.add_function("random_hostname", || {
            format!("{}-{}", random_word(), random_word())
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
        let base = base.to_path_buf();
        env.add_function("file_contents", move |path: String| {
            let p = resolve(&base, &path);
            std::fs::read_to_string(&p).map_err(|e| {
                JError::new(
                    ErrorKind::InvalidOperation,
                    format!("file_contents({path}): {}: {e}", p.display()),
                )
            })
        });
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
    fn undefined_and_self_reference_are_errors() {
        let err = r().render("{{ missing }}", &json!({})).unwrap_err();
        assert!(err.contains("missing from params"), "{err}");
        let err = r()
            .render("{{ a }}", &json!({"a": "x{{ a }}"}))
            .unwrap_err();
        assert!(err.contains("does not settle"), "{err}");
    }
}
