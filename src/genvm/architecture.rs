//! Architecture files: the YAML the original `gen-vm-image multiple` reads.
//!
//! ```yaml
//! owner: <string>
//! images:
//!   <key>:
//!     name: <string>
//!     version: <string>          # optional; `9.10` stays "9.10"
//!     size: <size>               # qemu-img syntax: 10G, 512M, 1073741824
//!     format: qcow2 | raw        # optional, qcow2
//!     shrink: <bool>             # optional (ours): allow a size below the input's
//!     input:                     # optional: a path or URL, or:
//!       path | url: <string>
//!       format: <string>         # optional: found out when not given
//!       checksum:                # optional
//!         type: <hashlib name>
//!         value: <hex>
//!         buffer_size: <int>     # optional
//!         read_bytes: <int>      # optional
//! ```
//!
//! The older format's `get_url` and image-level `checksum` are read as `input.url` and
//! `input.checksum`. Every mistake is an error naming the image and the key: a missing
//! attribute is return code 4, a wrong type 5, a bad size 11. A key neither tool reads
//! (the original's own test files have `output:` and `extra_kwargs:`, which it ignores) is
//! a warning naming the file, the image and the key: the file still builds, as it did.
//!
//! Scalars keep their text as written: the file is read twice, once as YAML values to
//! check the structure and types, once into strings (which keep `9.10`, `010`, `1e3`).

use super::{Failure, ReturnCode};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use yaml_serde::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    pub owner: String,
    pub images: Vec<ImageSpec>,
    /// Keys that are read by neither tool: said to the user, not fatal.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    /// The key under `images`.
    pub key: String,
    pub name: String,
    pub version: Option<String>,
    pub size: String,
    pub format: String,
    pub input: Option<InputSpec>,
    pub shrink: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// A path or URL.
    pub location: String,
    pub format: Option<String>,
    pub checksum: Option<ChecksumSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChecksumSpec {
    pub kind: String,
    pub value: String,
    pub buffer_size: Option<u64>,
    pub read_bytes: Option<u64>,
}

const IMAGE_KEYS: [&str; 8] = [
    "name", "version", "size", "format", "input", "shrink", "get_url", "checksum",
];
const INPUT_KEYS: [&str; 4] = ["url", "path", "format", "checksum"];
const CHECKSUM_KEYS: [&str; 4] = ["type", "value", "buffer_size", "read_bytes"];

/// Read and check an architecture file.
pub fn load(path: &Path) -> Result<Architecture, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Failure::new(
            ReturnCode::PathNotFound,
            format!("architecture file not found: {}", path.display()),
        ),
        _ => Failure::new(
            ReturnCode::Load,
            format!("cannot read the architecture file {}: {e}", path.display()),
        ),
    })?;
    let mut arch = parse(&text)
        .map_err(|f| Failure::new(f.code, format!("{}: {}", path.display(), f.message)))?;
    for w in &mut arch.warnings {
        *w = format!("{}: {w}", path.display());
    }
    Ok(arch)
}

fn missing(msg: String) -> Failure {
    Failure::new(ReturnCode::MissingAttribute, msg)
}

fn invalid(msg: String) -> Failure {
    Failure::new(ReturnCode::InvalidAttribute, msg)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A scalar that reads as text: strings and numbers (kept as written).
fn is_text(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_))
}

/// Keys of `map` not in `known`, as warnings: the original reads only the keys it knows
/// and ignores the rest, so a file written for it must still build.
fn unknown_keys(
    map: &yaml_serde::Mapping,
    known: &[&str],
    place: &str,
    warnings: &mut Vec<String>,
) {
    for k in map.keys() {
        let name = key_text(k);
        if !known.contains(&name.as_str()) {
            warnings.push(format!(
                "{place}: key '{name}' is ignored (known keys: {})",
                known.join(", ")
            ));
        }
    }
}

/// Parse the text of an architecture file.
pub fn parse(text: &str) -> Result<Architecture, Failure> {
    let load_error = |e: yaml_serde::Error| {
        Failure::new(
            ReturnCode::Load,
            format!("cannot load the architecture: {e}"),
        )
    };
    let value: Value = yaml_serde::from_str(text).map_err(load_error)?;
    let top = match &value {
        Value::Null => {
            return Err(Failure::new(
                ReturnCode::Load,
                "the architecture file is empty".to_string(),
            ))
        }
        Value::Mapping(m) => m,
        other => {
            return Err(invalid(format!(
                "the architecture must be a mapping with 'owner' and 'images', not {}",
                type_name(other)
            )))
        }
    };
    let mut warnings = vec![];
    unknown_keys(top, &["owner", "images"], "the architecture", &mut warnings);
    match top.get("owner") {
        None | Some(Value::Null) => return Err(missing("missing attribute 'owner'".into())),
        Some(v) if !is_text(v) => {
            return Err(invalid(format!(
                "'owner' must be a string, not {}",
                type_name(v)
            )))
        }
        Some(_) => {}
    }
    let images = match top.get("images") {
        None | Some(Value::Null) => return Err(missing("missing attribute 'images'".into())),
        Some(Value::Mapping(m)) if m.is_empty() => {
            return Err(missing("'images' lists no image".into()))
        }
        Some(Value::Mapping(m)) => m,
        Some(v) => {
            return Err(invalid(format!(
                "'images' must be a mapping of image keys to images, not {}",
                type_name(v)
            )))
        }
    };

    // First reading: structure, keys and types, image by image.
    for (key, value) in images {
        check_image(&key_text(key), value, &mut warnings)?;
    }

    // Second reading: the same file as strings, for the scalars' text as written.
    let raw: RawArchitecture = yaml_serde::from_str(text).map_err(load_error)?;
    let raw_images = raw.images.map(|o| o.0).unwrap_or_default();
    let mut specs = Vec::with_capacity(raw_images.len());
    for (key, raw) in raw_images {
        specs.push(image_spec(key, raw)?);
    }
    Ok(Architecture {
        owner: raw.owner.unwrap_or_default(),
        images: specs,
        warnings,
    })
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => yaml_serde::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn check_image(key: &str, value: &Value, warnings: &mut Vec<String>) -> Result<(), Failure> {
    let place = format!("image '{key}'");
    let map = match value {
        Value::Mapping(m) => m,
        other => {
            return Err(invalid(format!(
                "{place} must be a mapping with 'name' and 'size', not {}",
                type_name(other)
            )))
        }
    };
    unknown_keys(map, &IMAGE_KEYS, &place, warnings);
    let field = |name: &str| map.get(name).filter(|v| !v.is_null());
    let text_field = |name: &str, required: bool| -> Result<(), Failure> {
        match field(name) {
            None if required => Err(missing(format!("{place}: missing attribute '{name}'"))),
            Some(v) if !is_text(v) => Err(invalid(format!(
                "{place}: '{name}' must be a string, not {}",
                type_name(v)
            ))),
            _ => Ok(()),
        }
    };
    text_field("name", true)?;
    text_field("size", true)?;
    text_field("version", false)?;
    text_field("format", false)?;
    text_field("get_url", false)?;
    if let Some(v) = field("shrink") {
        if !matches!(v, Value::Bool(_)) {
            return Err(invalid(format!(
                "{place}: 'shrink' must be true or false, not {}",
                type_name(v)
            )));
        }
    }
    let legacy = field("get_url").is_some() || field("checksum").is_some();
    match field("input") {
        Some(_) if legacy => Err(invalid(format!(
            "{place}: 'input' and the older 'get_url'/'checksum' keys cannot be combined"
        ))),
        Some(Value::String(_)) => Ok(()),
        Some(Value::Mapping(m)) => check_input(&format!("{place}: 'input'"), m, warnings),
        Some(v) => Err(invalid(format!(
            "{place}: 'input' must be a path or URL, or a mapping with 'path' or 'url', not {}",
            type_name(v)
        ))),
        None => match field("checksum") {
            Some(_) if field("get_url").is_none() => Err(missing(format!(
                "{place}: a 'checksum' needs an input ('input' or 'get_url')"
            ))),
            Some(v) => check_checksum(&format!("{place}: 'checksum'"), v, warnings),
            None => Ok(()),
        },
    }
}

fn check_input(
    place: &str,
    map: &yaml_serde::Mapping,
    warnings: &mut Vec<String>,
) -> Result<(), Failure> {
    unknown_keys(map, &INPUT_KEYS, place, warnings);
    let field = |name: &str| map.get(name).filter(|v| !v.is_null());
    for key in ["url", "path", "format"] {
        if let Some(v) = field(key) {
            if !matches!(v, Value::String(_)) {
                return Err(invalid(format!(
                    "{place}: '{key}' must be a string, not {}",
                    type_name(v)
                )));
            }
        }
    }
    match (field("url"), field("path")) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "{place}: give either 'url' or 'path', not both"
            )))
        }
        (None, None) => {
            return Err(missing(format!(
                "{place}: missing attribute 'url' or 'path'"
            )))
        }
        _ => {}
    }
    match field("checksum") {
        Some(v) => check_checksum(&format!("{place}: 'checksum'"), v, warnings),
        None => Ok(()),
    }
}

fn check_checksum(place: &str, value: &Value, warnings: &mut Vec<String>) -> Result<(), Failure> {
    let Value::Mapping(map) = value else {
        return Err(invalid(format!(
            "{place} must be a mapping with 'type' and 'value', not {}",
            type_name(value)
        )));
    };
    unknown_keys(map, &CHECKSUM_KEYS, place, warnings);
    let field = |name: &str| map.get(name).filter(|v| !v.is_null());
    for key in ["type", "value"] {
        match field(key) {
            None => return Err(missing(format!("{place}: missing attribute '{key}'"))),
            Some(v) if !is_text(v) => {
                return Err(invalid(format!(
                    "{place}: '{key}' must be a string, not {}",
                    type_name(v)
                )))
            }
            _ => {}
        }
    }
    for key in ["buffer_size", "read_bytes"] {
        if let Some(v) = field(key) {
            if v.as_u64().is_none() {
                return Err(invalid(format!(
                    "{place}: '{key}' must be a whole number of bytes, not {}",
                    match v {
                        Value::Number(n) => format!("{n}"),
                        other => type_name(other).to_string(),
                    }
                )));
            }
        }
    }
    Ok(())
}

/// An image from its checked, as-written text.
fn image_spec(key: String, raw: RawImage) -> Result<ImageSpec, Failure> {
    let place = format!("image '{key}'");
    let name = raw.name.unwrap_or_default();
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(invalid(format!(
            "{place}: 'name' must be a file name (no '/'), not '{name}'"
        )));
    }
    let size = raw.size.unwrap_or_default();
    crate::size::parse(&size)
        .map_err(|e| Failure::new(ReturnCode::Size, format!("{place}: 'size': {e}")))?;
    let format = raw.format.unwrap_or_else(|| "qcow2".into());
    crate::image::qemu_img::parse_format(&format)
        .map_err(|e| invalid(format!("{place}: 'format': {e}")))?;
    let checksum = |c: Option<RawChecksum>| {
        c.map(|c| ChecksumSpec {
            kind: c.kind.unwrap_or_default(),
            value: c.value.unwrap_or_default(),
            buffer_size: c.buffer_size,
            read_bytes: c.read_bytes,
        })
    };
    let input = match (raw.input, raw.get_url) {
        (Some(RawInput::Text(location)), _) => Some(InputSpec {
            location,
            format: None,
            checksum: None,
        }),
        (Some(RawInput::Map(m)), _) => Some(InputSpec {
            location: m.url.or(m.path).unwrap_or_default(),
            format: m.format,
            checksum: checksum(m.checksum),
        }),
        (None, Some(url)) => Some(InputSpec {
            location: url,
            format: None,
            checksum: checksum(raw.checksum),
        }),
        (None, None) => None,
    };
    Ok(ImageSpec {
        key,
        name,
        version: raw.version.filter(|v| !v.is_empty()),
        size,
        format,
        input,
        shrink: raw.shrink.unwrap_or(false),
    })
}

// The second reading: every scalar as the text written in the file.

#[derive(Deserialize, Default)]
struct RawArchitecture {
    owner: Option<String>,
    images: Option<Ordered<RawImage>>,
}

#[derive(Deserialize, Default)]
struct RawImage {
    name: Option<String>,
    version: Option<String>,
    size: Option<String>,
    format: Option<String>,
    input: Option<RawInput>,
    shrink: Option<bool>,
    get_url: Option<String>,
    checksum: Option<RawChecksum>,
}

#[derive(Deserialize, Default)]
struct RawInputMap {
    url: Option<String>,
    path: Option<String>,
    format: Option<String>,
    checksum: Option<RawChecksum>,
}

#[derive(Deserialize, Default)]
struct RawChecksum {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
    buffer_size: Option<u64>,
    read_bytes: Option<u64>,
}

/// `input:` is a string or a mapping.
enum RawInput {
    Text(String),
    Map(RawInputMap),
}

impl<'de> Deserialize<'de> for RawInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path, a URL or a mapping")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawInput, E> {
                Ok(RawInput::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawInput, A::Error> {
                RawInputMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawInput::Map)
            }
            // Other types were reported by the first reading.
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawInput, E> {
                Ok(RawInput::Text(String::new()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawInput, E> {
                Ok(RawInput::Text(String::new()))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawInput, E> {
                Ok(RawInput::Text(String::new()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawInput, E> {
                Ok(RawInput::Text(String::new()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<RawInput, A::Error> {
                Ok(RawInput::Text(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping in file order, keys as written.
struct Ordered<T>(Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(vec![])
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<T>, A::Error> {
                let mut out = vec![];
                while let Some(k) = map.next_key::<String>()? {
                    out.push((k, map.next_value::<T>()?));
                }
                Ok(Ordered(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Ordered<T>, E> {
                Ok(Ordered(vec![]))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(images: &str) -> String {
        format!("owner: me\nimages:\n{images}")
    }

    fn code_and_message(text: &str) -> (i32, String) {
        let f = parse(text).unwrap_err();
        (f.code.code(), f.message)
    }

    #[test]
    fn full_entry_is_read() {
        let a = parse(&arch(
            "  deb:\n    name: debian\n    version: 9.10\n    size: 10G\n    format: raw\n    shrink: true\n    input:\n      url: https://x/d.qcow2\n      format: qcow2\n      checksum:\n        type: sha256\n        value: ABC\n        buffer_size: 65536\n        read_bytes: 1024\n  blank:\n    name: blank\n    size: 1073741824\n",
        ))
        .unwrap();
        assert_eq!(a.owner, "me");
        assert_eq!(a.images.len(), 2);
        let d = &a.images[0];
        assert_eq!(d.key, "deb");
        assert_eq!(d.version.as_deref(), Some("9.10"));
        assert_eq!(d.format, "raw");
        assert!(d.shrink);
        let input = d.input.as_ref().unwrap();
        assert_eq!(input.location, "https://x/d.qcow2");
        assert_eq!(input.format.as_deref(), Some("qcow2"));
        let c = input.checksum.as_ref().unwrap();
        assert_eq!((c.kind.as_str(), c.value.as_str()), ("sha256", "ABC"));
        assert_eq!((c.buffer_size, c.read_bytes), (Some(65536), Some(1024)));
        let b = &a.images[1];
        assert_eq!(
            (b.size.as_str(), b.format.as_str()),
            ("1073741824", "qcow2")
        );
        assert_eq!(b.version, None);
        assert!(b.input.is_none());
    }

    #[test]
    fn versions_keep_their_text() {
        for (written, kept) in [
            ("9.10", "9.10"),
            ("9.4", "9.4"),
            ("12", "12"),
            ("\"9.10\"", "9.10"),
            ("010", "010"),
            ("1e3", "1e3"),
            ("2024.01", "2024.01"),
        ] {
            let a = parse(&arch(&format!(
                "  i:\n    name: n\n    version: {written}\n    size: 1G\n"
            )))
            .unwrap();
            assert_eq!(a.images[0].version.as_deref(), Some(kept), "{written}");
        }
    }

    #[test]
    fn order_of_the_file_is_kept() {
        let a = parse(&arch(
            "  zz:\n    name: z\n    size: 1G\n  aa:\n    name: a\n    size: 1G\n  mm:\n    name: m\n    size: 1G\n",
        ))
        .unwrap();
        let keys: Vec<_> = a.images.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["zz", "aa", "mm"]);
    }

    #[test]
    fn input_as_a_string_and_the_older_form() {
        let a = parse(&arch(
            "  i:\n    name: n\n    size: 1G\n    input: /srv/x.qcow2\n",
        ))
        .unwrap();
        assert_eq!(a.images[0].input.as_ref().unwrap().location, "/srv/x.qcow2");
        let old = parse(&arch(
            "  i:\n    name: n\n    version: 9.4\n    size: 1G\n    get_url: https://x/y.qcow2\n    checksum:\n      type: sha512\n      value: abc\n",
        ))
        .unwrap();
        let input = old.images[0].input.as_ref().unwrap();
        assert_eq!(input.location, "https://x/y.qcow2");
        assert_eq!(input.checksum.as_ref().unwrap().kind, "sha512");
    }

    #[test]
    fn missing_attributes_are_code_4_and_named() {
        for (text, needle) in [
            ("images:\n  i:\n    name: n\n    size: 1G\n", "'owner'"),
            ("owner: me\n", "'images'"),
            ("owner: me\nimages: {}\n", "'images' lists no image"),
            (&arch("  img1:\n    size: 1G\n"), "image 'img1': missing attribute 'name'"),
            (&arch("  img1:\n    name: n\n"), "image 'img1': missing attribute 'size'"),
            (
                &arch("  img1:\n    name: n\n    size: 1G\n    input:\n      format: raw\n"),
                "image 'img1': 'input': missing attribute 'url' or 'path'",
            ),
            (
                &arch("  img1:\n    name: n\n    size: 1G\n    input:\n      path: /x\n      checksum:\n        type: md5\n"),
                "'checksum': missing attribute 'value'",
            ),
        ] {
            let (code, msg) = code_and_message(text);
            assert_eq!(code, 4, "{text}: {msg}");
            assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
        }
    }

    /// The original reads only its keys: its own test files carry `output:` and
    /// `extra_kwargs:`, which it ignores. They build here too, with a warning each.
    #[test]
    fn keys_the_tools_do_not_read_are_warnings_naming_image_and_key() {
        let a = parse(&arch(
            "  img1:\n    name: n\n    size: 1G\n    output:\n      path: /tmp/x.qcow2\n    extra_kwargs:\n      b: base\n    input:\n      path: /x\n      extra: 1\n",
        ))
        .unwrap();
        assert_eq!(a.images[0].name, "n");
        assert_eq!(a.warnings.len(), 3, "{:?}", a.warnings);
        assert!(
            a.warnings[0].starts_with("image 'img1': key 'output' is ignored"),
            "{:?}",
            a.warnings
        );
        assert!(a.warnings[1].starts_with("image 'img1': key 'extra_kwargs' is ignored"));
        assert!(a.warnings[2].starts_with("image 'img1': 'input': key 'extra' is ignored"));
        let top = parse("owner: me\nimages:\n  i:\n    name: n\n    size: 1G\nextra: 1\n").unwrap();
        assert_eq!(top.warnings.len(), 1);
        assert!(top.warnings[0].contains("the architecture: key 'extra' is ignored"));
        // A misspelt required key is still an error: the one it replaces is missing.
        let (code, msg) = code_and_message("owner: me\nimages:\n  i:\n    name: n\n    sise: 1G\n");
        assert_eq!(code, 4, "{msg}");
        assert!(msg.contains("missing attribute 'size'"), "{msg}");
    }

    #[test]
    fn wrong_types_are_code_5_and_named() {
        for (text, needle) in [
            (&arch("  img1:\n    name: [a]\n    size: 1G\n"), "image 'img1': 'name' must be a string, not a list"),
            (&arch("  img1:\n    name: n\n    size: {a: 1}\n"), "image 'img1': 'size' must be a string, not a mapping"),
            (&arch("  img1:\n    name: n\n    size: 1G\n    shrink: yes please\n"), "'shrink' must be true or false"),
            (&arch("  img1:\n    name: n\n    size: 1G\n    format: vmdk\n"), "image 'img1': 'format'"),
            (&arch("  img1:\n    name: ../etc\n    size: 1G\n"), "must be a file name"),
            (&arch("  img1: just-a-string\n"), "image 'img1' must be a mapping"),
            (&arch("  img1:\n    name: n\n    size: 1G\n    input: 42\n"), "'input' must be a path or URL"),
            (&arch("  img1:\n    name: n\n    size: 1G\n    input:\n      url: http://x\n      path: /x\n"), "either 'url' or 'path'"),
            (&arch("  img1:\n    name: n\n    size: 1G\n    input:\n      path: /x\n      checksum: abc\n"), "'checksum' must be a mapping"),
            (&arch("  img1:\n    name: n\n    size: 1G\n    input:\n      path: /x\n      checksum:\n        type: md5\n        value: a\n        read_bytes: lots\n"), "'read_bytes' must be a whole number"),
            (&"owner: me\nimages: [a, b]\n".to_string(), "'images' must be a mapping"),
            (&"- a\n- b\n".to_string(), "must be a mapping"),
        ] {
            let (code, msg) = code_and_message(text);
            assert_eq!(code, 5, "{text}: {msg}");
            assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
        }
    }

    #[test]
    fn bad_sizes_are_code_11_and_yaml_errors_code_2() {
        let (code, msg) = code_and_message(&arch("  img1:\n    name: n\n    size: 10GB\n"));
        assert_eq!(code, 11);
        assert!(
            msg.contains("image 'img1': 'size'") && msg.contains("'10GB'"),
            "{msg}"
        );
        assert_eq!(code_and_message("owner: [\n").0, 2);
        assert_eq!(code_and_message("").0, 2);
        let dup = code_and_message("owner: a\nowner: b\nimages: {}\n");
        assert_eq!(dup.0, 2, "{}", dup.1);
    }

    #[test]
    fn missing_file_is_code_1() {
        let f = load(Path::new("/nonexistent/architecture.yml")).unwrap_err();
        assert_eq!(f.code, ReturnCode::PathNotFound);
        assert!(f.message.contains("/nonexistent/architecture.yml"));
    }
}
