//! The verbosity, as the original's cli.py decides it: `VERBOSE`, else `VERBOSITY`, else
//! the count of `-v`. A variable that is set wins over the flags, `VERBOSE=0` included.

use crate::error::{Error, Result};

/// The verbosity for `flag` (the `-v` count) in an environment read through `env` (which
/// gives None for an unset or empty variable). A value that is not an integer is an
/// error naming the variable; a negative one is 0.
pub fn verbosity(flag: u8, env: &dyn Fn(&str) -> Option<String>) -> Result<u8> {
    for key in ["VERBOSE", "VERBOSITY"] {
        if let Some(v) = env(key) {
            let n: i64 = v.trim().parse().map_err(|_| {
                Error::Usage(format!(
                    "{key}='{v}' is not an integer (the verbosity, as a count of -v; \
                     {key} overrides -v)"
                ))
            })?;
            return Ok(n.clamp(0, i64::from(u8::MAX)) as u8);
        }
    }
    Ok(flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn verbose_then_verbosity_then_the_flag() {
        assert_eq!(verbosity(2, &with(&[])).unwrap(), 2);
        assert_eq!(verbosity(0, &with(&[("VERBOSITY", "1")])).unwrap(), 1);
        assert_eq!(
            verbosity(0, &with(&[("VERBOSE", " 2 "), ("VERBOSITY", "1")])).unwrap(),
            2
        );
        // Set, it wins over -v even when lower, as the original's.
        assert_eq!(verbosity(3, &with(&[("VERBOSE", "0")])).unwrap(), 0);
        assert_eq!(verbosity(3, &with(&[("VERBOSE", "-4")])).unwrap(), 0);
        assert_eq!(verbosity(0, &with(&[("VERBOSE", "999")])).unwrap(), 255);
        let e = verbosity(0, &with(&[("VERBOSITY", "loud")])).unwrap_err();
        assert!(e.to_string().contains("VERBOSITY='loud'"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}
