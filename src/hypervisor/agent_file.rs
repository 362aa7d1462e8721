//! Writing a file in a running guest through its QEMU guest agent (guest-file-open, -write,
//! -close): how a warm clone is handed its identity seed without a disk being plugged in.
//! The commands are JSON built with serde_json (no value is spliced into a string); the
//! data travels base64-encoded, as the agent's protocol wants.

use crate::error::{Error, Result};
use serde_json::{json, Value};

/// How long one agent command may take, in seconds: a restored guest on a busy host
/// answers in milliseconds, one that does not answer at all falls back to the disk.
const TIMEOUT_SECONDS: i32 = 10;

/// Write `bytes` to `path` in the guest of `domain`: a new or truncated file (0600, the
/// agent's mode for files it makes) when `create`, else an existing file or FIFO only.
pub(super) fn write(
    domain: &virt::domain::Domain,
    name: &str,
    (path, create): (&str, bool),
    bytes: &[u8],
) -> Result<()> {
    let run = |command: Value| command_result(domain, name, path, &command);
    // "r+" opens without O_CREAT: a FIFO nobody made is an error, not a new regular file.
    let mode = if create { "w" } else { "r+" };
    let handle = run(json!({
        "execute": "guest-file-open",
        "arguments": {"path": path, "mode": mode},
    }))?;
    let written = run(json!({
        "execute": "guest-file-write",
        "arguments": {"handle": handle, "buf-b64": base64(bytes)},
    }));
    // Closed whatever the write did: the agent keeps open handles until it restarts.
    let closed = run(json!({
        "execute": "guest-file-close",
        "arguments": {"handle": handle},
    }));
    let count = written?["count"].as_u64();
    closed?;
    if count != Some(bytes.len() as u64) {
        return Err(agent_error(
            name,
            path,
            &format!("it wrote {count:?} of {} bytes", bytes.len()),
        ));
    }
    Ok(())
}

/// The `return` member of the agent's answer to `command`.
fn command_result(
    domain: &virt::domain::Domain,
    name: &str,
    path: &str,
    command: &Value,
) -> Result<Value> {
    let answer = domain
        .qemu_agent_command(&command.to_string(), TIMEOUT_SECONDS, 0)
        .map_err(|e| agent_error(name, path, e.message()))?;
    let mut answer: Value = serde_json::from_str(&answer)
        .map_err(|e| agent_error(name, path, &format!("its answer is not JSON: {e}")))?;
    match answer.get_mut("return") {
        Some(value) => Ok(value.take()),
        None => Err(agent_error(name, path, &format!("it answered {answer}"))),
    }
}

fn agent_error(name: &str, path: &str, message: &str) -> Error {
    Error::Libvirt {
        what: format!("domain '{name}': the guest agent writing {path}"),
        message: message.to_string(),
        hint: String::new(),
    }
}

/// Standard base64 with padding (RFC 4648, section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_rfc_4648s() {
        // The test vectors of RFC 4648, section 10.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
