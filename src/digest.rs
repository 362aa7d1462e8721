//! Digests used for names and keys (sha256, lower-case hex): one home for the step cache,
//! the download cache and template fingerprints.

use crate::fsutil::IoError;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Bytes as lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// sha256 of a string, hex (for names derived from URLs and paths).
pub(crate) fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

/// sha256 of a file's content, streamed (sha2 uses SHA-NI where the CPU has it).
pub(crate) fn file_sha256(path: &Path) -> Result<[u8; 32], IoError> {
    let at = |e| IoError::new(path, e);
    let mut f = std::fs::File::open(path).map_err(at)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(at)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_string_and_a_file_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "abc").unwrap();
        let known = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex("abc"), known);
        assert_eq!(hex(&file_sha256(&p).unwrap()), known);
        let err = file_sha256(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
