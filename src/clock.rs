//! Time without a date-time dependency: now, RFC 3339 stamps of records, the civil date
//! of a Unix time (UTC, or local through the C library), and the ages `cache gc` takes.
// unsafe: localtime_r (libc) for local time; the block says why it is sound.
#![allow(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now as an RFC 3339 UTC timestamp, without a date-time dependency.
pub fn now_rfc3339() -> String {
    format_rfc3339(now())
}

/// A Unix time as an RFC 3339 UTC timestamp.
pub fn format_rfc3339(secs: u64) -> String {
    let [year, month, day, hour, minute, second] = utc_parts(secs);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// Year, month, day, hour, minute, second (UTC) of a Unix time, without a date-time
/// dependency (Howard Hinnant's civil_from_days).
pub fn utc_parts(secs: u64) -> [u64; 6] {
    let (days, rem) = (secs / 86400, secs % 86400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    [
        year as u64,
        month as u64,
        day as u64,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    ]
}

/// The local year, month, day, hour, minute and second of a Unix time (`TZ` as the C
/// library reads it); None if the C library cannot say.
pub fn local_parts(secs: u64) -> Option<[u64; 6]> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: an all-zero `tm` is a valid value of the plain C struct; localtime_r reads
    // `t` and writes only into `tm`, both owned here, and is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above; a null return (nothing written) is handled.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return None;
    }
    let part = |v: libc::c_int| u64::try_from(v).ok();
    Some([
        part(tm.tm_year)? + 1900,
        part(tm.tm_mon)? + 1,
        part(tm.tm_mday)?,
        part(tm.tm_hour)?,
        part(tm.tm_min)?,
        part(tm.tm_sec)?,
    ])
}

/// Parse "30d", "12h", "45m", "90s" (seconds; a bare number is days).
pub fn parse_age(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        's' => (&s[..s.len() - 1], 1u64),
        'm' => (&s[..s.len() - 1], 60),
        'h' => (&s[..s.len() - 1], 3600),
        'd' => (&s[..s.len() - 1], 86400),
        'w' => (&s[..s.len() - 1], 7 * 86400),
        _ => (s, 86400),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("2d"), Some(172800));
        assert_eq!(parse_age("3h"), Some(10800));
        assert_eq!(parse_age("5"), Some(5 * 86400), "a bare number is days");
        assert_eq!(parse_age("x"), None);
    }
}
