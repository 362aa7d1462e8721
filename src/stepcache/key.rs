//! Layer keys: a sha256 over a versioned, length-prefixed encoding of the parent's key, the
//! step's kind, its fully rendered arguments (canonical JSON) and the content of every host
//! file the step reads. Changing any of them (including a file's bytes) changes the key,
//! and with it the key of every later layer (a rolling hash, like container image layers).

use crate::digest::{file_sha256, hex};
use crate::error::Result;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The key format. Bump it when the encoding below changes: old layers then simply miss.
pub const KEY_FORMAT: &str = "virt-up-stepcache-key-v1";

/// Everything a layer's content depends on.
#[derive(Debug, Clone)]
pub struct KeyInput<'a> {
    pub parent: Option<&'a str>,
    pub kind: &'a str,
    /// The step's rendered arguments. serde_json's maps are sorted, so this is canonical.
    pub args: &'a serde_json::Value,
    /// Host files the step reads (their contents are hashed, in this order).
    pub files: &'a [PathBuf],
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The layer key (64 hex digits).
pub fn layer_key(input: &KeyInput) -> Result<String> {
    let mut h = Sha256::new();
    field(&mut h, KEY_FORMAT.as_bytes());
    field(&mut h, input.parent.unwrap_or("").as_bytes());
    field(&mut h, input.kind.as_bytes());
    field(&mut h, input.args.to_string().as_bytes());
    field(&mut h, &(input.files.len() as u64).to_le_bytes());
    // Contents only: the step's arguments already name the files, and where the template
    // directory happens to be (virt-maker's working directory, virt-up's templates.d)
    // must not change the key.
    for f in input.files {
        field(&mut h, &file_sha256(f)?);
    }
    Ok(hex(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(parent: Option<&str>, kind: &str, args: serde_json::Value, files: &[PathBuf]) -> String {
        layer_key(&KeyInput {
            parent,
            kind,
            args: &args,
            files,
        })
        .unwrap()
    }

    #[test]
    fn key_depends_on_parent_kind_and_args() {
        let a = key(None, "run", json!({"script": "x"}), &[]);
        assert_eq!(a.len(), 64);
        assert_eq!(a, key(None, "run", json!({"script": "x"}), &[]));
        assert_ne!(a, key(Some("p"), "run", json!({"script": "x"}), &[]));
        assert_ne!(a, key(None, "firstboot", json!({"script": "x"}), &[]));
        assert_ne!(a, key(None, "run", json!({"script": "y"}), &[]));
    }

    #[test]
    fn key_is_independent_of_map_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(key(None, "k", a, &[]), key(None, "k", b, &[]));
    }

    #[test]
    fn changing_a_file_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.sh");
        std::fs::write(&f, "echo one").unwrap();
        let files = [f.clone()];
        let one = key(None, "run", json!({"file": "s.sh"}), &files);
        assert_eq!(one, key(None, "run", json!({"file": "s.sh"}), &files));
        std::fs::write(&f, "echo two").unwrap();
        assert_ne!(one, key(None, "run", json!({"file": "s.sh"}), &files));
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let err = layer_key(&KeyInput {
            parent: None,
            kind: "run",
            args: &json!(null),
            files: &[PathBuf::from("/nonexistent/x.sh")],
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.sh"), "{err}");
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        assert_ne!(
            key(Some("ab"), "c", json!(null), &[]),
            key(Some("a"), "bc", json!(null), &[])
        );
    }
}
