//! MAC addresses for guests.

/// A random MAC in QEMU's locally administered 52:54:00 prefix.
pub fn random() -> String {
    let b: [u8; 3] = crate::random::bytes();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}
