//! Sizes, parsed exactly as qemu-img parses them (qemu's `qemu_strtosz`): a decimal number
//! with an optional fraction and an optional suffix `b B k K m M g G t T p P e E` (powers of
//! 1024; a fraction needs a suffix other than bytes and is truncated to whole bytes), or a
//! hexadecimal number `0x...`. Leading white space is skipped; nothing may follow the
//! suffix. `10GB`, `1e3`, `.5G` and `10 G` are errors, as they are for qemu-img.
//!
//! The one size grammar: virt-up `--size`, templates.d `size`, gen-vm-image sizes and
//! virt-maker sizes all go through [`parse`].
//!
//! (The original gen-vm-image parsed `10G` as 10,000,000 bytes to decide on shrinking.)

/// A size that is not one: the text and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size '{text}': {why}")]
pub(crate) struct InvalidSize {
    pub text: String,
    pub why: String,
}

/// The largest size qemu accepts.
pub(crate) const MAX: u64 = i64::MAX as u64;

/// qemu-img rounds every image size up to whole 512-byte sectors.
pub(crate) const SECTOR: u64 = 512;

/// Parse a size; the value is in bytes.
pub(crate) fn parse(text: &str) -> Result<u64, InvalidSize> {
    let bad = |why: &str| InvalidSize {
        text: text.to_string(),
        why: why.to_string(),
    };
    let s = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if s.is_empty() {
        return Err(bad(
            "empty (use a number with an optional k, M, G, T, P or E suffix)",
        ));
    }
    let hint = "use a number with an optional k, M, G, T, P or E suffix, e.g. 10G";
    let (value, rest) = if let Some(hex) = s.strip_prefix("0x").or(s.strip_prefix("0X")) {
        let end = hex
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(hex.len());
        if end == 0 {
            return Err(bad(hint));
        }
        if hex[end..].starts_with('.') {
            return Err(bad("a hexadecimal size cannot have a fraction"));
        }
        let v = u128::from_str_radix(&hex[..end], 16).map_err(|_| bad("too large"))?;
        ((v, 0u128, 1u128), &hex[end..])
    } else {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        if end == 0 {
            return Err(bad(hint));
        }
        let int: u128 = s[..end].parse().map_err(|_| bad("too large"))?;
        let mut rest = &s[end..];
        let (mut frac, mut scale) = (0u128, 1u128);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let fend = after_dot
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_dot.len());
            // Digits beyond 18 cannot change a whole-byte result below 2^63.
            for d in after_dot[..fend].bytes().take(18) {
                frac = frac * 10 + u128::from(d - b'0');
                scale *= 10;
            }
            rest = &after_dot[fend..];
            if !rest
                .chars()
                .next()
                .is_some_and(|c| "kKmMgGtTpPeE".contains(c))
            {
                return Err(bad(
                    "a fractional size needs a k, M, G, T, P or E suffix, e.g. 1.5G",
                ));
            }
        }
        ((int, frac, scale), rest)
    };
    let (int, frac, scale) = value;
    let mut chars = rest.chars();
    let multiplier: u128 = match chars.next() {
        None => 1,
        Some(c) => {
            let shift = match c {
                'b' | 'B' => 0,
                'k' | 'K' => 10,
                'm' | 'M' => 20,
                'g' | 'G' => 30,
                't' | 'T' => 40,
                'p' | 'P' => 50,
                'e' | 'E' => 60,
                _ => return Err(bad(hint)),
            };
            if chars.next().is_some() {
                return Err(bad(hint));
            }
            1u128 << shift
        }
    };
    let bytes = int
        .checked_mul(multiplier)
        .and_then(|b| b.checked_add(frac * multiplier / scale))
        .ok_or_else(|| bad("too large"))?;
    if bytes > u128::from(MAX) {
        return Err(bad(&format!("must be between 0 and {MAX} bytes")));
    }
    Ok(bytes as u64)
}

/// The virtual size qemu-img gives an image asked to be `bytes` large.
pub(crate) fn rounded(bytes: u64) -> u64 {
    bytes.div_ceil(SECTOR).saturating_mul(SECTOR)
}

/// A size for people: `10 GiB`, `1.5 GiB`, `512 bytes`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = "";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    let text = format!("{value:.1}");
    format!("{} {unit}", text.trim_end_matches(".0"))
}

/// "1.5G"-style sizes, as `du -h` prints them.
pub(crate) fn human_short(bytes: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else if v < 10.0 {
        format!("{v:.1}{}", units[i])
    } else {
        format!("{v:.0}{}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    #[test]
    fn suffixes_are_binary_and_case_insensitive() {
        assert_eq!(parse("10G").unwrap(), 10 * G);
        assert_eq!(parse("10g").unwrap(), 10 * G);
        assert_eq!(parse("1k").unwrap(), 1024);
        assert_eq!(parse("1K").unwrap(), 1024);
        assert_eq!(parse("3M").unwrap(), 3 << 20);
        assert_eq!(parse("2T").unwrap(), 2 << 40);
        assert_eq!(parse("1P").unwrap(), 1 << 50);
        assert_eq!(parse("7E").unwrap(), 7 << 60);
        assert_eq!(parse("10b").unwrap(), 10);
        assert_eq!(parse("10B").unwrap(), 10);
        assert_eq!(parse("1000").unwrap(), 1000);
    }

    #[test]
    fn the_original_tools_bug_is_gone() {
        // gen-vm-image 0.0.8 read "10G" as 10 * 1000 * 1000 bytes.
        assert_eq!(parse("10G").unwrap(), 10_737_418_240);
    }

    #[test]
    fn fractions_need_a_suffix_and_truncate() {
        assert_eq!(parse("1.5G").unwrap(), 3 * G / 2);
        assert_eq!(parse("1.5k").unwrap(), 1536);
        assert_eq!(parse("0.5k").unwrap(), 512);
        assert_eq!(parse("1.G").unwrap(), G);
        assert_eq!(parse("1.0000000001G").unwrap(), G);
        assert_eq!(parse("1.1G").unwrap(), 1_181_116_006);
        assert!(parse("1.5").is_err());
        assert!(parse("1.5b").is_err());
        assert!(parse(".5G").is_err());
    }

    #[test]
    fn hexadecimal_and_leading_zeros() {
        assert_eq!(parse("0x10").unwrap(), 16);
        assert_eq!(parse("0x10M").unwrap(), 16 << 20);
        assert_eq!(parse("08").unwrap(), 8);
        assert_eq!(parse("010").unwrap(), 10);
        assert!(parse("0x").is_err());
        assert!(parse("0x1.8").is_err());
    }

    #[test]
    fn what_qemu_img_refuses_is_refused() {
        for bad in [
            "", "10GB", "10GiB", "10 G", "1e3", "-1", "G", "ten", "10G ", "16E",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("'{bad}'")), "{bad:?}: {err}");
        }
        assert_eq!(parse(" 10G").unwrap(), 10 * G);
        assert_eq!(parse("9223372036854775807").unwrap(), MAX);
        assert!(parse("9223372036854775808").is_err());
    }

    #[test]
    fn a_doubled_suffix_is_refused_and_says_what_is_accepted() {
        for bad in ["20GG", "1KK", "10Gb", "5 ", "1.5.0G", "1,5G"] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.text, bad);
            assert!(err.why.contains("suffix"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn rounding_and_display() {
        assert_eq!(rounded(10), 512);
        assert_eq!(rounded(1000), 1024);
        assert_eq!(rounded(1024), 1024);
        assert_eq!(human(10 * G), "10 GiB");
        assert_eq!(human(3 * G / 2), "1.5 GiB");
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human_short(1536), "1.5K");
        assert_eq!(human_short(100), "100B");
    }
}
