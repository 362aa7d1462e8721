//! virt-maker template files: YAML with `params` and `spec {import, steps, export}`,
//! `from` (merged before this file) and `to` (merged after), `before`/`after` (templates
//! built first/afterwards), every key and string value rendered with the params until
//! stable, `-p` overrides, and validation against the runner table. Nothing is built
//! from a template that does not validate.
//!
//! Paths in a template resolve relative to the template file; where nothing is found
//! there but the working directory has it (the original resolved against the working
//! directory), that is used.

pub use super::render::Downloads;
use super::render::{resolve, Renderer};
use super::runners::{self, Role};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One runner invocation, validated, with its arguments normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub runner: String,
    pub args: Map<String, Value>,
    /// "import", "step 3", "export": where it is in the template, for messages.
    pub location: String,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub file: PathBuf,
    /// The directory relative paths resolve against.
    pub dir: PathBuf,
    /// None only in a template that just names others (`before`/`after`, no `spec`).
    pub import: Option<Step>,
    pub steps: Vec<Step>,
    pub export: Option<Step>,
    pub before: Vec<PathBuf>,
    pub after: Vec<PathBuf>,
}

fn err(file: &Path, location: impl Into<String>, message: impl Into<String>) -> Error {
    let location = location.into();
    Error::Template {
        file: file.to_path_buf(),
        location: if location.is_empty() {
            String::new()
        } else {
            format!("{location}: ")
        },
        message: message.into(),
    }
}

/// Parse a `-p key=value` override: the value as JSON when it parses, else a string.
pub fn parse_param(s: &str) -> Result<(String, Value)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| Error::Usage(format!("-p {s}: expected KEY=VALUE")))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.trim().to_string(), value))
}

/// Read a YAML file into a JSON value (a mapping), naming the file and line on errors.
fn read_yaml(file: &Path) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(file).map_err(|e| err(file, "", e.to_string()))?;
    let v: Value = yaml_serde::from_str(&text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!("line {}", l.line()))
            .unwrap_or_default();
        err(file, loc, format!("invalid YAML: {e}"))
    })?;
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(err(file, "", "a template is a YAML mapping (params, spec)")),
    }
}

/// Deep merge: mappings merged key by key, lists concatenated (`base` first), scalars of
/// `over` win.
pub fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match b.get(k) {
                    Some(bv) => merge(bv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(b), Value::Array(o)) => {
            Value::Array(b.iter().chain(o.iter()).cloned().collect())
        }
        (_, Value::Null) => base.clone(),
        _ => over.clone(),
    }
}

fn paths_of(file: &Path, dir: &Path, key: &str, v: Option<&Value>) -> Result<Vec<PathBuf>> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![resolve(dir, s)]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(resolve(dir, s)),
                _ => Err(err(file, key, "expected a file name")),
            })
            .collect(),
        Some(_) => Err(err(file, key, "expected a file name or a list of them")),
    }
}

/// The document with `from` and `to` merged in (recursively), before rendering.
fn load_merged(file: &Path, depth: usize) -> Result<Map<String, Value>> {
    if depth > 16 {
        return Err(err(file, "from", "'from'/'to' nest too deep (a cycle?)"));
    }
    let mut doc = read_yaml(file)?;
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let from = paths_of(file, &dir, "from", doc.get("from"))?;
    let to = paths_of(file, &dir, "to", doc.get("to"))?;
    doc.remove("from");
    doc.remove("to");
    let mut cur = Value::Object(Map::new());
    for f in &from {
        cur = merge(&cur, &Value::Object(load_merged(f, depth + 1)?));
    }
    cur = merge(&cur, &Value::Object(doc));
    for f in &to {
        cur = merge(&cur, &Value::Object(load_merged(f, depth + 1)?));
    }
    match cur {
        Value::Object(m) => Ok(m),
        _ => unreachable!(),
    }
}

/// Steps are single-key maps; nested lists are flattened.
fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other.clone()),
    }
}

fn one_runner(file: &Path, location: &str, v: &Value, role: Role) -> Result<Step> {
    let role_name = match role {
        Role::Importer => "importer",
        Role::Step => "step",
        Role::Exporter => "exporter",
    };
    let (name, args) = match v {
        Value::Object(m) if m.len() == 1 => m.iter().next().expect("one entry"),
        Value::String(s) => {
            // `- ssh_keygen` without a colon.
            return one_runner(
                file,
                location,
                &Value::Object(Map::from_iter([(s.clone(), Value::Null)])),
                role,
            );
        }
        _ => {
            return Err(err(
                file,
                location,
                format!("expected one {role_name} as 'name: arguments', found {}", v),
            ))
        }
    };
    let valid = || runners::of_role(role).map(|r| r.name);
    let Some(def) = runners::find(name).filter(|d| d.role == role) else {
        let hint = crate::config::schema::nearest(name, valid())
            .map(|n| format!(" (did you mean '{n}'?)"))
            .unwrap_or_default();
        return Err(err(
            file,
            format!("{location}: key '{name}'"),
            format!(
                "unknown {role_name} '{name}'{hint}; valid: {}",
                valid().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    if let Some(why) = def.unsupported {
        return Err(err(file, format!("{location}: key '{name}'"), why));
    }
    let args = runners::normalize(def, args).map_err(|(key, msg)| {
        let at = if key.is_empty() {
            format!("{location} ({name})")
        } else {
            format!("{location} ({name}): key '{key}'")
        };
        err(file, at, msg)
    })?;
    Ok(Step {
        runner: name.clone(),
        args,
        location: location.to_string(),
    })
}

/// The download importer's values that would otherwise fail only after the download.
fn check_download(file: &Path, step: &Step) -> Result<()> {
    if step.runner != "download" {
        return Ok(());
    }
    let at = |key: &str| format!("import (download): key '{key}'");
    let arg = |key: &str| step.args.get(key).and_then(Value::as_str);
    if let Some(c) = arg("checksum") {
        super::fetch::checksum(c).map_err(|e| err(file, at("checksum"), e.to_string()))?;
    }
    let size = match step.args.get("resize") {
        Some(Value::Object(m)) => m.get("size").and_then(Value::as_str),
        _ => arg("resize"),
    };
    if let Some(r) = size {
        crate::size::parse(r).map_err(|e| err(file, at("resize"), e.to_string()))?;
    }
    Ok(())
}

impl Template {
    /// Load, merge, render and validate a template file.
    pub fn load(file: &Path, overrides: &[(String, Value)], cache_dir: &Path) -> Result<Template> {
        Template::load_with(file, overrides, cache_dir, Downloads::Fetch)
    }

    /// As [`Template::load`]; with [`Downloads::Skip`] (a dry run) the `download()`
    /// helper fetches nothing.
    pub fn load_with(
        file: &Path,
        overrides: &[(String, Value)],
        cache_dir: &Path,
        downloads: Downloads,
    ) -> Result<Template> {
        Template::from_doc_with(file, load_merged(file, 0)?, overrides, cache_dir, downloads)
    }

    /// Render and validate a template document that came from `file` (a YAML template,
    /// or a templates.d file whose `steps` make one): messages name `file`, and relative
    /// paths resolve against its directory.
    pub fn from_doc(
        file: &Path,
        doc: Map<String, Value>,
        overrides: &[(String, Value)],
        cache_dir: &Path,
    ) -> Result<Template> {
        Template::from_doc_with(file, doc, overrides, cache_dir, Downloads::Fetch)
    }

    fn from_doc_with(
        file: &Path,
        doc: Map<String, Value>,
        overrides: &[(String, Value)],
        cache_dir: &Path,
        downloads: Downloads,
    ) -> Result<Template> {
        let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        for key in doc.keys() {
            if !["params", "spec", "before", "after"].contains(&key.as_str()) {
                let hint = crate::config::schema::nearest(
                    key,
                    ["params", "spec", "before", "after", "from", "to"],
                )
                .map(|n| format!(" (did you mean '{n}'?)"))
                .unwrap_or_default();
                return Err(err(
                    file,
                    format!("key '{key}'"),
                    format!("unknown top-level key{hint}"),
                ));
            }
        }
        let renderer = Renderer::with_downloads(&dir, cache_dir, downloads);
        let mut params = match doc.get("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(err(file, "params", "expected a mapping")),
        };
        for (k, v) in overrides {
            params.insert(k.clone(), v.clone());
        }
        let params = renderer
            .render_params(&params)
            .map_err(|e| err(file, "params", e))?;
        let ctx = Value::Object(params.clone());
        let render = |what: &str, v: &Value| {
            renderer
                .render_value(v, &ctx)
                .map_err(|e| err(file, what, e))
        };
        let before = paths_of(
            file,
            &dir,
            "before",
            Some(&render(
                "before",
                doc.get("before").unwrap_or(&Value::Null),
            )?),
        )?;
        let after = paths_of(
            file,
            &dir,
            "after",
            Some(&render("after", doc.get("after").unwrap_or(&Value::Null))?),
        )?;
        let spec =
            match doc.get("spec") {
                Some(Value::Object(m)) => m.clone(),
                // A template that only builds others is complete without a spec.
                None | Some(Value::Null) if !(before.is_empty() && after.is_empty()) => {
                    return Ok(Template {
                        file: file.to_path_buf(),
                        dir,
                        import: None,
                        steps: vec![],
                        export: None,
                        before,
                        after,
                    })
                }
                _ => return Err(err(
                    file,
                    "spec",
                    "a template needs a 'spec' mapping with 'import' (or only 'before'/'after')",
                )),
            };
        for key in spec.keys() {
            if !["import", "steps", "export"].contains(&key.as_str()) {
                let hint = crate::config::schema::nearest(key, ["import", "steps", "export"])
                    .map(|n| format!(" (did you mean '{n}'?)"))
                    .unwrap_or_default();
                return Err(err(
                    file,
                    format!("spec: key '{key}'"),
                    format!("unknown key{hint}"),
                ));
            }
        }
        let import = spec
            .get("import")
            .ok_or_else(|| err(file, "spec", "'import' is required (exactly one importer)"))?;
        let import = one_runner(file, "import", &render("import", import)?, Role::Importer)?;
        check_download(file, &import)?;
        let mut raw_steps = vec![];
        if let Some(s) = spec.get("steps") {
            flatten(s, &mut raw_steps);
        }
        let mut steps = vec![];
        for (i, s) in raw_steps.iter().filter(|s| !s.is_null()).enumerate() {
            let location = format!("step {}", i + 1);
            steps.push(one_runner(
                file,
                &location,
                &render(&location, s)?,
                Role::Step,
            )?);
        }
        let export = match spec.get("export") {
            None | Some(Value::Null) => None,
            Some(e) => Some(one_runner(
                file,
                "export",
                &render("export", e)?,
                Role::Exporter,
            )?),
        };
        Ok(Template {
            file: file.to_path_buf(),
            dir,
            import: Some(import),
            steps,
            export,
            before,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(files: &[(&str, &str)], main: &str, overrides: &[(String, Value)]) -> Result<Template> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let t = Template::load(&dir.path().join(main), overrides, Path::new("/cache"));
        drop(dir);
        t
    }

    const BASIC: &str = "params:\n  name: web\n  host: '{{ name }}-1'\nspec:\n  import:\n    virt-builder:\n      image: debian-12\n      size: 6G\n  steps:\n    - run: echo hi\n    - [ {hostname: '{{ host }}'}, {install: 'a,b'} ]\n  export:\n    qcow2:\n      path: 'images/{{ name }}.qcow2'\n";

    #[test]
    fn a_template_loads_renders_and_flattens() {
        let t = load(&[("t.yml", BASIC)], "t.yml", &[]).unwrap();
        assert_eq!(t.import.as_ref().unwrap().runner, "virt-builder");
        assert_eq!(t.import.as_ref().unwrap().args["size"], "6G");
        let names: Vec<_> = t.steps.iter().map(|s| s.runner.as_str()).collect();
        assert_eq!(names, ["run", "hostname", "install"]);
        assert_eq!(t.steps[1].args["name"], "web-1");
        assert_eq!(t.export.unwrap().args["path"], "images/web.qcow2");
    }

    #[test]
    fn overrides_win_and_are_parsed_as_json() {
        let o = [parse_param("name=db").unwrap(), parse_param("n=3").unwrap()];
        assert_eq!(o[1].1, json!(3));
        let t = load(&[("t.yml", BASIC)], "t.yml", &o).unwrap();
        assert_eq!(t.steps[1].args["name"], "db-1");
    }

    #[test]
    fn from_prepends_lists_and_to_appends_them() {
        let base = "params:\n  name: base\n  keep: true\nspec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - run: from-step\n";
        let main = "from: base.yml\nto: [tail.yml]\nparams:\n  name: main\nspec:\n  steps:\n    - run: main-step-{{ name }}-{{ keep }}\n";
        let tail = "spec:\n  steps:\n    - run: to-step\n  export:\n    raw: out.img\n";
        let t = load(
            &[("base.yml", base), ("main.yml", main), ("tail.yml", tail)],
            "main.yml",
            &[],
        )
        .unwrap();
        let scripts: Vec<_> = t
            .steps
            .iter()
            .map(|s| s.args["script"].as_str().unwrap())
            .collect();
        // main's params override base's, and base's others are kept.
        assert_eq!(scripts, ["from-step", "main-step-main-True", "to-step"]);
        assert_eq!(t.export.unwrap().runner, "raw");
    }

    #[test]
    fn a_template_of_only_before_and_after_is_valid_and_a_spec_needs_an_import() {
        let t = load(
            &[("all.yml", "before: a.yml\nafter: [b.yml]\n")],
            "all.yml",
            &[],
        )
        .unwrap();
        assert!(t.import.is_none() && t.steps.is_empty() && t.export.is_none());
        assert_eq!(t.before.len() + t.after.len(), 2);
        let e = load(&[("e.yml", "params: {a: 1}\n")], "e.yml", &[]).unwrap_err();
        assert!(e.to_string().contains("e.yml: spec: "), "{e}");
        let e = load(
            &[("s.yml", "before: a.yml\nspec:\n  steps: [run: x]\n")],
            "s.yml",
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("'import' is required"), "{e}");
    }

    #[test]
    fn download_resize_is_a_size_or_the_originals_mapping() {
        let doc = |resize: &str| {
            format!("spec:\n  import:\n    download:\n      url: https://x/y.qcow2\n      resize: {resize}\n")
        };
        let t = load(&[("t.yml", &doc("10G"))], "t.yml", &[]).unwrap();
        assert_eq!(t.import.unwrap().args["resize"], "10G");
        let t = load(
            &[(
                "t.yml",
                &doc("{size: 10G, expand: /dev/sda5, /dev/sda1: +1G}"),
            )],
            "t.yml",
            &[],
        )
        .unwrap();
        assert_eq!(
            t.import.unwrap().args["resize"],
            json!({"size": "10G", "expand": "/dev/sda5", "/dev/sda1": "+1G"})
        );
        for (bad, needle) in [
            ("{expand: /dev/sda5}", "needs 'size'"),
            ("{size: 10G, grow: /dev/sda1}", "key 'resize.grow'"),
            ("{size: lots}", "key 'resize'"),
            ("[10G]", "must be a size or mapping"),
        ] {
            let e = load(&[("t.yml", &doc(bad))], "t.yml", &[]).unwrap_err();
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn merge_semantics() {
        let m = merge(
            &json!({"a": {"x": 1, "l": [1]}, "s": 1}),
            &json!({"a": {"y": 2, "l": [2]}, "s": 2}),
        );
        assert_eq!(m, json!({"a": {"x": 1, "y": 2, "l": [1, 2]}, "s": 2}));
    }

    #[test]
    fn errors_name_file_step_key_and_nearest_name() {
        let bad =
            "spec:\n  import:\n    virt-builder: d\n  steps:\n    - run: ok\n    - hostnme: x\n";
        let e = load(&[("bad.yml", bad)], "bad.yml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.yml: step 2: key 'hostnme'"), "{e}");
        assert!(e.contains("did you mean 'hostname'"), "{e}");
        let bad = "spec:\n  import:\n    virt-builder: d\n  steps:\n    - copy: {dest: /x, content: y, chmood: '0644'}\n";
        let e = load(&[("b.yml", bad)], "b.yml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.yml: step 1 (copy): key 'chmood'"), "{e}");
        assert!(e.contains("did you mean 'chmod'"), "{e}");
        let bad = "spec:\n  steps: []\n";
        let e = load(&[("c.yml", bad)], "c.yml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("'import' is required"), "{e}");
        let bad = "spec:\n  import:\n    isoboot: {}\n";
        let e = load(&[("d.yml", bad)], "d.yml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported"), "{e}");
        let bad = "spec:\n  import: [\n";
        let e = load(&[("e.yml", bad)], "e.yml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("e.yml: line"), "{e}");
        let bad = "spec:\n  import:\n    virt-builder: '{{ nope }}'\n";
        let e = load(&[("f.yml", bad)], "f.yml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.yml: import: undefined"), "{e}");
    }
}
