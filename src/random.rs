//! Random values from the operating system (getrandom(2), through the rand_core OsRng
//! that ssh-key already brings): identifiers, MAC addresses, salts, words.

use ssh_key::rand_core::{OsRng, RngCore};

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

pub fn u64() -> u64 {
    OsRng.next_u64()
}

/// One of `items`, each as likely as the others; none for an empty slice.
pub fn choose<T>(items: &[T]) -> Option<&T> {
    let n = u64::try_from(items.len()).ok().filter(|&n| n > 0)?;
    // Draws at or past the last whole multiple of n would favour the first items.
    let zone = u64::MAX - u64::MAX % n;
    loop {
        let x = OsRng.next_u64();
        if x < zone {
            return items.get(usize::try_from(x % n).ok()?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_differ_between_draws() {
        assert_ne!(bytes::<16>(), bytes::<16>());
    }

    #[test]
    fn choose_reaches_every_item_and_none_of_nothing() {
        let items = ["a", "b", "c"];
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.insert(*choose(&items).unwrap());
        }
        assert_eq!(seen.len(), 3);
        assert!(choose::<u8>(&[]).is_none());
    }
}
